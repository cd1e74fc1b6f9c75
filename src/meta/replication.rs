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
/// A task that sends an image (and its tag).
pub const PUSH: &str = "push";
/// A task that deletes a tag (or the manifest, when the tag is empty) at the destination.
pub const DELETE: &str = "delete";

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
    /// A `[[replication.targets]]` name; empty for a registry by id and region.
    pub target: String,
    /// [`PUSH`] or [`DELETE`].
    pub action: String,
    pub status: String,
    pub attempts: i64,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    /// When the task was written or last restarted (a push of the same image, a retry): the
    /// retry window runs from here.
    pub created_at: i64,
    pub updated_at: i64,
}

const TASK_COLUMNS: &str = "id, repository, digest, tag, registry_id, region, target, action, \
    status, attempts, failure_code, failure_reason, created_at, updated_at";

fn task_row(row: &AnyRow) -> Result<ReplicationTask> {
    Ok(ReplicationTask {
        id: row.try_get("id")?,
        repository: row.try_get("repository")?,
        digest: row.try_get("digest")?,
        tag: row.try_get("tag")?,
        registry_id: row.try_get("registry_id")?,
        region: row.try_get("region")?,
        target: row.try_get("target")?,
        action: row.try_get("action")?,
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

/// Writes (or restarts) the tasks of a pushed manifest, one per (tag, destination) pair (the
/// empty tag for a push by digest), inside the push's transaction: the push and its
/// replication commit together or not at all.
pub(super) async fn enqueue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository: &str,
    digest: &str,
    action: &str,
    targets: &[(String, ReplicationDestination)],
) -> Result<()> {
    for (tag, destination) in targets {
        insert_task(tx, repository, digest, tag, destination, action, true).await?;
    }
    Ok(())
}

/// Writes one task, due now. An existing one is restarted when `restart` (a new push of the
/// same image), else left as it is (a backfill); true when a row was written.
async fn insert_task(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository: &str,
    digest: &str,
    tag: &str,
    destination: &ReplicationDestination,
    action: &str,
    restart: bool,
) -> Result<bool> {
    let on_conflict = if restart {
        "DO UPDATE SET status = excluded.status, attempts = 0, \
         next_attempt_at = excluded.next_attempt_at, failure_code = NULL, failure_reason = NULL, \
         created_at = excluded.created_at, updated_at = excluded.updated_at"
    } else {
        "DO NOTHING"
    };
    let written = sqlx::query(&format!(
        "INSERT INTO replication_tasks (repository, digest, tag, registry_id, region, target, \
         action, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, $9) \
         ON CONFLICT (repository, digest, tag, registry_id, region, target, action) {on_conflict}"
    ))
    .bind(repository)
    .bind(digest)
    .bind(tag)
    .bind(&destination.registry_id)
    .bind(&destination.region)
    .bind(destination.target.as_deref().unwrap_or(""))
    .bind(action)
    .bind(IN_PROGRESS)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// The name of repository `id`, inside a transaction (tasks name repositories by name).
pub(super) async fn repository_name_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<String> {
    Ok(sqlx::query("SELECT name FROM repositories WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("name")?)
}

impl Replication {
    /// What a backfill of `repository` sends: every tag with its image, and every referrer
    /// (by digest), as (digest, tag or empty, is a referrer).
    pub async fn backfill_candidates(
        &self,
        repository: &str,
    ) -> Result<Vec<(String, String, bool)>> {
        let rows = sqlx::query(
            "SELECT m.digest, t.name AS tag, m.subject_digest FROM tags t \
             JOIN manifests m ON m.id = t.manifest_id JOIN repositories r ON r.id = t.repository_id \
             WHERE r.name = $1 \
             UNION ALL \
             SELECT m.digest, '' AS tag, m.subject_digest FROM manifests m \
             JOIN repositories r ON r.id = m.repository_id \
             WHERE r.name = $1 AND m.subject_digest IS NOT NULL",
        )
        .bind(repository)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("digest")?,
                    r.try_get("tag")?,
                    r.try_get::<Option<String>, _>("subject_digest")?.is_some(),
                ))
            })
            .collect()
    }

    /// Writes backfill tasks: (digest, tag, destination) of `repository` that have no task yet
    /// (an image already replicated, or on its way, is left alone). How many were written.
    pub async fn enqueue_missing(
        &self,
        repository: &str,
        tasks: &[(String, String, ReplicationDestination)],
    ) -> Result<u64> {
        let mut written = 0;
        let mut tx = self.meta.write.begin().await?;
        for (digest, tag, destination) in tasks {
            if insert_task(&mut tx, repository, digest, tag, destination, PUSH, false).await? {
                written += 1;
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    /// How many tasks are open (waiting or being sent) and how many failed.
    pub async fn counts(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN status = $1 THEN 1 ELSE 0 END), 0) AS open, \
             COALESCE(SUM(CASE WHEN status = $2 THEN 1 ELSE 0 END), 0) AS failed \
             FROM replication_tasks",
        )
        .bind(IN_PROGRESS)
        .bind(FAILED)
        .fetch_one(&self.meta.read)
        .await?;
        Ok((row.try_get("open")?, row.try_get("failed")?))
    }

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
    /// `owner` until `lease_until`. A lease is free once it expired, or at once when its holder's
    /// heartbeat (see `leases`) is older than [`super::HEARTBEAT_TIMEOUT`] or gone (it stopped,
    /// or died): a replica that crashed mid-send holds its tasks up for a heartbeat timeout,
    /// not a whole lease. Two replicas never hold one task: the lease is taken with a
    /// conditional update, and a task another replica took in between is skipped.
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ReplicationTask>> {
        let now = now_millis();
        let stale = now - super::HEARTBEAT_TIMEOUT.as_millis() as i64;
        const FREE: &str = "(lease_until IS NULL OR lease_until < $2 OR (lease_owner <> $3 \
             AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = lease_owner \
             AND r.heartbeat_at >= $4)))";
        let candidates = sqlx::query(&format!(
            "SELECT id FROM replication_tasks WHERE status = $1 AND next_attempt_at <= $2 \
             AND {FREE} ORDER BY next_attempt_at, id LIMIT $5"
        ))
        .bind(IN_PROGRESS)
        .bind(now)
        .bind(owner)
        .bind(stale)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        let mut claimed = Vec::new();
        for row in candidates {
            let id: i64 = row.try_get("id")?;
            let taken = sqlx::query(&format!(
                "UPDATE replication_tasks SET lease_owner = $3, lease_until = $5 \
                 WHERE id = $6 AND status = $1 AND {FREE}"
            ))
            .bind(IN_PROGRESS)
            .bind(now)
            .bind(owner)
            .bind(stale)
            .bind(lease_until)
            .bind(id)
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
    /// Records the outcome as an `ECR Replication Action` event in the same transaction.
    pub async fn finish(
        &self,
        task: &ReplicationTask,
        owner: &str,
        failure: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut tx = self.meta.write.begin().await?;
        let updated = sqlx::query(
            "UPDATE replication_tasks SET status = $1, failure_code = $2, failure_reason = $3, \
             attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, updated_at = $4 \
             WHERE id = $5 AND lease_owner = $6",
        )
        .bind(if failure.is_some() { FAILED } else { COMPLETE })
        .bind(failure.map(|f| f.0))
        .bind(failure.map(|f| f.1))
        .bind(now_millis())
        .bind(task.id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            let mut detail = serde_json::json!({
                "result": if failure.is_some() { "FAILURE" } else { "SUCCESS" },
                "repository-name": task.repository,
                "image-digest": task.digest,
                "action-type": if task.action == DELETE { "DELETE" } else { "REPLICATE" },
                "destination-account": task.registry_id,
                "destination-region": task.region,
            });
            if !task.tag.is_empty() {
                detail["image-tag"] = task.tag.as_str().into();
            }
            if !task.target.is_empty() {
                detail["destination-target"] = task.target.as_str().into();
            }
            if let Some((code, reason)) = failure {
                detail["failure-code"] = code.into();
                detail["failure-reason"] = reason.into();
            }
            super::events::record_in(
                &mut tx,
                &super::events::NewEvent {
                    detail_type: super::events::REPLICATION_ACTION,
                    repository: task.repository.clone(),
                    detail,
                },
            )
            .await?;
        }
        tx.commit().await?;
        self.meta.events_recorded();
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
             AND action = 'push' ORDER BY id"
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

    /// Starts every `FAILED` task again (of one repository, and one image, when named), with a
    /// fresh retry window (measured from `created_at`); returns how many.
    pub async fn retry_failed(
        &self,
        repository: Option<&str>,
        digest: Option<&str>,
    ) -> Result<u64> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE replication_tasks SET status = $1, attempts = 0, next_attempt_at = $2, \
             failure_code = NULL, failure_reason = NULL, created_at = $2, updated_at = $2 \
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
