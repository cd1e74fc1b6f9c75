//! Blob upload sessions: start, mount, append (chunked or streamed), status, cancel and finish,
//! with the digest verified on every path and nothing visible before it is.

use std::sync::Arc;

use super::{HashState, Registry};
use crate::error::{Error, Result};
use crate::meta::{BlobCommit, UploadRow};
use crate::oci::{Algorithm, Digest, RepoName};
use crate::storage::{BlobStore, ByteStream};

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

/// What POST /blobs/uploads/ produced.
pub enum UploadStart {
    /// A session to PATCH/PUT into (202).
    Session(UploadProgress),
    /// The blob is already there: mounted or uploaded in one request (201).
    Done(BlobLocation),
}

/// A `Content-Range: start-end` of a chunk.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Parses `start-end` (also tolerating a `bytes ` prefix some clients send).
    pub fn parse(header: &str) -> Result<Self> {
        let text = header.trim();
        let text = text
            .strip_prefix("bytes ")
            .or_else(|| text.strip_prefix("bytes="))
            .unwrap_or(text);
        let text = text.split('/').next().unwrap_or("");
        let bad = || {
            Error::BlobUploadInvalid(format!(
                "malformed Content-Range '{}'; expected START-END",
                header.escape_default()
            ))
        };
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let start: u64 = a.trim().parse().map_err(|_| bad())?;
        let end: u64 = b.trim().parse().map_err(|_| bad())?;
        if end < start {
            return Err(bad());
        }
        Ok(ChunkRange { start, end })
    }

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

/// Upload ids are UUIDs; anything else is unknown before it reaches SQL or a path.
fn valid_upload_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok() && id.len() == 36
}

impl Registry {
    fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<HashState>> {
        self.uploads
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(HashState {
                    offset: 0,
                    hasher: None,
                }))
            })
            .clone()
    }

    async fn upload_row(&self, name: &RepoName, id: &str) -> Result<UploadRow> {
        if !valid_upload_id(id) {
            return Err(unknown_upload(id, name));
        }
        let repo = self
            .meta
            .repository_id(name)
            .await?
            .ok_or_else(|| unknown_upload(id, name))?;
        self.meta
            .upload(id, repo)
            .await?
            .ok_or_else(|| unknown_upload(id, name))
    }

    /// POST /v2/<name>/blobs/uploads/ (also `?digest-algorithm=`): opens a session.
    pub async fn start_upload(
        &self,
        name: &RepoName,
        algorithm: Algorithm,
    ) -> Result<UploadProgress> {
        let repo = self.meta.ensure_repository(name).await?;
        let id = uuid::Uuid::new_v4().to_string();
        self.blobs.start_upload(&id).await?;
        self.meta
            .create_upload(&id, repo, algorithm.as_str(), &BlobStore::upload_key(&id))
            .await?;
        Ok(UploadProgress { id, size: 0 })
    }

    /// POST /v2/<name>/blobs/uploads/?digest=<d> with the whole blob as body.
    pub async fn upload_monolithic(
        &self,
        name: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<BlobLocation> {
        let session = self.start_upload(name, digest.algorithm()).await?;
        self.finish_upload(name, &session.id, digest, None, content_length, Some(body))
            .await
    }

    /// POST /v2/<name>/blobs/uploads/?mount=<d>[&from=<repo>]: links a blob the caller may read
    /// without moving bytes; `None` when it cannot (the caller then opens a normal session).
    pub async fn mount_blob(
        &self,
        name: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<BlobLocation>> {
        let available = match from {
            Some(source) => match self.meta.repository_id(source).await? {
                Some(src) => self.meta.blob_in_repository(src, digest).await?.is_some(),
                None => false,
            },
            None => self.meta.blob_linked_anywhere(digest).await?,
        };
        if !available {
            return Ok(None);
        }
        let repo = self.meta.ensure_repository(name).await?;
        self.meta.link_blob(repo, digest).await?;
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
        let row = self.upload_row(name, id).await?;
        let lock = self.upload_lock(&row.id);
        let _guard = lock.lock().await;
        if self.meta.delete_upload(&row.id).await? {
            self.blobs.discard_upload(&row.id).await?;
        }
        self.uploads.remove(&row.id);
        Ok(())
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
        let row = self.upload_row(name, id).await?;
        let lock = self.upload_lock(&row.id);
        let mut state = lock.lock().await;
        let row = self.upload_row(name, id).await?; // re-read: another request may have moved it
        let size = self
            .append_locked(&row, &mut state, range, content_length, body)
            .await?;
        Ok(UploadProgress { id: row.id, size })
    }

    /// Writes one body into a locked session and advances its size; returns the new size.
    async fn append_locked(
        &self,
        row: &UploadRow,
        state: &mut HashState,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
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
        let hasher = match state.hasher.take() {
            Some(h) if state.offset == row.size && h.algorithm() == algorithm => h,
            _ => self.blobs.rehash(&row.id, row.size, algorithm).await?,
        };
        let (written, hasher) = self
            .blobs
            .append(
                &row.id,
                row.size,
                hasher,
                body,
                self.limits.body_idle_timeout,
            )
            .await?;
        let expected = range.map(|r| r.len()).or(content_length);
        if let Some(expected) = expected {
            if written != expected {
                return Err(Error::BlobUploadInvalid(format!(
                    "received {written} body bytes but {expected} were declared; the chunk was not applied"
                )));
            }
        }
        let new_size = row.size + written;
        if !self
            .meta
            .advance_upload(&row.id, row.size, new_size)
            .await?
        {
            return Err(Error::UploadOutOfOrder {
                message: "another request changed this upload at the same time; retry from the current offset".into(),
                offset: row.size,
            });
        }
        *state = HashState {
            offset: new_size,
            hasher: Some(hasher),
        };
        Ok(new_size)
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
        let row = self.upload_row(name, id).await?;
        let lock = self.upload_lock(&row.id);
        let mut state = lock.lock().await;
        let mut row = self.upload_row(name, id).await?;
        if let Some(body) = body.filter(|_| content_length != Some(0)) {
            row.size = self
                .append_locked(&row, &mut state, range, content_length, body)
                .await?;
        }
        let hasher = match state.hasher.take() {
            Some(h) if state.offset == row.size && h.algorithm() == digest.algorithm() => h,
            _ => {
                self.blobs
                    .rehash(&row.id, row.size, digest.algorithm())
                    .await?
            }
        };
        let computed = hasher.finish();
        if &computed != digest {
            self.meta.delete_upload(&row.id).await?;
            self.blobs.discard_upload(&row.id).await?;
            self.uploads.remove(&row.id);
            return Err(Error::DigestInvalid(format!(
                "uploaded content has digest {computed}, not {digest}; the upload was discarded, push it again"
            )));
        }
        let key = self.blobs.finish_upload(&row.id, digest).await?;
        crate::failpoint::pause("blob.before_commit").await;
        let outcome = self
            .meta
            .commit_blob(&row.id, row.repository_id, digest, row.size, &key)
            .await?;
        if let BlobCommit::AlreadyStored { object_key } = outcome {
            if object_key != key {
                tracing::warn!(%digest, existing = %object_key, "blob stored under two keys; keeping the first");
            }
        }
        self.uploads.remove(&row.id);
        Ok(BlobLocation {
            digest: digest.clone(),
        })
    }

    /// Purges upload sessions idle for longer than `max_age`; returns how many.
    pub async fn purge_stale_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let before = crate::meta::now_millis() - max_age.as_millis() as i64;
        let stale = self.meta.stale_uploads(before, 1000).await?;
        let mut purged = 0;
        for row in stale {
            let lock = self.upload_lock(&row.id);
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            if self.meta.delete_upload(&row.id).await? {
                self.blobs.discard_upload(&row.id).await?;
                purged += 1;
            }
            self.uploads.remove(&row.id);
        }
        Ok(purged)
    }
}
