//! One configuration tree, read from defaults, then a TOML file, then `BERTH_*` environment
//! variables, then command-line flags, and validated before anything starts. A TOML key
//! `[section] key` is also the env var `BERTH_SECTION_KEY`; top-level `key` is `BERTH_KEY`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// S3's smallest allowed multipart part (all parts but the last): `[storage] part_size_bytes`
/// may not be smaller.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The whole configuration. Secrets are never printed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Directory for the embedded SQLite database and filesystem blob storage.
    pub data_dir: PathBuf,
    /// PEM certificate chain; with `tls_key`, serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The registry's address as clients see it (token realms, repository URIs); empty means the
    /// request's scheme and Host.
    pub public_url: String,
    /// The 12-digit account id used in ARNs.
    pub registry_id: String,
    /// The AWS region named in ARNs and repository URIs (`arn:aws:ecr:<region>:...`).
    pub region: String,
    /// Name of the bootstrap admin user.
    pub admin_user: String,
    /// The bootstrap admin's password; empty means generated once and written to
    /// `<data_dir>/admin-password`. When set it wins on every start.
    pub admin_password: Secret,
    /// An access key id for the bootstrap admin (ECR-compatible API), with its secret.
    pub admin_access_key_id: String,
    pub admin_secret_access_key: Secret,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub uploads: UploadConfig,
    pub gc: GcConfig,
    pub lifecycle: LifecycleConfig,
    pub limits: LimitsConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub tracing: TracingConfig,
    pub auth: AuthConfig,
    pub trivy: TrivyConfig,
    pub pull_through: PullThroughConfig,
    pub federation: FederationConfig,
    pub replication: ReplicationConfig,
    pub events: EventsConfig,
    pub console: ConsoleConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The token service name: the `service` of challenges and the `aud` of tokens.
    pub service: String,
    /// The `iss` of issued tokens.
    pub issuer: String,
    /// Lifetime of access tokens from `/token`.
    pub token_ttl_secs: u64,
    /// Lifetime of refresh tokens (`offline_token=true`, `access_type=offline`).
    pub refresh_token_ttl_secs: u64,
    /// A PEM (PKCS#8 P-256) private key that signs tokens; empty means a key generated once and
    /// kept in the metadata database, shared by every replica.
    pub signing_key_file: String,
    /// The file of keys that encrypt access-key secrets and generated signing keys in the
    /// database (see `secrets`); empty means `<data_dir>/secrets.key`, generated on first start,
    /// on SQLite, and is refused on PostgreSQL (every replica must share one key).
    pub secrets_key_file: String,
    /// Failed logins per user name and source address before further attempts get 429.
    pub max_failed_logins: u32,
    /// The window in which failed logins are counted, and how long a blocked caller waits.
    pub failed_login_window_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`; empty means SQLite under the data dir.
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///path`, `s3://bucket[/prefix]` or `memory://`; empty means the filesystem under the data dir.
    pub url: String,
    /// Multipart part size for S3 uploads (at least 5 MiB); bounds memory per streaming upload.
    pub part_size_bytes: usize,
    /// Answer blob GETs on S3 with a 307 to a presigned URL instead of streaming through Berth.
    pub redirect: bool,
    /// Lifetime of presigned redirect URLs.
    pub redirect_expiry_secs: u64,
    /// S3 endpoint such as `http://127.0.0.1:9000`; empty means AWS (or `AWS_ENDPOINT`).
    pub s3_endpoint: String,
    /// S3 region; empty means `AWS_REGION` or `us-east-1`.
    pub s3_region: String,
    /// Access key id; empty means `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: String,
    /// Secret key; empty means `AWS_SECRET_ACCESS_KEY`. Never printed.
    pub s3_secret_access_key: Secret,
    /// Allow plain-HTTP endpoints (also `AWS_ALLOW_HTTP`).
    pub s3_allow_http: bool,
    /// Use `bucket.host` addressing instead of path-style `host/bucket`.
    pub s3_virtual_hosted_style: bool,
}

/// A configuration value that must never appear in logs or debug output.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Upload sessions untouched for this long are purged.
    pub purge_after_secs: u64,
    /// How often the purge pass runs.
    pub purge_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// How long after a blob is committed or linked, or a manifest stops referencing it, before
    /// garbage collection first reviews it (uploads and pushes in progress finish meanwhile).
    pub grace_period_secs: u64,
    /// How often the background GC pass runs (on one replica at a time); 0 disables it.
    pub interval_secs: u64,
    /// The same in milliseconds, when non-zero (tests; overrides `interval_secs`).
    pub interval_millis: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace_period_secs: 86_400,
            interval_secs: 600,
            interval_millis: 0,
        }
    }
}

impl GcConfig {
    /// The background interval, `None` when disabled.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match (self.interval_millis, self.interval_secs) {
            (0, 0) => None,
            (0, s) => Some(std::time::Duration::from_secs(s)),
            (ms, _) => Some(std::time::Duration::from_millis(ms)),
        }
    }
}

/// Image scanning with Trivy, run as a child process (`[trivy]`, env `BERTH_TRIVY_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrivyConfig {
    /// The trivy binary: a path, or a name looked up on `PATH` (also `serve --trivy-path`).
    pub path: String,
    /// Trivy's `--cache-dir` (vulnerability database, layer cache); empty means
    /// `<data_dir>/trivy-cache`. Load an offline database into `<cache_dir>/db/`.
    pub cache_dir: String,
    /// Add every flag that stops Trivy from downloading anything (air-gapped registries).
    pub offline: bool,
    /// Scans run at once by this replica; 0 turns the scan workers off.
    pub concurrency: u32,
    /// A scan running longer than this is killed and fails.
    pub timeout_secs: u64,
    /// Attempts per scan before it ends FAILED.
    pub max_attempts: u32,
    /// The first retry waits this long, each later one twice as long as the one before.
    pub retry_base_secs: u64,
    /// How often idle workers look for queued scans.
    pub poll_interval_millis: u64,
    /// Trivy's JSON report is cut off (and the scan fails) beyond this size.
    pub max_output_bytes: usize,
    /// Trivy runs at this nice level (0 to 19): scans are background work, and on a busy
    /// machine registry traffic gets the CPU first.
    pub nice: u32,
}

impl Default for TrivyConfig {
    fn default() -> Self {
        TrivyConfig {
            path: "trivy".into(),
            cache_dir: String::new(),
            offline: false,
            concurrency: 1,
            timeout_secs: 600,
            max_attempts: 3,
            retry_base_secs: 30,
            poll_interval_millis: 1000,
            max_output_bytes: 64 * 1024 * 1024,
            nice: 10,
        }
    }
}

/// Pull-through caching (`[pull_through]`, env `BERTH_PULL_THROUGH_*`). Rules themselves are
/// managed through the APIs; this holds what must not live in the database (upstream
/// credentials) and the defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullThroughConfig {
    /// A JSON file `{"<name>": {"username": "...", "password": "..."}}` holding the upstream
    /// credentials that rules name with `credentialArn`
    /// (`arn:aws:secretsmanager:<region>:<registryId>:secret:ecr-pullthroughcache/<name>`);
    /// empty means none.
    pub credentials_file: String,
    /// The same JSON inline (env `BERTH_PULL_THROUGH_CREDENTIALS`); merged over the file.
    pub credentials: Secret,
    /// How long a cached tag is served before it is checked upstream again (a rule may set its
    /// own).
    pub revalidate_secs: u64,
    /// Upstream requests other than blob bodies fail after this long (a blob body may take
    /// longer, but not stall this long).
    pub upstream_timeout_secs: u64,
    /// The upstream host (`docker.io`) of pulls that name no rule and no local repository and
    /// carry no `ns` parameter, as dockerd's `registry-mirrors` sends them; empty turns that off.
    pub mirror_default_ns: String,
    /// How often rules with a `quotaBytes` are held to it (least recently pulled images go
    /// first); 0 turns that off.
    pub quota_interval_secs: u64,
}

impl Default for PullThroughConfig {
    fn default() -> Self {
        PullThroughConfig {
            credentials_file: String::new(),
            credentials: Secret::default(),
            revalidate_secs: 600,
            upstream_timeout_secs: 30,
            mirror_default_ns: String::new(),
            quota_interval_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// How often every repository's lifecycle policy runs (on one replica at a time); 0 turns
    /// the scheduled run off (runs on demand still work).
    pub interval_secs: u64,
    /// How often recorded pulls are written to the database (one UPDATE per batch).
    pub pull_flush_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest manifest accepted (the spec requires at least 4 MiB).
    pub max_manifest_bytes: usize,
    /// Most layers (image) or children (index) one manifest may list.
    pub max_manifest_descriptors: usize,
    /// Deepest index-of-index nesting accepted.
    pub max_index_depth: u32,
    /// Largest JSON body accepted by non-manifest endpoints.
    pub max_json_body_bytes: usize,
}

/// Sending pushed images to other registries (`[replication]`, env `BERTH_REPLICATION_*`); the
/// rules themselves are set through the APIs (`PutReplicationConfiguration`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// `[[replication.targets]]`: registries that are not Berth, which rules name as
    /// destinations (`{"target": "<name>"}`, through the REST API); as JSON in
    /// `BERTH_REPLICATION_TARGETS`.
    pub targets: Vec<ReplicationTargetConfig>,
    /// Images this replica sends at once.
    pub concurrency: usize,
    /// How long after a push an unreachable or failing destination is retried before the task
    /// ends `FAILED`.
    pub retry_window_secs: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            targets: Vec::new(),
            concurrency: 4,
            retry_window_secs: 3600,
        }
    }
}

/// Delivering recorded events to subscribers (`[events]`, env `BERTH_EVENTS_*`); the rules and
/// their targets are set through the REST API (`/api/v1/event-rules`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// The NATS server NATS targets publish to (`nats://127.0.0.1:4222`); empty: none.
    pub nats_url: String,
    /// How long a delivery is retried (exponential backoff with jitter) before it becomes a
    /// dead letter.
    pub retry_window_secs: u64,
    /// How long recorded events (and their delivered and dead-lettered deliveries) are kept.
    pub retention_secs: u64,
    /// The longest one delivery attempt may take.
    pub timeout_secs: u64,
    /// How often the replica that delivers looks for events other replicas recorded.
    pub poll_interval_millis: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            nats_url: String::new(),
            retry_window_secs: 86_400,
            retention_secs: 7 * 86_400,
            timeout_secs: 10,
            poll_interval_millis: 500,
        }
    }
}

/// A registry that is not Berth, replicated to through the OCI Distribution API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplicationTargetConfig {
    /// The name rules use (`{"target": "<name>"}`).
    pub name: String,
    /// Its base URL (`https://registry.example`).
    pub url: String,
    /// A JSON file `{"username": "...", "password": "..."}` with the credentials to push with
    /// (Basic, or the token flow); none means anonymous. Never stored in the database.
    #[serde(default)]
    pub credentials_file: String,
}

/// The longest a password for another registry may live: an ECR registry password's 12 hours.
pub const MAX_FEDERATED_PASSWORD_TTL_SECS: u64 = 12 * 3600;

/// Registries this one trusts (`[federation]`, env `BERTH_FEDERATION_*`): their users may be
/// named in this registry's policies, with passwords they sign.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// `[[federation.registries]]`; as JSON in `BERTH_FEDERATION_REGISTRIES` (an array of
    /// tables has no `BERTH_SECTION_KEY` form).
    pub registries: Vec<TrustedRegistryConfig>,
    /// How often each trusted registry's JWKS is read again (a rotated key is followed within
    /// this); an unreachable JWKS keeps the last good keys.
    pub jwks_refresh_secs: u64,
    /// Lifetime of a password this registry signs for a trusted one (`GetAuthorizationToken`
    /// with `registryIds`): revocation here reaches the other registry within it.
    pub password_ttl_secs: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            registries: Vec::new(),
            jwks_refresh_secs: 60,
            password_ttl_secs: 3600,
        }
    }
}

/// One trusted registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustedRegistryConfig {
    /// Its 12-digit account id (the account of its principals' ARNs).
    pub registry_id: String,
    /// Its region.
    pub region: String,
    /// Its public URL (`https://registry.example`).
    pub url: String,
    /// Where its token signing keys are published: its JWKS URL (`<url>/token/jwks.json`) or
    /// a JWKS file.
    pub jwks: String,
}

/// How connections are served (`[server]`, env `BERTH_SERVER_*`): every connection and every
/// body is bounded in time, and the number of open connections is capped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// A new connection must finish its TLS handshake and send its first request's headers
    /// within this time, and an HTTP/1.1 request's headers must arrive within it.
    pub header_timeout_secs: u64,
    /// A request body that delivers no bytes, or a client that accepts no response bytes, for
    /// this long is cut off.
    pub body_idle_timeout_secs: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2 with GOAWAY).
    pub idle_timeout_secs: u64,
    /// Open connections at most; at the cap, the longest-idle connection is closed to admit a
    /// new one (or the new one is refused when every connection has a request in flight).
    pub max_connections: usize,
    /// HTTP/2 keep-alive PING interval; 0 turns the pings off.
    pub http2_keepalive_interval_secs: u64,
    /// An HTTP/2 connection whose PING is not answered within this time is closed.
    pub http2_keepalive_timeout_secs: u64,
    /// Concurrent streams (requests) one HTTP/2 connection may have open.
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (decoded names and values) a request may send.
    pub http2_max_header_list_bytes: u32,
    /// In-flight requests get this long to finish on SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Load balancers and proxies (addresses or CIDRs) whose forwarding headers are believed:
    /// the client address and transport they report replace the connection's, for policies'
    /// `aws:SourceIp` and `aws:SecureTransport` and for the failed-login limiter.
    pub trusted_proxies: Vec<String>,
    /// Which headers the trusted proxies set: `x-forwarded` (`X-Forwarded-For` and
    /// `X-Forwarded-Proto`) or `forwarded` (RFC 7239). Only that family is read, so a client
    /// cannot slip the other one past a proxy that leaves it untouched.
    pub proxy_headers: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `berth=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:5000".into(),
            data_dir: PathBuf::from("./berth-data"),
            tls_cert: None,
            tls_key: None,
            public_url: String::new(),
            registry_id: "000000000000".into(),
            region: "us-east-1".into(),
            admin_user: "admin".into(),
            admin_password: Secret::default(),
            admin_access_key_id: String::new(),
            admin_secret_access_key: Secret::default(),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            uploads: UploadConfig::default(),
            gc: GcConfig::default(),
            lifecycle: LifecycleConfig::default(),
            limits: LimitsConfig::default(),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            tracing: TracingConfig::default(),
            auth: AuthConfig::default(),
            trivy: TrivyConfig::default(),
            pull_through: PullThroughConfig::default(),
            federation: FederationConfig::default(),
            replication: ReplicationConfig::default(),
            events: EventsConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service: "berth".into(),
            issuer: "berth".into(),
            token_ttl_secs: 300,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            signing_key_file: String::new(),
            secrets_key_file: String::new(),
            max_failed_logins: 10,
            failed_login_window_secs: 60,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: String::new(),
            part_size_bytes: 8 * 1024 * 1024,
            redirect: false,
            redirect_expiry_secs: 300,
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
            s3_virtual_hosted_style: false,
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            purge_after_secs: 24 * 3600,
            purge_interval_secs: 3600,
        }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            interval_secs: 3600,
            pull_flush_secs: 5,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_manifest_descriptors: 10_000,
            max_index_depth: 8,
            max_json_body_bytes: 1024 * 1024,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_timeout_secs: 30,
            body_idle_timeout_secs: 60,
            // Longer than the 90 s clients keep idle connections for (Go's and hyper's pools),
            // so the client, not the server, usually closes an idle connection: a request sent
            // on a connection the server is closing at that moment fails.
            idle_timeout_secs: 120,
            max_connections: 4096,
            http2_keepalive_interval_secs: 60,
            http2_keepalive_timeout_secs: 20,
            http2_max_concurrent_streams: 128,
            http2_max_header_list_bytes: 32 * 1024,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            proxy_headers: "x-forwarded".into(),
        }
    }
}

/// The web console (`[console]`, env `BERTH_CONSOLE_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/console/` on the registry's listener.
    pub enabled: bool,
    /// How long a sign-in lasts at most, in seconds.
    pub session_ttl_secs: u64,
    /// How long a session may go unused before it ends, in seconds.
    pub idle_timeout_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_ttl_secs: 12 * 3600,
            idle_timeout_secs: 3600,
        }
    }
}

/// Prometheus metrics (`[metrics]`, env `BERTH_METRICS_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the separate listener that serves `GET /metrics` (for example
    /// `127.0.0.1:9464`); empty (the default) serves no metrics. Never the registry's own
    /// listener, so metrics are not exposed to the registry's clients.
    pub listen: String,
}

impl MetricsConfig {
    /// The metrics listener's address, `None` when metrics are off.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "metrics.listen (BERTH_METRICS_LISTEN): {:?} is not an address such as 127.0.0.1:9464",
                self.listen
            ))
        })
    }
}

/// OpenTelemetry traces (`[tracing]`, env `BERTH_TRACING_*`), sent over OTLP/HTTP with protobuf.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL, such as `http://collector:4318` (`/v1/traces` is
    /// appended); empty (the default) exports no traces.
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
    /// The share of new traces recorded, 0.0 to 1.0. Parent-based: a request whose
    /// `traceparent` says sampled (or not) follows its caller's decision.
    pub sample_ratio: f64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: String::new(),
            service_name: "berth".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TracingConfig {
    /// The URL spans are POSTed to (`<otlp_endpoint>/v1/traces`), `None` when tracing is off.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.trim().trim_end_matches('/');
        (!base.is_empty()).then(|| format!("{base}/v1/traces"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = self.traces_url() {
            let parsed = url::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if parsed.is_none() {
                return Err(ConfigError(format!(
                    "tracing.otlp_endpoint (BERTH_TRACING_OTLP_ENDPOINT): {:?} is not an http(s) \
                     URL such as http://collector:4318",
                    self.otlp_endpoint
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError(format!(
                "tracing.sample_ratio (BERTH_TRACING_SAMPLE_RATIO) must be between 0 and 1, not {}",
                self.sample_ratio
            )));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError(
                "tracing.service_name (BERTH_TRACING_SERVICE_NAME) must not be empty".into(),
            ));
        }
        Ok(())
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Why PostgreSQL needs `[auth] secrets_key_file`, and how to give it one.
pub const SECRETS_KEY_FILE_REQUIRED: &str =
    "[auth] secrets_key_file (BERTH_AUTH_SECRETS_KEY_FILE) is required with PostgreSQL: \
     access-key secrets and token signing keys are stored encrypted with it, and every replica \
     must use the same key, so Berth cannot generate one per replica. Create one with `berth \
     secrets generate-key --out FILE` and give that file to every replica";

/// Keys whose default is `None` (absent from the serialised defaults) but that env vars may set.
const OPTIONAL_PATH_KEYS: &[&str] = &["tls_cert", "tls_key"];
/// Arrays of tables, given in the environment as JSON (`BERTH_FEDERATION_REGISTRIES='[{...}]'`).
const JSON_LIST_KEYS: &[&str] = &["BERTH_FEDERATION_REGISTRIES", "BERTH_REPLICATION_TARGETS"];

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub database_url: Option<String>,
    pub storage_url: Option<String>,
    pub trivy_path: Option<String>,
}

/// A configuration error naming the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults < file < `BERTH_*` env < flags, then validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, overrides, |k| std::env::var(k).ok())
    }

    /// As `load`, with the environment given as a lookup (for tests).
    pub fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut tree = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            tree = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        }
        apply_env(&mut tree, &env)?;
        let mut config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.to_string().trim().replace('\n', " ")))?;
        if let Some(v) = &overrides.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &overrides.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &overrides.tls_cert {
            config.tls_cert = Some(v.clone());
        }
        if let Some(v) = &overrides.tls_key {
            config.tls_key = Some(v.clone());
        }
        if let Some(v) = &overrides.database_url {
            config.database.url = v.clone();
        }
        if let Some(v) = &overrides.storage_url {
            config.storage.url = v.clone();
        }
        if let Some(v) = &overrides.trivy_path {
            config.trivy.path = v.clone();
        }
        config.validate()?;
        Ok(config)
    }

    fn validate_events(&self) -> Result<(), ConfigError> {
        let e = &self.events;
        if e.retry_window_secs == 0
            || e.retention_secs == 0
            || e.timeout_secs == 0
            || e.poll_interval_millis == 0
        {
            return Err(ConfigError(
                "events.retry_window_secs, events.retention_secs, events.timeout_secs and \
                 events.poll_interval_millis must be positive"
                    .into(),
            ));
        }
        if !e.nats_url.is_empty() {
            let valid = url::Url::parse(&e.nats_url).is_ok_and(|u| {
                matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some_and(|h| !h.is_empty())
            });
            if !valid {
                return Err(ConfigError(format!(
                    "events.nats_url '{}' is not a nats:// or tls:// URL with a host",
                    e.nats_url
                )));
            }
        }
        Ok(())
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        let r = &self.replication;
        if r.concurrency == 0 || r.retry_window_secs == 0 {
            return Err(ConfigError(
                "replication.concurrency and replication.retry_window_secs must be positive".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in r.targets.iter().enumerate() {
            let field = |name: &str| format!("replication.targets[{i}].{name}");
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !name_ok {
                return Err(ConfigError(format!(
                    "{} must be 1 to 64 of a-z 0-9 - _ ., not {:?}",
                    field("name"),
                    t.name
                )));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(ConfigError(format!(
                    "{}: target {} is listed twice",
                    field("name"),
                    t.name
                )));
            }
            if !(t.url.starts_with("https://") || t.url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "{} must be an http:// or https:// URL, not {:?}",
                    field("url"),
                    t.url
                )));
            }
        }
        Ok(())
    }

    fn validate_federation(&self) -> Result<(), ConfigError> {
        let f = &self.federation;
        if f.jwks_refresh_secs == 0 {
            return Err(ConfigError(
                "federation.jwks_refresh_secs must be positive".into(),
            ));
        }
        if !(60..=MAX_FEDERATED_PASSWORD_TTL_SECS).contains(&f.password_ttl_secs) {
            return Err(ConfigError(format!(
                "federation.password_ttl_secs must be between 60 and {MAX_FEDERATED_PASSWORD_TTL_SECS} \
                 (12 hours, an ECR registry password's lifetime), not {}",
                f.password_ttl_secs
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in f.registries.iter().enumerate() {
            let field = |name: &str| format!("federation.registries[{i}].{name}");
            if !is_registry_id(&r.registry_id) {
                return Err(ConfigError(format!(
                    "{} must be 12 digits like 111111111111, not {:?}",
                    field("registry_id"),
                    r.registry_id
                )));
            }
            // This registry's own account may be listed in another region (a Berth of the same
            // account elsewhere, replicated to without policies, as ECR does).
            if r.registry_id == self.registry_id && r.region == self.region {
                return Err(ConfigError(format!(
                    "{} is this registry itself ({} in {}); list only the other registries",
                    field("registry_id"),
                    r.registry_id,
                    r.region
                )));
            }
            if !seen.insert((r.registry_id.as_str(), r.region.as_str())) {
                return Err(ConfigError(format!(
                    "{}: registry {} in {} is listed twice",
                    field("registry_id"),
                    r.registry_id,
                    r.region
                )));
            }
            if !is_region(&r.region) {
                return Err(ConfigError(format!(
                    "{} must look like eu-west-1, not {:?}",
                    field("region"),
                    r.region
                )));
            }
            if !(r.url.starts_with("https://") || r.url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "{} must be the registry's http:// or https:// URL, not {:?}",
                    field("url"),
                    r.url
                )));
            }
            if r.jwks.trim().is_empty() {
                return Err(ConfigError(format!(
                    "{} must be the registry's JWKS URL (<url>/token/jwks.json) or a JWKS file",
                    field("jwks")
                )));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError(
                "tls_cert and tls_key must be given together".into(),
            ));
        }
        if self.auth.token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return Err(ConfigError(
                "auth.token_ttl_secs and auth.refresh_token_ttl_secs must be positive".into(),
            ));
        }
        if self.auth.service.is_empty() || self.auth.issuer.is_empty() {
            return Err(ConfigError(
                "auth.service and auth.issuer must not be empty".into(),
            ));
        }
        if !is_region(&self.region) {
            return Err(ConfigError(format!(
                "region must look like us-east-1, not {:?}",
                self.region
            )));
        }
        if !is_registry_id(&self.registry_id) {
            return Err(ConfigError(format!(
                "registry_id must be 12 digits like 000000000000, not {:?}",
                self.registry_id
            )));
        }
        if crate::oci::RepoName::parse(&self.admin_user).is_err() || self.admin_user.contains('/') {
            return Err(ConfigError(format!(
                "admin_user {:?} must be lowercase letters, digits and . _ -",
                self.admin_user
            )));
        }
        self.validate_federation()?;
        self.validate_replication()?;
        self.validate_events()?;
        if self.console.session_ttl_secs == 0 || self.console.idle_timeout_secs == 0 {
            return Err(ConfigError(
                "console.session_ttl_secs and console.idle_timeout_secs must be positive".into(),
            ));
        }
        if self.admin_access_key_id.is_empty() != self.admin_secret_access_key.expose().is_empty() {
            return Err(ConfigError(
                "admin_access_key_id and admin_secret_access_key must be given together".into(),
            ));
        }
        if self.limits.max_manifest_bytes < 4 * 1024 * 1024 {
            return Err(ConfigError(
                "limits.max_manifest_bytes must be at least 4194304 (the spec requires 4 MiB)"
                    .into(),
            ));
        }
        if self.limits.max_manifest_descriptors == 0 || self.limits.max_index_depth == 0 {
            return Err(ConfigError(
                "limits.max_manifest_descriptors and limits.max_index_depth must be positive"
                    .into(),
            ));
        }
        if self.storage.part_size_bytes < MIN_PART_SIZE {
            return Err(ConfigError(format!(
                "storage.part_size_bytes must be at least {} (S3's minimum part size)",
                MIN_PART_SIZE
            )));
        }
        let storage = self.storage_url();
        if !(storage.starts_with("file://")
            || storage.starts_with("s3://")
            || storage.starts_with("memory://"))
        {
            return Err(ConfigError(
                "storage.url must start with file://, s3:// or memory://".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections must be positive".into(),
            ));
        }
        self.server.validate()?;
        if let Some(metrics) = self.metrics.listen_addr()? {
            if self.listen_addr()? == metrics {
                return Err(ConfigError(format!(
                    "metrics.listen must differ from listen ({metrics}): metrics are served on their own listener"
                )));
            }
        }
        self.tracing.validate()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError(format!(
                "log.format must be \"text\" or \"json\", not {:?}",
                self.log.format
            )));
        }
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "database.url must start with sqlite:// or postgres://".into(),
            ));
        }
        if !db.starts_with("sqlite:") && self.auth.secrets_key_file.is_empty() {
            return Err(ConfigError(SECRETS_KEY_FILE_REQUIRED.into()));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError(format!(
                "listen: {:?} is not an address such as 0.0.0.0:5000",
                self.listen
            ))
        })
    }

    /// The database URL, defaulting to SQLite under the data dir.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("berth.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// Trivy's cache directory, defaulting to `<data_dir>/trivy-cache`.
    pub fn trivy_cache_dir(&self) -> PathBuf {
        if self.trivy.cache_dir.is_empty() {
            self.data_dir.join("trivy-cache")
        } else {
            PathBuf::from(&self.trivy.cache_dir)
        }
    }

    /// The storage URL, defaulting to the filesystem under the data dir.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            let dir = std::path::absolute(self.data_dir.join("storage"))
                .unwrap_or_else(|_| self.data_dir.join("storage"));
            format!("file://{}", dir.display())
        } else {
            self.storage.url.clone()
        }
    }
}

/// Which forwarding headers trusted proxies set (`[server] proxy_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeaders {
    /// `X-Forwarded-For` and `X-Forwarded-Proto`.
    XForwarded,
    /// RFC 7239 `Forwarded: for=...;proto=...`.
    Forwarded,
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("server.header_timeout_secs", self.header_timeout_secs),
            ("server.body_idle_timeout_secs", self.body_idle_timeout_secs),
            ("server.idle_timeout_secs", self.idle_timeout_secs),
            (
                "server.http2_keepalive_timeout_secs",
                self.http2_keepalive_timeout_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be positive")));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError(
                "server.max_connections must be positive".into(),
            ));
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(ConfigError(
                "server.http2_max_concurrent_streams must be positive".into(),
            ));
        }
        if self.http2_max_header_list_bytes < 1024 {
            return Err(ConfigError(
                "server.http2_max_header_list_bytes must be at least 1024".into(),
            ));
        }
        self.trusted_proxy_nets()?;
        self.proxy_header_kind()?;
        Ok(())
    }

    /// `trusted_proxies` parsed; a bare address is a /32 (IPv4) or /128 (IPv6) network.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let text = entry.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies: {entry:?} is not an address or CIDR such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }

    /// `proxy_headers` parsed.
    pub fn proxy_header_kind(&self) -> Result<ProxyHeaders, ConfigError> {
        match self.proxy_headers.trim().to_ascii_lowercase().as_str() {
            "x-forwarded" => Ok(ProxyHeaders::XForwarded),
            "forwarded" => Ok(ProxyHeaders::Forwarded),
            _ => Err(ConfigError(format!(
                "server.proxy_headers must be \"x-forwarded\" or \"forwarded\", not {:?}",
                self.proxy_headers
            ))),
        }
    }
}

/// A 12-digit account id, as in ARNs.
fn is_registry_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A region name such as `us-east-1`.
fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Sets every key of the configuration tree whose `BERTH_*` variable is present.
fn apply_env(
    tree: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
    let mut keys: Vec<(Vec<String>, Option<toml::Value>)> = Vec::new();
    for (k, v) in &defaults {
        match v {
            toml::Value::Table(section) => {
                for (sk, sv) in section {
                    keys.push((vec![k.clone(), sk.clone()], Some(sv.clone())));
                }
            }
            other => keys.push((vec![k.clone()], Some(other.clone()))),
        }
    }
    keys.extend(
        OPTIONAL_PATH_KEYS
            .iter()
            .map(|k| (vec![(*k).to_owned()], None)),
    );
    for (path, default) in keys {
        let var = format!("BERTH_{}", path.join("_").to_uppercase());
        let Some(raw) = env(&var) else { continue };
        let value = match default {
            _ if JSON_LIST_KEYS.contains(&var.as_str()) => {
                let json: serde_json::Value = serde_json::from_str(&raw).map_err(|e| {
                    ConfigError(format!("{var}: expected a JSON array of objects: {e}"))
                })?;
                if !json.is_array() {
                    return Err(ConfigError(format!(
                        "{var}: expected a JSON array of objects"
                    )));
                }
                toml::Value::try_from(json).map_err(|e| ConfigError(format!("{var}: {e}")))?
            }
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| ConfigError(format!("{var}: expected an integer, got {raw:?}")))?,
            ),
            Some(toml::Value::Float(_)) => toml::Value::Float(
                raw.trim()
                    .parse()
                    .map_err(|_| ConfigError(format!("{var}: expected a number, got {raw:?}")))?,
            ),
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match raw.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "{var}: expected true or false, got {raw:?}"
                    )))
                }
            }),
            // Lists are comma-separated: `BERTH_SERVER_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.1`.
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.to_owned()))
                    .collect(),
            ),
            _ => toml::Value::String(raw),
        };
        let mut table = &mut *tree;
        for section in &path[..path.len() - 1] {
            table = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError(format!("{section} must be a table")))?;
        }
        table.insert(path.last().unwrap().clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, toml_text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(Some(&path), &Overrides::default(), |k| env.get(k).cloned())
    }

    #[test]
    fn tracing_is_off_by_default_and_its_keys_come_from_file_and_env() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.tracing.traces_url(), None);
        assert_eq!(c.tracing.service_name, "berth");
        assert_eq!(c.tracing.sample_ratio, 1.0);
        let c = load(
            "[tracing]\notlp_endpoint = \"http://collector:4318/\"\nsample_ratio = 0.25\n",
            &[("BERTH_TRACING_SERVICE_NAME", "registry-eu")],
        )
        .unwrap();
        assert_eq!(
            c.tracing.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(c.tracing.sample_ratio, 0.25);
        assert_eq!(c.tracing.service_name, "registry-eu");
        let c = load("", &[("BERTH_TRACING_SAMPLE_RATIO", "0.5")]).unwrap();
        assert_eq!(c.tracing.sample_ratio, 0.5);
        for (var, value) in [
            ("BERTH_TRACING_SAMPLE_RATIO", "1.5"),
            ("BERTH_TRACING_SAMPLE_RATIO", "half"),
            ("BERTH_TRACING_OTLP_ENDPOINT", "collector:4318"),
            ("BERTH_TRACING_OTLP_ENDPOINT", "grpc://collector:4317"),
        ] {
            let err = load("", &[(var, value)]).unwrap_err();
            assert!(err.0.contains(var), "{var}={value}: {}", err.0);
        }
    }

    #[test]
    fn metrics_listener_is_off_by_default_and_a_bad_address_is_refused() {
        assert_eq!(load("", &[]).unwrap().metrics.listen_addr().unwrap(), None);
        let c = load("[metrics]\nlisten = \"127.0.0.1:9464\"\n", &[]).unwrap();
        assert_eq!(
            c.metrics.listen_addr().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        let c = load("", &[("BERTH_METRICS_LISTEN", "[::1]:9100")]).unwrap();
        assert_eq!(c.metrics.listen.as_str(), "[::1]:9100");
        let err = load("", &[("BERTH_METRICS_LISTEN", "localhost")]).unwrap_err();
        assert!(err.0.contains("BERTH_METRICS_LISTEN"), "{}", err.0);
        let err = load(
            "listen = \"127.0.0.1:5000\"\n[metrics]\nlisten = \"127.0.0.1:5000\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.0.contains("must differ"), "{}", err.0);
    }

    #[test]
    fn trusted_registries_from_toml_or_json_env() {
        let toml_text = r#"
[federation]
jwks_refresh_secs = 5

[[federation.registries]]
registry_id = "111111111111"
region = "eu-west-1"
url = "https://b.example"
jwks = "https://b.example/token/jwks.json"
"#;
        let c = load(toml_text, &[]).unwrap();
        assert_eq!(c.federation.jwks_refresh_secs, 5);
        let b = TrustedRegistryConfig {
            registry_id: "111111111111".into(),
            region: "eu-west-1".into(),
            url: "https://b.example".into(),
            jwks: "https://b.example/token/jwks.json".into(),
        };
        assert_eq!(c.federation.registries, vec![b.clone()]);
        // The environment's JSON replaces the file's list.
        let json = r#"[{"registry_id":"222222222222","region":"ap-south-1","url":"http://127.0.0.1:5001","jwks":"/etc/berth/c.jwks"}]"#;
        let c = load(toml_text, &[("BERTH_FEDERATION_REGISTRIES", json)]).unwrap();
        assert_eq!(c.federation.registries.len(), 1);
        assert_eq!(c.federation.registries[0].registry_id, "222222222222");
        assert_eq!(c.federation.registries[0].jwks, "/etc/berth/c.jwks");
        assert!(load("", &[]).unwrap().federation.registries.is_empty());
    }

    #[test]
    fn bad_trusted_registries_are_refused_naming_the_field() {
        let entry = |id: &str, region: &str, url: &str, jwks: &str| {
            format!(
                r#"[{{"registry_id":"{id}","region":"{region}","url":"{url}","jwks":"{jwks}"}}]"#
            )
        };
        let cases = [
            (entry("12345", "eu-west-1", "https://b", "j"), "registries[0].registry_id"),
            (entry("000000000000", "us-east-1", "https://b", "j"), "this registry itself"),
            (entry("111111111111", "EU", "https://b", "j"), "registries[0].region"),
            (entry("111111111111", "eu-west-1", "b.example", "j"), "registries[0].url"),
            (entry("111111111111", "eu-west-1", "https://b", " "), "registries[0].jwks"),
            (r#"{"registry_id":"111111111111"}"#.to_owned(), "JSON array"),
            ("[{".to_owned(), "BERTH_FEDERATION_REGISTRIES"),
            (
                r#"[{"registry_id":"111111111111","region":"eu-west-1","url":"https://b","jwks":"j","extra":1}]"#.to_owned(),
                "extra",
            ),
        ];
        for (json, expected) in cases {
            let err = load("", &[("BERTH_FEDERATION_REGISTRIES", json.as_str())]).unwrap_err();
            assert!(err.0.contains(expected), "{json}: {}", err.0);
        }
        let twice = r#"[{"registry_id":"111111111111","region":"eu-west-1","url":"https://b","jwks":"j"},{"registry_id":"111111111111","region":"eu-west-1","url":"https://c","jwks":"k"}]"#;
        let err = load("", &[("BERTH_FEDERATION_REGISTRIES", twice)]).unwrap_err();
        assert!(err.0.contains("listed twice"), "{}", err.0);
        // This account in another region, and another account in two regions, may be listed.
        let regions = r#"[{"registry_id":"000000000000","region":"eu-west-1","url":"https://b","jwks":"j"},{"registry_id":"111111111111","region":"eu-west-1","url":"https://c","jwks":"k"},{"registry_id":"111111111111","region":"eu-west-2","url":"https://d","jwks":"l"}]"#;
        assert_eq!(
            load("", &[("BERTH_FEDERATION_REGISTRIES", regions)])
                .unwrap()
                .federation
                .registries
                .len(),
            3
        );
        let err = load("", &[("BERTH_FEDERATION_JWKS_REFRESH_SECS", "0")]).unwrap_err();
        assert!(err.0.contains("jwks_refresh_secs"), "{}", err.0);
        for ttl in ["59", "43201"] {
            let err = load("", &[("BERTH_FEDERATION_PASSWORD_TTL_SECS", ttl)]).unwrap_err();
            assert!(err.0.contains("password_ttl_secs"), "{}", err.0);
        }
        let c = load("", &[("BERTH_FEDERATION_PASSWORD_TTL_SECS", "600")]).unwrap();
        assert_eq!(c.federation.password_ttl_secs, 600);
        assert_eq!(load("", &[]).unwrap().federation.password_ttl_secs, 3600);
    }

    #[test]
    fn env_overrides_file_and_names_fields() {
        let c = load(
            "[database]\nmax_connections = 3\n",
            &[
                ("BERTH_DATABASE_MAX_CONNECTIONS", "7"),
                ("BERTH_DATA_DIR", "/x"),
                ("BERTH_AUTH_SECRETS_KEY_FILE", "/run/berth/secrets.key"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.max_connections, 7);
        assert_eq!(c.auth.secrets_key_file, "/run/berth/secrets.key");
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        let err = load("", &[("BERTH_LIMITS_MAX_INDEX_DEPTH", "deep")]).unwrap_err();
        assert!(err.0.contains("BERTH_LIMITS_MAX_INDEX_DEPTH"), "{}", err.0);
        let err = load("[storage]\nurl = 3\n", &[]).unwrap_err();
        assert!(err.0.contains("url"), "{}", err.0);
        let err = load("[databse]\nurl = \"x\"\n", &[]).unwrap_err();
        assert!(err.0.contains("databse"), "{}", err.0);
        let err = load("listen = \"nowhere\"\n", &[]).unwrap_err();
        assert!(err.0.contains("listen"), "{}", err.0);
        let err = load("[database]\nurl = \"postgres://db/berth\"\n", &[]).unwrap_err();
        assert!(err.0.contains("BERTH_AUTH_SECRETS_KEY_FILE"), "{}", err.0);
        load(
            "[database]\nurl = \"postgres://db/berth\"\n",
            &[("BERTH_AUTH_SECRETS_KEY_FILE", "/run/berth/secrets.key")],
        )
        .unwrap();
    }

    #[test]
    fn trusted_proxies_are_cidrs_from_file_or_a_comma_separated_env_list() {
        let c = load(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"2001:db8::/32\"]\n",
            &[],
        )
        .unwrap();
        let nets = c.server.trusted_proxy_nets().unwrap();
        let show: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        assert_eq!(show, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);

        let c = load(
            "",
            &[(
                "BERTH_SERVER_TRUSTED_PROXIES",
                " 127.0.0.1/32 , 172.16.0.0/12,,",
            )],
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies, ["127.0.0.1/32", "172.16.0.0/12"]);
        assert!(load("", &[]).unwrap().server.trusted_proxies.is_empty());

        // Host bits are dropped, as in any CIDR match.
        let c = load("", &[("BERTH_SERVER_TRUSTED_PROXIES", "10.1.2.3/8")]).unwrap();
        assert_eq!(
            c.server.trusted_proxy_nets().unwrap()[0].to_string(),
            "10.0.0.0/8"
        );

        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.300"] {
            let err = load("", &[("BERTH_SERVER_TRUSTED_PROXIES", bad)]).unwrap_err();
            assert!(err.0.contains("server.trusted_proxies"), "{}", err.0);
            assert!(err.0.contains(bad), "{}", err.0);
        }
        let err = load("[server]\nproxy_headers = \"x-real-ip\"\n", &[]).unwrap_err();
        assert!(err.0.contains("server.proxy_headers"), "{}", err.0);
        let c = load("", &[("BERTH_SERVER_PROXY_HEADERS", "Forwarded")]).unwrap();
        assert_eq!(
            c.server.proxy_header_kind().unwrap(),
            ProxyHeaders::Forwarded
        );
    }

    #[test]
    fn server_limits_must_be_positive() {
        for var in [
            "BERTH_SERVER_HEADER_TIMEOUT_SECS",
            "BERTH_SERVER_BODY_IDLE_TIMEOUT_SECS",
            "BERTH_SERVER_IDLE_TIMEOUT_SECS",
            "BERTH_SERVER_MAX_CONNECTIONS",
            "BERTH_SERVER_HTTP2_MAX_CONCURRENT_STREAMS",
        ] {
            let err = load("", &[(var, "0")]).unwrap_err();
            let field = var
                .strip_prefix("BERTH_SERVER_")
                .unwrap()
                .to_ascii_lowercase();
            assert!(err.0.contains(&format!("server.{field}")), "{}", err.0);
        }
        let c = load("", &[("BERTH_SERVER_HTTP2_KEEPALIVE_INTERVAL_SECS", "0")]).unwrap();
        assert_eq!(
            c.server.http2_keepalive_interval_secs, 0,
            "0 turns pings off"
        );
    }
}
