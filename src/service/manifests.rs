//! Manifests: validate and store (with their references and tags), read by tag or digest, delete
//! by digest or tag, and list referrers.

use std::sync::Arc;

use super::core::Core;
use super::lifecycle::PullTracker;
use super::page;
use super::replication::ReplicationRules;
use super::scan::PullGates;
use crate::error::{Error, Result};
use crate::meta::{BlobIndex, CacheFill, ManifestRow, Manifests, NewManifest, ReferrerRow};
use crate::oci::manifest::{self, ManifestKind};
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};

/// The outcome of a manifest PUT.
#[derive(Debug, Clone)]
pub struct ManifestPut {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
}

/// A stored manifest, byte-identical to what was pushed.
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub content: bytes::Bytes,
}

impl From<&ManifestRow> for StoredManifest {
    fn from(r: &ManifestRow) -> Self {
        StoredManifest {
            digest: r.digest.clone(),
            media_type: r.media_type.clone(),
            content: r.content.clone(),
        }
    }
}

/// Manifests and tags: pushes, reads (through the pull gate), deletes, referrers, tag lists.
#[derive(Clone)]
pub struct ManifestService {
    core: Core,
    manifests: Manifests,
    blob_index: BlobIndex,
    gates: Arc<PullGates>,
    pulls: Arc<PullTracker>,
    replication: Arc<ReplicationRules>,
}

impl ManifestService {
    pub(super) fn new(
        core: Core,
        manifests: Manifests,
        blob_index: BlobIndex,
        gates: Arc<PullGates>,
        pulls: Arc<PullTracker>,
        replication: Arc<ReplicationRules>,
    ) -> ManifestService {
        ManifestService {
            core,
            manifests,
            blob_index,
            gates,
            pulls,
            replication,
        }
    }

    /// PUT /v2/<name>/manifests/<reference>[?tag=a&tag=b] (and PutImage): not into a
    /// pull-through cache.
    pub async fn put_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ManifestPut> {
        self.core.refuse_push_into_cache(name).await?;
        self.put_manifest_with(name, reference, extra_tags, content_type, body, None)
            .await
    }

    /// Stores a manifest fetched from a pull-through upstream: like a push, except that its
    /// blobs need not be here yet (they are fetched when a client asks for them). Child
    /// manifests of an index must be, as on a push.
    pub async fn put_cached_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Vec<u8>,
        fill: CacheFill,
    ) -> Result<ManifestPut> {
        self.put_manifest_with(name, reference, &[], content_type, body, Some(fill))
            .await
    }

    async fn put_manifest_with(
        &self,
        name: &RepoName,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: Option<&str>,
        body: Vec<u8>,
        cache_fill: Option<CacheFill>,
    ) -> Result<ManifestPut> {
        // A pull-through cache fetches a cached manifest's blobs when a client asks for them.
        let lazy_blobs = cache_fill.is_some();
        if body.len() > self.core.limits.max_manifest_bytes {
            return Err(Error::ManifestTooLarge(format!(
                "manifest is {} bytes; the limit is {}",
                body.len(),
                self.core.limits.max_manifest_bytes
            )));
        }
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if &actual != expected {
                    return Err(Error::DigestInvalid(format!(
                        "manifest body has digest {actual}, not {expected} as named in the URL"
                    )));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &body),
        };
        let parsed = manifest::parse(
            &body,
            content_type,
            self.core.limits.max_manifest_descriptors,
        )?;
        let repo = self.core.ensure_repository(name).await?;

        let mut references = Vec::new();
        let mut required_blobs = Vec::new();
        let mut required_manifests = Vec::new();
        let mut depth = 0i64;
        match parsed.kind {
            ManifestKind::Image => {
                let config = parsed
                    .config
                    .as_ref()
                    .expect("image manifests have a config");
                references.push((config.digest.to_string(), "config"));
                let mut required = vec![("config".to_owned(), config)];
                for (i, layer) in parsed.references.iter().enumerate() {
                    references.push((layer.digest.to_string(), "layer"));
                    if !layer.is_foreign() {
                        required.push((format!("layers[{i}]"), layer));
                    }
                }
                // A pull-through fill stores the upstream's manifest before its blobs are here.
                if !lazy_blobs {
                    required_blobs = required.iter().map(|(_, d)| d.digest.to_string()).collect();
                    let digests: Vec<&Digest> = required.iter().map(|(_, d)| &d.digest).collect();
                    let stored = self.blob_index.stored_blob_sizes(repo, &digests).await?;
                    let missing: Vec<String> = required_blobs
                        .iter()
                        .filter(|d| !stored.contains_key(*d))
                        .cloned()
                        .collect();
                    if !missing.is_empty() {
                        return Err(Error::ManifestBlobUnknown(format!(
                            "manifest references blobs not pushed to repository '{name}': {}",
                            summarize(&missing)
                        )));
                    }
                    check_sizes(required.iter().map(|(field, d)| {
                        (field.as_str(), *d, stored[&d.digest.to_string()], "blob")
                    }))?;
                }
            }
            ManifestKind::Index => {
                let mut missing = Vec::new();
                let mut children = Vec::new();
                for (i, child) in parsed.references.iter().enumerate() {
                    references.push((child.digest.to_string(), "manifest"));
                    required_manifests.push(child.digest.to_string());
                    match self
                        .manifests
                        .manifest_by_digest(repo, &child.digest)
                        .await?
                    {
                        Some(row) => {
                            depth = depth.max(row.depth + 1);
                            children.push((format!("manifests[{i}]"), child, row.content.len()));
                        }
                        None => missing.push(child.digest.to_string()),
                    }
                }
                if !missing.is_empty() {
                    return Err(Error::ManifestBlobUnknown(format!(
                        "index references manifests not pushed to repository '{name}': {}",
                        summarize(&missing)
                    )));
                }
                check_sizes(
                    children
                        .iter()
                        .map(|(field, d, len)| (field.as_str(), *d, *len as i64, "manifest")),
                )?;
                depth = depth.max(1);
                if depth > self.core.limits.max_index_depth as i64 {
                    return Err(Error::ManifestTooComplex(format!(
                        "index nesting depth {depth} exceeds the limit of {}",
                        self.core.limits.max_index_depth
                    )));
                }
            }
        }

        let mut tags: Vec<Tag> = Vec::new();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        for t in extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        // What a pull-through cache stores is the upstream's, not pushed here: not replicated.
        let replicate_to = if lazy_blobs {
            Vec::new()
        } else {
            self.replication
                .targets_for(name.as_str(), &tags, subject.is_some())
                .await?
        };
        let record = NewManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            artifact_type: parsed.artifact_type.clone(),
            content: body,
            subject: subject.clone(),
            annotations: parsed
                .annotations
                .as_ref()
                .map(|a| serde_json::Value::Object(a.clone()).to_string()),
            depth,
            references,
            required_blobs,
            required_manifests,
            replicate_to,
            cache_fill,
        };
        self.manifests.put_manifest(repo, &record, &tags).await?;
        if !record.replicate_to.is_empty() {
            self.replication.pushed();
        }
        if !tags.is_empty() {
            self.core.cache.invalidate(repo);
        }
        Ok(ManifestPut {
            digest,
            subject,
            tags,
        })
    }

    /// GET/HEAD /v2/<name>/manifests/<reference>. A `pull` (a client's read) is checked
    /// against the repository's pull gate and recorded for lifecycle rules; other reads
    /// (Berth's own scanner, image descriptions) are neither, so scans do not wait on their own
    /// results nor keep images "recently pulled".
    pub async fn manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        pull: bool,
    ) -> Result<StoredManifest> {
        let unknown = || {
            Error::ManifestUnknown(format!(
                "manifest '{reference}' is not in repository '{name}'"
            ))
        };
        let (repo, row) = if self.core.cache.enabled() {
            self.cached_manifest(name, reference)
                .await?
                .ok_or_else(unknown)?
        } else {
            // Replicas keep no cache: one statement finds the repository and the manifest
            // together; only a miss asks which of the two is missing.
            match self
                .manifests
                .manifest_in_named_repository(name.as_str(), reference)
                .await?
            {
                Some((repo, row)) => (repo, Arc::new(row)),
                None => {
                    self.core.repository(name).await?;
                    return Err(unknown());
                }
            }
        };
        if pull {
            self.gates.check(name, repo, &row).await?;
            self.pulls.record(row.id);
        }
        Ok(StoredManifest::from(&*row))
    }

    /// The single node's read of a manifest through its cache: the repository's id and the row,
    /// `None` when the repository has no such manifest (NAME_UNKNOWN when no such repository).
    async fn cached_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<Option<(i64, Arc<ManifestRow>)>> {
        let repo = self.core.repository(name).await?;
        let cached = match reference {
            Reference::Tag(t) => self.core.cache.tag(repo, t.as_str()),
            Reference::Digest(d) => self.core.cache.manifest(repo, &d.to_string()),
        };
        if let Some(row) = cached {
            return Ok(Some((repo, row)));
        }
        let stamp = self.core.cache.stamp(repo);
        let row = match reference {
            Reference::Tag(t) => self.manifests.manifest_by_tag(repo, t).await?,
            Reference::Digest(d) => self.manifests.manifest_by_digest(repo, d).await?,
        };
        let Some(row) = row else { return Ok(None) };
        let row = Arc::new(row);
        if let Reference::Tag(t) = reference {
            self.core
                .cache
                .put_tag(stamp, repo, t.as_str(), row.clone());
        }
        self.core.cache.put_manifest(stamp, repo, row.clone());
        Ok(Some((repo, row)))
    }

    /// DELETE /v2/<name>/manifests/<reference>: by digest removes the manifest and its tags; by tag
    /// removes only that tag.
    pub async fn delete_manifest(&self, name: &RepoName, reference: &Reference) -> Result<()> {
        let repo = self.core.repository(name).await?;
        let deleted = match reference {
            Reference::Tag(t) => {
                let to = self
                    .replication
                    .delete_targets(name.as_str(), Some(t.as_str()))
                    .await?;
                self.manifests.delete_tag_replicated(repo, t, &to).await?
            }
            Reference::Digest(d) => {
                let to = self.replication.delete_targets(name.as_str(), None).await?;
                self.manifests
                    .delete_manifest_replicated(repo, d, &to)
                    .await?
            }
        };
        if deleted {
            self.replication.pushed();
        }
        self.core.cache.invalidate(repo);
        if deleted {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(format!(
                "manifest '{reference}' is not in repository '{name}'"
            )))
        }
    }

    /// The replication rules (deletes by ECR's API follow them too).
    pub(super) fn replication_rules(&self) -> &Arc<ReplicationRules> {
        &self.replication
    }

    /// GET /v2/<name>/tags/list?n=&last=
    pub async fn list_tags(
        &self,
        name: &RepoName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<(Vec<String>, bool)> {
        let repo = self.core.repository(name).await?;
        // On a single node the whole sorted list is cached per repository and paged in memory;
        // replicas (no cache) query each page.
        let all = match self.core.cache.tag_list(repo) {
            Some(all) => all,
            None if self.core.cache.enabled() => {
                let stamp = self.core.cache.stamp(repo);
                let all = Arc::new(self.manifests.list_tags(repo, None, i64::MAX).await?);
                self.core.cache.put_tag_list(stamp, repo, all.clone());
                all
            }
            None => return page(n, |limit| self.manifests.list_tags(repo, last, limit)).await,
        };
        let start = match last {
            Some(last) => all.partition_point(|t| t.as_str() <= last),
            None => 0,
        };
        page(n, |limit| async move {
            Ok(all[start..].iter().take(limit as usize).cloned().collect())
        })
        .await
    }

    /// The referrers of several subjects of repository `name` at once, as `(subject, referrer)`.
    pub async fn referrers_of(
        &self,
        name: &RepoName,
        digests: &[String],
    ) -> Result<Vec<(String, ReferrerRow)>> {
        let repo = self.core.repository(name).await?;
        self.manifests.referrers_of(repo, digests).await
    }

    /// GET /v2/<name>/referrers/<digest>[?artifactType=]
    pub async fn referrers(
        &self,
        name: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRow>> {
        match self.core.repository_id(name).await? {
            Some(repo) => self.manifests.referrers(repo, digest, artifact_type).await,
            None => Ok(Vec::new()),
        }
    }
}

/// Clients check every descriptor's `size` against the bytes they pull and fail the pull when
/// they differ, so a manifest whose descriptor disagrees with what is stored could never be
/// pulled: it is refused as MANIFEST_INVALID (the blob is known, so not MANIFEST_BLOB_UNKNOWN),
/// naming each wrong descriptor. Items are (field, descriptor, stored size, what is stored).
fn check_sizes<'a>(
    items: impl Iterator<Item = (&'a str, &'a manifest::Descriptor, i64, &'static str)>,
) -> Result<()> {
    let wrong: Vec<String> = items
        .filter(|(_, d, stored, _)| d.size != *stored)
        .map(|(field, d, stored, what)| {
            format!(
                "{field} ({}) declares size {} but the stored {what} is {stored} bytes",
                d.digest, d.size
            )
        })
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Error::ManifestInvalid(format!(
        "descriptor sizes do not match the content in the registry, so no client could pull \
         this manifest: {}",
        summarize(&wrong)
    )))
}

fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}
