//! The envelopes events travel in: EventBridge's (`version`, `id`, `detail-type`, `source`,
//! `account`, `time`, `region`, `resources`, `detail`), which rules' patterns match against, and
//! CloudEvents 1.0 in structured JSON.

use crate::meta::{OutboxEvent, IMAGE_ACTION, REPLICATION_ACTION};

/// The registry events come from: its id (EventBridge's `account`) and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub account: String,
    pub region: String,
}

/// `aws.ecr` for the events ECR has; `berth` for Berth's own.
pub fn source(detail_type: &str) -> &'static str {
    if detail_type.starts_with("ECR ") {
        "aws.ecr"
    } else {
        "berth"
    }
}

fn repository_arn(origin: &Origin, repository: &str) -> String {
    format!(
        "arn:aws:ecr:{}:{}:repository/{repository}",
        origin.region, origin.account
    )
}

/// Unix milliseconds as RFC 3339 (`2019-11-16T01:54:34Z`, EventBridge's second precision, or
/// with milliseconds).
fn rfc3339(millis: i64, with_millis: bool) -> String {
    let format = if with_millis {
        chrono::SecondsFormat::Millis
    } else {
        chrono::SecondsFormat::Secs
    };
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(format, true)
}

/// The event's `detail`; a replication action says where it came from, as ECR's does.
fn detail(event: &OutboxEvent, origin: &Origin) -> serde_json::Value {
    let mut detail = event.detail.clone();
    if event.kind == REPLICATION_ACTION {
        if let Some(d) = detail.as_object_mut() {
            d.insert("source-account".into(), origin.account.clone().into());
            d.insert("source-region".into(), origin.region.clone().into());
        }
    }
    detail
}

/// The event in EventBridge's envelope. ECR's image actions list no resources (as ECR's
/// samples); the other events name their repository's ARN.
pub fn eventbridge(event: &OutboxEvent, origin: &Origin) -> serde_json::Value {
    let resources: Vec<String> = if event.kind == IMAGE_ACTION || event.repository.is_empty() {
        Vec::new()
    } else {
        vec![repository_arn(origin, &event.repository)]
    };
    serde_json::json!({
        "version": "0",
        "id": event.event_id,
        "detail-type": event.kind,
        "source": source(&event.kind),
        "account": origin.account,
        "time": rfc3339(event.created_at, false),
        "region": origin.region,
        "resources": resources,
        "detail": detail(event, origin),
    })
}

/// CloudEvents' `type`: the detail-type's words in lower case, dotted, under the source
/// (`ECR Image Action` is `aws.ecr.image.action`, `Berth Tag Moved` `berth.tag.moved`).
pub fn cloudevents_type(detail_type: &str) -> String {
    let words: Vec<String> = detail_type
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    match words.split_first() {
        Some((first, rest)) if first == "ecr" => format!("aws.ecr.{}", rest.join(".")),
        _ => words.join("."),
    }
}

/// The event as a CloudEvent (structured JSON): `source` is the repository's ARN (the
/// registry's, for registry-wide events), `subject` the image (`repo:tag` or `repo@digest`),
/// `data` EventBridge's `detail`.
pub fn cloudevent(event: &OutboxEvent, origin: &Origin) -> serde_json::Value {
    let source = if event.repository.is_empty() {
        format!("arn:aws:ecr:{}:{}:registry", origin.region, origin.account)
    } else {
        repository_arn(origin, &event.repository)
    };
    let field = |name: &str| event.detail.get(name).and_then(|v| v.as_str());
    let subject = match (field("image-tag"), field("image-digest")) {
        _ if event.repository.is_empty() => None,
        (Some(tag), _) => Some(format!("{}:{tag}", event.repository)),
        (None, Some(digest)) => Some(format!("{}@{digest}", event.repository)),
        (None, None) => Some(event.repository.clone()),
    };
    let mut out = serde_json::json!({
        "specversion": "1.0",
        "type": cloudevents_type(&event.kind),
        "source": source,
        "id": event.event_id,
        "time": rfc3339(event.created_at, true),
        "datacontenttype": "application/json",
        "data": detail(event, origin),
    });
    if let Some(subject) = subject {
        out["subject"] = subject.into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> OutboxEvent {
        OutboxEvent {
            id: 7,
            event_id: "0190b3c2-0000-7000-8000-000000000001".into(),
            kind: IMAGE_ACTION.into(),
            repository: "team/app".into(),
            detail: serde_json::json!({
                "result": "SUCCESS",
                "repository-name": "team/app",
                "image-digest": "sha256:ab",
                "action-type": "PUSH",
                "image-tag": "v1",
            }),
            created_at: 1_573_869_274_123,
            delivered_at: None,
        }
    }

    fn origin() -> Origin {
        Origin {
            account: "123456789012".into(),
            region: "us-west-2".into(),
        }
    }

    #[test]
    fn eventbridge_envelope_is_ecrs() {
        let e = eventbridge(&push(), &origin());
        assert_eq!(e["version"], "0");
        assert_eq!(e["source"], "aws.ecr");
        assert_eq!(e["detail-type"], "ECR Image Action");
        assert_eq!(e["account"], "123456789012");
        assert_eq!(e["region"], "us-west-2");
        assert_eq!(e["time"], "2019-11-16T01:54:34Z");
        assert_eq!(e["resources"], serde_json::json!([]));
        assert_eq!(e["detail"]["image-tag"], "v1");
    }

    #[test]
    fn cloudevents_carry_the_detail_as_data() {
        let c = cloudevent(&push(), &origin());
        assert_eq!(c["specversion"], "1.0");
        assert_eq!(c["type"], "aws.ecr.image.action");
        assert_eq!(
            c["source"],
            "arn:aws:ecr:us-west-2:123456789012:repository/team/app"
        );
        assert_eq!(c["subject"], "team/app:v1");
        assert_eq!(c["time"], "2019-11-16T01:54:34.123Z");
        assert_eq!(c["data"]["action-type"], "PUSH");
        assert_eq!(cloudevents_type("Berth Tag Moved"), "berth.tag.moved");
    }

    #[test]
    fn replication_actions_name_their_source() {
        let mut e = push();
        e.kind = REPLICATION_ACTION.into();
        let e = eventbridge(&e, &origin());
        assert_eq!(e["detail"]["source-account"], "123456789012");
        assert_eq!(e["detail"]["source-region"], "us-west-2");
        assert_eq!(
            e["resources"][0],
            "arn:aws:ecr:us-west-2:123456789012:repository/team/app"
        );
    }
}
