//! The policy simulator: decides one action for a principal with the policies stored now, as
//! a real request with the given facts would be decided.

use std::sync::Arc;

use super::manage::not_found;
use super::{parse_login_name, Access, Credential, Principal, RequestFacts, Subject};
use crate::error::{Error, Result};
use crate::meta::now_millis;
use crate::policy::{Action, Decision};

/// What the policy simulator decided, for whom.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The simulated principal's ARN; `None` for anonymous.
    pub principal_arn: Option<String>,
    pub action: Action,
    pub decision: Decision,
    /// Why, in words (including remarks such as an expired robot account).
    pub explanation: String,
}

/// What the simulator is asked.
#[derive(Debug, Clone, Default)]
pub struct SimulationRequest {
    /// A login name (`alice`, `robot/ci`), a principal ARN, or `anonymous`.
    pub principal: String,
    /// `ecr:BatchGetImage` or `BatchGetImage`.
    pub action: String,
    pub repository: Option<String>,
    pub facts: RequestFacts,
}

impl Access {
    /// The subject a simulation runs as: `anonymous`, a login name or a principal ARN
    /// (`arn:aws:iam::<registryId>:user/<name>` or `...:user/robot/<name>`).
    async fn simulated_subject(&self, principal: &str) -> Result<Subject> {
        if principal.eq_ignore_ascii_case("anonymous") {
            return Ok(Subject::anonymous());
        }
        let login = if principal.starts_with("arn:") {
            let prefix = format!("arn:aws:iam::{}:user/", self.registry_id);
            principal.strip_prefix(prefix.as_str()).ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "principal: {:?} is not a user or robot ARN of this registry ({prefix}<name> or {prefix}robot/<name>)",
                    principal.chars().take(200).collect::<String>()
                ))
            })?
        } else {
            principal
        };
        let (kind, name) = parse_login_name(login);
        let found: Option<Arc<Principal>> = self.principal(kind, name).await?;
        let principal = found.ok_or_else(|| not_found(kind, name))?;
        let credential = Credential::of(principal.kind.secret_kind());
        Ok(Subject::signed_in(principal, credential))
    }

    /// `POST /api/v1/policy-simulator`: decides one action for a principal with the policies
    /// stored now, as a real request with the given facts would be decided.
    pub async fn simulate(&self, request: &SimulationRequest) -> Result<Simulation> {
        let action = if request.action.contains(':') {
            Action::from_iam_name(&request.action)
        } else {
            Action::from_operation(&request.action)
        };
        let action = action.ok_or_else(|| {
            Error::InvalidParameter(format!(
                "action: {:?} is not an ECR action (e.g. ecr:BatchGetImage)",
                request.action.chars().take(100).collect::<String>()
            ))
        })?;
        if let Some(repo) = &request.repository {
            crate::oci::RepoName::parse(repo)
                .map_err(|e| Error::InvalidParameter(format!("repository: {}", e.message())))?;
        }
        let subject = self.simulated_subject(&request.principal).await?;
        let decision = self
            .decide(
                &subject,
                action,
                request.repository.as_deref(),
                &request.facts,
            )
            .await?;
        let mut explanation = format!("{action}: {decision}");
        if let Some(p) = &subject.principal {
            if p.expired(now_millis()) {
                explanation
                    .push_str("; note: this robot account has expired, so it cannot log in at all");
            }
        }
        Ok(Simulation {
            principal_arn: subject.principal.as_ref().map(|p| p.arn().to_owned()),
            action,
            decision,
            explanation,
        })
    }
}
