//! The webhook's decision path in process, without HTTP or TLS: parse an
//! AdmissionReview body and decide it against the target estate (10k Pods in 2k
//! Deployments, 3k Services, 2k bindings), the mix `bench/webhook_vs_opa.sh` sends.
//! Per body kind: median and p99 of one decision, single-threaded; then the
//! throughput of all cores deciding at once (the lock they share shows here).
//!
//!     cargo bench --bench admission

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{median, p99};

use posture::admission::metrics::Metrics;
use posture::admission::review;
use posture::admission::server::{App, Cluster};
use posture::api::AdmissionMode;
use posture::collect::cluster::{Change, controlled_pod, slimmed};
use posture::inventory::synthetic::{EstateSize, estate};
use posture::inventory::{Kind, Object};
use serde_json::{Value, json};

fn review_body(kind: &str, group: &str, object: &Value, old: Option<&Value>, op: &str) -> Vec<u8> {
    let meta = &object["metadata"];
    let mut request = json!({
        "uid": "0f0e0d0c-0000-4000-8000-000000000001",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "namespace": meta["namespace"],
        "name": meta["name"],
        "operation": op,
        "userInfo": {"username": "ci-deployer", "groups": ["system:authenticated"]},
        "object": object,
        "dryRun": false,
    });
    if let Some(old) = old {
        request["oldObject"] = old.clone();
    }
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
        .unwrap()
}

/// Resident memory of this process.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    let values = estate(EstateSize::TARGET, "bench-node");
    let rss_before = rss_mib();
    let mut cluster = Cluster::new(Some(AdmissionMode::Enforce));
    let mut by_kind: std::collections::BTreeMap<Kind, Vec<Object>> = Default::default();
    for value in &values {
        if let Some(object) = Object::from_value(value.clone()) {
            // Trimmed as the webhook's watches trim what they keep.
            let object = slimmed(object.expect("synthetic objects parse"));
            if controlled_pod(&object) {
                continue;
            }
            by_kind.entry(object.key().kind).or_default().push(object);
        }
    }
    for (kind, objects) in by_kind {
        cluster.apply(Change::Relisted(kind, objects));
    }
    let app = Arc::new(App::new(cluster, Arc::new(Metrics::default()), 1024, None));
    println!(
        "the webhook's inventory of the estate: {} objects, {:.0} MiB of RSS",
        app.cluster.lock().unwrap().inventory.len(),
        rss_mib() - rss_before
    );

    let of_kind = |kind: &'static str| values.iter().filter(move |v| v["kind"] == kind);
    let mut bodies: Vec<(&str, Vec<Vec<u8>>, bool)> = Vec::new();
    let rollouts = of_kind("Deployment")
        .filter(|d| !d.to_string().contains("\"privileged\":true"))
        .take(100)
        .map(|old| {
            let mut new = old.clone();
            let image = new["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .replace(":1.", ":2.");
            new["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            review_body("Deployment", "apps", &new, Some(old), "UPDATE")
        })
        .collect();
    bodies.push(("Deployment rollout", rollouts, true));
    let pods = of_kind("Pod")
        .filter(|p| !p.to_string().contains("\"privileged\":true"))
        .take(100)
        .map(|p| review_body("Pod", "", p, None, "CREATE"))
        .collect();
    bodies.push(("Pod of a ReplicaSet", pods, true));
    let services = of_kind("Service")
        .take(100)
        .map(|s| {
            let mut s = s.clone();
            s["metadata"]["name"] = json!(format!("{}-v2", s["metadata"]["name"].as_str().unwrap()));
            s["spec"] = json!({"type": "ClusterIP", "selector": s["spec"]["selector"], "ports": [{"port": 80, "targetPort": 8080}]});
            review_body("Service", "", &s, None, "CREATE")
        })
        .collect();
    bodies.push(("ClusterIP Service", services, true));
    // The Deployments bench-webhook puts behind a new LoadBalancer: none is public yet.
    let lbs = [3, 17, 42]
        .into_iter()
        .map(|n: usize| {
            let target = format!("svc-{:05}", (3 + 50 * n) % 2000);
            let ns = format!("team-{n:03}");
            let lb = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "public-lb", "namespace": ns, "labels": {"app": target}},
                "spec": {"type": "LoadBalancer", "selector": {"app": target}, "ports": [{"port": 443, "targetPort": 8080}]}});
            review_body("Service", "", &lb, None, "CREATE")
        })
        .collect();
    bodies.push(("LoadBalancer Service (denied)", lbs, false));
    let debug = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "team-001"},
        "spec": {"containers": [{"name": "shell", "image": "busybox:1.36", "securityContext": {"privileged": true}}]}});
    bodies.push((
        "privileged Pod (denied)",
        vec![review_body("Pod", "", &debug, None, "CREATE")],
        false,
    ));

    let decide = |body: &[u8]| -> bool {
        let request = review::parse(body).expect("a valid review");
        let (response, _) = app.review(&request);
        response.allowed()
    };
    println!("single-threaded, parse + decide, per body:");
    for (what, bodies, allowed) in &bodies {
        let mut samples = Vec::new();
        for body in bodies.iter().cycle().take(2_000) {
            let started = Instant::now();
            let decision = decide(body);
            samples.push(started.elapsed());
            assert_eq!(decision, *allowed, "{what}");
        }
        println!(
            "  {what:32} median {:>9.1?}  p99 {:>9.1?}",
            median(samples.clone()),
            p99(samples)
        );
    }

    // Every core deciding the realistic mix at once.
    let mix: Arc<Vec<Vec<u8>>> = Arc::new(
        bodies
            .iter()
            .flat_map(|(_, b, _)| b.iter().cloned())
            .collect(),
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = 20_000;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (app, mix) = (app.clone(), mix.clone());
            std::thread::spawn(move || {
                for body in mix.iter().cycle().skip(t * 37).take(per_thread) {
                    let request = review::parse(body).unwrap();
                    std::hint::black_box(app.review(&request));
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let elapsed = started.elapsed();
    println!(
        "{threads} threads x {per_thread} decisions of the mix: {:.0} decisions/s",
        (threads * per_thread) as f64 / elapsed.as_secs_f64()
    );
}
