//! Conformance suite for the metadata store: one set of test bodies over `&Meta`, each run on a
//! fresh SQLite database (temp dir) and a fresh PostgreSQL database, so that both dialects show
//! the registry the same behaviour. The ordering tests also run on a PostgreSQL database whose
//! default collation is ICU `en-US`, where only an explicit byte-order collation gives OCI order.
//! One more test compares the two dialects' schemas (tables, columns, types, nullability,
//! indexes, foreign keys).

use crate::support::common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::time::Duration;

use berth::meta::{
    now_millis, BlobCommit, Dialect, ExpireOutcome, Finding, LeaseHolder, Meta, NewManifest,
    ScanOutcome, HEARTBEAT_TIMEOUT,
};
use berth::oci::{Algorithm, Digest, RepoName, Tag};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

// --- harness ----------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL with an ICU `en-US` database default collation (punctuation-insensitive order).
    PostgresIcu,
}

/// A fresh database with a connected `Meta`; a PostgreSQL database is dropped on drop.
struct Db {
    meta: Meta,
    /// The key file text `meta` encrypts stored secrets with.
    secrets_key: String,
    url: String,
    pg_name: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Db {
    async fn open(backend: Backend) -> Db {
        let (url, pg_name, tmp) = match backend {
            Backend::Sqlite => {
                let tmp = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/berth.db?mode=rwc", tmp.path().display());
                (url, None, Some(tmp))
            }
            Backend::Postgres => {
                let (name, url) = common::fresh_database();
                (url, Some(name), None)
            }
            Backend::PostgresIcu => {
                // Reuse fresh_database()'s unique name, but recreate it with an ICU collation.
                let (name, url) = common::fresh_database();
                common::psql(&format!("DROP DATABASE {name}"));
                common::psql(&format!(
                    "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu \
                     ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                ));
                (url, Some(name), None)
            }
        };
        // If connecting fails, the guard still drops the PostgreSQL database.
        let guard = DropDatabase(pg_name.clone());
        let mut meta = Meta::connect(&url, 8, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        std::mem::forget(guard);
        let secrets_key = berth::secrets::new_key_line();
        meta.set_secrets(keyring(&[&secrets_key]));
        Db {
            meta,
            secrets_key,
            url,
            pg_name,
            _tmp: tmp,
        }
    }

    /// A separate pool for raw SQL, never through `Meta` (reads, and rows as something other
    /// than this Berth would write them).
    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("raw pool")
    }

    async fn finish(self) {
        self.meta.close().await;
    }
}

impl Deref for Db {
    type Target = Meta;
    fn deref(&self) -> &Meta {
        &self.meta
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        drop(DropDatabase(self.pg_name.take()));
    }
}

struct DropDatabase(Option<String>);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        }
    }
}

/// For each body `name`, generates `BACKEND_MODULE::name`, a test running it on a fresh database.
macro_rules! conformance {
    ($module:ident, $backend:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::Db::open($backend).await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(sqlite, super::Backend::Sqlite;
    basics, repositories, ensure_repository_concurrent, tags_order_and_pagination, uploads,
    advance_upload_concurrent, stale_uploads, commit_blob, commit_blob_concurrent, link_unlink,
    stored_blob_sizes, manifests, manifest_bytes_exact, delete_manifest_cascades, referrers,
    migrate_idempotent, foreign_keys_enforced, all_uploads_and_blobs, forget_blob, leases,
    leases_concurrent, lease_holders_gone, tag_mutability_concurrent, lifecycle_expire,
    lifecycle_policy_preview_and_pulls, scan_jobs, scan_jobs_concurrent, creation_templates,
    secrets_at_rest, replication_tasks, event_deliveries, console_sessions,
    repository_summaries, image_sizes, lookups_by_repository_name);
conformance!(postgres, super::Backend::Postgres;
    basics, repositories, ensure_repository_concurrent, tags_order_and_pagination, uploads,
    advance_upload_concurrent, stale_uploads, commit_blob, commit_blob_concurrent, link_unlink,
    stored_blob_sizes, manifests, manifest_bytes_exact, delete_manifest_cascades, referrers,
    migrate_idempotent, foreign_keys_enforced, all_uploads_and_blobs, forget_blob, leases,
    leases_concurrent, lease_holders_gone, tag_mutability_concurrent, lifecycle_expire,
    lifecycle_policy_preview_and_pulls, scan_jobs, scan_jobs_concurrent, creation_templates,
    secrets_at_rest, replication_tasks, event_deliveries, console_sessions,
    repository_summaries, image_sizes, lookups_by_repository_name);
conformance!(postgres_icu, super::Backend::PostgresIcu;
    repositories, tags_order_and_pagination, forget_blob, creation_templates,
    repository_summaries);

// --- helpers ----------------------------------------------------------------------------------

/// Console sessions: stored by the token's hash with their principal, touched, ended one by one
/// and with their principal, pruned past their lifetime or idle timeout.
async fn console_sessions(db: &Db) {
    let identity = db.identity();
    let sessions = db.console_sessions();
    let user = identity
        .create_principal("user", "console-user", "$argon2id$fake", None)
        .await
        .unwrap()
        .unwrap();
    let robot = identity
        .create_principal("robot", "console-robot", "$argon2id$fake", None)
        .await
        .unwrap()
        .unwrap();
    let far = now_millis() + 3_600_000;
    sessions
        .create("a", user.id, user.credential_version, far)
        .await
        .unwrap();
    sessions
        .create("b", user.id, user.credential_version, far)
        .await
        .unwrap();
    sessions.create("r", robot.id, 1, far).await.unwrap();
    sessions
        .create("old", robot.id, 1, now_millis() - 1)
        .await
        .unwrap();
    assert!(sessions.get("missing").await.unwrap().is_none());
    let a = sessions.get("a").await.unwrap().expect("session a");
    assert_eq!(
        (
            a.principal_id,
            a.principal_kind.as_str(),
            a.principal_name.as_str()
        ),
        (user.id, "user", "console-user")
    );
    assert_eq!(a.credential_version, user.credential_version);
    assert_eq!(a.expires_at, far);
    assert_eq!(a.last_seen_at, a.created_at);
    let r = sessions.get("r").await.unwrap().expect("session r");
    assert_eq!(
        (r.principal_kind.as_str(), r.principal_name.as_str()),
        ("robot", "console-robot")
    );

    // Touching moves the idle clock forward only.
    sessions.touch("a", a.last_seen_at + 5_000).await.unwrap();
    sessions.touch("a", a.last_seen_at + 1_000).await.unwrap();
    assert_eq!(
        sessions.get("a").await.unwrap().unwrap().last_seen_at,
        a.last_seen_at + 5_000
    );

    // Signing out ends one session; the other stays.
    assert!(sessions.delete("a").await.unwrap());
    assert!(!sessions.delete("a").await.unwrap());
    assert!(sessions.get("a").await.unwrap().is_none());
    assert!(sessions.get("b").await.unwrap().is_some());

    // Pruning removes the expired session and, with an idle bound in the future, every idle one.
    assert_eq!(
        sessions.prune(0).await.unwrap(),
        1,
        "only the expired session"
    );
    assert!(sessions.get("old").await.unwrap().is_none());
    assert!(sessions.get("r").await.unwrap().is_some());

    // Deleting the principal deletes its sessions.
    assert!(identity.delete_principal(user.id).await.unwrap());
    assert!(sessions.get("b").await.unwrap().is_none());
    assert_eq!(
        sessions.prune(now_millis() + 1).await.unwrap(),
        1,
        "the robot's idle session"
    );
    assert!(sessions.get("r").await.unwrap().is_none());
}

/// A keyring from key-file lines (the first encrypts).
fn keyring(lines: &[&str]) -> std::sync::Arc<berth::secrets::Keyring> {
    std::sync::Arc::new(berth::secrets::Keyring::parse(&lines.join("\n")).unwrap())
}

/// An access key's principal and decrypted secret.
async fn principal_and_secret(db: &Meta, key_id: &str) -> Option<(i64, String)> {
    db.identity()
        .access_key(key_id)
        .await
        .unwrap()
        .map(|(row, secret)| (row.principal_id, secret))
}

/// Every stored access-key secret and signing key, as the database holds them.
async fn stored_secrets(raw: &AnyPool) -> Vec<String> {
    let mut stored = Vec::new();
    for sql in [
        "SELECT secret FROM access_keys ORDER BY key_id",
        "SELECT pem FROM signing_keys ORDER BY kid",
    ] {
        for row in sqlx::query(sql).fetch_all(raw).await.unwrap() {
            stored.push(row.get::<String, _>(0));
        }
    }
    stored
}

/// Access-key secrets and signing keys are stored encrypted and bound to their row; plaintext
/// rows an older Berth wrote are encrypted by the start-up pass (and refused until then); a
/// rotation moves every row to the new key; a key file that lacks a key in use is refused.
async fn secrets_at_rest(db: &Db) {
    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nnot-really-a-key\n-----END PRIVATE KEY-----\n";
    let raw = db.raw().await;
    let old_id = berth::secrets::Keyring::parse(&db.secrets_key)
        .unwrap()
        .current_id()
        .to_owned();
    let (p, _) = db
        .identity()
        .create_principal_if_missing("user", "keyholder", "hash")
        .await
        .unwrap();
    assert!(db
        .identity()
        .create_access_key(p.id, "AK1", "secret-one")
        .await
        .unwrap());
    db.identity()
        .put_access_key(p.id, "AK2", "secret-two")
        .await
        .unwrap();
    db.identity()
        .insert_signing_key("kid1", PEM, now_millis())
        .await
        .unwrap();
    let stored = stored_secrets(&raw).await;
    assert_eq!(stored.len(), 3);
    for value in &stored {
        assert!(value.starts_with(&format!("enc:v1:{old_id}:")), "{value}");
        assert!(!value.contains("secret-") && !value.contains("PRIVATE KEY"));
    }
    assert_eq!(
        principal_and_secret(db, "AK1").await,
        Some((p.id, "secret-one".into()))
    );
    let keys = db.identity().signing_keys(now_millis()).await.unwrap();
    assert_eq!((keys[0].kid.as_str(), keys[0].pem.as_str()), ("kid1", PEM));

    // A ciphertext copied into another row does not decrypt there.
    sqlx::query("UPDATE access_keys SET secret = (SELECT secret FROM access_keys WHERE key_id = 'AK1') WHERE key_id = 'AK2'")
        .execute(&raw)
        .await
        .unwrap();
    let err = db
        .identity()
        .access_key("AK2")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AK2") && !err.contains("secret-one"), "{err}");
    db.identity()
        .put_access_key(p.id, "AK2", "secret-two")
        .await
        .unwrap();

    // Rows as a Berth before encryption at rest wrote them: refused until the pass encrypts them.
    sqlx::query("INSERT INTO access_keys (key_id, principal_id, secret, created_at) VALUES ('AKOLD', $1, 'old-plain', 0)")
        .bind(p.id)
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("INSERT INTO signing_keys (kid, pem, created_at) VALUES ('kidold', $1, 0)")
        .bind(PEM)
        .execute(&raw)
        .await
        .unwrap();
    assert!(db.identity().access_key("AKOLD").await.is_err());
    assert_eq!(
        db.identity()
            .signing_keys(now_millis())
            .await
            .unwrap()
            .len(),
        1
    );
    let report = db.identity().seal_secrets(false).await.unwrap();
    assert_eq!((report.encrypted, report.reencrypted), (2, 0));
    assert_eq!(report.by_key, BTreeMap::from([(old_id.clone(), 5)]));
    let stored = stored_secrets(&raw).await;
    assert!(stored.iter().all(|v| v.starts_with("enc:v1:")
        && !v.contains("old-plain")
        && !v.contains("PRIVATE KEY")));
    assert_eq!(
        principal_and_secret(db, "AKOLD").await,
        Some((p.id, "old-plain".into()))
    );
    assert_eq!(
        db.identity()
            .signing_keys(now_millis())
            .await
            .unwrap()
            .len(),
        2
    );
    let again = db.identity().seal_secrets(false).await.unwrap();
    assert_eq!((again.encrypted, again.reencrypted), (0, 0), "idempotent");
    assert_eq!(stored_secrets(&raw).await, stored, "nothing rewritten");

    // Rotation: a new key first in the file; old rows still decrypt, then move to the new key.
    let new_key = berth::secrets::new_key_line();
    let mut rotated = db.meta.clone();
    rotated.set_secrets(keyring(&["# new", &new_key, &db.secrets_key]));
    let new_id = berth::secrets::Keyring::parse(&new_key)
        .unwrap()
        .current_id()
        .to_owned();
    assert_eq!(
        principal_and_secret(&rotated, "AK1").await,
        Some((p.id, "secret-one".into()))
    );
    let report = rotated.identity().seal_secrets(false).await.unwrap();
    assert_eq!(
        (report.encrypted, report.reencrypted),
        (0, 0),
        "start-up moves nothing"
    );
    let report = rotated.identity().seal_secrets(true).await.unwrap();
    assert_eq!((report.encrypted, report.reencrypted), (0, 5));
    assert_eq!(report.by_key, BTreeMap::from([(new_id.clone(), 5)]));
    assert!(stored_secrets(&raw)
        .await
        .iter()
        .all(|v| v.starts_with(&format!("enc:v1:{new_id}:"))));
    for (key, secret) in [
        ("AK1", "secret-one"),
        ("AK2", "secret-two"),
        ("AKOLD", "old-plain"),
    ] {
        assert_eq!(
            principal_and_secret(&rotated, key).await,
            Some((p.id, secret.into()))
        );
    }
    let mut only_new = db.meta.clone();
    only_new.set_secrets(keyring(&[&new_key]));
    assert_eq!(
        only_new
            .identity()
            .signing_keys(now_millis())
            .await
            .unwrap()
            .len(),
        2
    );

    // The old key alone no longer reads anything, and the start-up pass says why, naming the
    // rows and the missing key, never a secret; it changes nothing.
    assert!(db.identity().access_key("AK1").await.is_err());
    assert!(db
        .identity()
        .signing_keys(now_millis())
        .await
        .unwrap()
        .is_empty());
    let before = stored_secrets(&raw).await;
    let err = db
        .identity()
        .seal_secrets(false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&new_id) && err.contains("access key AK1") && err.contains("signing key kid1"),
        "{err}"
    );
    assert!(
        !err.contains("secret-") && !err.contains("PRIVATE"),
        "{err}"
    );
    assert_eq!(stored_secrets(&raw).await, before);
    raw.close().await;
}

/// Creation templates round-trip every field, list in byte order of prefix, and a repository
/// created with a template's lifecycle and repository policy has both from the start.
async fn creation_templates(db: &Db) {
    use berth::policy::templates::{Template, TemplateFields};
    let fields = |v: serde_json::Value| -> TemplateFields { serde_json::from_value(v).unwrap() };
    let full = Template::create(
        &fields(serde_json::json!({
            "prefix": "team/a", "appliedFor": ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"],
            "description": "d", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}],
            "resourceTags": [{"Key": "k", "Value": "v"}, {"Key": "a", "Value": ""}],
            "lifecyclePolicy": LIFECYCLE_POLICY, "repositoryPolicy": REPOSITORY_POLICY,
            "customRoleArn": "arn:aws:iam::123456789012:role/r",
            "imageScanningConfiguration": {"scanOnPush": false},
        })),
        1000,
    )
    .unwrap();
    assert!(db.templates().insert_template(&full).await.unwrap());
    assert!(
        !db.templates().insert_template(&full).await.unwrap(),
        "prefix taken"
    );
    assert_eq!(
        db.templates().template("team/a").await.unwrap().unwrap(),
        full
    );
    let minimal = |prefix: &str| {
        Template::create(
            &fields(serde_json::json!({"prefix": prefix, "appliedFor": ["REPLICATION"]})),
            1,
        )
        .unwrap()
    };
    for p in ["team-a", "team.a", "ROOT", "team"] {
        assert!(db.templates().insert_template(&minimal(p)).await.unwrap());
    }
    let all: Vec<String> = db
        .templates()
        .list_templates("", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.prefix)
        .collect();
    assert_eq!(all, ["ROOT", "team", "team-a", "team.a", "team/a"]);
    let page: Vec<String> = db
        .templates()
        .list_templates("team", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.prefix)
        .collect();
    assert_eq!(page, ["team-a", "team.a"]);
    let some = db
        .templates()
        .templates_with_prefixes(&["team/a".into(), "nope".into(), "ROOT".into()])
        .await
        .unwrap();
    assert_eq!(some.len(), 2);
    let mut changed = minimal("team");
    changed.scan_on_push = Some(true);
    changed.updated_at = 5;
    assert!(db.templates().replace_template(&changed).await.unwrap());
    assert!(!db
        .templates()
        .replace_template(&minimal("absent"))
        .await
        .unwrap());
    assert_eq!(
        db.templates().template("team").await.unwrap().unwrap(),
        changed
    );
    assert_eq!(
        db.templates().delete_template("team/a").await.unwrap(),
        Some(full)
    );
    assert_eq!(
        db.templates().delete_template("team/a").await.unwrap(),
        None
    );

    let name = repo("team/app");
    let settings = berth::meta::NewRepository {
        lifecycle_policy: Some(LIFECYCLE_POLICY.into()),
        repository_policy: Some(REPOSITORY_POLICY.into()),
        ..Default::default()
    };
    assert!(db
        .repositories()
        .create_repository_with(&name, &settings)
        .await
        .unwrap());
    let row = db
        .repositories()
        .repository_row(&name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.lifecycle()
            .lifecycle_policy(row.id)
            .await
            .unwrap()
            .unwrap()
            .text,
        LIFECYCLE_POLICY
    );
    assert_eq!(
        db.identity()
            .policy("repository", "team/app")
            .await
            .unwrap()
            .as_deref(),
        Some(REPOSITORY_POLICY)
    );
}

const LIFECYCLE_POLICY: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
const REPOSITORY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#;

/// Tag immutability in `put_manifest`: the setting round-trips, and of 16 concurrent puts of
/// different manifests to one protected tag exactly one wins (five rounds).
async fn tag_mutability_concurrent(db: &Db) {
    use berth::policy::{MutabilityMode, TagMutability};
    let name = repo("imm/app");
    let settings = berth::meta::NewRepository {
        tag_mutability: TagMutability::new(MutabilityMode::Immutable, vec![]).unwrap(),
        scan_on_push: true,
        resource_tags: vec![("team".into(), "a".into())],
        ..Default::default()
    };
    assert!(db
        .repositories()
        .create_repository_with(&name, &settings)
        .await
        .unwrap());
    assert!(
        !db.repositories()
            .create_repository_with(&name, &settings)
            .await
            .unwrap(),
        "a second create reports the repository exists"
    );
    let row = db
        .repositories()
        .repository_row(&name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.tag_mutability.mode, MutabilityMode::Immutable);
    assert!(
        row.scan_on_push,
        "created with scan on push, in the same transaction"
    );
    assert_eq!(
        db.resource_tags().repository_tags(row.id).await.unwrap(),
        vec![("team".to_owned(), "a".to_owned())]
    );
    for round in 0..5 {
        let t = tag(&format!("r{round}"));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (meta, t) = (db.meta.clone(), t.clone());
                let m = manifest(format!("{{\"round\":{round},\"i\":{i}}}").as_bytes());
                tokio::spawn(async move { meta.manifests().put_manifest(row.id, &m, &[t]).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => won += 1,
                Err(berth::error::Error::TagImmutable(message)) => {
                    assert!(message.contains("'imm/app' repository"), "{message}")
                }
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    db.repositories()
        .set_tag_mutability(row.id, &TagMutability::default())
        .await
        .unwrap();
    let row = db
        .repositories()
        .repository_row(&name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.tag_mutability, TagMutability::default());
    db.manifests()
        .put_manifest(row.id, &manifest(b"{\"moved\":1}"), &[tag("r0")])
        .await
        .unwrap();
}

/// Events: a push records its events in its transaction; handing over creates a delivery per
/// matched target once; the head of each repository is due alone, a retried head holds back its
/// repository only; dead letters redrive; counts and pruning see the same rows on both dialects.
async fn event_deliveries(db: &Db) {
    use berth::meta::{EventRuleRow, HandOver};
    let events = db.events();
    let r1 = db
        .repositories()
        .ensure_repository(&repo("ev/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("ev/two"))
        .await
        .unwrap();
    db.manifests()
        .put_manifest(r1, &manifest(b"{\"e\":1}"), &[tag("a"), tag("b")])
        .await
        .unwrap();
    db.manifests()
        .put_manifest(r2, &manifest(b"{\"e\":2}"), &[])
        .await
        .unwrap();
    // Moving tag a records the push and the move.
    db.manifests()
        .put_manifest(r1, &manifest(b"{\"e\":3}"), &[tag("a")])
        .await
        .unwrap();
    let recorded = events.undispatched(100).await.unwrap();
    let kinds: Vec<(&str, &str)> = recorded
        .iter()
        .map(|e| (e.kind.as_str(), e.repository.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ECR Image Action", "ev/one"),
            ("ECR Image Action", "ev/one"),
            ("ECR Image Action", "ev/two"),
            ("ECR Image Action", "ev/one"),
            ("Berth Tag Moved", "ev/one"),
        ]
    );
    assert_eq!(
        recorded[2].detail.get("image-tag"),
        None,
        "a push by digest has no tag"
    );
    assert!(recorded.iter().all(|e| e.event_id.len() == 36));

    // A rule, its targets sealed.
    let rule = EventRuleRow {
        name: "r".into(),
        description: String::new(),
        pattern: "{}".into(),
        targets: r#"[{"id":"t","type":"webhook","url":"http://x/"}]"#.into(),
        enabled: true,
        created_at: 0,
        updated_at: 0,
    };
    assert!(events.create_rule(&rule).await.unwrap());
    assert!(
        !events.create_rule(&rule).await.unwrap(),
        "the name is taken"
    );
    // Stored sealed, and `berth secrets rotate` carries it along.
    db.identity().seal_secrets(true).await.unwrap();
    assert_eq!(
        events.rule("r").await.unwrap().unwrap().targets,
        rule.targets
    );

    // Handed over once: a second hand-over of the same events creates nothing.
    let handed: Vec<HandOver> = recorded
        .iter()
        .map(|e| HandOver {
            event: e.id,
            repository: e.repository.clone(),
            targets: vec![("r".into(), "t".into())],
        })
        .collect();
    events.dispatch(&handed).await.unwrap();
    events.dispatch(&handed).await.unwrap();
    assert!(events.undispatched(100).await.unwrap().is_empty());
    let now = berth::meta::now_millis();
    let heads = events.due_heads("r", "t", now, 10).await.unwrap();
    let heads: Vec<(&str, i64)> = heads
        .iter()
        .map(|d| (d.event.repository.as_str(), d.event.id))
        .collect();
    assert_eq!(
        heads,
        [("ev/one", recorded[0].id), ("ev/two", recorded[2].id)]
    );

    // ev/one's head fails and waits: ev/one is held back, ev/two is not.
    let first = events.due_heads("r", "t", now, 10).await.unwrap();
    events
        .failed(first[0].id, "HTTP 503", Some(now + 60_000))
        .await
        .unwrap();
    events.delivered_many(&[first[1].id]).await.unwrap();
    assert!(events
        .due_heads("r", "t", now, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        events.next_attempt_at("r", "t").await.unwrap(),
        Some(now + 60_000)
    );
    let later = events.due_heads("r", "t", now + 60_000, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].attempts, 1);
    // Given up: a dead letter, and the next of ev/one is the head.
    events.failed(later[0].id, "HTTP 500", None).await.unwrap();
    let next = events.due_heads("r", "t", now + 60_000, 10).await.unwrap();
    assert_eq!(next[0].event.id, recorded[1].id);
    let dead = events.dead_letters("r", None, 0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(dead[0].event.id, recorded[0].id);
    let counts = events.delivery_counts(Some("r")).await.unwrap();
    assert_eq!(
        (counts[0].delivered, counts[0].pending, counts[0].dead),
        (1, 3, 1)
    );
    assert!(counts[0].oldest_pending_at.is_some());
    assert_eq!(
        events.redrive("r", Some("t"), &[dead[0].id]).await.unwrap(),
        1
    );
    assert_eq!(events.redrive("r", None, &[]).await.unwrap(), 0);
    let counts = events.delivery_counts(None).await.unwrap();
    assert_eq!((counts[0].pending, counts[0].dead), (4, 0));

    // The window: the oldest pending deliveries, whatever their repository.
    let window = events.pending_window("r", "t", 2).await.unwrap();
    assert_eq!(
        window.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        [recorded[0].id, recorded[1].id]
    );

    // Pruning keeps what is pending; once delivered, past the cutoff, events go.
    assert_eq!(
        events.prune(now + 3_600_000).await.unwrap(),
        1,
        "ev/two's delivered event"
    );
    loop {
        let due = events.due_heads("r", "t", i64::MAX, 10).await.unwrap();
        if due.is_empty() {
            break;
        }
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        events.delivered_many(&ids).await.unwrap();
    }
    assert_eq!(events.prune(now + 3_600_000).await.unwrap(), 4);
    assert!(events.outbox_events(0, 100).await.unwrap().is_empty());
    assert!(events.delivery_counts(None).await.unwrap().is_empty());

    // Events no rule matched are marked handed over, with no delivery.
    db.manifests()
        .put_manifest(r2, &manifest(b"{\"e\":4}"), &[tag("x")])
        .await
        .unwrap();
    let unmatched = events.undispatched(100).await.unwrap();
    assert_eq!(unmatched.len(), 1);
    let none: Vec<HandOver> = unmatched
        .iter()
        .map(|e| HandOver {
            event: e.id,
            repository: e.repository.clone(),
            targets: Vec::new(),
        })
        .collect();
    events.dispatch(&none).await.unwrap();
    assert!(events.undispatched(100).await.unwrap().is_empty());
    assert!(events.delivery_counts(None).await.unwrap().is_empty());

    // Replacing the rule without its target drops that target's deliveries; deleting it, all.
    assert!(!events.put_rule(&rule, &["other".to_owned()]).await.unwrap());
    assert!(events.delete_rule("r").await.unwrap());
    assert!(!events.delete_rule("r").await.unwrap());
}

/// Replication: tasks are written with the push (one per tag and destination, restarted by a
/// push of the same image), taken by one holder at a time, and end COMPLETE or FAILED; failed
/// ones start again when asked.
async fn replication_tasks(db: &Db) {
    use berth::policy::replication::ReplicationDestination;
    let store = db.replication();
    assert_eq!(store.configuration().await.unwrap(), None);
    store.put_configuration(r#"{"rules":[]}"#).await.unwrap();
    store.put_configuration(r#"{"rules":[1]}"#).await.unwrap();
    assert_eq!(
        store.configuration().await.unwrap().as_deref(),
        Some(r#"{"rules":[1]}"#)
    );

    let r = db
        .repositories()
        .ensure_repository(&repo("prod/app"))
        .await
        .unwrap();
    let to = |tag: &str, id: &str| {
        (
            tag.to_owned(),
            ReplicationDestination::registry(id, "eu-west-1"),
        )
    };
    let image = NewManifest {
        replicate_to: vec![
            to("v1", "111111111111"),
            to("v1", "222222222222"),
            to("latest", "111111111111"),
            to("latest", "222222222222"),
        ],
        ..manifest(b"{\"replicated\":1}")
    };
    let d = image.digest.to_string();
    db.manifests()
        .put_manifest(r, &image, &[tag("v1"), tag("latest")])
        .await
        .unwrap();
    let tasks = store.tasks_of_image("prod/app", &d).await.unwrap();
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    assert!(tasks.iter().all(|t| t.status == "IN_PROGRESS"));
    // A push without rules writes none; an untagged push one per destination, tag ''.
    db.manifests()
        .put_manifest(r, &manifest(b"{\"local\":1}"), &[tag("local")])
        .await
        .unwrap();
    let untagged = NewManifest {
        replicate_to: vec![to("", "111111111111")],
        ..manifest(b"{\"untagged\":1}")
    };
    db.manifests()
        .put_manifest(r, &untagged, &[])
        .await
        .unwrap();
    let u = store
        .tasks_of_image("prod/app", &untagged.digest.to_string())
        .await
        .unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].tag, "");
    assert_eq!(store.open_tasks(0, 100).await.unwrap().len(), 5);

    // Two live holders (their heartbeats are fresh) at once never take the same task.
    for holder in ["one", "two"] {
        db.leases()
            .heartbeat(&LeaseHolder::this_process(holder))
            .await
            .unwrap();
    }
    let until = now_millis() + 60_000;
    let (one, two) = tokio::join!(
        store.claim_due("one", until, 5),
        store.claim_due("two", until, 5)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.len() + two.len(), 5, "{one:?} {two:?}");
    let ids: BTreeSet<i64> = one.iter().chain(&two).map(|t| t.id).collect();
    assert_eq!(ids.len(), 5);
    assert!(store.claim_due("three", until, 5).await.unwrap().is_empty());

    // Outcomes: only the holder records one.
    let mut claimed: Vec<(&str, berth::meta::ReplicationTask)> = one
        .iter()
        .map(|t| ("one", t.clone()))
        .chain(two.iter().map(|t| ("two", t.clone())))
        .collect();
    // The first one handled below is a task of `image`, whichever holder took it.
    claimed.sort_by_key(|(_, t)| t.digest != d);
    let stranger = |holder: &str| if holder == "one" { "two" } else { "one" };
    let (holder, first) = &claimed[0];
    store.finish(first, stranger(holder), None).await.unwrap();
    assert_eq!(
        store.open_tasks(0, 100).await.unwrap().len(),
        5,
        "not the holder"
    );
    store.finish(first, holder, None).await.unwrap();
    assert_eq!(store.open_tasks(0, 100).await.unwrap().len(), 4);
    let all = &claimed[1..];
    store
        .finish(&all[0].1, all[0].0, Some(("REPLICATION_DENIED", "no")))
        .await
        .unwrap();
    store
        .retry_later(all[1].1.id, all[1].0, now_millis() + 3_600_000, "down")
        .await
        .unwrap();
    let open = store.open_tasks(0, 100).await.unwrap();
    let failed = open.iter().find(|t| t.id == all[0].1.id).unwrap();
    assert_eq!(failed.status, "FAILED");
    assert_eq!(failed.failure_code.as_deref(), Some("REPLICATION_DENIED"));
    assert_eq!(failed.attempts, 1);
    let later = open.iter().find(|t| t.id == all[1].1.id).unwrap();
    assert_eq!((later.status.as_str(), later.attempts), ("IN_PROGRESS", 1));
    assert_eq!(later.failure_reason.as_deref(), Some("down"));
    // Not due yet, and the others are still leased.
    assert!(store.claim_due("three", until, 5).await.unwrap().is_empty());
    // Paging by id.
    let page = store.open_tasks(0, 2).await.unwrap();
    let rest = store.open_tasks(page[1].id, 100).await.unwrap();
    assert_eq!(page.len() + rest.len(), open.len());

    // A holder whose heartbeat stopped (it died, or stopped) loses its leases at once.
    let dead = store.claim_due("dead", until, 5).await.unwrap();
    assert!(dead.is_empty());
    db.manifests()
        .put_manifest(
            r,
            &NewManifest {
                replicate_to: vec![to("", "111111111111")],
                ..manifest(b"{\"orphaned\":1}")
            },
            &[],
        )
        .await
        .unwrap();
    let orphaned = store.claim_due("dead", until, 5).await.unwrap();
    assert_eq!(orphaned.len(), 1);
    let taken = store.claim_due("three", until, 5).await.unwrap();
    assert_eq!(
        taken.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![orphaned[0].id],
        "a task of a holder with no heartbeat is free"
    );
    store.finish(&taken[0], "three", None).await.unwrap();

    // Failed tasks start again, by repository and image when named.
    tick().await;
    let retried_at = now_millis();
    assert_eq!(
        store.retry_failed(Some("other/app"), None).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .retry_failed(Some("prod/app"), Some(&failed.digest))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.retry_failed(None, None).await.unwrap(), 0);
    let again = store.claim_due("three", until, 5).await.unwrap();
    assert_eq!(
        again.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![failed.id]
    );
    assert!(
        again[0].created_at >= retried_at,
        "a retried task gets a fresh retry window"
    );

    // Pushing the same image again restarts its finished tasks.
    let again = NewManifest {
        replicate_to: vec![to("v1", "111111111111"), to("v1", "222222222222")],
        ..manifest(b"{\"replicated\":1}")
    };
    db.manifests()
        .put_manifest(r, &again, &[tag("v1")])
        .await
        .unwrap();
    let restarted = store.tasks_of_image("prod/app", &d).await.unwrap();
    assert!(restarted.iter().any(|t| t.id == first.id));
    assert!(restarted
        .iter()
        .filter(|t| t.tag == "v1")
        .all(|t| t.status == "IN_PROGRESS" && t.attempts == 0));
}

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).unwrap()
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

fn digest(seed: &str) -> Digest {
    Digest::of(Algorithm::Sha256, seed.as_bytes())
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest(content: &[u8]) -> NewManifest {
    NewManifest {
        digest: Digest::of(Algorithm::Sha256, content),
        media_type: OCI_MANIFEST.into(),
        artifact_type: None,
        content: content.to_vec(),
        subject: None,
        annotations: None,
        depth: 0,
        references: vec![],
        required_blobs: vec![],
        required_manifests: vec![],
        replicate_to: vec![],
        cache_fill: None,
    }
}

fn referrer(content: &str, subject: &Digest, artifact_type: Option<&str>) -> NewManifest {
    NewManifest {
        artifact_type: artifact_type.map(str::to_owned),
        subject: Some(subject.clone()),
        annotations: Some(format!(r#"{{"org.example.name":"{content}"}}"#)),
        ..manifest(content.as_bytes())
    }
}

/// Every page of `list` with page size `n`, asserting no page is longer than `n`.
async fn paginate<F, Fut>(n: i64, list: F) -> Vec<String>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut all = Vec::new();
    let mut last = None;
    loop {
        let page = list(last.clone()).await;
        assert!(page.len() as i64 <= n, "page longer than {n}: {page:?}");
        if page.is_empty() {
            return all;
        }
        last = page.last().cloned();
        all.extend(page);
        assert!(all.len() < 1000, "pagination does not end");
    }
}

async fn count(raw: &AnyPool, sql: &str, id: i64) -> i64 {
    sqlx::query(sql)
        .bind(id)
        .fetch_one(raw)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get::<i64, _>(0)
        .unwrap()
}

async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

// --- bodies -----------------------------------------------------------------------------------

async fn basics(db: &Db) {
    let expected = if db.url.starts_with("sqlite:") {
        Dialect::Sqlite
    } else {
        Dialect::Postgres
    };
    assert_eq!(db.dialect(), expected);
    db.ping().await.unwrap();
    // A clone shares the pools: closing one closes both.
    let clone = db.meta.clone();
    clone.ping().await.unwrap();
    clone.close().await;
    assert!(db.ping().await.is_err(), "ping after close must fail");
}

async fn repositories(db: &Db) {
    assert_eq!(
        db.repositories().repository_id(&repo("a")).await.unwrap(),
        None
    );
    assert_eq!(
        db.repositories()
            .list_repositories(None, 100)
            .await
            .unwrap(),
        Vec::<String>::new()
    );

    let id = db
        .repositories()
        .ensure_repository(&repo("a"))
        .await
        .unwrap();
    assert_eq!(
        db.repositories()
            .ensure_repository(&repo("a"))
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        db.repositories().repository_id(&repo("a")).await.unwrap(),
        Some(id)
    );

    // Inserted out of order; listed in byte order ('-' < '.' < '/' < '0' < '_' < 'b').
    let names = [
        "ab", "a_b", "b/c", "a.b", "a/b/c", "a-b", "a0", "a/b", "a", "a__b", "a--b",
    ];
    let mut ids = BTreeSet::new();
    for n in names {
        ids.insert(db.repositories().ensure_repository(&repo(n)).await.unwrap());
    }
    assert_eq!(ids.len(), names.len(), "each name has its own id");
    let expected = [
        "a", "a--b", "a-b", "a.b", "a/b", "a/b/c", "a0", "a__b", "a_b", "ab", "b/c",
    ];
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable(); // Rust's str order is byte order
    assert_eq!(sorted, expected);
    assert_eq!(
        db.repositories()
            .list_repositories(None, 100)
            .await
            .unwrap(),
        expected
    );

    for n in 1..=4 {
        let all = paginate(n, |last| async move {
            db.repositories()
                .list_repositories(last.as_deref(), n)
                .await
                .unwrap()
        })
        .await;
        assert_eq!(all, expected, "page size {n}");
    }
    assert_eq!(
        db.repositories().list_repositories(None, 2).await.unwrap(),
        ["a", "a--b"]
    );
    // `last` need not exist; results are strictly after it.
    assert_eq!(
        db.repositories()
            .list_repositories(Some("a.c"), 3)
            .await
            .unwrap(),
        ["a/b", "a/b/c", "a0"]
    );
    assert_eq!(
        db.repositories()
            .list_repositories(Some("a/b"), 1)
            .await
            .unwrap(),
        ["a/b/c"]
    );
    assert!(db
        .repositories()
        .list_repositories(Some("b/c"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .repositories()
        .list_repositories(None, 0)
        .await
        .unwrap()
        .is_empty());
}

async fn ensure_repository_concurrent(db: &Db) {
    let mut tasks = Vec::new();
    for i in 0..48 {
        let meta = db.meta.clone();
        let name = if i % 2 == 0 { "race/one" } else { "race/two" };
        tasks.push(tokio::spawn(async move {
            (
                name,
                meta.repositories()
                    .ensure_repository(&repo(name))
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut ids: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for t in tasks {
        let (name, id) = t.await.unwrap();
        ids.entry(name).or_default().insert(id);
    }
    assert_eq!(ids["race/one"].len(), 1, "{ids:?}");
    assert_eq!(ids["race/two"].len(), 1, "{ids:?}");
    assert_ne!(ids["race/one"], ids["race/two"]);
    assert_eq!(
        db.repositories()
            .list_repositories(None, 100)
            .await
            .unwrap(),
        ["race/one", "race/two"]
    );
}

async fn tags_order_and_pagination(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("t"))
        .await
        .unwrap();
    let other = db
        .repositories()
        .ensure_repository(&repo("other"))
        .await
        .unwrap();
    let names = [
        "latest", "a_b", "Z", "ab", "a.b", "0", "a", "_x", "A", "a-b", "v1.10", "v1.9", "V2",
    ];
    let tags: Vec<Tag> = names.iter().map(|n| tag(n)).collect();
    db.manifests()
        .put_manifest(r, &manifest(b"{\"m\":1}"), &tags)
        .await
        .unwrap();
    let expected = [
        "0", "A", "V2", "Z", "_x", "a", "a-b", "a.b", "a_b", "ab", "latest", "v1.10", "v1.9",
    ];
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(
        db.manifests().list_tags(r, None, 100).await.unwrap(),
        expected
    );
    for n in 1..=5 {
        let all = paginate(n, |last| async move {
            db.manifests()
                .list_tags(r, last.as_deref(), n)
                .await
                .unwrap()
        })
        .await;
        assert_eq!(all, expected, "page size {n}");
    }
    // Uppercase sorts before lowercase; `last` need not be a tag.
    assert_eq!(
        db.manifests().list_tags(r, Some("B"), 2).await.unwrap(),
        ["V2", "Z"]
    );
    assert_eq!(
        db.manifests().list_tags(r, Some("Z"), 2).await.unwrap(),
        ["_x", "a"]
    );
    assert_eq!(
        db.manifests().list_tags(r, Some("a"), 1).await.unwrap(),
        ["a-b"]
    );
    assert!(db
        .manifests()
        .list_tags(r, Some("v1.9"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .manifests()
        .list_tags(r, None, 0)
        .await
        .unwrap()
        .is_empty());
    // Tags are per repository.
    assert!(db
        .manifests()
        .list_tags(other, None, 10)
        .await
        .unwrap()
        .is_empty());
    db.manifests()
        .put_manifest(other, &manifest(b"{\"m\":2}"), &[tag("latest")])
        .await
        .unwrap();
    assert_eq!(
        db.manifests().list_tags(other, None, 10).await.unwrap(),
        ["latest"]
    );
    assert_eq!(
        db.manifests().list_tags(r, None, 100).await.unwrap(),
        expected
    );
}

async fn uploads(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("up/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("up/two"))
        .await
        .unwrap();
    let before = now_millis();
    db.uploads()
        .create_upload("u1", r1, "sha256", "{}")
        .await
        .unwrap();
    let after = now_millis();

    let u = db
        .uploads()
        .upload("u1", r1)
        .await
        .unwrap()
        .expect("upload in its repo");
    assert_eq!(u.id, "u1");
    assert_eq!(u.repository_id, r1);
    assert_eq!(u.algorithm, "sha256");
    assert_eq!(u.size, 0);
    assert_eq!(u.staging, "{}");
    assert_eq!(u.hash_state, None);
    assert_eq!(u.created_at, u.updated_at);
    assert!((before..=after).contains(&u.created_at), "{u:?}");

    // Only visible within its repository.
    assert!(db.uploads().upload("u1", r2).await.unwrap().is_none());
    assert!(db.uploads().upload("nope", r1).await.unwrap().is_none());
    // Ids are unique across repositories.
    assert!(db
        .uploads()
        .create_upload("u1", r2, "sha256", "{}")
        .await
        .is_err());

    // Compare-and-set on size.
    let state: &[u8] = &[0x00, 0x9f, 0xff, 0x80, b'\n', 0x01];
    tick().await;
    assert!(db
        .uploads()
        .advance_upload("u1", 0, 1000, r#"{"parts":["p1"]}"#, state)
        .await
        .unwrap());
    let u = db.uploads().upload("u1", r1).await.unwrap().unwrap();
    assert_eq!(u.size, 1000);
    assert_eq!(u.staging, r#"{"parts":["p1"]}"#);
    assert_eq!(u.hash_state.as_deref(), Some(state));
    assert!(u.updated_at > u.created_at, "{u:?}");

    // A stale expected size changes nothing.
    assert!(!db
        .uploads()
        .advance_upload("u1", 0, 2000, "stale", b"stale")
        .await
        .unwrap());
    assert!(!db
        .uploads()
        .advance_upload("u1", 999, 2000, "stale", b"stale")
        .await
        .unwrap());
    let same = db.uploads().upload("u1", r1).await.unwrap().unwrap();
    assert_eq!(same.size, 1000);
    assert_eq!(same.staging, r#"{"parts":["p1"]}"#);
    assert_eq!(same.hash_state.as_deref(), Some(state));
    assert_eq!(same.updated_at, u.updated_at);

    // Sizes beyond 32 bits survive.
    let big = 5u64 << 30;
    assert!(db
        .uploads()
        .advance_upload("u1", 1000, big, "{}", &[])
        .await
        .unwrap());
    let u = db.uploads().upload("u1", r1).await.unwrap().unwrap();
    assert_eq!(u.size, big);
    assert_eq!(u.hash_state.as_deref(), Some(&[][..]));
    assert!(db
        .uploads()
        .advance_upload("u1", big, big + 1, "{}", &[1])
        .await
        .unwrap());

    assert!(!db
        .uploads()
        .advance_upload("nope", 0, 1, "{}", &[])
        .await
        .unwrap());

    // Other uploads in the same repository are independent.
    db.uploads()
        .create_upload("u2", r1, "sha512", "{}")
        .await
        .unwrap();
    assert_eq!(
        db.uploads()
            .upload("u2", r1)
            .await
            .unwrap()
            .unwrap()
            .algorithm,
        "sha512"
    );

    assert!(db.uploads().delete_upload("u1").await.unwrap());
    assert!(!db.uploads().delete_upload("u1").await.unwrap());
    assert!(db.uploads().upload("u1", r1).await.unwrap().is_none());
    assert!(!db
        .uploads()
        .advance_upload("u1", big + 1, 1, "{}", &[])
        .await
        .unwrap());
    assert!(db.uploads().upload("u2", r1).await.unwrap().is_some());
}

async fn advance_upload_concurrent(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("cas"))
        .await
        .unwrap();
    db.uploads()
        .create_upload("u", r, "sha256", "{}")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let meta = db.meta.clone();
        tasks.push(tokio::spawn(async move {
            let won = meta
                .uploads()
                .advance_upload("u", 0, 100 + i, &format!("writer {i}"), &[i as u8])
                .await
                .unwrap();
            (i, won)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let w = winners[0];
    let u = db.uploads().upload("u", r).await.unwrap().unwrap();
    assert_eq!(u.size, 100 + w);
    assert_eq!(u.staging, format!("writer {w}"));
    assert_eq!(u.hash_state, Some(vec![w as u8]));
}

async fn stale_uploads(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("s1"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("s2"))
        .await
        .unwrap();
    // Created in the order c, a, b (ids not sorted), distinct milliseconds.
    db.uploads()
        .create_upload("c", r1, "sha256", "{}")
        .await
        .unwrap();
    tick().await;
    db.uploads()
        .create_upload("a", r2, "sha256", "{}")
        .await
        .unwrap();
    tick().await;
    db.uploads()
        .create_upload("b", r1, "sha256", "{}")
        .await
        .unwrap();
    tick().await;
    let cutoff = now_millis();
    tick().await;
    db.uploads()
        .create_upload("fresh", r1, "sha256", "{}")
        .await
        .unwrap();

    let ids =
        |rows: Vec<berth::meta::UploadRow>| rows.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let stale = db.uploads().stale_uploads(cutoff, 100).await.unwrap();
    assert_eq!(
        stale.iter().map(|u| u.repository_id).collect::<Vec<_>>(),
        [r1, r2, r1]
    );
    assert_eq!(ids(stale), ["c", "a", "b"], "ordered by updated_at");
    assert_eq!(
        ids(db.uploads().stale_uploads(cutoff, 2).await.unwrap()),
        ["c", "a"]
    );
    assert!(db.uploads().stale_uploads(0, 100).await.unwrap().is_empty());

    // Touching an upload makes it fresh: staleness is by updated_at, not created_at.
    assert!(db
        .uploads()
        .advance_upload("c", 0, 10, "{}", &[])
        .await
        .unwrap());
    assert_eq!(
        ids(db.uploads().stale_uploads(cutoff, 100).await.unwrap()),
        ["a", "b"]
    );
    tick().await;
    let all = ids(db
        .uploads()
        .stale_uploads(now_millis() + 1, 100)
        .await
        .unwrap());
    assert_eq!(all, ["a", "b", "fresh", "c"]);

    assert!(db.uploads().delete_upload("a").await.unwrap());
    assert_eq!(
        ids(db.uploads().stale_uploads(cutoff, 100).await.unwrap()),
        ["b"]
    );
}

async fn commit_blob(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("c/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("c/two"))
        .await
        .unwrap();
    let r3 = db
        .repositories()
        .ensure_repository(&repo("c/three"))
        .await
        .unwrap();
    let d = digest("layer");
    let size = 6u64 << 30;
    assert!(db
        .blob_index()
        .blob_in_repository(r1, &d)
        .await
        .unwrap()
        .is_none());
    assert!(!db.blob_index().blob_linked_anywhere(&d).await.unwrap());

    db.uploads()
        .create_upload("u1", r1, "sha256", "{}")
        .await
        .unwrap();
    let got = db
        .blob_index()
        .commit_blob("u1", r1, &d, size, "blobs/k1", None)
        .await
        .unwrap();
    assert_eq!(got, BlobCommit::Stored);
    assert!(
        db.uploads().upload("u1", r1).await.unwrap().is_none(),
        "upload row removed"
    );
    assert!(!db.uploads().delete_upload("u1").await.unwrap());

    let b = db
        .blob_index()
        .blob_in_repository(r1, &d)
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(b.digest, d.to_string());
    assert_eq!(b.size, size);
    assert_eq!(b.object_key, "blobs/k1");
    assert!(db
        .blob_index()
        .blob_in_repository(r2, &d)
        .await
        .unwrap()
        .is_none());
    assert!(db.blob_index().blob_linked_anywhere(&d).await.unwrap());
    assert!(!db
        .blob_index()
        .blob_linked_anywhere(&digest("other"))
        .await
        .unwrap());

    // The same digest from another upload in another repository: already stored, first key wins.
    db.uploads()
        .create_upload("u2", r2, "sha256", "{}")
        .await
        .unwrap();
    let got = db
        .blob_index()
        .commit_blob("u2", r2, &d, size, "blobs/k2", None)
        .await
        .unwrap();
    assert_eq!(
        got,
        BlobCommit::AlreadyStored {
            object_key: "blobs/k1".into()
        }
    );
    assert!(db.uploads().upload("u2", r2).await.unwrap().is_none());
    let b2 = db
        .blob_index()
        .blob_in_repository(r2, &d)
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(b2.object_key, "blobs/k1");
    assert_eq!(b2.size, size);

    // Again in a repository that already has it: no second link.
    db.uploads()
        .create_upload("u3", r1, "sha256", "{}")
        .await
        .unwrap();
    let got = db
        .blob_index()
        .commit_blob("u3", r1, &d, size, "blobs/k3", None)
        .await
        .unwrap();
    assert!(matches!(got, BlobCommit::AlreadyStored { .. }));
    assert!(db.blob_index().unlink_blob(r1, &d).await.unwrap());
    assert!(!db.blob_index().unlink_blob(r1, &d).await.unwrap());

    // Committing leaves other uploads alone.
    db.uploads()
        .create_upload("u4", r3, "sha256", "{}")
        .await
        .unwrap();
    db.uploads()
        .create_upload("u5", r3, "sha256", "{}")
        .await
        .unwrap();
    let e = digest("small");
    assert_eq!(
        db.blob_index()
            .commit_blob("u4", r3, &e, 5, "blobs/e", None)
            .await
            .unwrap(),
        BlobCommit::Stored
    );
    assert!(db.uploads().upload("u5", r3).await.unwrap().is_some());
    assert_eq!(
        db.blob_index()
            .blob_in_repository(r3, &e)
            .await
            .unwrap()
            .unwrap()
            .size,
        5
    );
}

async fn commit_blob_concurrent(db: &Db) {
    let d = digest("contended");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let meta = db.meta.clone();
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let r = meta
                .repositories()
                .ensure_repository(&repo(&format!("cc/{i}")))
                .await
                .unwrap();
            let id = format!("up-{i}");
            meta.uploads()
                .create_upload(&id, r, "sha256", "{}")
                .await
                .unwrap();
            let got = meta
                .blob_index()
                .commit_blob(&id, r, &d, 42, &format!("key-{i}"), None)
                .await
                .unwrap();
            (i, r, got)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let stored: Vec<_> = results
        .iter()
        .filter(|(_, _, got)| *got == BlobCommit::Stored)
        .map(|(i, _, _)| *i)
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "exactly one upload stores the blob: {results:?}"
    );
    let key = format!("key-{}", stored[0]);
    for (i, r, got) in &results {
        if *i != stored[0] {
            assert_eq!(
                *got,
                BlobCommit::AlreadyStored {
                    object_key: key.clone()
                }
            );
        }
        let b = db
            .blob_index()
            .blob_in_repository(*r, &d)
            .await
            .unwrap()
            .expect("linked");
        assert_eq!(b.object_key, key);
        assert!(db
            .uploads()
            .upload(&format!("up-{i}"), *r)
            .await
            .unwrap()
            .is_none());
    }
}

async fn link_unlink(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("l/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("l/two"))
        .await
        .unwrap();
    let d = digest("mounted");
    db.uploads()
        .create_upload("u", r1, "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("u", r1, &d, 7, "k", None)
        .await
        .unwrap();

    // Cross-repository mount, idempotent.
    db.blob_index().link_blob(r2, &d).await.unwrap();
    db.blob_index().link_blob(r2, &d).await.unwrap();
    let b = db
        .blob_index()
        .blob_in_repository(r2, &d)
        .await
        .unwrap()
        .expect("mounted");
    assert_eq!((b.size, b.object_key.as_str()), (7, "k"));

    assert!(db.blob_index().unlink_blob(r1, &d).await.unwrap());
    assert!(!db.blob_index().unlink_blob(r1, &d).await.unwrap());
    assert!(db
        .blob_index()
        .blob_in_repository(r1, &d)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .blob_index()
        .blob_in_repository(r2, &d)
        .await
        .unwrap()
        .is_some());
    assert!(db.blob_index().blob_linked_anywhere(&d).await.unwrap());

    assert!(db.blob_index().unlink_blob(r2, &d).await.unwrap());
    assert!(!db.blob_index().blob_linked_anywhere(&d).await.unwrap());
    assert!(db
        .blob_index()
        .blob_in_repository(r2, &d)
        .await
        .unwrap()
        .is_none());

    // The blob row outlives its links (until GC): it can be linked again.
    db.blob_index().link_blob(r1, &d).await.unwrap();
    assert_eq!(
        db.blob_index()
            .blob_in_repository(r1, &d)
            .await
            .unwrap()
            .unwrap()
            .object_key,
        "k"
    );
    assert!(!db
        .blob_index()
        .unlink_blob(r2, &digest("never"))
        .await
        .unwrap());
}

async fn stored_blob_sizes(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("m/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("m/two"))
        .await
        .unwrap();
    let (a, b, c, x) = (digest("a"), digest("b"), digest("c"), digest("x"));
    for (i, (d, size)) in [(&a, 10), (&b, 20)].into_iter().enumerate() {
        let id = format!("u{i}");
        db.uploads()
            .create_upload(&id, r1, "sha256", "{}")
            .await
            .unwrap();
        db.blob_index()
            .commit_blob(&id, r1, d, size, &format!("k{i}"), None)
            .await
            .unwrap();
    }
    db.uploads()
        .create_upload("uc", r2, "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("uc", r2, &c, 30, "kc", None)
        .await
        .unwrap();
    let sizes = |pairs: &[(&Digest, i64)]| {
        pairs
            .iter()
            .map(|(d, s)| (d.to_string(), *s))
            .collect::<std::collections::HashMap<_, _>>()
    };

    assert!(db
        .blob_index()
        .stored_blob_sizes(r1, &[])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        db.blob_index()
            .stored_blob_sizes(r1, &[&a, &b])
            .await
            .unwrap(),
        sizes(&[(&a, 10), (&b, 20)])
    );
    // Stored elsewhere is missing here.
    assert_eq!(
        db.blob_index()
            .stored_blob_sizes(r1, &[&x, &a, &c, &b])
            .await
            .unwrap(),
        sizes(&[(&a, 10), (&b, 20)])
    );
    assert_eq!(
        db.blob_index()
            .stored_blob_sizes(r2, &[&a, &b, &c])
            .await
            .unwrap(),
        sizes(&[(&c, 30)])
    );
    db.blob_index().unlink_blob(r1, &a).await.unwrap();
    assert_eq!(
        db.blob_index()
            .stored_blob_sizes(r1, &[&a, &b])
            .await
            .unwrap(),
        sizes(&[(&b, 20)])
    );
}

async fn manifests(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("mf/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("mf/two"))
        .await
        .unwrap();
    let raw = db.raw().await;

    let mut m1 = manifest(b"{\"schemaVersion\":2,\"n\":1}");
    m1.references = vec![
        (digest("config").to_string(), "config"),
        (digest("layer").to_string(), "layer"),
    ];
    m1.depth = 3;
    db.manifests()
        .put_manifest(r1, &m1, &[tag("latest"), tag("v1")])
        .await
        .unwrap();
    let got = db
        .manifests()
        .manifest_by_digest(r1, &m1.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.digest, m1.digest.to_string());
    assert_eq!(got.media_type, OCI_MANIFEST);
    assert_eq!(got.content, m1.content);
    assert_eq!(got.subject_digest, None);
    assert_eq!(got.depth, 3);
    let id1 = got.id;
    for t in ["latest", "v1"] {
        assert_eq!(
            db.manifests()
                .manifest_by_tag(r1, &tag(t))
                .await
                .unwrap()
                .unwrap()
                .id,
            id1
        );
    }
    // Per repository.
    assert!(db
        .manifests()
        .manifest_by_digest(r2, &m1.digest)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifests()
        .manifest_by_tag(r2, &tag("latest"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifests()
        .manifest_by_tag(r1, &tag("nope"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifests()
        .manifest_by_digest(r1, &digest("nope"))
        .await
        .unwrap()
        .is_none());

    // Idempotent by digest: same row, first bytes kept, new tags added.
    let mut again = m1.clone();
    again.media_type = "application/x-changed".into();
    db.manifests()
        .put_manifest(r1, &again, &[tag("v1.0")])
        .await
        .unwrap();
    db.manifests().put_manifest(r1, &m1, &[]).await.unwrap();
    let got = db
        .manifests()
        .manifest_by_digest(r1, &m1.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.id, got.media_type.as_str()), (id1, OCI_MANIFEST));
    assert_eq!(
        count(
            &raw,
            "SELECT COUNT(*) FROM manifests WHERE repository_id = $1",
            r1
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &raw,
            "SELECT COUNT(*) FROM manifest_references WHERE manifest_id = $1",
            id1
        )
        .await,
        2
    );
    assert_eq!(
        db.manifests().list_tags(r1, None, 10).await.unwrap(),
        ["latest", "v1", "v1.0"]
    );

    // The same manifest in another repository is a separate row.
    db.manifests()
        .put_manifest(r2, &m1, &[tag("latest")])
        .await
        .unwrap();
    let in_r2 = db
        .manifests()
        .manifest_by_tag(r2, &tag("latest"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(in_r2.id, id1);

    // Moving a tag to a new manifest.
    let m2 = manifest(b"{\"schemaVersion\":2,\"n\":2}");
    db.manifests()
        .put_manifest(r1, &m2, &[tag("latest")])
        .await
        .unwrap();
    let id2 = db
        .manifests()
        .manifest_by_tag(r1, &tag("latest"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id2.digest, m2.digest.to_string());
    assert_eq!(id2.content, m2.content);
    assert_eq!(
        db.manifests()
            .manifest_by_tag(r1, &tag("v1"))
            .await
            .unwrap()
            .unwrap()
            .id,
        id1
    );
    assert_eq!(
        db.manifests()
            .manifest_by_tag(r2, &tag("latest"))
            .await
            .unwrap()
            .unwrap()
            .id,
        in_r2.id
    );
    assert_eq!(
        db.manifests().list_tags(r1, None, 10).await.unwrap(),
        ["latest", "v1", "v1.0"]
    );

    // delete_tag leaves the manifest.
    assert!(db.manifests().delete_tag(r1, &tag("v1")).await.unwrap());
    assert!(!db.manifests().delete_tag(r1, &tag("v1")).await.unwrap());
    assert!(!db.manifests().delete_tag(r2, &tag("v1.0")).await.unwrap());
    assert!(db
        .manifests()
        .manifest_by_tag(r1, &tag("v1"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.manifests()
            .manifest_by_digest(r1, &m1.digest)
            .await
            .unwrap()
            .unwrap()
            .id,
        id1
    );
    assert_eq!(
        db.manifests().list_tags(r1, None, 10).await.unwrap(),
        ["latest", "v1.0"]
    );

    // delete_manifest removes its tags, not others, not other repositories' copies.
    assert!(db
        .manifests()
        .delete_manifest(r1, &m1.digest)
        .await
        .unwrap());
    assert!(!db
        .manifests()
        .delete_manifest(r1, &m1.digest)
        .await
        .unwrap());
    assert!(db
        .manifests()
        .manifest_by_digest(r1, &m1.digest)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifests()
        .manifest_by_tag(r1, &tag("v1.0"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.manifests().list_tags(r1, None, 10).await.unwrap(),
        ["latest"]
    );
    assert_eq!(
        db.manifests()
            .manifest_by_digest(r2, &m1.digest)
            .await
            .unwrap()
            .unwrap()
            .id,
        in_r2.id
    );
    assert_eq!(
        db.manifests().list_tags(r2, None, 10).await.unwrap(),
        ["latest"]
    );

    // A manifest can be pushed again after deletion, and re-tagged.
    db.manifests()
        .put_manifest(r1, &m1, &[tag("v1")])
        .await
        .unwrap();
    assert_eq!(
        db.manifests()
            .manifest_by_tag(r1, &tag("v1"))
            .await
            .unwrap()
            .unwrap()
            .content,
        m1.content
    );
    raw.close().await;
}

async fn manifest_bytes_exact(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("bytes"))
        .await
        .unwrap();
    let odd: Vec<&[u8]> = vec![
        // Odd whitespace, CRLF, tabs, trailing spaces, escaped unicode, no final newline.
        b"  {\r\n\t\"schemaVersion\" :\t2 ,\n  \"a\" : \"\\u00e9\xc3\xa9\"  }  ",
        // Not UTF-8 at all, with NUL bytes.
        b"{\"x\":\"\xff\xfe\x00\x80\xc0\xaf\"}\x00\n",
        // A byte of every value, 100 KiB long.
        &[],
        // One byte.
        b"{",
    ];
    let big: Vec<u8> = (0..100 * 1024).map(|i| (i % 256) as u8).collect();
    let mut contents: Vec<Vec<u8>> = odd.iter().map(|b| b.to_vec()).collect();
    contents[2] = big;
    for (i, content) in contents.iter().enumerate() {
        let m = manifest(content);
        let t = tag(&format!("t{i}"));
        db.manifests()
            .put_manifest(r, &m, std::slice::from_ref(&t))
            .await
            .unwrap();
        let by_digest = db
            .manifests()
            .manifest_by_digest(r, &m.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&by_digest.content, content, "content {i} by digest");
        let by_tag = db
            .manifests()
            .manifest_by_tag(r, &t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&by_tag.content, content, "content {i} by tag");
        assert_eq!(Digest::of(Algorithm::Sha256, &by_tag.content), m.digest);
    }
}

async fn delete_manifest_cascades(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("cascade"))
        .await
        .unwrap();
    let raw = db.raw().await;
    let mut index = manifest(b"{\"manifests\":[]}");
    index.references = vec![
        (digest("child1").to_string(), "manifest"),
        (digest("child2").to_string(), "manifest"),
    ];
    let mut keep = manifest(b"{\"keep\":true}");
    keep.references = vec![(digest("child1").to_string(), "manifest")];
    db.manifests()
        .put_manifest(r, &index, &[tag("a"), tag("b"), tag("c")])
        .await
        .unwrap();
    db.manifests()
        .put_manifest(r, &keep, &[tag("keep")])
        .await
        .unwrap();
    let id = db
        .manifests()
        .manifest_by_digest(r, &index.digest)
        .await
        .unwrap()
        .unwrap()
        .id;
    let keep_id = db
        .manifests()
        .manifest_by_digest(r, &keep.digest)
        .await
        .unwrap()
        .unwrap()
        .id;
    let tags_of = "SELECT COUNT(*) FROM tags WHERE manifest_id = $1";
    let refs_of = "SELECT COUNT(*) FROM manifest_references WHERE manifest_id = $1";
    assert_eq!(count(&raw, tags_of, id).await, 3);
    assert_eq!(count(&raw, refs_of, id).await, 2);

    assert!(db
        .manifests()
        .delete_manifest(r, &index.digest)
        .await
        .unwrap());
    assert_eq!(
        count(&raw, tags_of, id).await,
        0,
        "ON DELETE CASCADE on tags"
    );
    assert_eq!(
        count(&raw, refs_of, id).await,
        0,
        "ON DELETE CASCADE on manifest_references"
    );
    assert_eq!(count(&raw, tags_of, keep_id).await, 1);
    assert_eq!(count(&raw, refs_of, keep_id).await, 1);
    assert_eq!(
        db.manifests().list_tags(r, None, 10).await.unwrap(),
        ["keep"]
    );
    raw.close().await;
}

async fn referrers(db: &Db) {
    let r1 = db
        .repositories()
        .ensure_repository(&repo("ref/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("ref/two"))
        .await
        .unwrap();
    let base = manifest(b"{\"base\":1}");
    db.manifests()
        .put_manifest(r1, &base, &[tag("base")])
        .await
        .unwrap();
    let s = &base.digest;
    const SBOM: &str = "application/vnd.example.sbom";
    const SIG: &str = "application/vnd.example.sig";

    assert!(db
        .manifests()
        .referrers(r1, s, None)
        .await
        .unwrap()
        .is_empty());

    let pushed = [
        referrer("sbom-1", s, Some(SBOM)),
        referrer("sig-1", s, Some(SIG)),
        referrer("untyped", s, None),
        referrer("sbom-2", s, Some(SBOM)),
    ];
    for m in &pushed {
        db.manifests().put_manifest(r1, m, &[]).await.unwrap();
        tick().await; // distinct pushed_at: results come in push order
    }
    // Not referrers of `s`: another subject, and the same subject in another repository.
    db.manifests()
        .put_manifest(
            r1,
            &referrer("elsewhere", &digest("other"), Some(SBOM)),
            &[],
        )
        .await
        .unwrap();
    let in_r2 = referrer("in-r2", s, Some(SBOM));
    db.manifests().put_manifest(r2, &in_r2, &[]).await.unwrap();
    // A referrer whose subject was never pushed (allowed by the spec).
    let dangling_subject = digest("not pushed yet");
    let dangling = referrer("dangling", &dangling_subject, None);
    db.manifests()
        .put_manifest(r1, &dangling, &[])
        .await
        .unwrap();

    let digests = |rows: &[berth::meta::ReferrerRow]| {
        rows.iter().map(|r| r.digest.clone()).collect::<Vec<_>>()
    };
    let want = |ms: &[&NewManifest]| ms.iter().map(|m| m.digest.to_string()).collect::<Vec<_>>();

    let all = db.manifests().referrers(r1, s, None).await.unwrap();
    assert_eq!(
        digests(&all),
        want(&[&pushed[0], &pushed[1], &pushed[2], &pushed[3]])
    );
    for (row, m) in all.iter().zip(&pushed) {
        assert_eq!(row.media_type, OCI_MANIFEST);
        assert_eq!(row.size, m.content.len() as i64);
        assert_eq!(row.artifact_type, m.artifact_type);
        assert_eq!(row.annotations, m.annotations);
    }
    let sboms = db.manifests().referrers(r1, s, Some(SBOM)).await.unwrap();
    assert_eq!(digests(&sboms), want(&[&pushed[0], &pushed[3]]));
    let sigs = db.manifests().referrers(r1, s, Some(SIG)).await.unwrap();
    assert_eq!(digests(&sigs), want(&[&pushed[1]]));
    assert!(db
        .manifests()
        .referrers(r1, s, Some("application/none"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        digests(&db.manifests().referrers(r2, s, None).await.unwrap()),
        want(&[&in_r2])
    );
    assert_eq!(
        digests(
            &db.manifests()
                .referrers(r1, &dangling_subject, None)
                .await
                .unwrap()
        ),
        want(&[&dangling])
    );
    let subject = db
        .manifests()
        .manifest_by_digest(r1, &dangling.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subject.subject_digest, Some(dangling_subject.to_string()));

    // Deleting a referrer removes it from the list.
    assert!(db
        .manifests()
        .delete_manifest(r1, &pushed[0].digest)
        .await
        .unwrap());
    assert_eq!(
        digests(&db.manifests().referrers(r1, s, Some(SBOM)).await.unwrap()),
        want(&[&pushed[3]])
    );
}

async fn migrate_idempotent(db: &Db) {
    let id = db
        .repositories()
        .ensure_repository(&repo("kept"))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(
        db.repositories()
            .repository_id(&repo("kept"))
            .await
            .unwrap(),
        Some(id)
    );
    // A second process connecting to the same database migrates again, harmlessly.
    let second = Meta::connect(&db.url, 2, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        second
            .repositories()
            .repository_id(&repo("kept"))
            .await
            .unwrap(),
        Some(id)
    );
    second.close().await;

    let dir = match db.dialect() {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgres",
    };
    let files = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64;
    let raw = db.raw().await;
    let applied = count(
        &raw,
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE success AND version > $1",
        0,
    )
    .await;
    assert_eq!(applied, files);
    raw.close().await;
}

async fn foreign_keys_enforced(db: &Db) {
    // Both dialects refuse rows pointing nowhere (SQLite needs PRAGMA foreign_keys on every
    // connection of the pool for this).
    let r = db
        .repositories()
        .ensure_repository(&repo("fk"))
        .await
        .unwrap();
    assert!(
        !db.blob_index()
            .link_blob(r, &digest("no such blob"))
            .await
            .unwrap_or(false),
        "repository_blobs.digest references blobs"
    );
    assert!(
        db.uploads()
            .create_upload("u", r + 1000, "sha256", "{}")
            .await
            .is_err(),
        "uploads.repository_id references repositories"
    );
    assert!(
        db.manifests()
            .put_manifest(r + 1000, &manifest(b"{}"), &[])
            .await
            .is_err(),
        "manifests.repository_id references repositories"
    );
    // A failed transaction leaves nothing behind.
    assert!(db
        .blob_index()
        .stored_blob_sizes(r, &[&digest("no such blob")])
        .await
        .unwrap()
        .is_empty());
    db.uploads()
        .create_upload("u", r, "sha256", "{}")
        .await
        .unwrap();
}

async fn all_uploads_and_blobs(db: &Db) {
    assert!(db.uploads().all_uploads().await.unwrap().is_empty());
    assert!(db.blob_index().all_blobs().await.unwrap().is_empty());
    let r1 = db
        .repositories()
        .ensure_repository(&repo("all/one"))
        .await
        .unwrap();
    let r2 = db
        .repositories()
        .ensure_repository(&repo("all/two"))
        .await
        .unwrap();
    db.uploads()
        .create_upload("x", r1, "sha256", "{}")
        .await
        .unwrap();
    db.uploads()
        .create_upload("y", r2, "sha512", "{\"s\":1}")
        .await
        .unwrap();
    db.uploads()
        .create_upload("z", r2, "sha256", "{}")
        .await
        .unwrap();
    assert!(db
        .uploads()
        .advance_upload("y", 0, 3, "{}", &[9])
        .await
        .unwrap());
    let (big, small) = (digest("big"), digest("small"));
    db.blob_index()
        .commit_blob("z", r2, &big, 7u64 << 32, "k/big", None)
        .await
        .unwrap();
    db.uploads()
        .create_upload("w", r1, "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("w", r1, &small, 0, "k/small", None)
        .await
        .unwrap();
    // Unlinked blobs are still listed (fsck sees every row).
    db.blob_index().unlink_blob(r1, &small).await.unwrap();

    let mut uploads = db.uploads().all_uploads().await.unwrap();
    uploads.sort_by(|a, b| a.id.cmp(&b.id));
    let seen: Vec<_> = uploads
        .iter()
        .map(|u| (u.id.as_str(), u.repository_id, u.algorithm.as_str(), u.size))
        .collect();
    assert_eq!(seen, [("x", r1, "sha256", 0), ("y", r2, "sha512", 3)]);
    assert_eq!(uploads[1].hash_state, Some(vec![9]));

    let mut blobs = db.blob_index().all_blobs().await.unwrap();
    blobs.sort_by(|a, b| a.object_key.cmp(&b.object_key));
    let seen: Vec<_> = blobs
        .iter()
        .map(|b| (b.digest.clone(), b.size, b.object_key.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (big.to_string(), 7u64 << 32, "k/big"),
            (small.to_string(), 0, "k/small")
        ]
    );
}

async fn forget_blob(db: &Db) {
    let names = ["fb/b", "fb/a-b", "fb/a.b", "fb/a_b", "fb/ab"];
    let mut ids = Vec::new();
    for n in names {
        ids.push(db.repositories().ensure_repository(&repo(n)).await.unwrap());
    }
    let lost = digest("lost layer");
    let kept = digest("kept layer");
    db.uploads()
        .create_upload("u", ids[0], "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("u", ids[0], &lost, 10, "k/lost", None)
        .await
        .unwrap();
    db.uploads()
        .create_upload("v", ids[0], "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("v", ids[0], &kept, 10, "k/kept", None)
        .await
        .unwrap();
    for id in &ids[1..] {
        db.blob_index().link_blob(*id, &lost).await.unwrap();
        db.blob_index().link_blob(*id, &kept).await.unwrap();
    }
    let mut uses_lost = manifest(b"{\"uses\":\"lost\"}");
    uses_lost.references = vec![(lost.to_string(), "layer"), (kept.to_string(), "config")];
    let mut only_kept = manifest(b"{\"uses\":\"kept\"}");
    only_kept.references = vec![(kept.to_string(), "layer")];
    for id in [ids[3], ids[1]] {
        db.manifests()
            .put_manifest(id, &uses_lost, &[tag("v1")])
            .await
            .unwrap();
        db.manifests()
            .put_manifest(id, &only_kept, &[])
            .await
            .unwrap();
    }

    let (repos, manifests) = db
        .blob_index()
        .forget_blob(&lost.to_string())
        .await
        .unwrap();
    // Byte order: '-' < '.' < '_' < 'a' < 'b'.
    assert_eq!(repos, ["fb/a-b", "fb/a.b", "fb/a_b", "fb/ab", "fb/b"]);
    assert_eq!(
        manifests,
        [
            format!("fb/a-b@{}", uses_lost.digest),
            format!("fb/a_b@{}", uses_lost.digest)
        ]
    );
    assert!(!db.blob_index().blob_linked_anywhere(&lost).await.unwrap());
    for id in &ids {
        assert!(db
            .blob_index()
            .blob_in_repository(*id, &lost)
            .await
            .unwrap()
            .is_none());
        assert!(db
            .blob_index()
            .blob_in_repository(*id, &kept)
            .await
            .unwrap()
            .is_some());
    }
    let all: Vec<String> = db
        .blob_index()
        .all_blobs()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert_eq!(all, [kept.to_string()]);
    // Manifests stay; the next push stores the blob afresh.
    assert!(db
        .manifests()
        .manifest_by_tag(ids[1], &tag("v1"))
        .await
        .unwrap()
        .is_some());
    db.uploads()
        .create_upload("again", ids[2], "sha256", "{}")
        .await
        .unwrap();
    assert_eq!(
        db.blob_index()
            .commit_blob("again", ids[2], &lost, 10, "k/lost2", None)
            .await
            .unwrap(),
        BlobCommit::Stored
    );
    assert_eq!(
        db.blob_index()
            .blob_in_repository(ids[2], &lost)
            .await
            .unwrap()
            .unwrap()
            .object_key,
        "k/lost2"
    );
    // Forgetting an unknown blob is harmless.
    let (repos, manifests) = db
        .blob_index()
        .forget_blob(&digest("unknown").to_string())
        .await
        .unwrap();
    assert!(repos.is_empty() && manifests.is_empty());
}

/// A lease holder on `host` with the PID of this test process (alive).
fn holder(id: &str, host: &str) -> LeaseHolder {
    LeaseHolder {
        id: id.into(),
        host: host.into(),
        pid: i64::from(std::process::id()),
    }
}

async fn leases(db: &Db) {
    // The clock is passed in, so expiry is checked at exact instants instead of by sleeping.
    let ttl = Duration::from_millis(1000);
    let t0 = 1_000_000_000_000i64;
    let lease = |name: &'static str, id: &'static str, at: i64| {
        let meta = db.meta.clone();
        async move {
            // No host identity: the rules of expiry and heartbeats alone.
            meta.leases()
                .try_lease_at(name, &holder(id, ""), ttl, at)
                .await
                .unwrap()
        }
    };
    assert!(lease("purge", "a", t0).await, "first holder");
    assert!(!lease("purge", "b", t0 + 10).await, "second holder refused");
    // Other lease names are independent.
    assert!(lease("gc", "b", t0).await);
    assert!(!lease("gc", "a", t0 + 10).await);

    // The holder renews, which extends the lease past its first expiry.
    assert!(lease("purge", "a", t0 + 600).await, "renewal");
    assert!(
        !lease("purge", "b", t0 + 1200).await,
        "refused past the first expiry because the holder renewed"
    );

    // After expiry another holder takes it, and the old holder is refused.
    assert!(lease("purge", "b", t0 + 1601).await, "taken after expiry");
    assert!(!lease("purge", "a", t0 + 1700).await);
    assert!(lease("purge", "b", t0 + 1800).await);
}

async fn leases_concurrent(db: &Db) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let meta = db.meta.clone();
        tasks.push(tokio::spawn(async move {
            let holder = holder(&format!("replica-{i}"), "");
            let won = meta
                .leases()
                .try_lease("race", &holder, Duration::from_secs(60))
                .await
                .unwrap();
            (holder, won)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (holder, won) = t.await.unwrap();
        if won {
            winners.push(holder);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one holder: {winners:?}");
    assert!(db
        .leases()
        .try_lease("race", &winners[0], Duration::from_secs(60))
        .await
        .unwrap());
}

/// A PID no process has: a child that has exited and been reaped.
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    child.wait().unwrap();
    i64::from(child.id())
}

/// Leases whose holder is gone are taken over long before they expire: at once when the
/// holder ran on this host and its process is gone (or released them at shutdown), after
/// [`HEARTBEAT_TIMEOUT`] of silence otherwise; a live holder keeps them.
async fn lease_holders_gone(db: &Db) {
    let hour = Duration::from_secs(3600);
    let t0 = 1_000_000_000_000i64;
    let silence = HEARTBEAT_TIMEOUT.as_millis() as i64;
    let me = holder("me", "host-1");
    let try_at = |name: &'static str, who: LeaseHolder, at: i64| {
        let meta = db.meta.clone();
        async move {
            meta.leases()
                .try_lease_at(name, &who, hour, at)
                .await
                .unwrap()
        }
    };

    // Same host, process alive (a sleeping child): kept.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let alive = LeaseHolder {
        pid: i64::from(sleeper.id()),
        ..holder("alive", "host-1")
    };
    assert!(try_at("a", alive.clone(), t0).await);
    assert!(
        !try_at("a", me.clone(), t0 + 10).await,
        "live holder on this host"
    );
    // ... until that process is gone.
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert!(
        try_at("a", me.clone(), t0 + 20).await,
        "holder's process gone"
    );
    assert!(!try_at("a", alive.clone(), t0 + 30).await, "taken for good");

    // Same host, process gone before anyone asked: taken at once.
    let dead = LeaseHolder {
        pid: dead_pid(),
        ..holder("dead", "host-1")
    };
    assert!(try_at("b", dead, t0).await);
    assert!(
        try_at("b", me.clone(), t0 + 10).await,
        "dead PID on this host"
    );

    // A new process that got the PID of the old holder (PID reuse): the old one is gone.
    assert!(try_at("c", holder("previous", "host-1"), t0).await);
    assert!(try_at("c", me.clone(), t0 + 10).await, "PID now ours");

    // Another host: its PIDs mean nothing here, only its heartbeat counts.
    let remote = LeaseHolder {
        pid: dead_pid(),
        ..holder("remote", "host-2")
    };
    assert!(try_at("d", remote.clone(), t0).await);
    assert!(
        !try_at("d", me.clone(), t0 + 10).await,
        "remote holder, fresh heartbeat"
    );
    db.leases()
        .heartbeat_at(&remote, t0 + 30_000)
        .await
        .unwrap();
    assert!(
        !try_at("d", me.clone(), t0 + 30_000 + silence).await,
        "heartbeat renewed"
    );
    assert!(
        try_at("d", me.clone(), t0 + 30_000 + silence + 1).await,
        "heartbeat silent for longer than the timeout"
    );
    // An unknown host never matches.
    let unknown = LeaseHolder {
        pid: dead_pid(),
        ..holder("unknown", "")
    };
    assert!(try_at("e", unknown.clone(), t0).await);
    assert!(
        !try_at(
            "e",
            LeaseHolder {
                host: String::new(),
                ..me.clone()
            },
            t0 + 10
        )
        .await,
        "no host identity: only heartbeats count"
    );

    // Released at shutdown: taken at once, whatever the host.
    assert!(try_at("f", holder("leaving", "host-2"), t0).await);
    db.leases()
        .release_leases(&holder("leaving", "host-2"))
        .await
        .unwrap();
    assert!(try_at("f", me.clone(), t0 + 10).await, "released");
    // Releasing removes only that holder's leases.
    assert!(!try_at("f", holder("other", "host-2"), t0 + 20).await);
}

/// Scan jobs: queued with the manifest only when the repository scans on push and the manifest
/// is an image; taken once; a result from a stale attempt is ignored; findings page in order.
async fn scan_jobs(db: &Db) {
    let repo = db
        .repositories()
        .ensure_repository(&RepoName::parse("scan/jobs").unwrap())
        .await
        .unwrap();
    let now = now_millis();
    let unscanned = manifest(b"{\"unscanned\":1}");
    db.manifests()
        .put_manifest(repo, &unscanned, &[])
        .await
        .unwrap();
    assert!(db
        .scans()
        .scan_state(repo, &unscanned.digest.to_string())
        .await
        .unwrap()
        .is_none());
    db.scans().set_scan_on_push(repo, true).await.unwrap();
    assert!(db.scans().scan_on_push(repo).await.unwrap());
    let artifact = NewManifest {
        artifact_type: Some("application/vnd.example.sbom".into()),
        ..manifest(b"{\"artifact\":1}")
    };
    db.manifests()
        .put_manifest(repo, &artifact, &[])
        .await
        .unwrap();
    assert!(db
        .scans()
        .scan_state(repo, &artifact.digest.to_string())
        .await
        .unwrap()
        .is_none());
    let image = manifest(b"{\"image\":1}");
    let digest = image.digest.to_string();
    db.manifests()
        .put_manifest(repo, &image, &[])
        .await
        .unwrap();
    let state = db.scans().scan_state(repo, &digest).await.unwrap().unwrap();
    assert_eq!((state.status.as_str(), state.attempts), ("IN_PROGRESS", 0));

    let job = db
        .scans()
        .take_scan_job(now + 1000, now + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.repository.as_str(), job.digest.as_str(), job.attempts),
        ("scan/jobs", digest.as_str(), 1)
    );
    assert!(
        db.scans()
            .take_scan_job(now + 1000, now + 60_000)
            .await
            .unwrap()
            .is_none(),
        "leased"
    );
    // Lease expired: taken again; the first attempt's result no longer counts.
    let again = db
        .scans()
        .take_scan_job(now + 61_000, now + 120_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
    let failed = ScanOutcome::Failed {
        reason: "late".into(),
        retry_at: None,
    };
    assert!(!db.scans().finish_scan(&job, &failed).await.unwrap());
    let findings: Vec<Finding> = (0..5)
        .map(|i| Finding {
            severity: if i < 2 { "CRITICAL" } else { "LOW" }.into(),
            name: format!("CVE-2000-{i:04}"),
            package_name: Some("pkg".into()),
            attributes: vec![("package_name".into(), "pkg".into())],
            ..Finding::default()
        })
        .collect();
    let done = ScanOutcome::Complete {
        findings: findings.clone(),
        vulnerability_source_updated_at: Some(now),
    };
    assert!(db.scans().finish_scan(&again, &done).await.unwrap());
    let state = db.scans().scan_state(repo, &digest).await.unwrap().unwrap();
    assert_eq!(state.status, "COMPLETE");
    assert_eq!(state.vulnerability_source_updated_at, Some(now));
    assert_eq!(
        db.scans()
            .scan_severity_counts(state.manifest_id)
            .await
            .unwrap(),
        vec![("CRITICAL".to_owned(), 2), ("LOW".to_owned(), 3)]
    );
    // A listing's batch: the same state and counts; a manifest never scanned is left out.
    let mut summaries = db
        .scans()
        .scan_summaries(&[state.manifest_id, state.manifest_id + 1000])
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
    let (batched, counts) = summaries.remove(&state.manifest_id).unwrap();
    assert_eq!(batched, state);
    assert_eq!(
        counts,
        vec![("CRITICAL".to_owned(), 2), ("LOW".to_owned(), 3)]
    );
    let page = db
        .scans()
        .scan_findings(state.manifest_id, -1, None, 3)
        .await
        .unwrap();
    let rest = db
        .scans()
        .scan_findings(state.manifest_id, page[2].0, None, 3)
        .await
        .unwrap();
    let all: Vec<Finding> = page.into_iter().chain(rest).map(|(_, f)| f).collect();
    assert_eq!(all, findings);
    let critical = db
        .scans()
        .scan_findings(state.manifest_id, -1, Some("CRITICAL"), 100)
        .await
        .unwrap();
    assert_eq!(critical.len(), 2);
    assert!(critical.iter().all(|(_, f)| f.severity == "CRITICAL"));
    // Nothing is due any more; a re-push leaves the finished scan alone; a manual scan re-queues.
    assert!(db
        .scans()
        .take_scan_job(now + 200_000, now + 300_000)
        .await
        .unwrap()
        .is_none());
    db.manifests()
        .put_manifest(repo, &image, &[])
        .await
        .unwrap();
    assert_eq!(
        db.scans()
            .scan_state(repo, &digest)
            .await
            .unwrap()
            .unwrap()
            .status,
        "COMPLETE"
    );
    assert!(db.scans().queue_scan(repo, &digest).await.unwrap());
    let state = db.scans().scan_state(repo, &digest).await.unwrap().unwrap();
    assert_eq!((state.status.as_str(), state.attempts), ("IN_PROGRESS", 0));
    // A re-queue while an attempt runs: that attempt's result is ignored even though the next
    // attempt has the same number.
    let before_requeue = db
        .scans()
        .take_scan_job(now_millis() + 1, now + 400_000)
        .await
        .unwrap()
        .unwrap();
    tick().await;
    assert!(db.scans().queue_scan(repo, &digest).await.unwrap());
    tick().await;
    let after_requeue = db
        .scans()
        .take_scan_job(now_millis() + 1, now + 400_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before_requeue.attempts, after_requeue.attempts);
    let late = ScanOutcome::Failed {
        reason: "late".into(),
        retry_at: None,
    };
    assert!(!db
        .scans()
        .finish_scan(&before_requeue, &late)
        .await
        .unwrap());
    assert!(db.scans().queue_scan(repo, &digest).await.unwrap());
    // A retry waits for its time.
    let third = db
        .scans()
        .take_scan_job(now_millis() + 1, now + 400_000)
        .await
        .unwrap()
        .unwrap();
    let retry = ScanOutcome::Failed {
        reason: "flaky".into(),
        retry_at: Some(now + 500_000),
    };
    assert!(db.scans().finish_scan(&third, &retry).await.unwrap());
    assert!(db
        .scans()
        .take_scan_job(now + 499_000, now + 600_000)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .scans()
        .take_scan_job(now + 500_001, now + 600_000)
        .await
        .unwrap()
        .is_some());
}

/// Of 8 workers racing for 3 due jobs, each job goes to exactly one.
async fn scan_jobs_concurrent(db: &Db) {
    let repo = db
        .repositories()
        .ensure_repository(&RepoName::parse("scan/race").unwrap())
        .await
        .unwrap();
    db.scans().set_scan_on_push(repo, true).await.unwrap();
    for i in 0..3 {
        db.manifests()
            .put_manifest(repo, &manifest(format!("{{\"race\":{i}}}").as_bytes()), &[])
            .await
            .unwrap();
    }
    let now = now_millis() + 1000;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let meta = db.meta.clone();
        tasks.push(tokio::spawn(async move {
            meta.scans()
                .take_scan_job(now, now + 60_000)
                .await
                .unwrap()
                .map(|j| j.digest)
        }));
    }
    let mut taken = Vec::new();
    for t in tasks {
        taken.extend(t.await.unwrap());
    }
    taken.sort();
    let before = taken.len();
    taken.dedup();
    assert_eq!((before, taken.len()), (3, 3), "{taken:?}");
}

// --- schema parity ----------------------------------------------------------------------------

type Columns = BTreeSet<(String, String)>;
type ColumnShapes = BTreeSet<(String, String, &'static str, bool)>;
type ForeignKeys = BTreeSet<(String, String, String, String, String)>;

fn type_class(t: &str) -> &'static str {
    match t.to_ascii_lowercase().as_str() {
        "integer" | "bigint" => "int",
        "text" => "text",
        "blob" | "bytea" => "bytes",
        other => panic!("unexpected column type {other}"),
    }
}

fn on_delete(action: &str) -> String {
    match action {
        "a" | "NO ACTION" => "no action".into(),
        "c" | "CASCADE" => "cascade".into(),
        "r" | "RESTRICT" => "restrict".into(),
        "n" | "SET NULL" => "set null".into(),
        "d" | "SET DEFAULT" => "set default".into(),
        other => panic!("unexpected ON DELETE action {other}"),
    }
}

async fn sqlite_schema(url: &str) -> (Columns, ColumnShapes, BTreeSet<String>, ForeignKeys) {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let columns = rows
        .iter()
        .map(|(t, c, ..)| (t.clone(), c.clone()))
        .collect();
    // SQLite lets a non-INTEGER PRIMARY KEY column hold NULL (a documented legacy quirk);
    // PostgreSQL does not. Count primary-key columns as NOT NULL to compare intent.
    let shapes = rows
        .iter()
        .map(|(t, c, ty, nn, pk)| (t.clone(), c.clone(), type_class(ty), *nn == 1 || *pk > 0))
        .collect();
    let indexes: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    let fks: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT m.name, f.\"from\", f.\"table\", f.\"to\", f.on_delete \
         FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (
        columns,
        shapes,
        indexes.into_iter().map(|(n,)| n).collect(),
        fks.into_iter()
            .map(|(t, c, rt, rc, od)| (t, c, rt, rc, on_delete(&od)))
            .collect(),
    )
}

async fn postgres_schema(url: &str) -> (Columns, ColumnShapes, BTreeSet<String>, ForeignKeys) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let columns = rows
        .iter()
        .map(|(t, c, ..)| (t.clone(), c.clone()))
        .collect();
    let shapes = rows
        .iter()
        .map(|(t, c, ty, nullable)| (t.clone(), c.clone(), type_class(ty), nullable == "NO"))
        .collect();
    // Explicitly created indexes only (not those backing PRIMARY KEY / UNIQUE constraints).
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = i.relnamespace \
         WHERE n.nspname = 'public' AND NOT EXISTS \
         (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u'))",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let fks: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text, \
         ra.attname::text, c.confdeltype::text \
         FROM pg_constraint c \
         JOIN pg_namespace n ON n.oid = c.connamespace \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] \
         WHERE c.contype = 'f' AND n.nspname = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (
        columns,
        shapes,
        indexes.into_iter().map(|(n,)| n).collect(),
        fks.into_iter()
            .map(|(t, c, rt, rc, od)| (t, c, rt, rc, on_delete(&od)))
            .collect(),
    )
}

#[tokio::test]
async fn same_schema_on_both_dialects() {
    let lite = Db::open(Backend::Sqlite).await;
    let pg = Db::open(Backend::Postgres).await;
    let (lite_cols, lite_shapes, lite_idx, lite_fks) = sqlite_schema(&lite.url).await;
    let (pg_cols, pg_shapes, pg_idx, pg_fks) = postgres_schema(&pg.url).await;

    let tables: BTreeSet<&str> = lite_cols.iter().map(|(t, _)| t.as_str()).collect();
    for t in [
        "repositories",
        "blobs",
        "repository_blobs",
        "manifests",
        "manifest_references",
        "tags",
        "uploads",
        "leases",
    ] {
        assert!(tables.contains(t), "table {t} missing: {tables:?}");
    }
    assert_eq!(lite_cols, pg_cols, "tables and columns");
    assert_eq!(lite_shapes, pg_shapes, "column types and nullability");
    assert_eq!(lite_idx, pg_idx, "secondary indexes");
    assert!(!lite_fks.is_empty());
    assert_eq!(lite_fks, pg_fks, "foreign keys and their ON DELETE actions");
    lite.finish().await;
    pg.finish().await;
}

/// An index with two children and a referrer: expiring it removes the index, its referrer and
/// the child nothing else needs; the child another index lists, and the tagged child, stay.
/// lifecycle_images lists neither untagged children nor referrers.
async fn lifecycle_expire(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("lc/expire"))
        .await
        .unwrap();
    let child_a = manifest(b"{\"child\":\"a\"}");
    let child_b = manifest(b"{\"child\":\"b\"}");
    let child_c = manifest(b"{\"child\":\"c\"}");
    for m in [&child_a, &child_b] {
        db.manifests().put_manifest(r, m, &[]).await.unwrap();
    }
    db.manifests()
        .put_manifest(r, &child_c, &[tag("c")])
        .await
        .unwrap();
    let index = |content: &str, children: &[&NewManifest]| NewManifest {
        references: children
            .iter()
            .map(|c| (c.digest.to_string(), "manifest"))
            .collect(),
        depth: 1,
        ..manifest(content.as_bytes())
    };
    let idx = index("idx-1", &[&child_a, &child_b, &child_c]);
    let other = index("idx-2", &[&child_b]);
    db.manifests()
        .put_manifest(r, &idx, &[tag("multi"), tag("v1")])
        .await
        .unwrap();
    db.manifests()
        .put_manifest(r, &other, &[tag("other")])
        .await
        .unwrap();
    let sig = referrer("sig", &idx.digest, None);
    db.manifests().put_manifest(r, &sig, &[]).await.unwrap();
    let sig_of_sig = referrer("sig-of-sig", &sig.digest, None);
    db.manifests()
        .put_manifest(r, &sig_of_sig, &[])
        .await
        .unwrap();

    let mut listed: Vec<String> = db
        .lifecycle()
        .lifecycle_images(r)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.digest)
        .collect();
    listed.sort();
    let mut want = vec![
        idx.digest.to_string(),
        other.digest.to_string(),
        child_c.digest.to_string(),
    ];
    want.sort();
    assert_eq!(listed, want);

    let d = idx.digest.to_string();
    // Tags changed since evaluation: nothing happens.
    let changed = db
        .lifecycle()
        .expire_image(r, "lc/expire", &d, &["v1".to_owned()], 3)
        .await
        .unwrap();
    assert_eq!(changed, ExpireOutcome::Changed);
    let outcome = db
        .lifecycle()
        .expire_image(
            r,
            "lc/expire",
            &d,
            &["v1".to_owned(), "multi".to_owned()],
            3,
        )
        .await
        .unwrap();
    let mut removed = vec![
        child_a.digest.to_string(),
        sig.digest.to_string(),
        sig_of_sig.digest.to_string(),
    ];
    removed.sort();
    assert_eq!(
        outcome,
        ExpireOutcome::Expired {
            manifest_deleted: true,
            removed: removed.clone()
        }
    );
    for gone in [&idx, &child_a, &sig, &sig_of_sig] {
        assert!(db
            .manifests()
            .manifest_by_digest(r, &gone.digest)
            .await
            .unwrap()
            .is_none());
    }
    for kept in [&child_b, &child_c, &other] {
        assert!(db
            .manifests()
            .manifest_by_digest(r, &kept.digest)
            .await
            .unwrap()
            .is_some());
    }
    assert!(db
        .manifests()
        .manifest_by_tag(r, &tag("multi"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifests()
        .manifest_by_tag(r, &tag("c"))
        .await
        .unwrap()
        .is_some());

    // A tagged child another index lists loses its tags but keeps its manifest.
    let outcome = db
        .lifecycle()
        .expire_image(r, "lc/expire", &child_b.digest.to_string(), &[], 1)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ExpireOutcome::Expired {
            manifest_deleted: false,
            removed: vec![]
        }
    );
    assert!(db
        .manifests()
        .manifest_by_digest(r, &child_b.digest)
        .await
        .unwrap()
        .is_some());

    let audit = db
        .lifecycle()
        .lifecycle_audit(Some("lc/expire"), None, 0, 100)
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].digest, d);
    assert_eq!(audit[0].tags, vec!["multi", "v1"]);
    assert_eq!(audit[0].rule_priority, 3);
    assert_eq!(audit[0].removed, removed);
    assert!(db
        .lifecycle()
        .lifecycle_audit(Some("lc/other"), None, 0, 100)
        .await
        .unwrap()
        .is_empty());
    let after = db
        .lifecycle()
        .lifecycle_audit(None, None, audit[0].id, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
}

async fn lifecycle_policy_preview_and_pulls(db: &Db) {
    let r = db
        .repositories()
        .ensure_repository(&repo("lc/policy"))
        .await
        .unwrap();
    assert!(db.lifecycle().lifecycle_policy(r).await.unwrap().is_none());
    db.lifecycle().put_lifecycle_policy(r, "one").await.unwrap();
    db.lifecycle().put_lifecycle_policy(r, "two").await.unwrap();
    assert_eq!(
        db.lifecycle()
            .lifecycle_policy(r)
            .await
            .unwrap()
            .unwrap()
            .text,
        "two"
    );
    assert_eq!(
        db.lifecycle()
            .lifecycle_policy(r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_at,
        None
    );
    db.lifecycle()
        .mark_lifecycle_evaluated(r, 1234)
        .await
        .unwrap();
    assert_eq!(
        db.lifecycle()
            .lifecycle_policy(r)
            .await
            .unwrap()
            .unwrap()
            .last_evaluated_at,
        Some(1234)
    );
    let with: Vec<String> = db
        .lifecycle()
        .repositories_with_lifecycle_policy()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(with, vec!["lc/policy"]);
    assert_eq!(
        db.lifecycle()
            .delete_lifecycle_policy(r)
            .await
            .unwrap()
            .unwrap()
            .text,
        "two"
    );
    assert!(db
        .lifecycle()
        .delete_lifecycle_policy(r)
        .await
        .unwrap()
        .is_none());

    assert!(db.lifecycle().lifecycle_preview(r).await.unwrap().is_none());
    db.lifecycle()
        .put_lifecycle_preview(r, "p1", "{}")
        .await
        .unwrap();
    db.lifecycle()
        .put_lifecycle_preview(r, "p2", "[]")
        .await
        .unwrap();
    let p = db.lifecycle().lifecycle_preview(r).await.unwrap().unwrap();
    assert_eq!((p.policy_text.as_str(), p.result.as_str()), ("p2", "[]"));

    let m = manifest(b"{\"pulled\":1}");
    db.manifests()
        .put_manifest(r, &m, &[tag("p")])
        .await
        .unwrap();
    let id = db.lifecycle().lifecycle_images(r).await.unwrap()[0].manifest_id;
    assert_eq!(
        db.lifecycle().lifecycle_images(r).await.unwrap()[0].last_pulled_at,
        None
    );
    db.lifecycle()
        .record_pulls(&[id, 999_999], 5_000)
        .await
        .unwrap();
    db.lifecycle().record_pulls(&[id], 4_000).await.unwrap(); // never moves backwards
    assert_eq!(
        db.lifecycle().lifecycle_images(r).await.unwrap()[0].last_pulled_at,
        Some(5_000)
    );
    let many: Vec<i64> = (0..1200).collect();
    db.lifecycle().record_pulls(&many, 6_000).await.unwrap();
}

/// The console's repositories listing: a prefix as a name range (bytewise, whatever the
/// database's collation), keyset pages inside it, one aggregate per page; and referrers of
/// several subjects at once.
async fn repository_summaries(db: &Db) {
    let names = [
        "team/app",
        "team/app-x",
        "team/app/sub",
        "team/apps",
        "team0",
        "team-x",
        "tea",
        "zeta",
    ];
    let mut ids = std::collections::HashMap::new();
    for n in names {
        let id = db.repositories().ensure_repository(&repo(n)).await.unwrap();
        ids.insert(n, id);
    }
    let list = |after: Option<&'static str>,
                lower: &'static str,
                upper: Option<&'static str>,
                limit| async move {
        db.repositories()
            .list_repository_rows_in(after, lower, upper, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
    };
    let upper = berth::service::prefix_upper_bound("team/app");
    assert_eq!(upper.as_deref(), Some("team/apq"));
    assert_eq!(
        list(None, "team/app", Some("team/apq"), 100).await,
        ["team/app", "team/app-x", "team/app/sub", "team/apps"]
    );
    assert_eq!(
        list(Some("team/app-x"), "team/app", Some("team/apq"), 1).await,
        ["team/app/sub"]
    );
    assert_eq!(list(None, "team/", Some("team0"), 100).await.len(), 4);
    assert_eq!(
        list(Some("team/apps"), "", None, 100).await,
        ["team0", "zeta"]
    );

    let app = ids["team/app"];
    let (a, b) = (manifest(b"{\"a\":1}"), manifest(b"{\"b\":2}"));
    db.manifests()
        .put_manifest(app, &a, &[tag("a")])
        .await
        .unwrap();
    tick().await;
    db.manifests().put_manifest(app, &b, &[]).await.unwrap();
    let sig = referrer("sig", &a.digest, Some("application/vnd.example.sig"));
    db.manifests().put_manifest(app, &sig, &[]).await.unwrap();
    db.uploads()
        .create_upload("sz", app, "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("sz", app, &digest("layer"), 1234, "kl", None)
        .await
        .unwrap();
    let raw = db.raw().await;
    let id_a: i64 = sqlx::query("SELECT id FROM manifests WHERE digest = $1")
        .bind(a.digest.to_string())
        .fetch_one(&raw)
        .await
        .unwrap()
        .try_get("id")
        .unwrap();
    db.lifecycle().record_pulls(&[id_a], 7_000).await.unwrap();

    let empty = ids["zeta"];
    let mut rows = db
        .repositories()
        .repository_summaries(&[app, empty])
        .await
        .unwrap();
    rows.sort_by_key(|r| r.repository_id);
    let app_row = rows.iter().find(|r| r.repository_id == app).unwrap();
    assert_eq!(app_row.image_count, 3);
    assert_eq!(app_row.total_size, 1234);
    assert!(app_row.last_pushed_at.is_some());
    assert_eq!(app_row.last_pulled_at, Some(7_000));
    let empty_row = rows.iter().find(|r| r.repository_id == empty).unwrap();
    assert_eq!(
        (
            empty_row.image_count,
            empty_row.total_size,
            empty_row.last_pushed_at
        ),
        (0, 0, None)
    );

    let refs = db
        .manifests()
        .referrers_of(app, &[a.digest.to_string(), b.digest.to_string()])
        .await
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].0, a.digest.to_string());
    assert_eq!(refs[0].1.digest, sig.digest.to_string());
}

/// DescribeImages' sizes: an image's config and layers; an index's child images in the
/// repository, a layer they share counted once; a child in another repository not at all.
async fn image_sizes(db: &Db) {
    let app = db
        .repositories()
        .ensure_repository(&repo("sizes/app"))
        .await
        .unwrap();
    let other = db
        .repositories()
        .ensure_repository(&repo("sizes/other"))
        .await
        .unwrap();
    let blob = |seed: &'static str, size: u64, repository: i64| async move {
        let d = digest(seed);
        let upload = format!("u-{seed}-{repository}");
        db.uploads()
            .create_upload(&upload, repository, "sha256", "{}")
            .await
            .unwrap();
        db.blob_index()
            .commit_blob(&upload, repository, &d, size, &format!("k-{seed}"), None)
            .await
            .unwrap();
        d.to_string()
    };
    let (config_a, config_b, layer) = (
        blob("config-a", 10, app).await,
        blob("config-b", 20, app).await,
        blob("shared-layer", 1000, app).await,
    );
    let config_elsewhere = blob("config-elsewhere", 5000, other).await;
    let image = |content: &[u8], config: &str, layer: &str| NewManifest {
        references: vec![(config.to_owned(), "config"), (layer.to_owned(), "layer")],
        ..manifest(content)
    };
    let a = image(b"{\"image\":\"a\"}", &config_a, &layer);
    let b = image(b"{\"image\":\"b\"}", &config_b, &layer);
    let elsewhere = image(b"{\"image\":\"elsewhere\"}", &config_elsewhere, &layer);
    for m in [&a, &b] {
        db.manifests().put_manifest(app, m, &[]).await.unwrap();
    }
    db.manifests()
        .put_manifest(other, &elsewhere, &[])
        .await
        .unwrap();
    let index = NewManifest {
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        references: vec![
            (a.digest.to_string(), "manifest"),
            (b.digest.to_string(), "manifest"),
            (elsewhere.digest.to_string(), "manifest"),
        ],
        ..manifest(b"{\"index\":1}")
    };
    db.manifests()
        .put_manifest(app, &index, &[tag("multi")])
        .await
        .unwrap();

    let page = db
        .images()
        .image_page(app, None, berth::meta::TagFilter::Any, 10)
        .await
        .unwrap();
    let size_of = |m: &NewManifest| {
        page.iter()
            .find(|r| r.digest == m.digest.to_string())
            .map(|r| (r.size, r.tags.clone()))
            .unwrap()
    };
    assert_eq!(page.len(), 3);
    assert_eq!(size_of(&a), (1010, vec![]));
    assert_eq!(size_of(&b), (1020, vec![]));
    assert_eq!(size_of(&index), (1030, vec!["multi".to_owned()]));
}

/// The replicas' one-statement reads: a manifest by tag or digest and a blob, found through the
/// repository's name, and nothing for another repository's content or a missing repository.
async fn lookups_by_repository_name(db: &Db) {
    use berth::oci::Reference;
    let app = db
        .repositories()
        .ensure_repository(&repo("named/app"))
        .await
        .unwrap();
    db.repositories()
        .ensure_repository(&repo("named/other"))
        .await
        .unwrap();
    let m = manifest(b"{\"named\":1}");
    db.manifests()
        .put_manifest(app, &m, &[tag("v1")])
        .await
        .unwrap();
    let by_tag = Reference::Tag(tag("v1"));
    let by_digest = Reference::Digest(m.digest.clone());
    for reference in [&by_tag, &by_digest] {
        let (repository_id, row) = db
            .manifests()
            .manifest_in_named_repository("named/app", reference)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{reference:?} in named/app"));
        assert_eq!(repository_id, app);
        assert_eq!(row.digest, m.digest.to_string());
        assert_eq!(&row.content[..], &m.content[..]);
        for elsewhere in ["named/other", "named/missing"] {
            assert!(db
                .manifests()
                .manifest_in_named_repository(elsewhere, reference)
                .await
                .unwrap()
                .is_none());
        }
    }
    assert!(db
        .manifests()
        .manifest_in_named_repository("named/app", &Reference::Tag(tag("v2")))
        .await
        .unwrap()
        .is_none());

    let d = digest("named-layer");
    db.uploads()
        .create_upload("named-up", app, "sha256", "{}")
        .await
        .unwrap();
    db.blob_index()
        .commit_blob("named-up", app, &d, 42, "k-named", None)
        .await
        .unwrap();
    let blob = db
        .blob_index()
        .blob_in_named_repository("named/app", &d)
        .await
        .unwrap()
        .expect("the blob in named/app");
    assert_eq!((blob.size, blob.object_key.as_str()), (42, "k-named"));
    for elsewhere in ["named/other", "named/missing"] {
        assert!(db
            .blob_index()
            .blob_in_named_repository(elsewhere, &d)
            .await
            .unwrap()
            .is_none());
    }
}
