//! The IPC bridge: the sidecar in every agent pod that connects the runner's `/ipc` files
//! with the event bus.
//!
//! Outgoing (watched with inotify, plus a periodic rescan as a safety net; each file is
//! published exactly once, metadata `{agentRunID, instanceName, namespace}`, the file's
//! JSON as `data`):
//!
//! | file | topic |
//! |---|---|
//! | `messages/*` | `channel.message.send` |
//! | `schedules/*` | `schedule.upsert` |
//! | `spawn/*` | `agent.spawn.request` |
//! | `tools/exec-request*`, `tools/<skill>/exec-request*` | `tool.exec.request` |
//! | `output/stream-<n>.json` | `agent.stream.chunk`, in order of `n` |
//! | `output/status.json` | `agent.status.update` |
//! | `output/result.json` | `agent.run.completed`, last; the bridge exits shortly after |
//!
//! Incoming: the outcomes of the sub-agents this run spawned arrive on
//! `agent.spawn.result.<run>` ([`sympozium_bus::topics::spawn_result`]) as
//! [`sympozium_bus::payloads::SpawnResult`] and are written atomically to
//! `input/spawn-result-<id>.json`, where the runner's `spawn_subagent` waits for them. The
//! subject is read from the start of the stream, so answers published while the bridge was
//! restarting are not lost. The same holds for the answers to the run's schedule requests:
//! `schedule.upsert.result.<run>` ([`sympozium_bus::topics::schedule_upsert_result`],
//! [`sympozium_bus::payloads::ScheduleResult`]) becomes `input/schedule-result-<id>.json`,
//! where `schedule_task` waits for it.
//!
//! Temporary files (`*.tmp`, as the runner's atomic writes leave them for an instant) and
//! answers written into `/ipc` by others (`exec-result-*`, `input/*`) are never published.

pub mod config;
pub mod files;
mod inbound;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use sympozium_bus::{Bus, topics};
use tokio::sync::Notify;

pub use config::Config;

/// How long a file may stay unreadable (e.g. written in place by a slow writer) before
/// the bridge gives up on it.
const UNREADABLE_GRACE: Duration = Duration::from_secs(10);

/// Errors that stop the bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `AGENT_RUN_ID` is missing.
    #[error(
        "AGENT_RUN_ID is not set: the bridge must know which AgentRun it serves (set AGENT_RUN_ID or --agent-run-id)"
    )]
    MissingRunId,
    /// An IPC directory could not be created.
    #[error("creating {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file watcher could not start.
    #[error("watching {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: notify::Error,
    },
}

/// Creates `input`, `output`, `spawn`, `tools`, `messages` and `schedules` (mode 0750).
pub fn create_dirs(root: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    for dir in files::DIRS {
        let path = root.join(dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&path)
            .map_err(|source| Error::CreateDir { path, source })?;
    }
    Ok(())
}

/// The metadata of everything this bridge publishes.
pub fn metadata(config: &Config) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::from([
        ("agentRunID".to_string(), config.agent_run_id.clone()),
        ("instanceName".to_string(), config.instance_name.clone()),
    ]);
    if !config.namespace.is_empty() {
        meta.insert("namespace".into(), config.namespace.clone());
    }
    meta
}

/// Publishing state: which files went out, which could not be read yet.
struct Publisher {
    root: PathBuf,
    bus: Bus,
    meta: BTreeMap<String, String>,
    /// Where `messages/` files go: the run's own instance's outbound subject (the only one
    /// its NATS user may post through).
    channel_send: String,
    published: HashSet<PathBuf>,
    unreadable_since: HashMap<PathBuf, Instant>,
    /// The last pass left something unpublished.
    pending: bool,
}

enum Step {
    Published,
    NotYet,
}

impl Publisher {
    /// Publishes every new file; `true` once the result went out. The result waits until
    /// everything before it is out, and stream chunks keep their order.
    async fn pass(&mut self) -> bool {
        let (mut pending, mut stream_blocked) = (false, false);
        for file in files::scan(&self.root) {
            if self.published.contains(&file.path) {
                continue;
            }
            let is_chunk = file.topic == topics::AGENT_STREAM_CHUNK;
            let is_result = file.topic == topics::AGENT_RUN_COMPLETED;
            if (is_chunk && stream_blocked) || (is_result && pending) {
                continue;
            }
            match self.publish(&file.path, file.topic).await {
                Step::Published => {
                    self.published.insert(file.path.clone());
                    if is_result {
                        return true;
                    }
                }
                Step::NotYet => {
                    pending = true;
                    stream_blocked |= is_chunk;
                }
            }
        }
        self.pending = pending;
        false
    }

    async fn publish(&mut self, path: &Path, topic: &'static str) -> Step {
        let data = match std::fs::read(path).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(_)) | Err(_) => {
                let since = *self.unreadable_since.entry(path.to_path_buf()).or_insert_with(Instant::now);
                if since.elapsed() > UNREADABLE_GRACE {
                    tracing::warn!(path = %path.display(), "not valid JSON after {UNREADABLE_GRACE:?}; skipped");
                    self.published.insert(path.to_path_buf());
                }
                return Step::NotYet;
            }
        };
        // The id makes a retry after an uncertain publish (NATS restarting) harmless.
        let rel = path.strip_prefix(&self.root).unwrap_or(path).to_string_lossy();
        let id = format!(
            "{}/{}/{rel}",
            self.meta.get("namespace").map_or("", String::as_str),
            self.meta.get("agentRunID").map_or("", String::as_str)
        );
        let subject_topic =
            if topic == topics::CHANNEL_MESSAGE_SEND { self.channel_send.as_str() } else { topic };
        match self.bus.publish_once(subject_topic, self.meta.clone(), &data, &id).await {
            Ok(()) => {
                self.unreadable_since.remove(path);
                tracing::info!(path = %path.display(), %topic, "published");
                Step::Published
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), %topic, error = %e, "publishing failed; will retry");
                Step::NotYet
            }
        }
    }
}

/// Connects to the bus, retrying until NATS answers (files wait on disk meanwhile).
async fn connect(config: &Config) -> Bus {
    let mut delay = Duration::from_secs(1);
    loop {
        let options = match config.bus_options() {
            Ok(o) => o,
            Err(e) => {
                // Broken credentials do not heal by retrying; say so and keep the files on disk.
                tracing::error!(error = %e, "NATS_CREDS does not parse; the bridge cannot reach the bus");
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
        };
        match Bus::connect_with(&config.event_bus_url, options).await {
            Ok(bus) => return bus,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "event bus unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs the bridge until the run's result has been published (then waits the exit delay).
pub async fn run(config: Config) -> Result<(), Error> {
    if config.agent_run_id.trim().is_empty() {
        return Err(Error::MissingRunId);
    }
    let root = config.ipc_path.clone();
    create_dirs(&root)?;
    let wake = Arc::new(Notify::new());
    let signal = wake.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            signal.notify_one();
        }
    })
    .map_err(|source| Error::Watch { path: root.clone(), source })?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|source| Error::Watch { path: root.clone(), source })?;

    let bus = connect(&config).await;
    let (ns, run) = (config.bus_namespace().to_string(), config.agent_run_id.clone());
    let inbound = [
        tokio::spawn(inbound::spawn_results(bus.clone(), root.clone(), topics::spawn_result(&ns, &run))),
        tokio::spawn(inbound::schedule_results(
            bus.clone(),
            root.clone(),
            topics::schedule_upsert_result(&ns, &run),
        )),
        tokio::spawn(inbound::followups(bus.clone(), root.clone(), topics::followup(&ns, &run))),
        tokio::spawn(inbound::tool_results(bus.clone(), root.clone(), topics::tool_exec_result(&ns, &run))),
    ];
    tracing::info!(run = %config.agent_run_id, ipc = %root.display(), "bridge up");
    let mut publisher = Publisher {
        root: root.clone(),
        bus,
        meta: metadata(&config),
        channel_send: topics::channel_send(config.bus_namespace(), &config.instance_name),
        published: HashSet::new(),
        unreadable_since: HashMap::new(),
        pending: false,
    };
    let mut retry = Duration::from_millis(200);
    loop {
        if publisher.pass().await {
            break;
        }
        // Unreadable or unpublished files are retried sooner than the safety-net rescan.
        let wait = if publisher.pending { retry } else { config.rescan_interval() };
        retry = if publisher.pending {
            (retry * 2).min(config.rescan_interval())
        } else {
            Duration::from_millis(200)
        };
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
    tracing::info!(delay = ?config.exit_delay(), "result published; exiting after the delay");
    tokio::time::sleep(config.exit_delay()).await;
    drop(watcher);
    for task in inbound {
        task.abort();
    }
    Ok(())
}
