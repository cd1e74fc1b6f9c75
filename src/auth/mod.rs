//! Authentication building blocks (no I/O): password hashing, Docker registry tokens (JWT), scopes, and AWS SigV4 verification.
//!
//! Everything here is pure: no database, no HTTP server, no clock. Callers pass the current time,
//! look credentials up themselves, and run the deliberately slow argon2 calls on a blocking thread.
//!
//! - [`password`]: argon2id hashing of passwords, constant-time comparison, credential generation.
//! - [`credential`]: the kinds of credential and which door accepts which.
//! - [`basic`]: the HTTP `Basic` authorization header (docker login, ECR's `AWS:<token>`).
//! - [`scope`]: Docker token scopes (`repository:team/app:pull,push`) and `WWW-Authenticate` challenges.
//! - [`token`]: ES256 registry tokens (access and refresh), signing keys, key rotation, JWKS.
//! - [`sigv4`]: AWS Signature Version 4 verification for the ECR-compatible JSON API.

pub mod basic;
pub mod credential;
pub mod password;
pub mod scope;
pub mod sigv4;
pub mod token;

pub use password::secret_eq;
