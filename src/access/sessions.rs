//! Web console sessions: signing in with a password or a robot secret (the failed-login limiter
//! applies) opens a server-side session whose random token only the browser's cookie holds. Every
//! request re-checks the session and its principal as stored now (the 5-second rule): sign-out
//! deletes the row, a password change moves the principal's credential version on, deleting the
//! principal deletes its sessions.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use super::{Access, Credential, Door, PrincipalKind, RequestFacts, Subject, CACHE_TTL};
use crate::auth::credential::CredentialKind;
use crate::error::{Error, Result};
use crate::meta::{now_millis, ConsoleSessionRow, ConsoleSessions};
use crate::util::TtlCache;

/// Bytes of randomness in a session token (256 bits).
const TOKEN_BYTES: usize = 32;
/// A session's idle clock is written at most this often (milliseconds), not on every page.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A session just opened: the token for the cookie and who it signed in.
pub struct OpenedSession {
    pub token: String,
    pub subject: Subject,
}

/// Opens, checks and ends console sessions.
pub struct ConsoleSignIns {
    store: ConsoleSessions,
    access: Arc<Access>,
    ttl: Duration,
    idle: Duration,
    /// Sessions looked up recently, by the token's hash; at most [`CACHE_TTL`] old, so a
    /// sign-out on another replica ends the session here within the 5-second rule.
    recent: TtlCache<String, Option<Arc<ConsoleSessionRow>>>,
}

/// The stored id of a token: its SHA-256, in hex (the token itself is never stored).
fn session_id(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Whether `token` can be one this service issued (checked before it reaches SQL).
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ConsoleSignIns {
    pub fn new(
        store: ConsoleSessions,
        access: Arc<Access>,
        ttl: Duration,
        idle: Duration,
    ) -> ConsoleSignIns {
        ConsoleSignIns {
            store,
            access,
            ttl,
            idle,
            recent: TtlCache::new(CACHE_TTL, 100_000),
        }
    }

    /// Signs `username` in with `password`: a user's password or a robot's secret (see
    /// [`Door::ConsoleSignIn`]); anything else is refused as a failed sign-in.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        facts: &RequestFacts,
    ) -> Result<OpenedSession> {
        let subject = self.access.login_subject(username, password, facts).await?;
        if let Some(kind) = subject.credential_kind() {
            Door::ConsoleSignIn
                .admit(kind)
                .map_err(Error::Unauthorized)?;
        }
        let principal = subject
            .principal
            .clone()
            .filter(|p| p.id != 0)
            .ok_or_else(|| Error::Unauthorized("invalid user name or password".into()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::auth::password::random_bytes(TOKEN_BYTES));
        let expires_at = now_millis() + self.ttl.as_millis() as i64;
        self.store
            .create(
                &session_id(&token),
                principal.id,
                principal.credential_version,
                expires_at,
            )
            .await?;
        tracing::info!(
            principal = %principal.name,
            kind = principal.kind.as_str(),
            ip = ?facts.source_ip,
            "console sign-in"
        );
        Ok(OpenedSession {
            token,
            subject: session_subject(principal, expires_at),
        })
    }

    /// The signed-in caller of `token`, or `None` when it is not a live session: unknown,
    /// signed out, past its lifetime or idle timeout, or its principal deleted, expired or
    /// given a new password since.
    pub async fn session(&self, token: &str) -> Result<Option<Subject>> {
        if !well_formed(token) {
            return Ok(None);
        }
        let id = session_id(token);
        let row = match self.recent.get(&id) {
            Some(row) => row,
            None => {
                let row = self.store.get(&id).await?.map(Arc::new);
                self.recent.insert(id.clone(), row.clone());
                row
            }
        };
        let Some(row) = row else { return Ok(None) };
        let now = now_millis();
        if row.expires_at <= now || row.last_seen_at + (self.idle.as_millis() as i64) <= now {
            return Ok(None);
        }
        let kind = match row.principal_kind.as_str() {
            "robot" => PrincipalKind::Robot,
            _ => PrincipalKind::User,
        };
        let Some(principal) = self.access.principal(kind, &row.principal_name).await? else {
            return Ok(None);
        };
        if principal.id != row.principal_id
            || principal.credential_version != row.credential_version
            || principal.expired(now)
        {
            return Ok(None);
        }
        if now - row.last_seen_at >= TOUCH_EVERY_MS {
            self.store.touch(&id, now).await?;
            self.recent.remove(&id);
        }
        Ok(Some(session_subject(principal, row.expires_at)))
    }

    /// Ends the session of `token` (signing out); nothing happens for an unknown token.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        if well_formed(token) {
            let id = session_id(token);
            self.store.delete(&id).await?;
            self.recent.remove(&id);
        }
        Ok(())
    }

    /// The anti-forgery token every form of `token`'s session carries: derived from the
    /// session's secret, so a page of another site can neither read nor compute it.
    pub fn csrf_token(token: &str) -> String {
        hex::encode(sha2::Sha256::digest(
            format!("berth-console-csrf\0{token}").as_bytes(),
        ))
    }

    /// Whether `given` is the anti-forgery token of `token`'s session (constant time).
    pub fn csrf_matches(token: &str, given: &str) -> bool {
        bool::from(Self::csrf_token(token).as_bytes().ct_eq(given.as_bytes()))
    }

    /// Deletes sessions past their lifetime or idle timeout; returns how many.
    pub async fn prune(&self) -> Result<u64> {
        self.store
            .prune(now_millis() - self.idle.as_millis() as i64)
            .await
    }
}

fn session_subject(principal: Arc<super::Principal>, expires_at_ms: i64) -> Subject {
    Subject::signed_in(
        principal,
        Credential {
            kind: CredentialKind::ConsoleSession,
            expires_at: Some(expires_at_ms / 1000),
            access_key_id: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_shape_before_they_reach_sql() {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; TOKEN_BYTES]);
        assert!(well_formed(&token));
        assert!(!well_formed(""));
        assert!(!well_formed(&format!("{token}x")));
        assert!(!well_formed(&token.replace('B', "'")));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let a = ConsoleSignIns::csrf_token("a");
        assert!(ConsoleSignIns::csrf_matches("a", &a));
        assert!(!ConsoleSignIns::csrf_matches("b", &a));
        assert!(!ConsoleSignIns::csrf_matches("a", ""));
        assert_ne!(
            session_id("a"),
            a,
            "the stored id and the form token differ"
        );
    }
}
