//! Secrets at rest, attacked through the doors a local user or a stolen copy of the database
//! opens: the data dir and the database files are private whatever the umask (and the readable
//! ones an older Berth made are tightened at start), a dump of the database holds no access-key
//! secret and no token signing key, plaintext rows an older Berth wrote are encrypted at start
//! and keep working, the secrets key rotates with `berth secrets rotate`, and PostgreSQL without
//! a shared key file is refused. Runs on both stacks (`BERTH_TEST_STACK=sqlite-fs|pg-s3`).

use crate::support::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use berth::auth::sigv4::{sign, SigV4Request, SigningCredentials};
use serde_json::{json, Value};

use common::TestServer;

const ADMIN_KEY: &str = "AKIASECRETSTESTADMIN";
const ADMIN_SECRET: &str = "secrets/test+admin+secret+0123456789abcd";

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_sqlite(server: &TestServer) -> bool {
    server.backends().is_none()
}

/// The admin's password: generated into the data dir, or the test suite's.
fn admin_password(server: &TestServer) -> String {
    std::fs::read_to_string(server.data_dir().join(berth::access::ADMIN_PASSWORD_FILE))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|_| common::ADMIN_PASSWORD.to_owned())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Creates an access key for the admin through the admin API; returns its id and secret.
async fn create_access_key(server: &TestServer) -> (String, String) {
    let resp = http()
        .post(server.url("/api/v1/users/admin/access-keys"))
        .basic_auth("admin", Some(admin_password(server)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let key: Value = resp.json().await.unwrap();
    (
        key["accessKeyId"].as_str().unwrap().to_owned(),
        key["secretAccessKey"].as_str().unwrap().to_owned(),
    )
}

/// DescribeRegistry through the ECR API, signed with SigV4 as botocore signs it; the status.
async fn ecr_describe_registry(server: &TestServer, key: &str, secret: &str) -> u16 {
    let body = b"{}";
    let headers = vec![
        ("host".to_owned(), server.addr.clone()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "AmazonEC2ContainerRegistry_V20150921.DescribeRegistry".to_owned(),
        ),
    ];
    let signature = sign(
        &SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        },
        &SigningCredentials {
            access_key_id: key,
            secret_access_key: secret,
            region: "us-east-1",
            service: "ecr",
        },
        chrono::Utc::now(),
    );
    let mut request = http()
        .post(server.url("/"))
        .body(body.to_vec())
        .header("x-amz-date", signature.amz_date)
        .header("authorization", signature.authorization);
    for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
        request = request.header(name.as_str(), value.as_str());
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        status != 200 || text.contains("000000000000"),
        "DescribeRegistry: {text}"
    );
    status
}

/// A registry token for the admin from `/token`, and the key id in its header.
async fn admin_token(server: &TestServer) -> (String, String) {
    let resp = http()
        .get(server.url("/token?service=berth&scope=registry:catalog:*"))
        .basic_auth("admin", Some(admin_password(server)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let kid = serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, kid)
}

/// Whether the token opens `/v2/` (its signature verifies on this server).
async fn token_works(server: &TestServer, token: &str) -> bool {
    http()
        .get(server.url("/v2/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

/// Everything a stolen copy of the database holds: the SQLite files byte for byte (free space
/// and the write-ahead log included), or a `pg_dump` of the PostgreSQL database.
fn dump(server: &TestServer) -> Vec<u8> {
    match server.backends() {
        None => {
            let mut bytes = Vec::new();
            for name in ["berth.db", "berth.db-wal", "berth.db-journal"] {
                if let Ok(b) = std::fs::read(server.data_dir().join(name)) {
                    bytes.extend_from_slice(&b);
                }
            }
            bytes
        }
        Some(b) => {
            let out = Command::new("pg_dump")
                .arg("--dbname")
                .arg(&b.database_url)
                .output()
                .expect("run pg_dump (postgresql-client)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

fn holds(dump: &[u8], needle: &str) -> bool {
    dump.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The stored text of every access-key secret and signing key, read with plain SQL.
async fn stored_secrets(server: &TestServer) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&server.database_url())
        .await
        .unwrap();
    let mut stored = Vec::new();
    for sql in [
        "SELECT secret FROM access_keys",
        "SELECT pem FROM signing_keys",
    ] {
        for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
            stored.push(sqlx::Row::get::<String, _>(&row, 0));
        }
    }
    pool.close().await;
    stored
}

async fn execute(server: &TestServer, sql: &str, binds: &[&str], id: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&server.database_url())
        .await
        .unwrap();
    let mut query = sqlx::query(sql).bind(id);
    for b in binds {
        query = query.bind(*b);
    }
    query
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

fn key_id(key_line: &str) -> String {
    berth::secrets::Keyring::parse(key_line)
        .unwrap()
        .current_id()
        .to_owned()
}

/// The signing key PEMs the server holds, decrypted with its key.
async fn signing_pems(server: &TestServer) -> Vec<String> {
    let meta = server.meta().await;
    let rows = meta
        .identity()
        .signing_keys(berth::meta::now_millis())
        .await
        .unwrap();
    meta.close().await;
    rows.into_iter().map(|r| r.pem).collect()
}

/// The base64 body of a PEM (what would give the key away), line by line.
fn pem_body(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_whatever_the_umask_and_older_ones_are_tightened() {
    let mut server = TestServer::start_with_umask(0o022, &[], &[]);
    let data = server.data_dir().to_path_buf();
    // A write, so that SQLite has used its write-ahead log.
    create_access_key(&server).await;
    let mut private = vec![(data.clone(), 0o700)];
    private.push((data.join(berth::access::ADMIN_PASSWORD_FILE), 0o600));
    if is_sqlite(&server) {
        for name in ["berth.db", "berth.db-wal", "berth.db-shm", "secrets.key"] {
            private.push((data.join(name), 0o600));
        }
    } else {
        assert!(
            !data.join("secrets.key").exists(),
            "on PostgreSQL the key is the configured, shared one"
        );
    }
    for (path, want) in &private {
        assert_eq!(
            format!("{:o}", mode(path)),
            format!("{want:o}"),
            "{}",
            path.display()
        );
    }

    // What an older Berth left under umask 022: readable by every local user.
    server.kill();
    for (path, _) in &private {
        set_mode(path, if path.is_dir() { 0o755 } else { 0o644 });
    }
    server.restart();
    create_access_key(&server).await;
    for (path, want) in &private {
        assert_eq!(
            format!("{:o}", mode(path)),
            format!("{want:o}"),
            "tightened: {}",
            path.display()
        );
    }
    assert!(server.log().contains("made private"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_gives_no_secret_away() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ],
    );
    let (key, secret) = create_access_key(&server).await;
    assert_eq!(ecr_describe_registry(&server, &key, &secret).await, 200);
    assert_eq!(
        ecr_describe_registry(&server, ADMIN_KEY, ADMIN_SECRET).await,
        200
    );
    let (token, _) = admin_token(&server).await;
    assert!(token_works(&server, &token).await);
    let pems = signing_pems(&server).await;
    assert!(!pems.is_empty());

    let dump = dump(&server);
    assert!(
        holds(&dump, &key),
        "the dump is a real one: it names the key"
    );
    for secret in [&secret, ADMIN_SECRET] {
        assert!(!holds(&dump, secret), "the dump holds an access-key secret");
    }
    assert!(!holds(&dump, "PRIVATE KEY"));
    for pem in &pems {
        for line in pem_body(pem) {
            assert!(!holds(&dump, line), "the dump holds a token signing key");
        }
    }
    for stored in stored_secrets(&server).await {
        assert!(stored.starts_with("enc:v1:"), "{stored}");
    }
    assert!(!server.log().contains(&secret) && !server.log().contains(ADMIN_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_rows_of_an_older_berth_are_encrypted_at_start_and_keep_working() {
    const OLD_KEY: &str = "AKIAOLDBERTHPLAIN001";
    const OLD_SECRET: &str = "older/berth+plaintext+secret+0123456789";
    let mut server = TestServer::start();
    let meta = server.meta().await;
    let admin = meta
        .identity()
        .principal("user", "admin")
        .await
        .unwrap()
        .unwrap();
    meta.close().await;
    // Rows as a Berth before encryption at rest wrote them, newest signing key last.
    server.kill();
    let old_signing = berth::auth::token::SigningKey::generate();
    let old_pem = old_signing.to_pkcs8_pem();
    let now = berth::meta::now_millis().to_string();
    execute(
        &server,
        "INSERT INTO access_keys (key_id, principal_id, secret, created_at) \
         VALUES ($2, $1, $3, 0)",
        &[OLD_KEY, OLD_SECRET],
        admin.id,
    )
    .await;
    execute(
        &server,
        "INSERT INTO signing_keys (kid, pem, created_at) VALUES ($2, $3, $1 + 1)",
        &[old_signing.kid(), &old_pem],
        now.parse().unwrap(),
    )
    .await;
    assert!(
        holds(&dump(&server), OLD_SECRET),
        "the old rows are plaintext"
    );

    server.restart();
    assert!(
        server
            .log()
            .contains("encrypted the secrets an older Berth stored in plaintext"),
        "{}",
        server.log()
    );
    let dump = dump(&server);
    assert!(
        !holds(&dump, OLD_SECRET),
        "the dump still holds the old secret"
    );
    for line in pem_body(&old_pem) {
        assert!(
            !holds(&dump, line),
            "the dump still holds the old signing key"
        );
    }
    for stored in stored_secrets(&server).await {
        assert!(stored.starts_with("enc:v1:"), "{stored}");
    }

    // The old access key still signs ECR calls, from Rust and from boto3.
    assert_eq!(
        ecr_describe_registry(&server, OLD_KEY, OLD_SECRET).await,
        200
    );
    common::boto3_scenario(
        &server,
        "scan_setup",
        &json!({"repository": "upgraded/app"}),
        OLD_KEY,
        OLD_SECRET,
    );
    // The old signing key is still the active one, and its tokens verify.
    let (token, kid) = admin_token(&server).await;
    assert_eq!(kid, old_signing.kid());
    assert!(token_works(&server, &token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secrets_key_rotates_without_breaking_a_credential() {
    let mut server = TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_ACCESS_KEY_ID", ADMIN_KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", ADMIN_SECRET),
        ],
    );
    let (key1, secret1) = create_access_key(&server).await;
    let (old_token, _) = admin_token(&server).await;
    let file = server.secrets_key_file();
    let old_text = std::fs::read_to_string(&file).unwrap();
    let old_id = key_id(&old_text);
    assert!(stored_secrets(&server)
        .await
        .iter()
        .all(|s| s.starts_with(&format!("enc:v1:{old_id}:"))));

    // Step 1: the new key goes first in the file (the old one stays, to decrypt); restart.
    let new_line = berth::secrets::new_key_line();
    let new_id = key_id(&new_line);
    std::fs::write(&file, format!("{new_line}\n{old_text}")).unwrap();
    server.restart();
    assert_eq!(ecr_describe_registry(&server, &key1, &secret1).await, 200);
    assert!(token_works(&server, &old_token).await);
    let (key2, secret2) = create_access_key(&server).await;

    // Step 2: `berth secrets rotate` moves every stored secret to the new key, beside the
    // running server.
    let out = server
        .cli_path(&["secrets", "rotate"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("use key {new_id}")), "{stdout}");
    assert!(!stdout.contains(&format!("use key {old_id}")), "{stdout}");
    let stored = stored_secrets(&server).await;
    assert!(stored.len() >= 4, "{stored:?}");
    for s in &stored {
        assert!(s.starts_with(&format!("enc:v1:{new_id}:")), "{s}");
    }
    for (key, secret) in [
        (key1.as_str(), secret1.as_str()),
        (key2.as_str(), secret2.as_str()),
        (ADMIN_KEY, ADMIN_SECRET),
    ] {
        assert_eq!(ecr_describe_registry(&server, key, secret).await, 200);
    }

    // Step 3: the old key leaves the file; everything still works after a restart.
    std::fs::write(&file, format!("{new_line}\n")).unwrap();
    server.restart();
    for (key, secret) in [
        (key1.as_str(), secret1.as_str()),
        (key2.as_str(), secret2.as_str()),
        (ADMIN_KEY, ADMIN_SECRET),
    ] {
        assert_eq!(ecr_describe_registry(&server, key, secret).await, 200);
    }
    assert!(token_works(&server, &old_token).await);
    let (token, _) = admin_token(&server).await;
    assert!(token_works(&server, &token).await);
}

/// Runs `berth serve` with `env` until it exits (it must, within 30 s); its status and stderr.
fn serve_until_exit(data_dir: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(common::berth_bin());
    cmd.args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("BERTH_AUTH_SECRETS_KEY_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        stderr
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn postgresql_without_a_private_shared_key_file_refuses_to_start() {
    let (name, url) = common::fresh_database();
    let tmp = tempfile::tempdir().unwrap();
    let (status, stderr) = serve_until_exit(
        &tmp.path().join("data"),
        &[
            ("BERTH_DATABASE_URL", &url),
            ("BERTH_ADMIN_PASSWORD", "unused-admin-password"),
        ],
    );
    assert_eq!(status.code(), Some(2), "an invalid configuration: {stderr}");
    assert!(
        stderr
            .contains("secrets_key_file (BERTH_AUTH_SECRETS_KEY_FILE) is required with PostgreSQL")
            && stderr.contains("every replica must use the same key"),
        "{stderr}"
    );

    // A key file other users may read is refused too, saying how to fix it.
    let key_file = tmp.path().join("secrets.key");
    berth::secrets::write_new_key_file(&key_file).unwrap();
    set_mode(&key_file, 0o644);
    let (status, stderr) = serve_until_exit(
        &tmp.path().join("data"),
        &[
            ("BERTH_DATABASE_URL", &url),
            ("BERTH_ADMIN_PASSWORD", "unused-admin-password"),
            ("BERTH_AUTH_SECRETS_KEY_FILE", key_file.to_str().unwrap()),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("chmod 600"), "{stderr}");
    common::psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
