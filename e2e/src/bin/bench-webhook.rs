//! The admission webhook side by side with OPA and with the limit of the transport.
//!
//! One control plane (etcd + kube-apiserver) holds the target estate (10k Pods in 2k
//! Deployments, 3k Services, 2k bindings). Three HTTPS servers answer the same
//! AdmissionReview bodies, built from objects read back from that apiserver
//! (managedFields and all, as the apiserver sends them):
//!
//! - `posture webhook` (release build) with its watch-backed inventory of the estate;
//! - OPA v1.22 (`opa run --server`, TLS) with `bench/opa/admission.rego`;
//! - a no-op axum + rustls server that reads the body and answers "allowed".
//!
//! First every body goes once to each server and the decisions are compared; then wrk
//! (same connections and threads for all three) loads each server in turn, `--rounds`
//! times, interleaved. Prints medians, ratios and the webhook's memory.
//!
//!     cargo build --release --bin posture -p posture-e2e --bin bench-webhook
//!     bench/webhook_vs_opa.sh            # builds OPA and runs this
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use posture::inventory::synthetic::EstateSize;
use posture_e2e::bench::{answers_ok, load_estate, release_posture, rss_kib, rss_split_kib};
use posture_e2e::binaries::ControlPlaneBinaries;
use posture_e2e::controlplane::{ControlPlane, tail};
use posture_e2e::pki::CertificateAuthority;
use posture_e2e::ports::free_ports;
use posture_e2e::process::{Guarded, ProcessSpec};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    noop: Option<Noop>,
    /// OPA binary (v1.22).
    #[arg(long, env = "OPA_BIN")]
    opa: Option<PathBuf>,
    /// Seconds of load per server and round.
    #[arg(long, default_value_t = 15)]
    seconds: u32,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Connections held open by the load generator.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Connections for the latency measurement under moderate load.
    #[arg(long, default_value_t = 4)]
    light_connections: u32,
    /// Run the webhook without the allocator setting the chart gives it
    /// (MIMALLOC_PURGE_DELAY=0), to compare.
    #[arg(long)]
    allocator_defaults: bool,
    /// Load generator threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
}

#[derive(clap::Subcommand)]
enum Noop {
    /// The no-op server (run by the benchmark itself).
    Noop {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        tls_cert: PathBuf,
        #[arg(long)]
        tls_key: PathBuf,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match args.noop {
        Some(Noop::Noop {
            listen,
            tls_cert,
            tls_key,
        }) => runtime.block_on(noop_server(listen, &tls_cert, &tls_key)),
        None => runtime.block_on(bench(args)),
    }
}

/// The transport's limit: TLS, HTTP, reading the body, a fixed "allowed" answer.
async fn noop_server(listen: SocketAddr, cert: &Path, key: &Path) -> Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let reloader = posture::admission::tls::CertReloader::new(cert, key)?;
    let config = posture::admission::tls::server_config(reloader)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let app = axum::Router::new().route(
        "/validate",
        axum::routing::post(|body: axum::body::Bytes| async move {
            std::hint::black_box(body.len());
            axum::Json(
                json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "", "allowed": true}}),
            )
        }),
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}

/// One AdmissionReview body and what an admission policy should say to it.
struct Body {
    what: &'static str,
    json: Value,
    denied: bool,
}

fn review(kind: &str, group: &str, object: &Value, old: Option<&Value>, op: &str) -> Value {
    let meta = &object["metadata"];
    let mut request = json!({
        "uid": format!("{:08x}", rand_u32(meta["name"].as_str().unwrap_or_default())),
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "namespace": meta["namespace"],
        "name": meta["name"],
        "operation": op,
        "userInfo": {"username": "ci-deployer", "groups": ["system:authenticated"]},
        "object": object,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": if op == "CREATE" {"CreateOptions"} else {"UpdateOptions"}},
    });
    if let Some(old) = old {
        request["oldObject"] = old.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// A stable pseudo-uid.
fn rand_u32(seed: &str) -> u32 {
    seed.bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

async fn list(
    client: &kube::Client,
    group: &str,
    kind: &str,
    namespace: &str,
) -> Result<Vec<Value>> {
    let gvk = GroupVersionKind::gvk(group, "v1", kind);
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
    let list = api.list(&ListParams::default().limit(40)).await?;
    list.items
        .into_iter()
        .map(|o| {
            let mut v = serde_json::to_value(o)?;
            v["apiVersion"] = json!(if group.is_empty() {
                "v1".to_owned()
            } else {
                format!("{group}/v1")
            });
            v["kind"] = json!(kind);
            Ok(v)
        })
        .collect()
}

/// The mix a busy cluster sends: rollouts (Deployment updates), pods created by
/// ReplicaSets, Services, and a few changes every policy must deny.
async fn bodies(cp: &ControlPlane) -> Result<Vec<Body>> {
    let client = cp.client().await?;
    let mut out = Vec::new();
    for ns in ["team-003", "team-017", "team-042"] {
        for old in list(&client, "apps", "Deployment", ns).await? {
            let privileged = old.to_string().contains("\"privileged\":true");
            if privileged {
                continue;
            }
            let mut new = old.clone();
            let image = new["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .replace(":1.", ":2.");
            new["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            new["metadata"]["generation"] = json!(2);
            out.push(Body {
                what: "Deployment rollout",
                json: review("Deployment", "apps", &new, Some(&old), "UPDATE"),
                denied: false,
            });
        }
        for pod in list(&client, "", "Pod", ns).await?.into_iter().take(24) {
            if pod.to_string().contains("\"privileged\":true") {
                continue;
            }
            out.push(Body {
                what: "Pod of a ReplicaSet",
                json: review("Pod", "", &pod, None, "CREATE"),
                denied: false,
            });
        }
        for svc in list(&client, "", "Service", ns).await?.into_iter().take(12) {
            let mut svc = svc;
            svc["metadata"]["name"] = json!(format!(
                "{}-v2",
                svc["metadata"]["name"].as_str().unwrap_or("svc")
            ));
            for field in ["resourceVersion", "uid", "creationTimestamp"] {
                svc["metadata"].as_object_mut().map(|m| m.remove(field));
            }
            let mut internal = svc.clone();
            internal["spec"] = json!({"type": "ClusterIP", "selector": svc["spec"]["selector"], "ports": [{"port": 80, "targetPort": 8080}]});
            out.push(Body {
                what: "ClusterIP Service",
                json: review("Service", "", &internal, None, "CREATE"),
                denied: false,
            });
        }
        // Denied by both: a public LoadBalancer and an SSH NodePort in front of an
        // existing Deployment, and a privileged debug pod.
        let target = format!(
            "svc-{:05}",
            3 + 50 * ns[5..].parse::<usize>().unwrap_or(0) % 2000
        );
        let lb = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "public-lb", "namespace": ns, "labels": {"app": target}},
            "spec": {"type": "LoadBalancer", "selector": {"app": target}, "ports": [{"port": 443, "targetPort": 8080}]}});
        out.push(Body {
            what: "LoadBalancer Service",
            json: review("Service", "", &lb, None, "CREATE"),
            denied: true,
        });
        let ssh = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ssh", "namespace": ns},
            "spec": {"type": "NodePort", "selector": {"app": target}, "ports": [{"port": 22, "targetPort": 22}]}});
        out.push(Body {
            what: "NodePort 22",
            json: review("Service", "", &ssh, None, "CREATE"),
            denied: true,
        });
        let debug = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "debug", "namespace": ns},
            "spec": {"containers": [{"name": "shell", "image": "busybox:1.36", "securityContext": {"privileged": true}}]}});
        out.push(Body {
            what: "privileged Pod",
            json: review("Pod", "", &debug, None, "CREATE"),
            denied: true,
        });
    }
    Ok(out)
}

struct Server {
    name: &'static str,
    url: String,
    process: Guarded,
}

/// POSTs a body with curl (no verification needed: loopback); returns `allowed`.
fn decide(url: &str, body: &Path) -> Result<bool> {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()?;
    let answer: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{url}: {}", String::from_utf8_lossy(&out.stdout)))?;
    answer["response"]["allowed"]
        .as_bool()
        .with_context(|| format!("{url}: no response.allowed in {answer}"))
}

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn duration_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn wrk(args: &Args, connections: u32, script: &Path, url: &str) -> Result<Load> {
    let out = Command::new("wrk")
        .args([
            format!("-t{}", args.threads.min(connections)),
            format!("-c{connections}"),
            format!("-d{}s", args.seconds),
            "--latency".into(),
            "--timeout=10s".into(),
            "-s".into(),
            script.display().to_string(),
            url.into(),
        ])
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
        + text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .map(|l| {
                l.split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
    Ok(Load {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .context(format!("no Requests/sec in {text}"))?,
        p50_ms: field("50%")
            .and_then(|v| duration_ms(&v))
            .context("no p50")?,
        p99_ms: field("99%")
            .and_then(|v| duration_ms(&v))
            .context("no p99")?,
        errors,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

async fn wait_until(what: &str, process: &Guarded, mut ready: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "{what} not ready in 180 s:\n{}",
                tail(process.log_path(), 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn bench(args: Args) -> Result<()> {
    let opa = args
        .opa
        .clone()
        .context("--opa or OPA_BIN: the OPA binary (bench/webhook_vs_opa.sh builds it)")?;
    let posture_bin = release_posture()?;
    let binaries = ControlPlaneBinaries::locate()?;
    let dir = tempfile::Builder::new()
        .prefix("posture-e2e-bench-")
        .tempdir()?;
    let d = dir.path();
    let mut cp = ControlPlane::start_with(d, binaries, false).await?;
    let objects = load_estate(&cp, EstateSize::TARGET).await?;

    // The same certificate for all three servers.
    let ca = CertificateAuthority::new("posture-bench-ca")?;
    let (cert, key) = ca.issue_server("bench", &["127.0.0.1"])?;
    std::fs::write(d.join("tls.crt"), cert)?;
    std::fs::write(d.join("tls.key"), key)?;
    let (cert, key) = (d.join("tls.crt"), d.join("tls.key"));

    let bodies = bodies(&cp).await?;
    let body_dir = d.join("bodies");
    std::fs::create_dir_all(&body_dir)?;
    let mut list = String::new();
    let mut bytes = 0;
    for (i, body) in bodies.iter().enumerate() {
        let path = body_dir.join(format!("{i:04}.json"));
        let text = serde_json::to_string(&body.json)?;
        bytes += text.len();
        std::fs::write(&path, text)?;
        list.push_str(&format!("{}\n", path.display()));
    }
    std::fs::write(d.join("bodies.txt"), list)?;
    let script = d.join("bodies.lua");
    std::fs::write(
        &script,
        format!(
            r#"-- Cycles through the AdmissionReview bodies, each thread from its own offset.
local bodies = {{}}
for path in io.lines("{}") do
  local f = io.open(path, "rb"); bodies[#bodies + 1] = f:read("*a"); f:close()
end
local i = 0
init = function(args) i = math.random(#bodies) end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, bodies[i])
end
"#,
            d.join("bodies.txt").display()
        ),
    )?;
    let denied = bodies.iter().filter(|b| b.denied).count();
    eprintln!(
        "{} AdmissionReview bodies ({} denied), {:.1} KB on average",
        bodies.len(),
        denied,
        bytes as f64 / bodies.len() as f64 / 1024.0
    );

    let [noop_port, opa_port, posture_port, posture_ops] = free_ports::<4>()?;
    let me = std::env::current_exe()?;
    let noop = Guarded::spawn(
        "noop",
        &ProcessSpec::new(&me, d.join("noop.log")).args([
            "noop".to_owned(),
            format!("--listen=127.0.0.1:{noop_port}"),
            format!("--tls-cert={}", cert.display()),
            format!("--tls-key={}", key.display()),
        ]),
    )?;
    let policy = posture_e2e::binaries::repo_root().join("bench/opa/admission.rego");
    let opa = Guarded::spawn(
        "opa",
        &ProcessSpec::new(&opa, d.join("opa.log")).args([
            "run".to_owned(),
            "--server".to_owned(),
            format!("--addr=127.0.0.1:{opa_port}"),
            format!("--tls-cert-file={}", cert.display()),
            format!("--tls-private-key-file={}", key.display()),
            "--log-level=error".to_owned(),
            "--disable-telemetry".to_owned(),
            policy.display().to_string(),
        ]),
    )?;
    let mut spec = ProcessSpec::new(&posture_bin, d.join("posture.log")).args([
        "webhook".to_owned(),
        format!("--listen=127.0.0.1:{posture_port}"),
        format!("--metrics-addr=127.0.0.1:{posture_ops}"),
        format!("--tls-cert={}", cert.display()),
        format!("--tls-key={}", key.display()),
        format!("--kubeconfig={}", cp.kubeconfig.display()),
    ]);
    // The allocator setting the chart and the image give the webhook (see
    // charts/posture/templates/_helpers.tpl); `--allocator-defaults` leaves it out.
    spec.env = vec![("RUST_LOG".into(), "warn".into())];
    if !args.allocator_defaults {
        spec.env.push(("MIMALLOC_PURGE_DELAY".into(), "0".into()));
    }
    let started = Instant::now();
    let posture = Guarded::spawn("posture", &spec)?;
    wait_until("posture webhook", &posture, || {
        answers_ok(&format!("http://127.0.0.1:{posture_ops}/readyz"))
    })
    .await?;
    let synced = started.elapsed();
    let (rss_synced, _) = rss_kib(posture.pid());
    wait_until("OPA", &opa, || {
        answers_ok(&format!("https://127.0.0.1:{opa_port}/health"))
    })
    .await?;
    wait_until("no-op", &noop, || {
        std::net::TcpStream::connect(("127.0.0.1", noop_port)).is_ok()
    })
    .await?;
    // What the webhook holds once the initial lists are behind it: the allocator
    // returns freed pages to the system after a delay (mimalloc: 1 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_settled, _) = rss_kib(posture.pid());
    let (anon_settled, file_settled) = rss_split_kib(posture.pid());

    let servers = [
        Server {
            name: "posture webhook",
            url: format!("https://127.0.0.1:{posture_port}/validate?timeout=10s"),
            process: posture,
        },
        Server {
            name: "OPA v1.22",
            url: format!("https://127.0.0.1:{opa_port}/"),
            process: opa,
        },
        Server {
            name: "no-op axum + rustls",
            url: format!("https://127.0.0.1:{noop_port}/validate"),
            process: noop,
        },
    ];

    // Same decisions on every body (the no-op allows everything by design).
    for server in &servers[..2] {
        let mut wrong = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let allowed = decide(&server.url, &body_dir.join(format!("{i:04}.json")))?;
            if allowed == body.denied {
                wrong.push(format!("{} #{i} allowed={allowed}", body.what));
            }
        }
        if !wrong.is_empty() {
            bail!(
                "{} decided {} bodies differently: {:?}",
                server.name,
                wrong.len(),
                wrong
            );
        }
        eprintln!(
            "{}: all {} decisions as expected",
            server.name,
            bodies.len()
        );
    }

    let mut results: Vec<Vec<Load>> = vec![Vec::new(); servers.len()];
    for round in 1..=args.rounds {
        for (i, server) in servers.iter().enumerate() {
            let load = wrk(&args, args.connections, &script, &server.url)?;
            eprintln!(
                "round {round} {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                server.name, load.rps, load.p50_ms, load.p99_ms, load.errors
            );
            results[i].push(load);
        }
    }
    // Latency under the load of a busy API server rather than at saturation: a few
    // connections, so that queueing in the load generator does not dominate.
    let mut light = Vec::new();
    for server in &servers {
        let load = wrk(&args, args.light_connections, &script, &server.url)?;
        eprintln!(
            "{} connections {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            args.light_connections, server.name, load.rps, load.p50_ms, load.p99_ms
        );
        light.push(load);
    }
    let (rss, peak) = rss_kib(servers[0].process.pid());

    let med = |i: usize, f: fn(&Load) -> f64| median(results[i].iter().map(f).collect());
    println!(
        "\n{} bodies, {} connections, {} wrk threads, {} s x {} rounds; estate of {objects} objects\n",
        bodies.len(),
        args.connections,
        args.threads,
        args.seconds,
        args.rounds
    );
    println!("| server | throughput (median) | p50 | p99 | errors |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, server) in servers.iter().enumerate() {
        println!(
            "| {} | {:.0} req/s | {:.2} ms | {:.2} ms | {} |",
            server.name,
            med(i, |l| l.rps),
            med(i, |l| l.p50_ms),
            med(i, |l| l.p99_ms),
            results[i].iter().map(|l| l.errors).sum::<u64>()
        );
    }
    println!(
        "\nWith {} connections (one round of {} s each):\n",
        args.light_connections, args.seconds
    );
    println!("| server | throughput | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for (server, load) in servers.iter().zip(&light) {
        println!(
            "| {} | {:.0} req/s | {:.2} ms | {:.2} ms |",
            server.name, load.rps, load.p50_ms, load.p99_ms
        );
    }
    let (p, o, n) = (med(0, |l| l.rps), med(1, |l| l.rps), med(2, |l| l.rps));
    println!(
        "\nposture / OPA throughput: {:.2}x (target >= 3x); posture / no-op: {:.0}% (target >= 80%)",
        p / o,
        100.0 * p / n
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    let (anon, file) = rss_split_kib(servers[0].process.pid());
    println!(
        "posture webhook memory with the estate (target < 60 MB): {:.0} MB when synced (after {:.1} s), \
         {:.0} MB settled 3 s later (heap {:.0} MB, mapped files {:.0} MB), \
         {:.0} MB after the load (heap {:.0} MB, mapped files {:.0} MB), peak {:.0} MB",
        mb(rss_synced),
        synced.as_secs_f64(),
        mb(rss_settled),
        mb(anon_settled),
        mb(file_settled),
        mb(rss),
        mb(anon),
        mb(file),
        mb(peak)
    );
    drop(servers);
    cp.stop();
    Ok(())
}
