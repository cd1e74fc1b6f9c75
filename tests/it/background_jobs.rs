//! Background passes across restarts: a graceful shutdown releases the process's leases, and a
//! lease held by a process that is gone is taken over at once on the same host, so abandoned
//! uploads are purged right after any restart. (The next process used to wait out the old
//! lease, twice the interval: two hours for the upload purge, so a registry restarted more
//! often than that never purged anything.) Runs on either stack.

use crate::support::{api, common};

use std::time::Duration;

use api::*;
use common::TestServer;
use sqlx::Row;

/// Every upload is abandoned at once (idle for 0 s), and the purge runs hourly: only a lease
/// that is free when the next process starts lets it purge right away.
const PURGE: [(&str, &str); 2] = [
    ("BERTH_UPLOADS_PURGE_AFTER_SECS", "0"),
    ("BERTH_UPLOADS_PURGE_INTERVAL_SECS", "3600"),
];

/// Well under the minute the issue allows; the takeover is immediate.
const TAKEOVER_BOUND: Duration = Duration::from_secs(30);

/// The server's metadata database, for reading the lease table.
async fn database(server: &TestServer) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match server.backends() {
        Some(b) => b.database_url.clone(),
        None => format!("sqlite://{}/berth.db", server.data_dir().display()),
    };
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("open the server's database")
}

/// `(lease, holder)` rows.
async fn leases(server: &TestServer) -> Vec<(String, String)> {
    let db = database(server).await;
    let rows = sqlx::query("SELECT name, holder FROM leases ORDER BY name")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    rows.iter()
        .map(|r| (r.get("name"), r.get("holder")))
        .collect()
}

async fn purge_lease_holder(server: &TestServer) -> Option<String> {
    leases(server)
        .await
        .into_iter()
        .find(|(name, _)| name == "upload-purge")
        .map(|(_, holder)| holder)
}

/// An upload session holding one chunk, left behind by its client; returns its location.
async fn abandoned_upload(api: &Api, repo: &str) -> String {
    let location = api.start_upload(repo).await;
    let chunk = random_bytes(100_000);
    let resp = api.patch_chunk(&location, 0, &chunk).await;
    assert_chunk_accepted(api, resp, chunk.len() as u64 - 1).await
}

/// Asserts the next process purges the upload at `location`: the session is unknown and (on
/// filesystem storage) its file is gone.
async fn assert_purged_soon(server: &TestServer, api: &Api, location: &str) {
    common::wait_until(
        "the restarted server purges the abandoned upload",
        server,
        TAKEOVER_BOUND,
        || async { api.get(location).await.status().as_u16() == 404 },
    )
    .await;
    let id = location
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap();
    if server.backends().is_none() {
        let staged = server.object_path(&format!("uploads/{id}"));
        assert!(!staged.exists(), "{} is still there", staged.display());
    }
}

/// SIGTERM: the process releases its leases, and the next one purges at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_releases_leases_so_the_next_process_purges_at_once() {
    let mut server = TestServer::start_with(&[], &PURGE);
    let api = Api::new(&server.base);
    common::wait_until(
        "the first purge takes its lease",
        &server,
        TAKEOVER_BOUND,
        || async { purge_lease_holder(&server).await.is_some() },
    )
    .await;
    let location = abandoned_upload(&api, "jobs/graceful").await;

    server.terminate();
    assert_eq!(
        leases(&server).await,
        Vec::<(String, String)>::new(),
        "a graceful shutdown releases every lease"
    );
    server.restart();
    assert_purged_soon(&server, &api, &location).await;
}

/// SIGKILL: nothing is released, but the next process on the same host sees the holder's
/// process is gone and takes its leases at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_of_a_killed_process_is_taken_over_at_once() {
    let mut server = TestServer::start_with(&[], &PURGE);
    let api = Api::new(&server.base);
    common::wait_until(
        "the first purge takes its lease",
        &server,
        TAKEOVER_BOUND,
        || async { purge_lease_holder(&server).await.is_some() },
    )
    .await;
    let killed = purge_lease_holder(&server).await.unwrap();
    let location = abandoned_upload(&api, "jobs/killed").await;

    server.kill();
    server.restart();
    assert_purged_soon(&server, &api, &location).await;
    let holder = purge_lease_holder(&server).await.unwrap();
    assert_ne!(holder, killed, "the new process holds the purge lease");
}
