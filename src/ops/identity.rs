//! Identity operations, for administrators: users, robot accounts and groups, the identity
//! policies attached to them, and the access keys of users and robots. Berth's own operations
//! (`berth:<Operation>`; IAM's model, no ECR counterpart), reached by the REST API. The rules
//! (names, passwords, expiry, caches forgotten on change) are the access layer's
//! ([`crate::access::Identities`]); an operation here authorizes, refuses unknown body members,
//! calls it, and shapes the answer.
//!
//! Users and robot accounts share most operations, and groups share the identity policy ones:
//! those are written once, generic over the kind ([`Users`], [`Robots`], [`Groups`]), which
//! names the audited operation (`berth:GetUser`, `berth:GetRobot`).

use std::future::Future;

use super::shapes::{
    rfc3339, AccessKey, AccessKeyList, Account, AddGroupMemberRequest, ChangePasswordRequest,
    CreateAccessKeyRequest, CreateGroupRequest, CreateRobotRequest, CreateUserRequest,
    CreatedRobot, DeleteAccessKeyRequest, DeleteAccountRequest, DeleteGroupRequest,
    DeleteIdentityPolicyRequest, GetAccountRequest, GetGroupRequest, GetIdentityPolicyRequest,
    Group, GroupList, ListAccessKeysRequest, ListAccountsRequest, ListGroupsRequest, NewAccessKey,
    PutIdentityPolicyRequest, RegenerateRobotSecretRequest, RemoveGroupMemberRequest, RobotList,
    RobotSecret, UnknownMembers, UpdateAccessKeyRequest, UserList,
};
use super::{Context, Operation};
use crate::access::{
    Access, GroupInfo, Identities, Permission, PolicyTarget, PrincipalInfo, PrincipalKind,
};
use crate::error::{Error, Result};
use crate::meta::now_millis;
use crate::policy::{group_arn, robot_arn, user_arn};

/// Refuses body members the request does not know (after the gate, as all validation), so that
/// a misspelt member is an error rather than a setting silently left out.
pub fn known_members_only(unknown: &UnknownMembers) -> Result<()> {
    match unknown.keys().next() {
        None => Ok(()),
        Some(member) => Err(Error::InvalidParameter(format!(
            "invalid JSON body: unknown member {:?}",
            member.chars().take(60).collect::<String>()
        ))),
    }
}

/// A member the request needs.
pub fn required(member: &str, value: Option<String>) -> Result<String> {
    value.ok_or_else(|| {
        Error::InvalidParameter(format!(
            "invalid JSON body: the member {member:?} is missing"
        ))
    })
}

/// Who an identity policy is attached to: users, robot accounts or groups.
pub trait PolicyHolder: Send + Sync + 'static {
    const GET_POLICY: &'static str;
    const PUT_POLICY: &'static str;
    const DELETE_POLICY: &'static str;

    /// The ARN of `name`: the audited resource of its operations.
    fn arn(access: &Access, name: &str) -> String;

    /// Where the policy of `name` is stored (`NotFound` if there is no such holder).
    fn policy_target(
        identities: &Identities,
        name: &str,
    ) -> impl Future<Output = Result<PolicyTarget>> + Send;
}

/// Users and robot accounts: they sign in and hold access keys.
pub trait AccountKind: PolicyHolder {
    const KIND: PrincipalKind;
    const LIST: &'static str;
    const GET: &'static str;
    const DELETE: &'static str;
    /// Its listing's answer.
    type List: serde::Serialize + Send;

    fn list(accounts: Vec<Account>) -> Self::List;

    /// The audited resource of a listing or creation: `users`, `robots`.
    fn collection() -> &'static str {
        match Self::KIND {
            PrincipalKind::User => "users",
            PrincipalKind::Robot => "robots",
        }
    }
}

/// Users (and their operations' names).
#[derive(Debug)]
pub enum Users {}

/// Robot accounts.
#[derive(Debug)]
pub enum Robots {}

/// Groups.
#[derive(Debug)]
pub enum Groups {}

impl PolicyHolder for Users {
    const GET_POLICY: &'static str = "berth:GetUserPolicy";
    const PUT_POLICY: &'static str = "berth:PutUserPolicy";
    const DELETE_POLICY: &'static str = "berth:DeleteUserPolicy";

    fn arn(access: &Access, name: &str) -> String {
        user_arn(access.registry_id(), name)
    }

    async fn policy_target(identities: &Identities, name: &str) -> Result<PolicyTarget> {
        identities.principal_policy_target(Self::KIND, name).await
    }
}

impl AccountKind for Users {
    const KIND: PrincipalKind = PrincipalKind::User;
    const LIST: &'static str = "berth:ListUsers";
    const GET: &'static str = "berth:GetUser";
    const DELETE: &'static str = "berth:DeleteUser";
    type List = UserList;

    fn list(users: Vec<Account>) -> UserList {
        UserList { users }
    }
}

impl PolicyHolder for Robots {
    const GET_POLICY: &'static str = "berth:GetRobotPolicy";
    const PUT_POLICY: &'static str = "berth:PutRobotPolicy";
    const DELETE_POLICY: &'static str = "berth:DeleteRobotPolicy";

    fn arn(access: &Access, name: &str) -> String {
        robot_arn(access.registry_id(), name)
    }

    async fn policy_target(identities: &Identities, name: &str) -> Result<PolicyTarget> {
        identities.principal_policy_target(Self::KIND, name).await
    }
}

impl AccountKind for Robots {
    const KIND: PrincipalKind = PrincipalKind::Robot;
    const LIST: &'static str = "berth:ListRobots";
    const GET: &'static str = "berth:GetRobot";
    const DELETE: &'static str = "berth:DeleteRobot";
    type List = RobotList;

    fn list(robots: Vec<Account>) -> RobotList {
        RobotList { robots }
    }
}

impl PolicyHolder for Groups {
    const GET_POLICY: &'static str = "berth:GetGroupPolicy";
    const PUT_POLICY: &'static str = "berth:PutGroupPolicy";
    const DELETE_POLICY: &'static str = "berth:DeleteGroupPolicy";

    fn arn(access: &Access, name: &str) -> String {
        group_arn(access.registry_id(), name)
    }

    async fn policy_target(identities: &Identities, name: &str) -> Result<PolicyTarget> {
        identities.group_policy_target(name).await
    }
}

/// A user or robot account in the one shape every answer uses.
pub fn account_shape(p: &PrincipalInfo) -> Account {
    Account {
        name: p.name.clone(),
        login_name: p.login_name(),
        arn: p.arn.clone(),
        created_at: rfc3339(p.created_at),
        groups: p.groups.clone(),
        expires_at: (p.kind == PrincipalKind::Robot).then(|| p.expires_at.map(rfc3339)),
        expired: (p.kind == PrincipalKind::Robot).then(|| p.expired(now_millis())),
    }
}

fn group_shape(g: GroupInfo) -> Group {
    Group {
        name: g.name,
        arn: g.arn,
        created_at: rfc3339(g.created_at),
        members: g.members,
    }
}

// ---- users and robot accounts ----

impl Operation for CreateUserRequest {
    const NAME: &'static str = "berth:CreateUser";
    type Output = Account;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        Users::collection().into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<Account> {
        known_members_only(&self.unknown)?;
        let name = required("name", self.name)?;
        let password = required("password", self.password)?;
        let user = cx.identities.create_user(&name, &password).await?;
        cx.note(format!("created user {name:?}"));
        Ok(account_shape(&user))
    }
}

/// An RFC 3339 time in Unix milliseconds.
pub fn parse_time(member: &str, value: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            Error::InvalidParameter(format!(
                "{member}: {:?} is not an RFC 3339 time ({e})",
                value.chars().take(60).collect::<String>()
            ))
        })
}

impl Operation for CreateRobotRequest {
    const NAME: &'static str = "berth:CreateRobot";
    type Output = CreatedRobot;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        Robots::collection().into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<CreatedRobot> {
        known_members_only(&self.unknown)?;
        let name = required("name", self.name)?;
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| parse_time("expiresAt", t))
            .transpose()?;
        let (robot, secret) = cx.identities.create_robot(&name, expires_at).await?;
        cx.note(format!(
            "created robot {name:?}, expires {}",
            self.expires_at.as_deref().unwrap_or("never")
        ));
        Ok(CreatedRobot {
            robot: account_shape(&robot),
            secret,
        })
    }
}

impl<K: AccountKind> Operation for ListAccountsRequest<K> {
    const NAME: &'static str = K::LIST;
    type Output = K::List;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        K::collection().into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<K::List> {
        let accounts = cx.identities.principal_infos(K::KIND).await?;
        Ok(K::list(accounts.iter().map(account_shape).collect()))
    }
}

impl<K: AccountKind> Operation for GetAccountRequest<K> {
    const NAME: &'static str = K::GET;
    type Output = Account;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<Account> {
        let account = cx.identities.principal_info(K::KIND, &self.name).await?;
        Ok(account_shape(&account))
    }
}

impl<K: AccountKind> Operation for DeleteAccountRequest<K> {
    const NAME: &'static str = K::DELETE;
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        cx.identities.delete_principal(K::KIND, &self.name).await
    }
}

impl Operation for ChangePasswordRequest {
    const NAME: &'static str = "berth:ChangePassword";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Users::arn(access, &self.name)
    }

    /// Tokens and registry passwords issued for the old password stop working.
    async fn run(self, cx: &Context<'_>) -> Result<()> {
        known_members_only(&self.unknown)?;
        let password = required("password", self.password)?;
        cx.identities.change_password(&self.name, &password).await?;
        cx.note("password changed; credential version bumped");
        Ok(())
    }
}

impl Operation for RegenerateRobotSecretRequest {
    const NAME: &'static str = "berth:RegenerateRobotSecret";
    type Output = RobotSecret;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Robots::arn(access, &self.name)
    }

    /// The old secret and the tokens issued for it stop working.
    async fn run(self, cx: &Context<'_>) -> Result<RobotSecret> {
        let secret = cx.identities.regenerate_robot_secret(&self.name).await?;
        cx.note("secret regenerated; credential version bumped");
        Ok(RobotSecret {
            login_name: format!("robot/{}", self.name),
            name: self.name,
            secret,
        })
    }
}

// ---- identity policies ----

impl<H: PolicyHolder> Operation for GetIdentityPolicyRequest<H> {
    const NAME: &'static str = H::GET_POLICY;
    /// The document exactly as it was stored.
    type Output = String;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        H::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<String> {
        let target = H::policy_target(cx.identities, &self.name).await?;
        cx.identities.attached_policy(&target).await
    }
}

impl<H: PolicyHolder> Operation for PutIdentityPolicyRequest<H> {
    const NAME: &'static str = H::PUT_POLICY;
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        H::arn(access, &self.name)
    }

    /// Validated (a refused document names the statement and field) and applied at once.
    async fn run(self, cx: &Context<'_>) -> Result<()> {
        let target = H::policy_target(cx.identities, &self.name).await?;
        cx.identities
            .attach_policy(&target, &self.policy_text)
            .await?;
        cx.note("identity policy attached");
        Ok(())
    }
}

impl<H: PolicyHolder> Operation for DeleteIdentityPolicyRequest<H> {
    const NAME: &'static str = H::DELETE_POLICY;
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        H::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        let target = H::policy_target(cx.identities, &self.name).await?;
        cx.identities.detach_policy(&target).await?;
        cx.note("identity policy removed");
        Ok(())
    }
}

// ---- access keys ----

fn access_key_status(active: bool) -> &'static str {
    if active {
        "Active"
    } else {
        "Inactive"
    }
}

impl<K: AccountKind> Operation for CreateAccessKeyRequest<K> {
    const NAME: &'static str = "berth:CreateAccessKey";
    type Output = NewAccessKey;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    /// The secret is in this answer only.
    async fn run(self, cx: &Context<'_>) -> Result<NewAccessKey> {
        let key = cx.identities.create_access_key(K::KIND, &self.name).await?;
        cx.note(format!("created access key {}", key.access_key_id));
        Ok(NewAccessKey {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
        })
    }
}

impl<K: AccountKind> Operation for ListAccessKeysRequest<K> {
    const NAME: &'static str = "berth:ListAccessKeys";
    type Output = AccessKeyList;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    /// Ids, status and creation times; never secrets.
    async fn run(self, cx: &Context<'_>) -> Result<AccessKeyList> {
        let keys = cx.identities.access_keys(K::KIND, &self.name).await?;
        Ok(AccessKeyList {
            access_keys: keys
                .into_iter()
                .map(|k| AccessKey {
                    access_key_id: k.access_key_id,
                    status: access_key_status(k.active),
                    created_at: rfc3339(k.created_at),
                })
                .collect(),
        })
    }
}

impl<K: AccountKind> Operation for UpdateAccessKeyRequest<K> {
    const NAME: &'static str = "berth:UpdateAccessKey";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    /// An inactive key signs nothing, and what was obtained with it stops working until it is
    /// activated again.
    async fn run(self, cx: &Context<'_>) -> Result<()> {
        known_members_only(&self.unknown)?;
        let active = match required("status", self.status)?.as_str() {
            "Active" => true,
            "Inactive" => false,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "status: {:?} is not Active or Inactive",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        cx.identities
            .set_access_key_active(K::KIND, &self.name, &self.access_key_id, active)
            .await?;
        cx.note(format!(
            "access key {} set {}",
            self.access_key_id,
            access_key_status(active).to_ascii_lowercase()
        ));
        Ok(())
    }
}

impl<K: AccountKind> Operation for DeleteAccessKeyRequest<K> {
    const NAME: &'static str = "berth:DeleteAccessKey";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        K::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        cx.identities
            .delete_access_key(K::KIND, &self.name, &self.access_key_id)
            .await?;
        cx.note(format!("deleted access key {}", self.access_key_id));
        Ok(())
    }
}

// ---- groups ----

impl Operation for CreateGroupRequest {
    const NAME: &'static str = "berth:CreateGroup";
    type Output = Group;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "groups".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<Group> {
        known_members_only(&self.unknown)?;
        let name = required("name", self.name)?;
        let group = cx.identities.create_group(&name).await?;
        cx.note(format!("created group {name:?}"));
        Ok(group_shape(group))
    }
}

impl Operation for ListGroupsRequest {
    const NAME: &'static str = "berth:ListGroups";
    type Output = GroupList;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, _: &Access) -> String {
        "groups".into()
    }

    async fn run(self, cx: &Context<'_>) -> Result<GroupList> {
        let groups = cx.identities.group_infos().await?;
        Ok(GroupList {
            groups: groups.into_iter().map(group_shape).collect(),
        })
    }
}

impl Operation for GetGroupRequest {
    const NAME: &'static str = "berth:GetGroup";
    type Output = Group;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Groups::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<Group> {
        Ok(group_shape(cx.identities.group(&self.name).await?))
    }
}

impl Operation for DeleteGroupRequest {
    const NAME: &'static str = "berth:DeleteGroup";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Groups::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        cx.identities.delete_group(&self.name).await
    }
}

impl Operation for AddGroupMemberRequest {
    const NAME: &'static str = "berth:AddGroupMember";
    type Output = Group;

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Groups::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<Group> {
        known_members_only(&self.unknown)?;
        let member = required("member", self.member)?;
        let group = cx.identities.add_group_member(&self.name, &member).await?;
        cx.note(format!("added member {member:?}"));
        Ok(group_shape(group))
    }
}

impl Operation for RemoveGroupMemberRequest {
    const NAME: &'static str = "berth:RemoveGroupMember";
    type Output = ();

    fn permission(&self) -> Permission<'_> {
        Permission::Admin
    }

    fn audited_resource(&self, access: &Access) -> String {
        Groups::arn(access, &self.name)
    }

    async fn run(self, cx: &Context<'_>) -> Result<()> {
        cx.identities
            .remove_group_member(&self.name, &self.member)
            .await?;
        cx.note(format!("removed member {:?}", self.member));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accounts_show_expiry_for_robots_only() {
        let mut info = PrincipalInfo {
            kind: PrincipalKind::User,
            name: "alice".into(),
            arn: "arn:aws:iam::000000000000:user/alice".into(),
            created_at: 1_700_000_000_500,
            expires_at: None,
            groups: vec!["devs".into()],
        };
        assert_eq!(
            serde_json::to_value(account_shape(&info)).unwrap(),
            json!({"name": "alice", "loginName": "alice", "arn": "arn:aws:iam::000000000000:user/alice",
                   "createdAt": "2023-11-14T22:13:20.500Z", "groups": ["devs"]})
        );
        info.kind = PrincipalKind::Robot;
        let robot = serde_json::to_value(account_shape(&info)).unwrap();
        assert_eq!(robot["loginName"], "robot/alice");
        assert_eq!(robot["expiresAt"], serde_json::Value::Null);
        assert!(robot.as_object().unwrap().contains_key("expiresAt"));
        assert_eq!(robot["expired"], false);
        info.expires_at = Some(1_000);
        let robot = serde_json::to_value(account_shape(&info)).unwrap();
        assert_eq!(robot["expiresAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(robot["expired"], true);
    }

    #[test]
    fn unknown_members_are_kept_for_the_operation_to_refuse() {
        let request: CreateRobotRequest =
            serde_json::from_value(json!({"name": "ci", "expiresIn": "90d"})).unwrap();
        assert_eq!(request.name.as_deref(), Some("ci"));
        let refused = known_members_only(&request.unknown).unwrap_err();
        assert!(refused.to_string().contains("expiresIn"), "{refused}");
        let request: CreateRobotRequest =
            serde_json::from_value(json!({"name": "ci", "expires_at": null})).unwrap();
        assert!(known_members_only(&request.unknown).is_ok());
    }
}
