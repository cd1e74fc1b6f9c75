//! Fast in-process checks of the router: the app built from a test configuration (embedded
//! SQLite and files in a temp dir) and called with `tower::ServiceExt::oneshot`, no listener, no
//! child process. They show what both management doors share: the same operation answers the
//! ECR API and the REST API alike (shapes, pagination, side effects), the gate decides before
//! anything is validated, and refusals read the same. The real-process and real-client suites
//! show everything that needs a socket.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::router::{admin, App, HOST};

fn allow(actions: &[&str], resource: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]
    })
}

#[tokio::test]
async fn both_doors_create_and_describe_the_same_repository() {
    let app = App::start().await;
    let (status, by_ecr) = app
        .ecr(
            &admin(),
            "CreateRepository",
            json!({"repositoryName": "team/a"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_ecr}");
    let (status, by_rest) = app
        .rest(
            &admin(),
            Method::POST,
            "/api/v1/repositories",
            Some(json!({"repositoryName": "team/b"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_rest}");
    // `name` is still accepted for repositoryName.
    let (status, body) = app
        .rest(
            &admin(),
            Method::POST,
            "/api/v1/repositories",
            Some(json!({"name": "team/c"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // One serialisation: the repository each door describes is the same object.
    let (_, described) = app
        .ecr(
            &admin(),
            "DescribeRepositories",
            json!({"repositoryNames": ["team/b"]}),
        )
        .await;
    let (status, rest_b) = app
        .rest(&admin(), Method::GET, "/api/v1/repositories/team/b", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(described["repositories"][0], rest_b);
    assert_eq!(by_rest, rest_b);
    let mut ecr_a = by_ecr["repository"].clone();
    ecr_a["repositoryName"] = json!("team/b");
    for field in ["repositoryArn", "repositoryUri", "createdAt"] {
        ecr_a[field] = rest_b[field].clone();
    }
    assert_eq!(ecr_a, rest_b, "the same members, encoded the same way");
    assert_eq!(rest_b["repositoryUri"], format!("{HOST}/team/b"));
    assert!(
        rest_b["createdAt"].is_f64(),
        "epoch seconds, as ECR: {rest_b}"
    );
    assert_eq!(
        rest_b["encryptionConfiguration"]["encryptionType"],
        "AES256"
    );

    // The same refusal for the same mistake.
    let (status, ecr_dup) = app
        .ecr(
            &admin(),
            "CreateRepository",
            json!({"repositoryName": "team/b"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ecr_dup["__type"], "RepositoryAlreadyExistsException");
    let (status, rest_dup) = app
        .rest(
            &admin(),
            Method::POST,
            "/api/v1/repositories",
            Some(json!({"repositoryName": "team/a"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(rest_dup["errors"][0]["code"], "ALREADY_EXISTS");
    assert_eq!(
        rest_dup["errors"][0]["message"],
        ecr_dup["message"]
            .as_str()
            .unwrap()
            .replace("team/b", "team/a")
    );
}

#[tokio::test]
async fn listings_fill_their_pages_with_what_the_caller_may_see_through_every_door() {
    let app = App::start().await;
    for name in ["a/1", "b/2", "a/3", "b/4", "a/5", "b/6", "a/7"] {
        let (status, body) = app
            .ecr(
                &admin(),
                "CreateRepository",
                json!({"repositoryName": name}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let reader = app
        .user(
            "reader",
            Some(allow(
                &["ecr:DescribeRepositories", "ecr:BatchGetImage"],
                "arn:aws:ecr:us-east-1:000000000000:repository/a/*",
            )),
        )
        .await;

    // REST, one per page: every page is full, and `next` leads through exactly a/1, a/3, ...
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(next) => format!("/api/v1/repositories?limit=1&after={next}"),
            None => "/api/v1/repositories?limit=1".to_owned(),
        };
        let (status, page) = app.rest(&reader, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let names: Vec<String> = page["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repositoryName"].as_str().unwrap().to_owned())
            .collect();
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(names.len(), 1, "a page with a next token is full: {page}");
                after = Some(next.to_owned());
            }
            None => {
                seen.extend(names);
                break;
            }
        }
        seen.extend(names);
    }
    assert_eq!(seen, ["a/1", "a/3", "a/5", "a/7"]);

    // ECR, two per page: the same repositories, pages full.
    let mut ecr_seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({"maxResults": 2});
        if let Some(t) = &token {
            input["nextToken"] = json!(t);
        }
        let (status, page) = app.ecr(&reader, "DescribeRepositories", input).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let repositories = page["repositories"].as_array().unwrap();
        ecr_seen.extend(
            repositories
                .iter()
                .map(|r| r["repositoryName"].as_str().unwrap().to_owned()),
        );
        match page["nextToken"].as_str() {
            Some(t) => {
                assert_eq!(repositories.len(), 2, "{page}");
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(ecr_seen, seen);

    // /v2/_catalog, the OCI listing, shows the same repositories.
    let basic = base64::engine::general_purpose::STANDARD.encode("reader:reader-password-1");
    let request = Request::builder()
        .uri("/v2/_catalog?n=3")
        .header("host", HOST)
        .header("authorization", format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    let (status, catalog) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(catalog["repositories"], json!(["a/1", "a/3", "a/5"]));
}

#[tokio::test]
async fn deleting_a_repository_forgets_its_policy_through_either_door() {
    let app = App::start().await;
    let outsider = app.user("outsider", None).await;
    let grant = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OutsiderMayDescribe",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::000000000000:user/outsider"},
            "Action": ["ecr:DescribeRepositories"]
        }]
    });
    for (door, name) in [("ecr", "gone/by-ecr"), ("rest", "gone/by-rest")] {
        let (status, body) = app
            .ecr(
                &admin(),
                "CreateRepository",
                json!({"repositoryName": name}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app
            .ecr(
                &admin(),
                "SetRepositoryPolicy",
                json!({"repositoryName": name, "policyText": grant.to_string()}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let path = format!("/api/v1/repositories/{name}");
        let (status, _) = app.rest(&outsider, Method::GET, &path, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{door}: the policy lets the outsider describe it"
        );

        match door {
            "ecr" => {
                let (status, body) = app
                    .ecr(
                        &admin(),
                        "DeleteRepository",
                        json!({"repositoryName": name}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            _ => {
                let (status, body) = app.rest(&admin(), Method::DELETE, &path, None).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }
        // A new repository of the same name starts without the old policy, at once.
        let (status, body) = app
            .ecr(
                &admin(),
                "CreateRepository",
                json!({"repositoryName": name}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = app.rest(&outsider, Method::GET, &path, None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{door}: the old policy is gone"
        );
        let (status, body) = app
            .ecr(
                &admin(),
                "GetRepositoryPolicy",
                json!({"repositoryName": name}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["__type"], "RepositoryPolicyNotFoundException",
            "{door}"
        );
    }
}

#[tokio::test]
async fn the_gate_decides_before_the_request_is_validated_and_refuses_alike() {
    let app = App::start().await;
    let nobody = app.user("nobody", None).await;
    // A caller who may not create repositories learns nothing from an invalid name.
    let (status, ecr) = app
        .ecr(
            &nobody,
            "CreateRepository",
            json!({"repositoryName": "Bad Name!"}),
        )
        .await;
    assert_eq!(
        (status, ecr["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("AccessDeniedException"))
    );
    let (status, rest) = app
        .rest(
            &nobody,
            Method::POST,
            "/api/v1/repositories",
            Some(json!({"repositoryName": "Bad Name!"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{rest}");
    assert_eq!(rest["errors"][0]["code"], "DENIED");
    // One deny message, whichever door.
    assert_eq!(rest["errors"][0]["message"], ecr["message"]);
    let message = ecr["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "User: arn:aws:iam::000000000000:user/nobody is not authorized to perform: ecr:CreateRepository on resource: arn:aws:ecr:us-east-1:000000000000:repository/Bad Name!"
        ),
        "{message}"
    );

    // An allowed caller gets the validation error, the same way through both doors.
    let (status, ecr) = app
        .ecr(
            &admin(),
            "CreateRepository",
            json!({"repositoryName": "Bad Name!"}),
        )
        .await;
    assert_eq!(
        (status, ecr["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidParameterException"))
    );
    let (status, rest) = app
        .rest(
            &admin(),
            Method::POST,
            "/api/v1/repositories",
            Some(json!({"repositoryName": "Bad Name!"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(rest["errors"][0]["code"], "NAME_INVALID");
    assert_eq!(rest["errors"][0]["message"], ecr["message"]);
}
