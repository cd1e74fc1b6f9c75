//! Online garbage collection: what `berth gc run` reclaims (and keeps) on a running server, and
//! the race between GC deleting a blob and a manifest PUT referencing it.

use crate::support::{api, common};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{desc, random_bytes, random_config, sha256_digest, Api};
use common::TestServer;
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Whether any object in the server's storage (filesystem root or S3 bucket dir) holds `data`.
fn stored(server: &TestServer, data: &[u8]) -> bool {
    files(&server.object_path(""))
        .iter()
        .any(|p| std::fs::read(p).map(|b| b == data).unwrap_or(false))
}

fn image(config: &[u8], layers: &[&[u8]], nonce: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": desc(CONFIG, config),
        "layers": layers.iter().map(|l| desc(LAYER, l)).collect::<Vec<_>>(),
        "annotations": { "nonce": nonce },
    }))
    .unwrap()
}

/// Pushes a config and layers and an image manifest under `reference`; returns (manifest
/// digest, manifest bytes).
async fn push_image(
    api: &Api,
    repo: &str,
    reference: &str,
    config: &[u8],
    layers: &[&[u8]],
) -> (String, Vec<u8>) {
    api.push_blob(repo, config).await;
    for l in layers {
        api.push_blob(repo, l).await;
    }
    let body = image(config, layers, reference);
    let digest = api.push_manifest(repo, reference, MANIFEST, &body).await;
    (digest, body)
}

fn gc_run(server: &TestServer) -> String {
    let out = server.cli_path(&["gc", "run"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "berth gc run failed:\n{text}");
    text
}

async fn blob_status(api: &Api, repo: &str, data: &[u8]) -> u16 {
    api.head_blob(repo, &sha256_digest(data))
        .await
        .status()
        .as_u16()
}

/// Waits (the single-node server drops its cache within about a second of another process's
/// GC) until the blob answers `status` in `repo`.
async fn eventually_blob(api: &Api, repo: &str, data: &[u8], status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = blob_status(api, repo, data).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blob in {repo}: {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_fsck_clean(server: &TestServer) {
    let out = server
        .cli("fsck")
        .args(["--grace-secs", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "database and storage disagree after GC:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_run_reclaims_unreferenced_blobs_children_and_referrers() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_GC_GRACE_PERIOD_SECS", "0"),
            ("BERTH_GC_INTERVAL_SECS", "0"),
        ],
    );
    let api = Api::new(&server.base);

    // An image deleted by digest: its own config and layer go; a layer shared with another
    // repository's manifest stays.
    let shared = random_bytes(3000);
    let (own_config, own_layer) = (random_config(), random_bytes(2000));
    let (gone, _) = push_image(&api, "gc/a", "v1", &own_config, &[&own_layer, &shared]).await;
    let other_config = random_config();
    push_image(&api, "gc/b", "v1", &other_config, &[&shared]).await;
    // An untagged top-level image: kept, with its blobs.
    let (untagged_config, untagged_layer) = (random_config(), random_bytes(1500));
    let (untagged, _) = push_image(&api, "gc/a", "tmp", &untagged_config, &[&untagged_layer]).await;
    assert_eq!(api.delete("/v2/gc/a/manifests/tmp").await.status(), 202);

    // An index with two platform images pushed by digest, and a referrer of the index.
    let (c1, l1, c2, l2) = (
        random_config(),
        random_bytes(1000),
        random_config(),
        random_bytes(1100),
    );
    api.push_blob("gc/a", &c1).await;
    api.push_blob("gc/a", &l1).await;
    api.push_blob("gc/a", &c2).await;
    api.push_blob("gc/a", &l2).await;
    let m1 = image(&c1, &[&l1], "m1");
    let m2 = image(&c2, &[&l2], "m2");
    let d1 = api
        .push_manifest("gc/a", &sha256_digest(&m1), MANIFEST, &m1)
        .await;
    let d2 = api
        .push_manifest("gc/a", &sha256_digest(&m2), MANIFEST, &m2)
        .await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            { "mediaType": MANIFEST, "digest": d1, "size": m1.len(), "platform": { "os": "linux", "architecture": "amd64" } },
            { "mediaType": MANIFEST, "digest": d2, "size": m2.len(), "platform": { "os": "linux", "architecture": "arm64" } },
        ],
    }))
    .unwrap();
    let index_digest = api.push_manifest("gc/a", "multi", INDEX, &index).await;
    let sig_layer = random_bytes(700);
    api.push_blob("gc/a", &sig_layer).await;
    let empty = b"{}".to_vec();
    api.push_blob("gc/a", &empty).await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": desc("application/vnd.oci.empty.v1+json", &empty),
        "layers": [desc("application/vnd.example.signature", &sig_layer)],
        "subject": { "mediaType": INDEX, "digest": index_digest, "size": index.len() },
    }))
    .unwrap();
    let referrer_digest = api
        .push_manifest("gc/a", &sha256_digest(&referrer), MANIFEST, &referrer)
        .await;
    // m2 is also tagged: it outlives the index until the tag goes.
    api.push_manifest("gc/a", "arm", MANIFEST, &m2).await;

    // Nothing deleted yet: GC reclaims nothing.
    let text = gc_run(&server);
    assert!(text.contains("deleted 0 blob(s)"), "{text}");

    assert_eq!(
        api.delete(&format!("/v2/gc/a/manifests/{gone}"))
            .await
            .status(),
        202
    );
    assert_eq!(
        api.delete(&format!("/v2/gc/a/manifests/{index_digest}"))
            .await
            .status(),
        202
    );
    let text = gc_run(&server);
    println!("{text}");

    // The deleted image's own blobs are gone from storage and the database.
    for data in [&own_config, &own_layer] {
        assert!(
            !stored(&server, data),
            "an unreferenced blob's object is deleted"
        );
        eventually_blob(&api, "gc/a", data, 404).await;
    }
    // Shared with gc/b's manifest: kept (and still linked in gc/a, where it was pushed).
    assert!(stored(&server, &shared));
    eventually_blob(&api, "gc/b", &shared, 200).await;
    eventually_blob(&api, "gc/a", &shared, 200).await;
    // The untagged top-level image stays, with its blobs.
    assert_eq!(api.get_manifest("gc/a", &untagged).await.status(), 200);
    assert!(stored(&server, &untagged_config) && stored(&server, &untagged_layer));
    // The index's untagged child went with its blobs; the tagged one stays.
    assert_eq!(api.get_manifest("gc/a", &d1).await.status(), 404);
    assert!(!stored(&server, &c1) && !stored(&server, &l1));
    assert_eq!(api.get_manifest("gc/a", &d2).await.status(), 200);
    assert!(stored(&server, &c2) && stored(&server, &l2));
    // The referrer went with its subject, and its blobs with it.
    assert_eq!(
        api.get_manifest("gc/a", &referrer_digest).await.status(),
        404
    );
    assert!(!stored(&server, &sig_layer));
    assert_fsck_clean(&server);

    // Deleting the last tag of the former child lets it go too.
    assert_eq!(api.delete("/v2/gc/a/manifests/arm").await.status(), 202);
    gc_run(&server);
    assert_eq!(api.get_manifest("gc/a", &d2).await.status(), 404);
    assert!(!stored(&server, &c2) && !stored(&server, &l2));
    // The untagged top-level image is still there.
    assert_eq!(api.get_manifest("gc/a", &untagged).await.status(), 200);
    assert_fsck_clean(&server);

    // Statistics through the admin API.
    let stats: Value = api.get("/api/v1/gc").await.json().await.unwrap();
    assert_eq!(stats["gracePeriodSecs"], 0, "{stats}");
    assert_eq!(stats["queue"]["blobsDue"], 0, "{stats}");
    let anonymous = Api::anonymous(&server.base);
    assert_eq!(anonymous.get("/api/v1/gc").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_reclaimed_within_the_grace_period() {
    let server = TestServer::start_with(&[], &[("BERTH_GC_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let (config, layer) = (random_config(), random_bytes(2048));
    let (digest, _) = push_image(&api, "gc/grace", "v1", &config, &[&layer]).await;
    assert_eq!(
        api.delete(&format!("/v2/gc/grace/manifests/{digest}"))
            .await
            .status(),
        202
    );
    let text = gc_run(&server);
    assert!(text.contains("deleted 0 blob(s)"), "{text}");
    assert!(stored(&server, &config) && stored(&server, &layer));
    assert_eq!(blob_status(&api, "gc/grace", &layer).await, 200);
    let stats: Value = api.get("/api/v1/gc").await.json().await.unwrap();
    assert_eq!(stats["gracePeriodSecs"], 86400, "{stats}");
    assert_eq!(
        stats["intervalSecs"],
        Value::Null,
        "no background GC: {stats}"
    );
    assert!(stats["queue"]["blobs"].as_i64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["queue"]["blobsDue"], 0, "{stats}");
}

/// Blobs deleted so far by the GC of the servers behind `apis` (per process counters).
async fn reclaimed(apis: &[Api]) -> u64 {
    let mut total = 0;
    for api in apis {
        let stats: Value = api.get("/api/v1/gc").await.json().await.unwrap();
        total += stats["sinceStart"]["blobsDeleted"].as_u64().unwrap();
    }
    total
}

/// The race: `CLIENTS` clients (client `c` talks to `apis[c % len]`), `ITERATIONS` rounds each;
/// returns (manifests created, refused with MANIFEST_BLOB_UNKNOWN, pushes during which GC
/// deleted a blob). Panics on any other outcome.
async fn race(apis: &[Api]) -> (u64, u64, u64) {
    const CLIENTS: usize = 4;
    const ITERATIONS: usize = 75;
    let config = Arc::new(random_config());
    let layer = Arc::new(random_bytes(4096));
    let created = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let overlaps = Arc::new(AtomicU64::new(0));
    let all: Arc<Vec<Api>> = Arc::new(apis.to_vec());
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let api = apis[client % apis.len()].clone();
        let (all, config, layer) = (all.clone(), config.clone(), layer.clone());
        let (created, refused, overlaps) = (created.clone(), refused.clone(), overlaps.clone());
        tasks.push(tokio::spawn(async move {
            let repo = format!("gc/race{}", client % 2);
            for i in 0..ITERATIONS {
                // Uploads may themselves lose to GC (503, retried by clients); then push anyway.
                for data in [&config, &layer] {
                    let loc = api.start_upload(&repo).await;
                    let _ = api.put_upload(&loc, &sha256_digest(data), Some(data)).await;
                }
                if i % 3 == 0 {
                    // Give GC a head start now and then.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                let body = image(&config, &[&layer], &format!("{client}-{i}"));
                let before = reclaimed(&all).await;
                let resp = api
                    .put_manifest(&repo, &format!("t{client}"), MANIFEST, &body)
                    .await;
                let after = reclaimed(&all).await;
                if after > before {
                    overlaps.fetch_add(1, Ordering::Relaxed);
                }
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                match status {
                    201 => {
                        created.fetch_add(1, Ordering::Relaxed);
                        for data in [&config, &layer] {
                            let got = api.get_blob(&repo, &sha256_digest(data)).await;
                            assert_eq!(
                                got.status(),
                                200,
                                "a blob of a pushed manifest must be readable"
                            );
                            assert_eq!(&got.bytes().await.unwrap()[..], &data[..]);
                        }
                        let digest = sha256_digest(&body);
                        let del = api.delete(&format!("/v2/{repo}/manifests/{digest}")).await;
                        assert_eq!(del.status(), 202);
                    }
                    400 => {
                        assert!(text.contains("MANIFEST_BLOB_UNKNOWN"), "{text}");
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("manifest PUT answered {other}: {text}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (created, refused, overlaps) = (
        created.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        overlaps.load(Ordering::Relaxed),
    );
    let total = reclaimed(apis).await;
    println!(
        "race: {} pushes ({created} created, {refused} refused with MANIFEST_BLOB_UNKNOWN), \
         GC deleted blobs during {overlaps} pushes, {total} blobs deleted in all",
        CLIENTS * ITERATIONS
    );
    assert_eq!(created + refused, (CLIENTS * ITERATIONS) as u64);
    assert!(
        overlaps >= 10,
        "GC must delete blobs while pushes are in flight ({overlaps})"
    );
    (created, refused, overlaps)
}

/// Grace period zero, GC every 10 ms: clients repeatedly upload the same config and layer, push
/// a manifest referencing them, check it, and delete it. Every PUT must either succeed with both
/// blobs readable or fail with MANIFEST_BLOB_UNKNOWN; and GC must really have deleted blobs
/// while PUTs were in flight.
#[tokio::test(flavor = "multi_thread")]
async fn manifest_puts_racing_gc_never_reference_missing_blobs() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_GC_GRACE_PERIOD_SECS", "0"),
            ("BERTH_GC_INTERVAL_MILLIS", "10"),
        ],
    );
    race(&[Api::new(&server.base)]).await;
    // Database and storage agree.
    assert_fsck_clean(&server);
}

/// The same race with two replicas on one PostgreSQL database and bucket, both running GC, and
/// `berth gc run` looping beside them: clients push through both replicas.
#[tokio::test(flavor = "multi_thread")]
async fn gc_on_several_replicas_and_the_cli_at_once_stays_safe() {
    // A slower background pass than the single-node race, so pushes win often enough to check
    // both outcomes; the CLI loop keeps a second worker busy meanwhile.
    let a = TestServer::start_on_pg_s3(
        &[],
        &[
            ("BERTH_GC_GRACE_PERIOD_SECS", "0"),
            ("BERTH_GC_INTERVAL_MILLIS", "100"),
        ],
    );
    let b = a.start_replica();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cli_runs = {
        let stop = stop.clone();
        let cmd_of = {
            let a = &a;
            move || a.cli_path(&["gc", "run"])
        };
        let mut commands: Vec<std::process::Command> = (0..200).map(|_| cmd_of()).collect();
        std::thread::spawn(move || {
            let mut runs = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let Some(mut cmd) = commands.pop() else { break };
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "berth gc run beside the replicas failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    let (created, refused, _) = race(&[Api::new(&a.base), Api::new(&b.base)]).await;
    assert!(
        created > 0 && refused > 0,
        "both outcomes must occur ({created} created, {refused} refused)"
    );
    stop.store(true, Ordering::Relaxed);
    let runs = cli_runs.join().expect("the gc run loop panicked");
    assert!(runs > 0, "berth gc run never ran beside the replicas");
    drop(b);
    assert_fsck_clean(&a);
}

/// A GC process that dies after taking a blob's file out of service (into `gc-trash/`) but
/// before its transaction commits must not lose the blob: the next pass finds the blob row still
/// there and puts the file back. A trashed file whose row is gone (the transaction committed) is
/// deleted.
#[tokio::test(flavor = "multi_thread")]
async fn a_gc_that_died_mid_delete_loses_nothing() {
    let mut server = TestServer::start_on_sqlite_fs(&[], &[("BERTH_GC_INTERVAL_SECS", "0")]);
    let api = Api::new(&server.base);
    let config = random_config();
    let layer = random_bytes(2048);
    push_image(&api, "gc/crash", "v1", &config, &[&layer]).await;
    server.kill();
    let storage = server.object_path("");
    let digest = sha256_digest(&layer);
    let hex = digest.trim_start_matches("sha256:");
    let key = format!("blobs/sha256/{}/{hex}", &hex[..2]);
    let trash = storage.join("gc-trash");
    std::fs::create_dir_all(&trash).unwrap();
    // Trashed two hours ago by a GC that then died, its transaction never committed.
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 2 * 3600 * 1000;
    std::fs::rename(
        storage.join(&key),
        trash.join(format!("{two_hours_ago}.dead.{}", key.replace('/', "%"))),
    )
    .unwrap();
    // And a file whose GC did commit: no blob row lists its key.
    let orphan = trash.join(format!(
        "{two_hours_ago}.done.blobs%sha256%00%{}",
        "0".repeat(64)
    ));
    std::fs::write(&orphan, b"reclaimed").unwrap();
    gc_run(&server);
    assert!(
        storage.join(&key).exists(),
        "the blob's file was not restored"
    );
    assert!(!orphan.exists(), "a committed GC's leftover was kept");
    server.restart();
    let api = Api::new(&server.base);
    let got = api.get_blob("gc/crash", &digest).await;
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], &layer[..]);
    assert_fsck_clean(&server);
}
