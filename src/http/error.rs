//! The one mapping from domain errors to HTTP status, OCI error code and JSON body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Missing};

/// A domain error on its way to the client.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// Status and OCI error code of each error; exhaustive on purpose.
pub fn status_and_code(e: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        Error::NameInvalid(_) => (S::BAD_REQUEST, "NAME_INVALID"),
        Error::NameUnknown(_) => (S::NOT_FOUND, "NAME_UNKNOWN"),
        Error::TagInvalid(_) => (S::BAD_REQUEST, "TAG_INVALID"),
        Error::TagImmutable(_) => (S::BAD_REQUEST, "TAG_INVALID"),
        Error::DigestInvalid(_) => (S::BAD_REQUEST, "DIGEST_INVALID"),
        Error::Unsupported(_) => (S::BAD_REQUEST, "UNSUPPORTED"),
        Error::BlobUnknown(_) => (S::NOT_FOUND, "BLOB_UNKNOWN"),
        Error::BlobUploadUnknown(_) => (S::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        Error::BlobUploadInvalid(_) => (S::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
        Error::UploadOutOfOrder { .. } => (S::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
        Error::RangeNotSatisfiable { .. } => (S::RANGE_NOT_SATISFIABLE, "SIZE_INVALID"),
        Error::SizeInvalid(_) => (S::BAD_REQUEST, "SIZE_INVALID"),
        Error::ManifestInvalid(_) => (S::BAD_REQUEST, "MANIFEST_INVALID"),
        Error::ManifestTooComplex(_) => (S::BAD_REQUEST, "MANIFEST_INVALID"),
        Error::ManifestTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
        Error::ManifestUnknown(_) => (S::NOT_FOUND, "MANIFEST_UNKNOWN"),
        Error::ManifestBlobUnknown(_) => (S::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
        Error::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
        Error::Unauthorized(_) => (S::UNAUTHORIZED, "UNAUTHORIZED"),
        Error::AuthenticationRequired { .. } => (S::UNAUTHORIZED, "UNAUTHORIZED"),
        Error::InsufficientScope { .. } => (S::FORBIDDEN, "DENIED"),
        Error::Denied(_) => (S::FORBIDDEN, "DENIED"),
        Error::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
        Error::AlreadyExists(_) => (S::CONFLICT, "ALREADY_EXISTS"),
        Error::NotEmpty(_) => (S::CONFLICT, "NOT_EMPTY"),
        Error::InvalidParameter(_) => (S::BAD_REQUEST, "INVALID_PARAMETER"),
        Error::NotFound(_) => (S::NOT_FOUND, "NOT_FOUND"),
        // A reference in the request body names something missing: the request is invalid.
        Error::Missing(Missing::ReferencedImages | Missing::Secret, _) => {
            (S::BAD_REQUEST, "INVALID_PARAMETER")
        }
        Error::Missing(_, _) => (S::NOT_FOUND, "NOT_FOUND"),
        Error::Exists(..) => (S::CONFLICT, "ALREADY_EXISTS"),
        Error::InvalidTag(_) | Error::TooManyTags(_) => (S::BAD_REQUEST, "INVALID_PARAMETER"),
        Error::ImageDigestMismatch(_) => (S::BAD_REQUEST, "DIGEST_INVALID"),
        Error::TooManyRequests { .. } => (S::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        Error::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        // The OCI spec has no code for storage trouble; UNAVAILABLE (Distribution's "service
        // unavailable") tells clients the registry, not their request, is at fault.
        Error::WritesRefused(_) => (S::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Error::InsufficientStorage(_) => (S::INSUFFICIENT_STORAGE, "UNAVAILABLE"),
        Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

/// The JSON body of every refusal: the distribution-spec's error shape, on every transport
/// but ECR's (which has its own).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub errors: Vec<ErrorEntry>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEntry {
    /// `NAME_UNKNOWN`, `DENIED`, `UNAUTHORIZED`, ...
    pub code: &'static str,
    /// What went wrong, for a person to act on.
    pub message: String,
    /// Always `null`: the message says it all.
    pub detail: Option<serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, code, "request failed");
        } else {
            tracing::debug!(error = %self.0, code, "request refused");
        }
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                code,
                message: self.0.message(),
                detail: None,
            }],
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self.0 {
            Error::UploadOutOfOrder { offset, .. } => {
                let range = format!("0-{}", offset.saturating_sub(1));
                headers.insert("range", HeaderValue::from_str(&range).expect("ascii"));
            }
            Error::RangeNotSatisfiable { size, .. } => {
                let range = format!("bytes */{size}");
                headers.insert(
                    "content-range",
                    HeaderValue::from_str(&range).expect("ascii"),
                );
            }
            Error::Unavailable(_) => {
                headers.insert("retry-after", HeaderValue::from_static("5"));
            }
            // Freeing space or restoring write access takes an operator: not seconds.
            Error::WritesRefused(_) | Error::InsufficientStorage(_) => {
                headers.insert("retry-after", HeaderValue::from_static("60"));
            }
            Error::AuthenticationRequired { challenge, .. }
            | Error::InsufficientScope { challenge, .. } => {
                if let Ok(value) = HeaderValue::from_str(challenge) {
                    headers.insert("www-authenticate", value);
                }
            }
            Error::TooManyRequests {
                retry_after_secs, ..
            } => {
                headers.insert("retry-after", HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
