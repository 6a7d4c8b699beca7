//! Helpers the end-to-end tests share: waiting, plain HTTP on loopback, the webhook
//! started and registered as the product prints its configuration, the operator's
//! RBAC installed as it ships.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::binaries::{posture_binary, repo_root};
use crate::cluster::TestCluster;
use crate::pki::CertificateAuthority;
use crate::ports::free_ports;
use crate::process::{Guarded, ProcessSpec};

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    eventually_explained(timeout, what, || check().ok_or_else(String::new))
}

/// [`eventually`] for a check that says why it is not satisfied yet: the panic after
/// `timeout` shows the last reason (what is still missing, what was seen instead).
pub fn eventually_explained<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let why = match check() {
            Ok(value) => return value,
            Err(why) => why,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}{}{why}",
            if why.is_empty() { "" } else { ": " }
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Deletes the registration even when the test fails, so no later request waits on a
/// webhook that is gone.
pub struct Registration<'a> {
    pub cluster: &'a TestCluster,
    pub name: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(
            &[
                "delete",
                "validatingwebhookconfiguration",
                &self.name,
                "--ignore-not-found",
            ],
            None,
        );
    }
}

pub struct Webhook {
    pub process: Guarded,
    pub port: u16,
    pub metrics_port: u16,
    /// The CA that signed the serving certificate (and is the caBundle).
    pub ca: CertificateAuthority,
}

/// Starts `posture webhook` (with `extra` arguments) and registers it for objects
/// labelled `label: "true"`.
pub fn start_webhook(
    cluster: &TestCluster,
    system_ns: &str,
    dir: &Path,
    label: &str,
    extra: &[String],
) -> Result<(Webhook, String)> {
    let rbac = std::fs::read_to_string(repo_root().join("config/rbac/webhook.yaml"))?.replace(
        "name: posture-webhook\n",
        &format!("name: posture-webhook-{system_ns}\n"),
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&rbac))?;
    let kubeconfig = dir.join("webhook.kubeconfig");
    cluster.service_account_kubeconfig(system_ns, "posture-webhook", &kubeconfig)?;
    cluster.kubectl_ok(
        &[
            "create",
            "clusterrolebinding",
            &format!("posture-webhook-{system_ns}"),
            &format!("--clusterrole=posture-webhook-{system_ns}"),
            &format!("--serviceaccount={system_ns}:posture-webhook"),
        ],
        None,
    )?;

    let ca = CertificateAuthority::new("posture-e2e-webhook-ca")?;
    let (cert, key) = ca.issue_server("posture-webhook", &["127.0.0.1", "localhost"])?;
    std::fs::write(dir.join("ca.crt"), ca.pem())?;
    std::fs::write(dir.join("tls.crt"), cert)?;
    std::fs::write(dir.join("tls.key"), key)?;

    let [port, metrics_port] = free_ports::<2>()?;
    let mut spec = ProcessSpec::new(posture_binary()?, dir.join("webhook.log"))
        .args([
            "webhook".to_owned(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--tls-cert={}", dir.join("tls.crt").display()),
            format!("--tls-key={}", dir.join("tls.key").display()),
            format!("--kubeconfig={}", kubeconfig.display()),
        ])
        .args(extra.iter().cloned());
    spec.env = vec![("RUST_LOG".into(), "info".into())];
    spec.grace = Duration::from_secs(5);
    let process = Guarded::spawn("posture-webhook", &spec)?;
    eventually(Duration::from_secs(60), "the webhook's /readyz", || {
        http_get(metrics_port, "/readyz").filter(|(status, _)| *status == 200)
    });

    // The configuration the product prints, narrowed to this test's objects.
    let printed = std::process::Command::new(posture_binary()?)
        .args([
            "webhook",
            "--print-config",
            &format!("--config-name=posture-e2e-{system_ns}"),
            &format!("--service-namespace={system_ns}"),
            &format!("--url=https://127.0.0.1:{port}/validate"),
            &format!("--ca-bundle={}", dir.join("ca.crt").display()),
        ])
        .output()?;
    assert!(printed.status.success(), "{printed:?}");
    let mut config: Value = serde_yaml_ng::from_slice(&printed.stdout)?;
    let hook = &mut config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["sideEffects"], "NoneOnDryRun");
    hook["objectSelector"]["matchLabels"] = json!({ label: "true" });
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&config.to_string()))?;
    Ok((
        Webhook {
            process,
            port,
            metrics_port,
            ca,
        },
        format!("posture-e2e-{system_ns}"),
    ))
}

/// `kubectl apply -f -` of a manifest: (exit success, stderr).
pub fn apply(cluster: &TestCluster, manifest: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    let out: Output = cluster.kubectl(&args, Some(manifest)).expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Installs the CRDs and the operator's RBAC; returns a kubeconfig for its ServiceAccount.
pub fn install_operator(cluster: &TestCluster, ns: &str, dir: &Path) -> Result<PathBuf> {
    cluster.install_crds()?;
    let rbac = std::fs::read_to_string(repo_root().join("config/rbac/operator.yaml"))?.replace(
        "name: posture-operator\n",
        &format!("name: posture-operator-{ns}\n"),
    );
    cluster.kubectl_ok(&["apply", "-n", ns, "-f", "-"], Some(&rbac))?;
    let kubeconfig = dir.join("operator.kubeconfig");
    cluster.service_account_kubeconfig(ns, "posture-operator", &kubeconfig)?;
    cluster.kubectl_ok(
        &[
            "create",
            "clusterrolebinding",
            &format!("posture-operator-{ns}"),
            &format!("--clusterrole=posture-operator-{ns}"),
            &format!("--serviceaccount={ns}:posture-operator"),
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "create",
            "rolebinding",
            "posture-operator-leader-election",
            "-n",
            ns,
            "--role=posture-operator-leader-election",
            &format!("--serviceaccount={ns}:posture-operator"),
        ],
        None,
    )?;
    Ok(kubeconfig)
}
