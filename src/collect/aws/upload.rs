//! `--upload URL`: the snapshot goes to the operator's ingest endpoint over HTTPS,
//! authenticated with the pod's ServiceAccount token (the operator checks it with a
//! TokenReview and that the account is the one the ScanPolicy names).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::net::{HttpsClient, bearer_token};

#[derive(Debug, Clone, clap::Args)]
pub struct UploadArgs {
    /// Send the snapshot to this ingest URL, e.g.
    /// https://posture-operator.posture-system.svc:8443/v1/ingest/aws?policy=ns/name.
    #[arg(long, value_name = "URL", env = "POSTURE_UPLOAD_URL")]
    pub upload: Option<String>,
    /// PEM CA that signed the ingest endpoint's certificate (default: system roots).
    #[arg(long, value_name = "FILE", env = "POSTURE_UPLOAD_CA")]
    pub upload_ca: Option<PathBuf>,
    /// The same CA as PEM text (the operator sets it in the Job's environment).
    #[arg(
        long,
        value_name = "PEM",
        env = "POSTURE_UPLOAD_CA_PEM",
        hide_env_values = true
    )]
    pub upload_ca_pem: Option<String>,
    /// Bearer token file (default: the pod's ServiceAccount token, else the token of
    /// the kubeconfig's current user).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// How long an upload keeps trying while the operator is unreachable or not leading
/// (a rollout, a leader change).
const RETRY_FOR: Duration = Duration::from_secs(180);

/// POSTs the snapshot. 503 (not the leader, busy) and unreachable endpoints are
/// retried with back-off; any other refusal is an error with the operator's reason.
pub async fn send(args: &UploadArgs, body: &[u8]) -> Result<()> {
    let url = args.upload.as_deref().context("--upload URL")?;
    let token = bearer_token(args.token_file.as_deref()).await?;
    let client = HttpsClient::new(args.upload_ca.as_deref(), args.upload_ca_pem.as_deref())?;
    let started = std::time::Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        let attempt = client
            .post_json(url, &token, body.to_vec(), Duration::from_secs(120))
            .await;
        let retry_reason = match &attempt {
            Ok((status, text)) if status.is_success() => {
                eprintln!("uploaded to {url}: {}", text.trim());
                return Ok(());
            }
            Ok((status, text)) if status.as_u16() == 503 => format!("{status}: {}", text.trim()),
            Ok((status, text)) => {
                bail!(
                    "the operator refused the snapshot ({status}): {}",
                    text.trim()
                )
            }
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() + wait > RETRY_FOR {
            match attempt {
                Err(e) => return Err(e),
                Ok(_) => bail!(
                    "the operator did not accept the snapshot within {RETRY_FOR:?}: {retry_reason}"
                ),
            }
        }
        tracing::warn!("upload to {url}: {retry_reason}; retrying in {wait:?}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(15));
    }
}
