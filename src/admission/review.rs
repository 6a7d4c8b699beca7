//! AdmissionReview v1 in and out. Hand-written types rather than a generic JSON tree so
//! that a malformed review gets an error naming the field, and so that only what the
//! webhook reads is parsed.

use std::sync::Arc;

use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inventory::model::kubernetes_kinds;
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
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub user_info: Option<UserInfo>,
    /// `request.object` and `request.oldObject` as the inventory models them, read by
    /// [`parse`] straight from the body into their Kubernetes types: no generic JSON
    /// tree, no copy of it (they were most of a decision's time).
    #[serde(skip, default = "unread")]
    objects: [Result<Option<Object>, String>; 2],
}

fn unread() -> [Result<Option<Object>, String>; 2] {
    [Ok(None), Ok(None)]
}

/// The objects of a review, typed by the request's kind.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct TypedReview<T> {
    request: TypedRequest<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
struct TypedRequest<T> {
    #[serde(default)]
    object: Option<T>,
    #[serde(default)]
    old_object: Option<T>,
}

/// The objects as JSON trees: only to name what is wrong when the typed read fails.
#[derive(Deserialize)]
struct LooseReview {
    request: TypedRequest<Value>,
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
    let mut request = review.request.ok_or(ReviewError::NoRequest)?;
    request.objects = request.read_objects(&without_managed_fields(body));
    Ok(request)
}

/// The body with every `"managedFields"` member's value replaced by `null`. The API
/// server sends each object's field-ownership records, often the larger part of a
/// review; no rule reads them (the watches drop them too), and reading them into
/// typed objects was the largest cost of a decision. A linear scan that knows JSON
/// strings, so text inside a value is never mistaken for a key; a body that is not
/// JSON comes back unchanged for the parser to name the error.
pub fn without_managed_fields(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const KEY: &[u8] = b"\"managedFields\"";
    if !body.windows(KEY.len()).any(|w| w == KEY) {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let end = string_end(body, i);
                out.extend_from_slice(&body[i..end]);
                if &body[i..end] == KEY {
                    let mut j = end;
                    while j < body.len() && body[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if body.get(j) == Some(&b':') {
                        let start = j + 1;
                        if let Some(value_end) = value_end(body, start) {
                            out.extend_from_slice(b":null");
                            i = value_end;
                            continue;
                        }
                    }
                }
                i = end;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Index just past the string starting at `start` (a `"`), or the end of the body.
fn string_end(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

/// Index just past the JSON value starting at or after `start`; `None` when the body
/// ends first (the parser will say what is wrong).
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    let mut depth = 0usize;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i = string_end(body, i);
                if depth == 0 {
                    return Some(i);
                }
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                if depth == 0 {
                    // A scalar ended by its container.
                    return Some(i);
                }
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Fills what admission leaves out of an object: the request's namespace (often absent
/// on CREATE) and a placeholder name for `generateName`.
fn fill_in(meta: &mut ObjectMeta, request: &AdmissionRequest) {
    if meta.namespace.is_none()
        && let Some(ns) = request.namespace.as_ref().filter(|n| !n.is_empty())
    {
        meta.namespace = Some(ns.clone());
    }
    if meta.name.as_deref().is_none_or(str::is_empty) {
        meta.name = Some(
            match (request.name.as_deref(), meta.generate_name.as_deref()) {
                (Some(n), _) if !n.is_empty() => n.to_owned(),
                (_, Some(prefix)) => format!("{prefix}<generated>"),
                _ => "<unnamed>".to_owned(),
            },
        );
    }
}

type Pair<T> = (Option<T>, Option<T>);

fn typed<T>(body: &[u8], request: &AdmissionRequest) -> serde_json::Result<Pair<Arc<T>>>
where
    T: DeserializeOwned + Metadata<Ty = ObjectMeta>,
{
    let review: TypedReview<T> = serde_json::from_slice(body)?;
    let wrap = |object: Option<T>| {
        object.map(|mut o| {
            fill_in(o.metadata_mut(), request);
            Arc::new(o)
        })
    };
    Ok((wrap(review.request.object), wrap(review.request.old_object)))
}

impl AdmissionRequest {
    pub fn dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }

    /// The object of the request as the inventory models it, with the request's
    /// namespace filled in (it is often absent from the object on CREATE) and a
    /// placeholder name for `generateName`. `Ok(None)` for kinds posture does not judge.
    pub fn object(&self, which: Which) -> Result<Option<Object>, String> {
        self.objects[which as usize].clone()
    }

    fn read_objects(&self, body: &[u8]) -> [Result<Option<Object>, String>; 2] {
        let Some(kind) = Kind::parse(&self.kind.kind).filter(|k| !k.is_cloud()) else {
            return [Ok(None), Ok(None)];
        };
        macro_rules! read {
            ($($kind:ident),*) => {
                match kind {
                    $(Kind::$kind => typed(body, self).map(|(new, old)| {
                        (new.map(Object::$kind), old.map(Object::$kind))
                    }),)*
                    _ => Ok((None, None)),
                }
            };
        }
        let read = kubernetes_kinds!(read);
        match read {
            Ok((new, old)) => [Ok(new), Ok(old)],
            // Which object is wrong, and where: read again as trees, one at a time.
            Err(_) => {
                let loose = serde_json::from_slice::<LooseReview>(body).map(|r| r.request);
                let (new, old) = match loose {
                    Ok(r) => (r.object, r.old_object),
                    Err(e) => return [Err(e.to_string()), Err(e.to_string())],
                };
                [
                    self.object_from_tree(Which::New, new),
                    self.object_from_tree(Which::Old, old),
                ]
            }
        }
    }

    fn object_from_tree(&self, which: Which, raw: Option<Value>) -> Result<Option<Object>, String> {
        let Some(mut value) = raw else {
            return Ok(None);
        };
        let Some(object) = value.as_object_mut() else {
            return Err(format!(
                "{}: the object is not a JSON object",
                which.field()
            ));
        };
        // Admission sends the kind in request.kind; objects usually carry it too.
        object.insert("kind".into(), Value::String(self.kind.kind.clone()));
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
    New = 0,
    Old = 1,
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
    fn managed_fields_are_dropped_and_nothing_else() {
        let body = br#"{"a":{"managedFields":[{"manager":"kubectl","fieldsV1":{"f:metadata":{"f:labels":{}}}}],"name":"x"},
            "b":"a \"managedFields\": [1] in text","managedFields" : "s\"]}",
            "c":{"managedFields":7},"d":[{"managedFields":{"x":[1,{"y":"]"}]}}]}"#;
        let stripped = without_managed_fields(body);
        let v: Value = serde_json::from_slice(&stripped).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": {"managedFields": null, "name": "x"},
                "b": "a \"managedFields\": [1] in text", "managedFields": null,
                "c": {"managedFields": null}, "d": [{"managedFields": null}]})
        );
        // Nothing to strip, or not JSON at all: the body as it was.
        for same in [
            &b"{\"a\":1}"[..],
            b"not json",
            b"{\"managedFields\":",
            b"\"managedFields\"",
        ] {
            assert_eq!(&*without_managed_fields(same), same);
        }
    }

    #[test]
    fn a_review_from_the_api_server_reads_the_same_without_managed_fields() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"namespace":"shop",
            "operation":"CREATE","object":{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","managedFields":[{"manager":"kubectl-client-side-apply",
            "operation":"Update","apiVersion":"apps/v1","fieldsType":"FieldsV1",
            "fieldsV1":{"f:spec":{"f:template":{}}}}]},
            "spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
            "spec":{"containers":[{"name":"a","image":"nginx","securityContext":{"privileged":true}}]}}}}}}"#;
        let object = parse(body).unwrap().object(Which::New).unwrap().unwrap();
        let Object::Deployment(d) = &object else {
            panic!("{object:?}")
        };
        assert_eq!(d.metadata.managed_fields, None);
        let container = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(
            container.security_context.as_ref().unwrap().privileged,
            Some(true)
        );
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
