//! Client-side helpers for the spec-derived HTTP tests (`tests/it/api_*.rs`).
//!
//! Everything here talks to a real, listening Berth over loopback, either with `reqwest` or, where a well-behaved
//! client cannot express the request (a body shorter than its `Content-Length`, a literal `..` path segment, a
//! `HEAD` whose wire bytes we want to see), with a raw HTTP/1.1 exchange over a `TcpStream`.
//!
//! Rules followed by the helpers (OCI distribution-spec, `main` branch):
//! - `Location` headers may be absolute or relative and may carry query parameters, so they are resolved against
//!   the server's base URL and `digest=` is appended as a query pair, never by string concatenation.
//! - Error bodies are `{"errors":[{"code":..,"message":..,"detail":..}]}`; `code` is uppercase letters and `_`.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const OCTET: &str = "application/octet-stream";

/// The OCI empty descriptor's content (`application/vnd.oci.empty.v1+json`).
pub const EMPTY_JSON: &[u8] = b"{}";
/// sha256 of `{}`, as given in the image-spec.
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Largest manifest the registry must accept (distribution-spec: "at least 4 megabytes"; Berth: 4 MiB).
pub const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Digests and data
// ---------------------------------------------------------------------------------------------------------------

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn sha512_digest(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// A digest that (with overwhelming probability) names nothing stored.
pub fn unknown_digest() -> String {
    sha256_digest(&random_bytes(64))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A short random lowercase suffix for unique names.
pub fn rand_suffix() -> String {
    hex::encode(random_bytes(4))
}

/// A descriptor JSON value for `data` with `media_type`.
pub fn desc(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256_digest(data), "size": data.len() })
}

/// A descriptor JSON value from parts.
pub fn desc_of(media_type: &str, digest: &str, size: usize) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// A small, plausible OCI image config (unique per call).
pub fn random_config() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [format!("NONCE={}", rand_suffix())] },
        "rootfs": { "type": "layers", "diff_ids": [] }
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Response inspection
// ---------------------------------------------------------------------------------------------------------------

/// The first value of a header, as a string.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
}

/// All values of a header (repeated fields and comma-separated lists flattened, trimmed).
pub fn header_list(resp: &Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Media type without parameters (the client SHOULD ignore parameters on `Content-Type`).
pub fn content_type(resp: &Response) -> Option<String> {
    header(resp, "content-type").map(|v| v.split(';').next().unwrap().trim().to_string())
}

pub fn content_length(resp: &Response) -> Option<u64> {
    header(resp, "content-length").and_then(|v| v.parse().ok())
}

/// Error codes from an OCI error body (empty when the body is not the documented JSON shape).
pub fn error_codes(body: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return vec![];
    };
    v.get("errors")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("code").and_then(|c| c.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts `resp` is `status` with a JSON error body holding at least one of `codes`.
pub async fn expect_error(resp: Response, status: u16, codes: &[&str]) {
    expect_error_in(resp, &[status], codes).await
}

/// Asserts `resp` has one of `statuses` and a JSON error body holding at least one of `codes`.
pub async fn expect_error_in(resp: Response, statuses: &[u16], codes: &[&str]) {
    let st = resp.status().as_u16();
    let method_url = resp.url().to_string();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        statuses.contains(&st),
        "{method_url}: expected status {statuses:?} with {codes:?}, got {st}: {body}"
    );
    check_error_body(&method_url, st, &body, codes);
}

pub fn check_error_body(what: &str, status: u16, body: &str, codes: &[&str]) {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: {status} error body is not JSON ({e}): {body:?}"));
    let errors = v
        .get("errors")
        .and_then(|e| e.as_array())
        .unwrap_or_else(|| panic!("{what}: error body has no \"errors\" array: {body}"));
    assert!(!errors.is_empty(), "{what}: empty \"errors\" array: {body}");
    for e in errors {
        let code = e
            .get("code")
            .and_then(|c| c.as_str())
            .unwrap_or_else(|| panic!("{what}: error entry without string \"code\": {body}"));
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{what}: code {code:?} must be uppercase letters and underscores"
        );
        if let Some(m) = e.get("message") {
            assert!(
                m.is_string(),
                "{what}: \"message\" must be a string: {body}"
            );
        }
    }
    let got = error_codes(body);
    assert!(
        got.iter().any(|c| codes.contains(&c.as_str())),
        "{what}: expected one of {codes:?} in {status} body, got {got:?}: {body}"
    );
}

/// Asserts a status is not a server error; returns it.
pub fn not_5xx(what: &str, status: u16) -> u16 {
    assert!(status < 500, "{what}: server error {status}");
    status
}

/// Parses `Content-Range: bytes a-b/total` (total may be `*`).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((a.parse().ok()?, b.parse().ok()?, total))
}

/// Parses an upload `Range: 0-<end>` header into `end` (inclusive).
pub fn parse_upload_range(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    if a != "0" {
        return None;
    }
    b.parse().ok()
}

/// Extracts the target of the `rel="next"` entry of a `Link` header.
pub fn link_next(resp: &Response) -> Option<String> {
    for v in resp.headers().get_all("link") {
        let v = v.to_str().ok()?;
        for part in v.split(',') {
            let part = part.trim();
            if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
                continue;
            }
            let start = part.find('<')?;
            let end = part.find('>')?;
            return Some(part[start + 1..end].to_string());
        }
    }
    None
}

/// Query parameters of a URL (absolute or path-only).
pub fn query_pairs(u: &str) -> Vec<(String, String)> {
    let parsed = url::Url::parse(u)
        .or_else(|_| url::Url::parse("http://x.invalid").unwrap().join(u))
        .unwrap_or_else(|e| panic!("unparsable URL {u:?}: {e}"));
    parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------------------------

/// A pushed image (config + layers + manifest).
#[derive(Clone, Debug)]
pub struct Pushed {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub config_digest: String,
    pub layer_digests: Vec<String>,
}

/// An HTTP client bound to one server's base URL (`http://127.0.0.1:PORT`).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: Client,
}

impl Api {
    /// A client that authenticates every request as the test admin (HTTP Basic with
    /// `common::ADMIN_USER` / `common::ADMIN_PASSWORD`, the credentials every `TestServer` starts
    /// with). On a redirect to another host or port (a presigned S3 URL in storage redirect
    /// mode) reqwest drops the `Authorization` header, as it must.
    pub fn new(base: &str) -> Api {
        Api::with_basic(
            base,
            crate::support::common::ADMIN_USER,
            crate::support::common::ADMIN_PASSWORD,
        )
    }

    /// A client that sends no credentials.
    pub fn anonymous(base: &str) -> Api {
        Api::build(base, None)
    }

    /// A client that sends HTTP Basic credentials `user` / `password` with every request.
    pub fn with_basic(base: &str, user: &str, password: &str) -> Api {
        Api::build(
            base,
            Some(crate::support::common::basic_auth(user, password)),
        )
    }

    /// A client that sends `authorization` (e.g. `Bearer <token>`) with every request.
    pub fn with_authorization(base: &str, authorization: &str) -> Api {
        Api::build(base, Some(authorization.to_owned()))
    }

    fn build(base: &str, authorization: Option<String>) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = authorization {
            let mut value = reqwest::header::HeaderValue::from_str(&value).expect("header value");
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::limited(5))
            .default_headers(headers)
            .no_proxy()
            .build()
            .expect("reqwest client");
        Api {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    /// Absolute URL for a path (`/v2/...`) or an already absolute/relative `Location`.
    pub fn url(&self, path_or_url: &str) -> String {
        url::Url::parse(&format!("{}/", self.base))
            .unwrap()
            .join(path_or_url)
            .unwrap_or_else(|e| panic!("cannot resolve {path_or_url:?}: {e}"))
            .to_string()
    }

    /// Resolves `location` and appends one query pair (keeping any query the registry put there).
    pub fn with_query(&self, location: &str, key: &str, value: &str) -> String {
        let mut u = url::Url::parse(&self.url(location)).unwrap();
        u.query_pairs_mut().append_pair(key, value);
        u.to_string()
    }

    pub fn req(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        self.http.request(method, self.url(path_or_url))
    }

    pub async fn send(&self, rb: RequestBuilder) -> Response {
        let req = rb.build().expect("build request");
        let what = format!("{} {}", req.method(), req.url());
        self.http
            .execute(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: transport error: {e:?}"))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(self.req(Method::GET, path)).await
    }

    pub async fn head(&self, path: &str) -> Response {
        self.send(self.req(Method::HEAD, path)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.req(Method::DELETE, path)).await
    }

    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Response {
        self.send(
            self.req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
                .header("accept", all_manifest_types()),
        )
        .await
    }

    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Response {
        self.send(
            self.req(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
                .header("accept", all_manifest_types()),
        )
        .await
    }

    pub async fn get_blob(&self, repo: &str, digest: &str) -> Response {
        self.get(&format!("/v2/{repo}/blobs/{digest}")).await
    }

    pub async fn head_blob(&self, repo: &str, digest: &str) -> Response {
        self.head(&format!("/v2/{repo}/blobs/{digest}")).await
    }

    /// `POST /v2/<repo>/blobs/uploads/` with `Content-Length: 0`; asserts 202 and returns the absolute Location.
    pub async fn start_upload(&self, repo: &str) -> String {
        self.start_upload_query(repo, "").await
    }

    /// Like `start_upload` with a raw query string (e.g. `digest-algorithm=sha512`).
    pub async fn start_upload_query(&self, repo: &str, query: &str) -> String {
        let path = if query.is_empty() {
            format!("/v2/{repo}/blobs/uploads/")
        } else {
            format!("/v2/{repo}/blobs/uploads/?{query}")
        };
        let resp = self
            .send(self.req(Method::POST, &path).header("content-length", "0"))
            .await;
        let st = resp.status().as_u16();
        let loc = header(&resp, "location");
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(st, 202, "POST {path}: expected 202, got {st}: {body}");
        let loc = loc.unwrap_or_else(|| panic!("POST {path}: 202 without Location"));
        self.url(&loc)
    }

    /// `PATCH` one chunk with `Content-Range: start-end` (inclusive). Returns the response.
    pub async fn patch_chunk(&self, location: &str, start: u64, chunk: &[u8]) -> Response {
        let end = start + chunk.len() as u64 - 1;
        self.send(
            self.req(Method::PATCH, location)
                .header("content-type", OCTET)
                .header("content-range", format!("{start}-{end}"))
                .body(chunk.to_vec()),
        )
        .await
    }

    /// `PUT <location>?digest=<digest>` with an optional final body.
    pub async fn put_upload(&self, location: &str, digest: &str, body: Option<&[u8]>) -> Response {
        let url = self.with_query(location, "digest", digest);
        let mut rb = self.req(Method::PUT, &url);
        match body {
            Some(b) => {
                rb = rb.header("content-type", OCTET).body(b.to_vec());
            }
            None => {
                rb = rb.header("content-length", "0");
            }
        }
        self.send(rb).await
    }

    /// Pushes a blob with POST then PUT (the method every registry supports); asserts 201 and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        self.push_blob_as(repo, data, &digest).await;
        digest
    }

    /// POST then PUT with an explicit digest (e.g. sha512). Asserts 201 with Location and Docker-Content-Digest.
    pub async fn push_blob_as(&self, repo: &str, data: &[u8], digest: &str) {
        let loc = self.start_upload(repo).await;
        let resp = self.put_upload(&loc, digest, Some(data)).await;
        assert_created_blob(resp, digest).await;
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        let mut rb = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .body(body.to_vec());
        if !media_type.is_empty() {
            rb = rb.header("content-type", media_type);
        }
        self.send(rb).await
    }

    /// Pushes a manifest, asserts 201 with `Location` and `Docker-Content-Digest` == sha256(body); returns the digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let digest = if reference.starts_with("sha512:") {
            sha512_digest(body)
        } else {
            sha256_digest(body)
        };
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let st = resp.status().as_u16();
        let loc = header(&resp, "location");
        let dcd = header(&resp, "docker-content-digest");
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            st, 201,
            "PUT manifest {repo}:{reference}: expected 201, got {st}: {text}"
        );
        assert!(
            loc.is_some(),
            "PUT manifest {repo}:{reference}: 201 without Location"
        );
        assert_eq!(
            dcd.as_deref(),
            Some(digest.as_str()),
            "PUT manifest {repo}:{reference}: Docker-Content-Digest"
        );
        digest
    }

    /// Pushes a random config and `layers` random layers, then an OCI image manifest under `reference`
    /// (a tag, or "" to push by digest).
    pub async fn push_image(&self, repo: &str, reference: &str) -> Pushed {
        self.push_image_with(repo, reference, 1, json!({})).await
    }

    /// Like `push_image`, merging `extra` (e.g. annotations, subject) into the top-level manifest object.
    pub async fn push_image_with(
        &self,
        repo: &str,
        reference: &str,
        layers: usize,
        extra: Value,
    ) -> Pushed {
        let config = random_config();
        let config_digest = self.push_blob(repo, &config).await;
        let mut layer_descs = vec![];
        let mut layer_digests = vec![];
        for _ in 0..layers {
            let data = random_bytes(rand::Rng::gen_range(&mut rand::thread_rng(), 256..4096));
            let d = self.push_blob(repo, &data).await;
            layer_descs.push(desc_of(OCI_LAYER, &d, data.len()));
            layer_digests.push(d);
        }
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": desc_of(OCI_CONFIG, &config_digest, config.len()),
            "layers": layer_descs,
        });
        if let (Some(obj), Some(ext)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in ext {
                obj.insert(k.clone(), v.clone());
            }
        }
        let manifest = serde_json::to_vec(&m).unwrap();
        let digest = sha256_digest(&manifest);
        let reference = if reference.is_empty() {
            digest.clone()
        } else {
            reference.to_string()
        };
        self.push_manifest(repo, &reference, OCI_MANIFEST, &manifest)
            .await;
        Pushed {
            manifest,
            digest,
            media_type: OCI_MANIFEST.to_string(),
            config_digest,
            layer_digests,
        }
    }

    /// Pushes the empty config blob `{}` into `repo`.
    pub async fn push_empty_config(&self, repo: &str) {
        let d = self.push_blob(repo, EMPTY_JSON).await;
        assert_eq!(d, EMPTY_JSON_DIGEST);
    }

    /// Tags of a repository (asserts 200).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self.get(&format!("/v2/{repo}/tags/list")).await;
        let st = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(st, 200, "tags/list {repo}: {text}");
        let v: Value = serde_json::from_str(&text).expect("tags/list JSON");
        json_strings(&v["tags"])
    }
}

/// `Accept` listing every manifest type a modern client accepts.
pub fn all_manifest_types() -> String {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ")
}

/// A JSON array of strings (null -> empty).
pub fn json_strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec![],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("string element").to_string())
            .collect(),
        other => panic!("expected array of strings, got {other}"),
    }
}

/// Asserts a blob-creating response: 201, `Location` present, `Docker-Content-Digest` == digest.
pub async fn assert_created_blob(resp: Response, digest: &str) -> String {
    let st = resp.status().as_u16();
    let what = resp.url().to_string();
    let loc = header(&resp, "location");
    let dcd = header(&resp, "docker-content-digest");
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, 201, "{what}: expected 201, got {st}: {text}");
    let loc = loc.unwrap_or_else(|| panic!("{what}: 201 without Location"));
    assert_eq!(
        dcd.as_deref(),
        Some(digest),
        "{what}: Docker-Content-Digest"
    );
    loc
}

/// Asserts a 202 chunk response with `Range: 0-<end>` and a `Location`; returns the (absolute) next location.
pub async fn assert_chunk_accepted(api: &Api, resp: Response, end: u64) -> String {
    let st = resp.status().as_u16();
    let what = resp.url().to_string();
    let range = header(&resp, "range");
    let loc = header(&resp, "location");
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(st, 202, "{what}: chunk expected 202, got {st}: {text}");
    let range = range.unwrap_or_else(|| panic!("{what}: 202 without Range"));
    assert_eq!(
        parse_upload_range(&range),
        Some(end),
        "{what}: Range {range:?}, expected 0-{end}"
    );
    api.url(&loc.unwrap_or_else(|| panic!("{what}: 202 without Location")))
}

// ---------------------------------------------------------------------------------------------------------------
// Raw HTTP/1.1 (for requests a correct client will not send)
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Bytes after the header block (de-chunked when `Transfer-Encoding: chunked`).
    pub body: Vec<u8>,
    /// Bytes after the header block exactly as received.
    pub raw_body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `METHOD target HTTP/1.1` with `Host`, `Connection: close`, the test admin's Basic `Authorization`
/// (unless `extra_headers` has an `Authorization` line of its own), `extra_headers` (full lines without CRLF)
/// and `body`, then half-closes the write side when `close_write`. Reads until EOF (at most 30 s).
/// Returns `None` when the server closed the connection without a parsable response.
pub async fn raw_request(
    addr: &str,
    method: &str,
    target: &str,
    extra_headers: &[String],
    body: &[u8],
    close_write: bool,
) -> Option<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !extra_headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("authorization:"))
    {
        head.push_str(&format!(
            "Authorization: {}\r\n",
            crate::support::common::admin_basic_auth()
        ));
    }
    for h in extra_headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut payload = head.into_bytes();
    payload.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&payload).await;
        let _ = wr.flush().await;
        if close_write {
            let _ = wr.shutdown().await;
        }
        // Keep the write half alive (dropping it would half-close) until the reader is done.
        wr
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 16384];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "raw {method} {target}: no EOF from server within 30 s"
    );
    let _ = writer.await;
    parse_raw_response(&buf)
}

fn parse_raw_response(buf: &[u8]) -> Option<RawResponse> {
    let mut rest = buf;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let after = &rest[end + 4..];
        if (100..200).contains(&status) {
            rest = after;
            continue;
        }
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        let body = if chunked {
            dechunk(after)
        } else {
            after.to_vec()
        };
        return Some(RawResponse {
            status,
            headers,
            body,
            raw_body: after.to_vec(),
        });
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = std::str::from_utf8(&data[..pos]).unwrap_or("0");
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        data = &data[pos + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}
