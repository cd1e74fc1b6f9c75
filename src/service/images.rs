//! Images as ECR's API sees them: listings with tags and sizes, lookups by tag and/or digest,
//! pushes of a whole manifest (PutImage), deletes by tag or digest (BatchDeleteImage) and layer
//! checks. No HTTP or ECR wire types: the `ecr` module shapes the answers.

use super::core::Core;
use super::{BlobService, ManifestPut, ManifestService, StoredManifest};
use crate::error::{Error, Result};
use crate::meta::{BlobRow, ImageRow, Images, Manifests, TagFilter};
use crate::oci::{Digest, Reference, RepoName, Tag};

/// The outcome of looking an image up by digest and/or tag.
pub enum ImageLookup {
    Found(StoredManifest),
    NotFound,
    /// Both were given and the tag points at another digest.
    TagDigestMismatch,
}

/// The outcome of a PutImage.
pub enum ImagePut {
    Stored(ManifestPut),
    /// The manifest is stored already and the tag (if any) points at it: nothing changed.
    Unchanged(Digest),
}

/// The outcome of deleting one image id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDelete {
    /// The manifest `digest` lost these tags (all of them when deleted by digest); `deleted`
    /// says whether the manifest itself went too.
    Deleted {
        digest: String,
        tags: Vec<String>,
        deleted: bool,
    },
    NotFound,
    TagDigestMismatch,
    /// Indexes of the repository still list the manifest (by digest).
    ReferencedByIndex(Vec<String>),
}

/// Images as ECR's API sees them: listings, lookups, PutImage, BatchDeleteImage, layer checks.
#[derive(Clone)]
pub struct ImageService {
    core: Core,
    images: Images,
    manifests: Manifests,
    manifest_service: ManifestService,
    blob_service: BlobService,
}

impl ImageService {
    pub(super) fn new(
        core: Core,
        images: Images,
        manifests: Manifests,
        manifest_service: ManifestService,
        blob_service: BlobService,
    ) -> ImageService {
        ImageService {
            core,
            images,
            manifests,
            manifest_service,
            blob_service,
        }
    }

    /// Whether the manifest `manifest` of repository `name` references the blob `blob` (the
    /// scanner's credential reads only those).
    pub async fn manifest_references_blob(
        &self,
        name: &RepoName,
        manifest: &str,
        blob: &str,
    ) -> Result<bool> {
        match self.core.repository_id(name).await? {
            Some(id) => {
                self.images
                    .manifest_references_blob(id, manifest, blob)
                    .await
            }
            None => Ok(false),
        }
    }

    /// DescribeImages without ids: images after digest `after`, at most `limit`; true when more
    /// follow.
    pub async fn image_page(
        &self,
        name: &RepoName,
        after: Option<&str>,
        filter: TagFilter,
        limit: usize,
    ) -> Result<(Vec<ImageRow>, bool)> {
        let repo = self.core.repository(name).await?;
        let mut rows = self
            .images
            .image_page(repo, after, filter, limit as i64 + 1)
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }

    /// DescribeImages with ids: the image with this digest, if stored.
    pub async fn image(&self, name: &RepoName, digest: &Digest) -> Result<Option<ImageRow>> {
        let repo = self.core.repository(name).await?;
        self.images.image(repo, &digest.to_string()).await
    }

    /// The media types of the repository's manifests among `digests`, by digest.
    pub async fn media_types(
        &self,
        name: &RepoName,
        digests: &[String],
    ) -> Result<std::collections::HashMap<String, String>> {
        let repo = self.core.repository(name).await?;
        self.images.media_types(repo, digests).await
    }

    /// ListImages: (digest, tag) entries after `after`, at most `limit`; true when more follow.
    pub async fn image_id_page(
        &self,
        name: &RepoName,
        after: Option<(&str, &str)>,
        filter: TagFilter,
        limit: usize,
    ) -> Result<(Vec<(String, Option<String>)>, bool)> {
        let repo = self.core.repository(name).await?;
        let mut rows = self
            .images
            .image_id_page(repo, after, filter, limit as i64 + 1)
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }

    /// BatchGetImage / DescribeImages: the manifest named by a digest, a tag, or both (then the
    /// tag must point at the digest). A `pull` (BatchGetImage) passes the pull gate and counts
    /// as a pull, as on `/v2`.
    pub async fn lookup_image(
        &self,
        name: &RepoName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
        pull: bool,
    ) -> Result<ImageLookup> {
        let reference = match (digest, tag) {
            (_, Some(tag)) => Reference::Tag(tag.clone()),
            (Some(digest), None) => Reference::Digest(digest.clone()),
            (None, None) => return Ok(ImageLookup::NotFound),
        };
        match self.manifest_service.manifest(name, &reference, pull).await {
            Ok(found) => {
                if digest.is_some_and(|d| d.to_string() != found.digest) {
                    return Ok(ImageLookup::TagDigestMismatch);
                }
                Ok(ImageLookup::Found(found))
            }
            Err(Error::ManifestUnknown(_)) => Ok(ImageLookup::NotFound),
            Err(e) => Err(e),
        }
    }

    /// PutImage: stores a manifest (the repository must exist) under `tag` or by digest alone,
    /// not into a pull-through cache. A push that changes nothing (same manifest, tag already on
    /// it or no tag) is `Unchanged`.
    pub async fn put_image(
        &self,
        name: &RepoName,
        tag: Option<&Tag>,
        media_type: Option<&str>,
        manifest: Vec<u8>,
    ) -> Result<ImagePut> {
        // Before anything else, so a cache's own images are not reported "already exists".
        self.core.refuse_push_into_cache(name).await?;
        let repo = self.core.repository(name).await?;
        let digest = Digest::of(crate::oci::Algorithm::Sha256, &manifest);
        let existing = match tag {
            Some(tag) => self.manifests.manifest_by_tag(repo, tag).await?,
            None => self.manifests.manifest_by_digest(repo, &digest).await?,
        };
        if existing.is_some_and(|row| row.digest == digest.to_string()) {
            return Ok(ImagePut::Unchanged(digest));
        }
        let reference = match tag {
            Some(tag) => Reference::Tag(tag.clone()),
            None => Reference::Digest(digest),
        };
        self.manifest_service
            .put_manifest(name, &reference, &[], media_type, manifest)
            .await
            .map(ImagePut::Stored)
    }

    /// BatchDeleteImage, one id. By digest (optionally checked against a tag): the manifest and
    /// all its tags, unless an index of the repository lists it. By tag alone: the tag, and the
    /// manifest too when that was its last tag and no index lists it (as ECR does).
    pub async fn delete_image(
        &self,
        name: &RepoName,
        digest: Option<&Digest>,
        tag: Option<&Tag>,
    ) -> Result<ImageDelete> {
        let repo = self.core.repository(name).await?;
        let rules = self.manifest_service.replication_rules();
        let outcome = match (digest, tag) {
            (None, None) => ImageDelete::NotFound,
            (None, Some(tag)) => match self
                .images
                .untag_and_prune_replicated(
                    repo,
                    tag.as_str(),
                    &rules
                        .delete_targets(name.as_str(), Some(tag.as_str()))
                        .await?,
                )
                .await?
            {
                Some(untagged) => ImageDelete::Deleted {
                    digest: untagged.digest,
                    tags: vec![tag.as_str().to_owned()],
                    deleted: untagged.manifest_deleted,
                },
                None => ImageDelete::NotFound,
            },
            (Some(digest), tag) => {
                let key = digest.to_string();
                match self.images.image(repo, &key).await? {
                    None => ImageDelete::NotFound,
                    Some(image)
                        if tag.is_some_and(|t| !image.tags.iter().any(|x| x == t.as_str())) =>
                    {
                        ImageDelete::TagDigestMismatch
                    }
                    Some(image) => {
                        let parents = self.images.parents_of(repo, &key).await?;
                        if !parents.is_empty() {
                            ImageDelete::ReferencedByIndex(parents)
                        } else if self
                            .manifests
                            .delete_manifest_replicated(
                                repo,
                                digest,
                                &rules.delete_targets(name.as_str(), None).await?,
                            )
                            .await?
                        {
                            ImageDelete::Deleted {
                                digest: key,
                                tags: image.tags,
                                deleted: true,
                            }
                        } else {
                            ImageDelete::NotFound
                        }
                    }
                }
            }
        };
        self.core.cache.invalidate(repo);
        if matches!(outcome, ImageDelete::Deleted { .. }) {
            rules.pushed();
        }
        Ok(outcome)
    }

    /// BatchCheckLayerAvailability, one digest: the blob if the repository has it.
    pub async fn layer(&self, name: &RepoName, digest: &Digest) -> Result<Option<BlobRow>> {
        self.core.repository(name).await?;
        match self.blob_service.blob_row(name, digest).await {
            Ok(row) => Ok(Some(row)),
            Err(Error::BlobUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
