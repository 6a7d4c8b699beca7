//! `--format sarif`: SARIF 2.1.0 for code-scanning uploads. Every catalog rule is
//! described in `tool.driver.rules`; each result points at the file and line of the
//! document that holds its subject.

use serde_json::{Value, json};

use super::Reported;
use crate::api::Severity;
use crate::collect::manifests::InputError;
use crate::rules::Engine;

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

pub fn render(engine: &Engine, findings: &[Reported<'_>], errors: &[InputError]) -> String {
    let rules: Vec<Value> = engine
        .rules()
        .iter()
        .map(|r| {
            let m = &r.meta;
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
        })
        .collect();
    let index = |id: &str| {
        engine
            .rules()
            .iter()
            .position(|r| r.meta.id == id)
            .unwrap_or(0)
    };
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.meta.id,
                "ruleIndex": index(f.meta.id),
                "level": level(f.severity),
                "message": {"text": format!("{} ({} {})", f.message, f.subject.kind, f.subject)},
                "partialFingerprints": {"postureFinding/v1": f.fingerprint},
                "properties": {"severity": f.severity, "security-severity": security_severity(f.severity)},
            });
            if let Some(loc) = &f.location {
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&loc.file)},
                        "region": {"startLine": loc.line},
                    },
                    "logicalLocations": [{"name": f.subject.to_string(), "kind": "resource"}],
                }]);
            }
            if let Some(reason) = &f.suppressed_by {
                result["suppressions"] = json!([{"kind": "inSource", "justification": reason}]);
            }
            result
        })
        .collect();
    let notifications: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": e.to_string()},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(&e.file)}, "region": {"startLine": e.line.unwrap_or(1)}}}],
            })
        })
        .collect();
    let sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "posture",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://posture.dev",
                "rules": rules,
            }},
            "invocations": [{"executionSuccessful": errors.is_empty(), "toolExecutionNotifications": notifications}],
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&sarif).expect("JSON");
    out.push('\n');
    out
}

/// A relative path as a URI reference (`-` for stdin becomes `stdin`).
fn uri(file: &str) -> String {
    if file == "-" {
        return "stdin".into();
    }
    file.trim_start_matches("./").replace(' ', "%20")
}
