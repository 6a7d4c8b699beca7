//! Tags on affected workloads: labels `posture.dev/<tag>: "true"` and the annotation
//! `posture.dev/findings`, applied with a field manager of their own that owns only
//! these keys, so other controllers and GitOps tools keep theirs.

use std::collections::BTreeMap;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

use crate::inventory::{Inventory, ObjectKey};
use crate::rules::WorkloadTagsView;

pub const TAG_MANAGER: &str = "posture-tags";
pub const LABEL_PREFIX: &str = "posture.dev/";
pub const FINDINGS_ANNOTATION: &str = "posture.dev/findings";

/// The labels and annotation a workload should carry for its tags.
pub fn desired(tags: &WorkloadTagsView) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = tags
        .tags
        .iter()
        .map(|t| (format!("{LABEL_PREFIX}{t}"), "true".to_owned()))
        .collect();
    let mut annotations = BTreeMap::new();
    if let Some(worst) = tags.worst {
        let rules: Vec<&str> = tags.rules.iter().map(String::as_str).collect();
        annotations.insert(
            FINDINGS_ANNOTATION.to_owned(),
            format!("{worst}: {}", rules.join(", ")),
        );
    }
    (labels, annotations)
}

/// The tag labels and annotation the workload carries now (from the inventory copy).
pub fn current(
    inventory: &Inventory,
    key: &ObjectKey,
) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let meta = inventory.get(key)?.meta();
    let ours = |map: &Option<BTreeMap<String, String>>, keep: &dyn Fn(&str) -> bool| {
        map.iter()
            .flatten()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    // Only the tag vocabulary of the catalog: other posture.dev/ labels are not ours.
    let vocabulary = crate::rules::tag_vocabulary();
    let labels = ours(&meta.labels, &|k| {
        k.strip_prefix(LABEL_PREFIX)
            .is_some_and(|t| vocabulary.contains(t))
    });
    let annotations = ours(&meta.annotations, &|k| k == FINDINGS_ANNOTATION);
    Some((labels, annotations))
}

/// Applies the tags. An empty set removes what we set before: server-side apply drops
/// fields a manager owned and no longer sends.
pub async fn apply(
    client: &Client,
    key: &ObjectKey,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    // Tags go on workloads only; cloud subjects keep theirs in the inventory store.
    let Some(api_version) = key.kind.api_version() else {
        return Ok(());
    };
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, key.kind.as_str()));
    let api: Api<DynamicObject> = match key.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let body = json!({
        "apiVersion": api_version,
        "kind": key.kind.as_str(),
        "metadata": {
            "name": key.name,
            "labels": labels,
            "annotations": annotations,
        }
    });
    api.patch(
        &key.name,
        &PatchParams::apply(TAG_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
