//! Blob bytes only: reads through `object_store` (or straight from disk for the filesystem
//! backend), and upload staging that writes every byte once. Knows nothing of repositories.
//!
//! Key layout: finished blobs live at `blobs/<algorithm>/<first two hex>/<hex>`; an upload in
//! progress lives at `uploads/<upload id>`. On the filesystem, finishing an upload is an fsync
//! and a rename, so bytes are written once.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::oci::{Algorithm, Digest, Hasher};

/// A body arriving from a client.
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// How many body chunks may wait between the network and the disk writer.
const WRITE_QUEUE_CHUNKS: usize = 16;
/// Read buffer size for serving blobs from disk.
const READ_CHUNK: usize = 256 * 1024;

/// Where blob bytes live.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Root directory for the filesystem backend, where uploads are staged in place.
    local_root: Option<PathBuf>,
    /// Staging directory for backends that cannot append (memory: unit tests only).
    staging_dir: PathBuf,
}

/// An inclusive byte range already checked against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl BlobStore {
    /// Opens the store named by a `file://`, `memory://` URL. `scratch` holds staging for backends
    /// without append.
    pub fn open(url: &str, scratch: &Path) -> Result<Self> {
        let staging_dir = scratch.join("staging");
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            for dir in ["blobs", "uploads"] {
                std::fs::create_dir_all(root.join(dir))?;
            }
            let store = LocalFileSystem::new_with_prefix(&root).map_err(Error::internal)?;
            Ok(BlobStore {
                store: Arc::new(store),
                local_root: Some(root),
                staging_dir,
            })
        } else if url.starts_with("memory://") {
            std::fs::create_dir_all(staging_dir.join("uploads"))?;
            Ok(BlobStore {
                store: Arc::new(InMemory::new()),
                local_root: None,
                staging_dir,
            })
        } else {
            Err(Error::Internal(format!(
                "storage url '{url}' is not supported; use file:///path or memory://"
            )))
        }
    }

    fn staging_root(&self) -> &Path {
        self.local_root.as_deref().unwrap_or(&self.staging_dir)
    }

    fn staged_path(&self, upload_id: &str) -> PathBuf {
        self.staging_root().join("uploads").join(upload_id)
    }

    pub fn upload_key(upload_id: &str) -> String {
        format!("uploads/{upload_id}")
    }

    pub fn blob_key(digest: &Digest) -> String {
        let hex = digest.hex();
        format!(
            "blobs/{}/{}/{}",
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        )
    }

    /// Creates the empty staging object for a new upload.
    pub async fn start_upload(&self, upload_id: &str) -> Result<()> {
        tokio::fs::File::create(self.staged_path(upload_id)).await?;
        Ok(())
    }

    /// Appends a body at `offset` of the staged upload while hashing it. Bytes past `offset` left by
    /// an interrupted earlier write are cut first. Returns the bytes written and the hasher; the data
    /// is on stable storage when this returns.
    pub async fn append(
        &self,
        upload_id: &str,
        offset: u64,
        mut hasher: Hasher,
        mut body: ByteStream,
        idle_timeout: Duration,
    ) -> Result<(u64, Hasher)> {
        let path = self.staged_path(upload_id);
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE_CHUNKS);
        // Hashing and writing run on one blocking thread; the async side only moves chunks.
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Hasher)> {
            let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut file = std::io::BufWriter::with_capacity(1024 * 1024, file);
            let mut written = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_data()?;
            Ok((written, hasher))
        });
        let mut failure: Option<Error> = None;
        loop {
            match tokio::time::timeout(idle_timeout, body.next()).await {
                Err(_) => {
                    failure = Some(Error::BlobUploadInvalid(format!(
                        "no body bytes received for {} s; upload aborted, resume from the last acknowledged offset",
                        idle_timeout.as_secs()
                    )));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    failure = Some(Error::BlobUploadInvalid(format!(
                        "request body ended early or failed: {e}"
                    )));
                    break;
                }
                Ok(Some(Ok(chunk))) => {
                    if tx.send(chunk).await.is_err() {
                        break; // writer failed; its error is reported below
                    }
                }
            }
        }
        drop(tx);
        let written = writer.await.map_err(Error::internal)?;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(written?)
    }

    /// Recomputes the hash of the first `len` staged bytes (after a restart, on another replica, or
    /// for a different algorithm than the session started with).
    pub async fn rehash(&self, upload_id: &str, len: u64, algorithm: Algorithm) -> Result<Hasher> {
        let path = self.staged_path(upload_id);
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

    /// Moves a verified upload to its content-addressed key and returns that key.
    pub async fn finish_upload(&self, upload_id: &str, digest: &Digest) -> Result<String> {
        let key = Self::blob_key(digest);
        let staged = self.staged_path(upload_id);
        match &self.local_root {
            Some(root) => {
                let target = root.join(&key);
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let dir = target.parent().expect("blob key has a parent");
                    std::fs::create_dir_all(dir)?;
                    std::fs::rename(&staged, &target)?;
                    // The rename is durable only once the directory entry is.
                    std::fs::File::open(dir)?.sync_all()
                })
                .await
                .map_err(Error::internal)??;
            }
            None => {
                let bytes = tokio::fs::read(&staged).await?;
                self.store
                    .put(&ObjectPath::from(key.as_str()), bytes.into())
                    .await?;
                tokio::fs::remove_file(&staged).await?;
            }
        }
        Ok(key)
    }

    /// Drops a staged upload; missing is fine.
    pub async fn discard_upload(&self, upload_id: &str) -> Result<()> {
        match tokio::fs::remove_file(self.staged_path(upload_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Streams `range` (or the whole object) of the blob stored under `key`.
    pub async fn read(&self, key: &str, size: u64, range: Option<ByteRange>) -> Result<ByteStream> {
        let (start, len) = match range {
            Some(r) => (r.start, r.end - r.start + 1),
            None => (0, size),
        };
        if let Some(root) = &self.local_root {
            let mut file = tokio::fs::File::open(root.join(key)).await?;
            if start > 0 {
                file.seek(SeekFrom::Start(start)).await?;
            }
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
            return Ok(stream.boxed());
        }
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..Default::default()
        };
        let result = self.store.get_opts(&ObjectPath::from(key), options).await?;
        Ok(result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed())
    }

    /// Checks the backend answers (for readiness).
    pub async fn ping(&self) -> Result<()> {
        match &self.local_root {
            Some(root) => {
                tokio::fs::metadata(root.join("blobs")).await?;
                Ok(())
            }
            None => {
                let _ = self.store.list_with_delimiter(None).await?;
                Ok(())
            }
        }
    }
}
