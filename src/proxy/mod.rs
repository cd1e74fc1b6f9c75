//! Pull-through caching of upstream registries: rules that map a local repository prefix (or a
//! mirror request's upstream host) to an upstream registry, and the upstream client.

pub mod cache;
pub mod manage;
pub mod rules;
pub mod upstream;

pub use cache::{MissRights, ProxiedBlob, PullThrough};
pub use manage::RuleInput;
pub use rules::{PullThroughRule, Upstream};
