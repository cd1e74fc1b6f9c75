//! Replication between two real Berths: A (the stack under test) sends what is pushed to it to
//! B (another account and region, on the other stack), as the rules set through ECR's API say.
//! Images, indexes and referrers arrive with the same digests, B's policies decide (a registry
//! policy must allow A's root `ecr:ReplicateImage` and `ecr:CreateRepository`), B's
//! `REPLICATION` creation template applies, a blob B already holds is mounted rather than sent,
//! an outage of B is waited out, and status reads as ECR reports it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::federation::{server, trusting_pair_on, A_ID, B_ID};
use crate::support::api::{
    sha256_digest, Api, EMPTY_JSON, EMPTY_JSON_DIGEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use crate::support::common::{
    admin_client, aws_cli, stack_is_pg_s3, TestServer, ADMIN_PASSWORD, ADMIN_USER,
};
use crate::support::e2e;

const KEY: &str = "AKIAREPLICATIONTEST1";
const SECRET: &str = "replication-test-secret-key-0123456789";

/// A on the stack under test with an admin access key for the AWS CLI; B on the other stack.
async fn pair() -> (e2e::Registry, e2e::Registry) {
    let pg = stack_is_pg_s3();
    let a_env = [
        ("BERTH_ADMIN_ACCESS_KEY_ID", KEY),
        ("BERTH_ADMIN_SECRET_ACCESS_KEY", SECRET),
    ];
    trusting_pair_on((pg, &a_env), (!pg, &[])).await
}

/// `GET path` at `server` as the admin: the JSON answer.
async fn get_json(server: &TestServer, path: &str) -> Value {
    send_json(Method::GET, server, path, None).await.1
}

/// A request with an optional JSON body at `server` as the admin: (status, JSON answer).
async fn send_json(
    method: Method,
    server: &TestServer,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = admin_client().request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The AWS CLI against `server` with the admin's access key; its JSON answer, or the error text.
fn aws(server: &TestServer, args: &[&str]) -> Result<Value, String> {
    let mut aws = aws_cli(&server.url(""), KEY, SECRET);
    aws.arg("ecr").args(args).args(["--output", "json"]);
    let out = e2e::run(aws);
    if out.success() {
        Ok(if out.stdout.trim().is_empty() {
            Value::Null
        } else {
            out.json()
        })
    } else {
        Err(out.combined())
    }
}

fn rules_to_b(filter: Option<&str>) -> String {
    let mut rule = json!({"destinations": [{"region": "eu-west-1", "registryId": B_ID}]});
    if let Some(prefix) = filter {
        rule["repositoryFilters"] = json!([{"filter": prefix, "filterType": "PREFIX_MATCH"}]);
    }
    json!({"rules": [rule]}).to_string()
}

/// B's registry policy letting A replicate into it.
async fn let_a_replicate(b: &TestServer) {
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "replication-from-a",
        "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{A_ID}:root")},
        "Action": ["ecr:ReplicateImage", "ecr:CreateRepository"], "Resource": "*"}]});
    let response = admin_client()
        .put(b.url("/api/v1/registry-policy"))
        .body(policy.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

/// Waits (at most 60 s) until A has no replication task left open or one failed.
async fn settled(a: &TestServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks: Value = get_json(a, "/api/v1/replication/tasks").await;
        let open = tasks["tasks"].as_array().unwrap();
        if open.iter().all(|t| t["status"] == "FAILED") {
            return tasks;
        }
        assert!(
            Instant::now() < deadline,
            "replication did not settle: {tasks}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn replication_status(a: &TestServer, repository: &str, digest: &str) -> Value {
    aws(
        a,
        &[
            "describe-image-replication-status",
            "--repository-name",
            repository,
            "--image-id",
            &format!("imageDigest={digest}"),
        ],
    )
    .unwrap()
}

/// The manifest `reference` of `repository` at `server` as the admin reads it: (digest, bytes).
async fn manifest(
    server: &TestServer,
    repository: &str,
    reference: &str,
) -> Option<(String, Vec<u8>)> {
    let response = admin_client()
        .get(server.url(&format!("/v2/{repository}/manifests/{reference}")))
        .header(
            "accept",
            format!(
                "{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json"
            ),
        )
        .send()
        .await
        .unwrap();
    if response.status() == 404 {
        return None;
    }
    assert_eq!(response.status(), 200);
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    Some((digest, response.bytes().await.unwrap().to_vec()))
}

/// Pushes to A, as the admin over HTTP, an index of the image `image` and a signature of it.
async fn push_index_and_signature(
    a: &TestServer,
    repository: &str,
    image: &str,
) -> (String, String) {
    let api = Api::with_basic(&a.url(""), ADMIN_USER, ADMIN_PASSWORD);
    let (digest, bytes) = manifest(a, repository, image).await.unwrap();
    let media_type: Value = serde_json::from_slice(&bytes).unwrap();
    let media_type = media_type["mediaType"]
        .as_str()
        .unwrap_or(OCI_MANIFEST)
        .to_owned();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": media_type, "digest": digest, "size": bytes.len(),
         "platform": {"architecture": "amd64", "os": "linux"}}]});
    let index = serde_json::to_vec(&index).unwrap();
    let response = api
        .send(
            api.req(
                reqwest::Method::PUT,
                &format!("/v2/{repository}/manifests/multi"),
            )
            .header("content-type", OCI_INDEX)
            .body(index.clone()),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = api.start_upload(repository).await;
    assert_eq!(
        api.put_upload(&location, EMPTY_JSON_DIGEST, Some(EMPTY_JSON))
            .await
            .status(),
        201
    );
    let empty = json!({"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2});
    let signature = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature", "config": empty, "layers": [empty],
        "subject": {"mediaType": media_type, "digest": digest, "size": bytes.len()}});
    let signature = serde_json::to_vec(&signature).unwrap();
    let signature_digest = sha256_digest(&signature);
    let response = api
        .send(
            api.req(
                reqwest::Method::PUT,
                &format!("/v2/{repository}/manifests/{signature_digest}"),
            )
            .header("content-type", OCI_MANIFEST)
            .body(signature),
        )
        .await;
    assert_eq!(response.status(), 201);
    (sha256_digest(&index), signature_digest)
}

#[tokio::test]
async fn pushed_images_indexes_and_signatures_appear_at_b() {
    let (a_reg, b_reg) = pair().await;
    let (a, b) = (server(&a_reg), server(&b_reg));
    let_a_replicate(b).await;
    // B gives repositories created by replication its REPLICATION template's settings.
    let template = json!({"prefix": "prod", "appliedFor": ["REPLICATION"],
        "imageTagMutability": "IMMUTABLE"});
    let (status, answer) = send_json(
        Method::POST,
        b,
        "/api/v1/repository-creation-templates",
        Some(&template),
    )
    .await;
    assert!((200..300).contains(&status), "{answer}");

    // The rule, set with the AWS CLI, and read back as DescribeRegistry shows it.
    let rules = rules_to_b(Some("prod"));
    aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &rules,
        ],
    )
    .unwrap();
    let described = aws(a, &["describe-registry"]).unwrap();
    assert_eq!(described["registryId"], A_ID);
    assert_eq!(
        described["replicationConfiguration"],
        serde_json::from_str::<Value>(&rules).unwrap()
    );

    let image = e2e::push_test_image(&a_reg, "prod/app", "v1", None);
    let (index, signature) = push_index_and_signature(a, "prod/app", "v1").await;
    e2e::push_test_image(&a_reg, "dev/app", "v1", None);
    let tasks = settled(a).await;
    assert_eq!(tasks["tasks"], json!([]), "nothing failed");

    // At B with the same digests and bytes: the image by tag, the index, the signature.
    for (reference, digest) in [
        ("v1", &image),
        ("multi", &index),
        (signature.as_str(), &signature),
    ] {
        let (at_b, bytes_b) = manifest(b, "prod/app", reference)
            .await
            .unwrap_or_else(|| panic!("prod/app:{reference} is not at B:\n{}", a.log()));
        let (_, bytes_a) = manifest(a, "prod/app", reference).await.unwrap();
        assert_eq!(&at_b, digest, "{reference}");
        assert_eq!(bytes_b, bytes_a, "{reference}");
    }
    let referrers: Value = get_json(b, &format!("/v2/prod/app/referrers/{image}")).await;
    assert_eq!(referrers["manifests"][0]["digest"], signature.as_str());
    // Only what the rule selects.
    assert!(manifest(b, "dev/app", "v1").await.is_none());
    // Created with B's REPLICATION template.
    let repository: Value = get_json(b, "/api/v1/repositories/prod/app").await;
    assert_eq!(
        repository["imageTagMutability"], "IMMUTABLE",
        "{repository}"
    );

    // ECR's status: COMPLETE at B; nothing for an image no rule selected.
    let answer = replication_status(a, "prod/app", &image);
    assert_eq!(
        answer["replicationStatuses"],
        json!([{"region": "eu-west-1", "registryId": B_ID, "status": "COMPLETE"}])
    );
    let dev = manifest(a, "dev/app", "v1").await.unwrap().0;
    assert_eq!(
        replication_status(a, "dev/app", &dev)["replicationStatuses"],
        json!([])
    );

    // docker pulls it from B.
    let dockerd = e2e::daemons::Dockerd::start(&[&b_reg.addr]);
    dockerd.login(&b_reg);
    let mut pull = dockerd.docker();
    pull.args(["pull", &b_reg.reference("prod/app", "v1")]);
    e2e::run_ok(pull);
}

#[tokio::test]
async fn a_refusal_at_b_fails_with_the_reason_and_a_retry_completes() {
    let (a_reg, b_reg) = pair().await;
    let (a, b) = (server(&a_reg), server(&b_reg));
    aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &rules_to_b(None),
        ],
    )
    .unwrap();
    let image = e2e::push_test_image(&a_reg, "team/app", "v1", None);
    let tasks = settled(a).await;
    let failed = &tasks["tasks"][0];
    assert_eq!(failed["status"], "FAILED", "{tasks}");
    assert_eq!(failed["failure_code"], "REPLICATION_DENIED", "{tasks}");
    let reason = failed["failure_reason"].as_str().unwrap();
    assert!(reason.contains("ecr:"), "{reason}");
    assert_eq!(
        replication_status(a, "team/app", &image)["replicationStatuses"][0]["failureCode"],
        "REPLICATION_DENIED"
    );
    assert!(manifest(b, "team/app", "v1").await.is_none());

    // B's administrator fixes the policy; A's retries the failed task.
    let_a_replicate(b).await;
    let retry = json!({"repository": "team/app"});
    let (_, answer) = send_json(Method::POST, a, "/api/v1/replication/retry", Some(&retry)).await;
    assert_eq!(answer["restarted"], 1);
    assert_eq!(settled(a).await["tasks"], json!([]));
    assert_eq!(manifest(b, "team/app", "v1").await.unwrap().0, image);
    assert_eq!(
        replication_status(a, "team/app", &image)["replicationStatuses"][0]["status"],
        "COMPLETE"
    );
}

#[tokio::test]
async fn b_down_while_a_replicates_then_back_gets_everything_once() {
    let (a_reg, mut b_reg) = pair().await;
    let a = server(&a_reg);
    let_a_replicate(server(&b_reg)).await;
    // B already holds the image's blobs in another repository: they are mounted, not sent.
    e2e::push_test_image(&b_reg, "other/app", "v1", None);
    aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &rules_to_b(None),
        ],
    )
    .unwrap();
    b_reg.server_mut().unwrap().kill();
    let image = e2e::push_test_image(&a_reg, "team/app", "v1", None);
    // A keeps trying while B is away.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks: Value = get_json(a, "/api/v1/replication/tasks").await;
        if tasks["tasks"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            assert_eq!(tasks["tasks"][0]["status"], "IN_PROGRESS", "{tasks}");
            break;
        }
        assert!(Instant::now() < deadline, "A never tried: {tasks}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        replication_status(a, "team/app", &image)["replicationStatuses"][0]["status"],
        "IN_PROGRESS"
    );
    b_reg.server_mut().unwrap().restart();
    assert_eq!(settled(a).await["tasks"], json!([]));
    let b = server(&b_reg);
    assert_eq!(manifest(b, "team/app", "v1").await.unwrap().0, image);
    assert_eq!(
        replication_status(a, "team/app", &image)["replicationStatuses"][0]["status"],
        "COMPLETE"
    );
    assert!(
        a.log()
            .contains("blob mounted at the destination, not sent"),
        "no blob was mounted:\n{}",
        a.log()
    );
}

#[tokio::test]
async fn bad_configurations_are_refused_naming_the_field() {
    let (a_reg, _b_reg) = pair().await;
    let a = server(&a_reg);
    let rule = |destination: Value, filters: Option<Value>| {
        let mut rule = json!({"destinations": [destination]});
        if let Some(f) = filters {
            rule["repositoryFilters"] = f;
        }
        rule
    };
    let b = json!({"region": "eu-west-1", "registryId": B_ID});
    let cases = [
        (
            json!({"rules": vec![rule(b.clone(), None); 11]}),
            "at most 10 are allowed",
        ),
        (
            json!({"rules": [rule(json!({"region": "eu-west-1", "registryId": "999999999999"}), None)]}),
            "not a registry this one trusts",
        ),
        (
            json!({"rules": [rule(json!({"region": "us-east-1", "registryId": A_ID}), None)]}),
            "itself",
        ),
        (
            json!({"rules": [rule(json!({"region": "ap-south-1", "registryId": B_ID}), None)]}),
            "not a registry this one trusts",
        ),
        (
            json!({"rules": [rule(b.clone(), Some(json!([{"filter": "Prod", "filterType": "PREFIX_MATCH"}])))]}),
            "repositoryFilters[0].filter",
        ),
        (
            json!({"rules": [rule(b.clone(), Some(json!([{"filter": "prod", "filterType": "PREFIX_NOT_MATCH"}])))]}),
            "repositoryFilters[0].filterType",
        ),
    ];
    for (configuration, expected) in cases {
        let error = aws(
            a,
            &[
                "put-replication-configuration",
                "--replication-configuration",
                &configuration.to_string(),
            ],
        )
        .unwrap_err();
        assert!(
            error.contains("InvalidParameterException"),
            "{expected}: {error}"
        );
        assert!(error.contains(expected), "{expected}: {error}");
    }
    assert_eq!(
        aws(a, &["describe-registry"]).unwrap()["replicationConfiguration"],
        json!({"rules": []})
    );
    // Berth's filter types through the REST API.
    let extended = json!({"rules": [rule(b, Some(json!([{"filter": "tmp", "filterType": "PREFIX_NOT_MATCH"}])))]});
    let (status, answer) = send_json(Method::PUT, a, "/api/v1/replication", Some(&extended)).await;
    assert_eq!(status, 200, "{answer}");
    let stored: Value = get_json(a, "/api/v1/replication").await;
    assert_eq!(stored, extended);
}

/// `GET /v2/<repository>/manifests/<tag>` at a registry without authentication (Distribution):
/// the digest, if it is there.
async fn anonymous_digest(addr: &str, repository: &str, tag: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .head(format!("http://{addr}/v2/{repository}/manifests/{tag}"))
        .header(
            "accept",
            format!(
                "{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json"
            ),
        )
        .send()
        .await
        .unwrap();
    (response.status() == 200).then(|| {
        response.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned()
    })
}

#[tokio::test]
async fn filters_targets_that_are_not_berth_and_a_backfill() {
    let (mut a_reg, b_reg) = pair().await;
    let b = server(&b_reg);
    let_a_replicate(b).await;
    // Two destinations that are not Berth to A: CNCF Distribution (anonymous), and B again as a
    // plain OCI registry with its admin's credentials from a file (the token flow).
    let (_distribution, dist_addr, _dist_dir) =
        e2e::daemons::start_reference_registry(&e2e::reference_bin(), None);
    let creds_dir = tempfile::tempdir().unwrap();
    let creds = creds_dir.path().join("b.json");
    std::fs::write(
        &creds,
        json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}).to_string(),
    )
    .unwrap();
    let targets = json!([
        {"name": "dist", "url": format!("http://{dist_addr}")},
        {"name": "b-oci", "url": b.url(""), "credentials_file": creds.to_str().unwrap()},
    ])
    .to_string();
    {
        let a = a_reg.server_mut().unwrap();
        a.set_env("BERTH_REPLICATION_TARGETS", Some(&targets));
        a.restart();
    }
    let a = server(&a_reg);
    // Pushed before any rule: not replicated until a backfill.
    let old = e2e::push_test_image(&a_reg, "old/app", "v1", None);

    let rules = json!({"rules": [
        {"destinations": [{"region": "eu-west-1", "registryId": B_ID}],
         "repositoryFilters": [{"filter": "scratch", "filterType": "PREFIX_NOT_MATCH"}],
         "imageTagFilters": [{"filter": "v*", "filterType": "WILDCARD"}]},
        {"destinations": [{"target": "dist"}, {"target": "b-oci"}],
         "repositoryFilters": [{"filter": "team/app", "filterType": "LITERAL_MATCH"}]},
    ]});
    let (status, answer) = send_json(Method::PUT, a, "/api/v1/replication", Some(&rules)).await;
    assert_eq!(status, 200, "{answer}");
    // ECR's door shows them but would not take Berth's extensions.
    let error = aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &rules.to_string(),
        ],
    );
    assert!(error.is_err());

    let image = e2e::push_test_image(&a_reg, "team/app", "v1", None);
    e2e::push_test_image(&a_reg, "team/app", "latest", None);
    e2e::push_test_image(&a_reg, "team/app-two", "v2", None);
    e2e::push_test_image(&a_reg, "scratch/x", "v1", None);
    assert_eq!(settled(a).await["tasks"], json!([]));

    // B (by rule 1): tags matching v*, outside scratch/.
    assert_eq!(manifest(b, "team/app", "v1").await.unwrap().0, image);
    assert_eq!(manifest(b, "team/app-two", "v2").await.unwrap().0, image);
    assert!(manifest(b, "scratch/x", "v1").await.is_none());
    // Distribution and B-as-OCI (rule 2): team/app exactly, every tag.
    for tag in ["v1", "latest"] {
        assert_eq!(
            anonymous_digest(&dist_addr, "team/app", tag)
                .await
                .as_deref(),
            Some(image.as_str()),
            "{tag}"
        );
        assert_eq!(
            manifest(b, "team/app", tag).await.unwrap().0,
            image,
            "{tag}"
        );
    }
    assert!(anonymous_digest(&dist_addr, "team/app-two", "v2")
        .await
        .is_none());
    let statuses: Value = get_json(
        a,
        &format!("/api/v1/replication/status?repository=team/app&digest={image}"),
    )
    .await;
    let statuses = statuses["replicationStatuses"].clone();
    assert!(
        statuses
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["target"] == "dist" && s["status"] == "COMPLETE"),
        "{statuses}"
    );
    // Nothing old yet; a backfill sends it, and only what the rules select.
    assert!(manifest(b, "old/app", "v1").await.is_none());
    let response = admin_client()
        .post(a.url("/api/v1/replication/backfill"))
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert!(answer["tasks"].as_u64().unwrap() >= 1, "{answer}");
    let tasks = settled(a).await;
    assert_eq!(
        (tasks["open"].as_i64(), tasks["failed"].as_i64()),
        (Some(0), Some(0)),
        "{tasks}"
    );
    assert_eq!(manifest(b, "old/app", "v1").await.unwrap().0, old);
    assert!(manifest(b, "scratch/x", "v1").await.is_none());
    assert!(manifest(b, "team/app", "latest").await.is_some());
    // A second backfill finds nothing left to send.
    let again: Value = send_json(Method::POST, a, "/api/v1/replication/backfill", None)
        .await
        .1;
    assert_eq!(again["tasks"], 0);
}

#[tokio::test]
async fn deletes_follow_only_where_a_rule_asks() {
    let (a_reg, b_reg) = pair().await;
    let (a, b) = (server(&a_reg), server(&b_reg));
    let_a_replicate(b).await;
    let rules = json!({"rules": [
        {"destinations": [{"region": "eu-west-1", "registryId": B_ID}],
         "repositoryFilters": [{"filter": "keep", "filterType": "PREFIX_MATCH"}]},
        {"destinations": [{"region": "eu-west-1", "registryId": B_ID}],
         "repositoryFilters": [{"filter": "mirror", "filterType": "PREFIX_MATCH"}],
         "deleteReplication": true},
    ]});
    // ECR's newer models carry deleteReplication; the AWS CLI here predates it, so the REST API.
    let (status, answer) = send_json(Method::PUT, a, "/api/v1/replication", Some(&rules)).await;
    assert_eq!(status, 200, "{answer}");
    let image = e2e::push_test_image(&a_reg, "keep/app", "v1", None);
    for tag in ["v1", "v2", "v3"] {
        e2e::push_test_image(&a_reg, "mirror/app", tag, None);
    }
    assert_eq!(settled(a).await["tasks"], json!([]));
    assert!(manifest(b, "mirror/app", "v3").await.is_some());

    // Deleted at A: a tag through /v2, another through BatchDeleteImage, in both repositories.
    let delete = |repository: &str, tag: &str| {
        admin_client()
            .delete(a.url(&format!("/v2/{repository}/manifests/{tag}")))
            .send()
    };
    assert_eq!(delete("keep/app", "v1").await.unwrap().status(), 202);
    assert_eq!(delete("mirror/app", "v1").await.unwrap().status(), 202);
    aws(
        a,
        &[
            "batch-delete-image",
            "--repository-name",
            "mirror/app",
            "--image-ids",
            "imageTag=v2",
        ],
    )
    .unwrap();
    assert_eq!(settled(a).await["tasks"], json!([]));
    assert!(
        manifest(b, "mirror/app", "v1").await.is_none(),
        "a deleted tag follows"
    );
    assert!(
        manifest(b, "mirror/app", "v2").await.is_none(),
        "an untagged tag follows"
    );
    assert!(
        manifest(b, "mirror/app", "v3").await.is_some(),
        "other tags stay"
    );
    assert_eq!(
        manifest(b, "keep/app", "v1").await.map(|m| m.0),
        Some(image.clone()),
        "no rule asked deletes of keep/ to follow"
    );

    // The last tag goes by BatchDeleteImage, and with it the image: at B too.
    aws(
        a,
        &[
            "batch-delete-image",
            "--repository-name",
            "mirror/app",
            "--image-ids",
            "imageTag=v3",
        ],
    )
    .unwrap();
    assert_eq!(settled(a).await["tasks"], json!([]));
    assert!(manifest(b, "mirror/app", "v3").await.is_none());
    assert!(
        manifest(b, "mirror/app", &image).await.is_none(),
        "the image itself follows"
    );
}

#[tokio::test]
async fn within_one_account_another_region_needs_no_policy() {
    // A and B are one account (000000000000) in two regions; B has no registry policy at all.
    let pg = stack_is_pg_s3();
    let start = |pg: bool, env: &[(&str, &str)]| {
        let mut vars = vec![
            ("BERTH_ADMIN_ACCESS_KEY_ID", KEY),
            ("BERTH_ADMIN_SECRET_ACCESS_KEY", SECRET),
        ];
        vars.extend_from_slice(env);
        if pg {
            TestServer::start_on_pg_s3(&[], &vars)
        } else {
            TestServer::start_on_sqlite_fs(&[], &vars)
        }
    };
    let mut a = start(pg, &[("BERTH_REGISTRY_ID", A_ID)]);
    let trusts = |server: &TestServer, region: &str| {
        json!([{"registry_id": A_ID, "region": region, "url": server.url(""),
                "jwks": server.url("/token/jwks.json")}])
        .to_string()
    };
    let b = start(
        !pg,
        &[
            ("BERTH_REGISTRY_ID", A_ID),
            ("BERTH_REGION", "eu-west-1"),
            ("BERTH_FEDERATION_REGISTRIES", &trusts(&a, "us-east-1")),
            ("BERTH_FEDERATION_JWKS_REFRESH_SECS", "1"),
        ],
    );
    a.set_env(
        "BERTH_FEDERATION_REGISTRIES",
        Some(&trusts(&b, "eu-west-1")),
    );
    a.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&b, "/api/v1/federation/registries").await["registries"][0]["key_ids"]
        .as_array()
        .is_none_or(|k| k.is_empty())
    {
        assert!(Instant::now() < deadline, "B never read A's keys");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a_reg = e2e::Registry::of_server(a);
    let a = server(&a_reg);
    let rules = json!({"rules": [{"destinations": [{"region": "eu-west-1", "registryId": A_ID}]}]})
        .to_string();
    aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &rules,
        ],
    )
    .unwrap();
    // The same account in its own region is this registry itself.
    let itself =
        json!({"rules": [{"destinations": [{"region": "us-east-1", "registryId": A_ID}]}]});
    let error = aws(
        a,
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &itself.to_string(),
        ],
    )
    .unwrap_err();
    assert!(error.contains("itself"), "{error}");

    let image = e2e::push_test_image(&a_reg, "team/app", "v1", None);
    assert_eq!(settled(a).await["tasks"], json!([]));
    assert_eq!(manifest(&b, "team/app", "v1").await.unwrap().0, image);
    assert_eq!(
        replication_status(a, "team/app", &image)["replicationStatuses"],
        json!([{"region": "eu-west-1", "registryId": A_ID, "status": "COMPLETE"}])
    );
}
