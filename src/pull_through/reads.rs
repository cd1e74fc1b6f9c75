//! The registry's reads of manifests and blobs, pull-through aware: a repository under a rule
//! is served from the cache and filled from upstream on a miss, every other repository from the
//! registry service. The `/v2` transport asks here for every read and never decides which kind
//! of repository it is reading, as Distribution's proxy blob store stands behind the same
//! interface as the local one.

use super::fill::{MissRights, ProxiedBlob, PullThrough};
use crate::access::Caller;
use crate::error::{Error, Result};
use crate::metrics::PullThroughOutcome;
use crate::oci::{Digest, Reference, RepoName};
use crate::policy::Action;
use crate::service::StoredManifest;
use crate::storage::RangeRequest;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a read failed because of the upstream (unreachable, failing, throttling): the errors
/// `fill` makes of upstream failures, which name the upstream first.
fn upstream_failed(e: &Error) -> bool {
    match e {
        Error::Unavailable(message) | Error::TooManyRequests { message, .. } => {
            message.starts_with("upstream ")
        }
        _ => false,
    }
}

impl PullThrough {
    /// Manifest `reference` of `name`, and a `Warning` for the client when a cached copy was
    /// served because the upstream failed. Reads by the scanner are not counted as pulls.
    pub async fn read_manifest(
        &self,
        caller: &Caller,
        name: &RepoName,
        reference: &Reference,
    ) -> Result<(StoredManifest, Option<String>)> {
        let pull = !caller.subject.is_scanner();
        match self.rule_for(name).await? {
            None => Ok((
                self.registry
                    .manifests()
                    .manifest(name, reference, pull)
                    .await?,
                None,
            )),
            Some(rule) => {
                let rights = self.miss_rights(caller, name).await?;
                let fetched = AtomicBool::new(false);
                let read = self
                    .manifest(&rule, name, reference, pull, rights, &fetched)
                    .await;
                let outcome = match &read {
                    // A `110` warning: a cached copy served for a failed (or empty) upstream.
                    Ok((_, Some(warning))) if warning.starts_with("110 ") => {
                        Some(PullThroughOutcome::Stale)
                    }
                    Ok(_) if fetched.load(Ordering::Relaxed) => Some(PullThroughOutcome::Miss),
                    Ok(_) => Some(PullThroughOutcome::Hit),
                    Err(e) => upstream_failed(e).then_some(PullThroughOutcome::UpstreamError),
                };
                if let Some(outcome) = outcome {
                    self.registry.metrics().pull_through(outcome);
                }
                read
            }
        }
    }

    /// Blob `digest` of `name` (its bytes unless `head`, within `range` when given).
    pub async fn read_blob(
        &self,
        caller: &Caller,
        name: &RepoName,
        digest: &Digest,
        range: Option<RangeRequest>,
        head: bool,
    ) -> Result<ProxiedBlob> {
        match self.rule_for(name).await? {
            None => Ok(ProxiedBlob::Local(
                self.registry
                    .blobs()
                    .read_blob(name, digest, range, !head)
                    .await?,
            )),
            Some(rule) => {
                let rights = self.miss_rights(caller, name).await?;
                let read = self.blob(&rule, name, digest, range, head, rights).await;
                let outcome = match &read {
                    Ok(ProxiedBlob::Local(_)) => Some(PullThroughOutcome::Hit),
                    Ok(ProxiedBlob::Head { .. } | ProxiedBlob::Streaming { .. }) => {
                        Some(PullThroughOutcome::Miss)
                    }
                    Err(e) => upstream_failed(e).then_some(PullThroughOutcome::UpstreamError),
                };
                if let Some(outcome) = outcome {
                    self.registry.metrics().pull_through(outcome);
                }
                read
            }
        }
    }

    /// What the caller may do when a read misses the cache: import from upstream, and create
    /// the cached repository. ECR asks for both actions; an anonymous caller (who can never
    /// create a repository) creates a cached one with the import right alone.
    async fn miss_rights(&self, caller: &Caller, name: &RepoName) -> Result<MissRights> {
        let decide = |action| {
            self.access
                .decide(&caller.subject, action, Some(name.as_str()), &caller.facts)
        };
        let import = decide(Action::BatchImportUpstreamImage).await?.is_allowed();
        let create = (import && caller.subject.is_anonymous())
            || decide(Action::CreateRepository).await?.is_allowed();
        Ok::<_, Error>(MissRights { import, create })
    }
}
