//! A test kubelet: registers one Ready Node and runs the Pods bound to it.
//!
//! Containers whose image is the project's own (see [`ImageMatcher`]) run as local
//! processes of the freshly built `posture` binary, with the container's command, args
//! and environment, and a per-pod kubeconfig holding a token for the pod's
//! ServiceAccount from the TokenRequest API, so RBAC applies to the pod as it would in a
//! cluster. Containers with any other image are reported Running and not executed.
//! Status goes Pending → Running → Succeeded/Failed with real exit codes, so Jobs
//! complete for real. Every pod has a folder with its kubeconfig and one log per
//! container.
//!
//! Volumes (Secret, ConfigMap, emptyDir, projected) are written into the pod's folder
//! and bind-mounted at their mountPath in a mount namespace of the container's own
//! (see [`crate::volumes`]).
//!
//! Not emulated: other volume kinds, images, networking
//! (all pods share the host's network; their IP is the host's, see [`pod_ip`]), `$(VAR)` expansion in args,
//! liveness and startup probes. Readiness probes (httpGet over plain HTTP, tcpSocket)
//! are honoured.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::TryStreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, ContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, EnvVar, Node, Pod,
    PodCondition, PodStatus, Probe, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::process::{Guarded, Lifeline, ProcessSpec};

const FIELD_MANAGER: &str = "posture-test-kubelet";

/// The IP every pod reports: the host's own address on its default route. Pods are
/// processes of the host, so anything they serve on 0.0.0.0 answers there, and unlike
/// 127.0.0.1 the API server accepts it in EndpointSlices, so Services (a webhook
/// behind one, say) route to the pods. 127.0.0.1 when the host has no such address.
pub fn pod_ip() -> &'static str {
    static IP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IP.get_or_init(|| {
        // A UDP "connection" sends nothing; it only picks the source address.
        std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("10.255.255.255:9").map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.0.1".into())
    })
}

/// Which images are "the project's image": exact names, and `*/posture:*` style
/// patterns where `*` matches any run of characters.
#[derive(Debug, Clone)]
pub struct ImageMatcher {
    patterns: Vec<String>,
}

impl Default for ImageMatcher {
    fn default() -> Self {
        Self::new(["posture:dev", "posture:*", "*/posture:*", "*/posture"])
    }
}

impl ImageMatcher {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    pub fn matches(&self, image: &str) -> bool {
        // A digest pins the same image: match on the name and tag before it.
        let image = image.split('@').next().unwrap_or(image);
        self.patterns.iter().any(|p| glob(p, image))
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .any(|i| glob(rest, &text[i..]))
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub posture_bin: PathBuf,
    pub images: ImageMatcher,
    /// Pod folders go to `<work_dir>/<namespace>/<pod>/`.
    pub work_dir: PathBuf,
    pub apiserver_url: String,
    pub ca_pem: String,
    pub kubernetes_version: String,
}

/// The running kubelet; dropping it (or [`TestKubelet::shutdown`]) stops every pod
/// process.
pub struct TestKubelet {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pods: Arc<Mutex<HashMap<String, PodHandle>>>,
    work_dir: PathBuf,
}

struct PodHandle {
    lifelines: Arc<Mutex<Vec<Lifeline>>>,
    terminating: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TestKubelet {
    /// Registers the Node (Ready) and starts the heartbeat and the pod loop.
    pub async fn start(client: Client, config: KubeletConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.work_dir)?;
        register_node(&client, &config).await?;
        let (shutdown, _) = watch::channel(false);
        let pods: Arc<Mutex<HashMap<String, PodHandle>>> = Arc::default();
        let config = Arc::new(config);
        let heartbeat = tokio::spawn(heartbeat_loop(
            client.clone(),
            config.clone(),
            shutdown.subscribe(),
        ));
        let pod_loop = tokio::spawn(pod_loop(
            client,
            config.clone(),
            pods.clone(),
            shutdown.subscribe(),
        ));
        Ok(Self {
            shutdown,
            tasks: vec![heartbeat, pod_loop],
            pods,
            work_dir: config.work_dir.clone(),
        })
    }

    /// The folder of a pod: its kubeconfig and container logs.
    pub fn pod_dir(&self, namespace: &str, name: &str) -> PathBuf {
        self.work_dir.join(namespace).join(name)
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Pids of the pod processes running now.
    pub fn running_pids(&self) -> Vec<u32> {
        let pods = self.pods.lock().unwrap();
        pods.values()
            .flat_map(|p| {
                p.lifelines
                    .lock()
                    .unwrap()
                    .iter()
                    .map(Lifeline::pid)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stops the loops and every pod process, and waits for them.
    pub async fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let handles: Vec<PodHandle> = self.pods.lock().unwrap().drain().map(|(_, h)| h).collect();
        for handle in handles {
            let _ = handle.terminating.send(true);
            for lifeline in handle.lifelines.lock().unwrap().iter_mut() {
                lifeline.cut();
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), handle.task).await;
        }
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
        // Cutting the lifelines is enough: each guard terminates its process.
        for handle in self.pods.lock().unwrap().values() {
            for lifeline in handle.lifelines.lock().unwrap().iter_mut() {
                lifeline.cut();
            }
        }
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

async fn register_node(client: &Client, config: &KubeletConfig) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &config.node_name;
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "posture.dev/test-kubelet": "true",
            },
        },
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch(name, &pp, &Patch::Apply(&node))
        .await
        .context("registering the node")?;
    patch_node_status(&nodes, config).await?;
    Ok(())
}

async fn patch_node_status(nodes: &Api<Node>, config: &KubeletConfig) -> Result<()> {
    let now = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let resources =
        json!({"cpu": "16", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"});
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("Ready", "True", "KubeletReady", "posture test kubelet is ready"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": config.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "posture-e2e", "systemUUID": "posture-e2e", "bootID": "posture-e2e",
                "kernelVersion": "local", "osImage": "posture test kubelet",
                "containerRuntimeVersion": "posture://local-processes",
                "kubeletVersion": config.kubernetes_version, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch_status(&config.node_name, &pp, &Patch::Apply(&status))
        .await
        .context("reporting node status")?;
    Ok(())
}

/// Node status and the node Lease are what the node lifecycle controller reads as the
/// kubelet's heartbeat; without them the node turns NotReady and its pods are evicted.
async fn heartbeat_loop(
    client: Client,
    config: Arc<KubeletConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        if let Err(e) = patch_node_status(&nodes, &config).await {
            tracing::warn!("test kubelet heartbeat: {e:#}");
        }
        let lease = Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(config.node_name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.node_name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        };
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut value = serde_json::to_value(&lease).unwrap_or_default();
        value["apiVersion"] = json!("coordination.k8s.io/v1");
        value["kind"] = json!("Lease");
        if let Err(e) = leases
            .patch(&config.node_name, &pp, &Patch::Apply(&value))
            .await
        {
            tracing::warn!("test kubelet lease: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn pod_loop(
    client: Client,
    config: Arc<KubeletConfig>,
    pods: Arc<Mutex<HashMap<String, PodHandle>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.nodeName={}", config.node_name);
    let stream = watcher(api, watcher::Config::default().fields(&selector));
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            event = stream.try_next() => event,
            _ = shutdown.changed() => return,
        };
        match event {
            Ok(Some(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                on_pod(&client, &config, &pods, pod);
            }
            Ok(Some(watcher::Event::Delete(pod))) => {
                if let Some(handle) = pods.lock().unwrap().remove(&pod.uid().unwrap_or_default()) {
                    terminate(&handle);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                // The watcher re-lists by itself; back off a little so a broken API does
                // not spin.
                tracing::warn!("test kubelet pod watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn terminate(handle: &PodHandle) {
    let _ = handle.terminating.send(true);
    for lifeline in handle.lifelines.lock().unwrap().iter_mut() {
        lifeline.cut();
    }
}

fn on_pod(
    client: &Client,
    config: &Arc<KubeletConfig>,
    pods: &Arc<Mutex<HashMap<String, PodHandle>>>,
    pod: Pod,
) {
    let uid = pod.uid().unwrap_or_default();
    let mut pods_guard = pods.lock().unwrap();
    if pod.metadata.deletion_timestamp.is_some() {
        if let Some(handle) = pods_guard.get(&uid) {
            terminate(handle);
        } else {
            // Never started (or started by an earlier kubelet): finish the deletion.
            let client = client.clone();
            tokio::spawn(async move { finalize_deletion(&client, &pod).await });
        }
        return;
    }
    if pods_guard.contains_key(&uid) {
        return;
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    if phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let lifelines: Arc<Mutex<Vec<Lifeline>>> = Arc::default();
    let (terminating, terminating_rx) = watch::channel(false);
    let task = tokio::spawn(run_pod(
        client.clone(),
        config.clone(),
        pod,
        lifelines.clone(),
        terminating_rx,
    ));
    pods_guard.insert(
        uid,
        PodHandle {
            lifelines,
            terminating,
            task,
        },
    );
}

async fn finalize_deletion(client: &Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let mut dp = DeleteParams::default().grace_period(0);
    dp.preconditions = Some(kube::api::Preconditions {
        uid: pod.uid(),
        resource_version: None,
    });
    if let Err(e) = api.delete(&pod.name_any(), &dp).await
        && !is_not_found(&e)
    {
        tracing::warn!("test kubelet: deleting pod {}: {e}", pod.name_any());
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What one container is doing, as reported in the pod status.
#[derive(Debug, Clone)]
struct ContainerRun {
    name: String,
    image: String,
    executed: bool,
    state: ContainerState,
    ready: bool,
    restarts: i32,
    last_state: Option<ContainerState>,
}

impl ContainerRun {
    fn new(container: &Container, executed: bool) -> Self {
        Self {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            executed,
            state: ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    message: None,
                }),
                ..Default::default()
            },
            ready: false,
            restarts: 0,
            last_state: None,
        }
    }

    fn terminated_code(&self) -> Option<i32> {
        self.state.terminated.as_ref().map(|t| t.exit_code)
    }

    fn status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: format!("posture-test-kubelet://{}", self.image),
            container_id: Some(format!("posture://{}", self.name)),
            ready: self.ready,
            started: Some(self.state.running.is_some()),
            restart_count: self.restarts,
            state: Some(self.state.clone()),
            last_state: self.last_state.clone(),
            ..Default::default()
        }
    }
}

fn terminated(
    code: i32,
    reason: &str,
    message: Option<String>,
    started: Option<Time>,
) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.into()),
            message,
            started_at: started,
            finished_at: Some(now()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running(started: Time) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(started),
        }),
        ..Default::default()
    }
}

/// Shared, per-pod view of the containers, written to the API after each change.
struct PodRun {
    api: Api<Pod>,
    name: String,
    restart_policy: String,
    start_time: Time,
    init: Vec<ContainerRun>,
    main: Vec<ContainerRun>,
    initialized: bool,
}

#[derive(Clone, Copy)]
enum Slot {
    Init(usize),
    Main(usize),
}

type SharedRun = Arc<tokio::sync::Mutex<PodRun>>;

impl PodRun {
    fn slot(&mut self, slot: Slot) -> &mut ContainerRun {
        match slot {
            Slot::Init(i) => &mut self.init[i],
            Slot::Main(i) => &mut self.main[i],
        }
    }

    fn phase(&self) -> &'static str {
        if !self.initialized {
            let failed = self
                .init
                .iter()
                .any(|c| c.terminated_code().is_some_and(|c| c != 0));
            return if failed && self.restart_policy == "Never" {
                "Failed"
            } else {
                "Pending"
            };
        }
        if self
            .main
            .iter()
            .any(|c| c.state.running.is_some() || c.state.waiting.is_some())
        {
            return "Running";
        }
        if self.main.iter().all(|c| c.terminated_code() == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    }

    async fn report(&self) {
        let all_ready = self.initialized && self.main.iter().all(|c| c.ready);
        let t = now();
        let cond = |type_: &str, ok: bool| PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(t.clone()),
            ..Default::default()
        };
        let status = PodStatus {
            phase: Some(self.phase().into()),
            host_ip: Some(pod_ip().into()),
            pod_ip: Some(pod_ip().into()),
            start_time: Some(self.start_time.clone()),
            conditions: Some(vec![
                cond("PodScheduled", true),
                cond("Initialized", self.initialized),
                cond("ContainersReady", all_ready),
                cond("Ready", all_ready),
            ]),
            init_container_statuses: Some(self.init.iter().map(ContainerRun::status).collect()),
            container_statuses: Some(self.main.iter().map(ContainerRun::status).collect()),
            ..Default::default()
        };
        let patch = json!({"status": status});
        if let Err(e) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            && !is_not_found(&e)
        {
            tracing::warn!("test kubelet: pod {} status: {e}", self.name);
        }
    }
}

#[derive(Clone)]
struct ExecContext {
    client: Client,
    config: Arc<KubeletConfig>,
    pod: Pod,
    dir: PathBuf,
    env_base: Vec<(String, String)>,
    volumes: crate::volumes::Materialised,
    grace: Duration,
    lifelines: Arc<Mutex<Vec<Lifeline>>>,
    terminating: watch::Receiver<bool>,
}

async fn run_pod(
    client: Client,
    config: Arc<KubeletConfig>,
    pod: Pod,
    lifelines: Arc<Mutex<Vec<Lifeline>>>,
    terminating: watch::Receiver<bool>,
) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let spec = pod.spec.clone().unwrap_or_default();
    let dir = config.work_dir.join(&namespace).join(&name);
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let ours = |c: &Container| config.images.matches(c.image.as_deref().unwrap_or(""));
    let run: SharedRun = Arc::new(tokio::sync::Mutex::new(PodRun {
        api: Api::namespaced(client.clone(), &namespace),
        name: name.clone(),
        restart_policy: spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into()),
        start_time: now(),
        init: init_containers
            .iter()
            .map(|c| ContainerRun::new(c, ours(c)))
            .collect(),
        main: spec
            .containers
            .iter()
            .map(|c| ContainerRun::new(c, ours(c)))
            .collect(),
        initialized: init_containers.is_empty(),
    }));
    run.lock().await.report().await;

    let prepared = async {
        let env = prepare_pod(&client, &config, &pod, &dir).await?;
        let volumes = crate::volumes::materialise(&client, &pod, &dir).await?;
        anyhow::Ok((env, volumes))
    };
    let (env_base, volumes) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            let message = format!("{e:#}");
            tracing::warn!("test kubelet: pod {namespace}/{name}: {message}");
            let mut guard = run.lock().await;
            let run = &mut *guard;
            for c in run.init.iter_mut().chain(run.main.iter_mut()) {
                c.state = terminated(128, "StartError", Some(message.clone()), None);
            }
            run.report().await;
            drop(guard);
            finish_if_deleted(&client, &pod, &terminating).await;
            return;
        }
    };
    let grace = Duration::from_secs(
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .clamp(1, 30) as u64,
    );
    let ctx = ExecContext {
        client: client.clone(),
        config: config.clone(),
        pod: pod.clone(),
        dir,
        env_base,
        volumes,
        grace,
        lifelines,
        terminating: terminating.clone(),
    };

    // Init containers, one after the other, each until it succeeds.
    for (i, container) in init_containers.iter().enumerate() {
        if !run_with_restarts(&ctx, container, Slot::Init(i), &run).await {
            finish_if_deleted(&client, &pod, &terminating).await;
            return;
        }
    }
    {
        let mut run = run.lock().await;
        run.initialized = true;
        run.report().await;
    }

    // Main containers side by side.
    let tasks: Vec<_> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, container)| {
            let (ctx, container, run) = (ctx.clone(), container.clone(), run.clone());
            tokio::spawn(
                async move { run_with_restarts(&ctx, &container, Slot::Main(i), &run).await },
            )
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    run.lock().await.report().await;
    finish_if_deleted(&client, &pod, &terminating).await;
}

/// Runs a container, restarting it as the pod's restart policy says (init containers
/// restart on failure unless the policy is Never). Returns whether it ended with 0.
async fn run_with_restarts(
    ctx: &ExecContext,
    container: &Container,
    slot: Slot,
    run: &SharedRun,
) -> bool {
    let mut terminating = ctx.terminating.clone();
    let policy = run.lock().await.restart_policy.clone();
    loop {
        let code = execute(ctx, container, slot, run).await;
        let restart = match (slot, policy.as_str()) {
            (_, "Never") => false,
            (Slot::Main(_), "Always") => true,
            _ => code != 0,
        };
        if !restart || *terminating.borrow() {
            return code == 0;
        }
        let restarts = run.lock().await.slot(slot).restarts;
        let delay = Duration::from_secs((1u64 << restarts.clamp(0, 5)).min(30));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = terminating.wait_for(|t| *t) => return code == 0,
        }
        run.lock().await.slot(slot).restarts += 1;
    }
}

/// One run of a container: a process for the project image, a pretend-run until the
/// pod goes away for any other image. Returns the exit code.
async fn execute(ctx: &ExecContext, container: &Container, slot: Slot, run: &SharedRun) -> i32 {
    let started = now();
    let mut terminating = ctx.terminating.clone();
    if !run.lock().await.slot(slot).executed {
        if let Slot::Init(_) = slot {
            let mut run = run.lock().await;
            run.slot(slot).state = terminated(0, "Completed", None, Some(started));
            return 0;
        }
        {
            let mut run = run.lock().await;
            run.slot(slot).state = running(started.clone());
            run.slot(slot).ready = true;
            run.report().await;
        }
        let _ = terminating.wait_for(|t| *t).await;
        let mut run = run.lock().await;
        run.slot(slot).state = terminated(0, "Completed", None, Some(started));
        run.slot(slot).ready = false;
        return 0;
    }

    let (lifeline, mut child) = match spawn_container(ctx, container).await {
        Ok(pair) => pair,
        Err(e) => {
            let mut run = run.lock().await;
            run.slot(slot).state =
                terminated(128, "StartError", Some(format!("{e:#}")), Some(started));
            run.report().await;
            return 128;
        }
    };
    let pid = lifeline.pid();
    ctx.lifelines.lock().unwrap().push(lifeline);
    if *terminating.borrow() {
        // Deleted while starting: the pod loop may have cut the lifelines already.
        cut(&ctx.lifelines, pid);
    }
    {
        let mut run = run.lock().await;
        let c = run.slot(slot);
        c.last_state = c.state.terminated.as_ref().map(|_| c.state.clone());
        c.state = running(started.clone());
        c.ready = matches!(slot, Slot::Main(_)) && container.readiness_probe.is_none();
        run.report().await;
    }
    let prober = match (slot, container.readiness_probe.clone()) {
        (Slot::Main(i), Some(probe)) => Some(tokio::spawn(probe_loop(
            probe,
            container.ports.clone().unwrap_or_default(),
            i,
            run.clone(),
        ))),
        _ => None,
    };
    let status = tokio::task::spawn_blocking(move || child.wait()).await;
    if let Some(prober) = prober {
        prober.abort();
    }
    ctx.lifelines.lock().unwrap().retain(|l| l.pid() != pid);
    let code = match status {
        Ok(Ok(status)) => exit_code(status),
        _ => 128,
    };
    let mut run = run.lock().await;
    let reason = if code == 0 { "Completed" } else { "Error" };
    run.slot(slot).state = terminated(code, reason, None, Some(started));
    run.slot(slot).ready = false;
    run.report().await;
    code
}

fn cut(lifelines: &Mutex<Vec<Lifeline>>, pid: u32) {
    for lifeline in lifelines
        .lock()
        .unwrap()
        .iter_mut()
        .filter(|l| l.pid() == pid)
    {
        lifeline.cut();
    }
}

async fn probe_loop(probe: Probe, ports: Vec<ContainerPort>, i: usize, run: SharedRun) {
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(2).clamp(1, 10) as u64);
    let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(delay)).await;
    loop {
        let ok = readiness(&probe, &ports).await;
        {
            let mut run = run.lock().await;
            if run.main[i].ready != ok && run.main[i].state.running.is_some() {
                run.main[i].ready = ok;
                run.report().await;
            }
        }
        tokio::time::sleep(period).await;
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

async fn finish_if_deleted(client: &Client, pod: &Pod, terminating: &watch::Receiver<bool>) {
    if *terminating.borrow() {
        finalize_deletion(client, pod).await;
    }
}

/// The pod folder, its kubeconfig (unless the pod opts out of a service-account token)
/// and the environment every container of the pod shares.
async fn prepare_pod(
    client: &Client,
    config: &KubeletConfig,
    pod: &Pod,
    dir: &Path,
) -> Result<Vec<(String, String)>> {
    tokio::fs::create_dir_all(dir).await?;
    let namespace = pod.namespace().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let account = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut env = vec![("HOSTNAME".to_owned(), pod.name_any())];

    let automount = match spec.automount_service_account_token {
        Some(value) => value,
        None => {
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
            accounts
                .get_opt(&account)
                .await?
                .and_then(|sa| sa.automount_service_account_token)
                .unwrap_or(true)
        }
    };
    if automount {
        let token = request_token(client, &namespace, &account, pod).await?;
        let kubeconfig = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {account}
  user:
    token: {token}
contexts:
- name: pod
  context:
    cluster: cluster
    user: {account}
    namespace: {namespace}
current-context: pod
",
            server = config.apiserver_url,
            ca = BASE64.encode(&config.ca_pem),
        );
        tokio::fs::write(&kubeconfig, text).await?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600)).await?;
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
    Ok(env)
}

async fn request_token(
    client: &Client,
    namespace: &str,
    account: &str,
    pod: &Pod,
) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600 * 24),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    let response: TokenRequest = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {namespace}/{account}"))?;
    response
        .status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

async fn spawn_container(
    ctx: &ExecContext,
    container: &Container,
) -> Result<(Lifeline, std::process::Child)> {
    let mut args: Vec<String> = Vec::new();
    match container.command.as_deref() {
        None | Some([]) => {}
        Some([program, rest @ ..]) => {
            let base = program.rsplit('/').next().unwrap_or(program);
            if base != "posture" {
                anyhow::bail!(
                    "exec: {program:?}: executable file not found in the posture image (it holds only posture)"
                );
            }
            args.extend(rest.iter().cloned());
        }
    }
    args.extend(container.args.clone().unwrap_or_default());
    let env = container_env(&ctx.client, &ctx.pod, container, &ctx.env_base).await?;
    let (program, args) = match crate::volumes::wrap(
        container,
        &ctx.dir,
        &ctx.volumes,
        &ctx.config.posture_bin,
        &args,
    )? {
        Some(wrapped) => wrapped,
        None => (ctx.config.posture_bin.clone(), args),
    };
    let mut spec =
        ProcessSpec::new(&program, ctx.dir.join(format!("{}.log", container.name))).args(args);
    spec.env = env;
    spec.clear_env = true;
    spec.cwd = Some(ctx.dir.clone());
    spec.grace = ctx.grace;
    let process = Guarded::spawn(&container.name, &spec)?;
    Ok(process.split())
}

/// The container's environment: `envFrom`, then `env` (literal values, the downward
/// API, ConfigMap and Secret keys), over the pod-wide variables.
async fn container_env(
    client: &Client,
    pod: &Pod,
    container: &Container,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let namespace = pod.namespace().unwrap_or_default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut env: BTreeMap<String, String> = base.iter().cloned().collect();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let map = config_maps.get_opt(&r.name).await?;
            if map.is_none() && r.optional != Some(true) {
                anyhow::bail!("configmap {:?} not found", r.name);
            }
            for (k, v) in map.and_then(|m| m.data).unwrap_or_default() {
                env.insert(format!("{prefix}{k}"), v);
            }
        }
        if let Some(r) = &from.secret_ref {
            let secret = secrets.get_opt(&r.name).await?;
            if secret.is_none() && r.optional != Some(true) {
                anyhow::bail!("secret {:?} not found", r.name);
            }
            for (k, v) in secret.and_then(|s| s.data).unwrap_or_default() {
                env.insert(
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v.0).into_owned(),
                );
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match var.value_from.as_ref() {
            None => var.value.clone(),
            Some(source) => {
                if let Some(r) = &source.config_map_key_ref {
                    let value = config_maps
                        .get_opt(&r.name)
                        .await?
                        .and_then(|m| m.data)
                        .and_then(|d| d.get(&r.key).cloned());
                    if value.is_none() && r.optional != Some(true) {
                        anyhow::bail!(
                            "env {}: key {:?} of configmap {:?} not found",
                            var.name,
                            r.key,
                            r.name
                        );
                    }
                    value
                } else if let Some(r) = &source.secret_key_ref {
                    let value = secrets
                        .get_opt(&r.name)
                        .await?
                        .and_then(|s| s.data)
                        .and_then(|d| {
                            d.get(&r.key)
                                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                        });
                    if value.is_none() && r.optional != Some(true) {
                        anyhow::bail!(
                            "env {}: key {:?} of secret {:?} not found",
                            var.name,
                            r.key,
                            r.name
                        );
                    }
                    value
                } else {
                    downward_value(pod, var)
                }
            }
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    Ok(env.into_iter().collect())
}

fn downward_value(pod: &Pod, var: &EnvVar) -> Option<String> {
    let field = var.value_from.as_ref()?.field_ref.as_ref()?;
    let path = field.field_path.as_str();
    let spec = pod.spec.as_ref();
    match path {
        "metadata.name" => Some(pod.name_any()),
        "metadata.namespace" => pod.namespace(),
        "metadata.uid" => pod.uid(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.hostIP" => Some(pod_ip().into()),
        _ => {
            let (map, key) = if let Some(key) = path.strip_prefix("metadata.labels['") {
                (pod.metadata.labels.as_ref(), key)
            } else {
                (
                    pod.metadata.annotations.as_ref(),
                    path.strip_prefix("metadata.annotations['")?,
                )
            };
            map?.get(key.strip_suffix("']")?).cloned()
        }
    }
}

async fn readiness(probe: &Probe, ports: &[ContainerPort]) -> bool {
    let resolve = |port: &IntOrString| -> Option<u16> {
        match port {
            IntOrString::Int(p) => u16::try_from(*p).ok(),
            IntOrString::String(name) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    };
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = resolve(&tcp.port) else {
            return false;
        };
        return tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = resolve(&http.port) else {
            return false;
        };
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        if http.scheme.as_deref() == Some("HTTPS") {
            // No TLS client here: an open port is the best signal we have.
            return true;
        }
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut head)).await;
        return matches!(read, Ok(Ok(_)))
            && std::str::from_utf8(&head[9..12])
                .ok()
                .and_then(|code| code.parse::<u16>().ok())
                .is_some_and(|code| (200..400).contains(&code));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::ImageMatcher;

    #[test]
    fn project_image_names_match() {
        let images = ImageMatcher::default();
        for image in [
            "posture:dev",
            "posture:0.1.0",
            "ghcr.io/acme/posture:dev",
            "registry.local:5000/sec/posture:1.2",
            "ghcr.io/acme/posture",
            "ghcr.io/acme/posture:dev@sha256:0123",
        ] {
            assert!(images.matches(image), "{image} should match");
        }
    }

    #[test]
    fn other_images_do_not_match() {
        let images = ImageMatcher::default();
        for image in [
            "nginx:1.27",
            "posture-operator:dev",
            "ghcr.io/acme/not-posture:dev",
            "postures:dev",
            "",
        ] {
            assert!(!images.matches(image), "{image} should not match");
        }
    }

    #[test]
    fn a_configured_name_replaces_the_defaults() {
        let images = ImageMatcher::new(["example.com/posture:ci"]);
        assert!(images.matches("example.com/posture:ci"));
        assert!(!images.matches("posture:dev"));
    }
}
