//! Content digests (`sha256:…`, `sha512:…`) and the streaming hasher that computes them.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::Error;

static DIGEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$").unwrap());

/// The digest algorithms Berth computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(Error::Unsupported(format!(
                "digest algorithm '{}' is not supported; use sha256 or sha512",
                other.chars().take(32).collect::<String>().escape_default()
            ))),
        }
    }
}

/// A validated digest of a registered algorithm, with lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() > 200 || !DIGEST.is_match(s) {
            return Err(Error::DigestInvalid(format!(
                "'{}' is not a valid digest; expected ALGORITHM:HEX such as sha256:<64 hex digits>",
                s.chars().take(80).collect::<String>().escape_default()
            )));
        }
        let (alg, hex) = s.split_once(':').expect("regex guarantees ':'");
        let algorithm: Algorithm = alg.parse()?;
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::DigestInvalid(format!(
                "'{}' is not a valid {} digest: expected {} lowercase hex digits",
                s.escape_default(),
                alg,
                algorithm.hex_len()
            )));
        }
        Ok(Self::from_parts(algorithm, hex.to_owned()))
    }

    fn from_parts(algorithm: Algorithm, hex: String) -> Self {
        Digest { algorithm, hex }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of a byte slice already in memory (manifests).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().as_str(), self.hex)
    }
}

/// An incremental hasher for one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The hasher's internal state, to continue it later (possibly on another replica).
    pub fn save(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.serialize().to_vec(),
            Hasher::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Rebuilds a hasher saved with [`Hasher::save`]; `None` if the bytes are not such a state.
    pub fn restore(algorithm: Algorithm, state: &[u8]) -> Option<Hasher> {
        match algorithm {
            Algorithm::Sha256 => SerializedState::<Sha256>::try_from(state)
                .ok()
                .and_then(|s| Sha256::deserialize(&s).ok())
                .map(Hasher::Sha256),
            Algorithm::Sha512 => SerializedState::<Sha512>::try_from(state)
                .ok()
                .and_then(|s| Sha512::deserialize(&s).ok())
                .map(Hasher::Sha512),
        }
    }

    pub fn finish(self) -> Digest {
        let (alg, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest::from_parts(alg, hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_hash() {
        let d = Digest::of(Algorithm::Sha256, b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
    }

    #[test]
    fn saved_state_continues() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut h = alg.hasher();
            h.update(b"hello ");
            let mut resumed = Hasher::restore(alg, &h.save()).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finish(), Digest::of(alg, b"hello world"));
        }
        assert!(Hasher::restore(Algorithm::Sha256, b"junk").is_none());
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(Error::DigestInvalid(_))
        ));
        assert!(matches!(
            Digest::parse("nope"),
            Err(Error::DigestInvalid(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("md5:{}", "a".repeat(32))),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(Error::DigestInvalid(_))
        ));
        assert!(matches!(
            Digest::parse("sha256:../../etc/passwd"),
            Err(Error::DigestInvalid(_))
        ));
    }
}
