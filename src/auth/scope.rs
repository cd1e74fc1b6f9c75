//! Docker token-authentication scopes and `WWW-Authenticate` challenges.
//!
//! Grammar (distribution's token spec):
//! `scope := resourcescope (' ' resourcescope)*`,
//! `resourcescope := resourcetype ":" resourcename ":" action (',' action)*`,
//! `resourcetype := [a-z0-9]+ ['(' class ')']` (the class is deprecated and ignored).
//! A resource name may contain a registry host with a port (`repository:host:5000/name:pull`), so
//! the type is split off at the first `:` and the actions at the last one.

use std::fmt;
use std::str::FromStr;

/// Resource type of repositories.
pub const REPOSITORY: &str = "repository";
/// Resource type of registry-wide resources (`registry:catalog:*`).
pub const REGISTRY: &str = "registry";
/// The `pull` action.
pub const PULL: &str = "pull";
/// The `push` action.
pub const PUSH: &str = "push";
/// The `delete` action.
pub const DELETE: &str = "delete";
/// The wildcard action (`registry:catalog:*`, or every action on a repository).
pub const ANY_ACTION: &str = "*";

const MAX_SCOPE_LEN: usize = 1024;

/// One resource scope: a resource type, a name and the actions asked for or granted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `repository`, `registry`, or another lowercase type (the deprecated class is dropped).
    pub resource_type: String,
    /// The resource name, e.g. `team/app`, `host:5000/name` or `catalog`.
    pub name: String,
    /// Distinct actions in the order first seen, e.g. `["pull", "push"]`.
    pub actions: Vec<String>,
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {scope:?}: {reason}")]
pub struct ScopeError {
    /// The offending scope (truncated to 200 characters).
    pub scope: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn scope_error(scope: &str, reason: &'static str) -> ScopeError {
    ScopeError {
        scope: scope.chars().take(200).collect(),
        reason,
    }
}

impl Scope {
    /// A repository scope, e.g. `Scope::repository("team/app", &["pull", "push"])`.
    pub fn repository(name: &str, actions: &[&str]) -> Scope {
        Scope::new(REPOSITORY, name, actions)
    }

    /// `registry:catalog:*`, the scope that `GET /v2/_catalog` needs.
    pub fn catalog() -> Scope {
        Scope::new(REGISTRY, "catalog", &[ANY_ACTION])
    }

    /// A scope from parts; duplicate actions are dropped.
    pub fn new(resource_type: &str, name: &str, actions: &[&str]) -> Scope {
        let mut scope = Scope {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: Vec::new(),
        };
        for action in actions {
            scope.add_action(action);
        }
        scope
    }

    /// Parses one resource scope such as `repository:team/app:pull,push`.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(scope_error(text, "too long"));
        }
        let (type_part, rest) = text
            .split_once(':')
            .ok_or_else(|| scope_error(text, "expected type:name:actions"))?;
        let (name, actions) = rest
            .rsplit_once(':')
            .ok_or_else(|| scope_error(text, "expected type:name:actions"))?;
        let resource_type = parse_resource_type(type_part).ok_or_else(|| {
            scope_error(
                text,
                "resource type must be [a-z0-9]+ with an optional (class)",
            )
        })?;
        if name.is_empty() {
            return Err(scope_error(text, "empty resource name"));
        }
        if !name.bytes().all(is_name_byte) {
            return Err(scope_error(
                text,
                "resource name contains characters outside [A-Za-z0-9._/:-]",
            ));
        }
        let mut scope = Scope {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: Vec::new(),
        };
        for action in actions.split(',') {
            if action.is_empty() {
                return Err(scope_error(text, "empty action"));
            }
            if !(action == ANY_ACTION || action.bytes().all(|b| b.is_ascii_lowercase())) {
                return Err(scope_error(text, "actions must be lowercase words or *"));
            }
            scope.add_action(action);
        }
        Ok(scope)
    }

    /// Adds `action` unless it is already present.
    pub fn add_action(&mut self, action: &str) {
        if !self.actions.iter().any(|a| a == action) {
            self.actions.push(action.to_owned());
        }
    }

    /// Whether this scope lists `action` (or the wildcard `*`).
    pub fn has_action(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == ANY_ACTION)
    }

    /// The `detail` array of distribution's `UNAUTHORIZED`/`DENIED` error body:
    /// `[{"Type":"repository","Name":"team/app","Action":"pull"}, ...]`.
    pub fn error_details(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.actions
                .iter()
                .map(|action| {
                    serde_json::json!({
                        "Type": self.resource_type,
                        "Name": self.name,
                        "Action": action,
                    })
                })
                .collect(),
        )
    }
}

fn parse_resource_type(text: &str) -> Option<&str> {
    let (base, class) = match text.split_once('(') {
        Some((base, rest)) => (base, Some(rest.strip_suffix(')')?)),
        None => (text, None),
    };
    let base_ok = !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let class_ok = match class {
        Some(c) => !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric()),
        None => true,
    };
    (base_ok && class_ok).then_some(base)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::parse(text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

/// Parses every `scope` parameter of a token request. Each parameter may hold several
/// space-separated scopes (the OAuth2 POST form sends one parameter, the GET form repeats it).
/// Scopes naming the same resource are merged (union of actions, first-seen order kept).
/// Empty parameters are ignored; a token request without scopes is valid (login).
pub fn parse_scope_params<'a>(
    params: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Scope>, ScopeError> {
    let mut scopes: Vec<Scope> = Vec::new();
    for param in params {
        for text in param.split(' ').filter(|s| !s.is_empty()) {
            merge_scope(&mut scopes, Scope::parse(text)?);
        }
    }
    Ok(scopes)
}

/// Adds `scope` to `scopes`, merging its actions into an existing entry for the same resource.
pub fn merge_scope(scopes: &mut Vec<Scope>, scope: Scope) {
    match scopes
        .iter_mut()
        .find(|s| s.resource_type == scope.resource_type && s.name == scope.name)
    {
        Some(existing) => {
            for action in &scope.actions {
                existing.add_action(action);
            }
        }
        None => scopes.push(scope),
    }
}

/// Renders scopes as one space-separated `scope` value.
pub fn render_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a value as an RFC 7230 `quoted-string`: wraps it in `"` and backslash-escapes `"` and `\`.
/// Control characters (which cannot appear in a header) are dropped.
pub fn quote_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `error` parameter of a Bearer challenge (RFC 6750 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// The token is expired, revoked, malformed or otherwise invalid.
    InvalidToken,
    /// The token is valid but does not grant what the request needs.
    InsufficientScope,
}

impl ChallengeError {
    fn as_str(self) -> &'static str {
        match self {
            ChallengeError::InvalidToken => "invalid_token",
            ChallengeError::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A `WWW-Authenticate: Bearer ...` challenge for a 401 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token endpoint, e.g. `https://registry.example.com/token`.
    pub realm: String,
    /// The service name clients pass back and tokens carry as `aud`.
    pub service: String,
    /// What the request needs; empty for `GET /v2/`.
    pub scopes: Vec<Scope>,
    /// Optional RFC 6750 error code.
    pub error: Option<ChallengeError>,
}

impl BearerChallenge {
    /// A challenge without scopes (the answer to `GET /v2/`).
    pub fn new(realm: &str, service: &str) -> BearerChallenge {
        BearerChallenge {
            realm: realm.to_owned(),
            service: service.to_owned(),
            scopes: Vec::new(),
            error: None,
        }
    }

    /// A challenge for a request on one repository, e.g. `(realm, service, "team/app", &["pull"])`.
    pub fn for_repository(
        realm: &str,
        service: &str,
        repository: &str,
        actions: &[&str],
    ) -> BearerChallenge {
        BearerChallenge::new(realm, service).with_scope(Scope::repository(repository, actions))
    }

    /// Adds a scope the request needs (merged with an existing one for the same resource).
    pub fn with_scope(mut self, scope: Scope) -> BearerChallenge {
        merge_scope(&mut self.scopes, scope);
        self
    }

    /// Sets the RFC 6750 `error` parameter.
    pub fn with_error(mut self, error: ChallengeError) -> BearerChallenge {
        self.error = Some(error);
        self
    }

    /// The header value:
    /// `Bearer realm="...",service="...",scope="repository:team/app:pull,push"[,error="..."]`.
    pub fn header_value(&self) -> String {
        let mut value = format!(
            "Bearer realm={},service={}",
            quote_header_value(&self.realm),
            quote_header_value(&self.service)
        );
        if !self.scopes.is_empty() {
            value.push_str(",scope=");
            value.push_str(&quote_header_value(&render_scopes(&self.scopes)));
        }
        if let Some(error) = self.error {
            value.push_str(",error=");
            value.push_str(&quote_header_value(error.as_str()));
        }
        value
    }
}

impl fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header_value())
    }
}

/// A `WWW-Authenticate: Basic realm="..."` challenge (for endpoints that accept only Basic,
/// such as the token endpoint itself).
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm={}", quote_header_value(realm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Scope {
        Scope::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_simple_repository_scope() {
        let s = parsed("repository:team/app:pull,push");
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "team/app");
        assert_eq!(s.actions, vec!["pull", "push"]);
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
    }

    #[test]
    fn name_with_host_and_port_keeps_its_colon() {
        let s = parsed("repository:host:5000/name:pull");
        assert_eq!(s.name, "host:5000/name");
        assert_eq!(s.actions, vec!["pull"]);
        assert_eq!(s.to_string(), "repository:host:5000/name:pull");
    }

    #[test]
    fn class_is_ignored_and_catalog_parses() {
        let s = parsed("repository(plugin):name:pull");
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "name");
        assert_eq!(parsed("registry:catalog:*"), Scope::catalog());
        assert!(Scope::catalog().has_action("anything"));
    }

    #[test]
    fn duplicate_actions_are_dropped() {
        assert_eq!(
            parsed("repository:a:pull,pull,push").actions,
            vec!["pull", "push"]
        );
    }

    #[test]
    fn several_scopes_and_several_params_merge_per_resource() {
        let scopes = parse_scope_params([
            "repository:a:pull repository:b:push",
            "repository:a:push",
            "",
            "registry:catalog:*",
        ])
        .unwrap();
        assert_eq!(
            scopes,
            vec![
                Scope::repository("a", &["pull", "push"]),
                Scope::repository("b", &["push"]),
                Scope::catalog(),
            ]
        );
        assert_eq!(
            render_scopes(&scopes),
            "repository:a:pull,push repository:b:push registry:catalog:*"
        );
        assert!(parse_scope_params(std::iter::empty()).unwrap().is_empty());
    }

    #[test]
    fn invalid_scopes_are_errors_not_panics() {
        for bad in [
            "",
            "repository",
            "repository:name",
            ":name:pull",
            "repository::pull",
            "repository:name:",
            "repository:name:pull,",
            "repository:name:,pull",
            "Repository:name:pull",
            "repo sitory:name:pull",
            "repository(:name:pull",
            "repository():name:pull",
            "repository(x:name:pull",
            "repository:na\"me:pull",
            "repository:na\\me:pull",
            "repository:name:PULL",
            "repository:name:pu ll",
            "repository:name:pull;rm",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Scope::parse(&format!("repository:{}:pull", "a".repeat(2000))).is_err());
        assert!(parse_scope_params(["repository:a:pull bogus"]).is_err());
    }

    #[test]
    fn challenge_renders_like_distribution() {
        let c = BearerChallenge::for_repository(
            "https://auth.example.com/token",
            "registry.example.com",
            "team/app",
            &["pull", "push"],
        );
        assert_eq!(
            c.header_value(),
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#
        );
        let root = BearerChallenge::new("https://r/token", "r");
        assert_eq!(
            root.header_value(),
            r#"Bearer realm="https://r/token",service="r""#
        );
        let two = root
            .clone()
            .with_scope(Scope::repository("a", &["pull"]))
            .with_scope(Scope::repository("b", &["pull"]))
            .with_error(ChallengeError::InsufficientScope);
        assert_eq!(
            two.to_string(),
            r#"Bearer realm="https://r/token",service="r",scope="repository:a:pull repository:b:pull",error="insufficient_scope""#
        );
    }

    #[test]
    fn challenge_values_are_escaped() {
        let c = BearerChallenge::new("https://r/to\"ken\\", "svc\r\nX-Injected: 1");
        assert_eq!(
            c.header_value(),
            r#"Bearer realm="https://r/to\"ken\\",service="svcX-Injected: 1""#
        );
        assert_eq!(
            basic_challenge("Berth \"registry\""),
            r#"Basic realm="Berth \"registry\"""#
        );
    }

    #[test]
    fn error_details_list_one_entry_per_action() {
        let details = Scope::repository("team/app", &["pull", "push"]).error_details();
        assert_eq!(
            details,
            serde_json::json!([
                {"Type": "repository", "Name": "team/app", "Action": "pull"},
                {"Type": "repository", "Name": "team/app", "Action": "push"},
            ])
        );
    }
}
