//! Managing pull-through cache rules, the use cases behind the rule operations
//! (`crate::ops::pull_through`): validation as ECR does it (plus Berth's checks that a named
//! credential is configured), storage, and validation against the upstream. Refusals are domain
//! errors with ECR's kinds (`Missing::PullThroughCacheRule`, `Existing::PullThroughCacheRule`,
//! `Missing::Secret`), so every door answers them alike.

use super::fill::PullThrough;
use crate::error::{Error, Existing, Missing, Result};
use crate::meta::{RuleRecord, StoredRule};
use crate::policy::pull_through::{
    credential_name, parse_upstream_url, upstream_registry_kind, validate_prefix,
};

/// A rule as CreatePullThroughCacheRule (or the REST API) asks for it.
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub ecr_repository_prefix: String,
    pub upstream_registry_url: String,
    pub upstream_registry: Option<String>,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    pub upstream_repository_prefix: Option<String>,
    /// Berth: seconds between upstream checks of a cached tag (default from the config).
    pub revalidate_secs: Option<i64>,
    /// Berth: the most bytes the rule's cached images may hold (least recently pulled go first).
    pub quota_bytes: Option<i64>,
}

/// ECR's answer for a rule that does not exist.
pub fn rule_not_found(prefix: &str, registry_id: &str) -> Error {
    Error::Missing(
        Missing::PullThroughCacheRule,
        format!(
            "The pull through cache rule with prefix '{prefix}' does not exist in the registry \
             with id '{registry_id}'"
        ),
    )
}

fn optional_positive(field: &str, v: Option<i64>) -> Result<Option<i64>> {
    match v {
        Some(n) if n <= 0 => Err(Error::InvalidParameter(format!(
            "Invalid parameter at '{field}': must be a positive number, got {n}"
        ))),
        other => Ok(other),
    }
}

impl PullThrough {
    fn check_credential(&self, arn: &Option<String>) -> Result<()> {
        let Some(arn) = arn else { return Ok(()) };
        let name = credential_name(arn, self.region(), self.registry_id())
            .map_err(Error::InvalidParameter)?;
        if self.has_credential(&name) {
            Ok(())
        } else {
            Err(Error::Missing(
                Missing::Secret,
                format!(
                    "The specified secret {arn} could not be found: Berth holds no credential \
                     named {name:?} ([pull_through] credentials_file or credentials)"
                ),
            ))
        }
    }

    /// CreatePullThroughCacheRule.
    pub async fn create_rule(&self, input: &RuleInput) -> Result<StoredRule> {
        let prefix = validate_prefix("ecrRepositoryPrefix", &input.ecr_repository_prefix)
            .map_err(Error::InvalidParameter)?;
        let upstream =
            parse_upstream_url(&input.upstream_registry_url).map_err(Error::InvalidParameter)?;
        let kind = upstream_registry_kind(&upstream);
        if let Some(given) = &input.upstream_registry {
            if given != kind {
                return Err(Error::InvalidParameter(format!(
                    "Invalid parameter at 'upstreamRegistry': {} is {kind}, not {given}",
                    upstream.authority
                )));
            }
        }
        let upstream_prefix = input
            .upstream_repository_prefix
            .as_deref()
            .filter(|p| *p != "ROOT")
            .map(|p| validate_prefix("upstreamRepositoryPrefix", p))
            .transpose()
            .map_err(Error::InvalidParameter)?;
        self.check_credential(&input.credential_arn)?;
        if upstream.scheme == "http" {
            tracing::warn!(prefix = %prefix, upstream = %upstream.authority, "pull-through rule uses plain http: only for upstreams inside a private network");
        }
        let record = RuleRecord {
            prefix: prefix.clone(),
            upstream_url: input.upstream_registry_url.trim().to_owned(),
            upstream_registry: kind.to_owned(),
            credential_arn: input.credential_arn.clone(),
            custom_role_arn: input.custom_role_arn.clone(),
            upstream_repository_prefix: upstream_prefix,
            revalidate_secs: optional_positive("revalidateSecs", input.revalidate_secs)?,
            quota_bytes: optional_positive("quotaBytes", input.quota_bytes)?,
        };
        if !self.cache.create_pull_through_rule(&record).await? {
            return Err(Error::Exists(
                Existing::PullThroughCacheRule,
                format!(
                    "A pull through cache rule with prefix '{prefix}' already exists in the \
                     registry with id '{}'",
                    self.registry_id()
                ),
            ));
        }
        self.rules_changed();
        self.find_rule(&prefix).await
    }

    /// Every rule, by prefix, as stored now (not the cached copy pulls use).
    pub async fn all_rules(&self) -> Result<Vec<StoredRule>> {
        self.cache.pull_through_rules().await
    }

    /// The stored rule with this prefix (given with or without its trailing `/`).
    pub async fn find_rule(&self, prefix: &str) -> Result<StoredRule> {
        let wanted = prefix.strip_suffix('/').unwrap_or(prefix);
        self.cache
            .pull_through_rules()
            .await?
            .into_iter()
            .find(|r| r.rule.prefix == wanted)
            .ok_or_else(|| rule_not_found(wanted, self.registry_id()))
    }

    /// UpdatePullThroughCacheRule: replaces the credential and role (and Berth's settings).
    pub async fn update_rule(&self, input: &RuleInput) -> Result<StoredRule> {
        let existing = self.find_rule(&input.ecr_repository_prefix).await?;
        self.check_credential(&input.credential_arn)?;
        let record = RuleRecord {
            prefix: existing.rule.prefix.clone(),
            upstream_url: existing.rule.upstream_url.clone(),
            upstream_registry: existing.rule.upstream_registry.clone(),
            credential_arn: input.credential_arn.clone(),
            custom_role_arn: input.custom_role_arn.clone(),
            upstream_repository_prefix: existing.rule.upstream_repository_prefix.clone(),
            revalidate_secs: optional_positive("revalidateSecs", input.revalidate_secs)?
                .or(existing.revalidate_secs),
            quota_bytes: optional_positive("quotaBytes", input.quota_bytes)?
                .or(existing.quota_bytes),
        };
        if !self.cache.update_pull_through_rule(&record).await? {
            return Err(rule_not_found(&record.prefix, self.registry_id()));
        }
        self.rules_changed();
        self.find_rule(&record.prefix).await
    }

    /// DeletePullThroughCacheRule: the cached repositories stay (as ECR leaves them).
    pub async fn delete_rule(&self, prefix: &str) -> Result<StoredRule> {
        let wanted = prefix.strip_suffix('/').unwrap_or(prefix);
        let deleted = self.cache.delete_pull_through_rule(wanted).await?;
        self.rules_changed();
        deleted.ok_or_else(|| rule_not_found(wanted, self.registry_id()))
    }
}

/// Turns a stored rule's validation failure into `(isValid, failure)` as
/// ValidatePullThroughCacheRule reports it.
pub fn validation_outcome(result: std::result::Result<(), String>) -> (bool, Option<String>) {
    match result {
        Ok(()) => (true, None),
        Err(e) => (false, Some(e)),
    }
}

/// Checks a prefix list filter of DescribePullThroughCacheRules.
pub fn prefixes_filter(prefixes: &[String]) -> Result<Vec<String>> {
    prefixes
        .iter()
        .map(|p| validate_prefix("ecrRepositoryPrefixes", p).map_err(Error::InvalidParameter))
        .collect()
}
