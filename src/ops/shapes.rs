//! The operations' requests and answers: ECR's JSON shapes, with the exact member names of
//! botocore's `ecr/2015-09-21/service-2.json`, which every door reads and writes. Requests
//! ignore members Berth does not use; responses leave out members that have no value (as ECR
//! does). Timestamps are epoch seconds as JSON numbers.

use serde::{Deserialize, Serialize};

/// Epoch seconds (fractional), ECR's timestamp encoding in the JSON protocol.
pub type Timestamp = f64;

/// Unix milliseconds as an ECR timestamp.
pub fn timestamp(millis: i64) -> Timestamp {
    millis as f64 / 1000.0
}

/// A resource tag (`Key`/`Value`, capitalised as in ECR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagStatusFilter {
    #[serde(default)]
    pub tag_status: Option<String>,
}

// ---- authorization ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthorizationTokenRequest {
    #[serde(default)]
    pub registry_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationData {
    pub authorization_token: String,
    pub expires_at: Timestamp,
    pub proxy_endpoint: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthorizationTokenResponse {
    pub authorization_data: Vec<AuthorizationData>,
}

// ---- repositories ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanningConfiguration {
    #[serde(default)]
    pub scan_on_push: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    pub encryption_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryResponse {
    pub repository: Repository,
}

#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoriesResponse {
    pub repositories: Vec<Repository>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRepositoryRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub force: Option<bool>,
}

// ---- policies ----

/// GetRepositoryPolicy, DeleteRepositoryPolicy (and the repository part of others).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRepositoryPolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub policy_text: String,
    #[serde(default)]
    pub force: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub policy_text: String,
}

// ---- lifecycle policies ----

/// PutLifecyclePolicy, and StartLifecyclePolicyPreview (where the text is optional).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    #[serde(default)]
    pub lifecycle_policy_text: Option<String>,
}

/// PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartLifecyclePolicyPreviewResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub lifecycle_policy_text: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyRuleAction {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
    pub image_digest: String,
    pub image_pushed_at: Timestamp,
    pub action: LifecyclePolicyRuleAction,
    pub applied_rule_priority: u32,
    pub storage_class: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewSummary {
    pub expiring_image_total_count: usize,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryPolicyRequest {
    pub policy_text: String,
}

/// GetRegistryPolicy, DeleteRegistryPolicy, DescribeRegistry: no members.
#[derive(Debug, Default, Deserialize)]
pub struct EmptyRequest {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryPolicyResponse {
    pub registry_id: String,
    pub policy_text: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationConfiguration {
    pub rules: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRegistryResponse {
    pub registry_id: String,
    pub replication_configuration: ReplicationConfiguration,
}

// ---- images ----

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImagesResponse {
    pub image_details: Vec<ImageDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListImagesResponse {
    pub image_ids: Vec<ImageIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetImageRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_ids: Vec<ImageIdentifier>,
    #[serde(default)]
    pub accepted_media_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub registry_id: String,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub image_manifest: String,
    pub image_manifest_media_type: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFailure {
    pub image_id: ImageIdentifier,
    pub failure_code: &'static str,
    pub failure_reason: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetImageResponse {
    pub images: Vec<Image>,
    pub failures: Vec<ImageFailure>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteImageRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_ids: Vec<ImageIdentifier>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteImageResponse {
    pub image_ids: Vec<ImageIdentifier>,
    pub failures: Vec<ImageFailure>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutImageResponse {
    pub image: Image,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCheckLayerAvailabilityRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub layer_digests: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub layer_digest: String,
    pub layer_availability: &'static str,
    pub layer_size: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerFailure {
    pub layer_digest: String,
    pub failure_code: &'static str,
    pub failure_reason: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCheckLayerAvailabilityResponse {
    pub layers: Vec<Layer>,
    pub failures: Vec<LayerFailure>,
}

// ---- resource tags ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceRequest {
    pub resource_arn: String,
    pub tags: Vec<ResourceTag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceRequest {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceRequest {
    pub resource_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceResponse {
    pub tags: Vec<ResourceTag>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutImageTagMutabilityResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_tag_mutability: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tag_mutability_exclusion_filters: Vec<crate::policy::mutability::ExclusionFilter>,
}

/// TagResource and UntagResource answer an empty object.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutImageScanningConfigurationRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_scanning_configuration: ImageScanningConfiguration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutImageScanningConfigurationResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_scanning_configuration: ImageScanningConfiguration,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartImageScanRequest {
    #[serde(default)]
    pub registry_id: Option<String>,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanStatus {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartImageScanResponse {
    pub registry_id: String,
    pub repository_name: String,
    pub image_id: ImageIdentifier,
    pub image_scan_status: ImageScanStatus,
}

#[derive(Debug, Deserialize)]
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
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanFindings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_completed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_source_updated_at: Option<Timestamp>,
    pub finding_severity_counts: std::collections::BTreeMap<String, i64>,
    pub findings: Vec<ImageScanFinding>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanFindingsSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_completed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulnerability_source_updated_at: Option<Timestamp>,
    pub finding_severity_counts: std::collections::BTreeMap<String, i64>,
}

// ---- pull gate (Berth's, REST only) ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPullGateRequest {
    pub repository_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletePullGateRequest {
    pub repository_name: String,
}

#[derive(Debug, Deserialize)]
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Default, Deserialize)]
pub struct GetRegistryScanningConfigurationRequest {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryScanningConfigurationRequest {
    #[serde(default)]
    pub scan_type: Option<String>,
    #[serde(default)]
    pub rules: Vec<crate::policy::scanning::ScanningRule>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRegistryScanningConfigurationResponse {
    pub registry_scanning_configuration: crate::policy::scanning::RegistryScanningConfiguration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRegistryScanningConfigurationResponse {
    pub registry_id: String,
    pub scanning_configuration: crate::policy::scanning::RegistryScanningConfiguration,
}

// ---- pull-through cache rules ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePullThroughCacheRuleRequest {
    pub ecr_repository_prefix: String,
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
}

/// CreatePullThroughCacheRule's, DeletePullThroughCacheRule's and ValidatePullThroughCacheRule's
/// answer, and one rule of DescribePullThroughCacheRules (absent members omitted).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PullThroughCacheRule {
    pub ecr_repository_prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_registry_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    pub registry_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_registry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_repository_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribePullThroughCacheRulesResponse {
    pub pull_through_cache_rules: Vec<PullThroughCacheRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// UpdatePullThroughCacheRule, DeletePullThroughCacheRule and ValidatePullThroughCacheRule.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullThroughCacheRuleRequest {
    pub ecr_repository_prefix: String,
    #[serde(default)]
    pub registry_id: Option<String>,
    #[serde(default)]
    pub credential_arn: Option<String>,
    #[serde(default)]
    pub custom_role_arn: Option<String>,
}

// ---- repository creation templates ----
// Create and Update take `crate::policy::templates::TemplateFields`; templates are answered as
// `Template::to_json` with the times added, so both APIs share one shape.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCreationTemplatePrefixRequest {
    pub prefix: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoryCreationTemplatesRequest {
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    #[serde(default)]
    pub next_token: Option<String>,
    #[serde(default)]
    pub max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCreationTemplateResponse {
    pub registry_id: String,
    pub repository_creation_template: serde_json::Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoryCreationTemplatesResponse {
    pub registry_id: String,
    pub repository_creation_templates: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}
