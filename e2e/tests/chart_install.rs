//! `helm install` of the chart into the local control plane, as a user would in a
//! cluster: the operator and webhook pods run on the test kubelet (the project image
//! is the freshly built binary; their TLS Secrets and emptyDirs are mounted where the
//! chart says), become ready, the operator writes Findings and tags for an estate that
//! existed before the install, and the webhook — registered through its Service, as
//! the chart renders it — denies a new risky change.
//!
//! A test binary of its own: it runs on its own control plane, so the chart's
//! cluster-wide webhook and ScanPolicy judge nothing of the other tests.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use posture_e2e::binaries::{ControlPlaneBinaries, repo_root};
use posture_e2e::cluster::shared;
use posture_e2e::ports::free_ports;
use posture_e2e::testing::{apply, eventually};
use serde_json::Value;

const ESTATE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example/web:1.0"}]
---
apiVersion: v1
kind: Service
metadata: {name: web-public, namespace: NS}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: quiet, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: quiet}}
  template:
    metadata: {labels: {app: quiet}}
    spec:
      containers: [{name: quiet, image: "registry.example/quiet:1.0"}]
"#;

#[test]
fn helm_install_runs_the_operator_and_the_webhook_and_they_do_their_jobs() -> Result<()> {
    let cluster = shared();
    let system = cluster.namespace("posture-system")?;
    let apps = cluster.namespace("shop")?;
    let _logs = cluster.logs_on_failure(&system);
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&ESTATE.replace("NS", &apps)))?;

    // All pods share the host's loopback: every port is a free one.
    let [
        operator_metrics,
        operator_api,
        webhook_port,
        webhook_metrics,
    ] = free_ports::<4>()?;
    let helm = ControlPlaneBinaries::locate()?.path("helm");
    let chart = repo_root().join("charts/posture");
    let sets = [
        "image.repository=posture".to_owned(),
        "image.tag=dev".to_owned(),
        "operator.replicas=1".to_owned(),
        format!("operator.metricsPort={operator_metrics}"),
        format!("operator.apiPort={operator_api}"),
        format!("operator.apiURL=https://127.0.0.1:{operator_api}"),
        "webhook.replicas=1".to_owned(),
        format!("webhook.port={webhook_port}"),
        format!("webhook.metricsPort={webhook_metrics}"),
        "tls.extraIPs={127.0.0.1}".to_owned(),
        "log.format=text".to_owned(),
    ];
    let mut install = Command::new(&helm);
    install
        .args(["install", "posture"])
        .arg(&chart)
        .args(["--namespace", &system, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .args(["--wait", "--timeout", "180s"]);
    for set in &sets {
        install.args(["--set", set]);
    }
    let out = install.output()?;
    assert!(
        out.status.success(),
        "helm install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let notes = String::from_utf8_lossy(&out.stdout);
    assert!(
        notes.contains("kubectl get findings -A"),
        "NOTES say what next: {notes}"
    );

    // Everything the chart renders exists, and both Deployments are available.
    let json = |args: &[&str]| -> Option<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&cluster.kubectl_ok(&all, None).ok()?).ok()
    };
    for (kind, name) in [
        ("deployment", "posture-operator"),
        ("deployment", "posture-webhook"),
        ("service", "posture-operator"),
        ("service", "posture-webhook"),
        ("serviceaccount", "posture-operator"),
        ("serviceaccount", "posture-webhook"),
        ("serviceaccount", "posture-collector"),
        ("secret", "posture-operator-tls"),
        ("secret", "posture-webhook-tls"),
        ("scanpolicy", "default"),
        ("networkpolicy", "posture-operator"),
        ("networkpolicy", "posture-webhook"),
        ("configmap", "posture-dashboard"),
        ("role", "posture-operator-leader-election"),
    ] {
        assert!(
            json(&["get", kind, name, "-n", &system]).is_some(),
            "{kind} {name} missing"
        );
    }
    for (kind, name) in [
        ("clusterrole", "posture-operator"),
        ("clusterrole", "posture-webhook"),
        ("validatingwebhookconfiguration", "posture"),
        ("crd", "findings.posture.dev"),
    ] {
        assert!(
            json(&["get", kind, name]).is_some(),
            "{kind} {name} missing"
        );
    }
    for name in ["posture-operator", "posture-webhook"] {
        let d = json(&["get", "deployment", name, "-n", &system]).context(name)?;
        assert_eq!(d["status"]["availableReplicas"], 1, "{name}: {d}");
    }
    assert!(
        json(&["get", "validatingwebhookconfiguration", "posture"]).is_some_and(|c| c["webhooks"]
            [0]["clientConfig"]["service"]["name"]
            == "posture-webhook"),
        "the webhook is registered through its Service"
    );

    // The operator evaluated the estate that was there before the install.
    let findings = eventually(
        Duration::from_secs(90),
        "Findings in the shop namespace",
        || {
            let list = json(&["get", "findings", "-n", &apps])?;
            let rules: Vec<String> = list["items"]
                .as_array()?
                .iter()
                .map(|f| f["spec"]["rule"].as_str().unwrap_or_default().to_owned())
                .collect();
            rules
                .iter()
                .any(|r| r == "public-loadbalancer")
                .then_some(rules)
        },
    );
    assert!(!findings.is_empty());
    eventually(Duration::from_secs(60), "web tagged isPublic", || {
        let d = json(&["get", "deployment", "web", "-n", &apps])?;
        (d["metadata"]["labels"]["posture.dev/isPublic"] == "true").then_some(())
    });
    let quiet = json(&["get", "deployment", "quiet", "-n", &apps]).context("quiet")?;
    assert!(
        quiet["metadata"]["labels"]
            .get("posture.dev/isPublic")
            .is_none(),
        "{quiet}"
    );

    // The webhook denies what would make quiet public.
    let exposing = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: quiet-public, namespace: {}}}\nspec: {{type: LoadBalancer, selector: {{app: quiet}}, ports: [{{port: 80}}]}}\n",
        &*apps
    );
    let denial = eventually(Duration::from_secs(60), "the webhook's denial", || {
        let (ok, stderr) = apply(cluster, &exposing, &[]);
        (!ok && stderr.contains("denied the request")).then_some(stderr)
    });
    assert!(denial.contains("public-loadbalancer"), "{denial}");
    Ok(())
}
