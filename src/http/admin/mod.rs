//! The native admin REST API: JSON under `/api/v1/`, described by the OpenAPI 3.1 document at
//! `GET /api/v1/openapi.json` (generated from the types, see `openapi`). Handlers are thin:
//! authenticate, map the request onto a typed operation of `crate::ops` (which holds the gate,
//! the work and the audit record), shape the JSON.
//!
//! **Authentication.** Every call needs a signed-in caller with HTTP Basic: a user's password or
//! a robot's secret, nothing else ([`crate::access::Door::AdminApi`] in the gate's table).
//! Registry tokens, ECR registry passwords (`AWS:<password>`), refresh tokens and the scanner's credential are
//! refused: they are handed to build tools and kept in client config files, so a leaked one must
//! not open the admin API. No, invalid or refused credentials are answered 401 with
//! `WWW-Authenticate: Basic realm=...`.
//!
//! **Permissions.** A call that has an ECR counterpart needs that ECR action, decided by the
//! policy engine exactly as the ECR API decides it: `ecr:CreateRepository`,
//! `ecr:DescribeRepositories`, `ecr:DeleteRepository`, `ecr:PutImageTagMutability`, the
//! repository policy, lifecycle and scanning actions (`ecr:SetRepositoryPolicy`,
//! `ecr:PutLifecyclePolicy`, `ecr:PutImageScanningConfiguration` (which also guards the pull
//! gate), `ecr:StartImageScan`, ...) on the repository; the registry policy and registry scanning
//! actions (`ecr:PutRegistryPolicy`, `ecr:GetRegistryScanningConfiguration`, ...) on the
//! registry. Listing repositories shows those the caller may
//! `ecr:DescribeRepositories`. Everything without an ECR counterpart (users, groups, robot
//! accounts, access keys, identity policies, settings, the policy simulator, signing keys, the
//! audit log, the event outbox) is for **administrators**: callers allowed [`crate::access::ADMIN_ACTION`]
//! (`ecr:PutRegistryPolicy`) at registry scope, i.e. by a statement whose resource covers every
//! repository (`"*"` or `arn:aws:ecr:<region>:<id>:repository/*`). Whoever may replace the
//! registry policy can already grant themselves anything, so this adds no power; a namespace
//! owner with `ecr:*` on `team-a/*` is not an administrator. The OpenAPI document only needs a
//! signed-in caller. Allowed-but-denied callers get 403 `DENIED` naming the action, resource and
//! deciding statement.
//!
//! **Audit.** Every call by a signed-in caller is recorded after it is decided
//! ([`crate::access::AuditLog::audit_request`]): action (`ecr:<Operation>` or
//! `berth:<Operation>`), resource (an ARN, or a short name such as `registry`), outcome
//! (`success`, `denied`, `failed`), source address, and a detail that never holds secrets (a
//! failure records only its kind of error). Calls refused with 401 are not recorded; failed logins
//! are logged and rate-limited by the access layer.
//!
//! **Errors** are the one JSON shape of [`super::error::ApiError`]:
//! `{"errors":[{"code":..., "message":...}]}`.

mod handlers;
mod openapi;
pub mod shapes;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::auth::{authenticate, realm, request_facts};
use super::error::ApiError;
pub use crate::access::Permission;
use crate::access::{Caller, Door};
use crate::auth::scope::basic_challenge;
use crate::error::{Error, Result};
use crate::http::AppState;

pub use openapi::document as openapi_document;

/// Where the admin API lives.
pub const PREFIX: &str = "/api/v1";

/// Sub-resources of a repository: the public path `/api/v1/repositories/<name>/<sub>` (matched
/// from the right end, as names contain `/`) is rewritten before routing to the internal path
/// `/api/v1/<internal>/<name>`, where the handlers are mounted as `{*name}` catch-alls (axum
/// allows a catch-all only as the last segment). Pairs of (public suffix, internal prefix).
pub const SUB_RESOURCES: &[(&str, &str)] = &[
    ("tag-mutability", "repository-tag-mutability"),
    ("lifecycle-policy", "repository-lifecycle-policy"),
    ("lifecycle/preview", "repository-lifecycle-preview"),
    ("lifecycle/run", "repository-lifecycle-run"),
    ("lifecycle/evaluate", "repository-lifecycle-evaluate"),
    (
        "scanning-configuration",
        "repository-scanning-configuration",
    ),
    ("pull-gate", "repository-pull-gate"),
    ("image-scans", "repository-image-scans"),
    ("scan-findings", "repository-scan-findings"),
];

/// The internal path of a public sub-resource path (see [`SUB_RESOURCES`]), if it is one.
pub fn internal_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/repositories/")?;
    SUB_RESOURCES.iter().find_map(|(sub, internal)| {
        let name = rest.strip_suffix(sub)?.strip_suffix('/')?;
        (!name.is_empty()).then(|| format!("{PREFIX}/{internal}/{name}"))
    })
}

/// The public path of a mounted route (the inverse of [`internal_path`] on route patterns:
/// `/api/v1/repository-tag-mutability/{*name}` → `/api/v1/repositories/{*name}/tag-mutability`);
/// other routes are their own public path.
pub fn public_path(route: &str) -> String {
    for (sub, internal) in SUB_RESOURCES {
        if let Some(name) = route
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_prefix(internal))
            .and_then(|r| r.strip_prefix('/'))
        {
            return format!("{PREFIX}/repositories/{name}/{sub}");
        }
    }
    route.to_owned()
}

/// Rewrites a request for a public sub-resource path to its internal path (before routing).
pub async fn rewrite_sub_resource(mut req: Request) -> Request {
    if let Some(path) = internal_path(req.uri().path()) {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Collects routes and remembers (method, path) of each, so tests can hold the OpenAPI
/// document against what is really mounted.
struct Routes {
    router: Router<AppState>,
    mounted: Vec<(&'static str, &'static str)>,
}

macro_rules! verb {
    ($name:ident, $method:literal) => {
        fn $name<H, T>(mut self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.mounted.push(($method, path));
            self.router = self.router.route(path, $name(handler));
            self
        }
    };
}

impl Routes {
    verb!(get, "get");
    verb!(post, "post");
    verb!(put, "put");
    verb!(delete, "delete");
}

fn routes() -> Routes {
    let routes = Routes {
        router: Router::new(),
        mounted: Vec::new(),
    };
    handlers::mount(routes)
}

/// The admin API's routes (full paths under [`PREFIX`]); unknown paths and methods below it are
/// answered with the JSON error shape too. Request bodies are limited to `max_body_bytes`.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    routes()
        .router
        .method_not_allowed_fallback(method_not_allowed)
        .route("/api/v1/{*rest}", any(no_such_endpoint))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// A request body, read whole (up to the body limit); refusals use the JSON error shape.
pub struct Payload(pub Bytes);

impl FromRequest<AppState> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, app).await {
            Ok(bytes) => Ok(Payload(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError(Error::PayloadTooLarge(format!(
                    "the request body is larger than the limit ({})",
                    rejection.body_text()
                ))))
            }
            Err(rejection) => Err(ApiError(Error::InvalidParameter(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            )))),
        }
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(Error::MethodNotAllowed(format!(
        "{method} is not supported on {}; see {PREFIX}/openapi.json",
        uri.path().chars().take(200).collect::<String>()
    )))
}

async fn no_such_endpoint(uri: Uri) -> ApiError {
    ApiError(Error::NotFound(format!(
        "no admin endpoint at {}; see {PREFIX}/openapi.json",
        uri.path().chars().take(200).collect::<String>()
    )))
}

/// (lowercase method, axum path) of every mounted admin route; a `{*name}` segment may hold `/`.
/// Sub-resources appear at their internal path; [`public_path`] gives the documented one.
pub fn mounted_routes() -> Vec<(&'static str, &'static str)> {
    routes().mounted
}

/// The admin API's caller: authenticated with a credential this door accepts.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let facts = request_facts(app, &parts.extensions);
        let challenge = || basic_challenge(&realm(app, &parts.headers));
        let subject = match authenticate(app, &parts.headers, &facts).await {
            Ok(subject) => subject,
            Err(Error::Unauthorized(message)) => {
                return Err(ApiError(Error::AuthenticationRequired {
                    message,
                    challenge: challenge(),
                }))
            }
            Err(other) => return Err(ApiError(other)),
        };
        // Registry tokens, ECR registry passwords, refresh tokens and the scanner's credential
        // are handed to build tools and written to disk by clients: none opens this API.
        if let Some(kind) = subject.credential_kind() {
            Door::AdminApi
                .admit(kind)
                .map_err(|message| Error::AuthenticationRequired {
                    message,
                    challenge: challenge(),
                })?;
        }
        if subject.principal.is_none() {
            return Err(ApiError(Error::AuthenticationRequired {
                message: "authentication required: use HTTP Basic credentials".into(),
                challenge: challenge(),
            }));
        }
        Ok(Caller { subject, facts })
    }
}

/// A REST call of a control-plane operation: the state, the signed-in caller, and the headers
/// that say how clients reach the registry, extracted at once. A handler taking it is only its
/// mapping: build the request from the path, query and body, [`OpCall::run`] it, shape the
/// answer.
pub struct OpCall {
    app: AppState,
    caller: Caller,
    headers: axum::http::HeaderMap,
}

impl FromRequestParts<AppState> for OpCall {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, app).await?;
        Ok(OpCall {
            app: app.clone(),
            caller,
            headers: parts.headers.clone(),
        })
    }
}

impl OpCall {
    /// Runs the operation: the gate, the operation and its audit record are the operation
    /// layer's; this door only maps the wire format.
    pub async fn run<O: crate::ops::Operation>(&self, op: O) -> Result<O::Output, ApiError> {
        let endpoint = super::endpoint(&self.app.config, &self.headers);
        let cx = crate::ops::Context::new(self.app.services(), &self.caller, &endpoint);
        Ok(crate::ops::execute(&cx, op).await?)
    }
}

/// A JSON request body decoded into an operation's request (its syntax and member types; the
/// operation validates values after the gate).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::InvalidParameter(format!("invalid JSON body: {e}"))))
}

/// A request body that is a document stored as sent (a policy), as text.
pub fn text(body: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError(Error::InvalidParameter("the body is not UTF-8 text".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_resource_paths_are_matched_from_the_right() {
        let cases = [
            (
                "/api/v1/repositories/team/app/tag-mutability",
                Some("/api/v1/repository-tag-mutability/team/app"),
            ),
            (
                "/api/v1/repositories/a/lifecycle/preview",
                Some("/api/v1/repository-lifecycle-preview/a"),
            ),
            (
                "/api/v1/repositories/a/b/c/lifecycle/run",
                Some("/api/v1/repository-lifecycle-run/a/b/c"),
            ),
            (
                "/api/v1/repositories/lifecycle/tag-mutability",
                Some("/api/v1/repository-tag-mutability/lifecycle"),
            ),
            (
                "/api/v1/repositories/x/lifecycle-policy",
                Some("/api/v1/repository-lifecycle-policy/x"),
            ),
            ("/api/v1/repositories/tag-mutability", None),
            ("/api/v1/repositories/team/app", None),
            ("/api/v1/repositories/team/apptag-mutability", None),
            ("/api/v1/users/x/tag-mutability", None),
        ];
        for (public, internal) in cases {
            assert_eq!(internal_path(public).as_deref(), internal, "{public}");
        }
        assert_eq!(
            public_path("/api/v1/repository-lifecycle-preview/{*name}"),
            "/api/v1/repositories/{*name}/lifecycle/preview"
        );
        assert_eq!(
            public_path("/api/v1/repository-policies/{*name}"),
            "/api/v1/repository-policies/{*name}"
        );
        for (method, route) in mounted_routes() {
            let public = public_path(route);
            if public != route {
                let concrete = public.replace("{*name}", "team/app");
                let expected = route.replace("{*name}", "team/app");
                assert_eq!(internal_path(&concrete), Some(expected), "{method} {route}");
            }
        }
    }
}
