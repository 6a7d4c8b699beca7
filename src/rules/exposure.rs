//! Public exposure: Services and Ingresses reachable from outside the cluster, and
//! workloads on the node's network. Tag `isPublic` on the workloads behind them; a risky
//! port (config/risky-ports.yaml) raises the severity and is named in the message.

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CIS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::workload::{all_containers, pod_template};
use crate::inventory::{Object, ObjectKey};

const TAGS: &[&str] = &["isPublic"];
const FRAMEWORKS: &[(&str, &str)] = &[
    (NIST, "PR.IR-01"),
    (NSA, "Network separation and hardening"),
    (CIS, "5.7 General policies"),
];

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: RuleMeta {
                id: "public-loadbalancer",
                title: "Service exposed through an internet-facing load balancer",
                severity: Severity::High,
                category: Category::PublicExposure,
                remediation: "Make the load balancer internal (e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: internal), restrict spec.loadBalancerSourceRanges, or use type ClusterIP behind an Ingress with authentication.",
                tags: TAGS,
                frameworks: FRAMEWORKS,
                subject: SubjectKind::Service,
            },
            check: public_load_balancer,
        },
        Rule {
            meta: RuleMeta {
                id: "public-nodeport",
                title: "Service exposed on every node through a NodePort",
                severity: Severity::Medium,
                category: Category::PublicExposure,
                remediation: "Use type ClusterIP and reach the workload through an Ingress or an internal load balancer; NodePorts open the port on every node's address.",
                tags: TAGS,
                frameworks: FRAMEWORKS,
                subject: SubjectKind::Service,
            },
            check: public_node_port,
        },
        Rule {
            meta: RuleMeta {
                id: "public-external-ip",
                title: "Service bound to external IP addresses",
                severity: Severity::High,
                category: Category::PublicExposure,
                remediation: "Remove spec.externalIPs (CVE-2020-8554 lets any user with Service write intercept traffic this way) and expose the workload through a load balancer or Ingress you control.",
                tags: TAGS,
                frameworks: FRAMEWORKS,
                subject: SubjectKind::Service,
            },
            check: public_external_ip,
        },
        Rule {
            meta: RuleMeta {
                id: "public-ingress",
                title: "Ingress routes outside traffic to Services",
                severity: Severity::Medium,
                category: Category::PublicExposure,
                remediation: "Confirm the exposure is intended; require TLS and authentication at the Ingress, or use an internal ingress class.",
                tags: TAGS,
                frameworks: FRAMEWORKS,
                subject: SubjectKind::Ingress,
            },
            check: public_ingress,
        },
        Rule {
            meta: RuleMeta {
                id: "ingress-without-tls",
                title: "Ingress serves plain HTTP",
                severity: Severity::Medium,
                category: Category::PublicExposure,
                remediation: "Add spec.tls with a certificate for every host (cert-manager can issue them) and redirect HTTP to HTTPS.",
                tags: &[],
                frameworks: &[
                    (NIST, "PR.DS-02"),
                    (NSA, "Network separation and hardening"),
                ],
                subject: SubjectKind::Ingress,
            },
            check: ingress_without_tls,
        },
        Rule {
            meta: RuleMeta {
                id: "no-ingress-network-policy",
                title: "Workload is not selected by any ingress NetworkPolicy",
                severity: Severity::Low,
                category: Category::PublicExposure,
                remediation: "Add a default-deny ingress NetworkPolicy to the namespace and allow only the traffic the workload needs.",
                tags: &[],
                frameworks: &[
                    (CIS, "5.3.2"),
                    (NSA, "Network separation and hardening"),
                    (NIST, "PR.IR-01"),
                ],
                subject: SubjectKind::Workload,
            },
            check: no_network_policy,
        },
        Rule {
            meta: RuleMeta {
                id: "host-network",
                title: "Workload uses the node's network namespace",
                severity: Severity::Medium,
                category: Category::PublicExposure,
                remediation: "Set hostNetwork: false; expose ports through a Service instead.",
                tags: TAGS,
                frameworks: &[
                    (CIS, "5.2.5"),
                    (NSA, "Pod security: host namespaces"),
                    (NIST, "PR.IR-01"),
                ],
                subject: SubjectKind::Workload,
            },
            check: host_network,
        },
        Rule {
            meta: RuleMeta {
                id: "host-port",
                title: "Container binds a port on the node",
                severity: Severity::Medium,
                category: Category::PublicExposure,
                remediation: "Remove hostPort from the container ports and expose the port through a Service.",
                tags: TAGS,
                frameworks: &[
                    (CIS, "5.2.13"),
                    (NSA, "Pod security: host namespaces"),
                    (NIST, "PR.IR-01"),
                ],
                subject: SubjectKind::Workload,
            },
            check: host_port,
        },
    ]
}

fn service<'a>(ctx: &'a Context<'_>, key: &ObjectKey) -> Option<&'a Service> {
    match ctx.inventory.get(key)? {
        Object::Service(s) => Some(s),
        _ => None,
    }
}

fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// Annotations with which cloud providers make a LoadBalancer internal.
const INTERNAL_ANNOTATIONS: &[(&str, &[&str])] = &[
    (
        "service.beta.kubernetes.io/aws-load-balancer-internal",
        &["true", "0.0.0.0/0"],
    ),
    (
        "service.beta.kubernetes.io/aws-load-balancer-scheme",
        &["internal"],
    ),
    ("networking.gke.io/load-balancer-type", &["internal"]),
    ("cloud.google.com/load-balancer-type", &["internal"]),
    (
        "service.beta.kubernetes.io/azure-load-balancer-internal",
        &["true"],
    ),
    (
        "service.beta.kubernetes.io/oci-load-balancer-internal",
        &["true"],
    ),
    (
        "service.beta.kubernetes.io/openstack-internal-load-balancer",
        &["true"],
    ),
    (
        "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type",
        &["intranet"],
    ),
    (
        "service.beta.kubernetes.io/do-loadbalancer-type",
        &["internal"],
    ),
];

fn is_internal(svc: &Service) -> bool {
    let Some(annotations) = &svc.metadata.annotations else {
        return false;
    };
    INTERNAL_ANNOTATIONS.iter().any(|(key, values)| {
        annotations
            .get(*key)
            .is_some_and(|v| values.iter().any(|allowed| v.eq_ignore_ascii_case(allowed)))
    })
}

/// Source ranges that do not include the whole internet.
fn restricted_sources(svc: &Service) -> bool {
    let ranges = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_source_ranges.as_ref());
    ranges.is_some_and(|r| !r.is_empty() && !r.iter().any(|c| c == "0.0.0.0/0" || c == "::/0"))
}

fn port_numbers(port: &ServicePort) -> impl Iterator<Item = i32> {
    let target = match &port.target_port {
        Some(IntOrString::Int(p)) => Some(*p),
        _ => None,
    };
    std::iter::once(port.port).chain(target)
}

/// The first risky port a Service exposes, as "22 (SSH)".
fn risky_service_port(ctx: &Context<'_>, svc: &Service) -> Option<String> {
    svc.spec
        .as_ref()?
        .ports
        .iter()
        .flatten()
        .flat_map(port_numbers)
        .find_map(|p| ctx.config.risky_port(p).map(|name| format!("{p} ({name})")))
}

fn ports_list(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|p| match p.node_port {
                    Some(np) => {
                        format!("{}:{np}/{}", p.port, p.protocol.as_deref().unwrap_or("TCP"))
                    }
                    None => format!("{}/{}", p.port, p.protocol.as_deref().unwrap_or("TCP")),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Common tail of the Service rules: workloads behind, risky port, evidence.
fn service_hit(
    ctx: &Context<'_>,
    key: &ObjectKey,
    svc: &Service,
    base: Severity,
    what: &str,
) -> Hit {
    let workloads = ctx.inventory.workloads_selected_by(key);
    let mut message = format!("Service {} is {what}", key.name);
    let mut hit = Hit::new(String::new()).evidence("ports", ports_list(svc));
    if let Some(risky) = risky_service_port(ctx, svc) {
        message.push_str(&format!(", including risky port {risky}"));
        hit = hit.severity(base.raised()).evidence("riskyPort", risky);
    }
    if !workloads.is_empty() {
        let names: Vec<String> = workloads
            .iter()
            .map(|w| format!("{}/{}", w.kind, w.name))
            .collect();
        message.push_str(&format!("; it routes to {}", names.join(", ")));
    }
    hit.message = message;
    hit.affected(workloads)
}

fn public_load_balancer(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let svc = service(ctx, key)?;
    if service_type(svc) != "LoadBalancer" || is_internal(svc) || restricted_sources(svc) {
        return None;
    }
    Some(service_hit(
        ctx,
        key,
        svc,
        Severity::High,
        "exposed through an internet-facing load balancer",
    ))
}

fn public_node_port(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let svc = service(ctx, key)?;
    if service_type(svc) != "NodePort" {
        return None;
    }
    Some(service_hit(
        ctx,
        key,
        svc,
        Severity::Medium,
        "open on every node through a NodePort",
    ))
}

fn public_external_ip(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let svc = service(ctx, key)?;
    let ips = svc
        .spec
        .as_ref()?
        .external_ips
        .as_ref()
        .filter(|ips| !ips.is_empty())?;
    let hit = service_hit(
        ctx,
        key,
        svc,
        Severity::High,
        &format!("bound to external IPs {}", ips.join(", ")),
    );
    Some(hit.evidence("externalIPs", ips.join(", ")))
}

/// An Ingress served by an internal controller or load balancer is not public.
fn is_internal_ingress(ing: &k8s_openapi::api::networking::v1::Ingress) -> bool {
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    let annotations = ing.metadata.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    class.is_some_and(|c| c.contains("internal") || c.contains("private"))
        || annotation("kubernetes.io/ingress.class").is_some_and(|c| c.contains("internal"))
        || annotation("alb.ingress.kubernetes.io/scheme") == Some("internal")
}

fn public_ingress(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let Object::Ingress(ing) = ctx.inventory.get(key)? else {
        return None;
    };
    if is_internal_ingress(ing) {
        return None;
    }
    let services = ctx.inventory.services_behind(key);
    if services.is_empty() {
        return None;
    }
    let mut workloads: Vec<ObjectKey> = services
        .iter()
        .flat_map(|s| ctx.inventory.workloads_selected_by(s))
        .collect();
    workloads.sort();
    workloads.dedup();
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    Some(
        Hit::new(format!(
            "Ingress {} routes outside traffic to Service {}",
            key.name,
            names.join(", ")
        ))
        .evidence("services", names.join(", "))
        .affected(workloads),
    )
}

fn ingress_without_tls(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let Object::Ingress(ing) = ctx.inventory.get(key)? else {
        return None;
    };
    let spec = ing.spec.as_ref()?;
    let hosts: Vec<&str> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.as_deref())
        .collect();
    let covered: Vec<&str> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .map(String::as_str)
        .collect();
    let has_tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
    let plain: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|h| !covered.contains(h))
        .collect();
    if has_tls && plain.is_empty() {
        return None;
    }
    let what = if plain.is_empty() {
        "all hosts".to_owned()
    } else {
        plain.join(", ")
    };
    Some(
        Hit::new(format!("Ingress {} serves {what} without TLS", key.name)).evidence("hosts", what),
    )
}

/// Whether an ingress-restricting NetworkPolicy of the namespace selects these labels.
fn selected_by_ingress_policy(
    ctx: &Context<'_>,
    namespace: &str,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    ctx.inventory.network_policies_in(namespace).any(|key| {
        let Some(Object::NetworkPolicy(np)) = ctx.inventory.get(key) else {
            return false;
        };
        let Some(spec) = &np.spec else { return false };
        // Without policyTypes, a policy restricts ingress (and egress only if it has rules).
        let restricts_ingress = spec
            .policy_types
            .as_ref()
            .is_none_or(|t| t.iter().any(|p| p == "Ingress"));
        restricts_ingress
            && spec
                .pod_selector
                .as_ref()
                .is_none_or(|selector| crate::rules::policy::selector_matches(selector, labels))
    })
}

fn no_network_policy(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    let template = pod_template(object)?;
    let namespace = key.namespace()?;
    if template.spec.host_network == Some(true)
        || selected_by_ingress_policy(ctx, namespace, template.labels)
    {
        return None;
    }
    Some(
        Hit::new(format!("{} {} accepts traffic from any pod: no ingress NetworkPolicy in {namespace} selects it", key.kind, key.name))
            .affected(vec![key.clone()]),
    )
}

fn host_network(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    let template = pod_template(object)?;
    if template.spec.host_network != Some(true) {
        return None;
    }
    Some(
        Hit::new(format!(
            "{} {} runs in the node's network namespace; its ports are open on the node",
            key.kind, key.name
        ))
        .evidence("hostNetwork", "true")
        .affected(vec![key.clone()]),
    )
}

fn host_port(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    let template = pod_template(object)?;
    let mut bound = Vec::new();
    let mut risky = None;
    for container in all_containers(template.spec) {
        for port in container.ports.iter().flatten() {
            let Some(host) = port.host_port.filter(|p| *p > 0) else {
                continue;
            };
            bound.push(format!("{}:{host}", container.name));
            if risky.is_none() {
                risky = ctx
                    .config
                    .risky_port(host)
                    .map(|name| format!("{host} ({name})"));
            }
        }
    }
    if bound.is_empty() {
        return None;
    }
    let mut hit = Hit::new(format!(
        "{} {} binds node port(s) {}",
        key.kind,
        key.name,
        bound.join(", ")
    ))
    .evidence("hostPorts", bound.join(", "))
    .affected(vec![key.clone()]);
    if let Some(risky) = risky {
        hit.message
            .push_str(&format!(", including risky port {risky}"));
        hit = hit
            .severity(Severity::Medium.raised())
            .evidence("riskyPort", risky);
    }
    Some(hit)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, run};
    use crate::api::Severity;

    #[test]
    fn internet_facing_load_balancer_is_found_with_the_workload_behind_it() {
        let hits = run("public-loadbalancer", &fixture("exposure-fail.yaml"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        let (subject, hit) = &hits[0];
        assert_eq!(subject.name, "web-public");
        assert_eq!(hit.affected.len(), 1);
        assert_eq!(hit.affected[0].name, "web");
        assert_eq!(hit.severity, None);
    }

    #[test]
    fn internal_or_restricted_load_balancers_pass() {
        assert!(run("public-loadbalancer", &fixture("exposure-pass.yaml")).is_empty());
    }

    #[test]
    fn nodeport_on_ssh_is_raised_and_named() {
        let hits = run("public-nodeport", &fixture("exposure-fail.yaml"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        let hit = &hits[0].1;
        assert_eq!(hit.severity, Some(Severity::High));
        assert!(hit.message.contains("22 (SSH)"), "{}", hit.message);
        assert!(run("public-nodeport", &fixture("exposure-pass.yaml")).is_empty());
    }

    #[test]
    fn external_ips_are_found() {
        assert_eq!(
            run("public-external-ip", &fixture("exposure-fail.yaml")).len(),
            1
        );
        assert!(run("public-external-ip", &fixture("exposure-pass.yaml")).is_empty());
    }

    #[test]
    fn ingress_tags_the_workloads_behind_its_services() {
        let hits = run("public-ingress", &fixture("exposure-fail.yaml"));
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0]
                .1
                .affected
                .iter()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>(),
            ["web"]
        );
        assert!(run("public-ingress", &fixture("exposure-pass.yaml")).is_empty());
    }

    #[test]
    fn ingress_tls_and_network_policies() {
        let fail = fixture("exposure-fail.yaml");
        assert_eq!(run("ingress-without-tls", &fail).len(), 1);
        let unprotected: Vec<String> = run("no-ingress-network-policy", &fail)
            .into_iter()
            .map(|(k, _)| k.name)
            .collect();
        assert!(
            unprotected.contains(&"web".to_owned())
                && !unprotected.contains(&"netdebug".to_owned()),
            "{unprotected:?}"
        );
        let pass = fixture("exposure-pass.yaml");
        assert!(run("ingress-without-tls", &pass).is_empty());
        assert!(
            run("no-ingress-network-policy", &pass).is_empty(),
            "{:?}",
            run("no-ingress-network-policy", &pass)
        );
    }

    #[test]
    fn host_network_and_host_port() {
        let fail = fixture("exposure-fail.yaml");
        assert_eq!(run("host-network", &fail).len(), 1);
        let ports = run("host-port", &fail);
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].1.severity, Some(Severity::High), "6379 is risky");
        let pass = fixture("exposure-pass.yaml");
        assert!(run("host-network", &pass).is_empty());
        assert!(run("host-port", &pass).is_empty());
    }
}
