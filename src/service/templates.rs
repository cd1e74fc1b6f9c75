//! Repository creation templates as use cases: create, update, delete and describe templates,
//! pick the one for a new repository, and create a repository from it.

use super::core::Core;
use super::RepositoryService;
use crate::error::{Error, Existing, Missing, Result};
use crate::meta::{now_millis, NewRepository, RepositoryRow, Templates};
use crate::oci::RepoName;
use crate::policy::templates::{
    candidate_prefixes, select, validate_prefix, AppliedFor, Template, TemplateFields,
};

/// ECR's answer for a template that does not exist.
pub fn template_not_found(prefix: &str) -> Error {
    Error::Missing(
        Missing::RepositoryCreationTemplate,
        format!(
            "The repository creation template with prefix '{prefix}' does not exist in the registry"
        ),
    )
}

/// A prefix as an API names a template: validated, without its trailing `/`.
pub fn template_prefix(prefix: &str) -> Result<String> {
    validate_prefix(prefix).map_err(Error::InvalidParameter)
}

/// Repository creation templates, and creating repositories from them.
#[derive(Clone)]
pub struct TemplateService {
    core: Core,
    templates: Templates,
    repositories: RepositoryService,
}

impl TemplateService {
    pub(super) fn new(
        core: Core,
        templates: Templates,
        repositories: RepositoryService,
    ) -> TemplateService {
        TemplateService {
            core,
            templates,
            repositories,
        }
    }

    /// CreateRepositoryCreationTemplate: validates and stores a template; `Exists` if its
    /// prefix has one.
    pub async fn create_template(&self, fields: &TemplateFields) -> Result<Template> {
        let template = Template::create(fields, now_millis()).map_err(Error::InvalidParameter)?;
        if !self.templates.insert_template(&template).await? {
            return Err(Error::Exists(
                Existing::RepositoryCreationTemplate,
                format!(
                    "The repository creation template with prefix '{}' already exists in the \
                     registry",
                    template.prefix
                ),
            ));
        }
        Ok(template)
    }

    /// UpdateRepositoryCreationTemplate: the members `fields` carries replace the stored ones;
    /// `Missing` if there is no template for `prefix`.
    pub async fn update_template(&self, prefix: &str, fields: &TemplateFields) -> Result<Template> {
        let prefix = template_prefix(prefix)?;
        let current = self
            .templates
            .template(&prefix)
            .await?
            .ok_or_else(|| template_not_found(&prefix))?;
        let template = current
            .updated(fields, now_millis())
            .map_err(Error::InvalidParameter)?;
        if !self.templates.replace_template(&template).await? {
            return Err(template_not_found(&prefix));
        }
        Ok(template)
    }

    /// DeleteRepositoryCreationTemplate: the deleted template; `Missing` if there was none.
    pub async fn delete_template(&self, prefix: &str) -> Result<Template> {
        let prefix = template_prefix(prefix)?;
        self.templates
            .delete_template(&prefix)
            .await?
            .ok_or_else(|| template_not_found(&prefix))
    }

    /// DescribeRepositoryCreationTemplates: the templates of `prefixes` (those that exist) or
    /// every template, by prefix, after `after`, at most `limit`.
    pub async fn describe_templates(
        &self,
        prefixes: Option<&[String]>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Template>> {
        match prefixes {
            None => self.templates.list_templates(after, limit as i64).await,
            Some(given) => {
                let mut wanted = Vec::with_capacity(given.len());
                for p in given {
                    wanted.push(template_prefix(p)?);
                }
                wanted.sort();
                wanted.dedup();
                let mut found = self.templates.templates_with_prefixes(&wanted).await?;
                found.retain(|t| t.prefix.as_str() > after);
                found.truncate(limit);
                Ok(found)
            }
        }
    }

    /// The template Berth creates `name` with for `kind`: the longest prefix covering the name
    /// among the templates applying to `kind`, else `ROOT`'s.
    pub async fn template_for(
        &self,
        name: &RepoName,
        kind: AppliedFor,
    ) -> Result<Option<Template>> {
        let candidates = self
            .templates
            .templates_with_prefixes(&candidate_prefixes(name.as_str()))
            .await?;
        Ok(select(&candidates, name.as_str(), kind).cloned())
    }

    /// Creates `name` with the settings of its template for `kind` (none: default settings), in
    /// one transaction; the existing repository if another request created it first.
    ///
    /// A template may carry a repository policy: callers holding the access layer must then
    /// make it forget what it cached for the name (`Access::repository_policy_changed`).
    pub async fn create_repository_from_template(
        &self,
        name: &RepoName,
        kind: AppliedFor,
    ) -> Result<RepositoryRow> {
        if let Some(row) = self.core.repository_row(name).await? {
            return Ok(row);
        }
        let settings = match self.template_for(name, kind).await? {
            Some(t) => NewRepository {
                tag_mutability: t.tag_mutability,
                scan_on_push: t.scan_on_push.unwrap_or(false),
                resource_tags: t.resource_tags,
                lifecycle_policy: t.lifecycle_policy,
                repository_policy: t.repository_policy,
            },
            None => NewRepository::default(),
        };
        match self
            .repositories
            .create_repository_with(name, &settings)
            .await
        {
            Ok(row) => Ok(row),
            Err(Error::AlreadyExists(_)) => self.core.describe_repository(name).await,
            Err(e) => Err(e),
        }
    }
}
