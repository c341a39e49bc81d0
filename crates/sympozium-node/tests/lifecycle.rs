//! Container lifecycle on the local node: postStart and preStop hooks (exec and httpGet)
//! and resource limits (cgroups v2 where the machine has them, reported on the Node where
//! it does not).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use support::*;
use sympozium_testkit::TestPlane;

const WAIT: Duration = Duration::from_secs(60);

async fn events(client: &kube::Client, ns: &str, reason: &str) -> Vec<String> {
    let list = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    list.items.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).filter_map(|e| e.message).collect()
}

#[tokio::test]
async fn post_start_runs_before_the_container_counts_as_running_and_pre_stop_before_sigterm() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-hooks").await;
    let ns = ns.name();
    // The side container's preStop calls this test over HTTP.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (node_ip, _) = kubelet_endpoint(&client).await;
    let calls = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ = std::io::Write::write_all(&mut s, b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let main = r#"trap 'echo "SIGTERM after preStop: $(cat /shared/prestop)"; exit 0' TERM
echo started
sleep 100000 &
wait"#;
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "hooked"}, "spec": {
            "terminationGracePeriodSeconds": 20,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "containers": [
                {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", main],
                 "lifecycle": {
                     "postStart": {"exec": {"command": ["sh", "-c", "sleep 1; id -u > /shared/poststart"]}},
                     "preStop": {"exec": {"command": ["sh", "-c", "echo ran-as-$(id -u) > /shared/prestop"]}}},
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "side", "image": "busybox:1.36", "command": ["sleep", "100000"],
                 "lifecycle": {"preStop": {"httpGet": {"host": node_ip, "port": port, "path": "/pre-stop-side"}}}},
            ],
            "volumes": [{"name": "shared", "emptyDir": {}}],
        }}),
    )
    .await;
    // The side container runs at once; `main` is Running (so the pod Ready) only once its
    // postStart hook finished, which sleeps 1 s before it writes.
    wait_ready(&client, ns, "hooked", WAIT).await;
    let out =
        plane.kubectl(&["exec", "-n", ns, "hooked", "-c", "main", "--", "cat", "/shared/poststart"]).unwrap();
    assert_eq!(out.trim(), "1000", "postStart ran in the container as its user");

    let mut logs = kubectl_cmd(&plane)
        .args(["logs", "-f", "-n", ns, "hooked", "-c", "main"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(logs.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    delete_pod(&client, ns, "hooked", WAIT).await;
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.contains(&"SIGTERM after preStop: ran-as-1000".to_string()),
        "preStop ran before SIGTERM: {rest:?}"
    );
    let request = calls.join().unwrap();
    assert!(request.starts_with("GET /pre-stop-side "), "the httpGet preStop hook called: {request:?}");
    let _ = logs.wait();
}

#[tokio::test]
async fn a_failing_post_start_hook_kills_the_container_and_says_why() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-badhook").await;
    let ns = ns.name();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "bad"}, "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["sleep", "100000"],
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo no-config-found; exit 7"]}}},
        }]}}),
    )
    .await;
    let pod = wait_phase(&client, ns, "bad", "Failed", WAIT).await;
    let state = pod.status.unwrap().container_statuses.unwrap().remove(0).state.unwrap();
    assert!(state.terminated.is_some(), "{state:?}");
    let msgs = events(&client, ns, "FailedPostStartHook").await;
    assert!(msgs.iter().any(|m| m.contains("no-config-found") && m.contains("7")), "{msgs:?}");
}

#[tokio::test]
async fn resource_limits_are_enforced_with_cgroup_v2_or_reported_on_the_node() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-limits").await;
    let ns = ns.name();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "limited"}, "spec": {"containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["sleep", "100000"],
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
        }]}}),
    )
    .await;
    wait_phase(&client, ns, "limited", "Running", WAIT).await;
    let node: Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let conditions = node.status.unwrap().conditions.unwrap();
    let cond = conditions
        .iter()
        .find(|c| c.type_ == "ResourceLimitsEnforced")
        .unwrap_or_else(|| panic!("the Node says whether limits are enforced: {conditions:?}"));
    let annotation = node.metadata.annotations.unwrap().get("sympozium.ai/resource-limits").cloned().unwrap();
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| ["memory", "cpu", "pids"].iter().all(|x| c.split_whitespace().any(|y| y == *x)));
    if cond.status == "True" {
        // The container's processes (exec joins the container's cgroup too) are limited.
        let cg = plane.kubectl(&["exec", "-n", ns, "limited", "--", "cat", "/proc/self/cgroup"]).unwrap();
        let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap().trim().to_string();
        let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup{path}/{f}")).unwrap();
        assert_eq!(read("memory.max").trim(), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max").trim(), "25000 100000");
        assert_eq!(read("pids.max").trim(), "4096");
    } else {
        // This machine cannot: the Node, the pod's Events and the node's log say so.
        assert!(!v2 || cond.message.is_some(), "{cond:?}");
        assert_eq!(cond.reason.as_deref(), Some("CgroupV2Unavailable"), "{cond:?}");
        assert!(annotation.starts_with("not enforced:"), "{annotation}");
        let msgs = events(&client, ns, "SecurityContextPartial").await;
        assert!(msgs.iter().any(|m| m.contains("resource limits are not enforced")), "{msgs:?}");
    }
}
