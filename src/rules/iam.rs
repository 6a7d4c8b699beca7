//! AWS IAM: administrators, privilege escalation (the method catalog in
//! `config/iam-escalation.yaml`, matched on effective permissions), and who may assume
//! a role (anyone, accounts outside the known list, web identities without a subject
//! condition). Escalating and admin principals get the tag `HighlyPermissiveRole`.

use serde::Deserialize;

use super::{CIS_AWS, Context, Hit, NIST, Rule, RuleMeta, SubjectKind};
use crate::api::{Category, Severity};
use crate::inventory::ObjectKey;
use crate::inventory::cloud::actions::ActionCatalog;
use crate::inventory::cloud::iam::Principal;
use crate::inventory::cloud::trust::{Trustee, eks_issuer, trust_grants};

const TAGS: &[&str] = &["HighlyPermissiveRole"];
const PRIVILEGE: &[(&str, &str)] = &[
    (NIST, "PR.AA-05"),
    (
        CIS_AWS,
        "1.16 No IAM policies with full *:* administrative privileges",
    ),
];
const TRUST: &[(&str, &str)] = &[
    (NIST, "PR.AA-05"),
    (CIS_AWS, "1.20 IAM Access Analyzer for external access"),
];

/// One privilege-escalation method (`config/iam-escalation.yaml`).
#[derive(Debug, Clone, Deserialize)]
pub struct EscalationMethod {
    pub id: String,
    pub actions: Vec<String>,
    /// `other`: holding the actions on itself only is not an escalation.
    #[serde(default)]
    pub target: Option<String>,
    pub via: String,
    pub source: String,
    /// The actions' catalog ids, resolved once (a method is checked on every principal).
    #[serde(skip)]
    ids: std::sync::OnceLock<Vec<Option<u32>>>,
}

impl EscalationMethod {
    fn needs_another_principal(&self) -> bool {
        self.target.as_deref() == Some("other")
    }

    fn action_ids(&self, catalog: &ActionCatalog) -> &[Option<u32>] {
        self.ids
            .get_or_init(|| self.actions.iter().map(|a| catalog.id(a)).collect())
    }
}

const METHODS: &str = include_str!("../../config/iam-escalation.yaml");

pub fn shipped_methods() -> Vec<EscalationMethod> {
    serde_yaml_ng::from_str(METHODS).expect("config/iam-escalation.yaml is valid (tested)")
}

pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: RuleMeta {
                id: "aws-iam-admin",
                title: "IAM principal can perform every AWS action on every resource",
                severity: Severity::Critical,
                category: Category::OverPrivilegedIdentity,
                remediation: "Replace the *:* grant (AdministratorAccess or an equivalent statement) with policies for the actions the principal uses; IAM Access Analyzer can generate one from CloudTrail activity. Keep break-glass administrators few, with MFA.",
                tags: TAGS,
                frameworks: PRIVILEGE,
                subject: SubjectKind::IamPrincipal,
            },
            check: admin,
        },
        Rule {
            meta: RuleMeta {
                id: "aws-iam-privilege-escalation",
                title: "IAM principal can escalate its own privileges",
                severity: Severity::High,
                category: Category::OverPrivilegedIdentity,
                remediation: "Remove the actions of the listed methods, or scope them to resources that cannot lead to more privilege (iam:PassRole to named low-privilege roles with an iam:PassedToService condition; no iam:*Policy* on principals it can use). A permissions boundary caps what it can grant itself.",
                tags: TAGS,
                frameworks: PRIVILEGE,
                subject: SubjectKind::IamPrincipal,
            },
            check: escalation,
        },
        Rule {
            meta: RuleMeta {
                id: "aws-iam-role-assumable-by-anyone",
                title: "IAM role can be assumed by any AWS principal",
                severity: Severity::Critical,
                category: Category::OverPrivilegedIdentity,
                remediation: "Name the accounts or principals that may assume the role in its trust policy instead of \"*\"; if it must stay open, require conditions such as aws:PrincipalOrgID.",
                tags: &[],
                frameworks: TRUST,
                subject: SubjectKind::IamPrincipal,
            },
            check: assumable_by_anyone,
        },
        Rule {
            meta: RuleMeta {
                id: "aws-iam-role-external-trust",
                title: "IAM role trusts an account outside the known accounts",
                severity: Severity::High,
                category: Category::OverPrivilegedIdentity,
                remediation: "Remove the external account from the trust policy, or add it to spec.cloud.aws.knownAccounts once reviewed; third parties must be required to pass an sts:ExternalId.",
                tags: &[],
                frameworks: TRUST,
                subject: SubjectKind::IamPrincipal,
            },
            check: external_trust,
        },
        Rule {
            meta: RuleMeta {
                id: "aws-iam-role-open-web-identity",
                title: "IAM role trusts a web identity provider without a subject condition",
                severity: Severity::High,
                category: Category::OverPrivilegedIdentity,
                remediation: "Add a StringEquals condition on <provider>:sub naming the identities that may assume the role (system:serviceaccount:<namespace>:<name> for EKS IRSA, repo:<org>/<repo>:ref:<ref> for GitHub Actions) and on <provider>:aud.",
                tags: &[],
                frameworks: TRUST,
                subject: SubjectKind::IamPrincipal,
            },
            check: open_web_identity,
        },
    ]
}

fn principal<'a>(ctx: &'a Context<'_>, key: &ObjectKey) -> Option<&'a Principal> {
    ctx.inventory.cloud().iam.principal(&key.name).map(|p| &**p)
}

fn label(p: &Principal) -> String {
    format!("IAM {} {}", p.kind.as_str(), p.name)
}

/// Whether the principal can do everything; `Some` with the policies that grant it.
pub fn admin_grants(p: &Principal) -> Option<Vec<String>> {
    let catalog = ActionCatalog::shipped();
    if !p.effective(catalog).is_admin(catalog) {
        return None;
    }
    let mut policies: Vec<String> = p
        .grants("*")
        .into_iter()
        .filter(|g| g.resources == "*")
        .map(|g| g.policy)
        .collect();
    policies.dedup();
    Some(policies)
}

fn admin(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let p = principal(ctx, key)?;
    let policies = admin_grants(p)?;
    let mut hit = Hit::new(format!(
        "{} can perform every AWS action on every resource (through {})",
        label(p),
        if policies.is_empty() {
            "a combination of statements".to_owned()
        } else {
            policies.join(", ")
        }
    ));
    for policy in policies.iter().take(8) {
        hit = hit.evidence("policy", policy.clone());
    }
    Some(hit)
}

/// A method a principal can use, with the grant behind each of its actions.
#[derive(Debug, Clone)]
pub struct MethodMatch<'a> {
    pub method: &'a EscalationMethod,
    /// (action, where it is granted).
    pub grants: Vec<(String, String)>,
}

/// The escalation methods a principal holds every action of.
pub fn escalation_methods<'a>(
    p: &Principal,
    methods: &'a [EscalationMethod],
) -> Vec<MethodMatch<'a>> {
    let catalog = ActionCatalog::shipped();
    let effective = p.effective(catalog);
    let mut out = Vec::new();
    'methods: for method in methods {
        // Ids are resolved once per method; an action the catalog does not know is
        // looked up in the principal's statements.
        let allowed = method
            .action_ids(catalog)
            .iter()
            .zip(&method.actions)
            .all(|(id, action)| match id {
                Some(id) => effective.allowed.contains(*id),
                None => p.allows(action, effective, catalog),
            });
        if !allowed {
            continue;
        }
        let mut grants = Vec::new();
        for action in &method.actions {
            let found = p.grants(action);
            if method.needs_another_principal()
                && !found.is_empty()
                && found.iter().all(|g| g.only_self)
            {
                // Only on itself: a key or password for yourself is nothing new.
                continue 'methods;
            }
            let described = found
                .first()
                .map(|g| {
                    let scope = if g.only_self {
                        "itself".to_owned()
                    } else {
                        g.resources.clone()
                    };
                    let condition = if g.conditional {
                        ", with conditions"
                    } else {
                        ""
                    };
                    format!("{} on {scope}{condition}", g.policy)
                })
                .unwrap_or_else(|| "a wildcard statement".to_owned());
            grants.push((action.clone(), described));
        }
        out.push(MethodMatch { method, grants });
    }
    out
}

fn escalation(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let p = principal(ctx, key)?;
    // An administrator has nothing to escalate to; aws-iam-admin says it all.
    if admin_grants(p).is_some() {
        return None;
    }
    // A service-linked role: only its AWS service can assume it and nobody can change
    // its policies, so what it may do is no path for anyone.
    if p.arn.contains(":role/aws-service-role/") {
        return None;
    }
    let found = escalation_methods(p, ctx.config.escalation_methods());
    let first = found.first()?;
    let names: Vec<&str> = found.iter().map(|m| m.method.id.as_str()).collect();
    let mut hit = Hit::new(format!(
        "{} can gain more privileges through {} method{} ({}): e.g. {}, gaining {}",
        label(p),
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        truncate_list(&names, 6),
        first.method.id,
        first.method.via
    ))
    .evidence("methods", names.join(", "));
    for m in found.iter().take(5) {
        for (action, grant) in &m.grants {
            hit = hit.evidence(&format!("{} {action}", m.method.id), grant.clone());
        }
    }
    if !p.unknown_policies.is_empty() {
        hit = hit.evidence(
            "not in the snapshot",
            format!(
                "{} attached policies could not be read",
                p.unknown_policies.len()
            ),
        );
    }
    Some(hit)
}

fn truncate_list(items: &[&str], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{}, … {} more", items[..max].join(", "), items.len() - max)
    }
}

fn role<'a>(ctx: &'a Context<'_>, key: &ObjectKey) -> Option<&'a Principal> {
    principal(ctx, key).filter(|p| p.kind == crate::inventory::cloud::iam::PrincipalKind::Role)
}

fn assumable_by_anyone(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let p = role(ctx, key)?;
    let open = trust_grants(&p.trust)
        .into_iter()
        .filter(|g| g.trustee == Trustee::Anyone)
        .min_by_key(|g| g.conditions.is_some())?;
    let hit = Hit::new(match &open.conditions {
        None => format!(
            "{} can be assumed by any AWS principal of any account",
            label(p)
        ),
        Some(c) => format!(
            "{} can be assumed by any AWS principal that meets its conditions ({c}); review them",
            label(p)
        ),
    })
    .evidence("trust", "Principal: *");
    Some(match open.conditions {
        None => hit,
        Some(_) => hit.severity(Severity::Medium),
    })
}

fn external_trust(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let p = role(ctx, key)?;
    let cloud = ctx.inventory.cloud();
    let known = cloud.known_accounts(&p.account);
    let external: Vec<_> = trust_grants(&p.trust)
        .into_iter()
        .filter_map(|g| match &g.trustee {
            Trustee::Account { id, principal }
                if *id != p.account && !known.contains(&id.as_str()) =>
            {
                Some((principal.clone(), id.clone(), g.external_id))
            }
            _ => None,
        })
        .collect();
    let (principal, id, _) = external.first()?.clone();
    let guarded = external.iter().all(|(_, _, external_id)| *external_id);
    let shown = if id.is_empty() {
        principal.clone()
    } else {
        format!("account {id} ({principal})")
    };
    let mut hit = Hit::new(format!(
        "{} trusts {shown}, which is not one of the known accounts{}",
        label(p),
        if guarded {
            "; an sts:ExternalId condition guards against the confused deputy"
        } else {
            ", without an sts:ExternalId condition"
        }
    ));
    for (principal, _, external_id) in external.iter().take(8) {
        hit = hit.evidence(
            "trusted",
            format!(
                "{principal}{}",
                if *external_id { " (ExternalId)" } else { "" }
            ),
        );
    }
    Some(if guarded {
        hit.severity(Severity::Medium)
    } else {
        hit
    })
}

fn open_web_identity(ctx: &Context<'_>, key: &ObjectKey) -> Option<Hit> {
    let p = role(ctx, key)?;
    for g in trust_grants(&p.trust) {
        let Trustee::Federated(provider) = &g.trustee else {
            continue;
        };
        if provider.contains(":saml-provider/") {
            continue;
        }
        let wildcard = g.subjects.iter().any(|s| s.contains('*'));
        if !g.subjects.is_empty() && !wildcard {
            continue;
        }
        let (who, severity) = match eks_issuer(provider) {
            Some(issuer) if wildcard => (
                format!(
                    "ServiceAccounts matching {} of the EKS cluster {issuer}",
                    g.subjects.join(", ")
                ),
                Severity::Medium,
            ),
            Some(issuer) => (
                format!("every ServiceAccount of every namespace of the EKS cluster {issuer}"),
                Severity::High,
            ),
            None if wildcard => (
                format!(
                    "identities of {provider} matching {}",
                    g.subjects.join(", ")
                ),
                Severity::High,
            ),
            None => (
                format!("every identity {provider} issues tokens for (any repository, any tenant)"),
                Severity::Critical,
            ),
        };
        return Some(
            Hit::new(format!("{} can be assumed by {who}", label(p)))
                .evidence("provider", provider.clone())
                .severity(severity),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::rules::RuleConfig;

    fn inventory(name: &str) -> Inventory {
        crate::rules::testing::cloud_fixture(name, "")
    }

    fn hits(rule: &str, inventory: &Inventory) -> Vec<String> {
        crate::rules::testing::hit_names(rule, inventory)
    }

    #[test]
    fn admins_and_escalation_are_found_and_least_privilege_passes() {
        let fail = inventory("iam-fail.json");
        assert_eq!(
            hits("aws-iam-admin", &fail),
            vec!["admin-role", "admins", "alice"]
        );
        let escalating = hits("aws-iam-privilege-escalation", &fail);
        for name in [
            "passrole-ec2",
            "self-attach",
            "policy-versioner",
            "ssm-operator",
        ] {
            assert!(
                escalating.contains(&name.to_owned()),
                "{name} missing from {escalating:?}"
            );
        }
        assert!(
            !escalating.contains(&"admin-role".to_owned()),
            "admins are reported once"
        );
        assert!(
            !escalating.contains(&"own-keys".to_owned()),
            "a key for yourself is no escalation"
        );

        let pass = inventory("iam-pass.json");
        for rule in [
            "aws-iam-admin",
            "aws-iam-privilege-escalation",
            "aws-iam-role-assumable-by-anyone",
            "aws-iam-role-external-trust",
            "aws-iam-role-open-web-identity",
        ] {
            assert!(
                hits(rule, &pass).is_empty(),
                "{rule}: {:?}",
                hits(rule, &pass)
            );
        }
    }

    #[test]
    fn trust_rules_read_anyone_external_accounts_and_open_web_identities() {
        let fail = inventory("iam-fail.json");
        assert_eq!(
            hits("aws-iam-role-assumable-by-anyone", &fail),
            vec!["open-to-all"]
        );
        assert_eq!(hits("aws-iam-role-external-trust", &fail), vec!["vendor"]);
        assert_eq!(
            hits("aws-iam-role-open-web-identity", &fail),
            vec!["github-any-repo", "irsa-any-sa"]
        );
        let run = crate::rules::testing::run("aws-iam-role-open-web-identity", &fail);
        let severity = |name: &str| {
            run.iter()
                .find(|(k, _)| k.name.ends_with(name))
                .and_then(|(_, h)| h.severity)
        };
        assert_eq!(
            severity("github-any-repo"),
            Some(Severity::Critical),
            "{run:?}"
        );
        assert_eq!(severity("irsa-any-sa"), Some(Severity::High));
    }

    #[test]
    fn the_shipped_methods_name_real_actions() {
        let catalog = ActionCatalog::shipped();
        let methods = RuleConfig::default().escalation_methods().to_vec();
        assert!(methods.len() >= 60, "{}", methods.len());
        for m in &methods {
            for a in &m.actions {
                assert!(
                    catalog.id(a).is_some(),
                    "{}: {a} is not in config/aws-actions.json",
                    m.id
                );
            }
        }
        let ids: std::collections::BTreeSet<_> = methods.iter().map(|m| &m.id).collect();
        assert_eq!(ids.len(), methods.len(), "method ids are unique");
    }
}
