//! Parsing and validation of lifecycle policy documents. Every refusal names the rule and the
//! field.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

/// ECR's limit for a lifecycle policy, in characters (whitespace included).
pub const MAX_LIFECYCLE_POLICY_CHARS: usize = 30_720;

/// Most `*` wildcards in one `tagPatternList` entry.
const MAX_WILDCARDS: usize = 4;

/// Names a rule in messages: `rule with rulePriority 2`, or `rules[1]` when the rule has no
/// usable priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// 0-based position in `rules`.
    pub index: usize,
    pub priority: Option<u32>,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priority {
            Some(p) => write!(f, "rule with rulePriority {p}"),
            None => write!(f, "rules[{}]", self.index),
        }
    }
}

/// Why a lifecycle policy was refused. `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("lifecycle policy is {actual} characters long; the limit is {limit}")]
    TooLarge { actual: usize, limit: usize },
    #[error("lifecycle policy is not valid JSON: {0}")]
    InvalidJson(String),
    /// A problem outside any rule.
    #[error("{field}: {message}")]
    Document { field: String, message: String },
    /// A problem inside one rule.
    #[error("{rule}: {field}: {message}")]
    Rule {
        rule: RuleRef,
        field: String,
        message: String,
    },
}

impl LifecycleError {
    /// The offending field's path (e.g. `selection.countUnit`), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            LifecycleError::Document { field, .. } | LifecycleError::Rule { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    /// The offending rule, if the problem is inside one.
    pub fn rule(&self) -> Option<&RuleRef> {
        match self {
            LifecycleError::Rule { rule, .. } => Some(rule),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

impl TagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TagStatus::Tagged => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        }
    }
}

/// The tag filter of a `tagged` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelection {
    /// `untagged` and `any` rules.
    None,
    /// `tagPrefixList`: every prefix must start one of the image's tags.
    Prefixes(Vec<String>),
    /// `tagPatternList`: every pattern must match one of the image's tags in full.
    Patterns(Vec<String>),
}

/// `countType` with its `countNumber`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountType {
    /// Keep the N newest selected images.
    ImageCountMoreThan(u32),
    /// Images pushed more than N days ago.
    SinceImagePushed(u32),
    /// Images not pulled for more than N days (never pulled: since push).
    SinceImagePulled(u32),
}

/// A validated rule (its action is always `expire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub description: Option<String>,
    pub tag_status: TagStatus,
    pub tags: TagSelection,
    pub count: CountType,
}

/// A validated lifecycle policy; rules sorted by priority, lowest (applied first) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    rules: Vec<Rule>,
}

impl LifecyclePolicy {
    /// Parses and validates `text` with ECR's rules.
    pub fn parse(text: &str) -> Result<LifecyclePolicy, LifecycleError> {
        let chars = text.chars().count();
        if chars > MAX_LIFECYCLE_POLICY_CHARS {
            return Err(LifecycleError::TooLarge {
                actual: chars,
                limit: MAX_LIFECYCLE_POLICY_CHARS,
            });
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| LifecycleError::InvalidJson(e.to_string()))?;
        let Value::Object(top) = value else {
            return Err(doc_err(
                "(document)",
                "must be a JSON object with a \"rules\" list",
            ));
        };
        if let Some(key) = top.keys().find(|k| k.as_str() != "rules") {
            return Err(doc_err(
                key,
                "is not a lifecycle policy field; expected only \"rules\"",
            ));
        }
        let rules = match top.get("rules") {
            None => return Err(doc_err("rules", "is required")),
            Some(Value::Array(rules)) if rules.is_empty() => {
                return Err(doc_err("rules", "must contain at least one rule"))
            }
            Some(Value::Array(rules)) => rules,
            Some(_) => return Err(doc_err("rules", "must be a list of rules")),
        };

        let mut parsed = Vec::with_capacity(rules.len());
        let mut priorities = HashSet::new();
        for (index, raw) in rules.iter().enumerate() {
            let rule = parse_rule(index, raw)?;
            if !priorities.insert(rule.priority) {
                return Err(LifecycleError::Rule {
                    rule: RuleRef {
                        index,
                        priority: Some(rule.priority),
                    },
                    field: "rulePriority".into(),
                    message: format!(
                        "{} is used by more than one rule; priorities must be unique",
                        rule.priority
                    ),
                });
            }
            parsed.push((index, rule));
        }
        parsed.sort_by_key(|(_, r)| r.priority);

        let mut untagged: Option<u32> = None;
        let highest = parsed.last().map(|(_, r)| r.priority);
        for (index, rule) in &parsed {
            let at = RuleRef {
                index: *index,
                priority: Some(rule.priority),
            };
            match rule.tag_status {
                TagStatus::Untagged => {
                    if let Some(first) = untagged {
                        return Err(LifecycleError::Rule {
                            rule: at,
                            field: "selection.tagStatus".into(),
                            message: format!(
                                "only one rule may select untagged images; the rule with \
                                 rulePriority {first} already does"
                            ),
                        });
                    }
                    untagged = Some(rule.priority);
                }
                TagStatus::Any if Some(rule.priority) != highest => {
                    return Err(LifecycleError::Rule {
                        rule: at,
                        field: "rulePriority".into(),
                        message: "a rule with tagStatus \"any\" must have the highest \
                                  rulePriority (it is evaluated last)"
                            .into(),
                    });
                }
                _ => {}
            }
        }
        Ok(LifecyclePolicy {
            rules: parsed.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// The rules, lowest priority number (applied first) first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn doc_err(field: &str, message: &str) -> LifecycleError {
    LifecycleError::Document {
        field: field.into(),
        message: message.into(),
    }
}

/// Builds errors for one rule.
struct At {
    rule: RuleRef,
}

impl At {
    fn err(&self, field: &str, message: impl Into<String>) -> LifecycleError {
        LifecycleError::Rule {
            rule: self.rule.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn unknown_fields(
        &self,
        obj: &Map<String, Value>,
        prefix: &str,
        known: &[&str],
    ) -> Result<(), LifecycleError> {
        match obj.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(self.err(
                &format!("{prefix}{key}"),
                format!(
                    "is not a lifecycle policy field; expected one of {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn positive_int(&self, field: &str, v: &Value) -> Result<u32, LifecycleError> {
        match v.as_u64() {
            Some(n) if n >= 1 && n <= i32::MAX as u64 => Ok(n as u32),
            _ => Err(self.err(
                field,
                format!("must be an integer from 1 to {}, got {v}", i32::MAX),
            )),
        }
    }
}

fn parse_rule(index: usize, raw: &Value) -> Result<Rule, LifecycleError> {
    let mut at = At {
        rule: RuleRef {
            index,
            priority: None,
        },
    };
    let Value::Object(obj) = raw else {
        return Err(at.err("(rule)", "must be a JSON object"));
    };
    let priority = match obj.get("rulePriority") {
        None => return Err(at.err("rulePriority", "is required")),
        Some(v) => at.positive_int("rulePriority", v)?,
    };
    at.rule.priority = Some(priority);
    at.unknown_fields(
        obj,
        "",
        &["rulePriority", "description", "selection", "action"],
    )?;

    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(at.err("description", "must be a string")),
    };

    // Action first: a `transition` rule is refused for that reason, not for its selection.
    let action = match obj.get("action") {
        None => return Err(at.err("action", "is required")),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(at.err("action", "must be an object")),
    };
    at.unknown_fields(action, "action.", &["type", "targetStorageClass"])?;
    match action.get("type") {
        None => return Err(at.err("action.type", "is required")),
        Some(Value::String(t)) if t == "expire" => {}
        Some(Value::String(t)) if t == "transition" => return Err(at.err(
            "action.type",
            "\"transition\" is not supported: Berth has no archive storage class; use \"expire\"",
        )),
        Some(other) => {
            return Err(at.err("action.type", format!("must be \"expire\", got {other}")))
        }
    }
    if action.contains_key("targetStorageClass") {
        return Err(at.err(
            "action.targetStorageClass",
            "is not supported: Berth has no archive storage class",
        ));
    }

    let selection = match obj.get("selection") {
        None => return Err(at.err("selection", "is required")),
        Some(Value::Object(s)) => s,
        Some(_) => return Err(at.err("selection", "must be an object")),
    };
    at.unknown_fields(
        selection,
        "selection.",
        &[
            "tagStatus",
            "tagPrefixList",
            "tagPatternList",
            "storageClass",
            "countType",
            "countUnit",
            "countNumber",
        ],
    )?;
    match selection.get("storageClass") {
        None => {}
        Some(Value::String(s)) if s == "standard" => {}
        Some(Value::String(s)) if s == "archive" => {
            return Err(at.err(
                "selection.storageClass",
                "\"archive\" is not supported: Berth has no archive storage class",
            ))
        }
        Some(other) => {
            return Err(at.err(
                "selection.storageClass",
                format!("must be \"standard\", got {other}"),
            ))
        }
    }

    let tag_status = match selection.get("tagStatus") {
        None => return Err(at.err("selection.tagStatus", "is required")),
        Some(Value::String(s)) => match s.as_str() {
            "tagged" => TagStatus::Tagged,
            "untagged" => TagStatus::Untagged,
            "any" => TagStatus::Any,
            _ => {
                return Err(at.err(
                    "selection.tagStatus",
                    format!("must be \"tagged\", \"untagged\" or \"any\", got \"{s}\""),
                ))
            }
        },
        Some(other) => {
            return Err(at.err(
                "selection.tagStatus",
                format!("must be \"tagged\", \"untagged\" or \"any\", got {other}"),
            ))
        }
    };

    let prefixes = string_list(&at, selection, "tagPrefixList")?;
    let patterns = string_list(&at, selection, "tagPatternList")?;
    let tags = match tag_status {
        TagStatus::Tagged => match (prefixes, patterns) {
            (Some(_), Some(_)) => {
                return Err(at.err(
                    "selection.tagPatternList",
                    "cannot be combined with tagPrefixList in one rule; use one of them",
                ))
            }
            (None, None) => {
                return Err(at.err(
                    "selection.tagStatus",
                    "\"tagged\" requires tagPrefixList or tagPatternList",
                ))
            }
            (Some(p), None) => TagSelection::Prefixes(p),
            (None, Some(p)) => {
                for (i, pattern) in p.iter().enumerate() {
                    let stars = pattern.matches('*').count();
                    if stars > MAX_WILDCARDS {
                        return Err(at.err(
                            &format!("selection.tagPatternList[{i}]"),
                            format!(
                                "\"{pattern}\" has {stars} wildcards (*); at most {MAX_WILDCARDS} are allowed"
                            ),
                        ));
                    }
                }
                TagSelection::Patterns(p)
            }
        },
        TagStatus::Untagged | TagStatus::Any => {
            let field = if prefixes.is_some() {
                Some("selection.tagPrefixList")
            } else if patterns.is_some() {
                Some("selection.tagPatternList")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(at.err(
                    field,
                    format!(
                        "must be omitted when tagStatus is \"{}\"",
                        tag_status.as_str()
                    ),
                ));
            }
            TagSelection::None
        }
    };

    #[derive(PartialEq)]
    enum Kind {
        Count,
        Pushed,
        Pulled,
    }
    let kind = match selection.get("countType") {
        None => return Err(at.err("selection.countType", "is required")),
        Some(Value::String(s)) => match s.as_str() {
            "imageCountMoreThan" => Kind::Count,
            "sinceImagePushed" => Kind::Pushed,
            "sinceImagePulled" => Kind::Pulled,
            "sinceImageTransitioned" => return Err(at.err(
                "selection.countType",
                "\"sinceImageTransitioned\" is not supported: Berth has no archive storage class",
            )),
            _ => {
                return Err(at.err(
                    "selection.countType",
                    format!(
                        "must be \"imageCountMoreThan\", \"sinceImagePushed\" or \
                         \"sinceImagePulled\", got \"{s}\""
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(at.err(
                "selection.countType",
                format!("must be a string, got {other}"),
            ))
        }
    };
    match (selection.get("countUnit"), &kind) {
        (Some(_), Kind::Count) => {
            return Err(at.err(
                "selection.countUnit",
                "must be omitted when countType is \"imageCountMoreThan\"",
            ))
        }
        (None, Kind::Pushed | Kind::Pulled) => return Err(at.err(
            "selection.countUnit",
            "is required (\"days\") with countType \"sinceImagePushed\" or \"sinceImagePulled\"",
        )),
        (Some(Value::String(u)), _) if u == "days" => {}
        (Some(other), _) => {
            return Err(at.err(
                "selection.countUnit",
                format!("must be \"days\", got {other}"),
            ))
        }
        (None, Kind::Count) => {}
    }
    let number = match selection.get("countNumber") {
        None => return Err(at.err("selection.countNumber", "is required")),
        Some(v) => at.positive_int("selection.countNumber", v)?,
    };
    let count = match kind {
        Kind::Count => CountType::ImageCountMoreThan(number),
        Kind::Pushed => CountType::SinceImagePushed(number),
        Kind::Pulled => CountType::SinceImagePulled(number),
    };
    Ok(Rule {
        priority,
        description,
        tag_status,
        tags,
        count,
    })
}

/// A `tagPrefixList` / `tagPatternList`: absent, or a non-empty list of non-empty strings.
fn string_list(
    at: &At,
    selection: &Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, LifecycleError> {
    let field = format!("selection.{name}");
    let list = match selection.get(name) {
        None => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(at.err(&field, "must be a list of strings")),
    };
    if list.is_empty() {
        return Err(at.err(&field, "must not be empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        match v {
            Value::String(s) if s.is_empty() => {
                return Err(at.err(&format!("{field}[{i}]"), "must not be empty"))
            }
            Value::String(s) if s.len() > 128 => {
                return Err(at.err(
                    &format!("{field}[{i}]"),
                    "is longer than 128 characters, the longest tag",
                ))
            }
            Value::String(s) => out.push(s.clone()),
            other => {
                return Err(at.err(
                    &format!("{field}[{i}]"),
                    format!("must be a string, got {other}"),
                ))
            }
        }
    }
    Ok(Some(out))
}
