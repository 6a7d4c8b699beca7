//! AWS end to end on the real control plane and moto: a ScanPolicy with `cloud.aws` →
//! the operator creates a collector Job → the test kubelet runs `posture collect aws
//! --upload` as the policy's collector ServiceAccount against moto → the operator
//! authenticates the upload (TokenReview), stores the snapshot and evaluates it →
//! cloud Findings, the IRSA-mapped Deployment tagged HighlyPermissiveRole, the store
//! queryable through the RBAC-guarded endpoint; a broken snapshot is refused and the
//! good one stays; the webhook, fed by the operator, denies an IRSA mapping to an
//! administrator role.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use posture::net::HttpsClient;
use posture_e2e::binaries::{posture_binary, repo_root};
use posture_e2e::cluster::{TestCluster, shared};
use posture_e2e::moto::Moto;
use posture_e2e::pki::CertificateAuthority;
use posture_e2e::ports::free_ports;
use posture_e2e::process::{Guarded, ProcessSpec};
use posture_e2e::testing::{
    Registration, apply, eventually, eventually_explained, install_operator, start_webhook,
};
use serde_json::Value;

const LABEL: &str = "posture-e2e-aws";
const ACCOUNT: &str = "123456789012";

fn json(cluster: &TestCluster, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = cluster.kubectl_ok(&all, None).ok()?;
    serde_json::from_str(&out).ok()
}

fn token(cluster: &TestCluster, ns: &str, account: &str, dir: &Path) -> Result<std::path::PathBuf> {
    let token = cluster.kubectl_ok(&["create", "token", account, "-n", ns], None)?;
    let path = dir.join(format!("{account}.token"));
    std::fs::write(&path, token.trim())?;
    Ok(path)
}

fn query(api: &str, ca: &Path, token: &Path, sql: &str) -> std::process::Output {
    std::process::Command::new(posture_binary().unwrap())
        .args(["query", "--server", api, "--format", "json"])
        .arg("--ca")
        .arg(ca)
        .arg("--token-file")
        .arg(token)
        .arg(sql)
        .output()
        .unwrap()
}

fn print_logs_on_failure<'a>(
    cluster: &'static TestCluster,
    ns: &'a str,
    dir: &'a Path,
) -> impl Drop + 'a {
    struct Logs<'a>(&'static TestCluster, &'a str, &'a Path);
    impl Drop for Logs<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                for log in ["operator.log", "webhook/webhook.log"] {
                    eprintln!(
                        "--- {log}\n{}",
                        posture_e2e::controlplane::tail(&self.2.join(log), 80)
                    );
                }
                eprintln!("--- pods\n{}", self.0.pod_logs(self.1));
            }
        }
    }
    Logs(cluster, ns, dir)
}

#[test]
fn a_collector_job_uploads_the_account_and_the_cluster_inherits_its_risk() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("aws")?;
    let ns: &str = &ns;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let _logs = print_logs_on_failure(cluster, ns, dir);

    let moto = Moto::start()?;
    moto.seed(&[], 0)?;
    let kubeconfig = install_operator(cluster, ns, dir).context("installing CRDs and RBAC")?;
    let tls = dir.join("operator-tls");
    std::fs::create_dir_all(&tls)?;
    let ca = CertificateAuthority::new("posture-e2e-operator-api")?;
    let (cert, key) = ca.issue_server("posture-operator", &["127.0.0.1", "localhost"])?;
    std::fs::write(tls.join("ca.crt"), ca.pem())?;
    std::fs::write(tls.join("tls.crt"), cert)?;
    std::fs::write(tls.join("tls.key"), key)?;
    let ca_path = tls.join("ca.crt");
    let [metrics_port, api_port] = free_ports::<2>()?;
    let api = format!("https://127.0.0.1:{api_port}");

    let mut args = vec![
        "operator".to_owned(),
        "--leader-election=false".to_owned(),
        format!("--metrics-addr=127.0.0.1:{metrics_port}"),
        format!("--db={}", dir.join("posture.db").display()),
        format!("--api-addr=127.0.0.1:{api_port}"),
        format!("--tls-cert={}", tls.join("tls.crt").display()),
        format!("--tls-key={}", tls.join("tls.key").display()),
        format!("--api-url={api}"),
        format!("--api-ca={}", ca_path.display()),
        "--collector-image=posture:dev".to_owned(),
    ];
    for (name, value) in moto.env() {
        args.push(format!("--collector-env={name}={value}"));
    }
    let mut spec = ProcessSpec::new(posture_binary()?, dir.join("operator.log")).args(args);
    spec.env = vec![
        ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ("RUST_LOG".into(), "info".into()),
    ];
    spec.grace = Duration::from_secs(5);
    let _operator = Guarded::spawn("operator", &spec)?;

    // The estate: the demo's IRSA-mapped workloads, the collector's ServiceAccount, and
    // a policy that collects the demo account.
    let workloads = std::fs::read_to_string(repo_root().join("examples/aws/workloads.yaml"))?
        .replace("namespace: shop", &format!("namespace: {ns}"));
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&workloads))?;
    cluster.kubectl_ok(
        &["create", "serviceaccount", "posture-collector", "-n", ns],
        None,
    )?;
    for account in ["analyst", "nosy"] {
        cluster.kubectl_ok(&["create", "serviceaccount", account, "-n", ns], None)?;
    }
    let role = format!("posture-e2e-query-{ns}");
    // The documented virtual resource: verb query on inventory.posture.dev.
    cluster.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {role}}}\nrules:\n- apiGroups: [posture.dev]\n  resources: [inventory]\n  verbs: [query]\n"
        )),
    )?;
    cluster.kubectl_ok(
        &[
            "create",
            "clusterrolebinding",
            &role,
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={ns}:analyst"),
        ],
        None,
    )?;
    let policy = format!(
        "apiVersion: posture.dev/v1alpha1\nkind: ScanPolicy\nmetadata: {{name: cloud, namespace: {ns}}}\nspec:\n  scope: {{includeNamespaces: [{ns}]}}\n  cloud:\n    aws:\n      regions: [eu-west-1]\n      accounts: [{{id: \"{ACCOUNT}\"}}]\n      schedule: \"0 */6 * * *\"\n"
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&policy))?;

    // The Job runs on the test kubelet and completes.
    let job = eventually(
        Duration::from_secs(120),
        "a completed collector Job",
        || {
            let jobs = json(
                cluster,
                &["get", "jobs", "-n", ns, "-l", "posture.dev/collector=aws"],
            )?;
            let job = jobs["items"].as_array()?.first()?.clone();
            (job["status"]["succeeded"] == 1).then_some(job)
        },
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "ScanPolicy");
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "posture-collector"
    );

    let status = eventually(
        Duration::from_secs(60),
        "the accepted snapshot on the ScanPolicy",
        || {
            let p = json(cluster, &["get", "scanpolicy", "cloud", "-n", ns])?;
            let aws = p["status"]["cloud"]["aws"].clone();
            (aws["accepted"]["accounts"] == serde_json::json!([ACCOUNT])).then_some(aws)
        },
    );
    assert!(
        status["lastJob"]
            .as_str()
            .is_some_and(|j| j.starts_with("aws-cloud-")),
        "{status}"
    );

    // Cloud findings and the cluster's inheritance of the IRSA role's risk.
    let findings = || -> Vec<(String, String)> {
        json(cluster, &["get", "findings", "-n", ns])
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|f| {
                (
                    f["spec"]["rule"].as_str().unwrap_or_default().to_owned(),
                    f["spec"]["subject"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };
    // Findings are written one by one: wait for all of them, not for the first.
    let expected = [
        ("aws-irsa-privileged-role", "builder"),
        ("aws-iam-admin", "alice"),
        ("aws-iam-privilege-escalation", "ci-deployer"),
        ("aws-s3-public-bucket", "demo-public-assets"),
        ("aws-rds-public", "orders"),
    ];
    let found = eventually_explained(Duration::from_secs(60), "the AWS findings", || {
        let found = findings();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(rule, subject)| !found.iter().any(|(r, s)| r == rule && s.ends_with(subject)))
            .collect();
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(format!("{missing:?} missing from {found:?}"))
        }
    });
    assert!(
        !found
            .iter()
            .any(|(r, s)| r == "aws-irsa-privileged-role" && s == "web"),
        "shop/web's role is least privilege"
    );
    eventually(Duration::from_secs(60), "the Deployment tagged", || {
        let d = json(cluster, &["get", "deployment", "image-builder", "-n", ns])?;
        (d["metadata"]["labels"]["posture.dev/HighlyPermissiveRole"] == "true").then_some(())
    });

    // The store, through the RBAC-guarded query endpoint.
    let analyst = token(cluster, ns, "analyst", dir)?;
    let sql = format!(
        "SELECT r.to_id FROM relations r WHERE r.kind = 'assumes' AND r.from_id = 'k8s:ServiceAccount/{ns}/builder'"
    );
    let rows = eventually(
        Duration::from_secs(60),
        "the IRSA relation in the store",
        || {
            let out = query(&api, &ca_path, &analyst, &sql);
            let result: Value = serde_json::from_slice(&out.stdout).ok()?;
            let rows = result["rows"].as_array()?.clone();
            (!rows.is_empty()).then_some(rows)
        },
    );
    assert_eq!(
        rows[0][0],
        format!("aws:arn:aws:iam::{ACCOUNT}:role/shop-builder")
    );
    // The store is rewritten every 10 s while the evaluation changes.
    let tagged = format!(
        "SELECT a.name FROM assets a JOIN tags t ON t.asset_id = a.id WHERE t.tag = 'HighlyPermissiveRole' AND a.namespace = '{ns}'"
    );
    eventually(
        Duration::from_secs(60),
        "the Deployment's tag in the store",
        || {
            let out = query(&api, &ca_path, &analyst, &tagged);
            let result: Value = serde_json::from_slice(&out.stdout).ok()?;
            result["rows"]
                .as_array()?
                .iter()
                .any(|r| r[0] == "image-builder")
                .then_some(())
        },
    );
    let out = query(&api, &ca_path, &analyst, "DELETE FROM findings");
    assert!(!out.status.success(), "writes are refused");
    let nosy = token(cluster, ns, "nosy", dir)?;
    let out = query(&api, &ca_path, &nosy, "SELECT 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("403") && stderr.contains("may not query"),
        "{stderr}"
    );

    // A truncated snapshot from the collector's own identity is refused and changes
    // nothing; another identity may not upload at all.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = HttpsClient::new(Some(&ca_path), None)?;
    let collector = std::fs::read_to_string(token(cluster, ns, "posture-collector", dir)?)?;
    let url = format!("{api}/v1/ingest/aws?policy={ns}/cloud");
    let truncated = br#"{"schema": "posture.dev/aws-snapshot/v1", "collectedAt": "2026-12-04T06:00:00Z", "accounts": [{"accountId": "1234"#;
    let (code, text) = runtime.block_on(client.post_json(
        &url,
        &collector,
        truncated.to_vec(),
        Duration::from_secs(30),
    ))?;
    assert_eq!(code.as_u16(), 400, "{text}");
    let (code, text) = runtime.block_on(client.post_json(
        &url,
        std::fs::read_to_string(&analyst)?.trim(),
        b"{}".to_vec(),
        Duration::from_secs(30),
    ))?;
    assert_eq!(code.as_u16(), 403, "{text}");
    assert!(text.contains("posture-collector"), "{text}");
    let status = eventually(
        Duration::from_secs(30),
        "the refusal on the ScanPolicy",
        || {
            let p = json(cluster, &["get", "scanpolicy", "cloud", "-n", ns])?;
            let aws = p["status"]["cloud"]["aws"].clone();
            aws["rejected"]["reason"].as_str().is_some().then_some(aws)
        },
    );
    assert!(
        status["rejected"]["reason"]
            .as_str()
            .unwrap()
            .contains("previous one stays"),
        "{status}"
    );
    assert_eq!(
        status["accepted"]["accounts"],
        serde_json::json!([ACCOUNT]),
        "{status}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        findings()
            .iter()
            .any(|(r, s)| r == "aws-irsa-privileged-role" && s == "builder"),
        "the good snapshot stays in use"
    );

    // The webhook, fed by the operator, denies mapping a ServiceAccount to the
    // administrator role, and a Deployment switching to the mapped ServiceAccount.
    // The webhook lives in a namespace of its own: it never judges its own namespace.
    let system = cluster.namespace("aws-system")?;
    let webhook_dir = dir.join("webhook");
    std::fs::create_dir_all(&webhook_dir)?;
    let (webhook, name) = start_webhook(
        cluster,
        &system,
        &webhook_dir,
        LABEL,
        &[
            format!("--cloud-url={api}"),
            format!("--cloud-ca={}", ca_path.display()),
            "--cloud-refresh-seconds=2".to_owned(),
        ],
    )?;
    let _registration = Registration { cluster, name };
    let mapped = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: deployer\n  namespace: {ns}\n  labels: {{{LABEL}: \"true\"}}\n  annotations: {{eks.amazonaws.com/role-arn: \"arn:aws:iam::{ACCOUNT}:role/shop-builder\"}}\n"
    );
    let denial = eventually(Duration::from_secs(60), "the IRSA mapping denied", || {
        let (ok, stderr) = apply(cluster, &mapped, &["--dry-run=server"]);
        (!ok).then_some(stderr)
    });
    assert!(denial.contains("aws-irsa-privileged-role"), "{denial}");
    let (ok, stderr) = apply(cluster, &mapped, &[]);
    assert!(!ok && stderr.contains("shop-builder"), "{stderr}");
    let switching = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: switcher, namespace: {ns}, labels: {{{LABEL}: \"true\"}}}}\nspec:\n  selector: {{matchLabels: {{app: switcher}}}}\n  template:\n    metadata: {{labels: {{app: switcher}}}}\n    spec:\n      serviceAccountName: builder\n      containers: [{{name: app, image: \"registry.example/app:1.0\"}}]\n"
    );
    let (ok, stderr) = apply(cluster, &switching, &[]);
    assert!(
        !ok && stderr.contains("aws-irsa-privileged-role"),
        "{stderr}"
    );
    let least = mapped
        .replace("name: deployer", "name: reader")
        .replace("role/shop-builder", "role/shop-web");
    let (ok, stderr) = apply(cluster, &least, &[]);
    assert!(ok, "a least-privilege role is admitted: {stderr}");
    drop(webhook);
    Ok(())
}
