//! Tests of the harness itself, on the shared control plane of this test binary.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use posture_e2e::cluster::{NODE_NAME, shared};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn control_plane_reports_its_version_and_a_ready_node() -> Result<()> {
    let cluster = shared();
    let version = cluster.kubectl_ok(&["version", "-o", "json"], None)?;
    let version: serde_json::Value = serde_json::from_str(&version)?;
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(server.starts_with("v1.35."), "server version {server}");
    let ready = cluster.kubectl_ok(
        &[
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    )?;
    assert_eq!(ready, "True");
    Ok(())
}

#[tokio::test]
async fn serves_a_custom_resource_definition() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("crd")?;
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&fixture("widget-crd.yaml")))?;
    cluster.kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.e2e.posture.dev",
            "--timeout=30s",
        ],
        None,
    )?;
    let widget =
        "apiVersion: e2e.posture.dev/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n";
    // Discovery may lag a moment behind Established.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .kubectl(&["apply", "-n", &ns, "-f", "-"], Some(widget))?
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "Widget never accepted");
        std::thread::sleep(Duration::from_millis(300));
    }
    let size = cluster.kubectl_ok(
        &[
            "get",
            "widget",
            "w1",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.size}",
        ],
        None,
    )?;
    assert_eq!(size, "3");
    // The schema is enforced by the real apiserver.
    let bad = widget.replace("size: 3", "size: 0");
    let out = cluster.kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&bad))?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.size"),
        "{out:?}"
    );
    Ok(())
}

fn job(name: &str, args: &[&str]) -> String {
    let args = serde_json::to_string(args).expect("json");
    fixture("job.yaml")
        .replace("NAME", name)
        .replace("ARGS", &args)
}

#[tokio::test]
async fn job_running_the_project_image_completes_with_its_exit_code() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("job")?;
    let _logs = cluster.logs_on_failure(&ns);
    cluster.kubectl_ok(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&job("ok", &["--version"])),
    )?;
    cluster.kubectl_ok(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&job("bad", &["--no-such-flag"])),
    )?;

    cluster.kubectl_ok(
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Complete",
            "job/ok",
            "--timeout=90s",
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Failed",
            "job/bad",
            "--timeout=90s",
        ],
        None,
    )?;

    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, &ns);
    let exit = |pod: &Pod| {
        let status = pod.status.clone().unwrap_or_default();
        let code = status.container_statuses.unwrap_or_default()[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .map(|t| t.exit_code);
        (status.phase.unwrap_or_default(), code)
    };
    let ok = pods
        .list(&kube::api::ListParams::default().labels("job-name=ok"))
        .await?;
    assert_eq!(exit(&ok.items[0]), ("Succeeded".to_owned(), Some(0)));
    let bad = pods
        .list(&kube::api::ListParams::default().labels("job-name=bad"))
        .await?;
    // clap's exit code for a usage error.
    assert_eq!(exit(&bad.items[0]), ("Failed".to_owned(), Some(2)));

    // The process really ran: its output is in the pod's log file.
    let logs = cluster.pod_logs(&ns);
    assert!(
        logs.contains(&format!("posture {}", env!("CARGO_PKG_VERSION"))),
        "{logs}"
    );
    assert!(logs.contains("--no-such-flag"), "{logs}");
    Ok(())
}

#[tokio::test]
async fn pod_process_acts_as_its_service_account() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("rbac")?;
    let _logs = cluster.logs_on_failure(&ns);
    let manifest = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: reader
---
apiVersion: v1
kind: Pod
metadata:
  name: whoami
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
    - name: posture
      image: ghcr.io/example/posture:dev
      args: [\"--version\"]
";
    cluster.kubectl_ok(&["apply", "-n", &ns, "-f", "-"], Some(manifest))?;
    cluster.kubectl_ok(
        &[
            "wait",
            "-n",
            &ns,
            "--for=jsonpath={.status.phase}=Succeeded",
            "pod/whoami",
            "--timeout=60s",
        ],
        None,
    )?;
    let pods_dir = cluster.pods_dir.clone().expect("local cluster");
    let pod_kubeconfig = pods_dir.join(&ns.name).join("whoami/kubeconfig");
    let pod_kubeconfig = pod_kubeconfig.to_str().expect("utf-8 path");

    let whoami = cluster.kubectl_ok(
        &[
            "auth",
            "whoami",
            "--kubeconfig",
            pod_kubeconfig,
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )?;
    assert_eq!(whoami, format!("system:serviceaccount:{}:reader", ns.name));

    // RBAC applies: nothing granted yet, so listing pods is forbidden ...
    let denied = cluster.kubectl(
        &["get", "pods", "-n", &ns, "--kubeconfig", pod_kubeconfig],
        None,
    )?;
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden"),
        "{denied:?}"
    );
    // ... and allowed once a Role is bound.
    cluster.kubectl_ok(
        &[
            "create",
            "role",
            "pod-reader",
            "-n",
            &ns,
            "--verb=list",
            "--resource=pods",
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "create",
            "rolebinding",
            "pod-reader",
            "-n",
            &ns,
            "--role=pod-reader",
            &format!("--serviceaccount={}:reader", ns.name),
        ],
        None,
    )?;
    let listed = eventually(
        Duration::from_secs(10),
        "RBAC to allow listing pods",
        || async {
            let out = cluster
                .kubectl(
                    &["get", "pods", "-n", &ns, "--kubeconfig", pod_kubeconfig],
                    None,
                )
                .ok()?;
            out.status
                .success()
                .then_some(String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await;
    assert!(listed.contains("whoami"), "{listed}");
    Ok(())
}

#[tokio::test]
async fn pods_of_other_images_run_without_being_executed() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("foreign")?;
    let _logs = cluster.logs_on_failure(&ns);
    cluster.kubectl_ok(
        &[
            "create",
            "deployment",
            "web",
            "-n",
            &ns,
            "--image=nginx:1.27",
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/web",
            "--timeout=60s",
        ],
        None,
    )?;
    let pod = cluster.kubectl_ok(
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ],
        None,
    )?;
    let phase = cluster.kubectl_ok(
        &[
            "get",
            "pod",
            &pod,
            "-n",
            &ns,
            "-o",
            "jsonpath={.status.phase}",
        ],
        None,
    )?;
    assert_eq!(phase, "Running");
    let pods_dir = cluster.pods_dir.clone().expect("local cluster");
    assert!(
        !pods_dir
            .join(&ns.name)
            .join(&pod)
            .join("nginx.log")
            .exists(),
        "nginx was executed"
    );

    // Deleting the pod finishes (the kubelet confirms the deletion), and the
    // ReplicaSet replaces it.
    cluster.kubectl_ok(&["delete", "pod", &pod, "-n", &ns, "--timeout=30s"], None)?;
    cluster.kubectl_ok(
        &[
            "rollout",
            "status",
            "-n",
            &ns,
            "deployment/web",
            "--timeout=60s",
        ],
        None,
    )?;
    Ok(())
}

/// A ConfigMap, a Secret and an emptyDir appear at their mountPath inside the pod's
/// process: `posture scan` reads the manifest the ConfigMap holds, finds the privileged
/// container (exit 1) or nothing (exit 0); a read-only mount cannot be written.
#[tokio::test]
async fn volumes_are_mounted_where_the_manifest_says() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("volumes")?;
    let _logs = cluster.logs_on_failure(&ns);
    let manifest = |privileged: bool| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: x}}\nspec:\n  containers: [{{name: c, image: \"nginx:1.27\", securityContext: {{privileged: {privileged}}}}}]\n"
        )
    };
    let job = |name: &str, map: &str| {
        format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: {map}}}
data:
  pod.yaml: |
{}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-secret}}
stringData: {{token: s3cr3t}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      containers:
        - name: scan
          image: posture:dev
          args: [scan, /manifests/pod.yaml, --fail-on, high, --format, json]
          volumeMounts:
            - {{name: manifests, mountPath: /manifests, readOnly: true}}
            - {{name: secret, mountPath: /posture-e2e-secret/token, subPath: token}}
            - {{name: scratch, mountPath: /tmp}}
      volumes:
        - {{name: manifests, configMap: {{name: {map}}}}}
        - {{name: secret, secret: {{secretName: {name}-secret, defaultMode: 0400}}}}
        - {{name: scratch, emptyDir: {{}}}}
"#,
            manifest(name == "risky")
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    cluster.kubectl_ok(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&job("risky", "risky-manifests")),
    )?;
    cluster.kubectl_ok(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&job("clean", "clean-manifests")),
    )?;
    cluster.kubectl_ok(
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Failed",
            "job/risky",
            "--timeout=90s",
        ],
        None,
    )?;
    cluster.kubectl_ok(
        &[
            "wait",
            "-n",
            &ns,
            "--for=condition=Complete",
            "job/clean",
            "--timeout=90s",
        ],
        None,
    )?;
    // Exit 1 (a finding at or above high), not 2 (unreadable input): the file was there.
    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, &ns);
    let risky = pods
        .list(&kube::api::ListParams::default().labels("job-name=risky"))
        .await?;
    let code = risky.items[0]
        .status
        .clone()
        .and_then(|s| s.container_statuses)
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.terminated)
        .map(|t| t.exit_code);
    assert_eq!(code, Some(1));
    assert!(cluster.pod_logs(&ns).contains("/manifests/pod.yaml"));
    assert!(
        !std::path::Path::new("/manifests/pod.yaml").exists(),
        "the host does not see the pod's mounts"
    );
    Ok(())
}
