//! The directories the runner works in and the path checks for the file tools.
//!
//! The model always sees the pod's paths (`/workspace/a.txt`). Each virtual root maps to a
//! real directory so tests (and unusual mounts) can relocate them. Checks work on path
//! components, never string prefixes: `/tmpX` is not under `/tmp`, `..` cannot climb out of a
//! root, and a symlink inside a root that points outside it is refused.

use std::path::{Component, Path, PathBuf};

/// Real locations of the pod directories.
#[derive(Debug, Clone)]
pub struct Roots {
    /// `/ipc`.
    pub ipc: PathBuf,
    /// `/workspace`.
    pub workspace: PathBuf,
    /// `/skills`.
    pub skills: PathBuf,
    /// `/memory`.
    pub memory: PathBuf,
    /// `/tmp`.
    pub tmp: PathBuf,
}

/// Which virtual roots an operation may touch.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// `/workspace`, `/skills`, `/tmp`, `/ipc`.
    Read,
    /// `/workspace`, `/tmp`.
    Write,
}

/// Why a path the model gave is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// No path at all.
    #[error("path is required")]
    Empty,
    /// Outside every allowed root (or through a link leading out of one).
    #[error("access denied: {path} is outside the allowed directories ({allowed})")]
    Outside {
        /// The path as given.
        path: String,
        /// The allowed roots, comma-separated.
        allowed: String,
    },
}

impl Roots {
    fn allowed(&self, access: Access) -> Vec<(&'static str, &Path)> {
        let mut list = vec![("workspace", self.workspace.as_path()), ("tmp", self.tmp.as_path())];
        if let Access::Read = access {
            list.push(("skills", self.skills.as_path()));
            list.push(("ipc", self.ipc.as_path()));
        }
        list
    }

    /// Resolves a path the model gave into a real path, or explains why it is refused.
    pub fn resolve(&self, virtual_path: &str, access: Access) -> Result<PathBuf, PathError> {
        let allowed = self.allowed(access);
        let names: Vec<String> = allowed.iter().map(|(n, _)| format!("/{n}")).collect();
        let refuse = || PathError::Outside { path: virtual_path.to_string(), allowed: names.join(", ") };
        if virtual_path.trim().is_empty() {
            return Err(PathError::Empty);
        }
        // Lexical normalisation: `..` pops a component and can never rise above `/`.
        let mut parts: Vec<String> = Vec::new();
        for component in Path::new(virtual_path).components() {
            match component {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        if !virtual_path.starts_with('/') {
            // Relative paths are relative to the workspace, as in a shell started there.
            parts.insert(0, "workspace".to_string());
        }
        let Some(first) = parts.first() else { return Err(refuse()) };
        let Some((_, root)) = allowed.iter().find(|(name, _)| name == first) else {
            return Err(refuse());
        };
        let mut real = root.to_path_buf();
        for part in &parts[1..] {
            real.push(part);
        }
        self.check_symlinks(root, &real).map_err(|_| refuse())?;
        // A link that stays inside is followed here, once, to the target just checked, so
        // the writes can refuse to follow links themselves.
        if std::fs::symlink_metadata(&real).is_ok_and(|m| m.file_type().is_symlink()) {
            return real.canonicalize().map_err(|_| refuse());
        }
        Ok(real)
    }

    /// Refuses `real` when any component of it below `root` that exists is a symbolic link
    /// that dangles, loops or resolves outside `root`. Dangling links matter most: a write
    /// through `/workspace/x -> /ipc/tools/exec-request-1.json` would create the target.
    fn check_symlinks(&self, root: &Path, real: &Path) -> Result<(), ()> {
        let root_canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let Ok(rest) = real.strip_prefix(root) else { return Ok(()) };
        let mut probe = root.to_path_buf();
        for part in rest.components() {
            probe.push(part);
            match std::fs::symlink_metadata(&probe) {
                // Nothing deeper exists, so nothing deeper can be a link (yet).
                Err(_) => return Ok(()),
                Ok(meta) if meta.file_type().is_symlink() => match probe.canonicalize() {
                    Ok(target) if target.starts_with(&root_canon) => {}
                    _ => return Err(()),
                },
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `real` (a path [`Roots::resolve`] accepted), refusing to follow a
/// symbolic link in its last component: one put there after the check still cannot
/// redirect the write.
pub fn write_no_follow(real: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(real)?;
    file.write_all(bytes)
}
