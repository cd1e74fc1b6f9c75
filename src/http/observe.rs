//! Counts and times every request of the registry's listener by route template, method and
//! status, and counts body bytes as they stream (the `berth_http_*` families of
//! [`crate::metrics`]). Routes are named by template, never by raw path, so the label set is
//! bounded: `/v2` paths by their shape, the ECR API by operation, unknown paths as `other`.
//!
//! The series a request records into are resolved once per (route, method, status) into a
//! lock-free table, so after the first request of a kind no lock is taken on this path.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::metrics::counter::Counter;
use crate::metrics::histogram::Histogram;
use crate::metrics::{Metrics, RequestLabels, RouteMethod};

/// The label of paths no route matches.
const OTHER: usize = 0;
/// The label of ECR calls naming no known operation.
const ECR_OTHER: usize = 1;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Statuses with a slot in the table; others (rare) are looked up in the family.
const STATUSES: [u16; 26] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 409, 411, 412, 413,
    415, 416, 429, 500, 502, 503, 504,
];

/// Every route template, and how a request finds its index.
struct Routes {
    names: Vec<&'static str>,
    /// By axum's matched route (the admin API's internal paths included) or `/v2` template.
    by_template: HashMap<&'static str, usize>,
    /// By `X-Amz-Target` operation.
    by_operation: HashMap<&'static str, usize>,
}

/// The templates are a property of the code, the same for every router: built once.
fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let mut routes = Routes {
            names: vec!["other", "ecr:other"],
            by_template: HashMap::new(),
            by_operation: HashMap::new(),
        };
        let add = |routes: &mut Routes, matched: &'static str, name: &'static str| {
            let index = match routes.names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    routes.names.push(name);
                    routes.names.len() - 1
                }
            };
            routes.by_template.insert(matched, index);
        };
        for template in super::oci::route::TEMPLATES {
            add(&mut routes, template, template);
        }
        for path in [
            "/token",
            "/token/jwks.json",
            "/.well-known/jwks.json",
            "/healthz",
            "/readyz",
        ] {
            add(&mut routes, path, path);
        }
        for (_, internal) in super::admin::mounted_routes() {
            // Leaked once per process (this table is a static): the public template, with
            // `{*name}` written as `{name}`.
            let public: &'static str = Box::leak(
                super::admin::public_path(internal)
                    .replace("{*", "{")
                    .into_boxed_str(),
            );
            add(&mut routes, internal, public);
        }
        for operation in super::ecr::OPERATIONS {
            let name: &'static str = Box::leak(format!("ecr:{operation}").into_boxed_str());
            routes.names.push(name);
            routes
                .by_operation
                .insert(operation, routes.names.len() - 1);
        }
        routes
    })
}

/// The route index of a request.
fn route_of(req: &Request) -> usize {
    let routes = routes();
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        return OTHER;
    };
    match matched.as_str() {
        "/v2" | "/v2/" | "/v2/{*path}" => {
            let path = req.uri().path().strip_prefix("/v2").unwrap_or("");
            super::oci::route::template(path.trim_start_matches('/'))
                .and_then(|t| routes.by_template.get(t).copied())
                .unwrap_or(OTHER)
        }
        "/" => req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(super::ecr::TARGET_PREFIX))
            .and_then(|op| routes.by_operation.get(op).copied())
            .unwrap_or(ECR_OTHER),
        other => routes.by_template.get(other).copied().unwrap_or(OTHER),
    }
}

/// The route template of a request, as the metrics name it (`/v2/{name}/manifests/{reference}`,
/// `ecr:PutImage`, `other`): never a raw path, so it may name spans.
pub fn route_name(req: &Request) -> &'static str {
    routes().names[route_of(req)]
}

fn method_of(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// `n` unresolved series.
fn empty<T>(n: usize) -> Box<[OnceLock<T>]> {
    (0..n).map(|_| OnceLock::new()).collect()
}

/// The HTTP metrics of one router: the families, and the series resolved so far.
pub struct Observer {
    metrics: Metrics,
    /// Indexed by (route, method, status slot).
    requests: Box<[OnceLock<Counter>]>,
    /// Indexed by (route, method).
    durations: Box<[OnceLock<Histogram>]>,
    /// Request and response bytes, indexed by route.
    bytes: Box<[OnceLock<(Counter, Counter)>]>,
}

impl Observer {
    pub fn new(metrics: Metrics) -> Arc<Observer> {
        let routes = routes().names.len();
        Arc::new(Observer {
            metrics,
            requests: empty(routes * METHODS.len() * STATUSES.len()),
            durations: empty(routes * METHODS.len()),
            bytes: empty(routes),
        })
    }

    fn request_counter(&self, route: usize, method: usize, status: u16) -> Counter {
        let labels = || RequestLabels {
            route: routes().names[route],
            method: METHODS[method],
            status,
        };
        match STATUSES.binary_search(&status) {
            Ok(slot) => self.requests[(route * METHODS.len() + method) * STATUSES.len() + slot]
                .get_or_init(|| self.metrics.request_counter(&labels()))
                .clone(),
            Err(_) => self.metrics.request_counter(&labels()),
        }
    }

    fn duration(&self, route: usize, method: usize) -> &Histogram {
        self.durations[route * METHODS.len() + method].get_or_init(|| {
            self.metrics.request_duration(&RouteMethod {
                route: routes().names[route],
                method: METHODS[method],
            })
        })
    }

    fn bytes(&self, route: usize) -> &(Counter, Counter) {
        self.bytes[route].get_or_init(|| self.metrics.body_bytes(routes().names[route]))
    }
}

/// The middleware: wraps the request body to count what the handler reads, counts the answer by
/// status, and wraps the response body to count what is sent and time the whole exchange.
pub async fn observe(State(observer): State<Arc<Observer>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_of(&req);
    let method = method_of(req.method());
    let (request_bytes, response_bytes) = observer.bytes(route).clone();
    let req = req.map(|body| {
        Body::new(Counted {
            body,
            bytes: request_bytes,
            _done: None,
        })
    });
    let response = next.run(req).await;
    observer
        .request_counter(route, method, response.status().as_u16())
        .inc();
    let duration = observer.duration(route, method).clone();
    response.map(|body| {
        Body::new(Counted {
            body,
            bytes: response_bytes,
            _done: Some(Timed { start, duration }),
        })
    })
}

/// Observes the exchange's duration when the response body is done with.
struct Timed {
    start: Instant,
    duration: Histogram,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.duration.observe(self.start.elapsed().as_secs_f64());
    }
}

/// A body whose data bytes are counted as they pass (and, for a response, timed until it is
/// dropped: sent in full, or abandoned by a client that went away).
struct Counted {
    body: Body,
    bytes: Counter,
    /// Held for its `Drop`: observes the duration when the body goes.
    _done: Option<Timed>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.inc_by(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
