//! `posture query` offline: snapshots and manifests become a store on the spot, a store
//! file is read read-only, and bad input is named.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const POSTURE: &str = env!("CARGO_BIN_EXE_posture");

fn fixture(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn query(args: &[&str]) -> Output {
    Command::new(POSTURE)
        .arg("query")
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn snapshots_and_manifests_join_in_one_query() {
    let snapshot = fixture("aws/cloud-fail.json");
    let manifests = fixture("query/irsa.yaml");
    let sql = "SELECT w.name, r2.to_id, json_extract(role.attributes, '$.admin')
               FROM relations r1
               JOIN assets w ON w.id = r1.from_id
               JOIN relations r2 ON r2.from_id = r1.to_id AND r2.kind = 'assumes'
               JOIN assets role ON role.id = r2.to_id
               WHERE r1.kind = 'runs-as'";
    let out = query(&[
        "--snapshot",
        &snapshot,
        "--manifests",
        &manifests,
        "--format",
        "json",
        sql,
    ]);
    let result = json(&out);
    assert_eq!(
        result["rows"],
        serde_json::json!([["ci", "aws:arn:aws:iam::123456789012:role/ops-admin", 1]])
    );

    let out = query(&[
        "--snapshot",
        &snapshot,
        "--manifests",
        &manifests,
        "SELECT tag, count(*) AS assets FROM tags GROUP BY tag ORDER BY tag",
    ]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["TAG", "ASSETS"],
        "{table}"
    );
    assert!(table.contains("HighlyPermissiveRole"), "{table}");
}

#[test]
fn queries_cannot_write_and_bad_input_is_named() {
    let snapshot = fixture("aws/cloud-fail.json");
    let out = query(&["--snapshot", &snapshot, "DELETE FROM assets"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized"),
        "{out:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"schema\": \"posture.dev/aws-snapshot/v1\", \"acc",
    )
    .unwrap();
    let out = query(&["--snapshot", broken.to_str().unwrap(), "SELECT 1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.json"), "{stderr}");

    let missing = dir.path().join("missing.db");
    let out = query(&["--db", missing.to_str().unwrap(), "SELECT 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.db"));

    let out = query(&["SELECT 1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--server"),
        "says what to pass"
    );

    let out = query(&["--schema"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CREATE TABLE IF NOT EXISTS relations"));
    assert!(!Path::new(&dir.path().join("x")).exists());
}
