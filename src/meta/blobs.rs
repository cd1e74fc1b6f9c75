//! The blob index: which blobs exist, where their bytes are, and which repositories they are
//! linked into.

use super::*;

impl BlobIndex {
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
        let _timed = self.meta.time(StoreCall::BlobCommit);
        let request = BlobCommitRequest {
            upload_id: upload_id.to_owned(),
            repository_id,
            digest: digest.to_string(),
            size,
            object_key: object_key.to_owned(),
            review_after: self.meta.review_after(),
            verify_path,
        };
        if let Some(committer) = &self.meta.committer {
            let (reply, answer) = tokio::sync::oneshot::channel();
            committer
                .send((request, reply))
                .await
                .map_err(|_| Error::Unavailable("metadata database is shutting down".into()))?;
            return answer
                .await
                .map_err(|_| Error::Internal("blob committer stopped".into()))?;
        }
        let mut tx = self.meta.write.begin().await?;
        let outcome = commit_blob_in(&mut tx, &request, self.meta.dialect).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The blob if it is visible in the repository.
    pub async fn blob_in_repository(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<BlobRow>> {
        let _timed = self.meta.time(StoreCall::BlobGet);
        let row = sqlx::query(
            "SELECT b.digest, b.size, b.object_key FROM repository_blobs rb \
             JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = $1 AND rb.digest = $2",
        )
        .bind(repository_id)
        .bind(digest.to_string())
        .fetch_optional(&self.meta.read)
        .await?;
        row.as_ref().map(blob_row).transpose()
    }

    /// The blob if it is visible in the repository named `name`: the repository and the blob in
    /// one statement (for replicas, which keep no cache of repository ids).
    pub async fn blob_in_named_repository(
        &self,
        name: &str,
        digest: &Digest,
    ) -> Result<Option<BlobRow>> {
        let _timed = self.meta.time(StoreCall::BlobGet);
        let row = sqlx::query(
            "SELECT b.digest, b.size, b.object_key FROM repositories r \
             JOIN repository_blobs rb ON rb.repository_id = r.id \
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(name)
        .bind(digest.to_string())
        .fetch_optional(&self.meta.read)
        .await?;
        row.as_ref().map(blob_row).transpose()
    }

    /// Whether the blob is linked to any repository.
    pub async fn blob_linked_anywhere(&self, digest: &Digest) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM repository_blobs WHERE digest = $1 LIMIT 1")
            .bind(digest.to_string())
            .fetch_optional(&self.meta.read)
            .await?;
        Ok(row.is_some())
    }

    /// Up to `limit` repositories (by name) that link the blob.
    pub async fn repositories_with_blob(&self, digest: &Digest, limit: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT r.name FROM repository_blobs b JOIN repositories r ON r.id = b.repository_id \
             WHERE b.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Every stored blob (for fsck).
    pub async fn all_blobs(&self) -> Result<Vec<BlobRow>> {
        let rows = sqlx::query("SELECT digest, size, object_key FROM blobs")
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter().map(blob_row).collect()
    }

    /// Forgets a blob whose bytes are lost: unlinks it from every repository and deletes its row,
    /// so the next push stores it again. Returns the repositories and manifests that referenced it.
    pub async fn forget_blob(&self, digest: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut tx = self.meta.write.begin().await?;
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
        let mut tx = self.meta.write.begin().await?;
        gc::enqueue_blob(&mut tx, &digest, self.meta.review_after(), "blob_link").await?;
        let exists = sqlx::query(&format!(
            "SELECT digest FROM blobs WHERE digest = $1{}",
            self.meta.dialect.lock("FOR SHARE")
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
        let mut tx = self.meta.write.begin().await?;
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
                .bind(repository_id)
                .bind(&digest)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if done {
            gc::enqueue_blob(&mut tx, &digest, self.meta.review_after(), "blob_unlink").await?;
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
            for row in query.fetch_all(&self.meta.read).await? {
                sizes.insert(
                    row.try_get::<String, _>("digest")?,
                    row.try_get::<i64, _>("size")?,
                );
            }
        }
        Ok(sizes)
    }
}

/// A `blobs` row selected as `digest, size, object_key`.
fn blob_row(r: &sqlx::any::AnyRow) -> Result<BlobRow> {
    Ok(BlobRow {
        digest: r.try_get("digest")?,
        size: r.try_get::<i64, _>("size")? as u64,
        object_key: r.try_get("object_key")?,
    })
}
