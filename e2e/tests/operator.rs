//! The operator on the real control plane: Findings for an estate (checked through
//! `kubectl get findings`), tags on the right workloads, resolution when a risk goes
//! away, no duplicates across restarts, and leader fail-over. The operator runs as two
//! local processes with a ServiceAccount token bound to `config/rbac/operator.yaml`,
//! so its RBAC is the one it ships with.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use posture_e2e::binaries::{posture_binary, repo_root};
use posture_e2e::cluster::{TestCluster, TestNamespace, shared};
use posture_e2e::ports::free_ports;
use posture_e2e::process::{Guarded, ProcessSpec};
use posture_e2e::testing::{eventually, install_operator};

const LEASE_SECONDS: u64 = 6;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("e2e/tests/fixtures").join(name)).expect("fixture")
}

fn start_operator(kubeconfig: &Path, ns: &str, identity: &str, dir: &Path) -> Result<Guarded> {
    start_operator_with(kubeconfig, ns, identity, dir, &[])
}

fn start_operator_with(
    kubeconfig: &Path,
    ns: &str,
    identity: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<Guarded> {
    let [port] = free_ports::<1>()?;
    let mut spec = ProcessSpec::new(posture_binary()?, dir.join(format!("{identity}.log")))
        .args([
            "operator".to_owned(),
            format!("--metrics-addr=127.0.0.1:{port}"),
            format!("--lease-namespace={ns}"),
            format!("--identity={identity}"),
            format!("--lease-duration={LEASE_SECONDS}"),
            format!("--db={}", dir.join(format!("{identity}.db")).display()),
        ])
        .args(extra.iter().copied());
    spec.env = vec![
        ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ("RUST_LOG".into(), "info".into()),
    ];
    spec.grace = Duration::from_secs(5);
    Guarded::spawn(identity, &spec)
}

/// `kubectl get findings -n NS` as (rule, subject, state) rows, checking the columns.
fn findings(cluster: &TestCluster, ns: &str) -> Vec<(String, String, String)> {
    let out = cluster
        .kubectl_ok(&["get", "findings", "-n", ns], None)
        .unwrap_or_default();
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        ["NAME", "SEVERITY", "RULE", "SUBJECT", "STATE", "AGE"],
        "{out}"
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[2].to_owned(), c[3].to_owned(), c[4].to_owned())
        })
        .collect()
}

fn finding_names(cluster: &TestCluster, ns: &str) -> BTreeSet<String> {
    cluster
        .kubectl_ok(
            &[
                "get",
                "findings",
                "-n",
                ns,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
            None,
        )
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn labels(cluster: &TestCluster, ns: &str, object: &str) -> String {
    cluster
        .kubectl_ok(
            &["get", object, "-n", ns, "-o", "jsonpath={.metadata.labels}"],
            None,
        )
        .unwrap_or_default()
}

fn has(rows: &[(String, String, String)], rule: &str, subject: &str, state: &str) -> bool {
    rows.iter()
        .any(|(r, s, st)| r == rule && s == subject && st == state)
}

fn leader(cluster: &TestCluster, ns: &str) -> Option<String> {
    cluster
        .kubectl_ok(
            &[
                "get",
                "lease",
                "posture-operator",
                "-n",
                ns,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .ok()
        .filter(|h| !h.is_empty())
}

fn print_logs_on_failure(dir: &Path) -> impl Drop + '_ {
    struct Logs<'a>(&'a Path);
    impl Drop for Logs<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                for name in ["replica-a", "replica-b", "replica-c"] {
                    eprintln!(
                        "{}",
                        posture_e2e::controlplane::tail(&self.0.join(format!("{name}.log")), 60)
                    );
                }
            }
        }
    }
    Logs(dir)
}

#[test]
fn operator_reports_tags_resolves_and_fails_over() -> Result<()> {
    let cluster = shared();
    let ns: TestNamespace = cluster.namespace("operator")?;
    let dir = tempfile::tempdir()?;
    let _logs = print_logs_on_failure(dir.path());
    let kubeconfig =
        install_operator(cluster, &ns, dir.path()).context("installing CRDs and RBAC")?;
    cluster.kubectl_ok(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&fixture("estate.yaml").replace("NAMESPACE", &ns)),
    )?;
    let policy = format!(
        "apiVersion: posture.dev/v1alpha1\nkind: ScanPolicy\nmetadata: {{name: default, namespace: {ns}}}\nspec:\n  scope: {{includeNamespaces: [{ns}]}}\n",
        ns = ns.name
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&policy))?;

    let mut a = start_operator(&kubeconfig, &ns, "replica-a", dir.path())?;
    let mut b = start_operator(&kubeconfig, &ns, "replica-b", dir.path())?;

    // 1. Findings for each risk, visible through kubectl's columns.
    let expected = [
        ("public-loadbalancer", "Service/web-lb"),
        ("public-nodeport", "Service/ssh"),
        ("public-ingress", "Ingress/shop"),
        ("rbac-cluster-admin", "ServiceAccount/admin-bot"),
        ("privileged-container", "DaemonSet/node-agent"),
    ];
    let rows = eventually(Duration::from_secs(60), "the estate's findings", || {
        let rows = findings(cluster, &ns);
        expected
            .iter()
            .all(|(r, s)| has(&rows, r, s, "Open"))
            .then_some(rows)
    });
    assert!(
        !rows.iter().any(|(_, s, _)| s.contains("clean")),
        "{rows:?}"
    );
    let nodeport = cluster.kubectl_ok(
        &[
            "get",
            "findings",
            "-n",
            &ns,
            "-l",
            "posture.dev/rule=public-nodeport",
            "-o",
            "jsonpath={.items[0].spec.severity} {.items[0].spec.message}",
        ],
        None,
    )?;
    assert!(
        nodeport.starts_with("High ") && nodeport.contains("22 (SSH)"),
        "{nodeport}"
    );

    // 2. Tags on the right workloads, none on the clean one.
    eventually(Duration::from_secs(30), "tags", || {
        let ok = labels(cluster, &ns, "deployment/web").contains("posture.dev/isPublic")
            && labels(cluster, &ns, "deployment/bastion").contains("posture.dev/isPublic")
            && labels(cluster, &ns, "deployment/shop").contains("posture.dev/isPublic")
            && labels(cluster, &ns, "deployment/admin-bot")
                .contains("posture.dev/HighlyPermissiveRole")
            && labels(cluster, &ns, "daemonset/node-agent").contains("posture.dev/Privileged")
            && labels(cluster, &ns, "deployment/web").contains("posture.dev/SensitiveData")
            && labels(cluster, &ns, "configmap/web-config").contains("posture.dev/SensitiveData");
        ok.then_some(())
    });
    assert!(!labels(cluster, &ns, "deployment/clean").contains("posture.dev/"));
    let annotation = cluster.kubectl_ok(
        &[
            "get",
            "deployment/admin-bot",
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.annotations.posture\\.dev/findings}",
        ],
        None,
    )?;
    // Worst severity first, then every rule with a finding on the workload.
    assert!(
        annotation.starts_with("Critical: ") && annotation.contains("rbac-cluster-admin"),
        "{annotation}"
    );
    let status = cluster.kubectl_ok(
        &[
            "get",
            "scanpolicy",
            "default",
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.counts.critical}/{.status.conditions[0].status}",
        ],
        None,
    )?;
    assert_eq!(status, "1/True");

    // 3. The risk goes away: Resolved with resolvedAt, tag removed.
    cluster.kubectl_ok(&["delete", "service", "web-lb", "-n", &ns], None)?;
    eventually(
        Duration::from_secs(30),
        "the load balancer finding to resolve",
        || {
            has(
                &findings(cluster, &ns),
                "public-loadbalancer",
                "Service/web-lb",
                "Resolved",
            )
            .then_some(())
        },
    );
    let resolved_at = cluster.kubectl_ok(
        &[
            "get",
            "findings",
            "-n",
            &ns,
            "-l",
            "posture.dev/rule=public-loadbalancer",
            "-o",
            "jsonpath={.items[0].status.resolvedAt}",
        ],
        None,
    )?;
    assert!(!resolved_at.is_empty());
    eventually(Duration::from_secs(30), "web's isPublic tag to go", || {
        (!labels(cluster, &ns, "deployment/web").contains("posture.dev/isPublic")).then_some(())
    });
    assert!(
        labels(cluster, &ns, "deployment/shop").contains("posture.dev/isPublic"),
        "other tags stay"
    );

    // 4. Kill the leader outright: the other replica takes over within the lease.
    let holder = eventually(Duration::from_secs(20), "a leader", || leader(cluster, &ns));
    let (dead, survivor) = if holder == "replica-a" {
        (&mut a, "replica-b")
    } else {
        (&mut b, "replica-a")
    };
    std::process::Command::new("kill")
        .args(["-KILL", &dead.pid().to_string()])
        .status()?;
    dead.stop();
    let killed = Instant::now();
    cluster.kubectl_ok(&["delete", "service", "ssh", "-n", &ns], None)?;
    eventually(
        Duration::from_secs(LEASE_SECONDS * 3 + 10),
        "the surviving replica to resolve the NodePort finding",
        || {
            has(
                &findings(cluster, &ns),
                "public-nodeport",
                "Service/ssh",
                "Resolved",
            )
            .then_some(())
        },
    );
    assert_eq!(leader(cluster, &ns).as_deref(), Some(survivor));
    eprintln!(
        "fail-over: change written {:.1} s after the leader was killed (lease {LEASE_SECONDS} s)",
        killed.elapsed().as_secs_f64()
    );

    // 5. Restart everything: the same Findings, no duplicates.
    let before = finding_names(cluster, &ns);
    a.stop();
    b.stop();
    let _c = start_operator_with(
        &kubeconfig,
        &ns,
        "replica-c",
        dir.path(),
        &["--resync-seconds=10"],
    )?;
    eventually(
        Duration::from_secs(40),
        "the restarted operator to lead",
        || (leader(cluster, &ns).as_deref() == Some("replica-c")).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    let after = finding_names(cluster, &ns);
    assert_eq!(
        before, after,
        "a restart must neither add nor drop Findings"
    );
    let rows = findings(cluster, &ns);
    let mut keys: Vec<_> = rows
        .iter()
        .map(|(r, s, _)| (r.clone(), s.clone()))
        .collect();
    let total = keys.len();
    keys.dedup();
    assert_eq!(
        keys.len(),
        total,
        "one Finding per (rule, subject): {rows:?}"
    );

    // 6. Resolved findings go after the policy's retention (checked on each resync).
    let resolved_lb = cluster.kubectl_ok(
        &[
            "get",
            "findings",
            "-n",
            &ns,
            "-l",
            "posture.dev/rule=public-loadbalancer",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "patch",
            "scanpolicy",
            "default",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"findings":{"retention":"1s"}}}"#,
        ],
        None,
    )?;
    eventually(
        Duration::from_secs(45),
        "the resolved finding to be deleted after its retention",
        || (!finding_names(cluster, &ns).contains(&resolved_lb)).then_some(()),
    );
    assert!(
        finding_names(cluster, &ns)
            .iter()
            .any(|n| n.starts_with("rbac-cluster-admin-")),
        "open findings stay"
    );

    cluster.kubectl(
        &[
            "delete",
            "clusterrolebinding",
            &format!("{}-admin-bot", ns.name),
            &format!("posture-operator-{}", ns.name),
        ],
        None,
    )?;
    cluster.kubectl(
        &[
            "delete",
            "clusterrole",
            &format!("posture-operator-{}", ns.name),
        ],
        None,
    )?;
    Ok(())
}

#[test]
fn the_apiserver_rejects_scan_policy_mistakes_with_clear_messages() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("policy")?;
    cluster.install_crds()?;
    let apply = |spec: &str| {
        let doc = format!(
            "apiVersion: posture.dev/v1alpha1\nkind: ScanPolicy\nmetadata: {{name: p, namespace: {}}}\nspec:\n{spec}",
            ns.name
        );
        cluster.kubectl(&["apply", "-f", "-"], Some(&doc)).map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
    };
    // The empty policy is valid: the whole cluster, every rule.
    let (ok, err) = apply("  {}\n")?;
    assert!(ok, "{err}");
    let (ok, err) = apply("  rules: {enable: [public-nodeport], disable: [public-nodeport]}\n")?;
    assert!(
        !ok && err.contains("cannot be both enabled and disabled"),
        "{err}"
    );
    let (ok, err) = apply(
        "  exceptions: [{rule: public-nodeport, reason: \"  \", expires: \"2027-01-31\"}]\n",
    )?;
    assert!(!ok && err.contains("spec.exceptions[0].reason"), "{err}");
    let (ok, err) = apply(
        "  exceptions: [{rule: public-nodeport, reason: legacy bastion, expires: \"31/01/2027\"}]\n",
    )?;
    assert!(!ok && err.contains("spec.exceptions[0].expires"), "{err}");
    let (ok, err) = apply("  admission: {mode: Block}\n")?;
    assert!(!ok && err.contains("Unsupported value: \"Block\""), "{err}");
    let (ok, err) = apply("  findings: {retention: a-week}\n")?;
    assert!(!ok && err.contains("spec.findings.retention"), "{err}");
    Ok(())
}
