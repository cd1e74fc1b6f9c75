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
