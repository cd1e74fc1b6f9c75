//! Pull-through caching of upstream registries: the registry's reads, which serve cached
//! repositories from the cache (`reads`), filling them from their upstream (`fill`), managing the
//! rules (`manage`) and the upstream client (`upstream`). The rules
//! themselves (shape, validation, name mapping) are pure and live in `crate::policy::pull_through`.

pub mod fill;
pub mod manage;
pub mod reads;
pub mod upstream;

pub use crate::policy::pull_through::{PullThroughRule, Upstream};
pub use fill::{MissRights, ProxiedBlob, PullThrough};
pub use manage::RuleInput;
