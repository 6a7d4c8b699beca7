//! The webhook's copy of the cloud inventory: the operator's accepted snapshots,
//! fetched from its API (`GET /v1/cloud/aws`, an ETag saves the transfer when nothing
//! changed), so a ServiceAccount mapped to an IAM role that can escalate is judged
//! with the same IAM analysis the operator runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::Full;
use hyper::body::Bytes;

use super::server::App;
use crate::inventory::cloud::{CloudInventory, SnapshotSource};
use crate::net::{HttpsClient, token_of};
use crate::operator::api::CloudData;

#[derive(Debug, Clone, clap::Args)]
pub struct CloudArgs {
    /// The operator API, for its accepted cloud snapshots (IRSA and Pod Identity roles
    /// are then judged at admission), e.g. https://posture-operator.posture-system.svc:8443.
    #[arg(long, value_name = "URL", env = "POSTURE_CLOUD_URL")]
    pub cloud_url: Option<String>,
    /// PEM CA of the operator API's certificate (default: system roots).
    #[arg(long, value_name = "FILE", requires = "cloud_url")]
    pub cloud_ca: Option<PathBuf>,
    /// Seconds between two fetches.
    #[arg(long, default_value_t = 30, requires = "cloud_url")]
    pub cloud_refresh_seconds: u64,
}

/// Fetches once; `None` when nothing changed since `etag`.
async fn fetch(
    client: &HttpsClient,
    credentials: &kube::Config,
    url: &str,
    etag: Option<&str>,
) -> Result<Option<(CloudInventory, Option<String>, usize)>> {
    let token = token_of(credentials)?;
    let mut request = hyper::Request::get(url).header("authorization", format!("Bearer {token}"));
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("{url} is not a valid URL"))?;
    let (status, headers, body) = client.send(request, Duration::from_secs(60)).await?;
    if status.as_u16() == 304 {
        return Ok(None);
    }
    if !status.is_success() {
        bail!("{url} answered {status}: {}", body.trim());
    }
    let data: CloudData =
        serde_json::from_str(&body).with_context(|| format!("the answer of {url}"))?;
    let sources: Vec<SnapshotSource> = data
        .snapshots
        .iter()
        .map(|e| SnapshotSource {
            policy: Some(e.policy.clone()),
            known_accounts: e.known_accounts.clone(),
            eks_cluster: e.eks_cluster_name.clone(),
        })
        .collect();
    let cloud = CloudInventory::build(
        sources
            .iter()
            .zip(data.snapshots.iter().map(|e| &e.snapshot)),
    );
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Some((cloud, etag, data.snapshots.len())))
}

/// Keeps the webhook's cloud inventory current until the process ends. It presents
/// the webhook's own Kubernetes credentials (its ServiceAccount token).
pub async fn follow(app: Arc<App>, args: CloudArgs, credentials: kube::Config) {
    let Some(base) = args.cloud_url.clone() else {
        return;
    };
    let url = format!("{}/v1/cloud/aws", base.trim_end_matches('/'));
    let client = match HttpsClient::new(args.cloud_ca.as_deref(), None) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cloud data: {e:#}; IAM roles are not judged at admission");
            return;
        }
    };
    let mut etag: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(args.cloud_refresh_seconds.max(1)));
    loop {
        tick.tick().await;
        match fetch(&client, &credentials, &url, etag.as_deref()).await {
            Ok(None) => {}
            Ok(Some((cloud, new_etag, count))) => {
                if let Ok(mut cluster) = app.cluster.lock() {
                    cluster.inventory.set_cloud(Arc::new(cloud));
                }
                tracing::info!(snapshots = count, "cloud data from the operator");
                etag = new_etag;
                last_error = None;
            }
            Err(e) => {
                let text = format!("{e:#}");
                if last_error.as_deref() != Some(&text) {
                    tracing::warn!(
                        "cloud data from {url}: {text} (the previous data stays in use; retrying)"
                    );
                    last_error = Some(text);
                }
            }
        }
    }
}
