//! Signing in and out of the console: the sign-in form (a user's password or a robot's secret,
//! guarded by a pre-session anti-forgery cookie and the failed-login limiter) and sign-out.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::layout::{self, Nav};
use super::{
    cookie, cross_site, parse_form, redirect, set_cookie, ConsoleForm, CSRF_FIELD, PREFIX,
    SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::error::Error;
use crate::http::auth::request_facts;
use crate::http::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/console/sign-in", get(form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a console path given in `next`, never another site.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("/console/sign-")
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() <= 2048 =>
        {
            n.to_owned()
        }
        _ => format!("{PREFIX}/repositories"),
    }
}

fn secure(app: &AppState, parts: &axum::http::Extensions) -> bool {
    request_facts(app, parts).secure_transport
}

/// The sign-in page; a fresh pre-session token in a cookie and in the form.
async fn form(
    State(app): State<AppState>,
    Query(q): Query<Next>,
    extensions: axum::http::Extensions,
) -> Response {
    let token = hex::encode(crate::auth::password::random_bytes(16));
    let mut response = sign_in_page(StatusCode::OK, &token, q.next.as_deref(), "", None);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SIGN_IN_COOKIE,
            &token,
            secure(&app, &extensions),
            Some(3600),
        ),
    );
    response
}

fn sign_in_page(
    status: StatusCode,
    token: &str,
    next: Option<&str>,
    username: &str,
    error: Option<&str>,
) -> Response {
    layout::page_with_status(
        status,
        None,
        "Sign in",
        Nav::None,
        html! {
            h1 { "Sign in to Berth" }
            @if let Some(error) = error {
                p class="error" role="alert" id="sign-in-error" { (error) }
            }
            form method="post" action={ (PREFIX) "/sign-in" } class="panel" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                input type="hidden" name="next" value=(next_page(next));
                label for="username" { "User name" }
                input type="text" id="username" name="username" value=(username)
                    autocomplete="username" required autofocus
                    aria-describedby=[error.map(|_| "sign-in-error")];
                p class="muted" { "Robot accounts sign in as " code { "robot/<name>" } "." }
                label for="password" { "Password or robot secret" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// Signs in: the pre-session token must match its cookie (a form posted from another site
/// carries neither), then the password is checked like every Basic login.
async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: axum::body::Bytes,
) -> Response {
    let fields = parse_form(&body);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    let given = field(CSRF_FIELD);
    let matches = !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
    if cross_site(&headers) || !matches {
        return layout::error_page(
            None,
            &Error::Denied(
                "This sign-in form was not sent from this registry's sign-in page (its \
                 anti-forgery token is missing or wrong). Open the sign-in page and try again."
                    .into(),
            ),
        );
    }
    let username = field("username").trim();
    let next = field("next");
    let facts = request_facts(&app, &extensions);
    match app
        .console
        .sign_in(username, field("password"), &facts)
        .await
    {
        Ok(opened) => {
            let mut response = redirect(&next_page(Some(next)));
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &opened.token, facts.secure_transport, None),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(SIGN_IN_COOKIE, "", facts.secure_transport, Some(0)),
            );
            response
        }
        Err(Error::Unauthorized(_)) => sign_in_page(
            StatusCode::UNAUTHORIZED,
            given,
            Some(next),
            username,
            Some("The user name or password is wrong."),
        ),
        Err(Error::TooManyRequests { message, .. }) => sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            given,
            Some(next),
            username,
            Some(&message),
        ),
        Err(e) => layout::error_page(None, &e),
    }
}

/// Signs out: the session ends on every replica, the cookie is deleted.
async fn sign_out(form: ConsoleForm) -> Response {
    let session = &form.session;
    if let Err(e) = session.app.console.sign_out(session.token()).await {
        return layout::error_page(Some(session), &e);
    }
    let mut response = redirect(&format!("{PREFIX}/sign-in"));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", session.secure(), Some(0)),
    );
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_console_pages() {
        assert_eq!(
            next_page(Some("/console/repositories?prefix=a")),
            "/console/repositories?prefix=a"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/console/sign-out",
            "/v2/",
            "/console/\\evil",
        ] {
            assert_eq!(next_page(Some(bad)), "/console/repositories", "{bad}");
        }
        assert_eq!(next_page(None), "/console/repositories");
    }
}
