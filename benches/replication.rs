//! Replication benchmark: two Berths on loopback (A on SQLite + files, B on SQLite + files or
//! with `--b-pg-s3` on PostgreSQL + s3s-fs), trusting each other, with a rule at A sending
//! everything to B. Measures:
//!
//! * lag: from the 201 of a manifest PUT at A to that tag answering 200 at B, over N small
//!   images pushed one at a time (p50, p99, max);
//! * a burst: N more pushed back to back by 4 clients, and how long until the last is at B;
//! * a big layer: the rate A replicates one blob of `--layer-mib` MiB at (from the manifest's
//!   201 to the image at B) against the rate of a plain upload of a same-sized blob from this
//!   client straight to B, and A's peak RSS before and while replicating it.
//!
//! Usage: cargo bench --bench replication -- [--images 200] [--layer-mib 1024] [--b-pg-s3]
//! env: BERTH_BIN (default: the release binary cargo bench builds), BENCH_TMPDIR.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;
const ADMIN: (&str, &str) = ("admin", "berth-bench-admin-password");
const A_ID: &str = "000000000000";
const B_ID: &str = "111111111111";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

struct Opts {
    images: usize,
    layer_mib: usize,
    b_pg_s3: bool,
    berth: PathBuf,
    tmp: PathBuf,
}

fn opts() -> Opts {
    let mut o = Opts {
        images: 200,
        layer_mib: 1024,
        b_pg_s3: false,
        berth: std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth"))),
        tmp: std::env::var_os("BENCH_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--images" => o.images = args.next().and_then(|v| v.parse().ok()).expect("N"),
            "--layer-mib" => o.layer_mib = args.next().and_then(|v| v.parse().ok()).expect("N"),
            "--b-pg-s3" => o.b_pg_s3 = true,
            _ => {}
        }
    }
    o
}

/// A Berth process and what it needs.
struct Server {
    pid: u32,
    child: Child,
    aux: Vec<Child>,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for c in &mut self.aux {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(db) = &self.database {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn psql(sql: &str) -> Result<()> {
    let ok = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qtc",
            sql,
        ])
        .stdout(Stdio::null())
        .status()?
        .success();
    if !ok {
        bail!("psql {sql} failed");
    }
    Ok(())
}

fn start(o: &Opts, port: u16, env: &[(&str, String)], pg_s3: bool) -> Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("berth-replication-bench-")
        .tempdir_in(&o.tmp)?;
    let mut cmd = Command::new(&o.berth);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.path().join("data"))
    .env("BERTH_LOG_LEVEL", "warn")
    .env("BERTH_ADMIN_PASSWORD", ADMIN.1)
    .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.path().join("server.log"))?);
    let mut aux = Vec::new();
    let mut database = None;
    if pg_s3 {
        let db = format!("berth_repl_bench_{}", std::process::id());
        psql(&format!("CREATE DATABASE {db}"))?;
        database = Some(db.clone());
        let s3_port = free_port();
        std::fs::create_dir_all(dir.path().join("s3/berth"))?;
        aux.push(
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &s3_port.to_string()])
                .args([
                    "--access-key",
                    "bench-ak",
                    "--secret-key",
                    "bench-secret-key",
                ])
                .arg(dir.path().join("s3"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary)")?,
        );
        let key = dir.path().join("secrets.key");
        let status = Command::new(&o.berth)
            .args(["secrets", "generate-key", "--out"])
            .arg(&key)
            .status()?;
        if !status.success() {
            bail!("berth secrets generate-key failed");
        }
        cmd.env(
            "BERTH_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .env("BERTH_STORAGE_URL", "s3://berth")
        .env(
            "BERTH_STORAGE_S3_ENDPOINT",
            format!("http://127.0.0.1:{s3_port}"),
        )
        .env("BERTH_STORAGE_S3_REGION", "us-east-1")
        .env("BERTH_STORAGE_S3_ACCESS_KEY_ID", "bench-ak")
        .env("BERTH_STORAGE_S3_SECRET_ACCESS_KEY", "bench-secret-key")
        .env("BERTH_STORAGE_S3_ALLOW_HTTP", "true")
        .env("BERTH_AUTH_SECRETS_KEY_FILE", &key);
    }
    let child = cmd.spawn().context("start berth")?;
    let server = Server {
        pid: child.id(),
        child,
        aux,
        database,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("berth on port {port} did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .unwrap()
}

async fn ok(response: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    if !response.status().is_success() {
        let status = response.status();
        bail!(
            "{what}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok(response)
}

/// Uploads `body` as one monolithic PUT; returns its digest.
async fn put_blob(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    body: reqwest::Body,
    digest: &str,
    len: usize,
) -> Result<()> {
    let response = ok(
        c.post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("content-length", "0")
            .send()
            .await?,
        "start upload",
    )
    .await?;
    let location = response.headers()["location"].to_str()?.to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    ok(
        c.put(format!("{location}{sep}digest={digest}"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("content-type", "application/octet-stream")
            .header("content-length", len.to_string())
            .body(body)
            .send()
            .await?,
        "finish upload",
    )
    .await?;
    Ok(())
}

async fn put_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    config: (&str, usize),
    layer: (&str, usize),
) -> Result<()> {
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer.0, "size": layer.1}]});
    ok(
        c.put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .header("content-type", OCI_MANIFEST)
            .body(serde_json::to_vec(&manifest)?)
            .send()
            .await?,
        "manifest PUT",
    )
    .await?;
    Ok(())
}

async fn at_b(c: &reqwest::Client, b: &str, repo: &str, tag: &str) -> bool {
    c.head(format!("{b}/v2/{repo}/manifests/{tag}"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Polls B until `repo:tag` is there; the time it took since `since`.
async fn wait_at_b(
    c: &reqwest::Client,
    b: &str,
    repo: &str,
    tag: &str,
    since: Instant,
) -> Result<Duration> {
    let deadline = since + Duration::from_secs(600);
    while !at_b(c, b, repo, tag).await {
        if Instant::now() > deadline {
            bail!("{repo}:{tag} never reached B");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(since.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = seed | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out
}

/// A stream of `len` pseudo-random bytes made on the fly (memory stays flat at any size), and
/// the digest of those bytes.
fn big_body(len: usize, seed: u64) -> (String, impl Fn() -> reqwest::Body) {
    const PIECE: usize = 4 * MIB;
    let piece = random(PIECE, seed);
    let mut hasher = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(PIECE);
        hasher.update(&piece[..n]);
        left -= n;
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let piece = bytes::Bytes::from(piece);
    let make = move || {
        let piece = piece.clone();
        let pieces = (0..len.div_ceil(PIECE)).map(move |i| {
            let n = (len - i * PIECE).min(PIECE);
            Ok::<_, std::io::Error>(piece.slice(..n))
        });
        reqwest::Body::wrap_stream(futures::stream::iter(pieces))
    };
    (digest, make)
}

async fn run(o: &Opts) -> Result<Value> {
    let (a_port, b_port) = (free_port(), free_port());
    let a_url = format!("http://127.0.0.1:{a_port}");
    let b_url = format!("http://127.0.0.1:{b_port}");
    let a_env = vec![
        ("BERTH_REGISTRY_ID", A_ID.to_owned()),
        (
            "BERTH_FEDERATION_REGISTRIES",
            json!([{"registry_id": B_ID, "region": "eu-west-1", "url": b_url,
                    "jwks": format!("{b_url}/token/jwks.json")}])
            .to_string(),
        ),
    ];
    let b_env = vec![
        ("BERTH_REGISTRY_ID", B_ID.to_owned()),
        ("BERTH_REGION", "eu-west-1".to_owned()),
        (
            "BERTH_FEDERATION_REGISTRIES",
            json!([{"registry_id": A_ID, "region": "us-east-1", "url": a_url,
                    "jwks": format!("{a_url}/token/jwks.json")}])
            .to_string(),
        ),
        ("BERTH_FEDERATION_JWKS_REFRESH_SECS", "1".to_owned()),
    ];
    let a = start(o, a_port, &a_env, false)?;
    let b = start(o, b_port, &b_env, o.b_pg_s3)?;
    let c = client();
    // B lets A replicate; A sends everything to B.
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{A_ID}:root")},
        "Action": ["ecr:ReplicateImage", "ecr:CreateRepository"], "Resource": "*"}]});
    ok(
        c.put(format!("{b_url}/api/v1/registry-policy"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .body(policy.to_string())
            .send()
            .await?,
        "B registry policy",
    )
    .await?;
    let rules = json!({"rules": [{"destinations": [{"region": "eu-west-1", "registryId": B_ID}]}]});
    ok(
        c.put(format!("{a_url}/api/v1/replication"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .json(&rules)
            .send()
            .await?,
        "A rules",
    )
    .await?;
    // Until B has read A's keys, A's replication password is unknown there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing: Value = c
            .get(format!("{b_url}/api/v1/federation/registries"))
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .send()
            .await?
            .json()
            .await?;
        if listing["registries"][0]["key_ids"]
            .as_array()
            .is_some_and(|k| !k.is_empty())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("B never read A's keys: {listing}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Lag of small images, one at a time: each pushed, then watched at B before the next.
    let push_small = |i: usize, prefix: &'static str| {
        let c = c.clone();
        let a_url = a_url.clone();
        async move {
            let repo = format!("{prefix}/app{}", i % 10);
            let tag = format!("v{i}");
            let config = format!(r#"{{"architecture":"amd64","os":"linux","i":{i}}}"#).into_bytes();
            let layer = random(
                4096,
                i as u64 + 1 + if prefix == "burst" { 1 << 32 } else { 0 },
            );
            let (cd, ld) = (sha256(&config), sha256(&layer));
            put_blob(&c, &a_url, &repo, config.clone().into(), &cd, config.len()).await?;
            put_blob(&c, &a_url, &repo, layer.clone().into(), &ld, layer.len()).await?;
            put_manifest(
                &c,
                &a_url,
                &repo,
                &tag,
                (&cd, config.len()),
                (&ld, layer.len()),
            )
            .await?;
            Ok::<_, anyhow::Error>((repo, tag, Instant::now()))
        }
    };
    let mut lags = Vec::new();
    for i in 0..o.images {
        let (repo, tag, pushed) = push_small(i, "lag").await?;
        lags.push(wait_at_b(&c, &b_url, &repo, &tag, pushed).await?);
    }
    lags.sort();
    let lag = json!({"images": o.images, "p50_ms": pct(&lags, 0.5), "p99_ms": pct(&lags, 0.99),
        "max_ms": pct(&lags, 1.0)});
    eprintln!("lag, one image at a time: {lag}");

    // A burst: the same number pushed back to back (4 clients), then the time until the last
    // is at B: how fast a backlog drains.
    let started = Instant::now();
    let pushed: Vec<(String, String, Instant)> = futures::stream::iter(0..o.images)
        .map(|i| push_small(i, "burst"))
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let push_secs = started.elapsed().as_secs_f64();
    let mut burst_lags = Vec::new();
    for (repo, tag, at) in &pushed {
        burst_lags.push(wait_at_b(&c, &b_url, repo, tag, *at).await?);
    }
    let drained = started.elapsed().as_secs_f64();
    burst_lags.sort();
    let burst = json!({"images": o.images, "push_rate_per_s": o.images as f64 / push_secs,
        "all_at_b_after_s": drained, "replicated_per_s": o.images as f64 / drained,
        "lag_p50_ms": pct(&burst_lags, 0.5), "lag_p99_ms": pct(&burst_lags, 0.99)});
    eprintln!("burst: {burst}");

    // A big layer: plain upload straight to B first (the ceiling between these two servers),
    // then through A and replication.
    let len = o.layer_mib * MIB;
    let (digest, body) = big_body(len, 7);
    let t = Instant::now();
    put_blob(&c, &b_url, "plain/upload", body(), &digest, len).await?;
    let plain_mb_s = len as f64 / 1e6 / t.elapsed().as_secs_f64();
    let (digest, body) = big_body(len, 11);
    let t = Instant::now();
    put_blob(&c, &a_url, "big/app", body(), &digest, len).await?;
    let upload_a_mb_s = len as f64 / 1e6 / t.elapsed().as_secs_f64();
    let config = br#"{"architecture":"amd64","os":"linux","big":1}"#.to_vec();
    let cd = sha256(&config);
    put_blob(
        &c,
        &a_url,
        "big/app",
        config.clone().into(),
        &cd,
        config.len(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = status_kib(a.pid, "VmRSS:");
    reset_peak(a.pid);
    put_manifest(
        &c,
        &a_url,
        "big/app",
        "v1",
        (&cd, config.len()),
        (&digest, len),
    )
    .await?;
    let pushed = Instant::now();
    let took = wait_at_b(&c, &b_url, "big/app", "v1", pushed).await?;
    let replicated_mb_s = len as f64 / 1e6 / took.as_secs_f64();
    let peak = status_kib(a.pid, "VmHWM:");
    let big = json!({"layer_mib": o.layer_mib, "plain_upload_to_b_mb_s": plain_mb_s,
        "upload_to_a_mb_s": upload_a_mb_s, "replicated_mb_s": replicated_mb_s,
        "replication_vs_plain": replicated_mb_s / plain_mb_s,
        "a_rss_before_mib": rss_before as f64 / 1024.0, "a_peak_rss_while_replicating_mib": peak as f64 / 1024.0});
    eprintln!("big layer: {big}");
    drop(a);
    drop(b);
    Ok(
        json!({"b": if o.b_pg_s3 { "pg-s3" } else { "sqlite-fs" }, "lag": lag, "burst": burst,
        "big_layer": big}),
    )
}

fn main() -> Result<()> {
    let o = opts();
    if !Path::new(&o.berth).exists() {
        return Err(anyhow!("{} is missing (BERTH_BIN)", o.berth.display()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&o))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
