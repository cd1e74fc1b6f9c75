//! Administration operations, for administrators: the registry's settings, the policy
//! simulator, the token signing keys, the audit log, garbage collection's state and the event
//! outbox; and the API document, for any signed-in caller. Berth's own operations
//! (`berth:<Operation>`), reached by the REST API.

use super::identity::{known_members_only, parse_time, required};
use super::shapes::{
    rfc3339, AuditEntry, AuditLog, DecidingStatement, Event, EventList, GcPass, GcQueue,
    GcSinceStart, GcStatusResponse, GetGcStatusRequest, GetOpenApiDocumentRequest,
    GetSettingsRequest, ListAuditEventsRequest, ListEventsRequest, ListSigningKeysRequest,
    ListTrustedRegistriesRequest, PolicySimulation, PutSettingsRequest, RotateSigningKeyRequest,
    Settings, SigningKey, SigningKeys, SimulatePolicyRequest, TrustedRegistry, TrustedRegistryList,
};
use super::{Context, Operation};
use crate::access::{Access, Permission, RequestFacts, SimulationRequest, MAX_AUDIT_PAGE};
use crate::error::{Error, Result};
use crate::meta::AuditFilter;
use crate::policy::{Decision, PolicySource};

/// Events one ListEvents page holds at most.
const MAX_EVENT_PAGE: usize = 1000;

// ---- settings ----

async fn settings(cx: &Context<'_>) -> Result<Settings> {
    Ok(Settings {
        create_on_push: cx.access.create_on_push().await?,
    })
}

impl Operation for GetSettingsRequest {
    const NAME: &'static str = "berth:GetSettings";
    type Output = Settings;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "settings".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<Settings> {
        settings(cx).await
    }
}

impl Operation for PutSettingsRequest {
    const NAME: &'static str = "berth:PutSettings";
    type Output = Settings;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "settings".into()
    }

    /// Changes the settings present; answers all of them.
    async fn run(self, cx: &Context<'_>) -> Result<Settings> {
        known_members_only(&self.unknown)?;
        if let Some(on) = self.create_on_push {
            cx.access.set_create_on_push(on).await?;
        }
        cx.note(match self.create_on_push {
            Some(on) => format!("createOnPush={on}"),
            None => "no change".into(),
        });
        settings(cx).await
    }
}

// ---- the policy simulator ----

impl Operation for SimulatePolicyRequest {
    const NAME: &'static str = "berth:SimulatePolicy";
    type Output = PolicySimulation;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "policy-simulator".into()
    }

    /// Decides the action with the policies stored now, as a real request with these facts
    /// would be decided.
    async fn run(self, cx: &Context<'_>) -> Result<PolicySimulation> {
        known_members_only(&self.unknown)?;
        let principal = required("principal", self.principal)?;
        let action = required("action", self.action)?;
        let source_ip = self
            .source_ip
            .as_deref()
            .map(|ip| {
                ip.parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "sourceIp: {:?} is not an IP address",
                        ip.chars().take(60).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let request = SimulationRequest {
            principal,
            action,
            repository: self.repository,
            facts: RequestFacts {
                source_ip,
                secure_transport: self.secure_transport.unwrap_or(false),
            },
        };
        let simulation = cx.access.simulate(&request).await?;
        cx.note(format!(
            "{} {} on {}: {}",
            request.principal.chars().take(200).collect::<String>(),
            simulation.action,
            request.repository.as_deref().unwrap_or("the registry"),
            simulation.decision
        ));
        let (decision, statement) = match &simulation.decision {
            Decision::Allow(s) => ("allow", Some(s)),
            Decision::ExplicitDeny(s) => ("explicitDeny", Some(s)),
            Decision::ImplicitDeny(_) => ("implicitDeny", None),
        };
        let statement = statement.map(|s| {
            let (source, policy) = match &s.source {
                PolicySource::Identity(name) => ("identity", Some(name.clone())),
                PolicySource::Repository => ("repository", None),
                PolicySource::Registry => ("registry", None),
                PolicySource::SameAccountReplication => ("account", None),
            };
            DecidingStatement {
                source,
                policy,
                sid: s.statement.sid.clone(),
                index: s.statement.index,
                description: s.to_string(),
            }
        });
        Ok(PolicySimulation {
            decision,
            statement,
            explanation: simulation.explanation,
            principal_arn: simulation.principal_arn,
            action: simulation.action.iam_name().to_owned(),
            repository: request.repository,
        })
    }
}

// ---- signing keys ----

/// The key ids tokens are verified with, the signing one first.
fn signing_keys(access: &Access, rotated_to: Option<String>) -> SigningKeys {
    SigningKeys {
        kid: rotated_to,
        keys: access
            .signing_key_ids()
            .into_iter()
            .enumerate()
            .map(|(i, kid)| SigningKey {
                kid,
                signing: i == 0,
            })
            .collect(),
    }
}

impl Operation for ListSigningKeysRequest {
    const NAME: &'static str = "berth:ListSigningKeys";
    type Output = SigningKeys;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "signing-keys".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<SigningKeys> {
        Ok(signing_keys(cx.access, None))
    }
}

// ---- federation ----

impl Operation for ListTrustedRegistriesRequest {
    const NAME: &'static str = "berth:ListTrustedRegistries";
    type Output = TrustedRegistryList;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "federation".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<TrustedRegistryList> {
        let registries = cx
            .access
            .trusted_registries()
            .status()
            .into_iter()
            .map(|r| TrustedRegistry {
                registry_id: r.registry_id,
                region: r.region,
                url: r.url,
                jwks: r.jwks,
                key_ids: r.key_ids,
                refreshed_at: r.refreshed_at.map(rfc3339),
                error: r.error,
            })
            .collect();
        Ok(TrustedRegistryList { registries })
    }
}

impl Operation for RotateSigningKeyRequest {
    const NAME: &'static str = "berth:RotateSigningKey";
    type Output = SigningKeys;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "signing-keys".into()
    }

    /// Signs with a new key from now on; earlier keys verify until their tokens expire.
    async fn run(self, cx: &Context<'_>) -> Result<SigningKeys> {
        let kid = cx.access.rotate_signing_key().await?;
        cx.note(format!("now signing with {kid}"));
        Ok(signing_keys(cx.access, Some(kid)))
    }
}

// ---- the audit log ----

impl Operation for ListAuditEventsRequest {
    const NAME: &'static str = "berth:ListAuditEvents";
    type Output = AuditLog;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "audit-log".into()
    }

    /// Newest first, filtered; a full page names the `before` of the next one.
    async fn run(self, cx: &Context<'_>) -> Result<AuditLog> {
        let limit = self.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE);
        let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let outcome = given(self.outcome);
        if let Some(o) = &outcome {
            if !matches!(o.as_str(), "success" | "denied" | "failed") {
                return Err(Error::InvalidParameter(format!(
                    "outcome: {:?} is not success, denied or failed",
                    o.chars().take(40).collect::<String>()
                )));
            }
        }
        let time =
            |member: &str, v: Option<String>| given(v).map(|t| parse_time(member, &t)).transpose();
        let filter = AuditFilter {
            principal: given(self.principal),
            action: given(self.action),
            resource: given(self.resource),
            outcome,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
        };
        let entries = cx.audit.audit_log(self.before, limit, &filter).await?;
        let full = entries.len() == limit as usize;
        let next = full.then(|| entries.last().map(|e| e.id)).flatten();
        Ok(AuditLog {
            entries: entries
                .into_iter()
                .map(|e| AuditEntry {
                    id: e.id,
                    time: rfc3339(e.at),
                    principal: e.principal,
                    action: e.action,
                    resource: e.resource,
                    outcome: e.outcome,
                    detail: e.detail,
                    source_ip: e.source_ip,
                    credential: (!e.credential.is_empty()).then_some(e.credential),
                })
                .collect(),
            next,
        })
    }
}

// ---- garbage collection ----

impl Operation for GetGcStatusRequest {
    const NAME: &'static str = "berth:GetGcStatus";
    type Output = GcStatusResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "gc".into()
    }

    /// The review queues, and what this process reclaimed since it started and in its last
    /// pass.
    async fn run(self, cx: &Context<'_>) -> Result<GcStatusResponse> {
        let s = cx.registry.gc().gc_status().await?;
        Ok(GcStatusResponse {
            grace_period_secs: s.grace_period_secs,
            interval_secs: s.interval.map(|i| i.as_secs_f64()),
            queue: GcQueue {
                blobs: s.queue.blob_queue,
                blobs_due: s.queue.blob_due,
                manifests: s.queue.manifest_queue,
                manifests_due: s.queue.manifest_due,
            },
            since_start: GcSinceStart {
                passes: s.since_start.passes,
                blobs_deleted: s.since_start.blobs_deleted,
                bytes_deleted: s.since_start.bytes_deleted,
                manifests_deleted: s.since_start.manifests_deleted,
                storage_errors: s.since_start.storage_errors,
            },
            last_pass: s.last_pass.map(|p| GcPass {
                blobs_deleted: p.blobs_deleted,
                bytes_deleted: p.bytes_deleted,
                manifests_deleted: p.manifests_deleted,
                blobs_kept: p.blobs_kept,
                manifests_kept: p.manifests_kept,
                storage_errors: p.storage_errors,
                started_at: rfc3339(p.started_at),
                finished_at: rfc3339(p.finished_at),
            }),
        })
    }
}

// ---- the event outbox ----

impl Operation for ListEventsRequest {
    const NAME: &'static str = "berth:ListEvents";
    type Output = EventList;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "events".into()
    }

    /// Oldest first; a consumer passes the last `id` it saw as `after`.
    async fn run(self, cx: &Context<'_>) -> Result<EventList> {
        let limit = self.limit.unwrap_or(100).clamp(1, MAX_EVENT_PAGE);
        let events = cx
            .registry
            .events()
            .events(self.after.unwrap_or(0), limit)
            .await?;
        Ok(EventList {
            events: events
                .into_iter()
                .map(|e| Event {
                    id: e.id,
                    detail_type: e.kind,
                    detail: e.detail,
                    created_at: rfc3339(e.created_at),
                    delivered_at: e.delivered_at.map(rfc3339),
                })
                .collect(),
        })
    }
}

// ---- the API document ----

impl Operation for GetOpenApiDocumentRequest {
    const NAME: &'static str = "berth:GetOpenApiDocument";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::SignedIn
    }

    fn audited_resource(&self, _: &Access) -> String {
        "openapi".into()
    }

    async fn run(self, _: &Context<'_>) -> Result<()> {
        Ok(())
    }
}
