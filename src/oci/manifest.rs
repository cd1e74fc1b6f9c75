//! Manifest media types and lenient-but-checked parsing of image manifests and indexes
//! (OCI and Docker schema 2): enough structure to find references, subject and artifact type,
//! while the stored bytes stay exactly what the client sent.

use serde::Deserialize;

use super::digest::Digest;
use crate::error::Error;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Whether a manifest lists blobs (image) or other manifests (index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// A content descriptor as found in manifests.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

/// A checked descriptor.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: i64,
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Layers that need not be in the registry: non-distributable media types and descriptors with `urls`.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains(".nondistributable.")
            || self.media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What Berth needs to know about a manifest to validate and index it.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub kind: ManifestKind,
    pub media_type: String,
    /// `artifactType`, or for image manifests without one, the config's media type (referrers API rule).
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    /// Layers (image) or child manifests (index).
    pub references: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::ManifestInvalid(msg.into())
}

fn check_descriptor(raw: RawDescriptor, field: &str) -> Result<Descriptor, Error> {
    let media_type = raw
        .media_type
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid(format!("{field}: descriptor has no mediaType")))?;
    let digest_text = raw
        .digest
        .ok_or_else(|| invalid(format!("{field}: descriptor has no digest")))?;
    let digest =
        Digest::parse(&digest_text).map_err(|e| invalid(format!("{field}: {}", e.message())))?;
    let size = raw
        .size
        .filter(|s| *s >= 0)
        .ok_or_else(|| invalid(format!("{field}: descriptor needs a non-negative size")))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls: raw.urls.unwrap_or_default(),
    })
}

/// Media type families the registry stores as manifests.
pub fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// Content types that say only "JSON" or "bytes", not which manifest this is (the last is what
/// `curl --data-binary` sends when no type is given).
fn is_generic(content_type: &str) -> bool {
    [
        "application/json",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
    ]
    .iter()
    .any(|g| content_type.eq_ignore_ascii_case(g))
}

/// The document's own `mediaType` field, when it is a JSON object that has one.
pub fn media_type_field(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MediaTypeOnly {
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeOnly>(body)
        .ok()?
        .media_type
}

/// Parses and checks a manifest body. `content_type` is the request's Content-Type, used when
/// the document has no `mediaType` field (as `podman import` sends); when the document has one,
/// a Content-Type naming another type is refused.
pub fn parse(
    body: &[u8],
    content_type: Option<&str>,
    max_descriptors: usize,
) -> Result<ParsedManifest, Error> {
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "manifest is not valid JSON of the expected shape: {e}"
        ))
    })?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let media_type = match (raw.media_type.as_deref(), content_type) {
        // Distribution spec, "Pushing Manifests": if a manifest includes a `mediaType` field,
        // clients MUST set the Content-Type to it; clients pulling it later reject a manifest
        // whose `mediaType` contradicts the Content-Type it is served with. A generic JSON type
        // (or none) claims nothing, so curl-style uploads still work.
        (Some(doc), Some(ct)) if !is_generic(ct) && !ct.eq_ignore_ascii_case(doc) => {
            return Err(invalid(format!(
                "the manifest's mediaType is '{doc}' but it was sent with Content-Type '{ct}'; \
                 send the manifest's mediaType as its Content-Type"
            )))
        }
        (Some(doc), _) => doc.to_owned(),
        (None, Some(ct)) if kind_of(ct).is_some() => ct.to_owned(),
        (None, _) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, _) if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, other) => {
            return Err(invalid(format!(
                "manifest has no mediaType field and the Content-Type ({}) is not a manifest type",
                other.unwrap_or("none")
            )))
        }
    };
    if media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
        return Err(invalid(
            "Docker schema 1 manifests are deprecated and not accepted; push schema 2 or OCI",
        ));
    }
    let kind = kind_of(&media_type).ok_or_else(|| {
        invalid(format!(
            "unsupported manifest media type '{media_type}'; expected an OCI or Docker schema 2 manifest or index"
        ))
    })?;
    match raw.schema_version.as_ref().and_then(|v| v.as_i64()) {
        Some(2) => {}
        _ => return Err(invalid("schemaVersion must be 2")),
    }

    let (config, references) = match kind {
        ManifestKind::Image => {
            if raw.manifests.is_some() {
                return Err(invalid(
                    "an image manifest must not have a 'manifests' field",
                ));
            }
            let config = raw
                .config
                .ok_or_else(|| invalid("an image manifest needs a config descriptor"))?;
            let layers = raw.layers.unwrap_or_default();
            if layers.len() > max_descriptors {
                return Err(Error::ManifestTooComplex(format!(
                    "manifest has {} layers; the limit is {max_descriptors}",
                    layers.len()
                )));
            }
            let layers = layers
                .into_iter()
                .enumerate()
                .map(|(i, d)| check_descriptor(d, &format!("layers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            (Some(check_descriptor(config, "config")?), layers)
        }
        ManifestKind::Index => {
            if raw.layers.is_some() || raw.config.is_some() {
                return Err(invalid(
                    "an index must not have 'config' or 'layers' fields",
                ));
            }
            let manifests = raw.manifests.unwrap_or_default();
            if manifests.len() > max_descriptors {
                return Err(Error::ManifestTooComplex(format!(
                    "index has {} manifests; the limit is {max_descriptors}",
                    manifests.len()
                )));
            }
            let manifests = manifests
                .into_iter()
                .enumerate()
                .map(|(i, d)| check_descriptor(d, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            (None, manifests)
        }
    };
    let subject = raw
        .subject
        .map(|s| check_descriptor(s, "subject"))
        .transpose()?;
    let artifact_type = raw
        .artifact_type
        .filter(|a| !a.is_empty())
        .or_else(|| config.as_ref().map(|c| c.media_type.clone()));
    Ok(ParsedManifest {
        kind,
        media_type,
        artifact_type,
        config,
        references,
        subject,
        annotations: raw.annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn image_without_media_type_uses_content_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{D}","size":0}},"layers":[]}}"#
        );
        let m = parse(body.as_bytes(), Some(DOCKER_MANIFEST), 100).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.docker.container.image.v1+json")
        );
    }

    #[test]
    fn media_type_field_must_agree_with_a_specific_content_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a","digest":"{D}","size":0}},"layers":[]}}"#
        );
        let refused = parse(body.as_bytes(), Some(DOCKER_MANIFEST), 10);
        assert!(
            matches!(&refused, Err(Error::ManifestInvalid(m)) if m.contains(DOCKER_MANIFEST) && m.contains(OCI_MANIFEST)),
            "{refused:?}"
        );
        let upper = OCI_MANIFEST.to_uppercase();
        for ct in [
            None,
            Some(""),
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
            Some(upper.as_str()),
            Some(OCI_MANIFEST),
        ] {
            assert_eq!(
                parse(body.as_bytes(), ct, 10).unwrap().media_type,
                OCI_MANIFEST
            );
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(parse(b"{", None, 10).is_err());
        assert!(parse(br#"{"schemaVersion":1}"#, Some(OCI_MANIFEST), 10).is_err());
        let bad_digest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(matches!(
            parse(bad_digest.as_bytes(), None, 10),
            Err(Error::ManifestInvalid(_))
        ));
    }

    #[test]
    fn descriptor_limit() {
        let one = format!(r#"{{"mediaType":"a","digest":"{D}","size":0}}"#);
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{one},{one},{one}]}}"#
        );
        assert!(matches!(
            parse(body.as_bytes(), None, 2),
            Err(Error::ManifestTooComplex(_))
        ));
        assert!(parse(body.as_bytes(), None, 3).is_ok());
    }
}
