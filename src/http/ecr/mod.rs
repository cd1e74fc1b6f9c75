//! ECR's own JSON API on the registry's listener (`POST /` with `X-Amz-Target:
//! AmazonEC2ContainerRegistry_V20150921.<Operation>`), so the AWS CLI, boto3 and Terraform work
//! against Berth unchanged: reads the body (bounded), verifies the AWS Signature V4 against a
//! Berth access key, parses the operation's input, decides the operation's ECR action with the
//! access layer, runs the operation and answers in ECR's shapes and error types (`__type` +
//! `message`). A transport beside `http::admin`: each `X-Amz-Target` maps onto one typed
//! operation of `crate::ops` (see `operations`), which holds the gate, the work and the audit.

mod operations;

pub use operations::OPERATIONS;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::access::{AuditOutcome, Caller, Credential, Principal, RequestFacts, Subject};
use crate::auth::credential::CredentialKind;
use crate::auth::sigv4::{self, SigV4Error, SigV4Request, SigV4Verifier};
use crate::error::{Error, Existing, Missing};
use crate::http::AppState;
use crate::ops::Endpoint;

/// The `X-Amz-Target` prefix of every ECR operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// The content type of requests and responses (AWS JSON 1.1).
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An ECR error on its way to the client: HTTP status, `__type` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl EcrError {
    /// A client error (HTTP 400, as the AWS JSON protocols answer).
    pub fn new(kind: &'static str, message: impl Into<String>) -> EcrError {
        EcrError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> EcrError {
        EcrError::new("InvalidParameterException", message)
    }
}

impl From<SigV4Error> for EcrError {
    fn from(e: SigV4Error) -> Self {
        EcrError {
            status: e.status(),
            kind: e.error_type(),
            message: e.message().to_owned(),
        }
    }
}

/// ECR's exception for each domain error; exhaustive on purpose. Operations that know better
/// (policy not found, image already exists, ...) build their `EcrError` themselves.
pub fn exception(e: &Error) -> (StatusCode, &'static str) {
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    match e {
        Error::NameInvalid(_)
        | Error::TagInvalid(_)
        | Error::DigestInvalid(_)
        | Error::Unsupported(_)
        | Error::SizeInvalid(_)
        | Error::ManifestInvalid(_)
        | Error::ManifestTooComplex(_)
        | Error::ManifestTooLarge(_)
        | Error::PayloadTooLarge(_)
        | Error::RangeNotSatisfiable { .. }
        | Error::BlobUploadInvalid(_)
        | Error::MethodNotAllowed(_)
        | Error::InvalidParameter(_)
        | Error::NotFound(_) => (BAD, "InvalidParameterException"),
        Error::NameUnknown(_) => (BAD, "RepositoryNotFoundException"),
        Error::Missing(what, _) => (
            BAD,
            match what {
                Missing::RepositoryPolicy => "RepositoryPolicyNotFoundException",
                Missing::RegistryPolicy => "RegistryPolicyNotFoundException",
                Missing::LifecyclePolicy => "LifecyclePolicyNotFoundException",
                Missing::LifecyclePolicyPreview => "LifecyclePolicyPreviewNotFoundException",
                Missing::RepositoryCreationTemplate => "TemplateNotFoundException",
                Missing::PullThroughCacheRule => "PullThroughCacheRuleNotFoundException",
                Missing::Scan => "ScanNotFoundException",
                Missing::Image => "ImageNotFoundException",
                Missing::ReferencedImages => "ReferencedImagesNotFoundException",
                Missing::Secret => "SecretNotFoundException",
            },
        ),
        Error::Exists(what, _) => (
            BAD,
            match what {
                Existing::RepositoryCreationTemplate => "TemplateAlreadyExistsException",
                Existing::PullThroughCacheRule => "PullThroughCacheRuleAlreadyExistsException",
                Existing::Image => "ImageAlreadyExistsException",
            },
        ),
        Error::InvalidTag(_) => (BAD, "InvalidTagParameterException"),
        Error::TooManyTags(_) => (BAD, "TooManyTagsException"),
        Error::ImageDigestMismatch(_) => (BAD, "ImageDigestDoesNotMatchException"),
        Error::TagImmutable(_) => (BAD, "ImageTagAlreadyExistsException"),
        Error::BlobUnknown(_) | Error::ManifestBlobUnknown(_) => (BAD, "LayersNotFoundException"),
        Error::BlobUploadUnknown(_) => (BAD, "UploadNotFoundException"),
        Error::UploadOutOfOrder { .. } => (BAD, "InvalidLayerPartException"),
        Error::ManifestUnknown(_) => (BAD, "ImageNotFoundException"),
        Error::Unauthorized(_) | Error::AuthenticationRequired { .. } => {
            (BAD, "UnrecognizedClientException")
        }
        Error::Denied(_) | Error::InsufficientScope { .. } => (BAD, "AccessDeniedException"),
        Error::AlreadyExists(_) => (BAD, "RepositoryAlreadyExistsException"),
        Error::NotEmpty(_) => (BAD, "RepositoryNotEmptyException"),
        Error::TooManyRequests { .. } => (BAD, "ThrottlingException"),
        // ECR has no exception for storage trouble; ServerException (which SDKs retry) with a
        // message naming the cause, unlike `Internal`'s.
        Error::Unavailable(_)
        | Error::WritesRefused(_)
        | Error::InsufficientStorage(_)
        | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServerException"),
    }
}

impl From<Error> for EcrError {
    fn from(e: Error) -> Self {
        let (status, kind) = exception(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, kind, "ECR API request failed");
        }
        EcrError {
            status,
            kind,
            message: e.message(),
        }
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.kind, "message": self.message});
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        response
    }
}

pub type EcrResult<T> = std::result::Result<T, EcrError>;

/// One authenticated ECR request: who is calling and how clients reach the registry.
pub struct Call<'a> {
    pub app: &'a AppState,
    pub caller: Caller,
    pub endpoint: Endpoint,
}

impl Call<'_> {
    /// The operation context of this call (the services, the caller, the endpoint).
    pub fn context(&self) -> crate::ops::Context<'_> {
        crate::ops::Context::new(self.app.services(), &self.caller, &self.endpoint)
    }
}

/// Parses an operation's JSON input; an empty body counts as `{}`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> EcrResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => EcrError::new(
            "ValidationException",
            format!("1 validation error detected: {e}"),
        ),
        _ => EcrError::new(
            "SerializationException",
            format!("the request body is not valid JSON: {e}"),
        ),
    })
}

/// The single place every ECR call is reported to the audit log: who (only signed-in callers;
/// refused signatures are not recorded), which operation, on which repository (or the
/// registry), from where, and how it ended. Error messages are not stored, so client input never
/// reaches the log.
async fn audit(
    app: &AppState,
    subject: Option<&Subject>,
    operation: &str,
    repository: Option<&str>,
    facts: &RequestFacts,
    outcome: Result<(), &EcrError>,
) {
    let Some(subject) = subject else { return };
    let resource = match repository {
        Some(name) => {
            crate::policy::repository_arn(app.access.region(), app.access.registry_id(), name)
        }
        None => "registry".to_owned(),
    };
    let (result, detail) = match outcome {
        Ok(()) => (AuditOutcome::Success, String::new()),
        Err(e) if e.kind == "AccessDeniedException" => (AuditOutcome::Denied, e.kind.to_owned()),
        Err(e) => (
            AuditOutcome::Failed,
            format!("{} {}", e.status.as_u16(), e.kind),
        ),
    };
    app.audit
        .audit_request(
            subject,
            facts,
            &format!("ecr:{operation}"),
            &resource,
            result,
            &detail,
        )
        .await;
}

/// POST / — one ECR API call.
pub async fn handle(State(app): State<AppState>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let facts = crate::http::auth::request_facts(&app, req.extensions());
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .map(str::to_owned);
    let mut subject = None;
    let mut repository = None;
    let mut audited = false;
    let outcome = serve(
        &app,
        req,
        operation.as_deref(),
        &facts,
        &mut subject,
        &mut repository,
        &mut audited,
    )
    .await;
    if let Some(subject) = &subject {
        crate::http::trace::note_subject(subject);
    }
    if let Some(repository) = &repository {
        crate::http::trace::note_repository(repository);
    }
    let name = operation.as_deref().unwrap_or("-");
    if !audited {
        audit(
            &app,
            subject.as_ref(),
            name,
            repository.as_deref(),
            &facts,
            outcome.as_ref().map(|_| ()),
        )
        .await;
    }
    let mut response = match outcome {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(e) => {
            if !e.status.is_server_error() {
                tracing::debug!(operation = name, kind = e.kind, message = %e.message, "ECR API request refused");
            }
            e.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// The body limit of an operation: PutImage carries a whole manifest (JSON-escaped), the
/// others at most `max_json_body_bytes`.
fn body_limit(app: &AppState, operation: Option<&str>) -> usize {
    let limits = &app.config.limits;
    if operation == Some("PutImage") {
        limits
            .max_json_body_bytes
            .max(limits.max_manifest_bytes.saturating_mul(2) + 64 * 1024)
    } else {
        limits.max_json_body_bytes
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> EcrResult<bytes::Bytes> {
    let too_large = || EcrError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        kind: "ValidationException",
        message: format!("the request body exceeds the limit of {limit} bytes"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = s.source();
        }
        EcrError::new(
            "SerializationException",
            "the request body could not be read",
        )
    })
}

async fn serve(
    app: &AppState,
    req: Request,
    operation: Option<&str>,
    facts: &RequestFacts,
    subject_out: &mut Option<Subject>,
    repository_out: &mut Option<String>,
    audited: &mut bool,
) -> EcrResult<String> {
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, body_limit(app, operation)).await?;
    let (principal, access_key_id) = authenticate(app, &parts, &body).await?;
    let subject = Subject::signed_in(
        principal.clone(),
        Credential {
            kind: CredentialKind::AccessKey,
            expires_at: None,
            access_key_id: Some(access_key_id),
        },
    );
    *subject_out = Some(subject.clone());
    // For the audit record only; the operation parses (and validates) the body itself.
    *repository_out = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("repositoryName")?.as_str().map(str::to_owned))
        .filter(|name| crate::oci::RepoName::parse(name).is_ok());

    let operation = operation.ok_or_else(|| {
        EcrError::new(
            "UnknownOperationException",
            format!("X-Amz-Target must be {TARGET_PREFIX}<Operation>"),
        )
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(
        content_type.as_deref(),
        Some("application/x-amz-json-1.1" | "application/x-amz-json-1.0")
    ) {
        return Err(EcrError::new(
            "SerializationException",
            format!("Content-Type must be {CONTENT_TYPE}"),
        ));
    }
    let call = Call {
        app,
        caller: Caller {
            subject,
            facts: *facts,
        },
        endpoint: crate::http::endpoint(&app.config, &parts.headers),
    };
    operations::dispatch(&call, operation, &body, audited).await
}

/// Verifies the request's SigV4 signature against the access key it names (the only credential
/// this door accepts, [`crate::access::Door::EcrApi`]); the key's principal and id.
async fn authenticate(
    app: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> EcrResult<(Arc<Principal>, String)> {
    let authority = parts.uri.authority().map(|a| a.as_str());
    let headers = sigv4::headers_from_http(&parts.headers, authority);
    let authorization = sigv4::parse_authorization(&headers)?;
    let (principal, secret) = app
        .access
        .access_key(&authorization.access_key_id)
        .await?
        .ok_or_else(|| {
            SigV4Error::UnrecognizedClient(
                "The security token included in the request is invalid.".into(),
            )
        })?;
    let request = SigV4Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    SigV4Verifier::ecr().verify_with_secret(
        &request,
        &authorization,
        &secret,
        chrono::Utc::now(),
    )?;
    Ok((principal, authorization.access_key_id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Input {
        repository_name: String,
    }

    #[test]
    fn inputs_are_classified_like_aws_json() {
        assert_eq!(
            parse::<Input>(br#"{"repositoryName":"a/b"}"#)
                .unwrap()
                .repository_name,
            "a/b"
        );
        assert!(parse::<crate::ops::shapes::EmptyRequest>(b" ").is_ok());
        assert_eq!(
            parse::<Input>(b"{nope").unwrap_err().kind,
            "SerializationException"
        );
        assert_eq!(
            parse::<Input>(b"{").unwrap_err().kind,
            "SerializationException"
        );
        assert_eq!(
            parse::<Input>(b"{}").unwrap_err().kind,
            "ValidationException"
        );
        assert_eq!(
            parse::<Input>(br#"{"repositoryName":1}"#).unwrap_err().kind,
            "ValidationException"
        );
    }

    #[test]
    fn domain_errors_map_to_ecr_exceptions() {
        let cases = [
            (
                Error::NameUnknown("x".into()),
                400,
                "RepositoryNotFoundException",
            ),
            (
                Error::AlreadyExists("x".into()),
                400,
                "RepositoryAlreadyExistsException",
            ),
            (
                Error::NotEmpty("x".into()),
                400,
                "RepositoryNotEmptyException",
            ),
            (
                Error::NameInvalid("x".into()),
                400,
                "InvalidParameterException",
            ),
            (
                Error::ManifestInvalid("x".into()),
                400,
                "InvalidParameterException",
            ),
            (Error::Unavailable("x".into()), 500, "ServerException"),
            (Error::WritesRefused("x".into()), 500, "ServerException"),
            (
                Error::InsufficientStorage("x".into()),
                500,
                "ServerException",
            ),
            (
                Error::Internal("secret cause".into()),
                500,
                "ServerException",
            ),
        ];
        for (error, status, kind) in cases {
            let e = EcrError::from(error);
            assert_eq!((e.status.as_u16(), e.kind), (status, kind));
            assert!(!e.message.contains("secret cause"), "{}", e.message);
        }
    }
}
