//! A real headless Chromium for the console tests, driven over WebDriver (Debian's chromedriver),
//! with axe-core to check each page's accessibility.
//!
//! Helpers panic with what was looked for and where, as the other support modules do: a test
//! reads as the steps a person takes, and a failure names the step.
#![allow(dead_code)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::common::free_port;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The window every session starts with: wide enough for the console's desktop layout.
pub const WINDOW_WIDTH: u32 = 1280;
pub const WINDOW_HEIGHT: u32 = 900;

/// What a `wait_for*` gives a page by default: a debug-built server on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long chromedriver may take to answer `/status` after it starts.
const DRIVER_READY: Duration = Duration::from_secs(20);

/// The WCAG 2.0 and 2.1 levels A and AA, which the console must meet.
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// How many of a violation's elements a report names (the rest are counted).
const AXE_TARGETS_SHOWN: usize = 5;

/// A headless Chromium session and the chromedriver that runs it. Call [`Browser::close`] at
/// the end of a test; on a panic, drop kills chromedriver and the Chromium it started.
pub struct Browser {
    client: Client,
    /// Taken by drop.
    driver: Option<Child>,
    artifacts: PathBuf,
}

/// One axe-core rule that some elements of a page break.
#[derive(Debug, Clone)]
pub struct AxeViolation {
    /// The rule, e.g. `label` or `color-contrast`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    pub help: String,
    pub help_url: String,
    /// The CSS selectors of the first few elements that break the rule.
    pub targets: Vec<String>,
    /// How many elements break it.
    pub nodes: usize,
}

impl AxeViolation {
    /// Whether the console may not ship with it.
    pub fn is_blocking(&self) -> bool {
        matches!(self.impact.as_str(), "serious" | "critical")
    }
}

impl std::fmt::Display for AxeViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} at {}",
            self.id,
            self.impact,
            self.help,
            self.targets.join(", ")
        )?;
        if self.nodes > self.targets.len() {
            write!(f, " and {} more", self.nodes - self.targets.len())?;
        }
        write!(f, " <{}>", self.help_url)
    }
}

/// Splits `violations` into the blocking ones (`Err`, a report naming each) and the rest
/// (`Ok`, to log).
pub fn triage(page_name: &str, violations: Vec<AxeViolation>) -> Result<Vec<AxeViolation>, String> {
    let (blocking, lesser): (Vec<_>, Vec<_>) =
        violations.into_iter().partition(AxeViolation::is_blocking);
    if blocking.is_empty() {
        return Ok(lesser);
    }
    let mut report = format!(
        "{page_name}: {} serious or critical accessibility violation(s) (axe-core, WCAG 2.1 A/AA):",
        blocking.len()
    );
    for v in &blocking {
        report.push_str("\n  - ");
        report.push_str(&v.to_string());
    }
    Err(report)
}

/// Where `npm ci --prefix tests/browser` (tests/install-clients.sh) puts axe-core.
pub fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js")
}

fn require_installed(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the browser tests need Debian's `{package}` package \
         (run `bash tests/install-clients.sh` as root)"
    );
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session whose
    /// profile, chromedriver log and screenshots go under `artifacts_dir`.
    pub async fn start(artifacts_dir: &Path) -> Browser {
        require_installed(CHROMIUM, "chromium");
        require_installed(CHROMEDRIVER, "chromium-driver");
        std::fs::create_dir_all(artifacts_dir).expect("create the browser artifacts dir");
        // free_port's port may be taken again before chromedriver binds it; a lost race shows
        // as chromedriver exiting at once, and another port is tried.
        let mut attempt = 0;
        let (driver, port, driver_log) = loop {
            attempt += 1;
            let port = free_port();
            let log = artifacts_dir.join(format!("chromedriver-{port}.log"));
            match spawn_driver(port, &log).await {
                Ok(driver) => break (driver, port, log),
                Err(why) if attempt < 3 => eprintln!("chromedriver on port {port}: {why}"),
                Err(why) => panic!("chromedriver did not start: {why}"),
            }
        };
        let profile = artifacts_dir.join(format!("chromium-profile-{port}"));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Tests run as root in containers, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    // No GPU on the test machines.
                    "--disable-gpu",
                    // Container /dev/shm is often 64 MiB, too small for Chromium's renderers.
                    "--disable-dev-shm-usage",
                    format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"),
                    // A profile of its own: no cookie or cache from another test's session.
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // Plain HTTP to loopback: no TLS connector (see Cargo.toml).
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => client,
            Err(e) => {
                kill_group(driver);
                panic!(
                    "no Chromium session from chromedriver: {e}\n{}",
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                );
            }
        };
        Browser {
            client,
            driver: Some(driver),
            artifacts: artifacts_dir.to_path_buf(),
        }
    }

    /// The fantoccini client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// Opens `url` and returns once the page has loaded (WebDriver's navigation waits for it).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn current_url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    pub async fn page_source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    pub async fn title(&self) -> String {
        self.client.title().await.expect("page title")
    }

    /// The first element matching `css`, which must be on the page now.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element `{css}` on {}: {e}", self.where_am_i().await),
        }
    }

    /// Every element matching `css` (none is fine).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find all `{css}`: {e}"))
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            panic!("click `{css}` on {}: {e}", self.where_am_i().await);
        }
    }

    /// Replaces the value of the field `css` with `text`, typed as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of `{css}`: {e}"))
    }

    /// Waits until an element matches `css` (pages that change after a request), at most
    /// `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let result = self
            .client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await;
        match result {
            Ok(element) => element,
            Err(e) => panic!(
                "no element `{css}` within {timeout:?} on {}: {e}",
                self.where_am_i().await
            ),
        }
    }

    /// Waits until the first element matching `css` contains `needle` in its text, at most
    /// `timeout`; returns that text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                // The element may be replaced between find and text: look again.
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last = Some(text);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{css}` did not show {needle:?} within {timeout:?} on {} (last text: {last:?})",
                    self.where_am_i().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the viewport as `<artifacts_dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the window to {width}x{height}: {e}"));
    }

    /// The cookies the current page's origin sees (HttpOnly ones too).
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.client.get_all_cookies().await.expect("cookies")
    }

    /// The value of the cookie `name`, if the current page's origin has one.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .await
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// Runs `js` as the body of a function in the page (its `arguments` are `args`) and returns
    /// what it returns.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(js, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{js}"))
    }

    /// Like [`Browser::execute`], for a script that reports by calling its last argument.
    pub async fn execute_async(&self, js: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(js, args)
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{js}"))
    }

    /// Runs axe-core's WCAG 2.1 A/AA rules on the current page and returns every violation.
    pub async fn axe_violations(&self) -> Vec<AxeViolation> {
        // WebDriver scripts are not subject to the page's Content-Security-Policy, so axe is
        // evaluated here rather than added as a <script> the console's CSP would refuse.
        let loaded = self
            .execute("return typeof window.axe === 'object';", vec![])
            .await;
        if loaded != json!(true) {
            let path = axe_path();
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: run `bash tests/install-clients.sh` (npm ci in tests/browser)",
                    path.display()
                )
            });
            self.execute(&source, vec![]).await;
            let loaded = self
                .execute("return typeof window.axe === 'object';", vec![])
                .await;
            assert_eq!(loaded, json!(true), "axe-core did not load into the page");
        }
        let result = self
            .execute_async(
                r#"
                const [tags, shown, done] = arguments;
                axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
                  .then(r => done({violations: r.violations.map(v => ({
                    id: v.id,
                    impact: v.impact || 'unknown',
                    help: v.help,
                    helpUrl: v.helpUrl,
                    nodes: v.nodes.length,
                    targets: v.nodes.slice(0, shown).map(n => n.target.map(String).join(' >>> ')),
                  }))}))
                  .catch(e => done({error: String(e && e.stack || e)}));
                "#,
                vec![json!(AXE_TAGS), json!(AXE_TARGETS_SHOWN)],
            )
            .await;
        if let Some(error) = result.get("error") {
            panic!("axe-core failed on {}: {error}", self.where_am_i().await);
        }
        let str_of = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        result["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("axe-core answered {result}"))
            .iter()
            .map(|v| AxeViolation {
                id: str_of(v, "id"),
                impact: str_of(v, "impact"),
                help: str_of(v, "help"),
                help_url: str_of(v, "helpUrl"),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                nodes: v["nodes"].as_u64().unwrap_or_default() as usize,
            })
            .collect()
    }

    /// Fails the test if the current page has a serious or critical WCAG 2.1 A/AA violation,
    /// naming each; returns (and prints) the lesser ones.
    pub async fn check_accessibility(&self, page_name: &str) -> Vec<AxeViolation> {
        let violations = self.axe_violations().await;
        match triage(page_name, violations) {
            Ok(lesser) => {
                for v in &lesser {
                    eprintln!("{page_name}: accessibility (not blocking): {v}");
                }
                lesser
            }
            Err(report) => panic!("{report}\n(on {})", self.where_am_i().await),
        }
    }

    /// Ends the WebDriver session, which quits Chromium; drop then stops chromedriver.
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the WebDriver session: {e}");
        }
    }

    /// The page a failure happened on, for panic messages (never panics itself).
    async fn where_am_i(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(current URL unknown: {e})"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            kill_group(driver);
        }
    }
}

/// Starts chromedriver on `port`, logging to `log`, and waits until it is ready.
async fn spawn_driver(port: u16, log: &Path) -> Result<Child, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so that drop kills the Chromium processes it started too
        // (killing chromedriver alone leaves them running).
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawn {CHROMEDRIVER}: {e}"))?;
    let status_url = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client");
    let deadline = Instant::now() + DRIVER_READY;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!(
                "exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        // The answer must be chromedriver's own (`value.ready`), not another process's that
        // took the port.
        if let Ok(resp) = http.get(&status_url).send().await {
            if let Ok(body) = resp.json::<Value>().await {
                if body["value"]["ready"] == json!(true) {
                    return Ok(driver);
                }
            }
        }
        if Instant::now() >= deadline {
            kill_group(driver);
            return Err(format!(
                "not ready within {DRIVER_READY:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills chromedriver and every process in its group (the Chromium it started), and reaps it.
fn kill_group(mut driver: Child) {
    // SAFETY: signals the process group our own, not yet reaped, child leads.
    unsafe { libc::kill(-(driver.id() as libc::pid_t), libc::SIGKILL) };
    let _ = driver.kill();
    let _ = driver.wait();
}
