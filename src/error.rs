//! The domain error: every failure a request can meet, with no HTTP types. `http::error` maps each
//! variant, exhaustively, to a status and an OCI error code.

/// A failure a client or operator can act on; internal causes are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NameInvalid(String),
    #[error("{0}")]
    NameUnknown(String),
    #[error("{0}")]
    TagInvalid(String),
    /// A push would move a tag the repository's tag mutability setting protects; the message is
    /// ECR's (see [`crate::policy::mutability::overwrite_refused`]).
    #[error("{0}")]
    TagImmutable(String),
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    BlobUnknown(String),
    #[error("{0}")]
    BlobUploadUnknown(String),
    #[error("{0}")]
    BlobUploadInvalid(String),
    /// A chunk that does not start where the upload currently ends.
    #[error("{message}")]
    UploadOutOfOrder { message: String, offset: u64 },
    /// A blob `Range` that cannot be served from an object of `size` bytes.
    #[error("range not satisfiable: {message}")]
    RangeNotSatisfiable { message: String, size: u64 },
    #[error("{0}")]
    SizeInvalid(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("{0}")]
    ManifestTooComplex(String),
    #[error("{0}")]
    ManifestTooLarge(String),
    #[error("{0}")]
    ManifestUnknown(String),
    #[error("{0}")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials are missing, invalid or insufficient; `challenge` is the `WWW-Authenticate`
    /// value that tells the client how to get better ones.
    #[error("{message}")]
    AuthenticationRequired { message: String, challenge: String },
    /// A signed-in caller's token lacks the scope a request needs (RFC 6750: 403 with an
    /// `insufficient_scope` challenge naming the scope, so clients fetch a better token).
    #[error("{message}")]
    InsufficientScope { message: String, challenge: String },
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The thing to create exists already (admin APIs).
    #[error("{0}")]
    AlreadyExists(String),
    /// A repository that still holds images cannot be deleted without `force` (admin APIs).
    #[error("{0}")]
    NotEmpty(String),
    /// An admin API parameter or document is invalid; the message names the field.
    #[error("{0}")]
    InvalidParameter(String),
    /// An admin API object (user, group, policy, ...) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Too many attempts (failed logins); the client may retry after the given time.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A dependency (database, object storage) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The message meant for the client.
    pub fn message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error; the cause is in the server log".into(),
            other => other.to_string(),
        }
    }

    /// A copy for a second recipient (one failed transaction answers several callers); the
    /// class survives, the message is kept.
    pub fn duplicate(&self) -> Self {
        match self {
            Error::Unavailable(m) => Error::Unavailable(m.clone()),
            other => Error::Internal(other.to_string()),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Connection-level failures: the database is unreachable or the link broke mid-query.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => {
                Error::Unavailable(format!("metadata database unavailable: {e}"))
            }
            sqlx::Error::Database(db) if is_transient_db_error(db.as_ref()) => {
                Error::Unavailable(format!("metadata database busy or unavailable: {db}"))
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

fn is_transient_db_error(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // SQLite BUSY/LOCKED, PostgreSQL class 08 (connection), 57P0x (shutdown), 40001 (serialization).
    matches!(code.as_str(), "5" | "6" | "517" | "40001" | "40P01")
        || code.starts_with("08")
        || code.starts_with("57P")
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => {
                Error::Internal(format!("object missing from storage: {e}"))
            }
            other => Error::Unavailable(format!("object storage error: {other}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("i/o: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
