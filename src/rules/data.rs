//! Data protection: credentials and personal data where they do not belong —
//! ConfigMaps, environment values and annotations. Secrets objects are where such
//! values belong and are not read. Tag `SensitiveData` on the object and on every
//! workload that consumes it. Evidence is masked: a value is never stored or printed.

use std::collections::BTreeMap;

use super::secrets::{Detection, detect};
use super::{CIS, Context, Hit, NIST, NSA, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::workload::{all_containers, pod_template};
use crate::inventory::{Object, ObjectKey};

const TAGS: &[&str] = &["SensitiveData"];

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: RuleMeta {
                id: "secret-in-configmap",
                title: "Credential stored in a ConfigMap",
                severity: Severity::High,
                category: Category::DataProtection,
                remediation: "Move the value into a Secret (or an external secret store) and rotate it: ConfigMaps are readable by anyone who can read configuration.",
                tags: TAGS,
                frameworks: &[
                    (CIS, "5.4.1"),
                    (NSA, "Secrets management"),
                    (NIST, "PR.DS-01"),
                ],
                subject: SubjectKind::ConfigMap,
            },
            check: secret_in_configmap,
        },
        Rule {
            meta: RuleMeta {
                id: "pii-in-configmap",
                title: "Personal data stored in a ConfigMap",
                severity: Severity::Medium,
                category: Category::DataProtection,
                remediation: "Keep personal data (card numbers, customer e-mail lists) out of cluster configuration; store it in a protected data store.",
                tags: TAGS,
                frameworks: &[(NIST, "PR.DS-01"), (NSA, "Secrets management")],
                subject: SubjectKind::ConfigMap,
            },
            check: pii_in_configmap,
        },
        Rule {
            meta: RuleMeta {
                id: "secret-in-workload",
                title: "Credential in a workload's environment or annotations",
                severity: Severity::High,
                category: Category::DataProtection,
                remediation: "Reference a Secret with env.valueFrom.secretKeyRef instead of a literal value, and rotate the exposed credential.",
                tags: TAGS,
                frameworks: &[
                    (CIS, "5.4.1"),
                    (NSA, "Secrets management"),
                    (NIST, "PR.DS-01"),
                ],
                subject: SubjectKind::Workload,
            },
            check: secret_in_workload,
        },
    ]
}

/// Annotations that carry whole objects and would repeat every other finding.
const SKIPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

fn scan_map(
    place: &str,
    map: Option<&BTreeMap<String, String>>,
    out: &mut Vec<(String, Detection)>,
) {
    for (key, value) in map.into_iter().flatten() {
        if SKIPPED_ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        for detection in detect(key, value) {
            out.push((format!("{place}.{key}"), detection));
        }
    }
}

fn hit_from(
    key: &ObjectKey,
    found: &[(String, Detection)],
    affected: Vec<ObjectKey>,
) -> Option<Hit> {
    if found.is_empty() {
        return None;
    }
    let described: Vec<String> = found
        .iter()
        .map(|(place, d)| format!("{} in {place} ({})", d.kind.describe(), d.masked))
        .collect();
    let mut hit = Hit::new(format!(
        "{} {} holds {}",
        key.kind,
        key.name,
        described.join("; ")
    ))
    .affected(affected);
    for (place, d) in found.iter().take(8) {
        hit = hit.evidence(place, format!("{}: {}", d.kind.describe(), d.masked));
    }
    Some(hit)
}

fn configmap_findings(ctx: &Context<'_>, key: &ObjectKey, credentials: bool) -> Option<Hit> {
    let Object::ConfigMap(cm) = ctx.inventory.get(key)? else {
        return None;
    };
    let mut found = Vec::new();
    scan_map("data", cm.data.as_ref(), &mut found);
    scan_map(
        "metadata.annotations",
        cm.metadata.annotations.as_ref(),
        &mut found,
    );
    found.retain(|(_, d)| d.kind.is_credential() == credentials);
    let mut affected = vec![key.clone()];
    affected.extend(ctx.inventory.workloads_consuming(key).cloned());
    let mut hit = hit_from(key, &found, affected)?;
    let consumers: Vec<String> = hit.affected[1..]
        .iter()
        .map(|w| format!("{}/{}", w.kind, w.name))
        .collect();
    if !consumers.is_empty() {
        hit.message
            .push_str(&format!("; consumed by {}", consumers.join(", ")));
    }
    Some(hit)
}

fn secret_in_configmap(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    configmap_findings(ctx, key, true)
}

fn pii_in_configmap(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    configmap_findings(ctx, key, false)
}

fn secret_in_workload(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let object = ctx.inventory.get(key)?;
    let template = pod_template(object)?;
    let mut found = Vec::new();
    for container in all_containers(template.spec) {
        for var in container.env.iter().flatten() {
            let Some(value) = &var.value else { continue };
            for detection in detect(&var.name, value) {
                found.push((format!("{}.env.{}", container.name, var.name), detection));
            }
        }
    }
    scan_map(
        "metadata.annotations",
        object.meta().annotations.as_ref(),
        &mut found,
    );
    found.retain(|(_, d)| d.kind.is_credential());
    hit_from(key, &found, vec![key.clone()])
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, run};

    #[test]
    fn credentials_in_configmaps_tag_the_map_and_its_consumers() {
        let hits = run("secret-in-configmap", &fixture("data-fail.yaml"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        let (subject, hit) = &hits[0];
        assert_eq!(subject.name, "app-config");
        let affected: Vec<&str> = hit.affected.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(affected, ["app-config", "api"]);
        assert!(
            hit.message
                .contains("AWS access key in data.AWS_ACCESS_KEY_ID (AKIA…(20 chars))"),
            "{}",
            hit.message
        );
        assert!(
            !hit.message.contains("AKIAIOSFODNN7EXAMPLE"),
            "never the full value"
        );
    }

    #[test]
    fn personal_data_and_workload_env() {
        let fail = fixture("data-fail.yaml");
        assert_eq!(run("pii-in-configmap", &fail).len(), 1);
        let env = run("secret-in-workload", &fail);
        assert_eq!(env.len(), 1);
        assert!(
            env[0]
                .1
                .message
                .contains("GitHub token in api.env.GITHUB_TOKEN"),
            "{}",
            env[0].1.message
        );
    }

    #[test]
    fn secrets_objects_and_references_pass() {
        let pass = fixture("data-pass.yaml");
        for rule in [
            "secret-in-configmap",
            "pii-in-configmap",
            "secret-in-workload",
        ] {
            assert!(
                run(rule, &pass).is_empty(),
                "{rule}: {:?}",
                run(rule, &pass)
            );
        }
    }
}
