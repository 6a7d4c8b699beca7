//! Rule evaluation over the target estate: 10k Pods in 2k Deployments, 3k Services,
//! 2k bindings. Full evaluation, then re-evaluation after one object changes (a
//! Deployment, a Service, a RoleBinding), each the median of many runs.
//!
//!     cargo bench --bench evaluation

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{median, p99};

use posture::inventory::synthetic::{EstateSize, estate};
use posture::inventory::{Inventory, Object};
use posture::rules::policy::{Policy, PolicySet};
use posture::rules::{Engine, Evaluation};

fn main() {
    let size = EstateSize::TARGET;
    let values = estate(size, "bench-node");
    let mut inventory = Inventory::new();
    for value in &values {
        if let Some(object) = Object::from_value(value.clone()) {
            inventory.apply(object.expect("synthetic objects parse"));
        }
    }
    let engine = Engine::default();
    let policies = PolicySet::single(Policy::allow_all());
    println!(
        "estate: {} objects ({} pods, {} deployments, {} services, {} bindings)",
        inventory.len(),
        size.deployments * size.pods_per_deployment,
        size.deployments,
        size.services,
        size.bindings
    );

    let mut full = Vec::new();
    let mut findings = 0;
    for _ in 0..11 {
        let started = Instant::now();
        let (evaluation, _) = Evaluation::full(&engine, &inventory, &policies);
        full.push(started.elapsed());
        findings = evaluation.len();
    }
    println!(
        "full evaluation: median {:?} of 11 ({findings} findings)  [target < 200 ms]",
        median(full)
    );

    let (mut evaluation, _) = Evaluation::full(&engine, &inventory, &policies);
    for kind in ["Deployment", "Service", "RoleBinding"] {
        let candidates: Vec<&serde_json::Value> =
            values.iter().filter(|v| v["kind"] == kind).collect();
        let mut samples = Vec::new();
        let mut subjects_total = 0;
        for (i, object) in candidates.iter().cycle().take(500).enumerate() {
            // A realistic edit: a new annotation (a rollout, a GitOps sync) and, every
            // other time, a label change that alters selection.
            let mut value = (*object).clone();
            value["metadata"]["annotations"] = serde_json::json!({"bench/revision": i.to_string()});
            if i % 2 == 1 && kind == "Service" {
                value["spec"]["type"] = serde_json::json!("LoadBalancer");
            }
            let changed = Object::from_value(value).unwrap().unwrap();
            let started = Instant::now();
            let mut subjects = BTreeSet::new();
            if let Some(old) = inventory.apply(changed.clone()) {
                subjects.extend(Engine::affected_by(&inventory, &old));
            }
            subjects.extend(Engine::affected_by(&inventory, &changed));
            evaluation.update(&engine, &inventory, &policies, &subjects);
            samples.push(started.elapsed());
            subjects_total += subjects.len();
        }
        println!(
            "re-evaluation after one {kind} changes: median {:?}, p99 {:?} over 500 changes ({:.1} subjects each)  [target < 5 ms]",
            median(samples.clone()),
            p99(samples),
            subjects_total as f64 / 500.0
        );
    }
}
