//! Tag immutability (issue #6 item 1) against a real, listening Berth on the stack chosen by
//! `BERTH_TEST_STACK` (`sqlite-fs` or `pg-s3`): concurrent pushes of different digests to one
//! immutable tag (exactly one wins), ECR's four modes with exclusion filters, same-digest
//! re-pushes, deletes, multi-tag `?tag=` pushes, and the native REST API at its public path
//! `/api/v1/repositories/{name}/tag-mutability`.

use crate::support::{api, common};

use api::*;
use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

fn ecr_message(tag: &str, repo: &str) -> String {
    format!(
        "The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten \
         because the repository is immutable."
    )
}

fn wildcard(filter: &str) -> Value {
    json!({"filterType": "WILDCARD", "filter": filter})
}

/// A call to the admin API; returns status and JSON body.
async fn admin(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = api.req(method, path);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let resp = api.send(rb).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn set_mutability(api: &Api, repo: &str, mode: &str, filters: &[&str]) {
    let mut body = json!({"imageTagMutability": mode});
    if !filters.is_empty() {
        body["imageTagMutabilityExclusionFilters"] =
            Value::Array(filters.iter().map(|f| wildcard(f)).collect());
    }
    let (status, value) = admin(
        api,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}/tag-mutability"),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "PUT tag-mutability {mode}: {value}");
    assert_eq!(value["imageTagMutability"], mode);
}

/// `n` distinct image manifests over one config and one layer already in `repo` (they differ by
/// an annotation), so each PUT is cheap.
async fn manifests(api: &Api, repo: &str, n: usize) -> Vec<(Vec<u8>, String)> {
    let config = random_config();
    let config_digest = api.push_blob(repo, &config).await;
    let layer = random_bytes(512);
    let layer_digest = api.push_blob(repo, &layer).await;
    (0..n)
        .map(|i| {
            let m = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": desc_of(OCI_CONFIG, &config_digest, config.len()),
                "layers": [desc_of(OCI_LAYER, &layer_digest, layer.len())],
                "annotations": {"n": i.to_string(), "salt": rand_suffix()},
            });
            let body = serde_json::to_vec(&m).unwrap();
            let digest = sha256_digest(&body);
            (body, digest)
        })
        .collect()
}

async fn put(api: &Api, repo: &str, reference: &str, body: &[u8]) -> (u16, String) {
    let resp = api.put_manifest(repo, reference, OCI_MANIFEST, body).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn assert_refused(api: &Api, repo: &str, reference: &str, body: &[u8], tag: &str) {
    let (status, text) = put(api, repo, reference, body).await;
    check_error_body(
        &format!("overwrite {repo}:{tag}"),
        status,
        &text,
        &["TAG_INVALID"],
    );
    assert_eq!(status, 400, "{text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value["errors"][0]["message"],
        ecr_message(tag, repo),
        "{text}"
    );
}

async fn assert_stored(api: &Api, repo: &str, reference: &str, body: &[u8]) {
    let (status, text) = put(api, repo, reference, body).await;
    assert_eq!(status, 201, "PUT {repo}:{reference}: {text}");
}

async fn tag_digest(api: &Api, repo: &str, tag: &str) -> Option<String> {
    let resp = api.head_manifest(repo, tag).await;
    match resp.status().as_u16() {
        200 => header(&resp, "docker-content-digest"),
        404 => None,
        other => panic!("HEAD {repo}:{tag}: {other}"),
    }
}

/// 16 concurrent PUTs of different digests to one immutable tag, five rounds: exactly one 201,
/// the others 400 TAG_INVALID with ECR's message, and the tag points at the winner. Then the
/// same 16 again onto the existing tag: only the winner's digest is accepted (a no-op).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_to_an_immutable_tag_exactly_one_wins() {
    let (_server, api) = setup();
    let repo = format!("race-{}/app", rand_suffix());
    let (status, value) = admin(
        &api,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": repo, "imageTagMutability": "IMMUTABLE"})),
    )
    .await;
    assert_eq!(status, 201, "{value}");
    const PUSHERS: usize = 16;
    let images = manifests(&api, &repo, PUSHERS).await;
    for round in 0..5 {
        let tag = format!("release-{round}");
        let race = |images: Vec<(Vec<u8>, String)>| {
            let handles: Vec<_> = images
                .into_iter()
                .map(|(body, digest)| {
                    let (api, repo, tag) = (api.clone(), repo.clone(), tag.clone());
                    tokio::spawn(async move {
                        let (status, text) = put(&api, &repo, &tag, &body).await;
                        (status, text, digest)
                    })
                })
                .collect();
            futures::future::join_all(handles)
        };
        let results: Vec<_> = race(images.clone())
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let winners: Vec<_> = results.iter().filter(|(s, _, _)| *s == 201).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        for (status, text, _) in results.iter().filter(|(s, _, _)| *s != 201) {
            assert_eq!(*status, 400, "round {round}: {text}");
            assert_eq!(error_codes(text), vec!["TAG_INVALID".to_string()], "{text}");
            assert!(text.contains(&ecr_message(&tag, &repo)), "{text}");
        }
        let winner = winners[0].2.clone();
        assert_eq!(tag_digest(&api, &repo, &tag).await, Some(winner.clone()));

        let again: Vec<_> = race(images.clone())
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        for (status, text, digest) in &again {
            if *digest == winner {
                assert_eq!(*status, 201, "re-push of the winner: {text}");
            } else {
                assert_eq!(*status, 400, "{text}");
            }
        }
        assert_eq!(tag_digest(&api, &repo, &tag).await, Some(winner));
    }
}

/// Each mode with exclusion filters, same-digest re-pushes, deletes by tag and by digest, and
/// multi-tag `?tag=` pushes (all or nothing).
#[tokio::test]
async fn modes_exclusions_repushes_deletes_and_multi_tag_pushes() {
    let (_server, api) = setup();
    let repo = format!("modes-{}/app", rand_suffix());
    let images = manifests(&api, &repo, 4).await;
    let (a, b, c) = (&images[0], &images[1], &images[2]);

    // MUTABLE (the default): tags move.
    assert_stored(&api, &repo, "v1", &a.0).await;
    assert_stored(&api, &repo, "v1", &b.0).await;
    assert_stored(&api, &repo, "latest", &b.0).await;

    // IMMUTABLE: no tag moves; the same digest is a no-op that succeeds; new tags work.
    set_mutability(&api, &repo, "IMMUTABLE", &[]).await;
    assert_refused(&api, &repo, "v1", &a.0, "v1").await;
    assert_refused(&api, &repo, "latest", &a.0, "latest").await;
    assert_stored(&api, &repo, "v1", &b.0).await;
    assert_stored(&api, &repo, &b.1, &b.0).await;
    assert_stored(&api, &repo, "v2", &a.0).await;
    assert_eq!(tag_digest(&api, &repo, "v1").await.as_deref(), Some(&*b.1));

    // IMMUTABLE_WITH_EXCLUSION with `latest` and `dev-*` excluded.
    set_mutability(
        &api,
        &repo,
        "IMMUTABLE_WITH_EXCLUSION",
        &["latest", "dev-*"],
    )
    .await;
    assert_stored(&api, &repo, "latest", &a.0).await;
    assert_stored(&api, &repo, "dev-1", &a.0).await;
    assert_stored(&api, &repo, "dev-1", &c.0).await;
    assert_stored(&api, &repo, "dev-", &c.0).await;
    assert_stored(&api, &repo, "dev-", &a.0).await;
    assert_refused(&api, &repo, "v1", &a.0, "v1").await;
    // `latest2` is not excluded: its first push works, moving it does not.
    assert_stored(&api, &repo, "latest2", &b.0).await;
    assert_refused(&api, &repo, "latest2", &a.0, "latest2").await;
    assert_eq!(
        tag_digest(&api, &repo, "dev-1").await.as_deref(),
        Some(&*c.1)
    );

    // MUTABLE_WITH_EXCLUSION with `v*`: only v-tags are protected.
    set_mutability(&api, &repo, "MUTABLE_WITH_EXCLUSION", &["v*"]).await;
    assert_refused(&api, &repo, "v2", &b.0, "v2").await;
    assert_stored(&api, &repo, "v2", &a.0).await;
    assert_stored(&api, &repo, "latest2", &a.0).await;
    assert_stored(&api, &repo, "dev-1", &b.0).await;

    // Deleting an immutable tag works, and the tag can then be pushed anew.
    set_mutability(&api, &repo, "IMMUTABLE", &[]).await;
    let resp = api.delete(&format!("/v2/{repo}/manifests/v1")).await;
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(tag_digest(&api, &repo, "v1").await, None);
    assert_stored(&api, &repo, "v1", &c.0).await;
    // Deleting by digest removes the manifest with its immutable tags.
    let resp = api.delete(&format!("/v2/{repo}/manifests/{}", c.1)).await;
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(tag_digest(&api, &repo, "v1").await, None);
    assert_stored(&api, &repo, "v1", &a.0).await;

    // Multi-tag push: one protected tag that would move refuses the whole push.
    let d = &images[3];
    let (status, text) = put(
        &api,
        &repo,
        &format!("{}?tag=fresh-1&tag=v2&tag=fresh-2", d.1),
        &d.0,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains(&ecr_message("v2", &repo)), "{text}");
    assert_eq!(tag_digest(&api, &repo, "fresh-1").await, None);
    assert_eq!(tag_digest(&api, &repo, "fresh-2").await, None);
    assert_eq!(tag_digest(&api, &repo, "v2").await.as_deref(), Some(&*a.1));
    let resp = api.head_manifest(&repo, &d.1).await;
    assert_eq!(
        resp.status().as_u16(),
        404,
        "the refused manifest was stored"
    );
    // Without the protected tag, and with a same-digest one, it works.
    let (status, text) = put(
        &api,
        &repo,
        &format!("{}?tag=fresh-1&tag=fresh-2", d.1),
        &d.0,
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = put(
        &api,
        &repo,
        &format!("{}?tag=fresh-1&tag=fresh-3", d.1),
        &d.0,
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        tag_digest(&api, &repo, "fresh-3").await.as_deref(),
        Some(&*d.1)
    );

    // Back to MUTABLE: everything moves again.
    set_mutability(&api, &repo, "MUTABLE", &[]).await;
    assert_stored(&api, &repo, "v2", &b.0).await;
}

/// The REST API at the public path: GET/PUT tag-mutability, repository creation with a mode,
/// validation naming the field, permissions and the audit log.
#[tokio::test]
async fn rest_tag_mutability_at_the_public_path() {
    let (_server, api) = setup();
    let repo = format!("rest-{}/team/app", rand_suffix());
    let path = format!("/api/v1/repositories/{repo}/tag-mutability");
    let (status, value) = admin(&api, Method::GET, &path, None).await;
    assert_eq!(status, 404, "{value}");
    let (status, value) = admin(
        &api,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": repo})),
    )
    .await;
    assert_eq!(status, 201, "{value}");
    assert_eq!(value["imageTagMutability"], "MUTABLE");
    let (status, value) = admin(&api, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        value,
        json!({"registryId": "000000000000", "repositoryName": repo, "imageTagMutability": "MUTABLE"})
    );

    let filters = json!([wildcard("latest"), wildcard("dev-*")]);
    let body = json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": filters});
    let (status, value) = admin(&api, Method::PUT, &path, Some(body)).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["imageTagMutabilityExclusionFilters"], filters);
    let (_, value) = admin(&api, Method::GET, &path, None).await;
    assert_eq!(value["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(value["imageTagMutabilityExclusionFilters"], filters);
    let (_, value) = admin(
        &api,
        Method::GET,
        &format!("/api/v1/repositories/{repo}"),
        None,
    )
    .await;
    assert_eq!(value["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    // Percent-encoded names work too.
    let encoded = repo.replace('/', "%2F");
    let (status, value) = admin(
        &api,
        Method::GET,
        &format!("/api/v1/repositories/{encoded}/tag-mutability"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["repositoryName"], repo.as_str());

    // Invalid settings: 400 naming the field; nothing changes.
    let cases = [
        (
            json!({"imageTagMutability": "SOMETIMES"}),
            "'imageTagMutability'",
        ),
        (json!({}), "'imageTagMutability'"),
        (
            json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}),
            "'imageTagMutabilityExclusionFilters'",
        ),
        (
            json!({"imageTagMutability": "IMMUTABLE", "imageTagMutabilityExclusionFilters": [wildcard("x")]}),
            "'imageTagMutabilityExclusionFilters'",
        ),
        (
            json!({"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [wildcard("ok"), wildcard("no/slash")]}),
            "'imageTagMutabilityExclusionFilters.2.member.filter'",
        ),
        (
            json!({"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [{"filterType": "REGEX", "filter": "x"}]}),
            "'imageTagMutabilityExclusionFilters.1.member.filterType'",
        ),
        (
            json!({"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": [wildcard(&"a".repeat(129))]}),
            "'imageTagMutabilityExclusionFilters.1.member.filter'",
        ),
        (
            json!({"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": (0..6).map(|i| wildcard(&format!("t{i}"))).collect::<Vec<_>>()}),
            "'imageTagMutabilityExclusionFilters'",
        ),
    ];
    for (body, field) in cases {
        let (status, value) = admin(&api, Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {value}");
        assert_eq!(value["errors"][0]["code"], "INVALID_PARAMETER", "{value}");
        let message = value["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (_, value) = admin(&api, Method::GET, &path, None).await;
    assert_eq!(value["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    let (status, value) = admin(
        &api,
        Method::POST,
        "/api/v1/repositories",
        Some(json!({"name": format!("{repo}-bad"), "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"})),
    )
    .await;
    assert_eq!(status, 400, "{value}");
    let (status, _) = admin(
        &api,
        Method::GET,
        &format!("/api/v1/repositories/{repo}-bad"),
        None,
    )
    .await;
    assert_eq!(status, 404, "a refused create created the repository");

    // Created with a mode: enforced at once.
    let other = format!("{repo}-imm");
    let (status, value) = admin(
        &api,
        Method::POST,
        "/api/v1/repositories",
        Some(
            json!({"name": other, "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
                    "imageTagMutabilityExclusionFilters": [wildcard("v*")]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{value}");
    assert_eq!(
        value["imageTagMutabilityExclusionFilters"][0]["filter"],
        "v*"
    );
    let images = manifests(&api, &other, 2).await;
    assert_stored(&api, &other, "v1", &images[0].0).await;
    assert_refused(&api, &other, "v1", &images[1].0, "v1").await;
    assert_stored(&api, &other, "latest", &images[0].0).await;
    assert_stored(&api, &other, "latest", &images[1].0).await;

    // A repository unknown to the PUT: 404.
    let (status, value) = admin(
        &api,
        Method::PUT,
        &format!("/api/v1/repositories/{repo}-missing/tag-mutability"),
        Some(json!({"imageTagMutability": "IMMUTABLE"})),
    )
    .await;
    assert_eq!(status, 404, "{value}");

    // Audited.
    let (_, log) = admin(&api, Method::GET, "/api/v1/audit?limit=100", None).await;
    let entries = log["entries"].as_array().unwrap();
    let set = entries
        .iter()
        .find(|e| e["action"] == "ecr:PutImageTagMutability" && e["outcome"] == "success")
        .unwrap_or_else(|| panic!("no audit entry: {log}"));
    assert!(set["resource"].as_str().unwrap().ends_with(&repo));
    assert!(
        set["detail"]
            .as_str()
            .unwrap()
            .contains("IMMUTABLE_WITH_EXCLUSION"),
        "{set}"
    );
    assert!(entries
        .iter()
        .any(|e| e["action"] == "ecr:PutImageTagMutability" && e["outcome"] == "failed"));
}
