//! TODO(policy)

use axum::response::Response;

use super::{ConsoleForm, Session};

pub async fn show(session: &Session, _name: &str, _tail: &str) -> Response {
    super::repository::not_here(session)
}

pub async fn submit(form: &ConsoleForm, _name: &str, _tail: &str) -> Response {
    super::repository::not_here(&form.session)
}
