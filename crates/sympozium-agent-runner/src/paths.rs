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
    pub fn resolve(&self, virtual_path: &str, access: Access) -> Result<PathBuf, String> {
        let allowed = self.allowed(access);
        let names: Vec<String> = allowed.iter().map(|(n, _)| format!("/{n}")).collect();
        let refuse = || {
            format!("access denied: {virtual_path} is outside the allowed directories ({})", names.join(", "))
        };
        if virtual_path.trim().is_empty() {
            return Err("path is required".to_string());
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
        Ok(real)
    }

    /// Refuses `real` when its deepest existing ancestor resolves outside `root`.
    fn check_symlinks(&self, root: &Path, real: &Path) -> Result<(), ()> {
        let root_canon = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut probe = real.to_path_buf();
        loop {
            if !probe.starts_with(root) {
                // Nothing under the root exists yet, so nothing can be a link out of it.
                return Ok(());
            }
            if let Ok(canon) = probe.canonicalize() {
                return if canon.starts_with(&root_canon) { Ok(()) } else { Err(()) };
            }
            if !probe.pop() {
                return Ok(());
            }
        }
    }
}
