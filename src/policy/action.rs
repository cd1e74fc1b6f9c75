//! The ECR action catalogue (every `ecr:*` IAM action Berth knows), compact action sets, and the
//! mapping from Docker token scope actions (`pull`, `push`, `delete`, `*`) to ECR actions.

use std::fmt;

/// IAM access level of an action, as AWS's service authorization reference classifies it.
/// Berth uses it for one hard rule: anonymous callers are only ever allowed `Read` and `List`
/// actions, whatever a policy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    Read,
    List,
    Write,
    PermissionsManagement,
    Tagging,
}

impl AccessLevel {
    /// True for `Read` and `List`: the levels that never change the registry.
    pub fn is_read_only(self) -> bool {
        matches!(self, AccessLevel::Read | AccessLevel::List)
    }
}

macro_rules! ecr_actions {
    ($($variant:ident => $level:ident),* $(,)?) => {
        /// One ECR IAM action. The variant name is the API operation name; the IAM name is
        /// `ecr:` followed by it (see [`Action::iam_name`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $($variant),* }

        impl Action {
            /// Every action in the catalogue, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The API operation name, e.g. `BatchGetImage`.
            pub const fn name(self) -> &'static str {
                match self { $(Action::$variant => stringify!($variant)),* }
            }

            /// The IAM action name, e.g. `ecr:BatchGetImage`.
            pub const fn iam_name(self) -> &'static str {
                match self { $(Action::$variant => concat!("ecr:", stringify!($variant))),* }
            }

            /// The IAM access level of the action.
            pub const fn access_level(self) -> AccessLevel {
                match self { $(Action::$variant => AccessLevel::$level),* }
            }
        }
    };
}

// The 58 operations of botocore's `ecr/2015-09-21/service-2.json` plus the two IAM-only
// permissions (`BatchImportUpstreamImage`, `ReplicateImage`).
ecr_actions! {
    BatchCheckLayerAvailability => Read,
    BatchDeleteImage => Write,
    BatchGetImage => Read,
    BatchGetRepositoryScanningConfiguration => Read,
    BatchImportUpstreamImage => Write,
    CompleteLayerUpload => Write,
    CreatePullThroughCacheRule => Write,
    CreateRepository => Write,
    CreateRepositoryCreationTemplate => Write,
    DeleteLifecyclePolicy => Write,
    DeletePullThroughCacheRule => Write,
    DeleteRegistryPolicy => PermissionsManagement,
    DeleteRepository => Write,
    DeleteRepositoryCreationTemplate => Write,
    DeleteRepositoryPolicy => PermissionsManagement,
    DeleteSigningConfiguration => Write,
    DeregisterPullTimeUpdateExclusion => Write,
    DescribeImageReplicationStatus => Read,
    DescribeImageScanFindings => Read,
    DescribeImageSigningStatus => Read,
    DescribeImages => Read,
    DescribePullThroughCacheRules => Read,
    DescribeRegistry => Read,
    DescribeRepositories => List,
    DescribeRepositoryCreationTemplates => Read,
    GetAccountSetting => Read,
    GetAuthorizationToken => Read,
    GetDownloadUrlForLayer => Read,
    GetLifecyclePolicy => Read,
    GetLifecyclePolicyPreview => Read,
    GetRegistryPolicy => Read,
    GetRegistryScanningConfiguration => Read,
    GetRepositoryPolicy => Read,
    GetSigningConfiguration => Read,
    InitiateLayerUpload => Write,
    ListImageReferrers => List,
    ListImages => List,
    ListPullTimeUpdateExclusions => List,
    ListTagsForResource => Read,
    PutAccountSetting => Write,
    PutImage => Write,
    PutImageScanningConfiguration => Write,
    PutImageTagMutability => Write,
    PutLifecyclePolicy => Write,
    PutRegistryPolicy => PermissionsManagement,
    PutRegistryScanningConfiguration => Write,
    PutReplicationConfiguration => Write,
    PutSigningConfiguration => Write,
    RegisterPullTimeUpdateExclusion => Write,
    ReplicateImage => Write,
    SetRepositoryPolicy => PermissionsManagement,
    StartImageScan => Write,
    StartLifecyclePolicyPreview => Write,
    TagResource => Tagging,
    UntagResource => Tagging,
    UpdateImageStorageClass => Write,
    UpdatePullThroughCacheRule => Write,
    UpdateRepositoryCreationTemplate => Write,
    UploadLayerPart => Write,
    ValidatePullThroughCacheRule => Read,
}

const _: () = assert!(Action::ALL.len() <= 128, "ActionSet is a u128 bitmap");

impl Action {
    /// Looks up an IAM action name such as `ecr:batchgetimage` (case-insensitive, as IAM).
    pub fn from_iam_name(name: &str) -> Option<Action> {
        let (prefix, op) = name.split_once(':')?;
        if !prefix.eq_ignore_ascii_case("ecr") {
            return None;
        }
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name().eq_ignore_ascii_case(op))
    }

    /// Looks up an API operation name such as `BatchGetImage` (exact case, as in `X-Amz-Target`).
    pub fn from_operation(op: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == op)
    }

    fn bit(self) -> u128 {
        1u128 << (self as u32)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iam_name())
    }
}

/// A set of actions (a bitmap over [`Action::ALL`]); statements compile their `Action` /
/// `NotAction` patterns into one at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionSet(u128);

impl ActionSet {
    pub const EMPTY: ActionSet = ActionSet(0);

    /// Every action in the catalogue.
    pub fn all() -> ActionSet {
        Action::ALL.iter().copied().collect()
    }

    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    pub fn insert(&mut self, action: Action) {
        self.0 |= action.bit();
    }

    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// The catalogue actions not in `self`.
    pub fn complement(self) -> ActionSet {
        ActionSet(ActionSet::all().0 & !self.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut set = ActionSet::EMPTY;
        for action in iter {
            set.insert(action);
        }
        set
    }
}

/// A Docker token scope action (`repository:<name>:<actions>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeAction {
    Pull,
    Push,
    Delete,
    /// `*`: pull, push and delete together.
    All,
}

const PULL: &[Action] = &[
    Action::BatchGetImage,
    Action::GetDownloadUrlForLayer,
    Action::BatchCheckLayerAvailability,
];
const PUSH: &[Action] = &[
    Action::BatchCheckLayerAvailability,
    Action::InitiateLayerUpload,
    Action::UploadLayerPart,
    Action::CompleteLayerUpload,
    Action::PutImage,
];
const DELETE: &[Action] = &[Action::BatchDeleteImage];
const ALL_SCOPE: &[Action] = &[
    Action::BatchGetImage,
    Action::GetDownloadUrlForLayer,
    Action::BatchCheckLayerAvailability,
    Action::InitiateLayerUpload,
    Action::UploadLayerPart,
    Action::CompleteLayerUpload,
    Action::PutImage,
    Action::BatchDeleteImage,
];

impl ScopeAction {
    /// Parses a scope action as Docker clients send it (`pull`, `push`, `delete`, `*`).
    pub fn parse(s: &str) -> Option<ScopeAction> {
        match s {
            "pull" => Some(ScopeAction::Pull),
            "push" => Some(ScopeAction::Push),
            "delete" => Some(ScopeAction::Delete),
            "*" => Some(ScopeAction::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ScopeAction::Pull => "pull",
            ScopeAction::Push => "push",
            ScopeAction::Delete => "delete",
            ScopeAction::All => "*",
        }
    }

    /// The ECR actions this scope action stands for; it is granted only if every one is allowed.
    pub fn actions(self) -> &'static [Action] {
        match self {
            ScopeAction::Pull => PULL,
            ScopeAction::Push => PUSH,
            ScopeAction::Delete => DELETE,
            ScopeAction::All => ALL_SCOPE,
        }
    }
}

impl fmt::Display for ScopeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_round_trip() {
        assert_eq!(Action::ALL.len(), 60);
        for &a in Action::ALL {
            assert_eq!(Action::from_iam_name(a.iam_name()), Some(a));
            assert_eq!(Action::from_iam_name(&a.iam_name().to_uppercase()), Some(a));
            assert_eq!(Action::from_operation(a.name()), Some(a));
        }
        assert_eq!(Action::from_iam_name("s3:BatchGetImage"), None);
        assert_eq!(Action::from_iam_name("ecr:Nope"), None);
        assert_eq!(Action::from_operation("batchgetimage"), None);
        assert_eq!(Action::BatchGetImage.to_string(), "ecr:BatchGetImage");
    }

    #[test]
    fn action_sets() {
        let set: ActionSet = [Action::PutImage, Action::BatchGetImage]
            .into_iter()
            .collect();
        assert!(set.contains(Action::PutImage) && !set.contains(Action::ListImages));
        assert_eq!(set.len(), 2);
        assert_eq!(set.complement().len(), Action::ALL.len() - 2);
        assert!(set.complement().union(set) == ActionSet::all());
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Action::BatchGetImage, Action::PutImage]
        );
    }

    #[test]
    fn scope_mapping() {
        assert_eq!(ScopeAction::parse("pull").unwrap().actions().len(), 3);
        assert_eq!(ScopeAction::parse("push").unwrap().actions().len(), 5);
        assert_eq!(
            ScopeAction::parse("delete").unwrap().actions(),
            &[Action::BatchDeleteImage]
        );
        let all: ActionSet = ScopeAction::All.actions().iter().copied().collect();
        let parts: ActionSet = [ScopeAction::Pull, ScopeAction::Push, ScopeAction::Delete]
            .iter()
            .flat_map(|s| s.actions().iter().copied())
            .collect();
        assert_eq!(all, parts);
        assert_eq!(ScopeAction::parse("PULL"), None);
        assert!(PULL.iter().all(|a| a.access_level().is_read_only()));
        assert!(!Action::PutImage.access_level().is_read_only());
    }
}
