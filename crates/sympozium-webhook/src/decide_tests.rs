#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};

use super::*;

fn run(extra: Value) -> AgentRun {
    let mut spec = json!({"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
        "model": {"provider": "openai", "model": "m", "authSecretRef": ""}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "n"}, "spec": spec}))
    .unwrap()
}

fn policy(spec: Value) -> SympoziumPolicy {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
        "metadata": {"name": "p"}, "spec": spec}))
    .unwrap()
}

fn denied(r: &AgentRun, p: &SympoziumPolicy) -> String {
    validate(r, p).unwrap_err().to_string()
}

#[test]
fn an_ordinary_run_passes_an_empty_policy_and_the_built_in_restrictive_one() {
    assert!(validate(&run(json!({})), &policy(json!({}))).is_ok());
    let builtin: Vec<SympoziumPolicy> = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/builtin/sympoziumpolicies.yaml"),
    )
    .map(|text| {
        text.split("\n---")
            .filter(|d| d.contains("kind: SympoziumPolicy"))
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect()
    })
    .unwrap();
    assert_eq!(builtin.len(), 3);
    for p in &builtin {
        let r = if p.spec.sandbox_policy.as_ref().is_some_and(|s| s.required) {
            run(json!({"sandbox": {"enabled": true}}))
        } else {
            run(json!({}))
        };
        assert!(
            validate(&r, p).is_ok(),
            "{:?} rejects an ordinary run: {:?}",
            p.metadata.name,
            validate(&r, p)
        );
    }
}

#[test]
fn sandbox_rules() {
    let p = policy(json!({"sandboxPolicy": {"required": true}}));
    let refused = denied(&run(json!({})), &p);
    assert!(refused.starts_with("sandbox is required by policy \"p\" (sandboxPolicy.required)"), "{refused}");
    assert!(
        refused.contains("spec.sandbox.enabled") && refused.contains("spec.agents.default.sandbox.enabled")
    );
    assert!(validate(&run(json!({"sandbox": {"enabled": true}})), &p).is_ok());
    let both = run(json!({"sandbox": {"enabled": true}, "agentSandbox": {"enabled": true}}));
    assert!(denied(&both, &policy(json!({}))).contains("cannot both be enabled"));
    assert!(validate_shape(&both).is_err(), "holds without a policy too");
    let server = run(json!({"mode": "server", "agentSandbox": {"enabled": true}}));
    assert!(denied(&server, &policy(json!({}))).contains("mode: server"));
}

#[test]
fn resource_ceilings() {
    let p = policy(json!({"sandboxPolicy": {"required": false, "maxCPU": "2", "maxMemory": "4Gi"}}));
    let with = |res: Value| run(json!({"sandbox": {"enabled": true, "resources": res}}));
    assert!(validate(&with(json!({"limits": {"cpu": "1500m", "memory": "4Gi"}})), &p).is_ok());
    assert_eq!(
        denied(&with(json!({"limits": {"cpu": "4"}})), &p),
        "spec.sandbox.resources.limits.cpu \"4\" exceeds maxCPU \"2\" of policy \"p\""
    );
    assert!(
        denied(&with(json!({"requests": {"memory": "5G"}})), &p)
            .contains("requests.memory \"5G\" exceeds maxMemory")
    );
    assert!(denied(&with(json!({"limits": {"memory": "lots"}})), &p).contains("is not a resource quantity"));
    let agent = run(json!({"agentSandbox": {"enabled": true, "resources": {"limits": {"cpu": "3"}}}}));
    assert!(denied(&agent, &p).starts_with("spec.agentSandbox.resources.limits.cpu"));
}

#[test]
fn agent_sandbox_rules() {
    let p = policy(json!({"sandboxPolicy": {"required": false, "agentSandboxPolicy": {"required": true,
        "allowedRuntimeClasses": ["gvisor", "kata"]}}}));
    assert!(denied(&run(json!({})), &p).starts_with("agent-sandbox mode is required by policy \"p\""));
    let runc = run(json!({"agentSandbox": {"enabled": true, "runtimeClass": "runc"}}));
    assert_eq!(
        denied(&runc, &p),
        "runtime class \"runc\" is not allowed by policy \"p\" (allowed: gvisor, kata)"
    );
    assert!(validate(&run(json!({"agentSandbox": {"enabled": true, "runtimeClass": "kata"}})), &p).is_ok());
    assert!(validate(&run(json!({"agentSandbox": {"enabled": true}})), &p).is_ok(), "default class");
}

#[test]
fn depth_counts_from_one_and_is_allowed_up_to_max_depth() {
    let p = policy(json!({"subagentPolicy": {"maxDepth": 2, "maxConcurrent": 5}}));
    let at = |d: i32| run(json!({"parent": {"runName": "x", "sessionKey": "s", "spawnDepth": d}}));
    assert!(validate(&at(1), &p).is_ok());
    assert!(validate(&at(2), &p).is_ok(), "depth == maxDepth is allowed (as in the controller)");
    assert_eq!(denied(&at(3), &p), "spawn depth 3 exceeds maxDepth 2 of policy \"p\"");
    let unlimited = policy(json!({"subagentPolicy": {"maxDepth": 0, "maxConcurrent": 5}}));
    assert!(validate(&at(50), &unlimited).is_ok());
}

#[test]
fn tool_and_feature_gates() {
    let p = policy(
        json!({"toolGating": {"defaultAction": "allow", "rules": [{"tool": "write_file", "action": "deny"},
        {"tool": "execute_command", "action": "ask"}]},
        "featureGates": {"code-execution": false, "sub-agents": false, "file-access": true}}),
    );
    let allow = run(json!({"toolPolicy": {"allow": ["read_file", "write_file"]}}));
    assert_eq!(
        denied(&allow, &p),
        "tool \"write_file\" is denied by policy \"p\" but listed in spec.toolPolicy.allow"
    );
    assert!(
        validate(&run(json!({"toolPolicy": {"allow": ["execute_command"], "deny": ["write_file"]}})), &p)
            .is_ok()
    );
    assert!(
        denied(&run(json!({"sandbox": {"enabled": true}})), &p).starts_with("feature gate code-execution")
    );
    let child = run(json!({"parent": {"runName": "x", "sessionKey": "s", "spawnDepth": 1}}));
    assert!(denied(&child, &p).starts_with("feature gate sub-agents"));
}

#[test]
fn only_spec_changes_are_reviewed() {
    let r = run(json!({}));
    assert!(needs_review(&Operation::Create, &r, None));
    assert!(!needs_review(&Operation::Delete, &r, None));
    let mut finalizer_removed = r.clone();
    finalizer_removed.metadata.finalizers = None;
    assert!(!needs_review(&Operation::Update, &finalizer_removed, Some(&r)), "metadata-only update");
    let changed = run(json!({"task": "other"}));
    assert!(needs_review(&Operation::Update, &changed, Some(&r)));
    let mut deleting = changed.clone();
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    assert!(!needs_review(&Operation::Update, &deleting, Some(&r)));
}
