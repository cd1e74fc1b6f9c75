//! Pull-through cache rule operations: CreatePullThroughCacheRule,
//! DescribePullThroughCacheRules, UpdatePullThroughCacheRule, DeletePullThroughCacheRule and
//! ValidatePullThroughCacheRule, on the registry, with Berth's `revalidateSecs` and
//! `quotaBytes`; and the one serialisation of a rule. Checking and storing rules is
//! `pull_through::manage`'s; this layer adds the gate, the registry id, pagination and the shape.

use super::shapes::{
    timestamp, CreatePullThroughCacheRuleRequest, DeletePullThroughCacheRuleRequest,
    DescribePullThroughCacheRulesRequest, DescribePullThroughCacheRulesResponse,
    PullThroughCacheRule, UpdatePullThroughCacheRuleRequest, ValidatePullThroughCacheRuleRequest,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Access, Permission, Resource};
use crate::error::{Error, Result};
use crate::meta::StoredRule;
use crate::policy::Action;
use crate::pull_through::manage::{prefixes_filter, rule_not_found, validation_outcome};
use crate::pull_through::RuleInput;

/// The pagination token's listing name.
const TOKEN: &str = "pull-through-rules";

/// A rule in ECR's shape (plus Berth's members): the one serialisation every door answers with.
pub fn rule_shape(cx: &Context<'_>, r: &StoredRule) -> PullThroughCacheRule {
    PullThroughCacheRule {
        ecr_repository_prefix: r.rule.prefix.clone(),
        upstream_registry_url: r.rule.upstream_url.clone(),
        created_at: timestamp(r.rule.created_at),
        updated_at: timestamp(r.rule.updated_at),
        registry_id: cx.registry_id().to_owned(),
        upstream_registry: r.rule.upstream_registry.clone(),
        credential_arn: r.rule.credential_arn.clone(),
        custom_role_arn: r.rule.custom_role_arn.clone(),
        upstream_repository_prefix: r.rule.upstream_repository_prefix.clone(),
        revalidate_secs: cx.pull_through.revalidate_secs(r),
        quota_bytes: r.quota_bytes,
        is_valid: None,
        failure: None,
    }
}

/// What the audit record names: one rule by its prefix as given (never validated here: the
/// record is written for refused calls too), or the rules.
fn rule_resource(prefix: Option<&str>) -> String {
    match prefix {
        Some(prefix) => format!(
            "pull-through-rule/{}",
            prefix.chars().take(100).collect::<String>()
        ),
        None => "pull-through-rules".to_owned(),
    }
}

impl Operation for CreatePullThroughCacheRuleRequest {
    const NAME: &'static str = "ecr:CreatePullThroughCacheRule";
    type Output = PullThroughCacheRule;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::CreatePullThroughCacheRule, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        rule_resource(Some(&self.ecr_repository_prefix))
    }

    /// A local prefix served from an upstream registry.
    async fn run(self, cx: &Context<'_>) -> Result<PullThroughCacheRule> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let rule = cx
            .pull_through
            .create_rule(&RuleInput {
                ecr_repository_prefix: self.ecr_repository_prefix,
                upstream_registry_url: self.upstream_registry_url,
                upstream_registry: self.upstream_registry,
                credential_arn: self.credential_arn,
                custom_role_arn: self.custom_role_arn,
                upstream_repository_prefix: self.upstream_repository_prefix,
                revalidate_secs: self.revalidate_secs,
                quota_bytes: self.quota_bytes,
            })
            .await?;
        cx.note(format!(
            "prefix={} upstream={}",
            rule.rule.prefix, rule.rule.upstream_url
        ));
        Ok(rule_shape(cx, &rule))
    }
}

impl Operation for DescribePullThroughCacheRulesRequest {
    const NAME: &'static str = "ecr:DescribePullThroughCacheRules";
    type Output = DescribePullThroughCacheRulesResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DescribePullThroughCacheRules, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        match self.ecr_repository_prefixes.as_deref() {
            Some([one]) => rule_resource(Some(one)),
            _ => rule_resource(None),
        }
    }

    /// Every rule, or the named ones (each must exist), by prefix in byte order, paginated by
    /// the last prefix.
    async fn run(self, cx: &Context<'_>) -> Result<DescribePullThroughCacheRulesResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let limit = max_results(self.max_results, 100)?;
        let wanted = prefixes_filter(self.ecr_repository_prefixes.as_deref().unwrap_or_default())?;
        let after = match self.next_token.as_deref() {
            Some(token) => decode_token(TOKEN, token, 1)?.pop(),
            None => None,
        };
        let mut rules = cx.pull_through.all_rules().await?;
        // Byte order whatever the database's collation, so that tokens resume where they were.
        rules.sort_by(|a, b| a.rule.prefix.cmp(&b.rule.prefix));
        if let Some(missing) = wanted
            .iter()
            .find(|w| !rules.iter().any(|r| &r.rule.prefix == *w))
        {
            return Err(rule_not_found(missing, cx.registry_id()));
        }
        let mut page: Vec<&StoredRule> = rules
            .iter()
            .filter(|r| wanted.is_empty() || wanted.contains(&r.rule.prefix))
            .filter(|r| after.as_ref().map_or(true, |a| &r.rule.prefix > a))
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next_token = match (more, page.last()) {
            (true, Some(last)) => Some(encode_token(TOKEN, &[&last.rule.prefix])),
            _ => None,
        };
        Ok(DescribePullThroughCacheRulesResponse {
            pull_through_cache_rules: page.into_iter().map(|r| rule_shape(cx, r)).collect(),
            next_token,
        })
    }
}

impl Operation for UpdatePullThroughCacheRuleRequest {
    const NAME: &'static str = "ecr:UpdatePullThroughCacheRule";
    type Output = PullThroughCacheRule;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::UpdatePullThroughCacheRule, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        rule_resource(Some(&self.ecr_repository_prefix))
    }

    /// A new credential (or role), and Berth's settings when given.
    async fn run(self, cx: &Context<'_>) -> Result<PullThroughCacheRule> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        if self.upstream_registry_url.is_some()
            || self.upstream_registry.is_some()
            || self.upstream_repository_prefix.is_some()
        {
            return Err(Error::InvalidParameter(
                "a rule's upstream cannot change (upstreamRegistryUrl, upstreamRegistry, \
                 upstreamRepositoryPrefix); delete the rule and create a new one"
                    .into(),
            ));
        }
        let rule = cx
            .pull_through
            .update_rule(&RuleInput {
                ecr_repository_prefix: self.ecr_repository_prefix,
                credential_arn: self.credential_arn,
                custom_role_arn: self.custom_role_arn,
                revalidate_secs: self.revalidate_secs,
                quota_bytes: self.quota_bytes,
                ..Default::default()
            })
            .await?;
        cx.note("rule updated");
        Ok(rule_shape(cx, &rule))
    }
}

impl Operation for DeletePullThroughCacheRuleRequest {
    const NAME: &'static str = "ecr:DeletePullThroughCacheRule";
    type Output = PullThroughCacheRule;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DeletePullThroughCacheRule, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        rule_resource(Some(&self.ecr_repository_prefix))
    }

    /// The rule goes, its cached repositories stay (as ECR leaves them); answers the rule.
    async fn run(self, cx: &Context<'_>) -> Result<PullThroughCacheRule> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let rule = cx
            .pull_through
            .delete_rule(&self.ecr_repository_prefix)
            .await?;
        cx.note("rule deleted");
        Ok(rule_shape(cx, &rule))
    }
}

impl Operation for ValidatePullThroughCacheRuleRequest {
    const NAME: &'static str = "ecr:ValidatePullThroughCacheRule";
    type Output = PullThroughCacheRule;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::ValidatePullThroughCacheRule, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        rule_resource(Some(&self.ecr_repository_prefix))
    }

    /// Reaches the upstream with the rule's credential and says what failed (`isValid`,
    /// `failure`).
    async fn run(self, cx: &Context<'_>) -> Result<PullThroughCacheRule> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let rule = cx
            .pull_through
            .find_rule(&self.ecr_repository_prefix)
            .await?;
        let (is_valid, failure) = validation_outcome(cx.pull_through.validate(&rule).await);
        cx.note(if is_valid { "valid" } else { "invalid" });
        Ok(PullThroughCacheRule {
            is_valid: Some(is_valid),
            failure,
            ..rule_shape(cx, &rule)
        })
    }
}
