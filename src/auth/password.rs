//! Password and secret handling: argon2id hashing to PHC strings, constant-time comparison, and
//! generation of random passwords and AWS-style access keys.
//!
//! Hashing and verification are deliberately slow (tens of milliseconds of CPU and ~19 MiB of
//! memory with the default cost): they **block**, so async callers must run them inside
//! `tokio::task::spawn_blocking`.
//!
//! SigV4 needs the plaintext secret access key to recompute signatures, so an access key's secret
//! cannot be verified through an argon2 hash; argon2 is for secrets that are only ever presented
//! to Berth (user passwords, robot passwords, registry passwords from `GetAuthorizationToken`).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a secret could not be hashed or a stored hash could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored string is not a PHC string argon2 understands (corrupt database row).
    #[error("stored password hash is malformed: {0}")]
    MalformedHash(String),
    /// Argon2 refused the parameters or the input (for example an absurdly long secret).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's recommended argon2id setting (19 MiB, 2 passes, 1 lane); the argon2 crate default.
    pub const RECOMMENDED: HashCost = HashCost {
        memory_kib: Params::DEFAULT_M_COST,
        iterations: Params::DEFAULT_T_COST,
        parallelism: Params::DEFAULT_P_COST,
    };

    /// The cheapest valid setting. Only for tests: it offers no protection against brute force.
    pub const INSECURE_FAST_FOR_TESTS: HashCost = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost::RECOMMENDED
    }
}

/// Hashes `secret` with argon2id and the recommended cost, returning a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Blocking: run it in `spawn_blocking`.
pub fn hash_secret(secret: &str) -> Result<String, PasswordError> {
    hash_secret_with_cost(secret, HashCost::RECOMMENDED)
}

/// Hashes `secret` with argon2id at the given cost and a fresh random 16-byte salt. Blocking.
pub fn hash_secret_with_cost(secret: &str, cost: HashCost) -> Result<String, PasswordError> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let hash: PasswordHash = hasher
        .hash_password_with_salt(secret.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks `secret` against a PHC string produced by [`hash_secret`]. The cost parameters are read
/// from the stored string, so hashes made with older settings keep verifying. Returns `Ok(false)`
/// for a wrong secret and an error only when the stored hash itself is unusable. Blocking.
pub fn verify_secret(secret: &str, stored_phc: &str) -> Result<bool, PasswordError> {
    let parsed =
        PasswordHash::new(stored_phc).map_err(|e| PasswordError::MalformedHash(e.to_string()))?;
    match Argon2::default().verify_password(secret.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(PasswordError::MalformedHash(e.to_string())),
    }
}

/// Spends the same time as a real [`verify_secret`] with the recommended cost, for logins naming
/// a user that does not exist, so response timing does not reveal which user names exist.
/// Always returns `false`. Blocking.
pub fn verify_against_dummy_hash(secret: &str) -> bool {
    let _ = verify_secret(secret, DUMMY_PHC);
    false
}

/// A well-formed PHC string with the recommended cost whose preimage nobody knows.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YmVydGgtZHVtbXktc2FsdA$Qh1m9P0Tj3nU2X4dWmFz1lqJ4bq0tQyZl6y8Q8gM5hU";

/// A fingerprint of (presented secret, stored hash) for caching successful verifications:
/// HMAC-SHA256 keyed by the stored PHC string. Changing the password changes the stored hash and
/// therefore the fingerprint, so a cache keyed by it can never accept an old password.
pub fn credential_fingerprint(secret: &str, stored_phc: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(stored_phc.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Compares two secrets in constant time (for equal lengths; the length itself is not hidden).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

/// A new access key id in AWS's shape: `AKIA` followed by 16 uppercase letters and digits.
pub fn generate_access_key_id() -> String {
    format!("AKIA{}", random_string(UPPER_ALNUM, 16))
}

/// A new secret access key in AWS's shape: 40 characters of the base64 alphabet (~238 bits).
pub fn generate_secret_access_key() -> String {
    random_string(BASE64_ALPHABET, 40)
}

/// A new random password: 32 letters and digits (~190 bits), safe in URLs, shells and headers.
pub fn generate_password() -> String {
    random_string(ALNUM, 32)
}

/// `len` random bytes from the operating system, for token ids, salts and similar.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_accepts_only_the_right_secret() {
        let phc =
            hash_secret_with_cost("correct horse", HashCost::INSECURE_FAST_FOR_TESTS).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_secret("correct horse", &phc).unwrap());
        assert!(!verify_secret("correct horse ", &phc).unwrap());
        assert!(!verify_secret("", &phc).unwrap());
    }

    #[test]
    fn hashing_uses_a_fresh_salt_each_time() {
        let a = hash_secret_with_cost("pw", HashCost::INSECURE_FAST_FOR_TESTS).unwrap();
        let b = hash_secret_with_cost("pw", HashCost::INSECURE_FAST_FOR_TESTS).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn default_cost_produces_recommended_parameters() {
        let phc = hash_secret("pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_secret("pw", &phc).unwrap());
    }

    #[test]
    fn malformed_stored_hash_is_an_error_not_a_panic() {
        assert!(matches!(
            verify_secret("pw", "not a phc string"),
            Err(PasswordError::MalformedHash(_))
        ));
        assert!(verify_secret("pw", "").is_err());
    }

    #[test]
    fn dummy_verification_never_succeeds() {
        // The dummy hash must parse, or the timing equalization would be a no-op.
        assert!(!verify_secret("anything", DUMMY_PHC).unwrap());
        assert!(!verify_against_dummy_hash(""));
        assert!(!verify_against_dummy_hash("anything"));
    }

    #[test]
    fn fingerprint_changes_with_secret_and_with_stored_hash() {
        let a = credential_fingerprint("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA");
        assert_eq!(
            a,
            credential_fingerprint("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA")
        );
        assert_ne!(
            a,
            credential_fingerprint("pw2", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA")
        );
        assert_ne!(
            a,
            credential_fingerprint("pw", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$b3RoZXI")
        );
    }

    #[test]
    fn secret_eq_compares_content_and_length() {
        assert!(secret_eq(b"abc", b"abc"));
        assert!(!secret_eq(b"abc", b"abd"));
        assert!(!secret_eq(b"abc", b"abcd"));
        assert!(secret_eq(b"", b""));
    }

    #[test]
    fn generated_credentials_have_aws_shapes() {
        let id = generate_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let secret = generate_secret_access_key();
        assert_eq!(secret.len(), 40);
        assert!(secret.bytes().all(|b| BASE64_ALPHABET.contains(&b)));
        let pw = generate_password();
        assert_eq!(pw.len(), 32);
        assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(generate_access_key_id(), id);
        assert_ne!(generate_secret_access_key(), secret);
        assert_eq!(random_bytes(24).len(), 24);
    }
}
