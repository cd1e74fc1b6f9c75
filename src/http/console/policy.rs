//! The repository policy editor of one repository (`/console/repositories/<name>/-/policy`):
//! the stored document in a textarea, saving and deleting it, and (for administrators) the
//! policy simulator asked about this repository. Validation and decisions are the operations'
//! (SetRepositoryPolicy, SimulatePolicy).
//!
//! POSTs: `…/-/policy` saves the textarea, `…/-/policy/delete` deletes the policy,
//! `…/-/policy/simulate` answers the simulator on the page.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{self, field_error, Nav};
use super::{encode, ConsoleForm, Session, PREFIX};
use crate::access::Resource;
use crate::error::{Error, Missing};
use crate::http::error::status_and_code;
use crate::ops::shapes::{
    DeleteRepositoryPolicyRequest, GetRepositoryPolicyRequest, PolicySimulation,
    SetRepositoryPolicyRequest, SimulatePolicyRequest,
};
use crate::policy::Action;

const TEXT_FIELD: &str = "policy-text";

/// What the page shows.
#[derive(Default)]
struct Editor {
    text: String,
    saved: bool,
    /// The refusal of a save, shown next to the textarea.
    text_error: Option<String>,
    notice: Option<&'static str>,
    /// The simulator's last question (principal, action) and its answer or refusal.
    simulation: Option<Simulated>,
}

struct Simulated {
    principal: String,
    action: String,
    answer: Result<PolicySimulation, Error>,
}

fn base(name: &str) -> String {
    format!("{PREFIX}/repositories/{name}/-/policy")
}

/// The stored document, `None` when there is none.
async fn saved_policy(session: &Session, name: &str) -> Result<Option<String>, Error> {
    match session
        .run(GetRepositoryPolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
        })
        .await
    {
        Ok(found) => Ok(Some(found.policy_text)),
        Err(Error::Missing(Missing::RepositoryPolicy, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The notice for `?done=` of the page's address.
fn done(here: &str) -> Option<&'static str> {
    let query = here.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| match v.as_ref() {
            "saved" => Some("Repository policy saved."),
            "deleted" => Some("Repository policy deleted."),
            _ => None,
        })
}

/// GET: the editor with the stored policy.
pub async fn show(session: &Session, name: &str, tail: &str) -> Response {
    if !tail.is_empty() {
        return super::repository::not_here(session);
    }
    let text = match saved_policy(session, name).await {
        Ok(text) => text,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let editor = Editor {
        saved: text.is_some(),
        text: text.unwrap_or_default(),
        notice: done(&session.here),
        ..Editor::default()
    };
    render(session, name, editor, StatusCode::OK).await
}

/// POST: save (``), delete (`delete`) or simulate (`simulate`).
pub async fn submit(form: &ConsoleForm, name: &str, tail: &str) -> Response {
    match tail {
        "" => save(form, name).await,
        "delete" => delete(form, name).await,
        "simulate" => simulate(form, name).await,
        _ => super::repository::not_here(&form.session),
    }
}

async fn save(form: &ConsoleForm, name: &str) -> Response {
    let session = &form.session;
    let text = form.get(TEXT_FIELD).to_owned();
    let result = session
        .run(SetRepositoryPolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            policy_text: text.clone(),
            force: None,
        })
        .await;
    match result {
        Ok(_) => super::redirect(&format!("{}?done={}", base(name), encode("saved"))),
        Err(e @ Error::InvalidParameter(_)) => {
            let saved = saved_policy(session, name).await.ok().flatten().is_some();
            let editor = Editor {
                text,
                saved,
                text_error: Some(e.message()),
                ..Editor::default()
            };
            render(session, name, editor, status_and_code(&e).0).await
        }
        Err(e) => layout::error_page(Some(session), &e),
    }
}

async fn delete(form: &ConsoleForm, name: &str) -> Response {
    let result = form
        .session
        .run(DeleteRepositoryPolicyRequest {
            registry_id: None,
            repository_name: name.to_owned(),
        })
        .await;
    match result {
        Ok(_) => super::redirect(&format!("{}?done={}", base(name), encode("deleted"))),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn simulate(form: &ConsoleForm, name: &str) -> Response {
    let session = &form.session;
    let principal = form.get("principal").trim().to_owned();
    let action = form.get("action").trim().to_owned();
    let answer = session
        .run(SimulatePolicyRequest {
            principal: Some(principal.clone()).filter(|p| !p.is_empty()),
            action: Some(action.clone()).filter(|a| !a.is_empty()),
            repository: Some(name.to_owned()),
            source_ip: None,
            secure_transport: Some(session.secure()),
            unknown: Default::default(),
        })
        .await;
    // A refused simulator (not an administrator) is a refused page, not a form error.
    let status = match &answer {
        Ok(_) => StatusCode::OK,
        Err(e @ Error::InvalidParameter(_)) | Err(e @ Error::NotFound(_)) => status_and_code(e).0,
        Err(e) => return layout::error_page(Some(session), e),
    };
    let text = match saved_policy(session, name).await {
        Ok(text) => text,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let editor = Editor {
        saved: text.is_some(),
        text: text.unwrap_or_default(),
        simulation: Some(Simulated {
            principal,
            action,
            answer,
        }),
        ..Editor::default()
    };
    render(session, name, editor, status).await
}

/// The simulator's answer: allowed or denied, and the statement that decided.
fn simulation_markup(answer: &Result<PolicySimulation, Error>) -> Markup {
    match answer {
        Ok(s) => {
            let allowed = s.decision == "allow";
            html! {
                div class="panel" id="simulation" role="status" {
                    p {
                        strong { @if allowed { "Allowed" } @else { "Denied" } }
                        " — " (s.action) " on " (s.repository.as_deref().unwrap_or("the registry"))
                        " for " (s.principal_arn.as_deref().unwrap_or("anonymous")) "."
                    }
                    @match &s.statement {
                        Some(st) => {
                            p {
                                "Deciding statement"
                                @if let Some(sid) = &st.sid { " (Sid " code { (sid) } ")" }
                                ": " (st.description)
                            }
                        }
                        None => {
                            p { "No statement allows it (an implicit deny)." }
                        }
                    }
                    p class="muted" { (s.explanation) }
                }
            }
        }
        Err(e) => html! {
            div id="simulation" {
                p class="error" role="alert" { (e.message()) }
            }
        },
    }
}

async fn render(session: &Session, name: &str, editor: Editor, status: StatusCode) -> Response {
    let url = base(name);
    let repository = Resource::Repository(name);
    let may_set = session.may(Action::SetRepositoryPolicy, repository).await;
    let may_delete = session
        .may(Action::DeleteRepositoryPolicy, repository)
        .await;
    let text_error = editor.text_error.as_deref();
    let (principal, action) = editor
        .simulation
        .as_ref()
        .map_or(("", "ecr:BatchGetImage"), |s| {
            (s.principal.as_str(), s.action.as_str())
        });
    let body = html! {
        p { a href={ (PREFIX) "/repositories/" (name) } { "← " (name) } }
        h1 { "Repository policy of " (name) }
        @if let Some(text) = editor.notice { (layout::notice(text)) }
        @if !editor.saved {
            p { "This repository has no repository policy: only identity policies and the registry policy decide." }
        }
        form method="post" action=(url) id="policy-form" {
            (layout::csrf(session))
            label for=(TEXT_FIELD) { "Policy document (JSON, as SetRepositoryPolicy takes it)" }
            textarea id=(TEXT_FIELD) name=(TEXT_FIELD) class="code" spellcheck="false"
                readonly[!may_set]
                aria-invalid=[text_error.map(|_| "true")]
                aria-describedby=[text_error.map(|_| format!("{TEXT_FIELD}-error"))] { (editor.text) }
            (field_error(TEXT_FIELD, text_error))
            @if may_set {
                div class="toolbar" {
                    button type="submit" id="save" { "Save policy" }
                }
            }
        }
        @if editor.saved && may_delete {
            form method="post" action={ (url) "/delete" } id="policy-delete-form" {
                (layout::csrf(session))
                button type="submit" class="danger" id="delete" { "Delete repository policy" }
            }
        }
        @if session.admin {
            h2 { "Policy simulator" }
            p class="muted" {
                "Decides one action on this repository for a principal with the policies stored now, "
                "as a real request would be decided."
            }
            form method="post" action={ (url) "/simulate" } id="simulator-form" {
                (layout::csrf(session))
                label for="principal" { "Principal (user name, robot/<name>, a principal ARN, or anonymous)" }
                input type="text" id="principal" name="principal" value=(principal) required;
                label for="action" { "Action" }
                select id="action" name="action" {
                    @for a in Action::ALL {
                        option value=(a.iam_name()) selected[a.iam_name() == action] { (a.iam_name()) }
                    }
                }
                div class="toolbar" {
                    button type="submit" id="simulate" { "Simulate" }
                }
            }
            @if let Some(s) = &editor.simulation {
                (simulation_markup(&s.answer))
            }
        }
    };
    layout::page_with_status(
        status,
        Some(session),
        &format!("Repository policy · {name}"),
        Nav::Repositories,
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::shapes::DecidingStatement;

    #[test]
    fn the_simulation_says_allowed_or_denied_and_why() {
        let answer = Ok(PolicySimulation {
            decision: "allow",
            statement: Some(DecidingStatement {
                source: "repository",
                policy: None,
                sid: Some("<pull>".into()),
                index: 0,
                description: "statement 0 of the repository policy".into(),
            }),
            explanation: "ecr:BatchGetImage: allowed".into(),
            principal_arn: Some("arn:aws:iam::1:user/alice".into()),
            action: "ecr:BatchGetImage".into(),
            repository: Some("team/app".into()),
        });
        let html = simulation_markup(&answer).into_string();
        assert!(html.contains("id=\"simulation\""), "{html}");
        assert!(html.contains("Allowed"), "{html}");
        assert!(html.contains("the repository policy"), "{html}");
        assert!(html.contains("&lt;pull&gt;"), "escaped: {html}");
        let denied = Ok(PolicySimulation {
            decision: "implicitDeny",
            statement: None,
            explanation: String::new(),
            principal_arn: None,
            action: "ecr:PutImage".into(),
            repository: Some("team/app".into()),
        });
        let html = simulation_markup(&denied).into_string();
        assert!(
            html.contains("Denied") && html.contains("implicit deny"),
            "{html}"
        );
    }

    #[test]
    fn notices_come_from_known_keys_only() {
        assert_eq!(done("/x?done=deleted"), Some("Repository policy deleted."));
        assert_eq!(done("/x?done=hello"), None);
    }
}
