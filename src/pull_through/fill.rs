//! The pull-through cache: repositories under a rule's prefix are served from local storage and
//! filled from the rule's upstream on a miss.
//!
//! * **Manifests by digest** never change: once cached they are served without asking upstream.
//! * **Manifests by tag** are revalidated with a HEAD upstream at most once per interval (the
//!   rule's, or `[pull_through] revalidate_secs`) and fetched only when the digest moved. An
//!   index is cached with every child manifest. Blobs are not needed to cache a manifest: they
//!   are fetched when a client asks for them.
//! * **Stale-if-error:** when the upstream fails, times out or throttles, the cached copy is
//!   served with a `Warning: 110` header, and the next upstream check waits a minute (an outage
//!   must not make every pull wait for a timeout). With nothing cached the error names the
//!   upstream and what it answered.
//! * **Blobs** are streamed to the first client and into storage at once (hashed on the way; the
//!   digest is verified before the blob becomes visible, so a corrupt upstream body caches
//!   nothing). The fetch runs in its own task, so a client that disconnects does not abort it.
//!   One fetch per digest at a time: in-process waiters share it, and a lease row in the
//!   database makes other replicas wait for it too (single-flight).
//! * Pushing to a cached repository is refused (by the registry service, for every door);
//!   deleting from it is allowed (eviction).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use tokio::sync::watch;

use super::upstream::{Credential, UpstreamClient, UpstreamError};
use crate::access::Access;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::meta::{
    now_millis, BlobIndex, CacheFill, Lifecycle, Manifests, Meta, PullThroughCache, StoredRule,
};
use crate::oci::manifest::{self, ManifestKind};
use crate::oci::{Digest, Reference, RepoName};
use crate::policy::pull_through::{credential_name, rule_for_mirror};
use crate::policy::templates::AppliedFor;
use crate::service::{BlobRead, Registry, StoredManifest};
use crate::storage::ByteStream;

/// After an upstream failure, how long before a tag is checked upstream again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// The lease on a blob fetch, renewed while the fetch streams.
const FILL_LEASE: Duration = Duration::from_secs(90);
/// How often a replica waiting for another replica's fetch looks for the blob.
const FILL_POLL: Duration = Duration::from_millis(250);
/// How deep an index may nest indexes when it is cached (the push path's limit applies too).
const MAX_INDEX_NESTING: usize = 4;

/// A blob answer for a cached repository.
pub enum ProxiedBlob {
    /// From local storage (cached earlier, or just now).
    Local(BlobRead),
    /// Being fetched from upstream: the bytes as they arrive (`size` when the upstream said).
    Streaming { size: Option<u64>, body: ByteStream },
    /// A HEAD answered from upstream without fetching the blob.
    Head { size: Option<u64> },
}

/// What a caller is allowed to make the cache do on a miss.
#[derive(Debug, Clone, Copy)]
pub struct MissRights {
    /// `ecr:BatchImportUpstreamImage` on the repository: fetch from upstream.
    pub import: bool,
    /// `ecr:CreateRepository` on the repository: create it on first pull.
    pub create: bool,
}

type FillResult = Option<std::result::Result<(), String>>;

pub struct PullThrough {
    pub(super) registry: Arc<Registry>,
    /// The cache's own metadata: rules, tag checks, fill leases, cached sizes.
    pub(super) cache: PullThroughCache,
    /// Blobs linked from other repositories, manifests by tag, and images to evict.
    blob_index: BlobIndex,
    manifests: Manifests,
    lifecycle: Lifecycle,
    pub(super) access: Arc<Access>,
    client: UpstreamClient,
    credentials: HashMap<String, Credential>,
    region: String,
    registry_id: String,
    default_revalidate: Duration,
    mirror_default_ns: String,
    replica_id: String,
    /// Blob fetches under way in this process, by digest.
    fills: Arc<DashMap<String, watch::Receiver<FillResult>>>,
    /// One manifest fill per (repository, reference) at a time in this process.
    manifest_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// Reads the credentials file and inline JSON of `[pull_through]`.
pub fn load_credentials(config: &Config) -> anyhow::Result<HashMap<String, Credential>> {
    let mut out = HashMap::new();
    let mut add = |json: &str, origin: &str| -> anyhow::Result<()> {
        let map: HashMap<String, serde_json::Value> = serde_json::from_str(json).map_err(|e| {
            anyhow::anyhow!("{origin}: expected {{\"name\": {{\"username\", \"password\"}}}}: {e}")
        })?;
        for (name, v) in map {
            let (Some(username), Some(password)) = (v["username"].as_str(), v["password"].as_str())
            else {
                anyhow::bail!("{origin}: credential {name:?} needs username and password strings");
            };
            out.insert(
                name,
                Credential {
                    username: username.to_owned(),
                    password: password.to_owned(),
                },
            );
        }
        Ok(())
    };
    let file = &config.pull_through.credentials_file;
    if !file.is_empty() {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("pull_through.credentials_file {file}: {e}"))?;
        add(&text, &format!("pull_through.credentials_file {file}"))?;
    }
    let inline = config.pull_through.credentials.expose();
    if !inline.trim().is_empty() {
        add(inline, "pull_through.credentials")?;
    }
    Ok(out)
}

fn upstream_failure(rule: &StoredRule, what: &str, e: &UpstreamError) -> Error {
    let message = format!("upstream {} {e} for {what}", rule.rule.upstream.authority);
    match e {
        UpstreamError::Throttled { retry_after_secs } => Error::TooManyRequests {
            message,
            retry_after_secs: *retry_after_secs,
        },
        _ => Error::Unavailable(message),
    }
}

impl PullThrough {
    pub fn new(
        registry: Arc<Registry>,
        meta: Meta,
        access: Arc<Access>,
        config: &Config,
        replica_id: &str,
    ) -> anyhow::Result<Self> {
        Ok(PullThrough {
            registry,
            cache: meta.pull_through_cache(),
            blob_index: meta.blob_index(),
            manifests: meta.manifests(),
            lifecycle: meta.lifecycle(),
            access,
            client: UpstreamClient::new(Duration::from_secs(
                config.pull_through.upstream_timeout_secs.max(1),
            )),
            credentials: load_credentials(config)?,
            region: config.region.clone(),
            registry_id: config.registry_id.clone(),
            default_revalidate: Duration::from_secs(config.pull_through.revalidate_secs),
            mirror_default_ns: config.pull_through.mirror_default_ns.clone(),
            replica_id: replica_id.to_owned(),
            fills: Arc::new(DashMap::new()),
            manifest_locks: DashMap::new(),
        })
    }

    /// The manifest as this registry stores it (a `pull` is gated and recorded as any read).
    async fn stored_manifest(
        &self,
        name: &RepoName,
        reference: &Reference,
        pull: bool,
    ) -> Result<StoredManifest> {
        self.registry
            .manifests()
            .manifest(name, reference, pull)
            .await
    }

    /// The rules, read through (the registry's copy, which pushes are refused by too).
    pub async fn rules(&self) -> Result<Arc<Vec<StoredRule>>> {
        self.registry.repositories().pull_through_rules().await
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn registry_id(&self) -> &str {
        &self.registry_id
    }

    /// Forgets the cached rules (after this replica changed them).
    pub fn rules_changed(&self) {
        self.registry.repositories().pull_through_rules_changed();
    }

    /// The rule whose prefix covers `name`, if any.
    pub async fn rule_for(&self, name: &RepoName) -> Result<Option<StoredRule>> {
        self.registry
            .repositories()
            .pull_through_rule_for(name)
            .await
    }

    /// Mirror mode: the local repository a pull of upstream repository `name` maps to, for a
    /// request with `?ns=<upstream host>` (containerd) or, when `[pull_through]
    /// mirror_default_ns` is set, one that names neither a rule nor a local repository
    /// (dockerd's `registry-mirrors`).
    pub async fn mirror_target(
        &self,
        name: &RepoName,
        ns: Option<&str>,
    ) -> Result<Option<RepoName>> {
        let ns = match ns {
            Some(ns) => ns.to_owned(),
            None if self.mirror_default_ns.is_empty() => return Ok(None),
            None => {
                if self.rule_for(name).await?.is_some()
                    || self
                        .registry
                        .repositories()
                        .repository_id(name)
                        .await?
                        .is_some()
                {
                    return Ok(None);
                }
                self.mirror_default_ns.clone()
            }
        };
        let rules = self.rules().await?;
        let Some(rule) = rule_for_mirror(&rules, &ns) else {
            return Ok(None);
        };
        match rule.rule.local_repository(name.as_str()) {
            Some(local) => Ok(Some(RepoName::parse(&local)?)),
            None => Ok(None),
        }
    }

    /// The credential a rule names (`None` when it names none).
    pub fn credential(&self, rule: &StoredRule) -> Result<Option<&Credential>> {
        let Some(arn) = &rule.rule.credential_arn else {
            return Ok(None);
        };
        let name = credential_name(arn, &self.region, &self.registry_id)
            .map_err(Error::InvalidParameter)?;
        self.credentials.get(&name).map(Some).ok_or_else(|| {
            Error::Unavailable(format!(
                "the pull-through rule {} names the credential {name:?}, which is not configured \
                 ([pull_through] credentials_file or credentials)",
                rule.rule.prefix
            ))
        })
    }

    /// Whether a credential name is configured.
    pub fn has_credential(&self, name: &str) -> bool {
        self.credentials.contains_key(name)
    }

    /// ValidatePullThroughCacheRule: reaches the upstream with the rule's credentials.
    pub async fn validate(&self, rule: &StoredRule) -> std::result::Result<(), String> {
        let credential = self.credential(rule).map_err(|e| e.to_string())?;
        self.client
            .ping(&rule.rule.upstream, credential)
            .await
            .map_err(|e| format!("upstream {} {e}", rule.rule.upstream.authority))
    }

    fn upstream_repository(&self, rule: &StoredRule, name: &RepoName) -> Result<String> {
        rule.rule.upstream_repository(name.as_str()).ok_or_else(|| {
            Error::NameInvalid(format!(
                "repository {name} names no upstream repository under the pull-through prefix {}/",
                rule.rule.prefix
            ))
        })
    }

    fn revalidate_after(&self, rule: &StoredRule) -> Duration {
        rule.revalidate_secs
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.default_revalidate)
    }

    /// How many seconds a cached tag of `rule` is served before it is checked upstream again:
    /// the rule's own interval or `[pull_through] revalidate_secs`.
    pub fn revalidate_secs(&self, rule: &StoredRule) -> i64 {
        i64::try_from(self.revalidate_after(rule).as_secs()).unwrap_or(i64::MAX)
    }

    async fn ensure_repository(&self, name: &RepoName, rights: MissRights) -> Result<i64> {
        if let Some(id) = self.registry.repositories().repository_id(name).await? {
            return Ok(id);
        }
        if !rights.create {
            return Err(Error::Denied(format!(
                "repository {name} is not cached yet, and creating it on first pull needs \
                 ecr:CreateRepository"
            )));
        }
        // Created with the settings of the creation template for its prefix (tag mutability,
        // lifecycle policy, scanning, repository policy), in one transaction.
        let row = self
            .registry
            .templates()
            .create_repository_from_template(name, AppliedFor::PullThroughCache)
            .await?;
        self.access.repository_policy_changed(&row.name);
        Ok(row.id)
    }

    fn may_import(name: &RepoName, rights: MissRights) -> Result<()> {
        if rights.import {
            Ok(())
        } else {
            Err(Error::Denied(format!(
                "{name} is not cached, and fetching it from the upstream needs \
                 ecr:BatchImportUpstreamImage"
            )))
        }
    }

    fn manifest_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.manifest_locks
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// A manifest of a cached repository; the second value is a `Warning` header value when a
    /// stale copy is served because the upstream failed. `from_upstream` is set when the
    /// manifest was fetched from the upstream (a cache miss, for the metrics).
    pub async fn manifest(
        &self,
        rule: &StoredRule,
        name: &RepoName,
        reference: &Reference,
        pull: bool,
        rights: MissRights,
        from_upstream: &std::sync::atomic::AtomicBool,
    ) -> Result<(StoredManifest, Option<String>)> {
        let upstream_repo = self.upstream_repository(rule, name)?;
        match reference {
            Reference::Digest(digest) => {
                match self.stored_manifest(name, reference, pull).await {
                    Ok(m) => return Ok((m, None)),
                    Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => {}
                    Err(e) => return Err(e),
                }
                Self::may_import(name, rights)?;
                let key = format!("{name}@{digest}");
                let _forget = ForgetUnused {
                    map: &self.manifest_locks,
                    key: &key,
                };
                let lock = self.manifest_lock(&key);
                let _one = lock.lock().await;
                if let Ok(m) = self.stored_manifest(name, reference, pull).await {
                    return Ok((m, None));
                }
                self.ensure_repository(name, rights).await?;
                let manifest = self
                    .fetch_by_digest(rule, &upstream_repo, digest, "has no manifest")
                    .await?;
                from_upstream.store(true, std::sync::atomic::Ordering::Relaxed);
                self.store(
                    rule,
                    name,
                    &upstream_repo,
                    reference,
                    manifest.content.to_vec(),
                    &manifest.media_type,
                    0,
                )
                .await?;
                Ok((self.stored_manifest(name, reference, pull).await?, None))
            }
            Reference::Tag(tag) => {
                let repo = self.registry.repositories().repository_id(name).await?;
                let fresh = |check: Option<(String, i64)>| {
                    check.is_some_and(|(_, at)| {
                        now_millis() - at < self.revalidate_after(rule).as_millis() as i64
                    })
                };
                if let Some(repo) = repo {
                    if fresh(self.cache.tag_check(repo, tag.as_str()).await?) {
                        match self.stored_manifest(name, reference, pull).await {
                            Ok(m) => return Ok((m, None)),
                            Err(Error::ManifestUnknown(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                let key = format!("{name}:{tag}");
                let _forget = ForgetUnused {
                    map: &self.manifest_locks,
                    key: &key,
                };
                let lock = self.manifest_lock(&key);
                let _one = lock.lock().await;
                let repo = self.registry.repositories().repository_id(name).await?;
                let cached = match repo {
                    Some(repo) => {
                        if fresh(self.cache.tag_check(repo, tag.as_str()).await?) {
                            if let Ok(m) = self.stored_manifest(name, reference, pull).await {
                                return Ok((m, None));
                            }
                        }
                        self.manifests.manifest_by_tag(repo, tag).await?
                    }
                    None => None,
                };
                let what = format!("{upstream_repo}:{tag}");
                let credential = self.credential(rule)?;
                let stale = |e: &UpstreamError| {
                    format!(
                        "110 berth \"Response is Stale: upstream {} {e}\"",
                        rule.rule.upstream.authority
                    )
                };
                let head = self
                    .client
                    .manifest_digest(
                        &rule.rule.upstream,
                        credential,
                        &upstream_repo,
                        tag.as_str(),
                    )
                    .await;
                match (head, &cached, repo) {
                    (Ok(Some(digest)), Some(row), Some(repo)) if row.digest == digest => {
                        self.cache
                            .record_tag_check(repo, tag.as_str(), &digest)
                            .await?;
                        Ok((self.stored_manifest(name, reference, pull).await?, None))
                    }
                    (Ok(Some(_)), _, _) | (Ok(None), None, _) | (Ok(None), _, None) => {
                        // Moved, never cached, or a HEAD without a digest: fetch by tag.
                        Self::may_import(name, rights)?;
                        let fetched = self
                            .client
                            .manifest(
                                &rule.rule.upstream,
                                credential,
                                &upstream_repo,
                                tag.as_str(),
                                self.registry.limits().max_manifest_bytes,
                            )
                            .await;
                        match fetched {
                            Ok(Some(m)) => {
                                from_upstream.store(true, std::sync::atomic::Ordering::Relaxed);
                                let repo = self.ensure_repository(name, rights).await?;
                                let stored = self
                                    .store(rule, name, &upstream_repo, reference, m.content.to_vec(), &m.media_type, 0)
                                    .await;
                                let digest = match (stored, &cached) {
                                    // The repository's tags are immutable (its creation template
                                    // says so): the cached image stays what the tag names here.
                                    (Err(Error::TagImmutable(_)), Some(row)) => {
                                        self.cache.record_tag_check(repo, tag.as_str(), &row.digest).await?;
                                        return Ok((
                                            self.stored_manifest(name, reference, pull).await?,
                                            Some(format!(
                                                "299 berth \"upstream {} moved {what}; this repository's tags are immutable\"",
                                                rule.rule.upstream.authority
                                            )),
                                        ));
                                    }
                                    (stored, _) => stored?,
                                };
                                if let Some(claimed) = &m.digest {
                                    if *claimed != digest.to_string() {
                                        tracing::warn!(upstream = %rule.rule.upstream.authority, %what, %claimed, actual = %digest, "upstream manifest digest header differs from its body");
                                    }
                                }
                                self.cache.record_tag_check(repo, tag.as_str(), &digest.to_string())
                                    .await?;
                                Ok((self.stored_manifest(name, reference, pull).await?, None))
                            }
                            Ok(None) => match cached {
                                Some(_) => Ok((
                                    self.stored_manifest(name, reference, pull).await?,
                                    Some(format!(
                                        "110 berth \"Response is Stale: upstream {} has no {what}\"",
                                        rule.rule.upstream.authority
                                    )),
                                )),
                                None => Err(Error::ManifestUnknown(format!(
                                    "upstream {} has no manifest {what}",
                                    rule.rule.upstream.authority
                                ))),
                            },
                            Err(e) => self.serve_stale(rule, name, reference, pull, repo, cached.is_some(), &what, e, &stale).await,
                        }
                    }
                    (Ok(None), Some(_), Some(_)) => Ok((
                        self.stored_manifest(name, reference, pull).await?,
                        Some(format!(
                            "110 berth \"Response is Stale: upstream {} has no {what}\"",
                            rule.rule.upstream.authority
                        )),
                    )),
                    (Err(e), _, _) => {
                        self.serve_stale(
                            rule,
                            name,
                            reference,
                            pull,
                            repo,
                            cached.is_some(),
                            &what,
                            e,
                            &stale,
                        )
                        .await
                    }
                }
            }
        }
    }

    /// Manifest `digest` of the upstream repository; `ManifestUnknown` (saying that the
    /// upstream `missing`) when it has none.
    async fn fetch_by_digest(
        &self,
        rule: &StoredRule,
        upstream_repo: &str,
        digest: &Digest,
        missing: &str,
    ) -> Result<super::upstream::UpstreamManifest> {
        let what = format!("{upstream_repo}@{digest}");
        self.client
            .manifest(
                &rule.rule.upstream,
                self.credential(rule)?,
                upstream_repo,
                &digest.to_string(),
                self.registry.limits().max_manifest_bytes,
            )
            .await
            .map_err(|e| upstream_failure(rule, &what, &e))?
            .ok_or_else(|| {
                Error::ManifestUnknown(format!(
                    "upstream {} {missing} {what}",
                    rule.rule.upstream.authority
                ))
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_stale(
        &self,
        rule: &StoredRule,
        name: &RepoName,
        reference: &Reference,
        pull: bool,
        repo: Option<i64>,
        cached: bool,
        what: &str,
        e: UpstreamError,
        stale: &(dyn Fn(&UpstreamError) -> String + Sync),
    ) -> Result<(StoredManifest, Option<String>)> {
        let (Some(repo), true, Reference::Tag(tag)) = (repo, cached, reference) else {
            return Err(upstream_failure(rule, what, &e));
        };
        tracing::warn!(upstream = %rule.rule.upstream.authority, %what, error = %e, "upstream failed; serving the cached copy");
        let m = self.stored_manifest(name, reference, pull).await?;
        // Check again in a minute, not on every pull of an outage.
        let interval = self.revalidate_after(rule);
        let backdated =
            now_millis() - interval.as_millis() as i64 + RETRY_AFTER_FAILURE.as_millis() as i64;
        self.cache
            .record_tag_check_at(repo, tag.as_str(), &m.digest, backdated)
            .await?;
        Ok((m, Some(stale(&e))))
    }

    /// Stores a fetched manifest (an index with every child, fetched by digest when not cached
    /// yet) under `reference`; returns its digest.
    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        rule: &StoredRule,
        name: &RepoName,
        upstream_repo: &str,
        reference: &Reference,
        content: Vec<u8>,
        media_type: &str,
        nesting: usize,
    ) -> Result<Digest> {
        let content_type = (!media_type.is_empty()).then_some(media_type);
        let parsed = manifest::parse(
            &content,
            content_type,
            self.registry.limits().max_manifest_descriptors,
        )?;
        if parsed.kind == ManifestKind::Index {
            if nesting >= MAX_INDEX_NESTING {
                return Err(Error::ManifestTooComplex(format!(
                    "upstream index {upstream_repo} nests more than {MAX_INDEX_NESTING} levels"
                )));
            }
            let repo = self.registry.repositories().repository(name).await?;
            for child in &parsed.references {
                if self
                    .manifests
                    .manifest_by_digest(repo, &child.digest)
                    .await?
                    .is_some()
                {
                    continue;
                }
                let fetched = self
                    .fetch_by_digest(
                        rule,
                        upstream_repo,
                        &child.digest,
                        "lists this in an index but has no such manifest:",
                    )
                    .await?;
                Box::pin(self.store(
                    rule,
                    name,
                    upstream_repo,
                    &Reference::Digest(child.digest.clone()),
                    fetched.content.to_vec(),
                    &fetched.media_type,
                    nesting + 1,
                ))
                .await?;
            }
        }
        let put = self
            .registry
            .manifests()
            .put_cached_manifest(
                name,
                reference,
                content_type,
                content,
                CacheFill {
                    ecr_repository_prefix: rule.rule.prefix.clone(),
                    upstream_registry_url: rule.rule.upstream_url.clone(),
                },
            )
            .await?;
        Ok(put.digest)
    }

    /// A blob of a cached repository: local, linked from another repository that has it, or
    /// fetched from upstream (once per digest across replicas).
    pub async fn blob(
        &self,
        rule: &StoredRule,
        name: &RepoName,
        digest: &Digest,
        range: Option<crate::storage::RangeRequest>,
        head: bool,
        rights: MissRights,
    ) -> Result<ProxiedBlob> {
        let mut failed_waits = 0;
        loop {
            match self
                .registry
                .blobs()
                .read_blob(name, digest, range, !head)
                .await
            {
                Ok(b) => return Ok(ProxiedBlob::Local(b)),
                Err(Error::BlobUnknown(_)) => {}
                Err(e) => return Err(e),
            }
            if self.blob_index.blob_linked_anywhere(digest).await? {
                let repo = self.ensure_repository(name, rights).await?;
                self.blob_index.link_blob(repo, digest).await?;
                self.registry.replicas().forget_cached_repository(repo);
                match self
                    .registry
                    .blobs()
                    .read_blob(name, digest, range, !head)
                    .await
                {
                    Ok(b) => return Ok(ProxiedBlob::Local(b)),
                    Err(Error::BlobUnknown(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Self::may_import(name, rights)?;
            let upstream_repo = self.upstream_repository(rule, name)?;
            let what = format!("{upstream_repo}@{digest}");
            if head {
                let resp = self
                    .client
                    .blob(
                        &rule.rule.upstream,
                        self.credential(rule)?,
                        &upstream_repo,
                        &digest.to_string(),
                        true,
                    )
                    .await
                    .map_err(|e| upstream_failure(rule, &what, &e))?
                    .ok_or_else(|| {
                        Error::BlobUnknown(format!(
                            "upstream {} has no blob {what}",
                            rule.rule.upstream.authority
                        ))
                    })?;
                return Ok(ProxiedBlob::Head {
                    size: resp.content_length(),
                });
            }
            // Someone in this process is fetching it: wait, then read it locally. When that fetch
            // failed, this request tries once itself (the upstream may have recovered) before it
            // reports the failure.
            let waiting = self.fills.get(&digest.to_string()).map(|r| r.clone());
            if let Some(mut done) = waiting {
                let result = done.wait_for(|r| r.is_some()).await.map(|r| r.clone());
                if let Ok(Some(Err(e))) = result {
                    if failed_waits > 0 {
                        return Err(Error::Unavailable(e));
                    }
                    failed_waits += 1;
                }
                continue;
            }
            // Another fetch (on another replica, or starting here) holds the lease: wait for the
            // blob or for the lease to lapse. Each attempt is its own lease owner.
            let key = digest.to_string();
            let owner = format!("{}/{}", self.replica_id, uuid::Uuid::new_v4().simple());
            let lease_until = now_millis() + FILL_LEASE.as_millis() as i64;
            if !self
                .cache
                .take_fill_lease(&key, &owner, lease_until)
                .await?
            {
                tokio::time::sleep(FILL_POLL).await;
                continue;
            }
            // The fetch that held the lease may have committed between this request's look for
            // the blob and taking the lease: look again before fetching.
            if self.blob_index.blob_linked_anywhere(digest).await? {
                self.cache.release_fill_lease(&key, &owner).await?;
                continue;
            }
            let (tx, rx) = watch::channel(None);
            match self.fills.entry(key.clone()) {
                dashmap::Entry::Occupied(_) => {
                    self.cache.release_fill_lease(&key, &owner).await?;
                    continue;
                }
                dashmap::Entry::Vacant(v) => {
                    v.insert(rx);
                }
            }
            let ensured = self.ensure_repository(name, rights).await;
            let started = match ensured {
                Ok(_) => {
                    self.client
                        .blob(
                            &rule.rule.upstream,
                            self.credential(rule)?,
                            &upstream_repo,
                            &key,
                            false,
                        )
                        .await
                }
                Err(e) => {
                    self.end_fill(&key, &owner, &tx, Err(e.to_string())).await;
                    return Err(e);
                }
            };
            let resp = match started {
                Ok(Some(resp)) => resp,
                Ok(None) => {
                    let e = Error::BlobUnknown(format!(
                        "upstream {} has no blob {what}",
                        rule.rule.upstream.authority
                    ));
                    self.end_fill(&key, &owner, &tx, Err(e.to_string())).await;
                    return Err(e);
                }
                Err(e) => {
                    let e = upstream_failure(rule, &what, &e);
                    self.end_fill(&key, &owner, &tx, Err(e.to_string())).await;
                    return Err(e);
                }
            };
            let size = resp.content_length();
            let (client_tx, client_rx) =
                tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
            let fill = Fill {
                registry: self.registry.clone(),
                cache: self.cache.clone(),
                fills: self.fills.clone(),
                name: name.clone(),
                digest: digest.clone(),
                key,
                owner,
                upstream: rule.rule.upstream.authority.clone(),
            };
            tokio::spawn(async move {
                let result = fill.run(resp, size, client_tx).await;
                finish_fill(
                    &fill.cache,
                    &fill.fills,
                    &fill.owner,
                    &fill.key,
                    &tx,
                    result,
                )
                .await;
            });
            let body = futures::stream::unfold(client_rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed();
            return Ok(ProxiedBlob::Streaming { size, body });
        }
    }

    /// Holds every rule with a quota to it: evicts the least recently pulled images (never
    /// pulled: by push time) of its repositories until their blobs fit. Evictions are recorded
    /// in the lifecycle audit log with rule priority 0; garbage collection reclaims the bytes.
    /// Returns how many images went.
    pub async fn enforce_quotas(&self) -> Result<usize> {
        let mut evicted = 0;
        for rule in self.cache.pull_through_rules().await? {
            let Some(quota) = rule.quota_bytes else {
                continue;
            };
            let prefix = &rule.rule.prefix;
            if self.cache.cached_bytes(prefix).await? <= quota {
                continue;
            }
            let mut candidates = Vec::new();
            for (repo, name) in self.cache.repositories_under(prefix).await? {
                for image in self.lifecycle.lifecycle_images(repo).await? {
                    let used = image.last_pulled_at.unwrap_or(image.pushed_at);
                    candidates.push((used, repo, name.clone(), image));
                }
            }
            candidates.sort_by(|a, b| (a.0, &a.3.digest).cmp(&(b.0, &b.3.digest)));
            for (_, repo, name, image) in candidates {
                if self.cache.cached_bytes(prefix).await? <= quota {
                    break;
                }
                let outcome = self
                    .lifecycle
                    .expire_image(repo, &name, &image.digest, &image.tags, 0)
                    .await?;
                self.registry.replicas().forget_cached_repository(repo);
                if matches!(outcome, crate::meta::ExpireOutcome::Expired { .. }) {
                    tracing::info!(repository = %name, digest = %image.digest, quota, "pull-through quota evicted an image");
                    evicted += 1;
                }
            }
        }
        Ok(evicted)
    }

    async fn end_fill(
        &self,
        key: &str,
        owner: &str,
        tx: &watch::Sender<FillResult>,
        result: std::result::Result<(), String>,
    ) {
        finish_fill(&self.cache, &self.fills, owner, key, tx, result).await;
    }
}

/// Removes a per-reference lock from its map when nobody else holds it (declared before the
/// lock's guard, so it drops after it); keeps the map from growing with every reference pulled.
struct ForgetUnused<'a> {
    map: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    key: &'a str,
}

impl Drop for ForgetUnused<'_> {
    fn drop(&mut self) {
        self.map
            .remove_if(self.key, |_, lock| Arc::strong_count(lock) == 1);
    }
}

/// Ends a blob fetch: releases its lease, forgets it, and wakes its waiters.
async fn finish_fill(
    cache: &PullThroughCache,
    fills: &DashMap<String, watch::Receiver<FillResult>>,
    owner: &str,
    key: &str,
    tx: &watch::Sender<FillResult>,
    result: std::result::Result<(), String>,
) {
    if let Err(e) = cache.release_fill_lease(key, owner).await {
        // It lapses on its own; other replicas then look for the blob and find it.
        tracing::warn!(digest = key, error = %e, "cannot release a pull-through fetch lease");
    }
    fills.remove(key);
    let _ = tx.send(Some(result));
}

/// One blob fetch from upstream into storage, teed to the client that asked first.
struct Fill {
    registry: Arc<Registry>,
    cache: PullThroughCache,
    fills: Arc<DashMap<String, watch::Receiver<FillResult>>>,
    name: RepoName,
    digest: Digest,
    key: String,
    /// This fetch's lease owner (replica and attempt).
    owner: String,
    upstream: String,
}

/// What the tee keeps between chunks: the chunk held back, and whether the client is gone.
#[derive(Default)]
struct TeeState {
    held: Option<bytes::Bytes>,
    client_gone: bool,
}

impl TeeState {
    /// Sends a chunk to the client unless it left or stalls (the fetch then goes on for the
    /// cache alone).
    async fn forward(
        &mut self,
        client: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
        chunk: bytes::Bytes,
    ) {
        if self.client_gone {
            return;
        }
        let sent = tokio::time::timeout(CLIENT_SEND_TIMEOUT, client.send(Ok(chunk))).await;
        if !matches!(sent, Ok(Ok(()))) {
            self.client_gone = true;
        }
    }
}

/// How long the fetch waits for a slow first client before going on without it.
const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Fill {
    async fn run(
        &self,
        resp: reqwest::Response,
        size: Option<u64>,
        client: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    ) -> std::result::Result<(), String> {
        let renew = {
            let (cache, key, owner) = (self.cache.clone(), self.key.clone(), self.owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(FILL_LEASE / 3).await;
                    let until = now_millis() + FILL_LEASE.as_millis() as i64;
                    if let Err(e) = cache.take_fill_lease(&key, &owner, until).await {
                        tracing::warn!(digest = %key, error = %e, "cannot renew a pull-through fetch lease");
                    }
                }
            })
        };
        // The client gets every chunk as it arrives except the last, which waits until the digest
        // is verified: with a Content-Length the response is complete once that many bytes are
        // out, so a corrupt body must never reach its last byte.
        let tee_state = Arc::new(tokio::sync::Mutex::new(TeeState::default()));
        let (to_client, state) = (client.clone(), tee_state.clone());
        let tee = resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .then(move |chunk| {
                let (to_client, state) = (to_client.clone(), state.clone());
                async move {
                    if let Ok(bytes) = &chunk {
                        let mut state = state.lock().await;
                        if let Some(previous) = state.held.replace(bytes.clone()) {
                            state.forward(&to_client, previous).await;
                        }
                    }
                    chunk
                }
            })
            .boxed();
        let result = self
            .registry
            .uploads()
            .put_cached_blob(&self.name, &self.digest, size, tee)
            .await;
        renew.abort();
        match result {
            Ok(_) => {
                let mut state = tee_state.lock().await;
                if let Some(last) = state.held.take() {
                    state.forward(&client, last).await;
                }
                tracing::info!(digest = %self.digest, upstream = %self.upstream, repository = %self.name, "cached a blob from upstream");
                Ok(())
            }
            Err(e) => {
                let message = format!(
                    "fetching {} from upstream {} failed, nothing was cached: {e}",
                    self.digest, self.upstream
                );
                tracing::warn!("{message}");
                // The client must not take a short or corrupt body for the blob.
                let _ = client.try_send(Err(std::io::Error::other(message.clone())));
                Err(message)
            }
        }
    }
}
