//! The bootstrap admin: a generated password written once to the data dir and never logged, or
//! the configured user and password, which win on every start; one admin however many replicas
//! start at once.

use crate::support::common;

use std::time::Duration;

use berth::auth::password::verify_secret;
use berth::meta::Meta;
use common::TestServer;

async fn meta_of(server: &TestServer) -> Meta {
    server.meta().await
}

fn password_file(server: &TestServer) -> std::path::PathBuf {
    server.data_dir().join(berth::access::ADMIN_PASSWORD_FILE)
}

#[tokio::test(flavor = "multi_thread")]
async fn test_servers_start_with_the_suites_admin_password() {
    // The harness's own promise: every test client authenticates as this admin.
    let server = TestServer::start();
    assert!(
        !password_file(&server).exists(),
        "nothing generated when the password is given"
    );
    assert!(!server.log().contains(common::ADMIN_PASSWORD));
    let meta = meta_of(&server).await;
    let admin = meta
        .identity()
        .principal("user", common::ADMIN_USER)
        .await
        .unwrap()
        .expect("admin user");
    assert!(verify_secret(
        common::ADMIN_PASSWORD,
        admin.password_hash.as_deref().unwrap()
    )
    .unwrap());
    meta.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_admin_password_is_written_once_and_never_logged() {
    // Not the test suite's default admin password: nothing configured, so Berth generates one.
    let mut server = TestServer::start_without_admin_password(&[], &[]);
    let file = password_file(&server);
    let password = std::fs::read_to_string(&file)
        .expect("password file")
        .trim()
        .to_owned();
    assert_eq!(password.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the owner may read the admin password");
    }
    assert!(
        !server.log().contains(&password),
        "the password must never be logged"
    );
    let meta = meta_of(&server).await;
    let admin = meta
        .identity()
        .principal("user", "admin")
        .await
        .unwrap()
        .expect("admin user");
    assert!(verify_secret(&password, admin.password_hash.as_deref().unwrap()).unwrap());
    let policy = meta
        .identity()
        .policy("principal", &admin.id.to_string())
        .await
        .unwrap();
    assert!(policy.expect("admin policy").contains("ecr:*"));

    server.restart();
    let again = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(again, password, "the file is written once");
    let admin = meta
        .identity()
        .principal("user", "admin")
        .await
        .unwrap()
        .unwrap();
    assert!(verify_secret(&password, admin.password_hash.as_deref().unwrap()).unwrap());
    assert!(!server.log().contains(&password));
    meta.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_admin_wins_on_every_start() {
    // The admin configured here replaces the test suite's default admin password.
    let mut server = TestServer::start_with(
        &[],
        &[
            ("BERTH_ADMIN_USER", "boss"),
            ("BERTH_ADMIN_PASSWORD", "first-password"),
            ("BERTH_ADMIN_ACCESS_KEY_ID", "AKIAEXAMPLE000000001"),
            (
                "BERTH_ADMIN_SECRET_ACCESS_KEY",
                "s3cr3t-example-secret-access-key-000000",
            ),
        ],
    );
    assert!(
        !password_file(&server).exists(),
        "nothing generated when a password is given"
    );
    assert!(!server.log().contains("first-password"));
    let meta = meta_of(&server).await;
    let boss = meta
        .identity()
        .principal("user", "boss")
        .await
        .unwrap()
        .expect("boss");
    assert!(verify_secret("first-password", boss.password_hash.as_deref().unwrap()).unwrap());
    let (key, secret) = meta
        .identity()
        .access_key("AKIAEXAMPLE000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.principal_id, boss.id);
    assert_eq!(secret, "s3cr3t-example-secret-access-key-000000");
    assert!(key.active);

    // A changed password replaces the old one and retires credentials issued for it.
    server.set_env("BERTH_ADMIN_PASSWORD", Some("second-password"));
    server.restart();
    let boss2 = meta
        .identity()
        .principal("user", "boss")
        .await
        .unwrap()
        .unwrap();
    assert!(verify_secret("second-password", boss2.password_hash.as_deref().unwrap()).unwrap());
    assert!(!verify_secret("first-password", boss2.password_hash.as_deref().unwrap()).unwrap());
    assert!(boss2.credential_version > boss.credential_version);

    // A renamed admin takes the administrator policy along.
    server.set_env("BERTH_ADMIN_USER", Some("chief"));
    server.restart();
    let chief = meta
        .identity()
        .principal("user", "chief")
        .await
        .unwrap()
        .expect("chief");
    assert!(meta
        .identity()
        .policy("principal", &chief.id.to_string())
        .await
        .unwrap()
        .is_some());
    assert!(meta
        .identity()
        .policy("principal", &boss.id.to_string())
        .await
        .unwrap()
        .is_none());
    meta.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_starts_create_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("berth.db").display()
    );
    let (pg_name, pg_url) = common::fresh_database();
    for url in [url, pg_url] {
        let meta = Meta::connect(&url, 8, Duration::from_secs(5))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let meta = meta.clone();
                tokio::spawn(async move {
                    meta.identity()
                        .create_principal_if_missing("user", "admin", &format!("hash-{i}"))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (row, was_created) = t.await.unwrap();
            created += usize::from(was_created);
            ids.insert(row.id);
        }
        assert_eq!(created, 1, "{url}: exactly one start creates the admin");
        assert_eq!(ids.len(), 1, "{url}: everyone sees the same admin");
        meta.close().await;
    }
    common::psql(&format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"));
}
