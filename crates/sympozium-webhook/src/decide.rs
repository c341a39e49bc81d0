//! The admission decision for AgentRuns, as pure functions: which requests are reviewed
//! and what a policy forbids, with messages that say what to change.
//!
//! Checks, in order (first failure wins): agent-sandbox consistency (always, with or
//! without a policy), sandbox required, resource ceilings (`maxCPU`, `maxMemory`), sub-agent depth, tool policy, feature gates,
//! agent-sandbox requirements. The depth rule matches the controller's: depth counts from
//! 1 and a run is allowed while `spawnDepth <= maxDepth` (`maxDepth: 0` means no limit).

use kube::core::admission::Operation;

use crate::quantity;
use sympozium_api::agentrun::RunMode;
use sympozium_api::policy::{SandboxPolicy, ToolAction};
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumPolicy};

/// Feature gate that allows `spec.sandbox` (code execution in a sandbox container).
pub const GATE_CODE_EXECUTION: &str = "code-execution";
/// Feature gate that allows sub-agent runs (`spec.parent`).
pub const GATE_SUB_AGENTS: &str = "sub-agents";

/// Whether a request is reviewed at all: every CREATE; an UPDATE only when the spec
/// changed and the run is not being deleted (finalizer removal, status and metadata
/// updates of runs — including runs whose instance is gone — always pass); never DELETE.
pub fn needs_review(op: &Operation, run: &AgentRun, old: Option<&AgentRun>) -> bool {
    match op {
        Operation::Create => true,
        Operation::Update => {
            run.metadata.deletion_timestamp.is_none() && old.is_none_or(|o| o.spec != run.spec)
        }
        Operation::Delete | Operation::Connect => false,
    }
}

fn sandbox_enabled(run: &AgentRun) -> bool {
    run.spec.sandbox.as_ref().is_some_and(|s| s.enabled)
}

fn agent_sandbox_enabled(run: &AgentRun) -> bool {
    run.spec.agent_sandbox.as_ref().is_some_and(|s| s.enabled)
}

/// The run as the controller will start it: an instance's `agents.default.sandbox` gives
/// each of its runs the sandbox container unless the run chose agent-sandbox mode for
/// itself (the controller's rule), so a policy requiring a sandbox judges what will run.
pub fn with_instance_sandbox(run: &AgentRun, instance: &SympoziumInstance) -> AgentRun {
    let mut effective = run.clone();
    let inherited = instance.spec.agents.default.sandbox.as_ref().is_some_and(|s| s.enabled);
    if inherited && !sandbox_enabled(run) && !agent_sandbox_enabled(run) {
        effective.spec.sandbox.get_or_insert_with(Default::default).enabled = true;
    }
    effective
}

/// The refusal for a run without a sandbox under a policy that requires one.
pub fn sandbox_required_message(policy: &str) -> String {
    format!(
        "sandbox is required by policy \"{policy}\" (sandboxPolicy.required): set spec.sandbox.enabled to true on the run, or spec.agents.default.sandbox.enabled on its SympoziumInstance (spec.sandbox.enabled on a PersonaPack)"
    )
}

/// Why a run is refused; the message says which field to change and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Both isolation modes at once.
    #[error("spec.sandbox and spec.agentSandbox cannot both be enabled: choose one isolation mode")]
    BothSandboxes,
    /// agent-sandbox for a serving run.
    #[error("spec.agentSandbox cannot be used with mode: server")]
    AgentSandboxServer,
    /// The policy requires a sandbox the run does not enable.
    #[error("{}", sandbox_required_message(.0))]
    SandboxRequired(String),
    /// Deeper than the policy's `maxDepth`.
    #[error("spawn depth {depth} exceeds maxDepth {max} of policy \"{policy}\"")]
    TooDeep {
        /// The run's depth.
        depth: i32,
        /// The policy's `maxDepth`.
        max: i32,
        /// The policy.
        policy: String,
    },
    /// A tool the policy denies is in the run's allow list.
    #[error("tool \"{tool}\" is denied by policy \"{policy}\" but listed in spec.toolPolicy.allow")]
    DeniedTool {
        /// The tool.
        tool: String,
        /// The policy.
        policy: String,
    },
    /// A feature gate the policy turns off.
    #[error("feature gate {gate} is disabled by policy \"{policy}\": {what}")]
    GateOff {
        /// The gate.
        gate: &'static str,
        /// The policy.
        policy: String,
        /// What the run may not do.
        what: &'static str,
    },
    /// The policy requires agent-sandbox mode.
    #[error("agent-sandbox mode is required by policy \"{0}\": set spec.agentSandbox.enabled to true")]
    AgentSandboxRequired(String),
    /// A runtime class outside the policy's list.
    #[error("runtime class \"{class}\" is not allowed by policy \"{policy}\" (allowed: {allowed})")]
    RuntimeClass {
        /// The class asked for.
        class: String,
        /// The policy.
        policy: String,
        /// The allowed classes, comma-separated.
        allowed: String,
    },
    /// A resource value that is not a quantity.
    #[error("{path}: \"{value}\" is not a resource quantity")]
    NotAQuantity {
        /// The field.
        path: String,
        /// Its value.
        value: String,
    },
    /// A resource value above the policy's ceiling.
    #[error("{path} \"{value}\" exceeds {ceiling_field} \"{ceiling}\" of policy \"{policy}\"")]
    OverCeiling {
        /// The field.
        path: String,
        /// Its value.
        value: String,
        /// `maxCPU` or `maxMemory`.
        ceiling_field: &'static str,
        /// The ceiling.
        ceiling: String,
        /// The policy.
        policy: String,
    },
}

/// Rules that hold with or without a policy.
pub fn validate_shape(run: &AgentRun) -> Result<(), Refusal> {
    if sandbox_enabled(run) && agent_sandbox_enabled(run) {
        return Err(Refusal::BothSandboxes);
    }
    if agent_sandbox_enabled(run) && run.spec.mode == RunMode::Server {
        return Err(Refusal::AgentSandboxServer);
    }
    Ok(())
}

/// Whether `policy` allows `run`; the error says which field to change and why.
pub fn validate(run: &AgentRun, policy: &SympoziumPolicy) -> Result<(), Refusal> {
    validate_shape(run)?;
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let spec = &policy.spec;
    let sandbox = spec.sandbox_policy.as_ref();
    if sandbox.is_some_and(|s| s.required) && !sandbox_enabled(run) {
        return Err(Refusal::SandboxRequired(name.to_string()));
    }
    if let Some(sandbox) = sandbox {
        check_ceilings(run, sandbox, name)?;
    }
    if let (Some(sub), Some(parent)) = (&spec.subagent_policy, &run.spec.parent)
        && sub.max_depth > 0
        && parent.spawn_depth > sub.max_depth
    {
        return Err(Refusal::TooDeep {
            depth: parent.spawn_depth,
            max: sub.max_depth,
            policy: name.to_string(),
        });
    }
    if let (Some(gating), Some(tools)) = (&spec.tool_gating, &run.spec.tool_policy) {
        let denied = gating
            .rules
            .iter()
            .filter(|r| r.action == ToolAction::Deny)
            .find(|r| tools.allow.contains(&r.tool));
        if let Some(rule) = denied {
            return Err(Refusal::DeniedTool { tool: rule.tool.clone(), policy: name.to_string() });
        }
    }
    let gate_off = |gate: &str| spec.feature_gates.as_ref().and_then(|g| g.get(gate)) == Some(&false);
    if gate_off(GATE_CODE_EXECUTION) && sandbox_enabled(run) {
        return Err(Refusal::GateOff {
            gate: GATE_CODE_EXECUTION,
            policy: name.to_string(),
            what: "spec.sandbox cannot be enabled",
        });
    }
    if gate_off(GATE_SUB_AGENTS) && run.spec.parent.is_some() {
        return Err(Refusal::GateOff {
            gate: GATE_SUB_AGENTS,
            policy: name.to_string(),
            what: "sub-agent runs (spec.parent) are not allowed",
        });
    }
    if let Some(agent_sandbox) = sandbox.and_then(|s| s.agent_sandbox_policy.as_ref()) {
        if agent_sandbox.required && !agent_sandbox_enabled(run) {
            return Err(Refusal::AgentSandboxRequired(name.to_string()));
        }
        let class = run
            .spec
            .agent_sandbox
            .as_ref()
            .filter(|a| a.enabled)
            .and_then(|a| a.runtime_class.as_deref())
            .filter(|c| !c.is_empty());
        if let Some(class) = class
            && !agent_sandbox.allowed_runtime_classes.is_empty()
            && !agent_sandbox.allowed_runtime_classes.iter().any(|c| c == class)
        {
            return Err(Refusal::RuntimeClass {
                class: class.to_string(),
                policy: name.to_string(),
                allowed: agent_sandbox.allowed_runtime_classes.join(", "),
            });
        }
    }
    Ok(())
}

/// `maxCPU` / `maxMemory`: no sandbox request or limit may exceed the policy's ceiling.
fn check_ceilings(run: &AgentRun, sandbox: &SandboxPolicy, policy: &str) -> Result<(), Refusal> {
    let sets = [
        ("spec.sandbox", run.spec.sandbox.as_ref().and_then(|s| s.resources.as_ref())),
        ("spec.agentSandbox", run.spec.agent_sandbox.as_ref().and_then(|s| s.resources.as_ref())),
    ];
    let ceilings = [
        ("cpu", "maxCPU", sandbox.max_cpu.as_deref()),
        ("memory", "maxMemory", sandbox.max_memory.as_deref()),
    ];
    for (field, resources) in sets {
        let Some(resources) = resources else { continue };
        for (kind, values) in [("requests", &resources.requests), ("limits", &resources.limits)] {
            for (resource, ceiling_field, ceiling) in ceilings {
                let (Some(value), Some(ceiling)) = (values.as_ref().and_then(|v| v.get(resource)), ceiling)
                else {
                    continue;
                };
                let Some(max) = quantity::parse(ceiling) else { continue };
                let path = format!("{field}.resources.{kind}.{resource}");
                match quantity::parse(value) {
                    None => return Err(Refusal::NotAQuantity { path, value: value.to_string() }),
                    Some(v) if v > max => {
                        return Err(Refusal::OverCeiling {
                            path,
                            value: value.to_string(),
                            ceiling_field,
                            ceiling: ceiling.to_string(),
                            policy: policy.to_string(),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
