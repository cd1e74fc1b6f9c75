//! The process's Prometheus metrics: one registry of `berth_*` families that every layer records
//! into through a cheap [`Metrics`] handle, and its text exposition (format 0.0.4) for the
//! `/metrics` listener. No I/O here; the gauges that need a query are set by `jobs`.
//!
//! Hot paths never take a lock shared by all requests: the label sets of the fixed families
//! (storage operations, store calls, pull-through outcomes) are resolved once here, and the HTTP
//! layer keeps its own lock-free table of resolved series (`http::observe`). The registry's
//! mutex is taken only to register a family and to encode a scrape.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The metric types, for modules that register their own families through
/// [`Metrics::register`].
pub use prometheus_client::metrics::{counter, family, gauge, histogram};

/// A gauge holding a float (ages, byte counts past 2^63 are not a concern).
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Request latency buckets: 1 ms to 60 s (a blob download of a large layer lands in the last).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];

/// Store call and storage operation buckets: 0.25 ms to 10 s.
const IO_BUCKETS: [f64; 13] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Background pass and Trivy run buckets: 10 ms to 30 min.
const PASS_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
];

/// The labels of `berth_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

/// The labels of `berth_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteMethod {
    pub route: &'static str,
    pub method: &'static str,
}

/// A label set with one label, for the families keyed by a fixed name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Op {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Query {
    query: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Job {
    job: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn io_histogram() -> Histogram {
    Histogram::new(IO_BUCKETS)
}

fn pass_histogram() -> Histogram {
    Histogram::new(PASS_BUCKETS)
}

/// A blob storage operation, as `berth_storage_*{op}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageOp {
    /// Starting an upload's staging (a multipart upload on S3).
    StartUpload,
    /// Writing a whole small upload in one request.
    PutUpload,
    /// Appending a chunk to an upload (until its bytes are durable).
    Append,
    /// Completing an upload's staging (the multipart completion on S3).
    Seal,
    /// Re-reading an upload to restore its hash.
    Rehash,
    /// Moving an upload to its content-addressed key.
    Publish,
    /// Removing an upload's staged bytes.
    DiscardUpload,
    /// Opening a blob for reading (until the first byte can be streamed; the transfer itself
    /// is in the HTTP metrics) or signing its redirect URL.
    Read,
    /// Deleting, detaching or purging a stored object (GC).
    Delete,
    /// Listing every object (fsck).
    List,
    /// The readiness probe's write and read.
    Probe,
}

impl StorageOp {
    const ALL: [StorageOp; 11] = [
        StorageOp::StartUpload,
        StorageOp::PutUpload,
        StorageOp::Append,
        StorageOp::Seal,
        StorageOp::Rehash,
        StorageOp::Publish,
        StorageOp::DiscardUpload,
        StorageOp::Read,
        StorageOp::Delete,
        StorageOp::List,
        StorageOp::Probe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StorageOp::StartUpload => "start_upload",
            StorageOp::PutUpload => "put_upload",
            StorageOp::Append => "append",
            StorageOp::Seal => "seal",
            StorageOp::Rehash => "rehash",
            StorageOp::Publish => "publish",
            StorageOp::DiscardUpload => "discard_upload",
            StorageOp::Read => "read",
            StorageOp::Delete => "delete",
            StorageOp::List => "list",
            StorageOp::Probe => "probe",
        }
    }
}

/// A hot metadata store call, as `berth_db_query_duration_seconds{query}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCall {
    /// A manifest looked up by tag or digest (pulls).
    ManifestGet,
    /// A manifest and its tag written (pushes).
    ManifestPut,
    /// A blob looked up in a repository (pulls, HEAD before a push).
    BlobGet,
    /// A finished upload's blob committed and linked.
    BlobCommit,
    /// An upload session read.
    UploadGet,
    /// An upload session's progress written.
    UploadUpdate,
    /// A repository's id looked up (when not cached).
    RepositoryGet,
}

impl StoreCall {
    const ALL: [StoreCall; 7] = [
        StoreCall::ManifestGet,
        StoreCall::ManifestPut,
        StoreCall::BlobGet,
        StoreCall::BlobCommit,
        StoreCall::UploadGet,
        StoreCall::UploadUpdate,
        StoreCall::RepositoryGet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreCall::ManifestGet => "manifest_get",
            StoreCall::ManifestPut => "manifest_put",
            StoreCall::BlobGet => "blob_get",
            StoreCall::BlobCommit => "blob_commit",
            StoreCall::UploadGet => "upload_get",
            StoreCall::UploadUpdate => "upload_update",
            StoreCall::RepositoryGet => "repository_get",
        }
    }
}

/// How a read of a pull-through repository was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullThroughOutcome {
    /// From the cache, nothing fetched from upstream (a tag check that found it unchanged
    /// included).
    Hit,
    /// Fetched from upstream (and cached).
    Miss,
    /// A cached copy, because the upstream failed or no longer has it.
    Stale,
    /// Failed because the upstream failed, with no cached copy to serve.
    UpstreamError,
}

impl PullThroughOutcome {
    const ALL: [PullThroughOutcome; 4] = [
        PullThroughOutcome::Hit,
        PullThroughOutcome::Miss,
        PullThroughOutcome::Stale,
        PullThroughOutcome::UpstreamError,
    ];

    fn name(self) -> &'static str {
        match self {
            PullThroughOutcome::Hit => "hit",
            PullThroughOutcome::Miss => "miss",
            PullThroughOutcome::Stale => "stale",
            PullThroughOutcome::UpstreamError => "upstream_error",
        }
    }
}

/// How a Trivy scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    Complete,
    /// Failed; retried later.
    Retried,
    /// Failed for good (out of attempts).
    Failed,
    /// Not an image Trivy scans.
    Unsupported,
}

impl ScanResult {
    const ALL: [ScanResult; 4] = [
        ScanResult::Complete,
        ScanResult::Retried,
        ScanResult::Failed,
        ScanResult::Unsupported,
    ];

    fn name(self) -> &'static str {
        match self {
            ScanResult::Complete => "complete",
            ScanResult::Retried => "retried",
            ScanResult::Failed => "failed",
            ScanResult::Unsupported => "unsupported",
        }
    }
}

/// The work queues whose depth and oldest age are exported.
pub const QUEUES: [&str; 4] = [
    "gc_blob_review",
    "gc_manifest_review",
    "scan",
    "replication",
];

/// What one queue holds, as read from the database.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    /// Rows waiting (due or not).
    pub depth: i64,
    /// How long the oldest due row has waited, in seconds; 0 when none is due.
    pub oldest_age_secs: f64,
}

/// Registry-wide counts, as read from the database.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inventory {
    pub blobs: i64,
    pub blob_bytes: i64,
    pub manifests: i64,
    pub upload_sessions: i64,
}

/// The families with fixed label sets, resolved once.
struct Fixed {
    storage: Vec<(Histogram, Counter)>,
    store_calls: Vec<Histogram>,
    pull_through: Vec<Counter>,
    scans: Vec<Counter>,
    scan_duration: Histogram,
    queue_depth: Vec<Gauge>,
    queue_age: Vec<FloatGauge>,
    blobs: Gauge,
    blob_bytes: Gauge,
    manifests: Gauge,
    upload_sessions: Gauge,
    pool_idle: Gauge,
    pool_in_use: Gauge,
    pool_max: Gauge,
}

/// Sets gauges from memory before a scrape.
type ScrapeHook = Box<dyn Fn(&Metrics) + Send + Sync>;

struct Inner {
    /// Taken to register a family and to encode a scrape, never on a request.
    registry: Mutex<Registry>,
    /// Run before each scrape to set gauges read from memory (the connection pool's state).
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteMethod>,
    request_bytes: Family<Route, Counter>,
    response_bytes: Family<Route, Counter>,
    passes: HistogramFamily<Job>,
    fixed: Fixed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

/// The process's metrics: cheap to clone (one shared registry). Each process start has one;
/// tests that build several applications in one process may give each its own.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every family Berth records (and `berth_build_info`).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template (`other` for paths no route matches; \
             ECR API calls as `ecr:<Operation>`), method and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<RouteMethod> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request reaching the router to its response body being handed to the \
             connection in full (or dropped), by route template and method",
            request_duration.clone(),
        );
        let request_bytes = Family::<Route, Counter>::default();
        registry.register(
            "http_request_bytes",
            "Request body bytes read by the handlers, by route template, counted as they stream",
            request_bytes.clone(),
        );
        let response_bytes = Family::<Route, Counter>::default();
        registry.register(
            "http_response_bytes",
            "Response body bytes handed to the connection, by route template, counted as they \
             stream",
            response_bytes.clone(),
        );

        let storage_duration: HistogramFamily<Op> = Family::new_with_constructor(io_histogram);
        let storage_errors = Family::<Op, Counter>::default();
        let storage = StorageOp::ALL
            .iter()
            .map(|op| {
                let labels = Op { op: op.name() };
                (
                    storage_duration.get_or_create_owned(&labels),
                    storage_errors.get_or_create_owned(&labels),
                )
            })
            .collect();
        registry.register(
            "storage_operation_duration_seconds",
            "Blob storage operations' time, by operation (`read` is until the object is open, \
             not the transfer)",
            storage_duration,
        );
        registry.register(
            "storage_errors",
            "Blob storage operations that failed, by operation",
            storage_errors,
        );

        let store_call_family: HistogramFamily<Query> = Family::new_with_constructor(io_histogram);
        let store_calls = StoreCall::ALL
            .iter()
            .map(|q| store_call_family.get_or_create_owned(&Query { query: q.name() }))
            .collect();
        registry.register(
            "db_query_duration_seconds",
            "Time of the hot metadata store calls (manifest and blob lookups and writes, upload \
             session reads and writes, repository lookups), each one or a few SQL statements \
             including the wait for a pooled connection; other store calls are not measured",
            store_call_family,
        );
        let pool = Family::<State, Gauge>::default();
        let pool_idle = pool.get_or_create_owned(&State { state: "idle" });
        let pool_in_use = pool.get_or_create_owned(&State { state: "in_use" });
        registry.register(
            "db_pool_connections",
            "Open metadata database connections of this process, idle or in use (read and \
             write pools together)",
            pool,
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "The most metadata database connections this process opens",
            pool_max.clone(),
        );

        let pull_through_family = Family::<Outcome, Counter>::default();
        let pull_through = PullThroughOutcome::ALL
            .iter()
            .map(|o| pull_through_family.get_or_create_owned(&Outcome { outcome: o.name() }))
            .collect();
        registry.register(
            "pull_through_requests",
            "Manifest and blob reads of pull-through repositories: hit (from the cache), miss \
             (fetched from upstream), stale (a cached copy because the upstream failed), \
             upstream_error (failed with the upstream and nothing cached)",
            pull_through_family,
        );

        let scans_family = Family::<Outcome, Counter>::default();
        let scans = ScanResult::ALL
            .iter()
            .map(|o| scans_family.get_or_create_owned(&Outcome { outcome: o.name() }))
            .collect();
        registry.register(
            "scans",
            "Trivy scans run by this process, by outcome (retried: failed and queued again)",
            scans_family,
        );
        let scan_duration = pass_histogram();
        registry.register(
            "scan_duration_seconds",
            "Time of one Trivy scan of one image, including its child process",
            scan_duration.clone(),
        );

        let passes: HistogramFamily<Job> = Family::new_with_constructor(pass_histogram);
        registry.register(
            "background_pass_duration_seconds",
            "Time of one pass of a background job run under its lease (gc, lifecycle, \
             upload-purge, pull-through-quota, metrics-refresh)",
            passes.clone(),
        );

        let depth_family = Family::<Queue, Gauge>::default();
        let age_family = Family::<Queue, FloatGauge>::default();
        let queue_depth = QUEUES
            .iter()
            .map(|q| depth_family.get_or_create_owned(&Queue { queue: q }))
            .collect();
        let queue_age = QUEUES
            .iter()
            .map(|q| age_family.get_or_create_owned(&Queue { queue: q }))
            .collect();
        registry.register(
            "queue_depth",
            "Rows waiting in a work queue of the registry (the same on every replica), read at \
             most every 30 s",
            depth_family,
        );
        registry.register(
            "queue_oldest_age_seconds",
            "How long the oldest due row of a work queue has waited (0 when none is due), read \
             at most every 30 s",
            age_family,
        );

        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let blobs = gauge(
            &mut registry,
            "blobs",
            "Blobs stored in the registry, read at most every 30 s",
        );
        let blob_bytes = gauge(
            &mut registry,
            "blob_bytes",
            "Bytes of the blobs stored in the registry, read at most every 30 s",
        );
        let manifests = gauge(
            &mut registry,
            "manifests",
            "Manifests stored in the registry (per repository), read at most every 30 s",
        );
        let upload_sessions = gauge(
            &mut registry,
            "upload_sessions_active",
            "Blob upload sessions started and not yet finished, cancelled or purged, read at \
             most every 30 s",
        );

        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; labels name this build's version and commit",
            build,
        );

        Metrics(Arc::new(Inner {
            registry: Mutex::new(registry),
            scrape_hooks: Mutex::new(Vec::new()),
            requests,
            request_duration,
            request_bytes,
            response_bytes,
            passes,
            fixed: Fixed {
                storage,
                store_calls,
                pull_through,
                scans,
                scan_duration,
                queue_depth,
                queue_age,
                blobs,
                blob_bytes,
                manifests,
                upload_sessions,
                pool_idle,
                pool_in_use,
                pool_max,
            },
        }))
    }

    /// Registers a family from another module (`name` without the `berth_` prefix and, for a
    /// counter, without `_total`; both are added). The hook for metrics that live elsewhere,
    /// such as event delivery's.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.0
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// Runs `hook` before every scrape, to set gauges from state held in memory. It must be
    /// quick and must not block. (It is handed the metrics rather than keeping a clone, which
    /// would keep the registry alive forever.)
    pub fn on_scrape(&self, hook: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.0
            .scrape_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// The Prometheus text exposition (format 0.0.4, [`CONTENT_TYPE`]) of every family.
    pub fn encode(&self) -> String {
        for hook in self
            .0
            .scrape_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook(self);
        }
        let mut text = String::with_capacity(16 * 1024);
        let registry = self.0.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }

    /// The series of `berth_http_requests_total` for these labels (resolve once, then keep).
    pub fn request_counter(&self, labels: &RequestLabels) -> Counter {
        self.0.requests.get_or_create_owned(labels)
    }

    /// The series of `berth_http_request_duration_seconds` for these labels.
    pub fn request_duration(&self, labels: &RouteMethod) -> Histogram {
        self.0.request_duration.get_or_create_owned(labels)
    }

    /// The series of `berth_http_request_bytes_total` and `berth_http_response_bytes_total` of
    /// a route.
    pub fn body_bytes(&self, route: &'static str) -> (Counter, Counter) {
        let route = Route { route };
        (
            self.0.request_bytes.get_or_create_owned(&route),
            self.0.response_bytes.get_or_create_owned(&route),
        )
    }

    /// Records one storage operation's time and whether it failed.
    pub fn storage_op(&self, op: StorageOp, took: Duration, failed: bool) {
        let (duration, errors) = &self.0.fixed.storage[op as usize];
        duration.observe(took.as_secs_f64());
        if failed {
            errors.inc();
        }
    }

    /// Records one hot store call's time.
    pub fn store_call(&self, call: StoreCall, took: Duration) {
        self.0.fixed.store_calls[call as usize].observe(took.as_secs_f64());
    }

    /// Sets the connection pool gauges.
    pub fn set_pool(&self, idle: u64, in_use: u64, max: u64) {
        let f = &self.0.fixed;
        f.pool_idle.set(idle as i64);
        f.pool_in_use.set(in_use as i64);
        f.pool_max.set(max as i64);
    }

    pub fn pull_through(&self, outcome: PullThroughOutcome) {
        self.0.fixed.pull_through[outcome as usize].inc();
    }

    /// Records one Trivy scan.
    pub fn scan(&self, result: ScanResult, took: Duration) {
        self.0.fixed.scans[result as usize].inc();
        self.0.fixed.scan_duration.observe(took.as_secs_f64());
    }

    /// Records one pass of a background job (`job` is a fixed name: the label set is bounded).
    pub fn pass(&self, job: &'static str, took: Duration) {
        self.0
            .passes
            .get_or_create(&Job { job })
            .observe(took.as_secs_f64());
    }

    /// Sets a queue's gauges; `queue` is one of [`QUEUES`] (others are ignored).
    pub fn set_queue(&self, queue: &str, stats: QueueStats) {
        if let Some(i) = QUEUES.iter().position(|q| *q == queue) {
            self.0.fixed.queue_depth[i].set(stats.depth);
            self.0.fixed.queue_age[i].set(stats.oldest_age_secs);
        }
    }

    /// Sets the registry-wide counts.
    pub fn set_inventory(&self, inventory: Inventory) {
        let f = &self.0.fixed;
        f.blobs.set(inventory.blobs);
        f.blob_bytes.set(inventory.blob_bytes);
        f.manifests.set(inventory.manifests);
        f.upload_sessions.set(inventory.upload_sessions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_named_by_convention_and_other_modules_can_add_theirs() {
        let metrics = Metrics::new();
        metrics
            .request_counter(&RequestLabels {
                route: "/v2/{name}/manifests/{reference}",
                method: "GET",
                status: 200,
            })
            .inc();
        metrics.storage_op(StorageOp::Seal, Duration::from_millis(3), true);
        metrics.pull_through(PullThroughOutcome::Stale);
        let pending = Gauge::<i64>::default();
        metrics.register("event_deliveries_pending", "test", pending.clone());
        pending.set(7);
        let text = metrics.encode();
        for line in [
            "# TYPE berth_http_requests_total counter",
            "berth_http_requests_total{route=\"/v2/{name}/manifests/{reference}\",method=\"GET\",status=\"200\"} 1",
            "berth_storage_errors_total{op=\"seal\"} 1",
            "berth_storage_errors_total{op=\"append\"} 0",
            "berth_storage_operation_duration_seconds_count{op=\"seal\"} 1",
            "berth_pull_through_requests_total{outcome=\"stale\"} 1",
            "berth_event_deliveries_pending 7",
            "# TYPE berth_build_info gauge",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
