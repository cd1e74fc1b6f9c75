//! Berth's integration tests, one test binary (so CI links once): real Berth processes, real
//! clients and real backing services, plus in-process router tests. `support/` holds what the
//! suites share: the server under test (`common`), the HTTP client helpers (`api`), the real
//! clients and daemons (`e2e`), the headless Chromium of the console tests (`browser`) and the
//! tiny Trivy database (`trivy_db`). Run one suite with `cargo test --test it <suite>::`.

mod support;

mod admin_api;
mod api_crash;
mod api_delete;
mod api_discovery;
mod api_errors;
mod api_maintenance;
mod api_manifests;
mod api_pull;
mod api_push;
mod auth_tokens;
mod background_jobs;
mod connections;
mod console;
mod disk_full;
mod e2e_clients;
mod e2e_policies;
mod ecr_api;
mod events;
mod faults;
mod federation;
mod gc;
mod identity_bootstrap;
mod inprocess;
mod layering;
mod lifecycle;
mod meta_conformance;
mod metrics;
mod openapi;
mod pull_through;
mod readme;
mod replication;
mod scaleout;
mod scanning;
mod secrets_at_rest;
mod server_behaviour;
mod tag_immutability;
mod tracing;
mod trusted_proxies;
