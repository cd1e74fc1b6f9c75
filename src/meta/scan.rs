//! Image scan jobs and their findings (see `migrations/*/0009_scans.sql`). Jobs are queued inside
//! the transaction that stores an image manifest when its repository scans on push, or by a
//! manual scan. Workers take one due job per transaction (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, like the GC queues), push its `next_attempt_at` past their timeout (a lease) and
//! bump `attempts`; the result is written only by the attempt that took the job.

use super::Scans;
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;

use super::images::{placeholders, IN_BATCH};
use super::now_millis;
use crate::error::Result;
use crate::policy::scanning::{PullGate, RegistryScanningConfiguration};

/// Media types of single-platform images that Trivy can scan.
pub const SCANNABLE_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Config media types of container images (a manifest's artifact type defaults to its config's
/// media type; other artifact types are not images).
pub const IMAGE_CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Whether a manifest is a container image that a scan can read.
pub fn is_scannable(media_type: &str, artifact_type: Option<&str>) -> bool {
    SCANNABLE_MEDIA_TYPES.contains(&media_type)
        && artifact_type.map_or(true, |a| IMAGE_CONFIG_MEDIA_TYPES.contains(&a))
}

/// A job a worker took.
#[derive(Debug, Clone)]
pub struct ScanJob {
    pub manifest_id: i64,
    pub repository: String,
    pub digest: String,
    pub attempts: i64,
    /// When this attempt took the job; with `attempts`, it fences the attempt's result (a manual
    /// re-queue resets `attempts`).
    pub started_at: i64,
}

/// The scan state of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanState {
    pub manifest_id: i64,
    pub status: String,
    pub description: String,
    pub attempts: i64,
    pub completed_at: Option<i64>,
    pub vulnerability_source_updated_at: Option<i64>,
}

/// One finding, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    pub severity: String,
    pub name: String,
    pub package_name: Option<String>,
    pub package_version: Option<String>,
    pub fixed_version: Option<String>,
    pub uri: Option<String>,
    pub description: Option<String>,
    /// `(key, value)` pairs.
    pub attributes: Vec<(String, String)>,
}

/// How a scan attempt ended.
#[derive(Debug, Clone)]
pub enum ScanOutcome {
    Complete {
        findings: Vec<Finding>,
        vulnerability_source_updated_at: Option<i64>,
    },
    /// Failed; retried at `retry_at` when set, otherwise final.
    Failed {
        reason: String,
        retry_at: Option<i64>,
    },
    Unsupported(String),
}

/// Queues a scan of a manifest. With `restart`, a finished scan is queued again (a manual scan);
/// otherwise an existing job is left as it is (a re-push of the same digest).
pub(crate) async fn queue_in(
    tx: &mut Transaction<'_, Any>,
    manifest_id: i64,
    repository_id: i64,
    restart: bool,
) -> Result<()> {
    let now = now_millis();
    let conflict = if restart {
        "DO UPDATE SET status = 'IN_PROGRESS', description = excluded.description, attempts = 0, \
         next_attempt_at = excluded.next_attempt_at, queued_at = excluded.queued_at, \
         started_at = NULL, completed_at = NULL"
    } else {
        "DO NOTHING"
    };
    sqlx::query(&format!(
        "INSERT INTO scan_jobs (manifest_id, repository_id, status, description, attempts, \
         next_attempt_at, queued_at) VALUES ($1, $2, 'IN_PROGRESS', 'queued', 0, $3, $3) \
         ON CONFLICT (manifest_id) {conflict}"
    ))
    .bind(manifest_id)
    .bind(repository_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `settings` row holding ECR's registry scanning configuration (JSON).
pub const REGISTRY_SCANNING_SETTING: &str = "registry_scanning";

/// Whether pushes to the repository scan: its own flag, or a registry rule matching its name
/// (read inside the manifest's transaction).
pub(crate) async fn scan_on_push_in(
    tx: &mut Transaction<'_, Any>,
    repository_id: i64,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT r.name, s.scan_on_push, \
         (SELECT value FROM settings WHERE name = $2) AS registry_scanning \
         FROM repositories r LEFT JOIN repository_scanning s ON s.repository_id = r.id \
         WHERE r.id = $1",
    )
    .bind(repository_id)
    .bind(REGISTRY_SCANNING_SETTING)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    if row.try_get::<Option<i64>, _>("scan_on_push")?.unwrap_or(0) != 0 {
        return Ok(true);
    }
    let name: String = row.try_get("name")?;
    Ok(row
        .try_get::<Option<String>, _>("registry_scanning")?
        .and_then(|json| serde_json::from_str::<RegistryScanningConfiguration>(&json).ok())
        .is_some_and(|c| c.scans_on_push(&name)))
}

/// Queues the image manifests among an index's children (existing jobs are left alone).
pub(crate) async fn queue_children_in(
    tx: &mut Transaction<'_, Any>,
    repository_id: i64,
    children: &[String],
) -> Result<()> {
    for batch in children.chunks(500) {
        let placeholders = (0..batch.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id, media_type, artifact_type FROM manifests \
             WHERE repository_id = $1 AND digest IN ({placeholders})"
        );
        let mut query = sqlx::query(&sql).bind(repository_id);
        for d in batch {
            query = query.bind(d);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        for r in rows {
            let media_type: String = r.try_get("media_type")?;
            let artifact_type: Option<String> = r.try_get("artifact_type")?;
            if is_scannable(&media_type, artifact_type.as_deref()) {
                queue_in(tx, r.try_get("id")?, repository_id, false).await?;
            }
        }
    }
    Ok(())
}

impl Scans {
    /// Sets a repository's scan-on-push flag.
    pub async fn set_scan_on_push(&self, repository_id: i64, on: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO repository_scanning (repository_id, scan_on_push, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (repository_id) DO UPDATE SET \
             scan_on_push = excluded.scan_on_push, updated_at = excluded.updated_at",
        )
        .bind(repository_id)
        .bind(i64::from(on))
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// A repository's scan-on-push flag (off without a row).
    pub async fn scan_on_push(&self, repository_id: i64) -> Result<bool> {
        let row =
            sqlx::query("SELECT scan_on_push FROM repository_scanning WHERE repository_id = $1")
                .bind(repository_id)
                .fetch_optional(&self.meta.read)
                .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("scan_on_push")? != 0,
            None => false,
        })
    }

    /// Queues (or re-queues) a scan of one manifest of a repository; false if there is no such
    /// manifest.
    pub async fn queue_scan(&self, repository_id: i64, digest: &str) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repository_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        queue_in(&mut tx, row.try_get("id")?, repository_id, true).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the most overdue job, leasing it until `lease_until`. One job per transaction;
    /// replicas on PostgreSQL skip each other's locked rows.
    pub async fn take_scan_job(&self, now: i64, lease_until: i64) -> Result<Option<ScanJob>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE scan_jobs SET attempts = attempts + 1, next_attempt_at = $2, started_at = $1, \
             description = 'scanning' WHERE manifest_id = (SELECT manifest_id FROM scan_jobs \
             WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT 1{}) \
             RETURNING manifest_id, attempts",
            self.meta.dialect.lock("FOR UPDATE SKIP LOCKED")
        ))
        .bind(now)
        .bind(lease_until)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let manifest_id: i64 = row.try_get("manifest_id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let names = sqlx::query(
            "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id \
             WHERE m.id = $1",
        )
        .bind(manifest_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ScanJob {
            manifest_id,
            repository: names.try_get("name")?,
            digest: names.try_get("digest")?,
            attempts,
            started_at: now,
        }))
    }

    /// Records how an attempt ended; false (and nothing written) if the job was re-queued or
    /// taken again meanwhile.
    pub async fn finish_scan(&self, job: &ScanJob, outcome: &ScanOutcome) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.meta.write.begin().await?;
        let (status, description, retry_at, vsu) = match outcome {
            ScanOutcome::Complete {
                vulnerability_source_updated_at,
                ..
            } => (
                "COMPLETE",
                "The scan was completed successfully.".to_owned(),
                None,
                *vulnerability_source_updated_at,
            ),
            ScanOutcome::Failed {
                reason,
                retry_at: Some(at),
            } => (
                "IN_PROGRESS",
                format!("retrying after: {reason}"),
                Some(*at),
                None,
            ),
            ScanOutcome::Failed {
                reason,
                retry_at: None,
            } => ("FAILED", reason.clone(), None, None),
            ScanOutcome::Unsupported(reason) => ("UNSUPPORTED_IMAGE", reason.clone(), None, None),
        };
        let updated = sqlx::query(
            "UPDATE scan_jobs SET status = $3, description = $4, next_attempt_at = $5, \
             completed_at = $6, vulnerability_source_updated_at = $7, \
             findings_at = CASE WHEN $3 = 'COMPLETE' THEN $6 ELSE findings_at END \
             WHERE manifest_id = $1 AND attempts = $2 AND started_at = $8 AND status = 'IN_PROGRESS'",
        )
        .bind(job.manifest_id)
        .bind(job.attempts)
        .bind(status)
        .bind(description)
        .bind(retry_at)
        .bind(retry_at.is_none().then_some(now))
        .bind(vsu)
        .bind(job.started_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        if let ScanOutcome::Complete { findings, .. } = outcome {
            sqlx::query("DELETE FROM scan_findings WHERE manifest_id = $1")
                .bind(job.manifest_id)
                .execute(&mut *tx)
                .await?;
            for (seq, f) in findings.iter().enumerate() {
                let attributes = serde_json::Value::Array(
                    f.attributes
                        .iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect(),
                );
                sqlx::query(
                    "INSERT INTO scan_findings (manifest_id, seq, severity, name, package_name, \
                     package_version, fixed_version, uri, description, attributes) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(job.manifest_id)
                .bind(seq as i64)
                .bind(&f.severity)
                .bind(&f.name)
                .bind(f.package_name.as_deref())
                .bind(f.package_version.as_deref())
                .bind(f.fixed_version.as_deref())
                .bind(f.uri.as_deref())
                .bind(f.description.as_deref())
                .bind(attributes.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        if retry_at.is_none() {
            scan_event_in(&mut tx, job, status, outcome).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The scan state of an image, if it was ever queued.
    pub async fn scan_state(&self, repository_id: i64, digest: &str) -> Result<Option<ScanState>> {
        let row = sqlx::query(
            "SELECT j.manifest_id, j.status, j.description, j.attempts, j.completed_at, \
             j.vulnerability_source_updated_at FROM scan_jobs j JOIN manifests m ON m.id = j.manifest_id \
             WHERE m.repository_id = $1 AND m.digest = $2",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(&self.meta.read)
        .await?;
        row.as_ref().map(scan_state_row).transpose()
    }

    /// The scan states of the manifests `manifest_ids` that have one, with the severity counts
    /// of the completed ones: a listing's page in two statements per batch, not two per image.
    pub async fn scan_summaries(
        &self,
        manifest_ids: &[i64],
    ) -> Result<HashMap<i64, (ScanState, Vec<(String, i64)>)>> {
        let mut summaries = HashMap::new();
        for batch in manifest_ids.chunks(IN_BATCH) {
            let list = placeholders(1, batch.len());
            let sql = format!(
                "SELECT manifest_id, status, description, attempts, completed_at, \
                 vulnerability_source_updated_at FROM scan_jobs WHERE manifest_id IN ({list})"
            );
            let mut query = sqlx::query(&sql);
            for id in batch {
                query = query.bind(*id);
            }
            let mut complete = Vec::new();
            for r in query.fetch_all(&self.meta.read).await? {
                let state = scan_state_row(&r)?;
                if state.status == "COMPLETE" {
                    complete.push(state.manifest_id);
                }
                summaries.insert(state.manifest_id, (state, Vec::new()));
            }
            if complete.is_empty() {
                continue;
            }
            let list = placeholders(1, complete.len());
            let sql = format!(
                "SELECT manifest_id, severity, COUNT(*) AS n FROM scan_findings \
                 WHERE manifest_id IN ({list}) GROUP BY manifest_id, severity \
                 ORDER BY manifest_id, severity"
            );
            let mut query = sqlx::query(&sql);
            for id in &complete {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.meta.read).await? {
                let id: i64 = r.try_get("manifest_id")?;
                if let Some((_, counts)) = summaries.get_mut(&id) {
                    counts.push((r.try_get("severity")?, r.try_get("n")?));
                }
            }
        }
        Ok(summaries)
    }

    /// Findings after `after_seq` (exclusive), at most `limit`, with their sequence numbers;
    /// only those of `severity` when given.
    pub async fn scan_findings(
        &self,
        manifest_id: i64,
        after_seq: i64,
        severity: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(i64, Finding)>> {
        let rows = sqlx::query(
            "SELECT seq, severity, name, package_name, package_version, fixed_version, uri, \
             description, attributes FROM scan_findings WHERE manifest_id = $1 AND seq > $2 \
             AND ($3 = '' OR severity = $3) ORDER BY seq LIMIT $4",
        )
        .bind(manifest_id)
        .bind(after_seq)
        .bind(severity.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                let attributes: String = r.try_get("attributes")?;
                let attributes: Vec<serde_json::Value> =
                    serde_json::from_str(&attributes).unwrap_or_default();
                Ok((
                    r.try_get("seq")?,
                    Finding {
                        severity: r.try_get("severity")?,
                        name: r.try_get("name")?,
                        package_name: r.try_get("package_name")?,
                        package_version: r.try_get("package_version")?,
                        fixed_version: r.try_get("fixed_version")?,
                        uri: r.try_get("uri")?,
                        description: r.try_get("description")?,
                        attributes: attributes
                            .iter()
                            .map(|a| {
                                let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                                (s("key"), s("value"))
                            })
                            .collect(),
                    },
                ))
            })
            .collect()
    }

    /// Findings per severity.
    pub async fn scan_severity_counts(&self, manifest_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT severity, COUNT(*) AS n FROM scan_findings WHERE manifest_id = $1 \
             GROUP BY severity ORDER BY severity",
        )
        .bind(manifest_id)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("severity")?, r.try_get("n")?)))
            .collect()
    }

    /// ECR's registry scanning configuration (the default, no rules, if never set).
    pub async fn registry_scanning(&self) -> Result<RegistryScanningConfiguration> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(REGISTRY_SCANNING_SETTING)
            .fetch_optional(&self.meta.read)
            .await?;
        Ok(match row {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("value")?)
                .map_err(crate::error::Error::internal)?,
            None => RegistryScanningConfiguration::default(),
        })
    }

    /// Replaces the registry scanning configuration (validated by the caller).
    pub async fn put_registry_scanning(
        &self,
        config: &RegistryScanningConfiguration,
    ) -> Result<()> {
        let value = serde_json::to_string(config).map_err(crate::error::Error::internal)?;
        self.meta
            .identity()
            .put_setting(REGISTRY_SCANNING_SETTING, &value)
            .await
    }

    /// A repository's pull gate, if it has one.
    pub async fn pull_gate(&self, repository_id: i64) -> Result<Option<PullGate>> {
        let row = sqlx::query(
            "SELECT severity_threshold, allowlist, allow_unscanned FROM repository_pull_gates \
             WHERE repository_id = $1",
        )
        .bind(repository_id)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| {
            let allowlist: String = r.try_get("allowlist")?;
            Ok(PullGate {
                severity_threshold: r.try_get("severity_threshold")?,
                allowlist: serde_json::from_str(&allowlist).unwrap_or_default(),
                allow_unscanned: r.try_get::<i64, _>("allow_unscanned")? != 0,
            })
        })
        .transpose()
    }

    /// Sets (or with `None` removes) a repository's pull gate; false if it had none to remove.
    pub async fn set_pull_gate(&self, repository_id: i64, gate: Option<&PullGate>) -> Result<bool> {
        let done = match gate {
            Some(g) => sqlx::query(
                "INSERT INTO repository_pull_gates (repository_id, severity_threshold, allowlist, \
                 allow_unscanned, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (repository_id) DO UPDATE SET \
                 severity_threshold = excluded.severity_threshold, allowlist = excluded.allowlist, \
                 allow_unscanned = excluded.allow_unscanned, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(&g.severity_threshold)
            .bind(serde_json::to_string(&g.allowlist).map_err(crate::error::Error::internal)?)
            .bind(i64::from(g.allow_unscanned))
            .bind(now_millis())
            .execute(&self.meta.write)
            .await?,
            None => {
                sqlx::query("DELETE FROM repository_pull_gates WHERE repository_id = $1")
                    .bind(repository_id)
                    .execute(&self.meta.write)
                    .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }

    /// What the pull gate needs about one manifest: its scan status and description, and
    /// `(severity, name)` of its findings of the given severities. An image with findings from a
    /// complete scan counts as `COMPLETE` while a rescan runs or after a rescan failed: it is
    /// judged by its last complete scan.
    pub async fn gate_facts(
        &self,
        manifest_id: i64,
        severities: &[&str],
    ) -> Result<(Option<(String, String)>, Vec<(String, String)>)> {
        let status = sqlx::query(
            "SELECT status, description, findings_at FROM scan_jobs WHERE manifest_id = $1",
        )
        .bind(manifest_id)
        .fetch_optional(&self.meta.read)
        .await?
        .map(|r| -> Result<(String, String)> {
            let complete = r.try_get::<Option<i64>, _>("findings_at")?.is_some();
            let status: String = r.try_get("status")?;
            Ok((
                if complete { "COMPLETE".into() } else { status },
                r.try_get("description")?,
            ))
        })
        .transpose()?;
        if status.as_ref().map(|(s, _)| s.as_str()) != Some("COMPLETE") || severities.is_empty() {
            return Ok((status, Vec::new()));
        }
        let placeholders = (0..severities.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT severity, name FROM scan_findings WHERE manifest_id = $1 \
             AND severity IN ({placeholders}) ORDER BY seq"
        );
        let mut query = sqlx::query(&sql).bind(manifest_id);
        for s in severities {
            query = query.bind(*s);
        }
        let findings = query
            .fetch_all(&self.meta.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("severity")?, r.try_get("name")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((status, findings))
    }
}

/// Writes the scan-completed event (ECR's `ECR Image Scan` detail) in the result's transaction.
async fn scan_event_in(
    tx: &mut Transaction<'_, Any>,
    job: &ScanJob,
    status: &str,
    outcome: &ScanOutcome,
) -> Result<()> {
    let tags: Vec<String> =
        sqlx::query("SELECT name FROM tags WHERE manifest_id = $1 ORDER BY name")
            .bind(job.manifest_id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<std::result::Result<_, _>>()?;
    let mut detail = serde_json::json!({
        "scan-status": status,
        "repository-name": job.repository,
        "image-digest": job.digest,
        "image-tags": tags,
    });
    match outcome {
        ScanOutcome::Complete { findings, .. } => {
            let mut counts = serde_json::Map::new();
            for f in findings {
                let n = counts
                    .entry(f.severity.clone())
                    .or_insert(serde_json::json!(0));
                *n = serde_json::json!(n.as_i64().unwrap_or(0) + 1);
            }
            detail["finding-severity-counts"] = serde_json::Value::Object(counts);
        }
        ScanOutcome::Failed { reason, .. } | ScanOutcome::Unsupported(reason) => {
            detail["scan-status-description"] = serde_json::json!(reason);
        }
    }
    super::events::record_in(
        tx,
        &super::events::NewEvent {
            detail_type: super::events::IMAGE_SCAN,
            repository: job.repository.clone(),
            detail,
        },
    )
    .await
}

/// A `scan_jobs` row selected as `manifest_id, status, description, attempts, completed_at,
/// vulnerability_source_updated_at`.
fn scan_state_row(r: &sqlx::any::AnyRow) -> Result<ScanState> {
    Ok(ScanState {
        manifest_id: r.try_get("manifest_id")?,
        status: r.try_get("status")?,
        description: r.try_get("description")?,
        attempts: r.try_get("attempts")?,
        completed_at: r.try_get("completed_at")?,
        vulnerability_source_updated_at: r.try_get("vulnerability_source_updated_at")?,
    })
}
