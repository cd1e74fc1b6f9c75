//! One function per ECR operation: validate the input, authorize, call the registry service,
//! shape the answer. `dispatch` maps an operation name to its function.

use base64::Engine as _;
use serde::Serialize;

use super::{parse, Call, EcrError, EcrResult, Target};
use crate::access::PolicyTarget;
use crate::error::Error;
use crate::meta::TagFilter;
use crate::oci::RepoName;
use crate::ops::repositories::{check_tag_key, check_tags, repository_name};
use crate::ops::shapes::*;
use crate::ops::{decode_token, encode_token, max_results};
use crate::policy::templates::{Template, TemplateFields};
use crate::policy::Action;
use crate::service::MAX_RESOURCE_TAGS;

/// Runs the operation named by `X-Amz-Target` on the JSON `body`. Operations of the control
/// plane (`crate::ops`) are authorized and audited there (`audited` is set); the others here.
pub async fn dispatch(
    call: &Call<'_>,
    operation: &str,
    body: &[u8],
    audited: &mut bool,
) -> EcrResult<String> {
    macro_rules! run {
        ($f:ident) => {
            json($f(call, parse(body)?).await?)
        };
    }
    macro_rules! op {
        ($request:ty) => {{
            let request: $request = parse(body)?;
            *audited = true;
            json(crate::ops::execute(&call.context(), request).await?)
        }};
    }
    match operation {
        "GetAuthorizationToken" => run!(get_authorization_token),
        "CreateRepository" => op!(CreateRepositoryRequest),
        "DescribeRepositories" => op!(DescribeRepositoriesRequest),
        "DeleteRepository" => op!(DeleteRepositoryRequest),
        "SetRepositoryPolicy" => run!(set_repository_policy),
        "GetRepositoryPolicy" => run!(get_repository_policy),
        "DeleteRepositoryPolicy" => run!(delete_repository_policy),
        "PutLifecyclePolicy" => run!(put_lifecycle_policy),
        "GetLifecyclePolicy" => run!(get_lifecycle_policy),
        "DeleteLifecyclePolicy" => run!(delete_lifecycle_policy),
        "StartLifecyclePolicyPreview" => run!(start_lifecycle_policy_preview),
        "GetLifecyclePolicyPreview" => run!(get_lifecycle_policy_preview),
        "PutRegistryPolicy" => run!(put_registry_policy),
        "GetRegistryPolicy" => run!(get_registry_policy),
        "DeleteRegistryPolicy" => run!(delete_registry_policy),
        "DescribeRegistry" => run!(describe_registry),
        "DescribeImages" => op!(DescribeImagesRequest),
        "ListImages" => op!(ListImagesRequest),
        "BatchGetImage" => op!(BatchGetImageRequest),
        "BatchDeleteImage" => op!(BatchDeleteImageRequest),
        "PutImage" => op!(PutImageRequest),
        "BatchCheckLayerAvailability" => op!(BatchCheckLayerAvailabilityRequest),
        "PutImageTagMutability" => op!(PutImageTagMutabilityRequest),
        "PutImageScanningConfiguration" => op!(PutImageScanningConfigurationRequest),
        "StartImageScan" => op!(StartImageScanRequest),
        "DescribeImageScanFindings" => op!(DescribeImageScanFindingsRequest),
        "PutRegistryScanningConfiguration" => op!(PutRegistryScanningConfigurationRequest),
        "CreatePullThroughCacheRule" => run!(create_pull_through_cache_rule),
        "DescribePullThroughCacheRules" => run!(describe_pull_through_cache_rules),
        "UpdatePullThroughCacheRule" => run!(update_pull_through_cache_rule),
        "DeletePullThroughCacheRule" => run!(delete_pull_through_cache_rule),
        "ValidatePullThroughCacheRule" => run!(validate_pull_through_cache_rule),
        "GetRegistryScanningConfiguration" => op!(GetRegistryScanningConfigurationRequest),
        "TagResource" => run!(tag_resource),
        "UntagResource" => run!(untag_resource),
        "ListTagsForResource" => run!(list_tags_for_resource),
        "CreateRepositoryCreationTemplate" => run!(create_repository_creation_template),
        "DescribeRepositoryCreationTemplates" => run!(describe_repository_creation_templates),
        "UpdateRepositoryCreationTemplate" => run!(update_repository_creation_template),
        "DeleteRepositoryCreationTemplate" => run!(delete_repository_creation_template),
        other if Action::from_operation(other).is_some() => Err(EcrError::new(
            "UnknownOperationException",
            format!("Berth does not implement the ECR operation {other} yet"),
        )),
        other => Err(EcrError::new(
            "UnknownOperationException",
            format!(
                "unknown operation {}",
                other.chars().take(100).collect::<String>()
            ),
        )),
    }
}

fn json<T: Serialize>(value: T) -> EcrResult<String> {
    serde_json::to_string(&value).map_err(|e| Error::internal(e).into())
}

// ---- helpers ----

impl Call<'_> {
    /// The common start of a repository operation: the registry id must be this registry's,
    /// the name valid, and the caller allowed `action` on the repository.
    async fn authorize_repository(
        &self,
        action: Action,
        registry_id: Option<&str>,
        repository: &str,
    ) -> EcrResult<RepoName> {
        self.check_registry_id(registry_id)?;
        let name = repository_name(repository)?;
        self.authorize(action, &Target::Repository(name.clone()))
            .await?;
        Ok(name)
    }
}

fn repository_not_found(registry_id: &str, name: &RepoName) -> EcrError {
    EcrError::new(
        "RepositoryNotFoundException",
        format!("The repository with name '{name}' does not exist in the registry with id '{registry_id}'"),
    )
}

/// Maps `NameUnknown` to ECR's wording for this repository.
fn in_repository(call: &Call<'_>, name: &RepoName) -> impl Fn(Error) -> EcrError {
    let name = name.clone();
    let registry_id = call.registry_id().to_owned();
    move |e| match e {
        Error::NameUnknown(_) => repository_not_found(&registry_id, &name),
        other => other.into(),
    }
}

fn tag_filter(filter: Option<&TagStatusFilter>) -> EcrResult<TagFilter> {
    match filter.and_then(|f| f.tag_status.as_deref()) {
        None | Some("ANY") => Ok(TagFilter::Any),
        Some("TAGGED") => Ok(TagFilter::Tagged),
        Some("UNTAGGED") => Ok(TagFilter::Untagged),
        Some(other) => Err(EcrError::invalid(format!(
            "Invalid parameter at 'filter.tagStatus': expected TAGGED, UNTAGGED or ANY, got '{}'",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// The repository named by `arn:aws:ecr:<region>:<registryId>:repository/<name>` of this
/// registry.
fn repository_of_arn(call: &Call<'_>, arn: &str) -> EcrResult<RepoName> {
    let invalid = || {
        EcrError::invalid(format!(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN' ({}); expected arn:aws:ecr:{}:{}:repository/<name>",
            arn.chars().take(300).collect::<String>(),
            call.region(),
            call.registry_id()
        ))
    };
    let prefix = format!(
        "arn:aws:ecr:{}:{}:repository/",
        call.region(),
        call.registry_id()
    );
    let name = arn.strip_prefix(&prefix).ok_or_else(invalid)?;
    RepoName::parse(name).map_err(|_| invalid())
}

// ---- authorization tokens ----

/// GetAuthorizationToken: a registry password for `docker login -u AWS`, valid 12 hours.
async fn get_authorization_token(
    call: &Call<'_>,
    input: GetAuthorizationTokenRequest,
) -> EcrResult<GetAuthorizationTokenResponse> {
    let ids = input.registry_ids.unwrap_or_default();
    if ids.len() > 10 {
        return Err(EcrError::invalid(
            "Invalid parameter at 'registryIds' failed to satisfy constraint: 'at most 10 items'",
        ));
    }
    for id in &ids {
        call.check_registry_id(Some(id))?;
    }
    call.authorize(Action::GetAuthorizationToken, &Target::Registry)
        .await?;
    let access_key_id = call
        .subject
        .credential
        .as_ref()
        .and_then(|c| c.access_key_id.as_deref())
        .ok_or_else(|| EcrError::from(crate::error::Error::internal("no access key")))?;
    let (password, expires) = call
        .app
        .access
        .registry_password(&call.principal, access_key_id)?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    let entries = ids.len().max(1);
    Ok(GetAuthorizationTokenResponse {
        authorization_data: (0..entries)
            .map(|_| AuthorizationData {
                authorization_token: token.clone(),
                expires_at: expires.timestamp() as f64,
                proxy_endpoint: call.registry_url(),
            })
            .collect(),
    })
}

// ---- repositories ----

// ---- policies ----

fn policy_error(e: Error) -> EcrError {
    match e {
        Error::InvalidParameter(message) => EcrError::invalid(message),
        other => other.into(),
    }
}

/// SetRepositoryPolicy: validates and stores the repository's policy.
async fn set_repository_policy(
    call: &Call<'_>,
    input: SetRepositoryPolicyRequest,
) -> EcrResult<RepositoryPolicyResponse> {
    let name = call
        .authorize_repository(
            Action::SetRepositoryPolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    call.app
        .registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    call.app
        .access
        .set_policy(
            &PolicyTarget::Repository(name.to_string()),
            &input.policy_text,
        )
        .await
        .map_err(policy_error)?;
    Ok(RepositoryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        policy_text: input.policy_text,
    })
}

fn repository_policy_not_found(call: &Call<'_>, name: &RepoName) -> EcrError {
    EcrError::new(
        "RepositoryPolicyNotFoundException",
        format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            call.registry_id()
        ),
    )
}

/// GetRepositoryPolicy.
async fn get_repository_policy(
    call: &Call<'_>,
    input: RepositoryRequest,
) -> EcrResult<RepositoryPolicyResponse> {
    let name = call
        .authorize_repository(
            Action::GetRepositoryPolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    call.app
        .registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    let text = call
        .app
        .access
        .policy_text(&PolicyTarget::Repository(name.to_string()))
        .await?
        .ok_or_else(|| repository_policy_not_found(call, &name))?;
    Ok(RepositoryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        policy_text: text,
    })
}

/// DeleteRepositoryPolicy: answers the deleted text.
async fn delete_repository_policy(
    call: &Call<'_>,
    input: RepositoryRequest,
) -> EcrResult<RepositoryPolicyResponse> {
    let name = call
        .authorize_repository(
            Action::DeleteRepositoryPolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    call.app
        .registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    let text = call
        .app
        .access
        .delete_policy(&PolicyTarget::Repository(name.to_string()))
        .await?
        .ok_or_else(|| repository_policy_not_found(call, &name))?;
    Ok(RepositoryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        policy_text: text,
    })
}

// ---- lifecycle policies ----

/// Validation failures as ECR words them.
fn lifecycle_error(e: Error) -> EcrError {
    match e {
        Error::InvalidParameter(message) => EcrError::invalid(format!(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{message}'"
        )),
        other => other.into(),
    }
}

fn lifecycle_policy_not_found(call: &Call<'_>, name: &RepoName) -> EcrError {
    EcrError::new(
        "LifecyclePolicyNotFoundException",
        format!(
            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            call.registry_id()
        ),
    )
}

/// PutLifecyclePolicy: validates (ECR's rules) and stores the text as sent.
async fn put_lifecycle_policy(
    call: &Call<'_>,
    input: LifecyclePolicyRequest,
) -> EcrResult<LifecyclePolicyResponse> {
    let name = call
        .authorize_repository(
            Action::PutLifecyclePolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let Some(text) = input.lifecycle_policy_text else {
        return Err(EcrError::invalid(
            "Invalid parameter at 'lifecyclePolicyText' failed to satisfy constraint: 'must not be null'",
        ));
    };
    call.app
        .registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    call.app
        .registry
        .put_lifecycle_policy(&name, &text)
        .await
        .map_err(lifecycle_error)?;
    Ok(LifecyclePolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: text,
        last_evaluated_at: None,
    })
}

/// GetLifecyclePolicy.
async fn get_lifecycle_policy(
    call: &Call<'_>,
    input: RepositoryRequest,
) -> EcrResult<LifecyclePolicyResponse> {
    let name = call
        .authorize_repository(
            Action::GetLifecyclePolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let row = call
        .app
        .registry
        .lifecycle_policy(&name)
        .await
        .map_err(in_repository(call, &name))?
        .ok_or_else(|| lifecycle_policy_not_found(call, &name))?;
    Ok(LifecyclePolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: row.text,
        last_evaluated_at: row.last_evaluated_at.map(timestamp),
    })
}

/// DeleteLifecyclePolicy: answers the deleted text.
async fn delete_lifecycle_policy(
    call: &Call<'_>,
    input: RepositoryRequest,
) -> EcrResult<LifecyclePolicyResponse> {
    let name = call
        .authorize_repository(
            Action::DeleteLifecyclePolicy,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let row = call
        .app
        .registry
        .delete_lifecycle_policy(&name)
        .await
        .map_err(in_repository(call, &name))?
        .ok_or_else(|| lifecycle_policy_not_found(call, &name))?;
    Ok(LifecyclePolicyResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: row.text,
        last_evaluated_at: row.last_evaluated_at.map(timestamp),
    })
}

/// StartLifecyclePolicyPreview: evaluates the given text (or the saved policy) at once, so the
/// preview is COMPLETE by the time GetLifecyclePolicyPreview is called.
async fn start_lifecycle_policy_preview(
    call: &Call<'_>,
    input: LifecyclePolicyRequest,
) -> EcrResult<StartLifecyclePolicyPreviewResponse> {
    let name = call
        .authorize_repository(
            Action::StartLifecyclePolicyPreview,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let preview = call
        .app
        .registry
        .lifecycle_preview(&name, input.lifecycle_policy_text.as_deref())
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => lifecycle_policy_not_found(call, &name),
            Error::NameUnknown(_) => repository_not_found(call.registry_id(), &name),
            other => lifecycle_error(other),
        })?;
    Ok(StartLifecyclePolicyPreviewResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: preview.policy_text,
        status: "IN_PROGRESS".into(),
    })
}

/// GetLifecyclePolicyPreview: the last preview's results, optionally for some image ids or one
/// tag status, paged.
async fn get_lifecycle_policy_preview(
    call: &Call<'_>,
    input: GetLifecyclePolicyPreviewRequest,
) -> EcrResult<GetLifecyclePolicyPreviewResponse> {
    let name = call
        .authorize_repository(
            Action::GetLifecyclePolicyPreview,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    if input.image_ids.is_some() && (input.next_token.is_some() || input.max_results.is_some()) {
        return Err(EcrError::invalid(
            "maxResults and nextToken cannot be used together with imageIds",
        ));
    }
    let filter = tag_filter(input.filter.as_ref())?;
    let limit = max_results(input.max_results, 100)?;
    if limit > 100 {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'must be between 1 and 100', got {limit}"
        )));
    }
    let preview = call
        .app
        .registry
        .last_lifecycle_preview(&name)
        .await
        .map_err(in_repository(call, &name))?
        .ok_or_else(|| {
            EcrError::new(
                "LifecyclePolicyPreviewNotFoundException",
                format!(
                    "There is no lifecycle policy preview for the repository with name '{name}' in the registry with id '{}'",
                    call.registry_id()
                ),
            )
        })?;
    let wanted = |e: &crate::service::LifecycleExpiry| {
        let status_ok = match filter {
            TagFilter::Any => true,
            TagFilter::Tagged => !e.tags.is_empty(),
            TagFilter::Untagged => e.tags.is_empty(),
        };
        let id_ok = match &input.image_ids {
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
    let start = match &input.next_token {
        Some(token) => decode_token("lifecycle-preview", token, 1)?[0]
            .parse::<usize>()
            .map_err(|_| EcrError::invalid("Invalid parameter at 'nextToken'"))?,
        None => 0,
    };
    let page: Vec<_> = selected.iter().skip(start).take(limit).collect();
    let next_token = (input.image_ids.is_none() && start + page.len() < selected.len())
        .then(|| encode_token("lifecycle-preview", &[&(start + page.len()).to_string()]));
    Ok(GetLifecyclePolicyPreviewResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        lifecycle_policy_text: preview.policy_text.clone(),
        status: "COMPLETE".into(),
        next_token,
        preview_results: page
            .iter()
            .map(|e| LifecyclePolicyPreviewResult {
                image_tags: e.tags.clone(),
                image_digest: e.digest.clone(),
                image_pushed_at: timestamp(e.pushed_at),
                action: LifecyclePolicyRuleAction {
                    kind: "EXPIRE".into(),
                },
                applied_rule_priority: e.rule_priority,
                storage_class: "STANDARD".into(),
            })
            .collect(),
        summary: LifecyclePolicyPreviewSummary {
            expiring_image_total_count: preview.summary.expiring_image_total_count,
        },
    })
}

fn registry_policy_not_found(call: &Call<'_>) -> EcrError {
    EcrError::new(
        "RegistryPolicyNotFoundException",
        format!(
            "Registry policy does not exist in the registry with id '{}'",
            call.registry_id()
        ),
    )
}

/// PutRegistryPolicy.
async fn put_registry_policy(
    call: &Call<'_>,
    input: PutRegistryPolicyRequest,
) -> EcrResult<RegistryPolicyResponse> {
    call.authorize(Action::PutRegistryPolicy, &Target::Registry)
        .await?;
    call.app
        .access
        .set_policy(&PolicyTarget::Registry, &input.policy_text)
        .await
        .map_err(policy_error)?;
    Ok(RegistryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        policy_text: input.policy_text,
    })
}

/// GetRegistryPolicy.
async fn get_registry_policy(
    call: &Call<'_>,
    _input: EmptyRequest,
) -> EcrResult<RegistryPolicyResponse> {
    call.authorize(Action::GetRegistryPolicy, &Target::Registry)
        .await?;
    let text = call
        .app
        .access
        .policy_text(&PolicyTarget::Registry)
        .await?
        .ok_or_else(|| registry_policy_not_found(call))?;
    Ok(RegistryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        policy_text: text,
    })
}

/// DeleteRegistryPolicy: answers the deleted text.
async fn delete_registry_policy(
    call: &Call<'_>,
    _input: EmptyRequest,
) -> EcrResult<RegistryPolicyResponse> {
    call.authorize(Action::DeleteRegistryPolicy, &Target::Registry)
        .await?;
    let text = call
        .app
        .access
        .delete_policy(&PolicyTarget::Registry)
        .await?
        .ok_or_else(|| registry_policy_not_found(call))?;
    Ok(RegistryPolicyResponse {
        registry_id: call.registry_id().to_owned(),
        policy_text: text,
    })
}

/// DescribeRegistry: the registry id; replication is not configurable yet (no rules).
async fn describe_registry(
    call: &Call<'_>,
    _input: EmptyRequest,
) -> EcrResult<DescribeRegistryResponse> {
    call.authorize(Action::DescribeRegistry, &Target::Registry)
        .await?;
    Ok(DescribeRegistryResponse {
        registry_id: call.registry_id().to_owned(),
        replication_configuration: ReplicationConfiguration { rules: Vec::new() },
    })
}

// ---- resource tags ----

/// TagResource: adds or overwrites tags on a repository (at most 50 in all).
async fn tag_resource(call: &Call<'_>, input: TagResourceRequest) -> EcrResult<EmptyResponse> {
    let name = repository_of_arn(call, &input.resource_arn)?;
    let tags = check_tags(&input.tags)?;
    call.authorize(Action::TagResource, &Target::Repository(name.clone()))
        .await?;
    let fits = call
        .app
        .registry
        .tag_repository(&name, &tags)
        .await
        .map_err(in_repository(call, &name))?;
    if !fits {
        return Err(EcrError::new(
            "TooManyTagsException",
            format!("a resource can have at most {MAX_RESOURCE_TAGS} tags"),
        ));
    }
    Ok(EmptyResponse {})
}

/// UntagResource: removes tags by key.
async fn untag_resource(call: &Call<'_>, input: UntagResourceRequest) -> EcrResult<EmptyResponse> {
    let name = repository_of_arn(call, &input.resource_arn)?;
    for key in &input.tag_keys {
        check_tag_key(key)?;
    }
    call.authorize(Action::UntagResource, &Target::Repository(name.clone()))
        .await?;
    call.app
        .registry
        .untag_repository(&name, &input.tag_keys)
        .await
        .map_err(in_repository(call, &name))?;
    Ok(EmptyResponse {})
}

/// ListTagsForResource.
async fn list_tags_for_resource(
    call: &Call<'_>,
    input: ListTagsForResourceRequest,
) -> EcrResult<ListTagsForResourceResponse> {
    let name = repository_of_arn(call, &input.resource_arn)?;
    call.authorize(
        Action::ListTagsForResource,
        &Target::Repository(name.clone()),
    )
    .await?;
    let tags = call
        .app
        .registry
        .repository_tags(&name)
        .await
        .map_err(in_repository(call, &name))?;
    Ok(ListTagsForResourceResponse {
        tags: tags
            .into_iter()
            .map(|(key, value)| ResourceTag { key, value })
            .collect(),
    })
}

// ---- repository creation templates ----

/// A template in ECR's `RepositoryCreationTemplate` shape.
fn creation_template(t: &Template) -> serde_json::Value {
    let mut m = t.to_json();
    m.insert("createdAt".into(), timestamp(t.created_at).into());
    m.insert("updatedAt".into(), timestamp(t.updated_at).into());
    serde_json::Value::Object(m)
}

/// The template exceptions for the service's `AlreadyExists` / `NotFound`.
fn template_error(e: Error) -> EcrError {
    match e {
        Error::AlreadyExists(m) => EcrError::new("TemplateAlreadyExistsException", m),
        Error::NotFound(m) => EcrError::new("TemplateNotFoundException", m),
        other => other.into(),
    }
}

fn template_response(call: &Call<'_>, t: &Template) -> RepositoryCreationTemplateResponse {
    RepositoryCreationTemplateResponse {
        registry_id: call.registry_id().to_owned(),
        repository_creation_template: creation_template(t),
    }
}

/// CreateRepositoryCreationTemplate.
async fn create_repository_creation_template(
    call: &Call<'_>,
    input: TemplateFields,
) -> EcrResult<RepositoryCreationTemplateResponse> {
    call.authorize(Action::CreateRepositoryCreationTemplate, &Target::Registry)
        .await?;
    let t = call
        .app
        .registry
        .create_template(&input)
        .await
        .map_err(template_error)?;
    Ok(template_response(call, &t))
}

/// UpdateRepositoryCreationTemplate: the members given replace the stored ones.
async fn update_repository_creation_template(
    call: &Call<'_>,
    input: TemplateFields,
) -> EcrResult<RepositoryCreationTemplateResponse> {
    call.authorize(Action::UpdateRepositoryCreationTemplate, &Target::Registry)
        .await?;
    let prefix = match &input.prefix {
        Some(serde_json::Value::String(p)) => p.clone(),
        Some(_) => return Err(EcrError::invalid(
            "Invalid parameter at 'prefix' failed to satisfy constraint: 'Member must be a string'",
        )),
        None => return Err(EcrError::invalid(
            "Invalid parameter at 'prefix' failed to satisfy constraint: 'Member must not be null'",
        )),
    };
    let t = call
        .app
        .registry
        .update_template(&prefix, &input)
        .await
        .map_err(template_error)?;
    Ok(template_response(call, &t))
}

/// DeleteRepositoryCreationTemplate: answers the deleted template.
async fn delete_repository_creation_template(
    call: &Call<'_>,
    input: RepositoryCreationTemplatePrefixRequest,
) -> EcrResult<RepositoryCreationTemplateResponse> {
    call.authorize(Action::DeleteRepositoryCreationTemplate, &Target::Registry)
        .await?;
    let t = call
        .app
        .registry
        .delete_template(&input.prefix)
        .await
        .map_err(template_error)?;
    Ok(template_response(call, &t))
}

/// DescribeRepositoryCreationTemplates: by prefix (byte order), paginated by the last prefix.
async fn describe_repository_creation_templates(
    call: &Call<'_>,
    input: DescribeRepositoryCreationTemplatesRequest,
) -> EcrResult<DescribeRepositoryCreationTemplatesResponse> {
    const TOKEN: &str = "DescribeRepositoryCreationTemplates";
    call.authorize(
        Action::DescribeRepositoryCreationTemplates,
        &Target::Registry,
    )
    .await?;
    let limit = max_results(input.max_results, 100)?;
    let after = match &input.next_token {
        Some(token) => decode_token(TOKEN, token, 1)?.remove(0),
        None => String::new(),
    };
    let mut found = call
        .app
        .registry
        .describe_templates(input.prefixes.as_deref(), &after, limit + 1)
        .await
        .map_err(template_error)?;
    let next_token = (found.len() > limit).then(|| {
        found.truncate(limit);
        encode_token(TOKEN, &[found[limit - 1].prefix.as_str()])
    });
    Ok(DescribeRepositoryCreationTemplatesResponse {
        registry_id: call.registry_id().to_owned(),
        repository_creation_templates: found.iter().map(creation_template).collect(),
        next_token,
    })
}

// ---- pull-through cache rules ----

fn rule_error(e: crate::proxy::RuleError) -> EcrError {
    use crate::proxy::RuleError;
    match e {
        RuleError::AlreadyExists(m) => {
            EcrError::new("PullThroughCacheRuleAlreadyExistsException", m)
        }
        RuleError::NotFound(m) => EcrError::new("PullThroughCacheRuleNotFoundException", m),
        RuleError::SecretNotFound(m) => EcrError::new("SecretNotFoundException", m),
        RuleError::Invalid(m) => EcrError::invalid(m),
        RuleError::Other(e) => e.into(),
    }
}

fn rule_shape(call: &Call<'_>, r: &crate::meta::StoredRule) -> PullThroughCacheRule {
    PullThroughCacheRule {
        ecr_repository_prefix: r.rule.prefix.clone(),
        upstream_registry_url: Some(r.rule.upstream_url.clone()),
        created_at: Some(timestamp(r.rule.created_at)),
        updated_at: Some(timestamp(r.rule.updated_at)),
        registry_id: call.registry_id().to_owned(),
        upstream_registry: Some(r.rule.upstream_registry.clone()),
        credential_arn: r.rule.credential_arn.clone(),
        custom_role_arn: r.rule.custom_role_arn.clone(),
        upstream_repository_prefix: r.rule.upstream_repository_prefix.clone(),
        is_valid: None,
        failure: None,
    }
}

/// CreatePullThroughCacheRule: a local prefix served from an upstream registry.
async fn create_pull_through_cache_rule(
    call: &Call<'_>,
    input: CreatePullThroughCacheRuleRequest,
) -> EcrResult<PullThroughCacheRule> {
    call.check_registry_id(input.registry_id.as_deref())?;
    call.authorize(Action::CreatePullThroughCacheRule, &Target::Registry)
        .await?;
    let rule = call
        .app
        .pull_through
        .create_rule(&crate::proxy::RuleInput {
            ecr_repository_prefix: input.ecr_repository_prefix,
            upstream_registry_url: input.upstream_registry_url,
            upstream_registry: input.upstream_registry,
            credential_arn: input.credential_arn,
            custom_role_arn: input.custom_role_arn,
            upstream_repository_prefix: input.upstream_repository_prefix,
            ..Default::default()
        })
        .await
        .map_err(rule_error)?;
    Ok(PullThroughCacheRule {
        updated_at: None,
        ..rule_shape(call, &rule)
    })
}

/// DescribePullThroughCacheRules: every rule, or the named ones (all must exist).
async fn describe_pull_through_cache_rules(
    call: &Call<'_>,
    input: DescribePullThroughCacheRulesRequest,
) -> EcrResult<DescribePullThroughCacheRulesResponse> {
    call.check_registry_id(input.registry_id.as_deref())?;
    call.authorize(Action::DescribePullThroughCacheRules, &Target::Registry)
        .await?;
    let limit = max_results(input.max_results, 100)?;
    let wanted = crate::proxy::manage::prefixes_filter(
        input.ecr_repository_prefixes.as_deref().unwrap_or_default(),
    )?;
    let rules = call.app.registry.meta.pull_through_rules().await?;
    for w in &wanted {
        if !rules.iter().any(|r| &r.rule.prefix == w) {
            return Err(EcrError::new(
                "PullThroughCacheRuleNotFoundException",
                format!(
                    "The pull through cache rule with prefix '{w}' does not exist in the registry with id '{}'",
                    call.registry_id()
                ),
            ));
        }
    }
    let after = match input.next_token.as_deref() {
        Some(token) => decode_token("pull-through-rules", token, 1)?.pop(),
        None => None,
    };
    let mut page: Vec<_> = rules
        .iter()
        .filter(|r| wanted.is_empty() || wanted.contains(&r.rule.prefix))
        .filter(|r| after.as_ref().map_or(true, |a| &r.rule.prefix > a))
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(encode_token("pull-through-rules", &[&last.rule.prefix])),
        _ => None,
    };
    Ok(DescribePullThroughCacheRulesResponse {
        pull_through_cache_rules: page.into_iter().map(|r| rule_shape(call, r)).collect(),
        next_token,
    })
}

/// UpdatePullThroughCacheRule: a new credential (or role) for a rule.
async fn update_pull_through_cache_rule(
    call: &Call<'_>,
    input: PullThroughCacheRuleRequest,
) -> EcrResult<PullThroughCacheRule> {
    call.check_registry_id(input.registry_id.as_deref())?;
    call.authorize(Action::UpdatePullThroughCacheRule, &Target::Registry)
        .await?;
    let rule = call
        .app
        .pull_through
        .update_rule(&crate::proxy::RuleInput {
            ecr_repository_prefix: input.ecr_repository_prefix,
            credential_arn: input.credential_arn,
            custom_role_arn: input.custom_role_arn,
            ..Default::default()
        })
        .await
        .map_err(rule_error)?;
    Ok(PullThroughCacheRule {
        upstream_registry_url: None,
        created_at: None,
        upstream_registry: None,
        ..rule_shape(call, &rule)
    })
}

/// DeletePullThroughCacheRule: the rule goes, its cached repositories stay.
async fn delete_pull_through_cache_rule(
    call: &Call<'_>,
    input: PullThroughCacheRuleRequest,
) -> EcrResult<PullThroughCacheRule> {
    call.check_registry_id(input.registry_id.as_deref())?;
    call.authorize(Action::DeletePullThroughCacheRule, &Target::Registry)
        .await?;
    let rule = call
        .app
        .pull_through
        .delete_rule(&input.ecr_repository_prefix)
        .await
        .map_err(rule_error)?;
    Ok(PullThroughCacheRule {
        updated_at: None,
        upstream_registry: None,
        ..rule_shape(call, &rule)
    })
}

/// ValidatePullThroughCacheRule: reaches the upstream with the rule's credential and says what
/// failed.
async fn validate_pull_through_cache_rule(
    call: &Call<'_>,
    input: PullThroughCacheRuleRequest,
) -> EcrResult<PullThroughCacheRule> {
    call.check_registry_id(input.registry_id.as_deref())?;
    call.authorize(Action::ValidatePullThroughCacheRule, &Target::Registry)
        .await?;
    let rule = call
        .app
        .pull_through
        .find_rule(&input.ecr_repository_prefix)
        .await
        .map_err(rule_error)?;
    let (is_valid, failure) =
        crate::proxy::manage::validation_outcome(call.app.pull_through.validate(&rule).await);
    Ok(PullThroughCacheRule {
        created_at: None,
        updated_at: None,
        upstream_registry: None,
        is_valid: Some(is_valid),
        failure,
        ..rule_shape(call, &rule)
    })
}
