//! AWS Signature Version 4 verification for the ECR-compatible JSON API (`POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>`), and a matching signer for
//! tests and internal clients.
//!
//! Verification follows AWS's published algorithm (the same canonical form botocore produces):
//! the canonical request (method, normalized and URI-encoded path, sorted re-encoded query,
//! lowercase signed headers with trimmed and whitespace-collapsed values, SHA-256 of the body),
//! the string to sign over `date/region/service/aws4_request`, the HMAC-SHA256 key chain, and a
//! constant-time comparison. It also checks that the credential is scoped to the expected service
//! (`ecr`, any region), that `X-Amz-Date` is signed, matches the credential date and lies within
//! ±15 minutes of `now`, that `host` is signed, and that `x-amz-content-sha256`, when sent,
//! matches the body.
//!
//! Errors map onto ECR's exceptions ([`SigV4Error::error_type`]). The secret access key is needed
//! in plaintext (it keys the HMAC), so it cannot be stored as an argon2 hash.
//!
//! With HTTP/2 there is no `Host` header (the authority is part of the URI); use
//! [`headers_from_http`] to add it back before verifying.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::secret_eq;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name ECR clients put in the credential scope.
pub const ECR_SERVICE: &str = "ecr";
/// How far `X-Amz-Date` may be from the server's clock (AWS uses 15 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Format of `X-Amz-Date`.
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Headers the signer leaves out, as botocore does (proxies and clients change them).
const UNSIGNED_HEADERS: &[&str] = &["authorization", "user-agent", "expect", "x-amzn-trace-id"];

const INVALID_SIGNATURE_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Why a request's signature was refused; each variant is one of ECR's exception types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header, or one of another scheme: `MissingAuthenticationTokenException`.
    #[error("{0}")]
    MissingAuthentication(String),
    /// The header lacks a part, or a required header is not signed: `IncompleteSignatureException`.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown (or disabled): `UnrecognizedClientException`.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// Wrong signature, wrong service, date outside the window, body hash mismatch:
    /// `InvalidSignatureException`.
    #[error("{0}")]
    InvalidSignature(String),
}

impl SigV4Error {
    /// The ECR `__type` for the JSON error body.
    pub fn error_type(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthentication(_) => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignatureException",
            SigV4Error::UnrecognizedClient(_) => "UnrecognizedClientException",
            SigV4Error::InvalidSignature(_) => "InvalidSignatureException",
        }
    }

    /// The `message` for the JSON error body (safe to return: it never contains the secret).
    pub fn message(&self) -> &str {
        match self {
            SigV4Error::MissingAuthentication(m)
            | SigV4Error::IncompleteSignature(m)
            | SigV4Error::UnrecognizedClient(m)
            | SigV4Error::InvalidSignature(m) => m,
        }
    }

    /// The HTTP status AWS JSON services use for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            SigV4Error::MissingAuthentication(_) => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    fn unrecognized_client() -> SigV4Error {
        SigV4Error::UnrecognizedClient(
            "The security token included in the request is invalid.".into(),
        )
    }
}

fn incomplete(message: impl Into<String>) -> SigV4Error {
    SigV4Error::IncompleteSignature(message.into())
}

fn invalid(message: impl Into<String>) -> SigV4Error {
    SigV4Error::InvalidSignature(message.into())
}

/// The parts of a request that SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct SigV4Request<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path exactly as received on the wire (still percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?` (empty when none).
    pub query: &'a str,
    /// All request headers, names in any case; repeated names allowed. Must include `host`.
    pub headers: &'a [(String, String)],
    /// The request body.
    pub body: &'a [u8],
}

/// Collects an `http::HeaderMap` into name/value pairs (values decoded lossily), adding `host`
/// from the request URI's authority when the header is absent (HTTP/2).
pub fn headers_from_http(
    headers: &http::HeaderMap,
    authority: Option<&str>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    if !headers.contains_key(http::header::HOST) {
        if let Some(authority) = authority {
            pairs.push(("host".to_owned(), authority.to_owned()));
        }
    }
    pairs
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// The access key id from the credential.
    pub access_key_id: String,
    /// The credential date, `YYYYMMDD`.
    pub date: String,
    /// The credential region (any region is accepted).
    pub region: String,
    /// The credential service (must be `ecr` for the ECR API).
    pub service: String,
    /// Lowercase signed header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Lowercase hex signature.
    pub signature: String,
}

fn header_values<'h>(
    headers: &'h [(String, String)],
    name: &'h str,
) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Finds and parses the `Authorization` header. Call this first, look the key id up (async, in
/// the database), then call [`SigV4Verifier::verify_with_secret`].
pub fn parse_authorization(
    headers: &[(String, String)],
) -> Result<AuthorizationHeader, SigV4Error> {
    let mut values = header_values(headers, "authorization");
    let value = values
        .next()
        .ok_or_else(|| SigV4Error::MissingAuthentication("Missing Authentication Token".into()))?;
    if values.next().is_some() {
        return Err(incomplete("Only one Authorization header is allowed."));
    }
    parse_authorization_value(value)
}

/// Parses one `Authorization` header value.
pub fn parse_authorization_value(value: &str) -> Result<AuthorizationHeader, SigV4Error> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        if algorithm.starts_with("AWS4-") {
            return Err(incomplete(format!(
                "Unsupported AWS 'algorithm': '{}'.",
                algorithm.chars().take(64).collect::<String>()
            )));
        }
        return Err(SigV4Error::MissingAuthentication(
            "Missing Authentication Token".into(),
        ));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',') {
        let component = component.trim();
        if component.is_empty() {
            continue;
        }
        let (key, val) = component.split_once('=').ok_or_else(|| {
            incomplete(format!(
                "Authorization header component is not key=value: '{component}'."
            ))
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(val).is_some() {
            return Err(incomplete(format!(
                "Authorization header has '{key}' twice."
            )));
        }
    }
    let mut missing = Vec::new();
    for (name, part) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if part.is_none_or_empty() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(missing.join(" ")));
    }
    let (credential, signed_headers, signature) = (
        credential.unwrap_or_default(),
        signed_headers.unwrap_or_default(),
        signature.unwrap_or_default(),
    );

    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(format!(
            "Credential must have the form <key id>/<YYYYMMDD>/<region>/<service>/aws4_request, got '{}'.",
            credential.chars().take(200).collect::<String>()
        )));
    };
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(incomplete(
            "Credential has an empty key id, region or service.",
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(format!(
            "Credential date must be YYYYMMDD, got '{date}'."
        )));
    }
    if terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    let signed: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    for (i, name) in signed.iter().enumerate() {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && b != b':');
        if !valid || signed[..i].contains(name) {
            return Err(incomplete(format!("Invalid SignedHeaders entry '{name}'.")));
        }
    }
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(invalid(INVALID_SIGNATURE_MESSAGE));
    }
    Ok(AuthorizationHeader {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed,
        signature: signature.to_owned(),
    })
}

trait NoneOrEmpty {
    fn is_none_or_empty(&self) -> bool;
}

impl NoneOrEmpty for Option<&str> {
    fn is_none_or_empty(&self) -> bool {
        self.map(str::is_empty).unwrap_or(true)
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The access key id whose secret produced the signature.
    pub access_key_id: String,
    /// The region the client signed for.
    pub region: String,
    /// The signing time (`X-Amz-Date`).
    pub signed_at: DateTime<Utc>,
}

/// Verifies SigV4 signatures for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Verifier {
    /// The service the credential scope must name.
    pub service: String,
    /// Allowed distance between `X-Amz-Date` and `now`, in seconds.
    pub max_clock_skew_secs: i64,
}

impl SigV4Verifier {
    /// The verifier for the ECR API: service `ecr`, ±15 minutes.
    pub fn ecr() -> SigV4Verifier {
        SigV4Verifier {
            service: ECR_SERVICE.to_owned(),
            max_clock_skew_secs: MAX_CLOCK_SKEW_SECS,
        }
    }

    /// Parses, looks up the secret with `lookup_secret(access_key_id)` and verifies. For a
    /// database lookup from async code, use [`parse_authorization`] and
    /// [`SigV4Verifier::verify_with_secret`] instead.
    pub fn verify(
        &self,
        request: &SigV4Request<'_>,
        now: DateTime<Utc>,
        lookup_secret: impl FnOnce(&str) -> Option<String>,
    ) -> Result<VerifiedRequest, SigV4Error> {
        let authorization = parse_authorization(request.headers)?;
        self.check_service(&authorization)?;
        let secret = lookup_secret(&authorization.access_key_id)
            .ok_or_else(SigV4Error::unrecognized_client)?;
        self.verify_with_secret(request, &authorization, &secret, now)
    }

    fn check_service(&self, authorization: &AuthorizationHeader) -> Result<(), SigV4Error> {
        if authorization.service != self.service {
            return Err(invalid(format!(
                "Credential should be scoped to correct service: '{}'.",
                self.service
            )));
        }
        Ok(())
    }

    /// Verifies `request` against an already parsed header and the secret of its key id.
    pub fn verify_with_secret(
        &self,
        request: &SigV4Request<'_>,
        authorization: &AuthorizationHeader,
        secret_access_key: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedRequest, SigV4Error> {
        self.check_service(authorization)?;
        let signed = |name: &str| authorization.signed_headers.iter().any(|h| h == name);
        let mut dates = header_values(request.headers, "x-amz-date");
        let amz_date = dates
            .next()
            .ok_or_else(|| {
                incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
            })?
            .trim();
        if dates.next().is_some() {
            return Err(incomplete("Only one X-Amz-Date header is allowed."));
        }
        if !signed("x-amz-date") {
            return Err(incomplete("'X-Amz-Date' must be a signed header."));
        }
        if !signed("host") {
            return Err(incomplete("'Host' must be a signed header."));
        }
        let signed_at = NaiveDateTime::parse_from_str(amz_date, AMZ_DATE_FORMAT)
            .map_err(|_| {
                invalid(format!(
                    "X-Amz-Date must be in ISO-8601 basic format, got '{amz_date}'."
                ))
            })?
            .and_utc();
        if !amz_date.starts_with(&authorization.date) {
            return Err(invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                authorization.date,
                &amz_date[..8],
                amz_date
            )));
        }
        let skew = chrono::Duration::seconds(self.max_clock_skew_secs);
        let minutes = self.max_clock_skew_secs / 60;
        if signed_at < now - skew {
            return Err(invalid(format!(
                "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
                amz_date,
                format_amz_date(now - skew),
                format_amz_date(now)
            )));
        }
        if signed_at > now + skew {
            return Err(invalid(format!(
                "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
                amz_date,
                format_amz_date(now + skew),
                format_amz_date(now)
            )));
        }
        for name in &authorization.signed_headers {
            if header_values(request.headers, name).next().is_none() {
                return Err(invalid(format!(
                    "Signed header '{name}' is missing from the request."
                )));
            }
        }
        let payload_hash = hex::encode(Sha256::digest(request.body));
        for claimed in header_values(request.headers, "x-amz-content-sha256") {
            if claimed.trim() != payload_hash {
                return Err(invalid(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        let scope = CredentialScope {
            date: &authorization.date,
            region: &authorization.region,
            service: &authorization.service,
        };
        let expected = compute_signature(
            request,
            &authorization.signed_headers,
            &payload_hash,
            amz_date,
            &scope,
            secret_access_key,
        );
        if !secret_eq(expected.as_bytes(), authorization.signature.as_bytes()) {
            return Err(invalid(INVALID_SIGNATURE_MESSAGE));
        }
        Ok(VerifiedRequest {
            access_key_id: authorization.access_key_id.clone(),
            region: authorization.region.clone(),
            signed_at,
        })
    }
}

/// Credentials and scope for [`sign`].
#[derive(Debug, Clone, Copy)]
pub struct SigningCredentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service, e.g. `ecr`.
    pub service: &'a str,
}

/// The headers a signed request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Value for `X-Amz-Date`.
    pub amz_date: String,
    /// Value for `Authorization`.
    pub authorization: String,
    /// The hex signature alone.
    pub signature: String,
    /// The `;`-joined signed header names.
    pub signed_headers: String,
}

/// Signs `request` at time `now`, as botocore would: every header except `authorization`,
/// `user-agent`, `expect` and `x-amzn-trace-id` is signed, plus `x-amz-date` (computed from `now`,
/// replacing any in `request.headers`). The request must include a `host` header. Add the returned
/// `X-Amz-Date` and `Authorization` headers to the request.
pub fn sign(
    request: &SigV4Request<'_>,
    credentials: &SigningCredentials<'_>,
    now: DateTime<Utc>,
) -> Signature {
    let amz_date = format_amz_date(now);
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("x-amz-date"))
        .cloned()
        .collect();
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| !UNSIGNED_HEADERS.contains(&name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let date = &amz_date[..8];
    let scope = CredentialScope {
        date,
        region: credentials.region,
        service: credentials.service,
    };
    let with_date = SigV4Request {
        headers: &headers,
        ..*request
    };
    let payload_hash = hex::encode(Sha256::digest(request.body));
    let signature = compute_signature(
        &with_date,
        &names,
        &payload_hash,
        &amz_date,
        &scope,
        credentials.secret_access_key,
    );
    let signed_headers = names.join(";");
    Signature {
        authorization: format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id,
            scope.to_string_scope()
        ),
        amz_date,
        signature,
        signed_headers,
    }
}

/// `X-Amz-Date` form of a time: `20150830T123600Z`.
pub fn format_amz_date(time: DateTime<Utc>) -> String {
    time.format(AMZ_DATE_FORMAT).to_string()
}

struct CredentialScope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl CredentialScope<'_> {
    fn to_string_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn compute_signature(
    request: &SigV4Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    amz_date: &str,
    scope: &CredentialScope<'_>,
    secret_access_key: &str,
) -> String {
    let canonical = canonical_request(request, signed_headers, payload_hash);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.to_string_scope(),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        scope.date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes());
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

fn canonical_request(
    request: &SigV4Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = header_values(request.headers, name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.to_ascii_uppercase(),
        canonical_uri(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers.join(";"),
        payload_hash
    )
}

/// AWS URI encoding: everything except unreserved characters (`A-Za-z0-9-._~`) becomes `%XX`
/// (uppercase hex); `/` is kept when `keep_slash`.
fn aws_uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical URI of a wire path for non-S3 services, as botocore computes it: dot segments
/// and empty segments removed, then every byte outside the unreserved set (including the `%` of
/// existing escapes) percent-encoded, which is AWS's "encode twice".
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    aws_uri_encode(normalized.as_bytes(), true)
}

/// The canonical query: each name and value percent-decoded and re-encoded with AWS's rules,
/// pairs sorted by name then value, a name without `=` given an empty value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                aws_uri_encode(&percent_decode(name), false),
                aws_uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn suite_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn suite_verifier() -> SigV4Verifier {
        SigV4Verifier {
            service: "service".into(),
            max_clock_skew_secs: MAX_CLOCK_SKEW_SECS,
        }
    }

    fn suite_lookup(id: &str) -> Option<String> {
        (id == SUITE_KEY_ID).then(|| SUITE_SECRET.to_owned())
    }

    /// Checks one vector of AWS's SigV4 test suite (`aws-sig-v4-test-suite`, 2015-08-30 set):
    /// our signer yields AWS's published signature and our verifier accepts it.
    fn check_suite_vector(method: &str, path: &str, query: &str, expected_signature: &str) {
        let base = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let request = SigV4Request {
            method,
            path,
            query,
            headers: &base,
            body: b"",
        };
        let credentials = SigningCredentials {
            access_key_id: SUITE_KEY_ID,
            secret_access_key: SUITE_SECRET,
            region: "us-east-1",
            service: "service",
        };
        let signature = sign(&request, &credentials, suite_time());
        assert_eq!(
            signature.signature, expected_signature,
            "{method} {path}?{query}"
        );
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={expected_signature}"
        );
        assert_eq!(signature.authorization, authorization);
        let mut with_auth = base.clone();
        with_auth.push(("Authorization".into(), authorization));
        let request = SigV4Request {
            headers: &with_auth,
            ..request
        };
        let verified = suite_verifier()
            .verify(&request, suite_time(), suite_lookup)
            .unwrap();
        assert_eq!(verified.access_key_id, SUITE_KEY_ID);
        assert_eq!(verified.region, "us-east-1");
        assert_eq!(verified.signed_at, suite_time());
    }

    #[test]
    fn aws_suite_get_vanilla() {
        check_suite_vector(
            "GET",
            "/",
            "",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_canonical_request_hash() {
        let base = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let request = SigV4Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &base,
            body: b"",
        };
        let canonical = canonical_request(
            &request,
            &["host".into(), "x-amz-date".into()],
            EMPTY_SHA256,
        );
        assert_eq!(
            canonical,
            format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}")
        );
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn aws_suite_get_vanilla_query_order_key_case() {
        check_suite_vector(
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        );
    }

    #[test]
    fn aws_suite_post_vanilla() {
        check_suite_vector(
            "POST",
            "/",
            "",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
    }

    #[test]
    fn aws_suite_get_utf8() {
        check_suite_vector(
            "GET",
            "/ሴ",
            "",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        );
    }

    // ---- Fixtures captured from boto3/botocore 1.44.8 (ecr client, before-send hook, clock fixed
    // at 2026-03-14T15:09:26Z, key AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY).

    const BOTO_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const BOTO_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const BOTO_USER_AGENT: &str =
        "Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.18.44-fc-v669 md/arch#x86_64 \
        lang/python#3.11.7 md/pyimpl#CPython m/e,N,E,b,Z cfg/retry-mode#standard Botocore/1.44.8";

    fn boto_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap()
    }

    fn boto_lookup(id: &str) -> Option<String> {
        (id == BOTO_KEY_ID).then(|| BOTO_SECRET.to_owned())
    }

    /// `aws ecr describe-repositories --endpoint-url http://localhost:5000 --region us-west-2`.
    fn boto_describe_repositories_headers() -> Vec<(String, String)> {
        headers(&[
            ("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("User-Agent", BOTO_USER_AGENT),
            ("X-Amz-Date", "20260314T150926Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260314/us-west-2/ecr/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                 Signature=b5b53ab6f11bece52ec7e92a360d0fd7295e5596e9592e704c55fb8c6c45daad",
            ),
            ("amz-sdk-invocation-id", "f346a94f-9e79-459b-9a14-53397dc06f27"),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "2"),
            ("Host", "localhost:5000"),
        ])
    }

    fn ecr_request<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> SigV4Request<'a> {
        SigV4Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }

    fn verify_ecr(
        request: &SigV4Request<'_>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedRequest, SigV4Error> {
        SigV4Verifier::ecr().verify(request, now, boto_lookup)
    }

    #[test]
    fn botocore_describe_repositories_verifies() {
        let h = boto_describe_repositories_headers();
        let verified = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap();
        assert_eq!(
            verified,
            VerifiedRequest {
                access_key_id: BOTO_KEY_ID.into(),
                region: "us-west-2".into(),
                signed_at: boto_time(),
            }
        );
    }

    #[test]
    fn botocore_create_repository_with_body_verifies_and_sign_matches() {
        let body = br#"{"repositoryName": "team/app", "imageTagMutability": "IMMUTABLE"}"#;
        let mut h = headers(&[
            (
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
            ),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Host", "berth.example.com"),
        ]);
        let expected = "460ba6810fb862d96ea64c8b2c45a3caa3d64218942996854c0a84027556cdd8";
        let credentials = SigningCredentials {
            access_key_id: BOTO_KEY_ID,
            secret_access_key: BOTO_SECRET,
            region: "eu-central-1",
            service: ECR_SERVICE,
        };
        let ours = sign(&ecr_request(&h, body), &credentials, boto_time());
        assert_eq!(ours.signature, expected);
        assert_eq!(
            ours.signed_headers,
            "content-type;host;x-amz-date;x-amz-target"
        );
        h.extend(headers(&[
            ("User-Agent", BOTO_USER_AGENT),
            ("X-Amz-Date", "20260314T150926Z"),
            (
                "Authorization",
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260314/eu-central-1/ecr/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={expected}"
                ),
            ),
            ("amz-sdk-invocation-id", "d5151ce3-fd7b-47bc-916e-089032b676c3"),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "65"),
        ]));
        assert_eq!(
            verify_ecr(&ecr_request(&h, body), boto_time())
                .unwrap()
                .region,
            "eu-central-1"
        );
    }

    /// botocore `SigV4Auth(creds, "ecr", "ap-southeast-2")` over a GET with an encoded path,
    /// repeated and unsorted query parameters and a header needing whitespace collapsing.
    /// botocore's canonical form: path `/v2/some%2520dir/a~b%3Ac`,
    /// query `a=0&a=1&b=2&c=x%2Fy&empty=&sp=a%20b`, header `x-custom:a b c`.
    #[test]
    fn botocore_query_path_and_header_canonicalization() {
        let h = headers(&[
            ("X-Custom", "  a   b  c "),
            ("x-multi", "1"),
            ("X-Amz-Date", "20260314T150926Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260314/ap-southeast-2/ecr/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-custom;x-multi, \
                 Signature=790c9a6315793ecd3b3c4e4ffee1c77006abfc08201759b5764655f7fa90ae3a",
            ),
            ("host", "127.0.0.1:8080"),
        ]);
        let request = SigV4Request {
            method: "GET",
            path: "/v2/some%20dir/a~b:c",
            query: "b=2&a=1&a=0&c=x%2Fy&empty=&sp=a%20b",
            headers: &h,
            body: b"",
        };
        assert_eq!(canonical_uri(request.path), "/v2/some%2520dir/a~b%3Ac");
        assert_eq!(
            canonical_query(request.query),
            "a=0&a=1&b=2&c=x%2Fy&empty=&sp=a%20b"
        );
        assert_eq!(
            verify_ecr(&request, boto_time()).unwrap().region,
            "ap-southeast-2"
        );
    }

    #[test]
    fn canonical_uri_normalizes_like_botocore() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_query("a&b=&=c"), "=c&a=&b=");
        assert_eq!(canonical_query("x=%zz%4"), "x=%25zz%254");
    }

    #[test]
    fn attack_wrong_secret_is_refused() {
        let h = boto_describe_repositories_headers();
        let result = SigV4Verifier::ecr().verify(&ecr_request(&h, b"{}"), boto_time(), |_| {
            Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ".to_owned())
        });
        let err = result.unwrap_err();
        assert_eq!(err.error_type(), "InvalidSignatureException");
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn attack_tampered_body_is_refused() {
        let h = boto_describe_repositories_headers();
        let err = verify_ecr(&ecr_request(&h, br#"{"registryId":"1"}"#), boto_time()).unwrap_err();
        assert!(matches!(err, SigV4Error::InvalidSignature(_)), "{err:?}");
        // A body hash header that does not match the body is refused before the signature.
        let mut h = h;
        h.push(("x-amz-content-sha256".into(), EMPTY_SHA256.into()));
        let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
        assert!(err.message().contains("x-amz-content-sha256"), "{err:?}");
    }

    #[test]
    fn attack_tampered_signed_header_is_refused() {
        for (name, value) in [
            (
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.DeleteRepository",
            ),
            ("Content-Type", "application/json"),
            ("Host", "evil.example.com:5000"),
        ] {
            let mut h = boto_describe_repositories_headers();
            h.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.into();
            let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
            assert!(
                matches!(err, SigV4Error::InvalidSignature(_)),
                "{name}: {err:?}"
            );
        }
        // Adding a second value to a signed header changes its canonical form too.
        let mut h = boto_describe_repositories_headers();
        h.push((
            "x-amz-target".into(),
            "AmazonEC2ContainerRegistry_V20150921.DeleteRepository".into(),
        ));
        assert!(matches!(
            verify_ecr(&ecr_request(&h, b"{}"), boto_time()),
            Err(SigV4Error::InvalidSignature(_))
        ));
        // Unsigned headers may change freely.
        let mut h = boto_describe_repositories_headers();
        h.iter_mut().find(|(n, _)| n == "User-Agent").unwrap().1 = "curl/8".into();
        assert!(verify_ecr(&ecr_request(&h, b"{}"), boto_time()).is_ok());
        // Removing a signed header.
        let mut h = boto_describe_repositories_headers();
        h.retain(|(n, _)| n != "Content-Type");
        assert!(matches!(
            verify_ecr(&ecr_request(&h, b"{}"), boto_time()),
            Err(SigV4Error::InvalidSignature(_))
        ));
        // Tampered method, path or signature.
        let h = boto_describe_repositories_headers();
        let req = SigV4Request {
            method: "PUT",
            ..ecr_request(&h, b"{}")
        };
        assert!(verify_ecr(&req, boto_time()).is_err());
        let req = SigV4Request {
            path: "/other",
            ..ecr_request(&h, b"{}")
        };
        assert!(verify_ecr(&req, boto_time()).is_err());
        let mut h = boto_describe_repositories_headers();
        let auth = &mut h.iter_mut().find(|(n, _)| n == "Authorization").unwrap().1;
        *auth = auth.replace("daad", "daae");
        assert!(matches!(
            verify_ecr(&ecr_request(&h, b"{}"), boto_time()),
            Err(SigV4Error::InvalidSignature(_))
        ));
    }

    #[test]
    fn attack_replay_outside_the_date_window_is_refused() {
        let h = boto_describe_repositories_headers();
        let req = ecr_request(&h, b"{}");
        let window = chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS);
        assert!(verify_ecr(&req, boto_time() + window).is_ok());
        assert!(verify_ecr(&req, boto_time() - window).is_ok());
        let err =
            verify_ecr(&req, boto_time() + window + chrono::Duration::seconds(1)).unwrap_err();
        assert_eq!(err.error_type(), "InvalidSignatureException");
        assert_eq!(
            err.message(),
            "Signature expired: 20260314T150926Z is now earlier than 20260314T150927Z (20260314T152427Z - 15 min.)"
        );
        let err =
            verify_ecr(&req, boto_time() - window - chrono::Duration::seconds(1)).unwrap_err();
        assert!(
            err.message().starts_with("Signature not yet current"),
            "{err:?}"
        );
        assert!(verify_ecr(&req, boto_time() + chrono::Duration::days(1)).is_err());
    }

    #[test]
    fn moving_the_date_to_dodge_the_window_breaks_the_signature() {
        let mut h = boto_describe_repositories_headers();
        h.iter_mut().find(|(n, _)| n == "X-Amz-Date").unwrap().1 = "20260314T160926Z".into();
        let later = boto_time() + chrono::Duration::hours(1);
        assert!(matches!(
            verify_ecr(&ecr_request(&h, b"{}"), later),
            Err(SigV4Error::InvalidSignature(_))
        ));
        // Credential date must match X-Amz-Date's date.
        h.iter_mut().find(|(n, _)| n == "X-Amz-Date").unwrap().1 = "20260315T000000Z".into();
        let err = verify_ecr(
            &ecr_request(&h, b"{}"),
            Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap(),
        )
        .unwrap_err();
        assert!(
            err.message()
                .starts_with("Date in Credential scope does not match"),
            "{err:?}"
        );
    }

    #[test]
    fn attack_wrong_service_is_refused() {
        let h = headers(&[("Host", "localhost:5000"), ("X-Amz-Target", "x")]);
        let credentials = SigningCredentials {
            access_key_id: BOTO_KEY_ID,
            secret_access_key: BOTO_SECRET,
            region: "us-east-1",
            service: "s3",
        };
        let signature = sign(&ecr_request(&h, b"{}"), &credentials, boto_time());
        let mut h = h;
        h.push(("X-Amz-Date".into(), signature.amz_date));
        h.push(("Authorization".into(), signature.authorization));
        let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
        assert_eq!(err.error_type(), "InvalidSignatureException");
        assert_eq!(
            err.message(),
            "Credential should be scoped to correct service: 'ecr'."
        );
    }

    #[test]
    fn attack_unknown_key_is_unrecognized_client() {
        let h = boto_describe_repositories_headers();
        let err = SigV4Verifier::ecr()
            .verify(&ecr_request(&h, b"{}"), boto_time(), |_| None)
            .unwrap_err();
        assert_eq!(err.error_type(), "UnrecognizedClientException");
        assert_eq!(
            err.message(),
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn sign_then_verify_round_trip_any_region() {
        let now = Utc.with_ymd_and_hms(2030, 12, 31, 23, 59, 59).unwrap();
        let credentials = SigningCredentials {
            access_key_id: "AKIAEXAMPLE000000001",
            secret_access_key: "s3cr3t/with+chars",
            region: "mars-north-7",
            service: ECR_SERVICE,
        };
        let mut h = headers(&[
            ("Host", "berth:5000"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("User-Agent", "test"),
        ]);
        let body = br#"{"repositoryNames":["a"]}"#;
        let signature = sign(&ecr_request(&h, body), &credentials, now);
        assert_eq!(signature.signed_headers, "content-type;host;x-amz-date");
        h.push(("X-Amz-Date".into(), signature.amz_date.clone()));
        h.push(("Authorization".into(), signature.authorization.clone()));
        let verified = SigV4Verifier::ecr()
            .verify(&ecr_request(&h, body), now, |id| {
                (id == "AKIAEXAMPLE000000001").then(|| "s3cr3t/with+chars".to_owned())
            })
            .unwrap();
        assert_eq!(verified.region, "mars-north-7");
        // Two-phase form used by async callers.
        let parsed = parse_authorization(&h).unwrap();
        assert_eq!(parsed.access_key_id, "AKIAEXAMPLE000000001");
        assert!(SigV4Verifier::ecr()
            .verify_with_secret(&ecr_request(&h, body), &parsed, "s3cr3t/with+chars", now)
            .is_ok());
        assert!(SigV4Verifier::ecr()
            .verify_with_secret(&ecr_request(&h, body), &parsed, "other", now)
            .is_err());
    }

    #[test]
    fn missing_or_foreign_authorization_is_missing_authentication() {
        let h = headers(&[("Host", "h"), ("X-Amz-Date", "20260314T150926Z")]);
        let err = verify_ecr(&ecr_request(&h, b""), boto_time()).unwrap_err();
        assert_eq!(err.error_type(), "MissingAuthenticationTokenException");
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        for value in [
            "Basic QVdTOnBhc3M=",
            "Bearer x",
            "",
            "AWS4HMAC Credential=x",
        ] {
            let err = parse_authorization_value(value).unwrap_err();
            assert_eq!(
                err.error_type(),
                "MissingAuthenticationTokenException",
                "{value:?}"
            );
        }
    }

    #[test]
    fn incomplete_authorization_headers_are_incomplete_signature() {
        for value in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/ecr/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/2026031/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=/20260314/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request, SignedHeaders=Host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request, SignedHeaders=host;;x, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request, SignedHeaders=host;host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/20260314/r/ecr/aws4_request, Credential=b, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 garbage",
            "AWS4-ECDSA-P256-SHA256 Credential=x",
        ] {
            let err = parse_authorization_value(value).unwrap_err();
            assert_eq!(err.error_type(), "IncompleteSignatureException", "{value:?} -> {err:?}");
        }
        let sig = "0".repeat(64);
        let bad_terminator =
            format!("AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws5_request, SignedHeaders=host, Signature={sig}");
        assert_eq!(
            parse_authorization_value(&bad_terminator)
                .unwrap_err()
                .error_type(),
            "InvalidSignatureException"
        );
        let short_sig =
            "AWS4-HMAC-SHA256 Credential=AKID/20260314/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00";
        assert!(parse_authorization_value(short_sig).is_err());
        // Two Authorization headers.
        let h = headers(&[("Authorization", "x"), ("authorization", "y")]);
        assert_eq!(
            parse_authorization(&h).unwrap_err().error_type(),
            "IncompleteSignatureException"
        );
    }

    #[test]
    fn host_and_date_must_be_signed() {
        let credentials = SigningCredentials {
            access_key_id: BOTO_KEY_ID,
            secret_access_key: BOTO_SECRET,
            region: "us-east-1",
            service: ECR_SERVICE,
        };
        // No host header at all: the signer cannot sign it, the verifier refuses.
        let mut h = headers(&[("Content-Type", "application/x-amz-json-1.1")]);
        let signature = sign(&ecr_request(&h, b"{}"), &credentials, boto_time());
        h.push(("X-Amz-Date".into(), signature.amz_date.clone()));
        h.push(("Authorization".into(), signature.authorization.clone()));
        h.push(("Host".into(), "late:5000".into()));
        let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
        assert_eq!(err.error_type(), "IncompleteSignatureException");
        // No X-Amz-Date header.
        let mut h = boto_describe_repositories_headers();
        h.retain(|(n, _)| n != "X-Amz-Date");
        let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
        assert_eq!(err.error_type(), "IncompleteSignatureException");
        // Malformed X-Amz-Date.
        let mut h = boto_describe_repositories_headers();
        h.iter_mut().find(|(n, _)| n == "X-Amz-Date").unwrap().1 = "2026-03-14T15:09:26Z".into();
        let err = verify_ecr(&ecr_request(&h, b"{}"), boto_time()).unwrap_err();
        assert_eq!(err.error_type(), "InvalidSignatureException");
    }

    #[test]
    fn headers_from_http_adds_the_http2_authority() {
        let mut map = http::HeaderMap::new();
        map.insert(
            "x-amz-date",
            http::HeaderValue::from_static("20260314T150926Z"),
        );
        let pairs = headers_from_http(&map, Some("berth:5000"));
        assert!(pairs.contains(&("host".into(), "berth:5000".into())));
        map.insert(http::header::HOST, http::HeaderValue::from_static("real:1"));
        let pairs = headers_from_http(&map, Some("berth:5000"));
        assert_eq!(
            header_values(&pairs, "host").collect::<Vec<_>>(),
            vec!["real:1"]
        );
    }
}
