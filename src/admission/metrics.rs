//! Prometheus metrics of the webhook, served on its plain port with `/healthz` and
//! `/readyz`.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::inventory::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: String,
    /// allowed, denied, warned, error, overloaded
    pub decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
    /// deny, warn, audit, exception
    pub action: String,
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
    pub requests: Family<RequestLabels, Counter>,
    pub rule_decisions: Family<RuleLabels, Counter>,
    pub duration: Histogram,
    pub watch_events: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabel, Counter>,
    pub inventory_objects: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("posture_admission");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "AdmissionReview requests by object kind and decision",
            requests.clone(),
        );
        let rule_decisions = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_decisions",
            "Findings introduced by admitted or denied changes, by rule and action",
            rule_decisions.clone(),
        );
        let duration = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        registry.register(
            "duration_seconds",
            "Time to answer an AdmissionReview",
            duration.clone(),
        );
        let watch_events = Family::<KindLabel, Counter>::default();
        registry.register(
            "watch_events",
            "Watch events applied to the webhook's inventory",
            watch_events.clone(),
        );
        let errors = Family::<ErrorLabel, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let inventory_objects = Gauge::default();
        registry.register(
            "inventory_objects",
            "Objects in the webhook's inventory",
            inventory_objects.clone(),
        );
        Self {
            registry,
            requests,
            rule_decisions,
            duration,
            watch_events,
            errors,
            inventory_objects,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn request(&self, kind: &str, decision: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.to_owned(),
                decision: decision.to_owned(),
            })
            .inc();
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

impl crate::collect::cluster::WatchObserver for Metrics {
    fn event(&self, kind: Kind) {
        self.watch_events
            .get_or_create(&KindLabel {
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    fn error(&self, what: &'static str) {
        self.errors
            .get_or_create(&ErrorLabel {
                error: what.to_owned(),
            })
            .inc();
    }
}
