//! Background loops that run beside the server until shutdown: purging stale upload sessions,
//! dropping the metadata cache when another process repaired the database, reloading the
//! token signing keys, running lifecycle policies, writing recorded pull times and reading the
//! registry's counts for the metrics.
//! Single passes take a lease in the metadata database first, so among replicas one runs each
//! pass; a heartbeat says the holder lives, and another replica takes over within a minute when
//! it dies (at once on the same host). A graceful shutdown releases the leases (see `app`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::meta::{LeaseHolder, HEARTBEAT_INTERVAL};
use crate::service::Registry;

/// How often a replica that does not hold a pass's lease asks for it again: with the
/// heartbeat timeout, a lease whose holder died is taken over within a minute.
const LEASE_RETRY: Duration = Duration::from_secs(15);

/// Runs `pass` every `interval` while `holder` holds the lease `name` (renewed for `ttl` at each
/// pass), until cancelled; the first attempt comes at once or, with `wait_first`, after one
/// interval. A replica without the lease asks again every [`LEASE_RETRY`] (or `interval`, if
/// shorter), so it takes over soon after the holder stops or dies.
#[allow(clippy::too_many_arguments)]
async fn leased_pass<F, Fut>(
    registry: &Registry,
    name: &'static str,
    holder: &LeaseHolder,
    interval: Duration,
    ttl: Duration,
    wait_first: bool,
    cancel: &CancellationToken,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut wait = if wait_first { interval } else { Duration::ZERO };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = match registry.replicas().try_lease(name, holder, ttl).await {
            Ok(true) => {
                let started = std::time::Instant::now();
                pass().await;
                registry.metrics().pass(name, started.elapsed());
                interval
            }
            Ok(false) => {
                tracing::debug!(lease = name, "another replica holds the lease");
                interval.min(LEASE_RETRY)
            }
            Err(e) => {
                // A database that refuses writes is reported once, by the heartbeat.
                if e.is_write_refusal() {
                    tracing::debug!(lease = name, error = %e, "cannot take the lease; will retry");
                } else {
                    tracing::warn!(lease = name, error = %e, "cannot take the lease; will retry");
                }
                interval.min(LEASE_RETRY)
            }
        };
    }
}

/// Writes this process's heartbeat every [`HEARTBEAT_INTERVAL`] until cancelled, so other
/// replicas know its leases are held by a live process.
pub async fn heartbeat(registry: Arc<Registry>, holder: LeaseHolder, cancel: CancellationToken) {
    let mut failing = false;
    loop {
        match registry.replicas().heartbeat(&holder).await {
            Ok(()) if failing => {
                tracing::info!("heartbeat written again");
                failing = false;
            }
            Ok(()) => {}
            // Said once, not every beat (a full disk can last).
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot write this process's heartbeat; will retry");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "cannot write this process's heartbeat"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
        }
    }
}

/// Purges upload sessions idle for longer than `max_age`, every `interval`, until cancelled.
pub async fn purge_uploads(
    registry: Arc<Registry>,
    max_age: Duration,
    interval: Duration,
    holder: LeaseHolder,
    cancel: CancellationToken,
) {
    // The lease outlives one interval so its holder keeps it from one pass to the next.
    let registry = &registry;
    leased_pass(
        registry,
        "upload-purge",
        &holder,
        interval,
        interval * 2,
        false,
        &cancel,
        || async move {
            match registry.uploads().purge_stale_uploads(max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged stale upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload purge failed; will retry"),
            }
        },
    )
    .await
}

/// Runs a garbage collection pass every `interval` while this replica holds the `gc` lease, so
/// one replica runs each pass (on PostgreSQL, several could: rows are taken `SKIP LOCKED`).
pub async fn collect_garbage(
    registry: Arc<Registry>,
    interval: Duration,
    holder: LeaseHolder,
    cancel: CancellationToken,
) {
    // Held across passes by its holder; taken over when that replica stops renewing it.
    let ttl = (interval * 2).max(Duration::from_secs(30));
    let registry = &registry;
    leased_pass(
        registry,
        "gc",
        &holder,
        interval,
        ttl,
        false,
        &cancel,
        || async move {
            if let Err(e) = registry.gc().gc_pass().await {
                tracing::warn!(error = %e, "garbage collection pass failed; will retry");
            }
        },
    )
    .await
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
        match registry.replicas().maintenance_epoch().await {
            Ok(epoch) => {
                if seen.is_some_and(|s| s != epoch) {
                    tracing::info!(
                        "the database was repaired by another process; metadata cache dropped"
                    );
                    registry.replicas().forget_cached_metadata();
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
    holder: LeaseHolder,
    cancel: CancellationToken,
) {
    let registry = &registry;
    leased_pass(
        registry,
        "lifecycle",
        &holder,
        interval,
        interval * 2,
        true,
        &cancel,
        || async move {
            match registry.lifecycle().lifecycle_run_all().await {
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
            }
        },
    )
    .await
}

/// Holds pull-through rules to their quotas every `interval`, on the replica holding the
/// `pull-through-quota` lease, until cancelled.
pub async fn enforce_pull_through_quotas(
    registry: Arc<Registry>,
    pull_through: Arc<crate::pull_through::PullThrough>,
    interval: Duration,
    holder: LeaseHolder,
    cancel: CancellationToken,
) {
    let pull_through = &pull_through;
    leased_pass(
        &registry,
        "pull-through-quota",
        &holder,
        interval,
        interval * 2,
        true,
        &cancel,
        || async move {
            if let Err(e) = pull_through.enforce_quotas().await {
                tracing::warn!(error = %e, "pull-through quota pass failed; will retry");
            }
        },
    )
    .await
}

/// Reads the trusted registries' JWKS now and every `interval` after, until cancelled.
pub async fn refresh_trusted_keys(
    access: Arc<crate::access::Access>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        access.trusted_registries().refresh().await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
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
        if let Err(e) = registry.lifecycle().flush_pulls().await {
            tracing::warn!(error = %e, "cannot record pull times; will retry");
        }
        if stop {
            return;
        }
    }
}

/// Deletes ended console sessions every `interval` until cancelled. Every replica may run it
/// (one idempotent DELETE over an index); ended sessions are refused whether or not they were
/// pruned yet, so this only keeps the table small.
pub async fn prune_console_sessions(
    console: Arc<crate::access::ConsoleSignIns>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match console.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "pruned ended console sessions"),
            Err(e) => tracing::warn!(error = %e, "cannot prune console sessions; will retry"),
        }
    }
}

/// How often the registry-wide gauges (blob and manifest counts, queue depths) are read.
pub const METRICS_REFRESH: Duration = Duration::from_secs(30);

/// Reads the registry-wide counts and queue depths into the metrics now and every `interval`
/// after, until cancelled. Every replica reads them for its own `/metrics` (no lease: each
/// answers its scrapes); the queries are aggregates over indexes or one table each.
pub async fn refresh_metrics(
    registry: Arc<Registry>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut failing = false;
    loop {
        let started = std::time::Instant::now();
        match registry.refresh_metrics().await {
            Ok(()) => failing = false,
            // Said once per outage, not every interval (the heartbeat reports the database).
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot read the registry's counts for the metrics; will retry");
                failing = true;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the registry's counts for the metrics")
            }
        }
        registry
            .metrics()
            .pass("metrics-refresh", started.elapsed());
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
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
                    r = registry.scans().scan_next(&scanner, credential) => match r {
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
