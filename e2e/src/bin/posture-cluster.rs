//! `posture-cluster`: the local control plane and test kubelet as one long-running
//! process, for `make cluster-up` / `make cluster-down` and `make demo`, and the
//! start-up benchmark.
#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use posture_e2e::binaries::ControlPlaneBinaries;
use posture_e2e::cluster::{LocalCluster, LocalClusterOptions};
use posture_e2e::controlplane::ControlPlane;

#[derive(Parser)]
#[command(
    about = "Runs a real Kubernetes control plane and a test kubelet as local processes",
    after_help = "Examples:\n  posture-cluster up --dev-dir .dev     # what `make cluster-up` runs\n  posture-cluster bench --runs 5        # time from cached binaries to /readyz"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the cluster and run until SIGTERM or Ctrl-C. Writes DEV_DIR/kubeconfig,
    /// links kubectl and helm into DEV_DIR/bin, and creates DEV_DIR/ready once usable.
    Up {
        #[arg(long, default_value = ".dev")]
        dev_dir: PathBuf,
    },
    /// Start and stop the control plane RUNS times; print the median time to /readyz
    /// and to a working controller-manager.
    Bench {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The /readyz poll logs every 500 while the apiserver starts: expected, not news.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Up { dev_dir } => up(&dev_dir).await,
        Cmd::Bench { runs } => bench(runs).await,
    }
}

async fn up(dev_dir: &Path) -> Result<()> {
    let dev_dir = std::path::absolute(dev_dir)?;
    let state = dev_dir.join("cluster");
    let ready = dev_dir.join("ready");
    let _ = fs::remove_file(&ready);
    if state.exists() {
        fs::remove_dir_all(&state).with_context(|| format!("clearing {}", state.display()))?;
    }
    let started = Instant::now();
    let cluster = LocalCluster::start(LocalClusterOptions {
        dir: Some(state.clone()),
        images: None,
    })
    .await?;
    let cp = &cluster.control_plane;

    let bin = dev_dir.join("bin");
    fs::create_dir_all(&bin)?;
    for tool in ["kubectl", "helm"] {
        let link = bin.join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(cp.binaries.path(tool), &link)?;
    }
    let kubeconfig = dev_dir.join("kubeconfig");
    fs::copy(&cp.kubeconfig, &kubeconfig)?;
    let pids: Vec<String> = cp
        .pids()
        .into_iter()
        .map(|(name, pid)| format!("{name} {pid}"))
        .collect();
    fs::write(dev_dir.join("cluster.pids"), pids.join("\n") + "\n")?;
    fs::write(&ready, format!("{}\n", std::process::id()))?;
    eprintln!(
        "cluster ready in {:.1} s (apiserver /readyz after {:.1} s)\n  export KUBECONFIG={}\n  export PATH={}:$PATH\n  logs: {}/logs, pods: {}/pods",
        started.elapsed().as_secs_f64(),
        cp.time_to_ready.as_secs_f64(),
        kubeconfig.display(),
        bin.display(),
        state.display(),
        state.display(),
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("stopping the cluster");
    let _ = fs::remove_file(&ready);
    cluster.stop().await;
    Ok(())
}

async fn bench(runs: usize) -> Result<()> {
    let binaries = ControlPlaneBinaries::locate()?;
    let mut to_readyz = Vec::new();
    let mut to_controllers = Vec::new();
    for run in 1..=runs {
        let dir = tempfile::Builder::new()
            .prefix("posture-e2e-bench-")
            .tempdir()?;
        let started = Instant::now();
        let mut cp = ControlPlane::start(dir.path(), binaries.clone()).await?;
        let total = started.elapsed();
        eprintln!(
            "run {run}: /readyz after {:.2} s, controllers working after {:.2} s",
            cp.time_to_ready.as_secs_f64(),
            total.as_secs_f64()
        );
        to_readyz.push(cp.time_to_ready);
        to_controllers.push(total);
        cp.stop();
    }
    println!(
        "control plane from cached binaries, median of {runs}: /readyz {:.2} s, default ServiceAccount created {:.2} s",
        median(&mut to_readyz).as_secs_f64(),
        median(&mut to_controllers).as_secs_f64()
    );
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
