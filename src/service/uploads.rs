//! Blob upload sessions: start, mount, append (chunked or streamed), status, cancel and finish,
//! with the digest verified on every path and nothing visible before it is. A session's size,
//! storage progress and hash state live in its database row, so any replica can continue it.

use std::sync::Arc;

use dashmap::DashMap;

use super::core::Core;
use crate::error::{Error, Result};
use crate::meta::{BlobCommit, BlobIndex, UploadRow, Uploads};
use crate::oci::{Algorithm, Digest, Hasher, RepoName};
use crate::storage::{next_chunk, ByteStream, Staging};

/// Where an upload stands after a request.
#[derive(Debug, Clone)]
pub struct UploadProgress {
    pub id: String,
    pub size: u64,
}

/// A finished blob in a repository.
#[derive(Debug, Clone)]
pub struct BlobLocation {
    pub digest: Digest,
}

/// The bytes a chunk of an upload says it holds (its `Content-Range`, read by the HTTP layer).
#[derive(Debug, Clone, Copy)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    fn len(&self) -> u64 {
        self.end - self.start + 1
    }
}

fn unknown_upload(id: &str, name: &RepoName) -> Error {
    Error::BlobUploadUnknown(format!(
        "upload '{}' is not in progress in repository '{name}' (finished, cancelled, expired or never started)",
        id.chars().take(64).collect::<String>().escape_default()
    ))
}

/// Upload ids are hyphenated UUIDs; anything else is unknown before it reaches SQL or a path.
fn valid_upload_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

fn digest_mismatch(computed: &Digest, expected: &Digest) -> Error {
    Error::DigestInvalid(format!(
        "uploaded content has digest {computed}, not {expected}; the upload was discarded, push it again"
    ))
}

/// Reads a body of exactly `len` bytes (already checked to be small) into memory.
async fn read_exactly(
    mut body: ByteStream,
    len: u64,
    idle: std::time::Duration,
) -> Result<bytes::Bytes> {
    let mut buf = bytes::BytesMut::with_capacity(len as usize);
    while let Some(chunk) = next_chunk(&mut body, idle).await? {
        if buf.len() as u64 + chunk.len() as u64 > len {
            return Err(Error::BlobUploadInvalid(format!(
                "body is longer than its Content-Length of {len} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.len() as u64 != len {
        return Err(Error::BlobUploadInvalid(format!(
            "received {} body bytes but Content-Length was {len}",
            buf.len()
        )));
    }
    Ok(buf.freeze())
}

/// Blob upload sessions (monolithic, chunked, streamed), mounts, and cached blobs from upstreams.
#[derive(Clone)]
pub struct UploadService {
    core: Core,
    uploads: Uploads,
    blob_index: BlobIndex,
    /// Per-upload locks on this replica.
    upload_locks: Arc<DashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl UploadService {
    pub(super) fn new(core: Core, uploads: Uploads, blob_index: BlobIndex) -> UploadService {
        UploadService {
            core,
            uploads,
            blob_index,
            upload_locks: Default::default(),
        }
    }

    /// This replica's lock for one upload: its requests are handled one at a time here, and the
    /// conditional size update in the database catches concurrent writers on other replicas.
    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.upload_locks.entry(id.to_owned()).or_default().clone()
    }

    async fn upload_row(&self, name: &RepoName, id: &str) -> Result<UploadRow> {
        if !valid_upload_id(id) {
            return Err(unknown_upload(id, name));
        }
        let repo = self
            .core
            .repository_id(name)
            .await?
            .ok_or_else(|| unknown_upload(id, name))?;
        self.uploads
            .upload(id, repo)
            .await?
            .ok_or_else(|| unknown_upload(id, name))
    }

    /// POST /v2/<name>/blobs/uploads/ (also `?digest-algorithm=`): opens a session (not in a
    /// pull-through cache).
    pub async fn start_upload(
        &self,
        name: &RepoName,
        algorithm: Algorithm,
    ) -> Result<UploadProgress> {
        self.core.refuse_push_into_cache(name).await?;
        let repo = self.core.ensure_repository(name).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let staging = self.core.blobs.start_upload(&id).await?;
        self.uploads
            .create_upload(&id, repo, algorithm.as_str(), &staging.to_json())
            .await?;
        Ok(UploadProgress { id, size: 0 })
    }

    /// POST /v2/<name>/blobs/uploads/?digest=<d> with the whole blob as body (not in a
    /// pull-through cache).
    pub async fn upload_monolithic(
        &self,
        name: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<BlobLocation> {
        self.core.refuse_push_into_cache(name).await?;
        self.store_blob(name, digest, content_length, body).await
    }

    /// Stores a blob a pull-through cache fetched from its upstream (which a push could not).
    pub async fn put_cached_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<BlobLocation> {
        self.store_blob(name, digest, content_length, body).await
    }

    async fn store_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<BlobLocation> {
        // One request carries the whole blob, so no session row is needed: the bytes go to
        // storage under a fresh id and a single transaction makes them visible.
        let repo = self.core.ensure_repository(name).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (size, staging) = match content_length {
            Some(len) if self.core.blobs.prefers_single_put(len) => {
                let size = self.single_put(&id, digest, len, body).await?;
                (size, Staging::default())
            }
            _ => {
                self.stream_monolithic(&id, digest, content_length, body)
                    .await?
            }
        };
        self.publish_and_commit(&id, repo, digest, size, Some(&staging))
            .await?;
        Ok(BlobLocation {
            digest: digest.clone(),
        })
    }

    /// Gives verified bytes their final place and makes them a blob of the repository (ending the
    /// session `id`, if there is one) in one transaction. `sessionless` is the staging of bytes
    /// no session owns (a monolithic upload): they are discarded when they certainly did not
    /// become a blob.
    async fn publish_and_commit(
        &self,
        id: &str,
        repo: i64,
        digest: &Digest,
        size: u64,
        sessionless: Option<&Staging>,
    ) -> Result<()> {
        let key = match self.core.blobs.publish(id, digest).await {
            Ok(key) => key,
            Err(e) => {
                if let Some(staging) = sessionless {
                    let _ = self.core.blobs.discard_upload(id, size, staging).await;
                }
                return Err(e);
            }
        };
        crate::failpoint::pause("blob.before_commit").await;
        let verify = self.core.blobs.shared_key_path(&key);
        let outcome = match self
            .blob_index
            .commit_blob(id, repo, digest, size, &key, verify)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                return self
                    .settle_failed_commit(id, repo, digest, size, &key, sessionless, e)
                    .await
            }
        };
        match outcome {
            BlobCommit::AlreadyStored { object_key } if object_key != key => {
                // Another upload of the same bytes won; ours is surplus.
                self.core.blobs.delete_object(&key).await?;
            }
            BlobCommit::Vanished => {
                self.core.cache.invalidate_all();
                return Err(Error::Unavailable(format!(
                    "blob {digest} was garbage-collected while this upload finished; upload it again"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// After a blob commit answered `error`: the commit may still have landed (PostgreSQL received
    /// COMMIT and the connection broke before its answer), so the database decides. Landed: the
    /// upload succeeded after all. Certainly not landed: sessionless bytes are discarded (a
    /// session keeps its bytes for a retry, its purge or its cancel). Unknown (the database is
    /// still unreachable): the bytes stay, since a blob row may name them (`berth fsck
    /// --repair` removes them if not), and the client gets `error`.
    #[allow(clippy::too_many_arguments)]
    async fn settle_failed_commit(
        &self,
        id: &str,
        repo: i64,
        digest: &Digest,
        size: u64,
        key: &str,
        sessionless: Option<&Staging>,
        error: Error,
    ) -> Result<()> {
        match self.blob_index.blob_in_repository(repo, digest).await {
            Ok(Some(row)) => {
                tracing::info!(%digest, error = %error, "a blob commit that reported an error had landed");
                self.core.cache.invalidate(repo);
                if row.object_key != key && self.core.blobs.shared_key_path(key).is_none() {
                    // Another upload of the same bytes committed; ours is surplus.
                    let _ = self.core.blobs.delete_object(key).await;
                }
                Ok(())
            }
            Ok(None) => {
                if let Some(staging) = sessionless {
                    if self.core.blobs.shared_key_path(key).is_none() {
                        let _ = self.core.blobs.delete_object(key).await;
                    }
                    let _ = self.core.blobs.discard_upload(id, size, staging).await;
                }
                Err(error)
            }
            Err(check) => {
                tracing::warn!(%digest, key, error = %check, "cannot tell whether a failed blob commit landed; its bytes stay until `berth fsck --repair`");
                Err(error)
            }
        }
    }

    /// Small monolithic blob on a multipart backend: one bounded buffer, one PUT.
    async fn single_put(
        &self,
        id: &str,
        digest: &Digest,
        len: u64,
        body: ByteStream,
    ) -> Result<u64> {
        let bytes = read_exactly(body, len, self.core.limits.body_idle_timeout).await?;
        let computed = Digest::of(digest.algorithm(), &bytes);
        if &computed != digest {
            return Err(digest_mismatch(&computed, digest));
        }
        self.core.blobs.put_upload_object(id, bytes).await?;
        Ok(len)
    }

    /// Monolithic blob through the staging path (filesystem, or too large for one buffer).
    async fn stream_monolithic(
        &self,
        id: &str,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<(u64, Staging)> {
        let staging = self.core.blobs.start_upload(id).await?;
        let written = async {
            let (size, hasher, staging) = self
                .core
                .blobs
                .append(
                    id,
                    0,
                    &staging,
                    digest.algorithm().hasher(),
                    body,
                    self.core.limits.body_idle_timeout,
                )
                .await?;
            if let Some(expected) = content_length {
                if size != expected {
                    return Err(Error::BlobUploadInvalid(format!(
                        "received {size} body bytes but Content-Length was {expected}"
                    )));
                }
            }
            self.core.blobs.seal(id, size, &staging).await?;
            let computed = hasher.finish();
            if &computed != digest {
                return Err(digest_mismatch(&computed, digest));
            }
            Ok((size, staging))
        }
        .await;
        if written.is_err() {
            let _ = self.core.blobs.discard_upload(id, 0, &staging).await;
        }
        written
    }

    /// POST /v2/<name>/blobs/uploads/?mount=<d>[&from=<repo>]: links a blob the caller may read
    /// without moving bytes; `None` when it cannot (the caller then opens a normal session, as
    /// the spec allows). The source is `from` if the caller may read it, else (no `from`) the
    /// first repository holding the blob that the caller may read; `may_read` is the caller's
    /// permission, decided by whoever knows the caller. Not into a pull-through cache.
    pub async fn mount_blob<F, Fut>(
        &self,
        name: &RepoName,
        digest: &Digest,
        from: Option<&str>,
        may_read: F,
    ) -> Result<Option<BlobLocation>>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        self.core.refuse_push_into_cache(name).await?;
        let candidates = match from {
            // An unparsable source falls back to a normal upload.
            Some(from) => match RepoName::parse(from) {
                Ok(source) => vec![source.as_str().to_owned()],
                Err(_) => return Ok(None),
            },
            None => self.blob_index.repositories_with_blob(digest, 50).await?,
        };
        let mut source = None;
        for candidate in candidates {
            if may_read(candidate.clone()).await? {
                source = RepoName::parse(&candidate).ok();
                break;
            }
        }
        let Some(source) = source else {
            return Ok(None);
        };
        let available = match self.core.repository_id(&source).await? {
            Some(src) => self
                .blob_index
                .blob_in_repository(src, digest)
                .await?
                .is_some(),
            None => false,
        };
        if !available {
            return Ok(None);
        }
        let repo = self.core.ensure_repository(name).await?;
        if !self.blob_index.link_blob(repo, digest).await? {
            return Ok(None);
        }
        Ok(Some(BlobLocation {
            digest: digest.clone(),
        }))
    }

    /// GET /v2/<name>/blobs/uploads/<id>: how many bytes the session holds.
    pub async fn upload_status(&self, name: &RepoName, id: &str) -> Result<UploadProgress> {
        let row = self.upload_row(name, id).await?;
        Ok(UploadProgress {
            id: row.id,
            size: row.size,
        })
    }

    /// DELETE /v2/<name>/blobs/uploads/<id>: cancels the session and drops its bytes.
    pub async fn cancel_upload(&self, name: &RepoName, id: &str) -> Result<()> {
        let lock = self.upload_lock(id);
        let _guard = lock.lock().await;
        let row = self.upload_row(name, id).await?;
        self.end_session(&row).await
    }

    /// Drops the session's stored bytes, then its row. Bytes first: on a full disk, they are
    /// what frees the space the database needs to delete the row. A session whose row outlives
    /// its bytes (the database still refused) is unknown to later requests
    /// (`BLOB_UPLOAD_UNKNOWN`) and its row goes with the next purge.
    async fn end_session(&self, row: &UploadRow) -> Result<()> {
        let staging = Staging::from_json(&row.staging)?;
        self.core
            .blobs
            .discard_upload(&row.id, row.size, &staging)
            .await?;
        let deleted = self.uploads.delete_upload(&row.id).await;
        self.upload_locks.remove(&row.id);
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if e.is_write_refusal() => {
                tracing::warn!(upload = %row.id, error = %e, "upload bytes dropped; its session row stays until the next purge");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// PATCH /v2/<name>/blobs/uploads/<id>: appends a chunk (with `Content-Range`) or a stream.
    pub async fn append_upload(
        &self,
        name: &RepoName,
        id: &str,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadProgress> {
        let lock = self.upload_lock(id);
        let _guard = lock.lock().await;
        let row = self.upload_row(name, id).await?;
        let row = self.append_locked(row, range, content_length, body).await?;
        Ok(UploadProgress {
            id: row.id,
            size: row.size,
        })
    }

    /// Writes one body into a locked session and records the new size, staging and hash state.
    async fn append_locked(
        &self,
        row: UploadRow,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadRow> {
        if let Some(r) = range {
            if r.start != row.size {
                return Err(Error::UploadOutOfOrder {
                    message: format!(
                        "chunk starts at byte {} but the upload holds {} bytes; send the chunk starting at {}",
                        r.start, row.size, row.size
                    ),
                    offset: row.size,
                });
            }
            if let Some(len) = content_length {
                if len != r.len() {
                    return Err(Error::BlobUploadInvalid(format!(
                        "Content-Range {}-{} covers {} bytes but Content-Length is {len}",
                        r.start,
                        r.end,
                        r.len()
                    )));
                }
            }
        }
        let algorithm: Algorithm = row.algorithm.parse()?;
        let hasher = self.session_hasher(&row, algorithm).await?;
        tracing::debug!(upload = %row.id, offset = row.size, "receiving upload body");
        let staging = Staging::from_json(&row.staging)?;
        let (written, hasher, new_staging) = self
            .core
            .blobs
            .append(
                &row.id,
                row.size,
                &staging,
                hasher,
                body,
                self.core.limits.body_idle_timeout,
            )
            .await?;
        if let Some(expected) = range.map(|r| r.len()).or(content_length) {
            if written != expected {
                return Err(Error::BlobUploadInvalid(format!(
                    "received {written} body bytes but {expected} were declared; the chunk was not applied"
                )));
            }
        }
        let new_size = row.size + written;
        let staging_json = new_staging.to_json();
        let hash_state = hasher.save();
        if !self
            .uploads
            .advance_upload(&row.id, row.size, new_size, &staging_json, &hash_state)
            .await?
        {
            return Err(Error::UploadOutOfOrder {
                message: "another request changed this upload at the same time; retry from the current offset".into(),
                offset: row.size,
            });
        }
        self.core
            .blobs
            .forget_tail(&row.id, row.size, &staging, &new_staging, new_size)
            .await;
        Ok(UploadRow {
            size: new_size,
            staging: staging_json,
            hash_state: Some(hash_state),
            ..row
        })
    }

    /// The session's hasher as of its recorded size, restored from the row.
    async fn session_hasher(&self, row: &UploadRow, algorithm: Algorithm) -> Result<Hasher> {
        if row.size == 0 {
            return Ok(algorithm.hasher());
        }
        match row
            .hash_state
            .as_deref()
            .and_then(|s| Hasher::restore(algorithm, s))
        {
            Some(h) => Ok(h),
            None => Err(Error::Internal(format!(
                "upload {} has {} bytes but no usable hash state",
                row.id, row.size
            ))),
        }
    }

    /// PUT /v2/<name>/blobs/uploads/<id>?digest=<d>: optional last chunk, verify, make visible.
    pub async fn finish_upload(
        &self,
        name: &RepoName,
        id: &str,
        digest: &Digest,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: Option<ByteStream>,
    ) -> Result<BlobLocation> {
        let lock = self.upload_lock(id);
        let _guard = lock.lock().await;
        let mut row = self.upload_row(name, id).await?;
        if let Some(body) = body.filter(|_| content_length != Some(0)) {
            row = self.append_locked(row, range, content_length, body).await?;
        }
        let staging = Staging::from_json(&row.staging)?;
        self.core.blobs.seal(&row.id, row.size, &staging).await?;
        let session_algorithm: Algorithm = row.algorithm.parse()?;
        let computed = if session_algorithm == digest.algorithm() {
            self.session_hasher(&row, session_algorithm).await?.finish()
        } else {
            // The client named another algorithm than the session hashed with: read the bytes back.
            self.core
                .blobs
                .rehash(&row.id, row.size, digest.algorithm())
                .await?
                .finish()
        };
        if &computed != digest {
            self.end_session(&row).await?;
            return Err(digest_mismatch(&computed, digest));
        }
        self.publish_and_commit(&row.id, row.repository_id, digest, row.size, None)
            .await?;
        self.upload_locks.remove(&row.id);
        Ok(BlobLocation {
            digest: digest.clone(),
        })
    }

    /// Purges upload sessions idle for longer than `max_age`; returns how many.
    pub async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let before = crate::meta::now_millis() - max_age.as_millis() as i64;
        let stale = self.uploads.stale_uploads(before, 1000).await?;
        let mut purged = 0;
        for row in stale {
            let lock = self.upload_lock(&row.id);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            self.end_session(&row).await?;
            purged += 1;
        }
        Ok(purged)
    }
}
