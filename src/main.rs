//! The `berth` command: parse flags, load configuration, set up logging, run a subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use berth::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted OCI container registry with ECR's features"
)]
struct Cli {
    /// TOML configuration file; `BERTH_*` env vars and flags override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where the metadata and blobs are: every subcommand works on them. Global, so they are
/// accepted before or after a nested subcommand (`berth gc --data-dir X run`).
#[derive(clap::Args, Clone, Default)]
struct StorageArgs {
    /// Data directory for embedded SQLite and filesystem blobs (default ./berth-data; env BERTH_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Metadata database URL: sqlite://PATH or postgres://... (env BERTH_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Blob storage URL: file:///PATH, s3://BUCKET[/prefix] or memory:// (env BERTH_STORAGE_URL).
    #[arg(long, global = true)]
    storage_url: Option<String>,
}

/// What only the running registry uses (listed after the storage flags in `serve --help`).
#[derive(clap::Args, Clone, Default)]
#[command(next_display_order = 10)]
struct ServeArgs {
    /// Address to listen on (default 0.0.0.0:5000; env BERTH_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// PEM certificate chain for HTTPS (env BERTH_TLS_CERT).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (env BERTH_TLS_KEY).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The trivy binary that scans images: a path or a name on PATH (default trivy; env BERTH_TRIVY_PATH).
    #[arg(long)]
    trivy_path: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Check that the database and blob storage agree; exits 1 when problems are found.
    Fsck {
        /// Fix what was found: forget blobs whose bytes are gone, delete unreferenced objects
        /// older than the grace period, end stale upload sessions.
        #[arg(long)]
        repair: bool,
        /// Objects younger than this many seconds are never treated as unreferenced.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Online garbage collection.
    Gc {
        #[command(subcommand)]
        command: GcCommand,
    },
    /// Lifecycle policies.
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
    },
    /// The key file that encrypts access-key secrets and token signing keys in the database.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored secret with the first key of the secrets key file (put a new key
    /// first, then run this; works while servers run). Afterwards the other keys may be removed.
    Rotate,
    /// Print a new key (one key-file line), or with --out create a key file holding it.
    GenerateKey {
        /// Create this file (mode 0600) holding the new key; an existing file is never replaced.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum GcCommand {
    /// Process every due review now (beside running servers) and print what was reclaimed.
    Run,
}

#[derive(Subcommand)]
enum LifecycleCommand {
    /// Run the saved lifecycle policies now (every repository that has one, or one repository);
    /// works on the database and storage while servers run.
    Run {
        /// Only this repository.
        #[arg(long)]
        repository: Option<String>,
    },
}

fn overrides(storage: &StorageArgs, serve: Option<&ServeArgs>) -> Overrides {
    let serve = serve.cloned().unwrap_or_default();
    Overrides {
        listen: serve.listen,
        data_dir: storage.data_dir.clone(),
        tls_cert: serve.tls_cert,
        tls_key: serve.tls_key,
        database_url: storage.database_url.clone(),
        storage_url: storage.storage_url.clone(),
        trivy_path: serve.trivy_path,
    }
}

/// Runs the consistency check and prints what it found.
async fn fsck(config: Config, repair: bool, grace_secs: u64) -> anyhow::Result<()> {
    use std::time::Duration;
    let stale_after = Duration::from_secs(config.uploads.purge_after_secs);
    let (state, _) = berth::app::build(config).await?;
    let report = state
        .registry
        .gc()
        .fsck(repair, Duration::from_secs(grace_secs), stale_after)
        .await?;
    println!(
        "checked {} blob rows and {} stored objects",
        report.blobs_checked, report.objects_checked
    );
    for (digest, key, repos, manifests) in &report.missing_objects {
        println!("missing object: blob {digest} (key {key}) has no bytes in storage");
        if repair {
            println!("  forgotten; push it again to {}", repos.join(", "));
            for m in manifests {
                println!("  manifest {m} references it and cannot be pulled until then");
            }
        }
    }
    for (digest, expected, found) in &report.size_mismatches {
        println!("size mismatch: blob {digest} should be {expected} bytes, storage has {found}");
    }
    for key in &report.orphan_objects {
        println!(
            "unreferenced object: {key}{}",
            if repair { " (deleted)" } else { "" }
        );
    }
    for id in &report.stale_uploads {
        println!(
            "stale upload session: {id}{}",
            if repair { " (ended)" } else { "" }
        );
    }
    let problems = report.problems();
    println!(
        "fsck: {problems} problem(s){}",
        if repair && problems > 0 {
            " found and repaired"
        } else {
            ""
        }
    );
    state.registry.replicas().close().await;
    if problems > 0 && !repair {
        anyhow::bail!("{problems} problem(s) found; run with --repair to fix them");
    }
    Ok(())
}

/// Runs one garbage collection pass and prints what it reclaimed.
async fn gc_run(config: Config) -> anyhow::Result<()> {
    let grace = config.gc.grace_period_secs;
    let (state, _) = berth::app::build(config).await?;
    let registry = &state.registry;
    let result = registry.gc().gc_pass().await;
    let queue = registry.gc().gc_status().await.map(|status| status.queue);
    registry.replicas().close().await;
    let report = result?;
    println!(
        "gc: deleted {} blob(s), {} byte(s), {} manifest(s); kept {} blob(s) and {} manifest(s) still referenced (grace period {grace} s)",
        report.blobs_deleted,
        report.bytes_deleted,
        report.manifests_deleted,
        report.blobs_kept,
        report.manifests_kept,
    );
    if let Ok(q) = queue {
        println!(
            "gc: queued for later review: {} blob(s), {} manifest(s)",
            q.blob_queue, q.manifest_queue
        );
    }
    if report.storage_errors > 0 {
        anyhow::bail!(
            "{} object(s) could not be deleted from storage; run `berth fsck --repair`",
            report.storage_errors
        );
    }
    Ok(())
}

/// Runs saved lifecycle policies and prints what expired.
async fn lifecycle_run(config: Config, repository: Option<String>) -> anyhow::Result<()> {
    let (state, _) = berth::app::build(config).await?;
    let registry = &state.registry;
    let result = async {
        let (runs, failed) = match &repository {
            Some(name) => {
                let name = berth::oci::RepoName::parse(name)?;
                match registry.lifecycle().lifecycle_run(&name).await? {
                    Some(run) => (vec![run], Vec::new()),
                    None => anyhow::bail!("repository '{name}' has no lifecycle policy"),
                }
            }
            None => registry.lifecycle().lifecycle_run_all().await?,
        };
        let mut total = 0;
        for run in &runs {
            for e in &run.expired {
                println!(
                    "{}: expired {} [{}] (rule {})",
                    run.repository,
                    e.digest,
                    e.tags.join(", "),
                    e.rule_priority
                );
            }
            if run.skipped > 0 {
                println!(
                    "{}: {} image(s) changed during the run; left for the next one",
                    run.repository, run.skipped
                );
            }
            total += run.expired.len();
        }
        if total > 0 {
            // A running single-node server caches tags; tell it to drop them.
            registry.replicas().bump_maintenance_epoch().await?;
        }
        println!(
            "lifecycle: {total} image(s) expired in {} repository(ies)",
            runs.len()
        );
        if !failed.is_empty() {
            anyhow::bail!(
                "the lifecycle run failed in {} repository(ies): {}",
                failed.len(),
                failed.join(", ")
            );
        }
        Ok(())
    }
    .await;
    registry.replicas().close().await;
    result
}

/// Moves every stored secret to the current key and prints where they are.
async fn secrets_rotate(config: Config) -> anyhow::Result<()> {
    let meta = berth::app::open_meta(&config, 1).await?;
    let result = meta.identity().seal_secrets(true).await;
    meta.close().await;
    let report = result?;
    let keyring = berth::secrets::Keyring::for_config(&config)?;
    let current = keyring.current_id();
    println!(
        "secrets: re-encrypted {} stored secret(s) with key {current}",
        report.reencrypted
    );
    for (id, count) in &report.by_key {
        println!("secrets: {count} stored secret(s) use key {id}");
    }
    let others: Vec<&str> = keyring.ids().filter(|id| *id != current).collect();
    if !others.is_empty() {
        println!(
            "secrets: no stored secret uses key(s) {} any more; they may be removed from the key \
             file once every replica runs with key {current} first",
            others.join(", ")
        );
    }
    Ok(())
}

/// Prints a new key, or creates a key file holding one.
fn secrets_generate_key(out: Option<PathBuf>) -> std::process::ExitCode {
    let Some(path) = out else {
        println!("{}", berth::secrets::new_key_line());
        return std::process::ExitCode::SUCCESS;
    };
    match berth::secrets::write_new_key_file(&path) {
        Ok(()) => {
            let id = berth::secrets::Keyring::load(&path)
                .map(|k| k.current_id().to_owned())
                .unwrap_or_default();
            eprintln!("berth: wrote a new key (id {id}) to {}", path.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth: cannot create {}: {e}", path.display());
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let serve = match &cli.command {
        Command::Serve(a) => Some(a),
        Command::Secrets {
            command: SecretsCommand::GenerateKey { out },
        } => return secrets_generate_key(out.clone()),
        _ => None,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides(&cli.storage, serve)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let telemetry = match berth::telemetry::init(&config, runtime.handle().clone()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("berth: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => berth::app::serve(config).await,
            Command::Migrate => {
                // Also encrypts the secrets an older Berth stored in plaintext.
                let meta = berth::app::open_meta(&config, 1).await?;
                meta.close().await;
                println!("migrations applied");
                Ok(())
            }
            Command::Secrets {
                command: SecretsCommand::Rotate,
            } => secrets_rotate(config).await,
            Command::Secrets {
                command: SecretsCommand::GenerateKey { .. },
            } => Ok(()), // handled before the configuration is loaded
            Command::Fsck {
                repair, grace_secs, ..
            } => fsck(config, repair, grace_secs).await,
            Command::Gc {
                command: GcCommand::Run,
            } => gc_run(config).await,
            Command::Lifecycle {
                command: LifecycleCommand::Run { repository },
            } => lifecycle_run(config, repository).await,
        }
    });
    // Here, after a graceful stop: the spans still queued are sent (the runtime, which runs the
    // export requests, is still up; this thread is not one of its workers).
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berth: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
