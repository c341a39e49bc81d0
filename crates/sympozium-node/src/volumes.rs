//! A pod's volumes as host directories the sandbox binds at each `mountPath`.
//!
//! - emptyDir: a directory (medium `Memory`: a tmpfs of `sizeLimit`, default half the RAM).
//! - configMap, secret, downwardAPI, projected (incl. serviceAccountToken from the
//!   TokenRequest API): files written atomically (kubelet-style `..data` symlink swap), so a
//!   re-sync while the pod runs updates what containers see in place.
//! - persistentVolumeClaim: the bound PV's `hostPath`/`local` path (see `provisioner`).
//! - hostPath: only under the node's allowed prefixes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    ServiceAccount, Volume,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::env::NodeValues;

/// Files of a volume: relative path → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// A prepared volume.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Host path bound into containers.
    pub host_path: PathBuf,
    /// Kept in sync while the pod runs.
    pub synced: bool,
    /// A tmpfs mounted by the node (unmounted when the pod goes).
    pub tmpfs: bool,
    /// Read-only whatever the mount says (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
}

/// Why a volume is not ready: the pod stays ContainerCreating with this message.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap, Secret or PersistentVolumeClaim the volume needs does not exist.
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// `configmap`, `secret`, `persistentvolumeclaim`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Reading an object from the API server failed.
    #[error("reading {kind} {name}: {source}")]
    Read {
        /// `configmap`, `secret`, …
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A projected item names a key the object lacks.
    #[error("key {0} not found")]
    MissingKey(String),
    /// The service account token request failed.
    #[error("requesting a token for serviceaccount {account}: {source}")]
    TokenRequest {
        /// The service account.
        account: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The token request was answered without a token.
    #[error("the token request returned no token")]
    NoToken,
    /// Writing the volume's files failed.
    #[error("volume {volume}: {source}")]
    Io {
        /// The volume.
        volume: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Mounting a memory-backed emptyDir failed.
    #[error("volume {volume}: mounting tmpfs: {source}")]
    Tmpfs {
        /// The volume.
        volume: String,
        /// The mount command's error.
        #[source]
        source: CommandError,
    },
    /// The hostPath is outside the node's allowed prefixes.
    #[error(
        "volume {volume}: hostPath {path} is not allowed on this node (sympozium-node --allow-host-path)"
    )]
    HostPathNotAllowed {
        /// The volume.
        volume: String,
        /// The hostPath.
        path: String,
    },
    /// The hostPath does not exist.
    #[error("volume {volume}: hostPath {path} does not exist")]
    HostPathMissing {
        /// The volume.
        volume: String,
        /// The hostPath.
        path: String,
    },
    /// The volume type is not implemented here.
    #[error("volume {0}: this volume type is not supported by sympozium-node")]
    Unsupported(String),
    /// The claim is not bound to a volume yet.
    #[error("persistentvolumeclaim \"{0}\" is not bound yet")]
    Unbound(String),
    /// The bound volume is of a kind the node cannot mount.
    #[error("persistentvolume {0} is neither hostPath nor local")]
    UnsupportedVolume(String),
    /// The bound volume's directory could not be created.
    #[error("persistentvolume {name}: {source}")]
    VolumeDir {
        /// The PersistentVolume.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A helper command that failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started.
    #[error("{0}")]
    Spawn(#[from] std::io::Error),
    /// It exited unsuccessfully; its standard error.
    #[error("{0}")]
    Failed(String),
}

/// What volume preparation needs.
#[derive(Clone)]
pub struct Volumes {
    /// API client.
    pub client: Client,
    /// hostPath prefixes allowed.
    pub allow_host_paths: Vec<PathBuf>,
}

fn mode_of(item_mode: Option<i32>, default: Option<i32>) -> u32 {
    u32::try_from(item_mode.or(default).unwrap_or(0o644)).unwrap_or(0o644)
}

fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
) -> Result<Payload, VolumeError> {
    let mut out = Payload::new();
    match items {
        None => {
            for (k, v) in data {
                out.insert(k, (v, mode_of(None, default_mode)));
            }
        }
        Some(items) => {
            for i in items {
                let v = data.get(&i.key).ok_or_else(|| VolumeError::MissingKey(i.key.clone()))?;
                out.insert(i.path.clone(), (v.clone(), mode_of(i.mode, default_mode)));
            }
        }
    }
    Ok(out)
}

fn configmap_data(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut d: BTreeMap<String, Vec<u8>> =
        cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    d.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    d
}

fn secret_data(s: Secret) -> BTreeMap<String, Vec<u8>> {
    s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()
}

fn downward(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    node: &NodeValues,
) -> Payload {
    let render = |m: Option<&BTreeMap<String, String>>| {
        m.map(|m| m.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect::<String>()).unwrap_or_default()
    };
    items
        .iter()
        .map(|i| {
            let value = match i.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.labels") => render(pod.metadata.labels.as_ref()),
                Some("metadata.annotations") => render(pod.metadata.annotations.as_ref()),
                Some("metadata.name") => pod.metadata.name.clone().unwrap_or_default(),
                Some("metadata.namespace") => pod.metadata.namespace.clone().unwrap_or_default(),
                Some("metadata.uid") => pod.metadata.uid.clone().unwrap_or_default(),
                Some(other) => {
                    let key = other
                        .strip_prefix("metadata.labels['")
                        .or_else(|| other.strip_prefix("metadata.annotations['"));
                    let map = if other.contains("labels") {
                        pod.metadata.labels.as_ref()
                    } else {
                        pod.metadata.annotations.as_ref()
                    };
                    key.and_then(|k| k.strip_suffix("']"))
                        .and_then(|k| map.and_then(|m| m.get(k)))
                        .cloned()
                        .unwrap_or_default()
                }
                None => i
                    .resource_field_ref
                    .as_ref()
                    .map(|r| {
                        if r.resource.contains("cpu") {
                            node.cpu_cores.to_string()
                        } else {
                            node.memory_bytes.to_string()
                        }
                    })
                    .unwrap_or_default(),
            };
            (i.path.clone(), (value.into_bytes(), mode_of(i.mode, default_mode)))
        })
        .collect()
}

impl Volumes {
    async fn configmap(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
        match Api::<ConfigMap>::namespaced(self.client.clone(), ns).get_opt(name).await {
            Ok(Some(cm)) => Ok(configmap_data(cm)),
            Ok(None) if optional => Ok(BTreeMap::new()),
            Ok(None) => Err(VolumeError::NotFound { kind: "configmap", name: name.to_string() }),
            Err(source) => Err(VolumeError::Read { kind: "configmap", name: name.to_string(), source }),
        }
    }

    async fn secret(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<BTreeMap<String, Vec<u8>>, VolumeError> {
        match Api::<Secret>::namespaced(self.client.clone(), ns).get_opt(name).await {
            Ok(Some(s)) => Ok(secret_data(s)),
            Ok(None) if optional => Ok(BTreeMap::new()),
            Ok(None) => Err(VolumeError::NotFound { kind: "secret", name: name.to_string() }),
            Err(source) => Err(VolumeError::Read { kind: "secret", name: name.to_string(), source }),
        }
    }

    async fn token(
        &self,
        pod: &Pod,
        audience: Option<&str>,
        expiration: Option<i64>,
    ) -> Result<Vec<u8>, VolumeError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &ns);
        let req = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]),
                expiration_seconds: Some(expiration.unwrap_or(3607).max(600)),
                bound_object_ref: Some(k8s_openapi::api::authentication::v1::BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            }),
            ..Default::default()
        };
        let resp = api
            .create_token_request(&sa, &PostParams::default(), &req)
            .await
            .map_err(|source| VolumeError::TokenRequest { account: sa.clone(), source })?;
        resp.status.and_then(|s| s.token).map(String::into_bytes).ok_or(VolumeError::NoToken)
    }

    /// The files of a synced volume (configMap, secret, downwardAPI, projected), or None
    /// for other kinds.
    pub async fn payload(
        &self,
        pod: &Pod,
        v: &Volume,
        node: &NodeValues,
    ) -> Result<Option<Payload>, VolumeError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        if let Some(c) = &v.config_map {
            let data = self.configmap(&ns, &c.name, c.optional == Some(true)).await?;
            return select(data, c.items.as_ref(), c.default_mode).map(Some);
        }
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = self.secret(&ns, &name, s.optional == Some(true)).await?;
            return select(data, s.items.as_ref(), s.default_mode).map(Some);
        }
        if let Some(d) = &v.downward_api {
            return Ok(Some(downward(pod, d.items.as_deref().unwrap_or_default(), d.default_mode, node)));
        }
        if let Some(p) = &v.projected {
            let mut out = Payload::new();
            for src in p.sources.iter().flatten() {
                if let Some(c) = &src.config_map {
                    let data = self.configmap(&ns, &c.name, c.optional == Some(true)).await?;
                    out.extend(select(data, c.items.as_ref(), p.default_mode)?);
                }
                if let Some(s) = &src.secret {
                    let data = self.secret(&ns, &s.name, s.optional == Some(true)).await?;
                    out.extend(select(data, s.items.as_ref(), p.default_mode)?);
                }
                if let Some(d) = &src.downward_api {
                    out.extend(downward(pod, d.items.as_deref().unwrap_or_default(), p.default_mode, node));
                }
                if let Some(t) = &src.service_account_token {
                    let token = self.token(pod, t.audience.as_deref(), t.expiration_seconds).await?;
                    out.insert(t.path.clone(), (token, mode_of(None, p.default_mode)));
                }
            }
            return Ok(Some(out));
        }
        Ok(None)
    }

    /// Prepares every volume of `pod` under `pod_dir/volumes`.
    pub async fn prepare(
        &self,
        pod: &Pod,
        pod_dir: &Path,
        node: &NodeValues,
    ) -> Result<BTreeMap<String, Prepared>, VolumeError> {
        let mut out = BTreeMap::new();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        for v in pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default() {
            let dir = pod_dir.join("volumes").join(&v.name);
            let io = |source: std::io::Error| VolumeError::Io { volume: v.name.clone(), source };
            let prepared = if let Some(e) = &v.empty_dir {
                std::fs::create_dir_all(&dir).map_err(io)?;
                set_mode(&dir, 0o777).map_err(io)?;
                let memory = e.medium.as_deref() == Some("Memory");
                if memory && !is_mountpoint(&dir) {
                    let size = e.size_limit.as_ref().map(|q| q.0.clone()).unwrap_or_else(|| "50%".into());
                    let size = size.replace("Ki", "k").replace("Mi", "m").replace("Gi", "g");
                    run(
                        "mount",
                        &[
                            "-t",
                            "tmpfs",
                            "-o",
                            &format!("size={size},mode=1777"),
                            "tmpfs",
                            &dir.display().to_string(),
                        ],
                    )
                    .await
                    .map_err(|source| VolumeError::Tmpfs { volume: v.name.clone(), source })?;
                }
                Prepared { host_path: dir, synced: false, tmpfs: memory, read_only: false }
            } else if let Some(payload) = self.payload(pod, &v, node).await? {
                write_atomic(&dir, &payload).map_err(io)?;
                Prepared { host_path: dir, synced: true, tmpfs: false, read_only: true }
            } else if let Some(c) = &v.persistent_volume_claim {
                let path = self.claim_path(&ns, &c.claim_name).await?;
                Prepared {
                    host_path: path,
                    synced: false,
                    tmpfs: false,
                    read_only: c.read_only == Some(true),
                }
            } else if let Some(h) = &v.host_path {
                let path = PathBuf::from(&h.path);
                if !self.allow_host_paths.iter().any(|p| path.starts_with(p)) {
                    return Err(VolumeError::HostPathNotAllowed {
                        volume: v.name.clone(),
                        path: h.path.clone(),
                    });
                }
                if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
                    std::fs::create_dir_all(&path).map_err(io)?;
                }
                if !path.exists() {
                    return Err(VolumeError::HostPathMissing {
                        volume: v.name.clone(),
                        path: h.path.clone(),
                    });
                }
                Prepared { host_path: path, synced: false, tmpfs: false, read_only: false }
            } else {
                return Err(VolumeError::Unsupported(v.name.clone()));
            };
            out.insert(v.name.clone(), prepared);
        }
        Ok(out)
    }

    async fn claim_path(&self, ns: &str, claim: &str) -> Result<PathBuf, VolumeError> {
        let pvc = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns)
            .get_opt(claim)
            .await
            .map_err(|source| VolumeError::Read {
                kind: "persistentvolumeclaim",
                name: claim.to_string(),
                source,
            })?
            .ok_or_else(|| VolumeError::NotFound {
                kind: "persistentvolumeclaim",
                name: claim.to_string(),
            })?;
        let pv_name = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| VolumeError::Unbound(claim.to_string()))?;
        let pv = Api::<PersistentVolume>::all(self.client.clone()).get(&pv_name).await.map_err(|source| {
            VolumeError::Read { kind: "persistentvolume", name: pv_name.clone(), source }
        })?;
        let spec = pv.spec.unwrap_or_default();
        let path = spec
            .host_path
            .map(|h| h.path)
            .or(spec.local.map(|l| l.path))
            .ok_or_else(|| VolumeError::UnsupportedVolume(pv_name.clone()))?;
        std::fs::create_dir_all(&path).map_err(|source| VolumeError::VolumeDir { name: pv_name, source })?;
        Ok(PathBuf::from(path))
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn is_mountpoint(dir: &Path) -> bool {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(d.as_str())))
        .unwrap_or(false)
}

/// Runs a command, returning its stderr on failure.
pub async fn run(cmd: &str, args: &[&str]) -> Result<(), CommandError> {
    let out = tokio::process::Command::new(cmd).args(args).output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Unmounts a tmpfs the node mounted.
pub async fn unmount(dir: &Path) {
    if is_mountpoint(dir)
        && let Err(e) = run("umount", &["-l", &dir.display().to_string()]).await
    {
        tracing::warn!(dir = %dir.display(), error = %e, "unmounting a memory volume");
    }
}

/// Writes `payload` under `dir` the way the kubelet does: a fresh `..<stamp>` directory,
/// `..data` switched to it with one rename, top-level names as links through `..data`.
/// Does nothing when the content is unchanged.
pub fn write_atomic(dir: &Path, payload: &Payload) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        let cur = dir.join(current);
        let same =
            payload.iter().all(|(p, (content, _))| std::fs::read(cur.join(p)).ok().as_ref() == Some(content))
                && count_files(&cur) == payload.len();
        if same {
            return Ok(());
        }
    }
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%f"));
    let fresh = dir.join(&stamp);
    std::fs::create_dir_all(&fresh)?;
    for (path, (content, mode)) in payload {
        let rel = Path::new(path);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            continue;
        }
        let file = fresh.join(rel);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, content)?;
        set_mode(&file, *mode)?;
    }
    let old = std::fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let mut tops: Vec<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect();
    tops.dedup();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link)?;
        }
    }
    // Names no longer in the payload disappear.
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn atomic_writes_swap_content_and_drop_removed_keys() {
        let dir = std::env::temp_dir().join(format!("symnode-vol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut p = Payload::new();
        p.insert("a".into(), (b"1".to_vec(), 0o644));
        p.insert("sub/b".into(), (b"2".to_vec(), 0o600));
        write_atomic(&dir, &p).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join("sub/b")).unwrap(), b"2");
        p.remove("sub/b");
        p.insert("a".into(), (b"3".to_vec(), 0o644));
        write_atomic(&dir, &p).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"3");
        assert!(!dir.join("sub").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
