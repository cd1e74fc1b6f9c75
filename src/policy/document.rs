//! Parsing and validation of policy documents: the IAM JSON grammar restricted to what Berth can
//! enforce. Every refusal names the statement (Sid and index) and the field.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::action::{Action, ActionSet};
use super::condition::{parse_conditions, Condition, FieldError};
use super::context::RequestContext;
use super::glob::{simple_match, Pattern};

/// ECR's limit for a repository policy, in characters.
pub const MAX_REPOSITORY_POLICY_CHARS: usize = 10_240;
/// Berth's limit for identity and registry policies, in characters (IAM's managed-policy limit
/// is lower; this leaves room for documents that list many repositories).
pub const MAX_POLICY_CHARS: usize = 30_720;

/// Where a document is attached; it decides which elements are required or forbidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user or group: no `Principal` (the holder is the principal), `Resource`
    /// required.
    Identity,
    /// Attached to one repository: `Principal` required, no `Resource` (the repository is
    /// implied).
    Repository,
    /// The registry-wide resource policy: `Principal` and `Resource` required.
    Registry,
}

impl PolicyKind {
    /// The maximum document size in characters (all characters, whitespace included).
    pub fn max_chars(self) -> usize {
        match self {
            PolicyKind::Repository => MAX_REPOSITORY_POLICY_CHARS,
            PolicyKind::Identity | PolicyKind::Registry => MAX_POLICY_CHARS,
        }
    }

    fn has_principal(self) -> bool {
        self != PolicyKind::Identity
    }

    fn has_resource(self) -> bool {
        self != PolicyKind::Repository
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Identity => "identity",
            PolicyKind::Repository => "repository",
            PolicyKind::Registry => "registry",
        })
    }
}

/// The policy language version. `2012-10-17` enables `${...}` policy variables; a document
/// without `Version` is `2008-10-17`, as in IAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    V2008_10_17,
    V2012_10_17,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// Names a statement in messages and decisions: `Statement "Sid" (Statement[1])`, or
/// `Statement[1]` without a Sid. Indexes are 0-based, as JSON paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementId {
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for StatementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "Statement {sid:?} (Statement[{}])", self.index),
            None => write!(f, "Statement[{}]", self.index),
        }
    }
}

/// Why a document was refused. `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy document is {actual} characters long; {kind} policies are limited to {limit}")]
    TooLarge {
        kind: PolicyKind,
        actual: usize,
        limit: usize,
    },
    #[error("policy document is not valid JSON: {0}")]
    InvalidJson(String),
    /// A problem outside any statement (top-level fields).
    #[error("{message}")]
    Document { field: String, message: String },
    /// A problem inside one statement.
    #[error("{statement}: {message}")]
    Statement {
        statement: StatementId,
        field: String,
        message: String,
    },
}

impl PolicyError {
    /// The offending field's path (e.g. `Condition.StringLike.aws:username`), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Document { field, .. } | PolicyError::Statement { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    /// The offending statement, if the problem is inside one.
    pub fn statement(&self) -> Option<&StatementId> {
        match self {
            PolicyError::Statement { statement, .. } => Some(statement),
            _ => None,
        }
    }
}

/// One entry of a `Principal`'s `AWS` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalPattern {
    /// `"*"`: everyone, anonymous included.
    Anyone,
    /// `arn:aws:iam::<id>:root` or a bare account id: every signed-in identity of that account.
    Account(String),
    /// A user or robot account ARN.
    User(String),
    /// A group ARN: matches the group's members.
    Group(String),
    /// A well-formed IAM principal Berth never has (roles, assumed roles): matches nobody.
    Unmatched,
}

/// One entry of `Resource` / `NotResource`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResourcePattern {
    /// `*`: everything, registry-level requests included.
    Any,
    /// An ECR ARN pattern or a bare repository glob (region and registry implied).
    Ecr {
        region: Pattern,
        account: Pattern,
        /// Matched against `repository/<name>`.
        resource: Pattern,
        /// The pattern covers every repository (`repository/*`), which also stands for
        /// registry-level requests.
        all_repositories: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resources {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<ResourcePattern>,
}

/// A validated statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    id: StatementId,
    effect: Effect,
    pub(crate) principals: Option<Vec<PrincipalPattern>>,
    actions: ActionSet,
    pub(crate) resources: Option<Resources>,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    pub fn id(&self) -> &StatementId {
        &self.id
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions the statement covers (`NotAction` already complemented).
    pub fn actions(&self) -> ActionSet {
        self.actions
    }
}

/// A validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    kind: PolicyKind,
    version: PolicyVersion,
    statements: Vec<Statement>,
}

impl PolicyDocument {
    /// Parses and validates `text` as a document of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        let actual = text.chars().count();
        if actual > kind.max_chars() {
            return Err(PolicyError::TooLarge {
                kind,
                actual,
                limit: kind.max_chars(),
            });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::InvalidJson(e.to_string()))?;
        PolicyDocument::from_value(&value, kind)
    }

    /// Validates an already-parsed JSON document (no size check).
    pub fn from_value(value: &Value, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        let doc_err = |field: &str, message: String| PolicyError::Document {
            field: field.into(),
            message,
        };
        let Some(top) = value.as_object() else {
            return Err(doc_err("", "policy document must be a JSON object".into()));
        };
        for field in top.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(doc_err(
                    field,
                    format!(
                        "unknown top-level field \"{field}\"; expected Version, Id and Statement"
                    ),
                ));
            }
        }
        let version = match top.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(other) => {
                return Err(doc_err(
                    "Version",
                    format!("Version must be \"2012-10-17\" or \"2008-10-17\", not {other}"),
                ))
            }
        };
        if top.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(doc_err("Id", "Id must be a string".into()));
        }
        let raw_statements: Vec<&Value> = match top.get("Statement") {
            None => return Err(doc_err("Statement", "Statement is required".into())),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(doc_err("Statement", "Statement must not be empty".into()))
            }
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            Some(_) => {
                return Err(doc_err(
                    "Statement",
                    "Statement must be an object or a list of objects".into(),
                ))
            }
        };
        let variables = version == PolicyVersion::V2012_10_17;
        let mut statements = Vec::with_capacity(raw_statements.len());
        let mut sids = HashSet::new();
        for (index, raw) in raw_statements.into_iter().enumerate() {
            let statement = parse_statement(index, raw, kind, variables)?;
            if let Some(sid) = &statement.id.sid {
                if !sids.insert(sid.clone()) {
                    return Err(PolicyError::Statement {
                        statement: statement.id.clone(),
                        field: "Sid".into(),
                        message: format!(
                            "Sid {sid:?} is used by an earlier statement; Sids must be unique"
                        ),
                    });
                }
            }
            statements.push(statement);
        }
        Ok(PolicyDocument {
            kind,
            version,
            statements,
        })
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

const STATEMENT_FIELDS: [&str; 8] = [
    "Sid",
    "Effect",
    "Principal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn parse_statement(
    index: usize,
    raw: &Value,
    kind: PolicyKind,
    variables: bool,
) -> Result<Statement, PolicyError> {
    let sid = raw
        .get("Sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let id = StatementId { index, sid };
    let err = |field: &str, message: String| PolicyError::Statement {
        statement: id.clone(),
        field: field.into(),
        message,
    };
    let wrap = |(field, message): FieldError| err(&field, message);
    let Some(obj) = raw.as_object() else {
        return Err(err("", "a statement must be a JSON object".into()));
    };
    for field in obj.keys() {
        if field == "NotPrincipal" {
            return Err(err(field, "NotPrincipal is not supported; use Principal with a Deny, or a Condition on aws:PrincipalArn".into()));
        }
        if !STATEMENT_FIELDS.contains(&field.as_str()) {
            return Err(err(
                field,
                format!(
                    "unknown field \"{field}\"; expected {}",
                    STATEMENT_FIELDS.join(", ")
                ),
            ));
        }
    }
    if obj.get("Sid").is_some_and(|s| !s.is_string()) {
        return Err(err("Sid", "Sid must be a string".into()));
    }
    let effect = match obj.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(err(
                "Effect",
                format!("Effect must be \"Allow\" or \"Deny\", not {other}"),
            ))
        }
        None => return Err(err("Effect", "Effect is required".into())),
    };

    let principals = match (obj.get("Principal"), kind.has_principal()) {
        (Some(_), false) => {
            return Err(err(
                "Principal",
                "Principal is not allowed in an identity policy: the user or group it is attached to is the principal".into(),
            ))
        }
        (None, true) => return Err(err("Principal", format!("Principal is required in {kind} policies"))),
        (None, false) => None,
        (Some(p), true) => Some(parse_principal(p).map_err(wrap)?),
    };

    let actions = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(err(
                "NotAction",
                "a statement has Action or NotAction, not both".into(),
            ))
        }
        (None, None) => return Err(err("Action", "Action (or NotAction) is required".into())),
        (Some(a), None) => parse_actions("Action", a).map_err(wrap)?,
        (None, Some(a)) => parse_actions("NotAction", a).map_err(wrap)?.complement(),
    };

    let resources = match (
        obj.get("Resource"),
        obj.get("NotResource"),
        kind.has_resource(),
    ) {
        (Some(_), _, false) | (_, Some(_), false) => {
            let field = if obj.contains_key("Resource") {
                "Resource"
            } else {
                "NotResource"
            };
            return Err(err(
                field,
                format!("{field} is not allowed in a repository policy: the repository it is attached to is implied"),
            ));
        }
        (None, None, false) => None,
        (Some(_), Some(_), true) => {
            return Err(err(
                "NotResource",
                "a statement has Resource or NotResource, not both".into(),
            ))
        }
        (None, None, true) => {
            return Err(err(
                "Resource",
                format!("Resource (or NotResource) is required in {kind} policies"),
            ))
        }
        (Some(r), None, true) => Some(Resources {
            negated: false,
            patterns: parse_resources("Resource", r, variables).map_err(wrap)?,
        }),
        (None, Some(r), true) => Some(Resources {
            negated: true,
            patterns: parse_resources("NotResource", r, variables).map_err(wrap)?,
        }),
    };

    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_conditions(c, variables).map_err(wrap)?,
    };
    Ok(Statement {
        id,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// A string or a non-empty list of strings.
fn string_list<'v>(field: &str, value: &'v Value) -> Result<Vec<&'v str>, FieldError> {
    let bad = || {
        (
            field.to_owned(),
            format!("{field} must be a string or a non-empty list of strings"),
        )
    };
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().ok_or_else(bad)).collect()
        }
        _ => Err(bad()),
    }
}

fn parse_actions(field: &str, value: &Value) -> Result<ActionSet, FieldError> {
    let mut set = ActionSet::EMPTY;
    for pattern in string_list(field, value)? {
        let fail = |why: String| (field.to_owned(), format!("{field} \"{pattern}\" {why}"));
        if pattern == "*" {
            set = ActionSet::all();
            continue;
        }
        let Some((prefix, name)) = pattern.split_once(':') else {
            return Err(fail(
                "is not an action; write ecr:<Action>, e.g. ecr:BatchGetImage".into(),
            ));
        };
        if !prefix.eq_ignore_ascii_case("ecr") {
            return Err(fail(format!(
                "is not an ECR action: the service prefix must be \"ecr\", not \"{prefix}\""
            )));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        {
            return Err(fail(
                "has an invalid action name (letters, digits, * and ? only)".into(),
            ));
        }
        let matched: ActionSet = Action::ALL
            .iter()
            .copied()
            .filter(|a| simple_match(name, a.name(), true))
            .collect();
        if matched.is_empty() {
            return Err(fail("matches no ECR action".into()));
        }
        set = set.union(matched);
    }
    Ok(set)
}

static PARTITION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^aws(-[a-z]+)*$").unwrap());
static IAM_ARN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^arn:aws(?:-[a-z]+)*:(iam|sts)::([0-9]{12}):(.+)$").unwrap());
static IAM_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9+=,.@_-]+(/[A-Za-z0-9+=,.@_-]+)*$").unwrap());

fn parse_principal(value: &Value) -> Result<Vec<PrincipalPattern>, FieldError> {
    let entries = match value {
        Value::String(s) if s == "*" => return Ok(vec![PrincipalPattern::Anyone]),
        Value::Object(map) => aws_principal_entries(map)?,
        _ => {
            return Err((
                "Principal".into(),
                "Principal must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::<registryId>:user/<name>\"}".into(),
            ))
        }
    };
    entries.into_iter().map(parse_principal_entry).collect()
}

fn aws_principal_entries(map: &Map<String, Value>) -> Result<Vec<&str>, FieldError> {
    if let Some(other) = map.keys().find(|k| *k != "AWS") {
        return Err((
            format!("Principal.{other}"),
            format!("Principal type \"{other}\" is not supported; Berth principals are \"AWS\" (users, robot accounts, groups, root, \"*\")"),
        ));
    }
    let Some(aws) = map.get("AWS") else {
        return Err((
            "Principal".into(),
            "Principal object must have an \"AWS\" entry".into(),
        ));
    };
    string_list("Principal.AWS", aws)
}

fn parse_principal_entry(entry: &str) -> Result<PrincipalPattern, FieldError> {
    let fail = |why: &str| {
        (
            "Principal.AWS".to_owned(),
            format!("Principal \"{entry}\" {why}"),
        )
    };
    if entry == "*" {
        return Ok(PrincipalPattern::Anyone);
    }
    if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalPattern::Account(entry.to_owned()));
    }
    if entry.contains(['*', '?']) {
        return Err(fail("contains a wildcard, which principals do not allow; use \"*\" with a Condition on aws:PrincipalArn (ArnLike or StringLike)"));
    }
    let Some(caps) = IAM_ARN.captures(entry) else {
        return Err(fail("is not a principal: expected \"*\", a 12-digit registry id, or arn:aws:iam::<registryId>:root, :user/<name>, :user/robot/<name> or :group/<name>"));
    };
    let (service, account, resource) = (&caps[1], &caps[2], &caps[3]);
    let name_ok = |name: &str| IAM_NAME.is_match(name);
    if service == "sts" {
        return match resource.strip_prefix("assumed-role/") {
            Some(name) if name_ok(name) => Ok(PrincipalPattern::Unmatched),
            _ => Err(fail("is not a valid STS principal ARN")),
        };
    }
    if resource == "root" {
        return Ok(PrincipalPattern::Account(account.to_owned()));
    }
    let (kind, name) = resource.split_once('/').unwrap_or((resource, ""));
    if !name_ok(name) {
        return Err(fail("has an invalid name after the resource type"));
    }
    match kind {
        "user" => Ok(PrincipalPattern::User(entry.to_owned())),
        "group" => Ok(PrincipalPattern::Group(entry.to_owned())),
        "role" => Ok(PrincipalPattern::Unmatched),
        _ => Err(fail(
            "names an unsupported IAM resource type; expected root, user/, group/ or role/",
        )),
    }
}

fn parse_resources(
    field: &str,
    value: &Value,
    variables: bool,
) -> Result<Vec<ResourcePattern>, FieldError> {
    string_list(field, value)?
        .into_iter()
        .map(|r| parse_resource(field, r, variables))
        .collect()
}

fn parse_resource(field: &str, text: &str, variables: bool) -> Result<ResourcePattern, FieldError> {
    let fail = |why: String| (field.to_owned(), format!("{field} \"{text}\" {why}"));
    let pattern = |s: &str| Pattern::parse(s, true, variables).map_err(&fail);
    if text.is_empty() {
        return Err(fail("is empty".into()));
    }
    let whole = pattern(text)?;
    if whole.matches_everything() {
        return Ok(ResourcePattern::Any);
    }
    let (region, account, repo) = if text.starts_with("arn:") {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let malformed = || {
            fail("is not a valid ECR ARN; expected arn:aws:ecr:<region>:<registryId>:repository/<name>".into())
        };
        let [_, partition, service, region, account, resource] = parts[..] else {
            return Err(malformed());
        };
        if !PARTITION.is_match(partition) {
            return Err(malformed());
        }
        if service != "ecr" {
            return Err(fail(format!("is not an ECR resource (service \"{service}\"); Berth policies govern ECR repositories only")));
        }
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-*?".contains(c))
        {
            return Err(fail(format!("has an invalid region \"{region}\"")));
        }
        if account.is_empty()
            || !account
                .chars()
                .all(|c| c.is_ascii_digit() || "*?".contains(c))
        {
            return Err(fail(format!("has an invalid registry id \"{account}\"")));
        }
        let repo = if pattern(resource)?.matches_everything() {
            "*"
        } else {
            match resource.strip_prefix("repository/") {
                Some(repo) if !repo.is_empty() => repo,
                _ => return Err(malformed()),
            }
        };
        (pattern(region)?, pattern(account)?, repo)
    } else {
        (pattern("*")?, pattern("*")?, text)
    };
    let repo_pattern = pattern(repo)?;
    if let Some(c) = repo_pattern
        .literal_chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._/-".contains(*c)))
    {
        return Err(fail(format!(
            "has the character {c:?}, which repository names cannot contain (lowercase letters, digits, . _ - / and the wildcards * ?){}",
            if c == '$' && !variables { "; policy variables need Version 2012-10-17" } else { "" }
        )));
    }
    Ok(ResourcePattern::Ecr {
        region,
        account,
        resource: pattern(&format!("repository/{repo}"))?,
        all_repositories: repo_pattern.matches_everything(),
    })
}

impl ResourcePattern {
    /// Does the pattern cover the request's resource (its repository, or the registry itself)?
    pub(crate) fn matches(&self, ctx: &RequestContext) -> bool {
        match self {
            ResourcePattern::Any => true,
            ResourcePattern::Ecr {
                region,
                account,
                resource,
                all_repositories,
            } => {
                region.is_match(&ctx.region, ctx, false)
                    && account.is_match(&ctx.registry_id, ctx, false)
                    && match &ctx.repository {
                        Some(repo) => resource.is_match(&format!("repository/{repo}"), ctx, false),
                        None => *all_repositories,
                    }
            }
        }
    }
}

impl PrincipalPattern {
    /// Does the entry name the caller?
    pub(crate) fn matches(&self, ctx: &RequestContext) -> bool {
        let identity = ctx.principal.identity();
        match self {
            PrincipalPattern::Anyone => true,
            PrincipalPattern::Account(account) => {
                identity.is_some_and(|i| i.account() == Some(account.as_str()))
            }
            PrincipalPattern::User(arn) => identity.is_some_and(|i| i.arn == *arn),
            PrincipalPattern::Group(arn) => identity.is_some_and(|i| i.groups.contains(arn)),
            PrincipalPattern::Unmatched => false,
        }
    }
}
