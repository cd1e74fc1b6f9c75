//! Pull-through cache rules, tag revalidation times and the cross-replica single-flight leases
//! of blob fetches (see `migrations/*/0011_pull_through.sql`).

use super::PullThroughCache;
use sqlx::Row;

use super::now_millis;
use crate::error::{Error, Result};
use crate::policy::pull_through::{parse_upstream_url, PullThroughRule};

/// A rule as written by the APIs (validated by the caller).
#[derive(Debug, Clone)]
pub struct RuleRecord {
    pub prefix: String,
    pub upstream_url: String,
    pub upstream_registry: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    pub upstream_repository_prefix: Option<String>,
    pub revalidate_secs: Option<i64>,
    pub quota_bytes: Option<i64>,
}

const RULE_COLUMNS: &str = "prefix, upstream_url, upstream_registry, credential_arn, \
     custom_role_arn, upstream_repository_prefix, revalidate_secs, quota_bytes, created_at, updated_at";

/// A stored rule with its Berth-only settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub rule: PullThroughRule,
    pub revalidate_secs: Option<i64>,
    pub quota_bytes: Option<i64>,
}

impl AsRef<PullThroughRule> for StoredRule {
    fn as_ref(&self) -> &PullThroughRule {
        &self.rule
    }
}

fn stored_rule(r: &sqlx::any::AnyRow) -> Result<StoredRule> {
    let upstream_url: String = r.try_get("upstream_url")?;
    let upstream = parse_upstream_url(&upstream_url).map_err(Error::internal)?;
    Ok(StoredRule {
        rule: PullThroughRule {
            prefix: r.try_get("prefix")?,
            upstream,
            upstream_url,
            upstream_registry: r.try_get("upstream_registry")?,
            credential_arn: r.try_get("credential_arn")?,
            custom_role_arn: r.try_get("custom_role_arn")?,
            upstream_repository_prefix: r.try_get("upstream_repository_prefix")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        },
        revalidate_secs: r.try_get("revalidate_secs")?,
        quota_bytes: r.try_get("quota_bytes")?,
    })
}

impl PullThroughCache {
    /// Stores a new rule; false if one with this prefix exists.
    pub async fn create_pull_through_rule(&self, r: &RuleRecord) -> Result<bool> {
        let now = now_millis();
        let done = sqlx::query(
            "INSERT INTO pull_through_rules (prefix, upstream_url, upstream_registry, credential_arn, \
             custom_role_arn, upstream_repository_prefix, revalidate_secs, quota_bytes, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (prefix) DO NOTHING",
        )
        .bind(&r.prefix)
        .bind(&r.upstream_url)
        .bind(&r.upstream_registry)
        .bind(r.credential_arn.as_deref())
        .bind(r.custom_role_arn.as_deref())
        .bind(r.upstream_repository_prefix.as_deref())
        .bind(r.revalidate_secs)
        .bind(r.quota_bytes)
        .bind(now)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the changeable settings of a rule; false if there is none with this prefix.
    pub async fn update_pull_through_rule(&self, r: &RuleRecord) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE pull_through_rules SET credential_arn = $2, custom_role_arn = $3, \
             revalidate_secs = $4, quota_bytes = $5, updated_at = $6 WHERE prefix = $1",
        )
        .bind(&r.prefix)
        .bind(r.credential_arn.as_deref())
        .bind(r.custom_role_arn.as_deref())
        .bind(r.revalidate_secs)
        .bind(r.quota_bytes)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a rule (its cached repositories stay); the removed rule, if there was one.
    pub async fn delete_pull_through_rule(&self, prefix: &str) -> Result<Option<StoredRule>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM pull_through_rules WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let rule = stored_rule(&row)?;
        sqlx::query("DELETE FROM pull_through_rules WHERE prefix = $1")
            .bind(prefix)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rule))
    }

    /// Every rule, by prefix.
    pub async fn pull_through_rules(&self) -> Result<Vec<StoredRule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM pull_through_rules ORDER BY prefix"
        ))
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(stored_rule).collect()
    }

    /// When `tag` of a cached repository was last found upstream, and at which digest.
    pub async fn tag_check(&self, repository_id: i64, tag: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query(
            "SELECT digest, checked_at FROM pull_through_tag_checks \
             WHERE repository_id = $1 AND tag = $2",
        )
        .bind(repository_id)
        .bind(tag)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| Ok((r.try_get("digest")?, r.try_get("checked_at")?)))
            .transpose()
    }

    /// Records that `tag` was found upstream at `digest` now.
    pub async fn record_tag_check(
        &self,
        repository_id: i64,
        tag: &str,
        digest: &str,
    ) -> Result<()> {
        self.record_tag_check_at(repository_id, tag, digest, now_millis())
            .await
    }

    /// Records a tag check as made at `at` (backdated after a failure, so the next check comes
    /// sooner than a full interval).
    pub async fn record_tag_check_at(
        &self,
        repository_id: i64,
        tag: &str,
        digest: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO pull_through_tag_checks (repository_id, tag, digest, checked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id, tag) DO UPDATE SET \
             digest = excluded.digest, checked_at = excluded.checked_at",
        )
        .bind(repository_id)
        .bind(tag)
        .bind(digest)
        .bind(at)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Bytes of the stored blobs that manifests of repositories under `prefix` reference (each
    /// blob once): what a rule's quota is held against. Blobs of expired images stop counting at
    /// once, though garbage collection reclaims their bytes later.
    pub async fn cached_bytes(&self, prefix: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS n FROM blobs b WHERE b.digest IN \
             (SELECT r.child_digest FROM manifest_references r \
              JOIN manifests m ON m.id = r.manifest_id \
              JOIN repositories p ON p.id = m.repository_id \
              WHERE p.name >= $1 AND p.name < $2 AND r.kind IN ('config', 'layer'))",
        )
        .bind(format!("{prefix}/"))
        // '0' is the byte after '/': the range holds exactly the names under `prefix/`.
        .bind(format!("{prefix}0"))
        .fetch_one(&self.meta.read)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Ids and names of the repositories under `prefix`.
    pub async fn repositories_under(&self, prefix: &str) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT id, name FROM repositories WHERE name >= $1 AND name < $2 ORDER BY name",
        )
        .bind(format!("{prefix}/"))
        .bind(format!("{prefix}0"))
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// Takes (or renews, for its owner) the fetch lease of a blob until `until`; false while
    /// another replica holds an unexpired one.
    pub async fn take_fill_lease(&self, digest: &str, owner: &str, until: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO pull_through_fills (digest, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE pull_through_fills.owner = excluded.owner OR pull_through_fills.expires_at < $4",
        )
        .bind(digest)
        .bind(owner)
        .bind(until)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a fetch lease held by `owner`.
    pub async fn release_fill_lease(&self, digest: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM pull_through_fills WHERE digest = $1 AND owner = $2")
            .bind(digest)
            .bind(owner)
            .execute(&self.meta.write)
            .await?;
        Ok(())
    }
}
