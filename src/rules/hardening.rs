//! Workload hardening: the settings the Pod Security Standards (restricted) and the
//! CIS and NSA/CISA guidance ask of every container. One finding per rule per
//! workload, naming the containers that fail.

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

use crate::inventory::compact::{Container, PodSpec};

use super::{CIS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::workload::{all_containers, pod_template};
use crate::inventory::{Object, ObjectKey};

macro_rules! hardening_rule {
    ($id:literal, $title:literal, $severity:expr, $tags:expr, $remediation:literal, $frameworks:expr, $check:ident) => {
        Rule {
            meta: RuleMeta {
                id: $id,
                title: $title,
                severity: $severity,
                category: Category::WorkloadConfiguration,
                remediation: $remediation,
                tags: $tags,
                frameworks: $frameworks,
                subject: SubjectKind::Workload,
            },
            check: $check,
        }
    };
}

const PSS: &str = "PR.PS-01";

pub fn rules() -> Vec<Rule> {
    vec![
        hardening_rule!(
            "run-as-root",
            "Container may run as root",
            Severity::Medium,
            &[],
            "Set securityContext.runAsNonRoot: true and a non-zero runAsUser (pod or container level), and build the image with a non-root USER.",
            &[
                (CIS, "5.2.7"),
                (NSA, "Pod security: non-root containers"),
                (NIST, PSS)
            ],
            run_as_root
        ),
        hardening_rule!(
            "privilege-escalation",
            "Container allows privilege escalation",
            Severity::Medium,
            &[],
            "Set securityContext.allowPrivilegeEscalation: false on every container.",
            &[
                (CIS, "5.2.6"),
                (NSA, "Pod security: non-root and unprivileged containers"),
                (NIST, PSS)
            ],
            privilege_escalation
        ),
        hardening_rule!(
            "writable-root-filesystem",
            "Container root filesystem is writable",
            Severity::Low,
            &[],
            "Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the application writes.",
            &[
                (NSA, "Pod security: immutable container filesystems"),
                (NIST, PSS)
            ],
            writable_root
        ),
        hardening_rule!(
            "capabilities-not-dropped",
            "Container keeps the default capabilities",
            Severity::Low,
            &[],
            "Add securityContext.capabilities.drop: [ALL] and add back only what the container needs.",
            &[
                (CIS, "5.2.10"),
                (NSA, "Pod security: non-root and unprivileged containers"),
                (NIST, PSS)
            ],
            capabilities_not_dropped
        ),
        hardening_rule!(
            "capabilities-added",
            "Container adds Linux capabilities",
            Severity::Medium,
            &[],
            "Remove capabilities.add, or keep only NET_BIND_SERVICE, which the restricted Pod Security Standard allows.",
            &[
                (CIS, "5.2.9"),
                (NSA, "Pod security: non-root and unprivileged containers"),
                (NIST, PSS)
            ],
            capabilities_added
        ),
        hardening_rule!(
            "seccomp-unconfined",
            "Container runs without a seccomp profile",
            Severity::Low,
            &[],
            "Set securityContext.seccompProfile.type: RuntimeDefault at pod level (or Localhost with a reviewed profile).",
            &[(CIS, "5.7.2"), (NSA, "Pod security: seccomp"), (NIST, PSS)],
            seccomp
        ),
        hardening_rule!(
            "apparmor-unconfined",
            "Container runs with AppArmor unconfined",
            Severity::Medium,
            &[],
            "Use appArmorProfile.type: RuntimeDefault (or Localhost) instead of Unconfined.",
            &[(NSA, "Pod security: AppArmor and SELinux"), (NIST, PSS)],
            apparmor
        ),
        hardening_rule!(
            "proc-mount-unmasked",
            "Container sees the host's unmasked /proc",
            Severity::High,
            &["Privileged"],
            "Remove securityContext.procMount: Unmasked (the default masks sensitive /proc paths).",
            &[(NSA, "Pod security: host namespaces"), (NIST, PSS)],
            proc_mount
        ),
        hardening_rule!(
            "unsafe-sysctls",
            "Pod sets sysctls outside the safe set",
            Severity::Medium,
            &[],
            "Remove sysctls that are not namespaced and safe; set node-level sysctls on the node instead.",
            &[
                (CIS, "5.2 Pod Security Standards"),
                (NSA, "Pod security"),
                (NIST, PSS)
            ],
            unsafe_sysctls
        ),
        hardening_rule!(
            "service-account-token-mounted",
            "Pod mounts a ServiceAccount token it may not need",
            Severity::Low,
            &[],
            "Set automountServiceAccountToken: false on the pod (or the ServiceAccount) unless the workload calls the Kubernetes API.",
            &[
                (CIS, "5.1.6"),
                (NSA, "Authentication and authorization"),
                (NIST, "PR.AA-05")
            ],
            token_automount
        ),
        hardening_rule!(
            "missing-resource-limits",
            "Container has no CPU or memory limit",
            Severity::Low,
            &[],
            "Set resources.limits.memory (and cpu where the workload can be throttled) so one pod cannot starve a node.",
            &[(NSA, "Pod security: resource policies"), (NIST, "PR.IR-04")],
            missing_limits
        ),
        hardening_rule!(
            "missing-resource-requests",
            "Container has no CPU or memory request",
            Severity::Low,
            &[],
            "Set resources.requests.cpu and memory so the scheduler places the pod where it fits.",
            &[(NSA, "Pod security: resource policies"), (NIST, "PR.IR-04")],
            missing_requests
        ),
        hardening_rule!(
            "image-tag-mutable",
            "Image has no tag or uses latest",
            Severity::Medium,
            &[],
            "Pin the image to a version tag, better a digest (image@sha256:...).",
            &[(NSA, "Image scanning and supply chain"), (NIST, "ID.AM-08")],
            image_mutable
        ),
        hardening_rule!(
            "image-without-digest",
            "Image is not pinned by digest",
            Severity::Info,
            &[],
            "Reference the image by digest (image@sha256:...) so every node runs the same bytes.",
            &[(NSA, "Image scanning and supply chain"), (NIST, "ID.AM-08")],
            image_digest
        ),
        hardening_rule!(
            "default-or-system-namespace",
            "Workload runs in the default or kube-system namespace",
            Severity::Low,
            &[],
            "Give applications a namespace of their own; keep kube-system for the cluster's components.",
            &[(CIS, "5.7.4"), (NSA, "Namespaces"), (NIST, PSS)],
            default_namespace
        ),
        hardening_rule!(
            "windows-host-process",
            "Windows container runs as a HostProcess",
            Severity::High,
            &["Privileged"],
            "Remove windowsOptions.hostProcess: true; HostProcess containers have full access to the Windows node.",
            &[(NSA, "Pod security: host namespaces"), (NIST, PSS)],
            windows_host_process
        ),
    ]
}

fn spec<'a>(ctx: &'a Context<'_>, key: &ObjectKey) -> Option<&'a PodSpec> {
    pod_template(ctx.inventory.get(key)?).map(|t| t.spec)
}

/// A finding naming the containers for which `fails` holds.
fn per_container(
    ctx: &Context<'_>,
    key: &ObjectKey,
    what: &str,
    fails: impl Fn(&PodSpec, &Container) -> bool,
) -> Option<Hit> {
    let spec = spec(ctx, key)?;
    let names: Vec<&str> = all_containers(spec)
        .filter(|c| fails(spec, c))
        .map(|c| c.name.as_str())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(
        Hit::new(format!(
            "{} {}: container(s) {} {what}",
            key.kind,
            key.name,
            names.join(", ")
        ))
        .evidence("containers", names.join(", "))
        .affected(vec![key.clone()]),
    )
}

fn sc(c: &Container) -> Option<&SecurityContext> {
    c.security_context.as_deref()
}

fn psc(spec: &PodSpec) -> Option<&PodSecurityContext> {
    spec.security_context.as_deref()
}

fn run_as_root(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(
        ctx,
        key,
        "may run as root (runAsNonRoot unset or runAsUser 0)",
        |spec, c| {
            let user = sc(c)
                .and_then(|s| s.run_as_user)
                .or_else(|| psc(spec).and_then(|p| p.run_as_user));
            let non_root = sc(c)
                .and_then(|s| s.run_as_non_root)
                .or_else(|| psc(spec).and_then(|p| p.run_as_non_root));
            user == Some(0) || (non_root != Some(true) && user.is_none_or(|u| u == 0))
        },
    )
}

fn privilege_escalation(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "allow privilege escalation", |_, c| {
        sc(c).and_then(|s| s.allow_privilege_escalation) != Some(false)
    })
}

fn writable_root(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "have a writable root filesystem", |_, c| {
        sc(c).and_then(|s| s.read_only_root_filesystem) != Some(true)
    })
}

fn capabilities_not_dropped(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "do not drop ALL capabilities", |_, c| {
        !sc(c)
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_ref())
            .is_some_and(|d| d.iter().any(|cap| cap.eq_ignore_ascii_case("ALL")))
    })
}

fn capabilities_added(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(
        ctx,
        key,
        "add capabilities beyond NET_BIND_SERVICE",
        |_, c| {
            sc(c)
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|caps| caps.add.as_ref())
                .is_some_and(|add| {
                    add.iter()
                        .any(|cap| cap.trim_start_matches("CAP_") != "NET_BIND_SERVICE")
                })
        },
    )
}

fn seccomp(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let spec = spec(ctx, key)?;
    let pod = psc(spec)
        .and_then(|p| p.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    let unconfined = all_containers(spec).any(|c| {
        let profile = sc(c)
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str())
            .or(pod);
        profile == Some("Unconfined")
    });
    let hit = per_container(
        ctx,
        key,
        "run without a seccomp profile (unset or Unconfined)",
        |_, c| {
            let profile = sc(c)
                .and_then(|s| s.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str())
                .or(pod);
            profile.is_none_or(|t| t == "Unconfined")
        },
    )?;
    // Explicitly switching seccomp off is worse than never switching it on.
    Some(if unconfined {
        hit.severity(Severity::Medium)
    } else {
        hit
    })
}

fn apparmor(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    let template = pod_template(object)?;
    let pod = psc(template.spec)
        .and_then(|p| p.app_armor_profile.as_ref())
        .map(|p| p.type_.as_str());
    let annotations = pod_annotations(object);
    per_container(ctx, key, "run with AppArmor unconfined", |_, c| {
        let field = sc(c)
            .and_then(|s| s.app_armor_profile.as_ref())
            .map(|p| p.type_.as_str())
            .or(pod);
        let annotation = annotations
            .and_then(|a| {
                a.get(&format!(
                    "container.apparmor.security.beta.kubernetes.io/{}",
                    c.name
                ))
            })
            .map(String::as_str);
        field == Some("Unconfined") || annotation == Some("unconfined")
    })
}

/// Annotations of the pods the workload creates (the template's, or the pod's own).
fn pod_annotations(object: &Object) -> Option<&std::collections::BTreeMap<String, String>> {
    pod_template(object)?.annotations
}

fn proc_mount(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "set procMount: Unmasked", |_, c| {
        sc(c).and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked")
    })
}

/// Namespaced sysctls the kubelet allows by default (the Pod Security "safe" set).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

fn unsafe_sysctls(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let sysctls = psc(spec(ctx, key)?).and_then(|p| p.sysctls.as_ref())?;
    let unsafe_names: Vec<&str> = sysctls
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    if unsafe_names.is_empty() {
        return None;
    }
    Some(
        Hit::new(format!(
            "{} {} sets unsafe sysctls {}",
            key.kind,
            key.name,
            unsafe_names.join(", ")
        ))
        .evidence("sysctls", unsafe_names.join(", "))
        .affected(vec![key.clone()]),
    )
}

fn token_automount(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let spec = spec(ctx, key)?;
    let account = crate::inventory::workload::service_account(ctx.inventory.get(key)?)?;
    let mounted = match spec.automount_service_account_token {
        Some(value) => value,
        None => match ctx.inventory.get(&account) {
            Some(Object::ServiceAccount(sa)) => sa.automount_service_account_token != Some(false),
            _ => true,
        },
    };
    mounted.then(|| {
        Hit::new(format!(
            "{} {} mounts a token for ServiceAccount {}",
            key.kind, key.name, account.name
        ))
        .evidence("serviceAccount", account.name.clone())
        .affected(vec![key.clone()])
    })
}

fn missing_limits(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "have no cpu or memory limit", |_, c| {
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        !limits.is_some_and(|l| l.contains_key("memory") && l.contains_key("cpu"))
    })
}

fn missing_requests(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "have no cpu or memory request", |_, c| {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        !requests.is_some_and(|r| r.contains_key("memory") && r.contains_key("cpu"))
    })
}

/// The tag of an image reference, if any (`registry:5000/app:1.2@sha256:..` → `1.2`).
fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, tag)| tag)
}

fn image_mutable(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(
        ctx,
        key,
        "use an image without a version tag (none or latest)",
        |_, c| {
            let image = c.image.as_deref().unwrap_or_default();
            !image.contains('@') && image_tag(image).is_none_or(|t| t == "latest")
        },
    )
}

fn image_digest(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    per_container(ctx, key, "use an image not pinned by digest", |_, c| {
        !c.image.as_deref().unwrap_or_default().contains("@sha256:")
    })
}

fn default_namespace(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let ns = key.namespace()?;
    if ns != "default" && ns != "kube-system" {
        return None;
    }
    ctx.inventory.get(key)?;
    Some(
        Hit::new(format!(
            "{} {} runs in the {ns} namespace",
            key.kind, key.name
        ))
        .evidence("namespace", ns)
        .affected(vec![key.clone()]),
    )
}

fn windows_host_process(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let spec = spec(ctx, key)?;
    let pod = psc(spec)
        .and_then(|p| p.windows_options.as_ref())
        .and_then(|w| w.host_process);
    per_container(ctx, key, "run as Windows HostProcess containers", |_, c| {
        sc(c)
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            .or(pod)
            == Some(true)
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, run};
    use crate::api::Severity;

    const RULES: &[&str] = &[
        "run-as-root",
        "privilege-escalation",
        "writable-root-filesystem",
        "capabilities-not-dropped",
        "capabilities-added",
        "seccomp-unconfined",
        "apparmor-unconfined",
        "proc-mount-unmasked",
        "unsafe-sysctls",
        "service-account-token-mounted",
        "missing-resource-limits",
        "missing-resource-requests",
        "image-tag-mutable",
        "image-without-digest",
        "default-or-system-namespace",
        "windows-host-process",
    ];

    #[test]
    fn the_careless_workload_fails_every_hardening_rule() {
        let fail = fixture("hardening-fail.yaml");
        for rule in RULES {
            let hits = run(rule, &fail);
            assert!(
                hits.iter().any(|(k, _)| k.name == "careless"),
                "{rule} should fail: {hits:?}"
            );
        }
    }

    #[test]
    fn the_hardened_workload_passes_every_hardening_rule() {
        let pass = fixture("hardening-pass.yaml");
        for rule in RULES {
            assert!(
                run(rule, &pass).is_empty(),
                "{rule}: {:?}",
                run(rule, &pass)
            );
        }
    }

    #[test]
    fn unconfined_seccomp_is_worse_than_unset() {
        let hits = run("seccomp-unconfined", &fixture("hardening-fail.yaml"));
        let careless = hits.iter().find(|(k, _)| k.name == "careless").unwrap();
        assert_eq!(careless.1.severity, Some(Severity::Medium));
        let unset = hits.iter().find(|(k, _)| k.name == "plain").unwrap();
        assert_eq!(unset.1.severity, None);
    }

    #[test]
    fn image_tags() {
        assert_eq!(super::image_tag("nginx"), None);
        assert_eq!(super::image_tag("registry:5000/team/app:1.2"), Some("1.2"));
        assert_eq!(super::image_tag("registry:5000/team/app"), None);
        assert_eq!(super::image_tag("app:1.0@sha256:abc"), Some("1.0"));
    }
}
