//! Online garbage collection in SQL, after GitLab's registry: review queues filled inside the
//! transactions that change references, and workers that take one due row at a time and re-check
//! it in one transaction.
//!
//! Serialization with the API (see `migrations/*/0008_gc.sql`):
//! - a GC transaction starts by deleting its queue row (SQLite: takes the write lock; PostgreSQL:
//!   the row is picked `FOR UPDATE SKIP LOCKED`, so replicas take different rows), then locks the
//!   blob or manifest row `FOR UPDATE` before re-checking;
//! - a manifest PUT locks the blobs and child manifests it references `FOR SHARE` inside its own
//!   transaction and fails with `MANIFEST_BLOB_UNKNOWN` if one is gone; a blob commit or mount
//!   postpones the blob's review row first and locks the blob row `FOR SHARE`.
//!
//! Either the PUT commits first (GC then sees the new reference and keeps the blob) or GC does
//! (the PUT then finds the blob gone). Lock order everywhere: queue row, then blob or manifest row.

use super::GcReviews;
use sqlx::{Any, Row, Transaction};

use super::{now_millis, Dialect};
use crate::error::Result;

impl Dialect {
    /// A row-locking clause (with a leading space) on PostgreSQL; nothing on SQLite, where the
    /// transaction already holds the database's single write lock.
    pub(crate) fn lock(self, clause: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" {clause}"),
        }
    }
}

/// Sets or postpones (never advances) the review of a blob.
pub(crate) async fn enqueue_blob(
    tx: &mut Transaction<'_, Any>,
    digest: &str,
    review_after: i64,
    event: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO gc_blob_review_queue (digest, review_after, review_count, created_at, event) \
         VALUES ($1, $2, 0, $3, $4) ON CONFLICT (digest) DO UPDATE SET \
         review_after = CASE WHEN excluded.review_after > gc_blob_review_queue.review_after \
         THEN excluded.review_after ELSE gc_blob_review_queue.review_after END, event = excluded.event",
    )
    .bind(digest)
    .bind(review_after)
    .bind(now_millis())
    .bind(event)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets or postpones the review of a manifest.
pub(crate) async fn enqueue_manifest(
    tx: &mut Transaction<'_, Any>,
    manifest_id: i64,
    repository_id: i64,
    review_after: i64,
    event: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO gc_manifest_review_queue \
         (manifest_id, repository_id, review_after, review_count, created_at, event) \
         VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (manifest_id) DO UPDATE SET \
         review_after = CASE WHEN excluded.review_after > gc_manifest_review_queue.review_after \
         THEN excluded.review_after ELSE gc_manifest_review_queue.review_after END, event = excluded.event",
    )
    .bind(manifest_id)
    .bind(repository_id)
    .bind(review_after)
    .bind(now_millis())
    .bind(event)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The upsert tail shared by the bulk blob enqueues below.
const BLOB_UPSERT: &str = "ON CONFLICT (digest) DO UPDATE SET \
     review_after = CASE WHEN excluded.review_after > gc_blob_review_queue.review_after \
     THEN excluded.review_after ELSE gc_blob_review_queue.review_after END, event = excluded.event";

/// Deletes a manifest (with its tags and references, by cascade) and queues what it held: its
/// blobs, and its child manifests and referrers in the repository, which become dependents (GC
/// may delete them once nothing else holds them).
pub(crate) async fn delete_manifest_in(
    tx: &mut Transaction<'_, Any>,
    repository_id: i64,
    manifest_id: i64,
    digest: &str,
    review_after: i64,
) -> Result<()> {
    let now = now_millis();
    sqlx::query(&format!(
        "INSERT INTO gc_blob_review_queue (digest, review_after, review_count, created_at, event) \
         SELECT child_digest, $2, 0, $3, 'manifest_delete' FROM manifest_references \
         WHERE manifest_id = $1 AND kind <> 'manifest' {BLOB_UPSERT}"
    ))
    .bind(manifest_id)
    .bind(review_after)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let dependents = "FROM manifests m WHERE m.repository_id = $2 AND m.id <> $1 AND \
         (m.subject_digest = $3 OR m.digest IN \
          (SELECT child_digest FROM manifest_references WHERE manifest_id = $1 AND kind = 'manifest'))";
    sqlx::query(&format!(
        "INSERT INTO gc_dependent_manifests (manifest_id, since) SELECT m.id, $4 {dependents} \
         ON CONFLICT (manifest_id) DO NOTHING"
    ))
    .bind(manifest_id)
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO gc_manifest_review_queue \
         (manifest_id, repository_id, review_after, review_count, created_at, event) \
         SELECT m.id, m.repository_id, $5, 0, $4, 'manifest_delete' {dependents} \
         ON CONFLICT (manifest_id) DO UPDATE SET \
         review_after = CASE WHEN excluded.review_after > gc_manifest_review_queue.review_after \
         THEN excluded.review_after ELSE gc_manifest_review_queue.review_after END, event = excluded.event"
    ))
    .bind(manifest_id)
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .bind(review_after)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM manifests WHERE id = $1")
        .bind(manifest_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Queues every blob a repository links or its manifests reference (before it is deleted).
pub(crate) async fn enqueue_repository_blobs(
    tx: &mut Transaction<'_, Any>,
    repository_id: i64,
    review_after: i64,
) -> Result<()> {
    let now = now_millis();
    for select in [
        "SELECT digest, $2, 0, $3, 'repository_delete' FROM repository_blobs WHERE repository_id = $1",
        "SELECT DISTINCT r.child_digest, $2, 0, $3, 'repository_delete' FROM manifest_references r \
         JOIN manifests m ON m.id = r.manifest_id WHERE m.repository_id = $1 AND r.kind <> 'manifest'",
    ] {
        sqlx::query(&format!(
            "INSERT INTO gc_blob_review_queue (digest, review_after, review_count, created_at, event) \
             {select} {BLOB_UPSERT}"
        ))
        .bind(repository_id)
        .bind(review_after)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A blob GC decided to delete: its rows are gone in `tx`, which the caller commits after taking
/// the object out of service (or drops, to keep everything).
pub struct BlobReview {
    pub tx: Transaction<'static, Any>,
    pub digest: String,
    pub size: u64,
    pub object_key: String,
}

/// What reviewing one queue row decided.
pub enum ReviewOutcome<T> {
    /// Nothing is due.
    Idle,
    /// Still referenced (or too young); the queue row is gone and nothing else changed.
    Kept,
    /// Unreferenced.
    Delete(T),
}

/// A manifest GC deleted (already committed).
pub struct ManifestReview {
    pub repository_id: i64,
    pub digest: String,
}

/// Queue sizes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GcQueueStats {
    pub blob_queue: i64,
    pub blob_due: i64,
    pub manifest_queue: i64,
    pub manifest_due: i64,
}

impl GcReviews {
    /// Whether a blob row still points at storage key `key`.
    pub async fn blob_object_listed(&self, key: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM blobs WHERE object_key = $1 LIMIT 1")
            .bind(key)
            .fetch_optional(&self.meta.write)
            .await?;
        Ok(row.is_some())
    }

    /// Takes the most overdue blob review (`review_after < now`) and re-checks it. A blob is kept
    /// while any manifest of any repository references it (config or layer), or while it was
    /// committed or linked within the grace period.
    pub async fn review_next_blob(&self, now: i64) -> Result<ReviewOutcome<BlobReview>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM gc_blob_review_queue WHERE digest = (SELECT digest FROM gc_blob_review_queue \
             WHERE review_after < $1 ORDER BY review_after LIMIT 1{}) RETURNING digest",
            self.meta.dialect.lock("FOR UPDATE SKIP LOCKED")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(ReviewOutcome::Idle);
        };
        let digest: String = row.try_get("digest")?;
        let blob = sqlx::query(&format!(
            "SELECT size, object_key, created_at FROM blobs WHERE digest = $1{}",
            self.meta.dialect.lock("FOR UPDATE")
        ))
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(blob) = blob else {
            tx.commit().await?;
            return Ok(ReviewOutcome::Kept);
        };
        let young_after = now.saturating_sub(self.meta.gc_grace_ms);
        let used = sqlx::query(
            "SELECT 1 AS one FROM manifest_references WHERE child_digest = $1 AND kind <> 'manifest' LIMIT 1",
        )
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        let young = blob.try_get::<i64, _>("created_at")? > young_after
            || sqlx::query(
                "SELECT 1 AS one FROM repository_blobs WHERE digest = $1 AND created_at > $2 LIMIT 1",
            )
            .bind(&digest)
            .bind(young_after)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if used || young {
            tx.commit().await?;
            return Ok(ReviewOutcome::Kept);
        }
        sqlx::query("DELETE FROM repository_blobs WHERE digest = $1")
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
        // Other processes (a single-node server beside `berth gc run`) drop cached blob rows.
        sqlx::query("UPDATE maintenance SET epoch = epoch + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(ReviewOutcome::Delete(BlobReview {
            tx,
            digest,
            size: blob.try_get::<i64, _>("size")?.max(0) as u64,
            object_key: blob.try_get("object_key")?,
        }))
    }

    /// Takes the most overdue manifest review and deletes the manifest (committed) if it is a
    /// dependent (it lost a parent index or its subject) that no tag and no index of its
    /// repository holds and whose subject is not in the repository. Top-level manifests are never
    /// deleted here.
    pub async fn review_next_manifest(&self, now: i64) -> Result<ReviewOutcome<ManifestReview>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM gc_manifest_review_queue WHERE manifest_id = (SELECT manifest_id \
             FROM gc_manifest_review_queue WHERE review_after < $1 ORDER BY review_after LIMIT 1{}) \
             RETURNING manifest_id, repository_id",
            self.meta.dialect.lock("FOR UPDATE SKIP LOCKED")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(ReviewOutcome::Idle);
        };
        let manifest_id: i64 = row.try_get("manifest_id")?;
        let repository_id: i64 = row.try_get("repository_id")?;
        let manifest = sqlx::query(&format!(
            "SELECT digest, subject_digest FROM manifests WHERE id = $1{}",
            self.meta.dialect.lock("FOR UPDATE")
        ))
        .bind(manifest_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(manifest) = manifest else {
            tx.commit().await?;
            return Ok(ReviewOutcome::Kept);
        };
        let digest: String = manifest.try_get("digest")?;
        let subject: Option<String> = manifest.try_get("subject_digest")?;
        let exists = |sql: &'static str| sqlx::query(sql);
        let dependent =
            exists("SELECT 1 AS one FROM gc_dependent_manifests WHERE manifest_id = $1")
                .bind(manifest_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        let tagged = exists("SELECT 1 AS one FROM tags WHERE manifest_id = $1 LIMIT 1")
            .bind(manifest_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let parent = exists(
            "SELECT 1 AS one FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id \
             WHERE p.repository_id = $1 AND r.child_digest = $2 AND r.kind = 'manifest' LIMIT 1",
        )
        .bind(repository_id)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        let subject_present = match &subject {
            Some(s) => exists(
                "SELECT 1 AS one FROM manifests WHERE repository_id = $1 AND digest = $2 LIMIT 1",
            )
            .bind(repository_id)
            .bind(s)
            .fetch_optional(&mut *tx)
            .await?
            .is_some(),
            None => false,
        };
        if !dependent || tagged || parent || subject_present {
            tx.commit().await?;
            return Ok(ReviewOutcome::Kept);
        }
        delete_manifest_in(
            &mut tx,
            repository_id,
            manifest_id,
            &digest,
            self.meta.review_after(),
        )
        .await?;
        sqlx::query("UPDATE maintenance SET epoch = epoch + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ReviewOutcome::Delete(ManifestReview {
            repository_id,
            digest,
        }))
    }

    /// Queue lengths, and how many rows are due at `now`.
    pub async fn gc_queue_stats(&self, now: i64) -> Result<GcQueueStats> {
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql)
                .bind(now)
                .fetch_one(&self.meta.read)
                .await?;
            Ok::<i64, crate::error::Error>(row.try_get("n")?)
        };
        Ok(GcQueueStats {
            blob_queue: count("SELECT COUNT(*) AS n FROM gc_blob_review_queue WHERE review_after > $1 OR review_after <= $1")
                .await?,
            blob_due: count("SELECT COUNT(*) AS n FROM gc_blob_review_queue WHERE review_after < $1")
                .await?,
            manifest_queue: count(
                "SELECT COUNT(*) AS n FROM gc_manifest_review_queue WHERE review_after > $1 OR review_after <= $1",
            )
            .await?,
            manifest_due: count(
                "SELECT COUNT(*) AS n FROM gc_manifest_review_queue WHERE review_after < $1",
            )
            .await?,
        })
    }
}
