//! Lifecycle policies end to end against a real, listening Berth: 30 pushed images, a policy
//! applied and previewed with boto3, a run through the admin API, the exact tags gone (404) and
//! the rest kept, the lifecycle audit log; `berth lifecycle run` against a running server's
//! database; and last-pull tracking behind `sinceImagePulled`. Runs on both stacks
//! (`BERTH_TEST_STACK=sqlite-fs|pg-s3`).

use crate::support::{api, common};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use api::{rand_suffix, Api};
use common::TestServer;

const ADMIN_KEY: &str = "AKIALIFECYCLETEST001";
const ADMIN_SECRET: &str = "lifecycle/test+admin+secret+0123456789abc";

fn start(env: &[(&str, &str)]) -> TestServer {
    let mut all = vec![
        ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
        ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ("BERTH_LIFECYCLE_PULL_FLUSH_SECS", "1"),
    ];
    all.extend_from_slice(env);
    TestServer::start_with(&[], &all)
}

/// An admin API call; asserts the status and returns the JSON body (Null when empty).
async fn admin(api: &Api, method: Method, path: &str, body: Option<&str>, status: u16) -> Value {
    let mut rb = api.req(method.clone(), path);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = api.send(rb).await;
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, status, "{method} {path}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("BERTH_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/berth-venv")
        });
    venv.join("bin/python")
}

fn boto3(server: &TestServer, args: Value) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lifecycle_boto3.py"
    );
    let out = Command::new(venv_python())
        .arg(script)
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
        .expect("run the venv's python (tests/install-clients.sh installs boto3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "boto3 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn manifest_status(api: &Api, repo: &str, reference: &str) -> u16 {
    api.get_manifest(repo, reference).await.status().as_u16()
}

/// Waits until `reference` answers `status` (a CLI run reaches a caching server through the
/// maintenance epoch, polled every second).
async fn wait_for_status(api: &Api, repo: &str, reference: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = manifest_status(api, repo, reference).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{repo}:{reference} answers {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs SQL against the server's metadata database (to age images: nobody waits 30 days).
async fn sql(server: &TestServer, statement: &str) {
    sqlx::any::install_default_drivers();
    let url = match server.backends() {
        Some(b) => b.database_url.clone(),
        None => format!("sqlite://{}/berth.db", server.data_dir.display()),
    };
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query(statement)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    pool.close().await;
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The policy of the end-to-end test (each rule's effect on the 30 images is in the test).
const POLICY: &str = r#"{
  "rules": [
    { "rulePriority": 1, "description": "Keep every prod image",
      "selection": { "tagStatus": "tagged", "tagPatternList": ["prod-*"], "countType": "imageCountMoreThan", "countNumber": 9999 },
      "action": { "type": "expire" } },
    { "rulePriority": 2, "description": "Keep the 3 newest releases",
      "selection": { "tagStatus": "tagged", "tagPrefixList": ["release-"], "countType": "imageCountMoreThan", "countNumber": 3 },
      "action": { "type": "expire" } },
    { "rulePriority": 3, "description": "One untagged image",
      "selection": { "tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1 },
      "action": { "type": "expire" } },
    { "rulePriority": 4, "description": "Five feature builds",
      "selection": { "tagStatus": "tagged", "tagPatternList": ["feature-*"], "countType": "imageCountMoreThan", "countNumber": 5 },
      "action": { "type": "expire" } }
  ]
}"#;

const INVALID: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;

#[tokio::test]
async fn thirty_images_previewed_with_boto3_then_expired() {
    let server = start(&[("BERTH_LIFECYCLE_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let repo = format!("lc/app-{}", rand_suffix());

    // Oldest first: 10 releases, 10 feature builds, 5 prod images also tagged release-p<i>, 5
    // untagged images. Pushes are a few ms apart, so push times are distinct.
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..10 {
        let t = format!("release-{i}");
        digests.insert(t.clone(), api.push_image(&repo, &t).await.digest);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for i in 0..10 {
        let t = format!("feature-{i}");
        digests.insert(t.clone(), api.push_image(&repo, &t).await.digest);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for i in 0..5 {
        let pushed = api.push_image(&repo, &format!("prod-{i}")).await;
        api.push_manifest(
            &repo,
            &format!("release-p{i}"),
            &pushed.media_type,
            &pushed.manifest,
        )
        .await;
        digests.insert(format!("prod-{i}"), pushed.digest);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut untagged = Vec::new();
    for _ in 0..5 {
        untagged.push(api.push_image(&repo, "").await.digest);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(digests.len() + untagged.len(), 30);

    // Rule 1 shields prod-*. Rule 2 counts the release-p* (prod) images among its 3 newest (the
    // documented counting decision), so every release-<i> expires. Rule 3 keeps the newest
    // untagged image; rule 4 the five newest feature builds.
    let mut expiring: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..10 {
        expiring.insert(digests[&format!("release-{i}")].clone(), 2);
    }
    for d in &untagged[..4] {
        expiring.insert(d.clone(), 3);
    }
    for i in 0..5 {
        expiring.insert(digests[&format!("feature-{i}")].clone(), 4);
    }
    assert_eq!(expiring.len(), 19);

    boto3(
        &server,
        json!({ "repository": repo, "policy": POLICY, "invalid": INVALID, "expiring": expiring }),
    );

    // The native API reads the same policy and preview (GetLifecyclePolicyPreview's shape).
    let policy_path = format!("/api/v1/repositories/{repo}/lifecycle-policy");
    let preview_path = format!("/api/v1/repositories/{repo}/lifecycle/preview");
    let saved = admin(&api, Method::GET, &policy_path, None, 200).await;
    assert_eq!(saved, serde_json::from_str::<Value>(POLICY).unwrap());
    let preview = admin(&api, Method::GET, &preview_path, None, 200).await;
    assert_eq!(preview["status"], "COMPLETE", "{preview}");
    assert_eq!(preview["summary"]["expiringImageTotalCount"], 19);
    assert_eq!(preview["summary"]["evaluatedImageCount"], 30);
    assert_eq!(preview["previewResults"].as_array().unwrap().len(), 19);
    assert_eq!(preview["next"], Value::Null);
    // Paged as every REST listing: `next` goes back as `after`.
    let mut paged = Vec::new();
    let mut query = String::from("?limit=5");
    loop {
        let page = admin(
            &api,
            Method::GET,
            &format!("{preview_path}{query}"),
            None,
            200,
        )
        .await;
        paged.extend(page["previewResults"].as_array().unwrap().clone());
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=5&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, preview["previewResults"].as_array().unwrap().clone());
    // An unsaved policy through the native API (StartLifecyclePolicyPreview: the result is at
    // GET), then a refused one naming rule and field.
    let unsaved = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#;
    let started = admin(&api, Method::POST, &preview_path, Some(unsaved), 200).await;
    assert_eq!(started["lifecyclePolicyText"], unsaved, "{started}");
    let p = admin(&api, Method::GET, &preview_path, None, 200).await;
    assert_eq!(p["summary"]["expiringImageTotalCount"], 3);
    let err = admin(&api, Method::POST, &preview_path, Some(INVALID), 400).await;
    let message = err["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rulePriority 2") && message.contains("selection.countUnit"),
        "{message}"
    );

    // Nothing has expired yet.
    for d in expiring.keys() {
        assert_eq!(manifest_status(&api, &repo, d).await, 200);
    }

    let run = admin(
        &api,
        Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
        200,
    )
    .await;
    assert_eq!(run["expiredImageCount"], 19, "{run}");

    // Exactly the expired tags answer 404, by tag and by digest; the rest stay.
    for i in 0..10 {
        assert_eq!(
            manifest_status(&api, &repo, &format!("release-{i}")).await,
            404
        );
    }
    for i in 0..5 {
        assert_eq!(
            manifest_status(&api, &repo, &format!("feature-{i}")).await,
            404
        );
        assert_eq!(
            manifest_status(&api, &repo, &format!("feature-{}", i + 5)).await,
            200
        );
        assert_eq!(
            manifest_status(&api, &repo, &format!("prod-{i}")).await,
            200
        );
        assert_eq!(
            manifest_status(&api, &repo, &format!("release-p{i}")).await,
            200
        );
    }
    for d in expiring.keys() {
        assert_eq!(manifest_status(&api, &repo, d).await, 404, "{d}");
    }
    assert_eq!(manifest_status(&api, &repo, &untagged[4]).await, 200);
    let mut tags = api.tags(&repo).await;
    tags.sort();
    let mut want: Vec<String> = (5..10)
        .map(|i| format!("feature-{i}"))
        .chain((0..5).map(|i| format!("prod-{i}")))
        .chain((0..5).map(|i| format!("release-p{i}")))
        .collect();
    want.sort();
    assert_eq!(tags, want);

    // The lifecycle audit log has one entry per expired image, paged.
    let mut entries = Vec::new();
    let mut query = format!("repository={repo}&limit=7");
    loop {
        let page = admin(
            &api,
            Method::GET,
            &format!("/api/v1/lifecycle/audit?{query}"),
            None,
            200,
        )
        .await;
        entries.extend(page["entries"].as_array().unwrap().clone());
        match page["next"].as_str() {
            Some(next) => query = format!("repository={repo}&limit=7&after={next}"),
            None => break,
        }
    }
    assert_eq!(entries.len(), 19);
    let audited: BTreeMap<String, u32> = entries
        .iter()
        .map(|e| {
            (
                e["imageDigest"].as_str().unwrap().to_owned(),
                e["appliedRulePriority"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    assert_eq!(audited, expiring);
    let release0 = entries
        .iter()
        .find(|e| e["imageDigest"] == digests["release-0"])
        .unwrap();
    assert_eq!(release0["imageTags"], json!(["release-0"]));
    assert_eq!(release0["repositoryName"], json!(repo));

    // A second run finds nothing more; deleting the policy ends runs.
    let again = admin(
        &api,
        Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
        200,
    )
    .await;
    assert_eq!(again["expiredImageCount"], 0, "{again}");
    admin(&api, Method::DELETE, &policy_path, None, 204).await;
    admin(&api, Method::GET, &policy_path, None, 404).await;
    admin(
        &api,
        Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
        404,
    )
    .await;
}

#[tokio::test]
async fn cli_run_works_on_a_running_servers_database() {
    let server = start(&[("BERTH_LIFECYCLE_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let repo = format!("lc/cli-{}", rand_suffix());
    for i in 0..4 {
        api.push_image(&repo, &format!("b{i}")).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Served once, so a caching server holds these tags.
    for i in 0..4 {
        assert_eq!(manifest_status(&api, &repo, &format!("b{i}")).await, 200);
    }
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["b*"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#;
    admin(
        &api,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}/lifecycle-policy"),
        Some(policy),
        204,
    )
    .await;

    let out = server
        .cli("lifecycle")
        .arg("run")
        .arg("--repository")
        .arg(&repo)
        .output()
        .expect("run berth lifecycle run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 image(s) expired"), "{stdout}");
    wait_for_status(&api, &repo, "b0", 404).await;
    wait_for_status(&api, &repo, "b1", 404).await;
    assert_eq!(manifest_status(&api, &repo, "b2").await, 200);
    assert_eq!(manifest_status(&api, &repo, "b3").await, 200);

    // Every repository with a policy (flags after `run` work too); nothing left to expire.
    let out = Command::new(common::berth_bin())
        .args(["lifecycle", "run", "--data-dir"])
        .arg(&server.data_dir)
        .envs(server.backends().map(|b| b.env()).unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 image(s) expired"), "{stdout}");

    // Errors exit non-zero.
    let out = server
        .cli("lifecycle")
        .args(["run", "--repository", "lc/no-such-repository"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn since_image_pulled_follows_recorded_pulls() {
    let server = start(&[("BERTH_LIFECYCLE_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let repo = format!("lc/pulls-{}", rand_suffix());
    let by_tag = api.push_image(&repo, "pulled-by-tag").await;
    let by_digest = api.push_image(&repo, "pulled-by-digest").await;
    let never = api.push_image(&repo, "never-pulled").await;
    let young = api.push_image(&repo, "young").await;

    // Pushed 40 days ago, except `young`; pulls are recorded in memory first.
    sql(
        &server,
        &format!(
            "UPDATE manifests SET pushed_at = pushed_at - {} WHERE digest <> '{}'",
            40 * DAY_MS,
            young.digest
        ),
    )
    .await;
    assert_eq!(manifest_status(&api, &repo, "pulled-by-tag").await, 200);
    assert_eq!(manifest_status(&api, &repo, &by_digest.digest).await, 200);

    let policy = r#"{"rules":[{"rulePriority":1,"description":"not pulled for 30 days","selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
    let preview_path = format!("/api/v1/repositories/{repo}/lifecycle/preview");
    // The pull flush runs every second; wait until the preview no longer lists the pulled images.
    let deadline = Instant::now() + Duration::from_secs(10);
    let preview = loop {
        admin(&api, Method::POST, &preview_path, Some(policy), 200).await;
        let p = admin(&api, Method::GET, &preview_path, None, 200).await;
        if p["summary"]["expiringImageTotalCount"] == 1 {
            break p;
        }
        assert!(Instant::now() < deadline, "pulls never recorded: {p}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let expiring = &preview["previewResults"][0];
    assert_eq!(expiring["imageDigest"], json!(never.digest));
    assert!(expiring["lastRecordedPullTime"].is_null(), "{preview}");

    // Pulls long ago no longer protect: age the recorded pull times too.
    sql(
        &server,
        &format!(
            "UPDATE manifests SET last_pulled_at = last_pulled_at - {} WHERE digest = '{}'",
            40 * DAY_MS,
            by_tag.digest
        ),
    )
    .await;
    admin(
        &api,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}/lifecycle-policy"),
        Some(policy),
        204,
    )
    .await;
    let run = admin(
        &api,
        Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
        200,
    )
    .await;
    let mut expired: Vec<&str> = run["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["imageDigest"].as_str().unwrap())
        .collect();
    expired.sort();
    let mut want = vec![by_tag.digest.as_str(), never.digest.as_str()];
    want.sort();
    assert_eq!(expired, want);
    assert_eq!(manifest_status(&api, &repo, "pulled-by-tag").await, 404);
    assert_eq!(manifest_status(&api, &repo, "never-pulled").await, 404);
    assert_eq!(manifest_status(&api, &repo, "pulled-by-digest").await, 200);
    assert_eq!(manifest_status(&api, &repo, "young").await, 200);
}

#[tokio::test]
async fn scheduled_run_expires_without_being_asked() {
    let server = start(&[("BERTH_LIFECYCLE_INTERVAL_SECS", "1")]);
    let api = Api::new(&server.base);
    let repo = format!("lc/scheduled-{}", rand_suffix());
    api.push_image(&repo, "old").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    api.push_image(&repo, "new").await;
    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep one","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    admin(
        &api,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}/lifecycle-policy"),
        Some(policy),
        204,
    )
    .await;
    wait_for_status(&api, &repo, "old", 404).await;
    assert_eq!(manifest_status(&api, &repo, "new").await, 200);
    assert!(server.log().contains("lifecycle pass expired images"));
}

/// skopeo with the test admin's credentials over plain HTTP.
fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo (tests/install-clients.sh installs it)")
}

#[tokio::test]
async fn real_client_pushes_and_sees_the_expiry() {
    let server = start(&[("BERTH_LIFECYCLE_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let suffix = rand_suffix();
    let (src, dst) = (format!("lc/src-{suffix}"), format!("lc/e2e-{suffix}"));
    let creds = format!("{}:{}", common::ADMIN_USER, common::ADMIN_PASSWORD);
    // skopeo pushes five distinct images, one at a time, oldest first.
    for i in 0..5 {
        api.push_image(&src, &format!("s{i}")).await;
        let out = skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &format!("docker://{}/{src}:s{i}", server.addr),
            &format!("docker://{}/{dst}:v{i}", server.addr),
        ]);
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep the two newest v*","selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#;
    admin(
        &api,
        Method::PUT,
        &format!("/api/v1/repository-lifecycle-policy/{dst}"),
        Some(policy),
        204,
    )
    .await;
    let run = admin(
        &api,
        Method::POST,
        &format!("/api/v1/repository-lifecycle-run/{dst}"),
        None,
        200,
    )
    .await;
    assert_eq!(run["expiredImageCount"], 3, "{run}");
    let inspect = |tag: &str| {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}/{dst}:{tag}", server.addr),
        ])
    };
    for gone in ["v0", "v1", "v2"] {
        let out = inspect(gone);
        assert!(!out.status.success(), "{gone} still answers");
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            stderr.contains("manifest unknown") || stderr.contains("not found"),
            "{gone}: {stderr}"
        );
    }
    for kept in ["v3", "v4"] {
        assert!(inspect(kept).status.success(), "{kept} is gone");
    }
    let out = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{}/{dst}", server.addr),
    ]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("list-tags JSON");
    assert_eq!(listed["Tags"], json!(["v3", "v4"]));
}

/// The SHA-256 digests of every object in the server's storage (filesystem root or S3 bucket
/// dir), whatever the key layout of the backend.
fn stored_digests(server: &TestServer) -> std::collections::HashSet<String> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                use sha2::Digest as _;
                out.insert(format!(
                    "sha256:{}",
                    hex::encode(sha2::Sha256::digest(&bytes))
                ));
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    walk(&server.object_path(""), &mut out);
    out
}

/// The AWS CLI from the test venv, signing as the admin's access key.
fn aws(server: &TestServer, args: &[&str]) -> Value {
    let aws = venv_python().with_file_name("aws");
    let out = Command::new(&aws)
        .args(["ecr", "--endpoint-url", &server.base, "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", aws.display()));
    assert!(
        out.status.success(),
        "aws ecr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The issue's end-to-end case: 30 images pushed with skopeo, a policy applied and previewed with
/// the AWS CLI, a run, skopeo sees exactly the newest 10 tags, and after a GC pass (grace period
/// zero) the expired images' layers are gone from storage while the kept ones still pull.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_skopeo_images_expire_and_their_storage_is_reclaimed() {
    let server = start(&[
        ("BERTH_LIFECYCLE_INTERVAL_SECS", "0"),
        ("BERTH_GC_GRACE_PERIOD_SECS", "0"),
        ("BERTH_GC_INTERVAL_SECS", "0"),
    ]);
    let api = Api::new(&server.base);
    let suffix = rand_suffix();
    let (src, dst) = (format!("lcgc/src-{suffix}"), format!("lcgc/app-{suffix}"));
    let creds = format!("{}:{}", common::ADMIN_USER, common::ADMIN_PASSWORD);
    let mut layers = Vec::new();
    for i in 0..30 {
        api.push_image(&src, &format!("s{i}")).await;
        let out = skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &format!("docker://{}/{src}:s{i}", server.addr),
            &format!("docker://{}/{dst}:v{i}", server.addr),
        ]);
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // skopeo compresses the layers on the way, so the copy's layer is a blob of its own.
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{}/{dst}:v{i}", server.addr),
        ]);
        let manifest: Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
        layers.push(manifest["layers"][0]["digest"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Only the copies remain referenced.
    admin(
        &api,
        Method::DELETE,
        &format!("/api/v1/repositories/{src}?force=true"),
        None,
        200,
    )
    .await;

    let policy = r#"{"rules":[{"rulePriority":1,"description":"keep the ten newest v* images","selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#;
    aws(
        &server,
        &[
            "put-lifecycle-policy",
            "--repository-name",
            &dst,
            "--lifecycle-policy-text",
            policy,
        ],
    );
    aws(
        &server,
        &["start-lifecycle-policy-preview", "--repository-name", &dst],
    );
    let preview = aws(
        &server,
        &["get-lifecycle-policy-preview", "--repository-name", &dst],
    );
    assert_eq!(preview["status"], "COMPLETE", "{preview}");
    assert_eq!(
        preview["summary"]["expiringImageTotalCount"], 20,
        "{preview}"
    );
    let mut previewed: Vec<String> = preview["previewResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["imageTags"][0].as_str().unwrap().to_owned())
        .collect();
    previewed.sort();
    let mut oldest: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    oldest.sort();
    assert_eq!(previewed, oldest, "the preview names the 20 oldest");

    let run = admin(
        &api,
        Method::POST,
        &format!("/api/v1/repositories/{dst}/lifecycle/run"),
        None,
        200,
    )
    .await;
    assert_eq!(run["expiredImageCount"], 20, "{run}");
    let out = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{}/{dst}", server.addr),
    ]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("list-tags JSON");
    let mut tags: Vec<String> = listed["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    let mut newest: Vec<String> = (20..30).map(|i| format!("v{i}")).collect();
    newest.sort();
    assert_eq!(tags, newest, "exactly the ten newest tags remain");

    // Storage: nothing is reclaimed before GC runs; after it, the expired layers are gone and
    // the kept ones are intact.
    let before = stored_digests(&server);
    for layer in &layers {
        assert!(before.contains(layer), "{layer} vanished early");
    }
    let out = server.cli_path(&["gc", "run"]).output().unwrap();
    assert!(
        out.status.success(),
        "berth gc run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = stored_digests(&server);
    for (i, layer) in layers.iter().enumerate() {
        let exists = after.contains(layer);
        if i < 20 {
            assert!(!exists, "v{i}'s layer {layer} was not reclaimed");
        } else {
            assert!(
                exists,
                "v{i}'s layer {layer} was reclaimed while still in use"
            );
        }
    }
    let pulled = tempfile::tempdir().unwrap();
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{}/{dst}:v29", server.addr),
        &format!("oci:{}:v29", pulled.path().display()),
    ]);
    assert!(
        out.status.success(),
        "a kept image no longer pulls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
