//! Kubernetes manifests from files, folders and stdin: multi-document YAML, JSON and
//! `kind: List`, each object remembered with the file and line it came from. A broken
//! document is reported with its file, index and reason; the others are still read.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::inventory::{Inventory, Object, ObjectKey};

/// Where an object was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as given (or `-` for stdin).
    pub file: String,
    /// 1-based index of the YAML document in the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    /// `None` when the whole file failed (unreadable, say).
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.document, self.line) {
            (Some(doc), Some(line)) => write!(
                f,
                "{}: document {doc} (line {line}): {}",
                self.file, self.reason
            ),
            _ => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Manifests {
    pub objects: Vec<(Object, Source)>,
    pub errors: Vec<InputError>,
    /// Objects of kinds the rules do not look at (CRDs, ConfigMaps of other tools...).
    pub skipped: usize,
    pub files: usize,
}

impl Manifests {
    /// The inventory of every object read; namespaced objects without a namespace go
    /// to `default_namespace`, as kubectl would put them.
    pub fn inventory(&self) -> Inventory {
        let mut inventory = Inventory::new();
        for (object, _) in &self.objects {
            inventory.apply(object.clone());
        }
        inventory
    }

    /// Where each object came from, for looking up many findings' locations; the
    /// objects themselves are let go (the inventory holds what the rules need).
    pub fn take_sources(&mut self) -> std::collections::HashMap<ObjectKey, Source> {
        std::mem::take(&mut self.objects)
            .into_iter()
            .map(|(o, s)| (o.key(), s))
            .collect()
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Files under `path` (itself when a file), sorted for stable output.
fn files_under(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                let hidden = entry
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden {
                    files_under(&entry, out)?;
                }
            } else if is_manifest(&entry) {
                out.push(entry);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Reads every input: paths (files or folders) and `-` for stdin.
pub fn read_inputs(inputs: &[String], default_namespace: &str) -> Manifests {
    let mut manifests = Manifests::default();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => read_text("-", &text, default_namespace, &mut manifests),
                Err(e) => manifests.errors.push(InputError {
                    file: "-".into(),
                    document: None,
                    line: None,
                    reason: format!("cannot read stdin: {e}"),
                }),
            }
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = files_under(Path::new(input), &mut files) {
            manifests.errors.push(InputError {
                file: input.clone(),
                document: None,
                line: None,
                reason: format!("cannot read: {e}"),
            });
            continue;
        }
        for file in files {
            let name = file.display().to_string();
            match fs::read_to_string(&file) {
                Ok(text) => read_text(&name, &text, default_namespace, &mut manifests),
                Err(e) => manifests.errors.push(InputError {
                    file: name,
                    document: None,
                    line: None,
                    reason: format!("cannot read: {e}"),
                }),
            }
        }
    }
    manifests
}

/// The documents of a YAML stream: (1-based start line, text). A line starting with
/// `---` separates documents; `...` ends one.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_separator =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_separator || line == "..." {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // `--- {a: 1}` carries content on the separator line.
            if is_separator
                && !line[3..].trim().is_empty()
                && !line[3..].trim_start().starts_with('#')
            {
                current.push_str(&line[3..]);
                current.push('\n');
                start = i + 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// Reads one file's text into `manifests`.
/// File modes written the YAML 1.1 way (`defaultMode: 0440`), as kubectl and Helm read
/// them (octal), instead of the string a YAML 1.2 parser makes of a leading zero.
fn yaml11_octal_modes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if matches!(key.as_str(), "defaultMode" | "mode")
                    && let Value::String(text) = item
                    && text.len() > 1
                    && text.starts_with('0')
                    && let Ok(mode) = i64::from_str_radix(&text[1..], 8)
                {
                    *item = Value::from(mode);
                } else {
                    yaml11_octal_modes(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(yaml11_octal_modes),
        _ => {}
    }
}

pub fn read_text(file: &str, text: &str, default_namespace: &str, manifests: &mut Manifests) {
    manifests.files += 1;
    let trimmed = text.trim_start();
    let documents = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON: one document (YAML would parse it too, but its errors read worse).
        vec![(1, text.to_owned())]
    } else {
        split_documents(text)
    };
    let mut index = 0;
    for (line, doc) in documents {
        if is_blank(&doc) {
            continue;
        }
        index += 1;
        let error = |reason: String| InputError {
            file: file.to_owned(),
            document: Some(index),
            line: Some(line),
            reason,
        };
        let value: Value = match serde_yaml_ng::from_str(&doc) {
            Ok(mut value) => {
                yaml11_octal_modes(&mut value);
                value
            }
            Err(e) => {
                // The parser counts lines from the document's start; say the file's.
                let mut reason = format!("not valid YAML: {e}");
                if let Some(at) = e.location() {
                    let relative = format!("at line {} column {}", at.line(), at.column());
                    let absolute =
                        format!("at line {} column {}", line + at.line() - 1, at.column());
                    reason = reason.replacen(&relative, &absolute, 1);
                }
                manifests.errors.push(error(reason));
                continue;
            }
        };
        let source = Source {
            file: file.to_owned(),
            document: index,
            line,
        };
        match value {
            Value::Null => {}
            Value::Object(_) => add_value(value, &source, default_namespace, manifests, &error),
            Value::Array(items) => {
                for item in items {
                    add_value(item, &source, default_namespace, manifests, &error);
                }
            }
            other => manifests.errors.push(error(format!(
                "expected a Kubernetes object, found {}",
                kind_of(&other)
            ))),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn add_value(
    mut value: Value,
    source: &Source,
    default_namespace: &str,
    manifests: &mut Manifests,
    error: &dyn Fn(String) -> InputError,
) {
    let kind = value.get("kind").and_then(Value::as_str).map(str::to_owned);
    let Some(kind) = kind else {
        manifests.errors.push(error(
            "the document has no `kind`: is it a Kubernetes manifest?".into(),
        ));
        return;
    };
    if kind.ends_with("List") && value.get("items").is_some_and(Value::is_array) {
        if let Some(Value::Array(items)) = value.get_mut("items").map(Value::take) {
            for item in items {
                add_value(item, source, default_namespace, manifests, error);
            }
        }
        return;
    }
    if value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        manifests
            .errors
            .push(error(format!("{kind} has no metadata.name")));
        return;
    }
    if value.pointer("/metadata/namespace").is_none()
        && let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        metadata.insert(
            "namespace".into(),
            Value::String(default_namespace.to_owned()),
        );
    }
    match Object::from_value(value) {
        None => manifests.skipped += 1,
        Some(Ok(object)) => manifests.objects.push((object, source.clone())),
        Some(Err(e)) => manifests.errors.push(error(format!(
            "{kind} does not match the Kubernetes schema: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_file_modes_read_as_kubectl_reads_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec:\n  containers: [{name: c, image: \"a:1\"}]\n  volumes:\n  - name: tls\n    secret: {secretName: tls, defaultMode: 0440, items: [{key: a, path: a, mode: 0400}]}\n";
        let mut m = Manifests::default();
        read_text("pod.yaml", text, "default", &mut m);
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        let Object::Pod(pod) = &m.objects[0].0 else {
            panic!("a pod")
        };
        let secret = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0]
            .secret
            .clone()
            .unwrap();
        assert_eq!(secret.default_mode, Some(0o440));
        assert_eq!(secret.items.unwrap()[0].mode, Some(0o400));
    }

    #[test]
    fn documents_keep_their_start_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\nc: 3\n--- # comment\nd: 4\n");
        let starts: Vec<usize> = docs.iter().map(|(l, _)| *l).collect();
        assert_eq!(starts, [1, 3, 6]);
        assert_eq!(docs[1].1, "b: 2\nc: 3\n");
    }

    #[test]
    fn a_broken_document_is_named_and_the_others_are_read() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: [unclosed\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b, namespace: x}\n";
        let mut m = Manifests::default();
        read_text("deploy.yaml", text, "default", &mut m);
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.errors.len(), 1);
        let e = &m.errors[0];
        assert_eq!(
            (e.file.as_str(), e.document, e.line),
            ("deploy.yaml", Some(2), Some(5))
        );
        assert!(
            e.to_string()
                .starts_with("deploy.yaml: document 2 (line 5): not valid YAML"),
            "{e}"
        );
        // The namespace defaults like kubectl's.
        assert_eq!(m.objects[0].0.key().namespace(), Some("default"));
        assert_eq!(m.objects[1].0.key().namespace(), Some("x"));
    }

    #[test]
    fn lists_json_and_unknown_kinds() {
        let mut m = Manifests::default();
        read_text(
            "l.json",
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}},{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}]}"#,
            "default",
            &mut m,
        );
        assert_eq!((m.objects.len(), m.skipped, m.errors.len()), (1, 1, 0));
        read_text(
            "bad.yaml",
            "kind: Deployment\nmetadata: {name: d}\nspec: {replicas: many}\n",
            "default",
            &mut m,
        );
        assert!(
            m.errors[0]
                .reason
                .contains("does not match the Kubernetes schema"),
            "{:?}",
            m.errors
        );
        read_text("odd.yaml", "just a string\n", "default", &mut m);
        assert!(m.errors[1].reason.contains("found a string"));
    }
}
