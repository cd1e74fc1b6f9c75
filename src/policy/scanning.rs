//! Scanning settings (pure, no I/O): ECR's registry scanning configuration, which says which
//! repositories scan on push, and Berth's pull gate, which says whether a scanned image may be
//! pulled.
//!
//! Choices where ECR leaves room:
//! * Berth has one scanner (Trivy). `ENHANCED` is accepted so that ECR configurations apply
//!   unchanged, and scans exactly like `BASIC`; `CONTINUOUS_SCAN` (allowed only with
//!   `ENHANCED`, as in ECR) scans on push like `SCAN_ON_PUSH`.
//! * A repository scans on push when its own flag is on *or* a registry rule matches it (the
//!   issue's union; ECR lets the registry setting override the repository's).

use serde::{Deserialize, Serialize};

use super::mutability::wildcard_match;

/// ECR's finding severities, most severe first.
pub const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

/// Higher is more severe; `None` for a name that is not a severity.
pub fn severity_rank(severity: &str) -> Option<usize> {
    SEVERITIES
        .iter()
        .position(|s| *s == severity)
        .map(|i| SEVERITIES.len() - i)
}

/// ECR's `registryScanningConfiguration`, as PutRegistryScanningConfiguration takes it and
/// GetRegistryScanningConfiguration returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryScanningConfiguration {
    #[serde(default = "basic")]
    pub scan_type: String,
    #[serde(default)]
    pub rules: Vec<ScanningRule>,
}

fn basic() -> String {
    "BASIC".into()
}

impl Default for RegistryScanningConfiguration {
    fn default() -> Self {
        RegistryScanningConfiguration {
            scan_type: basic(),
            rules: Vec::new(),
        }
    }
}

/// One rule: a scan frequency for the repositories its filters match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanningRule {
    pub scan_frequency: String,
    pub repository_filters: Vec<RepositoryFilter>,
}

/// A repository name wildcard (`*` = any run of characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFilter {
    pub filter: String,
    #[serde(default = "wildcard")]
    pub filter_type: String,
}

fn wildcard() -> String {
    "WILDCARD".into()
}

/// ECR's pattern for a repository filter: lowercase name characters and `*`.
fn valid_filter(f: &str) -> bool {
    (1..=256).contains(&f.len())
        && f.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'*' | b'.' | b'_' | b'-' | b'/')
        })
        && !f.starts_with(['.', '_', '-', '/'])
        && !f.ends_with(['.', '_', '-', '/'])
}

impl RegistryScanningConfiguration {
    /// ECR's constraints; the message names the field as ECR does
    /// (`rules.1.member.repositoryFilters.1.member.filter`, 1-based).
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.scan_type.as_str(), "BASIC" | "ENHANCED") {
            return Err(format!(
                "Invalid parameter at 'scanType' failed to satisfy constraint: 'Member must satisfy enum value set: [BASIC, ENHANCED]', got {:?}",
                self.scan_type
            ));
        }
        if self.rules.len() > 2 {
            return Err(format!(
                "Invalid parameter at 'rules' failed to satisfy constraint: 'Member must have length less than or equal to 2', got {}",
                self.rules.len()
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules.{}.member", i + 1);
            match rule.scan_frequency.as_str() {
                "SCAN_ON_PUSH" | "MANUAL" => {}
                "CONTINUOUS_SCAN" if self.scan_type == "ENHANCED" => {}
                "CONTINUOUS_SCAN" => {
                    return Err(format!(
                        "Invalid parameter at '{at}.scanFrequency': CONTINUOUS_SCAN needs scanType ENHANCED"
                    ))
                }
                other => {
                    return Err(format!(
                        "Invalid parameter at '{at}.scanFrequency' failed to satisfy constraint: 'Member must satisfy enum value set: [SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL]', got {other:?}"
                    ))
                }
            }
            if !(1..=100).contains(&rule.repository_filters.len()) {
                return Err(format!(
                    "Invalid parameter at '{at}.repositoryFilters' failed to satisfy constraint: 'Member must have length between 1 and 100', got {}",
                    rule.repository_filters.len()
                ));
            }
            for (j, f) in rule.repository_filters.iter().enumerate() {
                let at = format!("{at}.repositoryFilters.{}.member", j + 1);
                if f.filter_type != "WILDCARD" {
                    return Err(format!(
                        "Invalid parameter at '{at}.filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]', got {:?}",
                        f.filter_type
                    ));
                }
                if !valid_filter(&f.filter) {
                    return Err(format!(
                        "Invalid parameter at '{at}.filter' failed to satisfy constraint: 'Member must be 1 to 256 lowercase letters, digits, '.', '_', '-', '/' or '*', not starting or ending with a separator', got {:?}",
                        f.filter
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a rule makes pushes to `repository` scan.
    pub fn scans_on_push(&self, repository: &str) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.scan_frequency.as_str(),
                "SCAN_ON_PUSH" | "CONTINUOUS_SCAN"
            ) && r
                .repository_filters
                .iter()
                .any(|f| wildcard_match(&f.filter, repository))
        })
    }
}

/// Most findings a pull gate's allowlist may hold.
pub const MAX_ALLOWLIST: usize = 1000;

/// A repository's pull gate (beyond ECR, like Harbor's "prevent vulnerable images from
/// running"): image manifests with findings at or above `severity_threshold`, other than those
/// on the allowlist, are refused; so are images without a complete scan unless
/// `allow_unscanned`. Indexes and non-image artifacts pass: a client pulling an index then
/// fetches a platform's image manifest, which the gate checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullGate {
    pub severity_threshold: String,
    /// Finding names (CVE ids, secret rule ids) that never refuse a pull.
    #[serde(default)]
    pub allowlist: Vec<String>,
    #[serde(default)]
    pub allow_unscanned: bool,
}

/// What the gate knows about one image.
pub struct ScanFacts<'a> {
    /// The scan's status and description; `None` if it was never scanned.
    pub status: Option<(&'a str, &'a str)>,
    /// `(severity, name)` of its findings (all of them, or at least those at or above the
    /// threshold).
    pub findings: &'a [(String, String)],
}

impl PullGate {
    pub fn validate(&self) -> Result<(), String> {
        if severity_rank(&self.severity_threshold).is_none() {
            return Err(format!(
                "severityThreshold must be one of {}, got {:?}",
                SEVERITIES.join(", "),
                self.severity_threshold
            ));
        }
        if self.allowlist.len() > MAX_ALLOWLIST {
            return Err(format!(
                "allowlist holds {} entries; at most {MAX_ALLOWLIST} are allowed",
                self.allowlist.len()
            ));
        }
        if let Some((i, _)) = self
            .allowlist
            .iter()
            .enumerate()
            .find(|(_, n)| n.trim().is_empty() || n.len() > 256)
        {
            return Err(format!(
                "allowlist[{i}] must be a finding name (such as CVE-2021-3711) of 1 to 256 characters"
            ));
        }
        Ok(())
    }

    /// The severities at or above the threshold, most severe first.
    pub fn refused_severities(&self) -> Vec<&'static str> {
        let min = severity_rank(&self.severity_threshold).unwrap_or(usize::MAX);
        SEVERITIES
            .iter()
            .copied()
            .filter(|s| severity_rank(s).is_some_and(|r| r >= min))
            .collect()
    }

    /// `Ok` if the image may be pulled; otherwise why not, for a person to act on.
    pub fn check(
        &self,
        repository: &str,
        digest: &str,
        facts: &ScanFacts<'_>,
    ) -> Result<(), String> {
        match facts.status {
            Some(("COMPLETE", _)) => {}
            _ if self.allow_unscanned => return Ok(()),
            Some((status, description)) => {
                return Err(format!(
                    "image {digest} has no complete scan (status {status}: {description}); the pull gate of repository {repository} refuses unscanned images"
                ))
            }
            None => {
                return Err(format!(
                    "image {digest} has not been scanned; the pull gate of repository {repository} refuses unscanned images (start a scan, or set allowUnscanned)"
                ))
            }
        }
        let refused = self.refused_severities();
        let blocking: Vec<&(String, String)> = facts
            .findings
            .iter()
            .filter(|(severity, name)| {
                refused.contains(&severity.as_str()) && !self.allowlist.iter().any(|a| a == name)
            })
            .collect();
        if blocking.is_empty() {
            return Ok(());
        }
        let counts: Vec<String> = refused
            .iter()
            .filter_map(|s| {
                let n = blocking.iter().filter(|(sev, _)| sev == s).count();
                (n > 0).then(|| format!("{n} {s}"))
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let names: Vec<&str> = blocking
            .iter()
            .map(|(_, n)| n.as_str())
            .filter(|n| seen.insert(*n))
            .collect();
        let shown = names.iter().take(5).copied().collect::<Vec<_>>().join(", ");
        let more = if names.len() > 5 { ", ..." } else { "" };
        Err(format!(
            "image {digest} has findings at or above {}: {} ({shown}{more}); the pull gate of repository {repository} refuses it (fix the image, or add accepted findings to the gate's allowlist)",
            self.severity_threshold,
            counts.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> RegistryScanningConfiguration {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn registry_rules_validate_and_match_by_wildcard() {
        let c = config(serde_json::json!({
            "scanType": "BASIC",
            "rules": [
                {"scanFrequency": "SCAN_ON_PUSH",
                 "repositoryFilters": [{"filter": "prod/*", "filterType": "WILDCARD"}, {"filter": "app"}]},
                {"scanFrequency": "MANUAL", "repositoryFilters": [{"filter": "*"}]}
            ]
        }));
        assert_eq!(c.validate(), Ok(()));
        assert!(c.scans_on_push("prod/web"));
        assert!(c.scans_on_push("app"));
        assert!(!c.scans_on_push("dev/web"), "MANUAL does not scan on push");
        assert!(!RegistryScanningConfiguration::default().scans_on_push("x"));

        let bad = |json, field: &str| {
            let e = config(json).validate().unwrap_err();
            assert!(e.contains(field), "{e} should name {field}");
        };
        bad(serde_json::json!({"scanType": "FAST"}), "'scanType'");
        bad(
            serde_json::json!({"scanType": "BASIC", "rules": [
                {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*"}]}]}),
            "rules.1.member.scanFrequency",
        );
        bad(
            serde_json::json!({"rules": [
                {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "ok"}, {"filter": "Bad"}]}]}),
            "rules.1.member.repositoryFilters.2.member.filter",
        );
        bad(
            serde_json::json!({"rules": [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": []}]}),
            "rules.1.member.repositoryFilters'",
        );
        bad(
            serde_json::json!({"rules": [{"scanFrequency": "SCAN_ON_PUSH",
                "repositoryFilters": [{"filter": "a", "filterType": "PREFIX"}]}]}),
            "filterType",
        );
        let enhanced = config(serde_json::json!({"scanType": "ENHANCED", "rules": [
            {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*"}]}]}));
        assert_eq!(enhanced.validate(), Ok(()));
        assert!(enhanced.scans_on_push("anything/at/all"));
    }

    fn findings(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, n)| (s.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn the_gate_refuses_at_or_above_its_threshold_except_allowlisted_findings() {
        let gate = PullGate {
            severity_threshold: "HIGH".into(),
            allowlist: vec!["CVE-2020-0001".into()],
            allow_unscanned: false,
        };
        assert_eq!(gate.validate(), Ok(()));
        let f = findings(&[
            ("CRITICAL", "CVE-2021-3711"),
            ("HIGH", "CVE-2020-0001"),
            ("HIGH", "CVE-2022-2"),
            ("MEDIUM", "CVE-2019-9"),
        ]);
        let complete = Some(("COMPLETE", "done"));
        let facts = ScanFacts {
            status: complete,
            findings: &f,
        };
        let e = gate.check("team/app", "sha256:ab", &facts).unwrap_err();
        assert!(e.contains("1 CRITICAL, 1 HIGH"), "{e}");
        assert!(
            e.contains("CVE-2021-3711") && !e.contains("CVE-2020-0001"),
            "{e}"
        );

        let only_low = findings(&[("MEDIUM", "CVE-2019-9"), ("HIGH", "CVE-2020-0001")]);
        let facts = ScanFacts {
            status: complete,
            findings: &only_low,
        };
        assert_eq!(gate.check("r", "d", &facts), Ok(()));

        let none = ScanFacts {
            status: None,
            findings: &[],
        };
        assert!(gate
            .check("r", "d", &none)
            .unwrap_err()
            .contains("not been scanned"));
        let running = ScanFacts {
            status: Some(("IN_PROGRESS", "queued")),
            findings: &[],
        };
        assert!(gate
            .check("r", "d", &running)
            .unwrap_err()
            .contains("IN_PROGRESS"));
        let lenient = PullGate {
            allow_unscanned: true,
            ..gate.clone()
        };
        assert_eq!(lenient.check("r", "d", &none), Ok(()));
        assert_eq!(lenient.check("r", "d", &running), Ok(()));

        assert!(PullGate {
            severity_threshold: "SEVERE".into(),
            ..gate.clone()
        }
        .validate()
        .is_err());
        assert_eq!(
            PullGate {
                severity_threshold: "LOW".into(),
                ..gate
            }
            .refused_severities(),
            vec!["CRITICAL", "HIGH", "MEDIUM", "LOW"]
        );
    }
}
