//! Identity management for the admin API ([`Identities`]): users, robot accounts, groups, access
//! keys and the policy documents attached to them. Business rules live here, not in the HTTP
//! handlers:
//!
//! * user, group and robot names match `[A-Za-z0-9_+=,.@-]{1,64}`; the user names `AWS` (it
//!   carries ECR registry passwords in Basic logins) and `anonymous` (the simulator's name for
//!   unauthenticated callers) are reserved, in any letter case;
//! * passwords are 8 to 1024 characters; robot secrets are generated and returned once; both are
//!   stored only as argon2 hashes, computed on the blocking pool;
//! * a robot's `expires_at`, when given, must lie in the future; after it the robot can neither
//!   log in nor use a token or access key issued before;
//! * access key secrets are generated, returned once and stored recoverably (SigV4 needs them);
//! * every change forgets this replica's cached identities and policies at once
//!   ([`Access::invalidate`]); other replicas follow within [`super::CACHE_TTL`].

use std::sync::Arc;

use super::{parse_login_name, Access, PolicyTarget, PrincipalKind};
use crate::auth::password::{
    generate_access_key_id, generate_password, generate_secret_access_key, hash_secret,
};
use crate::error::{Error, Result};
use crate::meta::{now_millis, GroupRow, IdentityStore, PrincipalRow};
use crate::policy::{group_arn, robot_arn, user_arn, PolicyDocument};

/// User names that cannot be created (compared ignoring letter case).
pub const RESERVED_USER_NAMES: &[&str] = &[super::ECR_USERNAME, "anonymous"];
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_NAME_CHARS: usize = 64;

/// Checks a user, group or robot name: `[A-Za-z0-9_+=,.@-]{1,64}`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "invalid {what} name {:?}: use 1 to {MAX_NAME_CHARS} of A-Z a-z 0-9 _ + = , . @ -",
            name.chars().take(80).collect::<String>()
        )))
    }
}

fn validate_user_name(name: &str) -> Result<()> {
    validate_name("user", name)?;
    if RESERVED_USER_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(Error::InvalidParameter(format!(
            "the user name {name:?} is reserved"
        )));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(Error::InvalidParameter(format!(
            "password: must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        )));
    }
    Ok(())
}

async fn hash(secret: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

fn kind_of(row: &PrincipalRow) -> PrincipalKind {
    if row.kind == PrincipalKind::Robot.as_str() {
        PrincipalKind::Robot
    } else {
        PrincipalKind::User
    }
}

/// A user or robot account as the admin API shows it (never its password hash).
#[derive(Debug, Clone)]
pub struct PrincipalInfo {
    pub kind: PrincipalKind,
    pub name: String,
    pub arn: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    /// Group names, sorted.
    pub groups: Vec<String>,
}

impl PrincipalInfo {
    pub fn login_name(&self) -> String {
        match self.kind {
            PrincipalKind::User => self.name.clone(),
            PrincipalKind::Robot => format!("robot/{}", self.name),
        }
    }

    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// A group with its members' login names.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub arn: String,
    pub created_at: i64,
    pub members: Vec<String>,
}

/// An access key as listed (never its secret).
#[derive(Debug, Clone)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub active: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A freshly created access key; the secret is shown once.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The principal `kind`/`name` does not exist.
pub(super) fn not_found(kind: PrincipalKind, name: &str) -> Error {
    Error::NotFound(format!("{} {name:?} does not exist", kind.as_str()))
}

/// Users, robots, groups, access keys and identity policies, as the admin API manages them.
/// Every change goes through [`Access`] so this replica's caches forget what changed.
pub struct Identities {
    pub(super) identity: IdentityStore,
    access: Arc<Access>,
}

impl Identities {
    pub fn new(identity: IdentityStore, access: Arc<Access>) -> Identities {
        Identities { identity, access }
    }

    fn arn_of(&self, kind: PrincipalKind, name: &str) -> String {
        match kind {
            PrincipalKind::User => user_arn(self.access.registry_id(), name),
            PrincipalKind::Robot => robot_arn(self.access.registry_id(), name),
        }
    }

    async fn info(&self, row: PrincipalRow) -> Result<PrincipalInfo> {
        let kind = kind_of(&row);
        let groups = self.identity.groups_of(row.id).await?;
        Ok(PrincipalInfo {
            kind,
            arn: self.arn_of(kind, &row.name),
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            groups: groups.into_iter().map(|(_, g)| g).collect(),
        })
    }

    /// The stored row of `kind`/`name` (not the cached principal), or `NotFound`.
    async fn principal_row(&self, kind: PrincipalKind, name: &str) -> Result<PrincipalRow> {
        self.identity
            .principal(kind.as_str(), name)
            .await?
            .ok_or_else(|| not_found(kind, name))
    }

    /// `POST /api/v1/users`: creates a user with a password.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<PrincipalInfo> {
        validate_user_name(name)?;
        validate_password(password)?;
        let phc = hash(password.to_owned()).await?;
        let row = self
            .identity
            .create_principal(PrincipalKind::User.as_str(), name, &phc, None)
            .await?
            .ok_or_else(|| Error::AlreadyExists(format!("user {name:?} already exists")))?;
        self.access.invalidate();
        self.info(row).await
    }

    /// `POST /api/v1/robots`: creates a robot account with a generated secret, returned once.
    pub async fn create_robot(
        &self,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<(PrincipalInfo, String)> {
        validate_name("robot", name)?;
        if expires_at.is_some_and(|at| at <= now_millis()) {
            return Err(Error::InvalidParameter(
                "expiresAt: must lie in the future".into(),
            ));
        }
        let secret = generate_password();
        let phc = hash(secret.clone()).await?;
        let row = self
            .identity
            .create_principal(PrincipalKind::Robot.as_str(), name, &phc, expires_at)
            .await?
            .ok_or_else(|| Error::AlreadyExists(format!("robot {name:?} already exists")))?;
        self.access.invalidate();
        Ok((self.info(row).await?, secret))
    }

    /// `GET /api/v1/users` and `GET /api/v1/robots`, by name.
    pub async fn principal_infos(&self, kind: PrincipalKind) -> Result<Vec<PrincipalInfo>> {
        let mut out = Vec::new();
        for row in self.identity.principals(kind.as_str()).await? {
            out.push(self.info(row).await?);
        }
        Ok(out)
    }

    /// `GET /api/v1/users/{name}` and `GET /api/v1/robots/{name}`.
    pub async fn principal_info(&self, kind: PrincipalKind, name: &str) -> Result<PrincipalInfo> {
        let row = self.principal_row(kind, name).await?;
        self.info(row).await
    }

    /// `DELETE /api/v1/users/{name}` and `DELETE /api/v1/robots/{name}`: the principal, its
    /// access keys, memberships and identity policy; its tokens stop working.
    pub async fn delete_principal(&self, kind: PrincipalKind, name: &str) -> Result<()> {
        let row = self.principal_row(kind, name).await?;
        self.identity.delete_principal(row.id).await?;
        self.access.invalidate();
        Ok(())
    }

    /// `PUT /api/v1/users/{name}/password`: a new password and a new credential version, so
    /// tokens and registry passwords issued for the old one stop working.
    pub async fn change_password(&self, name: &str, password: &str) -> Result<()> {
        validate_password(password)?;
        let row = self.principal_row(PrincipalKind::User, name).await?;
        let phc = hash(password.to_owned()).await?;
        self.identity.set_password(row.id, &phc).await?;
        self.access.invalidate();
        Ok(())
    }

    /// `POST /api/v1/robots/{name}/secret`: a new generated secret (returned once) and a new
    /// credential version.
    pub async fn regenerate_robot_secret(&self, name: &str) -> Result<String> {
        let row = self.principal_row(PrincipalKind::Robot, name).await?;
        let secret = generate_password();
        let phc = hash(secret.clone()).await?;
        self.identity.set_password(row.id, &phc).await?;
        self.access.invalidate();
        Ok(secret)
    }

    /// `POST /api/v1/{users|robots}/{name}/access-keys`: a new key pair, the secret shown once.
    pub async fn create_access_key(&self, kind: PrincipalKind, name: &str) -> Result<NewAccessKey> {
        let row = self.principal_row(kind, name).await?;
        // A 20-character random id colliding is practically impossible; retry anyway.
        for _ in 0..3 {
            let key = NewAccessKey {
                access_key_id: generate_access_key_id(),
                secret_access_key: generate_secret_access_key(),
            };
            if self
                .identity
                .create_access_key(row.id, &key.access_key_id, &key.secret_access_key)
                .await?
            {
                self.access.invalidate();
                return Ok(key);
            }
        }
        Err(Error::Internal(
            "could not generate an unused access key id".into(),
        ))
    }

    /// `GET /api/v1/{users|robots}/{name}/access-keys`: ids, status and creation times, never
    /// secrets.
    pub async fn access_keys(&self, kind: PrincipalKind, name: &str) -> Result<Vec<AccessKeyInfo>> {
        let row = self.principal_row(kind, name).await?;
        Ok(self
            .identity
            .access_keys_of(row.id)
            .await?
            .into_iter()
            .map(|k| AccessKeyInfo {
                access_key_id: k.key_id,
                active: k.active,
                created_at: k.created_at,
            })
            .collect())
    }

    /// `PUT /api/v1/{users|robots}/{name}/access-keys/{keyId}` (IAM's UpdateAccessKey): an
    /// inactive key signs nothing, and ECR registry passwords and refresh tokens obtained with it
    /// stop working (within the 5-second rule); activating it again restores them.
    pub async fn set_access_key_active(
        &self,
        kind: PrincipalKind,
        name: &str,
        key_id: &str,
        active: bool,
    ) -> Result<()> {
        let row = self.principal_row(kind, name).await?;
        if !self
            .identity
            .set_access_key_active(row.id, key_id, active)
            .await?
        {
            return Err(Self::no_such_key(kind, name, key_id));
        }
        self.access.invalidate();
        Ok(())
    }

    fn no_such_key(kind: PrincipalKind, name: &str, key_id: &str) -> Error {
        Error::NotFound(format!(
            "{} {name:?} has no access key {:?}",
            kind.as_str(),
            key_id.chars().take(40).collect::<String>()
        ))
    }

    /// `DELETE /api/v1/{users|robots}/{name}/access-keys/{keyId}`.
    pub async fn delete_access_key(
        &self,
        kind: PrincipalKind,
        name: &str,
        key_id: &str,
    ) -> Result<()> {
        let row = self.principal_row(kind, name).await?;
        if !self.identity.delete_access_key(row.id, key_id).await? {
            return Err(Self::no_such_key(kind, name, key_id));
        }
        self.access.invalidate();
        Ok(())
    }

    // ---- groups ----

    async fn group_row(&self, name: &str) -> Result<GroupRow> {
        self.identity
            .group(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("group {name:?} does not exist")))
    }

    async fn group_info(&self, row: GroupRow) -> Result<GroupInfo> {
        let members = self
            .identity
            .group_members(row.id)
            .await?
            .into_iter()
            .map(|p| match kind_of(&p) {
                PrincipalKind::User => p.name,
                PrincipalKind::Robot => format!("robot/{}", p.name),
            })
            .collect();
        Ok(GroupInfo {
            arn: group_arn(self.access.registry_id(), &row.name),
            name: row.name,
            created_at: row.created_at,
            members,
        })
    }

    /// `POST /api/v1/groups`.
    pub async fn create_group(&self, name: &str) -> Result<GroupInfo> {
        validate_name("group", name)?;
        let row = self
            .identity
            .create_group(name)
            .await?
            .ok_or_else(|| Error::AlreadyExists(format!("group {name:?} already exists")))?;
        self.group_info(row).await
    }

    /// `GET /api/v1/groups`, by name, with members.
    pub async fn group_infos(&self) -> Result<Vec<GroupInfo>> {
        let mut out = Vec::new();
        for row in self.identity.groups().await? {
            out.push(self.group_info(row).await?);
        }
        Ok(out)
    }

    /// `GET /api/v1/groups/{name}`.
    pub async fn group(&self, name: &str) -> Result<GroupInfo> {
        let row = self.group_row(name).await?;
        self.group_info(row).await
    }

    /// `DELETE /api/v1/groups/{name}`: the group, its memberships and its identity policy.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        let row = self.group_row(name).await?;
        self.identity.delete_group(row.id).await?;
        self.access.invalidate();
        Ok(())
    }

    /// `POST /api/v1/groups/{name}/members` with a login name (`alice` or `robot/ci`).
    pub async fn add_group_member(&self, group: &str, member: &str) -> Result<GroupInfo> {
        let row = self.group_row(group).await?;
        let (kind, name) = parse_login_name(member);
        let principal = self.principal_row(kind, name).await?;
        self.identity.add_group_member(row.id, principal.id).await?;
        self.access.invalidate();
        self.group_info(row).await
    }

    /// `DELETE /api/v1/groups/{name}/members/{member}`.
    pub async fn remove_group_member(&self, group: &str, member: &str) -> Result<()> {
        let row = self.group_row(group).await?;
        let (kind, name) = parse_login_name(member);
        let principal = self.principal_row(kind, name).await?;
        if !self
            .identity
            .remove_group_member(row.id, principal.id)
            .await?
        {
            return Err(Error::NotFound(format!(
                "{member:?} is not a member of group {group:?}"
            )));
        }
        self.access.invalidate();
        Ok(())
    }

    // ---- policies ----

    /// Where the identity policy of `kind`/`name` is stored; `NotFound` if there is no such
    /// principal.
    pub async fn principal_policy_target(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<PolicyTarget> {
        Ok(PolicyTarget::Principal(
            self.principal_row(kind, name).await?.id,
        ))
    }

    /// Where a group's identity policy is stored; `NotFound` if there is no such group.
    pub async fn group_policy_target(&self, name: &str) -> Result<PolicyTarget> {
        Ok(PolicyTarget::Group(self.group_row(name).await?.id))
    }

    /// Validates, stores and applies a policy at once on this replica (a refused document is
    /// `InvalidParameter` naming the statement and field).
    pub async fn attach_policy(&self, target: &PolicyTarget, text: &str) -> Result<PolicyDocument> {
        // `set_policy` already drops this replica's copy of the document and its decisions.
        self.access.set_policy(target, text).await
    }

    /// Removes a policy; `NotFound` if there was none.
    pub async fn detach_policy(&self, target: &PolicyTarget) -> Result<()> {
        match self.access.delete_policy(target).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound("no policy is attached there".into())),
        }
    }

    /// The stored text of a policy; `NotFound` if there is none.
    pub async fn attached_policy(&self, target: &PolicyTarget) -> Result<String> {
        self.access
            .policy_text(target)
            .await?
            .ok_or_else(|| Error::NotFound("no policy is attached there".into()))
    }
}
