//! Manifests: OCI image/index, Docker schema2/list, artifacts, missing `mediaType`, `subject` (`OCI-Subject`),
//! multi-tag push (`OCI-Tag`), reference checks (`MANIFEST_BLOB_UNKNOWN`), descriptor sizes and `mediaType` against
//! `Content-Type` (`MANIFEST_INVALID`), size limit, digest and JSON validation,
//! byte-exact storage, tag and name validation, durability across a crash (distribution-spec "Pushing Manifests",
//! end-7a, end-7b).

use crate::support::{api, common};

use api::*;
use common::TestServer;
use serde_json::{json, Value};

fn setup() -> (TestServer, Api) {
    let server = TestServer::start();
    let api = Api::new(&server.base);
    (server, api)
}

/// GET by reference, asserting 200, `Content-Type`, `Docker-Content-Digest` and the exact bytes.
async fn assert_manifest(api: &Api, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let resp = api.get_manifest(repo, reference).await;
    assert_eq!(resp.status().as_u16(), 200, "GET {repo}:{reference}");
    assert_eq!(
        content_type(&resp).as_deref(),
        Some(media_type),
        "{repo}:{reference} Content-Type"
    );
    let expect = if reference.starts_with("sha512:") {
        sha512_digest(body)
    } else {
        sha256_digest(body)
    };
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(expect.as_str())
    );
    let got = resp.bytes().await.unwrap();
    assert!(got[..] == body[..], "{repo}:{reference}: bytes differ");
}

/// Pushes config + one layer into `repo` and returns (config desc, layer desc) as JSON values.
async fn blobs(api: &Api, repo: &str, config_mt: &str, layer_mt: &str) -> (Value, Value) {
    let config = random_config();
    let layer = random_bytes(1500);
    api.push_blob(repo, &config).await;
    api.push_blob(repo, &layer).await;
    (desc(config_mt, &config), desc(layer_mt, &layer))
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// OCI image manifest by tag: 201, `Location`, `Docker-Content-Digest`; GET by tag and digest returns it.
#[tokio::test]
async fn oci_image_manifest() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m =
        to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]}));
    let d = api.push_manifest("team/app", "v1", OCI_MANIFEST, &m).await;
    assert_manifest(&api, "team/app", "v1", OCI_MANIFEST, &m).await;
    assert_manifest(&api, "team/app", &d, OCI_MANIFEST, &m).await;
    let resp = api
        .put_manifest("team/app", "v1-again", OCI_MANIFEST, &m)
        .await;
    let loc = header(&resp, "location").expect("Location");
    assert_eq!(resp.status().as_u16(), 201);
    let r = api
        .send(
            api.req(reqwest::Method::GET, &loc)
                .header("accept", all_manifest_types()),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200, "the 201 Location is pullable");
}

/// OCI index over two image manifests pushed by digest (and a nested index over that index).
#[tokio::test]
async fn oci_index_and_nested_index() {
    let (_s, api) = setup();
    let a = api.push_image("team/app", "").await;
    let b = api.push_image("team/app", "").await;
    let idx = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": a.digest, "size": a.manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": b.digest, "size": b.manifest.len(),
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }));
    let idx_digest = api
        .push_manifest("team/app", "multi", OCI_INDEX, &idx)
        .await;
    assert_manifest(&api, "team/app", "multi", OCI_INDEX, &idx).await;
    let nested = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": idx_digest, "size": idx.len()}],
    }));
    api.push_manifest("team/app", "nested", OCI_INDEX, &nested)
        .await;
    assert_manifest(&api, "team/app", "nested", OCI_INDEX, &nested).await;
    // An empty index is a valid index.
    let empty = to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    api.push_manifest("team/app", "empty-index", OCI_INDEX, &empty)
        .await;
    assert_manifest(&api, "team/app", "empty-index", OCI_INDEX, &empty).await;
}

/// Docker schema2 manifest and manifest list.
#[tokio::test]
async fn docker_schema2_manifest_and_list() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", DOCKER_CONFIG, DOCKER_LAYER).await;
    let m = to_vec(
        &json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": c, "layers": [l]}),
    );
    let d = api
        .push_manifest("team/app", "docker", DOCKER_MANIFEST, &m)
        .await;
    assert_manifest(&api, "team/app", "docker", DOCKER_MANIFEST, &m).await;
    let list = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": d, "size": m.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }));
    api.push_manifest("team/app", "list", DOCKER_LIST, &list)
        .await;
    assert_manifest(&api, "team/app", "list", DOCKER_LIST, &list).await;
    let resp = api.head_manifest("team/app", "list").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(content_type(&resp).as_deref(), Some(DOCKER_LIST));
    assert_eq!(content_length(&resp), Some(list.len() as u64));
}

/// Artifacts: `artifactType` with the empty config (`application/vnd.oci.empty.v1+json`, `{}`), with a layer and
/// with no layers at all.
#[tokio::test]
async fn artifact_with_empty_config() {
    let (_s, api) = setup();
    api.push_empty_config("team/app").await;
    let file = b"{\"sbom\": true}".to_vec();
    api.push_blob("team/app", &file).await;
    let art = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2),
        "layers": [desc("application/vnd.example.sbom.v1+json", &file)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }));
    api.push_manifest("team/app", "sbom", OCI_MANIFEST, &art)
        .await;
    assert_manifest(&api, "team/app", "sbom", OCI_MANIFEST, &art).await;

    let no_layers = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.empty.v1",
        "config": desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2),
        "layers": [],
    }));
    api.push_manifest("team/app", "nolayers", OCI_MANIFEST, &no_layers)
        .await;
    assert_manifest(&api, "team/app", "nolayers", OCI_MANIFEST, &no_layers).await;

    // The empty descriptor may also carry its content inline in `data` (base64 of `{}`).
    let with_data = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.data.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, "data": "e30="}],
    }));
    api.push_manifest("team/app", "withdata", OCI_MANIFEST, &with_data)
        .await;
    assert_manifest(&api, "team/app", "withdata", OCI_MANIFEST, &with_data).await;
}

/// A manifest with no `mediaType` field (as `podman import` pushes): the stored type is the request's
/// `Content-Type` (parameters ignored).
#[tokio::test]
async fn manifest_without_media_type_field() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m = to_vec(&json!({"schemaVersion": 2, "config": c, "layers": [l]}));
    let d = api
        .push_manifest("team/app", "nomt", OCI_MANIFEST, &m)
        .await;
    assert_manifest(&api, "team/app", "nomt", OCI_MANIFEST, &m).await;
    assert_manifest(&api, "team/app", &d, OCI_MANIFEST, &m).await;

    let idx = to_vec(&json!({"schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": m.len()}]}));
    api.push_manifest(
        "team/app",
        "nomt-index",
        &format!("{OCI_INDEX}; charset=utf-8"),
        &idx,
    )
    .await;
    assert_manifest(&api, "team/app", "nomt-index", OCI_INDEX, &idx).await;
}

/// A manifest with `subject` -> 201 with `OCI-Subject: <subject digest>`, whether or not the subject exists yet.
#[tokio::test]
async fn subject_yields_oci_subject_header() {
    let (_s, api) = setup();
    let subject = api.push_image("team/app", "v1").await;
    api.push_empty_config("team/app").await;
    let missing = unknown_digest();
    for (subject_digest, size) in [
        (subject.digest.clone(), subject.manifest.len()),
        (missing.clone(), 1234),
    ] {
        let art = to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig.v1",
            "config": desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2),
            "layers": [desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2)],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": size},
        }));
        let d = sha256_digest(&art);
        let resp = api.put_manifest("team/app", &d, OCI_MANIFEST, &art).await;
        let st = resp.status().as_u16();
        let oci_subject = header(&resp, "oci-subject");
        assert_eq!(
            st,
            201,
            "referrer push (subject {subject_digest}): {}",
            resp.text().await.unwrap_or_default()
        );
        assert_eq!(
            oci_subject.as_deref(),
            Some(subject_digest.as_str()),
            "OCI-Subject"
        );
        assert_manifest(&api, "team/app", &d, OCI_MANIFEST, &art).await;
    }
    // An index with a subject as well.
    let idx = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len()},
    }));
    let resp = api
        .put_manifest("team/app", &sha256_digest(&idx), OCI_INDEX, &idx)
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        header(&resp, "oci-subject").as_deref(),
        Some(subject.digest.as_str())
    );
}

/// end-7b: `PUT manifests/<digest>?tag=a&tag=b&tag=c` -> 201 with `OCI-Tag` listing every tag; all resolve.
#[tokio::test]
async fn multi_tag_push() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m =
        to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]}));
    let d = sha256_digest(&m);
    let tags = ["1.2.3", "1.2", "1", "latest"];
    let q: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let resp = api
        .put_manifest(
            "team/app",
            &format!("{d}?{}", q.join("&")),
            OCI_MANIFEST,
            &m,
        )
        .await;
    let st = resp.status().as_u16();
    let mut got = header_list(&resp, "oci-tag");
    let dcd = header(&resp, "docker-content-digest");
    assert_eq!(
        st,
        201,
        "multi-tag push: {}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(dcd.as_deref(), Some(d.as_str()));
    got.sort();
    let mut want: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "OCI-Tag headers");
    for t in tags {
        let resp = api.head_manifest("team/app", t).await;
        assert_eq!(resp.status().as_u16(), 200, "tag {t}");
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(d.as_str())
        );
    }
    let mut listed = api.tags("team/app").await;
    listed.sort();
    assert_eq!(listed, want);

    // Ten tags in one request (the spec's SHOULD).
    let many: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let q: Vec<String> = many.iter().map(|t| format!("tag={t}")).collect();
    let resp = api
        .put_manifest(
            "team/app",
            &format!("{d}?{}", q.join("&")),
            OCI_MANIFEST,
            &m,
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(header_list(&resp, "oci-tag").len(), 10);
}

/// An invalid tag among `?tag=` parameters is rejected (400) and creates no tag.
#[tokio::test]
async fn multi_tag_push_with_invalid_tag_is_400() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m =
        to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]}));
    let d = sha256_digest(&m);
    let resp = api
        .put_manifest(
            "team/app",
            &format!("{d}?tag=good&tag=-bad"),
            OCI_MANIFEST,
            &m,
        )
        .await;
    expect_error(resp, 400, &["TAG_INVALID", "MANIFEST_INVALID"]).await;
    assert_eq!(
        api.head_manifest("team/app", "good")
            .await
            .status()
            .as_u16(),
        404
    );
}

/// Referenced config, layer or child manifest missing -> 400 `MANIFEST_BLOB_UNKNOWN`; nothing is tagged.
#[tokio::test]
async fn missing_references_are_manifest_blob_unknown() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let ghost = desc_of(OCI_LAYER, &unknown_digest(), 1000);
    let ghost_cfg = desc_of(OCI_CONFIG, &unknown_digest(), 100);
    let cases = [
        (
            "missing-layer",
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l, ghost]}),
        ),
        (
            "missing-config",
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": ghost_cfg, "layers": [l]}),
        ),
        (
            "missing-child",
            OCI_INDEX,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": unknown_digest(), "size": 500}]}),
        ),
        (
            "missing-docker-child",
            DOCKER_LIST,
            json!({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": unknown_digest(), "size": 500}]}),
        ),
    ];
    for (tag, mt, m) in cases {
        let resp = api.put_manifest("team/app", tag, mt, &to_vec(&m)).await;
        expect_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]).await;
        assert_eq!(
            api.head_manifest("team/app", tag).await.status().as_u16(),
            404,
            "{tag}"
        );
    }
    // A blob that exists only in another repository does not count.
    let other = random_bytes(800);
    api.push_blob("team/other", &other).await;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c,
                   "layers": [desc(OCI_LAYER, &other)]});
    let resp = api
        .put_manifest("team/app", "foreign-layer", OCI_MANIFEST, &to_vec(&m))
        .await;
    expect_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]).await;
}

/// PUT that must be refused with 400 `MANIFEST_INVALID` and leave `tag` absent; returns the error message.
async fn refused_as_invalid(
    api: &Api,
    repo: &str,
    tag: &str,
    content_type: &str,
    m: &Value,
) -> String {
    let resp = api.put_manifest(repo, tag, content_type, &to_vec(m)).await;
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, 400, "{tag}: expected 400, got {st}: {text}");
    check_error_body(tag, st, &text, &["MANIFEST_INVALID"]);
    assert_eq!(
        api.head_manifest(repo, tag).await.status().as_u16(),
        404,
        "{tag}: a refused manifest must not be tagged"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    v["errors"][0]["message"].as_str().unwrap_or("").to_owned()
}

/// A descriptor whose `size` differs from the blob or child manifest the registry holds -> 400
/// `MANIFEST_INVALID` naming the descriptor, its declared size and the stored size: clients verify
/// sizes on pull, so no client could pull it. (The content is known, so not `MANIFEST_BLOB_UNKNOWN`.)
#[tokio::test]
async fn descriptor_sizes_must_match_the_stored_content() {
    let (_s, api) = setup();
    let layer = random_bytes(24);
    let layer_digest = api.push_blob("team/app", &layer).await;
    let config = random_config();
    let config_digest = api.push_blob("team/app", &config).await;
    let (config_len, config_desc) = (config.len(), desc(OCI_CONFIG, &config));
    let cases = [
        (
            "oci-layer",
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                   "layers": [desc(OCI_LAYER, &layer), desc_of(OCI_LAYER, &layer_digest, 999999)]}),
            format!("layers[1] ({layer_digest}) declares size 999999 but the stored blob is 24 bytes"),
        ),
        (
            "oci-config",
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": desc_of(OCI_CONFIG, &config_digest, config_len + 1),
                   "layers": [desc(OCI_LAYER, &layer)]}),
            format!(
                "config ({config_digest}) declares size {} but the stored blob is {config_len} bytes",
                config_len + 1
            ),
        ),
        (
            "docker-layer",
            DOCKER_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                   "config": desc(DOCKER_CONFIG, &config),
                   "layers": [desc_of(DOCKER_LAYER, &layer_digest, 0)]}),
            format!("layers[0] ({layer_digest}) declares size 0 but the stored blob is 24 bytes"),
        ),
    ];
    for (tag, mt, m, expected) in cases {
        let message = refused_as_invalid(&api, "team/app", tag, mt, &m).await;
        assert!(message.contains(&expected), "{tag}: {message}");
    }

    // Child manifests of an index against the stored manifest's length.
    let child = api.push_image("team/app", "").await;
    let len = child.manifest.len();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len + 7}]});
    let message = refused_as_invalid(&api, "team/app", "oci-index", OCI_INDEX, &index).await;
    let expected = format!(
        "manifests[0] ({}) declares size {} but the stored manifest is {len} bytes",
        child.digest,
        len + 7
    );
    assert!(message.contains(&expected), "{message}");
    let list = json!({"schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len - 1}]});
    refused_as_invalid(&api, "team/app", "docker-list", DOCKER_LIST, &list).await;

    // With the right sizes the same references are accepted.
    let good = to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config), "layers": [desc(OCI_LAYER, &layer)]}));
    api.push_manifest("team/app", "good", OCI_MANIFEST, &good)
        .await;
    let index = to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len}]}));
    api.push_manifest("team/app", "good-index", OCI_INDEX, &index)
        .await;
}

/// A `mediaType` field that contradicts the request's `Content-Type` -> 400 `MANIFEST_INVALID`
/// (distribution-spec "Pushing Manifests": a client MUST send a manifest's `mediaType` as its
/// Content-Type; pullers reject a manifest whose `mediaType` contradicts the type it is served
/// with). Parameters and letter case are ignored; no Content-Type, or a generic one such as
/// `application/json`, claims no type, and the field decides what the manifest is served as.
#[tokio::test]
async fn media_type_field_must_match_content_type() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let oci = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]});
    let docker =
        json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": c, "layers": [l]});
    let child = api.push_image("team/app", "").await;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len()}]});
    let cases = [
        ("oci-as-docker", DOCKER_MANIFEST, &oci),
        ("docker-as-oci", OCI_MANIFEST, &docker),
        ("oci-as-index", OCI_INDEX, &oci),
        ("index-as-oci", OCI_MANIFEST, &index),
        ("index-as-docker-list", DOCKER_LIST, &index),
        ("oci-as-config", OCI_CONFIG, &oci),
    ];
    for (tag, content_type, m) in cases {
        let message = refused_as_invalid(&api, "team/app", tag, content_type, m).await;
        let doc = m["mediaType"].as_str().unwrap();
        assert!(
            message.contains(doc) && message.contains(content_type),
            "{tag}: the message names both types: {message}"
        );
    }

    let accepted = [
        (
            "params",
            format!("{OCI_MANIFEST}; charset=utf-8"),
            &oci,
            OCI_MANIFEST,
        ),
        ("case", OCI_MANIFEST.to_uppercase(), &oci, OCI_MANIFEST),
        ("no-content-type", String::new(), &oci, OCI_MANIFEST),
        (
            "json",
            "application/json".to_owned(),
            &docker,
            DOCKER_MANIFEST,
        ),
        ("index", OCI_INDEX.to_owned(), &index, OCI_INDEX),
    ];
    for (tag, content_type, m, served_as) in accepted {
        let body = to_vec(m);
        api.push_manifest("team/app", tag, &content_type, &body)
            .await;
        assert_manifest(&api, "team/app", tag, served_as, &body).await;
    }
}

/// Non-distributable layers (OCI nondistributable type, Docker foreign type, any layer with `urls`) need not exist.
#[tokio::test]
async fn nondistributable_and_url_layers_need_not_exist() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": c,
        "layers": [
            l,
            {"mediaType": OCI_LAYER_NONDIST, "digest": unknown_digest(), "size": 12345,
             "urls": ["https://example.com/layer.tar.gz"]},
            {"mediaType": OCI_LAYER_NONDIST, "digest": unknown_digest(), "size": 999},
            {"mediaType": OCI_LAYER, "digest": unknown_digest(), "size": 4321,
             "urls": ["https://example.com/other.tar.gz"]},
        ],
    }));
    api.push_manifest("team/app", "nondist", OCI_MANIFEST, &m)
        .await;
    assert_manifest(&api, "team/app", "nondist", OCI_MANIFEST, &m).await;

    let (dc, dl) = blobs(&api, "team/app", DOCKER_CONFIG, DOCKER_LAYER).await;
    let dm = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": dc,
        "layers": [
            {"mediaType": DOCKER_LAYER_FOREIGN, "digest": unknown_digest(), "size": 55555,
             "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"]},
            dl,
        ],
    }));
    api.push_manifest("team/app", "foreign", DOCKER_MANIFEST, &dm)
        .await;
    assert_manifest(&api, "team/app", "foreign", DOCKER_MANIFEST, &dm).await;
}

/// Pads an OCI manifest with an annotation to exactly `size` bytes.
fn manifest_of_size(config: &Value, size: usize) -> Vec<u8> {
    let build = |pad: usize| {
        to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [],
            "annotations": {"pad": "a".repeat(pad)},
        }))
    };
    let base = build(0).len();
    let m = build(size - base);
    assert_eq!(m.len(), size);
    m
}

/// A 4 MiB manifest is accepted (spec: at least 4 MB); one byte more -> 413 (`SIZE_INVALID`/`MANIFEST_INVALID`).
#[tokio::test]
async fn manifest_size_limit() {
    let (_s, api) = setup();
    api.push_empty_config("team/app").await;
    let cfg = desc_of(OCI_EMPTY, EMPTY_JSON_DIGEST, 2);
    let big = manifest_of_size(&cfg, MANIFEST_LIMIT);
    api.push_manifest("team/app", "big", OCI_MANIFEST, &big)
        .await;
    assert_manifest(&api, "team/app", "big", OCI_MANIFEST, &big).await;

    let too_big = manifest_of_size(&cfg, MANIFEST_LIMIT + 1);
    let resp = api
        .put_manifest("team/app", "too-big", OCI_MANIFEST, &too_big)
        .await;
    expect_error(resp, 413, &["SIZE_INVALID", "MANIFEST_INVALID"]).await;
    // A fresh client: the 413 may have ended the pooled connection (see api_errors'
    // early_rejection_closes_or_drains_connection for that behaviour on its own).
    let api = Api::new(&api.base);
    assert_eq!(
        api.head_manifest("team/app", "too-big")
            .await
            .status()
            .as_u16(),
        404
    );
}

/// Digest in the URL not matching the body -> 400 `DIGEST_INVALID`, nothing stored under either digest.
#[tokio::test]
async fn digest_in_url_must_match_body() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m =
        to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]}));
    let wrong = unknown_digest();
    let resp = api.put_manifest("team/app", &wrong, OCI_MANIFEST, &m).await;
    expect_error(resp, 400, &["DIGEST_INVALID"]).await;
    assert_eq!(
        api.head_manifest("team/app", &wrong)
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        api.head_manifest("team/app", &sha256_digest(&m))
            .await
            .status()
            .as_u16(),
        404
    );
}

/// Pushing by a sha512 digest: `Docker-Content-Digest` equals the client's digest; pullable by it.
#[tokio::test]
async fn manifest_by_sha512_digest() {
    let (_s, api) = setup();
    let (c, l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    let m =
        to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": [l]}));
    let d = sha512_digest(&m);
    api.push_manifest("team/app", &d, OCI_MANIFEST, &m).await;
    assert_manifest(&api, "team/app", &d, OCI_MANIFEST, &m).await;
}

/// Invalid JSON or JSON that is not a manifest -> 400 `MANIFEST_INVALID`.
#[tokio::test]
async fn invalid_manifests_are_manifest_invalid() {
    let (_s, api) = setup();
    let (c, _l) = blobs(&api, "team/app", OCI_CONFIG, OCI_LAYER).await;
    const MI: &[&str] = &["MANIFEST_INVALID"];
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("not json", b"this is not json".to_vec(), MI),
        (
            "truncated",
            b"{\"schemaVersion\": 2, \"config\": {".to_vec(),
            MI,
        ),
        ("empty body", vec![], MI),
        ("array", b"[]".to_vec(), MI),
        (
            "layers not an array",
            to_vec(
                &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": c, "layers": "x"}),
            ),
            MI,
        ),
        (
            "schemaVersion 1",
            to_vec(
                &json!({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": c, "layers": []}),
            ),
            MI,
        ),
        (
            "bad descriptor digest",
            to_vec(
                &json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config":
            {"mediaType": OCI_CONFIG, "digest": "sha256:nothex", "size": 3}, "layers": []}),
            ),
            &["MANIFEST_INVALID", "DIGEST_INVALID"],
        ),
        (
            "missing config",
            to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})),
            MI,
        ),
    ];
    for (what, body, codes) in cases {
        let resp = api
            .put_manifest("team/app", "bad", OCI_MANIFEST, &body)
            .await;
        let st = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(st, 400, "{what}: expected 400, got {st}: {text}");
        check_error_body(what, st, &text, codes);
    }
    assert_eq!(
        api.head_manifest("team/app", "bad").await.status().as_u16(),
        404
    );
}

/// The registry stores the exact bytes: odd whitespace, key order, unknown fields and a trailing newline survive,
/// and the digest is over those bytes.
#[tokio::test]
async fn manifest_bytes_are_served_identically() {
    let (_s, api) = setup();
    let config = random_config();
    let layer = random_bytes(900);
    let cd = api.push_blob("team/app", &config).await;
    let ld = api.push_blob("team/app", &layer).await;
    let body = format!(
        "{{\n\t\"layers\" :[ {{\"size\":{},   \"digest\":\"{ld}\",\"mediaType\":\"{OCI_LAYER}\"}} ],\r\n  \"schemaVersion\":2,\
         \"x-custom\": {{\"nested\": [1, 2.50, \"\\u00e9\"]}},\n\"config\":{{\"mediaType\":\"{OCI_CONFIG}\",\"size\":{},\"digest\":\"{cd}\"}},\
         \"mediaType\": \"{OCI_MANIFEST}\"   }}\n\n",
        layer.len(),
        config.len()
    )
    .into_bytes();
    serde_json::from_slice::<Value>(&body).expect("test manifest is valid JSON");
    let d = api
        .push_manifest("team/app", "pretty", OCI_MANIFEST, &body)
        .await;
    assert_eq!(d, sha256_digest(&body));
    assert_manifest(&api, "team/app", "pretty", OCI_MANIFEST, &body).await;
    assert_manifest(&api, "team/app", &d, OCI_MANIFEST, &body).await;
}

/// PUT by digest (untagged), then tag the same bytes later; then move the tag to another manifest.
#[tokio::test]
async fn push_by_digest_then_tag_then_move_tag() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "").await;
    assert_manifest(&api, "team/app", &img.digest, OCI_MANIFEST, &img.manifest).await;
    assert!(
        api.tags("team/app").await.is_empty(),
        "no tags after a push by digest"
    );
    api.push_manifest("team/app", "later", OCI_MANIFEST, &img.manifest)
        .await;
    assert_manifest(&api, "team/app", "later", OCI_MANIFEST, &img.manifest).await;
    assert_eq!(api.tags("team/app").await, vec!["later".to_string()]);

    let img2 = api.push_image("team/app", "later").await;
    assert_manifest(&api, "team/app", "later", OCI_MANIFEST, &img2.manifest).await;
    assert_manifest(&api, "team/app", &img.digest, OCI_MANIFEST, &img.manifest).await;
}

/// Tags must match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`; invalid -> 400 (`TAG_INVALID` or `MANIFEST_INVALID`),
/// never 5xx. Edge-valid tags are accepted.
#[tokio::test]
async fn tag_validation() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "").await;
    let long_ok = format!("a{}", "b".repeat(127));
    let long_bad = format!("a{}", "b".repeat(128));
    for tag in ["_under", "A.b-c_D", "0", long_ok.as_str()] {
        api.push_manifest("team/app", tag, OCI_MANIFEST, &img.manifest)
            .await;
        assert_eq!(
            api.head_manifest("team/app", tag).await.status().as_u16(),
            200,
            "{tag}"
        );
    }
    for tag in [
        "-lead",
        ".lead",
        long_bad.as_str(),
        "a!b",
        "a%2Bb",
        "a~b",
        "a%20b",
    ] {
        let resp = api
            .put_manifest("team/app", tag, OCI_MANIFEST, &img.manifest)
            .await;
        expect_error(resp, 400, &["TAG_INVALID", "MANIFEST_INVALID"]).await;
    }
    let mut tags = api.tags("team/app").await;
    tags.sort();
    let mut want = vec![
        "_under".to_string(),
        "A.b-c_D".into(),
        "0".into(),
        long_ok.clone(),
    ];
    want.sort();
    assert_eq!(tags, want);
}

/// Names must match the spec's regular expression; invalid -> 400 `NAME_INVALID` on push paths; reads of an
/// invalid name are 400 `NAME_INVALID` or 404 `NAME_UNKNOWN`, never 5xx.
#[tokio::test]
async fn name_validation() {
    let (_s, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    for name in [
        "UPPER/case",
        "a//b",
        "-x",
        "a/-b",
        "x-",
        "a..b",
        "a_",
        "a/b/",
        "a___b",
        "a/.b",
    ] {
        let resp = api
            .send(
                api.req(reqwest::Method::POST, &format!("/v2/{name}/blobs/uploads/"))
                    .header("content-length", "0"),
            )
            .await;
        expect_error(resp, 400, &["NAME_INVALID"]).await;
        let resp = api
            .put_manifest(name, "v1", OCI_MANIFEST, &img.manifest)
            .await;
        expect_error(resp, 400, &["NAME_INVALID"]).await;
        let resp = api.get_manifest(name, "v1").await;
        let st = resp.status().as_u16();
        assert!(st == 400 || st == 404, "GET manifest of {name:?}: {st}");
        let text = resp.text().await.unwrap_or_default();
        check_error_body(name, st, &text, &["NAME_INVALID", "NAME_UNKNOWN"]);
    }
}

/// Integrity: acknowledged manifests, tags and blobs survive a SIGKILL and restart.
#[tokio::test]
async fn acknowledged_manifests_survive_crash() {
    let (mut server, api) = setup();
    let img = api.push_image("team/app", "v1").await;
    let (c, l) = blobs(&api, "team/app", DOCKER_CONFIG, DOCKER_LAYER).await;
    let dm = to_vec(
        &json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": c, "layers": [l]}),
    );
    let dd = api
        .push_manifest("team/app", "docker", DOCKER_MANIFEST, &dm)
        .await;
    server.restart(); // restart() kills with SIGKILL first
    let api = Api::new(&server.base);
    assert_manifest(&api, "team/app", "v1", OCI_MANIFEST, &img.manifest).await;
    assert_manifest(&api, "team/app", &img.digest, OCI_MANIFEST, &img.manifest).await;
    assert_manifest(&api, "team/app", "docker", DOCKER_MANIFEST, &dm).await;
    assert_manifest(&api, "team/app", &dd, DOCKER_MANIFEST, &dm).await;
    for d in img.layer_digests.iter().chain([&img.config_digest]) {
        assert_eq!(
            api.head_blob("team/app", d).await.status().as_u16(),
            200,
            "blob {d}"
        );
    }
    let mut tags = api.tags("team/app").await;
    tags.sort();
    assert_eq!(tags, vec!["docker".to_string(), "v1".to_string()]);
}
