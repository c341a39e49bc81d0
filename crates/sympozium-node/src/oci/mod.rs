//! Real OCI images on the local node: a container whose image has an archive or layout in
//! one of the node's image directories (`--oci-dir`, what `make images` writes) runs that
//! image's entrypoint from its own unpacked root filesystem, with the image's `Cmd`, `Env`,
//! `WorkingDir` and `User`, instead of a mapped host program.
//!
//! An image `<registry>/<path>/<name>:<tag>` is looked up by its last path segment:
//! `<dir>/<name>.tar` (an OCI image archive, i.e. an OCI layout in a tar) or
//! `<dir>/<name>/index.json` (an OCI layout directory). The directory holds one build per
//! name: the manifest whose `org.opencontainers.image.ref.name` carries the reference's tag
//! is taken when there is one, else the first. Registry and tag otherwise do not matter,
//! so the dev stack's `sympozium.local/dev/controller:dev` runs `target/images/controller.tar`.
//!
//! Unpacked images are cached under the state directory by manifest digest
//! (`<state>/oci/<hex>/rootfs` and the image config beside it); blobs are checked against
//! their digests before use. The archives themselves are trusted as much as the node's own
//! programs: they come from the machine's own build, not from a registry.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;
use sha2::Digest as _;

use crate::sandbox::{Rootfs, RootfsEntry};

mod run;

pub use run::{UserError, argv, env, user};

/// Errors finding or unpacking an image.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// `tar` failed on an archive or layer.
    #[error("unpacking {path} with tar failed: {stderr}")]
    Tar {
        /// The archive or layer.
        path: String,
        /// tar's error output.
        stderr: String,
    },
    /// The layout is not a valid OCI image layout.
    #[error("{path} is not a usable OCI image: {reason}")]
    Invalid {
        /// The archive or layout.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
    let what = what.into();
    move |source| OciError::Io { what, source }
}

/// An image's run-time defaults (the `config` object of the OCI image configuration).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RunConfig {
    /// Entrypoint.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` environment.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// Working directory.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a user name from the image's /etc/passwd.
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// An unpacked image, ready to run.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The root filesystem and its top-level entries.
    pub rootfs: Rootfs,
    /// Run-time defaults.
    pub config: RunConfig,
}

/// Where images come from and where they are unpacked.
#[derive(Debug, Default)]
pub struct Store {
    dirs: Vec<PathBuf>,
    cache: PathBuf,
    /// Source (path, size, mtime) → manifest digest, so an archive is opened once.
    seen: Mutex<HashMap<(PathBuf, u64, SystemTime), String>>,
    /// One unpack at a time: two pods starting the same image share the work.
    unpacking: tokio::sync::Mutex<()>,
}

/// Where an image's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Archive(PathBuf),
    Layout(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Archive(p) | Source::Layout(p) => p,
        }
    }
}

impl Store {
    /// A store reading `dirs` (in order) and unpacking under `cache`.
    pub fn new(dirs: Vec<PathBuf>, cache: PathBuf) -> Self {
        Self { dirs, cache, ..Default::default() }
    }

    /// Whether any image directory is configured.
    pub fn enabled(&self) -> bool {
        !self.dirs.is_empty()
    }

    fn find(&self, image: &str) -> Option<Source> {
        let repo = crate::images::repository(image);
        let name = repo.rsplit('/').next().unwrap_or(repo);
        if name.is_empty() || name.starts_with('.') {
            return None;
        }
        self.dirs.iter().find_map(|dir| {
            let archive = dir.join(format!("{name}.tar"));
            let layout = dir.join(name);
            if archive.is_file() {
                Some(Source::Archive(archive))
            } else if layout.join("index.json").is_file() {
                Some(Source::Layout(layout))
            } else {
                None
            }
        })
    }

    /// The unpacked image for `image`; None when no image directory has it (the program
    /// mapping then decides).
    pub async fn resolve(self: &Arc<Self>, image: &str) -> Option<Result<Arc<Image>, OciError>> {
        let source = self.find(image)?;
        let tag = tag(image).map(str::to_string);
        let store = self.clone();
        let _one = self.unpacking.lock().await;
        let result = tokio::task::spawn_blocking(move || store.load(&source, tag.as_deref()))
            .await
            .unwrap_or_else(|e| Err(OciError::Invalid { path: image.into(), reason: e.to_string() }));
        Some(result.map(Arc::new))
    }

    fn load(&self, source: &Source, tag: Option<&str>) -> Result<Image, OciError> {
        let meta =
            std::fs::metadata(source.path()).map_err(io(format!("reading {}", source.path().display())))?;
        let key =
            (source.path().to_path_buf(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let known = self.seen.lock().ok().and_then(|s| s.get(&key).cloned());
        if let Some(digest) = known
            && let Ok(image) = self.cached(&digest)
        {
            return Ok(image);
        }
        std::fs::create_dir_all(&self.cache).map_err(io(format!("creating {}", self.cache.display())))?;
        let work = tempdir_in(&self.cache)?;
        let result = self.unpack(source, tag, &work);
        let _ = std::fs::remove_dir_all(&work);
        let image = result?;
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key, image.digest.clone());
        }
        Ok(image)
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.cache.join(digest.replace(':', "-"))
    }

    fn cached(&self, digest: &str) -> Result<Image, OciError> {
        let dir = self.entry(digest);
        let config_path = dir.join("config.json");
        let text = std::fs::read(&config_path).map_err(io(format!("reading {}", config_path.display())))?;
        let config: RunConfig = serde_json::from_slice(&text).map_err(|e| OciError::Invalid {
            path: config_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let rootfs = rootfs_of(&dir.join("rootfs"))?;
        Ok(Image { digest: digest.to_string(), rootfs, config })
    }

    fn unpack(&self, source: &Source, tag: Option<&str>, work: &Path) -> Result<Image, OciError> {
        let layout = match source {
            Source::Layout(dir) => dir.clone(),
            Source::Archive(archive) => {
                let dir = work.join("layout");
                std::fs::create_dir(&dir).map_err(io("creating the layout directory"))?;
                tar(archive, &dir, &[])?;
                dir
            }
        };
        let shown = source.path().display().to_string();
        let invalid = |reason: String| OciError::Invalid { path: shown.clone(), reason };
        let index: Index = serde_json::from_slice(&read(&layout.join("index.json"))?)
            .map_err(|e| invalid(format!("index.json: {e}")))?;
        let chosen = choose(&index.manifests, tag)
            .ok_or_else(|| invalid("index.json lists no image manifest".into()))?;
        let digest = chosen.digest.clone();
        if let Ok(image) = self.cached(&digest) {
            return Ok(image);
        }
        let manifest: Manifest = serde_json::from_slice(&blob(&layout, &digest)?)
            .map_err(|e| invalid(format!("manifest {digest}: {e}")))?;
        let config: ImageConfig = serde_json::from_slice(&blob(&layout, &manifest.config.digest)?)
            .map_err(|e| invalid(format!("config {}: {e}", manifest.config.digest)))?;
        let config = config.config.unwrap_or_default();
        let staged = work.join("image");
        let rootfs = staged.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io("creating the rootfs directory"))?;
        for layer in &manifest.layers {
            if !layer.media_type.is_empty() && !layer.media_type.contains(".layer.") {
                return Err(invalid(format!("layer {} has media type {}", layer.digest, layer.media_type)));
            }
            let path = blob_path(&layout, &layer.digest)?;
            verify(&path, &layer.digest)?;
            apply_layer(&path, &rootfs)?;
        }
        mount_points(&rootfs)?;
        let json = serde_json::json!({
            "Entrypoint": config.entrypoint, "Cmd": config.cmd, "Env": config.env,
            "WorkingDir": config.working_dir, "User": config.user,
        });
        std::fs::write(staged.join("config.json"), json.to_string()).map_err(io("writing config.json"))?;
        let target = self.entry(&digest);
        // Another node process (or an earlier run) may have put it there first: theirs stays.
        if std::fs::rename(&staged, &target).is_err() && !target.join("config.json").is_file() {
            return Err(invalid(format!("could not move the unpacked image to {}", target.display())));
        }
        self.cached(&digest)
    }
}

/// The tag of an image reference, if any.
fn tag(image: &str) -> Option<&str> {
    let repo = crate::images::repository(image);
    let without_digest = image.split('@').next().unwrap_or(image);
    without_digest.strip_prefix(repo)?.strip_prefix(':')
}

fn choose<'a>(manifests: &'a [Descriptor], tag: Option<&str>) -> Option<&'a Descriptor> {
    let images: Vec<&Descriptor> =
        manifests.iter().filter(|m| m.media_type.is_empty() || m.media_type.contains("manifest")).collect();
    let by_tag = tag.and_then(|t| {
        images.iter().copied().find(|m| {
            m.annotations
                .get("org.opencontainers.image.ref.name")
                .is_some_and(|r| r == t || r.rsplit_once(':').is_some_and(|(_, rt)| rt == t))
        })
    });
    by_tag.or_else(|| images.first().copied())
}

fn read(path: &Path) -> Result<Vec<u8>, OciError> {
    std::fs::read(path).map_err(io(format!("reading {}", path.display())))
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, OciError> {
    let invalid =
        |reason: &str| OciError::Invalid { path: layout.display().to_string(), reason: reason.into() };
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| invalid("only sha256 digests are supported"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("malformed digest"));
    }
    Ok(layout.join("blobs/sha256").join(hex))
}

fn blob(layout: &Path, digest: &str) -> Result<Vec<u8>, OciError> {
    let path = blob_path(layout, digest)?;
    let data = read(&path)?;
    let actual = format!("sha256:{:x}", sha2::Sha256::digest(&data));
    if actual != digest {
        return Err(OciError::Invalid {
            path: path.display().to_string(),
            reason: format!("content digest is {actual}, expected {digest}"),
        });
    }
    Ok(data)
}

fn verify(path: &Path, digest: &str) -> Result<(), OciError> {
    let mut file = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = format!("sha256:{:x}", hasher.finalize());
    if actual != digest {
        return Err(OciError::Invalid {
            path: path.display().to_string(),
            reason: format!("content digest is {actual}, expected {digest}"),
        });
    }
    Ok(())
}

/// Extracts `archive` into `dir` with owners and modes as stored (the node runs as root).
fn tar(archive: &Path, dir: &Path, extra: &[&str]) -> Result<(), OciError> {
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "--no-same-owner"])
        .args(extra)
        .output()
        .map_err(io("running tar"))?;
    if !out.status.success() {
        return Err(OciError::Tar {
            path: archive.display().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Applies one layer: its whiteouts remove what lower layers put there, then its files land.
fn apply_layer(layer: &Path, rootfs: &Path) -> Result<(), OciError> {
    let listed = Command::new("tar").arg("-tf").arg(layer).output().map_err(io("running tar"))?;
    if !listed.status.success() {
        return Err(OciError::Tar {
            path: layer.display().to_string(),
            stderr: String::from_utf8_lossy(&listed.stderr).trim().to_string(),
        });
    }
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut whiteouts = Vec::new();
    for name in names.lines() {
        let rel = name.trim_start_matches("./").trim_start_matches('/');
        let path = Path::new(rel);
        if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(OciError::Invalid {
                path: layer.display().to_string(),
                reason: format!("entry {name:?} leaves the root"),
            });
        }
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else { continue };
        let Some(hidden) = file.strip_prefix(".wh.") else { continue };
        let parent = rootfs.join(path.parent().unwrap_or(Path::new("")));
        if hidden == ".wh..opq" {
            // Opaque directory: nothing of the lower layers shows through.
            for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                remove(&e.path());
            }
        } else {
            remove(&parent.join(hidden));
        }
        whiteouts.push(rootfs.join(rel));
    }
    // The node is root: owners as stored in the layer (the image's user owns its home).
    tar(layer, rootfs, &["--same-owner", "--same-permissions"])?;
    for w in whiteouts {
        remove(&w);
    }
    Ok(())
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// What the sandbox mounts over the image (bwrap cannot create mount points in a
/// read-only bind): /proc, /dev, /tmp and the pod's /etc files.
fn mount_points(rootfs: &Path) -> Result<(), OciError> {
    for dir in ["proc", "dev", "tmp", "etc"] {
        let p = rootfs.join(dir);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir(&p).map_err(io(format!("creating {}", p.display())))?;
        }
    }
    for file in ["etc/resolv.conf", "etc/hosts", "etc/hostname"] {
        let p = rootfs.join(file);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::write(&p, b"").map_err(io(format!("creating {}", p.display())))?;
        }
    }
    Ok(())
}

/// The top-level entries of an unpacked root.
fn rootfs_of(dir: &Path) -> Result<Rootfs, OciError> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let e = e.map_err(io(format!("reading {}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e.metadata().map_err(io(format!("reading {}", e.path().display())))?;
        let link = if meta.file_type().is_symlink() {
            Some(std::fs::read_link(e.path()).map_err(io(format!("reading {}", e.path().display())))?)
        } else {
            None
        };
        entries.push(RootfsEntry { name, symlink: link.map(|l| l.display().to_string()) });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Rootfs { dir: dir.to_path_buf(), entries })
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, OciError> {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = parent.join(format!(".unpack-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Creates the mount point `dest` inside the image's root when its top-level directory is
/// the image's (read-only in the sandbox, so bwrap cannot create it there). A path through
/// a symlink of the image is left alone: it could point outside the root.
pub fn ensure_mount_point(rootfs: &Path, dest: &str, is_dir: bool) {
    let rel = dest.trim_start_matches('/');
    let mut parts = rel.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..");
    let Some(top) = parts.next() else { return };
    let mut path = rootfs.join(top);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let rest: Vec<&str> = parts.collect();
    for (i, part) in rest.iter().enumerate() {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return,
            Ok(_) => continue,
            Err(_) if i + 1 == rest.len() && !is_dir => {
                let _ = std::fs::write(&path, b"");
            }
            Err(_) => {
                if std::fs::create_dir(&path).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn references_pick_the_tagged_manifest_or_the_first() {
        assert_eq!(tag("reg.local/x/controller:dev"), Some("dev"));
        assert_eq!(tag("localhost:5000/controller"), None);
        let m = |d: &str, r: &str| Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: d.into(),
            annotations: [("org.opencontainers.image.ref.name".to_string(), r.to_string())].into(),
        };
        let list = [m("sha256:a", "controller:0.1.0"), m("sha256:b", "controller:dev")];
        assert_eq!(choose(&list, Some("dev")).unwrap().digest, "sha256:b");
        assert_eq!(choose(&list, Some("other")).unwrap().digest, "sha256:a");
    }

    /// Writes `blob` into the layout and returns its descriptor digest.
    fn put_blob(layout: &Path, blob: &[u8]) -> String {
        let hex = format!("{:x}", sha2::Sha256::digest(blob));
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::write(layout.join("blobs/sha256").join(&hex), blob).unwrap();
        format!("sha256:{hex}")
    }

    /// A tar layer of the files under `dir`.
    fn layer(dir: &Path) -> Vec<u8> {
        let out = Command::new("tar").arg("-cf").arg("-").arg("-C").arg(dir).arg(".").output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn layouts_unpack_with_whiteouts_verified_digests_and_a_cache_by_manifest_digest() {
        let base = tempfile_dir();
        let (l1, l2, layout) = (base.join("l1"), base.join("l2"), base.join("images/app"));
        std::fs::create_dir_all(l1.join("usr/local/bin")).unwrap();
        std::fs::create_dir_all(l1.join("old")).unwrap();
        std::fs::write(l1.join("usr/local/bin/app"), b"v1").unwrap();
        std::fs::write(l1.join("old/stale"), b"x").unwrap();
        std::fs::create_dir_all(l2.join("usr/local/bin")).unwrap();
        std::fs::write(l2.join("usr/local/bin/app"), b"v2").unwrap();
        std::fs::write(l2.join(".wh.old"), b"").unwrap();
        let d1 = put_blob(&layout, &layer(&l1));
        let d2 = put_blob(&layout, &layer(&l2));
        let config = put_blob(
            &layout,
            br#"{"config": {"Entrypoint": ["/usr/local/bin/app"], "User": "1000:1000", "WorkingDir": "/"}}"#,
        );
        let tar_type = "application/vnd.oci.image.layer.v1.tar";
        let manifest = serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config},
            "layers": [{"mediaType": tar_type, "digest": d1}, {"mediaType": tar_type, "digest": d2}]});
        let md = put_blob(&layout, manifest.to_string().as_bytes());
        std::fs::write(
            layout.join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
                "annotations": {"org.opencontainers.image.ref.name": "app:1"}}]})
            .to_string(),
        )
        .unwrap();

        let store = Store::new(vec![base.join("images")], base.join("cache"));
        assert!(store.find("reg.local/x/unknown:1").is_none());
        let source = store.find("reg.local/x/app:1").unwrap();
        let image = store.load(&source, Some("1")).unwrap();
        assert_eq!(image.digest, md);
        let root = &image.rootfs.dir;
        assert_eq!(std::fs::read(root.join("usr/local/bin/app")).unwrap(), b"v2", "later layers win");
        assert!(!root.join("old").exists(), "the whiteout removed the lower layer's directory");
        assert!(!root.join(".wh.old").exists());
        assert!(root.join("etc/resolv.conf").is_file() && root.join("proc").is_dir(), "mount points made");
        assert_eq!(image.config.entrypoint.as_deref(), Some(&["/usr/local/bin/app".to_string()][..]));
        assert!(root.starts_with(base.join("cache").join(md.replace(':', "-"))));
        let names: Vec<&str> = image.rootfs.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev", "etc", "proc", "tmp", "usr"]);

        // A blob that does not match its digest is refused, naming the digests.
        std::fs::remove_dir_all(base.join("cache")).unwrap();
        let hex = d2.strip_prefix("sha256:").unwrap();
        std::fs::write(layout.join("blobs/sha256").join(hex), b"tampered").unwrap();
        let fresh = Store::new(vec![base.join("images")], base.join("cache"));
        let err = fresh.load(&source, Some("1")).unwrap_err().to_string();
        assert!(err.contains("content digest is") && err.contains(&d2), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A fresh directory for one test thread.
    pub(crate) fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "oci-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
