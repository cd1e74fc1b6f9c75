//! The console's page shell (landmarks, navigation, the sign-out form) and the small pieces
//! every page shows the same way: times (UTC in the page, the viewer's zone after the script
//! runs, UTC on hover), sizes, digests, copy buttons, notices, field errors and error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{Session, CSRF_FIELD, PREFIX};
use crate::error::Error;

/// The stylesheet, embedded at build time.
pub const CSS: &str = include_str!("assets/console.css");
/// The script (progressive enhancement only), embedded at build time.
pub const JS: &str = include_str!("assets/console.js");

/// The navigation's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Repositories,
    PullThrough,
    Templates,
    Scanning,
    Replication,
    Events,
    Identity,
    Audit,
    None,
}

/// (section, path, label, administrators only)
const SECTIONS: &[(Nav, &str, &str, bool)] = &[
    (
        Nav::Repositories,
        "/console/repositories",
        "Repositories",
        false,
    ),
    (
        Nav::PullThrough,
        "/console/pull-through",
        "Pull-through",
        false,
    ),
    (Nav::Templates, "/console/templates", "Templates", false),
    (Nav::Scanning, "/console/scanning", "Scanning", false),
    (
        Nav::Replication,
        "/console/replication",
        "Replication",
        true,
    ),
    (Nav::Events, "/console/events", "Events", true),
    (Nav::Identity, "/console/users", "Identity", true),
    (Nav::Audit, "/console/audit", "Audit log", true),
];

/// A whole page for a signed-in session: 200 with the page's HTML.
pub fn page(session: &Session, title: &str, nav: Nav, body: Markup) -> Response {
    page_with_status(StatusCode::OK, Some(session), title, nav, body)
}

/// A whole page with `status`; without a session, the shell has no navigation.
pub fn page_with_status(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    nav: Nav,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Berth" }
                link rel="stylesheet" href={ (PREFIX) "/assets/console.css?v=" (env!("CARGO_PKG_VERSION")) };
                script src={ (PREFIX) "/assets/console.js?v=" (env!("CARGO_PKG_VERSION")) } defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href={ (PREFIX) "/repositories" } { "Berth" }
                    @if let Some(s) = session {
                        nav aria-label="Sections" {
                            ul {
                                @for (section, path, label, admin_only) in SECTIONS {
                                    @if !admin_only || s.admin {
                                        li {
                                            @if *section == nav {
                                                a href=(path) aria-current="page" { (label) }
                                            } @else {
                                                a href=(path) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        form class="sign-out" method="post" action={ (PREFIX) "/sign-out" } {
                            (csrf(s))
                            span class="who" { "Signed in as " strong { (s.who()) } }
                            " "
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// The hidden field that carries the session's anti-forgery token in a form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// The page for an error: its status, and a message a person can act on (a refusal names the
/// action, the resource and the deciding statement, as every door's does).
pub fn error_page(session: Option<&Session>, error: &Error) -> Response {
    let (status, _) = crate::http::error::status_and_code(error);
    if matches!(error, Error::Internal(_)) {
        tracing::error!(error = %error, "console request failed");
    }
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_client_error() => "Cannot do that",
        _ => "Something went wrong",
    };
    page_with_status(
        status,
        session,
        title,
        Nav::None,
        html! {
            h1 { (title) }
            p class="error" role="alert" { (error.message()) }
            p { a href={ (PREFIX) "/repositories" } { "Back to repositories" } }
        },
    )
}

/// A time from Unix milliseconds: UTC in the page (and on hover), the viewer's time zone once
/// the script has run.
pub fn time_ms(ms: i64) -> Markup {
    let Some(at) = chrono::DateTime::from_timestamp_millis(ms) else {
        return html! { "—" };
    };
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) title=(utc) { (utc) }
    }
}

/// A time from an ECR timestamp (seconds, fractional).
pub fn time_secs(secs: f64) -> Markup {
    time_ms((secs * 1000.0).round() as i64)
}

/// An optional time; "never" when absent.
pub fn maybe_time_secs(secs: Option<f64>, never: &str) -> Markup {
    match secs {
        Some(s) => time_secs(s),
        None => html! { span class="muted" { (never) } },
    }
}

/// A size in bytes, in binary units.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A digest shortened for tables (`sha256:0123456789ab`), whole on hover.
pub fn short_digest(digest: &str) -> Markup {
    let short = match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => digest.chars().take(19).collect(),
    };
    html! { code title=(digest) { (short) } }
}

/// A command shown with a button that copies it (the button appears with the script).
pub fn copyable(label: &str, text: &str) -> Markup {
    html! {
        div class="copy" {
            span class="copy-label" { (label) }
            code { (text) }
            button type="button" class="copy-button" data-copy=(text) aria-label={ "Copy " (label) " command" } hidden { "Copy" }
        }
    }
}

/// A notice after a completed action (shown as a status message to screen readers).
pub fn notice(text: &str) -> Markup {
    html! { p class="notice" role="status" { (text) } }
}

/// An error shown next to the form field it names, linked to it for screen readers by
/// `aria-describedby="<field>-error"`.
pub fn field_error(field: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p class="field-error" id={ (field) "-error" } role="alert" { (message) }
        }
    }
}

/// Pre-escaped markup (already safe HTML built by maud or constants).
pub fn raw(html: String) -> Markup {
    PreEscaped(html)
}

/// The HTTP status of an error (a re-rendered form answers with its error's status).
pub fn status_of(error: &Error) -> StatusCode {
    crate::http::error::status_and_code(error).0
}

/// A refused form: the field the operation's message names, and the message.
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl Invalid {
    /// The error `error` of a form whose fields are named in messages by `members` (request
    /// member, form field; the first member the message names wins, `default` otherwise).
    pub fn of(error: &Error, members: &[(&str, &'static str)], default: &'static str) -> Invalid {
        let message = error.message();
        let field = members
            .iter()
            .find(|(member, _)| message.contains(member))
            .map_or(default, |(_, field)| field);
        Invalid {
            field,
            message,
            status: status_of(error),
        }
    }

    /// The message when it is about `field`.
    pub fn on(invalid: Option<&Invalid>, field: &str) -> Option<String> {
        invalid
            .filter(|i| i.field == field)
            .map(|i| i.message.clone())
    }
}

/// A labelled input (`id` = `name`) with its error next to it, linked for screen readers.
pub fn input(kind: &str, name: &str, label: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        label for=(name) { (label) }
        input type=(kind) id=(name) name=(name) value=(value)
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| format!("{name}-error"))];
        (field_error(name, error))
    }
}

/// A labelled text area (`id` = `name`) with its error next to it.
pub fn textarea(name: &str, label: &str, value: &str, error: Option<&str>) -> Markup {
    html! {
        label for=(name) { (label) }
        textarea id=(name) name=(name) class="code" rows="8"
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| format!("{name}-error"))] { (value) }
        (field_error(name, error))
    }
}

/// A small navigation between sibling pages (`links`: path, label), the current one marked.
pub fn subnav(label: &str, links: &[(&str, &str)], current: &str) -> Markup {
    html! {
        nav class="subnav" aria-label=(label) {
            ul {
                @for (path, text) in links {
                    li {
                        @if *path == current {
                            a href=(path) aria-current="page" { (text) }
                        } @else {
                            a href=(path) { (text) }
                        }
                    }
                }
            }
        }
    }
}

/// A one-time secret, shown on the page that answers its creation and never again.
pub fn new_secret(title: &str, pairs: &[(&str, &str)]) -> Markup {
    html! {
        section id="new-secret" class="panel secret" aria-labelledby="new-secret-title" {
            h2 id="new-secret-title" { (title) }
            p role="status" { strong { "Copy it now: it is shown only this once." } }
            @for (label, text) in pairs {
                (copyable(label, text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn times_carry_utc_for_the_script_and_the_hover() {
        let t = time_ms(1_700_000_000_000).into_string();
        assert!(t.contains("datetime=\"2023-11-14T22:13:20.000Z\""), "{t}");
        assert!(t.contains("title=\"2023-11-14 22:13:20 UTC\""), "{t}");
    }

    #[test]
    fn text_is_escaped() {
        let m = short_digest("<script>").into_string();
        assert!(!m.contains("<script>"), "{m}");
    }
}
