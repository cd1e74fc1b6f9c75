//! Content management: deleting manifests (by digest), tags and blobs (distribution-spec "Content Management",
//! end-9, end-10).

use crate::support::{api, common};

use api::*;
use common::TestServer;

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// DELETE manifests/<digest> -> 202; then the digest and every tag pointing at it are 404 `MANIFEST_UNKNOWN`.
#[tokio::test]
async fn delete_manifest_by_digest() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    api.push_manifest("team/app", "v1-alias", OCI_MANIFEST, &img.manifest)
        .await;
    let keep = api.push_image("team/app", "keep").await;

    let resp = api
        .delete(&format!("/v2/team/app/manifests/{}", img.digest))
        .await;
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    for reference in [img.digest.as_str(), "v1", "v1-alias"] {
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
            404,
            "{reference}"
        );
    }
    assert_eq!(api.tags("team/app").await, vec!["keep".to_string()]);
    assert_eq!(
        api.head_manifest("team/app", &keep.digest)
            .await
            .status()
            .as_u16(),
        200
    );

    // Deleting again: 404.
    let resp = api
        .delete(&format!("/v2/team/app/manifests/{}", img.digest))
        .await;
    expect_error(resp, 404, &["MANIFEST_UNKNOWN"]).await;

    // The same bytes can be pushed again.
    api.push_manifest("team/app", "v1", OCI_MANIFEST, &img.manifest)
        .await;
    assert_eq!(
        api.head_manifest("team/app", "v1").await.status().as_u16(),
        200
    );
}

/// DELETE manifests/<tag> -> 202 removes only that tag: the manifest stays reachable by digest and other tags.
#[tokio::test]
async fn delete_tag_removes_only_the_tag() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "a").await;
    api.push_manifest("team/app", "b", OCI_MANIFEST, &img.manifest)
        .await;

    let resp = api.delete("/v2/team/app/manifests/a").await;
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    expect_error(
        api.get_manifest("team/app", "a").await,
        404,
        &["MANIFEST_UNKNOWN"],
    )
    .await;
    for reference in ["b", img.digest.as_str()] {
        let resp = api.get_manifest("team/app", reference).await;
        assert_eq!(resp.status().as_u16(), 200, "{reference}");
        assert_eq!(&resp.bytes().await.unwrap()[..], &img.manifest[..]);
    }
    assert_eq!(api.tags("team/app").await, vec!["b".to_string()]);

    // Deleting the last tag leaves an untagged, still pullable manifest.
    assert_eq!(
        api.delete("/v2/team/app/manifests/b")
            .await
            .status()
            .as_u16(),
        202
    );
    assert!(api.tags("team/app").await.is_empty());
    assert_eq!(
        api.head_manifest("team/app", &img.digest)
            .await
            .status()
            .as_u16(),
        200
    );
    for d in img.layer_digests.iter().chain([&img.config_digest]) {
        assert_eq!(
            api.head_blob("team/app", d).await.status().as_u16(),
            200,
            "blob {d}"
        );
    }
}

/// Deleting something that does not exist: 404 with the resource's code; unknown repository: 404.
#[tokio::test]
async fn delete_unknown_things_is_404() {
    let (_s, api) = setup();
    api.push_image("team/app", "v1").await;
    let d = unknown_digest();
    expect_error(
        api.delete(&format!("/v2/team/app/manifests/{d}")).await,
        404,
        &["MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.delete("/v2/team/app/manifests/nope").await,
        404,
        &["MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.delete(&format!("/v2/team/app/blobs/{d}")).await,
        404,
        &["BLOB_UNKNOWN"],
    )
    .await;
    expect_error(
        api.delete(&format!("/v2/no/such/manifests/{d}")).await,
        404,
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
    )
    .await;
    expect_error(
        api.delete(&format!("/v2/no/such/blobs/{d}")).await,
        404,
        &["NAME_UNKNOWN", "BLOB_UNKNOWN"],
    )
    .await;
}

/// DELETE blobs/<digest> -> 202, then 404 in that repository only; another repository holding the same
/// content still serves it (content addressing must not leak a delete across repositories).
#[tokio::test]
async fn delete_blob_is_scoped_to_the_repository() {
    let (_s, api) = setup();
    let data = random_bytes(4096);
    let d = api.push_blob("team/a", &data).await;
    assert_eq!(api.push_blob("team/b", &data).await, d);

    let resp = api.delete(&format!("/v2/team/a/blobs/{d}")).await;
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(api.head_blob("team/a", &d).await.status().as_u16(), 404);
    expect_error(api.get_blob("team/a", &d).await, 404, &["BLOB_UNKNOWN"]).await;

    let resp = api.get_blob("team/b", &d).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "other repository lost the blob"
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);

    // Re-pushing into team/a works again.
    api.push_blob("team/a", &data).await;
    assert_eq!(api.head_blob("team/a", &d).await.status().as_u16(), 200);
}

/// A mounted blob deleted from the source repository stays in the mount target.
#[tokio::test]
async fn delete_blob_after_mount() {
    let (_s, api) = setup();
    let data = random_bytes(3000);
    let d = api.push_blob("team/src", &data).await;
    let resp = api
        .send(
            api.req(
                reqwest::Method::POST,
                &format!("/v2/team/dst/blobs/uploads/?mount={d}&from=team/src"),
            )
            .header("content-length", "0"),
        )
        .await;
    assert_created_blob(resp, &d).await;
    assert_eq!(
        api.delete(&format!("/v2/team/src/blobs/{d}"))
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(api.head_blob("team/src", &d).await.status().as_u16(), 404);
    let resp = api.get_blob("team/dst", &d).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);
}

/// Deleting a manifest in one repository leaves the same manifest in another repository alone.
#[tokio::test]
async fn delete_manifest_is_scoped_to_the_repository() {
    let (_s, api) = setup();
    let img = api.push_image("team/a", "v1").await;
    for d in img.layer_digests.iter().chain([&img.config_digest]) {
        let resp = api
            .send(
                api.req(
                    reqwest::Method::POST,
                    &format!("/v2/team/b/blobs/uploads/?mount={d}&from=team/a"),
                )
                .header("content-length", "0"),
            )
            .await;
        assert_created_blob(resp, d).await;
    }
    api.push_manifest("team/b", "v1", OCI_MANIFEST, &img.manifest)
        .await;
    assert_eq!(
        api.delete(&format!("/v2/team/a/manifests/{}", img.digest))
            .await
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        api.head_manifest("team/a", "v1").await.status().as_u16(),
        404
    );
    let resp = api.get_manifest("team/b", "v1").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], &img.manifest[..]);
}
