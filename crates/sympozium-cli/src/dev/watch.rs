//! While `dev up` waits for the stack, its processes are watched: the control plane's
//! components, the local node, and the containers of the system namespace's pods. The first
//! to exit (or, for a container, to keep crashing or to have no program) ends the wait at
//! once with that process's own last words and where its full log is, instead of a timeout
//! minutes later that names a symptom.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};

/// How often the processes are looked at.
const POLL: Duration = Duration::from_millis(500);
/// Restarts after which a crashing container is a failure rather than a slow start (a
/// controller started before NATS exits and is restarted a few times, which is fine).
const CRASH_RESTARTS: i32 = 4;
/// Lines of a log quoted in the error.
const TAIL_LINES: usize = 12;

/// One process of the stack.
pub struct Watched {
    /// What users call it (`the local node`, `kube-apiserver`).
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
    /// The handle when `dev up` started it (gives the exit status and reaps it).
    pub child: Option<Child>,
}

impl Watched {
    /// `None` while it runs; its exit status (when known) once it is gone.
    fn exited(&mut self) -> Option<String> {
        if let Some(child) = &mut self.child {
            return match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                Ok(None) => None,
                Err(_) => (!super::stack::alive(self.pid)).then(|| "exited".to_string()),
            };
        }
        (!super::stack::alive(self.pid)).then(|| "exited".to_string())
    }
}

/// The control plane's processes: the PIDs `testplane/up.sh` recorded, named by their
/// program, each with its log in the plane's run directory.
pub fn plane_processes(plane: &Path) -> Vec<Watched> {
    let run_dir = std::fs::read_to_string(plane.join("plane.env"))
        .ok()
        .and_then(|env| {
            env.lines()
                .find_map(|l| l.strip_prefix("RUN_DIR=").map(|v| v.trim_matches(['\'', '"']).to_string()))
        })
        .map(PathBuf::from)
        .unwrap_or_else(|| plane.to_path_buf());
    let pids = std::fs::read_to_string(plane.join("pids")).unwrap_or_default();
    pids.lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .map(|pid| {
            let name = program_name(pid).unwrap_or_else(|| format!("control plane process {pid}"));
            let log = run_dir.join(format!("{name}.log"));
            Watched { name, pid, log, child: None }
        })
        .collect()
}

/// The program a PID runs (`kube-apiserver`), from its command line.
fn program_name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let name = Path::new(std::str::from_utf8(argv0).ok()?).file_name()?.to_str()?.to_string();
    (!name.is_empty()).then_some(name)
}

/// A program's last words in its log: the final `Error: …` report of a Rust program (its
/// causes, not the backtrace that may follow), else the last `n` lines; or why the log
/// cannot be read.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if let Some(start) = lines.iter().rposition(|l| l.starts_with("Error: ")) {
                let report: Vec<&str> = lines[start..]
                    .iter()
                    .take_while(|l| !l.starts_with("Stack backtrace:"))
                    .take(n)
                    .copied()
                    .collect();
                return report.join("\n");
            }
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(log {} not readable: {e})", path.display()),
    }
}

/// Indents a block of text under an error line.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect::<String>().trim_end().to_string()
}

/// Resolves with an error as soon as a watched process exits or a pod of `ns` fails for
/// good; never resolves while everything runs.
pub async fn first_failure(mut processes: Vec<Watched>, client: Client, ns: String) -> anyhow::Error {
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    loop {
        for p in &mut processes {
            if let Some(status) = p.exited() {
                return anyhow::anyhow!(
                    "{} stopped ({status}) while the stack was starting; its log ({}) ends with:\n{}",
                    p.name,
                    p.log.display(),
                    indent(&tail(&p.log, TAIL_LINES))
                );
            }
        }
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in &list.items {
                if let Some(problem) = pod_failure(pod) {
                    let name = pod.name_any();
                    let logs = match &problem.container {
                        Some(c) => {
                            let params = LogParams {
                                container: Some(c.clone()),
                                previous: problem.restarted,
                                tail_lines: Some(TAIL_LINES as i64),
                                ..Default::default()
                            };
                            pods.logs(&name, &params).await.unwrap_or_default()
                        }
                        None => String::new(),
                    };
                    let container = problem.container.as_deref().unwrap_or("?");
                    let mut msg = format!("pod {ns}/{name}: container {container} {}", problem.what);
                    if !logs.trim().is_empty() {
                        msg.push_str(&format!("; its log ends with:\n{}", indent(&logs)));
                    }
                    msg.push_str(&format!(
                        "\n  full log: kubectl -n {ns} logs {name} -c {container} --previous"
                    ));
                    return anyhow::anyhow!(msg);
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why a pod cannot come up.
struct PodProblem {
    container: Option<String>,
    what: String,
    /// The log worth reading is the previous (crashed) instance's.
    restarted: bool,
}

/// A pod that will not come up by waiting: a container with no program to run (the image
/// maps to nothing built), or one that keeps crashing.
fn pod_failure(pod: &Pod) -> Option<PodProblem> {
    let status = pod.status.as_ref()?;
    let containers =
        status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for c in containers {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting.and_then(|w| w.reason.as_deref()).unwrap_or_default();
        let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        if matches!(reason, "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName") {
            return Some(PodProblem {
                container: Some(c.name.clone()),
                what: format!(
                    "cannot start ({reason}: {message}); is the workspace built (`cargo build --workspace --bins`)?"
                ),
                restarted: false,
            });
        }
        // Past restarts of a container that runs now are history, not a failure.
        if c.restart_count >= CRASH_RESTARTS && reason == "CrashLoopBackOff" {
            let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            let code = last.map(|t| t.exit_code).unwrap_or_default();
            let why = last.and_then(|t| t.message.clone().or_else(|| t.reason.clone())).unwrap_or_default();
            return Some(PodProblem {
                container: Some(c.name.clone()),
                what: format!(
                    "keeps crashing ({} restarts, last exit code {code}{})",
                    c.restart_count,
                    if why.is_empty() { String::new() } else { format!(": {why}") }
                ),
                restarted: true,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_crash_looping_or_unmapped_container_is_a_failure_a_restart_or_two_is_not() {
        let pod = |statuses: serde_json::Value| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "p"}, "status": {"containerStatuses": statuses}}),
            )
            .unwrap()
        };
        let restarting = |n: i32| {
            serde_json::json!([{"name": "manager", "image": "i", "imageID": "", "ready": false, "restartCount": n,
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "cannot connect to NATS"}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
        };
        assert!(pod_failure(&pod(restarting(2))).is_none());
        let p = pod_failure(&pod(restarting(4))).unwrap();
        assert_eq!(p.container.as_deref(), Some("manager"));
        assert!(p.what.contains("4 restarts, last exit code 1: cannot connect to NATS"), "{}", p.what);
        let mut recovered = restarting(6);
        recovered[0]["state"] = serde_json::json!({"running": {}});
        assert!(pod_failure(&pod(recovered)).is_none(), "crashed before, runs now");
        let unmapped = serde_json::json!([{"name": "model", "image": "x/cli:dev", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "image x/cli:dev is not mapped"}}}]);
        let p = pod_failure(&pod(unmapped)).unwrap();
        assert!(p.what.contains("ErrImagePull: image x/cli:dev is not mapped"), "{}", p.what);
    }

    #[test]
    fn the_tail_of_a_log_skips_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        std::fs::write(&log, "a\nb\n\nnode: bwrap (Debian package bubblewrap) is not installed\n\n").unwrap();
        assert_eq!(tail(&log, 2), "b\nnode: bwrap (Debian package bubblewrap) is not installed");
        assert!(tail(&dir.path().join("none"), 2).contains("not readable"));
        // A Rust program's error report, without the backtrace after it.
        std::fs::write(
            &log,
            "starting\nError: invalid --pod-cidr: x\n\nCaused by:\n    bad\n\nStack backtrace:\n   0: main\n",
        )
        .unwrap();
        assert_eq!(tail(&log, 12), "Error: invalid --pod-cidr: x\nCaused by:\n    bad");
    }
}
