//! Repository management for the admin APIs: create, describe, list and delete repositories,
//! and set their tag mutability.

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{NewRepository, RepositoryRow};
use crate::oci::RepoName;
use crate::policy::TagMutability;

impl Registry {
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
        self.repositories
            .repository_row(name)
            .await?
            .ok_or_else(|| {
                Error::NameUnknown(format!(
                    "The repository with name '{name}' does not exist in the registry"
                ))
            })
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
        self.cache.invalidate_all();
        Ok(row)
    }
}
