//! Repository management for the admin APIs: create, describe, list and delete repositories.

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::RepositoryRow;
use crate::oci::RepoName;

impl Registry {
    /// Creates an empty repository; `AlreadyExists` if it is there.
    pub async fn create_repository(&self, name: &RepoName) -> Result<RepositoryRow> {
        if !self.meta.create_repository(name).await? {
            return Err(Error::AlreadyExists(format!(
                "The repository with name '{name}' already exists in the registry"
            )));
        }
        self.describe_repository(name).await
    }

    /// The repository's row; `NameUnknown` if it does not exist.
    pub async fn describe_repository(&self, name: &RepoName) -> Result<RepositoryRow> {
        self.meta.repository_row(name).await?.ok_or_else(|| {
            Error::NameUnknown(format!(
                "The repository with name '{name}' does not exist in the registry"
            ))
        })
    }

    /// Repositories after `after` (by name), at most `limit`.
    pub async fn list_repository_rows(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RepositoryRow>> {
        self.meta.list_repository_rows(after, limit).await
    }

    /// Deletes the repository with its manifests, tags, upload sessions and policy. Without
    /// `force`, a repository that still holds images is refused with `NotEmpty`. Blob bytes stay
    /// until garbage collection finds them unreferenced.
    pub async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<RepositoryRow> {
        let row = self.describe_repository(name).await?;
        if !self.meta.delete_repository(row.id, force).await? {
            return Err(Error::NotEmpty(format!(
                "The repository with name '{name}' in registry cannot be deleted because it still contains images"
            )));
        }
        self.meta.delete_policy("repository", name.as_str()).await?;
        self.cache.invalidate_all();
        Ok(row)
    }
}
