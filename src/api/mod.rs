//! The custom resources of the `posture.dev/v1alpha1` API: [`ScanPolicy`] (what to scan
//! and how) and [`Finding`] (what was found).

mod common;
mod finding;
mod scan_policy;

pub use common::{Category, Severity};
pub use finding::{
    Evidence, Finding, FindingSpec, FindingState, FindingStatus, FrameworkRef, SubjectRef,
};
pub use scan_policy::{
    AcceptedSnapshot, AdmissionMode, AdmissionSettings, AwsAccount, AwsCloud, AwsCollectionStatus,
    CloudSettings, CloudStatus, Condition, Exception, FindingsSettings, RejectedSnapshot,
    RuleSettings, ScanPolicy, ScanPolicySpec, ScanPolicyStatus, Scope, SeverityCounts,
    SeverityOverride, SubjectMatch, TaggingSettings,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub const GROUP: &str = "posture.dev";
pub const VERSION: &str = "v1alpha1";

/// Every CRD of the API, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![ScanPolicy::crd(), Finding::crd()]
}

/// The CRDs as one multi-document YAML stream, as `posture crds` prints it and `crds/`
/// stores it.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
