//! IAM-like access policies (pure decisions, no I/O): parsing, validation and evaluation of ECR policy documents;
//! tag immutability ([`mutability`]); scanning settings and the pull gate ([`scanning`]);
//! repository creation templates ([`templates`]).
//!
//! Users bring ECR's JSON policy documents unchanged; this module decides what they allow.
//!
//! * [`PolicyDocument::parse`] validates a document of a [`PolicyKind`] (identity, repository or
//!   registry policy) and refuses anything Berth could not enforce faithfully (other condition
//!   keys, other services' actions, malformed ARNs, ...) with a [`PolicyError`] that names the
//!   statement and the field.
//! * [`evaluate`] decides one [`Action`] for a [`RequestContext`] against a [`PolicySet`] as IAM
//!   does within one account (explicit Deny, then Allow, otherwise implicit deny) and reports the
//!   deciding statement, for the policy simulator.
//! * [`ScopeAction`] and [`granted_scope_actions`] map Docker token scopes (`pull`, `push`,
//!   `delete`, `*`) onto ECR actions.
//!
//! The module does no I/O and reads no clock: callers pass the current time in the context, and
//! load and store documents themselves.
//!
//! Choices where IAM/ECR leave room:
//! * Statement indexes in messages are 0-based (`Statement[0]` is the first).
//! * Size limits count every character, whitespace included: 10,240 for repository policies
//!   (ECR's limit), 30,720 for identity and registry policies.
//! * A missing `Version` means `2008-10-17` (as IAM); `${...}` policy variables (the supported
//!   condition keys, plus `${*}`, `${?}`, `${$}`) work in `Resource` and string condition values
//!   under `2012-10-17` only.
//! * Action names must exist in the catalogue (a typo in a Deny would silently deny nothing);
//!   a wildcard must match at least one action. Action matching is case-insensitive.
//! * Principals are `"*"` or `{"AWS": ...}` only. Principal ARNs naming roles or assumed roles
//!   are accepted (documents stay portable) but match nobody; wildcards in principal ARNs are
//!   refused, as in IAM. Principal ARNs compare exactly.
//! * A registry-level request (no repository) matches only resources covering every
//!   repository (`*`, `arn:aws:ecr:<region>:<id>:repository/*`).
//! * Repository policies must not carry `Resource`/`NotResource`; identity and registry policies
//!   must (either one). `NotPrincipal` is not supported.
//! * Beyond the required operators, the IAM `...IgnoreCase`, `Arn*`, `DateEquals`/`...Equals`
//!   variants and `Null` are accepted; operator names are case-insensitive; an operator must suit
//!   its key (e.g. `IpAddress` only with `aws:SourceIp`).
//! * Anonymous callers are never allowed an action above the `Read`/`List` access levels, even
//!   if a policy says so ("no anonymous push ever"), except `ecr:BatchImportUpstreamImage`
//!   (filling a pull-through cache from its upstream); identity policies never apply to them.
//! * Robot accounts' `aws:username` is `robot/<name>`.

mod action;
mod condition;
mod context;
mod document;
mod eval;
pub mod event_pattern;
pub mod event_rules;
mod glob;
mod key;
pub mod mutability;
pub mod pull_through;
pub mod replication;
pub mod scanning;
pub mod templates;

#[cfg(test)]
mod tests;

pub use action::{AccessLevel, Action, ActionSet, ScopeAction};
pub use condition::ConditionKey;
pub use context::{
    arn_account, group_arn, repository_arn, robot_arn, root_arn, user_arn, Identity,
    RequestContext, Requester,
};
pub use document::{
    Effect, PolicyDocument, PolicyError, PolicyKind, PolicyVersion, Statement, StatementId,
    MAX_POLICY_CHARS, MAX_REPOSITORY_POLICY_CHARS,
};
pub use eval::{
    evaluate, evaluate_action, granted_scope_actions, scope_granted, DecidingStatement, Decision,
    ImplicitDenyReason, NamedPolicy, PolicySet, PolicySource,
};
pub use mutability::{MutabilityMode, TagMutability};
