//! Blob bytes only: reads through `object_store` (or straight from disk for the filesystem
//! backend), and upload staging that writes every byte once. Knows nothing of repositories.
//!
//! Two staging strategies, chosen by the backend:
//! - **filesystem**: an upload is one file at `uploads/<id>`, appended in place; finishing is an
//!   fsync and a rename to `blobs/<algorithm>/<xx>/<hex>`.
//! - **multipart** (S3, and memory for unit tests): an upload is a multipart upload at
//!   `uploads/<id>`; full parts go straight to the backend, and a tail smaller than the minimum
//!   part size waits in a small object `uploads/<id>.tail.<offset>` (in storage, not in memory)
//!   until more bytes arrive. Finishing completes the multipart upload; the blob keeps that key and
//!   the database maps its digest to it, so nothing is copied.
//!
//! The staging progress ([`Staging`]) is returned to the caller, which persists it with the
//! upload row, so any replica can continue an upload.

mod s3;

use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::config::StorageConfig;
pub use crate::config::MIN_PART_SIZE;
use crate::error::{object_write_error, write_refusal, Error, Result};
use crate::metrics::{Metrics, StorageOp};
use crate::oci::{Algorithm, Digest, Hasher};

pub use s3::S3Settings;

/// A body arriving from a client.
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// How many coalesced buffers may wait between the network and the disk writer.
const WRITE_QUEUE_CHUNKS: usize = 8;
/// Small network chunks are gathered into buffers of this size before crossing to the writer
/// thread, so the thread hand-off and the write syscall happen per buffer, not per chunk.
const WRITE_BUFFER: usize = 256 * 1024;
/// Read buffer size for serving blobs from disk.
const READ_CHUNK: usize = 1024 * 1024;
/// Size of the object the readiness probe writes: one page, so a full disk fails it.
const WRITE_PROBE_BYTES: usize = 4096;

/// Progress of an upload's bytes in storage, persisted with the upload row (as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Staging {
    /// Multipart upload id (multipart strategy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_id: Option<String>,
    /// Completed parts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<StagedPart>,
    /// Bytes at the end of the upload held in the tail object rather than in a part.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tail_len: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StagedPart {
    pub content_id: String,
    pub size: u64,
}

impl Staging {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("staging serialises")
    }

    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s)
            .map_err(|e| Error::Internal(format!("corrupt upload staging record: {e}")))
    }
}

#[derive(Clone)]
enum Strategy {
    /// Filesystem root: uploads are appended in place.
    Local(PathBuf),
    Multipart(Arc<dyn MultipartStore>),
}

/// Where blob bytes live.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    strategy: Strategy,
    signer: Option<Arc<dyn Signer>>,
    /// Key prefix inside the bucket (`s3://bucket/prefix`), empty or ending in `/`.
    prefix: String,
    part_size: usize,
    redirect_expiry: Option<Duration>,
    metrics: Metrics,
}

/// Directory (filesystem storage) where GC parks objects until its transaction commits.
const GC_TRASH: &str = "gc-trash";

/// A file in `gc-trash/` and the key it was taken from.
#[derive(Debug, Clone)]
pub struct TrashEntry {
    pub path: PathBuf,
    pub key: String,
}

/// A failed write to blob storage: out of space and read-only file systems say so (507, 503),
/// anything else is an internal error.
fn write_failed(e: std::io::Error) -> Error {
    write_refusal("blob storage", &e).unwrap_or_else(|| Error::from(e))
}

fn now_unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `<unix ms>.<random>.<key with '/' as '%'>`: when it was trashed (a rename keeps the old
/// modification time, so the name carries it) and where it came from (so a GC that died before
/// committing can be undone).
fn trash_name(key: &str) -> String {
    format!(
        "{}.{}.{}",
        now_unix_millis(),
        uuid::Uuid::new_v4().simple(),
        key.replace('/', "%")
    )
}

fn parse_trash_name(name: &str) -> Option<(i64, String)> {
    let mut parts = name.splitn(3, '.');
    let at = parts.next()?.parse().ok()?;
    let _random = parts.next()?;
    let key = parts.next()?.replace('%', "/");
    (key.starts_with("blobs/") && !key.contains("..")).then_some((at, key))
}

/// A blob object GC took out of service; see [`BlobStore::detach_object`].
#[derive(Debug)]
pub enum Detached {
    /// Nothing was there.
    Gone,
    /// Renamed into the trash directory.
    Trash { original: PathBuf, trash: PathBuf },
    /// Still under its (unique) key in the object store.
    Key(String),
}

/// An object found by listing storage.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub modified_millis: i64,
}

/// The upload id an `uploads/...` key belongs to (`uploads/<id>` or `uploads/<id>.tail.<n>`).
pub fn upload_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("uploads/")?;
    Some(rest.split_once(".tail.").map(|(id, _)| id).unwrap_or(rest))
}

/// An inclusive byte range already checked against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// A `Range` request as the HTTP layer read it, before it is held against a blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-b`
    Bounded { start: u64, end: u64 },
    /// `bytes=a-`
    From { start: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { len: u64 },
    /// A header Berth does not serve (another unit, several ranges, bad syntax): answered 416
    /// with the blob's size, as a client needs it to ask again.
    Unsupported(&'static str),
}

impl RangeRequest {
    /// The bytes of an object of `size` bytes this request asks for; 416 when none.
    pub fn resolve(self, size: u64) -> Result<ByteRange> {
        let unsatisfiable = |why: &str| Error::RangeNotSatisfiable {
            message: format!("{why} (blob is {size} bytes)"),
            size,
        };
        let (start, end) = match self {
            RangeRequest::Unsupported(why) => return Err(unsatisfiable(why)),
            RangeRequest::Bounded { start, end } => (start, end),
            RangeRequest::From { start } => (start, size.saturating_sub(1)),
            RangeRequest::Suffix { len: 0 } => return Err(unsatisfiable("suffix length 0")),
            RangeRequest::Suffix { len } => (size.saturating_sub(len), size.saturating_sub(1)),
        };
        if size == 0 || start >= size || end < start {
            return Err(unsatisfiable(&format!(
                "range {start}-{end} is outside the blob"
            )));
        }
        Ok(ByteRange {
            start,
            end: end.min(size - 1),
        })
    }
}

/// How a blob read is answered.
pub enum BlobBody {
    Stream(ByteStream),
    /// A short-lived presigned URL the client should fetch instead (307).
    Redirect(String),
}

impl BlobStore {
    /// Records this store's operation times and errors into `metrics` (by default, into a
    /// registry no one reads).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs one storage operation, recording its time and whether it failed.
    async fn timed<T>(&self, op: StorageOp, work: impl Future<Output = Result<T>>) -> Result<T> {
        // Its trace span: `debug`, so disabled at the call site (next to free) without an
        // exporter and below a debug log level.
        let span = tracing::debug_span!(
            "storage",
            otel.name = op.name(),
            otel.kind = "client",
            berth.storage.operation = op.name(),
            otel.status_description = tracing::field::Empty,
        );
        let start = std::time::Instant::now();
        let result = tracing::Instrument::instrument(work, span.clone()).await;
        if let Err(e) = &result {
            span.record("otel.status_description", tracing::field::display(e));
        }
        self.metrics
            .storage_op(op, start.elapsed(), result.is_err());
        result
    }

    /// Opens the store named by a `file:///path`, `s3://bucket[/prefix]` or `memory://` URL.
    pub fn open(url: &str, config: &StorageConfig) -> Result<Self> {
        let part_size = config.part_size_bytes.max(MIN_PART_SIZE);
        let redirect_expiry = config
            .redirect
            .then(|| Duration::from_secs(config.redirect_expiry_secs));
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            for dir in ["blobs", "uploads"] {
                std::fs::create_dir_all(root.join(dir)).map_err(|e| {
                    Error::Internal(format!("cannot create {}: {e}", root.join(dir).display()))
                })?;
            }
            let store = LocalFileSystem::new_with_prefix(&root).map_err(Error::internal)?;
            Ok(BlobStore {
                store: Arc::new(store),
                strategy: Strategy::Local(root),
                signer: None,
                prefix: String::new(),
                part_size,
                redirect_expiry: None,
                metrics: Metrics::default(),
            })
        } else if url.starts_with("memory://") {
            let store = Arc::new(InMemory::new());
            Ok(BlobStore {
                store: store.clone(),
                strategy: Strategy::Multipart(store),
                signer: None,
                prefix: String::new(),
                part_size,
                redirect_expiry: None,
                metrics: Metrics::default(),
            })
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Internal(
                    "storage url s3:// needs a bucket name".into(),
                ));
            }
            let s3 = Arc::new(s3::build(bucket, &S3Settings::from_config(config))?);
            let prefix = prefix.trim_matches('/');
            Ok(BlobStore {
                store: s3.clone(),
                strategy: Strategy::Multipart(s3.clone()),
                signer: Some(s3),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
                part_size,
                redirect_expiry,
                metrics: Metrics::default(),
            })
        } else {
            Err(Error::Internal(format!(
                "storage url '{url}' is not supported; use file:///path, s3://bucket[/prefix] or memory://"
            )))
        }
    }

    /// The smallest chunk a client should send (`OCI-Chunk-Min-Length`), if the backend has one.
    pub fn chunk_min_length(&self) -> Option<usize> {
        match self.strategy {
            Strategy::Local(_) => None,
            Strategy::Multipart(_) => Some(MIN_PART_SIZE),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    fn staged_file(root: &Path, upload_id: &str) -> PathBuf {
        root.join("uploads").join(upload_id)
    }

    fn upload_key(upload_id: &str) -> String {
        format!("uploads/{upload_id}")
    }

    fn tail_key(upload_id: &str, offset: u64) -> String {
        format!("uploads/{upload_id}.tail.{offset}")
    }

    fn blob_key(digest: &Digest) -> String {
        let hex = digest.hex();
        format!(
            "blobs/{}/{}/{}",
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        )
    }

    /// Creates the storage side of a new upload.
    pub async fn start_upload(&self, upload_id: &str) -> Result<Staging> {
        self.timed(StorageOp::StartUpload, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    tokio::fs::File::create(Self::staged_file(root, upload_id))
                        .await
                        .map_err(write_failed)?;
                    Ok(Staging::default())
                }
                Strategy::Multipart(mp) => {
                    let id = mp
                        .create_multipart(&self.path(&Self::upload_key(upload_id)))
                        .await
                        .map_err(object_write_error)?;
                    Ok(Staging {
                        multipart_id: Some(id),
                        ..Default::default()
                    })
                }
            }
        })
        .await
    }

    /// Whether a blob of `len` bytes known up front is better stored with one PUT from a bounded
    /// buffer than through staging (multipart backends, blobs up to one part).
    pub fn prefers_single_put(&self, len: u64) -> bool {
        matches!(self.strategy, Strategy::Multipart(_)) && len <= self.part_size as u64
    }

    /// Stores a whole small upload as the object `uploads/<id>` in one request.
    pub async fn put_upload_object(&self, upload_id: &str, bytes: Bytes) -> Result<()> {
        self.timed(StorageOp::PutUpload, async move {
            self.store
                .put(
                    &self.path(&Self::upload_key(upload_id)),
                    PutPayload::from(bytes),
                )
                .await
                .map_err(object_write_error)?;
            Ok(())
        })
        .await
    }

    /// Appends a body at `offset` (the bytes the upload holds) while hashing it. Returns the bytes
    /// written, the hasher and the new staging record; the data is durable when this returns, but
    /// part of the upload only once the caller has persisted the new staging record.
    pub async fn append(
        &self,
        upload_id: &str,
        offset: u64,
        staging: &Staging,
        hasher: Hasher,
        body: ByteStream,
        idle_timeout: Duration,
    ) -> Result<(u64, Hasher, Staging)> {
        self.timed(StorageOp::Append, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    let path = Self::staged_file(root, upload_id);
                    let (written, hasher) =
                        append_file(path, offset, hasher, body, idle_timeout).await?;
                    Ok((written, hasher, staging.clone()))
                }
                Strategy::Multipart(mp) => {
                    self.append_multipart(
                        mp.as_ref(),
                        upload_id,
                        offset,
                        staging,
                        hasher,
                        body,
                        idle_timeout,
                    )
                    .await
                }
            }
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_multipart(
        &self,
        mp: &dyn MultipartStore,
        upload_id: &str,
        offset: u64,
        staging: &Staging,
        mut hasher: Hasher,
        mut body: ByteStream,
        idle_timeout: Duration,
    ) -> Result<(u64, Hasher, Staging)> {
        let key = self.path(&Self::upload_key(upload_id));
        let multipart_id = staging
            .multipart_id
            .clone()
            .ok_or_else(|| Error::Internal("multipart upload without an id".into()))?;
        let mut next = staging.clone();
        let mut buf = BytesMut::with_capacity(self.part_size);
        if staging.tail_len > 0 {
            let tail_key = Self::tail_key(upload_id, offset - staging.tail_len);
            let tail = self.store.get(&self.path(&tail_key)).await?.bytes().await?;
            buf.extend_from_slice(&tail);
        }
        next.tail_len = 0;
        let mut written = 0u64;
        loop {
            let Some(chunk) = next_chunk(&mut body, idle_timeout).await? else {
                break;
            };
            hasher.update(&chunk);
            written += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            while buf.len() >= self.part_size {
                // A fresh buffer per part: the finished one is freed once uploaded, instead of the
                // remainder reallocating beside it.
                let rest = buf.split_off(self.part_size);
                let part = std::mem::replace(&mut buf, BytesMut::with_capacity(self.part_size));
                buf.extend_from_slice(&rest);
                put_part(mp, &key, &multipart_id, &mut next, part.freeze()).await?;
            }
        }
        if buf.len() >= MIN_PART_SIZE {
            put_part(mp, &key, &multipart_id, &mut next, buf.freeze()).await?;
        } else if !buf.is_empty() {
            // Too small for a part: keep it as a tail object, named by where it starts, so a crash
            // before the caller persists the new record cannot clobber the tail it still points at.
            let tail_start = offset + written - buf.len() as u64;
            next.tail_len = buf.len() as u64;
            self.store
                .put(
                    &self.path(&Self::tail_key(upload_id, tail_start)),
                    PutPayload::from(buf.freeze()),
                )
                .await
                .map_err(object_write_error)?;
        }
        Ok((written, hasher, next))
    }

    /// Removes tail objects an older staging record pointed at (after the new one is persisted).
    pub async fn forget_tail(
        &self,
        upload_id: &str,
        old_offset: u64,
        old: &Staging,
        new: &Staging,
        new_offset: u64,
    ) {
        if old.tail_len == 0 {
            return;
        }
        let old_start = old_offset - old.tail_len;
        if new.tail_len > 0 && new_offset - new.tail_len == old_start {
            return;
        }
        let _ = self
            .store
            .delete(&self.path(&Self::tail_key(upload_id, old_start)))
            .await;
    }

    /// Makes the staged bytes one readable object (completing a multipart upload).
    pub async fn seal(&self, upload_id: &str, size: u64, staging: &Staging) -> Result<()> {
        self.timed(StorageOp::Seal, async move {
            let Strategy::Multipart(mp) = &self.strategy else {
                return Ok(());
            };
            let key = self.path(&Self::upload_key(upload_id));
            if let Ok(meta) = self.store.head(&key).await {
                if meta.size == size {
                    return Ok(()); // sealed by an earlier attempt that did not get to commit
                }
            }
            let multipart_id = staging
                .multipart_id
                .clone()
                .ok_or_else(|| Error::Internal("multipart upload without an id".into()))?;
            let mut parts = staging.clone();
            if staging.tail_len > 0 {
                let tail_key = self.path(&Self::tail_key(upload_id, size - staging.tail_len));
                let tail = self.store.get(&tail_key).await?.bytes().await?;
                put_part(mp.as_ref(), &key, &multipart_id, &mut parts, tail).await?;
                let _ = self.store.delete(&tail_key).await;
            }
            if parts.parts.is_empty() {
                // S3 cannot complete a multipart upload with no parts: an empty blob is a plain put.
                let _ = mp.abort_multipart(&key, &multipart_id).await;
                self.store
                    .put(&key, PutPayload::default())
                    .await
                    .map_err(object_write_error)?;
                return Ok(());
            }
            let ids = parts
                .parts
                .iter()
                .map(|p| PartId {
                    content_id: p.content_id.clone(),
                })
                .collect();
            mp.complete_multipart(&key, &multipart_id, ids)
                .await
                .map_err(object_write_error)?;
            Ok(())
        })
        .await
    }

    /// Recomputes the hash of the first `len` staged bytes (for a digest algorithm other than the
    /// one the session hashed with). Multipart uploads must be sealed first.
    pub async fn rehash(&self, upload_id: &str, len: u64, algorithm: Algorithm) -> Result<Hasher> {
        self.timed(StorageOp::Rehash, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    let path = Self::staged_file(root, upload_id);
                    tokio::task::spawn_blocking(move || -> std::io::Result<Hasher> {
                        let mut hasher = algorithm.hasher();
                        let mut file = std::fs::File::open(&path)?.take(len);
                        let mut buf = vec![0u8; 1024 * 1024];
                        loop {
                            let n = file.read(&mut buf)?;
                            if n == 0 {
                                break;
                            }
                            hasher.update(&buf[..n]);
                        }
                        Ok(hasher)
                    })
                    .await
                    .map_err(Error::internal)?
                    .map_err(Error::from)
                }
                Strategy::Multipart(_) => {
                    let mut hasher = algorithm.hasher();
                    let mut stream = self
                        .store
                        .get(&self.path(&Self::upload_key(upload_id)))
                        .await?
                        .into_stream();
                    while let Some(chunk) = stream.next().await {
                        hasher.update(&chunk?);
                    }
                    Ok(hasher)
                }
            }
        })
        .await
    }

    /// Gives a sealed, verified upload its final place and returns the blob's object key.
    pub async fn publish(&self, upload_id: &str, digest: &Digest) -> Result<String> {
        self.timed(StorageOp::Publish, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    let key = Self::blob_key(digest);
                    let staged = Self::staged_file(root, upload_id);
                    let target = root.join(&key);
                    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                        let dir = target.parent().expect("blob key has a parent");
                        std::fs::create_dir_all(dir)?;
                        match std::fs::rename(&staged, &target) {
                            Ok(()) => {}
                            // An earlier attempt of this upload published the file, then could not
                            // commit (the database was full or unreachable); the file under the
                            // digest's key holds the same verified bytes.
                            Err(e)
                                if e.kind() == std::io::ErrorKind::NotFound && target.exists() => {}
                            Err(e) => return Err(e),
                        }
                        // The rename is durable only once the directory entry is.
                        std::fs::File::open(dir)?.sync_all()
                    })
                    .await
                    .map_err(Error::internal)?
                    .map_err(write_failed)?;
                    Ok(key)
                }
                Strategy::Multipart(_) => Ok(Self::upload_key(upload_id)),
            }
        })
        .await
    }

    /// Drops everything an unfinished or rejected upload stored; missing pieces are fine.
    pub async fn discard_upload(
        &self,
        upload_id: &str,
        size: u64,
        staging: &Staging,
    ) -> Result<()> {
        self.timed(StorageOp::DiscardUpload, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    match tokio::fs::remove_file(Self::staged_file(root, upload_id)).await {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_failed(e)),
                        _ => Ok(()),
                    }
                }
                Strategy::Multipart(mp) => {
                    let key = self.path(&Self::upload_key(upload_id));
                    if let Some(id) = &staging.multipart_id {
                        let _ = mp.abort_multipart(&key, id).await;
                    }
                    if staging.tail_len > 0 {
                        let _ = self
                            .store
                            .delete(&self.path(&Self::tail_key(upload_id, size - staging.tail_len)))
                            .await;
                    }
                    match self.store.delete(&key).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(object_write_error(e)),
                    }
                }
            }
        })
        .await
    }

    /// On the filesystem, where a blob's key is a function of its digest (so a new upload of the
    /// same bytes lands on the key GC is deleting), the file behind `key`; `None` on object
    /// stores, whose keys are unique per upload.
    pub fn shared_key_path(&self, key: &str) -> Option<PathBuf> {
        match &self.strategy {
            Strategy::Local(root) => Some(root.join(key)),
            Strategy::Multipart(_) => None,
        }
    }

    /// Takes a blob object out of service inside GC's transaction. On the filesystem the file is
    /// renamed into `gc-trash/` at once (atomic), so an upload of the same digest that commits
    /// after GC sees it gone; on object stores (unique keys) nothing happens until
    /// [`BlobStore::purge_detached`] after the commit.
    pub async fn detach_object(&self, key: &str) -> Result<Detached> {
        match &self.strategy {
            Strategy::Local(root) => {
                let original = root.join(key);
                let trash_dir = root.join(GC_TRASH);
                let trash = trash_dir.join(trash_name(key));
                let moved = tokio::task::spawn_blocking({
                    let (original, trash) = (original.clone(), trash.clone());
                    move || -> std::io::Result<bool> {
                        std::fs::create_dir_all(&trash_dir)?;
                        match std::fs::rename(&original, &trash) {
                            Ok(()) => Ok(true),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await
                .map_err(Error::internal)??;
                Ok(if moved {
                    Detached::Trash { original, trash }
                } else {
                    Detached::Gone
                })
            }
            Strategy::Multipart(_) => Ok(Detached::Key(key.to_owned())),
        }
    }

    /// Puts a detached object back (GC's transaction failed to commit).
    pub async fn restore_detached(&self, detached: Detached) {
        if let Detached::Trash { original, trash } = detached {
            if let Err(e) = tokio::fs::rename(&trash, &original).await {
                tracing::warn!(error = %e, "cannot restore {}", original.display());
            }
        }
    }

    /// Deletes a detached object for good (after GC's transaction committed).
    pub async fn purge_detached(&self, detached: Detached) -> Result<()> {
        match detached {
            Detached::Gone => Ok(()),
            Detached::Trash { trash, .. } => match tokio::fs::remove_file(&trash).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Detached::Key(key) => self.delete_object(&key).await,
        }
    }

    /// Files in `gc-trash/` put there more than `age` ago (by a GC process that died before its
    /// purge), with the key each came from. Whether each goes or comes back depends on the
    /// database: see `GcService::gc_pass`.
    pub async fn stale_trash(&self, age: Duration) -> Result<Vec<TrashEntry>> {
        let Strategy::Local(root) = &self.strategy else {
            return Ok(Vec::new());
        };
        let dir = root.join(GC_TRASH);
        let cutoff = now_unix_millis().saturating_sub(age.as_millis() as i64);
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<TrashEntry>> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut stale = Vec::new();
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                match parse_trash_name(&name) {
                    Some((trashed_at, key)) if trashed_at < cutoff => stale.push(TrashEntry {
                        path: entry.path(),
                        key,
                    }),
                    Some(_) => {}
                    // Not ours (or from an older version that kept no key): leave it alone.
                    None => {}
                }
            }
            Ok(stale)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Into::into)
    }

    /// Puts a trashed object back under its key (its GC transaction never committed), unless
    /// the key holds the object again already.
    pub async fn restore_trash(&self, entry: &TrashEntry) -> Result<()> {
        let Strategy::Local(root) = &self.strategy else {
            return Ok(());
        };
        let original = root.join(&entry.key);
        if tokio::fs::try_exists(&original).await.unwrap_or(false) {
            return self.remove_trash(entry).await;
        }
        tokio::fs::rename(&entry.path, &original).await?;
        Ok(())
    }

    /// Deletes a trashed object for good (its GC transaction committed).
    pub async fn remove_trash(&self, entry: &TrashEntry) -> Result<()> {
        match tokio::fs::remove_file(&entry.path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Deletes a blob object that lost a race to an identical one stored first.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        self.timed(StorageOp::Delete, async move {
            match &self.strategy {
                Strategy::Local(root) => match tokio::fs::remove_file(root.join(key)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(write_failed(e)),
                    _ => Ok(()),
                },
                Strategy::Multipart(_) => match self.store.delete(&self.path(key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(object_write_error(e)),
                },
            }
        })
        .await
    }

    /// Streams `range` (or the whole object) of the blob stored under `key`, or, when redirects are
    /// enabled on S3, a presigned URL for it.
    pub async fn read(&self, key: &str, size: u64, range: Option<ByteRange>) -> Result<BlobBody> {
        if let (Some(signer), Some(expiry)) = (&self.signer, self.redirect_expiry) {
            let url = signer
                .signed_url(http::Method::GET, &self.path(key), expiry)
                .await?;
            return Ok(BlobBody::Redirect(url.to_string()));
        }
        self.stream(key, size, range).await.map(BlobBody::Stream)
    }

    /// Streams `range` (or the whole object) of the blob stored under `key`, never redirecting:
    /// for Berth's own reads (replication sends the bytes itself).
    pub async fn stream(
        &self,
        key: &str,
        size: u64,
        range: Option<ByteRange>,
    ) -> Result<ByteStream> {
        self.timed(StorageOp::Read, async move {
            let (start, len) = match range {
                Some(r) => (r.start, r.end - r.start + 1),
                None => (0, size),
            };
            if let Strategy::Local(root) = &self.strategy {
                let mut file = tokio::fs::File::open(root.join(key)).await?;
                if start > 0 {
                    file.seek(SeekFrom::Start(start)).await?;
                }
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
                return Ok(stream.boxed());
            }
            if size == 0 {
                return Ok(futures::stream::empty().boxed());
            }
            let options = GetOptions {
                range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
                ..Default::default()
            };
            let result = self.store.get_opts(&self.path(key), options).await?;
            Ok(result
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string()))
                .boxed())
        })
        .await
    }

    /// Every object under `blobs/` and `uploads/` (keys without the bucket prefix), for fsck.
    pub async fn list_objects(&self) -> Result<Vec<StoredObject>> {
        self.timed(StorageOp::List, async move {
            let mut objects = Vec::new();
            for dir in ["blobs", "uploads"] {
                let prefix = self.path(dir);
                let mut listing = self.store.list(Some(&prefix));
                while let Some(meta) = listing.next().await {
                    let meta = meta?;
                    let key = meta.location.as_ref();
                    let key = key
                        .strip_prefix(self.prefix.as_str())
                        .unwrap_or(key)
                        .to_owned();
                    objects.push(StoredObject {
                        key,
                        size: meta.size,
                        modified_millis: meta.last_modified.timestamp_millis(),
                    });
                }
            }
            Ok(objects)
        })
        .await
    }

    /// Checks the backend accepts writes (for readiness): writes, syncs and removes a small
    /// object named by `probe` beside the uploads, where pushes write.
    pub async fn probe_write(&self, probe: &str) -> Result<()> {
        self.timed(StorageOp::Probe, async move {
            let key = format!("uploads/.write-probe-{probe}");
            let bytes = Bytes::from(vec![0u8; WRITE_PROBE_BYTES]);
            match &self.strategy {
                Strategy::Local(root) => {
                    let path = root.join(key);
                    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                        let written = std::fs::File::create(&path).and_then(|mut file| {
                            file.write_all(&bytes)?;
                            file.sync_data()
                        });
                        match std::fs::remove_file(&path) {
                            Err(e)
                                if e.kind() != std::io::ErrorKind::NotFound && written.is_ok() =>
                            {
                                Err(e)
                            }
                            _ => written,
                        }
                    })
                    .await
                    .map_err(Error::internal)?
                    .map_err(write_failed)
                }
                Strategy::Multipart(_) => {
                    let path = self.path(&key);
                    self.store
                        .put(&path, PutPayload::from(bytes))
                        .await
                        .map_err(object_write_error)?;
                    match self.store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(object_write_error(e)),
                    }
                }
            }
        })
        .await
    }

    /// Checks the backend answers (for readiness).
    pub async fn ping(&self) -> Result<()> {
        self.timed(StorageOp::Probe, async move {
            match &self.strategy {
                Strategy::Local(root) => {
                    tokio::fs::metadata(root.join("blobs")).await?;
                    Ok(())
                }
                Strategy::Multipart(_) => {
                    let probe = self.path("uploads");
                    let _ = self.store.list_with_delimiter(Some(&probe)).await?;
                    Ok(())
                }
            }
        })
        .await
    }
}

/// The next chunk of a client's body: `None` at its end, an error when it breaks off or stays
/// silent for `idle` (so a stalled client cannot hold an upload open forever).
pub async fn next_chunk(body: &mut ByteStream, idle: Duration) -> Result<Option<Bytes>> {
    match tokio::time::timeout(idle, body.next()).await {
        Err(_) => Err(Error::BlobUploadInvalid(format!(
            "no body bytes received for {} s; upload aborted, resume from the last acknowledged offset",
            idle.as_secs()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(Error::BlobUploadInvalid(format!(
            "request body ended early or failed: {e}"
        ))),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
    }
}

async fn put_part(
    mp: &dyn MultipartStore,
    key: &ObjectPath,
    multipart_id: &str,
    staging: &mut Staging,
    data: Bytes,
) -> Result<()> {
    let size = data.len() as u64;
    let id = mp
        .put_part(
            key,
            &multipart_id.to_owned(),
            staging.parts.len(),
            PutPayload::from(data),
        )
        .await
        .map_err(object_write_error)?;
    staging.parts.push(StagedPart {
        content_id: id.content_id,
        size,
    });
    Ok(())
}

/// Appends a body to a staged file at `offset` on one blocking thread (hash + write + fsync),
/// cutting any bytes past `offset` that an interrupted earlier write left. When the append fails
/// (the client broke off, the disk is full), the file is cut back to `offset` at once: the
/// failed body's bytes do not stay on disk until the session ends.
async fn append_file(
    path: PathBuf,
    offset: u64,
    hasher: Hasher,
    mut body: ByteStream,
    idle_timeout: Duration,
) -> Result<(u64, Hasher)> {
    let (tx, rx) = mpsc::channel::<Bytes>(WRITE_QUEUE_CHUNKS);
    let aborted = Arc::new(AtomicBool::new(false));
    let writer = tokio::task::spawn_blocking({
        let aborted = aborted.clone();
        move || -> std::io::Result<(u64, Hasher)> {
            let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
            let written = write_chunks(&mut file, offset, hasher, rx, &aborted);
            if written.is_err() || aborted.load(Ordering::SeqCst) {
                let _ = file.set_len(offset);
            }
            written
        }
    });
    let mut failure: Option<Error> = None;
    let mut pending = BytesMut::with_capacity(WRITE_BUFFER);
    loop {
        match next_chunk(&mut body, idle_timeout).await {
            Err(e) => {
                failure = Some(e);
                break;
            }
            Ok(None) => break,
            Ok(Some(chunk)) => {
                let ready = if pending.is_empty() && chunk.len() >= WRITE_BUFFER {
                    chunk
                } else {
                    pending.extend_from_slice(&chunk);
                    if pending.len() < WRITE_BUFFER {
                        continue;
                    }
                    std::mem::replace(&mut pending, BytesMut::with_capacity(WRITE_BUFFER)).freeze()
                };
                if tx.send(ready).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
        }
    }
    if failure.is_some() {
        aborted.store(true, Ordering::SeqCst);
    } else if !pending.is_empty() {
        let _ = tx.send(pending.freeze()).await;
    }
    drop(tx);
    let written = writer.await.map_err(Error::internal)?;
    if let Some(e) = failure {
        return Err(e);
    }
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::BlobUploadUnknown(
            "the upload's stored bytes are gone (it was cancelled or purged); start a new upload"
                .into(),
        ),
        _ => write_failed(e),
    })
}

/// The writer thread of [`append_file`]: writes what arrives on `chunks` at `offset` while
/// hashing it, then syncs, unless the sender `aborted`.
fn write_chunks(
    file: &mut std::fs::File,
    offset: u64,
    mut hasher: Hasher,
    mut chunks: mpsc::Receiver<Bytes>,
    aborted: &AtomicBool,
) -> std::io::Result<(u64, Hasher)> {
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut written = 0u64;
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    if !aborted.load(Ordering::SeqCst) {
        file.sync_data()?;
    }
    Ok((written, hasher))
}
