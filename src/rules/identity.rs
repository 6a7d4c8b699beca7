//! Over-privileged identity: ServiceAccounts whose effective RBAC permissions (every
//! binding, direct or through groups such as `system:serviceaccounts`) allow taking
//! over the cluster or reading what they should not. Tag `HighlyPermissiveRole` on every
//! workload that runs as such an account, Job and CronJob templates included.

use super::{CIS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::ObjectKey;
use crate::inventory::rbac::{Grant, GrantScope, allows, is_wildcard};

const TAGS: &[&str] = &["HighlyPermissiveRole"];
const FRAMEWORKS: &[(&str, &str)] = &[
    (NIST, "PR.AA-05"),
    (CIS, "5.1 RBAC and Service Accounts"),
    (NSA, "Authentication and authorization"),
];

/// Groups no binding should grant anything to, and how bad it is.
const BROAD_GROUPS: &[(&str, Severity, &str)] = &[
    (
        "system:anonymous",
        Severity::Critical,
        "every anonymous request",
    ),
    (
        "system:unauthenticated",
        Severity::Critical,
        "every unauthenticated request",
    ),
    (
        "system:authenticated",
        Severity::High,
        "every authenticated identity, ServiceAccounts of all namespaces included",
    ),
    (
        "system:masters",
        Severity::High,
        "a group that bypasses RBAC entirely; membership is granted by certificates and cannot be revoked",
    ),
];

fn broad_binding(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    // system:basic-user, system:discovery, cluster-admin → system:masters: Kubernetes'
    // own defaults, reported only once an administrator takes them over.
    if crate::inventory::rbac::is_kubernetes_default(object) {
        return None;
    }
    let (subjects, role_ref, _) = crate::inventory::rbac::binding_parts(object)?;
    let mut worst: Option<(Severity, &str, &str)> = None;
    for subject in subjects
        .iter()
        .filter(|s| s.kind == "Group" || s.kind == "User")
    {
        let name = subject.name.as_str();
        let name = if name == "system:anonymous" || subject.kind == "Group" {
            name
        } else {
            continue;
        };
        if let Some((group, severity, why)) = BROAD_GROUPS.iter().find(|(g, _, _)| *g == name)
            && worst.is_none_or(|(s, _, _)| *severity > s)
        {
            worst = Some((*severity, group, why));
        }
    }
    let (severity, group, why) = worst?;
    let hit = Hit::new(format!(
        "{} {} grants {} {} to {group}: {why}",
        key.kind, key.name, role_ref.kind, role_ref.name
    ))
    .evidence("group", group)
    .evidence("role", format!("{}/{}", role_ref.kind, role_ref.name));
    Some(if severity != Severity::Critical {
        hit.severity(severity)
    } else {
        hit
    })
}

/// A permission check: (verb, API group, resource) triples, any of which counts.
struct Permission {
    any_of: &'static [(&'static str, &'static str, &'static str)],
    cluster_wide_only: bool,
}

macro_rules! rbac_rule {
    ($id:literal, $title:literal, $severity:expr, $remediation:literal, $frameworks:expr, $check:ident) => {
        Rule {
            meta: RuleMeta {
                id: $id,
                title: $title,
                severity: $severity,
                category: Category::OverPrivilegedIdentity,
                remediation: $remediation,
                tags: TAGS,
                frameworks: $frameworks,
                subject: SubjectKind::ServiceAccount,
            },
            check: $check,
        }
    };
}

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: RuleMeta {
                id: "rbac-binding-to-broad-group",
                title: "Binding grants a role to anonymous, unauthenticated, all authenticated users or system:masters",
                severity: Severity::Critical,
                category: Category::OverPrivilegedIdentity,
                remediation: "Bind the role to the specific users, groups or ServiceAccounts that need it; never to system:anonymous, system:unauthenticated, system:authenticated or system:masters.",
                tags: &[],
                frameworks: &[
                    (CIS, "5.1.1"),
                    (NIST, "PR.AA-05"),
                    (NSA, "Authentication and authorization"),
                ],
                subject: SubjectKind::Binding,
            },
            check: broad_binding,
        },
        rbac_rule!(
            "rbac-cluster-admin",
            "ServiceAccount bound to cluster-admin",
            Severity::Critical,
            "Bind a Role with only the verbs and resources the workload uses instead of cluster-admin.",
            &[
                (CIS, "5.1.1"),
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization")
            ],
            cluster_admin
        ),
        rbac_rule!(
            "rbac-wildcard",
            "ServiceAccount holds wildcard verbs or resources",
            Severity::High,
            "Replace '*' in verbs and resources with the explicit list the workload needs.",
            &[
                (CIS, "5.1.3"),
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization")
            ],
            wildcard
        ),
        rbac_rule!(
            "rbac-escalate-bind-impersonate",
            "ServiceAccount can escalate, bind or impersonate",
            Severity::High,
            "Remove escalate and bind on roles and impersonate on users, groups and serviceaccounts; these let the holder grant itself any permission.",
            &[
                (CIS, "5.1.8"),
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization")
            ],
            escalate_bind_impersonate
        ),
        rbac_rule!(
            "rbac-secrets-read",
            "ServiceAccount can read Secrets cluster-wide",
            Severity::High,
            "Grant get/list/watch on secrets only in the namespace that needs them, by name (resourceNames) where possible.",
            &[
                (CIS, "5.1.2"),
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization")
            ],
            secrets_read
        ),
        rbac_rule!(
            "rbac-pods-exec",
            "ServiceAccount can exec into pods",
            Severity::High,
            "Remove create on pods/exec; debugging access belongs to people through short-lived bindings.",
            FRAMEWORKS,
            pods_exec
        ),
        rbac_rule!(
            "rbac-nodes-proxy",
            "ServiceAccount can use the nodes/proxy subresource",
            Severity::High,
            "Remove nodes/proxy: it reaches the kubelet API directly, bypassing admission and audit.",
            FRAMEWORKS,
            nodes_proxy
        ),
        rbac_rule!(
            "rbac-token-create",
            "ServiceAccount can create tokens for other ServiceAccounts",
            Severity::High,
            "Remove create on serviceaccounts/token; it mints credentials for any account in scope.",
            &[
                (CIS, "5.1.6"),
                (NIST, "PR.AA-05"),
                (NSA, "Authentication and authorization")
            ],
            token_create
        ),
        rbac_rule!(
            "rbac-pods-attach",
            "ServiceAccount can attach to running containers",
            Severity::High,
            "Remove create on pods/attach; attaching to a container gives its shell and its credentials.",
            FRAMEWORKS,
            pods_attach
        ),
        rbac_rule!(
            "rbac-ephemeral-containers",
            "ServiceAccount can add ephemeral containers to pods",
            Severity::High,
            "Remove update/patch on pods/ephemeralcontainers; an ephemeral container can run any image inside any pod in scope.",
            FRAMEWORKS,
            ephemeral_containers
        ),
        rbac_rule!(
            "rbac-csr-approve",
            "ServiceAccount can approve certificate signing requests",
            Severity::High,
            "Remove update on certificatesigningrequests/approval (and approve on signers); approving CSRs mints client certificates, for system:masters too.",
            FRAMEWORKS,
            csr_approve
        ),
        rbac_rule!(
            "rbac-aws-auth-write",
            "ServiceAccount can change the aws-auth ConfigMap",
            Severity::High,
            "Remove write verbs on configmaps in kube-system; on EKS the aws-auth ConfigMap maps IAM identities to cluster admin.",
            FRAMEWORKS,
            aws_auth_write
        ),
        rbac_rule!(
            "rbac-namespace-patch",
            "ServiceAccount can change namespaces (and their Pod Security labels)",
            Severity::Medium,
            "Remove patch/update on namespaces; relabelling a namespace switches off its Pod Security admission level.",
            FRAMEWORKS,
            namespace_patch
        ),
        rbac_rule!(
            "rbac-webhook-write",
            "ServiceAccount can change admission webhook configurations",
            Severity::High,
            "Remove write verbs on validating/mutatingwebhookconfigurations; they can switch off admission control or intercept every object.",
            FRAMEWORKS,
            webhook_write
        ),
    ]
}

/// Cluster-wide cluster-admin holds every permission: its own finding says it all, so
/// the narrower rules stay quiet instead of repeating it eight times.
fn is_cluster_admin(grants: &[Grant]) -> bool {
    grants
        .iter()
        .any(|g| g.role == "ClusterRole/cluster-admin" && g.scope == GrantScope::Cluster)
}

/// The grants of the account that satisfy the permission, and the workloads at risk.
fn check_permission(
    ctx: &Context<'_>,
    key: &ObjectKey,
    permission: &Permission,
    what: &str,
) -> Option<Hit> {
    let grants = ctx.grants_for_service_account(key);
    if is_cluster_admin(&grants) {
        return None;
    }
    let matching: Vec<&Grant> = grants
        .iter()
        .filter(|g| !permission.cluster_wide_only || g.scope == GrantScope::Cluster)
        .filter(|g| {
            permission
                .any_of
                .iter()
                .any(|(verb, group, resource)| allows(&g.rule, verb, group, resource))
        })
        .collect();
    hit_for(ctx, key, &matching, what)
}

fn hit_for(ctx: &Context<'_>, key: &ObjectKey, grants: &[&Grant], what: &str) -> Option<Hit> {
    let first = grants.first()?;
    let scope = if grants.iter().any(|g| g.scope == GrantScope::Cluster) {
        "cluster-wide".to_owned()
    } else {
        match &first.scope {
            GrantScope::Namespace(ns) => format!("in namespace {ns}"),
            GrantScope::Cluster => "cluster-wide".to_owned(),
        }
    };
    let mut via: Vec<String> = grants
        .iter()
        .map(|g| format!("{} via {}/{}", g.role, g.binding.kind, g.binding.name))
        .collect();
    via.sort();
    via.dedup();
    let workloads: Vec<ObjectKey> = ctx.inventory.workloads_running_as(key).cloned().collect();
    let mut message = format!(
        "ServiceAccount {}/{} {what} {scope} ({})",
        key.namespace().unwrap_or_default(),
        key.name,
        via.join("; ")
    );
    if !workloads.is_empty() {
        let names: Vec<String> = workloads
            .iter()
            .map(|w| format!("{}/{}", w.kind, w.name))
            .collect();
        message.push_str(&format!("; used by {}", names.join(", ")));
    }
    Some(
        Hit::new(message)
            .evidence("grantedBy", via.join("; "))
            .affected(workloads),
    )
}

fn cluster_admin(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let grants = ctx.grants_for_service_account(key);
    let matching: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.role == "ClusterRole/cluster-admin")
        .collect();
    let hit = hit_for(ctx, key, &matching, "is bound to cluster-admin")?;
    // A RoleBinding to cluster-admin is admin of one namespace, not of the cluster.
    if matching.iter().all(|g| g.scope != GrantScope::Cluster) {
        return Some(hit.severity(Severity::High));
    }
    Some(hit)
}

fn wildcard(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let grants = ctx.grants_for_service_account(key);
    if is_cluster_admin(&grants) {
        return None;
    }
    let matching: Vec<&Grant> = grants.iter().filter(|g| is_wildcard(&g.rule)).collect();
    hit_for(ctx, key, &matching, "holds wildcard permissions")
}

fn escalate_bind_impersonate(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    const G: &str = "rbac.authorization.k8s.io";
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[
                ("escalate", G, "roles"),
                ("escalate", G, "clusterroles"),
                ("bind", G, "roles"),
                ("bind", G, "clusterroles"),
                ("impersonate", "", "users"),
                ("impersonate", "", "groups"),
                ("impersonate", "", "serviceaccounts"),
                ("impersonate", "authentication.k8s.io", "userextras"),
                ("impersonate", "authentication.k8s.io", "uids"),
            ],
            cluster_wide_only: false,
        },
        "can escalate, bind or impersonate",
    )
}

fn secrets_read(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[
                ("get", "", "secrets"),
                ("list", "", "secrets"),
                ("watch", "", "secrets"),
            ],
            cluster_wide_only: true,
        },
        "can read Secrets",
    )
}

fn pods_exec(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[("create", "", "pods/exec")],
            cluster_wide_only: false,
        },
        "can exec into pods",
    )
}

fn nodes_proxy(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[("get", "", "nodes/proxy"), ("create", "", "nodes/proxy")],
            cluster_wide_only: false,
        },
        "can reach kubelets through nodes/proxy",
    )
}

fn token_create(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[("create", "", "serviceaccounts/token")],
            cluster_wide_only: false,
        },
        "can create ServiceAccount tokens",
    )
}

fn pods_attach(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[("create", "", "pods/attach")],
            cluster_wide_only: false,
        },
        "can attach to containers",
    )
}

fn ephemeral_containers(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[
                ("update", "", "pods/ephemeralcontainers"),
                ("patch", "", "pods/ephemeralcontainers"),
            ],
            cluster_wide_only: false,
        },
        "can add ephemeral containers to pods",
    )
}

fn csr_approve(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    const G: &str = "certificates.k8s.io";
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[
                ("update", G, "certificatesigningrequests/approval"),
                ("patch", G, "certificatesigningrequests/approval"),
            ],
            cluster_wide_only: false,
        },
        "can approve certificate signing requests",
    )
}

fn aws_auth_write(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let grants = ctx.grants_for_service_account(key);
    if is_cluster_admin(&grants) {
        return None;
    }
    let matching: Vec<&Grant> = grants
        .iter()
        // Only where kube-system's ConfigMaps are in reach, and aws-auth among the names.
        .filter(|g| {
            matches!(&g.scope, GrantScope::Cluster)
                || g.scope == GrantScope::Namespace("kube-system".into())
        })
        .filter(|g| {
            g.rule
                .resource_names
                .as_ref()
                .is_none_or(|n| n.is_empty() || n.iter().any(|n| n == "aws-auth"))
        })
        .filter(|g| {
            ["update", "patch", "create", "delete"]
                .iter()
                .any(|v| allows(&g.rule, v, "", "configmaps"))
        })
        .collect();
    hit_for(ctx, key, &matching, "can change the aws-auth ConfigMap")
}

fn namespace_patch(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[("patch", "", "namespaces"), ("update", "", "namespaces")],
            cluster_wide_only: true,
        },
        "can relabel namespaces",
    )
}

fn webhook_write(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    const G: &str = "admissionregistration.k8s.io";
    check_permission(
        ctx,
        key,
        &Permission {
            any_of: &[
                ("create", G, "validatingwebhookconfigurations"),
                ("update", G, "validatingwebhookconfigurations"),
                ("patch", G, "validatingwebhookconfigurations"),
                ("delete", G, "validatingwebhookconfigurations"),
                ("create", G, "mutatingwebhookconfigurations"),
                ("update", G, "mutatingwebhookconfigurations"),
                ("patch", G, "mutatingwebhookconfigurations"),
                ("delete", G, "mutatingwebhookconfigurations"),
            ],
            cluster_wide_only: false,
        },
        "can change admission webhook configurations",
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, run};
    use crate::api::Severity;

    fn names(hits: &[(crate::inventory::ObjectKey, super::Hit)]) -> Vec<String> {
        hits.iter().map(|(k, _)| k.name.clone()).collect()
    }

    #[test]
    fn cluster_admin_through_a_cluster_role_binding_is_critical_and_tags_its_workloads() {
        let hits = run("rbac-cluster-admin", &fixture("identity-fail.yaml"));
        let admin = hits
            .iter()
            .find(|(k, _)| k.name == "admin-bot")
            .expect("admin-bot found");
        assert_eq!(admin.1.severity, None, "default Critical");
        assert_eq!(
            admin
                .1
                .affected
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>(),
            ["admin-bot", "nightly"]
        );
        assert!(run("rbac-cluster-admin", &fixture("identity-pass.yaml")).is_empty());
    }

    #[test]
    fn bindings_to_broad_groups() {
        let hits = run(
            "rbac-binding-to-broad-group",
            &fixture("identity-fail.yaml"),
        );
        let by_name = |n: &str| {
            hits.iter()
                .find(|(k, _)| k.name == n)
                .map(|(_, h)| h.clone())
        };
        assert_eq!(
            by_name("everyone-views").expect("unauthenticated").severity,
            None,
            "Critical by default"
        );
        assert_eq!(
            by_name("masters").expect("system:masters").severity,
            Some(Severity::High)
        );
        assert!(
            run(
                "rbac-binding-to-broad-group",
                &fixture("identity-pass.yaml")
            )
            .is_empty()
        );
    }

    #[test]
    fn kubernetes_defaults_are_not_findings_until_taken_over() {
        let defaults = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:discovery
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
  annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:discovery}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:authenticated}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:controller:generic-garbage-collector
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch, patch, update, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:controller:generic-garbage-collector
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
  annotations: {rbac.authorization.kubernetes.io/autoupdate: "true"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:controller:generic-garbage-collector}
subjects: [{kind: ServiceAccount, name: generic-garbage-collector, namespace: kube-system}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: generic-garbage-collector, namespace: kube-system}
"#;
        let inventory = crate::rules::testing::inventory(defaults);
        assert!(run("rbac-binding-to-broad-group", &inventory).is_empty());
        assert!(run("rbac-wildcard", &inventory).is_empty());
        // Taken over by an administrator (autoupdate false): reported again.
        let taken = crate::rules::testing::inventory(
            &defaults.replace("autoupdate: \"true\"}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:discovery}", "autoupdate: \"false\"}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:discovery}"),
        );
        assert_eq!(run("rbac-binding-to-broad-group", &taken).len(), 1);
        // The same default binding naming a ServiceAccount of another namespace is not
        // hidden.
        let smuggled = format!(
            "{}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: shop}}\n",
            defaults.replace(
                "name: generic-garbage-collector, namespace: kube-system}]",
                "name: generic-garbage-collector, namespace: kube-system}, {kind: ServiceAccount, name: app, namespace: shop}]"
            )
        );
        let smuggled = crate::rules::testing::inventory(&smuggled);
        let hits = run("rbac-wildcard", &smuggled);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0.name, "app");
    }

    #[test]
    fn cluster_admin_is_one_finding_not_nine() {
        let fail = fixture("identity-fail.yaml");
        for rule in [
            "rbac-pods-attach",
            "rbac-ephemeral-containers",
            "rbac-csr-approve",
            "rbac-aws-auth-write",
            "rbac-namespace-patch",
            "rbac-wildcard",
            "rbac-secrets-read",
            "rbac-pods-exec",
            "rbac-webhook-write",
        ] {
            assert!(
                !run(rule, &fail).iter().any(|(k, _)| k.name == "admin-bot"),
                "{rule} repeats cluster-admin"
            );
        }
    }

    #[test]
    fn cluster_admin_in_one_namespace_is_high() {
        let hits = run("rbac-cluster-admin", &fixture("identity-fail.yaml"));
        let ns_admin = hits
            .iter()
            .find(|(k, _)| k.name == "ns-admin")
            .expect("ns-admin found");
        assert_eq!(ns_admin.1.severity, Some(Severity::High));
    }

    #[test]
    fn group_bindings_reach_every_service_account_of_the_namespace() {
        let hits = run("rbac-pods-exec", &fixture("identity-fail.yaml"));
        let mut found = names(&hits);
        found.sort();
        // `execers` is bound to system:serviceaccounts:team-a, so every account there.
        assert!(
            found.contains(&"default".to_owned()) && found.contains(&"reader".to_owned()),
            "{found:?}"
        );
    }

    #[test]
    fn each_dangerous_permission_is_found_and_least_privilege_passes() {
        let fail = fixture("identity-fail.yaml");
        let pass = fixture("identity-pass.yaml");
        for rule in [
            "rbac-pods-attach",
            "rbac-ephemeral-containers",
            "rbac-csr-approve",
            "rbac-aws-auth-write",
            "rbac-namespace-patch",
            "rbac-wildcard",
            "rbac-escalate-bind-impersonate",
            "rbac-secrets-read",
            "rbac-pods-exec",
            "rbac-nodes-proxy",
            "rbac-token-create",
            "rbac-webhook-write",
        ] {
            assert!(
                !run(rule, &fail).is_empty(),
                "{rule} should fail on identity-fail.yaml"
            );
            assert!(
                run(rule, &pass).is_empty(),
                "{rule} should pass on identity-pass.yaml: {:?}",
                run(rule, &pass)
            );
        }
    }
}
