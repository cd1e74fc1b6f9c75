//! Docker token authentication end to end against a real server: challenges, the token endpoint
//! (GET, OAuth2 POST, refresh tokens), policy-cut grants, the attack catalogue (forged, expired,
//! misdirected and escalated tokens, revoked credentials), the failed-login limit, create-on-push,
//! catalog filtering and mount checks. Identities are written straight into the server's database.

use crate::support::common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use berth::auth::password::hash_secret;
use berth::auth::token::{Claims, ResourceAccess, SigningKey};
use berth::meta::Meta;
use common::TestServer;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const ADMIN_PW: &str = "auth-test-admin-password";

fn start() -> TestServer {
    TestServer::start_with(&[], &[("BERTH_ADMIN_PASSWORD", ADMIN_PW)])
}

fn db_url(server: &TestServer) -> String {
    match server.backends() {
        Some(b) => b.database_url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            server.data_dir().join("berth.db").display()
        ),
    }
}

async fn meta(server: &TestServer) -> Meta {
    server.meta().await
}

async fn sql(server: &TestServer, query: &str, binds: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db_url(server)).await.unwrap();
    let mut q = sqlx::query(query);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&pool).await.unwrap();
    pool.close().await;
}

fn policy_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/policies/access/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Creates a principal (`user` or `robot`) with a password and an optional identity policy.
async fn principal(
    server: &TestServer,
    kind: &str,
    name: &str,
    password: &str,
    policy: Option<&str>,
) -> i64 {
    let m = meta(server).await;
    let (row, _) = m
        .identity()
        .create_principal_if_missing(kind, name, &hash_secret(password).unwrap())
        .await
        .unwrap();
    if let Some(p) = policy {
        m.identity()
            .put_policy("principal", &row.id.to_string(), p)
            .await
            .unwrap();
    }
    m.close().await;
    row.id
}

fn http() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn get_token(
    server: &TestServer,
    auth: Option<(&str, &str)>,
    query: &str,
) -> (StatusCode, Value) {
    let mut rb = http().get(server.url(&format!("/token?service=berth&{query}")));
    if let Some((u, p)) = auth {
        rb = rb.header("authorization", basic(u, p));
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Sends a request with the given Authorization value (or none).
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<(Vec<u8>, &str)>,
) -> reqwest::Response {
    let mut rb = http().request(method, server.url(path));
    if let Some(a) = auth.filter(|a| !a.is_empty()) {
        rb = rb.header("authorization", a);
    }
    if let Some((bytes, content_type)) = body {
        rb = rb.header("content-type", content_type).body(bytes);
    }
    rb.send().await.unwrap()
}

/// Pushes a one-layer image `repo:tag` with the given credentials; returns the status of the
/// first refused step or of the manifest PUT, and the manifest digest.
async fn push_image(
    server: &TestServer,
    auth: &str,
    repo: &str,
    tag: &str,
) -> (StatusCode, String) {
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    for blob in [&layer, &config] {
        let r = send(
            server,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob)),
            Some(auth),
            Some((blob.clone(), "application/octet-stream")),
        )
        .await;
        if r.status() != StatusCode::CREATED {
            return (r.status(), String::new());
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}]
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&bytes);
    let r = send(
        server,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        Some(auth),
        Some((bytes, "application/vnd.oci.image.manifest.v1+json")),
    )
    .await;
    (r.status(), digest)
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The response carries the challenge that sends a client for a push token for team/app.
fn assert_push_challenge(r: &reqwest::Response) {
    let challenge = www_authenticate(r);
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\",error=\"insufficient_scope\""),
        "{challenge}"
    );
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
}

/// The server's active signing key, read from its database (to forge precisely one defect).
async fn server_key(server: &TestServer) -> SigningKey {
    let m = meta(server).await;
    let rows = m
        .identity()
        .signing_keys(chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    m.close().await;
    SigningKey::from_pem(&rows[0].pem).unwrap()
}

fn admin_claims(cv: u64, access: Vec<ResourceAccess>) -> Claims {
    Claims::new_access(
        "berth",
        "berth",
        "admin",
        chrono::Utc::now(),
        chrono::Duration::minutes(5),
    )
    .with_access(access)
    .with_credential_version(cv)
    .with_principal("arn:aws:iam::000000000000:user/admin")
}

fn pull_push(repo: &str) -> Vec<ResourceAccess> {
    vec![ResourceAccess {
        resource_type: "repository".into(),
        name: repo.into(),
        actions: vec!["pull".into(), "push".into()],
    }]
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_are_challenged_and_tokens_open_the_registry() {
    let server = start();
    let r = send(&server, Method::GET, "/v2/", None, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&r),
        format!(
            "Bearer realm=\"{}/token\",service=\"berth\"",
            server.url("").trim_end_matches('/')
        )
    );
    let r = send(&server, Method::GET, "/v2/team/app/tags/list", None, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        www_authenticate(&r).contains("scope=\"repository:team/app:pull\""),
        "{}",
        www_authenticate(&r)
    );
    // No anonymous push, with or without a token.
    let (status, _) = push_image(&server, "Bearer x", "team/app", "v1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = get_token(
        &server,
        Some(("admin", ADMIN_PW)),
        "scope=repository:team/app:pull,push",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["access"][0]["actions"], json!(["pull", "push"]));
    let bearer = format!("Bearer {token}");
    let r = send(&server, Method::GET, "/v2/", Some(&bearer), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = push_image(&server, &bearer, "team/app", "v1").await;
    assert_eq!(status, StatusCode::CREATED);
    let r = send(
        &server,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The JWKS publishes the key that signed it.
    let jwks: Value = http()
        .get(server.url("/token/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_carry_only_what_policies_allow() {
    let server = start();
    principal(
        &server,
        "user",
        "reader",
        "reader-pw",
        Some(&policy_file("read-only-puller.json")),
    )
    .await;
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&server, &admin, "team/app", "v1").await.0,
        StatusCode::CREATED
    );

    // Scope escalation in the request: asking for push and delete yields pull only.
    let (status, body) = get_token(
        &server,
        Some(("reader", "reader-pw")),
        "scope=repository:team/app:pull,push,delete&scope=repository:other/x:*",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        claims_of(token)["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    );
    let bearer = format!("Bearer {token}");
    let r = send(
        &server,
        Method::GET,
        "/v2/team/app/manifests/v1",
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Pushing with it: the token asked for push and the policies refused it, so another token
    // would not help: 403 DENIED (with the challenge), and clients stop instead of looping.
    let r = send(
        &server,
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_push_challenge(&r);
    assert_eq!(error_code(r).await, "DENIED");
    // A token for repository A used on B, which it never asked for: 401 with the challenge
    // naming the scope needed, as the Docker token specification answers, and clients fetch a
    // token for it.
    let r = send(
        &server,
        Method::GET,
        "/v2/team/other/tags/list",
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).contains("error=\"insufficient_scope\""));
    assert!(www_authenticate(&r).contains("scope=\"repository:team/other:pull\""));
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    // The admin's pull token, used for an upload's status (the OCI conformance suite does this
    // after pulling): it never asked for push, so 401 with the challenge, and a token that
    // asks gets it.
    let token = |scope: &'static str| {
        let server = &server;
        async move {
            let (_, body) = get_token(server, Some(("admin", ADMIN_PW)), scope).await;
            format!("Bearer {}", body["token"].as_str().unwrap())
        }
    };
    let admin_pull = token("scope=repository:team/app:pull").await;
    let admin_push = token("scope=repository:team/app:pull,push").await;
    let r = send(
        &server,
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        Some(&admin_push),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let path = location
        .strip_prefix(&server.base)
        .unwrap_or(&location)
        .to_owned();
    for method in [Method::GET, Method::DELETE] {
        let r = send(&server, method.clone(), &path, Some(&admin_pull), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method}");
        assert_push_challenge(&r);
    }
    assert_eq!(
        send(&server, Method::GET, &path, Some(&admin_push), None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    // A write with a token that never asked for push: 403 with the challenge (oras-py, which
    // holds one token for every request, fetches a new one only after a 403).
    let r = send(
        &server,
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        Some(&admin_pull),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_push_challenge(&r);
    // With Basic directly on /v2 the same user is refused with 403 DENIED, naming the action.
    let reader = basic("reader", "reader-pw");
    let (status, _) = push_image(&server, &reader, "team/app", "v3").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = send(
        &server,
        Method::DELETE,
        "/v2/team/app/manifests/v1",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DENIED");
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ecr:BatchDeleteImage"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_expired_and_misdirected_tokens_are_refused() {
    let server = start();
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&server, &admin, "a/repo", "v1").await.0,
        StatusCode::CREATED
    );
    let key = server_key(&server).await;
    let (_, body) = get_token(
        &server,
        Some(("admin", ADMIN_PW)),
        "scope=repository:a/repo:pull",
    )
    .await;
    let good = body["token"].as_str().unwrap().to_owned();
    let cv = claims_of(&good)["cv"].as_u64().unwrap();
    let path = "/v2/a/repo/manifests/v1";
    let ok = send(
        &server,
        Method::GET,
        path,
        Some(&format!("Bearer {good}")),
        None,
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK, "the untampered token works");

    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin_claims(cv, pull_push("a/repo"))).unwrap());
    let mut cases: Vec<(&str, String)> = Vec::new();
    // alg: none, unsigned.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    cases.push(("alg none", format!("{none_header}.{payload}.")));
    // Algorithm confusion: HS256 keyed with the public key.
    let jwk = key.verifying_key().jwk().clone();
    let public = serde_json::to_vec(&jwk).unwrap();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(key.kid().to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &admin_claims(cv, pull_push("a/repo")),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    cases.push(("HS256 with the public key", hs));
    // Expired, not yet valid, wrong audience, wrong issuer: correctly signed otherwise.
    let mut expired = admin_claims(cv, pull_push("a/repo"));
    expired.iat -= 3600;
    expired.nbf -= 3600;
    expired.exp = chrono::Utc::now().timestamp() - 600;
    cases.push(("expired", key.sign(&expired).unwrap()));
    let mut early = admin_claims(cv, pull_push("a/repo"));
    early.nbf = chrono::Utc::now().timestamp() + 3600;
    early.iat = early.nbf;
    early.exp = early.nbf + 300;
    cases.push(("not yet valid", key.sign(&early).unwrap()));
    let mut audience = admin_claims(cv, pull_push("a/repo"));
    audience.aud = "someone-else".into();
    cases.push(("wrong audience", key.sign(&audience).unwrap()));
    let mut issuer = admin_claims(cv, pull_push("a/repo"));
    issuer.iss = "evil".into();
    cases.push(("wrong issuer", key.sign(&issuer).unwrap()));
    // Tampered: the claims of the good token swapped for more access, signature kept.
    let mut parts: Vec<&str> = good.split('.').collect();
    let escalated = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&{
            let mut c = claims_of(&good);
            c["access"] = json!([{"type":"repository","name":"a/repo","actions":["*"]}]);
            c
        })
        .unwrap(),
    );
    parts[1] = &escalated;
    cases.push(("tampered claims", parts.join(".")));
    // Signed by a key the registry never had.
    cases.push((
        "foreign key",
        SigningKey::generate()
            .sign(&admin_claims(cv, pull_push("a/repo")))
            .unwrap(),
    ));
    // A refresh token presented as an access token.
    let refresh = Claims::new_refresh(
        "berth",
        "berth",
        "admin",
        chrono::Utc::now(),
        chrono::Duration::hours(1),
    )
    .with_credential_version(cv)
    .with_principal("arn:aws:iam::000000000000:user/admin");
    cases.push(("refresh token as access token", key.sign(&refresh).unwrap()));
    // Stale credential version.
    cases.push((
        "old credential version",
        key.sign(&admin_claims(cv + 7, pull_push("a/repo")))
            .unwrap(),
    ));
    for (what, token) in cases {
        let r = send(
            &server,
            Method::GET,
            path,
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            www_authenticate(&r).contains("error=\"invalid_token\""),
            "{what}: {}",
            www_authenticate(&r)
        );
        assert_eq!(error_code(r).await, "UNAUTHORIZED", "{what}");
    }
    // The control: the same forging path with nothing wrong is accepted.
    let genuine = key.sign(&admin_claims(cv, pull_push("a/repo"))).unwrap();
    let r = send(
        &server,
        Method::GET,
        path,
        Some(&format!("Bearer {genuine}")),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Polls until `check` is true, for at most five seconds (the documented bound); returns the
/// time it took.
async fn within_five_seconds<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} did not take effect within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_credentials_stop_working_within_five_seconds() {
    let server = start();
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&server, &admin, "ci/app", "v1").await.0,
        StatusCode::CREATED
    );
    let policy = policy_file("ci-pusher-prefix.json");
    let alice = principal(&server, "user", "alice", "alice-old", Some(&policy)).await;
    principal(&server, "robot", "builder", "robot-secret", Some(&policy)).await;
    let expiring = principal(
        &server,
        "robot",
        "shortlived",
        "short-secret",
        Some(&policy),
    )
    .await;
    let path = "/v2/ci/app/manifests/v1";

    let token_of = |user: &'static str, pw: &'static str| {
        let server = &server;
        async move {
            let (status, body) =
                get_token(server, Some((user, pw)), "scope=repository:ci/app:pull").await;
            assert_eq!(status, StatusCode::OK, "{user}: {body}");
            format!("Bearer {}", body["token"].as_str().unwrap())
        }
    };
    let alice_token = token_of("alice", "alice-old").await;
    let robot_token = token_of("robot/builder", "robot-secret").await;
    let short_token = token_of("robot/shortlived", "short-secret").await;
    for t in [&alice_token, &robot_token, &short_token] {
        assert_eq!(
            send(&server, Method::GET, path, Some(t), None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let alice_basic = basic("alice", "alice-old");
    assert_eq!(
        send(&server, Method::GET, path, Some(&alice_basic), None)
            .await
            .status(),
        StatusCode::OK
    );

    // A password changed while a token is live.
    let m = meta(&server).await;
    m.identity()
        .set_password(alice, &hash_secret("alice-new").unwrap())
        .await
        .unwrap();
    let took = within_five_seconds("a changed password", || async {
        send(&server, Method::GET, path, Some(&alice_token), None)
            .await
            .status()
            == StatusCode::UNAUTHORIZED
            && send(&server, Method::GET, path, Some(&alice_basic), None)
                .await
                .status()
                == StatusCode::UNAUTHORIZED
    })
    .await;
    eprintln!("password change took effect after {took:?}");
    assert_eq!(
        send(
            &server,
            Method::GET,
            path,
            Some(&basic("alice", "alice-new")),
            None
        )
        .await
        .status(),
        StatusCode::OK
    );
    // A deleted robot account.
    sql(
        &server,
        "DELETE FROM principals WHERE name = $1",
        &["builder"],
    )
    .await;
    within_five_seconds("a deleted robot", || async {
        send(&server, Method::GET, path, Some(&robot_token), None)
            .await
            .status()
            == StatusCode::UNAUTHORIZED
    })
    .await;
    // An expired robot account.
    let past = (chrono::Utc::now().timestamp_millis() - 1000).to_string();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db_url(&server)).await.unwrap();
    sqlx::query("UPDATE principals SET expires_at = $1 WHERE id = $2")
        .bind(past.parse::<i64>().unwrap())
        .bind(expiring)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    within_five_seconds("an expired robot", || async {
        send(&server, Method::GET, path, Some(&short_token), None)
            .await
            .status()
            == StatusCode::UNAUTHORIZED
            && send(
                &server,
                Method::GET,
                path,
                Some(&basic("robot/shortlived", "short-secret")),
                None,
            )
            .await
            .status()
                == StatusCode::UNAUTHORIZED
    })
    .await;
    // An edited policy: a Deny added to the registry policy applies to live tokens too.
    let fresh = token_of("alice", "alice-new").await;
    assert_eq!(
        send(&server, Method::GET, path, Some(&fresh), None)
            .await
            .status(),
        StatusCode::OK
    );
    m.identity().put_policy(
        "registry",
        "",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"FreezeCi","Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:*:000000000000:repository/ci/*"}]}"#,
    )
    .await
    .unwrap();
    within_five_seconds("a new Deny", || async {
        send(&server, Method::GET, path, Some(&fresh), None)
            .await
            .status()
            == StatusCode::FORBIDDEN
    })
    .await;
    m.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_and_the_oauth2_form() {
    let server = start();
    let (status, body) = get_token(
        &server,
        Some(("admin", ADMIN_PW)),
        "scope=repository:r/one:pull&offline_token=true&client_id=docker",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    // containerd's form: refresh grant.
    let form = |pairs: &[(&str, &str)]| {
        let server = &server;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        async move {
            let r = http()
                .post(server.url("/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "berth"),
        ("scope", "repository:r/one:pull repository:r/two:push"),
        ("client_id", "containerd"),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "repository:r/one:pull repository:r/two:push");
    assert!(body["access_token"].as_str().is_some());
    // Password grant with offline access.
    let (status, body) = form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", ADMIN_PW),
        ("service", "berth"),
        ("scope", "repository:r/one:pull"),
        ("access_type", "offline"),
        ("client_id", "containerd"),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].as_str().is_some());
    let (status, _) = form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "wrong"),
        ("service", "berth"),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = form(&[("grant_type", "client_credentials"), ("service", "berth")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "not-a-token"),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token for another service is not issued.
    let r = http()
        .get(server.url("/token?service=elsewhere"))
        .header("authorization", basic("admin", ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // After a password change the refresh token is refused.
    let m = meta(&server).await;
    let admin = m
        .identity()
        .principal("user", "admin")
        .await
        .unwrap()
        .unwrap();
    m.identity()
        .set_password(admin.id, &hash_secret("rotated").unwrap())
        .await
        .unwrap();
    m.close().await;
    within_five_seconds("a refresh token after a password change", || async {
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", "berth"),
        ])
        .await
        .0 == StatusCode::UNAUTHORIZED
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_pull_only_where_a_policy_says_so() {
    let server = start();
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&server, &admin, "public/tool", "v1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        push_image(&server, &admin, "private/tool", "v1").await.0,
        StatusCode::CREATED
    );
    let m = meta(&server).await;
    m.identity()
        .put_policy(
            "repository",
            "public/tool",
            &policy_file("anonymous-pull.json"),
        )
        .await
        .unwrap();
    // A policy that (wrongly) offers anonymous push is still never honoured.
    m.identity().put_policy(
        "repository",
        "private/tool",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Oops","Effect":"Allow","Principal":"*","Action":["ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage","ecr:BatchCheckLayerAvailability"]}]}"#,
    )
    .await
    .unwrap();
    m.close().await;
    within_five_seconds("anonymous pull of the public repository", || async {
        send(
            &server,
            Method::GET,
            "/v2/public/tool/manifests/v1",
            None,
            None,
        )
        .await
        .status()
            == StatusCode::OK
    })
    .await;
    let r = send(
        &server,
        Method::GET,
        "/v2/private/tool/manifests/v1",
        None,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Docker's anonymous token flow.
    let (status, body) = get_token(
        &server,
        None,
        "scope=repository:public/tool:pull,push&scope=repository:private/tool:pull,push",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        claims_of(token)["access"],
        json!([{"type":"repository","name":"public/tool","actions":["pull"]}])
    );
    assert!(body.get("refresh_token").is_none());
    let bearer = format!("Bearer {token}");
    assert_eq!(
        send(&server, Method::GET, "/v2/", Some(&bearer), None)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(
            &server,
            Method::GET,
            "/v2/public/tool/manifests/v1",
            Some(&bearer),
            None
        )
        .await
        .status(),
        StatusCode::OK
    );
    for auth in [None, Some(bearer.as_str())] {
        let (status, _) = push_image(&server, auth.unwrap_or(""), "private/tool", "v2").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous push must never work"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_PASSWORD", ADMIN_PW),
            ("BERTH_AUTH_MAX_FAILED_LOGINS", "3"),
        ],
    );
    for _ in 0..3 {
        let r = send(
            &server,
            Method::GET,
            "/v2/",
            Some(&basic("admin", "guess")),
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = send(
        &server,
        Method::GET,
        "/v2/",
        Some(&basic("admin", "guess")),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    // Even the right password waits, at the token endpoint too.
    let r = send(
        &server,
        Method::GET,
        "/v2/",
        Some(&basic("admin", ADMIN_PW)),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = get_token(&server, Some(("admin", ADMIN_PW)), "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another name from the same address is not blocked.
    let r = send(
        &server,
        Method::GET,
        "/v2/",
        Some(&basic("nobody", "x")),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !server.log().contains(ADMIN_PW),
        "a password reached the log"
    );
    assert!(
        !server.log().contains("guess"),
        "a password reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_on_push_needs_create_repository() {
    let server = start();
    let pusher = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Push","Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],"Resource":"*"}]}"#;
    principal(&server, "user", "pusher", "pusher-pw", Some(pusher)).await;
    principal(
        &server,
        "user",
        "ci",
        "ci-pw",
        Some(&policy_file("ci-pusher-prefix.json")),
    )
    .await;
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&server, &admin, "existing/app", "v1").await.0,
        StatusCode::CREATED
    );
    let p = basic("pusher", "pusher-pw");
    assert_eq!(
        push_image(&server, &p, "existing/app", "v2").await.0,
        StatusCode::CREATED
    );
    let r = send(
        &server,
        Method::POST,
        "/v2/brand/new/blobs/uploads/",
        Some(&p),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let msg: Value = r.json().await.unwrap();
    assert!(msg["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ecr:CreateRepository"));
    // The CI pusher may create under ci/ only.
    let ci = basic("ci", "ci-pw");
    assert_eq!(
        push_image(&server, &ci, "ci/new-service", "v1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        push_image(&server, &ci, "elsewhere/svc", "v1").await.0,
        StatusCode::FORBIDDEN
    );
    // With create-on-push off, even the admin must create repositories first.
    meta(&server)
        .await
        .identity()
        .put_setting("create_on_push", "false")
        .await
        .unwrap();
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    let took = within_five_seconds("create-on-push off", || async {
        // A fresh name each time: an attempt that still succeeded created its repository.
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        send(
            &server,
            Method::POST,
            &format!("/v2/another/new{n}/blobs/uploads/"),
            Some(&admin),
            None,
        )
        .await
        .status()
            == StatusCode::NOT_FOUND
    })
    .await;
    eprintln!("create-on-push off after {took:?}");
    let r = send(
        &server,
        Method::POST,
        "/v2/another/new/blobs/uploads/",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    assert_eq!(
        push_image(&server, &admin, "existing/app", "v3").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_and_mounts_respect_what_the_caller_may_read() {
    let server = start();
    let admin = basic("admin", ADMIN_PW);
    for repo in ["team-a/api", "team-a/web", "team-b/secret"] {
        assert_eq!(
            push_image(&server, &admin, repo, "v1").await.0,
            StatusCode::CREATED
        );
    }
    let m = meta(&server).await;
    sql(
        &server,
        "INSERT INTO groups (name, created_at) VALUES ($1, 0)",
        &["team-a"],
    )
    .await;
    let member = principal(&server, "user", "amy", "amy-pw", None).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db_url(&server)).await.unwrap();
    let gid: i64 = sqlx::query_scalar("SELECT id FROM groups WHERE name = 'team-a'")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO group_members (group_id, principal_id) VALUES ($1, $2)")
        .bind(gid)
        .bind(member)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // The team namespace policy is a registry policy naming the group.
    m.identity()
        .put_policy("registry", "", &policy_file("team-namespace.json"))
        .await
        .unwrap();
    m.close().await;
    let amy = basic("amy", "amy-pw");
    // A user whose identity policy lets them see team-a only.
    principal(
        &server,
        "user",
        "viewer",
        "viewer-pw",
        Some(r#"{"Version":"2012-10-17","Statement":[{"Sid":"SeeTeamA","Effect":"Allow","Action":"ecr:DescribeRepositories","Resource":"arn:aws:ecr:*:000000000000:repository/team-a/*"}]}"#),
    )
    .await;
    let viewer = basic("viewer", "viewer-pw");
    // Policies written straight into the database reach the server within the 5-second bound.
    within_five_seconds("the team policy", || async {
        let v: Value = send(&server, Method::GET, "/v2/_catalog", Some(&amy), None)
            .await
            .json()
            .await
            .unwrap();
        // The team policy lets members list every repository (its second statement).
        v["repositories"] == json!(["team-a/api", "team-a/web", "team-b/secret"])
    })
    .await;
    let r = send(
        &server,
        Method::GET,
        "/v2/_catalog?n=1",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("link").is_some(),
        "a second visible page follows"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!(["team-a/api"]));
    let v: Value = send(&server, Method::GET, "/v2/_catalog", Some(&viewer), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["repositories"], json!(["team-a/api", "team-a/web"]));
    let v: Value = send(
        &server,
        Method::GET,
        "/v2/_catalog",
        Some(&basic("viewer", "wrong")),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
    let v: Value = send(&server, Method::GET, "/v2/_catalog", Some(&admin), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 3);
    // A blob only in team-b/secret cannot be mounted by amy, with or without `from`.
    let secret_layer = sha256(b"layer of team-b/secret:v1");
    for query in [
        format!("mount={secret_layer}&from=team-b/secret"),
        format!("mount={secret_layer}"),
    ] {
        let r = send(
            &server,
            Method::POST,
            &format!("/v2/team-a/stolen/blobs/uploads/?{query}"),
            Some(&amy),
            None,
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "{query}: a session, not a mount"
        );
    }
    let r = send(
        &server,
        Method::GET,
        &format!("/v2/team-a/stolen/blobs/{secret_layer}"),
        Some(&amy),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Within the team, mounting works.
    let api_layer = sha256(b"layer of team-a/api:v1");
    let r = send(
        &server,
        Method::POST,
        &format!("/v2/team-a/copy/blobs/uploads/?mount={api_layer}&from=team-a/api"),
        Some(&amy),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_survive_restarts_and_keys_rotate() {
    let mut server = start();
    let (_, body) = get_token(
        &server,
        Some(("admin", ADMIN_PW)),
        "scope=repository:k/r:pull,push",
    )
    .await;
    let token = format!("Bearer {}", body["token"].as_str().unwrap());
    assert_eq!(
        push_image(&server, &token, "k/r", "v1").await.0,
        StatusCode::CREATED
    );
    server.restart();
    assert_eq!(
        send(
            &server,
            Method::GET,
            "/v2/k/r/manifests/v1",
            Some(&token),
            None
        )
        .await
        .status(),
        StatusCode::OK,
        "the signing key is persisted"
    );
    // Rotate: a new key appears in the database (as another replica's rotation would write it);
    // the old one keeps verifying until it retires.
    let old_kid = server_key(&server).await.kid().to_owned();
    let new_key = SigningKey::generate();
    let m = meta(&server).await;
    let now = chrono::Utc::now().timestamp_millis();
    m.identity()
        .insert_signing_key(new_key.kid(), &new_key.to_pkcs8_pem(), now + 1)
        .await
        .unwrap();
    m.identity()
        .retire_signing_keys_except(new_key.kid(), now + 3_600_000)
        .await
        .unwrap();
    m.close().await;
    let cv = claims_of(&token[7..])["cv"].as_u64().unwrap();
    let by_new = format!(
        "Bearer {}",
        new_key.sign(&admin_claims(cv, pull_push("k/r"))).unwrap()
    );
    let r = send(
        &server,
        Method::GET,
        "/v2/k/r/manifests/v1",
        Some(&by_new),
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a token signed by a freshly rotated key is accepted"
    );
    assert_eq!(
        send(
            &server,
            Method::GET,
            "/v2/k/r/manifests/v1",
            Some(&token),
            None
        )
        .await
        .status(),
        StatusCode::OK,
        "tokens of the previous key still verify during the overlap"
    );
    let jwks: Value = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_key.kid()),
        "{kids:?}"
    );
    // New tokens are signed by the new key.
    let (_, body) = get_token(&server, Some(("admin", ADMIN_PW)), "").await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(body["token"].as_str().unwrap().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_key.kid());
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_keys_and_see_revocations_within_five_seconds() {
    let a = TestServer::start_on_pg_s3(&[], &[("BERTH_ADMIN_PASSWORD", ADMIN_PW)]);
    let b = a.start_replica();
    principal(
        &a,
        "user",
        "carol",
        "carol-pw",
        Some(&policy_file("read-only-puller.json")),
    )
    .await;
    let admin = basic("admin", ADMIN_PW);
    assert_eq!(
        push_image(&a, &admin, "shared/app", "v1").await.0,
        StatusCode::CREATED
    );
    let (_, body) = get_token(
        &a,
        Some(("carol", "carol-pw")),
        "scope=repository:shared/app:pull",
    )
    .await;
    let token = format!("Bearer {}", body["token"].as_str().unwrap());
    let path = "/v2/shared/app/manifests/v1";
    assert_eq!(
        send(&b, Method::GET, path, Some(&token), None)
            .await
            .status(),
        StatusCode::OK
    );
    let carol = basic("carol", "carol-pw");
    assert_eq!(
        send(&b, Method::GET, path, Some(&carol), None)
            .await
            .status(),
        StatusCode::OK
    );
    let m = meta(&a).await;
    let row = m
        .identity()
        .principal("user", "carol")
        .await
        .unwrap()
        .unwrap();
    m.identity()
        .set_password(row.id, &hash_secret("carol-new").unwrap())
        .await
        .unwrap();
    m.close().await;
    let took = within_five_seconds("a password change on the other replica", || async {
        send(&b, Method::GET, path, Some(&token), None)
            .await
            .status()
            == StatusCode::UNAUTHORIZED
            && send(&b, Method::GET, path, Some(&carol), None)
                .await
                .status()
                == StatusCode::UNAUTHORIZED
    })
    .await;
    eprintln!("replica refused the old credentials after {took:?}");
}
