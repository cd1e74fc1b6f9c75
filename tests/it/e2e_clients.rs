//! End-to-end tests: real clients (skopeo, docker, containerd/ctr + CRI, podman, oras) against a
//! listening registry. See tests/it/support/e2e/mod.rs for how the registry under test is chosen
//! (`BERTH_E2E_REGISTRY=host:port` for an external one) and tests/install-clients.sh for the
//! clients. A missing client fails the test.

use crate::support::{common, e2e};

use e2e::daemons::{Containerd, Dockerd, HostCfg, Podman};
use e2e::image::{self, test_image};
use e2e::{
    assert_contains, fixture, push_test_image, python_with_grpc, python_with_oras, run, run_ok,
    sha256_digest, skopeo, skopeo_manifest, unique, Registry,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn list_tags(reg: &Registry, repo: &str) -> Vec<String> {
    let mut c = skopeo();
    c.args(["list-tags", "--tls-verify=false"])
        .args(reg.creds_args("--creds"))
        .arg(format!("docker://{}/{}", reg.addr, repo));
    let v = run_ok(c).json();
    v["Tags"]
        .as_array()
        .expect("Tags")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn media_type(raw: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(raw).expect("manifest is JSON");
    v["mediaType"].as_str().unwrap_or("").to_string()
}

/// The layer digests a manifest lists.
fn layer_digests(raw: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(raw).expect("manifest is JSON");
    v["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn image_build_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let x = image::build_image(&a.path().join("layout"));
    let y = image::build_image(&b.path().join("layout"));
    assert_eq!(
        x.manifest_digest, y.manifest_digest,
        "two builds of the test image differ"
    );
    assert_eq!(
        x.manifest_digest,
        test_image().manifest_digest,
        "cached test image differs from a fresh build"
    );
}

/// skopeo: OCI layout -> registry (OCI) -> OCI layout; inspect, list-tags, delete.
#[test]
fn skopeo_oci_push_inspect_pull_list_delete() {
    let img = test_image();
    let reg = Registry::start();
    let repo = unique("skopeo-oci");

    let digest = push_test_image(&reg, &repo, "v1", None);
    assert_eq!(
        digest, img.manifest_digest,
        "registry changed the manifest digest of an OCI push"
    );
    let (_, raw) = skopeo_manifest(&reg, &reg.reference(&repo, "v1"));
    assert_eq!(
        raw, img.manifest,
        "manifest bytes pulled differ from bytes pushed"
    );
    assert_eq!(media_type(&raw), OCI_MANIFEST);

    // A second tag and a second (Docker-format) manifest in the same repository.
    push_test_image(&reg, &repo, "v2", None);
    let docker_digest = push_test_image(&reg, &repo, "docker", Some("v2s2"));
    assert_ne!(docker_digest, digest);
    let tags = list_tags(&reg, &repo);
    for t in ["v1", "v2", "docker"] {
        assert!(
            tags.contains(&t.to_string()),
            "list-tags misses {t}: {tags:?}"
        );
    }

    // Pull by tag and by digest into OCI layouts: same manifest, same blobs.
    let out = tempfile::tempdir().unwrap();
    for (name, src) in [
        ("by-tag", reg.reference(&repo, "v1")),
        ("by-digest", format!("{}/{}@{}", reg.addr, repo, digest)),
    ] {
        let dir = out.path().join(name);
        let mut c = skopeo();
        c.args(["copy", "--src-tls-verify=false"])
            .args(reg.creds_args("--src-creds"))
            .arg(format!("docker://{src}"))
            .arg(format!("oci:{}:pulled", dir.display()));
        run_ok(c);
        assert_eq!(
            image::layout_manifest_digest(&dir),
            img.manifest_digest,
            "{name}: pulled digest != pushed digest"
        );
        for d in [&img.layer_digest, &img.config_digest] {
            assert_eq!(
                std::fs::read(image::layout_blob(&dir, d)).unwrap(),
                std::fs::read(image::layout_blob(&img.layout, d)).unwrap(),
                "{name}: blob {d} differs after the round trip"
            );
        }
    }

    // Delete the OCI manifest: its tags go, the Docker-format one stays pullable.
    let mut c = skopeo();
    c.args(["delete", "--tls-verify=false"])
        .args(reg.creds_args("--creds"))
        .arg(format!("docker://{}", reg.reference(&repo, "v1")));
    run_ok(c);
    let mut c = skopeo();
    c.args(["inspect", "--tls-verify=false", "--raw"])
        .args(reg.creds_args("--creds"))
        .arg(format!("docker://{}/{}@{}", reg.addr, repo, digest));
    run(c).failed();
    let mut c = skopeo();
    c.args(["inspect", "--tls-verify=false", "--raw"])
        .args(reg.creds_args("--creds"))
        .arg(format!("docker://{}", reg.reference(&repo, "v1")));
    run(c).failed();
    let tags = list_tags(&reg, &repo);
    assert!(
        !tags.contains(&"v1".to_string()),
        "deleted tag still listed: {tags:?}"
    );
    assert!(
        tags.contains(&"docker".to_string()),
        "unrelated tag lost by delete: {tags:?}"
    );
    let (d, _) = skopeo_manifest(&reg, &reg.reference(&repo, "docker"));
    assert_eq!(d, docker_digest);
}

/// skopeo with Docker v2 schema 2 manifests: push converted, pull back, and registry-to-registry
/// copies converting both ways.
#[test]
fn skopeo_docker_v2s2_both_ways() {
    let img = test_image();
    let reg = Registry::start();
    let repo = unique("skopeo-v2s2");

    let digest = push_test_image(&reg, &repo, "v1", Some("v2s2"));
    let (_, raw) = skopeo_manifest(&reg, &reg.reference(&repo, "v1"));
    assert_eq!(
        media_type(&raw),
        DOCKER_MANIFEST,
        "pushed v2s2, registry serves another type"
    );
    assert_eq!(
        layer_digests(&raw),
        vec![img.layer_digest.clone()],
        "layer blob changed in conversion"
    );

    // registry -> dir: keeps the manifest as served.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("dir");
    let mut c = skopeo();
    c.args(["copy", "--src-tls-verify=false"])
        .args(reg.creds_args("--src-creds"))
        .arg(format!("docker://{}", reg.reference(&repo, "v1")))
        .arg(format!("dir:{}", dir.display()));
    run_ok(c);
    let m = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(
        sha256_digest(&m),
        digest,
        "dir: copy has another manifest than the registry reported"
    );

    // registry (v2s2) -> registry (OCI) -> registry (v2s2).
    let oci_repo = unique("skopeo-v2s2-to-oci");
    let back_repo = unique("skopeo-oci-to-v2s2");
    for (from, to, fmt) in [(&repo, &oci_repo, "oci"), (&oci_repo, &back_repo, "v2s2")] {
        let mut c = skopeo();
        c.args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            fmt,
        ])
        .args(reg.creds_args("--src-creds"))
        .args(reg.creds_args("--dest-creds"))
        .arg(format!("docker://{}", reg.reference(from, "v1")))
        .arg(format!("docker://{}", reg.reference(to, "v1")));
        run_ok(c);
    }
    let (oci_digest, oci_raw) = skopeo_manifest(&reg, &reg.reference(&oci_repo, "v1"));
    assert_eq!(media_type(&oci_raw), OCI_MANIFEST);
    assert_eq!(sha256_digest(&oci_raw), oci_digest);
    let (_, back_raw) = skopeo_manifest(&reg, &reg.reference(&back_repo, "v1"));
    assert_eq!(media_type(&back_raw), DOCKER_MANIFEST);
    assert_eq!(layer_digests(&back_raw), vec![img.layer_digest.clone()]);

    // registry (OCI) -> local dir, converted to v2s2 on the way down.
    let dir2 = out.path().join("dir-v2s2");
    let mut c = skopeo();
    c.args(["copy", "--src-tls-verify=false", "--format", "v2s2"])
        .args(reg.creds_args("--src-creds"))
        .arg(format!("docker://{}", reg.reference(&oci_repo, "v1")))
        .arg(format!("dir:{}", dir2.display()));
    run_ok(c);
    let m = std::fs::read(dir2.join("manifest.json")).unwrap();
    assert_eq!(media_type(&m), DOCKER_MANIFEST);
    assert_eq!(layer_digests(&m), vec![img.layer_digest.clone()]);

    // registry (v2s2) -> OCI layout: the image content is intact.
    let layout = out.path().join("layout");
    let mut c = skopeo();
    c.args(["copy", "--src-tls-verify=false"])
        .args(reg.creds_args("--src-creds"))
        .arg(format!("docker://{}", reg.reference(&back_repo, "v1")))
        .arg(format!("oci:{}:x", layout.display()));
    run_ok(c);
    assert_eq!(
        std::fs::read(image::layout_blob(&layout, &img.layer_digest)).unwrap(),
        std::fs::read(image::layout_blob(&img.layout, &img.layer_digest)).unwrap()
    );
    assert!(list_tags(&reg, &back_repo).contains(&"v1".to_string()));
}

/// docker: pull what skopeo pushed, run it, tag + push to a new repo, pull that back and run it.
#[test]
fn docker_pull_run_push_pull() {
    let reg = Registry::start();
    let repo = unique("docker-src");
    let digest = push_test_image(&reg, &repo, "v1", None);
    let dockerd = Dockerd::start(&[&reg.addr]);
    dockerd.login(&reg);
    let docker = |args: &[&str]| {
        let mut c = dockerd.docker();
        c.args(args);
        run_ok(c)
    };

    let src = reg.reference(&repo, "v1");
    let pulled = docker(&["pull", &src]);
    assert_contains(
        &pulled.stdout,
        &format!("Digest: {digest}"),
        "docker pull digest",
    );
    let out = docker(&["run", "--rm", "--network", "none", &src, "echo", "hello"]);
    assert_eq!(out.stdout.trim(), "hello");
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &src,
        "cat",
        "/etc/berth-e2e",
    ]);
    assert_eq!(out.stdout.trim(), image::MARKER);

    let new_repo = unique("docker-pushed");
    let dst = reg.reference(&new_repo, "v2");
    docker(&["tag", &src, &dst]);
    let pushed = docker(&["push", &dst]);
    let push_digest = pushed
        .stdout
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{}", pushed.stdout))
        .to_string();
    let (reg_digest, raw) = skopeo_manifest(&reg, &dst);
    assert_eq!(
        reg_digest, push_digest,
        "registry digest != digest docker pushed"
    );
    assert_eq!(media_type(&raw), DOCKER_MANIFEST);

    docker(&["rmi", &src, &dst]);
    let pulled = docker(&["pull", &dst]);
    assert_contains(
        &pulled.stdout,
        &format!("Digest: {push_digest}"),
        "docker pull of pushed image",
    );
    let out = docker(&["run", "--rm", "--network", "none", &dst, "echo", "hello"]);
    assert_eq!(out.stdout.trim(), "hello");
    let repo_digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &dst,
    ]);
    assert_contains(
        &repo_digests.stdout,
        &format!("{}/{}@{}", reg.addr, new_repo, push_digest),
        "RepoDigests",
    );

    // A locally built layer the registry has never seen: docker uploads it (PATCH + PUT ?digest=).
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {dst}\nRUN echo built-by-docker > /etc/built\n"),
    )
    .unwrap();
    let built = reg.reference(&unique("docker-built"), "v1");
    let mut c = dockerd.docker();
    c.env("DOCKER_BUILDKIT", "0")
        .args(["build", "--network", "none", "-t", &built])
        .arg(ctx.path());
    run_ok(c);
    let pushed = docker(&["push", &built]);
    assert_contains(&pushed.stdout, "Pushed", "docker push of a new layer");
    docker(&["rmi", &built]);
    docker(&["pull", &built]);
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &built,
        "cat",
        "/etc/built",
    ]);
    assert_eq!(out.stdout.trim(), "built-by-docker");
    dockerd.logout(&reg);
}

/// containerd: `ctr images pull --plain-http`, `ctr run`, and `ctr images push` to a new repo.
#[test]
fn containerd_ctr_pull_run_push() {
    let reg = Registry::start();
    let repo = unique("ctr");
    let digest = push_test_image(&reg, &repo, "v1", None);
    let ctrd = Containerd::start(&[HostCfg {
        addr: &reg.addr,
        scheme: "http",
        ca: None,
    }]);
    let ctr = |args: &[&str]| {
        let mut c = ctrd.ctr("e2e");
        c.args(args);
        run_ok(c)
    };

    // `ctr --user USER:PASSWORD`, containerd's way of passing registry credentials.
    let user = reg.creds_args("--user");
    let user: Vec<&str> = user.iter().map(String::as_str).collect();
    let src = reg.reference(&repo, "v1");
    ctr(&[&["images", "pull", "--plain-http"], &user[..], &[&src]].concat());
    let ls = ctr(&["images", "ls"]);
    let line = ls
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{src} ")))
        .unwrap_or_else(|| panic!("{src} not listed:\n{}", ls.stdout));
    assert_eq!(
        line.split_whitespace().nth(2),
        Some(digest.as_str()),
        "ctr images ls digest: {line}"
    );

    let id = format!("e2e-{}", std::process::id());
    let out = ctr(&["run", "--rm", "--net-host", &src, &id, "echo", "hello"]);
    assert_eq!(out.stdout.trim(), "hello");

    let dst = reg.reference(&unique("ctr-pushed"), "v2");
    ctr(&["images", "tag", &src, &dst]);
    ctr(&[&["images", "push", "--plain-http"], &user[..], &[&dst]].concat());
    let (d, _) = skopeo_manifest(&reg, &dst);
    assert_eq!(d, digest, "containerd push changed the manifest digest");
}

/// The kubelet's path: CRI ImageService/PullImage on containerd's socket, then `ctr -n k8s.io`.
#[test]
fn containerd_cri_pull_image() {
    let python = python_with_grpc();
    let reg = Registry::start();
    let repo = unique("cri");
    let digest = push_test_image(&reg, &repo, "v1", None);
    let ctrd = Containerd::start(&[HostCfg {
        addr: &reg.addr,
        scheme: "http",
        ca: None,
    }]);

    let src = reg.reference(&repo, "v1");
    let mut c = std::process::Command::new(python);
    c.arg(fixture("cri_pull_image.py"))
        .arg(&ctrd.sock)
        .arg(&src);
    // The kubelet passes pull credentials (from an imagePullSecret) in the request's AuthConfig.
    if let Some((user, password)) = reg.creds() {
        c.env("BERTH_E2E_USERNAME", user)
            .env("BERTH_E2E_PASSWORD", password);
    }
    let out = run_ok(c).json();
    assert_eq!(
        out["image_ref"].as_str().unwrap(),
        test_image().config_digest,
        "CRI image ref is the config digest"
    );
    let repo_digests: Vec<&str> = out["repo_digests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        repo_digests.contains(&format!("{}/{}@{}", reg.addr, repo, digest).as_str()),
        "CRI repo_digests {repo_digests:?} lack the pushed digest {digest}"
    );
    let mut c = ctrd.ctr("k8s.io");
    c.args(["images", "ls", "-q"]);
    let ls = run_ok(c);
    assert!(
        ls.stdout.lines().any(|l| l == src),
        "{src} not in k8s.io namespace:\n{}",
        ls.stdout
    );
}

/// podman with private storage: pull, run, tag + push, pull back, run.
#[test]
fn podman_pull_run_push_pull() {
    let reg = Registry::start();
    let repo = unique("podman-src");
    let digest = push_test_image(&reg, &repo, "v1", None);
    let pm = Podman::new();
    pm.login(&reg);
    let podman = |args: &[&str]| pm.run(args).ok();

    let src = reg.reference(&repo, "v1");
    podman(&["pull", "--tls-verify=false", &src]);
    let d = podman(&["image", "inspect", "--format", "{{.Digest}}", &src]);
    assert_eq!(d.stdout.trim(), digest);
    let out = podman(&["run", "--rm", "--network", "none", &src, "echo", "hello"]);
    assert_eq!(out.stdout.trim(), "hello");

    let dst = reg.reference(&unique("podman-pushed"), "v2");
    let tmp = tempfile::tempdir().unwrap();
    let digestfile = tmp.path().join("digest");
    podman(&["tag", &src, &dst]);
    podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &dst,
    ]);
    let push_digest = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_string();
    let (reg_digest, _) = skopeo_manifest(&reg, &dst);
    assert_eq!(
        reg_digest, push_digest,
        "registry digest != digest podman pushed"
    );

    podman(&["rmi", "-f", &src, &dst]);
    podman(&["pull", "--tls-verify=false", &dst]);
    let d = podman(&["image", "inspect", "--format", "{{.Digest}}", &dst]);
    assert_eq!(d.stdout.trim(), push_digest);
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        &dst,
        "cat",
        "/etc/berth-e2e",
    ]);
    assert_eq!(out.stdout.trim(), image::MARKER);

    // `podman import` of a rootfs tarball, pushed: its manifest carries no `mediaType` field, so
    // the registry must go by the request's Content-Type.
    let layer = image::layout_blob(&test_image().layout, &test_image().layer_digest);
    let imported = reg.reference(&unique("podman-import"), "v1");
    podman(&[
        "import",
        "--change",
        "CMD=/bin/sh",
        layer.to_str().unwrap(),
        &imported,
    ]);
    let digestfile = tmp.path().join("digest-import");
    podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &imported,
    ]);
    let push_digest = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_string();
    let (reg_digest, _) = skopeo_manifest(&reg, &imported);
    assert_eq!(
        reg_digest, push_digest,
        "registry digest != digest podman pushed (import)"
    );
    podman(&["rmi", "-f", &imported]);
    podman(&["pull", "--tls-verify=false", &imported]);
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        &imported,
        "echo",
        "hello",
    ]);
    assert_eq!(out.stdout.trim(), "hello");
    pm.logout(&reg);
}

/// The environment that gives tests/fixtures/oras_roundtrip.py the registry's credentials.
fn oras_creds(reg: &Registry) -> Vec<(&'static str, String)> {
    match reg.creds() {
        Some((user, password)) => vec![
            ("BERTH_E2E_USERNAME", user.to_owned()),
            ("BERTH_E2E_PASSWORD", password.to_owned()),
        ],
        None => vec![],
    }
}

/// oras (PyPI client): push a file artifact (monolithic and chunked uploads), pull it back.
#[test]
fn oras_artifact_push_pull() {
    let python = python_with_oras();
    let reg = Registry::start();
    // Separate repositories: oras skips uploading blobs the target repository already has.
    let repos = [unique("oras"), unique("oras-chunked")];
    let src = tempfile::tempdir().unwrap();
    // Deterministic pseudo-random content, larger than one 64 KiB chunk.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let blob: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(src.path().join("data.bin"), &blob).unwrap();
    std::fs::write(src.path().join("notes.txt"), "hello from berth e2e\n").unwrap();
    let media = "application/vnd.berth.e2e.file";

    for (op, repo, tag) in [
        ("push", &repos[0], "v1"),
        ("push-chunked", &repos[1], "chunked"),
    ] {
        let target = reg.reference(repo, tag);
        let mut c = std::process::Command::new(&python);
        c.current_dir(src.path())
            .arg(fixture("oras_roundtrip.py"))
            .args([op, &target, media, "data.bin", "notes.txt"])
            .envs(oras_creds(&reg));
        let pushed_digest = run_ok(c).stdout.trim().to_string();

        let raw = e2e::skopeo_raw(&reg, &target);
        assert_eq!(
            sha256_digest(&raw),
            pushed_digest,
            "{op}: manifest served differs from the one pushed"
        );
        let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], media);
        assert_eq!(layers[0]["digest"].as_str().unwrap(), sha256_digest(&blob));

        let out = tempfile::tempdir().unwrap();
        let mut c = std::process::Command::new(&python);
        c.arg(fixture("oras_roundtrip.py"))
            .args(["pull", &target])
            .arg(out.path())
            .envs(oras_creds(&reg));
        run_ok(c);
        for f in ["data.bin", "notes.txt"] {
            assert_eq!(
                std::fs::read(out.path().join(f)).unwrap(),
                std::fs::read(src.path().join(f)).unwrap(),
                "{op}: {f} differs after the round trip"
            );
        }
        assert_eq!(list_tags(&reg, repo), vec![tag.to_string()]);
    }
}

/// TLS with skopeo: a client trusting the test CA pushes and pulls; one that doesn't fails.
#[test]
fn tls_skopeo_trusted_ca_and_untrusted_client() {
    let img = test_image();
    let pki = e2e::tls::make_pki();
    let reg = Registry::start_tls(&pki.server_cert, &pki.server_key);
    let repo = unique("tls");
    let target = format!("docker://{}", reg.reference(&repo, "v1"));
    let ca_dir = pki.ca_dir.to_str().unwrap();

    let mut c = skopeo();
    c.args(["copy", "--dest-cert-dir", ca_dir])
        .args(reg.creds_args("--dest-creds"))
        .arg(format!("oci:{}:{}", img.layout.display(), image::TAG))
        .arg(&target);
    run_ok(c);
    let mut c = skopeo();
    c.args(["inspect", "--cert-dir", ca_dir])
        .args(reg.creds_args("--creds"))
        .arg(&target);
    assert_eq!(
        run_ok(c).json()["Digest"].as_str().unwrap(),
        img.manifest_digest
    );
    let out = tempfile::tempdir().unwrap();
    let mut c = skopeo();
    c.args(["copy", "--src-cert-dir", ca_dir])
        .args(reg.creds_args("--src-creds"))
        .arg(&target)
        .arg(format!("oci:{}:x", out.path().display()));
    run_ok(c);
    assert_eq!(
        image::layout_manifest_digest(out.path()),
        img.manifest_digest
    );

    // Without the CA the certificate must be rejected (and not silently downgraded to http).
    let mut c = skopeo();
    c.args(["inspect", "--raw"])
        .args(reg.creds_args("--creds"))
        .arg(&target);
    let failed = run(c).failed();
    let err = failed.stderr.to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("x509"),
        "untrusting client failed for another reason:\n{}",
        failed.stderr
    );
}

/// TLS with containerd: hosts.toml `ca = ...` makes the pull work; without it, it fails.
#[test]
fn tls_containerd_pull_with_ca() {
    let pki = e2e::tls::make_pki();
    let reg = Registry::start_tls(&pki.server_cert, &pki.server_key);
    let repo = unique("tls-ctr");
    let target = reg.reference(&repo, "v1");
    let mut c = skopeo();
    c.args(["copy", "--dest-cert-dir", pki.ca_dir.to_str().unwrap()])
        .args(reg.creds_args("--dest-creds"))
        .arg(format!(
            "oci:{}:{}",
            test_image().layout.display(),
            image::TAG
        ))
        .arg(format!("docker://{target}"));
    run_ok(c);

    let ctrd = Containerd::start(&[HostCfg {
        addr: &reg.addr,
        scheme: "https",
        ca: Some(&pki.ca_cert),
    }]);
    let untrusting = ctrd.dir().join("no-ca.d");
    e2e::daemons::write_hosts_dir(
        &untrusting,
        &[HostCfg {
            addr: &reg.addr,
            scheme: "https",
            ca: None,
        }],
    );

    let mut c = ctrd.ctr("e2e");
    c.args(["images", "pull"])
        .args(reg.creds_args("--user"))
        .arg("--hosts-dir")
        .arg(&untrusting)
        .arg(&target);
    let failed = run(c).failed();
    let err = failed.combined().to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("x509"),
        "untrusting pull failed for another reason:\n{err}"
    );

    let mut c = ctrd.ctr("e2e");
    c.args(["images", "pull"])
        .args(reg.creds_args("--user"))
        .arg("--hosts-dir")
        .arg(&ctrd.hosts_dir)
        .arg(&target);
    run_ok(c);
    let mut c = ctrd.ctr("e2e");
    c.args(["images", "ls", "-q"]);
    assert!(run_ok(c).stdout.lines().any(|l| l == target));
}

/// docker: overwriting a tag of an immutable repository fails, and `docker push` prints ECR's
/// message; a new tag works, and pushing that tag again (same digest) succeeds.
#[test]
fn docker_push_over_an_immutable_tag_prints_ecrs_message() {
    let reg = Registry::start();
    if reg.kind != "berth" {
        eprintln!("skipped: tag immutability is set through Berth's admin API");
        return;
    }
    let repo = unique("docker-immutable");
    push_test_image(&reg, &repo, "v1", None);
    // IMMUTABLE through the admin API's public sub-resource path.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let resp = common::admin_client()
            .put(format!(
                "http://{}/api/v1/repositories/{repo}/tag-mutability",
                reg.addr
            ))
            .json(&serde_json::json!({"imageTagMutability": "IMMUTABLE"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    });

    let dockerd = Dockerd::start(&[&reg.addr]);
    dockerd.login(&reg);
    let docker = |args: &[&str]| {
        let mut c = dockerd.docker();
        c.args(args);
        run(c)
    };
    let src = reg.reference(&repo, "v1");
    docker(&["pull", &src]).ok();
    // A different image: one more layer on top.
    let container = format!("imm-{}", std::process::id());
    docker(&[
        "run",
        "--name",
        &container,
        "--network",
        "none",
        &src,
        "sh",
        "-c",
        "echo changed > /changed",
    ])
    .ok();
    docker(&["commit", &container, &src]).ok();
    let refused = docker(&["push", &src]).failed();
    let message = format!(
        "The image tag 'v1' already exists in the '{repo}' repository and cannot be overwritten \
         because the repository is immutable."
    );
    assert_contains(
        &refused.combined(),
        &message,
        "docker push over an immutable tag",
    );

    let v2 = reg.reference(&repo, "v2");
    docker(&["tag", &src, &v2]).ok();
    docker(&["push", &v2]).ok();
    let again = docker(&["push", &v2]).ok();
    assert_contains(
        &again.stdout,
        "digest: sha256:",
        "re-push of the same digest",
    );
    docker(&["rm", &container]).ok();
}
