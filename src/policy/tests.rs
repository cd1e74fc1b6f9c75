//! Behaviour tests of the policy engine: parsing, validation messages, evaluation, scopes, and
//! the example documents under `policies/access/`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::*;

const REG: &str = "000000000000";
const REGION: &str = "us-east-1";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-15T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn user(name: &str) -> Requester {
    Requester::Authenticated(Identity::user(REG, name))
}

fn member(name: &str, group: &str) -> Requester {
    Requester::Authenticated(Identity::user(REG, name).with_group(group_arn(REG, group)))
}

fn robot(name: &str) -> Requester {
    Requester::Authenticated(Identity::robot(REG, name))
}

fn req(caller: Requester, action: Action, repo: Option<&str>) -> RequestContext {
    let ctx = RequestContext::new(caller, action, REG, REGION, now());
    match repo {
        Some(r) => ctx.with_repository(r),
        None => ctx,
    }
}

fn doc(kind: PolicyKind, json: &str) -> PolicyDocument {
    PolicyDocument::parse(json, kind).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

fn refused(kind: PolicyKind, json: &str) -> PolicyError {
    match PolicyDocument::parse(json, kind) {
        Ok(_) => panic!("accepted:\n{json}"),
        Err(e) => e,
    }
}

fn identity(statements: &str) -> PolicyDocument {
    doc(
        PolicyKind::Identity,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
    )
}

fn repository(statements: &str) -> PolicyDocument {
    doc(
        PolicyKind::Repository,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
    )
}

fn registry(statements: &str) -> PolicyDocument {
    doc(
        PolicyKind::Registry,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#),
    )
}

fn allowed(set: &PolicySet<'_>, ctx: &RequestContext) -> bool {
    evaluate(set, ctx).is_allowed()
}

// ---------------------------------------------------------------- evaluation

#[test]
fn explicit_deny_beats_allow_across_documents() {
    let allow = identity(r#"{"Sid":"All","Effect":"Allow","Action":"ecr:*","Resource":"*"}"#);
    let deny = registry(
        r#"{"Sid":"NoDelete","Effect":"Deny","Principal":"*","Action":"ecr:BatchDeleteImage","Resource":"prod/*"}"#,
    );
    let repo_allow = repository(
        r#"{"Sid":"Mine","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/alice"},"Action":"ecr:*"}"#,
    );
    let set = PolicySet::new()
        .with_identity("admin", &allow)
        .with_repository(&repo_allow)
        .with_registry(&deny);

    let d = evaluate(
        &set,
        &req(user("alice"), Action::BatchDeleteImage, Some("prod/api")),
    );
    assert_eq!(
        d,
        Decision::ExplicitDeny(DecidingStatement {
            source: PolicySource::Registry,
            statement: StatementId {
                index: 0,
                sid: Some("NoDelete".into())
            },
        })
    );
    assert_eq!(
        d.to_string(),
        r#"explicitly denied by registry policy, Statement "NoDelete" (Statement[0])"#
    );
    // Elsewhere the first Allow (identity policies come first) decides.
    let d = evaluate(
        &set,
        &req(user("alice"), Action::BatchDeleteImage, Some("dev/api")),
    );
    assert_eq!(
        d.statement().unwrap().source,
        PolicySource::Identity("admin".into())
    );
    assert_eq!(
        d.to_string(),
        r#"allowed by identity policy "admin", Statement "All" (Statement[0])"#
    );

    // A Deny in an identity policy beats the repository policy's Allow.
    let deny_push = identity(
        r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"},{"Effect":"Deny","Action":"ecr:PutImage","Resource":"*"}"#,
    );
    let set = PolicySet::new()
        .with_identity("group/ops/NoPush", &deny_push)
        .with_repository(&repo_allow);
    let d = evaluate(&set, &req(user("alice"), Action::PutImage, Some("x")));
    assert!(
        matches!(&d, Decision::ExplicitDeny(s) if s.statement.index == 1 && s.statement.sid.is_none())
    );
    assert_eq!(
        d.to_string(),
        r#"explicitly denied by identity policy "group/ops/NoPush", Statement[1]"#
    );
}

#[test]
fn implicit_deny_without_allow() {
    let set = PolicySet::new();
    let d = evaluate(&set, &req(user("alice"), Action::BatchGetImage, Some("x")));
    assert_eq!(
        d,
        Decision::ImplicitDeny(ImplicitDenyReason::NoMatchingAllow)
    );
    assert_eq!(d.statement(), None);
    assert_eq!(
        d.to_string(),
        "implicitly denied: no statement allows this request"
    );
}

#[test]
fn resource_policy_allow_alone_suffices_within_the_account() {
    let repo = repository(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/bob"},"Action":"ecr:BatchGetImage"}"#,
    );
    let set = PolicySet::new().with_repository(&repo);
    assert!(allowed(
        &set,
        &req(user("bob"), Action::BatchGetImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(user("alice"), Action::BatchGetImage, Some("x"))
    ));
    // The repository policy never speaks for registry-level requests.
    assert!(!allowed(
        &set,
        &req(user("bob"), Action::BatchGetImage, None)
    ));
}

#[test]
fn not_action() {
    let p = identity(
        r#"{"Effect":"Allow","NotAction":["ecr:BatchDeleteImage","ecr:Delete*"],"Resource":"*"}"#,
    );
    let set = PolicySet::new().with_identity("p", &p);
    assert!(allowed(&set, &req(user("a"), Action::PutImage, Some("x"))));
    assert!(allowed(
        &set,
        &req(user("a"), Action::GetAuthorizationToken, None)
    ));
    assert!(!allowed(
        &set,
        &req(user("a"), Action::BatchDeleteImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(user("a"), Action::DeleteRepository, Some("x"))
    ));

    // Deny everything except pulling.
    let everything = identity(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    let only_pull = identity(
        r#"{"Sid":"OnlyPull","Effect":"Deny","NotAction":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"],"Resource":"*"}"#,
    );
    let set = PolicySet::new()
        .with_identity("all", &everything)
        .with_identity("only-pull", &only_pull);
    assert!(allowed(
        &set,
        &req(user("a"), Action::BatchGetImage, Some("x"))
    ));
    let d = evaluate(
        &set,
        &req(user("a"), Action::InitiateLayerUpload, Some("x")),
    );
    assert_eq!(
        d.statement().unwrap().statement.sid.as_deref(),
        Some("OnlyPull")
    );
    assert!(!d.is_allowed());
}

#[test]
fn action_wildcards_and_case() {
    let cases: &[(&str, Action, bool)] = &[
        ("ecr:Batch*", Action::BatchGetImage, true),
        ("ecr:Batch*", Action::BatchDeleteImage, true),
        ("ecr:Batch*", Action::PutImage, false),
        ("ecr:*Image", Action::PutImage, true),
        ("ecr:*Image", Action::DescribeImages, false),
        (
            "ecr:Get?uthorizationToken",
            Action::GetAuthorizationToken,
            true,
        ),
        ("ECR:batchgetimage", Action::BatchGetImage, true),
        ("ecr:BATCHGETIMAGE", Action::GetDownloadUrlForLayer, false),
        ("ecr:*", Action::PutRegistryPolicy, true),
        ("*", Action::ReplicateImage, true),
        ("ecr:Describe*", Action::DescribeRepositories, true),
        ("ecr:Describe*", Action::ListImages, false),
    ];
    for (pattern, action, expect) in cases {
        let p = identity(&format!(
            r#"{{"Effect":"Allow","Action":"{pattern}","Resource":"*"}}"#
        ));
        let set = PolicySet::new().with_identity("p", &p);
        assert_eq!(
            allowed(&set, &req(user("a"), *action, Some("r"))),
            *expect,
            "{pattern} vs {action}"
        );
    }
}

#[test]
fn group_principal_matches_members_only() {
    let repo = repository(
        r#"{"Sid":"TeamPush","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:group/team-a"]},"Action":["ecr:PutImage"]}"#,
    );
    let set = PolicySet::new().with_repository(&repo);
    assert!(allowed(
        &set,
        &req(member("carol", "team-a"), Action::PutImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(member("dave", "team-b"), Action::PutImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(user("team-a"), Action::PutImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(Requester::Anonymous, Action::PutImage, Some("x"))
    ));
}

#[test]
fn user_and_robot_principals() {
    let repo = repository(
        r#"{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/alice","arn:aws:iam::000000000000:user/robot/ci"]},"Action":"ecr:PutImage"}"#,
    );
    let set = PolicySet::new().with_repository(&repo);
    assert!(allowed(
        &set,
        &req(user("alice"), Action::PutImage, Some("x"))
    ));
    assert!(allowed(
        &set,
        &req(robot("ci"), Action::PutImage, Some("x"))
    ));
    // A user named like the robot is not the robot.
    assert!(!allowed(
        &set,
        &req(user("ci"), Action::PutImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(robot("alice"), Action::PutImage, Some("x"))
    ));
}

#[test]
fn root_principal_means_every_signed_in_identity() {
    for principal in [
        r#"{"AWS":"arn:aws:iam::000000000000:root"}"#,
        r#"{"AWS":"000000000000"}"#,
    ] {
        let repo = repository(&format!(
            r#"{{"Effect":"Allow","Principal":{principal},"Action":"ecr:BatchGetImage"}}"#
        ));
        let set = PolicySet::new().with_repository(&repo);
        assert!(allowed(
            &set,
            &req(user("alice"), Action::BatchGetImage, Some("x"))
        ));
        assert!(allowed(
            &set,
            &req(robot("ci"), Action::BatchGetImage, Some("x"))
        ));
        assert!(allowed(
            &set,
            &req(member("m", "g"), Action::BatchGetImage, Some("x"))
        ));
        assert!(!allowed(
            &set,
            &req(Requester::Anonymous, Action::BatchGetImage, Some("x"))
        ));
    }
    // Another account's root, roles and assumed roles parse but match nobody here.
    let repo = repository(
        r#"{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::000000000000:role/ci","arn:aws:sts::000000000000:assumed-role/ci/session"]},"Action":"ecr:*"}"#,
    );
    let set = PolicySet::new().with_repository(&repo);
    assert!(!allowed(
        &set,
        &req(user("alice"), Action::BatchGetImage, Some("x"))
    ));
}

#[test]
fn anonymous_callers() {
    for principal in [
        r#""*""#,
        r#"{"AWS":"*"}"#,
        r#"{"AWS":["arn:aws:iam::000000000000:user/x","*"]}"#,
    ] {
        let repo = repository(&format!(
            r#"{{"Effect":"Allow","Principal":{principal},"Action":"ecr:*"}}"#
        ));
        let set = PolicySet::new().with_repository(&repo);
        let anon = |a| req(Requester::Anonymous, a, Some("public/app"));
        assert!(allowed(&set, &anon(Action::BatchGetImage)));
        assert!(allowed(&set, &anon(Action::ListImages)));
        // No anonymous push (or any other write), whatever the policy says.
        for action in [
            Action::PutImage,
            Action::InitiateLayerUpload,
            Action::BatchDeleteImage,
            Action::SetRepositoryPolicy,
            Action::TagResource,
        ] {
            assert_eq!(
                evaluate(&set, &anon(action)),
                Decision::ImplicitDeny(ImplicitDenyReason::AnonymousWriteForbidden),
                "{action}"
            );
        }
        assert_eq!(
            evaluate(&set, &anon(Action::PutImage)).to_string(),
            "implicitly denied: anonymous callers may only read"
        );
        // Filling a pull-through cache is the one write a policy may grant them.
        assert!(allowed(&set, &anon(Action::BatchImportUpstreamImage)));
        // Signed-in callers are "*" too.
        assert!(allowed(&set, &req(user("a"), Action::PutImage, Some("x"))));
    }
    // ... and only when a policy grants it.
    assert!(!allowed(
        &PolicySet::new(),
        &req(
            Requester::Anonymous,
            Action::BatchImportUpstreamImage,
            Some("x")
        )
    ));
    // Identity policies never apply to anonymous callers.
    let p = identity(r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#);
    let set = PolicySet::new().with_identity("p", &p);
    assert!(!allowed(
        &set,
        &req(Requester::Anonymous, Action::BatchGetImage, Some("x"))
    ));
}

#[test]
fn resource_globs() {
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("prod/*", Some("prod/api"), true),
        ("prod/*", Some("prod/a/b"), true),
        ("prod/*", Some("production"), false),
        ("prod/*", Some("prod"), false),
        ("prod*", Some("production"), true),
        ("prod", Some("prod"), true),
        ("prod", Some("prod/api"), false),
        ("team-?/*", Some("team-a/x"), true),
        ("team-?/*", Some("team-ab/x"), false),
        (
            "arn:aws:ecr:us-east-1:000000000000:repository/prod/*",
            Some("prod/api"),
            true,
        ),
        (
            "arn:aws:ecr:eu-west-1:000000000000:repository/prod/*",
            Some("prod/api"),
            false,
        ),
        (
            "arn:aws:ecr:*:000000000000:repository/prod/*",
            Some("prod/api"),
            true,
        ),
        (
            "arn:aws:ecr:us-east-1:111122223333:repository/prod/*",
            Some("prod/api"),
            false,
        ),
        (
            "arn:aws:ecr:*:*:repository/*",
            Some("anything/at/all"),
            true,
        ),
        ("arn:aws:ecr:*:*:*", Some("x"), true),
        (
            "arn:aws-cn:ecr:*:000000000000:repository/x",
            Some("x"),
            true,
        ),
        // Registry-level requests match only resources covering every repository.
        ("*", None, true),
        ("arn:aws:ecr:*:000000000000:repository/*", None, true),
        ("arn:aws:ecr:us-east-1:000000000000:*", None, true),
        (
            "arn:aws:ecr:eu-west-1:000000000000:repository/*",
            None,
            false,
        ),
        ("prod/*", None, false),
        ("*/*", None, false),
    ];
    for (resource, repo, expect) in cases {
        let p = identity(&format!(
            r#"{{"Effect":"Allow","Action":"ecr:*","Resource":"{resource}"}}"#
        ));
        let set = PolicySet::new().with_identity("p", &p);
        assert_eq!(
            allowed(&set, &req(user("a"), Action::DescribeRepositories, *repo)),
            *expect,
            "{resource} vs {repo:?}"
        );
    }
    // Any entry of a list matches.
    let p = identity(r#"{"Effect":"Allow","Action":"ecr:*","Resource":["a","b/*"]}"#);
    let set = PolicySet::new().with_identity("p", &p);
    assert!(allowed(
        &set,
        &req(user("u"), Action::PutImage, Some("b/c"))
    ));
    assert!(!allowed(&set, &req(user("u"), Action::PutImage, Some("c"))));
}

#[test]
fn not_resource() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"ecr:*","NotResource":["prod/*","arn:aws:ecr:*:000000000000:repository/secret"]}"#,
    );
    let set = PolicySet::new().with_identity("p", &p);
    assert!(allowed(
        &set,
        &req(user("u"), Action::PutImage, Some("dev/api"))
    ));
    assert!(!allowed(
        &set,
        &req(user("u"), Action::PutImage, Some("prod/api"))
    ));
    assert!(!allowed(
        &set,
        &req(user("u"), Action::PutImage, Some("secret"))
    ));
    // A registry-level request is not inside prod/* or secret.
    assert!(allowed(
        &set,
        &req(user("u"), Action::GetAuthorizationToken, None)
    ));
}

#[test]
fn registry_policy_needs_principal_and_resource_match() {
    let reg = registry(
        r#"{"Sid":"OpsPush","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:group/ops"},"Action":"ecr:PutImage","Resource":"ops/*"}"#,
    );
    let set = PolicySet::new().with_registry(&reg);
    assert!(allowed(
        &set,
        &req(member("o", "ops"), Action::PutImage, Some("ops/x"))
    ));
    assert!(!allowed(
        &set,
        &req(member("o", "ops"), Action::PutImage, Some("dev/x"))
    ));
    assert!(!allowed(
        &set,
        &req(user("o"), Action::PutImage, Some("ops/x"))
    ));
}

// ---------------------------------------------------------------- conditions

/// Evaluates a one-statement identity policy allowing PutImage under `condition`.
fn cond_allows(condition: &str, ctx: &RequestContext) -> bool {
    let p = identity(&format!(
        r#"{{"Effect":"Allow","Action":"ecr:PutImage","Resource":"*","Condition":{condition}}}"#
    ));
    evaluate_action(
        &PolicySet::new().with_identity("p", &p),
        ctx,
        Action::PutImage,
    )
    .is_allowed()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn string_conditions() {
    let alice = req(user("alice"), Action::PutImage, Some("x"));
    let bob = req(user("bob"), Action::PutImage, Some("x"));
    let ci = req(robot("ci"), Action::PutImage, Some("x"));

    let c = r#"{"StringEquals":{"aws:username":"alice"}}"#;
    assert!(cond_allows(c, &alice) && !cond_allows(c, &bob));
    // Key names are case-insensitive; values are not.
    assert!(cond_allows(
        r#"{"StringEquals":{"AWS:UserName":"alice"}}"#,
        &alice
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:username":"ALICE"}}"#,
        &alice
    ));
    assert!(cond_allows(
        r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        &alice
    ));
    // Values OR within a key.
    let c = r#"{"StringEquals":{"aws:username":["bob","alice"]}}"#;
    assert!(cond_allows(c, &alice) && cond_allows(c, &bob) && !cond_allows(c, &ci));
    // StringEquals treats * literally; StringLike does not.
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:username":"a*"}}"#,
        &alice
    ));
    assert!(cond_allows(
        r#"{"StringLike":{"aws:username":"a*"}}"#,
        &alice
    ));
    assert!(cond_allows(
        r#"{"StringLike":{"aws:username":"al?ce"}}"#,
        &alice
    ));

    let c = r#"{"StringNotEquals":{"aws:username":["bob","carol"]}}"#;
    assert!(cond_allows(c, &alice) && !cond_allows(c, &bob));
    let c = r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::000000000000:user/robot/*"}}"#;
    assert!(cond_allows(c, &ci) && !cond_allows(c, &alice));
    let c = r#"{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::000000000000:user/robot/*"}}"#;
    assert!(!cond_allows(c, &ci) && cond_allows(c, &alice));
    let c = r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/robot/*"}}"#;
    assert!(cond_allows(c, &ci) && !cond_allows(c, &alice));
    let c = r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::000000000000:user/alice"}}"#;
    assert!(!cond_allows(c, &alice) && cond_allows(c, &bob));
}

#[test]
fn missing_keys_follow_iam() {
    // Anonymous callers have no aws:username / aws:PrincipalArn; use a repository policy with "*".
    let check = |condition: &str| {
        let p = repository(&format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{condition}}}"#
        ));
        allowed(
            &PolicySet::new().with_repository(&p),
            &req(Requester::Anonymous, Action::BatchGetImage, Some("x")),
        )
    };
    assert!(!check(r#"{"StringEquals":{"aws:username":"alice"}}"#));
    assert!(!check(r#"{"StringLike":{"aws:username":"*"}}"#));
    assert!(check(r#"{"StringNotEquals":{"aws:username":"alice"}}"#));
    assert!(check(r#"{"StringNotLike":{"aws:PrincipalArn":"*"}}"#));
    assert!(check(
        r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#
    ));
    assert!(check(r#"{"Null":{"aws:PrincipalArn":"true"}}"#));
    assert!(!check(r#"{"Null":{"aws:PrincipalArn":"false"}}"#));
    // No source address known.
    assert!(!check(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#));
    assert!(check(r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#));
    assert!(check(
        r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#
    ));
}

#[test]
fn ip_conditions() {
    let from = |addr: &str| req(user("a"), Action::PutImage, Some("x")).with_source_ip(ip(addr));
    let c = r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.7","2001:db8::/32"]}}"#;
    assert!(cond_allows(c, &from("10.20.30.40")));
    assert!(cond_allows(c, &from("192.0.2.7")));
    assert!(!cond_allows(c, &from("192.0.2.8")));
    assert!(cond_allows(c, &from("2001:db8:1::5")));
    assert!(!cond_allows(c, &from("2001:db9::1")));
    assert!(!cond_allows(c, &from("11.0.0.1")));
    // An IPv4 peer seen through a dual-stack socket still matches IPv4 ranges.
    assert!(cond_allows(c, &from("::ffff:10.1.1.1")));
    let c = r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(!cond_allows(c, &from("10.1.1.1")) && cond_allows(c, &from("172.16.0.1")));
    let c = r#"{"IpAddress":{"aws:SourceIp":"::1"}}"#;
    assert!(cond_allows(c, &from("::1")) && !cond_allows(c, &from("127.0.0.1")));
}

#[test]
fn date_conditions() {
    let at = |t: &str| {
        let mut ctx = req(user("a"), Action::PutImage, Some("x"));
        ctx.current_time = DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        ctx
    };
    let window = r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2024-12-31"}}"#;
    assert!(cond_allows(window, &at("2024-06-15T12:00:00Z")));
    assert!(!cond_allows(window, &at("2023-12-31T23:59:59Z")));
    assert!(!cond_allows(window, &at("2025-01-01T00:00:00Z")));
    assert!(!cond_allows(window, &at("2024-01-01T00:00:00Z")));
    let c = r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#;
    assert!(cond_allows(c, &at("2024-01-01T00:00:00Z")));
    let c = r#"{"DateLessThanEquals":{"aws:CurrentTime":"2024-01-01T02:00:00+02:00"}}"#;
    assert!(
        cond_allows(c, &at("2024-01-01T00:00:00Z")) && !cond_allows(c, &at("2024-01-01T00:00:01Z"))
    );
    let c = r#"{"DateEquals":{"aws:CurrentTime":"1704067200"}}"#;
    assert!(cond_allows(c, &at("2024-01-01T00:00:00Z")));
    let c = r#"{"DateNotEquals":{"aws:CurrentTime":"1704067200"}}"#;
    assert!(!cond_allows(c, &at("2024-01-01T00:00:00Z")));
}

#[test]
fn bool_secure_transport() {
    let deny_plain = identity(
        r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"},{"Sid":"TlsOnly","Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
    );
    let set = PolicySet::new().with_identity("p", &deny_plain);
    let plain = req(user("a"), Action::BatchGetImage, Some("x"));
    let tls = plain.clone().with_secure_transport(true);
    assert!(allowed(&set, &tls));
    let d = evaluate(&set, &plain);
    assert_eq!(
        d.statement().unwrap().statement.sid.as_deref(),
        Some("TlsOnly")
    );
    assert!(!d.is_allowed());
    // JSON booleans are accepted as values too.
    assert!(cond_allows(
        r#"{"Bool":{"aws:SecureTransport":true}}"#,
        &tls
    ));
    assert!(!cond_allows(
        r#"{"Bool":{"aws:SecureTransport":true}}"#,
        &plain
    ));
}

#[test]
fn conditions_and_across_keys_and_operators() {
    let c = r#"{"StringEquals":{"aws:username":"alice","aws:PrincipalArn":"arn:aws:iam::000000000000:user/alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    let inside = req(user("alice"), Action::PutImage, Some("x")).with_source_ip(ip("10.0.0.1"));
    let outside = req(user("alice"), Action::PutImage, Some("x")).with_source_ip(ip("8.8.8.8"));
    assert!(cond_allows(c, &inside));
    assert!(!cond_allows(c, &outside));
    assert!(!cond_allows(
        c,
        &req(user("bob"), Action::PutImage, Some("x")).with_source_ip(ip("10.0.0.1"))
    ));
    // An empty Condition object imposes nothing.
    assert!(cond_allows("{}", &outside));
}

#[test]
fn policy_variables() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:000000000000:repository/home/${aws:username}/*"}"#,
    );
    let set = PolicySet::new().with_identity("p", &p);
    assert!(allowed(
        &set,
        &req(user("alice"), Action::PutImage, Some("home/alice/app"))
    ));
    assert!(!allowed(
        &set,
        &req(user("alice"), Action::PutImage, Some("home/bob/app"))
    ));
    assert!(allowed(
        &set,
        &req(robot("ci"), Action::PutImage, Some("home/robot/ci/app"))
    ));
    let c = r#"{"StringLike":{"aws:PrincipalArn":"*:user/${aws:username}"}}"#;
    assert!(cond_allows(
        c,
        &req(user("alice"), Action::PutImage, Some("x"))
    ));
    // In 2008-10-17 documents `$` is literal, which a repository name cannot contain.
    let e = refused(
        PolicyKind::Identity,
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"home/${aws:username}"}}"#,
    );
    assert!(e.to_string().contains("Version 2012-10-17"), "{e}");
}

// ---------------------------------------------------------------- validation

#[test]
fn document_shapes_accepted() {
    // Statement as a single object, no Version (2008-10-17), Id present.
    let d = doc(
        PolicyKind::Repository,
        r#"{"Id":"x","Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:ListImages"}}"#,
    );
    assert_eq!(d.version(), PolicyVersion::V2008_10_17);
    assert_eq!(d.kind(), PolicyKind::Repository);
    assert_eq!(d.statements().len(), 1);
    assert_eq!(d.statements()[0].effect(), Effect::Allow);
    assert_eq!(
        d.statements()[0].actions().iter().collect::<Vec<_>>(),
        vec![Action::ListImages]
    );
    let d = identity(r#"{"Sid":"","Effect":"Deny","NotAction":"ecr:*","Resource":"*"}"#);
    assert_eq!(d.version(), PolicyVersion::V2012_10_17);
    assert!(d.statements()[0].actions().is_empty());
    assert_eq!(d.statements()[0].id().to_string(), "Statement[0]");
}

#[test]
fn validation_errors_name_statement_and_field() {
    use PolicyKind::*;
    let wrap = |stmts: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{stmts}]}}"#);
    let ok_first = r#"{"Sid":"Fine","Effect":"Allow","Action":"ecr:*","Resource":"*"}"#;
    let ok_first_repo =
        r#"{"Sid":"Fine","Effect":"Allow","Principal":"*","Action":"ecr:ListImages"}"#;
    // (kind, second statement, expected field, expected message fragments)
    let cases: &[(PolicyKind, &str, &str, &[&str])] = &[
        (
            Identity,
            r#"{"Sid":"DenyProd","Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalOrgID":"o-1"}}}"#,
            "Condition.StringNotEquals.aws:PrincipalOrgID",
            &[
                r#"Statement "DenyProd" (Statement[1]): Condition key "aws:PrincipalOrgID" is not supported; supported keys are aws:SourceIp, aws:CurrentTime, aws:SecureTransport, aws:username, aws:PrincipalArn"#,
            ],
        ),
        (
            Identity,
            r#"{"Effect":"Permit","Action":"ecr:*","Resource":"*"}"#,
            "Effect",
            &["Statement[1]: Effect must be", "Permit"],
        ),
        (
            Identity,
            r#"{"Effect":"allow","Action":"ecr:*","Resource":"*"}"#,
            "Effect",
            &["Effect must be"],
        ),
        (
            Identity,
            r#"{"Action":"ecr:*","Resource":"*"}"#,
            "Effect",
            &["Effect is required"],
        ),
        (
            Identity,
            r#"{"Sid":"S3","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#,
            "Action",
            &[
                r#"Statement "S3" (Statement[1])"#,
                "s3:GetObject",
                "not an ECR action",
            ],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:BatchGetImages"],"Resource":"*"}"#,
            "Action",
            &["ecr:BatchGetImages", "matches no ECR action"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:Nothing*","Resource":"*"}"#,
            "Action",
            &["matches no ECR action"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"BatchGetImage","Resource":"*"}"#,
            "Action",
            &["not an action"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:Batch-Get","Resource":"*"}"#,
            "Action",
            &["invalid action name"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#,
            "Action",
            &["non-empty list"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":7,"Resource":"*"}"#,
            "Action",
            &["string or a non-empty list"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Resource":"*"}"#,
            "Action",
            &["Action (or NotAction) is required"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","NotAction":"ecr:PutImage","Resource":"*"}"#,
            "NotAction",
            &["not both"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","NotAction":"sts:*","Resource":"*"}"#,
            "NotAction",
            &["NotAction \"sts:*\"", "not an ECR action"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*"}"#,
            "Resource",
            &["Resource (or NotResource) is required in identity policies"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","NotResource":"x"}"#,
            "NotResource",
            &["not both"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Principal":"*"}"#,
            "Principal",
            &["not allowed in an identity policy"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:s3:::bucket/*"}"#,
            "Resource",
            &["not an ECR resource"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:000000000000:repo/x"}"#,
            "Resource",
            &["not a valid ECR ARN"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:000000000000"}"#,
            "Resource",
            &["not a valid ECR ARN"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:000000000000:repository/"}"#,
            "Resource",
            &["not a valid ECR ARN"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:0000x:repository/x"}"#,
            "Resource",
            &["invalid registry id"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr::000000000000:repository/x"}"#,
            "Resource",
            &["invalid region"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:amazon:ecr:us-east-1:000000000000:repository/x"}"#,
            "Resource",
            &["not a valid ECR ARN"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"Prod/*"}"#,
            "Resource",
            &["'P'", "repository names cannot contain"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":""}"#,
            "Resource",
            &["is empty"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"home/${aws:userid}"}"#,
            "Resource",
            &["unsupported policy variable", "aws:userid"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericEquals":{"aws:username":"1"}}}"#,
            "Condition.NumericEquals",
            &["operator \"NumericEquals\" is not supported"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:username":"a"}}}"#,
            "Condition.ForAnyValue:StringEquals",
            &["set operators"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.300"}}}"#,
            "Condition.IpAddress.aws:SourceIp",
            &["10.0.0.300", "not an IP address"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:username":"10.0.0.0/8"}}}"#,
            "Condition.IpAddress.aws:username",
            &["cannot test key \"aws:username\""],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"10.0.0.1"}}}"#,
            "Condition.StringEquals.aws:SourceIp",
            &["use IpAddress"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ArnLike":{"aws:username":"x"}}}"#,
            "Condition.ArnLike.aws:username",
            &["cannot test key"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"next tuesday"}}}"#,
            "Condition.DateLessThan.aws:CurrentTime",
            &["not an ISO 8601 date"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}"#,
            "Condition.Bool.aws:SecureTransport",
            &["\"true\" or \"false\""],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Bool":{"aws:CurrentTime":"true"}}}"#,
            "Condition.Bool.aws:CurrentTime",
            &["use a Date operator"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:username":[]}}}"#,
            "Condition.StringEquals.aws:username",
            &["empty list"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:username":{"a":1}}}}"#,
            "Condition.StringEquals.aws:username",
            &["string or a list"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{}}}"#,
            "Condition.StringEquals",
            &["names no condition key"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":[]}"#,
            "Condition",
            &["JSON object"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}"#,
            "Condition.NullIfExists",
            &["not supported"],
        ),
        (
            Identity,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condtion":{}}"#,
            "Condtion",
            &["unknown field \"Condtion\""],
        ),
        (
            Identity,
            r#"{"Sid":3,"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#,
            "Sid",
            &["Sid must be a string"],
        ),
        (
            Identity,
            r#"{"Sid":"Fine","Effect":"Allow","Action":"ecr:*","Resource":"*"}"#,
            "Sid",
            &[r#"Statement "Fine" (Statement[1])"#, "unique"],
        ),
        (
            Identity,
            r#""not an object""#,
            "",
            &["Statement[1]: a statement must be a JSON object"],
        ),
        (
            Repository,
            r#"{"Sid":"NoWho","Effect":"Allow","Action":"ecr:*"}"#,
            "Principal",
            &[
                r#"Statement "NoWho" (Statement[1])"#,
                "Principal is required in repository policies",
            ],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}"#,
            "Resource",
            &["not allowed in a repository policy"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":"*","Action":"ecr:*","NotResource":"x"}"#,
            "NotResource",
            &["not allowed in a repository policy"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"ecr:*"}"#,
            "Principal.Service",
            &["Principal type \"Service\" is not supported"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{},"Action":"ecr:*"}"#,
            "Principal",
            &["\"AWS\" entry"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":"arn:aws:iam::000000000000:root","Action":"ecr:*"}"#,
            "Principal",
            &["Principal must be \"*\" or an object"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/*"},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["wildcard", "aws:PrincipalArn"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["Principal \"alice\" is not a principal"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:policy/x"},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["unsupported IAM resource type"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/"},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["invalid name"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::12345:root"},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["is not a principal"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","Principal":{"AWS":[]},"Action":"ecr:*"}"#,
            "Principal.AWS",
            &["non-empty list"],
        ),
        (
            Repository,
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"*"},"Principal":"*","Action":"ecr:*"}"#,
            "NotPrincipal",
            &["NotPrincipal is not supported"],
        ),
        (
            Registry,
            r#"{"Sid":"R","Effect":"Allow","Principal":"*","Action":"ecr:ReplicateImage"}"#,
            "Resource",
            &[
                r#"Statement "R" (Statement[1])"#,
                "required in registry policies",
            ],
        ),
        (
            Registry,
            r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#,
            "Principal",
            &["Principal is required in registry policies"],
        ),
    ];
    for (kind, statement, field, fragments) in cases {
        let first = if *kind == Repository || *kind == Registry {
            if *kind == Registry {
                r#"{"Sid":"Fine","Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}"#
            } else {
                ok_first_repo
            }
        } else {
            ok_first
        };
        let e = refused(*kind, &wrap(&format!("{first},{statement}")));
        let msg = e.to_string();
        assert_eq!(e.field(), Some(*field), "{msg}");
        assert_eq!(e.statement().map(|s| s.index), Some(1), "{msg}");
        for fragment in *fragments {
            assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
        }
    }
}

#[test]
fn document_level_errors() {
    use PolicyKind::*;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#,
            "unknown top-level field \"Extra\"",
        ),
        (
            r#"{"Version":"2012-10-18","Statement":[]}"#,
            "Version must be",
        ),
        (r#"{"Version":20121017,"Statement":[]}"#, "Version must be"),
        (r#"{"Version":"2012-10-17"}"#, "Statement is required"),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            "Statement must not be empty",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":"x"}"#,
            "Statement must be an object or a list",
        ),
        (
            r#"{"Version":"2012-10-17","Id":5,"Statement":[]}"#,
            "Id must be a string",
        ),
        (r#"[1]"#, "must be a JSON object"),
    ];
    for (text, fragment) in cases {
        let e = refused(Identity, text);
        assert!(matches!(e, PolicyError::Document { .. }), "{e:?}");
        assert!(e.to_string().contains(fragment), "{e} lacks {fragment}");
    }
    let e = refused(Identity, "{not json");
    assert!(matches!(e, PolicyError::InvalidJson(_)) && e.field().is_none());
}

#[test]
fn size_limits() {
    let pad = |n: usize| {
        let head = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"ecr:ListImages","Resource":"*"}}"#;
        format!("{head}{}", " ".repeat(n - head.len()))
    };
    // Size is checked before anything else (this body would also be refused for its Resource).
    assert!(!matches!(
        refused(PolicyKind::Repository, &pad(10_240)),
        PolicyError::TooLarge { .. }
    ));
    let e = refused(PolicyKind::Repository, &pad(10_241));
    assert_eq!(
        e,
        PolicyError::TooLarge {
            kind: PolicyKind::Repository,
            actual: 10_241,
            limit: 10_240
        }
    );
    assert_eq!(
        e.to_string(),
        "policy document is 10241 characters long; repository policies are limited to 10240"
    );
    assert!(PolicyDocument::parse(&pad(30_720), PolicyKind::Registry).is_ok());
    assert!(matches!(
        refused(PolicyKind::Registry, &pad(30_721)),
        PolicyError::TooLarge { limit: 30_720, .. }
    ));
    assert_eq!(PolicyKind::Identity.max_chars(), MAX_POLICY_CHARS);
}

/// The example of REFERENCE.md section 5, verbatim.
const REFERENCE_EXAMPLE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "PullFromProdAccount",
      "Effect": "Allow",
      "Principal": { "AWS": "arn:aws:iam::111122223333:root" },
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    },
    {
      "Sid": "PushFromCiRole",
      "Effect": "Allow",
      "Principal": { "AWS": "arn:aws:iam::444455556666:role/ci-builder" },
      "Action": ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                 "ecr:CompleteLayerUpload", "ecr:PutImage"]
    },
    {
      "Sid": "DenyOutsideOrg",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "ecr:*",
      "Condition": { "StringNotEquals": { "aws:PrincipalOrgID": "o-exampleorg" } }
    }
  ]
}"#;

#[test]
fn reference_example() {
    // Its third statement uses a key Berth does not support: refused, naming statement and key.
    let e = refused(PolicyKind::Repository, REFERENCE_EXAMPLE);
    assert_eq!(
        e.statement(),
        Some(&StatementId {
            index: 2,
            sid: Some("DenyOutsideOrg".into())
        })
    );
    assert_eq!(
        e.field(),
        Some("Condition.StringNotEquals.aws:PrincipalOrgID")
    );
    assert!(e.to_string().starts_with(
        r#"Statement "DenyOutsideOrg" (Statement[2]): Condition key "aws:PrincipalOrgID" is not supported"#
    ));
    // With a supported key the document parses; its cross-account principals match nobody here.
    let adapted = REFERENCE_EXAMPLE
        .replace("aws:PrincipalOrgID", "aws:PrincipalArn")
        .replace(
            "\"o-exampleorg\"",
            "\"arn:aws:iam::000000000000:user/alice\"",
        );
    let d = doc(PolicyKind::Repository, &adapted);
    assert_eq!(d.statements().len(), 3);
    let set = PolicySet::new().with_repository(&d);
    assert!(!allowed(
        &set,
        &req(user("alice"), Action::BatchGetImage, Some("x"))
    ));
    let d = evaluate(&set, &req(user("bob"), Action::BatchGetImage, Some("x")));
    assert_eq!(
        d.statement().unwrap().statement.sid.as_deref(),
        Some("DenyOutsideOrg")
    );
}

// ---------------------------------------------------------------- scopes

#[test]
fn scope_actions_need_every_underlying_action() {
    let pull_only = identity(
        r#"{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability","ecr:InitiateLayerUpload"],"Resource":"*"}"#,
    );
    let set = PolicySet::new().with_identity("p", &pull_only);
    let ctx = req(user("a"), Action::GetAuthorizationToken, Some("x"));
    assert_eq!(
        granted_scope_actions(&set, &ctx, &["pull", "push", "delete", "*"]),
        vec!["pull"]
    );
    assert!(!scope_granted(&set, &ctx, ScopeAction::Push));

    let everything = identity(r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#);
    let deny_delete = example("deny-delete-prod.json");
    let set = PolicySet::new()
        .with_identity("all", &everything)
        .with_registry(&deny_delete);
    let on = |repo: &str| req(user("a"), Action::GetAuthorizationToken, Some(repo));
    assert_eq!(
        granted_scope_actions(
            &set,
            &on("dev/x"),
            &["pull", "push", "pull", "bogus", "*", "delete"]
        ),
        vec!["pull", "push", "*", "delete"]
    );
    assert_eq!(
        granted_scope_actions(&set, &on("prod/x"), &["*", "delete", "push", "pull"]),
        vec!["push", "pull"]
    );
    assert!(granted_scope_actions(&set, &on("x"), &[]).is_empty());
}

// ---------------------------------------------------------------- policies/access

fn example_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/access")
        .join(name)
}

/// The kind each example is meant for (documented in policies/README.md).
fn example_kind(file: &str) -> PolicyKind {
    match file {
        "read-only-puller.json" | "ci-pusher-prefix.json" => PolicyKind::Identity,
        "team-namespace.json" | "deny-delete-prod.json" => PolicyKind::Registry,
        "anonymous-pull.json" => PolicyKind::Repository,
        other => panic!("policies/access/{other}: add it to example_kind and policies/README.md"),
    }
}

fn example(file: &str) -> PolicyDocument {
    let text = std::fs::read_to_string(example_path(file)).unwrap();
    doc(example_kind(file), &text)
}

#[test]
fn every_example_document_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/access");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "anonymous-pull.json",
            "ci-pusher-prefix.json",
            "deny-delete-prod.json",
            "read-only-puller.json",
            "team-namespace.json"
        ]
    );
    for name in &names {
        let d = example(name);
        assert!(!d.statements().is_empty(), "{name}");
    }
}

#[test]
fn example_documents_behave_as_documented() {
    let puller = example("read-only-puller.json");
    let ci = example("ci-pusher-prefix.json");
    let team = example("team-namespace.json");
    let no_prod_delete = example("deny-delete-prod.json");
    let anon = example("anonymous-pull.json");
    let all = identity(r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#);

    let set = PolicySet::new().with_identity("read-only-puller", &puller);
    let ctx = |repo: &str| req(user("reader"), Action::GetAuthorizationToken, Some(repo));
    assert_eq!(
        granted_scope_actions(&set, &ctx("any/repo"), &["pull", "push", "delete"]),
        vec!["pull"]
    );
    assert!(allowed(
        &set,
        &req(user("reader"), Action::GetAuthorizationToken, None)
    ));
    assert!(allowed(
        &set,
        &req(user("reader"), Action::DescribeRepositories, None)
    ));
    assert!(!allowed(
        &set,
        &req(user("reader"), Action::CreateRepository, Some("x"))
    ));

    let set = PolicySet::new().with_identity("ci-pusher-prefix", &ci);
    let bot = |repo: Option<&str>, a| req(robot("builder"), a, repo);
    assert_eq!(
        granted_scope_actions(
            &set,
            &bot(Some("ci/app"), Action::PutImage),
            &["pull", "push"]
        ),
        vec!["pull", "push"]
    );
    assert!(granted_scope_actions(
        &set,
        &bot(Some("cinema"), Action::PutImage),
        &["pull", "push"]
    )
    .is_empty());
    assert!(
        granted_scope_actions(&set, &bot(Some("prod/ci/app"), Action::PutImage), &["push"])
            .is_empty()
    );
    assert!(allowed(
        &set,
        &bot(Some("ci/new"), Action::CreateRepository)
    ));
    assert!(allowed(&set, &bot(None, Action::GetAuthorizationToken)));
    assert!(!allowed(
        &set,
        &bot(Some("ci/app"), Action::BatchDeleteImage)
    ));

    let set = PolicySet::new().with_registry(&team);
    assert_eq!(
        granted_scope_actions(
            &set,
            &req(
                member("tina", "team-a"),
                Action::PutImage,
                Some("team-a/web")
            ),
            &["*"]
        ),
        vec!["*"]
    );
    assert!(allowed(
        &set,
        &req(
            member("tina", "team-a"),
            Action::SetRepositoryPolicy,
            Some("team-a/web")
        )
    ));
    assert!(allowed(
        &set,
        &req(member("tina", "team-a"), Action::DescribeRepositories, None)
    ));
    assert!(!allowed(
        &set,
        &req(member("tina", "team-a"), Action::PutRegistryPolicy, None)
    ));
    assert!(!allowed(
        &set,
        &req(
            member("tina", "team-a"),
            Action::PutImage,
            Some("team-b/web")
        )
    ));
    assert!(!allowed(
        &set,
        &req(
            member("bert", "team-b"),
            Action::PutImage,
            Some("team-a/web")
        )
    ));

    let set = PolicySet::new()
        .with_identity("admin", &all)
        .with_registry(&no_prod_delete);
    let d = evaluate(
        &set,
        &req(user("admin"), Action::BatchDeleteImage, Some("prod/api")),
    );
    assert_eq!(
        d.to_string(),
        r#"explicitly denied by registry policy, Statement "NoDeletesInProd" (Statement[0])"#
    );
    assert!(allowed(
        &set,
        &req(user("admin"), Action::BatchDeleteImage, Some("production"))
    ));
    assert!(allowed(
        &set,
        &req(user("admin"), Action::PutImage, Some("prod/api"))
    ));

    let set = PolicySet::new().with_repository(&anon);
    let a = |action| req(Requester::Anonymous, action, Some("public/tool"));
    assert_eq!(
        granted_scope_actions(&set, &a(Action::BatchGetImage), &["pull", "push"]),
        vec!["pull"]
    );
    assert!(allowed(&set, &a(Action::ListImages)));
    assert!(!allowed(&set, &a(Action::DescribeImages)));
    assert_eq!(
        granted_scope_actions(
            &set,
            &req(user("x"), Action::PutImage, Some("p")),
            &["pull", "push"]
        ),
        vec!["pull"]
    );
}

// ---------------------------------------------------------------- other accounts

const OTHER: &str = "111111111111";

fn foreign_user(name: &str) -> Requester {
    Requester::Authenticated(Identity::user(OTHER, name))
}

fn foreign_robot(name: &str) -> Requester {
    Requester::Authenticated(Identity::robot(OTHER, name))
}

fn pull_with_repository_policy(principal: &str, caller: Requester) -> bool {
    let p = repository(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"ecr:BatchGetImage"}}"#
    ));
    allowed(
        &PolicySet::new().with_repository(&p),
        &req(caller, Action::BatchGetImage, Some("shared/app")),
    )
}

#[test]
fn principals_of_another_account_match_only_that_account() {
    // The account's root: every identity of that registry, none of this one's.
    let root = format!("arn:aws:iam::{OTHER}:root");
    assert!(pull_with_repository_policy(&root, foreign_user("alice")));
    assert!(pull_with_repository_policy(&root, foreign_robot("ci")));
    assert!(!pull_with_repository_policy(&root, user("alice")));
    assert!(!pull_with_repository_policy(&root, Requester::Anonymous));
    // A bare account id means the same.
    assert!(pull_with_repository_policy(OTHER, foreign_user("bob")));
    assert!(!pull_with_repository_policy(OTHER, user("bob")));

    // A user or robot of the other account is that identity, not a namesake here.
    let alice = format!("arn:aws:iam::{OTHER}:user/alice");
    assert!(pull_with_repository_policy(&alice, foreign_user("alice")));
    assert!(!pull_with_repository_policy(&alice, user("alice")));
    assert!(!pull_with_repository_policy(&alice, foreign_user("bob")));
    let local_alice = format!("arn:aws:iam::{REG}:user/alice");
    assert!(!pull_with_repository_policy(
        &local_alice,
        foreign_user("alice")
    ));
    let ci = format!("arn:aws:iam::{OTHER}:user/robot/ci");
    assert!(pull_with_repository_policy(&ci, foreign_robot("ci")));
    assert!(!pull_with_repository_policy(&ci, foreign_user("ci")));
    assert!(!pull_with_repository_policy(&ci, robot("ci")));
}

#[test]
fn nothing_of_another_account_is_allowed_without_a_policy_here() {
    // This registry's identity policies belong to its own users and groups; an identity of
    // another account reaches nothing through them, and no document at all means no access.
    let everything = identity(r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*"}"#);
    let ctx = req(foreign_user("alice"), Action::BatchGetImage, Some("x"));
    assert!(!allowed(&PolicySet::new(), &ctx));
    assert!(!allowed(
        &PolicySet::new().with_identity("everything", &everything),
        &ctx
    ));
    // A repository policy naming the account is what opens it; an explicit Deny still wins.
    let open = repository(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"ecr:BatchGetImage"}}"#
    ));
    assert!(allowed(&PolicySet::new().with_repository(&open), &ctx));
    let deny = registry(&format!(
        r#"{{"Effect":"Deny","Principal":{{"AWS":"{OTHER}"}},"Action":"ecr:*","Resource":"*"}}"#
    ));
    assert!(!allowed(
        &PolicySet::new()
            .with_identity("everything", &everything)
            .with_repository(&open)
            .with_registry(&deny),
        &ctx
    ));
}

#[test]
fn principal_account_condition_key() {
    // In the registry policy, which (unlike identity policies) applies to other accounts too.
    let registry_allows = |condition: &str, caller: Requester| {
        let p = registry(&format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"ecr:PutImage","Resource":"*","Condition":{condition}}}"#
        ));
        allowed(
            &PolicySet::new().with_registry(&p),
            &req(caller, Action::PutImage, Some("x")),
        )
    };
    let c = format!(r#"{{"StringEquals":{{"aws:PrincipalAccount":"{OTHER}"}}}}"#);
    assert!(registry_allows(&c, foreign_user("a")));
    assert!(!registry_allows(&c, user("a")));
    let c = format!(r#"{{"StringNotEquals":{{"aws:PrincipalAccount":"{REG}"}}}}"#);
    assert!(registry_allows(&c, foreign_robot("ci")));
    assert!(!registry_allows(&c, robot("ci")));
    // In an identity policy the key is this registry's own account.
    let c = format!(r#"{{"StringEquals":{{"aws:PrincipalAccount":"{REG}"}}}}"#);
    assert!(cond_allows(
        &c,
        &req(user("a"), Action::PutImage, Some("x"))
    ));
    // Anonymous callers have no account: the key is missing, as in IAM.
    let p = repository(&format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{{"StringEquals":{{"aws:PrincipalAccount":"{OTHER}"}}}}}}"#
    ));
    let set = PolicySet::new().with_repository(&p);
    assert!(!allowed(
        &set,
        &req(Requester::Anonymous, Action::BatchGetImage, Some("x"))
    ));
    assert!(allowed(
        &set,
        &req(foreign_user("a"), Action::BatchGetImage, Some("x"))
    ));
    assert!(!allowed(
        &set,
        &req(user("a"), Action::BatchGetImage, Some("x"))
    ));
    // Key names are case-insensitive; the Arn operators stay reserved for aws:PrincipalArn.
    assert_eq!(
        ConditionKey::parse("AWS:principalaccount"),
        Some(ConditionKey::PrincipalAccount)
    );
    let e = refused(
        PolicyKind::Identity,
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{{"ArnEquals":{{"aws:PrincipalAccount":"{OTHER}"}}}}}}]}}"#
        ),
    );
    assert!(e.to_string().contains("aws:PrincipalAccount"), "{e}");
}
