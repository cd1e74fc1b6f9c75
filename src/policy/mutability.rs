//! Tag immutability, as ECR's `imageTagMutability` with `imageTagMutabilityExclusionFilters`:
//! which tags of a repository may not be moved to another digest. Pure: validation of the
//! setting (messages name the field, in ECR's style) and the decision for one tag.
//!
//! * `MUTABLE` (the default): every tag may move.
//! * `IMMUTABLE`: no tag may move.
//! * `IMMUTABLE_WITH_EXCLUSION`: no tag may move except those matching a filter (`latest`, `dev-*`).
//! * `MUTABLE_WITH_EXCLUSION`: every tag may move except those matching a filter (`v*`).
//!
//! Filters are `{"filterType": "WILDCARD", "filter": "<pattern>"}`, 1 to 5 of them, required by
//! the `*_WITH_EXCLUSION` modes and refused by the others; a pattern matches
//! `^[0-9a-zA-Z._*-]{1,128}$` and its `*` stands for any run of characters (also none).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The four modes of ECR's `imageTagMutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MutabilityMode {
    #[default]
    Mutable,
    Immutable,
    ImmutableWithExclusion,
    MutableWithExclusion,
}

const MODES: &str = "[MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]";

/// Most exclusion filters per repository (ECR's limit).
pub const MAX_EXCLUSION_FILTERS: usize = 5;

impl MutabilityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MutabilityMode::Mutable => "MUTABLE",
            MutabilityMode::Immutable => "IMMUTABLE",
            MutabilityMode::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            MutabilityMode::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    pub fn parse(s: &str) -> Option<MutabilityMode> {
        Some(match s {
            "MUTABLE" => MutabilityMode::Mutable,
            "IMMUTABLE" => MutabilityMode::Immutable,
            "IMMUTABLE_WITH_EXCLUSION" => MutabilityMode::ImmutableWithExclusion,
            "MUTABLE_WITH_EXCLUSION" => MutabilityMode::MutableWithExclusion,
            _ => return None,
        })
    }

    fn takes_exclusions(self) -> bool {
        matches!(
            self,
            MutabilityMode::ImmutableWithExclusion | MutabilityMode::MutableWithExclusion
        )
    }
}

impl std::fmt::Display for MutabilityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One exclusion filter, in ECR's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExclusionFilter {
    pub filter_type: String,
    pub filter: String,
}

/// A repository's validated tag mutability setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagMutability {
    pub mode: MutabilityMode,
    pub exclusion_filters: Vec<ExclusionFilter>,
}

fn invalid(field: &str, constraint: &str) -> String {
    format!("Invalid parameter at '{field}' failed to satisfy constraint: '{constraint}'")
}

fn valid_pattern(p: &str) -> bool {
    (1..=128).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'*' | b'-'))
}

/// Whether `tag` matches the wildcard `pattern` (`*` = any run of characters, also none).
pub fn wildcard_match(pattern: &str, tag: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), tag.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

impl TagMutability {
    /// Validates a setting given as JSON (`imageTagMutability` and the optional
    /// `imageTagMutabilityExclusionFilters`, each an untyped value from a request body). The
    /// error names the field that is wrong.
    pub fn from_json(mode: &Value, filters: Option<&Value>) -> Result<TagMutability, String> {
        let mode_text = match mode {
            Value::String(s) => s.as_str(),
            Value::Null => return Err(invalid("imageTagMutability", "Member must not be null")),
            _ => return Err(invalid("imageTagMutability", "Member must be a string")),
        };
        let filters = match filters {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items.as_slice()),
            Some(_) => {
                return Err(invalid(
                    "imageTagMutabilityExclusionFilters",
                    "Member must be a list",
                ))
            }
        };
        Self::from_parts(mode_text, filters)
    }

    /// Validates `mode` with its filters (untyped, as they came in a request).
    pub fn from_parts(mode: &str, filters: Option<&[Value]>) -> Result<TagMutability, String> {
        let Some(mode) = MutabilityMode::parse(mode) else {
            return Err(invalid(
                "imageTagMutability",
                &format!("Member must satisfy enum value set: {MODES}"),
            ));
        };
        let mut parsed = Vec::new();
        if let Some(items) = filters {
            if items.is_empty() || items.len() > MAX_EXCLUSION_FILTERS {
                return Err(invalid(
                    "imageTagMutabilityExclusionFilters",
                    &format!("Member must have length between 1 and {MAX_EXCLUSION_FILTERS}"),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let at = format!("imageTagMutabilityExclusionFilters.{}.member", i + 1);
                let Some(object) = item.as_object() else {
                    return Err(invalid(&at, "Member must be an object"));
                };
                if let Some(unknown) = object.keys().find(|k| *k != "filterType" && *k != "filter")
                {
                    return Err(invalid(
                        &format!("{at}.{}", unknown.chars().take(40).collect::<String>()),
                        "Member is not a field of ImageTagMutabilityExclusionFilter",
                    ));
                }
                let filter_type = match object.get("filterType") {
                    None | Some(Value::Null) => {
                        return Err(invalid(
                            &format!("{at}.filterType"),
                            "Member must not be null",
                        ))
                    }
                    Some(Value::String(s)) if s == "WILDCARD" => s.clone(),
                    Some(_) => {
                        return Err(invalid(
                            &format!("{at}.filterType"),
                            "Member must satisfy enum value set: [WILDCARD]",
                        ))
                    }
                };
                let filter = match object.get("filter") {
                    None | Some(Value::Null) => {
                        return Err(invalid(&format!("{at}.filter"), "Member must not be null"))
                    }
                    Some(Value::String(s)) if valid_pattern(s) => s.clone(),
                    Some(_) => return Err(invalid(
                        &format!("{at}.filter"),
                        "Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{1,128}$",
                    )),
                };
                parsed.push(ExclusionFilter {
                    filter_type,
                    filter,
                });
            }
        }
        Self::new(mode, parsed)
    }

    /// Checks that the filters suit the mode: required by the `*_WITH_EXCLUSION` modes,
    /// refused by the others.
    pub fn new(
        mode: MutabilityMode,
        exclusion_filters: Vec<ExclusionFilter>,
    ) -> Result<TagMutability, String> {
        if mode.takes_exclusions() && exclusion_filters.is_empty() {
            return Err(format!(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters': at least one exclusion \
                 filter is required when imageTagMutability is {mode}"
            ));
        }
        if !mode.takes_exclusions() && !exclusion_filters.is_empty() {
            return Err(format!(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters': exclusion filters \
                 can only be used with IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION, not {mode}"
            ));
        }
        Ok(TagMutability {
            mode,
            exclusion_filters,
        })
    }

    /// The setting as stored (mode and the filters' JSON); unreadable stored values fall back
    /// to the strictest reading of what is there (`IMMUTABLE` for an unknown mode).
    pub fn from_stored(mode: &str, filters: &str) -> TagMutability {
        TagMutability {
            mode: MutabilityMode::parse(mode).unwrap_or(MutabilityMode::Immutable),
            exclusion_filters: serde_json::from_str(filters).unwrap_or_default(),
        }
    }

    /// The filters as stored: ECR's JSON list.
    pub fn filters_json(&self) -> String {
        serde_json::to_string(&self.exclusion_filters).unwrap_or_else(|_| "[]".into())
    }

    fn excluded(&self, tag: &str) -> bool {
        self.exclusion_filters
            .iter()
            .any(|f| wildcard_match(&f.filter, tag))
    }

    /// Whether `tag`, once it exists, may not be moved to another digest.
    pub fn is_immutable(&self, tag: &str) -> bool {
        match self.mode {
            MutabilityMode::Mutable => false,
            MutabilityMode::Immutable => true,
            MutabilityMode::ImmutableWithExclusion => !self.excluded(tag),
            MutabilityMode::MutableWithExclusion => self.excluded(tag),
        }
    }
}

/// The refusal of a tag overwrite, in ECR's words (`docker push` prints it).
pub fn overwrite_refused(tag: &str, repository: &str) -> String {
    format!(
        "The image tag '{tag}' already exists in the '{repository}' repository and cannot be \
         overwritten because the repository is immutable."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setting(mode: &str, filters: Value) -> Result<TagMutability, String> {
        TagMutability::from_json(&json!(mode), Some(&filters))
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("dev-*", "dev-"));
        assert!(wildcard_match("dev-*", "dev-abc"));
        assert!(!wildcard_match("dev-*", "xdev-abc"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("v*.*-rc*", "v1.2-rc3"));
        assert!(wildcard_match("*-rc", "1.0-rc-rc"));
        assert!(!wildcard_match("*-rc", "1.0-rc-x"));
        assert!(wildcard_match("a**b", "ab"));
    }

    #[test]
    fn modes_and_exclusions() {
        let f = |p: &str| json!({"filterType": "WILDCARD", "filter": p});
        let m = TagMutability::from_json(&json!("MUTABLE"), None).unwrap();
        assert!(!m.is_immutable("v1"));
        let m = TagMutability::from_json(&json!("IMMUTABLE"), None).unwrap();
        assert!(m.is_immutable("latest"));
        let m = setting("IMMUTABLE_WITH_EXCLUSION", json!([f("latest"), f("dev-*")])).unwrap();
        assert!(!m.is_immutable("latest"));
        assert!(!m.is_immutable("dev-42"));
        assert!(m.is_immutable("v1.0"));
        let m = setting("MUTABLE_WITH_EXCLUSION", json!([f("v*")])).unwrap();
        assert!(m.is_immutable("v1.0"));
        assert!(!m.is_immutable("latest"));
        let stored = TagMutability::from_stored(m.mode.as_str(), &m.filters_json());
        assert_eq!(stored, m);
    }

    #[test]
    fn validation_names_the_field() {
        let f = |p: &str| json!({"filterType": "WILDCARD", "filter": p});
        let err = |mode: &str, filters: Value| setting(mode, filters).unwrap_err();
        assert!(TagMutability::from_json(&json!("SOMETIMES"), None)
            .unwrap_err()
            .contains("'imageTagMutability'"));
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!([]))
            .contains("'imageTagMutabilityExclusionFilters'"));
        assert!(
            TagMutability::from_json(&json!("MUTABLE_WITH_EXCLUSION"), None)
                .unwrap_err()
                .contains("imageTagMutabilityExclusionFilters")
        );
        assert!(err("IMMUTABLE", json!([f("x")])).contains("imageTagMutabilityExclusionFilters"));
        let six: Vec<Value> = (0..6).map(|i| f(&format!("t{i}"))).collect();
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!(six)).contains("between 1 and 5"));
        assert!(
            err("IMMUTABLE_WITH_EXCLUSION", json!([f("ok"), f("no/slash")]))
                .contains("'imageTagMutabilityExclusionFilters.2.member.filter'")
        );
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!([f("")])).contains(".filter'"));
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!([f(&"a".repeat(129))])).contains(".filter'"));
        assert!(err(
            "IMMUTABLE_WITH_EXCLUSION",
            json!([{"filterType": "REGEX", "filter": "x"}])
        )
        .contains("'imageTagMutabilityExclusionFilters.1.member.filterType'"));
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!([{"filter": "x"}])).contains(".filterType'"));
        assert!(err("IMMUTABLE_WITH_EXCLUSION", json!(["x"])).contains(".1.member'"));
        assert!(setting("IMMUTABLE_WITH_EXCLUSION", json!([f(&"a".repeat(128))])).is_ok());
    }
}
