//! The controller loop: applies watch changes to the inventory in batches, re-evaluates
//! what they touch, and — when leading — writes the differences.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch as signal};

use super::OperatorArgs;
use super::findings::{self, FindingWriter};
use super::metrics::{FindingLabels, Metrics};
use super::tags;
use crate::api::{Category, ScanPolicy, Severity, SeverityCounts};
use crate::collect::cluster::{Change, WATCHED};
use crate::inventory::{Inventory, Kind, ObjectKey};
use crate::rules::policy::{Policy, PolicySet, today};
use crate::rules::{Engine, Evaluation, EvaluationDiff};

/// How long changes are collected before one evaluation pass handles them together.
const BATCH_WINDOW: Duration = Duration::from_millis(150);

pub struct Controller {
    client: Client,
    metrics: Arc<Metrics>,
    engine: Engine,
    inventory: Inventory,
    policies: BTreeMap<String, ScanPolicy>,
    policy_set: PolicySet,
    evaluation: Evaluation,
    writer: FindingWriter,
    synced: HashSet<Kind>,
    policies_synced: bool,
    evaluated_once: bool,
    leading: bool,
    resync: Duration,
    last_counts: BTreeMap<String, SeverityCounts>,
}

impl Controller {
    pub fn new(client: Client, metrics: Arc<Metrics>, args: &OperatorArgs) -> Self {
        Self {
            writer: FindingWriter::new(client.clone(), metrics.clone(), args.write_qps),
            client,
            metrics,
            engine: Engine::default(),
            inventory: Inventory::new(),
            policies: BTreeMap::new(),
            policy_set: PolicySet::default(),
            evaluation: Evaluation::default(),
            synced: HashSet::new(),
            policies_synced: false,
            evaluated_once: false,
            leading: false,
            resync: Duration::from_secs(args.resync_seconds.max(10)),
            last_counts: BTreeMap::new(),
        }
    }

    fn all_synced(&self) -> bool {
        self.policies_synced && WATCHED.iter().all(|k| self.synced.contains(k))
    }

    pub async fn run(
        mut self,
        mut changes: mpsc::Receiver<Change>,
        mut leader: signal::Receiver<bool>,
        mut shutdown: signal::Receiver<bool>,
    ) {
        let mut resync = tokio::time::interval(self.resync);
        resync.tick().await;
        if *leader.borrow_and_update() {
            // Leading from the start (no election): the first evaluation writes all.
            self.leading = true;
            self.metrics.leader.set(1);
            self.take_over().await;
        }
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return };
                    let mut batch = vec![change];
                    let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
                    while let Ok(Some(more)) = tokio::time::timeout_at(deadline, changes.recv()).await {
                        batch.push(more);
                        if batch.len() >= 10_000 {
                            break;
                        }
                    }
                    self.handle(batch).await;
                }
                _ = leader.changed() => {
                    let now_leading = *leader.borrow();
                    self.metrics.leader.set(i64::from(now_leading));
                    if now_leading && !self.leading {
                        self.leading = true;
                        self.take_over().await;
                    }
                    self.leading = now_leading;
                }
                _ = resync.tick() => {
                    if self.all_synced() {
                        let subjects = self.full_subjects();
                        self.evaluate(subjects, true).await;
                        if self.leading {
                            let retention = self.retention();
                            self.writer.collect_garbage(retention).await;
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn retention(&self) -> Duration {
        self.policy_set
            .policies()
            .iter()
            .map(Policy::retention)
            .min()
            .unwrap_or(Duration::from_secs(168 * 3600))
    }

    fn rebuild_policies(&mut self) {
        let today = today();
        self.policy_set = PolicySet::new(
            self.policies
                .values()
                .map(|p| Policy::from_resource(p, today))
                .collect(),
        );
    }

    fn full_subjects(&self) -> BTreeSet<ObjectKey> {
        let mut subjects = Engine::subjects(&self.inventory);
        // Subjects that disappeared must be re-evaluated to resolve their findings.
        subjects.extend(self.evaluation.findings().map(|f| f.subject.clone()));
        subjects
    }

    async fn handle(&mut self, batch: Vec<Change>) {
        let mut subjects = BTreeSet::new();
        let mut full = false;
        for change in batch {
            match change {
                Change::Apply(object) => {
                    if let Some(old) = self.inventory.apply(object.clone()) {
                        subjects.extend(Engine::affected_by(&self.inventory, &old));
                    }
                    subjects.extend(Engine::affected_by(&self.inventory, &object));
                }
                Change::Delete(key) => {
                    if let Some(old) = self.inventory.delete(&key) {
                        subjects.extend(Engine::affected_by(&self.inventory, &old));
                    }
                }
                Change::Relisted(kind, objects) => {
                    self.inventory.replace_kind(kind, objects);
                    self.synced.insert(kind);
                    full = true;
                }
                Change::Policy(policy) => {
                    self.policies.insert(policy_key(&policy), *policy);
                    full = true;
                }
                Change::PolicyDeleted(key) => {
                    self.policies.remove(&key);
                    full = true;
                }
                Change::PoliciesRelisted(list) => {
                    self.policies = list.into_iter().map(|p| (policy_key(&p), p)).collect();
                    self.policies_synced = true;
                    full = true;
                }
            }
        }
        self.metrics
            .inventory_objects
            .set(self.inventory.len() as i64);
        if !self.all_synced() {
            return;
        }
        if full || !self.evaluated_once {
            self.rebuild_policies();
            subjects = self.full_subjects();
        }
        let first = !self.evaluated_once;
        self.evaluated_once = true;
        self.evaluate(subjects, full).await;
        if first {
            self.metrics.set_ready();
            tracing::info!(
                objects = self.inventory.len(),
                findings = self.evaluation.len(),
                policies = self.policies.len(),
                "inventory synced and evaluated"
            );
            if self.policies.is_empty() {
                tracing::warn!(
                    "no ScanPolicy exists: nothing is evaluated. Create one, e.g. `kubectl apply -f config/scanpolicy-default.yaml`"
                );
            }
        }
    }

    async fn evaluate(&mut self, subjects: BTreeSet<ObjectKey>, full: bool) {
        let started = Instant::now();
        let diff =
            self.evaluation
                .update(&self.engine, &self.inventory, &self.policy_set, &subjects);
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        self.update_finding_metrics();
        if !diff.is_empty() {
            tracing::info!(
                subjects = subjects.len(),
                new_or_changed = diff.upserted.len(),
                resolved = diff.resolved.len(),
                micros = started.elapsed().as_micros() as u64,
                "evaluated"
            );
        }
        if self.leading {
            self.write(&diff, full).await;
        }
    }

    fn update_finding_metrics(&self) {
        let mut counts: BTreeMap<(Severity, Category), i64> = BTreeMap::new();
        for finding in self
            .evaluation
            .findings()
            .filter(|f| f.suppressed_by.is_none())
        {
            if let Some(rule) = self.engine.rule(finding.rule) {
                *counts
                    .entry((finding.severity, rule.meta.category))
                    .or_default() += 1;
            }
        }
        for severity in Severity::ALL {
            for category in Category::ALL {
                let labels = FindingLabels {
                    severity: severity.to_string(),
                    category: category.to_string(),
                };
                self.metrics
                    .findings
                    .get_or_create(&labels)
                    .set(counts.get(&(severity, category)).copied().unwrap_or(0));
            }
        }
    }

    /// Becoming the leader: learn what is in the cluster, then write every difference.
    async fn take_over(&mut self) {
        if let Err(e) = self.writer.load().await {
            tracing::warn!("listing existing findings: {e}");
            self.metrics.error("finding_list");
        }
        if self.evaluated_once {
            self.write(&EvaluationDiff::default(), true).await;
        }
    }

    async fn write(&mut self, diff: &EvaluationDiff, full: bool) {
        // Findings.
        if full {
            let mut current = HashSet::new();
            for finding in self.evaluation.findings() {
                let name = findings::finding_name(
                    finding.rule,
                    &crate::rules::fingerprint(finding.rule, &finding.subject),
                );
                current.insert((findings::finding_namespace(finding), name));
            }
            let findings: Vec<_> = self.evaluation.findings().cloned().collect();
            for finding in &findings {
                self.writer.upsert(finding, &self.engine).await;
            }
            for (ns, name) in self.writer.stale(&current) {
                self.writer.resolve(&ns, &name).await;
            }
        } else {
            for key in &diff.upserted {
                if let Some(finding) = self.evaluation.get(key).cloned() {
                    self.writer.upsert(&finding, &self.engine).await;
                }
            }
            for finding in &diff.resolved {
                self.writer.resolve_raw(finding).await;
            }
        }
        // Tags.
        let workloads: Vec<ObjectKey> = if full {
            let mut all: BTreeSet<ObjectKey> = self.inventory.root_workloads().cloned().collect();
            // Tagged objects that are not workloads (ConfigMaps with sensitive data).
            all.extend(
                self.evaluation
                    .findings()
                    .flat_map(|f| f.hit.affected.iter().cloned()),
            );
            all.into_iter().collect()
        } else {
            diff.workloads.iter().cloned().collect()
        };
        for workload in workloads {
            let Some(current) = tags::current(&self.inventory, &workload) else {
                continue;
            };
            if self.inventory.root_of(&workload) != workload {
                continue;
            }
            let desired = tags::desired(&self.evaluation.tags_of(&workload));
            if current == desired {
                continue;
            }
            match tags::apply(&self.client, &workload, &desired.0, &desired.1).await {
                Ok(()) => {
                    self.metrics.writes.inc();
                }
                Err(e) => {
                    tracing::warn!(workload = %workload, "tagging: {e}");
                    self.metrics.error("tag_write");
                }
            }
        }
        self.write_policy_status().await;
    }

    async fn write_policy_status(&mut self) {
        let mut counts: BTreeMap<String, SeverityCounts> = self
            .policies
            .keys()
            .map(|k| (k.clone(), SeverityCounts::default()))
            .collect();
        for finding in self
            .evaluation
            .findings()
            .filter(|f| f.suppressed_by.is_none())
        {
            if let Some(c) = finding.policy.as_ref().and_then(|p| counts.get_mut(p)) {
                c.add(finding.severity);
            }
        }
        for (key, count) in counts {
            if self.last_counts.get(&key) == Some(&count) {
                continue;
            }
            let Some(policy) = self.policies.get(&key) else {
                continue;
            };
            let api: Api<ScanPolicy> =
                Api::namespaced(self.client.clone(), &policy.namespace().unwrap_or_default());
            let now = Timestamp::now().to_string();
            let status = json!({
                "apiVersion": "posture.dev/v1alpha1",
                "kind": "ScanPolicy",
                "status": {
                    "conditions": [{
                        "type": "Ready", "status": "True", "reason": "Evaluated",
                        "message": "the inventory is synced and the rules are evaluated",
                        "lastTransitionTime": now, "observedGeneration": policy.metadata.generation,
                    }],
                    "observedGeneration": policy.metadata.generation,
                    "counts": count,
                    "lastEvaluation": now,
                }
            });
            match api
                .patch_status(
                    &policy.name_any(),
                    &PatchParams::apply(findings::FIELD_MANAGER).force(),
                    &Patch::Apply(&status),
                )
                .await
            {
                Ok(_) => {
                    self.metrics.writes.inc();
                    self.last_counts.insert(key, count);
                }
                Err(e) => tracing::warn!(policy = %key, "writing ScanPolicy status: {e}"),
            }
        }
    }
}

fn policy_key(policy: &ScanPolicy) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}
