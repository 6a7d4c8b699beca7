//! EC2 and VPC in one region: instances (public address, instance profile, IMDS
//! options, subnet, security groups), security groups, VPCs, subnets, route tables,
//! internet gateways, EBS volumes. Each list is paginated and recorded on its own.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;

use crate::inventory::cloud::snapshot::{
    Instance, InternetGateway, IpPermission, Route, RouteTable, Section, SecurityGroup, Subnet,
    Volume, Vpc,
};

/// Drains a paginator into a list, or the error of the page that failed.
macro_rules! paginate {
    ($call:expr, $operation:literal, |$page:ident| $items:expr) => {{
        let mut stream = $call.into_paginator().send();
        let mut out = Vec::new();
        let mut failed = None;
        while let Some(result) = stream.next().await {
            match result {
                Ok($page) => out.extend($items),
                Err(e) => {
                    failed = Some(super::describe($operation, &e));
                    break;
                }
            }
        }
        match failed {
            None => Section::Collected { data: out },
            Some(error) => Section::NotCollected { error },
        }
    }};
}
pub(crate) use paginate;

pub async fn instances(ec2: &Client) -> Section<Vec<Instance>> {
    paginate!(ec2.describe_instances(), "ec2:DescribeInstances", |page| {
        page.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let metadata = i.metadata_options();
                Instance {
                    id: i.instance_id().unwrap_or_default().to_owned(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_owned())
                        .unwrap_or_default(),
                    public_ip: i.public_ip_address().map(str::to_owned),
                    private_ip: i.private_ip_address().map(str::to_owned),
                    instance_profile: i
                        .iam_instance_profile()
                        .and_then(|p| p.arn())
                        .map(str::to_owned),
                    http_tokens: metadata
                        .and_then(|m| m.http_tokens())
                        .map(|t| t.as_str().to_owned()),
                    http_endpoint: metadata
                        .and_then(|m| m.http_endpoint())
                        .map(|t| t.as_str().to_owned()),
                    http_put_response_hop_limit: metadata
                        .and_then(|m| m.http_put_response_hop_limit()),
                    subnet_id: i.subnet_id().map(str::to_owned),
                    vpc_id: i.vpc_id().map(str::to_owned),
                    security_groups: i
                        .security_groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_owned))
                        .collect(),
                    tags: i
                        .tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_owned(),
                                t.value().unwrap_or_default().to_owned(),
                            ))
                        })
                        .collect::<BTreeMap<_, _>>(),
                }
            })
            .collect::<Vec<_>>()
    })
}

pub async fn security_groups(ec2: &Client) -> Section<Vec<SecurityGroup>> {
    paginate!(
        ec2.describe_security_groups(),
        "ec2:DescribeSecurityGroups",
        |page| {
            page.security_groups()
                .iter()
                .map(|g| SecurityGroup {
                    id: g.group_id().unwrap_or_default().to_owned(),
                    name: g.group_name().unwrap_or_default().to_owned(),
                    vpc_id: g.vpc_id().map(str::to_owned),
                    ingress: g
                        .ip_permissions()
                        .iter()
                        .map(|p| IpPermission {
                            protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
                            from_port: p.from_port(),
                            to_port: p.to_port(),
                            ipv4_ranges: p
                                .ip_ranges()
                                .iter()
                                .filter_map(|r| r.cidr_ip().map(str::to_owned))
                                .collect(),
                            ipv6_ranges: p
                                .ipv6_ranges()
                                .iter()
                                .filter_map(|r| r.cidr_ipv6().map(str::to_owned))
                                .collect(),
                            source_groups: p
                                .user_id_group_pairs()
                                .iter()
                                .filter_map(|g| g.group_id().map(str::to_owned))
                                .collect(),
                        })
                        .collect(),
                })
                .collect::<Vec<_>>()
        }
    )
}

pub async fn vpcs(ec2: &Client) -> Section<Vec<Vpc>> {
    paginate!(ec2.describe_vpcs(), "ec2:DescribeVpcs", |page| {
        page.vpcs()
            .iter()
            .map(|v| Vpc {
                id: v.vpc_id().unwrap_or_default().to_owned(),
                cidr: v.cidr_block().unwrap_or_default().to_owned(),
                is_default: v.is_default().unwrap_or(false),
            })
            .collect::<Vec<_>>()
    })
}

pub async fn subnets(ec2: &Client) -> Section<Vec<Subnet>> {
    paginate!(ec2.describe_subnets(), "ec2:DescribeSubnets", |page| {
        page.subnets()
            .iter()
            .map(|s| Subnet {
                id: s.subnet_id().unwrap_or_default().to_owned(),
                vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                cidr: s.cidr_block().unwrap_or_default().to_owned(),
                map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
            })
            .collect::<Vec<_>>()
    })
}

pub async fn route_tables(ec2: &Client) -> Section<Vec<RouteTable>> {
    paginate!(
        ec2.describe_route_tables(),
        "ec2:DescribeRouteTables",
        |page| {
            page.route_tables()
                .iter()
                .map(|t| RouteTable {
                    id: t.route_table_id().unwrap_or_default().to_owned(),
                    vpc_id: t.vpc_id().unwrap_or_default().to_owned(),
                    subnets: t
                        .associations()
                        .iter()
                        .filter_map(|a| a.subnet_id().map(str::to_owned))
                        .collect(),
                    main: t.associations().iter().any(|a| a.main().unwrap_or(false)),
                    routes: t
                        .routes()
                        .iter()
                        .map(|r| Route {
                            destination: r
                                .destination_cidr_block()
                                .or(r.destination_ipv6_cidr_block())
                                .unwrap_or_default()
                                .to_owned(),
                            target: r
                                .gateway_id()
                                .or(r.nat_gateway_id())
                                .or(r.transit_gateway_id())
                                .or(r.vpc_peering_connection_id())
                                .unwrap_or_default()
                                .to_owned(),
                        })
                        .collect(),
                })
                .collect::<Vec<_>>()
        }
    )
}

pub async fn internet_gateways(ec2: &Client) -> Section<Vec<InternetGateway>> {
    paginate!(
        ec2.describe_internet_gateways(),
        "ec2:DescribeInternetGateways",
        |page| {
            page.internet_gateways()
                .iter()
                .map(|g| InternetGateway {
                    id: g.internet_gateway_id().unwrap_or_default().to_owned(),
                    vpcs: g
                        .attachments()
                        .iter()
                        .filter_map(|a| a.vpc_id().map(str::to_owned))
                        .collect(),
                })
                .collect::<Vec<_>>()
        }
    )
}

pub async fn volumes(ec2: &Client) -> Section<Vec<Volume>> {
    paginate!(ec2.describe_volumes(), "ec2:DescribeVolumes", |page| {
        page.volumes()
            .iter()
            .map(|v| Volume {
                id: v.volume_id().unwrap_or_default().to_owned(),
                encrypted: v.encrypted().unwrap_or(false),
                size_gib: v.size().unwrap_or(0),
                attached_to: v
                    .attachments()
                    .iter()
                    .filter_map(|a| a.instance_id().map(str::to_owned))
                    .collect(),
            })
            .collect::<Vec<_>>()
    })
}
