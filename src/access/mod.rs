//! Who is calling and what they may do. [`Access`] authenticates callers (passwords, registry
//! tokens, ECR registry passwords, access keys) against the identity tables, decides ECR actions
//! with the policy engine (`gate`: one `authorize` for every door; `simulator`: the same decision
//! for a principal named by an admin), holds the policy documents and settings those decisions
//! read, and issues registry tokens signed with keys every replica shares. [`Identities`]
//! (`manage`, `bootstrap`) holds the identity management use cases of the admin API (users,
//! robots, groups, access keys, identity policies) and the bootstrap admin; it changes
//! identities through `Access` so that this replica's caches forget at once. [`AuditLog`]
//! (`audit`) is the audit log every door writes to.
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
pub mod gate;
mod keys;
mod limiter;
mod manage;
mod simulator;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::Digest as _;

use crate::auth::credential::CredentialKind;
use crate::auth::password::{credential_fingerprint, verify_against_dummy_hash, verify_secret};
use crate::auth::scope::{Scope, ANY_ACTION, REGISTRY, REPOSITORY};
use crate::auth::token::{Claims, ResourceAccess, ScanGrant, TokenError, TokenType};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::meta::{now_millis, IdentityStore, Meta, PrincipalRow};
use crate::policy::{
    evaluate, Action, Decision, Identity, ImplicitDenyReason, PolicyDocument, PolicyKind,
    PolicySet, RequestContext, ScopeAction,
};

use crate::util::TtlCache;
pub use audit::{AuditLog, AuditOutcome, MAX_AUDIT_PAGE};
pub use bootstrap::ADMIN_PASSWORD_FILE;
pub use gate::{Caller, Door, Permission, Resource, ADMIN_ACTION};
pub use keys::SigningKeys;
use limiter::LoginLimiter;
pub use manage::{
    validate_name, AccessKeyInfo, GroupInfo, Identities, NewAccessKey, PrincipalInfo,
    RESERVED_USER_NAMES,
};
pub use simulator::{Simulation, SimulationRequest};

/// The longest any cached identity, verified credential or policy document is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a verified password is remembered (see the module doc for why this may exceed
/// [`CACHE_TTL`] without delaying revocation).
pub const VERIFIED_TTL: Duration = Duration::from_secs(600);
/// Most argon2 checks running at once; more wait their turn.
const MAX_CONCURRENT_ARGON2: usize = 4;
/// Lifetime of the registry password returned by ECR's `GetAuthorizationToken`.
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
    principal: Option<(i64, i64)>,
    scope: ScopeAction,
    repository: String,
    source_ip: Option<IpAddr>,
    secure_transport: bool,
}

/// Everything a cached decision depends on (the clock aside: `aws:CurrentTime` conditions may
/// answer up to [`DECISION_TTL`] late).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    principal: Option<(i64, i64)>,
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

/// A signed-in user or robot account, as loaded (at most [`CACHE_TTL`] old).
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: i64,
    pub kind: PrincipalKind,
    pub name: String,
    pub credential_version: i64,
    pub expires_at: Option<i64>,
    password_hash: Option<String>,
    /// Groups (id, name) the principal belongs to.
    pub groups: Vec<(i64, String)>,
    pub identity: Identity,
}

impl Principal {
    /// The name used to log in and the token subject: `<name>` or `robot/<name>`.
    pub fn login_name(&self) -> String {
        match self.kind {
            PrincipalKind::User => self.name.clone(),
            PrincipalKind::Robot => format!("robot/{}", self.name),
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

    // ---- identities ----

    /// The principal `kind`/`name`, at most [`CACHE_TTL`] old; `None` if it does not exist.
    pub async fn principal(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Option<Arc<Principal>>> {
        let key = (kind, name.to_owned());
        if let Some(hit) = self.principals.get(&key) {
            return Ok(hit);
        }
        let loaded = match self.identity.principal(kind.as_str(), name).await? {
            Some(row) => Some(Arc::new(self.principal_from_row(kind, row).await?)),
            None => None,
        };
        self.principals.insert(key, loaded.clone());
        Ok(loaded)
    }

    async fn principal_from_row(
        &self,
        kind: PrincipalKind,
        row: PrincipalRow,
    ) -> Result<Principal> {
        let groups = self.identity.groups_of(row.id).await?;
        let mut identity = match kind {
            PrincipalKind::User => Identity::user(&self.registry_id, &row.name),
            PrincipalKind::Robot => Identity::robot(&self.registry_id, &row.name),
        };
        for (_, group) in &groups {
            identity = identity.with_group(crate::policy::group_arn(&self.registry_id, group));
        }
        Ok(Principal {
            id: row.id,
            kind,
            name: row.name,
            credential_version: row.credential_version,
            expires_at: row.expires_at,
            password_hash: row.password_hash,
            groups,
            identity,
        })
    }

    /// A usable (existing, unexpired) principal by login name.
    async fn active_principal(&self, login: &str) -> Result<Option<Arc<Principal>>> {
        let (kind, name) = parse_login_name(login);
        Ok(self
            .principal(kind, name)
            .await?
            .filter(|p| !p.expired(now_millis())))
    }

    /// An `Authorization: Basic ...` header value: [`Access::login_subject`] with a short memory of
    /// accepted values, so a client sending its password on every request costs one hash.
    pub async fn login_basic(&self, header: &str, facts: &RequestFacts) -> Result<Subject> {
        let key: [u8; 32] = sha2::Sha256::digest(header.as_bytes()).into();
        if let Some(subject) = self.basic_logins.get(&key) {
            return Ok(subject);
        }
        let credentials =
            crate::auth::basic::parse_basic_authorization(header).ok_or_else(|| {
                Error::Unauthorized(
                    "malformed Basic credentials (expected base64 of user:password)".into(),
                )
            })?;
        let subject = self
            .login_subject(&credentials.username, &credentials.password, facts)
            .await?;
        self.basic_logins.insert(key, subject.clone());
        Ok(subject)
    }

    /// HTTP Basic: a user's password, a robot's secret, or `AWS` with an ECR registry password
    /// or the scanner's one-scan password. The subject names which. Failures are counted per
    /// name and address; past the limit the answer is 429.
    pub async fn login_subject(
        &self,
        username: &str,
        password: &str,
        facts: &RequestFacts,
    ) -> Result<Subject> {
        if let Some(wait) = self.limiter.blocked(username, facts.source_ip) {
            return Err(Error::TooManyRequests {
                message: format!("too many failed logins for {username:?}; try again in {wait} s"),
                retry_after_secs: wait,
            });
        }
        let outcome = if username == ECR_USERNAME {
            self.registry_password_login(password).await
        } else {
            self.check_password(username, password).await.map(|p| {
                let credential = Credential::of(p.kind.secret_kind());
                Subject::signed_in(p, credential)
            })
        };
        match outcome {
            Ok(subject) => {
                self.limiter.record_success(username, facts.source_ip);
                Ok(subject)
            }
            Err(Error::Unauthorized(message)) => {
                self.limiter.record_failure(username, facts.source_ip);
                tracing::info!(user = username, ip = ?facts.source_ip, "failed login");
                Err(Error::Unauthorized(message))
            }
            Err(other) => Err(other),
        }
    }

    /// `AWS:<password>`: an ECR registry password (its principal, while the access key that
    /// minted it is usable) or the scanner's one-scan password (no principal; one image).
    async fn registry_password_login(&self, password: &str) -> Result<Subject> {
        let claims = self
            .verify_with_reload(|ring, now| {
                ring.verify_registry_password(password, &self.issuer, &self.service, now)
            })
            .await
            .map_err(|e| Error::Unauthorized(format!("invalid registry password: {e}")))?;
        if claims.typ == TokenType::ScanPassword {
            let scan = claims.scan.clone().ok_or_else(|| {
                Error::Unauthorized("invalid registry password: malformed token".into())
            })?;
            return Ok(Subject {
                principal: None,
                credential: Some(Credential::of_token(CredentialKind::Scanner, &claims)),
                token: None,
                scan: Some(scan),
            });
        }
        let principal = self.token_principal(&claims, "registry password").await?;
        Ok(Subject::signed_in(
            principal,
            Credential::of_token(CredentialKind::EcrPassword, &claims),
        ))
    }

    async fn check_password(&self, login: &str, password: &str) -> Result<Arc<Principal>> {
        let refused = || Error::Unauthorized("invalid user name or password".into());
        let principal = self.active_principal(login).await?;
        let Some((principal, phc)) =
            principal.and_then(|p| p.password_hash.clone().map(|phc| (p, phc)))
        else {
            // Spend the time a real check takes, so timing does not reveal which names exist.
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || verify_against_dummy_hash(&password))
                .await
                .map_err(Error::internal)?;
            return Err(refused());
        };
        let fingerprint = credential_fingerprint(&format!("{}\0{password}", principal.id), &phc);
        if self.verified.get(&fingerprint).is_some() {
            return Ok(principal);
        }
        let slot = self.verifying.entry(fingerprint).or_default().clone();
        let ok = {
            let _one_at_a_time = slot.lock().await;
            if self.verified.get(&fingerprint).is_some() {
                true
            } else {
                let _permit = self
                    .argon2_permits
                    .acquire()
                    .await
                    .map_err(Error::internal)?;
                let password = password.to_owned();
                let ok = tokio::task::spawn_blocking(move || {
                    verify_secret(&password, &phc).unwrap_or(false)
                })
                .await
                .map_err(Error::internal)?;
                if ok {
                    self.verified.insert(fingerprint, ());
                }
                ok
            }
        };
        self.verifying
            .remove_if(&fingerprint, |_, s| Arc::strong_count(s) <= 2);
        if !ok {
            return Err(refused());
        }
        Ok(principal)
    }

    /// The current principal of a verified token (refresh token, ECR registry password, access
    /// token): it must still exist with the credential version the token was issued for, and
    /// the access key behind it, if any, must still be usable.
    async fn token_principal(&self, claims: &Claims, what: &str) -> Result<Arc<Principal>> {
        let principal = self.current_principal(claims).await?.ok_or_else(|| {
            Error::Unauthorized(format!(
                "{what} is no longer valid (credentials changed or account removed); log in again"
            ))
        })?;
        if let Some(key_id) = &claims.akid {
            if !self.access_key_usable(key_id).await? {
                return Err(Error::Unauthorized(format!(
                    "{what} is no longer valid: the access key that issued it was deleted or \
                     deactivated; log in again"
                )));
            }
        }
        Ok(principal)
    }

    /// Whether an access key exists and is active (at most [`CACHE_TTL`] old).
    pub async fn access_key_usable(&self, key_id: &str) -> Result<bool> {
        let key_id = key_id.to_owned();
        if let Some(hit) = self.usable_keys.get(&key_id) {
            return Ok(hit);
        }
        let usable = self
            .identity
            .access_key(&key_id)
            .await?
            .is_some_and(|(key, _)| key.active);
        self.usable_keys.insert(key_id, usable);
        Ok(usable)
    }

    /// Verifies with the current key ring; a token signed by a key this replica has not loaded yet
    /// (another replica just rotated) triggers one reload.
    async fn verify_with_reload(
        &self,
        verify: impl Fn(&crate::auth::token::KeyRing, DateTime<Utc>) -> Result<Claims, TokenError>,
    ) -> Result<Claims, TokenError> {
        match verify(&self.keys.ring(), self.now()) {
            Err(TokenError::UnknownKey) => {
                if self
                    .keys
                    .reload_if_stale(&self.identity)
                    .await
                    .unwrap_or(false)
                {
                    verify(&self.keys.ring(), self.now())
                } else {
                    Err(TokenError::UnknownKey)
                }
            }
            other => other,
        }
    }

    /// The token's subject if it still exists, is unexpired and has the credential version the
    /// token was issued for; `None` otherwise.
    async fn current_principal(&self, claims: &Claims) -> Result<Option<Arc<Principal>>> {
        let Some(principal) = self.active_principal(&claims.sub).await? else {
            return Ok(None);
        };
        let current = u64::try_from(principal.credential_version).unwrap_or(0) == claims.cv
            && claims.principal.as_deref() == Some(principal.arn());
        Ok(current.then_some(principal))
    }

    /// A registry access token (`Authorization: Bearer`): signature, issuer, audience, validity,
    /// then the subject's current credential version and the access key behind it.
    pub async fn verify_bearer(&self, token: &str) -> Result<Subject> {
        // A signature verified moments ago need not be verified again; expiry is still checked.
        let fingerprint: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let claims = match self.tokens.get(&fingerprint) {
            Some(claims)
                if claims.exp + crate::auth::token::CLOCK_LEEWAY_SECS >= self.now().timestamp() =>
            {
                claims
            }
            Some(_) => {
                return Err(Error::Unauthorized(
                    "invalid token: token has expired".into(),
                ))
            }
            None => {
                let claims = Arc::new(
                    self.verify_with_reload(|ring, now| {
                        ring.verify_access_token(token, &self.issuer, &self.service, now)
                    })
                    .await
                    .map_err(|e| Error::Unauthorized(format!("invalid token: {e}")))?,
                );
                self.tokens.insert(fingerprint, claims.clone());
                claims
            }
        };
        let principal = if claims.sub.is_empty() {
            None
        } else {
            Some(self.token_principal(&claims, "token").await?)
        };
        Ok(Subject {
            principal,
            credential: Some(Credential::of_token(CredentialKind::RegistryToken, &claims)),
            scan: claims.scan.clone(),
            token: Some(claims),
        })
    }

    /// The principal and secret of an access key (for SigV4); `None` for unknown keys and keys of
    /// expired or deleted principals.
    /// Inactive keys are refused like unknown ones (as IAM refuses them).
    pub async fn access_key(&self, key_id: &str) -> Result<Option<(Arc<Principal>, String)>> {
        let Some((key, secret)) = self
            .identity
            .access_key(key_id)
            .await?
            .filter(|(k, _)| k.active)
        else {
            return Ok(None);
        };
        let Some(row) = self.identity.principal_by_id(key.principal_id).await? else {
            return Ok(None);
        };
        let kind = if row.kind == "robot" {
            PrincipalKind::Robot
        } else {
            PrincipalKind::User
        };
        let principal = self.principal(kind, &row.name).await?;
        Ok(principal
            .filter(|p| !p.expired(now_millis()))
            .map(|p| (p, secret)))
    }

    // ---- policy documents ----

    /// The stored text of a policy, exactly as saved.
    pub async fn policy_text(&self, target: &PolicyTarget) -> Result<Option<String>> {
        let (scope, key, _) = target.slot();
        self.identity.policy(scope, &key).await
    }

    /// Validates and stores a policy (replacing any earlier one); a document Berth could not
    /// enforce faithfully is refused with a message naming the statement and field.
    pub async fn set_policy(&self, target: &PolicyTarget, text: &str) -> Result<PolicyDocument> {
        let (scope, key, kind) = target.slot();
        let document = PolicyDocument::parse(text, kind)
            .map_err(|e| Error::InvalidParameter(format!("invalid policy document: {e}")))?;
        self.identity.put_policy(scope, &key, text).await?;
        self.policies.remove(&(scope, key));
        self.decisions.clear();
        self.scope_decisions.clear();
        Ok(document)
    }

    /// Removes a policy; the stored text, or `None` if there was none.
    pub async fn delete_policy(&self, target: &PolicyTarget) -> Result<Option<String>> {
        let (scope, key, _) = target.slot();
        let text = self.identity.policy(scope, &key).await?;
        if text.is_some() {
            self.identity.delete_policy(scope, &key).await?;
        }
        self.policies.remove(&(scope, key));
        self.decisions.clear();
        self.scope_decisions.clear();
        Ok(text)
    }

    /// Forgets this replica's copy of a repository's policy and the decisions made with it,
    /// after a policy was stored by another path (a repository created from a template).
    pub fn repository_policy_changed(&self, repository: &str) {
        self.policies.remove(&("repository", repository.to_owned()));
        self.decisions.clear();
        self.scope_decisions.clear();
    }

    // ---- decisions ----

    async fn policy(
        &self,
        scope: &'static str,
        target: String,
        kind: PolicyKind,
    ) -> Result<Option<Arc<PolicyDocument>>> {
        let key = (scope, target);
        if let Some(hit) = self.policies.get(&key) {
            return Ok(hit);
        }
        let document = match self.identity.policy(scope, &key.1).await? {
            Some(text) => match PolicyDocument::parse(&text, kind) {
                Ok(doc) => Some(Arc::new(doc)),
                Err(e) => {
                    // Documents are validated when saved; one that no longer parses denies
                    // nothing and allows nothing, and an operator must see why.
                    tracing::error!(scope, target = %key.1, error = %e, "stored policy does not parse; ignored");
                    None
                }
            },
            None => None,
        };
        self.policies.insert(key, document.clone());
        Ok(document)
    }

    /// Decides one ECR action on a repository (or the registry when `repository` is `None`).
    pub async fn decide(
        &self,
        subject: &Subject,
        action: Action,
        repository: Option<&str>,
        facts: &RequestFacts,
    ) -> Result<Decision> {
        if subject.is_scanner() {
            // The scanner reads its one image through `/v2` (checked there, by route); no ECR
            // action is ever decided in its favour.
            return Ok(Decision::ImplicitDeny(
                ImplicitDenyReason::CredentialLimited,
            ));
        }
        let key = DecisionKey {
            principal: subject
                .principal
                .as_ref()
                .map(|p| (p.id, p.credential_version)),
            action,
            repository: repository.map(str::to_owned),
            source_ip: facts.source_ip,
            secure_transport: facts.secure_transport,
        };
        if let Some(hit) = self.decisions.get(&key) {
            return Ok(hit);
        }
        let decision = self
            .decide_uncached(subject, action, repository, facts)
            .await?;
        self.decisions.insert(key, decision.clone());
        Ok(decision)
    }

    async fn decide_uncached(
        &self,
        subject: &Subject,
        action: Action,
        repository: Option<&str>,
        facts: &RequestFacts,
    ) -> Result<Decision> {
        let mut identity_docs: Vec<(String, Arc<PolicyDocument>)> = Vec::new();
        if let Some(p) = &subject.principal {
            if let Some(doc) = self
                .policy("principal", p.id.to_string(), PolicyKind::Identity)
                .await?
            {
                identity_docs.push((format!("user/{}", p.login_name()), doc));
            }
            for (group_id, group) in &p.groups {
                if let Some(doc) = self
                    .policy("group", group_id.to_string(), PolicyKind::Identity)
                    .await?
                {
                    identity_docs.push((format!("group/{group}"), doc));
                }
            }
        }
        let repository_doc = match repository {
            Some(name) => {
                self.policy("repository", name.to_owned(), PolicyKind::Repository)
                    .await?
            }
            None => None,
        };
        let registry_doc = self
            .policy("registry", String::new(), PolicyKind::Registry)
            .await?;
        let mut set = PolicySet::new();
        for (name, doc) in &identity_docs {
            set = set.with_identity(name, doc);
        }
        if let Some(doc) = &repository_doc {
            set = set.with_repository(doc);
        }
        if let Some(doc) = &registry_doc {
            set = set.with_registry(doc);
        }
        let mut ctx = RequestContext::new(
            subject.requester(),
            action,
            self.registry_id.clone(),
            self.region.clone(),
            self.now(),
        )
        .with_secure_transport(facts.secure_transport);
        if let Some(ip) = facts.source_ip {
            ctx = ctx.with_source_ip(ip);
        }
        if let Some(name) = repository {
            ctx = ctx.with_repository(name);
        }
        Ok(evaluate(&set, &ctx))
    }

    /// True if every ECR action behind the Docker scope action is allowed on `repository`.
    pub async fn may(
        &self,
        subject: &Subject,
        scope: ScopeAction,
        repository: &str,
        facts: &RequestFacts,
    ) -> Result<bool> {
        if subject.is_scanner() {
            return Ok(false);
        }
        let key = ScopeKey {
            principal: subject
                .principal
                .as_ref()
                .map(|p| (p.id, p.credential_version)),
            scope,
            repository: repository.to_owned(),
            source_ip: facts.source_ip,
            secure_transport: facts.secure_transport,
        };
        if let Some(hit) = self.scope_decisions.get(&key) {
            return Ok(hit);
        }
        let mut allowed = true;
        for action in scope.actions() {
            if !self
                .decide(subject, *action, Some(repository), facts)
                .await?
                .is_allowed()
            {
                allowed = false;
                break;
            }
        }
        self.scope_decisions.insert(key, allowed);
        Ok(allowed)
    }

    /// The `access` claim for a token request: the requested scopes cut down to what the
    /// policies allow. Unknown resource types and actions are dropped, never an error.
    pub async fn grant(
        &self,
        subject: &Subject,
        requested: &[Scope],
        facts: &RequestFacts,
    ) -> Result<Vec<ResourceAccess>> {
        if let Some(scan) = &subject.scan {
            // The scanner's credential carries its own grant: pull on its one repository.
            return Ok(requested
                .iter()
                .filter(|s| {
                    s.resource_type == REPOSITORY
                        && s.name == scan.repository
                        && s.actions.iter().any(|a| a == crate::auth::scope::PULL)
                })
                .take(1)
                .map(|s| {
                    ResourceAccess::from(Scope::new(
                        REPOSITORY,
                        &s.name,
                        &[crate::auth::scope::PULL],
                    ))
                })
                .collect());
        }
        let mut granted = Vec::new();
        for scope in requested {
            let mut actions: Vec<&str> = Vec::new();
            for action in &scope.actions {
                let allowed = match (scope.resource_type.as_str(), action.as_str()) {
                    // The catalog lists only what the caller may see, so any caller may ask.
                    (REGISTRY, ANY_ACTION) if scope.name == "catalog" => true,
                    (REPOSITORY, name) => match ScopeAction::parse(name) {
                        Some(sa) if crate::oci::RepoName::parse(&scope.name).is_ok() => {
                            self.may(subject, sa, &scope.name, facts).await?
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if allowed && !actions.contains(&action.as_str()) {
                    actions.push(action);
                }
            }
            if !actions.is_empty() {
                granted.push(ResourceAccess::from(Scope::new(
                    &scope.resource_type,
                    &scope.name,
                    &actions,
                )));
            }
        }
        Ok(granted)
    }

    // ---- tokens ----

    fn base_claims(&self, typ: TokenType, principal: Option<&Principal>, ttl: Duration) -> Claims {
        let subject = principal.map(Principal::login_name).unwrap_or_default();
        let lifetime = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let claims = Claims::new(
            typ,
            &self.issuer,
            &self.service,
            &subject,
            self.now(),
            lifetime,
        );
        match principal {
            Some(p) => claims
                .with_credential_version(u64::try_from(p.credential_version).unwrap_or(0))
                .with_principal(p.arn()),
            None => claims,
        }
    }

    /// Claims of a token obtained with `subject`'s credential: its principal, the kind of that
    /// credential and the access key behind it, the scanner's image, and an expiry no later
    /// than the credential's own.
    fn derived_claims(&self, typ: TokenType, subject: &Subject, ttl: Duration) -> Claims {
        let credential = subject.credential.as_ref();
        self.base_claims(typ, subject.principal.as_deref(), ttl)
            .with_credential(credential.map(|c| c.kind))
            .with_access_key(credential.and_then(|c| c.access_key_id.clone()))
            .with_scan(subject.scan.clone())
            .expiring_by(credential.and_then(|c| c.expires_at))
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        if claims.exp <= self.now().timestamp() {
            return Err(Error::Unauthorized(
                "the credential has expired; log in again".into(),
            ));
        }
        self.keys.ring().issue(claims).map_err(Error::internal)
    }

    /// Signs an access token for `subject` (anonymous without a principal) granting `access`,
    /// and recording the access it asked for (`requested`).
    pub fn issue_access_token(
        &self,
        subject: &Subject,
        access: Vec<ResourceAccess>,
        requested: Vec<ResourceAccess>,
    ) -> Result<(String, Claims)> {
        let claims = self
            .derived_claims(TokenType::Access, subject, self.token_ttl)
            .with_access(access)
            .with_requested(requested);
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs a refresh token (`offline_token=true`) for a signed-in subject. It expires no
    /// later than the credential it was obtained with (an ECR registry password's 12 hours)
    /// and dies with the access key behind it. The scanner never gets one.
    pub fn issue_refresh_token(&self, subject: &Subject) -> Result<Option<String>> {
        if subject.principal.is_none() || subject.is_scanner() {
            return Ok(None);
        }
        let claims = self.derived_claims(TokenType::Refresh, subject, self.refresh_token_ttl);
        self.sign(&claims).map(Some)
    }

    /// The caller behind a refresh token (`grant_type=refresh_token`), checked against the
    /// current credential version and the access key it derives from.
    pub async fn redeem_refresh_token(&self, token: &str) -> Result<Subject> {
        let claims = self
            .verify_with_reload(|ring, now| {
                ring.verify_refresh_token(token, &self.issuer, &self.service, now)
            })
            .await
            .map_err(|e| Error::Unauthorized(format!("invalid refresh token: {e}")))?;
        if claims.cred.is_none() {
            // Issued before refresh tokens recorded what they were obtained with: one may come
            // from a 12-hour ECR password, so none is trusted for its full week.
            return Err(Error::Unauthorized(
                "refresh token from an older Berth; log in again".into(),
            ));
        }
        let principal = self.token_principal(&claims, "refresh token").await?;
        Ok(Subject::signed_in(
            principal,
            Credential::of_token(CredentialKind::RefreshToken, &claims),
        ))
    }

    /// ECR's `GetAuthorizationToken`: a password for `AWS:<password>` Basic logins, valid for
    /// [`REGISTRY_PASSWORD_TTL`] or until the principal's credentials change or the access key
    /// `access_key_id` that asked for it is deleted or deactivated.
    pub fn registry_password(
        &self,
        principal: &Principal,
        access_key_id: &str,
    ) -> Result<(String, DateTime<Utc>)> {
        let claims = self
            .base_claims(
                TokenType::RegistryPassword,
                Some(principal),
                REGISTRY_PASSWORD_TTL,
            )
            .with_credential(Some(CredentialKind::AccessKey))
            .with_access_key(Some(access_key_id.to_owned()));
        let expires = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(|| self.now());
        Ok((self.sign(&claims)?, expires))
    }

    /// The password the scan workers hand to Trivy for one scan: it reads the image `grant`
    /// (the manifest and the blobs it references) for `ttl`, and nothing else. It belongs to no
    /// principal, so no policy widens or narrows it, and it never yields a refresh token.
    pub fn scan_password(&self, grant: ScanGrant, ttl: Duration) -> Result<String> {
        let claims = self
            .base_claims(
                TokenType::ScanPassword,
                None,
                ttl.min(REGISTRY_PASSWORD_TTL),
            )
            .with_scan(Some(grant));
        self.sign(&claims)
    }

    /// The public keys that verify tokens, as a JWKS document.
    pub fn jwks_json(&self) -> String {
        self.keys.ring().jwks_json()
    }

    /// Re-reads the signing keys (periodically, so rotations on other replicas arrive).
    pub async fn reload_keys(&self) -> Result<()> {
        self.keys.reload(&self.identity).await
    }

    /// Starts signing with a new key; the previous keys verify until the longest-lived token
    /// they may have signed has expired. Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let overlap = MIN_KEY_OVERLAP.max(self.refresh_token_ttl);
        self.keys.rotate(&self.identity, overlap).await
    }

    /// Key ids currently accepted, the signing one first.
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.keys
            .ring()
            .accepted_kids()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}
