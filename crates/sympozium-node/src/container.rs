//! Running one container: resolve its image and environment, start it in its sandbox with
//! its output in the log, drive its probes, and restart it as its policy says. Stopping
//! is graceful: SIGTERM to the program, SIGKILL to its process group after the grace period.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Container;
use kube::ResourceExt;
use rustix::process::{Pid, Signal};
use tokio::sync::{Mutex, watch};

use crate::env;
use crate::pod::PodCtx;
use crate::probes::{self, Target};
use crate::sandbox::{self, Bind, Spec};
use crate::state::{Ended, Run};
use crate::streaming::ExecTarget;

/// How the container is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always (sidecars, Deployments).
    Always,
    /// After a non-zero exit.
    OnFailure,
    /// Never.
    Never,
}

/// Why an attempt ended.
enum Outcome {
    Exited(i32),
    Stopped,
    Unhealthy,
}

/// Runs `c` until it ends for good (per `restart`) or the pod stops. Returns the last
/// exit code (None: never ran or stopped).
pub async fn supervise(
    ctx: Arc<PodCtx>,
    c: Container,
    init: bool,
    restart: Restart,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Option<i32> {
    let mut backoff = Duration::from_secs(1);
    loop {
        if stop.borrow().is_some() {
            return None;
        }
        let outcome = attempt(&ctx, &c, init, &mut stop).await;
        let code = match outcome {
            Outcome::Stopped => return None,
            Outcome::Exited(code) => code,
            Outcome::Unhealthy => 137,
        };
        let again = match restart {
            Restart::Always => true,
            Restart::OnFailure => code != 0,
            Restart::Never => false,
        };
        if !again {
            return Some(code);
        }
        ctx.update(|s| {
            if let Some(ci) = s.container(&c.name, init) {
                ci.restarts += 1;
                if let Run::Terminated(e) = &ci.run {
                    ci.last = Some(e.clone());
                }
                ci.run = Run::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {}s restarting failed container={}",
                        backoff.as_secs(),
                        c.name
                    ),
                };
            }
        })
        .await;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn waiting(ctx: &PodCtx, c: &Container, init: bool, reason: &str, message: String) {
    ctx.update(|s| {
        if let Some(ci) = s.container(&c.name, init) {
            ci.run = Run::Waiting { reason: reason.into(), message };
        }
    })
    .await;
}

async fn attempt(
    ctx: &Arc<PodCtx>,
    c: &Container,
    init: bool,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> Outcome {
    let image = c.image.clone().unwrap_or_default();
    let Some(resolved) = resolve(ctx, c, init, &image).await else {
        let _ = stop.changed().await;
        return Outcome::Stopped;
    };
    let env = loop {
        match env::build(&ctx.node.client, &ctx.pod, c, &ctx.values).await {
            Ok(e) => {
                let mut e = match &resolved {
                    Resolved::Image(img) => crate::oci::env(&img.config, e),
                    Resolved::Program(_) => e,
                };
                if !e.iter().any(|(k, _)| k == "PATH") {
                    let path = match &resolved {
                        Resolved::Program(p) => p.path_env.clone(),
                        Resolved::Image(_) => crate::images::DEFAULT_PATH.to_string(),
                    };
                    e.insert(0, ("PATH".into(), path));
                }
                if !e.iter().any(|(k, _)| k == "HOSTNAME") {
                    e.push(("HOSTNAME".into(), ctx.hostname.clone()));
                }
                if !e.iter().any(|(k, _)| k == "HOME") {
                    e.push(("HOME".into(), "/".into()));
                }
                break e;
            }
            Err(e) => {
                waiting(ctx, c, init, "CreateContainerConfigError", e.to_string()).await;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => return Outcome::Stopped,
                }
            }
        }
    };
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let command: Vec<String> = c.command.iter().flatten().map(|a| env::expand(a, &vars)).collect();
    let args: Vec<String> = c.args.iter().flatten().map(|a| env::expand(a, &vars)).collect();
    // A command inside one of the container's volumes (a program an init container put
    // there, e.g. the MCP stdio adapter) is that file, not the image's entrypoint.
    let from_volume = command.first().is_some_and(|first| {
        let first = std::path::Path::new(first);
        first.is_absolute()
            && c.volume_mounts
                .iter()
                .flatten()
                .any(|m| first.starts_with(&m.mount_path) && first != std::path::Path::new(&m.mount_path))
    });
    let argv = match &resolved {
        _ if from_volume => command.iter().chain(args.iter()).cloned().collect(),
        Resolved::Program(program) => crate::images::argv(program, &command, &args),
        Resolved::Image(img) => crate::oci::argv(&img.config, &command, &args),
    };
    let spec = match spec_for(ctx, c, &resolved, argv) {
        Ok(s) => s,
        Err(e) => {
            waiting(ctx, c, init, "CreateContainerError", e.to_string()).await;
            let _ = stop.changed().await;
            return Outcome::Stopped;
        }
    };
    let spec_user = (spec.user, spec.groups.clone(), spec.cap_add.clone(), spec.privileged);
    let (exe, args) = sandbox::command(&spec);
    let restarts = ctx
        .snapshot()
        .await
        .containers
        .iter()
        .find(|x| x.name == c.name && x.init == init)
        .map(|x| x.restarts)
        .unwrap_or(0);
    let log_dir = crate::logs::container_dir(&ctx.dir, &c.name);
    let log_path = log_dir.join(format!("{restarts}.log"));
    let file = match std::fs::create_dir_all(&log_dir).and_then(|()| std::fs::File::create(&log_path)) {
        Ok(f) => Arc::new(Mutex::new(tokio::fs::File::from_std(f))),
        Err(e) => {
            waiting(ctx, c, init, "CreateContainerError", format!("creating the log file: {e}")).await;
            let _ = stop.changed().await;
            return Outcome::Stopped;
        }
    };
    let cgroup_name = format!(
        "{}_{}_{}_{restarts}",
        ctx.pod.uid().unwrap_or_default(),
        if init { "init" } else { "main" },
        c.name
    );
    let cgroup = match ctx.node.cgroups.create(&cgroup_name, &crate::cgroups::limits_of(c)) {
        Ok(cg) => cg,
        Err(e) => {
            waiting(ctx, c, init, "CreateContainerError", e.to_string()).await;
            let _ = stop.changed().await;
            return Outcome::Stopped;
        }
    };
    let (exe, args) = crate::cgroups::wrap(cgroup.as_deref(), exe, args);
    let wants_stdin = c.stdin == Some(true);
    let mut child = match tokio::process::Command::new(&exe)
        .args(&args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if wants_stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(ch) => ch,
        Err(e) => {
            waiting(ctx, c, init, "StartError", format!("starting {exe}: {e}")).await;
            let _ = stop.changed().await;
            return Outcome::Stopped;
        }
    };
    let pid = child.id();
    let stdin = child.stdin.take().map(|w| Arc::new(Mutex::new(Some(w))));
    let exec_target = pid.map(|sandbox_pid| {
        Arc::new(ExecTarget {
            sandbox_pid,
            env: env.clone(),
            user: spec_user.0,
            groups: spec_user.1.clone(),
            cap_add: spec_user.2.clone(),
            privileged: spec_user.3,
            cgroup: cgroup.clone(),
            stdin,
            stdin_once: c.stdin_once == Some(true),
            log: log_path.clone(),
        })
    });
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(crate::logs::capture(out, "stdout", file.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(crate::logs::capture(err, "stderr", file.clone())));
    }
    let target = Target { ip: ctx.probe_ip(), pid, env: env.clone() };
    if let Some(t) = &exec_target
        && let Ok(mut m) = ctx.handle.containers.write()
    {
        m.insert(c.name.clone(), t.clone());
    }
    // The container is not Running until its postStart hook succeeded.
    let post_start = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref());
    if let (Some(hook), Some(t)) = (post_start, &exec_target) {
        let grace = grace_of(ctx);
        let failed = tokio::select! {
            r = crate::hooks::run(hook, c, t, &target, grace) => r.err().map(|e| e.to_string()),
            _ = stop.changed() => Some("the pod is stopping".to_string()),
        };
        if let Some(msg) = failed {
            ctx.event(
                "Warning",
                "FailedPostStartHook",
                &format!("container {}: PostStartHook failed: {msg}", c.name),
            )
            .await;
            terminate(&mut child, Duration::from_secs(2)).await;
        }
    }
    let started = Utc::now();
    let has_startup = c.startup_probe.is_some();
    let has_readiness = c.readiness_probe.is_some();
    ctx.update(|s| {
        if let Some(ci) = s.container(&c.name, init) {
            ci.run = Run::Running { started };
            ci.pid = pid;
            ci.started = !has_startup;
            ci.ready = !has_startup && !has_readiness;
        }
    })
    .await;
    let probes = tokio::spawn(run_probes(ctx.clone(), c.clone(), init, target.clone()));
    let mut probes = probes;
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(exit_code(status)),
        _ = stop.changed() => {
            let grace = stop.borrow().unwrap_or_default();
            let grace = pre_stop(ctx, c, exec_target.as_deref(), &target, grace).await;
            terminate(&mut child, grace).await;
            Outcome::Stopped
        }
        unhealthy = &mut probes => {
            if unhealthy.unwrap_or(false) {
                ctx.event("Warning", "Unhealthy", &format!("container {} failed its liveness or startup probe and will be restarted", c.name)).await;
                let grace = pre_stop(ctx, c, exec_target.as_deref(), &target, grace_of(ctx)).await;
                terminate(&mut child, grace).await;
                Outcome::Unhealthy
            } else {
                Outcome::Exited(exit_code(child.wait().await))
            }
        }
    };
    probes.abort();
    let code = match &outcome {
        Outcome::Exited(c) => *c,
        _ => exit_code(child.wait().await),
    };
    for r in readers {
        let _ = r.await;
    }
    let _ = std::fs::write(log_path.with_extension("done"), b"");
    if let Ok(mut m) = ctx.handle.containers.write() {
        m.remove(&c.name);
    }
    let oom = cgroup.as_deref().is_some_and(crate::cgroups::oom_killed);
    if let Some(cg) = &cgroup {
        crate::cgroups::remove(cg).await;
    }
    let ended = Ended {
        exit_code: code,
        reason: if oom {
            "OOMKilled".into()
        } else if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        },
        started,
        finished: Utc::now(),
    };
    ctx.update(|s| {
        if let Some(ci) = s.container(&c.name, init) {
            ci.run = Run::Terminated(ended);
            ci.ready = false;
            ci.pid = None;
        }
    })
    .await;
    match outcome {
        Outcome::Stopped => Outcome::Stopped,
        Outcome::Unhealthy => Outcome::Unhealthy,
        Outcome::Exited(_) => Outcome::Exited(code),
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(255),
        Err(_) => 255,
    }
}

/// The pod's termination grace period.
fn grace_of(ctx: &PodCtx) -> Duration {
    let secs = ctx.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(30))
}

/// Runs the preStop hook within `grace`; returns what is left of it for SIGTERM (at least
/// 2 s, as the kubelet grants after a hook that used the whole period).
async fn pre_stop(
    ctx: &PodCtx,
    c: &Container,
    exec: Option<&ExecTarget>,
    target: &Target,
    grace: Duration,
) -> Duration {
    let hook = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref());
    let (Some(hook), Some(exec)) = (hook, exec) else { return grace };
    let begun = std::time::Instant::now();
    if let Err(msg) = crate::hooks::run(hook, c, exec, target, grace).await {
        ctx.event(
            "Warning",
            "FailedPreStopHook",
            &format!("container {}: PreStopHook failed: {msg}", c.name),
        )
        .await;
    }
    grace.saturating_sub(begun.elapsed()).max(Duration::from_secs(2))
}

/// SIGTERM to the program, then SIGKILL to the container's process group after `grace`.
async fn terminate(child: &mut tokio::process::Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    let target = sandbox::program_pid(pid).unwrap_or(pid);
    if let Some(p) = Pid::from_raw(i32::try_from(target).unwrap_or(0)) {
        let _ = rustix::process::kill_process(p, Signal::TERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        if let Some(p) = Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
            let _ = rustix::process::kill_process_group(p, Signal::KILL);
        }
        let _ = child.kill().await;
    }
    // Anything the program left behind in its process group goes too.
    if let Some(p) = Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
        let _ = rustix::process::kill_process_group(p, Signal::KILL);
    }
}

/// What a container's image runs: a real OCI image from the node's image directories, or a
/// mapped local program.
enum Resolved {
    Program(crate::images::Program),
    Image(Arc<crate::oci::Image>),
}

/// Resolves the container's image, or reports why it cannot run (ErrImagePull) and returns None.
async fn resolve(ctx: &PodCtx, c: &Container, init: bool, image: &str) -> Option<Resolved> {
    let msg = match ctx.node.oci.resolve(image).await {
        Some(Ok(img)) => return Some(Resolved::Image(img)),
        Some(Err(e)) => format!("image {image:?}: {e}"),
        None => match ctx.node.images.resolve(image).cloned() {
            Some(program) if program.path.exists() => return Some(Resolved::Program(program)),
            Some(program) => format!(
                "image {image:?} maps to {} which does not exist (build it first)",
                program.path.display()
            ),
            None => format!(
                "image {image:?} is neither in the node's image directories (sympozium-node --oci-dir) nor mapped to a local program (--images)"
            ),
        },
    };
    waiting(ctx, c, init, "ErrImagePull", msg.clone()).await;
    ctx.event("Warning", "ImageNotMapped", &msg).await;
    None
}

/// Why a container's sandbox spec cannot be built (its `CreateContainerError` message).
#[derive(Debug, thiserror::Error)]
enum SpecError {
    #[error("volume {volume:?} of mount {mount_path} is not defined in the pod")]
    UndefinedVolume { volume: String, mount_path: String },
    #[error("subPath {0:?} may not contain '..'")]
    SubPathEscapes(String),
    #[error("subPath {sub}: {source}")]
    SubPath {
        sub: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    User(#[from] crate::oci::UserError),
}

fn spec_for(ctx: &PodCtx, c: &Container, resolved: &Resolved, argv: Vec<String>) -> Result<Spec, SpecError> {
    let pod_sc = ctx.pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let mut binds = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = ctx.volumes.get(&m.name) else {
            return Err(SpecError::UndefinedVolume {
                volume: m.name.clone(),
                mount_path: m.mount_path.clone(),
            });
        };
        let mut source = v.host_path.clone();
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        if let Some(sub) = sub {
            if sub.split('/').any(|p| p == "..") {
                return Err(SpecError::SubPathEscapes(sub.to_string()));
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|source| SpecError::SubPath { sub: sub.to_string(), source })?;
            }
        }
        binds.push(Bind {
            source,
            dest: m.mount_path.clone(),
            read_only: m.read_only == Some(true) || v.read_only,
        });
    }
    let user = match resolved {
        Resolved::Program(_) => sandbox::user(sc, pod_sc),
        Resolved::Image(img) => {
            for b in &binds {
                crate::oci::ensure_mount_point(&img.rootfs.dir, &b.dest, b.source.is_dir());
            }
            crate::oci::user(img, sc, pod_sc)?
        }
    };
    let mut groups: Vec<i64> = pod_sc.and_then(|p| p.supplemental_groups.clone()).unwrap_or_default();
    if let Some(fs) = pod_sc.and_then(|p| p.fs_group) {
        groups.push(fs);
    }
    let (cap_add, privileged) = sandbox::capabilities(sc);
    let (programs, applets, rootfs, image_workdir) = match resolved {
        Resolved::Program(program) => (
            if program.multicall || program.path.starts_with("/usr") {
                Vec::new()
            } else {
                vec![program.path.clone()]
            },
            if program.multicall { ctx.node.applets_for(&program.path) } else { None },
            None,
            None,
        ),
        Resolved::Image(img) => (
            Vec::new(),
            None,
            Some(img.rootfs.clone()),
            img.config.working_dir.clone().filter(|w| !w.is_empty()),
        ),
    };
    Ok(Spec {
        netns: ctx.netns.clone(),
        programs,
        applets,
        binds,
        etc_dir: Some(ctx.dir.join("etc")),
        hostname: ctx.hostname.clone(),
        workdir: c.working_dir.clone().or(image_workdir),
        rootfs,
        setpriv: ctx.node.setpriv.clone(),
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        user,
        groups,
        cap_add,
        privileged,
        argv,
    })
}

/// Drives the startup, readiness and liveness probes; returns true when the container
/// must be restarted (liveness or startup failure).
async fn run_probes(ctx: Arc<PodCtx>, c: Container, init: bool, target: Target) -> bool {
    if let Some(p) = &c.startup_probe {
        let t = probes::timing(p);
        tokio::time::sleep(t.initial_delay).await;
        let mut failures = 0;
        loop {
            if probes::check(p, &c, &target).await {
                break;
            }
            failures += 1;
            if failures >= t.failure_threshold {
                return true;
            }
            tokio::time::sleep(t.period).await;
        }
        let ready_now = c.readiness_probe.is_none();
        ctx.update(|s| {
            if let Some(ci) = s.container(&c.name, init) {
                ci.started = true;
                ci.ready = ready_now;
            }
        })
        .await;
    }
    let readiness = c.readiness_probe.clone().map(|p| {
        let ctx = ctx.clone();
        let c = c.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let t = probes::timing(&p);
            tokio::time::sleep(t.initial_delay).await;
            let (mut ok, mut bad) = (0, 0);
            loop {
                if probes::check(&p, &c, &target).await {
                    ok += 1;
                    bad = 0;
                } else {
                    bad += 1;
                    ok = 0;
                }
                let verdict = if ok >= t.success_threshold {
                    Some(true)
                } else if bad >= t.failure_threshold {
                    Some(false)
                } else {
                    None
                };
                if let Some(ready) = verdict {
                    ctx.update(|s| {
                        if let Some(ci) = s.container(&c.name, init) {
                            ci.ready = ready;
                        }
                    })
                    .await;
                }
                tokio::time::sleep(t.period).await;
            }
        })
    });
    let result = match &c.liveness_probe {
        None => std::future::pending().await,
        Some(p) => {
            let t = probes::timing(p);
            tokio::time::sleep(t.initial_delay).await;
            let mut failures = 0;
            loop {
                if probes::check(p, &c, &target).await {
                    failures = 0;
                } else {
                    failures += 1;
                    if failures >= t.failure_threshold {
                        break true;
                    }
                }
                tokio::time::sleep(t.period).await;
            }
        }
    };
    if let Some(r) = readiness {
        r.abort();
    }
    result
}
