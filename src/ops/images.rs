//! Image operations: DescribeImages, ListImages, BatchGetImage, BatchDeleteImage, PutImage and
//! BatchCheckLayerAvailability (the ECR API's; `/v2` is the OCI door to the same images). Plus
//! what the scanning operations share with them: image ids as ECR names them, and an image's
//! scan status in its description.

use std::collections::HashSet;

use super::repositories::{in_repository, repository_name};
use super::shapes::{
    timestamp, BatchCheckLayerAvailabilityRequest, BatchCheckLayerAvailabilityResponse,
    BatchDeleteImageRequest, BatchDeleteImageResponse, BatchGetImageRequest, BatchGetImageResponse,
    DescribeImagesRequest, DescribeImagesResponse, Image, ImageDetail, ImageFailure,
    ImageIdentifier, ImageScanFindingsSummary, ImageScanStatus, Layer, LayerFailure,
    ListImagesRequest, ListImagesResponse, PutImageRequest, PutImageResponse, TagStatusFilter,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Permission, Resource};
use crate::error::{Error, Existing, Missing, Result};
use crate::meta::{ImageRow, TagFilter};
use crate::oci::manifest::ManifestKind;
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use crate::policy::Action;
use crate::service::{ImageDelete, ImageLookup, ImagePut};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An image id of a request, parsed: its digest and/or tag.
pub struct ImageRef {
    pub id: ImageIdentifier,
    pub digest: Option<Digest>,
    pub tag: Option<Tag>,
}

/// Parses an image id, or says why not as ECR's per-id failure.
pub fn image_ref(id: &ImageIdentifier) -> std::result::Result<ImageRef, ImageFailure> {
    if id.image_digest.is_none() && id.image_tag.is_none() {
        return Err(image_failure(
            id,
            "MissingDigestAndTag",
            "Missing image digest and tag",
        ));
    }
    let digest = match id.image_digest.as_deref() {
        Some(d) => Some(
            Digest::parse(d)
                .map_err(|_| image_failure(id, "InvalidImageDigest", "Invalid image digest"))?,
        ),
        None => None,
    };
    let tag = match id.image_tag.as_deref() {
        Some(t) => Some(
            Tag::parse(t).map_err(|_| image_failure(id, "InvalidImageTag", "Invalid image tag"))?,
        ),
        None => None,
    };
    Ok(ImageRef {
        id: id.clone(),
        digest,
        tag,
    })
}

fn image_failure(
    id: &ImageIdentifier,
    code: &'static str,
    reason: impl Into<String>,
) -> ImageFailure {
    ImageFailure {
        image_id: id.clone(),
        failure_code: code,
        failure_reason: reason.into(),
    }
}

/// An image id as ECR quotes it in messages.
pub fn describe_image_id(id: &ImageIdentifier) -> String {
    format!(
        "{{imageDigest:'{}', imageTag:'{}'}}",
        id.image_digest.as_deref().unwrap_or("null"),
        id.image_tag.as_deref().unwrap_or("null")
    )
}

/// ECR's answer for an image id that names no image of the repository.
pub fn image_not_found(cx: &Context<'_>, name: &RepoName, id: &ImageIdentifier) -> Error {
    Error::Missing(
        Missing::Image,
        format!(
            "The image with imageId {} does not exist within the repository with name '{name}' in the registry with id '{}'",
            describe_image_id(id),
            cx.registry_id()
        ),
    )
}

/// The manifest an image id names in a repository (digest and tag must agree when both are
/// given); `ImageNotFoundException` if none, `InvalidParameterException` for a malformed id.
pub async fn find_image(
    cx: &Context<'_>,
    name: &RepoName,
    id: &ImageIdentifier,
) -> Result<crate::service::StoredManifest> {
    let r = image_ref(id).map_err(|f| Error::InvalidParameter(f.failure_reason))?;
    match cx
        .registry
        .images()
        .lookup_image(name, r.digest.as_ref(), r.tag.as_ref(), false)
        .await
        .map_err(in_repository(cx, name.as_str()))?
    {
        ImageLookup::Found(manifest) => Ok(manifest),
        ImageLookup::NotFound | ImageLookup::TagDigestMismatch => {
            Err(image_not_found(cx, name, id))
        }
    }
}

fn tag_filter(filter: Option<&TagStatusFilter>) -> Result<TagFilter> {
    match filter.and_then(|f| f.tag_status.as_deref()) {
        None | Some("ANY") => Ok(TagFilter::Any),
        Some("TAGGED") => Ok(TagFilter::Tagged),
        Some("UNTAGGED") => Ok(TagFilter::Untagged),
        Some(other) => Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'filter.tagStatus': expected TAGGED, UNTAGGED or ANY, got '{}'",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

fn image_ids_limit(ids: &[ImageIdentifier]) -> Result<()> {
    if ids.is_empty() || ids.len() > 100 {
        return Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'must have between 1 and 100 items', got {}",
            ids.len()
        )));
    }
    Ok(())
}

/// Unique ids in request order (ECR answers each distinct id once).
fn distinct(ids: &[ImageIdentifier]) -> Vec<&ImageIdentifier> {
    let mut seen = HashSet::new();
    ids.iter().filter(|id| seen.insert(*id)).collect()
}

fn image_detail(cx: &Context<'_>, name: &RepoName, row: ImageRow) -> ImageDetail {
    ImageDetail {
        registry_id: cx.registry_id().to_owned(),
        repository_name: name.to_string(),
        image_digest: row.digest,
        image_tags: row.tags,
        image_size_in_bytes: row.size,
        image_pushed_at: timestamp(row.pushed_at),
        image_scan_status: None,
        image_scan_findings_summary: None,
        image_manifest_media_type: row.media_type,
        artifact_media_type: row.artifact_type,
        last_recorded_pull_time: row.last_pulled_at.map(timestamp),
        subject_manifest_digest: row.subject_digest,
        image_status: "ACTIVE".into(),
    }
}

/// The images' details with their scan status and, for a complete scan, the findings summary
/// (one batch of statements for the whole page).
async fn details_with_scans(
    cx: &Context<'_>,
    name: &RepoName,
    rows: Vec<ImageRow>,
) -> Result<Vec<ImageDetail>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.manifest_id).collect();
    let mut scans = cx
        .registry
        .scans()
        .scan_summaries(&ids)
        .await
        .map_err(in_repository(cx, name.as_str()))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let scan = scans.remove(&row.manifest_id);
            let mut detail = image_detail(cx, name, row);
            if let Some((state, counts)) = scan {
                if state.status == "COMPLETE" {
                    detail.image_scan_findings_summary = Some(ImageScanFindingsSummary {
                        image_scan_completed_at: state.completed_at.map(timestamp),
                        vulnerability_source_updated_at: state
                            .vulnerability_source_updated_at
                            .map(timestamp),
                        finding_severity_counts: counts.into_iter().collect(),
                    });
                }
                detail.image_scan_status = Some(ImageScanStatus {
                    status: state.status,
                    description: Some(state.description),
                });
            }
            detail
        })
        .collect())
}

impl Operation for DescribeImagesRequest {
    const NAME: &'static str = "ecr:DescribeImages";
    type Output = DescribeImagesResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeImages,
            Resource::Repository(&self.repository_name),
        )
    }

    /// The named images (all must exist), or a page of the repository's images.
    async fn run(self, cx: &Context<'_>) -> Result<DescribeImagesResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        if let Some(ids) = &self.image_ids {
            image_ids_limit(ids)?;
            if self.max_results.is_some() || self.next_token.is_some() {
                return Err(Error::InvalidParameter(
                    "maxResults and nextToken cannot be used together with imageIds".into(),
                ));
            }
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            for id in distinct(ids) {
                let manifest = find_image(cx, &name, id).await?;
                if !seen.insert(manifest.digest.clone()) {
                    continue;
                }
                let digest = Digest::parse(&manifest.digest)?;
                let row = cx
                    .registry
                    .images()
                    .image(&name, &digest)
                    .await
                    .map_err(in_repository(cx, name.as_str()))?
                    .ok_or_else(|| image_not_found(cx, &name, id))?;
                rows.push(row);
            }
            return Ok(DescribeImagesResponse {
                image_details: details_with_scans(cx, &name, rows).await?,
                next_token: None,
            });
        }
        let filter = tag_filter(self.filter.as_ref())?;
        let limit = max_results(self.max_results, 100)?;
        let after = match self.next_token.as_deref() {
            Some(token) => decode_token("images", token, 1)?.pop(),
            None => None,
        };
        let (rows, more) = cx
            .registry
            .images()
            .image_page(&name, after.as_deref(), filter, limit)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let next_token = match (more, rows.last()) {
            (true, Some(last)) => Some(encode_token("images", &[&last.digest])),
            _ => None,
        };
        Ok(DescribeImagesResponse {
            image_details: details_with_scans(cx, &name, rows).await?,
            next_token,
        })
    }
}

impl Operation for ListImagesRequest {
    const NAME: &'static str = "ecr:ListImages";
    type Output = ListImagesResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::ListImages,
            Resource::Repository(&self.repository_name),
        )
    }

    /// One id per tag, and one per untagged manifest.
    async fn run(self, cx: &Context<'_>) -> Result<ListImagesResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let filter = tag_filter(self.filter.as_ref())?;
        let limit = max_results(self.max_results, 100)?;
        let after = match self.next_token.as_deref() {
            Some(token) => Some(decode_token("image-ids", token, 2)?),
            None => None,
        };
        let after_pair = after.as_ref().map(|v| (v[0].as_str(), v[1].as_str()));
        let (rows, more) = cx
            .registry
            .images()
            .image_id_page(&name, after_pair, filter, limit)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let next_token = match (more, rows.last()) {
            (true, Some((digest, tag))) => Some(encode_token(
                "image-ids",
                &[digest, tag.as_deref().unwrap_or("")],
            )),
            _ => None,
        };
        Ok(ListImagesResponse {
            image_ids: rows
                .into_iter()
                .map(|(digest, tag)| ImageIdentifier {
                    image_digest: Some(digest),
                    image_tag: tag,
                })
                .collect(),
            next_token,
        })
    }
}

impl Operation for BatchGetImageRequest {
    const NAME: &'static str = "ecr:BatchGetImage";
    type Output = BatchGetImageResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::BatchGetImage,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Manifests by tag and/or digest, with per-id failures. Reads are pulls (the pull gate
    /// applies; they count for lifecycle rules).
    async fn run(self, cx: &Context<'_>) -> Result<BatchGetImageResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        image_ids_limit(&self.image_ids)?;
        let registry = cx.registry;
        // A missing repository fails the whole call, as in ECR.
        registry
            .repositories()
            .describe_repository(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let accepted = self.accepted_media_types.unwrap_or_default();
        let mut images = Vec::new();
        let mut failures = Vec::new();
        for id in distinct(&self.image_ids) {
            let r = match image_ref(id) {
                Ok(r) => r,
                Err(failure) => {
                    failures.push(failure);
                    continue;
                }
            };
            let found = registry
                .images()
                .lookup_image(&name, r.digest.as_ref(), r.tag.as_ref(), true)
                .await
                .map_err(in_repository(cx, name.as_str()))?;
            let manifest = match found {
                ImageLookup::Found(m) => m,
                ImageLookup::NotFound => {
                    failures.push(image_failure(
                        id,
                        "ImageNotFound",
                        "Requested image not found",
                    ));
                    continue;
                }
                ImageLookup::TagDigestMismatch => {
                    failures.push(image_failure(
                        id,
                        "ImageTagDoesNotMatchDigest",
                        "Invalid image tag: the tag does not point at the given digest",
                    ));
                    continue;
                }
            };
            if !accepted.is_empty() && !accepted.iter().any(|m| m == &manifest.media_type) {
                failures.push(image_failure(
                    id,
                    "ImageNotFound",
                    format!(
                        "The image's manifest media type {} is not among acceptedMediaTypes (Berth does not convert manifests)",
                        manifest.media_type
                    ),
                ));
                continue;
            }
            let Ok(text) = String::from_utf8(manifest.content.to_vec()) else {
                failures.push(image_failure(
                    id,
                    "ImageNotFound",
                    "The stored manifest is not UTF-8 text",
                ));
                continue;
            };
            images.push(Image {
                registry_id: cx.registry_id().to_owned(),
                repository_name: name.to_string(),
                image_id: ImageIdentifier {
                    image_digest: Some(manifest.digest),
                    image_tag: r.id.image_tag,
                },
                image_manifest: text,
                image_manifest_media_type: manifest.media_type,
            });
        }
        Ok(BatchGetImageResponse { images, failures })
    }
}

impl Operation for BatchDeleteImageRequest {
    const NAME: &'static str = "ecr:BatchDeleteImage";
    type Output = BatchDeleteImageResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::BatchDeleteImage,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Deletes by tag (the image goes with its last tag) and/or digest.
    async fn run(self, cx: &Context<'_>) -> Result<BatchDeleteImageResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        image_ids_limit(&self.image_ids)?;
        let registry = cx.registry;
        registry
            .repositories()
            .describe_repository(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let mut deleted = Vec::new();
        let mut failures = Vec::new();
        for id in distinct(&self.image_ids) {
            let r = match image_ref(id) {
                Ok(r) => r,
                Err(failure) => {
                    failures.push(failure);
                    continue;
                }
            };
            let outcome = registry
                .images()
                .delete_image(&name, r.digest.as_ref(), r.tag.as_ref())
                .await
                .map_err(in_repository(cx, name.as_str()))?;
            match outcome {
                ImageDelete::Deleted { digest, tags, .. } if tags.is_empty() => {
                    deleted.push(ImageIdentifier {
                        image_digest: Some(digest),
                        image_tag: None,
                    });
                }
                ImageDelete::Deleted { digest, tags, .. } => {
                    deleted.extend(tags.into_iter().map(|tag| ImageIdentifier {
                        image_digest: Some(digest.clone()),
                        image_tag: Some(tag),
                    }));
                }
                ImageDelete::NotFound => failures.push(image_failure(
                    id,
                    "ImageNotFound",
                    "Requested image not found",
                )),
                ImageDelete::TagDigestMismatch => failures.push(image_failure(
                    id,
                    "ImageTagDoesNotMatchDigest",
                    "Invalid image tag: the tag does not point at the given digest",
                )),
                ImageDelete::ReferencedByIndex(parents) => failures.push(image_failure(
                    id,
                    "ImageReferencedByManifestList",
                    format!(
                        "Requested image referenced by manifest list: [{}]",
                        parents.join(", ")
                    ),
                )),
            }
        }
        cx.note(format!(
            "{} image ids deleted, {} failed",
            deleted.len(),
            failures.len()
        ));
        Ok(BatchDeleteImageResponse {
            image_ids: deleted,
            failures,
        })
    }
}

impl Operation for PutImageRequest {
    const NAME: &'static str = "ecr:PutImage";
    type Output = PutImageResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutImage,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Stores a manifest whose blobs (or child manifests) are already in the repository. The
    /// registry service refuses it into a pull-through cache, as it refuses a `/v2` push.
    async fn run(self, cx: &Context<'_>) -> Result<PutImageResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let tag = match self.image_tag.as_deref() {
            Some(t) => Some(Tag::parse(t).map_err(|e| {
                Error::InvalidParameter(format!("Invalid parameter at 'imageTag': {}", e.message()))
            })?),
            None => None,
        };
        let body = self.image_manifest.into_bytes();
        if body.is_empty() {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'imageManifest': the manifest is empty".into(),
            ));
        }
        let digest = Digest::of(Algorithm::Sha256, &body);
        if let Some(expected) = self.image_digest.as_deref() {
            let expected = Digest::parse(expected).map_err(|e| {
                Error::InvalidParameter(format!(
                    "Invalid parameter at 'imageDigest': {}",
                    e.message()
                ))
            })?;
            let actual = Digest::of(expected.algorithm(), &body);
            if actual != expected {
                return Err(Error::ImageDigestMismatch(format!(
                    "The imageDigest {expected} does not match the digest of the manifest, {actual}"
                )));
            }
        }
        let media_type_mismatch = |given: &str, document: &str| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'imageManifestMediaType': '{given}' does not match the manifest's mediaType '{document}'"
            ))
        };
        // Checked before parsing, which refuses the same contradiction in registry-API words.
        if let (Some(given), Some(document)) = (
            self.image_manifest_media_type.as_deref(),
            crate::oci::manifest::media_type_field(&body),
        ) {
            if given != document {
                return Err(media_type_mismatch(given, &document));
            }
        }
        let parsed = crate::oci::manifest::parse(
            &body,
            self.image_manifest_media_type.as_deref(),
            cx.registry.limits().max_manifest_descriptors,
        )
        .map_err(|e| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'imageManifest': {}",
                e.message()
            ))
        })?;
        if let Some(given) = self.image_manifest_media_type.as_deref() {
            if given != parsed.media_type {
                return Err(media_type_mismatch(given, &parsed.media_type));
            }
        }
        let outcome = cx
            .registry
            .images()
            .put_image(
                &name,
                tag.as_ref(),
                self.image_manifest_media_type.as_deref(),
                body.clone(),
            )
            .await
            .map_err(|e| match e {
                Error::ManifestBlobUnknown(message) if parsed.kind == ManifestKind::Index => {
                    Error::Missing(Missing::ReferencedImages, message)
                }
                Error::ManifestInvalid(message) | Error::ManifestTooComplex(message) => {
                    Error::InvalidParameter(format!(
                        "Invalid parameter at 'imageManifest': {message}"
                    ))
                }
                other => in_repository(cx, name.as_str())(other),
            })?;
        if let ImagePut::Unchanged(_) = outcome {
            return Err(Error::Exists(
                Existing::Image,
                match &tag {
                    Some(tag) => format!(
                        "Image with digest '{digest}' and tag '{tag}' already exists in the repository with name '{name}' in registry with id '{}'",
                        cx.registry_id()
                    ),
                    None => format!(
                        "Image with digest '{digest}' already exists in the repository with name '{name}' in registry with id '{}'",
                        cx.registry_id()
                    ),
                },
            ));
        }
        cx.note(match &tag {
            Some(tag) => format!("{digest} tagged {tag}"),
            None => digest.to_string(),
        });
        Ok(PutImageResponse {
            image: Image {
                registry_id: cx.registry_id().to_owned(),
                repository_name: name.to_string(),
                image_id: ImageIdentifier {
                    image_digest: Some(digest.to_string()),
                    image_tag: tag.map(|t| t.to_string()),
                },
                image_manifest: String::from_utf8(body).unwrap_or_default(),
                image_manifest_media_type: parsed.media_type,
            },
        })
    }
}

impl Operation for BatchCheckLayerAvailabilityRequest {
    const NAME: &'static str = "ecr:BatchCheckLayerAvailability";
    type Output = BatchCheckLayerAvailabilityResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::BatchCheckLayerAvailability,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Which blobs the repository has.
    async fn run(self, cx: &Context<'_>) -> Result<BatchCheckLayerAvailabilityResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        if self.layer_digests.is_empty() || self.layer_digests.len() > 100 {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'must have between 1 and 100 items'".into(),
            ));
        }
        let registry = cx.registry;
        registry
            .repositories()
            .describe_repository(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let mut layers = Vec::new();
        let mut failures = Vec::new();
        for text in &self.layer_digests {
            let Ok(digest) = Digest::parse(text) else {
                failures.push(LayerFailure {
                    layer_digest: text.clone(),
                    failure_code: "InvalidLayerDigest",
                    failure_reason: "Invalid layer digest".into(),
                });
                continue;
            };
            match registry
                .images()
                .layer(&name, &digest)
                .await
                .map_err(in_repository(cx, name.as_str()))?
            {
                Some(blob) => layers.push(Layer {
                    layer_digest: blob.digest,
                    layer_availability: "AVAILABLE",
                    layer_size: blob.size as i64,
                }),
                None => failures.push(LayerFailure {
                    layer_digest: text.clone(),
                    failure_code: "MissingLayerDigest",
                    failure_reason: "Layer digest not found in the repository".into(),
                }),
            }
        }
        Ok(BatchCheckLayerAvailabilityResponse { layers, failures })
    }
}

// ---- Berth's image details (the console's repository and image pages) ----

/// A platform of an index's child manifest (`platform` of its descriptor).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn from_descriptor(d: &serde_json::Value) -> Option<Platform> {
        let p = &d["platform"];
        let os = p["os"].as_str()?;
        let architecture = p["architecture"].as_str()?;
        Some(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: p["variant"].as_str().map(str::to_owned),
        })
    }
}

/// An artifact whose subject is an image (a signature, an SBOM, an attestation).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageReferrer {
    pub image_digest: String,
    pub image_manifest_media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Bytes of the referrer's manifest.
    pub size: i64,
}

/// Berth's DescribeImageReferences: for each named image of a repository, the platforms an
/// index lists and the referrers whose subject it is. Reads what DescribeImages reads
/// (stored manifests, no pull), so it needs `ecr:DescribeImages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageReferencesRequest {
    pub repository_name: String,
    /// 1 to 100 digests.
    pub image_digests: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageReferences {
    pub image_digest: String,
    /// For an index: the platforms of its child manifests, in its order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ImageReferrer>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageReferencesResponse {
    /// One per distinct digest that names an image of the repository (others are left out).
    pub images: Vec<ImageReferences>,
}

impl Operation for DescribeImageReferencesRequest {
    const NAME: &'static str = "berth:DescribeImageReferences";
    type Output = DescribeImageReferencesResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeImages,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<DescribeImageReferencesResponse> {
        let name = repository_name(&self.repository_name)?;
        if self.image_digests.is_empty() || self.image_digests.len() > 100 {
            return Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'imageDigests' failed to satisfy constraint: 'must have between 1 and 100 items', got {}",
                self.image_digests.len()
            )));
        }
        let mut digests = Vec::new();
        let mut seen = HashSet::new();
        for text in &self.image_digests {
            let digest = Digest::parse(text).map_err(|_| {
                Error::InvalidParameter(format!(
                    "Invalid parameter at 'imageDigests': '{}' is not a digest",
                    text.chars().take(80).collect::<String>()
                ))
            })?;
            if seen.insert(digest.to_string()) {
                digests.push(digest);
            }
        }
        let manifests = cx.registry.manifests();
        let texts: Vec<String> = digests.iter().map(Digest::to_string).collect();
        // One statement for the page's media types; only an index's body is read (its platforms).
        let media_types = cx
            .registry
            .images()
            .media_types(&name, &texts)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        let mut images = Vec::with_capacity(digests.len());
        for (digest, text) in digests.iter().zip(texts) {
            let Some(media_type) = media_types.get(&text) else {
                continue;
            };
            let mut platforms = Vec::new();
            if crate::oci::manifest::kind_of(media_type) == Some(ManifestKind::Index) {
                let stored = match manifests
                    .manifest(&name, &Reference::Digest(digest.clone()), false)
                    .await
                {
                    Ok(m) => m,
                    Err(Error::ManifestUnknown(_)) => continue,
                    Err(e) => return Err(in_repository(cx, name.as_str())(e)),
                };
                let doc: serde_json::Value =
                    serde_json::from_slice(&stored.content).unwrap_or_default();
                platforms = doc["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Platform::from_descriptor)
                    .collect();
            }
            images.push(ImageReferences {
                image_digest: text,
                platforms,
                referrers: Vec::new(),
            });
        }
        let subjects: Vec<String> = images.iter().map(|i| i.image_digest.clone()).collect();
        if !subjects.is_empty() {
            for (subject, r) in manifests
                .referrers_of(&name, &subjects)
                .await
                .map_err(in_repository(cx, name.as_str()))?
            {
                if let Some(image) = images.iter_mut().find(|i| i.image_digest == subject) {
                    image.referrers.push(ImageReferrer {
                        image_digest: r.digest,
                        image_manifest_media_type: r.media_type,
                        artifact_type: r.artifact_type,
                        size: r.size,
                    });
                }
            }
        }
        Ok(DescribeImageReferencesResponse { images })
    }
}

/// The largest image config DescribeImageDetails reads (configs are a few KiB; a larger one is
/// not read into memory for a page).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Media types of image configs DescribeImageDetails summarises.
const IMAGE_CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Berth's DescribeImageDetails: one image's manifest and config, summarised (media types,
/// layers with sizes, platform, creation time, entrypoint, command, labels; for an index, its
/// child manifests). It reads the manifest and the config blob, which a pull could read too, so
/// it needs `ecr:BatchGetImage`; it is not a pull (no pull gate, no last-pull time).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageDetailsRequest {
    pub repository_name: String,
    pub image_digest: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayerSummary {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildManifestSummary {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfigSummary {
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    /// Why the config was not read (not an image config, too large); the fields below are then
    /// empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_read: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageDetailsResponse {
    pub repository_name: String,
    pub image_digest: String,
    pub image_manifest_media_type: String,
    /// Bytes of the manifest itself.
    pub manifest_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfigSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<ImageLayerSummary>,
    /// For an index: its child manifests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ChildManifestSummary>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

fn strings(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

fn string_map(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect()
}

/// The summary of an image config document (OCI or Docker).
fn config_summary(mut summary: ImageConfigSummary, doc: &serde_json::Value) -> ImageConfigSummary {
    let config = &doc["config"];
    let s = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    summary.created = s(&doc["created"]);
    summary.platform = match (doc["os"].as_str(), doc["architecture"].as_str()) {
        (Some(os), Some(arch)) => Some(Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: s(&doc["variant"]),
        }),
        _ => None,
    };
    summary.entrypoint = strings(&config["Entrypoint"]);
    summary.cmd = strings(&config["Cmd"]);
    summary.working_dir = s(&config["WorkingDir"]);
    summary.user = s(&config["User"]);
    summary.labels = string_map(&config["Labels"]);
    summary
}

impl Operation for DescribeImageDetailsRequest {
    const NAME: &'static str = "berth:DescribeImageDetails";
    type Output = DescribeImageDetailsResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::BatchGetImage,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<DescribeImageDetailsResponse> {
        let name = repository_name(&self.repository_name)?;
        let id = ImageIdentifier {
            image_digest: Some(self.image_digest.clone()),
            image_tag: None,
        };
        let stored = find_image(cx, &name, &id).await?;
        let doc: serde_json::Value = serde_json::from_slice(&stored.content).map_err(|_| {
            Error::Internal(format!("the stored manifest {} is not JSON", stored.digest))
        })?;
        let descriptor = |d: &serde_json::Value| {
            (
                d["digest"].as_str().unwrap_or_default().to_owned(),
                d["mediaType"].as_str().unwrap_or_default().to_owned(),
                d["size"].as_i64().unwrap_or(0),
            )
        };
        let layers = doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let (digest, media_type, size) = descriptor(d);
                ImageLayerSummary {
                    digest,
                    media_type,
                    size,
                }
            })
            .collect();
        let manifests = doc["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let (digest, media_type, size) = descriptor(d);
                ChildManifestSummary {
                    digest,
                    media_type,
                    size,
                    platform: Platform::from_descriptor(d),
                }
            })
            .collect();
        let config = match doc.get("config") {
            Some(d) if d.is_object() => {
                let (digest, media_type, size) = descriptor(d);
                let summary = ImageConfigSummary {
                    digest: digest.clone(),
                    media_type: media_type.clone(),
                    size,
                    ..Default::default()
                };
                Some(if !IMAGE_CONFIG_TYPES.contains(&media_type.as_str()) {
                    ImageConfigSummary {
                        not_read: Some(format!("{media_type} is not an image config")),
                        ..summary
                    }
                } else {
                    match read_config(cx, &name, &digest).await? {
                        Ok(doc) => config_summary(summary, &doc),
                        Err(reason) => ImageConfigSummary {
                            not_read: Some(reason),
                            ..summary
                        },
                    }
                })
            }
            _ => None,
        };
        Ok(DescribeImageDetailsResponse {
            repository_name: name.to_string(),
            image_digest: stored.digest,
            image_manifest_media_type: stored.media_type,
            manifest_size: stored.content.len() as i64,
            artifact_type: doc["artifactType"].as_str().map(str::to_owned),
            subject_manifest_digest: doc["subject"]["digest"].as_str().map(str::to_owned),
            config,
            layers,
            manifests,
            annotations: string_map(&doc["annotations"]),
        })
    }
}

/// The config blob as JSON, or why it was not read (too large, missing, not JSON).
async fn read_config(
    cx: &Context<'_>,
    name: &RepoName,
    digest: &str,
) -> Result<std::result::Result<serde_json::Value, String>> {
    use futures::StreamExt as _;
    let Ok(digest) = Digest::parse(digest) else {
        return Ok(Err("the config digest is not valid".into()));
    };
    let (size, mut stream) = match cx.registry.blobs().blob_stream(name, &digest).await {
        Ok(read) => read,
        Err(Error::BlobUnknown(_)) => return Ok(Err("the config blob is not stored".into())),
        Err(e) => return Err(e),
    };
    if size > MAX_CONFIG_BYTES {
        return Ok(Err(format!(
            "the config is {size} bytes, more than the {MAX_CONFIG_BYTES} bytes a summary reads"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Internal(format!("reading the config: {e}")))?;
        if bytes.len() + chunk.len() > MAX_CONFIG_BYTES as usize {
            return Ok(Err("the config is larger than its descriptor says".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&bytes).map_err(|_| "the config is not JSON".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        let id = |d: Option<&str>, t: Option<&str>| ImageIdentifier {
            image_digest: d.map(str::to_owned),
            image_tag: t.map(str::to_owned),
        };
        let code = |i: ImageIdentifier| image_ref(&i).err().map(|f| f.failure_code);
        assert_eq!(code(id(None, None)), Some("MissingDigestAndTag"));
        assert_eq!(
            code(id(Some("sha256:zz"), None)),
            Some("InvalidImageDigest")
        );
        assert_eq!(code(id(None, Some("-bad"))), Some("InvalidImageTag"));
        assert_eq!(code(id(None, Some("v1"))), None);
    }

    #[test]
    fn configs_are_summarised() {
        let doc = serde_json::json!({
            "created": "2024-01-02T03:04:05Z", "os": "linux", "architecture": "arm64",
            "variant": "v8",
            "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"],
                       "Labels": {"org.opencontainers.image.source": "https://x"}}
        });
        let s = config_summary(ImageConfigSummary::default(), &doc);
        assert_eq!(s.platform.unwrap().label(), "linux/arm64/v8");
        assert_eq!(s.entrypoint.unwrap(), vec!["/bin/app"]);
        assert_eq!(s.cmd.unwrap(), vec!["--serve"]);
        assert_eq!(s.labels.len(), 1);
        assert_eq!(s.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        let index = serde_json::json!({"platform": {"os": "linux", "architecture": "amd64"}});
        assert_eq!(
            Platform::from_descriptor(&index).unwrap().label(),
            "linux/amd64"
        );
        assert!(Platform::from_descriptor(&serde_json::json!({})).is_none());
    }
}
