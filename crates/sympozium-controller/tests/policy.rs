//! The SympoziumPolicy controller on the real test control plane: `boundInstances` follows
//! instances as they are created, switch policies and are deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_api::{SympoziumInstance, SympoziumPolicy};
use sympozium_controller::context::Context;
use sympozium_controller::policy;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(30);

async fn instance(client: &Client, ns: &str, name: &str, policy: &str) {
    let api: Api<SympoziumInstance> = Api::namespaced(client.clone(), ns);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": name},
        "spec": {"agents": {"default": {"model": "m"}}, "policyRef": policy}});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

async fn bound(api: &Api<SympoziumPolicy>, name: &str, n: i32) {
    let what = format!("{name} bound to {n}");
    wait_for(api, name, &what, WAIT, move |p: Option<&SympoziumPolicy>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.bound_instances == n && !s.conditions.is_empty())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn bound_instances_follow_instances() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "policy").await.unwrap().name().to_string();
    let ctx = Context::new(client.clone(), Settings::default(), Metrics::default(), Some(ns.clone()), "test");
    let task = tokio::spawn(policy::run(Arc::new(ctx)));
    let policies: Api<SympoziumPolicy> = Api::namespaced(client.clone(), &ns);
    for name in ["strict", "loose"] {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
            "metadata": {"name": name}, "spec": {}});
        policies.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
    }
    bound(&policies, "strict", 0).await;

    instance(&client, &ns, "a", "strict").await;
    instance(&client, &ns, "b", "strict").await;
    bound(&policies, "strict", 2).await;
    let p = policies.get("strict").await.unwrap();
    assert_eq!(p.status.unwrap().conditions[0].status, "True");

    instance(&client, &ns, "b", "loose").await;
    bound(&policies, "strict", 1).await;
    bound(&policies, "loose", 1).await;

    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    instances.delete("a", &DeleteParams::default()).await.unwrap();
    bound(&policies, "strict", 0).await;
    assert_eq!(policies.get("strict").await.unwrap().status.unwrap().conditions[0].reason, "Unbound");
    task.abort();
}
