//! Behaviour tests of the lifecycle engine: a table of evaluation cases with a fixed clock
//! (expected results from ECR's documented examples, cited per case), the pitfalls, and
//! validation messages.

use chrono::{DateTime, Duration, Utc};

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-15T12:00:00Z")
        .unwrap()
        .to_utc()
}

/// An image named `name` (digest `sha256:<name>`) pushed `pushed_hours` hours before `now`.
fn img(name: &str, tags: &[&str], pushed_hours: i64, pulled_hours: Option<i64>) -> Image {
    Image {
        digest: format!("sha256:{name}"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: now() - Duration::hours(pushed_hours),
        last_pulled_at: pulled_hours.map(|h| now() - Duration::hours(h)),
    }
}

fn days(n: i64) -> i64 {
    n * 24
}

fn policy(json: &str) -> LifecyclePolicy {
    LifecyclePolicy::parse(json).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn refused(json: &str) -> LifecycleError {
    match LifecyclePolicy::parse(json) {
        Ok(_) => panic!("accepted:\n{json}"),
        Err(e) => e,
    }
}

/// `(image name, rule priority)` pairs, oldest first.
fn run(json: &str, images: &[Image]) -> Vec<(String, u32)> {
    evaluate(&policy(json), images, now())
        .expiring
        .into_iter()
        .map(|e| {
            (
                e.digest.trim_start_matches("sha256:").to_string(),
                e.rule_priority,
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(n, p)| (n.to_string(), *p)).collect()
}

struct Case {
    name: &'static str,
    policy: &'static str,
    images: Vec<Image>,
    expired: Vec<(&'static str, u32)>,
}

fn cases() -> Vec<Case> {
    vec![
        // ECR user guide, "Examples of lifecycle policies" > "Filtering on image age": prod*
        // images older than 14 days expire. (The guide gives no repository; these images are
        // ours.)
        Case {
            name: "guide: filtering on image age",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
                "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
                "countType":"sinceImagePushed","countUnit":"days","countNumber":14},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("old-prod", &["prod-1"], days(15), None),
                img("young-prod", &["prod-2"], days(13), None),
                img("old-dev", &["dev-1"], days(30), None),
                img("old-untagged", &[], days(30), None),
            ],
            expired: vec![("old-prod", 1)],
        },
        // Same section in the older guide: untagged images older than 14 days expire.
        Case {
            name: "guide (older edition): untagged images older than 14 days",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
                "selection":{"tagStatus":"untagged","countType":"sinceImagePushed",
                "countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("u-old", &[], days(20), None),
                img("u-new", &[], days(2), None),
                img("t-old", &["v1"], days(20), None),
            ],
            expired: vec![("u-old", 1)],
        },
        // ECR user guide, "Filtering on image count": keep only one untagged image.
        Case {
            name: "guide: filtering on image count",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Keep only one untagged image, expire all others",
                "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("u1", &[], days(3), None),
                img("u2", &[], days(2), None),
                img("u3", &[], days(1), None),
                img("t1", &["latest"], days(5), None),
            ],
            expired: vec![("u1", 1), ("u2", 1)],
        },
        // ECR user guide, "Filtering on multiple rules", Example A: rule 1 marks A; rule 2 marks
        // A and B, but A was already marked and B matches rule 1, so it is skipped.
        // "Result: Image A is expired."
        Case {
            name: "guide: multiple rules, example A",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
                 "tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"tagged",
                 "tagPatternList":["beta*"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["beta-1", "prod-1"], days(10), None),
                img("B", &["beta-2", "prod-2"], days(9), None),
                img("C", &["beta-3"], days(8), None),
            ],
            expired: vec![("A", 1)],
        },
        // The same example with the guide's older tagPrefixList spelling (["prod"], ["beta"]).
        Case {
            name: "guide: multiple rules, example A with prefixes",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
                 "tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"tagged",
                 "tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["beta-1", "prod-1"], days(10), None),
                img("B", &["beta-2", "prod-2"], days(9), None),
                img("C", &["beta-3"], days(8), None),
            ],
            expired: vec![("A", 1)],
        },
        // ECR user guide, "Filtering on multiple rules", Example B: the repository of Example A
        // with the priorities swapped. Rule 1 (beta) sees all three images and marks A and B;
        // rule 2 (prod) sees nothing left. "Result: Images A and B are expired."
        Case {
            name: "guide: multiple rules, example B",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
                 "tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"tagged",
                 "tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["beta-1", "prod-1"], days(10), None),
                img("B", &["beta-2", "prod-2"], days(9), None),
                img("C", &["beta-3"], days(8), None),
            ],
            expired: vec![("A", 1), ("B", 1)],
        },
        // ECR user guide, "Filtering on multiple tags in a single rule", Example A: the rule sees
        // only images carrying both an alpha and a beta tag (C and F) and expires those older
        // than five days. "Result: Image C is expired."
        Case {
            name: "guide: multiple tags in a single rule, example A",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{
                "tagStatus":"tagged","tagPrefixList":["alpha","beta"],
                "countType":"sinceImagePushed","countNumber":5,"countUnit":"days"},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["alpha-1"], days(12), None),
                img("B", &["beta-1"], days(11), None),
                img("C", &["alpha-2", "beta-2"], days(10), None),
                img("D", &["alpha-3"], days(4), None),
                img("E", &["beta-3"], days(3), None),
                img("F", &["alpha-4", "beta-4"], days(2), None),
            ],
            expired: vec![("C", 1)],
        },
        // The same with tagPatternList (the guide's recommended spelling).
        Case {
            name: "guide: multiple tags in a single rule, example A with patterns",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{
                "tagStatus":"tagged","tagPatternList":["alpha*","beta*"],
                "countType":"sinceImagePushed","countNumber":5,"countUnit":"days"},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["alpha-1"], days(12), None),
                img("B", &["beta-1"], days(11), None),
                img("C", &["alpha-2", "beta-2"], days(10), None),
                img("D", &["alpha-3"], days(4), None),
                img("E", &["beta-3"], days(3), None),
                img("F", &["alpha-4", "beta-4"], days(2), None),
            ],
            expired: vec![("C", 1)],
        },
        // Same section, Example B: tags are not exclusive; every image carries alpha and beta
        // tags, the newest is kept. "Result: Images A and B are expired."
        Case {
            name: "guide: multiple tags in a single rule, example B",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{
                "tagStatus":"tagged","tagPrefixList":["alpha","beta"],
                "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["alpha-1", "beta-1", "gamma-1"], days(10), None),
                img("B", &["alpha-2", "beta-2"], days(9), None),
                img("C", &["alpha-3", "beta-3", "gamma-2"], days(8), None),
            ],
            expired: vec![("A", 1), ("B", 1)],
        },
        // ECR user guide, "Filtering on all images", Example A: tagStatus any, keep one.
        // "Result: Images A, B, and C are expired."
        Case {
            name: "guide: all images, example A",
            policy: r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{
                "tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["alpha-1"], days(4), None),
                img("B", &["beta-1"], days(3), None),
                img("C", &[], days(2), None),
                img("D", &["alpha-2"], days(1), None),
            ],
            expired: vec![("A", 1), ("B", 1), ("C", 1)],
        },
        // Same section, Example B: alpha keep 1, untagged older than 1 day, any keep 1. Rule 1
        // marks A; rule 2 marks B (E is not older than a day); rule 3 keeps the newest image (E)
        // and may only act on D, the one image no higher rule identified. "Result: Images A, B,
        // and D are expired." (The guide pushes D and E both "1 day ago" and treats E as the
        // newer; E is made a little newer here so the order is defined.)
        Case {
            name: "guide: all images, example B",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
                 "tagPrefixList":["alpha"],"countType":"imageCountMoreThan","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"untagged",
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":3,"description":"Rule 3","selection":{"tagStatus":"any",
                 "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("A", &["alpha-1", "beta-1"], days(4), None),
                img("B", &[], days(3), None),
                img("C", &["alpha-2"], days(2), None),
                img("D", &["git hash"], days(1), None),
                img("E", &[], days(1) - 1, None),
            ],
            expired: vec![("A", 1), ("B", 2), ("D", 3)],
        },
        // policies/lifecycle/releases-branches-untagged.json: v* beyond the newest 30 expire
        // and the kept ones are shielded from the feature- rule; feature- builds expire after 14
        // days; untagged after 3.
        Case {
            name: "releases, branches, untagged",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["v*"],
                 "countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["feature-"],
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":14},
                 "action":{"type":"expire"}},
                {"rulePriority":3,"selection":{"tagStatus":"untagged",
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":3},
                 "action":{"type":"expire"}}]}"#,
            images: {
                let mut v: Vec<Image> = (0..32)
                    .map(|i| {
                        let name: &'static str = Box::leak(format!("v{i:02}").into_boxed_str());
                        img(name, &[name], days(40 - i), None)
                    })
                    .collect();
                // A release that is also a feature build: shielded by rule 1.
                v.push(img("vf", &["v99", "feature-x"], days(60), None));
                v.push(img("f-old", &["feature-a"], days(20), None));
                v.push(img("f-new", &["feature-b"], days(2), None));
                v.push(img("u-old", &[], days(4), None));
                v.push(img("u-new", &[], days(1), None));
                v
            },
            // 33 v* images: the newest 30 stay; vf (60 days) and v00, v01 (40, 39 days) go.
            expired: vec![
                ("vf", 1),
                ("v00", 1),
                ("v01", 1),
                ("f-old", 2),
                ("u-old", 3),
            ],
        },
        // Pitfall: several patterns in one list are AND; two rules give OR.
        Case {
            name: "pitfall: patterns in one list must all match",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged",
                "tagPatternList":["prod*","*-rc"],"countType":"sinceImagePushed",
                "countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("both", &["prod-1", "2.0-rc"], days(5), None),
                img("prod-only", &["prod-2"], days(5), None),
                img("rc-only", &["3.0-rc"], days(5), None),
                img("one-tag-both", &["prod-4-rc"], days(5), None),
            ],
            expired: vec![("both", 1), ("one-tag-both", 1)],
        },
        Case {
            name: "pitfall: prefixes in one list must all match",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged",
                "tagPrefixList":["prod","release"],"countType":"sinceImagePushed",
                "countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("both", &["release-1", "prod-1"], days(5), None),
                img("prod-only", &["prod-2"], days(5), None),
            ],
            expired: vec![("both", 1)],
        },
        Case {
            name: "pitfall: separate rules are OR",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["*-rc"],
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
                 "action":{"type":"expire"}}]}"#,
            images: vec![
                img("both", &["prod-1", "2.0-rc"], days(5), None),
                img("prod-only", &["prod-2"], days(5), None),
                img("rc-only", &["3.0-rc"], days(5), None),
                img("neither", &["dev"], days(5), None),
            ],
            expired: vec![("both", 1), ("prod-only", 1), ("rc-only", 2)],
        },
        // Pitfall: a multi-tagged image is shielded by any higher rule one of its tags matches,
        // even though a lower rule's filter also matches it.
        Case {
            name: "pitfall: multi-tagged image kept by the keep idiom",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"keep every prod image",
                 "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
                 "countType":"imageCountMoreThan","countNumber":9999},"action":{"type":"expire"}},
                {"rulePriority":2,"description":"everything else after a week",
                 "selection":{"tagStatus":"any","countType":"sinceImagePushed",
                 "countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("sha-and-prod", &["sha-abc", "prod"], days(30), None),
                img("sha-only", &["sha-def"], days(30), None),
                img("untagged", &[], days(30), None),
                img("young", &["sha-123"], days(1), None),
            ],
            expired: vec![("sha-only", 2), ("untagged", 2)],
        },
        // Pitfall: an untagged rule never touches tagged images, and a tagged rule never
        // untagged ones.
        Case {
            name: "pitfall: untagged and tagged rules do not overlap",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"untagged",
                 "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["*"],
                 "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("u1", &[], days(4), None),
                img("u2", &[], days(3), None),
                img("t1", &["a"], days(2), None),
                img("t2", &["b"], days(1), None),
            ],
            expired: vec![("u1", 1), ("t1", 2)],
        },
        // Pitfall: the "any" rule last catches only what no other rule identified.
        Case {
            name: "pitfall: any rule last",
            policy: r#"{"rules":[
                {"rulePriority":10,"selection":{"tagStatus":"tagged","tagPatternList":["v*"],
                 "countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},
                {"rulePriority":20,"selection":{"tagStatus":"any",
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":10},
                 "action":{"type":"expire"}}]}"#,
            images: vec![
                img("v1", &["v1"], days(50), None),
                img("v2", &["v2"], days(40), None),
                img("v3", &["v3"], days(30), None),
                img("dev", &["dev"], days(20), None),
                img("u", &[], days(20), None),
                img("fresh", &[], days(1), None),
            ],
            expired: vec![("v1", 10), ("dev", 20), ("u", 20)],
        },
        // Counting decision: the lower imageCountMoreThan rule counts the image shielded by the
        // higher rule (p1 takes one of its two places), so only x1 is kept beside it.
        Case {
            name: "decision: lower count rule counts shielded images",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
                 "countType":"imageCountMoreThan","countNumber":9999},"action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["*"],
                 "countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("p1", &["prod-1"], days(1), None),
                img("x1", &["x1"], days(2), None),
                img("x2", &["x2"], days(3), None),
                img("x3", &["x3"], days(4), None),
                img("p0", &["prod-0"], days(5), None),
            ],
            expired: vec![("x3", 2), ("x2", 2)],
        },
        // Beyond ECR: sinceImagePulled expires directly; never pulled counts from push time.
        Case {
            name: "sinceImagePulled: last pull, else push time",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any",
                "countType":"sinceImagePulled","countUnit":"days","countNumber":30},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("pulled-recently", &["a"], days(100), Some(days(2))),
                img("pulled-long-ago", &["b"], days(100), Some(days(31))),
                img("never-pulled-old", &["c"], days(31), None),
                img("never-pulled-new", &["d"], days(29), None),
            ],
            expired: vec![("pulled-long-ago", 1), ("never-pulled-old", 1)],
        },
        // Age is strict: exactly 14 days old is not "more than 14 days".
        Case {
            name: "age boundary",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any",
                "countType":"sinceImagePushed","countUnit":"days","countNumber":14},
                "action":{"type":"expire"}}]}"#,
            images: vec![
                img("exactly", &[], days(14), None),
                img("older", &[], days(14) + 1, None),
            ],
            expired: vec![("older", 1)],
        },
        // Priorities need not be contiguous, nor listed in order.
        Case {
            name: "priorities applied in order, not listing order",
            policy: r#"{"rules":[
                {"rulePriority":50,"selection":{"tagStatus":"tagged","tagPatternList":["*"],
                 "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
                 "action":{"type":"expire"}},
                {"rulePriority":5,"selection":{"tagStatus":"tagged","tagPatternList":["keep*"],
                 "countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}"#,
            images: vec![
                img("kept", &["keep-me"], days(9), None),
                img("gone", &["other"], days(9), None),
            ],
            expired: vec![("gone", 50)],
        },
    ]
}

#[test]
fn evaluation_table() {
    for case in cases() {
        assert_eq!(
            run(case.policy, &case.images),
            expect(&case.expired),
            "case: {}",
            case.name
        );
    }
}

#[test]
fn evaluation_ignores_input_order() {
    for case in cases() {
        let mut images = case.images.clone();
        images.reverse();
        assert_eq!(
            run(case.policy, &images),
            expect(&case.expired),
            "case (reversed): {}",
            case.name
        );
    }
}

#[test]
fn summary_counts_per_rule() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "guide: all images, example B")
        .unwrap();
    let ev = evaluate(&policy(case.policy), &case.images, now());
    assert_eq!(ev.summary.expiring, 3);
    assert_eq!(ev.summary.evaluated, 5);
    assert_eq!(
        ev.summary
            .per_rule
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 1)]
    );
    assert_eq!(ev.rule_for("sha256:D"), Some(3));
    assert_eq!(ev.rule_for("sha256:E"), None);
    // Expiries carry the image's tags for the audit log and preview.
    assert_eq!(ev.expiring[0].tags, vec!["alpha-1", "beta-1"]);
}

#[test]
fn empty_repository() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any",
        "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    assert_eq!(evaluate(&p, &[], now()), Evaluation::default());
}

#[test]
fn accepts_standard_storage_class_and_description() {
    let p = policy(
        r#"{"rules":[{"rulePriority":3,"description":"d","selection":{"tagStatus":"tagged",
        "tagPatternList":["*test*1*2*3","test*1*2*3*"],"storageClass":"standard",
        "countType":"sinceImagePulled","countUnit":"days","countNumber":90},
        "action":{"type":"expire"}}]}"#,
    );
    let rule = &p.rules()[0];
    assert_eq!(rule.priority, 3);
    assert_eq!(rule.description.as_deref(), Some("d"));
    assert_eq!(rule.count, CountType::SinceImagePulled(90));
}

// ---------------------------------------------------------------- validation

/// `(policy, rule priority or None for a document error, field, part of the message)`.
fn validation_cases() -> Vec<(&'static str, Option<u32>, &'static str, &'static str)> {
    vec![
        (r#"{}"#, None, "rules", "required"),
        (r#"{"rules":[]}"#, None, "rules", "at least one"),
        (r#"{"rules":{}}"#, None, "rules", "list"),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}],"version":1}"#,
            None,
            "version",
            "not a lifecycle policy field",
        ),
        // rulePriority: required, positive integer, unique.
        (
            r#"{"rules":[{"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            None,
            "rulePriority",
            "required",
        ),
        (
            r#"{"rules":[{"rulePriority":0,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            None,
            "rulePriority",
            "integer from 1",
        ),
        (
            r#"{"rules":[{"rulePriority":"1","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            None,
            "rulePriority",
            "integer from 1",
        ),
        (
            r#"{"rules":[
              {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(2),
            "rulePriority",
            "unique",
        ),
        // tagStatus.
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagStatus",
            "required",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"TAGGED","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagStatus",
            "\"tagged\", \"untagged\" or \"any\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagStatus",
            "requires tagPrefixList or tagPatternList",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPrefixList",
            "omitted when tagStatus is \"untagged\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPatternList",
            "omitted when tagStatus is \"any\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["a*"],"tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPatternList",
            "cannot be combined",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":[],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPatternList",
            "not be empty",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["a",""],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPrefixList[1]",
            "not be empty",
        ),
        // The guide's own invalid example: six wildcards.
        (
            r#"{"rules":[{"rulePriority":7,"selection":{"tagStatus":"tagged","tagPatternList":["ok*","test*1*2*3*4*5*6"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(7),
            "selection.tagPatternList[1]",
            "6 wildcards",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternsList":["a*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.tagPatternsList",
            "not a lifecycle policy field",
        ),
        // countType, countUnit, countNumber.
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countType",
            "required",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountLessThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countType",
            "\"imageCountMoreThan\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countUnit",
            "omitted when countType is \"imageCountMoreThan\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countUnit",
            "required",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"hours","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countUnit",
            "\"days\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countNumber",
            "integer from 1",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1.5},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countNumber",
            "integer from 1",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan"},"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection.countNumber",
            "required",
        ),
        // Archive storage class: refused naming the field.
        (
            r#"{"rules":[{"rulePriority":4,"selection":{"tagStatus":"tagged","tagPatternList":["*"],"countType":"sinceImagePulled","countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
            Some(4),
            "action.type",
            "\"transition\" is not supported",
        ),
        (
            r#"{"rules":[{"rulePriority":5,"selection":{"tagStatus":"any","storageClass":"archive","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(5),
            "selection.storageClass",
            "no archive storage class",
        ),
        (
            r#"{"rules":[{"rulePriority":5,"selection":{"tagStatus":"any","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(5),
            "selection.countType",
            "\"sinceImageTransitioned\" is not supported",
        ),
        (
            r#"{"rules":[{"rulePriority":5,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire","targetStorageClass":"archive"}}]}"#,
            Some(5),
            "action.targetStorageClass",
            "not supported",
        ),
        // action.
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}}]}"#,
            Some(1),
            "action",
            "required",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}]}"#,
            Some(1),
            "action.type",
            "must be \"expire\"",
        ),
        (
            r#"{"rules":[{"rulePriority":1,"action":{"type":"expire"}}]}"#,
            Some(1),
            "selection",
            "required",
        ),
        // Rule-set constraints: one untagged rule; "any" must come last.
        (
            r#"{"rules":[
              {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(2),
            "selection.tagStatus",
            "only one rule may select untagged images",
        ),
        (
            r#"{"rules":[
              {"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            Some(1),
            "rulePriority",
            "must have the highest rulePriority",
        ),
    ]
}

#[test]
fn validation_errors_name_rule_and_field() {
    for (json, priority, field, message) in validation_cases() {
        let err = refused(json);
        assert_eq!(err.field(), Some(field), "{json}\n{err}");
        assert_eq!(
            err.rule().and_then(|r| r.priority),
            priority,
            "{json}\n{err}"
        );
        let text = err.to_string();
        assert!(text.contains(message), "{text:?} lacks {message:?}");
        assert!(text.contains(field), "{text:?} lacks the field {field:?}");
        if let Some(p) = priority {
            assert!(
                text.contains(&format!("rulePriority {p}")),
                "{text:?} lacks the rule"
            );
        }
    }
}

#[test]
fn rule_without_priority_is_named_by_index() {
    let err = refused(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":-3}]}"#,
    );
    assert_eq!(err.to_string().split(':').next(), Some("rules[1]"));
}

#[test]
fn invalid_json_and_size_limit() {
    assert!(matches!(refused("{"), LifecycleError::InvalidJson(_)));
    assert!(matches!(refused("[]"), LifecycleError::Document { .. }));
    let big = format!(
        r#"{{"rules":[{{"rulePriority":1,"description":"{}","selection":{{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}}]}}"#,
        "x".repeat(MAX_LIFECYCLE_POLICY_CHARS)
    );
    assert!(matches!(refused(&big), LifecycleError::TooLarge { .. }));
}

#[test]
fn archive_example_is_refused_for_its_archive_rule() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/lifecycle/releases-branches-untagged-with-archive.json"
    ))
    .unwrap();
    let err = refused(&text);
    assert_eq!(err.rule().and_then(|r| r.priority), Some(4));
    assert_eq!(err.field(), Some("action.type"));
}

/// Every example policy under `policies/lifecycle/` parses, except the files named
/// `*-with-archive.json`, which must be refused for their archive rules.
#[test]
fn example_policies_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/lifecycle");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = LifecyclePolicy::parse(&text);
        if name.ends_with("-with-archive.json") {
            let err = result.expect_err(&name);
            assert!(err.to_string().contains("archive"), "{name}: {err}");
        } else if let Err(e) = result {
            panic!("{name}: {e}");
        }
    }
    assert!(seen >= 10, "only {seen} example policies");
}
