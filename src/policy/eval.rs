//! IAM evaluation within one account: an explicit Deny in any applicable document wins, then any
//! Allow, otherwise the request is implicitly denied. Decisions name the statement that decided.

use std::fmt;

use super::action::{Action, ScopeAction};
use super::context::RequestContext;
use super::document::{Effect, PolicyDocument, PolicyKind, Statement, StatementId};

/// An identity policy with the name it is shown under (e.g. `group/team-a/TeamAccess`).
#[derive(Debug, Clone, Copy)]
pub struct NamedPolicy<'a> {
    pub name: &'a str,
    pub document: &'a PolicyDocument,
}

/// The documents that apply to one request: the identity policies attached to the caller and
/// its groups, the target repository's policy, and the registry policy.
#[derive(Debug, Clone, Default)]
pub struct PolicySet<'a> {
    pub identity: Vec<NamedPolicy<'a>>,
    pub repository: Option<&'a PolicyDocument>,
    pub registry: Option<&'a PolicyDocument>,
}

impl<'a> PolicySet<'a> {
    pub fn new() -> PolicySet<'a> {
        PolicySet::default()
    }

    pub fn with_identity(mut self, name: &'a str, document: &'a PolicyDocument) -> PolicySet<'a> {
        self.identity.push(NamedPolicy { name, document });
        self
    }

    pub fn with_repository(mut self, document: &'a PolicyDocument) -> PolicySet<'a> {
        self.repository = Some(document);
        self
    }

    pub fn with_registry(mut self, document: &'a PolicyDocument) -> PolicySet<'a> {
        self.registry = Some(document);
        self
    }
}

/// Which document a deciding statement came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// An identity policy, by name.
    Identity(String),
    Repository,
    Registry,
    /// No policy: this account's registry in another region replicating into this one, which
    /// ECR allows without one.
    SameAccountReplication,
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Identity(name) => write!(f, "identity policy {name:?}"),
            PolicySource::Repository => f.write_str("repository policy"),
            PolicySource::Registry => f.write_str("registry policy"),
            PolicySource::SameAccountReplication => {
                f.write_str("replication within this account (no policy needed)")
            }
        }
    }
}

/// The statement that decided a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecidingStatement {
    pub source: PolicySource,
    pub statement: StatementId,
}

impl fmt::Display for DecidingStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.source, self.statement)
    }
}

/// Why a request was denied without an explicit Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImplicitDenyReason {
    /// No statement allows the request.
    NoMatchingAllow,
    /// A statement allowed an anonymous caller a non-read action; Berth never allows that.
    AnonymousWriteForbidden,
    /// The caller's credential is limited to less than policies could grant (the scanner's
    /// reads only the image it scans).
    CredentialLimited,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow(DecidingStatement),
    ExplicitDeny(DecidingStatement),
    ImplicitDeny(ImplicitDenyReason),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The statement that decided, if one did.
    pub fn statement(&self) -> Option<&DecidingStatement> {
        match self {
            Decision::Allow(s) | Decision::ExplicitDeny(s) => Some(s),
            Decision::ImplicitDeny(_) => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow(s) => write!(f, "allowed by {s}"),
            Decision::ExplicitDeny(s) => write!(f, "explicitly denied by {s}"),
            Decision::ImplicitDeny(ImplicitDenyReason::NoMatchingAllow) => {
                f.write_str("implicitly denied: no statement allows this request")
            }
            Decision::ImplicitDeny(ImplicitDenyReason::AnonymousWriteForbidden) => {
                f.write_str("implicitly denied: anonymous callers may only read")
            }
            Decision::ImplicitDeny(ImplicitDenyReason::CredentialLimited) => {
                f.write_str("implicitly denied: the credential is limited to one image's reads")
            }
        }
    }
}

/// Decides `ctx.action` for `ctx`.
///
/// Order (used to pick the reported statement; it cannot change the outcome): identity
/// policies as listed, then the repository policy, then the registry policy; statements in
/// document order. Identity policies apply only to signed-in callers of this registry's own
/// account (an identity of another account, trusted through federation, has none here, whatever
/// a caller passes), and the repository policy only to requests that name a repository.
pub fn evaluate(policies: &PolicySet<'_>, ctx: &RequestContext) -> Decision {
    evaluate_action(policies, ctx, ctx.action)
}

/// [`evaluate`] for another action with the same context.
pub fn evaluate_action(policies: &PolicySet<'_>, ctx: &RequestContext, action: Action) -> Decision {
    // (identity policy name or None, slot kind, document); the owned source is built only for
    // the deciding statement.
    let mut documents: Vec<(Option<&str>, PolicyKind, &PolicyDocument)> = Vec::new();
    let own_account = ctx
        .principal
        .identity()
        .is_some_and(|i| i.account() == Some(ctx.registry_id.as_str()));
    if own_account {
        for p in &policies.identity {
            documents.push((Some(p.name), PolicyKind::Identity, p.document));
        }
    }
    if let (Some(doc), Some(_)) = (policies.repository, &ctx.repository) {
        documents.push((None, PolicyKind::Repository, doc));
    }
    if let Some(doc) = policies.registry {
        documents.push((None, PolicyKind::Registry, doc));
    }

    let mut first_allow: Option<DecidingStatement> = None;
    for (name, slot, doc) in documents {
        debug_assert_eq!(
            doc.kind(),
            slot,
            "a {} policy in the {slot} slot",
            doc.kind()
        );
        for statement in doc.statements() {
            if !applies(statement, ctx, action) {
                continue;
            }
            let decided = || DecidingStatement {
                source: match (slot, name) {
                    (PolicyKind::Repository, _) => PolicySource::Repository,
                    (PolicyKind::Registry, _) => PolicySource::Registry,
                    (PolicyKind::Identity, name) => {
                        PolicySource::Identity(name.unwrap_or_default().to_owned())
                    }
                },
                statement: statement.id().clone(),
            };
            match statement.effect() {
                Effect::Deny => return Decision::ExplicitDeny(decided()),
                Effect::Allow if first_allow.is_none() => first_allow = Some(decided()),
                Effect::Allow => {}
            }
        }
    }
    match first_allow {
        // Importing into a pull-through cache is the one write an anonymous caller (a kubelet,
        // a dockerd mirror client) may be granted: it copies public upstream content and
        // changes nothing a user pushed.
        Some(_)
            if ctx.principal.identity().is_none()
                && !action.access_level().is_read_only()
                && action != Action::BatchImportUpstreamImage =>
        {
            Decision::ImplicitDeny(ImplicitDenyReason::AnonymousWriteForbidden)
        }
        Some(s) => Decision::Allow(s),
        None => Decision::ImplicitDeny(ImplicitDenyReason::NoMatchingAllow),
    }
}

fn applies(statement: &Statement, ctx: &RequestContext, action: Action) -> bool {
    statement.actions().contains(action)
        && statement
            .principals
            .as_ref()
            .map_or(true, |ps| ps.iter().any(|p| p.matches(ctx)))
        && statement.resources.as_ref().map_or(true, |r| {
            r.patterns.iter().any(|p| p.matches(ctx)) != r.negated
        })
        && statement.conditions.iter().all(|c| c.holds(ctx))
}

/// True if every ECR action behind `scope` is allowed for `ctx` (whose own `action` is ignored).
pub fn scope_granted(policies: &PolicySet<'_>, ctx: &RequestContext, scope: ScopeAction) -> bool {
    scope
        .actions()
        .iter()
        .all(|a| evaluate_action(policies, ctx, *a).is_allowed())
}

/// The subset of requested Docker scope actions (`pull`, `push`, `delete`, `*`) that `ctx`'s
/// caller may have on `ctx.repository`, in request order without duplicates. Unknown names are
/// dropped; a scope action is granted only if every ECR action it stands for is allowed (so `*`
/// is granted only whole, never narrowed to a part).
pub fn granted_scope_actions<'r>(
    policies: &PolicySet<'_>,
    ctx: &RequestContext,
    requested: &[&'r str],
) -> Vec<&'r str> {
    let mut granted: Vec<&'r str> = Vec::new();
    for &name in requested {
        if granted.contains(&name) {
            continue;
        }
        if ScopeAction::parse(name).is_some_and(|scope| scope_granted(policies, ctx, scope)) {
            granted.push(name);
        }
    }
    granted
}
