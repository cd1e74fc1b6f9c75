//! The audit log page, for administrators: who did what to which resource with what outcome,
//! newest first, filtered by the fields ListAuditEvents takes, a page at a time.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Invalid, Nav};
use super::{encode, Session, PREFIX};
use crate::http::AppState;
use crate::ops::shapes::ListAuditEventsRequest;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/console/audit", get(audit))
}

/// The filters (GET form fields) and the page (`before`: an entry id, the previous page's
/// next).
#[derive(Deserialize, Default)]
struct AuditQuery {
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    outcome: Option<String>,
    /// `datetime-local` (UTC) or RFC 3339.
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
}

const OUTCOMES: &[&str] = &["success", "denied", "failed"];

/// A `datetime-local` value (UTC) as RFC 3339; other text goes to the operation as given.
fn rfc3339(value: Option<&str>) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc().to_rfc3339());
        }
    }
    Some(value.to_owned())
}

/// The query string of the filters (for the next page's link).
fn filter_query(q: &AuditQuery) -> String {
    [
        ("principal", &q.principal),
        ("action", &q.action),
        ("resource", &q.resource),
        ("outcome", &q.outcome),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("{k}={}&", encode(v)))
    })
    .collect()
}

async fn audit(session: Session, Query(q): Query<AuditQuery>) -> Response {
    let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let request = ListAuditEventsRequest {
        limit: Some(100),
        before: q.before,
        principal: given(&q.principal),
        action: given(&q.action),
        resource: given(&q.resource),
        outcome: given(&q.outcome),
        since: rfc3339(q.since.as_deref()),
        until: rfc3339(q.until.as_deref()),
    };
    let (log, invalid) = match session.run(request).await {
        Ok(log) => (Some(log), None),
        Err(e @ crate::error::Error::InvalidParameter(_)) => (
            None,
            Some(Invalid::of(
                &e,
                &[
                    ("outcome", "outcome"),
                    ("since", "since"),
                    ("until", "until"),
                ],
                "principal",
            )),
        ),
        Err(e) => return layout::error_page(Some(&session), &e),
    };
    let err = |f: &str| Invalid::on(invalid.as_ref(), f);
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let outcome = value(&q.outcome);
    let body = html! {
        h1 { "Audit log" }
        form method="get" action={ (PREFIX) "/audit" } class="panel toolbar" id="audit-filters" role="search" aria-label="Filter the audit log" {
            div { (layout::input("text", "principal", "Principal", &value(&q.principal), err("principal").as_deref())) }
            div { (layout::input("text", "action", "Action (e.g. ecr:PutImage)", &value(&q.action), err("action").as_deref())) }
            div { (layout::input("text", "resource", "Resource or repository contains", &value(&q.resource), err("resource").as_deref())) }
            div {
                label for="outcome" { "Outcome" }
                select id="outcome" name="outcome"
                    aria-invalid=[err("outcome").map(|_| "true")]
                    aria-describedby=[err("outcome").map(|_| "outcome-error")] {
                    option value="" selected[outcome.is_empty()] { "any" }
                    @for o in OUTCOMES {
                        option value=(o) selected[outcome == *o] { (o) }
                    }
                }
                (layout::field_error("outcome", err("outcome").as_deref()))
            }
            div { (layout::input("datetime-local", "since", "From (UTC)", &value(&q.since), err("since").as_deref())) }
            div { (layout::input("datetime-local", "until", "Until (UTC)", &value(&q.until), err("until").as_deref())) }
            div { button type="submit" { "Filter" } " " a href={ (PREFIX) "/audit" } { "Clear filters" } }
        }
        @if let Some(log) = &log {
            @if log.entries.is_empty() {
                p { "No entries." }
            } @else {
                div class="table-wrap" {
                    table id="audit" {
                        thead { tr {
                            th scope="col" { "Time" }
                            th scope="col" { "Principal" }
                            th scope="col" { "Action" }
                            th scope="col" { "Resource" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "Detail" }
                            th scope="col" { "Source" }
                        } }
                        tbody {
                            @for e in &log.entries {
                                tr data-id=(e.id) data-outcome=(e.outcome) {
                                    td {
                                        @match chrono::DateTime::parse_from_rfc3339(&e.time) {
                                            Ok(t) => { (layout::time_ms(t.timestamp_millis())) },
                                            Err(_) => { (e.time) },
                                        }
                                    }
                                    td { (e.principal) }
                                    td { code { (e.action) } }
                                    td { code { (e.resource) } }
                                    td { @if e.outcome == "success" { (e.outcome) } @else { strong { (e.outcome) } } }
                                    td { (e.detail) }
                                    td {
                                        (e.source_ip.as_deref().unwrap_or(""))
                                        @if let Some(c) = &e.credential { br; span class="muted" { (c) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = log.next {
                nav class="pager" aria-label="Pages" {
                    a id="older" href={ (PREFIX) "/audit?" (filter_query(&q)) "before=" (next) } { "Older entries" }
                }
            }
        }
    };
    let status = invalid.as_ref().map_or(StatusCode::OK, |i| i.status);
    layout::page_with_status(status, Some(&session), "Audit log", Nav::Audit, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_keeps_the_filters() {
        let q = AuditQuery {
            principal: Some("robot/ci".into()),
            outcome: Some(String::new()),
            action: Some("ecr:PutImage".into()),
            ..Default::default()
        };
        assert_eq!(
            filter_query(&q),
            "principal=robot%2Fci&action=ecr%3APutImage&"
        );
        assert_eq!(
            rfc3339(Some("2024-05-06T07:08")).as_deref(),
            Some("2024-05-06T07:08:00+00:00")
        );
        assert_eq!(rfc3339(Some(" ")), None);
    }
}
