//! Identity rows: principals (users and robot accounts), access keys and policy documents.

use sqlx::Row;

use super::{now_millis, Meta};
use crate::error::Result;

/// A user or robot account.
#[derive(Debug, Clone)]
pub struct PrincipalRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub expires_at: Option<i64>,
    pub credential_version: i64,
}

fn principal_row(r: &sqlx::any::AnyRow) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        expires_at: r.try_get("expires_at")?,
        credential_version: r.try_get("credential_version")?,
    })
}

impl Meta {
    pub async fn principal(&self, kind: &str, name: &str) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query("SELECT * FROM principals WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .fetch_optional(&self.write)
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
        .execute(&self.write)
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
        .execute(&self.write)
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
        .bind(secret)
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The principal and secret of an access key.
    pub async fn access_key(&self, key_id: &str) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT principal_id, secret FROM access_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok((r.try_get("principal_id")?, r.try_get("secret")?)))
            .transpose()
    }

    /// Stores a (validated) policy document for `scope` / `target`, replacing any earlier one.
    pub async fn put_policy(&self, scope: &str, target: &str, document: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (scope, target, document, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, target) DO UPDATE SET document = excluded.document, \
             updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(target)
        .bind(document)
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Removes a policy document; false if there was none.
    pub async fn delete_policy(&self, scope: &str, target: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM policies WHERE scope = $1 AND target = $2")
            .bind(scope)
            .bind(target)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn policy(&self, scope: &str, target: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT document FROM policies WHERE scope = $1 AND target = $2")
            .bind(scope)
            .bind(target)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok(r.try_get("document")?)).transpose()
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
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// A token signing key as stored (PKCS#8 PEM), newest first when listed.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub pem: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Meta {
    pub async fn principal_by_id(&self, id: i64) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query("SELECT * FROM principals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
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
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// Signing keys not retired before `now`, newest first (ties broken by kid so every replica
    /// picks the same active key).
    pub async fn signing_keys(&self, now: i64) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, pem, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    pem: r.try_get("pem")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Stores a new signing key (a key with the same kid is left as it is).
    pub async fn insert_signing_key(&self, kid: &str, pem: &str, created_at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, pem, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(pem)
        .bind(created_at)
        .execute(&self.write)
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
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
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
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
