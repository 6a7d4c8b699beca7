//! `posture scan` end to end on fixture manifests: relations across documents and
//! files, formats, exit codes, policy as code, bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const POSTURE: &str = env!("CARGO_BIN_EXE_posture");

fn fixtures(path: &str) -> String {
    format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn scan(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(POSTURE)
        .arg("scan")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("posture runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = scan(&all, None);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn rule_subjects(report: &serde_json::Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["subject"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn relations_hold_across_documents_and_files() {
    let report = json(&[&fixtures("scan")]);
    let found = rule_subjects(&report);
    assert!(
        found.contains(&(
            "public-loadbalancer".into(),
            "Service/shop/api-public".into()
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "rbac-cluster-admin".into(),
            "ServiceAccount/shop/api".into()
        )),
        "{found:?}"
    );
    let lb = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "public-loadbalancer")
        .unwrap();
    // The Service in service.yaml routes to the Deployment in app.yaml.
    assert!(
        lb["message"].as_str().unwrap().contains("Deployment/api"),
        "{lb}"
    );
    assert_eq!(lb["location"]["file"], fixtures("scan/service.yaml"));
    assert_eq!(lb["location"]["line"], 1);
    // The binding comes from a JSON List in a subfolder; the subject's location is the
    // ServiceAccount's document, the second of app.yaml.
    let admin = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "rbac-cluster-admin")
        .unwrap();
    assert!(
        admin["message"]
            .as_str()
            .unwrap()
            .contains("used by Deployment/api"),
        "{admin}"
    );
    assert_eq!(
        (
            admin["location"]["document"].as_u64(),
            admin["location"]["line"].as_u64()
        ),
        (Some(2), Some(19))
    );
}

#[test]
fn exit_codes_follow_fail_on() {
    let dir = fixtures("scan");
    assert_eq!(
        scan(&[&dir], None).status.code(),
        Some(0),
        "no --fail-on: report only"
    );
    assert_eq!(
        scan(&[&dir, "--fail-on", "critical"], None).status.code(),
        Some(1)
    );
    assert_eq!(
        scan(
            &[
                &fixtures("rules/hardening-pass.yaml"),
                "--fail-on",
                "medium"
            ],
            None
        )
        .status
        .code(),
        Some(0)
    );
    let out = scan(&[&dir, "--fail-on", "severe"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown severity"),
        "{out:?}"
    );
}

#[test]
fn bad_input_is_named_and_the_rest_is_still_scanned() {
    let input = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nspec: {type: NodePort, selector: {a: b}, ports: [{port: 22}]}\n---\nkind: Deployment\nmetadata: {name: broken\n  spec: [\n";
    let out = scan(&["-", "--format", "json"], Some(input));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("-: document 2 (line 6): not valid YAML"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rule_subjects(&report),
        vec![(
            "public-nodeport".to_owned(),
            "Service/default/ok".to_owned()
        )]
    );
    assert_eq!(report["errors"][0]["document"], 2);

    let missing = scan(&["/no/such/dir"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/no/such/dir: cannot read"),
        "{missing:?}"
    );
}

#[test]
fn a_policy_overrides_severities_and_suppresses_with_exceptions() {
    let policy = fixtures("scan-policy.yaml");
    let report = json(&[&fixtures("scan"), "--policy", &policy]);
    let findings = report["findings"].as_array().unwrap();
    let lb = findings
        .iter()
        .find(|f| f["rule"] == "public-loadbalancer")
        .unwrap();
    assert_eq!(lb["severity"], "Medium");
    let admin = findings
        .iter()
        .find(|f| f["rule"] == "rbac-cluster-admin")
        .unwrap();
    assert_eq!(
        admin["suppressedBy"],
        "migration job, removed in Q1; expires=2099-12-31"
    );
    // Suppressed findings do not fail the build.
    assert_eq!(
        scan(
            &[&fixtures("scan"), "--policy", &policy, "--fail-on", "high"],
            None
        )
        .status
        .code(),
        Some(0)
    );
    let bad = scan(
        &[
            &fixtures("scan"),
            "--policy",
            &fixtures("scan/service.yaml"),
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("holds no ScanPolicy"));
}

#[test]
fn annotation_exceptions_suppress_until_they_expire() {
    let report = json(&[&fixtures("scan")]);
    let findings = report["findings"].as_array().unwrap();
    let by_subject = |name: &str| {
        findings
            .iter()
            .find(|f| f["subject"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_subject("debug-ssh")["suppressedBy"],
        "break-glass access for the on-call team; expires=2099-01-31"
    );
    let expired = by_subject("old-ssh");
    assert!(expired.get("suppressedBy").is_none());
    assert!(
        expired["message"]
            .as_str()
            .unwrap()
            .contains("exception expired on 2020-01-31"),
        "{expired}"
    );
}

#[test]
fn sarif_output_is_valid_against_the_sarif_2_1_0_schema() {
    let out = scan(&[&fixtures("scan"), "--format", "sarif"], None);
    assert_eq!(out.status.code(), Some(0));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &sarif["runs"][0];
    assert_eq!(sarif["version"], "2.1.0");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for result in run["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        assert!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
                >= 1
        );
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &out.stdout).unwrap();
    let python = std::env::var("POSTURE_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/posture/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let validate = Command::new(&python)
        .arg(fixtures("../tools/validate_sarif.py"))
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("{python}: {e}; run `make pyenv` to install the SARIF schema validator")
        });
    assert!(
        validate.status.success(),
        "SARIF not valid against its schema:\n{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
}

#[test]
fn table_groups_by_subject_and_help_has_examples() {
    let out = scan(&[&fixtures("scan"), "--color", "never"], None);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Service shop/api-public"), "{table}");
    assert!(table.contains("fix: "), "{table}");
    let summary = table.lines().last().unwrap();
    assert!(
        summary.contains("1 critical") && summary.ends_with("1 suppressed by exceptions"),
        "{table}"
    );
    let help = Command::new(POSTURE)
        .args(["scan", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .contains("helm template my-release ./chart | posture scan -")
    );
}

#[test]
fn aws_authorization_details_and_snapshots_correlate_with_manifests() {
    // Raw GetAccountAuthorizationDetails output, documents URL-encoded as the API
    // returns them: the IRSA-mapped ServiceAccount inherits its role's risk.
    let report = json(&[
        &fixtures("scan-aws/irsa.yaml"),
        "--aws",
        &fixtures("aws/authorization-details.json"),
    ]);
    let found = rule_subjects(&report);
    let has = |rule: &str, id: &str| found.iter().any(|(r, s)| r == rule && s == id);
    assert!(
        has("aws-irsa-privileged-role", "ServiceAccount/shop/builder"),
        "{found:?}"
    );
    assert!(
        has("aws-iam-admin", "arn:aws:iam::123456789012:role/builder"),
        "{found:?}"
    );
    assert!(
        has(
            "aws-iam-privilege-escalation",
            "arn:aws:iam::123456789012:user/ci"
        ),
        "{found:?}"
    );
    let irsa = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "aws-irsa-privileged-role")
        .unwrap();
    assert_eq!(irsa["severity"], "Critical");
    assert!(
        irsa["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "HighlyPermissiveRole")
    );
    let admin = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "aws-iam-admin")
        .unwrap();
    assert_eq!(admin["subject"]["name"], "builder");
    assert_eq!(
        admin["location"]["file"],
        fixtures("aws/authorization-details.json")
    );

    // A snapshot: cloud configuration rules too, exit 1 with --fail-on.
    let out = scan(
        &[
            "--aws",
            &fixtures("aws/cloud-fail.json"),
            "--fail-on",
            "critical",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "aws-sg-open-to-internet",
        "aws-s3-public-bucket",
        "aws-ec2-public-admin-instance",
    ] {
        assert!(rules.contains(&rule), "{rule} missing from {rules:?}");
    }

    // A broken file is named, exit 2, and the rest is still scanned.
    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        broken.path(),
        r#"{"schema": "posture.dev/aws-snapshot/v1", "accounts": [{"accou"#,
    )
    .unwrap();
    let out = scan(
        &[
            &fixtures("scan-aws/irsa.yaml"),
            "--aws",
            broken.path().to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(broken.path().to_str().unwrap()) && stderr.contains("EOF"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["findings"].as_array().unwrap().is_empty());
}
