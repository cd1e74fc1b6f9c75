//! The audit log: who did what to which resource, and with what outcome, for the admin API and
//! the ECR API alike. Entries are written after the call has been decided; a failure to write
//! one is logged and does not undo or fail the call it describes. Callers must never put
//! secrets (passwords, secret keys, tokens) in `detail`.

use super::{RequestFacts, Subject};
use crate::error::Result;
use crate::meta::{now_millis, Audit, AuditFilter, AuditRow};

/// Longest `detail` stored; longer ones are cut at a character boundary.
const MAX_DETAIL_CHARS: usize = 2000;
/// Longest page of entries one call returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The call did what was asked.
    Success,
    /// The policies refused the call.
    Denied,
    /// The call was allowed but failed (invalid input, missing object, conflict, outage...).
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// The audit log every door writes to: one record per call.
#[derive(Clone)]
pub struct AuditLog {
    audit: Audit,
}

impl AuditLog {
    pub fn new(audit: Audit) -> AuditLog {
        AuditLog { audit }
    }

    /// Records one call: `action` as `ecr:<Operation>` for ECR operations or `berth:<Operation>`
    /// for Berth's own, `resource` as an ARN or a short name such as `registry`.
    pub async fn audit(
        &self,
        subject: &Subject,
        action: &str,
        resource: &str,
        outcome: AuditOutcome,
        detail: &str,
    ) {
        self.audit_request(
            subject,
            &RequestFacts::default(),
            action,
            resource,
            outcome,
            detail,
        )
        .await
    }

    /// [`AuditLog::audit`] with the request's source address.
    pub async fn audit_request(
        &self,
        subject: &Subject,
        facts: &RequestFacts,
        action: &str,
        resource: &str,
        outcome: AuditOutcome,
        detail: &str,
    ) {
        let detail = match detail.char_indices().nth(MAX_DETAIL_CHARS) {
            Some((cut, _)) => &detail[..cut],
            None => detail,
        };
        let entry = AuditRow {
            id: 0,
            at: now_millis(),
            principal: subject.display_name(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            outcome: outcome.as_str().to_owned(),
            detail: detail.to_owned(),
            source_ip: facts.source_ip.map(|ip| ip.to_string()),
            credential: subject
                .credential_kind()
                .map_or("", |k| k.as_str())
                .to_owned(),
        };
        if let Err(e) = self.audit.insert_audit(&entry).await {
            tracing::error!(
                error = %e,
                principal = %entry.principal,
                action,
                resource,
                outcome = entry.outcome,
                "cannot write the audit log entry"
            );
        }
    }

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) entries older than the entry `before` (the
    /// newest when `None`) that match `filter`, newest first.
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: u32,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRow>> {
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        self.audit
            .audit_entries(before, i64::from(limit), filter)
            .await
    }
}
