//! `posture collect aws`: reads one or more AWS accounts into a snapshot
//! ([`crate::inventory::cloud::snapshot`]) with aws-sdk-rust. Credentials come from the
//! standard chain (environment, profile, IRSA web identity, EKS Pod Identity, IMDS);
//! `--account ID=ROLE_ARN` assumes a role per account. Pagination everywhere, standard
//! retries with exponential back-off for throttling. A call that is denied or keeps
//! failing is recorded in the snapshot as "not collected" with its error: never a
//! silently empty list. The collector reads; it never judges.

mod client;
mod ec2;
mod iam;
mod other;
mod s3;
pub mod upload;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::inventory::cloud::snapshot::{AccountSnapshot, AwsSnapshot, SCHEMA};

/// One account to collect: its id (checked against the credentials) and the role to
/// assume there.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountTarget {
    pub id: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

/// `ID`, `ID=ROLE_ARN` or `ID=ROLE_ARN,external-id=VALUE`.
pub fn parse_account(text: &str) -> Result<AccountTarget, String> {
    let (id, rest) = match text.split_once('=') {
        Some((id, rest)) => (id, Some(rest)),
        None => (text, None),
    };
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{id:?} is not a 12-digit account id (form: ID[=ROLE_ARN[,external-id=X]])"
        ));
    }
    let (role_arn, external_id) = match rest {
        None => (None, None),
        Some(rest) => match rest.split_once(",external-id=") {
            Some((role, external)) => (Some(role.to_owned()), Some(external.to_owned())),
            None => (Some(rest.to_owned()), None),
        },
    };
    if let Some(role) = &role_arn
        && !role.starts_with("arn:")
    {
        return Err(format!("{role:?} is not a role ARN"));
    }
    Ok(AccountTarget {
        id: Some(id.to_owned()),
        role_arn,
        external_id,
    })
}

/// `posture collect aws` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectAwsArgs {
    /// Regions to collect (EC2, VPC, EBS, RDS, EKS); IAM and S3 are global.
    /// Default: the region of the credentials' configuration (AWS_REGION, profile).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// An account and, optionally, the role to assume in it:
    /// `ID`, `ID=ROLE_ARN` or `ID=ROLE_ARN,external-id=VALUE`. Repeatable. Default: the
    /// account of the ambient credentials.
    #[arg(long = "account", value_name = "ID[=ROLE_ARN]", value_parser = parse_account)]
    pub accounts: Vec<AccountTarget>,
    /// Assume this role for the ambient account (shorthand for one --account).
    #[arg(long, value_name = "ARN", conflicts_with = "accounts")]
    pub assume_role: Option<String>,
    /// ExternalId for --assume-role.
    #[arg(long, requires = "assume_role")]
    pub external_id: Option<String>,
    /// Write the snapshot to this file (`-`: standard output). The file is replaced
    /// only once the snapshot is complete.
    #[arg(long, short, value_name = "FILE", required_unless_present = "upload")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub upload: upload::UploadArgs,
}

/// Collects every account; a failure of one account's credentials stops everything
/// (the snapshot would otherwise silently miss an account).
pub async fn collect(args: &CollectAwsArgs) -> Result<AwsSnapshot> {
    let base = client::base_config().await;
    let regions = if args.regions.is_empty() {
        match base.region() {
            Some(r) => vec![r.to_string()],
            None => {
                bail!("no region: pass --region (repeatable) or set AWS_REGION / a profile region")
            }
        }
    } else {
        args.regions.clone()
    };
    let mut targets = args.accounts.clone();
    if targets.is_empty() {
        targets.push(AccountTarget {
            id: None,
            role_arn: args.assume_role.clone(),
            external_id: args.external_id.clone(),
        });
    }
    let mut accounts = Vec::new();
    for target in &targets {
        let config = client::account_config(&base, target).await?;
        let identity = client::caller_identity(&config)
            .await
            .with_context(|| match &target.role_arn {
                Some(role) => format!("cannot use role {role}: check its trust policy and the ExternalId"),
                None => "no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with IRSA / EKS Pod Identity".to_owned(),
            })?;
        if let Some(expected) = &target.id
            && *expected != identity.0
        {
            bail!(
                "the credentials for account {expected} belong to account {} ({})",
                identity.0,
                identity.1
            );
        }
        tracing::info!(account = %identity.0, caller = %identity.1, regions = ?regions, "collecting");
        accounts.push(collect_account(&config, identity, &regions).await);
    }
    Ok(AwsSnapshot {
        schema: SCHEMA.to_owned(),
        collected_at: k8s_openapi::jiff::Timestamp::now().to_string(),
        collector: format!("posture {}", env!("CARGO_PKG_VERSION")),
        accounts,
    })
}

async fn collect_account(
    config: &aws_config::SdkConfig,
    (account_id, caller_arn): (String, String),
    regions: &[String],
) -> AccountSnapshot {
    let iam = iam::collect(config).await;
    tracing::info!(account = %account_id, "IAM {}", summary(&iam, |d| format!("{} users, {} groups, {} roles, {} policies", d.users.len(), d.groups.len(), d.roles.len(), d.policies.len())));
    let s3 = s3::collect(config).await;
    tracing::info!(account = %account_id, "S3 {}", summary(&s3, |d| format!("{} buckets", d.len())));
    let mut regional = BTreeMap::new();
    for region in regions {
        let config = client::in_region(config, region);
        let snapshot = other::collect_region(&config).await;
        tracing::info!(
            account = %account_id, region = %region,
            "EC2 {}, RDS {}, EKS {}",
            summary(&snapshot.instances, |d| format!("{} instances", d.len())),
            summary(&snapshot.db_instances, |d| format!("{} instances", d.len())),
            summary(&snapshot.eks_clusters, |d| format!("{} clusters", d.len())),
        );
        regional.insert(region.clone(), snapshot);
    }
    AccountSnapshot {
        account_id,
        caller_arn: Some(caller_arn),
        regions: regions.to_vec(),
        iam,
        s3,
        regional,
    }
}

type HttpResponse = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// `operation: Code: message` of a failed call, as recorded in "not collected". When
/// the SDK could not parse the service's error (endpoints that answer in another
/// dialect), the HTTP status and the code and message found in the body are used.
pub(crate) fn describe<E>(
    operation: &str,
    error: &aws_sdk_sts::error::SdkError<E, HttpResponse>,
) -> String
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
    if let (Some(code), message) = (error.code(), error.message()) {
        return match message {
            Some(message) => format!("{operation}: {code}: {message}"),
            None => format!("{operation}: {code}"),
        };
    }
    if let SdkError::ServiceError(service) = error {
        let raw = service.raw();
        let body = raw
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let between = |open: &str, close: &str| {
            let start = body.find(open)? + open.len();
            let end = body[start..].find(close)? + start;
            Some(body[start..end].trim().to_owned())
        };
        let code = between("<Code>", "</Code>");
        let message = between("<Message>", "</Message>");
        return match (code, message) {
            (Some(code), Some(message)) => format!("{operation}: {code}: {message}"),
            (Some(code), None) => format!("{operation}: {code}"),
            _ => format!(
                "{operation}: HTTP {} {}",
                raw.status().as_u16(),
                truncate(body.trim(), 200)
            ),
        };
    }
    let text = aws_sdk_sts::error::DisplayErrorContext(error).to_string();
    format!("{operation}: {}", truncate(&text, 300))
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether a failed call's error code is one of `codes` (absence that is data, such as
/// NoSuchBucketPolicy).
pub(crate) fn is_code<E, R>(error: &aws_sdk_sts::error::SdkError<E, R>, codes: &[&str]) -> bool
where
    E: aws_sdk_sts::error::ProvideErrorMetadata,
{
    use aws_sdk_sts::error::ProvideErrorMetadata;
    error.code().is_some_and(|c| codes.contains(&c))
}

fn summary<T>(
    section: &crate::inventory::cloud::snapshot::Section<T>,
    describe: impl Fn(&T) -> String,
) -> String {
    match section {
        crate::inventory::cloud::snapshot::Section::Collected { data } => describe(data),
        crate::inventory::cloud::snapshot::Section::NotCollected { error } => {
            format!("not collected ({error})")
        }
    }
}

/// Runs `posture collect aws`: collect, then write or upload.
pub async fn run(args: CollectAwsArgs) -> Result<()> {
    let snapshot = collect(&args).await?;
    let body = serde_json::to_vec(&snapshot).context("serialising the snapshot")?;
    let missing: usize = snapshot
        .accounts
        .iter()
        .map(|a| a.missing_sections().len())
        .sum();
    if missing > 0 {
        tracing::warn!(
            "{missing} sections could not be collected; they are marked in the snapshot with the error"
        );
    }
    if let Some(path) = &args.output {
        write_atomically(path, &body)?;
        if path.as_os_str() != "-" {
            eprintln!(
                "wrote {} ({} accounts, {} KB)",
                path.display(),
                snapshot.accounts.len(),
                body.len() / 1024
            );
        }
    }
    if args.upload.upload.is_some() {
        upload::send(&args.upload, &body).await?;
    }
    Ok(())
}

/// Writes to a temporary file next to `path`, then renames: a reader never sees half a
/// snapshot.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_arguments() {
        assert_eq!(
            parse_account("123456789012").unwrap(),
            AccountTarget {
                id: Some("123456789012".into()),
                role_arn: None,
                external_id: None
            }
        );
        let t =
            parse_account("123456789012=arn:aws:iam::123456789012:role/r,external-id=x-1").unwrap();
        assert_eq!(
            t.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        assert_eq!(t.external_id.as_deref(), Some("x-1"));
        assert!(parse_account("1234").unwrap_err().contains("12-digit"));
        assert!(
            parse_account("123456789012=role")
                .unwrap_err()
                .contains("ARN")
        );
    }
}
