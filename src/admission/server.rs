//! The webhook's HTTPS server (`/validate`) and its plain server (`/healthz`,
//! `/readyz`, `/metrics`), and the state the watches keep up to date.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::jiff::civil::Date;
use tokio::sync::{Semaphore, mpsc};

use super::decide::{Action, Decision, decide};
use super::metrics::Metrics;
use super::review::{self, AdmissionRequest, ReviewResponse, Which};
use crate::api::{AdmissionMode, AdmissionSettings, ScanPolicy, ScanPolicySpec};
use crate::collect::cluster::{Change, WATCHED};
use crate::inventory::{Inventory, Kind};
use crate::rules::policy::{Policy, PolicySet, today};
use crate::rules::{Engine, RawFinding};

/// Inventory and policies as the watches last saw them.
pub struct Cluster {
    pub inventory: Inventory,
    policies: BTreeMap<String, ScanPolicy>,
    set: PolicySet,
    set_date: Option<Date>,
    default_mode: Option<AdmissionMode>,
    synced: std::collections::BTreeSet<Kind>,
    policies_synced: bool,
}

impl Cluster {
    pub fn new(default_mode: Option<AdmissionMode>) -> Self {
        Self {
            inventory: Inventory::new(),
            policies: BTreeMap::new(),
            set: PolicySet::default(),
            set_date: None,
            default_mode,
            synced: Default::default(),
            policies_synced: false,
        }
    }

    /// The ScanPolicies, then the built-in defaults for namespaces none covers.
    fn policy_set(&mut self) -> PolicySet {
        let today = today();
        if self.set_date != Some(today) {
            let mut set = PolicySet::new(
                self.policies
                    .values()
                    .map(|p| Policy::from_resource(p, today))
                    .collect(),
            );
            if let Some(mode) = self.default_mode {
                let spec = ScanPolicySpec {
                    admission: Some(AdmissionSettings {
                        mode,
                        ..AdmissionSettings::default()
                    }),
                    ..ScanPolicySpec::default()
                };
                set = set.with_fallback(Policy::from_spec(None, None, spec, today));
            }
            self.set = set;
            self.set_date = Some(today);
        }
        self.set.clone()
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Apply(object) => {
                self.inventory.apply(object);
            }
            Change::Delete(key) => {
                self.inventory.delete(&key);
            }
            Change::Relisted(kind, objects) => {
                self.inventory.replace_kind(kind, objects);
                self.synced.insert(kind);
            }
            Change::Policy(policy) => {
                self.policies.insert(policy_key(&policy), *policy);
                self.set_date = None;
            }
            Change::PolicyDeleted(key) => {
                self.policies.remove(&key);
                self.set_date = None;
            }
            Change::PoliciesRelisted(list) => {
                self.policies = list.into_iter().map(|p| (policy_key(&p), p)).collect();
                self.policies_synced = true;
                self.set_date = None;
            }
        }
    }

    pub fn synced(&self) -> bool {
        self.policies_synced && WATCHED.iter().all(|k| self.synced.contains(k))
    }
}

fn policy_key(p: &ScanPolicy) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default()
    )
}

pub struct App {
    pub engine: Engine,
    pub cluster: Mutex<Cluster>,
    pub metrics: Arc<Metrics>,
    permits: Semaphore,
    /// Writes Findings for Audit mode; absent in tests without a cluster.
    audit: Option<mpsc::Sender<RawFinding>>,
}

impl App {
    pub fn new(
        cluster: Cluster,
        metrics: Arc<Metrics>,
        max_in_flight: usize,
        audit: Option<mpsc::Sender<RawFinding>>,
    ) -> Self {
        Self {
            engine: Engine::default(),
            cluster: Mutex::new(cluster),
            metrics,
            permits: Semaphore::new(max_in_flight.max(1)),
            audit,
        }
    }

    /// Applies watch changes until the channel closes.
    pub async fn follow(self: Arc<Self>, mut changes: mpsc::Receiver<Change>) {
        while let Some(change) = changes.recv().await {
            let Ok(mut cluster) = self.cluster.lock() else {
                return;
            };
            cluster.apply(change);
            // Drain what is queued under the same lock.
            while let Ok(change) = changes.try_recv() {
                cluster.apply(change);
            }
            self.metrics
                .inventory_objects
                .set(cluster.inventory.len() as i64);
            if cluster.synced() && !self.metrics.is_ready() {
                tracing::info!(objects = cluster.inventory.len(), "inventory synced, ready");
                self.metrics.set_ready();
            }
        }
    }

    /// The answer to one AdmissionRequest.
    pub fn review(&self, request: &AdmissionRequest) -> (ReviewResponse, &'static str) {
        let kind = request.kind.kind.as_str();
        let allow_with = |warning: String| {
            (
                ReviewResponse::new(&request.uid, true, None, vec![warning]),
                "allowed",
            )
        };
        if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
            return (
                ReviewResponse::new(&request.uid, true, None, vec![]),
                "allowed",
            );
        }
        let incoming = match request.object(Which::New) {
            Ok(Some(object)) => object,
            Ok(None) => {
                return allow_with(format!(
                    "posture: {kind} is not a kind posture evaluates; admitted unchecked"
                ));
            }
            Err(why) => {
                self.metrics.error_count("malformed_request");
                return allow_with(format!("posture: cannot evaluate this request: {why}"));
            }
        };
        let old = request.object(Which::Old).ok().flatten();
        let decision = {
            let Ok(mut cluster) = self.cluster.lock() else {
                return allow_with("posture: internal error, admitted unchecked".into());
            };
            let policies = cluster.policy_set();
            decide(
                &self.engine,
                &mut cluster.inventory,
                &policies,
                &incoming,
                old.as_ref(),
            )
        };
        self.record(request, &decision);
        let outcome = if !decision.allowed {
            "denied"
        } else if decision.introduced.iter().any(|i| i.action == Action::Warn) {
            "warned"
        } else {
            "allowed"
        };
        (
            ReviewResponse::new(
                &request.uid,
                decision.allowed,
                decision.message.clone(),
                decision.warnings.clone(),
            ),
            outcome,
        )
    }

    fn record(&self, request: &AdmissionRequest, decision: &Decision) {
        for introduced in &decision.introduced {
            if introduced.action == Action::Ignored {
                continue;
            }
            self.metrics
                .rule_decisions
                .get_or_create(&super::metrics::RuleLabels {
                    rule: introduced.finding.rule.to_owned(),
                    action: introduced.action.as_str().to_owned(),
                })
                .inc();
        }
        if !decision.allowed {
            tracing::info!(
                kind = %request.kind.kind,
                namespace = request.namespace.as_deref().unwrap_or(""),
                name = request.name.as_deref().unwrap_or(""),
                user = request.user_info.as_ref().and_then(|u| u.username.as_deref()).unwrap_or(""),
                dry_run = request.dry_run(),
                "denied: {}",
                decision.message.as_deref().unwrap_or_default().replace('\n', " | ")
            );
        }
        // Dry-run requests are evaluated without side effects.
        if request.dry_run() {
            return;
        }
        if let Some(audit) = &self.audit {
            for finding in decision.audited() {
                if audit.try_send(finding.clone()).is_err() {
                    self.metrics.error_count("audit_queue_full");
                }
            }
        }
    }
}

impl Metrics {
    fn error_count(&self, what: &'static str) {
        crate::collect::cluster::WatchObserver::error(self, what);
    }
}

/// `?timeout=10s` as the API server sends it: the request's deadline.
fn deadline(query: &HashMap<String, String>) -> Duration {
    query
        .get("timeout")
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(10))
}

async fn validate(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request = match review::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            app.metrics.request("unknown", "error");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    // Back-pressure: wait for a slot at most half the deadline, then answer 503 at
    // once so the API server applies the failurePolicy instead of timing out.
    let wait = (deadline(&query) / 2).min(Duration::from_secs(2));
    let permit = match tokio::time::timeout(wait, app.permits.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            app.metrics.request(&request.kind.kind, "overloaded");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "posture webhook overloaded; retry\n",
            )
                .into_response();
        }
    };
    let (response, outcome) = app.review(&request);
    drop(permit);
    app.metrics.request(&request.kind.kind, outcome);
    app.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    axum::Json(response).into_response()
}

/// The HTTPS router: `/validate` only.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        // Objects are at most ~1.5 MB in etcd; an AdmissionReview carries two.
        .layer(DefaultBodyLimit::max(8 << 20))
        .with_state(app)
}

/// The plain router: health, readiness and metrics.
pub fn ops_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "inventory not synced yet")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }),
        )
        .with_state(metrics)
}
