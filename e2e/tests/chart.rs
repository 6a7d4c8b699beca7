//! The Helm chart (`charts/posture`) with every value set under
//! `fixtures/chart/`: it lints, it renders, its webhook registration is the one
//! `posture webhook --print-config` prints, its CRDs are the generated ones, its schema
//! rejects typos, it passes its own rules (`posture scan --fail-on medium`), its
//! certificates serve TLS for the Service names, the API server accepts what it renders
//! (server-side dry-run), and `helm upgrade` keeps the certificates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use posture_e2e::binaries::{ControlPlaneBinaries, posture_binary, repo_root};
use posture_e2e::cluster::{TestCluster, shared};
use serde::Deserialize;
use serde_json::Value;

/// The release name of the offline renders: its fullname is "posture", the names
/// `posture webhook --print-config` defaults to.
const RELEASE: &str = "posture";
const NAMESPACE: &str = "posture-system";

fn chart() -> PathBuf {
    repo_root().join("charts/posture")
}

fn binaries() -> ControlPlaneBinaries {
    ControlPlaneBinaries::locate().expect("control-plane binaries (make controlplane)")
}

fn helm() -> PathBuf {
    binaries().path("helm")
}

/// The Kubernetes version the binaries were built for ("1.35.4"). helm built from its
/// module reports v1.20 without a cluster, below the chart's kubeVersion.
fn kube_version() -> String {
    binaries()
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().trim_start_matches('v').to_owned())
        .filter(|v| v.starts_with("1."))
        .unwrap_or_else(|| "1.35.4".into())
}

/// Every value set: (file name, path), in name order.
fn value_sets() -> Vec<(String, PathBuf)> {
    let dir = repo_root().join("e2e/tests/fixtures/chart");
    let mut sets: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    sets.sort();
    assert!(sets.len() >= 5, "value sets in {}", dir.display());
    sets
}

/// The values a set gives (not merged with the chart's defaults).
fn values_of(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("value set");
    serde_yaml_ng::from_str(&text).expect("value set is YAML")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `helm template` of the chart; returns the output whatever the exit.
fn helm_template(release: &str, namespace: &str, values: &Path, sets: &[&str]) -> Output {
    let mut cmd = Command::new(helm());
    cmd.args(["template", release])
        .arg(chart())
        .args(["--namespace", namespace, "--kube-version", &kube_version()])
        .arg("--values")
        .arg(values);
    for set in sets {
        cmd.args(["--set", set]);
    }
    cmd.output().expect("helm runs")
}

fn render(namespace: &str, values: &Path, sets: &[&str]) -> Result<String> {
    let out = helm_template(RELEASE, namespace, values, sets);
    ensure!(
        out.status.success(),
        "helm template -f {} {sets:?} failed: {}",
        values.display(),
        text(&out)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The YAML documents of a multi-document stream, without the empty ones.
fn documents(yaml: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(docs: &[Value], kind: &str) -> usize {
    docs.iter().filter(|d| d["kind"] == kind).count()
}

/// `posture <args>` with `stdin`; returns the output whatever the exit.
fn posture(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(posture_binary().expect("posture built"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("posture runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn base64_decode(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("a base64 string"))
        .expect("valid base64")
}

/// A full TLS handshake in memory: a server with `cert`/`key`, a client that trusts
/// only `ca` and asks for `name`. Proves the key matches the certificate, the
/// certificate chains to the CA, and it is valid for the name.
fn handshake(cert: &[u8], key: &[u8], ca: &[u8], name: &str) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConnection, Connection, ServerConnection};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key).context("the private key")?;
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca) {
        roots.add(ca?)?;
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut client = Connection::Client(ClientConnection::new(
        Arc::new(client),
        ServerName::try_from(name.to_owned())?,
    )?);
    let mut server = Connection::Server(ServerConnection::new(Arc::new(server))?);
    fn pump(from: &mut Connection, to: &mut Connection) -> Result<()> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes)?;
        }
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            to.read_tls(&mut rest)?;
            to.process_new_packets()?;
        }
        Ok(())
    }
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        pump(&mut client, &mut server)?;
        pump(&mut server, &mut client)?;
    }
    bail!("the TLS handshake did not finish")
}

#[test]
fn the_chart_lints_with_every_value_set() {
    for (name, path) in value_sets() {
        let out = Command::new(helm())
            .args(["lint", "--strict"])
            .arg(chart())
            .args(["--kube-version", &kube_version(), "--values"])
            .arg(&path)
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "helm lint with {name}:\n{}",
            text(&out)
        );
    }
}

#[test]
fn the_chart_ships_the_generated_crds() {
    let chart_crds = std::fs::read(chart().join("crds/posture.dev.yaml")).expect("chart CRDs");
    let repo_crds = std::fs::read(repo_root().join("crds/posture.dev.yaml")).expect("repo CRDs");
    assert!(
        chart_crds == repo_crds,
        "charts/posture/crds/posture.dev.yaml differs from crds/posture.dev.yaml: \
         cp crds/posture.dev.yaml charts/posture/crds/"
    );
}

/// The rendered ValidatingWebhookConfiguration is the one `posture webhook
/// --print-config` prints for the same settings (rules, selectors, side effects, review
/// versions, match and failure policy, timeout, client config), apart from caBundle.
#[test]
fn the_webhook_registration_is_the_one_print_config_prints() -> Result<()> {
    for (name, path) in value_sets() {
        let values = values_of(&path);
        let docs = documents(&render(NAMESPACE, &path, &[])?)?;
        let vwc = find(&docs, "ValidatingWebhookConfiguration", RELEASE)
            .with_context(|| format!("{name}: no ValidatingWebhookConfiguration"))?;

        let mode = values
            .pointer("/admission/defaultMode")
            .and_then(Value::as_str)
            .unwrap_or("enforce");
        let mut args: Vec<String> = [
            "webhook",
            "--print-config",
            "--config-name",
            RELEASE,
            "--service-name",
            "posture-webhook",
            "--service-namespace",
            NAMESPACE,
            "--default-mode",
            mode,
        ]
        .map(String::from)
        .to_vec();
        if let Some(policy) = values
            .pointer("/admission/failurePolicy")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            args.extend(["--failure-policy".into(), policy.to_lowercase()]);
        }
        if let Some(timeout) = values.pointer("/admission/timeoutSeconds") {
            args.extend(["--timeout-seconds".into(), timeout.to_string()]);
        }
        if let Some(url) = values
            .pointer("/admission/url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            args.extend(["--url".into(), url.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = posture(&args, "");
        ensure!(out.status.success(), "posture {args:?}: {}", text(&out));
        let printed = documents(&String::from_utf8(out.stdout)?)?
            .pop()
            .context("print-config printed nothing")?;

        let mut ours = vwc["webhooks"].clone();
        let bundle = ours[0]["clientConfig"]
            .as_object_mut()
            .context("clientConfig")?
            .remove("caBundle");
        assert_eq!(
            ours,
            printed["webhooks"],
            "{name}: the chart's webhook differs from `posture {}`",
            args.join(" ")
        );
        for (key, value) in printed["metadata"]["labels"].as_object().unwrap() {
            assert_eq!(
                &vwc["metadata"]["labels"][key], value,
                "{name}: label {key}"
            );
        }

        // The caBundle: injected by the chart (tls.mode=helm) or by cert-manager.
        let annotation = &vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
        if values.pointer("/tls/mode").and_then(Value::as_str) == Some("certManager") {
            assert!(
                bundle.is_none(),
                "{name}: caBundle is cert-manager's to inject"
            );
            assert_eq!(
                annotation,
                &format!("{NAMESPACE}/posture-webhook"),
                "{name}"
            );
            let certificate = find(&docs, "Certificate", "posture-webhook")
                .with_context(|| format!("{name}: no Certificate posture-webhook"))?;
            assert_eq!(certificate["spec"]["secretName"], "posture-webhook-tls");
        } else {
            let bundle = bundle.with_context(|| format!("{name}: no caBundle"))?;
            assert!(annotation.is_null(), "{name}: {annotation}");
            for secret in ["posture-webhook-tls", "posture-operator-tls"] {
                let secret = find(&docs, "Secret", secret)
                    .with_context(|| format!("{name}: no Secret {secret}"))?;
                assert_eq!(secret["data"]["ca.crt"], bundle, "{name}: one CA for both");
            }
        }
    }
    Ok(())
}

/// With tls.mode=helm each serving certificate, its key and the caBundle make a working
/// TLS server for every name its clients use: the Service names, and the extra names
/// and addresses of the value set.
#[test]
fn generated_certificates_serve_tls_for_the_service_names() -> Result<()> {
    for (name, path) in value_sets() {
        let values = values_of(&path);
        if values.pointer("/tls/mode").and_then(Value::as_str) == Some("certManager") {
            continue;
        }
        let docs = documents(&render(NAMESPACE, &path, &[])?)?;
        let vwc = find(&docs, "ValidatingWebhookConfiguration", RELEASE).context("webhook")?;
        let ca = base64_decode(&vwc["webhooks"][0]["clientConfig"]["caBundle"]);
        let extra: Vec<String> = ["/tls/extraDNSNames", "/tls/extraIPs"]
            .iter()
            .filter_map(|p| values.pointer(p).and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        for service in ["posture-webhook", "posture-operator"] {
            let secret = find(&docs, "Secret", &format!("{service}-tls")).context("Secret")?;
            assert_eq!(secret["type"], "kubernetes.io/tls");
            let cert = base64_decode(&secret["data"]["tls.crt"]);
            let key = base64_decode(&secret["data"]["tls.key"]);
            let mut names = vec![
                service.to_owned(),
                format!("{service}.{NAMESPACE}"),
                format!("{service}.{NAMESPACE}.svc"),
                format!("{service}.{NAMESPACE}.svc.cluster.local"),
            ];
            names.extend(extra.iter().cloned());
            for host in &names {
                handshake(&cert, &key, &ca, host)
                    .with_context(|| format!("{name}: {service} as {host}"))?;
            }
            assert!(
                handshake(&cert, &key, &ca, "elsewhere.example").is_err(),
                "{name}: {service}'s certificate is valid for a name it was not made for"
            );
        }
    }
    Ok(())
}

#[test]
fn the_schema_rejects_typos_and_values_outside_their_enums() -> Result<()> {
    let defaults = repo_root().join("e2e/tests/fixtures/chart/default.yaml");
    for (sets, expected) in [
        (&["admision.defaultMode=x"][..], "admision"),
        (&["admission.defaultMode=block"][..], "defaultMode"),
        (&["admission.failurePolicy=Sometimes"][..], "failurePolicy"),
        (&["tls.mode=selfSigned"][..], "mode"),
        (&["webhook.replica=3"][..], "replica"),
        (&["aws.accounts[0].id=1234"][..], "id"),
        (&["admission.timeoutSeconds=60"][..], "timeoutSeconds"),
        // Not the schema but the template: two writers without a leader.
        (
            &["operator.replicas=2", "operator.leaderElection=false"][..],
            "leaderElection",
        ),
    ] {
        let out = helm_template(RELEASE, NAMESPACE, &defaults, sets);
        assert!(
            !out.status.success(),
            "helm template --set {sets:?} should fail"
        );
        let message = text(&out);
        assert!(
            message.contains(expected),
            "--set {sets:?}: the error should name {expected}: {message}"
        );
    }
    // Valid values of the same keys render, and the failurePolicy follows the mode.
    for (mode, policy) in [
        ("enforce", "Fail"),
        ("warn", "Ignore"),
        ("audit", "Ignore"),
        ("off", "Ignore"),
    ] {
        let docs = documents(&render(
            NAMESPACE,
            &defaults,
            &[&format!("admission.defaultMode={mode}")],
        )?)?;
        let vwc = find(&docs, "ValidatingWebhookConfiguration", RELEASE).context("webhook")?;
        assert_eq!(vwc["webhooks"][0]["failurePolicy"], policy, "{mode}");
    }
    let docs = documents(&render(
        NAMESPACE,
        &defaults,
        &["operator.replicas=1", "operator.leaderElection=false"],
    )?)?;
    let operator = find(&docs, "Deployment", "posture-operator").context("operator")?;
    let args = operator["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--leader-election=false"), "{args}");
    assert_eq!(kinds(&docs, "PodDisruptionBudget"), 1, "only the webhook's");
    Ok(())
}

/// What the chart deploys passes the rules it deploys: nothing at Medium or above.
#[test]
fn the_chart_passes_its_own_rules() -> Result<()> {
    for (name, path) in value_sets() {
        let manifests = render(NAMESPACE, &path, &[])?;
        let out = posture(
            &["scan", "-", "--format", "json", "--fail-on", "medium"],
            &manifests,
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{name}: scan output: {}", text(&out)))?;
        assert_eq!(
            report["errors"].as_array().map(Vec::len),
            Some(0),
            "{name}: posture scan could not read the chart: {report}"
        );
        let serious: Vec<String> = report["findings"]
            .as_array()
            .context("findings")?
            .iter()
            .filter(|f| ["Critical", "High", "Medium"].contains(&f["severity"].as_str().unwrap()))
            .map(|f| format!("{} {}: {}", f["severity"], f["rule"], f["message"]))
            .collect();
        assert!(serious.is_empty(), "{name}: {serious:#?}");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out));
    }
    Ok(())
}

/// The contract between the chart and the binary: the flags the chart passes, the
/// ports it probes and the defaults it relies on.
#[test]
fn the_pods_run_with_the_flags_of_the_contract() -> Result<()> {
    let defaults = repo_root().join("e2e/tests/fixtures/chart/default.yaml");
    let docs = documents(&render(NAMESPACE, &defaults, &[])?)?;
    let container = |deployment: &str| -> Value {
        find(&docs, "Deployment", deployment).expect(deployment)["spec"]["template"]["spec"]
            ["containers"][0]
            .clone()
    };
    let args = |c: &Value| -> Vec<String> {
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let api_url = format!("--api-url=https://posture-operator.{NAMESPACE}.svc:8443");
    let cloud_url = format!("--cloud-url=https://posture-operator.{NAMESPACE}.svc:8443");

    let operator = container("posture-operator");
    let operator_args = args(&operator);
    for expected in [
        "operator",
        "--metrics-addr=0.0.0.0:8080",
        "--api-addr=0.0.0.0:8443",
        "--tls-cert=/tls/tls.crt",
        "--tls-key=/tls/tls.key",
        api_url.as_str(),
        "--api-ca=/tls/ca.crt",
        "--db=/var/lib/posture/posture.db",
        "--collector-image=ghcr.io/posture-dev/posture:0.1.0",
        "--leader-election=true",
        "--lease-name=posture-operator",
    ] {
        assert!(
            operator_args.iter().any(|a| a == expected),
            "operator: {expected} missing from {operator_args:?}"
        );
    }
    let webhook = container("posture-webhook");
    let webhook_args = args(&webhook);
    for expected in [
        "webhook",
        "--listen=0.0.0.0:9443",
        "--tls-cert=/tls/tls.crt",
        "--tls-key=/tls/tls.key",
        "--metrics-addr=0.0.0.0:8081",
        "--default-mode=enforce",
        cloud_url.as_str(),
        "--cloud-ca=/tls/ca.crt",
    ] {
        assert!(
            webhook_args.iter().any(|a| a == expected),
            "webhook: {expected} missing from {webhook_args:?}"
        );
    }
    for c in [&operator, &webhook] {
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
        let env = c["env"].to_string();
        assert!(
            env.contains("POD_NAMESPACE") && env.contains("HOSTNAME"),
            "{env}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    }

    // Every flag the chart passes is one the binary knows.
    for (subcommand, chart_args) in [("operator", &operator_args), ("webhook", &webhook_args)] {
        let out = posture(&[subcommand, "--help"], "");
        let help = text(&out);
        for flag in chart_args.iter().filter_map(|a| a.strip_prefix("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("--{flag} ")) || help.contains(&format!("--{flag}\n")),
                "`posture {subcommand}` does not know --{flag}, which the chart passes"
            );
        }
    }
    Ok(())
}

/// Documents whose API the cluster does not serve (cert-manager, Prometheus Operator)
/// are left out of the dry-run; anything else missing fails the test.
fn served_documents(cluster: &TestCluster, yaml: &str) -> Result<(String, Vec<String>)> {
    let served = cluster.kubectl_ok(&["api-versions"], None)?;
    let served: Vec<&str> = served.lines().collect();
    let mut kept = String::new();
    let mut skipped = Vec::new();
    for doc in yaml.split("\n---\n") {
        let Some(value) = documents(doc)?.pop() else {
            continue;
        };
        let api = value["apiVersion"].as_str().unwrap_or_default();
        if served.contains(&api) {
            kept.push_str("---\n");
            kept.push_str(doc.trim_start_matches("---\n"));
            kept.push('\n');
            continue;
        }
        ensure!(
            api.starts_with("cert-manager.io/") || api.starts_with("monitoring.coreos.com/"),
            "the chart renders {api}, which the API server does not serve"
        );
        skipped.push(format!("{}/{}", value["kind"], value["metadata"]["name"]));
    }
    Ok((kept, skipped))
}

#[test]
fn the_api_server_accepts_what_the_chart_renders() -> Result<()> {
    let cluster = shared();
    cluster.install_crds()?;
    let ns = cluster.namespace("chart")?;
    for (name, path) in value_sets() {
        let manifests = render(&ns, &path, &[])?;
        let (manifests, skipped) = served_documents(cluster, &manifests)?;
        if !skipped.is_empty() {
            eprintln!("{name}: not served by the test cluster, left out: {skipped:?}");
        }
        let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&manifests))?;
        assert!(
            out.status.success(),
            "{name}: server-side dry-run rejected the chart:\n{}",
            text(&out)
        );
    }
    Ok(())
}

/// Uninstalls the release even when the test fails (its ClusterRoles outlive the
/// namespace).
struct Release<'a> {
    cluster: &'a TestCluster,
    name: String,
    namespace: String,
}

impl Release<'_> {
    fn helm(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(self.cluster.helm.clone().unwrap_or_else(helm))
            .args(args)
            .args(["--namespace", &self.namespace, "--kubeconfig"])
            .arg(&self.cluster.kubeconfig)
            .output()?;
        ensure!(out.status.success(), "helm {args:?}: {}", text(&out));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn secret(&self, name: &str, key: &str) -> Result<String> {
        self.cluster.kubectl_ok(
            &[
                "get",
                "secret",
                name,
                "-n",
                &self.namespace,
                "-o",
                &format!("jsonpath={{.data.{}}}", key.replace('.', "\\.")),
            ],
            None,
        )
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = self.helm(&["uninstall", &self.name.clone()]);
    }
}

/// `lookup` keeps the certificates across `helm upgrade` (the API server keeps trusting
/// the same CA, the pods keep serving the same certificates) until the names change.
#[test]
fn helm_upgrade_keeps_the_certificates_until_the_names_change() -> Result<()> {
    let cluster = shared();
    cluster.install_crds()?;
    let ns = cluster.namespace("chart-upgrade")?;
    let release = Release {
        cluster,
        name: "chart-tls".into(),
        namespace: ns.to_string(),
    };
    let chart = chart().display().to_string();
    // Inert pods (the test kubelet runs only the posture image) and no webhook
    // registration, so the release changes nothing else in the shared cluster.
    let base = [
        "--set",
        "image.repository=registry.invalid/inert",
        "--set",
        "webhook.enabled=false",
    ];
    let install = |extra: &[&str]| -> Result<String> {
        let mut args = vec!["upgrade", "--install", "chart-tls", chart.as_str()];
        args.extend(base);
        args.extend(extra.iter().copied());
        release.helm(&args)
    };
    let secret = "chart-tls-posture-operator-tls";

    install(&[])?;
    let ca = release.secret(secret, "ca.crt")?;
    let cert = release.secret(secret, "tls.crt")?;
    ensure!(
        !ca.is_empty() && !cert.is_empty(),
        "the Secret has no certificate"
    );

    install(&["--set", "log.level=debug"])?;
    assert_eq!(
        release.secret(secret, "ca.crt")?,
        ca,
        "the CA changed on upgrade"
    );
    assert_eq!(
        release.secret(secret, "tls.crt")?,
        cert,
        "the certificate changed on upgrade"
    );

    install(&["--set", "tls.extraDNSNames={posture.example.test}"])?;
    let new_ca = release.secret(secret, "ca.crt")?;
    let new_cert = release.secret(secret, "tls.crt")?;
    assert_ne!(new_cert, cert, "a new name needs a new certificate");
    let decode = |b: &str| base64::engine::general_purpose::STANDARD.decode(b.trim());
    handshake(
        &decode(&new_cert)?,
        &decode(&release.secret(secret, "tls.key")?)?,
        &decode(&new_ca)?,
        "posture.example.test",
    )?;
    let webhook_ca = release.secret("chart-tls-posture-webhook-tls", "ca.crt")?;
    assert_eq!(webhook_ca, new_ca, "both Secrets carry the same CA");
    Ok(())
}
