//! TODO(registry)

use axum::Router;

use crate::http::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
}
