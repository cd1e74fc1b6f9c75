//! Prometheus metrics (`[metrics] listen`): a real Berth serves `/metrics` on its own listener
//! and never on the registry's; requests are counted by route template with the right statuses;
//! `promtool check metrics` accepts the text; a real Prometheus (Debian's `prometheus`, from
//! `tests/install-clients.sh`) scrapes it and its query API shows the request and queue series;
//! the alert rules in `docs/` pass `promtool check rules`, and every metric the Grafana
//! dashboard and the rules query is one Berth exports (or one of the event-delivery families
//! documented for the events work). Runs on either stack.

use crate::support::{api, common};

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::*;
use common::TestServer;

const MANIFEST_ROUTE: &str = "/v2/{name}/manifests/{reference}";

/// The event-delivery families the events work exports (the dashboard and the alert rules
/// query them already).
const EVENT_DELIVERY_NAMES: [&str; 4] = [
    "berth_event_deliveries_pending",
    "berth_event_deliveries_dead_lettered",
    "berth_event_delivery_oldest_pending_age_seconds",
    "berth_event_deliveries_total",
];

/// How long Prometheus may take to scrape (every second) and answer with the series.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(30);

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts Berth with a metrics listener on a free port; returns it and the listener's address.
fn start_with_metrics() -> (TestServer, String) {
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let server = TestServer::start_with(&[], &[("BERTH_METRICS_LISTEN", metrics.as_str())]);
    (server, metrics)
}

async fn scrape(metrics: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("http://{metrics}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET http://{metrics}/metrics: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
    let content_type = header(&resp, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "content type {content_type:?}"
    );
    resp.text().await.unwrap()
}

/// The value of the sample `name{labels...}` (all of `labels` among its labels), if any.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let rest = rest.strip_suffix('}')?;
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
}

/// The families of a scrape, by their `# TYPE` lines.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// `berth_*` names in `text` (PromQL, or the rule file as a whole).
fn queried_names(text: &str) -> BTreeSet<String> {
    regex::Regex::new(r"berth_[a-z0-9_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// Whether `name` is exported: a family, a histogram's `_bucket`/`_sum`/`_count`, or an
/// event-delivery family.
fn exported(name: &str, families: &BTreeSet<String>) -> bool {
    families.contains(name)
        || EVENT_DELIVERY_NAMES.contains(&name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(|f| families.contains(f)))
}

fn promtool() -> &'static str {
    assert!(
        Command::new("promtool").arg("--version").output().is_ok(),
        "promtool is not installed (Debian package prometheus; run tests/install-clients.sh)"
    );
    "promtool"
}

/// Some registry traffic: an image pushed (blob uploads, a manifest PUT), its manifest read
/// twice, one unknown tag (404). Returns the repository and the manifest's length.
async fn traffic(api: &Api) -> (String, usize) {
    let repo = format!("metrics/app-{}", rand_suffix());
    let pushed = api.push_image(&repo, "v1").await;
    for _ in 0..2 {
        let resp = api.get_manifest(&repo, "v1").await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.bytes().await.unwrap().len(), pushed.manifest.len());
    }
    let resp = api.get_manifest(&repo, "no-such-tag").await;
    assert_eq!(resp.status().as_u16(), 404);
    let _ = resp.bytes().await;
    (repo, pushed.manifest.len())
}

#[tokio::test]
async fn requests_are_counted_by_route_template_on_the_metrics_listener_only() {
    let (mut server, metrics) = start_with_metrics();
    let api = Api::new(&server.base);
    let (repo, manifest_len) = traffic(&api).await;
    // ECR API calls are named by operation, unknown ones as one label.
    let client = reqwest::Client::new();
    for target in ["DescribeRepositories", "NoSuchOperation"] {
        let _ = client
            .post(server.url("/"))
            .header(
                "x-amz-target",
                format!("AmazonEC2ContainerRegistry_V20150921.{target}"),
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body("{}")
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
    }

    // The registry's port does not serve the metrics.
    let resp = api.get("/metrics").await;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert!(matches!(status, 401 | 404), "registry /metrics: {status}");
    assert!(!body.contains("berth_http_requests_total"), "{body}");

    // The exchange is timed until its response body is sent: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&metrics).await;
        let timed = sample(
            &text,
            "berth_http_request_duration_seconds_count",
            &[("route", MANIFEST_ROUTE), ("method", "GET")],
        );
        if timed == Some(3.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let requests = |method: &str, status: &str| {
        sample(
            &text,
            "berth_http_requests_total",
            &[
                ("route", MANIFEST_ROUTE),
                ("method", method),
                ("status", status),
            ],
        )
    };
    assert_eq!(requests("PUT", "201"), Some(1.0), "{text}");
    assert_eq!(requests("GET", "200"), Some(2.0), "{text}");
    assert_eq!(requests("GET", "404"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "berth_http_request_duration_seconds_count",
            &[("route", MANIFEST_ROUTE), ("method", "GET")],
        ),
        Some(3.0),
        "{text}"
    );
    // Two blobs were uploaded (config and layer), each a POST and a PUT with the bytes.
    assert_eq!(
        sample(
            &text,
            "berth_http_requests_total",
            &[
                ("route", "/v2/{name}/blobs/uploads/"),
                ("method", "POST"),
                ("status", "202"),
            ],
        ),
        Some(2.0),
        "{text}"
    );
    let uploaded = sample(
        &text,
        "berth_http_request_bytes_total",
        &[("route", "/v2/{name}/blobs/uploads/{uuid}")],
    )
    .unwrap_or(0.0);
    assert!(uploaded >= 256.0, "upload bytes {uploaded}\n{text}");
    let sent = sample(
        &text,
        "berth_http_response_bytes_total",
        &[("route", MANIFEST_ROUTE)],
    )
    .unwrap_or(0.0);
    assert!(
        sent >= 2.0 * manifest_len as f64,
        "manifest response bytes {sent} < 2 x {manifest_len}"
    );
    // Unknown paths are `other`, ECR calls `ecr:<Operation>`; raw paths never appear.
    assert!(
        sample(
            &text,
            "berth_http_requests_total",
            &[
                ("route", "other"),
                ("method", "GET"),
                ("status", status.to_string().as_str())
            ],
        )
        .is_some(),
        "{text}"
    );
    for route in ["ecr:DescribeRepositories", "ecr:other"] {
        assert!(
            sample(&text, "berth_http_requests_total", &[("route", route)]).is_some(),
            "no {route} series\n{text}"
        );
    }
    assert!(!text.contains(&repo), "a repository name in the metrics");
    assert!(
        !text.contains("NoSuchOperation"),
        "a raw ECR target in the metrics"
    );
    // The other families are there from the start.
    for (name, labels) in [
        ("berth_build_info", &[][..]),
        ("berth_queue_depth", &[("queue", "scan")][..]),
        (
            "berth_queue_oldest_age_seconds",
            &[("queue", "gc_blob_review")][..],
        ),
        ("berth_blobs", &[][..]),
        ("berth_blob_bytes", &[][..]),
        ("berth_manifests", &[][..]),
        ("berth_upload_sessions_active", &[][..]),
        ("berth_db_pool_max_connections", &[][..]),
        ("berth_db_pool_connections", &[("state", "idle")][..]),
        (
            "berth_pull_through_requests_total",
            &[("outcome", "hit")][..],
        ),
        ("berth_scans_total", &[("outcome", "complete")][..]),
        ("berth_storage_errors_total", &[("op", "publish")][..]),
        (
            "berth_db_query_duration_seconds_count",
            &[("query", "manifest_get")][..],
        ),
    ] {
        assert!(
            sample(&text, name, labels).is_some(),
            "no {name}{labels:?}\n{text}"
        );
    }
    assert!(
        sample(&text, "berth_db_pool_max_connections", &[]).unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "berth_storage_operation_duration_seconds_count",
            &[("op", "publish")]
        )
        .unwrap()
            >= 2.0,
        "two uploads published\n{text}"
    );
    assert!(
        sample(
            &text,
            "berth_db_query_duration_seconds_count",
            &[("query", "manifest_get")]
        )
        .unwrap()
            >= 1.0,
        "the first manifest read reaches the store (the metadata cache may answer the rest)\n{text}"
    );

    // promtool accepts the exposition.
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every metric the dashboard and the alert rules query is exported.
    let families = families(&text);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("docs/grafana-dashboard.json")).unwrap(),
    )
    .expect("docs/grafana-dashboard.json is JSON");
    let mut exprs = String::new();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push_str(target["expr"].as_str().expect("expr"));
            exprs.push('\n');
            panels += 1;
        }
    }
    assert!(panels >= 10, "the dashboard has {panels} queries");
    let rules = std::fs::read_to_string(repo_root().join("docs/prometheus-alerts.yml")).unwrap();
    for (file, names) in [
        ("docs/grafana-dashboard.json", queried_names(&exprs)),
        ("docs/prometheus-alerts.yml", queried_names(&rules)),
    ] {
        assert!(!names.is_empty(), "{file} queries no berth_ metric");
        let unknown: Vec<_> = names.iter().filter(|n| !exported(n, &families)).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics Berth does not export: {unknown:?}"
        );
    }

    // The registry-wide gauges are read at start (then every 30 s): after a restart they show
    // the pushed image, two blobs (config and layer) and one manifest.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&metrics).await;
        if sample(&text, "berth_blobs", &[]) == Some(2.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sample(&text, "berth_blobs", &[]), Some(2.0), "{text}");
    assert_eq!(sample(&text, "berth_manifests", &[]), Some(1.0), "{text}");
    assert!(
        sample(&text, "berth_blob_bytes", &[]).unwrap() > 256.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "berth_upload_sessions_active", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "berth_queue_depth", &[("queue", "replication")]),
        Some(0.0),
        "{text}"
    );
    // The new blobs wait for their first GC review (after the grace period, so none is due).
    assert!(
        sample(&text, "berth_queue_depth", &[("queue", "gc_blob_review")]).unwrap() >= 2.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "berth_queue_oldest_age_seconds",
            &[("queue", "gc_blob_review")]
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        !server.log().contains("cannot read the registry's counts"),
        "{}",
        common::log_tail(&server.log())
    );
}

#[tokio::test]
async fn no_metrics_listener_unless_configured() {
    let server = TestServer::start();
    let log = server.log();
    assert!(log.contains("berth listening"), "{log}");
    assert!(!log.contains("metrics listening"), "{log}");
    let resp = reqwest::get(server.url("/metrics")).await.unwrap();
    assert!(matches!(resp.status().as_u16(), 401 | 404));
    assert!(!resp.text().await.unwrap().contains("berth_"));

    // A bad address stops startup, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::berth_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .env("BERTH_METRICS_LISTEN", "localhost")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("BERTH_METRICS_LISTEN"), "{err}");
}

#[test]
fn alert_rules_pass_promtool() {
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(repo_root().join("docs/prometheus-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus process, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every second.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", common::free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package prometheus; run tests/install-clients.sh)");
        Prometheus {
            child,
            base: format!("http://{addr}"),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result vector of an instant query (empty while Prometheus is starting).
    async fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let Ok(resp) = resp else { return Vec::new() };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return Vec::new();
        };
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `query` until it has a series for which `want` holds, within [`PROMETHEUS_WAIT`].
    async fn wait_for(&self, query: &str, want: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            let result = self.query(query).await;
            if result.iter().any(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not show a matching series of {query} within {} s; last answer {result:?}; its log:\n{}",
                PROMETHEUS_WAIT.as_secs(),
                common::log_tail(&self.log())
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_request_and_queue_series() {
    let (server, metrics) = start_with_metrics();
    let prometheus = Prometheus::start(&metrics);
    let api = Api::new(&server.base);
    traffic(&api).await;
    prometheus
        .wait_for("berth_http_requests_total", |series| {
            series["metric"]["route"] == MANIFEST_ROUTE
                && series["metric"]["status"] == "201"
                && series["metric"]["job"] == "berth"
        })
        .await;
    prometheus
        .wait_for("berth_queue_depth", |series| {
            series["metric"]["queue"] == "scan"
        })
        .await;
    prometheus
        .wait_for("up{job=\"berth\"}", |series| series["value"][1] == "1")
        .await;
}
