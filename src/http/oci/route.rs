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

/// The route templates of `/v2` (the metrics' `route` label), in the shape [`Route::parse`]
/// gives them.
pub const TEMPLATES: [&str; 8] = [
    "/v2/",
    "/v2/_catalog",
    "/v2/{name}/tags/list",
    "/v2/{name}/manifests/{reference}",
    "/v2/{name}/blobs/{digest}",
    "/v2/{name}/blobs/uploads/",
    "/v2/{name}/blobs/uploads/{uuid}",
    "/v2/{name}/referrers/{digest}",
];

/// The template of the path after `/v2/` by its shape alone, as [`Route::parse`] reads it but
/// without validating the name or allocating (it runs on every request for the metrics);
/// `None` when no endpoint has that shape.
pub fn template(path: &str) -> Option<&'static str> {
    match path {
        "" => return Some(TEMPLATES[0]),
        "_catalog" => return Some(TEMPLATES[1]),
        _ => {}
    }
    let mut from_right = path.rsplit('/');
    let last = from_right.next()?;
    let kind = from_right.next()?;
    let before = from_right.next();
    let has_name = |before: Option<&str>| before.is_some();
    if last.is_empty() && kind == "uploads" && before == Some("blobs") {
        return from_right.next().map(|_| TEMPLATES[5]);
    }
    if last == "uploads" && kind == "blobs" && has_name(before) {
        return Some(TEMPLATES[5]);
    }
    if last.is_empty() {
        return None;
    }
    match kind {
        "manifests" => Some(TEMPLATES[3]),
        "blobs" => Some(TEMPLATES[4]),
        "referrers" => Some(TEMPLATES[7]),
        "tags" if last == "list" => Some(TEMPLATES[2]),
        "uploads" if before == Some("blobs") && from_right.next().is_some() => Some(TEMPLATES[6]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_the_parsed_routes() {
        let cases = [
            ("", Some("/v2/")),
            ("_catalog", Some("/v2/_catalog")),
            (
                "a/blobs/manifests/x",
                Some("/v2/{name}/manifests/{reference}"),
            ),
            ("team/app/blobs/uploads/", Some("/v2/{name}/blobs/uploads/")),
            ("team/app/blobs/uploads", Some("/v2/{name}/blobs/uploads/")),
            (
                "t/blobs/uploads/abc",
                Some("/v2/{name}/blobs/uploads/{uuid}"),
            ),
            ("t/blobs/sha256:x", Some("/v2/{name}/blobs/{digest}")),
            ("t/tags/list", Some("/v2/{name}/tags/list")),
            (
                "t/referrers/sha256:x",
                Some("/v2/{name}/referrers/{digest}"),
            ),
            ("t/unknown/x", None),
            ("t/manifests/", None),
            ("blobs/uploads/", None),
            ("x", None),
        ];
        for (path, template) in cases {
            assert_eq!(super::template(path), template, "{path:?}");
            if let Ok(Some(route)) = Route::parse(path) {
                let expected = match route {
                    Route::Base => TEMPLATES[0],
                    Route::Catalog => TEMPLATES[1],
                    Route::Tags { .. } => TEMPLATES[2],
                    Route::Manifest { .. } => TEMPLATES[3],
                    Route::Blob { .. } => TEMPLATES[4],
                    Route::UploadStart { .. } => TEMPLATES[5],
                    Route::Upload { .. } => TEMPLATES[6],
                    Route::Referrers { .. } => TEMPLATES[7],
                };
                assert_eq!(template, Some(expected), "{path:?}");
            }
        }
    }

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
