//! Berth: an OCI Distribution registry with ECR's features.
//!
//! The crate is layered, and a module imports only from its own layer or the layers below it
//! (never upwards, and never in a circle within a layer). `tests/it/layering.rs` reads the
//! block below and fails on any `use crate::…` that breaks it, so this text is the rule:
//!
//! ```text
//! app, server, telemetry            wiring: build the services, spawn jobs, serve connections;
//!                                   the log format and the trace exporter
//! http, jobs                        transports (oci, token, admin, ecr, console) and background loops
//! ops                               typed management operations behind one gate (the control plane)
//! pull_through, replication, events  cached repositories filled from upstream registries;
//!                                   pushed images sent to other registries; recorded events
//!                                   delivered to subscribers
//! access, service                   credentials and authorization; the registry's use cases
//! meta, storage                     metadata in SQL, blob bytes in object storage
//! secrets                           encryption of the secrets kept in the database
//! auth, policy, lifecycle, oci, config, util   pure rules, formats, configuration, helpers
//! error, failpoint, metrics         the domain error; crash-test hooks; the metric families
//! ```

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod oci;
pub mod ops;
pub mod policy;
pub mod pull_through;
pub mod replication;
pub mod secrets;
pub mod server;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod util;
