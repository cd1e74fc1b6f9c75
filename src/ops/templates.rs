//! Repository creation template operations: CreateRepositoryCreationTemplate,
//! DescribeRepositoryCreationTemplates, UpdateRepositoryCreationTemplate and
//! DeleteRepositoryCreationTemplate, on the registry (templates are not repositories), and the
//! one serialisation of a template. Validation of the members is `policy::templates`'; storage
//! and selection are `service::templates`'.

use super::shapes::{
    timestamp, CreateRepositoryCreationTemplateRequest, DeleteRepositoryCreationTemplateRequest,
    DescribeRepositoryCreationTemplatesRequest, DescribeRepositoryCreationTemplatesResponse,
    EncryptionConfiguration, ImageScanningConfiguration, RepositoryCreationTemplate,
    RepositoryCreationTemplateResponse, ResourceTag, UpdateRepositoryCreationTemplateRequest,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Access, Permission, Resource};
use crate::error::{Error, Result};
use crate::policy::templates::Template;
use crate::policy::Action;

/// The pagination token's listing name.
const TOKEN: &str = "DescribeRepositoryCreationTemplates";

/// A template in ECR's shape: the one serialisation every door answers with.
pub fn template_shape(t: &Template) -> RepositoryCreationTemplate {
    RepositoryCreationTemplate {
        prefix: t.prefix.clone(),
        description: t.description.clone(),
        encryption_configuration: EncryptionConfiguration {
            encryption_type: "AES256".into(),
            kms_key: None,
        },
        resource_tags: t
            .resource_tags
            .iter()
            .map(|(key, value)| ResourceTag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        image_tag_mutability: t.tag_mutability.mode.as_str().into(),
        image_tag_mutability_exclusion_filters: t.tag_mutability.exclusion_filters.clone(),
        repository_policy: t.repository_policy.clone(),
        lifecycle_policy: t.lifecycle_policy.clone(),
        applied_for: t.applied_for.iter().map(|k| k.as_str().into()).collect(),
        custom_role_arn: t.custom_role_arn.clone(),
        image_scanning_configuration: t
            .scan_on_push
            .map(|scan_on_push| ImageScanningConfiguration { scan_on_push }),
        created_at: timestamp(t.created_at),
        updated_at: timestamp(t.updated_at),
    }
}

fn response(cx: &Context<'_>, t: &Template) -> RepositoryCreationTemplateResponse {
    RepositoryCreationTemplateResponse {
        registry_id: cx.registry_id().to_owned(),
        repository_creation_template: template_shape(t),
    }
}

/// What the audit record names: one template by its prefix as given (never validated here: the
/// record is written for refused calls too), or the templates.
fn template_resource(prefix: Option<&str>) -> String {
    match prefix {
        Some(prefix) => format!(
            "repository-creation-template/{}",
            prefix.chars().take(256).collect::<String>()
        ),
        None => "repository-creation-templates".to_owned(),
    }
}

/// A template's prefix as a request carries it (a JSON string), if given.
fn given_prefix(value: Option<&serde_json::Value>) -> Option<&str> {
    value.and_then(serde_json::Value::as_str)
}

impl Operation for CreateRepositoryCreationTemplateRequest {
    const NAME: &'static str = "ecr:CreateRepositoryCreationTemplate";
    type Output = RepositoryCreationTemplateResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::CreateRepositoryCreationTemplate, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        template_resource(given_prefix(self.fields.prefix.as_ref()))
    }

    async fn run(self, cx: &Context<'_>) -> Result<RepositoryCreationTemplateResponse> {
        let t = cx
            .registry
            .templates()
            .create_template(&self.fields)
            .await?;
        cx.note(format!("prefix={}", t.prefix));
        Ok(response(cx, &t))
    }
}

impl Operation for UpdateRepositoryCreationTemplateRequest {
    const NAME: &'static str = "ecr:UpdateRepositoryCreationTemplate";
    type Output = RepositoryCreationTemplateResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::UpdateRepositoryCreationTemplate, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        template_resource(given_prefix(self.fields.prefix.as_ref()))
    }

    /// The members given replace the stored ones; `prefix` names the template.
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryCreationTemplateResponse> {
        let prefix = match &self.fields.prefix {
            Some(serde_json::Value::String(p)) => p.clone(),
            Some(_) => return Err(Error::InvalidParameter(
                "Invalid parameter at 'prefix' failed to satisfy constraint: 'Member must be a string'".into(),
            )),
            None => return Err(Error::InvalidParameter(
                "Invalid parameter at 'prefix' failed to satisfy constraint: 'Member must not be null'".into(),
            )),
        };
        let t = cx
            .registry
            .templates()
            .update_template(&prefix, &self.fields)
            .await?;
        cx.note(format!("prefix={}", t.prefix));
        Ok(response(cx, &t))
    }
}

impl Operation for DeleteRepositoryCreationTemplateRequest {
    const NAME: &'static str = "ecr:DeleteRepositoryCreationTemplate";
    type Output = RepositoryCreationTemplateResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DeleteRepositoryCreationTemplate, Resource::Registry)
    }

    fn audited_resource(&self, _: &Access) -> String {
        template_resource(Some(&self.prefix))
    }

    /// Answers the deleted template.
    async fn run(self, cx: &Context<'_>) -> Result<RepositoryCreationTemplateResponse> {
        let t = cx
            .registry
            .templates()
            .delete_template(&self.prefix)
            .await?;
        cx.note(format!("prefix={}", t.prefix));
        Ok(response(cx, &t))
    }
}

impl Operation for DescribeRepositoryCreationTemplatesRequest {
    const NAME: &'static str = "ecr:DescribeRepositoryCreationTemplates";
    type Output = DescribeRepositoryCreationTemplatesResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeRepositoryCreationTemplates,
            Resource::Registry,
        )
    }

    fn audited_resource(&self, _: &Access) -> String {
        match self.prefixes.as_deref() {
            Some([one]) => template_resource(Some(one)),
            _ => template_resource(None),
        }
    }

    /// The templates of `prefixes` (those that exist; a prefix that has none is left out, as
    /// ECR does) or every template, by prefix in byte order, paginated by the last prefix.
    async fn run(self, cx: &Context<'_>) -> Result<DescribeRepositoryCreationTemplatesResponse> {
        let limit = max_results(self.max_results, 100)?;
        let after = match &self.next_token {
            Some(token) => decode_token(TOKEN, token, 1)?.remove(0),
            None => String::new(),
        };
        let mut found = cx
            .registry
            .templates()
            .describe_templates(self.prefixes.as_deref(), &after, limit + 1)
            .await?;
        let next_token = (found.len() > limit).then(|| {
            found.truncate(limit);
            encode_token(TOKEN, &[found[limit - 1].prefix.as_str()])
        });
        Ok(DescribeRepositoryCreationTemplatesResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_creation_templates: found.iter().map(template_shape).collect(),
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::templates::TemplateFields;
    use serde_json::json;

    fn template(fields: serde_json::Value) -> Template {
        let fields: TemplateFields = serde_json::from_value(fields).unwrap();
        Template::create(&fields, 1_700_000_000_500).unwrap()
    }

    /// ECR's members, times as epoch seconds, and members without a value left out.
    #[test]
    fn a_template_is_serialised_in_ecr_shape() {
        let t = template(json!({
            "prefix": "team/", "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
            "resourceTags": [{"Key": "team", "Value": "a"}],
            "imageScanningConfiguration": {"scanOnPush": true},
        }));
        assert_eq!(
            serde_json::to_value(template_shape(&t)).unwrap(),
            json!({
                "prefix": "team",
                "encryptionConfiguration": {"encryptionType": "AES256"},
                "resourceTags": [{"Key": "team", "Value": "a"}],
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
                "appliedFor": ["CREATE_ON_PUSH"],
                "imageScanningConfiguration": {"scanOnPush": true},
                "createdAt": 1_700_000_000.5,
                "updatedAt": 1_700_000_000.5,
            })
        );
        let plain = serde_json::to_value(template_shape(&template(
            json!({"prefix": "ROOT", "appliedFor": ["REPLICATION"]}),
        )))
        .unwrap();
        for absent in [
            "description",
            "imageTagMutabilityExclusionFilters",
            "repositoryPolicy",
            "lifecyclePolicy",
            "customRoleArn",
            "imageScanningConfiguration",
        ] {
            assert!(plain.get(absent).is_none(), "{absent}: {plain}");
        }
    }
}
