//! Runs the catalog per subject and keeps the results, so that a change re-evaluates
//! only the subjects it can affect through the relations.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::policy::{AnnotatedException, PolicySet, annotated_exception};
use super::{Context, Hit, Rule, RuleConfig, RuleMeta, SubjectKind, catalog};
use crate::api::Severity;
use crate::inventory::workload::controller_owner;
use crate::inventory::{Inventory, Kind, Object, ObjectKey};

/// One rule matched on one subject, with the governing policy applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFinding {
    pub rule: &'static str,
    pub subject: ObjectKey,
    pub severity: Severity,
    pub hit: Hit,
    /// `reason; expires=YYYY-MM-DD` of the exception that suppresses it.
    pub suppressed_by: Option<String>,
    /// `namespace/name` of the governing ScanPolicy.
    pub policy: Option<String>,
    /// Whether the governing policy wants workloads tagged.
    pub tagging: bool,
}

/// Stable identity of a finding: sha256 of rule and subject, hex.
pub fn fingerprint(rule: &str, subject: &ObjectKey) -> String {
    let mut hash = Sha256::new();
    for part in [
        rule,
        subject.kind.as_str(),
        subject.namespace().unwrap_or_default(),
        &subject.name,
    ] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub type FindingKey = (ObjectKey, &'static str);

/// Calls `visit` on every subject the rules look at, each once (each source is of its
/// own kinds), by reference where the inventory holds it: the one list of subject
/// sources, for the operator's evaluation and for a one-shot scan.
fn visit_subjects(inventory: &Inventory, mut visit: impl FnMut(&ObjectKey)) {
    inventory
        .root_workloads()
        .chain(inventory.services())
        .chain(inventory.ingresses())
        .chain(inventory.bindings())
        .chain(inventory.config_maps())
        .for_each(&mut visit);
    inventory.service_accounts().iter().for_each(&mut visit);
    inventory.cloud().subjects().for_each(|s| visit(&s));
}

pub struct Engine {
    rules: Vec<Rule>,
    config: RuleConfig,
    by_subject: HashMap<SubjectKind, Vec<usize>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(RuleConfig::default())
    }
}

impl Engine {
    pub fn new(config: RuleConfig) -> Self {
        let rules = catalog();
        let mut by_subject: HashMap<SubjectKind, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            by_subject.entry(rule.meta.subject).or_default().push(i);
        }
        Self {
            rules,
            config,
            by_subject,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.meta.id == id)
    }

    /// Every subject the rules look at.
    pub fn subjects(inventory: &Inventory) -> BTreeSet<ObjectKey> {
        let mut subjects = BTreeSet::new();
        visit_subjects(inventory, |subject| {
            subjects.insert(subject.clone());
        });
        subjects
    }

    /// Every finding of the inventory, once. An [`Evaluation`] also keeps indexes (by
    /// subject, by workload) for later updates; a one-shot `posture scan` needs none of
    /// them, and on a 20,000-object corpus they cost more memory than the findings.
    /// Findings are kept per subject, each list at its length: one growing list would
    /// hold up to twice its length (tens of MB at this scale).
    pub fn evaluate_all(
        &self,
        inventory: &Inventory,
        policies: &PolicySet,
    ) -> Vec<Box<[RawFinding]>> {
        let mut all = Vec::new();
        visit_subjects(inventory, |subject| {
            let findings = self.evaluate_subject(inventory, policies, subject);
            if !findings.is_empty() {
                all.push(findings.into_boxed_slice());
            }
        });
        all
    }

    /// All findings of one subject under its governing policy.
    pub fn evaluate_subject(
        &self,
        inventory: &Inventory,
        policies: &PolicySet,
        subject: &ObjectKey,
    ) -> Vec<RawFinding> {
        self.evaluate_subject_where(inventory, policies, subject, &|_| true)
    }

    /// The findings of the rules `wanted` selects (admission skips the rules no
    /// policy blocks on).
    pub fn evaluate_subject_where(
        &self,
        inventory: &Inventory,
        policies: &PolicySet,
        subject: &ObjectKey,
        wanted: &dyn Fn(&RuleMeta) -> bool,
    ) -> Vec<RawFinding> {
        let Some(kind) = SubjectKind::of(subject) else {
            return Vec::new();
        };
        // A pod or replica set under a known workload is judged through that workload.
        if kind == SubjectKind::Workload && inventory.root_of(subject) != *subject {
            return Vec::new();
        }
        self.judge(inventory, policies, subject, kind, wanted)
    }

    /// The findings of a Pod, ReplicaSet or Job judged on its own spec, even when a
    /// known workload controls it (`evaluate_subject` judges it through that workload).
    /// Admission uses it: what reaches the API server is the object, not its template.
    pub fn evaluate_controlled(
        &self,
        inventory: &Inventory,
        policies: &PolicySet,
        subject: &ObjectKey,
        wanted: &dyn Fn(&RuleMeta) -> bool,
    ) -> Vec<RawFinding> {
        match SubjectKind::of(subject) {
            Some(SubjectKind::Workload) => {
                self.judge(inventory, policies, subject, SubjectKind::Workload, wanted)
            }
            _ => Vec::new(),
        }
    }

    fn judge(
        &self,
        inventory: &Inventory,
        policies: &PolicySet,
        subject: &ObjectKey,
        kind: SubjectKind,
        wanted: &dyn Fn(&RuleMeta) -> bool,
    ) -> Vec<RawFinding> {
        let namespace = subject.namespace().unwrap_or_default();
        // A cloud subject is governed by the ScanPolicy whose snapshot holds it.
        let source = subject
            .kind
            .is_cloud()
            .then(|| inventory.cloud().policy_of(subject))
            .flatten();
        let governing = match source {
            Some(name) => policies
                .policies()
                .iter()
                .find(|p| p.name.as_deref() == Some(name)),
            None => policies.governing(namespace, inventory.namespace_labels(namespace)),
        };
        let Some(policy) = governing else {
            return Vec::new();
        };
        let ctx = Context::new(inventory, &self.config);
        let mut out = Vec::new();
        for &i in self.by_subject.get(&kind).into_iter().flatten() {
            let rule = &self.rules[i];
            if !wanted(&rule.meta) || !policy.rule_enabled(&rule.meta) {
                continue;
            }
            let Some(mut hit) = (rule.check)(&ctx, subject) else {
                continue;
            };
            let severity = policy.severity(&rule.meta, hit.severity.unwrap_or(rule.meta.severity));
            let mut suppressed_by = policy
                .exception_for(rule.meta.id, subject)
                .map(|e| format!("{}; expires={}", e.reason, e.expires));
            let annotations = inventory
                .get(subject)
                .and_then(|o| o.meta().annotations.as_ref());
            match annotated_exception(annotations, rule.meta.id, policy.today()) {
                Some(AnnotatedException::Valid(text)) if suppressed_by.is_none() => {
                    suppressed_by = Some(text)
                }
                Some(AnnotatedException::Invalid(why)) => {
                    // An exception that no longer holds is itself worth reporting.
                    hit.message.push_str(&format!(" ({why})"));
                    hit.evidence.push(("exception".into(), why));
                }
                _ => {}
            }
            out.push(RawFinding {
                rule: rule.meta.id,
                subject: subject.clone(),
                severity,
                hit,
                suppressed_by,
                policy: policy.name.clone(),
                tagging: policy.tagging_enabled(),
            });
        }
        out
    }

    /// Subjects whose findings may change when `object` is added, changed or removed.
    /// Call it with the old object before the change and with the new one after, and
    /// re-evaluate the union.
    pub fn affected_by(inventory: &Inventory, object: &Object) -> BTreeSet<ObjectKey> {
        let key = object.key();
        let mut out = BTreeSet::new();
        match object {
            o if key.kind.is_workload() => {
                let root = match controller_owner(o) {
                    Some(_) => inventory.root_of(&key),
                    None => key.clone(),
                };
                if let Some(account) = crate::inventory::workload::service_account(o) {
                    out.insert(account);
                }
                if let Some(root_object) = inventory.get(&root)
                    && let Some(account) = crate::inventory::workload::service_account(root_object)
                {
                    out.insert(account);
                }
                for service in inventory.services_selecting(&root) {
                    out.extend(inventory.ingresses_routing_to(&service));
                    out.insert(service);
                }
                // The object itself (judged as its root) may not be in the inventory
                // any more: selectors are checked against the object directly too.
                if let Some(template) = crate::inventory::workload::pod_template(o) {
                    let ns = key.namespace().unwrap_or_default();
                    for service in inventory.services_in(ns) {
                        if let Some(Object::Service(svc)) = inventory.get(service)
                            && let Some(selector) =
                                svc.spec.as_ref().and_then(|s| s.selector.as_ref())
                            && crate::inventory::workload::selector_matches(
                                selector,
                                template.labels,
                            )
                        {
                            out.extend(inventory.ingresses_routing_to(service));
                            out.insert(service.clone());
                        }
                    }
                }
                // ConfigMap findings list their consumers.
                out.extend(
                    crate::inventory::workload::consumed_config(o)
                        .into_iter()
                        .filter(|c| c.kind == Kind::ConfigMap),
                );
                out.insert(root);
                out.insert(key);
            }
            Object::Service(_) => {
                out.extend(inventory.ingresses_routing_to(&key));
                out.insert(key);
            }
            Object::Ingress(_) | Object::ServiceAccount(_) | Object::ConfigMap(_) => {
                out.insert(key);
            }
            Object::RoleBinding(_) | Object::ClusterRoleBinding(_) => {
                out.extend(inventory.accounts_of_binding(object));
                out.insert(key);
            }
            Object::NetworkPolicy(_) => {
                // Which workloads some policy selects: every workload of the namespace.
                out.extend(
                    inventory
                        .root_workloads_in(key.namespace().unwrap_or_default())
                        .cloned(),
                );
            }
            Object::Role(_) | Object::ClusterRole(_) => {
                for binding in inventory.bindings_of_role(&key) {
                    if let Some(b) = inventory.get(binding) {
                        out.extend(inventory.accounts_of_binding(b));
                    }
                }
            }
            Object::Namespace(_) => {
                // Labels decide which policy governs: everything in it.
                out.extend(
                    inventory
                        .objects_in(&key.name)
                        .filter(|k| SubjectKind::of(k).is_some())
                        .cloned(),
                );
                out.extend(
                    inventory
                        .service_accounts()
                        .into_iter()
                        .filter(|a| a.namespace() == Some(&key.name)),
                );
            }
            _ => {}
        }
        out
    }
}

/// What changed in an [`Evaluation`] update.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EvaluationDiff {
    /// New or changed findings.
    pub upserted: Vec<FindingKey>,
    /// Findings whose condition no longer holds.
    pub resolved: Vec<RawFinding>,
    /// Workloads whose tags may have changed.
    pub workloads: BTreeSet<ObjectKey>,
}

impl EvaluationDiff {
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.resolved.is_empty()
    }
}

/// The current findings of an inventory, kept up to date subject by subject.
#[derive(Debug, Default, Clone)]
pub struct Evaluation {
    findings: BTreeMap<FindingKey, RawFinding>,
    by_subject: HashMap<ObjectKey, Vec<&'static str>>,
    /// Finding keys by the workloads they tag.
    by_workload: HashMap<ObjectKey, BTreeSet<FindingKey>>,
}

impl Evaluation {
    /// Evaluates every subject.
    pub fn full(
        engine: &Engine,
        inventory: &Inventory,
        policies: &PolicySet,
    ) -> (Self, EvaluationDiff) {
        let mut evaluation = Self::default();
        let diff = evaluation.update(engine, inventory, policies, &Engine::subjects(inventory));
        (evaluation, diff)
    }

    pub fn findings(&self) -> impl Iterator<Item = &RawFinding> {
        self.findings.values()
    }

    pub fn get(&self, key: &FindingKey) -> Option<&RawFinding> {
        self.findings.get(key)
    }

    pub fn len(&self) -> usize {
        self.findings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    /// Re-evaluates `subjects` and returns what changed.
    pub fn update(
        &mut self,
        engine: &Engine,
        inventory: &Inventory,
        policies: &PolicySet,
        subjects: &BTreeSet<ObjectKey>,
    ) -> EvaluationDiff {
        let mut diff = EvaluationDiff::default();
        for subject in subjects {
            let fresh = engine.evaluate_subject(inventory, policies, subject);
            let old_rules = self.by_subject.remove(subject).unwrap_or_default();
            let new_rules: Vec<&'static str> = fresh.iter().map(|f| f.rule).collect();
            for rule in old_rules.iter().filter(|r| !new_rules.contains(r)) {
                if let Some(old) = self.remove(&(subject.clone(), rule)) {
                    diff.workloads.extend(old.hit.affected.iter().cloned());
                    diff.resolved.push(old);
                }
            }
            for finding in fresh {
                let key = (subject.clone(), finding.rule);
                if self.findings.get(&key) == Some(&finding) {
                    continue;
                }
                if let Some(old) = self.remove(&key) {
                    diff.workloads.extend(old.hit.affected.iter().cloned());
                }
                diff.workloads.extend(finding.hit.affected.iter().cloned());
                for workload in &finding.hit.affected {
                    self.by_workload
                        .entry(workload.clone())
                        .or_default()
                        .insert(key.clone());
                }
                self.findings.insert(key.clone(), finding);
                diff.upserted.push(key);
            }
            if !new_rules.is_empty() {
                self.by_subject.insert(subject.clone(), new_rules);
            }
        }
        diff
    }

    fn remove(&mut self, key: &FindingKey) -> Option<RawFinding> {
        let old = self.findings.remove(key)?;
        for workload in &old.hit.affected {
            if let Some(set) = self.by_workload.get_mut(workload) {
                set.remove(key);
                if set.is_empty() {
                    self.by_workload.remove(workload);
                }
            }
        }
        Some(old)
    }

    /// The tag state of a workload: tags of its open, tagging findings, their rule ids
    /// and the worst severity.
    pub fn tags_of(&self, workload: &ObjectKey) -> WorkloadTags {
        let mut tags = WorkloadTags::default();
        for key in self.by_workload.get(workload).into_iter().flatten() {
            let Some(finding) = self.findings.get(key) else {
                continue;
            };
            if finding.suppressed_by.is_some() || !finding.tagging {
                continue;
            }
            let meta = rule_meta(finding.rule);
            tags.tags.extend(
                meta.map(|m| m.tags.iter().map(|t| t.to_string()))
                    .into_iter()
                    .flatten(),
            );
            tags.rules.insert(finding.rule.to_owned());
            tags.worst = tags.worst.max(Some(finding.severity));
        }
        tags
    }
}

fn rule_meta(id: &str) -> Option<&'static super::RuleMeta> {
    static CATALOG: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    CATALOG
        .get_or_init(catalog)
        .iter()
        .find(|r| r.meta.id == id)
        .map(|r| &r.meta)
}

/// Tags a workload should carry.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkloadTags {
    pub tags: BTreeSet<String>,
    pub rules: BTreeSet<String>,
    pub worst: Option<Severity>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::policy::Policy;
    use crate::rules::testing::fixture;

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let a = ObjectKey::namespaced(Kind::Service, "web", "front");
        assert_eq!(
            fingerprint("public-loadbalancer", &a),
            fingerprint("public-loadbalancer", &a)
        );
        assert_ne!(
            fingerprint("public-loadbalancer", &a),
            fingerprint("public-nodeport", &a)
        );
        assert_eq!(fingerprint("x", &a).len(), 64);
    }

    #[test]
    fn a_one_shot_evaluation_finds_what_a_full_evaluation_keeps() {
        use crate::inventory::synthetic::{EstateSize, estate};
        let size = EstateSize {
            namespaces: 3,
            deployments: 60,
            pods_per_deployment: 2,
            services: 90,
            bindings: 60,
        };
        let mut inventory = Inventory::new();
        for value in estate(size, "node-a") {
            if let Some(object) = Object::from_value(value) {
                inventory.apply(object.expect("synthetic objects parse"));
            }
        }
        let engine = Engine::default();
        let policies = PolicySet::single(Policy::allow_all());
        let (evaluation, _) = Evaluation::full(&engine, &inventory, &policies);
        let kept: Vec<&RawFinding> = evaluation.findings().collect();
        let once = engine.evaluate_all(&inventory, &policies);
        let mut once: Vec<&RawFinding> = once.iter().flatten().collect();
        once.sort_by(|a, b| (&a.subject, a.rule).cmp(&(&b.subject, b.rule)));
        assert!(kept.len() > 10, "the estate has findings: {}", kept.len());
        assert_eq!(once, kept);
    }

    #[test]
    fn deleting_a_service_resolves_its_finding_and_only_re_evaluates_what_it_touches() {
        let engine = Engine::default();
        let policies = PolicySet::single(Policy::allow_all());
        let mut inventory = fixture("exposure-fail.yaml");
        let (mut evaluation, first) = Evaluation::full(&engine, &inventory, &policies);
        assert!(!first.upserted.is_empty());
        let web = ObjectKey::namespaced(Kind::Deployment, "shop", "web");
        assert!(evaluation.tags_of(&web).tags.contains("isPublic"));

        let lb = ObjectKey::namespaced(Kind::Service, "shop", "web-public");
        let old = inventory.delete(&lb).expect("present");
        let subjects = Engine::affected_by(&inventory, &old);
        assert!(subjects.contains(&lb));
        assert!(
            !subjects.contains(&web),
            "a Service change does not re-evaluate workloads"
        );
        let diff = evaluation.update(&engine, &inventory, &policies, &subjects);
        assert_eq!(diff.resolved.len(), 1);
        assert_eq!(diff.resolved[0].rule, "public-loadbalancer");
        assert!(diff.workloads.contains(&web));
        // The Ingress still routes to web: the tag stays.
        assert!(evaluation.tags_of(&web).tags.contains("isPublic"));

        // Nothing else changes on a second update of the same subjects.
        assert!(
            evaluation
                .update(&engine, &inventory, &policies, &subjects)
                .is_empty()
        );
    }
}
