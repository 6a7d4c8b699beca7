//! What-if admission: evaluate the cluster as it would be after a change and act on
//! the findings the change introduces. Pure logic over the inventory; the server feeds
//! it requests and turns decisions into AdmissionResponses.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{AdmissionMode, AdmissionSettings, Category, Severity};
use crate::inventory::{Inventory, Object, ObjectKey};
use crate::rules::policy::PolicySet;
use crate::rules::{Engine, RawFinding, RuleMeta};

/// What the webhook does with one finding a change introduces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Enforce mode: the request is denied.
    Deny,
    /// Warn mode: admitted with a warning kubectl prints.
    Warn,
    /// Audit mode: admitted, recorded as a Finding and in the metrics.
    Audit,
    /// A valid exception (reason and unexpired date) suppresses it; echoed as a warning.
    Excepted(String),
    /// Not in a blocking category, or below the minimum severity: the operator reports
    /// it, admission lets it through.
    Ignored,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Audit => "audit",
            Action::Excepted(_) => "exception",
            Action::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Introduced {
    pub finding: RawFinding,
    pub action: Action,
}

#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub allowed: bool,
    /// The denial, one or two lines per finding: rule, subject, why, fix.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// Every finding the change introduces in a category or tag some policy's admission
    /// settings act on, and what was done with it.
    pub introduced: Vec<Introduced>,
}

impl Decision {
    pub fn allow() -> Self {
        Self {
            allowed: true,
            ..Self::default()
        }
    }

    /// Findings to record as Findings (Audit mode).
    pub fn audited(&self) -> impl Iterator<Item = &RawFinding> {
        self.introduced
            .iter()
            .filter(|i| i.action == Action::Audit)
            .map(|i| &i.finding)
    }
}

/// Whether some policy's admission settings (or the defaults) act on the rule's
/// findings. Rules none acts on are not evaluated at admission: the operator reports
/// them, and a hardening or data rule would only cost the request time.
fn acted_on(policies: &PolicySet, meta: &RuleMeta) -> bool {
    let defaults = AdmissionSettings::default();
    policies
        .policies()
        .iter()
        .filter_map(|p| p.spec.admission.as_ref())
        .chain(std::iter::once(&defaults))
        .any(|s| {
            s.blocking_categories.contains(&meta.category)
                || meta
                    .tags
                    .iter()
                    .any(|t| s.blocking_tags.iter().any(|b| b == t))
        })
}

/// Findings of `subjects` keyed by (subject, rule).
fn evaluate(
    engine: &Engine,
    inventory: &Inventory,
    policies: &PolicySet,
    subjects: &BTreeSet<ObjectKey>,
) -> BTreeMap<(ObjectKey, &'static str), RawFinding> {
    let wanted = |meta: &RuleMeta| acted_on(policies, meta);
    subjects
        .iter()
        .flat_map(|s| engine.evaluate_subject_where(inventory, policies, s, &wanted))
        .map(|f| ((f.subject.clone(), f.rule), f))
        .collect()
}

/// Whether two versions of a workload relate to the same objects: same ServiceAccount,
/// same pod labels (Service selection), same controller, same ConfigMaps and Secrets.
/// The findings of those other objects (which list the workloads they reach) depend on
/// nothing else of the workload.
fn same_relations(a: &Object, b: &Object) -> bool {
    use crate::inventory::workload::{
        consumed_config, controller_owner, pod_template, service_account,
    };
    a.key().kind.is_workload()
        && a.key() == b.key()
        && service_account(a) == service_account(b)
        && controller_owner(a) == controller_owner(b)
        && consumed_config(a) == consumed_config(b)
        && pod_template(a).map(|t| t.labels) == pod_template(b).map(|t| t.labels)
}

/// Puts the inventory back to `original` for `key`.
fn restore(inventory: &mut Inventory, key: &ObjectKey, original: Option<Object>) {
    match original {
        Some(object) => {
            inventory.apply(object);
        }
        None => {
            inventory.delete(key);
        }
    }
}

/// The findings that exist once `incoming` replaces `old` (or is added) and did not
/// exist before. `old` is the request's oldObject: the watch may not have seen it yet.
/// The inventory is changed for the evaluation and restored before returning.
pub fn introduced_findings(
    engine: &Engine,
    inventory: &mut Inventory,
    policies: &PolicySet,
    incoming: &Object,
    old: Option<&Object>,
) -> Vec<RawFinding> {
    let key = incoming.key();
    let original = inventory.get(&key).cloned();

    // A Pod, ReplicaSet or Job controlled by a workload we know relates to nothing its
    // controller does not (the indexes hold controllers), so nothing else needs judging.
    // Its own spec is judged, though: a pod that names a controller and differs from
    // its template (a forged ownerReference, a container added on the way in) must not
    // pass on the template's merits. What the controller already has is not new.
    let controller = crate::inventory::workload::controller_owner(incoming);
    if let Some(controller) = controller.filter(|c| *c != key && inventory.get(c).is_some()) {
        inventory.apply(incoming.clone());
        let wanted = |meta: &RuleMeta| acted_on(policies, meta);
        let own = engine.evaluate_controlled(inventory, policies, &key, &wanted);
        let root = inventory.root_of(&controller);
        let inherited: BTreeSet<&str> = engine
            .evaluate_subject_where(inventory, policies, &root, &wanted)
            .iter()
            .map(|f| f.rule)
            .collect();
        restore(inventory, &key, original);
        return own
            .into_iter()
            .filter(|f| !inherited.contains(f.rule))
            .collect();
    }

    // Before: the cluster as it is, with the request's view of the old object. An old
    // object that names another object (a malformed request) is not believed: only
    // `key` is restored below, so it must be the only key touched.
    if let Some(old) = old.filter(|o| o.key() == key) {
        inventory.apply(old.clone());
    }
    let before_object = inventory.get(&key).cloned();
    // A workload update that keeps its relations (a rollout: new image, new resources)
    // cannot change the findings of the ServiceAccount, Services, Ingresses or
    // ConfigMaps around it: only the workload itself is judged again.
    let same = before_object
        .as_ref()
        .is_some_and(|current| same_relations(current, incoming));
    let mut subjects = if same {
        BTreeSet::from([inventory.root_of(&key), key.clone()])
    } else {
        let mut subjects = Engine::affected_by(inventory, incoming);
        if let Some(current) = &before_object {
            subjects.extend(Engine::affected_by(inventory, current));
        }
        subjects
    };

    // After: the incoming object in place, relations recomputed for what it touches.
    inventory.apply(incoming.clone());

    if !same {
        subjects.extend(Engine::affected_by(inventory, incoming));
    }
    let after = evaluate(engine, inventory, policies, &subjects);

    restore(inventory, &key, before_object);
    let before = evaluate(engine, inventory, policies, &subjects);
    restore(inventory, &key, original);

    after
        .into_iter()
        .filter(|(k, f)| match before.get(k) {
            None => true,
            Some(old) => {
                // A finding an exception covered before and no longer does is new to
                // admission: the change removed the exception.
                (old.suppressed_by.is_some() && f.suppressed_by.is_none())
                // The same finding reaching a workload it did not reach before (a
                // Deployment switching to an over-privileged ServiceAccount, or
                // relabelled into a LoadBalancer's selector) introduces the risk there.
                    || f.hit.affected.iter().any(|w| !old.hit.affected.contains(w))
            }
        })
        .map(|(_, f)| f)
        .collect()
}

/// The admission settings that govern a finding: those of its ScanPolicy, defaults
/// when the policy names none.
fn settings_for<'a>(
    policies: &'a PolicySet,
    finding: &RawFinding,
    defaults: &'a AdmissionSettings,
) -> &'a AdmissionSettings {
    policies
        .policies()
        .iter()
        .find(|p| p.name == finding.policy)
        .and_then(|p| p.spec.admission.as_ref())
        .unwrap_or(defaults)
}

fn blocking(settings: &AdmissionSettings, engine: &Engine, finding: &RawFinding) -> bool {
    let Some(rule) = engine.rule(finding.rule) else {
        return false;
    };
    let by_category = settings.blocking_categories.contains(&rule.meta.category);
    let by_tag = rule
        .meta
        .tags
        .iter()
        .any(|t| settings.blocking_tags.iter().any(|b| b == t));
    (by_category || by_tag) && finding.severity >= settings.minimum_severity
}

/// Decides on a change: deny when it introduces a blocking finding in Enforce mode.
pub fn decide(
    engine: &Engine,
    inventory: &mut Inventory,
    policies: &PolicySet,
    incoming: &Object,
    old: Option<&Object>,
) -> Decision {
    let defaults = AdmissionSettings::default();
    let mut decision = Decision::allow();
    let mut denials = Vec::new();
    for finding in introduced_findings(engine, inventory, policies, incoming, old) {
        let settings = settings_for(policies, &finding, &defaults);
        let action = if !blocking(settings, engine, &finding) {
            Action::Ignored
        } else if let Some(reason) = &finding.suppressed_by {
            decision.warnings.push(format!(
                "posture: exception for {} on {}: {reason}",
                finding.rule,
                describe(&finding.subject)
            ));
            Action::Excepted(reason.clone())
        } else {
            match settings.mode {
                AdmissionMode::Enforce => {
                    denials.push(explain(engine, &finding));
                    Action::Deny
                }
                AdmissionMode::Warn => {
                    decision.warnings.push(explain(engine, &finding));
                    Action::Warn
                }
                AdmissionMode::Audit => Action::Audit,
            }
        };
        decision.introduced.push(Introduced { finding, action });
    }
    if !denials.is_empty() {
        decision.allowed = false;
        decision.message = Some(denials.join("\n"));
    }
    decision
}

fn describe(key: &ObjectKey) -> String {
    match key.namespace() {
        Some(ns) => format!("{} {ns}/{}", key.kind, key.name),
        None => format!("{} {}", key.kind, key.name),
    }
}

/// `posture: <rule> (<severity>) on <subject>: <why>. Fix: <remediation> (or add the
/// exception annotation ...)`.
pub fn explain(engine: &Engine, finding: &RawFinding) -> String {
    let remediation = engine
        .rule(finding.rule)
        .map(|r| r.meta.remediation)
        .unwrap_or_default();
    format!(
        "posture: {} ({}) on {}: {}.\n  Fix: {remediation} To accept the risk, annotate {} with posture.dev/exception.{}: \"<reason>; expires=YYYY-MM-DD\".",
        finding.rule,
        finding.severity,
        describe(&finding.subject),
        finding.hit.message.trim_end_matches('.'),
        describe(&finding.subject),
        finding.rule,
    )
}

/// Minimum severity and categories, for the startup log and `--print-config`.
pub fn default_blocking() -> (Vec<Category>, Severity) {
    let d = AdmissionSettings::default();
    (d.blocking_categories, d.minimum_severity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::policy::Policy;
    use crate::rules::testing::inventory;

    fn object(yaml: &str) -> Object {
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        Object::from_value(value).unwrap().unwrap()
    }

    const CLUSTER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: app, image: "nginx:1.27"}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: legacy}
spec:
  type: LoadBalancer
  selector: {app: old}
  ports: [{port: 80}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: escalator}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [escalate, bind]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder-escalates, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: escalator}
subjects: [{kind: ServiceAccount, name: builder, namespace: shop}]
"#;

    fn defaults() -> PolicySet {
        PolicySet::default().with_fallback(Policy::allow_all())
    }

    fn run(incoming: &str) -> (Decision, Inventory) {
        run_on(CLUSTER, incoming)
    }

    fn run_on(cluster: &str, incoming: &str) -> (Decision, Inventory) {
        let mut inv = inventory(cluster);
        let before = inv.len();
        let engine = Engine::default();
        let decision = decide(&engine, &mut inv, &defaults(), &object(incoming), None);
        assert_eq!(inv.len(), before, "the inventory is restored");
        (decision, inv)
    }

    /// The cluster, plus a ReplicaSet of `web` and a privileged DaemonSet admitted
    /// before (say under an exception that has since been removed).
    const CONTROLLERS: &str = r#"
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-7d9
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u1, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: app, image: "nginx:1.27"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "agent:1.0", securityContext: {privileged: true}}]
"#;

    fn run_with_controllers(incoming: &str) -> Decision {
        run_on(&format!("{CLUSTER}{CONTROLLERS}"), incoming).0
    }

    #[test]
    fn a_pod_made_from_its_controllers_template_is_admitted() {
        let d = run_with_controllers(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9-x1
  namespace: shop
  labels: {app: web}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9, uid: u2, controller: true}]
spec:
  serviceAccountName: web
  containers: [{name: app, image: "nginx:1.27"}]
"#,
        );
        assert!(d.allowed, "{:?}", d.message);
        assert!(d.introduced.is_empty(), "{:?}", d.introduced);
    }

    #[test]
    fn a_privileged_pod_claiming_a_clean_controller_is_denied() {
        // The ownerReference names web's ReplicaSet, whose template is clean: the pod
        // is judged on its own spec, not on the template's.
        let d = run_with_controllers(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-7d9-evil
  namespace: shop
  labels: {app: web}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9, uid: u2, controller: true}]
spec:
  serviceAccountName: web
  containers: [{name: app, image: "nginx:1.27", securityContext: {privileged: true}}]
"#,
        );
        assert!(!d.allowed);
        assert!(
            denied_rules(&d).contains(&"privileged-container"),
            "{:?}",
            denied_rules(&d)
        );
        assert!(
            d.message
                .as_deref()
                .unwrap_or_default()
                .contains("web-7d9-evil")
        );
    }

    #[test]
    fn the_pods_of_an_already_privileged_daemonset_are_not_new_findings() {
        let d = run_with_controllers(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: agent-abcde
  namespace: shop
  labels: {app: agent}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u3, controller: true}]
spec:
  containers: [{name: agent, image: "agent:1.0", securityContext: {privileged: true}}]
"#,
        );
        assert!(d.allowed, "{:?}", d.message);
    }

    fn denied_rules(d: &Decision) -> Vec<&'static str> {
        d.introduced
            .iter()
            .filter(|i| i.action == Action::Deny)
            .map(|i| i.finding.rule)
            .collect()
    }

    #[test]
    fn a_load_balancer_selecting_an_existing_deployment_is_denied() {
        let (d, _) = run(r#"
apiVersion: v1
kind: Service
metadata: {name: web-public, namespace: shop}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 443}]}
"#);
        assert!(!d.allowed);
        assert!(denied_rules(&d).contains(&"public-loadbalancer"));
        let message = d.message.unwrap();
        assert!(message.contains("Service shop/web-public"), "{message}");
        assert!(message.contains("Fix:"), "{message}");
    }

    #[test]
    fn an_internal_service_is_allowed() {
        let (d, _) = run(r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: ClusterIP, selector: {app: web}, ports: [{port: 80}]}
"#);
        assert!(d.allowed, "{:?}", d.message);
        assert!(denied_rules(&d).is_empty());
    }

    #[test]
    fn a_nodeport_on_ssh_is_denied() {
        let (d, _) = run(r#"
apiVersion: v1
kind: Service
metadata: {name: ssh, namespace: shop}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 22}]}
"#);
        assert!(!d.allowed);
        assert!(denied_rules(&d).contains(&"public-nodeport"), "{d:?}");
    }

    #[test]
    fn cluster_admin_for_a_service_account_a_deployment_uses_is_denied() {
        let (d, _) = run(r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: web-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: web, namespace: shop}]
"#);
        assert!(!d.allowed);
        let denied = &d
            .introduced
            .iter()
            .find(|i| i.action == Action::Deny)
            .unwrap();
        assert_eq!(
            denied.finding.subject,
            ObjectKey::namespaced(crate::inventory::Kind::ServiceAccount, "shop", "web")
        );
    }

    #[test]
    fn switching_to_an_escalating_service_account_is_denied() {
        let (d, _) = run(r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: builder
      containers: [{name: app, image: "nginx:1.27"}]
"#);
        assert!(!d.allowed, "{d:?}");
        assert!(d.message.unwrap().contains("builder"));
    }

    #[test]
    fn a_privileged_container_is_denied_through_its_tag() {
        let (d, _) = run(r#"
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers:
  - name: shell
    image: "busybox:1.36"
    securityContext: {privileged: true}
"#);
        assert!(!d.allowed);
        assert!(denied_rules(&d).contains(&"privileged-container"));
        // Hardening rules (no policy blocks on them) are left to the operator.
        let engine = Engine::default();
        for introduced in &d.introduced {
            let meta = &engine.rule(introduced.finding.rule).unwrap().meta;
            assert!(acted_on(&defaults(), meta), "{} evaluated", meta.id);
        }
    }

    #[test]
    fn pre_existing_findings_do_not_block_an_unrelated_update() {
        // legacy/web-lb is a LoadBalancer already; relabelling it changes nothing.
        let mut inv = inventory(CLUSTER);
        let engine = Engine::default();
        let update = object(
            r#"
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: legacy, labels: {team: a}}
spec:
  type: LoadBalancer
  selector: {app: old}
  ports: [{port: 80}]
"#,
        );
        let old = inv
            .get(&ObjectKey::namespaced(
                crate::inventory::Kind::Service,
                "legacy",
                "web-lb",
            ))
            .cloned();
        let d = decide(&engine, &mut inv, &defaults(), &update, old.as_ref());
        assert!(d.allowed, "{:?}", d.message);
        assert!(d.introduced.is_empty(), "{:?}", d.introduced);
    }

    #[test]
    fn an_old_object_naming_another_object_leaves_the_inventory_as_it_was() {
        // Found by the admission fuzzer: oldObject without metadata became
        // `<unnamed>` and stayed in the inventory.
        let mut inv = inventory(CLUSTER);
        let before = inv.len();
        let engine = Engine::default();
        let incoming = object(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: "nginx:1.27"}]}
"#,
        );
        let other = object(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: "<unnamed>", namespace: shop}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: app, image: "nginx:1.27"}]}
"#,
        );
        decide(&engine, &mut inv, &defaults(), &incoming, Some(&other));
        assert_eq!(inv.len(), before);
        assert!(
            inv.get(&ObjectKey::namespaced(
                crate::inventory::Kind::Deployment,
                "shop",
                "<unnamed>"
            ))
            .is_none()
        );
    }

    #[test]
    fn warn_mode_admits_with_the_explanation_and_a_valid_exception_is_echoed() {
        let spec = crate::api::ScanPolicySpec {
            admission: Some(AdmissionSettings {
                mode: AdmissionMode::Warn,
                ..AdmissionSettings::default()
            }),
            ..Default::default()
        };
        let policies = PolicySet::new(vec![Policy::from_spec(
            Some("shop/warn".into()),
            Some("shop".into()),
            spec,
            crate::rules::policy::today(),
        )]);
        let engine = Engine::default();
        let mut inv = inventory(CLUSTER);
        let lb = object(
            r#"
apiVersion: v1
kind: Service
metadata: {name: web-public, namespace: shop}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 443}]}
"#,
        );
        let d = decide(&engine, &mut inv, &policies, &lb, None);
        assert!(d.allowed);
        assert!(
            d.warnings.iter().any(|w| w.contains("public-loadbalancer")),
            "{:?}",
            d.warnings
        );

        let excepted = object(
            r#"
apiVersion: v1
kind: Service
metadata:
  name: web-public
  namespace: shop
  annotations:
    posture.dev/exception.public-loadbalancer: "storefront is public by design; expires=2999-01-01"
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 443}]}
"#,
        );
        let d = decide(&engine, &mut inv, &defaults(), &excepted, None);
        assert!(d.allowed, "{:?}", d.message);
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("exception") && w.contains("public by design")),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn an_expired_exception_no_longer_admits() {
        let (d, _) = run(r#"
apiVersion: v1
kind: Service
metadata:
  name: web-public
  namespace: shop
  annotations:
    posture.dev/exception.public-loadbalancer: "temporary; expires=2020-01-01"
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 443}]}
"#);
        assert!(!d.allowed);
        assert!(d.message.unwrap().contains("expired"));
    }
}

#[cfg(test)]
mod cloud_tests {
    use super::*;
    use crate::rules::policy::Policy;
    use crate::rules::testing::cloud_fixture;

    fn object(yaml: &str) -> Object {
        let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        Object::from_value(value).unwrap().unwrap()
    }

    const MAPPED: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
  namespace: shop
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/ops-admin"}
"#;

    #[test]
    fn mapping_a_service_account_to_an_admin_role_is_denied() {
        let mut inventory = cloud_fixture("cloud-fail.json", "");
        let policies = PolicySet::default().with_fallback(Policy::allow_all());
        let decision = decide(
            &Engine::default(),
            &mut inventory,
            &policies,
            &object(MAPPED),
            None,
        );
        assert!(!decision.allowed, "{decision:?}");
        assert!(
            decision
                .message
                .as_deref()
                .unwrap()
                .contains("aws-irsa-privileged-role"),
            "{decision:?}"
        );
        // The same mapping to a least-privilege role is admitted.
        let mut clean = cloud_fixture("cloud-pass.json", "");
        let decision = decide(
            &Engine::default(),
            &mut clean,
            &policies,
            &object(MAPPED),
            None,
        );
        assert!(decision.allowed, "{decision:?}");
    }
}
