//! Upload sessions: their size, storage progress and hash state, so that an upload survives
//! restarts and moves between replicas.

use super::*;

impl Uploads {
    pub async fn create_upload(
        &self,
        id: &str,
        repository_id: i64,
        algorithm: &str,
        staging: &str,
    ) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO uploads (id, repository_id, algorithm, size, staging, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $5, $5)",
        )
        .bind(id)
        .bind(repository_id)
        .bind(algorithm)
        .bind(staging)
        .bind(now)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// The upload session `id` if it belongs to `repository_id`.
    pub async fn upload(&self, id: &str, repository_id: i64) -> Result<Option<UploadRow>> {
        let _timed = self.meta.time(StoreCall::UploadGet);
        let row = sqlx::query("SELECT * FROM uploads WHERE id = $1 AND repository_id = $2")
            .bind(id)
            .bind(repository_id)
            .fetch_optional(&self.meta.write)
            .await?;
        row.as_ref().map(upload_row).transpose()
    }

    /// Moves the upload's size from `expected` to `new`; false when another writer moved it first.
    /// (With the new staging record and hash state, so any replica can continue.)
    pub async fn advance_upload(
        &self,
        id: &str,
        expected: u64,
        new: u64,
        staging: &str,
        hash_state: &[u8],
    ) -> Result<bool> {
        let _timed = self.meta.time(StoreCall::UploadUpdate);
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, staging = $2, hash_state = $3, updated_at = $4 \
             WHERE id = $5 AND size = $6",
        )
        .bind(new as i64)
        .bind(staging)
        .bind(hash_state)
        .bind(now_millis())
        .bind(id)
        .bind(expected as i64)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.meta.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every upload session (for fsck).
    pub async fn all_uploads(&self) -> Result<Vec<UploadRow>> {
        let rows = sqlx::query("SELECT * FROM uploads")
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter().map(upload_row).collect()
    }

    /// Upload sessions last touched before `before` (Unix ms).
    pub async fn stale_uploads(&self, before: i64, limit: i64) -> Result<Vec<UploadRow>> {
        let rows =
            sqlx::query("SELECT * FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2")
                .bind(before)
                .bind(limit)
                .fetch_all(&self.meta.read)
                .await?;
        rows.iter().map(upload_row).collect()
    }
}
