//! Output for people and pipelines: a table, JSON (the contract in DESIGN.md) and
//! SARIF 2.1.0.

pub mod catalog;
pub mod json;
pub mod sarif;
pub mod table;

use crate::api::{Category, Severity};
use crate::collect::manifests::Source;
use crate::inventory::ObjectKey;
use crate::rules::{Engine, RawFinding, RuleMeta, fingerprint};

/// A finding with everything a report shows, borrowed from the evaluation so a report
/// of tens of thousands of findings costs little more than the findings themselves.
#[derive(Debug, Clone)]
pub struct Reported<'a> {
    pub meta: &'a RuleMeta,
    pub subject: &'a ObjectKey,
    pub severity: Severity,
    pub category: Category,
    pub message: &'a str,
    pub fingerprint: String,
    pub suppressed_by: Option<&'a str>,
    pub location: Option<&'a Source>,
}

/// Findings in report order: worst first, then by subject and rule.
pub fn collect<'a>(
    engine: &'a Engine,
    findings: impl Iterator<Item = &'a RawFinding>,
    locate: impl Fn(&RawFinding) -> Option<&'a Source>,
) -> Vec<Reported<'a>> {
    let mut out: Vec<Reported> = findings
        .filter_map(|f| {
            let rule = engine.rule(f.rule)?;
            Some(Reported {
                meta: &rule.meta,
                subject: &f.subject,
                severity: f.severity,
                category: rule.meta.category,
                message: &f.hit.message,
                fingerprint: fingerprint(f.rule, &f.subject),
                suppressed_by: f.suppressed_by.as_deref(),
                location: locate(f),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.subject.cmp(b.subject))
            .then_with(|| a.meta.id.cmp(b.meta.id))
    });
    out
}
