//! Command-line interface: `posture <command>`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::operator::OperatorArgs;

/// Kubernetes-native continuous security posture manager.
#[derive(Debug, Parser)]
#[command(
    name = "posture",
    version,
    about,
    after_help = "Examples:\n  posture scan deploy/ --fail-on high\n  posture crds | kubectl apply --server-side -f -\n  posture operator --metrics-addr 127.0.0.1:8080\n  kubectl get findings -A"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "POSTURE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RulesFormat {
    Table,
    Json,
    /// The catalog page committed as docs/rules.md.
    Markdown,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: watch the cluster, evaluate the rules, write Findings and tags.
    #[command(
        after_help = "Example:\n  KUBECONFIG=~/.kube/config posture operator --leader-election=false --metrics-addr 127.0.0.1:8080\n\nLog level: RUST_LOG (default info)."
    )]
    Operator(OperatorArgs),
    /// Run the validating admission webhook: deny changes that introduce public
    /// exposure or over-privileged identity.
    #[command(
        after_help = "Examples:\n  posture webhook --tls-cert /tls/tls.crt --tls-key /tls/tls.key\n  posture webhook --print-config --service-namespace posture-system --ca-bundle ca.crt | kubectl apply -f -\n\nA denial names the rule, the subject, why and the fix. Exempt one object with the\nannotation posture.dev/exception.<rule>: \"<reason>; expires=YYYY-MM-DD\"."
    )]
    Webhook(crate::admission::WebhookArgs),
    /// Collect an inventory from outside the cluster (AWS accounts).
    #[command(subcommand)]
    Collect(CollectTarget),
    /// Scan Kubernetes manifests with the cluster rules, before they reach a cluster.
    #[command(
        after_help = "Examples:\n  posture scan deploy/                                   # a folder, recursively\n  helm template my-release ./chart | posture scan -       # stdin\n  posture scan k8s/ --format sarif > posture.sarif        # for code scanning\n  posture scan k8s/ --policy scanpolicy.yaml --fail-on high\n\nExit codes: 0 no finding at or above --fail-on, 1 there is one, 2 bad input."
    )]
    Scan(crate::scan::ScanArgs),
    /// SQL over the inventory: assets, relations, tags and findings of the cluster and
    /// the cloud (tables in docs/store.md).
    #[command(
        after_help = "Examples:\n  posture query --server https://posture-operator.posture-system.svc:8443 \\\n      --ca ca.crt --token-file <(kubectl create token analyst) \\\n      \"SELECT kind, namespace, name FROM assets a JOIN tags t ON t.asset_id = a.id WHERE t.tag = 'isPublic'\"\n  posture query --snapshot snapshot.json --manifests k8s/ \\\n      \"SELECT subject_name, rule, severity FROM findings ORDER BY severity\"\n  posture query --db posture.db --format csv \"SELECT * FROM relations WHERE kind = 'assumes'\"\n  posture query --schema\n\nQueries are read-only: the connection refuses writes, whatever the SQL says."
    )]
    Query(crate::query::QueryArgs),
    /// List the rule catalog.
    #[command(
        after_help = "Examples:\n  posture rules\n  posture rules --format json | jq '.rules[] | select(.severity == \"Critical\")'"
    )]
    Rules {
        #[arg(long, short, value_enum, default_value_t = RulesFormat::Table)]
        format: RulesFormat,
    },
    /// Print the CustomResourceDefinitions (ScanPolicy, Finding) as YAML.
    #[command(after_help = "Example:\n  posture crds | kubectl apply --server-side -f -")]
    Crds,
}

#[derive(Debug, Subcommand)]
pub enum CollectTarget {
    /// Read AWS accounts (IAM, EC2/VPC/EBS, S3, RDS, EKS) into a snapshot.
    #[command(
        after_help = "Examples:\n  posture collect aws --region eu-west-1 --output snapshot.json\n  posture collect aws --region eu-west-1 --region us-east-1 \\\n      --account 123456789012=arn:aws:iam::123456789012:role/posture-reader,external-id=k8s-prod \\\n      --output snapshot.json\n  posture scan k8s/ --aws snapshot.json\n\nCredentials: the standard AWS chain (environment, AWS_PROFILE, IRSA, EKS Pod Identity,\ninstance profile). AWS_ENDPOINT_URL points the SDK at another endpoint (moto, LocalStack).\nThe collector needs read-only access: the AWS managed policy SecurityAudit plus\neks:ListPodIdentityAssociations and eks:DescribePodIdentityAssociation (docs/aws-snapshot.md).\nA call that is denied is recorded in the snapshot as not collected, with the error."
    )]
    Aws(crate::collect::aws::CollectAwsArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube_runtime=warn,kube_client=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Crds => {
            print!("{}", crate::api::crds_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => crate::scan::run(args),
        Command::Collect(CollectTarget::Aws(args)) => {
            init_logging(cli.log_format);
            crate::collect::aws::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(args) => crate::query::run(args).await,
        Command::Rules { format } => {
            let engine = crate::rules::Engine::default();
            let text = match format {
                RulesFormat::Table => crate::report::catalog::table(&engine),
                RulesFormat::Json => crate::report::catalog::json(&engine),
                RulesFormat::Markdown => crate::report::catalog::markdown(&engine),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator(args) => {
            init_logging(cli.log_format);
            crate::operator::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(args) => {
            if !args.print_config {
                init_logging(cli.log_format);
            }
            crate::admission::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
