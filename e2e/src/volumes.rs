//! Volumes for the test kubelet: Secret, ConfigMap, emptyDir and projected volumes
//! (Secrets, ConfigMaps, ServiceAccount tokens, the downward API's namespace and name)
//! are written into the pod's folder, and each container that mounts them runs in a
//! mount namespace of its own (`unshare --mount`) where they are bind-mounted at their
//! `mountPath`, read-only when asked. The process sees the files where the manifest
//! says, as in a real pod, while the host's view does not change (a mount point that
//! does not exist is created as an empty directory first). Other volume kinds are
//! refused with a clear StartError.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

/// Where each volume of a pod was materialised.
pub type Materialised = BTreeMap<String, PathBuf>;

fn write_file(dir: &Path, path: &str, bytes: &[u8], mode: i32) -> Result<()> {
    if path.split('/').any(|p| p == "..") || path.starts_with('/') {
        bail!("volume item path {path:?} must be relative and stay inside the volume");
    }
    let file = dir.join(path);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode as u32 & 0o777))?;
    Ok(())
}

/// Writes `data` (key → bytes) as files, all keys or the listed items.
fn write_keys(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<()> {
    match items {
        None => {
            for (key, value) in data {
                write_file(dir, key, value, default_mode)?;
            }
        }
        Some(items) => {
            for item in items {
                let value = data
                    .get(&item.key)
                    .with_context(|| format!("{what} has no key {:?}", item.key))?;
                write_file(dir, &item.path, value, item.mode.unwrap_or(default_mode))?;
            }
        }
    }
    Ok(())
}

async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    match secret {
        Some(s) => {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            Ok(Some(data))
        }
        None if optional => Ok(None),
        None => bail!("secret {name:?} not found"),
    }
}

async fn config_map_data(
    client: &Client,
    ns: &str,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
    let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    match map {
        Some(m) => {
            let mut data: BTreeMap<String, Vec<u8>> = m
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in m.binary_data.unwrap_or_default() {
                data.insert(k, v.0);
            }
            Ok(Some(data))
        }
        None if optional => Ok(None),
        None => bail!("configmap {name:?} not found"),
    }
}

async fn token(
    client: &Client,
    pod: &Pod,
    audience: Option<String>,
    seconds: Option<i64>,
) -> Result<String> {
    let ns = pod.namespace().unwrap_or_default();
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(seconds.unwrap_or(3600).max(600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..Default::default()
    };
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create_subresource("token", &account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {ns}/{account}"))?;
    answer
        .status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// Writes every volume of the pod under `dir/volumes/<name>`.
pub async fn materialise(client: &Client, pod: &Pod, dir: &Path) -> Result<Materialised> {
    let ns = pod.namespace().unwrap_or_default();
    let mut out = Materialised::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
    {
        let path = dir.join("volumes").join(&volume.name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        let what = format!("volume {:?}", volume.name);
        if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            if let Some(data) = secret_data(client, &ns, &name, s.optional == Some(true)).await? {
                write_keys(
                    &path,
                    &data,
                    s.items.as_ref(),
                    s.default_mode.unwrap_or(0o644),
                    &what,
                )?;
            }
        } else if let Some(c) = &volume.config_map {
            if let Some(data) =
                config_map_data(client, &ns, &c.name, c.optional == Some(true)).await?
            {
                write_keys(
                    &path,
                    &data,
                    c.items.as_ref(),
                    c.default_mode.unwrap_or(0o644),
                    &what,
                )?;
            }
        } else if volume.empty_dir.is_some() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
        } else if let Some(p) = &volume.projected {
            let mode = p.default_mode.unwrap_or(0o644);
            for source in p.sources.clone().unwrap_or_default() {
                if let Some(s) = &source.secret {
                    if let Some(data) =
                        secret_data(client, &ns, &s.name, s.optional == Some(true)).await?
                    {
                        write_keys(&path, &data, s.items.as_ref(), mode, &what)?;
                    }
                } else if let Some(c) = &source.config_map {
                    if let Some(data) =
                        config_map_data(client, &ns, &c.name, c.optional == Some(true)).await?
                    {
                        write_keys(&path, &data, c.items.as_ref(), mode, &what)?;
                    }
                } else if let Some(t) = &source.service_account_token {
                    let token =
                        token(client, pod, t.audience.clone(), t.expiration_seconds).await?;
                    write_file(&path, &t.path, token.as_bytes(), mode)?;
                } else if let Some(d) = &source.downward_api {
                    for item in d.items.clone().unwrap_or_default() {
                        let value = match item.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                            Some("metadata.namespace") => ns.clone(),
                            Some("metadata.name") => pod.name_any(),
                            other => bail!("{what}: downward API field {other:?} is not emulated"),
                        };
                        write_file(
                            &path,
                            &item.path,
                            value.as_bytes(),
                            item.mode.unwrap_or(mode),
                        )?;
                    }
                } else {
                    bail!("{what}: this projected source is not emulated by the test kubelet");
                }
            }
        } else {
            bail!(
                "{what}: the test kubelet emulates secret, configMap, emptyDir and projected volumes only"
            );
        }
        out.insert(volume.name.clone(), path);
    }
    Ok(out)
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Where the pod's folder is bind-mounted inside the container's mount namespace, on a
/// tmpfs private to it: a volume mounted over a parent of the pod folder (an emptyDir
/// on /tmp, the folder being under /tmp) must not hide the other volumes' sources nor
/// the pod's kubeconfig. Only this empty directory is ever created on the host.
pub const STAGE: &str = "/run/posture-test-kubelet";

/// The program and arguments that run `program args` with the container's volume
/// mounts in place: `unshare --mount` and a small script of bind mounts, then `exec`
/// (the pid stays the container's). `None` when the container mounts nothing.
pub fn wrap(
    container: &Container,
    pod_dir: &Path,
    volumes: &Materialised,
    program: &Path,
    args: &[String],
) -> Result<Option<(PathBuf, Vec<String>)>> {
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    if mounts.is_empty() {
        return Ok(None);
    }
    let pod = format!("{STAGE}/pod");
    let mut script = format!(
        "set -e\nmount -t tmpfs -o size=1m,mode=0755 posture-stage {STAGE}\nmkdir {pod}\nmount --bind {} {pod}\n",
        quote(&pod_dir.display().to_string())
    );
    for mount in &mounts {
        let source = volumes
            .get(&mount.name)
            .with_context(|| format!("volumeMount {:?} names no volume of the pod", mount.name))?;
        let relative = source
            .strip_prefix(pod_dir)
            .with_context(|| format!("volume {:?} is outside the pod folder", mount.name))?;
        let mut staged = Path::new(&pod).join(relative);
        let mut on_host = source.clone();
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            staged = staged.join(sub);
            on_host = on_host.join(sub);
        }
        let target = quote(&mount.mount_path);
        if on_host.is_dir() {
            script.push_str(&format!("mkdir -p {target}\n"));
        } else {
            script.push_str(&format!(
                "mkdir -p \"$(dirname {target})\"; [ -e {target} ] || touch {target}\n"
            ));
        }
        script.push_str(&format!(
            "mount --bind {} {target}\n",
            quote(&staged.display().to_string())
        ));
        if mount.read_only == Some(true) {
            script.push_str(&format!("mount -o remount,bind,ro {target}\n"));
        }
    }
    // The kubeconfig and the working folder, through the stage as well.
    script.push_str(&format!(
        "if [ -n \"${{KUBECONFIG:-}}\" ]; then export KUBECONFIG={pod}/kubeconfig; fi\ncd {pod}\nexec \"$@\"\n"
    ));
    std::fs::create_dir_all(STAGE).with_context(|| format!("creating {STAGE}"))?;
    let mut wrapped = vec![
        "--mount".to_owned(),
        "--propagation".to_owned(),
        "private".to_owned(),
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script,
        "posture-volumes".to_owned(),
        program.display().to_string(),
    ];
    wrapped.extend(args.iter().cloned());
    Ok(Some((PathBuf::from("/usr/bin/unshare"), wrapped)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_cannot_escape_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_file(dir.path(), "../x", b"", 0o644).is_err());
        assert!(write_file(dir.path(), "/etc/x", b"", 0o644).is_err());
        write_file(dir.path(), "a/b.crt", b"pem", 0o440).unwrap();
        let meta = std::fs::metadata(dir.path().join("a/b.crt")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    }

    #[test]
    fn mounts_become_bind_mounts_in_a_private_namespace() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "app",
            "volumeMounts": [
                {"name": "tls", "mountPath": "/tls", "readOnly": true},
                {"name": "data", "mountPath": "/var/lib/posture"},
            ],
        }))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut volumes = Materialised::new();
        for name in ["tls", "data"] {
            let path = dir.path().join("volumes").join(name);
            std::fs::create_dir_all(&path).unwrap();
            volumes.insert(name.into(), path);
        }
        let (program, args) = wrap(
            &container,
            dir.path(),
            &volumes,
            Path::new("/bin/posture"),
            &["operator".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(program, Path::new("/usr/bin/unshare"));
        let script = &args[5];
        assert!(
            script.contains("mount -o remount,bind,ro '/tls'"),
            "{script}"
        );
        assert!(
            script.contains("mount --bind '/run/posture-test-kubelet/pod/volumes/tls' '/tls'"),
            "sources are read through the stage: {script}"
        );
        assert!(script.contains("'/var/lib/posture'"), "{script}");
        assert_eq!(&args[args.len() - 2..], ["/bin/posture", "operator"]);
        let none: Container = serde_json::from_value(serde_json::json!({"name": "x"})).unwrap();
        assert!(
            wrap(&none, dir.path(), &volumes, Path::new("/bin/posture"), &[])
                .unwrap()
                .is_none()
        );
        let unknown: Container = serde_json::from_value(serde_json::json!({
            "name": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}],
        }))
        .unwrap();
        assert!(
            wrap(
                &unknown,
                dir.path(),
                &volumes,
                Path::new("/bin/posture"),
                &[]
            )
            .is_err()
        );
    }
}
