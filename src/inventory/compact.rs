//! Compact forms of the pod-running kinds (Pod, Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job, CronJob): the fields the rules and relations read, nothing else.
//!
//! Why not `k8s-openapi`'s types: they hold every optional field inline, so an empty
//! `Container` is 2,144 bytes and an `EnvVar` 360 bytes before a single string; a
//! Deployment with two containers and twenty variables cost ~14 KB. These read the same
//! JSON (same field names; what they do not model is skipped while parsing), keep the
//! large and rarely set parts boxed, and serialise back to valid objects of their kind
//! (with `apiVersion` and `kind`). Like `k8s-openapi`, a document whose `apiVersion` or
//! `kind` is present and different is refused.
//!
//! The nested parts that are small or read in full (security contexts, ports, resources,
//! volume sources) stay `k8s-openapi` types, so rules read them as the API defines them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A pod template: the labels and annotations its pods get, and their spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpec>,
}

/// A template's metadata: its pods' labels (Services and NetworkPolicies select them)
/// and annotations (AppArmor, exceptions); a full `ObjectMeta` is 360 bytes of empty
/// fields here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The parts of a pod spec that decide its security posture and its relations.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    #[serde(default, rename = "hostIPC", skip_serializing_if = "Option::is_none")]
    pub host_ipc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID", skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_users: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<core::PodOS>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Box<core::PodSecurityContext>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
}

/// A container: image, command, environment, ports, resources and security context.
/// Probes, lifecycle hooks and terminal settings are not modelled.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<core::EnvFromSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<core::ContainerPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Box<core::SecurityContext>>,
}

/// A container's requests and limits. The rules ask which resources are set; a list of
/// pairs answers that for a fraction of the two maps the API type keeps.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Quantities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Quantities>,
}

/// Quantities by resource name (`cpu`, `memory`...), in the order written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quantities(pub Vec<(String, Quantity)>);

impl Quantities {
    pub fn contains_key(&self, resource: &str) -> bool {
        self.0.iter().any(|(name, _)| name == resource)
    }
}

impl<'de> Deserialize<'de> for Quantities {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Quantities;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of resource names to quantities")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Quantities, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(2));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Quantities(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

impl Serialize for Quantities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// An environment variable: a literal value or a reference (kept boxed: most variables
/// are literals, and the reference type is 300 bytes).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Box<core::EnvVarSource>>,
}

/// A volume, with the sources rules and relations read (ConfigMaps, Secrets, projected
/// sources, host paths); a volume of another source keeps only its name.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<Box<core::ConfigMapVolumeSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<Box<core::HostPathVolumeSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<Box<core::ProjectedVolumeSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Box<core::SecretVolumeSource>>,
}

/// The spec of the controllers with a required template (the selector is not kept:
/// the API server requires it to match the template's labels, which are).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// A ReplicaSet's spec: its template is optional in the API.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
}

/// A Job's spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// A CronJob's spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub job_template: JobTemplateSpec,
}

/// The Job a CronJob creates.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<JobSpec>,
}

/// `null` where a list is expected reads as the empty list (the API server writes
/// neither, but hand-written manifests do).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Declares a top-level kind: `metadata` and an optional `spec`, the `k8s-openapi`
/// resource constants of the full type (so `kube` lists and watches it the same way),
/// and (de)serialisation that writes and checks `apiVersion` and `kind`.
macro_rules! compact_kind {
    ($(#[$doc:meta])* $name:ident, $spec:ty, $full:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            pub metadata: ObjectMeta,
            pub spec: Option<$spec>,
        }

        impl k8s_openapi::Resource for $name {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::ListableResource for $name {
            const LIST_KIND: &'static str = <$full as k8s_openapi::ListableResource>::LIST_KIND;
        }

        impl k8s_openapi::Metadata for $name {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Fields {
                    api_version: Option<String>,
                    kind: Option<String>,
                    #[serde(default)]
                    metadata: ObjectMeta,
                    #[serde(default)]
                    spec: Option<$spec>,
                }
                let fields = Fields::deserialize(deserializer)?;
                check_type::<Self, D::Error>(fields.api_version.as_deref(), fields.kind.as_deref())?;
                Ok($name {
                    metadata: fields.metadata,
                    spec: fields.spec,
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("apiVersion", <Self as k8s_openapi::Resource>::API_VERSION)?;
                map.serialize_entry("kind", <Self as k8s_openapi::Resource>::KIND)?;
                map.serialize_entry("metadata", &self.metadata)?;
                if let Some(spec) = &self.spec {
                    map.serialize_entry("spec", spec)?;
                }
                map.end()
            }
        }
    };
}

/// Refuses a document of another `apiVersion` or `kind` (when present), as
/// `k8s-openapi` does: `extensions/v1beta1` Deployments must not read as `apps/v1`.
fn check_type<R: k8s_openapi::Resource, E: serde::de::Error>(
    api_version: Option<&str>,
    kind: Option<&str>,
) -> Result<(), E> {
    if let Some(v) = api_version.filter(|v| *v != R::API_VERSION) {
        return Err(E::invalid_value(
            serde::de::Unexpected::Str(v),
            &R::API_VERSION,
        ));
    }
    if let Some(k) = kind.filter(|k| *k != R::KIND) {
        return Err(E::invalid_value(serde::de::Unexpected::Str(k), &R::KIND));
    }
    Ok(())
}

compact_kind!(
    /// A Pod (its status is not kept).
    Pod,
    PodSpec,
    core::Pod
);
compact_kind!(
    /// A Deployment.
    Deployment,
    ControllerSpec,
    k8s_openapi::api::apps::v1::Deployment
);
compact_kind!(
    /// A StatefulSet.
    StatefulSet,
    ControllerSpec,
    k8s_openapi::api::apps::v1::StatefulSet
);
compact_kind!(
    /// A DaemonSet.
    DaemonSet,
    ControllerSpec,
    k8s_openapi::api::apps::v1::DaemonSet
);
compact_kind!(
    /// A ReplicaSet.
    ReplicaSet,
    ReplicaSetSpec,
    k8s_openapi::api::apps::v1::ReplicaSet
);
compact_kind!(
    /// A Job.
    Job,
    JobSpec,
    k8s_openapi::api::batch::v1::Job
);
compact_kind!(
    /// A CronJob.
    CronJob,
    CronJobSpec,
    k8s_openapi::api::batch::v1::CronJob
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_types_are_a_fraction_of_the_api_types() {
        // The reason this module exists; a field added carelessly shows up here.
        assert!(
            std::mem::size_of::<Container>() <= 256,
            "{}",
            std::mem::size_of::<Container>()
        );
        assert!(std::mem::size_of::<EnvVar>() <= 64);
        assert!(std::mem::size_of::<Volume>() <= 64);
        assert!(std::mem::size_of::<PodTemplateSpec>() <= 256);
        assert!(std::mem::size_of::<core::Container>() > 2_000);
    }

    #[test]
    fn a_deployment_reads_and_writes_back_what_the_rules_need() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "serviceAccountName": "web",
                        "hostPID": true, "hostIPC": true, "hostNetwork": true,
                        "containers": [{
                            "name": "a", "image": "nginx:1",
                            "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                            "env": [{"name": "A", "value": "1"},
                                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                            "securityContext": {"privileged": true}
                        }],
                        "volumes": [{"name": "data", "emptyDir": {}},
                                    {"name": "cfg", "configMap": {"name": "cfg"}}]
                    }
                }
            },
            "status": {"replicas": 2}
        });
        let d: Deployment = serde_json::from_value(json).unwrap();
        let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("web"));
        // The API spells these in capitals, not in camelCase.
        assert_eq!(
            (spec.host_pid, spec.host_ipc, spec.host_network),
            (Some(true), Some(true), Some(true))
        );
        let c = &spec.containers[0];
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert!(limits.contains_key("memory") && limits.contains_key("cpu"));
        assert!(!limits.contains_key("ephemeral-storage"));
        let env = c.env.as_ref().unwrap();
        assert_eq!(env[0].value.as_deref(), Some("1"));
        let secret_ref = env[1].value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(secret_ref.unwrap().name, "s");
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!(volumes[0].name, "data");
        assert_eq!(volumes[1].config_map.as_ref().unwrap().name, "cfg");

        // Written back, it is a valid apps/v1 Deployment (what the store keeps).
        let back = serde_json::to_value(&d).unwrap();
        assert_eq!(back["apiVersion"], "apps/v1");
        assert_eq!(back["kind"], "Deployment");
        assert_eq!(back["spec"]["template"]["spec"]["hostPID"], true);
        assert_eq!(
            back["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "1Gi"
        );
        let full: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(back).unwrap();
        assert_eq!(full.metadata.name.as_deref(), Some("web"));
    }

    /// Every field the compact types model, set, as the API writes it: what they read
    /// back must be exactly this (a misspelt field name would silently read as unset).
    #[test]
    fn every_modelled_field_reads_under_its_api_name() {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "x"},
            "spec": {
                "automountServiceAccountToken": false,
                "containers": [{
                    "name": "a", "image": "nginx:1", "command": ["sh"], "args": ["-c", "x"],
                    "env": [{"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "cfg"}}],
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
                    "securityContext": {"privileged": true, "runAsUser": 0}
                }],
                "hostIPC": true, "hostNetwork": true, "hostPID": true, "hostUsers": false,
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "nodeName": "node-a",
                "os": {"name": "linux"},
                "securityContext": {"runAsNonRoot": true},
                "serviceAccountName": "sa",
                "volumes": [
                    {"name": "c", "configMap": {"name": "cfg"}},
                    {"name": "h", "hostPath": {"path": "/", "type": ""}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "s"}}]}},
                    {"name": "s", "secret": {"secretName": "s"}}
                ]
            }
        });
        // What the API type reads and writes back is the reference.
        let full: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod.clone()).unwrap();
        let reference = serde_json::to_value(&full).unwrap();
        let compact: Pod = serde_json::from_value(pod).unwrap();
        assert_eq!(serde_json::to_value(&compact).unwrap(), reference);
    }

    #[test]
    fn another_api_version_or_kind_is_refused() {
        let old = serde_json::json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
            "metadata": {"name": "web"}});
        let e = serde_json::from_value::<Deployment>(old).unwrap_err();
        assert!(e.to_string().contains("apps/v1"), "{e}");
        let wrong = serde_json::json!({"apiVersion": "v1", "kind": "Service"});
        assert!(serde_json::from_value::<Pod>(wrong).is_err());
        let bad = serde_json::json!({"kind": "Pod", "spec": {"containers": "nginx"}});
        assert!(serde_json::from_value::<Pod>(bad).is_err());
        let nulls = serde_json::json!({"kind": "Pod", "spec": {"containers": null}});
        assert!(
            serde_json::from_value::<Pod>(nulls)
                .unwrap()
                .spec
                .unwrap()
                .containers
                .is_empty()
        );
    }
}
