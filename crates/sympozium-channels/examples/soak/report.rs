//! What the soak counted and the table it prints.

use std::collections::BTreeMap;
use std::time::Duration;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// nats-server killed and started again on the same store.
    NatsRestart,
    /// A channel pod (process) killed with SIGKILL and started again.
    ChannelKill,
    /// A controller replica killed with SIGKILL and started again.
    ControllerKill,
}

impl Fault {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Fault::NatsRestart => "NATS restart",
            Fault::ChannelKill => "channel pod kill -9",
            Fault::ControllerKill => "controller kill -9",
        }
    }
}

/// What the run counted.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Messages the users wrote.
    pub messages: usize,
    /// Distinct messages that got a reply.
    pub replied: usize,
    /// Replies posted in all (a message answered twice counts twice).
    pub replies: usize,
    /// Messages answered more than once (one each).
    pub duplicates: usize,
    /// Messages never answered.
    pub lost: usize,
    /// Replies posted to the wrong instance's platform, or answering no message.
    pub misrouted: usize,
    /// AgentRuns made for the messages.
    pub runs: usize,
    /// Messages that made more than one run.
    pub duplicate_runs: usize,
    /// Runs in Succeeded or Failed at the end.
    pub terminal_runs: usize,
    /// Runs that failed (terminal, but the answer is an error).
    pub failed_runs: usize,
    /// Message written → reply posted, sorted.
    pub latencies: Vec<Duration>,
    /// Faults injected, per kind.
    pub faults: BTreeMap<Fault, usize>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// Nothing lost, nothing doubled, every run finished.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.misrouted == 0
            && self.duplicate_runs == 0
            && self.runs == self.messages
            && self.terminal_runs == self.runs
    }

    /// The `p`-quantile of the latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[idx.min(self.latencies.len() - 1)]
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let survived = if self.clean() { "yes" } else { "NO" };
        let faults: usize = self.faults.values().sum();
        let per_kind = self.faults.iter().map(|(k, n)| format!("{n} {}", k.label())).collect::<Vec<_>>();
        let rows = [
            ("messages", self.messages.to_string()),
            ("replies", self.replies.to_string()),
            ("messages answered", self.replied.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("lost", self.lost.to_string()),
            ("misrouted", self.misrouted.to_string()),
            ("agent runs", self.runs.to_string()),
            ("duplicate runs", self.duplicate_runs.to_string()),
            ("runs terminal", format!("{} ({} failed)", self.terminal_runs, self.failed_runs)),
            ("latency p50", format!("{:.2} s", self.percentile(0.5).as_secs_f64())),
            ("latency p99", format!("{:.2} s", self.percentile(0.99).as_secs_f64())),
            ("latency max", format!("{:.2} s", self.percentile(1.0).as_secs_f64())),
            ("restarts survived", format!("{faults} ({}) — clean: {survived}", per_kind.join(", "))),
            ("wall time", format!("{:.0} s", self.elapsed.as_secs_f64())),
        ];
        let mut out = String::from("| measure | value |\n|---|---|\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out
    }
}
