//! Resource policies: SetRepositoryPolicy, GetRepositoryPolicy, DeleteRepositoryPolicy,
//! PutRegistryPolicy, GetRegistryPolicy and DeleteRegistryPolicy. A document is validated when
//! stored (refused naming the statement and field) and kept exactly as sent; the REST API
//! answers a GET with that text itself (`policyText`). A change applies at once on this replica:
//! the access layer drops its copy of the document and the decisions made with it.

use super::repositories::{in_repository, repository_name};
use super::shapes::{
    DeleteRegistryPolicyRequest, DeleteRepositoryPolicyRequest, GetRegistryPolicyRequest,
    GetRepositoryPolicyRequest, PutRegistryPolicyRequest, RegistryPolicyResponse,
    RepositoryPolicyResponse, SetRepositoryPolicyRequest,
};
use super::{Context, Operation};
use crate::access::{Permission, PolicyTarget, Resource};
use crate::error::{Error, Missing, Result};
use crate::oci::RepoName;
use crate::policy::Action;

/// ECR's answer for a repository without a policy.
fn repository_policy_not_found(cx: &Context<'_>, name: &RepoName) -> Error {
    Error::Missing(
        Missing::RepositoryPolicy,
        format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            cx.registry_id()
        ),
    )
}

/// ECR's answer for a registry without a policy.
fn registry_policy_not_found(cx: &Context<'_>) -> Error {
    Error::Missing(
        Missing::RegistryPolicy,
        format!(
            "Registry policy does not exist in the registry with id '{}'",
            cx.registry_id()
        ),
    )
}

/// The repository a repository-policy operation names: this registry's id, a valid name, and a
/// repository that exists (ECR's RepositoryNotFoundException otherwise).
async fn existing_repository(
    cx: &Context<'_>,
    registry_id: Option<&str>,
    name: &str,
) -> Result<RepoName> {
    cx.check_registry_id(registry_id)?;
    let name = repository_name(name)?;
    cx.registry
        .repositories()
        .describe_repository(&name)
        .await
        .map_err(in_repository(cx, name.as_str()))?;
    Ok(name)
}

fn repository_policy(cx: &Context<'_>, name: &RepoName, text: String) -> RepositoryPolicyResponse {
    RepositoryPolicyResponse {
        registry_id: cx.registry_id().to_owned(),
        repository_name: name.to_string(),
        policy_text: text,
    }
}

impl Operation for SetRepositoryPolicyRequest {
    const NAME: &'static str = "ecr:SetRepositoryPolicy";
    type Output = RepositoryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::SetRepositoryPolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Validates and stores the repository's policy (replacing any earlier one).
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryPolicyResponse> {
        let name =
            existing_repository(cx, self.registry_id.as_deref(), &self.repository_name).await?;
        cx.access
            .set_policy(
                &PolicyTarget::Repository(name.to_string()),
                &self.policy_text,
            )
            .await?;
        cx.note("repository policy set");
        Ok(repository_policy(cx, &name, self.policy_text))
    }
}

impl Operation for GetRepositoryPolicyRequest {
    const NAME: &'static str = "ecr:GetRepositoryPolicy";
    type Output = RepositoryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::GetRepositoryPolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<RepositoryPolicyResponse> {
        let name =
            existing_repository(cx, self.registry_id.as_deref(), &self.repository_name).await?;
        let text = cx
            .access
            .policy_text(&PolicyTarget::Repository(name.to_string()))
            .await?
            .ok_or_else(|| repository_policy_not_found(cx, &name))?;
        Ok(repository_policy(cx, &name, text))
    }
}

impl Operation for DeleteRepositoryPolicyRequest {
    const NAME: &'static str = "ecr:DeleteRepositoryPolicy";
    type Output = RepositoryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DeleteRepositoryPolicy,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Removes the repository's policy; answers the deleted text.
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryPolicyResponse> {
        let name =
            existing_repository(cx, self.registry_id.as_deref(), &self.repository_name).await?;
        let text = cx
            .access
            .delete_policy(&PolicyTarget::Repository(name.to_string()))
            .await?
            .ok_or_else(|| repository_policy_not_found(cx, &name))?;
        cx.note("repository policy removed");
        Ok(repository_policy(cx, &name, text))
    }
}

impl Operation for PutRegistryPolicyRequest {
    const NAME: &'static str = "ecr:PutRegistryPolicy";
    type Output = RegistryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::PutRegistryPolicy, Resource::Registry)
    }

    /// Validates and stores the registry policy (replacing any earlier one).
    async fn run(self, cx: &Context<'_>) -> Result<RegistryPolicyResponse> {
        cx.access
            .set_policy(&PolicyTarget::Registry, &self.policy_text)
            .await?;
        cx.note("registry policy set");
        Ok(RegistryPolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            policy_text: self.policy_text,
        })
    }
}

impl Operation for GetRegistryPolicyRequest {
    const NAME: &'static str = "ecr:GetRegistryPolicy";
    type Output = RegistryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::GetRegistryPolicy, Resource::Registry)
    }

    async fn run(self, cx: &Context<'_>) -> Result<RegistryPolicyResponse> {
        let text = cx
            .access
            .policy_text(&PolicyTarget::Registry)
            .await?
            .ok_or_else(|| registry_policy_not_found(cx))?;
        Ok(RegistryPolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            policy_text: text,
        })
    }
}

impl Operation for DeleteRegistryPolicyRequest {
    const NAME: &'static str = "ecr:DeleteRegistryPolicy";
    type Output = RegistryPolicyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DeleteRegistryPolicy, Resource::Registry)
    }

    /// Removes the registry policy; answers the deleted text.
    async fn run(self, cx: &Context<'_>) -> Result<RegistryPolicyResponse> {
        let text = cx
            .access
            .delete_policy(&PolicyTarget::Registry)
            .await?
            .ok_or_else(|| registry_policy_not_found(cx))?;
        cx.note("registry policy removed");
        Ok(RegistryPolicyResponse {
            registry_id: cx.registry_id().to_owned(),
            policy_text: text,
        })
    }
}
