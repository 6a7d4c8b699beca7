//! The operator: watches the cluster into the inventory, evaluates the rules
//! incrementally, and (as the elected leader) writes Findings, tags and ScanPolicy
//! status.

pub mod api;
pub mod collectors;
mod controller;
pub mod cron;
pub mod findings;
mod leader;
pub mod metrics;
pub mod tags;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
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
    /// The store: an SQLite file holding assets, relations, tags, findings and the
    /// accepted cloud snapshots (on a volume: a restart keeps the cloud data).
    #[arg(
        long,
        value_name = "FILE",
        env = "POSTURE_DB",
        default_value = "/var/lib/posture/posture.db"
    )]
    pub db: PathBuf,
    /// HTTPS address of the operator API: snapshot ingest from collector Jobs,
    /// read-only queries, cloud data for the webhook. Served only with --tls-cert
    /// and --tls-key.
    #[arg(long, default_value = "0.0.0.0:8443", env = "POSTURE_API_ADDR")]
    pub api_addr: SocketAddr,
    /// PEM certificate chain of the API; re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the API; re-read when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The API's URL as collector Jobs reach it. Default:
    /// https://posture-operator.<lease namespace>.svc:<api port>.
    #[arg(long, value_name = "URL", env = "POSTURE_API_URL")]
    pub api_url: Option<String>,
    /// PEM CA that signed the API's certificate, handed to collector Jobs.
    #[arg(long, value_name = "FILE")]
    pub api_ca: Option<PathBuf>,
    /// Image of the collector Jobs (the operator's own image). Without it, ScanPolicies
    /// with spec.cloud.aws get no Jobs.
    #[arg(long, value_name = "IMAGE", env = "POSTURE_IMAGE")]
    pub collector_image: Option<String>,
    /// Environment of collector Jobs, NAME=VALUE (an AWS endpoint or region, say).
    /// Repeatable. Never put secrets here: use IRSA or Pod Identity.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_env)]
    pub collector_env: Vec<(String, String)>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

impl OperatorArgs {
    fn collector_settings(&self) -> Result<Option<collectors::CollectorSettings>> {
        let Some(image) = &self.collector_image else {
            return Ok(None);
        };
        let ca_pem = match &self.api_ca {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading --api-ca {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Some(collectors::CollectorSettings {
            image: image.clone(),
            api_url: self.api_url.clone().unwrap_or_else(|| {
                format!(
                    "https://posture-operator.{}.svc:{}",
                    self.lease_namespace,
                    self.api_addr.port()
                )
            }),
            ca_pem,
            env: self.collector_env.clone(),
        }))
    }
}

/// Opens the store and reads the snapshots it kept.
fn open_store(path: &std::path::Path) -> Result<(crate::inventory::store::Store, api::Snapshots)> {
    let store = crate::inventory::store::Store::open(path).with_context(|| {
        format!(
            "cannot open the store {}: pass --db with a writable file (in a pod, mount a volume there)",
            path.display()
        )
    })?;
    let mut kept = std::collections::BTreeMap::new();
    for record in store.snapshots()? {
        match crate::inventory::cloud::snapshot::AwsSnapshot::parse(record.body.as_bytes()) {
            Ok(snapshot) => {
                let status = crate::api::AcceptedSnapshot {
                    collected_at: record.collected_at.clone(),
                    accepted_at: record.accepted_at.clone(),
                    accounts: record.accounts.clone(),
                    not_collected: snapshot
                        .accounts
                        .iter()
                        .map(|a| a.missing_sections().len() as u32)
                        .sum(),
                };
                kept.insert(
                    record.policy.clone(),
                    api::Accepted {
                        source: crate::inventory::cloud::SnapshotSource {
                            policy: Some(record.policy.clone()),
                            ..Default::default()
                        },
                        snapshot: Arc::new(snapshot),
                        body: Arc::from(record.body),
                        status,
                    },
                );
            }
            Err(e) => tracing::warn!(policy = %record.policy, "ignoring a stored snapshot: {e}"),
        }
    }
    if !kept.is_empty() {
        tracing::info!(
            snapshots = kept.len(),
            "cloud snapshots read from the store"
        );
    }
    Ok((store, Arc::new(RwLock::new(kept))))
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(args: OperatorArgs) -> Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot reach Kubernetes: set KUBECONFIG or run in a pod with a ServiceAccount")?;
    ensure_crds(&client).await?;
    let (store, snapshots) = open_store(&args.db)?;
    let store = Arc::new(Mutex::new(store));
    let collector_settings = args.collector_settings()?;

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

    let (cloud_tx, cloud_rx) = signal::channel(0u64);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let reloader = crate::admission::tls::CertReloader::new(cert, key)?;
        let tls = crate::admission::tls::server_config(reloader.clone())?;
        let listener = tokio::net::TcpListener::bind(args.api_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}; choose another --api-addr",
                    args.api_addr
                )
            })?;
        let state = Arc::new(api::ApiState {
            client: client.clone(),
            leader: leader_rx.clone(),
            store: store.clone(),
            db_path: args.db.clone(),
            snapshots: snapshots.clone(),
            cloud_changed: cloud_tx.clone(),
        });
        {
            let metrics = metrics.clone();
            tokio::spawn(
                reloader.watch(Duration::from_secs(2), move || metrics.error("tls_reload")),
            );
        }
        tracing::info!(addr = %args.api_addr, "serving the API (ingest, query, cloud)");
        tokio::spawn(crate::net::serve_https(listener, tls, api::router(state)));
    } else {
        tracing::info!("no --tls-cert/--tls-key: the API (snapshot ingest, queries) is off");
    }
    tokio::spawn(collectors::run(
        client.clone(),
        collector_settings,
        leader_rx.clone(),
        shutdown_rx.clone(),
    ));

    let observer: Arc<dyn crate::collect::cluster::WatchObserver> = metrics.clone();
    let changes = crate::collect::cluster::start(&client, &observer);
    let controller =
        controller::Controller::new(client, metrics, &args, store, snapshots, cloud_rx);
    controller.run(changes, leader_rx, shutdown_rx).await;
    drop(cloud_tx);
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
