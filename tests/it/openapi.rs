//! The admin API's OpenAPI document, generated from the Rust types: it is valid OpenAPI 3.1 (by
//! PyPI's `openapi-spec-validator`, the specification's own schema), and it tells the truth: a
//! scenario calls every documented route through the router and checks each answer against the
//! schema the document gives that route and status (JSON Schema 2020-12, with the `jsonschema`
//! crate), and fails if a route was left out.

use std::collections::BTreeSet;
use std::process::Command;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::api::sha256_digest;
use crate::support::common::venv;
use crate::support::router::{admin, App, ADMIN_PASSWORD, HOST};

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = berth::http::admin::openapi_document();
    assert_eq!(document["openapi"], "3.1.0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let python = venv().join("bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run tests/install-clients.sh",
                python.display()
            )
        });
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "the document is not valid OpenAPI 3.1:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Calls the router with documented routes and holds every answer against the document.
struct Scenario {
    app: App,
    document: Value,
    /// (method, documented path) of every call made.
    called: BTreeSet<(String, String)>,
}

impl Scenario {
    /// Calls `method path` (a documented path, its `{params}` filled from `params`, plus
    /// `query`) as the administrator; the answer must be a success and match its schema.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        query: &str,
        body: Option<Value>,
    ) -> Value {
        let mut concrete = path.to_owned();
        for (name, value) in params {
            concrete = concrete.replace(&format!("{{{name}}}"), value);
        }
        assert!(!concrete.contains('{'), "unfilled parameter in {concrete}");
        if !query.is_empty() {
            concrete = format!("{concrete}?{query}");
        }
        let (status, answer) = self
            .app
            .rest(&admin(), method.clone(), &concrete, body)
            .await;
        assert!(
            status.is_success(),
            "{method} {concrete}: {status} {answer}"
        );
        self.check(&method, path, status, &answer);
        self.called
            .insert((method.as_str().to_lowercase(), path.to_owned()));
        answer
    }

    /// The answer against the schema the document gives (method, path, status).
    fn check(&self, method: &Method, path: &str, status: StatusCode, answer: &Value) {
        let errors = self.mismatches(method, path, status, answer);
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: the answer does not match its schema:\n{}\nanswer: {answer}",
            errors.join("\n")
        );
    }

    /// Where `answer` departs from the schema of (method, path, status).
    fn mismatches(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        answer: &Value,
    ) -> Vec<String> {
        let operation = &self.document["paths"][path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let response = &operation["responses"][status.as_str()];
        assert!(
            response.is_object(),
            "{method} {path}: status {status} is not documented"
        );
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return match answer {
                Value::Null => Vec::new(),
                _ => vec!["an answer where the document says none".into()],
            };
        };
        // The schema, with the document's components beside it so that its references
        // (`#/components/schemas/...`) resolve.
        let mut root = schema.clone();
        root["components"] = self.document["components"].clone();
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        let validator = jsonschema::validator_for(&root)
            .unwrap_or_else(|e| panic!("{method} {path}: the schema does not compile: {e}"));
        validator
            .iter_errors(answer)
            .map(|e| format!("{schema}: {e} at {}", e.instance_path))
            .collect()
    }

    /// An account's identity policy (attached and read) and an access key (made, listed,
    /// deactivated, deleted): the same routes under `/api/v1/users` and `/api/v1/robots`.
    async fn policy_and_keys(&mut self, collection: &str, name: &str) {
        let account = [("name", name)];
        let path = |tail: &str| format!("/api/v1/{collection}/{{name}}{tail}");
        self.call(
            Method::PUT,
            &path("/policy"),
            &account,
            "",
            Some(allow_all()),
        )
        .await;
        self.call(Method::GET, &path("/policy"), &account, "", None)
            .await;
        let key = self
            .call(Method::POST, &path("/access-keys"), &account, "", None)
            .await;
        let key_id = key["accessKeyId"].as_str().unwrap().to_owned();
        let key = [("name", name), ("key_id", key_id.as_str())];
        self.call(Method::GET, &path("/access-keys"), &account, "", None)
            .await;
        let inactive = Some(json!({"status": "Inactive"}));
        self.call(
            Method::PUT,
            &path("/access-keys/{key_id}"),
            &key,
            "",
            inactive,
        )
        .await;
        self.call(
            Method::DELETE,
            &path("/access-keys/{key_id}"),
            &key,
            "",
            None,
        )
        .await;
    }

    /// Pushes a one-layer image `repository:tag` through `/v2` as the administrator.
    async fn push_image(&self, repository: &str, tag: &str) {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"a layer of the scenario's image";
        for blob in [&config[..], &layer[..]] {
            let digest = sha256_digest(blob);
            let request = self
                .v2(Method::POST)
                .uri(format!("/v2/{repository}/blobs/uploads/?digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(Body::from(blob.to_vec()))
                .unwrap();
            let (status, answer) = self.app.send(request).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256_digest(config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256_digest(layer), "size": layer.len()}],
        });
        let request = self
            .v2(Method::PUT)
            .uri(format!("/v2/{repository}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(Body::from(manifest.to_string()))
            .unwrap();
        let (status, answer) = self.app.send(request).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    fn v2(&self, method: Method) -> axum::http::request::Builder {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
        Request::builder()
            .method(method)
            .header("host", HOST)
            .header("authorization", format!("Basic {basic}"))
    }
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": "Allow", "Action": ["ecr:BatchGetImage"], "Resource": "*"}]})
}

#[tokio::test]
async fn every_rest_answer_matches_its_schema() {
    use Method as M;
    // One trusted registry, for the federation routes (its JWKS need not be readable).
    let trusted = json!([{"registry_id": "111111111111", "region": "eu-west-1",
        "url": "https://b.example", "jwks": "/nonexistent/jwks.json"}])
    .to_string();
    let app = App::start_with(&[("BERTH_FEDERATION_REGISTRIES", &trusted)]).await;
    let mut s = Scenario {
        app,
        document: berth::http::admin::openapi_document(),
        called: BTreeSet::new(),
    };
    let alice = [("name", "alice")];
    let ci = [("name", "ci")];
    let devs = [("name", "devs")];
    let repo = [("name", "team/app")];

    s.call(M::GET, "/api/v1/openapi.json", &[], "", None).await;

    // users
    s.call(
        M::POST,
        "/api/v1/users",
        &[],
        "",
        Some(json!({"name": "alice", "password": "alice-password-1"})),
    )
    .await;
    s.call(M::GET, "/api/v1/users", &[], "", None).await;
    s.call(M::GET, "/api/v1/users/{name}", &alice, "", None)
        .await;
    s.call(
        M::PUT,
        "/api/v1/users/{name}/password",
        &alice,
        "",
        Some(json!({"password": "alice-password-2"})),
    )
    .await;
    s.policy_and_keys("users", "alice").await;

    // robot accounts
    s.call(
        M::POST,
        "/api/v1/robots",
        &[],
        "",
        Some(json!({"name": "ci"})),
    )
    .await;
    s.call(M::GET, "/api/v1/robots", &[], "", None).await;
    s.call(M::GET, "/api/v1/robots/{name}", &ci, "", None).await;
    s.call(M::POST, "/api/v1/robots/{name}/secret", &ci, "", None)
        .await;
    s.policy_and_keys("robots", "ci").await;

    // groups
    s.call(
        M::POST,
        "/api/v1/groups",
        &[],
        "",
        Some(json!({"name": "devs"})),
    )
    .await;
    s.call(M::GET, "/api/v1/groups", &[], "", None).await;
    s.call(M::GET, "/api/v1/groups/{name}", &devs, "", None)
        .await;
    s.call(
        M::POST,
        "/api/v1/groups/{name}/members",
        &devs,
        "",
        Some(json!({"member": "alice"})),
    )
    .await;
    s.call(
        M::PUT,
        "/api/v1/groups/{name}/policy",
        &devs,
        "",
        Some(allow_all()),
    )
    .await;
    s.call(M::GET, "/api/v1/groups/{name}/policy", &devs, "", None)
        .await;
    s.call(
        M::DELETE,
        "/api/v1/groups/{name}/members/{member}",
        &[("name", "devs"), ("member", "alice")],
        "",
        None,
    )
    .await;

    // repositories and their policies
    s.call(
        M::POST,
        "/api/v1/repositories",
        &[],
        "",
        Some(json!({"repositoryName": "team/app"})),
    )
    .await;
    s.call(M::GET, "/api/v1/repositories", &[], "limit=10", None)
        .await;
    s.call(
        M::GET,
        "/api/v1/repository-summaries",
        &[],
        "prefix=team/&maxResults=10",
        None,
    )
    .await;
    s.call(M::GET, "/api/v1/repositories/{name}", &repo, "", None)
        .await;
    s.call(M::PUT, "/api/v1/repositories/{name}/tag-mutability", &repo, "",
        Some(json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                    "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}]}))).await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/tag-mutability",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::PUT,
        "/api/v1/repository-policies/{name}",
        &repo,
        "",
        Some(
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "pull", "Effect": "Allow",
            "Principal": "*", "Action": ["ecr:BatchGetImage"]}]}),
        ),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repository-policies/{name}",
        &repo,
        "",
        None,
    )
    .await;

    // an image, scanned and expired
    s.push_image("team/app", "v1").await;
    s.call(
        M::PUT,
        "/api/v1/repositories/{name}/scanning-configuration",
        &repo,
        "",
        Some(json!({"scanOnPush": true})),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/scanning-configuration",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::PUT,
        "/api/v1/repositories/{name}/pull-gate",
        &repo,
        "",
        Some(json!({"severityThreshold": "CRITICAL", "allowUnscanned": true})),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/pull-gate",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/repositories/{name}/image-scans",
        &repo,
        "",
        Some(json!({"imageTag": "v1"})),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/scan-findings",
        &repo,
        "imageTag=v1",
        None,
    )
    .await;
    s.call(
        M::PUT,
        "/api/v1/registry/scanning-configuration",
        &[],
        "",
        Some(
            json!({"scanType": "BASIC", "rules": [{"scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": "team/*", "filterType": "WILDCARD"}]}]}),
        ),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/registry/scanning-configuration",
        &[],
        "",
        None,
    )
    .await;
    s.call(M::PUT, "/api/v1/repositories/{name}/lifecycle-policy", &repo, "",
        Some(json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
            "countType": "imageCountMoreThan", "countNumber": 1000}, "action": {"type": "expire"}}]}))).await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/lifecycle-policy",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/repositories/{name}/lifecycle/preview",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repositories/{name}/lifecycle/preview",
        &repo,
        "limit=10",
        None,
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/repositories/{name}/lifecycle/evaluate",
        &repo,
        "limit=10",
        None,
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/repositories/{name}/lifecycle/run",
        &repo,
        "",
        None,
    )
    .await;
    s.call(M::GET, "/api/v1/lifecycle/audit", &[], "", None)
        .await;
    s.call(M::GET, "/api/v1/events", &[], "", None).await;

    // event rules (a webhook nobody listens on: deliveries stay pending, which is fine here)
    let rule = [("name", "deploys")];
    let hook = json!({"id": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                      "secret": "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=",
                      "headers": {"X-Team": "platform"}});
    s.call(
        M::POST,
        "/api/v1/event-rules",
        &[],
        "",
        Some(json!({"name": "deploys", "description": "pushes",
                    "eventPattern": {"source": ["aws.ecr"], "detail": {"action-type": ["PUSH"]}},
                    "targets": [hook]})),
    )
    .await;
    s.call(M::GET, "/api/v1/event-rules", &[], "", None).await;
    s.call(M::GET, "/api/v1/event-rules/{name}", &rule, "", None)
        .await;
    s.call(
        M::PUT,
        "/api/v1/event-rules/{name}",
        &rule,
        "",
        Some(
            json!({"eventPattern": {"detail-type": ["ECR Image Action"]},
                    "targets": [{"id": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                                 "secret": "<redacted>", "headers": {"X-Team": "<redacted>"},
                                 "format": "cloudevents"}]}),
        ),
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/event-rules/{name}/test",
        &rule,
        "",
        Some(json!({})),
    )
    .await;
    s.call(M::GET, "/api/v1/event-rules/{name}/status", &rule, "", None)
        .await;
    s.call(
        M::GET,
        "/api/v1/event-rules/{name}/dead-letters",
        &rule,
        "limit=10",
        None,
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/event-rules/{name}/redrive",
        &rule,
        "",
        Some(json!({"target": "hook"})),
    )
    .await;
    s.call(M::DELETE, "/api/v1/event-rules/{name}", &rule, "", None)
        .await;

    // repository creation templates
    let prod = [("prefix", "prod/team")];
    s.call(
        M::POST,
        "/api/v1/repository-creation-templates",
        &[],
        "",
        Some(
            json!({"prefix": "prod/team", "appliedFor": ["CREATE_ON_PUSH"],
                    "imageTagMutability": "IMMUTABLE", "description": "production"}),
        ),
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repository-creation-templates",
        &[],
        "",
        None,
    )
    .await;
    s.call(
        M::GET,
        "/api/v1/repository-creation-templates/{prefix}",
        &prod,
        "",
        None,
    )
    .await;
    s.call(
        M::PUT,
        "/api/v1/repository-creation-templates/{prefix}",
        &prod,
        "",
        Some(json!({"description": "production images"})),
    )
    .await;
    s.call(
        M::DELETE,
        "/api/v1/repository-creation-templates/{prefix}",
        &prod,
        "",
        None,
    )
    .await;

    // pull-through cache rules (nothing listens on the upstream's port: validation says so)
    let hub = [("prefix", "hub")];
    s.call(
        M::POST,
        "/api/v1/pull-through-rules",
        &[],
        "",
        Some(json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "http://127.0.0.1:9"})),
    )
    .await;
    s.call(M::GET, "/api/v1/pull-through-rules", &[], "", None)
        .await;
    s.call(
        M::GET,
        "/api/v1/pull-through-rules/{prefix}",
        &hub,
        "",
        None,
    )
    .await;
    let validated = s
        .call(
            M::GET,
            "/api/v1/pull-through-rules/{prefix}",
            &hub,
            "validate=true",
            None,
        )
        .await;
    assert_eq!(validated["isValid"], false, "{validated}");
    s.call(
        M::PUT,
        "/api/v1/pull-through-rules/{prefix}",
        &hub,
        "",
        Some(json!({"revalidateSecs": 60})),
    )
    .await;
    s.call(
        M::DELETE,
        "/api/v1/pull-through-rules/{prefix}",
        &hub,
        "",
        None,
    )
    .await;

    // the registry policy, settings, the simulator, keys, audit, GC
    s.call(M::PUT, "/api/v1/registry-policy", &[], "",
        Some(json!({"Version": "2012-10-17", "Statement": [{"Sid": "r", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": ["ecr:ReplicateImage"],
            "Resource": "*"}]}))).await;
    s.call(M::GET, "/api/v1/registry-policy", &[], "", None)
        .await;
    s.call(M::DELETE, "/api/v1/registry-policy", &[], "", None)
        .await;
    s.call(M::GET, "/api/v1/settings", &[], "", None).await;
    s.call(
        M::PUT,
        "/api/v1/settings",
        &[],
        "",
        Some(json!({"createOnPush": true})),
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/policy-simulator",
        &[],
        "",
        Some(
            json!({"principal": "alice", "action": "ecr:BatchGetImage", "repository": "team/app"}),
        ),
    )
    .await;
    s.call(M::GET, "/api/v1/signing-keys", &[], "", None).await;
    s.call(M::GET, "/api/v1/federation/registries", &[], "", None)
        .await;
    let replication = json!({"rules": [{"destinations": [{"region": "eu-west-1",
        "registryId": "111111111111"}], "repositoryFilters": [{"filter": "team",
        "filterType": "PREFIX_MATCH"}]}]});
    s.call(M::PUT, "/api/v1/replication", &[], "", Some(replication))
        .await;
    s.call(M::GET, "/api/v1/replication", &[], "", None).await;
    s.call(M::GET, "/api/v1/replication/tasks", &[], "limit=10", None)
        .await;
    s.call(
        M::GET,
        "/api/v1/replication/status",
        &[],
        "repository=team/app&tag=v1",
        None,
    )
    .await;
    s.call(M::POST, "/api/v1/replication/backfill", &[], "", None)
        .await;
    s.call(
        M::POST,
        "/api/v1/replication/retry",
        &[],
        "",
        Some(json!({"repository": "team/app"})),
    )
    .await;
    s.call(
        M::POST,
        "/api/v1/federation/passwords",
        &[],
        "",
        Some(json!({"registry_id": "111111111111"})),
    )
    .await;
    s.call(M::POST, "/api/v1/signing-keys/rotate", &[], "", None)
        .await;
    s.call(M::GET, "/api/v1/audit", &[], "limit=5", None).await;
    s.call(
        M::GET,
        "/api/v1/audit",
        &[],
        "limit=5&principal=admin&action=berth%3AListUsers&resource=users&outcome=success&since=2020-01-01T00%3A00%3A00Z&until=2999-01-01T00%3A00%3A00Z",
        None,
    )
    .await;
    s.call(M::GET, "/api/v1/gc", &[], "", None).await;

    // deleting what was made
    s.call(
        M::DELETE,
        "/api/v1/repositories/{name}/pull-gate",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::DELETE,
        "/api/v1/repositories/{name}/lifecycle-policy",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::DELETE,
        "/api/v1/repository-policies/{name}",
        &repo,
        "",
        None,
    )
    .await;
    s.call(
        M::DELETE,
        "/api/v1/repositories/{name}",
        &repo,
        "force=true",
        None,
    )
    .await;
    s.call(M::DELETE, "/api/v1/groups/{name}/policy", &devs, "", None)
        .await;
    s.call(M::DELETE, "/api/v1/groups/{name}", &devs, "", None)
        .await;
    s.call(M::DELETE, "/api/v1/robots/{name}/policy", &ci, "", None)
        .await;
    s.call(M::DELETE, "/api/v1/robots/{name}", &ci, "", None)
        .await;
    s.call(M::DELETE, "/api/v1/users/{name}/policy", &alice, "", None)
        .await;
    s.call(M::DELETE, "/api/v1/users/{name}", &alice, "", None)
        .await;

    // The check bites: an account without its required members, or with a number for a name.
    for wrong in [
        json!({"name": "alice"}),
        json!({"name": 5, "loginName": "alice", "arn": "a",
        "createdAt": "2026-01-01T00:00:00Z", "groups": []}),
    ] {
        assert!(
            !s.mismatches(&M::GET, "/api/v1/users/{name}", StatusCode::OK, &wrong)
                .is_empty(),
            "{wrong} passed as an account"
        );
    }

    // Refusals match the error schema too.
    let (status, answer) = s
        .app
        .rest(&admin(), M::GET, "/api/v1/users/nobody", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.check(&M::GET, "/api/v1/users/{name}", status, &answer);

    let documented: BTreeSet<(String, String)> = s.document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .unwrap()
                .keys()
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let missed: Vec<_> = documented.difference(&s.called).collect();
    assert!(
        missed.is_empty(),
        "documented routes the scenario never called: {missed:?}"
    );
}
