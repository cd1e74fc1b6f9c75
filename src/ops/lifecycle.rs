//! Lifecycle policies: PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy,
//! StartLifecyclePolicyPreview and GetLifecyclePolicyPreview, plus three Berth operations of the
//! REST API: running the saved policy now (audited as `ecr:PutLifecyclePolicy`, the action it
//! needs), a preview answered at once and kept nowhere (PreviewLifecyclePolicy, audited as
//! `ecr:StartLifecyclePolicyPreview`; the console's live preview) and the lifecycle audit log
//! (`berth:ListLifecycleEvents`).
//!
//! A preview is evaluated at once (StartLifecyclePolicyPreview answers `IN_PROGRESS` as ECR does,
//! GetLifecyclePolicyPreview then finds it `COMPLETE`) with the same evaluation a run uses.

use super::repositories::{in_repository, repository_name, repository_not_found};
use super::shapes::{
    timestamp, DeleteLifecyclePolicyRequest, GetLifecyclePolicyPreviewRequest,
    GetLifecyclePolicyPreviewResponse, GetLifecyclePolicyRequest, LifecycleEvent,
    LifecyclePolicyPreviewResult, LifecyclePolicyPreviewSummary, LifecyclePolicyResponse,
    LifecyclePolicyRuleAction, ListLifecycleEventsRequest, ListLifecycleEventsResponse,
    PreviewLifecyclePolicyRequest, PreviewLifecyclePolicyResponse, PutLifecyclePolicyRequest,
    RunLifecyclePolicyRequest, RunLifecyclePolicyResponse, StartLifecyclePolicyPreviewRequest,
    StartLifecyclePolicyPreviewResponse, TagStatusFilter,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Access, Permission, Resource};
use crate::error::{Error, Missing, Result};
use crate::meta::{LifecyclePolicyRow, TagFilter};
use crate::oci::RepoName;
use crate::policy::Action;
use crate::service::LifecycleExpiry;

/// ECR's answer for a repository without a lifecycle policy.
fn lifecycle_policy_not_found(cx: &Context<'_>, name: &RepoName) -> Error {
    Error::Missing(
        Missing::LifecyclePolicy,
        format!(
            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            cx.registry_id()
        ),
    )
}

/// A refused lifecycle policy in ECR's words (the message names the rule and the field).
/// A preview's failure as ECR names it: no text given and none saved, no such repository, or
/// the policy's own error.
fn preview_error(cx: &Context<'_>, name: &RepoName, e: Error) -> Error {
    match e {
        Error::NotFound(_) => lifecycle_policy_not_found(cx, name),
        Error::NameUnknown(_) => repository_not_found(cx, name.as_str()),
        other => lifecycle_error(other),
    }
}

fn lifecycle_error(e: Error) -> Error {
    match e {
        Error::InvalidParameter(message) => Error::InvalidParameter(format!(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{message}'"
        )),
        other => other,
    }
}

/// ECR's `filter.tagStatus`: `TAGGED`, `UNTAGGED` or `ANY` (the default).
pub fn tag_filter(filter: Option<&TagStatusFilter>) -> Result<TagFilter> {
    match filter.and_then(|f| f.tag_status.as_deref()) {
        None | Some("ANY") => Ok(TagFilter::Any),
        Some("TAGGED") => Ok(TagFilter::Tagged),
        Some("UNTAGGED") => Ok(TagFilter::Untagged),
        Some(other) => Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'filter.tagStatus': expected TAGGED, UNTAGGED or ANY, got '{}'",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

fn policy_shape(
    cx: &Context<'_>,
    name: &RepoName,
    row: LifecyclePolicyRow,
) -> LifecyclePolicyResponse {
    LifecyclePolicyResponse {
        registry_id: cx.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: row.text,
        last_evaluated_at: row.last_evaluated_at.map(timestamp),
    }
}

/// An image a preview expires or a run expired, in ECR's preview-result shape.
fn expiry_shape(e: &LifecycleExpiry) -> LifecyclePolicyPreviewResult {
    LifecyclePolicyPreviewResult {
        image_tags: e.tags.clone(),
        image_digest: e.digest.clone(),
        image_pushed_at: timestamp(e.pushed_at),
        action: LifecyclePolicyRuleAction {
            kind: "EXPIRE".into(),
        },
        applied_rule_priority: e.rule_priority,
        storage_class: "STANDARD".into(),
        last_recorded_pull_time: e.last_pulled_at.map(timestamp),
    }
}

impl Operation for PutLifecyclePolicyRequest {
    const NAME: &'static str = "ecr:PutLifecyclePolicy";
    type Output = LifecyclePolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutLifecyclePolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Validates (ECR's rules) and stores the text as sent.
    async fn run(self, cx: &Context<'_>) -> Result<LifecyclePolicyResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let Some(text) = self.lifecycle_policy_text else {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'lifecyclePolicyText' failed to satisfy constraint: 'must not be null'".into(),
            ));
        };
        // A missing repository is named before the policy is judged, as ECR does.
        cx.registry
            .repositories()
            .describe_repository(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        cx.registry
            .lifecycle()
            .put_lifecycle_policy(&name, &text)
            .await
            .map_err(|e| lifecycle_error(in_repository(cx, name.as_str())(e)))?;
        cx.note("lifecycle policy set");
        Ok(LifecyclePolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            lifecycle_policy_text: text,
            last_evaluated_at: None,
        })
    }
}

impl Operation for GetLifecyclePolicyRequest {
    const NAME: &'static str = "ecr:GetLifecyclePolicy";
    type Output = LifecyclePolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::GetLifecyclePolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<LifecyclePolicyResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let row = cx
            .registry
            .lifecycle()
            .lifecycle_policy(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?
            .ok_or_else(|| lifecycle_policy_not_found(cx, &name))?;
        Ok(policy_shape(cx, &name, row))
    }
}

impl Operation for DeleteLifecyclePolicyRequest {
    const NAME: &'static str = "ecr:DeleteLifecyclePolicy";
    type Output = LifecyclePolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DeleteLifecyclePolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Removes the policy; answers the deleted text.
    async fn run(self, cx: &Context<'_>) -> Result<LifecyclePolicyResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let row = cx
            .registry
            .lifecycle()
            .delete_lifecycle_policy(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?
            .ok_or_else(|| lifecycle_policy_not_found(cx, &name))?;
        cx.note("lifecycle policy removed");
        Ok(policy_shape(cx, &name, row))
    }
}

impl Operation for StartLifecyclePolicyPreviewRequest {
    const NAME: &'static str = "ecr:StartLifecyclePolicyPreview";
    type Output = StartLifecyclePolicyPreviewResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::StartLifecyclePolicyPreview,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Evaluates the given text (or the saved policy) now and keeps the result as the
    /// repository's last preview; nothing is expired.
    async fn run(self, cx: &Context<'_>) -> Result<StartLifecyclePolicyPreviewResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let preview = cx
            .registry
            .lifecycle()
            .lifecycle_preview(&name, self.lifecycle_policy_text.as_deref())
            .await
            .map_err(|e| preview_error(cx, &name, e))?;
        cx.note(format!(
            "lifecycle preview: {} of {} image(s) would expire",
            preview.summary.expiring_image_total_count, preview.summary.evaluated_image_count
        ));
        Ok(StartLifecyclePolicyPreviewResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            lifecycle_policy_text: preview.policy_text,
            status: "IN_PROGRESS".into(),
        })
    }
}

impl Operation for PreviewLifecyclePolicyRequest {
    /// Audited as the action it needs: it is StartLifecyclePolicyPreview answered at once.
    const NAME: &'static str = "ecr:StartLifecyclePolicyPreview";
    type Output = PreviewLifecyclePolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::StartLifecyclePolicyPreview,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Evaluates the given text (or the saved policy) now, with the evaluation a run uses, and
    /// answers the result; nothing is expired or kept.
    async fn run(self, cx: &Context<'_>) -> Result<PreviewLifecyclePolicyResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let limit = max_results(self.max_results, 100)?;
        let preview = cx
            .registry
            .lifecycle()
            .lifecycle_preview_unsaved(&name, self.lifecycle_policy_text.as_deref())
            .await
            .map_err(|e| preview_error(cx, &name, e))?;
        cx.note(format!(
            "lifecycle preview (kept nowhere): {} of {} image(s) would expire",
            preview.summary.expiring_image_total_count, preview.summary.evaluated_image_count
        ));
        Ok(PreviewLifecyclePolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            evaluated_at: timestamp(preview.evaluated_at),
            preview_results: preview
                .expiring
                .iter()
                .take(limit)
                .map(expiry_shape)
                .collect(),
            summary: LifecyclePolicyPreviewSummary {
                expiring_image_total_count: preview.summary.expiring_image_total_count,
                evaluated_image_count: preview.summary.evaluated_image_count,
            },
            lifecycle_policy_text: preview.policy_text,
        })
    }
}

impl Operation for GetLifecyclePolicyPreviewRequest {
    const NAME: &'static str = "ecr:GetLifecyclePolicyPreview";
    type Output = GetLifecyclePolicyPreviewResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::GetLifecyclePolicyPreview,
            Resource::Repository(&self.repository_name),
        )
    }

    /// The last preview's results, optionally only some image ids or one tag status, paged.
    async fn run(self, cx: &Context<'_>) -> Result<GetLifecyclePolicyPreviewResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        if self.image_ids.is_some() && (self.next_token.is_some() || self.max_results.is_some()) {
            return Err(Error::InvalidParameter(
                "maxResults and nextToken cannot be used together with imageIds".into(),
            ));
        }
        let filter = tag_filter(self.filter.as_ref())?;
        let limit = max_results(self.max_results, 100)?;
        if limit > 100 {
            return Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'must be between 1 and 100', got {limit}"
            )));
        }
        let start = match &self.next_token {
            Some(token) => decode_token("lifecycle-preview", token, 1)?[0]
                .parse::<usize>()
                .map_err(|_| {
                    Error::InvalidParameter(
                        "Invalid parameter at 'nextToken': the token is not valid".into(),
                    )
                })?,
            None => 0,
        };
        let preview = cx
            .registry
            .lifecycle()
            .last_lifecycle_preview(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?
            .ok_or_else(|| {
                Error::Missing(
                    Missing::LifecyclePolicyPreview,
                    format!(
                        "There is no lifecycle policy preview for the repository with name '{name}' in the registry with id '{}'",
                        cx.registry_id()
                    ),
                )
            })?;
        let wanted = |e: &LifecycleExpiry| {
            let status_ok = match filter {
                TagFilter::Any => true,
                TagFilter::Tagged => !e.tags.is_empty(),
                TagFilter::Untagged => e.tags.is_empty(),
            };
            let id_ok = match &self.image_ids {
                None => true,
                Some(ids) => ids.iter().any(|id| {
                    let digest_ok = id.image_digest.as_deref().map_or(true, |d| d == e.digest);
                    let tag_ok = id
                        .image_tag
                        .as_deref()
                        .map_or(true, |t| e.tags.iter().any(|x| x == t));
                    (id.image_digest.is_some() || id.image_tag.is_some()) && digest_ok && tag_ok
                }),
            };
            status_ok && id_ok
        };
        let selected: Vec<_> = preview.expiring.iter().filter(|e| wanted(e)).collect();
        let page: Vec<_> = selected.iter().skip(start).take(limit).collect();
        let next_token = (self.image_ids.is_none() && start + page.len() < selected.len())
            .then(|| encode_token("lifecycle-preview", &[&(start + page.len()).to_string()]));
        Ok(GetLifecyclePolicyPreviewResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            lifecycle_policy_text: preview.policy_text.clone(),
            status: "COMPLETE".into(),
            next_token,
            preview_results: page.iter().map(|e| expiry_shape(e)).collect(),
            summary: LifecyclePolicyPreviewSummary {
                expiring_image_total_count: preview.summary.expiring_image_total_count,
                evaluated_image_count: preview.summary.evaluated_image_count,
            },
        })
    }
}

impl Operation for RunLifecyclePolicyRequest {
    /// Audited as the action it needs, as before the control plane existed.
    const NAME: &'static str = "ecr:PutLifecyclePolicy";
    type Output = RunLifecyclePolicyResponse;

    /// Running a policy expires images as the policy's author asked: whoever may put the
    /// policy may run it.
    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutLifecyclePolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Runs the repository's saved policy now.
    async fn run(self, cx: &Context<'_>) -> Result<RunLifecyclePolicyResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let run = cx
            .registry
            .lifecycle()
            .lifecycle_run(&name)
            .await
            .map_err(|e| lifecycle_error(in_repository(cx, name.as_str())(e)))?
            .ok_or_else(|| lifecycle_policy_not_found(cx, &name))?;
        cx.note(format!(
            "lifecycle run expired {} image(s)",
            run.expired.len()
        ));
        Ok(RunLifecyclePolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: run.repository,
            evaluated_at: timestamp(run.evaluated_at),
            expired_image_count: run.expired.len(),
            expired: run.expired.iter().map(expiry_shape).collect(),
            skipped_image_count: run.skipped,
            removed_artifact_count: run.removed,
        })
    }
}

impl Operation for ListLifecycleEventsRequest {
    const NAME: &'static str = "berth:ListLifecycleEvents";
    type Output = ListLifecycleEventsResponse;

    /// `ecr:GetLifecyclePolicy` on the repository, or on the registry for every repository's.
    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::GetLifecyclePolicy,
            self.repository_name
                .as_deref()
                .map_or(Resource::Registry, Resource::Repository),
        )
    }

    fn audited_resource(&self, access: &Access) -> String {
        match self.repository_name.as_deref() {
            Some(name) => access.resource_arn(Resource::Repository(name)),
            None => "lifecycle-audit".to_owned(),
        }
    }

    /// Images expired by lifecycle policies (and pull-through quotas), oldest first.
    async fn run(self, cx: &Context<'_>) -> Result<ListLifecycleEventsResponse> {
        let repository = self
            .repository_name
            .as_deref()
            .map(repository_name)
            .transpose()?;
        let image_digest = self
            .image_digest
            .as_deref()
            .map(|d| {
                crate::oci::Digest::parse(d)
                    .map(|d| d.to_string())
                    .map_err(|_| {
                        Error::InvalidParameter(
                            "Invalid parameter at 'imageDigest': not a digest".into(),
                        )
                    })
            })
            .transpose()?;
        let limit = max_results(self.max_results, 100)?;
        let after = match self.next_token.as_deref() {
            Some(token) => decode_token("lifecycle-events", token, 1)?[0]
                .parse::<i64>()
                .map_err(|_| {
                    Error::InvalidParameter(
                        "Invalid parameter at 'nextToken': the token is not valid".into(),
                    )
                })?,
            None => 0,
        };
        // One more than a page: a next page exists only if something follows.
        let mut rows = cx
            .registry
            .lifecycle()
            .lifecycle_audit(
                repository.as_ref(),
                image_digest.as_deref(),
                after,
                limit as i64 + 1,
            )
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_token = more
            .then(|| {
                rows.last()
                    .map(|r| encode_token("lifecycle-events", &[&r.id.to_string()]))
            })
            .flatten();
        Ok(ListLifecycleEventsResponse {
            entries: rows
                .into_iter()
                .map(|r| LifecycleEvent {
                    id: r.id,
                    time: timestamp(r.at),
                    repository_name: r.repository,
                    image_digest: r.digest,
                    image_tags: r.tags,
                    applied_rule_priority: r.rule_priority,
                    removed_with_image: r.removed,
                })
                .collect(),
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_policies_are_worded_as_ecr_words_them() {
        let e = lifecycle_error(Error::InvalidParameter("rule with rulePriority 2".into()));
        assert_eq!(
            e.to_string(),
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'rule with rulePriority 2'"
        );
        assert!(matches!(
            lifecycle_error(Error::NameUnknown("x".into())),
            Error::NameUnknown(_)
        ));
    }

    #[test]
    fn tag_status_filters() {
        let filter = |s: &str| TagStatusFilter {
            tag_status: Some(s.into()),
        };
        assert_eq!(tag_filter(None).unwrap(), TagFilter::Any);
        assert_eq!(
            tag_filter(Some(&filter("TAGGED"))).unwrap(),
            TagFilter::Tagged
        );
        assert_eq!(
            tag_filter(Some(&filter("UNTAGGED"))).unwrap(),
            TagFilter::Untagged
        );
        assert!(tag_filter(Some(&filter("tagged"))).is_err());
    }
}
