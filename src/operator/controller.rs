//! The controller loop: applies watch changes to the inventory in batches, re-evaluates
//! what they touch, and — when leading — writes the differences.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, watch as signal};

use super::OperatorArgs;
use super::api::{Snapshots, source_of};
use super::findings::{self, FindingWriter};
use super::metrics::{FindingLabels, Metrics};
use super::tags;
use crate::api::{Category, ScanPolicy, Severity, SeverityCounts};
use crate::collect::cluster::{Change, WATCHED};
use crate::inventory::cloud::CloudInventory;
use crate::inventory::store::Store;
use crate::inventory::{Inventory, Kind, ObjectKey};
use crate::rules::policy::{Policy, PolicySet, today};
use crate::rules::{Engine, Evaluation, EvaluationDiff};

/// How long changes are collected before one evaluation pass handles them together.
const BATCH_WINDOW: Duration = Duration::from_millis(150);
/// How often the store is rewritten while the evaluation changes.
const STORE_INTERVAL: Duration = Duration::from_secs(10);

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
    store: Arc<Mutex<Store>>,
    snapshots: Snapshots,
    cloud_changed: signal::Receiver<u64>,
    /// The evaluation changed since the store was last written.
    store_dirty: bool,
    /// Workloads whose tag write failed, retried on the next tick.
    tag_retries: BTreeSet<ObjectKey>,
}

impl Controller {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        args: &OperatorArgs,
        store: Arc<Mutex<Store>>,
        snapshots: Snapshots,
        cloud_changed: signal::Receiver<u64>,
    ) -> Self {
        Self {
            store,
            snapshots,
            cloud_changed,
            store_dirty: true,
            tag_retries: BTreeSet::new(),
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
        let mut store_tick = tokio::time::interval(STORE_INTERVAL);
        let mut cloud_open = true;
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
                changed = self.cloud_changed.changed(), if cloud_open => {
                    if changed.is_err() {
                        cloud_open = false;
                        continue;
                    }
                    self.rebuild_cloud();
                    if self.all_synced() {
                        let subjects = self.full_subjects();
                        self.evaluate(subjects, true).await;
                    }
                }
                _ = store_tick.tick() => {
                    if self.store_dirty && self.evaluated_once {
                        self.write_store();
                    }
                    if self.leading && !self.tag_retries.is_empty() {
                        let retries: Vec<ObjectKey> = self.tag_retries.iter().cloned().collect();
                        self.write_tags(retries).await;
                    }
                }
                _ = shutdown.changed() => {
                    if self.store_dirty && self.evaluated_once {
                        self.write_store();
                    }
                    return;
                }
            }
        }
    }

    /// The cloud inventory of the accepted snapshots whose ScanPolicy still exists,
    /// judged by the policy as it is now (known accounts, EKS cluster).
    fn rebuild_cloud(&mut self) {
        if !self.policies_synced {
            return;
        }
        let Ok(mut map) = self.snapshots.write() else {
            return;
        };
        let gone: Vec<String> = map
            .keys()
            .filter(|k| !self.policies.get(*k).is_some_and(has_aws))
            .cloned()
            .collect();
        for key in &gone {
            map.remove(key);
            if let Ok(mut store) = self.store.lock()
                && let Err(e) = store.delete_snapshot(key)
            {
                tracing::warn!(policy = %key, "forgetting the snapshot: {e}");
            }
            tracing::info!(policy = %key, "the ScanPolicy is gone or collects no AWS: its snapshot is dropped");
        }
        for (key, accepted) in map.iter_mut() {
            if let Some(policy) = self.policies.get(key) {
                accepted.source = source_of(policy, key);
            }
        }
        let cloud = CloudInventory::build(map.values().map(|a| (&a.source, &*a.snapshot)));
        self.metrics.cloud_snapshots.set(map.len() as i64);
        drop(map);
        self.inventory.set_cloud(Arc::new(cloud));
        self.store_dirty = true;
    }

    /// Rewrites the store's inventory tables from the inventory and the evaluation.
    /// Rows stream into the transaction (a large cluster is not copied first); the
    /// controller waits for it, on a thread allowed to block.
    fn write_store(&mut self) {
        let started = Instant::now();
        let write = || -> Result<(), crate::inventory::store::StoreError> {
            let mut store = self.store.lock().map_err(|_| {
                crate::inventory::store::StoreError::Sql(rusqlite::Error::InvalidQuery)
            })?;
            store.replace_inventory(&Timestamp::now().to_string(), |sink| {
                crate::query::emit(&self.inventory, &self.evaluation, &self.engine, sink)
            })
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let written = if multi_thread {
            tokio::task::block_in_place(write)
        } else {
            write()
        };
        match written {
            Ok(()) => {
                self.store_dirty = false;
                tracing::debug!(
                    millis = started.elapsed().as_millis() as u64,
                    "store written"
                );
            }
            Err(e) => {
                tracing::warn!("writing the store: {e}");
                self.metrics.error("store_write");
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
        let mut cloud = false;
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
                    cloud = true;
                }
                Change::PolicyDeleted(key) => {
                    self.policies.remove(&key);
                    full = true;
                    cloud = true;
                }
                Change::PoliciesRelisted(list) => {
                    self.policies = list.into_iter().map(|p| (policy_key(&p), p)).collect();
                    self.policies_synced = true;
                    full = true;
                    cloud = true;
                }
            }
        }
        if cloud {
            self.rebuild_cloud();
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
        if !diff.is_empty() || full {
            self.store_dirty = true;
        }
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
        self.write_tags(workloads).await;
        self.write_policy_status().await;
    }

    /// Brings the tags of `workloads` to what the evaluation says. A write that fails
    /// (the API server busy, a webhook with failurePolicy Fail not up yet) is retried
    /// on the next tick rather than waiting for the next full pass; a ConfigMap the
    /// operator may not patch (its namespace was not opted in) is left alone.
    async fn write_tags(&mut self, workloads: Vec<ObjectKey>) {
        for workload in workloads {
            self.tag_retries.remove(&workload);
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
                Err(kube::Error::Api(e)) if e.code == 403 && workload.kind == Kind::ConfigMap => {
                    tracing::debug!(workload = %workload, "not allowed to tag this ConfigMap: {}", e.message);
                }
                Err(e) => {
                    tracing::warn!(workload = %workload, "tagging (retried in {STORE_INTERVAL:?}): {e}");
                    self.metrics.error("tag_write");
                    self.tag_retries.insert(workload);
                }
            }
        }
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

fn has_aws(policy: &ScanPolicy) -> bool {
    policy.spec.cloud.as_ref().is_some_and(|c| c.aws.is_some())
}

fn policy_key(policy: &ScanPolicy) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}
