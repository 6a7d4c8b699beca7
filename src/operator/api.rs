//! The operator's HTTPS API, answered by the leader only (a follower says 503 and the
//! caller retries, reaching the leader through the Service):
//!
//! - `POST /v1/ingest/aws?policy=NS/NAME` — a collector Job uploads its snapshot. The
//!   bearer token must be the ServiceAccount the policy's collector runs as (checked
//!   with a TokenReview). The snapshot is validated, stored in one transaction, and
//!   only then replaces the policy's previous one; a refused one is recorded on the
//!   ScanPolicy status with the reason.
//! - `POST /v1/query` `{"sql": "...", "maxRows": N}` — SQL over the store on a
//!   read-only connection. Authorized by a SubjectAccessReview: verb `query` on the
//!   virtual resource `inventory` of group `posture.dev`.
//! - `GET /v1/cloud/aws` — the accepted snapshots, for the webhook (verb `get` on
//!   `inventory.posture.dev`), with an ETag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch as signal;

use super::collectors;
use crate::api::{AcceptedSnapshot, ScanPolicy};
use crate::inventory::cloud::SnapshotSource;
use crate::inventory::cloud::snapshot::{AwsSnapshot, SCHEMA};
use crate::inventory::store::{Limits, ReadOnly, SnapshotRecord, Store};

/// The virtual resource RBAC rules name to allow queries: `inventory.posture.dev`.
pub const QUERY_RESOURCE: &str = "inventory";
const FIELD_MANAGER: &str = "posture-ingest";
/// Largest snapshot accepted: a big organisation's IAM is tens of MB.
const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

/// A snapshot the operator uses, by policy `namespace/name`.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub source: SnapshotSource,
    pub snapshot: Arc<AwsSnapshot>,
    pub body: Arc<str>,
    pub status: AcceptedSnapshot,
}

pub type Snapshots = Arc<RwLock<BTreeMap<String, Accepted>>>;

pub struct ApiState {
    pub client: Client,
    pub leader: signal::Receiver<bool>,
    pub store: Arc<Mutex<Store>>,
    pub db_path: PathBuf,
    pub snapshots: Snapshots,
    /// Bumped when a snapshot is accepted: the controller rebuilds the cloud inventory.
    pub cloud_changed: signal::Sender<u64>,
}

type ApiResult = Result<Response, Refusal>;

/// An error answer: status and a message that says what to do.
#[derive(Debug)]
pub struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.0, format!("{}\n", self.1)).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal(status, message.into())
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/ingest/aws", post(ingest_aws))
        .route("/v1/query", post(query))
        .route("/v1/cloud/aws", get(cloud_aws))
        .layer(DefaultBodyLimit::max(MAX_SNAPSHOT_BYTES))
        .with_state(state)
}

fn require_leader(state: &ApiState) -> Result<(), Refusal> {
    if *state.leader.borrow() {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this operator replica is not the leader; retry (the Service reaches the leader)",
        ))
    }
}

/// The caller, from its bearer token, by TokenReview.
async fn authenticate(client: &Client, headers: &HeaderMap) -> Result<UserInfo, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "no bearer token: send a Kubernetes token (a ServiceAccount token, e.g. `kubectl create token NAME`)",
            )
        })?;
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            tracing::warn!("TokenReview: {e}");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token with the Kubernetes API right now; retry",
            )
        })?;
    let status = answer.status.unwrap_or_default();
    match (status.authenticated, status.user) {
        (Some(true), Some(user)) => Ok(user),
        _ => Err(refuse(
            StatusCode::UNAUTHORIZED,
            format!(
                "the token is not valid{}",
                status.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        )),
    }
}

/// Whether `user` may `verb` the virtual resource `inventory.posture.dev`.
async fn authorize(client: &Client, user: &UserInfo, verb: &str) -> Result<(), Refusal> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(crate::api::GROUP.to_owned()),
                resource: Some(QUERY_RESOURCE.to_owned()),
                verb: Some(verb.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            tracing::warn!("SubjectAccessReview: {e}");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check permissions with the Kubernetes API right now; retry",
            )
        })?;
    if answer.status.is_some_and(|s| s.allowed) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not {verb} {QUERY_RESOURCE}.{}: grant it with a ClusterRole rule {{apiGroups: [{}], resources: [{QUERY_RESOURCE}], verbs: [{verb}]}}",
                user.username.as_deref().unwrap_or("this user"),
                crate::api::GROUP,
                crate::api::GROUP,
            ),
        ))
    }
}

#[derive(Debug, Deserialize)]
struct IngestParams {
    policy: Option<String>,
}

async fn ingest_aws(
    State(state): State<Arc<ApiState>>,
    Query(params): Query<IngestParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    require_leader(&state)?;
    let key = params.policy.unwrap_or_default();
    let Some((namespace, name)) = key
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
    else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "name the ScanPolicy: /v1/ingest/aws?policy=NAMESPACE/NAME",
        ));
    };
    let user = authenticate(&state.client, &headers).await?;
    let policies: Api<ScanPolicy> = Api::namespaced(state.client.clone(), namespace);
    let policy = match policies.get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("ScanPolicy {key} does not exist"),
            ));
        }
        Err(e) => {
            tracing::warn!(policy = %key, "reading the ScanPolicy: {e}");
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot read the ScanPolicy right now; retry",
            ));
        }
    };
    let Some(aws) = policy.spec.cloud.as_ref().and_then(|c| c.aws.as_ref()) else {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!("ScanPolicy {key} has no spec.cloud.aws: it collects no AWS snapshot"),
        ));
    };
    let expected = format!(
        "system:serviceaccount:{namespace}:{}",
        collectors::service_account(aws)
    );
    if user.username.as_deref() != Some(expected.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not upload snapshots for ScanPolicy {key}: only its collector ServiceAccount {expected} may",
                user.username.as_deref().unwrap_or("this user")
            ),
        ));
    }

    let checked = AwsSnapshot::parse(&body)
        .map_err(|e| e.to_string())
        .and_then(|snapshot| {
            check_accounts(&snapshot, aws)?;
            Ok(snapshot)
        });
    let snapshot = match checked {
        Ok(s) => s,
        Err(reason) => {
            let reason = format!("snapshot refused, the previous one stays in use: {reason}");
            tracing::warn!(policy = %key, "{reason}");
            record_status(&state, &policy, &key, Some(&reason)).await;
            return Err(refuse(StatusCode::BAD_REQUEST, reason));
        }
    };

    let accepted_at = Timestamp::now().to_string();
    let accounts: Vec<String> = snapshot
        .accounts
        .iter()
        .map(|a| a.account_id.clone())
        .collect();
    let not_collected: usize = snapshot
        .accounts
        .iter()
        .map(|a| a.missing_sections().len())
        .sum();
    let body: Arc<str> = Arc::from(String::from_utf8_lossy(&body).into_owned());
    let record = SnapshotRecord {
        policy: key.clone(),
        provider: "aws".into(),
        schema: SCHEMA.into(),
        collected_at: snapshot.collected_at.clone(),
        accepted_at: accepted_at.clone(),
        accounts: accounts.clone(),
        body: body.to_string(),
    };
    let store = state.store.clone();
    let saved = tokio::task::spawn_blocking(move || match store.lock() {
        Ok(mut store) => store.save_snapshot(&record).map_err(|e| e.to_string()),
        Err(_) => Err("the store is unusable after a crash of its writer".to_owned()),
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(e) = saved {
        let reason = format!("snapshot not stored, the previous one stays in use: {e}");
        tracing::error!(policy = %key, "{reason}");
        record_status(&state, &policy, &key, Some(&reason)).await;
        return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, reason));
    }
    let status = AcceptedSnapshot {
        collected_at: snapshot.collected_at.clone(),
        accepted_at,
        accounts: accounts.clone(),
        not_collected: not_collected as u32,
    };
    let accepted = Accepted {
        source: source_of(&policy, &key),
        snapshot: Arc::new(snapshot),
        body,
        status,
    };
    if let Ok(mut map) = state.snapshots.write() {
        map.insert(key.clone(), accepted);
    }
    state.cloud_changed.send_modify(|v| *v += 1);
    record_status(&state, &policy, &key, None).await;
    tracing::info!(policy = %key, accounts = ?accounts, not_collected, "snapshot accepted");
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "accepted": true,
            "policy": key,
            "accounts": accounts,
            "notCollected": not_collected,
        })),
    )
        .into_response())
}

/// How a policy's snapshot is judged.
pub fn source_of(policy: &ScanPolicy, key: &str) -> SnapshotSource {
    let aws = policy.spec.cloud.as_ref().and_then(|c| c.aws.as_ref());
    SnapshotSource {
        policy: Some(key.to_owned()),
        known_accounts: aws.map(|a| a.known_accounts.clone()).unwrap_or_default(),
        eks_cluster: aws.and_then(|a| a.eks_cluster_name.clone()),
    }
}

/// The accounts of a snapshot must be exactly the policy's (when it lists any): a
/// missing one is a partial snapshot, an extra one is not this policy's to report.
pub fn check_accounts(snapshot: &AwsSnapshot, aws: &crate::api::AwsCloud) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for account in &snapshot.accounts {
        if !seen.insert(account.account_id.as_str()) {
            return Err(format!("account {} appears twice", account.account_id));
        }
    }
    if aws.accounts.is_empty() {
        return Ok(());
    }
    for wanted in &aws.accounts {
        if !seen.contains(wanted.id.as_str()) {
            return Err(format!(
                "account {} of the ScanPolicy is missing (a partial collection)",
                wanted.id
            ));
        }
    }
    for found in seen {
        if !aws.accounts.iter().any(|a| a.id == found) {
            return Err(format!(
                "account {found} is not in the ScanPolicy's spec.cloud.aws.accounts"
            ));
        }
    }
    Ok(())
}

/// `status.cloud.aws.accepted` / `rejected`, under the ingest's own field manager.
async fn record_status(state: &ApiState, policy: &ScanPolicy, key: &str, rejected: Option<&str>) {
    let accepted = state
        .snapshots
        .read()
        .ok()
        .and_then(|m| m.get(key).map(|a| a.status.clone()));
    let mut aws = serde_json::Map::new();
    if let Some(accepted) = accepted {
        aws.insert("accepted".into(), json!(accepted));
    }
    if let Some(reason) = rejected {
        aws.insert(
            "rejected".into(),
            json!({"at": Timestamp::now().to_string(), "reason": reason}),
        );
    }
    let status = json!({
        "apiVersion": "posture.dev/v1alpha1",
        "kind": "ScanPolicy",
        "status": {"cloud": {"aws": aws}},
    });
    let api: Api<ScanPolicy> = Api::namespaced(
        state.client.clone(),
        policy.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let name = policy.metadata.name.clone().unwrap_or_default();
    if let Err(e) = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
    {
        tracing::warn!(policy = %key, "writing the snapshot status: {e}");
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    max_rows: Option<usize>,
}

async fn query(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    require_leader(&state)?;
    let user = authenticate(&state.client, &headers).await?;
    authorize(&state.client, &user, "query").await?;
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"sql\": \"SELECT ...\"}}: {e}"),
        )
    })?;
    let limits = Limits {
        max_rows: request.max_rows.unwrap_or(10_000).min(100_000),
        ..Limits::default()
    };
    let path = state.db_path.clone();
    tracing::info!(user = user.username.as_deref().unwrap_or_default(), "query");
    let result =
        tokio::task::spawn_blocking(move || ReadOnly::open(&path)?.query(&request.sql, limits))
            .await
            .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match result {
        Ok(result) => Ok(axum::Json(result).into_response()),
        Err(e) => Err(refuse(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn cloud_aws(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> ApiResult {
    require_leader(&state)?;
    let user = authenticate(&state.client, &headers).await?;
    authorize(&state.client, &user, "get").await?;
    let map = state
        .snapshots
        .read()
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "snapshot map poisoned"))?
        .clone();
    let etag = format!(
        "\"{}\"",
        crate::rules::fingerprint(
            &map.iter()
                .map(|(k, a)| format!("{k}@{}", a.status.accepted_at))
                .collect::<Vec<_>>()
                .join(","),
            &crate::inventory::ObjectKey::cluster(crate::inventory::Kind::Namespace, "cloud"),
        )
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    // The snapshot bodies are embedded as they were accepted, not re-serialised.
    let mut out = String::from("{\"snapshots\":[");
    for (i, (key, accepted)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"policy\":{},\"knownAccounts\":{},\"eksClusterName\":{},\"snapshot\":{}}}",
            json!(key),
            json!(accepted.source.known_accounts),
            json!(accepted.source.eks_cluster),
            accepted.body
        ));
    }
    out.push_str("]}");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, etag),
        ],
        out,
    )
        .into_response())
}

/// What `GET /v1/cloud/aws` returns.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudData {
    pub snapshots: Vec<CloudEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudEntry {
    pub policy: String,
    #[serde(default)]
    pub known_accounts: Vec<String>,
    #[serde(default)]
    pub eks_cluster_name: Option<String>,
    pub snapshot: AwsSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AwsAccount, AwsCloud};
    use crate::inventory::cloud::snapshot::AccountSnapshot;

    fn snapshot(accounts: &[&str]) -> AwsSnapshot {
        AwsSnapshot {
            schema: SCHEMA.into(),
            collected_at: "2026-12-04T06:00:00Z".into(),
            collector: "posture test".into(),
            accounts: accounts
                .iter()
                .map(|id| AccountSnapshot {
                    account_id: (*id).into(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn policy(ids: &[&str]) -> AwsCloud {
        AwsCloud {
            accounts: ids
                .iter()
                .map(|id| AwsAccount {
                    id: (*id).into(),
                    assume_role_arn: None,
                    external_id: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_snapshot_must_hold_exactly_the_policy_accounts() {
        let a = "111111111111";
        let b = "222222222222";
        assert!(check_accounts(&snapshot(&[a]), &policy(&[])).is_ok());
        assert!(check_accounts(&snapshot(&[a, b]), &policy(&[a, b])).is_ok());
        let partial = check_accounts(&snapshot(&[a]), &policy(&[a, b])).unwrap_err();
        assert!(
            partial.contains(b) && partial.contains("partial"),
            "{partial}"
        );
        let extra = check_accounts(&snapshot(&[a, b]), &policy(&[a])).unwrap_err();
        assert!(extra.contains(b), "{extra}");
        assert!(check_accounts(&snapshot(&[a, a]), &policy(&[])).is_err());
    }
}
