//! Handlers for the OCI Distribution endpoints under `/v2/`: thin adapters that parse the request,
//! call the registry service and shape the response.

pub mod range;
pub mod route;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::access::Caller;
use crate::error::{Error, Result};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::oci::manifest::OCI_INDEX;
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use crate::pull_through::ProxiedBlob;
use crate::service::UploadProgress;
use crate::storage::{BlobBody, ByteStream};
use route::Route;

/// Query parameters, keeping repeated keys (`?tag=a&tag=b`).
struct Query(Vec<(String, String)>);

impl Query {
    fn from_request(req: &Request) -> Self {
        Query(
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    match header_str(headers, "content-length") {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::SizeInvalid(format!("Content-Length '{v}' is not a number"))),
    }
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .expect("header values built from validated names and digests are ASCII")
}

/// Entry point for every `/v2/...` request.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/v2")
        .unwrap_or("")
        .trim_start_matches('/')
        .to_owned();
    // The handler reads the body through a shared handle, so that whatever it left unread can be
    // drained here when it refuses the request early (a 416 for an out-of-order chunk, say).
    let (parts, body) = req.into_parts();
    let shared: SharedBody = Arc::new(tokio::sync::Mutex::new(Some(body.into_data_stream())));
    let reader = futures::stream::unfold(shared.clone(), |shared| async move {
        let next = shared.lock().await.as_mut()?.next().await;
        next.map(|item| (item, shared))
    });
    let req = Request::from_parts(parts, Body::from_stream(reader));
    let idle = app.registry.limits().body_idle_timeout;
    match handle(app, &path, req).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = ApiError(e).into_response();
            let unread = shared.lock().await.take();
            if let Some(body) = unread {
                if !drain(body, idle).await {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
            }
            response
        }
    }
}

/// How much of an unread request body is drained after an early refusal, so the client can read
/// the answer and reuse the connection; past this the connection is closed instead.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

type SharedBody = Arc<tokio::sync::Mutex<Option<axum::body::BodyDataStream>>>;

/// Reads and discards the rest of a body; false if it was too long, too slow or broken.
async fn drain(mut body: axum::body::BodyDataStream, idle: std::time::Duration) -> bool {
    let mut drained = 0u64;
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(None) => return true,
            Ok(Some(Ok(chunk))) => {
                drained += chunk.len() as u64;
                if drained > DRAIN_LIMIT {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

async fn handle(app: AppState, path: &str, req: Request) -> Result<Response> {
    let route = Route::parse(path)?.ok_or_else(|| {
        Error::MethodNotAllowed(format!(
            "no registry endpoint at /v2/{}",
            path.chars().take(200).collect::<String>()
        ))
    })?;
    if let Some(name) = route.name() {
        crate::http::trace::note_repository(name.as_str());
    }
    let method = req.method().clone();
    // Mirror mode: a pull of an upstream's repository (containerd adds `?ns=<upstream host>`)
    // is a pull of the cached repository its rule maps it to, for authorization too.
    let (route, alias) = if method == Method::GET || method == Method::HEAD {
        mirror_route(&app, route, Query::from_request(&req).get("ns")).await?
    } else {
        (route, None)
    };
    let facts = super::auth::request_facts(&app, req.extensions());
    let subject =
        super::auth::guard(&app, &method, req.headers(), &facts, &route, alias.as_ref()).await?;
    let caller = &Caller { subject, facts };
    let head = method == Method::HEAD;
    match (method, route) {
        (Method::GET | Method::HEAD, Route::Base) => {
            Ok((StatusCode::OK, axum::Json(json!({}))).into_response())
        }
        (Method::GET, Route::Catalog) => catalog(&app, caller, &Query::from_request(&req)).await,
        (Method::GET, Route::Tags { name }) => tags(&app, &name, &Query::from_request(&req)).await,
        (Method::GET | Method::HEAD, Route::Manifest { name, reference }) => {
            let accept = req
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let accept = (!accept.is_empty()).then_some(accept);
            get_manifest(&app, caller, &name, &reference, head, accept.as_deref()).await
        }
        (Method::PUT, Route::Manifest { name, reference }) => {
            put_manifest(&app, &name, &reference, req).await
        }
        (Method::DELETE, Route::Manifest { name, reference }) => {
            app.registry
                .manifests()
                .delete_manifest(&name, &Reference::parse(&reference)?)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Method::GET | Method::HEAD, Route::Blob { name, digest }) => {
            get_blob(&app, caller, &name, &digest, req.headers(), head).await
        }
        (Method::DELETE, Route::Blob { name, digest }) => {
            app.registry
                .blobs()
                .delete_blob(&name, &Digest::parse(&digest)?)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Method::POST, Route::UploadStart { name }) => start_upload(&app, caller, &name, req).await,
        (Method::GET, Route::Upload { name, id }) => {
            let progress = app.registry.uploads().upload_status(&name, &id).await?;
            Ok(upload_response(StatusCode::NO_CONTENT, &name, &progress))
        }
        (Method::PATCH, Route::Upload { name, id }) => {
            let range = header_str(req.headers(), "content-range")
                .map(range::content_range)
                .transpose()?;
            let length = content_length(req.headers())?;
            let progress = app
                .registry
                .uploads()
                .append_upload(&name, &id, range, length, body_stream(req.into_body()))
                .await?;
            Ok(upload_response(StatusCode::ACCEPTED, &name, &progress))
        }
        (Method::PUT, Route::Upload { name, id }) => {
            let query = Query::from_request(&req);
            let digest = Digest::parse(query.get("digest").ok_or_else(|| {
                Error::DigestInvalid("the final PUT of an upload needs ?digest=<digest>".into())
            })?)?;
            let range = header_str(req.headers(), "content-range")
                .map(range::content_range)
                .transpose()?;
            let length = content_length(req.headers())?;
            let done = app
                .registry
                .uploads()
                .finish_upload(
                    &name,
                    &id,
                    &digest,
                    range,
                    length,
                    Some(body_stream(req.into_body())),
                )
                .await?;
            Ok(blob_created(&name, &done.digest))
        }
        (Method::DELETE, Route::Upload { name, id }) => {
            app.registry.uploads().cancel_upload(&name, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, Route::Referrers { name, digest }) => {
            referrers(&app, &name, &digest, &Query::from_request(&req)).await
        }
        (method, route) => Err(Error::MethodNotAllowed(format!(
            "{method} is not supported on {}",
            describe(&route)
        ))),
    }
}

fn describe(route: &Route) -> &'static str {
    match route {
        Route::Base => "/v2/",
        Route::Catalog => "the catalog",
        Route::Tags { .. } => "the tag list",
        Route::Manifest { .. } => "manifests",
        Route::Blob { .. } => "blobs",
        Route::UploadStart { .. } => "the upload endpoint",
        Route::Upload { .. } => "upload sessions",
        Route::Referrers { .. } => "the referrers endpoint",
    }
}

fn upload_response(status: StatusCode, name: &RepoName, progress: &UploadProgress) -> Response {
    let mut r = status.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{}", progress.id)),
    );
    h.insert(
        "range",
        hv(&format!("0-{}", progress.size.saturating_sub(1))),
    );
    h.insert("docker-upload-uuid", hv(&progress.id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn blob_created(name: &RepoName, digest: &Digest) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{digest}")));
    h.insert("docker-content-digest", hv(&digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// POST /v2/<name>/blobs/uploads/ with `?digest=`, `?mount=&from=` or `?digest-algorithm=`.
async fn start_upload(
    app: &AppState,
    caller: &Caller,
    name: &RepoName,
    req: Request,
) -> Result<Response> {
    let query = Query::from_request(&req);
    if let Some(mount) = query.get("mount") {
        // An unparsable mount digest falls back to a normal upload, as the spec allows.
        if let Ok(digest) = Digest::parse(mount) {
            let may_read = |repository: String| async move {
                super::auth::may_pull(app, &caller.subject, &repository, &caller.facts).await
            };
            if let Some(done) = app
                .registry
                .uploads()
                .mount_blob(name, &digest, query.get("from"), may_read)
                .await?
            {
                return Ok(blob_created(name, &done.digest));
            }
        }
    } else if let Some(digest) = query.get("digest") {
        let digest = Digest::parse(digest)?;
        let length = content_length(req.headers())?;
        let done = app
            .registry
            .uploads()
            .upload_monolithic(name, &digest, length, body_stream(req.into_body()))
            .await?;
        return Ok(blob_created(name, &done.digest));
    }
    let algorithm = match query.get("digest-algorithm") {
        Some(a) => a.parse()?,
        None => Algorithm::Sha256,
    };
    let progress = app.registry.uploads().start_upload(name, algorithm).await?;
    let mut r = upload_response(StatusCode::ACCEPTED, name, &progress);
    if let Some(min) = app.registry.chunk_min_length() {
        r.headers_mut()
            .insert("oci-chunk-min-length", hv(&min.to_string()));
    }
    Ok(r)
}

/// GET/HEAD /v2/<name>/blobs/<digest> (of a local or a cached repository alike).
async fn get_blob(
    app: &AppState,
    caller: &Caller,
    name: &RepoName,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let digest = Digest::parse(digest)?;
    let range = header_str(headers, "range").map(range::parse);
    let blob = app
        .pull_through
        .read_blob(caller, name, &digest, range, head)
        .await?;
    match blob {
        ProxiedBlob::Local(b) => blob_response(b),
        ProxiedBlob::Head { size } => {
            let mut r = Response::new(Body::empty());
            blob_headers(r.headers_mut(), &digest.to_string(), size);
            Ok(r)
        }
        ProxiedBlob::Streaming { size, body } => {
            let mut r = Response::new(Body::from_stream(body));
            blob_headers(r.headers_mut(), &digest.to_string(), size);
            Ok(r)
        }
    }
}

fn blob_response(blob: crate::service::BlobRead) -> Result<Response> {
    let (status, length) = match blob.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start + 1),
        None => (StatusCode::OK, blob.size),
    };
    let mut r = match blob.body {
        Some(BlobBody::Stream(body)) => Response::new(Body::from_stream(body)),
        Some(BlobBody::Redirect(url)) => {
            // The client fetches (and ranges) from storage directly; it must not forward our
            // credentials there, and the presigned URL carries its own short-lived ones.
            let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
            r.headers_mut().insert(header::LOCATION, hv(&url));
            r.headers_mut()
                .insert("docker-content-digest", hv(&blob.digest));
            return Ok(r);
        }
        None => Response::new(Body::empty()),
    };
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, hv(&length.to_string()));
    h.insert("docker-content-digest", hv(&blob.digest));
    h.insert(header::ETAG, hv(&format!("\"{}\"", blob.digest)));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    if let Some(range) = blob.range {
        h.insert(
            header::CONTENT_RANGE,
            hv(&format!(
                "bytes {}-{}/{}",
                range.start, range.end, blob.size
            )),
        );
    }
    Ok(r)
}

/// The route with its repository replaced by the cached repository a mirror request maps to,
/// and the name it had.
async fn mirror_route(
    app: &AppState,
    route: Route,
    ns: Option<&str>,
) -> Result<(Route, Option<RepoName>)> {
    let target = match &route {
        Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::Tags { name } => app
            .pull_through
            .mirror_target(name, ns)
            .await?
            .map(|local| (local, name.clone())),
        _ => None,
    };
    let Some((local, original)) = target else {
        return Ok((route, None));
    };
    let mapped = match route {
        Route::Manifest { reference, .. } => Route::Manifest {
            name: local,
            reference,
        },
        Route::Blob { digest, .. } => Route::Blob {
            name: local,
            digest,
        },
        Route::Tags { .. } => Route::Tags { name: local },
        other => other,
    };
    Ok((mapped, Some(original)))
}

/// GET/HEAD /v2/<name>/manifests/<reference> (of a local or a cached repository alike).
async fn get_manifest(
    app: &AppState,
    caller: &Caller,
    name: &RepoName,
    reference: &str,
    head: bool,
    accept: Option<&str>,
) -> Result<Response> {
    let reference = Reference::parse(reference)?;
    let (m, warning) = app
        .pull_through
        .read_manifest(caller, name, &reference)
        .await?;
    let mut r = manifest_response(&reference, m, head, accept)?;
    if let Some(w) = warning {
        r.headers_mut().insert(header::WARNING, hv(&w));
    }
    Ok(r)
}

fn manifest_response(
    reference: &Reference,
    m: crate::service::StoredManifest,
    head: bool,
    accept: Option<&str>,
) -> Result<Response> {
    if !accepts(accept, &m.media_type) {
        return Err(Error::ManifestUnknown(format!(
            "manifest '{reference}' is a {} but the request's Accept header does not allow that type",
            m.media_type
        )));
    }
    let length = m.content.len();
    let mut r = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(m.content))
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(&m.media_type));
    h.insert(header::CONTENT_LENGTH, hv(&length.to_string()));
    h.insert("docker-content-digest", hv(&m.digest));
    h.insert(header::ETAG, hv(&format!("\"{}\"", m.digest)));
    Ok(r)
}

/// Accept negotiation: a client that lists manifest media types and none of them (nor a wildcard)
/// matches the stored one cannot use it. Clients that list no manifest type at all get it anyway.
fn accepts(accept: Option<&str>, media_type: &str) -> bool {
    let Some(accept) = accept else { return true };
    let listed: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .filter(|t| !t.is_empty())
        .collect();
    let lists_manifest_types = listed
        .iter()
        .any(|t| crate::oci::manifest::kind_of(t).is_some());
    !lists_manifest_types
        || listed
            .iter()
            .any(|t| *t == media_type || *t == "*/*" || *t == "application/*")
}

/// PUT /v2/<name>/manifests/<reference>[?tag=...]
async fn put_manifest(
    app: &AppState,
    name: &RepoName,
    reference: &str,
    req: Request,
) -> Result<Response> {
    let reference = Reference::parse(reference)?;
    let query = Query::from_request(&req);
    let extra_tags = query
        .all("tag")
        .map(Tag::parse)
        .collect::<Result<Vec<_>>>()?;
    if !extra_tags.is_empty() && matches!(reference, Reference::Tag(_)) {
        return Err(Error::ManifestInvalid(
            "?tag= parameters are only allowed when pushing by digest".into(),
        ));
    }
    let limit = app.registry.limits().max_manifest_bytes;
    if let Some(length) = content_length(req.headers())? {
        if length > limit as u64 {
            return Err(Error::ManifestTooLarge(format!(
                "manifest is {length} bytes; the limit is {limit}"
            )));
        }
    }
    let content_type = header_str(req.headers(), "content-type").map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Error::ManifestTooLarge(format!("manifest exceeds the limit of {limit} bytes"))
            } else {
                Error::ManifestInvalid(format!("could not read the manifest body: {e}"))
            }
        })?;
    let put = app
        .registry
        .manifests()
        .put_manifest(
            name,
            &reference,
            &extra_tags,
            content_type.as_deref(),
            body.to_vec(),
        )
        .await?;
    let mut r = StatusCode::CREATED.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/manifests/{}", put.digest)),
    );
    h.insert("docker-content-digest", hv(&put.digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if let Some(subject) = &put.subject {
        h.insert("oci-subject", hv(&subject.to_string()));
    }
    for tag in &put.tags {
        h.append("oci-tag", hv(tag.as_str()));
    }
    Ok(r)
}

fn page_params(query: &Query) -> Result<(Option<usize>, Option<String>)> {
    let n = query
        .get("n")
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                Error::Unsupported(format!("n must be a non-negative integer, not '{v}'"))
            })
        })
        .transpose()?;
    Ok((n, query.get("last").map(str::to_owned)))
}

fn next_link(path: &str, n: Option<usize>, last: Option<&String>) -> Option<HeaderValue> {
    let last = last?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(n) = n {
        q.append_pair("n", &n.to_string());
    }
    q.append_pair("last", last);
    HeaderValue::from_str(&format!("<{path}?{}>; rel=\"next\"", q.finish())).ok()
}

#[derive(serde::Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}

#[derive(serde::Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// Serialises straight from borrowed data (lists can hold tens of thousands of names).
fn json_response(value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).expect("string lists serialise");
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// GET /v2/<name>/tags/list
async fn tags(app: &AppState, name: &RepoName, query: &Query) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let (tags, more) = app
        .registry
        .manifests()
        .list_tags(name, last.as_deref(), n)
        .await?;
    let mut r = json_response(&TagList {
        name: name.as_str(),
        tags: &tags,
    });
    if more {
        if let Some(link) = next_link(&format!("/v2/{name}/tags/list"), n, tags.last()) {
            r.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(r)
}

/// `/v2/_catalog`'s page size when the client names none (Distribution's default too): a
/// registry of 100,000 repositories is never one response, and `Link` leads to the rest.
const CATALOG_PAGE: usize = 100;

/// GET /v2/_catalog
async fn catalog(app: &AppState, caller: &Caller, query: &Query) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let want = n.unwrap_or(CATALOG_PAGE).min(crate::service::MAX_PAGE);
    let (rows, more) = crate::ops::repositories::visible_repositories(
        &app.registry,
        &app.access,
        caller,
        last.as_deref(),
        want,
    )
    .await?;
    let repos: Vec<String> = rows.into_iter().map(|row| row.name).collect();
    let mut r = json_response(&Catalog {
        repositories: &repos,
    });
    if more {
        if let Some(link) = next_link("/v2/_catalog", Some(want), repos.last()) {
            r.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(r)
}

/// GET /v2/<name>/referrers/<digest>[?artifactType=]
async fn referrers(
    app: &AppState,
    name: &RepoName,
    digest: &str,
    query: &Query,
) -> Result<Response> {
    let digest = Digest::parse(digest)?;
    let filter = query.get("artifactType").filter(|a| !a.is_empty());
    let rows = app
        .registry
        .manifests()
        .referrers(name, &digest, filter)
        .await?;
    let manifests = rows
        .into_iter()
        .map(|row| {
            let digest = oci_spec::image::Digest::from_str(&row.digest)
                .map_err(|e| Error::Internal(format!("stored digest {}: {e}", row.digest)))?;
            let mut d = oci_spec::image::Descriptor::new(
                row.media_type.as_str().into(),
                row.size as u64,
                digest,
            );
            d.set_artifact_type(row.artifact_type.as_deref().map(Into::into));
            // Annotation values are strings by the image spec; that is what was validated and stored.
            d.set_annotations(
                row.annotations
                    .and_then(|a| serde_json::from_str::<HashMap<String, String>>(&a).ok()),
            );
            Ok(d)
        })
        .collect::<Result<Vec<_>>>()?;
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(Error::internal)?;
    let body = serde_json::to_vec(&index).map_err(Error::internal)?;
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}

/// Headers of a blob answered from upstream (no range support while it streams in).
fn blob_headers(h: &mut HeaderMap, digest: &str, size: Option<u64>) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = size {
        h.insert(header::CONTENT_LENGTH, hv(&size.to_string()));
    }
    h.insert("docker-content-digest", hv(digest));
    h.insert(header::ETAG, hv(&format!("\"{digest}\"")));
}
