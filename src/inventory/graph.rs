//! The inventory: objects by key, and the relation indexes rules and incremental
//! evaluation need. Indexes are updated on every `apply` and `delete`, so queries are
//! lookups, never scans of the whole inventory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::cloud::{CloudInventory, instance_id_of_provider_id};

use super::model::{AssetId, Kind, Object, ObjectKey};
use super::rbac::{RbacSubject, binding_parts, role_key};
use super::workload::{
    consumed_config, controller_owner, pod_template, selector_matches, service_account,
};

/// How two assets relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    /// Service or Ingress → the workloads (or Services) it sends traffic to.
    RoutesTo,
    /// Pod/ReplicaSet/Job → the workload that controls it.
    OwnedBy,
    /// Workload → ServiceAccount.
    RunsAs,
    /// ServiceAccount → binding that grants it a role.
    BoundBy,
    /// Binding → Role or ClusterRole.
    Grants,
    /// Workload → ConfigMap or Secret.
    Consumes,
}

impl RelationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::RoutesTo => "routes-to",
            RelationKind::OwnedBy => "owned-by",
            RelationKind::RunsAs => "runs-as",
            RelationKind::BoundBy => "bound-by",
            RelationKind::Grants => "grants",
            RelationKind::Consumes => "consumes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub from: AssetId,
    pub to: AssetId,
    pub kind: RelationKind,
}

type KeySet = BTreeSet<ObjectKey>;

#[derive(Debug, Default, Clone)]
pub struct Inventory {
    objects: HashMap<ObjectKey, Object>,
    /// Workloads not controlled by another workload, by namespace.
    roots_by_ns: HashMap<String, KeySet>,
    /// Pods, ReplicaSets and Jobs by their controlling workload.
    children: HashMap<ObjectKey, KeySet>,
    services_by_ns: HashMap<String, KeySet>,
    ingresses_by_ns: HashMap<String, KeySet>,
    objects_by_ns: HashMap<String, KeySet>,
    /// Root workloads by the ServiceAccount they run as.
    workloads_by_account: HashMap<ObjectKey, KeySet>,
    service_accounts: KeySet,
    bindings_by_subject: HashMap<RbacSubject, KeySet>,
    bindings_by_role: HashMap<ObjectKey, KeySet>,
    config_maps: KeySet,
    network_policies_by_ns: HashMap<String, KeySet>,
    /// Root workloads by the ConfigMaps and Secrets they consume.
    consumers: HashMap<ObjectKey, KeySet>,
    /// Nodes by the EC2 instance id of their providerID.
    nodes_by_instance: HashMap<String, ObjectKey>,
    /// Cloud assets (AWS snapshots), shared: a webhook's what-if copy does not copy them.
    cloud: Arc<CloudInventory>,
}

fn add(map: &mut HashMap<String, KeySet>, ns: Option<&str>, key: &ObjectKey) {
    map.entry(ns.unwrap_or_default().to_owned())
        .or_default()
        .insert(key.clone());
}

fn remove<K: std::hash::Hash + Eq>(map: &mut HashMap<K, KeySet>, index: &K, key: &ObjectKey) {
    if let Some(set) = map.get_mut(index) {
        set.remove(key);
        if set.is_empty() {
            map.remove(index);
        }
    }
}

/// Whether `index` would file `a` and `b` (two versions of `key`) under the same
/// entries: see `index` for what each kind is filed by.
fn same_index_entries(key: &ObjectKey, a: &Object, b: &Object) -> bool {
    if key.kind.is_workload() {
        let owner = controller_owner(a);
        return owner == controller_owner(b)
            && (owner.is_some()
                || (service_account(a) == service_account(b)
                    && consumed_config(a) == consumed_config(b)));
    }
    match (a, b) {
        (Object::Node(a), Object::Node(b)) => {
            let id = |n: &k8s_openapi::api::core::v1::Node| {
                n.spec.as_ref().and_then(|s| s.provider_id.clone())
            };
            id(a) == id(b)
        }
        (Object::RoleBinding(_) | Object::ClusterRoleBinding(_), _) => false,
        // Filed by key alone.
        _ => true,
    }
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(key)
    }

    /// The cloud assets.
    pub fn cloud(&self) -> &CloudInventory {
        &self.cloud
    }

    /// The cloud assets, shared (to outlive the inventory).
    pub fn cloud_shared(&self) -> Arc<CloudInventory> {
        self.cloud.clone()
    }

    /// Replaces the cloud assets (a new snapshot was accepted).
    pub fn set_cloud(&mut self, cloud: Arc<CloudInventory>) {
        self.cloud = cloud;
    }

    /// The Node whose providerID names this EC2 instance.
    pub fn node_of_instance(&self, instance_id: &str) -> Option<&ObjectKey> {
        self.nodes_by_instance.get(instance_id)
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// Adds or replaces an object; returns the one it replaced.
    pub fn apply(&mut self, object: Object) -> Option<Object> {
        let key = object.key();
        // Most updates (a rollout, a scale, a new annotation) leave every index entry
        // as it was: replace the object and skip re-indexing.
        if let Some(current) = self.objects.get_mut(&key)
            && same_index_entries(&key, current, &object)
        {
            return Some(std::mem::replace(current, object));
        }
        let old = self.delete(&key);
        self.index(&key, &object);
        self.objects.insert(key, object);
        old
    }

    /// Removes an object; returns it.
    pub fn delete(&mut self, key: &ObjectKey) -> Option<Object> {
        let object = self.objects.remove(key)?;
        self.unindex(key, &object);
        Some(object)
    }

    /// Replaces every object of `kind` (a watch re-list).
    pub fn replace_kind(&mut self, kind: Kind, objects: Vec<Object>) {
        let stale: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| k.kind == kind)
            .cloned()
            .collect();
        for key in stale {
            self.delete(&key);
        }
        for object in objects {
            self.apply(object);
        }
    }

    fn index(&mut self, key: &ObjectKey, object: &Object) {
        let ns = key.namespace();
        add(&mut self.objects_by_ns, ns, key);
        if key.kind.is_workload() {
            match controller_owner(object) {
                Some(owner) => {
                    self.children.entry(owner).or_default().insert(key.clone());
                }
                None => {
                    add(&mut self.roots_by_ns, ns, key);
                    if let Some(account) = service_account(object) {
                        self.workloads_by_account
                            .entry(account)
                            .or_default()
                            .insert(key.clone());
                    }
                    for config in consumed_config(object) {
                        self.consumers
                            .entry(config)
                            .or_default()
                            .insert(key.clone());
                    }
                }
            }
        }
        match object {
            Object::Service(_) => add(&mut self.services_by_ns, ns, key),
            Object::Ingress(_) => add(&mut self.ingresses_by_ns, ns, key),
            Object::ServiceAccount(_) => {
                self.service_accounts.insert(key.clone());
            }
            Object::ConfigMap(_) => {
                self.config_maps.insert(key.clone());
            }
            Object::NetworkPolicy(_) => add(&mut self.network_policies_by_ns, ns, key),
            Object::Node(node) => {
                if let Some(id) = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.provider_id.as_deref())
                    .and_then(instance_id_of_provider_id)
                {
                    self.nodes_by_instance.insert(id.to_owned(), key.clone());
                }
            }
            Object::RoleBinding(_) | Object::ClusterRoleBinding(_) => {
                let (subjects, role_ref, _) = binding_parts(object).expect("a binding");
                for subject in subjects
                    .iter()
                    .filter_map(|s| RbacSubject::from_subject(s, ns))
                {
                    self.bindings_by_subject
                        .entry(subject)
                        .or_default()
                        .insert(key.clone());
                }
                if let Some(role) = role_key(role_ref, ns) {
                    self.bindings_by_role
                        .entry(role)
                        .or_default()
                        .insert(key.clone());
                }
            }
            _ => {}
        }
    }

    fn unindex(&mut self, key: &ObjectKey, object: &Object) {
        let ns = key.namespace().unwrap_or_default().to_owned();
        remove(&mut self.objects_by_ns, &ns, key);
        if key.kind.is_workload() {
            match controller_owner(object) {
                Some(owner) => remove(&mut self.children, &owner, key),
                None => {
                    remove(&mut self.roots_by_ns, &ns, key);
                    if let Some(account) = service_account(object) {
                        remove(&mut self.workloads_by_account, &account, key);
                    }
                    for config in consumed_config(object) {
                        remove(&mut self.consumers, &config, key);
                    }
                }
            }
        }
        match object {
            Object::Service(_) => remove(&mut self.services_by_ns, &ns, key),
            Object::Ingress(_) => remove(&mut self.ingresses_by_ns, &ns, key),
            Object::ServiceAccount(_) => {
                self.service_accounts.remove(key);
            }
            Object::ConfigMap(_) => {
                self.config_maps.remove(key);
            }
            Object::NetworkPolicy(_) => remove(&mut self.network_policies_by_ns, &ns, key),
            Object::Node(_) => self.nodes_by_instance.retain(|_, node| node != key),
            Object::RoleBinding(_) | Object::ClusterRoleBinding(_) => {
                let (subjects, role_ref, _) = binding_parts(object).expect("a binding");
                for subject in subjects
                    .iter()
                    .filter_map(|s| RbacSubject::from_subject(s, key.namespace()))
                {
                    remove(&mut self.bindings_by_subject, &subject, key);
                }
                if let Some(role) = role_key(role_ref, key.namespace()) {
                    remove(&mut self.bindings_by_role, &role, key);
                }
            }
            _ => {}
        }
    }

    // ---- queries -------------------------------------------------------------------

    /// The top workload a pod or replica set rolls up to (itself when uncontrolled or
    /// when its controller is not in the inventory).
    pub fn root_of(&self, key: &ObjectKey) -> ObjectKey {
        let mut current = key.clone();
        for _ in 0..4 {
            let Some(owner) = self.objects.get(&current).and_then(controller_owner) else {
                break;
            };
            if !self.objects.contains_key(&owner) {
                break;
            }
            current = owner;
        }
        current
    }

    /// Workloads at the top of their ownership chain, in a namespace or everywhere.
    pub fn root_workloads(&self) -> impl Iterator<Item = &ObjectKey> {
        self.roots_by_ns.values().flatten()
    }

    pub fn root_workloads_in(&self, namespace: &str) -> impl Iterator<Item = &ObjectKey> {
        self.roots_by_ns.get(namespace).into_iter().flatten()
    }

    pub fn services(&self) -> impl Iterator<Item = &ObjectKey> {
        self.services_by_ns.values().flatten()
    }

    pub fn services_in(&self, namespace: &str) -> impl Iterator<Item = &ObjectKey> {
        self.services_by_ns.get(namespace).into_iter().flatten()
    }

    pub fn ingresses(&self) -> impl Iterator<Item = &ObjectKey> {
        self.ingresses_by_ns.values().flatten()
    }

    pub fn objects_in(&self, namespace: &str) -> impl Iterator<Item = &ObjectKey> {
        self.objects_by_ns.get(namespace).into_iter().flatten()
    }

    /// Direct children (pods, replica sets, jobs) of a workload.
    pub fn children_of(&self, key: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.children.get(key).into_iter().flatten()
    }

    /// ServiceAccounts that exist, that a workload runs as, or that a binding names.
    pub fn service_accounts(&self) -> BTreeSet<ObjectKey> {
        let mut all = self.service_accounts.clone();
        all.extend(self.workloads_by_account.keys().cloned());
        all.extend(self.bindings_by_subject.keys().filter_map(|s| match s {
            RbacSubject::ServiceAccount { namespace, name } => {
                Some(ObjectKey::namespaced(Kind::ServiceAccount, namespace, name))
            }
            _ => None,
        }));
        all
    }

    /// Root workloads running as the ServiceAccount.
    pub fn workloads_running_as(&self, account: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.workloads_by_account.get(account).into_iter().flatten()
    }

    pub fn bindings_for(&self, subject: &RbacSubject) -> impl Iterator<Item = &ObjectKey> {
        self.bindings_by_subject.get(subject).into_iter().flatten()
    }

    pub fn network_policies_in(&self, namespace: &str) -> impl Iterator<Item = &ObjectKey> {
        self.network_policies_by_ns
            .get(namespace)
            .into_iter()
            .flatten()
    }

    pub fn config_maps(&self) -> impl Iterator<Item = &ObjectKey> {
        self.config_maps.iter()
    }

    /// Root workloads that mount or reference a ConfigMap or Secret.
    pub fn workloads_consuming(&self, config: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.consumers.get(config).into_iter().flatten()
    }

    /// Every RoleBinding and ClusterRoleBinding.
    pub fn bindings(&self) -> impl Iterator<Item = &ObjectKey> {
        self.bindings_by_role.values().flatten()
    }

    pub fn bindings_of_role(&self, role: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.bindings_by_role.get(role).into_iter().flatten()
    }

    /// Root workloads whose pods a Service selects.
    pub fn workloads_selected_by(&self, service: &ObjectKey) -> Vec<ObjectKey> {
        let Some(Object::Service(svc)) = self.objects.get(service) else {
            return Vec::new();
        };
        let Some(selector) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Vec::new();
        };
        let ns = service.namespace().unwrap_or_default();
        self.root_workloads_in(ns)
            .filter(|w| {
                self.objects
                    .get(w)
                    .and_then(pod_template)
                    .is_some_and(|t| selector_matches(selector, t.labels))
            })
            .cloned()
            .collect()
    }

    /// Services an Ingress routes to (same namespace), whether or not they exist.
    pub fn services_behind(&self, ingress: &ObjectKey) -> Vec<ObjectKey> {
        let Some(Object::Ingress(ing)) = self.objects.get(ingress) else {
            return Vec::new();
        };
        let ns = ingress.namespace().unwrap_or_default();
        let Some(spec) = &ing.spec else {
            return Vec::new();
        };
        let mut names: BTreeSet<&str> = BTreeSet::new();
        if let Some(svc) = spec
            .default_backend
            .as_ref()
            .and_then(|b| b.service.as_ref())
        {
            names.insert(&svc.name);
        }
        for rule in spec.rules.iter().flatten() {
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                if let Some(svc) = &path.backend.service {
                    names.insert(&svc.name);
                }
            }
        }
        names
            .into_iter()
            .map(|n| ObjectKey::namespaced(Kind::Service, ns, n))
            .collect()
    }

    /// Services selecting a root workload.
    pub fn services_selecting(&self, workload: &ObjectKey) -> Vec<ObjectKey> {
        let ns = workload.namespace().unwrap_or_default();
        let Some(template) = self.objects.get(workload).and_then(pod_template) else {
            return Vec::new();
        };
        self.services_in(ns)
            .filter(|s| match self.objects.get(s) {
                Some(Object::Service(svc)) => svc
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.selector.as_ref())
                    .is_some_and(|sel| selector_matches(sel, template.labels)),
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// Ingresses in the namespace routing to the Service.
    pub fn ingresses_routing_to(&self, service: &ObjectKey) -> Vec<ObjectKey> {
        let ns = service.namespace().unwrap_or_default();
        self.ingresses_by_ns
            .get(ns)
            .into_iter()
            .flatten()
            .filter(|i| self.services_behind(i).contains(service))
            .cloned()
            .collect()
    }

    /// ServiceAccounts a binding grants to (groups expanded to the known accounts).
    pub fn accounts_bound_by(&self, binding: &ObjectKey) -> BTreeSet<ObjectKey> {
        match self.objects.get(binding) {
            Some(object) => self.accounts_of_binding(object),
            None => BTreeSet::new(),
        }
    }

    /// ServiceAccounts a binding object grants to, groups expanded to the known
    /// accounts; works for objects not (or no longer) in the inventory.
    pub fn accounts_of_binding(&self, binding: &Object) -> BTreeSet<ObjectKey> {
        let mut out = BTreeSet::new();
        let Some((subjects, _, _)) = binding_parts(binding) else {
            return out;
        };
        let key = binding.key();
        let mut accounts = None;
        for subject in subjects
            .iter()
            .filter_map(|s| RbacSubject::from_subject(s, key.namespace()))
        {
            match subject {
                RbacSubject::ServiceAccount { namespace, name } => {
                    out.insert(ObjectKey::namespaced(
                        Kind::ServiceAccount,
                        &namespace,
                        &name,
                    ));
                }
                RbacSubject::Group(group) => {
                    let all = group == "system:serviceaccounts" || group == "system:authenticated";
                    let ns = group.strip_prefix("system:serviceaccounts:");
                    let known = accounts.get_or_insert_with(|| self.service_accounts());
                    out.extend(
                        known
                            .iter()
                            .filter(|a| all || ns.is_some_and(|ns| a.namespace() == Some(ns)))
                            .cloned(),
                    );
                }
                RbacSubject::User(_) => {}
            }
        }
        out
    }

    /// Every relation of the graph, for the store and `posture query`.
    pub fn relations(&self) -> Vec<Relation> {
        let kube = |k: &ObjectKey| AssetId::Kube(k.clone());
        let mut out = Vec::new();
        let mut push = |from: &ObjectKey, to: &ObjectKey, kind| {
            out.push(Relation {
                from: kube(from),
                to: kube(to),
                kind,
            })
        };
        for service in self.services() {
            for workload in self.workloads_selected_by(service) {
                push(service, &workload, RelationKind::RoutesTo);
            }
        }
        for ingress in self.ingresses() {
            for service in self.services_behind(ingress) {
                push(ingress, &service, RelationKind::RoutesTo);
            }
        }
        for (owner, children) in &self.children {
            for child in children {
                push(child, owner, RelationKind::OwnedBy);
            }
        }
        for (account, workloads) in &self.workloads_by_account {
            for workload in workloads {
                push(workload, account, RelationKind::RunsAs);
            }
        }
        for (role, bindings) in &self.bindings_by_role {
            for binding in bindings {
                push(binding, role, RelationKind::Grants);
                for account in self.accounts_bound_by(binding) {
                    push(&account, binding, RelationKind::BoundBy);
                }
            }
        }
        for workload in self.root_workloads() {
            if let Some(object) = self.objects.get(workload) {
                for config in consumed_config(object) {
                    push(workload, &config, RelationKind::Consumes);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Labels of a namespace object, if present.
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.objects
            .get(&ObjectKey::cluster(Kind::Namespace, namespace))
            .and_then(|o| o.meta().labels.as_ref())
    }
}
