//! Who is asking, for what, and from where: the request context a decision is made against, and
//! the ARN conventions of Berth's identities.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};

use super::action::Action;
use super::key::ConditionKey;

/// `arn:aws:iam::<registryId>:user/<name>`.
pub fn user_arn(registry_id: &str, name: &str) -> String {
    format!("arn:aws:iam::{registry_id}:user/{name}")
}

/// `arn:aws:iam::<registryId>:user/robot/<name>`.
pub fn robot_arn(registry_id: &str, name: &str) -> String {
    format!("arn:aws:iam::{registry_id}:user/robot/{name}")
}

/// `arn:aws:iam::<registryId>:group/<name>`.
pub fn group_arn(registry_id: &str, name: &str) -> String {
    format!("arn:aws:iam::{registry_id}:group/{name}")
}

/// `arn:aws:iam::<registryId>:root`: in a Principal, every signed-in identity of the registry.
pub fn root_arn(registry_id: &str) -> String {
    format!("arn:aws:iam::{registry_id}:root")
}

/// `arn:aws:ecr:<region>:<registryId>:repository/<name>`.
pub fn repository_arn(region: &str, registry_id: &str, repository: &str) -> String {
    format!("arn:aws:ecr:{region}:{registry_id}:repository/{repository}")
}

/// A signed-in user or robot account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The identity's ARN (`aws:PrincipalArn`).
    pub arn: String,
    /// The value of `aws:username` (and `${aws:username}`).
    pub username: String,
    /// ARNs of the groups the identity belongs to.
    pub groups: Vec<String>,
}

impl Identity {
    /// A user: ARN `user/<name>`, `aws:username` = `<name>`.
    pub fn user(registry_id: &str, name: &str) -> Identity {
        Identity {
            arn: user_arn(registry_id, name),
            username: name.to_owned(),
            groups: Vec::new(),
        }
    }

    /// A robot account: ARN `user/robot/<name>`, `aws:username` = `robot/<name>` (the path is
    /// kept so a robot can never be mistaken for a user of the same name).
    pub fn robot(registry_id: &str, name: &str) -> Identity {
        Identity {
            arn: robot_arn(registry_id, name),
            username: format!("robot/{name}"),
            groups: Vec::new(),
        }
    }

    /// Adds membership of the group with this ARN.
    pub fn with_group(mut self, group_arn: impl Into<String>) -> Identity {
        self.groups.push(group_arn.into());
        self
    }

    /// The account (registry id) in the identity's ARN.
    pub fn account(&self) -> Option<&str> {
        arn_account(&self.arn)
    }
}

/// The account of an IAM ARN (`arn:aws:iam::<account>:...`); `None` for anything else.
pub fn arn_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let mut fields = rest.splitn(5, ':');
    let (_partition, service, _region, account) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    (service == "iam" && !account.is_empty()).then_some(account)
}

/// The caller: anonymous (no credentials, no ARN) or a signed-in identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    Anonymous,
    Authenticated(Identity),
}

impl Requester {
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Requester::Anonymous => None,
            Requester::Authenticated(identity) => Some(identity),
        }
    }
}

/// Everything a decision depends on. The clock is an input: the engine never reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub principal: Requester,
    pub action: Action,
    /// The repository acted on; `None` for registry-level requests (`GetAuthorizationToken`,
    /// `DescribeRegistry`, the catalog's `DescribeRepositories`, ...).
    pub repository: Option<String>,
    pub region: String,
    pub registry_id: String,
    /// `aws:SourceIp`; absent when unknown.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: the request arrived over TLS.
    pub secure_transport: bool,
    /// `aws:CurrentTime`.
    pub current_time: DateTime<Utc>,
}

impl RequestContext {
    /// A registry-level request with no source address over plain HTTP; refine with the `with_*`
    /// methods.
    pub fn new(
        principal: Requester,
        action: Action,
        registry_id: impl Into<String>,
        region: impl Into<String>,
        current_time: DateTime<Utc>,
    ) -> RequestContext {
        RequestContext {
            principal,
            action,
            repository: None,
            region: region.into(),
            registry_id: registry_id.into(),
            source_ip: None,
            secure_transport: false,
            current_time,
        }
    }

    pub fn with_repository(mut self, repository: impl Into<String>) -> RequestContext {
        self.repository = Some(repository.into());
        self
    }

    pub fn with_action(mut self, action: Action) -> RequestContext {
        self.action = action;
        self
    }

    pub fn with_source_ip(mut self, ip: IpAddr) -> RequestContext {
        self.source_ip = Some(ip);
        self
    }

    pub fn with_secure_transport(mut self, secure: bool) -> RequestContext {
        self.secure_transport = secure;
        self
    }

    /// The source address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as dual-stack sockets report
    /// IPv4 peers) turned back into IPv4, so IPv4 ranges match.
    pub(crate) fn normalized_source_ip(&self) -> Option<IpAddr> {
        self.source_ip.map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
    }

    /// A condition key's value as a string; `None` when the request lacks the key.
    pub(crate) fn key_string(&self, key: ConditionKey) -> Option<String> {
        match key {
            ConditionKey::SourceIp => self.normalized_source_ip().map(|ip| ip.to_string()),
            ConditionKey::CurrentTime => {
                Some(self.current_time.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            ConditionKey::SecureTransport => Some(self.secure_transport.to_string()),
            ConditionKey::Username => self.principal.identity().map(|i| i.username.clone()),
            ConditionKey::PrincipalArn => self.principal.identity().map(|i| i.arn.clone()),
            ConditionKey::PrincipalAccount => self
                .principal
                .identity()
                .and_then(|i| i.account().map(str::to_owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_keys() {
        let robot =
            Identity::robot("000000000000", "ci").with_group(group_arn("000000000000", "b"));
        assert_eq!(robot.arn, "arn:aws:iam::000000000000:user/robot/ci");
        assert_eq!(robot.account(), Some("000000000000"));
        assert_eq!(
            robot.groups,
            vec!["arn:aws:iam::000000000000:group/b".to_owned()]
        );
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .to_utc();
        let ctx = RequestContext::new(
            Requester::Authenticated(robot),
            Action::PutImage,
            "000000000000",
            "us-east-1",
            now,
        )
        .with_source_ip("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(
            ctx.key_string(ConditionKey::SourceIp).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            ctx.key_string(ConditionKey::Username).as_deref(),
            Some("robot/ci")
        );
        assert_eq!(
            ctx.key_string(ConditionKey::CurrentTime).as_deref(),
            Some("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            ctx.key_string(ConditionKey::SecureTransport).as_deref(),
            Some("false")
        );
        let anon = RequestContext {
            principal: Requester::Anonymous,
            source_ip: None,
            ..ctx
        };
        assert_eq!(anon.key_string(ConditionKey::PrincipalArn), None);
        assert_eq!(anon.key_string(ConditionKey::SourceIp), None);
        assert_eq!(
            repository_arn("eu-west-1", "000000000000", "a/b"),
            "arn:aws:ecr:eu-west-1:000000000000:repository/a/b"
        );
        assert_eq!(root_arn("000000000000"), "arn:aws:iam::000000000000:root");
        assert_eq!(
            user_arn("000000000000", "alice"),
            "arn:aws:iam::000000000000:user/alice"
        );
    }
}
