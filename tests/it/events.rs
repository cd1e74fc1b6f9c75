//! Events to subscribers, end to end: a real NATS server (JetStream on) and a real HTTP
//! receiver get what skopeo's push records, in ECR's EventBridge shape or as CloudEvents, signed
//! as Standard Webhooks say; patterns route exactly what they match; a receiver that is down
//! gets everything once it is back, a receiver down past the retry window gets a dead letter that
//! redrive delivers; two replicas on PostgreSQL deliver each event once; lifecycle expiry and
//! setting changes record their events.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::api::Api;
use crate::support::common::{admin_client, free_port, stack_is_pg_s3, TestServer};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver on loopback that answers `status` and records what it accepted (and how
/// many requests it refused).
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Received>>>,
    refused: Arc<AtomicU16>,
    status: Arc<AtomicU16>,
    /// How long each answer waits after the request was recorded, in ms.
    delay: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Receiver {
        let accepted: Arc<Mutex<Vec<Received>>> = Arc::default();
        let refused = Arc::new(AtomicU16::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let delay = Arc::new(AtomicU64::new(0));
        let (a, r, s, d) = (
            accepted.clone(),
            refused.clone(),
            status.clone(),
            delay.clone(),
        );
        let app = axum::Router::new().fallback(
            move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let (a, r, s, d) = (a.clone(), r.clone(), s.clone(), d.clone());
                async move {
                    let code = s.load(Ordering::SeqCst);
                    if code < 300 {
                        a.lock().unwrap().push(Received {
                            headers,
                            body: body.to_vec(),
                        });
                    } else {
                        r.fetch_add(1, Ordering::SeqCst);
                    }
                    let wait = d.load(Ordering::SeqCst);
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    http::StatusCode::from_u16(code).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            accepted,
            refused,
            status,
            delay,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn set_delay(&self, delay: Duration) {
        self.delay.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits (at most `bound`) until `n` requests were accepted.
    async fn wait_for(&self, n: usize, bound: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < bound,
                "the receiver got {} of {n} events within {bound:?}: {:?}",
                got.len(),
                got.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A private NATS server with JetStream, on a free loopback port.
struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(nats_server())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (tests/install-clients.sh installs it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server() -> &'static str {
    if std::path::Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    }
}

const SECRET_KEY: [u8; 32] = [42; 32];

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET_KEY)
    )
}

/// Verifies a Standard Webhooks signature as a receiver would.
fn assert_signed(r: &Received) {
    let header = |name: &str| {
        r.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(
        (0..300).contains(&age),
        "webhook-timestamp {timestamp} is not now"
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&SECRET_KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(
        header("webhook-signature"),
        expected,
        "the signature does not verify"
    );
    assert_eq!(r.json()["id"], id.as_str(), "webhook-id is the event's id");
}

async fn rest(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = admin_client().request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn create_rule(server: &TestServer, rule: Value) {
    let (status, body) = rest(
        server,
        reqwest::Method::POST,
        "/api/v1/event-rules",
        Some(rule),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// The delivery status of the rule's target `target`.
async fn target_status(server: &TestServer, rule: &str, target: &str) -> Value {
    let (status, body) = rest(
        server,
        reqwest::Method::GET,
        &format!("/api/v1/event-rules/{rule}/status"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .cloned()
        .unwrap_or_else(|| panic!("no target {target}: {body}"))
}

/// Waits (at most `bound`) until the rule's target `target` reports `field` = `n`.
async fn wait_status(
    server: &TestServer,
    rule: &str,
    target: &str,
    field: &str,
    n: i64,
    bound: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let t = target_status(server, rule, target).await;
        if t[field] == n {
            return t;
        }
        assert!(
            start.elapsed() < bound,
            "{field} did not reach {n} within {bound:?}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The environment of every server here, with `extra`: the delivering replica looks for new
/// events every 100 ms (its own pushes it hands over at once anyway).
fn events_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("BERTH_EVENTS_POLL_INTERVAL_MILLIS", "100")];
    env.extend_from_slice(extra);
    env
}

/// A server (of the stack under test) with [`events_env`].
fn events_server(extra: &[(&str, &str)]) -> TestServer {
    TestServer::start_with(&[], &events_env(extra))
}

/// skopeo pushes the test image: the webhook gets ECR's `ECR Image Action` PUSH, signed; a NATS
/// subscriber gets the same event as a CloudEvent; a JetStream stream stores it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skopeo_push_reaches_the_webhook_and_nats() {
    use crate::support::e2e::image::{self, test_image};
    use crate::support::e2e::{admin_creds, run_ok, skopeo};

    let nats = Nats::start();
    let hook = Receiver::start().await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = events_server(&[
        ("BERTH_METRICS_LISTEN", &metrics_addr),
        ("BERTH_EVENTS_NATS_URL", &nats.url),
        ("BERTH_REGISTRY_ID", "123456789012"),
        ("BERTH_REGION", "us-west-2"),
    ]);

    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let mut plain = client.subscribe("berth.events").await.unwrap();
    let jetstream = async_nats::jetstream::new(client.clone());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BERTH".into(),
            subjects: vec!["berth.stream.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    create_rule(
        &server,
        json!({
            "name": "deploys",
            "eventPattern": {
                "source": ["aws.ecr"],
                "detail-type": ["ECR Image Action"],
                "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]}
            },
            "targets": [
                {"id": "hook", "type": "webhook", "url": hook.url(), "secret": secret(),
                 "headers": {"X-Team": "platform"}},
                {"id": "bus", "type": "nats", "subject": "berth.events", "format": "cloudevents"},
                {"id": "stream", "type": "nats", "subject": "berth.stream.pushes"}
            ]
        }),
    )
    .await;
    // Shown with its secret and header values redacted.
    let (_, shown) = rest(
        &server,
        reqwest::Method::GET,
        "/api/v1/event-rules/deploys",
        None,
    )
    .await;
    assert_eq!(shown["targets"][0]["secret"], "<redacted>", "{shown}");
    assert_eq!(
        shown["targets"][0]["headers"]["X-Team"], "<redacted>",
        "{shown}"
    );
    assert!(
        !shown.to_string().contains(&secret()),
        "the secret is never shown"
    );

    let img = test_image();
    let repo = "events/app";
    let addr = server.addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = skopeo();
        c.args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &admin_creds(),
        ])
        .arg(format!("oci:{}:{}", img.layout.display(), image::TAG))
        .arg(format!("docker://{addr}/{repo}:v1"));
        run_ok(c);
    })
    .await
    .unwrap();

    let got = hook.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "one push, one event");
    let event = got[0].json();
    let mut keys: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "account",
            "detail",
            "detail-type",
            "id",
            "region",
            "resources",
            "source",
            "time",
            "version"
        ],
        "EventBridge's envelope: {event}"
    );
    assert_eq!(event["version"], "0");
    assert_eq!(event["source"], "aws.ecr");
    assert_eq!(event["detail-type"], "ECR Image Action");
    assert_eq!(event["account"], "123456789012");
    assert_eq!(event["region"], "us-west-2");
    assert_eq!(event["resources"], json!([]));
    let time = event["time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok()
            && time.ends_with('Z')
            && time.len() == 20,
        "time as ECR writes it: {time}"
    );
    let detail = &event["detail"];
    assert_eq!(detail["result"], "SUCCESS");
    assert_eq!(detail["repository-name"], repo);
    assert_eq!(detail["image-digest"], img.manifest_digest.as_str());
    assert_eq!(detail["action-type"], "PUSH");
    assert_eq!(detail["image-tag"], "v1");
    assert_signed(&got[0]);
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(got[0].headers["x-team"], "platform");

    // The same event on NATS, as a CloudEvent.
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        futures::StreamExt::next(&mut plain),
    )
    .await
    .expect("no NATS message within 30 s")
    .unwrap();
    let cloud: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(cloud["specversion"], "1.0");
    assert_eq!(cloud["type"], "aws.ecr.image.action");
    assert_eq!(cloud["id"], event["id"]);
    assert_eq!(cloud["subject"], "events/app:v1");
    assert_eq!(cloud["datacontenttype"], "application/json");
    assert_eq!(cloud["data"], event["detail"]);
    assert!(cloud["source"]
        .as_str()
        .unwrap()
        .ends_with(":repository/events/app"));

    // JetStream acknowledged and stored it once.
    wait_status(
        &server,
        "deploys",
        "stream",
        "delivered",
        1,
        Duration::from_secs(30),
    )
    .await;
    let mut stream = jetstream.get_stream("BERTH").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    for target in ["hook", "bus"] {
        let t = wait_status(
            &server,
            "deploys",
            target,
            "delivered",
            1,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(t["pending"], 0, "{t}");
        assert_eq!(t["deadLettered"], 0, "{t}");
    }
    // Each attempt is counted by target and outcome.
    let scraped = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for target in ["hook", "bus", "stream"] {
        let line = format!(
            "berth_event_deliveries_total{{target=\"deploys/{target}\",outcome=\"delivered\"}} 1"
        );
        assert!(scraped.contains(&line), "no `{line}` in:\n{scraped}");
    }
}

/// Patterns with `prefix` and `anything-but` route exactly the events they match; a rule can be
/// tested against a sample event first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_route_exactly_what_they_match() {
    let hook = Receiver::start().await;
    let server = events_server(&[]);
    let api = Api::new(&server.base);
    let rule = json!({
        "name": "prod-releases",
        "eventPattern": {
            "detail-type": ["ECR Image Action"],
            "detail": {
                "action-type": ["PUSH"],
                "repository-name": [{"prefix": "prod/"}],
                "image-tag": [{"anything-but": ["latest"]}]
            }
        },
        "targets": [{"type": "webhook", "url": hook.url()}]
    });
    create_rule(&server, rule).await;

    let test = |event: Value| {
        let server = &server;
        async move {
            let (status, body) = rest(
                server,
                reqwest::Method::POST,
                "/api/v1/event-rules/prod-releases/test",
                Some(json!({"event": event})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let sample = |repo: &str, tag: &str| {
        json!({"detail-type": "ECR Image Action", "detail": {
            "result": "SUCCESS", "action-type": "PUSH", "repository-name": repo,
            "image-digest": "sha256:00", "image-tag": tag}})
    };
    let yes = test(sample("prod/web", "v2")).await;
    assert_eq!(yes["matched"], true, "{yes}");
    assert_eq!(
        yes["deliveries"][0]["body"]["detail"]["image-tag"], "v2",
        "{yes}"
    );
    assert_eq!(test(sample("prod/web", "latest")).await["matched"], false);
    assert_eq!(test(sample("dev/web", "v2")).await["matched"], false);

    let matching = api.push_image("prod/web", "v1").await;
    api.push_image("prod/web", "latest").await;
    api.push_image("dev/web", "v1").await;
    let other = api.push_image("prod/api", "v7").await;
    hook.wait_for(2, Duration::from_secs(30)).await;
    // Anything else matching would have been handed over with these; give it a moment to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got: Vec<Value> = hook.accepted().iter().map(Received::json).collect();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|e| {
            (
                e["detail"]["repository-name"].as_str().unwrap().to_owned(),
                e["detail"]["image-digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("prod/web".to_owned(), matching.digest.clone()),
            ("prod/api".to_owned(), other.digest.clone())
        ],
        "exactly the prod pushes not tagged latest: {got:?}"
    );

    // A bad pattern is refused naming the field.
    let (status, body) = rest(
        &server,
        reqwest::Method::PUT,
        "/api/v1/event-rules/bad",
        Some(
            json!({"eventPattern": {"detail": {"image-tag": [{"prefx": "v"}]}},
                    "targets": [{"type": "webhook", "url": hook.url()}]}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("eventPattern"), "{body}");
    let (status, body) = rest(
        &server,
        reqwest::Method::PUT,
        "/api/v1/event-rules/bad",
        Some(json!({"eventPattern": {"source": ["aws.ecr"]},
                    "targets": [{"type": "nats", "subject": "x"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("nats_url"), "{body}");
}

/// A receiver that is down for a while gets every event once it is back, in push order per
/// repository; one down past the retry window gets a dead letter, which redrive delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_a_receiver_and_dead_letters_redrive() {
    let hook = Receiver::start().await;
    let server = events_server(&[("BERTH_EVENTS_RETRY_WINDOW_SECS", "4")]);
    let api = Api::new(&server.base);
    create_rule(
        &server,
        json!({"name": "all-pushes", "eventPattern": {"detail": {"action-type": ["PUSH"]}},
               "targets": [{"id": "hook", "type": "webhook", "url": hook.url(), "secret": secret()}]}),
    )
    .await;

    // Down: three pushes to one repository are refused and retried.
    hook.set_status(503);
    let mut pushed = Vec::new();
    for tag in ["a", "b", "c"] {
        pushed.push(api.push_image("retry/app", tag).await.digest);
    }
    let start = Instant::now();
    while hook.refused.load(Ordering::SeqCst) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no delivery was attempted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = wait_status(
        &server,
        "all-pushes",
        "hook",
        "pending",
        3,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        pending["oldestPendingAgeSeconds"].as_f64().unwrap() > 0.0,
        "{pending}"
    );
    // Back: all three arrive, once each, in push order.
    hook.set_status(200);
    let got = hook.wait_for(3, Duration::from_secs(30)).await;
    let order: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["detail"]["image-digest"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(order, pushed, "in push order, none lost, none twice");
    for r in &got {
        assert_signed(r);
    }
    wait_status(
        &server,
        "all-pushes",
        "hook",
        "delivered",
        3,
        Duration::from_secs(10),
    )
    .await;

    // Down past the 4 s retry window: a dead letter, listed with its event and last error.
    hook.set_status(500);
    let late = api.push_image("retry/app", "d").await.digest;
    wait_status(
        &server,
        "all-pushes",
        "hook",
        "deadLettered",
        1,
        Duration::from_secs(60),
    )
    .await;
    let (status, letters) = rest(
        &server,
        reqwest::Method::GET,
        "/api/v1/event-rules/all-pushes/dead-letters",
        None,
    )
    .await;
    assert_eq!(status, 200, "{letters}");
    let letter = &letters["deadLetters"][0];
    assert_eq!(
        letter["event"]["detail"]["image-digest"],
        late.as_str(),
        "{letters}"
    );
    assert!(letter["attempts"].as_i64().unwrap() >= 2, "{letters}");
    assert!(
        letter["lastError"].as_str().unwrap().contains("500"),
        "{letters}"
    );
    // Redrive once the receiver is back: delivered.
    hook.set_status(200);
    let (status, body) = rest(
        &server,
        reqwest::Method::POST,
        "/api/v1/event-rules/all-pushes/redrive",
        Some(json!({"target": "hook"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redriven"], 1, "{body}");
    let got = hook.wait_for(4, Duration::from_secs(30)).await;
    assert_eq!(got[3].json()["detail"]["image-digest"], late.as_str());
    let t = wait_status(
        &server,
        "all-pushes",
        "hook",
        "delivered",
        4,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(t["deadLettered"], 0, "{t}");
}

/// Two replicas on one PostgreSQL database: pushes through both are delivered to the webhook
/// exactly once each (one replica at a time delivers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    if !stack_is_pg_s3() {
        // Replicas share PostgreSQL and S3; the pg-s3 run covers this.
        return;
    }
    let hook = Receiver::start().await;
    let a = TestServer::start_on_pg_s3(&[], &events_env(&[]));
    let b = a.start_replica();
    let (api_a, api_b) = (Api::new(&a.base), Api::new(&b.base));
    create_rule(
        &a,
        json!({"name": "both", "eventPattern": {"detail-type": ["ECR Image Action"]},
               "targets": [{"type": "webhook", "url": hook.url()}]}),
    )
    .await;
    let mut pushed = std::collections::BTreeSet::new();
    for i in 0..10 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        pushed.insert(
            api.push_image(&format!("pair/app{}", i % 3), &format!("t{i}"))
                .await
                .digest,
        );
    }
    hook.wait_for(10, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<Value> = hook.accepted().iter().map(Received::json).collect();
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let duplicates = got.len() - ids.len();
    assert_eq!(
        duplicates, 0,
        "events delivered twice without a crash: {got:?}"
    );
    let digests: std::collections::BTreeSet<String> = got
        .iter()
        .map(|e| e["detail"]["image-digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(digests, pushed, "every push once, from either replica");
}

/// A lifecycle expiry records `ECR Image Action` DELETE with its cause; setting changes record
/// Berth's own events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_expiry_and_setting_changes_are_recorded() {
    let hook = Receiver::start().await;
    let server = events_server(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &server,
        json!({"name": "expiries", "eventPattern": {"detail": {"cause": ["LIFECYCLE"]}},
               "targets": [{"type": "webhook", "url": hook.url(), "format": "cloudevents"}]}),
    )
    .await;
    let repo = "expiry/app";
    let old = api.push_image(repo, "old-1").await.digest;
    api.push_image(repo, "old-2").await;
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged",
        "tagPrefixList": ["old-"], "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]});
    let (status, body) = rest(
        &server,
        reqwest::Method::PUT,
        &format!("/api/v1/repositories/{repo}/lifecycle-policy"),
        Some(policy),
    )
    .await;
    assert!(matches!(status, 200 | 201 | 204), "{status} {body}");
    let (status, body) = rest(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got = hook.wait_for(1, Duration::from_secs(30)).await;
    let cloud = got[0].json();
    assert_eq!(cloud["type"], "aws.ecr.image.action", "{cloud}");
    assert_eq!(cloud["data"]["action-type"], "DELETE", "{cloud}");
    assert_eq!(cloud["data"]["cause"], "LIFECYCLE", "{cloud}");
    assert_eq!(cloud["data"]["image-digest"], old.as_str(), "{cloud}");
    assert_eq!(cloud["data"]["image-tag"], "old-1", "{cloud}");
    assert_eq!(cloud["subject"], "expiry/app:old-1", "{cloud}");
    assert_eq!(
        got[0].headers["content-type"],
        "application/cloudevents+json; charset=utf-8"
    );

    // The lifecycle policy change itself is in the event log.
    let (_, events) = rest(
        &server,
        reqwest::Method::GET,
        "/api/v1/events?limit=1000",
        None,
    )
    .await;
    let change = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["detailType"] == "Berth Repository Setting Change")
        .unwrap_or_else(|| panic!("no setting change recorded: {events}"));
    assert_eq!(
        change["detail"]["resource-type"], "LIFECYCLE_POLICY",
        "{change}"
    );
    assert_eq!(change["detail"]["repository-name"], repo, "{change}");
}

/// A target that accepts connections and never answers holds up neither the other target of
/// the same rule nor pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_holds_up_no_other_target() {
    // Accepts and holds every connection without a byte of answer.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("http://{}/hook", hung.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hung.incoming() {
            held.push(stream);
        }
    });
    let hook = Receiver::start().await;
    let server = events_server(&[("BERTH_EVENTS_TIMEOUT_SECS", "30")]);
    let api = Api::new(&server.base);
    create_rule(
        &server,
        json!({"name": "two", "eventPattern": {"detail": {"action-type": ["PUSH"]}},
               "targets": [{"id": "hung", "type": "webhook", "url": hung_url},
                           {"id": "live", "type": "webhook", "url": hook.url()}]}),
    )
    .await;
    let start = Instant::now();
    for i in 0..3 {
        api.push_image(&format!("hung/app{i}"), "v1").await;
    }
    let pushes = start.elapsed();
    // Within 20 s, while every attempt at the hung target lasts 30 s.
    let got = hook.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3);
    // The hung target's deliveries are still in flight or pending, not delivered.
    let hung = target_status(&server, "two", "hung").await;
    assert_eq!(hung["delivered"], 0, "{hung}");
    assert_eq!(hung["pending"], 3, "{hung}");
    assert!(pushes < Duration::from_secs(20), "pushes took {pushes:?}");
}

/// The delivering replica is killed while it waits for the receiver's answer: the other replica
/// takes the lease over and delivers everything; what the dead one had sent but not recorded is
/// sent again (at least once), and nothing else twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_delivery_loses_nothing() {
    if !stack_is_pg_s3() {
        // Replicas share PostgreSQL and S3; the pg-s3 run covers this.
        return;
    }
    let hook = Receiver::start().await;
    hook.set_delay(Duration::from_secs(3));
    let mut a = TestServer::start_on_pg_s3(&[], &events_env(&[]));
    let mut b = a.start_replica();
    create_rule(
        &a,
        json!({"name": "pushes", "eventPattern": {"detail": {"action-type": ["PUSH"]}},
               "targets": [{"type": "webhook", "url": hook.url()}]}),
    )
    .await;
    let api_b = Api::new(&b.base);
    let mut pushed = std::collections::BTreeSet::new();
    for tag in ["a", "b", "c", "d"] {
        pushed.insert(api_b.push_image("crash/app", tag).await.digest);
    }
    // An attempt is in flight (the receiver recorded it and is slow to answer): kill its sender.
    hook.wait_for(1, Duration::from_secs(30)).await;
    let holds = |s: &TestServer| s.log().contains("event delivery lease holding=true");
    let (killed, survivor) = if holds(&a) {
        a.kill();
        ("A", &b)
    } else {
        assert!(
            holds(&b),
            "neither replica says it delivers:\n{}\n{}",
            a.log(),
            b.log()
        );
        b.kill();
        ("B", &a)
    };
    hook.set_delay(Duration::ZERO);
    let start = Instant::now();
    let distinct = loop {
        let got: Vec<Value> = hook.accepted().iter().map(Received::json).collect();
        let digests: std::collections::BTreeSet<String> = got
            .iter()
            .map(|e| e["detail"]["image-digest"].as_str().unwrap().to_owned())
            .collect();
        if digests == pushed {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "after killing {killed}, {} of 4 events arrived: {got:?}\n{}",
            digests.len(),
            survivor.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let a stray second copy show before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<Value> = hook.accepted().iter().map(Received::json).collect();
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let duplicates = got.len() - ids.len();
    eprintln!(
        "at-least-once: {duplicates} duplicate(s) of {} events after killing replica {killed} mid-delivery",
        ids.len()
    );
    assert_eq!(ids.len(), 4, "{distinct:?}");
    // Deliveries of one repository go one at a time: only the one in flight can come twice.
    assert!(duplicates <= 1, "{got:?}");
}
