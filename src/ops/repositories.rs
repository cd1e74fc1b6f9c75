//! Repository operations: CreateRepository, DescribeRepositories (and the one listing of the
//! repositories a caller may see, which `/v2/_catalog` uses too), DeleteRepository and
//! PutImageTagMutability; plus the validation of repository names and resource tags they share
//! with other operations.

use std::collections::HashSet;

use super::shapes::{
    timestamp, CreateRepositoryRequest, DeleteRepositoryRequest, DescribeRepositoriesRequest,
    DescribeRepositoriesResponse, EncryptionConfiguration, ImageScanningConfiguration,
    PutImageTagMutabilityRequest, PutImageTagMutabilityResponse, Repository, RepositoryResponse,
    ResourceTag, Timestamp,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Access, Caller, Permission, RequestFacts, Resource, Subject};
use crate::error::{Error, Result};
use crate::meta::{NewRepository, RepositoryRow, RepositorySummaryRow};
use crate::oci::RepoName;
use crate::policy::templates::AppliedFor;
use crate::policy::{Action, TagMutability};
use crate::service::{Registry, MAX_RESOURCE_TAGS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A repository name as ECR validates it (2 to 256 characters, the OCI grammar):
/// `NAME_INVALID` (ECR: `InvalidParameterException`) in ECR's words.
pub fn repository_name(name: &str) -> Result<RepoName> {
    if name.len() < 2 || name.len() > 256 {
        return Err(Error::NameInvalid(format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must have length between 2 and 256', got {} characters",
            name.len()
        )));
    }
    RepoName::parse(name).map_err(|e| {
        Error::NameInvalid(format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: {}",
            e.message()
        ))
    })
}

/// ECR's answer for a repository that does not exist.
pub fn repository_not_found(cx: &Context<'_>, name: &str) -> Error {
    Error::NameUnknown(format!(
        "The repository with name '{name}' does not exist in the registry with id '{}'",
        cx.registry_id()
    ))
}

/// Maps `NameUnknown` from the services to ECR's wording for `name`.
pub fn in_repository<'a>(cx: &'a Context<'_>, name: &'a str) -> impl Fn(Error) -> Error + 'a {
    move |e| match e {
        Error::NameUnknown(_) => repository_not_found(cx, name),
        other => other,
    }
}

/// Resource tags as ECR accepts them: at most 50, keys 1..=128 characters not starting with
/// `aws:`, values at most 256 characters, no key twice.
pub fn check_tags(tags: &[ResourceTag]) -> Result<Vec<(String, String)>> {
    if tags.len() > MAX_RESOURCE_TAGS {
        return Err(Error::TooManyTags(format!(
            "a resource can have at most {MAX_RESOURCE_TAGS} tags"
        )));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        check_tag_key(&tag.key)?;
        if tag.value.chars().count() > 256 {
            return Err(Error::InvalidTag(format!(
                "the value of tag '{}' is longer than 256 characters",
                tag.key
            )));
        }
        if !seen.insert(tag.key.as_str()) {
            return Err(Error::InvalidTag(format!(
                "the tag key '{}' is given twice",
                tag.key
            )));
        }
        out.push((tag.key.clone(), tag.value.clone()));
    }
    Ok(out)
}

/// A resource tag key: 1 to 128 characters, not in the reserved `aws:` namespace.
pub fn check_tag_key(key: &str) -> Result<()> {
    let length = key.chars().count();
    if length == 0 || length > 128 {
        return Err(Error::InvalidTag(
            "a tag key must be 1 to 128 characters long".into(),
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::InvalidTag(format!(
            "the tag key '{key}' uses the reserved prefix 'aws:'"
        )));
    }
    Ok(())
}

/// A repository in ECR's shape: the one serialisation every door answers with.
pub fn repository_shape(cx: &Context<'_>, row: &RepositoryRow) -> Repository {
    Repository {
        repository_arn: cx.repository_arn(&row.name),
        registry_id: cx.registry_id().to_owned(),
        repository_name: row.name.clone(),
        repository_uri: format!("{}/{}", cx.endpoint.host, row.name),
        created_at: timestamp(row.created_at),
        image_tag_mutability: row.tag_mutability.mode.as_str().into(),
        image_tag_mutability_exclusion_filters: row.tag_mutability.exclusion_filters.clone(),
        image_scanning_configuration: ImageScanningConfiguration {
            scan_on_push: row.scan_on_push,
        },
        encryption_configuration: EncryptionConfiguration {
            encryption_type: "AES256".into(),
            kms_key: None,
        },
    }
}

/// How many rows one listing query reads while it fills a page with visible repositories.
const LISTING_BATCH: usize = 500;

/// The repositories after `after` (by name) that `caller` may `ecr:DescribeRepositories`, at
/// most `limit`, reading on past hidden ones so that a page is full unless the listing ended;
/// and whether more visible repositories follow. The one listing behind DescribeRepositories,
/// the REST listing and `/v2/_catalog`.
pub async fn visible_repositories(
    registry: &Registry,
    access: &Access,
    caller: &Caller,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<RepositoryRow>, bool)> {
    visible_repositories_with_prefix(registry, access, caller, "", after, limit).await
}

/// [`visible_repositories`] among the names that start with `prefix` (a range on the name's
/// index, so a narrow prefix reads only its own rows).
pub async fn visible_repositories_with_prefix(
    registry: &Registry,
    access: &Access,
    caller: &Caller,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<RepositoryRow>, bool)> {
    let mut visible = Vec::new();
    let mut cursor = after.map(str::to_owned);
    loop {
        let rows = if prefix.is_empty() {
            registry
                .repositories()
                .list_repository_rows(cursor.as_deref(), LISTING_BATCH as i64)
                .await?
        } else {
            registry
                .repositories()
                .list_repository_rows_with_prefix(cursor.as_deref(), prefix, LISTING_BATCH as i64)
                .await?
        };
        let exhausted = rows.len() < LISTING_BATCH;
        for row in rows {
            cursor = Some(row.name.clone());
            if !access
                .allows(caller, Action::DescribeRepositories, &row.name)
                .await?
            {
                continue;
            }
            if visible.len() == limit {
                return Ok((visible, true));
            }
            visible.push(row);
        }
        if exhausted {
            return Ok((visible, false));
        }
    }
}

/// A push to a missing repository creates it, with its `CREATE_ON_PUSH` creation template's
/// settings, when create-on-push is on and the caller may `ecr:CreateRepository` there (the
/// repository and all its settings in one transaction). A registry replicating into this one
/// creates it with the `REPLICATION` template, whatever the create-on-push setting says (as ECR
/// replication does), when it may `ecr:CreateRepository` there.
pub async fn create_on_push(
    registry: &Registry,
    access: &Access,
    subject: &Subject,
    name: &RepoName,
    facts: &RequestFacts,
) -> Result<()> {
    let replicating = subject
        .principal
        .as_ref()
        .is_some_and(|p| p.is_replicator());
    if !replicating && !access.create_on_push().await? {
        return Err(Error::NameUnknown(format!(
            "repository '{name}' does not exist and create-on-push is off; create the repository first"
        )));
    }
    let decision = access
        .decide(
            subject,
            Action::CreateRepository,
            Some(name.as_str()),
            facts,
        )
        .await?;
    if !decision.is_allowed() {
        return Err(access.denied(
            subject,
            Action::CreateRepository.iam_name(),
            Resource::Repository(name.as_str()),
            &decision.to_string(),
        ));
    }
    let row = registry
        .templates()
        .create_repository_from_template(
            name,
            if replicating {
                AppliedFor::Replication
            } else {
                AppliedFor::CreateOnPush
            },
        )
        .await?;
    access.repository_policy_changed(&row.name);
    Ok(())
}

impl Operation for CreateRepositoryRequest {
    const NAME: &'static str = "ecr:CreateRepository";
    type Output = RepositoryResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::CreateRepository,
            Resource::Repository(&self.repository_name),
        )
    }

    /// CreateRepository (with `tags`, which need `ecr:TagResource` too).
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryResponse> {
        if self.tags.as_ref().is_some_and(|t| !t.is_empty()) {
            cx.authorize(
                Action::TagResource,
                Resource::Repository(&self.repository_name),
            )
            .await?;
        }
        cx.check_registry_id(self.registry_id.as_deref())?;
        let tags = check_tags(self.tags.as_deref().unwrap_or_default())?;
        let name = repository_name(&self.repository_name)?;
        let tag_mutability = TagMutability::from_json(
            self.image_tag_mutability
                .as_ref()
                .filter(|v| !v.is_null())
                .unwrap_or(&serde_json::Value::String("MUTABLE".into())),
            self.image_tag_mutability_exclusion_filters.as_ref(),
        )
        .map_err(Error::InvalidParameter)?;
        if let Some(e) = &self.encryption_configuration {
            if e.encryption_type != "AES256" || e.kms_key.is_some() {
                return Err(Error::InvalidParameter(
                    "encryptionConfiguration: only encryptionType AES256 is supported by Berth"
                        .into(),
                ));
            }
        }
        let settings = NewRepository {
            tag_mutability,
            scan_on_push: self
                .image_scanning_configuration
                .is_some_and(|c| c.scan_on_push),
            resource_tags: tags,
            ..Default::default()
        };
        let row = cx
            .registry
            .repositories()
            .create_repository_with(&name, &settings)
            .await
            .map_err(|e| match e {
                Error::AlreadyExists(_) => Error::AlreadyExists(format!(
                    "The repository with name '{name}' already exists in the registry with id '{}'",
                    cx.registry_id()
                )),
                other => other,
            })?;
        Ok(RepositoryResponse {
            repository: repository_shape(cx, &row),
        })
    }
}

impl Operation for DescribeRepositoriesRequest {
    const NAME: &'static str = "ecr:DescribeRepositories";
    type Output = DescribeRepositoriesResponse;

    /// Named repositories are authorized one by one; a listing shows only the repositories
    /// the caller may describe.
    fn permission(&self) -> Permission<'_> {
        match self.repository_names.as_deref() {
            Some([one]) => Permission::Ecr(Action::DescribeRepositories, Resource::Repository(one)),
            _ => Permission::SignedIn,
        }
    }

    async fn run(self, cx: &Context<'_>) -> Result<DescribeRepositoriesResponse> {
        if let Some(names) = self.repository_names {
            for name in &names {
                cx.authorize(Action::DescribeRepositories, Resource::Repository(name))
                    .await?;
            }
            cx.check_registry_id(self.registry_id.as_deref())?;
            if names.is_empty() || names.len() > 100 {
                return Err(Error::InvalidParameter(
                    "Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'must have between 1 and 100 items'".into(),
                ));
            }
            if self.max_results.is_some() || self.next_token.is_some() {
                return Err(Error::InvalidParameter(
                    "maxResults and nextToken cannot be used together with repositoryNames".into(),
                ));
            }
            let mut repositories = Vec::new();
            let mut seen = HashSet::new();
            for name in &names {
                let name = repository_name(name)?;
                if !seen.insert(name.clone()) {
                    continue;
                }
                let row = cx
                    .registry
                    .repositories()
                    .describe_repository(&name)
                    .await
                    .map_err(in_repository(cx, name.as_str()))?;
                repositories.push(repository_shape(cx, &row));
            }
            return Ok(DescribeRepositoriesResponse {
                repositories,
                next_token: None,
            });
        }
        cx.check_registry_id(self.registry_id.as_deref())?;
        let limit = max_results(self.max_results, 100)?;
        let after = match self.next_token.as_deref() {
            Some(token) => decode_token("repositories", token, 1)?.pop(),
            None => None,
        };
        let (rows, more) =
            visible_repositories(cx.registry, cx.access, cx.caller, after.as_deref(), limit)
                .await?;
        let next_token = more
            .then(|| {
                rows.last()
                    .map(|r| encode_token("repositories", &[&r.name]))
            })
            .flatten();
        Ok(DescribeRepositoriesResponse {
            repositories: rows.iter().map(|row| repository_shape(cx, row)).collect(),
            next_token,
        })
    }
}

impl Operation for DeleteRepositoryRequest {
    const NAME: &'static str = "ecr:DeleteRepository";
    type Output = RepositoryResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DeleteRepository,
            Resource::Repository(&self.repository_name),
        )
    }

    /// DeleteRepository (`force` deletes a repository that still holds images). The
    /// repository's policy goes with it, at once on this replica.
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let force = self.force.unwrap_or(false);
        let row = cx
            .registry
            .repositories()
            .delete_repository(&name, force)
            .await
            .map_err(|e| match e {
                Error::NotEmpty(_) => Error::NotEmpty(format!(
                    "The repository with name '{name}' in registry with id '{}' cannot be deleted because it still contains images",
                    cx.registry_id()
                )),
                other => in_repository(cx, name.as_str())(other),
            })?;
        cx.access.repository_policy_changed(name.as_str());
        cx.note(if force { "deleted (force)" } else { "deleted" });
        Ok(RepositoryResponse {
            repository: repository_shape(cx, &row),
        })
    }
}

impl Operation for PutImageTagMutabilityRequest {
    const NAME: &'static str = "ecr:PutImageTagMutability";
    type Output = PutImageTagMutabilityResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutImageTagMutability,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<PutImageTagMutabilityResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let setting = TagMutability::from_json(
            &self.image_tag_mutability,
            self.image_tag_mutability_exclusion_filters.as_ref(),
        )
        .map_err(Error::InvalidParameter)?;
        let row = cx
            .registry
            .repositories()
            .set_tag_mutability(&name, &setting)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let filters = row
            .tag_mutability
            .exclusion_filters
            .iter()
            .map(|f| f.filter.as_str())
            .collect::<Vec<_>>()
            .join(",");
        cx.note(if filters.is_empty() {
            format!("imageTagMutability={}", row.tag_mutability.mode)
        } else {
            format!(
                "imageTagMutability={} exclusions={filters}",
                row.tag_mutability.mode
            )
        });
        Ok(tag_mutability_shape(cx, &row))
    }
}

/// A repository's tag mutability in ECR's shape (PutImageTagMutability's answer).
pub fn tag_mutability_shape(
    cx: &Context<'_>,
    row: &RepositoryRow,
) -> PutImageTagMutabilityResponse {
    PutImageTagMutabilityResponse {
        registry_id: cx.registry_id().to_owned(),
        repository_name: row.name.clone(),
        image_tag_mutability: row.tag_mutability.mode.as_str().into(),
        image_tag_mutability_exclusion_filters: row.tag_mutability.exclusion_filters.clone(),
    }
}

/// Berth's ListRepositorySummaries (the console's repositories page, the REST API's
/// `/api/v1/repository-summaries`): the repositories the caller may describe whose names start
/// with `prefix`, by name, with what each holds.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListRepositorySummariesRequest {
    /// Only names starting with this (nothing: every repository).
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub next_token: Option<String>,
    /// 1 to 1000, default 100.
    #[serde(default)]
    pub max_results: Option<i64>,
}

/// One repository with what it holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySummary {
    pub repository_name: String,
    pub repository_uri: String,
    pub created_at: Timestamp,
    pub image_tag_mutability: String,
    pub scan_on_push: bool,
    /// Manifests stored (images, index children and referrers, as DescribeImages lists them).
    pub image_count: i64,
    /// Bytes of the blobs the repository holds, each counted once.
    pub total_size_in_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pushed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_recorded_pull_time: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListRepositorySummariesResponse {
    pub repository_summaries: Vec<RepositorySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The token names the prefix too: a page token fits only the search it came from.
const SUMMARIES: &str = "repository-summaries";

impl Operation for ListRepositorySummariesRequest {
    const NAME: &'static str = "berth:ListRepositorySummaries";
    type Output = ListRepositorySummariesResponse;

    /// Any signed-in caller; the listing shows only the repositories it may describe.
    fn permission(&self) -> Permission<'_> {
        Permission::SignedIn
    }

    async fn run(self, cx: &Context<'_>) -> Result<ListRepositorySummariesResponse> {
        let prefix = self.prefix.unwrap_or_default();
        if prefix.len() > 256 {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'prefix' failed to satisfy constraint: 'must have length at most 256'".into(),
            ));
        }
        let limit = max_results(self.max_results, 100)?;
        let after = match self.next_token.as_deref() {
            Some(token) => {
                let mut parts = decode_token(SUMMARIES, token, 2)?;
                let after = parts.pop();
                if parts.pop().as_deref() != Some(prefix.as_str()) {
                    return Err(Error::InvalidParameter(
                        "Invalid parameter at 'nextToken': the token belongs to another prefix"
                            .into(),
                    ));
                }
                after
            }
            None => None,
        };
        let (rows, more) = visible_repositories_with_prefix(
            cx.registry,
            cx.access,
            cx.caller,
            &prefix,
            after.as_deref(),
            limit,
        )
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut held: std::collections::HashMap<i64, RepositorySummaryRow> = cx
            .registry
            .repositories()
            .summaries(&ids)
            .await?
            .into_iter()
            .map(|s| (s.repository_id, s))
            .collect();
        let next_token = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_token(SUMMARIES, &[&prefix, &last.name])),
            _ => None,
        };
        let repository_summaries = rows
            .iter()
            .map(|row| {
                let s = held.remove(&row.id).unwrap_or_default();
                RepositorySummary {
                    repository_name: row.name.clone(),
                    repository_uri: format!("{}/{}", cx.endpoint.host, row.name),
                    created_at: timestamp(row.created_at),
                    image_tag_mutability: row.tag_mutability.mode.as_str().into(),
                    scan_on_push: row.scan_on_push,
                    image_count: s.image_count,
                    total_size_in_bytes: s.total_size,
                    last_pushed_at: s.last_pushed_at.map(timestamp),
                    last_recorded_pull_time: s.last_pulled_at.map(timestamp),
                }
            })
            .collect();
        Ok(ListRepositorySummariesResponse {
            repository_summaries,
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_rules() {
        let tag = |k: &str, v: &str| ResourceTag {
            key: k.into(),
            value: v.into(),
        };
        assert!(check_tags(&[tag("env", "prod"), tag("team", "")]).is_ok());
        for bad in [
            vec![tag("aws:x", "1")],
            vec![tag("", "1")],
            vec![tag("a", "1"), tag("a", "2")],
        ] {
            assert!(matches!(check_tags(&bad), Err(Error::InvalidTag(_))));
        }
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert!(matches!(check_tags(&many), Err(Error::TooManyTags(_))));
    }
}
