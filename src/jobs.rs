//! Background loops that run beside the server until shutdown: purging stale upload sessions.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::Registry;

/// Purges upload sessions idle for longer than `max_age`, every `interval`, until cancelled.
pub async fn purge_uploads(
    registry: Arc<Registry>,
    max_age: Duration,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        match registry.purge_stale_uploads(max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged stale upload sessions"),
            Err(e) => tracing::warn!(error = %e, "upload purge failed; will retry"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
