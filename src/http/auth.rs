//! Authentication and authorization of `/v2/` requests: reads the caller's credentials, maps the
//! route to the Docker scope it needs, asks the access layer, and answers 401 with a Bearer
//! challenge (which sends clients to `/token`) or 403 `DENIED`.

use axum::http::{header, HeaderMap, Method};

use super::client::ClientInfo;
use crate::access::Door;
use crate::access::{RequestFacts, Resource, Subject};
use crate::auth::scope::{
    BearerChallenge, ChallengeError, Scope, ANY_ACTION, REGISTRY, REPOSITORY,
};
use crate::auth::token::ScanGrant;
use crate::error::{Error, Result};
use crate::http::oci::route::Route;
use crate::http::AppState;
use crate::oci::RepoName;
use crate::policy::ScopeAction;

/// What a route needs from its caller.
enum Need<'a> {
    /// Any valid identity, or any valid token (`GET /v2/`).
    Identity,
    /// The catalog: any identity; the listing is filtered per repository.
    Catalog,
    /// A Docker scope action on a repository.
    Scope(ScopeAction, &'a RepoName),
}

fn need<'a>(method: &Method, route: &'a Route) -> Need<'a> {
    let by_method = |name| {
        if method == Method::GET || method == Method::HEAD {
            Need::Scope(ScopeAction::Pull, name)
        } else if method == Method::DELETE {
            Need::Scope(ScopeAction::Delete, name)
        } else {
            Need::Scope(ScopeAction::Push, name)
        }
    };
    match route {
        Route::Base => Need::Identity,
        Route::Catalog => Need::Catalog,
        Route::Tags { name } | Route::Referrers { name, .. } => {
            Need::Scope(ScopeAction::Pull, name)
        }
        Route::Manifest { name, .. } | Route::Blob { name, .. } => by_method(name),
        // Every upload call (including its status and cancel) is part of pushing.
        Route::UploadStart { name } | Route::Upload { name, .. } => {
            Need::Scope(ScopeAction::Push, name)
        }
    }
}

/// Source address and transport of a request, for policy conditions and the failed-login
/// limiter: the [`ClientInfo`] the server resolved (through trusted proxies), or, for a request
/// that did not come through the server (a router under test), no address and the listener's
/// transport.
pub fn request_facts(app: &AppState, extensions: &axum::http::Extensions) -> RequestFacts {
    match extensions.get::<ClientInfo>() {
        Some(client) => RequestFacts {
            source_ip: Some(client.ip),
            secure_transport: client.secure,
        },
        None => RequestFacts {
            source_ip: None,
            secure_transport: app.config.tls_cert.is_some(),
        },
    }
}

/// The token endpoint clients are sent to: `<public_url>/token`, or the request's own scheme and
/// Host when no public URL is configured.
pub fn realm(app: &AppState, headers: &HeaderMap) -> String {
    let public = app.config.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return format!("{public}/token");
    }
    let scheme = if app.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}/token")
}

fn challenge(app: &AppState, headers: &HeaderMap) -> BearerChallenge {
    BearerChallenge::new(&realm(app, headers), app.access.service())
}

/// The caller named by the `Authorization` header: Basic (password or ECR registry password),
/// Bearer (a registry token), or anonymous when there is none.
pub async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    facts: &RequestFacts,
) -> Result<Subject> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Subject::anonymous());
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not ASCII".into()))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let subject = if scheme.eq_ignore_ascii_case("basic") {
        app.access.login_basic(value, facts).await
    } else if scheme.eq_ignore_ascii_case("bearer") {
        app.access.verify_bearer(rest.trim()).await
    } else {
        Err(Error::Unauthorized(format!(
            "unsupported authorization scheme {:?}; use Basic or Bearer",
            scheme.chars().take(20).collect::<String>()
        )))
    }?;
    super::trace::note_subject(&subject);
    Ok(subject)
}

/// Authenticates and authorizes one `/v2/` request; the subject is returned for handlers that
/// filter (catalog) or check more (mounts). `alias` is the name a mirror request used before it
/// was mapped to its cached repository.
pub async fn guard(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    facts: &RequestFacts,
    route: &Route,
    alias: Option<&RepoName>,
) -> Result<Subject> {
    let need = need(method, route);
    let required_scope = match &need {
        Need::Identity => None,
        Need::Catalog => Some(Scope::new(REGISTRY, "catalog", &[ANY_ACTION])),
        // A push challenge asks for `pull,push`, as Distribution's does: clients that fetch one
        // token per repository (oras-py) then hold a token for the blob checks a push makes.
        Need::Scope(ScopeAction::Push, name) => {
            Some(Scope::repository(name.as_str(), &["pull", "push"]))
        }
        Need::Scope(scope, name) => Some(Scope::repository(name.as_str(), &[scope.as_str()])),
    };
    let with_scope = |c: BearerChallenge| match &required_scope {
        Some(s) => c.with_scope(s.clone()),
        None => c,
    };
    let subject = match authenticate(app, headers, facts).await {
        Ok(subject) => subject,
        Err(Error::Unauthorized(message)) => {
            let c = with_scope(challenge(app, headers));
            let c = if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"))
            {
                c.with_error(ChallengeError::InvalidToken)
            } else {
                c
            };
            return Err(Error::AuthenticationRequired {
                message,
                challenge: c.header_value(),
            });
        }
        Err(other) => return Err(other),
    };
    if let Some(kind) = subject.credential_kind() {
        Door::Registry
            .admit(kind)
            .map_err(|message| Error::AuthenticationRequired {
                message,
                challenge: with_scope(challenge(app, headers)).header_value(),
            })?;
    }
    if let Some(grant) = &subject.scan {
        scanner_may_read(app, grant, method, route).await?;
        return Ok(subject);
    }
    let unauthenticated = subject.is_anonymous() && subject.token.is_none();
    let (scope, name) = match need {
        Need::Identity | Need::Catalog => {
            if unauthenticated {
                return Err(Error::AuthenticationRequired {
                    message: "authentication required".into(),
                    challenge: with_scope(challenge(app, headers)).header_value(),
                });
            }
            return Ok(subject);
        }
        Need::Scope(scope, name) => (scope, name),
    };
    let word = scope.as_str();
    if let Some(claims) = &subject.token {
        // A mirror request (dockerd's `registry-mirrors`) holds a token for the upstream name
        // it asked for, which `/token` granted as the cached repository's.
        let granted = claims.allows(REPOSITORY, name.as_str(), word)
            || alias.is_some_and(|a| claims.allows(REPOSITORY, a.as_str(), word));
        if !granted {
            let message = format!(
                "the token does not grant {word} on repository {name}; ask /token for \
                 repository:{name}:{}",
                required_scope
                    .as_ref()
                    .map_or(word.to_owned(), |s| s.actions.join(","))
            );
            let challenge = with_scope(challenge(app, headers))
                .with_error(ChallengeError::InsufficientScope)
                .header_value();
            let asked = claims.requested(REPOSITORY, name.as_str(), word)
                || alias.is_some_and(|a| claims.requested(REPOSITORY, a.as_str(), word));
            return Err(
                match lacking_scope_answer(asked, subject.is_anonymous(), method) {
                    LackingScope::Reauthenticate => {
                        Error::AuthenticationRequired { message, challenge }
                    }
                    LackingScope::Forbidden => Error::InsufficientScope { message, challenge },
                },
            );
        }
    }
    // Re-checked even with a token, so an edited policy applies to tokens already issued. The
    // common case (allowed) is one cached lookup; a refusal walks the actions to name the one
    // that failed.
    let allowed = app
        .access
        .may(&subject, scope, name.as_str(), facts)
        .await?;
    for action in app
        .access
        .scope_actions(&subject, scope)
        .iter()
        .filter(|_| !allowed)
    {
        let decision = app
            .access
            .decide(&subject, *action, Some(name.as_str()), facts)
            .await?;
        if !decision.is_allowed() {
            if unauthenticated {
                return Err(Error::AuthenticationRequired {
                    message: format!("authentication required to {word} repository {name}"),
                    challenge: with_scope(challenge(app, headers)).header_value(),
                });
            }
            return Err(app.access.denied(
                &subject,
                action.iam_name(),
                Resource::Repository(name.as_str()),
                &decision.to_string(),
            ));
        }
    }
    if scope == ScopeAction::Push
        && app
            .registry
            .repositories()
            .repository_id(name)
            .await?
            .is_none()
    {
        crate::ops::repositories::create_on_push(&app.registry, &app.access, &subject, name, facts)
            .await?;
    }
    Ok(subject)
}

/// How a request is answered whose token lacks the action it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LackingScope {
    /// 401 with the challenge naming the scope: the client fetches a token that carries it.
    Reauthenticate,
    /// 403 `DENIED` with the challenge.
    Forbidden,
}

/// 401 or 403 for a token that lacks the needed action. The Docker token specification and
/// Distribution answer 401, and clients (docker, containerd, the OCI conformance suite, which
/// reuses a pull token for an upload's status) fetch a new token on it. But a new token cannot
/// help when this one already asked for the action and the policies refused it: then 403, so
/// that clients stop instead of looping. An anonymous caller may always log in (401). And a
/// write (POST, PUT, PATCH) with a token that never asked for push comes only from a client
/// that reuses one request's token for the next: every client that writes asks for push before
/// it writes (docker, containerd, podman, skopeo, the conformance suite), but oras-py holds one
/// token for everything and fetches a new one only after a 403 (on a 401 it sends the same token
/// again and gives up), so a write answers 403 with the challenge (RFC 6750's answer).
fn lacking_scope_answer(asked: bool, anonymous: bool, method: &Method) -> LackingScope {
    let write = method == Method::POST || method == Method::PUT || method == Method::PATCH;
    if anonymous || !(asked || write) {
        LackingScope::Reauthenticate
    } else {
        LackingScope::Forbidden
    }
}

/// The scanner's credential reads one image: `GET /v2/`, that manifest by digest, and the blobs
/// it references, in its repository; nothing else, whatever the policies say.
async fn scanner_may_read(
    app: &AppState,
    grant: &ScanGrant,
    method: &Method,
    route: &Route,
) -> Result<()> {
    let read = method == Method::GET || method == Method::HEAD;
    let allowed = match route {
        Route::Base => read,
        Route::Manifest { name, reference } => {
            read && name.as_str() == grant.repository && *reference == grant.digest
        }
        Route::Blob { name, digest } if read && name.as_str() == grant.repository => {
            app.registry
                .images()
                .manifest_references_blob(name, &grant.digest, digest)
                .await?
        }
        _ => false,
    };
    if allowed {
        return Ok(());
    }
    Err(Error::Denied(format!(
        "the scanner's credential reads only {}@{}",
        grant.repository, grant.digest
    )))
}

/// Whether the caller may read blobs of `repository` (a mount's source).
pub async fn may_pull(
    app: &AppState,
    subject: &Subject,
    repository: &str,
    facts: &RequestFacts,
) -> Result<bool> {
    app.access
        .may(subject, ScopeAction::Pull, repository, facts)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lacking_a_scope_is_sent_back_for_another_unless_that_cannot_help() {
        use LackingScope::*;
        // (asked for it, anonymous, method) -> answer
        let cases = [
            (false, false, Method::GET, Reauthenticate),
            (false, false, Method::HEAD, Reauthenticate),
            (false, false, Method::DELETE, Reauthenticate),
            (false, false, Method::POST, Forbidden),
            (false, false, Method::PATCH, Forbidden),
            (false, false, Method::PUT, Forbidden),
            (true, false, Method::GET, Forbidden),
            (true, false, Method::POST, Forbidden),
            (true, false, Method::DELETE, Forbidden),
            (true, true, Method::POST, Reauthenticate),
            (false, true, Method::PUT, Reauthenticate),
            (false, true, Method::GET, Reauthenticate),
        ];
        for (asked, anonymous, method, answer) in cases {
            assert_eq!(
                lacking_scope_answer(asked, anonymous, &method),
                answer,
                "asked={asked} anonymous={anonymous} {method}"
            );
        }
    }
}
