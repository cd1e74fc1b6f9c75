//! Registry use cases with no HTTP types: blob uploads, blob reads, manifests, tags, catalog and
//! referrers, and the stored state the control plane manages (repositories, lifecycle, scans,
//! templates, GC). Each public function names the spec endpoint or use case it serves; the
//! façade has no public fields, so its invariants (which cache a write invalidates) stay here.
//! Depends on `meta`, `storage`, the pure `policy`/`lifecycle`/`oci` modules and `error`.

mod cache_rules;
mod fsck;
mod gc;
mod identity;
mod images;
mod lifecycle;
mod manifests;
mod metadata_cache;
mod replicas;
mod repositories;
mod resource_tags;
mod scan;
mod templates;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::meta::{
    BlobIndex, BlobRow, GcReviews, IdentityStore, Images, LeaseHolder, Leases, Lifecycle,
    Manifests, Meta, PullThroughCache, Repositories, ResourceTags, Scans, Templates, Uploads,
};
use crate::oci::{Digest, RepoName};
use crate::storage::{BlobBody, BlobStore, ByteRange, RangeRequest};

pub use fsck::FsckReport;
pub use gc::{GcReport, GcStats, GcStatus, GcTotals};
pub use identity::ADMIN_PASSWORD_FILE;
pub use images::{ImageDelete, ImageLookup, ImagePut};
pub use lifecycle::{
    LifecycleExpiry, LifecyclePreview, LifecycleRun, LifecycleSummary, PullTracker,
};
pub use manifests::{ManifestPut, StoredManifest};
pub use metadata_cache::MetaCache;
pub use resource_tags::MAX_RESOURCE_TAGS;
pub use scan::{parse_report, Credential, ScanFindingsPage, Scanner, OFFLINE_FLAGS};
pub use templates::{template_not_found, template_prefix};
pub use uploads::{BlobLocation, ChunkRange, UploadProgress};

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

/// The registry's use cases over metadata and blob storage.
pub struct Registry {
    /// The database itself: readiness, the GC grace period, closing.
    meta: Meta,
    repositories: Repositories,
    uploads: Uploads,
    blob_index: BlobIndex,
    manifests: Manifests,
    images: Images,
    gc_reviews: GcReviews,
    lifecycle: Lifecycle,
    scans: Scans,
    pull_through_cache: PullThroughCache,
    templates: Templates,
    resource_tags: ResourceTags,
    identity: IdentityStore,
    leases: Leases,
    blobs: BlobStore,
    limits: Limits,
    /// Hot metadata; see `cache` for why it stays correct across replicas.
    cache: Arc<MetaCache>,
    /// Per-upload locks on this replica.
    upload_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Garbage collection counters of this process.
    gc_stats: Arc<GcStats>,
    /// Pulls not yet written to the database.
    pulls: PullTracker,
    /// Pull gates by repository id, read through for [`PULL_GATE_TTL`] (so a change reaches
    /// every replica within it).
    gates: crate::util::TtlCache<i64, Option<Arc<crate::policy::scanning::PullGate>>>,
    /// The gate's answer per manifest id (`Some(reason)` refuses), for [`PULL_GATE_TTL`], so a
    /// busy gated image costs no queries per pull.
    gate_decisions: crate::util::TtlCache<i64, Option<Arc<str>>>,
    /// The pull-through cache rules, read through (see `cache_rules`).
    rules: cache_rules::CachedRules,
}

/// How long a replica trusts its copy of a repository's pull gate.
pub const PULL_GATE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// A blob ready to stream.
pub struct BlobRead {
    pub digest: String,
    pub size: u64,
    pub range: Option<ByteRange>,
    pub body: Option<BlobBody>,
}

impl Registry {
    pub fn new(meta: Meta, blobs: BlobStore, limits: Limits) -> Self {
        // SQLite means one node, where local invalidation is complete; see `cache` for why
        // replicas on PostgreSQL read through.
        let cache = Arc::new(MetaCache::new(
            meta.dialect() == crate::meta::Dialect::Sqlite,
        ));
        Registry {
            repositories: meta.repositories(),
            uploads: meta.uploads(),
            blob_index: meta.blob_index(),
            manifests: meta.manifests(),
            images: meta.images(),
            gc_reviews: meta.gc_reviews(),
            lifecycle: meta.lifecycle(),
            scans: meta.scans(),
            pull_through_cache: meta.pull_through_cache(),
            templates: meta.templates(),
            resource_tags: meta.resource_tags(),
            identity: meta.identity(),
            leases: meta.leases(),
            meta,
            blobs,
            limits,
            cache,
            upload_locks: DashMap::new(),
            gc_stats: Arc::new(GcStats::default()),
            pulls: PullTracker::default(),
            gates: crate::util::TtlCache::new(PULL_GATE_TTL, 100_000),
            gate_decisions: crate::util::TtlCache::new(PULL_GATE_TTL, 100_000),
            rules: Default::default(),
        }
    }

    /// The limits requests are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The smallest chunk the blob store accepts in a chunked upload, but the last (S3's
    /// multipart part size), if it has one.
    pub fn chunk_min_length(&self) -> Option<usize> {
        self.blobs.chunk_min_length()
    }

    /// How often this process collects garbage (shown by the GC status).
    pub fn set_gc_interval(&self, interval: std::time::Duration) {
        self.gc_stats.set_interval(interval)
    }

    /// The repository's id, if it exists (cached).
    pub async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>> {
        if let Some(id) = self.cache.repository(name.as_str()) {
            return Ok(Some(id));
        }
        let stamp = self.cache.stamp(0);
        let id = self.repositories.repository_id(name).await?;
        if let Some(id) = id {
            self.cache.put_repository(stamp, name.as_str(), id);
        }
        Ok(id)
    }

    /// Whether the manifest `manifest` of repository `name` references the blob `blob` (the
    /// scanner's credential reads only those).
    pub async fn manifest_references_blob(
        &self,
        name: &RepoName,
        manifest: &str,
        blob: &str,
    ) -> Result<bool> {
        match self.repository_id(name).await? {
            Some(id) => {
                self.images
                    .manifest_references_blob(id, manifest, blob)
                    .await
            }
            None => Ok(false),
        }
    }

    /// The repository's id, creating the repository on first use.
    pub async fn ensure_repository(&self, name: &RepoName) -> Result<i64> {
        match self.repository_id(name).await? {
            Some(id) => Ok(id),
            None => self.repositories.ensure_repository(name).await,
        }
    }

    /// The repository's id, or NAME_UNKNOWN.
    pub async fn repository(&self, name: &RepoName) -> Result<i64> {
        self.repository_id(name).await?.ok_or_else(|| {
            Error::NameUnknown(format!("repository '{name}' is not known to this registry"))
        })
    }

    async fn blob_row(&self, name: &RepoName, digest: &Digest) -> Result<BlobRow> {
        let unknown = || Error::BlobUnknown(format!("blob {digest} is not in repository '{name}'"));
        let Some(repo) = self.repository_id(name).await? else {
            return Err(unknown());
        };
        let key = digest.to_string();
        if let Some(row) = self.cache.blob(repo, &key) {
            return Ok(row);
        }
        let stamp = self.cache.stamp(repo);
        let row = self
            .blob_index
            .blob_in_repository(repo, digest)
            .await?
            .ok_or_else(unknown)?;
        self.cache.put_blob(stamp, repo, row.clone());
        Ok(row)
    }

    /// GET/HEAD /v2/<name>/blobs/<digest>, with an optional range.
    pub async fn read_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<BlobRead> {
        let row = self.blob_row(name, digest).await?;
        let range = range.map(|r| r.resolve(row.size)).transpose()?;
        let body = if with_body {
            match self.blobs.read(&row.object_key, row.size, range).await {
                Ok(body) => Some(body),
                Err(e) => return Err(self.read_failed(name, digest, e).await),
            }
        } else {
            None
        };
        Ok(BlobRead {
            digest: row.digest,
            size: row.size,
            range,
            body,
        })
    }

    /// The error for a blob whose bytes could not be read: the row it was read from may be stale
    /// (garbage collection or a delete removed the blob since), which the database tells.
    async fn read_failed(&self, name: &RepoName, digest: &Digest, error: Error) -> Error {
        let Ok(Some(repo)) = self.repository_id(name).await else {
            return error;
        };
        self.cache.invalidate(repo);
        match self.blob_index.blob_in_repository(repo, digest).await {
            Ok(None) => Error::BlobUnknown(format!("blob {digest} is not in repository '{name}'")),
            _ => error,
        }
    }

    /// DELETE /v2/<name>/blobs/<digest>: unlinks the blob from this repository only.
    pub async fn delete_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let repo = self.repository(name).await?;
        let unlinked = self.blob_index.unlink_blob(repo, digest).await?;
        self.cache.invalidate(repo);
        if unlinked {
            Ok(())
        } else {
            Err(Error::BlobUnknown(format!(
                "blob {digest} is not in repository '{name}'"
            )))
        }
    }

    /// GET /v2/<name>/tags/list?n=&last=
    pub async fn list_tags(
        &self,
        name: &RepoName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<(Vec<String>, bool)> {
        let repo = self.repository(name).await?;
        // On a single node the whole sorted list is cached per repository and paged in memory;
        // replicas (no cache) query each page.
        let all = match self.cache.tag_list(repo) {
            Some(all) => all,
            None if self.cache.enabled() => {
                let stamp = self.cache.stamp(repo);
                let all = Arc::new(self.manifests.list_tags(repo, None, i64::MAX).await?);
                self.cache.put_tag_list(stamp, repo, all.clone());
                all
            }
            None => return page(n, |limit| self.manifests.list_tags(repo, last, limit)).await,
        };
        let start = match last {
            Some(last) => all.partition_point(|t| t.as_str() <= last),
            None => 0,
        };
        page(n, |limit| async move {
            Ok(all[start..].iter().take(limit as usize).cloned().collect())
        })
        .await
    }

    /// GET /v2/_catalog?n=&last=
    pub async fn catalog(
        &self,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<(Vec<String>, bool)> {
        page(n, |limit| self.repositories.list_repositories(last, limit)).await
    }

    /// Readiness: the database and the blob store answer reads (else the error), and whether
    /// each takes a write (a refusal is reported as degraded writes: reads still work). The
    /// writes are probes named after `holder`: its heartbeat, and a small object in storage.
    pub async fn readiness(&self, holder: &LeaseHolder) -> Result<Readiness> {
        self.meta.ping().await?;
        self.blobs.ping().await?;
        let probe = |what: &'static str, result: Result<Result<()>, _>| match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: {what} refuses writes");
                Some(e.message())
            }
            Err(_) => Some(format!(
                "the {what} did not accept a write within {} s",
                WRITE_PROBE_TIMEOUT.as_secs()
            )),
        };
        let (database, storage) = tokio::join!(
            tokio::time::timeout(WRITE_PROBE_TIMEOUT, self.leases.heartbeat(holder)),
            tokio::time::timeout(WRITE_PROBE_TIMEOUT, self.blobs.probe_write(&holder.id)),
        );
        let writes_degraded = [
            probe("metadata database", database),
            probe("blob storage", storage),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(Readiness { writes_degraded })
    }
}

/// What the readiness check found, beyond reads working.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// Why writes fail (one message per part that refuses them); empty when they work.
    pub writes_degraded: Vec<String>,
}

/// How long a readiness write probe may take before writes count as degraded.
const WRITE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
