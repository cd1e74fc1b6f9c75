//! Online garbage collection passes (see `meta::gc` for the queues and how GC serializes with
//! pushes): dependent manifests first, then blobs, one queue row per transaction, until nothing
//! is due. A blob's rows are deleted and its object taken out of service in one transaction, the
//! object deleted for good after the commit: a storage failure leaves an orphan object (which
//! `berth fsck --repair` reclaims), never a row without its object.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::core::Core;
use crate::error::Result;
use crate::meta::{now_millis, BlobIndex, GcQueueStats, GcReviews, ReviewOutcome, Uploads};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GcReport {
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub blobs_kept: u64,
    pub manifests_kept: u64,
    /// Objects whose rows were deleted but whose delete in storage failed (left for fsck).
    pub storage_errors: u64,
    pub started_at: i64,
    pub finished_at: i64,
}

/// Totals since this process started, and the last pass.
#[derive(Default)]
pub struct GcStats {
    passes: AtomicU64,
    blobs_deleted: AtomicU64,
    bytes_deleted: AtomicU64,
    manifests_deleted: AtomicU64,
    storage_errors: AtomicU64,
    last_error_at: AtomicI64,
    last_pass: Mutex<Option<GcReport>>,
    /// The background pass interval in milliseconds; 0 while this process runs none.
    interval_millis: AtomicU64,
}

/// Totals as the API shows them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GcTotals {
    pub passes: u64,
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub storage_errors: u64,
}

/// The GC statistics the API serves.
#[derive(Debug, Clone, Serialize)]
pub struct GcStatus {
    pub grace_period_secs: u64,
    /// How often this process runs a background pass (`None`: it runs none).
    pub interval: Option<Duration>,
    pub queue: GcQueueStats,
    pub since_start: GcTotals,
    pub last_pass: Option<GcReport>,
}

impl GcStats {
    pub fn totals(&self) -> GcTotals {
        GcTotals {
            passes: self.passes.load(Ordering::Relaxed),
            blobs_deleted: self.blobs_deleted.load(Ordering::Relaxed),
            bytes_deleted: self.bytes_deleted.load(Ordering::Relaxed),
            manifests_deleted: self.manifests_deleted.load(Ordering::Relaxed),
            storage_errors: self.storage_errors.load(Ordering::Relaxed),
        }
    }

    pub fn last_pass(&self) -> Option<GcReport> {
        *self.last_pass.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that this process runs a background pass every `interval`.
    pub fn set_interval(&self, interval: Duration) {
        let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.interval_millis.store(millis, Ordering::Relaxed);
    }

    /// The background pass interval, if this process runs passes.
    pub fn interval(&self) -> Option<Duration> {
        match self.interval_millis.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(Duration::from_millis(millis)),
        }
    }
}

/// Files trashed longer ago than this belong to a GC that died mid-delete (no GC transaction
/// stays open this long).
const TRASH_AGE: Duration = Duration::from_secs(3600);

/// Garbage collection of unreferenced manifests and blobs, and the consistency check (`fsck`).
#[derive(Clone)]
pub struct GcService {
    pub(super) core: Core,
    pub(super) gc_reviews: GcReviews,
    pub(super) uploads: Uploads,
    pub(super) blob_index: BlobIndex,
    grace_period: Duration,
    /// Garbage collection counters of this process.
    stats: Arc<GcStats>,
}

impl GcService {
    pub(super) fn new(
        core: Core,
        gc_reviews: GcReviews,
        uploads: Uploads,
        blob_index: BlobIndex,
        grace_period: Duration,
    ) -> GcService {
        GcService {
            core,
            gc_reviews,
            uploads,
            blob_index,
            grace_period,
            stats: Default::default(),
        }
    }

    /// How often this process collects garbage (shown by the GC status).
    pub fn set_interval(&self, interval: Duration) {
        self.stats.set_interval(interval)
    }

    /// Processes every due review (manifests, then blobs) and returns what it reclaimed.
    pub async fn gc_pass(&self) -> Result<GcReport> {
        let mut report = GcReport {
            started_at: now_millis(),
            ..Default::default()
        };
        let result = self.gc_pass_into(&mut report).await;
        report.finished_at = now_millis();
        let stats = &self.stats;
        stats.passes.fetch_add(1, Ordering::Relaxed);
        *stats.last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
        if result.is_err() {
            stats.last_error_at.store(now_millis(), Ordering::Relaxed);
        }
        if report.blobs_deleted > 0 || report.manifests_deleted > 0 {
            tracing::info!(
                blobs = report.blobs_deleted,
                bytes = report.bytes_deleted,
                manifests = report.manifests_deleted,
                kept = report.blobs_kept + report.manifests_kept,
                storage_errors = report.storage_errors,
                "garbage collection reclaimed storage"
            );
        }
        result.map(|()| report)
    }

    /// Settles files a GC process left in the filesystem trash when it died between taking an
    /// object out of service and finishing: if its transaction committed, the blob's row is gone
    /// and the file is deleted; if not, the row is still there and the file goes back, so a
    /// crash never loses a blob the database still lists.
    async fn settle_trash(&self) -> Result<()> {
        for entry in self.core.blobs.stale_trash(TRASH_AGE).await? {
            if self.gc_reviews.blob_object_listed(&entry.key).await? {
                tracing::warn!(key = %entry.key, "restoring a blob a dead GC had taken out of service");
                self.core.blobs.restore_trash(&entry).await?;
            } else {
                self.core.blobs.remove_trash(&entry).await?;
            }
        }
        Ok(())
    }

    async fn gc_pass_into(&self, report: &mut GcReport) -> Result<()> {
        if let Err(e) = self.settle_trash().await {
            tracing::warn!(error = %e, "cannot settle the GC trash");
        }
        let stats = &self.stats;
        loop {
            match self.gc_reviews.review_next_manifest(now_millis()).await? {
                ReviewOutcome::Idle => break,
                ReviewOutcome::Kept => report.manifests_kept += 1,
                ReviewOutcome::Delete(m) => {
                    self.core.cache.invalidate(m.repository_id);
                    tracing::debug!(digest = %m.digest, "GC deleted a dependent manifest");
                    report.manifests_deleted += 1;
                    stats.manifests_deleted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        loop {
            match self.gc_reviews.review_next_blob(now_millis()).await? {
                ReviewOutcome::Idle => break,
                ReviewOutcome::Kept => report.blobs_kept += 1,
                ReviewOutcome::Delete(review) => {
                    // Out of service inside the transaction (a new upload of the same digest
                    // then sees it gone), for good after the commit.
                    let detached = self.core.blobs.detach_object(&review.object_key).await?;
                    if let Err(e) = review.tx.commit().await {
                        self.core.blobs.restore_detached(detached).await;
                        return Err(e.into());
                    }
                    self.core.cache.invalidate_all();
                    if let Err(e) = self.core.blobs.purge_detached(detached).await {
                        tracing::warn!(error = %e, digest = %review.digest,
                            "GC deleted a blob's rows but not its object; fsck --repair reclaims it");
                        report.storage_errors += 1;
                        stats.storage_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(digest = %review.digest, size = review.size, "GC deleted a blob");
                    report.blobs_deleted += 1;
                    report.bytes_deleted += review.size;
                    stats.blobs_deleted.fetch_add(1, Ordering::Relaxed);
                    stats
                        .bytes_deleted
                        .fetch_add(review.size, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Queue lengths and reclaim counters.
    pub async fn gc_status(&self) -> Result<GcStatus> {
        Ok(GcStatus {
            grace_period_secs: self.grace_period.as_secs(),
            interval: self.stats.interval(),
            queue: self.gc_reviews.gc_queue_stats(now_millis()).await?,
            since_start: self.stats.totals(),
            last_pass: self.stats.last_pass(),
        })
    }
}
