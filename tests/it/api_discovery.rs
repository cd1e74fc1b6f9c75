//! Content discovery: tags list with `n`/`last` pagination and `Link`, the catalog, and the referrers API with
//! `artifactType` filtering (distribution-spec "Content Discovery", end-8a, end-8b, end-12a, end-12b).

use crate::support::{api, common};

use api::*;
use common::TestServer;
use serde_json::{json, Value};

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// Tags `tags` on one image in `repo` (pushed by digest first, then each tag).
async fn tag_image(api: &Api, repo: &str, tags: &[&str]) -> Pushed {
    let img = api.push_image(repo, "").await;
    for t in tags {
        api.push_manifest(repo, t, OCI_MANIFEST, &img.manifest)
            .await;
    }
    img
}

/// GET a tags-list or catalog page: (status, list under `key`, `rel="next"` target).
async fn page(api: &Api, path: &str, key: &str) -> (Vec<String>, Option<String>, Value) {
    let resp = api.get(path).await;
    let st = resp.status().as_u16();
    let next = link_next(&resp);
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, 200, "GET {path}: {text}");
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"));
    (json_strings(&v[key]), next, v)
}

fn ascii_sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// end-8a: `{"name": ..., "tags": [...]}` in lexical or ASCIIbetical order (the spec allows either).
#[tokio::test]
async fn tags_list_is_sorted() {
    let (_s, api) = setup();
    let tags = ["v2", "latest", "1.0", "A", "_x", "b-1", "Z", "v10", "1.0.1"];
    tag_image(&api, "team/app", &tags).await;
    let (got, next, v) = page(&api, "/v2/team/app/tags/list", "tags").await;
    assert_eq!(v["name"], "team/app");
    assert!(next.is_none(), "no Link without n");
    let ascii = ascii_sorted(&tags);
    let mut lexical = ascii.clone();
    lexical.sort_by_key(|s| s.to_lowercase());
    assert!(got == ascii || got == lexical, "tags not sorted: {got:?}");
}

/// end-8b: `n` pages with `Link: </v2/<name>/tags/list?n=..&last=..>; rel="next"`; following the links yields every
/// tag exactly once, in order.
#[tokio::test]
async fn tags_list_pagination_with_link() {
    let (_s, api) = setup();
    let tags = ["t01", "t02", "t03", "t04", "t05", "t06", "t07"];
    tag_image(&api, "team/app", &tags).await;

    let (first, next, _) = page(&api, "/v2/team/app/tags/list?n=3", "tags").await;
    assert_eq!(first, ascii_sorted(&tags[..3]));
    let next = next.expect("Link rel=\"next\" when more tags remain");
    assert!(
        next.starts_with("/v2/team/app/tags/list?"),
        "Link target {next:?}"
    );
    let q = query_pairs(&next);
    assert!(
        q.contains(&("n".into(), "3".into())),
        "Link keeps n: {next}"
    );
    assert!(
        q.contains(&("last".into(), "t03".into())),
        "Link has last=t03: {next}"
    );

    let mut all = first;
    let mut cursor = Some(next);
    let mut pages = 1;
    while let Some(link) = cursor {
        pages += 1;
        assert!(pages <= 5, "pagination does not end");
        let (items, next, _) = page(&api, &link, "tags").await;
        assert!(items.len() <= 3, "page larger than n: {items:?}");
        all.extend(items);
        cursor = next;
    }
    assert_eq!(all, ascii_sorted(&tags));
}

/// `last` without `n` returns everything after `last`; `n` beyond the end returns all with no `Link`;
/// `n=0` returns an empty list and no `Link`; `last` past the end returns an empty list.
#[tokio::test]
async fn tags_list_last_and_edge_values_of_n() {
    let (_s, api) = setup();
    let tags = ["t01", "t02", "t03", "t04", "t05"];
    tag_image(&api, "team/app", &tags).await;

    let (got, _, _) = page(&api, "/v2/team/app/tags/list?last=t02", "tags").await;
    assert_eq!(got, ascii_sorted(&tags[2..]));
    let (got, next, _) = page(&api, "/v2/team/app/tags/list?n=2&last=t02", "tags").await;
    assert_eq!(got, ascii_sorted(&tags[2..4]));
    assert!(next.is_some(), "Link expected, t05 remains");

    let (got, next, _) = page(&api, "/v2/team/app/tags/list?n=100", "tags").await;
    assert_eq!(got, ascii_sorted(&tags));
    assert!(next.is_none(), "no Link when everything fits");

    let (got, next, v) = page(&api, "/v2/team/app/tags/list?n=0", "tags").await;
    assert!(got.is_empty(), "n=0 must return an empty list: {got:?}");
    assert!(v["tags"].is_array(), "n=0: \"tags\" must be a list: {v}");
    assert!(next.is_none(), "n=0 must not send Link");

    let (got, next, _) = page(&api, "/v2/team/app/tags/list?last=t05", "tags").await;
    assert!(got.is_empty(), "{got:?}");
    assert!(next.is_none());
    // `last` need not be an existing tag: it is a position in the order.
    let (got, _, _) = page(&api, "/v2/team/app/tags/list?last=t025", "tags").await;
    assert_eq!(got, ascii_sorted(&tags[2..]));
}

/// A repository whose manifests are all untagged exists: 200 with no tags. An unknown repository: 404 `NAME_UNKNOWN`.
#[tokio::test]
async fn tags_list_of_untagged_and_unknown_repositories() {
    let (_s, api) = setup();
    api.push_image("team/untagged", "").await;
    let (got, _, v) = page(&api, "/v2/team/untagged/tags/list", "tags").await;
    assert!(got.is_empty());
    assert_eq!(v["name"], "team/untagged");
    expect_error(
        api.get("/v2/no/such/repo/tags/list").await,
        404,
        &["NAME_UNKNOWN"],
    )
    .await;
}

/// `/v2/_catalog`: sorted repository names, `n`/`last` pagination with `Link`, `n=0` empty.
#[tokio::test]
async fn catalog_lists_and_paginates() {
    let (_s, api) = setup();
    let repos = ["team/b", "alpha", "team/a", "other/x/y", "zeta"];
    for r in repos {
        api.push_image(r, "v1").await;
    }
    let (all, next, _) = page(&api, "/v2/_catalog", "repositories").await;
    assert_eq!(all, ascii_sorted(&repos));
    assert!(next.is_none());

    let (first, next, _) = page(&api, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(first, ascii_sorted(&repos)[..2].to_vec());
    let next = next.expect("catalog Link rel=\"next\"");
    assert!(
        next.starts_with("/v2/_catalog?"),
        "catalog Link target {next:?}"
    );
    let q = query_pairs(&next);
    assert!(q.contains(&("n".into(), "2".into())), "{next}");
    assert!(q.contains(&("last".into(), first[1].clone())), "{next}");
    let mut got = first;
    let mut cursor = Some(next);
    let mut pages = 1;
    while let Some(link) = cursor {
        pages += 1;
        assert!(pages <= 6, "catalog pagination does not end");
        let (items, next, _) = page(&api, &link, "repositories").await;
        got.extend(items);
        cursor = next;
    }
    assert_eq!(got, ascii_sorted(&repos));

    let (got, next, v) = page(&api, "/v2/_catalog?n=0", "repositories").await;
    assert!(got.is_empty() && v["repositories"].is_array(), "n=0: {v}");
    assert!(next.is_none());
    let (got, _, _) = page(&api, "/v2/_catalog?last=team/a", "repositories").await;
    assert_eq!(got, vec!["team/b".to_string(), "zeta".to_string()]);
}

/// `/v2/_catalog` without `n` answers 100 names and a `Link` (with `n=100`) to the rest, as
/// Distribution does; a larger `n` is served up to the registry's largest page.
#[tokio::test]
async fn catalog_pages_by_100_without_n() {
    let (_s, api) = setup();
    let repos: Vec<String> = (0..130).map(|i| format!("many/r{i:03}")).collect();
    for r in &repos {
        api.push_image(r, "v1").await;
    }
    let (first, next, _) = page(&api, "/v2/_catalog", "repositories").await;
    assert_eq!(first, repos[..100].to_vec());
    let next = next.expect("a Link to the second page");
    let q = query_pairs(&next);
    assert!(q.contains(&("n".into(), "100".into())), "{next}");
    assert!(q.contains(&("last".into(), "many/r099".into())), "{next}");
    let (rest, after, _) = page(&api, &next, "repositories").await;
    assert_eq!(rest, repos[100..].to_vec());
    assert!(after.is_none(), "no Link after the last page: {after:?}");

    let (all, after, _) = page(&api, "/v2/_catalog?n=1000", "repositories").await;
    assert_eq!(all, repos);
    assert!(after.is_none());
}

/// Pushes an artifact manifest that refers to `subject`; returns (digest, size, bytes).
async fn push_referrer(
    api: &Api,
    repo: &str,
    subject: &Pushed,
    artifact_type: Option<&str>,
    config_mt: &str,
    annotations: Value,
) -> (String, usize) {
    let config = if config_mt == OCI_EMPTY {
        EMPTY_JSON.to_vec()
    } else {
        random_config()
    };
    api.push_blob(repo, &config).await;
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(config_mt, &config),
        "layers": [desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2)],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.manifest.len()},
        "annotations": annotations,
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    let body = serde_json::to_vec(&m).unwrap();
    let d = sha256_digest(&body);
    let resp = api.put_manifest(repo, &d, OCI_MANIFEST, &body).await;
    assert_eq!(
        resp.status().as_u16(),
        201,
        "referrer push: {}",
        resp.text().await.unwrap_or_default()
    );
    (d, body.len())
}

/// GET a referrers list: asserts 200, `Content-Type` index, index shape; returns (descriptors, OCI-Filters-Applied).
async fn referrers(api: &Api, path: &str) -> (Vec<Value>, Vec<String>) {
    let resp = api.get(path).await;
    let st = resp.status().as_u16();
    let ct = content_type(&resp);
    let filters = header_list(&resp, "oci-filters-applied");
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, 200, "GET {path}: {text}");
    assert_eq!(ct.as_deref(), Some(OCI_INDEX), "referrers Content-Type");
    let v: Value = serde_json::from_str(&text).expect("referrers JSON");
    assert_eq!(v["schemaVersion"], 2, "{text}");
    assert_eq!(v["mediaType"], OCI_INDEX, "{text}");
    let list = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("\"manifests\" must be a list: {text}"))
        .clone();
    (list, filters)
}

fn find<'a>(list: &'a [Value], digest: &str) -> &'a Value {
    list.iter()
        .find(|d| d["digest"] == digest)
        .unwrap_or_else(|| panic!("referrer {digest} missing from {list:?}"))
}

/// end-12a: an index of every manifest whose subject is the digest, with `artifactType` (or the config media type
/// when absent; omitted for an index without one) and the manifest's annotations.
#[tokio::test]
async fn referrers_list() {
    let (_s, api) = setup();
    let repo = "team/app";
    api.push_empty_config(repo).await;
    let subject = api.push_image(repo, "v1").await;
    let other = api.push_image(repo, "v2").await;

    let (sbom, sbom_size) = push_referrer(
        &api, repo, &subject, Some("application/vnd.example.sbom.v1"), OCI_EMPTY,
        json!({"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.sbom.format": "json"}),
    )
    .await;
    let (sig, _) = push_referrer(
        &api,
        repo,
        &subject,
        None,
        "application/vnd.example.sig.config.v1+json",
        json!({"org.example.signature.fingerprint": "abcd"}),
    )
    .await;
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len()},
        "annotations": {"kind": "index-referrer"},
    }))
    .unwrap();
    let idx_digest = api
        .push_manifest(repo, &sha256_digest(&idx), OCI_INDEX, &idx)
        .await;
    // Noise: a referrer of another manifest.
    let (unrelated, _) = push_referrer(
        &api,
        repo,
        &other,
        Some("application/vnd.example.sbom.v1"),
        OCI_EMPTY,
        json!({}),
    )
    .await;

    let (list, _) = referrers(&api, &format!("/v2/{repo}/referrers/{}", subject.digest)).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|d| d["digest"] != unrelated.as_str()));

    let d = find(&list, &sbom);
    assert_eq!(d["mediaType"], OCI_MANIFEST);
    assert_eq!(d["size"], sbom_size);
    assert_eq!(d["artifactType"], "application/vnd.example.sbom.v1");
    assert_eq!(d["annotations"]["org.example.sbom.format"], "json");
    assert_eq!(
        d["annotations"]["org.opencontainers.image.created"],
        "2024-01-01T00:00:00Z"
    );

    let d = find(&list, &sig);
    assert_eq!(
        d["artifactType"], "application/vnd.example.sig.config.v1+json",
        "config mediaType fallback"
    );
    assert_eq!(
        d["annotations"]["org.example.signature.fingerprint"],
        "abcd"
    );

    let d = find(&list, &idx_digest);
    assert_eq!(d["mediaType"], OCI_INDEX);
    assert!(
        d.get("artifactType").is_none() || d["artifactType"].is_null(),
        "index without artifactType: {d}"
    );
    assert_eq!(d["annotations"]["kind"], "index-referrer");
}

/// end-12b: `?artifactType=` filters and the response says so with `OCI-Filters-Applied: artifactType`.
#[tokio::test]
async fn referrers_artifact_type_filter() {
    let (_s, api) = setup();
    let repo = "team/app";
    api.push_empty_config(repo).await;
    let subject = api.push_image(repo, "v1").await;
    let (sbom, _) = push_referrer(
        &api,
        repo,
        &subject,
        Some("application/vnd.example.sbom.v1"),
        OCI_EMPTY,
        json!({}),
    )
    .await;
    push_referrer(
        &api,
        repo,
        &subject,
        Some("application/vnd.example.sig.v1"),
        OCI_EMPTY,
        json!({}),
    )
    .await;

    let path = format!(
        "/v2/{repo}/referrers/{}?artifactType=application/vnd.example.sbom.v1",
        subject.digest
    );
    let (list, filters) = referrers(&api, &path).await;
    assert_eq!(filters, vec!["artifactType".to_string()]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["digest"], sbom.as_str());

    let path = format!(
        "/v2/{repo}/referrers/{}?artifactType=application/vnd.none",
        subject.digest
    );
    let (list, filters) = referrers(&api, &path).await;
    assert!(list.is_empty());
    assert_eq!(filters, vec!["artifactType".to_string()]);

    let (list, filters) =
        referrers(&api, &format!("/v2/{repo}/referrers/{}", subject.digest)).await;
    assert_eq!(list.len(), 2);
    assert!(
        filters.is_empty(),
        "no filter applied, yet OCI-Filters-Applied: {filters:?}"
    );
}

/// No referrers: 200 with an empty index (never 404), also for a digest the repository has never seen.
/// A malformed digest: 400.
#[tokio::test]
async fn referrers_empty_and_invalid() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    for d in [img.digest.clone(), unknown_digest()] {
        let (list, _) = referrers(&api, &format!("/v2/team/app/referrers/{d}")).await;
        assert!(list.is_empty(), "{list:?}");
    }
    let resp = api.get("/v2/team/app/referrers/sha256:nothex").await;
    assert_eq!(resp.status().as_u16(), 400, "malformed digest");
    let resp = api.get("/v2/team/app/referrers/v1").await;
    assert_eq!(resp.status().as_u16(), 400, "a tag is not a digest");
}

/// A referrer pushed before its subject is listed once the subject exists (and even before); referrers are
/// scoped to their repository; a deleted referrer disappears from the list.
#[tokio::test]
async fn referrers_order_scope_and_delete() {
    let (_s, api) = setup();
    api.push_empty_config("team/app").await;
    api.push_empty_config("team/copy").await;
    // Build the subject's bytes, push its referrer first.
    let subject_config = random_config();
    let subject_layer = random_bytes(700);
    api.push_blob("team/app", &subject_config).await;
    api.push_blob("team/app", &subject_layer).await;
    let subject_bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &subject_config), "layers": [desc(OCI_LAYER, &subject_layer)],
    }))
    .unwrap();
    let subject = Pushed {
        digest: sha256_digest(&subject_bytes),
        manifest: subject_bytes.clone(),
        media_type: OCI_MANIFEST.into(),
        config_digest: String::new(),
        layer_digests: vec![],
    };
    let (early, _) = push_referrer(
        &api,
        "team/app",
        &subject,
        Some("application/vnd.example.early"),
        OCI_EMPTY,
        json!({}),
    )
    .await;
    let path = format!("/v2/team/app/referrers/{}", subject.digest);
    let (list, _) = referrers(&api, &path).await;
    assert_eq!(list.len(), 1, "referrer listed before its subject exists");
    api.push_manifest("team/app", "v1", OCI_MANIFEST, &subject_bytes)
        .await;
    let (list, _) = referrers(&api, &path).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], early.as_str());

    // Another repository holding the same subject has no referrers.
    let (list, _) = referrers(&api, &format!("/v2/team/copy/referrers/{}", subject.digest)).await;
    assert!(
        list.is_empty(),
        "referrers leak across repositories: {list:?}"
    );

    let resp = api.delete(&format!("/v2/team/app/manifests/{early}")).await;
    assert_eq!(resp.status().as_u16(), 202);
    let (list, _) = referrers(&api, &path).await;
    assert!(list.is_empty(), "deleted referrer still listed: {list:?}");
}

/// `artifactType` values with `+` and `/` arrive percent-encoded and must be compared after decoding; a sha512
/// subject digest works like a sha256 one.
#[tokio::test]
async fn referrers_filter_with_encoded_type_and_sha512_subject() {
    let (_s, api) = setup();
    let repo = "team/app";
    api.push_empty_config(repo).await;
    let subject = api.push_image(repo, "v1").await;
    let (spdx, _) = push_referrer(
        &api,
        repo,
        &subject,
        Some("application/spdx+json"),
        OCI_EMPTY,
        json!({}),
    )
    .await;
    push_referrer(
        &api,
        repo,
        &subject,
        Some("application/vnd.other"),
        OCI_EMPTY,
        json!({}),
    )
    .await;
    let path = format!(
        "/v2/{repo}/referrers/{}?artifactType=application%2Fspdx%2Bjson",
        subject.digest
    );
    let (list, filters) = referrers(&api, &path).await;
    assert_eq!(filters, vec!["artifactType".to_string()]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["digest"], spdx.as_str());
    assert_eq!(list[0]["artifactType"], "application/spdx+json");

    // A subject addressed by sha512.
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2), "layers": [],
    }))
    .unwrap();
    let d512 = sha512_digest(&m);
    api.push_manifest(repo, &d512, OCI_MANIFEST, &m).await;
    let s512 = Pushed {
        manifest: m,
        digest: d512.clone(),
        media_type: OCI_MANIFEST.into(),
        config_digest: EMPTY_JSON_DIGEST.into(),
        layer_digests: vec![],
    };
    let (r, _) = push_referrer(
        &api,
        repo,
        &s512,
        Some("application/vnd.sig"),
        OCI_EMPTY,
        json!({}),
    )
    .await;
    let (list, _) = referrers(&api, &format!("/v2/{repo}/referrers/{d512}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["digest"], r.as_str());
}
