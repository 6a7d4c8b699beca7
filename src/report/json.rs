//! `--format json`: `{"findings":[{"rule","title","severity","category","subject":
//! {"kind","namespace","name","id"},"message","tags","remediation"}]}` as DESIGN.md
//! states it, plus the location and input errors.

use serde_json::{Value, json};

use super::Reported;
use crate::collect::manifests::InputError;

pub fn render(findings: &[Reported<'_>], errors: &[InputError]) -> String {
    let findings: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut v = json!({
                "rule": f.meta.id,
                "title": f.meta.title,
                "severity": f.severity,
                "category": f.category,
                "subject": {
                    "kind": f.subject.kind.as_str(),
                    "namespace": f.subject.namespace(),
                    "name": f.subject.name,
                    "id": f.subject.to_string(),
                },
                "message": f.message,
                "tags": f.meta.tags,
                "remediation": f.meta.remediation,
                "fingerprint": f.fingerprint,
            });
            if let Some(reason) = &f.suppressed_by {
                v["suppressedBy"] = json!(reason);
            }
            if let Some(loc) = &f.location {
                v["location"] =
                    json!({"file": loc.file, "document": loc.document, "line": loc.line});
            }
            v
        })
        .collect();
    let errors: Vec<Value> = errors
        .iter()
        .map(
            |e| json!({"file": e.file, "document": e.document, "line": e.line, "reason": e.reason}),
        )
        .collect();
    let mut out = serde_json::to_string_pretty(&json!({"findings": findings, "errors": errors}))
        .expect("JSON");
    out.push('\n');
    out
}
