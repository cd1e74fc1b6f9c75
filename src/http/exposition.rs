//! The separate metrics listener's router: `GET /metrics` answers the Prometheus text of every
//! family of [`crate::metrics`]; nothing else is served there.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::{Metrics, CONTENT_TYPE};

/// The router of the metrics listener.
pub fn router(metrics: Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                // Encoding walks every series under the registry's lock: CPU work kept off
                // the async threads.
                match tokio::task::spawn_blocking(move || metrics.encode()).await {
                    Ok(text) => {
                        let mut response = text.into_response();
                        response
                            .headers_mut()
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                        response
                    }
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
}
