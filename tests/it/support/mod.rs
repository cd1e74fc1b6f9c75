//! What the integration suites share.

pub mod api;
pub mod browser;
pub mod common;
pub mod e2e;
pub mod router;
#[path = "../../fixtures/trivy_db.rs"]
pub mod trivy_db;
