//! Resource limits with cgroups v2: one cgroup per container attempt with `memory.max`
//! (and no swap), `cpu.max` and `pids.max` from the container's `resources.limits`
//! (`pods` limit: the node's default of 4096 processes per container).
//!
//! The node needs a delegated cgroup v2 hierarchy: `/sys/fs/cgroup` mounted as cgroup2
//! with the `memory`, `cpu` and `pids` controllers, and write access to its own cgroup. It
//! moves itself into a leaf (`<own>/sympozium-node`) so its own cgroup may enable the
//! controllers for `<own>/sympozium-pods/<container>`. Where any of this is not possible (a
//! cgroup v1 or hybrid host, no delegation), limits are not enforced: the node says so
//! once in its log, in a Node condition (`ResourceLimitsEnforced=False`) and annotation,
//! and in an Event on each pod that asks for limits — containers still run.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

/// Processes a container may have when its pod sets no other bound (fork bombs stay inside).
pub const DEFAULT_PIDS: u64 = 4096;
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
const PERIOD_US: u64 = 100_000;

/// Where container cgroups go, or why there are none.
#[derive(Clone, Debug)]
pub enum Cgroups {
    /// Limits are enforced under this directory.
    Enforced(PathBuf),
    /// Not possible on this machine: why.
    Unavailable(String),
}

/// A container's limits, in cgroup units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `memory.max` in bytes.
    pub memory: Option<u64>,
    /// `cpu.max` quota in µs per 100 ms period.
    pub cpu_quota: Option<u64>,
    /// `pids.max`.
    pub pids: u64,
}

/// The limits `c` asks for.
pub fn limits_of(c: &Container) -> Limits {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let get = |k: &str| limits.and_then(|l| l.get(k)).map(crate::env::quantity_value);
    Limits {
        memory: get("memory").filter(|v| *v > 0.0).map(|v| v.ceil() as u64),
        // At least 1 ms per period: the kernel refuses less.
        cpu_quota: get("cpu").filter(|v| *v > 0.0).map(|v| ((v * PERIOD_US as f64).ceil() as u64).max(1000)),
        pids: DEFAULT_PIDS,
    }
}

/// Whether `c` asks for limits at all.
pub fn has_limits(c: &Container) -> bool {
    c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| !l.is_empty())
}

impl Cgroups {
    /// Sets up the node's part of the hierarchy under `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> Cgroups {
        match setup(root) {
            Ok(dir) => Cgroups::Enforced(dir),
            Err(reason) => Cgroups::Unavailable(reason.to_string()),
        }
    }

    /// Why limits are not enforced, if they are not.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            Cgroups::Enforced(_) => None,
            Cgroups::Unavailable(r) => Some(r),
        }
    }

    /// Creates the cgroup `name` with `limits`; None when limits are not enforced here.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<Option<PathBuf>, CgroupError> {
        let Cgroups::Enforced(dir) = self else { return Ok(None) };
        let cg = dir.join(name);
        let _ = std::fs::remove_dir(&cg);
        std::fs::create_dir_all(&cg).map_err(|source| CgroupError::Create { path: cg.clone(), source })?;
        write_limits(&cg, limits)?;
        Ok(Some(cg))
    }
}

/// Why a container's cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup directory could not be created.
    #[error("creating cgroup {}: {source}", path.display())]
    Create {
        /// The cgroup.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A limit file could not be written.
    #[error("writing {value:?} to {file}: {source}")]
    Write {
        /// The value.
        value: String,
        /// The limit file.
        file: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Why the node cannot enforce container limits (a warning, not a failure).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error(
        "{} is not a cgroup v2 hierarchy (cgroup v1 or hybrid host): container resource limits are not enforced",
        .0.display()
    )]
    NotV2(PathBuf),
    #[error(
        "cgroup v2 controllers {0} are not available to the node: container resource limits are not enforced"
    )]
    MissingControllers(String),
    #[error("the node's own cgroup v2 path is unknown")]
    UnknownOwnCgroup,
    #[error(
        "cgroup {what} ({source}): the node has no delegated cgroup; container resource limits are not enforced"
    )]
    Denied {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the limit files of an existing cgroup directory.
pub fn write_limits(cg: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let write = |file: &str, value: String| {
        std::fs::write(cg.join(file), &value).map_err(|source| CgroupError::Write {
            value,
            file: file.to_string(),
            source,
        })
    };
    if let Some(m) = limits.memory {
        write("memory.max", m.to_string())?;
        // Without this, a container over its limit swaps instead of being OOM-killed.
        if cg.join("memory.swap.max").exists() {
            write("memory.swap.max", "0".into())?;
        }
    }
    if let Some(q) = limits.cpu_quota {
        write("cpu.max", format!("{q} {PERIOD_US}"))?;
    }
    write("pids.max", limits.pids.to_string())
}

/// Whether the cgroup's processes were OOM-killed (memory.events `oom_kill`).
pub fn oom_killed(cg: &Path) -> bool {
    std::fs::read_to_string(cg.join("memory.events"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()))
        })
        .is_some_and(|n| n > 0)
}

/// Removes a container's cgroup once its processes are gone (best effort).
pub async fn remove(cg: &Path) {
    for _ in 0..20 {
        if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::debug!(cgroup = %cg.display(), "cgroup still busy; left in place");
}

/// Wraps a command so that it joins `cgroup` before it starts (the shell writes its own
/// pid, then execs the command, so every process the command forks is inside).
pub fn wrap(cgroup: Option<&Path>, program: String, args: Vec<String>) -> (String, Vec<String>) {
    let Some(cg) = cgroup else { return (program, args) };
    let mut out = vec![
        "-c".to_string(),
        r#"echo $$ > "$0/cgroup.procs" || exit 126; exec "$@""#.to_string(),
        cg.display().to_string(),
        program,
    ];
    out.extend(args);
    ("/bin/sh".to_string(), out)
}

fn setup(root: &Path) -> Result<PathBuf, SetupError> {
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|_| SetupError::NotV2(root.to_path_buf()))?;
    let missing: Vec<&str> =
        CONTROLLERS.iter().copied().filter(|c| !controllers.split_whitespace().any(|x| x == *c)).collect();
    if !missing.is_empty() {
        return Err(SetupError::MissingControllers(missing.join(", ")));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string())))
        .ok_or(SetupError::UnknownOwnCgroup)?;
    let own = root.join(own.trim_start_matches('/'));
    let denied = |what: &str, source: std::io::Error| SetupError::Denied { what: what.to_string(), source };
    if own != root {
        // A non-root cgroup with processes cannot enable controllers for its children.
        let leaf = own.join("sympozium-node");
        std::fs::create_dir_all(&leaf).map_err(|e| denied("creating the node's leaf", e))?;
        std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| denied("moving the node into its leaf", e))?;
    }
    let enable = "+memory +cpu +pids";
    std::fs::write(own.join("cgroup.subtree_control"), enable)
        .map_err(|e| denied("enabling controllers", e))?;
    let pods = own.join("sympozium-pods");
    std::fs::create_dir_all(&pods).map_err(|e| denied("creating sympozium-pods", e))?;
    std::fs::write(pods.join("cgroup.subtree_control"), enable)
        .map_err(|e| denied("enabling controllers for pods", e))?;
    Ok(pods)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn container(limits: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "c", "resources": {"limits": limits}})).unwrap()
    }

    #[test]
    fn limits_become_cgroup_values() {
        let l = limits_of(&container(serde_json::json!({"memory": "64Mi", "cpu": "250m"})));
        assert_eq!(l, Limits { memory: Some(64 << 20), cpu_quota: Some(25_000), pids: DEFAULT_PIDS });
        let l = limits_of(&container(serde_json::json!({"cpu": "2"})));
        assert_eq!(l.cpu_quota, Some(200_000));
        assert_eq!(l.memory, None);
        // The kernel's minimum quota.
        assert_eq!(limits_of(&container(serde_json::json!({"cpu": "1m"}))).cpu_quota, Some(1000));
    }

    #[test]
    fn limit_files_are_written_and_oom_kills_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.swap.max"), "max").unwrap();
        write_limits(dir.path(), &Limits { memory: Some(1 << 20), cpu_quota: Some(50_000), pids: 10 })
            .unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("memory.max"), "1048576");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "10");
        assert!(!oom_killed(dir.path()));
        std::fs::write(dir.path().join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
            .unwrap();
        assert!(oom_killed(dir.path()));
    }

    #[test]
    fn a_host_without_cgroup_v2_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroups::detect(dir.path());
        assert!(cg.unavailable().unwrap().contains("not a cgroup v2 hierarchy"), "{cg:?}");
        assert_eq!(cg.create("x", &Limits::default()).unwrap(), None);
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu hugetlb").unwrap();
        let cg = Cgroups::detect(dir.path());
        assert!(cg.unavailable().unwrap().contains("memory, pids"), "{cg:?}");
    }

    #[test]
    fn wrapped_commands_join_the_cgroup_first() {
        let (p, a) = wrap(Some(Path::new("/cg/x")), "nsenter".into(), vec!["-t".into()]);
        assert_eq!(p, "/bin/sh");
        assert_eq!(a[2..], ["/cg/x", "nsenter", "-t"]);
        let (p, a) = wrap(None, "nsenter".into(), vec!["-t".into()]);
        assert_eq!((p.as_str(), a.len()), ("nsenter", 1));
    }
}
