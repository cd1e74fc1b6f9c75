//! Storage that refuses writes: a full disk (the data dir on a 64 MiB tmpfs, so the SQLite
//! database and the blobs fill together), blob storage on a file system remounted read-only,
//! and an S3 server whose disk is full. Writes are refused with a clear answer (507 or 503, OCI
//! code `UNAVAILABLE`, a message naming the cause), a failed upload's bytes are gone at once,
//! cancelling works, reads keep working, `/readyz` stays 200 and says writes are degraded, a
//! restart succeeds, and everything recovers by itself once space or write access returns.
//!
//! The tests mount file systems, which needs root (CI runs as root).

use crate::support::{api, common};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::*;
use berth::meta::{Meta, NewManifest};
use berth::oci::{Algorithm, Digest, RepoName, Tag};
use common::TestServer;
use reqwest::Method;

/// How long recovery may take once space or write access is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// A file system mounted at a directory until dropped.
struct Mount {
    dir: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (such as `64m`) at `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        run_mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir,
        );
        Mount {
            dir: dir.to_owned(),
        }
    }

    /// Remounts read-only (`ro`) or read-write (`rw`). A remount to read-only fails while a file
    /// is open for writing (a request or probe in flight), so it is retried for a while.
    fn remount(&self, mode: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = std::process::Command::new("mount")
                .args(["-o", &format!("remount,{mode}")])
                .arg(&self.dir)
                .output()
                .expect("run mount");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mount -o remount,{mode} {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: whatever still holds a file there cannot keep the mount.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

fn run_mount(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {} (these tests mount file systems and need root, as CI has)",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fills the file system holding `dir` to the last byte with a file in `dir`, as something
/// else on the disk would; deleting the file frees the space again.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    for size in [1 << 20, 4096, 1] {
        let buf = vec![0u8; size];
        while file.write_all(&buf).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

/// Asserts `resp` refuses a write with `status`, OCI code `UNAVAILABLE` and a message that
/// contains each of `words` (case-insensitive); never a 500.
async fn expect_refused(
    what: &str,
    server: &TestServer,
    resp: reqwest::Response,
    status: u16,
    words: &[&str],
) {
    let st = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(
        st,
        status,
        "{what}: expected {status}, got {st}: {body}\n--- log tail ---\n{}",
        common::log_tail(&server.log())
    );
    check_error_body(what, st, &body, &["UNAVAILABLE"]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = v["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    for word in words {
        assert!(
            message.contains(&word.to_lowercase()),
            "{what}: the message should say {word:?}: {body}"
        );
    }
}

/// A 507 that says the registry's storage is full.
async fn expect_full(what: &str, server: &TestServer, resp: reqwest::Response) {
    expect_refused(what, server, resp, 507, &["insufficient storage", "full"]).await;
}

/// GET /readyz: (status, body).
async fn readyz(api: &Api, query: &str) -> (u16, String) {
    let resp = api.get(&format!("/readyz{query}")).await;
    let st = resp.status().as_u16();
    (st, resp.text().await.unwrap_or_default())
}

/// Asserts /readyz is 200 and says writes are degraded (naming `cause`), and that
/// `?require=writes` makes it 503.
async fn expect_writes_degraded(api: &Api, cause: &str) {
    let (st, body) = readyz(api, "").await;
    assert_eq!(st, 200, "/readyz with writes refused (reads work): {body}");
    assert!(
        body.starts_with("ready; writes degraded:") && body.to_lowercase().contains(cause),
        "/readyz should say writes are degraded ({cause}): {body}"
    );
    let (st, body) = readyz(api, "?require=writes").await;
    assert_eq!(
        st, 503,
        "/readyz?require=writes with writes refused: {body}"
    );
}

/// Pulls an image pushed earlier: its manifest and every blob, byte for byte.
async fn assert_pulls(api: &Api, repo: &str, tag: &str, image: &Pushed) {
    let resp = api.get_manifest(repo, tag).await;
    assert_eq!(resp.status().as_u16(), 200, "GET manifest {repo}:{tag}");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), image.manifest);
    for d in image.layer_digests.iter().chain([&image.config_digest]) {
        let resp = api.get_blob(repo, d).await;
        assert_eq!(resp.status().as_u16(), 200, "GET blob {repo}@{d}");
        assert_eq!(sha256_digest(&resp.bytes().await.unwrap()), *d);
    }
}

/// PATCHes `len` random bytes to an upload as one streamed body (as docker and skopeo push),
/// in 1 MiB chunks, without holding them in memory.
async fn patch_stream(api: &Api, location: &str, len: usize) -> reqwest::Response {
    const CHUNK: usize = 1 << 20;
    let chunks = (0..len.div_ceil(CHUNK)).map(move |i| {
        Ok::<_, std::io::Error>(bytes::Bytes::from(random_bytes(CHUNK.min(len - i * CHUNK))))
    });
    api.send(
        api.req(Method::PATCH, location)
            .header("content-type", OCTET)
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
    )
    .await
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

/// Bytes held by upload sessions in filesystem storage.
fn staged_bytes(storage: &Path) -> u64 {
    std::fs::read_dir(storage.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// An image manifest over blobs of `image` (a new tag for the same content needs no new blob).
fn manifest_with(image: &Pushed, note: &str) -> Vec<u8> {
    let mut m: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    m["annotations"] = serde_json::json!({ "note": note });
    serde_json::to_vec(&m).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Full disk
// ------------------------------------------------------------------------------------------------

/// The data dir (SQLite database and blobs) on a 64 MiB tmpfs: a 100 MB push is refused with
/// 507 and its bytes are gone at once; cancelling works; with the disk full (something else
/// filled it), pushes and tag PUTs are refused with 507, pulls work, /readyz says writes are
/// degraded, `fsck --repair` and restarts succeed; once space returns, pushes (also one that
/// creates a repository) work without a restart, and stay after a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Mount::tmpfs(&dir.path().join("data"), "64m");
    let mut server = TestServer::start_in(dir.path(), false, &[], &[]);
    let storage = server.data_dir().join("storage");
    let api = Api::new(&server.base);
    let repo = "full/app";
    let before = api.push_image(repo, "v1").await;

    // More than the disk holds, streamed in one PATCH.
    let location = api.start_upload(repo).await;
    let resp = patch_stream(&api, &location, 100_000_000).await;
    expect_full("a 100 MB PATCH into 64 MiB", &server, resp).await;
    assert_eq!(
        staged_bytes(&storage),
        0,
        "the refused upload's bytes should be gone as soon as it is answered"
    );
    let resp = api.delete(&location).await;
    assert_eq!(resp.status().as_u16(), 204, "cancel the refused upload");
    let resp = api.get(&location).await;
    assert_eq!(resp.status().as_u16(), 404, "the cancelled upload is gone");

    // Something else fills the disk.
    let filler = fill(&disk.dir);
    let resp = post_monolithic(&api, repo, &random_bytes(100_000)).await;
    expect_full("a blob push on a full disk", &server, resp).await;
    // Tag PUTs need only the database: refused when it cannot grow (SQLite may still have room
    // in its write-ahead log, and then the tag is stored), never a 500.
    for i in 0..5 {
        let tag = format!("t{i}");
        let body = manifest_with(&before, &tag);
        let resp = api.put_manifest(repo, &tag, OCI_MANIFEST, &body).await;
        match resp.status().as_u16() {
            201 => {}
            _ => expect_full("a tag PUT on a full disk", &server, resp).await,
        }
    }
    assert_pulls(&api, repo, "v1", &before).await;
    expect_writes_degraded(&api, "full").await;
    let out = server.cli("fsck").arg("--repair").output().unwrap();
    assert!(
        out.status.success(),
        "fsck --repair on a full disk: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Restarts on the full disk: graceful, then a crash.
    server.terminate();
    server.restart();
    assert_pulls(&api, repo, "v1", &before).await;
    expect_writes_degraded(&api, "full").await;
    server.restart();
    assert_pulls(&api, repo, "v1", &before).await;

    // Space returns: writes work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    common::wait_until(
        "/readyz ready once space returns",
        &server,
        RECOVERY_BOUND,
        || async { readyz(&api, "").await == (200, "ready".to_string()) },
    )
    .await;
    let created = api.push_image("full/new", "v1").await;
    let again = api.push_image(repo, "v2").await;
    let (repos, _) = catalog(&api).await;
    assert!(
        repos.contains(&"full/new".to_string()),
        "the new repository is listed: {repos:?}"
    );
    assert_pulls(&api, "full/new", "v1", &created).await;

    // What was acknowledged is durable: nothing was left in a transaction that never commits.
    server.restart();
    assert_pulls(&api, "full/new", "v1", &created).await;
    assert_pulls(&api, repo, "v2", &again).await;
    assert_pulls(&api, repo, "v1", &before).await;
    drop(server);
}

/// GET /v2/_catalog: the names and whether more follow.
async fn catalog(api: &Api) -> (Vec<String>, bool) {
    let resp = api.get("/v2/_catalog").await;
    assert_eq!(resp.status().as_u16(), 200, "catalog");
    let more = resp.headers().contains_key("link");
    let v: serde_json::Value = resp.json().await.unwrap();
    (json_strings(&v["repositories"]), more)
}

/// SQLite on a full disk rolls a failed transaction back by itself; the connection it ran on
/// must not keep serving as if a transaction were open (sqlx would then open one with a
/// SAVEPOINT that nothing commits, and every later write would vanish: a repository created
/// after space returned was not found, and was gone after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_after_a_full_disk_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Mount::tmpfs(&dir.path().join("db"), "4m");
    let url = format!("sqlite://{}/berth.db?mode=rwc", disk.dir.display());
    let meta = Meta::connect(&url, 4, Duration::from_secs(5))
        .await
        .unwrap();
    let repo = meta
        .repositories()
        .ensure_repository(&RepoName::parse("a").unwrap())
        .await
        .unwrap();
    let filler = fill(&disk.dir);
    for i in 0..10 {
        // Large manifests, so the transaction cannot fit in the database's free pages.
        let mut content = format!("{{\"schemaVersion\":2,\"n\":{i},\"pad\":\"").into_bytes();
        content.extend_from_slice(&[b'x'; 200_000]);
        content.extend_from_slice(b"\"}");
        let manifest = NewManifest {
            digest: Digest::of(Algorithm::Sha256, &content),
            media_type: OCI_MANIFEST.into(),
            artifact_type: None,
            content,
            subject: None,
            annotations: None,
            depth: 0,
            references: vec![],
            required_blobs: vec![],
            required_manifests: vec![],
            replicate_to: vec![],
            cache_fill: None,
        };
        let tag = Tag::parse(&format!("t{i}")).unwrap();
        match meta.manifests().put_manifest(repo, &manifest, &[tag]).await {
            Err(berth::error::Error::InsufficientStorage(_)) => {}
            other => {
                panic!("manifest {i} on a full disk: expected InsufficientStorage, got {other:?}")
            }
        }
    }
    std::fs::remove_file(&filler).unwrap();
    let name = RepoName::parse("b").unwrap();
    let id = meta.repositories().ensure_repository(&name).await.unwrap();
    assert_eq!(
        meta.repositories().repository_id(&name).await.unwrap(),
        Some(id),
        "a repository created after space returned is visible to readers"
    );
    meta.close().await;
    let meta = Meta::connect(&url, 4, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        meta.repositories().repository_id(&name).await.unwrap(),
        Some(id),
        "and still there after reopening the database"
    );
    meta.close().await;
}

// ------------------------------------------------------------------------------------------------
// Read-only blob storage
// ------------------------------------------------------------------------------------------------

/// Blob storage on a file system remounted read-only: uploads (monolithic, chunked, new
/// sessions) answer 503 `UNAVAILABLE` saying storage refuses writes, pulls work, /readyz says
/// writes are degraded, a restart succeeds; remounted read-write, an upload begun before
/// continues and pushes work, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_blob_storage_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Mount::tmpfs(&dir.path().join("storage"), "64m");
    let storage_url = format!("file://{}", blobs.dir.display());
    let mut server = TestServer::start_in(
        dir.path(),
        false,
        &[],
        &[("BERTH_STORAGE_URL", &storage_url)],
    );
    let api = Api::new(&server.base);
    let repo = "readonly/app";
    let before = api.push_image(repo, "v1").await;
    let chunk1 = random_bytes(100_000);
    let chunk2 = random_bytes(50_000);
    let upload = api.start_upload(repo).await;
    let resp = api.patch_chunk(&upload, 0, &chunk1).await;
    let upload = assert_chunk_accepted(&api, resp, chunk1.len() as u64 - 1).await;

    blobs.remount("ro");
    let refused = ["refuses writes", "read-only"];
    let resp = post_monolithic(&api, repo, &random_bytes(10_000)).await;
    expect_refused("a blob push", &server, resp, 503, &refused).await;
    let resp = api.patch_chunk(&upload, chunk1.len() as u64, &chunk2).await;
    expect_refused("a PATCH", &server, resp, 503, &refused).await;
    let resp = api
        .send(api.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
        .await;
    expect_refused("a new upload", &server, resp, 503, &refused).await;
    assert_pulls(&api, repo, "v1", &before).await;
    expect_writes_degraded(&api, "read-only").await;

    server.terminate();
    server.restart();
    assert_pulls(&api, repo, "v1", &before).await;
    expect_writes_degraded(&api, "read-only").await;

    blobs.remount("rw");
    common::wait_until(
        "/readyz ready once writable",
        &server,
        RECOVERY_BOUND,
        || async { readyz(&api, "").await == (200, "ready".to_string()) },
    )
    .await;
    let resp = api.patch_chunk(&upload, chunk1.len() as u64, &chunk2).await;
    let upload = assert_chunk_accepted(&api, resp, (chunk1.len() + chunk2.len()) as u64 - 1).await;
    let whole = [chunk1, chunk2].concat();
    let digest = sha256_digest(&whole);
    assert_created_blob(api.put_upload(&upload, &digest, None).await, &digest).await;
    let after = api.push_image(repo, "v2").await;
    assert_pulls(&api, repo, "v2", &after).await;
    drop(server);
}

// ------------------------------------------------------------------------------------------------
// S3 server out of space
// ------------------------------------------------------------------------------------------------

/// The S3 server's disk is full (s3s-fs on a 64 MiB tmpfs, filled): uploads answer 503
/// `UNAVAILABLE` naming the storage, pulls work, /readyz says writes are degraded; once space
/// returns, pushes work without a restart. Always on the pg-s3 stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_out_of_space_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let s3_disk = Mount::tmpfs(&dir.path().join("s3"), "64m");
    let server = TestServer::start_in(dir.path(), true, &[], &[]);
    let api = Api::new(&server.base);
    let repo = "s3full/app";
    let before = api.push_image(repo, "v1").await;

    let upload = api.start_upload(repo).await;
    let filler = fill(&s3_disk.dir);
    let resp = post_monolithic(&api, repo, &random_bytes(100_000)).await;
    expect_refused("a small blob push", &server, resp, 503, &["storage"]).await;
    // One multipart part (the minimum part size is 5 MiB).
    let resp = api.patch_chunk(&upload, 0, &random_bytes(6 << 20)).await;
    expect_refused("a 6 MiB PATCH", &server, resp, 503, &["storage"]).await;
    assert_pulls(&api, repo, "v1", &before).await;
    expect_writes_degraded(&api, "storage").await;
    let resp = api.delete(&upload).await;
    assert_eq!(resp.status().as_u16(), 204, "cancel an upload");

    std::fs::remove_file(&filler).unwrap();
    common::wait_until(
        "/readyz ready once space returns",
        &server,
        RECOVERY_BOUND,
        || async { readyz(&api, "").await == (200, "ready".to_string()) },
    )
    .await;
    let after = api.push_image(repo, "v2").await;
    assert_pulls(&api, repo, "v2", &after).await;
    drop(server);
}
