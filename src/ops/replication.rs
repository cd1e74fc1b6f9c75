//! Replication: PutReplicationConfiguration (ECR's grammar through ECR's door, Berth's
//! extensions through the REST API), DescribeImageReplicationStatus, and the REST API's task
//! listing and retry. DescribeRegistry, which shows the configuration, is in `registry`.

use super::images::find_image;
use super::repositories::repository_name;
use super::shapes::ReplicationConfiguration;
use super::shapes::{
    DescribeImageReplicationStatusRequest, DescribeImageReplicationStatusResponse, ImageIdentifier,
    ImageReplicationStatus, ListReplicationTasksRequest, PutReplicationConfigurationRequest,
    PutReplicationConfigurationResponse, ReplicationTask, ReplicationTaskPage,
    RetryReplicationRequest, RetryReplicationResponse, StartReplicationBackfillRequest,
    StartReplicationBackfillResponse,
};
use super::{Context, Operation};
use crate::access::{Access, Permission, Resource};
use crate::error::{Error, Result};
use crate::policy::Action;

impl Operation for PutReplicationConfigurationRequest {
    const NAME: &'static str = "ecr:PutReplicationConfiguration";
    type Output = PutReplicationConfigurationResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::PutReplicationConfiguration, Resource::Registry)
    }

    fn audited_resource(&self, _access: &Access) -> String {
        "replication".into()
    }

    /// Validates against ECR's limits (each destination must be a registry this one trusts, in
    /// its configured region, and not this registry) and replaces the configuration. Images
    /// pushed from now on replicate; earlier ones do not (as in ECR).
    async fn run(self, cx: &Context<'_>) -> Result<PutReplicationConfigurationResponse> {
        let configuration = self.replication_configuration.ok_or_else(|| {
            Error::InvalidParameter(
                "Invalid parameter at 'replicationConfiguration': the member is required".into(),
            )
        })?;
        let configuration: ReplicationConfiguration = serde_json::from_value(configuration)
            .map_err(|e| {
                Error::InvalidParameter(format!(
                    "Invalid parameter at 'replicationConfiguration': {e}"
                ))
            })?;
        let trusted = cx.access.trusted_registries();
        let rules = cx.registry.replication().rules();
        configuration
            .validate(
                self.grammar.0,
                (cx.registry_id(), cx.region()),
                |d| match &d.target {
                    Some(name) => rules.is_target(name),
                    None => trusted.config_in(&d.registry_id, &d.region).is_some(),
                },
            )
            .map_err(|e| {
                Error::InvalidParameter(format!("Invalid replication configuration: {e}"))
            })?;
        cx.registry
            .replication()
            .put_configuration(&configuration)
            .await?;
        cx.note(format!(
            "{} rules, {} destinations",
            configuration.rules.len(),
            configuration
                .rules
                .iter()
                .map(|r| r.destinations.len())
                .sum::<usize>()
        ));
        Ok(PutReplicationConfigurationResponse {
            replication_configuration: configuration,
        })
    }
}

impl Operation for DescribeImageReplicationStatusRequest {
    const NAME: &'static str = "ecr:DescribeImageReplicationStatus";
    type Output = DescribeImageReplicationStatusResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(
            Action::DescribeImageReplicationStatus,
            Resource::Repository(&self.repository_name),
        )
    }

    /// Per destination the image was sent to: `IN_PROGRESS`, `COMPLETE`, or `FAILED` with the
    /// failure code.
    async fn run(self, cx: &Context<'_>) -> Result<DescribeImageReplicationStatusResponse> {
        cx.check_registry_id(self.registry_id.as_deref())?;
        let name = repository_name(&self.repository_name)?;
        let manifest = find_image(cx, &name, &self.image_id).await?;
        let statuses = cx
            .registry
            .replication()
            .image_status(name.as_str(), &manifest.digest)
            .await?;
        Ok(DescribeImageReplicationStatusResponse {
            repository_name: name.to_string(),
            image_id: ImageIdentifier {
                image_digest: Some(manifest.digest),
                image_tag: self.image_id.image_tag,
            },
            replication_statuses: statuses
                .into_iter()
                .map(|s| ImageReplicationStatus {
                    region: s.destination.region,
                    registry_id: s.destination.registry_id,
                    target: s.destination.target,
                    status: s.status,
                    failure_code: s.failure_code,
                })
                .collect(),
        })
    }
}

/// The most tasks one page lists.
const MAX_TASK_PAGE: i64 = 1000;

impl Operation for ListReplicationTasksRequest {
    const NAME: &'static str = "berth:ListReplicationTasks";
    type Output = ReplicationTaskPage;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::DescribeRegistry, Resource::Registry)
    }

    /// Tasks waiting, being sent or failed, oldest first: what lags and what failed, per
    /// destination.
    async fn run(self, cx: &Context<'_>) -> Result<ReplicationTaskPage> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=MAX_TASK_PAGE).contains(&limit) {
            return Err(Error::InvalidParameter(format!(
                "limit must be 1 to {MAX_TASK_PAGE}, not {limit}"
            )));
        }
        let tasks = cx
            .registry
            .replication()
            .open_tasks(self.after.unwrap_or(0), limit)
            .await?;
        let (open, failed) = cx.registry.replication().counts().await?;
        let next = (tasks.len() as i64 == limit)
            .then(|| tasks.last().map(|t| t.id))
            .flatten();
        Ok(ReplicationTaskPage {
            open,
            failed,
            tasks: tasks
                .into_iter()
                .map(|t| ReplicationTask {
                    id: t.id,
                    repository: t.repository,
                    digest: t.digest,
                    tag: Some(t.tag).filter(|t| !t.is_empty()),
                    registry_id: t.registry_id,
                    region: t.region,
                    target: Some(t.target).filter(|t| !t.is_empty()),
                    status: t.status,
                    attempts: t.attempts,
                    failure_code: t.failure_code,
                    failure_reason: t.failure_reason,
                    created_at: t.created_at,
                    updated_at: t.updated_at,
                })
                .collect(),
            next,
        })
    }
}

impl Operation for StartReplicationBackfillRequest {
    const NAME: &'static str = "berth:StartReplicationBackfill";
    type Output = StartReplicationBackfillResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::PutReplicationConfiguration, Resource::Registry)
    }

    fn audited_resource(&self, _access: &Access) -> String {
        "replication".into()
    }

    /// Writes tasks for every image and tag the rules select that has none (images pushed
    /// before the rules); their progress shows in the task listing.
    async fn run(self, cx: &Context<'_>) -> Result<StartReplicationBackfillResponse> {
        let tasks = cx.registry.replication().backfill().await?;
        cx.note(format!("{tasks} backfill tasks"));
        Ok(StartReplicationBackfillResponse { tasks })
    }
}

impl Operation for RetryReplicationRequest {
    const NAME: &'static str = "berth:RetryReplication";
    type Output = RetryReplicationResponse;

    fn permission(&self) -> Permission<'_> {
        Permission::Ecr(Action::PutReplicationConfiguration, Resource::Registry)
    }

    fn audited_resource(&self, _access: &Access) -> String {
        "replication".into()
    }

    /// Starts `FAILED` tasks again (all, one repository's, or one image's).
    async fn run(self, cx: &Context<'_>) -> Result<RetryReplicationResponse> {
        if self.image_digest.is_some() && self.repository.is_none() {
            return Err(Error::InvalidParameter(
                "image_digest needs repository".into(),
            ));
        }
        if let Some(name) = &self.repository {
            repository_name(name)?;
        }
        if let Some(digest) = &self.image_digest {
            crate::oci::Digest::parse(digest)?;
        }
        let restarted = cx
            .registry
            .replication()
            .retry_failed(self.repository.as_deref(), self.image_digest.as_deref())
            .await?;
        cx.note(format!("{restarted} failed tasks restarted"));
        Ok(RetryReplicationResponse { restarted })
    }
}
