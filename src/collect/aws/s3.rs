//! S3: every bucket with its region, Block Public Access settings, ACL, policy, policy
//! status and default encryption. "There is none" answers (NoSuchBucketPolicy and
//! friends) are data; anything else that fails is recorded per bucket and field.

use std::collections::HashMap;

use aws_config::SdkConfig;
use futures::StreamExt;
use serde_json::Value;

use crate::inventory::cloud::authorization_details::decode_document;
use crate::inventory::cloud::snapshot::{AclGrant, Bucket, PublicAccessBlock, Section};

/// Buckets read at once.
const CONCURRENCY: usize = 8;

pub async fn collect(config: &SdkConfig) -> Section<Vec<Bucket>> {
    let s3 = super::client::s3(config);
    let mut names = Vec::new();
    let mut pages = s3.list_buckets().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => names.extend(
                page.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_owned)),
            ),
            Err(e) => {
                return Section::NotCollected {
                    error: super::describe("s3:ListBuckets", &e),
                };
            }
        }
    }
    // A client per region: a bucket answers only in its own region.
    let mut clients: HashMap<String, aws_sdk_s3::Client> = HashMap::new();
    let mut located = Vec::new();
    for name in names {
        let region = match s3.get_bucket_location().bucket(&name).send().await {
            Ok(out) => Some(
                out.location_constraint()
                    .map(|c| c.as_str().to_owned())
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "us-east-1".to_owned()),
            ),
            Err(_) => None,
        };
        let client = match &region {
            Some(r) => clients
                .entry(r.clone())
                .or_insert_with(|| super::client::s3(&super::client::in_region(config, r)))
                .clone(),
            None => s3.clone(),
        };
        located.push((name, region, client));
    }
    let buckets = futures::stream::iter(located)
        .map(|(name, region, client)| async move { bucket(&client, name, region).await })
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    Section::Collected { data: buckets }
}

async fn bucket(s3: &aws_sdk_s3::Client, name: String, region: Option<String>) -> Bucket {
    let public_access_block = match s3.get_public_access_block().bucket(&name).send().await {
        Ok(out) => Section::Collected {
            data: out
                .public_access_block_configuration()
                .map(|c| PublicAccessBlock {
                    block_public_acls: c.block_public_acls().unwrap_or(false),
                    ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                    block_public_policy: c.block_public_policy().unwrap_or(false),
                    restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                }),
        },
        Err(e) if super::is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => {
            Section::Collected { data: None }
        }
        Err(e) => Section::NotCollected {
            error: super::describe("s3:GetPublicAccessBlock", &e),
        },
    };
    let acl = match s3.get_bucket_acl().bucket(&name).send().await {
        Ok(out) => Section::Collected {
            data: out
                .grants()
                .iter()
                .map(|g| AclGrant {
                    grantee: g
                        .grantee()
                        .and_then(|who| who.uri().or(who.id()).or(who.email_address()))
                        .unwrap_or_default()
                        .to_owned(),
                    permission: g
                        .permission()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                })
                .collect(),
        },
        Err(e) => Section::NotCollected {
            error: super::describe("s3:GetBucketAcl", &e),
        },
    };
    let policy = match s3.get_bucket_policy().bucket(&name).send().await {
        Ok(out) => match out
            .policy()
            .map(|p| decode_document(Value::String(p.to_owned())))
        {
            Some(Ok(doc)) => Section::Collected { data: Some(doc) },
            Some(Err(e)) => Section::NotCollected {
                error: format!("s3:GetBucketPolicy: {e}"),
            },
            None => Section::Collected { data: None },
        },
        Err(e) if super::is_code(&e, &["NoSuchBucketPolicy"]) => Section::Collected { data: None },
        Err(e) => Section::NotCollected {
            error: super::describe("s3:GetBucketPolicy", &e),
        },
    };
    let policy_is_public = match s3.get_bucket_policy_status().bucket(&name).send().await {
        Ok(out) => Section::Collected {
            data: out.policy_status().and_then(|s| s.is_public()),
        },
        Err(e) if super::is_code(&e, &["NoSuchBucketPolicy"]) => Section::Collected { data: None },
        Err(e) => Section::NotCollected {
            error: super::describe("s3:GetBucketPolicyStatus", &e),
        },
    };
    let encryption = match s3.get_bucket_encryption().bucket(&name).send().await {
        Ok(out) => Section::Collected {
            data: out
                .server_side_encryption_configuration()
                .map(|c| {
                    c.rules()
                        .iter()
                        .filter_map(|r| r.apply_server_side_encryption_by_default())
                        .map(|d| d.sse_algorithm().as_str().to_owned())
                        .collect()
                })
                .unwrap_or_default(),
        },
        Err(e) if super::is_code(&e, &["ServerSideEncryptionConfigurationNotFoundError"]) => {
            Section::Collected { data: Vec::new() }
        }
        Err(e) => Section::NotCollected {
            error: super::describe("s3:GetBucketEncryption", &e),
        },
    };
    Bucket {
        name,
        region,
        public_access_block,
        acl,
        policy,
        policy_is_public,
        encryption,
    }
}
