//! Repository names, tags and references, validated against the distribution spec's patterns
//! before they reach SQL or storage paths.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::digest::Digest;
use crate::error::Error;

static NAME_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$").unwrap());
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap());

/// Clients cap `host/name` at 255 characters; we cap the name alone there.
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name such as `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(Error::NameInvalid(format!(
                "repository name must be 1 to {MAX_NAME_LEN} characters"
            )));
        }
        for component in s.split('/') {
            if !NAME_COMPONENT.is_match(component) {
                return Err(Error::NameInvalid(format!(
                    "invalid repository name '{}': each '/'-separated component must be lowercase letters and digits, \
                     separated by '.', '_', '__' or dashes",
                    s.escape_default()
                )));
            }
        }
        Ok(RepoName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag such as `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if TAG.is_match(s) {
            Ok(Tag(s.to_owned()))
        } else {
            Err(Error::TagInvalid(format!(
                "invalid tag '{}': a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', \
                 and must not start with '.' or '-'",
                s.chars().take(140).collect::<String>().escape_default()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The last path segment of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference containing ':' is a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "team/app", "a.b/c_d/e__f/g--h", "x0/1"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a//b", "/a", "a/", "-a", "a-", "a/../b", "..", "a b", "a:b", "a___b",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b.c_d"] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }
}
