//! The repositories page: the repositories the caller may describe, searched by name prefix, a
//! page at a time (keyset on the name), with what each holds.

use axum::extract::Query;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{encode, Session, PREFIX};
use crate::http::AppState;
use crate::ops::repositories::ListRepositorySummariesRequest;

/// Repositories per page.
const PAGE: i64 = 50;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/console/repositories", get(list))
}

#[derive(Deserialize)]
struct ListQuery {
    prefix: Option<String>,
    next: Option<String>,
}

async fn list(session: Session, Query(q): Query<ListQuery>) -> Response {
    let prefix = q.prefix.unwrap_or_default().trim().to_owned();
    let paged = q.next.as_deref().is_some_and(|t| !t.is_empty());
    let answer = session
        .run(ListRepositorySummariesRequest {
            prefix: Some(prefix.clone()).filter(|p| !p.is_empty()),
            next_token: q.next.filter(|t| !t.is_empty()),
            max_results: Some(PAGE),
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
            form class="toolbar" method="get" action={ (PREFIX) "/repositories" } role="search" {
                div {
                    label for="prefix" { "Name starts with" }
                    input type="search" id="prefix" name="prefix" value=(prefix) autocomplete="off" spellcheck="false";
                }
                button type="submit" { "Search" }
                @if !prefix.is_empty() {
                    a href={ (PREFIX) "/repositories" } { "Show all" }
                }
            }
            @if answer.repository_summaries.is_empty() {
                p {
                    @if prefix.is_empty() { "No repositories you may see." }
                    @else { "No repositories you may see start with \u{201c}" (prefix) "\u{201d}." }
                }
            } @else {
                div class="table-wrap" {
                    table id="repositories" {
                        caption class="muted" {
                            @if prefix.is_empty() { "Repositories by name" }
                            @else { "Repositories whose names start with \u{201c}" (prefix) "\u{201d}" }
                        }
                        thead {
                            tr {
                                th scope="col" { "Name" }
                                th scope="col" { "Images" }
                                th scope="col" { "Size" }
                                th scope="col" { "Last push" }
                                th scope="col" { "Last pull" }
                                th scope="col" { "Tag mutability" }
                            }
                        }
                        tbody {
                            @for r in &answer.repository_summaries {
                                tr {
                                    td { a href={ (PREFIX) "/repositories/" (r.repository_name) } { (r.repository_name) } }
                                    td { (r.image_count) }
                                    td { (layout::bytes(r.total_size_in_bytes)) }
                                    td { (layout::maybe_time_secs(r.last_pushed_at, "never")) }
                                    td { (layout::maybe_time_secs(r.last_recorded_pull_time, "never")) }
                                    td { (r.image_tag_mutability) }
                                }
                            }
                        }
                    }
                }
            }
            @if paged || answer.next_token.is_some() {
                nav class="pager" aria-label="Pages" {
                    @if paged {
                        a href={ (PREFIX) "/repositories?prefix=" (encode(&prefix)) } { "First page" }
                    }
                    @if let Some(next) = &answer.next_token {
                        a href={ (PREFIX) "/repositories?prefix=" (encode(&prefix)) "&next=" (encode(next)) } { "Next page" }
                    }
                }
            }
        },
    )
}
