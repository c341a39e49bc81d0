//! What the node knows about a pod's containers while it runs them, and the Kubernetes
//! PodStatus computed from it (patched by the pod worker whenever it changes).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A container's current state.
#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    /// Not running: why.
    Waiting {
        /// Reason (ContainerCreating, ErrImagePull, CrashLoopBackOff, …).
        reason: String,
        /// Details.
        message: String,
    },
    /// Running since.
    Running {
        /// Start time.
        started: DateTime<Utc>,
    },
    /// Finished.
    Terminated(Ended),
}

/// A finished attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// Completed, Error, …
    pub reason: String,
    /// Started.
    pub started: DateTime<Utc>,
    /// Finished.
    pub finished: DateTime<Utc>,
}

/// One container as the node tracks it.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// An init container (sidecars included).
    pub init: bool,
    /// State.
    pub run: Run,
    /// The previous attempt.
    pub last: Option<Ended>,
    /// Restarts so far.
    pub restarts: i32,
    /// Readiness.
    pub ready: bool,
    /// Startup probe passed (or none).
    pub started: bool,
    /// Host pid of the running program's sandbox.
    pub pid: Option<u32>,
}

/// A pod as the node tracks it.
#[derive(Clone, Debug)]
pub struct PodState {
    /// Containers, init containers first.
    pub containers: Vec<ContainerInfo>,
    /// Pending, Running, Succeeded, Failed.
    pub phase: String,
    /// Pod-level reason/message (e.g. volume errors).
    pub reason: Option<(String, String)>,
    /// Every init container has completed (sidecars: started).
    pub initialized: bool,
    /// Pod IP.
    pub pod_ip: Option<String>,
    /// Node IP.
    pub host_ip: String,
    /// When the node accepted the pod.
    pub start_time: DateTime<Utc>,
    transitions: BTreeMap<String, (bool, DateTime<Utc>)>,
}

fn time(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn state_json(run: &Run) -> Value {
    match run {
        Run::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
        Run::Running { started } => json!({"running": {"startedAt": time(*started)}}),
        Run::Terminated(e) => json!({"terminated": {"exitCode": e.exit_code, "reason": e.reason,
            "startedAt": time(e.started), "finishedAt": time(e.finished)}}),
    }
}

impl PodState {
    /// A new pod: every container waiting in ContainerCreating.
    pub fn new(containers: Vec<ContainerInfo>, host_ip: String) -> PodState {
        PodState {
            containers,
            phase: "Pending".into(),
            reason: None,
            initialized: false,
            pod_ip: None,
            host_ip,
            start_time: Utc::now(),
            transitions: BTreeMap::new(),
        }
    }

    /// The container named `name`.
    pub fn container(&mut self, name: &str, init: bool) -> Option<&mut ContainerInfo> {
        self.containers.iter_mut().find(|c| c.name == name && c.init == init)
    }

    fn condition(&mut self, kind: &str, status: bool, reason: Option<&str>) -> Value {
        let now = Utc::now();
        let entry = self.transitions.entry(kind.to_string()).or_insert((status, now));
        if entry.0 != status {
            *entry = (status, now);
        }
        let mut c = json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": time(entry.1), "lastProbeTime": null});
        if let (Some(r), false) = (reason, status) {
            c["reason"] = json!(r);
        }
        c
    }

    /// The PodStatus as JSON (for a merge patch of the status subresource).
    pub fn status(&mut self) -> Value {
        let statuses = |init: bool, s: &PodState| -> Vec<Value> {
            s.containers
                .iter()
                .filter(|c| c.init == init)
                .map(|c| {
                    json!({
                        "name": c.name, "image": c.image, "imageID": format!("local://{}", c.image),
                        "containerID": c.pid.map(|p| format!("sympozium://{p}")),
                        "ready": c.ready, "started": matches!(c.run, Run::Running{..}) && c.started,
                        "restartCount": c.restarts,
                        "state": state_json(&c.run),
                        "lastState": c.last.as_ref().map(|e| state_json(&Run::Terminated(e.clone()))).unwrap_or(json!({})),
                    })
                })
                .collect()
        };
        let main: Vec<&ContainerInfo> = self.containers.iter().filter(|c| !c.init).collect();
        let containers_ready = !main.is_empty()
            && main.iter().all(|c| c.ready)
            && self
                .containers
                .iter()
                .filter(|c| c.init && matches!(c.run, Run::Running { .. }))
                .all(|c| c.ready);
        let terminal = self.phase == "Succeeded" || self.phase == "Failed";
        let ready = containers_ready && !terminal;
        let initialized = self.initialized;
        let conditions = vec![
            self.condition("PodReadyToStartContainers", self.pod_ip.is_some(), None),
            self.condition("Initialized", initialized, Some("ContainersNotInitialized")),
            self.condition(
                "Ready",
                ready,
                Some(if terminal { "PodCompleted" } else { "ContainersNotReady" }),
            ),
            self.condition(
                "ContainersReady",
                ready,
                Some(if terminal { "PodCompleted" } else { "ContainersNotReady" }),
            ),
            self.condition("PodScheduled", true, None),
        ];
        let mut status = json!({
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": self.host_ip, "hostIPs": [{"ip": self.host_ip}],
            "startTime": time(self.start_time),
            "containerStatuses": statuses(false, self),
            "initContainerStatuses": statuses(true, self),
        });
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        match &self.reason {
            Some((r, m)) => {
                status["reason"] = json!(r);
                status["message"] = json!(m);
            }
            None => {
                status["reason"] = Value::Null;
                status["message"] = Value::Null;
            }
        }
        status
    }
}
