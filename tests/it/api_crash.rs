//! Crash safety: SIGKILL at the exact moment a blob is being finalised or a manifest committed
//! (held there by a failpoint), restart, and check that every acknowledged write is present and
//! nothing half-written is visible.

use crate::support::common;

use std::time::Duration;

use common::TestServer;
use reqwest::{Client, StatusCode};
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

async fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> reqwest::Result<StatusCode> {
    let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={}", digest(data));
    Ok(c.post(url).body(data.to_vec()).send().await?.status())
}

fn image_manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": layer.len()}],
    }))
    .unwrap()
}

async fn put_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> reqwest::Result<StatusCode> {
    Ok(c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_vec())
        .send()
        .await?
        .status())
}

async fn status(c: &Client, url: String) -> StatusCode {
    c.head(url).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_blob_finalisation_loses_nothing_acknowledged() {
    let mut server = TestServer::start();
    let c = common::admin_client();
    let repo = "crash/blob";
    let kept = b"acknowledged before the crash".to_vec();
    assert_eq!(
        push_blob(&c, &server.base, repo, &kept).await.unwrap(),
        StatusCode::CREATED
    );

    server.set_env("BERTH_FAILPOINTS", Some("blob.before_commit"));
    server.restart();
    let doomed = vec![7u8; 3 * 1024 * 1024];
    let (base, body) = (server.base.clone(), doomed.clone());
    let pending =
        tokio::spawn(async move { push_blob(&common::admin_client(), &base, repo, &body).await });
    server.wait_for_log(
        "failpoint blob.before_commit reached",
        Duration::from_secs(30),
    );
    server.kill();
    assert!(
        pending.await.unwrap().is_err(),
        "the client must not get an acknowledgement"
    );

    server.set_env("BERTH_FAILPOINTS", None);
    server.restart();
    let b = &server.base;
    assert_eq!(
        status(&c, format!("{b}/v2/{repo}/blobs/{}", digest(&kept))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&c, format!("{b}/v2/{repo}/blobs/{}", digest(&doomed))).await,
        StatusCode::NOT_FOUND
    );
    // The interrupted push can simply be repeated.
    assert_eq!(
        push_blob(&c, b, repo, &doomed).await.unwrap(),
        StatusCode::CREATED
    );
    let got = c
        .get(format!("{b}/v2/{repo}/blobs/{}", digest(&doomed)))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &doomed[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_manifest_commit_leaves_no_partial_manifest() {
    let mut server = TestServer::start();
    let c = common::admin_client();
    let repo = "crash/manifest";
    let (config, layer) = (
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        b"layer bytes".to_vec(),
    );
    for blob in [&config, &layer] {
        assert_eq!(
            push_blob(&c, &server.base, repo, blob).await.unwrap(),
            StatusCode::CREATED
        );
    }
    let first = image_manifest(&config, &layer);
    assert_eq!(
        put_manifest(&c, &server.base, repo, "v1", &first)
            .await
            .unwrap(),
        StatusCode::CREATED
    );

    server.set_env("BERTH_FAILPOINTS", Some("manifest.before_commit"));
    server.restart();
    let mut second: serde_json::Value = serde_json::from_slice(&first).unwrap();
    second["annotations"] = json!({"build": "2"});
    let second = serde_json::to_vec(&second).unwrap();
    let (base, body) = (server.base.clone(), second.clone());
    let pending = tokio::spawn(async move {
        put_manifest(&common::admin_client(), &base, repo, "v1", &body).await
    });
    server.wait_for_log(
        "failpoint manifest.before_commit reached",
        Duration::from_secs(30),
    );
    server.kill();
    assert!(
        pending.await.unwrap().is_err(),
        "the client must not get an acknowledgement"
    );

    server.set_env("BERTH_FAILPOINTS", None);
    server.restart();
    let b = &server.base;
    let got = c
        .get(format!("{b}/v2/{repo}/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(
        got.headers()["docker-content-digest"].to_str().unwrap(),
        digest(&first)
    );
    assert_eq!(got.bytes().await.unwrap().as_ref(), &first[..]);
    assert_eq!(
        status(&c, format!("{b}/v2/{repo}/manifests/{}", digest(&second))).await,
        StatusCode::NOT_FOUND
    );
}
