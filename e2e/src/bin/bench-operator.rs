//! Operator memory on a loaded control plane: etcd and kube-apiserver holding the
//! target estate (10k Pods in 2k Deployments, 3k Services, 2k bindings), then
//! `posture operator` watching it. Reports time to ready and resident memory.
//!
//!     cargo build --release --bin posture && cargo run -p posture-e2e --bin bench-operator
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use posture::inventory::synthetic::EstateSize;
use posture_e2e::bench::{answers_ok, load_estate, release_posture, rss_kib};
use posture_e2e::binaries::ControlPlaneBinaries;
use posture_e2e::controlplane::ControlPlane;
use posture_e2e::ports::free_ports;
use posture_e2e::process::{Guarded, ProcessSpec};

#[tokio::main]
async fn main() -> Result<()> {
    let binaries = ControlPlaneBinaries::locate()?;
    let dir = tempfile::Builder::new()
        .prefix("posture-e2e-bench-")
        .tempdir()?;
    let mut cp = ControlPlane::start_with(dir.path(), binaries.clone(), false).await?;
    let kubectl = |args: &[&str]| {
        std::process::Command::new(binaries.path("kubectl"))
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(args)
            .output()
    };
    let count = load_estate(&cp, EstateSize::TARGET).await?;

    let bin = release_posture()?;
    let [port] = free_ports::<1>()?;
    let mut spec = ProcessSpec::new(&bin, dir.path().join("operator.log")).args([
        "operator".to_owned(),
        "--leader-election=false".to_owned(),
        format!("--metrics-addr=127.0.0.1:{port}"),
        "--write-qps=200".to_owned(),
        format!("--db={}", dir.path().join("posture.db").display()),
    ]);
    spec.env = vec![("KUBECONFIG".into(), cp.kubeconfig.display().to_string())];
    let started = Instant::now();
    let operator =
        Guarded::spawn("operator", &spec).with_context(|| format!("starting {}", bin.display()))?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    loop {
        if answers_ok(&url) {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "operator not ready in 180 s; log: {}",
                posture_e2e::controlplane::tail(operator.log_path(), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = started.elapsed();
    let (rss_ready, _) = rss_kib(operator.pid());
    // Let the first round of Finding and tag writes finish.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (rss, peak) = rss_kib(operator.pid());
    let findings = kubectl(&["get", "findings", "-A", "--no-headers"])?
        .stdout
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    println!(
        "operator ({}) on {count} objects: ready (synced + evaluated) after {:.2} s; RSS at ready {:.0} MB, after 30 s {:.0} MB, peak {:.0} MB; {findings} Findings written  [target RSS < 150 MB]",
        bin.display(),
        ready.as_secs_f64(),
        rss_ready as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(operator);
    cp.stop();
    Ok(())
}
