//! Scale-out: two Berth replicas sharing one PostgreSQL database and one S3 bucket behave as one
//! registry. Uploads move between replicas, pushes are visible everywhere at once, and concurrent
//! pushes of the same blob or tag through different replicas stay consistent. These tests always
//! run on the pg-s3 stack, whatever `BERTH_TEST_STACK` says.

use crate::support::{api, common, e2e};

use std::path::Path;

use api::*;
use common::TestServer;
use reqwest::Method;
use serde_json::json;

/// Two replicas over one database and bucket, with a client for each.
struct Pair {
    // Field order is drop order: the replica goes before the server owning the backends.
    b: TestServer,
    a: TestServer,
    api_a: Api,
    api_b: Api,
}

fn pair() -> Pair {
    let a = TestServer::start_on_pg_s3(&[], &[]);
    let b = a.start_replica();
    let api_a = Api::new(&a.base);
    let api_b = Api::new(&b.base);
    Pair { b, a, api_a, api_b }
}

impl Pair {
    fn logs(&self) -> String {
        format!(
            "--- replica A log ---\n{}\n--- replica B log ---\n{}",
            common::log_tail(&self.a.log()),
            common::log_tail(&self.b.log())
        )
    }
}

/// `location` (absolute or relative, from any replica) resolved against `api`'s server.
fn on(api: &Api, location: &str) -> String {
    let u = url::Url::parse(&api.url(location)).unwrap();
    let path_and_query = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    api.url(&path_and_query)
}

/// Asserts the blob reads back as exactly `data`.
async fn assert_blob(api: &Api, who: &str, repo: &str, digest: &str, data: &[u8]) {
    let resp = api.get_blob(repo, digest).await;
    let st = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        st,
        200,
        "{who}: GET blob {repo}@{digest}: {}",
        String::from_utf8_lossy(&body[..body.len().min(500)])
    );
    assert!(
        body[..] == data[..],
        "{who}: blob {digest} in {repo} differs ({} bytes served, {} pushed)",
        body.len(),
        data.len()
    );
}

/// GET the manifest by `reference`: returns (status, Docker-Content-Digest, body).
async fn manifest(api: &Api, repo: &str, reference: &str) -> (u16, Option<String>, Vec<u8>) {
    let resp = api.get_manifest(repo, reference).await;
    let st = resp.status().as_u16();
    let dcd = header(&resp, "docker-content-digest");
    (st, dcd, resp.bytes().await.unwrap().to_vec())
}

/// Monolithic push (`POST /blobs/uploads/?digest=` with the body): returns (status, body).
async fn post_monolithic(api: &Api, repo: &str, data: &[u8]) -> (u16, String) {
    let digest = sha256_digest(data);
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", OCTET)
            .body(data.to_vec()),
        )
        .await;
    let st = resp.status().as_u16();
    let dcd = header(&resp, "docker-content-digest");
    let text = resp.text().await.unwrap_or_default();
    if st == 201 {
        assert_eq!(
            dcd.as_deref(),
            Some(digest.as_str()),
            "Docker-Content-Digest"
        );
    }
    (st, text)
}

/// Stored blob objects: files under the bucket's `uploads/` prefix other than tail objects.
fn stored_objects(bucket: &Path) -> Vec<String> {
    let dir = bucket.join("uploads");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains(".tail."))
        .collect();
    names.sort();
    names
}

/// A chunked upload started on A (POST + PATCH) continues (PATCH) and finishes (PUT) on B, and
/// its status is the same seen from either replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_moves_between_replicas() {
    let p = pair();
    let repo = format!("scale/chunked-{}", rand_suffix());

    let resp = p
        .api_a
        .send(
            p.api_a
                .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 202, "POST on A\n{}", p.logs());
    let min = header(&resp, "oci-chunk-min-length").and_then(|v| v.parse::<usize>().ok());
    let loc = p.api_a.url(&header(&resp, "location").expect("Location"));

    // Chunks at least as large as the advertised minimum; with S3's 5 MiB parts, 6 MiB chunks
    // put whole parts and tails in storage on both replicas.
    let chunk = min.unwrap_or(0).max(6 * 1024 * 1024);
    let data = random_bytes(2 * chunk + 123_457);
    let digest = sha256_digest(&data);
    let (c1, rest) = data.split_at(chunk);
    let (c2, c3) = rest.split_at(chunk);

    let resp = p.api_a.patch_chunk(&loc, 0, c1).await;
    let loc = assert_chunk_accepted(&p.api_a, resp, chunk as u64 - 1).await;

    // The status from B matches what A acknowledged.
    let resp = p.api_b.get(&on(&p.api_b, &loc)).await;
    assert_eq!(
        resp.status().as_u16(),
        204,
        "upload status on B\n{}",
        p.logs()
    );
    assert_eq!(
        header(&resp, "range").and_then(|r| parse_upload_range(&r)),
        Some(chunk as u64 - 1),
        "upload status on B"
    );

    let loc_b = on(&p.api_b, &loc);
    let resp = p.api_b.patch_chunk(&loc_b, chunk as u64, c2).await;
    let loc_b = assert_chunk_accepted(&p.api_b, resp, 2 * chunk as u64 - 1).await;

    // ... and A sees B's progress.
    let resp = p.api_a.get(&on(&p.api_a, &loc_b)).await;
    assert_eq!(
        resp.status().as_u16(),
        204,
        "upload status on A\n{}",
        p.logs()
    );
    assert_eq!(
        header(&resp, "range").and_then(|r| parse_upload_range(&r)),
        Some(2 * chunk as u64 - 1),
        "upload status on A after B's chunk"
    );

    let url = p.api_b.with_query(&loc_b, "digest", &digest);
    let resp = p
        .api_b
        .send(
            p.api_b
                .req(Method::PUT, &url)
                .header("content-type", OCTET)
                .header("content-range", format!("{}-{}", 2 * chunk, data.len() - 1))
                .body(c3.to_vec()),
        )
        .await;
    assert_created_blob(resp, &digest).await;

    assert_blob(&p.api_a, "A", &repo, &digest, &data).await;
    assert_blob(&p.api_b, "B", &repo, &digest, &data).await;
    assert_eq!(
        stored_objects(&p.a.bucket_dir()).len(),
        1,
        "one object for the one blob"
    );
    // The finished session is gone on both replicas.
    for api in [&p.api_a, &p.api_b] {
        let resp = api.get(&on(api, &loc_b)).await;
        expect_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    }
}

/// A manifest pushed to A is pullable from B at once; retagging and deleting on one replica are
/// seen by the other at once (no stale tag cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_visible_on_the_other_replica_at_once() {
    let p = pair();
    let repo = format!("scale/visible-{}", rand_suffix());

    let first = p.api_a.push_image_with(&repo, "v1", 2, json!({})).await;
    let (st, dcd, body) = manifest(&p.api_b, &repo, "v1").await;
    assert_eq!(st, 200, "B: GET manifest pushed to A\n{}", p.logs());
    assert_eq!(dcd.as_deref(), Some(first.digest.as_str()));
    assert_eq!(body, first.manifest, "B serves other manifest bytes");
    let (st, _, body) = manifest(&p.api_b, &repo, &first.digest).await;
    assert_eq!(st, 200, "B: GET manifest by digest");
    assert_eq!(body, first.manifest);
    let resp = p.api_b.head_blob(&repo, &first.config_digest).await;
    assert_eq!(resp.status().as_u16(), 200, "B: HEAD config blob");
    for d in &first.layer_digests {
        let resp = p.api_b.get_blob(&repo, d).await;
        assert_eq!(resp.status().as_u16(), 200, "B: GET layer {d}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(sha256_digest(&bytes), *d, "B: layer bytes");
    }
    assert_eq!(p.api_b.tags(&repo).await, vec!["v1".to_string()]);

    // Warm B's view of the tag, move it on A, read it on B at once.
    let second = p.api_a.push_image(&repo, "v1").await;
    let (st, dcd, _) = manifest(&p.api_b, &repo, "v1").await;
    assert_eq!(st, 200);
    assert_eq!(
        dcd.as_deref(),
        Some(second.digest.as_str()),
        "B still resolves v1 to the old digest after A moved it"
    );

    // A manifest pushed to B by digest and tagged on A.
    let third = p.api_b.push_image(&repo, "").await;
    p.api_a
        .push_manifest(&repo, "v3", OCI_MANIFEST, &third.manifest)
        .await;
    let (st, dcd, _) = manifest(&p.api_b, &repo, "v3").await;
    assert_eq!(st, 200);
    assert_eq!(dcd.as_deref(), Some(third.digest.as_str()));

    // Delete on B: gone on A at once.
    let resp = p
        .api_b
        .delete(&format!("/v2/{repo}/manifests/{}", second.digest))
        .await;
    assert_eq!(resp.status().as_u16(), 202, "DELETE on B");
    let (st, _, _) = manifest(&p.api_a, &repo, "v1").await;
    assert_eq!(st, 404, "A still serves a tag whose manifest B deleted");
    let (st, _, _) = manifest(&p.api_a, &repo, &second.digest).await;
    assert_eq!(st, 404, "A still serves a manifest B deleted");
    let mut tags = p.api_a.tags(&repo).await;
    tags.sort();
    assert_eq!(tags, vec!["v3".to_string()]);
}

/// The same blob pushed at once through A and B: both get 201, both replicas serve it, and the
/// bucket holds it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_same_blob_pushes_store_it_once() {
    let p = pair();
    let rounds = 4;
    let mut pushed = Vec::new();
    for round in 0..rounds {
        // Even rounds push into one repository, odd rounds into two.
        let repo_a = format!("scale/blob-{round}-a");
        let repo_b = if round % 2 == 0 {
            repo_a.clone()
        } else {
            format!("scale/blob-{round}-b")
        };
        // Big enough for a multipart part plus a tail, so the pushes overlap in time.
        let data = random_bytes(6 * 1024 * 1024 + round * 1000 + 1);
        let digest = sha256_digest(&data);
        let ((st_a, body_a), (st_b, body_b)) = tokio::join!(
            post_monolithic(&p.api_a, &repo_a, &data),
            post_monolithic(&p.api_b, &repo_b, &data)
        );
        assert_eq!(
            (st_a, st_b),
            (201, 201),
            "round {round}: both pushes must succeed\nA: {body_a}\nB: {body_b}\n{}",
            p.logs()
        );
        for (api, who) in [(&p.api_a, "A"), (&p.api_b, "B")] {
            assert_blob(api, who, &repo_a, &digest, &data).await;
            assert_blob(api, who, &repo_b, &digest, &data).await;
        }
        pushed.push(digest);
        let objects = stored_objects(&p.a.bucket_dir());
        assert_eq!(
            objects.len(),
            pushed.len(),
            "round {round}: {} distinct blobs pushed, but the bucket holds these blob objects: \
             {objects:?}",
            pushed.len()
        );
    }
}

/// The same tag pushed at once through A and B with two different manifests: both get 201, one
/// digest wins, both replicas resolve the tag to it, and both manifests stay pullable by digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_same_tag_pushes_agree() {
    let p = pair();
    let repo = format!("scale/tag-{}", rand_suffix());
    let layer = random_bytes(1000);
    let layer_digest = p.api_a.push_blob(&repo, &layer).await;

    for round in 0..8 {
        let mut manifests = Vec::new();
        for api in [&p.api_a, &p.api_b] {
            let config = random_config();
            let config_digest = api.push_blob(&repo, &config).await;
            let m = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": desc_of(OCI_CONFIG, &config_digest, config.len()),
                "layers": [desc_of(OCI_LAYER, &layer_digest, layer.len())],
            });
            manifests.push(serde_json::to_vec(&m).unwrap());
        }
        let (ma, mb) = (&manifests[0], &manifests[1]);
        let (da, db) = (sha256_digest(ma), sha256_digest(mb));
        let (ra, rb) = tokio::join!(
            p.api_a.put_manifest(&repo, "latest", OCI_MANIFEST, ma),
            p.api_b.put_manifest(&repo, "latest", OCI_MANIFEST, mb)
        );
        let (sa, sb) = (ra.status().as_u16(), rb.status().as_u16());
        let (ta, tb) = (ra.text().await.unwrap(), rb.text().await.unwrap());
        assert_eq!(
            (sa, sb),
            (201, 201),
            "round {round}: both tag pushes must succeed\nA: {ta}\nB: {tb}\n{}",
            p.logs()
        );

        let (st_a, on_a, _) = manifest(&p.api_a, &repo, "latest").await;
        let (st_b, on_b, _) = manifest(&p.api_b, &repo, "latest").await;
        assert_eq!((st_a, st_b), (200, 200), "round {round}: GET latest");
        assert_eq!(
            on_a, on_b,
            "round {round}: replicas disagree on the tag's digest"
        );
        let winner = on_a.unwrap();
        assert!(
            winner == da || winner == db,
            "round {round}: tag resolves to {winner}, neither of the pushed {da} / {db}"
        );
        for api in [&p.api_a, &p.api_b] {
            for (d, m) in [(&da, ma), (&db, mb)] {
                let (st, _, body) = manifest(api, &repo, d).await;
                assert_eq!(st, 200, "round {round}: manifest {d} by digest");
                assert_eq!(&body, m);
            }
            assert_eq!(api.tags(&repo).await, vec!["latest".to_string()]);
        }
    }
}

/// Real client: skopeo pushes the test image to replica A and pulls it back from replica B.
#[test]
fn skopeo_push_to_one_replica_pull_from_the_other() {
    use e2e::image::{self, test_image};
    use e2e::{admin_creds, run_ok, skopeo, skopeo_manifest_as};

    let img = test_image();
    let a = TestServer::start_on_pg_s3(&[], &[]);
    let b = a.start_replica();
    let repo = "scale/skopeo";
    let creds = admin_creds();

    let mut c = skopeo();
    c.args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
        .arg(format!("oci:{}:{}", img.layout.display(), image::TAG))
        .arg(format!("docker://{}/{repo}:v1", a.addr));
    run_ok(c);

    let (digest, raw) = skopeo_manifest_as(Some(&creds), &format!("{}/{repo}:v1", b.addr));
    assert_eq!(digest, img.manifest_digest, "B reports another digest");
    assert_eq!(raw, img.manifest, "B serves other manifest bytes");

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("pulled");
    let mut c = skopeo();
    c.args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
        .arg(format!("docker://{}/{repo}:v1", b.addr))
        .arg(format!("oci:{}:pulled", dir.display()));
    run_ok(c);
    assert_eq!(image::layout_manifest_digest(&dir), img.manifest_digest);
    for d in [&img.layer_digest, &img.config_digest] {
        assert_eq!(
            std::fs::read(image::layout_blob(&dir, d)).unwrap(),
            std::fs::read(image::layout_blob(&img.layout, d)).unwrap(),
            "blob {d} pulled from B differs from the one pushed to A"
        );
    }

    // And back the other way: from B into another repository through A.
    let mut c = skopeo();
    c.args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(["--src-creds", &creds, "--dest-creds", &creds])
        .arg(format!("docker://{}/{repo}:v1", b.addr))
        .arg(format!("docker://{}/{repo}-copy:v2", a.addr));
    run_ok(c);
    let (digest, _) = skopeo_manifest_as(Some(&creds), &format!("{}/{repo}-copy:v2", b.addr));
    assert_eq!(digest, img.manifest_digest);
    drop(b);
}
