//! The registry-wide pages: pull-through cache rules, repository creation templates, registry
//! scanning, replication (configuration and tasks) and event rules with their delivery status,
//! each a listing through its operations with the forms those operations take.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, Invalid, Nav};
use super::{encode, redirect, ConsoleForm, Session, PREFIX};
use crate::access::Resource;
use crate::error::Error;
use crate::http::AppState;
use crate::ops::shapes::{
    CreateEventRuleRequest, CreatePullThroughCacheRuleRequest,
    CreateRepositoryCreationTemplateRequest, DeleteEventRuleRequest,
    DeletePullThroughCacheRuleRequest, DeleteRepositoryCreationTemplateRequest,
    DescribePullThroughCacheRulesRequest, DescribeRegistryRequest,
    DescribeRepositoryCreationTemplatesRequest, EventRuleInput, GetEventDeliveryStatusRequest,
    GetRegistryScanningConfigurationRequest, ListDeadLettersRequest, ListEventRulesRequest,
    ListReplicationTasksRequest, PullThroughCacheRule, PutRegistryScanningConfigurationRequest,
    RedriveDeadLettersRequest, RetryReplicationRequest, StartReplicationBackfillRequest,
    ValidatePullThroughCacheRuleRequest,
};
use crate::policy::scanning::{RepositoryFilter, ScanningRule};
use crate::policy::templates::TemplateFields;
use crate::policy::Action;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/pull-through", get(pull_through).post(create_rule))
        .route("/console/pull-through/delete", post(delete_rule))
        .route("/console/pull-through/validate", post(validate_rule))
        .route("/console/templates", get(templates).post(create_template))
        .route("/console/templates/delete", post(delete_template))
        .route("/console/scanning", get(scanning).post(put_scanning))
        .route("/console/replication", get(replication))
        .route("/console/replication/retry", post(retry_replication))
        .route("/console/replication/backfill", post(backfill_replication))
        .route("/console/events", get(events).post(create_event_rule))
        .route("/console/events/{name}/dead-letters", get(dead_letters))
        .route("/console/events/{name}/redrive", post(redrive))
        .route("/console/events/{name}/delete", post(delete_event_rule))
}

/// A listing page's query: its page token and the notice of the action just done.
#[derive(Deserialize, Default)]
struct PageQuery {
    next: Option<String>,
    done: Option<String>,
    n: Option<u64>,
}

/// The notice for `?done=<key>` (keys only: a link cannot put words in the page).
fn done_notice(q: &PageQuery) -> Markup {
    let n = q.n.unwrap_or(0);
    let text = match q.done.as_deref() {
        Some("rule-created") => "The pull-through cache rule was created.".to_owned(),
        Some("rule-deleted") => {
            "The pull-through cache rule was deleted (its cached repositories stay).".to_owned()
        }
        Some("template-created") => "The creation template was created.".to_owned(),
        Some("template-deleted") => "The creation template was deleted.".to_owned(),
        Some("scanning-saved") => "The registry scanning configuration was saved.".to_owned(),
        Some("retried") => format!("{n} failed replication tasks were started again."),
        Some("backfilled") => format!("{n} replication tasks were written for earlier images."),
        Some("redriven") => format!("{n} dead letters are pending again."),
        Some("event-rule-created") => "The event rule was created.".to_owned(),
        Some("event-rule-deleted") => "The event rule was deleted.".to_owned(),
        _ => return html! {},
    };
    layout::notice(&text)
}

/// The value of a submitted field, or "" on a fresh page.
fn value<'f>(form: Option<&'f ConsoleForm>, name: &str) -> &'f str {
    form.map_or("", |f| f.get(name))
}

/// A non-empty trimmed field, or None.
fn optional(form: &ConsoleForm, name: &str) -> Option<String> {
    Some(form.get(name).trim().to_owned()).filter(|v| !v.is_empty())
}

/// A whole number field; a refusal naming the field when it is not one.
fn number(form: &ConsoleForm, name: &'static str) -> Result<Option<i64>, Invalid> {
    match optional(form, name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| Invalid {
            field: name,
            message: format!("{name}: {v:?} is not a whole number"),
            status: StatusCode::BAD_REQUEST,
        }),
    }
}

fn status(invalid: Option<&Invalid>) -> StatusCode {
    invalid.map_or(StatusCode::OK, |i| i.status)
}

/// A general form error (not about one field), shown above the form.
fn form_error(invalid: Option<&Invalid>, field: &str) -> Markup {
    layout::field_error(field, Invalid::on(invalid, field).as_deref())
}

// ---- pull-through cache rules ----

const RULE_MEMBERS: &[(&str, &str)] = &[
    ("upstreamRepositoryPrefix", "upstream-prefix"),
    ("ecrRepositoryPrefix", "prefix"),
    ("upstreamRegistryUrl", "upstream-url"),
    ("upstreamRegistry", "upstream-url"),
    ("revalidateSecs", "revalidate-secs"),
    ("quotaBytes", "quota-bytes"),
    ("secret", "credential-arn"),
    ("credential", "credential-arn"),
    ("already exists", "prefix"),
];

async fn pull_through(session: Session, Query(q): Query<PageQuery>) -> Response {
    rules_page(&session, &q, None, None, None).await
}

async fn rules_page(
    session: &Session,
    q: &PageQuery,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
    validated: Option<&PullThroughCacheRule>,
) -> Response {
    let answer = session
        .run(DescribePullThroughCacheRulesRequest {
            next_token: q.next.clone().filter(|t| !t.is_empty()),
            max_results: Some(100),
            ..Default::default()
        })
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let may_create = session
        .may(Action::CreatePullThroughCacheRule, Resource::Registry)
        .await;
    let may_delete = session
        .may(Action::DeletePullThroughCacheRule, Resource::Registry)
        .await;
    let may_validate = session
        .may(Action::ValidatePullThroughCacheRule, Resource::Registry)
        .await;
    let err = |f: &str| Invalid::on(invalid, f);
    let body = html! {
        h1 { "Pull-through cache rules" }
        (done_notice(q))
        @if let Some(v) = validated {
            section id="validation" class="panel" aria-labelledby="validation-title" {
                h2 id="validation-title" { "Validation of " code { (v.ecr_repository_prefix) } }
                @if v.is_valid == Some(true) {
                    p role="status" { strong { "Valid" } ": the upstream " (v.upstream_registry_url) " accepted the rule's credential." }
                } @else {
                    p role="alert" class="error" {
                        strong { "Not valid" } ": "
                        (v.failure.as_deref().unwrap_or("the upstream could not be reached"))
                    }
                }
            }
        }
        p { "A rule serves repositories under its prefix from an upstream registry, caching what is pulled." }
        @if answer.pull_through_cache_rules.is_empty() {
            p { "No pull-through cache rules." }
        } @else {
            div class="table-wrap" {
                table id="pull-through-rules" {
                    thead { tr {
                        th scope="col" { "Prefix" }
                        th scope="col" { "Upstream" }
                        th scope="col" { "Upstream prefix" }
                        th scope="col" { "Credential" }
                        th scope="col" { "Revalidate after" }
                        th scope="col" { "Quota" }
                        th scope="col" { "Created" }
                        th scope="col" { "Updated" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for r in &answer.pull_through_cache_rules {
                            tr data-prefix=(r.ecr_repository_prefix) {
                                td { code { (r.ecr_repository_prefix) } }
                                td { (r.upstream_registry_url) br; span class="muted" { (r.upstream_registry) } }
                                td { (r.upstream_repository_prefix.as_deref().unwrap_or("ROOT")) }
                                td { @if let Some(c) = &r.credential_arn { code { (c) } } @else { span class="muted" { "none" } } }
                                td { (r.revalidate_secs) " s" }
                                td { @if let Some(q) = r.quota_bytes { (layout::bytes(q)) } @else { span class="muted" { "none" } } }
                                td { (layout::time_secs(r.created_at)) }
                                td { (layout::time_secs(r.updated_at)) }
                                td { div class="actions" {
                                    @if may_validate {
                                        form class="inline" method="post" action={ (PREFIX) "/pull-through/validate" } {
                                            (layout::csrf(session))
                                            input type="hidden" name="prefix" value=(r.ecr_repository_prefix);
                                            button type="submit" class="secondary" aria-label={ "Validate rule " (r.ecr_repository_prefix) } { "Validate" }
                                        }
                                    }
                                    @if may_delete {
                                        form class="inline" method="post" action={ (PREFIX) "/pull-through/delete" } {
                                            (layout::csrf(session))
                                            input type="hidden" name="prefix" value=(r.ecr_repository_prefix);
                                            button type="submit" class="danger" aria-label={ "Delete rule " (r.ecr_repository_prefix) } { "Delete" }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &answer.next_token {
            nav class="pager" aria-label="Pages" {
                a href={ (PREFIX) "/pull-through?next=" (encode(next)) } { "Next page" }
            }
        }
        @if may_create {
            h2 { "New rule" }
            form method="post" action={ (PREFIX) "/pull-through" } class="panel" id="create-rule" {
                (layout::csrf(session))
                (form_error(invalid, "form"))
                (layout::input("text", "prefix", "Repository prefix (e.g. docker-hub)", value(values, "prefix"), err("prefix").as_deref()))
                (layout::input("text", "upstream-url", "Upstream registry URL (e.g. registry-1.docker.io)", value(values, "upstream-url"), err("upstream-url").as_deref()))
                (layout::input("text", "upstream-prefix", "Upstream repository prefix (optional; ROOT by default)", value(values, "upstream-prefix"), err("upstream-prefix").as_deref()))
                (layout::input("text", "credential-arn", "Credential ARN (optional, for upstreams that need one)", value(values, "credential-arn"), err("credential-arn").as_deref()))
                (layout::input("number", "revalidate-secs", "Revalidate cached tags after, seconds (optional)", value(values, "revalidate-secs"), err("revalidate-secs").as_deref()))
                (layout::input("number", "quota-bytes", "Cache quota in bytes (optional)", value(values, "quota-bytes"), err("quota-bytes").as_deref()))
                p { button type="submit" { "Create rule" } }
            }
        }
    };
    layout::page_with_status(
        status(invalid),
        Some(session),
        "Pull-through cache rules",
        Nav::PullThrough,
        body,
    )
}

async fn create_rule(form: ConsoleForm) -> Response {
    let fields = (
        number(&form, "revalidate-secs"),
        number(&form, "quota-bytes"),
    );
    let (revalidate_secs, quota_bytes) = match fields {
        (Ok(r), Ok(q)) => (r, q),
        (Err(i), _) | (_, Err(i)) => {
            return rules_page(
                &form.session,
                &PageQuery::default(),
                Some(&form),
                Some(&i),
                None,
            )
            .await
        }
    };
    let request = CreatePullThroughCacheRuleRequest {
        ecr_repository_prefix: form.get("prefix").trim().to_owned(),
        upstream_registry_url: form.get("upstream-url").trim().to_owned(),
        registry_id: None,
        upstream_registry: None,
        credential_arn: optional(&form, "credential-arn"),
        custom_role_arn: None,
        upstream_repository_prefix: optional(&form, "upstream-prefix"),
        revalidate_secs,
        quota_bytes,
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/pull-through?done=rule-created")),
        Err(Error::Denied(m)) => layout::error_page(Some(&form.session), &Error::Denied(m)),
        Err(e) => {
            let invalid = Invalid::of(&e, RULE_MEMBERS, "form");
            rules_page(
                &form.session,
                &PageQuery::default(),
                Some(&form),
                Some(&invalid),
                None,
            )
            .await
        }
    }
}

async fn delete_rule(form: ConsoleForm) -> Response {
    let request = DeletePullThroughCacheRuleRequest {
        ecr_repository_prefix: form.get("prefix").to_owned(),
        registry_id: None,
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/pull-through?done=rule-deleted")),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

/// Validation reaches the upstream: its answer is shown on the page it answers.
async fn validate_rule(form: ConsoleForm) -> Response {
    let request = ValidatePullThroughCacheRuleRequest {
        ecr_repository_prefix: form.get("prefix").to_owned(),
        registry_id: None,
    };
    match form.session.run(request).await {
        Ok(rule) => {
            rules_page(
                &form.session,
                &PageQuery::default(),
                None,
                None,
                Some(&rule),
            )
            .await
        }
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

// ---- repository creation templates ----

const TEMPLATE_MEMBERS: &[(&str, &str)] = &[
    ("imageTagMutabilityExclusionFilters", "exclusion-filters"),
    ("imageTagMutability", "tag-mutability"),
    ("prefix", "prefix"),
    ("description", "description"),
    ("appliedFor", "applied-for"),
    ("repositoryPolicy", "repository-policy"),
    ("lifecyclePolicy", "lifecycle-policy"),
    ("imageScanningConfiguration", "scan-on-push"),
    ("already exists", "prefix"),
];

const MUTABILITY: &[&str] = &[
    "MUTABLE",
    "IMMUTABLE",
    "IMMUTABLE_WITH_EXCLUSION",
    "MUTABLE_WITH_EXCLUSION",
];

const APPLIED_FOR: &[(&str, &str)] = &[
    ("CREATE_ON_PUSH", "Create on push"),
    ("PULL_THROUGH_CACHE", "Pull-through cache"),
    ("REPLICATION", "Replication"),
];

async fn templates(session: Session, Query(q): Query<PageQuery>) -> Response {
    templates_page(&session, &q, None, None).await
}

async fn templates_page(
    session: &Session,
    q: &PageQuery,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
) -> Response {
    let answer = session
        .run(DescribeRepositoryCreationTemplatesRequest {
            prefixes: None,
            next_token: q.next.clone().filter(|t| !t.is_empty()),
            max_results: Some(100),
        })
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let may_create = session
        .may(Action::CreateRepositoryCreationTemplate, Resource::Registry)
        .await;
    let may_delete = session
        .may(Action::DeleteRepositoryCreationTemplate, Resource::Registry)
        .await;
    let err = |f: &str| Invalid::on(invalid, f);
    let applied: Vec<&str> = values.map_or(vec!["CREATE_ON_PUSH"], |f| f.all("applied-for"));
    let mutability = values
        .map(|f| f.get("tag-mutability"))
        .filter(|m| !m.is_empty())
        .unwrap_or("MUTABLE");
    let body = html! {
        h1 { "Repository creation templates" }
        (done_notice(q))
        p { "A template gives new repositories under its prefix their settings and policies, when they are created by a push, a pull-through rule or replication." }
        @if answer.repository_creation_templates.is_empty() {
            p { "No creation templates." }
        } @else {
            div class="table-wrap" {
                table id="templates" {
                    thead { tr {
                        th scope="col" { "Prefix" }
                        th scope="col" { "Description" }
                        th scope="col" { "Applied for" }
                        th scope="col" { "Tag mutability" }
                        th scope="col" { "Policies" }
                        th scope="col" { "Created" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for t in &answer.repository_creation_templates {
                            tr data-prefix=(t.prefix) {
                                td { code { (t.prefix) } }
                                td { (t.description.as_deref().unwrap_or("")) }
                                td { @for a in &t.applied_for { span class="badge" { (a) } } }
                                td {
                                    (t.image_tag_mutability)
                                    @for f in &t.image_tag_mutability_exclusion_filters { br; span class="muted" { "except " code { (f.filter) } } }
                                }
                                td {
                                    @if t.repository_policy.is_some() { span class="badge" { "repository policy" } }
                                    @if t.lifecycle_policy.is_some() { span class="badge" { "lifecycle policy" } }
                                    @if let Some(s) = &t.image_scanning_configuration { span class="badge" { "scan on push: " (if s.scan_on_push { "on" } else { "off" }) } }
                                }
                                td { (layout::time_secs(t.created_at)) }
                                td {
                                    @if may_delete {
                                        form class="inline" method="post" action={ (PREFIX) "/templates/delete" } {
                                            (layout::csrf(session))
                                            input type="hidden" name="prefix" value=(t.prefix);
                                            button type="submit" class="danger" aria-label={ "Delete template " (t.prefix) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &answer.next_token {
            nav class="pager" aria-label="Pages" {
                a href={ (PREFIX) "/templates?next=" (encode(next)) } { "Next page" }
            }
        }
        @if may_create {
            h2 { "New template" }
            form method="post" action={ (PREFIX) "/templates" } class="panel" id="create-template" {
                (layout::csrf(session))
                (form_error(invalid, "form"))
                (layout::input("text", "prefix", "Prefix (e.g. team-a/, or ROOT for every repository)", value(values, "prefix"), err("prefix").as_deref()))
                (layout::input("text", "description", "Description (optional)", value(values, "description"), err("description").as_deref()))
                fieldset aria-describedby=[err("applied-for").map(|_| "applied-for-error")] {
                    legend { "Applied for" }
                    @for (v, label) in APPLIED_FOR {
                        label class="check" for={ "applied-for-" (v) } {
                            input type="checkbox" id={ "applied-for-" (v) } name="applied-for" value=(v) checked[applied.contains(v)];
                            (label)
                        }
                    }
                    (layout::field_error("applied-for", err("applied-for").as_deref()))
                }
                label for="tag-mutability" { "Tag mutability" }
                select id="tag-mutability" name="tag-mutability"
                    aria-invalid=[err("tag-mutability").map(|_| "true")]
                    aria-describedby=[err("tag-mutability").map(|_| "tag-mutability-error")] {
                    @for m in MUTABILITY {
                        option value=(m) selected[*m == mutability] { (m) }
                    }
                }
                (layout::field_error("tag-mutability", err("tag-mutability").as_deref()))
                (layout::input("text", "exclusion-filters", "Tag exclusion filters (wildcards separated by spaces or commas; for the _WITH_EXCLUSION modes)", value(values, "exclusion-filters"), err("exclusion-filters").as_deref()))
                label class="check" for="scan-on-push" {
                    input type="checkbox" id="scan-on-push" name="scan-on-push" value="true" checked[value(values, "scan-on-push") == "true"];
                    "Scan on push"
                }
                (layout::textarea("repository-policy", "Repository policy (JSON, optional)", value(values, "repository-policy"), err("repository-policy").as_deref()))
                (layout::textarea("lifecycle-policy", "Lifecycle policy (JSON, optional)", value(values, "lifecycle-policy"), err("lifecycle-policy").as_deref()))
                p { button type="submit" { "Create template" } }
            }
        }
    };
    layout::page_with_status(
        status(invalid),
        Some(session),
        "Repository creation templates",
        Nav::Templates,
        body,
    )
}

/// Words separated by spaces or commas.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn template_fields(form: &ConsoleForm) -> TemplateFields {
    let text = |name: &str| optional(form, name).map(Value::String);
    let filters = words(form.get("exclusion-filters"));
    TemplateFields {
        prefix: Some(Value::String(form.get("prefix").trim().to_owned())),
        description: text("description"),
        image_tag_mutability: text("tag-mutability"),
        image_tag_mutability_exclusion_filters: (!filters.is_empty()).then(|| {
            Value::Array(
                filters
                    .into_iter()
                    .map(|f| serde_json::json!({"filterType": "WILDCARD", "filter": f}))
                    .collect(),
            )
        }),
        repository_policy: text("repository-policy"),
        lifecycle_policy: text("lifecycle-policy"),
        applied_for: Some(Value::Array(
            form.all("applied-for")
                .into_iter()
                .map(|a| Value::String(a.to_owned()))
                .collect(),
        )),
        image_scanning_configuration: (form.get("scan-on-push") == "true")
            .then(|| serde_json::json!({"scanOnPush": true})),
        ..Default::default()
    }
}

async fn create_template(form: ConsoleForm) -> Response {
    let request = CreateRepositoryCreationTemplateRequest {
        fields: template_fields(&form),
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/templates?done=template-created")),
        Err(Error::Denied(m)) => layout::error_page(Some(&form.session), &Error::Denied(m)),
        Err(e) => {
            let invalid = Invalid::of(&e, TEMPLATE_MEMBERS, "form");
            templates_page(
                &form.session,
                &PageQuery::default(),
                Some(&form),
                Some(&invalid),
            )
            .await
        }
    }
}

async fn delete_template(form: ConsoleForm) -> Response {
    let request = DeleteRepositoryCreationTemplateRequest {
        prefix: form.get("prefix").to_owned(),
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/templates?done=template-deleted")),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

// ---- registry scanning ----

/// ECR allows two scanning rules; the form has a row for each.
const SCAN_RULES: usize = 2;
const FREQUENCIES: &[&str] = &["SCAN_ON_PUSH", "MANUAL", "CONTINUOUS_SCAN"];

async fn scanning(session: Session, Query(q): Query<PageQuery>) -> Response {
    scanning_page(&session, &q, None, None).await
}

/// The form field an ECR member path names: `rules.2.member.repositoryFilters...` is
/// `filters-2`, `rules.1.member.scanFrequency` is `frequency-1`.
fn scanning_field(message: &str) -> &'static str {
    const FIELDS: [[&str; 2]; SCAN_RULES] =
        [["frequency-1", "filters-1"], ["frequency-2", "filters-2"]];
    for (i, [frequency, filters]) in FIELDS.iter().enumerate() {
        let at = format!("rules.{}.member", i + 1);
        if message.contains(&format!("{at}.repositoryFilters")) {
            return filters;
        }
        if message.contains(&at) {
            return frequency;
        }
    }
    if message.contains("scanType") {
        "scan-type"
    } else {
        "form"
    }
}

async fn scanning_page(
    session: &Session,
    q: &PageQuery,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
) -> Response {
    let answer = match session
        .run(GetRegistryScanningConfigurationRequest {})
        .await
    {
        Ok(a) => a,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let config = answer.scanning_configuration;
    let may_put = session
        .may(Action::PutRegistryScanningConfiguration, Resource::Registry)
        .await;
    let err = |f: &str| Invalid::on(invalid, f);
    // The form shows what was submitted, or else what is stored.
    let scan_type = values.map_or(config.scan_type.clone(), |f| f.get("scan-type").to_owned());
    let rule_values: Vec<(String, String)> = (0..SCAN_RULES)
        .map(|i| match values {
            Some(f) => (
                f.get(&format!("frequency-{}", i + 1)).to_owned(),
                f.get(&format!("filters-{}", i + 1)).to_owned(),
            ),
            None => config.rules.get(i).map_or_else(
                || (String::new(), String::new()),
                |r| {
                    (
                        r.scan_frequency.clone(),
                        r.repository_filters
                            .iter()
                            .map(|f| f.filter.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                },
            ),
        })
        .collect();
    let body = html! {
        h1 { "Registry scanning" }
        (done_notice(q))
        dl class="facts" {
            dt { "Scan type" } dd id="scan-type-current" { (config.scan_type) }
        }
        @if config.rules.is_empty() {
            p { "No scanning rules: repositories scan on push only when their own setting says so." }
        } @else {
            div class="table-wrap" {
                table id="scanning-rules" {
                    thead { tr {
                        th scope="col" { "Rule" }
                        th scope="col" { "Frequency" }
                        th scope="col" { "Repository filters" }
                    } }
                    tbody {
                        @for (i, r) in config.rules.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { (r.scan_frequency) }
                                td { @for f in &r.repository_filters { code class="badge" { (f.filter) } " " } }
                            }
                        }
                    }
                }
            }
        }
        @if may_put {
            h2 { "Replace the configuration" }
            form method="post" action={ (PREFIX) "/scanning" } class="panel" id="put-scanning" {
                (layout::csrf(session))
                (form_error(invalid, "form"))
                label for="scan-type" { "Scan type" }
                select id="scan-type" name="scan-type"
                    aria-invalid=[err("scan-type").map(|_| "true")]
                    aria-describedby=[err("scan-type").map(|_| "scan-type-error")] {
                    @for t in ["BASIC", "ENHANCED"] {
                        option value=(t) selected[scan_type == t] { (t) }
                    }
                }
                (layout::field_error("scan-type", err("scan-type").as_deref()))
                @for (i, (frequency, filters)) in rule_values.iter().enumerate() {
                    fieldset {
                        legend { "Rule " (i + 1) " (leave the filters empty for no rule)" }
                        @let f_name = format!("frequency-{}", i + 1);
                        @let r_name = format!("filters-{}", i + 1);
                        label for=(f_name) { "Scan frequency" }
                        select id=(f_name) name=(f_name)
                            aria-invalid=[err(&f_name).map(|_| "true")]
                            aria-describedby=[err(&f_name).map(|_| format!("{f_name}-error"))] {
                            @for fr in FREQUENCIES {
                                option value=(fr) selected[frequency == fr] { (fr) }
                            }
                        }
                        (layout::field_error(&f_name, err(&f_name).as_deref()))
                        (layout::input("text", &r_name, "Repository filters (wildcards such as team-a/*, separated by spaces or commas)", filters, err(&r_name).as_deref()))
                    }
                }
                p { button type="submit" { "Save scanning configuration" } }
            }
        }
    };
    layout::page_with_status(
        status(invalid),
        Some(session),
        "Registry scanning",
        Nav::Scanning,
        body,
    )
}

async fn put_scanning(form: ConsoleForm) -> Response {
    let rules = (1..=SCAN_RULES)
        .filter_map(|i| {
            let filters = words(form.get(&format!("filters-{i}")));
            (!filters.is_empty()).then(|| ScanningRule {
                scan_frequency: form.get(&format!("frequency-{i}")).to_owned(),
                repository_filters: filters
                    .into_iter()
                    .map(|filter| RepositoryFilter {
                        filter,
                        filter_type: "WILDCARD".into(),
                    })
                    .collect(),
            })
        })
        .collect();
    let request = PutRegistryScanningConfigurationRequest {
        scan_type: optional(&form, "scan-type"),
        rules,
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/scanning?done=scanning-saved")),
        Err(Error::Denied(m)) => layout::error_page(Some(&form.session), &Error::Denied(m)),
        Err(e) => {
            let message = e.message();
            let invalid = Invalid {
                field: scanning_field(&message),
                message,
                status: layout::status_of(&e),
            };
            scanning_page(
                &form.session,
                &PageQuery::default(),
                Some(&form),
                Some(&invalid),
            )
            .await
        }
    }
}

// ---- replication ----

#[derive(Deserialize, Default)]
struct TaskQuery {
    after: Option<i64>,
    done: Option<String>,
    n: Option<u64>,
}

async fn replication(session: Session, Query(q): Query<TaskQuery>) -> Response {
    let configuration = match session.run(DescribeRegistryRequest {}).await {
        Ok(a) => a.replication_configuration,
        Err(e) => return layout::error_page(Some(&session), &e),
    };
    let page = match session
        .run(ListReplicationTasksRequest {
            after: q.after,
            limit: Some(100),
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return layout::error_page(Some(&session), &e),
    };
    let may_retry = session
        .may(Action::PutReplicationConfiguration, Resource::Registry)
        .await;
    let notice = PageQuery {
        done: q.done.clone(),
        n: q.n,
        next: None,
    };
    let destination = |d: &crate::ops::shapes::ReplicationDestination| match &d.target {
        Some(t) => format!("target {t}"),
        None => format!("{} in {}", d.registry_id, d.region),
    };
    let body = html! {
        h1 { "Replication" }
        (done_notice(&notice))
        h2 { "Configuration" }
        @if configuration.rules.is_empty() {
            p { "No replication rules: images stay in this registry." }
        } @else {
            div class="table-wrap" {
                table id="replication-rules" {
                    thead { tr {
                        th scope="col" { "Rule" }
                        th scope="col" { "Destinations" }
                        th scope="col" { "Repository filters" }
                        th scope="col" { "Tag filters" }
                        th scope="col" { "Deletes replicate" }
                    } }
                    tbody {
                        @for (i, r) in configuration.rules.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { ul { @for d in &r.destinations { li { (destination(d)) } } } }
                                td {
                                    @match &r.repository_filters {
                                        Some(fs) if !fs.is_empty() => { @for f in fs { span class="badge" { (f.filter_type) " " code { (f.filter) } } } },
                                        _ => { span class="muted" { "every repository" } },
                                    }
                                }
                                td {
                                    @match &r.image_tag_filters {
                                        Some(fs) if !fs.is_empty() => { @for f in fs { code class="badge" { (serde_json::to_string(f).unwrap_or_default()) } } },
                                        _ => { span class="muted" { "every tag" } },
                                    }
                                }
                                td { (if r.delete_replication == Some(true) { "yes" } else { "no" }) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Tasks not yet complete" }
        p id="replication-counts" {
            strong { (page.open) } " waiting or being sent, "
            strong { (page.failed) } " failed."
        }
        @if may_retry {
            div class="actions" {
                @if page.failed > 0 {
                    form class="inline" method="post" action={ (PREFIX) "/replication/retry" } {
                        (layout::csrf(&session))
                        button type="submit" id="retry-all" { "Retry all failed tasks" }
                    }
                }
                form class="inline" method="post" action={ (PREFIX) "/replication/backfill" } {
                    (layout::csrf(&session))
                    button type="submit" class="secondary" id="backfill" { "Replicate earlier images (backfill)" }
                }
            }
        }
        @if page.tasks.is_empty() {
            p { "No open replication tasks." }
        } @else {
            div class="table-wrap" {
                table id="replication-tasks" {
                    thead { tr {
                        th scope="col" { "Image" }
                        th scope="col" { "Destination" }
                        th scope="col" { "State" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Last error" }
                        th scope="col" { "Queued" }
                        th scope="col" { "Updated" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for t in &page.tasks {
                            tr data-state=(t.status) {
                                td {
                                    a href={ (PREFIX) "/repositories/" (t.repository) } { (t.repository) }
                                    @if let Some(tag) = &t.tag { ":" (tag) }
                                    br; (layout::short_digest(&t.digest))
                                }
                                td { @if let Some(target) = &t.target { "target " (target) } @else { (t.registry_id) " in " (t.region) } }
                                td { (t.status) }
                                td { (t.attempts) }
                                td {
                                    @if let Some(code) = &t.failure_code { code { (code) } " " }
                                    (t.failure_reason.as_deref().unwrap_or(""))
                                }
                                td { (layout::time_ms(t.created_at)) }
                                td { (layout::time_ms(t.updated_at)) }
                                td {
                                    @if may_retry && t.status == "FAILED" {
                                        form class="inline" method="post" action={ (PREFIX) "/replication/retry" } {
                                            (layout::csrf(&session))
                                            input type="hidden" name="repository" value=(t.repository);
                                            input type="hidden" name="image-digest" value=(t.digest);
                                            button type="submit" class="secondary" aria-label={ "Retry " (t.repository) "@" (t.digest) } { "Retry" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = page.next {
            nav class="pager" aria-label="Pages" {
                a href={ (PREFIX) "/replication?after=" (next) } { "Next page" }
            }
        }
    };
    layout::page(&session, "Replication", Nav::Replication, body)
}

async fn retry_replication(form: ConsoleForm) -> Response {
    let request = RetryReplicationRequest {
        repository: optional(&form, "repository"),
        image_digest: optional(&form, "image-digest"),
    };
    match form.session.run(request).await {
        Ok(r) => redirect(&format!(
            "{PREFIX}/replication?done=retried&n={}",
            r.restarted
        )),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn backfill_replication(form: ConsoleForm) -> Response {
    match form.session.run(StartReplicationBackfillRequest {}).await {
        Ok(r) => redirect(&format!(
            "{PREFIX}/replication?done=backfilled&n={}",
            r.tasks
        )),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

// ---- event rules ----

const EVENT_RULE_MEMBERS: &[(&str, &str)] = &[
    ("eventPattern", "event-pattern"),
    ("event pattern", "event-pattern"),
    ("targets", "targets"),
    ("target", "targets"),
    ("name", "name"),
    ("description", "description"),
];

async fn events(session: Session, Query(q): Query<PageQuery>) -> Response {
    events_page(&session, &q, None, None).await
}

async fn events_page(
    session: &Session,
    q: &PageQuery,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
) -> Response {
    let rules = match session.run(ListEventRulesRequest {}).await {
        Ok(l) => l.rules,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    // Rules are few (an administrator writes each): one status call per rule.
    let mut statuses = Vec::with_capacity(rules.len());
    for rule in &rules {
        match session
            .run(GetEventDeliveryStatusRequest {
                name: rule.name.clone(),
            })
            .await
        {
            Ok(s) => statuses.push(s),
            Err(e) => return layout::error_page(Some(session), &e),
        }
    }
    let err = |f: &str| Invalid::on(invalid, f);
    let body = html! {
        h1 { "Event rules" }
        (done_notice(q))
        p { "Each rule sends the registry's events that match its pattern to its targets; deliveries that keep failing become dead letters." }
        @if rules.is_empty() {
            p { "No event rules." }
        } @else {
            div class="table-wrap" {
                table id="event-rules" {
                    thead { tr {
                        th scope="col" { "Rule" }
                        th scope="col" { "Target" }
                        th scope="col" { "Delivered" }
                        th scope="col" { "Pending" }
                        th scope="col" { "Dead letters" }
                        th scope="col" { "Oldest pending" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for (rule, status) in rules.iter().zip(&statuses) {
                            @for (i, t) in status.targets.iter().enumerate() {
                                tr data-rule=(rule.name) data-target=(t.target) {
                                    td {
                                        @if i == 0 {
                                            strong { (rule.name) }
                                            @if !rule.enabled { " " span class="badge" { "disabled" } }
                                            @if !rule.description.is_empty() { br; span class="muted" { (rule.description) } }
                                        } @else {
                                            span class="muted" { (rule.name) }
                                        }
                                    }
                                    td { code { (t.target) } }
                                    td { (t.delivered) }
                                    td { (t.pending) }
                                    td {
                                        a href={ (PREFIX) "/events/" (encode(&rule.name)) "/dead-letters?target=" (encode(&t.target)) } {
                                            (t.dead_lettered) span class="sr-only" { " dead letters of " (rule.name) " to " (t.target) }
                                        }
                                    }
                                    td {
                                        @match t.oldest_pending_age_seconds {
                                            Some(s) => { (format!("{s:.0}")) " s ago" },
                                            None => { span class="muted" { "none" } },
                                        }
                                    }
                                    td { div class="actions" {
                                        {
                                            form class="inline" method="post" action={ (PREFIX) "/events/" (encode(&rule.name)) "/redrive" } {
                                                (layout::csrf(session))
                                                input type="hidden" name="target" value=(t.target);
                                                button type="submit" class="secondary" aria-label={ "Redrive dead letters of " (rule.name) " to " (t.target) } { "Redrive" }
                                            }
                                        }
                                        @if i == 0 {
                                            form class="inline" method="post" action={ (PREFIX) "/events/" (encode(&rule.name)) "/delete" } {
                                                (layout::csrf(session))
                                                button type="submit" class="danger" aria-label={ "Delete rule " (rule.name) } { "Delete rule" }
                                            }
                                        }
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New event rule" }
        form method="post" action={ (PREFIX) "/events" } class="panel" id="create-event-rule" {
            (layout::csrf(session))
            (form_error(invalid, "form"))
            (layout::input("text", "name", "Name", value(values, "name"), err("name").as_deref()))
            (layout::input("text", "description", "Description (optional)", value(values, "description"), err("description").as_deref()))
            (layout::textarea("event-pattern", "Event pattern (EventBridge JSON, e.g. {\"detail-type\": [\"ECR Image Action\"]})", value(values, "event-pattern"), err("event-pattern").as_deref()))
            (layout::textarea("targets", "Targets (JSON list, e.g. [{\"id\": \"hook\", \"type\": \"webhook\", \"url\": \"https://example.com/hook\"}]; or \"type\": \"nats\" with a \"subject\")", value(values, "targets"), err("targets").as_deref()))
            p { button type="submit" { "Create event rule" } }
        }
    };
    layout::page_with_status(
        status(invalid),
        Some(session),
        "Event rules",
        Nav::Events,
        body,
    )
}

/// A JSON text area's value; a refusal naming the field when it is not JSON.
fn json_field(form: &ConsoleForm, name: &'static str) -> Result<Option<Value>, Invalid> {
    match optional(form, name) {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| Invalid {
            field: name,
            message: format!("{name}: not valid JSON ({e})"),
            status: StatusCode::BAD_REQUEST,
        }),
    }
}

async fn create_event_rule(form: ConsoleForm) -> Response {
    let parsed = (
        json_field(&form, "event-pattern"),
        json_field(&form, "targets"),
    );
    let (pattern, targets) = match parsed {
        (Ok(p), Ok(t)) => (p, t),
        (Err(i), _) | (_, Err(i)) => {
            return events_page(&form.session, &PageQuery::default(), Some(&form), Some(&i)).await
        }
    };
    let request = CreateEventRuleRequest {
        rule: EventRuleInput {
            name: Some(form.get("name").trim().to_owned()),
            description: optional(&form, "description"),
            event_pattern: pattern,
            targets,
            enabled: Some(true),
        },
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/events?done=event-rule-created")),
        Err(Error::Denied(m)) => layout::error_page(Some(&form.session), &Error::Denied(m)),
        Err(e) => {
            let invalid = Invalid::of(&e, EVENT_RULE_MEMBERS, "form");
            events_page(
                &form.session,
                &PageQuery::default(),
                Some(&form),
                Some(&invalid),
            )
            .await
        }
    }
}

async fn delete_event_rule(Path(name): Path<String>, form: ConsoleForm) -> Response {
    match form.session.run(DeleteEventRuleRequest { name }).await {
        Ok(()) => redirect(&format!("{PREFIX}/events?done=event-rule-deleted")),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

#[derive(Deserialize)]
struct DeadLetterQuery {
    target: Option<String>,
    after: Option<i64>,
}

async fn dead_letters(
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<DeadLetterQuery>,
) -> Response {
    let target = q.target.filter(|t| !t.is_empty());
    let page = match session
        .run(ListDeadLettersRequest {
            name: name.clone(),
            target: target.clone(),
            after: q.after,
            limit: Some(100),
        })
        .await
    {
        Ok(p) => p,
        Err(e) => return layout::error_page(Some(&session), &e),
    };
    let here = format!("{PREFIX}/events/{}/dead-letters", encode(&name));
    let body = html! {
        p { a href={ (PREFIX) "/events" } { "← Event rules" } }
        h1 { "Dead letters of " (name) @if let Some(t) = &target { " to " (t) } }
        @if !page.dead_letters.is_empty() {
            form method="post" action={ (PREFIX) "/events/" (encode(&name)) "/redrive" } {
                (layout::csrf(&session))
                @if let Some(t) = &target { input type="hidden" name="target" value=(t); }
                button type="submit" id="redrive-all" { "Redrive all of these dead letters" }
            }
        }
        @if page.dead_letters.is_empty() {
            p { "No dead letters." }
        } @else {
            div class="table-wrap" {
                table id="dead-letters" {
                    thead { tr {
                        th scope="col" { "Delivery" }
                        th scope="col" { "Target" }
                        th scope="col" { "Event" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Last error" }
                        th scope="col" { "Failed" }
                    } }
                    tbody {
                        @for l in &page.dead_letters {
                            tr {
                                td { (l.id) }
                                td { code { (l.target) } }
                                td {
                                    (l.event.get("detail-type").and_then(Value::as_str).unwrap_or(""))
                                    @if let Some(repo) = l.event.pointer("/detail/repository-name").and_then(Value::as_str) { br; span class="muted" { (repo) } }
                                }
                                td { (l.attempts) }
                                td { (l.last_error.as_deref().unwrap_or("")) }
                                td {
                                    @match chrono::DateTime::parse_from_rfc3339(&l.failed_at) {
                                        Ok(t) => { (layout::time_ms(t.timestamp_millis())) },
                                        Err(_) => { (l.failed_at) },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = page.next {
            nav class="pager" aria-label="Pages" {
                a href={ (here) "?after=" (next) @if let Some(t) = &target { "&target=" (encode(t)) } } { "Next page" }
            }
        }
    };
    layout::page(&session, "Dead letters", Nav::Events, body)
}

async fn redrive(Path(name): Path<String>, form: ConsoleForm) -> Response {
    let request = RedriveDeadLettersRequest {
        name,
        target: optional(&form, "target"),
        ids: None,
    };
    match form.session.run(request).await {
        Ok(r) => redirect(&format!("{PREFIX}/events?done=redriven&n={}", r.redriven)),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning_errors_land_on_their_rule_fields() {
        assert_eq!(
            scanning_field(
                "Invalid parameter at 'rules.2.member.repositoryFilters.1.member.filter' failed"
            ),
            "filters-2"
        );
        assert_eq!(
            scanning_field("Invalid parameter at 'rules.1.member.scanFrequency': CONTINUOUS_SCAN needs scanType ENHANCED"),
            "frequency-1"
        );
        assert_eq!(
            scanning_field("Invalid parameter at 'scanType'"),
            "scan-type"
        );
        assert_eq!(scanning_field("something else"), "form");
    }

    #[test]
    fn words_split_on_spaces_and_commas() {
        assert_eq!(words(" a/*, b  c,,"), vec!["a/*", "b", "c"]);
        assert!(words("  ").is_empty());
    }

    #[test]
    fn rule_errors_name_their_fields() {
        let e = Error::InvalidParameter(
            "Invalid parameter at 'upstreamRegistryUrl': a registry host is required".into(),
        );
        assert_eq!(Invalid::of(&e, RULE_MEMBERS, "form").field, "upstream-url");
        let e =
            Error::InvalidParameter("Invalid parameter at 'upstreamRepositoryPrefix': bad".into());
        assert_eq!(
            Invalid::of(&e, RULE_MEMBERS, "form").field,
            "upstream-prefix"
        );
    }
}
