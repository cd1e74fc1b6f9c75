//! Resource tags (key/value labels on repositories, as ECR's TagResource keeps them).

use super::ResourceTags;
use sqlx::Row;

use super::now_millis;
use crate::error::Result;

impl ResourceTags {
    /// The repository's tags, sorted by key.
    pub async fn repository_tags(&self, repository_id: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM repository_tags WHERE repository_id = $1 ORDER BY tag_key",
        )
        .bind(repository_id)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tag_key")?, r.try_get("tag_value")?)))
            .collect()
    }

    /// Adds or overwrites tags, in one transaction; nothing changes (and the answer is false)
    /// when the repository would end up with more than `max` tags.
    pub async fn put_repository_tags(
        &self,
        repository_id: i64,
        tags: &[(String, String)],
        max: i64,
    ) -> Result<bool> {
        let now = now_millis();
        let mut tx = self.meta.write.begin().await?;
        for (key, value) in tags {
            sqlx::query(
                "INSERT INTO repository_tags (repository_id, tag_key, tag_value, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id, tag_key) DO UPDATE SET \
                 tag_value = excluded.tag_value, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM repository_tags WHERE repository_id = $1",
        )
        .bind(repository_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if count > max {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the tags with these keys (absent keys are ignored).
    pub async fn delete_repository_tags(&self, repository_id: i64, keys: &[String]) -> Result<()> {
        let mut tx = self.meta.write.begin().await?;
        for key in keys {
            sqlx::query("DELETE FROM repository_tags WHERE repository_id = $1 AND tag_key = $2")
                .bind(repository_id)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
