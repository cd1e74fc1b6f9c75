//! Repository management for the admin APIs: create, describe, list and delete repositories,
//! and set their tag mutability.

use std::sync::Arc;

use super::core::Core;
use super::page;
use crate::error::{Error, Result};
use crate::meta::{
    IdentityStore, NewRepository, Repositories, RepositoryRow, RepositorySummaryRow, ResourceTags,
    StoredRule,
};
use crate::oci::RepoName;
use crate::policy::TagMutability;

/// Repositories: create, describe, list, delete, their settings, resource tags, the catalog, and
/// which of them are pull-through caches.
#[derive(Clone)]
pub struct RepositoryService {
    core: Core,
    repositories: Repositories,
    pub(super) resource_tags: ResourceTags,
    /// Only to forget a deleted repository's policy, which lives with the identities.
    identity: IdentityStore,
}

impl RepositoryService {
    pub(super) fn new(
        core: Core,
        repositories: Repositories,
        resource_tags: ResourceTags,
        identity: IdentityStore,
    ) -> RepositoryService {
        RepositoryService {
            core,
            repositories,
            resource_tags,
            identity,
        }
    }

    /// The repository's id, if it exists (cached).
    pub async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>> {
        self.core.repository_id(name).await
    }

    /// The repository's id, or NAME_UNKNOWN.
    pub async fn repository(&self, name: &RepoName) -> Result<i64> {
        self.core.repository(name).await
    }

    /// The pull-through cache rules (read through for a short while; see `core`).
    pub async fn pull_through_rules(&self) -> Result<Arc<Vec<StoredRule>>> {
        self.core.pull_through_rules().await
    }

    /// Forgets the cached rules (after this replica changed them).
    pub fn pull_through_rules_changed(&self) {
        self.core.pull_through_rules_changed()
    }

    /// The rule whose prefix covers `name` (the longest), if any.
    pub async fn pull_through_rule_for(&self, name: &RepoName) -> Result<Option<StoredRule>> {
        self.core.pull_through_rule_for(name).await
    }

    /// GET /v2/_catalog?n=&last=
    pub async fn catalog(
        &self,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<(Vec<String>, bool)> {
        page(n, |limit| self.repositories.list_repositories(last, limit)).await
    }

    /// Creates an empty repository; `AlreadyExists` if it is there.
    pub async fn create_repository(&self, name: &RepoName) -> Result<RepositoryRow> {
        self.create_repository_with(name, &NewRepository::default())
            .await
    }

    /// Creates an empty repository with its settings, in one transaction; `AlreadyExists` if it
    /// is there.
    pub async fn create_repository_with(
        &self,
        name: &RepoName,
        settings: &NewRepository,
    ) -> Result<RepositoryRow> {
        let created = if *settings == NewRepository::default() {
            self.repositories.create_repository(name).await?
        } else {
            self.repositories
                .create_repository_with(name, settings)
                .await?
        };
        if !created {
            return Err(Error::AlreadyExists(format!(
                "The repository with name '{name}' already exists in the registry"
            )));
        }
        self.describe_repository(name).await
    }

    /// The repository's row; `NameUnknown` if it does not exist.
    pub async fn describe_repository(&self, name: &RepoName) -> Result<RepositoryRow> {
        self.core.describe_repository(name).await
    }

    /// PutImageTagMutability: replaces the repository's setting (already validated); returns
    /// the repository as it is now.
    pub async fn set_tag_mutability(
        &self,
        name: &RepoName,
        tag_mutability: &TagMutability,
    ) -> Result<RepositoryRow> {
        let row = self.describe_repository(name).await?;
        self.repositories
            .set_tag_mutability(row.id, tag_mutability)
            .await?;
        Ok(RepositoryRow {
            tag_mutability: tag_mutability.clone(),
            ..row
        })
    }

    /// Repositories after `after` (by name), at most `limit`.
    pub async fn list_repository_rows(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        self.repositories.list_repository_rows(after, limit).await
    }

    /// Repositories after `after` (by name) whose names start with `prefix`, at most `limit`.
    pub async fn list_repository_rows_with_prefix(
        &self,
        after: Option<&str>,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        let upper = prefix_upper_bound(prefix);
        self.repositories
            .list_repository_rows_in(after, prefix, upper.as_deref(), limit)
            .await
    }

    /// What each of the repositories `ids` holds (one query per 500).
    pub async fn summaries(&self, ids: &[i64]) -> Result<Vec<RepositorySummaryRow>> {
        self.repositories.repository_summaries(ids).await
    }

    /// Deletes the repository with its manifests, tags, upload sessions and policy. Without
    /// `force`, a repository that still holds images is refused with `NotEmpty`. Blob bytes stay
    /// until garbage collection finds them unreferenced.
    pub async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<RepositoryRow> {
        let row = self.describe_repository(name).await?;
        if !self.repositories.delete_repository(row.id, force).await? {
            return Err(Error::NotEmpty(format!(
                "The repository with name '{name}' in registry cannot be deleted because it still contains images"
            )));
        }
        self.identity
            .delete_policy("repository", name.as_str())
            .await?;
        self.core.cache.invalidate_all();
        Ok(row)
    }
}

/// The smallest string above every string that starts with `prefix` (`None`: there is none,
/// or the prefix is empty and nothing bounds the range). Names compare bytewise (`COLLATE "C"`
/// on PostgreSQL, SQLite's default), so the last byte below 0xFF is incremented and what
/// follows it dropped; a byte sequence that is not UTF-8 afterwards cannot be a bound, and a
/// repository name is ASCII anyway.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7F {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_ranges_end_after_every_name_with_the_prefix() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("team/"), Some("team0".into()));
        assert_eq!(prefix_upper_bound("a"), Some("b".into()));
        assert_eq!(prefix_upper_bound("ab\u{7f}"), Some("ac".into()));
        let upper = prefix_upper_bound("team/app").unwrap();
        for name in ["team/app", "team/app/x", "team/apps", "team/app~"] {
            assert!(name >= "team/app" && name < upper.as_str(), "{name}");
        }
        assert!("team/aq" >= upper.as_str());
    }
}
