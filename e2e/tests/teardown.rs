//! Stopping a cluster leaves no process behind: neither on an orderly stop nor when the
//! process that owns the cluster is killed outright.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use posture_e2e::cluster::{LocalCluster, LocalClusterOptions};
use posture_e2e::process::is_alive;

fn wait_all_dead(pids: &[(String, u32)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<_> = pids.iter().filter(|(_, pid)| is_alive(*pid)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {timeout:?}: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_stop_leaves_no_processes() -> Result<()> {
    let cluster = LocalCluster::start(LocalClusterOptions::default()).await?;
    let pids = cluster.control_plane.pids();
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(pids.iter().all(|(_, pid)| is_alive(*pid)));
    cluster.stop().await;
    // stop() waits for each process; nothing may be left at all.
    wait_all_dead(&pids, Duration::from_millis(1));
    Ok(())
}

#[test]
fn killing_the_owner_leaves_no_processes() -> Result<()> {
    let dev = tempfile::tempdir()?;
    let mut owner = Command::new(env!("CARGO_BIN_EXE_posture-cluster"))
        .args(["up", "--dev-dir"])
        .arg(dev.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let ready = dev.path().join("ready");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        if let Some(status) = owner.try_wait()? {
            panic!("posture-cluster exited with {status} before it was ready");
        }
        assert!(
            Instant::now() < deadline,
            "posture-cluster not ready in 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pids: Vec<(String, u32)> = std::fs::read_to_string(dev.path().join("cluster.pids"))?
        .lines()
        .map(|line| {
            let (name, pid) = line.split_once(' ').context("name pid")?;
            Ok((name.to_owned(), pid.parse()?))
        })
        .collect::<Result<_>>()?;
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(dev.path().join("kubeconfig").is_file());
    assert!(dev.path().join("bin/kubectl").exists());

    // SIGKILL: no destructor runs, only the guards' lifelines are cut.
    owner.kill()?;
    owner.wait()?;
    wait_all_dead(&pids, Duration::from_secs(20));
    Ok(())
}
