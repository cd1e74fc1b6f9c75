//! The REST API's own bodies, where they differ from the operations' ECR shapes: requests whose
//! repository comes from the path, and listings whose page token is `next` (passed back as
//! `after`) instead of ECR's `nextToken`. Everything else is answered in the operations' shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ops::shapes::{
    GetLifecyclePolicyPreviewResponse, ImageIdentifier, ImageScanningConfiguration, LifecycleEvent,
    PullThroughCacheRule, Repository, RepositoryCreationTemplate,
};

/// The body of `PUT .../tag-mutability`: PutImageTagMutability's members but the name (other
/// members are ignored, as ECR ignores them, so that the gate decides before anything else).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutTagMutability {
    /// `MUTABLE`, `IMMUTABLE`, `MUTABLE_WITH_EXCLUSION` or `IMMUTABLE_WITH_EXCLUSION`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub image_tag_mutability: Value,
    /// `[{"filterType": "WILDCARD", "filter": "latest"}]`, with the `_WITH_EXCLUSION` modes.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::policy::mutability::ExclusionFilter>>)]
    pub image_tag_mutability_exclusion_filters: Option<Value>,
}

/// The body of `PUT .../scanning-configuration`: PutImageScanningConfiguration's
/// `imageScanningConfiguration`, or its one member `scanOnPush` alone.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutScanningConfiguration {
    #[serde(default)]
    pub image_scanning_configuration: Option<ImageScanningConfiguration>,
    #[serde(default)]
    pub scan_on_push: Option<bool>,
}

/// The body of `PUT .../pull-gate`: PutPullGate's members but the name.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutPullGate {
    /// `CRITICAL`, `HIGH`, `MEDIUM`, `LOW` or `INFORMATIONAL`.
    #[serde(default)]
    pub severity_threshold: Option<String>,
    /// Finding names (CVE ids) that never refuse a pull.
    #[serde(default)]
    pub allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub allow_unscanned: Option<bool>,
}

/// An image as the REST API names it: ECR's `imageId`, or its members `imageDigest` and
/// `imageTag` directly (in a body or the query).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageParam {
    #[serde(default)]
    pub image_id: Option<ImageIdentifier>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
}

/// `GET /api/v1/repositories`: a full page of the repositories the caller may describe.
#[derive(Serialize, ToSchema)]
pub struct RepositoryPage {
    pub repositories: Vec<Repository>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET /api/v1/repository-creation-templates`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreationTemplatePage {
    pub registry_id: String,
    pub repository_creation_templates: Vec<RepositoryCreationTemplate>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET /api/v1/repository-creation-templates/{prefix}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreationTemplateAnswer {
    pub registry_id: String,
    pub repository_creation_template: RepositoryCreationTemplate,
}

/// `GET /api/v1/pull-through-rules`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullThroughRulePage {
    pub pull_through_cache_rules: Vec<PullThroughCacheRule>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET .../lifecycle/preview`: GetLifecyclePolicyPreview's answer with `next` for its
/// `nextToken`.
#[derive(Serialize, ToSchema)]
pub struct LifecyclePreviewPage {
    #[serde(flatten)]
    pub preview: GetLifecyclePolicyPreviewResponse,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET /api/v1/lifecycle/audit`: images expired by lifecycle policies, oldest first.
#[derive(Serialize, ToSchema)]
pub struct LifecycleEventPage {
    pub entries: Vec<LifecycleEvent>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// The body of `POST /api/v1/federation/passwords`.
#[derive(Deserialize, ToSchema)]
pub struct FederatedPasswordRequest {
    /// The trusted registry (`[federation]`) the password is for.
    #[serde(default)]
    pub registry_id: String,
}

/// A password for a trusted registry: `docker login <proxy_endpoint> -u AWS` with it.
#[derive(Serialize, ToSchema)]
pub struct FederatedPassword {
    pub registry_id: String,
    /// The registry's URL, where to log in.
    pub proxy_endpoint: String,
    /// Always `AWS`.
    pub username: String,
    pub password: String,
    /// When the password stops working (Unix ms).
    pub expires_at: i64,
}
