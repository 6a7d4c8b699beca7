//! `--format sarif`: SARIF 2.1.0 for code-scanning uploads. Every catalog rule is
//! described in `tool.driver.rules`; each result points at the file and line of the
//! document that holds its subject.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::Reported;
use crate::api::Severity;
use crate::collect::manifests::InputError;
use crate::rules::{Engine, RuleMeta};

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The number GitHub code scanning reads to rank security results.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

// The SARIF document, as far as we fill it. Structs rather than a `serde_json::Value`
// tree so the report streams into the writer without a copy of every result.

#[derive(Serialize)]
struct Log<R: Serialize> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<R>; 1],
}

#[derive(Serialize)]
struct Run<R: Serialize> {
    tool: Tool,
    invocations: [Invocation; 1],
    results: R,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    information_uri: &'static str,
    rules: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    tool_execution_notifications: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Text,
    partial_fingerprints: Fingerprints,
    properties: ResultProperties,
    #[serde(skip_serializing_if = "Option::is_none")]
    locations: Option<[Location<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressions: Option<[Suppression<'a>; 1]>,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Fingerprints {
    #[serde(rename = "postureFinding/v1")]
    posture_finding: String,
}

#[derive(Serialize)]
struct ResultProperties {
    severity: Severity,
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation,
    logical_locations: [LogicalLocation<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
}

#[derive(Serialize)]
struct LogicalLocation<'a> {
    name: String,
    kind: &'a str,
}

#[derive(Serialize)]
struct Suppression<'a> {
    kind: &'static str,
    justification: &'a str,
}

fn rule_descriptor(m: &RuleMeta) -> Value {
    let mut tags: Vec<String> = vec!["security".into(), m.category.to_string()];
    tags.extend(m.tags.iter().map(|t| t.to_string()));
    json!({
        "id": m.id,
        "name": m.id,
        "shortDescription": {"text": m.title},
        "fullDescription": {"text": format!("{} ({})", m.title, m.category)},
        "help": {"text": m.remediation, "markdown": format!("**Fix:** {}", m.remediation)},
        "defaultConfiguration": {"level": level(m.severity)},
        "properties": {
            "tags": tags,
            "security-severity": security_severity(m.severity),
            "frameworks": m.frameworks.iter().map(|(f, c)| format!("{f} {c}")).collect::<Vec<_>>(),
        },
    })
}

/// One result: the finding, its rule, where it is and whether an exception covers it.
fn result<'a>(f: &'a Reported<'a>, index: &HashMap<&str, usize>) -> SarifResult<'a> {
    SarifResult {
        rule_id: f.meta.id,
        rule_index: index.get(f.meta.id).copied().unwrap_or(0),
        level: level(f.severity),
        message: Text {
            text: format!("{} ({} {})", f.message, f.subject.kind, f.subject),
        },
        partial_fingerprints: Fingerprints {
            posture_finding: f.fingerprint(),
        },
        properties: ResultProperties {
            severity: f.severity,
            security_severity: security_severity(f.severity),
        },
        locations: f.location.map(|loc| {
            [Location {
                physical_location: PhysicalLocation {
                    artifact_location: ArtifactLocation {
                        uri: uri(&loc.file),
                    },
                    region: Region {
                        start_line: loc.line,
                    },
                },
                logical_locations: [LogicalLocation {
                    name: f.subject.to_string(),
                    kind: "resource",
                }],
            }]
        }),
        suppressions: f.suppressed_by.map(|reason| {
            [Suppression {
                kind: "inSource",
                justification: reason,
            }]
        }),
    }
}

pub fn write(
    out: &mut impl Write,
    engine: &Engine,
    findings: &[Reported<'_>],
    errors: &[InputError],
) -> std::io::Result<()> {
    let index: HashMap<&str, usize> = engine
        .rules()
        .iter()
        .enumerate()
        .map(|(i, r)| (r.meta.id, i))
        .collect();
    // Written result by result (see `Streamed`).
    let results = super::Streamed(findings, |f| result(f, &index));
    let notifications = errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": e.to_string()},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(&e.file)}, "region": {"startLine": e.line.unwrap_or(1)}}}],
            })
        })
        .collect();
    let log = Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "posture",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: "https://posture.dev",
                    rules: engine
                        .rules()
                        .iter()
                        .map(|r| rule_descriptor(&r.meta))
                        .collect(),
                },
            },
            invocations: [Invocation {
                execution_successful: errors.is_empty(),
                tool_execution_notifications: notifications,
            }],
            results,
        }],
    };
    serde_json::to_writer_pretty(&mut *out, &log)?;
    out.write_all(b"\n")
}

/// A relative path as a URI reference (`-` for stdin becomes `stdin`).
fn uri(file: &str) -> String {
    if file == "-" {
        return "stdin".into();
    }
    file.trim_start_matches("./").replace(' ', "%20")
}
