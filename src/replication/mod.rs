//! Replication's worker: takes due tasks under a lease and sends each image to its destination
//! through the OCI Distribution API, as any client would push it. What the destination already
//! has is not sent again: a manifest already there ends the walk; a blob is checked with HEAD,
//! then offered as a cross-repository mount (the destination picks a repository holding it),
//! and only then streamed from storage (never buffered whole). Child manifests go before their
//! index, the manifest by digest before its tag, and the tag only while it still names this
//! image here (a later push that moved it has a task of its own).
//!
//! At a Berth destination the worker logs in as this registry's root with a password this
//! registry signs for it (see `Access::replication_password`); the destination lets it pull and
//! push only where its policies allow `ecr:ReplicateImage`. Refusals and conflicts end a task
//! `FAILED` at once; an unreachable or failing destination is retried with backoff until the
//! retry window has passed since the push.

mod client;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::config::ReplicationConfig;
use crate::error::Error;
use crate::meta::{now_millis, ReplicationTask};
use crate::oci::manifest::{self, ManifestKind};
use crate::oci::{Digest, Reference, RepoName};
use crate::service::Registry;
use client::{Destination, SendError};

/// How long a claimed task is this replica's; a replica that dies mid-send leaves it for
/// another after this.
const LEASE: Duration = Duration::from_secs(600);
/// The first retry's delay; each later one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the worker looks for due tasks when no push here woke it.
const POLL: Duration = Duration::from_secs(1);

/// Failure codes a task ends with.
pub const DENIED: &str = "REPLICATION_DENIED";
pub const TAG_CONFLICT: &str = "TAG_IMMUTABLE";
pub const REFUSED: &str = "DESTINATION_REFUSED";
pub const UNREACHABLE: &str = "DESTINATION_UNREACHABLE";
pub const IMAGE_GONE: &str = "IMAGE_NOT_FOUND";

/// What one attempt at a task came to.
enum Outcome {
    Sent,
    /// Try again later (the destination is down or failing).
    Retry(String),
    /// Give up: (failure code, reason).
    Fail(&'static str, String),
}

/// A configured non-Berth registry: where it is and what to log in with.
struct Target {
    url: String,
    credentials: Option<(String, String)>,
}

/// The worker of one replica.
pub struct Replicator {
    registry: Arc<Registry>,
    access: Arc<Access>,
    targets: std::collections::HashMap<String, Target>,
    http: reqwest::Client,
    owner: String,
    concurrency: usize,
    retry_window: Duration,
    /// Logins to destinations, reused across tasks.
    logins: client::Logins,
    /// Blobs mounted at destinations rather than sent (for logs and tests).
    mounted: std::sync::atomic::AtomicU64,
}

impl Replicator {
    /// The worker of replica `owner`; reads each target's credentials file now, so that a
    /// missing or malformed one stops the start with a message naming it.
    pub fn new(
        registry: Arc<Registry>,
        access: Arc<Access>,
        config: &ReplicationConfig,
        owner: &str,
    ) -> anyhow::Result<Replicator> {
        let mut targets = std::collections::HashMap::new();
        for target in &config.targets {
            let credentials = if target.credentials_file.is_empty() {
                None
            } else {
                Some(read_credentials(&target.credentials_file).map_err(|e| {
                    anyhow::anyhow!(
                        "replication target {}: credentials_file {}: {e}",
                        target.name,
                        target.credentials_file
                    )
                })?)
            };
            targets.insert(
                target.name.clone(),
                Target {
                    url: target.url.clone(),
                    credentials,
                },
            );
        }
        Ok(Replicator {
            registry,
            access,
            targets,
            http: client::http_client(),
            logins: client::Logins::new(),
            owner: owner.to_owned(),
            concurrency: config.concurrency.max(1),
            retry_window: Duration::from_secs(config.retry_window_secs),
            mounted: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Takes and sends due tasks until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let rules = self.registry.replication().rules().clone();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let lease_until = now_millis() + LEASE.as_millis() as i64;
            let tasks = match self
                .registry
                .replication()
                .claim_due(&self.owner, lease_until, self.concurrency as i64)
                .await
            {
                Ok(tasks) => tasks,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read replication tasks; will retry");
                    Vec::new()
                }
            };
            if tasks.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = rules.wait_for_push(POLL) => {}
                }
                continue;
            }
            futures::stream::iter(tasks)
                .for_each_concurrent(self.concurrency, |task| {
                    let me = self.clone();
                    async move { me.attempt(task).await }
                })
                .await;
        }
    }

    /// One task's attempt, as one trace (`debug`: free without an exporter) whose children are
    /// the requests to the destination and the reads of the image.
    #[tracing::instrument(
        level = "debug",
        name = "replicate",
        skip_all,
        fields(
            otel.name = "replicate",
            berth.repository = %task.repository,
            berth.replication.destination = %task.target,
        )
    )]
    async fn attempt(&self, task: ReplicationTask) {
        let outcome = self.send(&task).await;
        let service = self.registry.replication();
        let recorded = match &outcome {
            Outcome::Sent => {
                tracing::info!(repository = %task.repository, digest = %task.digest,
                    tag = %task.tag, destination = %task.registry_id, "image replicated");
                service.finish(&task, &self.owner, None).await
            }
            Outcome::Fail(code, reason) => {
                tracing::warn!(repository = %task.repository, digest = %task.digest,
                    destination = %task.registry_id, code, %reason, "replication failed");
                service
                    .finish(&task, &self.owner, Some((code, reason)))
                    .await
            }
            Outcome::Retry(reason)
                if now_millis() - task.created_at > self.retry_window.as_millis() as i64 =>
            {
                tracing::warn!(repository = %task.repository, digest = %task.digest,
                    destination = %task.registry_id, %reason,
                    "replication failed: the destination failed for the whole retry window");
                let reason = format!("gave up after the retry window: {reason}");
                service
                    .finish(&task, &self.owner, Some((UNREACHABLE, &reason)))
                    .await
            }
            Outcome::Retry(reason) => {
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << task.attempts.clamp(0, 10))
                    .min(MAX_BACKOFF);
                tracing::info!(repository = %task.repository, digest = %task.digest,
                    destination = %task.registry_id, %reason, retry_in = ?backoff,
                    "replication will be retried");
                service
                    .retry_later(
                        &task,
                        &self.owner,
                        now_millis() + backoff.as_millis() as i64,
                        reason,
                    )
                    .await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the task is taken again: sending is idempotent.
            tracing::warn!(error = %e, task = task.id, "cannot record a replication outcome");
        }
    }

    async fn send(&self, task: &ReplicationTask) -> Outcome {
        let (Ok(name), Ok(digest)) = (
            RepoName::parse(&task.repository),
            Digest::parse(&task.digest),
        ) else {
            return Outcome::Fail(REFUSED, "the task names an invalid image".into());
        };
        let destination = match self.destination(task, &name) {
            Ok(destination) => destination,
            Err(outcome) => return outcome,
        };
        let result = async {
            destination.login(&self.logins).await?;
            if task.action == crate::meta::REPLICATION_DELETE {
                return self
                    .send_delete(&destination, &name, &digest, &task.tag)
                    .await;
            }
            let tag = if task.tag.is_empty() {
                None
            } else {
                self.tag_still_names(&name, &task.tag, &digest).await?
            };
            self.send_manifest(&destination, &name, &digest, 0, tag.as_deref())
                .await
        }
        .await;
        match result {
            Ok(()) => Outcome::Sent,
            Err(SendError::Gone(reason)) => Outcome::Fail(IMAGE_GONE, reason),
            // A refusal met with a remembered login may be the login's fault (a token the
            // destination no longer honours): forget it and try again with a fresh one.
            Err(SendError::Denied(reason)) if destination.reused_login() => {
                destination.forget_login(&self.logins);
                Outcome::Retry(reason)
            }
            Err(SendError::Denied(reason)) => Outcome::Fail(DENIED, reason),
            Err(SendError::TagConflict(reason)) => Outcome::Fail(TAG_CONFLICT, reason),
            Err(SendError::Refused(reason)) => Outcome::Fail(REFUSED, reason),
            Err(SendError::Unavailable(reason)) => Outcome::Retry(reason),
        }
    }

    /// Where the task goes and how to log in there: a configured target with its credentials,
    /// or a trusted registry with a password this registry signs for its root.
    fn destination(
        &self,
        task: &ReplicationTask,
        name: &RepoName,
    ) -> std::result::Result<Destination, Outcome> {
        if !task.target.is_empty() {
            let Some(target) = self.targets.get(&task.target) else {
                return Err(Outcome::Fail(
                    REFUSED,
                    format!(
                        "{} is no longer a configured target ([[replication.targets]])",
                        task.target
                    ),
                ));
            };
            return Ok(Destination::new(
                self.http.clone(),
                &target.url,
                target.credentials.clone(),
                name.as_str(),
            ));
        }
        let Some(registry) = self
            .access
            .trusted_registries()
            .config_in(&task.registry_id, &task.region)
            .cloned()
        else {
            return Err(Outcome::Fail(
                REFUSED,
                format!(
                    "{} in {} is no longer a registry this one trusts ([federation])",
                    task.registry_id, task.region
                ),
            ));
        };
        let password = match self.access.replication_password(&task.registry_id) {
            Ok((password, _)) => password,
            Err(e) => {
                return Err(Outcome::Retry(format!(
                    "cannot sign a replication password: {e}"
                )))
            }
        };
        Ok(Destination::new(
            self.http.clone(),
            &registry.url,
            Some(("AWS".to_owned(), password)),
            name.as_str(),
        ))
    }

    /// Sends the manifest `digest` of `name` and everything it needs, unless the destination
    /// has it already; then points `tag` at it (one PUT by tag when the manifest is new there).
    async fn send_manifest(
        &self,
        destination: &Destination,
        name: &RepoName,
        digest: &Digest,
        depth: u32,
        tag: Option<&str>,
    ) -> std::result::Result<(), SendError> {
        let present = destination.has_manifest(digest).await?;
        if present && tag.is_none() {
            return Ok(());
        }
        let stored = self
            .registry
            .manifests()
            .manifest(name, &Reference::Digest(digest.clone()), false)
            .await
            .map_err(|e| source_error(name, digest, e))?;
        let limits = self.registry.limits();
        let parsed = manifest::parse(
            &stored.content,
            Some(&stored.media_type),
            limits.max_manifest_descriptors,
        )
        .map_err(|e| SendError::Refused(format!("{name}@{digest} does not parse: {e}")))?;
        match parsed.kind {
            _ if present => {}
            ManifestKind::Index if depth < limits.max_index_depth => {
                for child in &parsed.references {
                    Box::pin(self.send_manifest(destination, name, &child.digest, depth + 1, None))
                        .await?;
                }
            }
            ManifestKind::Index => {
                return Err(SendError::Refused(format!(
                    "{name}@{digest} nests indexes deeper than {}",
                    limits.max_index_depth
                )))
            }
            ManifestKind::Image => {
                let blobs = parsed
                    .config
                    .iter()
                    .chain(parsed.references.iter().filter(|l| !l.is_foreign()));
                for blob in blobs {
                    self.send_blob(destination, name, &blob.digest).await?;
                }
            }
        }
        let reference = tag.map_or_else(|| digest.to_string(), str::to_owned);
        destination
            .put_manifest(&reference, &stored.media_type, stored.content)
            .await
    }

    async fn send_blob(
        &self,
        destination: &Destination,
        name: &RepoName,
        digest: &Digest,
    ) -> std::result::Result<(), SendError> {
        if destination.has_blob(digest).await? {
            return Ok(());
        }
        let Some(location) = destination.mount_or_start(digest).await? else {
            self.mounted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(repository = %name, %digest, "blob mounted at the destination, not sent");
            return Ok(());
        };
        let (size, stream) = self
            .registry
            .blobs()
            .blob_stream(name, digest)
            .await
            .map_err(|e| source_error(name, digest, e))?;
        destination.upload(&location, digest, size, stream).await
    }

    /// `tag` if it still names the image `digest` here; `None` when it was deleted or moved
    /// since (its own task, if any, carries it on).
    async fn tag_still_names(
        &self,
        name: &RepoName,
        tag: &str,
        digest: &Digest,
    ) -> std::result::Result<Option<String>, SendError> {
        let Ok(tag_ref) = crate::oci::Tag::parse(tag) else {
            return Err(SendError::Refused(format!("invalid tag {tag:?}")));
        };
        match self
            .registry
            .manifests()
            .manifest(name, &Reference::Tag(tag_ref), false)
            .await
        {
            Ok(current) if current.digest == digest.to_string() => Ok(Some(tag.to_owned())),
            Ok(_) | Err(Error::ManifestUnknown(_)) | Err(Error::NameUnknown(_)) => Ok(None),
            Err(e) => Err(SendError::Unavailable(format!("reading {name}:{tag}: {e}"))),
        }
    }

    /// Deletes the tag (or the manifest, when `tag` is empty) at the destination, unless it is
    /// here again: a later push of the same tag or image wins, whatever order tasks run in.
    async fn send_delete(
        &self,
        destination: &Destination,
        name: &RepoName,
        digest: &Digest,
        tag: &str,
    ) -> std::result::Result<(), SendError> {
        let reference = if tag.is_empty() {
            Reference::Digest(digest.clone())
        } else {
            match crate::oci::Tag::parse(tag) {
                Ok(tag) => Reference::Tag(tag),
                Err(_) => return Err(SendError::Refused(format!("invalid tag {tag:?}"))),
            }
        };
        match self
            .registry
            .manifests()
            .manifest(name, &reference, false)
            .await
        {
            Ok(_) => return Ok(()),
            Err(Error::ManifestUnknown(_)) | Err(Error::NameUnknown(_)) => {}
            Err(e) => {
                return Err(SendError::Unavailable(format!(
                    "reading {name}:{reference}: {e}"
                )))
            }
        }
        destination.delete_manifest(&reference.to_string()).await
    }

    /// How many blobs were mounted at destinations instead of sent.
    pub fn mounted(&self) -> u64 {
        self.mounted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `{"username": "...", "password": "..."}` from a file.
fn read_credentials(path: &str) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("expected {{\"username\", \"password\"}}: {e}"))?;
    match (value["username"].as_str(), value["password"].as_str()) {
        (Some(user), Some(password)) => Ok((user.to_owned(), password.to_owned())),
        _ => anyhow::bail!("expected {{\"username\", \"password\"}} strings"),
    }
}

/// A failure reading the image here: gone (deleted since the push), or a fault to retry.
fn source_error(name: &RepoName, digest: &Digest, e: Error) -> SendError {
    match e {
        Error::ManifestUnknown(_) | Error::BlobUnknown(_) | Error::NameUnknown(_) => {
            SendError::Gone(format!(
                "{name}@{digest} was deleted here before it was replicated ({e})"
            ))
        }
        other => SendError::Unavailable(format!("reading {name}@{digest} here: {other}")),
    }
}
