//! A test control plane of one test's own, for faults that would break every other test on
//! the shared plane: its API server or etcd is stopped with SIGKILL and started again with
//! the same command line, ports and data. Everything is found by the PIDs `testplane/up.sh`
//! recorded; only this plane's processes are ever signalled, and [`Drop`] tears it down
//! with `testplane/down.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::{Error, Result, install_crds, repo_root};

/// A component of the plane that can be stopped and started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// etcd (its data directory survives the restart).
    Etcd,
    /// kube-apiserver.
    ApiServer,
}

impl Component {
    fn binary(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
        }
    }
}

/// A running private plane; torn down on drop.
#[derive(Debug)]
pub struct PrivatePlane {
    state: PathBuf,
    kubeconfig: PathBuf,
    /// Command lines of stopped components, kept to start them again.
    stopped: Mutex<BTreeMap<Component, Vec<String>>>,
    /// Components this process restarted (reaped on drop).
    children: Mutex<Vec<Child>>,
}

fn command_error(command: &str, reason: impl ToString) -> Error {
    Error::Command { command: command.into(), reason: reason.to_string() }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| state != Some('Z') && state != Some('X'))
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

impl PrivatePlane {
    /// Starts a plane with its own state directory (named after `name` and this process)
    /// and its own random ports; takes as long as `testplane/up.sh` (10-30 s).
    pub fn start(name: &str) -> Result<PrivatePlane> {
        let state =
            std::env::temp_dir().join(format!("sympozium-private-plane-{name}-{}", std::process::id()));
        let up = repo_root().join("testplane/up.sh");
        let out = Command::new("bash")
            .arg(&up)
            .env("TESTPLANE_DIR", &state)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| command_error("testplane/up.sh", e))?;
        let plane = PrivatePlane {
            kubeconfig: PathBuf::from(
                String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim(),
            ),
            state,
            stopped: Mutex::default(),
            children: Mutex::default(),
        };
        if !out.status.success() || !plane.kubeconfig.is_file() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<_> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(command_error("testplane/up.sh (private plane)", tail.join("\n")));
        }
        Ok(plane)
    }

    /// The plane's kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client on this plane, with the Sympozium CRDs installed.
    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::Kubeconfig(format!("{}: {e}", self.kubeconfig.display())))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
        let client = Client::try_from(config)?;
        install_crds(&client).await?;
        Ok(client)
    }

    fn pids(&self) -> Result<Vec<u32>> {
        let text =
            std::fs::read_to_string(self.state.join("pids")).map_err(|e| command_error("reading pids", e))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// The PID of `component`, found among the recorded PIDs by its program name.
    pub fn pid(&self, component: Component) -> Result<u32> {
        self.pids()?
            .into_iter()
            .find(|pid| {
                alive(*pid)
                    && cmdline(*pid).is_some_and(|args| {
                        Path::new(&args[0]).file_name().is_some_and(|f| f == component.binary())
                    })
            })
            .ok_or_else(|| {
                command_error("finding a PID", format!("no running {} in this plane", component.binary()))
            })
    }

    /// `kill -9` of `component`; returns once the process is gone.
    pub async fn stop(&self, component: Component) -> Result<()> {
        let pid = self.pid(component)?;
        let args = cmdline(pid).ok_or_else(|| command_error("reading a command line", pid))?;
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .map_err(|e| command_error("kill -KILL", e))?;
        if !status.success() {
            return Err(command_error("kill -KILL", format!("{pid}: {status}")));
        }
        for _ in 0..100 {
            if !alive(pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stopped.lock().map_err(|_| command_error("stop", "poisoned"))?.insert(component, args);
        Ok(())
    }

    /// Starts a stopped `component` again with its old command line (same ports, data and
    /// certificates), records its new PID for `testplane/down.sh`, and waits until it serves.
    pub async fn resume(&self, component: Component) -> Result<()> {
        let args =
            self.stopped
                .lock()
                .map_err(|_| command_error("resume", "poisoned"))?
                .remove(&component)
                .ok_or_else(|| command_error("resume", format!("{} was not stopped", component.binary())))?;
        let log = self.run_dir()?.join(format!("{}.log", component.binary()));
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .map_err(|e| command_error("opening the log", e))?;
        let err = out.try_clone().map_err(|e| command_error("opening the log", e))?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&args[0])
                .args(&args[1..])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                // Its own process group, like up.sh's setsid: a signal to the test is not one to it.
                .process_group(0)
                .spawn()
                .map_err(|e| command_error(&args[0], e))?
        };
        let pid = child.id();
        self.children.lock().map_err(|_| command_error("resume", "poisoned"))?.push(child);
        let pids = self.pids()?;
        let text: String =
            pids.into_iter().filter(|p| alive(*p)).chain([pid]).map(|p| format!("{p}\n")).collect();
        std::fs::write(self.state.join("pids"), text).map_err(|e| command_error("writing pids", e))?;
        self.wait_ready(Duration::from_secs(180)).await.map_err(|e| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<_> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            command_error(
                &format!("restarting {}", component.binary()),
                format!("{e}; its log ends:\n{}", tail.join("\n")),
            )
        })
    }

    /// Stops `component`, leaves it down for `down_for`, and starts it again.
    pub async fn restart(&self, component: Component, down_for: Duration) -> Result<()> {
        self.stop(component).await?;
        tokio::time::sleep(down_for).await;
        self.resume(component).await
    }

    /// Waits until the API server answers `/readyz` (which includes its etcd check).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = match self.client_without_crds().await {
                Ok(client) => {
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| command_error("readyz", e))?;
                    client.request_text(req).await.is_ok_and(|t| t.trim() == "ok")
                }
                Err(_) => false,
            };
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(command_error("waiting for /readyz", format!("not ready after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn client_without_crds(&self) -> Result<Client> {
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| Error::Kubeconfig(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
        Ok(Client::try_from(config)?)
    }

    fn run_dir(&self) -> Result<PathBuf> {
        let env = std::fs::read_to_string(self.state.join("plane.env"))
            .map_err(|e| command_error("reading plane.env", e))?;
        env.lines()
            .find_map(|l| l.strip_prefix("RUN_DIR="))
            .map(|d| PathBuf::from(d.trim_matches(['\'', '"'])))
            .ok_or_else(|| command_error("reading plane.env", "no RUN_DIR"))
    }
}

impl Drop for PrivatePlane {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("testplane/down.sh"))
            .env("TESTPLANE_DIR", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(children) = self.children.get_mut() {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
