//! Image listings for the ECR API: manifests with their tags, push times and sizes, paged by
//! digest (DescribeImages) or by (digest, tag) (ListImages), and the last-tag delete.

use super::Images;
use std::collections::HashMap;

use sqlx::Row;

use crate::error::Result;

/// Which images a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagFilter {
    /// Every manifest.
    #[default]
    Any,
    /// Manifests with at least one tag (ListImages: only the tagged entries).
    Tagged,
    /// Manifests without tags.
    Untagged,
}

/// One manifest of a repository as an image listing describes it.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub manifest_id: i64,
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject_digest: Option<String>,
    /// Unix milliseconds of the first push.
    pub pushed_at: i64,
    /// Unix milliseconds of the last recorded client pull (flushed in batches).
    pub last_pulled_at: Option<i64>,
    /// Bytes of the blobs the image references (config and layers; for an index, those of its
    /// child images in the repository, each blob counted once).
    pub size: i64,
    /// Tag names, sorted.
    pub tags: Vec<String>,
}

/// What removing a tag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untagged {
    /// The digest the tag pointed at.
    pub digest: String,
    /// Whether the manifest was deleted too (its last tag went and no index references it).
    pub manifest_deleted: bool,
}

const IMAGE_COLUMNS: &str =
    "m.id, m.digest, m.media_type, m.artifact_type, m.subject_digest, m.pushed_at, m.last_pulled_at";

fn image_row(r: &sqlx::any::AnyRow) -> Result<ImageRow> {
    Ok(ImageRow {
        manifest_id: r.try_get("id")?,
        digest: r.try_get("digest")?,
        media_type: r.try_get("media_type")?,
        artifact_type: r.try_get("artifact_type")?,
        subject_digest: r.try_get("subject_digest")?,
        pushed_at: r.try_get("pushed_at")?,
        last_pulled_at: r.try_get("last_pulled_at")?,
        size: 0,
        tags: Vec::new(),
    })
}

fn tag_condition(filter: TagFilter) -> &'static str {
    match filter {
        TagFilter::Any => "",
        TagFilter::Tagged => " AND EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)",
        TagFilter::Untagged => " AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)",
    }
}

/// `$first, $first+1, ...` for `n` values.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most values bound in one `IN (...)` list.
pub(super) const IN_BATCH: usize = 500;

impl Images {
    /// Manifests of the repository with digests after `after`, in digest order, at most `limit`,
    /// with tags and sizes filled in.
    pub async fn image_page(
        &self,
        repository_id: i64,
        after: Option<&str>,
        filter: TagFilter,
        limit: i64,
    ) -> Result<Vec<ImageRow>> {
        let sql = format!(
            "SELECT {IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest > $2{} \
             ORDER BY m.digest LIMIT $3",
            tag_condition(filter)
        );
        let rows = sqlx::query(&sql)
            .bind(repository_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.meta.read)
            .await?;
        let mut images = rows.iter().map(image_row).collect::<Result<Vec<_>>>()?;
        self.fill_image_details(repository_id, &mut images).await?;
        Ok(images)
    }

    /// The manifest `digest` of the repository as an image, with tags and size.
    pub async fn image(&self, repository_id: i64, digest: &str) -> Result<Option<ImageRow>> {
        let sql = format!(
            "SELECT {IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repository_id)
            .bind(digest)
            .fetch_optional(&self.meta.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut images = vec![image_row(&row)?];
        self.fill_image_details(repository_id, &mut images).await?;
        Ok(images.pop())
    }

    /// The media types of the repository's manifests among `digests`, by digest (those it does
    /// not hold are left out).
    pub async fn media_types(
        &self,
        repository_id: i64,
        digests: &[String],
    ) -> Result<HashMap<String, String>> {
        let mut types = HashMap::new();
        for batch in digests.chunks(IN_BATCH) {
            let list = placeholders(2, batch.len());
            let sql = format!(
                "SELECT digest, media_type FROM manifests WHERE repository_id = $1 AND digest IN ({list})"
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for d in batch {
                query = query.bind(d.as_str());
            }
            for row in query.fetch_all(&self.meta.read).await? {
                types.insert(row.try_get("digest")?, row.try_get("media_type")?);
            }
        }
        Ok(types)
    }

    async fn fill_image_details(&self, repository_id: i64, images: &mut [ImageRow]) -> Result<()> {
        let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
        let mut sizes: HashMap<i64, i64> = HashMap::new();
        let ids: Vec<i64> = images.iter().map(|i| i.manifest_id).collect();
        for batch in ids.chunks(IN_BATCH) {
            let list = placeholders(2, batch.len());
            let sql = format!(
                "SELECT manifest_id, name FROM tags WHERE repository_id = $1 AND manifest_id IN ({list}) \
                 ORDER BY name"
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for id in batch {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.meta.read).await? {
                tags.entry(row.try_get("manifest_id")?)
                    .or_default()
                    .push(row.try_get("name")?);
            }
            // Blobs of an image, or of an index's child images; UNION counts a shared layer once.
            // The child is found by a correlated lookup, not a join on `manifests`: given a join,
            // SQLite's planner walks every manifest of the repository and probes the page's
            // references for each (97 ms for a 50-image page at 10,000 images, against 2 ms).
            let sql = format!(
                "SELECT x.manifest_id, CAST(SUM(b.size) AS BIGINT) AS size FROM ( \
                   SELECT r.manifest_id, r.child_digest AS digest FROM manifest_references r \
                   WHERE r.manifest_id IN ({list}) AND r.kind IN ('config', 'layer') \
                   UNION \
                   SELECT r.manifest_id, cr.child_digest AS digest FROM manifest_references r \
                   JOIN manifest_references cr ON cr.manifest_id = ( \
                     SELECT c.id FROM manifests c WHERE c.repository_id = $1 AND c.digest = r.child_digest) \
                   AND cr.kind IN ('config', 'layer') \
                   WHERE r.manifest_id IN ({list}) AND r.kind = 'manifest' \
                 ) x JOIN blobs b ON b.digest = x.digest GROUP BY x.manifest_id"
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for id in batch {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.meta.read).await? {
                sizes.insert(row.try_get("manifest_id")?, row.try_get("size")?);
            }
        }
        for image in images {
            image.tags = tags.remove(&image.manifest_id).unwrap_or_default();
            image.size = sizes.get(&image.manifest_id).copied().unwrap_or(0);
        }
        Ok(())
    }

    /// ListImages entries: (digest, tag) for each tag and (digest, None) for each untagged
    /// manifest, in (digest, tag) order after `after`, at most `limit`. With
    /// [`TagFilter::Tagged`] only tagged entries, with [`TagFilter::Untagged`] only untagged
    /// manifests.
    pub async fn image_id_page(
        &self,
        repository_id: i64,
        after: Option<(&str, &str)>,
        filter: TagFilter,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>)>> {
        let condition = match filter {
            TagFilter::Any => "",
            TagFilter::Tagged => " AND t.name IS NOT NULL",
            TagFilter::Untagged => " AND t.name IS NULL",
        };
        let (after_digest, after_tag) = after.unwrap_or(("", ""));
        let sql = format!(
            "SELECT m.digest, t.name FROM manifests m LEFT JOIN tags t ON t.manifest_id = m.id \
             WHERE m.repository_id = $1{condition} \
             AND (m.digest > $2 OR (m.digest = $2 AND COALESCE(t.name, '') > $3)) \
             ORDER BY m.digest, COALESCE(t.name, '') LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(repository_id)
            .bind(after_digest)
            .bind(after_tag)
            .bind(limit)
            .fetch_all(&self.meta.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("digest")?, r.try_get("name")?)))
            .collect()
    }

    /// Whether the repository's manifest `manifest` references the blob `blob` (as its config
    /// or a layer).
    pub async fn manifest_references_blob(
        &self,
        repository_id: i64,
        manifest: &str,
        blob: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id \
             WHERE m.repository_id = $1 AND m.digest = $2 AND r.child_digest = $3 \
             AND r.kind IN ('config', 'layer')",
        )
        .bind(repository_id)
        .bind(manifest)
        .bind(blob)
        .fetch_optional(&self.meta.read)
        .await?;
        Ok(row.is_some())
    }

    /// Digests of the repository's manifests (indexes) that list `digest` as a child.
    pub async fn parents_of(&self, repository_id: i64, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT p.digest FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id \
             WHERE p.repository_id = $1 AND r.child_digest = $2 AND r.kind = 'manifest' \
             ORDER BY p.digest",
        )
        .bind(repository_id)
        .bind(digest)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("digest")?)).collect()
    }

    /// Removes a tag and, when that was the manifest's last tag and no index of the repository
    /// references it, the manifest too (ECR's rule), in one transaction. `None` if the tag did
    /// not exist.
    pub async fn untag_and_prune(&self, repository_id: i64, tag: &str) -> Result<Option<Untagged>> {
        self.untag_and_prune_replicated(repository_id, tag, &[])
            .await
    }

    /// [`Images::untag_and_prune`], writing in the same transaction delete tasks (the tag, and
    /// the manifest when it goes too) per destination of `replicate_to`.
    pub async fn untag_and_prune_replicated(
        &self,
        repository_id: i64,
        tag: &str,
        replicate_to: &[crate::policy::replication::ReplicationDestination],
    ) -> Result<Option<Untagged>> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(
            "SELECT m.id, m.digest, m.subject_digest FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = $1 AND t.name = $2",
        )
        .bind(repository_id)
        .bind(tag)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let manifest_id: i64 = row.try_get("id")?;
        let digest: String = row.try_get("digest")?;
        let referrer = row
            .try_get::<Option<String>, _>("subject_digest")?
            .is_some();
        let name = super::replication::repository_name_in(&mut tx, repository_id).await?;
        super::events::record_in(
            &mut tx,
            &super::events::image_deleted(
                &name,
                &digest,
                tag,
                referrer,
                super::events::DeleteCause::Api,
            ),
        )
        .await?;
        sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repository_id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query(
            "SELECT id FROM manifests WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM tags WHERE manifest_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id \
                             WHERE p.repository_id = $2 AND r.child_digest = $3 AND r.kind = 'manifest')",
        )
        .bind(manifest_id)
        .bind(repository_id)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if deleted {
            super::gc::delete_manifest_in(
                &mut tx,
                repository_id,
                manifest_id,
                &digest,
                self.meta.review_after(),
            )
            .await?;
        } else {
            super::gc::enqueue_manifest(
                &mut tx,
                manifest_id,
                repository_id,
                self.meta.review_after(),
                "tag_delete",
            )
            .await?;
        }
        super::manifests::enqueue_deletes(&mut tx, repository_id, &digest, tag, replicate_to)
            .await?;
        if deleted {
            super::manifests::enqueue_deletes(&mut tx, repository_id, &digest, "", replicate_to)
                .await?;
        }
        tx.commit().await?;
        self.meta.events_recorded();
        Ok(Some(Untagged {
            digest,
            manifest_deleted: deleted,
        }))
    }
}
