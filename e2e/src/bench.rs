//! Helpers of the benchmark programs (`bench-operator`, `bench-webhook`): a control
//! plane loaded with the synthetic estate, the release `posture` binary, and process
//! memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use posture::inventory::synthetic::{EstateSize, estate};

use crate::binaries::repo_root;
use crate::controlplane::ControlPlane;

/// Creates objects (API JSON) with 32 requests in flight.
pub async fn create_all(client: &Client, objects: Vec<serde_json::Value>) -> Result<()> {
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

/// Installs the CRDs and creates the estate of `size` (namespaces, accounts and roles
/// first) and a `spec: {}` ScanPolicy; returns the number of objects.
pub async fn load_estate(cp: &ControlPlane, size: EstateSize) -> Result<usize> {
    let client = cp.client().await?;
    let out = std::process::Command::new(cp.binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(&cp.kubeconfig)
        .args(["apply", "--server-side", "-f"])
        .arg(repo_root().join("crds/posture.dev.yaml"))
        .output()?;
    if !out.status.success() {
        bail!("installing CRDs: {}", String::from_utf8_lossy(&out.stderr));
    }
    let objects = estate(size, "bench-node");
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
    Ok(count)
}

/// The release `posture` binary: `POSTURE_BIN`, else `<target>/release/posture`.
pub fn release_posture() -> Result<PathBuf> {
    let path = match std::env::var_os("POSTURE_BIN") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("release/posture"),
    };
    if !path.is_file() {
        bail!(
            "{} does not exist: run `cargo build --release --bin posture` first",
            path.display()
        );
    }
    Ok(path)
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let field = status_fields(pid);
    (field("VmRSS:"), field("VmHWM:"))
}

/// The resident set of process `pid` split into heap and stacks (`RssAnon`) and pages
/// of mapped files, the binary's code first among them (`RssFile`), in KiB.
pub fn rss_split_kib(pid: u32) -> (u64, u64) {
    let field = status_fields(pid);
    (field("RssAnon:"), field("RssFile:") + field("RssShmem:"))
}

/// A reader of `/proc/<pid>/status` fields in KiB (0 when absent).
fn status_fields(pid: u32) -> impl Fn(&str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    move |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Whether `url` answers 200 (plain HTTP or HTTPS without verification).
pub fn answers_ok(url: &str) -> bool {
    std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .map(|o| o.stdout == b"200")
        .unwrap_or(false)
}
