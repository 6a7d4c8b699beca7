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
    pub suppressed_by: Option<&'a str>,
    pub location: Option<&'a Source>,
}

impl Reported<'_> {
    /// The finding's stable identity (computed when written: tens of thousands of
    /// 64-character strings need not live at once).
    pub fn fingerprint(&self) -> String {
        fingerprint(self.meta.id, self.subject)
    }
}

/// A JSON array written item by item as the report is serialised: the report of tens
/// of thousands of findings never exists as a second list in memory.
pub(crate) struct Streamed<'a, T, F>(pub &'a [T], pub F);

impl<'a, T, U, F> serde::Serialize for Streamed<'a, T, F>
where
    U: serde::Serialize,
    F: Fn(&'a T) -> U,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(&self.1))
    }
}

/// Findings in report order: worst first, then by subject and rule.
pub fn collect<'a>(
    engine: &'a Engine,
    findings: impl Iterator<Item = &'a RawFinding>,
    locate: impl Fn(&RawFinding) -> Option<&'a Source>,
) -> Vec<Reported<'a>> {
    // Counted first so the list is allocated once, at its size.
    let findings: Vec<&RawFinding> = findings.collect();
    let mut out: Vec<Reported> = Vec::with_capacity(findings.len());
    out.extend(findings.into_iter().filter_map(|f| {
        let rule = engine.rule(f.rule)?;
        Some(Reported {
            meta: &rule.meta,
            subject: &f.subject,
            severity: f.severity,
            category: rule.meta.category,
            message: &f.hit.message,
            suppressed_by: f.suppressed_by.as_deref(),
            location: locate(f),
        })
    }));
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.subject.cmp(b.subject))
            .then_with(|| a.meta.id.cmp(b.meta.id))
    });
    out
}
