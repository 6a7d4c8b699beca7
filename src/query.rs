//! `posture query "SQL"`: SQL over the one store (`docs/store.md`), against the
//! operator's read-only query endpoint, a database file, or snapshots and manifests
//! turned into a temporary database on the spot. Also [`rows`], which turns an
//! inventory and its evaluation into the store's tables for the operator and the CLI.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde_json::{Value, json};

use crate::inventory::cloud::{CloudInventory, IRSA_ANNOTATION, principal_key};
use crate::inventory::store::{
    AssetRow, FindingRow, Limits, NotCollectedRow, QueryResult, ReadOnly, RelationRow, RowSink,
    Rows, Store, StoreError,
};
use crate::inventory::{AssetId, Inventory, Kind, Object, ObjectKey};
use crate::rules::{Engine, Evaluation, fingerprint};

/// The store id of an asset: `k8s:Kind/namespace/name` or `aws:<ARN>`.
pub fn asset_id(key: &ObjectKey) -> String {
    match key.kind.provider() {
        Some(provider) => format!("{provider}:{}", key.name),
        None => AssetId::Kube(key.clone()).to_string(),
    }
}

/// The store's tables for an inventory and its evaluation, in memory (tests, small
/// inputs); [`emit`] streams them instead.
pub fn rows(inventory: &Inventory, evaluation: &Evaluation, engine: &Engine) -> Rows {
    let mut rows = Rows::default();
    emit(inventory, evaluation, engine, &mut rows).expect("collecting rows in memory cannot fail");
    rows
}

/// Writes the store's tables for an inventory and its evaluation to `sink`, one row
/// at a time.
pub fn emit(
    inventory: &Inventory,
    evaluation: &Evaluation,
    engine: &Engine,
    sink: &mut dyn RowSink,
) -> Result<(), StoreError> {
    for object in inventory.objects() {
        let key = object.key();
        sink.asset(AssetRow {
            id: asset_id(&key),
            provider: "kubernetes",
            kind: key.kind.to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            account: None,
            region: None,
            attributes: object.to_value().to_string(),
        })?;
    }
    cloud_assets(inventory.cloud(), sink)?;
    let mut relations: Vec<RelationRow> = inventory
        .relations()
        .into_iter()
        .map(|r| RelationRow {
            from: r.from.to_string(),
            kind: r.kind.as_str(),
            to: r.to.to_string(),
        })
        .collect();
    cloud_relations(inventory, &mut relations);
    relations.sort();
    relations.dedup();
    for relation in relations {
        sink.relation(relation)?;
    }

    let mut tags = BTreeSet::new();
    for finding in evaluation.findings() {
        let rule = engine.rule(finding.rule);
        let subject_id = asset_id(&finding.subject);
        if finding.suppressed_by.is_none() && finding.tagging {
            for tag in rule.map(|r| r.meta.tags).unwrap_or_default() {
                tags.insert((subject_id.clone(), *tag));
                for affected in &finding.hit.affected {
                    tags.insert((asset_id(affected), *tag));
                }
            }
        }
        let evidence: serde_json::Map<String, Value> = finding
            .hit
            .evidence
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        sink.finding(FindingRow {
            fingerprint: fingerprint(finding.rule, &finding.subject),
            rule: finding.rule.to_owned(),
            title: rule.map(|r| r.meta.title).unwrap_or_default().to_owned(),
            severity: finding.severity.to_string(),
            category: rule
                .map(|r| r.meta.category.to_string())
                .unwrap_or_default(),
            subject_id,
            subject_kind: finding.subject.kind.to_string(),
            subject_namespace: finding.subject.namespace.clone(),
            subject_name: finding.subject.name.clone(),
            message: finding.hit.message.clone(),
            state: if finding.suppressed_by.is_some() {
                "Suppressed"
            } else {
                "Open"
            },
            suppressed_by: finding.suppressed_by.clone(),
            policy: finding.policy.clone(),
            evidence: Value::Object(evidence).to_string(),
        })?;
    }
    for (asset, tag) in &tags {
        sink.tag(asset, tag)?;
    }
    for n in &inventory.cloud().not_collected {
        sink.not_collected(NotCollectedRow {
            account: n.account.clone(),
            region: n.region.clone(),
            section: n.section.clone(),
            error: n.error.clone(),
        })?;
    }
    Ok(())
}

fn cloud_assets(cloud: &CloudInventory, out: &mut dyn RowSink) -> Result<(), StoreError> {
    let catalog = crate::inventory::cloud::actions::ActionCatalog::shipped();
    for p in cloud.iam.principals() {
        let key = principal_key(p);
        let effective = p.effective(catalog);
        out.asset(AssetRow {
            id: asset_id(&key),
            provider: "aws",
            kind: key.kind.to_string(),
            namespace: None,
            name: p.name.clone(),
            account: Some(p.account.clone()),
            region: None,
            attributes: json!({
                "arn": p.arn,
                "policies": p.policies.iter().map(|x| &x.name).collect::<Vec<_>>(),
                "unknownPolicies": p.unknown_policies,
                "permissionsBoundary": p.boundary.as_ref().map(|b| &b.name),
                "instanceProfiles": p.instance_profiles,
                "allowedActions": effective.allowed.len(),
                "allowedActionsOnAllResources": effective.allowed_all_resources.len(),
                "admin": effective.is_admin(catalog),
            })
            .to_string(),
        })?;
    }
    fn placed<T: serde::Serialize>(
        out: &mut dyn RowSink,
        kind: Kind,
        items: &std::collections::BTreeMap<String, crate::inventory::cloud::Placed<T>>,
    ) -> Result<(), StoreError> {
        for (arn, item) in items {
            out.asset(AssetRow {
                id: format!("aws:{arn}"),
                provider: "aws",
                kind: kind.to_string(),
                namespace: None,
                name: crate::inventory::cloud::short_name(arn).to_owned(),
                account: Some(item.account.clone()),
                region: item.region.clone(),
                attributes: serde_json::to_string(&item.data).unwrap_or_default(),
            })?;
        }
        Ok(())
    }
    placed(out, Kind::Ec2Instance, &cloud.instances)?;
    placed(out, Kind::SecurityGroup, &cloud.security_groups)?;
    placed(out, Kind::EbsVolume, &cloud.volumes)?;
    placed(out, Kind::S3Bucket, &cloud.buckets)?;
    placed(out, Kind::RdsInstance, &cloud.db_instances)?;
    placed(out, Kind::EksCluster, &cloud.eks_clusters)
}

/// ServiceAccount → IAM role (IRSA, Pod Identity), Node → EC2 instance, instance →
/// security groups and instance-profile role.
fn cloud_relations(inventory: &Inventory, out: &mut Vec<RelationRow>) {
    let cloud = inventory.cloud();
    for account in inventory.service_accounts() {
        let from = asset_id(&account);
        if let Some(Object::ServiceAccount(sa)) = inventory.get(&account)
            && let Some(arn) = sa
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(IRSA_ANNOTATION))
        {
            out.push(RelationRow {
                from: from.clone(),
                kind: "assumes",
                to: format!("aws:{}", arn.trim()),
            });
        }
        let ns = account.namespace().unwrap_or_default();
        for arn in cloud.pod_identity_roles(ns, &account.name) {
            out.push(RelationRow {
                from: from.clone(),
                kind: "assumes",
                to: format!("aws:{arn}"),
            });
        }
    }
    for (arn, instance) in &cloud.instances {
        let id = format!("aws:{arn}");
        if let Some(node) = inventory.node_of_instance(&instance.data.id) {
            out.push(RelationRow {
                from: asset_id(node),
                kind: "is",
                to: id.clone(),
            });
        }
        for sg in &instance.data.security_groups {
            if let Some(sg_arn) = cloud.security_group_arn(sg) {
                out.push(RelationRow {
                    from: id.clone(),
                    kind: "protected-by",
                    to: format!("aws:{sg_arn}"),
                });
            }
        }
        if let Some(role) = cloud.instance_role(&instance.data) {
            out.push(RelationRow {
                from: id.clone(),
                kind: "runs-as",
                to: format!("aws:{}", role.arn),
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Table,
    Json,
    Csv,
}

/// `posture query` options.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// One SQL statement (SELECT, WITH … SELECT, or PRAGMA table_info). `--schema`
    /// prints the tables instead.
    #[arg(value_name = "SQL", required_unless_present = "schema")]
    pub sql: Option<String>,
    /// Query the operator's read-only endpoint, e.g.
    /// https://posture-operator.posture-system.svc:8443 (RBAC: verb `query` on
    /// `inventory.posture.dev`).
    #[arg(long, value_name = "URL", env = "POSTURE_SERVER", conflicts_with_all = ["db", "snapshot"])]
    pub server: Option<String>,
    /// Bearer token file for --server (default: the kubeconfig user's token).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
    /// PEM CA of the operator's certificate (default: system roots).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca: Option<PathBuf>,
    /// Query a store database file (the operator's `--db`, copied out).
    #[arg(long, value_name = "FILE", conflicts_with = "snapshot")]
    pub db: Option<PathBuf>,
    /// Query AWS snapshots (or authorization-details files), with the manifests of
    /// `--manifests`, evaluated like `posture scan`. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Vec<PathBuf>,
    /// Kubernetes manifests to add to --snapshot (files or folders). Repeatable.
    #[arg(long, value_name = "PATH", requires = "snapshot")]
    pub manifests: Vec<String>,
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// Rows returned at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: usize,
    /// Print the store's tables and columns and exit.
    #[arg(long)]
    pub schema: bool,
}

pub async fn run(args: QueryArgs) -> Result<ExitCode> {
    if args.schema {
        println!("{}", crate::inventory::store::SCHEMA.trim());
        return Ok(ExitCode::SUCCESS);
    }
    let sql = args.sql.clone().unwrap_or_default();
    let limits = Limits {
        max_rows: args.max_rows,
        ..Limits::default()
    };
    let result = if let Some(server) = &args.server {
        remote(&args, server, &sql).await?
    } else if let Some(db) = &args.db {
        let reader = ReadOnly::open(db)?;
        tokio::task::spawn_blocking(move || reader.query(&sql, limits)).await??
    } else if !args.snapshot.is_empty() {
        let dir = std::env::temp_dir().join(format!("posture-query-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("posture.db");
        let built = build_from_files(&args, &path);
        let result = built.and_then(|()| Ok(ReadOnly::open(&path)?.query(&sql, limits)?));
        let _ = std::fs::remove_dir_all(&dir);
        result?
    } else {
        bail!(
            "nothing to query: pass --server URL (the operator), --db FILE, or --snapshot FILE [--manifests PATH]"
        );
    };
    write(&result, args.format)?;
    if result.truncated {
        eprintln!(
            "warning: only the first {} rows are shown; add LIMIT/WHERE or raise --max-rows",
            result.rows.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Snapshots and manifests → inventory → evaluation → a store file.
fn build_from_files(args: &QueryArgs, path: &std::path::Path) -> Result<()> {
    let scan = crate::scan::load_for_query(&args.manifests, &args.snapshot)?;
    let engine = Engine::default();
    let policies =
        crate::rules::policy::PolicySet::single(crate::rules::policy::Policy::allow_all());
    let (evaluation, _) = Evaluation::full(&engine, &scan, &policies);
    Store::open(path)?
        .replace_inventory(&k8s_openapi::jiff::Timestamp::now().to_string(), |sink| {
            emit(&scan, &evaluation, &engine, sink)
        })?;
    Ok(())
}

async fn remote(args: &QueryArgs, server: &str, sql: &str) -> Result<QueryResult> {
    let url = format!("{}/v1/query", server.trim_end_matches('/'));
    let client = crate::net::HttpsClient::new(args.ca.as_deref(), None)?;
    let token = crate::net::bearer_token(args.token_file.as_deref()).await?;
    let body = json!({"sql": sql, "maxRows": args.max_rows}).to_string();
    let (status, text) = client
        .post_json(
            &url,
            &token,
            body.into_bytes(),
            std::time::Duration::from_secs(60),
        )
        .await?;
    if !status.is_success() {
        bail!("the operator refused the query ({status}): {}", text.trim());
    }
    serde_json::from_str(&text)
        .with_context(|| format!("the answer of {url} is not a query result"))
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write(result: &QueryResult, format: QueryFormat) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match format {
        QueryFormat::Json => serde_json::to_writer(&mut out, result)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
        QueryFormat::Csv => write_csv(&mut out, result),
        QueryFormat::Table => write_table(&mut out, result),
    }
    .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

fn write_csv(out: &mut impl Write, result: &QueryResult) -> std::io::Result<()> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    writeln!(
        out,
        "{}",
        result
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for row in &result.rows {
        let line: Vec<String> = row.iter().map(|v| quote(&cell(v))).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

/// kubectl-style columns: upper-case headers, left-aligned, two spaces apart; long
/// cells are cut so a row stays on one line.
fn write_table(out: &mut impl Write, result: &QueryResult) -> std::io::Result<()> {
    const MAX: usize = 80;
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| {
                    let text = cell(v).replace(['\n', '\r', '\t'], " ");
                    if text.chars().count() > MAX {
                        let cut: String = text.chars().take(MAX - 1).collect();
                        format!("{cut}…")
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    let headers: Vec<String> = result.columns.iter().map(|c| c.to_uppercase()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s
    };
    writeln!(out, "{}", line(&headers))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    if cells.is_empty() {
        writeln!(out, "(no rows)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::policy::{Policy, PolicySet};
    use crate::rules::testing::cloud_fixture;

    #[test]
    fn rows_join_cluster_and_cloud() {
        let inventory = cloud_fixture(
            "cloud-fail.json",
            r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: shop
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/ops-admin"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ci, namespace: shop}
spec:
  selector: {matchLabels: {app: ci}}
  template:
    metadata: {labels: {app: ci}}
    spec:
      serviceAccountName: builder
      containers: [{name: ci, image: "ci:1"}]
"#,
        );
        let engine = Engine::default();
        let (evaluation, _) =
            Evaluation::full(&engine, &inventory, &PolicySet::single(Policy::allow_all()));
        let rows = rows(&inventory, &evaluation, &engine);
        let role = "aws:arn:aws:iam::123456789012:role/ops-admin";
        assert!(
            rows.assets
                .iter()
                .any(|a| a.id == role && a.kind == "IamRole")
        );
        assert!(rows.relations.contains(&RelationRow {
            from: "k8s:ServiceAccount/shop/builder".into(),
            kind: "assumes",
            to: role.into(),
        }));
        assert!(rows.relations.contains(&RelationRow {
            from: "k8s:Deployment/shop/ci".into(),
            kind: "runs-as",
            to: "k8s:ServiceAccount/shop/builder".into(),
        }));
        assert!(rows.tags.contains(&(
            "k8s:Deployment/shop/ci".to_owned(),
            "HighlyPermissiveRole".to_owned()
        )));
        let finding = rows
            .findings
            .iter()
            .find(|f| f.rule == "aws-irsa-privileged-role")
            .expect("the IRSA finding");
        assert_eq!(finding.subject_id, "k8s:ServiceAccount/shop/builder");
        assert_eq!(finding.state, "Open");
        assert!(finding.evidence.contains("ops-admin"));
    }

    #[test]
    fn tables_and_csv_are_aligned_and_quoted() {
        let result = QueryResult {
            columns: vec!["name".into(), "n".into()],
            rows: vec![
                vec![Value::from("a,b"), Value::from(1)],
                vec![Value::from("long-name"), Value::Null],
            ],
            truncated: false,
        };
        let mut table = Vec::new();
        write_table(&mut table, &result).unwrap();
        assert_eq!(
            String::from_utf8(table).unwrap(),
            "NAME       N\na,b        1\nlong-name  \n"
        );
        let mut csv = Vec::new();
        write_csv(&mut csv, &result).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "name,n\n\"a,b\",1\nlong-name,\n"
        );
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;
    use crate::inventory::store::{ReadOnly, TABLES};
    use crate::rules::policy::{Policy, PolicySet};
    use crate::rules::testing::cloud_fixture;

    const DOC: &str = include_str!("../docs/store.md");

    /// docs/store.md documents every table and column, and its example queries run.
    #[test]
    fn the_store_page_matches_the_schema_and_its_examples_run() {
        let inventory = cloud_fixture(
            "cloud-fail.json",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n  namespace: shop\n  annotations: {eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/ops-admin\"}\n",
        );
        let engine = Engine::default();
        let (evaluation, _) =
            Evaluation::full(&engine, &inventory, &PolicySet::single(Policy::allow_all()));
        let dir = std::env::temp_dir().join(format!("posture-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("posture.db");
        let _ = std::fs::remove_file(&path);
        Store::open(&path)
            .unwrap()
            .replace_inventory("now", |sink| emit(&inventory, &evaluation, &engine, sink))
            .unwrap();
        let reader = ReadOnly::open(&path).unwrap();
        for table in TABLES {
            assert!(
                DOC.contains(&format!("### `{table}`")),
                "{table} is not documented"
            );
            let columns = reader
                .query(&format!("PRAGMA table_info({table})"), Limits::default())
                .unwrap();
            for row in &columns.rows {
                let column = row[1].as_str().unwrap();
                assert!(
                    DOC.contains(&format!("`{column}`")),
                    "{table}.{column} is not documented"
                );
            }
        }
        let mut examples = 0;
        for block in DOC.split("```sql").skip(1) {
            let sql = block.split("```").next().unwrap();
            reader
                .query(sql, Limits::default())
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            examples += 1;
        }
        assert!(examples >= 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
