//! Behind a load balancer: the client address and transport that `[server] trusted_proxies`
//! report (`X-Forwarded-For` / `X-Forwarded-Proto`, or RFC 7239 `Forwarded`) are what policies'
//! `aws:SourceIp` and `aws:SecureTransport` and the failed-login limiter see, and nobody else's
//! forwarding headers are believed. Runs on both stacks (`BERTH_TEST_STACK`).

use crate::support::{api, common};

use api::Api;
use common::TestServer;
use reqwest::Method;
use serde_json::json;

const PULLER: &str = "puller";
const PULLER_PASSWORD: &str = "puller-password-1";
const OFFICE: &str = "203.0.113.7";

/// Pulls `office/app:v1` as the puller with extra headers; returns the status.
async fn pull_status(api: &Api, headers: &[(&str, &str)]) -> u16 {
    let mut request = api
        .req(Method::GET, "/v2/office/app/manifests/v1")
        .header("accept", "application/vnd.oci.image.manifest.v1+json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    api.send(request).await.status().as_u16()
}

/// `GET /v2/` with Basic credentials and extra headers; returns the status.
async fn login_status(server: &TestServer, password: &str, headers: &[(&str, &str)]) -> u16 {
    let api = Api::with_basic(&server.base, PULLER, password);
    let mut request = api.req(Method::GET, "/v2/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    api.send(request).await.status().as_u16()
}

/// A server that trusts the loopback proxy, with an image, a user who may pull it only from the
/// office address over TLS (a registry policy), and a failed-login limit of 2.
async fn start() -> TestServer {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_SERVER_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("BERTH_AUTH_MAX_FAILED_LOGINS", "2"),
        ],
    );
    let admin = Api::new(&server.base);
    admin.push_image("office/app", "v1").await;
    let created = admin
        .send(
            admin
                .req(Method::POST, "/api/v1/users")
                .json(&json!({"name": PULLER, "password": PULLER_PASSWORD})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PullFromTheOfficeOverTls",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::000000000000:user/{PULLER}")},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": "arn:aws:ecr:*:000000000000:repository/*",
            "Condition": {
                "IpAddress": {"aws:SourceIp": format!("{OFFICE}/32")},
                "Bool": {"aws:SecureTransport": "true"}
            }
        }]
    });
    let put = admin
        .send(
            admin
                .req(Method::PUT, "/api/v1/registry-policy")
                .header("content-type", "application/json")
                .body(policy.to_string()),
        )
        .await;
    assert_eq!(put.status(), 204);
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_names_the_client_and_its_transport() {
    let mut server = start().await;
    let puller = Api::with_basic(&server.base, PULLER, PULLER_PASSWORD);

    // The proxy itself is not in the office, and its hop is plain HTTP.
    assert_eq!(pull_status(&puller, &[]).await, 403);
    let via_proxy = [("x-forwarded-for", OFFICE), ("x-forwarded-proto", "https")];
    assert_eq!(pull_status(&puller, &via_proxy).await, 200);
    // From the office, but over plain HTTP to the proxy.
    assert_eq!(
        pull_status(&puller, &[("x-forwarded-for", OFFICE)]).await,
        403
    );
    // A client that writes the office address itself: the proxy appends the real one.
    let spoofed = [
        ("x-forwarded-for", "203.0.113.7, 198.51.100.9"),
        ("x-forwarded-proto", "https"),
    ];
    assert_eq!(pull_status(&puller, &spoofed).await, 403);
    // The proxies set X-Forwarded-*, so a `Forwarded` header is a client's, and is ignored.
    let rfc7239 = [("forwarded", "for=203.0.113.7;proto=https")];
    assert_eq!(pull_status(&puller, &rfc7239).await, 403);

    // Failed logins count per forwarded address: one client locked out is not everyone
    // behind the proxy.
    let guesser = [("x-forwarded-for", "198.51.100.1")];
    for _ in 0..2 {
        assert_eq!(login_status(&server, "wrong", &guesser).await, 401);
    }
    assert_eq!(login_status(&server, "wrong", &guesser).await, 429);
    let colleague = [("x-forwarded-for", "198.51.100.2")];
    assert_eq!(login_status(&server, "wrong", &colleague).await, 401);
    assert_eq!(login_status(&server, "wrong", &[]).await, 401);

    // Proxies that speak RFC 7239 instead.
    server.set_env("BERTH_SERVER_PROXY_HEADERS", Some("forwarded"));
    server.restart();
    let puller = Api::with_basic(&server.base, PULLER, PULLER_PASSWORD);
    assert_eq!(pull_status(&puller, &rfc7239).await, 200);
    let quoted = [(
        "forwarded",
        "for=\"203.0.113.7:51234\";proto=https;by=127.0.0.1",
    )];
    assert_eq!(pull_status(&puller, &quoted).await, 200);
    assert_eq!(
        pull_status(&puller, &[("forwarded", "for=203.0.113.7;proto=http")]).await,
        403
    );
    assert_eq!(pull_status(&puller, &via_proxy).await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let mut server = start().await;
    server.set_env("BERTH_SERVER_TRUSTED_PROXIES", None);
    server.restart();
    let puller = Api::with_basic(&server.base, PULLER, PULLER_PASSWORD);
    let claims = [("x-forwarded-for", OFFICE), ("x-forwarded-proto", "https")];
    assert_eq!(pull_status(&puller, &claims).await, 403);

    // Nor can a guesser dodge the failed-login limit by naming a new address each time.
    for i in 1..=2 {
        let claim = format!("198.51.100.{i}");
        assert_eq!(
            login_status(&server, "wrong", &[("x-forwarded-for", &claim)]).await,
            401
        );
    }
    assert_eq!(
        login_status(&server, "wrong", &[("x-forwarded-for", "198.51.100.3")]).await,
        429
    );
}

#[test]
fn an_invalid_trusted_proxy_stops_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::berth_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("BERTH_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 10.0.0.0/33")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A server that accepted the setting would run until killed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth started with an invalid trusted proxy");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.trusted_proxies"), "{stderr}");
    assert!(stderr.contains("10.0.0.0/33"), "{stderr}");
}
