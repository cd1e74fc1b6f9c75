//! Registries that trust each other (`[federation]`), against real, listening Berths: a registry
//! reads each trusted registry's signing keys from its JWKS URL, follows a key rotation there,
//! and keeps the last good keys (saying why) when the trusted registry is unreachable. Runs on
//! both stacks (`BERTH_TEST_STACK`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::common::{admin_client, TestServer};

const A_ID: &str = "000000000000";
const B_ID: &str = "111111111111";

async fn get(server: &TestServer, path: &str) -> Value {
    let response = admin_client().get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// Polls `what` until it holds (the refresh runs every second here), failing after 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn key_ids(listing: &Value) -> Vec<String> {
    listing["registries"][0]["key_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_trusted_registrys_keys_are_read_followed_and_kept_when_it_is_down() {
    let mut a = TestServer::start();
    let registries = json!([{
        "registry_id": A_ID,
        "region": "us-east-1",
        "url": a.url(""),
        "jwks": a.url("/token/jwks.json"),
    }])
    .to_string();
    let b = TestServer::start_with(
        &[],
        &[
            ("BERTH_REGISTRY_ID", B_ID),
            ("BERTH_REGION", "eu-west-1"),
            ("BERTH_FEDERATION_JWKS_REFRESH_SECS", "1"),
            ("BERTH_FEDERATION_REGISTRIES", &registries),
        ],
    );
    // A trusts nobody.
    assert_eq!(
        get(&a, "/api/v1/federation/registries").await,
        json!({"registries": []})
    );

    // B reads A's published keys: exactly the ones A signs and verifies with.
    let a_kids = |keys: &Value| -> Vec<String> {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let published = a_kids(&get(&a, "/api/v1/signing-keys").await);
    eventually("B has read A's keys", async || {
        !key_ids(&get(&b, "/api/v1/federation/registries").await).is_empty()
    })
    .await;
    let listing = get(&b, "/api/v1/federation/registries").await;
    let entry = &listing["registries"][0];
    assert_eq!(entry["registry_id"], A_ID);
    assert_eq!(entry["region"], "us-east-1");
    assert_eq!(key_ids(&listing), published);
    assert!(entry["refreshed_at"].is_string(), "{entry}");
    assert!(entry["error"].is_null(), "{entry}");

    // A rotates its signing key: B follows within its refresh interval.
    let response = admin_client()
        .post(a.url("/api/v1/signing-keys/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let new_kid = response.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!published.contains(&new_kid));
    eventually("B trusts A's new key", async || {
        key_ids(&get(&b, "/api/v1/federation/registries").await).contains(&new_kid)
    })
    .await;
    let trusted = key_ids(&get(&b, "/api/v1/federation/registries").await);

    // A goes away: B keeps the last good keys and says why.
    a.kill();
    eventually("B reports A unreachable", async || {
        get(&b, "/api/v1/federation/registries").await["registries"][0]["error"].is_string()
    })
    .await;
    let listing = get(&b, "/api/v1/federation/registries").await;
    assert_eq!(key_ids(&listing), trusted);
    let error = listing["registries"][0]["error"].as_str().unwrap();
    assert!(error.contains("cannot reach"), "{error}");
}

#[tokio::test]
async fn the_trusted_registries_are_for_admins_only() {
    let server = TestServer::start();
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/federation/registries"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
