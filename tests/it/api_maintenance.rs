//! Maintenance: stale upload sessions are purged, and `berth fsck` finds and repairs
//! disagreement between the metadata database and blob storage.

use crate::support::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use reqwest::{Client, StatusCode};
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

async fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> StatusCode {
    c.post(format!(
        "{base}/v2/{repo}/blobs/uploads/?digest={}",
        digest(data)
    ))
    .body(data.to_vec())
    .send()
    .await
    .unwrap()
    .status()
}

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

/// The storage root of the server (filesystem root or S3 bucket directory).
fn storage_root(server: &TestServer) -> PathBuf {
    server.object_path("")
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_upload_sessions_are_purged_with_their_bytes() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_UPLOADS_PURGE_AFTER_SECS", "1"),
            ("BERTH_UPLOADS_PURGE_INTERVAL_SECS", "1"),
        ],
    );
    let c = common::admin_client();
    let repo = "maint/purge";
    let start = c
        .post(server.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = server.url(start.headers()["location"].to_str().unwrap());
    let id = start.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_owned();
    let patch = c
        .patch(&location)
        .body(vec![1u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::ACCEPTED);
    let done = push_blob(&c, &server.base, repo, b"finished blobs are not touched").await;
    assert_eq!(done, StatusCode::CREATED);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c.get(&location).send().await.unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(
            Instant::now() < deadline,
            "idle upload was never purged:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The session row goes first (the 404 above), its objects right after it, in the same
    // purge: wait for that, within the same deadline.
    loop {
        let leftovers: Vec<_> = files(&storage_root(&server))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&id))
            .collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "purged upload left objects: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let blob = format!(
        "/v2/{repo}/blobs/{}",
        digest(b"finished blobs are not touched")
    );
    assert_eq!(
        c.head(server.url(&blob)).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fsck_reports_then_repairs_missing_and_orphan_objects() {
    let server = TestServer::start();
    let c = common::admin_client();
    let repo = "maint/fsck";
    let (lost, kept) = (
        b"bytes that will vanish".to_vec(),
        b"bytes that stay".to_vec(),
    );
    assert_eq!(
        push_blob(&c, &server.base, repo, &lost).await,
        StatusCode::CREATED
    );
    assert_eq!(
        push_blob(&c, &server.base, repo, &kept).await,
        StatusCode::CREATED
    );

    // Read the blob once so a single-node server has it in its metadata cache.
    let lost_url = server.url(&format!("/v2/{repo}/blobs/{}", digest(&lost)));
    assert_eq!(
        c.head(&lost_url).send().await.unwrap().status(),
        StatusCode::OK
    );

    let clean = server.cli("fsck").output().unwrap();
    assert!(
        clean.status.success(),
        "fsck on a healthy registry: {}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // Lose one blob's bytes and leave an object nothing references.
    let root = storage_root(&server);
    let lost_file = files(&root)
        .into_iter()
        .find(|p| std::fs::read(p).map(|b| b == lost).unwrap_or(false))
        .expect("the pushed blob is stored somewhere");
    std::fs::remove_file(&lost_file).unwrap();
    let orphan = server.object_path("blobs/sha256/00/00orphan");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"nobody points here").unwrap();

    let found = server
        .cli("fsck")
        .args(["--grace-secs", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&found.stdout);
    assert_eq!(
        found.status.code(),
        Some(1),
        "fsck must fail when it finds problems:\n{text}"
    );
    assert!(
        text.contains(&format!("missing object: blob {}", digest(&lost))),
        "{text}"
    );
    assert!(
        text.contains("unreferenced object: blobs/sha256/00/00orphan"),
        "{text}"
    );
    assert!(orphan.exists(), "fsck without --repair must change nothing");

    let repaired = server
        .cli("fsck")
        .args(["--repair", "--grace-secs", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&repaired.stdout);
    assert!(repaired.status.success(), "{text}");
    assert!(!orphan.exists(), "the orphan object is deleted");
    // The running server learns of the repair (its cache is dropped within a second or so).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = c.head(&lost_url).send().await.unwrap().status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the repaired blob is still served: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept_url = server.url(&format!("/v2/{repo}/blobs/{}", digest(&kept)));
    assert_eq!(
        c.get(&kept_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        &kept[..]
    );
    // The forgotten blob can simply be pushed again, and then everything agrees.
    assert_eq!(
        push_blob(&c, &server.base, repo, &lost).await,
        StatusCode::CREATED
    );
    assert_eq!(
        c.get(&lost_url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        &lost[..]
    );
    let after = server
        .cli("fsck")
        .args(["--grace-secs", "0"])
        .output()
        .unwrap();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
}
