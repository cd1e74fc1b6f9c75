//! Registry-wide counts and work-queue depths for the metrics: a handful of aggregate queries,
//! each over an index or one table, run at most every 30 s by `jobs::refresh_metrics`.

use super::*;
use crate::metrics::{Inventory, QueueStats};

impl Stats {
    /// Blobs, their bytes, manifests and open upload sessions.
    pub async fn inventory(&self) -> Result<Inventory> {
        let blobs = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM blobs",
        )
        .fetch_one(&self.meta.read)
        .await?;
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql).fetch_one(&self.meta.read).await?;
            Ok::<i64, Error>(row.try_get("n")?)
        };
        Ok(Inventory {
            blobs: blobs.try_get("n")?,
            blob_bytes: blobs.try_get("bytes")?,
            manifests: count("SELECT COUNT(*) AS n FROM manifests").await?,
            upload_sessions: count("SELECT COUNT(*) AS n FROM uploads").await?,
        })
    }

    /// Each queue of [`crate::metrics::QUEUES`]: rows waiting, and how long the oldest due row
    /// (due before `now`, in ms) has waited.
    pub async fn queues(&self, now: i64) -> Result<Vec<(&'static str, QueueStats)>> {
        let queues: [(&'static str, &'static str, &'static str); 4] = [
            (
                "gc_blob_review",
                "SELECT COUNT(*) AS n FROM gc_blob_review_queue",
                "SELECT MIN(review_after) AS t FROM gc_blob_review_queue WHERE review_after <= $1",
            ),
            (
                "gc_manifest_review",
                "SELECT COUNT(*) AS n FROM gc_manifest_review_queue",
                "SELECT MIN(review_after) AS t FROM gc_manifest_review_queue \
                 WHERE review_after <= $1",
            ),
            (
                // A job waits (or runs) while it has a next attempt; finished ones keep their
                // row without one.
                "scan",
                "SELECT COUNT(*) AS n FROM scan_jobs WHERE next_attempt_at IS NOT NULL",
                "SELECT MIN(next_attempt_at) AS t FROM scan_jobs WHERE next_attempt_at <= $1",
            ),
            (
                "replication",
                "SELECT COUNT(*) AS n FROM replication_tasks WHERE status = 'IN_PROGRESS'",
                "SELECT MIN(next_attempt_at) AS t FROM replication_tasks \
                 WHERE status = 'IN_PROGRESS' AND next_attempt_at <= $1",
            ),
        ];
        let mut out = Vec::with_capacity(queues.len());
        for (queue, depth, oldest) in queues {
            let depth: i64 = sqlx::query(depth)
                .fetch_one(&self.meta.read)
                .await?
                .try_get("n")?;
            let oldest: Option<i64> = sqlx::query(oldest)
                .bind(now)
                .fetch_one(&self.meta.read)
                .await?
                .try_get("t")?;
            let oldest_age_secs = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
            out.push((
                queue,
                QueueStats {
                    depth,
                    oldest_age_secs,
                },
            ));
        }
        Ok(out)
    }
}
