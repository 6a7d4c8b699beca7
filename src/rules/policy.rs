//! A ScanPolicy as the engine applies it: scope, rules on/off, severity overrides,
//! exceptions with expiry, tagging and retention.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::civil::Date;

use super::RuleMeta;
use crate::api::{Exception, ScanPolicy, ScanPolicySpec, Severity};
use crate::inventory::ObjectKey;

#[derive(Debug, Clone)]
pub struct Policy {
    /// `namespace/name` of the ScanPolicy, if it came from one.
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub spec: ScanPolicySpec,
    today: Date,
}

/// Today's date in UTC, which exception expiry is compared with.
pub fn today() -> Date {
    k8s_openapi::jiff::Timestamp::now()
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .date()
}

impl Policy {
    /// Every rule on, whole cluster, no exceptions: `spec: {}`.
    pub fn allow_all() -> Self {
        Self::from_spec(None, None, ScanPolicySpec::default(), today())
    }

    pub fn from_spec(
        name: Option<String>,
        namespace: Option<String>,
        spec: ScanPolicySpec,
        today: Date,
    ) -> Self {
        Self {
            name,
            namespace,
            spec,
            today,
        }
    }

    pub fn from_resource(policy: &ScanPolicy, today: Date) -> Self {
        let ns = policy.metadata.namespace.clone().unwrap_or_default();
        let name = policy.metadata.name.clone().unwrap_or_default();
        Self::from_spec(
            Some(format!("{ns}/{name}")),
            Some(ns),
            policy.spec.clone(),
            today,
        )
    }

    pub fn rule_enabled(&self, rule: &RuleMeta) -> bool {
        let Some(settings) = &self.spec.rules else {
            return true;
        };
        let named = |list: &[String]| {
            list.iter()
                .any(|item| item == rule.id || item.eq_ignore_ascii_case(rule.category.as_str()))
        };
        if named(&settings.disable) {
            return false;
        }
        settings.enable.is_empty() || named(&settings.enable)
    }

    /// The severity after the policy's overrides.
    pub fn severity(&self, rule: &RuleMeta, found: Severity) -> Severity {
        self.spec
            .rules
            .as_ref()
            .and_then(|r| r.severity_overrides.iter().find(|o| o.rule == rule.id))
            .map(|o| o.severity)
            .unwrap_or(found)
    }

    /// Whether the policy covers a namespace with these labels.
    pub fn covers_namespace(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        let Some(scope) = &self.spec.scope else {
            return true;
        };
        if scope.exclude_namespaces.iter().any(|n| n == namespace) {
            return false;
        }
        let by_name = scope.include_namespaces.iter().any(|n| n == namespace);
        let by_selector = scope
            .namespace_selector
            .as_ref()
            .map(|s| selector_matches(s, labels));
        match (scope.include_namespaces.is_empty(), by_selector) {
            (true, None) => true,
            (true, Some(selected)) => selected,
            (false, None) => by_name,
            (false, Some(selected)) => by_name || selected,
        }
    }

    /// The exception suppressing this rule on this subject, if one holds today.
    pub fn exception_for(&self, rule: &str, subject: &ObjectKey) -> Option<&Exception> {
        self.spec
            .exceptions
            .iter()
            .filter(|e| e.rule == "*" || e.rule == rule)
            .filter(|e| !e.reason.trim().is_empty())
            .filter(|e| e.expires.parse::<Date>().is_ok_and(|d| d >= self.today))
            .find(|e| {
                let m = &e.subject;
                m.kind.as_deref().is_none_or(|k| k == subject.kind.as_str())
                    && m.namespace
                        .as_deref()
                        .is_none_or(|n| Some(n) == subject.namespace())
                    && m.name
                        .as_deref()
                        .is_none_or(|n| name_matches(n, &subject.name))
            })
    }

    /// The date exceptions are compared with.
    pub fn today(&self) -> Date {
        self.today
    }

    pub fn tagging_enabled(&self) -> bool {
        self.spec.tagging.as_ref().is_none_or(|t| t.enabled)
    }

    pub fn retention(&self) -> Duration {
        self.spec.findings.clone().unwrap_or_default().retention()
    }
}

/// Prefix of the per-object exception annotation:
/// `posture.dev/exception.<rule-id>: "<reason>; expires=YYYY-MM-DD"`.
pub const EXCEPTION_ANNOTATION: &str = "posture.dev/exception.";

/// What an exception annotation on the subject says about a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotatedException {
    /// Holds: the finding is suppressed with this text.
    Valid(String),
    /// Present but not honoured (expired, no reason, no date): said in the finding.
    Invalid(String),
}

/// Reads the exception annotation for `rule` from the subject's annotations.
pub fn annotated_exception(
    annotations: Option<&BTreeMap<String, String>>,
    rule: &str,
    today: Date,
) -> Option<AnnotatedException> {
    let value = annotations?.get(&format!("{EXCEPTION_ANNOTATION}{rule}"))?;
    let (reason, expires) = match value.rsplit_once(';') {
        Some((reason, rest)) => (
            reason.trim(),
            rest.trim().strip_prefix("expires=").map(str::trim),
        ),
        None => (value.trim(), None),
    };
    let Some(expires) = expires else {
        return Some(AnnotatedException::Invalid(format!(
            "exception annotation ignored: it needs \"<reason>; expires=YYYY-MM-DD\", found {value:?}"
        )));
    };
    if reason.is_empty() {
        return Some(AnnotatedException::Invalid(
            "exception annotation ignored: it has no reason".into(),
        ));
    }
    match expires.parse::<Date>() {
        Ok(date) if date >= today => Some(AnnotatedException::Valid(format!(
            "{reason}; expires={date}"
        ))),
        Ok(date) => Some(AnnotatedException::Invalid(format!(
            "exception expired on {date} ({reason}); fix the finding or renew the exception"
        ))),
        Err(_) => Some(AnnotatedException::Invalid(format!(
            "exception annotation ignored: {expires:?} is not a date (YYYY-MM-DD)"
        ))),
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Kubernetes label-selector semantics (matchLabels and matchExpressions).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The policies of a cluster. A namespace is governed by the first policy (ordered by
/// namespace/name) whose scope covers it, so no subject is evaluated twice.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    pub fn new(mut policies: Vec<Policy>) -> Self {
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Self { policies }
    }

    /// These policies, then `fallback` for every namespace none of them covers (the
    /// webhook's built-in defaults).
    pub fn with_fallback(mut self, fallback: Policy) -> Self {
        self.policies.push(fallback);
        self
    }

    pub fn single(policy: Policy) -> Self {
        Self {
            policies: vec![policy],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn governing(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.covers_namespace(namespace, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RuleSettings, Scope, SeverityOverride, SubjectMatch};
    use crate::inventory::Kind;

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn rule(id: &'static str) -> &'static RuleMeta {
        let rules = Box::leak(Box::new(super::super::catalog()));
        &rules.iter().find(|r| r.meta.id == id).unwrap().meta
    }

    #[test]
    fn empty_spec_enables_everything_everywhere() {
        let policy = Policy::allow_all();
        assert!(policy.rule_enabled(rule("public-loadbalancer")));
        assert!(policy.covers_namespace("anything", None));
        assert!(policy.tagging_enabled());
        assert_eq!(policy.retention(), Duration::from_secs(168 * 3600));
    }

    #[test]
    fn rules_by_id_and_category() {
        let spec = ScanPolicySpec {
            rules: Some(RuleSettings {
                enable: vec!["PublicExposure".into(), "rbac-cluster-admin".into()],
                disable: vec!["public-ingress".into()],
                severity_overrides: vec![SeverityOverride {
                    rule: "public-nodeport".into(),
                    severity: Severity::Low,
                }],
            }),
            ..Default::default()
        };
        let policy = Policy::from_spec(None, None, spec, date("2026-01-01"));
        assert!(policy.rule_enabled(rule("public-loadbalancer")));
        assert!(policy.rule_enabled(rule("rbac-cluster-admin")));
        assert!(!policy.rule_enabled(rule("public-ingress")));
        assert!(!policy.rule_enabled(rule("privileged-container")));
        assert_eq!(
            policy.severity(rule("public-nodeport"), Severity::High),
            Severity::Low
        );
        assert_eq!(
            policy.severity(rule("public-loadbalancer"), Severity::High),
            Severity::High
        );
    }

    #[test]
    fn scope_by_selector_names_and_exclusions() {
        let spec = ScanPolicySpec {
            scope: Some(Scope {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some([("team".to_owned(), "a".to_owned())].into()),
                    ..Default::default()
                }),
                include_namespaces: vec!["shared".into()],
                exclude_namespaces: vec!["kube-system".into()],
            }),
            ..Default::default()
        };
        let policy = Policy::from_spec(None, None, spec, date("2026-01-01"));
        let team_a: BTreeMap<String, String> = [("team".to_owned(), "a".to_owned())].into();
        assert!(policy.covers_namespace("apps", Some(&team_a)));
        assert!(policy.covers_namespace("shared", None));
        assert!(!policy.covers_namespace("other", None));
        assert!(!policy.covers_namespace("kube-system", Some(&team_a)));
    }

    #[test]
    fn annotated_exceptions() {
        let today = date("2026-06-30");
        let annotations = |v: &str| -> BTreeMap<String, String> {
            [(
                "posture.dev/exception.public-nodeport".to_owned(),
                v.to_owned(),
            )]
            .into()
        };
        let check = |v: &str| annotated_exception(Some(&annotations(v)), "public-nodeport", today);
        assert_eq!(
            check("legacy bastion; expires=2026-06-30"),
            Some(AnnotatedException::Valid(
                "legacy bastion; expires=2026-06-30".into()
            ))
        );
        assert!(
            matches!(check("legacy bastion; expires=2026-06-29"), Some(AnnotatedException::Invalid(m)) if m.contains("expired on 2026-06-29"))
        );
        assert!(matches!(
            check("legacy bastion"),
            Some(AnnotatedException::Invalid(_))
        ));
        assert!(
            matches!(check("; expires=2030-01-01"), Some(AnnotatedException::Invalid(m)) if m.contains("no reason"))
        );
        assert!(
            matches!(check("x; expires=soon"), Some(AnnotatedException::Invalid(m)) if m.contains("not a date"))
        );
        assert_eq!(
            annotated_exception(
                Some(&annotations("x; expires=2030-01-01")),
                "public-loadbalancer",
                today
            ),
            None
        );
    }

    #[test]
    fn exceptions_hold_until_their_expiry_and_need_a_reason() {
        let exception = |reason: &str, expires: &str| Exception {
            rule: "public-loadbalancer".into(),
            subject: SubjectMatch {
                kind: Some("Service".into()),
                namespace: Some("web".into()),
                name: Some("front*".into()),
            },
            reason: reason.into(),
            expires: expires.into(),
        };
        let spec = ScanPolicySpec {
            exceptions: vec![
                exception("", "2030-01-01"),
                exception("public shop front", "2026-06-30"),
            ],
            ..Default::default()
        };
        let subject = ObjectKey::namespaced(Kind::Service, "web", "frontend");
        let valid = Policy::from_spec(None, None, spec.clone(), date("2026-06-30"));
        assert_eq!(
            valid
                .exception_for("public-loadbalancer", &subject)
                .map(|e| e.reason.as_str()),
            Some("public shop front")
        );
        assert!(valid.exception_for("public-nodeport", &subject).is_none());
        assert!(
            valid
                .exception_for(
                    "public-loadbalancer",
                    &ObjectKey::namespaced(Kind::Service, "web", "api")
                )
                .is_none()
        );
        let expired = Policy::from_spec(None, None, spec, date("2026-07-01"));
        assert!(
            expired
                .exception_for("public-loadbalancer", &subject)
                .is_none(),
            "expired, and the other has no reason"
        );
    }
}
