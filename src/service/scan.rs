//! Image scanning with Trivy as a child process. A worker takes one due job (see `meta::scan`),
//! runs `trivy image --image-src remote` against this registry with an argument list (never a
//! shell), a timeout, bounded output and its own cache directory, and stores the findings.
//!
//! Trivy reads the image from Berth itself, over loopback, with a scanner credential: an
//! `AWS:<password>` login, issued per scan and passed to the child only through its environment,
//! that reads the one image being scanned (its manifest and the blobs it references) and nothing
//! else, expires after the scan's timeout, and never opens the admin or ECR APIs. Reading from the registry, rather than exporting an OCI layout first, needs no
//! temporary copy of the layers, works the same on every storage backend, and makes Trivy see
//! exactly what a client pulling the digest sees.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::core::Core;
use crate::config::TrivyConfig;
use crate::error::Error;
use crate::error::Result;
use crate::meta::{
    is_scannable, now_millis, Finding, ManifestRow, RepositoryRow, ScanJob, ScanOutcome, ScanState,
    Scans,
};
use crate::metrics::ScanResult;
use crate::oci::{Digest, RepoName};
use crate::policy::scanning::{PullGate, RegistryScanningConfiguration, ScanFacts};
use crate::util::TtlCache;

/// The flags that stop Trivy from downloading anything.
pub const OFFLINE_FLAGS: &[&str] = &[
    "--skip-db-update",
    "--skip-java-db-update",
    "--offline-scan",
    "--skip-version-check",
    "--disable-telemetry",
    "--skip-check-update",
    "--skip-vex-repo-update",
];

/// How much of Trivy's stderr a failure reports.
const STDERR_TAIL: usize = 2048;

/// Where and how scans run.
#[derive(Debug, Clone)]
pub struct Scanner {
    pub config: TrivyConfig,
    pub cache_dir: PathBuf,
    /// `host:port` of this registry as the child reaches it.
    pub registry: String,
    /// The registry serves HTTPS (possibly with a certificate for another name).
    pub tls: bool,
}

/// Basic credentials for Trivy's pulls.
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl Scanner {
    /// The argument list for one scan of `image`.
    pub fn args(&self, image: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "image",
            "--image-src",
            "remote",
            "--format",
            "json",
            "--scanners",
            "vuln,secret",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--cache-dir".into());
        args.push(self.cache_dir.display().to_string());
        args.push("--timeout".into());
        args.push(format!("{}s", self.config.timeout_secs.max(1)));
        if self.tls {
            args.push("--insecure".into());
        }
        if self.config.offline {
            args.extend(OFFLINE_FLAGS.iter().map(|s| s.to_string()));
        }
        args.push(image.to_owned());
        args
    }

    /// Runs Trivy on `image` and returns its JSON report, or why it failed. Its trace span
    /// (`debug`: free without an exporter) covers the child process; the credential is not
    /// recorded.
    #[tracing::instrument(
        level = "debug",
        name = "trivy",
        skip_all,
        fields(otel.name = "trivy", berth.image = image)
    )]
    pub async fn run(
        &self,
        image: &str,
        credential: &Credential,
    ) -> std::result::Result<Vec<u8>, String> {
        let mut cmd = tokio::process::Command::new(&self.config.path);
        cmd.args(self.args(image))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let nice = self.config.nice.min(19) as libc::c_int;
        if nice > 0 {
            // SAFETY: runs in the forked child just before exec and calls only setpriority,
            // which is async-signal-safe; a failure leaves the child at normal priority.
            unsafe {
                cmd.pre_exec(move || {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                    Ok(())
                });
            }
        }
        // Only what Trivy needs from Berth's environment (no cloud or database secrets).
        for key in [
            "PATH",
            "HOME",
            "TMPDIR",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("TRIVY_USERNAME", &credential.username)
            .env("TRIVY_PASSWORD", &credential.password)
            .env("TRIVY_NON_SSL", if self.tls { "false" } else { "true" });
        if let Err(e) = std::fs::create_dir_all(&self.cache_dir) {
            return Err(format!(
                "cannot create the trivy cache dir {}: {e}",
                self.cache_dir.display()
            ));
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("trivy not found: {}", self.config.path))
            }
            Err(e) => return Err(format!("cannot start trivy ({}): {e}", self.config.path)),
        };
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let max = self.config.max_output_bytes;
        let timeout = Duration::from_secs(self.config.timeout_secs.max(1));
        let work = async {
            let (out, err, status) = tokio::join!(
                read_bounded(stdout, max, false),
                read_bounded(stderr, STDERR_TAIL, true),
                child.wait()
            );
            (out, err, status)
        };
        let (out, err, status) = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "timed out after {} s",
                    self.config.timeout_secs.max(1)
                ));
            }
        };
        let status = status.map_err(|e| format!("trivy: {e}"))?;
        let (out, overflow) = out.map_err(|e| format!("reading trivy's output: {e}"))?;
        let (err, _) = err.unwrap_or_default();
        if !status.success() {
            let tail = String::from_utf8_lossy(&err).trim().to_owned();
            return Err(format!("trivy failed ({status}): {tail}"));
        }
        if overflow {
            return Err(format!("trivy's report exceeds {max} bytes"));
        }
        Ok(out)
    }
}

/// Reads `r` to its end, keeping at most `max` bytes (the first ones, or with `tail` the last
/// ones); true when bytes were dropped. Keeps reading so the child never blocks on a full pipe.
async fn read_bounded(
    mut r: impl AsyncRead + Unpin,
    max: usize,
    tail: bool,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, dropped));
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > max {
            dropped = true;
            if tail {
                kept.drain(..kept.len() - max);
            } else {
                kept.truncate(max);
            }
        }
    }
}

/// ECR's severities from Trivy's (`UNKNOWN` is ECR's `UNDEFINED`).
fn severity(s: &str) -> String {
    match s {
        "CRITICAL" | "HIGH" | "MEDIUM" | "LOW" => s.to_owned(),
        "INFORMATIONAL" | "INFO" => "INFORMATIONAL".into(),
        _ => "UNDEFINED".into(),
    }
}

/// Findings from a Trivy JSON report (SchemaVersion 2), keyed on each result's Class, not its
/// Target: vulnerabilities of OS and language packages, and secrets (one finding per secret).
pub fn parse_report(json: &[u8]) -> std::result::Result<Vec<Finding>, String> {
    let report: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("trivy's report is not JSON: {e}"))?;
    if report["SchemaVersion"].as_i64() != Some(2) {
        return Err(format!(
            "unsupported trivy report schema {}",
            report["SchemaVersion"]
        ));
    }
    let s = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let mut findings = Vec::new();
    for result in report["Results"].as_array().into_iter().flatten() {
        match result["Class"].as_str().unwrap_or_default() {
            "os-pkgs" | "lang-pkgs" => {
                for v in result["Vulnerabilities"].as_array().into_iter().flatten() {
                    let Some(name) = s(&v["VulnerabilityID"]) else {
                        continue;
                    };
                    let package_name = s(&v["PkgName"]);
                    let package_version = s(&v["InstalledVersion"]);
                    let fixed_version = s(&v["FixedVersion"]);
                    let mut attributes = Vec::new();
                    for (k, val) in [
                        ("package_name", &package_name),
                        ("package_version", &package_version),
                        ("fixed_in_version", &fixed_version),
                    ] {
                        if let Some(val) = val {
                            attributes.push((k.to_owned(), val.clone()));
                        }
                    }
                    if let Some(t) = result["Type"].as_str() {
                        attributes.push(("package_type".into(), t.to_owned()));
                    }
                    findings.push(Finding {
                        severity: severity(v["Severity"].as_str().unwrap_or_default()),
                        name,
                        package_name,
                        package_version,
                        fixed_version,
                        uri: s(&v["PrimaryURL"]),
                        description: s(&v["Description"]).or_else(|| s(&v["Title"])),
                        attributes,
                    });
                }
            }
            "secret" => {
                let file = s(&result["Target"]).unwrap_or_default();
                for secret in result["Secrets"].as_array().into_iter().flatten() {
                    let Some(name) = s(&secret["RuleID"]) else {
                        continue;
                    };
                    let mut attributes = vec![("file_path".to_owned(), file.clone())];
                    if let Some(line) = secret["StartLine"].as_i64() {
                        attributes.push(("start_line".into(), line.to_string()));
                    }
                    if let Some(c) = s(&secret["Category"]) {
                        attributes.push(("category".into(), c));
                    }
                    findings.push(Finding {
                        severity: severity(secret["Severity"].as_str().unwrap_or_default()),
                        name,
                        description: s(&secret["Title"]),
                        attributes,
                        ..Finding::default()
                    });
                }
            }
            _ => {}
        }
    }
    Ok(findings)
}

/// When the vulnerability database in `cache_dir` was built (`db/metadata.json` UpdatedAt).
fn vulnerability_db_updated_at(cache_dir: &std::path::Path) -> Option<i64> {
    let text = std::fs::read(cache_dir.join("db").join("metadata.json")).ok()?;
    let meta: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let at = chrono::DateTime::parse_from_rfc3339(meta["UpdatedAt"].as_str()?).ok()?;
    Some(at.timestamp_millis())
}

/// One page of an image's scan results.
pub struct ScanFindingsPage {
    pub state: ScanState,
    /// Findings per severity over the whole scan.
    pub severity_counts: Vec<(String, i64)>,
    /// `(seq, finding)`, `seq` being the pagination key.
    pub findings: Vec<(i64, Finding)>,
    pub more: bool,
}

/// Repositories' pull gates and the gate's answers per manifest, read through for
/// [`super::PULL_GATE_TTL`]; shared by manifest reads (which check) and scanning (which changes
/// what a gate decides).
pub(super) struct PullGates {
    scans: Scans,
    gates: TtlCache<i64, Option<Arc<PullGate>>>,
    /// The gate's answer per manifest id (`Some(reason)` refuses), so a busy gated image costs
    /// no queries per pull.
    gate_decisions: TtlCache<i64, Option<Arc<str>>>,
}

impl PullGates {
    pub(super) fn new(scans: Scans) -> PullGates {
        PullGates {
            scans,
            gates: TtlCache::new(super::PULL_GATE_TTL, 100_000),
            gate_decisions: TtlCache::new(super::PULL_GATE_TTL, 100_000),
        }
    }

    /// Forgets repository `repository_id`'s gate and every decision made with it (after this
    /// replica changed the gate).
    fn changed(&self, repository_id: i64) {
        self.gates.remove(&repository_id);
        // Decisions are keyed by manifest, not repository; gate changes are rare.
        self.gate_decisions.clear();
    }

    /// Forgets the decision about manifest `manifest_id` (its scan just finished).
    fn scanned(&self, manifest_id: i64) {
        self.gate_decisions.remove(&manifest_id);
    }

    /// Refuses (403 `DENIED`) a client's read of an image manifest that the repository's pull
    /// gate does not let through. Repositories without a gate cost one cache lookup.
    pub(super) async fn check(
        &self,
        name: &RepoName,
        repository_id: i64,
        row: &ManifestRow,
    ) -> Result<()> {
        let gate = match self.gates.get(&repository_id) {
            Some(gate) => gate,
            None => {
                let gate = self.scans.pull_gate(repository_id).await?.map(Arc::new);
                self.gates.insert(repository_id, gate.clone());
                gate
            }
        };
        let Some(gate) = gate else {
            return Ok(());
        };
        if !is_scannable(&row.media_type, row.artifact_type.as_deref()) {
            return Ok(());
        }
        let refusal = match self.gate_decisions.get(&row.id) {
            Some(refusal) => refusal,
            None => {
                let (status, findings) = self
                    .scans
                    .gate_facts(row.id, &gate.refused_severities())
                    .await?;
                let facts = ScanFacts {
                    status: status.as_ref().map(|(s, d)| (s.as_str(), d.as_str())),
                    findings: &findings,
                };
                let refusal = gate
                    .check(name.as_str(), &row.digest, &facts)
                    .err()
                    .map(Arc::from);
                self.gate_decisions.insert(row.id, refusal.clone());
                refusal
            }
        };
        match refusal {
            Some(reason) => Err(Error::Denied(reason.to_string())),
            None => Ok(()),
        }
    }
}

/// Scanning: configuration, manual scans, findings, the scan queue, pull gates, the outbox.
#[derive(Clone)]
pub struct ScanService {
    core: Core,
    scans: Scans,
    gates: Arc<PullGates>,
}

impl ScanService {
    pub(super) fn new(core: Core, scans: Scans, gates: Arc<PullGates>) -> ScanService {
        ScanService { core, scans, gates }
    }

    /// A repository's pull gate, if it has one.
    pub async fn pull_gate(&self, name: &RepoName) -> Result<Option<PullGate>> {
        let row = self.core.describe_repository(name).await?;
        self.scans.pull_gate(row.id).await
    }

    /// Sets (validated) or with `None` removes a repository's pull gate; false if there was none
    /// to remove. Applies at once on this replica, within [`super::PULL_GATE_TTL`] on others.
    pub async fn set_pull_gate(&self, name: &RepoName, gate: Option<&PullGate>) -> Result<bool> {
        if let Some(gate) = gate {
            gate.validate().map_err(Error::InvalidParameter)?;
        }
        let row = self.core.describe_repository(name).await?;
        let changed = self.scans.set_pull_gate(row.id, gate).await?;
        self.gates.changed(row.id);
        Ok(changed)
    }

    /// ECR's registry scanning configuration.
    pub async fn registry_scanning(&self) -> Result<RegistryScanningConfiguration> {
        self.scans.registry_scanning().await
    }

    /// Validates and saves the registry scanning configuration; pushes committed after this
    /// follow it.
    pub async fn put_registry_scanning(
        &self,
        config: &RegistryScanningConfiguration,
    ) -> Result<()> {
        config.validate().map_err(Error::InvalidParameter)?;
        self.scans.put_registry_scanning(config).await
    }

    /// Turns scan on push on or off for a repository.
    pub async fn set_scan_on_push(&self, name: &RepoName, on: bool) -> Result<RepositoryRow> {
        let row = self.core.describe_repository(name).await?;
        self.scans.set_scan_on_push(row.id, on).await?;
        Ok(RepositoryRow {
            scan_on_push: on,
            ..row
        })
    }

    /// Queues a scan of an image now (a manual scan; no daily limit). `ManifestUnknown` if the
    /// repository has no such manifest.
    pub async fn start_image_scan(&self, name: &RepoName, digest: &Digest) -> Result<()> {
        let row = self.core.describe_repository(name).await?;
        if self.scans.queue_scan(row.id, &digest.to_string()).await? {
            Ok(())
        } else {
            Err(Error::ManifestUnknown(format!(
                "manifest {digest} is not in repository {name}"
            )))
        }
    }

    /// An image's scan state, if it was ever scanned or queued.
    pub async fn scan_state(&self, name: &RepoName, digest: &Digest) -> Result<Option<ScanState>> {
        let row = self.core.describe_repository(name).await?;
        self.scans.scan_state(row.id, &digest.to_string()).await
    }

    /// The scan states of the images `manifest_ids` (manifests of one repository, as a listing
    /// read them) that were ever scanned or queued, each with its findings' severity counts when
    /// complete.
    pub async fn scan_summaries(
        &self,
        manifest_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, (ScanState, Vec<(String, i64)>)>> {
        self.scans.scan_summaries(manifest_ids).await
    }

    /// A page of an image's findings after `after_seq` (of one severity when given); `None` if
    /// it was never scanned.
    pub async fn scan_findings_page(
        &self,
        name: &RepoName,
        digest: &Digest,
        after_seq: i64,
        severity: Option<&str>,
        limit: usize,
    ) -> Result<Option<ScanFindingsPage>> {
        let Some(state) = self.scan_state(name, digest).await? else {
            return Ok(None);
        };
        let severity_counts = self.scans.scan_severity_counts(state.manifest_id).await?;
        let mut findings = self
            .scans
            .scan_findings(state.manifest_id, after_seq, severity, limit as i64 + 1)
            .await?;
        let more = findings.len() > limit;
        findings.truncate(limit);
        Ok(Some(ScanFindingsPage {
            state,
            severity_counts,
            findings,
            more,
        }))
    }

    /// Takes one due scan job and runs it; false when none was due.
    pub async fn scan_next(
        &self,
        scanner: &Scanner,
        credential: impl FnOnce(&ScanJob) -> Result<Credential>,
    ) -> Result<bool> {
        let now = now_millis();
        // The lease outlasts the child's timeout, so no other worker takes the job meanwhile.
        let lease = (scanner.config.timeout_secs.max(1) as i64 + 60) * 1000;
        let Some(job) = self.scans.take_scan_job(now, now + lease).await? else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        let outcome = self.scan_job(scanner, &job, credential).await;
        let result = match &outcome {
            ScanOutcome::Complete { .. } => ScanResult::Complete,
            ScanOutcome::Failed {
                retry_at: Some(_), ..
            } => ScanResult::Retried,
            ScanOutcome::Failed { .. } => ScanResult::Failed,
            ScanOutcome::Unsupported(_) => ScanResult::Unsupported,
        };
        self.core.metrics.scan(result, started.elapsed());
        if let ScanOutcome::Failed { reason, .. } = &outcome {
            tracing::warn!(repository = %job.repository, digest = %job.digest, attempt = job.attempts, %reason, "scan failed");
        } else {
            tracing::info!(repository = %job.repository, digest = %job.digest, "scan finished");
        }
        self.scans.finish_scan(&job, &outcome).await?;
        // The pull gate sees the result at once here (other replicas within its cache time).
        self.gates.scanned(job.manifest_id);
        Ok(true)
    }

    async fn scan_job(
        &self,
        scanner: &Scanner,
        job: &ScanJob,
        credential: impl FnOnce(&ScanJob) -> Result<Credential>,
    ) -> ScanOutcome {
        let failed = |reason: String| {
            let retry_at =
                (job.attempts < i64::from(scanner.config.max_attempts.max(1))).then(|| {
                    let backoff = scanner.config.retry_base_secs.max(1) as i64
                        * (1i64 << (job.attempts - 1).clamp(0, 16));
                    now_millis() + backoff * 1000
                });
            ScanOutcome::Failed { reason, retry_at }
        };
        let credential = match credential(job) {
            Ok(c) => c,
            Err(e) => return failed(format!("cannot issue the scan credential: {e}")),
        };
        let image = format!("{}/{}@{}", scanner.registry, job.repository, job.digest);
        match scanner.run(&image, &credential).await {
            Ok(json) => match parse_report(&json) {
                Ok(findings) => ScanOutcome::Complete {
                    findings,
                    vulnerability_source_updated_at: vulnerability_db_updated_at(
                        &scanner.cache_dir,
                    ),
                },
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vulnerabilities_and_secrets_by_class() {
        let report = serde_json::json!({
            "SchemaVersion": 2,
            "Results": [
                {"Target": "x (alpine 3.14.2)", "Class": "os-pkgs", "Type": "alpine",
                 "Vulnerabilities": [{"VulnerabilityID": "CVE-2021-3711", "PkgName": "libcrypto1.1",
                   "InstalledVersion": "1.1.1k-r0", "FixedVersion": "1.1.1l-r0", "Severity": "CRITICAL",
                   "PrimaryURL": "https://avd.aquasec.com/nvd/cve-2021-3711", "Title": "t"}]},
                {"Target": "/app/creds", "Class": "secret",
                 "Secrets": [{"RuleID": "aws-access-key-id", "Category": "AWS", "Severity": "CRITICAL",
                   "Title": "AWS Access Key ID", "StartLine": 2}]},
                {"Target": "Java", "Class": "license"}
            ]
        });
        let f = parse_report(report.to_string().as_bytes()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "CVE-2021-3711");
        assert_eq!(f[0].severity, "CRITICAL");
        assert!(f[0]
            .attributes
            .contains(&("fixed_in_version".into(), "1.1.1l-r0".into())));
        assert_eq!(f[1].name, "aws-access-key-id");
        assert!(f[1].attributes.contains(&("start_line".into(), "2".into())));
        assert!(f[1]
            .attributes
            .contains(&("file_path".into(), "/app/creds".into())));
        assert!(parse_report(b"{}").is_err());
    }
}
