//! Without its CRDs the operator stops at once with install instructions, instead of
//! starting watches that can never work. (Its own test binary, so its own cluster
//! without the posture CRDs.)

use std::process::Command;

use posture_e2e::binaries::posture_binary;
use posture_e2e::cluster::shared;

#[test]
fn operator_without_crds_exits_with_install_instructions() {
    let cluster = shared();
    let out = Command::new(posture_binary().expect("posture built"))
        .args([
            "operator",
            "--leader-election=false",
            "--metrics-addr=127.0.0.1:0",
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()
        .expect("posture runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("findings.posture.dev is not installed")
            && stderr.contains("posture crds | kubectl apply --server-side -f -"),
        "{stderr}"
    );
}
