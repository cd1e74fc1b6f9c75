//! One destination repository seen through the OCI Distribution API: login (the token flow
//! with Basic credentials, or Basic alone), HEAD of manifests and blobs, cross-repository
//! mounts, streamed monolithic uploads and manifest PUTs. Every answer is sorted into what the
//! worker does next ([`SendError`]).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::oci::Digest;
use crate::pull_through::upstream::{parse_challenge, send_traced, Challenge};
use crate::storage::ByteStream;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request without a blob body may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an upload may go without progress before it is abandoned (a whole blob may take
/// much longer).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest one login (a token, or the knowledge that Basic is wanted) is reused.
const MAX_LOGIN_REUSE: Duration = Duration::from_secs(60);
/// Past this many remembered logins, expired ones are dropped before another is added.
const MAX_LOGINS: usize = 10_000;

/// Logins remembered across tasks: Authorization by (registry, repository, credential), with
/// when to stop using it.
pub type Logins = dashmap::DashMap<String, (Option<String>, std::time::Instant)>;

/// The most of an error body kept for the reason.
const MAX_REASON: usize = 512;

/// Why sending stopped.
#[derive(Debug)]
pub enum SendError {
    /// The image is gone here.
    Gone(String),
    /// The destination refused the credentials or the policy refused the action.
    Denied(String),
    /// The destination's tag is immutable and names another image.
    TagConflict(String),
    /// The destination refused the request for another reason (a bad manifest, a limit).
    Refused(String),
    /// The destination could not be reached or failed; worth retrying.
    Unavailable(String),
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(IDLE_TIMEOUT)
        // Credentials never follow a redirect to another host.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// A repository at a destination registry, and how to authenticate there.
pub struct Destination {
    http: reqwest::Client,
    base: String,
    repository: String,
    credentials: Option<(String, String)>,
    authorization: tokio::sync::RwLock<Option<String>>,
    /// Whether the login came from [`Logins`] rather than from the registry just now.
    reused: std::sync::atomic::AtomicBool,
}

impl Destination {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        credentials: Option<(String, String)>,
        repository: &str,
    ) -> Destination {
        Destination {
            http,
            base: base.trim_end_matches('/').to_owned(),
            repository: repository.to_owned(),
            credentials,
            authorization: tokio::sync::RwLock::new(None),
            reused: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, password) = self.credentials.as_ref()?;
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ))
    }

    /// Answers the registry's challenge once: a Bearer token for pull, push and delete on the
    /// repository (a token service grants what its policies allow and drops the rest), or
    /// Basic. What one task learnt serves the next ones to the same repository with the same
    /// credentials for [`MAX_LOGIN_REUSE`] (never past the token's own expiry): a burst of
    /// pushes then costs one token, not one per image.
    pub async fn login(&self, logins: &Logins) -> Result<(), SendError> {
        let key = self.login_key();
        if let Some(entry) = logins.get(&key) {
            if entry.1 > std::time::Instant::now() {
                *self.authorization.write().await = entry.0.clone();
                self.reused
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
        }
        let (authorization, lifetime) = self.challenge().await?;
        if logins.len() >= MAX_LOGINS {
            let now = std::time::Instant::now();
            logins.retain(|_, v| v.1 > now);
        }
        logins.insert(
            key,
            (
                authorization.clone(),
                std::time::Instant::now() + lifetime.min(MAX_LOGIN_REUSE),
            ),
        );
        *self.authorization.write().await = authorization;
        Ok(())
    }

    fn login_key(&self) -> String {
        let user = self.credentials.as_ref().map_or("", |c| c.0.as_str());
        format!("{} {} {user}", self.base, self.repository)
    }

    /// Whether this destination's login was remembered from an earlier task.
    pub fn reused_login(&self) -> bool {
        self.reused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets the remembered login, so the next task logs in afresh.
    pub fn forget_login(&self, logins: &Logins) {
        logins.remove(&self.login_key());
    }

    /// What the registry's `/v2/` asks for: (the Authorization to send, how long it lasts).
    async fn challenge(&self) -> Result<(Option<String>, Duration), SendError> {
        let response = send_traced(
            self.http
                .get(format!("{}/v2/", self.base))
                .timeout(REQUEST_TIMEOUT),
        )
        .await
        .map_err(unreachable)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return match response.status() {
                s if s.is_success() => Ok((None, MAX_LOGIN_REUSE)),
                _ => Err(judge(response, "GET /v2/").await),
            };
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        match challenge {
            Some(Challenge::Basic) | None => {
                let basic = self.basic().ok_or_else(|| {
                    SendError::Denied(
                        "the destination asks for credentials and none are configured".into(),
                    )
                })?;
                Ok((Some(basic), MAX_LOGIN_REUSE))
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let (token, lifetime) = self.token(&realm, service.as_deref()).await?;
                Ok((Some(format!("Bearer {token}")), lifetime))
            }
        }
    }

    /// A token for the repository, and how long to use it (its `expires_in` less a margin).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(String, Duration), SendError> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| SendError::Refused(format!("token realm {realm:?}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair(
                "scope",
                &format!("repository:{}:pull,push,delete", self.repository),
            );
        }
        let mut request = self.http.get(url).timeout(REQUEST_TIMEOUT);
        if let Some(basic) = self.basic() {
            request = request.header(AUTHORIZATION, basic);
        }
        let response = send_traced(request).await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(judge(response, "the token endpoint").await);
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| SendError::Unavailable(format!("token response: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| SendError::Refused("the token response has no token".into()))?;
        // 60 s is the token specification's default lifetime.
        let expires_in = body["expires_in"].as_u64().unwrap_or(60);
        Ok((token, Duration::from_secs(expires_in.saturating_sub(15))))
    }

    async fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(authorization) = self.authorization.read().await.as_ref() {
            request = request.header(AUTHORIZATION, authorization);
        }
        request
    }

    async fn exists(&self, path: &str) -> Result<bool, SendError> {
        let response = send_traced(
            self.request(Method::HEAD, path)
                .await
                .header(
                    reqwest::header::ACCEPT,
                    crate::pull_through::upstream::MANIFEST_ACCEPT,
                )
                .timeout(REQUEST_TIMEOUT),
        )
        .await
        .map_err(unreachable)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            // A HEAD answer has no body to say why: say what a Berth destination needs.
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Err(SendError::Denied(format!(
                    "HEAD {path}: the destination answered {s}; its registry policy must allow \
                     this registry's root ecr:ReplicateImage (and ecr:CreateRepository for new \
                     repositories)"
                )))
            }
            _ => Err(judge(response, &format!("HEAD {path}")).await),
        }
    }

    pub async fn has_manifest(&self, digest: &Digest) -> Result<bool, SendError> {
        self.exists(&format!("/v2/{}/manifests/{digest}", self.repository))
            .await
    }

    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, SendError> {
        self.exists(&format!("/v2/{}/blobs/{digest}", self.repository))
            .await
    }

    /// Offers the blob as a mount (the destination may take it from any repository it holds
    /// it in): `None` when mounted, else the upload session it started instead.
    pub async fn mount_or_start(&self, digest: &Digest) -> Result<Option<String>, SendError> {
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}", self.repository);
        let response = send_traced(
            self.request(Method::POST, &path)
                .await
                .header(CONTENT_LENGTH, 0)
                .timeout(REQUEST_TIMEOUT),
        )
        .await
        .map_err(unreachable)?;
        match response.status() {
            StatusCode::CREATED => Ok(None),
            StatusCode::ACCEPTED => {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        SendError::Refused("an upload started without a Location".into())
                    })?;
                Ok(Some(self.absolute(location)))
            }
            _ => Err(judge(response, &format!("POST {path}")).await),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Finishes the upload session at `location` with the whole blob in one streamed PUT.
    pub async fn upload(
        &self,
        location: &str,
        digest: &Digest,
        size: u64,
        stream: ByteStream,
    ) -> Result<(), SendError> {
        let mut url = reqwest::Url::parse(location)
            .map_err(|e| SendError::Refused(format!("upload location {location:?}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut request = self.http.put(url);
        if let Some(authorization) = self.authorization.read().await.as_ref() {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = send_traced(
            request
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await
        .map_err(unreachable)?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            _ => Err(judge(response, &format!("PUT of blob {digest}")).await),
        }
    }

    /// PUT of a manifest by digest or tag.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        content: bytes::Bytes,
    ) -> Result<(), SendError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let response = send_traced(
            self.request(Method::PUT, &path)
                .await
                .header(CONTENT_TYPE, media_type)
                .timeout(REQUEST_TIMEOUT)
                .body(content),
        )
        .await
        .map_err(unreachable)?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            _ => Err(judge(response, &format!("PUT {path}")).await),
        }
    }
}

impl Destination {
    /// DELETE of a manifest by digest or of a tag; one already gone counts as deleted.
    pub async fn delete_manifest(&self, reference: &str) -> Result<(), SendError> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let response = send_traced(
            self.request(Method::DELETE, &path)
                .await
                .timeout(REQUEST_TIMEOUT),
        )
        .await
        .map_err(unreachable)?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(judge(response, &format!("DELETE {path}")).await),
        }
    }
}

fn unreachable(e: reqwest::Error) -> SendError {
    SendError::Unavailable(format!("the destination could not be reached: {e}"))
}

/// Sorts an unexpected answer: refusals of the caller (401, 403) and conflicts end the task,
/// the destination's own failures and throttling are retried.
async fn judge(response: reqwest::Response, what: &str) -> SendError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let detail: String = body.chars().take(MAX_REASON).collect();
    let reason = format!("{what}: the destination answered {status}: {detail}");
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => SendError::Denied(reason),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            SendError::Unavailable(reason)
        }
        s if s.is_server_error() => SendError::Unavailable(reason),
        _ if body.contains("TAG_INVALID") || body.to_lowercase().contains("immutable") => {
            SendError::TagConflict(reason)
        }
        _ => SendError::Refused(reason),
    }
}
