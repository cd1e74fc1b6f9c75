//! Shared test support: start a real, listening Berth process on a free loopback port.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Berth server process with its own data directory (and, on the `pg-s3` stack, its own
/// PostgreSQL database and S3 server), killed on drop.
pub struct TestServer {
    pub addr: String,
    pub base: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    backends: Option<Backends>,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    /// Whether the server gets `BERTH_ADMIN_PASSWORD=ADMIN_PASSWORD` (unless `extra_env`
    /// configures the admin itself).
    default_admin: bool,
    /// The file mode creation mask the process starts with (else the test process's).
    umask: Option<u32>,
}

/// Whether `BERTH_TEST_STACK` asks for the `pg-s3` stack.
pub fn stack_is_pg_s3() -> bool {
    match stack().as_str() {
        "sqlite-fs" => false,
        "pg-s3" => true,
        other => panic!("BERTH_TEST_STACK={other}: expected sqlite-fs or pg-s3"),
    }
}

/// Which metadata database and blob storage the test servers use: `BERTH_TEST_STACK` is
/// `sqlite-fs` (default: embedded SQLite and the filesystem) or `pg-s3` (a fresh PostgreSQL
/// database on 127.0.0.1:5432 and a private s3s-fs server per test server).
pub fn stack() -> String {
    std::env::var("BERTH_TEST_STACK").unwrap_or_else(|_| "sqlite-fs".into())
}

/// The bootstrap admin every test server starts with (Berth's default admin user name), and its
/// password, passed as `BERTH_ADMIN_PASSWORD` unless a test configures the admin itself. The
/// admin may do everything (`ecr:*`), so the test clients authenticate as this user.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "berth-test-admin-password";

/// `Authorization` header value for HTTP Basic with `user` and `password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// `Authorization` header value for the test admin (HTTP Basic).
pub fn admin_basic_auth() -> String {
    basic_auth(ADMIN_USER, ADMIN_PASSWORD)
}

/// A `reqwest` client that sends the test admin's Basic credentials with every request (reqwest
/// drops them when it follows a redirect to another host or port, such as a presigned S3 URL).
pub fn admin_client() -> reqwest::Client {
    admin_client_builder().build().expect("reqwest client")
}

/// A `reqwest` client builder with the test admin's Basic credentials as a default header.
pub fn admin_client_builder() -> reqwest::ClientBuilder {
    let mut value = reqwest::header::HeaderValue::from_str(&admin_basic_auth()).unwrap();
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers)
}

pub const S3_ACCESS_KEY: &str = "berth-test-access";
pub const S3_SECRET_KEY: &str = "berth-test-secret-key";

/// A PostgreSQL database and an S3 server private to one test server.
pub struct Backends {
    pub database_url: String,
    database: String,
    pub s3_endpoint: String,
    pub bucket: String,
    /// The s3s-fs data directory; the bucket is a directory inside it.
    pub s3_dir: PathBuf,
    /// The secrets key file every replica on this database shares (Berth refuses PostgreSQL
    /// without one).
    pub secrets_key_file: PathBuf,
    s3: Child,
}

/// Runs SQL as the `postgres` superuser on the shared test cluster.
pub fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .output()
        .expect("run psql (is postgresql-client installed?)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a fresh, uniquely named PostgreSQL database and returns its name and URL.
pub fn fresh_database() -> (String, String) {
    let name = format!("berth_t_{}", uuid_like());
    psql(&format!("CREATE DATABASE {name}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    (name, url)
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// Starts s3s-fs on a free loopback port over `dir`, with one bucket, and waits until it listens.
pub fn start_s3(dir: &Path, bucket: &str) -> (Child, String) {
    std::fs::create_dir_all(dir.join(bucket)).unwrap();
    let port = free_port();
    let child = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs (run tests/install-clients.sh)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, format!("http://{addr}"))
}

impl Backends {
    fn start(tmp: &Path) -> Self {
        let (database, database_url) = fresh_database();
        let bucket = "berth".to_string();
        let s3_dir = tmp.join("s3");
        let (s3, s3_endpoint) = start_s3(&s3_dir, &bucket);
        let secrets_key_file = tmp.join("secrets.key");
        berth::secrets::write_new_key_file(&secrets_key_file).expect("write a secrets key file");
        Backends {
            database_url,
            database,
            s3_dir,
            secrets_key_file,
            s3_endpoint,
            bucket,
            s3,
        }
    }

    /// The environment that points Berth at these backends.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("BERTH_DATABASE_URL".into(), self.database_url.clone()),
            ("BERTH_STORAGE_URL".into(), format!("s3://{}", self.bucket)),
            ("BERTH_STORAGE_S3_ENDPOINT".into(), self.s3_endpoint.clone()),
            (
                "BERTH_STORAGE_S3_ACCESS_KEY_ID".into(),
                S3_ACCESS_KEY.into(),
            ),
            (
                "BERTH_STORAGE_S3_SECRET_ACCESS_KEY".into(),
                S3_SECRET_KEY.into(),
            ),
            ("BERTH_STORAGE_S3_ALLOW_HTTP".into(), "true".into()),
            ("BERTH_STORAGE_S3_REGION".into(), "us-east-1".into()),
            (
                "BERTH_AUTH_SECRETS_KEY_FILE".into(),
                self.secrets_key_file.display().to_string(),
            ),
        ]
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = self.s3.kill();
        let _ = self.s3.wait();
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .output();
    }
}

/// Whether `GET /healthz` on `addr` answers 200 with body `ok` (Berth's answer; another server
/// on the port answers something else).
fn healthz_ok(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: berth\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.") && response.contains(" 200 ") && response.ends_with("ok")
}

/// The end of a server log for a failure message: its last errors (which a busy log's tail may
/// no longer show), then its last lines.
pub fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("ERROR"))
        .collect();
    format!(
        "--- last errors ---\n{}\n--- last lines ---\n{}",
        errors[errors.len().saturating_sub(10)..].join("\n"),
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}

/// Polls `check` every 100 ms until it returns true; fails after `bound`, showing `server`'s
/// log.
pub async fn wait_until<F, Fut>(what: &str, server: &TestServer, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {bound:?}\n{}",
            log_tail(&server.log())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Picks a port the OS considers free on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

impl TestServer {
    /// Starts Berth with embedded defaults in a fresh temp dir.
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// Starts Berth with extra CLI args and env vars. The admin is [`ADMIN_USER`] with
    /// [`ADMIN_PASSWORD`] unless `env` sets `BERTH_ADMIN_USER` or `BERTH_ADMIN_PASSWORD`.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(stack_is_pg_s3(), args, env, true, None)
    }

    /// Like [`TestServer::start_with`], but without the default admin password: unless `env`
    /// configures one, Berth generates the admin password into its data dir.
    pub fn start_without_admin_password(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(stack_is_pg_s3(), args, env, false, None)
    }

    /// Starts Berth on embedded SQLite and the filesystem, or on its own PostgreSQL database and
    /// S3 server.
    fn start_on(
        pg_s3: bool,
        args: &[&str],
        env: &[(&str, &str)],
        default_admin: bool,
        umask: Option<u32>,
    ) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        Self::start_in_on(&dir, Some(tmp), pg_s3, args, env, default_admin, umask)
    }

    /// Starts Berth in a directory the test prepared: its data dir is `<dir>/data` and, on the
    /// pg-s3 stack (`pg_s3`), the S3 server's directory `<dir>/s3`, so a test can mount a small
    /// or read-only file system there first. The caller keeps `dir` (and what it mounted) until
    /// the server is dropped.
    pub fn start_in(dir: &Path, pg_s3: bool, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in_on(dir, None, pg_s3, args, env, true, None)
    }

    fn start_in_on(
        dir: &Path,
        tmp: Option<tempfile::TempDir>,
        pg_s3: bool,
        args: &[&str],
        env: &[(&str, &str)],
        default_admin: bool,
        umask: Option<u32>,
    ) -> Self {
        let data_dir = dir.join("data");
        let backends = pg_s3.then(|| Backends::start(dir));
        let mut server = TestServer {
            addr: String::new(),
            base: String::new(),
            data_dir,
            child: None,
            backends,
            _tmp: tmp,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            default_admin,
            umask,
        };
        server.spawn_on_free_port();
        server
    }

    /// Like [`TestServer::start_without_admin_password`] (so the admin password is generated
    /// into the data dir), with the process's umask set to `umask`, as a service manager or
    /// shell would start it.
    pub fn start_with_umask(umask: u32, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(stack_is_pg_s3(), args, env, false, Some(umask))
    }

    /// The environment Berth gets on top of the test process's: the backends, the default
    /// admin password (unless the test configures the admin itself), then the test's own.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self
            .backends
            .as_ref()
            .map(Backends::env)
            .unwrap_or_default();
        let admin_configured = self
            .extra_env
            .iter()
            .any(|(k, _)| k == "BERTH_ADMIN_USER" || k == "BERTH_ADMIN_PASSWORD");
        if self.default_admin && !admin_configured {
            env.push(("BERTH_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()));
        }
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Sets [`TestServer::env`] on `cmd`, after removing any admin settings the test process
    /// itself inherited (they would change the admin the test clients log in as).
    fn apply_env(&self, cmd: &mut Command) {
        cmd.env_remove("BERTH_ADMIN_USER")
            .env_remove("BERTH_ADMIN_PASSWORD")
            .envs(self.env());
    }

    /// Starts on a free port. `free_port` only finds a port that was free a moment ago: another
    /// test's server (often an S3 server, which starts faster) may take it first, so a start that
    /// loses its port is retried on another.
    fn spawn_on_free_port(&mut self) {
        for _ in 0..5 {
            match self.try_spawn(free_port()) {
                Ok(()) => return,
                Err(log) => eprintln!("berth lost its port to another process; retrying:\n{log}"),
            }
        }
        panic!(
            "berth could not get a free port in 5 attempts:\n{}",
            self.log()
        );
    }

    fn spawn(&mut self, port: u16) {
        if let Err(log) = self.try_spawn(port) {
            panic!("berth could not listen on port {port}:\n{log}");
        }
    }

    /// Starts berth on `port` and waits until it answers; `Err` (with the log) if the port was
    /// taken.
    fn try_spawn(&mut self, port: u16) -> Result<(), String> {
        self.addr = format!("127.0.0.1:{port}");
        self.base = format!("http://{}", self.addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let mut cmd = Command::new(berth_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "berth=debug,info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.apply_env(&mut cmd);
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask(2) is async-signal-safe and touches no memory.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn berth"));
        self.wait_ready()
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_file_name("berth.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until this berth process answers `GET /healthz` with `ok` (a bare TCP connect could
    /// reach another process that took the port). `Err` with the log if berth exited because the
    /// address was in use.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = self.log();
                if log.to_lowercase().contains("address already in use") {
                    return Err(log);
                }
                panic!("berth exited early with {status}:\n{log}");
            }
            let tls = self.extra_args.iter().any(|a| a == "--tls-cert");
            if tls {
                // No TLS client here: once berth says it is binding and is still alive a moment
                // later (a lost port makes it exit at once), its listener is the one answering.
                if self.log().contains("berth listening") {
                    std::thread::sleep(Duration::from_millis(200));
                    if self.child.as_mut().unwrap().try_wait().unwrap().is_none()
                        && std::net::TcpStream::connect(&self.addr).is_ok()
                    {
                        return Ok(());
                    }
                }
            } else if healthz_ok(&self.addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "berth did not answer on {} in 30 s:\n{}",
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process with SIGKILL (no graceful shutdown), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process gracefully (SIGTERM) and waits until it has exited; [`TestServer::restart`]
    /// starts it again.
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signals our own child process, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "berth exited with {status}:\n{}",
                    self.log()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth did not stop within 30 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets (or with `None` removes) an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.extra_env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.extra_env.push((key.to_owned(), v.to_owned()));
        }
    }

    /// Waits until the server log contains `needle`, failing after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                panic!("server log never showed {needle:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        self.spawn(port);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the object with storage key `key` (such as `blobs/sha256/ab/ab...`) lives on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        match &self.backends {
            Some(b) => b.s3_dir.join(&b.bucket).join(key),
            None => self.data_dir.join("storage").join(key),
        }
    }

    /// A `berth` command (such as `fsck`) configured like this server.
    pub fn cli(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg(subcommand)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args);
        self.apply_env(&mut cmd);
        cmd
    }

    /// A `berth` command with nested subcommands (such as `gc run`) configured like this server.
    pub fn cli_path(&self, subcommands: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.args(subcommands)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args);
        self.apply_env(&mut cmd);
        cmd
    }

    /// The PostgreSQL database and S3 server of the `pg-s3` stack.
    pub fn backends(&self) -> Option<&Backends> {
        self.backends.as_ref()
    }

    /// The URL of this server's metadata database.
    pub fn database_url(&self) -> String {
        match &self.backends {
            Some(b) => b.database_url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("berth.db").display()
            ),
        }
    }

    /// The file of keys that encrypt this server's stored secrets: the shared one on the pg-s3
    /// stack, the one Berth generated into its data dir on SQLite.
    pub fn secrets_key_file(&self) -> PathBuf {
        match &self.backends {
            Some(b) => b.secrets_key_file.clone(),
            None => self.data_dir.join(berth::secrets::DEFAULT_KEY_FILE),
        }
    }

    /// This server's metadata database, opened as the server opens it (with its secrets key),
    /// for tests that read or write rows directly.
    pub async fn meta(&self) -> berth::meta::Meta {
        let mut meta = berth::meta::Meta::connect(&self.database_url(), 2, Duration::from_secs(10))
            .await
            .expect("open the server's database");
        let keyring = berth::secrets::Keyring::load(&self.secrets_key_file())
            .expect("the server's secrets key file");
        meta.set_secrets(std::sync::Arc::new(keyring));
        meta
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        self.backends.take();
    }
}

// ------------------------------------------------------------------------------------------------
// Scale-out and fault tests: several replicas sharing one pg-s3 stack
// ------------------------------------------------------------------------------------------------

/// Starts s3s-fs over `dir` on exactly `port` (e.g. to bring a killed one back) and waits until it
/// listens.
pub fn start_s3_on(dir: &Path, port: u16) -> Child {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs (run tests/install-clients.sh)");
        loop {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return child;
            }
            if child.try_wait().unwrap().is_some() {
                // Most likely the port is still held by the previous process: try again.
                break;
            }
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(Instant::now() < deadline, "s3s-fs could not bind {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Backends {
    /// The loopback port the S3 server listens on.
    pub fn s3_port(&self) -> u16 {
        self.s3_endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("S3 endpoint ends in a port")
    }
}

impl TestServer {
    /// Starts Berth on the `pg-s3` stack whatever `BERTH_TEST_STACK` says (scale-out and fault
    /// tests need a shared database and bucket).
    pub fn start_on_pg_s3(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(true, args, env, true, None)
    }

    /// Starts Berth on embedded SQLite and the filesystem whatever `BERTH_TEST_STACK` says
    /// (tests of filesystem-only behaviour).
    pub fn start_on_sqlite_fs(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(false, args, env, true, None)
    }

    /// Starts another Berth process sharing this server's PostgreSQL database and S3 bucket,
    /// with the same extra args and env (only meaningful on the `pg-s3` stack). The replica has
    /// its own data dir and log; drop it before this server.
    pub fn start_replica(&self) -> TestServer {
        self.start_replica_with(&[], &[])
    }

    /// Like [`TestServer::start_replica`], with more args and env (these win over this
    /// server's, e.g. another `BERTH_DATABASE_URL` to go through a proxy).
    pub fn start_replica_with(&self, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let backends = self
            .backends
            .as_ref()
            .expect("replicas need the pg-s3 stack (TestServer::start_on_pg_s3)");
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let mut extra_env = backends.env();
        extra_env.extend(self.extra_env.iter().cloned());
        extra_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut extra_args = self.extra_args.clone();
        extra_args.extend(args.iter().map(|s| s.to_string()));
        let mut replica = TestServer {
            addr: String::new(),
            base: String::new(),
            data_dir,
            child: None,
            backends: None,
            _tmp: Some(tmp),
            extra_args,
            extra_env,
            default_admin: self.default_admin,
            umask: self.umask,
        };
        replica.spawn_on_free_port();
        replica
    }

    /// The directory the S3 server serves (`<dir>/<bucket>/<key>` are the objects).
    pub fn s3_dir(&self) -> PathBuf {
        let b = self.backends.as_ref().expect("no S3 server on this stack");
        b.s3_dir.clone()
    }

    /// The bucket's directory inside [`TestServer::s3_dir`].
    pub fn bucket_dir(&self) -> PathBuf {
        let b = self.backends.as_ref().expect("no S3 server on this stack");
        self.s3_dir().join(&b.bucket)
    }

    /// Kills this server's S3 server (SIGKILL); [`TestServer::restart_s3`] brings it back.
    pub fn kill_s3(&mut self) {
        let b = self.backends.as_mut().expect("no S3 server on this stack");
        let _ = b.s3.kill();
        let _ = b.s3.wait();
    }

    /// Starts this server's S3 server again, on the same port and directory.
    pub fn restart_s3(&mut self) {
        let dir = self.s3_dir();
        let b = self.backends.as_mut().expect("no S3 server on this stack");
        let _ = b.s3.kill();
        let _ = b.s3.wait();
        b.s3 = start_s3_on(&dir, b.s3_port());
    }
}

/// The Python virtualenv `tests/install-clients.sh` fills (boto3, the AWS CLI, Trivy).
pub fn venv() -> PathBuf {
    std::env::var_os("BERTH_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/berth-venv")
        })
}

/// The AWS CLI (from the test venv) against `endpoint`, signing with `key`/`secret` and
/// nothing of the user's own AWS configuration; add the subcommand's arguments.
pub fn aws_cli(endpoint: &str, key: &str, secret: &str) -> std::process::Command {
    let mut aws = std::process::Command::new(venv().join("bin/aws"));
    aws.args(["--endpoint-url", endpoint]);
    signing_as(&mut aws, key, secret);
    aws
}

/// Makes an AWS SDK or CLI process sign with `key`/`secret` and read nothing of the user's own
/// AWS configuration.
fn signing_as(cmd: &mut std::process::Command, key: &str, secret: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("NO_PROXY", "127.0.0.1,localhost");
}

/// Runs one scenario of `tests/fixtures/ecr_boto3.py` against `server`, signing with
/// `key`/`secret` and nothing of the user's own AWS configuration; panics with its output and
/// the server's log on failure.
pub fn boto3_scenario(
    server: &TestServer,
    scenario: &str,
    args: &serde_json::Value,
    key: &str,
    secret: &str,
) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecr_boto3.py");
    let py = venv().join("bin/python");
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(script)
        .arg(scenario)
        .arg(&server.base)
        .arg(args.to_string());
    signing_as(&mut cmd, key, secret);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {}: {e} (run tests/install-clients.sh to install boto3)",
                py.display()
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "boto3 scenario {scenario} failed ({}):\n{stdout}\n{}\n--- server log (tail) ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        lines[lines.len().saturating_sub(60)..].join("\n")
    );
}
