//! The client Berth pulls from upstream registries with: the Docker token flow (anonymous or
//! with credentials) and Basic, tokens cached per scope until they expire, `Retry-After`
//! honoured by not calling a throttled upstream again before it allows, bounded manifest reads,
//! and redirects (to blob storage or a CDN) followed without our credentials.
//!
//! Requests go only to a rule's upstream, to the token realm its challenge names, and to the
//! hosts its redirects name; credentials go only to the upstream itself (Basic) and to its realm.
//! Each request is a client span of the current trace ([`send_traced`], which replication's
//! client uses too), and carries the trace context (`traceparent`) to the other registry.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::policy::pull_through::Upstream;

/// Manifest media types Berth asks upstreams for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Past this many cached tokens, expired ones are dropped before another is added.
const MAX_CACHED_TOKENS: usize = 10_000;
/// How long a throttled upstream is left alone when it gives no `Retry-After`.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` Berth waits out (a bad value must not silence an upstream for days).
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Credentials for an upstream (from the configured secrets).
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, ***)", self.username)
    }
}

/// Why an upstream request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamError {
    /// The upstream answered with this status (`detail`: the start of its error body).
    Status { status: u16, detail: String },
    /// Throttled (429 now, or earlier and still waiting); retry after this many seconds.
    Throttled { retry_after_secs: u64 },
    /// No answer: connection refused, timeout, TLS, a body cut short.
    Transport(String),
    /// The upstream's answer made no sense (a token response without a token, ...).
    Invalid(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Status { status, detail } if detail.is_empty() => {
                write!(f, "answered {status}")
            }
            UpstreamError::Status { status, detail } => write!(f, "answered {status}: {detail}"),
            UpstreamError::Throttled { retry_after_secs } => {
                write!(
                    f,
                    "is throttling us (429); retry after {retry_after_secs} s"
                )
            }
            UpstreamError::Transport(e) => write!(f, "could not be reached: {e}"),
            UpstreamError::Invalid(e) => write!(f, "gave an invalid answer: {e}"),
        }
    }
}

/// A manifest as the upstream serves it.
pub struct UpstreamManifest {
    pub content: bytes::Bytes,
    pub media_type: String,
    /// `Docker-Content-Digest`, when the upstream sent one.
    pub digest: Option<String>,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// Parses the first usable challenge of a `WWW-Authenticate` value.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = std::collections::HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), val.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The upstream client; one per process, shared by every rule.
pub struct UpstreamClient {
    http: reqwest::Client,
    timeout: Duration,
    /// Bearer tokens by (upstream, scope), with their expiry.
    tokens: DashMap<(String, String), (String, Instant)>,
    /// Upstreams that asked us to wait (429 `Retry-After`), until when.
    throttled: DashMap<String, Instant>,
}

impl UpstreamClient {
    pub fn new(timeout: Duration) -> UpstreamClient {
        // reqwest drops `Authorization` when a redirect leaves the host, so a redirect to blob
        // storage or a CDN never carries upstream credentials or tokens.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!(
                "berth/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through cache)"
            ))
            .build()
            .expect("reqwest client");
        UpstreamClient {
            http,
            timeout,
            tokens: DashMap::new(),
            throttled: DashMap::new(),
        }
    }

    fn check_throttle(&self, upstream: &Upstream) -> Result<(), UpstreamError> {
        if let Some(until) = self.throttled.get(&upstream.authority) {
            let now = Instant::now();
            if *until > now {
                return Err(UpstreamError::Throttled {
                    retry_after_secs: (*until - now).as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    fn throttle(&self, upstream: &Upstream, headers: &HeaderMap) -> UpstreamError {
        let wait = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_BACKOFF)
            .min(MAX_BACKOFF);
        self.throttled
            .insert(upstream.authority.clone(), Instant::now() + wait);
        UpstreamError::Throttled {
            retry_after_secs: wait.as_secs().max(1),
        }
    }

    /// Sends one request to the upstream, answering its auth challenge once. Statuses other
    /// than 401 and 429 are the caller's to judge.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
        method: Method,
        path: &str,
        accept: Option<&str>,
        scope: &str,
        whole_request_timeout: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.check_throttle(upstream)?;
        let url = format!("{}{path}", upstream.base_url());
        // Tokens are per credential too: two rules with different credentials for one upstream
        // must not share what one of them was granted.
        let key = (
            upstream.authority.clone(),
            format!("{scope} {}", credential_id(credential)),
        );
        let build = |auth: Option<String>| {
            let mut rb = self.http.request(method.clone(), &url);
            if whole_request_timeout {
                rb = rb.timeout(self.timeout);
            }
            if let Some(a) = accept {
                rb = rb.header(ACCEPT, a);
            }
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a);
            }
            rb
        };
        let cached = self
            .tokens
            .get(&key)
            .filter(|t| t.1 > Instant::now())
            .map(|t| format!("Bearer {}", t.0));
        let resp = send_traced(build(cached)).await.map_err(transport)?;
        let resp = if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let auth = match challenge {
                Some(Challenge::Basic) => match credential {
                    Some(c) => basic(c),
                    None => return Err(status_error(resp).await),
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: challenged,
                }) => {
                    let scope = if scope.is_empty() {
                        challenged.unwrap_or_default()
                    } else {
                        scope.to_owned()
                    };
                    let token = self
                        .fetch_token(upstream, credential, &realm, service.as_deref(), &scope)
                        .await?;
                    if self.tokens.len() >= MAX_CACHED_TOKENS {
                        let now = Instant::now();
                        self.tokens.retain(|_, t| t.1 > now);
                    }
                    self.tokens.insert(key, token.clone());
                    format!("Bearer {}", token.0)
                }
                None => return Err(status_error(resp).await),
            };
            send_traced(build(Some(auth))).await.map_err(transport)?
        } else {
            resp
        };
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.throttle(upstream, resp.headers()));
        }
        Ok(resp)
    }

    async fn fetch_token(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Instant), UpstreamError> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| UpstreamError::Invalid(format!("token realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(UpstreamError::Invalid(format!(
                "token realm {realm:?} is not an HTTP URL"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let mut rb = self.http.get(url).timeout(self.timeout);
        if let Some(c) = credential {
            rb = rb.header(AUTHORIZATION, basic(c));
        }
        let resp = send_traced(rb).await.map_err(transport)?;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.throttle(upstream, resp.headers()));
        }
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| UpstreamError::Invalid(format!("token response: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| UpstreamError::Invalid("the token response has no token".into()))?;
        // Renew a little early; 60 s is the token spec's default lifetime.
        let lifetime = body["expires_in"].as_u64().unwrap_or(60).max(10);
        Ok((
            token.to_owned(),
            Instant::now() + Duration::from_secs(lifetime.saturating_sub(5)),
        ))
    }

    /// `GET /v2/`: whether the upstream answers and accepts the credentials.
    pub async fn ping(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
    ) -> Result<(), UpstreamError> {
        let resp = self
            .send(upstream, credential, Method::GET, "/v2/", None, "", true)
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(resp).await)
        }
    }

    /// The digest `reference` of `repository` has upstream (HEAD); `None` if it has none.
    pub async fn manifest_digest(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let resp = self
            .send(
                upstream,
                credential,
                Method::HEAD,
                &format!("/v2/{repository}/manifests/{reference}"),
                Some(MANIFEST_ACCEPT),
                &pull_scope(repository),
                true,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(resp).await),
        }
    }

    /// The manifest `reference` of `repository` (at most `max_bytes`); `None` if there is none.
    pub async fn manifest(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
        repository: &str,
        reference: &str,
        max_bytes: usize,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        let resp = self
            .send(
                upstream,
                credential,
                Method::GET,
                &format!("/v2/{repository}/manifests/{reference}"),
                Some(MANIFEST_ACCEPT),
                &pull_scope(repository),
                true,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(UpstreamError::Invalid(format!(
                "the manifest is larger than {max_bytes} bytes"
            )));
        }
        let mut content = Vec::new();
        let mut body = resp;
        while let Some(chunk) = body.chunk().await.map_err(transport)? {
            if content.len() + chunk.len() > max_bytes {
                return Err(UpstreamError::Invalid(format!(
                    "the manifest is larger than {max_bytes} bytes"
                )));
            }
            content.extend_from_slice(&chunk);
        }
        Ok(Some(UpstreamManifest {
            content: content.into(),
            media_type,
            digest,
        }))
    }

    /// Starts reading blob `digest` of `repository` (GET, following redirects); the response's
    /// status is checked, its body is the caller's to stream.
    pub async fn blob(
        &self,
        upstream: &Upstream,
        credential: Option<&Credential>,
        repository: &str,
        digest: &str,
        head: bool,
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let method = if head { Method::HEAD } else { Method::GET };
        let resp = self
            .send(
                upstream,
                credential,
                method,
                &format!("/v2/{repository}/blobs/{digest}"),
                None,
                &pull_scope(repository),
                head,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(resp).await),
        }
    }
}

/// Names a credential in the token cache without holding its password.
fn credential_id(credential: Option<&Credential>) -> String {
    use sha2::Digest as _;
    match credential {
        None => "anonymous".into(),
        Some(c) => {
            let hash = sha2::Sha256::digest(format!("{}\0{}", c.username, c.password));
            format!("{}:{}", c.username, hex::encode(hash))
        }
    }
}

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

fn basic(c: &Credential) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

fn transport(e: reqwest::Error) -> UpstreamError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    UpstreamError::Transport(text)
}

/// The status and the start of the error body (an OCI error's message, when it is one).
/// Sends a request as a client span of the current trace (`debug`: disabled at the call site,
/// next to free, without an exporter and below a debug log level), with the trace context in
/// `traceparent` when there is one. The span names the method, host and path, never the query
/// (a presigned URL's signature) nor any header.
pub async fn send_traced(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let (client, request) = request.build_split();
    let mut request = request?;
    let url = request.url();
    let span = tracing::debug_span!(
        "upstream",
        otel.name = request.method().as_str(),
        otel.kind = "client",
        http.request.method = request.method().as_str(),
        server.address = url.host_str().unwrap_or(""),
        server.port = url.port_or_known_default(),
        url.full = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    if !span.is_disabled() {
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(request.headers_mut()),
            )
        });
    }
    let response = client.execute(request).instrument(span.clone()).await;
    match &response {
        Ok(r) => span.record("http.response.status_code", r.status().as_u16()),
        Err(e) => span.record("otel.status_description", tracing::field::display(e)),
    };
    response
}

async fn status_error(resp: reqwest::Response) -> UpstreamError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let e = &v["errors"][0];
            let code = e["code"].as_str()?;
            Some(match e["message"].as_str() {
                Some(m) => format!("{code} {m}"),
                None => code.to_owned(),
            })
        })
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    UpstreamError::Status { status, detail }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Serves `router` on a loopback port; returns its address.
    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    /// A fake upstream (Basic auth) redirects a blob to a fake CDN on another port: the CDN gets
    /// the request without the upstream's credentials.
    #[tokio::test]
    async fn redirects_to_another_host_carry_no_credentials() {
        use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
        use axum::response::IntoResponse;
        let seen = Arc::new(std::sync::Mutex::new(Vec::<Option<String>>::new()));
        let cdn_seen = seen.clone();
        let cdn = serve(axum::Router::new().route(
            "/blob",
            axum::routing::get(move |headers: AxumHeaders| {
                let seen = cdn_seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap_or("").to_owned());
                    seen.lock().unwrap().push(auth);
                    "blob bytes"
                }
            }),
        ))
        .await;
        let upstream = serve(axum::Router::new().route(
            "/v2/team/app/blobs/{digest}",
            axum::routing::get(move |headers: AxumHeaders| {
                let cdn = cdn.clone();
                async move {
                    if headers.get("authorization").is_none() {
                        return (
                            AxumStatus::UNAUTHORIZED,
                            [("www-authenticate", "Basic realm=\"fake\"".to_owned())],
                        )
                            .into_response();
                    }
                    (
                        AxumStatus::TEMPORARY_REDIRECT,
                        [("location", format!("http://{cdn}/blob"))],
                    )
                        .into_response()
                }
            }),
        ))
        .await;
        let client = UpstreamClient::new(Duration::from_secs(10));
        let up =
            crate::policy::pull_through::parse_upstream_url(&format!("http://{upstream}")).unwrap();
        let credential = Credential {
            username: "user".into(),
            password: "secret".into(),
        };
        let resp = client
            .blob(&up, Some(&credential), "team/app", "sha256:00", false)
            .await
            .unwrap()
            .expect("found");
        assert_eq!(resp.text().await.unwrap(), "blob bytes");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![None],
            "no credentials reach the CDN"
        );
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="http://127.0.0.1:5000/token", service="berth""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5000/token".into(),
                service: Some("berth".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "no realm");
    }
}
