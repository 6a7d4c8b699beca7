//! AWS configuration: security groups open to the internet, public and unprotected
//! buckets and databases, unencrypted storage, IMDSv1, public EKS endpoints, and the
//! combination of a public instance with an administrator role.

use super::{CIS_AWS, Context, Hit, NIST, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::ObjectKey;
use crate::inventory::cloud::Placed;
use crate::inventory::cloud::snapshot::{IpPermission, Section};

const NETWORK: &[(&str, &str)] = &[
    (NIST, "PR.IR-01"),
    (
        CIS_AWS,
        "5.2-5.3 No security group ingress from 0.0.0.0/0 or ::/0 to administration ports",
    ),
];

fn meta(
    id: &'static str,
    title: &'static str,
    severity: Severity,
    category: Category,
    remediation: &'static str,
    frameworks: &'static [(&'static str, &'static str)],
    subject: SubjectKind,
) -> RuleMeta {
    RuleMeta {
        id,
        title,
        severity,
        category,
        remediation,
        tags: &[],
        frameworks,
        subject,
    }
}

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: meta(
                "aws-sg-open-to-internet",
                "Security group admits the whole internet to all ports or to a risky port",
                Severity::High,
                Category::PublicExposure,
                "Replace 0.0.0.0/0 and ::/0 with the address ranges that need access, and reach administration ports through SSM Session Manager or a VPN instead.",
                NETWORK,
                SubjectKind::SecurityGroup,
            ),
            check: sg_open,
        },
        Rule {
            meta: meta(
                "aws-s3-public-bucket",
                "S3 bucket is readable or writable by anyone",
                Severity::High,
                Category::PublicExposure,
                "Remove the AllUsers/AuthenticatedUsers ACL grants and the Principal \"*\" statements, and turn on all four Block Public Access settings; serve public content through CloudFront with origin access control.",
                &[
                    (NIST, "PR.DS-01"),
                    (CIS_AWS, "2.1.4 S3 Block Public Access"),
                ],
                SubjectKind::S3Bucket,
            ),
            check: bucket_public,
        },
        Rule {
            meta: meta(
                "aws-s3-no-public-access-block",
                "S3 bucket does not block public access",
                Severity::Medium,
                Category::CloudConfiguration,
                "Turn on BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets on the bucket (or the account).",
                &[
                    (NIST, "PR.DS-01"),
                    (CIS_AWS, "2.1.4 S3 Block Public Access"),
                ],
                SubjectKind::S3Bucket,
            ),
            check: bucket_without_block,
        },
        Rule {
            meta: meta(
                "aws-s3-unencrypted",
                "S3 bucket has no default encryption",
                Severity::Low,
                Category::DataProtection,
                "Configure default encryption (SSE-KMS with a customer managed key where the data is sensitive).",
                &[(NIST, "PR.DS-01"), (CIS_AWS, "2.1.1 S3 bucket encryption")],
                SubjectKind::S3Bucket,
            ),
            check: bucket_unencrypted,
        },
        Rule {
            meta: meta(
                "aws-rds-public",
                "RDS instance is publicly accessible",
                Severity::High,
                Category::PublicExposure,
                "Set PubliclyAccessible to false and reach the database from inside the VPC (or through a bastion or RDS Proxy).",
                &[
                    (NIST, "PR.IR-01"),
                    (CIS_AWS, "2.3.3 RDS instances not publicly accessible"),
                ],
                SubjectKind::RdsInstance,
            ),
            check: rds_public,
        },
        Rule {
            meta: meta(
                "aws-rds-unencrypted",
                "RDS instance storage is not encrypted",
                Severity::Medium,
                Category::DataProtection,
                "Restore the instance from an encrypted snapshot copy (storage encryption cannot be turned on in place).",
                &[
                    (NIST, "PR.DS-01"),
                    (CIS_AWS, "2.3.1 RDS encryption at rest"),
                ],
                SubjectKind::RdsInstance,
            ),
            check: rds_unencrypted,
        },
        Rule {
            meta: meta(
                "aws-ebs-unencrypted",
                "EBS volume is not encrypted",
                Severity::Medium,
                Category::DataProtection,
                "Copy the data to an encrypted volume (or snapshot and restore encrypted) and turn on EBS encryption by default for the region.",
                &[(NIST, "PR.DS-01"), (CIS_AWS, "2.2.1 EBS volume encryption")],
                SubjectKind::EbsVolume,
            ),
            check: ebs_unencrypted,
        },
        Rule {
            meta: meta(
                "aws-ec2-imdsv1",
                "EC2 instance allows IMDSv1",
                Severity::Medium,
                Category::CloudConfiguration,
                "Require IMDSv2 (HttpTokens: required) and, on Kubernetes nodes, a hop limit of 1 so pods cannot reach the node's role credentials.",
                &[
                    (NIST, "PR.PS-01"),
                    (CIS_AWS, "5.6 EC2 instances use IMDSv2"),
                ],
                SubjectKind::Ec2Instance,
            ),
            check: imdsv1,
        },
        Rule {
            meta: meta(
                "aws-ec2-public-admin-instance",
                "Internet-facing instance runs with an administrator or escalating role",
                Severity::Critical,
                Category::AttackPath,
                "Take the instance off the internet (no public IP, traffic through a load balancer) or give it a least-privilege instance profile; a compromise of the instance is a compromise of the account.",
                &[
                    (NIST, "PR.AA-05"),
                    (
                        CIS_AWS,
                        "1.16 No IAM policies with full *:* administrative privileges",
                    ),
                ],
                SubjectKind::Ec2Instance,
            ),
            check: public_admin_instance,
        },
        Rule {
            meta: meta(
                "aws-eks-public-endpoint",
                "EKS API endpoint is open to the internet",
                Severity::Medium,
                Category::PublicExposure,
                "Turn on the private endpoint and either turn off public access or restrict publicAccessCidrs to the ranges that administer the cluster.",
                &[
                    (NIST, "PR.IR-01"),
                    (CIS_AWS, "CIS Amazon EKS Benchmark 5.4.2 private endpoint"),
                ],
                SubjectKind::EksCluster,
            ),
            check: eks_public_endpoint,
        },
    ]
}

const WORLD: [&str; 2] = ["0.0.0.0/0", "::/0"];

fn open_to_world(p: &IpPermission) -> bool {
    p.ipv4_ranges
        .iter()
        .chain(&p.ipv6_ranges)
        .any(|r| WORLD.contains(&r.as_str()))
}

fn sg_open(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let Placed { data: sg, .. } = ctx.inventory.cloud().security_groups.get(&key.name)?;
    let mut worst: Option<(Severity, String)> = None;
    for p in sg.ingress.iter().filter(|p| open_to_world(p)) {
        let (from, to) = (p.from_port.unwrap_or(0), p.to_port.unwrap_or(65535));
        let all = p.protocol == "-1" || (from <= 0 && to >= 65535);
        let what = if all {
            Some((Severity::High, "all ports".to_owned()))
        } else {
            (from..=to.min(from + 2048))
                .find_map(|port| ctx.config.risky_port(port).map(|s| (port, s)))
                .map(|(port, service)| (Severity::High, format!("port {port} ({service})")))
        };
        if let Some((severity, text)) = what
            && worst.as_ref().is_none_or(|(s, _)| severity > *s)
        {
            worst = Some((severity, text));
        }
    }
    let (_, what) = worst?;
    let users: Vec<String> = ctx
        .inventory
        .cloud()
        .instances
        .values()
        .filter(|i| i.data.security_groups.contains(&sg.id))
        .map(|i| i.data.id.clone())
        .collect();
    let mut hit = Hit::new(format!(
        "Security group {} ({}) admits 0.0.0.0/0 or ::/0 to {what}{}",
        sg.id,
        sg.name,
        if users.is_empty() {
            String::new()
        } else {
            format!("; used by {}", users.join(", "))
        }
    ))
    .evidence("open", what);
    for instance in users.iter().take(8) {
        hit = hit.evidence("instance", instance.clone());
    }
    Some(hit)
}

const PUBLIC_GRANTEES: [&str; 2] = [
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
];

fn bucket_public(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let bucket = &ctx.inventory.cloud().buckets.get(&key.name)?.data;
    let block = bucket.public_access_block.data().cloned().flatten();
    let mut why = Vec::new();
    let acls_count = !block.as_ref().is_some_and(|b| b.ignore_public_acls);
    if acls_count {
        for grant in bucket.acl.data().into_iter().flatten() {
            if PUBLIC_GRANTEES.contains(&grant.grantee.as_str()) {
                let who = grant.grantee.rsplit('/').next().unwrap_or_default();
                why.push(format!("ACL grants {} to {who}", grant.permission));
            }
        }
    }
    let policy_counts = !block.as_ref().is_some_and(|b| b.restrict_public_buckets);
    if policy_counts {
        if let Some(Some(true)) = bucket.policy_is_public.data() {
            why.push("S3 reports the bucket policy as public".into());
        } else if let Some(Some(policy)) = bucket.policy.data() {
            let statements = crate::inventory::cloud::iam::statements(policy);
            for s in statements.iter().filter(|s| {
                s.effect == crate::inventory::cloud::iam::Effect::Allow
                    && !s.conditional()
                    && s.principal.as_ref().is_some_and(|p| {
                        p == "*"
                            || p.get("AWS").is_some_and(|a| {
                                a == "*" || a.as_array().is_some_and(|l| l.iter().any(|v| v == "*"))
                            })
                    })
            }) {
                why.push(format!(
                    "the policy allows {} to anyone",
                    s.actions.join(", ")
                ));
            }
        }
    }
    if why.is_empty() {
        return None;
    }
    let mut hit = Hit::new(format!(
        "S3 bucket {} is public: {}",
        bucket.name,
        why.join("; ")
    ));
    for reason in why {
        hit = hit.evidence("public", reason);
    }
    Some(hit)
}

fn bucket_without_block(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let bucket = &ctx.inventory.cloud().buckets.get(&key.name)?.data;
    let block = bucket.public_access_block.data()?;
    match block {
        Some(b) if b.all() => None,
        Some(b) => Some(
            Hit::new(format!(
                "S3 bucket {} blocks public access only in part",
                bucket.name
            ))
            .evidence("BlockPublicAcls", b.block_public_acls.to_string())
            .evidence("IgnorePublicAcls", b.ignore_public_acls.to_string())
            .evidence("BlockPublicPolicy", b.block_public_policy.to_string())
            .evidence(
                "RestrictPublicBuckets",
                b.restrict_public_buckets.to_string(),
            ),
        ),
        None => Some(Hit::new(format!(
            "S3 bucket {} has no Block Public Access configuration",
            bucket.name
        ))),
    }
}

fn bucket_unencrypted(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let bucket = &ctx.inventory.cloud().buckets.get(&key.name)?.data;
    match &bucket.encryption {
        Section::Collected { data } if data.is_empty() => Some(Hit::new(format!(
            "S3 bucket {} has no default encryption configuration",
            bucket.name
        ))),
        _ => None,
    }
}

fn rds_public(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let db = &ctx.inventory.cloud().db_instances.get(&key.name)?.data;
    db.publicly_accessible.then(|| {
        Hit::new(format!(
            "RDS instance {} ({}) is publicly accessible{}",
            db.id,
            db.engine,
            db.endpoint
                .as_ref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        ))
    })
}

fn rds_unencrypted(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let db = &ctx.inventory.cloud().db_instances.get(&key.name)?.data;
    (!db.storage_encrypted).then(|| {
        Hit::new(format!(
            "RDS instance {} ({}) stores its data unencrypted",
            db.id, db.engine
        ))
    })
}

fn ebs_unencrypted(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let v = &ctx.inventory.cloud().volumes.get(&key.name)?.data;
    (!v.encrypted).then(|| {
        let attached = if v.attached_to.is_empty() {
            "unattached".to_owned()
        } else {
            format!("attached to {}", v.attached_to.join(", "))
        };
        Hit::new(format!(
            "EBS volume {} ({} GiB, {attached}) is not encrypted",
            v.id, v.size_gib
        ))
    })
}

/// The Kubernetes Node running on an instance, if the inventory has it.
fn node_of(ctx: &Context<'_>, instance_id: &str) -> Option<String> {
    ctx.inventory
        .node_of_instance(instance_id)
        .map(|k| k.name.clone())
}

fn imdsv1(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let cloud = ctx.inventory.cloud();
    let i = &cloud.instances.get(&key.name)?.data;
    let enabled = i.http_endpoint.as_deref() != Some("disabled");
    if !enabled || i.http_tokens.as_deref() != Some("optional") {
        return None;
    }
    let role = cloud.instance_role(i);
    let node = node_of(ctx, &i.id);
    let mut hit = Hit::new(format!(
        "EC2 instance {}{} answers IMDSv1 requests{}",
        i.id,
        node.as_ref()
            .map(|n| format!(" (Kubernetes node {n})"))
            .unwrap_or_default(),
        match role {
            Some(r) => format!(
                ": a server-side request forgery{} hands out the credentials of role {}",
                if node.is_some() { " or any pod" } else { "" },
                r.name
            ),
            None => String::new(),
        }
    ))
    .evidence("HttpTokens", "optional");
    if let Some(hops) = i.http_put_response_hop_limit {
        hit = hit.evidence("HttpPutResponseHopLimit", hops.to_string());
    }
    Some(if role.is_some() {
        hit.severity(Severity::High)
    } else {
        hit
    })
}

fn public_admin_instance(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let cloud = ctx.inventory.cloud();
    let i = &cloud.instances.get(&key.name)?.data;
    let ip = i.public_ip.as_ref()?;
    let role = cloud.instance_role(i)?;
    let why = if super::iam::admin_grants(role).is_some() {
        "an administrator".to_owned()
    } else {
        let methods = super::iam::escalation_methods(role, ctx.config.escalation_methods());
        let first = methods.first()?;
        format!("able to escalate ({})", first.method.id)
    };
    let node = node_of(ctx, &i.id);
    Some(
        Hit::new(format!(
            "EC2 instance {}{} has the public address {ip} and runs as role {}, {why}",
            i.id,
            node.as_ref()
                .map(|n| format!(" (Kubernetes node {n})"))
                .unwrap_or_default(),
            role.name
        ))
        .evidence("publicIp", ip.clone())
        .evidence("role", role.arn.clone()),
    )
}

fn eks_public_endpoint(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let c = &ctx.inventory.cloud().eks_clusters.get(&key.name)?.data;
    let open = c.endpoint_public_access
        && (c.public_access_cidrs.is_empty()
            || c.public_access_cidrs.iter().any(|r| r == "0.0.0.0/0"));
    open.then(|| {
        Hit::new(format!(
            "The API endpoint of EKS cluster {} accepts connections from the whole internet",
            c.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use crate::rules::testing::{cloud_fixture, hit_names, run};

    #[test]
    fn each_cloud_rule_fails_its_fixture_and_passes_the_hardened_account() {
        let fail = cloud_fixture("cloud-fail.json", "");
        let pass = cloud_fixture("cloud-pass.json", "");
        for (rule, expected) in [
            ("aws-sg-open-to-internet", vec!["sg-open", "sg-ssh"]),
            ("aws-s3-public-bucket", vec!["public-acl", "public-policy"]),
            (
                "aws-s3-no-public-access-block",
                vec!["public-acl", "public-policy"],
            ),
            ("aws-s3-unencrypted", vec!["public-acl"]),
            ("aws-rds-public", vec!["orders"]),
            ("aws-rds-unencrypted", vec!["orders"]),
            ("aws-ebs-unencrypted", vec!["vol-plain"]),
            ("aws-ec2-imdsv1", vec!["i-0admin00000000001"]),
            ("aws-ec2-public-admin-instance", vec!["i-0admin00000000001"]),
            ("aws-eks-public-endpoint", vec!["prod"]),
        ] {
            assert_eq!(
                hit_names(rule, &fail),
                expected,
                "{rule} on the failing account"
            );
            assert!(
                hit_names(rule, &pass).is_empty(),
                "{rule}: {:?}",
                hit_names(rule, &pass)
            );
        }
    }

    #[test]
    fn messages_name_the_port_the_role_and_the_node() {
        let fail = cloud_fixture(
            "cloud-fail.json",
            "apiVersion: v1\nkind: Node\nmetadata: {name: ip-10-0-1-7}\nspec: {providerID: \"aws:///eu-west-1a/i-0admin00000000001\"}\n",
        );
        let message = |rule: &str| {
            run(rule, &fail)
                .into_iter()
                .map(|(_, h)| h.message)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let sg = message("aws-sg-open-to-internet");
        assert!(
            sg.contains("all ports") && sg.contains("port 22 (SSH)"),
            "{sg}"
        );
        let imds = message("aws-ec2-imdsv1");
        assert!(
            imds.contains("Kubernetes node ip-10-0-1-7") && imds.contains("ops-admin"),
            "{imds}"
        );
        let admin = message("aws-ec2-public-admin-instance");
        assert!(
            admin.contains("203.0.113.10") && admin.contains("an administrator"),
            "{admin}"
        );
    }
}
