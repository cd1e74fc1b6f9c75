//! The control plane: every management operation exists once, as a typed request (ECR's member
//! names, see [`shapes`]) and a typed answer, reached by the ECR API, the REST API and (later)
//! the console through [`execute`]. `execute` authorizes first (the one gate,
//! [`crate::access::Access::authorize`]: a refused caller learns nothing from its request),
//! then runs the operation, then writes one audit record. No HTTP types here: a door maps its
//! wire format onto a request and the answer (or the domain error) back.
//!
//! Side effects of an operation (forget a deleted repository's policy, drop caches) live in
//! the operation, never in a door. Depends on `access`, `service` and `pull_through`; the
//! doors in `http` (`http::admin`, `http::ecr`) depend on it.

pub mod admin;
pub mod events;
pub mod identity;
pub mod images;
pub mod lifecycle;
pub mod policies;
pub mod pull_through;
pub mod registry;
pub mod replication;
pub mod repositories;
pub mod resource_tags;
pub mod scanning;
pub mod shapes;
pub mod templates;

use std::future::Future;
use std::sync::Mutex;

use crate::access::{Access, AuditLog, AuditOutcome, Caller, Identities, Permission, Resource};
use crate::error::{Error, Result};
use crate::policy::Action;
use crate::pull_through::PullThrough;
use crate::service::Registry;

/// How clients reach this registry: `host[:port]` (repository URIs) and its URL (ECR's
/// `proxyEndpoint`), from `public_url` or the request.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub host: String,
    pub url: String,
}

/// The services operations run on, as one process built them.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub registry: &'a Registry,
    pub access: &'a Access,
    pub identities: &'a Identities,
    pub audit: &'a AuditLog,
    pub pull_through: &'a PullThrough,
}

/// What an operation runs with: the services, who is calling, and how clients reach the
/// registry. One per call.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub access: &'a Access,
    pub identities: &'a Identities,
    pub pull_through: &'a PullThrough,
    pub audit: &'a AuditLog,
    pub caller: &'a Caller,
    pub endpoint: &'a Endpoint,
    /// What the audit record says beyond the outcome (never a secret).
    detail: Mutex<String>,
}

impl<'a> Context<'a> {
    pub fn new(services: Services<'a>, caller: &'a Caller, endpoint: &'a Endpoint) -> Context<'a> {
        Context {
            registry: services.registry,
            access: services.access,
            identities: services.identities,
            pull_through: services.pull_through,
            audit: services.audit,
            caller,
            endpoint,
            detail: Mutex::new(String::new()),
        }
    }

    pub fn registry_id(&self) -> &str {
        self.access.registry_id()
    }

    pub fn region(&self) -> &str {
        self.access.region()
    }

    /// Sets the audit record's detail (never a secret).
    pub fn note(&self, detail: impl Into<String>) {
        *self.detail.lock().unwrap_or_else(|e| e.into_inner()) = detail.into();
    }

    /// A further authorization inside an operation (an action beyond the operation's own, or
    /// one per repository named in the request).
    pub async fn authorize(&self, action: Action, resource: Resource<'_>) -> Result<()> {
        self.access
            .authorize(
                self.caller,
                action.iam_name(),
                Permission::Ecr(action, resource),
            )
            .await
    }

    /// Whether the caller may `action` on `repository` (listings show only these).
    pub async fn allows(&self, action: Action, repository: &str) -> Result<bool> {
        self.access.allows(self.caller, action, repository).await
    }

    /// Refuses a `registryId` other than this registry's.
    pub fn check_registry_id(&self, given: Option<&str>) -> Result<()> {
        match given {
            Some(id) if id != self.registry_id() => Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'registryId' failed to satisfy constraint: this registry's id is '{}', not '{}'",
                self.registry_id(),
                id.chars().take(40).collect::<String>()
            ))),
            _ => Ok(()),
        }
    }

    pub fn repository_arn(&self, name: &str) -> String {
        crate::policy::repository_arn(self.region(), self.registry_id(), name)
    }
}

/// One management operation: its request type implements this.
pub trait Operation: Send + Sized {
    /// The audited name, `ecr:<Operation>` or `berth:<Operation>`.
    const NAME: &'static str;
    type Output: Send;

    /// What the caller needs, decided before the request is validated.
    fn permission(&self) -> Permission<'_>;

    /// The resource the audit record names (by default the permission's).
    fn audited_resource(&self, access: &Access) -> String {
        match self.permission() {
            Permission::Ecr(_, resource) => access.resource_arn(resource),
            Permission::SignedIn | Permission::Admin => access.resource_arn(Resource::Registry),
        }
    }

    /// Validates the request and does the work.
    fn run(self, cx: &Context<'_>) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// Runs `op` for `cx.caller`: the gate, the operation, one audit record.
pub async fn execute<O: Operation>(cx: &Context<'_>, op: O) -> Result<O::Output> {
    let resource = op.audited_resource(cx.access);
    let result = match cx
        .access
        .authorize(cx.caller, O::NAME, op.permission())
        .await
    {
        Ok(()) => op.run(cx).await,
        Err(e) => Err(e),
    };
    let (outcome, detail) = match &result {
        Ok(_) => (
            AuditOutcome::Success,
            std::mem::take(&mut *cx.detail.lock().unwrap_or_else(|e| e.into_inner())),
        ),
        // Built by the gate from ARNs and the decision: it says which statement refused.
        Err(Error::Denied(message)) => (AuditOutcome::Denied, message.clone()),
        // Error messages may quote client input: only the kind of failure is recorded.
        Err(e) => (AuditOutcome::Failed, e.kind().to_owned()),
    };
    cx.audit
        .audit_request(
            &cx.caller.subject,
            &cx.caller.facts,
            O::NAME,
            &resource,
            outcome,
            &detail,
        )
        .await;
    result
}

/// `maxResults` within 1..=1000, default `default`.
pub fn max_results(given: Option<i64>, default: usize) -> Result<usize> {
    match given {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'must be between 1 and 1000', got {n}"
        ))),
    }
}

/// Pagination tokens: base64url of a small JSON array naming the listing and its last item.
pub fn encode_token(kind: &str, parts: &[&str]) -> String {
    use base64::Engine as _;
    let mut values = vec![kind];
    values.extend_from_slice(parts);
    let text = serde_json::to_string(&values).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// The parts of a token [`encode_token`] made for the listing `kind`.
pub fn decode_token(kind: &str, token: &str, parts: usize) -> Result<Vec<String>> {
    use base64::Engine as _;
    let invalid = || {
        Error::InvalidParameter("Invalid parameter at 'nextToken': the token is not valid".into())
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid())?;
    let values: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    match values.split_first() {
        Some((k, rest)) if k == kind && rest.len() == parts => Ok(rest.to_vec()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_foreign_ones() {
        let token = encode_token("image-ids", &["sha256:ab", "v1"]);
        assert_eq!(
            decode_token("image-ids", &token, 2).unwrap(),
            vec!["sha256:ab".to_owned(), "v1".to_owned()]
        );
        assert!(decode_token("images", &token, 1).is_err());
        assert!(decode_token("images", "!!!", 1).is_err());
        assert!(decode_token("images", "", 1).is_err());
    }
}
