//! A small runnable test image (busybox-static) written as an OCI image layout, byte-identical on
//! every build: tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner, gzip -n.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::json;

use super::{client, cmd, run_ok, sha256_digest, sha256_hex, INSTALL_HINT};

/// The tag of the image inside the layout.
pub const TAG: &str = "latest";
/// Content of /etc/berth-e2e inside the image.
pub const MARKER: &str = "berth e2e image";

const APPLETS: &[&str] = &[
    "sh",
    "echo",
    "cat",
    "ls",
    "true",
    "false",
    "sleep",
    "id",
    "env",
    "uname",
    "printf",
    "test",
    "wc",
    "head",
    "sha256sum",
];

pub struct TestImage {
    /// The OCI layout directory (`oci:LAYOUT:latest`).
    pub layout: PathBuf,
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub layer_digest: String,
    pub layer_diff_id: String,
}

/// The test image, built once per test binary into the target's tmp dir (keyed by the busybox
/// binary's hash, so later runs reuse it).
pub fn test_image() -> &'static TestImage {
    static IMG: OnceLock<TestImage> = OnceLock::new();
    IMG.get_or_init(|| {
        let busybox = std::fs::read(busybox_path()).expect("read busybox");
        let key = &sha256_hex(&busybox)[..16];
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("berth-e2e-image-{key}"));
        if let Some(img) = load_layout(&dir) {
            return img;
        }
        let tmp = base.join(format!("berth-e2e-image-{key}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        build_image(&tmp);
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another test binary won the race: use its (identical) copy.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        load_layout(&dir).expect("freshly built image layout is readable")
    })
}

fn busybox_path() -> PathBuf {
    let p = client("busybox");
    assert!(
        is_static_elf(&p),
        "{} is not statically linked: install busybox-static ({INSTALL_HINT})",
        p.display()
    );
    p
}

/// True when the ELF file has no PT_INTERP program header (no dynamic loader needed).
fn is_static_elf(p: &Path) -> bool {
    let b = std::fs::read(p).expect("read busybox");
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16le = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16le(0x36), u16le(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
    })
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => panic!("unsupported arch {other}"),
    }
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the layout into `dir` (which must not exist) and returns its description.
pub fn build_image(dir: &Path) -> TestImage {
    let work = dir.join("work");
    let rootfs = work.join("rootfs");
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
        set_mode(&rootfs.join(d), if d == "tmp" { 0o1777 } else { 0o755 });
    }
    set_mode(&rootfs, 0o755);
    std::fs::copy(busybox_path(), rootfs.join("bin/busybox")).unwrap();
    set_mode(&rootfs.join("bin/busybox"), 0o755);
    for a in APPLETS {
        symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/berth-e2e", "berth e2e image\n"),
    ];
    for (p, content) in files {
        std::fs::write(rootfs.join(p), content).unwrap();
        set_mode(&rootfs.join(p), 0o644);
    }

    let layer_tar = work.join("layer.tar");
    let mut tar = cmd("tar");
    tar.args([
        "--sort=name",
        "--mtime=@0",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--format=gnu",
        "-C",
    ])
    .arg(&rootfs)
    .arg("-cf")
    .arg(&layer_tar)
    .arg(".");
    run_ok(tar);
    let mut gz = cmd("gzip");
    gz.args(["-n", "-9", "-k"]).arg(&layer_tar);
    run_ok(gz);
    let tar_bytes = std::fs::read(&layer_tar).unwrap();
    let gz_bytes = std::fs::read(work.join("layer.tar.gz")).unwrap();
    let diff_id = sha256_digest(&tar_bytes);

    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": "berth-e2e"}
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "berth e2e: busybox-static"}]
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();

    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let d = sha256_digest(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let config_digest = put(&config_bytes);
    let layer_digest = put(&gz_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len()
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": gz_bytes.len()
        }]
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put(&manifest_bytes);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": TAG}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::remove_dir_all(&work).unwrap();
    TestImage {
        layout: dir.to_path_buf(),
        manifest_digest,
        manifest: manifest_bytes,
        config_digest,
        layer_digest,
        layer_diff_id: diff_id,
    }
}

/// Reads a layout written by [`build_image`], verifying every blob's digest; None if absent or bad.
pub fn load_layout(dir: &Path) -> Option<TestImage> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).ok()?).ok()?;
    let desc = &index["manifests"][0];
    let manifest_digest = desc["digest"].as_str()?.to_string();
    let blob = |d: &str| -> Option<Vec<u8>> {
        let b = std::fs::read(dir.join("blobs/sha256").join(d.strip_prefix("sha256:")?)).ok()?;
        (sha256_digest(&b) == d).then_some(b)
    };
    let manifest = blob(&manifest_digest)?;
    let m: serde_json::Value = serde_json::from_slice(&manifest).ok()?;
    let config_digest = m["config"]["digest"].as_str()?.to_string();
    let layer_digest = m["layers"][0]["digest"].as_str()?.to_string();
    let config: serde_json::Value = serde_json::from_slice(&blob(&config_digest)?).ok()?;
    blob(&layer_digest)?;
    Some(TestImage {
        layout: dir.to_path_buf(),
        manifest_digest,
        manifest,
        config_digest,
        layer_digest,
        layer_diff_id: config["rootfs"]["diff_ids"][0].as_str()?.to_string(),
    })
}

/// Reads the manifest digest of the (single) image in an OCI layout written by a client.
pub fn layout_manifest_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest in index.json")
        .to_string()
}

/// Path of a blob in an OCI layout.
pub fn layout_blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}
