//! Authentication: principals loaded through the cache, Basic logins (passwords, robot secrets,
//! ECR registry passwords), bearer tokens and access keys, each checked against what is stored
//! now (the 5-second rule).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::Digest as _;

use super::{
    parse_login_name, Access, Credential, Principal, PrincipalKind, RequestFacts, Subject,
    ECR_USERNAME,
};
use crate::auth::credential::CredentialKind;
use crate::auth::password::{credential_fingerprint, verify_against_dummy_hash, verify_secret};
use crate::auth::token::{Claims, TokenError, TokenType};
use crate::error::{Error, Result};
use crate::meta::{now_millis, PrincipalRow};
use crate::policy::Identity;

impl Access {
    /// The principal `kind`/`name`, at most [`super::CACHE_TTL`] old; `None` if it does not exist.
    pub async fn principal(
        &self,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Option<Arc<Principal>>> {
        let key = (kind, name.to_owned());
        if let Some(hit) = self.principals.get(&key) {
            return Ok(hit);
        }
        let loaded = match self.identity.principal(kind.as_str(), name).await? {
            Some(row) => Some(Arc::new(self.principal_from_row(kind, row).await?)),
            None => None,
        };
        self.principals.insert(key, loaded.clone());
        Ok(loaded)
    }

    async fn principal_from_row(
        &self,
        kind: PrincipalKind,
        row: PrincipalRow,
    ) -> Result<Principal> {
        let groups = self.identity.groups_of(row.id).await?;
        let mut identity = match kind {
            PrincipalKind::User => Identity::user(&self.registry_id, &row.name),
            PrincipalKind::Robot => Identity::robot(&self.registry_id, &row.name),
        };
        for (_, group) in &groups {
            identity = identity.with_group(crate::policy::group_arn(&self.registry_id, group));
        }
        Ok(Principal {
            id: row.id,
            kind,
            name: row.name,
            credential_version: row.credential_version,
            expires_at: row.expires_at,
            password_hash: row.password_hash,
            groups,
            identity,
            foreign_account: None,
        })
    }

    /// A usable (existing, unexpired) principal by login name.
    async fn active_principal(&self, login: &str) -> Result<Option<Arc<Principal>>> {
        let (kind, name) = parse_login_name(login);
        Ok(self
            .principal(kind, name)
            .await?
            .filter(|p| !p.expired(now_millis())))
    }

    /// An `Authorization: Basic ...` header value: [`Access::login_subject`] with a short memory of
    /// accepted values, so a client sending its password on every request costs one hash.
    pub async fn login_basic(&self, header: &str, facts: &RequestFacts) -> Result<Subject> {
        let key: [u8; 32] = sha2::Sha256::digest(header.as_bytes()).into();
        if let Some(subject) = self.basic_logins.get(&key) {
            return Ok(subject);
        }
        let credentials =
            crate::auth::basic::parse_basic_authorization(header).ok_or_else(|| {
                Error::Unauthorized(
                    "malformed Basic credentials (expected base64 of user:password)".into(),
                )
            })?;
        let subject = self
            .login_subject(&credentials.username, &credentials.password, facts)
            .await?;
        self.basic_logins.insert(key, subject.clone());
        Ok(subject)
    }

    /// HTTP Basic: a user's password, a robot's secret, or `AWS` with an ECR registry password
    /// or the scanner's one-scan password. The subject names which. Failures are counted per
    /// name and address; past the limit the answer is 429.
    pub async fn login_subject(
        &self,
        username: &str,
        password: &str,
        facts: &RequestFacts,
    ) -> Result<Subject> {
        if let Some(wait) = self.limiter.blocked(username, facts.source_ip) {
            return Err(Error::TooManyRequests {
                message: format!("too many failed logins for {username:?}; try again in {wait} s"),
                retry_after_secs: wait,
            });
        }
        let outcome = if username == ECR_USERNAME {
            self.registry_password_login(password).await
        } else {
            self.check_password(username, password).await.map(|p| {
                let credential = Credential::of(p.kind.secret_kind());
                Subject::signed_in(p, credential)
            })
        };
        match outcome {
            Ok(subject) => {
                self.limiter.record_success(username, facts.source_ip);
                Ok(subject)
            }
            Err(Error::Unauthorized(message)) => {
                self.limiter.record_failure(username, facts.source_ip);
                tracing::info!(user = username, ip = ?facts.source_ip, "failed login");
                Err(Error::Unauthorized(message))
            }
            Err(other) => Err(other),
        }
    }

    /// `AWS:<password>`: an ECR registry password (its principal, while the access key that
    /// minted it is usable) or the scanner's one-scan password (no principal; one image).
    async fn registry_password_login(&self, password: &str) -> Result<Subject> {
        // Signed by a trusted registry: another account, or this account in another region.
        if let Some((issuer, region)) = crate::auth::token::unverified_issuer(password) {
            let elsewhere =
                issuer != self.registry_id || region.as_deref().is_some_and(|r| r != self.region);
            let trusted = match &region {
                Some(region) => self.trusted.config_in(&issuer, region).is_some(),
                None => self.trusted.contains(&issuer),
            };
            if elsewhere && trusted {
                return self
                    .federated_password_login(password, &issuer, region.as_deref())
                    .await;
            }
        }
        let claims = self
            .verify_with_reload(|ring, now| {
                ring.verify_registry_password(password, &self.issuer, &self.service, now)
            })
            .await
            .map_err(|e| Error::Unauthorized(format!("invalid registry password: {e}")))?;
        if claims.typ == TokenType::ScanPassword {
            let scan = claims.scan.clone().ok_or_else(|| {
                Error::Unauthorized("invalid registry password: malformed token".into())
            })?;
            return Ok(Subject {
                principal: None,
                credential: Some(Credential::of_token(CredentialKind::Scanner, &claims)),
                token: None,
                scan: Some(scan),
            });
        }
        let principal = self.token_principal(&claims, "registry password").await?;
        Ok(Subject::signed_in(
            principal,
            Credential::of_token(CredentialKind::EcrPassword, &claims),
        ))
    }

    /// `AWS:<password>` where the password names a trusted registry as its issuer: verified
    /// with that registry's published keys (read again once when the key is new to us: it may
    /// have just rotated), for this registry as audience, naming a principal of that registry.
    /// Failures read as they do for this registry's own passwords.
    async fn federated_password_login(
        &self,
        password: &str,
        issuer: &str,
        region: Option<&str>,
    ) -> Result<Subject> {
        let verify = || {
            crate::auth::token::verify_federated_password(
                password,
                |kid| self.trusted.verifying_key(issuer, region, kid),
                issuer,
                &self.registry_id,
                self.now(),
            )
        };
        let verified = match verify() {
            Err(TokenError::UnknownKey) => {
                self.trusted.refresh_for_unknown_key(issuer, region).await;
                verify()
            }
            other => other,
        };
        let claims =
            verified.map_err(|e| Error::Unauthorized(format!("invalid registry password: {e}")))?;
        if claims.region.as_deref() != region {
            return Err(Error::Unauthorized(
                "invalid registry password: wrong issuer".into(),
            ));
        }
        let principal = self.token_principal(&claims, "registry password").await?;
        Ok(Subject::signed_in(
            principal,
            Credential::of_token(CredentialKind::FederatedPassword, &claims),
        ))
    }

    async fn check_password(&self, login: &str, password: &str) -> Result<Arc<Principal>> {
        let refused = || Error::Unauthorized("invalid user name or password".into());
        let principal = self.active_principal(login).await?;
        let Some((principal, phc)) =
            principal.and_then(|p| p.password_hash.clone().map(|phc| (p, phc)))
        else {
            // Spend the time a real check takes, so timing does not reveal which names exist.
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || verify_against_dummy_hash(&password))
                .await
                .map_err(Error::internal)?;
            return Err(refused());
        };
        let fingerprint = credential_fingerprint(&format!("{}\0{password}", principal.id), &phc);
        if self.verified.get(&fingerprint).is_some() {
            return Ok(principal);
        }
        let slot = self.verifying.entry(fingerprint).or_default().clone();
        let ok = {
            let _one_at_a_time = slot.lock().await;
            if self.verified.get(&fingerprint).is_some() {
                true
            } else {
                let _permit = self
                    .argon2_permits
                    .acquire()
                    .await
                    .map_err(Error::internal)?;
                let password = password.to_owned();
                let ok = tokio::task::spawn_blocking(move || {
                    verify_secret(&password, &phc).unwrap_or(false)
                })
                .await
                .map_err(Error::internal)?;
                if ok {
                    self.verified.insert(fingerprint, ());
                }
                ok
            }
        };
        self.verifying
            .remove_if(&fingerprint, |_, s| Arc::strong_count(s) <= 2);
        if !ok {
            return Err(refused());
        }
        Ok(principal)
    }

    /// The current principal of a verified token (refresh token, ECR registry password, access
    /// token): it must still exist with the credential version the token was issued for, and
    /// the access key behind it, if any, must still be usable.
    pub(super) async fn token_principal(
        &self,
        claims: &Claims,
        what: &str,
    ) -> Result<Arc<Principal>> {
        let principal = self.current_principal(claims).await?.ok_or_else(|| {
            Error::Unauthorized(format!(
                "{what} is no longer valid (credentials changed or account removed); log in again"
            ))
        })?;
        if let Some(key_id) = &claims.akid {
            if !self.access_key_usable(key_id).await? {
                return Err(Error::Unauthorized(format!(
                    "{what} is no longer valid: the access key that issued it was deleted or \
                     deactivated; log in again"
                )));
            }
        }
        Ok(principal)
    }

    /// Whether an access key exists and is active (at most [`super::CACHE_TTL`] old).
    pub async fn access_key_usable(&self, key_id: &str) -> Result<bool> {
        let key_id = key_id.to_owned();
        if let Some(hit) = self.usable_keys.get(&key_id) {
            return Ok(hit);
        }
        let usable = self
            .identity
            .access_key(&key_id)
            .await?
            .is_some_and(|(key, _)| key.active);
        self.usable_keys.insert(key_id, usable);
        Ok(usable)
    }

    /// Verifies with the current key ring; a token signed by a key this replica has not loaded yet
    /// (another replica just rotated) triggers one reload.
    pub(super) async fn verify_with_reload(
        &self,
        verify: impl Fn(&crate::auth::token::KeyRing, DateTime<Utc>) -> Result<Claims, TokenError>,
    ) -> Result<Claims, TokenError> {
        match verify(&self.keys.ring(), self.now()) {
            Err(TokenError::UnknownKey) => {
                if self
                    .keys
                    .reload_if_stale(&self.identity)
                    .await
                    .unwrap_or(false)
                {
                    verify(&self.keys.ring(), self.now())
                } else {
                    Err(TokenError::UnknownKey)
                }
            }
            other => other,
        }
    }

    /// The token's subject if it still exists, is unexpired and has the credential version the
    /// token was issued for; `None` otherwise.
    async fn current_principal(&self, claims: &Claims) -> Result<Option<Arc<Principal>>> {
        // A principal of a trusted registry: another account's, or (signed in with a password
        // that registry signed) this account's in another region.
        let federated = claims.typ == TokenType::FederatedPassword
            || claims.cred == Some(CredentialKind::FederatedPassword);
        if let Some(account) = claims
            .principal
            .as_deref()
            .and_then(crate::policy::arn_account)
            .filter(|account| federated || *account != self.registry_id)
        {
            return Ok(self.foreign_principal(account, claims));
        }
        let Some(principal) = self.active_principal(&claims.sub).await? else {
            return Ok(None);
        };
        let current = u64::try_from(principal.credential_version).unwrap_or(0) == claims.cv
            && claims.principal.as_deref() == Some(principal.arn());
        Ok(current.then_some(principal))
    }

    /// The principal of another registry a token names: only while that registry is trusted,
    /// only a user or robot of it, and only as the token's subject. A password it signed names
    /// its own account (a registry vouches for its own principals, never for a third
    /// registry's); tokens this registry derived from such a password carry the same ARN.
    fn foreign_principal(&self, account: &str, claims: &Claims) -> Option<Arc<Principal>> {
        let arn = claims.principal.as_deref()?;
        if !self.trusted.contains(account) || claims.sub != arn {
            return None;
        }
        if claims.typ == TokenType::FederatedPassword && claims.iss != account {
            return None;
        }
        Principal::foreign(account, arn).map(Arc::new)
    }

    /// A registry access token (`Authorization: Bearer`): signature, issuer, audience, validity,
    /// then the subject's current credential version and the access key behind it.
    pub async fn verify_bearer(&self, token: &str) -> Result<Subject> {
        // A signature verified moments ago need not be verified again; expiry is still checked.
        let fingerprint: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let claims = match self.tokens.get(&fingerprint) {
            Some(claims)
                if claims.exp + crate::auth::token::CLOCK_LEEWAY_SECS >= self.now().timestamp() =>
            {
                claims
            }
            Some(_) => {
                return Err(Error::Unauthorized(
                    "invalid token: token has expired".into(),
                ))
            }
            None => {
                let claims = Arc::new(
                    self.verify_with_reload(|ring, now| {
                        ring.verify_access_token(token, &self.issuer, &self.service, now)
                    })
                    .await
                    .map_err(|e| Error::Unauthorized(format!("invalid token: {e}")))?,
                );
                self.tokens.insert(fingerprint, claims.clone());
                claims
            }
        };
        let principal = if claims.sub.is_empty() {
            None
        } else {
            Some(self.token_principal(&claims, "token").await?)
        };
        Ok(Subject {
            principal,
            credential: Some(Credential::of_token(CredentialKind::RegistryToken, &claims)),
            scan: claims.scan.clone(),
            token: Some(claims),
        })
    }

    /// The principal and secret of an access key (for SigV4); `None` for unknown keys and keys of
    /// expired or deleted principals.
    /// Inactive keys are refused like unknown ones (as IAM refuses them).
    pub async fn access_key(&self, key_id: &str) -> Result<Option<(Arc<Principal>, String)>> {
        let Some((key, secret)) = self
            .identity
            .access_key(key_id)
            .await?
            .filter(|(k, _)| k.active)
        else {
            return Ok(None);
        };
        let Some(row) = self.identity.principal_by_id(key.principal_id).await? else {
            return Ok(None);
        };
        let kind = if row.kind == "robot" {
            PrincipalKind::Robot
        } else {
            PrincipalKind::User
        };
        let principal = self.principal(kind, &row.name).await?;
        Ok(principal
            .filter(|p| !p.expired(now_millis()))
            .map(|p| (p, secret)))
    }
}
