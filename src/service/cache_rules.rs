//! Which repositories are pull-through caches (named under a rule's prefix): the rules, read
//! through for [`RULES_TTL`] so that every push can ask cheaply, and the one refusal of pushes
//! into a cache that `/v2` uploads, `/v2` manifest PUTs and ECR's PutImage all meet. A cache's
//! images come from its upstream; a push would mix local images into it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::StoredRule;
use crate::oci::RepoName;

/// How long a replica trusts its copy of the rules: a rule created through another replica
/// binds this one within it (this replica's own changes apply at once).
pub const RULES_TTL: Duration = Duration::from_secs(2);

/// The rules as last read, and when.
pub(super) type CachedRules = std::sync::Mutex<Option<(Instant, Arc<Vec<StoredRule>>)>>;

impl Registry {
    /// The pull-through cache rules, read through for [`RULES_TTL`].
    pub async fn pull_through_rules(&self) -> Result<Arc<Vec<StoredRule>>> {
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
    pub fn pull_through_rules_changed(&self) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The rule whose prefix covers `name` (the longest), if any.
    pub async fn pull_through_rule_for(&self, name: &RepoName) -> Result<Option<StoredRule>> {
        let rules = self.pull_through_rules().await?;
        Ok(crate::policy::pull_through::rule_for(&rules, name.as_str()).cloned())
    }

    /// Refuses a push (a blob upload or mount, a manifest PUT, PutImage) into a pull-through
    /// cache's repository: `UNSUPPORTED` on `/v2`, `InvalidParameterException` on the ECR API,
    /// with the same message.
    pub async fn refuse_push_into_cache(&self, name: &RepoName) -> Result<()> {
        match self.pull_through_rule_for(name).await? {
            Some(rule) => Err(Error::Unsupported(format!(
                "The repository '{name}' is a pull-through cache of {}; its images come from there and cannot be pushed",
                rule.rule.upstream.authority
            ))),
            None => Ok(()),
        }
    }
}
