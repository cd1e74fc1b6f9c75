//! One repository's pages under `/console/repositories/<name>`: the repository (its images,
//! settings and pull commands) and, after `/-/`, its images, lifecycle policy and repository
//! policy (dispatched to `image`, `lifecycle` and `policy`).

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::layout;
use super::{split_repository_path, ConsoleForm, Session};
use crate::error::Error;
use crate::http::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/console/repositories/{*path}", get(show).post(submit))
}

/// GET: the repository page, or the page after `/-/`.
async fn show(session: Session, Path(path): Path<String>) -> Response {
    let (name, rest) = split_repository_path(&path);
    let (section, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match section {
        "" => overview(&session, name).await,
        "images" => super::image::show(&session, name, tail).await,
        "lifecycle" => super::lifecycle::show(&session, name, tail).await,
        "policy" => super::policy::show(&session, name, tail).await,
        _ => not_here(&session),
    }
}

/// POST: a form of the repository page or of the page after `/-/`.
async fn submit(Path(path): Path<String>, form: ConsoleForm) -> Response {
    let (name, rest) = split_repository_path(&path);
    let (section, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match section {
        "settings" => settings(&form, name, tail).await,
        "images" => super::image::submit(&form, name, tail).await,
        "lifecycle" => super::lifecycle::submit(&form, name, tail).await,
        "policy" => super::policy::submit(&form, name, tail).await,
        _ => not_here(&form.session),
    }
}

pub fn not_here(session: &Session) -> Response {
    layout::error_page(
        Some(session),
        &Error::NotFound("There is no console page at this address.".into()),
    )
}

async fn overview(session: &Session, _name: &str) -> Response {
    not_here(session)
}

async fn settings(form: &ConsoleForm, _name: &str, _tail: &str) -> Response {
    not_here(&form.session)
}
