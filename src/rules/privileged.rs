//! Privileged workloads: settings that hand a container the node. Tag `Privileged`.

use crate::inventory::compact::PodSpec;

use super::{CIS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::ObjectKey;
use crate::inventory::workload::{all_containers, pod_template};

const TAGS: &[&str] = &["Privileged"];

macro_rules! workload_rule {
    ($id:literal, $title:literal, $severity:expr, $remediation:literal, $frameworks:expr, $check:ident) => {
        Rule {
            meta: RuleMeta {
                id: $id,
                title: $title,
                severity: $severity,
                category: Category::WorkloadConfiguration,
                remediation: $remediation,
                tags: TAGS,
                frameworks: $frameworks,
                subject: SubjectKind::Workload,
            },
            check: $check,
        }
    };
}

pub fn rules() -> Vec<Rule> {
    vec![
        workload_rule!(
            "privileged-container",
            "Container runs privileged",
            Severity::High,
            "Set securityContext.privileged: false and grant only the capabilities the container needs.",
            &[
                (CIS, "5.2.2"),
                (NSA, "Pod security: non-root and unprivileged containers"),
                (NIST, "PR.PS-01")
            ],
            privileged_container
        ),
        workload_rule!(
            "host-pid-ipc",
            "Workload shares the node's process or IPC namespace",
            Severity::High,
            "Set hostPID: false and hostIPC: false.",
            &[
                (CIS, "5.2.3"),
                (CIS, "5.2.4"),
                (NSA, "Pod security: host namespaces"),
                (NIST, "PR.PS-01")
            ],
            host_pid_ipc
        ),
        workload_rule!(
            "host-path-root",
            "Workload mounts the node's root filesystem",
            Severity::Critical,
            "Remove the hostPath volume for /; mount only the specific read-only path needed, or use a CSI volume.",
            &[
                (CIS, "5.2.12"),
                (NSA, "Pod security: immutable container filesystems"),
                (NIST, "PR.PS-01")
            ],
            host_path_root
        ),
        workload_rule!(
            "container-runtime-socket",
            "Workload mounts the container runtime socket",
            Severity::Critical,
            "Remove the hostPath volume for the Docker, containerd or CRI-O socket; it controls every container on the node.",
            &[
                (CIS, "5.2.12"),
                (NSA, "Pod security: host namespaces"),
                (NIST, "PR.PS-01")
            ],
            runtime_socket
        ),
        workload_rule!(
            "host-proc-mount",
            "Workload mounts the node's /proc",
            Severity::High,
            "Remove the hostPath volume for /proc; it exposes every process on the node.",
            &[
                (CIS, "5.2.12"),
                (NSA, "Pod security: host namespaces"),
                (NIST, "PR.PS-01")
            ],
            host_proc
        ),
        workload_rule!(
            "dangerous-capabilities",
            "Container adds SYS_ADMIN, NET_ADMIN or ALL capabilities",
            Severity::High,
            "Drop ALL capabilities and add back only narrow ones (e.g. NET_BIND_SERVICE).",
            &[
                (CIS, "5.2.9"),
                (NSA, "Pod security: non-root and unprivileged containers"),
                (NIST, "PR.PS-01")
            ],
            dangerous_capabilities
        ),
    ]
}

fn spec<'a>(ctx: &'a Context<'_>, key: &ObjectKey) -> Option<&'a PodSpec> {
    pod_template(ctx.inventory.get(key)?).map(|t| t.spec)
}

fn workload_hit(key: &ObjectKey, what: String, evidence: (&str, String)) -> Hit {
    Hit::new(format!("{} {} {what}", key.kind, key.name))
        .evidence(evidence.0, evidence.1)
        .affected(vec![key.clone()])
}

fn privileged_container(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let names: Vec<&str> = all_containers(spec(ctx, key)?)
        .filter(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true))
        .map(|c| c.name.as_str())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(workload_hit(
        key,
        format!("runs privileged container(s) {}", names.join(", ")),
        ("containers", names.join(", ")),
    ))
}

fn host_pid_ipc(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let spec = spec(ctx, key)?;
    let shared: Vec<&str> = [("hostPID", spec.host_pid), ("hostIPC", spec.host_ipc)]
        .into_iter()
        .filter(|(_, on)| *on == Some(true))
        .map(|(name, _)| name)
        .collect();
    if shared.is_empty() {
        return None;
    }
    Some(workload_hit(
        key,
        format!("sets {}", shared.join(" and ")),
        ("hostNamespaces", shared.join(", ")),
    ))
}

/// hostPath volumes whose path satisfies `pred`, normalised (no trailing slash).
fn host_paths<'a>(spec: &'a PodSpec, pred: impl Fn(&str) -> bool + 'a) -> Vec<String> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.host_path.as_ref())
        .map(|h| {
            let trimmed = h.path.trim_end_matches('/');
            if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            }
        })
        .filter(|p| pred(p))
        .collect()
}

fn host_path_root(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let paths = host_paths(spec(ctx, key)?, |p| p == "/");
    (!paths.is_empty()).then(|| {
        workload_hit(
            key,
            "mounts the node's root filesystem (hostPath /)".into(),
            ("hostPath", "/".into()),
        )
    })
}

const RUNTIME_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
    "/var/run/cri-dockerd.sock",
    "/var/run",
    "/run",
    "/var/run/containerd",
    "/run/containerd",
];

fn runtime_socket(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let paths = host_paths(spec(ctx, key)?, |p| RUNTIME_SOCKETS.contains(&p));
    let first = paths.first()?;
    Some(workload_hit(
        key,
        format!("mounts the container runtime socket through hostPath {first}"),
        ("hostPath", first.clone()),
    ))
}

fn host_proc(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let paths = host_paths(spec(ctx, key)?, |p| p == "/proc" || p.starts_with("/proc/"));
    let first = paths.first()?;
    Some(workload_hit(
        key,
        format!("mounts the node's {first}"),
        ("hostPath", first.clone()),
    ))
}

const DANGEROUS: &[&str] = &["SYS_ADMIN", "NET_ADMIN", "ALL"];

fn dangerous_capabilities(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let mut found = Vec::new();
    for container in all_containers(spec(ctx, key)?) {
        let added = container
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_ref());
        for cap in added.into_iter().flatten() {
            let normalised = cap.trim_start_matches("CAP_").to_ascii_uppercase();
            if DANGEROUS.contains(&normalised.as_str()) {
                found.push(format!("{}:{normalised}", container.name));
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    Some(workload_hit(
        key,
        format!("adds capabilities {}", found.join(", ")),
        ("capabilities", found.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, run};

    #[test]
    fn each_privileged_setting_is_found_on_its_workload() {
        let fail = fixture("privileged-fail.yaml");
        for (rule, workload) in [
            ("privileged-container", "node-agent"),
            ("host-pid-ipc", "node-agent"),
            ("host-path-root", "node-agent"),
            ("container-runtime-socket", "builder"),
            ("host-proc-mount", "builder"),
            ("dangerous-capabilities", "nightly"),
        ] {
            let hits = run(rule, &fail);
            assert!(
                hits.iter()
                    .any(|(k, h)| k.name == workload && h.affected == vec![k.clone()]),
                "{rule} on {workload}: {hits:?}"
            );
        }
    }

    #[test]
    fn a_hardened_workload_passes_every_rule() {
        let pass = fixture("privileged-pass.yaml");
        for rule in [
            "privileged-container",
            "host-pid-ipc",
            "host-path-root",
            "container-runtime-socket",
            "host-proc-mount",
            "dangerous-capabilities",
        ] {
            assert!(
                run(rule, &pass).is_empty(),
                "{rule}: {:?}",
                run(rule, &pass)
            );
        }
    }
}
