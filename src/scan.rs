//! `posture scan`: the cluster rules on manifests, before they reach a cluster. It
//! builds the same inventory the operator builds and runs the same engine, so a
//! finding here is the finding the operator would raise and the webhook would block.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::api::{ScanPolicy, Severity};
use crate::collect::manifests::{InputError, read_inputs};
use crate::report;
use crate::rules::Engine;
use crate::rules::policy::{Policy, PolicySet, today};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Sarif,
}

/// `posture scan` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// Manifest files, folders (searched for .yaml, .yml and .json) or `-` for stdin.
    #[arg(required_unless_present = "aws", value_name = "PATH|-")]
    pub paths: Vec<String>,
    /// An AWS snapshot (`posture collect aws`) or the output of
    /// `aws iam get-account-authorization-details`: cloud rules, and IRSA / Pod
    /// Identity correlation with the manifests. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub aws: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit with code 1 when a finding at or above this severity exists
    /// (critical, high, medium, low, info).
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
    /// A ScanPolicy manifest to apply: rules on/off, severity overrides, namespace
    /// scope, exceptions.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Namespace of manifests that name none (as `kubectl apply -n`).
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// Colour the table: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = ColourChoice::Auto)]
    pub color: ColourChoice,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColourChoice {
    Auto,
    Always,
    Never,
}

/// Exit codes: 0 clean (or below `--fail-on`), 1 a finding at or above `--fail-on`,
/// 2 bad input (reported, after scanning everything that could be read).
pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let policy = match &args.policy {
        Some(path) => match load_policy(path) {
            Ok(policy) => policy,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        },
        None => Policy::allow_all(),
    };
    let mut manifests = read_inputs(&args.paths, &args.namespace);
    let mut inventory = manifests.inventory();
    let cloud_sources = load_cloud(&args.aws, &policy, &mut inventory, &mut manifests.errors);
    let engine = Engine::default();
    let policies = PolicySet::single(policy);
    let raw = engine.evaluate_all(&inventory, &policies);
    // The report needs the findings and where their objects came from, not the
    // objects: letting the inventory go before the report is built keeps the peak
    // to one of the two (tens of MB on a large corpus; the free costs a few ms).
    let cloud = inventory.cloud_shared();
    drop(inventory);
    let sources = manifests.take_sources();

    let findings = report::collect(&engine, raw.iter().flatten(), |f| {
        sources
            .get(&f.subject)
            .or_else(|| f.hit.affected.iter().find_map(|w| sources.get(w)))
            .or_else(|| cloud_sources.get(cloud.account_of(&f.subject)?))
    });
    for error in &manifests.errors {
        eprintln!("error: {error}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = match args.format {
        Format::Table => {
            let colour = match args.color {
                ColourChoice::Always => true,
                ColourChoice::Never => false,
                ColourChoice::Auto => {
                    stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            report::table::write(&mut out, &findings, &manifests.errors, colour)
        }
        Format::Json => report::json::write(&mut out, &findings, &manifests.errors),
        Format::Sarif => report::sarif::write(&mut out, &engine, &findings, &manifests.errors),
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        // `posture scan ... | head` closes the pipe early: not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("cannot write the report to standard output"),
    }
    if manifests.files == 0 && manifests.errors.is_empty() && args.aws.is_empty() {
        eprintln!("warning: no manifests found in {}", args.paths.join(", "));
    }
    let code = exit_code(&manifests.errors, &findings, args.fail_on);
    drop(findings);
    // The process ends here: freeing tens of thousands of findings piece by piece
    // would only cost time, the OS takes the memory back at once.
    std::mem::forget(raw);
    std::mem::forget(sources);
    std::mem::forget(manifests);
    Ok(code)
}

fn exit_code(
    errors: &[InputError],
    findings: &[report::Reported<'_>],
    fail_on: Option<Severity>,
) -> ExitCode {
    if !errors.is_empty() {
        return ExitCode::from(2);
    }
    let failing = fail_on.is_some_and(|threshold| {
        findings
            .iter()
            .any(|f| f.suppressed_by.is_none() && f.severity >= threshold)
    });
    if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the `--aws` files into the inventory's cloud assets; returns where each
/// account came from (for report locations). A file that cannot be read is an input
/// error (exit 2); the others are still used.
fn load_cloud(
    files: &[PathBuf],
    policy: &Policy,
    inventory: &mut crate::inventory::Inventory,
    errors: &mut Vec<InputError>,
) -> std::collections::HashMap<String, crate::collect::manifests::Source> {
    use crate::inventory::cloud::{CloudInventory, SnapshotSource, snapshot};
    let aws = policy.spec.cloud.as_ref().and_then(|c| c.aws.as_ref());
    let source = SnapshotSource {
        policy: None,
        known_accounts: aws.map(|a| a.known_accounts.clone()).unwrap_or_default(),
        eks_cluster: aws.and_then(|a| a.eks_cluster_name.clone()),
    };
    let mut snapshots = Vec::new();
    let mut locations = std::collections::HashMap::new();
    for path in files {
        let file = path.display().to_string();
        let read = std::fs::read(path)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|bytes| snapshot::load(&bytes));
        match read {
            Ok(s) => {
                for account in &s.accounts {
                    locations.insert(
                        account.account_id.clone(),
                        crate::collect::manifests::Source {
                            file: file.clone(),
                            document: 1,
                            line: 1,
                        },
                    );
                }
                snapshots.push(s);
            }
            Err(reason) => errors.push(InputError {
                file,
                document: None,
                line: None,
                reason,
            }),
        }
    }
    if !snapshots.is_empty() {
        let cloud = CloudInventory::build(snapshots.iter().map(|s| (&source, s)));
        inventory.set_cloud(std::sync::Arc::new(cloud));
    }
    locations
}

/// Reads a ScanPolicy manifest (the first ScanPolicy document of the file).
fn load_policy(path: &PathBuf) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    for (line, doc) in crate::collect::manifests::split_documents(&text) {
        let value: serde_json::Value = serde_yaml_ng::from_str(&doc)
            .with_context(|| format!("{} (line {line}): not valid YAML", path.display()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("ScanPolicy") {
            continue;
        }
        let policy: ScanPolicy = serde_json::from_value(value)
            .with_context(|| format!("{} (line {line}): not a valid ScanPolicy", path.display()))?;
        return Ok(Policy::from_resource(&policy, today()));
    }
    anyhow::bail!(
        "{} holds no ScanPolicy (kind: ScanPolicy, apiVersion: posture.dev/v1alpha1)",
        path.display()
    )
}

/// The inventory of `posture query --snapshot … --manifests …`: like `posture scan`,
/// but any unreadable input is an error (a query over half the input would mislead).
pub fn load_for_query(
    manifests: &[String],
    snapshots: &[PathBuf],
) -> Result<crate::inventory::Inventory> {
    let mut read = read_inputs(manifests, "default");
    let mut inventory = read.inventory();
    load_cloud(
        snapshots,
        &Policy::allow_all(),
        &mut inventory,
        &mut read.errors,
    );
    if let Some(first) = read.errors.first() {
        anyhow::bail!(
            "{first}{}",
            match read.errors.len() {
                1 => String::new(),
                n => format!(" (and {} more errors)", n - 1),
            }
        );
    }
    Ok(inventory)
}
