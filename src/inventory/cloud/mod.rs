//! Cloud assets in the inventory: what the AWS snapshots hold, indexed by ARN, with the
//! IAM index (effective permissions, trust) and the links to the cluster (IRSA and EKS
//! Pod Identity for ServiceAccounts, providerID for Nodes).
//!
//! Assets are keyed like cluster objects ([`ObjectKey`] with a cloud [`Kind`] and the
//! ARN as name), so findings, tags and relations treat both alike.

pub mod actions;
pub mod authorization_details;
pub mod iam;
pub mod snapshot;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use self::actions::ActionCatalog;
use self::iam::{IamIndex, Principal, PrincipalKind};
use self::snapshot::{
    AwsSnapshot, Bucket, DbInstance, EksCluster, Instance, RouteTable, SecurityGroup, Subnet,
    Volume,
};
use super::model::{Kind, ObjectKey};

/// The ServiceAccount annotation of IRSA.
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Where a snapshot came from and how to judge it.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSource {
    /// `namespace/name` of the ScanPolicy that collected it (none for `posture scan`).
    pub policy: Option<String>,
    /// Accounts trusted in role trust policies besides the snapshot's own.
    pub known_accounts: Vec<String>,
    /// Only this EKS cluster's Pod Identity associations apply to the cluster posture
    /// runs in; all clusters' when unset.
    pub eks_cluster: Option<String>,
}

/// A cloud resource with the account and region it lives in.
#[derive(Debug, Clone)]
pub struct Placed<T> {
    pub account: String,
    pub region: Option<String>,
    pub data: T,
}

impl<T> Placed<T> {
    fn new(account: &str, region: &str, data: T) -> Self {
        Self {
            account: account.to_owned(),
            region: Some(region.to_owned()),
            data,
        }
    }
}

/// A section the collector could not read.
#[derive(Debug, Clone, PartialEq)]
pub struct NotCollected {
    pub account: String,
    pub region: Option<String>,
    pub section: String,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct CloudInventory {
    pub iam: IamIndex,
    pub instances: BTreeMap<String, Placed<Instance>>,
    pub security_groups: BTreeMap<String, Placed<SecurityGroup>>,
    pub volumes: BTreeMap<String, Placed<Volume>>,
    pub buckets: BTreeMap<String, Placed<Bucket>>,
    pub db_instances: BTreeMap<String, Placed<DbInstance>>,
    pub eks_clusters: BTreeMap<String, Placed<EksCluster>>,
    pub subnets: HashMap<String, Subnet>,
    pub route_tables: Vec<RouteTable>,
    /// Internet gateway ids.
    pub internet_gateways: BTreeSet<String>,
    pub not_collected: Vec<NotCollected>,
    /// Account id → where its snapshot came from.
    pub sources: BTreeMap<String, SnapshotSource>,
    /// When each account was collected.
    pub collected_at: BTreeMap<String, String>,
    instance_by_id: HashMap<String, String>,
    sg_by_id: HashMap<String, String>,
    /// (namespace, ServiceAccount) → role ARNs from EKS Pod Identity associations.
    pod_identity: HashMap<(String, String), BTreeSet<String>>,
}

fn ec2_arn(region: &str, account: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:{kind}/{id}")
}

impl CloudInventory {
    /// Builds the cloud inventory of several snapshots (one per ScanPolicy).
    pub fn build<'a>(
        snapshots: impl IntoIterator<Item = (&'a SnapshotSource, &'a AwsSnapshot)>,
    ) -> Self {
        let catalog = ActionCatalog::shipped();
        let mut me = Self::default();
        for (source, snapshot) in snapshots {
            for account in &snapshot.accounts {
                let id = account.account_id.clone();
                me.sources.insert(id.clone(), source.clone());
                me.collected_at
                    .insert(id.clone(), snapshot.collected_at.clone());
                for (region, section, error) in account.missing_sections() {
                    me.not_collected.push(NotCollected {
                        account: id.clone(),
                        region: region.map(str::to_owned),
                        section,
                        error: error.to_owned(),
                    });
                }
                if let Some(data) = account.iam.data() {
                    me.iam.add_account(&id, data, catalog);
                }
                for bucket in account.s3.data().into_iter().flatten() {
                    me.buckets.insert(
                        format!("arn:aws:s3:::{}", bucket.name),
                        Placed {
                            account: id.clone(),
                            region: bucket.region.clone(),
                            data: bucket.clone(),
                        },
                    );
                }
                for (region, r) in &account.regional {
                    for i in r.instances.data().into_iter().flatten() {
                        let arn = ec2_arn(region, &id, "instance", &i.id);
                        me.instance_by_id.insert(i.id.clone(), arn.clone());
                        me.instances
                            .insert(arn, Placed::new(&id, region, i.clone()));
                    }
                    for sg in r.security_groups.data().into_iter().flatten() {
                        let arn = ec2_arn(region, &id, "security-group", &sg.id);
                        me.sg_by_id.insert(sg.id.clone(), arn.clone());
                        me.security_groups
                            .insert(arn, Placed::new(&id, region, sg.clone()));
                    }
                    for v in r.volumes.data().into_iter().flatten() {
                        me.volumes.insert(
                            ec2_arn(region, &id, "volume", &v.id),
                            Placed::new(&id, region, v.clone()),
                        );
                    }
                    for db in r.db_instances.data().into_iter().flatten() {
                        me.db_instances
                            .insert(db.arn.clone(), Placed::new(&id, region, db.clone()));
                    }
                    for s in r.subnets.data().into_iter().flatten() {
                        me.subnets.insert(s.id.clone(), s.clone());
                    }
                    me.route_tables
                        .extend(r.route_tables.data().into_iter().flatten().cloned());
                    me.internet_gateways.extend(
                        r.internet_gateways
                            .data()
                            .into_iter()
                            .flatten()
                            .map(|g| g.id.clone()),
                    );
                    for cluster in r.eks_clusters.data().into_iter().flatten() {
                        let applies = source
                            .eks_cluster
                            .as_ref()
                            .is_none_or(|name| *name == cluster.name);
                        if applies {
                            for a in cluster
                                .pod_identity_associations
                                .data()
                                .into_iter()
                                .flatten()
                            {
                                me.pod_identity
                                    .entry((a.namespace.clone(), a.service_account.clone()))
                                    .or_default()
                                    .insert(a.role_arn.clone());
                            }
                        }
                        me.eks_clusters.insert(
                            cluster.arn.clone(),
                            Placed::new(&id, region, cluster.clone()),
                        );
                    }
                }
            }
        }
        me
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Every cloud subject the rules look at.
    pub fn subjects(&self) -> impl Iterator<Item = ObjectKey> + '_ {
        let principals = self.iam.principals().map(|p| principal_key(p));
        let keyed = |kind: Kind| move |arn: &String| ObjectKey::cluster(kind, arn);
        principals
            .chain(self.instances.keys().map(keyed(Kind::Ec2Instance)))
            .chain(self.security_groups.keys().map(keyed(Kind::SecurityGroup)))
            .chain(self.volumes.keys().map(keyed(Kind::EbsVolume)))
            .chain(self.buckets.keys().map(keyed(Kind::S3Bucket)))
            .chain(self.db_instances.keys().map(keyed(Kind::RdsInstance)))
            .chain(self.eks_clusters.keys().map(keyed(Kind::EksCluster)))
    }

    /// The account a cloud subject belongs to.
    pub fn account_of<'a>(&'a self, key: &'a ObjectKey) -> Option<&'a str> {
        let arn = key.name.as_str();
        match key.kind {
            Kind::S3Bucket => self.buckets.get(arn).map(|b| b.account.as_str()),
            _ => snapshot::arn_account(arn),
        }
    }

    /// The ScanPolicy whose snapshot holds a cloud subject.
    pub fn policy_of(&self, key: &ObjectKey) -> Option<&str> {
        self.account_of(key)
            .and_then(|a| self.sources.get(a))
            .and_then(|s| s.policy.as_deref())
    }

    pub fn known_accounts(&self, account: &str) -> Vec<&str> {
        self.sources
            .get(account)
            .map(|s| s.known_accounts.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn instance_arn(&self, id: &str) -> Option<&str> {
        self.instance_by_id.get(id).map(String::as_str)
    }

    pub fn security_group_arn(&self, id: &str) -> Option<&str> {
        self.sg_by_id.get(id).map(String::as_str)
    }

    /// Roles EKS Pod Identity gives a ServiceAccount.
    pub fn pod_identity_roles(&self, namespace: &str, account: &str) -> Vec<&str> {
        self.pod_identity
            .get(&(namespace.to_owned(), account.to_owned()))
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The role of an instance (through its instance profile).
    pub fn instance_role(&self, instance: &Instance) -> Option<&Arc<Principal>> {
        instance
            .instance_profile
            .as_deref()
            .and_then(|p| self.iam.role_of_instance_profile(p))
    }

    /// Whether a subnet routes 0.0.0.0/0 to an internet gateway (a public subnet).
    pub fn subnet_is_public(&self, subnet_id: &str) -> Option<bool> {
        let subnet = self.subnets.get(subnet_id)?;
        let table = self
            .route_tables
            .iter()
            .find(|t| t.subnets.iter().any(|s| s == subnet_id))
            .or_else(|| {
                self.route_tables
                    .iter()
                    .find(|t| t.main && t.vpc_id == subnet.vpc_id)
            })?;
        Some(table.routes.iter().any(|r| {
            (r.destination == "0.0.0.0/0" || r.destination == "::/0")
                && r.target.starts_with("igw-")
        }))
    }
}

/// The subject key of an IAM principal.
pub fn principal_key(principal: &Principal) -> ObjectKey {
    let kind = match principal.kind {
        PrincipalKind::User => Kind::IamUser,
        PrincipalKind::Group => Kind::IamGroup,
        PrincipalKind::Role => Kind::IamRole,
    };
    ObjectKey::cluster(kind, &principal.arn)
}

/// The readable part of an ARN: `arn:aws:iam::1:role/path/app` → `app`,
/// `arn:aws:s3:::bucket` → `bucket`, `arn:aws:ec2:r:1:instance/i-1` → `i-1`.
pub fn short_name(arn: &str) -> &str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    resource.rsplit(['/', ':']).next().unwrap_or(resource)
}

/// `aws:///eu-west-1a/i-0123456789abcdef0` → `i-0123456789abcdef0`.
pub fn instance_id_of_provider_id(provider_id: &str) -> Option<&str> {
    let rest = provider_id.strip_prefix("aws://")?;
    let id = rest.rsplit('/').next()?;
    id.starts_with("i-").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_name("arn:aws:iam::123456789012:role/path/app"), "app");
        assert_eq!(short_name("arn:aws:s3:::my-bucket"), "my-bucket");
        assert_eq!(short_name("arn:aws:ec2:eu-west-1:1:instance/i-1"), "i-1");
        assert_eq!(short_name("arn:aws:rds:eu-west-1:1:db:orders"), "orders");
        assert_eq!(short_name("plain"), "plain");
    }

    #[test]
    fn provider_ids_name_instances() {
        assert_eq!(
            instance_id_of_provider_id("aws:///eu-west-1a/i-0123456789abcdef0"),
            Some("i-0123456789abcdef0")
        );
        assert_eq!(instance_id_of_provider_id("gce://p/z/n"), None);
        assert_eq!(
            instance_id_of_provider_id("aws:///eu-west-1a/fargate-ip"),
            None
        );
    }
}
