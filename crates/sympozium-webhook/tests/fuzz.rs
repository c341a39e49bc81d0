//! Fuzz targets for what reaches the webhook from outside: AdmissionReview bodies of the
//! four kinds it reviews, decoded as the server decodes them and put through the pure
//! decision functions, and resource quantities.
//!
//! Under `cargo test` each target runs for about a second on random input plus its
//! committed corpus (`tests/__fuzz__/<test name>/corpus`, real reviews); `make fuzz` runs them
//! under libFuzzer. Inputs are fed both as raw bytes and as edits of the seed documents
//! (`sympozium_testkit::fuzz`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};
use sympozium_api::{AgentRun, PersonaPack, SkillPack, SympoziumInstance, SympoziumPolicy};
use sympozium_testkit::fuzz;
use sympozium_webhook::{decide, escalation, instance, quantity};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__").join(target).join("corpus")
}

/// As the server decodes a body (`server::decode`).
fn decode<K: kube::Resource + serde::de::DeserializeOwned>(body: &[u8]) -> Option<AdmissionRequest<K>> {
    let review: AdmissionReview<K> = serde_json::from_slice(body).ok()?;
    review.try_into().ok()
}

/// A policy that exercises every rule of `decide::validate`.
fn strict_policy() -> Value {
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
        "metadata": {"name": "strict", "namespace": "team"},
        "spec": {"sandboxPolicy": {"required": false, "maxCPU": "2", "maxMemory": "4Gi",
                     "agentSandboxPolicy": {"required": false, "allowedRuntimeClasses": ["gvisor"]}},
                 "subagentPolicy": {"maxDepth": 2, "maxConcurrent": 3},
                 "toolGating": {"defaultAction": "allow", "rules": [{"tool": "execute_command", "action": "deny"}]},
                 "featureGates": {"code-execution": true, "sub-agents": false}}})
}

fn review_run(body: &[u8], policy: Option<&SympoziumPolicy>) {
    let Some(request) = decode::<AgentRun>(body) else { return };
    let Some(run) = request.object.as_ref() else { return };
    let _ = decide::needs_review(&request.operation, run, request.old_object.as_ref());
    let shape = decide::validate_shape(run);
    let verdict = policy.map(|p| decide::validate(run, p));
    if let Some(Err(message)) = &verdict {
        assert!(!message.to_string().is_empty(), "a denial says why");
    }
    // What the webhook decided must survive the object being written and read back:
    // a field lost or changed by serialization would let the stored run differ from the
    // reviewed one.
    let back: AgentRun = serde_json::from_value(serde_json::to_value(run).unwrap()).unwrap();
    assert_eq!(back.spec, run.spec, "AgentRun spec round trip");
    assert_eq!(decide::validate_shape(&back), shape);
    assert_eq!(policy.map(|p| decide::validate(&back, p)), verdict);
    if let Some(lifecycle) = &run.spec.lifecycle {
        let _ = escalation::rights(&lifecycle.rbac);
    }
}

fn review_others(body: &[u8], policy: Option<&SympoziumPolicy>) {
    if let Some(inst) = decode::<SympoziumInstance>(body).and_then(|r| r.object) {
        let refs = instance::references(&inst);
        if let Some(p) = policy {
            let _ = instance::denied_allowed_tools(&refs, p);
        }
        let back: SympoziumInstance = serde_json::from_value(serde_json::to_value(&inst).unwrap()).unwrap();
        assert_eq!(instance::references(&back), refs, "SympoziumInstance round trip");
    }
    if let Some(pack) = decode::<PersonaPack>(body).and_then(|r| r.object) {
        let refs = instance::pack_references(&pack);
        if let Some(p) = policy {
            let _ = instance::denied_allowed_tools(&refs, p);
        }
        for persona in &pack.spec.personas {
            let skills = escalation::persona_skills(persona);
            let unique: std::collections::BTreeSet<_> = skills.iter().collect();
            assert_eq!(unique.len(), skills.len(), "persona skills without duplicates");
        }
    }
    if let Some(sidecar) = decode::<SkillPack>(body).and_then(|r| r.object).and_then(|p| p.spec.sidecar) {
        let _ = escalation::rights(&sidecar.rbac);
        let _ = escalation::rights(&sidecar.cluster_rbac);
    }
}

#[test]
fn admission_review() {
    let seeds = fuzz::seeds(&corpus("admission_review"));
    assert!(seeds.len() >= 5, "the committed seed reviews are there");
    for seed in &seeds {
        let body = serde_json::to_vec(seed).unwrap();
        let decodes = decode::<AgentRun>(&body).is_some_and(|r| r.object.is_some())
            || decode::<SympoziumInstance>(&body).is_some_and(|r| r.object.is_some())
            || decode::<PersonaPack>(&body).is_some_and(|r| r.object.is_some())
            || decode::<SkillPack>(&body).is_some_and(|r| r.object.is_some());
        assert!(decodes, "seed review decodes with its object: {seed}");
    }
    let policy_seed = strict_policy();
    let strict: SympoziumPolicy = serde_json::from_value(policy_seed.clone()).unwrap();
    bolero::check!().for_each(|bytes: &[u8]| {
        // The raw body, as the server gets it.
        review_run(bytes, Some(&strict));
        review_others(bytes, Some(&strict));
        // Edits of the seed reviews, and of the policy they are checked against.
        let (a, b) = bytes.split_at(bytes.len() / 2);
        let doc = serde_json::to_vec(&fuzz::document(&seeds, a)).unwrap();
        let policy: Option<SympoziumPolicy> = serde_json::from_value(fuzz::mutate(&policy_seed, b)).ok();
        review_run(&doc, policy.as_ref().or(Some(&strict)));
        review_others(&doc, policy.as_ref());
    });
}

#[test]
fn resource_quantity() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Some(v) = quantity::parse(&text) {
            assert!(v.is_finite() && v >= 0.0, "{text:?} parsed to {v}");
        }
    });
}
