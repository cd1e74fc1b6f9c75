//! One function per ECR operation: validate the input, authorize, call the registry service,
//! shape the answer. `dispatch` maps an operation name to its function.

use std::collections::HashSet;

use serde::Serialize;

use super::{parse, Call, EcrError, EcrResult, Target};
use crate::error::Error;
use crate::meta::{ImageRow, TagFilter};
use crate::oci::manifest::ManifestKind;
use crate::oci::{Algorithm, Digest, RepoName, Tag};
use crate::ops::repositories::repository_name;
use crate::ops::shapes::*;
use crate::ops::{decode_token, encode_token, max_results};
use crate::policy::Action;
use crate::service::{ImageDelete, ImageLookup, ImagePut};

/// Runs the operation named by `X-Amz-Target` on the JSON `body`. Operations of the control
/// plane (`crate::ops`) are authorized and audited there (`audited` is set); the others here.
pub async fn dispatch(
    call: &Call<'_>,
    operation: &str,
    body: &[u8],
    audited: &mut bool,
) -> EcrResult<String> {
    macro_rules! run {
        ($f:ident) => {
            json($f(call, parse(body)?).await?)
        };
    }
    macro_rules! op {
        ($request:ty) => {{
            let request: $request = parse(body)?;
            *audited = true;
            json(crate::ops::execute(&call.context(), request).await?)
        }};
    }
    match operation {
        "GetAuthorizationToken" => op!(GetAuthorizationTokenRequest),
        "CreateRepository" => op!(CreateRepositoryRequest),
        "DescribeRepositories" => op!(DescribeRepositoriesRequest),
        "DeleteRepository" => op!(DeleteRepositoryRequest),
        "SetRepositoryPolicy" => op!(SetRepositoryPolicyRequest),
        "GetRepositoryPolicy" => op!(GetRepositoryPolicyRequest),
        "DeleteRepositoryPolicy" => op!(DeleteRepositoryPolicyRequest),
        "PutLifecyclePolicy" => op!(PutLifecyclePolicyRequest),
        "GetLifecyclePolicy" => op!(GetLifecyclePolicyRequest),
        "DeleteLifecyclePolicy" => op!(DeleteLifecyclePolicyRequest),
        "StartLifecyclePolicyPreview" => op!(StartLifecyclePolicyPreviewRequest),
        "GetLifecyclePolicyPreview" => op!(GetLifecyclePolicyPreviewRequest),
        "PutRegistryPolicy" => op!(PutRegistryPolicyRequest),
        "GetRegistryPolicy" => op!(GetRegistryPolicyRequest),
        "DeleteRegistryPolicy" => op!(DeleteRegistryPolicyRequest),
        "DescribeRegistry" => op!(DescribeRegistryRequest),
        "DescribeImages" => run!(describe_images),
        "ListImages" => run!(list_images),
        "BatchGetImage" => run!(batch_get_image),
        "BatchDeleteImage" => run!(batch_delete_image),
        "PutImage" => run!(put_image),
        "BatchCheckLayerAvailability" => run!(batch_check_layer_availability),
        "PutImageTagMutability" => op!(PutImageTagMutabilityRequest),
        "PutImageScanningConfiguration" => run!(put_image_scanning_configuration),
        "StartImageScan" => run!(start_image_scan),
        "DescribeImageScanFindings" => run!(describe_image_scan_findings),
        "PutRegistryScanningConfiguration" => run!(put_registry_scanning_configuration),
        "CreatePullThroughCacheRule" => op!(CreatePullThroughCacheRuleRequest),
        "DescribePullThroughCacheRules" => op!(DescribePullThroughCacheRulesRequest),
        "UpdatePullThroughCacheRule" => op!(UpdatePullThroughCacheRuleRequest),
        "DeletePullThroughCacheRule" => op!(DeletePullThroughCacheRuleRequest),
        "ValidatePullThroughCacheRule" => op!(ValidatePullThroughCacheRuleRequest),
        "GetRegistryScanningConfiguration" => run!(get_registry_scanning_configuration),
        "TagResource" => op!(TagResourceRequest),
        "UntagResource" => op!(UntagResourceRequest),
        "ListTagsForResource" => op!(ListTagsForResourceRequest),
        "CreateRepositoryCreationTemplate" => op!(CreateRepositoryCreationTemplateRequest),
        "DescribeRepositoryCreationTemplates" => {
            op!(DescribeRepositoryCreationTemplatesRequest)
        }
        "UpdateRepositoryCreationTemplate" => op!(UpdateRepositoryCreationTemplateRequest),
        "DeleteRepositoryCreationTemplate" => op!(DeleteRepositoryCreationTemplateRequest),
        other if Action::from_operation(other).is_some() => Err(EcrError::new(
            "UnknownOperationException",
            format!("Berth does not implement the ECR operation {other} yet"),
        )),
        other => Err(EcrError::new(
            "UnknownOperationException",
            format!(
                "unknown operation {}",
                other.chars().take(100).collect::<String>()
            ),
        )),
    }
}

fn json<T: Serialize>(value: T) -> EcrResult<String> {
    serde_json::to_string(&value).map_err(|e| Error::internal(e).into())
}

// ---- helpers ----

impl Call<'_> {
    /// The common start of a repository operation: the registry id must be this registry's,
    /// the name valid, and the caller allowed `action` on the repository.
    async fn authorize_repository(
        &self,
        action: Action,
        registry_id: Option<&str>,
        repository: &str,
    ) -> EcrResult<RepoName> {
        self.check_registry_id(registry_id)?;
        let name = repository_name(repository)?;
        self.authorize(action, &Target::Repository(name.clone()))
            .await?;
        Ok(name)
    }
}

fn repository_not_found(registry_id: &str, name: &RepoName) -> EcrError {
    EcrError::new(
        "RepositoryNotFoundException",
        format!("The repository with name '{name}' does not exist in the registry with id '{registry_id}'"),
    )
}

/// Maps `NameUnknown` to ECR's wording for this repository.
fn in_repository(call: &Call<'_>, name: &RepoName) -> impl Fn(Error) -> EcrError {
    let name = name.clone();
    let registry_id = call.registry_id().to_owned();
    move |e| match e {
        Error::NameUnknown(_) => repository_not_found(&registry_id, &name),
        other => other.into(),
    }
}

fn tag_filter(filter: Option<&TagStatusFilter>) -> EcrResult<TagFilter> {
    match filter.and_then(|f| f.tag_status.as_deref()) {
        None | Some("ANY") => Ok(TagFilter::Any),
        Some("TAGGED") => Ok(TagFilter::Tagged),
        Some("UNTAGGED") => Ok(TagFilter::Untagged),
        Some(other) => Err(EcrError::invalid(format!(
            "Invalid parameter at 'filter.tagStatus': expected TAGGED, UNTAGGED or ANY, got '{}'",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// The image id of a request: parsed digest and/or tag, or the failure to report.
struct ImageRef {
    id: ImageIdentifier,
    digest: Option<Digest>,
    tag: Option<Tag>,
}

fn image_ref(id: &ImageIdentifier) -> Result<ImageRef, ImageFailure> {
    let fail = |code: &'static str, reason: &str| ImageFailure {
        image_id: id.clone(),
        failure_code: code,
        failure_reason: reason.to_owned(),
    };
    if id.image_digest.is_none() && id.image_tag.is_none() {
        return Err(fail("MissingDigestAndTag", "Missing image digest and tag"));
    }
    let digest = match id.image_digest.as_deref() {
        Some(d) => {
            Some(Digest::parse(d).map_err(|_| fail("InvalidImageDigest", "Invalid image digest"))?)
        }
        None => None,
    };
    let tag = match id.image_tag.as_deref() {
        Some(t) => Some(Tag::parse(t).map_err(|_| fail("InvalidImageTag", "Invalid image tag"))?),
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

fn image_ids_limit(ids: &[ImageIdentifier]) -> EcrResult<()> {
    if ids.is_empty() || ids.len() > 100 {
        return Err(EcrError::invalid(format!(
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

// ---- images ----

fn image_detail(call: &Call<'_>, name: &RepoName, row: ImageRow) -> ImageDetail {
    ImageDetail {
        registry_id: call.registry_id().to_owned(),
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

/// Fills in an image's scan status and, for a complete scan, its findings summary.
async fn with_scan(
    call: &Call<'_>,
    name: &RepoName,
    mut detail: ImageDetail,
) -> EcrResult<ImageDetail> {
    let digest = Digest::parse(&detail.image_digest)?;
    let registry = &call.app.registry;
    let Some(state) = registry
        .scan_state(name, &digest)
        .await
        .map_err(in_repository(call, name))?
    else {
        return Ok(detail);
    };
    if state.status == "COMPLETE" {
        let counts = registry
            .meta
            .scan_severity_counts(state.manifest_id)
            .await?;
        detail.image_scan_findings_summary = Some(ImageScanFindingsSummary {
            image_scan_completed_at: state.completed_at.map(timestamp),
            vulnerability_source_updated_at: state.vulnerability_source_updated_at.map(timestamp),
            finding_severity_counts: counts.into_iter().collect(),
        });
    }
    detail.image_scan_status = Some(ImageScanStatus {
        status: state.status,
        description: Some(state.description),
    });
    Ok(detail)
}

fn describe_image_id(id: &ImageIdentifier) -> String {
    format!(
        "{{imageDigest:'{}', imageTag:'{}'}}",
        id.image_digest.as_deref().unwrap_or("null"),
        id.image_tag.as_deref().unwrap_or("null")
    )
}

/// DescribeImages: the named images (all must exist), or a page of the repository's images.
async fn describe_images(
    call: &Call<'_>,
    input: DescribeImagesRequest,
) -> EcrResult<DescribeImagesResponse> {
    let name = call
        .authorize_repository(
            Action::DescribeImages,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let registry = &call.app.registry;
    if let Some(ids) = &input.image_ids {
        image_ids_limit(ids)?;
        if input.max_results.is_some() || input.next_token.is_some() {
            return Err(EcrError::invalid(
                "maxResults and nextToken cannot be used together with imageIds",
            ));
        }
        let mut details = Vec::new();
        let mut seen = HashSet::new();
        for id in distinct(ids) {
            let image_not_found = || {
                EcrError::new(
                    "ImageNotFoundException",
                    format!(
                        "The image with imageId {} does not exist within the repository with name '{name}' in the registry with id '{}'",
                        describe_image_id(id),
                        call.registry_id()
                    ),
                )
            };
            let r = image_ref(id).map_err(|f| EcrError::invalid(f.failure_reason))?;
            let found = registry
                .lookup_image(&name, r.digest.as_ref(), r.tag.as_ref(), false)
                .await
                .map_err(in_repository(call, &name))?;
            let ImageLookup::Found(manifest) = found else {
                return Err(image_not_found());
            };
            if !seen.insert(manifest.digest.clone()) {
                continue;
            }
            let digest = Digest::parse(&manifest.digest)?;
            let row = registry
                .image(&name, &digest)
                .await
                .map_err(in_repository(call, &name))?
                .ok_or_else(image_not_found)?;
            details.push(with_scan(call, &name, image_detail(call, &name, row)).await?);
        }
        return Ok(DescribeImagesResponse {
            image_details: details,
            next_token: None,
        });
    }
    let filter = tag_filter(input.filter.as_ref())?;
    let limit = max_results(input.max_results, 100)?;
    let after = match input.next_token.as_deref() {
        Some(token) => decode_token("images", token, 1)?.pop(),
        None => None,
    };
    let (rows, more) = registry
        .image_page(&name, after.as_deref(), filter, limit)
        .await
        .map_err(in_repository(call, &name))?;
    let next_token = match (more, rows.last()) {
        (true, Some(last)) => Some(encode_token("images", &[&last.digest])),
        _ => None,
    };
    let mut image_details = Vec::with_capacity(rows.len());
    for row in rows {
        image_details.push(with_scan(call, &name, image_detail(call, &name, row)).await?);
    }
    Ok(DescribeImagesResponse {
        image_details,
        next_token,
    })
}

/// ListImages: one id per tag, and one per untagged manifest.
async fn list_images(call: &Call<'_>, input: ListImagesRequest) -> EcrResult<ListImagesResponse> {
    let name = call
        .authorize_repository(
            Action::ListImages,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let filter = tag_filter(input.filter.as_ref())?;
    let limit = max_results(input.max_results, 100)?;
    let after = match input.next_token.as_deref() {
        Some(token) => Some(decode_token("image-ids", token, 2)?),
        None => None,
    };
    let after_pair = after.as_ref().map(|v| (v[0].as_str(), v[1].as_str()));
    let (rows, more) = call
        .app
        .registry
        .image_id_page(&name, after_pair, filter, limit)
        .await
        .map_err(in_repository(call, &name))?;
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

/// BatchGetImage: manifests by tag and/or digest, with per-id failures.
async fn batch_get_image(
    call: &Call<'_>,
    input: BatchGetImageRequest,
) -> EcrResult<BatchGetImageResponse> {
    call.check_registry_id(input.registry_id.as_deref())?;
    let name = repository_name(&input.repository_name)?;
    image_ids_limit(&input.image_ids)?;
    call.authorize(Action::BatchGetImage, &Target::Repository(name.clone()))
        .await?;
    let registry = &call.app.registry;
    // A missing repository fails the whole call, as in ECR.
    registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    let accepted = input.accepted_media_types.unwrap_or_default();
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for id in distinct(&input.image_ids) {
        let r = match image_ref(id) {
            Ok(r) => r,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let found = registry
            .lookup_image(&name, r.digest.as_ref(), r.tag.as_ref(), true)
            .await
            .map_err(in_repository(call, &name))?;
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
            registry_id: call.registry_id().to_owned(),
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

/// BatchDeleteImage: deletes by tag (the image goes with its last tag) and/or digest.
async fn batch_delete_image(
    call: &Call<'_>,
    input: BatchDeleteImageRequest,
) -> EcrResult<BatchDeleteImageResponse> {
    call.check_registry_id(input.registry_id.as_deref())?;
    let name = repository_name(&input.repository_name)?;
    image_ids_limit(&input.image_ids)?;
    call.authorize(Action::BatchDeleteImage, &Target::Repository(name.clone()))
        .await?;
    let registry = &call.app.registry;
    registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for id in distinct(&input.image_ids) {
        let r = match image_ref(id) {
            Ok(r) => r,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let outcome = registry
            .delete_image(&name, r.digest.as_ref(), r.tag.as_ref())
            .await
            .map_err(in_repository(call, &name))?;
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
    Ok(BatchDeleteImageResponse {
        image_ids: deleted,
        failures,
    })
}

/// PutImage: stores a manifest whose blobs (or child manifests) are already in the repository.
async fn put_image(call: &Call<'_>, input: PutImageRequest) -> EcrResult<PutImageResponse> {
    let name = call
        .authorize_repository(
            Action::PutImage,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    if let Some(rule) = call.app.pull_through.rule_for(&name).await? {
        return Err(EcrError::invalid(format!(
            "The repository '{name}' is a pull-through cache of {}; its images come from there and cannot be put",
            rule.rule.upstream.authority
        )));
    }
    let tag = match input.image_tag.as_deref() {
        Some(t) => Some(Tag::parse(t).map_err(|e| {
            EcrError::invalid(format!("Invalid parameter at 'imageTag': {}", e.message()))
        })?),
        None => None,
    };
    let body = input.image_manifest.into_bytes();
    if body.is_empty() {
        return Err(EcrError::invalid(
            "Invalid parameter at 'imageManifest': the manifest is empty",
        ));
    }
    let digest = Digest::of(Algorithm::Sha256, &body);
    if let Some(expected) = input.image_digest.as_deref() {
        let expected = Digest::parse(expected).map_err(|e| {
            EcrError::invalid(format!(
                "Invalid parameter at 'imageDigest': {}",
                e.message()
            ))
        })?;
        let actual = Digest::of(expected.algorithm(), &body);
        if actual != expected {
            return Err(EcrError::new(
                "ImageDigestDoesNotMatchException",
                format!(
                    "The imageDigest {expected} does not match the digest of the manifest, {actual}"
                ),
            ));
        }
    }
    let media_type_mismatch = |given: &str, document: &str| {
        EcrError::invalid(format!(
            "Invalid parameter at 'imageManifestMediaType': '{given}' does not match the manifest's mediaType '{document}'"
        ))
    };
    // Checked before parsing, which refuses the same contradiction in registry-API words.
    if let (Some(given), Some(document)) = (
        input.image_manifest_media_type.as_deref(),
        crate::oci::manifest::media_type_field(&body),
    ) {
        if given != document {
            return Err(media_type_mismatch(given, &document));
        }
    }
    let parsed = crate::oci::manifest::parse(
        &body,
        input.image_manifest_media_type.as_deref(),
        call.app.registry.limits.max_manifest_descriptors,
    )
    .map_err(|e| {
        EcrError::invalid(format!(
            "Invalid parameter at 'imageManifest': {}",
            e.message()
        ))
    })?;
    if let Some(given) = input.image_manifest_media_type.as_deref() {
        if given != parsed.media_type {
            return Err(media_type_mismatch(given, &parsed.media_type));
        }
    }
    let outcome = call
        .app
        .registry
        .put_image(
            &name,
            tag.as_ref(),
            input.image_manifest_media_type.as_deref(),
            body.clone(),
        )
        .await
        .map_err(|e| match e {
            Error::ManifestBlobUnknown(message) if parsed.kind == ManifestKind::Index => {
                EcrError::new("ReferencedImagesNotFoundException", message)
            }
            Error::ManifestBlobUnknown(message) => {
                EcrError::new("LayersNotFoundException", message)
            }
            Error::ManifestInvalid(message) | Error::ManifestTooComplex(message) => {
                EcrError::invalid(format!("Invalid parameter at 'imageManifest': {message}"))
            }
            other => in_repository(call, &name)(other),
        })?;
    if let ImagePut::Unchanged(_) = outcome {
        return Err(EcrError::new(
            "ImageAlreadyExistsException",
            match &tag {
                Some(tag) => format!(
                    "Image with digest '{digest}' and tag '{tag}' already exists in the repository with name '{name}' in registry with id '{}'",
                    call.registry_id()
                ),
                None => format!(
                    "Image with digest '{digest}' already exists in the repository with name '{name}' in registry with id '{}'",
                    call.registry_id()
                ),
            },
        ));
    }
    Ok(PutImageResponse {
        image: Image {
            registry_id: call.registry_id().to_owned(),
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

/// BatchCheckLayerAvailability: which blobs the repository has.
async fn batch_check_layer_availability(
    call: &Call<'_>,
    input: BatchCheckLayerAvailabilityRequest,
) -> EcrResult<BatchCheckLayerAvailabilityResponse> {
    call.check_registry_id(input.registry_id.as_deref())?;
    let name = repository_name(&input.repository_name)?;
    if input.layer_digests.is_empty() || input.layer_digests.len() > 100 {
        return Err(EcrError::invalid(
            "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'must have between 1 and 100 items'",
        ));
    }
    call.authorize(
        Action::BatchCheckLayerAvailability,
        &Target::Repository(name.clone()),
    )
    .await?;
    let registry = &call.app.registry;
    registry
        .describe_repository(&name)
        .await
        .map_err(in_repository(call, &name))?;
    let mut layers = Vec::new();
    let mut failures = Vec::new();
    for text in &input.layer_digests {
        let Ok(digest) = Digest::parse(text) else {
            failures.push(LayerFailure {
                layer_digest: text.clone(),
                failure_code: "InvalidLayerDigest",
                failure_reason: "Invalid layer digest".into(),
            });
            continue;
        };
        match registry
            .layer(&name, &digest)
            .await
            .map_err(in_repository(call, &name))?
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

// ---- image scanning ----

/// PutImageScanningConfiguration: a repository's scan-on-push flag.
async fn put_image_scanning_configuration(
    call: &Call<'_>,
    input: PutImageScanningConfigurationRequest,
) -> EcrResult<PutImageScanningConfigurationResponse> {
    let name = call
        .authorize_repository(
            Action::PutImageScanningConfiguration,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let row = call
        .app
        .registry
        .set_scan_on_push(&name, input.image_scanning_configuration.scan_on_push)
        .await
        .map_err(in_repository(call, &name))?;
    Ok(PutImageScanningConfigurationResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: row.name,
        image_scanning_configuration: ImageScanningConfiguration {
            scan_on_push: row.scan_on_push,
        },
    })
}

/// PutRegistryScanningConfiguration: which repositories scan on push, by wildcard rules.
async fn put_registry_scanning_configuration(
    call: &Call<'_>,
    input: PutRegistryScanningConfigurationRequest,
) -> EcrResult<PutRegistryScanningConfigurationResponse> {
    call.authorize(Action::PutRegistryScanningConfiguration, &Target::Registry)
        .await?;
    let config = crate::policy::scanning::RegistryScanningConfiguration {
        scan_type: input.scan_type.unwrap_or_else(|| "BASIC".into()),
        rules: input.rules,
    };
    call.app.registry.put_registry_scanning(&config).await?;
    Ok(PutRegistryScanningConfigurationResponse {
        registry_scanning_configuration: config,
    })
}

/// GetRegistryScanningConfiguration: `BASIC` without rules until one is put.
async fn get_registry_scanning_configuration(
    call: &Call<'_>,
    _input: EmptyRequest,
) -> EcrResult<GetRegistryScanningConfigurationResponse> {
    call.authorize(Action::GetRegistryScanningConfiguration, &Target::Registry)
        .await?;
    Ok(GetRegistryScanningConfigurationResponse {
        registry_id: call.registry_id().to_owned(),
        scanning_configuration: call.app.registry.registry_scanning().await?,
    })
}

/// The digest an image id names in a repository; `ImageNotFoundException` if none.
async fn scanned_image(
    call: &Call<'_>,
    name: &RepoName,
    id: &ImageIdentifier,
) -> EcrResult<(Digest, ImageIdentifier)> {
    let r = image_ref(id).map_err(|f| EcrError::invalid(f.failure_reason))?;
    let found = call
        .app
        .registry
        .lookup_image(name, r.digest.as_ref(), r.tag.as_ref(), false)
        .await
        .map_err(in_repository(call, name))?;
    let ImageLookup::Found(manifest) = found else {
        return Err(EcrError::new(
            "ImageNotFoundException",
            format!(
                "The image with imageId {} does not exist within the repository with name '{name}' in the registry with id '{}'",
                describe_image_id(id),
                call.registry_id()
            ),
        ));
    };
    let digest = Digest::parse(&manifest.digest)?;
    let id = ImageIdentifier {
        image_digest: Some(manifest.digest),
        image_tag: id.image_tag.clone(),
    };
    Ok((digest, id))
}

/// StartImageScan: queues a scan now (Berth has no once-a-day limit).
async fn start_image_scan(
    call: &Call<'_>,
    input: StartImageScanRequest,
) -> EcrResult<StartImageScanResponse> {
    let name = call
        .authorize_repository(
            Action::StartImageScan,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let (digest, image_id) = scanned_image(call, &name, &input.image_id).await?;
    call.app
        .registry
        .start_image_scan(&name, &digest)
        .await
        .map_err(in_repository(call, &name))?;
    Ok(StartImageScanResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        image_id,
        image_scan_status: ImageScanStatus {
            status: "IN_PROGRESS".into(),
            description: None,
        },
    })
}

/// DescribeImageScanFindings: the scan status, severity counts and a page of findings.
async fn describe_image_scan_findings(
    call: &Call<'_>,
    input: DescribeImageScanFindingsRequest,
) -> EcrResult<DescribeImageScanFindingsResponse> {
    let name = call
        .authorize_repository(
            Action::DescribeImageScanFindings,
            input.registry_id.as_deref(),
            &input.repository_name,
        )
        .await?;
    let (digest, image_id) = scanned_image(call, &name, &input.image_id).await?;
    let limit = max_results(input.max_results, 100)?;
    let after = match input.next_token.as_deref() {
        Some(token) => decode_token("scan-findings", token, 2)?,
        None => Vec::new(),
    };
    let after_seq = match after.as_slice() {
        [d, seq] if *d == digest.to_string() => seq.parse::<i64>().map_err(|_| {
            EcrError::invalid("Invalid parameter at 'nextToken': the token is not valid")
        })?,
        [] => -1,
        _ => {
            return Err(EcrError::invalid(
                "Invalid parameter at 'nextToken': the token is not valid",
            ))
        }
    };
    let page = call
        .app
        .registry
        .scan_findings_page(&name, &digest, after_seq, limit)
        .await
        .map_err(in_repository(call, &name))?
        .ok_or_else(|| {
            EcrError::new(
                "ScanNotFoundException",
                format!(
                    "Image scan does not exist for the image with '{}' in the repository with name '{name}' in the registry with id '{}'",
                    describe_image_id(&input.image_id),
                    call.registry_id()
                ),
            )
        })?;
    let next_token = match (page.more, page.findings.last()) {
        (true, Some((seq, _))) => Some(encode_token(
            "scan-findings",
            &[&digest.to_string(), &seq.to_string()],
        )),
        _ => None,
    };
    let complete = page.state.status == "COMPLETE";
    Ok(DescribeImageScanFindingsResponse {
        registry_id: call.registry_id().to_owned(),
        repository_name: name.to_string(),
        image_id,
        image_scan_status: ImageScanStatus {
            status: page.state.status.clone(),
            description: Some(page.state.description.clone()),
        },
        image_scan_findings: complete.then(|| ImageScanFindings {
            image_scan_completed_at: page.state.completed_at.map(timestamp),
            vulnerability_source_updated_at: page
                .state
                .vulnerability_source_updated_at
                .map(timestamp),
            finding_severity_counts: page.severity_counts.into_iter().collect(),
            findings: page
                .findings
                .into_iter()
                .map(|(_, f)| ImageScanFinding {
                    name: f.name,
                    description: f.description,
                    uri: f.uri,
                    severity: f.severity,
                    attributes: f
                        .attributes
                        .into_iter()
                        .map(|(key, value)| Attribute { key, value })
                        .collect(),
                })
                .collect(),
        }),
        next_token,
    })
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
        assert_eq!(
            image_ref(&id(None, None)).err().unwrap().failure_code,
            "MissingDigestAndTag"
        );
        assert_eq!(
            image_ref(&id(Some("sha256:zz"), None))
                .err()
                .unwrap()
                .failure_code,
            "InvalidImageDigest"
        );
        assert_eq!(
            image_ref(&id(None, Some("-bad")))
                .err()
                .unwrap()
                .failure_code,
            "InvalidImageTag"
        );
        assert!(image_ref(&id(None, Some("v1"))).is_ok());
    }
}
