//! Replication use cases: the registry's configuration (stored as validated), which
//! destinations a push goes to ([`ReplicationRules`], shared with the manifest service, which
//! writes the tasks in the push's transaction), task statuses as ECR reports them, and the task
//! queue the worker (`crate::replication`) takes from.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::meta::{Replication, ReplicationTask, REPLICATION_COMPLETE, REPLICATION_FAILED};
use crate::policy::replication::{ReplicationConfiguration, ReplicationDestination};
use crate::util::TtlCache;

/// How long a replica uses the configuration it read: a rule saved on another replica applies
/// here within this.
const RULES_TTL: Duration = Duration::from_secs(2);

/// The configuration as pushes read it, and the bell that wakes this replica's worker when a
/// push here wrote tasks.
pub struct ReplicationRules {
    store: Replication,
    /// Names of the configured non-Berth targets (`[[replication.targets]]`).
    targets: Vec<String>,
    cached: TtlCache<(), Arc<ReplicationConfiguration>>,
    pushed: Notify,
}

impl ReplicationRules {
    pub fn new(store: Replication, targets: Vec<String>) -> ReplicationRules {
        ReplicationRules {
            store,
            targets,
            cached: TtlCache::new(RULES_TTL, 1),
            pushed: Notify::new(),
        }
    }

    /// The configuration in force (empty when none was saved).
    pub async fn configuration(&self) -> Result<Arc<ReplicationConfiguration>> {
        if let Some(hit) = self.cached.get(&()) {
            return Ok(hit);
        }
        let configuration = match self.store.configuration().await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| Error::internal(format!("stored replication configuration: {e}")))?,
            None => ReplicationConfiguration::default(),
        };
        let configuration = Arc::new(configuration);
        self.cached.insert((), configuration.clone());
        Ok(configuration)
    }

    /// Where a push to `repository` that sets `tags` (none: by digest) goes, as (tag,
    /// destination) pairs, the empty tag for a push by digest. A referrer pushed by digest
    /// follows its subject past tag filters.
    pub async fn targets_for(
        &self,
        repository: &str,
        tags: &[crate::oci::Tag],
        referrer: bool,
    ) -> Result<Vec<(String, ReplicationDestination)>> {
        let configuration = self.configuration().await?;
        if configuration.rules.is_empty() {
            return Ok(Vec::new());
        }
        let tags: Vec<Option<&str>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(|t| Some(t.as_str())).collect()
        };
        let mut out = Vec::new();
        for tag in tags {
            for (destination, _) in configuration.destinations_for(repository, tag, referrer) {
                out.push((tag.unwrap_or("").to_owned(), destination));
            }
        }
        Ok(out)
    }

    /// Where a delete in `repository` (of `tag`, or of the manifest when `None`) follows:
    /// destinations of the rules that select it and ask for deletes (`deleteReplication`).
    pub async fn delete_targets(
        &self,
        repository: &str,
        tag: Option<&str>,
    ) -> Result<Vec<ReplicationDestination>> {
        let configuration = self.configuration().await?;
        Ok(configuration
            .destinations_for(repository, tag, true)
            .into_iter()
            .filter(|(_, deletes)| *deletes)
            .map(|(destination, _)| destination)
            .collect())
    }

    /// Whether `name` is a configured non-Berth target.
    pub fn is_target(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }

    /// A push here wrote tasks: the worker starts at once instead of at its next poll.
    pub fn pushed(&self) {
        self.pushed.notify_one();
    }

    /// Waits until [`ReplicationRules::pushed`] or `timeout`, whichever comes first.
    pub async fn wait_for_push(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.pushed.notified()).await;
    }
}

/// One destination's status for an image, as `DescribeImageReplicationStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReplicationStatus {
    pub destination: ReplicationDestination,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
}

/// The replication configuration and tasks.
#[derive(Clone)]
pub struct ReplicationService {
    store: Replication,
    repositories: crate::meta::Repositories,
    rules: Arc<ReplicationRules>,
}

impl ReplicationService {
    pub(super) fn new(
        store: Replication,
        repositories: crate::meta::Repositories,
        rules: Arc<ReplicationRules>,
    ) -> Self {
        ReplicationService {
            store,
            repositories,
            rules,
        }
    }

    /// The rules pushes read, and the worker's bell.
    pub fn rules(&self) -> &Arc<ReplicationRules> {
        &self.rules
    }

    /// The configuration in force.
    pub async fn configuration(&self) -> Result<Arc<ReplicationConfiguration>> {
        self.rules.configuration().await
    }

    /// Saves a configuration the caller validated; this replica applies it at once.
    pub async fn put_configuration(&self, configuration: &ReplicationConfiguration) -> Result<()> {
        let text = serde_json::to_string(configuration).map_err(Error::internal)?;
        self.store.put_configuration(&text).await?;
        self.rules.cached.clear();
        Ok(())
    }

    /// Per destination, the status of the image `digest` of `repository`: `FAILED` if any of
    /// its tasks there failed, `IN_PROGRESS` while any is open, else `COMPLETE`. Destinations
    /// the image never had a task for are not listed.
    pub async fn image_status(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<ImageReplicationStatus>> {
        let tasks = self.store.tasks_of_image(repository, digest).await?;
        let mut out: Vec<ImageReplicationStatus> = Vec::new();
        for task in tasks {
            let destination = ReplicationDestination {
                region: task.region.clone(),
                registry_id: task.registry_id.clone(),
                target: Some(task.target.clone()).filter(|t| !t.is_empty()),
            };
            let index = match out.iter().position(|s| s.destination == destination) {
                Some(i) => i,
                None => {
                    out.push(ImageReplicationStatus {
                        destination,
                        status: REPLICATION_COMPLETE.to_owned(),
                        failure_code: None,
                        failure_reason: None,
                    });
                    out.len() - 1
                }
            };
            let entry = &mut out[index];
            let rank = |s: &str| match s {
                REPLICATION_FAILED => 2,
                REPLICATION_COMPLETE => 0,
                _ => 1,
            };
            if rank(&task.status) > rank(&entry.status) {
                entry.status = task.status.clone();
                entry.failure_code = task.failure_code.clone();
                entry.failure_reason = task.failure_reason.clone();
            }
        }
        Ok(out)
    }

    /// Replicates images pushed before the rules (or while they did not select them): every
    /// tag and referrer of every repository the rules select now gets a task per destination,
    /// unless it has one already. How many tasks were written.
    pub async fn backfill(&self) -> Result<u64> {
        let configuration = self.rules.configuration().await?;
        if configuration.rules.is_empty() {
            return Ok(0);
        }
        let mut written = 0;
        let mut last: Option<String> = None;
        loop {
            let page = self
                .repositories
                .list_repositories(last.as_deref(), 500)
                .await?;
            let Some(next) = page.last().cloned() else {
                break;
            };
            for repository in &page {
                let mut tasks = Vec::new();
                for (digest, tag, referrer) in self.store.backfill_candidates(repository).await? {
                    let tag_ref = Some(tag.as_str()).filter(|t| !t.is_empty());
                    for (destination, _) in
                        configuration.destinations_for(repository, tag_ref, referrer)
                    {
                        tasks.push((digest.clone(), tag.clone(), destination));
                    }
                }
                if !tasks.is_empty() {
                    written += self.store.enqueue_missing(repository, &tasks).await?;
                }
            }
            last = Some(next);
        }
        if written > 0 {
            self.rules.pushed();
        }
        Ok(written)
    }

    /// How many tasks are open and how many failed.
    pub async fn counts(&self) -> Result<(i64, i64)> {
        self.store.counts().await
    }

    /// Open tasks (waiting, being sent, failed), oldest first, after task `after`.
    pub async fn open_tasks(&self, after: i64, limit: i64) -> Result<Vec<ReplicationTask>> {
        self.store.open_tasks(after, limit).await
    }

    /// Starts failed tasks again (of one repository and image when named); how many.
    pub async fn retry_failed(
        &self,
        repository: Option<&str>,
        digest: Option<&str>,
    ) -> Result<u64> {
        let restarted = self.store.retry_failed(repository, digest).await?;
        if restarted > 0 {
            self.rules.pushed();
        }
        Ok(restarted)
    }

    /// Takes due tasks for `owner` until `lease_until` (the worker).
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ReplicationTask>> {
        self.store.claim_due(owner, lease_until, limit).await
    }

    /// Ends a task: sent, or failed for good with ECR's failure code and a reason.
    pub async fn finish(
        &self,
        task: &ReplicationTask,
        owner: &str,
        failure: Option<(&str, &str)>,
    ) -> Result<()> {
        self.store.finish(task, owner, failure).await
    }

    /// Puts a task back for another attempt at `next_attempt_at` (Unix ms).
    pub async fn retry_later(
        &self,
        task: &ReplicationTask,
        owner: &str,
        next_attempt_at: i64,
        reason: &str,
    ) -> Result<()> {
        self.store
            .retry_later(task.id, owner, next_attempt_at, reason)
            .await
    }
}
