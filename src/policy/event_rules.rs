//! Event rules' targets (pure, no I/O): webhooks and NATS subjects, the envelope each one wants,
//! validation with messages that name the field, and the Standard Webhooks signing key.
//!
//! Limits follow EventBridge where it has one: rule names and target ids are 1 to 64 of
//! `[A-Za-z0-9._-]`, at most 5 targets per rule, descriptions up to 512 characters.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// At most this many targets per rule (EventBridge's limit).
pub const MAX_TARGETS: usize = 5;
/// At most this many custom headers per webhook.
pub const MAX_HEADERS: usize = 20;
/// A secret is `whsec_` followed by the base64 of this many bytes (Standard Webhooks: 24 to 64).
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
const SECRET_PREFIX: &str = "whsec_";

/// Headers a webhook target may not set: the transport's own and the signature's.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "host",
    "transfer-encoding",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
];

/// How secrets and header values are shown; given back in a rule, it keeps the stored value.
pub const REDACTED: &str = "<redacted>";

/// Where a rule sends the events it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Webhook,
    Nats,
}

/// The envelope a target receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// EventBridge's envelope (`version`, `id`, `detail-type`, `source`, ..., `detail`).
    #[default]
    EventBridge,
    /// CloudEvents 1.0, structured JSON.
    CloudEvents,
}

/// One target of a rule, as stored (secrets included). Rules are shown with the secret and
/// header values [`REDACTED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTarget {
    /// Unique within the rule; defaults to the target's position (`1`, `2`, ...).
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// A webhook's `http://` or `https://` URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// A webhook's Standard Webhooks signing secret, `whsec_<base64>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A webhook's extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A NATS target's subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(default)]
    pub format: EventFormat,
}

impl EventTarget {
    /// The target as shown: its secret and header values [`REDACTED`].
    pub fn redacted(&self) -> EventTarget {
        EventTarget {
            secret: self.secret.as_ref().map(|_| REDACTED.to_owned()),
            headers: self
                .headers
                .keys()
                .map(|k| (k.clone(), REDACTED.to_owned()))
                .collect(),
            ..self.clone()
        }
    }

    /// The key Standard Webhooks signs with: the base64-decoded part of the secret.
    pub fn signing_key(&self) -> Option<Vec<u8>> {
        let secret = self.secret.as_deref()?;
        base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix(SECRET_PREFIX)?)
            .ok()
    }
}

/// Puts back the stored secrets and header values that `targets` give as [`REDACTED`] (a rule
/// read, changed and written back keeps them), matching targets by id (or position, for targets
/// without one).
pub fn restore_redacted(targets: &mut [EventTarget], stored: &[EventTarget]) -> Result<(), String> {
    for (i, target) in targets.iter_mut().enumerate() {
        let id = if target.id.is_empty() {
            (i + 1).to_string()
        } else {
            target.id.clone()
        };
        let old = stored.iter().find(|t| t.id == id);
        if target.secret.as_deref() == Some(REDACTED) {
            target.secret = Some(old.and_then(|t| t.secret.clone()).ok_or_else(|| {
                format!(
                    "Invalid parameter at 'targets[{i}].secret': '{REDACTED}' keeps a stored \
                     secret, but the rule has no target '{id}' with one"
                )
            })?);
        }
        for (name, value) in target.headers.iter_mut() {
            if value == REDACTED {
                *value = old
                    .and_then(|t| t.headers.get(name).cloned())
                    .ok_or_else(|| {
                        format!(
                            "Invalid parameter at 'targets[{i}].headers.{name}': '{REDACTED}' \
                             keeps a stored value, but the rule has no target '{id}' with it"
                        )
                    })?;
            }
        }
    }
    Ok(())
}

/// Whether `name` is a valid rule name or target id.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks a rule's name.
pub fn validate_rule_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(format!(
            "Invalid parameter at 'name': '{name}' must be 1 to 64 letters, digits, '.', '-' or '_'"
        ))
    }
}

/// Checks a rule's targets and fills in default ids. `nats` says whether a NATS server is
/// configured. Messages name the field (`targets[1].url`).
pub fn validate_targets(targets: &mut [EventTarget], nats: bool) -> Result<(), String> {
    if targets.is_empty() || targets.len() > MAX_TARGETS {
        return Err(format!(
            "Invalid parameter at 'targets': a rule has 1 to {MAX_TARGETS} targets, not {}",
            targets.len()
        ));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, target) in targets.iter_mut().enumerate() {
        let at = format!("targets[{i}]");
        if target.id.is_empty() {
            target.id = (i + 1).to_string();
        }
        if !valid_name(&target.id) {
            return Err(format!(
                "Invalid parameter at '{at}.id': '{}' must be 1 to 64 letters, digits, '.', '-' or '_'",
                target.id
            ));
        }
        if !ids.insert(target.id.clone()) {
            return Err(format!(
                "Invalid parameter at '{at}.id': another target of this rule has the id '{}'",
                target.id
            ));
        }
        match target.kind {
            TargetKind::Webhook => validate_webhook(target, &at)?,
            TargetKind::Nats => {
                if !nats {
                    return Err(format!(
                        "Invalid parameter at '{at}.type': no NATS server is configured \
                         ([events] nats_url, BERTH_EVENTS_NATS_URL)"
                    ));
                }
                validate_nats(target, &at)?;
            }
        }
    }
    Ok(())
}

fn validate_webhook(target: &EventTarget, at: &str) -> Result<(), String> {
    if !target.subject.is_empty() {
        return Err(format!(
            "Invalid parameter at '{at}.subject': only NATS targets have a subject"
        ));
    }
    let url = url::Url::parse(&target.url).map_err(|e| {
        format!(
            "Invalid parameter at '{at}.url': '{}' is not a URL ({e})",
            target.url
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().map_or(true, str::is_empty) {
        return Err(format!(
            "Invalid parameter at '{at}.url': a webhook URL is http:// or https:// with a host"
        ));
    }
    if target.url.len() > 2048 {
        return Err(format!(
            "Invalid parameter at '{at}.url': at most 2048 characters"
        ));
    }
    if let Some(secret) = &target.secret {
        let decoded = secret
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        match decoded {
            Some(key) if SECRET_BYTES.contains(&key.len()) => {}
            _ => {
                return Err(format!(
                    "Invalid parameter at '{at}.secret': a signing secret is 'whsec_' followed by \
                     the base64 of 24 to 64 random bytes"
                ))
            }
        }
    }
    if target.headers.len() > MAX_HEADERS {
        return Err(format!(
            "Invalid parameter at '{at}.headers': at most {MAX_HEADERS} headers"
        ));
    }
    for (name, value) in &target.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "Invalid parameter at '{at}.headers': '{name}' is not a header name"
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "Invalid parameter at '{at}.headers': Berth sets '{name}' itself"
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "Invalid parameter at '{at}.headers.{name}': not a valid header value"
            ));
        }
    }
    Ok(())
}

fn validate_nats(target: &EventTarget, at: &str) -> Result<(), String> {
    if !target.url.is_empty() || target.secret.is_some() || !target.headers.is_empty() {
        return Err(format!(
            "Invalid parameter at '{at}': a NATS target has a subject and a format only"
        ));
    }
    let subject = &target.subject;
    let valid = !subject.is_empty()
        && subject.len() <= 256
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '*' && c != '>')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Invalid parameter at '{at}.subject': '{subject}' is not a NATS subject to publish to \
             (dot-separated tokens, no spaces or wildcards)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str) -> EventTarget {
        EventTarget {
            id: String::new(),
            kind: TargetKind::Webhook,
            url: url.into(),
            secret: None,
            headers: BTreeMap::new(),
            subject: String::new(),
            format: EventFormat::EventBridge,
        }
    }

    #[test]
    fn ids_default_to_positions_and_must_be_unique() {
        let mut targets = vec![webhook("http://a/"), webhook("https://b/x")];
        validate_targets(&mut targets, false).unwrap();
        assert_eq!(targets[0].id, "1");
        assert_eq!(targets[1].id, "2");
        targets[1].id = "1".into();
        let e = validate_targets(&mut targets, false).unwrap_err();
        assert!(e.contains("targets[1].id"), "{e}");
    }

    #[test]
    fn webhook_urls_secrets_and_headers_are_checked() {
        for bad in ["ftp://x/", "not a url", "http://"] {
            let e = validate_targets(&mut [webhook(bad)], false).unwrap_err();
            assert!(e.contains("targets[0].url"), "{bad}: {e}");
        }
        let mut t = webhook("http://127.0.0.1:9/hook");
        t.secret = Some("whsec_short".into());
        let e = validate_targets(&mut [t.clone()], false).unwrap_err();
        assert!(e.contains("targets[0].secret"), "{e}");
        t.secret = Some(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        ));
        validate_targets(&mut [t.clone()], false).unwrap();
        assert_eq!(t.signing_key().unwrap(), vec![7u8; 32]);
        t.headers.insert("Webhook-Signature".into(), "x".into());
        let e = validate_targets(&mut [t.clone()], false).unwrap_err();
        assert!(e.contains("sets 'Webhook-Signature' itself"), "{e}");
        t.headers.clear();
        t.headers.insert("X-Token".into(), "a\nb".into());
        assert!(validate_targets(&mut [t], false).is_err());
    }

    #[test]
    fn nats_targets_need_a_server_and_a_plain_subject() {
        let mut t = EventTarget {
            kind: TargetKind::Nats,
            subject: "berth.events".into(),
            url: String::new(),
            ..webhook("")
        };
        let e = validate_targets(&mut [t.clone()], false).unwrap_err();
        assert!(e.contains("nats_url"), "{e}");
        validate_targets(&mut [t.clone()], true).unwrap();
        for bad in ["", "a..b", "a.*", "a.>", "a b"] {
            t.subject = bad.into();
            let e = validate_targets(&mut [t.clone()], true).unwrap_err();
            assert!(e.contains("targets[0].subject"), "{bad}: {e}");
        }
    }

    #[test]
    fn redacted_values_are_kept_on_write_back() {
        let mut stored = webhook("http://a/");
        stored.id = "hook".into();
        stored.secret = Some("whsec_x".into());
        stored.headers.insert("X-Token".into(), "t0k3n".into());
        let mut shown = vec![stored.redacted()];
        assert_eq!(shown[0].secret.as_deref(), Some(REDACTED));
        assert_eq!(shown[0].headers["X-Token"], REDACTED);
        restore_redacted(&mut shown, &[stored.clone()]).unwrap();
        assert_eq!(shown[0], stored);
        let mut other = vec![stored.redacted()];
        other[0].id = "new".into();
        let e = restore_redacted(&mut other, &[stored]).unwrap_err();
        assert!(e.contains("targets[0].secret"), "{e}");
    }

    #[test]
    fn rule_names_follow_eventbridge() {
        assert!(validate_rule_name("deploys-prod_1.x").is_ok());
        assert!(validate_rule_name("").is_err());
        assert!(validate_rule_name("a/b").is_err());
        assert!(validate_rule_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<EventTarget>(r#"{"type":"sqs"}"#).is_err());
        assert!(serde_json::from_str::<EventTarget>(r#"{"type":"webhook","uri":"x"}"#).is_err());
        let t: EventTarget =
            serde_json::from_str(r#"{"type":"nats","subject":"a","format":"cloudevents"}"#)
                .unwrap();
        assert_eq!(t.format, EventFormat::CloudEvents);
    }
}
