//! Pods running for real on the local node (`sympozium-node`) beside kwok on the test
//! plane, with busybox applets as workloads: init containers and a restartable sidecar
//! sharing an emptyDir, ConfigMap/Secret volumes and env, probes gating readiness,
//! `kubectl logs` through the API server, graceful deletion; pod networking and Services;
//! persistent volumes; unmapped images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::io::Read;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::*;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_pod_with_init_containers_a_sidecar_volumes_env_and_probes_runs_logs_and_stops_gracefully() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-life").await;
    let ns = ns.name();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}})).unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let main_script = r#"trap 'echo got SIGTERM; exit 0' TERM
echo "$(MSG)"
echo "file greeting: $(cat /config/greeting)"
[ "$(cat /secret/password)" = s3cret ] && echo "secret file ok"
[ "$PASSWORD" = s3cret ] && echo "secret env ok"
echo "init wrote: $(cat /shared/init.txt)"
echo "pod $POD_NAME on $NODE_NAME"
mkdir -p /tmp/www && echo healthy > /tmp/www/healthz
httpd -f -p 8080 -h /tmp/www &
sleep 100000 &
wait"#;
    create_pod(
        &client,
        ns,
        json!({
            "metadata": {"name": "life"},
            "spec": {
                "terminationGracePeriodSeconds": 20,
                "initContainers": [
                    {"name": "first", "image": "busybox:1.36", "command": ["sh", "-c", "echo first > /shared/order; echo one > /shared/init.txt"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                    {"name": "second", "image": "busybox:1.36", "command": ["sh", "-c", "echo second >> /shared/order; cat /shared/order"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                    {"name": "side", "image": "busybox:1.36", "restartPolicy": "Always",
                     "command": ["sh", "-c", "while true; do date > /shared/side.txt; sleep 1; done"],
                     "startupProbe": {"exec": {"command": ["cat", "/shared/side.txt"]}, "periodSeconds": 1, "failureThreshold": 30},
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                ],
                "containers": [{
                    "name": "main", "image": "busybox:1.36",
                    "command": ["sh", "-c", main_script],
                    "env": [
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                        {"name": "MSG", "value": "$(GREETING) world"},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                    "livenessProbe": {"exec": {"command": ["cat", "/shared/side.txt"]}, "periodSeconds": 2},
                    "volumeMounts": [
                        {"name": "shared", "mountPath": "/shared"},
                        {"name": "config", "mountPath": "/config"},
                        {"name": "secret", "mountPath": "/secret", "readOnly": true},
                    ],
                }],
                "volumes": [
                    {"name": "shared", "emptyDir": {}},
                    {"name": "config", "configMap": {"name": "cfg"}},
                    {"name": "secret", "secret": {"secretName": "sec"}},
                ],
            }
        }),
    )
    .await;
    let pod = wait_ready(&client, ns, "life", WAIT).await;
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(
        status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.248.")),
        "pod IP from the node's CIDR: {:?}",
        status.pod_ip
    );
    let inits = status.init_container_statuses.unwrap();
    for name in ["first", "second"] {
        let s = inits.iter().find(|s| s.name == name).unwrap();
        let t = s
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .unwrap_or_else(|| panic!("{name} terminated: {s:?}"));
        assert_eq!(t.exit_code, 0);
    }
    let side = inits.iter().find(|s| s.name == "side").unwrap();
    assert!(
        side.state.as_ref().and_then(|s| s.running.as_ref()).is_some(),
        "sidecar keeps running: {side:?}"
    );
    assert_eq!(side.started, Some(true));
    let main = &status.container_statuses.unwrap()[0];
    assert!(main.ready && main.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    assert_eq!(main.restart_count, 0, "the liveness probe passes");

    // kubectl logs, through the API server and the node's kubelet endpoint.
    let out = logs(&plane, ns, "life", "main");
    for line in [
        "hello world",
        "file greeting: hello",
        "secret file ok",
        "secret env ok",
        "init wrote: one",
        "pod life on sympozium-local",
    ] {
        assert!(out.contains(line), "main's log has {line:?}:\n{out}");
    }
    assert_eq!(logs(&plane, ns, "life", "second").trim(), "first\nsecond", "init containers ran in order");
    let tail = plane.kubectl(&["logs", "-n", ns, "life", "-c", "main", "--tail=1"]).unwrap();
    assert_eq!(tail.trim(), "pod life on sympozium-local");
    let stamped =
        plane.kubectl(&["logs", "-n", ns, "life", "-c", "main", "--timestamps", "--tail=1"]).unwrap();
    assert!(
        stamped.starts_with("20")
            && stamped.contains("T")
            && stamped.trim_end().ends_with("pod life on sympozium-local"),
        "{stamped}"
    );

    // Graceful deletion: the program sees SIGTERM (followed through `kubectl logs -f`).
    let mut follow =
        std::process::Command::new(std::env::var("TESTPLANE_KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            .args(["logs", "-f", "-n", ns, "life", "-c", "main"])
            .env("KUBECONFIG", plane.kubeconfig())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    delete_pod(&client, ns, "life", WAIT).await;
    // The follow ends when the container's log ends; never wait on it unbounded.
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut followed = String::new();
        let mut stdout = stdout;
        let _ = stdout.read_to_string(&mut followed);
        let _ = tx.send(followed);
    });
    let followed = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap_or_else(|_| "(kubectl logs -f did not end within 30 s)".into());
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        followed.contains("got SIGTERM"),
        "the program saw SIGTERM before the pod went away:\n{followed}"
    );
}

#[tokio::test]
async fn two_pods_listen_on_one_port_and_a_third_reaches_one_through_its_service_name() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-net").await;
    let ns = ns.name();
    for name in ["alpha", "beta"] {
        create_pod(
            &client,
            ns,
            json!({
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "web", "image": "busybox:1.36",
                    "command": ["sh", "-c", format!("mkdir -p /tmp/www && echo from-{name} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www")],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                }]}
            }),
        )
        .await;
    }
    let alpha = wait_ready(&client, ns, "alpha", WAIT).await;
    wait_ready(&client, ns, "beta", WAIT).await;
    let alpha_ip = alpha.status.unwrap().pod_ip.unwrap();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "beta"},
                "spec": {"selector": {"app": "beta"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let script = format!(
        "wget -q -O - http://{alpha_ip}:8080/ && wget -q -O - http://beta.{ns}.svc:80/ && wget -q -O - http://beta.{ns}.svc.cluster.local/ && wget -q -O - http://beta/"
    );
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "client"}, "spec": {"restartPolicy": "OnFailure", "containers": [{
            "name": "client", "image": "busybox:1.36", "command": ["sh", "-c", script]}]}}),
    )
    .await;
    let done = wait_phase(&client, ns, "client", "Succeeded", Duration::from_secs(90)).await;
    let out = logs(&plane, ns, "client", "client");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["from-alpha", "from-beta", "from-beta", "from-beta"],
        "{out}"
    );
    let cs = &done.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(cs.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 0);
}

#[tokio::test]
async fn a_claims_data_outlives_the_pod_that_wrote_it() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-pvc").await;
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
    let pod = |name: &str, script: &str| {
        json!({"metadata": {"name": name}, "spec": {"restartPolicy": "Never",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", script],
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    };
    create_pod(
        &client,
        ns,
        pod(
            "writer",
            "id -u; echo persisted > /data/file && touch /rootfs-write 2>/dev/null || echo root read-only",
        ),
    )
    .await;
    wait_phase(&client, ns, "writer", "Succeeded", WAIT).await;
    let out = logs(&plane, ns, "writer", "c");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["1000", "root read-only"],
        "runs as the user, root filesystem read-only:\n{out}"
    );
    let claim = wait_for(&claims, "data", "Bound", WAIT, |c: Option<&PersistentVolumeClaim>| {
        c.and_then(|c| c.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await
    .unwrap();
    let pv_name = claim.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(client.clone()).get(&pv_name).await.unwrap();
    let affinity = serde_json::to_string(&pv.spec.unwrap().node_affinity).unwrap();
    assert!(affinity.contains(NODE), "the volume is pinned to the local node: {affinity}");
    delete_pod(&client, ns, "writer", WAIT).await;
    create_pod(&client, ns, pod("reader", "cat /data/file")).await;
    wait_phase(&client, ns, "reader", "Succeeded", WAIT).await;
    assert_eq!(logs(&plane, ns, "reader", "c").trim(), "persisted");
}

#[tokio::test]
async fn an_unmapped_image_waits_with_a_clear_reason_and_failing_containers_restart() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-img").await;
    let ns = ns.name();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "ghost"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "ghost", "image": "registry.example/nothing/here:v1"},
            {"name": "flaky", "image": "busybox:1.36", "command": ["sh", "-c", "echo attempt; exit 3"]}]}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = wait_for(&pods, "ghost", "ErrImagePull and a restart", WAIT, |p: Option<&Pod>| {
        let statuses =
            p.and_then(|p| p.status.as_ref()).and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        let pulled = statuses.iter().any(|s| {
            s.name == "ghost"
                && s.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                    == Some("ErrImagePull")
        });
        let restarted = statuses.iter().any(|s| s.name == "flaky" && s.restart_count >= 1);
        pulled && restarted
    })
    .await
    .unwrap();
    let statuses = pod.status.unwrap().container_statuses.unwrap();
    let ghost = statuses.iter().find(|s| s.name == "ghost").unwrap();
    let message = ghost.state.as_ref().unwrap().waiting.as_ref().unwrap().message.clone().unwrap();
    assert!(
        message.contains("registry.example/nothing/here:v1")
            && message.contains("nor mapped to a local program"),
        "{message}"
    );
    let flaky = statuses.iter().find(|s| s.name == "flaky").unwrap();
    assert_eq!(flaky.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 3);
    let previous = plane.kubectl(&["logs", "-n", ns, "ghost", "-c", "flaky", "--previous"]).unwrap();
    assert_eq!(previous.trim(), "attempt");
    delete_pod(&client, ns, "ghost", WAIT).await;
}

#[tokio::test]
async fn configmap_and_downward_api_volumes_follow_changes_while_the_pod_runs() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-sync").await;
    let ns = ns.name();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "live"}, "data": {"value": "v1"}})).unwrap(),
    )
    .await
    .unwrap();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "watcher", "labels": {"tier": "one"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox:1.36",
                "command": ["sh", "-c", "while true; do echo \"$(cat /cfg/value) $(cat /info/labels | tr '\\n' ' ')\"; sleep 1; done"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}, {"name": "info", "mountPath": "/info"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "live"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}),
    )
    .await;
    wait_phase(&client, ns, "watcher", "Running", WAIT).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    cms.patch(
        "live",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"value": "v2"}})),
    )
    .await
    .unwrap();
    pods.patch(
        "watcher",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"tier": "two"}}})),
    )
    .await
    .unwrap();
    let mut last = String::new();
    for _ in 0..60 {
        last = logs(&plane, ns, "watcher", "c");
        if last.lines().last().is_some_and(|l| l.starts_with("v2 ") && l.contains("tier=\"two\"")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first = last.lines().next().unwrap_or_default();
    assert!(first.starts_with("v1 ") && first.contains("tier=\"one\""), "{last}");
    let now = last.lines().last().unwrap_or_default();
    assert!(
        now.starts_with("v2 ") && now.contains("tier=\"two\""),
        "the running pod sees the new values:\n{last}"
    );
    delete_pod(&client, ns, "watcher", WAIT).await;
}

#[tokio::test]
async fn readiness_follows_its_probe_and_a_failing_liveness_probe_restarts_the_container() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-probe").await;
    let ns = ns.name();
    // Ready only while /tmp/ready exists; alive only while /tmp/alive exists.
    let script = "touch /tmp/alive; echo started; sleep 3; touch /tmp/ready; sleep 3; rm /tmp/ready; sleep 3; rm /tmp/alive; sleep 1000";
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "probed"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": "busybox:1.36", "command": ["sh", "-c", script],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2}}]}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let running = wait_phase(&client, ns, "probed", "Running", WAIT).await;
    assert!(!ready(Some(&running)), "not ready before the readiness probe passes");
    wait_ready(&client, ns, "probed", WAIT).await;
    wait_for(&pods, "probed", "not ready again", WAIT, |p: Option<&Pod>| !ready(p)).await.unwrap();
    let restarted = wait_for(&pods, "probed", "restarted by liveness", WAIT, |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()?.container_statuses.as_ref()?.first().map(|c| c.restart_count >= 1))
            == Some(true)
    })
    .await
    .unwrap();
    let c = &restarted.status.unwrap().container_statuses.unwrap()[0];
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert!(last.exit_code > 128, "the old attempt was killed by a signal: {last:?}");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let unhealthy = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("Unhealthy"));
    assert!(unhealthy, "an Unhealthy event says why the container restarted");
    delete_pod(&client, ns, "probed", WAIT).await;
}
