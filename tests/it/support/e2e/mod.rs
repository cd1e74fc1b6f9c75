//! Helpers for the end-to-end tests that drive real clients (skopeo, docker, containerd, podman,
//! oras) against a listening registry.
//!
//! Which registry is under test:
//! - by default a fresh Berth process per test (`common::TestServer`);
//! - `BERTH_E2E_REGISTRY=host:port`: an already running registry (e.g. the reference CNCF
//!   Distribution, see `tests/fixtures/reference-registry.sh`). TLS tests then start their own
//!   reference registry (`BERTH_E2E_REFERENCE_BIN`, default `docker-registry`) with the test cert.
//! - `BERTH_E2E_REGISTRY=reference`: every test starts its own reference registry (deletes
//!   enabled) on a free loopback port, in place of Berth. This validates the harness itself.
//!
//! Credentials: every client logs in to Berth as the test admin (`common::ADMIN_USER` /
//! `common::ADMIN_PASSWORD`) the way its users do (`docker login`, `podman login`, skopeo's
//! `--creds`, `ctr --user`, the CRI `AuthConfig`, oras basic auth). An external registry gets
//! the credentials in `BERTH_E2E_REGISTRY_CREDS=user:password` (none when unset); the reference
//! registries we start need none.
//!
//! Clients come from Debian packages installed by `tests/install-clients.sh`; a missing client
//! makes the test fail, never skip.
#![allow(dead_code)]

pub mod daemons;
pub mod image;
pub mod tls;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};

pub const INSTALL_HINT: &str =
    "run `bash tests/install-clients.sh` (as root) to install the e2e clients";

/// Absolute path of a fixture file in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Finds a client binary, preferring the distribution's own (/usr/bin, /usr/sbin) over anything
/// in /usr/local or PATH, so that a test run uses what `install-clients.sh` installed.
pub fn client(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("required client `{name}` is not installed: {INSTALL_HINT}");
}

/// `Command` for a client binary found with [`client`].
pub fn cmd(name: &str) -> Command {
    Command::new(client(name))
}

/// Python with `grpc` (Debian's python3-grpcio), for the CRI call.
pub fn python_with_grpc() -> PathBuf {
    let py = PathBuf::from("/usr/bin/python3");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import grpc"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "/usr/bin/python3 with the grpc module (python3-grpcio) is missing: {INSTALL_HINT}"
    );
    py
}

/// Python of the venv holding the PyPI `oras` client.
pub fn python_with_oras() -> PathBuf {
    let venv = std::env::var_os("BERTH_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/berth-venv")
        });
    let py = venv.join("bin/python");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", "import oras.client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "the `oras` Python client is missing from {}: {INSTALL_HINT}",
        venv.display()
    );
    py
}

/// Result of a finished command.
pub struct Out {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless the command succeeded.
    pub fn ok(self) -> Self {
        if !self.status.success() {
            panic!(
                "command failed ({}): {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.status, self.cmdline, self.stdout, self.stderr
            );
        }
        self
    }

    /// Panics unless the command failed.
    pub fn failed(self) -> Self {
        if self.status.success() {
            panic!(
                "command unexpectedly succeeded: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.cmdline, self.stdout, self.stderr
            );
        }
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "output of {} is not JSON ({e}):\n{}",
                self.cmdline, self.stdout
            )
        })
    }

    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs a command with a timeout (killing it on expiry), capturing stdout and stderr.
pub fn run_with_timeout(command: Command, timeout: Duration) -> Out {
    run_inner(command, None, timeout)
}

/// Runs a command with `input` on its stdin (such as a password for `--password-stdin`) and the
/// default timeout. The input is never shown in the command line or in failure messages.
pub fn run_with_input(command: Command, input: &[u8]) -> Out {
    run_inner(command, Some(input), Duration::from_secs(180))
}

fn run_inner(mut command: Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    let cmdline = format!("{command:?}");
    let mut out_f = tempfile::tempfile().expect("tempfile");
    let mut err_f = tempfile::tempfile().expect("tempfile");
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out_f.try_clone().unwrap())
        .stderr(err_f.try_clone().unwrap());
    eprintln!("+ {cmdline}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e} ({INSTALL_HINT})"));
    if let Some(input) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Output goes to files, so the child cannot block on it while we write; closing stdin
        // (dropping it) ends the input.
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut s = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut s).unwrap();
        String::from_utf8_lossy(&s).into_owned()
    };
    let stdout = read(&mut out_f);
    let stderr = read(&mut err_f);
    match status {
        Some(status) => Out { cmdline, status, stdout, stderr },
        None => panic!("command timed out after {timeout:?}: {cmdline}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"),
    }
}

/// Runs a command with the default timeout (3 minutes).
pub fn run(command: Command) -> Out {
    run_with_timeout(command, Duration::from_secs(180))
}

/// Runs a command and panics unless it succeeds.
pub fn run_ok(command: Command) -> Out {
    run(command).ok()
}

/// A suffix that makes repository names unique per test run (for shared external registries).
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "e2e/{name}-{}-{}-{}",
        std::process::id(),
        nanos % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// A temp dir directly under /tmp (short paths: unix sockets are limited to 108 bytes).
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tempdir in /tmp")
}

/// The reference registry binary (CNCF Distribution 2.8 from Debian by default).
pub fn reference_bin() -> String {
    std::env::var("BERTH_E2E_REFERENCE_BIN").unwrap_or_else(|_| "docker-registry".into())
}

/// The registry under test: Berth (default), an external one, or a reference registry we started.
pub struct Registry {
    /// host:port
    pub addr: String,
    pub kind: &'static str,
    /// User name and password the clients log in with (none: the registry needs no login).
    creds: Option<(String, String)>,
    server: Option<TestServer>,
    reference: Option<daemons::Daemon>,
    _tmp: Option<tempfile::TempDir>,
}

impl Registry {
    /// A plain-HTTP registry on loopback.
    pub fn start() -> Self {
        if let Ok(addr) = std::env::var("BERTH_E2E_REGISTRY") {
            if addr == "reference" {
                let (daemon, addr, tmp) = daemons::start_reference_registry(&reference_bin(), None);
                eprintln!(
                    "registry under test: reference {} at {addr}",
                    reference_bin()
                );
                return Registry {
                    addr,
                    kind: "reference",
                    creds: None,
                    server: None,
                    reference: Some(daemon),
                    _tmp: Some(tmp),
                };
            }
            assert!(
                addr.starts_with("127.")
                    || addr.starts_with("localhost:")
                    || addr.starts_with("[::1]"),
                "BERTH_E2E_REGISTRY must be a loopback address, got {addr}"
            );
            eprintln!("registry under test: external {addr}");
            let creds = std::env::var("BERTH_E2E_REGISTRY_CREDS").ok().map(|c| {
                let (user, password) = c
                    .split_once(':')
                    .expect("BERTH_E2E_REGISTRY_CREDS must be user:password");
                (user.to_owned(), password.to_owned())
            });
            return Registry {
                addr,
                kind: "external",
                creds,
                server: None,
                reference: None,
                _tmp: None,
            };
        }
        let server = TestServer::start();
        eprintln!("registry under test: berth at {}", server.addr);
        Registry::of_server(server)
    }

    /// A Berth the test started itself (with its own configuration), logged in to as the admin.
    pub fn of_server(server: TestServer) -> Self {
        Registry {
            addr: server.addr.clone(),
            kind: "berth",
            creds: Some((ADMIN_USER.to_owned(), ADMIN_PASSWORD.to_owned())),
            server: Some(server),
            reference: None,
            _tmp: None,
        }
    }

    /// The Berth behind this registry, when it is one the test started.
    pub fn server(&self) -> Option<&TestServer> {
        self.server.as_ref()
    }

    /// The same, to stop and restart it.
    pub fn server_mut(&mut self) -> Option<&mut TestServer> {
        self.server.as_mut()
    }

    /// A registry serving HTTPS with the given certificate. With `BERTH_E2E_REGISTRY` set, this
    /// starts a reference registry (docker-registry) of our own, since the external one has no
    /// access to the test's certificate.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        if std::env::var_os("BERTH_E2E_REGISTRY").is_some() {
            let bin = reference_bin();
            let (daemon, addr, tmp) = daemons::start_reference_registry(&bin, Some((cert, key)));
            eprintln!("registry under test: reference {bin} with TLS at {addr}");
            return Registry {
                addr,
                kind: "reference-tls",
                creds: None,
                server: None,
                reference: Some(daemon),
                _tmp: Some(tmp),
            };
        }
        let server = TestServer::start_with(
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
            &[],
        );
        eprintln!("registry under test: berth with TLS at {}", server.addr);
        Registry {
            addr: server.addr.clone(),
            kind: "berth-tls",
            creds: Some((ADMIN_USER.to_owned(), ADMIN_PASSWORD.to_owned())),
            server: Some(server),
            reference: None,
            _tmp: None,
        }
    }

    /// The user name and password to log in with, if the registry needs a login.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `user:password`, the form of skopeo's `--creds` and ctr's `--user`.
    pub fn user_colon_password(&self) -> Option<String> {
        self.creds().map(|(u, p)| format!("{u}:{p}"))
    }

    /// `[flag, "user:password"]` when the registry needs a login, else nothing: for skopeo's
    /// `--creds`, `--src-creds` and `--dest-creds` and ctr's `--user`.
    pub fn creds_args(&self, flag: &str) -> Vec<String> {
        self.user_colon_password()
            .map(|c| vec![flag.to_owned(), c])
            .unwrap_or_default()
    }

    /// `docker://ADDR/REPO:TAG` style reference without the transport.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{}:{}", self.addr, repo, tag)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        if let Some(s) = &self.server {
            return s.log();
        }
        if let Some(d) = &self.reference {
            return d.log();
        }
        String::from("(external registry: no log)")
    }

    /// Last lines of the server log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// `user:password` of the test admin, for skopeo's `--creds` family against a `TestServer` that
/// is not wrapped in a [`Registry`] (such as a replica).
pub fn admin_creds() -> String {
    format!("{ADMIN_USER}:{ADMIN_PASSWORD}")
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- registry ({}) log tail ---\n{}",
                self.kind,
                self.log_tail()
            );
        }
    }
}

/// skopeo with no signature policy lookup (the tests have nothing to verify).
pub fn skopeo() -> Command {
    let mut c = cmd("skopeo");
    c.arg("--insecure-policy");
    c
}

/// `skopeo inspect --raw` (plain HTTP, logged in to `reg`): the manifest bytes the registry
/// serves (any artifact).
pub fn skopeo_raw(reg: &Registry, reference: &str) -> Vec<u8> {
    skopeo_raw_as(reg.user_colon_password().as_deref(), reference)
}

/// `skopeo inspect` (plain HTTP, logged in to `reg`) of an image: returns (digest, raw manifest
/// bytes).
pub fn skopeo_manifest(reg: &Registry, reference: &str) -> (String, Vec<u8>) {
    skopeo_manifest_as(reg.user_colon_password().as_deref(), reference)
}

/// [`skopeo_raw`] with `--creds user:password` when `creds` is given.
pub fn skopeo_raw_as(creds: Option<&str>, reference: &str) -> Vec<u8> {
    let mut c = skopeo();
    c.args(["inspect", "--tls-verify=false", "--raw"]);
    if let Some(creds) = creds {
        c.args(["--creds", creds]);
    }
    c.arg(format!("docker://{reference}"));
    run_ok(c).stdout.into_bytes()
}

/// [`skopeo_manifest`] with `--creds user:password` when `creds` is given.
pub fn skopeo_manifest_as(creds: Option<&str>, reference: &str) -> (String, Vec<u8>) {
    let raw = skopeo_raw_as(creds, reference);
    let mut c = skopeo();
    c.args(["inspect", "--tls-verify=false"]);
    if let Some(creds) = creds {
        c.args(["--creds", creds]);
    }
    c.arg(format!("docker://{reference}"));
    let info = run_ok(c).json();
    let digest = info["Digest"]
        .as_str()
        .expect("Digest in skopeo inspect")
        .to_string();
    (digest, raw)
}

/// Pushes the test image (OCI layout) to the registry with skopeo, in OCI format unless `format`
/// says otherwise ("v2s2"). Returns the digest the registry reports for the pushed tag.
pub fn push_test_image(reg: &Registry, repo: &str, tag: &str, format: Option<&str>) -> String {
    let img = image::test_image();
    let mut c = skopeo();
    c.args(["copy", "--dest-tls-verify=false"])
        .args(reg.creds_args("--dest-creds"));
    if let Some(f) = format {
        c.args(["--format", f]);
    }
    c.arg(format!("oci:{}:{}", img.layout.display(), image::TAG));
    c.arg(format!("docker://{}", reg.reference(repo, tag)));
    run_ok(c);
    let (digest, raw) = skopeo_manifest(reg, &reg.reference(repo, tag));
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "manifest bytes served do not hash to the reported digest"
    );
    digest
}

/// Unmounts (lazily) every mount at or below `dir`, deepest first: daemons leave overlay and
/// bind mounts behind in their private roots.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        let _ = Command::new("umount")
            .args(["-l", &p])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Asserts that `haystack` contains `needle`, showing both on failure.
#[track_caller]
pub fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected to find {needle:?} in:\n{haystack}"
    );
}
