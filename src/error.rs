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
    /// A thing a management operation names does not exist, of a kind ECR answers with its own
    /// exception (`RepositoryPolicyNotFoundException`, ...).
    #[error("{1}")]
    Missing(Missing, String),
    /// A thing a management operation creates exists already, of a kind ECR answers with its
    /// own exception (`TemplateAlreadyExistsException`, ...).
    #[error("{1}")]
    Exists(Existing, String),
    /// A resource tag is invalid (key, value, or given twice).
    #[error("{0}")]
    InvalidTag(String),
    /// More resource tags than a resource may have.
    #[error("{0}")]
    TooManyTags(String),
    /// An image's digest is not the digest of its manifest.
    #[error("{0}")]
    ImageDigestMismatch(String),
    /// Too many attempts (failed logins); the client may retry after the given time.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// A dependency (database, object storage) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Blob storage or the metadata database refuses writes but not reads: a read-only file
    /// system, a directory without write permission, a bucket that denies PUTs, a read-only
    /// database. Pushes fail until write access is back; pulls keep working.
    #[error("{0}")]
    WritesRefused(String),
    /// Blob storage or the metadata database is out of space (ENOSPC, EDQUOT, SQLITE_FULL,
    /// PostgreSQL's `disk_full`, an S3 server's 507). Writes are refused; reads keep working, and
    /// writes work again as soon as space is freed.
    #[error("{0}")]
    InsufficientStorage(String),
    /// A bug or an unexpected failure; the cause is logged, the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kinds of thing [`Error::Missing`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    RepositoryPolicy,
    RegistryPolicy,
    LifecyclePolicy,
    LifecyclePolicyPreview,
    RepositoryCreationTemplate,
    PullThroughCacheRule,
    Scan,
    Image,
    ReferencedImages,
    Secret,
}

/// The kinds of thing [`Error::Exists`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    RepositoryCreationTemplate,
    PullThroughCacheRule,
    Image,
}

impl Error {
    /// The variant's name: what an audit record says of a failure (messages may quote client
    /// input; this never does).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NameInvalid(_) => "NameInvalid",
            Error::NameUnknown(_) => "NameUnknown",
            Error::TagInvalid(_) => "TagInvalid",
            Error::TagImmutable(_) => "TagImmutable",
            Error::DigestInvalid(_) => "DigestInvalid",
            Error::Unsupported(_) => "Unsupported",
            Error::BlobUnknown(_) => "BlobUnknown",
            Error::BlobUploadUnknown(_) => "BlobUploadUnknown",
            Error::BlobUploadInvalid(_) => "BlobUploadInvalid",
            Error::UploadOutOfOrder { .. } => "UploadOutOfOrder",
            Error::RangeNotSatisfiable { .. } => "RangeNotSatisfiable",
            Error::SizeInvalid(_) => "SizeInvalid",
            Error::ManifestInvalid(_) => "ManifestInvalid",
            Error::ManifestTooComplex(_) => "ManifestTooComplex",
            Error::ManifestTooLarge(_) => "ManifestTooLarge",
            Error::ManifestUnknown(_) => "ManifestUnknown",
            Error::ManifestBlobUnknown(_) => "ManifestBlobUnknown",
            Error::PayloadTooLarge(_) => "PayloadTooLarge",
            Error::Unauthorized(_) => "Unauthorized",
            Error::AuthenticationRequired { .. } => "AuthenticationRequired",
            Error::InsufficientScope { .. } => "InsufficientScope",
            Error::Denied(_) => "Denied",
            Error::MethodNotAllowed(_) => "MethodNotAllowed",
            Error::AlreadyExists(_) => "AlreadyExists",
            Error::NotEmpty(_) => "NotEmpty",
            Error::InvalidParameter(_) => "InvalidParameter",
            Error::NotFound(_) => "NotFound",
            Error::Missing(..) => "Missing",
            Error::Exists(..) => "Exists",
            Error::InvalidTag(_) => "InvalidTag",
            Error::TooManyTags(_) => "TooManyTags",
            Error::ImageDigestMismatch(_) => "ImageDigestMismatch",
            Error::TooManyRequests { .. } => "TooManyRequests",
            Error::Unavailable(_) => "Unavailable",
            Error::WritesRefused(_) => "WritesRefused",
            Error::InsufficientStorage(_) => "InsufficientStorage",
            Error::Internal(_) => "Internal",
        }
    }
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
            Error::InsufficientStorage(m) => Error::InsufficientStorage(m.clone()),
            Error::WritesRefused(m) => Error::WritesRefused(m.clone()),
            other => Error::Internal(other.to_string()),
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// Whether this is storage or the database refusing a write for lack of space or write
    /// access (so the client is told, and readiness reports degraded writes).
    pub fn is_write_refusal(&self) -> bool {
        matches!(
            self,
            Error::InsufficientStorage(_) | Error::WritesRefused(_)
        )
    }
}

/// What the client of a refused write is told to expect.
const READS_STILL_WORK: &str = "pulls still work; pushes fail until an operator frees space";

/// The error for a write that `what` (e.g. "blob storage") refused with `e`: out of space (507),
/// read-only or not permitted (503), or else `None`.
pub fn write_refusal(what: &str, e: &std::io::Error) -> Option<Error> {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Some(Error::InsufficientStorage(format!(
            "insufficient storage: the registry's {what} is full ({e}); {READS_STILL_WORK}"
        ))),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => {
            Some(Error::WritesRefused(format!(
                "the registry's {what} refuses writes ({e}); pulls still work; pushes fail until \
                 write access is restored"
            )))
        }
        _ => None,
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
            sqlx::Error::Database(db) => match db_write_refusal(db.as_ref()) {
                Some(e) => e,
                None => Error::Internal(format!("database: {db}")),
            },
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

/// A database error that says the database is out of space or cannot write: SQLite's
/// SQLITE_FULL (13), SQLITE_READONLY (8 and its extended codes) and the I/O errors of writes
/// (SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE, _SHMSIZE, _DIR_FSYNC, ...: ENOSPC and EROFS surface
/// as these), PostgreSQL's `disk_full` (53100) and `read_only_sql_transaction` (25006).
fn db_write_refusal(db: &dyn sqlx::error::DatabaseError) -> Option<Error> {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let cause = db.message();
    let full = || {
        Error::InsufficientStorage(format!(
            "insufficient storage: the registry's metadata database is full ({cause}); {READS_STILL_WORK}"
        ))
    };
    let read_only = || {
        Error::WritesRefused(format!(
            "the registry's metadata database refuses writes ({cause}); pulls still work; \
             pushes fail until it can write again"
        ))
    };
    // PostgreSQL's SQLSTATEs have five characters; SQLite's (extended) result codes are
    // numbers below 10000.
    if code.len() == 5 {
        return match code.as_str() {
            "53100" => Some(full()),
            "25006" => Some(read_only()),
            _ => None,
        };
    }
    let extended: i64 = code.parse().ok()?;
    match extended & 0xff {
        13 => Some(full()),
        8 => Some(read_only()),
        // SQLITE_IOERR_READ (266) and SHORT_READ (522) are reads; the other I/O errors of
        // SQLITE_IOERR (10) come from writing, syncing or growing files.
        10 if !matches!(extended, 266 | 522) => Some(read_only()),
        _ => None,
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

/// The error for a write (PUT, multipart part or completion) that S3 refused: a bucket that
/// denies writes (403) is read-only for the registry, a server out of space (507, as MinIO
/// answers, or a quota) is full; anything else is the storage being unavailable.
pub fn object_write_error(e: object_store::Error) -> Error {
    let text = format!("{e}");
    match e {
        object_store::Error::NotFound { .. } => {
            Error::Internal(format!("object missing from storage: {e}"))
        }
        _ if text.contains("507 Insufficient Storage") || text.contains("QuotaExceeded") => {
            Error::InsufficientStorage(format!(
                "insufficient storage: the registry's blob storage is full ({text}); {READS_STILL_WORK}"
            ))
        }
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            Error::WritesRefused(format!(
                "the registry's blob storage refuses writes (object storage error: {text}); pulls \
                 may still work; pushes fail until the bucket accepts writes"
            ))
        }
        _ => Error::Unavailable(format!(
            "the registry's blob storage did not take a write (object storage error: {text})"
        )),
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // Out of space or a read-only file system can only come from writing.
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS) => write_refusal("storage", &e),
            _ => None,
        }
        .unwrap_or_else(|| Error::Internal(format!("i/o: {e}")))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
