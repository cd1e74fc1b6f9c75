//! Registries that trust each other (`[federation]`), against real, listening Berths: a registry
//! reads each trusted registry's signing keys from its JWKS URL, follows a key rotation there,
//! and keeps the last good keys (saying why) when the trusted registry is unreachable; a user
//! of one logs in to the other with a password their registry signed (the token flow and
//! docker), and gets there exactly what that registry's policies grant. Runs on both stacks
//! (`BERTH_TEST_STACK`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::common::{admin_client, TestServer};
use crate::support::e2e;

pub const A_ID: &str = "000000000000";
pub const B_ID: &str = "111111111111";

async fn get(server: &TestServer, path: &str) -> Value {
    let response = admin_client().get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// Polls `what` until it holds (the refresh runs every second here), failing after 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn key_ids(listing: &Value) -> Vec<String> {
    listing["registries"][0]["key_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_trusted_registrys_keys_are_read_followed_and_kept_when_it_is_down() {
    let mut a = TestServer::start();
    let registries = json!([{
        "registry_id": A_ID,
        "region": "us-east-1",
        "url": a.url(""),
        "jwks": a.url("/token/jwks.json"),
    }])
    .to_string();
    let b = TestServer::start_with(
        &[],
        &[
            ("BERTH_REGISTRY_ID", B_ID),
            ("BERTH_REGION", "eu-west-1"),
            ("BERTH_FEDERATION_JWKS_REFRESH_SECS", "1"),
            ("BERTH_FEDERATION_REGISTRIES", &registries),
        ],
    );
    // A trusts nobody.
    assert_eq!(
        get(&a, "/api/v1/federation/registries").await,
        json!({"registries": []})
    );

    // B reads A's published keys: exactly the ones A signs and verifies with.
    let a_kids = |keys: &Value| -> Vec<String> {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let published = a_kids(&get(&a, "/api/v1/signing-keys").await);
    eventually("B has read A's keys", async || {
        !key_ids(&get(&b, "/api/v1/federation/registries").await).is_empty()
    })
    .await;
    let listing = get(&b, "/api/v1/federation/registries").await;
    let entry = &listing["registries"][0];
    assert_eq!(entry["registry_id"], A_ID);
    assert_eq!(entry["region"], "us-east-1");
    assert_eq!(key_ids(&listing), published);
    assert!(entry["refreshed_at"].is_string(), "{entry}");
    assert!(entry["error"].is_null(), "{entry}");

    // A rotates its signing key: B follows within its refresh interval.
    let response = admin_client()
        .post(a.url("/api/v1/signing-keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let new_kid = response.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!published.contains(&new_kid));
    eventually("B trusts A's new key", async || {
        key_ids(&get(&b, "/api/v1/federation/registries").await).contains(&new_kid)
    })
    .await;
    let trusted = key_ids(&get(&b, "/api/v1/federation/registries").await);

    // A goes away: B keeps the last good keys and says why.
    a.kill();
    eventually("B reports A unreachable", async || {
        get(&b, "/api/v1/federation/registries").await["registries"][0]["error"].is_string()
    })
    .await;
    let listing = get(&b, "/api/v1/federation/registries").await;
    assert_eq!(key_ids(&listing), trusted);
    let error = listing["registries"][0]["error"].as_str().unwrap();
    assert!(error.contains("cannot reach"), "{error}");
}

#[tokio::test]
async fn the_trusted_registries_are_for_admins_only() {
    let server = TestServer::start();
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/federation/registries"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

// ---- passwords one registry signs for another ----

const C_ID: &str = "222222222222";
const ALICE: &str = "alice";
const ALICE_PASSWORD: &str = "alice-password-1";

/// Registries A and B on the stack under test: see [`trusting_pair_on`].
async fn trusting_pair() -> (e2e::Registry, e2e::Registry) {
    let pg = crate::support::common::stack_is_pg_s3();
    trusting_pair_on((pg, &[]), (pg, &[])).await
}

/// Registry A and registry B (another account and region), each on PostgreSQL + S3 or SQLite
/// and files as asked and with extra environment, trusting each other; A also trusts a
/// registry C that never runs, so that it can mint a password for the wrong audience. Both are
/// wrapped as e2e registries (admin credentials) so real clients can push to them.
pub async fn trusting_pair_on(
    (a_pg, a_env): (bool, &[(&str, &str)]),
    (b_pg, b_env): (bool, &[(&str, &str)]),
) -> (e2e::Registry, e2e::Registry) {
    let start = |pg: bool, env: &[(&str, &str)]| {
        if pg {
            TestServer::start_on_pg_s3(&[], env)
        } else {
            TestServer::start_on_sqlite_fs(&[], env)
        }
    };
    let mut a_vars = vec![("BERTH_REGISTRY_ID", A_ID)];
    a_vars.extend_from_slice(a_env);
    let mut a = start(a_pg, &a_vars);
    let a_trusted = json!([{"registry_id": A_ID, "region": "us-east-1", "url": a.url(""),
                             "jwks": a.url("/token/jwks.json")}])
    .to_string();
    let mut b_vars = vec![
        ("BERTH_REGISTRY_ID", B_ID),
        ("BERTH_REGION", "eu-west-1"),
        ("BERTH_FEDERATION_REGISTRIES", a_trusted.as_str()),
    ];
    b_vars.extend_from_slice(b_env);
    let mut b = start(b_pg, &b_vars);
    let trusted_by_a = json!([
        {"registry_id": B_ID, "region": "eu-west-1", "url": b.url(""),
         "jwks": b.url("/token/jwks.json")},
        {"registry_id": C_ID, "region": "ap-south-1", "url": "http://127.0.0.1:9",
         "jwks": "http://127.0.0.1:9/token/jwks.json"},
    ])
    .to_string();
    a.set_env("BERTH_FEDERATION_REGISTRIES", Some(&trusted_by_a));
    a.restart();
    // B's first read of A's keys may have met A restarting: start B again, and wait until it
    // has A's keys, so that every later read of A's JWKS is the one a test asks for.
    b.restart();
    eventually("B has read A's keys", async || {
        !key_ids(&get(&b, "/api/v1/federation/registries").await).is_empty()
    })
    .await;
    (e2e::Registry::of_server(a), e2e::Registry::of_server(b))
}

pub fn server(registry: &e2e::Registry) -> &TestServer {
    registry.server().expect("a Berth the test started")
}

async fn admin_put(server: &TestServer, path: &str, body: &Value) {
    let response = admin_client()
        .put(server.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "PUT {path}: {}",
        response.text().await.unwrap()
    );
}

/// Creates A's user `alice`, allowed to ask for registry passwords.
async fn create_alice(a: &TestServer) {
    let response = admin_client()
        .post(a.url("/api/v1/users"))
        .json(&json!({"name": ALICE, "password": ALICE_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]});
    admin_put(a, &format!("/api/v1/users/{ALICE}/policy"), &policy).await;
}

/// `POST /api/v1/federation/passwords` at A as alice: (status, body).
async fn federated_password(a: &TestServer, registry_id: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(a.url("/api/v1/federation/passwords"))
        .basic_auth(ALICE, Some(ALICE_PASSWORD))
        .json(&json!({ "registry_id": registry_id }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A pull-only repository policy for `principal`.
fn pull_policy(principal: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "federated-pull", "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:BatchCheckLayerAvailability"]}]})
}

/// `/token` at `server` with Basic `AWS:<password>` for `scope`: (status, body).
async fn token(server: &TestServer, password: &str, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/token?service=berth&{query}")))
        .basic_auth("AWS", Some(password))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The manifest `repository:v1` at `server` with `token`: the status.
async fn pull_manifest(server: &TestServer, repository: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(server.url(&format!("/v2/{repository}/manifests/v1")))
        .bearer_auth(token)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What a user of A gets at B with a password A signed: exactly what B's policies grant.
async fn pulls_with(b: &TestServer, password: &str, repository: &str) -> u16 {
    let (status, body) = token(b, password, &format!("scope=repository:{repository}:pull")).await;
    assert_eq!(status, 200, "token at B: {body}");
    pull_manifest(b, repository, body["token"].as_str().unwrap()).await
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A password in the shape A signs, but signed by a key of the test's own.
fn forged_password(issuer: &str) -> String {
    use berth::auth::token::{Claims, SigningKey, TokenType};
    let now = chrono::Utc::now();
    let arn = format!("arn:aws:iam::{issuer}:user/{ALICE}");
    let claims = Claims::new(
        TokenType::FederatedPassword,
        issuer,
        B_ID,
        &arn,
        now,
        chrono::Duration::hours(1),
    )
    .with_principal(&arn);
    SigningKey::generate().sign(&claims).unwrap()
}

#[tokio::test]
async fn a_user_of_a_pulls_at_b_where_b_policies_name_them_and_nowhere_else() {
    let (a_reg, b_reg) = trusting_pair().await;
    let (a, b) = (server(&a_reg), server(&b_reg));
    create_alice(a).await;
    for repository in ["shared/app", "team/app", "private/app"] {
        e2e::push_test_image(&b_reg, repository, "v1", None);
    }
    let alice_arn = format!("arn:aws:iam::{A_ID}:user/{ALICE}");
    admin_put(
        b,
        "/api/v1/repository-policies/shared/app",
        &pull_policy(&alice_arn),
    )
    .await;
    let a_root = format!("arn:aws:iam::{A_ID}:root");
    admin_put(
        b,
        "/api/v1/repository-policies/team/app",
        &pull_policy(&a_root),
    )
    .await;

    // A signs alice a password for B: audience B, subject her ARN, an hour long.
    let (status, minted) = federated_password(a, B_ID).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["username"], "AWS");
    assert_eq!(minted["proxy_endpoint"], b.url(""));
    let password = minted["password"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&password);
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some(A_ID), Some(B_ID))
    );
    assert_eq!(claims["sub"], alice_arn.as_str());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(
        minted["expires_at"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap() * 1000
    );
    // Only for registries A trusts.
    let (status, body) = federated_password(a, "333333333333").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("registryIds"), "{body}");

    // At B: her repository and A's root's, nothing else.
    assert_eq!(pulls_with(b, &password, "shared/app").await, 200);
    assert_eq!(pulls_with(b, &password, "team/app").await, 200);
    assert_eq!(pulls_with(b, &password, "private/app").await, 403);
    // Basic on /v2 directly decides the same way.
    let basic = |repository: &str| {
        reqwest::Client::new()
            .get(b.url(&format!("/v2/{repository}/manifests/v1")))
            .basic_auth("AWS", Some(&password))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
    };
    assert_eq!(basic("shared/app").await.unwrap().status(), 200);
    assert_eq!(basic("private/app").await.unwrap().status(), 403);
    // Pull only: no push where the policy grants only pull.
    let (status, body) = token(b, &password, "scope=repository:shared/app:pull,push").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_claims(body["token"].as_str().unwrap())["access"][0]["actions"],
        json!(["pull"])
    );

    // docker asks for a refresh token at login: it expires with the password, not in a week,
    // and it works at B.
    let (status, body) = token(b, &password, "offline_token=true&client_id=docker").await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(jwt_claims(refresh)["exp"].as_i64() <= claims["exp"].as_i64());
    let response = reqwest::Client::new()
        .post(b.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("service", "berth"),
            ("client_id", "docker"),
            ("refresh_token", refresh),
            ("scope", "repository:shared/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let access: Value = response.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap();
    assert!(jwt_claims(access)["exp"].as_i64() <= claims["exp"].as_i64());
    assert_eq!(pull_manifest(b, "shared/app", access).await, 200);

    // It manages nothing at B, and it is no password at A.
    let response = reqwest::Client::new()
        .get(b.url("/api/v1/repositories"))
        .basic_auth("AWS", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("federated_password"));
    let (status, _) = token(a, &password, "scope=repository:shared/app:pull").await;
    assert_eq!(status, 401, "A accepts the password it signed for B");

    // A rotates its signing key: a password signed with the new key works at B at once (B
    // reads A's keys again when a password names one it has not seen).
    let response = admin_client()
        .post(a.url("/api/v1/signing-keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, minted) = federated_password(a, B_ID).await;
    assert_eq!(status, 200, "{minted}");
    let rotated = minted["password"].as_str().unwrap().to_owned();
    assert_ne!(jwt_claims(&rotated)["jti"], claims["jti"]);
    assert_eq!(pulls_with(b, &rotated, "shared/app").await, 200);
    // The password signed before the rotation still works until it expires.
    assert_eq!(pulls_with(b, &password, "shared/app").await, 200);

    // Refused as every bad token is: a password for another audience (C), a key B does not
    // know for A, and a registry B does not trust.
    let (status, minted) = federated_password(a, C_ID).await;
    assert_eq!(status, 200, "{minted}");
    for (what, bad) in [
        (
            "for another audience",
            minted["password"].as_str().unwrap().to_owned(),
        ),
        ("signed by a key A never published", forged_password(A_ID)),
        (
            "signed by a registry B does not trust",
            forged_password("333333333333"),
        ),
    ] {
        let (status, body) = token(b, &bad, "scope=repository:team/app:pull").await;
        assert_eq!(status, 401, "a password {what}: {body}");
        assert!(
            body.to_string().contains("invalid registry password"),
            "{what}: {body}"
        );
    }
}

#[test]
fn aws_cli_password_from_a_logs_docker_in_to_b() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a_reg, b_reg) = rt.block_on(trusting_pair());
    let (a, b) = (server(&a_reg), server(&b_reg));
    rt.block_on(create_alice(a));
    for repository in ["shared/app", "private/app"] {
        e2e::push_test_image(&b_reg, repository, "v1", None);
    }
    let alice_arn = format!("arn:aws:iam::{A_ID}:user/{ALICE}");
    rt.block_on(admin_put(
        b,
        "/api/v1/repository-policies/shared/app",
        &pull_policy(&alice_arn),
    ));
    // Through ECR's door, as a user of ECR would: `aws ecr get-authorization-token
    // --registry-ids <B>` at A, with alice's access key.
    let response = rt
        .block_on(
            admin_client()
                .post(a.url(&format!("/api/v1/users/{ALICE}/access-keys")))
                .send(),
        )
        .unwrap();
    assert_eq!(response.status(), 201);
    let key: Value = rt.block_on(response.json()).unwrap();
    let mut aws = crate::support::common::aws_cli(
        &a.url(""),
        key["accessKeyId"].as_str().unwrap(),
        key["secretAccessKey"].as_str().unwrap(),
    );
    aws.args(["ecr", "get-authorization-token", "--registry-ids", B_ID])
        .args(["--output", "json"]);
    let answer = e2e::run_ok(aws).json();
    let data = &answer["authorizationData"][0];
    assert_eq!(data["proxyEndpoint"], b.url(""));
    let basic = {
        use base64::Engine as _;
        let token = data["authorizationToken"].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap(),
        )
        .unwrap()
    };
    let password = basic.strip_prefix("AWS:").expect("AWS:<password>");
    assert_eq!(jwt_claims(password)["aud"], B_ID);

    let dockerd = e2e::daemons::Dockerd::start(&[&b_reg.addr]);
    let mut login = dockerd.docker();
    login.args([
        "login",
        &b_reg.addr,
        "--username",
        "AWS",
        "--password-stdin",
    ]);
    let out = e2e::run_with_input(login, password.as_bytes()).ok();
    e2e::assert_contains(&out.combined(), "Login Succeeded", "docker login at B");
    let pull = |repository: &str| {
        let mut c = dockerd.docker();
        c.args(["pull", &b_reg.reference(repository, "v1")]);
        e2e::run(c)
    };
    pull("shared/app").ok();
    let refused = pull("private/app");
    assert!(
        !refused.success(),
        "docker pull of private/app should be refused"
    );
    let text = refused.combined().to_lowercase();
    assert!(
        text.contains("denied") || text.contains("unauthorized") || text.contains("403"),
        "refused for the wrong reason:\n{}",
        refused.combined()
    );
}
