//! The pod-running view of workload objects: their pod spec, pod labels, controller
//! owner, ServiceAccount and the ConfigMaps and Secrets they consume.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::compact::{Container, PodSpec};
use super::model::{Kind, Object, ObjectKey};

/// The pod spec and the labels and annotations its pods carry.
pub struct PodTemplate<'a> {
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub spec: &'a PodSpec,
}

/// The pod template of a workload object (the pod itself for a Pod).
pub fn pod_template(object: &Object) -> Option<PodTemplate<'_>> {
    let template = match object {
        Object::Pod(p) => {
            return Some(PodTemplate {
                labels: p.metadata.labels.as_ref(),
                annotations: p.metadata.annotations.as_ref(),
                spec: p.spec.as_ref()?,
            });
        }
        Object::Deployment(d) => &d.spec.as_ref()?.template,
        Object::StatefulSet(s) => &s.spec.as_ref()?.template,
        Object::DaemonSet(s) => &s.spec.as_ref()?.template,
        Object::ReplicaSet(s) => s.spec.as_ref()?.template.as_ref()?,
        Object::Job(j) => &j.spec.as_ref()?.template,
        Object::CronJob(c) => &c.spec.as_ref()?.job_template.spec.as_ref()?.template,
        _ => return None,
    };
    let meta = template.metadata.as_ref();
    Some(PodTemplate {
        labels: meta.and_then(|m| m.labels.as_ref()),
        annotations: meta.and_then(|m| m.annotations.as_ref()),
        spec: template.spec.as_ref()?,
    })
}

/// The workload kinds a controller owner reference can point to.
fn owner_kind(kind: &str) -> Option<Kind> {
    match kind {
        "ReplicaSet" => Some(Kind::ReplicaSet),
        "Deployment" => Some(Kind::Deployment),
        "StatefulSet" => Some(Kind::StatefulSet),
        "DaemonSet" => Some(Kind::DaemonSet),
        "Job" => Some(Kind::Job),
        "CronJob" => Some(Kind::CronJob),
        _ => None,
    }
}

/// The controller owner reference of an object, when it names a workload kind the
/// inventory models: its kind and name.
pub(crate) fn modelled_controller(meta: &ObjectMeta) -> Option<(Kind, &str)> {
    let owner = meta
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    Some((owner_kind(&owner.kind)?, &owner.name))
}

/// The controlling workload owner (same namespace), if any.
pub fn controller_owner(object: &Object) -> Option<ObjectKey> {
    let meta = object.meta();
    let (kind, name) = modelled_controller(meta)?;
    Some(ObjectKey::new(kind, meta.namespace.as_deref(), name))
}

/// The ServiceAccount the workload's pods run as.
pub fn service_account(object: &Object) -> Option<ObjectKey> {
    let template = pod_template(object)?;
    let name = template
        .spec
        .service_account_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    Some(ObjectKey::namespaced(
        Kind::ServiceAccount,
        object.meta().namespace.as_deref().unwrap_or("default"),
        name,
    ))
}

/// Every container of a pod spec: init and regular (ephemeral containers are added
/// by `kubectl debug` at run time and have a different type).
pub fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// ConfigMaps and Secrets the workload mounts or references in its environment.
pub fn consumed_config(object: &Object) -> Vec<ObjectKey> {
    let Some(template) = pod_template(object) else {
        return Vec::new();
    };
    let namespace = object.meta().namespace.as_deref().unwrap_or("default");
    let cm = |name: &str| ObjectKey::namespaced(Kind::ConfigMap, namespace, name);
    let secret = |name: &str| ObjectKey::namespaced(Kind::Secret, namespace, name);
    let mut out = Vec::new();
    for volume in template.spec.volumes.iter().flatten() {
        if let Some(c) = &volume.config_map {
            out.push(cm(&c.name));
        }
        if let Some(name) = volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
        {
            out.push(secret(name));
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(c) = &source.config_map {
                out.push(cm(&c.name));
            }
            if let Some(s) = &source.secret {
                out.push(secret(&s.name));
            }
        }
    }
    for container in all_containers(template.spec) {
        for from in container.env_from.iter().flatten() {
            if let Some(c) = &from.config_map_ref {
                out.push(cm(&c.name));
            }
            if let Some(s) = &from.secret_ref {
                out.push(secret(&s.name));
            }
        }
        for var in container.env.iter().flatten() {
            let Some(source) = &var.value_from else {
                continue;
            };
            if let Some(c) = &source.config_map_key_ref {
                out.push(cm(&c.name));
            }
            if let Some(s) = &source.secret_key_ref {
                out.push(secret(&s.name));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `labels` satisfy an equality selector (a Service's `spec.selector`).
/// An empty selector selects nothing, as for Services.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if selector.is_empty() {
        return false;
    }
    let Some(labels) = labels else { return false };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
