//! The HTTPS client posture uses to talk to its own operator API (snapshot upload,
//! queries, the webhook's cloud data): rustls with ring, a given CA or the system
//! roots, a bearer token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where a pod's ServiceAccount token is mounted.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Clone)]
pub struct HttpsClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The trust roots: a PEM file, PEM text, or the system's roots.
fn roots(ca_file: Option<&Path>, ca_pem: Option<&str>) -> Result<rustls::RootCertStore> {
    let pem = match (ca_file, ca_pem) {
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
                bail!("the CA holds no certificate");
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

impl HttpsClient {
    pub fn new(ca_file: Option<&Path>, ca_pem: Option<&str>) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots(ca_file, ca_pem)?)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self { client })
    }

    /// One request; the answer's status and body as text.
    pub async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, hyper::HeaderMap, String)> {
        let url = request.uri().to_string();
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .with_context(|| format!("{url} did not answer within {timeout:?}"))?
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .with_context(|| format!("{url} did not send its answer within {timeout:?}"))?
            .with_context(|| format!("reading the answer of {url}"))?;
        Ok((
            status,
            headers,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    }

    pub async fn post_json(
        &self,
        url: &str,
        token: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, String)> {
        let request = hyper::Request::post(url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))
            .with_context(|| format!("{url} is not a valid URL"))?;
        let (status, _, text) = self.send(request, timeout).await?;
        Ok((status, text))
    }
}

/// The bearer token of a Kubernetes client configuration (a token, or a token file that
/// is re-read, as projected ServiceAccount tokens rotate).
pub fn token_of(config: &kube::Config) -> Result<String> {
    use secrecy::ExposeSecret;
    if let Some(token) = &config.auth_info.token {
        return Ok(token.expose_secret().to_owned());
    }
    if let Some(file) = &config.auth_info.token_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading the token {file}"))?;
        return Ok(text.trim().to_owned());
    }
    bail!(
        "the Kubernetes credentials hold no bearer token (client certificates cannot be forwarded): use a ServiceAccount token"
    )
}

/// The bearer token: a file, else the pod's ServiceAccount token, else the token of the
/// kubeconfig's current user.
pub async fn bearer_token(file: Option<&Path>) -> Result<String> {
    let file = file
        .map(Path::to_path_buf)
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
        .context(
            "the kubeconfig's user has no bearer token (client certificates cannot be forwarded): pass --token-file, e.g. with `kubectl create token <serviceaccount>`",
        )
}

/// Serves `router` over TLS (HTTP/1.1 and HTTP/2) on `listener` until the future is
/// dropped. A handshake that stalls is cut after 10 s; a failed one only costs its
/// connection.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    router: axum::Router,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}
