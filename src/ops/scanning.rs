//! Scanning operations: PutImageScanningConfiguration, StartImageScan,
//! DescribeImageScanFindings, Put/GetRegistryScanningConfiguration (ECR's), and Berth's pull
//! gate (GetPullGate, PutPullGate, DeletePullGate: which findings refuse a pull). Findings are
//! paged with the same opaque tokens on every door.

use super::images::find_image;
use super::repositories::{in_repository, repository_name};
use super::shapes::{
    timestamp, Attribute, DeletePullGateRequest, DescribeImageScanFindingsRequest,
    DescribeImageScanFindingsResponse, EmptyResponse, GetPullGateRequest,
    GetRegistryScanningConfigurationRequest, GetRegistryScanningConfigurationResponse,
    ImageIdentifier, ImageScanFinding, ImageScanFindings, ImageScanStatus,
    ImageScanningConfiguration, PullGateResponse, PutImageScanningConfigurationRequest,
    PutImageScanningConfigurationResponse, PutPullGateRequest,
    PutRegistryScanningConfigurationRequest, PutRegistryScanningConfigurationResponse,
    StartImageScanRequest, StartImageScanResponse,
};
use super::{decode_token, encode_token, max_results, Context, Operation};
use crate::access::{Permission, Resource};
use crate::error::{Error, Missing, Result};
use crate::oci::{Digest, RepoName};
use crate::policy::scanning::{PullGate, RegistryScanningConfiguration};
use crate::policy::Action;

impl Operation for PutImageScanningConfigurationRequest {
    const NAME: &'static str = "ecr:PutImageScanningConfiguration";
    type Output = PutImageScanningConfigurationResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutImageScanningConfiguration,
            Resource::Repository(&self.repository_name),
        )
    }

    /// A repository's scan-on-push flag.
    async fn run(self, cx: &Context<'_>) -> Result<PutImageScanningConfigurationResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let on = self.image_scanning_configuration.scan_on_push;
        let row = cx
            .registry
            .scans()
            .set_scan_on_push(&name, on)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        cx.note(format!("scanOnPush={on}"));
        Ok(PutImageScanningConfigurationResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: row.name,
            image_scanning_configuration: ImageScanningConfiguration {
                scan_on_push: row.scan_on_push,
            },
        })
    }
}

/// The digest of the image `id` names in `name`, and the id with that digest filled in.
async fn scanned_image(
    cx: &Context<'_>,
    name: &RepoName,
    id: &ImageIdentifier,
) -> Result<(Digest, ImageIdentifier)> {
    let manifest = find_image(cx, name, id).await?;
    let digest = Digest::parse(&manifest.digest)?;
    let id = ImageIdentifier {
        image_digest: Some(manifest.digest),
        image_tag: id.image_tag.clone(),
    };
    Ok((digest, id))
}

impl Operation for StartImageScanRequest {
    const NAME: &'static str = "ecr:StartImageScan";
    type Output = StartImageScanResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::StartImageScan,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Queues a scan now (Berth has no once-a-day limit).
    async fn run(self, cx: &Context<'_>) -> Result<StartImageScanResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let (digest, image_id) = scanned_image(cx, &name, &self.image_id).await?;
        cx.registry
            .scans()
            .start_image_scan(&name, &digest)
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        cx.note(format!("scan of {digest} queued"));
        Ok(StartImageScanResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            image_id,
            image_scan_status: ImageScanStatus {
                status: "IN_PROGRESS".into(),
                description: None,
            },
        })
    }
}

/// The severities findings are stored with (ECR's), most severe first.
pub const SEVERITIES: &[&str] = &[
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// The listing name of findings tokens: a token holds the image's digest and the sequence
/// number of the last finding shown, and fits no other image.
const FINDINGS: &str = "scan-findings";

impl Operation for DescribeImageScanFindingsRequest {
    const NAME: &'static str = "ecr:DescribeImageScanFindings";
    type Output = DescribeImageScanFindingsResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeImageScanFindings,
            Resource::Repository(&self.repository_name),
        )
    }

    /// The scan status, severity counts and a page of findings.
    async fn run(self, cx: &Context<'_>) -> Result<DescribeImageScanFindingsResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let limit = max_results(self.max_results, 100)?;
        let severity = match self.severity.as_deref() {
            None | Some("") => None,
            Some(s) if SEVERITIES.contains(&s) => Some(s.to_owned()),
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "Invalid parameter at 'severity': expected one of {}, got '{}'",
                    SEVERITIES.join(", "),
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        let after = match self.next_token.as_deref() {
            Some(token) => decode_token(FINDINGS, token, 2)?,
            None => Vec::new(),
        };
        let (digest, image_id) = scanned_image(cx, &name, &self.image_id).await?;
        let invalid_token = || {
            Error::InvalidParameter(
                "Invalid parameter at 'nextToken': the token is not valid".into(),
            )
        };
        let after_seq = match after.as_slice() {
            [d, seq] if *d == digest.to_string() => {
                seq.parse::<i64>().map_err(|_| invalid_token())?
            }
            [] => -1,
            _ => return Err(invalid_token()),
        };
        let page = cx
            .registry
            .scans()
            .scan_findings_page(&name, &digest, after_seq, severity.as_deref(), limit)
            .await
            .map_err(in_repository(cx, name.as_str()))?
            .ok_or_else(|| {
                Error::Missing(
                    Missing::Scan,
                    format!(
                        "Image scan does not exist for the image with '{}' in the repository with name '{name}' in the registry with id '{}'",
                        super::images::describe_image_id(&self.image_id),
                        cx.registry_id()
                    ),
                )
            })?;
        let next_token = match (page.more, page.findings.last()) {
            (true, Some((seq, _))) => Some(encode_token(
                FINDINGS,
                &[&digest.to_string(), &seq.to_string()],
            )),
            _ => None,
        };
        let complete = page.state.status == "COMPLETE";
        Ok(DescribeImageScanFindingsResponse {
            registry_id: cx.registry_id().to_owned(),
            repository_name: name.to_string(),
            image_id,
            image_scan_status: ImageScanStatus {
                status: page.state.status.clone(),
                description: Some(page.state.description.clone()),
            },
            image_scan_findings: complete.then(|| ImageScanFindings {
                image_scan_completed_at: page.state.completed_at.map(timestamp),
                vulnerability_source_updated_at: page
                    .state
                    .vulnerability_source_updated_at
                    .map(timestamp),
                finding_severity_counts: page.severity_counts.into_iter().collect(),
                findings: page
                    .findings
                    .into_iter()
                    .map(|(_, f)| ImageScanFinding {
                        name: f.name,
                        description: f.description,
                        uri: f.uri,
                        severity: f.severity,
                        attributes: f
                            .attributes
                            .into_iter()
                            .map(|(key, value)| Attribute { key, value })
                            .collect(),
                    })
                    .collect(),
            }),
            next_token,
        })
    }
}

impl Operation for PutRegistryScanningConfigurationRequest {
    const NAME: &'static str = "ecr:PutRegistryScanningConfiguration";
    type Output = PutRegistryScanningConfigurationResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::PutRegistryScanningConfiguration, Resource::Registry)
    }

    /// Which repositories scan on push, by wildcard rules (validated by the service).
    async fn run(self, cx: &Context<'_>) -> Result<PutRegistryScanningConfigurationResponse> {
        let config = RegistryScanningConfiguration {
            scan_type: self.scan_type.unwrap_or_else(|| "BASIC".into()),
            rules: self.rules,
        };
        cx.registry.scans().put_registry_scanning(&config).await?;
        cx.note(format!("{} rules", config.rules.len()));
        Ok(PutRegistryScanningConfigurationResponse {
            registry_scanning_configuration: config,
        })
    }
}

impl Operation for GetRegistryScanningConfigurationRequest {
    const NAME: &'static str = "ecr:GetRegistryScanningConfiguration";
    type Output = GetRegistryScanningConfigurationResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::GetRegistryScanningConfiguration, Resource::Registry)
    }

    /// `BASIC` without rules until one is put.
    async fn run(self, cx: &Context<'_>) -> Result<GetRegistryScanningConfigurationResponse> {
        Ok(GetRegistryScanningConfigurationResponse {
            registry_id: cx.registry_id().to_owned(),
            scanning_configuration: cx.registry.scans().registry_scanning().await?,
        })
    }
}

fn no_pull_gate(name: &RepoName) -> Error {
    Error::NotFound(format!("repository '{name}' has no pull gate"))
}

fn pull_gate_shape(cx: &Context<'_>, name: &RepoName, gate: PullGate) -> PullGateResponse {
    PullGateResponse {
        registry_id: cx.registry_id().to_owned(),
        repository_name: name.to_string(),
        severity_threshold: gate.severity_threshold,
        allowlist: gate.allowlist,
        allow_unscanned: gate.allow_unscanned,
    }
}

impl Operation for GetPullGateRequest {
    const NAME: &'static str = "berth:GetPullGate";
    type Output = PullGateResponse;

    /// Reading a repository's settings, as DescribeRepositories does.
    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeRepositories,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<PullGateResponse> {
        let name = repository_name(&self.repository_name)?;
        let gate = cx
            .registry
            .scans()
            .pull_gate(&name)
            .await
            .map_err(in_repository(cx, name.as_str()))?
            .ok_or_else(|| no_pull_gate(&name))?;
        Ok(pull_gate_shape(cx, &name, gate))
    }
}

impl Operation for PutPullGateRequest {
    const NAME: &'static str = "berth:PutPullGate";
    type Output = PullGateResponse;

    /// The gate is a repository setting like scanning: `ecr:PutImageScanningConfiguration`.
    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutImageScanningConfiguration,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Sets (replaces) the gate; applies at once on this replica, within 2 s on the others.
    async fn run(self, cx: &Context<'_>) -> Result<PullGateResponse> {
        let name = repository_name(&self.repository_name)?;
        let gate = PullGate {
            severity_threshold: self
                .severity_threshold
                .ok_or_else(|| Error::InvalidParameter("severityThreshold is required".into()))?,
            allowlist: self.allowlist.unwrap_or_default(),
            allow_unscanned: self.allow_unscanned.unwrap_or(false),
        };
        cx.registry
            .scans()
            .set_pull_gate(&name, Some(&gate))
            .await
            .map_err(in_repository(cx, name.as_str()))?;
        cx.note(format!(
            "pull gate severityThreshold={} allowlist={} allowUnscanned={}",
            gate.severity_threshold,
            gate.allowlist.len(),
            gate.allow_unscanned
        ));
        Ok(pull_gate_shape(cx, &name, gate))
    }
}

impl Operation for DeletePullGateRequest {
    const NAME: &'static str = "berth:DeletePullGate";
    type Output = EmptyResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::PutImageScanningConfiguration,
            Resource::Repository(&self.repository_name),
        )
    }

    async fn run(self, cx: &Context<'_>) -> Result<EmptyResponse> {
        let name = repository_name(&self.repository_name)?;
        if !cx
            .registry
            .scans()
            .set_pull_gate(&name, None)
            .await
            .map_err(in_repository(cx, name.as_str()))?
        {
            return Err(no_pull_gate(&name));
        }
        cx.note("pull gate removed");
        Ok(EmptyResponse {})
    }
}
