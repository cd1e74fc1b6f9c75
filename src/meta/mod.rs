//! The metadata store: repositories, blobs and their links, manifests, tags, upload sessions,
//! identity, scans, lifecycle, pull-through state and leases in SQL, as one store per aggregate
//! ([`Repositories`], [`Uploads`], [`BlobIndex`], [`Manifests`], [`Scans`], ...) over one
//! database handle ([`Meta`]: connections, dialect, migrations). One SQL text for SQLite and
//! PostgreSQL through sqlx's Any driver; the dialects differ only in their migration folders. Depends on `oci`, `error`, the pure tag mutability
//! rules of `policy::mutability` (enforced inside the transaction that moves a tag) and
//! `secrets` (access-key secrets and signing keys are encrypted before they reach SQL).

mod blobs;
mod events;
mod gc;
mod identity;
mod images;
mod leases;
mod lifecycle;
mod manifests;
mod pull_through;
mod replication;
mod repositories;
mod resource_tags;
mod scan;
mod sessions;
mod stats;
mod templates;
mod uploads;

pub use events::{
    CacheFill, DeadLetter, DeleteCause, DeliveryCounts, EventRuleRow, HandOver, NewEvent,
    OutboxEvent, PendingDelivery, DEAD as DELIVERY_DEAD, DELIVERED as DELIVERY_DELIVERED,
    IMAGE_ACTION, IMAGE_SCAN, PENDING as DELIVERY_PENDING, PULL_THROUGH_CACHE_ACTION,
    REFERRER_ACTION, REPLICATION_ACTION, SETTING_CHANGE, TAG_MOVED,
};
pub use gc::{BlobReview, GcQueueStats, ManifestReview, ReviewOutcome};
pub use identity::{
    AccessKeyRow, AuditFilter, AuditRow, GroupRow, PrincipalRow, SealReport, SigningKeyRow,
};
pub use images::{ImageRow, TagFilter, Untagged};
pub use leases::{LeaseHolder, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};
pub use lifecycle::{
    ExpireOutcome, LifecycleAuditRow, LifecycleImageRow, LifecyclePolicyRow, LifecyclePreviewRow,
};
pub use pull_through::{RuleRecord, StoredRule};
pub use replication::ReplicationTask;
pub use replication::{
    COMPLETE as REPLICATION_COMPLETE, DELETE as REPLICATION_DELETE, FAILED as REPLICATION_FAILED,
    IN_PROGRESS as REPLICATION_IN_PROGRESS, PUSH as REPLICATION_PUSH,
};
pub use scan::{is_scannable, Finding, ScanJob, ScanOutcome, ScanState, SCANNABLE_MEDIA_TYPES};
pub use sessions::ConsoleSessionRow;

/// What a repository holds, for the repositories listing.
#[derive(Debug, Clone, Default)]
pub struct RepositorySummaryRow {
    pub repository_id: i64,
    /// Manifests (images, referrers and index children alike, as DescribeImages lists them).
    pub image_count: i64,
    /// Bytes of the blobs linked to the repository, each counted once.
    pub total_size: i64,
    /// Unix milliseconds of the latest push, if any image is stored.
    pub last_pushed_at: Option<i64>,
    /// Unix milliseconds of the latest recorded client pull of any image.
    pub last_pulled_at: Option<i64>,
}

/// A repository as the admin APIs describe it.
#[derive(Debug, Clone)]
pub struct RepositoryRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub tag_mutability: TagMutability,
    /// ECR's `imageScanningConfiguration.scanOnPush`.
    pub scan_on_push: bool,
}

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::{Error, Result};
use crate::metrics::{Metrics, StoreCall};
use crate::oci::{Digest, RepoName, Tag};
use crate::policy::mutability::{overwrite_refused, TagMutability};
use crate::secrets::Keyring;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which SQL engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The metadata database: its connections and dialect, and the stores of its aggregates
/// (`meta.scans()`, ...). On SQLite, writes go through a one-connection pool so that
/// transactions queue in-process instead of failing with SQLITE_BUSY; on PostgreSQL both pools
/// are the same.
#[derive(Clone)]
pub struct Meta {
    read: AnyPool,
    write: AnyPool,
    dialect: Dialect,
    /// SQLite only: the group committer for blob commits.
    committer: Option<CommitQueue>,
    /// GC grace period (ms): how long after an event a blob or manifest is first reviewed.
    gc_grace_ms: i64,
    /// Encrypts access-key secrets and signing keys on the way in and decrypts them on the way
    /// out; without it those rows can be neither written nor read.
    secrets: Option<Arc<Keyring>>,
    /// Rung after a transaction that recorded events commits, so this process's event worker
    /// hands them over at once instead of at its next poll.
    event_bell: Arc<tokio::sync::Notify>,
    /// Where the hot store calls' times go (see [`StoreTimer`]).
    metrics: Metrics,
}

/// Declares the stores, one per aggregate. Each holds the database handle privately and offers
/// only its aggregate's operations, so a service is built with the stores it needs and no more;
/// every store runs the one SQL text on both dialects.
macro_rules! stores {
    ($($(#[$doc:meta])* $store:ident => $accessor:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $store {
            meta: Meta,
        }

        impl Meta {
            $(#[$doc])*
            pub fn $accessor(&self) -> $store {
                $store { meta: self.clone() }
            }
        }
    )+};
}

stores! {
    /// Repositories and their settings.
    Repositories => repositories;
    /// Upload sessions.
    Uploads => uploads;
    /// Which blobs exist, where, and in which repositories.
    BlobIndex => blob_index;
    /// Manifests, tags and referrers.
    Manifests => manifests;
    /// Images as ECR lists them (tags, sizes, pull times), and untagging.
    Images => images;
    /// The garbage collector's review queues.
    GcReviews => gc_reviews;
    /// Lifecycle policies, previews, expiry and its audit trail, recorded pulls, the
    /// maintenance epoch.
    Lifecycle => lifecycle;
    /// Scan configuration, jobs, findings and pull gates.
    Scans => scans;
    /// Pull-through rules, tag checks, fill leases and cached sizes.
    PullThroughCache => pull_through_cache;
    /// Repository creation templates.
    Templates => templates;
    /// Resource tags of repositories.
    ResourceTags => resource_tags;
    /// Users, robots, groups, access keys, identity and repository policies, settings and
    /// signing keys.
    IdentityStore => identity;
    /// The audit log.
    Audit => audit;
    /// Leases for single passes and the heartbeats that keep them.
    Leases => leases;
    /// The replication configuration and the tasks that carry pushed images to destinations.
    Replication => replication;
    /// The event outbox, event rules and the deliveries of events to their targets.
    Events => events;
    /// Registry-wide counts and queue depths, for the metrics.
    Stats => stats;
    /// Signed-in web console sessions.
    ConsoleSessions => console_sessions;
}

/// The default GC grace period: 24 hours.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub repository_id: i64,
    pub algorithm: String,
    pub size: u64,
    pub staging: String,
    pub hash_state: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct BlobRow {
    pub digest: String,
    pub size: u64,
    pub object_key: String,
}

#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub id: i64,
    pub digest: String,
    pub media_type: String,
    pub content: bytes::Bytes,
    pub subject_digest: Option<String>,
    pub depth: i64,
    pub artifact_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReferrerRow {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// Settings a repository is created with (ECR's CreateRepository, or a creation template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRepository {
    pub tag_mutability: TagMutability,
    pub scan_on_push: bool,
    /// Resource tags, keys unique (checked by the caller).
    pub resource_tags: Vec<(String, String)>,
    /// A lifecycle policy text (validated by the caller), stored as `PutLifecyclePolicy` would.
    pub lifecycle_policy: Option<String>,
    /// A repository policy text (validated by the caller), stored as `SetRepositoryPolicy`
    /// would; the caller makes the access layer forget what it cached for the name.
    pub repository_policy: Option<String>,
}

/// A manifest ready to store.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub content: Vec<u8>,
    pub subject: Option<Digest>,
    pub annotations: Option<String>,
    pub depth: i64,
    /// `(child digest, kind)` where kind is `config`, `layer` or `manifest`.
    pub references: Vec<(String, &'static str)>,
    /// Blobs that must be in the repository when the manifest commits (config and non-foreign
    /// layers); locked against GC inside the transaction.
    pub required_blobs: Vec<String>,
    /// Child manifests that must be in the repository when an index commits.
    pub required_manifests: Vec<String>,
    /// Where the push is replicated to, as (tag, destination) pairs (the empty tag for a push
    /// by digest): one task per pair is written with it.
    pub replicate_to: Vec<(String, crate::policy::replication::ReplicationDestination)>,
    /// Set when a pull-through cache stores the manifest: its event is the cache's action.
    pub cache_fill: Option<CacheFill>,
}

/// What committing an upload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCommit {
    /// This upload's object now holds the blob.
    Stored,
    /// The blob was already stored under `object_key`; the upload's own object is surplus.
    AlreadyStored { object_key: String },
    /// Garbage collection removed the object under this blob's (shared) key between the upload
    /// publishing it and committing; nothing was committed and the client must retry.
    Vanished,
}

/// The file of a `sqlite:` URL as sqlx reads it (percent-decoded); `None` for in-memory databases.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    Some(PathBuf::from(String::from_utf8(decoded).ok()?))
}

/// Makes the SQLite database and its `-wal` and `-shm` files readable by their owner only
/// (0600), whatever the umask: it holds password hashes and the encrypted secrets. A missing
/// database that the URL allows to create (`mode=rwc`) is created here with that mode, so that
/// SQLite, which gives the `-wal` and `-shm` files it creates the database file's mode, never
/// makes a readable one. Files an older Berth made readable are tightened (and that is logged).
fn prepare_sqlite_files(url: &str) -> std::io::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let create = url
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p == "mode=rwc"));
    if create && !path.exists() {
        match crate::secrets::create_private_file(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        match crate::secrets::restrict_permissions(std::path::Path::new(&file), 0o600) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn upload_row(r: &AnyRow) -> Result<UploadRow> {
    Ok(UploadRow {
        id: r.try_get("id")?,
        repository_id: r.try_get("repository_id")?,
        algorithm: r.try_get("algorithm")?,
        size: r.try_get::<i64, _>("size")? as u64,
        staging: r.try_get("staging")?,
        hash_state: r.try_get("hash_state")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn manifest_row(r: &AnyRow) -> Result<ManifestRow> {
    Ok(ManifestRow {
        id: r.try_get("id")?,
        digest: r.try_get("digest")?,
        media_type: r.try_get("media_type")?,
        content: bytes::Bytes::from(r.try_get::<Vec<u8>, _>("content")?),
        subject_digest: r.try_get("subject_digest")?,
        depth: r.try_get::<i64, _>("depth")?,
        artifact_type: r.try_get("artifact_type")?,
    })
}

/// One blob commit, as queued for the group committer.
struct BlobCommitRequest {
    upload_id: String,
    repository_id: i64,
    digest: String,
    size: u64,
    object_key: String,
    /// When GC reviews the blob (now + grace).
    review_after: i64,
    /// Filesystem storage: the object's path, checked inside the transaction (see `gc`).
    verify_path: Option<std::path::PathBuf>,
}

type CommitQueue = tokio::sync::mpsc::Sender<(
    BlobCommitRequest,
    tokio::sync::oneshot::Sender<Result<BlobCommit>>,
)>;

/// Most blob commits grouped into one SQLite transaction.
const MAX_GROUP_COMMIT: usize = 64;

async fn commit_blob_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &BlobCommitRequest,
    dialect: Dialect,
) -> Result<BlobCommit> {
    let now = now_millis();
    // The review row first (lock order: queue row, then blob row, as GC takes them): it also
    // takes SQLite's write lock before anything is read.
    gc::enqueue_blob(tx, &r.digest, r.review_after, "blob_upload").await?;
    // Waits for a GC transaction deleting this blob; holds it against one until commit.
    let existing = sqlx::query(&format!(
        "SELECT object_key FROM blobs WHERE digest = $1{}",
        dialect.lock("FOR SHARE")
    ))
    .bind(&r.digest)
    .fetch_optional(&mut **tx)
    .await?;
    let outcome = match existing {
        Some(row) => BlobCommit::AlreadyStored {
            object_key: row.try_get("object_key")?,
        },
        None => {
            let inserted = sqlx::query(
                "INSERT INTO blobs (digest, size, object_key, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&r.digest)
            .bind(r.size as i64)
            .bind(&r.object_key)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                // A GC that deleted the previous row with this key detached the file inside its
                // transaction, which has ended by now: if our published file went with it, the
                // row must not be committed.
                if let Some(path) = &r.verify_path {
                    if !tokio::fs::try_exists(path).await.unwrap_or(false) {
                        sqlx::query("DELETE FROM blobs WHERE digest = $1")
                            .bind(&r.digest)
                            .execute(&mut **tx)
                            .await?;
                        return Ok(BlobCommit::Vanished);
                    }
                }
                BlobCommit::Stored
            } else {
                let row = sqlx::query(&format!(
                    "SELECT object_key FROM blobs WHERE digest = $1{}",
                    dialect.lock("FOR SHARE")
                ))
                .bind(&r.digest)
                .fetch_one(&mut **tx)
                .await?;
                BlobCommit::AlreadyStored {
                    object_key: row.try_get("object_key")?,
                }
            }
        }
    };
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (repository_id, digest) DO NOTHING",
    )
    .bind(r.repository_id)
    .bind(&r.digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(&r.upload_id)
        .execute(&mut **tx)
        .await?;
    Ok(outcome)
}

/// Commits queued blob commits in groups: whatever is waiting when a transaction starts goes into
/// it, so SQLite's one fsync per commit is shared by concurrent uploads.
fn spawn_group_committer(write: AnyPool) -> CommitQueue {
    let (sender, mut queue) = tokio::sync::mpsc::channel::<(
        BlobCommitRequest,
        tokio::sync::oneshot::Sender<Result<BlobCommit>>,
    )>(MAX_GROUP_COMMIT * 4);
    tokio::spawn(async move {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP_COMMIT {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let result = async {
                let mut tx = write.begin().await?;
                let mut outcomes = Vec::with_capacity(batch.len());
                for (request, _) in &batch {
                    outcomes.push(commit_blob_in(&mut tx, request, Dialect::Sqlite).await?);
                }
                tx.commit().await?;
                Ok::<_, Error>(outcomes)
            }
            .await;
            match result {
                Ok(outcomes) => {
                    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    for (_, reply) in batch {
                        let _ = reply.send(Err(e.duplicate()));
                    }
                }
            }
        }
    });
    sender
}

/// Whether a SQLite connection handed back to the pool may serve again: only when no transaction
/// is open on it. SQLite rolls a whole transaction back by itself when a write fails for lack
/// of space (SQLITE_FULL) or an I/O error; the ROLLBACK sqlx then sends fails ("no transaction
/// is active") and sqlx still counts the transaction as open, so its next `begin` issues a
/// SAVEPOINT that opens a transaction nothing ever commits: every later write on the one write
/// connection would land in it, invisible to readers and lost at exit. Closing the connection
/// ends whatever it holds (SQLite rolls back an open transaction on close).
async fn sqlite_connection_reusable(conn: &mut sqlx::AnyConnection) -> sqlx::Result<bool> {
    use sqlx::Connection;
    // The ping runs after any rollback the dropped transaction queued, so the count is settled.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("closing a database connection left inside a failed transaction");
        return Ok(false);
    }
    Ok(true)
}

/// Records a store call's time when dropped, however the call ends (an error or `?` included),
/// and is its trace span: a `debug` span, so without an exporter (and below a debug log level)
/// it is disabled at its call site and costs next to nothing. The span is not entered (a guard
/// held across awaits would be wrong); it is a leaf, parented to the request's span when made.
struct StoreTimer<'a> {
    metrics: &'a Metrics,
    call: StoreCall,
    start: std::time::Instant,
    _span: tracing::Span,
}

impl Drop for StoreTimer<'_> {
    fn drop(&mut self) {
        self.metrics.store_call(self.call, self.start.elapsed());
    }
}

const MANIFEST_COLUMNS: &str =
    "m.id, m.digest, m.media_type, m.content, m.subject_digest, CAST(m.depth AS BIGINT) AS depth, \
     m.artifact_type";

impl Meta {
    /// Connects, creating a SQLite file if needed, and runs the embedded migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        if dialect == Dialect::Sqlite {
            prepare_sqlite_files(url).map_err(|e| {
                Error::Internal(format!("cannot make the SQLite database private: {e}"))
            })?;
        }
        let options = || {
            let options = AnyPoolOptions::new()
                .acquire_timeout(acquire_timeout)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if dialect == Dialect::Sqlite {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            // Zero deleted and rewritten row content inside the pages written
                            // anyway (no extra I/O), so replaced secrets leave no copy behind.
                            conn.execute("PRAGMA secure_delete = FAST").await?;
                        }
                        Ok(())
                    })
                });
            match dialect {
                Dialect::Sqlite => options.after_release(|conn, _| {
                    Box::pin(async move { sqlite_connection_reusable(conn).await })
                }),
                Dialect::Postgres => options,
            }
        };
        let (read, write) = match dialect {
            Dialect::Sqlite => {
                let write = options().max_connections(1).connect(url).await?;
                let read = options()
                    .max_connections(max_connections)
                    .connect(url)
                    .await?;
                (read, write)
            }
            Dialect::Postgres => {
                let pool = options()
                    .max_connections(max_connections)
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let committer = (dialect == Dialect::Sqlite).then(|| spawn_group_committer(write.clone()));
        let meta = Meta {
            read,
            write,
            dialect,
            committer,
            gc_grace_ms: DEFAULT_GC_GRACE.as_millis() as i64,
            secrets: None,
            event_bell: Arc::new(tokio::sync::Notify::new()),
            metrics: Metrics::default(),
        };
        meta.migrate().await?;
        Ok(meta)
    }

    /// Applies the embedded migrations of this dialect; already-applied ones are skipped.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.write)
            .await
            .map_err(|e| Error::Internal(format!("migration failed: {e}")))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Events were recorded and committed: wakes this process's event worker.
    pub fn events_recorded(&self) {
        self.event_bell.notify_one();
    }

    /// Waits until [`Meta::events_recorded`] rings or `timeout` passes.
    pub async fn wait_for_events(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.event_bell.notified()).await;
    }

    /// Sets the keys that encrypt the secrets stored here (access-key secrets, signing keys).
    pub fn set_secrets(&mut self, keyring: Arc<Keyring>) {
        self.secrets = Some(keyring);
    }

    /// The keys that encrypt stored secrets; an error when none were set.
    fn secrets(&self) -> Result<&Keyring> {
        self.secrets.as_deref().ok_or_else(|| {
            Error::Internal("no secrets key: stored secrets can be neither written nor read".into())
        })
    }

    /// Sets the GC grace period used when enqueueing reviews.
    /// Records the hot store calls' times into `metrics` (by default, into a registry no one
    /// reads).
    pub fn set_metrics(&mut self, metrics: Metrics) {
        self.metrics = metrics;
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Connections of this process's pools: (idle, in use, most it opens). On PostgreSQL the
    /// read and write pools are one.
    pub fn pool_state(&self) -> (u64, u64, u64) {
        let mut pools = vec![&self.read];
        if self.dialect == Dialect::Sqlite {
            pools.push(&self.write);
        }
        pools.iter().fold((0, 0, 0), |(idle, busy, max), pool| {
            let size = u64::from(pool.size());
            let free = pool.num_idle() as u64;
            (
                idle + free,
                busy + size.saturating_sub(free),
                max + u64::from(pool.options().get_max_connections()),
            )
        })
    }

    /// Times a store call until the returned guard is dropped.
    fn time(&self, call: StoreCall) -> StoreTimer<'_> {
        let system = match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        };
        StoreTimer {
            metrics: &self.metrics,
            call,
            start: std::time::Instant::now(),
            _span: tracing::debug_span!(
                "db",
                otel.name = call.name(),
                otel.kind = "client",
                db.operation.name = call.name(),
                db.system.name = system,
            ),
        }
    }

    pub fn set_gc_grace(&mut self, grace: Duration) {
        self.gc_grace_ms = grace.as_millis().min(i64::MAX as u128) as i64;
    }

    pub fn gc_grace(&self) -> Duration {
        Duration::from_millis(self.gc_grace_ms.max(0) as u64)
    }

    /// When something changed now is first reviewed by GC.
    fn review_after(&self) -> i64 {
        now_millis().saturating_add(self.gc_grace_ms)
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The maintenance epoch, bumped by out-of-process repairs (see `jobs::watch_maintenance`).
    pub async fn maintenance_epoch(&self) -> Result<i64> {
        let row = sqlx::query("SELECT epoch FROM maintenance WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("epoch")?)
    }
}

/// A repository with its tag mutability setting (no row: `MUTABLE`).
const REPOSITORY_SELECT: &str =
    "SELECT r.id, r.name, r.created_at, tm.mode, tm.exclusion_filters, \
     rs.scan_on_push FROM repositories r \
     LEFT JOIN repository_tag_mutability tm ON tm.repository_id = r.id \
     LEFT JOIN repository_scanning rs ON rs.repository_id = r.id";

fn tag_mutability(r: &AnyRow) -> Result<TagMutability> {
    let mode: Option<String> = r.try_get("mode")?;
    Ok(match mode {
        None => TagMutability::default(),
        Some(mode) => {
            let filters: Option<String> = r.try_get("exclusion_filters")?;
            TagMutability::from_stored(&mode, filters.as_deref().unwrap_or("[]"))
        }
    })
}

fn repository_row(r: &sqlx::any::AnyRow) -> Result<RepositoryRow> {
    Ok(RepositoryRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        tag_mutability: tag_mutability(r)?,
        scan_on_push: r.try_get::<Option<i64>, _>("scan_on_push")?.unwrap_or(0) != 0,
    })
}

async fn set_tag_mutability_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository_id: i64,
    setting: &TagMutability,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO repository_tag_mutability (repository_id, mode, exclusion_filters, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id) DO UPDATE SET mode = excluded.mode, \
         exclusion_filters = excluded.exclusion_filters, updated_at = excluded.updated_at",
    )
    .bind(repository_id)
    .bind(setting.mode.as_str())
    .bind(setting.filters_json())
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_as_sqlx_reads_them() {
        assert_eq!(
            sqlite_path("sqlite://./berth-data/berth.db?mode=rwc"),
            Some(PathBuf::from("./berth-data/berth.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/srv/a%20b.db"),
            Some(PathBuf::from("/srv/a b.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
