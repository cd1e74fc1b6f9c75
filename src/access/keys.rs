//! Token signing keys shared by every replica: a configured PEM key, or keys generated once and
//! kept in the metadata database (encrypted there by `meta`), with rotation (the old keys keep
//! verifying until they retire).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::auth::token::{KeyRing, SigningKey};
use crate::error::{Error, Result};
use crate::meta::{now_millis, IdentityStore};

pub struct SigningKeys {
    ring: RwLock<Arc<KeyRing>>,
    /// The key from `auth.signing_key_file`, which always signs when set.
    configured: Option<SigningKey>,
    /// When a token with an unknown key last forced a reload.
    last_forced_reload: std::sync::Mutex<Option<Instant>>,
}

/// The least time between two reloads forced by a token signed with an unknown key.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl SigningKeys {
    /// Loads the keys, generating the first one if the database has none (concurrent first
    /// starts may each insert one; all then agree on the newest).
    pub async fn load(identity: &IdentityStore, configured_file: &str) -> Result<SigningKeys> {
        let configured = if configured_file.is_empty() {
            None
        } else {
            crate::secrets::warn_if_others_may_read(
                std::path::Path::new(configured_file),
                "auth.signing_key_file",
            );
            let pem = std::fs::read_to_string(configured_file).map_err(|e| {
                Error::Internal(format!(
                    "cannot read auth.signing_key_file {configured_file}: {e}"
                ))
            })?;
            Some(SigningKey::from_pem(&pem).map_err(|e| {
                Error::Internal(format!("auth.signing_key_file {configured_file}: {e}"))
            })?)
        };
        let ring = build_ring(identity, configured.as_ref()).await?;
        Ok(SigningKeys {
            ring: RwLock::new(Arc::new(ring)),
            configured,
            last_forced_reload: std::sync::Mutex::new(None),
        })
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("key ring lock").clone()
    }

    /// Re-reads the keys (another replica may have rotated them).
    pub async fn reload(&self, identity: &IdentityStore) -> Result<()> {
        let ring = build_ring(identity, self.configured.as_ref()).await?;
        *self.ring.write().expect("key ring lock") = Arc::new(ring);
        Ok(())
    }

    /// Reloads for a token signed with an unknown key, at most once a second (so forged kids
    /// cannot turn every request into a database read); true if it did.
    pub async fn reload_if_stale(&self, identity: &IdentityStore) -> Result<bool> {
        {
            let mut last = self.last_forced_reload.lock().expect("reload lock");
            if last.is_some_and(|at| at.elapsed() < FORCED_RELOAD_INTERVAL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.reload(identity).await?;
        Ok(true)
    }

    /// Generates a new active key; the others keep verifying for `overlap`, then retire.
    pub async fn rotate(&self, identity: &IdentityStore, overlap: Duration) -> Result<String> {
        let key = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(Error::internal)?;
        let now = now_millis();
        identity
            .insert_signing_key(key.kid(), &key.to_pkcs8_pem(), now)
            .await?;
        identity
            .retire_signing_keys_except(key.kid(), now + overlap.as_millis() as i64)
            .await?;
        self.reload(identity).await?;
        Ok(key.kid().to_owned())
    }
}

async fn build_ring(identity: &IdentityStore, configured: Option<&SigningKey>) -> Result<KeyRing> {
    let mut rows = identity.signing_keys(now_millis()).await?;
    if rows.is_empty() && configured.is_none() {
        let key = tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(Error::internal)?;
        identity
            .insert_signing_key(key.kid(), &key.to_pkcs8_pem(), now_millis())
            .await?;
        rows = identity.signing_keys(now_millis()).await?;
    }
    let mut stored = Vec::with_capacity(rows.len());
    for row in &rows {
        match SigningKey::from_pem(&row.pem) {
            Ok(key) => stored.push(key),
            Err(e) => {
                tracing::error!(kid = %row.kid, error = %e, "unusable signing key in the database; skipped")
            }
        }
    }
    let mut keys = stored.into_iter();
    let active = match configured {
        Some(key) => key.clone(),
        None => keys
            .next()
            .ok_or_else(|| Error::Internal("no usable token signing key".into()))?,
    };
    let mut ring = KeyRing::new(active);
    for key in keys {
        ring.accept(key.verifying_key().clone());
    }
    Ok(ring)
}
