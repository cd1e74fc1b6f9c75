//! Resource tags on repositories (ECR's TagResource, UntagResource, ListTagsForResource).

use super::RepositoryService;
use crate::error::Result;
use crate::oci::RepoName;

/// Most tags one resource may carry (ECR's limit).
pub const MAX_RESOURCE_TAGS: usize = 50;

impl RepositoryService {
    /// The repository's tags, sorted by key; `NameUnknown` if the repository does not exist.
    pub async fn repository_tags(&self, name: &RepoName) -> Result<Vec<(String, String)>> {
        let repo = self.describe_repository(name).await?;
        self.resource_tags.repository_tags(repo.id).await
    }

    /// Adds or overwrites tags; false (and no change) when the repository would end up with more
    /// than [`MAX_RESOURCE_TAGS`].
    pub async fn tag_repository(&self, name: &RepoName, tags: &[(String, String)]) -> Result<bool> {
        let repo = self.describe_repository(name).await?;
        self.resource_tags
            .put_repository_tags(repo.id, tags, MAX_RESOURCE_TAGS as i64)
            .await
    }

    /// Removes the tags with these keys; absent keys are ignored.
    pub async fn untag_repository(&self, name: &RepoName, keys: &[String]) -> Result<()> {
        let repo = self.describe_repository(name).await?;
        self.resource_tags
            .delete_repository_tags(repo.id, keys)
            .await
    }
}
