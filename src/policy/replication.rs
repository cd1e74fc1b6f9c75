//! Replication rules (pure, no I/O): ECR's `ReplicationConfiguration` shape, its validation
//! with ECR's limits, and which destinations a repository's pushes go to.
//!
//! ECR's API accepts ECR's grammar only. Berth's REST API also accepts `PREFIX_NOT_MATCH` (the
//! rule skips repositories under the prefix) and `LITERAL_MATCH` (one repository by name)
//! repository filters, `imageTagFilters` (`WILDCARD` patterns a pushed tag must match; a push by
//! digest is selected only when it is a referrer, which follows its subject), and destinations
//! that are configured non-Berth registries (`{"target": "<name>"}`, see `[[replication.targets]]`).
//! A rule applies to a repository when it has no including filter or one of them matches, and
//! none of its `PREFIX_NOT_MATCH` filters does.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most rules in a configuration (ECR's service limit).
pub const MAX_RULES: usize = 10;
/// Most distinct destinations across all rules (ECR's service limit).
pub const MAX_DESTINATIONS: usize = 25;
/// Most repository filters in one rule.
pub const MAX_FILTERS: usize = 100;

/// The registry's replication configuration (`PutReplicationConfiguration`'s
/// `replicationConfiguration`, `DescribeRegistry`'s answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationConfiguration {
    pub rules: Vec<ReplicationRule>,
}

/// One rule: where the images of the repositories it selects go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationRule {
    pub destinations: Vec<ReplicationDestination>,
    /// Which repositories the rule selects; every repository when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_filters: Option<Vec<RepositoryFilter>>,
    /// Whether deleting an image here deletes it at the destinations too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_replication: Option<bool>,
    /// Which pushed tags the rule selects (Berth's; every tag when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_filters: Option<Vec<TagFilter>>,
}

/// A tag pattern of a rule: `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ReplicationTagFilter)]
pub struct TagFilter {
    pub filter: String,
    /// `WILDCARD`.
    pub filter_type: String,
}

/// A registry images are replicated to: a Berth (or ECR-like) registry by account and region,
/// or a configured non-Berth registry by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationDestination {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry_id: String,
    /// A `[[replication.targets]]` name (Berth's; then region and registryId are left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ReplicationDestination {
    /// A registry by account and region.
    pub fn registry(registry_id: &str, region: &str) -> ReplicationDestination {
        ReplicationDestination {
            region: region.to_owned(),
            registry_id: registry_id.to_owned(),
            target: None,
        }
    }

    /// A configured non-Berth registry.
    pub fn target(name: &str) -> ReplicationDestination {
        ReplicationDestination {
            region: String::new(),
            registry_id: String::new(),
            target: Some(name.to_owned()),
        }
    }
}

/// A repository filter of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ReplicationRepositoryFilter)]
pub struct RepositoryFilter {
    pub filter: String,
    /// `PREFIX_MATCH` (ECR's only type), or through the REST API `PREFIX_NOT_MATCH` and
    /// `LITERAL_MATCH`.
    pub filter_type: String,
}

const PREFIX_MATCH: &str = "PREFIX_MATCH";
const PREFIX_NOT_MATCH: &str = "PREFIX_NOT_MATCH";
const LITERAL_MATCH: &str = "LITERAL_MATCH";
const WILDCARD: &str = "WILDCARD";
/// Most tag filters in one rule.
pub const MAX_TAG_FILTERS: usize = 100;

/// Which door a configuration came through: ECR's keeps ECR's exact grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    Ecr,
    Berth,
}

impl ReplicationConfiguration {
    /// Checks the configuration against ECR's limits and shapes (and Berth's extensions when
    /// `grammar` allows them). `this` is this registry's (registry id, region); `known` says
    /// whether a destination is a registry this one can reach. The error names the field.
    pub fn validate(
        &self,
        grammar: Grammar,
        this: (&str, &str),
        known: impl Fn(&ReplicationDestination) -> bool,
    ) -> Result<(), String> {
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "replicationConfiguration.rules has {} rules; at most {MAX_RULES} are allowed",
                self.rules.len()
            ));
        }
        let mut distinct = std::collections::HashSet::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("replicationConfiguration.rules[{r}].{field}");
            if rule.destinations.is_empty() {
                return Err(format!(
                    "{} must name at least one destination",
                    at("destinations")
                ));
            }
            for (d, destination) in rule.destinations.iter().enumerate() {
                let at = |field: &str| at(&format!("destinations[{d}].{field}"));
                if let Some(target) = &destination.target {
                    if grammar == Grammar::Ecr {
                        return Err(format!(
                            "{}: destinations that are not registries by account and region are \
                             Berth's (set through /api/v1/replication)",
                            at("target")
                        ));
                    }
                    if !destination.region.is_empty() || !destination.registry_id.is_empty() {
                        return Err(format!(
                            "{}: a destination is a target or a registry id and region, not both",
                            at("target")
                        ));
                    }
                    if !known(destination) {
                        return Err(format!(
                            "{}: {:?} is not a configured target ([[replication.targets]])",
                            at("target"),
                            clip(target)
                        ));
                    }
                    distinct.insert(destination.clone());
                    continue;
                }
                if !is_registry_id(&destination.registry_id) {
                    return Err(format!(
                        "{} must be 12 digits, not {:?}",
                        at("registryId"),
                        clip(&destination.registry_id)
                    ));
                }
                if !is_region(&destination.region) {
                    return Err(format!(
                        "{} must be 2 to 25 of a-z 0-9 -, not {:?}",
                        at("region"),
                        clip(&destination.region)
                    ));
                }
                if (
                    destination.registry_id.as_str(),
                    destination.region.as_str(),
                ) == this
                {
                    return Err(format!(
                        "{}: a registry cannot replicate to itself ({} in {})",
                        at("registryId"),
                        destination.registry_id,
                        destination.region
                    ));
                }
                if !known(destination) {
                    return Err(format!(
                        "{}: {} in {} is not a registry this one trusts ([federation] registries \
                         with that registry id and region)",
                        at("registryId"),
                        destination.registry_id,
                        destination.region
                    ));
                }
                distinct.insert(destination.clone());
            }
            if let Some(filters) = &rule.repository_filters {
                if filters.is_empty() || filters.len() > MAX_FILTERS {
                    return Err(format!(
                        "{} must hold 1 to {MAX_FILTERS} filters, not {}",
                        at("repositoryFilters"),
                        filters.len()
                    ));
                }
                for (f, filter) in filters.iter().enumerate() {
                    let at = |field: &str| at(&format!("repositoryFilters[{f}].{field}"));
                    let allowed: &[&str] = match grammar {
                        Grammar::Ecr => &[PREFIX_MATCH],
                        Grammar::Berth => &[PREFIX_MATCH, PREFIX_NOT_MATCH, LITERAL_MATCH],
                    };
                    if !allowed.contains(&filter.filter_type.as_str()) {
                        return Err(format!(
                            "{} must be {}, not {:?}{}",
                            at("filterType"),
                            allowed.join(" or "),
                            clip(&filter.filter_type),
                            if grammar == Grammar::Ecr {
                                " (Berth's other filter types are set through /api/v1/replication)"
                            } else {
                                ""
                            }
                        ));
                    }
                    if !is_filter_value(&filter.filter) {
                        return Err(format!(
                            "{} must be 2 to 256 characters of a repository name (lowercase \
                             letters, digits, and . _ - /), not {:?}",
                            at("filter"),
                            clip(&filter.filter)
                        ));
                    }
                }
            }
            if let Some(filters) = &rule.image_tag_filters {
                if grammar == Grammar::Ecr {
                    return Err(format!(
                        "{} is Berth's (set through /api/v1/replication)",
                        at("imageTagFilters")
                    ));
                }
                if filters.is_empty() || filters.len() > MAX_TAG_FILTERS {
                    return Err(format!(
                        "{} must hold 1 to {MAX_TAG_FILTERS} filters, not {}",
                        at("imageTagFilters"),
                        filters.len()
                    ));
                }
                for (f, filter) in filters.iter().enumerate() {
                    let at = |field: &str| at(&format!("imageTagFilters[{f}].{field}"));
                    if filter.filter_type != WILDCARD {
                        return Err(format!(
                            "{} must be WILDCARD, not {:?}",
                            at("filterType"),
                            clip(&filter.filter_type)
                        ));
                    }
                    if !is_tag_pattern(&filter.filter) {
                        return Err(format!(
                            "{} must be 1 to 128 of A-Z a-z 0-9 _ . - and * (any run), not {:?}",
                            at("filter"),
                            clip(&filter.filter)
                        ));
                    }
                }
            }
        }
        if distinct.len() > MAX_DESTINATIONS {
            return Err(format!(
                "replicationConfiguration names {} distinct destinations; at most \
                 {MAX_DESTINATIONS} are allowed",
                distinct.len()
            ));
        }
        Ok(())
    }

    /// Where a push to `repository` goes (of `tag`, or by digest when `None`, a referrer when
    /// `referrer`): every destination of every rule that selects it, once each, with whether
    /// deletes follow (any selecting rule asking for it).
    pub fn destinations_for(
        &self,
        repository: &str,
        tag: Option<&str>,
        referrer: bool,
    ) -> Vec<(ReplicationDestination, bool)> {
        let mut out: Vec<(ReplicationDestination, bool)> = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.selects(repository) && r.selects_tag(tag, referrer))
        {
            let deletes = rule.delete_replication.unwrap_or(false);
            for destination in &rule.destinations {
                match out.iter_mut().find(|(d, _)| d == destination) {
                    Some((_, d)) => *d |= deletes,
                    None => out.push((destination.clone(), deletes)),
                }
            }
        }
        out
    }
}

impl ReplicationRule {
    /// Whether the rule's tag filters select a push of `tag` (`None`: by digest).
    pub fn selects_tag(&self, tag: Option<&str>, referrer: bool) -> bool {
        let Some(filters) = &self.image_tag_filters else {
            return true;
        };
        match tag {
            Some(tag) => filters
                .iter()
                .any(|f| super::mutability::wildcard_match(&f.filter, tag)),
            None => referrer,
        }
    }

    /// Whether the rule applies to `repository`.
    pub fn selects(&self, repository: &str) -> bool {
        let Some(filters) = &self.repository_filters else {
            return true;
        };
        let excluded = filters
            .iter()
            .any(|f| f.filter_type == PREFIX_NOT_MATCH && repository.starts_with(&f.filter));
        let mut including = filters
            .iter()
            .filter(|f| f.filter_type != PREFIX_NOT_MATCH)
            .peekable();
        let included = including.peek().is_none()
            || including.any(|f| match f.filter_type.as_str() {
                LITERAL_MATCH => repository == f.filter,
                _ => repository.starts_with(&f.filter),
            });
        included && !excluded
    }
}

fn clip(value: &str) -> String {
    value.chars().take(64).collect()
}

fn is_registry_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(region: &str) -> bool {
    (2..=25).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A tag with `*` wildcards.
fn is_tag_pattern(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-*".contains(&b))
}

/// ECR's `RepositoryFilterValue`: 2 to 256 characters, a repository name or a prefix of one.
fn is_filter_value(value: &str) -> bool {
    (2..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        && !value.starts_with(['.', '_', '-', '/'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const THIS: (&str, &str) = ("000000000000", "us-east-1");

    fn destination(id: &str, region: &str) -> ReplicationDestination {
        ReplicationDestination::registry(id, region)
    }

    fn filter(value: &str, kind: &str) -> RepositoryFilter {
        RepositoryFilter {
            filter: value.into(),
            filter_type: kind.into(),
        }
    }

    fn rule(filters: Option<Vec<RepositoryFilter>>) -> ReplicationRule {
        ReplicationRule {
            destinations: vec![destination("111111111111", "eu-west-1")],
            repository_filters: filters,
            delete_replication: None,
            image_tag_filters: None,
        }
    }

    fn config(rules: Vec<ReplicationRule>) -> ReplicationConfiguration {
        ReplicationConfiguration { rules }
    }

    fn check(c: &ReplicationConfiguration, grammar: Grammar) -> Result<(), String> {
        c.validate(grammar, THIS, |d| d.registry_id != "999999999999")
    }

    #[test]
    fn ecr_shapes_parse_and_print_as_ecr_writes_them() {
        let text = r#"{"rules":[{"destinations":[{"region":"eu-west-1","registryId":"111111111111"}],
            "repositoryFilters":[{"filter":"prod","filterType":"PREFIX_MATCH"}]}]}"#;
        let c: ReplicationConfiguration = serde_json::from_str(text).unwrap();
        assert_eq!(c.rules[0].destinations[0].registry_id, "111111111111");
        assert!(check(&c, Grammar::Ecr).is_ok());
        let back: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_field() {
        let many = config((0..11).map(|_| rule(None)).collect());
        let cases = [
            (many, "at most 10 are allowed"),
            (
                config(vec![ReplicationRule {
                    destinations: vec![],
                    ..rule(None)
                }]),
                "rules[0].destinations",
            ),
            (
                config(vec![ReplicationRule {
                    destinations: vec![destination("12", "eu-west-1")],
                    ..rule(None)
                }]),
                "destinations[0].registryId",
            ),
            (
                config(vec![ReplicationRule {
                    destinations: vec![destination("111111111111", "EU")],
                    ..rule(None)
                }]),
                "destinations[0].region",
            ),
            (
                config(vec![ReplicationRule {
                    destinations: vec![destination(THIS.0, THIS.1)],
                    ..rule(None)
                }]),
                "itself",
            ),
            (
                config(vec![ReplicationRule {
                    destinations: vec![destination("999999999999", "eu-west-1")],
                    ..rule(None)
                }]),
                "not a registry this one trusts",
            ),
            (config(vec![rule(Some(vec![]))]), "repositoryFilters"),
            (
                config(vec![rule(Some(vec![filter("p", PREFIX_MATCH)]))]),
                "repositoryFilters[0].filter",
            ),
            (
                config(vec![rule(Some(vec![filter("Prod", PREFIX_MATCH)]))]),
                "repositoryFilters[0].filter",
            ),
            (
                config(vec![rule(Some(vec![filter("prod", "REGEX")]))]),
                "repositoryFilters[0].filterType",
            ),
        ];
        for (c, expected) in cases {
            let error = check(&c, Grammar::Berth).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        // ECR's door keeps ECR's grammar: Berth's filter types are refused there, and say where
        // they are accepted.
        let extended = config(vec![rule(Some(vec![filter("prod", PREFIX_NOT_MATCH)]))]);
        assert!(check(&extended, Grammar::Berth).is_ok());
        let error = check(&extended, Grammar::Ecr).unwrap_err();
        assert!(error.contains("/api/v1/replication"), "{error}");
        // More than 25 distinct destinations in all.
        let wide = config(
            (0..2)
                .map(|r| ReplicationRule {
                    destinations: (0..13)
                        .map(|d| destination(&format!("11111111{r}{d:03}"), "eu-west-1"))
                        .collect(),
                    ..rule(None)
                })
                .collect(),
        );
        let error = check(&wide, Grammar::Ecr).unwrap_err();
        assert!(error.contains("at most 25"), "{error}");
    }

    #[test]
    fn filters_select_exactly_the_repositories_they_name() {
        let selects = |filters: Vec<RepositoryFilter>, repository: &str| {
            rule(Some(filters)).selects(repository)
        };
        assert!(rule(None).selects("anything/at-all"));
        assert!(selects(vec![filter("prod", PREFIX_MATCH)], "prod/app"));
        assert!(selects(vec![filter("prod", PREFIX_MATCH)], "production"));
        assert!(!selects(vec![filter("prod", PREFIX_MATCH)], "dev/prod"));
        assert!(selects(vec![filter("prod/app", LITERAL_MATCH)], "prod/app"));
        assert!(!selects(
            vec![filter("prod/app", LITERAL_MATCH)],
            "prod/app2"
        ));
        // Exclusions alone: everything but the prefix.
        assert!(selects(vec![filter("tmp/", PREFIX_NOT_MATCH)], "prod/app"));
        assert!(!selects(vec![filter("tmp/", PREFIX_NOT_MATCH)], "tmp/x"));
        // Both: included and not excluded.
        let both = || {
            vec![
                filter("prod/", PREFIX_MATCH),
                filter("prod/scratch", PREFIX_NOT_MATCH),
            ]
        };
        assert!(selects(both(), "prod/app"));
        assert!(!selects(both(), "prod/scratch/1"));
        assert!(!selects(both(), "dev/app"));
    }

    #[test]
    fn tag_filters_select_pushed_tags_and_referrers() {
        let tagged = ReplicationRule {
            image_tag_filters: Some(vec![TagFilter {
                filter: "v*".into(),
                filter_type: WILDCARD.into(),
            }]),
            ..rule(None)
        };
        assert!(tagged.selects_tag(Some("v1.2"), false));
        assert!(!tagged.selects_tag(Some("latest"), false));
        assert!(!tagged.selects_tag(None, false), "a push by digest");
        assert!(
            tagged.selects_tag(None, true),
            "a referrer follows its subject"
        );
        assert!(rule(None).selects_tag(None, false));
        let c = config(vec![tagged.clone()]);
        assert!(check(&c, Grammar::Berth).is_ok());
        assert!(check(&c, Grammar::Ecr)
            .unwrap_err()
            .contains("imageTagFilters"));
        let bad = config(vec![ReplicationRule {
            image_tag_filters: Some(vec![TagFilter {
                filter: "v/1".into(),
                filter_type: WILDCARD.into(),
            }]),
            ..rule(None)
        }]);
        assert!(check(&bad, Grammar::Berth)
            .unwrap_err()
            .contains("imageTagFilters[0].filter"));
    }

    #[test]
    fn targets_are_berths_and_must_be_configured() {
        let with = |destination: ReplicationDestination| {
            config(vec![ReplicationRule {
                destinations: vec![destination],
                ..rule(None)
            }])
        };
        let known = |d: &ReplicationDestination| d.target.as_deref() != Some("nowhere");
        let dist = with(ReplicationDestination::target("dist"));
        assert!(dist.validate(Grammar::Berth, THIS, known).is_ok());
        let error = dist.validate(Grammar::Ecr, THIS, known).unwrap_err();
        assert!(error.contains("destinations[0].target"), "{error}");
        let error = with(ReplicationDestination::target("nowhere"))
            .validate(Grammar::Berth, THIS, known)
            .unwrap_err();
        assert!(error.contains("not a configured target"), "{error}");
        let both = with(ReplicationDestination {
            target: Some("dist".into()),
            ..destination("111111111111", "eu-west-1")
        });
        let error = both.validate(Grammar::Berth, THIS, known).unwrap_err();
        assert!(error.contains("not both"), "{error}");
        assert_eq!(
            serde_json::to_value(ReplicationDestination::target("dist")).unwrap(),
            serde_json::json!({"target": "dist"})
        );
    }

    #[test]
    fn destinations_are_listed_once_with_delete_following_if_any_rule_asks() {
        let b = destination("111111111111", "eu-west-1");
        let c = destination("222222222222", "ap-south-1");
        let config = config(vec![
            ReplicationRule {
                destinations: vec![b.clone()],
                ..rule(Some(vec![filter("prod", PREFIX_MATCH)]))
            },
            ReplicationRule {
                destinations: vec![b.clone(), c.clone()],
                delete_replication: Some(true),
                ..rule(None)
            },
        ]);
        assert_eq!(
            config.destinations_for("prod/app", Some("v1"), false),
            vec![(b.clone(), true), (c.clone(), true)]
        );
        let only_first = ReplicationConfiguration {
            rules: vec![config.rules[0].clone()],
        };
        assert_eq!(
            only_first.destinations_for("prod/app", None, false),
            vec![(b, false)]
        );
        assert!(only_first
            .destinations_for("dev/app", Some("v1"), false)
            .is_empty());
    }
}
