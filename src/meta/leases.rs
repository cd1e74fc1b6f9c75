//! Leases on single background passes (upload purge, GC, lifecycle, pull-through quotas) and
//! the heartbeats that tell whether their holders still run.
//!
//! A lease is held by one server process (a [`LeaseHolder`]) until it expires. A holder renews
//! it at each pass; between passes, its heartbeat (a row in `replicas`, written every
//! [`HEARTBEAT_INTERVAL`]) says it is alive. Another process may take the lease when it has
//! expired, when the holder's heartbeat is older than [`HEARTBEAT_TIMEOUT`] (or missing: it
//! released its leases at shutdown, or never beat), or at once when the holder ran on the same
//! host and its process is gone. A process releases its leases when it shuts down gracefully.

use super::Leases;
use std::time::Duration;

use sqlx::Row;

use super::now_millis;
use crate::error::Result;

/// How often a running server writes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a heartbeat may be silent before the holder's leases may be taken: four missed
/// beats, so a busy process keeps them.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(40);

/// Heartbeat rows older than this are deleted (processes that died without releasing).
const FORGET_REPLICAS_AFTER: Duration = Duration::from_secs(86_400);

/// A server process as a lease holder: its unique id (new on every start), the host it runs on
/// and its process id there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub id: String,
    /// Names the host and PID namespace (so PIDs can be compared); empty when unknown, and then
    /// only heartbeats and expiry tell that this process is gone.
    pub host: String,
    pub pid: i64,
}

impl LeaseHolder {
    /// This process, named `id`.
    pub fn this_process(id: &str) -> Self {
        LeaseHolder {
            id: id.to_owned(),
            host: host_identity().unwrap_or_default(),
            pid: i64::from(std::process::id()),
        }
    }

    /// Whether a holder that ran as `pid` on `host` is certainly gone: it ran on this host (and
    /// PID namespace) and no process has its PID any more, or this process now has it.
    pub fn outlived(&self, host: &str, pid: i64) -> bool {
        !self.host.is_empty() && host == self.host && (pid == self.pid || !process_exists(pid))
    }
}

/// `hostname/boot id/pid namespace`: equal for two processes only if their PIDs are comparable
/// (same kernel, same boot, same PID namespace; containers on one host differ).
fn host_identity() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `name.len()` bytes into the buffer it is given.
    let hostname = if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0 {
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        String::from_utf8_lossy(&name[..end]).into_owned()
    } else {
        String::new()
    };
    Some(format!(
        "{hostname}/{}/{}",
        boot.trim(),
        namespace.to_string_lossy()
    ))
}

/// Whether a process with this PID exists (signal 0 checks without sending anything).
fn process_exists(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // EPERM: it exists but belongs to someone else.
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

impl Leases {
    /// Writes `holder`'s heartbeat (now), and forgets heartbeats silent for a day. Also the
    /// readiness probe of database writes: it is a real write.
    pub async fn heartbeat(&self, holder: &LeaseHolder) -> Result<()> {
        self.heartbeat_at(holder, now_millis()).await
    }

    /// [`Leases::heartbeat`] at a given time (Unix ms).
    pub async fn heartbeat_at(&self, holder: &LeaseHolder, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&holder.id)
        .bind(&holder.host)
        .bind(holder.pid)
        .bind(now)
        .execute(&self.meta.write)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
            .bind(now.saturating_sub(FORGET_REPLICAS_AFTER.as_millis() as i64))
            .execute(&self.meta.write)
            .await?;
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` until `ttl` from now; false while another
    /// holder that is alive holds it unexpired. Single background passes run only while they
    /// hold one.
    pub async fn try_lease(&self, name: &str, holder: &LeaseHolder, ttl: Duration) -> Result<bool> {
        self.try_lease_at(name, holder, ttl, now_millis()).await
    }

    /// [`Leases::try_lease`] at a given time (Unix ms), so the rules can be checked without waiting.
    pub async fn try_lease_at(
        &self,
        name: &str,
        holder: &LeaseHolder,
        ttl: Duration,
        now: i64,
    ) -> Result<bool> {
        // A holder always has a heartbeat, or others could take its lease at once.
        self.heartbeat_at(holder, now).await?;
        let until = now + ttl.as_millis() as i64;
        let silent_since = now - HEARTBEAT_TIMEOUT.as_millis() as i64;
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.expires_at < $4 OR leases.holder = excluded.holder \
             OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = leases.holder AND r.heartbeat_at >= $5)",
        )
        .bind(name)
        .bind(&holder.id)
        .bind(until)
        .bind(now)
        .bind(silent_since)
        .execute(&self.meta.write)
        .await?
        .rows_affected()
            == 1;
        if taken {
            return Ok(true);
        }
        // Held by a live heartbeat: still ours to take if that process is certainly gone.
        let current = sqlx::query(
            "SELECT l.holder, r.host, r.pid FROM leases l JOIN replicas r ON r.id = l.holder \
             WHERE l.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.meta.read)
        .await?;
        let Some(current) = current else {
            return Ok(false);
        };
        let previous: String = current.try_get("holder")?;
        let host: String = current.try_get("host")?;
        let pid: i64 = current.try_get("pid")?;
        if !holder.outlived(&host, pid) {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE leases SET holder = $1, expires_at = $2 WHERE name = $3 AND holder = $4",
        )
        .bind(&holder.id)
        .bind(until)
        .bind(name)
        .bind(&previous)
        .execute(&self.meta.write)
        .await?;
        if done.rows_affected() == 1 {
            tracing::info!(
                lease = name,
                previous,
                pid,
                "took over a lease whose holder is gone"
            );
        }
        Ok(done.rows_affected() == 1)
    }

    /// Releases every lease `holder` holds and removes its heartbeat (graceful shutdown), so
    /// the next process runs those passes at once.
    pub async fn release_leases(&self, holder: &LeaseHolder) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE holder = $1")
            .bind(&holder.id)
            .execute(&self.meta.write)
            .await?;
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(&holder.id)
            .execute(&self.meta.write)
            .await?;
        Ok(())
    }
}
