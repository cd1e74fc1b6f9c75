//! Pull-through caching of upstream registries: rules that map a local repository prefix (or a
//! mirror request's upstream host) to an upstream registry, and the upstream client.

pub mod rules;

pub use rules::{PullThroughRule, Upstream};
