//! `sympozium dev up` end to end: a second control plane, the local node and Sympozium
//! installed as pods; then what `make demo` does — a team activated on the offline scripted
//! model, a persona's task run by a real pod, its answer, its log and the memory it stored —
//! and `dev down` stopping everything it started. Then what the demo's closing hint says:
//! `export KUBECONFIG=…; sympozium tui` shows the team (every namespace, the stack's own
//! among them) and the chat shows the persona's task, not the memory put in front of it.
//! And `dev up` with a node that cannot start fails with the node's own error at once.
//!
//! Needs what the local node needs (root for network namespaces, bubblewrap); `.ci/run`
//! installs it. Binaries come from the workspace build `cargo test --workspace` does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "tui_support/mod.rs"]
mod tui_support;

struct Stack {
    state: tempfile::TempDir,
    repo: PathBuf,
    ns: &'static str,
    /// Pod network of its node.
    pod_cidr: &'static str,
}

impl Stack {
    fn sympozium(&self, args: &[&str]) -> Output {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
            .args(["-n", self.ns])
            .args(args)
            .env("SYMPOZIUM_REPO", &self.repo)
            .env("SYMPOZIUM_DEV_DIR", self.state.path())
            .env("KUBECONFIG", self.kubeconfig())
            // Its own bridge and pod network, so a developer's own stack can run beside it.
            .env("SYMPOZIUM_NODE_BRIDGE", "symtest0")
            .env("SYMPOZIUM_NODE_POD_CIDR", self.pod_cidr)
            .env_remove("SYMPOZIUM_API_KEY")
            .output()
            .unwrap();
        eprintln!("$ sympozium {}\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        out
    }

    fn kubeconfig(&self) -> PathBuf {
        self.state.path().join("kubeconfig")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.sympozium(&all);
        assert!(out.status.success(), "{args:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Never leave a plane or node behind, whatever the test did.
        let _ = self.sympozium(&["dev", "down"]);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Live (non-zombie) processes descending from `root`: the local node's pods.
fn descendants(root: u32) -> Vec<u32> {
    let parent_of = |pid: u32| -> Option<(u32, bool)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name in parentheses: state, ppid, ...
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace();
        let zombie = fields.next()? == "Z";
        Some((fields.next()?.parse().ok()?, zombie))
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    all.into_iter()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..64 {
                match parent_of(p) {
                    Some((_, true)) if p == pid => return false,
                    Some((ppid, _)) if ppid == root => return true,
                    Some((ppid, _)) if ppid > 1 => p = ppid,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

fn pids_alive(dir: &Path) -> Vec<u32> {
    let Ok(pids) = std::fs::read_to_string(dir.join("plane/pids")) else { return vec![] };
    pids.lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "))
        })
        .collect()
}

#[test]
fn dev_up_runs_a_team_member_for_real_and_dev_down_stops_it() {
    let stack = Stack {
        state: tempfile::tempdir().unwrap(),
        repo: sympozium_testkit::repo_root(),
        ns: "sympozium-system",
        pod_cidr: "10.247.0.0/24",
    };
    let up = stack.sympozium(&["dev", "up", "--wait", "3m"]);
    assert!(up.status.success(), "dev up failed");
    let last = text(&up.stdout).trim_end().lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("export KUBECONFIG={}", stack.kubeconfig().display()));
    let status = stack.sympozium(&["dev", "status"]);
    assert!(status.status.success() && text(&status.stdout).contains("local node     Ready"));

    // The demo's steps, on the offline scripted model.
    let activate = stack.sympozium(&[
        "packs",
        "activate",
        "platform-team",
        "--provider",
        "openai",
        "--api-key",
        "offline",
        "--model",
        "sympozium-offline",
        "--base-url",
        "http://offline-model.sympozium-system.svc:8080/v1",
    ]);
    assert!(activate.status.success());
    let instance = wait("the team's instances", Duration::from_secs(60), || {
        let list = stack.json(&["instances", "list"]);
        let mut names: Vec<String> = list
            .as_array()?
            .iter()
            .filter(|i| i["metadata"]["labels"]["sympozium.ai/persona-pack"] == "platform-team")
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.into_iter().next()
    });
    let schedules = stack.json(&["schedules", "list"]);
    let (schedule, task) = schedules
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spec"]["instanceRef"] == instance.as_str())
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_string(),
                s["spec"]["task"].as_str().unwrap().to_string(),
            )
        })
        .expect("every persona has a schedule");

    // The persona's scheduled task, now: the schedule controller (a pod) creates the run.
    let triggered = stack.sympozium(&["schedules", "trigger", &schedule]);
    assert!(triggered.status.success());
    let run = text(&triggered.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("agentrun/")
        .to_string();
    assert!(run.starts_with(&format!("{schedule}-")), "{run}");
    // The agent's log streams through the API server from the local node while the pod
    // lives; a run that finished first (its Job is cleaned up) shows its recorded result.
    let logs = stack.sympozium(&["runs", "logs", &run, "--follow", "--wait", "3m"]);
    assert!(logs.status.success());
    assert!(
        text(&logs.stdout).contains("[offline scripted model: no LLM was called]"),
        "the answer is in the log"
    );

    let finished = wait("the run to finish", Duration::from_secs(180), || {
        let run = stack.json(&["runs", "get", &run]);
        matches!(run["status"]["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(run)
    });
    assert_eq!(finished["status"]["phase"], "Succeeded", "{:#}", finished["status"]);
    let result = finished["status"]["result"].as_str().unwrap();
    assert!(result.starts_with("[offline scripted model: no LLM was called]"), "{result}");
    assert!(result.contains("I stored a note about this task in my memory"), "{result}");
    assert!(finished["status"]["tokenUsage"]["totalTokens"].as_i64().unwrap() > 0);

    // The note is in the instance's memory server, a pod behind its Service, which answers
    // only with the instance's token: without it, the service proxy gets 401.
    let kubectl = std::env::var("TESTPLANE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let anonymous = std::process::Command::new(&kubectl)
        .args(["--kubeconfig", stack.kubeconfig().to_str().unwrap(), "get", "--raw"])
        .arg(format!("/api/v1/namespaces/sympozium-system/services/{instance}-memory:8080/proxy/list"))
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "memory without the token: {}", text(&anonymous.stdout));
    let memories = wait("the stored memory", Duration::from_secs(30), || {
        let out = stack.sympozium(&["memory", &instance, "--tag", "offline-demo"]);
        let body = text(&out.stdout);
        body.contains("Offline demo run handled the task").then_some(body)
    });
    assert!(memories.contains(&task.chars().take(40).collect::<String>()), "{memories}");

    // The demo's closing hint, as a user follows it: `export KUBECONFIG=…; sympozium tui`.
    // The TUI lists every namespace, so the team the demo made is there; the instance's chat
    // shows the persona's task as the schedule states it.
    let exported = last.strip_prefix("export ").unwrap().to_string();
    let (_, kubeconfig) = exported.split_once('=').unwrap();
    let pty = tui_support::Pty::start(
        "dev-tui",
        &[env!("CARGO_BIN_EXE_sympozium"), "tui"],
        &[("KUBECONFIG", kubeconfig)],
    );
    pty.wait_for("● connected", 60);
    // Without the detail pane the names are not cut short.
    pty.keys(&["2", "f"]);
    let s = pty.wait("the team in the Instances view", 60, |s| {
        s.contains("NAMESPACE")
            && [
                "platform-team-security-guardian",
                "platform-team-sre-watchdog",
                "platform-team-platform-engineer",
            ]
            .iter()
            .all(|n| s.contains(n))
    });
    assert!(s.contains("ns: all namespaces"), "{s}");
    assert!(s.lines().any(|l| l.contains("sympozium-system") && l.contains(&instance)), "{s}");
    // kubectl users land there too: the kubeconfig's context namespace is the system namespace.
    let out = std::process::Command::new(&kubectl)
        .args(["--kubeconfig", kubeconfig, "get", "sympoziuminstances", "-o", "name"])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains(&format!("sympoziuminstance.sympozium.ai/{instance}")),
        "{}",
        text(&out.stderr)
    );
    pty.keys(&["f"]);
    let title = format!(" {}/{instance} ", stack.ns);
    for _ in 0..30 {
        if pty.screen().contains(&title) {
            break;
        }
        pty.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(150));
    }
    let asked: String = task.chars().take(24).collect();
    let s = pty.wait("the persona's task in the chat", 30, |s| s.contains(&format!("you › {asked}")));
    assert!(!s.contains("## Memory Context"), "the chat shows the task, not the memory before it:\n{s}");
    pty.keys(&["R"]);
    pty.wait_for(&format!("message for {instance}"), 15);
    pty.type_text("Which pods restarted today?");
    pty.keys(&["Enter"]);
    pty.wait("the agent's answer in the TUI chat", 180, |s| s.contains("agent ‹ [offline scripted model"));
    pty.keys(&["Escape", "q"]);

    // The whole chat path on real pods: a user writes to a Telegram bot (the fake Bot API on
    // this host, reached from the pod network), the instance's channel pod relays it over
    // NATS, the router in the controller pod starts a run, the agent pod answers through
    // the offline model, and the reply comes back in the same chat through the channel pod.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let telegram = runtime
        .block_on(sympozium_testkit::fake_chat::telegram::FakeTelegram::start_on(
            "123:tok",
            [0, 0, 0, 0].into(),
        ))
        .unwrap();
    let discord = runtime
        .block_on(sympozium_testkit::fake_chat::FakeDiscord::start_on(
            "dc-tok",
            Duration::from_secs(5),
            [0, 0, 0, 0].into(),
        ))
        .unwrap();
    let chat_agent = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: chat-agent-telegram, namespace: sympozium-system}}
stringData: {{TELEGRAM_BOT_TOKEN: "123:tok", TELEGRAM_API_URL: "http://10.247.0.1:{port}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: chat-agent-discord, namespace: sympozium-system}}
stringData: {{DISCORD_BOT_TOKEN: dc-tok, DISCORD_API_URL: "http://10.247.0.1:{dport}/api/v10",
             DISCORD_GATEWAY_URL: "ws://10.247.0.1:{dport}/gateway"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: chat-agent-openai-key, namespace: sympozium-system}}
stringData: {{OPENAI_API_KEY: offline}}
---
apiVersion: sympozium.ai/v1alpha1
kind: SympoziumInstance
metadata: {{name: chat-agent, namespace: sympozium-system}}
spec:
  channels: [{{type: telegram, configRef: {{secret: chat-agent-telegram}}}},
             {{type: discord, configRef: {{secret: chat-agent-discord}}}}]
  agents: {{default: {{model: sympozium-offline, baseURL: "http://offline-model.sympozium-system.svc:8080/v1"}}}}
  authRefs: [{{provider: openai, secret: chat-agent-openai-key}}]
"#,
        port = telegram.port(),
        dport = discord.port()
    );
    let manifest = stack.state.path().join("chat-agent.yaml");
    std::fs::write(&manifest, chat_agent).unwrap();
    let applied = std::process::Command::new(&kubectl)
        .args(["--kubeconfig", stack.kubeconfig().to_str().unwrap(), "apply", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    wait("the Telegram and Discord channels Connected", Duration::from_secs(90), || {
        let i = stack.json(&["instances", "get", "chat-agent"]);
        let channels = i["status"]["channels"].as_array()?;
        (channels.len() == 2 && channels.iter().all(|c| c["status"] == "Connected")).then_some(())
    });
    telegram.user_says(4242, 7, "alice", "Is the payments namespace healthy?");
    let sent = runtime.block_on(telegram.wait_sent(1, Duration::from_secs(120))).unwrap();
    assert_eq!(sent[0].chat, "4242", "the reply goes to the chat the user wrote in");
    assert!(sent[0].text.contains("[offline scripted model: no LLM was called]"), "{}", sent[0].text);
    assert!(sent[0].text.contains("Is the payments namespace healthy?"), "{}", sent[0].text);

    // The same agent on Discord (Gateway and REST from its own channel pod): the answer goes
    // to the channel the user wrote in, replying to their message, and Telegram gets nothing.
    let asked = discord.user_says("CH9", Some("G1"), "111", "Which node is the busiest?");
    let sent = runtime.block_on(discord.wait_sent(1, Duration::from_secs(120))).unwrap();
    assert_eq!(sent[0].chat, "CH9");
    assert_eq!(sent[0].reply_to.as_deref(), Some(asked.as_str()));
    assert!(sent[0].text.contains("Which node is the busiest?"), "{}", sent[0].text);
    assert_eq!(telegram.sent().len(), 1, "one reply per message, on its own platform");

    // `dev down` stops the node, its pods and the plane: nothing of ours keeps running.
    let node_pid: u32 =
        std::fs::read_to_string(stack.state.path().join("node.pid")).unwrap().trim().parse().unwrap();
    assert!(!pids_alive(stack.state.path()).is_empty());
    let pods = descendants(node_pid);
    assert!(pods.len() >= 3, "the node runs the stack's pods as its child processes: {pods:?}");
    let down = stack.sympozium(&["dev", "down"]);
    assert!(down.status.success());
    assert!(pids_alive(stack.state.path()).is_empty(), "control plane processes survived dev down");
    let survivors: Vec<_> = pods
        .iter()
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z ")))
        .collect();
    assert!(survivors.is_empty(), "pod processes survived dev down: {survivors:?}");
    assert!(!Path::new("/sys/class/net/symtest0").exists(), "the node removed its pod network bridge");
    assert!(
        !Path::new(&format!("/proc/{node_pid}")).exists() || {
            std::fs::read_to_string(format!("/proc/{node_pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        }
    );
    let status = stack.sympozium(&["dev", "status"]);
    assert_eq!(status.status.code(), Some(1));
}

#[test]
fn dev_up_reports_a_node_that_cannot_start_with_its_own_error() {
    let stack = Stack {
        state: tempfile::tempdir().unwrap(),
        repo: sympozium_testkit::repo_root(),
        ns: "sympozium-system",
        // The node refuses this at start-up and exits.
        pod_cidr: "not-a-cidr",
    };
    let up = stack.sympozium(&["dev", "up", "--wait", "5m"]);
    assert_eq!(up.status.code(), Some(1));
    let stderr = text(&up.stderr);
    let log = stack.state.path().join("node.log");
    assert!(
        stderr.contains(&format!(
            "the local node stopped (exit status: 1) while the stack was starting; its log ({})",
            log.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("invalid --pod-cidr: not-a-cidr"), "the node's own error: {stderr}");
    assert!(!stderr.contains("not ready after"), "it did not wait for the timeout: {stderr}");
}
