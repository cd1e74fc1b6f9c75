//! The one gate every door passes: who is calling (a [`Caller`]: the subject, the kind of
//! credential it presented, and the facts of its request), which kinds of credential each door
//! accepts ([`ACCEPTED`], decided here and nowhere else), and one authorization
//! ([`Access::authorize`]) with one deny message, for `/v2`, the ECR API and the REST API alike.
//!
//! A credential is issued for one purpose and must not open another door: a refresh token that
//! docker keeps in `~/.docker/config.json`, or a 12-hour ECR registry password from a CI log,
//! must never manage users; the scanner's one-scan password reads one image and nothing else.

use super::{Access, RequestFacts, Subject};
pub use crate::auth::credential::CredentialKind;
use crate::error::{Error, Result};
use crate::policy::Action;
use CredentialKind::*;

/// The action whose permission at registry scope makes a caller an administrator: whoever may
/// replace the registry policy can already grant themselves anything.
pub const ADMIN_ACTION: Action = Action::PutRegistryPolicy;

/// Who is calling: the subject (principal, credential, token) and the facts of the request
/// (source address, transport) that policy conditions test.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub subject: Subject,
    pub facts: RequestFacts,
}

/// What an authorization is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The registry as a whole.
    Registry,
    /// One repository, by name (as given: authorization comes before validation).
    Repository(&'a str),
}

/// What a call needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission<'a> {
    /// Any signed-in caller.
    SignedIn,
    /// An ECR action on a resource.
    Ecr(Action, Resource<'a>),
    /// An administrator: [`ADMIN_ACTION`] at registry scope.
    Admin,
}

impl Access {
    /// The ARN of `resource` in deny messages and audit records (`registry` for the registry).
    pub fn resource_arn(&self, resource: Resource<'_>) -> String {
        match resource {
            Resource::Registry => "registry".to_owned(),
            Resource::Repository(name) => {
                crate::policy::repository_arn(&self.region, &self.registry_id, name)
            }
        }
    }

    /// Decides `permission` for the operation `operation` (`ecr:CreateRepository`,
    /// `berth:CreateUser`): `Ok`, or `Error::Denied` with the one deny message every door shows.
    pub async fn authorize(
        &self,
        caller: &Caller,
        operation: &str,
        permission: Permission<'_>,
    ) -> Result<()> {
        let (action, resource) = match permission {
            Permission::SignedIn if caller.subject.principal.is_some() => return Ok(()),
            Permission::SignedIn => {
                return Err(Error::Denied(format!(
                    "{operation} needs a signed-in caller"
                )))
            }
            Permission::Ecr(action, resource) => (action, resource),
            Permission::Admin => (ADMIN_ACTION, Resource::Registry),
        };
        let repository = match resource {
            Resource::Registry => None,
            Resource::Repository(name) => Some(name),
        };
        let decision = self
            .decide(&caller.subject, action, repository, &caller.facts)
            .await?;
        if decision.is_allowed() {
            return Ok(());
        }
        let why = if action.iam_name() == operation {
            decision.to_string()
        } else {
            format!(
                "requires {} on {}; {decision}",
                action.iam_name(),
                if permission == Permission::Admin {
                    "the registry (administrators only)".to_owned()
                } else {
                    self.resource_arn(resource)
                }
            )
        };
        Err(self.denied(&caller.subject, operation, resource, &why))
    }

    /// The deny message: who may not do what on which resource, and why (ECR's wording).
    pub fn denied(
        &self,
        subject: &Subject,
        operation: &str,
        resource: Resource<'_>,
        why: &str,
    ) -> Error {
        let who = subject
            .principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), |p| p.arn().to_owned());
        let resource = match resource {
            Resource::Registry => "*".to_owned(),
            other => self.resource_arn(other),
        };
        Error::Denied(format!(
            "User: {who} is not authorized to perform: {operation} on resource: {resource} ({why})"
        ))
    }

    /// Whether `caller` may `action` on `repository` (listings filter by this).
    pub async fn allows(&self, caller: &Caller, action: Action, repository: &str) -> Result<bool> {
        Ok(self
            .decide(&caller.subject, action, Some(repository), &caller.facts)
            .await?
            .is_allowed())
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
    /// The web console's sign-in form (`/console/sign-in`): what a person types.
    ConsoleSignIn,
    /// The web console's pages and forms under `/console/`.
    Console,
}

/// Which door accepts which kind of credential: the one place this is decided. Anonymous
/// callers (no credential) are a matter of policy, not of this table.
pub const ACCEPTED: [(Door, &[CredentialKind]); 6] = [
    (Door::AdminApi, &[Password, RobotSecret]),
    (Door::EcrApi, &[AccessKey]),
    (
        Door::TokenEndpoint,
        &[
            Password,
            RobotSecret,
            EcrPassword,
            RefreshToken,
            Scanner,
            FederatedPassword,
        ],
    ),
    (
        Door::Registry,
        &[
            Password,
            RobotSecret,
            EcrPassword,
            Scanner,
            RegistryToken,
            FederatedPassword,
        ],
    ),
    (Door::ConsoleSignIn, &[Password, RobotSecret]),
    (Door::Console, &[ConsoleSession]),
];

impl Door {
    /// The door's name in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Door::AdminApi => "the admin API (/api/v1)",
            Door::EcrApi => "the ECR API",
            Door::TokenEndpoint => "the token endpoint (/token)",
            Door::Registry => "the registry API (/v2)",
            Door::ConsoleSignIn => "the web console's sign-in (/console/sign-in)",
            Door::Console => "the web console (/console/)",
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
            Door::ConsoleSignIn => "sign in with a user's password or a robot account's secret",
            Door::Console => "sign in to the console at /console/sign-in",
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
                "scanner",
                "federated_password"
            ]
        );
        assert_eq!(
            yes(Door::Registry),
            [
                "password",
                "robot_secret",
                "ecr_password",
                "registry_token",
                "scanner",
                "federated_password"
            ]
        );
    }

    #[test]
    fn refusals_name_the_credential_and_the_door() {
        let refusal = Door::AdminApi.admit(RefreshToken).unwrap_err();
        assert!(refusal.contains("refresh_token"), "{refusal}");
        assert!(refusal.contains("/api/v1"), "{refusal}");
        assert!(Door::AdminApi.admit(Password).is_ok());
        // A password another registry signed pulls and pushes as policies allow, and manages
        // nothing here.
        assert!(Door::AdminApi.admit(FederatedPassword).is_err());
        assert!(Door::EcrApi.admit(FederatedPassword).is_err());
        let refusal = Door::Registry.admit(RefreshToken).unwrap_err();
        assert!(refusal.contains("/v2"), "{refusal}");
        // A console session opens the console and nothing else; the console opens with a
        // session and nothing else (a registry token in a browser is not a sign-in).
        for door in [
            Door::AdminApi,
            Door::EcrApi,
            Door::TokenEndpoint,
            Door::Registry,
        ] {
            assert!(door.admit(ConsoleSession).is_err(), "{door:?}");
        }
        assert_eq!(Door::Console.accepted(), [ConsoleSession]);
        assert_eq!(Door::ConsoleSignIn.accepted(), [Password, RobotSecret]);
    }
}
