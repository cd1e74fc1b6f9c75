//! Authorization: the policy documents decisions read (stored, replaced, forgotten), and the
//! decisions themselves (per ECR action, per registry scope, and the grant of a token request),
//! cached for [`super::DECISION_TTL`].

use std::sync::Arc;

use super::{Access, DecisionKey, PolicyTarget, RequestFacts, ScopeKey, Subject};
use crate::auth::scope::{Scope, ANY_ACTION, REGISTRY, REPOSITORY};
use crate::auth::token::ResourceAccess;
use crate::error::{Error, Result};
use crate::policy::{
    evaluate, Action, Decision, ImplicitDenyReason, PolicyDocument, PolicyKind, PolicySet,
    RequestContext, ScopeAction,
};

impl Access {
    /// The stored text of a policy, exactly as saved.
    pub async fn policy_text(&self, target: &PolicyTarget) -> Result<Option<String>> {
        let (scope, key, _) = target.slot();
        self.identity.policy(scope, &key).await
    }

    /// Validates and stores a policy (replacing any earlier one); a document Berth could not
    /// enforce faithfully is refused with a message naming the statement and field.
    pub async fn set_policy(&self, target: &PolicyTarget, text: &str) -> Result<PolicyDocument> {
        let (scope, key, kind) = target.slot();
        let document = PolicyDocument::parse(text, kind)
            .map_err(|e| Error::InvalidParameter(format!("invalid policy document: {e}")))?;
        self.identity.put_policy(scope, &key, text).await?;
        self.policies.remove(&(scope, key));
        self.decisions.clear();
        self.scope_decisions.clear();
        Ok(document)
    }

    /// Removes a policy; the stored text, or `None` if there was none.
    pub async fn delete_policy(&self, target: &PolicyTarget) -> Result<Option<String>> {
        let (scope, key, _) = target.slot();
        let text = self.identity.policy(scope, &key).await?;
        if text.is_some() {
            self.identity.delete_policy(scope, &key).await?;
        }
        self.policies.remove(&(scope, key));
        self.decisions.clear();
        self.scope_decisions.clear();
        Ok(text)
    }

    /// Forgets this replica's copy of a repository's policy and the decisions made with it,
    /// after a policy was stored by another path (a repository created from a template).
    pub fn repository_policy_changed(&self, repository: &str) {
        self.policies.remove(&("repository", repository.to_owned()));
        self.decisions.clear();
        self.scope_decisions.clear();
    }

    async fn policy(
        &self,
        scope: &'static str,
        target: String,
        kind: PolicyKind,
    ) -> Result<Option<Arc<PolicyDocument>>> {
        let key = (scope, target);
        if let Some(hit) = self.policies.get(&key) {
            return Ok(hit);
        }
        let document = match self.identity.policy(scope, &key.1).await? {
            Some(text) => match PolicyDocument::parse(&text, kind) {
                Ok(doc) => Some(Arc::new(doc)),
                Err(e) => {
                    // Documents are validated when saved; one that no longer parses denies
                    // nothing and allows nothing, and an operator must see why.
                    tracing::error!(scope, target = %key.1, error = %e, "stored policy does not parse; ignored");
                    None
                }
            },
            None => None,
        };
        self.policies.insert(key, document.clone());
        Ok(document)
    }

    /// Decides one ECR action on a repository (or the registry when `repository` is `None`).
    pub async fn decide(
        &self,
        subject: &Subject,
        action: Action,
        repository: Option<&str>,
        facts: &RequestFacts,
    ) -> Result<Decision> {
        if subject.is_scanner() {
            // The scanner reads its one image through `/v2` (checked there, by route); no ECR
            // action is ever decided in its favour.
            return Ok(Decision::ImplicitDeny(
                ImplicitDenyReason::CredentialLimited,
            ));
        }
        // This account's registry in another region replicates without a policy, as in ECR.
        if matches!(action, Action::ReplicateImage | Action::CreateRepository)
            && subject.principal.as_ref().is_some_and(|p| {
                p.is_replicator() && p.foreign_account.as_deref() == Some(&self.registry_id)
            })
        {
            return Ok(Decision::Allow(crate::policy::DecidingStatement {
                source: crate::policy::PolicySource::SameAccountReplication,
                statement: crate::policy::StatementId {
                    index: 0,
                    sid: None,
                },
            }));
        }
        let key = DecisionKey {
            principal: subject.principal.as_ref().map(|p| p.cache_key()),
            action,
            repository: repository.map(str::to_owned),
            source_ip: facts.source_ip,
            secure_transport: facts.secure_transport,
        };
        if let Some(hit) = self.decisions.get(&key) {
            return Ok(hit);
        }
        let decision = self
            .decide_uncached(subject, action, repository, facts)
            .await?;
        self.decisions.insert(key, decision.clone());
        Ok(decision)
    }

    async fn decide_uncached(
        &self,
        subject: &Subject,
        action: Action,
        repository: Option<&str>,
        facts: &RequestFacts,
    ) -> Result<Decision> {
        let mut identity_docs: Vec<(String, Arc<PolicyDocument>)> = Vec::new();
        // A principal of another registry has no identity policies here: only this registry's
        // resource policies may grant it anything.
        if let Some(p) = subject
            .principal
            .as_ref()
            .filter(|p| p.foreign_account.is_none())
        {
            if let Some(doc) = self
                .policy("principal", p.id.to_string(), PolicyKind::Identity)
                .await?
            {
                identity_docs.push((format!("user/{}", p.login_name()), doc));
            }
            for (group_id, group) in &p.groups {
                if let Some(doc) = self
                    .policy("group", group_id.to_string(), PolicyKind::Identity)
                    .await?
                {
                    identity_docs.push((format!("group/{group}"), doc));
                }
            }
        }
        let repository_doc = match repository {
            Some(name) => {
                self.policy("repository", name.to_owned(), PolicyKind::Repository)
                    .await?
            }
            None => None,
        };
        let registry_doc = self
            .policy("registry", String::new(), PolicyKind::Registry)
            .await?;
        let mut set = PolicySet::new();
        for (name, doc) in &identity_docs {
            set = set.with_identity(name, doc);
        }
        if let Some(doc) = &repository_doc {
            set = set.with_repository(doc);
        }
        if let Some(doc) = &registry_doc {
            set = set.with_registry(doc);
        }
        let mut ctx = RequestContext::new(
            subject.requester(),
            action,
            self.registry_id.clone(),
            self.region.clone(),
            self.now(),
        )
        .with_secure_transport(facts.secure_transport);
        if let Some(ip) = facts.source_ip {
            ctx = ctx.with_source_ip(ip);
        }
        if let Some(name) = repository {
            ctx = ctx.with_repository(name);
        }
        Ok(evaluate(&set, &ctx))
    }

    /// The ECR actions behind a Docker scope action for `subject`: a registry replicating into
    /// this one pulls, pushes and (when its rules replicate deletes) deletes under
    /// `ecr:ReplicateImage` alone (the permission ECR asks destination registries to grant),
    /// everyone else under the actions of a pull, push or delete.
    pub fn scope_actions(&self, subject: &Subject, scope: ScopeAction) -> &'static [Action] {
        let replicator = subject
            .principal
            .as_ref()
            .is_some_and(|p| p.is_replicator());
        match scope {
            ScopeAction::Pull | ScopeAction::Push | ScopeAction::Delete if replicator => {
                &[Action::ReplicateImage]
            }
            _ => scope.actions(),
        }
    }

    /// True if every ECR action behind the Docker scope action is allowed on `repository`.
    pub async fn may(
        &self,
        subject: &Subject,
        scope: ScopeAction,
        repository: &str,
        facts: &RequestFacts,
    ) -> Result<bool> {
        if subject.is_scanner() {
            return Ok(false);
        }
        let key = ScopeKey {
            principal: subject.principal.as_ref().map(|p| p.cache_key()),
            scope,
            repository: repository.to_owned(),
            source_ip: facts.source_ip,
            secure_transport: facts.secure_transport,
        };
        if let Some(hit) = self.scope_decisions.get(&key) {
            return Ok(hit);
        }
        let mut allowed = true;
        for action in self.scope_actions(subject, scope) {
            if !self
                .decide(subject, *action, Some(repository), facts)
                .await?
                .is_allowed()
            {
                allowed = false;
                break;
            }
        }
        self.scope_decisions.insert(key, allowed);
        Ok(allowed)
    }

    /// The `access` claim for a token request: the requested scopes cut down to what the
    /// policies allow. Unknown resource types and actions are dropped, never an error.
    pub async fn grant(
        &self,
        subject: &Subject,
        requested: &[Scope],
        facts: &RequestFacts,
    ) -> Result<Vec<ResourceAccess>> {
        if let Some(scan) = &subject.scan {
            // The scanner's credential carries its own grant: pull on its one repository.
            return Ok(requested
                .iter()
                .filter(|s| {
                    s.resource_type == REPOSITORY
                        && s.name == scan.repository
                        && s.actions.iter().any(|a| a == crate::auth::scope::PULL)
                })
                .take(1)
                .map(|s| {
                    ResourceAccess::from(Scope::new(
                        REPOSITORY,
                        &s.name,
                        &[crate::auth::scope::PULL],
                    ))
                })
                .collect());
        }
        let mut granted = Vec::new();
        for scope in requested {
            let mut actions: Vec<&str> = Vec::new();
            for action in &scope.actions {
                let allowed = match (scope.resource_type.as_str(), action.as_str()) {
                    // The catalog lists only what the caller may see, so any caller may ask.
                    (REGISTRY, ANY_ACTION) if scope.name == "catalog" => true,
                    (REPOSITORY, name) => match ScopeAction::parse(name) {
                        Some(sa) if crate::oci::RepoName::parse(&scope.name).is_ok() => {
                            self.may(subject, sa, &scope.name, facts).await?
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if allowed && !actions.contains(&action.as_str()) {
                    actions.push(action);
                }
            }
            if !actions.is_empty() {
                granted.push(ResourceAccess::from(Scope::new(
                    &scope.resource_type,
                    &scope.name,
                    &actions,
                )));
            }
        }
        Ok(granted)
    }
}
