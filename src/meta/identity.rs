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
