//! Registries this one trusts (`[federation]`): each one's token signing keys, read from its
//! JWKS (a URL or a file) at start and again every `jwks_refresh_secs`, so that a key rotated
//! there is followed here. When a JWKS cannot be read or does not parse, the last good keys stay
//! in use and the log and the status say why. A key's id is its RFC 7638 thumbprint, computed
//! here from the key itself: a JWKS cannot pass one key off under another's id.

use std::sync::RwLock;
use std::time::Duration;

use crate::auth::token::{Jwks, VerifyingKey};
use crate::config::{FederationConfig, TrustedRegistryConfig};
use crate::meta::now_millis;

/// How long one JWKS read may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS read (a registry publishes a few keys of about 200 bytes each).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// A password signed by a key we have not read yet makes us read that registry's JWKS again
/// (it may have just rotated), but no more often than this: strangers' passwords must not turn
/// this registry into a load generator against a trusted one.
const MIN_UNKNOWN_KEY_REFRESH: Duration = Duration::from_secs(10);

/// The trusted registries and the keys last read from each.
pub struct TrustedRegistries {
    registries: Vec<Trusted>,
    http: reqwest::Client,
}

struct Trusted {
    config: TrustedRegistryConfig,
    state: RwLock<KeyState>,
    /// When a password with an unknown key last made us read the JWKS early.
    early_refresh: tokio::sync::Mutex<Option<std::time::Instant>>,
}

#[derive(Default, Clone)]
struct KeyState {
    keys: Vec<VerifyingKey>,
    /// When the keys were last read successfully (Unix ms).
    refreshed_at: Option<i64>,
    /// Why the last read failed, if it did (the keys above are then the last good ones).
    error: Option<String>,
}

/// What this registry knows of one trusted registry now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRegistryStatus {
    pub registry_id: String,
    pub region: String,
    pub url: String,
    pub jwks: String,
    /// Ids (thumbprints) of the keys its tokens are verified with.
    pub key_ids: Vec<String>,
    /// When its JWKS was last read successfully (Unix ms); `None` before the first success.
    pub refreshed_at: Option<i64>,
    /// Why the last read failed; `None` when it succeeded.
    pub error: Option<String>,
}

impl TrustedRegistries {
    pub fn new(config: &FederationConfig) -> TrustedRegistries {
        TrustedRegistries {
            registries: config
                .registries
                .iter()
                .map(|c| Trusted {
                    config: c.clone(),
                    state: RwLock::new(KeyState::default()),
                    early_refresh: tokio::sync::Mutex::new(None),
                })
                .collect(),
            http: reqwest::Client::builder()
                .timeout(JWKS_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.registries.is_empty()
    }

    /// Whether a registry of account `registry_id` (in any region) is trusted.
    pub fn contains(&self, registry_id: &str) -> bool {
        self.find(registry_id, None).is_some()
    }

    /// The trusted registry of account `registry_id`, in `region` when given (an account may be
    /// listed in several regions; without a region, the first listed).
    fn find(&self, registry_id: &str, region: Option<&str>) -> Option<&Trusted> {
        self.registries.iter().find(|r| {
            r.config.registry_id == registry_id
                && region.map_or(true, |region| r.config.region == region)
        })
    }

    /// The trusted registry `registry_id` as configured (the first listed, across regions).
    pub fn config(&self, registry_id: &str) -> Option<&TrustedRegistryConfig> {
        self.find(registry_id, None).map(|r| &r.config)
    }

    /// The trusted registry `registry_id` in `region` as configured.
    pub fn config_in(&self, registry_id: &str, region: &str) -> Option<&TrustedRegistryConfig> {
        self.find(registry_id, Some(region)).map(|r| &r.config)
    }

    /// Reads `registry_id`'s JWKS again now, because a password named a key we do not have,
    /// unless that happened less than [`MIN_UNKNOWN_KEY_REFRESH`] ago. Callers then look the
    /// key up once more (a concurrent caller's read may have brought it too).
    pub async fn refresh_for_unknown_key(&self, registry_id: &str, region: Option<&str>) {
        let Some(registry) = self.find(registry_id, region) else {
            return;
        };
        // Concurrent callers wait for the one read rather than each starting their own.
        let mut last = registry.early_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < MIN_UNKNOWN_KEY_REFRESH) {
            return;
        }
        self.refresh_one(registry).await;
        *last = Some(std::time::Instant::now());
    }

    /// Reads every trusted registry's JWKS again (all at once); a failure keeps that
    /// registry's last good keys.
    pub async fn refresh(&self) {
        futures::future::join_all(self.registries.iter().map(|r| self.refresh_one(r))).await;
    }

    async fn refresh_one(&self, registry: &Trusted) {
        let source = registry.config.jwks.as_str();
        let read = read_jwks(&self.http, source).await;
        let mut state = registry.state.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(keys) => {
                let kids = |keys: &[VerifyingKey]| -> Vec<String> {
                    keys.iter().map(|k| k.kid().to_owned()).collect()
                };
                if kids(&keys) != kids(&state.keys) {
                    tracing::info!(registry = %registry.config.registry_id, keys = ?kids(&keys),
                        "trusted registry's signing keys loaded");
                }
                *state = KeyState {
                    keys,
                    refreshed_at: Some(now_millis()),
                    error: None,
                };
            }
            Err(error) => {
                tracing::warn!(registry = %registry.config.registry_id, jwks = source, %error,
                    kept = state.keys.len(),
                    "cannot read a trusted registry's JWKS; keeping its last good keys");
                state.error = Some(error);
            }
        }
    }

    /// The key `kid` of trusted registry `registry_id` (in `region` when given), if that
    /// registry is trusted and publishes it.
    pub fn verifying_key(
        &self,
        registry_id: &str,
        region: Option<&str>,
        kid: &str,
    ) -> Option<VerifyingKey> {
        let registry = self.find(registry_id, region)?;
        let state = registry.state.read().unwrap_or_else(|e| e.into_inner());
        state.keys.iter().find(|k| k.kid() == kid).cloned()
    }

    /// Every trusted registry, in configuration order.
    pub fn status(&self) -> Vec<TrustedRegistryStatus> {
        self.registries
            .iter()
            .map(|r| {
                let state = r.state.read().unwrap_or_else(|e| e.into_inner()).clone();
                TrustedRegistryStatus {
                    registry_id: r.config.registry_id.clone(),
                    region: r.config.region.clone(),
                    url: r.config.url.clone(),
                    jwks: r.config.jwks.clone(),
                    key_ids: state.keys.iter().map(|k| k.kid().to_owned()).collect(),
                    refreshed_at: state.refreshed_at,
                    error: state.error,
                }
            })
            .collect()
    }
}

/// The keys of the JWKS at `source`: an `http(s)://` URL or a file path.
async fn read_jwks(http: &reqwest::Client, source: &str) -> Result<Vec<VerifyingKey>, String> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        fetch(http, source).await?
    } else {
        let size = tokio::fs::metadata(source)
            .await
            .map_err(|e| format!("cannot read {source}: {e}"))?
            .len();
        if size > MAX_JWKS_BYTES as u64 {
            return Err(format!(
                "{source} holds {size} bytes, more than a JWKS ({MAX_JWKS_BYTES} at most)"
            ));
        }
        tokio::fs::read(source)
            .await
            .map_err(|e| format!("cannot read {source}: {e}"))?
    };
    parse_jwks(&bytes)
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    // The timeout is set per request too: a client built without one must not wait forever.
    let mut response = http
        .get(url)
        .timeout(JWKS_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{url} sent more than {MAX_JWKS_BYTES} bytes, more than a JWKS"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The ES256 keys of a JWKS document; a document without a usable key is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let jwks: Jwks =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let keys = jwks
        .keys
        .iter()
        .map(VerifyingKey::from_jwk)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("a key of the JWKS is unusable: {e}"))?;
    if keys.is_empty() {
        return Err("the JWKS holds no keys".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::SigningKey;

    fn config(jwks: &str) -> FederationConfig {
        FederationConfig {
            registries: vec![TrustedRegistryConfig {
                registry_id: "111111111111".into(),
                region: "eu-west-1".into(),
                url: "https://b.example".into(),
                jwks: jwks.into(),
            }],
            jwks_refresh_secs: 60,
            password_ttl_secs: 3600,
        }
    }

    fn jwks_of(keys: &[&SigningKey]) -> String {
        serde_json::to_string(&Jwks {
            keys: keys
                .iter()
                .map(|k| k.verifying_key().jwk().clone())
                .collect(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn file_keys_are_loaded_followed_and_kept_when_the_file_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.jwks");
        let (one, two) = (SigningKey::generate(), SigningKey::generate());
        std::fs::write(&path, jwks_of(&[&one])).unwrap();
        let trusted = TrustedRegistries::new(&config(path.to_str().unwrap()));
        assert!(trusted
            .verifying_key("111111111111", None, one.kid())
            .is_none());
        trusted.refresh().await;
        assert!(trusted
            .verifying_key("111111111111", None, one.kid())
            .is_some());
        assert!(trusted
            .verifying_key("222222222222", None, one.kid())
            .is_none());
        // By region too: the registry is listed in eu-west-1 only.
        assert!(trusted
            .verifying_key("111111111111", Some("eu-west-1"), one.kid())
            .is_some());
        assert!(trusted
            .verifying_key("111111111111", Some("ap-south-1"), one.kid())
            .is_none());
        let status = &trusted.status()[0];
        assert_eq!(status.key_ids, vec![one.kid().to_owned()]);
        assert!(status.refreshed_at.is_some() && status.error.is_none());

        // A rotation there: the new key is trusted, the retired one no longer.
        std::fs::write(&path, jwks_of(&[&two])).unwrap();
        trusted.refresh().await;
        assert!(trusted
            .verifying_key("111111111111", None, two.kid())
            .is_some());
        assert!(trusted
            .verifying_key("111111111111", None, one.kid())
            .is_none());

        // A broken or missing JWKS keeps the last good keys and says why.
        for broken in ["{\"keys\":[]}", "not json", "{\"keys\":[{\"kty\":\"EC\"}]}"] {
            std::fs::write(&path, broken).unwrap();
            trusted.refresh().await;
            assert!(trusted
                .verifying_key("111111111111", None, two.kid())
                .is_some());
            assert!(trusted.status()[0].error.is_some(), "{broken}");
        }
        std::fs::remove_file(&path).unwrap();
        trusted.refresh().await;
        let status = &trusted.status()[0];
        assert_eq!(status.key_ids, vec![two.kid().to_owned()]);
        assert!(status.error.as_deref().unwrap().contains("cannot read"));
    }

    #[test]
    fn a_jwks_cannot_relabel_a_key() {
        let key = SigningKey::generate();
        let mut jwk = key.verifying_key().jwk().clone();
        jwk.kid = "someone-elses-kid".into();
        let keys = parse_jwks(&serde_json::to_vec(&Jwks { keys: vec![jwk] }).unwrap()).unwrap();
        assert_eq!(keys[0].kid(), key.kid());
    }
}
