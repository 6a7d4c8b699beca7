//! AdmissionReview v1 in and out. Hand-written types rather than a generic JSON tree so
//! that a malformed review gets an error naming the field, and so that only what the
//! webhook reads is parsed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inventory::{Kind, Object};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: String,
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub user_info: Option<UserInfo>,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: Option<String>,
}

/// Why a body is not an AdmissionReview this webhook can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    NotJson(String),
    #[error(
        "AdmissionReview {0} is not supported: send admission.k8s.io/v1 (admissionReviewVersions: [v1])"
    )]
    Version(String),
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

pub fn parse(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: AdmissionReview = serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        ReviewError::NotJson(text)
    })?;
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err(ReviewError::Version(format!(
            "{}/{}",
            review.api_version, review.kind
        )));
    }
    review.request.ok_or(ReviewError::NoRequest)
}

impl AdmissionRequest {
    pub fn dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }

    /// The object of the request as the inventory models it, with the request's
    /// namespace filled in (it is often absent from the object on CREATE) and a
    /// placeholder name for `generateName`. `Ok(None)` for kinds posture does not judge.
    pub fn object(&self, which: Which) -> Result<Option<Object>, String> {
        let raw = match which {
            Which::New => self.object.as_ref(),
            Which::Old => self.old_object.as_ref(),
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        if Kind::parse(&self.kind.kind).is_none() {
            return Ok(None);
        }
        let mut value = raw.clone();
        let Some(object) = value.as_object_mut() else {
            return Err(format!(
                "{}: the object is not a JSON object",
                which.field()
            ));
        };
        // Admission sends the kind in request.kind; objects usually carry it too.
        object
            .entry("kind")
            .or_insert_with(|| Value::String(self.kind.kind.clone()));
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            if let Some(ns) = self.namespace.as_ref().filter(|n| !n.is_empty()) {
                meta.entry("namespace")
                    .or_insert_with(|| Value::String(ns.clone()));
            }
            let named = meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                let name = match (self.name.as_deref(), meta.get("generateName")) {
                    (Some(n), _) if !n.is_empty() => n.to_owned(),
                    (_, Some(Value::String(prefix))) => format!("{prefix}<generated>"),
                    _ => "<unnamed>".to_owned(),
                };
                meta.insert("name".into(), Value::String(name));
            }
        }
        match Object::from_value(value) {
            Some(Ok(object)) => Ok(Some(object)),
            Some(Err(e)) => Err(format!(
                "{}: not a valid {}: {e}",
                which.field(),
                self.kind.kind
            )),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Which {
    New,
    Old,
}

impl Which {
    fn field(self) -> &'static str {
        match self {
            Which::New => "request.object",
            Which::Old => "request.oldObject",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewResponse {
    api_version: &'static str,
    kind: &'static str,
    response: Response,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Status {
    code: u16,
    reason: &'static str,
    message: String,
}

/// Kubernetes keeps warnings short; longer ones are truncated by clients.
const MAX_WARNING: usize = 250;

fn shorten(warning: String) -> String {
    let line = warning.replace('\n', " ");
    if line.len() <= MAX_WARNING {
        return line;
    }
    let mut end = MAX_WARNING - 1;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

impl ReviewResponse {
    pub fn new(uid: &str, allowed: bool, denial: Option<String>, warnings: Vec<String>) -> Self {
        Self {
            api_version: "admission.k8s.io/v1",
            kind: "AdmissionReview",
            response: Response {
                uid: uid.to_owned(),
                allowed,
                status: denial.map(|message| Status {
                    code: 403,
                    reason: "Forbidden",
                    message,
                }),
                warnings: warnings.into_iter().map(shorten).collect(),
            },
        }
    }

    pub fn allowed(&self) -> bool {
        self.response.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_are_named() {
        assert!(matches!(parse(b"not json"), Err(ReviewError::NotJson(_))));
        let v1beta1 = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#;
        assert!(matches!(parse(v1beta1), Err(ReviewError::Version(_))));
        let empty = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        assert!(matches!(parse(empty), Err(ReviewError::NoRequest)));
        let no_uid = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}"#;
        let err = parse(no_uid).unwrap_err().to_string();
        assert!(err.contains("uid"), "{err}");
    }

    #[test]
    fn namespace_and_generated_names_are_filled_in() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"shop",
            "operation":"CREATE","object":{"apiVersion":"v1","metadata":{"generateName":"web-"},
            "spec":{"containers":[{"name":"a","image":"nginx"}]}}}}"#;
        let request = parse(body).unwrap();
        let object = request.object(Which::New).unwrap().unwrap();
        let key = object.key();
        assert_eq!(key.namespace(), Some("shop"));
        assert_eq!(key.name, "web-<generated>");
    }

    #[test]
    fn an_object_that_does_not_parse_names_the_field() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"shop",
            "operation":"CREATE","object":{"metadata":{"name":"x"},"spec":{"containers":"nope"}}}}"#;
        let err = parse(body).unwrap().object(Which::New).unwrap_err();
        assert!(err.starts_with("request.object: not a valid Pod"), "{err}");
    }

    #[test]
    fn responses_carry_uid_status_and_single_line_warnings() {
        let r = ReviewResponse::new("abc", false, Some("no".into()), vec!["a\nb".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["response"]["uid"], "abc");
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["warnings"][0], "a b");
    }
}
