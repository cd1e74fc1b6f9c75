//! Background loops that run beside the server until shutdown: purging stale upload sessions.
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

/// Keeps this replica's metadata cache in step with the others: LISTENs on PostgreSQL for change
/// notices and invalidates what they name. While the channel is down the cache is off, because
/// notices may be missed; it comes back (empty) once listening again.
pub async fn listen_for_changes(registry: Arc<Registry>, url: String, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(crate::meta::CACHE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = cancel.cancelled() => return,
            result = connected => match result {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cache change listener cannot connect; cache stays off");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(200);
        registry.cache.set_enabled(true);
        tracing::debug!("cache change listener connected");
        loop {
            let notice = tokio::select! {
                _ = cancel.cancelled() => return,
                notice = listener.try_recv() => notice,
            };
            match notice {
                Ok(Some(n)) => match n.payload().parse::<i64>() {
                    Ok(repository) => registry.cache.invalidate(repository),
                    Err(_) => registry.cache.invalidate_all(),
                },
                Ok(None) | Err(_) => {
                    registry.cache.set_enabled(false);
                    tracing::warn!(
                        "cache change listener lost its connection; cache off until it is back"
                    );
                    break;
                }
            }
        }
    }
}
