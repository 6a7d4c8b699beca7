//! IAM through GetAccountAuthorizationDetails (paginated): users, groups, roles with
//! trust policies and instance profiles, managed policies with their default version.
//! Documents arrive URL-encoded and are decoded here.

use aws_config::SdkConfig;
use serde_json::Value;

use crate::inventory::cloud::authorization_details::decode_document;
use crate::inventory::cloud::snapshot::{
    IamData, IamGroup, IamRole, IamUser, InlinePolicy, ManagedPolicy, Section,
};

fn document(text: Option<&str>, what: &str) -> Result<Value, String> {
    match text {
        Some(t) => decode_document(Value::String(t.to_owned())).map_err(|e| format!("{what}: {e}")),
        None => Ok(Value::Null),
    }
}

fn inline(
    list: &[aws_sdk_iam::types::PolicyDetail],
    owner: &str,
) -> Result<Vec<InlinePolicy>, String> {
    list.iter()
        .map(|p| {
            let name = p.policy_name().unwrap_or_default().to_owned();
            Ok(InlinePolicy {
                document: document(
                    p.policy_document(),
                    &format!("{owner} inline policy {name}"),
                )?,
                name,
            })
        })
        .collect()
}

fn attached(list: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<String> {
    list.iter()
        .filter_map(|a| a.policy_arn().map(str::to_owned))
        .collect()
}

pub async fn collect(config: &SdkConfig) -> Section<IamData> {
    Section::from_result(read(config).await)
}

async fn read(config: &SdkConfig) -> Result<IamData, String> {
    let iam = aws_sdk_iam::Client::new(config);
    let mut pages = iam
        .get_account_authorization_details()
        .into_paginator()
        .send();
    let mut data = IamData::default();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| super::describe("iam:GetAccountAuthorizationDetails", &e))?;
        for u in page.user_detail_list() {
            let arn = u.arn().unwrap_or_default().to_owned();
            data.users.push(IamUser {
                name: u.user_name().unwrap_or_default().to_owned(),
                inline_policies: inline(u.user_policy_list(), &arn)?,
                attached_policies: attached(u.attached_managed_policies()),
                groups: u.group_list().to_vec(),
                permissions_boundary: u
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn().map(str::to_owned)),
                id: u.user_id().unwrap_or_default().to_owned(),
                arn,
            });
        }
        for g in page.group_detail_list() {
            let arn = g.arn().unwrap_or_default().to_owned();
            data.groups.push(IamGroup {
                name: g.group_name().unwrap_or_default().to_owned(),
                inline_policies: inline(g.group_policy_list(), &arn)?,
                attached_policies: attached(g.attached_managed_policies()),
                arn,
            });
        }
        for r in page.role_detail_list() {
            let arn = r.arn().unwrap_or_default().to_owned();
            data.roles.push(IamRole {
                name: r.role_name().unwrap_or_default().to_owned(),
                trust_policy: document(
                    r.assume_role_policy_document(),
                    &format!("{arn} trust policy"),
                )?,
                inline_policies: inline(r.role_policy_list(), &arn)?,
                attached_policies: attached(r.attached_managed_policies()),
                instance_profiles: r
                    .instance_profile_list()
                    .iter()
                    .map(|p| p.arn().to_owned())
                    .collect(),
                permissions_boundary: r
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn().map(str::to_owned)),
                id: r.role_id().unwrap_or_default().to_owned(),
                arn,
            });
        }
        for p in page.policies() {
            let arn = p.arn().unwrap_or_default().to_owned();
            let default = p.default_version_id().unwrap_or_default().to_owned();
            let version = p
                .policy_version_list()
                .iter()
                .find(|v| v.is_default_version() || v.version_id() == Some(default.as_str()));
            data.policies.push(ManagedPolicy {
                // Some endpoints (moto) leave PolicyName out; the ARN ends with it.
                name: p
                    .policy_name()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| crate::inventory::cloud::short_name(&arn))
                    .to_owned(),
                document: document(
                    version.and_then(|v| v.document()),
                    &format!("{arn} version {default}"),
                )?,
                default_version: default,
                attachment_count: p.attachment_count().unwrap_or(0).max(0) as u32,
                arn,
            });
        }
    }
    Ok(data)
}
