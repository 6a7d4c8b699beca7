//! `--format table`: findings grouped by subject, worst first, coloured on a terminal.

use std::collections::HashMap;
use std::io::Write;

use super::Reported;
use crate::api::Severity;
use crate::collect::manifests::InputError;
use crate::inventory::ObjectKey;

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn severity_code(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

pub fn write(
    out: &mut impl Write,
    findings: &[Reported<'_>],
    errors: &[InputError],
    colour: bool,
) -> std::io::Result<()> {
    // Subjects in the order of their worst finding; one pass, not one per subject.
    let mut order: Vec<&ObjectKey> = Vec::new();
    let mut groups: HashMap<&ObjectKey, Vec<&Reported<'_>>> = HashMap::new();
    for f in findings {
        let group = groups.entry(f.subject).or_default();
        if group.is_empty() {
            order.push(f.subject);
        }
        group.push(f);
    }
    for subject in order {
        let group = &groups[subject];
        let location = group[0]
            .location
            .as_ref()
            .map(|l| format!("  {}:{}", l.file, l.line))
            .unwrap_or_default();
        let title = format!(
            "{} {}/{}",
            subject.kind,
            subject.namespace().unwrap_or("-"),
            subject.name
        );
        writeln!(
            out,
            "{}{}",
            paint(&title, "1", colour),
            paint(&location, "2", colour)
        )?;
        for f in group.iter().copied() {
            let severity = format!("{:<8}", f.severity.as_str().to_uppercase());
            let suppressed = match &f.suppressed_by {
                Some(reason) => paint(&format!(" [suppressed: {reason}]"), "2", colour),
                None => String::new(),
            };
            writeln!(
                out,
                "  {} {:<32} {}{suppressed}",
                paint(&severity, severity_code(f.severity), colour),
                f.meta.id,
                f.message
            )?;
            writeln!(
                out,
                "  {:<8} {:<32} {}",
                "",
                "",
                paint(&format!("fix: {}", f.meta.remediation), "2", colour)
            )?;
        }
        writeln!(out)?;
    }
    let open: Vec<&Reported<'_>> = findings
        .iter()
        .filter(|f| f.suppressed_by.is_none())
        .collect();
    let mut counts = Vec::new();
    for severity in Severity::ALL {
        let n = open.iter().filter(|f| f.severity == severity).count();
        if n > 0 {
            counts.push(format!("{n} {}", severity.as_str().to_lowercase()));
        }
    }
    let suppressed = findings.len() - open.len();
    let mut summary = if open.is_empty() {
        "no findings".to_owned()
    } else {
        format!("{} findings ({})", open.len(), counts.join(", "))
    };
    if suppressed > 0 {
        summary.push_str(&format!(", {suppressed} suppressed by exceptions"));
    }
    if !errors.is_empty() {
        summary.push_str(&format!(", {} input error(s): see above", errors.len()));
    }
    writeln!(out, "{summary}")
}
