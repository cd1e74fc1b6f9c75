//! Pull-through caching against real upstream registries on loopback: another Berth with token
//! auth, and Debian's `docker-registry` (CNCF Distribution). Rules are managed with boto3 and the
//! REST API; images are pulled through Berth with skopeo, containerd (mirror mode) and plain
//! HTTP. Cases: the upstream stops after the first pull (cached content still served, a stale
//! tag with a `Warning`), a tag moves upstream (the new digest after the interval), a corrupt
//! upstream blob (nothing cached), and 20 concurrent pulls of an uncached image (one upstream
//! fetch per blob, counted in the upstream's access log).

use crate::support::{api, common, e2e};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use api::{rand_suffix, random_bytes, sha256_digest, Api};
use common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};

const ADMIN_KEY: &str = "AKIAPULLTHROUGHTEST1";
const ADMIN_SECRET: &str = "pull/through+test+secret+0123456789abcdef";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CREDENTIALS: &str =
    "arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/upstream";

/// Berth with credentials for its upstream: `upstream` (the upstream Berth's admin) and `wrong`.
fn downstream(extra: &[(&str, &str)]) -> TestServer {
    let credentials = json!({
        "upstream": {"username": ADMIN_USER, "password": ADMIN_PASSWORD},
        "wrong": {"username": ADMIN_USER, "password": "not-the-password"},
    })
    .to_string();
    let mut env = vec![
        ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
        ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ("BERTH_PULL_THROUGH_CREDENTIALS", credentials.as_str()),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&[], &env)
}

fn reference_bin() -> String {
    std::env::var("BERTH_E2E_REFERENCE_BIN").unwrap_or_else(|_| "docker-registry".into())
}

fn boto3(server: &TestServer, scenario: &str, args: Value) {
    common::boto3_scenario(server, scenario, &args, ADMIN_KEY, ADMIN_SECRET);
}

async fn create_rule(api: &Api, body: Value) -> Value {
    let resp = api
        .send(
            api.req(reqwest::Method::POST, "/api/v1/pull-through-rules")
                .json(&body),
        )
        .await;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "create rule: {v}");
    v
}

async fn set_revalidate(api: &Api, prefix: &str, secs: i64) {
    let resp = api
        .send(
            api.req(
                reqwest::Method::PUT,
                &format!("/api/v1/pull-through-rules/{prefix}"),
            )
            .json(&json!({"credentialArn": CREDENTIALS, "revalidateSecs": secs})),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

/// Pushes an image with layers of the given sizes; returns (manifest digest, layer digests).
async fn push_image(api: &Api, repo: &str, tag: &str, sizes: &[usize]) -> (String, Vec<String>) {
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
        "created": "2026-11-27T00:00:00Z", "author": rand_suffix()})
    .to_string();
    let config_digest = api.push_blob(repo, config.as_bytes()).await;
    let mut layers = Vec::new();
    let mut descs = Vec::new();
    for size in sizes {
        let data = random_bytes(*size);
        let d = api.push_blob(repo, &data).await;
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": data.len()}));
        layers.push(d);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descs,
    })
    .to_string();
    let digest = api
        .push_manifest(repo, tag, OCI_MANIFEST, manifest.as_bytes())
        .await;
    (digest, layers)
}

/// GET of a manifest through `api`: (status, Docker-Content-Digest, Warning, body).
async fn get_manifest(
    api: &Api,
    repo: &str,
    reference: &str,
) -> (u16, String, Option<String>, String) {
    let resp = api
        .send(
            api.req(
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
            )
            .header("accept", api::all_manifest_types()),
        )
        .await;
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let digest = header("docker-content-digest").unwrap_or_default();
    let warning = header("warning");
    (
        status,
        digest,
        warning,
        resp.text().await.unwrap_or_default(),
    )
}

fn skopeo() -> Command {
    let mut c = Command::new("/usr/bin/skopeo");
    c.arg("--insecure-policy")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null());
    c
}

/// `skopeo copy` from Berth into an OCI layout; returns the manifest digest it wrote.
fn skopeo_pull(server: &TestServer, image: &str, into: &Path) -> Result<String, String> {
    let out = skopeo()
        .args([
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--src-creds",
        ])
        .arg(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))
        .arg(format!("docker://{}/{image}", server.addr))
        .arg(format!("oci:{}:x", into.display()))
        .output()
        .expect("run skopeo (tests/install-clients.sh installs it)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(into.join("index.json")).unwrap()).unwrap();
    Ok(index["manifests"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_managed_with_boto3_and_validated_against_the_upstream() {
    let upstream = TestServer::start();
    let server = downstream(&[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    boto3(
        &server,
        "pull_through_rules",
        json!({
            "prefix": format!("up-{}", rand_suffix()),
            "upstream": format!("http://{}", upstream.addr),
            "down": down,
            "credential_arn": CREDENTIALS,
            "wrong_credential_arn": CREDENTIALS.replace("/upstream", "/wrong"),
            "unknown_credential_arn": CREDENTIALS.replace("/upstream", "/nobody"),
        }),
    );
    // The native API lists the same rule, and validates it.
    let api = Api::new(&server.base);
    let list: Value = api
        .get("/api/v1/pull-through-rules")
        .await
        .json()
        .await
        .unwrap();
    let rules = list["pullThroughCacheRules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{list}");
    let prefix = rules[0]["ecrRepositoryPrefix"].as_str().unwrap();
    let checked: Value = api
        .get(&format!(
            "/api/v1/pull-through-rules/{prefix}?validate=true"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(checked["isValid"], false, "{checked}");
    assert!(
        checked["failure"].as_str().unwrap().contains("401"),
        "the wrong credential is set: {checked}"
    );
    assert!(
        !server.log().contains("not-the-password") && !server.log().contains(ADMIN_PASSWORD),
        "credentials must not reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_auth_upstream_is_cached_and_served_when_it_stops() {
    let upstream = TestServer::start();
    let up = Api::new(&upstream.base);
    let (digest, layers) = push_image(&up, "team/app", "v1", &[300_000, 5_000]).await;
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "up", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS}),
    )
    .await;
    // Cached repositories get the settings of the creation template for their prefix.
    let resp = api
        .send(
            api.req(
                reqwest::Method::POST,
                "/api/v1/repository-creation-templates",
            )
            .json(
                &json!({"prefix": "up", "appliedFor": ["PULL_THROUGH_CACHE"],
                              "imageTagMutability": "IMMUTABLE",
                              "resourceTags": [{"Key": "source", "Value": "upstream"}]}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    // A real client pulls through the cache.
    let out = tempfile::tempdir().unwrap();
    let pulled = skopeo_pull(&server, "up/team/app:v1", &out.path().join("a")).expect("pull");
    assert_eq!(pulled, digest);
    for l in &layers {
        let blob = std::fs::read(
            out.path()
                .join("a/blobs/sha256")
                .join(l.trim_start_matches("sha256:")),
        )
        .unwrap();
        assert_eq!(&sha256_digest(&blob), l);
    }
    let repo: Value = api
        .get("/api/v1/repositories/up/team/app")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE", "{repo}");
    // Pushing into the cache is refused with a clear error, by the same use case whichever
    // door the push comes through: a `/v2` upload, a `/v2` manifest PUT (of the very manifest
    // the cache holds, under a new tag) and ECR's PutImage (boto3) get the same refusal.
    let (status, _, _, manifest) = get_manifest(&api, "up/team/app", "v1").await;
    assert_eq!(status, 200, "{manifest}");
    let resp = api
        .send(api.req(reqwest::Method::POST, "/v2/up/team/app/blobs/uploads/"))
        .await;
    assert_eq!(resp.status(), 400);
    let upload_refusal: Value = resp.json().await.unwrap();
    let resp = api
        .send(
            api.req(reqwest::Method::PUT, "/v2/up/team/app/manifests/pushed")
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone()),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let refusal: Value = resp.json().await.unwrap();
    assert_eq!(refusal["errors"][0]["code"], "UNSUPPORTED", "{refusal}");
    let message = refusal["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("pull-through cache") && message.contains("cannot be pushed"),
        "{message}"
    );
    assert_eq!(upload_refusal, refusal, "uploads are refused alike");
    boto3(
        &server,
        "put_image_refused",
        json!({"repository": "up/team/app", "manifest": manifest, "tag": "pushed",
               "code": "InvalidParameterException", "message": message}),
    );

    // The upstream goes away: the cache still serves what it holds (within the interval,
    // without asking the upstream) ...
    drop(upstream);
    let again = skopeo_pull(&server, "up/team/app:v1", &out.path().join("b")).expect("stale pull");
    assert_eq!(again, digest);
    // ... and after it, when the upstream check fails, as a stale copy with a Warning (the
    // first failed check answers with it; the next check comes a minute later).
    set_revalidate(&api, "up", 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, d, warning, _) = get_manifest(&api, "up/team/app", "v1").await;
        assert_eq!((status, d.as_str()), (200, digest.as_str()));
        if let Some(w) = warning {
            assert!(
                w.starts_with("110 ") && w.contains("could not be reached"),
                "{w}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stale warning after the interval"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Nothing cached: the error names the upstream and what happened.
    let (status, _, _, body) = get_manifest(&api, "up/team/other", "v1").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("could not be reached"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_upstream_tag_is_served_after_the_interval() {
    let upstream = TestServer::start();
    let up = Api::new(&upstream.base);
    let (first, _) = push_image(&up, "lib/tool", "stable", &[2_000]).await;
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS, "revalidateSecs": 3600}),
    )
    .await;
    let (status, d, _, _) = get_manifest(&api, "mirror/lib/tool", "stable").await;
    assert_eq!((status, d.as_str()), (200, first.as_str()));
    let (second, _) = push_image(&up, "lib/tool", "stable", &[3_000]).await;
    assert_ne!(first, second);
    let (_, d, _, _) = get_manifest(&api, "mirror/lib/tool", "stable").await;
    assert_eq!(d, first, "within the interval the cached digest is served");
    set_revalidate(&api, "mirror", 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, d, warning, _) = get_manifest(&api, "mirror/lib/tool", "stable").await;
        assert_eq!(status, 200);
        assert_eq!(warning, None);
        if d == second {
            break;
        }
        assert_eq!(d, first);
        assert!(Instant::now() < deadline, "the moved tag never arrived");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Both digests stay pullable by digest.
    for d in [&first, &second] {
        let (status, got, _, _) = get_manifest(&api, "mirror/lib/tool", d).await;
        assert_eq!((status, got.as_str()), (200, d.as_str()));
    }
}

/// The path of a blob in Distribution's filesystem storage.
fn reference_blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_upstream_blob_caches_nothing() {
    let (_upstream, addr, root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let (_, layers) = push_image(&up, "library/corrupt", "v1", &[1 << 20]).await;
    let layer = &layers[0];
    let path = reference_blob_path(root.path(), layer);
    let original = std::fs::read(&path).unwrap();
    let mut corrupt = original.clone();
    corrupt[1000] ^= 0xff;
    std::fs::write(&path, &corrupt).unwrap();

    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "ref", "upstreamRegistryUrl": format!("http://{addr}")}),
    )
    .await;
    let (status, _, _, body) = get_manifest(&api, "ref/library/corrupt", "v1").await;
    assert_eq!(status, 200, "{body}");
    let resp = api
        .get(&format!("/v2/ref/library/corrupt/blobs/{layer}"))
        .await;
    let body = resp.bytes().await;
    if let Ok(bytes) = body {
        assert_ne!(
            &sha256_digest(&bytes),
            layer,
            "a corrupt body must not pass as the blob"
        );
        assert!(
            bytes.len() < original.len(),
            "the transfer must end short of the full body"
        );
    }
    // The failed fetch ends (its verification failed, nothing was committed) ...
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.log().contains("nothing was cached") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and once the upstream is repaired the blob comes from it, so nothing corrupt was
    // cached.
    std::fs::write(&path, &original).unwrap();
    let resp = api
        .get(&format!("/v2/ref/library/corrupt/blobs/{layer}"))
        .await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&sha256_digest(&bytes), layer);
    // And now it is cached.
    let resp = api
        .get(&format!("/v2/ref/library/corrupt/blobs/{layer}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        original.len().to_string()
    );
}

/// Successful GETs of `uri` in Distribution's access log.
fn upstream_gets(log: &str, uri: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("response completed")
                && l.contains("http.request.method=GET")
                && l.contains(&format!("http.request.uri=\"{uri}\""))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_pulls_fetch_each_blob_from_upstream_once() {
    let (upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let (digest, layers) = push_image(&up, "library/big", "v1", &[24 << 20, 24 << 20]).await;
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": format!("http://{addr}")}),
    )
    .await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (api, layers, digest) = (Api::new(&server.base), layers.clone(), digest.clone());
            tokio::spawn(async move {
                let (status, d, _, _) = get_manifest(&api, "hub/library/big", "v1").await;
                assert_eq!((status, d.as_str()), (200, digest.as_str()));
                for l in &layers {
                    let resp = api.get(&format!("/v2/hub/library/big/blobs/{l}")).await;
                    assert_eq!(resp.status(), 200);
                    let bytes = resp.bytes().await.expect("blob body");
                    assert_eq!(&sha256_digest(&bytes), l);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let log = upstream.log();
    for l in &layers {
        let n = upstream_gets(&log, &format!("/v2/library/big/blobs/{l}"));
        eprintln!("upstream GETs of {l}: {n}");
        assert_eq!(n, 1, "each blob is fetched from upstream exactly once");
    }
}

#[test]
fn containerd_pulls_through_berth_as_a_mirror() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let (digest, _) = rt.block_on(push_image(&up, "library/app", "v1", &[50_000]));
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    rt.block_on(create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": format!("http://{addr}")}),
    ));
    // containerd's hosts.toml: pulls of <upstream> go to Berth first (with ?ns=<upstream>).
    let hosts = tempfile::tempdir().unwrap();
    let dir = hosts.path().join(&addr);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"http://{addr}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            server.addr
        ),
    )
    .unwrap();
    let ctrd = e2e::daemons::Containerd::start(&[]);
    let mut pull = ctrd.ctr("berth-mirror");
    // `content fetch` resolves and fetches like `images pull` without unpacking the test's
    // random layers.
    pull.args(["content", "fetch", "--hosts-dir"])
        .arg(hosts.path())
        .args(["--user", &format!("{ADMIN_USER}:{ADMIN_PASSWORD}")])
        .arg(format!("{addr}/library/app:v1"));
    let out = e2e::run(pull);
    assert!(out.success(), "ctr pull: {}", out.combined());
    // And by prefix, naming Berth and the cached repository.
    let mut by_prefix = ctrd.ctr("berth-prefix");
    by_prefix
        .args(["content", "fetch", "--plain-http"])
        .args(["--user", &format!("{ADMIN_USER}:{ADMIN_PASSWORD}")])
        .arg(format!("{}/mirror/library/app:v1", server.addr));
    let out = e2e::run(by_prefix);
    assert!(out.success(), "ctr fetch by prefix: {}", out.combined());
    // The image came through Berth: the mirror's cached repository holds it.
    let (status, d, _, _) = rt.block_on(get_manifest(&api, "mirror/library/app", "v1"));
    assert_eq!((status, d.as_str()), (200, digest.as_str()));
    let log = server.log();
    assert!(
        log.contains("cached a blob from upstream"),
        "containerd fetched the blobs through Berth:\n{log}"
    );
}

/// dockerd's `registry-mirrors`: `docker pull app` (Docker Hub's `library/app`) goes to Berth
/// without any `ns`, and `[pull_through] mirror_default_ns` sends it through the rule for that
/// upstream. The daemon pulls anonymously; a registry policy lets anyone pull and fill the
/// cached prefix (the only write anonymous callers can be granted).
#[test]
fn dockerd_pulls_through_berth_as_its_registry_mirror() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let img = e2e::image::test_image();
    let mut push = skopeo();
    push.args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{}", img.layout.display(), e2e::image::TAG))
        .arg(format!("docker://{addr}/library/berth-mirror-test:v1"));
    let out = push.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = downstream(&[("BERTH_PULL_THROUGH_MIRROR_DEFAULT_NS", addr.as_str())]);
    let api = Api::new(&server.base);
    rt.block_on(create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": format!("http://{addr}")}),
    ));
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "AnyoneFillsAndPullsTheMirror", "Effect": "Allow", "Principal": "*",
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:BatchCheckLayerAvailability", "ecr:BatchImportUpstreamImage"],
        "Resource": "arn:aws:ecr:us-east-1:000000000000:repository/hub/*"}]});
    let resp = rt.block_on(
        api.send(
            api.req(reqwest::Method::PUT, "/api/v1/registry-policy")
                .body(policy.to_string()),
        ),
    );
    assert_eq!(resp.status(), 204);

    let mirror = format!("http://{}", server.addr);
    let dockerd =
        e2e::daemons::Dockerd::start_with_mirrors(&[server.addr.as_str()], &[mirror.as_str()]);
    let mut pull = dockerd.docker();
    pull.args(["pull", "berth-mirror-test:v1"]);
    let out = e2e::run(pull);
    assert!(
        out.success(),
        "docker pull through the mirror: {}\n--- berth log ---\n{}",
        out.combined(),
        server.log()
    );
    // By prefix too: Berth's own name for the cached repository.
    let by_prefix = format!("{}/hub/library/berth-mirror-test:v1", server.addr);
    let mut pull = dockerd.docker();
    pull.args(["pull", &by_prefix]);
    let out = e2e::run(pull);
    assert!(out.success(), "docker pull by prefix: {}", out.combined());
    let mut run = dockerd.docker();
    run.args([
        "run",
        "--rm",
        "--network",
        "none",
        "berth-mirror-test:v1",
        "echo",
        "mirrored",
    ]);
    let out = e2e::run(run);
    assert!(out.combined().contains("mirrored"), "{}", out.combined());
    // It came through Berth's cache, under the rule's prefix.
    let (status, digest, _, _) =
        rt.block_on(get_manifest(&api, "hub/library/berth-mirror-test", "v1"));
    assert_eq!(
        (status, digest.as_str()),
        (200, img.manifest_digest.as_str())
    );
    assert!(server.log().contains("cached a blob from upstream"));
}

/// Pulls a whole image through `api` (manifest, then every blob) and checks the bytes.
async fn pull_all(api: &Api, repo: &str, reference: &str, layers: &[String]) {
    let (status, _, _, body) = get_manifest(api, repo, reference).await;
    assert_eq!(status, 200, "{body}");
    for l in layers {
        let resp = api.get(&format!("/v2/{repo}/blobs/{l}")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(&sha256_digest(&resp.bytes().await.unwrap()), l);
    }
}

/// A rule's quota evicts the least recently pulled image; the eviction is in the lifecycle
/// audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_evicts_the_least_recently_pulled_image() {
    let (_upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let mut images = Vec::new();
    for name in ["a", "b", "c"] {
        let (digest, layers) = push_image(&up, &format!("library/{name}"), "v1", &[1 << 20]).await;
        images.push((format!("qt/library/{name}"), digest, layers));
    }
    let server = downstream(&[
        ("BERTH_LIFECYCLE_PULL_FLUSH_SECS", "1"),
        ("BERTH_PULL_THROUGH_QUOTA_INTERVAL_SECS", "1"),
    ]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "qt", "upstreamRegistryUrl": format!("http://{addr}")}),
    )
    .await;
    // Pulled in the order a, b, c, then a again; each pull recorded before the next.
    let order = [0usize, 1, 2, 0];
    for (i, &n) in order.iter().enumerate() {
        let (repo, digest, layers) = &images[n];
        pull_all(&api, repo, "v1", layers).await;
        if i == 0 {
            boto3(
                &server,
                "pull_times",
                json!({"pulled": [repo, digest], "not_pulled": []}),
            );
        } else {
            let (prev_repo, prev_digest, _) = &images[order[i - 1]];
            boto3(
                &server,
                "pulled_after",
                json!({"later": [repo, digest], "earlier": [prev_repo, prev_digest]}),
            );
        }
    }
    // Room for two of the three images: b, pulled least recently, goes.
    let resp = api
        .send(
            api.req(reqwest::Method::PUT, "/api/v1/pull-through-rules/qt")
                .json(&json!({"quotaBytes": (2 << 20) + 100_000})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let audit = loop {
        let audit: Value = api
            .get("/api/v1/lifecycle/audit")
            .await
            .json()
            .await
            .unwrap();
        if !audit["entries"].as_array().unwrap().is_empty() {
            break audit;
        }
        assert!(Instant::now() < deadline, "nothing was evicted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        entries[0]["repositoryName"],
        images[1].0.as_str(),
        "{audit}"
    );
    assert_eq!(entries[0]["imageDigest"], images[1].1.as_str(), "{audit}");
}

/// An index is cached with every child: after the upstream stops, each platform's manifest
/// still comes from the cache by digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_cached_with_every_child() {
    let upstream = TestServer::start();
    let up = Api::new(&upstream.base);
    let (amd, _) = push_image(&up, "multi/app", "amd64", &[1_000]).await;
    let (arm, _) = push_image(&up, "multi/app", "arm64", &[1_200]).await;
    // Descriptor sizes must be right: a registry refuses an index that no client could pull.
    let mut sizes = Vec::new();
    for child in [&amd, &arm] {
        let resp = up.get_manifest("multi/app", child).await;
        sizes.push(resp.bytes().await.unwrap().len());
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": sizes[0], "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": sizes[1], "platform": {"architecture": "arm64", "os": "linux"}},
        ]
    })
    .to_string();
    let index_digest = up
        .push_manifest(
            "multi/app",
            "v1",
            "application/vnd.oci.image.index.v1+json",
            index.as_bytes(),
        )
        .await;
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "up", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS}),
    )
    .await;
    let (status, d, _, _) = get_manifest(&api, "up/multi/app", "v1").await;
    assert_eq!((status, d.as_str()), (200, index_digest.as_str()));
    drop(upstream);
    for child in [&amd, &arm] {
        let (status, d, warning, body) = get_manifest(&api, "up/multi/app", child).await;
        assert_eq!((status, d.as_str()), (200, child.as_str()), "{body}");
        assert_eq!(warning, None, "by digest, served from the cache");
    }
}

/// A client that goes away after the first bytes does not abort the fetch: the blob is cached,
/// and the next pull is served without asking the upstream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_does_not_abort_the_fill() {
    let (upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let (_, layers) = push_image(&up, "library/left", "v1", &[32 << 20]).await;
    let layer = &layers[0];
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": format!("http://{addr}")}),
    )
    .await;
    let (status, _, _, _) = get_manifest(&api, "hub/library/left", "v1").await;
    assert_eq!(status, 200);
    let mut resp = api
        .get(&format!("/v2/hub/library/left/blobs/{layer}"))
        .await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.log().contains("cached a blob from upstream") {
        assert!(
            Instant::now() < deadline,
            "the fill did not finish:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = api
        .get(&format!("/v2/hub/library/left/blobs/{layer}"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&sha256_digest(&resp.bytes().await.unwrap()), layer);
    assert_eq!(
        upstream_gets(&upstream.log(), &format!("/v2/library/left/blobs/{layer}")),
        1,
        "fetched once, by the fill the first client started"
    );
}

/// An upstream answering 429 with Retry-After is left alone until then: the client gets 429
/// with Retry-After, and Berth does not call the upstream again meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_is_honoured_until_retry_after() {
    // The upstream Berth answers 429 (with Retry-After) after one failed login.
    let upstream = TestServer::start_with(
        &[],
        &[
            ("BERTH_AUTH_MAX_FAILED_LOGINS", "1"),
            ("BERTH_AUTH_FAILED_LOGIN_WINDOW_SECS", "300"),
        ],
    );
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "up", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS.replace("/upstream", "/wrong")}),
    )
    .await;
    let (status, _, _, body) = get_manifest(&api, "up/team/app", "v1").await;
    assert_eq!(status, 503, "the wrong credential is refused: {body}");
    assert!(body.contains("401"), "{body}");
    let resp = api
        .send(
            api.req(reqwest::Method::GET, "/v2/up/team/app/manifests/v1")
                .header("accept", OCI_MANIFEST),
        )
        .await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    // Berth waits it out without calling the upstream: even with the upstream gone, the answer
    // is still 429, not "could not be reached".
    drop(upstream);
    let (status, _, _, body) = get_manifest(&api, "up/team/app", "v1").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("429"), "{body}");
}

/// Two replicas on one database: concurrent pulls through both fetch each blob once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_fetch_each_blob_from_upstream_once() {
    let (upstream, addr, _root) = e2e::daemons::start_reference_registry(&reference_bin(), None);
    let up = Api::anonymous(&format!("http://{addr}"));
    let (digest, layers) = push_image(&up, "library/shared", "v1", &[16 << 20]).await;
    let credentials =
        json!({"upstream": {"username": ADMIN_USER, "password": ADMIN_PASSWORD}}).to_string();
    let a = TestServer::start_on_pg_s3(
        &[],
        &[("BERTH_PULL_THROUGH_CREDENTIALS", credentials.as_str())],
    );
    let b = a.start_replica();
    create_rule(
        &Api::new(&a.base),
        json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": format!("http://{addr}")}),
    )
    .await;
    let tasks: Vec<_> = (0..10)
        .flat_map(|_| [a.base.clone(), b.base.clone()])
        .map(|base| {
            let (layers, digest) = (layers.clone(), digest.clone());
            tokio::spawn(async move {
                let api = Api::new(&base);
                let (status, d, _, body) = get_manifest(&api, "hub/library/shared", "v1").await;
                assert_eq!((status, d.as_str()), (200, digest.as_str()), "{body}");
                for l in &layers {
                    let resp = api.get(&format!("/v2/hub/library/shared/blobs/{l}")).await;
                    assert_eq!(resp.status(), 200);
                    assert_eq!(&sha256_digest(&resp.bytes().await.unwrap()), l);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let log = upstream.log();
    for l in &layers {
        let n = upstream_gets(&log, &format!("/v2/library/shared/blobs/{l}"));
        eprintln!("upstream GETs of {l} through two replicas: {n}");
        assert_eq!(n, 1);
    }
    drop(b);
}

/// An upstream behind HTTP Basic (Distribution with htpasswd): the rule's credential is sent as
/// Basic; a wrong one is reported with the upstream's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_auth_upstream_is_pulled_with_the_rule_credential() {
    let tmp = e2e::short_tempdir("berth-basic");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            ADMIN_PASSWORD,
        ])
        .output()
        .expect("python3 for a bcrypt hash");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    std::fs::write(
        tmp.path().join("htpasswd"),
        format!("{ADMIN_USER}:{}\n", hash.trim()),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let cfg = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\nhttp:\n  addr: {addr}\n",
        tmp.path().join("data").display(),
        tmp.path().join("htpasswd").display()
    );
    std::fs::write(tmp.path().join("config.yml"), cfg).unwrap();
    let mut c = e2e::cmd(&reference_bin());
    c.arg("serve").arg(tmp.path().join("config.yml"));
    let mut upstream = e2e::daemons::Daemon::spawn("docker-registry", c, &tmp.path().join("log"));
    let a = addr.clone();
    upstream.wait_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect(&a).is_ok()
    });
    let up = Api::with_basic(&format!("http://{addr}"), ADMIN_USER, ADMIN_PASSWORD);
    let (digest, layers) = push_image(&up, "private/app", "v1", &[10_000]).await;

    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "priv", "upstreamRegistryUrl": format!("http://{addr}"),
               "credentialArn": CREDENTIALS}),
    )
    .await;
    pull_all(&api, "priv/private/app", "v1", &layers).await;
    let (_, d, _, _) = get_manifest(&api, "priv/private/app", "v1").await;
    assert_eq!(d, digest);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "priv-wrong", "upstreamRegistryUrl": format!("http://{addr}"),
               "credentialArn": CREDENTIALS.replace("/upstream", "/wrong")}),
    )
    .await;
    let (status, _, _, body) = get_manifest(&api, "priv-wrong/private/app", "v1").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("401"), "{body}");
    drop(upstream);
}

/// An upstream that redirects blob downloads to its object storage (Berth on S3 with presigned
/// URLs): Berth follows the redirect without forwarding its upstream token, which the storage
/// would refuse next to the URL's own signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_blob_storage_are_followed_without_credentials() {
    let upstream = TestServer::start_on_pg_s3(&[], &[("BERTH_STORAGE_REDIRECT", "true")]);
    let up = Api::new(&upstream.base);
    let (digest, layers) = push_image(&up, "team/redirected", "v1", &[200_000]).await;
    let check = up
        .send(up.req(
            reqwest::Method::GET,
            &format!("/v2/team/redirected/blobs/{}", layers[0]),
        ))
        .await;
    assert!(
        check.status().is_success(),
        "the upstream serves through a redirect"
    );
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "up", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS}),
    )
    .await;
    pull_all(&api, "up/team/redirected", "v1", &layers).await;
    let (_, d, _, _) = get_manifest(&api, "up/team/redirected", "v1").await;
    assert_eq!(d, digest);
}

/// A cached repository whose creation template makes tags immutable keeps serving the digest it
/// cached when the upstream moves the tag, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_cached_tags_keep_their_digest_when_the_upstream_moves_them() {
    let upstream = TestServer::start();
    let up = Api::new(&upstream.base);
    let (first, _) = push_image(&up, "lib/pinned", "stable", &[2_000]).await;
    let server = downstream(&[]);
    let api = Api::new(&server.base);
    let resp = api
        .send(
            api.req(
                reqwest::Method::POST,
                "/api/v1/repository-creation-templates",
            )
            .json(
                &json!({"prefix": "pin", "appliedFor": ["PULL_THROUGH_CACHE"],
                              "imageTagMutability": "IMMUTABLE"}),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201);
    create_rule(
        &api,
        json!({"ecrRepositoryPrefix": "pin", "upstreamRegistryUrl": format!("http://{}", upstream.addr),
               "credentialArn": CREDENTIALS, "revalidateSecs": 1}),
    )
    .await;
    let (status, d, _, _) = get_manifest(&api, "pin/lib/pinned", "stable").await;
    assert_eq!((status, d.as_str()), (200, first.as_str()));
    let (second, _) = push_image(&up, "lib/pinned", "stable", &[3_000]).await;
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, d, warning, body) = get_manifest(&api, "pin/lib/pinned", "stable").await;
        assert_eq!((status, d.as_str()), (200, first.as_str()), "{body}");
        if let Some(w) = warning {
            assert!(w.starts_with("299 ") && w.contains("immutable"), "{w}");
            break;
        }
        assert!(Instant::now() < deadline, "the moved tag was never noticed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
