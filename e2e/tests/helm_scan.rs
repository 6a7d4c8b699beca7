//! `helm template … | posture scan -` on a real chart: the one `helm create` scaffolds
//! (Deployment, Service, ServiceAccount, optional Ingress and HPA, a test Pod).

use std::io::Write;
use std::process::{Command, Stdio};

use posture_e2e::binaries::{ControlPlaneBinaries, posture_binary};

fn template(helm: &std::path::Path, chart: &std::path::Path, sets: &[&str]) -> String {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "web"]).arg(chart);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().expect("helm runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn scan(manifests: &str) -> (Option<i32>, serde_json::Value) {
    let mut child = Command::new(posture_binary().expect("posture built"))
        .args(["scan", "-", "--format", "json", "--fail-on", "high"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("posture runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifests.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn helm_template_output_of_a_real_chart_is_scanned() {
    let helm = ControlPlaneBinaries::locate()
        .expect("control-plane binaries")
        .path("helm");
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(&helm)
        .args(["create", "web"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(status.status.success());
    let chart = dir.path().join("web");

    let (code, report) = scan(&template(&helm, &chart, &[]));
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(!rules.contains(&"public-loadbalancer"), "{rules:?}");
    assert_eq!(
        code,
        Some(0),
        "the scaffolded chart has nothing High: {report}"
    );

    let (code, report) = scan(&template(&helm, &chart, &["service.type=LoadBalancer"]));
    let lb = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "public-loadbalancer")
        .expect("LB found");
    assert_eq!(lb["subject"]["id"], "Service/default/web");
    assert_eq!(lb["location"]["file"], "-");
    assert!(
        lb["message"].as_str().unwrap().contains("Deployment/web"),
        "{lb}"
    );
    assert_eq!(code, Some(1), "--fail-on high");
}
