//! The transports: one axum router over the OCI registry API (`oci`), Docker token auth (`token`),
//! the REST admin API (`admin`), the ECR JSON API (`ecr`) and the web console (`console`). Each maps requests onto the
//! services or the typed operations of `crate::ops` and their errors onto its wire format; no
//! business rules here.

pub mod admin;
pub mod auth;
pub mod client;
pub mod console;
pub mod ecr;
pub mod error;
pub mod exposition;
pub mod held;
pub mod observe;
pub mod oci;
pub mod state;
pub mod token;
pub mod trace;

pub use state::{App, AppState};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

/// Builds the router over the application state. Requests for repository sub-resources
/// (`/api/v1/repositories/<name>/tag-mutability`, ...) are rewritten to their internal paths
/// before routing ([`admin::rewrite_sub_resource`]): an outer router whose only route is the
/// fallback runs the rewrite as a layer, then hands the request to the real router.
pub fn router(state: AppState) -> Router {
    let inner = Router::new()
        // ECR's JSON API (X-Amz-Target), on the registry's own listener.
        .route("/", post(ecr::handle))
        .route("/v2", any(oci::dispatch))
        .route("/v2/", any(oci::dispatch))
        .route("/v2/{*path}", any(oci::dispatch))
        .route(
            "/token",
            get(token::get_token).merge(post(token::post_token)),
        )
        .route("/token/jwks.json", get(token::jwks))
        .route("/.well-known/jwks.json", get(token::jwks))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(admin::router(state.config.limits.max_json_body_bytes))
        .layer(axum::middleware::map_response(api_version_header));
    let inner = if state.config.console.enabled {
        inner.merge(console::router(state.config.limits.max_json_body_bytes))
    } else {
        inner
    };
    // Only with a metrics listener: without one, requests pay nothing for metrics.
    let inner = if state.config.metrics.listen.is_empty() {
        inner
    } else {
        let observer = observe::Observer::new(state.registry.metrics().clone());
        inner.layer(axum::middleware::from_fn_with_state(
            observer,
            observe::observe,
        ))
    };
    // Outermost, so the metrics and every handler run inside the request's span.
    let inner = inner
        .layer(axum::middleware::from_fn(trace::trace))
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::map_request(admin::rewrite_sub_resource))
}

/// How clients reach this registry: `public_url` when configured, else the request's scheme
/// and Host (checked to be a plain host name).
pub fn endpoint(
    config: &crate::config::Config,
    headers: &axum::http::HeaderMap,
) -> crate::ops::Endpoint {
    let public = config.public_url.trim_end_matches('/');
    if !public.is_empty() {
        let rest = public.split_once("://").map_or(public, |(_, rest)| rest);
        return crate::ops::Endpoint {
            host: rest.split('/').next().unwrap_or(rest).to_owned(),
            url: public.to_owned(),
        };
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost")
        .to_owned();
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    crate::ops::Endpoint {
        url: format!("{scheme}://{host}"),
        host,
    }
}

async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// GET /readyz: 200 `ready` when the database and blob storage answer; 200 `ready; writes
/// degraded: ...` when they answer reads but refuse writes (disk full, read-only), since pulls
/// still work and a readiness probe that took every replica out of its load balancer would
/// turn "pushes fail" into "the registry is down"; 503 `not ready: ...` when reads fail.
/// `?require=writes` answers 503 for degraded writes too (for a probe that gates writers).
async fn readyz(
    State(app): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let require_writes = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair == "require=writes");
    match app.registry.replicas().readiness(&app.holder).await {
        Ok(r) if r.writes_degraded.is_empty() => "ready".into_response(),
        Ok(r) => {
            let body = format!("ready; writes degraded: {}", r.writes_degraded.join("; "));
            if require_writes {
                (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
            } else {
                body.into_response()
            }
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", e.message()),
        )
            .into_response(),
    }
}
