//! Private daemons (dockerd, containerd, a reference registry) and podman with private storage.
//! Each lives in its own temp dir under /tmp and is stopped (SIGTERM, then SIGKILL) on drop,
//! which also runs when a test panics, so no daemon outlives the test that started it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    client, cmd, fixture, run, run_with_input, run_with_timeout, short_tempdir, unmount_below, Out,
    Registry,
};
use crate::support::common::free_port;

/// A background process with a log file, stopped on drop.
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Self {
        let f = std::fs::File::create(log).expect("daemon log");
        command
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        eprintln!("+ (daemon) {command:?}");
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} ({})", super::INSTALL_HINT));
        Daemon {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the log) if the daemon has exited.
    pub fn check_alive(&mut self) {
        if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("{} exited with {st}:\n{}", self.name, self.log());
        }
    }

    /// Polls `ready` until it returns true, failing with the log after `timeout`.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive();
            if ready() {
                return;
            }
            if Instant::now() > deadline {
                panic!("{} not ready after {timeout:?}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -TERM {}", child.id())])
                .status();
            let deadline = Instant::now() + grace;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(20));
    }
}

fn wait_port(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// Starts the reference registry (CNCF Distribution, Debian's `docker-registry`) on a free
/// loopback port with deletes enabled, optionally serving TLS. Returns (daemon, addr, temp dir).
pub fn start_reference_registry(
    bin: &str,
    tls: Option<(&Path, &Path)>,
) -> (Daemon, String, tempfile::TempDir) {
    let tmp = short_tempdir("berth-ref");
    let addr = format!("127.0.0.1:{}", free_port());
    let tls_cfg = match tls {
        Some((cert, key)) => format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    let cfg = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls_cfg}",
        tmp.path().join("data").display()
    );
    let cfg_path = tmp.path().join("config.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut c = cmd(bin);
    c.arg("serve").arg(&cfg_path);
    let mut d = Daemon::spawn(bin, c, &tmp.path().join("registry.log"));
    let a = addr.clone();
    d.wait_until(Duration::from_secs(30), || wait_port(&a));
    (d, addr, tmp)
}

/// A private dockerd (own data-root, exec-root and socket).
pub struct Dockerd {
    daemon: Daemon,
    pub sock: PathBuf,
    config: PathBuf,
    tmp: tempfile::TempDir,
}

impl Dockerd {
    pub fn start(insecure_registries: &[&str]) -> Self {
        Dockerd::start_with_mirrors(insecure_registries, &[])
    }

    /// Like [`Dockerd::start`], with `--registry-mirror` for each URL (Docker Hub pulls try
    /// them first).
    pub fn start_with_mirrors(insecure_registries: &[&str], mirrors: &[&str]) -> Self {
        let tmp = short_tempdir("berth-dockerd");
        let d = tmp.path();
        let sock = d.join("docker.sock");
        let config = d.join("client-config");
        std::fs::create_dir_all(&config).unwrap();
        let mut c = cmd("dockerd");
        c.arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"]);
        for r in insecure_registries {
            c.arg("--insecure-registry").arg(r);
        }
        for m in mirrors {
            c.arg("--registry-mirror").arg(m);
        }
        let daemon = Daemon::spawn("dockerd", c, &d.join("dockerd.log"));
        let mut me = Dockerd {
            daemon,
            sock,
            config,
            tmp,
        };
        let (s, cfg) = (me.sock.clone(), me.config.clone());
        me.daemon.wait_until(Duration::from_secs(60), || {
            let mut c = docker_cmd(&s, &cfg);
            c.args(["version", "--format", "{{.Server.Version}}"]);
            run_with_timeout(c, Duration::from_secs(20)).success()
        });
        me
    }

    /// `docker` talking to this daemon only, with its own client config dir.
    pub fn docker(&self) -> Command {
        docker_cmd(&self.sock, &self.config)
    }

    /// The docker client's `config.json` (where `docker login` keeps credentials).
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.json")
    }

    /// `docker login ADDR -u USER --password-stdin` when `reg` needs a login: the credentials
    /// land in this daemon's private client config dir (`DOCKER_CONFIG`).
    pub fn login(&self, reg: &Registry) {
        let Some((user, password)) = reg.creds() else {
            return;
        };
        let mut c = self.docker();
        c.args(["login", &reg.addr, "--username", user, "--password-stdin"]);
        let out = run_with_input(c, password.as_bytes()).ok();
        super::assert_contains(&out.combined(), "Login Succeeded", "docker login");
    }

    /// `docker logout ADDR` (after [`Dockerd::login`]): the stored credentials are removed.
    pub fn logout(&self, reg: &Registry) {
        if reg.creds().is_none() {
            return;
        }
        let mut c = self.docker();
        c.args(["logout", &reg.addr]);
        run(c).ok();
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.daemon.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- dockerd log tail ---\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        self.daemon.stop(Duration::from_secs(30));
        // dockerd stops its own containerd; anything it left mounted goes too.
        unmount_below(self.tmp.path());
    }
}

/// Debian's docker CLI (an unrelated docker build may come first on PATH), talking to `sock` only.
fn docker_cmd(sock: &Path, config: &Path) -> Command {
    let mut c = cmd("docker");
    c.env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY");
    c
}

/// One registry host entry for containerd's hosts.toml.
pub struct HostCfg<'a> {
    /// host:port
    pub addr: &'a str,
    /// "http" or "https"
    pub scheme: &'a str,
    /// CA file to trust for https.
    pub ca: Option<&'a Path>,
}

/// Writes `DIR/<host:port>/hosts.toml` files (containerd's registry config_path layout).
pub fn write_hosts_dir(dir: &Path, hosts: &[HostCfg]) {
    for h in hosts {
        let hd = dir.join(h.addr);
        std::fs::create_dir_all(&hd).unwrap();
        let mut t = format!(
            "server = \"{s}://{a}\"\n\n[host.\"{s}://{a}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n",
            s = h.scheme,
            a = h.addr
        );
        if let Some(ca) = h.ca {
            t.push_str(&format!("  ca = \"{}\"\n", ca.display()));
        }
        std::fs::write(hd.join("hosts.toml"), t).unwrap();
    }
}

/// A private containerd: own root, state, sockets, opt dir, CNI conf dir, CRI stream port and
/// registry hosts dir.
pub struct Containerd {
    daemon: Daemon,
    pub sock: PathBuf,
    pub hosts_dir: PathBuf,
    tmp: tempfile::TempDir,
}

impl Containerd {
    pub fn start(hosts: &[HostCfg]) -> Self {
        let tmp = short_tempdir("berth-ctrd");
        let d = tmp.path().to_path_buf();
        let sock = d.join("containerd.sock");
        let hosts_dir = d.join("certs.d");
        std::fs::create_dir_all(&hosts_dir).unwrap();
        std::fs::create_dir_all(d.join("cni")).unwrap();
        write_hosts_dir(&hosts_dir, hosts);
        let cfg = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "{port}"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts}"
"#,
            d = d.display(),
            sock = sock.display(),
            port = free_port(),
            hosts = hosts_dir.display(),
        );
        let cfg_path = d.join("config.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut c = cmd("containerd");
        c.arg("--config").arg(&cfg_path);
        let mut daemon = Daemon::spawn("containerd", c, &d.join("containerd.log"));
        let s = sock.clone();
        daemon.wait_until(Duration::from_secs(30), || {
            let mut c = cmd("ctr");
            c.arg("--address").arg(&s).arg("version");
            s.exists() && run_with_timeout(c, Duration::from_secs(10)).success()
        });
        Containerd {
            daemon,
            sock,
            hosts_dir,
            tmp,
        }
    }

    /// `ctr` against this daemon in namespace `ns`.
    pub fn ctr(&self, ns: &str) -> Command {
        let mut c = cmd("ctr");
        c.arg("--address")
            .arg(&self.sock)
            .arg("--namespace")
            .arg(ns);
        c
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.daemon.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- containerd log tail ---\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        self.daemon.stop(Duration::from_secs(20));
        unmount_below(self.tmp.path());
    }
}

/// podman with private storage and the sandbox-friendly containers.conf from tests/fixtures.
pub struct Podman {
    tmp: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Self {
        client("podman");
        client("runc");
        let tmp = short_tempdir("berth-podman");
        std::fs::write(
            tmp.path().join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        Podman { tmp }
    }

    /// podman's private auth file (`--authfile`, also `REGISTRY_AUTH_FILE` for every command).
    pub fn authfile(&self) -> PathBuf {
        self.tmp.path().join("auth.json")
    }

    /// `podman login --authfile F -u USER --password-stdin ADDR` (plain HTTP) when `reg` needs a
    /// login.
    pub fn login(&self, reg: &Registry) {
        let Some((user, password)) = reg.creds() else {
            return;
        };
        let mut c = self.podman();
        c.arg("login")
            .arg("--authfile")
            .arg(self.authfile())
            .args(["--tls-verify=false", "--username", user, "--password-stdin"])
            .arg(&reg.addr);
        let out = run_with_input(c, password.as_bytes()).ok();
        super::assert_contains(&out.combined(), "Login Succeeded", "podman login");
    }

    /// `podman logout --authfile F ADDR` (after [`Podman::login`]).
    pub fn logout(&self, reg: &Registry) {
        if reg.creds().is_none() {
            return;
        }
        let mut c = self.podman();
        c.arg("logout")
            .arg("--authfile")
            .arg(self.authfile())
            .arg(&reg.addr);
        run(c).ok();
    }

    pub fn podman(&self) -> Command {
        let d = self.tmp.path();
        let mut c = cmd("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("libpod-tmp"))
            .env("CONTAINERS_CONF", fixture("podman-containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.authfile())
            .env("XDG_RUNTIME_DIR", d.join("xdg"))
            .env("TMPDIR", d.join("tmp"));
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::create_dir_all(d.join("xdg")).unwrap();
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        let mut c = self.podman();
        c.args(args);
        run(c)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        unmount_below(self.tmp.path());
    }
}
