//! A synthetic estate of realistic shape for benchmarks: Deployments with their
//! ReplicaSets and Pods, Services (some public, some on risky ports), ServiceAccounts
//! and RBAC bindings (a few dangerous). Deterministic for a given size.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub struct EstateSize {
    pub namespaces: usize,
    pub deployments: usize,
    pub pods_per_deployment: usize,
    pub services: usize,
    pub bindings: usize,
}

impl EstateSize {
    /// The size the operator targets are stated for: 10k Pods in 2k Deployments,
    /// 3k Services and 2k bindings.
    pub const TARGET: EstateSize = EstateSize {
        namespaces: 50,
        deployments: 2_000,
        pods_per_deployment: 5,
        services: 3_000,
        bindings: 2_000,
    };
}

const ACCOUNTS_PER_NAMESPACE: usize = 4;

/// Every object of the estate, as API JSON, namespaces and roles first.
pub fn estate(size: EstateSize, node_name: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let ns = |i: usize| format!("team-{:03}", i % size.namespaces);
    for n in 0..size.namespaces {
        out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(n), "labels": {"team": format!("t{n}")}}}));
        for a in 0..ACCOUNTS_PER_NAMESPACE {
            out.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": format!("app-{a}"), "namespace": ns(n)}}));
        }
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": ns(n)},
            "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "watch"]}]
        }));
    }
    out.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "bench-exec"},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
    }));
    for d in 0..size.deployments {
        let namespace = ns(d);
        let name = format!("svc-{d:05}");
        let mut container = json!({
            "name": "app",
            "image": format!("registry.example.com/team/app-{}:1.{}.0", d % 97, d % 13),
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "env": [{"name": "MODE", "value": "production"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        });
        if d % 100 == 0 {
            container["securityContext"] = json!({"privileged": true});
        }
        if d % 50 == 7 {
            container["ports"] =
                json!([{"containerPort": 8080, "hostPort": 18080 + (d % 1000) as i64}]);
        }
        let labels = json!({"app": name, "tier": if d % 3 == 0 { "web" } else { "backend" }});
        let pod_spec = json!({
            "serviceAccountName": format!("app-{}", d % ACCOUNTS_PER_NAMESPACE),
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": format!("{name}-config")}}],
        });
        let deployment_uid = format!("00000000-0000-4000-8000-{d:012}");
        let rs_uid = format!("00000000-0000-4000-9000-{d:012}");
        out.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": deployment_uid},
            "spec": {"replicas": size.pods_per_deployment, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
        }));
        let mut rs_labels = labels.clone();
        rs_labels["pod-template-hash"] = json!("5d8f7c");
        out.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-5d8f7c"), "namespace": namespace, "uid": rs_uid,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": deployment_uid, "controller": true}]},
            "spec": {"replicas": size.pods_per_deployment, "selector": {"matchLabels": {"app": name, "pod-template-hash": "5d8f7c"}},
                     "template": {"metadata": {"labels": rs_labels}, "spec": pod_spec}}
        }));
        for p in 0..size.pods_per_deployment {
            let mut spec = pod_spec.clone();
            spec["nodeName"] = json!(node_name);
            out.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{name}-5d8f7c-{p:05}"), "namespace": namespace, "labels": rs_labels,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-5d8f7c"), "uid": rs_uid, "controller": true}]},
                "spec": spec
            }));
        }
    }
    for s in 0..size.services {
        let d = s % size.deployments;
        let (kind, port) = match s {
            s if s % 100 == 3 => ("NodePort", 22),
            s if s % 10 == 1 => ("LoadBalancer", 443),
            s if s % 15 == 2 => ("NodePort", 8080),
            _ => ("ClusterIP", 80),
        };
        out.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{s:05}"), "namespace": ns(d)},
            "spec": {"type": kind, "selector": {"app": format!("svc-{d:05}")}, "ports": [{"port": port, "targetPort": 8080}]}
        }));
    }
    for b in 0..size.bindings {
        let account = format!("app-{}", b % ACCOUNTS_PER_NAMESPACE);
        if b % 50 == 0 {
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("bench-exec-{b:05}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-exec"},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns(b)}]
            }));
        } else {
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("reader-{b:05}"), "namespace": ns(b)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns(b)}]
            }));
        }
    }
    out
}
