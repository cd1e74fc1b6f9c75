//! Blob reads and deletes by digest within one repository (`/v2/<name>/blobs/<digest>`), read
//! through the metadata cache.

use super::core::Core;
use crate::error::{Error, Result};
use crate::meta::{BlobIndex, BlobRow};
use crate::oci::{Digest, RepoName};
use crate::storage::{BlobBody, ByteRange, RangeRequest};

/// A blob ready to stream.
pub struct BlobRead {
    pub digest: String,
    pub size: u64,
    pub range: Option<ByteRange>,
    pub body: Option<BlobBody>,
}

/// Reads and unlinks blobs of repositories.
#[derive(Clone)]
pub struct BlobService {
    core: Core,
    blob_index: BlobIndex,
}

impl BlobService {
    pub(super) fn new(core: Core, blob_index: BlobIndex) -> BlobService {
        BlobService { core, blob_index }
    }

    /// The blob's row in repository `name` (cached), or BLOB_UNKNOWN.
    pub(super) async fn blob_row(&self, name: &RepoName, digest: &Digest) -> Result<BlobRow> {
        let unknown = || Error::BlobUnknown(format!("blob {digest} is not in repository '{name}'"));
        if !self.core.cache.enabled() {
            // Replicas keep no cache: one statement finds the repository and the blob together.
            return self
                .blob_index
                .blob_in_named_repository(name.as_str(), digest)
                .await?
                .ok_or_else(unknown);
        }
        let Some(repo) = self.core.repository_id(name).await? else {
            return Err(unknown());
        };
        let key = digest.to_string();
        if let Some(row) = self.core.cache.blob(repo, &key) {
            return Ok(row);
        }
        let stamp = self.core.cache.stamp(repo);
        let row = self
            .blob_index
            .blob_in_repository(repo, digest)
            .await?
            .ok_or_else(unknown)?;
        self.core.cache.put_blob(stamp, repo, row.clone());
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
            match self.core.blobs.read(&row.object_key, row.size, range).await {
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

    /// The whole blob as a stream of its bytes, never a redirect (replication sends it on).
    pub async fn blob_stream(
        &self,
        name: &RepoName,
        digest: &Digest,
    ) -> Result<(u64, crate::storage::ByteStream)> {
        let row = self.blob_row(name, digest).await?;
        match self
            .core
            .blobs
            .stream(&row.object_key, row.size, None)
            .await
        {
            Ok(stream) => Ok((row.size, stream)),
            Err(e) => Err(self.read_failed(name, digest, e).await),
        }
    }

    /// The error for a blob whose bytes could not be read: the row it was read from may be stale
    /// (garbage collection or a delete removed the blob since), which the database tells.
    async fn read_failed(&self, name: &RepoName, digest: &Digest, error: Error) -> Error {
        let Ok(Some(repo)) = self.core.repository_id(name).await else {
            return error;
        };
        self.core.cache.invalidate(repo);
        match self.blob_index.blob_in_repository(repo, digest).await {
            Ok(None) => Error::BlobUnknown(format!("blob {digest} is not in repository '{name}'")),
            _ => error,
        }
    }

    /// DELETE /v2/<name>/blobs/<digest>: unlinks the blob from this repository only.
    pub async fn delete_blob(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let repo = self.core.repository(name).await?;
        let unlinked = self.blob_index.unlink_blob(repo, digest).await?;
        self.core.cache.invalidate(repo);
        if unlinked {
            Ok(())
        } else {
            Err(Error::BlobUnknown(format!(
                "blob {digest} is not in repository '{name}'"
            )))
        }
    }
}
