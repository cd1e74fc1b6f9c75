//! Event use cases: event rules (validated, stored with their targets sealed, cached for the
//! worker), the recorded events, delivery status, dead letters and redrive, and the hand-over and
//! delivery steps the event worker (`crate::events`) takes.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::meta::{
    DeadLetter, DeliveryCounts, EventRuleRow, Events, HandOver, OutboxEvent, PendingDelivery,
};
use crate::policy::event_pattern::EventPattern;
use crate::policy::event_rules::{
    restore_redacted, validate_rule_name, validate_targets, EventTarget,
};
use crate::util::TtlCache;

/// How long a replica uses the rules it read: a rule saved on another replica applies here
/// within this (events recorded meanwhile are matched when handed over, which may be later).
const RULES_TTL: Duration = Duration::from_secs(2);

/// At most this many description characters (EventBridge's limit).
const MAX_DESCRIPTION: usize = 512;

/// An event rule: an EventBridge event pattern and where matching events go.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRule {
    pub name: String,
    pub description: String,
    /// The pattern as the user wrote it.
    pub pattern_json: serde_json::Value,
    pub pattern: EventPattern,
    pub targets: Vec<EventTarget>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EventRule {
    /// Validates a rule as a user gave it: name, description, pattern and targets (filling in
    /// default target ids). `nats` says whether a NATS server is configured.
    pub fn new(
        name: String,
        description: String,
        pattern_json: serde_json::Value,
        mut targets: Vec<EventTarget>,
        enabled: bool,
        nats: bool,
    ) -> Result<EventRule> {
        validate_rule_name(&name).map_err(Error::InvalidParameter)?;
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'description': at most {MAX_DESCRIPTION} characters"
            )));
        }
        let pattern = EventPattern::parse(&pattern_json).map_err(|e| {
            Error::InvalidParameter(format!("Invalid parameter at 'eventPattern': {e}"))
        })?;
        validate_targets(&mut targets, nats).map_err(Error::InvalidParameter)?;
        Ok(EventRule {
            name,
            description,
            pattern_json,
            pattern,
            targets,
            enabled,
            created_at: 0,
            updated_at: 0,
        })
    }

    fn from_row(row: EventRuleRow) -> Result<EventRule> {
        let broken =
            |what: String| Error::internal(format!("stored event rule {}: {what}", row.name));
        let pattern_json: serde_json::Value =
            serde_json::from_str(&row.pattern).map_err(|e| broken(e.to_string()))?;
        let pattern = EventPattern::parse(&pattern_json).map_err(|e| broken(e.to_string()))?;
        let targets = serde_json::from_str(&row.targets).map_err(|e| broken(e.to_string()))?;
        Ok(EventRule {
            name: row.name,
            description: row.description,
            pattern_json,
            pattern,
            targets,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn to_row(&self) -> Result<EventRuleRow> {
        Ok(EventRuleRow {
            name: self.name.clone(),
            description: self.description.clone(),
            pattern: self.pattern_json.to_string(),
            targets: serde_json::to_string(&self.targets)
                .map_err(|e| Error::internal(format!("event rule targets: {e}")))?,
            enabled: self.enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Event rules, recorded events and their deliveries.
pub struct EventService {
    store: Events,
    cached: TtlCache<(), Arc<Vec<Arc<EventRule>>>>,
    nats_configured: bool,
}

impl EventService {
    pub fn new(store: Events, nats_configured: bool) -> EventService {
        EventService {
            store,
            cached: TtlCache::new(RULES_TTL, 1),
            nats_configured,
        }
    }

    /// Validates a rule as a user gave it (see [`EventRule::new`]). Secrets and header values
    /// given as `<redacted>` (as rules are shown) keep what the stored rule of that name has.
    pub async fn new_rule(
        &self,
        name: String,
        description: String,
        pattern_json: serde_json::Value,
        mut targets: Vec<EventTarget>,
        enabled: bool,
    ) -> Result<EventRule> {
        let stored = match self.store.rule(&name).await? {
            Some(row) => EventRule::from_row(row)?.targets,
            None => Vec::new(),
        };
        restore_redacted(&mut targets, &stored).map_err(Error::InvalidParameter)?;
        EventRule::new(
            name,
            description,
            pattern_json,
            targets,
            enabled,
            self.nats_configured,
        )
    }

    /// Every rule, by name (read at most [`RULES_TTL`] ago).
    pub async fn rules_in_force(&self) -> Result<Arc<Vec<Arc<EventRule>>>> {
        if let Some(hit) = self.cached.get(&()) {
            return Ok(hit);
        }
        let rules = Arc::new(
            self.store
                .rules()
                .await?
                .into_iter()
                .map(|row| EventRule::from_row(row).map(Arc::new))
                .collect::<Result<Vec<_>>>()?,
        );
        self.cached.insert((), rules.clone());
        Ok(rules)
    }

    /// Every rule, by name, as stored now.
    pub async fn rules(&self) -> Result<Vec<EventRule>> {
        self.store
            .rules()
            .await?
            .into_iter()
            .map(EventRule::from_row)
            .collect()
    }

    /// One rule.
    pub async fn rule(&self, name: &str) -> Result<EventRule> {
        match self.store.rule(name).await? {
            Some(row) => EventRule::from_row(row),
            None => Err(Error::NotFound(format!(
                "There is no event rule named '{name}'"
            ))),
        }
    }

    /// Creates a (validated) rule; refused when the name is taken.
    pub async fn create_rule(&self, rule: &EventRule) -> Result<EventRule> {
        if !self.store.create_rule(&rule.to_row()?).await? {
            return Err(Error::AlreadyExists(format!(
                "An event rule named '{}' already exists; PUT /api/v1/event-rules/{} replaces it",
                rule.name, rule.name
            )));
        }
        self.cached.clear();
        self.rule(&rule.name).await
    }

    /// Creates or replaces a (validated) rule; the deliveries of targets it no longer has are
    /// dropped. True when the rule was created.
    pub async fn put_rule(&self, rule: &EventRule) -> Result<(EventRule, bool)> {
        let ids: Vec<String> = rule.targets.iter().map(|t| t.id.clone()).collect();
        let created = self.store.put_rule(&rule.to_row()?, &ids).await?;
        self.cached.clear();
        Ok((self.rule(&rule.name).await?, created))
    }

    /// Deletes a rule with its pending deliveries and dead letters.
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        if !self.store.delete_rule(name).await? {
            return Err(Error::NotFound(format!(
                "There is no event rule named '{name}'"
            )));
        }
        self.cached.clear();
        Ok(())
    }

    /// Recorded events after `after_id`, oldest first.
    pub async fn events(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxEvent>> {
        self.store.outbox_events(after_id, limit as i64).await
    }

    /// Deliveries by target and state, of one rule or of all.
    pub async fn delivery_counts(&self, rule: Option<&str>) -> Result<Vec<DeliveryCounts>> {
        self.store.delivery_counts(rule).await
    }

    pub async fn dead_letters(
        &self,
        rule: &str,
        target: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.store
            .dead_letters(rule, target, after, limit as i64)
            .await
    }

    /// Makes dead letters pending again; how many.
    pub async fn redrive(&self, rule: &str, target: Option<&str>, ids: &[i64]) -> Result<u64> {
        let n = self.store.redrive(rule, target, ids).await?;
        Ok(n)
    }

    // ---- the worker's steps ----

    /// Waits until this process commits recorded events, or `timeout`.
    pub async fn wait_for_recorded(&self, timeout: Duration) {
        self.store.wait_for_recorded(timeout).await
    }

    /// Recorded events not yet handed over, oldest first.
    pub async fn undispatched(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
        self.store.undispatched(limit).await
    }

    /// Hands events to the targets they matched (see `meta::Events::dispatch`).
    pub async fn dispatch(&self, handed: &[HandOver]) -> Result<()> {
        self.store.dispatch(handed).await
    }

    pub async fn due_heads(
        &self,
        rule: &str,
        target: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>> {
        self.store.due_heads(rule, target, now, limit).await
    }

    pub async fn next_attempt_at(&self, rule: &str, target: &str) -> Result<Option<i64>> {
        self.store.next_attempt_at(rule, target).await
    }

    /// One target's oldest pending deliveries, oldest first.
    pub async fn pending_window(
        &self,
        rule: &str,
        target: &str,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>> {
        self.store.pending_window(rule, target, limit).await
    }

    /// Deliveries the target acknowledged.
    pub async fn delivered_many(&self, ids: &[i64]) -> Result<()> {
        self.store.delivered_many(ids).await
    }

    /// A failed attempt: retried at `retry_at`, dead-lettered when `None`.
    pub async fn failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        self.store.failed(id, error, retry_at).await
    }

    /// Deletes handed-over events recorded before `cutoff` with no pending delivery.
    pub async fn prune(&self, cutoff: i64) -> Result<u64> {
        self.store.prune(cutoff).await
    }
}
