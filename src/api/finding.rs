//! `Finding`: one rule matched on one subject. Named by a stable fingerprint so a rescan
//! rewrites the same object instead of adding one.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeated
// `type_ = ...` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Category, Severity};

/// One rule matched on one subject (a Kubernetes object or a cloud resource).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "posture.dev",
    version = "v1alpha1",
    kind = "Finding",
    namespaced,
    shortname = "fnd",
    status = "FindingStatus",
    doc = "A security finding: one rule matched on one subject. Written by the posture operator.",
    printcolumn(name = "Severity", type_ = "string", json_path = ".spec.severity"),
    printcolumn(name = "Rule", type_ = "string", json_path = ".spec.rule"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject.ref"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FindingSpec {
    /// Rule id, as listed by `posture rules`.
    pub rule: String,
    /// The rule's title.
    pub title: String,
    pub severity: Severity,
    pub category: Category,
    /// What the finding is about.
    pub subject: SubjectRef,
    /// What is wrong with this subject, in a sentence.
    pub message: String,
    /// Facts behind the finding, bounded in number and length; details stay in the
    /// inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub evidence: Vec<Evidence>,
    /// How to fix it.
    pub remediation: String,
    /// Tags this finding puts on the affected workloads (e.g. isPublic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Workloads that carry the tags (the subject itself when it is a workload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub affected: Vec<SubjectRef>,
    /// Framework controls the rule maps to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<FrameworkRef>,
    /// Stable hash of rule and subject; the object name ends with its first 16 characters.
    pub fingerprint: String,
    /// ScanPolicy (namespace/name) that produced the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A Kubernetes object, or a cloud resource by its id (an ARN).
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Cloud resource id, e.g. an IAM role ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// `Kind/name` (or the cloud id), for display.
    #[serde(rename = "ref")]
    pub display: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Evidence {
    pub key: String,
    #[schemars(length(max = 512))]
    pub value: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameworkRef {
    /// e.g. "CIS Kubernetes Benchmark", "NIST CSF 2.0", "NSA/CISA Kubernetes Hardening".
    pub framework: String,
    /// The control or section, e.g. "5.1.1", "PR.AA-05".
    pub control: String,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum FindingState {
    #[default]
    Open,
    Resolved,
    Suppressed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FindingStatus {
    pub state: FindingState,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The exception that suppresses the finding (reason and expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
}
