//! Registry use cases with no HTTP types, one service per aggregate: blob reads
//! ([`BlobService`]), uploads ([`UploadService`]), manifests and tags ([`ManifestService`]),
//! images as ECR lists them ([`ImageService`]), repositories with their resource tags and
//! pull-through rules ([`RepositoryService`]), creation templates ([`TemplateService`]),
//! lifecycle ([`LifecycleService`]), scanning and pull gates ([`ScanService`]), garbage
//! collection and fsck ([`GcService`]), and this process among its replicas
//! ([`ReplicaService`]). Each is built from the `meta` stores it uses and the `core::Core`
//! they all share (blob store, limits, metadata cache, repository lookups), so which cache a
//! write invalidates stays inside the service that writes. Services call stores, and a service
//! calls another only where a use case spans both (PutImage stores a manifest). [`Registry`]
//! builds them once and hands each out. Each public function names the spec endpoint or use case
//! it serves. Depends on `meta`, `storage`, the pure `policy`/`lifecycle`/`oci` modules and
//! `error`.

mod blobs;
mod core;
mod events;
mod fsck;
mod gc;
mod images;
mod lifecycle;
mod manifests;
mod metadata_cache;
mod replicas;
mod replication;
mod repositories;
mod resource_tags;
mod scan;
mod templates;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::meta::Meta;
use crate::storage::BlobStore;

pub use blobs::{BlobRead, BlobService};
pub use events::{EventRule, EventService};
pub use fsck::FsckReport;
pub use gc::{GcReport, GcService, GcStats, GcStatus, GcTotals};
pub use images::{ImageDelete, ImageLookup, ImagePut, ImageService};
pub use lifecycle::{
    LifecycleExpiry, LifecyclePreview, LifecycleRun, LifecycleService, LifecycleSummary,
    PullTracker,
};
pub use manifests::{ManifestPut, ManifestService, StoredManifest};
pub use metadata_cache::MetaCache;
pub use replicas::{Readiness, ReplicaService};
pub use replication::{ImageReplicationStatus, ReplicationRules, ReplicationService};
pub use repositories::{prefix_upper_bound, RepositoryService};
pub use resource_tags::MAX_RESOURCE_TAGS;
pub use scan::{parse_report, Credential, ScanFindingsPage, ScanService, Scanner, OFFLINE_FLAGS};
pub use templates::{template_not_found, template_prefix, TemplateService};
pub use uploads::{BlobLocation, ChunkRange, UploadProgress, UploadService};

/// Limits and timeouts the services enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_manifest_bytes: usize,
    pub max_manifest_descriptors: usize,
    pub max_index_depth: u32,
    pub body_idle_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &Config) -> Self {
        Limits {
            max_manifest_bytes: c.limits.max_manifest_bytes,
            max_manifest_descriptors: c.limits.max_manifest_descriptors,
            max_index_depth: c.limits.max_index_depth,
            body_idle_timeout: Duration::from_secs(c.server.body_idle_timeout_secs),
        }
    }
}

/// The registry's services, built once over one database and one blob store. Each accessor
/// hands out the service of one aggregate; the services share the metadata cache and limits.
pub struct Registry {
    core: core::Core,
    blobs: BlobService,
    uploads: UploadService,
    manifests: ManifestService,
    images: ImageService,
    repositories: RepositoryService,
    templates: TemplateService,
    lifecycle: LifecycleService,
    scans: ScanService,
    gc: GcService,
    replicas: ReplicaService,
    replication: ReplicationService,
    events: EventService,
    stats: crate::meta::Stats,
}

/// How long a replica trusts its copy of a repository's pull gate.
pub const PULL_GATE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Registry {
    /// `replication_targets`: the names of the configured non-Berth replication targets;
    /// `nats_configured`: whether event rules may have NATS targets.
    pub fn new(
        meta: Meta,
        blobs: BlobStore,
        limits: Limits,
        replication_targets: Vec<String>,
        nats_configured: bool,
    ) -> Self {
        // SQLite means one node, where local invalidation is complete; see `metadata_cache` for
        // why replicas on PostgreSQL read through.
        let cache = MetaCache::new(meta.dialect() == crate::meta::Dialect::Sqlite);
        let core = core::Core::new(
            blobs,
            limits,
            cache,
            meta.repositories(),
            meta.pull_through_cache(),
            meta.metrics().clone(),
        );
        let pulls = Arc::new(PullTracker::default());
        let gates = Arc::new(scan::PullGates::new(meta.scans()));
        let rules = Arc::new(ReplicationRules::new(
            meta.replication(),
            replication_targets,
        ));
        let blobs = BlobService::new(core.clone(), meta.blob_index());
        let manifests = ManifestService::new(
            core.clone(),
            meta.manifests(),
            meta.blob_index(),
            gates.clone(),
            pulls.clone(),
            rules.clone(),
        );
        let repositories = RepositoryService::new(
            core.clone(),
            meta.repositories(),
            meta.resource_tags(),
            meta.identity(),
        );
        Registry {
            uploads: UploadService::new(core.clone(), meta.uploads(), meta.blob_index()),
            images: ImageService::new(
                core.clone(),
                meta.images(),
                meta.manifests(),
                manifests.clone(),
                blobs.clone(),
            ),
            templates: TemplateService::new(core.clone(), meta.templates(), repositories.clone()),
            lifecycle: LifecycleService::new(core.clone(), meta.lifecycle(), pulls),
            scans: ScanService::new(core.clone(), meta.scans(), gates),
            gc: GcService::new(
                core.clone(),
                meta.gc_reviews(),
                meta.uploads(),
                meta.blob_index(),
                meta.gc_grace(),
            ),
            replication: ReplicationService::new(meta.replication(), meta.repositories(), rules),
            events: EventService::new(meta.events(), nats_configured),
            stats: meta.stats(),
            replicas: ReplicaService::new(core.clone(), meta),
            core,
            blobs,
            manifests,
            repositories,
        }
    }

    /// The process's metrics (those the metadata store was given).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.core.metrics
    }

    /// Reads the registry-wide counts and queue depths into the metrics' gauges: a few
    /// aggregate queries, so callers run it at most every 30 s (`jobs::refresh_metrics`).
    pub async fn refresh_metrics(&self) -> crate::error::Result<()> {
        let inventory = self.stats.inventory().await?;
        let queues = self.stats.queues(crate::meta::now_millis()).await?;
        let metrics = &self.core.metrics;
        metrics.set_inventory(inventory);
        for (queue, stats) in queues {
            metrics.set_queue(queue, stats);
        }
        Ok(())
    }

    /// Blob reads and deletes (`/v2/<name>/blobs/<digest>`).
    pub fn blobs(&self) -> &BlobService {
        &self.blobs
    }

    /// Blob upload sessions and mounts.
    pub fn uploads(&self) -> &UploadService {
        &self.uploads
    }

    /// Manifests, tags and referrers.
    pub fn manifests(&self) -> &ManifestService {
        &self.manifests
    }

    /// Images as ECR's API sees them.
    pub fn images(&self) -> &ImageService {
        &self.images
    }

    /// Repositories, their settings and resource tags, the catalog, pull-through rules.
    pub fn repositories(&self) -> &RepositoryService {
        &self.repositories
    }

    /// Repository creation templates.
    pub fn templates(&self) -> &TemplateService {
        &self.templates
    }

    /// Lifecycle policies, previews, runs and recorded pulls.
    pub fn lifecycle(&self) -> &LifecycleService {
        &self.lifecycle
    }

    /// Scanning, findings and pull gates.
    pub fn scans(&self) -> &ScanService {
        &self.scans
    }

    /// Garbage collection and the consistency check.
    pub fn gc(&self) -> &GcService {
        &self.gc
    }

    /// This process among the replicas: leases, readiness, the maintenance epoch.
    pub fn replicas(&self) -> &ReplicaService {
        &self.replicas
    }

    pub fn replication(&self) -> &ReplicationService {
        &self.replication
    }

    /// Event rules, recorded events and their deliveries.
    pub fn events(&self) -> &EventService {
        &self.events
    }

    /// The limits requests are held to.
    pub fn limits(&self) -> &Limits {
        &self.core.limits
    }

    /// The smallest chunk the blob store accepts in a chunked upload, but the last (S3's
    /// multipart part size), if it has one.
    pub fn chunk_min_length(&self) -> Option<usize> {
        self.core.blobs.chunk_min_length()
    }
}

/// Largest page served when the client asks for none or for more.
pub const MAX_PAGE: usize = 10_000;

/// Fetches one page plus one row to learn whether more follow.
async fn page<F, Fut>(n: Option<usize>, fetch: F) -> Result<(Vec<String>, bool)>
where
    F: FnOnce(i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>>>,
{
    let n = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    if n == 0 {
        return Ok((Vec::new(), false));
    }
    let mut rows = fetch(n as i64 + 1).await?;
    let more = rows.len() > n;
    rows.truncate(n);
    Ok((rows, more))
}
