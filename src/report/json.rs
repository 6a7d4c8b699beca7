//! `--format json`: `{"findings":[{"rule","title","severity","category","subject":
//! {"kind","namespace","name","id"},"message","tags","remediation"}]}` as DESIGN.md
//! states it, plus the location and input errors. Serialized straight into the writer:
//! no intermediate JSON tree, so memory stays flat however many findings there are.

use std::io::Write;

use serde::Serialize;

use super::Reported;
use crate::api::{Category, Severity};
use crate::collect::manifests::InputError;

#[derive(Serialize)]
struct Document<'a, F: Serialize> {
    findings: F,
    errors: Vec<Error<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding<'a> {
    rule: &'a str,
    title: &'a str,
    severity: Severity,
    category: Category,
    subject: Subject<'a>,
    message: &'a str,
    tags: &'a [&'a str],
    remediation: &'a str,
    fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location<'a>>,
}

#[derive(Serialize)]
struct Subject<'a> {
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    id: String,
}

#[derive(Serialize)]
struct Location<'a> {
    file: &'a str,
    document: usize,
    line: usize,
}

#[derive(Serialize)]
struct Error<'a> {
    file: &'a str,
    document: Option<usize>,
    line: Option<usize>,
    reason: &'a str,
}

/// One finding as the JSON contract shows it.
fn finding<'a>(f: &'a Reported<'a>) -> Finding<'a> {
    Finding {
        rule: f.meta.id,
        title: f.meta.title,
        severity: f.severity,
        category: f.category,
        subject: match f.subject.kind.is_cloud() {
            // Cloud subjects: a readable name, and the ARN as id.
            true => Subject {
                kind: f.subject.kind.as_str(),
                namespace: None,
                name: crate::inventory::cloud::short_name(&f.subject.name),
                id: f.subject.name.clone(),
            },
            false => Subject {
                kind: f.subject.kind.as_str(),
                namespace: f.subject.namespace(),
                name: &f.subject.name,
                id: f.subject.to_string(),
            },
        },
        message: f.message,
        tags: f.meta.tags,
        remediation: f.meta.remediation,
        fingerprint: f.fingerprint(),
        suppressed_by: f.suppressed_by,
        location: f.location.map(|l| Location {
            file: &l.file,
            document: l.document,
            line: l.line,
        }),
    }
}

pub fn write(
    out: &mut impl Write,
    findings: &[Reported<'_>],
    errors: &[InputError],
) -> std::io::Result<()> {
    let document = Document {
        findings: super::Streamed(findings, |f| finding(f)),
        errors: errors
            .iter()
            .map(|e| Error {
                file: &e.file,
                document: e.document,
                line: e.line,
                reason: &e.reason,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    out.write_all(b"\n")
}
