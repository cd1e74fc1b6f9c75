//! Push: blob uploads (monolithic POST, POST+PUT, chunked PATCH, streamed PATCH, status, cancel, sha512, mount),
//! the failure cases of the upload protocol, and upload durability across restarts and crashes
//! (distribution-spec "Push", end-4a/4b/4c, end-5, end-6, end-11, end-13, end-14).

use crate::support::{api, common};

use std::time::Duration;

use api::*;
use common::TestServer;
use reqwest::Method;

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// Asserts a blob is readable with exactly `data`.
async fn assert_blob(api: &Api, repo: &str, digest: &str, data: &[u8]) {
    let resp = api.get_blob(repo, digest).await;
    assert_eq!(resp.status().as_u16(), 200, "GET blob {digest} in {repo}");
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest)
    );
    let body = resp.bytes().await.unwrap();
    assert!(
        body[..] == data[..],
        "blob {digest} in {repo}: body differs ({} vs {} bytes)",
        body.len(),
        data.len()
    );
}

/// Chooses a chunk size honouring `OCI-Chunk-Min-Length` when the POST advertised one.
fn chunk_size(min: Option<u64>, fallback: usize) -> usize {
    min.map(|m| (m as usize).max(fallback)).unwrap_or(fallback)
}

/// POST `/blobs/uploads/`: 202 with a `Location`, returns (location, advertised chunk minimum).
async fn post_upload(api: &Api, repo: &str) -> (String, Option<u64>) {
    let resp = api
        .send(
            api.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("content-length", "0"),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 202, "POST uploads");
    let loc = header(&resp, "location").expect("Location on 202");
    let min = header(&resp, "oci-chunk-min-length").map(|v| {
        v.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("OCI-Chunk-Min-Length not an integer: {v:?}"))
    });
    (api.url(&loc), min)
}

/// end-4b: single POST `?digest=` with the body -> 201 with `Location` and `Docker-Content-Digest`.
/// (202 is allowed by the spec for registries without single-POST support; the client then PUTs.)
#[tokio::test]
async fn monolithic_single_post() {
    let (_s, api) = setup();
    let data = random_bytes(5000);
    let digest = sha256_digest(&data);
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", OCTET)
            .body(data.clone()),
        )
        .await;
    match resp.status().as_u16() {
        201 => {
            let loc = assert_created_blob(resp, &digest).await;
            let r = api.get(&loc).await;
            assert_eq!(r.status().as_u16(), 200, "GET Location of 201");
            assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
        }
        202 => {
            let loc = header(&resp, "location").expect("202 without Location");
            let r = api.put_upload(&loc, &digest, Some(&data)).await;
            assert_created_blob(r, &digest).await;
        }
        other => panic!(
            "single POST: {other}: {}",
            resp.text().await.unwrap_or_default()
        ),
    }
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// end-4a + end-6: POST (202, Location, optional integer `OCI-Chunk-Min-Length`), then PUT `?digest=` with the
/// whole body -> 201 with `Location` (pullable) and `Docker-Content-Digest`.
#[tokio::test]
async fn post_then_put_monolithic() {
    let (_s, api) = setup();
    let (loc, _min) = post_upload(&api, "team/app").await;
    let data = random_bytes(10_000);
    let digest = sha256_digest(&data);
    let resp = api.put_upload(&loc, &digest, Some(&data)).await;
    let blob_loc = assert_created_blob(resp, &digest).await;
    let r = api.get(&blob_loc).await;
    assert_eq!(r.status().as_u16(), 200, "GET the 201 Location");
    assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// Pushing the same blob twice is fine (deduplication, both 201).
#[tokio::test]
async fn pushing_existing_blob_again_is_201() {
    let (_s, api) = setup();
    let data = random_bytes(3000);
    let d1 = api.push_blob("team/app", &data).await;
    let d2 = api.push_blob("team/app", &data).await;
    assert_eq!(d1, d2);
    assert_blob(&api, "team/app", &d1, &data).await;
}

/// end-5: chunked PATCHes with `Content-Range: a-b`: each 202 with `Range: 0-b` and `Location`; then PUT without
/// a body closes the upload.
#[tokio::test]
async fn chunked_upload_with_content_range() {
    let (_s, api) = setup();
    let (mut loc, min) = post_upload(&api, "team/app").await;
    let cs = chunk_size(min, 4096);
    let data = random_bytes(cs * 2 + 1234);
    let digest = sha256_digest(&data);
    let mut start = 0usize;
    while start < data.len() {
        let end = (start + cs).min(data.len());
        let resp = api.patch_chunk(&loc, start as u64, &data[start..end]).await;
        loc = assert_chunk_accepted(&api, resp, end as u64 - 1).await;
        start = end;
    }
    let resp = api.put_upload(&loc, &digest, None).await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// The final chunk may travel in the closing PUT (with `Content-Range`).
#[tokio::test]
async fn chunked_upload_last_chunk_in_put() {
    let (_s, api) = setup();
    let (loc, min) = post_upload(&api, "team/app").await;
    let cs = chunk_size(min, 4096);
    let data = random_bytes(cs + 777);
    let digest = sha256_digest(&data);
    let resp = api.patch_chunk(&loc, 0, &data[..cs]).await;
    let loc = assert_chunk_accepted(&api, resp, cs as u64 - 1).await;
    let url = api.with_query(&loc, "digest", &digest);
    let resp = api
        .send(
            api.req(Method::PUT, &url)
                .header("content-type", OCTET)
                .header("content-range", format!("{}-{}", cs, data.len() - 1))
                .body(data[cs..].to_vec()),
        )
        .await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// Out-of-order chunks -> 416 carrying the current `Range`; the GET status agrees; the upload then continues.
#[tokio::test]
async fn out_of_order_chunk_is_416_and_upload_recovers() {
    let (_s, api) = setup();
    let (loc, min) = post_upload(&api, "team/app").await;
    let cs = chunk_size(min, 1000);
    let data = random_bytes(cs * 3);
    let digest = sha256_digest(&data);
    let resp = api.patch_chunk(&loc, 0, &data[..cs]).await;
    let loc = assert_chunk_accepted(&api, resp, cs as u64 - 1).await;

    // Skip ahead (gap) and go back (overlap): both 416 with the current Range.
    for bad_start in [2 * cs, 0, cs - 10] {
        let resp = api
            .patch_chunk(&loc, bad_start as u64, &data[bad_start..bad_start + cs / 2])
            .await;
        assert_eq!(resp.status().as_u16(), 416, "chunk starting at {bad_start}");
        let range = header(&resp, "range").expect("416 without Range");
        assert_eq!(
            parse_upload_range(&range),
            Some(cs as u64 - 1),
            "416 Range {range:?}"
        );
    }
    // Also an out-of-order final chunk in the PUT.
    let url = api.with_query(&loc, "digest", &digest);
    let resp = api
        .send(
            api.req(Method::PUT, &url)
                .header("content-type", OCTET)
                .header("content-range", format!("{}-{}", 2 * cs, 3 * cs - 1))
                .body(data[2 * cs..].to_vec()),
        )
        .await;
    assert_eq!(
        resp.status().as_u16(),
        416,
        "out-of-order final chunk in PUT"
    );

    // end-13: status
    let resp = api.get(&loc).await;
    assert_eq!(resp.status().as_u16(), 204, "upload status");
    let range = header(&resp, "range").expect("status Range");
    assert_eq!(parse_upload_range(&range), Some(cs as u64 - 1));
    let loc = api.url(&header(&resp, "location").expect("status Location"));

    let resp = api.patch_chunk(&loc, cs as u64, &data[cs..]).await;
    let loc = assert_chunk_accepted(&api, resp, data.len() as u64 - 1).await;
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// How docker, skopeo and podman push: one PATCH without `Content-Range` (chunked transfer encoding, no
/// Content-Length), then `PUT ?digest=` with no body.
#[tokio::test]
async fn streamed_patch_then_put_without_body() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(300_000);
    let digest = sha256_digest(&data);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(7000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let resp = api
        .send(
            api.req(Method::PATCH, &loc)
                .header("content-type", OCTET)
                .body(body),
        )
        .await;
    let loc = assert_chunk_accepted(&api, resp, data.len() as u64 - 1).await;
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// A streamed PATCH with a plain body (Content-Length, no Content-Range) behaves the same.
#[tokio::test]
async fn patch_without_content_range_with_length() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(12_345);
    let digest = sha256_digest(&data);
    let resp = api
        .send(
            api.req(Method::PATCH, &loc)
                .header("content-type", OCTET)
                .body(data.clone()),
        )
        .await;
    let loc = assert_chunk_accepted(&api, resp, data.len() as u64 - 1).await;
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// end-13: GET on an active upload -> 204 with `Range`, `Location` and `Docker-Upload-UUID`.
#[tokio::test]
async fn upload_status_get() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let resp = api.get(&loc).await;
    assert_eq!(resp.status().as_u16(), 204, "status of an empty upload");
    let range = header(&resp, "range").expect("Range on empty upload status");
    assert!(range.starts_with("0-"), "empty upload Range {range:?}");
    assert!(header(&resp, "location").is_some(), "status Location");
    let uuid = header(&resp, "docker-upload-uuid").expect("Docker-Upload-UUID");
    assert!(!uuid.trim().is_empty());

    let data = random_bytes(2500);
    let resp = api.patch_chunk(&loc, 0, &data).await;
    let loc = assert_chunk_accepted(&api, resp, 2499).await;
    let resp = api.get(&loc).await;
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        header(&resp, "range")
            .as_deref()
            .and_then(parse_upload_range),
        Some(2499)
    );
    assert_eq!(
        header(&resp, "docker-upload-uuid").as_deref(),
        Some(uuid.as_str()),
        "same session id"
    );
    assert_eq!(resp.bytes().await.unwrap().len(), 0, "204 has no body");
}

/// end-14: DELETE on an upload -> 204; the session is gone (404 `BLOB_UPLOAD_UNKNOWN` for GET, PATCH, PUT).
#[tokio::test]
async fn cancel_upload() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(1000);
    let resp = api.patch_chunk(&loc, 0, &data).await;
    let loc = assert_chunk_accepted(&api, resp, 999).await;
    let resp = api
        .send(api.req(Method::DELETE, &loc).header("content-length", "0"))
        .await;
    assert_eq!(resp.status().as_u16(), 204, "cancel");
    expect_error(api.get(&loc).await, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    expect_error(
        api.patch_chunk(&loc, 1000, &data).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    )
    .await;
    expect_error(
        api.put_upload(&loc, &sha256_digest(&data), None).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    )
    .await;
    let again = api
        .send(api.req(Method::DELETE, &loc).header("content-length", "0"))
        .await;
    expect_error(again, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    assert_eq!(
        api.head_blob("team/app", &sha256_digest(&data))
            .await
            .status()
            .as_u16(),
        404
    );
}

/// A finished upload's session is closed: its URL answers 404 `BLOB_UPLOAD_UNKNOWN`.
#[tokio::test]
async fn completed_upload_session_is_gone() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(100);
    let digest = sha256_digest(&data);
    assert_created_blob(api.put_upload(&loc, &digest, Some(&data)).await, &digest).await;
    expect_error(api.get(&loc).await, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    expect_error(
        api.patch_chunk(&loc, 100, &data).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    )
    .await;
}

/// end-4c: `?digest-algorithm=sha512`, chunks, `PUT ?digest=sha512:...` -> 201; pull by the sha512 digest.
#[tokio::test]
async fn sha512_chunked_with_digest_algorithm() {
    let (_s, api) = setup();
    let loc = api
        .start_upload_query("team/app", "digest-algorithm=sha512")
        .await;
    let data = random_bytes(9000);
    let digest = sha512_digest(&data);
    let resp = api.patch_chunk(&loc, 0, &data).await;
    let loc = assert_chunk_accepted(&api, resp, 8999).await;
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
    let resp = api.head_blob("team/app", &digest).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(content_length(&resp), Some(9000));
}

/// sha512 via the digest alone: single POST `?digest=sha512:...` and POST + PUT `?digest=sha512:...`.
#[tokio::test]
async fn sha512_via_digest_parameter() {
    let (_s, api) = setup();
    let data = random_bytes(4000);
    let digest = sha512_digest(&data);
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", OCTET)
            .body(data.clone()),
        )
        .await;
    match resp.status().as_u16() {
        201 => {
            assert_created_blob(resp, &digest).await;
        }
        202 => {
            let loc = header(&resp, "location").expect("202 Location");
            assert_created_blob(api.put_upload(&loc, &digest, Some(&data)).await, &digest).await;
        }
        other => panic!(
            "POST ?digest=sha512: {other}: {}",
            resp.text().await.unwrap_or_default()
        ),
    }
    assert_blob(&api, "team/app", &digest, &data).await;

    let data2 = random_bytes(4001);
    let digest2 = sha512_digest(&data2);
    api.push_blob_as("team/app", &data2, &digest2).await;
    assert_blob(&api, "team/app", &digest2, &data2).await;
}

/// end-11: mount from another repository -> 201 with `Location` and `Docker-Content-Digest`; readable in both.
#[tokio::test]
async fn cross_repository_mount() {
    let (_s, api) = setup();
    let data = random_bytes(6000);
    let digest = api.push_blob("team/src", &data).await;
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src"),
            )
            .header("content-length", "0"),
        )
        .await;
    let loc = assert_created_blob(resp, &digest).await;
    let r = api.get(&loc).await;
    assert_eq!(r.status().as_u16(), 200, "GET mount Location");
    assert_blob(&api, "team/dst", &digest, &data).await;
    assert_blob(&api, "team/src", &digest, &data).await;
}

/// Mount without `from` (the registry MAY look it up anywhere it is readable): 201 on Berth.
#[tokio::test]
async fn mount_without_from() {
    let (_s, api) = setup();
    let data = random_bytes(6000);
    let digest = api.push_blob("team/src", &data).await;
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/anon/blobs/uploads/?mount={digest}"),
            )
            .header("content-length", "0"),
        )
        .await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api, "team/anon", &digest, &data).await;
}

/// An impossible mount (unknown blob, unknown source) -> 202 with a normal upload session that then works
/// (skopeo's blob-info cache does this against a wiped server).
#[tokio::test]
async fn impossible_mount_falls_back_to_upload() {
    let (_s, api) = setup();
    api.push_image("team/src", "v1").await;
    for from in ["team/src", "no/such/repo"] {
        let data = random_bytes(2048);
        let digest = sha256_digest(&data);
        let resp = api
            .send(
                api.req(
                    Method::POST,
                    &format!("/v2/team/dst/blobs/uploads/?mount={digest}&from={from}"),
                )
                .header("content-length", "0"),
            )
            .await;
        assert_eq!(
            resp.status().as_u16(),
            202,
            "mount of unknown blob from {from}"
        );
        let loc = header(&resp, "location").expect("202 Location");
        assert_eq!(
            api.head_blob("team/dst", &digest).await.status().as_u16(),
            404
        );
        let resp = api.patch_chunk(&loc, 0, &data).await;
        let loc = assert_chunk_accepted(&api, resp, 2047).await;
        assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
        assert_blob(&api, "team/dst", &digest, &data).await;
    }
}

/// Wrong digest at PUT -> 400 `DIGEST_INVALID`, nothing visible under either digest.
#[tokio::test]
async fn wrong_digest_at_put_is_400_and_invisible() {
    let (_s, api) = setup();
    let data = random_bytes(3000);
    let claimed = unknown_digest();
    let loc = api.start_upload("team/app").await;
    expect_error(
        api.put_upload(&loc, &claimed, Some(&data)).await,
        400,
        &["DIGEST_INVALID"],
    )
    .await;
    assert_eq!(
        api.head_blob("team/app", &claimed).await.status().as_u16(),
        404
    );
    assert_eq!(
        api.head_blob("team/app", &sha256_digest(&data))
            .await
            .status()
            .as_u16(),
        404
    );

    // Chunked then a wrong digest: same.
    let loc = api.start_upload("team/app").await;
    let loc = assert_chunk_accepted(&api, api.patch_chunk(&loc, 0, &data).await, 2999).await;
    expect_error(
        api.put_upload(&loc, &claimed, None).await,
        400,
        &["DIGEST_INVALID"],
    )
    .await;
    assert_eq!(
        api.head_blob("team/app", &claimed).await.status().as_u16(),
        404
    );
    assert_eq!(
        api.head_blob("team/app", &sha256_digest(&data))
            .await
            .status()
            .as_u16(),
        404
    );

    // Single POST with a wrong digest: 400 DIGEST_INVALID (or 202 from a registry without single POST).
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={claimed}"),
            )
            .header("content-type", OCTET)
            .body(data.clone()),
        )
        .await;
    if resp.status().as_u16() != 202 {
        expect_error(resp, 400, &["DIGEST_INVALID"]).await;
    }
    assert_eq!(
        api.head_blob("team/app", &claimed).await.status().as_u16(),
        404
    );
    assert_eq!(
        api.head_blob("team/app", &sha256_digest(&data))
            .await
            .status()
            .as_u16(),
        404
    );

    // A sha512 digest that does not match either.
    let loc = api.start_upload("team/app").await;
    let wrong512 = sha512_digest(b"something else");
    expect_error(
        api.put_upload(&loc, &wrong512, Some(&data)).await,
        400,
        &["DIGEST_INVALID"],
    )
    .await;
    assert_eq!(
        api.head_blob("team/app", &wrong512).await.status().as_u16(),
        404
    );
}

/// Unknown algorithms -> 400 `DIGEST_INVALID` or `UNSUPPORTED`, never 5xx.
#[tokio::test]
async fn unknown_digest_algorithm_is_400() {
    let (_s, api) = setup();
    let data = random_bytes(100);
    let md5 = "md5:0123456789abcdef0123456789abcdef";
    let loc = api.start_upload("team/app").await;
    expect_error(
        api.put_upload(&loc, md5, Some(&data)).await,
        400,
        &["DIGEST_INVALID", "UNSUPPORTED"],
    )
    .await;

    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?digest={md5}"),
            )
            .header("content-type", OCTET)
            .body(data.clone()),
        )
        .await;
    expect_error(resp, 400, &["DIGEST_INVALID", "UNSUPPORTED"]).await;

    let resp = api
        .send(
            api.req(
                Method::POST,
                "/v2/team/app/blobs/uploads/?digest-algorithm=md5",
            )
            .header("content-length", "0"),
        )
        .await;
    expect_error(resp, 400, &["DIGEST_INVALID", "UNSUPPORTED"]).await;

    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/app/blobs/uploads/?mount={md5}&from=team/app"),
            )
            .header("content-length", "0"),
        )
        .await;
    let st = not_5xx("mount with md5 digest", resp.status().as_u16());
    assert!(st == 400 || st == 202, "mount of an md5 digest: {st}");
}

/// An upload id used under another repository's path -> 404 `BLOB_UPLOAD_UNKNOWN`, and the session in the
/// original repository is untouched.
#[tokio::test]
async fn upload_id_from_another_repository_is_unknown() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/a").await;
    let marker = "/v2/team/a/blobs/uploads/";
    let pos = loc
        .find(marker)
        .unwrap_or_else(|| panic!("upload Location {loc:?} does not contain {marker}"));
    let foreign = format!(
        "{}/v2/team/b/blobs/uploads/{}",
        api.base,
        &loc[pos + marker.len()..]
    );
    api.push_image("team/b", "v1").await; // team/b exists
    let data = random_bytes(500);
    let digest = sha256_digest(&data);
    expect_error(api.get(&foreign).await, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    expect_error(
        api.patch_chunk(&foreign, 0, &data).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    )
    .await;
    expect_error(
        api.put_upload(&foreign, &digest, Some(&data)).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    )
    .await;
    let del = api
        .send(
            api.req(Method::DELETE, &foreign)
                .header("content-length", "0"),
        )
        .await;
    expect_error(del, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    assert_eq!(
        api.head_blob("team/b", &digest).await.status().as_u16(),
        404
    );

    // The real session still works.
    let st = api.get(&loc).await;
    assert_eq!(st.status().as_u16(), 204, "original session survives");
    assert_created_blob(api.put_upload(&loc, &digest, Some(&data)).await, &digest).await;
    assert_blob(&api, "team/a", &digest, &data).await;
}

/// Integrity: a chunked upload survives a restart and can be continued and finished.
#[tokio::test]
async fn chunked_upload_survives_restart() {
    let (mut server, api) = setup();
    let (loc, min) = post_upload(&api, "team/app").await;
    let cs = chunk_size(min, 64 * 1024);
    let data = random_bytes(cs * 2);
    let digest = sha256_digest(&data);
    let resp = api.patch_chunk(&loc, 0, &data[..cs]).await;
    let loc = assert_chunk_accepted(&api, resp, cs as u64 - 1).await;

    server.restart();
    let api = Api::new(&server.base);

    let resp = api.get(&loc).await;
    assert_eq!(resp.status().as_u16(), 204, "status after restart");
    assert_eq!(
        header(&resp, "range")
            .as_deref()
            .and_then(parse_upload_range),
        Some(cs as u64 - 1),
        "offset after restart"
    );
    let loc = api.url(&header(&resp, "location").expect("Location"));
    let resp = api.patch_chunk(&loc, cs as u64, &data[cs..]).await;
    let loc = assert_chunk_accepted(&api, resp, data.len() as u64 - 1).await;
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// Integrity: SIGKILL during a big streaming PATCH; after restart the blob is not visible, the old session
/// cannot be completed with the full digest, and a fresh push succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_streaming_patch_leaves_nothing_visible() {
    const PIECE: usize = 256 * 1024;
    const PIECES: usize = 128; // 32 MiB
    const SIGNAL_AFTER: usize = 16; // 4 MiB sent
    let (mut server, api) = setup();
    let piece = random_bytes(PIECE);
    let mut full = Vec::with_capacity(PIECE * PIECES);
    for i in 0..PIECES {
        let mut p = piece.clone();
        p[0] = i as u8;
        full.extend_from_slice(&p);
    }
    let digest = sha256_digest(&full);
    let loc = api.start_upload("team/app").await;

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stream_data = full.clone();
    let stream = futures::stream::unfold((0usize, Some(tx)), move |(i, mut tx)| {
        let data = stream_data.clone();
        async move {
            if i >= PIECES {
                return None;
            }
            if i == SIGNAL_AFTER {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            if i >= SIGNAL_AFTER {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let chunk = bytes::Bytes::copy_from_slice(&data[i * PIECE..(i + 1) * PIECE]);
            Some((Ok::<_, std::io::Error>(chunk), (i + 1, tx)))
        }
    });
    let client = api.clone();
    let patch_loc = loc.clone();
    let patch = tokio::spawn(async move {
        client
            .http
            .patch(client.url(&patch_loc))
            .header("content-type", OCTET)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("stream never reached the signal point")
        .expect("stream dropped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(30), patch)
        .await
        .expect("PATCH did not end");
    if let Ok(Ok(status)) = outcome {
        panic!("PATCH finished with {status} although the server was killed mid-body");
    }
    server.restart();
    let api = Api::new(&server.base);

    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404,
        "partial blob visible"
    );
    // The interrupted session, if it still exists, holds a prefix at most: it cannot close as the full blob.
    let resp = api.put_upload(&loc, &digest, None).await;
    let st = not_5xx("PUT on the interrupted session", resp.status().as_u16());
    assert!(st != 201, "interrupted upload closed as the full blob");
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );

    let loc = api.start_upload("team/app").await;
    assert_created_blob(api.put_upload(&loc, &digest, Some(&full)).await, &digest).await;
    assert_blob(&api, "team/app", &digest, &full).await;
}

/// The closing PUT may carry the final bytes without `Content-Range`: they are appended to what was PATCHed.
#[tokio::test]
async fn put_final_chunk_without_content_range() {
    let (_s, api) = setup();
    let (loc, min) = post_upload(&api, "team/app").await;
    let cs = chunk_size(min, 2048);
    let data = random_bytes(cs + 500);
    let digest = sha256_digest(&data);
    let loc = assert_chunk_accepted(
        &api,
        api.patch_chunk(&loc, 0, &data[..cs]).await,
        cs as u64 - 1,
    )
    .await;
    let resp = api.put_upload(&loc, &digest, Some(&data[cs..])).await;
    assert_created_blob(resp, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// Two PATCHes racing for the same offset of one session: exactly one is accepted, the other gets 416, and the
/// stored bytes are the winner's alone (no interleaving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_chunks_at_the_same_offset() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let a = random_bytes(2 * 1024 * 1024);
    let b = random_bytes(2 * 1024 * 1024);
    let (ra, rb) = tokio::join!(api.patch_chunk(&loc, 0, &a), api.patch_chunk(&loc, 0, &b));
    let (sa, sb) = (ra.status().as_u16(), rb.status().as_u16());
    let mut statuses = [sa, sb];
    statuses.sort();
    assert_eq!(statuses, [202, 416], "racing chunks: {sa} and {sb}");
    let winner = if sa == 202 { &a } else { &b };
    let loser = if sa == 202 { &b } else { &a };
    let digest = sha256_digest(winner);
    let resp = api.put_upload(&loc, &sha256_digest(loser), None).await;
    expect_error(resp, 400, &["DIGEST_INVALID"]).await;
    // The failed close above may end the session (spec leaves it open); if so, push the winner again.
    let resp = api.get(&loc).await;
    if resp.status().as_u16() == 204 {
        assert_eq!(
            header(&resp, "range")
                .as_deref()
                .and_then(parse_upload_range),
            Some(winner.len() as u64 - 1)
        );
        assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
        assert_blob(&api, "team/app", &digest, winner).await;
    }
}

/// Two sessions uploading the same content at once both succeed; the blob is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_of_the_same_blob() {
    let (_s, api) = setup();
    let data = random_bytes(3 * 1024 * 1024);
    let digest = sha256_digest(&data);
    let (l1, l2) = tokio::join!(api.start_upload("team/app"), api.start_upload("team/app"));
    let (r1, r2) = tokio::join!(
        api.put_upload(&l1, &digest, Some(&data)),
        api.put_upload(&l2, &digest, Some(&data))
    );
    assert_created_blob(r1, &digest).await;
    assert_created_blob(r2, &digest).await;
    assert_blob(&api, "team/app", &digest, &data).await;
}

/// Mounting a blob the target repository already holds is still 201.
#[tokio::test]
async fn mount_into_repository_that_has_the_blob() {
    let (_s, api) = setup();
    let data = random_bytes(1000);
    let digest = api.push_blob("team/src", &data).await;
    api.push_blob("team/dst", &data).await;
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src"),
            )
            .header("content-length", "0"),
        )
        .await;
    assert_created_blob(resp, &digest).await;
    // A sha512 blob mounts the same way.
    let d512 = sha512_digest(&data);
    api.push_blob_as("team/src", &data, &d512).await;
    let resp = api
        .send(
            api.req(
                Method::POST,
                &format!("/v2/team/other/blobs/uploads/?mount={d512}&from=team/src"),
            )
            .header("content-length", "0"),
        )
        .await;
    assert_created_blob(resp, &d512).await;
    assert_blob(&api, "team/other", &d512, &data).await;
}
