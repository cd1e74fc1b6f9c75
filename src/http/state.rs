//! What every request handler of every transport (`/v2`, `/token`, the REST API, the ECR API)
//! is given: the services, the configuration and this process's identity. `crate::app` builds
//! it; the transports only read it.

use std::sync::Arc;

use crate::access::{Access, AuditLog, Identities};
use crate::config::Config;
use crate::pull_through::PullThrough;
use crate::service::Registry;

/// Everything a request handler may use.
pub struct App {
    pub config: Config,
    pub access: Arc<Access>,
    /// Users, robots, groups and access keys as the admin API manages them.
    pub identities: Arc<Identities>,
    pub audit: AuditLog,
    /// Web console sessions.
    pub console: Arc<crate::access::ConsoleSignIns>,
    pub registry: Arc<Registry>,
    /// Repositories under pull-through rules.
    pub pull_through: Arc<PullThrough>,
    /// Sends pushed images to other registries (run by `app::spawn_jobs`).
    pub replicator: Arc<crate::replication::Replicator>,
    /// Names this process in leases and logs; unique per start.
    pub replica_id: String,
    /// This process as a lease holder (its id is `replica_id`).
    pub holder: crate::meta::LeaseHolder,
}

impl App {
    /// The services an operation runs on.
    pub fn services(&self) -> crate::ops::Services<'_> {
        crate::ops::Services {
            registry: &self.registry,
            access: &self.access,
            identities: &self.identities,
            audit: &self.audit,
            pull_through: &self.pull_through,
        }
    }
}

pub type AppState = Arc<App>;
