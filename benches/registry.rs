//! Side-by-side benchmark: Berth vs CNCF Distribution 2.8 (Debian's `docker-registry`), both on
//! the local filesystem in temp dirs on the same disk, plus Berth alone on PostgreSQL + S3
//! (s3s-fs). Alternating rounds, medians, spread and Berth/Distribution ratios; JSON output.
//!
//! Usage (see benches/README.md):
//!   cargo build --release --bin berth
//!   cargo bench --bench registry -- [--rounds N] [--only a,b] [--targets berth,distribution,berth-pg-s3,berth-anonymous]
//!                                   [--json FILE] [--memory-check] [--no-memory-check] [--scan] [--events]
//!   env: BENCH_ROUNDS, BENCH_SCALE (e.g. 0.01 for a quick run), BENCH_ONLY, BENCH_JSON,
//!        BENCH_TARGETS, BENCH_TMPDIR, BERTH_BIN, BENCH_REFERENCE_BIN, BENCH_LOAD_SECS,
//!        BENCH_SCAN=1, BENCH_TRIVY (default ~/.cache/berth-venv/bin/trivy), BENCH_EVENTS=1
//!
//! `--events` turns on, for the Berth targets, what issue 16 adds to the hot paths: the metrics
//! listener, and one event rule matching every push with a webhook target (a receiver in this
//! process); it prints the delivery lag from an event's recording to its receipt (p50, p99).
//! Compare a run with it against one without.
//!
//! `--scan` turns scanning on for the Berth targets: a registry rule scans every push, with a
//! real Trivy running offline against a tiny database, so scans compete with the measured
//! requests for the machine, as they do in production.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/fixtures/trivy_db.rs"]
mod trivy_db;

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;
const CHUNK: usize = 16 * MIB;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const S3_AK: &str = "berth-bench-access";
const S3_SK: &str = "berth-bench-secret-key";
/// Berth's bootstrap admin (`BERTH_ADMIN_USER` keeps its default, `BERTH_ADMIN_PASSWORD` is set):
/// every request to a Berth target authenticates as this user with HTTP Basic, as does skopeo.
/// Distribution runs without authentication, as before.
const BERTH_ADMIN_USER: &str = "admin";
const BERTH_ADMIN_PASSWORD: &str = "berth-bench-admin-password";
/// The registry policy of the `berth-anonymous` target: anyone may pull every repository.
const ANONYMOUS_PULL_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AnyonePulls","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability","ecr:ListImages"],"Resource":"*"}]}"#;

/// Every scenario, in run order.
const SCENARIOS: &[&str] = &[
    "upload-monolithic",
    "upload-chunked",
    "upload-streamed",
    "download-warm",
    "download-cold",
    "small-blobs",
    "manifest-put",
    "manifest-get",
    "blob-head",
    "tags-list",
    "catalog-page",
    "catalog-full",
    "skopeo-push",
    "skopeo-pull",
];

/// (unit, higher is better, description)
fn scenario_meta(name: &str) -> (&'static str, bool, &'static str) {
    match name {
        "upload-monolithic" => (
            "MB/s",
            true,
            "1 GiB blob: POST + one PUT with the whole body",
        ),
        "upload-chunked" => (
            "MB/s",
            true,
            "1 GiB blob: POST + 16 MiB PATCHes (Content-Range) + PUT",
        ),
        "upload-streamed" => (
            "MB/s",
            true,
            "1 GiB blob: POST + one chunked-encoding PATCH + PUT (docker)",
        ),
        "download-warm" => ("MB/s", true, "1 GiB blob GET, page cache warm"),
        "download-cold" => ("MB/s", true, "1 GiB blob GET after dropping the page cache"),
        "small-blobs" => (
            "blobs/s",
            true,
            "2,000 x 4 KiB blob uploads (POST + PUT), 16 concurrent",
        ),
        "manifest-put" => ("PUTs/s", true, "2,000 manifest PUTs by tag, 16 concurrent"),
        "manifest-get" => (
            "req/s",
            true,
            "manifest GET by tag, 64 keep-alive connections",
        ),
        "blob-head" => ("req/s", true, "blob HEAD, 64 keep-alive connections"),
        "tags-list" => (
            "ms",
            false,
            "tags list of a 10,000-tag repository (following Links)",
        ),
        "catalog-page" => ("ms", false, "catalog, one page of n=100"),
        "catalog-full" => (
            "ms",
            false,
            "catalog of 1,000+ repositories, n=1000 pages following Links",
        ),
        "skopeo-push" => (
            "s",
            false,
            "skopeo copy oci: -> registry, 5 x 64 MiB uncompressed layers",
        ),
        "skopeo-pull" => ("s", false, "skopeo copy registry -> oci:, same image"),
        _ => ("?", true, ""),
    }
}

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    rounds: usize,
    scale: f64,
    only: Vec<String>,
    json: Option<PathBuf>,
    targets: Vec<String>,
    memory_check: Option<bool>, // None: default (on in a full run), Some(true): only it
    memory_check_bytes: Option<usize>,
    load_secs: f64,
    tmp: PathBuf,
    berth_bin: PathBuf,
    reference_bin: String,
    /// Scan every push on the Berth targets (`--scan`).
    scan: bool,
    trivy: PathBuf,
    /// Metrics on and a webhook rule matching every push on the Berth targets (`--events`).
    events: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench registry -- [--rounds N] [--scale F] [--only s1,s2] \
         [--targets berth,distribution,berth-pg-s3,berth-anonymous] [--json FILE] [--memory-check] \
         [--no-memory-check] [--memory-check-bytes N] [--load-secs S] [--scan] [--events] [--list]\n\
         scenarios: {}",
        SCENARIOS.join(", ")
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut o = Opts {
        rounds: env("BENCH_ROUNDS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        scale: env("BENCH_SCALE")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0),
        only: env("BENCH_ONLY")
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        json: env("BENCH_JSON").map(PathBuf::from),
        targets: env("BENCH_TARGETS")
            .unwrap_or_else(|| "distribution,berth,berth-pg-s3".into())
            .split(',')
            .map(str::to_owned)
            .collect(),
        memory_check: None,
        memory_check_bytes: env("BENCH_MEMORY_CHECK_BYTES").and_then(|v| v.parse().ok()),
        load_secs: env("BENCH_LOAD_SECS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        tmp: env("BENCH_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
        berth_bin: env("BERTH_BIN").map(PathBuf::from).unwrap_or_default(),
        reference_bin: env("BENCH_REFERENCE_BIN").unwrap_or_else(|| "docker-registry".into()),
        scan: env("BENCH_SCAN").is_some_and(|v| v == "1" || v == "true"),
        events: env("BENCH_EVENTS").is_some_and(|v| v == "1" || v == "true"),
        trivy: env("BENCH_TRIVY").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/berth-venv/bin/trivy")
        }),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--bench" => {} // added by `cargo bench`
            "--rounds" => o.rounds = val("--rounds").parse().expect("--rounds N"),
            "--scale" => o.scale = val("--scale").parse().expect("--scale F"),
            "--only" => o.only = val("--only").split(',').map(str::to_owned).collect(),
            "--json" => o.json = Some(val("--json").into()),
            "--targets" => o.targets = val("--targets").split(',').map(str::to_owned).collect(),
            "--memory-check" => o.memory_check = Some(true),
            "--no-memory-check" => o.memory_check = Some(false),
            "--memory-check-bytes" => {
                o.memory_check_bytes = Some(val("--memory-check-bytes").parse().expect("bytes"))
            }
            "--load-secs" => o.load_secs = val("--load-secs").parse().expect("--load-secs S"),
            "--scan" => o.scan = true,
            "--events" => o.events = true,
            "--list" => {
                for s in SCENARIOS {
                    println!("{s:18} {}", scenario_meta(s).2);
                }
                std::process::exit(0)
            }
            "-h" | "--help" => usage(),
            other if other.starts_with("--") => {
                eprintln!("unknown flag {other}");
                usage()
            }
            _ => {} // cargo bench may pass a filter; ignore
        }
    }
    for s in &o.only {
        if !SCENARIOS.contains(&s.as_str()) && s != "memory-check" && s != "limits" {
            eprintln!("unknown scenario {s}");
            usage()
        }
    }
    for t in &o.targets {
        if !["berth", "distribution", "berth-pg-s3", "berth-anonymous"].contains(&t.as_str()) {
            eprintln!("unknown target {t}");
            usage()
        }
    }
    if o.load_secs <= 0.0 {
        o.load_secs = (10.0 * o.scale).clamp(1.0, 10.0);
    }
    o.rounds = o.rounds.max(1);
    o
}

/// Sizes after BENCH_SCALE.
#[derive(Clone, Copy)]
struct Sizes {
    big: usize,
    small_count: usize,
    manifest_count: usize,
    tags: usize,
    repos: usize,
    layer: usize,
    memory_check: usize,
}

impl Sizes {
    fn new(o: &Opts) -> Sizes {
        let s = o.scale;
        let mib = |x: f64, min: usize| (((x / MIB as f64).round() as usize) * MIB).max(min);
        let n = |x: f64, min: usize| (x.round() as usize).max(min);
        Sizes {
            big: mib(GIB as f64 * s, 4 * MIB),
            small_count: n(2000.0 * s, 32),
            manifest_count: n(2000.0 * s, 32),
            tags: n(10_000.0 * s, 20),
            repos: n(1000.0 * s, 20),
            layer: mib(64.0 * MIB as f64 * s, MIB),
            memory_check: o
                .memory_check_bytes
                .unwrap_or_else(|| mib(5.0 * GIB as f64 * s, 64 * MIB)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: data, digests, /proc

/// Fast deterministic pseudo-random bytes (splitmix64); content only has to be incompressible.
fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_random(&mut v, seed);
    v
}

fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn nonce() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48) ^ ((std::process::id() as u64) << 32)
}

/// A unique blob of `base.len()` bytes: the shared base with a unique 32-byte head.
fn unique_blob(base: &[u8]) -> (Bytes, String) {
    let mut v = base.to_vec();
    let head = format!("{:032x}", nonce() as u128 * 0x1_0000_0001);
    let n = head.len().min(v.len());
    v[..n].copy_from_slice(&head.as_bytes()[..n]);
    let d = sha256_digest(&v);
    (Bytes::from(v), d)
}

fn clk_tck() -> f64 {
    static T: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        + f.get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
    ticks / clk_tck()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the process's VmHWM to its current RSS (clear_refs 5). False when refused.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Server-side meter around the measured part of a scenario.
struct Meter {
    pid: u32,
    cpu0: f64,
    t0: Instant,
    peak_reset: bool,
}

impl Meter {
    fn start(pid: u32) -> Meter {
        let peak_reset = reset_peak(pid);
        Meter {
            pid,
            cpu0: cpu_secs(pid),
            t0: Instant::now(),
            peak_reset,
        }
    }
    /// (elapsed seconds, server CPU seconds, peak RSS KiB)
    fn stop(&self) -> (f64, f64, u64) {
        let el = self.t0.elapsed().as_secs_f64();
        (
            el,
            cpu_secs(self.pid) - self.cpu0,
            status_kib(self.pid, "VmHWM:"),
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(addr: &str, child: &mut Child, what: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            bail!(
                "{what} exited ({st}) before listening on {addr}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {addr} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn psql(sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
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

// ---------------------------------------------------------------------------------------------
// Servers

struct Target {
    name: String,
    addr: String,
    base: String,
    /// `user:password` the clients log in with (Berth), none for Distribution.
    creds: Option<String>,
    /// HTTP client for this target; sends `Authorization: Basic ...` when `creds` is set.
    c: reqwest::Client,
    /// Credentials and client of the pull scenarios (none for `berth-anonymous`).
    pull_creds: Option<String>,
    pull_c: reqwest::Client,
    pid: u32,
    child: Child,
    aux: Vec<Child>,
    database: Option<String>,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Target {
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

fn start_target(name: &str, o: &Opts) -> Result<Target> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("berth-bench-{name}-"))
        .tempdir_in(&o.tmp)?;
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)?;
    let mut aux = Vec::new();
    let mut database = None;
    let mut cmd;
    match name {
        "distribution" => {
            // The shipped default config's blob descriptor cache is kept; access logs are off
            // (Berth runs at warn level too), so neither pays for per-request logging.
            let cfg = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            );
            std::fs::write(dir.join("config.yml"), cfg)?;
            cmd = Command::new(&o.reference_bin);
            cmd.arg("serve").arg(dir.join("config.yml"));
        }
        "berth" | "berth-pg-s3" | "berth-anonymous" => {
            cmd = Command::new(&o.berth_bin);
            cmd.args(["serve", "--listen", &addr, "--data-dir"])
                .arg(dir.join("data"))
                .env_remove("RUST_LOG")
                .env("BERTH_LOG_LEVEL", "warn");
            for (k, _) in std::env::vars() {
                if k.starts_with("BERTH_") && k != "BERTH_BIN" {
                    cmd.env_remove(k);
                }
            }
            cmd.env("BERTH_LOG_LEVEL", "warn")
                .env("BERTH_ADMIN_PASSWORD", BERTH_ADMIN_PASSWORD);
            if o.events {
                cmd.env("BERTH_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()));
            }
            if o.scan {
                if !o.trivy.is_file() {
                    bail!(
                        "--scan needs trivy at {} (BENCH_TRIVY; tests/install-clients.sh installs it)",
                        o.trivy.display()
                    );
                }
                let cache = dir.join("trivy-cache");
                trivy_db::build_trivy_cache(&cache);
                cmd.env("BERTH_TRIVY_PATH", &o.trivy)
                    .env("BERTH_TRIVY_CACHE_DIR", &cache)
                    .env("BERTH_TRIVY_OFFLINE", "true");
            }
            if name == "berth-pg-s3" {
                let db = format!("berth_bench_{}_{}", std::process::id(), port);
                psql(&format!("CREATE DATABASE {db}"))?;
                database = Some(db.clone());
                let s3dir = dir.join("s3");
                std::fs::create_dir_all(s3dir.join("bench"))?;
                let s3port = free_port();
                let s3addr = format!("127.0.0.1:{s3port}");
                let s3log = std::fs::File::create(dir.join("s3s.log"))?;
                let mut s3 = Command::new("s3s-fs")
                    .args(["--host", "127.0.0.1", "--port", &s3port.to_string()])
                    .args(["--access-key", S3_AK, "--secret-key", S3_SK])
                    .arg(&s3dir)
                    .stdout(Stdio::null())
                    .stderr(s3log)
                    .spawn()
                    .context("spawn s3s-fs (see tests/install-clients.sh / tests/run.sh)")?;
                wait_listening(&s3addr, &mut s3, "s3s-fs", &dir.join("s3s.log"))?;
                aux.push(s3);
                // Berth refuses PostgreSQL without a secrets key file (replicas share one).
                let key_file = dir.join("secrets.key");
                if !key_file.exists() {
                    let made = Command::new(&o.berth_bin)
                        .args(["secrets", "generate-key", "--out"])
                        .arg(&key_file)
                        .status()
                        .context("run berth secrets generate-key")?;
                    if !made.success() {
                        bail!(
                            "berth secrets generate-key --out {} failed",
                            key_file.display()
                        );
                    }
                }
                cmd.env("BERTH_AUTH_SECRETS_KEY_FILE", &key_file);
                cmd.env(
                    "BERTH_DATABASE_URL",
                    format!("postgres://postgres@127.0.0.1:5432/{db}"),
                )
                .env("BERTH_STORAGE_URL", "s3://bench")
                .env("BERTH_STORAGE_S3_ENDPOINT", format!("http://{s3addr}"))
                .env("BERTH_STORAGE_S3_ACCESS_KEY_ID", S3_AK)
                .env("BERTH_STORAGE_S3_SECRET_ACCESS_KEY", S3_SK)
                .env("BERTH_STORAGE_S3_ALLOW_HTTP", "true")
                .env("BERTH_STORAGE_S3_REGION", "us-east-1");
            }
        }
        other => bail!("unknown target {other}"),
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {name}"))?;
    if let Err(e) = wait_listening(&addr, &mut child, name, &log_path) {
        let _ = child.kill();
        for c in &mut aux {
            let _ = c.kill();
        }
        if let Some(db) = &database {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
        return Err(e);
    }
    let creds =
        (name != "distribution").then(|| format!("{BERTH_ADMIN_USER}:{BERTH_ADMIN_PASSWORD}"));
    // berth-anonymous pulls without credentials under a registry policy that lets anyone pull
    // (set in `setup`), for comparison with berth's authenticated pulls.
    let pull_creds = if name == "berth-anonymous" {
        None
    } else {
        creds.clone()
    };
    Ok(Target {
        name: name.into(),
        base: format!("http://{addr}"),
        c: client(creds.as_deref()),
        pull_c: client(pull_creds.as_deref()),
        creds,
        pull_creds,
        addr,
        pid: child.id(),
        child,
        aux,
        database,
        dir,
        _tmp: tmp,
    })
}

// ---------------------------------------------------------------------------------------------
// OCI client operations (reqwest)

/// `Authorization` header value for HTTP Basic with `user:password`.
fn basic_auth(creds: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// A client that sends `Authorization: Basic ...` with every request when `creds`
/// (`user:password`) is given.
fn client(creds: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(creds) = creds {
        let mut value = reqwest::header::HeaderValue::from_str(&basic_auth(creds)).unwrap();
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn abs(t: &Target, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_owned()
    } else {
        format!("{}{}", t.base, loc)
    }
}

fn with_query(url: &str, kv: &str) -> String {
    format!("{url}{}{kv}", if url.contains('?') { '&' } else { '?' })
}

async fn check(resp: reqwest::Response, what: &str, want: u16) -> Result<reqwest::Response> {
    if resp.status().as_u16() != want {
        let st = resp.status();
        let body = resp.text().await.unwrap_or_default();
        bail!(
            "{what}: HTTP {st} (wanted {want}): {}",
            &body[..body.len().min(400)]
        );
    }
    Ok(resp)
}

fn location(resp: &reqwest::Response, t: &Target) -> Result<String> {
    let loc = resp
        .headers()
        .get("location")
        .ok_or_else(|| anyhow!("no Location header"))?
        .to_str()?;
    Ok(abs(t, loc))
}

async fn start_upload(c: &reqwest::Client, t: &Target, repo: &str) -> Result<String> {
    let r = c
        .post(format!("{}/v2/{repo}/blobs/uploads/", t.base))
        .send()
        .await?;
    let r = check(r, "POST upload", 202).await?;
    location(&r, t)
}

/// POST + PUT with the whole body (monolithic). Returns the number of requests made.
async fn upload_monolithic(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    data: Bytes,
    digest: &str,
) -> Result<usize> {
    let loc = start_upload(c, t, repo).await?;
    let r = c
        .put(with_query(&loc, &format!("digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await?;
    check(r, "PUT monolithic", 201).await?;
    Ok(2)
}

async fn upload_chunked(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    data: Bytes,
    digest: &str,
    chunk: usize,
) -> Result<usize> {
    let mut loc = start_upload(c, t, repo).await?;
    let mut reqs = 1;
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let r = c
            .patch(&loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{}-{}", off, end - 1))
            .body(data.slice(off..end))
            .send()
            .await?;
        let r = check(r, "PATCH chunk", 202).await?;
        loc = location(&r, t)?;
        off = end;
        reqs += 1;
    }
    let r = c
        .put(with_query(&loc, &format!("digest={digest}")))
        .body(Bytes::new())
        .send()
        .await?;
    check(r, "PUT close chunked", 201).await?;
    Ok(reqs + 1)
}

/// One PATCH with a chunked-encoding body, as docker pushes, then the closing PUT.
async fn upload_streamed(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    body: reqwest::Body,
    digest: impl FnOnce() -> String,
) -> Result<usize> {
    let loc = start_upload(c, t, repo).await?;
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await?;
    let r = check(r, "PATCH streamed", 202).await?;
    let loc = location(&r, t)?;
    let r = c
        .put(with_query(&loc, &format!("digest={}", digest())))
        .body(Bytes::new())
        .send()
        .await?;
    check(r, "PUT close streamed", 201).await?;
    Ok(3)
}

fn slices_body(data: &Bytes, piece: usize) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..data.len())
        .step_by(piece)
        .map(|o| Ok(data.slice(o..(o + piece).min(data.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(pieces))
}

async fn put_blob(c: &reqwest::Client, t: &Target, repo: &str, data: &[u8]) -> Result<String> {
    let d = sha256_digest(data);
    upload_monolithic(c, t, repo, Bytes::copy_from_slice(data), &d).await?;
    Ok(d)
}

async fn put_manifest(
    c: &reqwest::Client,
    t: &Target,
    repo: &str,
    reference: impl std::fmt::Display,
    body: Bytes,
) -> Result<()> {
    let r = c
        .put(format!("{}/v2/{repo}/manifests/{reference}", t.base))
        .header("content-type", OCI_MANIFEST)
        .body(body)
        .send()
        .await?;
    check(r, "PUT manifest", 201).await?;
    Ok(())
}

fn manifest_json(
    config: (&str, usize),
    layers: &[(String, usize)],
    annotation: Option<&str>,
) -> Bytes {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s
        })).collect::<Vec<_>>(),
    });
    if let Some(a) = annotation {
        m["annotations"] = json!({"org.example.bench": a});
    }
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

/// GETs a list endpoint following `Link: <...>; rel="next"`; returns (pages, entries).
async fn list_all(
    c: &reqwest::Client,
    t: &Target,
    first: &str,
    key: &str,
    follow: bool,
) -> Result<(usize, usize)> {
    let mut url = format!("{}{first}", t.base);
    let (mut pages, mut entries) = (0, 0);
    loop {
        let r = c.get(&url).send().await?;
        let r = check(r, "list", 200).await?;
        let next = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| Some(l.split('<').nth(1)?.split('>').next()?.to_owned()));
        let v: Value = r.json().await?;
        entries += v[key].as_array().map(|a| a.len()).unwrap_or(0);
        pages += 1;
        match next {
            Some(n) if follow => url = abs(t, &n),
            _ => return Ok((pages, entries)),
        }
    }
}

async fn download(c: &reqwest::Client, t: &Target, repo: &str, digest: &str) -> Result<usize> {
    let mut r = check(
        c.get(format!("{}/v2/{repo}/blobs/{digest}", t.base))
            .send()
            .await?,
        "GET blob",
        200,
    )
    .await?;
    let mut n = 0;
    while let Some(ch) = r.chunk().await? {
        n += ch.len();
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 keep-alive load generator (much cheaper per request than reqwest, so the client
// takes less of the 2 shared cores away from the server under test).

struct LoadStats {
    requests: u64,
    errors: u64,
    secs: f64,
    lat_us: Vec<u32>,
}

fn find_crlf2(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn load_conn(
    addr: String,
    req: Arc<Vec<u8>>,
    head: bool,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64, Vec<u32>)> {
    let mut lat = Vec::with_capacity(1 << 16);
    let (mut ok, mut err) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    'conn: while !stop.load(Ordering::Relaxed) {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let mut filled = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            s.write_all(&req).await?;
            let hdr_end = loop {
                if let Some(p) = find_crlf2(&buf[..filled]) {
                    break p + 4;
                }
                if filled == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
                let n = s.read(&mut buf[filled..]).await?;
                if n == 0 {
                    continue 'conn;
                }
                filled += n;
            };
            let hdr = std::str::from_utf8(&buf[..hdr_end]).unwrap_or("");
            let status: u16 = hdr
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut clen = None;
            let mut close = false;
            for line in hdr.lines() {
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    clen = v.trim().parse::<usize>().ok();
                } else if l.starts_with("connection:") && l.contains("close") {
                    close = true;
                } else if l.starts_with("transfer-encoding:") && !head {
                    bail!("chunked responses are not supported by the load generator");
                }
            }
            let body = if head || status == 204 || status == 304 {
                0
            } else {
                clen.unwrap_or(0)
            };
            let total = hdr_end + body;
            while filled < total {
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                let n = s.read(&mut buf[filled..]).await?;
                if n == 0 {
                    continue 'conn;
                }
                filled += n;
            }
            buf.copy_within(total..filled, 0);
            filled -= total;
            lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if (200..300).contains(&status) {
                ok += 1;
            } else {
                err += 1;
            }
            if close {
                continue 'conn;
            }
        }
    }
    Ok((ok, err, lat))
}

async fn load(
    t: &Target,
    method: &str,
    path: &str,
    extra_headers: &str,
    conns: usize,
    secs: f64,
) -> Result<LoadStats> {
    let auth = t
        .pull_creds
        .as_deref()
        .map(|c| format!("Authorization: {}\r\n", basic_auth(c)))
        .unwrap_or_default();
    let req = Arc::new(
        format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth-bench\r\n{auth}{extra_headers}\r\n", t.addr)
            .into_bytes(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(load_conn(
                t.addr.clone(),
                req.clone(),
                method == "HEAD",
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut st = LoadStats {
        requests: 0,
        errors: 0,
        secs: 0.0,
        lat_us: Vec::new(),
    };
    for task in tasks {
        let (ok, err, lat) = task.await??;
        st.requests += ok;
        st.errors += err;
        st.lat_us.extend(lat);
    }
    st.secs = t0.elapsed().as_secs_f64();
    st.lat_us.sort_unstable();
    Ok(st)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Skopeo image layouts

/// A ustar header for one regular file.
fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let put = |h: &mut [u8; 512], off: usize, len: usize, s: &str| {
        h[off..off + s.len().min(len)].copy_from_slice(&s.as_bytes()[..s.len().min(len)])
    };
    put(&mut h, 100, 8, "0000644\0");
    put(&mut h, 108, 8, "0000000\0");
    put(&mut h, 116, 8, "0000000\0");
    put(&mut h, 124, 12, &format!("{size:011o}\0"));
    put(&mut h, 136, 12, "00000000000\0");
    put(&mut h, 148, 8, "        ");
    h[156] = b'0';
    put(&mut h, 257, 6, "ustar\0");
    put(&mut h, 263, 2, "00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    put(&mut h, 148, 8, &format!("{sum:06o}\0 "));
    h
}

/// Writes an OCI layout with `layers` random-content uncompressed tar layers of `layer` bytes
/// each (one file per layer); returns total blob bytes.
fn build_layout(dir: &Path, layers: usize, layer: usize, base: &[u8]) -> Result<u64> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let mut descs = Vec::new();
    let mut total = 0u64;
    for i in 0..layers {
        let tmp = blobs.join(format!("tmp-{i}"));
        let mut f = std::io::BufWriter::with_capacity(4 * MIB, std::fs::File::create(&tmp)?);
        let mut h = Sha256::new();
        let mut w = |b: &[u8]| -> Result<()> {
            h.update(b);
            f.write_all(b)?;
            Ok(())
        };
        w(&tar_header(&format!("layer{i}.bin"), layer as u64))?;
        let head = format!("{:032x}", nonce() as u128 * 0x1_0000_0001);
        w(head.as_bytes())?;
        let mut left = layer - head.len();
        let mut off = (i * 7919 * 4096) % base.len().max(1);
        while left > 0 {
            let n = left.min(base.len() - off);
            w(&base[off..off + n])?;
            left -= n;
            off = (off + n) % base.len();
        }
        let pad = (512 - layer % 512) % 512 + 1024;
        w(&vec![0u8; pad])?;
        f.flush()?;
        drop(f);
        let hexd = hex::encode(h.finalize());
        std::fs::rename(&tmp, blobs.join(&hexd))?;
        let size = (512 + layer + pad) as u64;
        total += size;
        descs.push((format!("sha256:{hexd}"), size as usize));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": descs.iter().map(|d| d.0.clone()).collect::<Vec<_>>()},
    }))?;
    let cd = sha256_digest(&config);
    std::fs::write(blobs.join(&cd[7..]), &config)?;
    let manifest = manifest_json((&cd, config.len()), &descs, None);
    let md = sha256_digest(&manifest);
    std::fs::write(blobs.join(&md[7..]), &manifest)?;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))?,
    )?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(total + config.len() as u64 + manifest.len() as u64)
}

fn skopeo(args: &[String]) -> Result<()> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .context("run skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[derive(Clone, Default)]
struct Sample {
    value: f64,
    secs: f64,
    cpu_s: f64,
    bytes: f64,
    requests: f64,
    peak_rss_kib: u64,
    extra: BTreeMap<String, f64>,
}

/// Per-target data made once before the rounds.
#[derive(Default, Clone)]
struct Fixture {
    big_digest: String,
    hot_tag: String,
    head_digest: String,
    mput_config: (String, usize),
    mput_layer: (String, usize),
}

struct Ctx {
    o: Opts,
    sz: Sizes,
    base: Vec<u8>,
    notes: Mutex<Vec<String>>,
    /// The webhook receiver of `--events`.
    hook: Option<LagReceiver>,
}

/// A webhook receiver on its own thread and runtime (so the benchmark's load never delays it):
/// records, per target registry, each event's lag from its recording (the CloudEvent's `time`,
/// in milliseconds) to its receipt.
struct LagReceiver {
    url: String,
    lags: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
}

impl LagReceiver {
    fn start() -> Result<LagReceiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}/", listener.local_addr()?);
        let lags: Arc<Mutex<BTreeMap<String, Vec<f64>>>> = Arc::default();
        let recorded = lags.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(
                    move |uri: axum::http::Uri, body: axum::body::Bytes| {
                        let recorded = recorded.clone();
                        async move {
                            let now = chrono::Utc::now().timestamp_millis() as f64;
                            if let Ok(event) = serde_json::from_slice::<Value>(&body) {
                                let at = event["time"]
                                    .as_str()
                                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                    .map(|t| t.timestamp_millis() as f64);
                                if let Some(at) = at {
                                    recorded
                                        .lock()
                                        .unwrap()
                                        .entry(uri.path().trim_matches('/').to_owned())
                                        .or_default()
                                        .push(now - at);
                                }
                            }
                            axum::http::StatusCode::NO_CONTENT
                        }
                    },
                );
                let _ = axum::serve(listener, app).await;
            });
        });
        Ok(LagReceiver { url, lags })
    }

    /// (events received, p50, p99, max) lag in ms for `target`.
    fn stats(&self, target: &str) -> Option<(usize, f64, f64, f64)> {
        let mut lags = self.lags.lock().unwrap().get(target)?.clone();
        lags.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
        Some((lags.len(), at(0.5), at(0.99), at(1.0)))
    }
}

impl Ctx {
    fn note(&self, s: String) {
        eprintln!("note: {s}");
        let mut n = self.notes.lock().unwrap();
        if !n.contains(&s) {
            n.push(s);
        }
    }
    fn wants(&self, s: &str) -> bool {
        if self.o.memory_check == Some(true) {
            return false;
        }
        self.o.only.is_empty() || self.o.only.iter().any(|x| x == s)
    }
}

async fn run_concurrent<F, Fut>(n: usize, conc: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut s = futures::stream::iter((0..n).map(&f)).buffer_unordered(conc);
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}

async fn setup(ctx: &Ctx, t: &Target) -> Result<Fixture> {
    let c = &t.c;
    let sz = ctx.sz;
    let mut fx = Fixture::default();
    let t0 = Instant::now();
    if ctx.o.scan && t.name.starts_with("berth") {
        let rules = json!({"scanType": "BASIC", "rules": [{"scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]});
        let r = c
            .put(format!("{}/api/v1/registry/scanning-configuration", t.base))
            .json(&rules)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("turning scanning on: {}", r.status());
        }
    }
    if let (Some(hook), true) = (&ctx.hook, t.name.starts_with("berth")) {
        let rule = json!({"name": "every-push", "eventPattern": {"detail": {"action-type": ["PUSH"]}},
            "targets": [{"type": "webhook", "url": format!("{}{}", hook.url, t.name),
                         "format": "cloudevents"}]});
        let r = c
            .post(format!("{}/api/v1/event-rules", t.base))
            .json(&rule)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating the event rule: {}", r.status());
        }
    }
    if t.name == "berth-anonymous" {
        let r = c
            .put(format!("{}/api/v1/registry-policy", t.base))
            .body(ANONYMOUS_PULL_POLICY)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("setting the anonymous-pull registry policy: {}", r.status());
        }
    }
    let needs = |names: &[&str]| names.iter().any(|s| ctx.wants(s));
    if needs(&["download-warm", "download-cold"]) {
        let (data, d) = unique_blob(&ctx.base[..sz.big]);
        upload_monolithic(c, t, "bench/download", data, &d).await?;
        fx.big_digest = d;
    }
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    if needs(&["manifest-get", "blob-head", "manifest-put", "tags-list"]) {
        let cd = put_blob(c, t, "bench/hot", cfg).await?;
        let layer = random_bytes(4096, nonce());
        let ld = put_blob(c, t, "bench/hot", &layer).await?;
        let m = manifest_json((&cd, cfg.len()), &[(ld.clone(), layer.len())], None);
        put_manifest(c, t, "bench/hot", "latest", m).await?;
        fx.hot_tag = "latest".into();
        fx.head_digest = ld.clone();
        for repo in ["bench/mput", "bench/tags"] {
            put_blob(c, t, repo, cfg).await?;
            put_blob(c, t, repo, &layer).await?;
        }
        fx.mput_config = (cd, cfg.len());
        fx.mput_layer = (ld, layer.len());
    }
    if needs(&["tags-list"]) {
        let m = manifest_json(
            (&fx.mput_config.0, fx.mput_config.1),
            std::slice::from_ref(&fx.mput_layer),
            Some("tags"),
        );
        run_concurrent(sz.tags, 16, |i| {
            put_manifest(c, t, "bench/tags", format!("tag-{i:05}"), m.clone())
        })
        .await?;
    }
    if needs(&["catalog-page", "catalog-full"]) {
        run_concurrent(sz.repos, 16, |i| async move {
            let repo = format!("catalog/repo-{i:04}");
            let cd = put_blob(c, t, &repo, cfg).await?;
            put_manifest(
                c,
                t,
                &repo,
                "v1",
                manifest_json((&cd, cfg.len()), &[], None),
            )
            .await
        })
        .await?;
    }
    eprintln!("  setup {}: {:.1} s", t.name, t0.elapsed().as_secs_f64());
    Ok(fx)
}

fn drop_caches() -> Result<()> {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "1").context("write /proc/sys/vm/drop_caches")?;
    Ok(())
}

/// Evicts the page cache of every file under `dir` (posix_fadvise DONTNEED via dd iflag=nocache):
/// the fallback when drop_caches is refused.
fn evict_dir(dir: &Path) {
    let _ = Command::new("sync").status();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let _ = Command::new("dd")
                    .arg(format!("if={}", p.display()))
                    .args(["iflag=nocache", "count=0", "status=none"])
                    .status();
            }
        }
    }
}

async fn run_scenario(
    ctx: &Ctx,
    t: &Target,
    fx: &Fixture,
    sc: &str,
    round: usize,
) -> Result<Sample> {
    let c = &t.c;
    let sz = ctx.sz;
    let mut s = Sample::default();
    match sc {
        "upload-monolithic" | "upload-chunked" | "upload-streamed" => {
            let (data, d) = unique_blob(&ctx.base[..sz.big]);
            let len = data.len();
            let repo = format!("bench/{sc}");
            let m = Meter::start(t.pid);
            let reqs = match sc {
                "upload-monolithic" => upload_monolithic(c, t, &repo, data, &d).await?,
                "upload-chunked" => upload_chunked(c, t, &repo, data, &d, CHUNK).await?,
                _ => upload_streamed(c, t, &repo, slices_body(&data, MIB), || d.clone()).await?,
            };
            let (el, cpu, rss) = m.stop();
            s = Sample {
                value: len as f64 / el / 1e6,
                secs: el,
                cpu_s: cpu,
                bytes: len as f64,
                requests: reqs as f64,
                peak_rss_kib: rss,
                ..s
            };
        }
        "download-warm" | "download-cold" => {
            let c = &t.pull_c;
            if sc == "download-warm" {
                download(c, t, "bench/download", &fx.big_digest).await?;
            } else if let Err(e) = drop_caches() {
                ctx.note(format!(
                    "download-cold: drop_caches refused ({e:#}); evicted the data dir's files with posix_fadvise(DONTNEED) instead"
                ));
                evict_dir(&t.dir);
            }
            let m = Meter::start(t.pid);
            let n = download(c, t, "bench/download", &fx.big_digest).await?;
            let (el, cpu, rss) = m.stop();
            s = Sample {
                value: n as f64 / el / 1e6,
                secs: el,
                cpu_s: cpu,
                bytes: n as f64,
                requests: 1.0,
                peak_rss_kib: rss,
                ..s
            };
        }
        "small-blobs" => {
            let blobs: Vec<(Bytes, String)> = (0..sz.small_count)
                .map(|_| {
                    let b = random_bytes(4096, nonce());
                    let d = sha256_digest(&b);
                    (Bytes::from(b), d)
                })
                .collect();
            let blobs = &blobs;
            let m = Meter::start(t.pid);
            run_concurrent(blobs.len(), 16, |i| async move {
                upload_monolithic(c, t, "bench/small", blobs[i].0.clone(), &blobs[i].1)
                    .await
                    .map(|_| ())
            })
            .await?;
            let (el, cpu, rss) = m.stop();
            let n = blobs.len() as f64;
            s = Sample {
                value: n / el,
                secs: el,
                cpu_s: cpu,
                bytes: n * 4096.0,
                requests: 2.0 * n,
                peak_rss_kib: rss,
                ..s
            };
        }
        "manifest-put" => {
            let ms: Vec<Bytes> = (0..sz.manifest_count)
                .map(|i| {
                    manifest_json(
                        (&fx.mput_config.0, fx.mput_config.1),
                        std::slice::from_ref(&fx.mput_layer),
                        Some(&format!("{}-{round}-{i}", nonce())),
                    )
                })
                .collect();
            let ms = &ms;
            let m = Meter::start(t.pid);
            run_concurrent(ms.len(), 16, |i| {
                put_manifest(
                    c,
                    t,
                    "bench/mput",
                    format!("r{round}-{i:05}"),
                    ms[i].clone(),
                )
            })
            .await?;
            let (el, cpu, rss) = m.stop();
            let n = ms.len() as f64;
            s = Sample {
                value: n / el,
                secs: el,
                cpu_s: cpu,
                requests: n,
                peak_rss_kib: rss,
                ..s
            };
        }
        "manifest-get" | "blob-head" => {
            let (method, path, hdrs) = if sc == "manifest-get" {
                (
                    "GET",
                    format!("/v2/bench/hot/manifests/{}", fx.hot_tag),
                    format!("Accept: {ACCEPT}\r\n"),
                )
            } else {
                (
                    "HEAD",
                    format!("/v2/bench/hot/blobs/{}", fx.head_digest),
                    String::new(),
                )
            };
            load(
                t,
                method,
                &path,
                &hdrs,
                64,
                (ctx.o.load_secs / 5.0).max(0.5),
            )
            .await?; // warm-up
            let m = Meter::start(t.pid);
            let st = load(t, method, &path, &hdrs, 64, ctx.o.load_secs).await?;
            let (_, cpu, rss) = m.stop();
            if st.errors > 0 {
                ctx.note(format!(
                    "{sc} on {}: {} non-2xx responses",
                    t.name, st.errors
                ));
            }
            s = Sample {
                value: st.requests as f64 / st.secs,
                secs: st.secs,
                cpu_s: cpu,
                requests: (st.requests + st.errors) as f64,
                peak_rss_kib: rss,
                ..s
            };
            s.extra.insert("p50_ms".into(), pct(&st.lat_us, 0.50));
            s.extra.insert("p99_ms".into(), pct(&st.lat_us, 0.99));
            s.extra.insert("errors".into(), st.errors as f64);
        }
        "tags-list" | "catalog-page" | "catalog-full" => {
            let (path, key, follow) = match sc {
                "tags-list" => ("/v2/bench/tags/tags/list", "tags", true),
                "catalog-page" => ("/v2/_catalog?n=100", "repositories", false),
                _ => ("/v2/_catalog?n=1000", "repositories", true),
            };
            // Tags are pulled (anonymously on berth-anonymous); the catalog needs a login.
            let c = if sc == "tags-list" { &t.pull_c } else { c };
            let (_, entries) = list_all(c, t, path, key, follow).await?; // warm-up
            let reps = 20;
            let mut times = Vec::new();
            let mut pages = 0;
            let m = Meter::start(t.pid);
            for _ in 0..reps {
                let t0 = Instant::now();
                pages = list_all(c, t, path, key, follow).await?.0;
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            let (el, cpu, rss) = m.stop();
            s = Sample {
                value: median(&times),
                secs: el,
                cpu_s: cpu,
                requests: (reps * pages) as f64,
                peak_rss_kib: rss,
                ..s
            };
            s.extra.insert("entries".into(), entries as f64);
            s.extra.insert("pages".into(), pages as f64);
            let want = match sc {
                "tags-list" => sz.tags,
                "catalog-page" => 100.min(sz.repos),
                _ => sz.repos,
            };
            if entries < want {
                ctx.note(format!(
                    "{sc} on {}: only {entries} entries listed (expected at least {want})",
                    t.name
                ));
            }
        }
        "skopeo-push" | "skopeo-pull" => {
            // Push and pull run together (the pull needs the pushed image); each is metered.
            bail!("internal: skopeo scenarios run through run_skopeo");
        }
        other => bail!("unknown scenario {other}"),
    }
    Ok(s)
}

/// Pushes a fresh 5-layer image with skopeo, then pulls it; returns (push, pull) samples.
async fn run_skopeo(ctx: &Ctx, t: &Target, round: usize) -> Result<(Sample, Sample)> {
    let work = tempfile::Builder::new()
        .prefix("berth-bench-skopeo-")
        .tempdir_in(&ctx.o.tmp)?;
    let layout = work.path().join("layout");
    let total = build_layout(&layout, 5, ctx.sz.layer, &ctx.base)?;
    let image = format!("docker://{}/bench/skopeo-{round}:latest", t.addr);
    let common = ["--insecure-policy".to_string(), "--retry-times=0".into()];
    let creds = |flag: &str| match &t.creds {
        Some(c) => vec![flag.to_string(), c.clone()],
        None => vec![],
    };
    let push: Vec<String> = [
        "copy".to_string(),
        "--quiet".into(),
        "--preserve-digests".into(),
        "--dest-tls-verify=false".into(),
    ]
    .into_iter()
    .chain(creds("--dest-creds"))
    .chain(common.iter().cloned())
    .chain([format!("oci:{}:latest", layout.display()), image.clone()])
    .collect();
    let m = Meter::start(t.pid);
    skopeo(&push)?;
    let (el, cpu, rss) = m.stop();
    let ps = Sample {
        value: el,
        secs: el,
        cpu_s: cpu,
        bytes: total as f64,
        requests: 0.0,
        peak_rss_kib: rss,
        ..Default::default()
    };
    let out = work.path().join("pulled");
    let pull: Vec<String> = [
        "copy".to_string(),
        "--quiet".into(),
        "--preserve-digests".into(),
        "--src-tls-verify=false".into(),
    ]
    .into_iter()
    .chain(
        t.pull_creds
            .iter()
            .flat_map(|c| ["--src-creds".to_string(), c.clone()]),
    )
    .chain(common.iter().cloned())
    .chain([image, format!("oci:{}:latest", out.display())])
    .collect();
    let m = Meter::start(t.pid);
    skopeo(&pull)?;
    let (el, cpu, rss) = m.stop();
    let pl = Sample {
        value: el,
        secs: el,
        cpu_s: cpu,
        bytes: total as f64,
        requests: 0.0,
        peak_rss_kib: rss,
        ..Default::default()
    };
    // The pulled layers must be the pushed ones (uncompressed, digests preserved).
    let pulled: Value = serde_json::from_slice(&std::fs::read(out.join("index.json"))?)?;
    let pushed: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    if pulled["manifests"][0]["digest"] != pushed["manifests"][0]["digest"] {
        ctx.note(format!("skopeo on {}: pulled manifest digest differs from the pushed one (layers recompressed?)", t.name));
    }
    Ok((ps, pl))
}

// ---------------------------------------------------------------------------------------------
// Machine limits

fn machine_limits(ctx: &Ctx) -> Result<Value> {
    // SHA-256, one core.
    let buf = &ctx.base[..(256 * MIB).min(ctx.base.len())];
    let reps = (ctx.sz.big / buf.len()).clamp(1, 4);
    let t0 = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(Sha256::digest(buf));
    }
    let sha = (reps * buf.len()) as f64 / t0.elapsed().as_secs_f64() / 1e6;

    // Sequential write of the big-blob size, then fsync, on the benchmark's temp disk.
    let path = ctx
        .o
        .tmp
        .join(format!("berth-bench-disk-{}", std::process::id()));
    let t0 = Instant::now();
    {
        let mut f = std::fs::File::create(&path)?;
        for ch in ctx.base[..ctx.sz.big].chunks(4 * MIB) {
            f.write_all(ch)?;
        }
        f.sync_all()?;
    }
    let disk = ctx.sz.big as f64 / t0.elapsed().as_secs_f64() / 1e6;
    let _ = std::fs::remove_file(&path);

    // Loopback TCP, one stream, 1 MiB writes.
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let n = (4 * ctx.sz.big) as u64;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = l.accept()?;
        let mut b = vec![0u8; MIB];
        let mut got = 0u64;
        loop {
            let k = s.read(&mut b)?;
            if k == 0 {
                return Ok(got);
            }
            got += k as u64;
        }
    });
    let t0 = Instant::now();
    {
        let mut s = TcpStream::connect(addr)?;
        let chunk = &ctx.base[..MIB];
        let mut sent = 0u64;
        while sent < n {
            s.write_all(chunk)?;
            sent += chunk.len() as u64;
        }
    }
    let got = reader.join().unwrap()?;
    let tcp = got as f64 / t0.elapsed().as_secs_f64() / 1e6;
    Ok(json!({
        "sha256_single_core_mb_s": sha,
        "disk_seq_write_fsync_mb_s": disk,
        "loopback_tcp_mb_s": tcp,
        "upload_limit_mb_s": sha.min(disk),
    }))
}

// ---------------------------------------------------------------------------------------------
// Memory check: one streamed PATCH of a large blob, sampling the server's RSS.

async fn memory_check(ctx: &Ctx, t: &Target) -> Result<Value> {
    let total = ctx.sz.memory_check;
    let piece = MIB;
    let base = Bytes::copy_from_slice(&ctx.base[..(64 * MIB).min(ctx.base.len())]);
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let head = Bytes::from(format!("{:032x}", nonce() as u128 * 0x1_0000_0001).into_bytes());
    let h2 = hasher.clone();
    let stream = futures::stream::unfold(0usize, move |sent| {
        let base = base.clone();
        let head = head.clone();
        let h = h2.clone();
        async move {
            if sent >= total {
                return None;
            }
            let b = if sent == 0 {
                head
            } else {
                let off = sent % base.len();
                let n = piece.min(total - sent).min(base.len() - off);
                base.slice(off..off + n)
            };
            h.lock().unwrap().update(&b);
            let n = b.len();
            Some((Ok::<_, std::io::Error>(b), sent + n))
        }
    });
    let baseline = status_kib(t.pid, "VmRSS:");
    let pid = t.pid;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !stop2.load(Ordering::Relaxed) {
            peak = peak.max(status_kib(pid, "VmRSS:"));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let m = Meter::start(t.pid);
    let hz = hasher.clone();
    upload_streamed(
        &t.c,
        t,
        "bench/memory-check",
        reqwest::Body::wrap_stream(stream),
        move || {
            format!(
                "sha256:{}",
                hex::encode(std::mem::take(&mut *hz.lock().unwrap()).finalize())
            )
        },
    )
    .await?;
    let (el, cpu, hwm) = m.stop();
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().unwrap();
    Ok(json!({
        "target": t.name,
        "bytes": total,
        "secs": el,
        "mb_s": total as f64 / el / 1e6,
        "server_cpu_s_per_gb": cpu / (total as f64 / 1e9),
        "rss_before_mib": baseline as f64 / 1024.0,
        "peak_rss_mib": hwm.max(sampled) as f64 / 1024.0,
        "peak_rss_sampled_mib": sampled as f64 / 1024.0,
        "peak_is_since_upload_start": m.peak_reset,
    }))
}

// ---------------------------------------------------------------------------------------------
// Reporting

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn minmax(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        })
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn summarize(samples: &[Sample], per_gb_scenario: bool) -> Value {
    let vals: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let (lo, hi) = minmax(&vals);
    let med = median(&vals);
    let per_gb: Vec<f64> = samples
        .iter()
        .filter(|s| per_gb_scenario && s.bytes > 0.0)
        .map(|s| s.cpu_s / (s.bytes / 1e9))
        .collect();
    let per_req: Vec<f64> = samples
        .iter()
        .filter(|s| s.requests > 0.0)
        .map(|s| s.cpu_s / s.requests * 1e3)
        .collect();
    let mut extra = serde_json::Map::new();
    if let Some(s0) = samples.first() {
        for k in s0.extra.keys() {
            let v: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.extra.get(k).copied())
                .collect();
            extra.insert(k.clone(), json!(median(&v)));
        }
    }
    json!({
        "median": med,
        "min": lo,
        "max": hi,
        "spread_pct": if med.is_finite() && med != 0.0 { (hi - lo) / med * 100.0 } else { f64::NAN },
        "samples": vals,
        "secs": median(&samples.iter().map(|s| s.secs).collect::<Vec<_>>()),
        "server_cpu_s": median(&samples.iter().map(|s| s.cpu_s).collect::<Vec<_>>()),
        "server_cpu_s_per_gb": if per_gb.is_empty() { Value::Null } else { json!(median(&per_gb)) },
        "server_cpu_ms_per_req": if per_req.is_empty() { Value::Null } else { json!(median(&per_req)) },
        "peak_rss_mib": samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        "extra": extra,
    })
}

fn machine_info() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mem = status_like("/proc/meminfo", "MemTotal:") / 1024;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%dT%H:%M:%SZ")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dist = Command::new("docker-registry")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "date": date,
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_mib": mem,
        "kernel": kernel,
        "distribution": dist,
    })
}

fn status_like(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn print_report(scen: &[(String, Value)], target_names: &[String]) {
    let has = |n: &str| target_names.iter().any(|t| t == n);
    println!();
    println!("== Throughput / latency: median [min..max] over rounds; ratio = Berth vs Distribution, >1 means Berth is better");
    print!(
        "{:18} {:8} {:>26} {:>26} {:>7}",
        "scenario", "unit", "berth", "distribution", "ratio"
    );
    if has("berth-pg-s3") {
        print!(" {:>26}", "berth-pg-s3");
    }
    if has("berth-anonymous") {
        print!(" {:>26} {:>9}", "berth-anonymous", "auth/anon");
    }
    println!();
    let cell = |v: &Value| -> String {
        if v.is_null() {
            return "-".into();
        }
        format!(
            "{} [{}..{}]",
            fmt_num(v["median"].as_f64().unwrap_or(f64::NAN)),
            fmt_num(v["min"].as_f64().unwrap_or(f64::NAN)),
            fmt_num(v["max"].as_f64().unwrap_or(f64::NAN))
        )
    };
    for (name, s) in scen {
        let (unit, _, _) = scenario_meta(name);
        print!(
            "{:18} {:8} {:>26} {:>26} {:>7}",
            name,
            unit,
            cell(&s["targets"]["berth"]),
            cell(&s["targets"]["distribution"]),
            s["ratio"]
                .as_f64()
                .map(|r| format!("{r:.2}x"))
                .unwrap_or("-".into())
        );
        if has("berth-pg-s3") {
            print!(" {:>26}", cell(&s["targets"]["berth-pg-s3"]));
        }
        if has("berth-anonymous") {
            let anon = &s["targets"]["berth-anonymous"];
            // Authenticated berth relative to anonymous pulls, >1 means faster with auth.
            let (_, higher_better, _) = scenario_meta(name);
            let ratio = match (
                s["targets"]["berth"]["median"].as_f64(),
                anon["median"].as_f64(),
            ) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                    format!("{:.2}x", if higher_better { a / b } else { b / a })
                }
                _ => "-".into(),
            };
            print!(" {:>26} {:>9}", cell(anon), ratio);
        }
        println!();
    }
    println!();
    if scen
        .iter()
        .any(|(n, _)| n == "manifest-get" || n == "blob-head")
    {
        println!("== Latency under load (median over rounds): p50 / p99 in ms");
    }
    for (name, s) in scen {
        if s["targets"]
            .as_object()
            .map(|m| m.values().any(|v| !v["extra"]["p99_ms"].is_null()))
            == Some(true)
        {
            print!("{name:18}");
            for t in target_names {
                let v = &s["targets"][t.as_str()]["extra"];
                print!(
                    "  {t}: {} / {}",
                    fmt_num(v["p50_ms"].as_f64().unwrap_or(f64::NAN)),
                    fmt_num(v["p99_ms"].as_f64().unwrap_or(f64::NAN))
                );
            }
            println!();
        }
    }
    println!();
    println!("== Server cost (median): CPU s/GB for byte scenarios, CPU ms/request otherwise; peak RSS MiB (max over rounds)");
    print!("{:18}", "scenario");
    for t in target_names {
        print!(" {:>24}", format!("{t} cpu | rss"));
    }
    println!();
    for (name, s) in scen {
        print!("{name:18}");
        for t in target_names {
            let v = &s["targets"][t.as_str()];
            let cpu = if let Some(g) = v["server_cpu_s_per_gb"].as_f64() {
                format!("{} s/GB", fmt_num(g))
            } else if let Some(r) = v["server_cpu_ms_per_req"].as_f64() {
                format!("{} ms/req", fmt_num(r))
            } else {
                "-".into()
            };
            print!(
                " {:>24}",
                format!(
                    "{cpu} | {}",
                    fmt_num(v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN))
                )
            );
        }
        println!();
    }
}

// ---------------------------------------------------------------------------------------------

fn find_berth(o: &mut Opts) -> Result<()> {
    if o.berth_bin.as_os_str().is_empty() {
        // `cargo bench` builds the package's binaries (bench profile = release) before running
        // a bench, so this is the release server built from the current sources.
        o.berth_bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    }
    if !o.berth_bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release --bin berth` or set BERTH_BIN",
            o.berth_bin.display()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut o = parse_opts();
    find_berth(&mut o)?;
    let sz = Sizes::new(&o);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base_len = sz.big.max(64 * MIB).max(sz.layer);
    eprintln!(
        "berth-bench: rounds={} scale={} big={} MiB small={} manifests={} tags={} repos={} layer={} MiB load={}s berth={}",
        o.rounds, o.scale, sz.big / MIB, sz.small_count, sz.manifest_count, sz.tags, sz.repos, sz.layer / MIB, o.load_secs, o.berth_bin.display()
    );
    let ctx = Ctx {
        sz,
        base: random_bytes(base_len, 42),
        notes: Mutex::new(Vec::new()),
        hook: if o.events {
            Some(LagReceiver::start()?)
        } else {
            None
        },
        o,
    };
    let mut report = json!({
        "machine": machine_info(),
        "config": {"rounds": ctx.o.rounds, "scale": ctx.o.scale, "big_blob_bytes": sz.big, "small_blobs": sz.small_count,
                   "manifest_puts": sz.manifest_count, "tags": sz.tags, "repositories": sz.repos, "layer_bytes": sz.layer,
                   "load_secs": ctx.o.load_secs, "load_connections": 64, "upload_concurrency": 16, "chunk_bytes": CHUNK,
                   "berth_bin": ctx.o.berth_bin.display().to_string()},
    });

    let only_memory = ctx.o.memory_check == Some(true);
    if !only_memory && (ctx.o.only.is_empty() || ctx.o.only.iter().any(|s| s == "limits")) {
        eprintln!("measuring machine limits...");
        let l = machine_limits(&ctx)?;
        eprintln!("  {l}");
        report["limits"] = l;
    }

    let scenarios: Vec<&str> = SCENARIOS.iter().copied().filter(|s| ctx.wants(s)).collect();
    let run_memory = match ctx.o.memory_check {
        Some(v) => v,
        None => ctx.o.only.is_empty() || ctx.o.only.iter().any(|s| s == "memory-check"),
    };
    let mut target_names: Vec<String> = ctx.o.targets.clone();
    if only_memory {
        target_names.retain(|t| t != "distribution");
    }
    let mut targets: Vec<(Target, Fixture)> = Vec::new();
    if !scenarios.is_empty() || run_memory {
        for name in &target_names {
            match start_target(name, &ctx.o) {
                Ok(t) => {
                    eprintln!("started {name} on {} (pid {})", t.addr, t.pid);
                    targets.push((t, Fixture::default()));
                }
                Err(e) if name == "berth-pg-s3" => ctx.note(format!("berth-pg-s3 skipped: {e:#}")),
                Err(e) => return Err(e),
            }
        }
    }
    target_names = targets.iter().map(|(t, _)| t.name.clone()).collect();
    if !reset_peak(std::process::id()) {
        ctx.note("clear_refs refused: peak RSS is since server start, not per scenario".into());
    }

    let mut results: BTreeMap<(String, String), Vec<Sample>> = BTreeMap::new();
    if !scenarios.is_empty() {
        for (t, fx) in &mut targets {
            *fx = rt
                .block_on(setup(&ctx, t))
                .with_context(|| format!("setup on {}", t.name))?;
        }
        for round in 0..ctx.o.rounds {
            eprintln!("round {}/{}", round + 1, ctx.o.rounds);
            for (si, sc) in scenarios.iter().enumerate() {
                if *sc == "skopeo-pull" && scenarios.contains(&"skopeo-push") {
                    continue; // measured together with skopeo-push
                }
                // Alternate which registry goes first, per round and per scenario.
                let n = targets.len();
                for k in 0..n {
                    let (t, fx) = &targets[(k + round + si) % n];
                    let aux_cpu = || t.aux.iter().map(|c| cpu_secs(c.id())).sum::<f64>();
                    let aux0 = aux_cpu();
                    let r = if sc.starts_with("skopeo") {
                        rt.block_on(run_skopeo(&ctx, t, round))
                            .map(|(a, b)| vec![("skopeo-push", a), ("skopeo-pull", b)])
                    } else {
                        rt.block_on(run_scenario(&ctx, t, fx, sc, round))
                            .map(|s| vec![(*sc, s)])
                    };
                    match r {
                        Ok(v) => {
                            let aux = aux_cpu() - aux0;
                            for (name, mut s) in v {
                                if !t.aux.is_empty() {
                                    // s3s-fs CPU over the whole step (skopeo: push + pull).
                                    s.extra.insert("s3s_fs_cpu_s".into(), aux);
                                }
                                if !scenarios.contains(&name) {
                                    continue;
                                }
                                eprintln!(
                                    "  {name:18} {:12} {:>10} {:8}  cpu {:.2}s  rss {:.1} MiB",
                                    t.name,
                                    fmt_num(s.value),
                                    scenario_meta(name).0,
                                    s.cpu_s,
                                    s.peak_rss_kib as f64 / 1024.0
                                );
                                results
                                    .entry((name.to_string(), t.name.clone()))
                                    .or_default()
                                    .push(s);
                            }
                        }
                        Err(e) => ctx.note(format!(
                            "{sc} on {} round {}: FAILED: {e:#}",
                            t.name,
                            round + 1
                        )),
                    }
                }
            }
        }
    }

    let mut scen_out = Vec::new();
    for sc in &scenarios {
        let (unit, higher, desc) = scenario_meta(sc);
        let mut tv = serde_json::Map::new();
        for tn in &target_names {
            if let Some(s) = results.get(&(sc.to_string(), tn.clone())) {
                tv.insert(
                    tn.clone(),
                    summarize(s, unit == "MB/s" || sc.starts_with("skopeo")),
                );
            }
        }
        let med = |n: &str| tv.get(n).and_then(|v| v["median"].as_f64());
        let ratio = match (med("berth"), med("distribution")) {
            (Some(b), Some(d)) if b > 0.0 && d > 0.0 => Some(if higher { b / d } else { d / b }),
            _ => None,
        };
        scen_out.push((
            sc.to_string(),
            json!({"name": sc, "unit": unit, "higher_is_better": higher, "description": desc, "targets": tv, "ratio": ratio}),
        ));
    }
    if !scen_out.is_empty() {
        print_report(&scen_out, &target_names);
    }
    report["scenarios"] = Value::Array(scen_out.iter().map(|(_, v)| v.clone()).collect());

    if run_memory {
        let mut mc = Vec::new();
        for (t, _) in &targets {
            if !t.name.starts_with("berth") || t.name == "berth-anonymous" {
                continue;
            }
            eprintln!(
                "memory check on {}: streamed PATCH of {} MiB",
                t.name,
                sz.memory_check / MIB
            );
            match rt.block_on(memory_check(&ctx, t)) {
                Ok(v) => {
                    println!(
                        "memory-check {:12} {} MiB streamed at {:.0} MB/s: peak RSS {:.1} MiB (before {:.1} MiB), {:.2} CPU s/GB",
                        t.name,
                        sz.memory_check / MIB,
                        v["mb_s"].as_f64().unwrap_or(0.0),
                        v["peak_rss_mib"].as_f64().unwrap_or(0.0),
                        v["rss_before_mib"].as_f64().unwrap_or(0.0),
                        v["server_cpu_s_per_gb"].as_f64().unwrap_or(0.0)
                    );
                    mc.push(v);
                }
                Err(e) => ctx.note(format!("memory check on {}: FAILED: {e:#}", t.name)),
            }
        }
        report["memory_check"] = Value::Array(mc);
    }
    if let Some(l) = report.get("limits") {
        println!(
            "\nmachine limits: SHA-256 {:.0} MB/s (one core), disk write+fsync {:.0} MB/s, loopback TCP {:.0} MB/s",
            l["sha256_single_core_mb_s"].as_f64().unwrap_or(0.0),
            l["disk_seq_write_fsync_mb_s"].as_f64().unwrap_or(0.0),
            l["loopback_tcp_mb_s"].as_f64().unwrap_or(0.0)
        );
    }
    if ctx.o.scan {
        for (t, _) in &targets {
            if t.name.starts_with("berth") {
                match rt.block_on(scan_outcomes(t)) {
                    Ok(counts) => {
                        println!("scans finished on {} during the run: {counts:?}", t.name);
                        report["scans"][&t.name] = json!(counts);
                    }
                    Err(e) => ctx.note(format!("counting scans on {}: {e:#}", t.name)),
                }
            }
        }
    }
    if let Some(hook) = &ctx.hook {
        // Let deliveries still in flight arrive.
        std::thread::sleep(Duration::from_secs(3));
        for (t, _) in &targets {
            if let Some((n, p50, p99, max)) = hook.stats(&t.name) {
                println!(
                    "event delivery lag on {}: {n} events, p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms",
                    t.name
                );
                report["event_delivery_lag_ms"][&t.name] =
                    json!({"events": n, "p50": p50, "p99": p99, "max": max});
            }
        }
    }
    let notes = ctx.notes.lock().unwrap().clone();
    for n in &notes {
        println!("note: {n}");
    }
    report["notes"] = json!(notes);
    if let Some(p) = &ctx.o.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
        println!("JSON written to {}", p.display());
    }
    drop(targets);
    Ok(())
}

/// Scan results recorded on a Berth target (its outbox), by status.
async fn scan_outcomes(t: &Target) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let page: Value =
            t.c.get(format!("{}/api/v1/events?limit=1000&after={after}", t.base))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last() else {
            return Ok(counts);
        };
        after = last["id"].as_i64().unwrap_or(i64::MAX);
        for e in &events {
            let status = e["detail"]["scan-status"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            *counts.entry(status).or_insert(0) += 1;
        }
    }
}
