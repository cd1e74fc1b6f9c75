//! Manifests and tags: stored byte for byte with their references, subject and tags;
//! referrers.

use super::*;
use crate::oci::Reference;

impl Manifests {
    pub async fn manifest_by_digest(
        &self,
        repository_id: i64,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        let _timed = self.meta.time(StoreCall::ManifestGet);
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
        ))
        .bind(repository_id)
        .bind(digest.to_string())
        .fetch_optional(&self.meta.read)
        .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    pub async fn manifest_by_tag(
        &self,
        repository_id: i64,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>> {
        let _timed = self.meta.time(StoreCall::ManifestGet);
        let row = sqlx::query(&format!(
            "SELECT {MANIFEST_COLUMNS} FROM tags t JOIN manifests m ON m.id = t.manifest_id \
             WHERE t.repository_id = $1 AND t.name = $2"
        ))
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&self.meta.read)
        .await?;
        row.as_ref().map(manifest_row).transpose()
    }

    /// The manifest `reference` points at in the repository named `name`, with the repository's
    /// id: the repository and the manifest in one statement (for replicas, which keep no cache of
    /// repository ids). `None` when either is missing.
    pub async fn manifest_in_named_repository(
        &self,
        name: &str,
        reference: &Reference,
    ) -> Result<Option<(i64, ManifestRow)>> {
        let _timed = self.meta.time(StoreCall::ManifestGet);
        let (sql, key) = match reference {
            Reference::Tag(tag) => (
                format!(
                    "SELECT r.id AS repository_id, {MANIFEST_COLUMNS} FROM repositories r \
                     JOIN tags t ON t.repository_id = r.id JOIN manifests m ON m.id = t.manifest_id \
                     WHERE r.name = $1 AND t.name = $2"
                ),
                tag.as_str().to_owned(),
            ),
            Reference::Digest(digest) => (
                format!(
                    "SELECT r.id AS repository_id, {MANIFEST_COLUMNS} FROM repositories r \
                     JOIN manifests m ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = $2"
                ),
                digest.to_string(),
            ),
        };
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(key)
            .fetch_optional(&self.meta.read)
            .await?;
        row.as_ref()
            .map(|r| Ok((r.try_get("repository_id")?, manifest_row(r)?)))
            .transpose()
    }

    /// Stores a manifest (idempotent by digest) and points `tags` at it, in one transaction.
    ///
    /// Tag immutability is enforced here, inside that transaction: the repository's setting is
    /// read in it, and a protected tag is written with a conditional upsert that moves nothing
    /// when the tag exists and points at another manifest. On PostgreSQL the upsert locks the
    /// tag row (a concurrent first insert of the same tag waits for the other transaction and
    /// then sees its row), so of two concurrent pushes of different digests exactly one wins;
    /// SQLite has one writer. A refusal rolls everything back with [`Error::TagImmutable`].
    pub async fn put_manifest(
        &self,
        repository_id: i64,
        m: &NewManifest,
        tags: &[Tag],
    ) -> Result<()> {
        let _timed = self.meta.time(StoreCall::ManifestPut);
        let now = now_millis();
        let digest = m.digest.to_string();
        let mut tx = self.meta.write.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, \
             subject_digest, annotations, depth, pushed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (repository_id, digest) DO UPDATE SET digest = excluded.digest RETURNING id",
        )
        // The no-op update (rather than DO NOTHING) returns the id of an existing row and locks
        // it, so a concurrent delete of the same digest cannot slip between insert and tagging.
        .bind(repository_id)
        .bind(&digest)
        .bind(&m.media_type)
        .bind(m.artifact_type.as_deref())
        .bind(m.content.len() as i64)
        .bind(&m.content[..])
        .bind(m.subject.as_ref().map(|s| s.to_string()))
        .bind(m.annotations.as_deref())
        .bind(m.depth)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        // Pushed on its own: a top-level manifest again, never deleted by GC.
        sqlx::query("DELETE FROM gc_dependent_manifests WHERE manifest_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Tags moving away from another manifest: GC reviews it (before any blob lock is taken,
        // keeping the lock order queue row, then blob or manifest row).
        let mut moved = Vec::new();
        for tag in tags {
            let old = sqlx::query(
                "SELECT t.manifest_id, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id \
                 WHERE t.repository_id = $1 AND t.name = $2",
            )
            .bind(repository_id)
            .bind(tag.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(old) = old {
                let old_digest: String = old.try_get("digest")?;
                let old: i64 = old.try_get("manifest_id")?;
                if old != id {
                    moved.push((tag.as_str(), old_digest));
                    gc::enqueue_manifest(
                        &mut tx,
                        old,
                        repository_id,
                        self.meta.review_after(),
                        "tag_switch",
                    )
                    .await?;
                }
            }
        }
        // What the manifest references must exist now and stay until commit: a GC deleting one
        // of them either finished first (then it is missing here) or waits for this commit (and
        // then sees the reference).
        let missing = self
            .present_in_tx(
                &mut tx,
                // Only the blob rows are locked (GC locks them before the links), in one order.
                "SELECT b.digest FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest \
                 WHERE rb.repository_id = $1 AND b.digest IN ({}) ORDER BY b.digest",
                "FOR SHARE OF b",
                repository_id,
                &m.required_blobs,
            )
            .await?;
        if !missing.is_empty() {
            return Err(Error::ManifestBlobUnknown(format!(
                "manifest references blobs that are not in the repository: {}",
                missing.join(", ")
            )));
        }
        let missing = self
            .present_in_tx(
                &mut tx,
                "SELECT digest FROM manifests WHERE repository_id = $1 AND digest IN ({}) ORDER BY digest",
                "FOR SHARE",
                repository_id,
                &m.required_manifests,
            )
            .await?;
        if !missing.is_empty() {
            return Err(Error::ManifestBlobUnknown(format!(
                "index references manifests that are not in the repository: {}",
                missing.join(", ")
            )));
        }
        for (child, kind) in &m.references {
            sqlx::query(
                "INSERT INTO manifest_references (manifest_id, child_digest, kind) VALUES ($1, $2, $3) \
                 ON CONFLICT (manifest_id, child_digest) DO NOTHING",
            )
            .bind(id)
            .bind(child)
            .bind(*kind)
            .execute(&mut *tx)
            .await?;
        }
        let rules = if tags.is_empty() {
            None
        } else {
            let row = sqlx::query(&format!("{REPOSITORY_SELECT} WHERE r.id = $1"))
                .bind(repository_id)
                .fetch_optional(&mut *tx)
                .await?;
            row.as_ref().map(repository_row).transpose()?
        };
        for tag in tags {
            let protected = rules
                .as_ref()
                .filter(|r| r.tag_mutability.is_immutable(tag.as_str()));
            let sql = if protected.is_some() {
                // Re-pushing the digest a protected tag already has is a no-op that succeeds.
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET updated_at = tags.updated_at \
                 WHERE tags.manifest_id = excluded.manifest_id"
            } else {
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, \
                 updated_at = excluded.updated_at"
            };
            let written = sqlx::query(sql)
                .bind(repository_id)
                .bind(tag.as_str())
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let (Some(repo), 0) = (protected, written) {
                return Err(Error::TagImmutable(overwrite_refused(
                    tag.as_str(),
                    &repo.name,
                )));
            }
        }
        // Scan on push: queued with the manifest, so a stored image is never left unscanned. An
        // index queues its platforms' images (pushed before it, possibly while scanning was off).
        let scannable = scan::is_scannable(&m.media_type, m.artifact_type.as_deref());
        if (scannable || !m.required_manifests.is_empty())
            && scan::scan_on_push_in(&mut tx, repository_id).await?
        {
            if scannable {
                scan::queue_in(&mut tx, id, repository_id, false).await?;
            }
            scan::queue_children_in(&mut tx, repository_id, &m.required_manifests).await?;
        }
        let name = replication::repository_name_in(&mut tx, repository_id).await?;
        if !m.replicate_to.is_empty() {
            replication::enqueue_in(&mut tx, &name, &digest, replication::PUSH, &m.replicate_to)
                .await?;
        }
        // The events last: their ids follow the order in which conflicting pushes (one tag)
        // took their row locks above.
        if tags.is_empty() {
            events::record_in(&mut tx, &events::manifest_stored(m, &name, &digest, None)).await?;
        }
        for tag in tags {
            events::record_in(
                &mut tx,
                &events::manifest_stored(m, &name, &digest, Some(tag.as_str())),
            )
            .await?;
        }
        for (tag, from) in &moved {
            events::record_in(&mut tx, &events::tag_moved(&name, tag, from, &digest)).await?;
        }
        crate::failpoint::pause("manifest.before_commit").await;
        tx.commit().await?;
        self.meta.events_recorded();
        Ok(())
    }

    /// Of `digests`, those the query `select` (`{}` the digest list, `$1` the repository) does
    /// not return, locking the returned rows with `lock` on PostgreSQL.
    async fn present_in_tx(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        select: &str,
        lock: &str,
        repository_id: i64,
        digests: &[String],
    ) -> Result<Vec<String>> {
        let mut present = std::collections::HashSet::new();
        for batch in digests.chunks(500) {
            let placeholders = (0..batch.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "{}{}",
                select.replacen("{}", &placeholders, 1),
                self.meta.dialect.lock(lock)
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for d in batch {
                query = query.bind(d.as_str());
            }
            for row in query.fetch_all(&mut **tx).await? {
                present.insert(row.try_get::<String, _>("digest")?);
            }
        }
        Ok(digests
            .iter()
            .filter(|d| !present.contains(*d))
            .cloned()
            .collect())
    }

    /// Deletes a manifest and every tag pointing at it; its blobs, children and referrers are
    /// queued for GC review.
    pub async fn delete_manifest(&self, repository_id: i64, digest: &Digest) -> Result<bool> {
        self.delete_manifest_replicated(repository_id, digest, &[])
            .await
    }

    /// [`Manifests::delete_manifest`], writing in the same transaction a delete task per
    /// destination of `replicate_to` (destinations whose rule asks deletes to follow).
    pub async fn delete_manifest_replicated(
        &self,
        repository_id: i64,
        digest: &Digest,
        replicate_to: &[crate::policy::replication::ReplicationDestination],
    ) -> Result<bool> {
        let digest = digest.to_string();
        let mut tx = self.meta.write.begin().await?;
        // A no-op write: takes SQLite's write lock first and the row lock on PostgreSQL.
        let row = sqlx::query(
            "UPDATE manifests SET digest = digest WHERE repository_id = $1 AND digest = $2 \
             RETURNING id, subject_digest",
        )
        .bind(repository_id)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: i64 = row.try_get("id")?;
        let referrer = row
            .try_get::<Option<String>, _>("subject_digest")?
            .is_some();
        let tags = tags_of_in(&mut tx, id).await?;
        let name = replication::repository_name_in(&mut tx, repository_id).await?;
        events::record_deletes_in(
            &mut tx,
            &name,
            &digest,
            &tags,
            referrer,
            events::DeleteCause::Api,
        )
        .await?;
        gc::delete_manifest_in(
            &mut tx,
            repository_id,
            id,
            &digest,
            self.meta.review_after(),
        )
        .await?;
        enqueue_deletes(&mut tx, repository_id, &digest, "", replicate_to).await?;
        tx.commit().await?;
        self.meta.events_recorded();
        Ok(true)
    }

    /// Deletes one tag; the manifest stays (GC reviews it, see `gc`).
    pub async fn delete_tag(&self, repository_id: i64, tag: &Tag) -> Result<bool> {
        self.delete_tag_replicated(repository_id, tag, &[]).await
    }

    /// [`Manifests::delete_tag`], writing in the same transaction a delete task for the tag per
    /// destination of `replicate_to`.
    pub async fn delete_tag_replicated(
        &self,
        repository_id: i64,
        tag: &Tag,
        replicate_to: &[crate::policy::replication::ReplicationDestination],
    ) -> Result<bool> {
        let mut tx = self.meta.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM tags WHERE repository_id = $1 AND name = $2 RETURNING manifest_id",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let manifest_id: i64 = row.try_get("manifest_id")?;
        gc::enqueue_manifest(
            &mut tx,
            manifest_id,
            repository_id,
            self.meta.review_after(),
            "tag_delete",
        )
        .await?;
        let row = sqlx::query("SELECT digest, subject_digest FROM manifests WHERE id = $1")
            .bind(manifest_id)
            .fetch_one(&mut *tx)
            .await?;
        let digest: String = row.try_get("digest")?;
        let referrer = row
            .try_get::<Option<String>, _>("subject_digest")?
            .is_some();
        let name = replication::repository_name_in(&mut tx, repository_id).await?;
        events::record_in(
            &mut tx,
            &events::image_deleted(
                &name,
                &digest,
                tag.as_str(),
                referrer,
                events::DeleteCause::Api,
            ),
        )
        .await?;
        enqueue_deletes(&mut tx, repository_id, &digest, tag.as_str(), replicate_to).await?;
        tx.commit().await?;
        self.meta.events_recorded();
        Ok(true)
    }

    /// Tag names in lexical order after `last`, at most `limit`.
    pub async fn list_tags(
        &self,
        repository_id: i64,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repository_id)
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }

    /// Manifests in the repository whose `subject` is `digest`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repository_id: i64,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRow>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests \
             WHERE repository_id = $1 AND subject_digest = $2 AND ($3 = '' OR artifact_type = $3) \
             ORDER BY pushed_at, digest",
        )
        .bind(repository_id)
        .bind(digest.to_string())
        .bind(artifact_type.unwrap_or(""))
        .fetch_all(&self.meta.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReferrerRow {
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get("size")?,
                    artifact_type: r.try_get("artifact_type")?,
                    annotations: r.try_get("annotations")?,
                })
            })
            .collect()
    }

    /// The referrers (manifests whose subject is one of `digests`) of the repository, as
    /// `(subject digest, referrer)`, in one query per 500 subjects, by subject then push time.
    pub async fn referrers_of(
        &self,
        repository_id: i64,
        digests: &[String],
    ) -> Result<Vec<(String, ReferrerRow)>> {
        let mut out = Vec::new();
        for batch in digests.chunks(super::images::IN_BATCH) {
            let sql = format!(
                "SELECT subject_digest, digest, media_type, size, artifact_type, annotations \
                 FROM manifests WHERE repository_id = $1 AND subject_digest IN ({}) \
                 ORDER BY subject_digest, pushed_at, digest",
                super::images::placeholders(2, batch.len())
            );
            let mut query = sqlx::query(&sql).bind(repository_id);
            for digest in batch {
                query = query.bind(digest);
            }
            for r in query.fetch_all(&self.meta.read).await? {
                out.push((
                    r.try_get("subject_digest")?,
                    ReferrerRow {
                        digest: r.try_get("digest")?,
                        media_type: r.try_get("media_type")?,
                        size: r.try_get("size")?,
                        artifact_type: r.try_get("artifact_type")?,
                        annotations: r.try_get("annotations")?,
                    },
                ));
            }
        }
        Ok(out)
    }
}

/// Delete tasks for `tag` of `digest` (the manifest itself when `tag` is empty), one per
/// destination, inside the delete's transaction.
pub(super) async fn enqueue_deletes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repository_id: i64,
    digest: &str,
    tag: &str,
    replicate_to: &[crate::policy::replication::ReplicationDestination],
) -> Result<()> {
    if replicate_to.is_empty() {
        return Ok(());
    }
    let name = replication::repository_name_in(tx, repository_id).await?;
    let targets: Vec<(String, crate::policy::replication::ReplicationDestination)> = replicate_to
        .iter()
        .map(|d| (tag.to_owned(), d.clone()))
        .collect();
    replication::enqueue_in(tx, &name, digest, replication::DELETE, &targets).await
}

/// The tags of a manifest, by name.
pub(super) async fn tags_of_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    manifest_id: i64,
) -> Result<Vec<String>> {
    sqlx::query("SELECT name FROM tags WHERE manifest_id = $1 ORDER BY name")
        .bind(manifest_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("name")?))
        .collect()
}
