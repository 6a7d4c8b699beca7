//! `--upload URL`: the snapshot goes to the operator's ingest endpoint over HTTPS,
//! authenticated with the pod's ServiceAccount token (the operator checks it with a
//! TokenReview and that the account is the one the ScanPolicy names).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, clap::Args)]
pub struct UploadArgs {
    /// Send the snapshot to this ingest URL, e.g.
    /// https://posture-operator.posture-system.svc:8443/v1/ingest/aws?policy=ns/name.
    #[arg(long, value_name = "URL", env = "POSTURE_UPLOAD_URL")]
    pub upload: Option<String>,
    /// PEM CA that signed the ingest endpoint's certificate (default: system roots).
    #[arg(long, value_name = "FILE", env = "POSTURE_UPLOAD_CA")]
    pub upload_ca: Option<PathBuf>,
    /// The same CA as PEM text (from a ConfigMap key in the Job's environment).
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

async fn token(args: &UploadArgs) -> Result<String> {
    let file = args
        .token_file
        .clone()
        .or_else(|| Some(PathBuf::from(SERVICE_ACCOUNT_TOKEN)).filter(|p| p.exists()));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the token {}", path.display()))?;
        return Ok(text.trim().to_owned());
    }
    let kubeconfig = kube::config::Kubeconfig::read()
        .context("no ServiceAccount token and no kubeconfig: pass --token-file")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("reading the kubeconfig")?;
    use secrecy::ExposeSecret;
    config
        .auth_info
        .token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .context("the kubeconfig's user has no token: pass --token-file")
}

fn tls_config(args: &UploadArgs) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let pem = match (&args.upload_ca, &args.upload_ca_pem) {
        (Some(path), _) => Some(
            std::fs::read(path).with_context(|| format!("reading the CA {}", path.display()))?,
        ),
        (None, Some(text)) => Some(text.as_bytes().to_vec()),
        (None, None) => None,
    };
    let mut roots = rustls::RootCertStore::empty();
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.context("the CA is not PEM")?)?;
            }
            if roots.is_empty() {
                bail!("the upload CA holds no certificate");
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// POSTs the snapshot; an answer other than 2xx is an error with the operator's reason.
pub async fn send(args: &UploadArgs, body: &[u8]) -> Result<()> {
    let url = args.upload.as_deref().context("--upload URL")?;
    let token = token(args).await?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(args)?)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(https);
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .context("building the upload request")?;
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .context("the upload timed out after 120 s")?
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if !status.is_success() {
        bail!(
            "the operator refused the snapshot ({status}): {}",
            text.trim()
        );
    }
    eprintln!("uploaded to {url}: {}", text.trim());
    Ok(())
}
