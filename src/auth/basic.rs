//! The HTTP `Basic` authorization scheme: parsing `Authorization: Basic base64(user:password)` as
//! sent by `docker login`, containerd and `curl -u`, and encoding it (ECR's `GetAuthorizationToken`
//! returns `base64("AWS:<password>")`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Credentials from a `Basic` header. `Debug` hides the password so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user name (everything before the first `:`).
    pub username: String,
    /// The password (everything after the first `:`; may itself contain `:`).
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses an `Authorization` header value of the `Basic` scheme (scheme name case-insensitive).
/// Returns `None` for any other scheme, bad base64, non-UTF-8 content or a missing `:`.
pub fn parse_basic_authorization(header_value: &str) -> Option<BasicCredentials> {
    let value = header_value.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(BasicCredentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// `base64(user:password)`, the token form (without the `Basic ` prefix) used by ECR's
/// `authorizationToken` and by Docker's config.json `auth` field.
pub fn encode_basic_token(username: &str, password: &str) -> String {
    STANDARD.encode(format!("{username}:{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_header_and_keeps_colons_in_password() {
        let header = format!("Basic {}", encode_basic_token("AWS", "pa:ss"));
        let creds = parse_basic_authorization(&header).unwrap();
        assert_eq!(creds.username, "AWS");
        assert_eq!(creds.password, "pa:ss");
        assert!(
            parse_basic_authorization(&format!("basic  {}", encode_basic_token("a", ""))).is_some()
        );
    }

    #[test]
    fn rejects_other_schemes_and_garbage() {
        assert!(parse_basic_authorization("Bearer abc").is_none());
        assert!(parse_basic_authorization("Basic !!!").is_none());
        assert!(
            parse_basic_authorization(&format!("Basic {}", STANDARD.encode("nocolon"))).is_none()
        );
        assert!(parse_basic_authorization("").is_none());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let creds = BasicCredentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
