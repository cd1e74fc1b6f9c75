//! Console sessions: one row per signed-in browser, keyed by the SHA-256 of its cookie's token
//! (the token itself is never stored), with the principal and credential version it signed in
//! with. Sign-out deletes the row; deleting the principal deletes its sessions by cascade.

use sqlx::Row;

use super::{now_millis, ConsoleSessions};
use crate::error::Result;

/// A console session as stored, with its principal's kind and name (joined).
#[derive(Debug, Clone)]
pub struct ConsoleSessionRow {
    pub principal_id: i64,
    pub principal_kind: String,
    pub principal_name: String,
    pub credential_version: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

impl ConsoleSessions {
    /// Stores a new session under `id` (the token's hash).
    pub async fn create(
        &self,
        id: &str,
        principal_id: i64,
        credential_version: i64,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO console_sessions (id, principal_id, credential_version, created_at, \
             expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(id)
        .bind(principal_id)
        .bind(credential_version)
        .bind(now)
        .bind(expires_at)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// The session stored under `id`, with its principal; `None` if there is none (signed out,
    /// principal deleted, or pruned).
    pub async fn get(&self, id: &str) -> Result<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT s.principal_id, p.kind, p.name, s.credential_version, s.created_at, \
             s.expires_at, s.last_seen_at FROM console_sessions s \
             JOIN principals p ON p.id = s.principal_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| {
            Ok(ConsoleSessionRow {
                principal_id: r.try_get("principal_id")?,
                principal_kind: r.try_get("kind")?,
                principal_name: r.try_get("name")?,
                credential_version: r.try_get("credential_version")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
            })
        })
        .transpose()
    }

    /// Records that the session was used at `at` (its idle timeout starts again).
    pub async fn touch(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1",
        )
        .bind(at)
        .bind(id)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Ends the session stored under `id`; false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.meta.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes sessions past their end or idle since before `idle_before`; returns how many.
    pub async fn prune(&self, idle_before: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                .bind(now_millis())
                .bind(idle_before)
                .execute(&self.meta.write)
                .await?;
        Ok(done.rows_affected())
    }
}
