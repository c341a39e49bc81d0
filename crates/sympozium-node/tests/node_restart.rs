//! A claim's data outlives a restart of the node process: stopped with SIGTERM while a pod
//! using the claim runs, started again with the same state directory, a new pod finds it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use support::*;
use sympozium_testkit::TestPlane;

const WAIT: Duration = Duration::from_secs(90);

fn pod(name: &str, script: &str) -> serde_json::Value {
    json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
}

#[tokio::test]
async fn a_claims_data_survives_a_node_restart() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-restart").await;
    let ns = ns.name();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    claims
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    create_pod(&client, ns, pod("writer", "echo written-before-restart > /data/note; sleep 100000")).await;
    wait_phase(&client, ns, "writer", "Running", WAIT).await;
    let note = plane.kubectl(&["exec", "-n", ns, "writer", "--", "cat", "/data/note"]).unwrap();
    assert_eq!(note.trim(), "written-before-restart");

    restart_node(&client, &plane).await;

    // The stopped node failed the pod it ran; its claim is free for the next pod.
    let writer = wait_phase(&client, ns, "writer", "Failed", WAIT).await;
    assert_eq!(writer.status.unwrap().reason.as_deref(), Some("NodeShutdown"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.delete("writer", &DeleteParams::default()).await.unwrap();
    sympozium_testkit::wait_until_gone(&pods, "writer", "pod", WAIT).await.unwrap();
    create_pod(&client, ns, pod("reader", "cat /data/note")).await;
    wait_phase(&client, ns, "reader", "Succeeded", WAIT).await;
    assert_eq!(logs(&plane, ns, "reader", "main").trim(), "written-before-restart");
}
