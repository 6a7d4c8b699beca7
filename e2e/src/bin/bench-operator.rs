//! Operator memory on a loaded control plane: etcd and kube-apiserver holding the
//! target estate (10k Pods in 2k Deployments, 3k Services, 2k bindings), then
//! `posture operator` watching it. Reports time to ready and resident memory.
//!
//!     cargo build --release --bin posture && cargo run -p posture-e2e --bin bench-operator
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use posture::inventory::synthetic::{EstateSize, estate};
use posture_e2e::binaries::{ControlPlaneBinaries, repo_root};
use posture_e2e::controlplane::ControlPlane;
use posture_e2e::ports::free_ports;
use posture_e2e::process::{Guarded, ProcessSpec};

async fn create_all(client: &Client, objects: Vec<serde_json::Value>) -> Result<()> {
    futures::stream::iter(objects)
        .map(|value| {
            let client = client.clone();
            async move {
                let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
                let kind = value["kind"].as_str().unwrap_or_default().to_owned();
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
                let mut object: DynamicObject = serde_json::from_value(value)?;
                object.metadata.uid = None;
                object.metadata.owner_references = object.metadata.owner_references.map(|refs| {
                    // Owners get uids on creation; the inventory links by name, so the
                    // references only need to be well-formed.
                    refs.into_iter()
                        .map(|mut r| {
                            r.uid = "00000000-0000-4000-8000-000000000000".into();
                            r
                        })
                        .collect()
                });
                let api: Api<DynamicObject> = match &object.metadata.namespace {
                    Some(ns) => Api::namespaced_with(client, ns, &resource),
                    None => Api::all_with(client, &resource),
                };
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {kind} {:?}", object.metadata.name))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let binaries = ControlPlaneBinaries::locate()?;
    let dir = tempfile::Builder::new()
        .prefix("posture-e2e-bench-")
        .tempdir()?;
    let mut cp = ControlPlane::start_with(dir.path(), binaries.clone(), false).await?;
    let client = cp.client().await?;
    let kubectl = |args: &[&str]| {
        std::process::Command::new(binaries.path("kubectl"))
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(args)
            .output()
    };
    let out = kubectl(&[
        "apply",
        "--server-side",
        "-f",
        repo_root().join("crds/posture.dev.yaml").to_str().unwrap(),
    ])?;
    if !out.status.success() {
        bail!("installing CRDs: {}", String::from_utf8_lossy(&out.stderr));
    }

    let objects = estate(EstateSize::TARGET, "bench-node");
    let count = objects.len();
    let (first, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| {
        matches!(
            o["kind"].as_str(),
            Some("Namespace" | "ServiceAccount" | "Role" | "ClusterRole")
        )
    });
    let loading = Instant::now();
    create_all(&client, first).await?;
    create_all(&client, rest).await?;
    eprintln!(
        "loaded {count} objects in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let policy = serde_json::json!({"apiVersion": "posture.dev/v1alpha1", "kind": "ScanPolicy", "metadata": {"name": "default", "namespace": "default"}, "spec": {}});
    create_all(&client, vec![policy]).await?;

    let release = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"))
        .join("release/posture");
    let bin = std::env::var("POSTURE_BIN")
        .map(Into::into)
        .unwrap_or(release);
    let [port] = free_ports::<1>()?;
    let mut spec = ProcessSpec::new(&bin, dir.path().join("operator.log")).args([
        "operator".to_owned(),
        "--leader-election=false".to_owned(),
        format!("--metrics-addr=127.0.0.1:{port}"),
        "--write-qps=200".to_owned(),
    ]);
    spec.env = vec![("KUBECONFIG".into(), cp.kubeconfig.display().to_string())];
    let started = Instant::now();
    let operator =
        Guarded::spawn("operator", &spec).with_context(|| format!("starting {}", bin.display()))?;
    let url = format!("http://127.0.0.1:{port}/readyz");
    let http = |url: &str| {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
    };
    loop {
        if http(&url).map(|o| o.stdout == b"200").unwrap_or(false) {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "operator not ready in 180 s; log: {}",
                posture_e2e::controlplane::tail(operator.log_path(), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = started.elapsed();
    let (rss_ready, _) = rss_kib(operator.pid());
    // Let the first round of Finding and tag writes finish.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (rss, peak) = rss_kib(operator.pid());
    let findings = kubectl(&["get", "findings", "-A", "--no-headers"])?
        .stdout
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    println!(
        "operator ({}) on {count} objects: ready (synced + evaluated) after {:.2} s; RSS at ready {:.0} MB, after 30 s {:.0} MB, peak {:.0} MB; {findings} Findings written  [target RSS < 150 MB]",
        bin.display(),
        ready.as_secs_f64(),
        rss_ready as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(operator);
    cp.stop();
    Ok(())
}
