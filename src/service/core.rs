//! What every service of the registry shares: the blob store, the limits, the metadata cache,
//! repository lookups through it, and which repositories are pull-through caches. The cache
//! rules are read through for [`RULES_TTL`] so that every push can ask cheaply, and the one
//! refusal of pushes into a cache lives here, met by `/v2` uploads, `/v2` manifest PUTs and
//! ECR's PutImage alike (a cache's images come from its upstream; a push would mix local images
//! into it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Limits, MetaCache};
use crate::error::{Error, Result};
use crate::meta::{PullThroughCache, Repositories, RepositoryRow, StoredRule};
use crate::oci::RepoName;
use crate::storage::BlobStore;

/// How long a replica trusts its copy of the rules: a rule created through another replica
/// binds this one within it (this replica's own changes apply at once).
pub const RULES_TTL: Duration = Duration::from_secs(2);

/// The rules as last read, and when.
type CachedRules = std::sync::Mutex<Option<(Instant, Arc<Vec<StoredRule>>)>>;

/// The parts every service is built with (cheap to clone: one copy is shared).
#[derive(Clone)]
pub(super) struct Core {
    pub(super) blobs: BlobStore,
    pub(super) limits: Arc<Limits>,
    /// Hot metadata; see `metadata_cache` for why it stays correct across replicas.
    pub(super) cache: Arc<MetaCache>,
    pub(super) metrics: crate::metrics::Metrics,
    repositories: Repositories,
    pull_through_cache: PullThroughCache,
    rules: Arc<CachedRules>,
}

impl Core {
    pub(super) fn new(
        blobs: BlobStore,
        limits: Limits,
        cache: MetaCache,
        repositories: Repositories,
        pull_through_cache: PullThroughCache,
        metrics: crate::metrics::Metrics,
    ) -> Core {
        Core {
            blobs,
            limits: Arc::new(limits),
            cache: Arc::new(cache),
            metrics,
            repositories,
            pull_through_cache,
            rules: Default::default(),
        }
    }

    /// The repository's id, if it exists (cached).
    pub(super) async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>> {
        if let Some(id) = self.cache.repository(name.as_str()) {
            return Ok(Some(id));
        }
        let stamp = self.cache.stamp(0);
        let id = self.repositories.repository_id(name).await?;
        if let Some(id) = id {
            self.cache.put_repository(stamp, name.as_str(), id);
        }
        Ok(id)
    }

    /// The repository's id, creating the repository on first use.
    pub(super) async fn ensure_repository(&self, name: &RepoName) -> Result<i64> {
        match self.repository_id(name).await? {
            Some(id) => Ok(id),
            None => self.repositories.ensure_repository(name).await,
        }
    }

    /// The repository's id, or NAME_UNKNOWN.
    pub(super) async fn repository(&self, name: &RepoName) -> Result<i64> {
        self.repository_id(name).await?.ok_or_else(|| {
            Error::NameUnknown(format!("repository '{name}' is not known to this registry"))
        })
    }

    /// The repository's row, if it exists (not cached: settings change).
    pub(super) async fn repository_row(&self, name: &RepoName) -> Result<Option<RepositoryRow>> {
        self.repositories.repository_row(name).await
    }

    /// The repository's row; `NameUnknown` if it does not exist.
    pub(super) async fn describe_repository(&self, name: &RepoName) -> Result<RepositoryRow> {
        self.repositories
            .repository_row(name)
            .await?
            .ok_or_else(|| {
                Error::NameUnknown(format!(
                    "The repository with name '{name}' does not exist in the registry"
                ))
            })
    }

    /// The pull-through cache rules, read through for [`RULES_TTL`].
    pub(super) async fn pull_through_rules(&self) -> Result<Arc<Vec<StoredRule>>> {
        if let Some((at, rules)) = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.elapsed() < RULES_TTL {
                return Ok(rules.clone());
            }
        }
        let rules = Arc::new(self.pull_through_cache.pull_through_rules().await?);
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), rules.clone()));
        Ok(rules)
    }

    /// Forgets the cached rules (after this replica changed them).
    pub(super) fn pull_through_rules_changed(&self) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The rule whose prefix covers `name` (the longest), if any.
    pub(super) async fn pull_through_rule_for(
        &self,
        name: &RepoName,
    ) -> Result<Option<StoredRule>> {
        let rules = self.pull_through_rules().await?;
        Ok(crate::policy::pull_through::rule_for(&rules, name.as_str()).cloned())
    }

    /// Refuses a push (a blob upload or mount, a manifest PUT, PutImage) into a pull-through
    /// cache's repository: `UNSUPPORTED` on `/v2`, `InvalidParameterException` on the ECR API,
    /// with the same message.
    pub(super) async fn refuse_push_into_cache(&self, name: &RepoName) -> Result<()> {
        match self.pull_through_rule_for(name).await? {
            Some(rule) => Err(Error::Unsupported(format!(
                "The repository '{name}' is a pull-through cache of {}; its images come from there and cannot be pushed",
                rule.rule.upstream.authority
            ))),
            None => Ok(()),
        }
    }
}
