//! Findings as custom resources: built from the engine's results, named by a stable
//! fingerprint, written with server-side apply under the field manager `posture`,
//! resolved when their condition stops holding and deleted after the retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::metrics::Metrics;
use crate::api::{Evidence, Finding, FindingSpec, FindingState, FrameworkRef, SubjectRef};
use crate::inventory::ObjectKey;
use crate::rules::{Engine, RawFinding, fingerprint};

pub const FIELD_MANAGER: &str = "posture";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

const MAX_EVIDENCE: usize = 16;
const MAX_EVIDENCE_LEN: usize = 512;
const MAX_AFFECTED: usize = 32;

pub fn subject_ref(key: &ObjectKey) -> SubjectRef {
    let cloud = key.kind.is_cloud();
    SubjectRef {
        api_version: key.kind.api_version().map(str::to_owned),
        kind: key.kind.as_str().to_owned(),
        namespace: key.namespace.clone(),
        name: if cloud {
            crate::inventory::cloud::short_name(&key.name).to_owned()
        } else {
            key.name.clone()
        },
        uid: None,
        cloud_id: cloud.then(|| key.name.clone()),
        display: match cloud {
            true => format!(
                "{}/{}",
                key.kind,
                crate::inventory::cloud::short_name(&key.name)
            ),
            false => format!("{}/{}", key.kind, key.name),
        },
    }
}

/// Object name: `<rule>-<first 16 hex of the fingerprint>`.
pub fn finding_name(rule: &str, fingerprint: &str) -> String {
    format!("{rule}-{}", &fingerprint[..16])
}

/// Where the Finding lives: the subject's namespace, or the governing ScanPolicy's for
/// cluster-scoped and cloud subjects.
pub fn finding_namespace(raw: &RawFinding) -> String {
    raw.subject
        .namespace()
        .map(str::to_owned)
        .or_else(|| {
            raw.policy
                .as_ref()
                .and_then(|p| p.split_once('/').map(|(ns, _)| ns.to_owned()))
        })
        .unwrap_or_else(|| "default".to_owned())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The Finding object for a raw finding (spec and metadata; status is written apart).
pub fn build(raw: &RawFinding, engine: &Engine) -> Finding {
    let meta = &engine
        .rule(raw.rule)
        .expect("findings come from catalog rules")
        .meta;
    let fp = fingerprint(raw.rule, &raw.subject);
    let spec = FindingSpec {
        rule: raw.rule.to_owned(),
        title: meta.title.to_owned(),
        severity: raw.severity,
        category: meta.category,
        subject: subject_ref(&raw.subject),
        message: truncate(&raw.hit.message, 1024),
        evidence: raw
            .hit
            .evidence
            .iter()
            .take(MAX_EVIDENCE)
            .map(|(k, v)| Evidence {
                key: k.clone(),
                value: truncate(v, MAX_EVIDENCE_LEN),
            })
            .collect(),
        remediation: meta.remediation.to_owned(),
        tags: meta.tags.iter().map(|t| t.to_string()).collect(),
        affected: raw
            .hit
            .affected
            .iter()
            .take(MAX_AFFECTED)
            .map(subject_ref)
            .collect(),
        frameworks: meta
            .frameworks
            .iter()
            .map(|(f, c)| FrameworkRef {
                framework: f.to_string(),
                control: c.to_string(),
            })
            .collect(),
        fingerprint: fp.clone(),
        policy: raw.policy.clone(),
    };
    let mut finding = Finding::new(&finding_name(raw.rule, &fp), spec);
    finding.metadata = ObjectMeta {
        name: finding.metadata.name.take(),
        namespace: Some(finding_namespace(raw)),
        labels: Some(
            [
                (MANAGED_BY.to_owned(), "posture".to_owned()),
                (
                    "posture.dev/severity".to_owned(),
                    raw.severity.as_str().to_owned(),
                ),
                (
                    "posture.dev/category".to_owned(),
                    meta.category.as_str().to_owned(),
                ),
                ("posture.dev/rule".to_owned(), raw.rule.to_owned()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    finding
}

/// What the writer knows of a Finding in the cluster.
#[derive(Debug, Clone)]
struct Known {
    state: FindingState,
    first_seen: String,
    resolved_at: Option<Timestamp>,
    spec: Option<FindingSpec>,
}

/// Spaces writes out to at most `qps` per second.
struct RateLimiter {
    interval: Duration,
    next: tokio::time::Instant,
}

impl RateLimiter {
    fn new(qps: u32) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / f64::from(qps.max(1))),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next = self.next.max(now) + self.interval;
    }
}

pub struct FindingWriter {
    client: Client,
    metrics: Arc<Metrics>,
    known: HashMap<(String, String), Known>,
    limiter: RateLimiter,
}

fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

impl FindingWriter {
    pub fn new(client: Client, metrics: Arc<Metrics>, qps: u32) -> Self {
        Self {
            client,
            metrics,
            known: HashMap::new(),
            limiter: RateLimiter::new(qps),
        }
    }

    /// Reads every Finding we manage, so restarts neither duplicate nor forget them.
    pub async fn load(&mut self) -> Result<(), kube::Error> {
        let api: Api<Finding> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(&format!("{MANAGED_BY}=posture")))
            .await?;
        self.known.clear();
        for finding in list {
            let status = finding.status.clone().unwrap_or_default();
            self.known.insert(
                (finding.namespace().unwrap_or_default(), finding.name_any()),
                Known {
                    state: status.state,
                    first_seen: status.first_seen.unwrap_or_else(now_rfc3339),
                    resolved_at: status.resolved_at.and_then(|t| t.parse().ok()),
                    spec: Some(finding.spec),
                },
            );
        }
        Ok(())
    }

    /// Writes a current finding (Open or Suppressed) if anything about it changed.
    pub async fn upsert(&mut self, raw: &RawFinding, engine: &Engine) {
        let finding = build(raw, engine);
        let ns = finding.namespace().unwrap_or_default();
        let name = finding.name_any();
        let state = if raw.suppressed_by.is_some() {
            FindingState::Suppressed
        } else {
            FindingState::Open
        };
        let key = (ns.clone(), name.clone());
        if let Some(known) = self.known.get(&key)
            && known.state == state
            && known.spec.as_ref() == Some(&finding.spec)
        {
            return;
        }
        let api: Api<Finding> = Api::namespaced(self.client.clone(), &ns);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        self.limiter.wait().await;
        let mut body = serde_json::to_value(&finding).expect("serializable");
        body["apiVersion"] = json!("posture.dev/v1alpha1");
        body["kind"] = json!("Finding");
        if let Err(e) = api.patch(&name, &pp, &Patch::Apply(&body)).await {
            tracing::warn!(finding = %name, namespace = %ns, "writing finding: {e}");
            self.metrics.error("finding_write");
            return;
        }
        self.metrics.writes.inc();
        let first_seen = self
            .known
            .get(&key)
            .map(|k| k.first_seen.clone())
            .unwrap_or_else(now_rfc3339);
        let status = json!({
            "apiVersion": "posture.dev/v1alpha1",
            "kind": "Finding",
            "status": {
                "state": state,
                "firstSeen": first_seen,
                "lastSeen": now_rfc3339(),
                "suppressedBy": raw.suppressed_by,
            }
        });
        self.limiter.wait().await;
        if let Err(e) = api.patch_status(&name, &pp, &Patch::Apply(&status)).await {
            tracing::warn!(finding = %name, "writing finding status: {e}");
            self.metrics.error("finding_status");
            return;
        }
        self.metrics.writes.inc();
        self.known.insert(
            key,
            Known {
                state,
                first_seen,
                resolved_at: None,
                spec: Some(finding.spec),
            },
        );
    }

    /// Marks a finding Resolved (its condition no longer holds).
    pub async fn resolve(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(known) = self.known.get(&key).cloned() else {
            return;
        };
        if known.state == FindingState::Resolved {
            return;
        }
        let api: Api<Finding> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let status = json!({
            "apiVersion": "posture.dev/v1alpha1",
            "kind": "Finding",
            "status": {
                "state": FindingState::Resolved,
                "firstSeen": known.first_seen,
                "lastSeen": now.to_string(),
                "resolvedAt": now.to_string(),
            }
        });
        self.limiter.wait().await;
        match api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await
        {
            Ok(_) => {
                self.metrics.writes.inc();
                self.known.insert(
                    key,
                    Known {
                        state: FindingState::Resolved,
                        resolved_at: Some(now),
                        ..known
                    },
                );
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.known.remove(&key);
            }
            Err(e) => {
                tracing::warn!(finding = %name, "resolving finding: {e}");
                self.metrics.error("finding_status");
            }
        }
    }

    pub async fn resolve_raw(&mut self, raw: &RawFinding) {
        let name = finding_name(raw.rule, &fingerprint(raw.rule, &raw.subject));
        self.resolve(&finding_namespace(raw), &name).await;
    }

    /// Findings we know of that are not in `current` (namespace, name) pairs.
    pub fn stale<'a>(
        &'a self,
        current: &'a std::collections::HashSet<(String, String)>,
    ) -> Vec<(String, String)> {
        self.known
            .iter()
            .filter(|(k, v)| v.state != FindingState::Resolved && !current.contains(*k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Deletes Resolved findings older than their retention.
    pub async fn collect_garbage(&mut self, retention: Duration) {
        let cutoff =
            Timestamp::now() - SignedDuration::try_from(retention).unwrap_or(SignedDuration::ZERO);
        let expired: Vec<(String, String)> = self
            .known
            .iter()
            .filter(|(_, v)| {
                v.state == FindingState::Resolved && v.resolved_at.is_some_and(|t| t < cutoff)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in expired {
            let api: Api<Finding> = Api::namespaced(self.client.clone(), &ns);
            self.limiter.wait().await;
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    self.metrics.writes.inc();
                    self.known.remove(&(ns, name));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.known.remove(&(ns, name));
                }
                Err(e) => tracing::warn!(finding = %name, "deleting resolved finding: {e}"),
            }
        }
    }
}
