//! `posture collect aws` against moto in server mode (`moto[server]` from PyPI, in the
//! test venv): the demo account of `examples/aws/seed.py` is collected through the real
//! SDK (pagination, credentials, role assumption), the snapshot is checked field by
//! field, and `posture scan --aws` finds the account's risks and correlates the IRSA
//! role with the ServiceAccount. A denied service is recorded as "not collected".

use std::path::Path;
use std::process::{Command, Output};

use posture::inventory::cloud::snapshot::{AwsSnapshot, Section};
use posture_e2e::binaries::{posture_binary, repo_root};
use posture_e2e::moto::Moto;
use serde_json::Value;

fn repo(path: &str) -> String {
    repo_root().join(path).display().to_string()
}

/// `posture collect aws ARGS` with only the given keys and moto's endpoint.
fn collect(moto: &Moto, key: (&str, &str), args: &[&str]) -> Output {
    Command::new(posture_binary().unwrap())
        .args(["collect", "aws"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .envs(moto.env())
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .output()
        .unwrap()
}

fn read(path: &Path) -> AwsSnapshot {
    AwsSnapshot::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn scan(args: &[&str]) -> Value {
    let out = Command::new(posture_binary().unwrap())
        .args(["scan", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn collects_every_service_of_the_demo_account_and_the_rules_find_its_risks() {
    let moto = Moto::start().unwrap();
    let seeded = moto.seed(&[], 150).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    let out = collect(
        &moto,
        ("testing", "testing"),
        &["--region", "eu-west-1", "--output", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("collecting") && stderr.contains("IAM"),
        "progress is shown: {stderr}"
    );

    let snapshot = read(&file);
    let account = &snapshot.accounts[0];
    assert_eq!(account.account_id, "123456789012");
    let iam = account.iam.data().expect("IAM collected");
    let users: Vec<&str> = iam.users.iter().map(|u| u.name.as_str()).collect();
    for user in ["alice", "ci-deployer", "auditor"] {
        assert!(users.contains(&user), "{users:?}");
    }
    assert_eq!(
        iam.roles
            .iter()
            .filter(|r| r.name.starts_with("batch-"))
            .count(),
        150,
        "every page of roles"
    );
    let builder = iam.roles.iter().find(|r| r.name == "shop-builder").unwrap();
    assert!(
        builder.trust_policy["Statement"][0]["Principal"]["Federated"].is_string(),
        "trust policy decoded: {}",
        builder.trust_policy
    );
    assert_eq!(
        builder.attached_policies,
        vec!["arn:aws:iam::123456789012:policy/Administrator"]
    );
    let admin = iam
        .policies
        .iter()
        .find(|p| p.name == "Administrator")
        .unwrap();
    assert_eq!(admin.document["Statement"][0]["Action"], "*");
    let ops = iam.roles.iter().find(|r| r.name == "ops-node").unwrap();
    assert_eq!(
        ops.instance_profiles,
        vec!["arn:aws:iam::123456789012:instance-profile/ops-node"]
    );
    assert_eq!(
        iam.users.iter().find(|u| u.name == "alice").unwrap().groups,
        vec!["admins"]
    );

    let region = &account.regional["eu-west-1"];
    let instance = region
        .instances
        .data()
        .unwrap()
        .iter()
        .find(|i| i.id == seeded["instance"])
        .unwrap();
    assert!(instance.public_ip.is_some(), "{instance:?}");
    assert_eq!(instance.http_tokens.as_deref(), Some("optional"));
    assert!(
        instance
            .instance_profile
            .as_deref()
            .unwrap()
            .ends_with("instance-profile/ops-node")
    );
    let open = region
        .security_groups
        .data()
        .unwrap()
        .iter()
        .find(|g| g.name == "wide-open")
        .unwrap();
    assert_eq!(open.ingress[0].protocol, "-1");
    assert_eq!(open.ingress[0].ipv4_ranges, vec!["0.0.0.0/0"]);
    assert!(
        region
            .volumes
            .data()
            .unwrap()
            .iter()
            .any(|v| v.id == seeded["volume"] && !v.encrypted)
    );
    assert!(!region.vpcs.data().unwrap().is_empty() && !region.subnets.data().unwrap().is_empty());
    assert!(!region.route_tables.data().unwrap().is_empty());
    let db = region
        .db_instances
        .data()
        .unwrap()
        .iter()
        .find(|d| d.id == "orders")
        .unwrap();
    assert!(db.publicly_accessible && !db.storage_encrypted);
    let cluster = &region.eks_clusters.data().unwrap()[0];
    assert_eq!(cluster.name, "demo");
    // Pod Identity is collected, or recorded with the reason: never an empty guess.
    if let Section::NotCollected { error } = &cluster.pod_identity_associations {
        assert!(
            error.starts_with("eks:ListPodIdentityAssociations"),
            "{error}"
        );
    }

    let buckets = account.s3.data().expect("S3 collected");
    let public = buckets
        .iter()
        .find(|b| b.name == "demo-public-assets")
        .unwrap();
    assert_eq!(public.region.as_deref(), Some("eu-west-1"));
    assert!(
        public
            .acl
            .data()
            .unwrap()
            .iter()
            .any(|g| g.grantee.ends_with("/AllUsers")),
        "{public:?}"
    );
    let private = buckets
        .iter()
        .find(|b| b.name == "demo-private-assets")
        .unwrap();
    assert!(
        private
            .public_access_block
            .data()
            .unwrap()
            .as_ref()
            .unwrap()
            .all()
    );
    assert_eq!(
        private.encryption.data().unwrap(),
        &vec!["aws:kms".to_owned()]
    );
    assert_eq!(
        private.policy.data(),
        Some(&None),
        "no policy is data, not an error"
    );

    // The same engine finds the account's risks and ties the IRSA role to the cluster.
    let report = scan(&[
        &repo("examples/aws/workloads.yaml"),
        "--aws",
        file.to_str().unwrap(),
    ]);
    let findings = report["findings"].as_array().unwrap();
    let has = |rule: &str, name: &str| {
        findings
            .iter()
            .any(|f| f["rule"] == rule && f["subject"]["name"] == name)
    };
    for (rule, name) in [
        ("aws-iam-admin", "alice"),
        ("aws-iam-admin", "admins"),
        ("aws-iam-admin", "shop-builder"),
        ("aws-iam-privilege-escalation", "ci-deployer"),
        ("aws-iam-role-external-trust", "vendor-access"),
        (
            "aws-sg-open-to-internet",
            seeded["securityGroups"][0].as_str().unwrap(),
        ),
        (
            "aws-sg-open-to-internet",
            seeded["securityGroups"][1].as_str().unwrap(),
        ),
        ("aws-s3-public-bucket", "demo-public-assets"),
        ("aws-rds-public", "orders"),
        ("aws-rds-unencrypted", "orders"),
        ("aws-ebs-unencrypted", seeded["volume"].as_str().unwrap()),
        ("aws-ec2-imdsv1", seeded["instance"].as_str().unwrap()),
        (
            "aws-ec2-public-admin-instance",
            seeded["instance"].as_str().unwrap(),
        ),
        ("aws-irsa-privileged-role", "builder"),
    ] {
        assert!(has(rule, name), "{rule} on {name} missing");
    }
    assert!(
        !has("aws-irsa-privileged-role", "web"),
        "shop/web's role is least privilege"
    );
    assert!(!has("aws-iam-privilege-escalation", "auditor"));
    assert!(!has("aws-s3-public-bucket", "demo-private-assets"));
}

#[test]
fn a_denied_service_is_recorded_as_not_collected_and_the_rest_is_kept() {
    let moto = Moto::start().unwrap();
    let seeded = moto.seed(&["--restricted-collector"], 0).unwrap();
    let key = &seeded["collector"];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    let out = collect(
        &moto,
        (
            key["accessKeyId"].as_str().unwrap(),
            key["secretAccessKey"].as_str().unwrap(),
        ),
        &["--region", "eu-west-1", "--output", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not be collected"), "{stderr}");
    let snapshot = read(&file);
    let account = &snapshot.accounts[0];
    let error = account.s3.error().expect("S3 is marked not collected");
    assert!(error.starts_with("s3:ListBuckets: AccessDenied"), "{error}");
    assert!(
        account.iam.data().is_some_and(|d| !d.users.is_empty()),
        "IAM was allowed"
    );
    assert!(account.regional["eu-west-1"].instances.data().is_some());
}

#[test]
fn roles_are_assumed_per_account_and_a_wrong_account_is_refused() {
    let moto = Moto::start().unwrap();
    moto.seed(&[], 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    let role = "123456789012=arn:aws:iam::123456789012:role/vendor-access,external-id=k8s-prod";
    let out = collect(
        &moto,
        ("testing", "testing"),
        &["--account", role, "--output", file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot = read(&file);
    let caller = snapshot.accounts[0].caller_arn.as_deref().unwrap();
    assert!(
        caller.contains("assumed-role/vendor-access/posture-collector"),
        "{caller}"
    );

    let out = collect(
        &moto,
        ("testing", "testing"),
        &[
            "--account",
            "999999999999",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belong to account 123456789012"),
        "{stderr}"
    );
    // The earlier snapshot is untouched.
    assert_eq!(read(&file).accounts[0].caller_arn.as_deref(), Some(caller));
}
