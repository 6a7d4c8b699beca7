//! Effective RBAC permissions of a ServiceAccount: every rule of every role bound to it,
//! directly or through the groups it belongs to, with the scope the binding gives.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use super::graph::Inventory;
use super::model::{Kind, Object, ObjectKey};

/// Where a granted rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantScope {
    Cluster,
    Namespace(String),
}

/// One rule a subject holds, and how it got it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub scope: GrantScope,
    pub rule: PolicyRule,
    pub binding: ObjectKey,
    /// `ClusterRole/name` or `Role/name`.
    pub role: String,
}

/// An RBAC subject, as an index key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RbacSubject {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
}

impl RbacSubject {
    pub fn from_subject(subject: &Subject, binding_namespace: Option<&str>) -> Option<Self> {
        Some(match subject.kind.as_str() {
            "ServiceAccount" => RbacSubject::ServiceAccount {
                namespace: subject
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| binding_namespace.map(str::to_owned))?,
                name: subject.name.clone(),
            },
            "User" => match parse_sa_username(&subject.name) {
                Some((namespace, name)) => RbacSubject::ServiceAccount { namespace, name },
                None => RbacSubject::User(subject.name.clone()),
            },
            "Group" => RbacSubject::Group(subject.name.clone()),
            _ => return None,
        })
    }

    /// The subjects a ServiceAccount is known as: itself and its groups.
    pub fn for_service_account(namespace: &str, name: &str) -> [RbacSubject; 4] {
        [
            RbacSubject::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
            },
            RbacSubject::Group("system:serviceaccounts".into()),
            RbacSubject::Group(format!("system:serviceaccounts:{namespace}")),
            RbacSubject::Group("system:authenticated".into()),
        ]
    }
}

fn parse_sa_username(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    Some((ns.into(), name.into()))
}

/// The role a binding points to, as an inventory key.
pub fn role_key(role_ref: &RoleRef, binding_namespace: Option<&str>) -> Option<ObjectKey> {
    match role_ref.kind.as_str() {
        "ClusterRole" => Some(ObjectKey::cluster(Kind::ClusterRole, &role_ref.name)),
        "Role" => Some(ObjectKey::namespaced(
            Kind::Role,
            binding_namespace?,
            &role_ref.name,
        )),
        _ => None,
    }
}

/// Subjects, role and scope of a binding object.
pub fn binding_parts(object: &Object) -> Option<(&[Subject], &RoleRef, GrantScope)> {
    match object {
        Object::RoleBinding(b) => Some((
            b.subjects.as_deref().unwrap_or_default(),
            &b.role_ref,
            GrantScope::Namespace(b.metadata.namespace.clone().unwrap_or_default()),
        )),
        Object::ClusterRoleBinding(b) => Some((
            b.subjects.as_deref().unwrap_or_default(),
            &b.role_ref,
            GrantScope::Cluster,
        )),
        _ => None,
    }
}

/// The rules of `cluster-admin`, which exists in every cluster even when the
/// inventory (a set of manifests, say) does not hold it.
fn cluster_admin_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        },
        PolicyRule {
            non_resource_urls: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..Default::default()
        },
    ]
}

/// Whether an RBAC object is one of Kubernetes' own defaults (the API server creates
/// and reconciles it: label `kubernetes.io/bootstrapping: rbac-defaults`), not taken
/// over by an administrator (annotation `rbac.authorization.kubernetes.io/autoupdate:
/// "false"`). Its grants to the control plane's own identities are the design of
/// Kubernetes, not a finding.
pub fn is_kubernetes_default(object: &Object) -> bool {
    let meta = object.meta();
    let bootstrap = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/bootstrapping"))
        .is_some_and(|v| v == "rbac-defaults");
    let taken_over = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("rbac.authorization.kubernetes.io/autoupdate"))
        .is_some_and(|v| v == "false");
    bootstrap && !taken_over
}

/// Every rule the ServiceAccount holds. The default bindings of kube-system's
/// controllers (`system:controller:*`) are left out: they are how Kubernetes works.
pub fn grants_for_service_account(inventory: &Inventory, account: &ObjectKey) -> Vec<Grant> {
    let namespace = account.namespace().unwrap_or_default();
    let mut grants = Vec::new();
    for subject in RbacSubject::for_service_account(namespace, &account.name) {
        for binding_key in inventory.bindings_for(&subject) {
            let Some(binding) = inventory.get(binding_key) else {
                continue;
            };
            if namespace == "kube-system" && is_kubernetes_default(binding) {
                continue;
            }
            let Some((_, role_ref, scope)) = binding_parts(binding) else {
                continue;
            };
            let Some(role) = role_key(role_ref, binding_key.namespace()) else {
                continue;
            };
            let rules = match inventory.get(&role) {
                Some(Object::ClusterRole(r)) => r.rules.clone().unwrap_or_default(),
                Some(Object::Role(r)) => r.rules.clone().unwrap_or_default(),
                _ if role.kind == Kind::ClusterRole && role.name == "cluster-admin" => {
                    cluster_admin_rules()
                }
                _ => Vec::new(),
            };
            for rule in rules {
                grants.push(Grant {
                    scope: scope.clone(),
                    rule,
                    binding: binding_key.clone(),
                    role: format!("{}/{}", role.kind, role.name),
                });
            }
        }
    }
    grants
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// Whether a rule allows `verb` on `group`/`resource` (resource may be `pods/exec`).
/// Resource-name restrictions are ignored: holding the verb on some names still counts.
pub fn allows(rule: &PolicyRule, verb: &str, group: &str, resource: &str) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    if !matches(&rule.verbs, verb) || !matches(groups, group) {
        return false;
    }
    resources.iter().any(|r| {
        r == "*"
            || r == resource
            // `*/exec` style wildcards on subresources.
            || r.strip_prefix("*/").is_some_and(|sub| resource.split_once('/').is_some_and(|(_, s)| s == sub))
    })
}

/// Whether the rule holds a wildcard verb or resource.
pub fn is_wildcard(rule: &PolicyRule) -> bool {
    rule.verbs.iter().any(|v| v == "*") || rule.resources.iter().flatten().any(|r| r == "*")
}
