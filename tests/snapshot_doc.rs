//! Keeps `docs/aws-snapshot.md` honest.
//!
//! - Every JSON key of the AWS snapshot fixtures appears on the page as `` `key` ``. Each
//!   fixture is walked twice: as written, and as posture writes it back after reading it
//!   (so fields the fixtures leave to their defaults, such as `tags` or `isDefault`, are
//!   checked too). The free-form parts of a snapshot (policy documents, trust policies,
//!   instance tags, the region names that key `regional`) are not schema and are skipped.
//! - The page names the schema id this posture reads.
//! - The page's complete example (a ```json block carrying the schema id) is a snapshot
//!   posture accepts.

use std::collections::BTreeMap;

use posture::inventory::cloud::snapshot::{AwsSnapshot, SCHEMA};
use serde_json::Value;

/// The fixtures that are posture snapshots (`authorization-details.json` is the other
/// accepted input, documented in prose).
const FIXTURES: [&str; 4] = [
    "cloud-fail.json",
    "cloud-pass.json",
    "iam-fail.json",
    "iam-pass.json",
];

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"))
}

fn page() -> String {
    read("docs/aws-snapshot.md")
}

/// Values whose contents are data rather than schema: the walk does not enter them.
/// `path` is the chain of keys from the root (array positions left out).
fn contents_are_free_form(path: &[String]) -> bool {
    const FREE_FORM: [&[&str]; 5] = [
        // IamRole.trustPolicy: the decoded AssumeRolePolicyDocument.
        &["trustPolicy"],
        // InlinePolicy.document (users, groups, roles).
        &["inlinePolicies", "document"],
        // ManagedPolicy.document: the default version's document.
        &["policies", "document"],
        // Bucket.policy: a section whose data is the decoded bucket policy.
        &["policy", "data"],
        // Instance.tags: tag key -> value.
        &["tags"],
    ];
    FREE_FORM.iter().any(|suffix| {
        path.len() >= suffix.len()
            && path[path.len() - suffix.len()..]
                .iter()
                .zip(suffix.iter())
                .all(|(a, b)| a == b)
    })
}

/// Objects whose keys are data (region names) but whose values are schema.
fn keys_are_free_form(path: &[String]) -> bool {
    path.last().is_some_and(|k| k == "regional")
}

/// Every schema key in `value`, with one path where it was seen.
fn walk(value: &Value, path: &mut Vec<String>, keys: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            let data_keys = keys_are_free_form(path);
            for (key, child) in map {
                let segment = if data_keys {
                    "<region>".to_owned()
                } else {
                    keys.entry(key.clone())
                        .or_insert_with(|| format!("{}.{key}", path.join(".")));
                    key.clone()
                };
                path.push(segment);
                if !contents_are_free_form(path) {
                    walk(child, path, keys);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path, keys);
            }
        }
        _ => {}
    }
}

/// The schema keys of a fixture, as written and as posture writes it back.
fn fixture_keys(name: &str) -> BTreeMap<String, String> {
    let text = read(&format!("tests/fixtures/aws/{name}"));
    let snapshot = AwsSnapshot::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("{name} is not a valid snapshot: {e}"));
    let mut keys = BTreeMap::new();
    let as_written: Value = serde_json::from_str(&text).unwrap();
    walk(&as_written, &mut Vec::new(), &mut keys);
    let written_back = serde_json::to_value(&snapshot).unwrap();
    walk(&written_back, &mut Vec::new(), &mut keys);
    keys
}

#[test]
fn every_snapshot_key_is_documented() {
    let page = page();
    let mut seen = BTreeMap::new();
    for name in FIXTURES {
        for (key, path) in fixture_keys(name) {
            seen.entry(key).or_insert(format!("{path} in {name}"));
        }
    }
    // The walk reached the depths of the schema, and stopped at the free-form parts.
    for deep in [
        "podIdentityAssociations",
        "serviceAccount",
        "blockPublicAcls",
        "ipv4Ranges",
        "httpTokens",
        "status",
    ] {
        assert!(
            seen.contains_key(deep),
            "the walk never saw `{deep}`: {:?}",
            seen.keys().collect::<Vec<_>>()
        );
    }
    for free in ["Statement", "Effect", "eu-west-1"] {
        assert!(
            !seen.contains_key(free),
            "`{free}` is free-form data, not a snapshot field"
        );
    }
    let missing: Vec<String> = seen
        .iter()
        .filter(|(key, _)| !page.contains(&format!("`{key}`")))
        .map(|(key, at)| format!("`{key}` (e.g. at {at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/aws-snapshot.md does not document these snapshot keys:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_page_names_the_schema_and_its_example_is_accepted() {
    let page = page();
    assert!(
        page.contains(&format!("`{SCHEMA}`")),
        "docs/aws-snapshot.md does not name the schema {SCHEMA}"
    );
    let mut examples = 0;
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```json" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let block = block.join("\n");
        if !block.trim_start().starts_with('{') || !block.contains(SCHEMA) {
            continue;
        }
        examples += 1;
        if let Err(e) = AwsSnapshot::parse(block.as_bytes()) {
            panic!("the example of docs/aws-snapshot.md is refused: {e}\n{block}");
        }
    }
    assert!(
        examples > 0,
        "docs/aws-snapshot.md has no complete example (a ```json block with {SCHEMA})"
    );
}
