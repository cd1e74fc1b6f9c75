//! Sending one event to one target: a webhook POST signed as Standard Webhooks says, or a NATS
//! publish (acknowledged by JetStream when a stream takes the subject, plain otherwise). Every
//! attempt is bounded by the configured timeout; an error is a sentence for the dead-letter list.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::policy::event_rules::{EventFormat, EventTarget};

/// The media type of a target's body.
pub fn content_type(format: EventFormat) -> &'static str {
    match format {
        EventFormat::EventBridge => "application/json",
        EventFormat::CloudEvents => "application/cloudevents+json; charset=utf-8",
    }
}

/// `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}` (Standard Webhooks).
pub fn webhook_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The clients targets are reached with.
pub struct Senders {
    http: reqwest::Client,
    nats_url: String,
    nats: Mutex<Option<async_nats::Client>>,
    /// Which subjects a JetStream stream takes, and when that was asked.
    streams: Mutex<std::collections::HashMap<String, (bool, std::time::Instant)>>,
    timeout: Duration,
}

/// How long the answer to "does a stream take this subject" is used.
const STREAM_LOOKUP_TTL: Duration = Duration::from_secs(10);

/// Whether `error` or an error it wraps says one of `phrases`.
fn error_chain_says(error: &(dyn std::error::Error + 'static), phrases: &[&str]) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if phrases.iter().any(|p| text.contains(p)) {
            return true;
        }
        current = e.source();
    }
    false
}

impl Senders {
    pub fn new(nats_url: &str, timeout: Duration) -> Senders {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            // A webhook is the URL it was configured with, never where it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Senders {
            http,
            nats_url: nats_url.to_owned(),
            nats: Mutex::new(None),
            streams: Mutex::new(std::collections::HashMap::new()),
            timeout,
        }
    }

    /// Sends `body` (the event `id`) to `target`.
    pub async fn send(&self, target: &EventTarget, id: &str, body: Bytes) -> Result<(), String> {
        match target.kind {
            crate::policy::event_rules::TargetKind::Webhook => self.webhook(target, id, body).await,
            crate::policy::event_rules::TargetKind::Nats => {
                match tokio::time::timeout(self.timeout, self.nats(target, id, body)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!(
                        "NATS did not answer within {} s",
                        self.timeout.as_secs()
                    )),
                }
            }
        }
    }

    async fn webhook(&self, target: &EventTarget, id: &str, body: Bytes) -> Result<(), String> {
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .http
            .post(&target.url)
            .header(http::header::CONTENT_TYPE, content_type(target.format))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(key) = target.signing_key() {
            request = request.header(
                "webhook-signature",
                webhook_signature(&key, id, timestamp, &body),
            );
        }
        let response = request.body(body).send().await.map_err(|e| {
            // reqwest's message names the URL; a webhook URL may hold a token, so say less.
            if e.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs())
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                "the request failed".to_owned()
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered HTTP {}", status.as_u16()))
        }
    }

    /// The NATS connection, made on first use (and again after a failed connect).
    async fn nats_client(&self) -> Result<async_nats::Client, String> {
        let mut client = self.nats.lock().await;
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let connected = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout.min(Duration::from_secs(5)))
            .request_timeout(Some(self.timeout))
            .connect(self.nats_url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.nats_url))?;
        *client = Some(connected.clone());
        Ok(connected)
    }

    async fn nats(&self, target: &EventTarget, id: &str, body: Bytes) -> Result<(), String> {
        let client = self.nats_client().await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Type", content_type(target.format));
        // JetStream drops a message whose id it has seen within its duplicate window: a retried
        // event is stored once.
        headers.insert("Nats-Msg-Id", id);
        let jetstream = async_nats::jetstream::new(client.clone());
        if self.stream_takes(&jetstream, &target.subject).await? {
            jetstream
                .publish_with_headers(target.subject.clone(), headers, body)
                .await
                .map_err(|e| format!("JetStream publish failed: {e}"))?
                .await
                .map_err(|e| format!("JetStream did not acknowledge: {e}"))?;
            return Ok(());
        }
        // No stream takes the subject: a plain publish, flushed to the server. (Publishing
        // through JetStream regardless would wait for an acknowledgement no one sends whenever
        // a plain subscriber listens.)
        client
            .publish_with_headers(target.subject.clone(), headers, body)
            .await
            .map_err(|e| format!("NATS publish failed: {e}"))?;
        client
            .flush()
            .await
            .map_err(|e| format!("NATS flush failed: {e}"))
    }

    /// Whether a JetStream stream takes `subject` (asked at most every [`STREAM_LOOKUP_TTL`]).
    /// A server without JetStream has none.
    async fn stream_takes(
        &self,
        jetstream: &async_nats::jetstream::Context,
        subject: &str,
    ) -> Result<bool, String> {
        if let Some((takes, at)) = self.streams.lock().await.get(subject) {
            if at.elapsed() < STREAM_LOOKUP_TTL {
                return Ok(*takes);
            }
        }
        let takes = match jetstream.stream_by_subject(subject).await {
            Ok(_) => true,
            Err(e)
                if e.kind()
                    == async_nats::jetstream::context::GetStreamByNameErrorKind::NotFound =>
            {
                false
            }
            // JetStream off: nobody answers the stream lookup.
            Err(e) if error_chain_says(&e, &["no responders", "does not exist"]) => false,
            Err(e) => return Err(format!("cannot ask NATS which stream takes {subject}: {e}")),
        };
        self.streams
            .lock()
            .await
            .insert(subject.to_owned(), (takes, std::time::Instant::now()));
        Ok(takes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_follows_standard_webhooks() {
        // The Standard Webhooks specification's example: secret
        // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
        // timestamp 1614265330, body {"test": 2432232314}.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        assert_eq!(
            webhook_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
