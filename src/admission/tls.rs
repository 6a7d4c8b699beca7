//! TLS for the webhook with rustls: the certificate and key are re-read when their
//! files change (cert-manager and Helm rotate them in place), and a new pair that does
//! not load or does not match is refused while the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Loads a PEM certificate chain and private key and checks that they belong together.
pub fn load_pair(cert: &[u8], key: &[u8]) -> Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .context("the certificate file is not PEM")?;
    if chain.is_empty() {
        bail!("the certificate file holds no CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(key).context("the key file holds no private key")?;
    let signing = any_supported_type(&key).context("the private key type is not supported")?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("the private key does not match the certificate")?;
    Ok(certified)
}

/// The current certificate, swapped by [`CertReloader::watch`].
#[derive(Debug)]
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Vec<u8>)>,
}

impl CertReloader {
    pub fn new(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>> {
        let (pair, bytes) = read(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new((Arc::new(pair), bytes)),
        }))
    }

    /// Re-reads the files; swaps the pair when they changed and load. Returns whether
    /// the serving certificate changed.
    pub fn reload(&self) -> Result<bool> {
        let cert = std::fs::read(&self.cert_path)
            .with_context(|| format!("reading {}", self.cert_path.display()))?;
        let key = std::fs::read(&self.key_path)
            .with_context(|| format!("reading {}", self.key_path.display()))?;
        let bytes = [cert.as_slice(), key.as_slice()].concat();
        if self.current.read().map(|c| c.1 == bytes).unwrap_or(false) {
            return Ok(false);
        }
        let pair = load_pair(&cert, &key).with_context(|| {
            format!(
                "new certificate {} / key {} refused, still serving the previous pair",
                self.cert_path.display(),
                self.key_path.display()
            )
        })?;
        if let Ok(mut current) = self.current.write() {
            *current = (Arc::new(pair), bytes);
        }
        Ok(true)
    }

    /// Polls the files (a Secret volume swaps a symlink, which file events miss).
    pub async fn watch(self: Arc<Self>, every: Duration, on_error: impl Fn()) {
        let mut last_error = String::new();
        loop {
            tokio::time::sleep(every).await;
            match self.reload() {
                Ok(true) => {
                    last_error.clear();
                    tracing::info!(cert = %self.cert_path.display(), "serving a new TLS certificate");
                }
                Ok(false) => {}
                Err(e) => {
                    let text = format!("{e:#}");
                    if text != last_error {
                        tracing::error!("{text}");
                        on_error();
                        last_error = text;
                    }
                }
            }
        }
    }
}

fn read(cert: &Path, key: &Path) -> Result<(CertifiedKey, Vec<u8>)> {
    let cert_bytes = std::fs::read(cert)
        .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?;
    let key_bytes =
        std::fs::read(key).with_context(|| format!("cannot read the TLS key {}", key.display()))?;
    let pair = load_pair(&cert_bytes, &key_bytes)
        .with_context(|| format!("{} / {}", cert.display(), key.display()))?;
    Ok((pair, [cert_bytes, key_bytes].concat()))
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

/// A rustls server config (TLS 1.2 and 1.3, ring) that offers HTTP/2 and HTTP/1.1.
pub fn server_config(resolver: Arc<CertReloader>) -> Result<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn served(reloader: &CertReloader) -> Vec<u8> {
        let current = reloader.current.read().unwrap();
        current.0.cert[0].as_ref().to_vec()
    }

    #[test]
    fn garbage_and_mismatched_pairs_are_refused() {
        let err = load_pair(b"nope", b"nope").unwrap_err();
        assert!(format!("{err:#}").contains("CERTIFICATE"), "{err:#}");
        let (cert, _) = pair("a.example");
        let (_, other_key) = pair("b.example");
        let err = load_pair(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (cert, key) = pair("first.example");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let reloader = CertReloader::new(&cert_path, &key_path).unwrap();
        let first = served(&reloader);
        assert!(
            !reloader.reload().unwrap(),
            "unchanged files are not reloaded"
        );

        let (cert, key) = pair("second.example");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        assert!(reloader.reload().unwrap());
        let second = served(&reloader);
        assert_ne!(first, second);

        // Half-rotated: a new certificate with the old key.
        let (cert, _) = pair("third.example");
        std::fs::write(&cert_path, &cert).unwrap();
        let err = reloader.reload().unwrap_err();
        assert!(
            format!("{err:#}").contains("still serving the previous pair"),
            "{err:#}"
        );
        assert_eq!(served(&reloader), second);
    }
}
