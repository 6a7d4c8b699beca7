//! Prometheus metrics of the operator and the plain-HTTP server that serves them with
//! `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub severity: String,
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

pub struct Metrics {
    registry: Registry,
    pub findings: Family<FindingLabels, Gauge>,
    pub evaluation_seconds: Histogram,
    pub watch_events: Family<KindLabel, Counter>,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub writes: Counter,
    pub leader: Gauge,
    pub inventory_objects: Gauge,
    pub cloud_snapshots: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("posture");
        let findings = Family::<FindingLabels, Gauge>::default();
        registry.register(
            "findings",
            "Open findings by severity and category",
            findings.clone(),
        );
        let evaluation_seconds = Histogram::new([
            0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "evaluation_duration_seconds",
            "Time to evaluate the rules after a change",
            evaluation_seconds.clone(),
        );
        let watch_events = Family::<KindLabel, Counter>::default();
        registry.register(
            "watch_events",
            "Watch events received, by kind",
            watch_events.clone(),
        );
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed writes and watch errors, by error",
            reconcile_errors.clone(),
        );
        let writes = Counter::default();
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API (findings, status, tags)",
            writes.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        let inventory_objects = Gauge::default();
        registry.register(
            "inventory_objects",
            "Objects in the inventory",
            inventory_objects.clone(),
        );
        let cloud_snapshots = Gauge::default();
        registry.register(
            "cloud_snapshots",
            "Accepted cloud snapshots in use",
            cloud_snapshots.clone(),
        );
        Self {
            registry,
            cloud_snapshots,
            findings,
            evaluation_seconds,
            watch_events,
            reconcile_errors,
            writes,
            leader,
            inventory_objects,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn error(&self, label: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                error: label.to_owned(),
            })
            .inc();
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "inventory not synced yet")
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} for metrics: {e}; choose another --metrics-addr")
    })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

impl crate::collect::cluster::WatchObserver for Metrics {
    fn event(&self, kind: crate::inventory::Kind) {
        self.watch_events
            .get_or_create(&KindLabel {
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    fn error(&self, what: &'static str) {
        Metrics::error(self, what);
    }
}
