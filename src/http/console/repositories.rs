//! The repositories page: the repositories the caller may describe, by name, a page at a time.

use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{encode, Session, PREFIX};
use crate::http::AppState;
use crate::ops::shapes::DescribeRepositoriesRequest;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/console/repositories", get(list))
}

#[derive(Deserialize)]
struct ListQuery {
    next: Option<String>,
}

async fn list(session: Session, Query(q): Query<ListQuery>) -> Response {
    let answer = session
        .run(DescribeRepositoriesRequest {
            registry_id: None,
            repository_names: None,
            next_token: q.next.filter(|t| !t.is_empty()),
            max_results: Some(50),
        })
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return layout::error_page(Some(&session), &e),
    };
    layout::page(
        &session,
        "Repositories",
        Nav::Repositories,
        html! {
            h1 { "Repositories" }
            @if answer.repositories.is_empty() {
                p { "No repositories you may see." }
            } @else {
                div class="table-wrap" {
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Tag mutability" } } }
                        tbody {
                            @for r in &answer.repositories {
                                tr {
                                    td { a href={ (PREFIX) "/repositories/" (r.repository_name) } { (r.repository_name) } }
                                    td { (layout::time_secs(r.created_at)) }
                                    td { (r.image_tag_mutability) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &answer.next_token {
                nav class="pager" aria-label="Pages" {
                    a href={ (PREFIX) "/repositories?next=" (encode(next)) } { "Next page" }
                }
            }
        },
    )
}
