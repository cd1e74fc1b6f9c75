//! The Docker token endpoint: `GET /token` (Basic or anonymous, as docker and podman call it),
//! the OAuth2 `POST /token` form (password and refresh-token grants, as containerd calls it),
//! and the JWKS document with the public keys that verify issued tokens.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::auth::{authenticate, realm, request_facts};
use super::error::ApiError;
use crate::access::Door;
use crate::access::{RequestFacts, Subject};
use crate::auth::scope::{basic_challenge, parse_scope_params, render_scopes, Scope, REPOSITORY};
use crate::auth::token::{Claims, ResourceAccess};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::oci::RepoName;

/// Largest token request form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn all<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A refusal from the token endpoint; a 401 carries a Basic challenge (the token endpoint takes
/// only Basic credentials).
fn refuse(app: &AppState, headers: &HeaderMap, e: Error) -> Response {
    let unauthorized = matches!(e, Error::Unauthorized(_));
    let mut response = ApiError(e).into_response();
    if unauthorized {
        if let Ok(v) = basic_challenge(&realm(app, headers)).parse() {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}

fn check_service(app: &AppState, service: Option<&str>) -> Result<()> {
    match service {
        Some(s) if !s.is_empty() && s != app.access.service() => Err(Error::Unsupported(format!(
            "unknown service {:?}; this registry's token service is {:?}",
            s.chars().take(100).collect::<String>(),
            app.access.service()
        ))),
        _ => Ok(()),
    }
}

fn requested_scopes<'a>(params: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>> {
    parse_scope_params(params).map_err(|e| Error::Unsupported(e.to_string()))
}

fn rfc3339(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn issue(
    app: &AppState,
    subject: &Subject,
    scopes: &[Scope],
    facts: &RequestFacts,
) -> Result<(String, Claims)> {
    // A mirror client (dockerd's `registry-mirrors`) asks for the upstream's name; it is granted
    // what the policies allow on the cached repository that name maps to.
    let mut mapped = Vec::with_capacity(scopes.len());
    let mut original = std::collections::HashMap::new();
    for scope in scopes {
        // Only pulls are mirrored: a push scope keeps its name (a new local repository).
        let pull_only = scope.actions.iter().all(|a| a == "pull");
        let local = match (scope.resource_type.as_str(), RepoName::parse(&scope.name)) {
            (REPOSITORY, Ok(name)) if pull_only => {
                app.pull_through.mirror_target(&name, None).await?
            }
            _ => None,
        };
        match local {
            Some(local) => {
                original.insert(local.to_string(), scope.name.clone());
                mapped.push(Scope {
                    name: local.to_string(),
                    ..scope.clone()
                });
            }
            None => mapped.push(scope.clone()),
        }
    }
    let mut access: Vec<ResourceAccess> = app.access.grant(subject, &mapped, facts).await?;
    for a in &mut access {
        if let Some(name) = original.get(&a.name) {
            a.name = name.clone();
        }
    }
    // What was asked for, beside what was granted: `/v2` answers a request needing an action
    // that was never asked for with 401 (a new token may carry it), and one that was asked for
    // and refused with 403 (another token would not help).
    let requested = scopes.iter().cloned().map(ResourceAccess::from).collect();
    app.access.issue_access_token(subject, access, requested)
}

/// Refuses credentials the token endpoint does not take (a registry token).
fn admit(subject: &Subject) -> Result<()> {
    match subject.credential_kind() {
        Some(kind) => Door::TokenEndpoint.admit(kind).map_err(Error::Unauthorized),
        None => Ok(()),
    }
}

fn granted_scope_text(claims: &Claims) -> String {
    let scopes: Vec<Scope> = claims
        .access
        .iter()
        .map(|a| {
            let actions: Vec<&str> = a.actions.iter().map(String::as_str).collect();
            Scope::new(&a.resource_type, &a.name, &actions)
        })
        .collect();
    render_scopes(&scopes)
}

/// GET /token?service=&scope=&account=&offline_token=
pub async fn get_token(State(app): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match get_token_inner(&app, &parts).await {
        Ok(r) => r,
        Err(e) => refuse(&app, &parts.headers, e),
    }
}

async fn get_token_inner(app: &AppState, req: &axum::http::request::Parts) -> Result<Response> {
    let pairs = query_pairs(&req.uri);
    check_service(app, first(&pairs, "service"))?;
    let scopes = requested_scopes(all(&pairs, "scope"))?;
    let facts = request_facts(app, &req.extensions);
    let subject = authenticate(app, &req.headers, &facts).await?;
    admit(&subject)?;
    let (token, claims) = issue(app, &subject, &scopes, &facts).await?;
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.lifetime_secs(),
        "issued_at": rfc3339(claims.iat),
    });
    if first(&pairs, "offline_token") == Some("true") {
        if let Some(refresh) = app.access.issue_refresh_token(&subject)? {
            body["refresh_token"] = json!(refresh);
        }
    }
    Ok(token_response(body))
}

fn token_response(body: serde_json::Value) -> Response {
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    // Tokens are credentials: no cache may keep them.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// POST /token (application/x-www-form-urlencoded): `grant_type=password` with `username` and
/// `password`, or `grant_type=refresh_token` with `refresh_token`; `service`, `scope`
/// (space-separated), `client_id`, `access_type=offline` for a refresh token.
pub async fn post_token(State(app): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    match post_token_inner(&app, req).await {
        Ok(r) => r,
        Err(e) => refuse(&app, &headers, e),
    }
}

async fn post_token_inner(app: &AppState, req: Request) -> Result<Response> {
    let facts = request_facts(app, req.extensions());
    let (_, body) = req.into_parts();
    let bytes = axum::body::to_bytes(Body::new(body), MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            Error::PayloadTooLarge(format!(
                "token requests are forms of at most {MAX_FORM_BYTES} bytes"
            ))
        })?;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    check_service(app, first(&form, "service"))?;
    let scopes = requested_scopes(all(&form, "scope"))?;
    let offline = first(&form, "access_type") == Some("offline");
    let (subject, refresh_token) = match first(&form, "grant_type") {
        Some("password") => {
            let username = first(&form, "username").unwrap_or("");
            let password = first(&form, "password").unwrap_or("");
            if username.is_empty() {
                return Err(Error::Unauthorized(
                    "grant_type=password needs username and password".into(),
                ));
            }
            let subject = app.access.login_subject(username, password, &facts).await?;
            admit(&subject)?;
            let refresh = if offline {
                app.access.issue_refresh_token(&subject)?
            } else {
                None
            };
            (subject, refresh)
        }
        Some("refresh_token") => {
            let token = first(&form, "refresh_token").unwrap_or("");
            let subject = app.access.redeem_refresh_token(token).await?;
            admit(&subject)?;
            (subject, Some(token.to_owned()))
        }
        other => {
            return Err(Error::Unsupported(format!(
                "unsupported grant_type {:?}; use password or refresh_token",
                other.unwrap_or("").chars().take(40).collect::<String>()
            )))
        }
    };
    let (token, claims) = issue(app, &subject, &scopes, &facts).await?;
    let mut body = json!({
        "access_token": token,
        "scope": granted_scope_text(&claims),
        "expires_in": claims.lifetime_secs(),
        "issued_at": rfc3339(claims.iat),
    });
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    Ok(token_response(body))
}

/// GET /token/jwks.json and /.well-known/jwks.json: the keys that verify Berth's tokens.
pub async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.access.jwks_json(),
    )
        .into_response()
}
