//! The command line that runs one container: `nsenter --net=<pod netns>` (the pod's
//! network namespace) then `bwrap` (its own mount, UTS, IPC and PID namespaces) with a root
//! made of the host's `/usr` and `/etc` read-only, the program, the pod's volumes at their
//! `mountPath`s, the pod's own `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`, and
//! the security context applied (capabilities by bwrap, user and groups by `setpriv`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};

/// One bind mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: PathBuf,
    /// Path in the sandbox.
    pub dest: String,
    /// Read-only.
    pub read_only: bool,
}

/// Everything needed to start one container.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// The pod network namespace (`/run/netns/...`), if any.
    pub netns: Option<PathBuf>,
    /// Host programs, bound under [`PROGRAMS`] (and renamed so in `argv`).
    pub programs: Vec<PathBuf>,
    /// A directory of applet links bound at `/bin` (multi-call images).
    pub applets: Option<PathBuf>,
    /// Volume mounts.
    pub binds: Vec<Bind>,
    /// The pod's `/etc` files (resolv.conf, hosts, hostname).
    pub etc_dir: Option<PathBuf>,
    /// Hostname.
    pub hostname: String,
    /// Working directory.
    pub workdir: Option<String>,
    /// Read-only root filesystem.
    pub read_only_root: bool,
    /// User and group to run as (None: root).
    pub user: Option<(i64, i64)>,
    /// Supplementary groups (fsGroup, supplementalGroups).
    pub groups: Vec<i64>,
    /// Capabilities to keep when running as root (`ALL` dropped first).
    pub cap_add: Vec<String>,
    /// Keep every capability (privileged or no drop requested).
    pub privileged: bool,
    /// The container command, after image mapping and `$(VAR)` expansion.
    pub argv: Vec<String>,
    /// The image's own root filesystem (real OCI images): it replaces the host's `/usr`
    /// and `/etc`, read-only.
    pub rootfs: Option<Rootfs>,
    /// The host's setpriv with its loader and libraries, for switching user inside an
    /// image root that has no setpriv of its own.
    pub setpriv: Option<Setpriv>,
}

/// An unpacked image root and its top-level entries (each bound read-only at `/<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rootfs {
    /// The directory on the host.
    pub dir: PathBuf,
    /// Its top-level entries, sorted by name.
    pub entries: Vec<RootfsEntry>,
}

/// One top-level entry of an image root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootfsEntry {
    /// File name.
    pub name: String,
    /// The link target when the entry is a symlink (`lib -> usr/lib`).
    pub symlink: Option<String>,
}

/// The host's `setpriv`, its dynamic loader and the libraries it loads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Setpriv {
    /// The program.
    pub program: PathBuf,
    /// The ELF interpreter (ld-linux).
    pub loader: PathBuf,
    /// Shared libraries.
    pub libs: Vec<PathBuf>,
}

impl Setpriv {
    /// Finds setpriv and what it loads with `ldd` (None when either is missing).
    pub fn discover() -> Option<Self> {
        let program = PathBuf::from("/usr/bin/setpriv");
        let out = std::process::Command::new("ldd").arg(&program).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let mut loader = None;
        let mut libs = Vec::new();
        // `name => /path (addr)` for libraries, `/path (addr)` for the loader.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(_), Some("=>"), Some(path)) if path.starts_with('/') => libs.push(PathBuf::from(path)),
                (Some(path), _, _) if path.starts_with('/') => loader = Some(PathBuf::from(path)),
                _ => {}
            }
        }
        Some(Self { program, loader: loader?, libs })
    }
}

/// Where the host's setpriv goes in an image root.
pub const SETPRIV: &str = "/.sympozium/setpriv";

/// What of the security context this node cannot honour (reported, not ignored).
pub fn unsupported(c: &Container, pod: Option<&PodSecurityContext>) -> Vec<String> {
    let mut out = Vec::new();
    let sc = c.security_context.as_ref();
    let seccomp =
        sc.and_then(|s| s.seccomp_profile.as_ref()).or(pod.and_then(|p| p.seccomp_profile.as_ref()));
    if let Some(p) = seccomp.filter(|p| p.type_ != "Unconfined") {
        out.push(format!("seccomp profile {} is not applied (bwrap runs without a seccomp filter)", p.type_));
    }
    if sc.and_then(|s| s.se_linux_options.as_ref()).is_some()
        || pod.and_then(|p| p.se_linux_options.as_ref()).is_some()
    {
        out.push("seLinuxOptions are not applied".into());
    }
    if sc.and_then(|s| s.app_armor_profile.as_ref()).is_some() {
        out.push("appArmorProfile is not applied".into());
    }
    out
}

/// The user a container runs as: container securityContext over pod; `runAsNonRoot`
/// without a user runs as nobody (65534), since local programs have no image user.
pub fn user(c: Option<&SecurityContext>, pod: Option<&PodSecurityContext>) -> Option<(i64, i64)> {
    let uid = c.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user));
    let gid = c.and_then(|s| s.run_as_group).or(pod.and_then(|p| p.run_as_group));
    let non_root = c.and_then(|s| s.run_as_non_root).or(pod.and_then(|p| p.run_as_non_root)) == Some(true);
    match (uid, non_root) {
        (Some(0), _) => None,
        (Some(u), _) => Some((u, gid.unwrap_or(u))),
        (None, true) => Some((65534, gid.unwrap_or(65534))),
        (None, false) => gid.filter(|g| *g != 0).map(|g| (0, g)),
    }
}

/// Directories the sandbox creates itself, and bind destinations so far (whose insides
/// belong to what is bound there).
struct Parents {
    made: std::collections::BTreeSet<String>,
    bound: Vec<String>,
}

impl Default for Parents {
    fn default() -> Self {
        let bound = ["/usr", "/etc", "/proc", "/dev", "/bin", "/lib", "/lib64", "/sbin"];
        Self { made: Default::default(), bound: bound.iter().map(|s| s.to_string()).collect() }
    }
}

impl Parents {
    /// `--perms 0755 --dir` for each missing ancestor of `dest`, outermost first.
    fn missing(&mut self, dest: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut ancestor = String::new();
        let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            ancestor.push('/');
            ancestor.push_str(part);
            let inside_bind =
                self.bound.iter().any(|b| ancestor == *b || ancestor.starts_with(&format!("{b}/")));
            if inside_bind || !self.made.insert(ancestor.clone()) {
                continue;
            }
            out.extend(["--perms".to_string(), "0755".to_string(), "--dir".to_string(), ancestor.clone()]);
        }
        out
    }
}

/// The host's bubblewrap and nsenter, by absolute path: they are started with the
/// container's environment, whose `PATH` (an image's `/usr/local/bin`) need not hold them.
pub const BWRAP: &str = "/usr/bin/bwrap";
/// See [`BWRAP`].
pub const NSENTER: &str = "/usr/bin/nsenter";

/// Where a container's programs are bound inside its sandbox.
pub const PROGRAMS: &str = "/.sympozium/programs";

/// The program and arguments to spawn.
pub fn command(spec: &Spec) -> (String, Vec<String>) {
    let mut args: Vec<String> = Vec::new();
    let mut push = |a: &[&str]| args.extend(a.iter().map(|s| s.to_string()));
    if let Some(ns) = &spec.netns {
        push(&[&format!("--net={}", ns.display()), "--", BWRAP]);
    }
    // A PID namespace per container, as a container runtime gives without
    // `shareProcessNamespace`: the container's /proc shows its own processes only, so no
    // program can reach another container's files or environment through /proc/<pid>.
    push(&[
        "--die-with-parent",
        "--unshare-uts",
        "--unshare-ipc",
        "--unshare-pid",
        "--hostname",
        &spec.hostname,
    ]);
    let mut parents = Parents::default();
    if let Some(root) = &spec.rootfs {
        // The image's own files, each top-level entry read-only; the root itself stays
        // bwrap's tmpfs so mount points outside the image's directories can be made.
        parents.bound.clear();
        for e in &root.entries {
            let dest = format!("/{}", e.name);
            match &e.symlink {
                Some(target) => push(&["--symlink", target, &dest]),
                None if e.name == "proc" || e.name == "dev" => continue,
                None => push(&["--ro-bind", &root.dir.join(&e.name).display().to_string(), &dest]),
            }
            parents.bound.push(dest);
        }
        parents.bound.extend(["/proc".to_string(), "/dev".to_string()]);
        push(&["--proc", "/proc", "--dev", "/dev"]);
    } else {
        push(&[
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/sbin",
            "/sbin",
        ]);
        if Path::new("/lib64").exists() {
            push(&["--symlink", "usr/lib64", "/lib64"]);
        }
        match &spec.applets {
            Some(dir) => push(&["--ro-bind", &dir.display().to_string(), "/bin"]),
            None => push(&["--symlink", "usr/bin", "/bin"]),
        }
        push(&["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]);
    }
    if let Some(etc) = &spec.etc_dir {
        for f in ["resolv.conf", "hosts", "hostname"] {
            push(&["--ro-bind", &etc.join(f).display().to_string(), &format!("/etc/{f}")]);
        }
    }
    let tmp_volume = spec.binds.iter().any(|b| b.dest.trim_end_matches('/') == "/tmp");
    if !spec.read_only_root && !tmp_volume {
        push(&["--tmpfs", "/tmp"]);
    }
    // bwrap creates a bind's missing parents mode 0700, which a container running as a
    // non-root user cannot traverse: create them world-traversable first.
    if !spec.read_only_root && !tmp_volume {
        parents.bound.push("/tmp".into());
    }
    // Programs go to a path of their own: at their host path they could sit under a mount
    // of the pod (a checkout in /tmp, with an emptyDir on /tmp) and vanish.
    let mut renamed: Vec<(String, String)> = Vec::new();
    for (i, p) in spec.programs.iter().enumerate() {
        let host = p.display().to_string();
        let name =
            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program".into());
        let inside = format!("{PROGRAMS}/{i}/{name}");
        let dirs = parents.missing(&inside);
        push(&dirs.iter().map(String::as_str).collect::<Vec<_>>());
        push(&["--ro-bind", &host, &inside]);
        parents.bound.push(inside.clone());
        renamed.push((host, inside));
    }
    for b in &spec.binds {
        let flag = if b.read_only { "--ro-bind" } else { "--bind" };
        let dirs = parents.missing(&b.dest);
        push(&dirs.iter().map(String::as_str).collect::<Vec<_>>());
        push(&[flag, &b.source.display().to_string(), &b.dest]);
        parents.bound.push(b.dest.trim_end_matches('/').to_string());
    }
    // An image root has no setpriv: the host's, with the loader and libraries it needs,
    // run through that loader (the program it then executes uses the image's own).
    let setpriv = match (&spec.rootfs, &spec.setpriv, spec.user) {
        (Some(_), Some(sp), Some(_)) => {
            let dirs = parents.missing(&format!("{SETPRIV}/x"));
            push(&dirs.iter().map(String::as_str).collect::<Vec<_>>());
            let inside = |p: &Path| {
                format!("{SETPRIV}/{}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
            };
            for f in std::iter::once(&sp.program).chain(std::iter::once(&sp.loader)).chain(sp.libs.iter()) {
                push(&["--ro-bind", &f.display().to_string(), &inside(f)]);
            }
            vec![inside(&sp.loader), "--library-path".into(), SETPRIV.into(), inside(&sp.program)]
        }
        _ => vec!["/usr/bin/setpriv".to_string()],
    };
    // The service-account directory's parents must exist on a read-only root too: bwrap
    // creates them before the remount.
    push(&["--chdir", spec.workdir.as_deref().unwrap_or("/")]);
    if spec.read_only_root {
        push(&["--remount-ro", "/"]);
    }
    if !spec.privileged {
        push(&["--cap-drop", "ALL"]);
        match spec.user {
            // setpriv needs these to switch user; it drops every capability after.
            Some(_) => {
                push(&["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"])
            }
            None => {
                for c in &spec.cap_add {
                    let c = c.to_ascii_uppercase();
                    let c = if c.starts_with("CAP_") { c } else { format!("CAP_{c}") };
                    push(&["--cap-add", &c]);
                }
            }
        }
    }
    push(&["--"]);
    if let Some((uid, gid)) = spec.user {
        push(&setpriv.iter().map(String::as_str).collect::<Vec<_>>());
        push(&[&format!("--reuid={uid}"), &format!("--regid={gid}")]);
        if spec.groups.is_empty() {
            push(&["--clear-groups"]);
        } else {
            let groups: Vec<String> = spec.groups.iter().map(i64::to_string).collect();
            push(&[&format!("--groups={}", groups.join(","))]);
        }
        push(&["--inh-caps=-all", "--"]);
    }
    args.extend(spec.argv.iter().map(|a| {
        renamed
            .iter()
            .find(|(host, _)| host == a)
            .map(|(_, inside)| inside.clone())
            .unwrap_or_else(|| a.clone())
    }));
    let program = if spec.netns.is_some() { NSENTER } else { BWRAP };
    (program.to_string(), args)
}

/// The program bwrap started, found through procfs; None until bwrap has forked it.
/// bwrap forks the PID namespace's init (itself a `bwrap`), which forks the program.
pub fn program_pid(sandbox: u32) -> Option<u32> {
    let mut pid = first_child(sandbox)?;
    for _ in 0..2 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim() != "bwrap" {
            return Some(pid);
        }
        pid = first_child(pid)?;
    }
    Some(pid)
}

fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Capabilities a container asks to add (`securityContext.capabilities.add`), and whether
/// it keeps everything (privileged, or no `drop`).
pub fn capabilities(sc: Option<&SecurityContext>) -> (Vec<String>, bool) {
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let add = caps.and_then(|c| c.add.clone()).unwrap_or_default();
    let drops_any = caps.and_then(|c| c.drop.as_ref()).is_some_and(|d| !d.is_empty());
    // A container that drops nothing keeps the runtime's default set; we keep bwrap's
    // root capabilities only when privileged and otherwise drop all but what is added,
    // which is stricter than a container runtime's default set.
    let _ = drops_any;
    (add, privileged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn users_follow_the_security_context() {
        let pod = PodSecurityContext { run_as_user: Some(1000), ..Default::default() };
        assert_eq!(user(None, Some(&pod)), Some((1000, 1000)));
        let c = SecurityContext { run_as_non_root: Some(true), ..Default::default() };
        assert_eq!(user(Some(&c), None), Some((65534, 65534)));
        assert_eq!(user(None, None), None);
    }

    #[test]
    fn the_command_enters_the_pod_network_and_switches_user_last() {
        let spec = Spec {
            netns: Some("/run/netns/x".into()),
            user: Some((1000, 1000)),
            read_only_root: true,
            argv: vec!["/bin/sh".into()],
            hostname: "p".into(),
            ..Default::default()
        };
        let (prog, args) = command(&spec);
        assert_eq!(prog, NSENTER);
        assert_eq!(args[0], "--net=/run/netns/x");
        assert!(args.contains(&"--remount-ro".to_string()));
        assert!(!args.contains(&"--tmpfs".to_string()));
        assert_eq!(args.last().unwrap(), "/bin/sh");
        assert!(args.iter().any(|a| a == "--reuid=1000"));
    }

    #[test]
    fn parents_of_programs_and_mounts_are_traversable_by_non_root_users() {
        let spec = Spec {
            user: Some((1000, 1000)),
            read_only_root: true,
            programs: vec!["/tmp/ci/target/debug/agent".into()],
            binds: vec![
                Bind { source: "/state/tmp".into(), dest: "/tmp".into(), read_only: false },
                Bind {
                    source: "/state/secret".into(),
                    dest: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    read_only: true,
                },
            ],
            argv: vec!["/tmp/ci/target/debug/agent".into(), "--flag".into()],
            hostname: "p".into(),
            ..Default::default()
        };
        let (_, args) = command(&spec);
        let dirs: Vec<&str> = args
            .windows(4)
            .filter(|w| w[0] == "--perms" && w[1] == "0755" && w[2] == "--dir")
            .map(|w| w[3].as_str())
            .collect();
        assert_eq!(
            dirs,
            [
                "/.sympozium",
                "/.sympozium/programs",
                "/.sympozium/programs/0",
                "/var",
                "/var/run",
                "/var/run/secrets",
                "/var/run/secrets/kubernetes.io"
            ]
        );
        // The program is out of the way of the pod's /tmp volume, and argv follows it.
        let bind = args
            .windows(3)
            .position(|w| w[0] == "--ro-bind" && w[1] == "/tmp/ci/target/debug/agent")
            .unwrap();
        assert_eq!(args[bind + 2], "/.sympozium/programs/0/agent");
        assert_eq!(&args[args.len() - 2..], ["/.sympozium/programs/0/agent", "--flag"]);
    }
    #[test]
    fn an_image_root_replaces_the_hosts_files_and_switches_user_through_the_hosts_setpriv() {
        let entry = |name: &str, symlink: Option<&str>| RootfsEntry {
            name: name.into(),
            symlink: symlink.map(Into::into),
        };
        let spec = Spec {
            rootfs: Some(Rootfs {
                dir: "/cache/sha256-ab/rootfs".into(),
                entries: vec![
                    entry("etc", None),
                    entry("lib", Some("usr/lib")),
                    entry("proc", None),
                    entry("usr", None),
                ],
            }),
            setpriv: Some(Setpriv {
                program: "/usr/bin/setpriv".into(),
                loader: "/lib64/ld-linux-x86-64.so.2".into(),
                libs: vec!["/lib/x86_64-linux-gnu/libc.so.6".into()],
            }),
            user: Some((65532, 65532)),
            read_only_root: true,
            etc_dir: Some("/pods/p/etc".into()),
            binds: vec![Bind {
                source: "/pods/p/token".into(),
                dest: "/var/run/secrets/x".into(),
                read_only: true,
            }],
            argv: vec!["/usr/local/bin/app".into()],
            hostname: "p".into(),
            ..Default::default()
        };
        let (_, args) = command(&spec);
        let has = |w: &[&str]| args.windows(w.len()).any(|x| x == w);
        assert!(has(&["--ro-bind", "/cache/sha256-ab/rootfs/usr", "/usr"]), "{args:?}");
        assert!(has(&["--ro-bind", "/cache/sha256-ab/rootfs/etc", "/etc"]));
        assert!(has(&["--symlink", "usr/lib", "/lib"]));
        assert!(!has(&["--ro-bind", "/usr", "/usr"]), "nothing of the host's /usr");
        assert!(!has(&["--ro-bind", "/cache/sha256-ab/rootfs/proc", "/proc"]), "a fresh /proc instead");
        assert!(has(&["--ro-bind", "/pods/p/etc/resolv.conf", "/etc/resolv.conf"]));
        // Mount points outside the image's directories are made on the tmpfs root.
        assert!(has(&["--perms", "0755", "--dir", "/var"]));
        assert!(has(&[
            "--ro-bind",
            "/lib64/ld-linux-x86-64.so.2",
            "/.sympozium/setpriv/ld-linux-x86-64.so.2"
        ]));
        let tail: Vec<&str> = args[args.len() - 10..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "/.sympozium/setpriv/ld-linux-x86-64.so.2",
                "--library-path",
                "/.sympozium/setpriv",
                "/.sympozium/setpriv/setpriv",
                "--reuid=65532",
                "--regid=65532",
                "--clear-groups",
                "--inh-caps=-all",
                "--",
                "/usr/local/bin/app",
            ]
        );
    }
}
