//! Wires configuration, metadata, storage and services into one application, builds the router,
//! spawns background jobs, and serves it (see [`crate::server`]), with the metrics listener when
//! one is configured, until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::config::Config;
use crate::meta::Meta;
use crate::metrics::Metrics;
use crate::secrets::Keyring;
use crate::service::{Limits, Registry};
use crate::storage::BlobStore;

pub use crate::http::{App, AppState};

/// Creates the data dir (private to Berth's user), loads the secrets key, connects to the
/// metadata database, applies the migrations and encrypts any secret an older Berth stored in
/// plaintext: everything that must happen before the database is used.
pub async fn open_meta(config: &Config, max_connections: u32) -> anyhow::Result<Meta> {
    crate::secrets::create_private_dir(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    let password_file = config.data_dir.join(crate::access::ADMIN_PASSWORD_FILE);
    match crate::secrets::restrict_permissions(&password_file, 0o600) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!("{}: {e}", password_file.display())
        }
        _ => {}
    }
    let keyring = Keyring::for_config(config).map_err(|e| anyhow::anyhow!("secrets key: {e}"))?;
    let mut meta = Meta::connect(
        &config.database_url(),
        max_connections,
        Duration::from_secs(config.database.acquire_timeout_secs),
    )
    .await
    .map_err(|e| anyhow::anyhow!("metadata database: {e}"))?;
    meta.set_secrets(Arc::new(keyring));
    let report = meta
        .identity()
        .seal_secrets(false)
        .await
        .map_err(|e| anyhow::anyhow!("secrets in the database: {e}"))?;
    if report.encrypted > 0 {
        tracing::info!(
            count = report.encrypted,
            "encrypted the secrets an older Berth stored in plaintext"
        );
    }
    Ok(meta)
}

/// Opens the stores and returns the state and router.
pub async fn build(config: Config) -> anyhow::Result<(AppState, Router)> {
    // One TLS crypto provider for the whole process (server TLS and the S3 client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut meta = open_meta(&config, config.database.max_connections).await?;
    meta.set_gc_grace(Duration::from_secs(config.gc.grace_period_secs));
    let metrics = Metrics::new();
    meta.set_metrics(metrics.clone());
    metrics.on_scrape({
        let meta = meta.clone();
        move |metrics| {
            let (idle, in_use, max) = meta.pool_state();
            metrics.set_pool(idle, in_use, max);
        }
    });
    let blobs = BlobStore::open(&config.storage_url(), &config.storage)
        .map_err(|e| anyhow::anyhow!("blob storage: {e}"))?
        .with_metrics(metrics);
    let access = Arc::new(
        Access::open(meta.clone(), &config)
            .await
            .map_err(|e| anyhow::anyhow!("token signing keys: {e}"))?,
    );
    let registry = Arc::new(Registry::new(
        meta.clone(),
        blobs,
        Limits::from_config(&config),
        config
            .replication
            .targets
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        !config.events.nats_url.is_empty(),
    ));
    let audit = crate::access::AuditLog::new(meta.audit());
    let identities = Arc::new(crate::access::Identities::new(
        meta.identity(),
        access.clone(),
    ));
    identities
        .bootstrap_admin(&config)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap admin: {e}"))?;
    let console = Arc::new(crate::access::ConsoleSignIns::new(
        meta.console_sessions(),
        access.clone(),
        Duration::from_secs(config.console.session_ttl_secs),
        Duration::from_secs(config.console.idle_timeout_secs),
    ));
    let replica_id = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let pull_through = Arc::new(
        crate::pull_through::PullThrough::new(
            registry.clone(),
            meta,
            access.clone(),
            &config,
            &replica_id,
        )
        .map_err(|e| anyhow::anyhow!("pull-through cache: {e}"))?,
    );
    let replicator = Arc::new(
        crate::replication::Replicator::new(
            registry.clone(),
            access.clone(),
            &config.replication,
            &replica_id,
        )
        .map_err(|e| anyhow::anyhow!("replication: {e}"))?,
    );
    let state = Arc::new(App {
        config,
        access,
        identities,
        audit,
        console,
        registry,
        pull_through,
        replicator,
        holder: crate::meta::LeaseHolder::this_process(&replica_id),
        replica_id,
    });
    let router = crate::http::router(state.clone());
    Ok((state, router))
}

/// Starts background jobs; they stop when `cancel` fires.
pub fn spawn_jobs(state: &AppState, cancel: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let uploads = &state.config.uploads;
    let mut jobs = vec![
        tokio::spawn(crate::jobs::heartbeat(
            state.registry.clone(),
            state.holder.clone(),
            cancel.clone(),
        )),
        tokio::spawn(crate::jobs::purge_uploads(
            state.registry.clone(),
            Duration::from_secs(uploads.purge_after_secs),
            Duration::from_secs(uploads.purge_interval_secs.max(1)),
            state.holder.clone(),
            cancel.clone(),
        )),
    ];
    if let Some(interval) = state.config.gc.interval() {
        state.registry.gc().set_interval(interval);
        jobs.push(tokio::spawn(crate::jobs::collect_garbage(
            state.registry.clone(),
            interval,
            state.holder.clone(),
            cancel.clone(),
        )));
    }
    let lifecycle = &state.config.lifecycle;
    if lifecycle.interval_secs > 0 {
        jobs.push(tokio::spawn(crate::jobs::run_lifecycle(
            state.registry.clone(),
            Duration::from_secs(lifecycle.interval_secs),
            state.holder.clone(),
            cancel.clone(),
        )));
    }
    let quota_interval = state.config.pull_through.quota_interval_secs;
    if quota_interval > 0 {
        jobs.push(tokio::spawn(crate::jobs::enforce_pull_through_quotas(
            state.registry.clone(),
            state.pull_through.clone(),
            Duration::from_secs(quota_interval),
            state.holder.clone(),
            cancel.clone(),
        )));
    }
    if !state.access.trusted_registries().is_empty() {
        jobs.push(tokio::spawn(crate::jobs::refresh_trusted_keys(
            state.access.clone(),
            Duration::from_secs(state.config.federation.jwks_refresh_secs),
            cancel.clone(),
        )));
    }
    jobs.push(tokio::spawn(state.replicator.clone().run(cancel.clone())));
    jobs.push(tokio::spawn(
        Arc::new(crate::events::EventWorker::new(
            state.registry.clone(),
            &state.config,
            state.holder.clone(),
        ))
        .run(cancel.clone()),
    ));
    jobs.push(tokio::spawn(crate::jobs::flush_pulls(
        state.registry.clone(),
        Duration::from_secs(lifecycle.pull_flush_secs.max(1)),
        cancel.clone(),
    )));
    if !state.config.metrics.listen.is_empty() {
        jobs.push(tokio::spawn(crate::jobs::refresh_metrics(
            state.registry.clone(),
            crate::jobs::METRICS_REFRESH,
            cancel.clone(),
        )));
    }
    if state.config.console.enabled {
        jobs.push(tokio::spawn(crate::jobs::prune_console_sessions(
            state.console.clone(),
            Duration::from_secs(600),
            cancel.clone(),
        )));
    }
    jobs.push(tokio::spawn(crate::jobs::reload_signing_keys(
        state.access.clone(),
        Duration::from_secs(10),
        cancel.clone(),
    )));
    let trivy = &state.config.trivy;
    if trivy.concurrency > 0 {
        match state.config.listen_addr() {
            Ok(addr) => {
                let ip = match addr.ip() {
                    std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                    }
                    std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                        std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
                    }
                    ip => ip,
                };
                let scanner = crate::service::Scanner {
                    config: trivy.clone(),
                    cache_dir: state.config.trivy_cache_dir(),
                    registry: std::net::SocketAddr::new(ip, addr.port()).to_string(),
                    tls: state.config.tls_cert.is_some(),
                };
                jobs.push(tokio::spawn(crate::jobs::run_scans(
                    state.registry.clone(),
                    state.access.clone(),
                    Arc::new(scanner),
                    cancel.clone(),
                )));
            }
            Err(e) => tracing::warn!(error = %e, "scan workers not started"),
        }
    }
    if state.registry.replicas().caches_metadata() {
        jobs.push(tokio::spawn(crate::jobs::watch_maintenance(
            state.registry.clone(),
            Duration::from_secs(1),
            cancel,
        )));
    }
    jobs
}

/// Connections the metrics listener serves at once: scrapers are few.
const METRICS_CONNECTIONS: usize = 16;

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish (up to the grace period).
/// The address is bound first: a busy port fails before anything else happens, and
/// "listening" is logged only once the socket is ours.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls_config(cert, key)?),
        _ => None,
    };
    let resolver = crate::server::client_resolver(&config.server)?;
    let mut limits = crate::server::Limits::from_config(&config.server);
    let listener = crate::server::bind(addr).await?;
    let metrics_listener = match config.metrics.listen_addr()? {
        Some(addr) => Some((crate::server::bind(addr).await?, addr)),
        None => None,
    };
    limits.max_connections = crate::server::connections_within_fd_limit(limits.max_connections);
    let (state, router) = build(config).await?;
    let cancel = CancellationToken::new();
    let jobs = spawn_jobs(&state, cancel.clone());

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            shutdown.cancel();
        }
    });
    let metrics_server = metrics_listener.map(|(listener, addr)| {
        // The same connection bounds as the registry's, for a handful of scrapers.
        let limits = crate::server::Limits {
            max_connections: METRICS_CONNECTIONS,
            ..limits.clone()
        };
        let router = crate::http::exposition::router(state.registry.metrics().clone());
        tracing::info!(%addr, "metrics listening (http, GET /metrics)");
        tokio::spawn(crate::server::run(
            listener,
            None,
            router,
            resolver.clone(),
            limits,
            shutdown.clone(),
        ))
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, max_connections = limits.max_connections, "berth listening ({scheme})");
    crate::server::run(listener, tls, router, resolver, limits, shutdown).await;
    if let Some(server) = metrics_server {
        let _ = server.await;
    }

    cancel.cancel();
    for job in jobs {
        let _ = job.await;
    }
    // The next process (a restart, another replica) runs the single passes at once.
    if let Err(e) = state
        .registry
        .replicas()
        .release_leases(&state.holder)
        .await
    {
        tracing::warn!(error = %e, "cannot release this process's leases");
    }
    state.registry.replicas().close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
