//! The built-in policies as shipped: each admits an ordinary run (one no creator has
//! specially prepared — the original's `restrictive` refused every such run), while the
//! restrictions they exist for still hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde::Deserialize;
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumPolicy};
use sympozium_webhook::decide::validate;

fn builtin() -> Vec<SympoziumPolicy> {
    let path = sympozium_testkit::repo_root().join("deploy/builtin/sympoziumpolicies.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| SympoziumPolicy::deserialize(d).unwrap()).collect()
}

fn run(extra: serde_json::Value) -> AgentRun {
    let mut spec = json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "channel-telegram-1",
        "task": "why is checkout slow?", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "team"}, "spec": spec}))
    .unwrap()
}

#[test]
fn every_builtin_policy_admits_an_ordinary_run() {
    let policies = builtin();
    assert_eq!(policies.len(), 3);
    for p in &policies {
        assert_eq!(
            validate(&run(json!({})), p),
            Ok(()),
            "{} refuses an ordinary run",
            p.metadata.name.clone().unwrap()
        );
    }
}

#[test]
fn restrictive_still_restricts() {
    let restrictive =
        builtin().into_iter().find(|p| p.metadata.name.as_deref() == Some("restrictive")).unwrap();
    let allow_write = run(json!({"toolPolicy": {"allow": ["write_file"]}}));
    assert!(
        validate(&allow_write, &restrictive).unwrap_err().contains("write_file"),
        "a denied tool cannot be allowed"
    );
    let deep = run(json!({"parent": {"runName": "p", "sessionKey": "s", "spawnDepth": 3}}));
    assert!(validate(&deep, &restrictive).is_err(), "sub-agent depth is limited");
    let gating = restrictive.spec.tool_gating.unwrap();
    assert_eq!(serde_json::to_value(gating.default_action).unwrap(), "deny");
    assert!(restrictive.spec.network_policy.unwrap().deny_all);
}
