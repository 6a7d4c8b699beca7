use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Critical > High > Medium > Low > Info`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "Critical",
            Severity::High => "High",
            Severity::Medium => "Medium",
            Severity::Low => "Low",
            Severity::Info => "Info",
        }
    }

    /// One step up, saturating at Critical (used when a risky port is exposed).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown severity {s:?}: use critical, high, medium, low or info")
            })
    }
}

/// The security domain a rule belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Category {
    /// Reachable from outside the cluster.
    PublicExposure,
    /// An identity allowed more than it should (Kubernetes RBAC, cloud IAM).
    OverPrivilegedIdentity,
    /// Workload settings that weaken isolation from the node or other workloads.
    WorkloadConfiguration,
    /// Secrets and personal data in the open, unencrypted stores.
    DataProtection,
    /// Exploitable vulnerabilities.
    Vulnerability,
    /// Cloud resources configured unsafely.
    CloudConfiguration,
    /// Hosts without security coverage.
    Coverage,
    /// Combinations of the above that form a path to a breach.
    AttackPath,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::PublicExposure,
        Category::OverPrivilegedIdentity,
        Category::WorkloadConfiguration,
        Category::DataProtection,
        Category::Vulnerability,
        Category::CloudConfiguration,
        Category::Coverage,
        Category::AttackPath,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::PublicExposure => "PublicExposure",
            Category::OverPrivilegedIdentity => "OverPrivilegedIdentity",
            Category::WorkloadConfiguration => "WorkloadConfiguration",
            Category::DataProtection => "DataProtection",
            Category::Vulnerability => "Vulnerability",
            Category::CloudConfiguration => "CloudConfiguration",
            Category::Coverage => "Coverage",
            Category::AttackPath => "AttackPath",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown category {s:?}"))
    }
}
