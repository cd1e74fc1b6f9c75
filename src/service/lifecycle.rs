//! Lifecycle policies as use cases: store, read and delete a repository's policy, preview it
//! (saved or unsaved) and run it, and the last-pull tracking that `sinceImagePulled` needs.
//! Previews and runs share [`LifecycleService::lifecycle_evaluate`], so a preview shows exactly what a
//! run at the same moment would expire.
//!
//! A run deletes the expired images' tags at once (they answer 404 immediately) and their
//! manifest rows with their referrers and orphaned index children; blob bytes are left for
//! garbage collection. Tag immutability never blocks expiry. An image whose tags changed between
//! evaluation and expiry is left for the next pass.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::core::Core;
use crate::error::{Error, Result};
use crate::lifecycle::{evaluate, Evaluation, Image, LifecyclePolicy};
use crate::meta::{now_millis, ExpireOutcome, Lifecycle, LifecycleAuditRow, LifecyclePolicyRow};
use crate::oci::RepoName;

/// One image a preview or run expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleExpiry {
    pub digest: String,
    pub tags: Vec<String>,
    /// Unix milliseconds.
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    pub rule_priority: u32,
}

/// A preview: what the policy would expire now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePreview {
    pub repository: String,
    pub policy_text: String,
    /// Unix milliseconds of the evaluation.
    pub evaluated_at: i64,
    /// Oldest first.
    pub expiring: Vec<LifecycleExpiry>,
    pub summary: LifecycleSummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSummary {
    pub expiring_image_total_count: usize,
    pub evaluated_image_count: usize,
    /// Expiring images per rule priority.
    pub per_rule: BTreeMap<u32, usize>,
}

/// What a run did in one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRun {
    pub repository: String,
    pub evaluated_at: i64,
    pub expired: Vec<LifecycleExpiry>,
    /// Images left for the next pass because they changed since evaluation.
    pub skipped: usize,
    /// Referrers and index children removed with the expired images.
    pub removed: usize,
}

/// Manifests pulled since the last flush, by id (recorded in memory on the hot path).
#[derive(Default)]
pub struct PullTracker {
    pending: Mutex<HashSet<i64>>,
}

impl PullTracker {
    pub fn record(&self, manifest_id: i64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(manifest_id);
        }
    }

    fn take(&self) -> Vec<i64> {
        match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending).into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    fn put_back(&self, ids: Vec<i64>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(ids);
        }
    }
}

fn millis_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn parse_policy(text: &str) -> Result<LifecyclePolicy> {
    LifecyclePolicy::parse(text)
        .map_err(|e| Error::InvalidParameter(format!("Lifecycle policy validation failure: {e}")))
}

fn expiries(evaluation: &Evaluation) -> Vec<LifecycleExpiry> {
    evaluation
        .expiring
        .iter()
        .map(|e| LifecycleExpiry {
            digest: e.digest.clone(),
            tags: e.tags.clone(),
            pushed_at: e.pushed_at.timestamp_millis(),
            last_pulled_at: e.last_pulled_at.map(|t| t.timestamp_millis()),
            rule_priority: e.rule_priority,
        })
        .collect()
}

/// Lifecycle policies: stored, previewed, run (per repository and all), audited; and the pulls
/// their `sinceImagePulled` rules count.
#[derive(Clone)]
pub struct LifecycleService {
    core: Core,
    lifecycle: Lifecycle,
    pulls: Arc<PullTracker>,
}

impl LifecycleService {
    pub(super) fn new(
        core: Core,
        lifecycle: Lifecycle,
        pulls: Arc<PullTracker>,
    ) -> LifecycleService {
        LifecycleService {
            core,
            lifecycle,
            pulls,
        }
    }

    /// GetLifecyclePolicy: the stored text, if any.
    pub async fn lifecycle_policy(&self, name: &RepoName) -> Result<Option<LifecyclePolicyRow>> {
        let repo = self.core.repository(name).await?;
        self.lifecycle.lifecycle_policy(repo).await
    }

    /// PutLifecyclePolicy: validates and stores the text as sent.
    pub async fn put_lifecycle_policy(&self, name: &RepoName, text: &str) -> Result<()> {
        parse_policy(text)?;
        let repo = self.core.repository(name).await?;
        self.lifecycle.put_lifecycle_policy(repo, text).await
    }

    /// DeleteLifecyclePolicy: the deleted policy, if there was one.
    pub async fn delete_lifecycle_policy(
        &self,
        name: &RepoName,
    ) -> Result<Option<LifecyclePolicyRow>> {
        let repo = self.core.repository(name).await?;
        self.lifecycle.delete_lifecycle_policy(repo).await
    }

    /// The images `policy` expires in repository `repo` at `now`. Used by previews and runs.
    pub async fn lifecycle_evaluate(
        &self,
        repo: i64,
        policy: &LifecyclePolicy,
        now: DateTime<Utc>,
    ) -> Result<Evaluation> {
        let images: Vec<Image> = self
            .lifecycle
            .lifecycle_images(repo)
            .await?
            .into_iter()
            .map(|r| Image {
                digest: r.digest,
                tags: r.tags,
                pushed_at: millis_to_time(r.pushed_at),
                last_pulled_at: r.last_pulled_at.map(millis_to_time),
            })
            .collect();
        Ok(evaluate(policy, &images, now))
    }

    /// StartLifecyclePolicyPreview: evaluates `text` (or the saved policy when `None`) now and
    /// stores the result as the repository's last preview.
    pub async fn lifecycle_preview(
        &self,
        name: &RepoName,
        text: Option<&str>,
    ) -> Result<LifecyclePreview> {
        let (repo, preview) = self.lifecycle_preview_of(name, text).await?;
        let json = serde_json::to_string(&preview).map_err(Error::internal)?;
        self.lifecycle
            .put_lifecycle_preview(repo, &preview.policy_text, &json)
            .await?;
        Ok(preview)
    }

    /// What `text` (or the saved policy when `None`) would expire now, kept nowhere: the
    /// console's live preview, which must not replace the preview another caller started.
    pub async fn lifecycle_preview_unsaved(
        &self,
        name: &RepoName,
        text: Option<&str>,
    ) -> Result<LifecyclePreview> {
        Ok(self.lifecycle_preview_of(name, text).await?.1)
    }

    /// The repository's id and the preview of `text` (or of the saved policy).
    async fn lifecycle_preview_of(
        &self,
        name: &RepoName,
        text: Option<&str>,
    ) -> Result<(i64, LifecyclePreview)> {
        let repo = self.core.repository(name).await?;
        let text = match text {
            Some(t) => t.to_owned(),
            None => match self.lifecycle.lifecycle_policy(repo).await? {
                Some(row) => row.text,
                None => {
                    return Err(Error::NotFound(format!(
                        "Lifecycle policy does not exist for the repository with name '{name}'"
                    )))
                }
            },
        };
        let policy = parse_policy(&text)?;
        let now = Utc::now();
        let evaluation = self.lifecycle_evaluate(repo, &policy, now).await?;
        let preview = LifecyclePreview {
            repository: name.to_string(),
            policy_text: text,
            evaluated_at: now.timestamp_millis(),
            expiring: expiries(&evaluation),
            summary: LifecycleSummary {
                expiring_image_total_count: evaluation.summary.expiring,
                evaluated_image_count: evaluation.summary.evaluated,
                per_rule: evaluation.summary.per_rule.clone(),
            },
        };
        Ok((repo, preview))
    }

    /// GetLifecyclePolicyPreview: the repository's last preview, if any.
    pub async fn last_lifecycle_preview(
        &self,
        name: &RepoName,
    ) -> Result<Option<LifecyclePreview>> {
        let repo = self.core.repository(name).await?;
        match self.lifecycle.lifecycle_preview(repo).await? {
            Some(row) => Ok(Some(
                serde_json::from_str(&row.result).map_err(Error::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// Runs the repository's saved policy now; `None` when it has none.
    pub async fn lifecycle_run(&self, name: &RepoName) -> Result<Option<LifecycleRun>> {
        let repo = self.core.repository(name).await?;
        let Some(row) = self.lifecycle.lifecycle_policy(repo).await? else {
            return Ok(None);
        };
        // A stored policy was valid when stored; a stricter later version may refuse it.
        let policy = parse_policy(&row.text)?;
        self.lifecycle_apply(repo, name.as_str(), &policy, Utc::now())
            .await
            .map(Some)
    }

    /// Runs every repository's saved policy; a repository whose run fails is logged and named in
    /// the second list, and the others still run.
    pub async fn lifecycle_run_all(&self) -> Result<(Vec<LifecycleRun>, Vec<String>)> {
        let mut runs = Vec::new();
        let mut failed = Vec::new();
        for (repo, name) in self.lifecycle.repositories_with_lifecycle_policy().await? {
            let result = async {
                let Some(row) = self.lifecycle.lifecycle_policy(repo).await? else {
                    return Ok(None);
                };
                let policy = parse_policy(&row.text)?;
                self.lifecycle_apply(repo, &name, &policy, Utc::now())
                    .await
                    .map(Some)
            }
            .await;
            match result {
                Ok(Some(run)) => runs.push(run),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(repository = %name, error = %e, "lifecycle run failed");
                    failed.push(name);
                }
            }
        }
        Ok((runs, failed))
    }

    /// Evaluates and expires, one image per transaction.
    async fn lifecycle_apply(
        &self,
        repo: i64,
        name: &str,
        policy: &LifecyclePolicy,
        now: DateTime<Utc>,
    ) -> Result<LifecycleRun> {
        let evaluation = self.lifecycle_evaluate(repo, policy, now).await?;
        self.lifecycle
            .mark_lifecycle_evaluated(repo, now.timestamp_millis())
            .await?;
        let mut run = LifecycleRun {
            repository: name.to_owned(),
            evaluated_at: now.timestamp_millis(),
            expired: Vec::new(),
            skipped: 0,
            removed: 0,
        };
        let result = async {
            for expiry in expiries(&evaluation) {
                let outcome = self
                    .lifecycle
                    .expire_image(
                        repo,
                        name,
                        &expiry.digest,
                        &expiry.tags,
                        expiry.rule_priority,
                    )
                    .await?;
                match outcome {
                    ExpireOutcome::Expired { removed, .. } => {
                        tracing::info!(
                            repository = %name,
                            digest = %expiry.digest,
                            tags = ?expiry.tags,
                            rule = expiry.rule_priority,
                            "lifecycle policy expired an image"
                        );
                        run.removed += removed.len();
                        run.expired.push(expiry);
                    }
                    ExpireOutcome::Changed => run.skipped += 1,
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        if !run.expired.is_empty() {
            self.core.cache.invalidate(repo);
        }
        result.map(|()| run)
    }

    /// The lifecycle audit log after id `after`, oldest first (of one repository, and one
    /// image digest, when given).
    pub async fn lifecycle_audit(
        &self,
        repository: Option<&RepoName>,
        digest: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LifecycleAuditRow>> {
        self.lifecycle
            .lifecycle_audit(repository.map(|r| r.as_str()), digest, after, limit)
            .await
    }

    /// Notes a pull of manifest `manifest_id` (GET or HEAD by tag or digest); written by
    /// [`LifecycleService::flush_pulls`].
    pub fn record_pull(&self, manifest_id: i64) {
        self.pulls.record(manifest_id);
    }

    /// Writes the pulls recorded since the last flush, in one UPDATE (per 500 manifests); on
    /// failure they stay queued for the next flush.
    pub async fn flush_pulls(&self) -> Result<usize> {
        let ids = self.pulls.take();
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        if let Err(e) = self.lifecycle.record_pulls(&ids, now_millis()).await {
            self.pulls.put_back(ids);
            return Err(e);
        }
        Ok(n)
    }
}
