//! Pull-through caching of upstream registries: filling cached repositories from their upstream
//! (`fill`), managing the rules (`manage`) and the upstream client (`upstream`). The rules
//! themselves (shape, validation, name mapping) are pure and live in `crate::policy::pull_through`.

pub mod fill;
pub mod manage;
pub mod upstream;

pub use crate::policy::pull_through::{PullThroughRule, Upstream};
pub use fill::{MissRights, ProxiedBlob, PullThrough};
pub use manage::RuleInput;
