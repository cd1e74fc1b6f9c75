//! Repository creation templates (ECR's `CreateRepositoryCreationTemplate`), pure: validation of
//! a template's fields as a request carries them, and the choice of the template that applies to
//! a new repository. Messages name the field, in ECR's style.
//!
//! * `prefix` follows botocore's pattern (lowercase name components separated by `/`, an
//!   optional trailing `/`) or is `ROOT`, the fallback for every repository. A trailing `/` is
//!   dropped (`prod/` and `prod` are the same template); a prefix covers the repository of that
//!   name and every repository under it (`prod` covers `prod` and `prod/api`, not `production`).
//! * `appliedFor` is a non-empty list of `PULL_THROUGH_CACHE`, `REPLICATION`, `CREATE_ON_PUSH`.
//! * `encryptionConfiguration` must be `AES256` (Berth has no KMS).
//! * `imageTagMutability` (with its exclusion filters), `lifecyclePolicy`, `repositoryPolicy` and
//!   `resourceTags` are validated as PutImageTagMutability, PutLifecyclePolicy,
//!   SetRepositoryPolicy and TagResource validate them. An empty policy text means no policy.
//! * Berth extension: `imageScanningConfiguration` `{"scanOnPush": bool}`, applied to the new
//!   repository and returned only when set.
//! * `customRoleArn` is stored and returned; Berth needs no role to create repositories.
//! * Selection ([`select`]): among the templates whose `appliedFor` includes the kind of
//!   creation, the one with the longest prefix covering the name, else `ROOT`.

use serde_json::Value;

use super::document::{PolicyDocument, PolicyKind};
use super::mutability::TagMutability;
use crate::lifecycle::LifecyclePolicy;

/// The prefix of the fallback template.
pub const ROOT: &str = "ROOT";

/// Longest prefix (botocore's limit).
pub const MAX_PREFIX_CHARS: usize = 256;

/// Most resource tags per template (as per repository).
pub const MAX_TEMPLATE_TAGS: usize = 50;

/// The kinds of repository creation a template may apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppliedFor {
    PullThroughCache,
    Replication,
    CreateOnPush,
}

const APPLIED_FOR: &str = "[REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]";

impl AppliedFor {
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::Replication => "REPLICATION",
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    pub fn parse(s: &str) -> Option<AppliedFor> {
        Some(match s {
            "PULL_THROUGH_CACHE" => AppliedFor::PullThroughCache,
            "REPLICATION" => AppliedFor::Replication,
            "CREATE_ON_PUSH" => AppliedFor::CreateOnPush,
            _ => return None,
        })
    }
}

impl std::fmt::Display for AppliedFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated template. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Without a trailing `/`; `ROOT` for the fallback.
    pub prefix: String,
    pub description: Option<String>,
    /// Distinct, sorted.
    pub applied_for: Vec<AppliedFor>,
    pub tag_mutability: TagMutability,
    /// Keys unique, in the order given.
    pub resource_tags: Vec<(String, String)>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub custom_role_arn: Option<String>,
    /// `None`: not set by the template (new repositories do not scan on push).
    pub scan_on_push: Option<bool>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A template's members as a request carries them (ECR's and the REST API's JSON names), each
/// untyped so that a wrong type is refused naming the member. `null` counts as absent.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFields {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub prefix: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
    #[serde(default)]
    pub encryption_configuration: Option<Value>,
    #[serde(default)]
    pub resource_tags: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub image_tag_mutability: Option<Value>,
    #[serde(default)]
    pub image_tag_mutability_exclusion_filters: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub repository_policy: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub lifecycle_policy: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub applied_for: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub custom_role_arn: Option<Value>,
    #[serde(default)]
    pub image_scanning_configuration: Option<Value>,
}

fn invalid(field: &str, constraint: &str) -> String {
    format!("Invalid parameter at '{field}' failed to satisfy constraint: '{constraint}'")
}

fn string<'a>(field: &str, value: &'a Value) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| invalid(field, "Member must be a string"))
}

fn max_chars(field: &str, text: &str, max: usize) -> Result<(), String> {
    if text.chars().count() > max {
        return Err(invalid(
            field,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// One name component of botocore's pattern: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Validates a prefix (botocore's pattern and length, or `ROOT`); returns it without its
/// trailing `/`.
pub fn validate_prefix(prefix: &str) -> Result<String, String> {
    if prefix == ROOT {
        return Ok(ROOT.to_owned());
    }
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_CHARS {
        return Err(invalid(
            "prefix",
            &format!("Member must have length between 1 and {MAX_PREFIX_CHARS}"),
        ));
    }
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    if p.split('/').all(component_ok) {
        Ok(p.to_owned())
    } else {
        Err(invalid(
            "prefix",
            "Member must be ROOT or lowercase repository name components (a-z, 0-9 separated by \
             '.', '_', '__' or dashes) joined by '/'",
        ))
    }
}

fn applied_for(value: &Value) -> Result<Vec<AppliedFor>, String> {
    let Some(items) = value.as_array() else {
        return Err(invalid("appliedFor", "Member must be a list"));
    };
    if items.is_empty() {
        return Err(invalid("appliedFor", "Member must have at least 1 item"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("appliedFor.{}.member", i + 1);
        let kind = item.as_str().and_then(AppliedFor::parse).ok_or_else(|| {
            invalid(
                &field,
                &format!("Member must satisfy enum value set: {APPLIED_FOR}"),
            )
        })?;
        out.push(kind);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn encryption(value: &Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(invalid(
            "encryptionConfiguration",
            "Member must be an object",
        ));
    };
    match object.get("encryptionType") {
        None | Some(Value::Null) => Err(invalid(
            "encryptionConfiguration.encryptionType",
            "Member must not be null",
        )),
        Some(Value::String(t)) if t == "AES256" => match object.get("kmsKey") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(k)) if k.is_empty() => Ok(()),
            Some(_) => Err(invalid(
                "encryptionConfiguration.kmsKey",
                "Berth supports only encryptionType AES256, which takes no kmsKey",
            )),
        },
        Some(Value::String(t)) if t == "KMS" || t == "KMS_DSSE" => Err(invalid(
            "encryptionConfiguration.encryptionType",
            "only encryptionType AES256 is supported by Berth",
        )),
        Some(_) => Err(invalid(
            "encryptionConfiguration.encryptionType",
            "Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]",
        )),
    }
}

/// Resource tags as TagResource accepts them: at most 50, keys 1..=128 characters not starting
/// with `aws:`, values at most 256 characters, no key twice.
fn resource_tags(value: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(items) = value.as_array() else {
        return Err(invalid("resourceTags", "Member must be a list"));
    };
    if items.len() > MAX_TEMPLATE_TAGS {
        return Err(invalid(
            "resourceTags",
            &format!("Member must have at most {MAX_TEMPLATE_TAGS} items"),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("resourceTags.{}.member", i + 1);
        let Some(object) = item.as_object() else {
            return Err(invalid(&at, "Member must be an object"));
        };
        let member = |name: &str| match object.get(name) {
            None | Some(Value::Null) => {
                Err(invalid(&format!("{at}.{name}"), "Member must not be null"))
            }
            Some(v) => string(&format!("{at}.{name}"), v).map(str::to_owned),
        };
        let (key, value) = (member("Key")?, member("Value")?);
        let length = key.chars().count();
        if length == 0 || length > 128 {
            return Err(invalid(
                &format!("{at}.Key"),
                "Member must have length between 1 and 128",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(
                &format!("{at}.Key"),
                "the prefix 'aws:' is reserved",
            ));
        }
        max_chars(&format!("{at}.Value"), &value, 256)?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(invalid(
                &format!("{at}.Key"),
                &format!("the tag key '{key}' is given twice"),
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// A policy text member: `Some(text)` to store, `None` for an empty text (no policy).
fn policy_text(
    field: &str,
    value: &Value,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<Option<String>, String> {
    let text = string(field, value)?;
    if text.is_empty() {
        return Ok(None);
    }
    check(text).map_err(|e| invalid(field, &e))?;
    Ok(Some(text.to_owned()))
}

fn scanning(value: &Value) -> Result<bool, String> {
    let Some(object) = value.as_object() else {
        return Err(invalid(
            "imageScanningConfiguration",
            "Member must be an object",
        ));
    };
    match object.get("scanOnPush") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(
            "imageScanningConfiguration.scanOnPush",
            "Member must be a boolean",
        )),
    }
}

impl Template {
    /// A new template from CreateRepositoryCreationTemplate's members (`prefix` and `appliedFor`
    /// required), created at `now`.
    pub fn create(fields: &TemplateFields, now: i64) -> Result<Template, String> {
        let prefix = match &fields.prefix {
            None => return Err(invalid("prefix", "Member must not be null")),
            Some(v) => validate_prefix(string("prefix", v)?)?,
        };
        if fields.applied_for.is_none() {
            return Err(invalid("appliedFor", "Member must not be null"));
        }
        let empty = Template {
            prefix,
            description: None,
            applied_for: Vec::new(),
            tag_mutability: TagMutability::default(),
            resource_tags: Vec::new(),
            repository_policy: None,
            lifecycle_policy: None,
            custom_role_arn: None,
            scan_on_push: None,
            created_at: now,
            updated_at: now,
        };
        empty.updated(fields, now)
    }

    /// This template with the members `fields` carries replaced (UpdateRepositoryCreationTemplate;
    /// `prefix` names the template and is not changed). `imageTagMutability` replaces the mode
    /// and its filters together; filters alone apply to the current mode.
    pub fn updated(&self, fields: &TemplateFields, now: i64) -> Result<Template, String> {
        let mut t = self.clone();
        t.updated_at = now;
        if let Some(v) = &fields.description {
            let text = string("description", v)?;
            max_chars("description", text, 256)?;
            t.description = (!text.is_empty()).then(|| text.to_owned());
        }
        if let Some(v) = &fields.applied_for {
            t.applied_for = applied_for(v)?;
        }
        if let Some(v) = &fields.encryption_configuration {
            encryption(v)?;
        }
        if let Some(v) = &fields.resource_tags {
            t.resource_tags = resource_tags(v)?;
        }
        match (
            &fields.image_tag_mutability,
            &fields.image_tag_mutability_exclusion_filters,
        ) {
            (Some(mode), filters) => {
                t.tag_mutability = TagMutability::from_json(mode, filters.as_ref())?;
            }
            (None, Some(filters)) => {
                t.tag_mutability = TagMutability::from_json(
                    &Value::String(t.tag_mutability.mode.as_str().into()),
                    Some(filters),
                )?;
            }
            (None, None) => {}
        }
        if let Some(v) = &fields.repository_policy {
            t.repository_policy = policy_text("repositoryPolicy", v, |text| {
                PolicyDocument::parse(text, PolicyKind::Repository)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
        }
        if let Some(v) = &fields.lifecycle_policy {
            t.lifecycle_policy = policy_text("lifecyclePolicy", v, |text| {
                LifecyclePolicy::parse(text)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
        }
        if let Some(v) = &fields.custom_role_arn {
            let text = string("customRoleArn", v)?;
            max_chars("customRoleArn", text, 2048)?;
            t.custom_role_arn = (!text.is_empty()).then(|| text.to_owned());
        }
        if let Some(v) = &fields.image_scanning_configuration {
            t.scan_on_push = Some(scanning(v)?);
        }
        if t.applied_for.is_empty() {
            return Err(invalid("appliedFor", "Member must have at least 1 item"));
        }
        Ok(t)
    }

    /// Whether this template's prefix covers the repository `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.prefix == ROOT
            || name == self.prefix
            || name
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The prefixes that could cover `name`: every leading run of its components, and `ROOT`.
pub fn candidate_prefixes(name: &str) -> Vec<String> {
    let mut out: Vec<String> = name
        .match_indices('/')
        .map(|(i, _)| name[..i].to_owned())
        .collect();
    out.push(name.to_owned());
    out.push(ROOT.to_owned());
    out
}

/// The template for creating `name` for `kind`: among the templates applying to `kind`, the one
/// with the longest prefix covering the name, else `ROOT`'s.
pub fn select<'a>(templates: &'a [Template], name: &str, kind: AppliedFor) -> Option<&'a Template> {
    let applying = || {
        templates
            .iter()
            .filter(move |t| t.applied_for.contains(&kind) && t.covers(name))
    };
    applying()
        .filter(|t| t.prefix != ROOT)
        .max_by_key(|t| t.prefix.len())
        .or_else(|| applying().find(|t| t.prefix == ROOT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> TemplateFields {
        serde_json::from_value(v).unwrap()
    }

    fn create(v: Value) -> Result<Template, String> {
        Template::create(&fields(v), 1)
    }

    #[test]
    fn prefixes() {
        for ok in [
            "ROOT",
            "a",
            "prod",
            "prod/",
            "prod/team-1",
            "a__b",
            "a---b/c.d_e",
        ] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_prefix("prod/").unwrap(), "prod");
        for bad in [
            "",
            "Prod",
            "-a",
            "a-",
            "a//b",
            "/a",
            "a___b",
            "a._b",
            "a..b",
            "a b",
            &"a".repeat(257),
        ] {
            assert!(
                validate_prefix(bad).unwrap_err().contains("'prefix'"),
                "{bad}"
            );
        }
    }

    #[test]
    fn create_requires_prefix_and_applied_for() {
        assert!(create(json!({"appliedFor": ["CREATE_ON_PUSH"]}))
            .unwrap_err()
            .contains("'prefix'"));
        assert!(create(json!({"prefix": "a"}))
            .unwrap_err()
            .contains("'appliedFor'"));
        assert!(create(json!({"prefix": "a", "appliedFor": []}))
            .unwrap_err()
            .contains("'appliedFor'"));
        assert!(
            create(json!({"prefix": "a", "appliedFor": ["CREATE_ON_PUSH", "NOPE"]}))
                .unwrap_err()
                .contains("'appliedFor.2.member'")
        );
        let t = create(json!({"prefix": "a", "appliedFor": ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE", "CREATE_ON_PUSH"]}))
            .unwrap();
        assert_eq!(
            t.applied_for,
            vec![AppliedFor::PullThroughCache, AppliedFor::CreateOnPush]
        );
        assert_eq!(t.tag_mutability, TagMutability::default());
        assert_eq!(t.scan_on_push, None);
    }

    #[test]
    fn fields_are_validated_naming_the_field() {
        let base = |extra: Value| {
            let mut v = json!({"prefix": "a", "appliedFor": ["CREATE_ON_PUSH"]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            create(v)
        };
        let err = |extra: Value| base(extra).unwrap_err();
        assert!(err(json!({"imageTagMutability": "SOMETIMES"})).contains("imageTagMutability"));
        assert!(err(json!({"lifecyclePolicy": "{\"rules\": []}"})).contains("'lifecyclePolicy'"));
        assert!(err(json!({"lifecyclePolicy": 3})).contains("'lifecyclePolicy'"));
        assert!(err(json!({"repositoryPolicy": "{}"})).contains("'repositoryPolicy'"));
        assert!(
            err(json!({"resourceTags": [{"Key": "aws:x", "Value": "v"}]}))
                .contains("'resourceTags.1.member.Key'")
        );
        assert!(err(
            json!({"resourceTags": [{"Key": "k", "Value": "v"}, {"Key": "k", "Value": "w"}]})
        )
        .contains("'resourceTags.2.member.Key'"));
        assert!(err(json!({"resourceTags": [{"Key": "k"}]})).contains(".Value'"));
        assert!(
            err(json!({"encryptionConfiguration": {"encryptionType": "KMS"}}))
                .contains("'encryptionConfiguration.encryptionType'")
        );
        assert!(err(json!({"description": "d".repeat(257)})).contains("'description'"));
        assert!(
            err(json!({"imageScanningConfiguration": {"scanOnPush": "yes"}}))
                .contains("'imageScanningConfiguration.scanOnPush'")
        );
        let t = base(json!({
            "imageTagMutability": "IMMUTABLE",
            "lifecyclePolicy": r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            "repositoryPolicy": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
            "resourceTags": [{"Key": "team", "Value": "a"}],
            "encryptionConfiguration": {"encryptionType": "AES256"},
            "imageScanningConfiguration": {"scanOnPush": true},
            "repositoryPolicy": "",
        }))
        .unwrap();
        assert_eq!(t.scan_on_push, Some(true));
        assert!(t.lifecycle_policy.is_some());
        assert!(t.repository_policy.is_none());
    }

    #[test]
    fn update_replaces_given_members_only() {
        let t = create(
            json!({"prefix": "a", "appliedFor": ["CREATE_ON_PUSH"], "description": "x",
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]}),
        )
        .unwrap();
        let u = t
            .updated(&fields(json!({"appliedFor": ["PULL_THROUGH_CACHE"]})), 5)
            .unwrap();
        assert_eq!(u.description.as_deref(), Some("x"));
        assert_eq!(u.tag_mutability, t.tag_mutability);
        assert_eq!(u.applied_for, vec![AppliedFor::PullThroughCache]);
        assert_eq!((u.created_at, u.updated_at), (1, 5));
        let u = t
            .updated(&fields(json!({"imageTagMutability": "IMMUTABLE"})), 5)
            .unwrap();
        assert!(u.tag_mutability.exclusion_filters.is_empty());
        assert!(t
            .updated(&fields(json!({"appliedFor": []})), 5)
            .unwrap_err()
            .contains("'appliedFor'"));
    }

    #[test]
    fn selection_prefers_the_longest_covering_prefix_for_the_kind() {
        let t = |prefix: &str, kinds: &[AppliedFor]| Template {
            applied_for: kinds.to_vec(),
            ..create(json!({"prefix": prefix, "appliedFor": ["REPLICATION"]})).unwrap()
        };
        use AppliedFor::*;
        let all = vec![
            t("ROOT", &[CreateOnPush]),
            t("prod", &[CreateOnPush, PullThroughCache]),
            t("prod/team", &[CreateOnPush]),
            t("prod/cache", &[PullThroughCache]),
        ];
        let pick = |name: &str, kind| select(&all, name, kind).map(|t| t.prefix.as_str());
        assert_eq!(pick("prod/team/api", CreateOnPush), Some("prod/team"));
        assert_eq!(pick("prod/team", CreateOnPush), Some("prod/team"));
        assert_eq!(pick("prod/teammate", CreateOnPush), Some("prod"));
        assert_eq!(pick("prod/cache/x", CreateOnPush), Some("prod"));
        assert_eq!(pick("prod/cache/x", PullThroughCache), Some("prod/cache"));
        assert_eq!(pick("production", CreateOnPush), Some("ROOT"));
        assert_eq!(pick("production", PullThroughCache), None);
        assert_eq!(pick("x", Replication), None);
        assert_eq!(
            candidate_prefixes("a/b/c"),
            vec!["a", "a/b", "a/b/c", "ROOT"]
        );
    }
}
