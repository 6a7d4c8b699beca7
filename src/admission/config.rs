//! `posture webhook --print-config`: the ValidatingWebhookConfiguration that sends the
//! covered kinds to the webhook, made so it cannot lock the cluster: the webhook's own
//! namespace and kube-system are excluded, an object label opts out, the timeout is
//! short, and the failurePolicy follows the mode (Fail when enforcing, Ignore when only
//! warning or auditing). The Helm chart renders the same configuration.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde_json::{Value, json};

use super::DefaultMode;

/// The label that exempts an object from admission checks: `posture.dev/admission: skip`.
pub const OPT_OUT_LABEL: &str = "posture.dev/admission";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Name of the ValidatingWebhookConfiguration.
    #[arg(long, default_value = "posture")]
    pub config_name: String,
    /// Service in front of the webhook (ignored with --url).
    #[arg(long, default_value = "posture-webhook")]
    pub service_name: String,
    /// The webhook's namespace: its Service's, and excluded from checks.
    #[arg(long, env = "POD_NAMESPACE", default_value = "posture-system")]
    pub service_namespace: String,
    #[arg(long, default_value_t = 443)]
    pub service_port: u16,
    /// Call the webhook at this URL instead of a Service (local runs).
    #[arg(long)]
    pub url: Option<String>,
    /// PEM CA that signed the webhook's certificate (embedded as caBundle).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Seconds the API server waits for an answer (1-30).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=30))]
    pub timeout_seconds: u8,
    /// What the API server does when the webhook cannot answer. Default: Fail with
    /// --default-mode enforce, Ignore otherwise.
    #[arg(long, value_enum)]
    pub failure_policy: Option<FailurePolicy>,
}

/// The kinds the webhook judges, as admission rules.
fn rules() -> Value {
    let ops = json!(["CREATE", "UPDATE"]);
    json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ops,
         "resources": ["pods", "services", "serviceaccounts"], "scope": "Namespaced"},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "scope": "Namespaced"},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
        {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["ingresses"], "scope": "Namespaced"},
        {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"], "operations": ops,
         "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], "scope": "*"},
    ])
}

pub fn configuration(args: &ConfigArgs, mode: DefaultMode) -> Result<Value> {
    let mut client_config = match &args.url {
        Some(url) => json!({"url": url}),
        None => json!({"service": {
            "name": args.service_name,
            "namespace": args.service_namespace,
            "path": "/validate",
            "port": args.service_port,
        }}),
    };
    if let Some(path) = &args.ca_bundle {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
        client_config["caBundle"] = json!(base64(&pem));
    }
    let failure_policy = match args.failure_policy {
        Some(FailurePolicy::Fail) => "Fail",
        Some(FailurePolicy::Ignore) => "Ignore",
        None if mode == DefaultMode::Enforce => "Fail",
        None => "Ignore",
    };
    Ok(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": args.config_name,
            "labels": {"app.kubernetes.io/name": "posture", "app.kubernetes.io/component": "webhook"},
        },
        "webhooks": [{
            "name": "validate.posture.dev",
            "admissionReviewVersions": ["v1"],
            "clientConfig": client_config,
            // Audit mode records Findings, never on dry-run requests.
            "sideEffects": "NoneOnDryRun",
            "timeoutSeconds": args.timeout_seconds,
            "failurePolicy": failure_policy,
            "matchPolicy": "Equivalent",
            "namespaceSelector": {"matchExpressions": [{
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": [args.service_namespace, "kube-system"],
            }]},
            "objectSelector": {"matchExpressions": [{
                "key": OPT_OUT_LABEL,
                "operator": "NotIn",
                "values": ["skip"],
            }]},
            "rules": rules(),
        }],
    }))
}

pub fn render(args: &ConfigArgs, mode: DefaultMode) -> Result<String> {
    let value = configuration(args, mode)?;
    let mut out = String::from(
        "# posture validating webhook. failurePolicy: Fail blocks changes while the webhook\n\
         # is down (safe for Enforce); Ignore admits them (audit or warn only). The webhook's\n\
         # namespace and kube-system are never checked; label an object\n\
         # posture.dev/admission=skip to exempt it.\n",
    );
    out.push_str(&serde_yaml_ng::to_string(&value)?);
    Ok(out)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn never_checks_its_own_namespace_or_kube_system_and_follows_the_mode() {
        let args = Cli::parse_from(["x", "--service-namespace", "sec"]).config;
        let enforce = configuration(&args, DefaultMode::Enforce).unwrap();
        let hook = &enforce["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 5);
        assert_eq!(
            hook["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["sec", "kube-system"])
        );
        assert_eq!(hook["clientConfig"]["service"]["namespace"], "sec");
        let audit = configuration(&args, DefaultMode::Audit).unwrap();
        assert_eq!(audit["webhooks"][0]["failurePolicy"], "Ignore");
    }
}
