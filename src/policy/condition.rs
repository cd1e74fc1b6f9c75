//! The `Condition` element: the supported keys and operators, their validation, and their IAM
//! evaluation (values OR'ed within a key; keys and operators AND'ed; negated operators and
//! `...IfExists` true when the key is absent).

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ipnet::IpNet;
use serde_json::Value;

use super::context::RequestContext;
use super::glob::Pattern;
pub use super::key::ConditionKey;

/// The operator family a key's values belong to.
fn key_family(key: ConditionKey) -> Family {
    match key {
        ConditionKey::SourceIp => Family::Ip,
        ConditionKey::CurrentTime => Family::Date,
        ConditionKey::SecureTransport => Family::Bool,
        ConditionKey::Username | ConditionKey::PrincipalArn | ConditionKey::PrincipalAccount => {
            Family::String
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    Arn,
    Ip,
    Date,
    Bool,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnNotEquals,
    ArnLike,
    ArnNotLike,
    IpAddress,
    NotIpAddress,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    Null,
}

const OPS: [(&str, Op); 20] = [
    ("StringEquals", Op::StringEquals),
    ("StringNotEquals", Op::StringNotEquals),
    ("StringEqualsIgnoreCase", Op::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Op::StringNotEqualsIgnoreCase),
    ("StringLike", Op::StringLike),
    ("StringNotLike", Op::StringNotLike),
    ("ArnEquals", Op::ArnEquals),
    ("ArnNotEquals", Op::ArnNotEquals),
    ("ArnLike", Op::ArnLike),
    ("ArnNotLike", Op::ArnNotLike),
    ("IpAddress", Op::IpAddress),
    ("NotIpAddress", Op::NotIpAddress),
    ("DateEquals", Op::DateEquals),
    ("DateNotEquals", Op::DateNotEquals),
    ("DateLessThan", Op::DateLessThan),
    ("DateLessThanEquals", Op::DateLessThanEquals),
    ("DateGreaterThan", Op::DateGreaterThan),
    ("DateGreaterThanEquals", Op::DateGreaterThanEquals),
    ("Bool", Op::Bool),
    ("Null", Op::Null),
];

impl Op {
    fn family(self) -> Family {
        use Op::*;
        match self {
            StringEquals
            | StringNotEquals
            | StringEqualsIgnoreCase
            | StringNotEqualsIgnoreCase
            | StringLike
            | StringNotLike => Family::String,
            ArnEquals | ArnNotEquals | ArnLike | ArnNotLike => Family::Arn,
            IpAddress | NotIpAddress => Family::Ip,
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => Family::Date,
            Bool => Family::Bool,
            Null => Family::Null,
        }
    }

    /// Negated operators are true when no value matches (and when the key is absent).
    fn negated(self) -> bool {
        use Op::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | ArnNotEquals
                | ArnNotLike
                | NotIpAddress
                | DateNotEquals
        )
    }

    /// `*`/`?` are wildcards (IAM: the `Like` operators, and `ArnEquals` which behaves as `ArnLike`).
    fn wildcards(self) -> bool {
        use Op::*;
        matches!(
            self,
            StringLike | StringNotLike | ArnEquals | ArnNotEquals | ArnLike | ArnNotLike
        )
    }

    fn ignore_case(self) -> bool {
        matches!(
            self,
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase
        )
    }

    /// Parses `Operator` or `OperatorIfExists` (case-insensitive).
    fn parse(s: &str) -> Option<(Op, bool)> {
        let lower = s.to_ascii_lowercase();
        let (base, if_exists) = match lower.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (lower.as_str(), false),
        };
        let (_, op) = OPS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(base))?;
        if if_exists && *op == Op::Null {
            return None;
        }
        Some((*op, if_exists))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Strings(Vec<Pattern>),
    Ips(Vec<IpNet>),
    Dates(Vec<DateTime<Utc>>),
    Bools(Vec<bool>),
}

/// One `operator: { key: values }` test of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    op: Op,
    if_exists: bool,
    key: ConditionKey,
    values: Values,
}

/// A validation failure: the field path (e.g. `Condition.StringLike.aws:username`) and a message
/// that names it.
pub(crate) type FieldError = (String, String);

/// Parses a statement's `Condition` object. `variables`: policy version 2012-10-17.
pub(crate) fn parse_conditions(
    value: &Value,
    variables: bool,
) -> Result<Vec<Condition>, FieldError> {
    let Some(ops) = value.as_object() else {
        return Err(("Condition".into(), "Condition must be a JSON object".into()));
    };
    let mut conditions = Vec::new();
    for (op_name, block) in ops {
        let field = format!("Condition.{op_name}");
        if op_name.contains(':') {
            return Err((
                field,
                format!(
                    "Condition operator \"{op_name}\" is not supported: keys here are single-valued, \
                     so ForAnyValue:/ForAllValues: set operators do not apply"
                ),
            ));
        }
        let Some((op, if_exists)) = Op::parse(op_name) else {
            let names: Vec<&str> = OPS.iter().map(|(n, _)| *n).collect();
            return Err((
                field,
                format!(
                    "Condition operator \"{op_name}\" is not supported; supported operators are {} \
                     (each optionally with an IfExists suffix, except Null)",
                    names.join(", ")
                ),
            ));
        };
        let Some(keys) = block.as_object() else {
            return Err((
                field,
                format!("Condition operator \"{op_name}\" must map to a JSON object of keys"),
            ));
        };
        if keys.is_empty() {
            return Err((
                field,
                format!("Condition operator \"{op_name}\" names no condition key"),
            ));
        }
        for (key_name, raw) in keys {
            let field = format!("Condition.{op_name}.{key_name}");
            let Some(key) = ConditionKey::parse(key_name) else {
                return Err((
                    field,
                    format!(
                        "Condition key \"{key_name}\" is not supported; supported keys are {}",
                        ConditionKey::supported_list()
                    ),
                ));
            };
            let family = op.family();
            let compatible = match family {
                Family::Null => true,
                Family::Arn => key == ConditionKey::PrincipalArn,
                f => f == key_family(key),
            };
            if !compatible {
                return Err((
                    field,
                    format!(
                        "Condition operator \"{op_name}\" cannot test key \"{}\" ({})",
                        key.name(),
                        match key_family(key) {
                            Family::Ip => "use IpAddress or NotIpAddress",
                            Family::Date => "use a Date operator",
                            Family::Bool => "use Bool",
                            _ => "use a String operator, or an Arn operator with aws:PrincipalArn",
                        }
                    ),
                ));
            }
            let raw_values = scalar_values(raw).map_err(|m| {
                (
                    field.clone(),
                    format!("Condition {op_name} value for \"{key_name}\" {m}"),
                )
            })?;
            let bad = |v: &str, what: &str| {
                (
                    field.clone(),
                    format!("Condition {op_name} value \"{v}\" for \"{key_name}\" is not {what}"),
                )
            };
            let values = match family {
                Family::String | Family::Arn => Values::Strings(
                    raw_values
                        .iter()
                        .map(|v| {
                            Pattern::parse(v, op.wildcards(), variables).map_err(|m| {
                                (
                                    field.clone(),
                                    format!("Condition {op_name} value for \"{key_name}\" {m}"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Family::Ip => Values::Ips(
                    raw_values
                        .iter()
                        .map(|v| parse_ip(v).ok_or_else(|| bad(v, "an IP address or CIDR range")))
                        .collect::<Result<_, _>>()?,
                ),
                Family::Date => Values::Dates(
                    raw_values
                        .iter()
                        .map(|v| parse_date(v).ok_or_else(|| bad(v, "an ISO 8601 date")))
                        .collect::<Result<_, _>>()?,
                ),
                Family::Bool | Family::Null => Values::Bools(
                    raw_values
                        .iter()
                        .map(|v| parse_bool(v).ok_or_else(|| bad(v, "\"true\" or \"false\"")))
                        .collect::<Result<_, _>>()?,
                ),
            };
            conditions.push(Condition {
                op,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(conditions)
}

/// A condition value is a string, number or boolean, or a non-empty list of them.
fn scalar_values(raw: &Value) -> Result<Vec<String>, &'static str> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match raw {
        Value::Array(items) if items.is_empty() => Err("must not be an empty list"),
        Value::Array(items) => items
            .iter()
            .map(|v| scalar(v).ok_or("must be a string or a list of strings"))
            .collect(),
        v => scalar(v)
            .map(|s| vec![s])
            .ok_or("must be a string or a list of strings"),
    }
}

fn parse_ip(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// ISO 8601 as IAM accepts it: a full timestamp with offset (`2024-01-31T12:00:00Z`), one
/// without (taken as UTC), a date alone (midnight UTC), or epoch seconds.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0));
    }
    None
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl Condition {
    /// Evaluates this test against the request.
    pub(crate) fn holds(&self, ctx: &RequestContext) -> bool {
        if let Values::Bools(values) = &self.values {
            if self.op == Op::Null {
                let absent = ctx.key_string(self.key).is_none();
                return values.contains(&absent);
            }
        }
        let matched = match &self.values {
            Values::Strings(patterns) => {
                let Some(actual) = ctx.key_string(self.key) else {
                    return self.if_exists || self.op.negated();
                };
                patterns
                    .iter()
                    .any(|p| p.is_match(&actual, ctx, self.op.ignore_case()))
            }
            Values::Ips(nets) => {
                let Some(ip) = ctx.normalized_source_ip() else {
                    return self.if_exists || self.op.negated();
                };
                nets.iter().any(|net| net.contains(&ip))
            }
            Values::Dates(dates) => {
                let now = ctx.current_time;
                dates.iter().any(|d| match self.op {
                    Op::DateEquals | Op::DateNotEquals => now == *d,
                    Op::DateLessThan => now < *d,
                    Op::DateLessThanEquals => now <= *d,
                    Op::DateGreaterThan => now > *d,
                    _ => now >= *d,
                })
            }
            Values::Bools(values) => values.contains(&ctx.secure_transport),
        };
        matched != self.op.negated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        assert_eq!(Op::parse("StringLike"), Some((Op::StringLike, false)));
        assert_eq!(
            Op::parse("stringlikeifexists"),
            Some((Op::StringLike, true))
        );
        assert_eq!(Op::parse("IpAddressIfExists"), Some((Op::IpAddress, true)));
        assert_eq!(Op::parse("NullIfExists"), None);
        assert_eq!(Op::parse("NumericEquals"), None);
    }

    #[test]
    fn keys_are_case_insensitive() {
        assert_eq!(
            ConditionKey::parse("AWS:SOURCEIP"),
            Some(ConditionKey::SourceIp)
        );
        assert_eq!(
            ConditionKey::parse("aws:UserName"),
            Some(ConditionKey::Username)
        );
        assert_eq!(ConditionKey::parse("aws:PrincipalOrgID"), None);
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_ip("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_ip("203.0.113.9").unwrap().to_string(),
            "203.0.113.9/32"
        );
        assert_eq!(
            parse_ip("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_ip("10.0.0.0/33").is_none());
        assert!(parse_ip("example.com").is_none());
        let t = |s: &str| parse_date(s).map(|d| d.to_rfc3339());
        assert_eq!(
            t("2024-01-31T12:00:00Z").unwrap(),
            "2024-01-31T12:00:00+00:00"
        );
        assert_eq!(
            t("2024-01-31T14:00:00+02:00").unwrap(),
            "2024-01-31T12:00:00+00:00"
        );
        assert_eq!(
            t("2024-01-31T12:00:00").unwrap(),
            "2024-01-31T12:00:00+00:00"
        );
        assert_eq!(t("2024-01-31").unwrap(), "2024-01-31T00:00:00+00:00");
        assert_eq!(t("1706702400").unwrap(), "2024-01-31T12:00:00+00:00");
        assert!(t("31/01/2024").is_none());
        assert!(t("2024-13-01").is_none());
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("yes"), None);
    }
}
