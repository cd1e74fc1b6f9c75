//! Docker registry tokens: ES256-signed JWTs (access and refresh tokens), their signing keys, key
//! rotation and the JWKS document publishing the public keys.
//!
//! - [`SigningKey`]: a P-256 key; generate it once, persist it as PKCS#8 PEM (file or database),
//!   and load it on every replica so tokens survive restarts and are accepted everywhere.
//! - [`KeyRing`]: the active signing key plus older keys still accepted during a rotation.
//! - [`Claims`]: `iss`, `sub`, `aud` (= the service), `exp`, `nbf`, `iat`, `jti`, the Docker
//!   `access` list, `cv` (credential version, compared by the caller with the database),
//!   an optional `principal` ARN, `typ` (what the token is: an access token, a refresh token, an
//!   ECR registry password or the scanner's one-scan password), `cred` (the kind of credential
//!   it was obtained with), `akid` (the access key behind an ECR registry password, carried into
//!   everything obtained with it), `scan` (the one image a scanner credential reads) and `req`
//!   (the access a client asked for, beside the `access` it was granted).
//!
//! Verification is pinned to ES256: the algorithm is read from the header and anything else
//! (`none`, HS256 keyed with the public key, RS256, ...) is refused before any key is touched.
//! Time is always passed in; `exp`/`nbf` get [`CLOCK_LEEWAY_SECS`] of leeway.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::credential::CredentialKind;
use super::scope::{merge_scope, Scope, ANY_ACTION};

/// Leeway applied to `exp` and `nbf` for clock differences between replicas.
pub const CLOCK_LEEWAY_SECS: i64 = 30;
/// The only algorithm Berth issues and accepts.
pub const TOKEN_ALGORITHM: &str = "ES256";
/// Longest token accepted for verification (bytes); longer input is refused as malformed.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token could not be issued or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS, bad base64 or JSON, missing or mistyped claims.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than ES256 (including `none`).
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header has no `kid`.
    #[error("token has no key id")]
    MissingKeyId,
    /// The `kid` is not (or no longer) in the key ring.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// The header carries `crit` extensions this verifier does not implement.
    #[error("token has critical header extensions")]
    UnsupportedCriticalHeader,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` (plus leeway) is in the past.
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` (minus leeway) is in the future.
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iss` is not this registry's issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is not this registry's service.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A refresh token where an access token is needed, or the reverse.
    #[error("wrong kind of token")]
    WrongTokenType,
    /// A key could not be generated, parsed or used.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Claims could not be signed (for example `exp` not after `iat`).
    #[error("cannot issue token: {0}")]
    Issue(String),
}

/// The kind of token, carried in the `typ` claim. Each is accepted only where it is meant to
/// be: a token of one type never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A short-lived bearer token for registry requests.
    Access,
    /// A long-lived token only exchanged at the token endpoint (`grant_type=refresh_token`).
    Refresh,
    /// ECR's `GetAuthorizationToken` password, used as HTTP Basic `AWS:<password>`.
    RegistryPassword,
    /// The password Berth's scanner gets for one scan (HTTP Basic `AWS:<password>`).
    ScanPassword,
    /// A password one registry signs for a caller of its own to use at another registry that
    /// trusts it (HTTP Basic `AWS:<password>` there): `iss` is the signing registry's id, `aud`
    /// the other registry's id, `principal` the caller's ARN in the signing registry's account.
    FederatedPassword,
}

/// The one image a scanner credential may read: a manifest and the blobs it references, in one
/// repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScanGrant {
    pub repository: String,
    pub digest: String,
}

/// One entry of the Docker `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Repository name or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl From<Scope> for ResourceAccess {
    fn from(scope: Scope) -> Self {
        ResourceAccess {
            resource_type: scope.resource_type,
            name: scope.name,
            actions: scope.actions,
        }
    }
}

/// Registry token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: this registry's token service.
    pub iss: String,
    /// Subject: the user or robot name (empty for anonymous).
    pub sub: String,
    /// Audience: the `service` of the challenge.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id (random, base64url).
    pub jti: String,
    /// Granted access (always empty in refresh tokens).
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
    /// Credential version of the subject when the token was issued; the caller refuses the
    /// token when the stored version has moved on (password changed, robot deleted, ...).
    pub cv: u64,
    /// The principal ARN (`arn:aws:iam::<registryId>:user/<name>`), absent for anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// What the token is (and so where it is accepted).
    pub typ: TokenType,
    /// The kind of credential the token was obtained with (absent for anonymous tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<CredentialKind>,
    /// The access key that minted the ECR registry password this token derives from: the
    /// token stops working when that key is deleted or deactivated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akid: Option<String>,
    /// Issued to Berth's own scanner for one image: its pulls bypass the pull gate and do not
    /// count as pulls for lifecycle rules, and it reads nothing else. Carried from the scan
    /// password into the tokens it obtains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanGrant>,
    /// The region of the registry that signed a federated password: with `iss`, it names the
    /// trusted registry whose keys verify it (one account may run registries in several
    /// regions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The access the client asked for when it got this token (access tokens only). A request
    /// needing an action that was not asked for may get a new token (401); one that was asked
    /// for and not granted was refused by policy (403).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub req: Vec<ResourceAccess>,
}

impl Claims {
    /// Claims for an access token valid from `now` for `lifetime`, with a fresh `jti` and no access
    /// yet (add it with [`Claims::with_access`]).
    pub fn new_access(
        issuer: &str,
        audience: &str,
        subject: &str,
        now: DateTime<Utc>,
        lifetime: chrono::Duration,
    ) -> Claims {
        Claims::new(TokenType::Access, issuer, audience, subject, now, lifetime)
    }

    /// Claims for a refresh token (no access list; the client asks for scopes again with it).
    pub fn new_refresh(
        issuer: &str,
        audience: &str,
        subject: &str,
        now: DateTime<Utc>,
        lifetime: chrono::Duration,
    ) -> Claims {
        Claims::new(TokenType::Refresh, issuer, audience, subject, now, lifetime)
    }

    /// Claims of any token type, valid from `now` for `lifetime`, with no access.
    pub fn new(
        typ: TokenType,
        issuer: &str,
        audience: &str,
        subject: &str,
        now: DateTime<Utc>,
        lifetime: chrono::Duration,
    ) -> Claims {
        let iat = now.timestamp();
        Claims {
            iss: issuer.to_owned(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            exp: iat.saturating_add(lifetime.num_seconds()),
            nbf: iat,
            iat,
            jti: URL_SAFE_NO_PAD.encode(super::password::random_bytes(16)),
            access: Vec::new(),
            cv: 0,
            principal: None,
            typ,
            cred: None,
            akid: None,
            scan: None,
            region: None,
            req: Vec::new(),
        }
    }

    /// Records the signing registry's region (federated passwords).
    pub fn with_region(mut self, region: &str) -> Claims {
        self.region = Some(region.to_owned());
        self
    }

    /// Sets the granted access.
    pub fn with_access(mut self, access: Vec<ResourceAccess>) -> Claims {
        self.access = access;
        self
    }

    /// Sets the credential version.
    pub fn with_credential_version(mut self, cv: u64) -> Claims {
        self.cv = cv;
        self
    }

    /// Sets the principal ARN.
    pub fn with_principal(mut self, principal: &str) -> Claims {
        self.principal = Some(principal.to_owned());
        self
    }

    /// Limits the token to the scanner's one image.
    pub fn with_scan(mut self, scan: Option<ScanGrant>) -> Claims {
        self.scan = scan;
        self
    }

    /// Records the kind of credential the token was obtained with.
    pub fn with_credential(mut self, kind: Option<CredentialKind>) -> Claims {
        self.cred = kind;
        self
    }

    /// Records the access key behind the credential the token derives from.
    pub fn with_access_key(mut self, key_id: Option<String>) -> Claims {
        self.akid = key_id;
        self
    }

    /// Records the access the client asked for.
    pub fn with_requested(mut self, requested: Vec<ResourceAccess>) -> Claims {
        self.req = requested;
        self
    }

    /// Makes the token expire no later than `at` (seconds since the epoch): nothing obtained
    /// with a credential outlives it.
    pub fn expiring_by(mut self, at: Option<i64>) -> Claims {
        if let Some(at) = at {
            self.exp = self.exp.min(at);
        }
        self
    }

    /// Whether the client asked for `action` on `(resource_type, name)` when it got this token.
    pub fn requested(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.req.iter().any(|entry| {
            entry.resource_type == resource_type
                && entry.name == name
                && entry.actions.iter().any(|a| a == action || a == ANY_ACTION)
        })
    }

    /// Seconds from `iat` to `exp` (the token response's `expires_in`).
    pub fn lifetime_secs(&self) -> i64 {
        self.exp - self.iat
    }

    /// Whether the token grants `action` on the resource `(resource_type, name)`. Names match
    /// exactly (no globbing, case-sensitive); a granted `*` covers every action.
    pub fn allows(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.typ == TokenType::Access
            && self.access.iter().any(|entry| {
                entry.resource_type == resource_type
                    && entry.name == name
                    && entry.actions.iter().any(|a| a == action || a == ANY_ACTION)
            })
    }
}

/// Builds the `access` claim from the requested scopes, keeping only the actions for which
/// `is_allowed(resource_type, name, action)` says yes (the policy decision). Entries left with no
/// action are dropped; duplicates are merged. Asking for more than allowed is not an error: the
/// token simply carries less, so a request can never escalate beyond the policy.
pub fn grant_requested_access(
    requested: &[Scope],
    mut is_allowed: impl FnMut(&str, &str, &str) -> bool,
) -> Vec<ResourceAccess> {
    let mut granted: Vec<Scope> = Vec::new();
    for scope in requested {
        let actions: Vec<&str> = scope
            .actions
            .iter()
            .map(String::as_str)
            .filter(|action| is_allowed(&scope.resource_type, &scope.name, action))
            .collect();
        if !actions.is_empty() {
            merge_scope(
                &mut granted,
                Scope::new(&scope.resource_type, &scope.name, &actions),
            );
        }
    }
    granted.into_iter().map(ResourceAccess::from).collect()
}

/// A public key in JWK form (RFC 7517), as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// X coordinate, base64url without padding.
    pub x: String,
    /// Y coordinate, base64url without padding.
    pub y: String,
    /// Key id (the RFC 7638 thumbprint).
    pub kid: String,
    /// Always `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// The JWKS document: `{"keys":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// Every key tokens may currently be signed with, the active one first.
    pub keys: Vec<PublicJwk>,
}

/// RFC 7638 thumbprint of an EC P-256 key: SHA-256 over the canonical JSON of the required members
/// in lexicographic order, base64url without padding.
fn jwk_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A public key that verifies tokens, identified by its key id.
#[derive(Clone)]
pub struct VerifyingKey {
    jwk: PublicJwk,
    decoding_key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.jwk.kid)
            .finish()
    }
}

impl VerifyingKey {
    /// Imports a P-256 public key from its JWK. The key id is recomputed from the coordinates
    /// (any `kid` in the input is ignored), and the point must lie on the curve.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<VerifyingKey, TokenError> {
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(TokenError::InvalidKey(
                "only EC P-256 keys are supported".into(),
            ));
        }
        let x = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .map_err(|_| TokenError::InvalidKey("x is not base64url".into()))?;
        let y = URL_SAFE_NO_PAD
            .decode(&jwk.y)
            .map_err(|_| TokenError::InvalidKey("y is not base64url".into()))?;
        if x.len() != 32 || y.len() != 32 {
            return Err(TokenError::InvalidKey(
                "coordinates must be 32 bytes".into(),
            ));
        }
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(0x04);
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        p256::PublicKey::from_sec1_bytes(&sec1)
            .map_err(|_| TokenError::InvalidKey("point is not on the P-256 curve".into()))?;
        Ok(VerifyingKey::from_coordinates(&x, &y))
    }

    fn from_coordinates(x: &[u8], y: &[u8]) -> VerifyingKey {
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let kid = jwk_thumbprint(&x, &y);
        let decoding_key =
            DecodingKey::from_ec_components(&x, &y).expect("base64url coordinates always decode");
        VerifyingKey {
            jwk: PublicJwk {
                kty: "EC".into(),
                crv: "P-256".into(),
                x,
                y,
                kid,
                alg: TOKEN_ALGORITHM.into(),
                key_use: "sig".into(),
            },
            decoding_key,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }
}

/// A P-256 private key that signs tokens. `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningKey {
    secret: p256::SecretKey,
    encoding_key: EncodingKey,
    verifying_key: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .finish()
    }
}

impl SigningKey {
    /// Generates a new random P-256 key from the operating system's RNG.
    pub fn generate() -> SigningKey {
        loop {
            let candidate = super::password::random_bytes(32);
            // Fails only for zero or values >= the group order (probability ~2^-32).
            if let Ok(secret) = p256::SecretKey::from_slice(&candidate) {
                return SigningKey::from_secret(secret).expect("a fresh P-256 key encodes");
            }
        }
    }

    /// Loads a key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what [`SigningKey::to_pkcs8_pem`]
    /// writes) or SEC1 (`BEGIN EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
    pub fn from_pem(pem: &str) -> Result<SigningKey, TokenError> {
        let secret = p256::SecretKey::from_pem(pem.trim())
            .map_err(|e| TokenError::InvalidKey(format!("not a P-256 private key PEM: {e}")))?;
        SigningKey::from_secret(secret)
    }

    fn from_secret(secret: p256::SecretKey) -> Result<SigningKey, TokenError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        let encoding_key = EncodingKey::from_ec_der(der.as_bytes());
        let point = secret.public_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        if bytes.len() != 65 || bytes[0] != 0x04 {
            return Err(TokenError::InvalidKey(
                "unexpected public key encoding".into(),
            ));
        }
        let verifying_key = VerifyingKey::from_coordinates(&bytes[1..33], &bytes[33..65]);
        Ok(SigningKey {
            secret,
            encoding_key,
            verifying_key,
        })
    }

    /// The private key as PKCS#8 PEM, for the caller to persist. Treat it as a secret.
    pub fn to_pkcs8_pem(&self) -> String {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a valid P-256 key encodes as PKCS#8")
            .to_string()
    }

    /// The key id (RFC 7638 JWK thumbprint, base64url).
    pub fn kid(&self) -> &str {
        self.verifying_key.kid()
    }

    /// The public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Signs `claims` as a compact JWS with header `{"typ":"JWT","alg":"ES256","kid":...}`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        if claims.exp <= claims.iat || claims.nbf > claims.exp {
            return Err(TokenError::Issue("exp must be after iat and nbf".into()));
        }
        if claims.typ != TokenType::Access && !(claims.access.is_empty() && claims.req.is_empty()) {
            return Err(TokenError::Issue("only access tokens carry access".into()));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key)
            .map_err(|e| TokenError::Issue(e.to_string()))
    }
}

/// The active signing key plus the public keys still accepted (rotation overlap).
/// Wrap it in an `Arc<RwLock<_>>` (or swap an `Arc`) to rotate at run time.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: SigningKey,
    accepted: Vec<VerifyingKey>,
}

impl KeyRing {
    /// A ring with one key that signs and verifies.
    pub fn new(active: SigningKey) -> KeyRing {
        KeyRing {
            active,
            accepted: Vec::new(),
        }
    }

    /// Also accepts tokens signed by `key` (for example the previous key of a rotation, loaded
    /// from the database). Adding a key already present does nothing.
    pub fn accept(&mut self, key: VerifyingKey) {
        if key.kid() != self.active.kid() && self.accepted.iter().all(|k| k.kid() != key.kid()) {
            self.accepted.push(key);
        }
    }

    /// Makes `new_active` the signing key; the previous one keeps verifying until retired.
    pub fn rotate(&mut self, new_active: SigningKey) {
        let previous = std::mem::replace(&mut self.active, new_active);
        self.accepted.retain(|k| k.kid() != self.active.kid());
        self.accept(previous.verifying_key().clone());
    }

    /// Stops accepting tokens signed by `kid`. The active key cannot be retired (returns false).
    pub fn retire(&mut self, kid: &str) -> bool {
        let before = self.accepted.len();
        self.accepted.retain(|k| k.kid() != kid);
        before != self.accepted.len()
    }

    /// The key currently signing.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Key ids accepted for verification, the active one first.
    pub fn accepted_kids(&self) -> Vec<&str> {
        std::iter::once(self.active.kid())
            .chain(self.accepted.iter().map(VerifyingKey::kid))
            .collect()
    }

    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        std::iter::once(self.active.verifying_key())
            .chain(self.accepted.iter())
            .find(|k| k.kid() == kid)
    }

    /// The JWKS document of every accepted key.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: std::iter::once(self.active.verifying_key())
                .chain(self.accepted.iter())
                .map(|k| k.jwk().clone())
                .collect(),
        }
    }

    /// The JWKS document as JSON (`{"keys":[...]}`), for `GET /token/jwks.json` or similar.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.jwks()).expect("JWKS serializes")
    }

    /// Signs `claims` with the active key.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        self.active.sign(claims)
    }

    /// Verifies an access token for registry requests: ES256 signature by an accepted key,
    /// `iss`, `aud`, `exp`/`nbf` against `now`, and `typ` = access. The caller then checks
    /// `cv` against the database and `Claims::allows` against the request.
    pub fn verify_access_token(
        &self,
        token: &str,
        expected_issuer: &str,
        expected_audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        self.verify(
            token,
            &[TokenType::Access],
            expected_issuer,
            expected_audience,
            now,
        )
    }

    /// Verifies a refresh token presented at the token endpoint (`grant_type=refresh_token`).
    pub fn verify_refresh_token(
        &self,
        token: &str,
        expected_issuer: &str,
        expected_audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        self.verify(
            token,
            &[TokenType::Refresh],
            expected_issuer,
            expected_audience,
            now,
        )
    }

    /// Verifies the password of an `AWS:<password>` Basic login: an ECR registry password or
    /// the scanner's one-scan password (`typ` tells which).
    pub fn verify_registry_password(
        &self,
        token: &str,
        expected_issuer: &str,
        expected_audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        self.verify(
            token,
            &[TokenType::RegistryPassword, TokenType::ScanPassword],
            expected_issuer,
            expected_audience,
            now,
        )
    }

    fn verify(
        &self,
        token: &str,
        expected_types: &[TokenType],
        expected_issuer: &str,
        expected_audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        verify_signed(
            token,
            |kid| self.verifying_key(kid).cloned(),
            expected_types,
            expected_issuer,
            expected_audience,
            now,
        )
    }
}

/// The issuer a token names, and its region if it names one, read without checking anything:
/// only to choose whose keys verify it (a registry's own, or a trusted registry's). Nothing read
/// here is trusted until [`verify_federated_password`] has checked the signature and compared
/// them again.
pub fn unverified_issuer(token: &str) -> Option<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
        #[serde(default)]
        region: Option<String>,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Issuer>(&json)
        .ok()
        .map(|c| (c.iss, c.region))
}

/// Verifies a password another registry signed for this one: ES256 by one of `keys` (the
/// signing registry's published keys), `typ` federated_password, `iss` = that registry's id,
/// `aud` = this registry's id, and validity against `now`.
pub fn verify_federated_password(
    token: &str,
    key_of: impl FnOnce(&str) -> Option<VerifyingKey>,
    issuer_registry_id: &str,
    own_registry_id: &str,
    now: DateTime<Utc>,
) -> Result<Claims, TokenError> {
    verify_signed(
        token,
        key_of,
        &[TokenType::FederatedPassword],
        issuer_registry_id,
        own_registry_id,
        now,
    )
}

/// Every check of a signed token: shape, algorithm (ES256 only, read from the header here),
/// no `crit`, a key id that `key_of` knows, the signature, then `typ`, `iss`, `aud` and validity.
fn verify_signed(
    token: &str,
    key_of: impl FnOnce(&str) -> Option<VerifyingKey>,
    expected_types: &[TokenType],
    expected_issuer: &str,
    expected_audience: &str,
    now: DateTime<Utc>,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    // Read the header ourselves so that the algorithm decision does not depend on which
    // algorithms the JWT library happens to know.
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or(TokenError::Malformed)?;
    if alg != TOKEN_ALGORITHM {
        return Err(TokenError::UnsupportedAlgorithm(
            alg.chars().take(32).collect(),
        ));
    }
    if header.get("crit").is_some() {
        return Err(TokenError::UnsupportedCriticalHeader);
    }
    let kid = header
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .ok_or(TokenError::MissingKeyId)?;
    let key = key_of(kid).ok_or(TokenError::UnknownKey)?;

    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding_key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                TokenError::UnsupportedAlgorithm(alg.to_owned())
            }
            _ => TokenError::Malformed,
        })?
        .claims;

    if !expected_types.contains(&claims.typ) {
        return Err(TokenError::WrongTokenType);
    }
    if claims.iss != expected_issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != expected_audience {
        return Err(TokenError::WrongAudience);
    }
    let now = now.timestamp();
    if now > claims.exp.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now.saturating_add(CLOCK_LEEWAY_SECS)
        || claims.iat > now.saturating_add(CLOCK_LEEWAY_SECS)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::{parse_scope_params, PULL, PUSH, REPOSITORY};
    use chrono::TimeZone;
    use hmac::{Hmac, KeyInit, Mac};
    use std::sync::OnceLock;

    const ISS: &str = "berth-token-service";
    const AUD: &str = "registry.example.com";

    // Key generation is cheap, but one shared key keeps the tests fast in debug builds.
    fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(SigningKey::generate)
    }

    fn ring() -> KeyRing {
        KeyRing::new(key().clone())
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn access_claims() -> Claims {
        Claims::new_access(ISS, AUD, "alice", t0(), chrono::Duration::seconds(300))
            .with_access(vec![ResourceAccess {
                resource_type: REPOSITORY.into(),
                name: "team/app".into(),
                actions: vec![PULL.into(), PUSH.into()],
            }])
            .with_credential_version(7)
            .with_principal("arn:aws:iam::000000000000:user/alice")
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn payload_of(claims: &Claims) -> String {
        b64(serde_json::to_vec(claims).unwrap().as_slice())
    }

    fn verify(token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        ring().verify_access_token(token, ISS, AUD, now)
    }

    #[test]
    fn issued_token_verifies_and_round_trips_claims() {
        let claims = access_claims();
        let token = ring().issue(&claims).unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key().kid());
        let verified = verify(&token, t0()).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.lifetime_secs(), 300);
        assert_eq!(verified.cv, 7);
        let payload: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["access"][0]["type"], "repository");
        assert_eq!(payload["typ"], "access");
        assert_eq!(payload["aud"], AUD);
    }

    #[test]
    fn attack_alg_none_is_refused() {
        let header = b64(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        let token = format!("{header}.{}.", payload_of(&access_claims()));
        assert_eq!(
            verify(&token, t0()),
            Err(TokenError::UnsupportedAlgorithm("none".into()))
        );
        let header = b64(br#"{"alg":"None"}"#);
        let token = format!("{header}.{}.", payload_of(&access_claims()));
        assert!(matches!(
            verify(&token, t0()),
            Err(TokenError::UnsupportedAlgorithm(_))
        ));
        // Missing alg altogether.
        let header = b64(br#"{"typ":"JWT"}"#);
        assert_eq!(
            verify(&format!("{header}.{}.", payload_of(&access_claims())), t0()),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn attack_algorithm_confusion_hs256_with_public_key_is_refused() {
        // Classic confusion: HMAC the token with the public key (in every form an attacker might
        // try) as the shared secret and hope the verifier feeds its EC key to HS256.
        let jwk = key().verifying_key().jwk().clone();
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(&jwk.y).unwrap());
        let secrets: Vec<Vec<u8>> = vec![
            sec1,
            serde_json::to_vec(&jwk).unwrap(),
            key().kid().as_bytes().to_vec(),
        ];
        for secret in secrets {
            let header =
                b64(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, key().kid()).as_bytes());
            let signing_input = format!("{header}.{}", payload_of(&access_claims()));
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).unwrap();
            mac.update(signing_input.as_bytes());
            let token = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
            assert_eq!(
                verify(&token, t0()),
                Err(TokenError::UnsupportedAlgorithm("HS256".into()))
            );
        }
    }

    #[test]
    fn attack_other_asymmetric_algorithms_are_refused() {
        let token = ring().issue(&access_claims()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        for alg in ["RS256", "ES384", "PS256", "EdDSA", "es256"] {
            let header = b64(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key().kid()).as_bytes());
            assert_eq!(
                verify(&format!("{header}.{rest}"), t0()),
                Err(TokenError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
    }

    #[test]
    fn attack_expired_token_is_refused_after_leeway() {
        let token = ring().issue(&access_claims()).unwrap();
        let exp = t0() + chrono::Duration::seconds(300);
        assert!(verify(&token, exp).is_ok());
        assert!(verify(&token, exp + chrono::Duration::seconds(CLOCK_LEEWAY_SECS)).is_ok());
        assert_eq!(
            verify(
                &token,
                exp + chrono::Duration::seconds(CLOCK_LEEWAY_SECS + 1)
            ),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&token, t0() + chrono::Duration::days(365)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn attack_not_yet_valid_token_is_refused() {
        let token = ring().issue(&access_claims()).unwrap();
        assert!(verify(&token, t0() - chrono::Duration::seconds(CLOCK_LEEWAY_SECS)).is_ok());
        assert_eq!(
            verify(
                &token,
                t0() - chrono::Duration::seconds(CLOCK_LEEWAY_SECS + 1)
            ),
            Err(TokenError::NotYetValid)
        );
        let mut future = access_claims();
        future.nbf += 3600;
        future.exp += 7200;
        let token = ring().issue(&future).unwrap();
        assert_eq!(verify(&token, t0()), Err(TokenError::NotYetValid));
    }

    #[test]
    fn attack_wrong_audience_or_issuer_is_refused() {
        let token = ring().issue(&access_claims()).unwrap();
        assert_eq!(
            ring().verify_access_token(&token, ISS, "other-registry", t0()),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            ring().verify_access_token(&token, "evil-issuer", AUD, t0()),
            Err(TokenError::WrongIssuer)
        );
        let mut claims = access_claims();
        claims.aud = String::new();
        let token = ring().issue(&claims).unwrap();
        assert_eq!(verify(&token, t0()), Err(TokenError::WrongAudience));
    }

    #[test]
    fn attack_tampered_signature_is_refused() {
        let token = ring().issue(&access_claims()).unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
        for i in [0, 31, 32, 63] {
            let mut flipped = sig.clone();
            flipped[i] ^= 0x01;
            assert_eq!(
                verify(&format!("{signing_input}.{}", b64(&flipped)), t0()),
                Err(TokenError::BadSignature),
                "byte {i}"
            );
        }
        sig.truncate(63);
        assert!(verify(&format!("{signing_input}.{}", b64(&sig)), t0()).is_err());
        assert!(verify(&format!("{signing_input}."), t0()).is_err());
        assert!(verify(&format!("{signing_input}.!!!"), t0()).is_err());
    }

    #[test]
    fn attack_tampered_payload_is_refused() {
        let token = ring().issue(&access_claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut escalated = access_claims();
        escalated.access[0].name = "prod/secret".into();
        escalated.access[0].actions.push("delete".into());
        let forged = format!("{}.{}.{}", parts[0], payload_of(&escalated), parts[2]);
        assert_eq!(verify(&forged, t0()), Err(TokenError::BadSignature));
        let mut longer = access_claims();
        longer.exp += 86_400;
        let forged = format!("{}.{}.{}", parts[0], payload_of(&longer), parts[2]);
        assert_eq!(verify(&forged, t0()), Err(TokenError::BadSignature));
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let other = SigningKey::generate();
        let token = other.sign(&access_claims()).unwrap();
        assert_eq!(verify(&token, t0()), Err(TokenError::UnknownKey));
        // Claiming our kid with another key's signature fails the signature check.
        let (_, rest) = token.split_once('.').unwrap();
        let header = b64(format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key().kid()).as_bytes());
        assert_eq!(
            verify(&format!("{header}.{rest}"), t0()),
            Err(TokenError::BadSignature)
        );
        let header = b64(br#"{"alg":"ES256"}"#);
        assert_eq!(
            verify(&format!("{header}.{rest}"), t0()),
            Err(TokenError::MissingKeyId)
        );
        let header = b64(format!(
            r#"{{"alg":"ES256","kid":"{}","crit":["exp"]}}"#,
            key().kid()
        )
        .as_bytes());
        assert_eq!(
            verify(&format!("{header}.{rest}"), t0()),
            Err(TokenError::UnsupportedCriticalHeader)
        );
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b",
            "a.b.c.d",
            "eyJhbGciOiJFUzI1NiJ9",
            "é.é.é",
        ] {
            assert!(verify(bad, t0()).is_err(), "{bad:?}");
        }
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_LEN + 1), t0()),
            Err(TokenError::Malformed)
        );
        // Valid signature over claims missing `typ`: refused as malformed, never defaulted.
        let mut value = serde_json::to_value(access_claims()).unwrap();
        value.as_object_mut().unwrap().remove("typ");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key().kid().to_owned());
        let token = jsonwebtoken::encode(&header, &value, &key().encoding_key).unwrap();
        assert_eq!(verify(&token, t0()), Err(TokenError::Malformed));
    }

    #[test]
    fn attack_token_for_repository_a_does_not_allow_b() {
        let claims = verify(&ring().issue(&access_claims()).unwrap(), t0()).unwrap();
        assert!(claims.allows(REPOSITORY, "team/app", PULL));
        assert!(claims.allows(REPOSITORY, "team/app", PUSH));
        assert!(!claims.allows(REPOSITORY, "team/app", "delete"));
        assert!(!claims.allows(REPOSITORY, "team/other", PULL));
        assert!(!claims.allows(REPOSITORY, "team/app2", PULL));
        assert!(!claims.allows(REPOSITORY, "Team/App", PULL));
        assert!(!claims.allows(REPOSITORY, "team", PULL));
        assert!(!claims.allows("registry", "team/app", PULL));
        assert!(!claims.allows("registry", "catalog", "*"));
    }

    #[test]
    fn wildcard_grant_covers_every_action_but_only_on_its_resource() {
        let claims = access_claims().with_access(vec![ResourceAccess::from(Scope::catalog())]);
        assert!(claims.allows("registry", "catalog", "*"));
        assert!(!claims.allows(REPOSITORY, "catalog", PULL));
        let glob = access_claims().with_access(vec![ResourceAccess::from(Scope::repository(
            "team/*",
            &["pull"],
        ))]);
        assert!(
            !glob.allows(REPOSITORY, "team/app", PULL),
            "names are not globs"
        );
    }

    #[test]
    fn attack_scope_escalation_grants_only_the_intersection() {
        let requested = parse_scope_params([
            "repository:team/app:pull,push,delete repository:prod/db:pull",
            "registry:catalog:*",
        ])
        .unwrap();
        // Policy: alice may pull team/*, nothing else.
        let granted = grant_requested_access(&requested, |kind, name, action| {
            kind == REPOSITORY && name.starts_with("team/") && action == PULL
        });
        assert_eq!(
            granted,
            vec![ResourceAccess::from(Scope::repository(
                "team/app",
                &["pull"]
            ))]
        );
        let claims = verify(
            &ring()
                .issue(
                    &Claims::new_access(ISS, AUD, "alice", t0(), chrono::Duration::seconds(60))
                        .with_access(granted),
                )
                .unwrap(),
            t0(),
        )
        .unwrap();
        assert!(claims.allows(REPOSITORY, "team/app", PULL));
        assert!(!claims.allows(REPOSITORY, "team/app", PUSH));
        assert!(!claims.allows(REPOSITORY, "team/app", "delete"));
        assert!(!claims.allows(REPOSITORY, "prod/db", PULL));
        assert!(!claims.allows("registry", "catalog", "*"));
        assert!(grant_requested_access(&requested, |_, _, _| false).is_empty());
    }

    #[test]
    fn attack_refresh_token_is_not_an_access_token_and_vice_versa() {
        let refresh = Claims::new_refresh(ISS, AUD, "alice", t0(), chrono::Duration::days(30))
            .with_credential_version(3);
        let refresh_token = ring().issue(&refresh).unwrap();
        assert_eq!(
            verify(&refresh_token, t0()),
            Err(TokenError::WrongTokenType)
        );
        assert_eq!(
            ring()
                .verify_refresh_token(&refresh_token, ISS, AUD, t0())
                .unwrap()
                .cv,
            3
        );
        let access_token = ring().issue(&access_claims()).unwrap();
        assert_eq!(
            ring().verify_refresh_token(&access_token, ISS, AUD, t0()),
            Err(TokenError::WrongTokenType)
        );
        assert!(!refresh.allows(REPOSITORY, "team/app", PULL));
        let mut smuggled = refresh.clone();
        smuggled.access = access_claims().access;
        assert!(!smuggled.allows(REPOSITORY, "team/app", PULL));
        assert!(matches!(ring().issue(&smuggled), Err(TokenError::Issue(_))));
    }

    #[test]
    fn attack_refresh_token_is_not_a_registry_password_and_vice_versa() {
        let day = chrono::Duration::days(1);
        let refresh = ring()
            .issue(&Claims::new_refresh(ISS, AUD, "alice", t0(), day))
            .unwrap();
        assert_eq!(
            ring().verify_registry_password(&refresh, ISS, AUD, t0()),
            Err(TokenError::WrongTokenType)
        );
        for typ in [TokenType::RegistryPassword, TokenType::ScanPassword] {
            let password = ring()
                .issue(&Claims::new(typ, ISS, AUD, "alice", t0(), day))
                .unwrap();
            assert_eq!(
                ring()
                    .verify_registry_password(&password, ISS, AUD, t0())
                    .unwrap()
                    .typ,
                typ
            );
            assert_eq!(
                ring().verify_refresh_token(&password, ISS, AUD, t0()),
                Err(TokenError::WrongTokenType)
            );
            assert_eq!(verify(&password, t0()), Err(TokenError::WrongTokenType));
        }
    }

    #[test]
    fn federated_passwords_verify_only_with_the_signers_keys_for_this_audience() {
        const A: &str = "000000000000";
        const B: &str = "111111111111";
        let hour = chrono::Duration::hours(1);
        let arn = "arn:aws:iam::000000000000:user/alice";
        let claims = |typ, iss: &str, aud: &str| {
            Claims::new(typ, iss, aud, arn, t0(), hour).with_principal(arn)
        };
        let a_key = || Some(key().verifying_key().clone());
        let password = ring()
            .issue(&claims(TokenType::FederatedPassword, A, B))
            .unwrap();
        // What the receiving registry reads before verifying: only whose keys to use.
        assert_eq!(unverified_issuer(&password), Some((A.to_owned(), None)));
        assert_eq!(unverified_issuer("not.a.jwt"), None);
        let verified = verify_federated_password(&password, |_| a_key(), A, B, t0()).unwrap();
        assert_eq!(verified.principal.as_deref(), Some(arn));

        let check = |token: &str, iss: &str, aud: &str, now| {
            verify_federated_password(token, |_| a_key(), iss, aud, now)
        };
        // Another audience, another issuer than the keys' owner, expired, not yet valid.
        assert_eq!(
            check(&password, A, "222222222222", t0()),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check(&password, "222222222222", B, t0()),
            Err(TokenError::WrongIssuer)
        );
        let late = t0() + hour + chrono::Duration::seconds(CLOCK_LEEWAY_SECS + 1);
        assert_eq!(check(&password, A, B, late), Err(TokenError::Expired));
        let early = t0() - chrono::Duration::seconds(CLOCK_LEEWAY_SECS + 1);
        assert_eq!(check(&password, A, B, early), Err(TokenError::NotYetValid));
        // A key the signer never published.
        assert_eq!(
            verify_federated_password(&password, |_| None, A, B, t0()),
            Err(TokenError::UnknownKey)
        );
        let other = SigningKey::generate();
        assert_eq!(
            verify_federated_password(
                &password,
                |_| Some(other.verifying_key().clone()),
                A,
                B,
                t0()
            ),
            Err(TokenError::BadSignature)
        );
        // No other kind of token passes as one, and it passes as no other kind.
        for typ in [
            TokenType::Access,
            TokenType::Refresh,
            TokenType::RegistryPassword,
            TokenType::ScanPassword,
        ] {
            let token = ring().issue(&claims(typ, A, B)).unwrap();
            assert_eq!(check(&token, A, B, t0()), Err(TokenError::WrongTokenType));
        }
        assert_eq!(
            ring().verify_registry_password(&password, A, B, t0()),
            Err(TokenError::WrongTokenType)
        );
        assert_eq!(
            ring().verify_access_token(&password, A, B, t0()),
            Err(TokenError::WrongTokenType)
        );
    }

    #[test]
    fn requested_access_is_kept_apart_from_granted_access() {
        let claims = access_claims().with_requested(vec![ResourceAccess {
            resource_type: REPOSITORY.into(),
            name: "team/app".into(),
            actions: vec![PULL.into(), PUSH.into(), "delete".into()],
        }]);
        let token = ring().issue(&claims).unwrap();
        let verified = verify(&token, t0()).unwrap();
        assert!(verified.requested(REPOSITORY, "team/app", "delete"));
        assert!(!verified.allows(REPOSITORY, "team/app", "delete"));
        assert!(!verified.requested(REPOSITORY, "team/other", PULL));
        let capped = access_claims().expiring_by(Some(t0().timestamp() + 10));
        assert_eq!(capped.exp, t0().timestamp() + 10);
        let uncapped = access_claims().expiring_by(Some(t0().timestamp() + 100_000));
        assert_eq!(uncapped.exp, access_claims().exp);
    }

    #[test]
    fn claims_with_bad_times_are_not_issued() {
        let mut claims = access_claims();
        claims.exp = claims.iat;
        assert!(matches!(ring().issue(&claims), Err(TokenError::Issue(_))));
    }

    #[test]
    fn pem_round_trip_keeps_the_key_id_and_signatures() {
        let pem = key().to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let loaded = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(loaded.kid(), key().kid());
        // A token signed by the reloaded key verifies against the original ring (restart).
        let token = loaded.sign(&access_claims()).unwrap();
        assert!(verify(&token, t0()).is_ok());
        assert!(SigningKey::from_pem("not a pem").is_err());
        assert!(SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
        assert!(!format!("{:?}", key()).contains("PRIVATE"));
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 section 3.1 uses an RSA key; recompute the EC form by hand instead.
        let jwk = key().verifying_key().jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.x, jwk.y
        );
        assert_eq!(
            key().kid(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(key().kid().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap().len(), 32);
    }

    #[test]
    fn jwks_lists_active_and_accepted_keys_in_standard_shape() {
        let mut ring = ring();
        let json: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        let k = &json["keys"][0];
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kid"], key().kid());
        assert!(k.get("d").is_none(), "no private material");
        let imported = VerifyingKey::from_jwk(&serde_json::from_value(k.clone()).unwrap()).unwrap();
        assert_eq!(imported.kid(), key().kid());
        let next = SigningKey::generate();
        ring.rotate(next.clone());
        assert_eq!(ring.accepted_kids(), vec![next.kid(), key().kid()]);
        assert_eq!(ring.jwks().keys.len(), 2);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_retired() {
        let mut ring = ring();
        let old_token = ring.issue(&access_claims()).unwrap();
        let next = SigningKey::generate();
        ring.rotate(next.clone());
        let new_token = ring.issue(&access_claims()).unwrap();
        assert!(new_token.split('.').next() != old_token.split('.').next());
        assert!(ring.verify_access_token(&old_token, ISS, AUD, t0()).is_ok());
        assert!(ring.verify_access_token(&new_token, ISS, AUD, t0()).is_ok());
        assert!(!ring.retire(next.kid()), "the active key cannot be retired");
        assert!(ring.retire(key().kid()));
        assert_eq!(
            ring.verify_access_token(&old_token, ISS, AUD, t0()),
            Err(TokenError::UnknownKey)
        );
        assert!(ring.verify_access_token(&new_token, ISS, AUD, t0()).is_ok());
        // Another replica that only knows the old key's public half as accepted.
        let mut replica = KeyRing::new(SigningKey::generate());
        replica.accept(key().verifying_key().clone());
        replica.accept(key().verifying_key().clone());
        assert_eq!(replica.jwks().keys.len(), 2);
        assert!(replica
            .verify_access_token(&old_token, ISS, AUD, t0())
            .is_ok());
    }

    #[test]
    fn jwk_import_rejects_points_off_the_curve() {
        let mut jwk = key().verifying_key().jwk().clone();
        jwk.y = jwk.x.clone();
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
        let mut jwk = key().verifying_key().jwk().clone();
        jwk.crv = "P-384".into();
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
        let mut jwk = key().verifying_key().jwk().clone();
        jwk.x = "short".into();
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
    }
}
