//! The operations' requests and answers: ECR's JSON shapes, with the exact member names of
//! botocore's `ecr/2015-09-21/service-2.json`, which every door reads and writes. Requests
//! ignore members Berth does not use; responses leave out members that have no value (as ECR
//! does). Timestamps are epoch seconds as JSON numbers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Epoch seconds (fractional), ECR's timestamp encoding in the JSON protocol.
pub type Timestamp = f64;

/// Unix milliseconds as an ECR timestamp.
pub fn timestamp(millis: i64) -> Timestamp {
    millis as f64 / 1000.0
}

/// A resource tag (`Key`/`Value`, capitalised as in ECR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResourceTag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagStatusFilter {
    #[serde(default)]
    pub tag_status: Option<String>,
}

// ---- authorization ----

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthorizationTokenRequest {
    #[serde(default)]
    pub registry_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationData {
    pub authorization_token: String,
    pub expires_at: Timestamp,
    pub proxy_endpoint: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthorizationTokenResponse {
    pub authorization_data: Vec<AuthorizationData>,
}

// ---- repositories ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanningConfiguration {
    #[serde(default)]
    pub scan_on_push: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    pub encryption_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    pub repository_arn: String,
    pub registry_id: String,
    pub repository_name: String,
    pub repository_uri: String,
    pub created_at: Timestamp,
    pub image_tag_mutability: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tag_mutability_exclusion_filters: Vec<crate::policy::mutability::ExclusionFilter>,
    pub image_scanning_configuration: ImageScanningConfiguration,
    pub encryption_configuration: EncryptionConfiguration,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRepositoryRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    /// `name` is accepted too (the REST API's older member).
    #[serde(alias = "name")]
    pub repository_name: String,
    #[serde(default)]
    pub tags: Option<Vec<ResourceTag>>,
    #[serde(default)]
    pub image_tag_mutability: Option<serde_json::Value>,
    #[serde(default)]
    pub image_tag_mutability_exclusion_filters: Option<serde_json::Value>,
    #[serde(default)]
    pub image_scanning_configuration: Option<ImageScanningConfiguration>,
    #[serde(default)]
    pub encryption_configuration: Option<EncryptionConfiguration>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryResponse {
    pub repository: Repository,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoriesRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub repository_names: Option<Vec<String>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoriesResponse {
    pub repositories: Vec<Repository>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRepositoryRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub force: Option<bool>,
}

// ---- policies ----

/// GetRepositoryPolicy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetRepositoryPolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

/// DeleteRepositoryPolicy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRepositoryPolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetRepositoryPolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub policy_text: String,
    #[serde(default)]
    pub force: Option<bool>,
}

/// SetRepositoryPolicy, GetRepositoryPolicy, DeleteRepositoryPolicy (the REST API answers GET
/// with `policyText` itself, the document as stored).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub policy_text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryPolicyRequest {
    pub policy_text: String,
}

/// GetRegistryPolicy: no members.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GetRegistryPolicyRequest {}

/// DeleteRegistryPolicy: no members.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteRegistryPolicyRequest {}

/// PutRegistryPolicy, GetRegistryPolicy, DeleteRegistryPolicy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryPolicyResponse {
    pub registry_id: String,
    pub policy_text: String,
}

/// Operations without members (GetRegistryScanningConfiguration).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EmptyRequest {}

// ---- the registry ----

/// DescribeRegistry: no members.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DescribeRegistryRequest {}

pub use crate::policy::replication::{
    Grammar, ReplicationConfiguration, ReplicationDestination, ReplicationRule, RepositoryFilter,
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRegistryResponse {
    pub registry_id: String,
    pub replication_configuration: ReplicationConfiguration,
}

// ---- replication ----

/// PutReplicationConfiguration. Through ECR's door the configuration keeps ECR's grammar;
/// through `PUT /api/v1/replication` Berth's filter types are accepted too.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutReplicationConfigurationRequest {
    /// Read as JSON and decoded after authorization (a caller who may not configure
    /// replication learns nothing about what a valid configuration looks like).
    #[serde(default)]
    #[schema(value_type = Option<ReplicationConfiguration>)]
    pub replication_configuration: Option<serde_json::Value>,
    #[serde(skip)]
    #[schema(ignore)]
    pub grammar: ReplicationGrammar,
}

/// Which door a replication configuration came through ([`Grammar`], ECR's by default).
#[derive(Debug, Clone, Copy)]
pub struct ReplicationGrammar(pub Grammar);

impl Default for ReplicationGrammar {
    fn default() -> Self {
        ReplicationGrammar(Grammar::Ecr)
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutReplicationConfigurationResponse {
    pub replication_configuration: ReplicationConfiguration,
}

/// DescribeImageReplicationStatus.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageReplicationStatusRequest {
    #[serde(default)]
    pub repository_name: String,
    #[serde(default)]
    pub image_id: ImageIdentifier,
    #[serde(default)]
    pub registry_id: Option<String>,
}

/// One destination's status for an image.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageReplicationStatus {
    /// Empty for a Berth target.
    pub region: String,
    /// Empty for a Berth target.
    pub registry_id: String,
    /// A `[[replication.targets]]` name (Berth's extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `IN_PROGRESS`, `COMPLETE` or `FAILED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageReplicationStatusResponse {
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub replication_statuses: Vec<ImageReplicationStatus>,
}

/// ListReplicationTasks (REST): the tasks not yet complete, oldest first.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ListReplicationTasksRequest {
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// One image on its way to one destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationTask {
    pub id: i64,
    pub repository: String,
    pub digest: String,
    /// The tag the push set; absent for a push by digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub registry_id: String,
    pub region: String,
    /// A `[[replication.targets]]` name, for a non-Berth destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `IN_PROGRESS` (waiting or being sent) or `FAILED`.
    pub status: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicationTaskPage {
    /// Tasks waiting or being sent, in all (a backfill's progress).
    pub open: i64,
    /// Tasks that failed, in all.
    pub failed: i64,
    pub tasks: Vec<ReplicationTask>,
    /// Pass as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// StartReplicationBackfill (REST): replicates what was pushed before the rules.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StartReplicationBackfillRequest {}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartReplicationBackfillResponse {
    /// Tasks written (images and tags the rules select that had none).
    pub tasks: u64,
}

/// RetryReplication (REST): starts failed tasks again.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RetryReplicationRequest {
    /// Only this repository's.
    #[serde(default)]
    pub repository: Option<String>,
    /// Only this image's (with `repository`).
    #[serde(default)]
    pub image_digest: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryReplicationResponse {
    /// How many failed tasks were started again.
    pub restarted: u64,
}

// ---- lifecycle policies ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutLifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    /// Required; checked by the operation (after the gate), so the message can name it.
    #[serde(default)]
    pub lifecycle_policy_text: Option<String>,
}

/// GetLifecyclePolicy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetLifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

/// DeleteLifecyclePolicy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteLifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

/// PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_at: Option<Timestamp>,
}

/// StartLifecyclePolicyPreview: the policy to preview, or the saved one when absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartLifecyclePolicyPreviewRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub lifecycle_policy_text: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartLifecyclePolicyPreviewResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    pub status: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetLifecyclePolicyPreviewRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub image_ids: Option<Vec<ImageIdentifier>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub filter: Option<TagStatusFilter>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyRuleAction {
    #[serde(rename = "type")]
    pub kind: String,
}

/// An image a lifecycle policy expires (in a preview) or expired (in a run).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
    pub image_digest: String,
    pub image_pushed_at: Timestamp,
    pub action: LifecyclePolicyRuleAction,
    pub applied_rule_priority: u32,
    pub storage_class: String,
    /// Berth's addition (what `sinceImagePulled` rules count from): the last recorded pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_recorded_pull_time: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewSummary {
    pub expiring_image_total_count: usize,
    /// Berth's addition: how many images the policy was evaluated against.
    pub evaluated_image_count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetLifecyclePolicyPreviewResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub preview_results: Vec<LifecyclePolicyPreviewResult>,
    pub summary: LifecyclePolicyPreviewSummary,
}

/// Berth's PreviewLifecyclePolicy (REST and console): what a policy (the given text, or the
/// saved one when absent) would expire now, answered at once and kept nowhere, so it neither
/// waits for nor replaces the repository's last StartLifecyclePolicyPreview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub lifecycle_policy_text: Option<String>,
    /// At most this many results, oldest first (1 to 1000, default 100); the summary counts
    /// them all.
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLifecyclePolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    pub evaluated_at: Timestamp,
    /// The images the policy would expire, oldest push first.
    pub preview_results: Vec<LifecyclePolicyPreviewResult>,
    pub summary: LifecyclePolicyPreviewSummary,
}

/// Berth's RunLifecyclePolicy (REST only): run the repository's saved policy now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunLifecyclePolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub evaluated_at: Timestamp,
    pub expired: Vec<LifecyclePolicyPreviewResult>,
    pub expired_image_count: usize,
    /// Images that changed during the run, left for the next one.
    pub skipped_image_count: usize,
    /// Referrers and index children removed with the expired images.
    pub removed_artifact_count: usize,
}

/// Berth's ListLifecycleEvents (REST only): the lifecycle audit log, oldest first.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListLifecycleEventsRequest {
    /// Only this repository's entries; all repositories' without.
    #[serde(default)]
    pub repository_name: Option<String>,
    /// Only the entries of this image digest (the console's image page).
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

/// One image a lifecycle policy (or a pull-through cache's quota) expired.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    pub id: i64,
    pub time: Timestamp,
    pub repository_name: String,
    pub image_digest: String,
    pub image_tags: Vec<String>,
    pub applied_rule_priority: i64,
    /// Referrers and index children removed with the image.
    pub removed_with_image: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListLifecycleEventsResponse {
    pub entries: Vec<LifecycleEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ---- images ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImagesRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub image_ids: Option<Vec<ImageIdentifier>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub filter: Option<TagStatusFilter>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetail {
    pub registry_id: String,
    pub repository_name: String,
    pub image_digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
    pub image_size_in_bytes: i64,
    pub image_pushed_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_status: Option<ImageScanStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_findings_summary: Option<ImageScanFindingsSummary>,
    pub image_manifest_media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_recorded_pull_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_manifest_digest: Option<String>,
    pub image_status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImagesResponse {
    pub image_details: Vec<ImageDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListImagesRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub filter: Option<TagStatusFilter>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListImagesResponse {
    pub image_ids: Vec<ImageIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetImageRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_ids: Vec<ImageIdentifier>,
    #[serde(default)]
    pub accepted_media_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub registry_id: String,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub image_manifest: String,
    pub image_manifest_media_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageFailure {
    pub image_id: ImageIdentifier,
    pub failure_code: &'static str,
    pub failure_reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetImageResponse {
    pub images: Vec<Image>,
    pub failures: Vec<ImageFailure>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteImageRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_ids: Vec<ImageIdentifier>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteImageResponse {
    pub image_ids: Vec<ImageIdentifier>,
    pub failures: Vec<ImageFailure>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_manifest: String,
    #[serde(default)]
    pub image_manifest_media_type: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub image_digest: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageResponse {
    pub image: Image,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCheckLayerAvailabilityRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub layer_digests: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub layer_digest: String,
    pub layer_availability: &'static str,
    pub layer_size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerFailure {
    pub layer_digest: String,
    pub failure_code: &'static str,
    pub failure_reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchCheckLayerAvailabilityResponse {
    pub layers: Vec<Layer>,
    pub failures: Vec<LayerFailure>,
}

// ---- resource tags ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceRequest {
    pub resource_arn: String,
    pub tags: Vec<ResourceTag>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceRequest {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceRequest {
    pub resource_arn: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceResponse {
    pub tags: Vec<ResourceTag>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageTagMutabilityRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    /// Validated by the operation, so the message can name the field.
    #[serde(default)]
    pub image_tag_mutability: serde_json::Value,
    #[serde(default)]
    pub image_tag_mutability_exclusion_filters: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageTagMutabilityResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_tag_mutability: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tag_mutability_exclusion_filters: Vec<crate::policy::mutability::ExclusionFilter>,
}

/// TagResource and UntagResource answer an empty object.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmptyResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_use_ecr_member_names() {
        let r: CreateRepositoryRequest = serde_json::from_value(json!({
            "repositoryName": "team/app",
            "tags": [{"Key": "env", "Value": "prod"}],
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
            "someFutureMember": 1
        }))
        .unwrap();
        assert_eq!(r.repository_name, "team/app");
        assert_eq!(
            r.tags.unwrap(),
            vec![ResourceTag {
                key: "env".into(),
                value: "prod".into()
            }]
        );
        assert_eq!(
            r.encryption_configuration.unwrap().encryption_type,
            "AES256"
        );

        let r: BatchGetImageRequest = serde_json::from_value(json!({
            "repositoryName": "a",
            "imageIds": [{"imageTag": "v1"}, {"imageDigest": "sha256:00"}],
            "acceptedMediaTypes": ["application/vnd.oci.image.manifest.v1+json"]
        }))
        .unwrap();
        assert_eq!(r.image_ids[0].image_tag.as_deref(), Some("v1"));
        assert_eq!(r.image_ids[1].image_digest.as_deref(), Some("sha256:00"));

        let missing = serde_json::from_value::<DeleteRepositoryRequest>(json!({"force": true}));
        assert!(missing.is_err());
        let empty: DescribeRepositoriesRequest = serde_json::from_value(json!({})).unwrap();
        assert!(empty.repository_names.is_none());
    }

    #[test]
    fn responses_use_ecr_member_names_and_omit_absent_ones() {
        let detail = ImageDetail {
            registry_id: "000000000000".into(),
            repository_name: "a".into(),
            image_digest: "sha256:00".into(),
            image_tags: vec![],
            image_size_in_bytes: 10,
            image_pushed_at: timestamp(1_700_000_000_500),
            image_scan_status: None,
            image_scan_findings_summary: None,
            image_manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_media_type: None,
            last_recorded_pull_time: None,
            subject_manifest_digest: None,
            image_status: "ACTIVE".into(),
        };
        let v = serde_json::to_value(&detail).unwrap();
        assert_eq!(v["imageSizeInBytes"], 10);
        assert_eq!(v["imagePushedAt"], 1_700_000_000.5);
        assert!(v.get("imageTags").is_none());
        assert!(v.get("artifactMediaType").is_none());
        assert!(v.get("imageScanStatus").is_none());
        assert!(v.get("lastRecordedPullTime").is_none());

        let tags = ListTagsForResourceResponse {
            tags: vec![ResourceTag {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&tags).unwrap(),
            json!({"tags": [{"Key": "k", "Value": "v"}]})
        );
        let id = ImageIdentifier {
            image_digest: Some("sha256:00".into()),
            image_tag: None,
        };
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            json!({"imageDigest": "sha256:00"})
        );
        let token = GetAuthorizationTokenResponse {
            authorization_data: vec![AuthorizationData {
                authorization_token: "QVdTOng=".into(),
                expires_at: 1.5,
                proxy_endpoint: "https://r.example".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&token).unwrap(),
            json!({"authorizationData": [{"authorizationToken": "QVdTOng=", "expiresAt": 1.5,
                "proxyEndpoint": "https://r.example"}]})
        );
    }
}

// ---- image scanning ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageScanningConfigurationRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_scanning_configuration: ImageScanningConfiguration,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutImageScanningConfigurationResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_scanning_configuration: ImageScanningConfiguration,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartImageScanRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanStatus {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartImageScanResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub image_scan_status: ImageScanStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageScanFindingsRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
    /// Berth's: only findings of this severity (CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL,
    /// UNDEFINED); the counts stay those of the whole scan.
    #[serde(default)]
    pub severity: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanFinding {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub severity: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanFindings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_completed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_source_updated_at: Option<Timestamp>,
    pub finding_severity_counts: std::collections::BTreeMap<String, i64>,
    pub findings: Vec<ImageScanFinding>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageScanFindingsResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub image_scan_status: ImageScanStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_findings: Option<ImageScanFindings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanFindingsSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_completed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_source_updated_at: Option<Timestamp>,
    pub finding_severity_counts: std::collections::BTreeMap<String, i64>,
}

// ---- pull gate (Berth's, REST only) ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetPullGateRequest {
    pub repository_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletePullGateRequest {
    pub repository_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutPullGateRequest {
    pub repository_name: String,
    /// Validated by the operation, so the message can name the field.
    #[serde(default)]
    pub severity_threshold: Option<String>,
    #[serde(default)]
    pub allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub allow_unscanned: Option<bool>,
}

/// A repository's pull gate: GetPullGate's and PutPullGate's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullGateResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub severity_threshold: String,
    pub allowlist: Vec<String>,
    pub allow_unscanned: bool,
}

// ---- registry scanning ----

/// GetRegistryScanningConfiguration: no members.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GetRegistryScanningConfigurationRequest {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryScanningConfigurationRequest {
    #[serde(default)]
    pub scan_type: Option<String>,
    #[serde(default)]
    pub rules: Vec<crate::policy::scanning::ScanningRule>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryScanningConfigurationResponse {
    pub registry_scanning_configuration: crate::policy::scanning::RegistryScanningConfiguration,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetRegistryScanningConfigurationResponse {
    pub registry_id: String,
    pub scanning_configuration: crate::policy::scanning::RegistryScanningConfiguration,
}

// ---- pull-through cache rules ----

/// CreatePullThroughCacheRule, plus Berth's `revalidateSecs` and `quotaBytes`. Required members
/// default to empty here and are refused by the operation, after the gate (a refused caller
/// learns nothing from its request); the same holds for the requests below.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePullThroughCacheRuleRequest {
    #[serde(default)]
    pub ecr_repository_prefix: String,
    #[serde(default)]
    pub upstream_registry_url: String,
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub upstream_registry: Option<String>,
    #[serde(default)]
    pub credential_arn: Option<String>,
    #[serde(default)]
    pub custom_role_arn: Option<String>,
    #[serde(default)]
    pub upstream_repository_prefix: Option<String>,
    /// Berth: seconds a cached tag is served before it is checked upstream again (default from
    /// `[pull_through] revalidate_secs`).
    #[serde(default)]
    pub revalidate_secs: Option<i64>,
    /// Berth: the most bytes the rule's cached images may hold.
    #[serde(default)]
    pub quota_bytes: Option<i64>,
}

/// A pull-through cache rule: the answer of every rule operation (Create, Update, Delete,
/// Validate) and one rule of DescribePullThroughCacheRules. Always the whole rule (SDKs read the
/// members of their operation's output and ignore the others); absent members are omitted.
#[derive(Debug, Serialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullThroughCacheRule {
    pub ecr_repository_prefix: String,
    pub upstream_registry_url: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub registry_id: String,
    pub upstream_registry: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_repository_prefix: Option<String>,
    /// Berth: the rule's revalidation interval in seconds (its own or the configured default).
    pub revalidate_secs: i64,
    /// Berth: the rule's cache quota in bytes, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<i64>,
    /// ValidatePullThroughCacheRule: whether the upstream accepted the rule's credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_valid: Option<bool>,
    /// ValidatePullThroughCacheRule: what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribePullThroughCacheRulesRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub ecr_repository_prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribePullThroughCacheRulesResponse {
    pub pull_through_cache_rules: Vec<PullThroughCacheRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// UpdatePullThroughCacheRule: the credential and role replace the stored ones; Berth's
/// `revalidateSecs` and `quotaBytes` replace them when given. A rule's upstream cannot change:
/// `upstreamRegistryUrl`, `upstreamRegistry` or `upstreamRepositoryPrefix` are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePullThroughCacheRuleRequest {
    #[serde(default)]
    pub ecr_repository_prefix: String,
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub credential_arn: Option<String>,
    #[serde(default)]
    pub custom_role_arn: Option<String>,
    #[serde(default)]
    pub revalidate_secs: Option<i64>,
    #[serde(default)]
    pub quota_bytes: Option<i64>,
    #[serde(default)]
    pub upstream_registry_url: Option<serde_json::Value>,
    #[serde(default)]
    pub upstream_registry: Option<serde_json::Value>,
    #[serde(default)]
    pub upstream_repository_prefix: Option<serde_json::Value>,
}

/// DeletePullThroughCacheRule.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletePullThroughCacheRuleRequest {
    #[serde(default)]
    pub ecr_repository_prefix: String,
    #[serde(default)]
    pub registry_id: Option<String>,
}

/// ValidatePullThroughCacheRule.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatePullThroughCacheRuleRequest {
    #[serde(default)]
    pub ecr_repository_prefix: String,
    #[serde(default)]
    pub registry_id: Option<String>,
}

// ---- repository creation templates ----

/// CreateRepositoryCreationTemplate: the template's members, each checked (naming the member)
/// by `crate::policy::templates::Template::create`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateRepositoryCreationTemplateRequest {
    #[serde(flatten)]
    pub fields: crate::policy::templates::TemplateFields,
}

/// UpdateRepositoryCreationTemplate: `prefix` names the template; the other members given
/// replace the stored ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UpdateRepositoryCreationTemplateRequest {
    #[serde(flatten)]
    pub fields: crate::policy::templates::TemplateFields,
}

/// DeleteRepositoryCreationTemplate.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRepositoryCreationTemplateRequest {
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoryCreationTemplatesRequest {
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

/// A repository creation template in ECR's shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCreationTemplate {
    /// `ROOT`, or a prefix without its trailing `/`.
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub encryption_configuration: EncryptionConfiguration,
    pub resource_tags: Vec<ResourceTag>,
    pub image_tag_mutability: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tag_mutability_exclusion_filters: Vec<crate::policy::mutability::ExclusionFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_policy: Option<String>,
    pub applied_for: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_role_arn: Option<String>,
    /// Berth: scan on push for the repositories created from the template (only when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scanning_configuration: Option<ImageScanningConfiguration>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The answer of Create, Update and DeleteRepositoryCreationTemplate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCreationTemplateResponse {
    pub registry_id: String,
    pub repository_creation_template: RepositoryCreationTemplate,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoryCreationTemplatesResponse {
    pub registry_id: String,
    pub repository_creation_templates: Vec<RepositoryCreationTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ---- identity: users, robot accounts, groups, identity policies, access keys ----
//
// Berth's own operations (`berth:<Operation>`, for administrators), reached by the REST API;
// see `super::identity`. Names come from the path, the other members from the body. Members
// are raw (validated after the gate), and a body member a request does not know is kept in
// `unknown` and refused after the gate: a misspelt `expiresAt` must be an error, not a robot
// that never expires. Times are RFC 3339 strings ([`rfc3339`]), as the REST API has always
// shown them: no ECR operation answers these, so there are no epoch seconds to agree with.
// The type parameter of the shared operations (`K`, `H`) is `Users`, `Robots` or `Groups` of
// `super::identity`: it names the kind, and so the audited operation.

/// Body members a request does not know; the operation refuses them after the gate.
pub type UnknownMembers = std::collections::BTreeMap<String, serde_json::Value>;

/// Unix milliseconds as RFC 3339 (UTC, milliseconds): the time format of Berth's own answers.
pub fn rfc3339(millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// CreateUser: `name` and `password` (no `Debug`: it holds the password).
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// CreateRobot: `name` and an optional RFC 3339 `expiresAt` (absent or null: never expires).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRobotRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, alias = "expires_at")]
    pub expires_at: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// ListUsers, ListRobots.
#[derive(Debug)]
pub struct ListAccountsRequest<K> {
    pub kind: std::marker::PhantomData<K>,
}

/// Requests named by one user, robot or group name alone (the REST path's `{name}`): each
/// is `{ name, kind }`, `kind` the type parameter naming the kind, and is built from the name.
macro_rules! requests_named_by_one_name {
    ($($(#[$doc:meta])* $request:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $request<K> {
            pub name: String,
            pub kind: std::marker::PhantomData<K>,
        }

        impl<K> From<String> for $request<K> {
            fn from(name: String) -> Self {
                $request {
                    name,
                    kind: std::marker::PhantomData,
                }
            }
        }
    )+};
}

requests_named_by_one_name! {
    /// GetUser, GetRobot.
    GetAccountRequest;
    /// DeleteUser, DeleteRobot: with their access keys, memberships and identity policy.
    DeleteAccountRequest;
    /// GetUserPolicy, GetRobotPolicy, GetGroupPolicy: answered with the document as stored.
    GetIdentityPolicyRequest;
    /// DeleteUserPolicy, DeleteRobotPolicy, DeleteGroupPolicy.
    DeleteIdentityPolicyRequest;
    /// CreateAccessKey, for the user or robot account `name`.
    CreateAccessKeyRequest;
    /// ListAccessKeys of the user or robot account `name`.
    ListAccessKeysRequest;
}

/// ChangePassword: the user's `name` (from the path) and the new `password` (no `Debug`).
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    /// From the path: a body member `name` is unknown.
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// RegenerateRobotSecret.
#[derive(Debug)]
pub struct RegenerateRobotSecretRequest {
    pub name: String,
}

/// A user or robot account (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub name: String,
    /// `alice`, or `robot/ci` for a robot account.
    pub login_name: String,
    pub arn: String,
    pub created_at: String,
    /// Group names, sorted.
    pub groups: Vec<String>,
    /// Robot accounts only: when it stops working (`null`: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    /// Robot accounts only: whether it has stopped working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
}

/// ListUsers' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<Account>,
}

/// ListRobots' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RobotList {
    pub robots: Vec<Account>,
}

/// CreateRobot's answer: the robot and its generated secret, shown this once (no `Debug`).
#[derive(Serialize, ToSchema)]
pub struct CreatedRobot {
    #[serde(flatten)]
    pub robot: Account,
    pub secret: String,
}

/// RegenerateRobotSecret's answer: the new secret, shown this once (no `Debug`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RobotSecret {
    pub name: String,
    pub login_name: String,
    pub secret: String,
}

/// CreateGroup: `name`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroupRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// ListGroups.
#[derive(Debug, Default)]
pub struct ListGroupsRequest {}

/// GetGroup.
#[derive(Debug)]
pub struct GetGroupRequest {
    pub name: String,
}

/// DeleteGroup: with its memberships and identity policy.
#[derive(Debug)]
pub struct DeleteGroupRequest {
    pub name: String,
}

/// AddGroupMember: the group's `name` (from the path) and the `member`'s login name (`alice`,
/// `robot/ci`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddGroupMemberRequest {
    /// From the path: a body member `name` is unknown.
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub member: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// RemoveGroupMember: the group's `name` and the `member`'s login name.
#[derive(Debug)]
pub struct RemoveGroupMemberRequest {
    pub name: String,
    pub member: String,
}

/// A group with its members' login names.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub name: String,
    pub arn: String,
    pub created_at: String,
    pub members: Vec<String>,
}

/// ListGroups' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<Group>,
}

/// PutUserPolicy, PutRobotPolicy, PutGroupPolicy: `policyText` replaces the attached document.
#[derive(Debug)]
pub struct PutIdentityPolicyRequest<K> {
    pub name: String,
    pub policy_text: String,
    pub kind: std::marker::PhantomData<K>,
}

/// UpdateAccessKey (IAM's): `status` `Active` or `Inactive` for the key `accessKeyId` of `name`
/// (both from the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(bound = "")]
pub struct UpdateAccessKeyRequest<K> {
    /// From the path, as `accessKeyId`.
    #[serde(skip)]
    pub name: String,
    #[serde(skip)]
    pub access_key_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
    #[serde(skip)]
    pub kind: std::marker::PhantomData<K>,
}

/// DeleteAccessKey `accessKeyId` of `name`.
#[derive(Debug)]
pub struct DeleteAccessKeyRequest<K> {
    pub name: String,
    pub access_key_id: String,
    pub kind: std::marker::PhantomData<K>,
}

/// CreateAccessKey's answer: the secret is shown this once (no `Debug`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// An access key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: &'static str,
    pub created_at: String,
}

/// ListAccessKeys' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyList {
    pub access_keys: Vec<AccessKey>,
}

// ---- administration: settings, the policy simulator, signing keys, the audit log, garbage
// collection, the event outbox, the API document ----
//
// Berth's own operations (`berth:<Operation>`; see `super::admin`), with the conventions of the
// identity section above. Listings keep their numeric cursors (`before`, `after`: entry ids),
// which event consumers store as the last id seen.

/// GetSettings.
#[derive(Debug, Default)]
pub struct GetSettingsRequest {}

/// PutSettings: the settings present change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PutSettingsRequest {
    #[serde(default)]
    pub create_on_push: Option<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// The registry's settings (GetSettings' and PutSettings' answer).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Whether a push to a missing repository creates it.
    pub create_on_push: bool,
}

/// SimulatePolicy: would `principal` (a login name, a principal ARN or `anonymous`) be allowed
/// `action` (`ecr:BatchGetImage` or `BatchGetImage`) on `repository` (absent: the registry),
/// from `sourceIp`, over TLS or not?
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulatePolicyRequest {
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub secure_transport: Option<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: UnknownMembers,
}

/// SimulatePolicy's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySimulation {
    /// `allow`, `explicitDeny` or `implicitDeny`.
    pub decision: &'static str,
    /// The deciding statement (`null` for an implicit deny).
    pub statement: Option<DecidingStatement>,
    pub explanation: String,
    /// `null` for `anonymous`.
    pub principal_arn: Option<String>,
    pub action: String,
    pub repository: Option<String>,
}

/// The statement that decided a simulation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecidingStatement {
    /// `identity`, `repository` or `registry`.
    pub source: &'static str,
    /// For identity policies: `user/<login>` or `group/<name>`.
    pub policy: Option<String>,
    pub sid: Option<String>,
    /// 0-based.
    pub index: usize,
    pub description: String,
}

/// ListSigningKeys.
#[derive(Debug, Default)]
pub struct ListSigningKeysRequest {}

/// ListTrustedRegistries.
#[derive(Debug, Default)]
pub struct ListTrustedRegistriesRequest {}

/// The registries this one trusts (`[federation]`), with the keys last read from each.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrustedRegistryList {
    pub registries: Vec<TrustedRegistry>,
}

/// One trusted registry as this registry knows it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrustedRegistry {
    pub registry_id: String,
    pub region: String,
    pub url: String,
    /// Where its keys are read: a JWKS URL or file.
    pub jwks: String,
    /// Ids (RFC 7638 thumbprints) of the keys its tokens are verified with.
    pub key_ids: Vec<String>,
    /// When its JWKS was last read successfully (`null`: not yet).
    pub refreshed_at: Option<String>,
    /// Why the last read failed (`null`: it succeeded); the keys are then the last good ones.
    pub error: Option<String>,
}

/// RotateSigningKey.
#[derive(Debug, Default)]
pub struct RotateSigningKeyRequest {}

/// The key ids tokens are verified with, the signing one first (ListSigningKeys' answer, and
/// RotateSigningKey's with the new `kid`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeys {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    pub keys: Vec<SigningKey>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    pub kid: String,
    pub signing: bool,
}

/// ListAuditEvents: at most `limit` (1 to 1000, default 100) entries older than the entry
/// `before`, newest first; only those matching the filters given (empty: no filter).
#[derive(Debug, Default)]
pub struct ListAuditEventsRequest {
    pub limit: Option<u32>,
    pub before: Option<i64>,
    /// Exactly this principal (`alice`, `robot/ci`, `anonymous`).
    pub principal: Option<String>,
    /// Exactly this action (`ecr:PutImage`, `berth:CreateUser`).
    pub action: Option<String>,
    /// Resources containing this text (a repository name, an ARN), ASCII case ignored.
    pub resource: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// At or after this RFC 3339 time.
    pub since: Option<String>,
    /// Before this RFC 3339 time.
    pub until: Option<String>,
}

/// ListAuditEvents' answer; `next` is the `before` of the next page (`null`: no more).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    pub next: Option<i64>,
}

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub time: String,
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub detail: String,
    pub source_ip: Option<String>,
    /// The kind of credential the call was made with (`null`: anonymous).
    pub credential: Option<String>,
}

/// GetGcStatus.
#[derive(Debug, Default)]
pub struct GetGcStatusRequest {}

/// GetGcStatus' answer: the review queues, and what this process reclaimed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcStatusResponse {
    pub grace_period_secs: u64,
    /// The background pass interval; `null` when this process runs none.
    pub interval_secs: Option<f64>,
    pub queue: GcQueue,
    pub since_start: GcSinceStart,
    pub last_pass: Option<GcPass>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcQueue {
    pub blobs: i64,
    pub blobs_due: i64,
    pub manifests: i64,
    pub manifests_due: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcSinceStart {
    pub passes: u64,
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub storage_errors: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcPass {
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
    pub manifests_deleted: u64,
    pub blobs_kept: u64,
    pub manifests_kept: u64,
    pub storage_errors: u64,
    pub started_at: String,
    pub finished_at: String,
}

/// ListEvents: at most `limit` (1 to 1000, default 100) outbox records after the record
/// `after` (default 0), oldest first.
#[derive(Debug, Default)]
pub struct ListEventsRequest {
    pub after: Option<i64>,
    pub limit: Option<usize>,
}

/// ListEvents' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

/// One outbox record.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    /// `ECR Image Scan`.
    pub detail_type: String,
    pub detail: serde_json::Value,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// GetOpenApiDocument: any signed-in caller. The document describes the REST door, so that
/// door serves it; the operation is the gate and the audit record.
#[derive(Debug, Default)]
pub struct GetOpenApiDocumentRequest {}

// ---- event rules and their deliveries (REST) ----

/// An event rule as written: `POST /api/v1/event-rules` (with `name`) or
/// `PUT /api/v1/event-rules/{name}` (a `name`, if given, must be the path's). Decoded leniently
/// and validated after the caller is authorized.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRuleInput {
    /// 1 to 64 of `[A-Za-z0-9._-]`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// An EventBridge event pattern, matched against the EventBridge envelope of each event.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub event_pattern: Option<serde_json::Value>,
    /// 1 to 5 targets: webhooks (`url`, optional `secret` `whsec_...`, `headers`) and NATS
    /// subjects (`subject`); each with `format` `eventbridge` (default) or `cloudevents`. A
    /// secret or header value given as `<redacted>` keeps the stored one.
    #[serde(default)]
    #[schema(value_type = Vec<crate::policy::event_rules::EventTarget>)]
    pub targets: Option<serde_json::Value>,
    /// Default true; a disabled rule matches no new event.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// CreateEventRule.
#[derive(Debug)]
pub struct CreateEventRuleRequest {
    pub rule: EventRuleInput,
}

/// PutEventRule: creates or replaces the rule `name`.
#[derive(Debug)]
pub struct PutEventRuleRequest {
    pub name: String,
    pub rule: EventRuleInput,
}

/// GetEventRule.
#[derive(Debug)]
pub struct GetEventRuleRequest {
    pub name: String,
}

/// ListEventRules.
#[derive(Debug, Default)]
pub struct ListEventRulesRequest {}

/// DeleteEventRule: the rule, its pending deliveries and its dead letters.
#[derive(Debug)]
pub struct DeleteEventRuleRequest {
    pub name: String,
}

/// An event rule as shown: secrets and header values `<redacted>`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRuleResponse {
    pub name: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub event_pattern: serde_json::Value,
    pub targets: Vec<crate::policy::event_rules::EventTarget>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// PutEventRule's answer: the rule, and whether it was created.
#[derive(Debug)]
pub struct PutEventRuleResponse {
    pub rule: EventRuleResponse,
    pub created: bool,
}

/// ListEventRules' answer, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRuleList {
    pub rules: Vec<EventRuleResponse>,
}

/// TestEventRule: matches `event` (an EventBridge envelope, or only its `detail-type` and
/// `detail`; default: a sample `ECR Image Action` push) against the rule's pattern.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestEventRuleRequest {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub event: Option<serde_json::Value>,
}

/// What a target would receive.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestDelivery {
    pub target: String,
    pub format: crate::policy::event_rules::EventFormat,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// TestEventRule's answer: whether the pattern matches the event (as completed into
/// EventBridge's envelope), and what each target would receive if it does.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestEventRuleResponse {
    pub matched: bool,
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    pub deliveries: Vec<TestDelivery>,
}

/// GetEventDeliveryStatus: one rule's deliveries per target.
#[derive(Debug)]
pub struct GetEventDeliveryStatusRequest {
    pub name: String,
}

/// One target's deliveries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetDeliveryStatus {
    pub target: String,
    pub delivered: i64,
    pub pending: i64,
    pub dead_lettered: i64,
    /// How long the oldest pending event has waited, in seconds.
    pub oldest_pending_age_seconds: Option<f64>,
}

/// GetEventDeliveryStatus' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDeliveryStatus {
    pub rule: String,
    pub targets: Vec<TargetDeliveryStatus>,
}

/// ListDeadLetters: a rule's dead letters (of one target, if given) after delivery `after`,
/// oldest first, at most `limit` (1 to 1000, default 100).
#[derive(Debug, Default)]
pub struct ListDeadLettersRequest {
    pub name: String,
    pub target: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<usize>,
}

/// One dead letter: a delivery given up on after the retry window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterEntry {
    /// The delivery's id (what `redrive` takes).
    pub id: i64,
    pub target: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: String,
    /// The event in EventBridge's envelope.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// ListDeadLetters' answer; `next` is the `after` of the next page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetterEntry>,
    pub next: Option<i64>,
}

/// RedriveDeadLetters: makes a rule's dead letters (of one target, and only `ids`, if given)
/// pending again, with a fresh retry window. Redriven events may arrive after later events of
/// their repository.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedriveDeadLettersRequest {
    #[serde(skip)]
    pub name: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
}

/// RedriveDeadLetters' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveDeadLettersResponse {
    pub redriven: u64,
}
