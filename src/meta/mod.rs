//! The metadata store: repositories, blobs and their links, manifests, tags, upload sessions and
//! leases in SQL. One SQL text for SQLite and PostgreSQL through sqlx's Any driver; the dialects
//! differ only in their migration folders. Depends on `oci`, `error`, the pure tag mutability
//! rules of `policy::mutability` (enforced inside the transaction that moves a tag) and
//! `secrets` (access-key secrets and signing keys are encrypted before they reach SQL).

mod gc;
mod identity;
mod images;
mod leases;
mod lifecycle;
mod pull_through;
mod resource_tags;
mod scan;
mod templates;

pub use gc::{BlobReview, GcQueueStats, ManifestReview, ReviewOutcome};
pub use identity::{AccessKeyRow, AuditRow, GroupRow, PrincipalRow, SealReport, SigningKeyRow};
pub use images::{ImageRow, TagFilter, Untagged};
pub use leases::{LeaseHolder, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};
pub use lifecycle::{
    ExpireOutcome, LifecycleAuditRow, LifecycleImageRow, LifecyclePolicyRow, LifecyclePreviewRow,
};
pub use pull_through::{RuleRecord, StoredRule};
pub use scan::{
    is_scannable, Finding, OutboxEvent, ScanJob, ScanOutcome, ScanState, SCANNABLE_MEDIA_TYPES,
    SCAN_EVENT_KIND,
};

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

/// The metadata store. On SQLite, writes go through a one-connection pool so that transactions
/// queue in-process instead of failing with SQLITE_BUSY; on PostgreSQL both pools are the same.
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

    // --- repositories -------------------------------------------------------------------------

    pub async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// The repository's id, creating the repository on first use.
    pub async fn ensure_repository(&self, name: &RepoName) -> Result<i64> {
        if let Some(id) = self.repository_id(name).await? {
            return Ok(id);
        }
        sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name.as_str())
            .bind(now_millis())
            .execute(&self.write)
            .await?;
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_one(&self.write)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Repository names in lexical order after `last`, at most `limit`.
    pub async fn list_repositories(&self, last: Option<&str>, limit: i64) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// The maintenance epoch, bumped by out-of-process repairs (see `jobs::watch_maintenance`).
    pub async fn maintenance_epoch(&self) -> Result<i64> {
        let row = sqlx::query("SELECT epoch FROM maintenance WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("epoch")?)
    }

    // --- uploads ------------------------------------------------------------------------------

    pub async fn create_upload(
        &self,
        id: &str,
        repository_id: i64,
        algorithm: &str,
        staging: &str,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO uploads (id, repository_id, algorithm, size, staging, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $5, $5)",
        )
        .bind(id)
        .bind(repository_id)
        .bind(algorithm)
        .bind(staging)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The upload session `id` if it belongs to `repository_id`.
    pub async fn upload(&self, id: &str, repository_id: i64) -> Result<Option<UploadRow>> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = $1 AND repository_id = $2")
            .bind(id)
            .bind(repository_id)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(upload_row).transpose()
    }

    /// Moves the upload's size from `expected` to `new`; false when another writer moved it first.
    /// (With the new staging record and hash state, so any replica can continue.)
    pub async fn advance_upload(
        &self,
        id: &str,
        expected: u64,
        new: u64,
        staging: &str,
        hash_state: &[u8],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, staging = $2, hash_state = $3, updated_at = $4 \
             WHERE id = $5 AND size = $6",
        )
        .bind(new as i64)
        .bind(staging)
        .bind(hash_state)
        .bind(now_millis())
        .bind(id)
        .bind(expected as i64)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every upload session (for fsck).
    pub async fn all_uploads(&self) -> Result<Vec<UploadRow>> {
        let rows = sqlx::query("SELECT * FROM uploads")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(upload_row).collect()
    }

    /// Upload sessions last touched before `before` (Unix ms).
    pub async fn stale_uploads(&self, before: i64, limit: i64) -> Result<Vec<UploadRow>> {
        let rows =
            sqlx::query("SELECT * FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2")
                .bind(before)
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(upload_row).collect()
    }

    /// Makes a verified upload a blob of the repository and ends the session, in one transaction.
    /// On SQLite, concurrent commits are grouped into one transaction (one fsync for many blobs);
    /// each caller still gets its answer only after its rows are durable.
    pub async fn commit_blob(
        &self,
        upload_id: &str,
        repository_id: i64,
        digest: &Digest,
        size: u64,
        object_key: &str,
        verify_path: Option<std::path::PathBuf>,
    ) -> Result<BlobCommit> {
        let request = BlobCommitRequest {
            upload_id: upload_id.to_owned(),
            repository_id,
            digest: digest.to_string(),
            size,
            object_key: object_key.to_owned(),
            review_after: self.review_after(),
            verify_path,
        };
        if let Some(committer) = &self.committer {
            let (reply, answer) = tokio::sync::oneshot::channel();
            committer
                .send((request, reply))
                .await
                .map_err(|_| Error::Unavailable("metadata database is shutting down".into()))?;
            return answer
                .await
                .map_err(|_| Error::Internal("blob committer stopped".into()))?;
        }
        let mut tx = self.write.begin().await?;
        let outcome = commit_blob_in(&mut tx, &request, self.dialect).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    // --- blobs --------------------------------------------------------------------------------

    /// The blob if it is visible in the repository.
    pub async fn blob_in_repository(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<BlobRow>> {
        let row = sqlx::query(
            "SELECT b.digest, b.size, b.object_key FROM repository_blobs rb \
             JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = $1 AND rb.digest = $2",
        )
        .bind(repository_id)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(BlobRow {
                digest: r.try_get("digest")?,
                size: r.try_get::<i64, _>("size")? as u64,
                object_key: r.try_get("object_key")?,
            })
        })
        .transpose()
    }

    /// Whether the blob is linked to any repository.
    pub async fn blob_linked_anywhere(&self, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM repository_blobs WHERE digest = $1 LIMIT 1")
            .bind(digest.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    /// Creates the repository; false if it existed.
    pub async fn create_repository(&self, name: &RepoName) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates the repository with its settings, in one transaction (a crash never leaves a
    /// repository without the settings it was created with); false if it existed (and then
    /// nothing changes).
    pub async fn create_repository_with(
        &self,
        name: &RepoName,
        settings: &NewRepository,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let created = sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
             RETURNING id",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = created else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id")?;
        let now = now_millis();
        if settings.tag_mutability != TagMutability::default() {
            set_tag_mutability_in(&mut tx, id, &settings.tag_mutability).await?;
        }
        if settings.scan_on_push {
            sqlx::query(
                "INSERT INTO repository_scanning (repository_id, scan_on_push, updated_at) \
                 VALUES ($1, 1, $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (key, value) in &settings.resource_tags {
            sqlx::query(
                "INSERT INTO repository_tags (repository_id, tag_key, tag_value, updated_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(text) = &settings.lifecycle_policy {
            sqlx::query(
                "INSERT INTO lifecycle_policies (repository_id, policy_text, updated_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(text) = &settings.repository_policy {
            // Upsert: the policy of a deleted repository of that name may still be stored.
            sqlx::query(
                "INSERT INTO policies (scope, target, document, updated_at) \
                 VALUES ('repository', $1, $2, $3) ON CONFLICT (scope, target) DO UPDATE SET \
                 document = excluded.document, updated_at = excluded.updated_at",
            )
            .bind(name.as_str())
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces the repository's tag mutability setting. Pushes that already read the old
    /// setting in their transaction finish under it.
    pub async fn set_tag_mutability(
        &self,
        repository_id: i64,
        setting: &TagMutability,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        set_tag_mutability_in(&mut tx, repository_id, setting).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn repository_row(&self, name: &RepoName) -> Result<Option<RepositoryRow>> {
        let row = sqlx::query(&format!("{REPOSITORY_SELECT} WHERE r.name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| repository_row(&r)).transpose()
    }

    pub async fn list_repository_rows(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        let rows = sqlx::query(&format!(
            "{REPOSITORY_SELECT} WHERE r.name > $1 ORDER BY r.name LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(repository_row).collect()
    }

    /// Deletes a repository and (by cascade) its manifests, tags, blob links and upload
    /// sessions. Unless `force`, only when it holds no manifest; false if it held some.
    pub async fn delete_repository(&self, id: i64, force: bool) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        if !force {
            let held =
                sqlx::query("SELECT 1 AS one FROM manifests WHERE repository_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if held.is_some() {
                return Ok(false);
            }
        }
        gc::enqueue_repository_blobs(&mut tx, id, self.review_after()).await?;
        sqlx::query("DELETE FROM tags WHERE repository_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` repositories (by name) that link the blob.
    pub async fn repositories_with_blob(&self, digest: &Digest, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT r.name FROM repository_blobs b JOIN repositories r ON r.id = b.repository_id \
             WHERE b.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Every stored blob (for fsck).
    pub async fn all_blobs(&self) -> Result<Vec<BlobRow>> {
        let rows = sqlx::query("SELECT digest, size, object_key FROM blobs")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BlobRow {
                    digest: r.try_get("digest")?,
                    size: r.try_get::<i64, _>("size")? as u64,
                    object_key: r.try_get("object_key")?,
                })
            })
            .collect()
    }

    /// Forgets a blob whose bytes are lost: unlinks it from every repository and deletes its row,
    /// so the next push stores it again. Returns the repositories and manifests that referenced it.
    pub async fn forget_blob(&self, digest: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut tx = self.write.begin().await?;
        let repos = sqlx::query(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
             WHERE rb.digest = $1 ORDER BY r.name",
        )
        .bind(digest)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<Vec<_>, _>>()?;
        let manifests = sqlx::query(
            "SELECT r.name || '@' || m.digest AS reference FROM manifest_references mr \
             JOIN manifests m ON m.id = mr.manifest_id JOIN repositories r ON r.id = m.repository_id \
             WHERE mr.child_digest = $1 ORDER BY 1",
        )
        .bind(digest)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("reference"))
        .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE maintenance SET epoch = epoch + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((repos, manifests))
    }

    /// Links an existing blob into a repository (cross-repository mount); false if the blob is
    /// gone (garbage-collected meanwhile). Postpones the blob's GC review and holds the blob row
    /// against a concurrent GC until the link commits.
    pub async fn link_blob(&self, repository_id: i64, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.write.begin().await?;
        gc::enqueue_blob(&mut tx, &digest, self.review_after(), "blob_link").await?;
        let exists = sqlx::query(&format!(
            "SELECT digest FROM blobs WHERE digest = $1{}",
            self.dialect.lock("FOR SHARE")
        ))
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (repository_id, digest) DO NOTHING",
        )
        .bind(repository_id)
        .bind(&digest)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the blob from the repository; the bytes stay for other repositories (and GC).
    pub async fn unlink_blob(&self, repository_id: i64, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.write.begin().await?;
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
                .bind(repository_id)
                .bind(&digest)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if done {
            gc::enqueue_blob(&mut tx, &digest, self.review_after(), "blob_unlink").await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Of `digests`, those visible as blobs in the repository, with their stored sizes: a
    /// digest absent from the map is missing. One query per batch rather than one per layer (a
    /// manifest may list thousands); the size comes from the same join, so checking descriptor
    /// sizes costs no extra query.
    pub async fn stored_blob_sizes(
        &self,
        repository_id: i64,
        digests: &[&Digest],
    ) -> Result<std::collections::HashMap<String, i64>> {
        let mut sizes = std::collections::HashMap::new();
        for batch in digests.chunks(500) {
            let placeholders = (0..batch.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
                 WHERE rb.repository_id = $1 AND rb.digest IN ({placeholders})"
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for d in batch {
                query = query.bind(d.to_string());
            }
            for row in query.fetch_all(&self.read).await? {
                sizes.insert(
                    row.try_get::<String, _>("digest")?,
                    row.try_get::<i64, _>("size")?,
                );
            }
        }
        Ok(sizes)
    }

    // --- manifests and tags -------------------------------------------------------------------

    pub async fn manifest_by_digest(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
        ))
        .bind(repository_id)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    pub async fn manifest_by_tag(
        &self,
        repository_id: i64,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>> {
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = $1 AND t.name = $2"
        ))
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    /// Stores a manifest (idempotent by digest) and points `tags` at it, in one transaction.
    ///
    /// Tag immutability is enforced here, inside that transaction: the repository's setting is
    /// read in it, and a protected tag is written with a conditional upsert that moves nothing
    /// when the tag exists and points at another manifest. On PostgreSQL the upsert locks the
    /// tag row (a concurrent first insert of the same tag waits for the other transaction and
    /// then sees its row), so of two concurrent pushes of different digests exactly one wins;
    /// SQLite has one writer. A refusal rolls everything back with [`Error::TagImmutable`].
    pub async fn put_manifest(
        &self,
        repository_id: i64,
        m: &NewManifest,
        tags: &[Tag],
    ) -> Result<()> {
        let now = now_millis();
        let digest = m.digest.to_string();
        let mut tx = self.write.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, \
             subject_digest, annotations, depth, pushed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (repository_id, digest) DO UPDATE SET digest = excluded.digest RETURNING id",
        )
        // The no-op update (rather than DO NOTHING) returns the id of an existing row and locks
        // it, so a concurrent delete of the same digest cannot slip between insert and tagging.
        .bind(repository_id)
        .bind(&digest)
        .bind(&m.media_type)
        .bind(m.artifact_type.as_deref())
        .bind(m.content.len() as i64)
        .bind(&m.content[..])
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(m.annotations.as_deref())
        .bind(m.depth)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        // Pushed on its own: a top-level manifest again, never deleted by GC.
        sqlx::query("DELETE FROM gc_dependent_manifests WHERE manifest_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Tags moving away from another manifest: GC reviews it (before any blob lock is taken,
        // keeping the lock order queue row, then blob or manifest row).
        for tag in tags {
            let old =
                sqlx::query("SELECT manifest_id FROM tags WHERE repository_id = $1 AND name = $2")
                    .bind(repository_id)
                    .bind(tag.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(old) = old {
                let old: i64 = old.try_get("manifest_id")?;
                if old != id {
                    gc::enqueue_manifest(
                        &mut tx,
                        old,
                        repository_id,
                        self.review_after(),
                        "tag_switch",
                    )
                    .await?;
                }
            }
        }
        // What the manifest references must exist now and stay until commit: a GC deleting one
        // of them either finished first (then it is missing here) or waits for this commit (and
        // then sees the reference).
        let missing = self
            .present_in_tx(
                &mut tx,
                // Only the blob rows are locked (GC locks them before the links), in one order.
                "SELECT b.digest FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
                 WHERE rb.repository_id = $1 AND b.digest IN ({}) ORDER BY b.digest",
                "FOR SHARE OF b",
                repository_id,
                &m.required_blobs,
            )
            .await?;
        if !missing.is_empty() {
            return Err(Error::ManifestBlobUnknown(format!(
                "manifest references blobs that are not in the repository: {}",
                missing.join(", ")
            )));
        }
        let missing = self
            .present_in_tx(
                &mut tx,
                "SELECT digest FROM manifests WHERE repository_id = $1 AND digest IN ({}) ORDER BY digest",
                "FOR SHARE",
                repository_id,
                &m.required_manifests,
            )
            .await?;
        if !missing.is_empty() {
            return Err(Error::ManifestBlobUnknown(format!(
                "index references manifests that are not in the repository: {}",
                missing.join(", ")
            )));
        }
        for (child, kind) in &m.references {
            sqlx::query(
                "INSERT INTO manifest_references (manifest_id, child_digest, kind) VALUES ($1, $2, $3) \
                 ON CONFLICT (manifest_id, child_digest) DO NOTHING",
            )
            .bind(id)
            .bind(child)
            .bind(*kind)
            .execute(&mut *tx)
            .await?;
        }
        let rules = if tags.is_empty() {
            None
        } else {
            let row = sqlx::query(&format!("{REPOSITORY_SELECT} WHERE r.id = $1"))
                .bind(repository_id)
                .fetch_optional(&mut *tx)
                .await?;
            row.as_ref().map(repository_row).transpose()?
        };
        for tag in tags {
            let protected = rules
                .as_ref()
                .filter(|r| r.tag_mutability.is_immutable(tag.as_str()));
            let sql = if protected.is_some() {
                // Re-pushing the digest a protected tag already has is a no-op that succeeds.
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET updated_at = tags.updated_at \
                 WHERE tags.manifest_id = excluded.manifest_id"
            } else {
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, \
                 updated_at = excluded.updated_at"
            };
            let written = sqlx::query(sql)
                .bind(repository_id)
                .bind(tag.as_str())
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let (Some(repo), 0) = (protected, written) {
                return Err(Error::TagImmutable(overwrite_refused(
                    tag.as_str(),
                    &repo.name,
                )));
            }
        }
        // Scan on push: queued with the manifest, so a stored image is never left unscanned. An
        // index queues its platforms' images (pushed before it, possibly while scanning was off).
        let scannable = scan::is_scannable(&m.media_type, m.artifact_type.as_deref());
        if (scannable || !m.required_manifests.is_empty())
            && scan::scan_on_push_in(&mut tx, repository_id).await?
        {
            if scannable {
                scan::queue_in(&mut tx, id, repository_id, false).await?;
            }
            scan::queue_children_in(&mut tx, repository_id, &m.required_manifests).await?;
        }
        crate::failpoint::pause("manifest.before_commit").await;
        tx.commit().await?;
        Ok(())
    }

    /// Of `digests`, those the query `select` (`{}` the digest list, `$1` the repository) does
    /// not return, locking the returned rows with `lock` on PostgreSQL.
    async fn present_in_tx(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        select: &str,
        lock: &str,
        repository_id: i64,
        digests: &[String],
    ) -> Result<Vec<String>> {
        let mut present = std::collections::HashSet::new();
        for batch in digests.chunks(500) {
            let placeholders = (0..batch.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "{}{}",
                select.replacen("{}", &placeholders, 1),
                self.dialect.lock(lock)
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for d in batch {
                query = query.bind(d.as_str());
            }
            for row in query.fetch_all(&mut **tx).await? {
                present.insert(row.try_get::<String, _>("digest")?);
            }
        }
        Ok(digests
            .iter()
            .filter(|d| !present.contains(*d))
            .cloned()
            .collect())
    }

    /// Deletes a manifest and every tag pointing at it; its blobs, children and referrers are
    /// queued for GC review.
    pub async fn delete_manifest(&self, repository_id: i64, digest: &Digest) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.write.begin().await?;
        // A no-op write: takes SQLite's write lock first and the row lock on PostgreSQL.
        let row = sqlx::query(
            "UPDATE manifests SET digest = digest WHERE repository_id = $1 AND digest = $2 RETURNING id",
        )
        .bind(repository_id)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id")?;
        gc::delete_manifest_in(&mut tx, repository_id, id, &digest, self.review_after()).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes one tag; the manifest stays (GC reviews it, see `gc`).
    pub async fn delete_tag(&self, repository_id: i64, tag: &Tag) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING manifest_id",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        gc::enqueue_manifest(
            &mut tx,
            row.try_get("manifest_id")?,
            repository_id,
            self.review_after(),
            "tag_delete",
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Tag names in lexical order after `last`, at most `limit`.
    pub async fn list_tags(
        &self,
        repository_id: i64,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repository_id)
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Manifests in the repository whose `subject` is `digest`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repository_id: i64,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRow>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests \
             WHERE repository_id = $1 AND subject_digest = $2 AND ($3 = '' OR artifact_type = $3) \
             ORDER BY pushed_at, digest",
        )
        .bind(repository_id)
        .bind(digest.to_string())
        .bind(artifact_type.unwrap_or(""))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReferrerRow {
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get("size")?,
                    artifact_type: r.try_get("artifact_type")?,
                    annotations: r.try_get("annotations")?,
                })
            })
            .collect()
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
