//! Repository creation templates as rows of `creation_templates`, one per prefix.

use super::Templates;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::Result;
use crate::policy::mutability::TagMutability;
use crate::policy::templates::{AppliedFor, Template};

const COLUMNS: &str = "prefix, description, applied_for, tag_mutability, tag_mutability_filters, \
     resource_tags, repository_policy, lifecycle_policy, custom_role_arn, scan_on_push, \
     created_at, updated_at";

fn template_row(r: &AnyRow) -> Result<Template> {
    let applied_for: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>("applied_for")?).unwrap_or_default();
    let tags: Vec<serde_json::Value> =
        serde_json::from_str(&r.try_get::<String, _>("resource_tags")?).unwrap_or_default();
    Ok(Template {
        prefix: r.try_get("prefix")?,
        description: r.try_get("description")?,
        // Unknown kinds (written by a newer Berth) apply to nothing here.
        applied_for: applied_for
            .iter()
            .filter_map(|k| AppliedFor::parse(k))
            .collect(),
        tag_mutability: TagMutability::from_stored(
            &r.try_get::<String, _>("tag_mutability")?,
            &r.try_get::<String, _>("tag_mutability_filters")?,
        ),
        resource_tags: tags
            .iter()
            .filter_map(|t| {
                Some((
                    t["Key"].as_str()?.to_owned(),
                    t["Value"].as_str()?.to_owned(),
                ))
            })
            .collect(),
        repository_policy: r.try_get("repository_policy")?,
        lifecycle_policy: r.try_get("lifecycle_policy")?,
        custom_role_arn: r.try_get("custom_role_arn")?,
        scan_on_push: r.try_get::<Option<i64>, _>("scan_on_push")?.map(|v| v != 0),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The JSON columns of a template: applied_for and resource_tags.
fn json_columns(t: &Template) -> (String, String) {
    let kinds: Vec<&str> = t.applied_for.iter().map(|k| k.as_str()).collect();
    let tags: Vec<serde_json::Value> = t
        .resource_tags
        .iter()
        .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
        .collect();
    (
        serde_json::to_string(&kinds).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
    )
}

impl Templates {
    /// Stores a new template; false (and nothing changes) if its prefix has one already.
    pub async fn insert_template(&self, t: &Template) -> Result<bool> {
        let (kinds, tags) = json_columns(t);
        let done = sqlx::query(&format!(
            "INSERT INTO creation_templates ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (prefix) DO NOTHING"
        ))
        .bind(&t.prefix)
        .bind(&t.description)
        .bind(kinds)
        .bind(t.tag_mutability.mode.as_str())
        .bind(t.tag_mutability.filters_json())
        .bind(tags)
        .bind(&t.repository_policy)
        .bind(&t.lifecycle_policy)
        .bind(&t.custom_role_arn)
        .bind(t.scan_on_push.map(i64::from))
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the stored template of `t.prefix` (its creation time stays); false if there is
    /// none.
    pub async fn replace_template(&self, t: &Template) -> Result<bool> {
        let (kinds, tags) = json_columns(t);
        let done = sqlx::query(
            "UPDATE creation_templates SET description = $2, applied_for = $3, \
             tag_mutability = $4, tag_mutability_filters = $5, resource_tags = $6, \
             repository_policy = $7, lifecycle_policy = $8, custom_role_arn = $9, \
             scan_on_push = $10, updated_at = $11 WHERE prefix = $1",
        )
        .bind(&t.prefix)
        .bind(&t.description)
        .bind(kinds)
        .bind(t.tag_mutability.mode.as_str())
        .bind(t.tag_mutability.filters_json())
        .bind(tags)
        .bind(&t.repository_policy)
        .bind(&t.lifecycle_policy)
        .bind(&t.custom_role_arn)
        .bind(t.scan_on_push.map(i64::from))
        .bind(t.updated_at)
        .execute(&self.meta.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn template(&self, prefix: &str) -> Result<Option<Template>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM creation_templates WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| template_row(&r)).transpose()
    }

    /// Removes a template; the removed template, or `None` if there was none.
    pub async fn delete_template(&self, prefix: &str) -> Result<Option<Template>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM creation_templates WHERE prefix = $1 RETURNING {COLUMNS}"
        ))
        .bind(prefix)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| template_row(&r)).transpose()
    }

    /// Templates after `after` (by prefix, byte order), at most `limit`.
    pub async fn list_templates(&self, after: &str, limit: i64) -> Result<Vec<Template>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM creation_templates WHERE prefix > $1 ORDER BY prefix LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(template_row).collect()
    }

    /// The templates of these prefixes (those that exist), by prefix.
    pub async fn templates_with_prefixes(&self, prefixes: &[String]) -> Result<Vec<Template>> {
        if prefixes.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=prefixes.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM creation_templates WHERE prefix IN ({}) ORDER BY prefix",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for p in prefixes {
            query = query.bind(p);
        }
        let rows = query.fetch_all(&self.meta.read).await?;
        rows.iter().map(template_row).collect()
    }
}
