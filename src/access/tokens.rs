//! Tokens Berth issues and redeems: registry access tokens, refresh tokens, ECR registry
//! passwords and the scanner's one-image password, signed with the shared keys (JWKS).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Access, Credential, Principal, Subject, MIN_KEY_OVERLAP, REGISTRY_PASSWORD_TTL};
use crate::auth::credential::CredentialKind;
use crate::auth::token::{Claims, ResourceAccess, ScanGrant, TokenType};
use crate::error::{Error, Result};

impl Access {
    fn base_claims(&self, typ: TokenType, principal: Option<&Principal>, ttl: Duration) -> Claims {
        let subject = principal.map(Principal::login_name).unwrap_or_default();
        let lifetime = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        let claims = Claims::new(
            typ,
            &self.issuer,
            &self.service,
            &subject,
            self.now(),
            lifetime,
        );
        match principal {
            Some(p) => claims
                .with_credential_version(u64::try_from(p.credential_version).unwrap_or(0))
                .with_principal(p.arn()),
            None => claims,
        }
    }

    /// Claims of a token obtained with `subject`'s credential: its principal, the kind of that
    /// credential and the access key behind it, the scanner's image, and an expiry no later
    /// than the credential's own.
    fn derived_claims(&self, typ: TokenType, subject: &Subject, ttl: Duration) -> Claims {
        let credential = subject.credential.as_ref();
        self.base_claims(typ, subject.principal.as_deref(), ttl)
            .with_credential(credential.map(|c| c.kind))
            .with_access_key(credential.and_then(|c| c.access_key_id.clone()))
            .with_scan(subject.scan.clone())
            .expiring_by(credential.and_then(|c| c.expires_at))
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        if claims.exp <= self.now().timestamp() {
            return Err(Error::Unauthorized(
                "the credential has expired; log in again".into(),
            ));
        }
        self.keys.ring().issue(claims).map_err(Error::internal)
    }

    /// Signs an access token for `subject` (anonymous without a principal) granting `access`,
    /// and recording the access it asked for (`requested`).
    pub fn issue_access_token(
        &self,
        subject: &Subject,
        access: Vec<ResourceAccess>,
        requested: Vec<ResourceAccess>,
    ) -> Result<(String, Claims)> {
        let claims = self
            .derived_claims(TokenType::Access, subject, self.token_ttl)
            .with_access(access)
            .with_requested(requested);
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs a refresh token (`offline_token=true`) for a signed-in subject. It expires no
    /// later than the credential it was obtained with (an ECR registry password's 12 hours)
    /// and dies with the access key behind it. The scanner never gets one.
    pub fn issue_refresh_token(&self, subject: &Subject) -> Result<Option<String>> {
        if subject.principal.is_none() || subject.is_scanner() {
            return Ok(None);
        }
        let claims = self.derived_claims(TokenType::Refresh, subject, self.refresh_token_ttl);
        self.sign(&claims).map(Some)
    }

    /// The caller behind a refresh token (`grant_type=refresh_token`), checked against the
    /// current credential version and the access key it derives from.
    pub async fn redeem_refresh_token(&self, token: &str) -> Result<Subject> {
        let claims = self
            .verify_with_reload(|ring, now| {
                ring.verify_refresh_token(token, &self.issuer, &self.service, now)
            })
            .await
            .map_err(|e| Error::Unauthorized(format!("invalid refresh token: {e}")))?;
        if claims.cred.is_none() {
            // Issued before refresh tokens recorded what they were obtained with: one may come
            // from a 12-hour ECR password, so none is trusted for its full week.
            return Err(Error::Unauthorized(
                "refresh token from an older Berth; log in again".into(),
            ));
        }
        let principal = self.token_principal(&claims, "refresh token").await?;
        Ok(Subject::signed_in(
            principal,
            Credential::of_token(CredentialKind::RefreshToken, &claims),
        ))
    }

    /// ECR's `GetAuthorizationToken`: a password for `AWS:<password>` Basic logins, valid for
    /// [`REGISTRY_PASSWORD_TTL`] or until the principal's credentials change or the access key
    /// `access_key_id` that asked for it is deleted or deactivated.
    pub fn registry_password(
        &self,
        principal: &Principal,
        access_key_id: &str,
    ) -> Result<(String, DateTime<Utc>)> {
        let claims = self
            .base_claims(
                TokenType::RegistryPassword,
                Some(principal),
                REGISTRY_PASSWORD_TTL,
            )
            .with_credential(Some(CredentialKind::AccessKey))
            .with_access_key(Some(access_key_id.to_owned()));
        let expires = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(|| self.now());
        Ok((self.sign(&claims)?, expires))
    }

    /// A password for the trusted registry `audience` (`GetAuthorizationToken` with
    /// `registryIds`): signed with this registry's key, issuer this registry's id, audience the
    /// other's, subject and `principal` the caller's ARN. It lives `[federation]
    /// password_ttl_secs` at most and no longer than the credential it was obtained with; the other
    /// registry cannot see revocations here, so that short lifetime is how they reach it.
    pub fn federated_password(
        &self,
        subject: &Subject,
        audience: &str,
    ) -> Result<(String, DateTime<Utc>)> {
        let Some(principal) = subject
            .principal
            .as_ref()
            .filter(|p| p.foreign_account.is_none())
        else {
            return Err(Error::Denied(
                "only this registry's own users and robots get passwords for other registries"
                    .into(),
            ));
        };
        self.sign_federated(
            principal.arn(),
            audience,
            subject.credential.as_ref().and_then(|c| c.expires_at),
        )
    }

    /// The password this registry's replication worker logs in to the trusted registry
    /// `audience` with: like [`Access::federated_password`], for this registry's root
    /// (`arn:aws:iam::<this registry>:root`), which the other registry lets push only where its
    /// policies allow `ecr:ReplicateImage` (and `ecr:CreateRepository` for new repositories).
    pub fn replication_password(&self, audience: &str) -> Result<(String, DateTime<Utc>)> {
        self.sign_federated(&crate::policy::root_arn(&self.registry_id), audience, None)
    }

    /// Signs a password for the trusted registry `audience` naming `arn` (subject and
    /// principal), with this registry's id and region as issuer, living `[federation]
    /// password_ttl_secs` and never past `expires_by`.
    fn sign_federated(
        &self,
        arn: &str,
        audience: &str,
        expires_by: Option<i64>,
    ) -> Result<(String, DateTime<Utc>)> {
        let lifetime = chrono::Duration::from_std(self.federated_password_ttl)
            .unwrap_or(chrono::Duration::hours(1));
        let claims = Claims::new(
            TokenType::FederatedPassword,
            &self.registry_id,
            audience,
            arn,
            self.now(),
            lifetime,
        )
        .with_principal(arn)
        .with_region(&self.region)
        .expiring_by(expires_by);
        let expires = DateTime::from_timestamp(claims.exp, 0).unwrap_or_else(|| self.now());
        Ok((self.sign(&claims)?, expires))
    }

    /// The password the scan workers hand to Trivy for one scan: it reads the image `grant`
    /// (the manifest and the blobs it references) for `ttl`, and nothing else. It belongs to no
    /// principal, so no policy widens or narrows it, and it never yields a refresh token.
    pub fn scan_password(&self, grant: ScanGrant, ttl: Duration) -> Result<String> {
        let claims = self
            .base_claims(
                TokenType::ScanPassword,
                None,
                ttl.min(REGISTRY_PASSWORD_TTL),
            )
            .with_scan(Some(grant));
        self.sign(&claims)
    }

    /// The public keys that verify tokens, as a JWKS document.
    pub fn jwks_json(&self) -> String {
        self.keys.ring().jwks_json()
    }

    /// Re-reads the signing keys (periodically, so rotations on other replicas arrive).
    pub async fn reload_keys(&self) -> Result<()> {
        self.keys.reload(&self.identity).await
    }

    /// Starts signing with a new key; the previous keys verify until the longest-lived token
    /// they may have signed has expired. Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let overlap = MIN_KEY_OVERLAP.max(self.refresh_token_ttl);
        self.keys.rotate(&self.identity, overlap).await
    }

    /// Key ids currently accepted, the signing one first.
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.keys
            .ring()
            .accepted_kids()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}
