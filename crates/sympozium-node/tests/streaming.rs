//! `kubectl exec`, `attach`, `port-forward` and `logs -f` against pods on the local node,
//! through the real API server (which relays them to the node's kubelet endpoint over
//! SPDY), with the plane's own kubectl; and the kubelet endpoint refusing pods that try
//! to reach it directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use support::*;
use sympozium_testkit::TestPlane;

const WAIT: Duration = Duration::from_secs(60);

/// A busybox pod running as uid 1000 with an HTTP server on the pod's loopback only.
fn shell_pod(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", "echo forwarded-page > /www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www"],
                "env": [{"name": "GREETING", "value": "hello from the pod"}],
                "volumeMounts": [{"name": "www", "mountPath": "/www"}],
            }],
            "volumes": [{"name": "www", "emptyDir": {}}],
        }
    })
}

#[tokio::test]
async fn kubectl_exec_runs_in_the_container_as_its_user_with_stdin_and_exit_codes() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-exec").await;
    let ns = ns.name();
    create_pod(&client, ns, shell_pod("shell")).await;
    wait_phase(&client, ns, "shell", "Running", WAIT).await;

    // The container's user, environment, hostname and volumes; the exit code comes back.
    let (code, out, err) = kubectl_with_input(
        &plane,
        &[
            "exec",
            "-n",
            ns,
            "shell",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "id -u; echo \"$GREETING\"; hostname; cat /www/index.html; echo oops >&2; exit 3",
        ],
        "",
    );
    assert_eq!(code, 3, "kubectl exec exits with the command's code; stdout {out:?} stderr {err:?}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "hello from the pod", "shell", "forwarded-page"]);
    assert!(err.contains("oops"), "stderr is relayed: {err:?}");

    // Inside the sandbox: its own PID namespace, no capabilities.
    let (code, out, _) = kubectl_with_input(
        &plane,
        &[
            "exec",
            "-n",
            ns,
            "shell",
            "--",
            "sh",
            "-c",
            "ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status",
        ],
        "",
    );
    assert_eq!(code, 0);
    let procs: u32 = out.lines().next().unwrap().trim().parse().unwrap();
    assert!(procs < 10, "only the container's processes are visible: {out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");

    // stdin, closed at its end.
    let (code, out, err) = kubectl_with_input(
        &plane,
        &["exec", "-i", "-n", ns, "shell", "--", "sh", "-c", "tr a-z A-Z"],
        "piped input\n",
    );
    assert_eq!((code, out.as_str()), (0, "PIPED INPUT\n"), "stderr: {err}");

    // A command that does not exist fails with a non-zero code and says why.
    let (code, _, err) =
        kubectl_with_input(&plane, &["exec", "-n", ns, "shell", "--", "no-such-command"], "");
    assert_ne!(code, 0);
    assert!(err.contains("no-such-command"), "{err}");

    // With a terminal (kubectl under `script`, which gives it one).
    let kubectl = std::env::var("TESTPLANE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let inner =
        format!("{kubectl} exec -it -n {ns} shell -- sh -c '[ -t 0 ] && echo has-a-tty; stty size; exit 4'");
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("KUBECONFIG", plane.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("has-a-tty"),
        "a terminal inside: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4), "{text:?}");

    // kubectl speaking SPDY itself (the API server then passes the upgrade through instead
    // of translating WebSockets): same results.
    let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
    let (code, out, err) = kubectl_env_input(
        &plane,
        &spdy,
        &["exec", "-i", "-n", ns, "shell", "--", "sh", "-c", "cat; exit 5"],
        "via spdy\n",
    );
    assert_eq!((code, out.as_str()), (5, "via spdy\n"), "stderr: {err}");

    // Unknown containers and pods are refused with a reason.
    let (code, _, err) =
        kubectl_with_input(&plane, &["exec", "-n", ns, "shell", "-c", "nope", "--", "true"], "");
    assert_ne!(code, 0);
    assert!(err.contains("nope"), "{err}");
}

/// Starts `kubectl port-forward -n <ns> pod/<pod> :<port>` and returns it with the local
/// port from its "Forwarding from 127.0.0.1:NNNN -> PORT" line. When kubectl exits before
/// that line, its stderr is shown and it is started once more, as a user would rerun it
/// (seen once in CI: the first upgrade failed right after the node came up); a second
/// failure fails the test with both messages.
fn port_forward(plane: &TestPlane, ns: &str, port: u16, websockets: bool) -> (std::process::Child, u16) {
    let mut failures = Vec::new();
    for _ in 0..2 {
        let mut cmd = kubectl_cmd(plane);
        if !websockets {
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        let mut pf = cmd
            .args(["port-forward", "-n", ns, "pod/web", &format!(":{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(pf.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok);
        if let Some(first) = first {
            // kubectl goes on writing "Handling connection for …": keep reading its stdout.
            std::thread::spawn(move || lines.for_each(drop));
            let local: u16 = first
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("kubectl port-forward said {first:?}"));
            return (pf, local);
        }
        let _ = pf.kill();
        let status = pf.wait().unwrap();
        let mut err = String::new();
        let _ = pf.stderr.take().unwrap().read_to_string(&mut err);
        eprintln!("kubectl port-forward exited ({status}) before forwarding: {err}");
        failures.push(err);
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("kubectl port-forward failed twice: {failures:?}");
}

#[tokio::test]
async fn kubectl_port_forward_reaches_a_server_on_the_pods_loopback() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-pf").await;
    let ns = ns.name();
    create_pod(&client, ns, shell_pod("web")).await;
    wait_phase(&client, ns, "web", "Running", WAIT).await;
    let (mut pf, port) = port_forward(&plane, ns, 8080, true);
    // Several connections over the one session, one after the other and at once.
    let get = move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    for _ in 0..2 {
        let body = tokio::task::spawn_blocking(get).await.unwrap();
        assert!(body.starts_with("HTTP/1.") && body.contains("forwarded-page"), "{body:?}");
    }
    let parallel: Vec<_> = (0..3).map(|_| tokio::task::spawn_blocking(get)).collect();
    for p in parallel {
        assert!(p.await.unwrap().contains("forwarded-page"));
    }
    let _ = pf.kill();
    let _ = pf.wait();

    // kubectl speaking SPDY itself, passed through by the API server.
    let (mut pf, spdy_port) = port_forward(&plane, ns, 8080, false);
    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", spdy_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
    .await
    .unwrap();
    assert!(body.contains("forwarded-page"), "{body:?}");
    let _ = pf.kill();
    let _ = pf.wait();

    // A client library's port-forward (kube-rs: WebSocket, passed through to the node).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), ns);
    for _ in 0..2 {
        let mut forward = pods.portforward("web", &[8080]).await.unwrap();
        let mut stream = forward.take_stream(8080).unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await.unwrap();
        let mut body = String::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut body))
            .await
            .unwrap()
            .unwrap();
        assert!(body.contains("forwarded-page"), "{body:?}");
        // The pod closed the connection, so the node closed the WebSocket (v4 has no other
        // way to say EOF); kube-rs then reports its own late close as an error, ignored here.
        drop(stream);
        let _ = forward.join().await;
    }

    // A port nothing listens on: the connection is closed and kubectl reports the error.
    let (mut pf, port) = port_forward(&plane, ns, 9, true);
    let got = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(b"hello");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    assert!(got.is_empty(), "nothing answers on port 9: {got:?}");
    let _ = pf.kill();
    let mut err = String::new();
    pf.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let _ = pf.wait();
    assert!(err.contains("port 9") || err.contains("refused"), "kubectl reports the failure: {err}");
}

#[tokio::test]
async fn kubectl_attach_and_logs_follow_relay_live_output() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-attach").await;
    let ns = ns.name();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "echo"}, "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox:1.36", "stdin": true, "stdinOnce": true,
            "command": ["sh", "-c", "echo ready; while read line; do echo \"got $line\"; echo \"err $line\" >&2; done; echo bye"],
        }]}}),
    )
    .await;
    wait_phase(&client, ns, "echo", "Running", WAIT).await;
    // `kubectl logs -f` sees lines written after it started.
    let mut logs =
        kubectl_cmd(&plane).args(["logs", "-f", "-n", ns, "echo"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut log_lines = BufReader::new(logs.stdout.take().unwrap()).lines();
    assert_eq!(log_lines.next().unwrap().unwrap(), "ready");

    let (code, out, err) =
        kubectl_with_input(&plane, &["attach", "-i", "-n", ns, "echo", "-c", "main"], "first\nsecond\n");
    assert_eq!(code, 0, "stdout {out:?} stderr {err:?}");
    assert!(out.contains("got first") && out.contains("got second"), "attach relays stdout: {out:?}");
    assert!(err.contains("err first"), "attach relays stderr: {err:?}");
    // stdinOnce: the program saw its input end when the attach did, and finished.
    wait_phase(&client, ns, "echo", "Succeeded", WAIT).await;
    let followed: Vec<String> = log_lines.map(Result::unwrap).collect();
    assert_eq!(
        followed.iter().filter(|l| l.starts_with("got ") || *l == "bye").collect::<Vec<_>>(),
        ["got first", "got second", "bye"],
        "logs -f followed the live output until the container ended: {followed:?}"
    );
    assert!(logs.wait().unwrap().success());
}

#[tokio::test]
async fn pods_cannot_call_the_kubelet_endpoint_themselves() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-kubelet-sec").await;
    let ns = ns.name();
    create_pod(
        &client,
        ns,
        json!({"metadata": {"name": "victim"}, "spec": {"containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "echo victim-secret-7f3a; sleep 100000"],
        }]}}),
    )
    .await;
    create_pod(&client, ns, shell_pod("attacker")).await;
    wait_phase(&client, ns, "victim", "Running", WAIT).await;
    let attacker = wait_phase(&client, ns, "attacker", "Running", WAIT).await;
    let attacker_ip = attacker.status.unwrap().pod_ip.unwrap();
    let (ip, port) = kubelet_endpoint(&client).await;
    let url = format!("https://{ip}:{port}/containerLogs/{ns}/victim/main");
    let curl = |netns: Option<std::path::PathBuf>| {
        let mut cmd = match &netns {
            Some(ns) => {
                let mut c = std::process::Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("curl");
                c
            }
            None => std::process::Command::new("curl"),
        };
        cmd.args(["-sk", "--max-time", "5", &url]).output().unwrap()
    };
    // The node itself (the API server's side) reads the log …
    let from_node = curl(None);
    assert!(String::from_utf8_lossy(&from_node.stdout).contains("victim-secret-7f3a"), "{from_node:?}");
    // … a pod on the bridge gets nothing: no logs, and so no exec or port-forward either.
    let from_pod = curl(Some(support::probe::netns_of(&attacker_ip)));
    assert!(!from_pod.status.success(), "{from_pod:?}");
    assert!(!String::from_utf8_lossy(&from_pod.stdout).contains("victim-secret"), "{from_pod:?}");
    let exec_url = format!("https://{ip}:{port}/exec/{ns}/victim/main?command=id&output=1");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", support::probe::netns_of(&attacker_ip).display()))
        .args(["curl", "-sk", "--max-time", "5", "-X", "POST", &exec_url])
        .output()
        .unwrap();
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
}
