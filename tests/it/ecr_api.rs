//! The ECR-compatible API (`POST /` with `X-Amz-Target`) against a real, listening Berth, driven
//! by boto3 and the AWS CLI (from the venv `tests/install-clients.sh` fills), plus signature
//! attacks signed from Rust with `berth::auth::sigv4::sign` and sent with reqwest. Runs on both
//! stacks (`BERTH_TEST_STACK=sqlite-fs|pg-s3`).

use crate::support::{api, common};

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use berth::auth::sigv4::{sign, SigV4Error, SigV4Request, SigningCredentials};
use serde_json::{json, Value};

use api::{rand_suffix, Api};
use common::TestServer;

const ADMIN_PASSWORD: &str = "ecr-test-admin-password";
const ADMIN_KEY: &str = "AKIAECRTESTADMIN0001";
const ADMIN_SECRET: &str = "ecr/test+admin+secret+0123456789abcdefghij";
const REGION: &str = "us-east-1";
const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
const INSTALL_HINT: &str = "run tests/install-clients.sh (as root) to install boto3 and awscli";

fn start() -> TestServer {
    TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ],
    )
}

/// A `/v2` client that authenticates as the admin with Basic.
fn admin_api(server: &TestServer) -> Api {
    let mut headers = reqwest::header::HeaderMap::new();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .default_headers(headers)
        .build()
        .unwrap();
    Api {
        base: server.base.clone(),
        http,
    }
}

// ------------------------------------------------------------------------------------------------
// Real clients: boto3 and the AWS CLI
// ------------------------------------------------------------------------------------------------

fn venv() -> PathBuf {
    std::env::var_os("BERTH_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/berth-venv")
        })
}

fn python() -> PathBuf {
    let py = venv().join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "boto3 is missing from {}: {INSTALL_HINT}",
        venv().display()
    );
    py
}

fn aws_cli() -> PathBuf {
    let aws = venv().join("bin/aws");
    assert!(
        aws.is_file(),
        "the AWS CLI is missing from {}: {INSTALL_HINT}",
        venv().display()
    );
    aws
}

/// The environment for an AWS client signing with `key`/`secret` (nothing from the user's
/// own AWS configuration leaks in).
fn aws_env(cmd: &mut Command, key: &str, secret: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null());
}

fn run_output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Runs one scenario of `tests/fixtures/ecr_boto3.py`; panics with its output on failure.
fn boto3(server: &TestServer, scenario: &str, args: Value, key: &str, secret: &str) {
    python();
    common::boto3_scenario(server, scenario, &args, key, secret);
}

/// `aws ecr <args>` as the admin.
fn aws(server: &TestServer, args: &[&str]) -> Output {
    let mut cmd = Command::new(aws_cli());
    cmd.args(["--endpoint-url", &server.base, "--output", "json", "ecr"])
        .args(args);
    aws_env(&mut cmd, ADMIN_KEY, ADMIN_SECRET);
    run_output(&mut cmd)
}

fn aws_ok(server: &TestServer, args: &[&str]) -> String {
    let out = aws(server, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aws ecr {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn aws_json(server: &TestServer, args: &[&str]) -> Value {
    let text = aws_ok(server, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("aws ecr {args:?}: not JSON ({e}): {text}"))
}

// ------------------------------------------------------------------------------------------------
// boto3 scenarios
// ------------------------------------------------------------------------------------------------

#[test]
fn boto3_repositories_pagination_tags_and_registry() {
    let server = start();
    let host = server.addr.clone();
    boto3(
        &server,
        "repositories",
        json!({"prefix": format!("b3-{}", rand_suffix()), "host": host}),
        ADMIN_KEY,
        ADMIN_SECRET,
    );
}

#[test]
fn boto3_repository_and_registry_policies() {
    let server = start();
    boto3(
        &server,
        "policies",
        json!({"repository": format!("pol-{}/app", rand_suffix())}),
        ADMIN_KEY,
        ADMIN_SECRET,
    );
}

// ------------------------------------------------------------------------------------------------
// Both doors: the ECR API and the REST API run the same operations and answer alike
// ------------------------------------------------------------------------------------------------

/// A REST call; the status and the body as text.
async fn rest(api: &Api, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, String) {
    let mut rb = api.req(method, path);
    if let Some(body) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let resp = api.send(rb).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A REST call that must answer `status` with a JSON body.
async fn rest_json(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
    status: u16,
) -> Value {
    let (got, text) = rest(api, method.clone(), path, body).await;
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A REST error: (status, code, message).
async fn rest_error(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, String, String) {
    let (status, text) = rest(api, method, path, body).await;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    let error = &v["errors"][0];
    (
        status,
        error["code"].as_str().unwrap_or_default().to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// An ECR error as the admin: (exception, message).
async fn ecr_error(server: &TestServer, operation: &str, body: Value) -> (String, String) {
    let (status, value) = ecr_call(server, operation, body).await;
    assert_eq!(status, 400, "{operation}: {value}");
    (
        value["__type"].as_str().unwrap_or_default().to_owned(),
        value["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Repository and registry policies: a document set through one door is read byte for byte
/// through the other; a missing policy, a missing repository and an invalid name are the same
/// failure with the same message (REST: 404 or 400 with the code for the ECR exception); every
/// call leaves one audit record naming the same action and resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_answer_alike_through_both_doors() {
    use reqwest::Method;
    let server = start();
    let api = admin_api(&server);
    let repo = format!("doors-{}/app", rand_suffix());
    let path = format!("/api/v1/repository-policies/{repo}");
    ecr_ok(&server, "CreateRepository", json!({"repositoryName": repo})).await;

    // No policy yet.
    let (kind, message) = ecr_error(
        &server,
        "GetRepositoryPolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(kind, "RepositoryPolicyNotFoundException");
    assert_eq!(
        rest_error(&api, Method::GET, &path, None).await,
        (404, "NOT_FOUND".into(), message)
    );

    // Set through one door, read exactly as sent through the other.
    let first = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Sid\": \"Pull\", \"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"ecr:BatchGetImage\"}]\n}";
    let (status, _) = rest(&api, Method::PUT, &path, Some(first)).await;
    assert_eq!(status, 204);
    let got = ecr_ok(
        &server,
        "GetRepositoryPolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(got["policyText"], first);
    let second = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Describe","Effect":"Allow","Principal":"*","Action":["ecr:DescribeImages"]}]}"#;
    ecr_ok(
        &server,
        "SetRepositoryPolicy",
        json!({"repositoryName": repo, "policyText": second}),
    )
    .await;
    assert_eq!(
        rest(&api, Method::GET, &path, None).await,
        (200, second.to_owned())
    );

    // An invalid document is refused with one message.
    let broken = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Broken","Effect":"Allow","Principal":"*","Action":"ecr:NoSuchAction"}]}"#;
    let (kind, message) = ecr_error(
        &server,
        "SetRepositoryPolicy",
        json!({"repositoryName": repo, "policyText": broken}),
    )
    .await;
    assert_eq!(kind, "InvalidParameterException");
    assert_eq!(
        rest_error(&api, Method::PUT, &path, Some(broken)).await,
        (400, "INVALID_PARAMETER".into(), message)
    );

    // Deleted through ECR (answering the text); then both doors find none.
    let deleted = ecr_ok(
        &server,
        "DeleteRepositoryPolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(deleted["policyText"], second);
    let (kind, message) = ecr_error(
        &server,
        "DeleteRepositoryPolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(kind, "RepositoryPolicyNotFoundException");
    assert_eq!(
        rest_error(&api, Method::DELETE, &path, None).await,
        (404, "NOT_FOUND".into(), message)
    );

    // A missing repository and an invalid name: ECR's exception and message in both doors.
    let missing = format!("{repo}-missing");
    let (kind, message) = ecr_error(
        &server,
        "SetRepositoryPolicy",
        json!({"repositoryName": missing, "policyText": second}),
    )
    .await;
    assert_eq!(kind, "RepositoryNotFoundException");
    assert_eq!(
        rest_error(
            &api,
            Method::PUT,
            &format!("/api/v1/repository-policies/{missing}"),
            Some(second)
        )
        .await,
        (404, "NAME_UNKNOWN".into(), message)
    );
    let (kind, message) = ecr_error(
        &server,
        "GetRepositoryPolicy",
        json!({"repositoryName": "Team/App"}),
    )
    .await;
    assert_eq!(kind, "InvalidParameterException");
    assert_eq!(
        rest_error(
            &api,
            Method::GET,
            "/api/v1/repository-policies/Team/App",
            None
        )
        .await,
        (400, "NAME_INVALID".into(), message)
    );

    // The registry policy.
    let (kind, message) = ecr_error(&server, "GetRegistryPolicy", json!({})).await;
    assert_eq!(kind, "RegistryPolicyNotFoundException");
    assert_eq!(
        rest_error(&api, Method::GET, "/api/v1/registry-policy", None).await,
        (404, "NOT_FOUND".into(), message.clone())
    );
    let registry = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Everyone","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/nobody"},"Action":"ecr:DescribeRepositories","Resource":"*"}]}"#;
    ecr_ok(
        &server,
        "PutRegistryPolicy",
        json!({"policyText": registry}),
    )
    .await;
    assert_eq!(
        rest(&api, Method::GET, "/api/v1/registry-policy", None).await,
        (200, registry.to_owned())
    );
    let (status, _) = rest(&api, Method::PUT, "/api/v1/registry-policy", Some(registry)).await;
    assert_eq!(status, 204);
    let (status, _) = rest(&api, Method::DELETE, "/api/v1/registry-policy", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        ecr_error(&server, "DeleteRegistryPolicy", json!({})).await,
        ("RegistryPolicyNotFoundException".into(), message)
    );

    // One audit record per call, the same through both doors: action, resource, detail.
    let log = rest_json(&api, Method::GET, "/api/v1/audit?limit=200", None, 200).await;
    let puts: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "ecr:PutRegistryPolicy")
        .collect();
    assert_eq!(puts.len(), 2, "{log}");
    for put in puts {
        assert_eq!(put["resource"], "registry", "{put}");
        assert_eq!(put["outcome"], "success", "{put}");
        assert_eq!(put["detail"], "registry policy set", "{put}");
    }
    let repo_arn = format!("arn:aws:ecr:us-east-1:000000000000:repository/{repo}");
    let sets = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "ecr:SetRepositoryPolicy"
                && e["resource"] == repo_arn.as_str()
                && e["outcome"] == "success"
        })
        .count();
    assert_eq!(sets, 2, "{log}");
}

/// Lifecycle policies: the same failures with the same messages through both doors (ECR's
/// wording), StartLifecyclePolicyPreview and GetLifecyclePolicyPreview answer the same objects
/// (REST: `next` for `nextToken`), timestamps are epoch seconds everywhere, and a run's expired
/// images have the preview's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_answers_alike_through_both_doors() {
    use reqwest::Method;
    let server = start();
    let api = admin_api(&server);
    let repo = format!("doors-{}/lc", rand_suffix());
    for i in 0..3 {
        api.push_image(&repo, &format!("v{i}")).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let policy_path = format!("/api/v1/repositories/{repo}/lifecycle-policy");
    let preview_path = format!("/api/v1/repositories/{repo}/lifecycle/preview");
    let run_path = format!("/api/v1/repositories/{repo}/lifecycle/run");

    let (kind, message) = ecr_error(
        &server,
        "GetLifecyclePolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(kind, "LifecyclePolicyNotFoundException");
    let not_found = (404, "NOT_FOUND".to_owned(), message);
    assert_eq!(
        rest_error(&api, Method::GET, &policy_path, None).await,
        not_found
    );
    assert_eq!(
        rest_error(&api, Method::POST, &run_path, None).await,
        not_found
    );
    assert_eq!(
        rest_error(&api, Method::POST, &preview_path, None).await,
        not_found
    );
    let (kind, message) = ecr_error(
        &server,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(kind, "LifecyclePolicyPreviewNotFoundException");
    assert_eq!(
        rest_error(&api, Method::GET, &preview_path, None).await,
        (404, "NOT_FOUND".into(), message)
    );

    let invalid = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
    let (kind, message) = ecr_error(
        &server,
        "PutLifecyclePolicy",
        json!({"repositoryName": repo, "lifecyclePolicyText": invalid}),
    )
    .await;
    assert_eq!(kind, "InvalidParameterException");
    assert!(message.contains("selection.countUnit"), "{message}");
    assert_eq!(
        rest_error(&api, Method::PUT, &policy_path, Some(invalid)).await,
        (400, "INVALID_PARAMETER".into(), message)
    );

    // Saved through REST, read exactly as sent through ECR.
    let policy = "{\"rules\": [{\"rulePriority\": 1, \"selection\": {\"tagStatus\": \"any\", \"countType\": \"imageCountMoreThan\", \"countNumber\": 1}, \"action\": {\"type\": \"expire\"}}]}";
    let (status, _) = rest(&api, Method::PUT, &policy_path, Some(policy)).await;
    assert_eq!(status, 204);
    let saved = ecr_ok(
        &server,
        "GetLifecyclePolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(saved["lifecyclePolicyText"], policy);
    assert_eq!(
        rest(&api, Method::GET, &policy_path, None).await,
        (200, policy.to_owned())
    );

    // Previews: the same answers through both doors.
    let started = rest_json(&api, Method::POST, &preview_path, None, 200).await;
    let ecr_started = ecr_ok(
        &server,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(started, ecr_started);
    assert_eq!(started["status"], "IN_PROGRESS");
    let mut preview = rest_json(&api, Method::GET, &preview_path, None, 200).await;
    let ecr_preview = ecr_ok(
        &server,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(
        preview.as_object_mut().unwrap().remove("next"),
        Some(Value::Null)
    );
    assert_eq!(preview, ecr_preview);
    assert_eq!(preview["status"], "COMPLETE");
    assert_eq!(preview["summary"]["expiringImageTotalCount"], 2);
    let results = preview["previewResults"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert!(results[0]["imagePushedAt"].is_f64(), "{preview}");
    // Pages: REST's `next` is ECR's nextToken.
    let first = rest_json(
        &api,
        Method::GET,
        &format!("{preview_path}?limit=1"),
        None,
        200,
    )
    .await;
    let ecr_first = ecr_ok(
        &server,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": repo, "maxResults": 1}),
    )
    .await;
    assert_eq!(first["next"], ecr_first["nextToken"]);
    assert_eq!(first["previewResults"], ecr_first["previewResults"]);
    let next = first["next"].as_str().unwrap();
    let second = rest_json(
        &api,
        Method::GET,
        &format!("{preview_path}?limit=1&after={next}"),
        None,
        200,
    )
    .await;
    assert_eq!(second["previewResults"][0], results[1]);
    assert_eq!(second["next"], Value::Null);

    // A run expires what the preview showed, in the same shape.
    let run = rest_json(&api, Method::POST, &run_path, None, 200).await;
    assert_eq!(run["expiredImageCount"], 2, "{run}");
    assert_eq!(run["expired"], Value::Array(results.clone()), "{run}");
    assert!(run["evaluatedAt"].is_f64(), "{run}");
    let audit = rest_json(
        &api,
        Method::GET,
        &format!("/api/v1/lifecycle/audit?repository={repo}"),
        None,
        200,
    )
    .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2, "{audit}");
    assert!(audit["entries"][0]["time"].is_f64(), "{audit}");
    assert_eq!(audit["next"], Value::Null);
    let evaluated = ecr_ok(
        &server,
        "GetLifecyclePolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert!(evaluated["lastEvaluatedAt"].is_f64(), "{evaluated}");
}

/// Authorize first in both doors: a caller without permissions is refused before its request
/// is validated (an invalid name, a malformed ARN, too many registry ids), with the same deny
/// message through both doors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callers_learn_nothing_from_invalid_requests() {
    use reqwest::Method;
    let server = start();
    let user_arn = create_plain_user(&server, "dev", "AKIAECRTESTDOORS0001", "doors-secret").await;
    let dev = Api::with_basic(&server.base, "dev", "plain-user-password");
    let as_dev = |operation: &'static str, body: Value| {
        let server = &server;
        async move {
            let bytes = body.to_string().into_bytes();
            let s = signed(
                server,
                operation,
                &bytes,
                "AKIAECRTESTDOORS0001",
                "doors-secret",
                chrono::Utc::now(),
            );
            let (status, value) = send(server, &s, &bytes).await;
            assert_eq!(status, 400, "{operation}: {value}");
            assert_eq!(
                value["__type"], "AccessDeniedException",
                "{operation}: {value}"
            );
            value["message"].as_str().unwrap().to_owned()
        }
    };
    for (operation, body) in [
        (
            "SetRepositoryPolicy",
            json!({"repositoryName": "Bad Name!", "policyText": "{}"}),
        ),
        ("GetRepositoryPolicy", json!({"repositoryName": "x"})),
        ("PutLifecyclePolicy", json!({"repositoryName": "Bad Name!"})),
        (
            "GetLifecyclePolicyPreview",
            json!({"repositoryName": "Bad Name!", "maxResults": 0}),
        ),
        (
            "StartLifecyclePolicyPreview",
            json!({"repositoryName": "team/app", "registryId": "999"}),
        ),
        (
            "TagResource",
            json!({"resourceArn": "nonsense", "tags": []}),
        ),
        (
            "ListTagsForResource",
            json!({"resourceArn": "arn:aws:ecr:eu-west-9:1:repository/x"}),
        ),
        (
            "GetAuthorizationToken",
            json!({"registryIds": vec!["000000000000"; 11]}),
        ),
        ("PutRegistryPolicy", json!({"policyText": "not a policy"})),
    ] {
        let message = as_dev(operation, body).await;
        assert!(
            message.starts_with(&format!(
                "User: {user_arn} is not authorized to perform: ecr:"
            )),
            "{operation}: {message}"
        );
    }
    // The same refusal, word for word, through the REST API.
    let ecr = as_dev(
        "SetRepositoryPolicy",
        json!({"repositoryName": "team/app", "policyText": "{}"}),
    )
    .await;
    assert_eq!(
        rest_error(
            &dev,
            Method::PUT,
            "/api/v1/repository-policies/team/app",
            Some("{}")
        )
        .await,
        (403, "DENIED".into(), ecr)
    );
    let ecr = as_dev(
        "PutLifecyclePolicy",
        json!({"repositoryName": "team/app", "lifecyclePolicyText": "{}"}),
    )
    .await;
    assert_eq!(
        rest_error(
            &dev,
            Method::PUT,
            "/api/v1/repositories/team/app/lifecycle-policy",
            Some("{}")
        )
        .await,
        (403, "DENIED".into(), ecr)
    );
    let ecr = as_dev("GetRegistryPolicy", json!({})).await;
    assert_eq!(
        rest_error(&dev, Method::GET, "/api/v1/registry-policy", None).await,
        (403, "DENIED".into(), ecr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_images_pushed_over_v2() {
    let server = start();
    let api = admin_api(&server);
    let repo = format!("img-{}/app", rand_suffix());
    let pushed = api.push_image_with(&repo, "v1", 2, json!({})).await;
    let manifest: Value = serde_json::from_slice(&pushed.manifest).unwrap();
    let blob_bytes = manifest["config"]["size"].as_i64().unwrap()
        + manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_i64().unwrap())
            .sum::<i64>();
    let mut blobs = vec![pushed.config_digest.clone()];
    blobs.extend(pushed.layer_digests.iter().cloned());
    let args = json!({
        "repository": repo,
        "tag": "v1",
        "digest": pushed.digest,
        "manifest": String::from_utf8(pushed.manifest.clone()).unwrap(),
        "media_type": pushed.media_type,
        "blob_bytes": blob_bytes,
        "blobs": blobs,
    });
    // The server is another process: blocking this test's thread on the client is harmless.
    boto3(&server, "images", args, ADMIN_KEY, ADMIN_SECRET);
    // The image put back after the deletes went with the force-deleted repository.
    let resp = api.get_manifest(&repo, "v1").await;
    assert_eq!(resp.status().as_u16(), 404);
}

/// PutImage takes the registry's manifest checks: a descriptor size that differs from the stored
/// blob is refused (InvalidParameterException naming the descriptor and both sizes), as is an
/// `imageManifestMediaType` that contradicts the manifest's `mediaType`; nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_image_refuses_manifests_no_client_could_pull() {
    let server = start();
    let api = admin_api(&server);
    let repo = format!("put-{}/app", rand_suffix());
    let pushed = api.push_image(&repo, "v1").await;
    let mut manifest: Value = serde_json::from_slice(&pushed.manifest).unwrap();
    let layer = pushed.layer_digests[0].clone();
    let real_size = manifest["layers"][0]["size"].as_i64().unwrap();
    manifest["layers"][0]["size"] = json!(999999);
    let (status, answer) = ecr_call(
        &server,
        "PutImage",
        json!({"repositoryName": repo, "imageTag": "wrong-size", "imageManifest": manifest.to_string()}),
    )
    .await;
    expect((status, answer.clone()), 400, "InvalidParameterException");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "layers[0] ({layer}) declares size 999999 but the stored blob is {real_size} bytes"
        )),
        "{message}"
    );

    manifest["layers"][0]["size"] = json!(real_size);
    let (status, answer) = ecr_call(
        &server,
        "PutImage",
        json!({"repositoryName": repo, "imageTag": "wrong-type", "imageManifest": manifest.to_string(),
               "imageManifestMediaType": api::DOCKER_MANIFEST}),
    )
    .await;
    expect((status, answer.clone()), 400, "InvalidParameterException");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("imageManifestMediaType"),
        "{answer}"
    );
    for tag in ["wrong-size", "wrong-type"] {
        let resp = api.head_manifest(&repo, tag).await;
        assert_eq!(resp.status().as_u16(), 404, "{tag}");
    }

    ecr_ok(
        &server,
        "PutImage",
        json!({"repositoryName": repo, "imageTag": "right", "imageManifest": manifest.to_string(),
               "imageManifestMediaType": api::OCI_MANIFEST}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_tag_mutability_and_put_image_on_an_immutable_tag() {
    let server = start();
    let api = admin_api(&server);
    let repo = format!("imm-{}/app", rand_suffix());
    let a = api.push_image(&repo, "v1").await;
    // A second manifest over the same blobs, pushed by digest (untagged).
    let mut other: Value = serde_json::from_slice(&a.manifest).unwrap();
    other["annotations"] = json!({"variant": "b"});
    let b = serde_json::to_vec(&other).unwrap();
    api.push_manifest(&repo, &api::sha256_digest(&b), &a.media_type, &b)
        .await;
    let args = json!({
        "repository": repo,
        "manifest_a": String::from_utf8(a.manifest.clone()).unwrap(),
        "manifest_b": String::from_utf8(b).unwrap(),
    });
    boto3(&server, "tag_mutability", args, ADMIN_KEY, ADMIN_SECRET);
}

#[test]
fn boto3_repository_creation_templates() {
    let server = start();
    boto3(
        &server,
        "creation_templates",
        json!({"prefix": format!("tplb3-{}", rand_suffix())}),
        ADMIN_KEY,
        ADMIN_SECRET,
    );
}

/// One ECR call as the admin, signed now.
async fn ecr_call(server: &TestServer, operation: &str, body: Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let s = signed(
        server,
        operation,
        &bytes,
        ADMIN_KEY,
        ADMIN_SECRET,
        chrono::Utc::now(),
    );
    send(server, &s, &bytes).await
}

async fn ecr_ok(server: &TestServer, operation: &str, body: Value) -> Value {
    let (status, value) = ecr_call(server, operation, body).await;
    assert_eq!(status, 200, "{operation}: {value}");
    value
}

/// A push to a missing repository under a template's prefix creates it with every setting of
/// the template (immutable tags, lifecycle policy, resource tag, scan on push, repository
/// policy); a longer-prefix template for another kind does not apply, and a name outside the
/// prefix gets the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_template_applies_to_create_on_push() {
    let server = start();
    let api = admin_api(&server);
    let prefix = format!("tpl-{}", rand_suffix());
    let lifecycle = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}"#;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"read","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#;
    let created = ecr_ok(
        &server,
        "CreateRepositoryCreationTemplate",
        json!({
            "prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "imageTagMutability": "IMMUTABLE",
            "lifecyclePolicy": lifecycle, "repositoryPolicy": policy,
            "resourceTags": [{"Key": "team", "Value": "tpl"}],
            "imageScanningConfiguration": {"scanOnPush": true},
        }),
    )
    .await;
    assert_eq!(
        created["repositoryCreationTemplate"]["imageScanningConfiguration"],
        json!({"scanOnPush": true})
    );
    ecr_ok(
        &server,
        "CreateRepositoryCreationTemplate",
        json!({"prefix": format!("{prefix}/app"), "appliedFor": ["PULL_THROUGH_CACHE"]}),
    )
    .await;

    let repo = format!("{prefix}/app");
    let first = api.push_image(&repo, "v1").await;
    let described = ecr_ok(
        &server,
        "DescribeRepositories",
        json!({"repositoryNames": [repo]}),
    )
    .await;
    let row = &described["repositories"][0];
    assert_eq!(row["imageTagMutability"], "IMMUTABLE", "{row}");
    assert_eq!(
        row["imageScanningConfiguration"],
        json!({"scanOnPush": true}),
        "{row}"
    );
    let arn = row["repositoryArn"].as_str().unwrap().to_owned();
    let got = ecr_ok(
        &server,
        "GetLifecyclePolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(got["lifecyclePolicyText"], lifecycle);
    let got = ecr_ok(
        &server,
        "GetRepositoryPolicy",
        json!({"repositoryName": repo}),
    )
    .await;
    assert_eq!(got["policyText"], policy);
    let got = ecr_ok(&server, "ListTagsForResource", json!({"resourceArn": arn})).await;
    assert_eq!(got["tags"], json!([{"Key": "team", "Value": "tpl"}]));

    // The tag is immutable: the same tag with another digest is refused.
    let mut other: Value = serde_json::from_slice(&first.manifest).unwrap();
    other["annotations"] = json!({"variant": "b"});
    let other = serde_json::to_vec(&other).unwrap();
    let resp = api
        .put_manifest(&repo, "v1", &first.media_type, &other)
        .await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("cannot be overwritten"), "{text}");
    let resp = api.get_manifest(&repo, "v1").await;
    assert_eq!(
        api::header(&resp, "docker-content-digest").as_deref(),
        Some(first.digest.as_str())
    );

    // Outside the prefix (`tpl-x` is not under `tpl`), the defaults.
    let outside = format!("{prefix}x/app");
    api.push_image(&outside, "v1").await;
    let described = ecr_ok(
        &server,
        "DescribeRepositories",
        json!({"repositoryNames": [outside]}),
    )
    .await;
    let row = &described["repositories"][0];
    assert_eq!(row["imageTagMutability"], "MUTABLE", "{row}");
    assert_eq!(
        row["imageScanningConfiguration"],
        json!({"scanOnPush": false})
    );
    let (status, value) = ecr_call(
        &server,
        "GetLifecyclePolicy",
        json!({"repositoryName": outside}),
    )
    .await;
    assert_eq!(status, 400, "{value}");
    assert_eq!(value["__type"], "LifecyclePolicyNotFoundException");
}

/// A second principal with its own access key and no policies, created directly in the
/// server's database. Returns its ARN.
async fn create_plain_user(server: &TestServer, name: &str, key: &str, secret: &str) -> String {
    let meta = server.meta().await;
    let hash = berth::auth::password::hash_secret("plain-user-password").unwrap();
    let (row, _) = meta
        .identity()
        .create_principal_if_missing("user", name, &hash)
        .await
        .unwrap();
    meta.identity()
        .put_access_key(row.id, key, secret)
        .await
        .unwrap();
    meta.close().await;
    berth::policy::user_arn("000000000000", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_user_without_policies_is_denied() {
    let server = start();
    let repo = format!("deny-{}/app", rand_suffix());
    let created = aws_json(&server, &["create-repository", "--repository-name", &repo]);
    assert_eq!(created["repository"]["repositoryName"], repo.as_str());
    let user_arn = create_plain_user(&server, "dev", "AKIAECRTESTPLAIN0001", "plain-secret").await;
    let args = json!({"repository": repo, "user_arn": user_arn});
    boto3(
        &server,
        "denied",
        args,
        "AKIAECRTESTPLAIN0001",
        "plain-secret",
    );
    // The admin still sees the repository the denied calls tried to delete.
    let described = aws_json(
        &server,
        &["describe-repositories", "--repository-names", &repo],
    );
    assert_eq!(
        described["repositories"][0]["repositoryName"],
        repo.as_str()
    );
    // Both the allowed and the denied calls are in the audit log, with who and what.
    let log: Value = admin_api(&server)
        .http
        .get(server.url("/api/v1/audit?limit=200"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    let repo_arn = format!("arn:aws:ecr:us-east-1:000000000000:repository/{repo}");
    assert!(
        entries.iter().any(|e| e["action"] == "ecr:CreateRepository"
            && e["outcome"] == "success"
            && e["principal"] == "admin"
            && e["resource"] == repo_arn.as_str()),
        "{log}"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "ecr:DeleteRepository"
            && e["outcome"] == "denied"
            && e["principal"] == "dev"
            && e["resource"] == repo_arn.as_str()),
        "{log}"
    );
    assert!(!log.to_string().contains("plain-secret"));
}

// ------------------------------------------------------------------------------------------------
// AWS CLI
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_login_password_works_on_v2_and_repositories_round_trip() {
    let server = start();
    let base = server.base.clone();
    let repo = format!("cli-{}/app", rand_suffix());

    let password = aws_ok(&server, &["get-login-password"]).trim().to_owned();
    assert!(!password.is_empty());
    let token = aws_json(&server, &["get-authorization-token"]);
    let created = aws_json(
        &server,
        &[
            "create-repository",
            "--repository-name",
            &repo,
            "--tags",
            "Key=team,Value=cli",
        ],
    );
    let missing = aws(
        &server,
        &[
            "describe-repositories",
            "--repository-names",
            "cli-missing/x",
        ],
    );

    // The password is a registry password for user AWS on /v2/.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .get(format!("{base}/v2/"))
        .basic_auth("AWS", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let resp = http
        .get(format!("{base}/v2/"))
        .basic_auth("AWS", Some("not-a-registry-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // get-authorization-token: base64("AWS:" + password), 12 hours, the registry URL.
    let data = &token["authorizationData"][0];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data["authorizationToken"].as_str().unwrap())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    let (user, token_password) = decoded.split_once(':').unwrap();
    assert_eq!(user, "AWS");
    assert!(!token_password.is_empty());
    assert_eq!(data["proxyEndpoint"], base.as_str());
    // CLI v1 prints the wire value (epoch seconds); other configurations print ISO 8601.
    let expires = match &data["expiresAt"] {
        Value::Number(n) => {
            chrono::DateTime::from_timestamp(n.as_f64().unwrap() as i64, 0).unwrap()
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("expiresAt {s:?}: {e}"))
            .with_timezone(&chrono::Utc),
        other => panic!("expiresAt: {other}"),
    };
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((11.9..=12.1).contains(&hours), "expires in {hours} h");

    assert_eq!(created["repository"]["repositoryName"], repo.as_str());
    assert_eq!(
        created["repository"]["repositoryUri"],
        format!("{}/{repo}", server.addr).as_str()
    );
    // The CLI exits non-zero on a service error (255 in v1, 254 in v2).
    assert!(!missing.status.success(), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("RepositoryNotFoundException"),
        "{missing:?}"
    );

    // Push an image over /v2 with the CLI's password, then delete the repository with --force.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {basic}").parse().unwrap(),
    );
    let api = Api {
        base: base.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .unwrap(),
    };
    let pushed = api.push_image(&repo, "latest").await;
    let images = aws_json(&server, &["list-images", "--repository-name", &repo]);
    let not_empty = aws(&server, &["delete-repository", "--repository-name", &repo]);
    let arn = format!("arn:aws:ecr:us-east-1:000000000000:repository/{repo}");
    let tags = aws_json(&server, &["list-tags-for-resource", "--resource-arn", &arn]);
    let deleted = aws_json(
        &server,
        &["delete-repository", "--repository-name", &repo, "--force"],
    );
    assert_eq!(
        images["imageIds"],
        json!([{"imageDigest": pushed.digest, "imageTag": "latest"}])
    );
    assert!(
        String::from_utf8_lossy(&not_empty.stderr).contains("RepositoryNotEmptyException"),
        "{not_empty:?}"
    );
    assert_eq!(tags["tags"], json!([{"Key": "team", "Value": "cli"}]));
    assert_eq!(deleted["repository"]["repositoryName"], repo.as_str());
    let resp = api.get_manifest(&repo, "latest").await;
    assert_eq!(resp.status().as_u16(), 404);
}

// ------------------------------------------------------------------------------------------------
// Signature attacks, signed from Rust
// ------------------------------------------------------------------------------------------------

struct Signed {
    headers: Vec<(String, String)>,
}

/// Signs a `POST /` ECR call as botocore would, at `now`.
fn signed(
    server: &TestServer,
    operation: &str,
    body: &[u8],
    key: &str,
    secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Signed {
    let headers = vec![
        ("host".to_owned(), server.addr.clone()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            format!("{TARGET_PREFIX}{operation}"),
        ),
    ];
    let signature = sign(
        &SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        },
        &SigningCredentials {
            access_key_id: key,
            secret_access_key: secret,
            region: REGION,
            service: "ecr",
        },
        now,
    );
    let mut headers: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(name, _)| name != "host")
        .collect();
    headers.push(("x-amz-date".into(), signature.amz_date));
    headers.push(("authorization".into(), signature.authorization));
    Signed { headers }
}

async fn send(server: &TestServer, signed: &Signed, body: &[u8]) -> (u16, Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut rb = http.post(format!("{}/", server.base)).body(body.to_vec());
    for (name, value) in &signed.headers {
        rb = rb.header(name.as_str(), value.as_str());
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/x-amz-json-1.1"),
        "{text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn expect(answer: (u16, Value), status: u16, kind: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["__type"], kind, "{}", answer.1);
    assert!(answer.1["message"].is_string(), "{}", answer.1);
}

fn invalid_signature_status() -> u16 {
    SigV4Error::InvalidSignature(String::new())
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigv4_attacks_are_refused() {
    let server = start();
    let body = br#"{"repositoryName":"attack/app"}"#;
    let now = chrono::Utc::now();

    // Control: the right key and secret work.
    let ok = signed(
        &server,
        "CreateRepository",
        body,
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    let answer = send(&server, &ok, body).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["repository"]["repositoryName"], "attack/app");

    let describe = br#"{"repositoryNames":["attack/app"]}"#;
    // Wrong secret.
    let s = signed(
        &server,
        "DescribeRepositories",
        describe,
        ADMIN_KEY,
        "wrong-secret",
        now,
    );
    expect(
        send(&server, &s, describe).await,
        invalid_signature_status(),
        "InvalidSignatureException",
    );
    // Unknown key.
    let s = signed(
        &server,
        "DescribeRepositories",
        describe,
        "AKIAUNKNOWNKEY000001",
        ADMIN_SECRET,
        now,
    );
    let status = SigV4Error::UnrecognizedClient(String::new())
        .status()
        .as_u16();
    expect(
        send(&server, &s, describe).await,
        status,
        "UnrecognizedClientException",
    );
    // A date 20 minutes old (outside the 15-minute window), and one 20 minutes ahead.
    for skew in [-20, 20] {
        let s = signed(
            &server,
            "DescribeRepositories",
            describe,
            ADMIN_KEY,
            ADMIN_SECRET,
            now + chrono::Duration::minutes(skew),
        );
        expect(
            send(&server, &s, describe).await,
            invalid_signature_status(),
            "InvalidSignatureException",
        );
    }
    // The body changed after signing: a delete signed as a harmless describe.
    let delete = br#"{"repositoryName":"attack/app","force":true}"#;
    let s = signed(
        &server,
        "DeleteRepository",
        describe,
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(
        send(&server, &s, delete).await,
        invalid_signature_status(),
        "InvalidSignatureException",
    );
    // The operation changed after signing.
    let mut s = signed(
        &server,
        "DescribeRepositories",
        delete,
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    for (name, value) in &mut s.headers {
        if name == "x-amz-target" {
            *value = format!("{TARGET_PREFIX}DeleteRepository");
        }
    }
    expect(
        send(&server, &s, delete).await,
        invalid_signature_status(),
        "InvalidSignatureException",
    );
    // No signature at all.
    let unsigned = Signed {
        headers: vec![
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            (
                "x-amz-target".into(),
                format!("{TARGET_PREFIX}DeleteRepository"),
            ),
        ],
    };
    let status = SigV4Error::MissingAuthentication(String::new())
        .status()
        .as_u16();
    expect(
        send(&server, &unsigned, delete).await,
        status,
        "MissingAuthenticationTokenException",
    );
    // Signed for another service.
    let headers = vec![
        ("host".to_owned(), server.addr.clone()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            format!("{TARGET_PREFIX}DeleteRepository"),
        ),
    ];
    let other = sign(
        &SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: delete,
        },
        &SigningCredentials {
            access_key_id: ADMIN_KEY,
            secret_access_key: ADMIN_SECRET,
            region: REGION,
            service: "s3",
        },
        now,
    );
    let s = Signed {
        headers: vec![
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            (
                "x-amz-target".into(),
                format!("{TARGET_PREFIX}DeleteRepository"),
            ),
            ("x-amz-date".into(), other.amz_date),
            ("authorization".into(), other.authorization),
        ],
    };
    expect(
        send(&server, &s, delete).await,
        invalid_signature_status(),
        "InvalidSignatureException",
    );

    // None of the refused deletes went through.
    let s = signed(
        &server,
        "DescribeRepositories",
        describe,
        ADMIN_KEY,
        ADMIN_SECRET,
        chrono::Utc::now(),
    );
    let answer = send(&server, &s, describe).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["repositories"][0]["repositoryName"], "attack/app");
}

#[tokio::test]
async fn non_admin_key_is_denied_and_malformed_calls_are_refused() {
    let server = start();
    let user_arn =
        create_plain_user(&server, "viewer", "AKIAECRTESTVIEWER001", "viewer-secret").await;
    let now = chrono::Utc::now();
    let body = br#"{"repositoryName":"team/app"}"#;
    let s = signed(
        &server,
        "CreateRepository",
        body,
        "AKIAECRTESTVIEWER001",
        "viewer-secret",
        now,
    );
    let answer = send(&server, &s, body).await;
    expect(answer.clone(), 400, "AccessDeniedException");
    let message = answer.1["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "User: {user_arn} is not authorized to perform: ecr:CreateRepository on resource: arn:aws:ecr:us-east-1:000000000000:repository/team/app"
        )),
        "{message}"
    );
    let s = signed(
        &server,
        "GetAuthorizationToken",
        b"{}",
        "AKIAECRTESTVIEWER001",
        "viewer-secret",
        now,
    );
    expect(send(&server, &s, b"{}").await, 400, "AccessDeniedException");

    // Unknown and unimplemented operations, malformed JSON, missing members.
    let s = signed(
        &server,
        "NoSuchOperation",
        b"{}",
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(
        send(&server, &s, b"{}").await,
        400,
        "UnknownOperationException",
    );
    let s = signed(
        &server,
        "PutSigningConfiguration",
        b"{}",
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(
        send(&server, &s, b"{}").await,
        400,
        "UnknownOperationException",
    );
    let s = signed(
        &server,
        "CreateRepository",
        b"{nope",
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(
        send(&server, &s, b"{nope").await,
        400,
        "SerializationException",
    );
    let s = signed(
        &server,
        "CreateRepository",
        b"{}",
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(send(&server, &s, b"{}").await, 400, "ValidationException");
    let wrong_type = br#"{"repositoryName":42}"#;
    let s = signed(
        &server,
        "CreateRepository",
        wrong_type,
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(
        send(&server, &s, wrong_type).await,
        400,
        "ValidationException",
    );

    // A body over the limit is refused before it is read whole.
    let big = vec![b' '; 2 * 1024 * 1024];
    let s = signed(
        &server,
        "DescribeRepositories",
        &big,
        ADMIN_KEY,
        ADMIN_SECRET,
        now,
    );
    expect(send(&server, &s, &big).await, 413, "ValidationException");
}

// ------------------------------------------------------------------------------------------------
// Both doors: the ECR API and the REST API run the same operations
// ------------------------------------------------------------------------------------------------

/// One REST call as `api`; (status, JSON body or `Null`).
async fn rest_value(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = api.req(method, path);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let resp = api.send(rb).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn rest_ok(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let what = format!("{method} {path}");
    let (status, value) = rest_value(api, method, path, body).await;
    assert!((200..300).contains(&status), "{what}: {status} {value}");
    value
}

/// The REST error's (status, code, message).
fn rest_error_of((status, body): (u16, Value)) -> (u16, String, String) {
    let e = &body["errors"][0];
    (
        status,
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The ECR error's (`__type`, message).
fn ecr_error_of((status, body): (u16, Value)) -> (String, String) {
    assert_eq!(status, 400, "{body}");
    (
        body["__type"].as_str().unwrap_or_default().to_owned(),
        body["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// One ECR call as the plain user `dev` (see [`create_plain_user`]).
async fn ecr_call_as_dev(server: &TestServer, operation: &str, body: Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let s = signed(
        server,
        operation,
        &bytes,
        "AKIAECRTESTBOTHDOOR1",
        "both-doors-secret",
        chrono::Utc::now(),
    );
    send(server, &s, &bytes).await
}

/// Repository creation templates through both doors: one shape (ECR's, with epoch-second
/// times) whichever door wrote or reads a template, one pagination token that either door
/// accepts, one error (kind and message) for the same mistake, the deleted template as the
/// answer of either delete, and a caller without permission refused before its request is
/// looked at, with the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_templates_are_one_operation_behind_both_doors() {
    use reqwest::Method;
    let server = start();
    let api = admin_api(&server);
    let base = "/api/v1/repository-creation-templates";
    let p = format!("both-{}", rand_suffix());
    let (a, b) = (format!("{p}/a"), format!("{p}/b"));
    ecr_ok(
        &server,
        "CreateRepositoryCreationTemplate",
        json!({"prefix": a, "appliedFor": ["CREATE_ON_PUSH"], "description": "by ECR"}),
    )
    .await;
    let (status, created) = rest_value(
        &api,
        Method::POST,
        base,
        Some(
            json!({"prefix": b, "appliedFor": ["REPLICATION"], "imageTagMutability": "IMMUTABLE"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["repositoryCreationTemplate"]["createdAt"].is_number());

    // Each door reads what the other wrote, in the same shape.
    for prefix in [&a, &b] {
        let by_ecr = ecr_ok(
            &server,
            "DescribeRepositoryCreationTemplates",
            json!({"prefixes": [prefix]}),
        )
        .await;
        let by_rest = rest_ok(&api, Method::GET, &format!("{base}/{prefix}"), None).await;
        assert_eq!(
            by_rest["repositoryCreationTemplate"], by_ecr["repositoryCreationTemplates"][0],
            "{prefix}"
        );
        assert_eq!(by_rest["registryId"], by_ecr["registryId"]);
    }

    // A page token of one door is the next page of the other.
    let page = rest_ok(
        &api,
        Method::GET,
        &format!("{base}?prefix={a}&prefix={b}&limit=1"),
        None,
    )
    .await;
    assert_eq!(page["repositoryCreationTemplates"][0]["prefix"], a.as_str());
    let next = ecr_ok(
        &server,
        "DescribeRepositoryCreationTemplates",
        json!({"prefixes": [a, b], "maxResults": 1, "nextToken": page["next"]}),
    )
    .await;
    assert_eq!(next["repositoryCreationTemplates"][0]["prefix"], b.as_str());
    let first = ecr_ok(
        &server,
        "DescribeRepositoryCreationTemplates",
        json!({"prefixes": [a, b], "maxResults": 1}),
    )
    .await;
    let token = first["nextToken"].as_str().unwrap();
    let next = rest_ok(
        &api,
        Method::GET,
        &format!("{base}?prefix={a}&prefix={b}&limit=1&after={token}"),
        None,
    )
    .await;
    assert_eq!(next["repositoryCreationTemplates"][0]["prefix"], b.as_str());
    assert_eq!(next["next"], Value::Null);

    // The same mistakes, the same errors.
    let taken = json!({"prefix": a, "appliedFor": ["CREATE_ON_PUSH"]});
    let (status, code, rest_message) =
        rest_error_of(rest_value(&api, Method::POST, base, Some(taken.clone())).await);
    let (kind, ecr_message) =
        ecr_error_of(ecr_call(&server, "CreateRepositoryCreationTemplate", taken).await);
    assert_eq!((status, code.as_str()), (409, "ALREADY_EXISTS"));
    assert_eq!(kind, "TemplateAlreadyExistsException");
    assert_eq!(rest_message, ecr_message);
    let (status, code, rest_message) = rest_error_of(
        rest_value(
            &api,
            Method::PUT,
            &format!("{base}/{p}/none"),
            Some(json!({"description": "x"})),
        )
        .await,
    );
    let (kind, ecr_message) = ecr_error_of(
        ecr_call(
            &server,
            "UpdateRepositoryCreationTemplate",
            json!({"prefix": format!("{p}/none"), "description": "x"}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    assert_eq!(kind, "TemplateNotFoundException");
    assert_eq!(rest_message, ecr_message);
    let (status, code, rest_message) =
        rest_error_of(rest_value(&api, Method::GET, &format!("{base}?limit=0"), None).await);
    let (kind, ecr_message) = ecr_error_of(
        ecr_call(
            &server,
            "DescribeRepositoryCreationTemplates",
            json!({"maxResults": 0}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER"));
    assert_eq!(kind, "InvalidParameterException");
    assert_eq!(rest_message, ecr_message);
    // The path names the template: a body naming another is refused.
    let (status, code, _) = rest_error_of(
        rest_value(
            &api,
            Method::PUT,
            &format!("{base}/{a}"),
            Some(json!({"prefix": b, "description": "moved"})),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER"));

    // An update through one door is what the other reads.
    rest_ok(
        &api,
        Method::PUT,
        &format!("{base}/{a}/"),
        Some(json!({"prefix": format!("{a}/"), "description": "by REST"})),
    )
    .await;
    let by_ecr = ecr_ok(
        &server,
        "DescribeRepositoryCreationTemplates",
        json!({"prefixes": [a]}),
    )
    .await;
    assert_eq!(
        by_ecr["repositoryCreationTemplates"][0]["description"],
        "by REST"
    );

    // A caller without permission is refused before its (invalid) request is looked at, with
    // one message.
    create_plain_user(&server, "dev", "AKIAECRTESTBOTHDOOR1", "both-doors-secret").await;
    let dev = Api::with_basic(&server.base, "dev", "plain-user-password");
    let invalid = json!({"prefix": "Not/Valid", "appliedFor": ["SOMETIMES"]});
    let (status, code, rest_message) =
        rest_error_of(rest_value(&dev, Method::POST, base, Some(invalid.clone())).await);
    let (kind, ecr_message) =
        ecr_error_of(ecr_call_as_dev(&server, "CreateRepositoryCreationTemplate", invalid).await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert_eq!(kind, "AccessDeniedException");
    assert_eq!(rest_message, ecr_message);
    assert!(
        rest_message.contains("ecr:CreateRepositoryCreationTemplate"),
        "{rest_message}"
    );

    // Either delete answers the deleted template, in the one shape.
    let before = rest_ok(&api, Method::GET, &format!("{base}/{a}"), None).await;
    let deleted = rest_ok(&api, Method::DELETE, &format!("{base}/{a}"), None).await;
    assert_eq!(deleted, before);
    let before = ecr_ok(
        &server,
        "DescribeRepositoryCreationTemplates",
        json!({"prefixes": [b]}),
    )
    .await;
    let deleted = ecr_ok(
        &server,
        "DeleteRepositoryCreationTemplate",
        json!({"prefix": b}),
    )
    .await;
    assert_eq!(
        deleted["repositoryCreationTemplate"],
        before["repositoryCreationTemplates"][0]
    );
    for prefix in [&a, &b] {
        let (status, code, _) =
            rest_error_of(rest_value(&api, Method::GET, &format!("{base}/{prefix}"), None).await);
        assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    }
}

/// Pull-through cache rules through both doors: one shape (ECR's members and epoch-second
/// times, plus Berth's `revalidateSecs` and `quotaBytes`, which both doors take), one
/// pagination token, one error for the same mistake (taken prefix, unknown rule, unknown
/// secret, a changed upstream), the deleted rule as the answer of either delete, validation
/// with the same outcome, and a caller without permission refused before its request is looked
/// at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_rules_are_one_operation_behind_both_doors() {
    use reqwest::Method;
    let server = start();
    let api = admin_api(&server);
    let base = "/api/v1/pull-through-rules";
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = rand_suffix();
    let (a, b) = (format!("pa{}", &s[..6]), format!("pb{}", &s[..6]));
    ecr_ok(
        &server,
        "CreatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": a, "upstreamRegistryUrl": upstream, "revalidateSecs": 60}),
    )
    .await;
    let (status, created) = rest_value(
        &api,
        Method::POST,
        base,
        Some(json!({"ecrRepositoryPrefix": b, "upstreamRegistryUrl": upstream, "quotaBytes": 1_000_000})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["createdAt"].is_number(), "{created}");

    // Each door reads what the other wrote, in the same shape, Berth's members included.
    for prefix in [&a, &b] {
        let by_ecr = ecr_ok(
            &server,
            "DescribePullThroughCacheRules",
            json!({"ecrRepositoryPrefixes": [prefix]}),
        )
        .await;
        let by_rest = rest_ok(&api, Method::GET, &format!("{base}/{prefix}"), None).await;
        assert_eq!(by_rest, by_ecr["pullThroughCacheRules"][0], "{prefix}");
    }
    let rule_a = rest_ok(&api, Method::GET, &format!("{base}/{a}"), None).await;
    assert_eq!(rule_a["revalidateSecs"], 60, "{rule_a}");
    assert_eq!(rule_a.get("quotaBytes"), None, "{rule_a}");
    let rule_b = rest_ok(&api, Method::GET, &format!("{base}/{b}"), None).await;
    assert_eq!(rule_b["quotaBytes"], 1_000_000, "{rule_b}");

    // A page token of one door is the next page of the other.
    let page = rest_ok(&api, Method::GET, &format!("{base}?limit=1"), None).await;
    assert_eq!(
        page["pullThroughCacheRules"][0]["ecrRepositoryPrefix"],
        a.as_str()
    );
    let next = ecr_ok(
        &server,
        "DescribePullThroughCacheRules",
        json!({"maxResults": 1, "nextToken": page["next"]}),
    )
    .await;
    assert_eq!(
        next["pullThroughCacheRules"][0]["ecrRepositoryPrefix"],
        b.as_str()
    );
    let first = ecr_ok(
        &server,
        "DescribePullThroughCacheRules",
        json!({"maxResults": 1}),
    )
    .await;
    let token = first["nextToken"].as_str().unwrap();
    let next = rest_ok(
        &api,
        Method::GET,
        &format!("{base}?limit=1&after={token}"),
        None,
    )
    .await;
    assert_eq!(
        next["pullThroughCacheRules"][0]["ecrRepositoryPrefix"],
        b.as_str()
    );
    assert_eq!(next["next"], Value::Null);

    // The same mistakes, the same errors.
    let taken = json!({"ecrRepositoryPrefix": a, "upstreamRegistryUrl": upstream});
    let (status, code, rest_message) =
        rest_error_of(rest_value(&api, Method::POST, base, Some(taken.clone())).await);
    let (kind, ecr_message) =
        ecr_error_of(ecr_call(&server, "CreatePullThroughCacheRule", taken).await);
    assert_eq!((status, code.as_str()), (409, "ALREADY_EXISTS"));
    assert_eq!(kind, "PullThroughCacheRuleAlreadyExistsException");
    assert_eq!(rest_message, ecr_message);
    let (status, code, rest_message) =
        rest_error_of(rest_value(&api, Method::GET, &format!("{base}/none-{s}"), None).await);
    let (kind, ecr_message) = ecr_error_of(
        ecr_call(
            &server,
            "DescribePullThroughCacheRules",
            json!({"ecrRepositoryPrefixes": [format!("none-{s}")]}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    assert_eq!(kind, "PullThroughCacheRuleNotFoundException");
    assert_eq!(rest_message, ecr_message);
    let unknown_secret =
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/nobody";
    let (status, code, rest_message) = rest_error_of(
        rest_value(
            &api,
            Method::PUT,
            &format!("{base}/{a}"),
            Some(json!({"credentialArn": unknown_secret})),
        )
        .await,
    );
    let (kind, ecr_message) = ecr_error_of(
        ecr_call(
            &server,
            "UpdatePullThroughCacheRule",
            json!({"ecrRepositoryPrefix": a, "credentialArn": unknown_secret}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER"));
    assert_eq!(kind, "SecretNotFoundException");
    assert_eq!(rest_message, ecr_message);
    let moved = "http://127.0.0.1:1";
    let (status, code, rest_message) = rest_error_of(
        rest_value(
            &api,
            Method::PUT,
            &format!("{base}/{a}"),
            Some(json!({"upstreamRegistryUrl": moved})),
        )
        .await,
    );
    let (kind, ecr_message) = ecr_error_of(
        ecr_call(
            &server,
            "UpdatePullThroughCacheRule",
            json!({"ecrRepositoryPrefix": a, "upstreamRegistryUrl": moved}),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER"));
    assert_eq!(kind, "InvalidParameterException");
    assert_eq!(rest_message, ecr_message);
    // The path names the rule: a body naming another is refused.
    let (status, code, _) = rest_error_of(
        rest_value(
            &api,
            Method::PUT,
            &format!("{base}/{a}"),
            Some(json!({"ecrRepositoryPrefix": b, "quotaBytes": 5})),
        )
        .await,
    );
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER"));
    assert_eq!(
        rest_ok(&api, Method::GET, &format!("{base}/{b}"), None).await["quotaBytes"],
        1_000_000
    );

    // An update through one door is what the other reads (Berth's members through ECR too).
    let updated = ecr_ok(
        &server,
        "UpdatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": b, "quotaBytes": 2_000_000}),
    )
    .await;
    assert_eq!(
        rest_ok(&api, Method::GET, &format!("{base}/{b}"), None).await,
        updated
    );

    // Validation reaches the (closed) upstream the same way through both doors.
    let by_rest = rest_ok(
        &api,
        Method::GET,
        &format!("{base}/{a}?validate=true"),
        None,
    )
    .await;
    let by_ecr = ecr_ok(
        &server,
        "ValidatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": a}),
    )
    .await;
    for answer in [&by_rest, &by_ecr] {
        assert_eq!(answer["isValid"], false, "{answer}");
        assert!(
            answer["failure"]
                .as_str()
                .is_some_and(|f| f.contains("could not be reached")),
            "{answer}"
        );
        assert_eq!(answer["ecrRepositoryPrefix"], a.as_str(), "{answer}");
    }

    // A caller without permission is refused before its (invalid) request is looked at, with
    // one message (ECR used to answer InvalidParameterException for the registry id first).
    create_plain_user(&server, "dev", "AKIAECRTESTBOTHDOOR1", "both-doors-secret").await;
    let dev = Api::with_basic(&server.base, "dev", "plain-user-password");
    let invalid = json!({"ecrRepositoryPrefix": "Not Valid", "upstreamRegistryUrl": "ftp://x",
                         "registryId": "999999999999"});
    let (status, code, rest_message) =
        rest_error_of(rest_value(&dev, Method::POST, base, Some(invalid.clone())).await);
    let (kind, ecr_message) =
        ecr_error_of(ecr_call_as_dev(&server, "CreatePullThroughCacheRule", invalid).await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert_eq!(kind, "AccessDeniedException");
    assert_eq!(rest_message, ecr_message);

    // Either delete answers the deleted rule, in the one shape; then it is gone for both.
    let deleted = rest_ok(&api, Method::DELETE, &format!("{base}/{a}"), None).await;
    assert_eq!(deleted, rule_a);
    let before = rest_ok(&api, Method::GET, &format!("{base}/{b}"), None).await;
    let deleted = ecr_ok(
        &server,
        "DeletePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": b}),
    )
    .await;
    assert_eq!(deleted, before);
    for prefix in [&a, &b] {
        let (status, code, _) = rest_error_of(
            rest_value(&api, Method::DELETE, &format!("{base}/{prefix}"), None).await,
        );
        assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    }
    let listed = ecr_ok(&server, "DescribePullThroughCacheRules", json!({})).await;
    assert_eq!(listed["pullThroughCacheRules"], json!([]));
}
