//! What the integration suites share.

pub mod api;
pub mod common;
pub mod e2e;
#[path = "../../fixtures/trivy_db.rs"]
pub mod trivy_db;
