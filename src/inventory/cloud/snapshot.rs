//! The AWS snapshot: what `posture collect aws` writes and the operator ingests,
//! versioned by `schema`. Its form is documented in `docs/aws-snapshot.md`.
//!
//! Every list the collector reads is a [`Section`]: either the data, or "not collected"
//! with the error (a denied call, a throttled one that kept failing). A section that
//! could not be read is never an empty list, so a rule can tell "no public bucket" from
//! "buckets unknown".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema identifier this version of posture writes and reads.
pub const SCHEMA: &str = "posture.dev/aws-snapshot/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsSnapshot {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When collection finished (RFC 3339).
    pub collected_at: String,
    /// `posture <version>`.
    pub collector: String,
    pub accounts: Vec<AccountSnapshot>,
}

/// Data, or the reason it is missing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "camelCase", deny_unknown_fields)]
pub enum Section<T> {
    Collected { data: T },
    NotCollected { error: String },
}

impl<T> Section<T> {
    pub fn data(&self) -> Option<&T> {
        match self {
            Section::Collected { data } => Some(data),
            Section::NotCollected { .. } => None,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Section::Collected { .. } => None,
            Section::NotCollected { error } => Some(error),
        }
    }

    pub fn from_result<E: std::fmt::Display>(result: Result<T, E>) -> Self {
        match result {
            Ok(data) => Section::Collected { data },
            Err(e) => Section::NotCollected {
                error: e.to_string(),
            },
        }
    }
}

impl<T: Default> Default for Section<T> {
    fn default() -> Self {
        Section::Collected { data: T::default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSnapshot {
    /// 12-digit account id.
    pub account_id: String,
    /// The identity the collector ran as (sts:GetCallerIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_arn: Option<String>,
    pub regions: Vec<String>,
    /// Users, groups, roles and managed policies (iam:GetAccountAuthorizationDetails).
    pub iam: Section<IamData>,
    /// S3 is global; each bucket records its region.
    pub s3: Section<Vec<Bucket>>,
    /// EC2, VPC, EBS, RDS and EKS data per region.
    #[serde(default)]
    pub regional: BTreeMap<String, RegionSnapshot>,
}

impl AccountSnapshot {
    /// The sections that could not be read: (region, section, error).
    pub fn missing_sections(&self) -> Vec<(Option<&str>, String, &str)> {
        fn add<'a>(
            out: &mut Vec<(Option<&'a str>, String, &'a str)>,
            region: Option<&'a str>,
            section: String,
            error: Option<&'a str>,
        ) {
            if let Some(error) = error {
                out.push((region, section, error));
            }
        }
        let mut out = Vec::new();
        add(&mut out, None, "iam".into(), self.iam.error());
        add(&mut out, None, "s3".into(), self.s3.error());
        for bucket in self.s3.data().into_iter().flatten() {
            for (what, error) in [
                ("publicAccessBlock", bucket.public_access_block.error()),
                ("acl", bucket.acl.error()),
                ("policy", bucket.policy.error()),
                ("policyStatus", bucket.policy_is_public.error()),
                ("encryption", bucket.encryption.error()),
            ] {
                add(&mut out, None, format!("s3:{} {what}", bucket.name), error);
            }
        }
        for (region, r) in &self.regional {
            let region = Some(region.as_str());
            for (section, error) in [
                ("ec2:instances", r.instances.error()),
                ("ec2:securityGroups", r.security_groups.error()),
                ("ec2:vpcs", r.vpcs.error()),
                ("ec2:subnets", r.subnets.error()),
                ("ec2:routeTables", r.route_tables.error()),
                ("ec2:internetGateways", r.internet_gateways.error()),
                ("ec2:volumes", r.volumes.error()),
                ("rds:dbInstances", r.db_instances.error()),
                ("eks:clusters", r.eks_clusters.error()),
            ] {
                add(&mut out, region, section.into(), error);
            }
            for c in r.eks_clusters.data().into_iter().flatten() {
                add(
                    &mut out,
                    region,
                    format!("eks:podIdentityAssociations {}", c.name),
                    c.pod_identity_associations.error(),
                );
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegionSnapshot {
    pub instances: Section<Vec<Instance>>,
    pub security_groups: Section<Vec<SecurityGroup>>,
    pub vpcs: Section<Vec<Vpc>>,
    pub subnets: Section<Vec<Subnet>>,
    pub route_tables: Section<Vec<RouteTable>>,
    pub internet_gateways: Section<Vec<InternetGateway>>,
    pub volumes: Section<Vec<Volume>>,
    pub db_instances: Section<Vec<DbInstance>>,
    pub eks_clusters: Section<Vec<EksCluster>>,
}

// ---- IAM -----------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamData {
    pub users: Vec<IamUser>,
    pub groups: Vec<IamGroup>,
    pub roles: Vec<IamRole>,
    /// Customer and AWS managed policies, with their default version's document.
    pub policies: Vec<ManagedPolicy>,
}

/// An inline policy; the document is decoded JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InlinePolicy {
    pub name: String,
    pub document: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub inline_policies: Vec<InlinePolicy>,
    /// ARNs of attached managed policies.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamGroup {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub inline_policies: Vec<InlinePolicy>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IamRole {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub id: String,
    /// The trust policy (AssumeRolePolicyDocument), decoded.
    #[serde(default)]
    pub trust_policy: Value,
    #[serde(default)]
    pub inline_policies: Vec<InlinePolicy>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
    /// ARNs of the instance profiles that carry the role.
    #[serde(default)]
    pub instance_profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedPolicy {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub default_version: String,
    /// The default version's document, decoded.
    #[serde(default)]
    pub document: Value,
    #[serde(default)]
    pub attachment_count: u32,
}

// ---- EC2 and VPC ---------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    #[serde(default)]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// ARN of the instance profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    /// IMDS `HttpTokens`: `required` (IMDSv2 only) or `optional` (IMDSv1 allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<String>,
    /// IMDS `HttpEndpoint`: `enabled` or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_put_response_hop_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub ingress: Vec<IpPermission>,
}

/// One ingress permission. `protocol` is `-1` for all traffic; ports are absent then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpPermission {
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default)]
    pub ipv4_ranges: Vec<String>,
    #[serde(default)]
    pub ipv6_ranges: Vec<String>,
    /// Security groups allowed as sources.
    #[serde(default)]
    pub source_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vpc {
    pub id: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subnet {
    pub id: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub cidr: String,
    #[serde(default)]
    pub map_public_ip_on_launch: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTable {
    pub id: String,
    #[serde(default)]
    pub vpc_id: String,
    /// Subnets explicitly associated.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Whether it is the VPC's main route table (covers unassociated subnets).
    #[serde(default)]
    pub main: bool,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub destination: String,
    /// `igw-...`, `nat-...`, `local`, ...
    #[serde(default)]
    pub target: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternetGateway {
    pub id: String,
    #[serde(default)]
    pub vpcs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub id: String,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub size_gib: i32,
    /// Instances it is attached to.
    #[serde(default)]
    pub attached_to: Vec<String>,
}

// ---- S3, RDS, EKS --------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The bucket's Block Public Access settings; `None` when none is configured.
    pub public_access_block: Section<Option<PublicAccessBlock>>,
    /// ACL grants (grantee URI or id, and permission).
    pub acl: Section<Vec<AclGrant>>,
    /// The bucket policy, decoded; `None` when the bucket has none.
    pub policy: Section<Option<Value>>,
    /// S3's own verdict (GetBucketPolicyStatus); `None` without a policy.
    pub policy_is_public: Section<Option<bool>>,
    /// Default encryption algorithms (`AES256`, `aws:kms`); empty when none.
    pub encryption: Section<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn all(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AclGrant {
    /// Group URI (`http://acs.amazonaws.com/groups/global/AllUsers`) or canonical id.
    pub grantee: String,
    pub permission: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DbInstance {
    pub id: String,
    pub arn: String,
    #[serde(default)]
    pub engine: String,
    #[serde(default)]
    pub publicly_accessible: bool,
    #[serde(default)]
    pub storage_encrypted: bool,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksCluster {
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub endpoint_public_access: bool,
    #[serde(default)]
    pub public_access_cidrs: Vec<String>,
    /// The cluster's OIDC issuer (IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    pub pod_identity_associations: Section<Vec<PodIdentityAssociation>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodIdentityAssociation {
    pub namespace: String,
    pub service_account: String,
    pub role_arn: String,
    #[serde(default)]
    pub association_id: String,
}

/// Why a snapshot cannot be used. The previous good one stays in use.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a posture AWS snapshot: {0}")]
    Malformed(String),
    #[error("snapshot schema {found:?} is not supported (this posture reads {SCHEMA})")]
    Schema { found: String },
    #[error("account {index}: {why}")]
    Account { index: usize, why: String },
    #[error("the snapshot holds no account")]
    Empty,
}

impl AwsSnapshot {
    /// Parses and validates a snapshot. A truncated or half-written file fails here,
    /// before anything is replaced.
    pub fn parse(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let snapshot: AwsSnapshot = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json's message names line, column and the field.
            SnapshotError::Malformed(e.to_string())
        })?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    pub fn validate(&self) -> Result<(), SnapshotError> {
        if self.schema != SCHEMA {
            return Err(SnapshotError::Schema {
                found: self.schema.clone(),
            });
        }
        if self.accounts.is_empty() {
            return Err(SnapshotError::Empty);
        }
        for (index, account) in self.accounts.iter().enumerate() {
            let id = &account.account_id;
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SnapshotError::Account {
                    index,
                    why: format!("accountId {id:?} is not a 12-digit AWS account id"),
                });
            }
            if self.accounts[..index].iter().any(|a| a.account_id == *id) {
                return Err(SnapshotError::Account {
                    index,
                    why: format!("account {id} appears twice"),
                });
            }
            if let Some(why) = undecoded_document(account) {
                return Err(SnapshotError::Account { index, why });
            }
            if let Some(iam) = account.iam.data() {
                let foreign = iam
                    .roles
                    .iter()
                    .map(|r| &r.arn)
                    .chain(iam.users.iter().map(|u| &u.arn))
                    .find(|arn| arn_account(arn).is_some_and(|a| a != id));
                if let Some(arn) = foreign {
                    return Err(SnapshotError::Account {
                        index,
                        why: format!("{arn} does not belong to account {id}"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The first policy document of an account (IAM policies, trust policies, bucket
/// policies) that is not a decoded JSON object, described. A document left as text
/// (URL-encoded, as the IAM API returns it) would read as a policy with no statements:
/// granting nothing, silently.
fn undecoded_document(account: &AccountSnapshot) -> Option<String> {
    let empty = IamData::default();
    let iam = account.iam.data().unwrap_or(&empty);
    fn inline<'a>(owner: &'a str, policies: &'a [InlinePolicy]) -> Vec<(Place<'a>, &'a Value)> {
        policies
            .iter()
            .map(|p| (Place::Inline(owner, &p.name), &p.document))
            .collect()
    }
    // Where each document is, described only if one is wrong: validating a large
    // account formats nothing.
    let mut documents = Vec::new();
    for user in &iam.users {
        documents.extend(inline(&user.arn, &user.inline_policies));
    }
    for group in &iam.groups {
        documents.extend(inline(&group.arn, &group.inline_policies));
    }
    for role in &iam.roles {
        documents.extend(inline(&role.arn, &role.inline_policies));
        if !role.trust_policy.is_null() {
            documents.push((Place::Trust(&role.arn), &role.trust_policy));
        }
    }
    for policy in &iam.policies {
        if !policy.document.is_null() {
            documents.push((Place::Managed(&policy.arn), &policy.document));
        }
    }
    for bucket in account.s3.data().into_iter().flatten() {
        if let Some(Some(policy)) = bucket.policy.data() {
            documents.push((Place::Bucket(&bucket.name), policy));
        }
    }
    let (place, document) = documents
        .into_iter()
        .find(|(_, document)| !document.is_object())?;
    let found = match document {
        Value::String(_) => "text (still encoded?)",
        Value::Array(_) => "a list",
        _ => "not an object",
    };
    Some(format!(
        "{place} is {found}; a snapshot holds policy documents decoded into JSON objects \
         (give `posture scan --aws` the raw authorization-details file to have them decoded)"
    ))
}

/// Where a policy document sits in a snapshot, for [`undecoded_document`]'s message.
enum Place<'a> {
    Inline(&'a str, &'a str),
    Trust(&'a str),
    Managed(&'a str),
    Bucket(&'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Inline(owner, name) => write!(f, "{owner}: inline policy {name}"),
            Place::Trust(role) => write!(f, "{role}: trustPolicy"),
            Place::Managed(policy) => write!(f, "{policy}: document"),
            Place::Bucket(bucket) => write!(f, "bucket {bucket}: policy"),
        }
    }
}

/// Reads what `posture scan --aws` and `posture query --snapshot` accept: a snapshot,
/// or the raw output of `aws iam get-account-authorization-details` (IAM only; the
/// other sections are then "not collected").
pub fn load(bytes: &[u8]) -> Result<AwsSnapshot, String> {
    // Which format, from the top-level keys alone: a first pass skips every value
    // without building a tree; the second deserializes straight into the model.
    let top: BTreeMap<String, serde::de::IgnoredAny> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JSON object: {e}"))?;
    if top.contains_key("schema") {
        return AwsSnapshot::parse(bytes).map_err(|e| e.to_string());
    }
    let details = [
        "UserDetailList",
        "RoleDetailList",
        "GroupDetailList",
        "Policies",
    ];
    if !details.iter().any(|k| top.contains_key(*k)) {
        return Err(format!(
            "neither a posture AWS snapshot (schema {SCHEMA}) nor GetAccountAuthorizationDetails output (UserDetailList, RoleDetailList, ...)"
        ));
    }
    let iam = super::authorization_details::parse_bytes(bytes)?;
    let account_id = super::authorization_details::account_of(&iam)
        .ok_or("the authorization details name no principal, so no account")?;
    let missing = || Section::NotCollected {
        error: "not in an authorization-details file".to_owned(),
    };
    let snapshot = AwsSnapshot {
        schema: SCHEMA.to_owned(),
        collected_at: String::new(),
        collector: "aws iam get-account-authorization-details".to_owned(),
        accounts: vec![AccountSnapshot {
            account_id,
            caller_arn: None,
            regions: Vec::new(),
            iam: Section::Collected { data: iam },
            s3: missing(),
            regional: BTreeMap::new(),
        }],
    };
    snapshot.validate().map_err(|e| e.to_string())?;
    Ok(snapshot)
}

/// The account id of an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    let _service = parts.next()?;
    let _region = parts.next()?;
    parts.next().filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> AwsSnapshot {
        AwsSnapshot {
            schema: SCHEMA.into(),
            collected_at: "2026-12-04T00:00:00Z".into(),
            collector: "posture test".into(),
            accounts: vec![AccountSnapshot {
                account_id: "123456789012".into(),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_snapshot_round_trips_and_not_collected_sections_keep_their_error() {
        let mut snapshot = minimal();
        snapshot.accounts[0].s3 = Section::NotCollected {
            error: "AccessDenied: s3:ListAllMyBuckets".into(),
        };
        let text = serde_json::to_string(&snapshot).unwrap();
        assert!(
            text.contains(r#""s3":{"status":"notCollected","error":"AccessDenied"#),
            "{text}"
        );
        let back = AwsSnapshot::parse(text.as_bytes()).unwrap();
        assert_eq!(back, snapshot);
        assert_eq!(
            back.accounts[0].s3.error(),
            Some("AccessDenied: s3:ListAllMyBuckets")
        );
    }

    #[test]
    fn truncated_foreign_and_wrong_schema_snapshots_are_refused_with_the_reason() {
        let text = serde_json::to_string(&minimal()).unwrap();
        let truncated = &text[..text.len() / 2];
        let err = AwsSnapshot::parse(truncated.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("EOF") || err.contains("line"), "{err}");

        let mut other = minimal();
        other.schema = "posture.dev/aws-snapshot/v9".into();
        let err = other.validate().unwrap_err().to_string();
        assert!(err.contains("v9") && err.contains(SCHEMA), "{err}");

        let mut foreign = minimal();
        foreign.accounts[0].iam = Section::Collected {
            data: IamData {
                roles: vec![IamRole {
                    name: "x".into(),
                    arn: "arn:aws:iam::999999999999:role/x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        };
        let err = foreign.validate().unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");

        let mut bad_id = minimal();
        bad_id.accounts[0].account_id = "12345".into();
        assert!(bad_id.validate().is_err());

        let unknown = text.replace(r#""collector""#, r#""colector""#);
        let err = AwsSnapshot::parse(unknown.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("colector"), "{err}");
    }

    #[test]
    fn undecoded_documents_and_unknown_section_fields_are_refused() {
        let mut encoded = minimal();
        encoded.accounts[0].iam = Section::Collected {
            data: IamData {
                roles: vec![IamRole {
                    name: "x".into(),
                    arn: "arn:aws:iam::123456789012:role/x".into(),
                    inline_policies: vec![InlinePolicy {
                        name: "inline".into(),
                        document: Value::String("%7B%22Statement%22%3A%5B%5D%7D".into()),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        };
        let err = encoded.validate().unwrap_err().to_string();
        assert!(
            err.contains("role/x: inline policy inline is text") && err.contains("decoded"),
            "{err}"
        );
        if let Section::Collected { data } = &mut encoded.accounts[0].iam {
            data.roles[0].inline_policies[0].document = serde_json::json!({"Statement": []});
            data.roles[0].trust_policy = serde_json::json!([]);
        }
        let err = encoded.validate().unwrap_err().to_string();
        assert!(err.contains("trustPolicy is a list"), "{err}");
        if let Section::Collected { data } = &mut encoded.accounts[0].iam {
            data.roles[0].trust_policy = Value::Null;
        }
        encoded.validate().unwrap();

        let text = serde_json::to_string(&minimal()).unwrap();
        let typo = text.replacen(
            r#""status":"collected""#,
            r#""status":"collected","eror":"x""#,
            1,
        );
        assert_ne!(typo, text, "the snapshot has a collected section");
        let err = AwsSnapshot::parse(typo.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("eror"), "{err}");
    }

    #[test]
    fn arn_accounts() {
        assert_eq!(
            arn_account("arn:aws:iam::123456789012:role/x"),
            Some("123456789012")
        );
        assert_eq!(arn_account("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_account("nonsense"), None);
    }
}
