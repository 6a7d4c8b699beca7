//! Where the control-plane binaries and the `posture` binary come from.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The repository root, known at compile time (the e2e crate lives in `<root>/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e crate has a parent folder")
        .to_path_buf()
}

/// The folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
/// kubectl and helm.
#[derive(Debug, Clone)]
pub struct ControlPlaneBinaries {
    pub dir: PathBuf,
}

impl ControlPlaneBinaries {
    /// `POSTURE_CONTROLPLANE_DIR` if set; otherwise `e2e/controlplane/build.sh`, which
    /// returns at once when the pinned binaries are cached and builds them when not.
    pub fn locate() -> Result<Self> {
        if let Ok(dir) = std::env::var("POSTURE_CONTROLPLANE_DIR") {
            return Self::checked(PathBuf::from(dir));
        }
        let script = repo_root().join("e2e/controlplane/build.sh");
        let output = Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "{} failed ({}); run `make controlplane` to see the build output",
                script.display(),
                output.status
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let dir = stdout.lines().last().unwrap_or_default().trim();
        Self::checked(PathBuf::from(dir))
    }

    fn checked(dir: PathBuf) -> Result<Self> {
        let me = Self { dir };
        for name in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
        ] {
            let path = me.path(name);
            if !path.is_file() {
                bail!(
                    "{} is missing; build the control plane with `make controlplane`",
                    path.display()
                );
            }
        }
        Ok(me)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The freshly built `posture` binary that the test kubelet runs for the project image:
/// `POSTURE_BIN`, else `$CARGO_TARGET_DIR/debug/posture`, else `<repo>/target/debug/posture`.
pub fn posture_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("POSTURE_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            let target = if target.is_relative() {
                repo_root().join(target)
            } else {
                target
            };
            target.join("debug/posture")
        }
    };
    if !path.is_file() {
        bail!(
            "the posture binary {} does not exist; run `cargo build --bin posture` (make e2e does) or set POSTURE_BIN",
            path.display()
        );
    }
    Ok(path)
}
