//! A whole test cluster (control plane + test kubelet), and the helpers tests use:
//! one shared cluster per test binary, a namespace per test, kubectl, and the pod and
//! component logs printed when a test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kube::Client;

use crate::binaries::{ControlPlaneBinaries, posture_binary};
use crate::controlplane::{ControlPlane, client_from_kubeconfig, tail};
use crate::kubelet::{ImageMatcher, KubeletConfig, TestKubelet};
use crate::process::is_alive;

pub const NODE_NAME: &str = "posture-test-node";

/// A control plane and a test kubelet in one folder.
pub struct LocalCluster {
    // Field order is drop order: pods stop before the control plane.
    pub kubelet: TestKubelet,
    pub control_plane: ControlPlane,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug, Clone, Default)]
pub struct LocalClusterOptions {
    /// Where to keep state and logs; a fresh temporary folder when `None`.
    pub dir: Option<PathBuf>,
    pub images: Option<ImageMatcher>,
}

impl LocalCluster {
    pub async fn start(options: LocalClusterOptions) -> Result<Self> {
        let posture_bin = posture_binary()?;
        let binaries = ControlPlaneBinaries::locate()?;
        let (dir, tempdir) = match options.dir {
            Some(dir) => (dir, None),
            None => {
                remove_abandoned_dirs();
                let tempdir = tempfile::Builder::new().prefix("posture-e2e-").tempdir()?;
                fs::write(
                    tempdir.path().join("owner.pid"),
                    std::process::id().to_string(),
                )?;
                (tempdir.path().to_path_buf(), Some(tempdir))
            }
        };
        let control_plane = ControlPlane::start(&dir, binaries).await?;
        let client = control_plane.client().await?;
        let version = kubernetes_version(&control_plane.binaries.dir);
        let kubelet = TestKubelet::start(
            client,
            KubeletConfig {
                node_name: NODE_NAME.into(),
                posture_bin,
                images: options.images.unwrap_or_default(),
                work_dir: dir.join("pods"),
                apiserver_url: control_plane.apiserver_url.clone(),
                ca_pem: control_plane.ca_pem.clone(),
                kubernetes_version: version,
            },
        )
        .await?;
        Ok(Self {
            kubelet,
            control_plane,
            _dir: tempdir,
        })
    }

    /// Stops the pods, then the control plane.
    pub async fn stop(mut self) {
        self.kubelet.shutdown().await;
        self.control_plane.stop();
    }
}

/// The release name the binaries were built for: the cache folder is named after it.
fn kubernetes_version(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "v1.35.4".into())
}

/// Temporary folders of earlier runs whose process is gone (a shared cluster lives
/// until its test binary exits, so its folder cannot be removed by a destructor).
fn remove_abandoned_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("posture-e2e-"));
        if !is_ours {
            continue;
        }
        let owner = fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if owner.is_some_and(|pid| !is_alive(pid)) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// The cluster the tests of one test binary share: the one named by
/// `POSTURE_E2E_KUBECONFIG`, or a local one started on first use and stopped when the
/// test binary exits (its processes are guarded, see `process`).
pub struct TestCluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: Option<PathBuf>,
    /// Pod folders of the local test kubelet (none for an external cluster).
    pub pods_dir: Option<PathBuf>,
    /// Control-plane component logs (none for an external cluster).
    pub logs_dir: Option<PathBuf>,
}

static SHARED: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// The shared cluster; starts it the first time. Panics with the reason when it
/// cannot start, which fails the calling test with a useful message (and every later
/// test of the binary with the same one, without trying again).
pub fn shared() -> &'static TestCluster {
    let cluster =
        SHARED.get_or_init(|| TestCluster::from_env_or_start().map_err(|e| format!("{e:#}")));
    match cluster {
        Ok(cluster) => cluster,
        Err(e) => panic!("the e2e test cluster did not start: {e}"),
    }
}

impl TestCluster {
    fn from_env_or_start() -> Result<Self> {
        if let Some(kubeconfig) = std::env::var_os("POSTURE_E2E_KUBECONFIG") {
            let kubectl = match std::env::var_os("POSTURE_KUBECTL") {
                Some(path) => PathBuf::from(path),
                None => ControlPlaneBinaries::locate()
                    .map(|b| b.path("kubectl"))
                    .unwrap_or_else(|_| PathBuf::from("kubectl")),
            };
            return Ok(Self {
                kubeconfig: PathBuf::from(kubeconfig),
                kubectl,
                helm: None,
                pods_dir: None,
                logs_dir: None,
            });
        }
        // The cluster's own runtime lives on a thread of its own for the rest of the
        // process, so the kubelet outlives the runtime of whichever test started it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("posture-e2e-cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::Error::from(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match LocalCluster::start(LocalClusterOptions::default()).await {
                        Ok(cluster) => {
                            let cp = &cluster.control_plane;
                            let info = TestCluster {
                                kubeconfig: cp.kubeconfig.clone(),
                                kubectl: cp.binaries.path("kubectl"),
                                helm: Some(cp.binaries.path("helm")),
                                pods_dir: Some(cluster.kubelet.work_dir().to_path_buf()),
                                logs_dir: Some(cp.dir().join("logs")),
                            };
                            let _ = tx.send(Ok(info));
                            // Keep the cluster (and its kubelet) alive until exit.
                            std::future::pending::<()>().await;
                            drop(cluster);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        rx.recv()
            .context("the cluster thread ended before reporting")?
    }

    /// An admin client bound to the caller's runtime.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// `kubectl --kubeconfig <admin> ARGS...`, not yet run.
    pub fn kubectl_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd
    }

    /// Runs kubectl with `stdin` as standard input; returns its output whatever the exit.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .kubectl_command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.kubectl.display()))?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.kubectl(args, stdin)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies `crds/` (server-side, idempotent) and waits until they are served.
    pub fn install_crds(&self) -> Result<()> {
        let crds = crate::binaries::repo_root().join("crds/posture.dev.yaml");
        self.kubectl_ok(
            &["apply", "--server-side", "-f", &crds.display().to_string()],
            None,
        )?;
        self.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "crd/findings.posture.dev",
                "crd/scanpolicies.posture.dev",
            ],
            None,
        )?;
        Ok(())
    }

    /// A kubeconfig at `path` whose credentials are a token of the ServiceAccount
    /// `namespace/account` (created here), so a process run with it has exactly the
    /// RBAC of that account.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        account: &str,
        path: &Path,
    ) -> Result<()> {
        self.kubectl_ok(
            &["create", "serviceaccount", account, "-n", namespace],
            None,
        )?;
        let token = self.kubectl_ok(
            &["create", "token", account, "-n", namespace, "--duration=2h"],
            None,
        )?;
        let server = self.kubectl_ok(
            &[
                "config",
                "view",
                "--minify",
                "-o",
                "jsonpath={.clusters[0].cluster.server}",
            ],
            None,
        )?;
        let ca = self.kubectl_ok(
            &[
                "config",
                "view",
                "--minify",
                "--raw",
                "-o",
                "jsonpath={.clusters[0].cluster.certificate-authority-data}",
            ],
            None,
        )?;
        fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {server}, certificate-authority-data: {ca}}}\nusers:\n- name: u\n  user: {{token: {}}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {namespace}}}\ncurrent-context: x\n",
                token.trim()
            ),
        )?;
        Ok(())
    }

    /// A fresh namespace `posture-e2e-<prefix>-<suffix>`, labelled
    /// `posture.dev/e2e=true`, deleted when the returned guard drops.
    pub fn namespace(&'static self, prefix: &str) -> Result<TestNamespace> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let suffix = format!(
            "{:x}{:x}",
            std::process::id() % 0xfff,
            nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let name = format!("posture-e2e-{prefix}-{suffix}");
        let manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    posture.dev/e2e: \"true\"\n"
        );
        self.kubectl_ok(&["apply", "-f", "-"], Some(&manifest))?;
        // Pods need the namespace's default ServiceAccount, which a controller creates.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self
            .kubectl(&["get", "serviceaccount", "default", "-n", &name], None)?
            .status
            .code()
            != Some(0)
        {
            if std::time::Instant::now() > deadline {
                bail!("namespace {name} got no default ServiceAccount in 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(TestNamespace {
            name,
            cluster: self,
        })
    }

    /// Prints pod and component logs if the current test panics while the guard lives.
    pub fn logs_on_failure(&'static self, namespace: &str) -> LogsOnFailure {
        LogsOnFailure {
            cluster: self,
            namespace: namespace.to_owned(),
        }
    }

    /// Every pod log of a namespace, concatenated with headers.
    pub fn pod_logs(&self, namespace: &str) -> String {
        let Some(dir) = &self.pods_dir else {
            return "(external cluster: use kubectl logs)".into();
        };
        let mut out = String::new();
        let Ok(pods) = fs::read_dir(dir.join(namespace)) else {
            return out;
        };
        for pod in pods.flatten() {
            let Ok(files) = fs::read_dir(pod.path()) else {
                continue;
            };
            for file in files.flatten() {
                if file.path().extension().is_some_and(|e| e == "log") {
                    out.push_str(&tail(&file.path(), 200));
                    out.push('\n');
                }
            }
        }
        out
    }
}

pub struct TestNamespace {
    pub name: String,
    cluster: &'static TestCluster,
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the evidence; the namespace dies with the local cluster anyway.
            return;
        }
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

pub struct LogsOnFailure {
    cluster: &'static TestCluster,
    namespace: String,
}

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("==== pod logs of namespace {} ====", self.namespace);
        eprintln!("{}", self.cluster.pod_logs(&self.namespace));
        if let Some(logs) = &self.cluster.logs_dir {
            for component in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "etcd",
            ] {
                eprintln!("{}", tail(&logs.join(format!("{component}.log")), 15));
            }
        }
    }
}
