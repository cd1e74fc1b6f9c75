//! The registry as a whole: DescribeRegistry, and GetAuthorizationToken (the 12-hour registry
//! password behind `aws ecr get-login-password | docker login -u AWS`).

use base64::Engine as _;

use super::shapes::{
    AuthorizationData, DescribeRegistryRequest, DescribeRegistryResponse,
    GetAuthorizationTokenRequest, GetAuthorizationTokenResponse, ReplicationConfiguration,
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

    /// The registry id; replication is not configurable yet (no rules).
    async fn run(self, cx: &Context<'_>) -> Result<DescribeRegistryResponse> {
        Ok(DescribeRegistryResponse {
            registry_id: cx.registry_id().to_owned(),
            replication_configuration: ReplicationConfiguration { rules: Vec::new() },
        })
    }
}

impl Operation for GetAuthorizationTokenRequest {
    const NAME: &'static str = "ecr:GetAuthorizationToken";
    type Output = GetAuthorizationTokenResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::GetAuthorizationToken, Resource::Registry)
    }

    /// A registry password for the caller's access key (one entry per registry id asked for,
    /// all this registry's). Only a caller signed in with an access key gets one: the password
    /// is tied to that key, and a password must not mint its own successor.
    async fn run(self, cx: &Context<'_>) -> Result<GetAuthorizationTokenResponse> {
        let ids = self.registry_ids.unwrap_or_default();
        if ids.len() > 10 {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'registryIds' failed to satisfy constraint: 'at most 10 items'"
                    .into(),
            ));
        }
        for id in &ids {
            cx.check_registry_id(Some(id))?;
        }
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
                "{} needs a caller signed in with an access key (AWS Signature V4)",
                Self::NAME
            )));
        };
        let (password, expires) = cx.access.registry_password(principal, access_key_id)?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
        Ok(GetAuthorizationTokenResponse {
            authorization_data: (0..ids.len().max(1))
                .map(|_| AuthorizationData {
                    authorization_token: token.clone(),
                    expires_at: expires.timestamp() as f64,
                    proxy_endpoint: cx.endpoint.url.clone(),
                })
                .collect(),
        })
    }
}
