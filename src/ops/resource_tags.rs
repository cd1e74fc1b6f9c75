//! Resource tags on repositories, named by ARN: TagResource, UntagResource and
//! ListTagsForResource (ECR API only).
//!
//! The gate decides on the repository the ARN names before the ARN is validated: a caller that
//! may not tag a repository learns nothing from a malformed or foreign ARN. An ARN that names
//! no repository at all is decided at registry scope.

use super::repositories::{check_tag_key, check_tags, in_repository};
use super::shapes::{
    EmptyResponse, ListTagsForResourceRequest, ListTagsForResourceResponse, ResourceTag,
    TagResourceRequest, UntagResourceRequest,
};
use super::{Context, Operation};
use crate::access::{Permission, Resource};
use crate::error::{Error, Result};
use crate::oci::RepoName;
use crate::policy::Action;
use crate::service::MAX_RESOURCE_TAGS;

/// What the gate decides on for `arn`: the repository of `arn:<partition>:ecr:<region>:
/// <account>:repository/<name>` (as written), or the registry for anything else.
fn arn_resource(arn: &str) -> Resource<'_> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "ecr", _, _, resource] => resource
            .strip_prefix("repository/")
            .map_or(Resource::Registry, Resource::Repository),
        _ => Resource::Registry,
    }
}

/// The repository named by `arn:aws:ecr:<region>:<registryId>:repository/<name>` of this
/// registry.
fn repository_of_arn(cx: &Context<'_>, arn: &str) -> Result<RepoName> {
    let invalid = || {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN' ({}); expected arn:aws:ecr:{}:{}:repository/<name>",
            arn.chars().take(300).collect::<String>(),
            cx.region(),
            cx.registry_id()
        ))
    };
    let prefix = format!(
        "arn:aws:ecr:{}:{}:repository/",
        cx.region(),
        cx.registry_id()
    );
    let name = arn.strip_prefix(&prefix).ok_or_else(invalid)?;
    RepoName::parse(name).map_err(|_| invalid())
}

impl Operation for TagResourceRequest {
    const NAME: &'static str = "ecr:TagResource";
    type Output = EmptyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::TagResource, arn_resource(&self.resource_arn))
    }

    /// Adds or overwrites tags on a repository (at most 50 in all).
    async fn run(self, cx: &Context<'_>) -> Result<EmptyResponse> {
        let name = repository_of_arn(cx, &self.resource_arn)?;
        let tags = check_tags(&self.tags)?;
        let fits = cx
            .registry
            .repositories()
            .tag_repository(&name, &tags)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        if !fits {
            return Err(Error::TooManyTags(format!(
                "a resource can have at most {MAX_RESOURCE_TAGS} tags"
            )));
        }
        Ok(EmptyResponse {})
    }
}

impl Operation for UntagResourceRequest {
    const NAME: &'static str = "ecr:UntagResource";
    type Output = EmptyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::UntagResource, arn_resource(&self.resource_arn))
    }

    /// Removes tags by key (keys the repository does not have are ignored).
    async fn run(self, cx: &Context<'_>) -> Result<EmptyResponse> {
        let name = repository_of_arn(cx, &self.resource_arn)?;
        for key in &self.tag_keys {
            check_tag_key(key)?;
        }
        cx.registry
            .repositories()
            .untag_repository(&name, &self.tag_keys)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        Ok(EmptyResponse {})
    }
}

impl Operation for ListTagsForResourceRequest {
    const NAME: &'static str = "ecr:ListTagsForResource";
    type Output = ListTagsForResourceResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::ListTagsForResource,
            arn_resource(&self.resource_arn),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<ListTagsForResourceResponse> {
        let name = repository_of_arn(cx, &self.resource_arn)?;
        let tags = cx
            .registry
            .repositories()
            .repository_tags(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        Ok(ListTagsForResourceResponse {
            tags: tags
                .into_iter()
                .map(|(key, value)| ResourceTag { key, value })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_decides_on_the_repository_an_arn_names() {
        assert_eq!(
            arn_resource("arn:aws:ecr:us-east-1:000000000000:repository/team/app"),
            Resource::Repository("team/app")
        );
        // Another region or account: still that name (the operation refuses it after the gate).
        assert_eq!(
            arn_resource("arn:aws:ecr:eu-west-9:123:repository/team/app"),
            Resource::Repository("team/app")
        );
        for other in [
            "nonsense",
            "",
            "arn:aws:s3:::bucket/repository/x",
            "arn:aws:ecr:us-east-1:000000000000:registry/x",
        ] {
            assert_eq!(arn_resource(other), Resource::Registry, "{other}");
        }
    }
}
