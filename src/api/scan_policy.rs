//! `ScanPolicy`: what posture scans, which rules apply, and what it does with findings.
//! Every field is optional; `spec: {}` covers the whole cluster with every rule on.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeated
// `type_ = ...` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Category, Severity};

/// What posture scans, which rules apply, how exceptions and admission work.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "posture.dev",
    version = "v1alpha1",
    kind = "ScanPolicy",
    namespaced,
    shortname = "sp",
    status = "ScanPolicyStatus",
    doc = "What posture scans, which rules apply, and what happens to findings. spec: {} covers the whole cluster with every rule on.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Critical",
        type_ = "integer",
        json_path = ".status.counts.critical"
    ),
    printcolumn(name = "High", type_ = "integer", json_path = ".status.counts.high"),
    printcolumn(
        name = "Last Evaluated",
        type_ = "date",
        json_path = ".status.lastEvaluation"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicySpec {
    /// Which namespaces the policy covers. Unset: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Turn rules on and off and override their severities. Unset: every rule on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RuleSettings>,
    /// Accepted risks: findings matching an exception are kept with state Suppressed.
    /// Each needs a reason and an expiry date; an expired exception stops suppressing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub exceptions: Vec<Exception>,
    /// Labels and annotations on affected workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagging: Option<TaggingSettings>,
    /// How the validating webhook treats changes governed by this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionSettings>,
    /// Cloud accounts to collect from, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudSettings>,
    /// What happens to findings over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsSettings>,
}

/// Namespace scope. A namespace is covered when it is selected (by `namespaceSelector`,
/// or by name in `includeNamespaces`, or by both being unset) and not excluded.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Namespaces whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces covered by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512), inner(length(max = 63)))]
    pub include_namespaces: Vec<String>,
    /// Namespaces never covered, whatever else matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512), inner(length(max = 63)))]
    pub exclude_namespaces: Vec<String>,
}

/// Rules on and off, by id (`public-loadbalancer`) or category (`PublicExposure`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.enable) || !has(self.disable) || self.enable.all(r, !(r in self.disable))").message("a rule or category cannot be both enabled and disabled"))]
pub struct RuleSettings {
    /// When set, only these rules and categories run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub enable: Vec<String>,
    /// Rules and categories that never run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub disable: Vec<String>,
    /// A different severity for some rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub severity_overrides: Vec<SeverityOverride>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityOverride {
    /// Rule id, as listed by `posture rules`.
    #[schemars(length(min = 1, max = 64))]
    pub rule: String,
    pub severity: Severity,
}

/// An accepted risk.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// Rule id the exception applies to, or `*` for every rule.
    #[schemars(length(min = 1, max = 64))]
    pub rule: String,
    /// Which subjects: fields left out match anything; `name` may end in `*`.
    #[serde(default)]
    pub subject: SubjectMatch,
    /// Why the risk is accepted (shown on the Finding and in admission warnings).
    #[schemars(length(min = 1, max = 1024), pattern(r"\S"))]
    pub reason: String,
    /// Last day the exception holds, as YYYY-MM-DD (UTC).
    #[schemars(pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub expires: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectMatch {
    /// Kind, e.g. Deployment, ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    /// Name; a trailing `*` matches any suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaggingSettings {
    /// Label affected workloads `posture.dev/<tag>=true` and annotate them with
    /// `posture.dev/findings`. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for TaggingSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// What the validating webhook does with a change that introduces a finding.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionSettings {
    /// Enforce denies, Warn admits with a warning, Audit admits and records.
    #[serde(default)]
    pub mode: AdmissionMode,
    /// Categories whose new findings are acted on. Default: PublicExposure and
    /// OverPrivilegedIdentity.
    #[serde(default = "default_blocking_categories")]
    pub blocking_categories: Vec<Category>,
    /// Findings below this severity never block. Default High.
    #[serde(default = "default_minimum_severity")]
    pub minimum_severity: Severity,
    /// Findings that set one of these workload tags are acted on whatever their
    /// category. Default: Privileged (a container that can take over its node).
    #[serde(default = "default_blocking_tags")]
    pub blocking_tags: Vec<String>,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            mode: AdmissionMode::default(),
            blocking_categories: default_blocking_categories(),
            minimum_severity: default_minimum_severity(),
            blocking_tags: default_blocking_tags(),
        }
    }
}

fn default_blocking_categories() -> Vec<Category> {
    vec![Category::PublicExposure, Category::OverPrivilegedIdentity]
}

fn default_blocking_tags() -> Vec<String> {
    vec!["Privileged".to_owned()]
}

fn default_minimum_severity() -> Severity {
    Severity::High
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum AdmissionMode {
    #[default]
    Enforce,
    Warn,
    Audit,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsCloud>,
}

/// AWS collection, run as Jobs by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsCloud {
    /// Accounts to collect; empty means the account of the Job's own credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub accounts: Vec<AwsAccount>,
    /// Regions to collect (IAM is global). Default: the Job's configured region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 32)))]
    pub regions: Vec<String>,
    /// Cron schedule of the collector Job. Default: every 6 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^\S+( +\S+){4}$"))]
    pub schedule: Option<String>,
    /// ServiceAccount the Job runs as (carry the IRSA annotation here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Account ids trusted in role trust policies; other accounts are external.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), inner(pattern(r"^[0-9]{12}$")))]
    pub known_accounts: Vec<String>,
    /// The EKS cluster this is: only its Pod Identity associations map ServiceAccounts
    /// to IAM roles. Unset: associations of every collected cluster apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub eks_cluster_name: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsAccount {
    /// 12-digit account id.
    #[schemars(pattern(r"^[0-9]{12}$"))]
    pub id: String,
    /// Role to assume in that account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_arn: Option<String>,
    /// ExternalId for the AssumeRole call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FindingsSettings {
    /// How long a Resolved finding is kept before it is deleted, e.g. `168h`, `30m`.
    /// Default 168h (a week).
    #[serde(default = "default_retention")]
    #[schemars(pattern(r"^[0-9]+(s|m|h|d)$"))]
    pub retention: String,
}

impl Default for FindingsSettings {
    fn default() -> Self {
        Self {
            retention: default_retention(),
        }
    }
}

fn default_retention() -> String {
    "168h".into()
}

impl FindingsSettings {
    /// The retention as a duration; the schema guarantees the form.
    pub fn retention(&self) -> std::time::Duration {
        parse_duration(&self.retention).unwrap_or(std::time::Duration::from_secs(168 * 3600))
    }
}

/// `30s`, `5m`, `168h`, `7d`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - 1].parse().ok()?;
    let secs = match unit {
        's' => number,
        'm' => number * 60,
        'h' => number * 3600,
        'd' => number * 86400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// Observed state of a ScanPolicy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Open findings by severity.
    #[serde(default)]
    pub counts: SeverityCounts,
    /// When the last evaluation finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<String>,
    /// Cloud collection: the collector Jobs and the snapshots they uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudStatus>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsCollectionStatus>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsCollectionStatus {
    /// The last collector Job created, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled: Option<String>,
    /// The snapshot in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<AcceptedSnapshot>,
    /// The last snapshot refused (the accepted one stays in use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<RejectedSnapshot>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedSnapshot {
    /// When the collector finished (RFC 3339).
    pub collected_at: String,
    /// When the operator stored it (RFC 3339).
    pub accepted_at: String,
    pub accounts: Vec<String>,
    /// Sections the collector could not read (denied or failed calls); the snapshot
    /// names each with its error.
    pub not_collected: u32,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RejectedSnapshot {
    pub at: String,
    pub reason: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub info: u32,
}

impl SeverityCounts {
    pub fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
            Severity::Info => self.info += 1,
        }
    }
}

/// A standard Kubernetes condition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
