//! Certificates and keys for one local control plane: a CA, serving certificates for
//! etcd and kube-apiserver, client certificates for the admin and the apiserver's etcd
//! client, and the service-account signing key. All ECDSA P-256, generated in memory
//! per control plane and written only into its private temporary directory.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A PEM certificate and its key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the control plane needs, as files in `dir`.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    pub apiserver: CertFiles,
    pub etcd_server: CertFiles,
    pub etcd_client: CertFiles,
    pub admin: CertFiles,
    /// Service-account token signing key (PKCS#8) and its public key (SPKI), which
    /// the apiserver uses to verify tokens.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

/// The in-memory CA, kept so tests can issue more certificates (a webhook's serving
/// certificate, say) that the control plane trusts.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl CertificateAuthority {
    pub fn new(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name(common_name, None);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn issue_server(&self, common_name: &str, sans: &[&str]) -> Result<(String, String)> {
        self.issue(common_name, None, sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate: `common_name` is the user, `organization` the group.
    pub fn issue_client(
        &self,
        common_name: &str,
        organization: Option<&str>,
    ) -> Result<(String, String)> {
        self.issue(
            common_name,
            organization,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        organization: Option<&str>,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name, organization);
        params.subject_alt_names = sans
            .iter()
            .map(|san| match san.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*san).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Addresses the apiserver answers on: loopback and the in-cluster service names, plus
/// the first address of the service range (the `kubernetes` Service).
pub const APISERVER_SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

impl Pki {
    pub fn generate(dir: &Path) -> Result<(Self, CertificateAuthority)> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = CertificateAuthority::new("posture-e2e-ca")?;
        let ca_cert = write(dir, "ca.crt", ca.pem())?;
        let pair = |name: &str, (cert, key): (String, String)| -> Result<CertFiles> {
            Ok(CertFiles {
                cert: write(dir, &format!("{name}.crt"), &cert)?,
                key: write(dir, &format!("{name}.key"), &key)?,
            })
        };
        let apiserver = pair(
            "apiserver",
            ca.issue_server("kube-apiserver", APISERVER_SANS)?,
        )?;
        let etcd_server = pair(
            "etcd-server",
            ca.issue_server("etcd", &["127.0.0.1", "localhost"])?,
        )?;
        let etcd_client = pair(
            "etcd-client",
            ca.issue_client("kube-apiserver-etcd-client", None)?,
        )?;
        let admin = pair(
            "admin",
            ca.issue_client("posture-e2e-admin", Some("system:masters"))?,
        )?;
        let sa_key = KeyPair::generate()?;
        let service_account_key = write(dir, "service-account.key", &sa_key.serialize_pem())?;
        let service_account_pub = write(dir, "service-account.pub", &sa_key.public_key_pem())?;
        Ok((
            Self {
                ca_cert,
                ca_pem: ca.pem().to_owned(),
                apiserver,
                etcd_server,
                etcd_client,
                admin,
                service_account_key,
                service_account_pub,
            },
            ca,
        ))
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    restrict(&path)?;
    Ok(path)
}

/// Keys are readable by the owner only, as a kubelet or kubeadm would leave them.
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}
