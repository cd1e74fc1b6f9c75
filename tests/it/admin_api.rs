//! The native admin REST API (`/api/v1/`) against a real, listening Berth: identities and their
//! policies take effect on `/v2` at once, the policy simulator explains decisions, refusals are
//! 401/403 in the JSON error shape, every call is audited without secrets, and the OpenAPI
//! document covers every mounted route. Runs on both stacks (`BERTH_TEST_STACK`).

use crate::support::{api, common};

use std::time::Duration;

use api::*;
use reqwest::Method;
use serde_json::{json, Value};

use common::TestServer;

const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-api-test-password";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// An [`Api`] client that sends `authorization` (if any) with every request.
fn client(base: &str, authorization: Option<String>) -> Api {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = authorization {
        let mut value = reqwest::header::HeaderValue::from_str(&value).unwrap();
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Api {
        base: base.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .no_proxy()
            .build()
            .unwrap(),
    }
}

fn as_user(server: &TestServer, user: &str, password: &str) -> Api {
    client(&server.base, Some(basic(user, password)))
}

fn as_admin(server: &TestServer) -> Api {
    as_user(server, ADMIN_USER, ADMIN_PASSWORD)
}

fn start() -> TestServer {
    TestServer::start_with(&[], &[("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)])
}

/// One of the example documents in `policies/access/`.
fn policy_file(name: &str) -> String {
    let path = format!("{}/policies/access/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sends an admin API request; returns the status and the body (JSON, or a string when the
/// body is not JSON, `Null` when empty).
async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = api.req(method, path);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let resp = api.send(rb).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Sends a raw body (a policy document) with PUT.
async fn put_text(api: &Api, path: &str, text: &str) -> (u16, Value) {
    let resp = api
        .send(
            api.req(Method::PUT, path)
                .header("content-type", "application/json")
                .body(text.to_owned()),
        )
        .await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts `status` and returns the body.
async fn expect(api: &Api, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
    let what = format!("{method} {path}");
    let (status, value) = call(api, method, path, body).await;
    assert_eq!(status, want, "{what}: {value}");
    value
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or("")
}

fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

async fn create_user(admin: &Api, name: &str, password: &str) {
    expect(
        admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": name, "password": password})),
        201,
    )
    .await;
}

/// Creates a robot account and returns its secret.
async fn create_robot(admin: &Api, name: &str, expires_at: Option<String>) -> String {
    let body = expect(
        admin,
        Method::POST,
        "/api/v1/robots",
        Some(json!({"name": name, "expiresAt": expires_at})),
        201,
    )
    .await;
    assert_eq!(body["loginName"], format!("robot/{name}"));
    body["secret"].as_str().expect("secret").to_owned()
}

async fn attach(admin: &Api, path: &str, document: &str) {
    let (status, body) = put_text(admin, path, document).await;
    assert_eq!(status, 204, "PUT {path}: {body}");
}

/// `GET /v2/` as `api`: 200 when its credentials are accepted, 401 otherwise.
async fn v2_status(api: &Api) -> u16 {
    api.get("/v2/").await.status().as_u16()
}

/// Status of starting an upload (the first step of any push).
async fn start_push_status(api: &Api, repo: &str) -> u16 {
    let resp = api
        .send(
            api.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
    resp.status().as_u16()
}

#[tokio::test]
async fn read_only_puller_can_pull_but_not_push() {
    let server = start();
    let admin = as_admin(&server);
    let image = admin.push_image("team/app", "v1").await;

    create_user(&admin, "reader", "reader-password").await;
    attach(
        &admin,
        "/api/v1/users/reader/policy",
        &policy_file("read-only-puller.json"),
    )
    .await;
    let stored = admin.get("/api/v1/users/reader/policy").await;
    assert_eq!(stored.status().as_u16(), 200);
    assert_eq!(
        stored.text().await.unwrap(),
        policy_file("read-only-puller.json"),
        "stored exactly as sent"
    );

    let reader = as_user(&server, "reader", "reader-password");
    let resp = reader.get_manifest("team/app", "v1").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        image.manifest.as_slice()
    );
    let blob = reader.get_blob("team/app", &image.layer_digests[0]).await;
    assert_eq!(blob.status().as_u16(), 200);

    let resp = reader
        .send(
            reader
                .req(Method::POST, "/v2/team/app/blobs/uploads/")
                .header("content-length", "0"),
        )
        .await;
    expect_error(resp, 403, &["DENIED"]).await;
    let resp = reader
        .put_manifest("team/app", "v2", OCI_MANIFEST, &image.manifest)
        .await;
    expect_error(resp, 403, &["DENIED"]).await;
    let resp = reader
        .delete(&format!("/v2/team/app/manifests/{}", image.digest))
        .await;
    expect_error(resp, 403, &["DENIED"]).await;

    // Detaching the policy takes effect at once.
    expect(
        &admin,
        Method::DELETE,
        "/api/v1/users/reader/policy",
        None,
        204,
    )
    .await;
    let resp = reader.get_manifest("team/app", "v1").await;
    expect_error(resp, 403, &["DENIED"]).await;
    expect(
        &admin,
        Method::GET,
        "/api/v1/users/reader/policy",
        None,
        404,
    )
    .await;
}

#[tokio::test]
async fn ci_robot_pushes_only_under_its_prefix() {
    let server = start();
    let admin = as_admin(&server);
    admin.push_image("team/app", "v1").await;
    let secret = create_robot(&admin, "ci", None).await;
    attach(
        &admin,
        "/api/v1/robots/ci/policy",
        &policy_file("ci-pusher-prefix.json"),
    )
    .await;
    let robot = as_user(&server, "robot/ci", &secret);

    // Create-on-push under ci/ (the policy allows ecr:CreateRepository there).
    let pushed = robot.push_image("ci/app", "build-1").await;
    let resp = robot.get_manifest("ci/app", "build-1").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(robot.tags("ci/app").await, vec!["build-1".to_string()]);

    for repo in ["team/app", "cinema", "prod/ci/app"] {
        assert_eq!(start_push_status(&robot, repo).await, 403, "push to {repo}");
    }
    let resp = robot.get_manifest("team/app", "v1").await;
    expect_error(resp, 403, &["DENIED"]).await;
    let resp = robot
        .delete(&format!("/v2/ci/app/manifests/{}", pushed.digest))
        .await;
    expect_error(resp, 403, &["DENIED"]).await;

    let info = expect(&admin, Method::GET, "/api/v1/robots/ci", None, 200).await;
    assert_eq!(info["arn"], "arn:aws:iam::000000000000:user/robot/ci");
    assert_eq!(info["expiresAt"], Value::Null);
    assert!(info.get("secret").is_none(), "the secret is shown once");

    // A regenerated secret replaces the old one.
    let body = expect(&admin, Method::POST, "/api/v1/robots/ci/secret", None, 200).await;
    let new_secret = body["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(v2_status(&robot).await, 401);
    assert_eq!(
        v2_status(&as_user(&server, "robot/ci", new_secret)).await,
        200
    );
}

#[tokio::test]
async fn group_policy_applies_to_members() {
    let server = start();
    let admin = as_admin(&server);
    admin.push_image("team/app", "v1").await;
    create_user(&admin, "dev", "dev-password").await;
    let dev = as_user(&server, "dev", "dev-password");
    let resp = dev.get_manifest("team/app", "v1").await;
    expect_error(resp, 403, &["DENIED"]).await;

    let group = expect(
        &admin,
        Method::POST,
        "/api/v1/groups",
        Some(json!({"name": "readers"})),
        201,
    )
    .await;
    assert_eq!(group["arn"], "arn:aws:iam::000000000000:group/readers");
    attach(
        &admin,
        "/api/v1/groups/readers/policy",
        &policy_file("read-only-puller.json"),
    )
    .await;
    let group = expect(
        &admin,
        Method::POST,
        "/api/v1/groups/readers/members",
        Some(json!({"member": "dev"})),
        200,
    )
    .await;
    assert_eq!(group["members"], json!(["dev"]));
    let user = expect(&admin, Method::GET, "/api/v1/users/dev", None, 200).await;
    assert_eq!(user["groups"], json!(["readers"]));

    let resp = dev.get_manifest("team/app", "v1").await;
    assert_eq!(resp.status().as_u16(), 200, "a member pulls");
    assert_eq!(start_push_status(&dev, "team/app").await, 403);

    // Robots can be members too.
    let secret = create_robot(&admin, "puller", None).await;
    expect(
        &admin,
        Method::POST,
        "/api/v1/groups/readers/members",
        Some(json!({"member": "robot/puller"})),
        200,
    )
    .await;
    let robot = as_user(&server, "robot/puller", &secret);
    assert_eq!(
        robot.get_manifest("team/app", "v1").await.status().as_u16(),
        200
    );
    let group = expect(&admin, Method::GET, "/api/v1/groups/readers", None, 200).await;
    assert_eq!(group["members"], json!(["dev", "robot/puller"]));

    expect(
        &admin,
        Method::DELETE,
        "/api/v1/groups/readers/members/dev",
        None,
        204,
    )
    .await;
    let resp = dev.get_manifest("team/app", "v1").await;
    expect_error(resp, 403, &["DENIED"]).await;

    // Deleting the group removes its policy from the remaining member.
    expect(&admin, Method::DELETE, "/api/v1/groups/readers", None, 204).await;
    let resp = robot.get_manifest("team/app", "v1").await;
    expect_error(resp, 403, &["DENIED"]).await;
    expect(&admin, Method::GET, "/api/v1/groups/readers", None, 404).await;
}

#[tokio::test]
async fn deny_delete_prod_registry_policy_blocks_deletes_there() {
    let server = start();
    let admin = as_admin(&server);
    let prod = admin.push_image("prod/app", "1").await;
    let production = admin.push_image("production/app", "1").await;
    attach(
        &admin,
        "/api/v1/registry-policy",
        &policy_file("deny-delete-prod.json"),
    )
    .await;
    let stored = admin.get("/api/v1/registry-policy").await;
    assert_eq!(
        stored.text().await.unwrap(),
        policy_file("deny-delete-prod.json")
    );

    let resp = admin
        .delete(&format!("/v2/prod/app/manifests/{}", prod.digest))
        .await;
    expect_error(resp, 403, &["DENIED"]).await;
    let resp = admin
        .delete(&format!(
            "/v2/production/app/manifests/{}",
            production.digest
        ))
        .await;
    assert_eq!(
        resp.status().as_u16(),
        202,
        "production/ is not under prod/*"
    );
    // Pushing to prod/ is unaffected.
    admin.push_image("prod/app", "2").await;

    expect(&admin, Method::DELETE, "/api/v1/registry-policy", None, 204).await;
    let resp = admin
        .delete(&format!("/v2/prod/app/manifests/{}", prod.digest))
        .await;
    assert_eq!(resp.status().as_u16(), 202, "the Deny is gone");
    expect(&admin, Method::GET, "/api/v1/registry-policy", None, 404).await;
}

#[tokio::test]
async fn changed_password_makes_the_old_one_and_its_tokens_fail() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "alice", "first-password").await;
    let old = as_user(&server, "alice", "first-password");
    assert_eq!(v2_status(&old).await, 200);
    // A registry token issued for the old password.
    let resp = old.get("/token?service=berth").await;
    assert_eq!(resp.status().as_u16(), 200);
    let token: Value = resp.json().await.unwrap();
    let token = token["token"].as_str().expect("token").to_owned();
    let bearer = client(&server.base, Some(format!("Bearer {token}")));
    assert_eq!(v2_status(&bearer).await, 200);

    expect(
        &admin,
        Method::PUT,
        "/api/v1/users/alice/password",
        Some(json!({"password": "second-password"})),
        204,
    )
    .await;
    assert_eq!(v2_status(&old).await, 401, "old password");
    assert_eq!(v2_status(&bearer).await, 401, "token of the old password");
    let new = as_user(&server, "alice", "second-password");
    assert_eq!(v2_status(&new).await, 200);

    // Too short a password is refused and changes nothing.
    let (status, body) = call(
        &admin,
        Method::PUT,
        "/api/v1/users/alice/password",
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    assert_eq!(v2_status(&new).await, 200);
}

#[tokio::test]
async fn expired_robot_is_refused() {
    let server = start();
    let admin = as_admin(&server);
    // An expiry in the past is refused at creation.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/robots",
        Some(json!({"name": "late", "expiresAt": past})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));

    let expires = chrono::Utc::now() + chrono::Duration::seconds(10);
    let secret = create_robot(&admin, "shortlived", Some(expires.to_rfc3339())).await;
    let robot = as_user(&server, "robot/shortlived", &secret);
    assert_eq!(v2_status(&robot).await, 200, "before expiry");
    let info = expect(&admin, Method::GET, "/api/v1/robots/shortlived", None, 200).await;
    assert_eq!(info["expired"], false);

    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    assert_eq!(v2_status(&robot).await, 401, "after expiry");
    let resp = robot.get("/token?service=berth").await;
    assert_eq!(resp.status().as_u16(), 401);
    let info = expect(&admin, Method::GET, "/api/v1/robots/shortlived", None, 200).await;
    assert_eq!(info["expired"], true);
}

#[tokio::test]
async fn deleted_robot_is_refused() {
    let server = start();
    let admin = as_admin(&server);
    let secret = create_robot(&admin, "gone", None).await;
    let robot = as_user(&server, "robot/gone", &secret);
    assert_eq!(v2_status(&robot).await, 200);
    let key = expect(
        &admin,
        Method::POST,
        "/api/v1/robots/gone/access-keys",
        None,
        201,
    )
    .await;
    assert!(key["accessKeyId"].as_str().is_some_and(|k| !k.is_empty()));

    expect(&admin, Method::DELETE, "/api/v1/robots/gone", None, 204).await;
    assert_eq!(v2_status(&robot).await, 401);
    expect(&admin, Method::GET, "/api/v1/robots/gone", None, 404).await;
    let list = expect(&admin, Method::GET, "/api/v1/robots", None, 200).await;
    assert_eq!(list["robots"], json!([]));
    expect(&admin, Method::DELETE, "/api/v1/robots/gone", None, 404).await;
}

#[tokio::test]
async fn access_keys_are_shown_once_listed_by_id_and_deleted() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "keyholder", "keyholder-password").await;
    let key = expect(
        &admin,
        Method::POST,
        "/api/v1/users/keyholder/access-keys",
        None,
        201,
    )
    .await;
    let id = key["accessKeyId"].as_str().unwrap().to_owned();
    let secret = key["secretAccessKey"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 20);
    let list = expect(
        &admin,
        Method::GET,
        "/api/v1/users/keyholder/access-keys",
        None,
        200,
    )
    .await;
    assert_eq!(list["accessKeys"].as_array().unwrap().len(), 1);
    assert_eq!(list["accessKeys"][0]["accessKeyId"], id.as_str());
    assert!(
        !list.to_string().contains(&secret),
        "listing shows ids only"
    );

    let path = format!("/api/v1/users/keyholder/access-keys/{id}");
    expect(&admin, Method::DELETE, &path, None, 204).await;
    expect(&admin, Method::DELETE, &path, None, 404).await;
    let list = expect(
        &admin,
        Method::GET,
        "/api/v1/users/keyholder/access-keys",
        None,
        200,
    )
    .await;
    assert_eq!(list["accessKeys"], json!([]));
}

#[tokio::test]
async fn names_are_validated_and_aws_is_reserved() {
    let server = start();
    let admin = as_admin(&server);
    for name in [
        "AWS",
        "aws",
        "anonymous",
        "",
        "has space",
        "slash/name",
        &"x".repeat(65),
    ] {
        let (status, body) = call(
            &admin,
            Method::POST,
            "/api/v1/users",
            Some(json!({"name": name, "password": "long-enough"})),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "INVALID_PARAMETER"),
            "user name {name:?}: {body}"
        );
    }
    for (path, name) in [("/api/v1/robots", "a/b"), ("/api/v1/groups", "x y")] {
        let (status, body) = call(&admin, Method::POST, path, Some(json!({"name": name}))).await;
        assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    }
    create_user(&admin, "Mixed.Case_+=,@-1", "long-enough").await;
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "Mixed.Case_+=,@-1", "password": "long-enough"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "ALREADY_EXISTS"));
    // Bodies past the limit ([limits] max_json_body_bytes, 1 MiB) are 413 in the JSON shape.
    let huge = format!("{{\"pad\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let (status, body) = put_text(&admin, "/api/v1/registry-policy", &huge).await;
    assert_eq!((status, error_code(&body)), (413, "SIZE_INVALID"), "{body}");
    // Unknown paths and methods too.
    let (status, body) = call(&admin, Method::GET, "/api/v1/nothing/here", None).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"));
    let (status, body) = call(&admin, Method::PATCH, "/api/v1/users", None).await;
    assert_eq!((status, error_code(&body)), (405, "UNSUPPORTED"));
    // Unknown fields and bad JSON are 400 in the JSON error shape.
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "x", "password": "long-enough", "admin": true})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    expect(&admin, Method::GET, "/api/v1/users/x", None, 404).await;
    // A misspelt expiry is refused rather than ignored: it must not make a robot that never
    // expires.
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/robots",
        Some(json!({"name": "nightly", "expiresIn": "90d"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    assert!(error_message(&body).contains("expiresIn"), "{body}");
    expect(&admin, Method::GET, "/api/v1/robots/nightly", None, 404).await;
    // The name comes from the path: the body cannot name another user.
    create_user(&admin, "pathuser", "long-enough").await;
    let (status, body) = call(
        &admin,
        Method::PUT,
        "/api/v1/users/pathuser/password",
        Some(json!({"name": "Mixed.Case_+=,@-1", "password": "another-password"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": 5})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    assert!(error_message(&body).contains("invalid JSON body"), "{body}");
}

/// The gate decides before the body is validated: a caller who may not change the settings
/// learns nothing from its (here, invalid) request and is recorded as denied, while an
/// administrator's same request is refused for its content and recorded as failed.
#[tokio::test]
async fn refused_callers_are_denied_before_their_request_is_validated() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "plain", "plain-password").await;
    let plain = as_user(&server, "plain", "plain-password");
    let misspelt = json!({"createOnPsuh": false});
    let (status, body) = call(
        &plain,
        Method::PUT,
        "/api/v1/settings",
        Some(misspelt.clone()),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "DENIED"), "{body}");
    assert!(error_message(&body).contains("berth:PutSettings"), "{body}");
    let (status, body) = call(&admin, Method::PUT, "/api/v1/settings", Some(misspelt)).await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    assert!(error_message(&body).contains("createOnPsuh"), "{body}");
    let settings = expect(&admin, Method::GET, "/api/v1/settings", None, 200).await;
    assert_eq!(settings, json!({"createOnPush": true}), "nothing changed");

    let log = expect(&admin, Method::GET, "/api/v1/audit?limit=20", None, 200).await;
    let outcomes: Vec<(&str, &str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "berth:PutSettings")
        .map(|e| {
            (
                e["principal"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["resource"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("admin", "failed", "settings"),
            ("plain", "denied", "settings")
        ]
    );
}

#[tokio::test]
async fn repositories_and_create_on_push() {
    let server = start();
    let admin = as_admin(&server);
    let repo = expect(
        &admin,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": "team/empty"})),
        201,
    )
    .await;
    assert_eq!(repo["repositoryName"], "team/empty");
    assert_eq!(
        repo["repositoryArn"],
        "arn:aws:ecr:us-east-1:000000000000:repository/team/empty"
    );
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": "team/empty"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "ALREADY_EXISTS"));
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": "Bad Name"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (400, "NAME_INVALID"));
    admin.push_image("team/full", "v1").await;

    let got = expect(
        &admin,
        Method::GET,
        "/api/v1/repositories/team/empty",
        None,
        200,
    )
    .await;
    assert_eq!(got["repositoryName"], "team/empty");
    let list = expect(&admin, Method::GET, "/api/v1/repositories", None, 200).await;
    let names: Vec<&str> = list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repositoryName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["team/empty", "team/full"]);
    let page = expect(
        &admin,
        Method::GET,
        "/api/v1/repositories?limit=1",
        None,
        200,
    )
    .await;
    assert_eq!(page["repositories"].as_array().unwrap().len(), 1);
    assert_eq!(page["repositories"][0]["repositoryName"], "team/empty");
    let next = page["next"].as_str().expect("a next page");
    let page = expect(
        &admin,
        Method::GET,
        &format!("/api/v1/repositories?limit=1&after={next}"),
        None,
        200,
    )
    .await;
    assert_eq!(page["repositories"][0]["repositoryName"], "team/full");
    assert_eq!(page["next"], Value::Null);

    // A user who may describe nothing sees an empty list and may not describe one.
    create_user(&admin, "nobody", "nobody-password").await;
    let nobody = as_user(&server, "nobody", "nobody-password");
    let list = expect(&nobody, Method::GET, "/api/v1/repositories", None, 200).await;
    assert_eq!(list["repositories"], json!([]));
    expect(
        &nobody,
        Method::GET,
        "/api/v1/repositories/team/full",
        None,
        403,
    )
    .await;

    let (status, body) = call(
        &admin,
        Method::DELETE,
        "/api/v1/repositories/team/full",
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "NOT_EMPTY"));
    expect(
        &admin,
        Method::DELETE,
        "/api/v1/repositories/team/full?force=true",
        None,
        200,
    )
    .await;
    expect(
        &admin,
        Method::DELETE,
        "/api/v1/repositories/team%2Fempty",
        None,
        200,
    )
    .await;
    expect(
        &admin,
        Method::GET,
        "/api/v1/repositories/team/empty",
        None,
        404,
    )
    .await;

    // Create-on-push off: a push to a missing repository is refused; on again: it works.
    let settings = expect(&admin, Method::GET, "/api/v1/settings", None, 200).await;
    assert_eq!(settings["createOnPush"], true);
    let settings = expect(
        &admin,
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"createOnPush": false})),
        200,
    )
    .await;
    assert_eq!(settings["createOnPush"], false);
    let resp = admin
        .send(
            admin
                .req(Method::POST, "/v2/fresh/app/blobs/uploads/")
                .header("content-length", "0"),
        )
        .await;
    expect_error(resp, 404, &["NAME_UNKNOWN"]).await;
    expect(
        &admin,
        Method::PUT,
        "/api/v1/settings",
        Some(json!({"createOnPush": true})),
        200,
    )
    .await;
    admin.push_image("fresh/app", "v1").await;

    // Repository policies: set, get, delete; a missing repository is 404.
    let anyone = policy_file("anonymous-pull.json");
    attach(&admin, "/api/v1/repository-policies/fresh/app", &anyone).await;
    let stored = admin.get("/api/v1/repository-policies/fresh/app").await;
    assert_eq!(stored.text().await.unwrap(), anyone);
    let anonymous = client(&server.base, None);
    assert_eq!(
        anonymous
            .get_manifest("fresh/app", "v1")
            .await
            .status()
            .as_u16(),
        200,
        "the repository policy lets anyone pull"
    );
    expect(
        &admin,
        Method::DELETE,
        "/api/v1/repository-policies/fresh/app",
        None,
        204,
    )
    .await;
    assert_eq!(
        anonymous
            .get_manifest("fresh/app", "v1")
            .await
            .status()
            .as_u16(),
        401
    );
    let (status, _) = put_text(&admin, "/api/v1/repository-policies/no/such", &anyone).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn policy_simulator_explains_decisions() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "reader", "reader-password").await;
    attach(
        &admin,
        "/api/v1/users/reader/policy",
        &policy_file("read-only-puller.json"),
    )
    .await;
    attach(
        &admin,
        "/api/v1/registry-policy",
        &policy_file("deny-delete-prod.json"),
    )
    .await;
    let simulate = |body: Value| {
        let admin = admin.clone();
        async move {
            expect(
                &admin,
                Method::POST,
                "/api/v1/policy-simulator",
                Some(body),
                200,
            )
            .await
        }
    };

    let allow = simulate(json!({
        "principal": "reader", "action": "ecr:BatchGetImage", "repository": "team/app"
    }))
    .await;
    assert_eq!(allow["decision"], "allow", "{allow}");
    assert_eq!(allow["statement"]["source"], "identity");
    assert_eq!(allow["statement"]["policy"], "user/reader");
    assert_eq!(allow["statement"]["sid"], "PullAndBrowseEverything");
    assert_eq!(allow["statement"]["index"], 1);
    assert_eq!(
        allow["principalArn"],
        "arn:aws:iam::000000000000:user/reader"
    );

    let deny = simulate(json!({
        "principal": "arn:aws:iam::000000000000:user/admin",
        "action": "ecr:BatchDeleteImage",
        "repository": "prod/app",
        "sourceIp": "10.1.2.3",
        "secureTransport": true
    }))
    .await;
    assert_eq!(deny["decision"], "explicitDeny", "{deny}");
    assert_eq!(deny["statement"]["source"], "registry");
    assert_eq!(deny["statement"]["sid"], "NoDeletesInProd");
    assert_eq!(deny["statement"]["index"], 0);
    assert!(
        deny["explanation"]
            .as_str()
            .unwrap()
            .contains("NoDeletesInProd"),
        "{deny}"
    );

    let implicit = simulate(json!({
        "principal": "reader", "action": "PutImage", "repository": "team/app"
    }))
    .await;
    assert_eq!(implicit["decision"], "implicitDeny", "{implicit}");
    assert_eq!(implicit["statement"], Value::Null);
    assert!(implicit["explanation"]
        .as_str()
        .unwrap()
        .contains("no statement allows"));

    let anonymous = simulate(json!({
        "principal": "anonymous", "action": "ecr:BatchGetImage", "repository": "team/app"
    }))
    .await;
    assert_eq!(anonymous["decision"], "implicitDeny");
    assert_eq!(anonymous["principalArn"], Value::Null);

    // Registry-level requests: the admin may put the registry policy; the reader may not.
    let admin_check =
        simulate(json!({"principal": "admin", "action": "ecr:PutRegistryPolicy"})).await;
    assert_eq!(admin_check["decision"], "allow");
    let reader_check =
        simulate(json!({"principal": "reader", "action": "ecr:PutRegistryPolicy"})).await;
    assert_eq!(reader_check["decision"], "implicitDeny");

    for (body, status) in [
        (
            json!({"principal": "nobody", "action": "ecr:BatchGetImage"}),
            404,
        ),
        (
            json!({"principal": "reader", "action": "s3:GetObject"}),
            400,
        ),
        (
            json!({"principal": "reader", "action": "ecr:BatchGetImage", "sourceIp": "nope"}),
            400,
        ),
        (
            json!({"principal": "arn:aws:iam::999:user/x", "action": "ecr:BatchGetImage"}),
            400,
        ),
        (
            json!({"principal": "reader", "action": "ecr:BatchGetImage", "repository": "Bad Name"}),
            400,
        ),
    ] {
        let (got, resp) = call(
            &admin,
            Method::POST,
            "/api/v1/policy-simulator",
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {resp}");
    }
}

#[tokio::test]
async fn invalid_policy_is_400_naming_the_statement() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "victim", "victim-password").await;
    let broken = |principal: Option<Value>| {
        let mut statements = vec![
            json!({"Sid": "Fine", "Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}),
            json!({"Sid": "Broken", "Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*",
                   "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-123"}}}),
        ];
        if let Some(p) = principal {
            for s in &mut statements {
                s["Principal"] = p.clone();
            }
        }
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    };
    for (path, document) in [
        ("/api/v1/users/victim/policy", broken(None)),
        ("/api/v1/registry-policy", broken(Some(json!("*")))),
    ] {
        let (status, body) = put_text(&admin, path, &document).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error_code(&body), "INVALID_PARAMETER");
        let message = error_message(&body);
        assert!(
            message.contains("Statement \"Broken\" (Statement[1])")
                && message.contains("aws:PrincipalOrgID"),
            "{path}: {message}"
        );
    }
    // The registry policy needs a Principal: named with the statement too.
    let (status, body) = put_text(
        &admin,
        "/api/v1/registry-policy",
        &policy_file("read-only-puller.json"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).contains("Statement \"SignIn\" (Statement[0])"),
        "{body}"
    );
    let (status, body) = put_text(&admin, "/api/v1/users/victim/policy", "{not json").await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    expect(
        &admin,
        Method::GET,
        "/api/v1/users/victim/policy",
        None,
        404,
    )
    .await;
    expect(&admin, Method::GET, "/api/v1/registry-policy", None, 404).await;
}

/// A concrete path for a mounted route (parameters filled in).
fn concrete(path: &str) -> String {
    path.replace("{*name}", "team/app")
        .replace("{*member}", "robot/ci")
        .replace("{*prefix}", "team/app")
        .replace("{name}", "someone")
        .replace("{key_id}", "AKIAEXAMPLEEXAMPLE00")
}

fn method_of(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap()
}

/// Routes any signed-in caller may call.
const SIGNED_IN_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/repositories"),
    ("get", "/api/v1/repository-summaries"),
];

#[tokio::test]
async fn non_admins_get_403_and_anonymous_callers_401_everywhere() {
    let server = start();
    let admin = as_admin(&server);
    admin.push_image("team/app", "v1").await;
    create_user(&admin, "someone", "someone-password").await;
    let nobody = as_user(&server, "someone", "someone-password");
    let anonymous = client(&server.base, None);
    let wrong = as_user(&server, "someone", "wrong-password");
    let routes = berth::http::admin::mounted_routes();
    assert!(routes.len() > 40);
    for (method, path) in routes {
        // Sub-resources are called at their public path (rewritten to the mounted one).
        let url = concrete(&berth::http::admin::public_path(path));
        let body = json!({"name": "x", "password": "long-enough-pw"});
        let (status, value) = call(&anonymous, method_of(method), &url, Some(body.clone())).await;
        assert_eq!(status, 401, "anonymous {method} {url}: {value}");
        assert_eq!(error_code(&value), "UNAUTHORIZED");
        let resp = anonymous.send(anonymous.req(method_of(method), &url)).await;
        let challenge = header(&resp, "www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");

        if !SIGNED_IN_ROUTES.contains(&(method, path)) {
            let (status, value) = call(&nobody, method_of(method), &url, Some(body)).await;
            assert_eq!(status, 403, "non-admin {method} {url}: {value}");
            assert_eq!(error_code(&value), "DENIED");
        }
    }
    let (status, _) = call(&wrong, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 401, "a wrong password");
    let (status, _) = call(
        &client(&server.base, Some("Bearer not-a-token".into())),
        Method::GET,
        "/api/v1/users",
        None,
    )
    .await;
    assert_eq!(status, 401, "an invalid token");
    for (method, path) in SIGNED_IN_ROUTES {
        let (status, value) = call(&nobody, method_of(method), path, None).await;
        assert_eq!(status, 200, "{method} {path}: {value}");
    }
    // Nothing was changed by the refused calls.
    let users = expect(&admin, Method::GET, "/api/v1/users", None, 200).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    assert_eq!(
        admin.get_manifest("team/app", "v1").await.status().as_u16(),
        200
    );
}

#[tokio::test]
async fn registry_tokens_do_not_open_the_admin_api() {
    let server = start();
    let admin = as_admin(&server);
    let resp = admin.get("/token?service=berth").await;
    assert_eq!(resp.status().as_u16(), 200);
    let token: Value = resp.json().await.unwrap();
    let bearer = client(
        &server.base,
        Some(format!("Bearer {}", token["token"].as_str().unwrap())),
    );
    // Even the admin's own token: registry tokens are scoped to /v2.
    expect(&bearer, Method::GET, "/api/v1/users", None, 401).await;
    let resp = client(&server.base, None).get("/token?service=berth").await;
    assert_eq!(resp.status().as_u16(), 200);
    let token: Value = resp.json().await.unwrap();
    let anonymous = client(
        &server.base,
        Some(format!("Bearer {}", token["token"].as_str().unwrap())),
    );
    expect(&anonymous, Method::GET, "/api/v1/users", None, 401).await;
    expect(&admin, Method::GET, "/api/v1/users", None, 200).await;
}

#[tokio::test]
async fn signing_keys_rotate() {
    let server = start();
    let admin = as_admin(&server);
    let before = expect(&admin, Method::GET, "/api/v1/signing-keys", None, 200).await;
    let old_kid = before["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(before["keys"][0]["signing"], true);
    let rotated = expect(
        &admin,
        Method::POST,
        "/api/v1/signing-keys/rotate",
        None,
        200,
    )
    .await;
    let new_kid = rotated["kid"].as_str().unwrap();
    assert_ne!(new_kid, old_kid);
    let after = expect(&admin, Method::GET, "/api/v1/signing-keys", None, 200).await;
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids[0], new_kid, "the new key signs");
    assert!(
        kids.contains(&old_kid.as_str()),
        "the old key still verifies"
    );
}

/// GET /api/v1/gc says how often this server collects garbage (the default, 600 s), beside its
/// queues and what it reclaimed.
#[tokio::test]
async fn gc_status_reports_the_background_interval() {
    let server = start();
    let admin = as_admin(&server);
    let stats = expect(&admin, Method::GET, "/api/v1/gc", None, 200).await;
    assert_eq!(stats["intervalSecs"], 600.0, "{stats}");
    assert_eq!(stats["gracePeriodSecs"], 86400, "{stats}");
    assert_eq!(stats["queue"]["blobsDue"], 0, "{stats}");
    assert!(stats["sinceStart"]["passes"].is_u64(), "{stats}");
}

#[tokio::test]
async fn audit_log_records_calls_without_secrets() {
    let server = start();
    let admin = as_admin(&server);
    create_user(&admin, "audited", "audited-password-1").await;
    expect(
        &admin,
        Method::PUT,
        "/api/v1/users/audited/password",
        Some(json!({"password": "audited-password-2"})),
        204,
    )
    .await;
    let robot_secret = create_robot(&admin, "auditbot", None).await;
    let regenerated = expect(
        &admin,
        Method::POST,
        "/api/v1/robots/auditbot/secret",
        None,
        200,
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = expect(
        &admin,
        Method::POST,
        "/api/v1/users/audited/access-keys",
        None,
        201,
    )
    .await;
    let key_secret = key["secretAccessKey"].as_str().unwrap().to_owned();
    let key_id = key["accessKeyId"].as_str().unwrap().to_owned();
    // A refused call and a failed one.
    let audited = as_user(&server, "audited", "audited-password-2");
    expect(&audited, Method::GET, "/api/v1/groups", None, 403).await;
    expect(&admin, Method::GET, "/api/v1/users/missing", None, 404).await;

    let log = expect(&admin, Method::GET, "/api/v1/audit?limit=50", None, 200).await;
    let entries = log["entries"].as_array().unwrap();
    let find = |action: &str, outcome: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} {action} entry in {log}"))
            .clone()
    };
    let created = find("berth:CreateUser", "success");
    assert_eq!(created["principal"], "admin");
    assert_eq!(created["sourceIp"], "127.0.0.1");
    assert!(created["detail"].as_str().unwrap().contains("audited"));
    let changed = find("berth:ChangePassword", "success");
    assert_eq!(
        changed["resource"],
        "arn:aws:iam::000000000000:user/audited"
    );
    find("berth:CreateRobot", "success");
    find("berth:RegenerateRobotSecret", "success");
    let key_entry = find("berth:CreateAccessKey", "success");
    assert!(key_entry["detail"].as_str().unwrap().contains(&key_id));
    let denied = find("berth:ListGroups", "denied");
    assert_eq!(denied["principal"], "audited");
    // A failure records its kind of error only (never the message, which may quote input).
    let failed = find("berth:GetUser", "failed");
    assert_eq!(failed["detail"], "NotFound");
    assert_eq!(failed["resource"], "arn:aws:iam::000000000000:user/missing");

    // Newest first, and paging with `before` continues where the page ended.
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let page = expect(&admin, Method::GET, "/api/v1/audit?limit=2", None, 200).await;
    let next = page["next"].as_i64().expect("next");
    let rest = expect(
        &admin,
        Method::GET,
        &format!("/api/v1/audit?limit=2&before={next}"),
        None,
        200,
    )
    .await;
    assert!(rest["entries"][0]["id"].as_i64().unwrap() < next);
    expect(&admin, Method::GET, "/api/v1/audit?limit=x", None, 400).await;

    let everything = log.to_string();
    let server_log = server.log();
    for secret in [
        "audited-password-1",
        "audited-password-2",
        robot_secret.as_str(),
        regenerated.as_str(),
        key_secret.as_str(),
        ADMIN_PASSWORD,
    ] {
        assert!(!everything.contains(secret), "the audit log holds a secret");
        assert!(
            !server_log.contains(secret),
            "the server log holds a secret"
        );
    }
}

#[tokio::test]
async fn openapi_document_covers_every_mounted_route() {
    let server = start();
    let admin = as_admin(&server);
    let doc = expect(&admin, Method::GET, "/api/v1/openapi.json", None, 200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    let mounted = berth::http::admin::mounted_routes();
    let mut mounted_pairs = Vec::new();
    for (method, path) in &mounted {
        // Sub-resources are mounted at internal paths and documented at their public ones.
        let documented = berth::http::admin::public_path(path).replace("{*", "{");
        let op = &paths
            .get(&documented)
            .unwrap_or_else(|| panic!("{documented} is mounted but not documented"))[*method];
        assert!(
            op.is_object(),
            "{method} {documented} is mounted but not documented"
        );
        assert!(op["operationId"].is_string() && op["responses"].is_object());
        mounted_pairs.push((method.to_string(), documented));
    }
    // And nothing is documented that is not served.
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                mounted_pairs.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not mounted"
            );
        }
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
}

/// The REST API of repository creation templates: create (201, 409 when the prefix is taken,
/// 400 naming the field), get, list with a prefix filter and pagination, update, delete (404
/// after); and a push under the prefix creates the repository with the template's settings.
#[tokio::test]
async fn repository_creation_templates() {
    let server = start();
    let admin = as_admin(&server);
    let prefix = format!("tpl-{}", rand_suffix());
    let base = "/api/v1/repository-creation-templates";
    let lifecycle = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}"#;
    let created = expect(
        &admin,
        Method::POST,
        base,
        Some(json!({
            "prefix": format!("{prefix}/team/"), "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE", "lifecyclePolicy": lifecycle,
            "resourceTags": [{"Key": "team", "Value": "a"}],
            "imageScanningConfiguration": {"scanOnPush": true},
        })),
        201,
    )
    .await;
    let t = &created["repositoryCreationTemplate"];
    assert_eq!(t["prefix"], format!("{prefix}/team"), "{created}");
    assert_eq!(t["imageScanningConfiguration"]["scanOnPush"], true);
    // ECR's timestamps (epoch seconds), as the ECR API answers.
    assert!(t["createdAt"].as_f64().unwrap() > 1.6e9, "{t}");
    let (status, body) = call(
        &admin,
        Method::POST,
        base,
        Some(json!({"prefix": format!("{prefix}/team"), "appliedFor": ["REPLICATION"]})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (409, "ALREADY_EXISTS"),
        "{body}"
    );
    let (status, body) = call(
        &admin,
        Method::POST,
        base,
        Some(json!({"prefix": format!("{prefix}/x"), "appliedFor": ["CREATE_ON_PUSH"], "lifecyclePolicy": "{}"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "INVALID_PARAMETER"),
        "{body}"
    );
    assert!(error_message(&body).contains("'lifecyclePolicy'"), "{body}");
    for i in 0..3 {
        expect(
            &admin,
            Method::POST,
            base,
            Some(json!({"prefix": format!("{prefix}/p{i}"), "appliedFor": ["REPLICATION"]})),
            201,
        )
        .await;
    }

    let item = format!("{base}/{prefix}/team");
    let got = expect(&admin, Method::GET, &item, None, 200).await;
    assert_eq!(
        got["repositoryCreationTemplate"]["lifecyclePolicy"],
        lifecycle
    );
    let filtered = expect(
        &admin,
        Method::GET,
        &format!("{base}?prefix={prefix}/p1&prefix={prefix}/team&prefix={prefix}/none"),
        None,
        200,
    )
    .await;
    let names: Vec<&str> = filtered["repositoryCreationTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{prefix}/p1"), format!("{prefix}/team")]);
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = expect(
            &admin,
            Method::GET,
            &format!("{base}?limit=3&after={after}"),
            None,
            200,
        )
        .await;
        for t in page["repositoryCreationTemplates"].as_array().unwrap() {
            seen.push(t["prefix"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["p0", "p1", "p2", "team"].map(|s| format!("{prefix}/{s}"))
    );

    let updated = expect(
        &admin,
        Method::PUT,
        &item,
        Some(json!({"description": "team templates"})),
        200,
    )
    .await;
    let t = &updated["repositoryCreationTemplate"];
    assert_eq!(t["description"], "team templates");
    assert_eq!(t["imageTagMutability"], "IMMUTABLE", "{t}");
    let (status, body) = call(
        &admin,
        Method::PUT,
        &item,
        Some(json!({"appliedFor": ["SOMETIMES"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("'appliedFor.1.member'"),
        "{body}"
    );
    let (status, body) = call(
        &admin,
        Method::PUT,
        &format!("{base}/{prefix}/none"),
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");

    // A push under the prefix creates the repository with the template's settings.
    let repo = format!("{prefix}/team/app");
    admin.push_image(&repo, "v1").await;
    let described = expect(
        &admin,
        Method::GET,
        &format!("/api/v1/repositories/{repo}"),
        None,
        200,
    )
    .await;
    assert_eq!(described["imageTagMutability"], "IMMUTABLE", "{described}");
    assert_eq!(described["imageScanningConfiguration"]["scanOnPush"], true);
    let policy = expect(
        &admin,
        Method::GET,
        &format!("/api/v1/repositories/{repo}/lifecycle-policy"),
        None,
        200,
    )
    .await;
    assert!(
        policy.to_string().contains("imageCountMoreThan"),
        "{policy}"
    );

    let deleted = expect(&admin, Method::DELETE, &item, None, 200).await;
    assert_eq!(
        deleted["repositoryCreationTemplate"]["description"],
        "team templates"
    );
    let (status, body) = call(&admin, Method::GET, &item, None).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
}
