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

/// Every value of the `<code>` cells of `css` rows (full digests in the console's tables).
async fn codes_in(browser: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for cell in browser.find_all(&format!("{css} code")).await {
        out.push(cell.text().await.unwrap());
    }
    out
}

/// Chooses `value` in the `<select>` with id `id`.
async fn choose(browser: &Browser, id: &str, value: &str) {
    browser
        .click(&format!("#{id} option[value='{value}']"))
        .await;
}

/// Screenshots the page at the usual width and at a phone's, checks that nothing forces the
/// narrow window to scroll sideways, and runs axe on it.
async fn look_at(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    browser.set_window_size(390, 844).await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await;
    browser.screenshot(&format!("{name}-narrow")).await;
    browser
        .set_window_size(
            crate::support::browser::WINDOW_WIDTH,
            crate::support::browser::WINDOW_HEIGHT,
        )
        .await;
    assert!(
        overflow.as_i64().is_some_and(|px| px <= 0),
        "{name}: the page is {overflow} px wider than a 390 px window"
    );
    browser.check_accessibility(name).await;
}

/// skopeo pushes an image; the repositories page lists it; the image page shows the findings of
/// a real Trivy scan started from the page's own button (the CVE with its fixed version, the
/// planted secret), filtered by severity.
#[tokio::test]
async fn pushed_images_and_their_trivy_findings_are_on_the_pages() {
    use crate::scanning;
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("trivy-cache");
    crate::support::trivy_db::build_trivy_cache(&cache);
    let server = scanning::start(&cache, &scanning::trivy(), &[]);
    let api = crate::support::api::Api::new(&server.base);
    let repo = "console/scanned";
    let digest = scanning::push_image(&server, repo).await;

    let dir = artifacts("images");
    let browser = Browser::start(&dir).await;
    sign_in(&browser, &server, ADMIN_USER, ADMIN_PASSWORD).await;
    browser.wait_for("#repositories", WAIT).await;
    let listed = browser.text("#repositories").await;
    assert!(listed.contains(repo), "{listed}");
    look_at(&browser, "repositories").await;

    browser
        .click(&format!(
            "#repositories a[href='/console/repositories/{repo}']"
        ))
        .await;
    browser.wait_for("#images", WAIT).await;
    let images = browser.text("#images").await;
    assert!(images.contains("v1"), "{images}");
    let pull = browser.page_source().await;
    assert!(
        pull.contains(&format!("docker pull {}/{repo}:v1", server.addr)),
        "no docker pull command"
    );
    look_at(&browser, "repository").await;

    browser
        .click(&format!(
            "#images a[href='/console/repositories/{repo}/-/images/{digest}']"
        ))
        .await;
    browser.wait_for("#layers", WAIT).await;
    // Not scanned yet: the page offers a scan, and its button starts a real one.
    browser
        .click("form[action$='/scan'] button[type=submit]")
        .await;
    // The click returns before the form's POST is answered: wait for the page it leads to, or
    // the first poll may ask before the scan exists.
    browser.wait_for_text("main", "Scan queued", WAIT).await;
    scanning::wait_scanned(&api, repo, &digest).await;
    browser
        .goto(&server.url(&format!("/console/repositories/{repo}/-/images/{digest}")))
        .await;
    let findings = browser
        .wait_for_text("#findings", "CVE-2021-3711", WAIT)
        .await;
    assert!(findings.contains("CRITICAL"), "{findings}");
    assert!(findings.contains("libcrypto1.1"), "{findings}");
    assert!(
        findings.contains("1.1.1l-r0"),
        "the fixed version: {findings}"
    );
    let secrets = browser.text("#secret-findings").await;
    assert!(secrets.contains("aws-access-key-id"), "{secrets}");
    look_at(&browser, "image").await;

    // The severity filter keeps only that severity.
    choose(&browser, "severity", "LOW").await;
    browser
        .click("form:has(#severity) button[type=submit]")
        .await;
    browser
        .wait_for_text("main", "No findings of this severity", WAIT)
        .await;
    assert!(browser
        .current_url()
        .await
        .query()
        .unwrap_or("")
        .contains("severity=LOW"));
    assert!(
        !browser.text("main").await.contains("CVE-2021-3711"),
        "a CRITICAL finding shown under LOW"
    );
    choose(&browser, "severity", "CRITICAL").await;
    browser
        .click("form:has(#severity) button[type=submit]")
        .await;
    browser
        .wait_for_text("#findings", "CVE-2021-3711", WAIT)
        .await;
    browser.close().await;
}

/// The lifecycle editor: a rule expiring all but the three newest previews exactly the three
/// oldest images (by digest, with the rule), saves as the ECR API's GetLifecyclePolicy then
/// returns it, and a lifecycle run expires exactly those. An invalid rule shows its error next
/// to the field and saves nothing.
#[tokio::test]
async fn the_lifecycle_editor_previews_what_a_run_expires_and_refuses_invalid_rules() {
    const KEY: &str = "AKIACONSOLETESTADM01";
    const SECRET: &str = "console/test+admin+secret+0123456789abcd";
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_ACCESS_KEY_ID", KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let api = crate::support::api::Api::new(&server.base);
    let repo = "console/lifecycle";
    let mut digests = Vec::new();
    for i in 0..6 {
        digests.push(api.push_image(repo, &format!("v{i}")).await.digest);
        // Push times are in milliseconds: keep them distinct so "oldest" is one answer.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let oldest: std::collections::BTreeSet<String> = digests[..3].iter().cloned().collect();

    let dir = artifacts("lifecycle");
    let browser = Browser::start(&dir).await;
    sign_in(&browser, &server, ADMIN_USER, ADMIN_PASSWORD).await;
    let editor = server.url(&format!("/console/repositories/{repo}/-/lifecycle"));

    // An invalid rule: the error sits next to its field, and nothing is saved.
    browser.goto(&editor).await;
    browser.wait_for("#rule-0-priority", WAIT).await;
    browser.fill("#rule-0-priority", "1").await;
    choose(&browser, "rule-0-tag-status", "any").await;
    choose(&browser, "rule-0-count-type", "imageCountMoreThan").await;
    browser.fill("#rule-0-count-number", "0").await;
    browser.click("#save").await;
    let error = browser.wait_for("#rule-0-count-number-error", WAIT).await;
    let message = error.text().await.unwrap();
    assert!(message.contains("countNumber"), "{message}");
    let invalid = browser
        .find("#rule-0-count-number")
        .await
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    look_at(&browser, "lifecycle-invalid").await;
    let not_saved = plain_client()
        .get(server.url(&format!("/api/v1/repositories/{repo}/lifecycle-policy")))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        not_saved.status(),
        StatusCode::NOT_FOUND,
        "an invalid rule was saved"
    );

    // A valid rule: the live preview names exactly the three oldest images.
    browser.goto(&editor).await;
    browser.wait_for("#rule-0-priority", WAIT).await;
    browser.fill("#rule-0-priority", "1").await;
    browser
        .fill("#rule-0-description", "keep the newest three")
        .await;
    choose(&browser, "rule-0-tag-status", "any").await;
    choose(&browser, "rule-0-count-type", "imageCountMoreThan").await;
    browser.fill("#rule-0-count-number", "3").await;
    browser.wait_for("#preview", WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    let previewed = loop {
        let shown: std::collections::BTreeSet<String> = codes_in(&browser, "#preview tbody tr")
            .await
            .into_iter()
            .filter(|c| c.starts_with("sha256:"))
            .collect();
        if shown == oldest || std::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        previewed, oldest,
        "the preview names exactly the three oldest images"
    );
    look_at(&browser, "lifecycle-preview").await;

    browser.click("#save").await;
    browser.wait_for("p.notice", WAIT).await;

    // The ECR API (the AWS CLI) returns the saved policy.
    let out = common::aws_cli(&server.base, KEY, SECRET)
        .args([
            "ecr",
            "get-lifecycle-policy",
            "--repository-name",
            repo,
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(answer["lifecyclePolicyText"].as_str().unwrap()).unwrap();
    let rule = &policy["rules"][0];
    assert_eq!(rule["rulePriority"], 1, "{policy}");
    assert_eq!(rule["description"], "keep the newest three", "{policy}");
    assert_eq!(rule["selection"]["tagStatus"], "any", "{policy}");
    assert_eq!(
        rule["selection"]["countType"], "imageCountMoreThan",
        "{policy}"
    );
    assert_eq!(rule["selection"]["countNumber"], 3, "{policy}");
    assert_eq!(rule["action"]["type"], "expire", "{policy}");

    // A lifecycle run expires exactly what the preview named.
    let run = admin_call(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/repositories/{repo}/lifecycle/run"),
        None,
        200,
    )
    .await;
    assert_eq!(run["expiredImageCount"], 3, "{run}");
    for (i, digest) in digests.iter().enumerate() {
        let status = api.head_manifest(repo, digest).await.status().as_u16();
        let expected = if i < 3 { 404 } else { 200 };
        assert_eq!(status, expected, "image v{i}");
    }
    browser.close().await;
}

/// A user whose policy allows one repository sees only that repository, no admin pages, and is
/// refused the other repository's page and forms when forcing them.
#[tokio::test]
async fn a_user_limited_to_one_repository_sees_and_changes_only_that_one() {
    let server = TestServer::start();
    let api = crate::support::api::Api::new(&server.base);
    api.push_image("team-a/app", "v1").await;
    api.push_image("team-b/app", "v1").await;
    create_user(&server, "bob", "bob-password-123").await;
    admin_call(
        &server,
        reqwest::Method::PUT,
        "/api/v1/users/bob/policy",
        Some(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "ecr:*",
                "Resource": format!("arn:aws:ecr:*:*:repository/team-a/*")
            }]
        })),
        204,
    )
    .await;

    let dir = artifacts("limited");
    let browser = Browser::start(&dir).await;
    sign_in(&browser, &server, "bob", "bob-password-123").await;
    browser.wait_for("#repositories", WAIT).await;
    let listed = browser.text("#repositories").await;
    assert!(listed.contains("team-a/app"), "{listed}");
    assert!(!listed.contains("team-b/app"), "{listed}");
    let nav = browser.text("header.top nav").await;
    for admin_only in ["Identity", "Audit log", "Events", "Replication"] {
        assert!(
            !nav.contains(admin_only),
            "{admin_only} shown to a non-admin: {nav}"
        );
    }
    look_at(&browser, "limited-repositories").await;

    // Forcing the other repository's page: refused, with the deny message.
    browser
        .goto(&server.url("/console/repositories/team-b/app"))
        .await;
    let refusal = browser
        .wait_for_text("p.error", "not authorized", WAIT)
        .await;
    assert!(refusal.contains("team-b/app"), "{refusal}");
    browser
        .goto(&server.url("/console/repositories/team-b/app/-/lifecycle"))
        .await;
    browser
        .wait_for_text("p.error", "not authorized", WAIT)
        .await;
    browser.goto(&server.url("/console/users")).await;
    browser
        .wait_for_text("p.error", "not authorized", WAIT)
        .await;

    // Forcing a form (with bob's own valid anti-forgery token): refused, nothing changes.
    browser
        .goto(&server.url("/console/repositories/team-a/app"))
        .await;
    browser.wait_for("#images", WAIT).await;
    let csrf = browser
        .find("form.sign-out input[name=_csrf]")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let token = browser.cookie("berth_session").await.unwrap();
    let forced = plain_client()
        .post(server.url("/console/repositories/team-b/app/-/settings"))
        .header(COOKIE, format!("berth_session={token}"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("setting", "mutability"),
            ("mutability", "IMMUTABLE"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), StatusCode::FORBIDDEN);
    let settings = admin_call(
        &server,
        reqwest::Method::GET,
        "/api/v1/repositories/team-b/app/tag-mutability",
        None,
        200,
    )
    .await;
    assert_eq!(settings["imageTagMutability"], "MUTABLE", "{settings}");
    browser.close().await;
}

/// Every administrator's page renders, stays within a phone's width and passes axe; a new
/// robot's secret is shown once, works on /v2, and no later page shows it again.
#[tokio::test]
async fn admin_pages_pass_axe_and_a_new_robot_secret_is_shown_once() {
    let server = TestServer::start();
    let api = crate::support::api::Api::new(&server.base);
    api.push_image("tour/app", "v1").await;
    let dir = artifacts("admin-pages");
    let browser = Browser::start(&dir).await;
    sign_in(&browser, &server, ADMIN_USER, ADMIN_PASSWORD).await;

    let pages = [
        ("pull-through", "/console/pull-through", "#create-rule"),
        ("templates", "/console/templates", "#create-template"),
        ("scanning", "/console/scanning", "#put-scanning"),
        ("replication", "/console/replication", "#replication-counts"),
        ("events", "/console/events", "#create-event-rule"),
        ("users", "/console/users", "#users"),
        ("user", "/console/users/admin", "#change-password"),
        ("groups", "/console/groups", "#create-group"),
        ("robots", "/console/robots", "#create-robots"),
        ("audit", "/console/audit", "#audit"),
        (
            "repository-policy",
            "/console/repositories/tour/app/-/policy",
            "#policy-text",
        ),
        (
            "lifecycle-editor",
            "/console/repositories/tour/app/-/lifecycle",
            "#lifecycle-form",
        ),
    ];
    for (name, path, ready) in pages {
        browser.goto(&server.url(path)).await;
        browser.wait_for(ready, WAIT).await;
        look_at(&browser, name).await;
    }

    // The audit log, filtered by action, shows the console's own sign-in's neighbours: the
    // operations this test ran, each with the console session's principal.
    browser
        .goto(&server.url("/console/audit?action=berth%3AListUsers"))
        .await;
    let audit = browser
        .wait_for_text("#audit", "berth:ListUsers", WAIT)
        .await;
    assert!(!audit.contains("ecr:DescribeRepositories"), "{audit}");

    // A new robot's secret, once.
    browser.goto(&server.url("/console/robots")).await;
    browser.wait_for("#create-robots", WAIT).await;
    browser.fill("#create-robots #name", "ci").await;
    browser.click("#create-robots button[type=submit]").await;
    let shown = browser.wait_for("#new-secret", WAIT).await;
    look_at(&browser, "robot-secret").await;
    let mut shown_codes = Vec::new();
    for code in shown
        .find_all(fantoccini::Locator::Css("code"))
        .await
        .unwrap()
    {
        shown_codes.push(code.text().await.unwrap());
    }
    assert!(
        shown_codes.contains(&"robot/ci".to_owned()),
        "{shown_codes:?}"
    );
    let secret = shown_codes
        .into_iter()
        .find(|c| c != "robot/ci")
        .expect("the secret next to the login name");
    assert!(secret.len() >= 20, "{secret:?}");
    let v2 = plain_client()
        .get(server.url("/v2/"))
        .basic_auth("robot/ci", Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), StatusCode::OK, "the shown secret works");
    for path in ["/console/robots", "/console/robots/ci"] {
        browser.goto(&server.url(path)).await;
        browser.wait_for("main h1", WAIT).await;
        let page = browser.page_source().await;
        assert!(!page.contains(&secret), "{path} shows the secret again");
        assert!(!page.contains("new-secret"), "{path}");
    }
    browser.close().await;
}

/// Signs in through the sign-in form without a browser; returns the session cookie's value.
async fn http_sign_in(server: &TestServer, user: &str, password: &str) -> String {
    let client = plain_client();
    let resp = client
        .get(server.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    let cookie = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    };
    let pre = cookie(&resp, "berth_sign_in").expect("the sign-in form's cookie");
    let page = resp.text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let at = page.find(marker).expect("a _csrf field") + marker.len();
    let csrf = page[at..].split('"').next().unwrap().to_owned();
    let resp = client
        .post(server.url("/console/sign-in"))
        .header(COOKIE, format!("berth_sign_in={pre}"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    cookie(&resp, "berth_session")
        .unwrap_or_else(|| panic!("no session after signing in: {}", resp.status()))
}

/// The repository page lists an index with its children's platforms, and an image with its
/// referrers named by what they are; neither shows on another image's row.
#[tokio::test]
async fn the_repository_page_shows_index_platforms_and_referrers() {
    use crate::support::api::{OCI_INDEX, OCI_MANIFEST};
    let server = TestServer::start();
    let api = crate::support::api::Api::new(&server.base);
    let repo = "console/multi";
    let amd64 = api.push_image(repo, "").await;
    let arm64 = api.push_image(repo, "").await;
    let descriptor = |digest: &str, size: usize, arch: &str, variant: Option<&str>| {
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(&amd64.digest, amd64.manifest.len(), "amd64", None),
            descriptor(&arm64.digest, arm64.manifest.len(), "arm64", Some("v8")),
        ]
    }))
    .unwrap();
    let index_digest = api.push_manifest(repo, "multi", OCI_INDEX, &index).await;
    let sbom = api
        .push_image_with(
            repo,
            "",
            1,
            json!({
                "artifactType": "application/spdx+json",
                "subject": {"mediaType": OCI_MANIFEST, "digest": amd64.digest, "size": amd64.manifest.len()}
            }),
        )
        .await;

    let token = http_sign_in(&server, ADMIN_USER, ADMIN_PASSWORD).await;
    let (status, _, page) =
        console_get(&server, &format!("/console/repositories/{repo}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // The image's own row: its second cell links to it (other rows may link to it too, as
    // "refers to" or as a referrer).
    let row_of = |digest: &str| {
        let link = format!("<a href=\"/console/repositories/{repo}/-/images/{digest}\"");
        page.split("<tr>")
            .map(|row| row.split("</tr>").next().unwrap())
            .find(|row| {
                row.split("<td>")
                    .nth(2)
                    .is_some_and(|cell| cell.starts_with(&link))
            })
            .unwrap_or_else(|| panic!("no row for {digest} in {page}"))
            .to_owned()
    };
    let index_row = row_of(&index_digest);
    assert!(index_row.contains("multi"), "{index_row}");
    assert!(index_row.contains("linux/amd64"), "{index_row}");
    assert!(index_row.contains("linux/arm64/v8"), "{index_row}");
    let amd64_row = row_of(&amd64.digest);
    assert!(!amd64_row.contains("linux/arm64"), "{amd64_row}");
    assert!(
        amd64_row.contains(&format!("/-/images/{}\"", sbom.digest))
            && amd64_row.contains("SBOM (application/spdx+json)"),
        "the SBOM is a referrer of the amd64 image: {amd64_row}"
    );
    let arm64_row = row_of(&arm64.digest);
    assert!(!arm64_row.contains("SBOM"), "{arm64_row}");
}
