//! The ECR door's table: each `X-Amz-Target` operation name mapped onto its request type in the
//! control plane (`crate::ops`), which authorizes, runs and audits it.

use serde::Serialize;

use super::{parse, Call, EcrError, EcrResult};
use crate::error::Error;
use crate::ops::shapes::*;
use crate::policy::Action;

/// Every operation [`dispatch`] answers (the metrics label calls by these names only).
pub const OPERATIONS: &[&str] = &[
    "GetAuthorizationToken",
    "CreateRepository",
    "DescribeRepositories",
    "DeleteRepository",
    "SetRepositoryPolicy",
    "GetRepositoryPolicy",
    "DeleteRepositoryPolicy",
    "PutLifecyclePolicy",
    "GetLifecyclePolicy",
    "DeleteLifecyclePolicy",
    "StartLifecyclePolicyPreview",
    "GetLifecyclePolicyPreview",
    "PutRegistryPolicy",
    "GetRegistryPolicy",
    "DeleteRegistryPolicy",
    "DescribeRegistry",
    "PutReplicationConfiguration",
    "DescribeImageReplicationStatus",
    "DescribeImages",
    "ListImages",
    "BatchGetImage",
    "BatchDeleteImage",
    "PutImage",
    "BatchCheckLayerAvailability",
    "PutImageTagMutability",
    "PutImageScanningConfiguration",
    "StartImageScan",
    "DescribeImageScanFindings",
    "PutRegistryScanningConfiguration",
    "CreatePullThroughCacheRule",
    "DescribePullThroughCacheRules",
    "UpdatePullThroughCacheRule",
    "DeletePullThroughCacheRule",
    "ValidatePullThroughCacheRule",
    "GetRegistryScanningConfiguration",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "CreateRepositoryCreationTemplate",
    "DescribeRepositoryCreationTemplates",
    "UpdateRepositoryCreationTemplate",
    "DeleteRepositoryCreationTemplate",
];

/// Runs the operation named by `X-Amz-Target` on the JSON `body`. The operation is authorized
/// and audited by the control plane (`audited` is set once it is reached); a body that does not
/// decode or an operation Berth lacks is answered here.
pub async fn dispatch(
    call: &Call<'_>,
    operation: &str,
    body: &[u8],
    audited: &mut bool,
) -> EcrResult<String> {
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
        "PutReplicationConfiguration" => op!(PutReplicationConfigurationRequest),
        "DescribeImageReplicationStatus" => op!(DescribeImageReplicationStatusRequest),
        "DescribeImages" => op!(DescribeImagesRequest),
        "ListImages" => op!(ListImagesRequest),
        "BatchGetImage" => op!(BatchGetImageRequest),
        "BatchDeleteImage" => op!(BatchDeleteImageRequest),
        "PutImage" => op!(PutImageRequest),
        "BatchCheckLayerAvailability" => op!(BatchCheckLayerAvailabilityRequest),
        "PutImageTagMutability" => op!(PutImageTagMutabilityRequest),
        "PutImageScanningConfiguration" => op!(PutImageScanningConfigurationRequest),
        "StartImageScan" => op!(StartImageScanRequest),
        "DescribeImageScanFindings" => op!(DescribeImageScanFindingsRequest),
        "PutRegistryScanningConfiguration" => op!(PutRegistryScanningConfigurationRequest),
        "CreatePullThroughCacheRule" => op!(CreatePullThroughCacheRuleRequest),
        "DescribePullThroughCacheRules" => op!(DescribePullThroughCacheRulesRequest),
        "UpdatePullThroughCacheRule" => op!(UpdatePullThroughCacheRuleRequest),
        "DeletePullThroughCacheRule" => op!(DeletePullThroughCacheRuleRequest),
        "ValidatePullThroughCacheRule" => op!(ValidatePullThroughCacheRuleRequest),
        "GetRegistryScanningConfiguration" => op!(GetRegistryScanningConfigurationRequest),
        "TagResource" => op!(TagResourceRequest),
        "UntagResource" => op!(UntagResourceRequest),
        "ListTagsForResource" => op!(ListTagsForResourceRequest),
        "CreateRepositoryCreationTemplate" => op!(CreateRepositoryCreationTemplateRequest),
        "DescribeRepositoryCreationTemplates" => op!(DescribeRepositoryCreationTemplatesRequest),
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

#[cfg(test)]
mod tests {
    /// [`super::OPERATIONS`] lists exactly the names `dispatch` matches.
    #[test]
    fn the_operation_list_is_the_dispatch_table() {
        let source = include_str!("operations.rs");
        let body = &source[source.find("match operation {").unwrap()..];
        let matched: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>"))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(matched, super::OPERATIONS);
    }
}
