//! Berth: an OCI Distribution registry with ECR's features. Modules depend downwards only:
//! `http` and `ecr` -> (`access`, `service`) -> (`meta`, `storage`) -> `oci` -> `error`; `access` builds on
//! the pure `auth` and `policy` modules; `meta` encrypts stored secrets with `secrets`; `app` wires
//! them together and `server` serves the router.

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod ecr;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod meta;
pub mod oci;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod secrets;
pub mod server;
pub mod service;
pub mod storage;
pub mod util;
