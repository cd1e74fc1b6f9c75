//! Replication: the registry's configuration and the tasks that carry pushed images to their
//! destinations (written in the push's transaction, claimed under a lease, retried, ended
//! `COMPLETE` or `FAILED`).

use super::*;
use crate::policy::replication::ReplicationDestination;

/// A task is being worked on, or waits for its next attempt.
pub const IN_PROGRESS: &str = "IN_PROGRESS";
/// The image (and its tag, if the task has one) is at the destination.
pub const COMPLETE: &str = "COMPLETE";
/// Given up, with a failure code and reason; retried only when asked.
pub const FAILED: &str = "FAILED";

/// One image to send to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationTask {
    pub id: i64,
    pub repository: String,
    pub digest: String,
    /// The tag the push set; empty for a push by digest.
    pub tag: String,
    pub registry_id: String,
    pub region: String,
    pub status: String,
    pub attempts: i64,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const TASK_COLUMNS: &str = "id, repository, digest, tag, registry_id, region, status, attempts, \
    failure_code, failure_reason, created_at, updated_at";

fn task_row(row: &AnyRow) -> Result<ReplicationTask> {
    Ok(ReplicationTask {
        id: row.try_get("id")?,
        repository: row.try_get("repository")?,
        digest: row.try_get("digest")?,
        tag: row.try_get("tag")?,
        registry_id: row.try_get("registry_id")?,
        region: row.try_get("region")?,
        status: row.try_get("status")?,
        attempts: row
            .try_get::<i64, _>("attempts")
            .or_else(|_| row.try_get::<i32, _>("attempts").map(i64::from))?,
        failure_code: row.try_get("failure_code")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Writes (or restarts) one task per tag and destination for a pushed manifest, inside the
/// push's transaction: the push and its replication commit together or not at all. A push
/// that sets no tag gets one task with the empty tag.
pub(super) async fn enqueue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository: &str,
    digest: &str,
    tags: &[Tag],
    destinations: &[ReplicationDestination],
) -> Result<()> {
    let now = now_millis();
    let untagged = [String::new()];
    let tags: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
    let tags = if tags.is_empty() {
        &untagged[..]
    } else {
        &tags[..]
    };
    for destination in destinations {
        for tag in tags {
            sqlx::query(
                "INSERT INTO replication_tasks (repository, digest, tag, registry_id, region, status, \
                 attempts, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $7) \
                 ON CONFLICT (repository, digest, tag, registry_id, region) DO UPDATE SET \
                 status = excluded.status, attempts = 0, next_attempt_at = excluded.next_attempt_at, \
                 failure_code = NULL, failure_reason = NULL, updated_at = excluded.updated_at",
            )
            .bind(repository)
            .bind(digest)
            .bind(tag)
            .bind(&destination.registry_id)
            .bind(&destination.region)
            .bind(IN_PROGRESS)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Replication {
    /// The stored configuration document, if one was saved.
    pub async fn configuration(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT document FROM replication_configuration WHERE id = 1")
            .fetch_optional(&self.meta.read)
            .await?;
        Ok(row.map(|r| r.try_get("document")).transpose()?)
    }

    /// Replaces the configuration document.
    pub async fn put_configuration(&self, document: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO replication_configuration (id, document, updated_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(document)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Takes up to `limit` tasks that are due and not leased by a live holder, leasing each to
    /// `owner` until `lease_until`. Two replicas never hold one task: the lease is taken with a
    /// conditional update, and a task another replica took in between is skipped.
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ReplicationTask>> {
        let now = now_millis();
        let candidates = sqlx::query(
            "SELECT id FROM replication_tasks WHERE status = $1 AND next_attempt_at <= $2 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at, id LIMIT $3",
        )
        .bind(IN_PROGRESS)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        let mut claimed = Vec::new();
        for row in candidates {
            let id: i64 = row.try_get("id")?;
            let taken = sqlx::query(
                "UPDATE replication_tasks SET lease_owner = $1, lease_until = $2 WHERE id = $3 \
                 AND status = $4 AND (lease_until IS NULL OR lease_until < $5)",
            )
            .bind(owner)
            .bind(lease_until)
            .bind(id)
            .bind(IN_PROGRESS)
            .bind(now)
            .execute(&self.meta.write)
            .await?
            .rows_affected();
            if taken == 1 {
                let row = sqlx::query(&format!(
                    "SELECT {TASK_COLUMNS} FROM replication_tasks WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(&self.meta.read)
                .await?;
                claimed.push(task_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// Ends a task this holder leased: `COMPLETE`, or `FAILED` with a code and reason.
    pub async fn finish(&self, id: i64, owner: &str, failure: Option<(&str, &str)>) -> Result<()> {
        sqlx::query(
            "UPDATE replication_tasks SET status = $1, failure_code = $2, failure_reason = $3, \
             attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, updated_at = $4 \
             WHERE id = $5 AND lease_owner = $6",
        )
        .bind(if failure.is_some() { FAILED } else { COMPLETE })
        .bind(failure.map(|f| f.0))
        .bind(failure.map(|f| f.1))
        .bind(now_millis())
        .bind(id)
        .bind(owner)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Puts a task this holder leased back for another attempt at `next_attempt_at`, keeping
    /// why this one failed.
    pub async fn retry_later(
        &self,
        id: i64,
        owner: &str,
        next_attempt_at: i64,
        reason: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE replication_tasks SET attempts = attempts + 1, next_attempt_at = $1, \
             failure_reason = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5",
        )
        .bind(next_attempt_at)
        .bind(reason)
        .bind(now_millis())
        .bind(id)
        .bind(owner)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// The tasks of one image (every tag and destination), oldest first.
    pub async fn tasks_of_image(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<ReplicationTask>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM replication_tasks WHERE repository = $1 AND digest = $2 \
             ORDER BY id"
        ))
        .bind(repository)
        .bind(digest)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(task_row).collect()
    }

    /// Tasks not `COMPLETE` (waiting, being sent, or failed), oldest first, after task id
    /// `after`; at most `limit`.
    pub async fn open_tasks(&self, after: i64, limit: i64) -> Result<Vec<ReplicationTask>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM replication_tasks WHERE status <> $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(COMPLETE)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(task_row).collect()
    }

    /// Starts every `FAILED` task again (of one repository, and one image, when named);
    /// returns how many.
    pub async fn retry_failed(
        &self,
        repository: Option<&str>,
        digest: Option<&str>,
    ) -> Result<u64> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE replication_tasks SET status = $1, attempts = 0, next_attempt_at = $2, \
             failure_code = NULL, failure_reason = NULL, updated_at = $2 \
             WHERE status = $3 AND ($4 = '' OR repository = $4) AND ($5 = '' OR digest = $5)",
        )
        .bind(IN_PROGRESS)
        .bind(now)
        .bind(FAILED)
        .bind(repository.unwrap_or(""))
        .bind(digest.unwrap_or(""))
        .execute(&self.meta.write)
        .await?
        .rows_affected();
        Ok(done)
    }
}
