//! One span and one log line per request of the registry's listener. The span (`request`, named
//! for OpenTelemetry `<METHOD> <route template>`, never a raw path) is the child of the caller's
//! W3C `traceparent` and the parent of the detail spans of the database, storage, upstream and
//! Trivy calls made for it. Each request gets a request id (the caller's `X-Request-Id` when it
//! is a short safe token, else a UUID v7), answered as `X-Request-Id`. The log line, written
//! when the response body is done with (target `berth::request`; `info`, `error` for a 5xx),
//! names the request id, trace id, principal, repository, method, route, status, duration and
//! outcome. Handlers and the authentication code note the repository and principal with
//! [`note_repository`] and [`note_subject`]. Nothing of a request's headers but the trace
//! context and the request id is read, so no credential can reach the log.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::{Status, TraceContextExt};
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::access::Subject;

/// The response header (and accepted request header) that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest request id taken from a caller.
const MAX_REQUEST_ID: usize = 64;

tokio::task_local! {
    /// What the handlers found out about the request being served on this task.
    static NOTES: Arc<Notes>;
}

/// The principal and repository of one request, as the handlers learn them (first note wins).
#[derive(Default)]
struct Notes {
    principal: OnceLock<String>,
    repository: OnceLock<String>,
}

/// Notes the authenticated caller of the current request (its principal's ARN; an anonymous
/// caller notes nothing). A no-op outside a request.
pub fn note_subject(subject: &Subject) {
    if let Some(principal) = &subject.principal {
        let _ = NOTES.try_with(|n| n.principal.set(principal.arn().to_owned()));
    }
}

/// Notes the repository the current request is about. A no-op outside a request.
pub fn note_repository(name: &str) {
    let _ = NOTES.try_with(|n| n.repository.set(name.to_owned()));
}

/// A caller's request id, when it is 1 to 64 characters of `[A-Za-z0-9._-]` (anything else
/// could forge or break log lines, so it is replaced).
fn incoming_request_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let safe = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    safe.then(|| value.to_owned())
}

/// The repository of an admin API route about one repository (`/api/v1/repositories/{name}`,
/// `/api/v1/repository-policies/{name}`, ...); `/v2` and the ECR API note theirs themselves.
fn admin_repository(req: &Request, params: Option<&RawPathParams>) -> Option<String> {
    let matched = req.extensions().get::<MatchedPath>()?.as_str();
    if !matched.starts_with("/api/v1/repositor")
        || matched.starts_with("/api/v1/repository-creation-templates")
    {
        return None;
    }
    params?
        .iter()
        .find(|(key, _)| *key == "name")
        .map(|(_, value)| value.to_owned())
}

/// The middleware: opens the request span (child of an incoming `traceparent`), runs the
/// request in it, answers the request id, and leaves the log line and the span's end to the
/// response body's end.
pub async fn trace(
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = super::observe::route_name(&req);
    let method = req.method().clone();
    let request_id =
        incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
    });
    let name = format!("{method} {route}");
    let span = tracing::info_span!(
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        request_id = request_id.as_str(),
        trace_id = Empty,
        span_id = Empty,
    );
    // Without an exporter these are no-ops (no OpenTelemetry layer to take them).
    let _ = span.set_parent(parent.clone());
    span.set_attribute("http.request.method", method.as_str().to_owned());
    span.set_attribute("http.route", route);
    span.set_attribute("url.path", req.uri().path().to_owned());
    let own = span.context().span().span_context().clone();
    let trace_id = if own.is_valid() {
        span.record("span_id", own.span_id().to_string().as_str());
        Some(own.trace_id().to_string())
    } else {
        // No exporter: the caller's trace id still ties this request's log to its trace.
        let remote = parent.span().span_context().clone();
        remote.is_valid().then(|| remote.trace_id().to_string())
    };
    if let Some(id) = &trace_id {
        span.record("trace_id", id.as_str());
    }
    let notes = Arc::new(Notes::default());
    if let Some(name) = admin_repository(&req, params.as_ref().ok()) {
        let _ = notes.repository.set(name);
    }
    let mut response = NOTES
        .scope(notes.clone(), next.run(req).instrument(span.clone()))
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(""));
    }
    let principal = notes.principal.get().cloned();
    let repository = notes.repository.get().cloned();
    if let Some(p) = &principal {
        span.set_attribute("enduser.id", p.clone());
    }
    if let Some(r) = &repository {
        span.set_attribute("berth.repository", r.clone());
    }
    let finish = Finish {
        _span: span,
        start,
        request_id,
        trace_id,
        principal,
        repository,
        method,
        route,
        status,
    };
    response.map(|body| Body::new(super::held::HeldUntilSent::new(body, finish)))
}

/// Writes the request's log line and ends its span when the response body is done with.
struct Finish {
    /// Held so the span ends with the body (sent in full, or abandoned).
    _span: tracing::Span,
    start: Instant,
    request_id: String,
    trace_id: Option<String>,
    principal: Option<String>,
    repository: Option<String>,
    method: axum::http::Method,
    route: &'static str,
    status: u16,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let duration_ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let outcome = match self.status {
            500.. => "server_error",
            400..=499 => "client_error",
            _ => "ok",
        };
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: "berth::request",
                    parent: None,
                    $level,
                    request_id = self.request_id.as_str(),
                    trace_id = self.trace_id.as_deref(),
                    principal = self.principal.as_deref(),
                    repository = self.repository.as_deref(),
                    method = self.method.as_str(),
                    route = self.route,
                    status = self.status,
                    duration_ms,
                    outcome,
                    "request"
                )
            };
        }
        // One access line per request at info (the default level), as registries log them; a
        // 5xx at error. `berth::request=warn` silences them.
        if self.status >= 500 {
            line!(tracing::Level::ERROR);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(value: &str) -> Request {
        Request::builder()
            .header(REQUEST_ID, value)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn only_short_safe_request_ids_are_taken_from_the_caller() {
        assert_eq!(
            incoming_request_id(&with_id("build-42.step_3")).as_deref(),
            Some("build-42.step_3")
        );
        for bad in ["", "a b", "x\"}", "caf\u{e9}", &"a".repeat(65)] {
            assert_eq!(incoming_request_id(&with_id(bad)), None, "{bad:?}");
        }
        assert_eq!(
            incoming_request_id(&with_id(&"a".repeat(64))).map(|s| s.len()),
            Some(64)
        );
    }
}
