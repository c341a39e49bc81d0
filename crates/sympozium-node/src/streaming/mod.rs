//! The kubelet's streaming endpoints — `/exec`, `/attach` and `/portForward` — which the
//! API server relays `kubectl exec`, `kubectl attach` and `kubectl port-forward` to after
//! upgrading the connection to SPDY/3.1 (it translates kubectl's WebSockets to SPDY for
//! kubelets that do not declare WebSocket support, as this one does not).
//!
//! - `spdy.rs`: frames and header compression; `session.rs`: a server session over them;
//! - `exec.rs`: exec and attach (remote command protocols `v4.channel.k8s.io` … `channel.k8s.io`);
//! - `portforward.rs`: `portforward.k8s.io`; `websocket.rs`: port-forward over WebSocket
//!   (`v4.channel.k8s.io`) for clients whose WebSocket the API server passes through;
//! - `pty.rs`: terminals for `-t`.

pub mod exec;
pub mod portforward;
pub mod pty;
pub mod routes;
pub mod session;
pub mod spdy;
pub mod websocket;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

/// What exec and attach need to reach a running container.
#[derive(Debug)]
pub struct ExecTarget {
    /// Host pid of the container's sandbox (bwrap); the program is found under it.
    pub sandbox_pid: u32,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// User and group (None: root).
    pub user: Option<(i64, i64)>,
    /// Supplementary groups.
    pub groups: Vec<i64>,
    /// Capabilities a root container keeps.
    pub cap_add: Vec<String>,
    /// Keeps every capability.
    pub privileged: bool,
    /// The container's cgroup (v2), when limits are enforced.
    pub cgroup: Option<PathBuf>,
    /// The program's stdin (containers with `stdin: true`), for attach.
    pub stdin: Option<Arc<Mutex<Option<tokio::process::ChildStdin>>>>,
    /// Close the program's stdin after the first attach ends (`stdinOnce`).
    pub stdin_once: bool,
    /// The attempt's log file (attach follows it).
    pub log: PathBuf,
}

/// A running pod as the streaming endpoints see it.
#[derive(Clone, Debug)]
pub struct PodHandle {
    /// The pod's network namespace (None: host network).
    pub netns: Option<PathBuf>,
    /// Its containers' exec targets, by name (running ones only).
    pub containers: Arc<RwLock<HashMap<String, Arc<ExecTarget>>>>,
}

/// Running pods by namespace and name (kept by the pod workers).
pub type Registry = Arc<RwLock<HashMap<(String, String), PodHandle>>>;

/// The command line that runs `argv` inside a container's sandbox, as the container's
/// user with its capabilities: `nsenter` into the program's namespaces and root, then
/// `setpriv` (which the sandbox's `/usr` holds) to drop privileges.
pub fn enter_command(t: &ExecTarget, program_pid: u32, argv: &[String], tty: bool) -> (String, Vec<String>) {
    let mut args: Vec<String> = Vec::new();
    let mut push = |a: &[&str]| args.extend(a.iter().map(|s| s.to_string()));
    // A terminal must be the session's controlling terminal for job control and ^C.
    if tty {
        push(&["-w", "-c", "nsenter"]);
    }
    push(&["-t", &program_pid.to_string(), "-m", "-n", "-u", "-i", "-p", "-r", "-w", "--"]);
    push(&["/usr/bin/setpriv"]);
    if let Some((uid, gid)) = t.user {
        push(&[&format!("--reuid={uid}"), &format!("--regid={gid}")]);
        if t.groups.is_empty() {
            push(&["--clear-groups"]);
        } else {
            let groups: Vec<String> = t.groups.iter().map(i64::to_string).collect();
            push(&[&format!("--groups={}", groups.join(","))]);
        }
    }
    if !t.privileged {
        let mut bounding = String::from("-all");
        if t.user.is_none() {
            for c in &t.cap_add {
                let c = c.to_ascii_lowercase();
                bounding.push_str(&format!(",+{}", c.strip_prefix("cap_").unwrap_or(&c)));
            }
        }
        push(&["--inh-caps=-all", &format!("--bounding-set={bounding}"), "--no-new-privs"]);
    }
    push(&["--"]);
    args.extend(argv.iter().cloned());
    let program = if tty { "setsid" } else { "nsenter" };
    crate::cgroups::wrap(t.cgroup.as_deref(), program.to_string(), args)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn target() -> ExecTarget {
        ExecTarget {
            sandbox_pid: 1,
            env: Vec::new(),
            user: Some((1000, 2000)),
            groups: vec![3000],
            cap_add: Vec::new(),
            privileged: false,
            cgroup: None,
            stdin: None,
            stdin_once: false,
            log: PathBuf::new(),
        }
    }

    #[test]
    fn exec_enters_the_program_and_drops_to_the_container_user() {
        let (prog, args) = enter_command(&target(), 42, &["id".to_string()], false);
        assert_eq!(prog, "nsenter");
        assert_eq!(&args[..2], ["-t", "42"]);
        let setpriv = args.iter().position(|a| a == "/usr/bin/setpriv").unwrap();
        let rest = &args[setpriv..];
        assert!(rest.contains(&"--reuid=1000".to_string()));
        assert!(rest.contains(&"--regid=2000".to_string()));
        assert!(rest.contains(&"--groups=3000".to_string()));
        assert!(rest.contains(&"--bounding-set=-all".to_string()));
        assert!(rest.contains(&"--no-new-privs".to_string()));
        assert_eq!(args.last().unwrap(), "id");
    }

    #[test]
    fn a_root_container_keeps_only_the_capabilities_it_added_and_a_terminal_gets_a_session() {
        let t = ExecTarget { user: None, cap_add: vec!["NET_BIND_SERVICE".into()], ..target() };
        let (prog, args) = enter_command(&t, 7, &["sh".to_string()], true);
        assert_eq!(prog, "setsid");
        assert_eq!(&args[..3], ["-w", "-c", "nsenter"]);
        assert!(args.contains(&"--bounding-set=-all,+net_bind_service".to_string()));
        assert!(!args.iter().any(|a| a.starts_with("--reuid")));
        let privileged = ExecTarget { privileged: true, ..t };
        let (_, args) = enter_command(&privileged, 7, &["sh".to_string()], false);
        assert!(!args.iter().any(|a| a.starts_with("--bounding-set")));
    }
}
