//! Repositories: which exist, their settings (tag mutability), creating and deleting them.

use super::*;

impl Repositories {
    pub async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>> {
        let _timed = self.meta.time(StoreCall::RepositoryGet);
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.meta.read)
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// The repository's id, creating the repository on first use.
    pub async fn ensure_repository(&self, name: &RepoName) -> Result<i64> {
        if let Some(id) = self.repository_id(name).await? {
            return Ok(id);
        }
        sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name.as_str())
            .bind(now_millis())
            .execute(&self.meta.write)
            .await?;
        let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_one(&self.meta.write)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Repository names in lexical order after `last`, at most `limit`.
    pub async fn list_repositories(&self, last: Option<&str>, limit: i64) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.meta.read)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Creates the repository; false if it existed.
    pub async fn create_repository(&self, name: &RepoName) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates the repository with its settings, in one transaction (a crash never leaves a
    /// repository without the settings it was created with); false if it existed (and then
    /// nothing changes).
    pub async fn create_repository_with(
        &self,
        name: &RepoName,
        settings: &NewRepository,
    ) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        let created = sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING \
             RETURNING id",
        )
        .bind(name.as_str())
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = created else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id")?;
        let now = now_millis();
        if settings.tag_mutability != TagMutability::default() {
            set_tag_mutability_in(&mut tx, id, &settings.tag_mutability).await?;
        }
        if settings.scan_on_push {
            sqlx::query(
                "INSERT INTO repository_scanning (repository_id, scan_on_push, updated_at) \
                 VALUES ($1, 1, $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (key, value) in &settings.resource_tags {
            sqlx::query(
                "INSERT INTO repository_tags (repository_id, tag_key, tag_value, updated_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(key)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(text) = &settings.lifecycle_policy {
            sqlx::query(
                "INSERT INTO lifecycle_policies (repository_id, policy_text, updated_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(text) = &settings.repository_policy {
            // Upsert: the policy of a deleted repository of that name may still be stored.
            sqlx::query(
                "INSERT INTO policies (scope, target, document, updated_at) \
                 VALUES ('repository', $1, $2, $3) ON CONFLICT (scope, target) DO UPDATE SET \
                 document = excluded.document, updated_at = excluded.updated_at",
            )
            .bind(name.as_str())
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces the repository's tag mutability setting. Pushes that already read the old
    /// setting in their transaction finish under it.
    pub async fn set_tag_mutability(
        &self,
        repository_id: i64,
        setting: &TagMutability,
    ) -> Result<()> {
        let mut tx = self.meta.write.begin().await?;
        set_tag_mutability_in(&mut tx, repository_id, setting).await?;
        let name = super::replication::repository_name_in(&mut tx, repository_id).await?;
        super::events::record_in(
            &mut tx,
            &super::events::setting_changed(
                &name,
                "IMAGE_TAG_MUTABILITY",
                "PUT",
                Some(serde_json::json!({
                    "imageTagMutability": setting.mode.as_str(),
                    "imageTagMutabilityExclusionFilters": serde_json::from_str::<serde_json::Value>(
                        &setting.filters_json()
                    )
                    .unwrap_or_default(),
                })),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn repository_row(&self, name: &RepoName) -> Result<Option<RepositoryRow>> {
        let row = sqlx::query(&format!("{REPOSITORY_SELECT} WHERE r.name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.meta.read)
            .await?;
        row.map(|r| repository_row(&r)).transpose()
    }

    pub async fn list_repository_rows(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        let rows = sqlx::query(&format!(
            "{REPOSITORY_SELECT} WHERE r.name > $1 ORDER BY r.name LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(repository_row).collect()
    }

    /// Repositories with names after `after` and within `[lower, upper)` (`upper` `None`: no
    /// end), by name, at most `limit`: a prefix search as a range on the name's unique index
    /// (no `LIKE`, whose index use depends on the collation and escaping).
    pub async fn list_repository_rows_in(
        &self,
        after: Option<&str>,
        lower: &str,
        upper: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        let sql = if upper.is_some() {
            format!(
                "{REPOSITORY_SELECT} WHERE r.name > $1 AND r.name >= $2 AND r.name < $3 \
                 ORDER BY r.name LIMIT $4"
            )
        } else {
            format!(
                "{REPOSITORY_SELECT} WHERE r.name > $1 AND r.name >= $2 ORDER BY r.name LIMIT $3"
            )
        };
        let mut query = sqlx::query(&sql).bind(after.unwrap_or("")).bind(lower);
        if let Some(upper) = upper {
            query = query.bind(upper);
        }
        let rows = query.bind(limit).fetch_all(&self.meta.read).await?;
        rows.iter().map(repository_row).collect()
    }

    /// What the repositories `ids` hold, in one query: manifests (images, as DescribeImages
    /// lists them), the bytes of the blobs linked to each (each blob once), the latest push and
    /// the latest recorded pull. Repositories without images are answered with zeros.
    pub async fn repository_summaries(&self, ids: &[i64]) -> Result<Vec<RepositorySummaryRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(super::images::IN_BATCH) {
            let list = super::images::placeholders(1, batch.len());
            let sql = format!(
                "SELECT r.id, COUNT(m.id) AS images, MAX(m.pushed_at) AS pushed, \
                 MAX(m.last_pulled_at) AS pulled, \
                 (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM repository_blobs rb \
                  JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id) AS size \
                 FROM repositories r LEFT JOIN manifests m ON m.repository_id = r.id \
                 WHERE r.id IN ({list}) GROUP BY r.id"
            );
            let mut query = sqlx::query(&sql);
            for id in batch {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.meta.read).await? {
                out.push(RepositorySummaryRow {
                    repository_id: r.try_get("id")?,
                    image_count: r.try_get("images")?,
                    total_size: r.try_get("size")?,
                    last_pushed_at: r.try_get("pushed")?,
                    last_pulled_at: r.try_get("pulled")?,
                });
            }
        }
        Ok(out)
    }

    /// Deletes a repository and (by cascade) its manifests, tags, blob links and upload
    /// sessions. Unless `force`, only when it holds no manifest; false if it held some.
    pub async fn delete_repository(&self, id: i64, force: bool) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        if !force {
            let held =
                sqlx::query("SELECT 1 AS one FROM manifests WHERE repository_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if held.is_some() {
                return Ok(false);
            }
        }
        gc::enqueue_repository_blobs(&mut tx, id, self.meta.review_after()).await?;
        sqlx::query("DELETE FROM tags WHERE repository_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
