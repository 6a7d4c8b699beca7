//! SDK configuration: rustls (ring) HTTP client, standard credential chain, standard
//! retries with back-off, optional role assumption, and S3 path-style addressing when
//! a custom endpoint (moto, LocalStack, a VPC endpoint) is configured.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

use super::AccountTarget;

/// Throttled and transient failures are retried this often, with exponential
/// back-off (jittered) starting at the initial back-off.
const MAX_ATTEMPTS: u32 = 8;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// The ambient configuration: credentials chain, region and endpoint from the
/// environment and profile.
pub async fn base_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(INITIAL_BACKOFF),
        )
        .load()
        .await
}

/// The configuration for one account: the ambient one, or with an assumed role.
pub async fn account_config(base: &SdkConfig, target: &AccountTarget) -> Result<SdkConfig> {
    let Some(role) = &target.role_arn else {
        return Ok(base.clone());
    };
    let mut builder = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("posture-collector")
        .configure(base);
    if let Some(external) = &target.external_id {
        builder = builder.external_id(external);
    }
    let provider = builder.build().await;
    Ok(base
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build())
}

/// The same configuration in another region.
pub fn in_region(config: &SdkConfig, region: &str) -> SdkConfig {
    config
        .to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

/// (account id, caller ARN) of the configuration's credentials.
pub async fn caller_identity(config: &SdkConfig) -> Result<(String, String)> {
    let sts = aws_sdk_sts::Client::new(config);
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(super::describe("sts:GetCallerIdentity", &e)))?;
    let account = out
        .account()
        .context("GetCallerIdentity returned no account")?;
    Ok((account.to_owned(), out.arn().unwrap_or_default().to_owned()))
}

/// An S3 client; path-style when the endpoint is custom (moto and LocalStack do not
/// resolve bucket subdomains).
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
