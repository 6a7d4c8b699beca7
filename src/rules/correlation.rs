//! Cloud ↔ cluster: a workload inherits the risk of the cloud identity it runs as. A
//! ServiceAccount mapped to an IAM role (the IRSA annotation, or an EKS Pod Identity
//! association) that is an administrator or can escalate makes every workload running
//! as it highly permissive, and the webhook denies creating such a mapping.

use super::iam::{admin_grants, escalation_methods};
use super::{CIS_AWS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::cloud::IRSA_ANNOTATION;
use crate::inventory::cloud::trust::{
    Trustee, eks_issuer, service_account_of_subject, trust_grants,
};
use crate::inventory::{Object, ObjectKey};

pub fn rules() -> Vec<Rule> {
    vec![Rule {
        meta: RuleMeta {
            id: "aws-irsa-privileged-role",
            title: "ServiceAccount runs as an AWS IAM role that is an administrator or can escalate",
            severity: Severity::High,
            category: Category::OverPrivilegedIdentity,
            remediation: "Map the ServiceAccount to a role with only the AWS permissions the workload needs (one role per workload), or remove the eks.amazonaws.com/role-arn annotation / Pod Identity association.",
            tags: &["HighlyPermissiveRole"],
            frameworks: &[
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization"),
                (
                    CIS_AWS,
                    "1.16 No IAM policies with full *:* administrative privileges",
                ),
            ],
            subject: SubjectKind::ServiceAccount,
        },
        check: privileged_cloud_role,
    }]
}

/// The IAM roles a ServiceAccount runs as: its IRSA annotation, then Pod Identity.
pub fn roles_of_service_account(ctx: &Context<'_>, key: &ObjectKey) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if let Some(Object::ServiceAccount(sa)) = ctx.inventory.get(key)
        && let Some(arn) = sa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IRSA_ANNOTATION))
    {
        out.push((arn.trim().to_owned(), "IRSA annotation"));
    }
    let ns = key.namespace().unwrap_or_default();
    for arn in ctx.inventory.cloud().pod_identity_roles(ns, &key.name) {
        out.push((arn.to_owned(), "EKS Pod Identity"));
    }
    out
}

fn privileged_cloud_role(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let cloud = ctx.inventory.cloud();
    for (arn, via) in roles_of_service_account(ctx, key) {
        let Some(role) = cloud.iam.principal(&arn) else {
            continue;
        };
        let (what, severity) = if admin_grants(role).is_some() {
            (
                "an administrator of AWS account".to_owned(),
                Severity::Critical,
            )
        } else {
            let methods = escalation_methods(role, ctx.config.escalation_methods());
            let Some(first) = methods.first() else {
                continue;
            };
            (
                format!(
                    "able to escalate ({}: {}) in AWS account",
                    first.method.id, first.method.via
                ),
                Severity::High,
            )
        };
        let workloads: Vec<ObjectKey> = ctx.inventory.workloads_running_as(key).cloned().collect();
        let used_by = if workloads.is_empty() {
            String::new()
        } else {
            format!(
                "; used by {}",
                workloads
                    .iter()
                    .map(|w| format!("{}/{}", w.kind, w.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        // Whether the role's trust policy admits this ServiceAccount (IRSA only).
        let ns = key.namespace().unwrap_or_default();
        let trusted = trust_grants(&role.trust).iter().any(|g| {
            matches!(&g.trustee, Trustee::Federated(p) if eks_issuer(p).is_some())
                && (g.subjects.is_empty()
                    || g.subjects.iter().any(|s| {
                        crate::inventory::cloud::actions::matches(
                            s,
                            &format!("system:serviceaccount:{ns}:{}", key.name),
                        ) || service_account_of_subject(s) == Some((ns, key.name.as_str()))
                    }))
        });
        let mut hit = Hit::new(format!(
            "ServiceAccount {ns}/{} runs as IAM role {} ({via}), {what} {}{used_by}",
            key.name, role.name, role.account
        ))
        .evidence("role", arn.clone())
        .evidence("via", via)
        .affected(workloads);
        if via == "IRSA annotation" {
            hit = hit.evidence(
                "trust policy admits it",
                if trusted {
                    "yes"
                } else {
                    "not found in the trust policy"
                },
            );
        }
        return Some(if severity == Severity::Critical {
            hit.severity(severity)
        } else {
            hit
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::inventory::{Kind, ObjectKey};
    use crate::rules::policy::{Policy, PolicySet};
    use crate::rules::testing::{cloud_fixture, run};
    use crate::rules::{Engine, Evaluation};

    const CLUSTER: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: shop
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/ops-admin"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: ops}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: shop
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/web"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ci, namespace: shop}
spec:
  selector: {matchLabels: {app: ci}}
  template:
    metadata: {labels: {app: ci}}
    spec:
      serviceAccountName: builder
      containers: [{name: ci, image: "ci:1"}]
"#;

    #[test]
    fn a_workload_inherits_the_risk_of_its_cloud_role() {
        let inventory = cloud_fixture("cloud-fail.json", CLUSTER);
        let found = run("aws-irsa-privileged-role", &inventory);
        let subjects: Vec<&str> = found.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(
            subjects,
            vec!["deployer", "builder"],
            "Pod Identity and IRSA"
        );
        let ci = ObjectKey::namespaced(Kind::Deployment, "shop", "ci");
        let builder = &found.iter().find(|(k, _)| k.name == "builder").unwrap().1;
        assert_eq!(builder.affected, vec![ci.clone()]);
        assert!(
            builder.message.contains("ops-admin") && builder.message.contains("administrator"),
            "{}",
            builder.message
        );

        let (evaluation, _) = Evaluation::full(
            &Engine::default(),
            &inventory,
            &PolicySet::single(Policy::allow_all()),
        );
        assert!(
            evaluation
                .tags_of(&ci)
                .tags
                .contains("HighlyPermissiveRole")
        );

        // The same ServiceAccounts against a least-privilege role: nothing.
        let clean = cloud_fixture("cloud-pass.json", CLUSTER);
        assert!(run("aws-irsa-privileged-role", &clean).is_empty());
    }
}
