//! One Berth in this process for router tests: the app built from a test configuration
//! (embedded SQLite and files in a temp dir) and called with `tower::ServiceExt::oneshot`, no
//! listener, no child process; REST calls with Basic credentials, ECR calls signed as botocore
//! signs them.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use berth::auth::sigv4::{sign, SigV4Request, SigningCredentials};
use berth::config::{Config, Overrides};
use serde_json::{json, Value};
use tower::ServiceExt as _;

pub const ADMIN_PASSWORD: &str = "inprocess-admin-password";
pub const ADMIN_KEY: &str = "AKIAINPROCESSADMIN01";
pub const ADMIN_SECRET: &str = "inprocess/admin/secret/0123456789abcdefgh";
pub const HOST: &str = "registry.test:5000";

/// One Berth, in this process.
pub struct App {
    pub router: axum::Router,
    _dir: tempfile::TempDir,
}

/// A caller: Basic credentials for REST, an access key for ECR.
pub struct Who {
    pub login: (String, String),
    pub key: Option<(String, String)>,
}

pub fn admin() -> Who {
    Who {
        login: ("admin".into(), ADMIN_PASSWORD.into()),
        key: Some((ADMIN_KEY.into(), ADMIN_SECRET.into())),
    }
}

impl App {
    pub async fn start() -> App {
        App::start_with(&[]).await
    }

    /// [`App::start`] with extra configuration (`BERTH_*` variables).
    pub async fn start_with(env: &[(&str, &str)]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        };
        let config = Config::load_from(None, &overrides, |key| {
            match key {
                "BERTH_ADMIN_PASSWORD" => Some(ADMIN_PASSWORD),
                "BERTH_ADMIN_ACCESS_KEY_ID" => Some(ADMIN_KEY),
                "BERTH_ADMIN_SECRET_ACCESS_KEY" => Some(ADMIN_SECRET),
                _ => env.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
            }
            .map(str::to_owned)
        })
        .unwrap();
        let (_state, router) = berth::app::build(config).await.unwrap();
        App { router, _dir: dir }
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A REST call as `who`.
    pub async fn rest(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", who.login.0, who.login.1));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        self.send(request).await
    }

    /// An ECR call as `who`, signed as botocore signs it.
    pub async fn ecr(&self, who: &Who, operation: &str, input: Value) -> (StatusCode, Value) {
        let (key, secret) = who.key.as_ref().expect("an access key");
        let body = input.to_string();
        let headers = vec![
            ("host".to_owned(), HOST.to_owned()),
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            (
                "x-amz-target".to_owned(),
                format!("AmazonEC2ContainerRegistry_V20150921.{operation}"),
            ),
        ];
        let signature = sign(
            &SigV4Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: body.as_bytes(),
            },
            &SigningCredentials {
                access_key_id: key,
                secret_access_key: secret,
                region: "us-east-1",
                service: "ecr",
            },
            chrono::Utc::now(),
        );
        let mut request = Request::builder().method(Method::POST).uri("/");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .header("x-amz-date", signature.amz_date)
            .header("authorization", signature.authorization)
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// A user with `password`, an access key, and (optionally) an identity policy.
    pub async fn user(&self, name: &str, policy: Option<Value>) -> Who {
        let password = format!("{name}-password-1");
        let (status, body) = self
            .rest(
                &admin(),
                Method::POST,
                "/api/v1/users",
                Some(json!({"name": name, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        if let Some(policy) = policy {
            let (status, body) = self
                .rest(
                    &admin(),
                    Method::PUT,
                    &format!("/api/v1/users/{name}/policy"),
                    Some(policy),
                )
                .await;
            assert!(status.is_success(), "{body}");
        }
        let (status, key) = self
            .rest(
                &admin(),
                Method::POST,
                &format!("/api/v1/users/{name}/access-keys"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        Who {
            login: (name.into(), password),
            key: Some((
                key["accessKeyId"].as_str().unwrap().into(),
                key["secretAccessKey"].as_str().unwrap().into(),
            )),
        }
    }
}
