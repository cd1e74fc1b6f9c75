//! This process among the replicas that share one database: leases for the passes only one
//! replica may run at a time, the heartbeat that keeps them, the maintenance epoch that tells
//! every replica's metadata cache to drop what it holds, and closing the database at exit.

use std::time::Duration;

use super::Registry;
use crate::error::Result;
use crate::meta::LeaseHolder;

impl Registry {
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
        self.cache.enabled()
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
        self.cache.invalidate_all()
    }

    /// Drops what this process caches about one repository.
    pub fn forget_cached_repository(&self, repository: i64) {
        self.cache.invalidate(repository)
    }
}
