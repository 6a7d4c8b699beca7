//! Identities of assets and the objects themselves.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::compact::{CronJob, DaemonSet, Deployment, Job, Pod, ReplicaSet, StatefulSet};

/// The kinds the inventory holds: Kubernetes kinds, then cloud resource kinds (named by
/// their ARN, never namespaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    Service,
    Ingress,
    NetworkPolicy,
    ServiceAccount,
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
    ConfigMap,
    Secret,
    // AWS
    IamUser,
    IamGroup,
    IamRole,
    Ec2Instance,
    SecurityGroup,
    EbsVolume,
    S3Bucket,
    RdsInstance,
    EksCluster,
}

impl Kind {
    /// The cloud kinds, for iteration.
    pub const CLOUD: [Kind; 9] = [
        Kind::IamUser,
        Kind::IamGroup,
        Kind::IamRole,
        Kind::Ec2Instance,
        Kind::SecurityGroup,
        Kind::EbsVolume,
        Kind::S3Bucket,
        Kind::RdsInstance,
        Kind::EksCluster,
    ];

    /// `aws` for cloud kinds, `None` for Kubernetes kinds.
    pub fn provider(self) -> Option<&'static str> {
        Kind::CLOUD.contains(&self).then_some("aws")
    }

    pub fn is_cloud(self) -> bool {
        self.provider().is_some()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::Service => "Service",
            Kind::Ingress => "Ingress",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Role => "Role",
            Kind::ClusterRole => "ClusterRole",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::IamUser => "IamUser",
            Kind::IamGroup => "IamGroup",
            Kind::IamRole => "IamRole",
            Kind::Ec2Instance => "Ec2Instance",
            Kind::SecurityGroup => "SecurityGroup",
            Kind::EbsVolume => "EbsVolume",
            Kind::S3Bucket => "S3Bucket",
            Kind::RdsInstance => "RdsInstance",
            Kind::EksCluster => "EksCluster",
        }
    }

    pub fn parse(kind: &str) -> Option<Kind> {
        Some(match kind {
            "Namespace" => Kind::Namespace,
            "Node" => Kind::Node,
            "Pod" => Kind::Pod,
            "Deployment" => Kind::Deployment,
            "StatefulSet" => Kind::StatefulSet,
            "DaemonSet" => Kind::DaemonSet,
            "ReplicaSet" => Kind::ReplicaSet,
            "Job" => Kind::Job,
            "CronJob" => Kind::CronJob,
            "Service" => Kind::Service,
            "Ingress" => Kind::Ingress,
            "NetworkPolicy" => Kind::NetworkPolicy,
            "ServiceAccount" => Kind::ServiceAccount,
            "Role" => Kind::Role,
            "ClusterRole" => Kind::ClusterRole,
            "RoleBinding" => Kind::RoleBinding,
            "ClusterRoleBinding" => Kind::ClusterRoleBinding,
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            "IamUser" => Kind::IamUser,
            "IamGroup" => Kind::IamGroup,
            "IamRole" => Kind::IamRole,
            "Ec2Instance" => Kind::Ec2Instance,
            "SecurityGroup" => Kind::SecurityGroup,
            "EbsVolume" => Kind::EbsVolume,
            "S3Bucket" => Kind::S3Bucket,
            "RdsInstance" => Kind::RdsInstance,
            "EksCluster" => Kind::EksCluster,
            _ => return None,
        })
    }

    /// The Kubernetes apiVersion; `None` for cloud kinds.
    pub fn api_version(self) -> Option<&'static str> {
        if self.is_cloud() {
            return None;
        }
        Some(match self {
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::Ingress | Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding => {
                "rbac.authorization.k8s.io/v1"
            }
            _ => "v1",
        })
    }

    pub fn is_namespaced(self) -> bool {
        !self.is_cloud()
            && !matches!(
                self,
                Kind::Namespace | Kind::Node | Kind::ClusterRole | Kind::ClusterRoleBinding
            )
    }

    /// Kinds that run pods (a pod template or a pod spec).
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::Deployment
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::ReplicaSet
                | Kind::Job
                | Kind::CronJob
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Kubernetes object's identity: kind, namespace (none for cluster-scoped kinds), name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind,
            namespace: if kind.is_namespaced() {
                namespace.map(str::to_owned)
            } else {
                None
            },
            name: name.to_owned(),
        }
    }

    pub fn namespaced(kind: Kind, namespace: &str, name: &str) -> Self {
        Self::new(kind, Some(namespace), name)
    }

    pub fn cluster(kind: Kind, name: &str) -> Self {
        Self::new(kind, None, name)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Any asset: a Kubernetes object, or a cloud resource named by its provider's id
/// (an ARN for AWS). Relations and findings use this, so cloud assets join the same
/// graph as cluster objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssetId {
    Kube(ObjectKey),
    Cloud { provider: String, id: String },
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetId::Kube(key) => write!(f, "k8s:{key}"),
            AssetId::Cloud { provider, id } => write!(f, "{provider}:{id}"),
        }
    }
}

/// A Kubernetes object held by the inventory. Shared, immutable snapshots.
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Arc<Namespace>),
    Node(Arc<Node>),
    Pod(Arc<Pod>),
    Deployment(Arc<Deployment>),
    StatefulSet(Arc<StatefulSet>),
    DaemonSet(Arc<DaemonSet>),
    ReplicaSet(Arc<ReplicaSet>),
    Job(Arc<Job>),
    CronJob(Arc<CronJob>),
    Service(Arc<Service>),
    Ingress(Arc<Ingress>),
    NetworkPolicy(Arc<NetworkPolicy>),
    ServiceAccount(Arc<ServiceAccount>),
    Role(Arc<Role>),
    ClusterRole(Arc<ClusterRole>),
    RoleBinding(Arc<RoleBinding>),
    ClusterRoleBinding(Arc<ClusterRoleBinding>),
    ConfigMap(Arc<ConfigMap>),
    Secret(Arc<Secret>),
}

/// Calls the macro `$then` with every Kubernetes kind the inventory models, in the
/// order of [`Kind`], so that code written once per kind (typed reads, trimming) cannot
/// forget one.
macro_rules! kubernetes_kinds {
    ($then:ident) => {
        $then!(
            Namespace,
            Node,
            Pod,
            Deployment,
            StatefulSet,
            DaemonSet,
            ReplicaSet,
            Job,
            CronJob,
            Service,
            Ingress,
            NetworkPolicy,
            ServiceAccount,
            Role,
            ClusterRole,
            RoleBinding,
            ClusterRoleBinding,
            ConfigMap,
            Secret
        )
    };
}
pub(crate) use kubernetes_kinds;

macro_rules! each_object {
    ($obj:expr, $inner:ident => $body:expr) => {
        match $obj {
            Object::Namespace($inner) => $body,
            Object::Node($inner) => $body,
            Object::Pod($inner) => $body,
            Object::Deployment($inner) => $body,
            Object::StatefulSet($inner) => $body,
            Object::DaemonSet($inner) => $body,
            Object::ReplicaSet($inner) => $body,
            Object::Job($inner) => $body,
            Object::CronJob($inner) => $body,
            Object::Service($inner) => $body,
            Object::Ingress($inner) => $body,
            Object::NetworkPolicy($inner) => $body,
            Object::ServiceAccount($inner) => $body,
            Object::Role($inner) => $body,
            Object::ClusterRole($inner) => $body,
            Object::RoleBinding($inner) => $body,
            Object::ClusterRoleBinding($inner) => $body,
            Object::ConfigMap($inner) => $body,
            Object::Secret($inner) => $body,
        }
    };
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::DaemonSet(_) => Kind::DaemonSet,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::Job(_) => Kind::Job,
            Object::CronJob(_) => Kind::CronJob,
            Object::Service(_) => Kind::Service,
            Object::Ingress(_) => Kind::Ingress,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
            Object::ServiceAccount(_) => Kind::ServiceAccount,
            Object::Role(_) => Kind::Role,
            Object::ClusterRole(_) => Kind::ClusterRole,
            Object::RoleBinding(_) => Kind::RoleBinding,
            Object::ClusterRoleBinding(_) => Kind::ClusterRoleBinding,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_object!(self, o => &o.metadata)
    }

    /// The object as JSON (what the watch kept of it), for the store.
    pub fn to_value(&self) -> serde_json::Value {
        each_object!(self, o => serde_json::to_value(&**o).unwrap_or_default())
    }

    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        ObjectKey::new(
            self.kind(),
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    /// Parses a JSON/YAML value of a known kind; `None` for other kinds.
    pub fn from_value(value: serde_json::Value) -> Option<Result<Object, serde_json::Error>> {
        let kind = Kind::parse(value.get("kind")?.as_str()?).filter(|k| !k.is_cloud())?;
        fn arc<T: serde::de::DeserializeOwned>(
            v: serde_json::Value,
        ) -> Result<Arc<T>, serde_json::Error> {
            serde_json::from_value(v).map(Arc::new)
        }
        macro_rules! typed {
            ($($kind:ident),*) => {
                match kind {
                    $(Kind::$kind => Object::$kind(arc(value)?),)*
                    cloud => unreachable!("{cloud} is filtered out above"),
                }
            };
        }
        Some((|| Ok(kubernetes_kinds!(typed)))())
    }
}
