//! The global condition keys Berth evaluates (`aws:SourceIp`, `aws:CurrentTime`, ...): their
//! names and lookup. The request's value of each is [`super::context::RequestContext`]'s; what
//! operators apply to each is [`super::condition`]'s.

/// A supported global condition key (names are case-insensitive in documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionKey {
    SourceIp,
    CurrentTime,
    SecureTransport,
    Username,
    PrincipalArn,
    /// The registry id (account) of the caller's ARN: its own registry's for local principals,
    /// another's for principals of a trusted registry.
    PrincipalAccount,
}

impl ConditionKey {
    pub const ALL: [ConditionKey; 6] = [
        ConditionKey::SourceIp,
        ConditionKey::CurrentTime,
        ConditionKey::SecureTransport,
        ConditionKey::Username,
        ConditionKey::PrincipalArn,
        ConditionKey::PrincipalAccount,
    ];

    /// The canonical spelling, e.g. `aws:SourceIp`.
    pub fn name(self) -> &'static str {
        match self {
            ConditionKey::SourceIp => "aws:SourceIp",
            ConditionKey::CurrentTime => "aws:CurrentTime",
            ConditionKey::SecureTransport => "aws:SecureTransport",
            ConditionKey::Username => "aws:username",
            ConditionKey::PrincipalArn => "aws:PrincipalArn",
            ConditionKey::PrincipalAccount => "aws:PrincipalAccount",
        }
    }

    /// Case-insensitive lookup.
    pub fn parse(s: &str) -> Option<ConditionKey> {
        ConditionKey::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    pub(crate) fn supported_list() -> String {
        ConditionKey::ALL.map(ConditionKey::name).join(", ")
    }
}
