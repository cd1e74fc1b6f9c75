//! Evaluation of a lifecycle policy over one repository's images (see the module doc for the
//! semantics). The same function serves previews and real runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::document::{CountType, LifecyclePolicy, Rule, TagSelection, TagStatus};

/// One image of the repository, as evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: DateTime<Utc>,
    /// `None`: never pulled (counts from `pushed_at`).
    pub last_pulled_at: Option<DateTime<Utc>>,
}

/// An image the policy expires, and the rule that does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: DateTime<Utc>,
    pub last_pulled_at: Option<DateTime<Utc>>,
    pub rule_priority: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `expiringImageTotalCount`.
    pub expiring: usize,
    /// Images evaluated.
    pub evaluated: usize,
    /// Expiring images per rule priority.
    pub per_rule: BTreeMap<u32, usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Oldest push first (ties by digest).
    pub expiring: Vec<Expiry>,
    pub summary: Summary,
}

impl Evaluation {
    /// The rule that expires `digest`, if any.
    pub fn rule_for(&self, digest: &str) -> Option<u32> {
        self.expiring
            .iter()
            .find(|e| e.digest == digest)
            .map(|e| e.rule_priority)
    }
}

/// `*` matches any run of characters (including none); everything else literally.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
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
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `rule`'s tag requirements select `image` (this is also what shields it from lower
/// rules).
fn selects(rule: &Rule, image: &Image) -> bool {
    match rule.tag_status {
        TagStatus::Any => true,
        TagStatus::Untagged => image.tags.is_empty(),
        TagStatus::Tagged => match &rule.tags {
            TagSelection::None => !image.tags.is_empty(),
            TagSelection::Prefixes(prefixes) => prefixes
                .iter()
                .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str()))),
            TagSelection::Patterns(patterns) => patterns
                .iter()
                .all(|p| image.tags.iter().any(|t| wildcard_match(p, t))),
        },
    }
}

/// The images `policy` expires at `now`, with the rule that expires each, and a summary.
pub fn evaluate(policy: &LifecyclePolicy, images: &[Image], now: DateTime<Utc>) -> Evaluation {
    // Newest first; ties broken by digest so results are deterministic.
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by(|&a, &b| {
        images[b]
            .pushed_at
            .cmp(&images[a].pushed_at)
            .then_with(|| images[a].digest.cmp(&images[b].digest))
    });

    let mut expired_by: Vec<Option<u32>> = vec![None; images.len()];
    let mut shielded = vec![false; images.len()];
    for rule in policy.rules() {
        let selected: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| selects(rule, &images[i]))
            .collect();
        let marked: Vec<usize> = match rule.count {
            // Counts every selected image, shielded or already expired ones included.
            CountType::ImageCountMoreThan(n) => selected.iter().copied().skip(n as usize).collect(),
            CountType::SinceImagePushed(days) => {
                let cutoff = now - Duration::days(days.into());
                selected
                    .iter()
                    .copied()
                    .filter(|&i| images[i].pushed_at < cutoff)
                    .collect()
            }
            CountType::SinceImagePulled(days) => {
                let cutoff = now - Duration::days(days.into());
                selected
                    .iter()
                    .copied()
                    .filter(|&i| {
                        let image = &images[i];
                        image
                            .last_pulled_at
                            .unwrap_or(image.pushed_at)
                            .max(image.pushed_at)
                            < cutoff
                    })
                    .collect()
            }
        };
        for i in marked {
            if expired_by[i].is_none() && !shielded[i] {
                expired_by[i] = Some(rule.priority);
            }
        }
        for i in selected {
            shielded[i] = true;
        }
    }

    let mut summary = Summary {
        evaluated: images.len(),
        ..Summary::default()
    };
    let mut expiring: Vec<Expiry> = order
        .iter()
        .rev()
        .filter_map(|&i| {
            let priority = expired_by[i]?;
            *summary.per_rule.entry(priority).or_default() += 1;
            let image = &images[i];
            Some(Expiry {
                digest: image.digest.clone(),
                tags: image.tags.clone(),
                pushed_at: image.pushed_at,
                last_pulled_at: image.last_pulled_at,
                rule_priority: priority,
            })
        })
        .collect();
    // `order` reversed is oldest first, but equal push times then run digest-descending.
    expiring.sort_by(|a, b| {
        a.pushed_at
            .cmp(&b.pushed_at)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    summary.expiring = expiring.len();
    Evaluation { expiring, summary }
}

#[cfg(test)]
mod glob_tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("prod*", "prod"));
        assert!(wildcard_match("prod*", "prod-1"));
        assert!(!wildcard_match("prod*", "xprod"));
        assert!(wildcard_match("*prod*", "xprody"));
        assert!(wildcard_match("*test*1*2*3", "my-test-a1b2c3"));
        assert!(!wildcard_match("*test*1*2*3", "my-test-a1b2c3d"));
        assert!(wildcard_match("v*.*", "v1.2"));
        assert!(!wildcard_match("v*.*", "v12"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("a**b", "ab"));
    }
}
