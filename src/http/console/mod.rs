//! The web console door: server-rendered HTML pages under `/console/` on the registry's
//! listener (`[console] enabled`), for people. It signs people in with a password or robot
//! secret into a server-side session ([`crate::access::ConsoleSignIns`], credential kind
//! `console_session`), and every page and form reaches the same typed operations of
//! `crate::ops` as the ECR API and the REST API, through the same gate, with the same audit
//! records: the console adds no business rules. Read pages work without JavaScript; the script
//! only enhances (local times, copy buttons, filtering, the lifecycle preview).
//!
//! **Forms.** Every POST carries the session's anti-forgery token (`_csrf`) and is refused when
//! the browser says it comes from another site (`Origin`, `Sec-Fetch-Site`); the session cookie
//! is `HttpOnly`, `SameSite=Strict`, and `Secure` whenever the client reached Berth over TLS
//! (directly or through a trusted proxy). The sign-in form, which has no session yet, carries a
//! token matched against a pre-session cookie instead.
//!
//! **Pages** live one area per module: `repositories` (the list), `repository` (one repository
//! and its images), `image`, `lifecycle` (the editor with its live preview), `policy` (the
//! repository policy editor and simulator), `registry` (pull-through rules, creation templates,
//! registry scanning, replication and event delivery status), `identity` (users, groups, robots,
//! access keys) and `audit`. `layout` holds the page shell and the small pieces every page
//! uses.

mod audit;
mod identity;
mod image;
pub mod layout;
mod lifecycle;
mod policy;
mod registry;
mod repositories;
mod repository;
mod sign_in;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::request_facts;
use crate::access::{Caller, ConsoleSignIns, Permission, Resource};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::ops::{Endpoint, Operation};
use crate::policy::Action;

/// Where the console lives.
pub const PREFIX: &str = "/console";
/// The session cookie: the session's random token.
pub const SESSION_COOKIE: &str = "berth_session";
/// The sign-in form's pre-session anti-forgery cookie.
pub const SIGN_IN_COOKIE: &str = "berth_sign_in";
/// The form field every POST carries its anti-forgery token in.
pub const CSRF_FIELD: &str = "_csrf";

/// The console's routes, when it is enabled; each page module adds its own.
pub fn router(max_body_bytes: usize) -> Router<AppState> {
    let router = Router::new()
        .route(
            PREFIX,
            get(|| async { redirect(&format!("{PREFIX}/repositories")) }),
        )
        .route(
            "/console/",
            get(|| async { redirect(&format!("{PREFIX}/repositories")) }),
        )
        .route("/console/assets/{file}", get(asset));
    let router = sign_in::routes(router);
    let router = repositories::routes(router);
    let router = repository::routes(router);
    let router = registry::routes(router);
    let router = identity::routes(router);
    let router = audit::routes(router);
    router
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(security_headers))
}

async fn not_found(session: Option<Session>) -> Response {
    layout::error_page(
        session.as_ref(),
        &Error::NotFound("There is no console page at this address.".into()),
    )
}

/// Headers every console response carries: no script, style or frame from anywhere else, no
/// caching of pages that show what a signed-in person may see.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; \
         object-src 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cache-control", "no-store");
    response
}

/// The embedded stylesheet and script, built into the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (layout::CSS, "text/css; charset=utf-8"),
        "console.js" => (layout::JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; a version in the URL busts the cache.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// A 303 to `location` (after a form, or to sign in).
pub fn redirect(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/console/")),
        )],
    )
        .into_response()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for the console's cookies: path `/console`, `HttpOnly`,
/// `SameSite=Strict`, and `Secure` when the client reached Berth over TLS. `max_age` 0 deletes.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path={PREFIX}; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
}

/// Whether the browser says this request comes from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` whose host is not the request's `Host`.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin == "null" || origin_host != host
}

/// A signed-in console request: the caller (decided by the one gate like every door's), the
/// session's anti-forgery token for the page's forms, and how clients reach the registry.
pub struct Session {
    pub app: AppState,
    pub caller: Caller,
    /// The anti-forgery token the page's forms carry.
    pub csrf: String,
    pub endpoint: Endpoint,
    /// Whether the caller is an administrator (the navigation shows the admin pages).
    pub admin: bool,
    /// The request's path and query (where to come back after signing in again).
    pub here: String,
    token: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map_or(PREFIX.to_owned(), |pq| pq.as_str().to_owned());
        let to_sign_in = || {
            let next = if parts.method == Method::GET {
                format!(
                    "?next={}",
                    url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
                )
            } else {
                String::new()
            };
            redirect(&format!("{PREFIX}/sign-in{next}"))
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(to_sign_in());
        };
        let subject = match app.console.session(&token).await {
            Ok(Some(subject)) => subject,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => return Err(layout::error_page(None, &e)),
        };
        let caller = Caller {
            subject,
            facts: request_facts(app, &parts.extensions),
        };
        let admin = app
            .access
            .authorize(&caller, "berth:Console", Permission::Admin)
            .await
            .is_ok();
        Ok(Session {
            app: app.clone(),
            csrf: ConsoleSignIns::csrf_token(&token),
            endpoint: super::endpoint(&app.config, &parts.headers),
            admin,
            here,
            caller,
            token,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Session as FromRequestParts<AppState>>::from_request_parts(parts, app)
                .await
                .ok(),
        )
    }
}

impl Session {
    /// Runs a control-plane operation as the signed-in caller: the gate, the operation and its
    /// audit record, exactly as the other doors run it.
    pub async fn run<O: Operation>(&self, op: O) -> Result<O::Output> {
        let cx = crate::ops::Context::new(self.app.services(), &self.caller, &self.endpoint);
        crate::ops::execute(&cx, op).await
    }

    /// Whether the caller may `action` on `resource` (a button for an action the caller may not
    /// take is left out; the operation's own gate still refuses it if forced).
    pub async fn may(&self, action: Action, resource: Resource<'_>) -> bool {
        self.app
            .access
            .authorize(
                &self.caller,
                action.iam_name(),
                Permission::Ecr(action, resource),
            )
            .await
            .is_ok()
    }

    /// The signed-in principal's login name (`robot/<name>` for robots).
    pub fn who(&self) -> String {
        self.caller
            .subject
            .principal
            .as_ref()
            .map_or_else(String::new, |p| match p.kind {
                crate::access::PrincipalKind::Robot => format!("robot/{}", p.name),
                crate::access::PrincipalKind::User => p.name.clone(),
            })
    }

    /// Whether the client reached Berth over TLS (the cookie's `Secure`).
    pub fn secure(&self) -> bool {
        self.caller.facts.secure_transport
    }

    /// The session's token (to end it).
    fn token(&self) -> &str {
        &self.token
    }
}

/// A submitted console form: the signed-in session and the form's fields, accepted only with
/// the session's anti-forgery token and not from another site.
pub struct ConsoleForm {
    pub session: Session,
    fields: Vec<(String, String)>,
}

impl FromRequest<AppState> for ConsoleForm {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session =
            <Session as FromRequestParts<AppState>>::from_request_parts(&mut parts, app).await?;
        if cross_site(&parts.headers) {
            return Err(layout::error_page(Some(&session), &forged()));
        }
        let bytes =
            match axum::body::Bytes::from_request(Request::from_parts(parts, body), app).await {
                Ok(bytes) => bytes,
                Err(rejection) => {
                    return Err(layout::error_page(
                        Some(&session),
                        &Error::InvalidParameter(format!(
                            "The form could not be read: {}",
                            rejection.body_text()
                        )),
                    ))
                }
            };
        let fields = parse_form(&bytes);
        let given = fields
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map_or("", |(_, v)| v.as_str());
        if !ConsoleSignIns::csrf_matches(session.token(), given) {
            return Err(layout::error_page(Some(&session), &forged()));
        }
        Ok(ConsoleForm { session, fields })
    }
}

/// The refusal of a form without its anti-forgery token, or from another site.
fn forged() -> Error {
    Error::Denied(
        "This form was not sent from a console page of this registry (its anti-forgery token is \
         missing or wrong). Reload the page and submit it again."
            .into(),
    )
}

/// The fields of an `application/x-www-form-urlencoded` body, in order.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl ConsoleForm {
    /// The first value of field `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of field `name` (repeated fields, checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// Splits a repository path of the console (`team/app`, `team/app/-/images/sha256:...`) into
/// the repository name and what follows `/-/` (repository names have no `-` component, so the
/// split is unambiguous).
pub fn split_repository_path(path: &str) -> (&str, &str) {
    match path.split_once("/-/") {
        Some((name, rest)) => (name, rest),
        None => (path.strip_suffix("/-").unwrap_or(path), ""),
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_split_at_the_dash_component() {
        assert_eq!(split_repository_path("team/app"), ("team/app", ""));
        assert_eq!(
            split_repository_path("team/app/-/images/sha256:ab"),
            ("team/app", "images/sha256:ab")
        );
        assert_eq!(
            split_repository_path("a-b/c-d/-/lifecycle"),
            ("a-b/c-d", "lifecycle")
        );
        assert_eq!(split_repository_path("app/-"), ("app", ""));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("reg.example:5000"));
        assert!(
            !cross_site(&h),
            "no Origin: a form post from an old browser"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://reg.example:5000"),
        );
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; berth_session=tok"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "tok", true, None);
        let set = set.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie(SESSION_COOKIE, "t", false, None)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
