//! The kinds of credential a caller can present (pure vocabulary: tokens record the kind they
//! were obtained with). Which door accepts which kind is the gate's table,
//! [`crate::access::gate::ACCEPTED`].

use serde::{Deserialize, Serialize};

/// The kind of credential a request was authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A user's password (HTTP Basic).
    Password,
    /// A robot account's secret (HTTP Basic as `robot/<name>`).
    RobotSecret,
    /// An access key id and secret: AWS Signature V4 on the ECR API.
    AccessKey,
    /// A registry password from ECR's `GetAuthorizationToken` (HTTP Basic as `AWS`).
    EcrPassword,
    /// A refresh token from `/token` (`offline_token=true`, docker's `identitytoken`).
    RefreshToken,
    /// A Bearer access token from `/token`, scoped to repositories.
    RegistryToken,
    /// Berth's own scanner: a one-scan password that reads one image.
    Scanner,
    /// A password a trusted registry signed for one of its principals (HTTP Basic as `AWS`):
    /// federation.
    FederatedPassword,
    /// A web console session: the cookie a sign-in with a password or robot secret set.
    ConsoleSession,
}

impl CredentialKind {
    /// Every kind, in the order of the table in the README.
    pub const ALL: [CredentialKind; 9] = [
        CredentialKind::Password,
        CredentialKind::RobotSecret,
        CredentialKind::AccessKey,
        CredentialKind::EcrPassword,
        CredentialKind::RefreshToken,
        CredentialKind::RegistryToken,
        CredentialKind::Scanner,
        CredentialKind::FederatedPassword,
        CredentialKind::ConsoleSession,
    ];

    /// The name written in the audit log and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Password => "password",
            CredentialKind::RobotSecret => "robot_secret",
            CredentialKind::AccessKey => "access_key",
            CredentialKind::EcrPassword => "ecr_password",
            CredentialKind::RefreshToken => "refresh_token",
            CredentialKind::RegistryToken => "registry_token",
            CredentialKind::Scanner => "scanner",
            CredentialKind::FederatedPassword => "federated_password",
            CredentialKind::ConsoleSession => "console_session",
        }
    }

    /// What a person would call it, for refusals.
    pub fn description(self) -> &'static str {
        match self {
            CredentialKind::Password => "a user's password",
            CredentialKind::RobotSecret => "a robot account's secret",
            CredentialKind::AccessKey => "an access key",
            CredentialKind::EcrPassword => "an ECR registry password (GetAuthorizationToken)",
            CredentialKind::RefreshToken => "a refresh token",
            CredentialKind::RegistryToken => "a registry token",
            CredentialKind::Scanner => "the scanner's credential",
            CredentialKind::FederatedPassword => {
                "a password a trusted registry signed (GetAuthorizationToken with registryIds)"
            }
            CredentialKind::ConsoleSession => "a web console session",
        }
    }
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_audit_names() {
        for kind in CredentialKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }
}
