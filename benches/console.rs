//! Console page benchmark: one Berth (release build, SQLite + files by default, `--pg` for
//! PostgreSQL) holding a repository with `--tags` tags (10,000 by default; every tag its own
//! image, pushed in bulk with small blobs) plus `--repositories` more repositories, and a signed-in
//! console session. Times each main page (and the lifecycle editor's live preview over the whole
//! repository) as a browser would fetch it, sequentially on loopback, and prints p50, p95 and max
//! per page: an upper bound on the server's time, since it includes the client and the socket.
//!
//! Usage: cargo bench --bench console -- [--tags 10000] [--repositories 1000] [--rounds 30] [--pg]
//! env: BERTH_BIN (default: the release binary cargo bench builds), BENCH_TMPDIR, BENCH_LOG_LEVEL
//! (the server's `[log] level`, `warn` by default; `warn,sqlx=debug` logs every statement's time;
//! when set, the log is kept as `berth-console-bench.log` in BENCH_TMPDIR).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt as _;
use serde_json::json;
use sha2::{Digest, Sha256};

const ADMIN: (&str, &str) = ("admin", "berth-bench-admin-password");
const REPO: &str = "bench/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

struct Opts {
    tags: usize,
    repositories: usize,
    rounds: usize,
    pg: bool,
    berth: PathBuf,
    tmp: PathBuf,
}

fn opts() -> Opts {
    let mut o = Opts {
        tags: 10_000,
        repositories: 1_000,
        rounds: 30,
        pg: false,
        berth: std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth"))),
        tmp: std::env::var_os("BENCH_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    };
    let mut args = std::env::args().skip(1);
    let number = |args: &mut std::iter::Skip<std::env::Args>| -> usize {
        args.next().and_then(|v| v.parse().ok()).expect("a number")
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tags" => o.tags = number(&mut args),
            "--repositories" => o.repositories = number(&mut args),
            "--rounds" => o.rounds = number(&mut args),
            "--pg" => o.pg = true,
            _ => {}
        }
    }
    o
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
    database: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = &self.database {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

fn psql(sql: &str) -> Result<()> {
    psql_in("postgres", sql)
}

fn psql_in(database: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-qc",
            sql,
        ])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Where the server's log goes: inside the bench's directory (removed at the end), or beside it
/// when `BENCH_LOG_LEVEL` asks for a log worth reading afterwards.
fn log_path(o: &Opts, dir: &std::path::Path) -> PathBuf {
    match std::env::var_os("BENCH_LOG_LEVEL") {
        Some(_) => o.tmp.join("berth-console-bench.log"),
        None => dir.join("berth.log"),
    }
}

async fn start(o: &Opts, dir: &std::path::Path) -> Result<Server> {
    if !o.berth.is_file() {
        bail!(
            "{} is missing: run `cargo build --release --bin berth` or set BERTH_BIN",
            o.berth.display()
        );
    }
    let port = free_port();
    let mut cmd = Command::new(&o.berth);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("BERTH_ADMIN_PASSWORD", ADMIN.1)
        .env(
            "BERTH_LOG_LEVEL",
            std::env::var("BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path(o, dir))?);
    let mut database = None;
    if o.pg {
        let name = format!("berth_console_bench_{}", std::process::id());
        psql(&format!("CREATE DATABASE {name}"))?;
        cmd.env(
            "BERTH_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{name}"),
        );
        database = Some(name);
        // PostgreSQL keeps access-key secrets and signing keys encrypted with a shared key file.
        let key = dir.join("secrets.key");
        let made = Command::new(&o.berth)
            .args(["secrets", "generate-key", "--out"])
            .arg(&key)
            .status()
            .context("run berth secrets generate-key")?;
        if !made.success() {
            bail!("berth secrets generate-key --out {} failed", key.display());
        }
        cmd.env("BERTH_AUTH_SECRETS_KEY_FILE", &key);
    }
    let child = cmd.spawn().context("start berth")?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        database,
    };
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(format!("{}/readyz", server.base)).send().await {
            if r.status().is_success() {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "berth did not become ready; see {}",
                log_path(o, dir).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> Result<String> {
    let digest = sha256(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .body(data.to_vec())
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("blob upload: {}", r.status());
    }
    Ok(digest)
}

/// Pushes `count` images to `repo`, tagged `t00000`...; each image its own manifest (a distinct
/// annotation) over one shared config and layer. Returns the digests in push order.
async fn push_images(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    count: usize,
) -> Result<Vec<String>> {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/app"],"Labels":{"bench":"console"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = vec![7u8; 4096];
    let config_digest = put_blob(c, base, repo, config).await?;
    let layer_digest = put_blob(c, base, repo, &layer).await?;
    let pushes = futures::stream::iter(0..count).map(|i| {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len()}],
            "annotations": {"bench.index": i.to_string()}
        })
        .to_string();
        let c = c.clone();
        let url = format!("{base}/v2/{repo}/manifests/t{i:05}");
        async move {
            let digest = sha256(manifest.as_bytes());
            let r = c
                .put(url)
                .basic_auth(ADMIN.0, Some(ADMIN.1))
                .header("content-type", OCI_MANIFEST)
                .body(manifest)
                .send()
                .await?;
            if r.status().as_u16() != 201 {
                bail!("manifest PUT: {}", r.status());
            }
            Ok::<_, anyhow::Error>((i, digest))
        }
    });
    let mut digests: Vec<(usize, String)> = pushes
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    digests.sort();
    Ok(digests.into_iter().map(|(_, d)| d).collect())
}

/// Signs in through the sign-in form; returns the session cookie header value.
async fn sign_in(c: &reqwest::Client, base: &str) -> Result<String> {
    let r = c.get(format!("{base}/console/sign-in")).send().await?;
    let pre = cookie_value(&r, "berth_sign_in").ok_or_else(|| anyhow!("no sign-in cookie"))?;
    let r = c
        .post(format!("{base}/console/sign-in"))
        .header("cookie", format!("berth_sign_in={pre}"))
        .form(&[
            ("_csrf", pre.as_str()),
            ("username", ADMIN.0),
            ("password", ADMIN.1),
        ])
        .send()
        .await?;
    let session = cookie_value(&r, "berth_session")
        .ok_or_else(|| anyhow!("sign-in failed: {}", r.status()))?;
    Ok(format!("berth_session={session}"))
}

fn cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
}

/// The anti-forgery token of a console page's forms.
fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"_csrf\" value=\"")? + "name=\"_csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_owned())
}

/// A form's fields, in order.
type Form = [(String, String)];

struct Timing {
    page: String,
    bytes: usize,
    ms: Vec<f64>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Fetches one page `rounds` times (after 3 unmeasured), each answer required to be 200.
async fn time_page(
    c: &reqwest::Client,
    cookie: &str,
    label: &str,
    url: &str,
    form: Option<&[(String, String)]>,
    rounds: usize,
) -> Result<Timing> {
    let mut ms = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for round in 0..rounds + 3 {
        let started = Instant::now();
        let rb = match form {
            Some(fields) => c.post(url).form(fields),
            None => c.get(url),
        };
        let r = rb.header("cookie", cookie).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 200 {
            bail!(
                "{label}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
        bytes = body.len();
        if round >= 3 {
            ms.push(took);
        }
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(Timing {
        page: label.to_owned(),
        bytes,
        ms,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = opts();
    let dir = tempfile::Builder::new()
        .prefix("berth-console-bench")
        .tempdir_in(&o.tmp)?;
    let server = start(&o, dir.path()).await?;
    let base = server.base.clone();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(32)
        .build()?;

    let started = Instant::now();
    let digests = push_images(&c, &base, REPO, o.tags).await?;
    let fill = futures::stream::iter(0..o.repositories).map(|i| {
        let c = c.clone();
        let base = base.clone();
        async move { push_images(&c, &base, &format!("bench/r{i:06}"), 1).await }
    });
    fill.buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    eprintln!(
        "loaded {} tags in {REPO} and {} more repositories in {:.1} s ({})",
        o.tags,
        o.repositories,
        started.elapsed().as_secs_f64(),
        if o.pg { "PostgreSQL" } else { "SQLite" }
    );

    if let Some(database) = &server.database {
        // A registry that grew to this size over time has had its statistics gathered by
        // autovacuum; a bulk load a second ago has not, and plans made without statistics
        // (sqlx's prepared statements keep them) would time the load, not the pages.
        psql_in(database, "ANALYZE")?;
    }
    let cookie = sign_in(&c, &base).await?;
    let editor = c
        .get(format!("{base}/console/repositories/{REPO}/-/lifecycle"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_of(&editor).ok_or_else(|| anyhow!("no _csrf on the lifecycle editor"))?;
    let policy = json!({"rules": [{
        "rulePriority": 1,
        "description": "keep the newest 100",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 100},
        "action": {"type": "expire"}
    }]})
    .to_string();
    let preview_form = vec![
        ("_csrf".to_owned(), csrf),
        ("mode".to_owned(), "json".to_owned()),
        ("policy-json".to_owned(), policy),
    ];
    let middle = &digests[digests.len() / 2];
    let pages: Vec<(&str, String, Option<&Form>)> = vec![
        ("repositories", format!("{base}/console/repositories"), None),
        (
            "repositories?prefix=bench/r0005",
            format!("{base}/console/repositories?prefix=bench/r0005"),
            None,
        ),
        (
            "repository (10k tags)",
            format!("{base}/console/repositories/{REPO}"),
            None,
        ),
        (
            "image",
            format!("{base}/console/repositories/{REPO}/-/images/{middle}"),
            None,
        ),
        (
            "lifecycle editor",
            format!("{base}/console/repositories/{REPO}/-/lifecycle"),
            None,
        ),
        (
            "lifecycle live preview (10k images)",
            format!("{base}/console/repositories/{REPO}/-/lifecycle/preview"),
            Some(&preview_form),
        ),
        (
            "repository policy",
            format!("{base}/console/repositories/{REPO}/-/policy"),
            None,
        ),
        (
            "pull-through rules",
            format!("{base}/console/pull-through"),
            None,
        ),
        ("users", format!("{base}/console/users"), None),
        ("audit log", format!("{base}/console/audit"), None),
    ];
    let mut timings = Vec::new();
    for (label, url, form) in &pages {
        match time_page(&c, &cookie, label, url, *form, o.rounds).await {
            Ok(t) => timings.push(t),
            Err(e) => eprintln!("{label}: {e:#}"),
        }
    }
    println!(
        "\nconsole pages, {} tags in one repository, {} repositories, {} ({} rounds each, ms)",
        o.tags,
        o.repositories + 1,
        if o.pg {
            "PostgreSQL + files"
        } else {
            "SQLite + files"
        },
        o.rounds
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>9}",
        "page", "p50", "p95", "max", "KiB"
    );
    for t in &timings {
        println!(
            "{:<40} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
            t.page,
            pct(&t.ms, 0.5),
            pct(&t.ms, 0.95),
            t.ms[t.ms.len() - 1],
            t.bytes as f64 / 1024.0
        );
    }
    if timings.len() != pages.len() {
        bail!(
            "{} of {} pages failed",
            pages.len() - timings.len(),
            pages.len()
        );
    }
    Ok(())
}
