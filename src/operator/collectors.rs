//! Collector Jobs: for every ScanPolicy with `spec.cloud.aws`, the leader creates a Job
//! running `posture collect aws --upload` on the policy's schedule. The first Job runs
//! as soon as the policy exists; no Job starts while another of the same policy is
//! still running; three succeeded and one failed Job are kept, older ones deleted; the
//! ScanPolicy owns its Jobs, so deleting it deletes them.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch as signal;

use super::cron::Schedule;
use crate::api::{AwsCloud, ScanPolicy};

/// The ServiceAccount collector Jobs run as when the policy names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "posture-collector";
/// Every 6 hours, when the policy sets no schedule.
pub const DEFAULT_SCHEDULE: &str = "0 */6 * * *";
pub const POLICY_LABEL: &str = "posture.dev/scanpolicy";
pub const COLLECTOR_LABEL: &str = "posture.dev/collector";
const FIELD_MANAGER: &str = "posture-collector-scheduler";
const KEEP_SUCCEEDED: usize = 3;
const KEEP_FAILED: usize = 1;

/// How collector Jobs are made, from the operator's flags.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// The posture image the Jobs run (normally the operator's own).
    pub image: String,
    /// Base URL of the operator's API, as the Jobs reach it.
    pub api_url: String,
    /// PEM of the CA that signed the API's certificate.
    pub ca_pem: Option<String>,
    /// Extra environment of the collector container (an AWS endpoint, a region).
    pub env: Vec<(String, String)>,
}

/// The ServiceAccount a policy's collector runs as (and the only one whose uploads
/// the policy accepts).
pub fn service_account(aws: &AwsCloud) -> &str {
    aws.service_account_name
        .as_deref()
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
}

/// The collector Job of a policy, created at `now`.
pub fn collector_job(
    policy: &ScanPolicy,
    aws: &AwsCloud,
    settings: &CollectorSettings,
    now: Timestamp,
) -> Job {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    // Job names become pod labels: at most 63 characters.
    let short: String = name.chars().take(40).collect();
    let job_name = format!("aws-{}-{}", short.trim_end_matches('-'), now.as_second());
    let mut args = vec!["collect".to_owned(), "aws".to_owned()];
    for region in &aws.regions {
        args.extend(["--region".to_owned(), region.clone()]);
    }
    for account in &aws.accounts {
        let mut target = account.id.clone();
        if let Some(role) = &account.assume_role_arn {
            target = format!("{target}={role}");
            if let Some(external) = &account.external_id {
                target = format!("{target},external-id={external}");
            }
        }
        args.extend(["--account".to_owned(), target]);
    }
    args.extend([
        "--upload".to_owned(),
        format!(
            "{}/v1/ingest/aws?policy={namespace}/{name}",
            settings.api_url.trim_end_matches('/')
        ),
    ]);
    let mut env: Vec<serde_json::Value> = settings
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    if let Some(ca) = &settings.ca_pem {
        env.push(json!({"name": "POSTURE_UPLOAD_CA_PEM", "value": ca}));
    }
    let labels = json!({
        POLICY_LABEL: name,
        COLLECTOR_LABEL: "aws",
        "app.kubernetes.io/name": "posture",
        "app.kubernetes.io/component": "collector",
    });
    let owner = policy.controller_owner_ref(&()).map(|mut o| {
        // Blocking the owner's deletion would need update rights on scanpolicies/finalizers.
        o.block_owner_deletion = None;
        o
    });
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": service_account(aws),
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "collect",
                        "image": settings.image,
                        "args": args,
                        "env": env,
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                    }],
                },
            },
        },
    });
    serde_json::from_value(job).expect("the collector Job is a valid Job")
}

/// Whether a Job has finished, and how.
fn finished(job: &Job) -> Option<bool> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        .map(|c| c.type_ == "Complete")
}

fn created(job: &Job) -> Option<Timestamp> {
    job.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// What to do for one policy now: create a Job, and which old Jobs to delete.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub create: bool,
    pub delete: Vec<String>,
}

/// Pure scheduling decision over the policy's Jobs.
pub fn plan(schedule: &Schedule, jobs: &[Job], now: Timestamp) -> Plan {
    let running = jobs.iter().any(|j| finished(j).is_none());
    let last = jobs.iter().filter_map(created).max();
    let due = match last {
        None => true,
        Some(last) => schedule.next_after(last).is_some_and(|next| next <= now),
    };
    let mut done: Vec<(&Job, bool)> = jobs
        .iter()
        .filter_map(|j| finished(j).map(|ok| (j, ok)))
        .collect();
    done.sort_by_key(|(j, _)| std::cmp::Reverse(created(j)));
    let mut delete = Vec::new();
    for (ok, keep) in [(true, KEEP_SUCCEEDED), (false, KEEP_FAILED)] {
        delete.extend(
            done.iter()
                .filter(|(_, o)| *o == ok)
                .skip(keep)
                .map(|(j, _)| j.name_any()),
        );
    }
    Plan {
        create: due && !running,
        delete,
    }
}

/// Runs the schedule while leading, every 15 s.
pub async fn run(
    client: Client,
    settings: Option<CollectorSettings>,
    mut leader: signal::Receiver<bool>,
    mut shutdown: signal::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = leader.changed() => {}
            _ = shutdown.changed() => return,
        }
        if !*leader.borrow() {
            continue;
        }
        let policies = match Api::<ScanPolicy>::all(client.clone())
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!("collector schedule: listing ScanPolicies: {e}");
                continue;
            }
        };
        for policy in policies {
            let Some(aws) = policy.spec.cloud.as_ref().and_then(|c| c.aws.as_ref()) else {
                continue;
            };
            let key = format!(
                "{}/{}",
                policy.namespace().unwrap_or_default(),
                policy.name_any()
            );
            let Some(settings) = &settings else {
                if warned.insert(key.clone(), "image".into()).is_none() {
                    tracing::warn!(policy = %key, "cloud.aws is set but the operator has no --collector-image: no collector Job is created");
                }
                continue;
            };
            let text = aws.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
            let schedule = match Schedule::parse(text) {
                Ok(s) => s,
                Err(e) => {
                    if warned.insert(key.clone(), e.clone()).as_deref() != Some(&e) {
                        tracing::warn!(policy = %key, "cloud.aws.schedule: {e}");
                    }
                    continue;
                }
            };
            if let Err(e) = schedule_policy(&client, &policy, aws, &schedule, settings).await {
                tracing::warn!(policy = %key, "collector Job: {e}");
            }
        }
    }
}

async fn schedule_policy(
    client: &Client,
    policy: &ScanPolicy,
    aws: &AwsCloud,
    schedule: &Schedule,
    settings: &CollectorSettings,
) -> Result<(), kube::Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("{POLICY_LABEL}={},{COLLECTOR_LABEL}=aws", policy.name_any());
    let list = jobs.list(&ListParams::default().labels(&selector)).await?;
    // Only the Jobs this policy owns (a same-named policy recreated is another owner).
    let uid = policy.uid();
    let owned: Vec<Job> = list
        .items
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let now = Timestamp::now();
    let plan = plan(schedule, &owned, now);
    for name in &plan.delete {
        let _ = jobs.delete(name, &DeleteParams::background()).await;
    }
    if plan.create {
        let job = collector_job(policy, aws, settings, now);
        let created = jobs.create(&PostParams::default(), &job).await?;
        let name = created.name_any();
        tracing::info!(policy = %policy.name_any(), namespace = %namespace, job = %name, "collector Job created");
        let status = json!({
            "apiVersion": "posture.dev/v1alpha1",
            "kind": "ScanPolicy",
            "status": {"cloud": {"aws": {"lastJob": name, "lastScheduled": now.to_string()}}},
        });
        Api::<ScanPolicy>::namespaced(client.clone(), &namespace)
            .patch_status(
                &policy.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec: serde_json::Value) -> ScanPolicy {
        serde_json::from_value(json!({
            "apiVersion": "posture.dev/v1alpha1", "kind": "ScanPolicy",
            "metadata": {"name": "prod", "namespace": "posture-system", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn settings() -> CollectorSettings {
        CollectorSettings {
            image: "ghcr.io/example/posture:0.1.0".into(),
            api_url: "https://posture-operator.posture-system.svc:8443/".into(),
            ca_pem: Some("-----BEGIN CERTIFICATE-----".into()),
            env: vec![("AWS_REGION".into(), "eu-west-1".into())],
        }
    }

    #[test]
    fn the_job_runs_the_collector_as_the_policy_says() {
        let p = policy(json!({"cloud": {"aws": {
            "regions": ["eu-west-1", "us-east-1"],
            "accounts": [{"id": "123456789012", "assumeRoleArn": "arn:aws:iam::123456789012:role/reader", "externalId": "x"}],
            "serviceAccountName": "aws-reader",
        }}}));
        let aws = p.spec.cloud.as_ref().unwrap().aws.as_ref().unwrap();
        let job = collector_job(
            &p,
            aws,
            &settings(),
            "2026-12-04T06:00:00Z".parse().unwrap(),
        );
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["metadata"]["name"], "aws-prod-1796364000");
        assert_eq!(
            value["metadata"]["ownerReferences"][0]["kind"],
            "ScanPolicy"
        );
        assert_eq!(value["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "aws-reader");
        assert_eq!(
            pod["containers"][0]["args"],
            json!([
                "collect",
                "aws",
                "--region",
                "eu-west-1",
                "--region",
                "us-east-1",
                "--account",
                "123456789012=arn:aws:iam::123456789012:role/reader,external-id=x",
                "--upload",
                "https://posture-operator.posture-system.svc:8443/v1/ingest/aws?policy=posture-system/prod"
            ])
        );
        let env = &pod["containers"][0]["env"];
        assert_eq!(env[0], json!({"name": "AWS_REGION", "value": "eu-west-1"}));
        assert_eq!(env[1]["name"], "POSTURE_UPLOAD_CA_PEM");
        assert_eq!(
            pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
            true
        );
    }

    fn job(name: &str, created: &str, state: Option<&str>) -> Job {
        let conditions: Vec<serde_json::Value> = state
            .map(|s| json!({"type": s, "status": "True"}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn first_run_at_once_then_on_schedule_never_overlapping() {
        let every_6h = Schedule::parse("0 */6 * * *").unwrap();
        let now: Timestamp = "2026-12-04T07:00:00Z".parse().unwrap();
        assert_eq!(
            plan(&every_6h, &[], now),
            Plan {
                create: true,
                delete: vec![]
            }
        );
        let done_at_5 = job("a", "2026-12-04T05:00:00Z", Some("Complete"));
        assert!(
            plan(&every_6h, std::slice::from_ref(&done_at_5), now).create,
            "06:00 passed"
        );
        let done_at_6 = job("b", "2026-12-04T06:00:00Z", Some("Complete"));
        assert!(
            !plan(&every_6h, &[done_at_5.clone(), done_at_6], now).create,
            "next is 12:00"
        );
        let running = job("c", "2026-12-04T00:00:00Z", None);
        assert!(!plan(&every_6h, &[running], now).create, "one at a time");
    }

    #[test]
    fn history_keeps_three_succeeded_and_one_failed() {
        let every_6h = Schedule::parse("0 */6 * * *").unwrap();
        let jobs = [
            job("s1", "2026-12-01T00:00:00Z", Some("Complete")),
            job("s2", "2026-12-02T00:00:00Z", Some("Complete")),
            job("s3", "2026-12-03T00:00:00Z", Some("Complete")),
            job("s4", "2026-12-04T00:00:00Z", Some("Complete")),
            job("f1", "2026-12-01T06:00:00Z", Some("Failed")),
            job("f2", "2026-12-02T06:00:00Z", Some("Failed")),
        ];
        let plan = plan(&every_6h, &jobs, "2026-12-04T01:00:00Z".parse().unwrap());
        assert_eq!(plan.delete, vec!["s1".to_owned(), "f1".to_owned()]);
        assert!(!plan.create);
    }
}
