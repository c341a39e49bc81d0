//! What the TUI shows: the latest copy of every watched kind, and whether the cluster
//! answers. The worker replaces whole lists ([`Update`]); rendering only reads them.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use sympozium_api::{
    AgentRun, MCPServer, PersonaPack, SkillPack, SympoziumConfig, SympoziumInstance, SympoziumPolicy,
    SympoziumSchedule,
};

/// The cluster connection as the user should see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Connection {
    /// No answer yet.
    #[default]
    Connecting,
    /// Watches are running.
    Connected,
    /// The cluster does not answer; shown as a warning while the worker keeps retrying.
    Disconnected(String),
}

/// Every watched list.
#[derive(Clone, Debug, Default)]
pub struct Data {
    /// PersonaPacks.
    pub packs: Vec<Arc<PersonaPack>>,
    /// SympoziumInstances.
    pub instances: Vec<Arc<SympoziumInstance>>,
    /// AgentRuns.
    pub runs: Vec<Arc<AgentRun>>,
    /// SympoziumPolicies.
    pub policies: Vec<Arc<SympoziumPolicy>>,
    /// SkillPacks.
    pub skills: Vec<Arc<SkillPack>>,
    /// SympoziumSchedules.
    pub schedules: Vec<Arc<SympoziumSchedule>>,
    /// Pods of instances (channel, memory and agent pods).
    pub pods: Vec<Arc<Pod>>,
    /// SympoziumConfigs (gateway).
    pub configs: Vec<Arc<SympoziumConfig>>,
    /// MCPServers.
    pub mcp_servers: Vec<Arc<MCPServer>>,
    /// Whether the cluster answers.
    pub connection: Connection,
    /// The event bus, when one is configured.
    pub bus: Option<Connection>,
    /// Streamed text of runs still answering, by run name.
    pub streams: HashMap<String, String>,
    /// Tool calls waiting for a human, oldest first.
    pub approvals: Vec<Approval>,
}

/// A tool call an agent waits to have approved (`tool.approval.request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Request id the answer refers to.
    pub request_id: String,
    /// The waiting run.
    pub run: String,
    /// Its namespace.
    pub ns: String,
    /// Its instance.
    pub instance: String,
    /// The tool.
    pub tool: String,
    /// The arguments, as JSON text.
    pub arguments: String,
}

/// A message from the worker to the UI.
#[derive(Debug)]
pub enum Update {
    /// A new copy of the PersonaPacks.
    Packs(Vec<Arc<PersonaPack>>),
    /// A new copy of the instances.
    Instances(Vec<Arc<SympoziumInstance>>),
    /// A new copy of the runs.
    Runs(Vec<Arc<AgentRun>>),
    /// A new copy of the policies.
    Policies(Vec<Arc<SympoziumPolicy>>),
    /// A new copy of the skill packs.
    Skills(Vec<Arc<SkillPack>>),
    /// A new copy of the schedules.
    Schedules(Vec<Arc<SympoziumSchedule>>),
    /// A new copy of the pods.
    Pods(Vec<Arc<Pod>>),
    /// A new copy of the SympoziumConfigs.
    Configs(Vec<Arc<SympoziumConfig>>),
    /// A new copy of the MCPServers.
    McpServers(Vec<Arc<MCPServer>>),
    /// The connection changed.
    Connection(Connection),
    /// An action finished: one line for the status bar.
    Notice(String),
    /// An action failed: one line, shown in red.
    Error(String),
    /// The bus connection changed.
    Bus(Connection),
    /// A piece of a run's streamed answer.
    Chunk {
        /// Run name.
        run: String,
        /// Position in the stream.
        index: u64,
        /// Text.
        text: String,
    },
    /// A tool call waits for approval.
    Approval(Approval),
    /// An approval was answered (here or elsewhere).
    Answered(String),
    /// Text to show in a pager (describe, logs, events).
    Text {
        /// Pager title.
        title: String,
        /// The text.
        body: String,
    },
}

impl Data {
    /// Applies an update; returns it back when it is not about the lists.
    pub fn apply(&mut self, update: Update) -> Option<Update> {
        match update {
            Update::Packs(v) => self.packs = v,
            Update::Instances(v) => self.instances = v,
            Update::Runs(v) => self.runs = v,
            Update::Policies(v) => self.policies = v,
            Update::Skills(v) => self.skills = v,
            Update::Schedules(v) => self.schedules = v,
            Update::Pods(v) => self.pods = v,
            Update::Configs(v) => self.configs = v,
            Update::McpServers(v) => self.mcp_servers = v,
            Update::Connection(c) => self.connection = c,
            Update::Bus(c) => self.bus = Some(c),
            Update::Chunk { run, text, .. } => self.streams.entry(run).or_default().push_str(&text),
            Update::Approval(a) => {
                if !self.approvals.iter().any(|x| x.request_id == a.request_id) {
                    self.approvals.push(a);
                }
            }
            Update::Answered(id) => self.approvals.retain(|a| a.request_id != id),
            other => return Some(other),
        }
        None
    }
}
