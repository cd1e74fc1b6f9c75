//! Event rules (Berth's own, REST only, for administrators): create, read, replace and delete
//! rules with their targets, test a rule against a sample event, and read and redrive each
//! target's deliveries.

use super::shapes::{
    rfc3339, CreateEventRuleRequest, DeadLetterEntry, DeadLetterPage, DeleteEventRuleRequest,
    EventDeliveryStatus, EventRuleInput, EventRuleList, EventRuleResponse,
    GetEventDeliveryStatusRequest, GetEventRuleRequest, ListDeadLettersRequest,
    ListEventRulesRequest, PutEventRuleRequest, PutEventRuleResponse, RedriveDeadLettersRequest,
    RedriveDeadLettersResponse, TargetDeliveryStatus, TestDelivery, TestEventRuleRequest,
    TestEventRuleResponse,
};
use super::{Context, Operation};
use crate::access::{Access, Permission};
use crate::error::{Error, Result};
use crate::events::{envelope, Origin};
use crate::meta::{now_millis, OutboxEvent, IMAGE_ACTION};
use crate::policy::event_rules::EventTarget;
use crate::service::EventRule;

/// At most this many dead letters per page.
const MAX_DEAD_LETTER_PAGE: usize = 1000;

fn shown(rule: &EventRule) -> EventRuleResponse {
    EventRuleResponse {
        name: rule.name.clone(),
        description: rule.description.clone(),
        event_pattern: rule.pattern_json.clone(),
        targets: rule.targets.iter().map(EventTarget::redacted).collect(),
        enabled: rule.enabled,
        created_at: rfc3339(rule.created_at),
        updated_at: rfc3339(rule.updated_at),
    }
}

/// Validates a rule as written (named `name`).
async fn validated(cx: &Context<'_>, name: String, input: EventRuleInput) -> Result<EventRule> {
    let pattern = input.event_pattern.ok_or_else(|| {
        Error::InvalidParameter(
            "Invalid parameter at 'eventPattern': the member is required".into(),
        )
    })?;
    let targets: Vec<EventTarget> = match input.targets {
        Some(targets) => serde_json::from_value(targets)
            .map_err(|e| Error::InvalidParameter(format!("Invalid parameter at 'targets': {e}")))?,
        None => {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'targets': the member is required".into(),
            ))
        }
    };
    cx.registry
        .events()
        .new_rule(
            name,
            input.description.unwrap_or_default(),
            pattern,
            targets,
            input.enabled.unwrap_or(true),
        )
        .await
}

impl Operation for CreateEventRuleRequest {
    const NAME: &'static str = "berth:CreateEventRule";
    type Output = EventRuleResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!(
            "event-rules/{}",
            self.rule.name.as_deref().unwrap_or_default()
        )
    }

    async fn run(mut self, cx: &Context<'_>) -> Result<EventRuleResponse> {
        let name = self.rule.name.take().ok_or_else(|| {
            Error::InvalidParameter("Invalid parameter at 'name': the member is required".into())
        })?;
        let rule = validated(cx, name, self.rule).await?;
        let stored = cx.registry.events().create_rule(&rule).await?;
        cx.note(format!("{} targets", stored.targets.len()));
        Ok(shown(&stored))
    }
}

impl Operation for PutEventRuleRequest {
    const NAME: &'static str = "berth:PutEventRule";
    type Output = PutEventRuleResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(mut self, cx: &Context<'_>) -> Result<PutEventRuleResponse> {
        if let Some(named) = self.rule.name.take() {
            if named != self.name {
                return Err(Error::InvalidParameter(format!(
                    "Invalid parameter at 'name': the body names '{named}' but the path '{}'",
                    self.name
                )));
            }
        }
        let rule = validated(cx, self.name, self.rule).await?;
        let (stored, created) = cx.registry.events().put_rule(&rule).await?;
        cx.note(format!(
            "{} targets{}",
            stored.targets.len(),
            if created { ", created" } else { "" }
        ));
        Ok(PutEventRuleResponse {
            rule: shown(&stored),
            created,
        })
    }
}

impl Operation for GetEventRuleRequest {
    const NAME: &'static str = "berth:GetEventRule";
    type Output = EventRuleResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<EventRuleResponse> {
        Ok(shown(&cx.registry.events().rule(&self.name).await?))
    }
}

impl Operation for ListEventRulesRequest {
    const NAME: &'static str = "berth:ListEventRules";
    type Output = EventRuleList;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "event-rules".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<EventRuleList> {
        Ok(EventRuleList {
            rules: cx
                .registry
                .events()
                .rules()
                .await?
                .iter()
                .map(shown)
                .collect(),
        })
    }
}

impl Operation for DeleteEventRuleRequest {
    const NAME: &'static str = "berth:DeleteEventRule";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        cx.registry.events().delete_rule(&self.name).await
    }
}

/// The event a test matches: the caller's, completed into EventBridge's envelope (a bare
/// `detail-type` and `detail` get this registry's account, region, time and id), or a sample
/// push.
fn test_event(given: Option<serde_json::Value>) -> Result<OutboxEvent> {
    let given = given.unwrap_or_else(|| {
        serde_json::json!({
            "detail-type": IMAGE_ACTION,
            "detail": {
                "result": "SUCCESS",
                "repository-name": "sample/app",
                "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234",
                "action-type": "PUSH",
                "image-tag": "latest",
            },
        })
    });
    let object = given.as_object().ok_or_else(|| {
        Error::InvalidParameter("Invalid parameter at 'event': an event is a JSON object".into())
    })?;
    let kind = object
        .get("detail-type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            Error::InvalidParameter(
                "Invalid parameter at 'event.detail-type': a string is required".into(),
            )
        })?;
    let detail = object
        .get("detail")
        .filter(|d| d.is_object())
        .cloned()
        .ok_or_else(|| {
            Error::InvalidParameter(
                "Invalid parameter at 'event.detail': an object is required".into(),
            )
        })?;
    Ok(OutboxEvent {
        id: 0,
        event_id: object
            .get("id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        kind: kind.to_owned(),
        repository: detail
            .get("repository-name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        detail,
        created_at: now_millis(),
        delivered_at: None,
    })
}

impl Operation for TestEventRuleRequest {
    const NAME: &'static str = "berth:TestEventRule";
    type Output = TestEventRuleResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<TestEventRuleResponse> {
        let rule = cx.registry.events().rule(&self.name).await?;
        let event = test_event(self.event)?;
        let origin = Origin {
            account: cx.registry_id().to_owned(),
            region: cx.region().to_owned(),
        };
        let wrapped = envelope::eventbridge(&event, &origin);
        let matched = rule.pattern.matches(&wrapped);
        let deliveries = if matched {
            rule.targets
                .iter()
                .map(|t| TestDelivery {
                    target: t.id.clone(),
                    format: t.format,
                    body: serde_json::from_slice(&crate::events::render(&event, t.format, &origin))
                        .unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(TestEventRuleResponse {
            matched,
            event: wrapped,
            deliveries,
        })
    }
}

impl Operation for GetEventDeliveryStatusRequest {
    const NAME: &'static str = "berth:GetEventDeliveryStatus";
    type Output = EventDeliveryStatus;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    /// Every target of the rule, with zeros for those without deliveries yet.
    async fn run(self, cx: &Context<'_>) -> Result<EventDeliveryStatus> {
        let events = cx.registry.events();
        let rule = events.rule(&self.name).await?;
        let counts = events.delivery_counts(Some(&self.name)).await?;
        let now = now_millis();
        Ok(EventDeliveryStatus {
            rule: rule.name.clone(),
            targets: rule
                .targets
                .iter()
                .map(|t| {
                    let c = counts.iter().find(|c| c.target == t.id);
                    TargetDeliveryStatus {
                        target: t.id.clone(),
                        delivered: c.map_or(0, |c| c.delivered),
                        pending: c.map_or(0, |c| c.pending),
                        dead_lettered: c.map_or(0, |c| c.dead),
                        oldest_pending_age_seconds: c
                            .and_then(|c| c.oldest_pending_at)
                            .map(|at| (now - at).max(0) as f64 / 1000.0),
                    }
                })
                .collect(),
        })
    }
}

impl Operation for ListDeadLettersRequest {
    const NAME: &'static str = "berth:ListDeadLetters";
    type Output = DeadLetterPage;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<DeadLetterPage> {
        let events = cx.registry.events();
        events.rule(&self.name).await?;
        let limit = self.limit.unwrap_or(100).clamp(1, MAX_DEAD_LETTER_PAGE);
        let letters = events
            .dead_letters(
                &self.name,
                self.target.as_deref(),
                self.after.unwrap_or(0),
                limit,
            )
            .await?;
        let origin = Origin {
            account: cx.registry_id().to_owned(),
            region: cx.region().to_owned(),
        };
        let next = (letters.len() == limit)
            .then(|| letters.last().map(|l| l.id))
            .flatten();
        Ok(DeadLetterPage {
            dead_letters: letters
                .into_iter()
                .map(|l| DeadLetterEntry {
                    id: l.id,
                    target: l.target,
                    attempts: l.attempts,
                    last_error: l.last_error,
                    failed_at: rfc3339(l.failed_at),
                    event: envelope::eventbridge(&l.event, &origin),
                })
                .collect(),
            next,
        })
    }
}

impl Operation for RedriveDeadLettersRequest {
    const NAME: &'static str = "berth:RedriveDeadLetters";
    type Output = RedriveDeadLettersResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        format!("event-rules/{}", self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<RedriveDeadLettersResponse> {
        let events = cx.registry.events();
        let rule = events.rule(&self.name).await?;
        if let Some(target) = &self.target {
            if !rule.targets.iter().any(|t| &t.id == target) {
                return Err(Error::InvalidParameter(format!(
                    "Invalid parameter at 'target': rule '{}' has no target '{target}'",
                    self.name
                )));
            }
        }
        let ids = self.ids.unwrap_or_default();
        let redriven = events
            .redrive(&self.name, self.target.as_deref(), &ids)
            .await?;
        cx.note(format!("{redriven} redriven"));
        Ok(RedriveDeadLettersResponse { redriven })
    }
}
