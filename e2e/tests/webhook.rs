//! The admission webhook on the real control plane: `posture webhook` runs as a local
//! process with the RBAC it ships with (`config/rbac/webhook.yaml`), registered with the
//! ValidatingWebhookConfiguration that `posture webhook --print-config` prints, and
//! kubectl changes are denied, warned about or audited as the issue lists.
//!
//! The control plane is shared with other tests, so the registration here only matches
//! objects carrying this test's label; everything else is untouched.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use posture_e2e::cluster::shared;
use posture_e2e::testing::{Registration, apply, eventually, http_get, start_webhook};
use serde_json::Value;

const LABEL: &str = "posture-e2e-webhook";
/// The rotation test's own label: its webhook goes down with failurePolicy Fail, which
/// must not touch the objects of the test running beside it.
const ROTATION_LABEL: &str = "posture-e2e-webhook-rotation";

fn deployment(ns: &str, name: &str, account: &str, app: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}, labels: {{{LABEL}: "true"}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {app}}}}}
  template:
    metadata: {{labels: {{app: {app}}}}}
    spec:
      serviceAccountName: {account}
      containers: [{{name: app, image: "registry.example/web:1.0"}}]
"#
    )
}

fn service(ns: &str, name: &str, kind: &str, app: &str, port: u16, annotations: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}, labels: {{{LABEL}: "true"}}, annotations: {{{annotations}}}}}
spec: {{type: {kind}, selector: {{app: {app}}}, ports: [{{port: {port}}}]}}
"#
    )
}

fn scan_policy(ns: &str, mode: &str) -> String {
    format!(
        "apiVersion: posture.dev/v1alpha1\nkind: ScanPolicy\nmetadata: {{name: admission, namespace: {ns}}}\nspec:\n  scope: {{includeNamespaces: [{ns}]}}\n  admission: {{mode: {mode}}}\n"
    )
}

#[test]
fn the_webhook_denies_warns_and_audits_what_a_change_introduces() -> Result<()> {
    let cluster = shared();
    cluster.install_crds()?;
    let system = cluster.namespace("webhook-sys")?;
    let ns = cluster.namespace("webhook")?;
    let warn_ns = cluster.namespace("webhook-warn")?;
    let audit_ns = cluster.namespace("webhook-audit")?;
    let dir = tempfile::tempdir()?;
    let _logs = cluster.logs_on_failure(&ns);

    // The estate before the webhook: a Deployment, its ServiceAccount, and a second
    // ServiceAccount bound to a ClusterRole that can escalate and bind.
    let escalator = format!("escalator-{}", &*ns);
    let estate = format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: web, namespace: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: builder, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {escalator}}}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [escalate, bind]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: builder-escalates, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {escalator}}}
subjects: [{{kind: ServiceAccount, name: builder, namespace: {ns}}}]
---
{}---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: web, namespace: {warn_ns}}}
---
{}---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: web, namespace: {audit_ns}}}
---
{}"#,
        deployment(&ns, "web", "web", "web"),
        deployment(&warn_ns, "web", "web", "web"),
        deployment(&audit_ns, "web", "web", "web"),
        ns = &*ns,
        warn_ns = &*warn_ns,
        audit_ns = &*audit_ns,
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&estate))?;
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&scan_policy(&warn_ns, "Warn")))?;
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&scan_policy(&audit_ns, "Audit")),
    )?;

    let (webhook, name) = start_webhook(cluster, &system, dir.path(), LABEL, &[])?;
    let _registration = Registration { cluster, name };
    let show_log = || std::fs::read_to_string(webhook.process.log_path()).unwrap_or_default();

    // The API server picks the registration up within a moment.
    let privileged = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: debug, namespace: {ns}, labels: {{{LABEL}: "true"}}}}
spec:
  containers:
  - {{name: shell, image: "busybox:1.36", securityContext: {{privileged: true}}}}
"#,
        ns = &*ns
    );
    let denial = eventually(Duration::from_secs(30), "the webhook to be called", || {
        let (ok, stderr) = apply(cluster, &privileged, &["--dry-run=server"]);
        (!ok && stderr.contains("posture")).then_some(stderr)
    });
    assert!(denial.contains("privileged-container"), "{denial}");
    assert!(denial.contains("Fix:"), "{denial}");

    // A LoadBalancer selecting the existing Deployment.
    let (ok, stderr) = apply(
        cluster,
        &service(&ns, "web-lb", "LoadBalancer", "web", 443, ""),
        &[],
    );
    assert!(!ok, "LoadBalancer admitted:\n{stderr}\n{}", show_log());
    assert!(stderr.contains("public-loadbalancer"), "{stderr}");
    assert!(
        stderr.contains(&format!("Service {}/web-lb", &*ns)),
        "{stderr}"
    );

    // The same Service inside the cluster is fine.
    let (ok, stderr) = apply(
        cluster,
        &service(&ns, "web", "ClusterIP", "web", 80, ""),
        &[],
    );
    assert!(ok, "ClusterIP denied: {stderr}");

    // A NodePort on port 22.
    let (ok, stderr) = apply(
        cluster,
        &service(&ns, "ssh", "NodePort", "web", 22, ""),
        &[],
    );
    assert!(!ok && stderr.contains("public-nodeport"), "{stderr}");

    // cluster-admin for the ServiceAccount the running Deployment uses.
    let admin = format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: web-admin-{ns}, labels: {{{LABEL}: "true"}}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: web, namespace: {ns}}}]
"#,
        ns = &*ns
    );
    let (ok, stderr) = apply(cluster, &admin, &[]);
    assert!(!ok && stderr.contains("cluster-admin"), "{stderr}");

    // The Deployment switching to the ServiceAccount that can escalate and bind.
    let (ok, stderr) = apply(cluster, &deployment(&ns, "web", "builder", "web"), &[]);
    assert!(!ok, "switch admitted: {stderr}");
    assert!(stderr.contains("builder"), "{stderr}");

    // An unrelated update of the Deployment (more replicas) is not blocked.
    let scaled = deployment(&ns, "web", "web", "web").replace("replicas: 1", "replicas: 2");
    let (ok, stderr) = apply(cluster, &scaled, &[]);
    assert!(ok, "unrelated update denied: {stderr}");

    // A valid exception admits the LoadBalancer and is echoed as a warning.
    let excepted = service(
        &ns,
        "web-lb",
        "LoadBalancer",
        "web",
        443,
        "posture.dev/exception.public-loadbalancer: \"storefront is public by design; expires=2999-01-01\"",
    );
    let (ok, stderr) = apply(cluster, &excepted, &[]);
    assert!(ok, "exception not honoured: {stderr}");
    assert!(
        stderr.contains("Warning: posture: exception for public-loadbalancer"),
        "{stderr}"
    );

    // Warn mode: admitted, with the explanation printed by kubectl.
    let (ok, stderr) = apply(
        cluster,
        &service(&warn_ns, "web-lb", "LoadBalancer", "web", 443, ""),
        &[],
    );
    assert!(ok, "Warn mode denied: {stderr}");
    assert!(
        stderr.contains("Warning: posture: public-loadbalancer"),
        "{stderr}"
    );

    // Audit mode: admitted; a dry run leaves nothing behind, a real change a Finding.
    let audited = service(&audit_ns, "web-lb", "LoadBalancer", "web", 443, "");
    let (ok, stderr) = apply(cluster, &audited, &["--dry-run=server"]);
    assert!(ok, "Audit mode denied a dry run: {stderr}");
    let (ok, stderr) = apply(cluster, &audited, &[]);
    assert!(ok, "Audit mode denied: {stderr}");
    let finding = eventually(Duration::from_secs(20), "the audit Finding", || {
        let out = cluster
            .kubectl_ok(&["get", "findings", "-n", &audit_ns, "-o", "json"], None)
            .ok()?;
        let list: Value = serde_json::from_str(&out).ok()?;
        list["items"]
            .as_array()?
            .iter()
            .find(|f| f["spec"]["rule"] == "public-loadbalancer")
            .cloned()
    });
    assert_eq!(finding["status"]["state"], "Open", "{finding}");
    let findings = cluster.kubectl_ok(&["get", "findings", "-n", &audit_ns, "-o", "name"], None)?;
    assert_eq!(
        findings
            .lines()
            .filter(|l| l.contains("public-loadbalancer"))
            .count(),
        1,
        "the dry run must not have recorded anything else: {findings}"
    );

    // Malformed requests get a clear 400, over HTTP/2 too.
    let curl = |extra: &[&str]| -> Result<String> {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(dir.path().join("ca.crt"))
            .args(extra)
            .arg(format!("https://127.0.0.1:{}/validate", webhook.port))
            .output()
            .context("curl")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let answer = curl(&[
        "--http2",
        "-d",
        "garbage",
        "-w",
        "\n%{http_code} %{http_version}",
    ])?;
    assert!(answer.contains("not an AdmissionReview"), "{answer}");
    assert!(answer.trim_end().ends_with("400 2"), "{answer}");

    // Metrics by kind, decision and rule.
    let (_, metrics) = http_get(webhook.metrics_port, "/metrics").context("metrics")?;
    for expected in [
        r#"posture_admission_requests_total{kind="Service",decision="denied"}"#,
        r#"posture_admission_rule_decisions_total{rule="public-loadbalancer",action="audit"}"#,
        r#"posture_admission_rule_decisions_total{rule="public-loadbalancer",action="warn"}"#,
        "posture_admission_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    Ok(())
}

/// The leaf certificate the webhook serves, read with a TLS handshake that trusts only
/// the test CA (DER).
fn served_certificate(port: u16, ca_pem: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("127.0.0.1")?,
    )?;
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no certificate served")?;
    Ok(leaf.as_ref().to_vec())
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .as_ref()
        .to_vec()
}

/// Replaces a file in one step, as a Secret volume update does.
fn replace(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[test]
fn the_webhook_rotates_its_certificate_and_failure_policy_ignore_admits_while_it_is_down()
-> Result<()> {
    let cluster = shared();
    cluster.install_crds()?;
    let system = cluster.namespace("webhook-rot-sys")?;
    let ns = cluster.namespace("webhook-rot")?;
    let dir = tempfile::tempdir()?;
    let (mut webhook, name) = start_webhook(cluster, &system, dir.path(), ROTATION_LABEL, &[])?;
    let _registration = Registration {
        cluster,
        name: name.clone(),
    };
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt"))?;
    let first = std::fs::read_to_string(dir.path().join("tls.crt"))?;
    assert_eq!(served_certificate(webhook.port, &ca_pem)?, der(&first));

    // A new pair from the same CA (what cert-manager does before expiry) is served
    // without a restart.
    let (cert2, key2) = webhook
        .ca
        .issue_server("posture-webhook", &["127.0.0.1", "localhost"])?;
    assert_ne!(der(&cert2), der(&first));
    replace(&dir.path().join("tls.key"), &key2)?;
    replace(&dir.path().join("tls.crt"), &cert2)?;
    eventually(Duration::from_secs(20), "the rotated certificate", || {
        let served = served_certificate(webhook.port, &ca_pem).ok()?;
        (served == der(&cert2)).then_some(())
    });

    // A broken pair is refused and the rotated one stays in service.
    replace(
        &dir.path().join("tls.key"),
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )?;
    let log = eventually(Duration::from_secs(20), "the refusal in the log", || {
        let log = std::fs::read_to_string(webhook.process.log_path()).ok()?;
        log.contains("refused, still serving the previous pair")
            .then_some(log)
    });
    assert_eq!(
        served_certificate(webhook.port, &ca_pem)?,
        der(&cert2),
        "{log}"
    );

    // Still judging, through the new certificate.
    let lb = service(&ns, "web-lb", "LoadBalancer", "web", 443, "").replace(
        &format!("{LABEL}: \"true\""),
        &format!("{ROTATION_LABEL}: \"true\""),
    );
    let (ok, stderr) = eventually(Duration::from_secs(20), "a denial", || {
        let (ok, stderr) = apply(cluster, &lb, &[]);
        stderr.contains("posture").then_some((ok, stderr))
    });
    assert!(!ok && stderr.contains("public-loadbalancer"), "{stderr}");

    // Down with failurePolicy Fail: changes are refused (the cluster is protected)...
    webhook.process.stop();
    let account = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: {}, labels: {{{ROTATION_LABEL}: \"true\"}}}}\n",
        &*ns
    );
    let (ok, stderr) = apply(cluster, &account, &[]);
    assert!(!ok && stderr.contains("failed calling webhook"), "{stderr}");
    // ...and with failurePolicy Ignore (audit-only installs) they are admitted.
    cluster.kubectl_ok(
        &[
            "patch",
            "validatingwebhookconfiguration",
            &name,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
        ],
        None,
    )?;
    let admitted = eventually(Duration::from_secs(20), "admission with Ignore", || {
        let (ok, stderr) = apply(cluster, &account, &[]);
        ok.then_some(stderr)
    });
    assert!(!admitted.contains("denied"), "{admitted}");
    Ok(())
}
