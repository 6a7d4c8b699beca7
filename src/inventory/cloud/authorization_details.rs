//! The raw output of `aws iam get-account-authorization-details` (and of the API call
//! the collector makes), turned into the snapshot's [`IamData`]. Policy documents come
//! URL-encoded from the API and as JSON objects from the CLI: both are decoded.

use serde::Deserialize;
use serde_json::Value;

use super::snapshot::{IamData, IamGroup, IamRole, IamUser, InlinePolicy, ManagedPolicy};

/// Decodes a policy document: a JSON object, a JSON string, or a URL-encoded JSON string.
/// Takes the value so that a document already in JSON is moved, not copied.
pub fn decode_document(value: Value) -> Result<Value, String> {
    match value {
        Value::Object(_) => Ok(value),
        Value::String(text) => {
            let trimmed = text.trim_start();
            let json = if trimmed.starts_with('{') {
                text
            } else {
                percent_decode(&text)?
            };
            serde_json::from_str(&json).map_err(|e| format!("not a JSON policy document: {e}"))
        }
        Value::Null => Ok(Value::Null),
        other => Err(format!(
            "a policy document must be JSON or text, found {other}"
        )),
    }
}

/// RFC 3986 percent-decoding (IAM does not use `+` for spaces).
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded document is not UTF-8".to_owned())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    #[serde(default)]
    user_detail_list: Vec<RawUser>,
    #[serde(default)]
    group_detail_list: Vec<RawGroup>,
    #[serde(default)]
    role_detail_list: Vec<RawRole>,
    #[serde(default)]
    policies: Vec<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInline {
    policy_name: String,
    #[serde(default)]
    policy_document: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAttached {
    policy_arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawBoundary {
    #[serde(default)]
    permissions_boundary_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawUser {
    user_name: String,
    arn: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    user_policy_list: Vec<RawInline>,
    #[serde(default)]
    group_list: Vec<String>,
    #[serde(default)]
    attached_managed_policies: Vec<RawAttached>,
    #[serde(default)]
    permissions_boundary: Option<RawBoundary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawGroup {
    group_name: String,
    arn: String,
    #[serde(default)]
    group_policy_list: Vec<RawInline>,
    #[serde(default)]
    attached_managed_policies: Vec<RawAttached>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInstanceProfile {
    arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRole {
    role_name: String,
    arn: String,
    #[serde(default)]
    role_id: String,
    #[serde(default)]
    assume_role_policy_document: Value,
    #[serde(default)]
    role_policy_list: Vec<RawInline>,
    #[serde(default)]
    attached_managed_policies: Vec<RawAttached>,
    #[serde(default)]
    instance_profile_list: Vec<RawInstanceProfile>,
    #[serde(default)]
    permissions_boundary: Option<RawBoundary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPolicy {
    policy_name: String,
    arn: String,
    #[serde(default)]
    default_version_id: String,
    #[serde(default)]
    attachment_count: u32,
    #[serde(default)]
    policy_version_list: Vec<RawVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVersion {
    #[serde(default)]
    document: Value,
    #[serde(default)]
    version_id: String,
    #[serde(default)]
    is_default_version: bool,
}

fn inline(list: Vec<RawInline>, owner: &str) -> Result<Vec<InlinePolicy>, String> {
    list.into_iter()
        .map(|p| {
            let document = decode_document(p.policy_document)
                .map_err(|e| format!("{owner}, inline policy {}: {e}", p.policy_name))?;
            Ok(InlinePolicy {
                name: p.policy_name,
                document,
            })
        })
        .collect()
}

fn attached(list: Vec<RawAttached>) -> Vec<String> {
    list.into_iter().map(|a| a.policy_arn).collect()
}

/// Whether a JSON document looks like authorization details rather than a snapshot.
pub fn looks_like(value: &Value) -> bool {
    [
        "UserDetailList",
        "RoleDetailList",
        "GroupDetailList",
        "Policies",
    ]
    .iter()
    .any(|k| value.get(k).is_some())
}

/// Parses authorization details; errors name the principal or policy and the field.
pub fn parse(value: Value) -> Result<IamData, String> {
    let raw: Raw = serde_json::from_value(value)
        .map_err(|e| format!("not GetAccountAuthorizationDetails output: {e}"))?;
    from_raw(raw)
}

/// Parses authorization details straight from the file's bytes (no intermediate tree).
pub fn parse_bytes(bytes: &[u8]) -> Result<IamData, String> {
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| format!("not GetAccountAuthorizationDetails output: {e}"))?;
    from_raw(raw)
}

fn from_raw(raw: Raw) -> Result<IamData, String> {
    let mut data = IamData::default();
    for u in raw.user_detail_list {
        let owner = format!("user {}", u.arn);
        data.users.push(IamUser {
            inline_policies: inline(u.user_policy_list, &owner)?,
            attached_policies: attached(u.attached_managed_policies),
            groups: u.group_list,
            permissions_boundary: u
                .permissions_boundary
                .and_then(|b| b.permissions_boundary_arn),
            name: u.user_name,
            arn: u.arn,
            id: u.user_id,
        });
    }
    for g in raw.group_detail_list {
        let owner = format!("group {}", g.arn);
        data.groups.push(IamGroup {
            inline_policies: inline(g.group_policy_list, &owner)?,
            attached_policies: attached(g.attached_managed_policies),
            name: g.group_name,
            arn: g.arn,
        });
    }
    for r in raw.role_detail_list {
        let owner = format!("role {}", r.arn);
        let trust_policy = decode_document(r.assume_role_policy_document)
            .map_err(|e| format!("{owner}, AssumeRolePolicyDocument: {e}"))?;
        data.roles.push(IamRole {
            trust_policy,
            inline_policies: inline(r.role_policy_list, &owner)?,
            attached_policies: attached(r.attached_managed_policies),
            instance_profiles: r.instance_profile_list.into_iter().map(|p| p.arn).collect(),
            permissions_boundary: r
                .permissions_boundary
                .and_then(|b| b.permissions_boundary_arn),
            name: r.role_name,
            arn: r.arn,
            id: r.role_id,
        });
    }
    for p in raw.policies {
        let default = p
            .policy_version_list
            .into_iter()
            .find(|v| v.is_default_version || v.version_id == p.default_version_id);
        let document = match default {
            Some(v) => decode_document(v.document)
                .map_err(|e| format!("policy {}, version {}: {e}", p.arn, v.version_id))?,
            None => Value::Null,
        };
        data.policies.push(ManagedPolicy {
            name: p.policy_name,
            arn: p.arn,
            default_version: p.default_version_id,
            document,
            attachment_count: p.attachment_count,
        });
    }
    Ok(data)
}

/// The account the principals belong to (from their ARNs).
pub fn account_of(data: &IamData) -> Option<String> {
    data.roles
        .iter()
        .map(|r| &r.arn)
        .chain(data.users.iter().map(|u| &u.arn))
        .chain(data.groups.iter().map(|g| &g.arn))
        .find_map(|arn| super::snapshot::arn_account(arn).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_encoded_and_json_documents_decode_to_the_same_value() {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]});
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%7D%5D%7D";
        assert_eq!(decode_document(json!(encoded)).unwrap(), doc);
        assert_eq!(decode_document(doc.clone()).unwrap(), doc);
        assert_eq!(decode_document(json!(doc.to_string())).unwrap(), doc);
        assert!(decode_document(json!("%7Bnot json")).is_err());
        assert!(
            decode_document(json!("%ZZ"))
                .unwrap_err()
                .contains("percent")
        );
    }

    #[test]
    fn parses_cli_output_with_default_policy_versions() {
        let raw = json!({
            "UserDetailList": [{"UserName": "alice", "UserId": "AID", "Arn": "arn:aws:iam::123456789012:user/alice",
                "GroupList": ["devs"], "AttachedManagedPolicies": [{"PolicyName": "p", "PolicyArn": "arn:aws:iam::123456789012:policy/p"}],
                "UserPolicyList": [{"PolicyName": "self", "PolicyDocument": {"Statement": []}}]}],
            "GroupDetailList": [{"GroupName": "devs", "Arn": "arn:aws:iam::123456789012:group/devs"}],
            "RoleDetailList": [{"RoleName": "app", "Arn": "arn:aws:iam::123456789012:role/app",
                "AssumeRolePolicyDocument": "%7B%22Statement%22%3A%5B%5D%7D",
                "InstanceProfileList": [{"Arn": "arn:aws:iam::123456789012:instance-profile/app"}]}],
            "Policies": [{"PolicyName": "p", "Arn": "arn:aws:iam::123456789012:policy/p", "DefaultVersionId": "v2",
                "PolicyVersionList": [{"VersionId": "v1", "IsDefaultVersion": false, "Document": {"v": 1}},
                                      {"VersionId": "v2", "IsDefaultVersion": true, "Document": {"v": 2}}]}]
        });
        assert!(looks_like(&raw));
        let data = parse(raw).unwrap();
        assert_eq!(data.users[0].groups, vec!["devs"]);
        assert_eq!(data.roles[0].trust_policy, json!({"Statement": []}));
        assert_eq!(data.roles[0].instance_profiles.len(), 1);
        assert_eq!(data.policies[0].document, json!({"v": 2}));
        assert_eq!(account_of(&data).as_deref(), Some("123456789012"));
    }

    #[test]
    fn a_bad_document_names_its_owner() {
        let raw = json!({"RoleDetailList": [{"RoleName": "app", "Arn": "arn:aws:iam::1:role/app",
            "RolePolicyList": [{"PolicyName": "broken", "PolicyDocument": "%7Bnope"}]}]});
        let err = parse(raw).unwrap_err();
        assert!(
            err.contains("role arn:aws:iam::1:role/app") && err.contains("broken"),
            "{err}"
        );
    }
}
