//! Lifecycle policy storage: the policy text per repository, the last preview, the images a
//! policy is evaluated over, expiring one image (with its referrers and orphaned index children)
//! and the lifecycle audit log; and the batched last-pull writes.

use super::Lifecycle;
use std::collections::HashSet;

use sqlx::Row;

use super::now_millis;
use crate::error::Result;

/// A stored lifecycle policy.
#[derive(Debug, Clone)]
pub struct LifecyclePolicyRow {
    pub text: String,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// When a run last evaluated it.
    pub last_evaluated_at: Option<i64>,
}

/// The last stored preview of a repository.
#[derive(Debug, Clone)]
pub struct LifecyclePreviewRow {
    pub policy_text: String,
    /// JSON, as the service wrote it.
    pub result: String,
    pub created_at: i64,
}

/// A top-level image as lifecycle evaluation sees it.
#[derive(Debug, Clone)]
pub struct LifecycleImageRow {
    pub manifest_id: i64,
    pub digest: String,
    /// Sorted.
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
}

/// One row of the lifecycle audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleAuditRow {
    pub id: i64,
    pub at: i64,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub rule_priority: i64,
    /// Referrers and index children removed with the image.
    pub removed: Vec<String>,
}

/// What expiring one image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// Tags deleted (and the manifest, unless an index of the repository still lists it).
    Expired {
        /// Whether the manifest row itself went.
        manifest_deleted: bool,
        /// Referrers and index children removed with it.
        removed: Vec<String>,
    },
    /// The image is gone or its tags changed since evaluation; left for the next pass.
    Changed,
}

fn json_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Lifecycle {
    pub async fn lifecycle_policy(&self, repository_id: i64) -> Result<Option<LifecyclePolicyRow>> {
        let row = sqlx::query(
            "SELECT policy_text, updated_at, last_evaluated_at FROM lifecycle_policies \
             WHERE repository_id = $1",
        )
        .bind(repository_id)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| {
            Ok(LifecyclePolicyRow {
                text: r.try_get("policy_text")?,
                updated_at: r.try_get("updated_at")?,
                last_evaluated_at: r.try_get("last_evaluated_at")?,
            })
        })
        .transpose()
    }

    /// Stores (or replaces) the repository's policy text.
    pub async fn put_lifecycle_policy(&self, repository_id: i64, text: &str) -> Result<()> {
        let mut tx = self.meta.write.begin().await?;
        sqlx::query(
            "INSERT INTO lifecycle_policies (repository_id, policy_text, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (repository_id) DO UPDATE SET policy_text = excluded.policy_text, \
             updated_at = excluded.updated_at",
        )
        .bind(repository_id)
        .bind(text)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        let name = super::replication::repository_name_in(&mut tx, repository_id).await?;
        super::events::record_in(
            &mut tx,
            &super::events::setting_changed(
                &name,
                "LIFECYCLE_POLICY",
                "PUT",
                serde_json::from_str(text).ok(),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the repository's policy; the deleted one, if there was one.
    pub async fn delete_lifecycle_policy(
        &self,
        repository_id: i64,
    ) -> Result<Option<LifecyclePolicyRow>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM lifecycle_policies WHERE repository_id = $1 \
             RETURNING policy_text, updated_at, last_evaluated_at",
        )
        .bind(repository_id)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            let name = super::replication::repository_name_in(&mut tx, repository_id).await?;
            super::events::record_in(
                &mut tx,
                &super::events::setting_changed(&name, "LIFECYCLE_POLICY", "DELETE", None),
            )
            .await?;
        }
        tx.commit().await?;
        row.map(|r| {
            Ok(LifecyclePolicyRow {
                text: r.try_get("policy_text")?,
                updated_at: r.try_get("updated_at")?,
                last_evaluated_at: r.try_get("last_evaluated_at")?,
            })
        })
        .transpose()
    }

    /// Notes that a run evaluated the repository's policy at `at`.
    pub async fn mark_lifecycle_evaluated(&self, repository_id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE lifecycle_policies SET last_evaluated_at = $2 WHERE repository_id = $1",
        )
        .bind(repository_id)
        .bind(at)
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    /// Names and ids of the repositories that have a lifecycle policy, by name.
    pub async fn repositories_with_lifecycle_policy(&self) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT r.id, r.name FROM lifecycle_policies p JOIN repositories r ON r.id = p.repository_id \
             ORDER BY r.name",
        )
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    pub async fn put_lifecycle_preview(
        &self,
        repository_id: i64,
        policy_text: &str,
        result: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO lifecycle_previews (repository_id, policy_text, result, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository_id) DO UPDATE SET \
             policy_text = excluded.policy_text, result = excluded.result, created_at = excluded.created_at",
        )
        .bind(repository_id)
        .bind(policy_text)
        .bind(result)
        .bind(now_millis())
        .execute(&self.meta.write)
        .await?;
        Ok(())
    }

    pub async fn lifecycle_preview(
        &self,
        repository_id: i64,
    ) -> Result<Option<LifecyclePreviewRow>> {
        let row = sqlx::query(
            "SELECT policy_text, result, created_at FROM lifecycle_previews WHERE repository_id = $1",
        )
        .bind(repository_id)
        .fetch_optional(&self.meta.read)
        .await?;
        row.map(|r| {
            Ok(LifecyclePreviewRow {
                policy_text: r.try_get("policy_text")?,
                result: r.try_get("result")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// The repository's top-level images: every manifest except untagged index children (they
    /// go with their index) and referrers whose subject is in the repository (they go with
    /// their subject).
    pub async fn lifecycle_images(&self, repository_id: i64) -> Result<Vec<LifecycleImageRow>> {
        // One row per (image, tag), an untagged image once with a NULL tag: one pass over the
        // repository instead of a second query for its tags (the console's live preview runs
        // this on every edit).
        let rows = sqlx::query(
            "SELECT m.id, m.digest, m.pushed_at, m.last_pulled_at, t.name FROM manifests m \
             LEFT JOIN tags t ON t.manifest_id = m.id \
             WHERE m.repository_id = $1 \
             AND NOT (m.subject_digest IS NOT NULL AND EXISTS (SELECT 1 FROM manifests s \
                      WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest)) \
             AND (t.manifest_id IS NOT NULL \
                  OR NOT EXISTS (SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id \
                                 WHERE p.repository_id = m.repository_id AND r.child_digest = m.digest \
                                 AND r.kind = 'manifest')) \
             ORDER BY m.pushed_at, m.digest, t.name",
        )
        .bind(repository_id)
        .fetch_all(&self.meta.read)
        .await?;
        let mut images: Vec<LifecycleImageRow> = Vec::new();
        for r in &rows {
            let manifest_id: i64 = r.try_get("id")?;
            let tag: Option<String> = r.try_get("name")?;
            match images.last_mut() {
                Some(image) if image.manifest_id == manifest_id => image.tags.extend(tag),
                _ => images.push(LifecycleImageRow {
                    manifest_id,
                    digest: r.try_get("digest")?,
                    tags: tag.into_iter().collect(),
                    pushed_at: r.try_get("pushed_at")?,
                    last_pulled_at: r.try_get("last_pulled_at")?,
                }),
            }
        }
        Ok(images)
    }

    /// Expires one image in one transaction: deletes its tags, then its manifest unless an index
    /// of the repository still lists it, with its referrers (recursively) and the index children
    /// nothing else references; records the expiry in the lifecycle audit log. Tags must still
    /// be `expected_tags`, otherwise nothing changes ([`ExpireOutcome::Changed`]). Blob bytes are
    /// left for garbage collection.
    pub async fn expire_image(
        &self,
        repository_id: i64,
        repository: &str,
        digest: &str,
        expected_tags: &[String],
        rule_priority: u32,
    ) -> Result<ExpireOutcome> {
        let mut tx = self.meta.write.begin().await?;
        // A no-op update locks the manifest row (as `put_manifest` does), so a push that tags
        // this manifest concurrently waits for the expiry, or the expiry sees its tag.
        let Some(row) = sqlx::query(
            "UPDATE manifests SET digest = digest WHERE repository_id = $1 AND digest = $2 RETURNING id",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(ExpireOutcome::Changed);
        };
        let manifest_id: i64 = row.try_get("id")?;
        let tag_rows = sqlx::query("SELECT name FROM tags WHERE manifest_id = $1 ORDER BY name")
            .bind(manifest_id)
            .fetch_all(&mut *tx)
            .await?;
        let tags = tag_rows
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut expected = expected_tags.to_vec();
        expected.sort();
        if tags != expected {
            return Ok(ExpireOutcome::Changed);
        }
        sqlx::query("DELETE FROM tags WHERE manifest_id = $1")
            .bind(manifest_id)
            .execute(&mut *tx)
            .await?;

        let cause = if rule_priority == 0 {
            super::events::DeleteCause::PullThroughQuota
        } else {
            super::events::DeleteCause::Lifecycle
        };
        super::events::record_deletes_in(&mut tx, repository, digest, &tags, false, cause).await?;
        let mut removed = Vec::new();
        let mut referrer_digests = HashSet::new();
        let listed = has_parent(&mut tx, repository_id, digest).await?;
        if !listed {
            // Work list of manifests to delete: the image, then its referrers and the children
            // nothing else needs.
            let mut queue = vec![digest.to_string()];
            let mut seen = HashSet::new();
            while let Some(d) = queue.pop() {
                if !seen.insert(d.clone()) {
                    continue;
                }
                let children = sqlx::query(
                    "SELECT r.child_digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id \
                     WHERE m.repository_id = $1 AND m.digest = $2 AND r.kind = 'manifest'",
                )
                .bind(repository_id)
                .bind(&d)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("child_digest"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
                let referrers = sqlx::query(
                    "SELECT digest FROM manifests WHERE repository_id = $1 AND subject_digest = $2",
                )
                .bind(repository_id)
                .bind(&d)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("digest"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
                sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
                    .bind(repository_id)
                    .bind(&d)
                    .execute(&mut *tx)
                    .await?;
                if d != digest {
                    removed.push(d.clone());
                    super::events::record_in(
                        &mut tx,
                        &super::events::image_deleted(
                            repository,
                            &d,
                            "",
                            referrer_digests.contains(&d),
                            cause,
                        ),
                    )
                    .await?;
                }
                referrer_digests.extend(referrers.iter().cloned());
                queue.extend(referrers);
                for child in children {
                    let tagged = sqlx::query(
                        "SELECT 1 FROM tags t JOIN manifests m ON m.id = t.manifest_id \
                         WHERE m.repository_id = $1 AND m.digest = $2",
                    )
                    .bind(repository_id)
                    .bind(&child)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                    if !tagged && !has_parent(&mut tx, repository_id, &child).await? {
                        queue.push(child);
                    }
                }
            }
            removed.sort();
        }
        sqlx::query(
            "INSERT INTO lifecycle_audit (at, repository, digest, tags, rule_priority, removed) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_millis())
        .bind(repository)
        .bind(digest)
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(rule_priority as i64)
        .bind(serde_json::to_string(&removed).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.meta.events_recorded();
        Ok(ExpireOutcome::Expired {
            manifest_deleted: !listed,
            removed,
        })
    }

    /// Lifecycle audit rows with ids after `after`, oldest first, optionally of one repository
    /// and one image digest.
    pub async fn lifecycle_audit(
        &self,
        repository: Option<&str>,
        digest: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LifecycleAuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, repository, digest, tags, rule_priority, removed FROM lifecycle_audit \
             WHERE id > $1 AND ($2 = '' OR repository = $2) AND ($3 = '' OR digest = $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(repository.unwrap_or(""))
        .bind(digest.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LifecycleAuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    repository: r.try_get("repository")?,
                    digest: r.try_get("digest")?,
                    tags: json_list(&r.try_get::<String, _>("tags")?),
                    rule_priority: r.try_get("rule_priority")?,
                    removed: json_list(&r.try_get::<String, _>("removed")?),
                })
            })
            .collect()
    }

    /// Records one batch of pulls: one UPDATE per (up to 500) manifests, all at `at`.
    pub async fn record_pulls(&self, manifest_ids: &[i64], at: i64) -> Result<()> {
        for chunk in manifest_ids.chunks(super::images::IN_BATCH) {
            let sql = format!(
                "UPDATE manifests SET last_pulled_at = $1 WHERE id IN ({}) \
                 AND (last_pulled_at IS NULL OR last_pulled_at < $1)",
                super::images::placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(at);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.meta.write).await?;
        }
        Ok(())
    }

    /// Tells other processes' metadata caches to drop everything (as `fsck --repair` does).
    pub async fn bump_maintenance_epoch(&self) -> Result<()> {
        sqlx::query("UPDATE maintenance SET epoch = epoch + 1 WHERE id = 1")
            .execute(&self.meta.write)
            .await?;
        Ok(())
    }
}

/// Whether an index of the repository lists `digest` as a child.
async fn has_parent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository_id: i64,
    digest: &str,
) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id \
         WHERE p.repository_id = $1 AND r.child_digest = $2 AND r.kind = 'manifest'",
    )
    .bind(repository_id)
    .bind(digest)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}
