//! The validating admission webhook: the cluster as it would be after a change, judged
//! by the same engine as the operator and `posture scan`; changes that introduce public
//! exposure or over-privileged identity are denied, warned about or audited.
//!
//! It keeps its own watch-backed inventory (the cluster collector, shared with the
//! operator as code, not as a process).

pub mod cloud;
pub mod config;
pub mod decide;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{AdmissionMode, Finding};
use crate::rules::{Engine, RawFinding};

/// What applies in namespaces no ScanPolicy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DefaultMode {
    Enforce,
    Warn,
    Audit,
    /// Namespaces without a ScanPolicy are not checked.
    Off,
}

impl DefaultMode {
    fn mode(self) -> Option<AdmissionMode> {
        match self {
            DefaultMode::Enforce => Some(AdmissionMode::Enforce),
            DefaultMode::Warn => Some(AdmissionMode::Warn),
            DefaultMode::Audit => Some(AdmissionMode::Audit),
            DefaultMode::Off => None,
        }
    }
}

/// `posture webhook` options.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// HTTPS address of /validate.
    #[arg(long, default_value = "0.0.0.0:8443", env = "POSTURE_WEBHOOK_LISTEN")]
    pub listen: SocketAddr,
    /// PEM certificate chain; re-read when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "print_config")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; re-read when the file changes.
    #[arg(long, value_name = "FILE", required_unless_present = "print_config")]
    pub tls_key: Option<PathBuf>,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "POSTURE_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// What applies in namespaces no ScanPolicy governs.
    #[arg(long, value_enum, default_value_t = DefaultMode::Enforce)]
    pub default_mode: DefaultMode,
    /// Requests evaluated or waiting at once; more get 503 (the failurePolicy applies).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Print the ValidatingWebhookConfiguration for this webhook and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub config: config::ConfigArgs,
    #[command(flatten)]
    pub cloud: cloud::CloudArgs,
}

pub async fn run(args: WebhookArgs) -> Result<()> {
    if args.print_config {
        print!("{}", config::render(&args.config, args.default_mode)?);
        return Ok(());
    }
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        anyhow::bail!("--tls-cert and --tls-key are required");
    };
    let reloader = tls::CertReloader::new(cert, key)?;
    let tls_config = tls::server_config(reloader.clone())?;
    let config = kube_config(&args).await?;
    let client = Client::try_from(config.clone())
        .context("cannot reach Kubernetes: pass --kubeconfig, set KUBECONFIG, or run in a pod with a ServiceAccount")?;

    let metrics = Arc::new(metrics::Metrics::default());
    let (audit_tx, audit_rx) = mpsc::channel(1024);
    let app = Arc::new(server::App::new(
        server::Cluster::new(args.default_mode.mode()),
        metrics.clone(),
        args.max_in_flight,
        Some(audit_tx),
    ));
    let observer: Arc<dyn crate::collect::cluster::WatchObserver> = metrics.clone();
    let changes = crate::collect::cluster::start_keeping(&client, &observer, |o| {
        !crate::collect::cluster::controlled_pod(o)
    });
    tokio::spawn(app.clone().follow(changes));
    tokio::spawn(cloud::follow(app.clone(), args.cloud.clone(), config));
    tokio::spawn(write_audit_findings(client.clone(), audit_rx));
    {
        let metrics = metrics.clone();
        tokio::spawn(reloader.watch(Duration::from_secs(2), move || {
            crate::collect::cluster::WatchObserver::error(&*metrics, "tls_reload")
        }));
    }

    let ops = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for metrics; choose another --metrics-addr",
                args.metrics_addr
            )
        })?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(ops, server::ops_router(metrics)).await {
            tracing::error!("metrics server: {e}");
        }
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; choose another --listen", args.listen))?;
    let (blocking, severity) = decide::default_blocking();
    tracing::info!(
        listen = %args.listen, metrics = %args.metrics_addr, default_mode = ?args.default_mode,
        ?blocking, ?severity, "serving /validate"
    );
    let serve = crate::net::serve_https(listener, tls_config, server::router(app));
    tokio::select! {
        _ = serve => {}
        _ = crate::operator::wait_for_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

async fn kube_config(args: &WebhookArgs) -> Result<kube::Config> {
    let hint = "cannot reach Kubernetes: pass --kubeconfig, set KUBECONFIG, or run in a pod with a ServiceAccount";
    let config = match (&args.kubeconfig, &args.context) {
        (None, None) => kube::Config::infer().await.context(hint)?,
        (path, context) => {
            let kubeconfig = match path {
                Some(path) => kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => kube::config::Kubeconfig::read().context(hint)?,
            };
            let options = kube::config::KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .context(hint)?
        }
    };
    Ok(config)
}

/// Audit mode: the finding a change introduced becomes a Finding at once (the operator
/// keeps it up to date afterwards, under its own field manager).
async fn write_audit_findings(client: Client, mut rx: mpsc::Receiver<RawFinding>) {
    let engine = Engine::default();
    let params = PatchParams::apply("posture-webhook").force();
    while let Some(raw) = rx.recv().await {
        let finding = crate::operator::findings::build(&raw, &engine);
        let ns = crate::operator::findings::finding_namespace(&raw);
        let name = finding.metadata.name.clone().unwrap_or_default();
        let api: Api<Finding> = Api::namespaced(client.clone(), &ns);
        let mut body = serde_json::to_value(&finding).unwrap_or_default();
        body["apiVersion"] = json!("posture.dev/v1alpha1");
        body["kind"] = json!("Finding");
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({
            "apiVersion": "posture.dev/v1alpha1",
            "kind": "Finding",
            "status": {"state": "Open", "firstSeen": now, "lastSeen": now},
        });
        let written = match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => {
                api.patch_status(&name, &params, &Patch::Apply(&status))
                    .await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => tracing::info!(finding = %name, namespace = %ns, "audit: recorded"),
            Err(e) => tracing::warn!(finding = %name, namespace = %ns, "audit: cannot record: {e}"),
        }
    }
}
