//! Small generic pieces with no knowledge of Berth's domain (depends on nothing in the crate).

pub mod ttl_cache;

pub use ttl_cache::TtlCache;
