//! Background loops that run beside the server until shutdown: purging stale upload sessions,
//! dropping the metadata cache when another process repaired the database, reloading the
//! token signing keys, running lifecycle policies and writing recorded pull times.
//! Single passes take a lease in the metadata database first, so among replicas one runs each
//! pass, and another takes over when that one dies.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::Registry;

/// Purges upload sessions idle for longer than `max_age`, every `interval`, until cancelled.
pub async fn purge_uploads(
    registry: Arc<Registry>,
    max_age: Duration,
    interval: Duration,
    holder: String,
    cancel: CancellationToken,
) {
    loop {
        // The lease outlives one interval so its holder keeps it from one pass to the next.
        match registry
            .meta
            .try_lease("upload-purge", &holder, interval * 2)
            .await
        {
            Ok(true) => match registry.purge_stale_uploads(max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged stale upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload purge failed; will retry"),
            },
            Ok(false) => tracing::debug!("another replica holds the upload-purge lease"),
            Err(e) => tracing::warn!(error = %e, "cannot take the upload-purge lease; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Runs a garbage collection pass every `interval` while this replica holds the `gc` lease, so
/// one replica runs each pass (on PostgreSQL, several could: rows are taken `SKIP LOCKED`).
pub async fn collect_garbage(
    registry: Arc<Registry>,
    interval: Duration,
    holder: String,
    cancel: CancellationToken,
) {
    // Held across passes by its holder; taken over when that replica stops renewing it.
    let ttl = (interval * 2).max(Duration::from_secs(30));
    loop {
        match registry.meta.try_lease("gc", &holder, ttl).await {
            Ok(true) => {
                if let Err(e) = registry.gc_pass().await {
                    tracing::warn!(error = %e, "garbage collection pass failed; will retry");
                }
            }
            Ok(false) => tracing::debug!("another replica holds the gc lease"),
            Err(e) => tracing::warn!(error = %e, "cannot take the gc lease; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Polls the maintenance epoch every `interval` and drops the in-process metadata cache when a
/// `berth fsck --repair` in another process changed what it holds.
pub async fn watch_maintenance(
    registry: Arc<Registry>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut seen: Option<i64> = None;
    loop {
        match registry.meta.maintenance_epoch().await {
            Ok(epoch) => {
                if seen.is_some_and(|s| s != epoch) {
                    tracing::info!(
                        "the database was repaired by another process; metadata cache dropped"
                    );
                    registry.cache.invalidate_all();
                }
                seen = Some(epoch);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the maintenance epoch"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Re-reads the token signing keys every `interval`, so a rotation on another replica reaches
/// this one (tokens signed with a key not yet loaded also trigger a reload).
pub async fn reload_signing_keys(
    access: Arc<crate::access::Access>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = access.reload_keys().await {
            tracing::warn!(error = %e, "cannot reload token signing keys; will retry");
        }
    }
}

/// Runs every repository's lifecycle policy every `interval`, on the replica holding the
/// `lifecycle` lease, until cancelled.
pub async fn run_lifecycle(
    registry: Arc<Registry>,
    interval: Duration,
    holder: String,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match registry
            .meta
            .try_lease("lifecycle", &holder, interval * 2)
            .await
        {
            Ok(true) => match registry.lifecycle_run_all().await {
                Ok((runs, _failed)) => {
                    let expired: usize = runs.iter().map(|r| r.expired.len()).sum();
                    if expired > 0 {
                        tracing::info!(
                            expired,
                            repositories = runs.len(),
                            "lifecycle pass expired images"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lifecycle pass failed; will retry"),
            },
            Ok(false) => tracing::debug!("another replica holds the lifecycle lease"),
            Err(e) => tracing::warn!(error = %e, "cannot take the lifecycle lease; will retry"),
        }
    }
}

/// Holds pull-through rules to their quotas every `interval`, on the replica holding the
/// `pull-through-quota` lease, until cancelled.
pub async fn enforce_pull_through_quotas(
    registry: Arc<Registry>,
    pull_through: Arc<crate::proxy::PullThrough>,
    interval: Duration,
    holder: String,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match registry
            .meta
            .try_lease("pull-through-quota", &holder, interval * 2)
            .await
        {
            Ok(true) => {
                if let Err(e) = pull_through.enforce_quotas().await {
                    tracing::warn!(error = %e, "pull-through quota pass failed; will retry");
                }
            }
            Ok(false) => tracing::debug!("another replica holds the pull-through-quota lease"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the pull-through-quota lease; will retry")
            }
        }
    }
}

/// Writes recorded pulls every `interval`, and once more when cancelled (shutdown).
pub async fn flush_pulls(registry: Arc<Registry>, interval: Duration, cancel: CancellationToken) {
    loop {
        let stop = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tokio::time::sleep(interval) => false,
        };
        if let Err(e) = registry.flush_pulls().await {
            tracing::warn!(error = %e, "cannot record pull times; will retry");
        }
        if stop {
            return;
        }
    }
}

/// Runs queued image scans, `concurrency` at a time, until cancelled. Jobs are taken one per
/// transaction from the database (replicas skip each other's rows), so workers on several
/// replicas share the queue and none runs a job another is running.
pub async fn run_scans(
    registry: Arc<Registry>,
    access: Arc<crate::access::Access>,
    scanner: Arc<crate::service::Scanner>,
    cancel: CancellationToken,
) {
    let idle = Duration::from_millis(scanner.config.poll_interval_millis.max(10));
    let workers = (0..scanner.config.concurrency.max(1)).map(|_| {
        let (registry, access, scanner, cancel) = (
            registry.clone(),
            access.clone(),
            scanner.clone(),
            cancel.clone(),
        );
        async move {
            loop {
                // Valid for one scan of one image: the child's timeout and a margin.
                let ttl = Duration::from_secs(scanner.config.timeout_secs.max(1) + 60);
                let credential = |job: &crate::meta::ScanJob| {
                    let grant = crate::auth::token::ScanGrant {
                        repository: job.repository.clone(),
                        digest: job.digest.clone(),
                    };
                    Ok(crate::service::Credential {
                        username: crate::access::ECR_USERNAME.to_owned(),
                        password: access.scan_password(grant, ttl)?,
                    })
                };
                let busy = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = registry.scan_next(&scanner, credential) => match r {
                        Ok(busy) => busy,
                        Err(e) => {
                            tracing::warn!(error = %e, "scan worker failed; will retry");
                            false
                        }
                    },
                };
                if !busy {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(idle) => {}
                    }
                }
            }
        }
    });
    futures::future::join_all(workers).await;
}
