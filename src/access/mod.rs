//! Who is calling and what they may do. [`Access`] authenticates callers (`login`: passwords,
//! registry tokens, ECR registry passwords, access keys) against the identity tables, decides
//! ECR actions with the policy engine (`decide`, with the policy documents and settings it
//! reads; `gate`: one `authorize` for every door; `simulator`: the same decision for a principal
//! an admin names), and issues registry tokens signed with keys every replica shares
//! (`tokens`, `keys`). [`Identities`] (`manage`, `bootstrap`) holds the identity management use
//! cases of the admin API (users, robots, groups, access keys, identity policies) and the
//! bootstrap admin; it changes identities through `Access` so that this replica's caches forget
//! at once. [`AuditLog`] (`audit`) is the audit log every door writes to.
//!
//! The 5-second rule: a changed password, an expired or deleted robot account or an edited
//! policy takes effect on every replica within 5 seconds. Nothing here is invalidated across
//! replicas; instead every cached principal and policy document lives at most [`CACHE_TTL`], and
//! every request re-checks its password (against the stored hash of a principal at most that
//! old) or its token's credential version. Verified passwords are remembered longer
//! ([`VERIFIED_TTL`]) because the memory is keyed by the stored hash: a new password means a new
//! hash, so a remembered old password stops matching as soon as the principal is reloaded. Tokens are also re-checked against the current policies on each request, so
//! an access claim granted before a Deny was added stops working with the same delay.

mod audit;
mod bootstrap;
mod decide;
mod federation;
pub mod gate;
mod keys;
mod limiter;
mod login;
mod manage;
mod sessions;
mod simulator;
mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::credential::CredentialKind;
use crate::auth::token::{Claims, ScanGrant};
use crate::config::Config;
use crate::error::Result;
use crate::meta::{IdentityStore, Meta};
use crate::policy::{Action, Decision, Identity, PolicyDocument, PolicyKind, ScopeAction};
use chrono::{DateTime, Utc};

use crate::util::TtlCache;
pub use audit::{AuditLog, AuditOutcome, MAX_AUDIT_PAGE};
pub use bootstrap::ADMIN_PASSWORD_FILE;
pub use federation::{TrustedRegistries, TrustedRegistryStatus};
pub use gate::{Caller, Door, Permission, Resource, ADMIN_ACTION};
pub use keys::SigningKeys;
use limiter::LoginLimiter;
pub use manage::{
    validate_name, AccessKeyInfo, GroupInfo, Identities, NewAccessKey, PrincipalInfo,
    RESERVED_USER_NAMES,
};
pub use sessions::{ConsoleSignIns, OpenedSession};
pub use simulator::{Simulation, SimulationRequest};

/// The longest any cached identity, verified credential or policy document is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a verified password is remembered (see the module doc for why this may exceed
/// [`CACHE_TTL`] without delaying revocation).
pub const VERIFIED_TTL: Duration = Duration::from_secs(600);
/// Most argon2 checks running at once; more wait their turn.
const MAX_CONCURRENT_ARGON2: usize = 4;
/// Lifetime of the registry password returned by ECR's `GetAuthorizationToken` for this registry.
pub const REGISTRY_PASSWORD_TTL: Duration = Duration::from_secs(12 * 3600);
/// The Basic user name that carries an ECR registry password (`AWS:<token>`).
pub const ECR_USERNAME: &str = "AWS";
/// How long a decision is reused. It sits in front of the principal and policy caches, so the
/// worst-case delay for a change is `CACHE_TTL + DECISION_TTL` (3 s), inside the 5-second rule.
pub const DECISION_TTL: Duration = Duration::from_secs(1);

/// How long an accepted Basic header maps straight to its principal. It sits in front of the
/// principal cache: a changed password is refused within `BASIC_TTL + CACHE_TTL` (3 s).
pub const BASIC_TTL: Duration = Duration::from_secs(1);

/// What a cached [`Access::may`] answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ScopeKey {
    principal: Option<PrincipalKey>,
    scope: ScopeAction,
    repository: String,
    source_ip: Option<IpAddr>,
    secure_transport: bool,
}

/// Everything a cached decision depends on (the clock aside: `aws:CurrentTime` conditions may
/// answer up to [`DECISION_TTL`] late).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    principal: Option<PrincipalKey>,
    action: Action,
    repository: Option<String>,
    source_ip: Option<IpAddr>,
    secure_transport: bool,
}

/// The setting that turns create-on-push off (`false`) or on.
const CREATE_ON_PUSH: &str = "create_on_push";
/// How long rotated-out signing keys keep verifying: the longest-lived token they may have signed.
const MIN_KEY_OVERLAP: Duration = REGISTRY_PASSWORD_TTL;

/// A user or a robot account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    User,
    Robot,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Robot => "robot",
        }
    }

    /// The kind of credential its password is: a user's password or a robot's secret.
    pub fn secret_kind(self) -> CredentialKind {
        match self {
            PrincipalKind::User => CredentialKind::Password,
            PrincipalKind::Robot => CredentialKind::RobotSecret,
        }
    }
}

/// A signed-in user or robot account, as loaded (at most [`CACHE_TTL`] old), or a user or robot
/// of a trusted registry (see [`Principal::foreign_account`]).
#[derive(Debug, Clone)]
pub struct Principal {
    /// Its row id here; 0 for a principal of another registry, which has no row here.
    pub id: i64,
    pub kind: PrincipalKind,
    pub name: String,
    pub credential_version: i64,
    pub expires_at: Option<i64>,
    password_hash: Option<String>,
    /// Groups (id, name) the principal belongs to.
    pub groups: Vec<(i64, String)>,
    pub identity: Identity,
    /// The trusted registry a principal of another registry belongs to (signed in here with a
    /// password that registry signed); `None` for this registry's own principals. Only
    /// resource policies of this registry decide for it.
    pub foreign_account: Option<String>,
}

/// Who a cached decision was made for: a principal of this registry at one credential version,
/// or one of another registry by ARN (they have no row id here).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PrincipalKey {
    Local { id: i64, credential_version: i64 },
    Foreign(String),
}

impl Principal {
    /// The name used to log in and the token subject: `<name>` or `robot/<name>`; the ARN for a
    /// principal of another registry (a bare name would be read as one of this registry's).
    pub fn login_name(&self) -> String {
        if self.foreign_account.is_some() {
            return self.identity.arn.clone();
        }
        match self.kind {
            PrincipalKind::User => self.name.clone(),
            PrincipalKind::Robot => format!("robot/{}", self.name),
        }
    }

    /// A user or robot of the trusted registry `account`, from its ARN
    /// (`arn:aws:iam::<account>:user/<name>` or `user/robot/<name>`), or that registry itself
    /// replicating (`arn:aws:iam::<account>:root`, see [`Principal::is_replicator`]); `None` for
    /// any other ARN.
    fn foreign(account: &str, arn: &str) -> Option<Principal> {
        if arn == crate::policy::root_arn(account) {
            return Some(Principal {
                id: 0,
                kind: PrincipalKind::User,
                name: "root".to_owned(),
                credential_version: 0,
                expires_at: None,
                password_hash: None,
                groups: Vec::new(),
                identity: Identity {
                    arn: arn.to_owned(),
                    username: "root".to_owned(),
                    groups: Vec::new(),
                },
                foreign_account: Some(account.to_owned()),
            });
        }
        let path = arn.strip_prefix(&format!("arn:aws:iam::{account}:user/"))?;
        let (kind, name) = match path.strip_prefix("robot/") {
            Some(name) => (PrincipalKind::Robot, name),
            None => (PrincipalKind::User, path),
        };
        validate_name("principal", name).ok()?;
        let identity = match kind {
            PrincipalKind::User => Identity::user(account, name),
            PrincipalKind::Robot => Identity::robot(account, name),
        };
        Some(Principal {
            id: 0,
            kind,
            name: name.to_owned(),
            credential_version: 0,
            expires_at: None,
            password_hash: None,
            groups: Vec::new(),
            identity,
            foreign_account: Some(account.to_owned()),
        })
    }

    /// A trusted registry's replication principal (its root): it pulls and pushes only as
    /// `ecr:ReplicateImage` allows, as ECR's replication does.
    pub fn is_replicator(&self) -> bool {
        self.foreign_account
            .as_deref()
            .is_some_and(|account| self.identity.arn == crate::policy::root_arn(account))
    }

    fn cache_key(&self) -> PrincipalKey {
        match &self.foreign_account {
            Some(_) => PrincipalKey::Foreign(self.identity.arn.clone()),
            None => PrincipalKey::Local {
                id: self.id,
                credential_version: self.credential_version,
            },
        }
    }

    pub fn arn(&self) -> &str {
        &self.identity.arn
    }

    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// Splits a login name into kind and name: `robot/<name>` (or Harbor's `robot$<name>`) is a
/// robot account, anything else a user.
pub fn parse_login_name(login: &str) -> (PrincipalKind, &str) {
    match login
        .strip_prefix("robot/")
        .or_else(|| login.strip_prefix("robot$"))
    {
        Some(name) => (PrincipalKind::Robot, name),
        None => (PrincipalKind::User, login),
    }
}

/// The credential a caller presented: its kind (which decides which doors it opens), when it
/// expires, and the access key behind it. Nothing obtained with a credential outlives it or
/// survives the access key that minted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: CredentialKind,
    /// Seconds since the epoch at which the credential expires, if it does.
    pub expires_at: Option<i64>,
    /// The access key behind an ECR registry password, and behind what was obtained with one.
    pub access_key_id: Option<String>,
}

impl Credential {
    /// A credential of `kind` that does not expire on its own (passwords, secrets, access keys).
    pub fn of(kind: CredentialKind) -> Credential {
        Credential {
            kind,
            expires_at: None,
            access_key_id: None,
        }
    }

    /// The credential a verified token stands for: its `exp` and access key.
    fn of_token(kind: CredentialKind, claims: &Claims) -> Credential {
        Credential {
            kind,
            expires_at: Some(claims.exp),
            access_key_id: claims.akid.clone(),
        }
    }
}

/// The caller of one request: anonymous or a principal, the credential it presented, and the
/// token, if that credential was one.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub principal: Option<Arc<Principal>>,
    /// What the caller presented; `None` for callers with no credentials at all.
    pub credential: Option<Credential>,
    /// The verified registry token, when the caller presented one: requests may do only what
    /// it grants (and what the policies still allow).
    pub token: Option<Arc<Claims>>,
    /// Berth's own scanner and the one image it may read (see [`Subject::is_scanner`]).
    pub scan: Option<ScanGrant>,
}

impl Subject {
    pub fn anonymous() -> Subject {
        Subject::default()
    }

    /// A principal signed in with `credential`.
    pub fn signed_in(principal: Arc<Principal>, credential: Credential) -> Subject {
        Subject {
            principal: Some(principal),
            credential: Some(credential),
            token: None,
            scan: None,
        }
    }

    /// Berth's own scanner: it reads one image (no policy grants it more or less), its reads
    /// bypass the pull gate and are not recorded as pulls.
    pub fn is_scanner(&self) -> bool {
        self.scan.is_some()
    }

    /// No principal and not the scanner: policies decide for `anonymous`.
    pub fn is_anonymous(&self) -> bool {
        self.principal.is_none() && self.scan.is_none()
    }

    /// The kind of credential presented, if any.
    pub fn credential_kind(&self) -> Option<CredentialKind> {
        self.credential.as_ref().map(|c| c.kind)
    }

    /// Who the policies decide for.
    pub fn requester(&self) -> crate::policy::Requester {
        match &self.principal {
            Some(p) => crate::policy::Requester::Authenticated(p.identity.clone()),
            None => crate::policy::Requester::Anonymous,
        }
    }

    /// The name shown in logs and audit records.
    pub fn display_name(&self) -> String {
        match (&self.principal, &self.scan) {
            (Some(p), _) => p.login_name(),
            (None, Some(_)) => "scanner".to_owned(),
            (None, None) => "anonymous".to_owned(),
        }
    }
}

/// Where a policy document is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTarget {
    /// The registry-wide policy.
    Registry,
    /// A repository's policy, by repository name.
    Repository(String),
    /// A user's or robot's identity policy, by principal id.
    Principal(i64),
    /// A group's identity policy, by group id.
    Group(i64),
}

impl PolicyTarget {
    /// (stored scope, stored target, document kind)
    fn slot(&self) -> (&'static str, String, PolicyKind) {
        match self {
            PolicyTarget::Registry => ("registry", String::new(), PolicyKind::Registry),
            PolicyTarget::Repository(name) => ("repository", name.clone(), PolicyKind::Repository),
            PolicyTarget::Principal(id) => ("principal", id.to_string(), PolicyKind::Identity),
            PolicyTarget::Group(id) => ("group", id.to_string(), PolicyKind::Identity),
        }
    }
}

/// Facts about a request that policy conditions may test.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts {
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
}

/// Authentication and authorization for both APIs and the token endpoint.
pub struct Access {
    /// Principals, keys, policies, settings and signing keys.
    identity: IdentityStore,
    registry_id: String,
    region: String,
    service: String,
    issuer: String,
    token_ttl: Duration,
    refresh_token_ttl: Duration,
    /// Lifetime of the passwords this registry signs for trusted ones.
    federated_password_ttl: Duration,
    keys: SigningKeys,
    principals: TtlCache<(PrincipalKind, String), Option<Arc<Principal>>>,
    /// Fingerprints of (principal, password, stored hash) that verified; see [`VERIFIED_TTL`].
    verified: TtlCache<[u8; 32], ()>,
    /// One argon2 check per fingerprint at a time: a burst of requests with the same new
    /// credentials waits for the first check instead of each spending 19 MiB and ~20 ms.
    verifying: dashmap::DashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    /// Bounds concurrent argon2 checks (memory and CPU) whatever the callers send.
    argon2_permits: tokio::sync::Semaphore,
    policies: TtlCache<(&'static str, String), Option<Arc<PolicyDocument>>>,
    settings: TtlCache<&'static str, Option<String>>,
    /// Principals of recently accepted `Authorization: Basic` values, by SHA-256 of the value;
    /// see [`BASIC_TTL`].
    basic_logins: TtlCache<[u8; 32], Subject>,
    /// Recent answers of [`Access::may`]; see [`DECISION_TTL`].
    scope_decisions: TtlCache<ScopeKey, bool>,
    /// Access tokens whose signature verified, by SHA-256 of the token.
    tokens: TtlCache<[u8; 32], Arc<Claims>>,
    /// Recent decisions; see [`DECISION_TTL`].
    decisions: TtlCache<DecisionKey, Decision>,
    /// Whether access keys exist and are active, by key id: ECR registry passwords and refresh
    /// tokens stop working within the 5-second rule when their key is deleted or deactivated.
    usable_keys: TtlCache<String, bool>,
    limiter: LoginLimiter,
    /// The registries whose signing keys this one trusts.
    trusted: TrustedRegistries,
}

impl Access {
    /// The registry's account id (ARNs, `registryId`).
    pub fn registry_id(&self) -> &str {
        &self.registry_id
    }

    /// The region in ARNs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The registries this one trusts, with their signing keys.
    pub fn trusted_registries(&self) -> &TrustedRegistries {
        &self.trusted
    }

    /// The token service name (`service=` of `/token` and of challenges).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Loads (or creates) the signing keys; everything else is read on demand.
    pub async fn open(meta: Meta, config: &Config) -> Result<Access> {
        let identity = meta.identity();
        let keys = SigningKeys::load(&identity, &config.auth.signing_key_file).await?;
        Ok(Access {
            identity,
            registry_id: config.registry_id.clone(),
            region: config.region.clone(),
            service: config.auth.service.clone(),
            issuer: config.auth.issuer.clone(),
            token_ttl: Duration::from_secs(config.auth.token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(config.auth.refresh_token_ttl_secs),
            federated_password_ttl: Duration::from_secs(config.federation.password_ttl_secs),
            keys,
            principals: TtlCache::new(CACHE_TTL, 100_000),
            verified: TtlCache::new(VERIFIED_TTL, 100_000),
            verifying: dashmap::DashMap::new(),
            argon2_permits: tokio::sync::Semaphore::new(MAX_CONCURRENT_ARGON2),
            policies: TtlCache::new(CACHE_TTL, 100_000),
            settings: TtlCache::new(CACHE_TTL, 16),
            tokens: TtlCache::new(CACHE_TTL, 100_000),
            basic_logins: TtlCache::new(BASIC_TTL, 100_000),
            scope_decisions: TtlCache::new(DECISION_TTL, 100_000),
            decisions: TtlCache::new(DECISION_TTL, 100_000),
            usable_keys: TtlCache::new(CACHE_TTL, 100_000),
            trusted: TrustedRegistries::new(&config.federation),
            limiter: LoginLimiter::new(
                config.auth.max_failed_logins,
                Duration::from_secs(config.auth.failed_login_window_secs),
            ),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Forgets every cached identity and policy on this replica (after an admin change here,
    /// so this replica applies it at once; the others follow within [`CACHE_TTL`]).
    ///
    /// Verified passwords stay: they are keyed by the stored hash, so a changed password can
    /// never match one, and dropping them would make every client of this replica pay an argon2
    /// check again after any admin change.
    pub fn invalidate(&self) {
        self.principals.clear();
        self.policies.clear();
        self.settings.clear();
        self.decisions.clear();
        self.scope_decisions.clear();
        self.basic_logins.clear();
        self.usable_keys.clear();
    }

    async fn setting(&self, name: &'static str) -> Result<Option<String>> {
        if let Some(hit) = self.settings.get(&name) {
            return Ok(hit);
        }
        let value = self.identity.setting(name).await?;
        self.settings.insert(name, value.clone());
        Ok(value)
    }

    /// Whether a push to a missing repository creates it (ECR's create-on-push; on by default).
    pub async fn create_on_push(&self) -> Result<bool> {
        Ok(self.setting(CREATE_ON_PUSH).await?.as_deref() != Some("false"))
    }

    pub async fn set_create_on_push(&self, on: bool) -> Result<()> {
        self.identity
            .put_setting(CREATE_ON_PUSH, if on { "true" } else { "false" })
            .await?;
        self.settings.remove(&CREATE_ON_PUSH);
        Ok(())
    }
}
