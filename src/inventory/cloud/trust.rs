//! Who may assume a role: the Allow statements of its trust policy, read into facts
//! (anyone, an AWS account or principal, a service, a web-identity provider with the
//! subjects its conditions admit). The rules judge them.

use serde_json::Value;

use super::iam::{Effect, Statement};
use super::snapshot::arn_account;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trustee {
    /// `Principal: "*"` or `{"AWS": "*"}`.
    Anyone,
    /// An AWS account, or a user or role of it (`arn:aws:iam::<id>:...`).
    Account { id: String, principal: String },
    /// An AWS service (`ec2.amazonaws.com`).
    Service(String),
    /// An OIDC or SAML provider (`arn:aws:iam::<id>:oidc-provider/<issuer>`, or a
    /// public one such as `cognito-identity.amazonaws.com`).
    Federated(String),
}

/// One way in.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustGrant {
    pub trustee: Trustee,
    /// The statement has conditions (shown in findings).
    pub conditions: Option<Value>,
    /// An `sts:ExternalId` condition is present.
    pub external_id: bool,
    /// Web identity: the `<issuer>:sub` values the conditions admit (may hold
    /// wildcards); empty when no condition restricts the subject.
    pub subjects: Vec<String>,
    /// Web identity: the `<issuer>:aud` values.
    pub audiences: Vec<String>,
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn trustees(principal: &Value) -> Vec<Trustee> {
    match principal {
        Value::String(s) if s == "*" => vec![Trustee::Anyone],
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, value) in map {
                for item in as_list(value) {
                    out.push(match kind.as_str() {
                        "AWS" if item == "*" => Trustee::Anyone,
                        "AWS" => {
                            let id = if item.len() == 12 && item.bytes().all(|b| b.is_ascii_digit())
                            {
                                item.clone()
                            } else {
                                arn_account(&item).unwrap_or_default().to_owned()
                            };
                            Trustee::Account {
                                id,
                                principal: item,
                            }
                        }
                        "Service" => Trustee::Service(item),
                        "Federated" => Trustee::Federated(item),
                        // CanonicalUser and others: treat as an account we cannot name.
                        _ => Trustee::Account {
                            id: String::new(),
                            principal: item,
                        },
                    });
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Condition values under any operator whose key ends with `suffix` (case-insensitive).
fn condition_values(conditions: Option<&Value>, suffix: &str) -> Vec<String> {
    let Some(Value::Object(operators)) = conditions else {
        return Vec::new();
    };
    operators
        .values()
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.iter())
        .filter(|(k, _)| k.to_ascii_lowercase().ends_with(suffix))
        .flat_map(|(_, v)| as_list(v))
        .collect()
}

fn assumes(statement: &Statement) -> bool {
    [
        "sts:AssumeRole",
        "sts:AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithSAML",
    ]
    .iter()
    .any(|a| statement.matches_action(a))
}

/// The grants of a role's trust statements. `NotPrincipal` Allow statements trust
/// everyone but the named principals: read as `Anyone`.
pub fn trust_grants(statements: &[Statement]) -> Vec<TrustGrant> {
    let mut out = Vec::new();
    for s in statements {
        if s.effect != Effect::Allow || !assumes(s) {
            continue;
        }
        let Some(principal) = &s.principal else {
            continue;
        };
        let who = if s.not_principal {
            vec![Trustee::Anyone]
        } else {
            trustees(principal)
        };
        let conditions = s.conditional().then(|| s.condition.clone()).flatten();
        for trustee in who {
            out.push(TrustGrant {
                external_id: !condition_values(conditions.as_ref(), "sts:externalid").is_empty(),
                subjects: condition_values(conditions.as_ref(), ":sub"),
                audiences: condition_values(conditions.as_ref(), ":aud"),
                conditions: conditions.clone(),
                trustee,
            });
        }
    }
    out
}

/// The EKS issuer of an IRSA provider ARN
/// (`arn:aws:iam::1:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC`).
pub fn eks_issuer(provider: &str) -> Option<&str> {
    let issuer = provider.split_once(":oidc-provider/")?.1;
    issuer.contains(".eks.").then_some(issuer)
}

/// `system:serviceaccount:<namespace>:<name>` → (namespace, name).
pub fn service_account_of_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("system:serviceaccount:")?;
    rest.split_once(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::cloud::iam::statements;
    use serde_json::json;

    #[test]
    fn reads_anyone_accounts_services_and_web_identities() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::999988887777:root", "111122223333"]}, "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": {"sts:ExternalId": "abc"}}},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {"oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:shop:web",
                                            "oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}
        ]});
        let grants = trust_grants(&statements(&doc));
        assert_eq!(grants.len(), 5);
        assert_eq!(grants[0].trustee, Trustee::Anyone);
        assert!(grants[0].conditions.is_none());
        assert_eq!(
            grants[1].trustee,
            Trustee::Account {
                id: "999988887777".into(),
                principal: "arn:aws:iam::999988887777:root".into()
            }
        );
        assert!(grants[1].external_id && grants[2].external_id);
        assert_eq!(
            grants[3].trustee,
            Trustee::Service("ec2.amazonaws.com".into())
        );
        let Trustee::Federated(provider) = &grants[4].trustee else {
            panic!()
        };
        assert_eq!(
            eks_issuer(provider),
            Some("oidc.eks.eu-west-1.amazonaws.com/id/ABC")
        );
        assert_eq!(grants[4].subjects, vec!["system:serviceaccount:shop:web"]);
        assert_eq!(
            service_account_of_subject(&grants[4].subjects[0]),
            Some(("shop", "web"))
        );
    }
}
