//! Identity rows: principals (users and robot accounts), groups and their members, access keys,
//! policy documents, signing keys and settings. Access-key secrets and signing keys are stored
//! encrypted (see `secrets`), each bound to its row; this module encrypts and decrypts them.

use super::{Audit, IdentityStore};
use std::collections::BTreeMap;

use sqlx::Row;

use super::now_millis;
use crate::error::{Error, Result};
use crate::secrets::sealed_key_id;

/// What an encrypted access-key secret is bound to: its row.
fn access_key_context(key_id: &str) -> String {
    format!("access_keys/{key_id}")
}

/// What an encrypted signing key is bound to: its row.
fn signing_key_context(kid: &str) -> String {
    format!("signing_keys/{kid}")
}

/// A user or robot account.
#[derive(Debug, Clone)]
pub struct PrincipalRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub expires_at: Option<i64>,
    pub credential_version: i64,
    pub created_at: i64,
}

/// A group of principals.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

fn group_row(r: &sqlx::any::AnyRow) -> Result<GroupRow> {
    Ok(GroupRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn principal_row(r: &sqlx::any::AnyRow) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        expires_at: r.try_get("expires_at")?,
        credential_version: r.try_get("credential_version")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The policy scope of repository policies (their target is the repository's name).
const REPOSITORY_POLICY_SCOPE: &str = "repository";

impl IdentityStore {
    pub async fn principal(&self, kind: &str, name: &str) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query("SELECT * FROM principals WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .fetch_optional(&self.meta.write)
            .await?;
        row.as_ref().map(principal_row).transpose()
    }

    /// Creates the principal unless it exists (the first of concurrent callers wins); returns the
    /// row and whether this call created it.
    pub async fn create_principal_if_missing(
        &self,
        kind: &str,
        name: &str,
        password_hash: &str,
    ) -> Result<(PrincipalRow, bool)> {
        let created = sqlx::query(
            "INSERT INTO principals (kind, name, password_hash, credential_version, created_at) \
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (kind, name) DO NOTHING",
        )
        .bind(kind)
        .bind(name)
        .bind(password_hash)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?
        .rows_affected()
            == 1;
        let row = self.principal(kind, name).await?.ok_or_else(|| {
            crate::error::Error::Internal("principal vanished after insert".into())
        })?;
        Ok((row, created))
    }

    /// Replaces a principal's password hash and bumps its credential version, so that tokens
    /// issued for the old credential stop working.
    pub async fn set_password(&self, principal_id: i64, password_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE principals SET password_hash = $1, credential_version = credential_version + 1 \
             WHERE id = $2",
        )
        .bind(password_hash)
        .bind(principal_id)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Sets (or moves) an access key to a principal.
    pub async fn put_access_key(
        &self,
        principal_id: i64,
        key_id: &str,
        secret: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (key_id, principal_id, secret, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key_id) DO UPDATE SET principal_id = excluded.principal_id, \
             secret = excluded.secret",
        )
        .bind(key_id)
        .bind(principal_id)
        .bind(self.meta.secrets()?.seal(secret, &access_key_context(key_id)))
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// An access key and its (decrypted) secret. A secret that does not decrypt is an error
    /// naming the key, never the stored text.
    pub async fn access_key(&self, key_id: &str) -> Result<Option<(AccessKeyRow, String)>> {
        let row = sqlx::query(
            "SELECT key_id, principal_id, secret, status, created_at FROM access_keys \
             WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.meta.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("secret")?;
        let secret = self
            .meta
            .secrets()?
            .open(&stored, &access_key_context(key_id))
            .map_err(|e| Error::Internal(format!("the secret of access key {key_id}: {e}")))?;
        Ok(Some((access_key_row(&row)?, secret)))
    }

    /// Activates or deactivates one of a principal's access keys; false if it has no such key.
    pub async fn set_access_key_active(
        &self,
        principal_id: i64,
        key_id: &str,
        active: bool,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_keys SET status = $1 WHERE principal_id = $2 AND key_id = $3",
        )
        .bind(if active { ACTIVE } else { INACTIVE })
        .bind(principal_id)
        .bind(key_id)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a (validated) policy document for `scope` / `target`, replacing any earlier one.
    pub async fn put_policy(&self, scope: &str, target: &str, document: &str) -> Result<()> {
        let mut tx = self.meta.write.begin().await?;
        sqlx::query(
            "INSERT INTO policies (scope, target, document, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, target) DO UPDATE SET document = excluded.document, \
             updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(target)
        .bind(document)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        if scope == REPOSITORY_POLICY_SCOPE {
            let document = serde_json::from_str(document).ok();
            super::events::record_in(
                &mut tx,
                &super::events::setting_changed(target, "REPOSITORY_POLICY", "PUT", document),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a policy document; false if there was none.
    pub async fn delete_policy(&self, scope: &str, target: &str) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        let done = sqlx::query("DELETE FROM policies WHERE scope = $1 AND target = $2")
            .bind(scope)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() == 1;
        if deleted && scope == REPOSITORY_POLICY_SCOPE {
            super::events::record_in(
                &mut tx,
                &super::events::setting_changed(target, "REPOSITORY_POLICY", "DELETE", None),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn policy(&self, scope: &str, target: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT document FROM policies WHERE scope = $1 AND target = $2")
            .bind(scope)
            .bind(target)
            .fetch_optional(&self.meta.read)
            .await?;
        row.map(|r| Ok(r.try_get("document")?)).transpose()
    }

    /// Whether [`IdentityStore::delete_marked_policies`] would remove anything (so start-up writes only
    /// when something changed).
    pub async fn has_marked_policies(&self, scope: &str, marker: &str, keep: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM policies WHERE scope = $1 AND target <> $2 AND document LIKE $3 \
             LIMIT 1",
        )
        .bind(scope)
        .bind(keep)
        .bind(format!("%{marker}%"))
        .fetch_optional(&self.meta.read)
        .await?;
        Ok(row.is_some())
    }

    /// Removes the policies of `scope` whose target is not `keep` and whose document contains
    /// `marker` (used to move the bootstrap admin's policy when the admin changes).
    pub async fn delete_marked_policies(
        &self,
        scope: &str,
        marker: &str,
        keep: &str,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM policies WHERE scope = $1 AND target <> $2 AND document LIKE $3",
        )
        .bind(scope)
        .bind(keep)
        .bind(format!("%{marker}%"))
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// What [`IdentityStore::seal_secrets`] did, and which key now encrypts how many stored secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Rows stored in plaintext (by a Berth before encryption at rest) that are now encrypted.
    pub encrypted: u64,
    /// Rows moved from an older key to the current one.
    pub reencrypted: u64,
    /// Stored secrets per key id, after the pass.
    pub by_key: BTreeMap<String, u64>,
}

/// One stored secret as [`IdentityStore::seal_secrets`] sees it.
struct StoredSecret {
    table: &'static str,
    id: String,
    stored: String,
}

impl StoredSecret {
    fn context(&self) -> String {
        match self.table {
            "access_keys" => access_key_context(&self.id),
            "event_rules" => super::events::targets_context(&self.id),
            _ => signing_key_context(&self.id),
        }
    }

    fn describe(&self) -> String {
        match self.table {
            "access_keys" => format!("the secret of access key {}", self.id),
            "event_rules" => format!("the targets of event rule {}", self.id),
            _ => format!("token signing key {}", self.id),
        }
    }
}

/// Encryption of stored secrets as a whole: the start-up pass and rotation.
impl IdentityStore {
    /// Encrypts every secret still stored in plaintext (rows an older Berth wrote) and, with
    /// `reencrypt`, moves every secret encrypted with an older key to the current one (`berth
    /// secrets rotate`), in one transaction. Idempotent, and safe when replicas run it at once
    /// (each row is replaced only if it still holds what was read). Refuses, changing nothing,
    /// when a stored secret is encrypted with a key the key file lacks (or does not decrypt):
    /// that is a wrong or incomplete key file, and running on would break those credentials.
    pub async fn seal_secrets(&self, reencrypt: bool) -> Result<SealReport> {
        let secrets = self.meta.secrets()?;
        let mut tx = self.meta.write.begin().await?;
        let mut rows = Vec::new();
        for (table, id_column, secret_column) in [
            ("access_keys", "key_id", "secret"),
            ("signing_keys", "kid", "pem"),
            ("event_rules", "name", "targets"),
        ] {
            // Table and column names are the constants above, never input.
            let sql = format!("SELECT {id_column} AS id, {secret_column} AS stored FROM {table}");
            for r in sqlx::query(&sql).fetch_all(&mut *tx).await? {
                rows.push(StoredSecret {
                    table,
                    id: r.try_get("id")?,
                    stored: r.try_get("stored")?,
                });
            }
        }
        let mut report = SealReport::default();
        let mut unusable: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in &rows {
            let replacement = match sealed_key_id(&row.stored) {
                None => {
                    report.encrypted += 1;
                    Some(secrets.seal(&row.stored, &row.context()))
                }
                Some(id) if !secrets.holds(id) => {
                    unusable
                        .entry(format!("key id {id} is not in the key file"))
                        .or_default()
                        .push(row.describe());
                    None
                }
                Some(id) if reencrypt && id != secrets.current_id() => {
                    match secrets.open(&row.stored, &row.context()) {
                        Ok(plain) => {
                            report.reencrypted += 1;
                            Some(secrets.seal(&plain, &row.context()))
                        }
                        Err(e) => {
                            unusable
                                .entry(e.to_string())
                                .or_default()
                                .push(row.describe());
                            None
                        }
                    }
                }
                Some(_) => None,
            };
            let key = replacement
                .as_deref()
                .and_then(sealed_key_id)
                .or_else(|| sealed_key_id(&row.stored))
                .unwrap_or_default()
                .to_owned();
            *report.by_key.entry(key).or_default() += 1;
            if let Some(new) = replacement {
                let (id_column, secret_column) = match row.table {
                    "access_keys" => ("key_id", "secret"),
                    "event_rules" => ("name", "targets"),
                    _ => ("kid", "pem"),
                };
                let sql = format!(
                    "UPDATE {} SET {secret_column} = $1 WHERE {id_column} = $2 \
                     AND {secret_column} = $3",
                    row.table
                );
                sqlx::query(&sql)
                    .bind(new)
                    .bind(&row.id)
                    .bind(&row.stored)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !unusable.is_empty() {
            tx.rollback().await?;
            let problems: Vec<String> = unusable
                .iter()
                .map(|(why, rows)| format!("{} ({why})", rows.join(", ")))
                .collect();
            return Err(Error::Internal(format!(
                "stored secrets cannot be read with the secrets key file (key ids: {}): {}. \
                 Give Berth the key file these were encrypted with; a key may leave the file \
                 only after `berth secrets rotate` has moved every secret off it",
                secrets.ids().collect::<Vec<_>>().join(", "),
                problems.join("; ")
            )));
        }
        tx.commit().await?;
        if report.encrypted + report.reencrypted > 0 {
            self.scrub_replaced_secrets().await?;
        }
        Ok(report)
    }

    /// Drops the old copies of rows [`IdentityStore::seal_secrets`] replaced, so that plaintext (or
    /// text under a retired key) does not linger in the database files: on SQLite the rows were
    /// rewritten with `secure_delete` and the old page versions in the WAL are discarded; on
    /// PostgreSQL the two small tables are rewritten without their dead row versions.
    async fn scrub_replaced_secrets(&self) -> Result<()> {
        let sql = match self.meta.dialect {
            super::Dialect::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            super::Dialect::Postgres => "VACUUM FULL access_keys, signing_keys",
        };
        sqlx::query(sql).execute(&self.meta.write).await?;
        Ok(())
    }
}

/// A token signing key (PKCS#8 PEM, decrypted), newest first when listed.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub pem: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl IdentityStore {
    pub async fn principal_by_id(&self, id: i64) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query("SELECT * FROM principals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.meta.read)
            .await?;
        row.as_ref().map(principal_row).transpose()
    }

    /// The groups (id, name) a principal belongs to, by name.
    pub async fn groups_of(&self, principal_id: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name FROM groups g JOIN group_members m ON m.group_id = g.id \
             WHERE m.principal_id = $1 ORDER BY g.name",
        )
        .bind(principal_id)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// Signing keys not retired before `now`, newest first (ties broken by kid so every replica
    /// picks the same active key), decrypted. A key that does not decrypt (written by a replica
    /// with another secrets key file) is skipped and logged, so the others keep working.
    pub async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, pem, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(now)
        .fetch_all(&self.meta.read)
        .await?;
        let secrets = self.meta.secrets()?;
        let mut keys = Vec::with_capacity(rows.len());
        for r in &rows {
            let kid: String = r.try_get("kid")?;
            let stored: String = r.try_get("pem")?;
            let pem = match secrets.open(&stored, &signing_key_context(&kid)) {
                Ok(pem) => pem,
                Err(e) => {
                    tracing::error!(%kid, error = %e, "token signing key skipped");
                    continue;
                }
            };
            keys.push(SigningKeyRow {
                kid,
                pem,
                created_at: r.try_get("created_at")?,
                retired_at: r.try_get("retired_at")?,
            });
        }
        Ok(keys)
    }

    /// Stores a new signing key, encrypted (a key with the same kid is left as it is).
    pub async fn insert_signing_key(&self, kid: &str, pem: &str, created_at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, pem, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(self.meta.secrets()?.seal(pem, &signing_key_context(kid)))
        .bind(created_at)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Schedules the retirement of every key but `keep` at `retire_at` (keys already retiring
    /// earlier keep their date).
    pub async fn retire_signing_keys_except(&self, keep: &str, retire_at: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 \
             WHERE kid <> $2 AND (retired_at IS NULL OR retired_at > $1)",
        )
        .bind(retire_at)
        .bind(keep)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.meta.read)
            .await?;
        row.map(|r| Ok(r.try_get("value")?)).transpose()
    }

    pub async fn put_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }
}

/// Identity management for the admin API.
impl IdentityStore {
    /// Creates a principal with credential version 1; `None` if `kind`/`name` exists.
    pub async fn create_principal(
        &self,
        kind: &str,
        name: &str,
        password_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<Option<PrincipalRow>> {
        let created = sqlx::query(
            "INSERT INTO principals (kind, name, password_hash, expires_at, credential_version, \
             created_at) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (kind, name) DO NOTHING",
        )
        .bind(kind)
        .bind(name)
        .bind(password_hash)
        .bind(expires_at)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Ok(None);
        }
        self.principal(kind, name).await
    }

    /// Every principal of `kind`, by name.
    pub async fn principals(&self, kind: &str) -> Result<Vec<PrincipalRow>> {
        let rows = sqlx::query("SELECT * FROM principals WHERE kind = $1 ORDER BY name")
            .bind(kind)
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter().map(principal_row).collect()
    }

    /// Deletes a principal with its identity policy; its access keys and group memberships go by
    /// cascade. False if it did not exist.
    pub async fn delete_principal(&self, id: i64) -> Result<bool> {
        self.delete_with_identity_policy("principals", "principal", id)
            .await
    }

    /// Deletes row `id` of `table` and the identity policy stored under (`scope`, `id`) in one
    /// transaction. `table` and `scope` are constants of this module, never input.
    async fn delete_with_identity_policy(
        &self,
        table: &'static str,
        scope: &'static str,
        id: i64,
    ) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        sqlx::query("DELETE FROM policies WHERE scope = $1 AND target = $2")
            .bind(scope)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates a group; `None` if the name is taken.
    pub async fn create_group(&self, name: &str) -> Result<Option<GroupRow>> {
        let created = sqlx::query(
            "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Ok(None);
        }
        self.group(name).await
    }

    pub async fn group(&self, name: &str) -> Result<Option<GroupRow>> {
        let row = sqlx::query("SELECT id, name, created_at FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.meta.write)
            .await?;
        row.as_ref().map(group_row).transpose()
    }

    /// Every group, by name.
    pub async fn groups(&self) -> Result<Vec<GroupRow>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM groups ORDER BY name")
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter().map(group_row).collect()
    }

    /// Deletes a group with its identity policy; memberships go by cascade.
    pub async fn delete_group(&self, id: i64) -> Result<bool> {
        self.delete_with_identity_policy("groups", "group", id)
            .await
    }

    /// Adds a member; false if it was one already.
    pub async fn add_group_member(&self, group_id: i64, principal_id: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO group_members (group_id, principal_id) VALUES ($1, $2) \
             ON CONFLICT (group_id, principal_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(principal_id)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a member; false if it was not one.
    pub async fn remove_group_member(&self, group_id: i64, principal_id: i64) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND principal_id = $2")
                .bind(group_id)
                .bind(principal_id)
                .execute(&self.meta.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The members of a group, users before robots, by name.
    pub async fn group_members(&self, group_id: i64) -> Result<Vec<PrincipalRow>> {
        let rows = sqlx::query(
            "SELECT p.* FROM principals p JOIN group_members m ON m.principal_id = p.id \
             WHERE m.group_id = $1 ORDER BY p.kind DESC, p.name",
        )
        .bind(group_id)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(principal_row).collect()
    }

    /// Stores a new access key; false if the key id is taken (keys never move between
    /// principals here, unlike [`IdentityStore::put_access_key`]).
    pub async fn create_access_key(
        &self,
        principal_id: i64,
        key_id: &str,
        secret: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO access_keys (key_id, principal_id, secret, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(key_id)
        .bind(principal_id)
        .bind(
            self.meta
                .secrets()?
                .seal(secret, &access_key_context(key_id)),
        )
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A principal's access keys, oldest first (never their secrets).
    pub async fn access_keys_of(&self, principal_id: i64) -> Result<Vec<AccessKeyRow>> {
        let rows = sqlx::query(
            "SELECT key_id, principal_id, status, created_at FROM access_keys \
             WHERE principal_id = $1 ORDER BY created_at, key_id",
        )
        .bind(principal_id)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(access_key_row).collect()
    }

    /// Deletes one of a principal's access keys; false if it has no such key.
    pub async fn delete_access_key(&self, principal_id: i64, key_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM access_keys WHERE principal_id = $1 AND key_id = $2")
            .bind(principal_id)
            .bind(key_id)
            .execute(&self.meta.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Stored access key status values (IAM's).
const ACTIVE: &str = "Active";
const INACTIVE: &str = "Inactive";

/// An access key as stored (its secret is read only with [`IdentityStore::access_key`]).
#[derive(Debug, Clone)]
pub struct AccessKeyRow {
    pub key_id: String,
    pub principal_id: i64,
    /// Inactive keys sign nothing, and what was obtained with them stops working.
    pub active: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

fn access_key_row(r: &sqlx::any::AnyRow) -> Result<AccessKeyRow> {
    let status: String = r.try_get("status")?;
    Ok(AccessKeyRow {
        key_id: r.try_get("key_id")?,
        principal_id: r.try_get("principal_id")?,
        active: status != INACTIVE,
        created_at: r.try_get("created_at")?,
    })
}

/// One audit log entry as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub detail: String,
    pub source_ip: Option<String>,
    /// The kind of credential the call was made with (`password`, `access_key`, ...), empty
    /// for anonymous callers.
    pub credential: String,
}

/// Which audit entries a listing keeps; `None` (or empty) keeps all.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this principal (login name or `anonymous`).
    pub principal: Option<String>,
    /// Exactly this action (`ecr:PutImage`).
    pub action: Option<String>,
    /// Resources containing this text (ignoring ASCII case, alike in both databases).
    pub resource: Option<String>,
    /// Exactly this outcome (`success`, `denied`, `failed`).
    pub outcome: Option<String>,
    /// At or after this time (Unix ms).
    pub since: Option<i64>,
    /// Before this time (Unix ms).
    pub until: Option<i64>,
}

/// `text` with LIKE's wildcards and its escape character escaped (escape `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The audit log.
impl Audit {
    /// Appends an entry (its `id` is ignored and assigned by the database).
    pub async fn insert_audit(&self, entry: &AuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, principal, action, resource, outcome, detail, source_ip, \
             credential) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(entry.at)
        .bind(&entry.principal)
        .bind(&entry.action)
        .bind(&entry.resource)
        .bind(&entry.outcome)
        .bind(&entry.detail)
        .bind(entry.source_ip.as_deref())
        .bind(&entry.credential)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Up to `limit` entries with an id below `before` (all when `None`) that match `filter`,
    /// newest first.
    pub async fn audit_entries(
        &self,
        before: Option<i64>,
        limit: i64,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRow>> {
        // One text for both databases: an empty filter value matches every row. The resource
        // filter is a substring (LIKE with its wildcards escaped, ASCII case ignored as SQLite's LIKE
        // does), the others exact.
        let rows = sqlx::query(
            "SELECT id, at, principal, action, resource, outcome, detail, source_ip, credential \
             FROM audit_log WHERE id < $1 \
             AND ($3 = '' OR principal = $3) AND ($4 = '' OR action = $4) \
             AND ($5 = '' OR lower(resource) LIKE lower($5) ESCAPE '\\') AND ($6 = '' OR outcome = $6) \
             AND at >= $7 AND at < $8 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .bind(filter.principal.as_deref().unwrap_or(""))
        .bind(filter.action.as_deref().unwrap_or(""))
        .bind(
            filter
                .resource
                .as_deref()
                .filter(|r| !r.is_empty())
                .map_or(String::new(), |r| format!("%{}%", escape_like(r))),
        )
        .bind(filter.outcome.as_deref().unwrap_or(""))
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(filter.until.unwrap_or(i64::MAX))
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    principal: r.try_get("principal")?,
                    action: r.try_get("action")?,
                    resource: r.try_get("resource")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                    source_ip: r.try_get("source_ip")?,
                    credential: r.try_get("credential")?,
                })
            })
            .collect()
    }
}
