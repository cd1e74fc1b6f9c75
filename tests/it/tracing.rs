//! Traces and request logs: a real Berth exports its spans over OTLP/HTTP to a receiver that
//! decodes them with Python's `opentelemetry-proto` (`tests/fixtures/otlp_receiver.py`, in the
//! venv `tests/install-clients.sh` fills); the spans of a push are children of the
//! `traceparent` the client sent, are named by route template, and have database and storage
//! children. JSON logs carry one line per request with its request id (also answered as
//! `X-Request-Id`), trace id, principal, repository and outcome, and never a credential.
//! Without `[tracing] otlp_endpoint` nothing is exported, even with the standard `OTEL_*`
//! variables pointing at a receiver. Runs on either stack.

use crate::support::{api, common};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::*;
use common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};
use reqwest::Method;
use serde_json::Value;

const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";
const UPLOAD_ROUTE: &str = "/v2/{name}/blobs/uploads/{uuid}";
/// How long the exporter may take to deliver (it sends every 200 ms in these tests).
const EXPORT_WAIT: Duration = Duration::from_secs(30);
/// The batch processor's schedule in these tests (the standard `OTEL_BSP_SCHEDULE_DELAY`, ms).
const SCHEDULE_DELAY_MS: &str = "200";

/// The OTLP/HTTP receiver: a Python process writing one JSON line per span it decodes.
struct Receiver {
    child: Child,
    port: u16,
    spans: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp_receiver.py");
        let python = common::venv().join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run tests/install-clients.sh",
            python.display()
        );
        let port = common::free_port();
        let child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&spans)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut receiver = Receiver {
            child,
            port,
            spans,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = receiver.child.try_wait().unwrap() {
                panic!("the OTLP receiver exited with {status} (is opentelemetry-proto in the venv? run tests/install-clients.sh)");
            }
            assert!(
                Instant::now() < deadline,
                "the OTLP receiver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        receiver
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The spans received so far.
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.spans).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("receiver line is JSON"))
            .inspect(|span| assert!(span.get("error").is_none(), "receiver: {span}"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A W3C `traceparent` of a sampled client span, and its trace and span ids.
fn traceparent() -> (String, String, String) {
    let trace_id = hex::encode(random_bytes(16));
    let span_id = hex::encode(random_bytes(8));
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The children of `span` among `spans`.
fn children<'a>(spans: &'a [Value], span: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["parent_span_id"] == span["span_id"] && s["trace_id"] == span["trace_id"])
        .collect()
}

/// The server span whose parent is the client's span `(trace_id, span_id)`.
fn server_span<'a>(spans: &'a [Value], trace_id: &str, parent: &str) -> Option<&'a Value> {
    spans
        .iter()
        .find(|s| s["trace_id"] == trace_id && s["parent_span_id"] == parent)
}

/// Pushes a blob (POST, then a monolithic PUT that carries `traceparent`); returns its digest.
async fn push_blob_traced(api: &Api, repo: &str, data: &[u8], traceparent: &str) -> String {
    let digest = sha256_digest(data);
    let location = api.start_upload(repo).await;
    let url = api.with_query(&location, "digest", &digest);
    let resp = api
        .send(
            api.req(Method::PUT, &url)
                .header("content-type", OCTET)
                .header("traceparent", traceparent)
                .body(data.to_vec()),
        )
        .await;
    assert_created_blob(resp, &digest).await;
    digest
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_sends_its_spans_linked_to_the_clients_traceparent() {
    let receiver = Receiver::start();
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_TRACING_OTLP_ENDPOINT", &receiver.endpoint()),
            ("BERTH_TRACING_SERVICE_NAME", "berth-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS),
        ],
    );
    assert!(
        server.log().contains("traces: exporting over OTLP/HTTP"),
        "{}",
        server.log()
    );
    let api = Api::new(&server.base);
    let repo = format!("traced-{}", rand_suffix());

    let (blob_parent, blob_trace, blob_client_span) = traceparent();
    let config = random_config();
    let config_digest = push_blob_traced(&api, &repo, &config, &blob_parent).await;
    let layer = random_bytes(2048);
    let layer_digest = api.push_blob(&repo, &layer).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc_of(OCI_CONFIG, &config_digest, config.len()),
        "layers": [desc_of(OCI_LAYER, &layer_digest, layer.len())],
    }))
    .unwrap();
    let (manifest_parent, manifest_trace, manifest_client_span) = traceparent();
    let resp = api
        .send(
            api.req(Method::PUT, &format!("/v2/{repo}/manifests/v1"))
                .header("content-type", OCI_MANIFEST)
                .header("traceparent", &manifest_parent)
                .header("tracestate", "vendor=opaque")
                .body(manifest),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    assert!(header(&resp, "x-request-id").is_some());

    // Spans arrive in batches as they end: wait for both server spans and the children the
    // assertions below look for.
    let deadline = Instant::now() + EXPORT_WAIT;
    let spans = loop {
        let spans = receiver.spans();
        let has_child = |trace: &str, parent: &str, attribute: &str| {
            server_span(&spans, trace, parent).is_some_and(|s| {
                children(&spans, s)
                    .iter()
                    .any(|c| attr(c, attribute).is_string())
            })
        };
        let complete = has_child(&manifest_trace, &manifest_client_span, "db.operation.name")
            && spans.iter().any(|s| s["name"] == "manifest_put")
            && has_child(&blob_trace, &blob_client_span, "berth.storage.operation");
        if complete {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "no complete spans of the push within {EXPORT_WAIT:?}; received {spans:#?}\nserver log:\n{}",
            common::log_tail(&server.log())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let put = server_span(&spans, &manifest_trace, &manifest_client_span).unwrap();
    assert_eq!(put["name"], format!("PUT {MANIFEST_ROUTE}"), "{put}");
    assert_eq!(put["kind"], 2, "a server span: {put}");
    assert_eq!(put["service"], "berth-under-test");
    assert_eq!(put["content_type"], "application/x-protobuf");
    assert_eq!(attr(put, "http.route"), MANIFEST_ROUTE);
    assert_eq!(attr(put, "http.request.method"), "PUT");
    assert_eq!(attr(put, "http.response.status_code"), 201);
    assert_eq!(attr(put, "url.path"), &format!("/v2/{repo}/manifests/v1"));
    assert_eq!(attr(put, "berth.repository"), &repo);
    assert_eq!(
        attr(put, "enduser.id"),
        &format!("arn:aws:iam::000000000000:user/{ADMIN_USER}")
    );
    let db: Vec<&str> = children(&spans, put)
        .iter()
        .filter(|s| attr(s, "db.operation.name").is_string())
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        db.contains(&"manifest_put"),
        "the manifest PUT's transaction is a child span: {db:?} in {spans:#?}"
    );
    for span in children(&spans, put) {
        assert_eq!(span["kind"], 3, "database calls are client spans: {span}");
    }

    let blob = server_span(&spans, &blob_trace, &blob_client_span).unwrap();
    assert_eq!(blob["name"], format!("PUT {UPLOAD_ROUTE}"), "{blob}");
    assert_eq!(attr(blob, "http.response.status_code"), 201);
    let storage: Vec<&str> = children(&spans, blob)
        .iter()
        .filter(|s| attr(s, "berth.storage.operation").is_string())
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        !storage.is_empty(),
        "the blob PUT has a storage child span: {spans:#?}"
    );
    let blob_db = children(&spans, blob)
        .iter()
        .filter(|s| attr(s, "db.operation.name").is_string())
        .count();
    assert!(blob_db > 0, "the blob PUT has a database child: {spans:#?}");

    // Requests sent without a traceparent are roots of their own traces.
    assert!(
        spans
            .iter()
            .any(|s| s["parent_span_id"] == "" && s["name"] == "POST /v2/{name}/blobs/uploads/"),
        "{spans:#?}"
    );
    for span in &spans {
        let name = span["name"].as_str().unwrap();
        assert!(
            !name.contains(&repo),
            "a span name holds the repository: {span}"
        );
        assert!(
            !name.contains("sha256:"),
            "a span name holds a digest: {span}"
        );
    }
}

/// The JSON lines of a server log (every line must be one).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
        })
        .collect()
}

/// The request line whose `request_id` is `id`.
fn request_line<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["target"] == "berth::request" && l["request_id"] == id)
        .unwrap_or_else(|| panic!("no request line with request_id {id}"))
}

/// The admin's access key for the ECR API call of the JSON log test.
const ECR_KEY: &str = "AKIATRACINGTEST00001";
const ECR_SECRET: &str = "tracing-test-secret-access-key-0123456789";

/// `DescribeImages` of `repository`, signed with the admin's access key: (status, request id).
async fn ecr_describe_images(server: &TestServer, repository: &str) -> (u16, String) {
    use berth::auth::sigv4::{sign, SigV4Request, SigningCredentials};
    let body = serde_json::to_vec(&serde_json::json!({ "repositoryName": repository })).unwrap();
    let headers = vec![
        ("host".to_owned(), server.addr.clone()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "AmazonEC2ContainerRegistry_V20150921.DescribeImages".to_owned(),
        ),
    ];
    let signature = sign(
        &SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        },
        &SigningCredentials {
            access_key_id: ECR_KEY,
            secret_access_key: ECR_SECRET,
            region: "us-east-1",
            service: "ecr",
        },
        chrono::Utc::now(),
    );
    let mut request = reqwest::Client::new()
        .post(server.url("/"))
        .body(body)
        .header("x-amz-date", signature.amz_date)
        .header("authorization", signature.authorization);
    for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
        request = request.header(name.as_str(), value.as_str());
    }
    let resp = request.send().await.unwrap();
    let id = header(&resp, "x-request-id").expect("X-Request-Id");
    (resp.status().as_u16(), id)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_name_request_trace_principal_repository_and_outcome_and_no_secret() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_LOG_FORMAT", "json"),
            ("BERTH_ADMIN_ACCESS_KEY_ID", ECR_KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", ECR_SECRET),
        ],
    );
    let api = Api::new(&server.base);
    let repo = format!("logged-{}", rand_suffix());
    api.push_image(&repo, "v1").await;

    // A pull with a traceparent, and the caller's own request id.
    let (parent, trace_id, _) = traceparent();
    let resp = api
        .send(
            api.req(Method::GET, &format!("/v2/{repo}/manifests/v1"))
                .header("accept", OCI_MANIFEST)
                .header("traceparent", &parent)
                .header("x-request-id", "ci-build-7.step_2"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "x-request-id").as_deref(),
        Some("ci-build-7.step_2")
    );
    // A 404, with a request id Berth must not take (a space could forge log fields).
    let resp = api
        .send(
            api.req(Method::GET, &format!("/v2/{repo}/manifests/missing"))
                .header("x-request-id", "forged id"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 404);
    let missing_id = header(&resp, "x-request-id").expect("X-Request-Id");
    assert_ne!(missing_id, "forged id");
    // Wrong Basic credentials: a 401 whose password must not be logged either.
    let wrong_password = format!("not-the-password-{}", rand_suffix());
    let wrong = Api::with_basic(&server.base, ADMIN_USER, &wrong_password);
    let resp = wrong.get(&format!("/v2/{repo}/tags/list")).await;
    assert_eq!(resp.status().as_u16(), 401);
    let unauthorized_id = header(&resp, "x-request-id").expect("X-Request-Id");
    // The ECR API (SigV4 with the admin's access key) names the repository of its body (one
    // that does not exist).
    let absent = format!("absent-{}", rand_suffix());
    let (ecr_status, ecr_id) = ecr_describe_images(&server, &absent).await;
    assert!((400..500).contains(&ecr_status), "{ecr_status}");

    // The request lines are written when the response body is done with: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains(&ecr_id) {
        assert!(Instant::now() < deadline, "no line for {ecr_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    let lines = json_lines(&log);

    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "berth::request")
        .collect();
    let put = requests
        .iter()
        .find(|l| l["method"] == "PUT" && l["route"] == MANIFEST_ROUTE)
        .unwrap_or_else(|| panic!("no manifest PUT line in {requests:#?}"));
    assert_eq!(put["status"], 201);
    assert_eq!(put["outcome"], "ok");
    assert_eq!(put["repository"], repo.as_str());
    assert_eq!(
        put["principal"],
        format!("arn:aws:iam::000000000000:user/{ADMIN_USER}")
    );
    assert_eq!(put["message"], "request");
    assert!(put["duration_ms"].is_number(), "{put}");
    let generated = put["request_id"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "a UUID v7 in hex: {put}");
    let uploads = requests
        .iter()
        .filter(|l| l["route"] == UPLOAD_ROUTE && l["status"] == 201)
        .count();
    assert_eq!(uploads, 2, "the config and the layer: {requests:#?}");

    let pull = request_line(&lines, "ci-build-7.step_2");
    assert_eq!(
        pull["trace_id"],
        trace_id.as_str(),
        "the caller's trace: {pull}"
    );
    assert_eq!(pull["status"], 200);
    assert_eq!(pull["repository"], repo.as_str());

    let missing = request_line(&lines, &missing_id);
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["outcome"], "client_error");
    assert_eq!(missing["route"], MANIFEST_ROUTE);
    assert!(
        missing.get("trace_id").is_none(),
        "no trace context sent: {missing}"
    );

    let unauthorized = request_line(&lines, &unauthorized_id);
    assert_eq!(unauthorized["status"], 401);
    assert_eq!(unauthorized["outcome"], "client_error");
    assert!(unauthorized.get("principal").is_none(), "{unauthorized}");

    let ecr = request_line(&lines, &ecr_id);
    assert_eq!(ecr["status"], ecr_status);
    assert_eq!(ecr["outcome"], "client_error");
    assert_eq!(ecr["route"], "ecr:DescribeImages");
    assert_eq!(ecr["repository"], absent.as_str());
    assert_eq!(
        ecr["principal"],
        format!("arn:aws:iam::000000000000:user/{ADMIN_USER}")
    );

    // Lines written inside a request carry its request id at the top level.
    let upload_ids: Vec<&Value> = requests
        .iter()
        .filter(|l| l["route"] == UPLOAD_ROUTE)
        .map(|l| &l["request_id"])
        .collect();
    let inside = lines
        .iter()
        .find(|l| l["message"] == "receiving upload body")
        .unwrap_or_else(|| panic!("no upload line in\n{log}"));
    assert!(upload_ids.contains(&&inside["request_id"]), "{inside}");
    assert_eq!(inside["spans"][0]["name"], "request", "{inside}");

    // Never a credential: the passwords, the Basic credentials, the header itself.
    for secret in [
        ADMIN_PASSWORD.to_owned(),
        ECR_SECRET.to_owned(),
        wrong_password.clone(),
        common::admin_basic_auth(),
        common::admin_basic_auth()
            .trim_start_matches("Basic ")
            .to_owned(),
        common::basic_auth(ADMIN_USER, &wrong_password)
            .trim_start_matches("Basic ")
            .to_owned(),
    ] {
        assert!(
            !log.contains(&secret),
            "the log holds a credential ({secret:?})"
        );
    }
    assert!(!log.to_ascii_lowercase().contains("authorization: basic"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_endpoint_nothing_is_exported() {
    let receiver = Receiver::start();
    // The standard OpenTelemetry variables point at the receiver: Berth must not follow them
    // by itself (traces leave the process only when configured).
    let server = TestServer::start_with(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                &format!("{}/v1/traces", receiver.endpoint()),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS),
        ],
    );
    let log = server.log();
    assert!(
        log.contains("traces: off ([tracing] otlp_endpoint is empty)"),
        "{log}"
    );
    let api = Api::new(&server.base);
    let repo = format!("untraced-{}", rand_suffix());
    let (parent, trace_id, _) = traceparent();
    let config = random_config();
    push_blob_traced(&api, &repo, &config, &parent).await;
    api.push_image(&repo, "v1").await;
    // Ten schedule periods of an exporter that would have sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.spans(), Vec::<Value>::new());
    // The text log still ties the request to the caller's trace.
    let log = server.log();
    assert!(
        log.lines().any(
            |l| l.contains("berth::request") && l.contains(&format!("trace_id=\"{trace_id}\""))
        ),
        "{}",
        common::log_tail(&log)
    );
}
