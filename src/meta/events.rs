//! The event outbox and its deliveries: events recorded in the transaction of the change they
//! report, event rules (their targets sealed with the secrets key), the hand-over of recorded
//! events to the targets of the rules they match, and each delivery's retries, dead letter,
//! redrive and pruning.

use super::*;
use sqlx::{Any, Transaction};

/// EventBridge's detail-type of image pushes and deletes.
pub const IMAGE_ACTION: &str = "ECR Image Action";
/// A referrer (a signature, an SBOM: a manifest with a subject) pushed or deleted.
pub const REFERRER_ACTION: &str = "ECR Referrer Action";
/// A scan finished (see `scan`).
pub const IMAGE_SCAN: &str = "ECR Image Scan";
/// A pull-through cache stored an image from its upstream.
pub const PULL_THROUGH_CACHE_ACTION: &str = "ECR Pull Through Cache Action";
/// An image sent to (or deleted at) one replication destination, or given up on.
pub const REPLICATION_ACTION: &str = "ECR Replication Action";
/// Berth's own: a push moved a tag from one image to another.
pub const TAG_MOVED: &str = "Berth Tag Moved";
/// Berth's own: a repository policy, lifecycle policy or tag immutability setting changed.
pub const SETTING_CHANGE: &str = "Berth Repository Setting Change";

/// A delivery waiting for its (next) attempt.
pub const PENDING: &str = "pending";
/// A delivery the target acknowledged.
pub const DELIVERED: &str = "delivered";
/// A delivery that failed for longer than the retry window.
pub const DEAD: &str = "dead";

/// One event to record: its detail-type, the repository it concerns (empty for the registry)
/// and EventBridge's `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub detail_type: &'static str,
    pub repository: String,
    pub detail: serde_json::Value,
}

/// Why an image was deleted: ECR's `ECR Image Action` DELETE says nothing of it; Berth adds
/// `cause` to the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteCause {
    /// A client's DELETE or BatchDeleteImage.
    Api,
    /// A lifecycle policy rule expired it.
    Lifecycle,
    /// A pull-through cache's size quota evicted it.
    PullThroughQuota,
}

impl DeleteCause {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteCause::Api => "API",
            DeleteCause::Lifecycle => "LIFECYCLE",
            DeleteCause::PullThroughQuota => "PULL_THROUGH_QUOTA",
        }
    }
}

/// Records `event` inside `tx`, so it exists exactly when the change it reports commits.
pub(super) async fn record_in(tx: &mut Transaction<'_, Any>, event: &NewEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (kind, detail, created_at, repository, event_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.detail_type)
    .bind(event.detail.to_string())
    .bind(now_millis())
    .bind(&event.repository)
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An image deleted from `repository` (`tag` empty: the manifest itself, untagged).
pub(super) fn image_deleted(
    repository: &str,
    digest: &str,
    tag: &str,
    referrer: bool,
    cause: DeleteCause,
) -> NewEvent {
    let mut detail = serde_json::json!({
        "result": "SUCCESS",
        "repository-name": repository,
        "image-digest": digest,
        "action-type": "DELETE",
        "cause": cause.as_str(),
    });
    if !tag.is_empty() {
        detail["image-tag"] = tag.into();
    }
    NewEvent {
        detail_type: if referrer {
            REFERRER_ACTION
        } else {
            IMAGE_ACTION
        },
        repository: repository.to_owned(),
        detail,
    }
}

/// Records a DELETE per tag of `digest` in `tags` (one without a tag when there are none).
pub(super) async fn record_deletes_in(
    tx: &mut Transaction<'_, Any>,
    repository: &str,
    digest: &str,
    tags: &[String],
    referrer: bool,
    cause: DeleteCause,
) -> Result<()> {
    if tags.is_empty() {
        return record_in(tx, &image_deleted(repository, digest, "", referrer, cause)).await;
    }
    for tag in tags {
        record_in(tx, &image_deleted(repository, digest, tag, referrer, cause)).await?;
    }
    Ok(())
}

/// A repository setting changed: `resource_type` is `REPOSITORY_POLICY`, `LIFECYCLE_POLICY` or
/// `IMAGE_TAG_MUTABILITY`, `action_type` `PUT` or `DELETE`.
pub(super) fn setting_changed(
    repository: &str,
    resource_type: &str,
    action_type: &str,
    value: Option<serde_json::Value>,
) -> NewEvent {
    let mut detail = serde_json::json!({
        "repository-name": repository,
        "resource-type": resource_type,
        "action-type": action_type,
    });
    if let Some(value) = value {
        detail["value"] = value;
    }
    NewEvent {
        detail_type: SETTING_CHANGE,
        repository: repository.to_owned(),
        detail,
    }
}

/// One recorded event handed to the targets it matched: `(rule, target id)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    pub event: i64,
    pub repository: String,
    pub targets: Vec<(String, String)>,
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: i64,
    /// The envelope's id (the same on every delivery of it).
    pub event_id: String,
    pub kind: String,
    pub repository: String,
    pub detail: serde_json::Value,
    pub created_at: i64,
    /// When it was handed to the targets of the rules it matched.
    pub delivered_at: Option<i64>,
}

const OUTBOX_COLUMNS: &str =
    "o.id, o.event_id, o.kind, o.repository, o.detail, o.created_at, o.delivered_at";

fn outbox_row(r: &AnyRow) -> Result<OutboxEvent> {
    let detail: String = r.try_get("detail")?;
    let id: i64 = r.try_get("id")?;
    let event_id: String = r.try_get("event_id")?;
    Ok(OutboxEvent {
        id,
        // Events recorded before event ids existed get a stable one from their row.
        event_id: if event_id.is_empty() {
            format!("00000000-0000-0000-0000-{id:012}")
        } else {
            event_id
        },
        kind: r.try_get("kind")?,
        repository: r.try_get("repository")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

fn pending_row(r: &AnyRow) -> Result<PendingDelivery> {
    Ok(PendingDelivery {
        id: r.try_get("delivery_id")?,
        attempts: r.try_get("attempts")?,
        window_start: r.try_get("window_start")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        event: outbox_row(r)?,
    })
}

/// An event rule as stored: its targets' JSON is opened (decrypted) on the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRuleRow {
    pub name: String,
    pub description: String,
    /// The event pattern's JSON.
    pub pattern: String,
    /// The targets' JSON (with their secrets).
    pub targets: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pending delivery with its event.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: i64,
    pub attempts: i64,
    pub window_start: i64,
    pub next_attempt_at: i64,
    pub event: OutboxEvent,
}

/// A dead letter: a delivery given up on, with its event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: i64,
    pub target: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: i64,
    pub event: OutboxEvent,
}

/// One target's deliveries by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub rule: String,
    pub target: String,
    pub delivered: i64,
    pub pending: i64,
    pub dead: i64,
    /// When the oldest pending delivery's event was recorded.
    pub oldest_pending_at: Option<i64>,
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Runs `sql` once per batch of `ids` (at most [`super::images::IN_BATCH`]): `{ids}` in it is
/// replaced by their placeholders, numbered after the `leading` parameters that `bind` binds.
/// The rows affected, in all.
async fn update_by_ids(
    conn: &mut sqlx::AnyConnection,
    sql: &str,
    leading: usize,
    ids: &[i64],
    bind: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Result<u64> {
    let mut total = 0;
    for batch in ids.chunks(super::images::IN_BATCH) {
        let sql = sql.replace(
            "{ids}",
            &super::images::placeholders(leading + 1, batch.len()),
        );
        let mut query = bind(sqlx::query(&sql));
        for id in batch {
            query = query.bind(*id);
        }
        total += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(total)
}

/// The sealing context of a rule's targets: a ciphertext copied to another rule does not open.
pub(super) fn targets_context(name: &str) -> String {
    format!("event_rules/{name}")
}

impl Events {
    /// Waits until this process commits recorded events, or `timeout`.
    pub async fn wait_for_recorded(&self, timeout: std::time::Duration) {
        self.meta.wait_for_events(timeout).await
    }

    /// Outbox records after `after_id`, oldest first, at most `limit`.
    pub async fn outbox_events(&self, after_id: i64, limit: i64) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.id > $1 ORDER BY o.id LIMIT $2"
        ))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    fn rule_row(&self, r: &AnyRow) -> Result<EventRuleRow> {
        let name: String = r.try_get("name")?;
        let sealed: String = r.try_get("targets")?;
        let targets = self
            .meta
            .secrets()?
            .open(&sealed, &targets_context(&name))
            .map_err(|e| Error::internal(format!("event rule {name}: {e}")))?;
        Ok(EventRuleRow {
            targets,
            description: r.try_get("description")?,
            pattern: r.try_get("pattern")?,
            enabled: r.try_get::<i64, _>("enabled")? != 0,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            name,
        })
    }

    /// Every rule, by name.
    pub async fn rules(&self) -> Result<Vec<EventRuleRow>> {
        let rows = sqlx::query("SELECT * FROM event_rules ORDER BY name")
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter().map(|r| self.rule_row(r)).collect()
    }

    pub async fn rule(&self, name: &str) -> Result<Option<EventRuleRow>> {
        let row = sqlx::query("SELECT * FROM event_rules WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.meta.read)
            .await?;
        row.as_ref().map(|r| self.rule_row(r)).transpose()
    }

    /// Creates a rule; false when one of that name exists.
    pub async fn create_rule(&self, rule: &EventRuleRow) -> Result<bool> {
        let now = now_millis();
        let written = sqlx::query(
            "INSERT INTO event_rules (name, description, pattern, targets, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&rule.name)
        .bind(&rule.description)
        .bind(&rule.pattern)
        .bind(self.meta.secrets()?.seal(&rule.targets, &targets_context(&rule.name)))
        .bind(i64::from(rule.enabled))
        .bind(now)
        .execute(&self.meta.write)
        .await?
        .rows_affected();
        Ok(written == 1)
    }

    /// Creates or replaces a rule; the deliveries of targets not in `target_ids` go with them.
    /// True when the rule was created.
    pub async fn put_rule(&self, rule: &EventRuleRow, target_ids: &[String]) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.meta.write.begin().await?;
        let existed = sqlx::query("SELECT 1 FROM event_rules WHERE name = $1")
            .bind(&rule.name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO event_rules (name, description, pattern, targets, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO UPDATE SET \
             description = excluded.description, pattern = excluded.pattern, \
             targets = excluded.targets, enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(&rule.name)
        .bind(&rule.description)
        .bind(&rule.pattern)
        .bind(self.meta.secrets()?.seal(&rule.targets, &targets_context(&rule.name)))
        .bind(i64::from(rule.enabled))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let stored: Vec<String> =
            sqlx::query("SELECT DISTINCT target FROM event_deliveries WHERE rule = $1")
                .bind(&rule.name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("target"))
                .collect::<std::result::Result<_, _>>()?;
        for gone in stored.iter().filter(|t| !target_ids.contains(t)) {
            sqlx::query("DELETE FROM event_deliveries WHERE rule = $1 AND target = $2")
                .bind(&rule.name)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(!existed)
    }

    /// Deletes a rule and its deliveries; false when there was none.
    pub async fn delete_rule(&self, name: &str) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        sqlx::query("DELETE FROM event_deliveries WHERE rule = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM event_rules WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Recorded events not yet handed to rules, oldest first. On PostgreSQL a transaction that
    /// took a lower id may commit later: it is simply found by a later call, never skipped.
    pub async fn undispatched(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.delivered_at IS NULL ORDER BY o.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Hands events over, in one transaction: for each event a pending delivery per
    /// `(rule, target)` it matched, and the event marked handed over. An event another process
    /// handed over meanwhile is left alone.
    pub async fn dispatch(&self, handed: &[HandOver]) -> Result<()> {
        let now = now_millis();
        let mut tx = self.meta.write.begin().await?;
        // Events no rule matched (all of them, with no rules) are marked in batches.
        let unmatched: Vec<i64> = handed
            .iter()
            .filter(|h| h.targets.is_empty())
            .map(|h| h.event)
            .collect();
        update_by_ids(
            &mut tx,
            "UPDATE outbox SET delivered_at = $1 WHERE delivered_at IS NULL AND id IN ({ids})",
            1,
            &unmatched,
            |q| q.bind(now),
        )
        .await?;
        for HandOver {
            event,
            repository,
            targets,
        } in handed.iter().filter(|h| !h.targets.is_empty())
        {
            let marked = sqlx::query(
                "UPDATE outbox SET delivered_at = $1 WHERE id = $2 AND delivered_at IS NULL",
            )
            .bind(now)
            .bind(event)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                continue;
            }
            for (rule, target) in targets {
                sqlx::query(
                    "INSERT INTO event_deliveries (event_id, rule, target, repository, state, \
                     window_start, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(event)
                .bind(rule)
                .bind(target)
                .bind(repository)
                .bind(PENDING)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The first pending delivery of each repository for one target, where that one is due at
    /// `now`, oldest first, at most `limit`: a delivery waiting for a retry holds back the later
    /// ones of its repository.
    pub async fn due_heads(
        &self,
        rule: &str,
        target: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>> {
        let rows = sqlx::query(&format!(
            "SELECT d.id AS delivery_id, d.attempts, d.window_start, d.next_attempt_at, {OUTBOX_COLUMNS} \
             FROM event_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.id IN (SELECT MIN(id) FROM event_deliveries WHERE rule = $1 AND target = $2 \
                            AND state = $3 GROUP BY repository) \
             AND d.next_attempt_at <= $4 ORDER BY d.id LIMIT $5"
        ))
        .bind(rule)
        .bind(target)
        .bind(PENDING)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(pending_row).collect()
    }

    /// One target's oldest pending deliveries, at most `limit`, oldest first. Every repository in
    /// it starts with its first pending delivery (the window holds the lowest ids).
    pub async fn pending_window(
        &self,
        rule: &str,
        target: &str,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>> {
        let rows = sqlx::query(&format!(
            "SELECT d.id AS delivery_id, d.attempts, d.window_start, d.next_attempt_at, {OUTBOX_COLUMNS} \
             FROM event_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.rule = $1 AND d.target = $2 AND d.state = $3 ORDER BY d.id LIMIT $4"
        ))
        .bind(rule)
        .bind(target)
        .bind(PENDING)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(pending_row).collect()
    }

    /// Deliveries the target acknowledged, in one statement per batch.
    pub async fn delivered_many(&self, ids: &[i64]) -> Result<()> {
        let now = now_millis();
        let mut conn = self.meta.write.acquire().await?;
        update_by_ids(
            &mut conn,
            "UPDATE event_deliveries SET state = $1, attempts = attempts + 1, finished_at = $2, \
             last_error = NULL WHERE state = $3 AND id IN ({ids})",
            3,
            ids,
            |q| q.bind(DELIVERED).bind(now).bind(PENDING),
        )
        .await?;
        Ok(())
    }

    /// When the first of one target's repository heads is next due (none pending: `None`).
    /// Only heads count: a later delivery held back by its head is not due before it.
    pub async fn next_attempt_at(&self, rule: &str, target: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS next FROM event_deliveries \
             WHERE id IN (SELECT MIN(id) FROM event_deliveries WHERE rule = $1 AND target = $2 \
                          AND state = $3 GROUP BY repository)",
        )
        .bind(rule)
        .bind(target)
        .bind(PENDING)
        .fetch_one(&self.meta.read)
        .await?;
        Ok(row.try_get("next")?)
    }

    /// A failed attempt: retried at `retry_at`, or dead-lettered when `None`.
    pub async fn failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "UPDATE event_deliveries SET state = $1, attempts = attempts + 1, last_error = $2, \
             next_attempt_at = $3, finished_at = $4 WHERE id = $5 AND state = $6",
        )
        .bind(if retry_at.is_some() { PENDING } else { DEAD })
        .bind(error)
        .bind(retry_at.unwrap_or(now))
        .bind(retry_at.map_or(Some(now), |_| None))
        .bind(id)
        .bind(PENDING)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Dead letters of a rule (of one target, if given) after delivery `after`, oldest first.
    pub async fn dead_letters(
        &self,
        rule: &str,
        target: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(&format!(
            "SELECT d.id AS delivery_id, d.target, d.attempts, d.last_error, d.finished_at, {OUTBOX_COLUMNS} \
             FROM event_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.rule = $1 AND ($2 = '' OR d.target = $2) AND d.state = $3 AND d.id > $4 \
             ORDER BY d.id LIMIT $5"
        ))
        .bind(rule)
        .bind(target.unwrap_or(""))
        .bind(DEAD)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("delivery_id")?,
                    target: r.try_get("target")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    failed_at: r.try_get::<Option<i64>, _>("finished_at")?.unwrap_or(0),
                    event: outbox_row(r)?,
                })
            })
            .collect()
    }

    /// Makes dead letters of a rule pending again (of one target, and only `ids`, if given),
    /// their retry window restarted; how many.
    pub async fn redrive(&self, rule: &str, target: Option<&str>, ids: &[i64]) -> Result<u64> {
        let now = now_millis();
        let base =
            "UPDATE event_deliveries SET state = $1, window_start = $2, next_attempt_at = $2, \
                    finished_at = NULL WHERE rule = $3 AND ($4 = '' OR target = $4) AND state = $5";
        if ids.is_empty() {
            return Ok(sqlx::query(base)
                .bind(PENDING)
                .bind(now)
                .bind(rule)
                .bind(target.unwrap_or(""))
                .bind(DEAD)
                .execute(&self.meta.write)
                .await?
                .rows_affected());
        }
        let (rule, target) = (rule.to_owned(), target.unwrap_or("").to_owned());
        let mut conn = self.meta.write.acquire().await?;
        update_by_ids(
            &mut conn,
            &format!("{base} AND id IN ({{ids}})"),
            5,
            ids,
            |q| {
                q.bind(PENDING)
                    .bind(now)
                    .bind(rule.clone())
                    .bind(target.clone())
                    .bind(DEAD)
            },
        )
        .await
    }

    /// Deliveries by target and state, of one rule or of all.
    pub async fn delivery_counts(&self, rule: Option<&str>) -> Result<Vec<DeliveryCounts>> {
        let rows = sqlx::query(
            "SELECT d.rule, d.target, d.state, COUNT(*) AS n, MIN(o.created_at) AS oldest \
             FROM event_deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE ($1 = '' OR d.rule = $1) GROUP BY d.rule, d.target, d.state ORDER BY d.rule, d.target",
        )
        .bind(rule.unwrap_or(""))
        .fetch_all(&self.meta.read)
        .await?;
        let mut out: Vec<DeliveryCounts> = Vec::new();
        for r in &rows {
            let rule: String = r.try_get("rule")?;
            let target: String = r.try_get("target")?;
            let state: String = r.try_get("state")?;
            let n: i64 = r.try_get("n")?;
            if !out
                .last()
                .is_some_and(|c| c.rule == rule && c.target == target)
            {
                out.push(DeliveryCounts {
                    rule: rule.clone(),
                    target: target.clone(),
                    ..DeliveryCounts::default()
                });
            }
            let Some(counts) = out.last_mut() else {
                continue;
            };
            match state.as_str() {
                PENDING => {
                    counts.pending = n;
                    counts.oldest_pending_at = r.try_get("oldest")?;
                }
                DELIVERED => counts.delivered = n,
                _ => counts.dead = n,
            }
        }
        Ok(out)
    }

    /// Deletes events recorded before `cutoff` that were handed over and have no pending
    /// delivery, with their deliveries (delivered and dead letters alike); how many.
    pub async fn prune(&self, cutoff: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.meta.write.begin().await?;
            let ids: Vec<i64> = sqlx::query(
                "SELECT id FROM outbox o WHERE o.created_at < $1 AND o.delivered_at IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM event_deliveries d WHERE d.event_id = o.id AND d.state = $2) \
                 ORDER BY id LIMIT 500",
            )
            .bind(cutoff)
            .bind(PENDING)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
            if ids.is_empty() {
                return Ok(total);
            }
            let placeholders = super::images::placeholders(1, ids.len());
            for table_column in ["event_deliveries WHERE event_id", "outbox WHERE id"] {
                let sql = format!("DELETE FROM {table_column} IN ({placeholders})");
                let mut query = sqlx::query(&sql);
                for id in &ids {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            total += ids.len() as u64;
        }
    }
}

/// A manifest a pull-through cache stored from its upstream: the rule that filled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFill {
    pub ecr_repository_prefix: String,
    pub upstream_registry_url: String,
}

/// What storing `m` with `tag` (none: by digest) reports: an image or referrer PUSH, or for a
/// cache fill the pull-through cache's action.
pub(super) fn manifest_stored(
    m: &NewManifest,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
) -> NewEvent {
    let mut detail = match &m.cache_fill {
        Some(fill) => serde_json::json!({
            "rule-version": "1",
            "sync-status": "SUCCESS",
            "ecr-repository-prefix": fill.ecr_repository_prefix,
            "repository-name": repository,
            "upstream-registry-url": fill.upstream_registry_url,
            "image-digest": digest,
        }),
        None => serde_json::json!({
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "manifest-media-type": m.media_type,
        }),
    };
    if let Some(tag) = tag {
        detail["image-tag"] = tag.into();
    }
    if m.cache_fill.is_none() {
        if let Some(artifact) = &m.artifact_type {
            detail["artifact-media-type"] = artifact.as_str().into();
        }
        if let Some(subject) = &m.subject {
            detail["subject-digest"] = subject.to_string().into();
        }
    }
    NewEvent {
        detail_type: match (&m.cache_fill, &m.subject) {
            (Some(_), _) => PULL_THROUGH_CACHE_ACTION,
            (None, Some(_)) => REFERRER_ACTION,
            (None, None) => IMAGE_ACTION,
        },
        repository: repository.to_owned(),
        detail,
    }
}

/// A push moved `tag` of `repository` from `from` to `to`.
pub(super) fn tag_moved(repository: &str, tag: &str, from: &str, to: &str) -> NewEvent {
    NewEvent {
        detail_type: TAG_MOVED,
        repository: repository.to_owned(),
        detail: serde_json::json!({
            "repository-name": repository,
            "image-tag": tag,
            "image-digest": to,
            "previous-image-digest": from,
        }),
    }
}
