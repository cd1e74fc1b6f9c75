//! This process among the replicas that share one database: leases for the passes only one
//! replica may run at a time, the heartbeat that keeps them, the maintenance epoch that tells
//! every replica's metadata cache to drop what it holds, and closing the database at exit.

use std::time::Duration;

use super::core::Core;
use crate::error::Result;
use crate::meta::{LeaseHolder, Leases, Lifecycle, Meta};

/// What the readiness check found, beyond reads working.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    /// Why writes fail (one message per part that refuses them); empty when they work.
    pub writes_degraded: Vec<String>,
}

/// How long a readiness write probe may take before writes count as degraded.
const WRITE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// This process among the replicas: leases, heartbeat, readiness, the maintenance epoch, and
/// closing the database.
#[derive(Clone)]
pub struct ReplicaService {
    core: Core,
    /// The database itself: readiness and closing.
    meta: Meta,
    leases: Leases,
    lifecycle: Lifecycle,
}

impl ReplicaService {
    pub(super) fn new(core: Core, meta: Meta) -> ReplicaService {
        ReplicaService {
            core,
            leases: meta.leases(),
            lifecycle: meta.lifecycle(),
            meta,
        }
    }

    /// Readiness: the database and the blob store answer reads (else the error), and whether
    /// each takes a write (a refusal is reported as degraded writes: reads still work). The
    /// writes are probes named after `holder`: its heartbeat, and a small object in storage.
    pub async fn readiness(&self, holder: &LeaseHolder) -> Result<Readiness> {
        self.meta.ping().await?;
        self.core.blobs.ping().await?;
        let probe = |what: &'static str, result: Result<Result<()>, _>| match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: {what} refuses writes");
                Some(e.message())
            }
            Err(_) => Some(format!(
                "the {what} did not accept a write within {} s",
                WRITE_PROBE_TIMEOUT.as_secs()
            )),
        };
        let (database, storage) = tokio::join!(
            tokio::time::timeout(WRITE_PROBE_TIMEOUT, self.leases.heartbeat(holder)),
            tokio::time::timeout(WRITE_PROBE_TIMEOUT, self.core.blobs.probe_write(&holder.id)),
        );
        let writes_degraded = [
            probe("metadata database", database),
            probe("blob storage", storage),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(Readiness { writes_degraded })
    }

    /// Takes (or renews) lease `name` for `ttl`; false if a live replica holds it.
    pub async fn try_lease(&self, name: &str, holder: &LeaseHolder, ttl: Duration) -> Result<bool> {
        self.leases.try_lease(name, holder, ttl).await
    }

    /// Records that `holder` is alive, so its leases stay its own.
    pub async fn heartbeat(&self, holder: &LeaseHolder) -> Result<()> {
        self.leases.heartbeat(holder).await
    }

    /// Gives up every lease `holder` has, so the next replica runs the passes at once.
    pub async fn release_leases(&self, holder: &LeaseHolder) -> Result<()> {
        self.leases.release_leases(holder).await
    }

    /// Closes the database connections (at exit).
    pub async fn close(&self) {
        self.meta.close().await
    }

    /// Whether hot metadata is cached in this process (see `metadata_cache`).
    pub fn caches_metadata(&self) -> bool {
        self.core.cache.enabled()
    }

    /// The database's maintenance epoch: it moves when another process repaired or rewrote
    /// what this one may have cached.
    pub async fn maintenance_epoch(&self) -> Result<i64> {
        self.meta.maintenance_epoch().await
    }

    /// Moves the maintenance epoch, for processes that changed the database behind a running
    /// server's back (`berth fsck --repair`, `berth lifecycle run`).
    pub async fn bump_maintenance_epoch(&self) -> Result<()> {
        self.lifecycle.bump_maintenance_epoch().await
    }

    /// Drops every cached repository, tag and blob row of this process.
    pub fn forget_cached_metadata(&self) {
        self.core.cache.invalidate_all()
    }

    /// Drops what this process caches about one repository.
    pub fn forget_cached_repository(&self, repository: i64) {
        self.core.cache.invalidate(repository)
    }
}
