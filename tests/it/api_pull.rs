//! Pull: `GET /v2/`, manifests and blobs by tag and digest (GET and HEAD), `Accept` negotiation, blob `Range`,
//! and 404s for unknown content (distribution-spec "Pull", end-1, end-2, end-3).

use crate::support::{api, common};

use api::*;
use common::TestServer;
use reqwest::Method;
use serde_json::json;

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// end-1: `GET /v2/` answers 200; Berth sends `Docker-Distribution-Api-Version: registry/2.0`.
#[tokio::test]
async fn base_endpoint_is_200_with_api_version_header() {
    let (_s, api) = setup();
    let resp = api.get("/v2/").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    let head = api.head("/v2/").await;
    assert_eq!(head.status().as_u16(), 200, "HEAD /v2/");
}

/// end-3: GET by tag and by digest returns the exact bytes, `Content-Type`, `Docker-Content-Digest`, `Content-Length`.
#[tokio::test]
async fn manifest_get_by_tag_and_digest() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    for reference in ["v1", img.digest.as_str()] {
        let resp = api.get_manifest("team/app", reference).await;
        assert_eq!(resp.status().as_u16(), 200, "GET manifests/{reference}");
        assert_eq!(content_type(&resp).as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(img.digest.as_str())
        );
        assert_eq!(content_length(&resp), Some(img.manifest.len() as u64));
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            &body[..],
            &img.manifest[..],
            "manifest bytes by {reference}"
        );
    }
}

/// end-3 HEAD: 200 with `Docker-Content-Digest`, `Content-Type`, `Content-Length` (what containerd and dockerd use
/// before pulling) and no body on the wire.
#[tokio::test]
async fn manifest_head_by_tag_and_digest() {
    let (s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    for reference in ["v1", img.digest.as_str()] {
        let resp = api.head_manifest("team/app", reference).await;
        assert_eq!(resp.status().as_u16(), 200, "HEAD manifests/{reference}");
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(img.digest.as_str())
        );
        assert_eq!(content_type(&resp).as_deref(), Some(OCI_MANIFEST));
        assert_eq!(content_length(&resp), Some(img.manifest.len() as u64));

        let raw = raw_request(
            &s.addr,
            "HEAD",
            &format!("/v2/team/app/manifests/{reference}"),
            &[format!("Accept: {}", all_manifest_types())],
            b"",
            false,
        )
        .await
        .expect("HEAD response");
        assert_eq!(raw.status, 200);
        assert!(
            raw.raw_body.is_empty(),
            "HEAD sent a body: {:?}",
            raw.body_str()
        );
        assert_eq!(
            raw.header("content-length"),
            Some(img.manifest.len().to_string().as_str())
        );
    }
}

/// end-2: blob GET returns the bytes with `Docker-Content-Digest`; HEAD has digest and size and no body.
#[tokio::test]
async fn blob_get_and_head() {
    let (s, api) = setup();
    let data = random_bytes(3000);
    let digest = api.push_blob("team/app", &data).await;

    let resp = api.get_blob("team/app", &digest).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(content_length(&resp), Some(3000));
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);

    let resp = api.head_blob("team/app", &digest).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(content_length(&resp), Some(3000));

    let raw = raw_request(
        &s.addr,
        "HEAD",
        &format!("/v2/team/app/blobs/{digest}"),
        &[],
        b"",
        false,
    )
    .await
    .expect("HEAD response");
    assert_eq!(raw.status, 200);
    assert!(
        raw.raw_body.is_empty(),
        "HEAD blob sent {} body bytes",
        raw.raw_body.len()
    );
}

/// A zero-byte blob is a valid blob (conformance "zero-byte blob").
#[tokio::test]
async fn zero_byte_blob_roundtrip() {
    let (_s, api) = setup();
    let digest = api.push_blob("team/app", b"").await;
    let resp = api.get_blob("team/app", &digest).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(resp.bytes().await.unwrap().len(), 0);
    let resp = api.head_blob("team/app", &digest).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(content_length(&resp), Some(0));
}

async fn get_with_accept(
    api: &Api,
    repo: &str,
    reference: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut rb = api.req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"));
    if let Some(a) = accept {
        rb = rb.header("accept", a);
    }
    api.send(rb).await
}

/// Accept negotiation for an OCI manifest: any Accept that includes its type (alone, in a list, with q-values,
/// `*/*`, or no Accept at all) yields 200 and `Content-Type` = the stored type. A registry that does no conversion
/// may answer an Accept that excludes the type with 404/406 or with the stored type, but never with another type.
#[tokio::test]
async fn accept_negotiation_oci_manifest() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    let accepts: [Option<&str>; 5] = [
        Some(OCI_MANIFEST),
        Some("application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json;q=0.9, application/vnd.oci.image.manifest.v1+json;q=0.5"),
        Some("*/*"),
        None,
    ];
    for accept in accepts {
        let resp = get_with_accept(&api, "team/app", "v1", accept).await;
        assert_eq!(resp.status().as_u16(), 200, "Accept {accept:?}");
        assert_eq!(
            content_type(&resp).as_deref(),
            Some(OCI_MANIFEST),
            "Accept {accept:?}"
        );
        assert_eq!(&resp.bytes().await.unwrap()[..], &img.manifest[..]);
    }
    // Berth does no conversion: a client that lists only other manifest types gets 404
    // MANIFEST_UNKNOWN (as Distribution does), and one that lists no manifest type at all gets it.
    let resp = get_with_accept(&api, "team/app", "v1", Some(DOCKER_MANIFEST)).await;
    expect_error(resp, 404, &["MANIFEST_UNKNOWN"]).await;
    let resp = get_with_accept(&api, "team/app", "v1", Some("application/json")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(content_type(&resp).as_deref(), Some(OCI_MANIFEST));
}

/// Accept negotiation for Docker schema2 types: the stored Docker type comes back as `Content-Type`.
#[tokio::test]
async fn accept_negotiation_docker_manifest() {
    let (_s, api) = setup();
    let config = random_config();
    let layer = random_bytes(1024);
    api.push_blob("team/app", &config).await;
    api.push_blob("team/app", &layer).await;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, &config),
        "layers": [desc(DOCKER_LAYER, &layer)],
    }))
    .unwrap();
    let digest = api
        .push_manifest("team/app", "d1", DOCKER_MANIFEST, &m)
        .await;
    for accept in [
        Some(DOCKER_MANIFEST),
        Some("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"),
        None,
    ] {
        let resp = get_with_accept(&api, "team/app", "d1", accept).await;
        assert_eq!(resp.status().as_u16(), 200, "Accept {accept:?}");
        assert_eq!(content_type(&resp).as_deref(), Some(DOCKER_MANIFEST), "Accept {accept:?}");
        assert_eq!(header(&resp, "docker-content-digest").as_deref(), Some(digest.as_str()));
        assert_eq!(&resp.bytes().await.unwrap()[..], &m[..]);
    }
}

fn range_blob() -> Vec<u8> {
    random_bytes(2000)
}

/// end-2 with `Range` (RFC 9110 section 14): 206, `Content-Range: bytes a-b/2000`, the slice as body.
#[tokio::test]
async fn blob_range_requests() {
    let (_s, api) = setup();
    let data = range_blob();
    let digest = api.push_blob("team/app", &data).await;
    let cases: [(&str, u64, u64); 6] = [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 1999),
        ("bytes=-500", 1500, 1999),
        ("bytes=1500-5000", 1500, 1999), // last-pos beyond the end is clamped
        ("bytes=0-0", 0, 0),
        ("bytes=1999-1999", 1999, 1999),
    ];
    for (range, a, b) in cases {
        let resp = api
            .send(
                api.req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
                    .header("range", range),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 206, "Range {range}");
        let cr =
            header(&resp, "content-range").unwrap_or_else(|| panic!("{range}: no Content-Range"));
        let (ga, gb, total) =
            parse_content_range(&cr).unwrap_or_else(|| panic!("bad Content-Range {cr:?}"));
        assert_eq!((ga, gb), (a, b), "Range {range}: Content-Range {cr}");
        assert!(
            total.is_none() || total == Some(2000),
            "Range {range}: total in {cr}"
        );
        assert_eq!(
            content_length(&resp),
            Some(b - a + 1),
            "Range {range}: Content-Length"
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            &body[..],
            &data[a as usize..=b as usize],
            "Range {range}: body"
        );
    }
}

/// Unsatisfiable ranges -> 416 (with `Content-Range: bytes */2000` when the header is sent).
#[tokio::test]
async fn blob_range_unsatisfiable() {
    let (_s, api) = setup();
    let data = range_blob();
    let digest = api.push_blob("team/app", &data).await;
    for range in [
        "bytes=2000-2100",
        "bytes=5000-10000",
        "bytes=5000-",
        "bytes=500-0",
    ] {
        let resp = api
            .send(
                api.req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
                    .header("range", range),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 416, "Range {range}");
        if let Some(cr) = header(&resp, "content-range") {
            assert_eq!(cr, "bytes */2000", "Range {range}: Content-Range");
        }
    }
}

/// Unknown blob in an existing repository: 404 `BLOB_UNKNOWN` (HEAD: 404, no body).
#[tokio::test]
async fn unknown_blob_is_404_blob_unknown() {
    let (_s, api) = setup();
    api.push_image("team/app", "v1").await;
    let d = unknown_digest();
    expect_error(api.get_blob("team/app", &d).await, 404, &["BLOB_UNKNOWN"]).await;
    assert_eq!(api.head_blob("team/app", &d).await.status().as_u16(), 404);
}

/// Unknown manifest (tag or digest) in an existing repository: 404 `MANIFEST_UNKNOWN`.
#[tokio::test]
async fn unknown_manifest_is_404_manifest_unknown() {
    let (_s, api) = setup();
    api.push_image("team/app", "v1").await;
    let d = unknown_digest();
    for reference in ["nope", d.as_str()] {
        expect_error(
            api.get_manifest("team/app", reference).await,
            404,
            &["MANIFEST_UNKNOWN"],
        )
        .await;
        assert_eq!(
            api.head_manifest("team/app", reference)
                .await
                .status()
                .as_u16(),
            404
        );
    }
}

/// Unknown repository: 404 with `NAME_UNKNOWN` (or the resource's own code).
#[tokio::test]
async fn unknown_repository_is_404() {
    let (_s, api) = setup();
    let d = unknown_digest();
    expect_error(
        api.get_manifest("no/such/repo", "latest").await,
        404,
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.get_manifest("no/such/repo", &d).await,
        404,
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.get_blob("no/such/repo", &d).await,
        404,
        &["NAME_UNKNOWN", "BLOB_UNKNOWN"],
    )
    .await;
    assert_eq!(
        api.head_manifest("no/such/repo", "latest")
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        api.head_blob("no/such/repo", &d).await.status().as_u16(),
        404
    );
}

/// A blob pushed to one repository is not pullable through another (repository scoping of content).
#[tokio::test]
async fn blob_is_scoped_to_its_repository() {
    let (_s, api) = setup();
    api.push_image("team/other", "v1").await;
    let data = random_bytes(700);
    let digest = api.push_blob("team/app", &data).await;
    expect_error(
        api.get_blob("team/other", &digest).await,
        404,
        &["BLOB_UNKNOWN"],
    )
    .await;
}

/// Names are parsed from the right: names with segments called `blobs`, `manifests`, `uploads`, `tags`
/// and many components push and pull normally.
#[tokio::test]
async fn repository_names_with_route_keywords_and_depth() {
    let (_s, api) = setup();
    for repo in [
        "org/blobs/manifests/app",
        "x/tags/list",
        "a/blobs/uploads",
        "a/referrers/b",
        "deep/a/b/c/d/e/f",
        "a-b.c__d/e--f",
    ] {
        let img = api.push_image(repo, "v1").await;
        let resp = api.get_manifest(repo, "v1").await;
        assert_eq!(resp.status().as_u16(), 200, "{repo}");
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &img.manifest[..],
            "{repo}"
        );
        let resp = api.get_blob(repo, &img.layer_digests[0]).await;
        assert_eq!(resp.status().as_u16(), 200, "{repo} blob");
        assert_eq!(api.tags(repo).await, vec!["v1".to_string()], "{repo} tags");
    }
}

/// Tags and manifests are scoped to their repository: another repository's tag or digest is 404 here.
#[tokio::test]
async fn manifests_are_scoped_to_their_repository() {
    let (_s, api) = setup();
    let img = api.push_image("team/a", "v1").await;
    api.push_image("team/b", "other").await;
    expect_error(
        api.get_manifest("team/b", "v1").await,
        404,
        &["MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.get_manifest("team/b", &img.digest).await,
        404,
        &["MANIFEST_UNKNOWN"],
    )
    .await;
    assert_eq!(
        api.head_manifest("team/b", &img.digest)
            .await
            .status()
            .as_u16(),
        404
    );
}

/// Any byte range of a zero-length blob is unsatisfiable (RFC 9110 section 14.1.1) -> 416.
#[tokio::test]
async fn range_on_empty_blob_is_416() {
    let (_s, api) = setup();
    let digest = api.push_blob("team/app", b"").await;
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
        let resp = api
            .send(
                api.req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
                    .header("range", range),
            )
            .await;
        assert_eq!(
            resp.status().as_u16(),
            416,
            "Range {range} on an empty blob"
        );
    }
}

/// Long but valid names (clients allow 255 characters including the host) work end to end.
#[tokio::test]
async fn long_repository_name() {
    let (_s, api) = setup();
    let repo = format!("{}/{}/app", "a".repeat(100), "b-c".repeat(30));
    let img = api.push_image(&repo, "v1").await;
    let resp = api.get_manifest(&repo, "v1").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], &img.manifest[..]);
    assert_eq!(api.tags(&repo).await, vec!["v1".to_string()]);
}
