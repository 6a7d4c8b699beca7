//! The rule catalog and the engine. A rule is data ([`RuleMeta`]) plus one small pure
//! function over the inventory; the engine runs them per subject so that a change
//! re-evaluates only the subjects it can affect. The operator, `posture scan` and the
//! webhook all use this engine.

mod cloud;
mod config;
mod correlation;
mod data;
mod engine;
mod exposure;
mod hardening;
pub mod iam;
mod identity;
pub mod policy;
mod privileged;
pub mod secrets;

pub use config::{RiskyPort, RuleConfig};
pub use engine::{
    Engine, Evaluation, EvaluationDiff, RawFinding, WorkloadTags as WorkloadTagsView, fingerprint,
};

use std::borrow::Cow;

use crate::api::{Category, Severity};
use crate::inventory::rbac::{Grant, grants_for_service_account};
use crate::inventory::{Inventory, Kind, ObjectKey};

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Service,
    Ingress,
    ServiceAccount,
    /// A RoleBinding or ClusterRoleBinding.
    Binding,
    ConfigMap,
    /// A root workload: Deployment, StatefulSet, DaemonSet, CronJob, or a Job, ReplicaSet
    /// or Pod that no other workload controls.
    Workload,
    /// An AWS IAM user, group or role.
    IamPrincipal,
    Ec2Instance,
    SecurityGroup,
    EbsVolume,
    S3Bucket,
    RdsInstance,
    EksCluster,
}

impl SubjectKind {
    pub fn of(key: &ObjectKey) -> Option<SubjectKind> {
        match key.kind {
            Kind::Service => Some(SubjectKind::Service),
            Kind::Ingress => Some(SubjectKind::Ingress),
            Kind::ServiceAccount => Some(SubjectKind::ServiceAccount),
            Kind::RoleBinding | Kind::ClusterRoleBinding => Some(SubjectKind::Binding),
            Kind::ConfigMap => Some(SubjectKind::ConfigMap),
            k if k.is_workload() => Some(SubjectKind::Workload),
            Kind::IamUser | Kind::IamGroup | Kind::IamRole => Some(SubjectKind::IamPrincipal),
            Kind::Ec2Instance => Some(SubjectKind::Ec2Instance),
            Kind::SecurityGroup => Some(SubjectKind::SecurityGroup),
            Kind::EbsVolume => Some(SubjectKind::EbsVolume),
            Kind::S3Bucket => Some(SubjectKind::S3Bucket),
            Kind::RdsInstance => Some(SubjectKind::RdsInstance),
            Kind::EksCluster => Some(SubjectKind::EksCluster),
            _ => None,
        }
    }
}

/// Framework names used in mappings.
pub const CIS: &str = "CIS Kubernetes Benchmark";
pub const NSA: &str = "NSA/CISA Kubernetes Hardening Guidance";
pub const NIST: &str = "NIST CSF 2.0";
pub const CIS_AWS: &str = "CIS AWS Foundations Benchmark";

/// A rule's description: everything but its logic.
#[derive(Debug)]
pub struct RuleMeta {
    /// Stable id, lower-case words joined by hyphens (usable as a label value).
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    pub category: Category,
    pub remediation: &'static str,
    /// Tags put on the affected workloads.
    pub tags: &'static [&'static str],
    /// (framework, control) pairs.
    pub frameworks: &'static [(&'static str, &'static str)],
    pub subject: SubjectKind,
}

/// What a rule found on one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub message: String,
    /// A severity other than the rule's default (a risky port raises it, say).
    pub severity: Option<Severity>,
    pub evidence: Vec<(String, String)>,
    /// Workloads that carry the rule's tags.
    pub affected: Vec<ObjectKey>,
}

impl Hit {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            severity: None,
            evidence: Vec::new(),
            affected: Vec::new(),
        }
    }

    pub fn evidence(mut self, key: &str, value: impl Into<String>) -> Self {
        self.evidence.push((key.to_owned(), value.into()));
        self
    }

    pub fn affected(mut self, workloads: Vec<ObjectKey>) -> Self {
        self.affected = workloads;
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }
}

/// What a rule function sees.
pub struct Context<'a> {
    pub inventory: &'a Inventory,
    pub config: &'a RuleConfig,
    /// The RBAC grants of the ServiceAccount being judged: a dozen identity rules read
    /// them, and walking every binding and copying its role's rules once per rule was
    /// most of an admission decision's time.
    grants: std::cell::OnceCell<(ObjectKey, Vec<Grant>)>,
}

impl<'a> Context<'a> {
    pub fn new(inventory: &'a Inventory, config: &'a RuleConfig) -> Self {
        Self {
            inventory,
            config,
            grants: std::cell::OnceCell::new(),
        }
    }

    /// Every rule `account` holds, computed once per subject.
    pub fn grants_for_service_account(&self, account: &ObjectKey) -> Cow<'_, [Grant]> {
        let (cached, grants) = self.grants.get_or_init(|| {
            (
                account.clone(),
                grants_for_service_account(self.inventory, account),
            )
        });
        if cached == account {
            Cow::Borrowed(grants)
        } else {
            Cow::Owned(grants_for_service_account(self.inventory, account))
        }
    }
}

pub type Check = fn(&Context<'_>, &ObjectKey) -> Option<Hit>;

pub struct Rule {
    pub meta: RuleMeta,
    pub check: Check,
}

/// Every rule, in catalog order.
pub fn catalog() -> Vec<Rule> {
    let mut rules = Vec::new();
    rules.extend(exposure::rules());
    rules.extend(identity::rules());
    rules.extend(privileged::rules());
    rules.extend(hardening::rules());
    rules.extend(data::rules());
    rules.extend(iam::rules());
    rules.extend(cloud::rules());
    rules.extend(correlation::rules());
    rules
}

/// Every tag any rule sets.
pub fn tag_vocabulary() -> std::collections::BTreeSet<&'static str> {
    catalog()
        .iter()
        .flat_map(|r| r.meta.tags.iter().copied())
        .collect()
}

/// Test helpers shared by the rule modules: an inventory from YAML fixtures.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::inventory::Object;

    pub fn inventory(yaml: &str) -> Inventory {
        let mut inventory = Inventory::new();
        for doc in yaml.split("\n---\n") {
            if doc.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_yaml_ng::from_str(doc).expect("fixture YAML");
            let object = Object::from_value(value)
                .expect("known kind")
                .expect("valid object");
            inventory.apply(object);
        }
        inventory
    }

    pub fn fixture(name: &str) -> Inventory {
        let path = format!("{}/tests/fixtures/rules/{name}", env!("CARGO_MANIFEST_DIR"));
        inventory(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    /// An inventory holding the AWS snapshot `tests/fixtures/aws/<name>` (account
    /// 111122223333 is known), plus the Kubernetes objects of `yaml`.
    pub fn cloud_fixture(name: &str, yaml: &str) -> Inventory {
        use crate::inventory::cloud::snapshot::AwsSnapshot;
        use crate::inventory::cloud::{CloudInventory, SnapshotSource};
        let path = format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let snapshot =
            AwsSnapshot::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let source = SnapshotSource {
            known_accounts: vec!["111122223333".into()],
            ..Default::default()
        };
        let mut inventory = if yaml.trim().is_empty() {
            Inventory::new()
        } else {
            self::inventory(yaml)
        };
        inventory.set_cloud(std::sync::Arc::new(CloudInventory::build([(
            &source, &snapshot,
        )])));
        inventory
    }

    /// Short names of the subjects a rule hits, sorted.
    pub fn hit_names(rule: &str, inventory: &Inventory) -> Vec<String> {
        let mut names: Vec<String> = run(rule, inventory)
            .into_iter()
            .map(|(k, _)| crate::inventory::cloud::short_name(&k.name).to_owned())
            .collect();
        names.sort();
        names
    }

    /// Runs one rule over every subject of its kind; returns (subject, hit) pairs.
    pub fn run(rule_id: &str, inventory: &Inventory) -> Vec<(ObjectKey, Hit)> {
        let config = RuleConfig::default();
        let rule = catalog()
            .into_iter()
            .find(|r| r.meta.id == rule_id)
            .expect("rule id");
        let ctx = Context::new(inventory, &config);
        Engine::subjects(inventory)
            .into_iter()
            .filter(|s| SubjectKind::of(s) == Some(rule.meta.subject))
            .filter_map(|s| (rule.check)(&ctx, &s).map(|h| (s, h)))
            .collect()
    }
}

#[cfg(test)]
mod catalog_tests {
    use super::*;

    #[test]
    fn every_rule_is_complete_and_uniquely_named() {
        let rules = catalog();
        let mut ids = std::collections::BTreeSet::new();
        for rule in &rules {
            let m = &rule.meta;
            assert!(ids.insert(m.id), "duplicate rule id {}", m.id);
            assert!(
                !m.id.is_empty()
                    && m.id.len() <= 63
                    && m.id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{} must be usable as a label value",
                m.id
            );
            assert!(!m.title.is_empty() && !m.remediation.is_empty(), "{}", m.id);
            // Kubernetes rules map to the NSA/CISA guidance, AWS rules to CIS AWS.
            let cloud = m.id.starts_with("aws-");
            for framework in [NIST, if cloud { CIS_AWS } else { NSA }] {
                assert!(
                    m.frameworks.iter().any(|(f, _)| *f == framework),
                    "{} has no {framework} mapping",
                    m.id
                );
            }
        }
        assert!(rules.len() >= 40, "{} rules", rules.len());
    }
}
