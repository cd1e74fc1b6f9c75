//! Bad input and limits: bodies that disagree with `Content-Length`, malformed `Content-Range`, missing or
//! malformed digests, unknown and malformed upload ids (path traversal), oversized manifests, and a sweep of odd
//! requests that must never produce a 5xx.

use crate::support::{api, common};

use std::path::{Path, PathBuf};

use api::*;
use common::TestServer;
use reqwest::Method;

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// Path and query of an absolute upload Location, for raw requests.
fn path_of(api: &Api, location: &str) -> String {
    let u = url::Url::parse(&api.url(location)).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

fn with_digest(path: &str, digest: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}digest={digest}")
}

/// A raw response is acceptable for a broken request when the server either hung up or answered 4xx.
fn assert_rejected(what: &str, resp: &Option<RawResponse>) {
    if let Some(r) = resp {
        assert!(
            (400..500).contains(&r.status),
            "{what}: expected a 4xx or a closed connection, got {}: {}",
            r.status,
            r.body_str()
        );
    }
}

/// Single POST whose body is shorter than its `Content-Length` (client hangs up): nothing becomes visible.
#[tokio::test]
async fn single_post_body_shorter_than_content_length() {
    let (s, api) = setup();
    let data = random_bytes(1000);
    let digest = sha256_digest(&data);
    let resp = raw_request(
        &s.addr,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
        &[
            "Content-Type: application/octet-stream".into(),
            "Content-Length: 1000".into(),
        ],
        &data[..500],
        true,
    )
    .await;
    assert_rejected("short single POST", &resp);
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
    api.push_blob("team/app", &data).await;
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        200
    );
}

/// Closing PUT whose body is shorter than its `Content-Length`: no blob.
#[tokio::test]
async fn put_body_shorter_than_content_length() {
    let (s, api) = setup();
    let data = random_bytes(1000);
    let digest = sha256_digest(&data);
    let loc = api.start_upload("team/app").await;
    let resp = raw_request(
        &s.addr,
        "PUT",
        &with_digest(&path_of(&api, &loc), &digest),
        &[
            "Content-Type: application/octet-stream".into(),
            "Content-Length: 1000".into(),
        ],
        &data[..500],
        true,
    )
    .await;
    assert_rejected("short PUT", &resp);
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
    // The session (if still open) cannot be closed as the full blob without the missing bytes.
    let r = api.put_upload(&loc, &digest, None).await;
    let st = not_5xx("PUT after short PUT", r.status().as_u16());
    assert_ne!(st, 201, "blob completed from half its bytes");
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
}

/// PATCH whose body is shorter than `Content-Length` and `Content-Range`: the upload never claims the bytes it
/// did not receive.
#[tokio::test]
async fn patch_body_shorter_than_content_length() {
    let (s, api) = setup();
    let data = random_bytes(1000);
    let digest = sha256_digest(&data);
    let loc = api.start_upload("team/app").await;
    let resp = raw_request(
        &s.addr,
        "PATCH",
        &path_of(&api, &loc),
        &[
            "Content-Type: application/octet-stream".into(),
            "Content-Length: 1000".into(),
            "Content-Range: 0-999".into(),
        ],
        &data[..500],
        true,
    )
    .await;
    assert_rejected("short PATCH", &resp);
    let st = api.get(&loc).await;
    let code = not_5xx("status after short PATCH", st.status().as_u16());
    if code == 204 {
        let range = header(&st, "range").expect("Range");
        let end = parse_upload_range(&range).expect("0-<end>");
        assert!(end < 999, "upload claims {range} after receiving 500 bytes");
    } else {
        assert_eq!(code, 404, "status after short PATCH");
    }
    let r = api.put_upload(&loc, &digest, None).await;
    assert_ne!(not_5xx("PUT after short PATCH", r.status().as_u16()), 201);
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
}

/// PUT whose body is longer than its `Content-Length`: only `Content-Length` bytes are the body, so the full
/// digest does not match -> 400; nothing visible under either digest.
#[tokio::test]
async fn put_body_longer_than_content_length() {
    let (s, api) = setup();
    let data = random_bytes(20);
    let digest = sha256_digest(&data);
    let loc = api.start_upload("team/app").await;
    let resp = raw_request(
        &s.addr,
        "PUT",
        &with_digest(&path_of(&api, &loc), &digest),
        &[
            "Content-Type: application/octet-stream".into(),
            "Content-Length: 10".into(),
        ],
        &data,
        false,
    )
    .await
    .expect("a response to the first request");
    assert_eq!(resp.status, 400, "{}", resp.body_str());
    check_error_body(
        "long PUT",
        resp.status,
        &resp.body_str(),
        &["DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"],
    );
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
    assert_eq!(
        api.head_blob("team/app", &sha256_digest(&data[..10]))
            .await
            .status()
            .as_u16(),
        404
    );
}

/// A PATCH whose `Content-Range` length disagrees with the body -> 400 or 416, and the upload does not advance.
#[tokio::test]
async fn patch_content_range_length_mismatch() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(50);
    for range in ["0-99", "0-9"] {
        let resp = api
            .send(
                api.req(Method::PATCH, &loc)
                    .header("content-type", OCTET)
                    .header("content-range", range)
                    .body(data.clone()),
            )
            .await;
        let st = not_5xx(range, resp.status().as_u16());
        assert!(
            st == 400 || st == 416,
            "Content-Range {range} with 50 bytes: {st}"
        );
        if st == 400 {
            let text = resp.text().await.unwrap_or_default();
            check_error_body(range, st, &text, &["BLOB_UPLOAD_INVALID", "SIZE_INVALID"]);
        }
    }
    let resp = api.patch_chunk(&loc, 0, &data).await;
    let loc = assert_chunk_accepted(&api, resp, 49).await;
    let digest = sha256_digest(&data);
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
}

/// Malformed `Content-Range` on PATCH -> 400 or 416 (never 5xx), and the upload is still at its start.
#[tokio::test]
async fn patch_bad_content_range_syntax() {
    let (_s, api) = setup();
    let loc = api.start_upload("team/app").await;
    let data = random_bytes(10);
    for range in [
        "abc",
        "0-",
        "-9",
        "9-0",
        "0-9-10",
        "x0-9",
        "99999999999999999999999-99999999999999999999999",
        "18446744073709551615-18446744073709551615",
    ] {
        let resp = api
            .send(
                api.req(Method::PATCH, &loc)
                    .header("content-type", OCTET)
                    .header("content-range", range)
                    .body(data.clone()),
            )
            .await;
        let st = not_5xx(range, resp.status().as_u16());
        assert!(st == 400 || st == 416, "Content-Range {range:?}: {st}");
    }
    let resp = api.patch_chunk(&loc, 0, &data).await;
    let loc = assert_chunk_accepted(&api, resp, 9).await;
    let digest = sha256_digest(&data);
    assert_created_blob(api.put_upload(&loc, &digest, None).await, &digest).await;
    assert_eq!(
        &api.get_blob("team/app", &digest)
            .await
            .bytes()
            .await
            .unwrap()[..],
        &data[..]
    );
}

/// Closing PUT without `digest` -> 400 `DIGEST_INVALID`; malformed digests likewise.
#[tokio::test]
async fn put_with_missing_or_malformed_digest() {
    let (_s, api) = setup();
    let data = random_bytes(64);
    let loc = api.start_upload("team/app").await;
    let resp = api
        .send(
            api.req(Method::PUT, &loc)
                .header("content-type", OCTET)
                .body(data.clone()),
        )
        .await;
    expect_error(resp, 400, &["DIGEST_INVALID"]).await;
    let resp = api
        .send(api.req(Method::PUT, &loc).header("content-length", "0"))
        .await;
    expect_error(resp, 400, &["DIGEST_INVALID"]).await;

    let full = sha256_digest(&data);
    let hex = full.trim_start_matches("sha256:").to_string();
    let upper = format!("sha256:{}", hex.to_uppercase());
    let short = format!("sha256:{}", &hex[..63]);
    let long = format!("sha256:{hex}0");
    for bad in [
        "",
        "sha256",
        "sha256:",
        "sha256:xyz",
        short.as_str(),
        long.as_str(),
        upper.as_str(),
        ":abc",
        "sha256:../../../etc/passwd",
        "SHA256:abc",
    ] {
        let loc = api.start_upload("team/app").await;
        let resp = api.put_upload(&loc, bad, Some(&data)).await;
        expect_error(resp, 400, &["DIGEST_INVALID", "UNSUPPORTED"]).await;
    }
    assert_eq!(
        api.head_blob("team/app", &format!("sha256:{hex}"))
            .await
            .status()
            .as_u16(),
        404
    );
}

/// A well-formed but nonexistent upload id -> 404 `BLOB_UPLOAD_UNKNOWN` for GET, PATCH, PUT, DELETE.
#[tokio::test]
async fn nonexistent_upload_id_is_404() {
    let (_s, api) = setup();
    api.push_image("team/app", "v1").await;
    let data = random_bytes(10);
    let digest = sha256_digest(&data);
    for id in [
        "0b6f3c1e-7f0e-4c5a-9d7a-2f0c9c9b1a11",
        "01890a5d-ac96-774b-bcce-b302099a8057",
    ] {
        let loc = format!("/v2/team/app/blobs/uploads/{id}");
        expect_error(api.get(&loc).await, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
        expect_error(
            api.patch_chunk(&loc, 0, &data).await,
            404,
            &["BLOB_UPLOAD_UNKNOWN"],
        )
        .await;
        expect_error(
            api.put_upload(&loc, &digest, Some(&data)).await,
            404,
            &["BLOB_UPLOAD_UNKNOWN"],
        )
        .await;
        expect_error(api.delete(&loc).await, 404, &["BLOB_UPLOAD_UNKNOWN"]).await;
    }
    let loc = "/v2/no/such/blobs/uploads/0b6f3c1e-7f0e-4c5a-9d7a-2f0c9c9b1a11";
    expect_error(
        api.get(loc).await,
        404,
        &["BLOB_UPLOAD_UNKNOWN", "NAME_UNKNOWN"],
    )
    .await;
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, out);
            }
        }
    }
}

/// Malformed upload ids (traversal, NUL, backslashes, huge) -> 404 (or 400 when the path no longer parses as
/// an upload route), and nothing named after or containing the request's marker appears on disk.
#[tokio::test]
async fn malformed_upload_ids_never_touch_disk() {
    let (s, api) = setup();
    api.push_image("team/app", "v1").await;
    let marker = format!("pwned{}", rand_suffix());
    let body = format!("{marker}-{marker}").into_bytes();
    let digest = sha256_digest(&body);
    let long = "a".repeat(5000);
    // Ids that stay one path segment after percent-decoding: the upload route must answer BLOB_UPLOAD_UNKNOWN.
    let single_segment = [
        String::from("%2E%2E"),
        String::from(".."),
        String::from("."),
        format!("{marker}%00"),
        format!("..%5C..%5C{marker}"),
        format!("C:%5C{marker}"),
        format!("~{marker}"),
        format!("{marker}.tmp"),
        long.clone(),
    ];
    // Ids that smuggle separators: any 4xx, never 5xx.
    let multi_segment = [
        format!("../../{marker}"),
        format!("..%2F..%2F..%2F..%2F{marker}"),
        format!("%2E%2E%2F%2E%2E%2F{marker}"),
        format!("..%252F..%252F{marker}"),
        format!("../../../../../../tmp/{marker}"),
    ];
    let mut cases: Vec<(String, bool)> = single_segment.iter().map(|i| (i.clone(), true)).collect();
    cases.extend(multi_segment.iter().map(|i| (i.clone(), false)));
    for (id, single) in cases {
        let base = format!("/v2/team/app/blobs/uploads/{id}");
        let reqs: Vec<(&str, String, Vec<String>, &[u8])> = vec![
            ("GET", base.clone(), vec![], b""),
            (
                "PATCH",
                base.clone(),
                vec![
                    "Content-Type: application/octet-stream".into(),
                    format!("Content-Length: {}", body.len()),
                    format!("Content-Range: 0-{}", body.len() - 1),
                ],
                &body,
            ),
            (
                "PUT",
                format!("{base}?digest={digest}"),
                vec![
                    "Content-Type: application/octet-stream".into(),
                    format!("Content-Length: {}", body.len()),
                ],
                &body,
            ),
            (
                "DELETE",
                base.clone(),
                vec!["Content-Length: 0".into()],
                b"",
            ),
        ];
        for (method, target, headers, b) in reqs {
            let what = format!("{method} {}", &target[..target.len().min(120)]);
            let r = raw_request(&s.addr, method, &target, &headers, b, false)
                .await
                .unwrap_or_else(|| panic!("{what}: no response"));
            assert!(r.status < 500, "{what}: {} {}", r.status, r.body_str());
            if single {
                assert!(
                    r.status == 404 || r.status == 400,
                    "{what}: {} {}",
                    r.status,
                    r.body_str()
                );
                if r.status == 404 {
                    check_error_body(&what, r.status, &r.body_str(), &["BLOB_UPLOAD_UNKNOWN"]);
                }
            } else {
                assert!((400..500).contains(&r.status), "{what}: {}", r.status);
            }
        }
    }
    assert_eq!(
        api.head_blob("team/app", &digest).await.status().as_u16(),
        404
    );
    assert_eq!(
        api.get("/v2/").await.status().as_u16(),
        200,
        "server still up"
    );

    // Nothing named after the marker anywhere near the server, nothing under the data dir holding the bytes.
    let root = s.data_dir().parent().unwrap().to_path_buf();
    let mut files = vec![];
    walk(&root, &mut files);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.contains(&marker),
            "file created from an upload id: {}",
            f.display()
        );
        if f.starts_with(s.data_dir()) && f.is_file() {
            let content = std::fs::read(f).unwrap_or_default();
            assert!(
                !content
                    .windows(marker.len())
                    .any(|w| w == marker.as_bytes()),
                "marker bytes stored in {}",
                f.display()
            );
        }
    }
    let mut ancestors = vec![
        std::env::current_dir().unwrap(),
        PathBuf::from("/tmp"),
        PathBuf::from("/"),
    ];
    ancestors.extend(root.ancestors().map(Path::to_path_buf));
    for dir in ancestors {
        assert!(
            !dir.join(&marker).exists(),
            "{} created",
            dir.join(&marker).display()
        );
    }
}

/// A manifest far beyond the limit -> 413 with `SIZE_INVALID` or `MANIFEST_INVALID` (sent raw, so an early
/// answer is still read).
#[tokio::test]
async fn oversized_manifest_is_413() {
    let (s, api) = setup();
    let pad = "a".repeat(16 * 1024 * 1024);
    let body = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI_MANIFEST}\",\"config\":{{\"mediaType\":\"{OCI_EMPTY}\",\"digest\":\"{EMPTY_JSON_DIGEST}\",\"size\":2}},\"layers\":[],\"annotations\":{{\"pad\":\"{pad}\"}}}}"
    )
    .into_bytes();
    let r = raw_request(
        &s.addr,
        "PUT",
        "/v2/team/app/manifests/huge",
        &[
            format!("Content-Type: {OCI_MANIFEST}"),
            format!("Content-Length: {}", body.len()),
        ],
        &body,
        false,
    )
    .await
    .expect("a response to an oversized manifest");
    assert_eq!(r.status, 413, "{}", r.body_str());
    check_error_body(
        "oversized manifest",
        413,
        &r.body_str(),
        &["SIZE_INVALID", "MANIFEST_INVALID"],
    );
    assert_eq!(
        api.head_manifest("team/app", "huge")
            .await
            .status()
            .as_u16(),
        404
    );

    // Chunked (no Content-Length): the limit still applies.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .chunks(1 << 20)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let resp = api
        .http
        .put(api.url("/v2/team/app/manifests/huge2"))
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(resp) = resp {
        // A server may also hang up mid-stream; if it answers, it must be 413.
        expect_error(resp, 413, &["SIZE_INVALID", "MANIFEST_INVALID"]).await;
    }
    assert_eq!(
        api.head_manifest("team/app", "huge2")
            .await
            .status()
            .as_u16(),
        404
    );
}

/// A manifest PUT whose body is shorter than its `Content-Length`: not stored.
#[tokio::test]
async fn manifest_body_shorter_than_content_length() {
    let (s, api) = setup();
    let img = api.push_image("team/app", "").await;
    let r = raw_request(
        &s.addr,
        "PUT",
        "/v2/team/app/manifests/short",
        &[
            format!("Content-Type: {OCI_MANIFEST}"),
            format!("Content-Length: {}", img.manifest.len() + 100),
        ],
        &img.manifest,
        true,
    )
    .await;
    assert_rejected("short manifest PUT", &r);
    assert_eq!(
        api.head_manifest("team/app", "short")
            .await
            .status()
            .as_u16(),
        404
    );
}

/// A sweep of odd requests: every answer is below 500 (and the server stays up).
#[tokio::test]
async fn odd_requests_never_5xx() {
    let (s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    let blob = &img.layer_digests[0];
    let long_name = format!("{}/x", "a".repeat(300));
    let reqs: Vec<(&str, String, Vec<String>, Vec<u8>)> = vec![
        (
            "GET",
            "/v2/team/app/blobs/sha256:zzz".into(),
            vec![],
            vec![],
        ),
        (
            "GET",
            "/v2/team/app/blobs/md5:0123456789abcdef0123456789abcdef".into(),
            vec![],
            vec![],
        ),
        (
            "GET",
            "/v2/team/app/blobs/notadigest".into(),
            vec![],
            vec![],
        ),
        ("HEAD", "/v2/team/app/blobs/sha256:".into(), vec![], vec![]),
        (
            "GET",
            "/v2/team/app/manifests/sha256:abc".into(),
            vec![],
            vec![],
        ),
        ("GET", "/v2/team/app/manifests/".into(), vec![], vec![]),
        (
            "PATCH",
            "/v2/team/app/manifests/v1".into(),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        (
            "POST",
            "/v2/team/app/manifests/v1".into(),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        (
            "POST",
            "/v2/".into(),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        ("DELETE", "/v2/".into(), vec![], vec![]),
        ("GET", "/v2/team/app/blobs/uploads/".into(), vec![], vec![]),
        ("GET", "/v2/team/app".into(), vec![], vec![]),
        ("GET", "/v2/team/app/".into(), vec![], vec![]),
        ("GET", "/v3/".into(), vec![], vec![]),
        ("GET", "/v2/_catalog?n=abc".into(), vec![], vec![]),
        ("GET", "/v2/_catalog?n=-1".into(), vec![], vec![]),
        (
            "GET",
            "/v2/_catalog?n=99999999999999999999999".into(),
            vec![],
            vec![],
        ),
        ("GET", "/v2/team/app/tags/list?n=abc".into(), vec![], vec![]),
        ("GET", "/v2/team/app/tags/list?n=-5".into(), vec![], vec![]),
        (
            "GET",
            "/v2/team/app/tags/list?n=99999999999999999999999".into(),
            vec![],
            vec![],
        ),
        (
            "GET",
            "/v2/team/app/tags/list?last=%FF%FE".into(),
            vec![],
            vec![],
        ),
        (
            "PUT",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        (
            "POST",
            "/v2/team/app/blobs/uploads/?digest=sha256:zzz".into(),
            vec!["Content-Length: 3".into()],
            b"abc".to_vec(),
        ),
        (
            "POST",
            "/v2/team/app/blobs/uploads/?mount=sha256:zzz&from=team/app".into(),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        (
            "POST",
            format!("/v2/team/app/blobs/uploads/?mount={blob}&from=NOT..VALID"),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        (
            "PUT",
            "/v2/team/app/manifests/nomt".into(),
            vec![format!("Content-Length: {}", img.manifest.len())],
            img.manifest.clone(),
        ),
        (
            "PUT",
            "/v2/team/app/manifests/json".into(),
            vec![
                "Content-Type: application/json".into(),
                format!("Content-Length: {}", img.manifest.len()),
            ],
            img.manifest.clone(),
        ),
        (
            "PUT",
            "/v2/team/app/manifests/v1schema".into(),
            vec![
                "Content-Type: application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
                "Content-Length: 2".into(),
            ],
            b"{}".to_vec(),
        ),
        (
            "PUT",
            "/v2/team/app/manifests/weird".into(),
            vec![
                "Content-Type: ;;;===".into(),
                format!("Content-Length: {}", img.manifest.len()),
            ],
            img.manifest.clone(),
        ),
        (
            "GET",
            "/v2/team/app/manifests/v1".into(),
            vec!["Accept: ;;;,,,=q".into()],
            vec![],
        ),
        (
            "GET",
            "/v2/team/app/manifests/v1".into(),
            vec!["Accept: application/vnd.oci.image.manifest.v1+json;q=abc".into()],
            vec![],
        ),
        (
            "GET",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Range: bytes=abc".into()],
            vec![],
        ),
        (
            "GET",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Range: bytes=1-2,5-6".into()],
            vec![],
        ),
        (
            "GET",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Range: bytes=-0".into()],
            vec![],
        ),
        (
            "GET",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Range: bytes=99999999999999999999999-".into()],
            vec![],
        ),
        (
            "GET",
            format!("/v2/team/app/blobs/{blob}"),
            vec!["Range: items=0-5".into()],
            vec![],
        ),
        (
            "GET",
            "/v2/team/app/referrers/md5:abc".into(),
            vec![],
            vec![],
        ),
        ("GET", "/v2/team/app/referrers/".into(), vec![], vec![]),
        ("GET", format!("/v2/{long_name}/tags/list"), vec![], vec![]),
        (
            "POST",
            format!("/v2/{long_name}/blobs/uploads/"),
            vec!["Content-Length: 0".into()],
            vec![],
        ),
        ("GET", "/v2/team/%FF/tags/list".into(), vec![], vec![]),
        ("GET", "/v2/team/app%00/tags/list".into(), vec![], vec![]),
        ("GET", "/v2/../../etc/passwd".into(), vec![], vec![]),
        (
            "DELETE",
            "/v2/team/app/blobs/uploads/".into(),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            "/v2/team/app/manifests/-bad".into(),
            vec![],
            vec![],
        ),
        (
            "DELETE",
            "/v2/team/app/blobs/sha256:zzz".into(),
            vec![],
            vec![],
        ),
        (
            "PUT",
            "/v2/team/app/manifests/v1?tag=".into(),
            vec![
                format!("Content-Type: {OCI_MANIFEST}"),
                format!("Content-Length: {}", img.manifest.len()),
            ],
            img.manifest.clone(),
        ),
    ];
    for (method, target, headers, body) in reqs {
        let r = raw_request(&s.addr, method, &target, &headers, &body, false).await;
        let r =
            r.unwrap_or_else(|| panic!("{method} {target}: connection closed without a response"));
        assert!(
            r.status < 500,
            "{method} {}: {} {}",
            &target[..target.len().min(100)],
            r.status,
            r.body_str()
        );
    }
    assert_eq!(
        api.get("/v2/").await.status().as_u16(),
        200,
        "server still up"
    );
    assert_eq!(
        api.head_manifest("team/app", "v1").await.status().as_u16(),
        200
    );
}

/// After rejecting a request before reading its body (413 on a too-large manifest), the server must either
/// drain the body and keep the connection usable, or announce `Connection: close` (RFC 9112 section 9.6);
/// otherwise pooling clients (reqwest, Go's net/http in docker and containerd) fail their next request on that
/// connection with a spurious "connection closed" error.
#[tokio::test]
async fn early_rejection_closes_or_drains_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (s, _api) = setup();
    let body = format!("{{\"pad\":\"{}\"}}", "a".repeat(MANIFEST_LIMIT + 10));
    let mut stream = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let head = format!(
        "PUT /v2/team/app/manifests/big HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        common::admin_basic_auth(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body.as_bytes()).await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("no response to the oversized PUT")
            .unwrap_or(0);
        assert!(n > 0, "connection closed without a response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    assert!(head_text.starts_with("http/1.1 413"), "{head_text}");
    if head_text.contains("connection: close") {
        return; // announced: clients will not reuse the connection
    }
    let second = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        s.addr,
        common::admin_basic_auth()
    );
    let _ = stream.write_all(second.as_bytes()).await;
    let mut rest = buf[header_end + 4..].to_vec();
    let got_second = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if rest.windows(12).any(|w| w == b"HTTP/1.1 200") {
                return true;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(
        got_second,
        "413 sent without `Connection: close`, but the connection was not reusable for the next request"
    );
}
