//! The built-in policies as shipped: each admits an ordinary run — `restrictive` once the
//! run's instance turns the sandbox container on, which is what it requires — while the
//! restrictions they exist for still hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde::Deserialize;
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumPolicy};
use sympozium_webhook::decide::{validate, with_instance_sandbox};

fn builtin() -> Vec<SympoziumPolicy> {
    let path = sympozium_testkit::repo_root().join("deploy/builtin/sympoziumpolicies.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| SympoziumPolicy::deserialize(d).unwrap()).collect()
}

fn restrictive() -> SympoziumPolicy {
    builtin().into_iter().find(|p| p.metadata.name.as_deref() == Some("restrictive")).unwrap()
}

fn run(extra: serde_json::Value) -> AgentRun {
    let mut spec = json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "channel-telegram-1",
        "task": "why is checkout slow?", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "team"}, "spec": spec}))
    .unwrap()
}

fn instance(sandbox: bool) -> SympoziumInstance {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "agent", "namespace": "team"},
        "spec": {"agents": {"default": {"model": "gpt-4o", "sandbox": {"enabled": sandbox}}}}}))
    .unwrap()
}

#[test]
fn every_builtin_policy_admits_an_ordinary_run_of_a_sandboxed_instance() {
    let policies = builtin();
    assert_eq!(policies.len(), 3);
    for p in &policies {
        assert_eq!(
            validate(&with_instance_sandbox(&run(json!({})), &instance(true)), p),
            Ok(()),
            "{} refuses an ordinary run of a sandboxed instance",
            p.metadata.name.clone().unwrap()
        );
    }
    for p in policies.iter().filter(|p| p.metadata.name.as_deref() != Some("restrictive")) {
        assert_eq!(validate(&with_instance_sandbox(&run(json!({})), &instance(false)), p), Ok(()));
    }
}

#[test]
fn restrictive_requires_the_sandbox_container() {
    let refused = validate(&with_instance_sandbox(&run(json!({})), &instance(false)), &restrictive())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("sandbox is required by policy \"restrictive\""), "{refused}");
    assert!(refused.contains("spec.sandbox.enabled"), "{refused}");
    assert!(refused.contains("spec.agents.default.sandbox.enabled"), "{refused}");
    assert_eq!(validate(&run(json!({"sandbox": {"enabled": true}})), &restrictive()), Ok(()));
    // A run that chose agent-sandbox mode does not silently get the instance's container.
    let isolated = run(json!({"agentSandbox": {"enabled": true}}));
    assert!(with_instance_sandbox(&isolated, &instance(true)).spec.sandbox.is_none());
}

#[test]
fn restrictive_still_restricts() {
    let restrictive = restrictive();
    let allow_write = run(json!({"sandbox": {"enabled": true}, "toolPolicy": {"allow": ["write_file"]}}));
    assert!(
        validate(&allow_write, &restrictive).unwrap_err().to_string().contains("write_file"),
        "a denied tool cannot be allowed"
    );
    let deep = run(
        json!({"sandbox": {"enabled": true}, "parent": {"runName": "p", "sessionKey": "s", "spawnDepth": 3}}),
    );
    assert!(validate(&deep, &restrictive).is_err(), "sub-agent depth is limited");
    let gating = restrictive.spec.tool_gating.unwrap();
    assert_eq!(serde_json::to_value(gating.default_action).unwrap(), "deny");
    assert!(restrictive.spec.network_policy.unwrap().deny_all);
}
