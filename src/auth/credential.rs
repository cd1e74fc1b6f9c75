//! What each credential is for: the kinds of credential a caller can present, and the one table
//! of which door (the admin API, the ECR API, the token endpoint, the registry API) accepts which
//! kind. Pure vocabulary: the access layer names the kind of every credential it verifies, each
//! door asks [`Door::admit`] before anything else, and the audit log records the kind.
//!
//! A credential is issued for one purpose and must not open another door: a refresh token that
//! docker keeps in `~/.docker/config.json`, or a 12-hour ECR registry password from a CI log,
//! must never manage users; the scanner's one-scan password reads one image and nothing else.

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
}

impl CredentialKind {
    /// Every kind, in the order of the table in the README.
    pub const ALL: [CredentialKind; 7] = [
        CredentialKind::Password,
        CredentialKind::RobotSecret,
        CredentialKind::AccessKey,
        CredentialKind::EcrPassword,
        CredentialKind::RefreshToken,
        CredentialKind::RegistryToken,
        CredentialKind::Scanner,
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
        }
    }

    /// What a person would call it, for refusals.
    fn description(self) -> &'static str {
        match self {
            CredentialKind::Password => "a user's password",
            CredentialKind::RobotSecret => "a robot account's secret",
            CredentialKind::AccessKey => "an access key",
            CredentialKind::EcrPassword => "an ECR registry password (GetAuthorizationToken)",
            CredentialKind::RefreshToken => "a refresh token",
            CredentialKind::RegistryToken => "a registry token",
            CredentialKind::Scanner => "the scanner's credential",
        }
    }
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A way into Berth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    /// The native REST API under `/api/v1`.
    AdminApi,
    /// ECR's JSON API (`POST /` with `X-Amz-Target`).
    EcrApi,
    /// The Docker token endpoint, `/token`.
    TokenEndpoint,
    /// The OCI Distribution API under `/v2`.
    Registry,
}

use CredentialKind::*;

/// Which door accepts which kind of credential: the one place this is decided. Anonymous
/// callers (no credential) are a matter of policy, not of this table.
pub const ACCEPTED: [(Door, &[CredentialKind]); 4] = [
    (Door::AdminApi, &[Password, RobotSecret]),
    (Door::EcrApi, &[AccessKey]),
    (
        Door::TokenEndpoint,
        &[Password, RobotSecret, EcrPassword, RefreshToken, Scanner],
    ),
    (
        Door::Registry,
        &[Password, RobotSecret, EcrPassword, Scanner, RegistryToken],
    ),
];

impl Door {
    /// The door's name in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Door::AdminApi => "the admin API (/api/v1)",
            Door::EcrApi => "the ECR API",
            Door::TokenEndpoint => "the token endpoint (/token)",
            Door::Registry => "the registry API (/v2)",
        }
    }

    /// The kinds this door accepts.
    pub fn accepted(self) -> &'static [CredentialKind] {
        ACCEPTED
            .iter()
            .find(|(door, _)| *door == self)
            .map_or(&[], |(_, kinds)| *kinds)
    }

    pub fn accepts(self, kind: CredentialKind) -> bool {
        self.accepted().contains(&kind)
    }

    /// `Ok` when this door accepts `kind`; otherwise the refusal a person can act on.
    pub fn admit(self, kind: CredentialKind) -> Result<(), String> {
        if self.accepts(kind) {
            return Ok(());
        }
        let hint = match self {
            Door::AdminApi => "use a user's password or a robot account's secret over HTTP Basic",
            Door::EcrApi => "sign requests with an access key (AWS Signature V4)",
            Door::TokenEndpoint => {
                "log in with a password, a robot secret, an ECR registry password or a refresh token"
            }
            Door::Registry => "log in again or get a new token from /token",
        };
        Err(format!(
            "{} ({}) is not accepted by {}: {hint}",
            kind.description(),
            kind.as_str(),
            self.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_door_accepts_exactly_the_kinds_it_is_for() {
        let yes = |door: Door| -> Vec<&str> {
            CredentialKind::ALL
                .iter()
                .filter(|k| door.accepts(**k))
                .map(|k| k.as_str())
                .collect()
        };
        assert_eq!(yes(Door::AdminApi), ["password", "robot_secret"]);
        assert_eq!(yes(Door::EcrApi), ["access_key"]);
        assert_eq!(
            yes(Door::TokenEndpoint),
            [
                "password",
                "robot_secret",
                "ecr_password",
                "refresh_token",
                "scanner"
            ]
        );
        assert_eq!(
            yes(Door::Registry),
            [
                "password",
                "robot_secret",
                "ecr_password",
                "registry_token",
                "scanner"
            ]
        );
    }

    #[test]
    fn refusals_name_the_credential_and_the_door() {
        let refusal = Door::AdminApi.admit(RefreshToken).unwrap_err();
        assert!(refusal.contains("refresh_token"), "{refusal}");
        assert!(refusal.contains("/api/v1"), "{refusal}");
        assert!(Door::AdminApi.admit(Password).is_ok());
        let refusal = Door::Registry.admit(RefreshToken).unwrap_err();
        assert!(refusal.contains("/v2"), "{refusal}");
    }

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
