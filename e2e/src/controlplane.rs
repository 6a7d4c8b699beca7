//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler as local processes
//! on free loopback ports, in a private temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::binaries::ControlPlaneBinaries;
use crate::pki::{CertificateAuthority, Pki};
use crate::ports::free_ports;
use crate::process::{Guarded, ProcessSpec};

/// The service range; its first address is the `kubernetes` Service (in the apiserver
/// certificate's SANs).
pub const SERVICE_CIDR: &str = "10.0.0.0/16";
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A running control plane. Dropping it stops every component, last started first.
pub struct ControlPlane {
    dir: PathBuf,
    /// Components in start order.
    components: Vec<Guarded>,
    pub apiserver_url: String,
    pub kubeconfig: PathBuf,
    pub ca_pem: String,
    pub binaries: ControlPlaneBinaries,
    ca: CertificateAuthority,
    /// Time from the first process start to an apiserver answering /readyz.
    pub time_to_ready: Duration,
}

impl ControlPlane {
    /// Starts everything in `dir` (created if missing) and returns once the apiserver
    /// is ready and the controller-manager has created the `default` ServiceAccount.
    pub async fn start(dir: &Path, binaries: ControlPlaneBinaries) -> Result<Self> {
        Self::start_with(dir, binaries, true).await
    }

    /// Like [`ControlPlane::start`]; with `controllers` false only etcd and the
    /// apiserver run (benchmarks that load objects no controller should touch).
    pub async fn start_with(
        dir: &Path,
        binaries: ControlPlaneBinaries,
        controllers: bool,
    ) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki_dir = dir.join("pki");
        let logs = dir.join("logs");
        let (pki, ca) = Pki::generate(&pki_dir)?;
        let [etcd_port, etcd_peer_port, apiserver_port] = free_ports::<3>()?;
        let etcd_url = format!("https://127.0.0.1:{etcd_port}");
        let apiserver_url = format!("https://127.0.0.1:{apiserver_port}");
        let p = |path: &Path| path.display().to_string();

        let mut me = Self {
            dir: dir.to_path_buf(),
            components: Vec::new(),
            apiserver_url: apiserver_url.clone(),
            kubeconfig: dir.join("admin.kubeconfig"),
            ca_pem: pki.ca_pem.clone(),
            binaries,
            ca,
            time_to_ready: Duration::ZERO,
        };
        let started = Instant::now();

        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        me.spawn(
            "etcd",
            ProcessSpec::new(me.binaries.path("etcd"), logs.join("etcd.log")).args([
                "--name=posture-e2e".to_owned(),
                format!("--data-dir={}", p(&dir.join("etcd"))),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                // A single member: the peer listener carries no traffic but must exist.
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=posture-e2e={peer_url}"),
                format!("--cert-file={}", p(&pki.etcd_server.cert)),
                format!("--key-file={}", p(&pki.etcd_server.key)),
                format!("--trusted-ca-file={}", p(&pki.ca_cert)),
                "--client-cert-auth=true".to_owned(),
                // Throwaway data: durability costs time and buys nothing here.
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ]),
        )?;

        me.spawn(
            "kube-apiserver",
            ProcessSpec::new(
                me.binaries.path("kube-apiserver"),
                logs.join("kube-apiserver.log"),
            )
            .args([
                format!("--etcd-servers={etcd_url}"),
                format!("--etcd-cafile={}", p(&pki.ca_cert)),
                format!("--etcd-certfile={}", p(&pki.etcd_client.cert)),
                format!("--etcd-keyfile={}", p(&pki.etcd_client.key)),
                "--bind-address=127.0.0.1".to_owned(),
                "--advertise-address=127.0.0.1".to_owned(),
                format!("--secure-port={apiserver_port}"),
                format!("--cert-dir={}", p(&dir.join("apiserver"))),
                format!("--tls-cert-file={}", p(&pki.apiserver.cert)),
                format!("--tls-private-key-file={}", p(&pki.apiserver.key)),
                format!("--client-ca-file={}", p(&pki.ca_cert)),
                "--authorization-mode=Node,RBAC".to_owned(),
                format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                format!("--service-account-key-file={}", p(&pki.service_account_pub)),
                format!(
                    "--service-account-signing-key-file={}",
                    p(&pki.service_account_key)
                ),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                // The product's own tests create privileged workloads to find them.
                "--allow-privileged=true".to_owned(),
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,LimitRanger,\
                     DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,\
                     ValidatingAdmissionPolicy,ResourceQuota"
                    .to_owned(),
                "--profiling=false".to_owned(),
                // No kube-proxy here: webhooks and aggregated APIs behind a Service are
                // reached at the Service's endpoints (the test kubelet's pods, on
                // 127.0.0.1), as the Helm chart's webhook configuration expects.
                "--enable-aggregator-routing=true".to_owned(),
                "--v=1".to_owned(),
            ]),
        )?;
        me.write_admin_kubeconfig(&pki)?;
        let client = me.client().await?;
        me.wait_ready(&client, Duration::from_secs(90)).await?;
        me.time_to_ready = started.elapsed();
        if !controllers {
            return Ok(me);
        }

        let kubeconfig = format!("--kubeconfig={}", p(&me.kubeconfig));
        me.spawn(
            "kube-controller-manager",
            ProcessSpec::new(
                me.binaries.path("kube-controller-manager"),
                logs.join("kube-controller-manager.log"),
            )
            .args([
                kubeconfig.clone(),
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                format!(
                    "--service-account-private-key-file={}",
                    p(&pki.service_account_key)
                ),
                format!("--root-ca-file={}", p(&pki.ca_cert)),
                "--controllers=*".to_owned(),
                // Terminated pods of finished Jobs are garbage collected quickly.
                "--terminated-pod-gc-threshold=100".to_owned(),
                "--v=1".to_owned(),
            ]),
        )?;
        me.spawn(
            "kube-scheduler",
            ProcessSpec::new(
                me.binaries.path("kube-scheduler"),
                logs.join("kube-scheduler.log"),
            )
            .args([
                kubeconfig,
                "--leader-elect=false".to_owned(),
                "--secure-port=0".to_owned(),
                "--v=1".to_owned(),
            ]),
        )?;
        me.wait_controllers(&client, Duration::from_secs(60))
            .await?;
        Ok(me)
    }

    fn spawn(&mut self, name: &str, spec: ProcessSpec) -> Result<()> {
        let process = Guarded::spawn(name, &spec)?;
        self.components.push(process);
        Ok(())
    }

    fn write_admin_kubeconfig(&self, pki: &Pki) -> Result<()> {
        let read = |path: &Path| -> Result<String> {
            Ok(BASE64.encode(fs::read(path).with_context(|| path.display().to_string())?))
        };
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: posture-e2e
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: posture-e2e-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: posture-e2e
  context:
    cluster: posture-e2e
    user: posture-e2e-admin
    namespace: default
current-context: posture-e2e
",
            server = self.apiserver_url,
            ca = read(&pki.ca_cert)?,
            cert = read(&pki.admin.cert)?,
            key = read(&pki.admin.key)?,
        );
        fs::write(&self.kubeconfig, text)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.kubeconfig, fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// An admin client, bound to the caller's tokio runtime.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    async fn wait_ready(&mut self, client: &Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let request = http::Request::get("/readyz").body(Vec::new())?;
            let last = match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {timeout:?}: {last}\n{}",
                    self.log_tail("kube-apiserver", 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The controller-manager is working once it has created the `default`
    /// ServiceAccount; pods cannot be admitted before that.
    async fn wait_controllers(&mut self, client: &Client, timeout: Duration) -> Result<()> {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if accounts.get_opt("default").await?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-controller-manager created no default ServiceAccount within {timeout:?}\n{}",
                    self.log_tail("kube-controller-manager", 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails with the component's log tail when one has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        let dead = self.components.iter_mut().find_map(|c| match c.try_wait() {
            Ok(Some(status)) => Some((c.name().to_owned(), status)),
            _ => None,
        });
        if let Some((name, status)) = dead {
            return Err(anyhow!(
                "{name} exited with {status}\n{}",
                self.log_tail(&name, 40)
            ));
        }
        Ok(())
    }

    /// The last `lines` lines of a component's log.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let path = self.dir.join("logs").join(format!("{component}.log"));
        tail(&path, lines)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA that the apiserver trusts, to issue more certificates in tests.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Names and pids of the running components.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.components
            .iter()
            .map(|c| (c.name().to_owned(), c.pid()))
            .collect()
    }

    /// Stops every component, last started first.
    pub fn stop(&mut self) {
        while let Some(mut component) = self.components.pop() {
            component.stop();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The last `lines` lines of a file, or a note that it cannot be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            format!(
                "--- {} (last {} lines)\n{}",
                path.display(),
                all.len() - start,
                all[start..].join("\n")
            )
        }
        Err(e) => format!("--- {}: {e}", path.display()),
    }
}
