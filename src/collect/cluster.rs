//! The cluster collector: watches every kind the inventory holds and turns events into
//! [`Change`]s for the operator and the webhook. A malformed object is skipped and
//! logged (its watch goes on); a failing watch backs off and re-lists by itself.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::core::DeserializeGuard;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::api::ScanPolicy;
use crate::inventory::compact::{
    CronJob, DaemonSet, Deployment, Job, Pod, ReplicaSet, StatefulSet,
};
use crate::inventory::model::kubernetes_kinds;
use crate::inventory::{Kind, Object, ObjectKey};

/// Counts what the watches see; the operator and the webhook export it as metrics.
pub trait WatchObserver: Send + Sync + 'static {
    /// An event (add, change or delete) of this kind arrived.
    fn event(&self, kind: Kind);
    /// Something went wrong: `malformed_object` or `watch`.
    fn error(&self, what: &'static str);
}

/// What the watches report to the controller loop.
#[derive(Debug)]
pub enum Change {
    Apply(Object),
    Delete(ObjectKey),
    /// A (re-)list finished: these are all the objects of the kind.
    Relisted(Kind, Vec<Object>),
    Policy(Box<ScanPolicy>),
    PolicyDeleted(String),
    PoliciesRelisted(Vec<ScanPolicy>),
}

/// Drops what rules never read and costs memory: managed fields, the
/// last-applied-configuration annotation (a full copy of the object), status, and the
/// pod spec of pods and replica sets that a workload controls (rules judge the
/// controlling workload's template; the copy adds nothing but memory).
fn slim<K: Resource + Slim>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    // Controlled by a workload the inventory models (whose template the rules judge),
    // not by any controller: a Pod an unknown operator's resource controls is judged on
    // its own spec and must keep it.
    let controlled = crate::inventory::workload::modelled_controller(meta).is_some();
    if controlled {
        // What rules read of a controlled object is its owner; its annotations (a
        // ReplicaSet's deployment.kubernetes.io/*, say) are its controller's business.
        meta.annotations = None;
    }
    object.slim(controlled);
    object
}

/// [`slim`] on an object already wrapped, for building an inventory the way the
/// watches do (the admission benchmark).
pub fn slimmed(object: Object) -> Object {
    macro_rules! slim_each {
        ($($kind:ident),*) => {
            match object {
                $(Object::$kind(o) => Object::$kind(Arc::new(slim(Arc::unwrap_or_clone(o)))),)*
            }
        };
    }
    kubernetes_kinds!(slim_each)
}

/// Kind-specific memory trimming, see [`slim`].
pub trait Slim {
    fn slim(&mut self, _controlled: bool) {}
}

macro_rules! drop_status {
    ($($kind:ty),*) => {$(
        impl Slim for $kind {
            fn slim(&mut self, _controlled: bool) {
                self.status = None;
            }
        }
    )*};
}

drop_status!(Service, Ingress, Namespace);

/// The compact pod-running kinds keep no status; a controlled one drops its spec too.
macro_rules! drop_spec_when_controlled {
    ($($kind:ty),*) => {$(
        impl Slim for $kind {
            fn slim(&mut self, controlled: bool) {
                if controlled {
                    self.spec = None;
                }
            }
        }
    )*};
}

drop_spec_when_controlled!(Pod, ReplicaSet, Job);

impl Slim for Deployment {}
impl Slim for StatefulSet {}
impl Slim for DaemonSet {}
impl Slim for CronJob {}

impl Slim for Node {
    fn slim(&mut self, _controlled: bool) {
        // The image list of a node runs to hundreds of entries.
        if let Some(status) = self.status.as_mut() {
            status.images = None;
        }
    }
}

impl Slim for NetworkPolicy {}
impl Slim for ServiceAccount {}
impl Slim for Role {}
impl Slim for ClusterRole {}
impl Slim for RoleBinding {}
impl Slim for ClusterRoleBinding {}
impl Slim for ConfigMap {}
impl Slim for Secret {}

/// Objects per list request. Every watch lists at start, all at once: a page is held
/// whole (body and parsed objects) while it is read, so smaller pages keep the start-up
/// peak down; 10,000 Pods still list in a few seconds.
const LIST_PAGE: u32 = 100;

fn spawn_watch<K>(
    client: &Client,
    tx: &mpsc::Sender<Change>,
    metrics: &Arc<dyn WatchObserver>,
    kind: Kind,
    wrap: fn(Arc<K>) -> Object,
) where
    K: Resource<DynamicType = ()> + Slim + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    spawn_watch_keeping(client, tx, metrics, kind, wrap, |_| true)
}

fn spawn_watch_keeping<K>(
    client: &Client,
    tx: &mpsc::Sender<Change>,
    metrics: &Arc<dyn WatchObserver>,
    kind: Kind,
    wrap: fn(Arc<K>) -> Object,
    keep: fn(&Object) -> bool,
) where
    K: Resource<DynamicType = ()> + Slim + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<DeserializeGuard<K>> = Api::all(client.clone());
    let tx = tx.clone();
    let metrics = metrics.clone();
    tokio::spawn(async move {
        // Objects of a list in progress: applied together when it completes.
        let mut listing: Option<Vec<Object>> = None;
        let mut stream = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let change = match event {
                Ok(watcher::Event::Apply(guard) | watcher::Event::InitApply(guard)) => {
                    metrics.event(kind);
                    match guard.0 {
                        Ok(object) => {
                            let object = wrap(Arc::new(slim(object)));
                            match listing.as_mut() {
                                Some(_) if !keep(&object) => None,
                                Some(list) => {
                                    list.push(object);
                                    None
                                }
                                None if !keep(&object) => Some(Change::Delete(object.key())),
                                None => Some(Change::Apply(object)),
                            }
                        }
                        Err(invalid) => {
                            tracing::warn!(
                                kind = kind.as_str(),
                                namespace = invalid.metadata.namespace.as_deref().unwrap_or(""),
                                name = invalid.metadata.name.as_deref().unwrap_or(""),
                                error = %invalid.error,
                                "skipping an object that does not parse"
                            );
                            metrics.error("malformed_object");
                            None
                        }
                    }
                }
                Ok(watcher::Event::Delete(guard)) => {
                    metrics.event(kind);
                    let meta = guard.meta();
                    Some(Change::Delete(ObjectKey::new(
                        kind,
                        meta.namespace.as_deref(),
                        &meta.name_any_or_default(),
                    )))
                }
                Ok(watcher::Event::Init) => {
                    listing = Some(Vec::new());
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    Some(Change::Relisted(kind, listing.take().unwrap_or_default()))
                }
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), "watch error: {e}");
                    metrics.error("watch");
                    None
                }
            };
            if let Some(change) = change
                && tx.send(change).await.is_err()
            {
                return;
            }
        }
    });
}

trait NameOrDefault {
    fn name_any_or_default(&self) -> String;
}

impl NameOrDefault for kube::api::ObjectMeta {
    fn name_any_or_default(&self) -> String {
        self.name.clone().unwrap_or_default()
    }
}

/// The kinds the watches cover (Secrets are not: reading them is not needed and
/// not granted).
pub const WATCHED: &[Kind] = &[
    Kind::Namespace,
    Kind::Node,
    Kind::Pod,
    Kind::Deployment,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::ReplicaSet,
    Kind::Job,
    Kind::CronJob,
    Kind::Service,
    Kind::Ingress,
    Kind::NetworkPolicy,
    Kind::ServiceAccount,
    Kind::Role,
    Kind::ClusterRole,
    Kind::RoleBinding,
    Kind::ClusterRoleBinding,
    Kind::ConfigMap,
];

/// Starts every watch; changes arrive on the returned channel.
pub fn start(client: &Client, metrics: &Arc<dyn WatchObserver>) -> mpsc::Receiver<Change> {
    start_keeping(client, metrics, |_| true)
}

/// Pods that a known kind of workload controls: their ReplicaSet, Job, StatefulSet or
/// DaemonSet holds their template, and they relate to nothing their controller does
/// not. The webhook does not keep them (most of a cluster's objects are such pods);
/// it judges an incoming pod on its own spec against its controller's.
pub fn controlled_pod(object: &Object) -> bool {
    matches!(object, Object::Pod(_))
        && crate::inventory::workload::controller_owner(object).is_some()
}

/// [`start`], keeping only the Pods `keep_pod` accepts. A pod that stops being kept
/// (adopted by a controller) is deleted from the inventory.
pub fn start_keeping(
    client: &Client,
    metrics: &Arc<dyn WatchObserver>,
    keep_pod: fn(&Object) -> bool,
) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(4096);
    spawn_watch::<Namespace>(client, &tx, metrics, Kind::Namespace, Object::Namespace);
    spawn_watch::<Node>(client, &tx, metrics, Kind::Node, Object::Node);
    spawn_watch_keeping::<Pod>(client, &tx, metrics, Kind::Pod, Object::Pod, keep_pod);
    spawn_watch::<Deployment>(client, &tx, metrics, Kind::Deployment, Object::Deployment);
    spawn_watch::<StatefulSet>(client, &tx, metrics, Kind::StatefulSet, Object::StatefulSet);
    spawn_watch::<DaemonSet>(client, &tx, metrics, Kind::DaemonSet, Object::DaemonSet);
    spawn_watch::<ReplicaSet>(client, &tx, metrics, Kind::ReplicaSet, Object::ReplicaSet);
    spawn_watch::<Job>(client, &tx, metrics, Kind::Job, Object::Job);
    spawn_watch::<CronJob>(client, &tx, metrics, Kind::CronJob, Object::CronJob);
    spawn_watch::<Service>(client, &tx, metrics, Kind::Service, Object::Service);
    spawn_watch::<Ingress>(client, &tx, metrics, Kind::Ingress, Object::Ingress);
    spawn_watch::<NetworkPolicy>(
        client,
        &tx,
        metrics,
        Kind::NetworkPolicy,
        Object::NetworkPolicy,
    );
    spawn_watch::<ServiceAccount>(
        client,
        &tx,
        metrics,
        Kind::ServiceAccount,
        Object::ServiceAccount,
    );
    spawn_watch::<Role>(client, &tx, metrics, Kind::Role, Object::Role);
    spawn_watch::<ClusterRole>(client, &tx, metrics, Kind::ClusterRole, Object::ClusterRole);
    spawn_watch::<RoleBinding>(client, &tx, metrics, Kind::RoleBinding, Object::RoleBinding);
    spawn_watch::<ClusterRoleBinding>(
        client,
        &tx,
        metrics,
        Kind::ClusterRoleBinding,
        Object::ClusterRoleBinding,
    );
    spawn_watch::<ConfigMap>(client, &tx, metrics, Kind::ConfigMap, Object::ConfigMap);
    spawn_policy_watch(client, &tx);
    rx
}

fn spawn_policy_watch(client: &Client, tx: &mpsc::Sender<Change>) {
    let api: Api<DeserializeGuard<ScanPolicy>> = Api::all(client.clone());
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut buffer: Option<Vec<ScanPolicy>> = None;
        while let Some(event) = stream.next().await {
            let change = match event {
                Ok(watcher::Event::Init) => {
                    buffer = Some(Vec::new());
                    None
                }
                Ok(watcher::Event::InitApply(g)) => {
                    if let (Some(buf), Ok(p)) = (buffer.as_mut(), g.0) {
                        buf.push(p);
                    }
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    Some(Change::PoliciesRelisted(buffer.take().unwrap_or_default()))
                }
                Ok(watcher::Event::Apply(g)) => match g.0 {
                    Ok(p) => Some(Change::Policy(Box::new(p))),
                    Err(invalid) => {
                        tracing::warn!(name = invalid.metadata.name.as_deref().unwrap_or(""), error = %invalid.error, "skipping a ScanPolicy that does not parse");
                        None
                    }
                },
                Ok(watcher::Event::Delete(g)) => {
                    let m = g.meta();
                    Some(Change::PolicyDeleted(format!(
                        "{}/{}",
                        m.namespace.clone().unwrap_or_default(),
                        m.name.clone().unwrap_or_default()
                    )))
                }
                Err(e) => {
                    tracing::warn!("ScanPolicy watch error: {e}");
                    None
                }
            };
            if let Some(change) = change
                && tx.send(change).await.is_err()
            {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner_kind: &str) -> Object {
        let value = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "x",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"},
                "ownerReferences": [{"apiVersion": "v1", "kind": owner_kind, "name": "o",
                    "uid": "1", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox:1", "securityContext": {"privileged": true}}]}
        });
        slimmed(Object::from_value(value).unwrap().unwrap())
    }

    #[test]
    fn a_pod_a_modelled_workload_controls_keeps_only_what_names_it() {
        let Object::Pod(p) = pod("ReplicaSet") else {
            unreachable!()
        };
        assert!(
            p.spec.is_none(),
            "its ReplicaSet's template is judged instead"
        );
        assert!(p.metadata.annotations.is_none());
        assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].name, "o");
    }

    #[test]
    fn a_pod_another_controller_owns_keeps_its_spec() {
        // An operator's custom resource is not a workload the rules judge: the pod is.
        let Object::Pod(p) = pod("SparkApplication") else {
            unreachable!()
        };
        assert!(p.spec.is_some());
        let annotations = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.get("team").map(String::as_str), Some("a"));
        assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    }
}
