//! Faults: PostgreSQL or S3 unreachable while Berth runs. Requests that need the missing
//! dependency answer 503 with an OCI `UNAVAILABLE` error naming it, `/readyz` is 503, nothing
//! half-done becomes visible, and Berth recovers by itself (no restart) once the dependency is
//! back. These tests always run on the pg-s3 stack, whatever `BERTH_TEST_STACK` says.
//!
//! The shared PostgreSQL on 5432 is never stopped: a replica reaches it through [`TcpProxy`],
//! which the test cuts and restores. The S3 server is private to the test and is killed for real.

use crate::support::{api, common};

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::*;
use common::TestServer;
use reqwest::Method;
use tokio::task::AbortHandle;

const FAST_POOL: (&str, &str) = ("BERTH_DATABASE_ACQUIRE_TIMEOUT_SECS", "1");
/// Longest any single request may take while a dependency is down (no hangs).
const REQUEST_BOUND: Duration = Duration::from_secs(30);
/// How long recovery may take once the dependency is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------------------
// A cuttable TCP proxy
// ------------------------------------------------------------------------------------------------

/// Forwards `127.0.0.1:<port>` to a target address. [`TcpProxy::cut`] closes every proxied
/// connection and stops listening (new connections are refused); [`TcpProxy::restore`] listens on
/// the same port again. Runs on its own runtime, so blocking test code cannot stall it.
struct TcpProxy {
    addr: String,
    target: String,
    rt: Option<tokio::runtime::Runtime>,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    accept: Option<AbortHandle>,
    conns: Vec<AbortHandle>,
}

impl TcpProxy {
    fn start(target: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let proxy = TcpProxy {
            addr: listener.local_addr().unwrap().to_string(),
            target: target.to_string(),
            rt: Some(rt),
            state: Arc::default(),
        };
        proxy.listen(listener);
        proxy
    }

    fn listen(&self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let state = self.state.clone();
        let target = self.target.clone();
        let mut st = self.state.lock().unwrap();
        st.cut = false;
        let accept = self.rt.as_ref().unwrap().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut st = state.lock().unwrap();
                if st.cut {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                st.conns.retain(|c| !c.is_finished());
                st.conns.push(conn.abort_handle());
            }
        });
        st.accept = Some(accept.abort_handle());
    }

    /// Closes all proxied connections and refuses new ones until [`TcpProxy::restore`].
    fn cut(&self) {
        {
            let mut st = self.state.lock().unwrap();
            st.cut = true;
            if let Some(a) = st.accept.take() {
                a.abort();
            }
            for c in st.conns.drain(..) {
                c.abort();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(&self.addr).is_ok() {
            assert!(Instant::now() < deadline, "proxy still listening after cut");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Listens again on the same port.
    fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match std::net::TcpListener::bind(&self.addr) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot rebind {}: {e}",
                        self.addr
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        self.listen(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// Awaits `fut`, failing if the server takes longer than [`REQUEST_BOUND`] (a hang).
async fn bounded<T>(what: &str, server: &TestServer, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(REQUEST_BOUND, fut).await {
        Ok(v) => v,
        Err(_) => panic!(
            "{what}: no answer within {REQUEST_BOUND:?} (hang)\n--- log tail ---\n{}",
            common::log_tail(&server.log())
        ),
    }
}

/// Asserts a 503 with an OCI error body whose code is `UNAVAILABLE` and whose message names
/// `dependency` (case-insensitive).
async fn expect_unavailable(
    what: &str,
    server: &TestServer,
    resp: reqwest::Response,
    dependency: &str,
) {
    let st = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(
        st,
        503,
        "{what}: expected 503 UNAVAILABLE naming the {dependency}, got {st}: {body}\n\
         --- log tail ---\n{}",
        common::log_tail(&server.log())
    );
    check_error_body(what, st, &body, &["UNAVAILABLE"]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = v["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.to_lowercase().contains(dependency),
        "{what}: the error message should name the {dependency}: {body}"
    );
}

/// GET /readyz: (status, body).
async fn readyz(api: &Api) -> (u16, String) {
    let resp = api.get("/readyz").await;
    let st = resp.status().as_u16();
    (st, resp.text().await.unwrap_or_default())
}

/// Monolithic push (`POST /blobs/uploads/?digest=` with the body).
async fn post_monolithic(api: &Api, repo: &str, data: &[u8]) -> reqwest::Response {
    let digest = sha256_digest(data);
    api.send(
        api.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", OCTET)
        .body(data.to_vec()),
    )
    .await
}

/// Asserts the blob is either absent (404) or present with exactly `data`: never half there.
async fn assert_absent_or_whole(server: &TestServer, api: &Api, repo: &str, data: &[u8]) -> bool {
    let digest = sha256_digest(data);
    let resp = api.get_blob(repo, &digest).await;
    match resp.status().as_u16() {
        404 => false,
        200 => {
            let body = resp.bytes().await.unwrap();
            assert!(
                body[..] == data[..],
                "blob {digest} is visible but its bytes differ ({} served, {} pushed)",
                body.len(),
                data.len()
            );
            true
        }
        st => panic!(
            "GET blob {digest}: {st}: {}\n--- log tail ---\n{}",
            resp.text().await.unwrap_or_default(),
            common::log_tail(&server.log())
        ),
    }
}

async fn assert_blob(api: &Api, repo: &str, digest: &str, data: &[u8]) {
    let resp = api.get_blob(repo, digest).await;
    let status = resp.status().as_u16();
    if status != 200 {
        panic!(
            "GET blob {repo}@{digest}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[..], "blob {digest} differs");
}

/// Current end of an upload session (`Range: 0-<end>`), asserting 204.
async fn upload_end(api: &Api, location: &str) -> u64 {
    let resp = api.get(location).await;
    assert_eq!(resp.status().as_u16(), 204, "upload status {location}");
    header(&resp, "range")
        .and_then(|r| parse_upload_range(&r))
        .expect("Range on upload status")
}

/// What a background client saw: one line per unexpected answer, and every blob it pushed.
#[derive(Default)]
struct Traffic {
    requests: AtomicUsize,
    unavailable: AtomicUsize,
    wrong: Mutex<Vec<String>>,
    pushed: Mutex<Vec<(Vec<u8>, u16)>>,
}

/// Pushes small blobs and reads a manifest in a loop until `stop`; 5xx other than 503, hangs and
/// transport errors are recorded as wrong.
async fn traffic(api: Api, repo: String, tag: String, stop: Arc<AtomicBool>, t: Arc<Traffic>) {
    while !stop.load(Ordering::SeqCst) {
        let data = random_bytes(2048);
        let digest = sha256_digest(&data);
        let push = api
            .http
            .post(api.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("content-type", OCTET)
            .body(data.clone())
            .timeout(REQUEST_BOUND)
            .send();
        let get = api
            .http
            .get(api.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("accept", all_manifest_types())
            .timeout(REQUEST_BOUND)
            .send();
        for (what, fut, ok) in [
            ("push blob", futures_boxed(push), 201u16),
            ("get manifest", futures_boxed(get), 200u16),
        ] {
            t.requests.fetch_add(1, Ordering::SeqCst);
            match fut.await {
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    if what == "push blob" {
                        t.pushed.lock().unwrap().push((data.clone(), st));
                    }
                    if st == 503 {
                        t.unavailable.fetch_add(1, Ordering::SeqCst);
                        if !error_codes(&body).contains(&"UNAVAILABLE".to_string()) {
                            t.wrong
                                .lock()
                                .unwrap()
                                .push(format!("{what}: 503 without UNAVAILABLE: {body}"));
                        }
                    } else if st != ok {
                        t.wrong
                            .lock()
                            .unwrap()
                            .push(format!("{what}: {st}: {body}"));
                    }
                }
                Err(e) => t
                    .wrong
                    .lock()
                    .unwrap()
                    .push(format!("{what}: transport error or timeout: {e}")),
            }
        }
    }
}

type BoxedResponse =
    std::pin::Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>;

fn futures_boxed(
    f: impl Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
) -> BoxedResponse {
    Box::pin(f)
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL outage
// ------------------------------------------------------------------------------------------------

/// PostgreSQL unreachable mid-traffic: 503 UNAVAILABLE naming the database (never 500, never a
/// hang), /readyz 503, /healthz still 200; once it is back, Berth recovers without a restart, data
/// pushed before is intact, an upload begun before continues, and nothing refused became visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_gives_503_and_recovers() {
    let a = TestServer::start_on_pg_s3(&[], &[FAST_POOL]);
    let proxy = TcpProxy::start("127.0.0.1:5432");
    let direct_url = a.backends().unwrap().database_url.clone();
    let proxied_url = direct_url.replace("127.0.0.1:5432", &proxy.addr);
    assert_ne!(direct_url, proxied_url);
    let b = a.start_replica_with(&[], &[("BERTH_DATABASE_URL", &proxied_url)]);
    let api = Api::new(&b.base);
    let api_a = Api::new(&a.base);
    let repo = format!("faults/pg-{}", rand_suffix());

    // Before the outage: an image, a blob, and an unfinished chunked upload.
    let before = api
        .push_image_with(&repo, "v1", 2, serde_json::json!({}))
        .await;
    let blob = random_bytes(300_000);
    let blob_digest = api.push_blob(&repo, &blob).await;
    let chunk1 = random_bytes(100_000);
    let chunk2 = random_bytes(50_000);
    let upload = api.start_upload(&repo).await;
    let resp = api.patch_chunk(&upload, 0, &chunk1).await;
    let upload = assert_chunk_accepted(&api, resp, chunk1.len() as u64 - 1).await;
    assert_eq!(readyz(&api).await.0, 200, "readyz before the outage");

    // Traffic keeps flowing through B while the database goes away and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Traffic::default());
    let load = tokio::spawn(traffic(
        api.clone(),
        repo.clone(),
        "v1".into(),
        stop.clone(),
        seen.clone(),
    ));
    common::wait_until("traffic flowing", &b, Duration::from_secs(30), || async {
        seen.requests.load(Ordering::SeqCst) >= 6
    })
    .await;

    proxy.cut();

    common::wait_until("/readyz 503 after the cut", &b, RECOVERY_BOUND, || async {
        readyz(&api).await.0 == 503
    })
    .await;
    let (_, body) = readyz(&api).await;
    assert!(
        body.to_lowercase().contains("database"),
        "/readyz should name the database: {body}"
    );
    let resp = api.get("/healthz").await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "/healthz (liveness) while the DB is down"
    );

    let resp = bounded("GET manifest", &b, api.get_manifest(&repo, "v1")).await;
    expect_unavailable("GET manifest by tag", &b, resp, "database").await;
    let resp = bounded("GET manifest", &b, api.get_manifest(&repo, &before.digest)).await;
    expect_unavailable("GET manifest by digest", &b, resp, "database").await;
    let resp = bounded("HEAD manifest", &b, api.head_manifest(&repo, "v1")).await;
    assert_eq!(
        resp.status().as_u16(),
        503,
        "HEAD manifest while the DB is down"
    );
    let resp = bounded("GET blob", &b, api.get_blob(&repo, &blob_digest)).await;
    expect_unavailable("GET blob", &b, resp, "database").await;
    let resp = bounded("tags/list", &b, api.get(&format!("/v2/{repo}/tags/list"))).await;
    expect_unavailable("GET tags/list", &b, resp, "database").await;
    let refused = random_bytes(70_000);
    let resp = bounded("push", &b, post_monolithic(&api, &repo, &refused)).await;
    expect_unavailable("monolithic blob push", &b, resp, "database").await;
    let resp = bounded(
        "PATCH",
        &b,
        api.patch_chunk(&upload, chunk1.len() as u64, &chunk2),
    )
    .await;
    expect_unavailable("PATCH of an upload begun before", &b, resp, "database").await;
    let extra = before.manifest.clone();
    let resp = bounded(
        "PUT manifest",
        &b,
        api.put_manifest(&repo, "during", OCI_MANIFEST, &extra),
    )
    .await;
    expect_unavailable("PUT manifest", &b, resp, "database").await;

    // The other replica (straight to PostgreSQL) keeps working meanwhile.
    let other = api_a.push_image(&repo, "v2").await;
    common::wait_until("traffic sees 503s", &b, RECOVERY_BOUND, || async {
        seen.unavailable.load(Ordering::SeqCst) >= 2
    })
    .await;

    proxy.restore();

    common::wait_until("/readyz 200 after restore", &b, RECOVERY_BOUND, || async {
        readyz(&api).await.0 == 200
    })
    .await;
    common::wait_until(
        "GET manifest 200 after restore",
        &b,
        RECOVERY_BOUND,
        || async { api.get_manifest(&repo, "v1").await.status().as_u16() == 200 },
    )
    .await;
    let after_restore = seen.requests.load(Ordering::SeqCst);
    common::wait_until("traffic after restore", &b, RECOVERY_BOUND, || async {
        seen.requests.load(Ordering::SeqCst) >= after_restore + 6
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let wrong = seen.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "answers other than success or 503 UNAVAILABLE around the outage:\n{}\n\
         --- log tail ---\n{}",
        wrong.join("\n"),
        common::log_tail(&b.log())
    );

    // Intact: what was pushed before, and what the other replica pushed during the outage.
    for (api, who, server) in [(&api, "B", &b), (&api_a, "A", &a)] {
        let resp = api.get_manifest(&repo, "v1").await;
        assert_eq!(resp.status().as_u16(), 200, "{who}: v1 after the outage");
        assert_eq!(resp.bytes().await.unwrap().to_vec(), before.manifest);
        let resp = api.get_manifest(&repo, "v2").await;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{who}: v2 pushed on A during the outage"
        );
        assert_eq!(resp.bytes().await.unwrap().to_vec(), other.manifest);
        assert_blob(api, &repo, &blob_digest, &blob).await;
        for d in &before.layer_digests {
            let resp = api.get_blob(&repo, d).await;
            assert_eq!(resp.status().as_u16(), 200, "{who}: layer {d}");
            assert_eq!(sha256_digest(&resp.bytes().await.unwrap()), *d);
        }
        // Refused writes left nothing behind.
        assert!(
            !assert_absent_or_whole(server, api, &repo, &refused).await,
            "{who}: a blob refused with 503 became visible"
        );
        let resp = api.get_manifest(&repo, "during").await;
        assert_eq!(
            resp.status().as_u16(),
            404,
            "{who}: a tag refused with 503 exists"
        );
    }
    // Background pushes: each 201 is whole; each refused one is absent or (had its commit landed
    // just before the connection died) whole.
    let pushed = seen.pushed.lock().unwrap().clone();
    for (data, st) in &pushed {
        let visible = assert_absent_or_whole(&b, &api, &repo, data).await;
        if *st == 201 {
            assert!(
                visible,
                "a blob acknowledged with 201 is missing after the outage"
            );
        }
    }

    // The upload begun before the outage is where it was, and finishes.
    assert_eq!(
        upload_end(&api, &upload).await,
        chunk1.len() as u64 - 1,
        "upload offset after the outage"
    );
    let resp = api.patch_chunk(&upload, chunk1.len() as u64, &chunk2).await;
    let upload = assert_chunk_accepted(&api, resp, (chunk1.len() + chunk2.len()) as u64 - 1).await;
    let whole = [chunk1.clone(), chunk2.clone()].concat();
    let digest = sha256_digest(&whole);
    let resp = api.put_upload(&upload, &digest, None).await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api_a, &repo, &digest, &whole).await;

    // New writes work on the recovered replica.
    api.push_image(&repo, "v3").await;
    drop(b);
}

/// Runs SQL in the database at `url` (psql); returns what it prints, unaligned.
fn psql_in(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// PostgreSQL commits a blob, but the connection breaks before the answer reaches Berth. Berth
/// cannot tell whether the commit landed, so it answers 503 and keeps the bytes (a blob row
/// may name them); the blob is then served whole. It used to delete the bytes, and every later
/// GET of the blob answered 500 (seen as a rare failure of the outage test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_answer_lost_keeps_the_blob() {
    let a = TestServer::start_on_pg_s3(&[], &[FAST_POOL]);
    let proxy = TcpProxy::start("127.0.0.1:5432");
    let direct_url = a.backends().unwrap().database_url.clone();
    let proxied_url = direct_url.replace("127.0.0.1:5432", &proxy.addr);
    let b = a.start_replica_with(&[], &[("BERTH_DATABASE_URL", &proxied_url)]);
    let api = Api::new(&b.base);
    let api_a = Api::new(&a.base);
    let repo = format!("faults/commit-{}", rand_suffix());
    let data = random_bytes(70_000);
    let digest = sha256_digest(&data);

    // This blob's COMMIT waits 3 s inside PostgreSQL (a deferred trigger): time to cut the
    // connection, after which the commit still lands with nobody to tell.
    psql_in(
        &direct_url,
        &format!(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$; \
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON blobs \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.digest = '{digest}') \
             EXECUTE FUNCTION slow_commit()"
        ),
    );
    let push = tokio::spawn({
        let (api, repo, data) = (api.clone(), repo.clone(), data.clone());
        async move { post_monolithic(&api, &repo, &data).await }
    });
    let database = direct_url.rsplit('/').next().unwrap().to_owned();
    common::wait_until(
        "the blob's COMMIT waiting in PostgreSQL",
        &b,
        RECOVERY_BOUND,
        || {
            let (url, database) = (direct_url.clone(), database.clone());
            async move {
                psql_in(
                    &url,
                    &format!(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' \
                     AND wait_event = 'PgSleep'"
                    ),
                ) == "1"
            }
        },
    )
    .await;
    proxy.cut();
    let resp = bounded("push", &b, push).await.unwrap();
    expect_unavailable("push whose commit answer was lost", &b, resp, "database").await;
    // The commit has landed meanwhile.
    common::wait_until("the commit landed", &a, RECOVERY_BOUND, || {
        let url = direct_url.clone();
        let digest = digest.clone();
        async move {
            psql_in(
                &url,
                &format!("SELECT count(*) FROM blobs WHERE digest = '{digest}'"),
            ) == "1"
        }
    })
    .await;

    proxy.restore();
    common::wait_until("/readyz 200 after restore", &b, RECOVERY_BOUND, || async {
        readyz(&api).await.0 == 200
    })
    .await;
    assert_blob(&api, &repo, &digest, &data).await;
    assert_blob(&api_a, &repo, &digest, &data).await;
    drop(b);
}

// ------------------------------------------------------------------------------------------------
// S3 outage
// ------------------------------------------------------------------------------------------------

/// S3 server killed: blob reads and uploads answer 503 UNAVAILABLE naming the storage, /readyz
/// 503; brought back on the same port, Berth recovers without a restart and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_gives_503_and_recovers() {
    let mut a = TestServer::start_on_pg_s3(&[], &[FAST_POOL]);
    let api = Api::new(&a.base);
    let repo = format!("faults/s3-{}", rand_suffix());

    let before = api.push_image(&repo, "v1").await;
    let blob = random_bytes(1024 * 1024);
    let blob_digest = api.push_blob(&repo, &blob).await;
    let chunk1 = random_bytes(100_000);
    let chunk2 = random_bytes(50_000);
    let upload = api.start_upload(&repo).await;
    let resp = api.patch_chunk(&upload, 0, &chunk1).await;
    let upload = assert_chunk_accepted(&api, resp, chunk1.len() as u64 - 1).await;
    assert_eq!(readyz(&api).await.0, 200, "readyz before the outage");

    a.kill_s3();

    let (st, body) = bounded("/readyz", &a, readyz(&api)).await;
    assert_eq!(st, 503, "/readyz while S3 is down: {body}");
    assert!(
        body.to_lowercase().contains("storage"),
        "/readyz should name the storage: {body}"
    );
    let resp = bounded("GET blob", &a, api.get_blob(&repo, &blob_digest)).await;
    expect_unavailable("GET blob", &a, resp, "storage").await;
    let refused = random_bytes(70_000);
    let resp = bounded("push", &a, post_monolithic(&api, &repo, &refused)).await;
    expect_unavailable("monolithic blob push", &a, resp, "storage").await;
    let resp = bounded(
        "PATCH",
        &a,
        api.patch_chunk(&upload, chunk1.len() as u64, &chunk2),
    )
    .await;
    expect_unavailable("PATCH of an upload begun before", &a, resp, "storage").await;

    a.restart_s3();

    common::wait_until(
        "/readyz 200 after S3 is back",
        &a,
        RECOVERY_BOUND,
        || async { readyz(&api).await.0 == 200 },
    )
    .await;
    assert_blob(&api, &repo, &blob_digest, &blob).await;
    for d in before.layer_digests.iter().chain([&before.config_digest]) {
        let resp = api.get_blob(&repo, d).await;
        assert_eq!(resp.status().as_u16(), 200, "blob {d} after the outage");
        assert_eq!(sha256_digest(&resp.bytes().await.unwrap()), *d);
    }
    assert!(
        !assert_absent_or_whole(&a, &api, &repo, &refused).await,
        "a blob refused with 503 became visible"
    );
    assert_eq!(
        upload_end(&api, &upload).await,
        chunk1.len() as u64 - 1,
        "upload offset after the outage"
    );
    let resp = api.patch_chunk(&upload, chunk1.len() as u64, &chunk2).await;
    let upload = assert_chunk_accepted(&api, resp, (chunk1.len() + chunk2.len()) as u64 - 1).await;
    let whole = [chunk1.clone(), chunk2.clone()].concat();
    let digest = sha256_digest(&whole);
    let resp = api.put_upload(&upload, &digest, None).await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api, &repo, &digest, &whole).await;
    api.push_image(&repo, "v2").await;
}

/// A wrong S3 secret key is not silently accepted: pushes and reads answer 503 UNAVAILABLE and
/// /readyz is 503 on the misconfigured replica, while a correctly configured one is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_secret_key_fails() {
    let a = TestServer::start_on_pg_s3(&[], &[FAST_POOL]);
    let api_a = Api::new(&a.base);
    let repo = format!("faults/creds-{}", rand_suffix());
    let blob = random_bytes(10_000);
    let digest = api_a.push_blob(&repo, &blob).await;

    let b = a.start_replica_with(
        &[],
        &[("BERTH_STORAGE_S3_SECRET_ACCESS_KEY", "not-the-secret-key")],
    );
    let api = Api::new(&b.base);
    let (st, body) = bounded("/readyz", &b, readyz(&api)).await;
    assert_eq!(st, 503, "/readyz with a wrong S3 secret key: {body}");
    let resp = bounded(
        "push",
        &b,
        post_monolithic(&api, &repo, &random_bytes(5000)),
    )
    .await;
    expect_unavailable("push with a wrong S3 secret key", &b, resp, "storage").await;
    let resp = bounded("GET blob", &b, api.get_blob(&repo, &digest)).await;
    expect_unavailable("GET blob with a wrong S3 secret key", &b, resp, "storage").await;

    assert_eq!(
        readyz(&api_a).await.0,
        200,
        "the correctly configured replica"
    );
    assert_blob(&api_a, &repo, &digest, &blob).await;
    drop(b);
}
