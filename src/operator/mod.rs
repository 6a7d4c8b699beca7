//! The operator: watches the cluster into the inventory, evaluates the rules
//! incrementally, and (as the elected leader) writes Findings, tags and ScanPolicy
//! status.

mod controller;
pub mod findings;
mod leader;
pub mod metrics;
pub mod tags;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::watch as signal;

use crate::api::{Finding, ScanPolicy};

/// `posture operator` options.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Address of the plain-HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "POSTURE_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader among replicas with a Lease (turn off for a single replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "posture-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "posture-operator")]
    pub lease_name: String,
    /// This replica's name in the Lease (default: the pod name, HOSTNAME).
    #[arg(long, env = "HOSTNAME", default_value = "posture-operator")]
    pub identity: String,
    /// Seconds a Lease holds without renewal before another replica takes over.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// Upper bound on writes to the API server per second.
    #[arg(long, default_value_t = 50)]
    pub write_qps: u32,
    /// Full re-evaluation period (exception expiry, retention), e.g. 300.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot reach Kubernetes: set KUBECONFIG or run in a pod with a ServiceAccount")?;
    ensure_crds(&client).await?;

    let metrics = Arc::new(metrics::Metrics::default());
    let (shutdown_tx, shutdown_rx) = signal::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });

    let server = {
        let mut rx = shutdown_rx.clone();
        let metrics = metrics.clone();
        let addr = args.metrics_addr;
        tokio::spawn(async move {
            metrics::serve(addr, metrics, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        })
    };

    let (leader_tx, leader_rx) = signal::channel(!args.leader_election);
    let election = if args.leader_election {
        let config = leader::LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: args.identity.clone(),
            duration: Duration::from_secs(args.lease_duration),
            retry: Duration::from_secs((args.lease_duration / 5).max(1)),
        };
        Some(tokio::spawn(leader::run(
            client.clone(),
            config,
            leader_tx,
            shutdown_rx.clone(),
        )))
    } else {
        None
    };

    let observer: Arc<dyn crate::collect::cluster::WatchObserver> = metrics.clone();
    let changes = crate::collect::cluster::start(&client, &observer);
    let controller = controller::Controller::new(client, metrics, &args);
    controller.run(changes, leader_rx, shutdown_rx).await;
    if let Some(election) = election {
        let _ = election.await;
    }
    if let Ok(Err(e)) = server.await {
        return Err(e);
    }
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Exits with install instructions when the CRDs are missing.
async fn ensure_crds(client: &Client) -> Result<()> {
    for (what, result) in [
        (
            "findings.posture.dev",
            Api::<Finding>::all(client.clone())
                .list(&ListParams::default().limit(1))
                .await
                .map(|_| ()),
        ),
        (
            "scanpolicies.posture.dev",
            Api::<ScanPolicy>::all(client.clone())
                .list(&ListParams::default().limit(1))
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "the CustomResourceDefinition {what} is not installed.\n\
                 Install the CRDs first:  posture crds | kubectl apply --server-side -f -\n\
                 (or install the Helm chart, which ships them)"
            ),
            Err(e) => return Err(e).context(format!("checking that {what} is installed")),
        }
    }
    Ok(())
}
