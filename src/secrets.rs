//! Encryption at rest for the secrets Berth keeps in its metadata database (access-key secrets and
//! generated token signing keys), and the file modes of everything that holds secrets.
//!
//! The keys come from a key file (`[auth] secrets_key_file`, or `<data_dir>/secrets.key`
//! generated on first start on embedded SQLite): one key per line, the base64 of 32 random bytes;
//! blank lines and lines starting with `#` are ignored. The first key encrypts, every key
//! decrypts, so keys rotate without a window in which stored values cannot be read. A key's id is
//! the first 4 bytes of SHA-256 over a fixed label and the key, in hex: derived, never written in
//! the file, and safe to print.
//!
//! A stored value is `enc:v1:<key id>:<base64(nonce || ciphertext)>`: XChaCha20-Poly1305 with a
//! random 192-bit nonce per value, and the row it belongs to (`access_keys/<key id>`) as
//! associated data, so a ciphertext copied into another row does not decrypt. Depends on nothing
//! in Berth but `config`; no SQL here.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::config::Config;

/// The file `<data_dir>/secrets.key` generated on embedded SQLite when no key file is configured.
pub const DEFAULT_KEY_FILE: &str = "secrets.key";

/// The prefix of every encrypted value (format version 1).
const SEALED_PREFIX: &str = "enc:v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// Mixed into key ids, so an id is never the hash of a bare key someone else also hashes.
const KEY_ID_LABEL: &[u8] = b"berth secrets key id\0";

/// Why a key file or a stored value could not be used. Messages never contain key material or
/// plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("{}", crate::config::SECRETS_KEY_FILE_REQUIRED)]
    KeyFileRequired,
    #[error("it is encrypted with key id {0}, which the secrets key file does not hold")]
    UnknownKey(String),
    #[error("it does not decrypt with key id {0} (altered, or copied from another row)")]
    Undecryptable(String),
    #[error("it is stored unencrypted")]
    NotSealed,
    #[error("it is not a valid encrypted value")]
    Malformed,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The keys of a key file: the first encrypts, all decrypt.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

/// The id of a key: 4 bytes of SHA-256 over a label and the key, in hex.
fn key_id(key: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(KEY_ID_LABEL);
    hash.update(key);
    hex::encode(&hash.finalize()[..4])
}

/// The associated data of a value: the format, the key id and the row.
fn associated_data(id: &str, context: &str) -> Vec<u8> {
    format!("{SEALED_PREFIX}{id}:{context}").into_bytes()
}

/// The key id a stored value was encrypted with; `None` if it is not an encrypted value (a
/// plaintext row written by an older Berth).
pub fn sealed_key_id(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(SEALED_PREFIX)?;
    let (id, _) = rest.split_once(':')?;
    Some(id)
}

/// A new key as a key-file line: the base64 of 32 random bytes.
pub fn new_key_line() -> String {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    base64::engine::general_purpose::STANDARD.encode(key.as_ref())
}

impl Keyring {
    /// Parses a key file's text; the error names the line, never its content.
    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .unwrap_or_default(),
            );
            if bytes.len() != KEY_BYTES {
                return Err(format!(
                    "line {} is not the base64 of 32 bytes (make a key with `berth secrets \
                     generate-key`)",
                    n + 1
                ));
            }
            let id = key_id(&bytes);
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("line {} repeats key {id}", n + 1));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?;
            keys.push(Key { id, cipher });
        }
        if keys.is_empty() {
            return Err("holds no key (make one with `berth secrets generate-key`)".into());
        }
        Ok(Keyring { keys })
    }

    /// Reads a key file. A file other users may read or write is refused: the key opens every
    /// secret in the database.
    pub fn load(path: &Path) -> Result<Keyring, SecretsError> {
        let fail = |reason: String| SecretsError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| fail(format!("cannot read it: {e}")))?
                .permissions()
                .mode();
            if mode & 0o007 != 0 {
                return Err(fail(format!(
                    "other users may access it (mode {:04o}); it holds the key to every secret \
                     in the database: make it readable by Berth's user only (chmod 600; on \
                     Kubernetes defaultMode 0400, or 0440 with fsGroup)",
                    mode & 0o7777
                )));
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?,
        );
        Keyring::parse(&text).map_err(fail)
    }

    /// Reads the key file Berth generated into its data dir, or generates it (mode 0600) when
    /// missing; true when it was generated now. A mode looser than 0600 (copied around, or an
    /// old umask) is tightened.
    pub fn load_or_generate(path: &Path) -> Result<(Keyring, bool), SecretsError> {
        let fail = |reason: String| SecretsError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let generated = match write_new_key_file(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(fail(format!("cannot create it: {e}"))),
        };
        if !generated {
            restrict_permissions(path, 0o600)
                .map_err(|e| fail(format!("cannot make it private (mode 0600): {e}")))?;
        }
        Ok((Keyring::load(path)?, generated))
    }

    /// The keys configuration asks for: `[auth] secrets_key_file`, else on SQLite the generated
    /// `<data_dir>/secrets.key`; PostgreSQL without a key file is refused (replicas must share
    /// one key). Logs (never the key) when a key is generated.
    pub fn for_config(config: &Config) -> Result<Keyring, SecretsError> {
        let configured = config.auth.secrets_key_file.as_str();
        if !configured.is_empty() {
            return Keyring::load(Path::new(configured));
        }
        if !config.database_url().starts_with("sqlite:") {
            return Err(SecretsError::KeyFileRequired);
        }
        let path = config.data_dir.join(DEFAULT_KEY_FILE);
        let (keyring, generated) = Keyring::load_or_generate(&path)?;
        if generated {
            tracing::info!(
                file = %path.display(),
                key_id = keyring.current_id(),
                "generated the key that encrypts secrets in the database; back it up with the database"
            );
        }
        Ok(keyring)
    }

    /// The id of the key that encrypts.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the encrypting one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Encrypts `plaintext` for the row named by `context` with the current key.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(&key.id, context);
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut blob = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!(
            "{SEALED_PREFIX}{}:{}",
            key.id,
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }

    /// Decrypts a value [`Keyring::seal`] made for the same `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<String, SecretsError> {
        let id = sealed_key_id(stored).ok_or(SecretsError::NotSealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| SecretsError::UnknownKey(id.to_owned()))?;
        let encoded = &stored[SEALED_PREFIX.len() + id.len() + 1..];
        let blob = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretsError::Malformed)?;
        if blob.len() < NONCE_BYTES {
            return Err(SecretsError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        let aad = associated_data(id, context);
        let plaintext = Zeroizing::new(
            key.cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| SecretsError::Undecryptable(id.to_owned()))?,
        );
        String::from_utf8(plaintext.to_vec()).map_err(|_| SecretsError::Malformed)
    }
}

/// Creates `path` holding one new key, readable and writable by its owner only whatever the
/// umask, all at once: written to a temporary file and linked into place, so a concurrent
/// reader never sees half a key and an existing file is never replaced (`AlreadyExists`).
pub fn write_new_key_file(path: &Path) -> std::io::Result<()> {
    let line = Zeroizing::new(format!(
        "# Berth secrets key: encrypts access-key secrets and token signing keys in the database.\n\
         # Keep it private and back it up with the database; without it they cannot be read.\n\
         {}\n",
        new_key_line()
    ));
    if path.exists() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = create_private_file(&tmp)?;
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        sync_dir(&dir)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Creates a new file with mode 0600, whatever the umask.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The umask may have taken bits from 0600 too; the owner needs read and write.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Creates `dir` (and missing parents) and makes `dir` itself private to its owner (0700): it
/// holds the database, key files and the admin password. An existing directory with a looser
/// mode (made by an older Berth, or under a umask of 022) is tightened, and that is logged.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    restrict_permissions(dir, 0o700)
}

/// Removes every permission bit of `path` outside `mode` (it never adds any), logging what it
/// changed. A file owned by another user that cannot be changed is a warning, not an error:
/// Berth still runs, and says what to fix.
pub fn restrict_permissions(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path)?;
        let current = metadata.permissions().mode() & 0o7777;
        if current & !mode == 0 {
            return Ok(());
        }
        if metadata.is_dir() && current & 0o1002 != 0 {
            // A shared directory such as /tmp (sticky or world-writable) is not Berth's to
            // change; the files Berth keeps in it are private anyway.
            tracing::warn!(
                path = %path.display(),
                mode = format!("{current:04o}"),
                "the data dir is a shared directory; give Berth a directory of its own"
            );
            return Ok(());
        }
        let wanted = current & mode;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                from = format!("{current:04o}"),
                to = format!("{wanted:04o}"),
                "made private: it holds secrets"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => tracing::warn!(
                path = %path.display(),
                mode = format!("{current:04o}"),
                error = %e,
                "other users may read this, and it holds secrets; make it private (chmod {:o})",
                mode
            ),
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Logs a warning when other users may read `path` (a key file Berth is given but does not
/// own, such as `auth.signing_key_file`).
pub fn warn_if_others_may_read(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o004 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{mode:04o}"),
                    "{what}: other users may read this private key; make it private (chmod 600)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// Makes a new directory entry durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(lines: &[&str]) -> Keyring {
        Keyring::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn seals_with_the_first_key_and_opens_with_any() {
        let (old, new) = (new_key_line(), new_key_line());
        let before = keyring(&[&old]);
        let sealed = before.seal("s3cret", "access_keys/AK1");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", before.current_id())));
        assert!(!sealed.contains("s3cret"));
        let after = keyring(&["# rotated", &new, "", &old]);
        assert_ne!(after.current_id(), before.current_id());
        assert_eq!(after.open(&sealed, "access_keys/AK1").unwrap(), "s3cret");
        let resealed = after.seal("s3cret", "access_keys/AK1");
        assert_eq!(sealed_key_id(&resealed), Some(after.current_id()));
        assert!(matches!(
            before.open(&resealed, "access_keys/AK1"),
            Err(SecretsError::UnknownKey(_))
        ));
        // Random nonces: the same secret never encrypts to the same text twice.
        assert_ne!(resealed, after.seal("s3cret", "access_keys/AK1"));
    }

    #[test]
    fn a_value_moved_to_another_row_or_altered_does_not_open() {
        let ring = keyring(&[&new_key_line()]);
        let sealed = ring.seal("s3cret", "access_keys/AK1");
        assert!(matches!(
            ring.open(&sealed, "access_keys/AK2"),
            Err(SecretsError::Undecryptable(_))
        ));
        assert!(matches!(
            ring.open(&sealed, "signing_keys/AK1"),
            Err(SecretsError::Undecryptable(_))
        ));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(ring
            .open(&String::from_utf8(altered).unwrap(), "access_keys/AK1")
            .is_err());
        assert!(matches!(
            ring.open("plain", "access_keys/AK1"),
            Err(SecretsError::NotSealed)
        ));
        assert_eq!(sealed_key_id("plain"), None);
    }

    #[test]
    fn bad_key_files_name_the_line_but_not_its_content() {
        let err = Keyring::parse("# k\nnot-a-key-at-all\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("not-a-key"), "{err}");
        assert!(Keyring::parse("\n# only comments\n").is_err());
        let key = new_key_line();
        assert!(Keyring::parse(&format!("{key}\n{key}\n"))
            .unwrap_err()
            .contains("repeats"));
        assert!(!format!("{:?}", keyring(&[&key])).contains(&key));
    }

    #[cfg(unix)]
    #[test]
    fn generated_key_files_are_private_and_world_readable_ones_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let (ring, generated) = Keyring::load_or_generate(&path).unwrap();
        assert!(generated);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, generated) = Keyring::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(again.current_id(), ring.current_id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        // Berth's own file is tightened instead.
        Keyring::load_or_generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            write_new_key_file(&path).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
    }
}
