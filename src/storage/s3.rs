//! The S3 client: settings from `[storage]` config and the standard `AWS_*` environment.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientConfigKey, ClientOptions, RetryConfig};

use crate::config::StorageConfig;
use crate::error::{Error, Result};

/// S3 settings given in Berth's config; unset ones fall back to `AWS_*` env vars.
#[derive(Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: bool,
}

impl S3Settings {
    pub fn from_config(c: &StorageConfig) -> Self {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        S3Settings {
            endpoint: some(&c.s3_endpoint),
            region: some(&c.s3_region),
            access_key_id: some(&c.s3_access_key_id),
            secret_access_key: some(c.s3_secret_access_key.expose()),
            allow_http: c.s3_allow_http.then_some(true),
            virtual_hosted_style: c.s3_virtual_hosted_style,
        }
    }
}

/// Builds the client. `AWS_CA_BUNDLE` is deliberately not read: object_store's HTTP client uses
/// the system and webpki roots, and an endpoint with a private CA is configured by installing that
/// CA in the system store.
pub fn build(bucket: &str, s: &S3Settings) -> Result<AmazonS3> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    // Client options are replaced as a whole, so the HTTP allowance (ours or AWS_ALLOW_HTTP) is
    // resolved first and set inside them.
    let allow_http = s.allow_http.unwrap_or_else(|| {
        b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    });
    // No whole-request timeout: a multi-GiB blob streams for longer than any fixed bound.
    b = b.with_client_options(
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5)),
    );
    if let Some(v) = &s.endpoint {
        b = b.with_endpoint(v);
    }
    if let Some(v) = &s.region {
        b = b.with_region(v);
    }
    if let Some(v) = &s.access_key_id {
        b = b.with_access_key_id(v);
    }
    if let Some(v) = &s.secret_access_key {
        b = b.with_secret_access_key(v);
    }
    if s.virtual_hosted_style {
        b = b.with_config(AmazonS3ConfigKey::VirtualHostedStyleRequest, "true");
    }
    tracing::info!(bucket, endpoint = ?s.endpoint, region = ?s.region, allow_http, "S3 blob storage");
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
        ..Default::default()
    };
    b.with_retry(retry)
        .build()
        .map_err(|e| Error::Internal(format!("S3 configuration: {e}")))
}
