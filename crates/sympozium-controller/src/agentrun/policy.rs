//! Policy checks before a run starts, and the effective tool policy the runner enforces:
//! the SympoziumPolicy's tool gating, feature gates and allowed egress (the administrator's
//! layer), with the run's own tool policy, else the instance's (a persona's), as a second
//! layer (`own`) that can only narrow it: the runner takes the stricter of the two.

use serde_json::{Value, json};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::policy::ToolAction;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumPolicy};

/// Tools a feature gate switches off when the policy sets it to `false`.
pub const GATED_TOOLS: &[(&str, &[&str])] = &[
    ("code-execution", &["execute_command"]),
    ("file-access", &["read_file", "write_file", "edit_file", "list_directory"]),
    ("sub-agents", &["spawn_subagent"]),
    // The agent's only way to browse the web.
    ("browser-automation", &["fetch_url"]),
];

/// Why a run may not start yet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// The policy requires a sandbox the run does not have.
    #[error(
        "policy validation failed: sandbox is required by policy \"{0}\" (sandboxPolicy.required): set spec.sandbox.enabled to true on the run, or spec.agents.default.sandbox.enabled on its SympoziumInstance (spec.sandbox.enabled on a PersonaPack)"
    )]
    SandboxRequired(String),
    /// A sub-agent deeper than the policy allows.
    #[error("policy validation failed: spawn depth {depth} exceeds the policy's maxDepth {max}")]
    TooDeep {
        /// The run's depth.
        depth: i32,
        /// The policy's `maxDepth`.
        max: i32,
    },
    /// The policy's limit on running runs of the instance is reached.
    #[error("waiting for a slot: {running}/{max} runs of this instance are running (policy maxConcurrent)")]
    PolicySlots {
        /// Runs of the instance running now.
        running: usize,
        /// The policy's `maxConcurrent`.
        max: i32,
    },
    /// The instance's limit on running sub-agents is reached.
    #[error(
        "waiting for a slot: {running}/{max} sub-agents of instance {instance} are running (subagents maxConcurrent)"
    )]
    SubagentSlots {
        /// Sub-agents running now.
        running: usize,
        /// The instance's `subagents.maxConcurrent`.
        max: i32,
        /// The instance.
        instance: String,
    },
}

/// Why a run may not start (the message goes to `status.error`). The sandbox a policy
/// requires is the run's effective one (its own `spec.sandbox`, else its instance's
/// `agents.default.sandbox`): checked here too, because the admission webhook is optional.
pub fn validate(
    run: &AgentRun,
    instance: Option<&SympoziumInstance>,
    policy: Option<&SympoziumPolicy>,
) -> Result<(), PolicyRefusal> {
    let Some(policy) = policy else { return Ok(()) };
    let required = policy.spec.sandbox_policy.as_ref().is_some_and(|s| s.required);
    if required && super::sandbox_container::effective(run, instance).is_none() {
        return Err(PolicyRefusal::SandboxRequired(policy.metadata.name.clone().unwrap_or_default()));
    }
    if let Some(sub) = &policy.spec.subagent_policy
        && let Some(parent) = &run.spec.parent
        && sub.max_depth > 0
        && parent.spawn_depth > sub.max_depth
    {
        return Err(PolicyRefusal::TooDeep { depth: parent.spawn_depth, max: sub.max_depth });
    }
    Ok(())
}

/// Whether a concurrency limit applies to `run` at all (the policy's sub-agent limit, or
/// the instance's for a sub-agent). Only then do its siblings have to be counted.
pub fn concurrency_limited(
    run: &AgentRun,
    instance: Option<&SympoziumInstance>,
    policy: Option<&SympoziumPolicy>,
) -> bool {
    let by_policy =
        policy.and_then(|p| p.spec.subagent_policy.as_ref()).is_some_and(|s| s.max_concurrent > 0);
    let limit =
        instance.and_then(|i| i.spec.agents.default.subagents.as_ref()).map_or(0, |s| s.max_concurrent);
    by_policy || (run.spec.parent.is_some() && limit > 0)
}

/// Whether the concurrency limits leave room for `run` now; `Err` says why it waits. Two
/// limits apply: the policy's `subagentPolicy.maxConcurrent` (runs of the instance) and,
/// for a sub-agent, the instance's `subagents.maxConcurrent` (its running sub-agents).
pub fn concurrency_slot(
    run: &AgentRun,
    instance: Option<&SympoziumInstance>,
    policy: Option<&SympoziumPolicy>,
    siblings: &[AgentRun],
) -> Result<(), PolicyRefusal> {
    let running = |r: &&AgentRun| {
        r.metadata.name != run.metadata.name
            && r.status.as_ref().and_then(|s| s.phase) == Some(AgentRunPhase::Running)
    };
    if let Some(sub) = policy.and_then(|p| p.spec.subagent_policy.as_ref()) {
        let n = siblings.iter().filter(running).count();
        if sub.max_concurrent > 0 && i32::try_from(n).unwrap_or(i32::MAX) >= sub.max_concurrent {
            return Err(PolicyRefusal::PolicySlots { running: n, max: sub.max_concurrent });
        }
    }
    let limit =
        instance.and_then(|i| i.spec.agents.default.subagents.as_ref()).map_or(0, |s| s.max_concurrent);
    if run.spec.parent.is_some() && limit > 0 {
        // A run's own ancestors wait for it: counting them would let a sub-agent that spawns
        // one of its own block itself for ever.
        let ancestors = ancestors(run, siblings);
        let n = siblings
            .iter()
            .filter(running)
            .filter(|r| r.spec.parent.is_some())
            .filter(|r| !r.metadata.name.as_ref().is_some_and(|n| ancestors.contains(n)))
            .count();
        if i32::try_from(n).unwrap_or(i32::MAX) >= limit {
            return Err(PolicyRefusal::SubagentSlots {
                running: n,
                max: limit,
                instance: run.spec.instance_ref.clone(),
            });
        }
    }
    Ok(())
}

/// Names of `run`'s parent, its parent's parent, … as far as `runs` knows them.
fn ancestors(run: &AgentRun, runs: &[AgentRun]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = run.spec.parent.as_ref().map(|p| p.run_name.clone());
    while let Some(name) = next.take() {
        if out.contains(&name) {
            break; // a cycle in hand-written parents
        }
        next = runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|r| r.spec.parent.as_ref())
            .map(|p| p.run_name.clone());
        out.push(name);
    }
    out
}

/// The runner's `TOOL_POLICY` JSON, or `None` when nothing restricts tools.
pub fn effective_tool_policy(
    run: &AgentRun,
    instance: Option<&SympoziumInstance>,
    policy: Option<&SympoziumPolicy>,
) -> Option<String> {
    let own = run
        .spec
        .tool_policy
        .clone()
        .or_else(|| instance.and_then(|i| i.spec.agents.default.tool_policy.clone()));
    let mut allow: Vec<String> = Vec::new();
    let mut deny: Vec<String> = Vec::new();
    let mut ask: Vec<String> = Vec::new();
    let mut default_action = None;
    let mut egress = Vec::new();
    if let Some(policy) = policy {
        if let Some(gating) = &policy.spec.tool_gating {
            default_action = Some(gating.default_action);
            for rule in &gating.rules {
                match rule.action {
                    ToolAction::Deny => deny.push(rule.tool.clone()),
                    ToolAction::Ask => ask.push(rule.tool.clone()),
                    // An explicit allow only matters when the default would refuse the tool.
                    ToolAction::Allow if gating.default_action != ToolAction::Allow => {
                        allow.push(rule.tool.clone())
                    }
                    ToolAction::Allow => {}
                }
            }
        }
        for (gate, tools) in GATED_TOOLS {
            if policy.spec.feature_gates.as_ref().and_then(|g| g.get(*gate)) == Some(&false) {
                deny.extend(tools.iter().map(|t| t.to_string()));
            }
        }
        if let Some(net) = &policy.spec.network_policy {
            egress = net.allowed_egress.iter().map(|e| json!({"host": e.host, "port": e.port})).collect();
        }
    }
    let own = own.filter(|p| !p.allow.is_empty() || !p.deny.is_empty());
    if allow.is_empty()
        && deny.is_empty()
        && ask.is_empty()
        && default_action.is_none()
        && egress.is_empty()
        && own.is_none()
    {
        return None;
    }
    let mut v = json!({"allow": allow, "deny": deny, "ask": ask});
    if let Some(own) = own {
        v["own"] = json!({"allow": own.allow, "deny": own.deny});
    }
    if let Some(action) = default_action {
        v["defaultAction"] = serde_json::to_value(action).unwrap_or(Value::Null);
    }
    if !egress.is_empty() {
        v["allowedEgress"] = Value::Array(egress);
    }
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run(spec_extra: Value) -> AgentRun {
        let mut spec = json!({"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
            "model": {"provider": "openai", "model": "m", "authSecretRef": ""}});
        spec.as_object_mut().unwrap().extend(spec_extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r", "namespace": "n"}, "spec": spec}))
        .unwrap()
    }

    fn policy(spec: Value) -> SympoziumPolicy {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
            "metadata": {"name": "p"}, "spec": spec}))
        .unwrap()
    }

    #[test]
    fn restrictive_policy_becomes_runner_rules() {
        let p = policy(json!({"toolGating": {"defaultAction": "deny", "rules": [
            {"tool": "execute_command", "action": "ask"}, {"tool": "read_file", "action": "allow"},
            {"tool": "write_file", "action": "deny"}]},
            "networkPolicy": {"allowedEgress": [{"host": "api.github.com", "port": 443}]}}));
        let v: Value =
            serde_json::from_str(&effective_tool_policy(&run(json!({})), None, Some(&p)).unwrap()).unwrap();
        assert_eq!(v["defaultAction"], "deny");
        assert_eq!(v["ask"], json!(["execute_command"]));
        assert_eq!(v["allow"], json!(["read_file"]));
        assert_eq!(v["deny"], json!(["write_file"]));
        assert_eq!(v["allowedEgress"][0]["host"], "api.github.com");
    }

    #[test]
    fn disabled_feature_gates_deny_their_tools() {
        let p = policy(json!({"featureGates": {"file-access": false, "browser-automation": false,
            "code-execution": true, "sub-agents": false}}));
        let v: Value =
            serde_json::from_str(&effective_tool_policy(&run(json!({})), None, Some(&p)).unwrap()).unwrap();
        assert_eq!(
            v["deny"],
            json!(["read_file", "write_file", "edit_file", "list_directory", "spawn_subagent", "fetch_url"])
        );
    }

    #[test]
    fn run_policy_wins_over_the_instance_and_nothing_means_none() {
        let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "i"},
            "spec": {"agents": {"default": {"model": "m", "toolPolicy": {"allow": ["read_file"]}}}}}))
        .unwrap();
        let v: Value =
            serde_json::from_str(&effective_tool_policy(&run(json!({})), Some(&inst), None).unwrap())
                .unwrap();
        assert_eq!(v["own"]["allow"], json!(["read_file"]), "the persona's policy reaches the run");
        let own = run(json!({"toolPolicy": {"deny": ["fetch_url"]}}));
        let v: Value =
            serde_json::from_str(&effective_tool_policy(&own, Some(&inst), None).unwrap()).unwrap();
        assert_eq!((v["own"]["allow"].clone(), v["own"]["deny"].clone()), (json!([]), json!(["fetch_url"])));
        assert_eq!(effective_tool_policy(&run(json!({})), None, None), None);
    }

    #[test]
    fn the_run_policy_is_a_separate_layer_that_cannot_widen_the_gating() {
        let p = policy(json!({"toolGating": {"defaultAction": "deny", "rules": [
            {"tool": "read_file", "action": "allow"}]}}));
        let greedy = run(json!({"toolPolicy": {"allow": ["*", "execute_command"]}}));
        let v: Value =
            serde_json::from_str(&effective_tool_policy(&greedy, None, Some(&p)).unwrap()).unwrap();
        assert_eq!(v["allow"], json!(["read_file"]), "only the administrator's allow is top level");
        assert_eq!(v["defaultAction"], "deny");
        assert_eq!(v["own"]["allow"], json!(["*", "execute_command"]));
    }

    #[test]
    fn depth_and_concurrency_limits() {
        let p = policy(json!({"subagentPolicy": {"maxDepth": 2, "maxConcurrent": 1}}));
        let child = run(json!({"parent": {"runName": "p", "sessionKey": "s", "spawnDepth": 3}}));
        assert!(validate(&child, None, Some(&p)).unwrap_err().to_string().contains("spawn depth 3"));
        let mut busy = run(json!({}));
        busy.metadata.name = Some("other".into());
        busy.status =
            Some(sympozium_api::AgentRunStatus { phase: Some(AgentRunPhase::Running), ..Default::default() });
        assert!(validate(&run(json!({})), None, Some(&p)).is_ok(), "busy is not invalid");
        assert!(
            concurrency_slot(&run(json!({})), None, Some(&p), &[busy])
                .unwrap_err()
                .to_string()
                .contains("1/1 runs")
        );
        assert!(validate(&run(json!({})), None, None).is_ok());
    }

    #[test]
    fn a_required_sandbox_is_the_runs_own_or_its_instances() {
        let p = policy(json!({"sandboxPolicy": {"required": true}}));
        let refused = validate(&run(json!({})), None, Some(&p)).unwrap_err().to_string();
        assert!(refused.contains("sandbox is required by policy \"p\""), "{refused}");
        assert!(refused.contains("spec.agents.default.sandbox.enabled"), "{refused}");
        assert!(validate(&run(json!({"sandbox": {"enabled": true}})), None, Some(&p)).is_ok());
        let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "i"},
            "spec": {"agents": {"default": {"model": "m", "sandbox": {"enabled": true}}}}}))
        .unwrap();
        assert!(validate(&run(json!({})), Some(&inst), Some(&p)).is_ok(), "inherited from the instance");
        let isolated = run(json!({"agentSandbox": {"enabled": true}}));
        assert!(
            validate(&isolated, Some(&inst), Some(&p)).is_err(),
            "agent-sandbox mode has no sandbox container"
        );
    }
}
