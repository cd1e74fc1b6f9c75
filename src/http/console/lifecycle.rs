//! The lifecycle policy editor of one repository (`/console/repositories/<name>/-/lifecycle`):
//! the saved policy as a form of rules and as ECR JSON, saving and deleting it, and a preview
//! of exactly which images it would expire. Validation and evaluation are the operations'
//! (PutLifecyclePolicy, PreviewLifecyclePolicy); this module only maps form fields to the ECR
//! document and the operations' messages back to the fields they name.
//!
//! POSTs to the page (`…/-/lifecycle`) carry `mode`: `form` saves the rules form, `json` saves
//! the JSON textarea, `preview` re-renders the page with the preview (the no-JS fallback; the
//! source is the JSON when the form holds `policy-json`, else the rules). `…/-/lifecycle/preview`
//! answers the preview as an HTML fragment (the script's live preview), `…/-/lifecycle/delete`
//! deletes the policy.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Serialize;
use serde_json::Value;

use super::layout::{self, field_error, Nav};
use super::{encode, ConsoleForm, Session, PREFIX};
use crate::access::Resource;
use crate::error::{Error, Missing};
use crate::http::error::status_and_code;
use crate::ops::shapes::{
    DeleteLifecyclePolicyRequest, GetLifecyclePolicyRequest, PreviewLifecyclePolicyRequest,
    PreviewLifecyclePolicyResponse, PutLifecyclePolicyRequest,
};
use crate::policy::Action;

/// Preview rows shown at most (the summary still counts every expiring image).
const PREVIEW_ROWS: i64 = 1000;

/// The form field holding the whole document in JSON mode.
const JSON_FIELD: &str = "policy-json";
/// Where errors outside any rule go in the rules form.
const RULES_FIELD: &str = "rules";

/// One rule as the form holds it: the texts of its fields, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RuleForm {
    priority: String,
    description: String,
    tag_status: String,
    tag_patterns: String,
    tag_prefixes: String,
    count_type: String,
    count_number: String,
    count_unit: String,
}

/// A rule's field suffixes (`rule-<i>-<suffix>`) and their labels.
const FIELDS: [(&str, &str); 8] = [
    ("priority", "Priority (rulePriority)"),
    ("description", "Description"),
    ("tag-status", "Tag status (tagStatus)"),
    (
        "tag-patterns",
        "Tag patterns (tagPatternList, comma separated)",
    ),
    (
        "tag-prefixes",
        "Tag prefixes (tagPrefixList, comma separated)",
    ),
    ("count-type", "Count type (countType)"),
    ("count-number", "Count number (countNumber)"),
    ("count-unit", "Count unit (countUnit)"),
];

const TAG_STATUSES: [(&str, &str); 3] = [
    ("tagged", "tagged"),
    ("untagged", "untagged"),
    ("any", "any"),
];
const COUNT_TYPES: [(&str, &str); 3] = [
    (
        "imageCountMoreThan",
        "imageCountMoreThan (keep the N newest)",
    ),
    (
        "sinceImagePushed",
        "sinceImagePushed (pushed more than N days ago)",
    ),
    (
        "sinceImagePulled",
        "sinceImagePulled (not pulled for N days)",
    ),
];
const COUNT_UNITS: [(&str, &str); 2] = [("", "none (imageCountMoreThan)"), ("days", "days")];

impl RuleForm {
    /// The new-rule slot's defaults.
    fn new_slot() -> RuleForm {
        RuleForm {
            tag_status: "any".into(),
            count_type: "imageCountMoreThan".into(),
            ..RuleForm::default()
        }
    }

    fn get(&self, suffix: &str) -> &str {
        match suffix {
            "priority" => &self.priority,
            "description" => &self.description,
            "tag-status" => &self.tag_status,
            "tag-patterns" => &self.tag_patterns,
            "tag-prefixes" => &self.tag_prefixes,
            "count-type" => &self.count_type,
            "count-number" => &self.count_number,
            "count-unit" => &self.count_unit,
            _ => "",
        }
    }

    fn set(&mut self, suffix: &str, value: &str) {
        let slot = match suffix {
            "priority" => &mut self.priority,
            "description" => &mut self.description,
            "tag-status" => &mut self.tag_status,
            "tag-patterns" => &mut self.tag_patterns,
            "tag-prefixes" => &mut self.tag_prefixes,
            "count-type" => &mut self.count_type,
            "count-number" => &mut self.count_number,
            "count-unit" => &mut self.count_unit,
            _ => return,
        };
        *slot = value.to_owned();
    }

    /// An untouched slot (the selects always hold a value, so they do not count): left out of
    /// the document rather than refused.
    fn is_blank(&self) -> bool {
        [
            &self.priority,
            &self.description,
            &self.tag_patterns,
            &self.tag_prefixes,
            &self.count_number,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }

    /// The rule in ECR's shape, exactly as typed: an empty field is left out and a number that
    /// is not one is sent as text, so the operation's validation names it.
    fn to_document(&self) -> RuleDocument {
        RuleDocument {
            rule_priority: number_or_text(&self.priority),
            description: non_empty(&self.description),
            selection: SelectionDocument {
                tag_status: non_empty(&self.tag_status),
                tag_pattern_list: list(&self.tag_patterns),
                tag_prefix_list: list(&self.tag_prefixes),
                count_type: non_empty(&self.count_type),
                count_unit: non_empty(&self.count_unit),
                count_number: number_or_text(&self.count_number),
            },
            action: ActionDocument { kind: "expire" },
        }
    }

    /// A rule of an ECR document, for the form (best effort: a saved document is valid).
    fn from_document(rule: &Value) -> RuleForm {
        let text = |v: Option<&Value>| match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let joined = |v: Option<&Value>| match v {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| text(Some(i)))
                .collect::<Vec<_>>()
                .join(", "),
            other => text(other),
        };
        let selection = rule.get("selection");
        let field = |name: &str| selection.and_then(|s| s.get(name));
        RuleForm {
            priority: text(rule.get("rulePriority")),
            description: text(rule.get("description")),
            tag_status: text(field("tagStatus")),
            tag_patterns: joined(field("tagPatternList")),
            tag_prefixes: joined(field("tagPrefixList")),
            count_type: text(field("countType")),
            count_number: text(field("countNumber")),
            count_unit: text(field("countUnit")),
        }
    }
}

/// ECR's rule document, members in ECR's documented order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleDocument {
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_priority: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    selection: SelectionDocument,
    action: ActionDocument,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SelectionDocument {
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_pattern_list: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_prefix_list: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_number: Option<Value>,
}

#[derive(Serialize)]
struct ActionDocument {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct PolicyDocument {
    rules: Vec<RuleDocument>,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A JSON number when the text is one (`0`, `-1` and `1.5` included: validation judges them),
/// else the text itself.
fn number_or_text(s: &str) -> Option<Value> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<serde_json::Number>(s) {
        Ok(n) => Value::Number(n),
        Err(_) => Value::String(s.to_owned()),
    })
}

/// A comma-separated list; blank entries (a trailing comma) are dropped, no entries is absent.
fn list(s: &str) -> Option<Vec<String>> {
    let items: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// The rules of a submitted form, in slot order, without removed and blank slots. The result's
/// positions are the document's `rules[i]` and the re-rendered form's slot numbers.
fn rules_from_form(fields: &[(String, String)]) -> Vec<RuleForm> {
    let mut slots: std::collections::BTreeMap<usize, (RuleForm, bool)> = Default::default();
    for (key, value) in fields {
        let Some((index, suffix)) = key
            .strip_prefix("rule-")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let slot = slots.entry(index).or_default();
        if suffix == "remove" {
            slot.1 = true;
        } else {
            slot.0.set(suffix, value);
        }
    }
    slots
        .into_values()
        .filter(|(rule, removed)| !removed && !rule.is_blank())
        .map(|(rule, _)| rule)
        .collect()
}

/// The ECR document of `rules`, pretty-printed.
fn document_of(rules: &[RuleForm]) -> String {
    let document = PolicyDocument {
        rules: rules.iter().map(RuleForm::to_document).collect(),
    };
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// The rules of an ECR document, for the form; `None` when the text is not a document with a
/// `rules` list.
fn rules_from_document(text: &str) -> Option<Vec<RuleForm>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let rules = value.get("rules")?.as_array()?;
    Some(rules.iter().map(RuleForm::from_document).collect())
}

/// Which rule a validation message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleAt {
    /// `rule with rulePriority N`
    Priority(u64),
    /// `rules[i]` (the rule's priority is missing or the problem)
    Index(usize),
}

/// The rule and field path a lifecycle validation message names (`src/lifecycle`'s
/// `LifecycleError` display, inside the operation's InvalidParameterException wording):
/// `… failure: rule with rulePriority 1: selection.countNumber: must be …`, `… failure:
/// rules[0]: rulePriority: is required`, `… failure: rules: must contain at least one rule`.
fn locate(message: &str) -> (Option<RuleAt>, Option<&str>) {
    const MARK: &str = "Lifecycle policy validation failure: ";
    let Some(start) = message.find(MARK) else {
        return (None, None);
    };
    let rest = &message[start + MARK.len()..];
    let (rule, rest) = if let Some(after) = rest.strip_prefix("rule with rulePriority ") {
        match after.split_once(": ") {
            Some((n, rest)) => match n.parse() {
                Ok(n) => (Some(RuleAt::Priority(n)), rest),
                Err(_) => return (None, None),
            },
            None => return (None, None),
        }
    } else if let Some(after) = rest.strip_prefix("rules[") {
        match after.split_once("]: ") {
            Some((i, rest)) => match i.parse() {
                Ok(i) => (Some(RuleAt::Index(i)), rest),
                Err(_) => return (None, None),
            },
            None => return (None, None),
        }
    } else {
        (None, rest)
    };
    let field = rest.split_once(": ").map(|(field, _)| field);
    (rule, field)
}

/// The form field (an input's id) a validation message belongs next to: `rule-<i>-<suffix>`,
/// `rule-<i>` for a rule's other members, or `rules` for the document.
fn form_field(message: &str, rules: &[RuleForm]) -> String {
    let (rule, field) = locate(message);
    let index = match rule {
        None => None,
        Some(RuleAt::Index(i)) => Some(i).filter(|&i| i < rules.len()),
        Some(RuleAt::Priority(p)) => {
            let mut same = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.priority.trim().parse::<u64>().ok() == Some(p))
                .map(|(i, _)| i);
            // A duplicate priority is reported on the later rule that repeats it.
            if message.contains("is used by more than one rule") {
                same.next_back()
            } else {
                same.next()
            }
        }
    };
    let Some(index) = index else {
        return RULES_FIELD.to_owned();
    };
    let field = field.unwrap_or("");
    // `selection.tagPatternList[2]` names the list's field.
    let field = field.split('[').next().unwrap_or(field);
    let suffix = match field {
        "rulePriority" => Some("priority"),
        "description" => Some("description"),
        "selection.tagStatus" => Some("tag-status"),
        "selection.tagPatternList" => Some("tag-patterns"),
        "selection.tagPrefixList" => Some("tag-prefixes"),
        "selection.countType" => Some("count-type"),
        "selection.countNumber" => Some("count-number"),
        "selection.countUnit" => Some("count-unit"),
        _ => None,
    };
    match suffix {
        Some(suffix) => format!("rule-{index}-{suffix}"),
        None => format!("rule-{index}"),
    }
}

/// A message and the field it sits next to.
struct Placed {
    field: String,
    message: String,
}

/// What the editor page shows.
struct Editor {
    rules: Vec<RuleForm>,
    json: String,
    /// Whether a policy is saved (the delete button).
    saved: bool,
    error: Option<Placed>,
    preview: Option<Markup>,
    notice: Option<&'static str>,
}

fn base(name: &str) -> String {
    format!("{PREFIX}/repositories/{name}/-/lifecycle")
}

/// The saved policy's text, `None` when there is none.
async fn saved_policy(session: &Session, name: &str) -> Result<Option<String>, Error> {
    match session
        .run(GetLifecyclePolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
        })
        .await
    {
        Ok(found) => Ok(Some(found.lifecycle_policy_text)),
        Err(Error::Missing(Missing::LifecyclePolicy, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// GET: the editor with the saved policy.
pub async fn show(session: &Session, name: &str, tail: &str) -> Response {
    if !tail.is_empty() {
        return super::repository::not_here(session);
    }
    let text = match saved_policy(session, name).await {
        Ok(text) => text,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let notice = done(&session.here);
    let editor = Editor {
        rules: text
            .as_deref()
            .and_then(rules_from_document)
            .unwrap_or_default(),
        json: text.clone().unwrap_or_default(),
        saved: text.is_some(),
        error: None,
        preview: None,
        notice,
    };
    render(session, name, editor, StatusCode::OK).await
}

/// The notice for `?done=` of the page's address.
fn done(here: &str) -> Option<&'static str> {
    let query = here.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| match v.as_ref() {
            "saved" => Some("Lifecycle policy saved."),
            "deleted" => Some("Lifecycle policy deleted."),
            _ => None,
        })
}

/// POST: save (`mode=form` / `mode=json`), preview without script (`mode=preview`), the live
/// preview's fragment (`/preview`) or delete (`/delete`).
pub async fn submit(form: &ConsoleForm, name: &str, tail: &str) -> Response {
    match tail {
        "" => match form.get("mode") {
            "form" | "json" => save(form, name).await,
            "preview" => preview_page(form, name).await,
            other => layout::error_page(
                Some(&form.session),
                &Error::InvalidParameter(format!(
                    "mode: expected form, json or preview, got {:?}",
                    other.chars().take(40).collect::<String>()
                )),
            ),
        },
        "preview" => preview_fragment(form, name).await,
        "delete" => delete(form, name).await,
        _ => super::repository::not_here(&form.session),
    }
}

/// The submitted draft: its rules for the form, its document, and whether it came from the
/// JSON textarea.
struct Draft {
    rules: Vec<RuleForm>,
    text: String,
    from_json: bool,
}

fn draft(form: &ConsoleForm, json_mode: bool) -> Draft {
    if json_mode {
        let text = form.get(JSON_FIELD).to_owned();
        Draft {
            rules: rules_from_document(&text).unwrap_or_default(),
            text,
            from_json: true,
        }
    } else {
        let rules = rules_from_form(form.fields());
        Draft {
            text: document_of(&rules),
            rules,
            from_json: false,
        }
    }
}

impl Draft {
    /// Where the operation's refusal goes: next to the rule's field, or the textarea.
    fn place(&self, error: &Error) -> Placed {
        let message = error.message();
        let field = if self.from_json {
            JSON_FIELD.to_owned()
        } else {
            form_field(&message, &self.rules)
        };
        Placed { field, message }
    }

    fn editor(self, saved: bool) -> Editor {
        Editor {
            rules: self.rules,
            json: self.text,
            saved,
            error: None,
            preview: None,
            notice: None,
        }
    }
}

async fn save(form: &ConsoleForm, name: &str) -> Response {
    let session = &form.session;
    let draft = draft(form, form.get("mode") == "json");
    let result = session
        .run(PutLifecyclePolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            lifecycle_policy_text: Some(draft.text.clone()),
        })
        .await;
    match result {
        Ok(_) => super::redirect(&format!("{}?done={}", base(name), encode("saved"))),
        Err(e @ Error::InvalidParameter(_)) => {
            let placed = draft.place(&e);
            let saved = saved_policy(session, name).await.ok().flatten().is_some();
            let mut editor = draft.editor(saved);
            editor.error = Some(placed);
            render(session, name, editor, status_and_code(&e).0).await
        }
        Err(e) => layout::error_page(Some(session), &e),
    }
}

/// The draft's preview: the operation's answer, or its refusal.
async fn run_preview(
    session: &Session,
    name: &str,
    draft: &Draft,
) -> Result<PreviewLifecyclePolicyResponse, Error> {
    session
        .run(PreviewLifecyclePolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            lifecycle_policy_text: Some(draft.text.clone()),
            max_results: Some(PREVIEW_ROWS),
        })
        .await
}

/// The no-script preview: the editor again, with the preview (or the errors) in place.
async fn preview_page(form: &ConsoleForm, name: &str) -> Response {
    let session = &form.session;
    let draft = draft(form, !form.all(JSON_FIELD).is_empty());
    let result = run_preview(session, name, &draft).await;
    let saved = match saved_policy(session, name).await {
        Ok(text) => text.is_some(),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    match result {
        Ok(answer) => {
            let mut editor = draft.editor(saved);
            editor.preview = Some(preview_markup(&answer));
            render(session, name, editor, StatusCode::OK).await
        }
        Err(e @ Error::InvalidParameter(_)) => {
            let placed = draft.place(&e);
            let mut editor = draft.editor(saved);
            editor.preview = Some(preview_error(&placed));
            editor.error = Some(placed);
            render(session, name, editor, status_and_code(&e).0).await
        }
        Err(e) => layout::error_page(Some(session), &e),
    }
}

/// The live preview: an HTML fragment (no page shell) for `#preview-area`.
async fn preview_fragment(form: &ConsoleForm, name: &str) -> Response {
    let draft = draft(form, !form.all(JSON_FIELD).is_empty());
    let (status, markup) = match run_preview(&form.session, name, &draft).await {
        Ok(answer) => (StatusCode::OK, preview_markup(&answer)),
        Err(e @ Error::InvalidParameter(_)) => {
            (status_and_code(&e).0, preview_error(&draft.place(&e)))
        }
        Err(e) => (
            status_and_code(&e).0,
            html! { p class="error" role="alert" id="preview-error" { (e.message()) } },
        ),
    };
    (status, Html(markup.into_string())).into_response()
}

async fn delete(form: &ConsoleForm, name: &str) -> Response {
    let result = form
        .session
        .run(DeleteLifecyclePolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
        })
        .await;
    match result {
        Ok(_) => super::redirect(&format!("{}?done={}", base(name), encode("deleted"))),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

/// A field's label in words (for an error shown in the preview, away from the field).
fn field_words(field: &str) -> String {
    let Some(rest) = field.strip_prefix("rule-") else {
        return match field {
            JSON_FIELD => "Policy JSON".into(),
            _ => "Rules".into(),
        };
    };
    let (index, suffix) = rest.split_once('-').unwrap_or((rest, ""));
    let number = index.parse::<usize>().map_or(0, |i| i + 1);
    match FIELDS.iter().find(|(s, _)| *s == suffix) {
        Some((_, label)) => format!("Rule {number}, {label}"),
        None => format!("Rule {number}"),
    }
}

fn preview_error(placed: &Placed) -> Markup {
    html! {
        div class="error" role="alert" id="preview-error" {
            p { "Nothing to preview: " a href={ "#" (placed.field) } { (field_words(&placed.field)) } }
            p { (placed.message) }
        }
    }
}

fn preview_markup(answer: &PreviewLifecyclePolicyResponse) -> Markup {
    let total = answer.summary.expiring_image_total_count;
    html! {
        p id="preview-summary" {
            (total) " of " (answer.summary.evaluated_image_count) " image(s) would expire now ("
            (layout::time_secs(answer.evaluated_at)) "). Nothing is expired by a preview."
        }
        div class="table-wrap" {
            table id="preview" {
                caption { "Images the policy would expire, oldest push first" }
                thead {
                    tr {
                        th scope="col" { "Digest" }
                        th scope="col" { "Tags" }
                        th scope="col" { "Pushed" }
                        th scope="col" { "Rule priority" }
                    }
                }
                tbody {
                    @for r in &answer.preview_results {
                        tr class="expire" {
                            td { code { (r.image_digest) } }
                            td {
                                @if r.image_tags.is_empty() {
                                    span class="muted" { "untagged" }
                                } @else {
                                    @for t in &r.image_tags { span class="badge" { (t) } " " }
                                }
                            }
                            td { (layout::time_secs(r.image_pushed_at)) }
                            td { (r.applied_rule_priority) }
                        }
                    }
                }
            }
        }
        @if answer.preview_results.len() < total {
            p class="muted" {
                "Showing the oldest " (answer.preview_results.len()) " of " (total) " expiring images."
            }
        }
    }
}

/// The error of `field`, if the placed error is there.
fn error_at<'e>(error: &'e Option<Placed>, field: &str) -> Option<&'e str> {
    error
        .as_ref()
        .filter(|p| p.field == field)
        .map(|p| p.message.as_str())
}

fn input(id: &str, label: &str, kind: &str, value: &str, error: &Option<Placed>) -> Markup {
    let message = error_at(error, id);
    html! {
        label for=(id) { (label) }
        input type=(kind) id=(id) name=(id) value=(value)
            aria-invalid=[message.map(|_| "true")]
            aria-describedby=[message.map(|_| format!("{id}-error"))];
        (field_error(id, message))
    }
}

fn select(
    id: &str,
    label: &str,
    options: &[(&str, &str)],
    value: &str,
    error: &Option<Placed>,
) -> Markup {
    let message = error_at(error, id);
    let known = options.iter().any(|(v, _)| *v == value);
    html! {
        label for=(id) { (label) }
        select id=(id) name=(id)
            aria-invalid=[message.map(|_| "true")]
            aria-describedby=[message.map(|_| format!("{id}-error"))] {
            @for (v, text) in options {
                option value=(v) selected[*v == value] { (text) }
            }
            // A value the form does not offer (from a pasted document) stays as it was.
            @if !known && !value.is_empty() {
                option value=(value) selected { (value) }
            }
        }
        (field_error(id, message))
    }
}

fn rule_fieldset(i: usize, rule: &RuleForm, new: bool, error: &Option<Placed>) -> Markup {
    let id = |suffix: &str| format!("rule-{i}-{suffix}");
    let label = |suffix: &str| {
        FIELDS
            .iter()
            .find(|(s, _)| *s == suffix)
            .map_or("", |(_, l)| *l)
    };
    let rule_id = format!("rule-{i}");
    html! {
        fieldset class="rule" id=(rule_id) {
            legend { "Rule " (i + 1) }
            @if new {
                p class="muted" { "Fill in to add a rule; left empty, it is ignored." }
            }
            (field_error(&rule_id, error_at(error, &rule_id)))
            (input(&id("priority"), label("priority"), "number", &rule.priority, error))
            (input(&id("description"), label("description"), "text", &rule.description, error))
            (select(&id("tag-status"), label("tag-status"), &TAG_STATUSES, &rule.tag_status, error))
            (input(&id("tag-patterns"), label("tag-patterns"), "text", &rule.tag_patterns, error))
            (input(&id("tag-prefixes"), label("tag-prefixes"), "text", &rule.tag_prefixes, error))
            (select(&id("count-type"), label("count-type"), &COUNT_TYPES, &rule.count_type, error))
            (input(&id("count-number"), label("count-number"), "number", &rule.count_number, error))
            (select(&id("count-unit"), label("count-unit"), &COUNT_UNITS, rule.get("count-unit"), error))
            @if !new {
                label class="check" for=(id("remove")) {
                    input type="checkbox" id=(id("remove")) name=(id("remove")) value="on";
                    "Remove this rule"
                }
            }
        }
    }
}

async fn render(session: &Session, name: &str, editor: Editor, status: StatusCode) -> Response {
    let url = base(name);
    let repository = Resource::Repository(name);
    let may_put = session.may(Action::PutLifecyclePolicy, repository).await;
    let may_delete = session.may(Action::DeleteLifecyclePolicy, repository).await;
    let error = &editor.error;
    let json_message = error_at(error, JSON_FIELD);
    let body = html! {
        p { a href={ (PREFIX) "/repositories/" (name) } { "← " (name) } }
        h1 { "Lifecycle policy of " (name) }
        @if let Some(text) = editor.notice { (layout::notice(text)) }
        @if !editor.saved {
            p { "This repository has no lifecycle policy yet: nothing is expired. Add a rule below." }
        }
        h2 { "Rules" }
        p class="muted" {
            "Rules are applied lowest priority first; an image is expired by at most one rule, "
            "and an image a rule selects is kept from every later rule."
        }
        form method="post" action=(url) id="lifecycle-form"
            data-live-preview={ (url) "/preview" } data-preview-target="preview-area" {
            (layout::csrf(session))
            (field_error(RULES_FIELD, error_at(error, RULES_FIELD)))
            @for (i, rule) in editor.rules.iter().enumerate() {
                (rule_fieldset(i, rule, false, error))
            }
            (rule_fieldset(editor.rules.len(), &RuleForm::new_slot(), true, error))
            div class="toolbar" {
                @if may_put {
                    button type="submit" id="save" name="mode" value="form" { "Save policy" }
                }
                button type="submit" class="secondary" name="mode" value="preview" data-preview-button { "Preview" }
            }
        }
        h2 { "Preview" }
        div id="preview-area" aria-live="polite" {
            @if let Some(preview) = &editor.preview {
                (preview)
            } @else {
                p class="muted" { "Change a rule (or press Preview) to see which images it would expire now." }
            }
        }
        h2 { "As ECR JSON" }
        form method="post" action=(url) id="lifecycle-json-form"
            data-live-preview={ (url) "/preview" } data-preview-target="preview-area" {
            (layout::csrf(session))
            label for=(JSON_FIELD) { "Lifecycle policy JSON (as PutLifecyclePolicy takes it)" }
            textarea id=(JSON_FIELD) name=(JSON_FIELD) class="code" spellcheck="false"
                aria-invalid=[json_message.map(|_| "true")]
                aria-describedby=[json_message.map(|_| format!("{JSON_FIELD}-error"))] { (editor.json) }
            (field_error(JSON_FIELD, json_message))
            div class="toolbar" {
                @if may_put {
                    button type="submit" id="save-json" name="mode" value="json" { "Save JSON" }
                }
                button type="submit" class="secondary" name="mode" value="preview" data-preview-button { "Preview JSON" }
            }
        }
        @if editor.saved && may_delete {
            h2 { "Delete" }
            form method="post" action={ (url) "/delete" } id="lifecycle-delete-form" {
                (layout::csrf(session))
                button type="submit" class="danger" id="delete" { "Delete lifecycle policy" }
            }
        }
    };
    layout::page_with_status(
        status,
        Some(session),
        &format!("Lifecycle policy · {name}"),
        Nav::Repositories,
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn message(inner: &str) -> String {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
             'Lifecycle policy validation failure: {inner}'"
        ))
        .message()
    }

    #[test]
    fn the_form_becomes_ecr_json_and_back() {
        let form = fields(&[
            ("_csrf", "x"),
            ("rule-0-priority", "1"),
            ("rule-0-description", "keep prod"),
            ("rule-0-tag-status", "tagged"),
            ("rule-0-tag-patterns", "prod*, release-*,"),
            ("rule-0-tag-prefixes", ""),
            ("rule-0-count-type", "imageCountMoreThan"),
            ("rule-0-count-number", "9999"),
            ("rule-0-count-unit", ""),
            ("rule-1-priority", "2"),
            ("rule-1-tag-status", "any"),
            ("rule-1-count-type", "sinceImagePushed"),
            ("rule-1-count-number", "30"),
            ("rule-1-count-unit", "days"),
            // the empty slot
            ("rule-2-priority", ""),
            ("rule-2-tag-status", "any"),
            ("rule-2-count-type", "imageCountMoreThan"),
            ("rule-2-count-number", ""),
        ]);
        let rules = rules_from_form(&form);
        assert_eq!(rules.len(), 2, "{rules:?}");
        let text = document_of(&rules);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"rules": [
                {"rulePriority": 1, "description": "keep prod",
                 "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*", "release-*"],
                               "countType": "imageCountMoreThan", "countNumber": 9999},
                 "action": {"type": "expire"}},
                {"rulePriority": 2,
                 "selection": {"tagStatus": "any", "countType": "sinceImagePushed",
                               "countUnit": "days", "countNumber": 30},
                 "action": {"type": "expire"}}
            ]})
        );
        // ECR's member order, for people reading the JSON.
        assert!(text.find("rulePriority").unwrap() < text.find("selection").unwrap());
        crate::lifecycle::LifecyclePolicy::parse(&text).expect("a valid document");

        let back = rules_from_document(&text).unwrap();
        assert_eq!(back[0].tag_patterns, "prod*, release-*");
        assert_eq!(back[0].count_number, "9999");
        assert_eq!(back[1].count_unit, "days");
        assert_eq!(rules_from_form(&fields_of(&back)), back);
    }

    /// The fields a browser would send for `rules`.
    fn fields_of(rules: &[RuleForm]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for (suffix, _) in FIELDS {
                out.push((format!("rule-{i}-{suffix}"), r.get(suffix).to_owned()));
            }
        }
        out
    }

    #[test]
    fn removed_and_blank_slots_are_left_out_and_numbers_are_sent_as_typed() {
        let form = fields(&[
            ("rule-0-priority", "1"),
            ("rule-0-count-number", "5"),
            ("rule-0-remove", "on"),
            ("rule-3-priority", "abc"),
            ("rule-3-tag-status", "any"),
            ("rule-3-count-type", "imageCountMoreThan"),
            ("rule-3-count-number", "0"),
            ("rule-7-tag-status", "any"),
        ]);
        let rules = rules_from_form(&form);
        assert_eq!(rules.len(), 1);
        let value: Value = serde_json::from_str(&document_of(&rules)).unwrap();
        assert_eq!(value["rules"][0]["rulePriority"], "abc");
        assert_eq!(value["rules"][0]["selection"]["countNumber"], 0);
        assert!(value["rules"][0]["selection"].get("countUnit").is_none());
        assert_eq!(document_of(&[]).replace([' ', '\n'], ""), r#"{"rules":[]}"#);
    }

    #[test]
    fn validation_messages_land_on_the_field_they_name() {
        let rule = |priority: &str| RuleForm {
            priority: priority.into(),
            ..RuleForm::new_slot()
        };
        let rules = vec![rule("5"), rule("7"), rule("7"), rule("")];
        let cases = [
            (
                "rule with rulePriority 7: selection.countNumber: must be an integer from 1 to 2147483647, got 0",
                "rule-1-count-number",
            ),
            (
                "rule with rulePriority 5: selection.countUnit: is required (\"days\") with countType \"sinceImagePushed\" or \"sinceImagePulled\"",
                "rule-0-count-unit",
            ),
            (
                "rule with rulePriority 7: rulePriority: 7 is used by more than one rule; priorities must be unique",
                "rule-2-priority",
            ),
            ("rules[3]: rulePriority: is required", "rule-3-priority"),
            (
                "rule with rulePriority 5: selection.tagPatternList[1]: must not be empty",
                "rule-0-tag-patterns",
            ),
            (
                "rule with rulePriority 5: selection.tagStatus: \"tagged\" requires tagPrefixList or tagPatternList",
                "rule-0-tag-status",
            ),
            (
                "rule with rulePriority 5: selection.countType: must be a string, got 1",
                "rule-0-count-type",
            ),
            (
                "rule with rulePriority 5: selection.tagPrefixList: must be omitted when tagStatus is \"any\"",
                "rule-0-tag-prefixes",
            ),
            (
                "rule with rulePriority 5: action.type: must be \"expire\", got 1",
                "rule-0",
            ),
            ("rules: must contain at least one rule", "rules"),
            ("rule with rulePriority 9: description: must be a string", "rules"),
            ("rules[8]: rulePriority: is required", "rules"),
            ("lifecycle policy is not valid JSON: EOF", "rules"),
        ];
        for (inner, field) in cases {
            assert_eq!(form_field(&message(inner), &rules), field, "{inner}");
        }
        assert_eq!(form_field("something else entirely", &rules), "rules");
    }

    #[test]
    fn the_real_validation_messages_are_located() {
        // The messages `src/lifecycle` writes, through the service's wording.
        let rules = rules_from_form(&fields(&[
            ("rule-0-priority", "1"),
            ("rule-0-tag-status", "any"),
            ("rule-0-count-type", "imageCountMoreThan"),
            ("rule-0-count-number", "0"),
        ]));
        let e = crate::lifecycle::LifecyclePolicy::parse(&document_of(&rules)).unwrap_err();
        assert_eq!(
            form_field(&message(&e.to_string()), &rules),
            "rule-0-count-number"
        );

        let rules = rules_from_form(&fields(&[
            ("rule-0-priority", "1"),
            ("rule-0-tag-status", "any"),
            ("rule-0-count-type", "imageCountMoreThan"),
            ("rule-0-description", "missing number"),
        ]));
        let e = crate::lifecycle::LifecyclePolicy::parse(&document_of(&rules)).unwrap_err();
        assert_eq!(
            form_field(&message(&e.to_string()), &rules),
            "rule-0-count-number"
        );

        let rules = rules_from_form(&fields(&[
            ("rule-0-description", "no priority"),
            ("rule-0-tag-status", "any"),
            ("rule-0-count-number", "3"),
        ]));
        let e = crate::lifecycle::LifecyclePolicy::parse(&document_of(&rules)).unwrap_err();
        assert_eq!(
            form_field(&message(&e.to_string()), &rules),
            "rule-0-priority"
        );
    }

    #[test]
    fn notices_come_from_known_keys_only() {
        assert_eq!(
            done("/console/repositories/a/-/lifecycle?done=saved"),
            Some("Lifecycle policy saved.")
        );
        assert_eq!(done("/console/repositories/a/-/lifecycle?done=<b>"), None);
        assert_eq!(done("/console/repositories/a/-/lifecycle"), None);
    }
}
