//! Parses `/v2/...` paths from the right into typed routes, since repository names contain `/`:
//! the last segment is a reference, digest or upload id, the one before names the kind, and the
//! rest is the repository name (so `a/blobs/manifests/x` is manifest `x` of repository `a/blobs`).

use crate::error::{Error, Result};
use crate::oci::RepoName;

/// One OCI Distribution endpoint with its validated repository name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags { name: RepoName },
    Manifest { name: RepoName, reference: String },
    Blob { name: RepoName, digest: String },
    UploadStart { name: RepoName },
    Upload { name: RepoName, id: String },
    Referrers { name: RepoName, digest: String },
}

fn name_of(segments: &[&str]) -> Result<RepoName> {
    RepoName::parse(&segments.join("/"))
}

impl Route {
    /// The repository the route is about, if any.
    pub fn name(&self) -> Option<&RepoName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }

    /// Parses the path after `/v2/`. `None` means no endpoint has that shape.
    pub fn parse(path: &str) -> Result<Option<Route>> {
        if path.is_empty() {
            return Ok(Some(Route::Base));
        }
        if path == "_catalog" {
            return Ok(Some(Route::Catalog));
        }
        let segments: Vec<&str> = path.split('/').collect();
        let n = segments.len();
        if n < 2 {
            return Ok(None);
        }
        let last = segments[n - 1];
        let kind = segments[n - 2];
        // `<name>/blobs/uploads/` and `<name>/blobs/uploads`
        if n >= 3 && last.is_empty() && kind == "uploads" && segments[n - 3] == "blobs" && n > 3 {
            return Ok(Some(Route::UploadStart {
                name: name_of(&segments[..n - 3])?,
            }));
        }
        if n >= 3 && last == "uploads" && kind == "blobs" {
            return Ok(Some(Route::UploadStart {
                name: name_of(&segments[..n - 2])?,
            }));
        }
        if last.is_empty() {
            return Ok(None);
        }
        let route = match kind {
            "manifests" => Route::Manifest {
                name: name_of(&segments[..n - 2])?,
                reference: last.to_owned(),
            },
            "blobs" => Route::Blob {
                name: name_of(&segments[..n - 2])?,
                digest: last.to_owned(),
            },
            "referrers" => Route::Referrers {
                name: name_of(&segments[..n - 2])?,
                digest: last.to_owned(),
            },
            "tags" if last == "list" => Route::Tags {
                name: name_of(&segments[..n - 2])?,
            },
            "uploads" if n >= 4 && segments[n - 3] == "blobs" => Route::Upload {
                name: name_of(&segments[..n - 3])?,
                id: last.to_owned(),
            },
            _ => return Ok(None),
        };
        if matches!(&route, Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::Referrers { name, .. } if name.as_str().is_empty())
        {
            return Err(Error::NameInvalid("repository name is empty".into()));
        }
        Ok(Some(route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn parses_from_the_right() {
        assert_eq!(Route::parse("").unwrap(), Some(Route::Base));
        assert_eq!(Route::parse("_catalog").unwrap(), Some(Route::Catalog));
        assert_eq!(
            Route::parse("a/blobs/manifests/x").unwrap(),
            Some(Route::Manifest {
                name: name("a/blobs"),
                reference: "x".into()
            })
        );
        assert_eq!(
            Route::parse("team/app/blobs/uploads/").unwrap(),
            Some(Route::UploadStart {
                name: name("team/app")
            })
        );
        assert_eq!(
            Route::parse("team/app/blobs/uploads").unwrap(),
            Some(Route::UploadStart {
                name: name("team/app")
            })
        );
        assert_eq!(
            Route::parse("t/blobs/uploads/abc").unwrap(),
            Some(Route::Upload {
                name: name("t"),
                id: "abc".into()
            })
        );
        assert_eq!(
            Route::parse("t/tags/list").unwrap(),
            Some(Route::Tags { name: name("t") })
        );
        assert_eq!(
            Route::parse("t/referrers/sha256:x").unwrap(),
            Some(Route::Referrers {
                name: name("t"),
                digest: "sha256:x".into()
            })
        );
        assert_eq!(Route::parse("t/unknown/x").unwrap(), None);
        assert!(Route::parse("UP/manifests/x").is_err());
        assert!(Route::parse("a//b/manifests/x").is_err());
    }
}
