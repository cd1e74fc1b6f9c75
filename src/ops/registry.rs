//! The registry as a whole: DescribeRegistry, and GetAuthorizationToken (the 12-hour registry
//! password behind `aws ecr get-login-password | docker login -u AWS`, and passwords for the
//! registries this one trusts).

use base64::Engine as _;

use super::shapes::{
    AuthorizationData, DescribeRegistryRequest, DescribeRegistryResponse,
    GetAuthorizationTokenRequest, GetAuthorizationTokenResponse,
};
use super::{Context, Operation};
use crate::access::{Permission, Resource};
use crate::auth::credential::CredentialKind;
use crate::error::{Error, Result};
use crate::policy::Action;

impl Operation for DescribeRegistryRequest {
    const NAME: &'static str = "ecr:DescribeRegistry";
    type Output = DescribeRegistryResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DescribeRegistry, Resource::Registry)
    }

    /// The registry id and its replication configuration.
    async fn run(self, cx: &Context<'_>) -> Result<DescribeRegistryResponse> {
        let configuration = cx.registry.replication().configuration().await?;
        Ok(DescribeRegistryResponse {
            registry_id: cx.registry_id().to_owned(),
            replication_configuration: (*configuration).clone(),
        })
    }
}

impl Operation for GetAuthorizationTokenRequest {
    const NAME: &'static str = "ecr:GetAuthorizationToken";
    type Output = GetAuthorizationTokenResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::GetAuthorizationToken, Resource::Registry)
    }

    /// One registry password per registry id asked for (this registry's when none is named).
    /// For this registry: tied to the caller's access key, so only a caller signed in with one
    /// gets it (a password must not mint its own successor). For a registry this one trusts
    /// (`[federation]`): a short-lived password that registry accepts from this one's users,
    /// with its URL as `proxyEndpoint`.
    async fn run(self, cx: &Context<'_>) -> Result<GetAuthorizationTokenResponse> {
        let ids = self.registry_ids.unwrap_or_default();
        if ids.len() > 10 {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'registryIds' failed to satisfy constraint: 'at most 10 items'"
                    .into(),
            ));
        }
        let trusted = cx.access.trusted_registries();
        for id in &ids {
            if id != cx.registry_id() && !trusted.contains(id) {
                return Err(Error::InvalidParameter(format!(
                    "Invalid parameter at 'registryIds' failed to satisfy constraint: '{}' is \
                     neither this registry ({}) nor one it trusts ([federation] registries)",
                    id.chars().take(40).collect::<String>(),
                    cx.registry_id()
                )));
            }
        }
        let own = || cx.registry_id().to_owned();
        let ids = if ids.is_empty() { vec![own()] } else { ids };
        let mut authorization_data = Vec::with_capacity(ids.len());
        for id in &ids {
            let (password, expires, endpoint) = if id == cx.registry_id() {
                let (password, expires) = own_registry_password(cx)?;
                (password, expires, cx.endpoint.url.clone())
            } else {
                let (password, expires) = cx.access.federated_password(&cx.caller.subject, id)?;
                let endpoint = trusted
                    .config(id)
                    .map(|c| c.url.clone())
                    .unwrap_or_default();
                (password, expires, endpoint)
            };
            authorization_data.push(AuthorizationData {
                authorization_token: base64::engine::general_purpose::STANDARD
                    .encode(format!("AWS:{password}")),
                expires_at: expires.timestamp() as f64,
                proxy_endpoint: endpoint,
            });
        }
        Ok(GetAuthorizationTokenResponse { authorization_data })
    }
}

/// This registry's 12-hour password for the caller's access key.
fn own_registry_password(cx: &Context<'_>) -> Result<(String, chrono::DateTime<chrono::Utc>)> {
    let subject = &cx.caller.subject;
    let (Some(principal), Some(access_key_id)) = (
        subject.principal.as_ref(),
        subject
            .credential
            .as_ref()
            .filter(|c| c.kind == CredentialKind::AccessKey)
            .and_then(|c| c.access_key_id.as_deref()),
    ) else {
        return Err(Error::Denied(format!(
            "{} needs a caller signed in with an access key (AWS Signature V4) for a password \
             to this registry",
            GetAuthorizationTokenRequest::NAME
        )));
    };
    cx.access.registry_password(principal, access_key_id)
}
