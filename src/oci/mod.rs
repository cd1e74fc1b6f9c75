//! Pure OCI vocabulary, no I/O: validated names, tags, digests, streaming hashers, media types and manifest parsing.
//! Depends on nothing else in Berth.

pub mod digest;
pub mod manifest;
pub mod name;

pub use digest::{Algorithm, Digest, Hasher};
pub use manifest::{Descriptor, ManifestKind, ParsedManifest};
pub use name::{Reference, RepoName, Tag};
