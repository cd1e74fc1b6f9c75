//! Berth: an OCI Distribution registry with ECR's features. Modules depend downwards only:
//! `http` -> `service` -> (`meta`, `storage`) -> `oci` -> `error`; `app` wires them together.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod jobs;
pub mod meta;
pub mod oci;
pub mod policy;
pub mod service;
pub mod storage;
