//! One region: EC2 and VPC (see `ec2`), RDS instances and EKS clusters with their Pod
//! Identity associations.

use aws_config::SdkConfig;

use super::ec2::{self, paginate};
use crate::inventory::cloud::snapshot::{
    DbInstance, EksCluster, PodIdentityAssociation, RegionSnapshot, Section,
};

pub async fn collect_region(config: &SdkConfig) -> RegionSnapshot {
    let client = aws_sdk_ec2::Client::new(config);
    RegionSnapshot {
        instances: ec2::instances(&client).await,
        security_groups: ec2::security_groups(&client).await,
        vpcs: ec2::vpcs(&client).await,
        subnets: ec2::subnets(&client).await,
        route_tables: ec2::route_tables(&client).await,
        internet_gateways: ec2::internet_gateways(&client).await,
        volumes: ec2::volumes(&client).await,
        db_instances: db_instances(config).await,
        eks_clusters: eks_clusters(config).await,
    }
}

async fn db_instances(config: &SdkConfig) -> Section<Vec<DbInstance>> {
    let rds = aws_sdk_rds::Client::new(config);
    paginate!(
        rds.describe_db_instances(),
        "rds:DescribeDBInstances",
        |page| {
            page.db_instances()
                .iter()
                .map(|d| DbInstance {
                    id: d.db_instance_identifier().unwrap_or_default().to_owned(),
                    arn: d.db_instance_arn().unwrap_or_default().to_owned(),
                    engine: d.engine().unwrap_or_default().to_owned(),
                    publicly_accessible: d.publicly_accessible().unwrap_or(false),
                    storage_encrypted: d.storage_encrypted().unwrap_or(false),
                    security_groups: d
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                        .collect(),
                    endpoint: d.endpoint().and_then(|e| e.address()).map(str::to_owned),
                })
                .collect::<Vec<_>>()
        }
    )
}

async fn eks_clusters(config: &SdkConfig) -> Section<Vec<EksCluster>> {
    let eks = aws_sdk_eks::Client::new(config);
    let names: Section<Vec<String>> = paginate!(eks.list_clusters(), "eks:ListClusters", |page| {
        page.clusters().to_vec()
    });
    let names = match names {
        Section::Collected { data } => data,
        Section::NotCollected { error } => return Section::NotCollected { error },
    };
    let mut clusters = Vec::new();
    for name in names {
        let described = match eks.describe_cluster().name(&name).send().await {
            Ok(out) => out,
            Err(e) => {
                return Section::NotCollected {
                    error: super::describe("eks:DescribeCluster", &e),
                };
            }
        };
        let Some(c) = described.cluster() else {
            continue;
        };
        let vpc = c.resources_vpc_config();
        clusters.push(EksCluster {
            name: name.clone(),
            arn: c.arn().unwrap_or_default().to_owned(),
            version: c.version().unwrap_or_default().to_owned(),
            endpoint_public_access: vpc.is_some_and(|v| v.endpoint_public_access()),
            public_access_cidrs: vpc
                .map(|v| v.public_access_cidrs().to_vec())
                .unwrap_or_default(),
            oidc_issuer: c
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .map(str::to_owned),
            pod_identity_associations: pod_identity(&eks, &name).await,
        });
    }
    Section::Collected { data: clusters }
}

async fn pod_identity(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
) -> Section<Vec<PodIdentityAssociation>> {
    let summaries: Section<Vec<String>> = paginate!(
        eks.list_pod_identity_associations().cluster_name(cluster),
        "eks:ListPodIdentityAssociations",
        |page| page
            .associations()
            .iter()
            .filter_map(|a| a.association_id().map(str::to_owned))
            .collect::<Vec<_>>()
    );
    let ids = match summaries {
        Section::Collected { data } => data,
        Section::NotCollected { error } => return Section::NotCollected { error },
    };
    let mut out = Vec::new();
    for id in ids {
        // The summary has no role ARN; the description does.
        match eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(&id)
            .send()
            .await
        {
            Ok(d) => {
                if let Some(a) = d.association() {
                    out.push(PodIdentityAssociation {
                        namespace: a.namespace().unwrap_or_default().to_owned(),
                        service_account: a.service_account().unwrap_or_default().to_owned(),
                        role_arn: a.role_arn().unwrap_or_default().to_owned(),
                        association_id: id,
                    });
                }
            }
            Err(e) => {
                return Section::NotCollected {
                    error: super::describe("eks:DescribePodIdentityAssociation", &e),
                };
            }
        }
    }
    Section::Collected { data: out }
}
