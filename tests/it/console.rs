//! The web console, driven in a real Chromium as a person would use it (support/browser.rs),
//! with every page checked for accessibility by axe-core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Form, Router};

use crate::support::browser::{triage, Browser, WAIT};

const GOOD_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Harness: good page</title></head>
<body>
<main>
<h1>Search</h1>
<form method="post" action="/submit">
  <label for="q">Repository name</label>
  <input id="q" name="q" type="text" value="placeholder">
  <button type="submit">Search</button>
</form>
</main>
</body>
</html>"#;

/// An input with no label: axe's `label` rule (critical).
const BAD_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Harness: bad page</title></head>
<body>
<main>
<h1>Search</h1>
<form method="post" action="/submit"><input id="q" name="q" type="text"></form>
</main>
</body>
</html>"#;

#[derive(serde::Deserialize)]
struct Submitted {
    q: String,
}

/// A two-page site on loopback that records what its form posts.
async fn serve_fixture() -> (String, Arc<Mutex<Vec<String>>>) {
    let posted = Arc::new(Mutex::new(Vec::new()));
    let seen = posted.clone();
    let app = Router::new()
        .route(
            "/good",
            get(|| async {
                (
                    [(
                        "set-cookie",
                        "harness=good-visited; Path=/; HttpOnly; SameSite=Strict",
                    )],
                    Html(GOOD_PAGE),
                )
                    .into_response()
            }),
        )
        .route("/bad", get(|| async { Html(BAD_PAGE) }))
        .route(
            "/submit",
            axum::routing::post(move |Form(form): Form<Submitted>| async move {
                seen.lock().unwrap().push(form.q.clone());
                Html(format!(
                    "<!doctype html><html lang=\"en\"><head><title>Received</title></head>\
                     <body><main><h1>Received</h1><p id=\"received\">{}</p></main></body></html>",
                    form.q.replace('&', "&amp;").replace('<', "&lt;")
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, posted)
}

/// The harness itself, on fixed pages: navigation, typing, submitting, cookies, scripts,
/// screenshots, and axe passing a good page and catching a bad one.
#[tokio::test]
async fn browser_harness_drives_chromium_and_runs_axe() {
    let artifacts = tempfile::TempDir::new().unwrap();
    let (base, posted) = serve_fixture().await;
    let browser = Browser::start(artifacts.path()).await;

    browser.goto(&format!("{base}/good")).await;
    assert_eq!(browser.title().await, "Harness: good page");
    assert_eq!(browser.text("h1").await, "Search");
    assert!(browser.page_source().await.contains(r#"<label for="q">"#));
    assert_eq!(
        browser.cookie("harness").await.as_deref(),
        Some("good-visited")
    );
    let cookie = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c.name() == "harness")
        .unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    // HttpOnly keeps it from the page's scripts while WebDriver still sees it.
    let from_js = browser.execute("return document.cookie;", vec![]).await;
    assert_eq!(from_js, serde_json::json!(""));

    let lesser = browser.check_accessibility("harness good page").await;
    assert!(lesser.is_empty(), "{lesser:?}");

    browser.fill("#q", "team/app").await;
    browser.click("button[type=submit]").await;
    let shown = browser.wait_for_text("#received", "team/app", WAIT).await;
    assert_eq!(shown, "team/app");
    assert_eq!(browser.current_url().await.path(), "/submit");
    assert_eq!(*posted.lock().unwrap(), ["team/app"]);

    browser.set_window_size(390, 844).await;
    let width = browser.execute("return window.innerWidth;", vec![]).await;
    assert!(width.as_u64().is_some_and(|w| w <= 390), "{width}");
    let png = browser.screenshot("received-narrow").await;
    assert_eq!(png, artifacts.path().join("received-narrow.png"));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    browser.goto(&format!("{base}/bad")).await;
    browser.wait_for("#q", Duration::from_secs(5)).await;
    let violations = browser.axe_violations().await;
    let label = violations.iter().find(|v| v.id == "label");
    let label = label.unwrap_or_else(|| panic!("axe missed the unlabelled input: {violations:?}"));
    assert!(label.is_blocking(), "{label}");
    assert_eq!(label.targets, ["#q"]);
    let report = triage("harness bad page", violations).unwrap_err();
    assert!(report.contains("label (critical)"), "{report}");

    browser.close().await;
}

// --- the console itself -------------------------------------------------------------------------

use crate::support::common::{self, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use reqwest::header::{COOKIE, LOCATION, ORIGIN};
use reqwest::StatusCode;
use serde_json::json;

/// Where a console test keeps its screenshots: `$TMPDIR/berth-console/<stack>/<test>`, kept after
/// the test so a person can look at the pages.
fn artifacts(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("berth-console")
        .join(common::stack())
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client that follows no redirects (the console answers 303s worth asserting).
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Calls the admin REST API as the bootstrap admin; panics unless it answers `expected`.
async fn admin_call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    expected: u16,
) -> serde_json::Value {
    let mut rb = plain_client()
        .request(method.clone(), server.url(path))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD));
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, expected, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

async fn create_user(server: &TestServer, name: &str, password: &str) {
    admin_call(
        server,
        reqwest::Method::POST,
        "/api/v1/users",
        Some(json!({"name": name, "password": password})),
        201,
    )
    .await;
}

/// Signs in through the sign-in page as a person does; returns the session cookie's value.
async fn sign_in(browser: &Browser, server: &TestServer, user: &str, password: &str) -> String {
    browser.goto(&server.url("/console/")).await;
    browser.wait_for("#username", WAIT).await;
    assert_eq!(browser.current_url().await.path(), "/console/sign-in");
    browser.fill("#username", user).await;
    browser.fill("#password", password).await;
    browser.click("form.panel button[type=submit]").await;
    browser.wait_for("form.sign-out", WAIT).await;
    browser
        .cookie("berth_session")
        .await
        .expect("a session cookie after signing in")
}

/// GET `path` of the console with the session cookie `token`: (status, Location, body).
async fn console_get(server: &TestServer, path: &str, token: &str) -> (StatusCode, String, String) {
    let resp = plain_client()
        .get(server.url(path))
        .header(COOKIE, format!("berth_session={token}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// Whether `token` is a live session: the repositories page answers 200 rather than sending the
/// browser to sign in.
async fn session_live(server: &TestServer, token: &str) -> bool {
    let (status, location, _) = console_get(server, "/console/repositories", token).await;
    match status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert!(location.starts_with("/console/sign-in"), "{location}");
            false
        }
        other => panic!("unexpected {other}"),
    }
}

/// Polls until `token` stops being a live session, for at most the 5-second rule (and a little
/// for the request itself); panics if it is still live after that.
async fn assert_session_ends(server: &TestServer, token: &str, why: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while session_live(server, token).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the session still works 6 s after {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves one page on another origin whose form posts itself to `action` on load, as a
/// malicious site would (no anti-forgery token: it cannot read one).
async fn serve_cross_site_form(action: String, fields: Vec<(&'static str, String)>) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{v}">"#))
        .collect();
    let page = format!(
        r#"<!doctype html><html lang="en"><head><title>Win a prize</title></head><body>
<form id="f" method="post" action="{action}">{inputs}</form>
<script>document.getElementById("f").submit();</script></body></html>"#
    );
    let app = Router::new().route("/", get(move || async move { Html(page).into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

/// Sign-in sets an HttpOnly, SameSite=Strict cookie that opens the console and no other door;
/// a form posted from another site is refused; signing out, a password change and deleting the
/// user each end the session (the old cookie is refused afterwards).
#[tokio::test]
async fn console_sessions_open_only_the_console_and_end_when_they_should() {
    let server = TestServer::start();
    let dir = artifacts("sessions");
    let browser = Browser::start(&dir).await;
    create_user(&server, "alice", "alice-password-1").await;

    // Signing in with a wrong password shows the error on the sign-in page.
    browser.goto(&server.url("/console/sign-in")).await;
    browser.fill("#username", "alice").await;
    browser.fill("#password", "wrong-password").await;
    browser.click("form.panel button[type=submit]").await;
    let error = browser.wait_for_text("#sign-in-error", "wrong", WAIT).await;
    assert!(error.contains("user name or password is wrong"), "{error}");
    assert!(browser.cookie("berth_session").await.is_none());
    browser.screenshot("sign-in-error").await;
    browser.check_accessibility("sign-in page").await;

    let token = sign_in(&browser, &server, "alice", "alice-password-1").await;
    assert_eq!(browser.current_url().await.path(), "/console/repositories");
    let cookie = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c.name() == "berth_session")
        .unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    assert_eq!(browser.text(".who strong").await, "alice");

    // The session opens neither /v2 nor the admin API nor the ECR API.
    let client = plain_client();
    let with_cookie =
        |rb: reqwest::RequestBuilder| rb.header(COOKIE, format!("berth_session={token}"));
    let v2 = with_cookie(client.get(server.url("/v2/")))
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), StatusCode::UNAUTHORIZED);
    let api = with_cookie(client.get(server.url("/api/v1/repositories")))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let ecr = with_cookie(
        client
            .post(server.url("/"))
            .header(
                "x-amz-target",
                "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            )
            .header("content-type", "application/x-amz-json-1.1")
            .body("{}"),
    )
    .send()
    .await
    .unwrap();
    assert!(ecr.status().is_client_error(), "{}", ecr.status());
    // Nor does the session token work as a Bearer token or a Basic password.
    let bearer = client
        .get(server.url("/v2/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);

    // Forms without the anti-forgery token, or from another origin, are refused.
    let no_token = with_cookie(client.post(server.url("/console/sign-out")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let csrf = browser
        .find("form.sign-out input[name=_csrf]")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let other_origin = with_cookie(client.post(server.url("/console/sign-out")))
        .header(ORIGIN, "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), StatusCode::FORBIDDEN);
    // A real cross-site page in the same browser, posting the sign-out form on load.
    let attacker = serve_cross_site_form(server.url("/console/sign-out"), vec![]).await;
    browser.goto(&attacker).await;
    let refusal = browser.wait_for_text("p.error", "anti-forgery", WAIT).await;
    assert!(
        refusal.contains("not sent from a console page"),
        "{refusal}"
    );
    assert!(
        session_live(&server, &token).await,
        "the forged sign-out did nothing"
    );

    // Signing out ends the session; its cookie is refused afterwards.
    browser.goto(&server.url("/console/repositories")).await;
    browser.click("form.sign-out button[type=submit]").await;
    browser.wait_for("#username", WAIT).await;
    assert!(!session_live(&server, &token).await, "signed out");

    // A password change ends the session within the 5-second rule.
    let token = sign_in(&browser, &server, "alice", "alice-password-1").await;
    assert!(session_live(&server, &token).await);
    admin_call(
        &server,
        reqwest::Method::PUT,
        "/api/v1/users/alice/password",
        Some(json!({"password": "alice-password-2"})),
        204,
    )
    .await;
    assert_session_ends(&server, &token, "the password change").await;
    browser.goto(&server.url("/console/repositories")).await;
    browser.wait_for("#username", WAIT).await;

    // Deleting the user ends the session too.
    let token = sign_in(&browser, &server, "alice", "alice-password-2").await;
    admin_call(
        &server,
        reqwest::Method::DELETE,
        "/api/v1/users/alice",
        None,
        204,
    )
    .await;
    assert_session_ends(&server, &token, "deleting the user").await;

    // Failed sign-ins are limited like every login.
    let mut limited = false;
    for _ in 0..30 {
        browser.goto(&server.url("/console/sign-in")).await;
        browser.fill("#username", "nobody").await;
        browser.fill("#password", "wrong-password").await;
        browser.click("form.panel button[type=submit]").await;
        let text = browser
            .wait_for("#sign-in-error", WAIT)
            .await
            .text()
            .await
            .unwrap();
        if text.contains("too many failed logins") {
            limited = true;
            break;
        }
    }
    assert!(limited, "the failed-login limiter never answered");
    browser.close().await;
}
