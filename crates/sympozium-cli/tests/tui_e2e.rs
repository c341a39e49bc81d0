//! The real `sympozium` TUI in a pseudo-terminal (tmux) against the test control plane,
//! with the PersonaPack and instance controllers running: open Personas, activate
//! `platform-team` through the wizard, watch its agents appear in Instances, send one a
//! task from the chat and see the answer. Also: started with no reachable cluster it warns,
//! and it connects by itself once the cluster answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod tui_support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, PersonaPack};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{instance, personapack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::TestPlane;
use tui_support::Pty;

struct Abort(tokio::task::JoinHandle<()>);
impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Moves the selection down until the detail pane shows `ns/name`.
fn select(pty: &Pty, ns: &str, name: &str) {
    let title = format!(" {ns}/{name} ");
    for _ in 0..30 {
        if pty.screen().contains(&title) {
            return;
        }
        pty.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("could not select {name}; screen:\n{}", pty.screen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activate_platform_team_and_chat_with_an_agent() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "tui-e2e").await.unwrap().name().to_string();
    let builtin = sympozium_testkit::repo_root().join("deploy/builtin");
    plane.kubectl(&["apply", "-n", &ns, "-f", builtin.to_str().unwrap()]).unwrap();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings { image_tag: "test".into(), ..Default::default() },
        Metrics::default(),
        Some(ns.clone()),
        "tui-e2e",
    ));
    let _controllers = Abort(tokio::spawn(async move {
        futures::join!(instance::run(ctx.clone()), personapack::run(ctx));
    }));

    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let pty =
        Pty::start("e2e", &[env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", &kubeconfig, "-n", &ns], &[]);
    pty.wait_for("● connected", 30);

    // Personas: the catalog, platform-team not yet active.
    pty.keys(&["1"]);
    pty.wait_for("platform-team", 30);
    select(&pty, &ns, "platform-team");
    pty.wait_for("no (Enter activates)", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Activate a PersonaPack", 15);
    pty.wait_for("Which LLM provider?", 15);
    pty.keys(&["Enter"]); // OpenAI
    pty.wait_for("OpenAI API key", 15);
    pty.type_text("sk-e2e-secret");
    let s = pty.wait_for("•••••••••••••", 15);
    assert!(!s.contains("sk-e2e-secret") && s.contains("•••••••••••••"), "the key is masked:\n{s}");
    pty.keys(&["Enter"]);
    pty.wait_for("Model", 15);
    pty.keys(&["Enter"]); // gpt-4o for personas that name none
    pty.wait_for("GitHub repository", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Team task", 15);
    pty.type_text("Keep the platform healthy");
    pty.keys(&["Enter"]);
    pty.wait_for("agent sandbox", 15);
    pty.keys(&["Enter"]); // no
    pty.wait_for("Chat channels", 15);
    pty.keys(&["Enter"]); // none
    pty.wait_for("Heartbeat", 15);
    pty.keys(&["Enter"]); // keep
    pty.wait_for("Activate?", 15);
    let s = pty.screen();
    assert!(s.contains("Pack:       platform-team") && s.contains("Secret platform-team-openai-key"), "{s}");
    pty.keys(&["Enter"]);
    pty.wait_for("personapack/platform-team activated", 30);

    // What the wizard wrote: the key Secret, the pack enabled with authRefs.
    let secret =
        Api::<Secret>::namespaced(client.clone(), &ns).get("platform-team-openai-key").await.unwrap();
    assert!(secret.data.unwrap().contains_key("OPENAI_API_KEY"));
    assert_eq!(secret.metadata.labels.unwrap()["sympozium.ai/persona-pack"], "platform-team");
    let pack = Api::<PersonaPack>::namespaced(client.clone(), &ns).get("platform-team").await.unwrap();
    assert_eq!(pack.spec.enabled, Some(true));
    assert_eq!(pack.spec.auth_refs[0].secret, "platform-team-openai-key");
    assert_eq!(pack.spec.auth_refs[0].provider.as_deref(), Some("openai"));
    assert_eq!(pack.spec.task_override.as_deref(), Some("Keep the platform healthy"));

    // Instances: the team appears as the controller stamps it out.
    pty.keys(&["2"]);
    let s = pty.wait("the three agents", 60, |s| {
        ["platform-team-security-guardian", "platform-team-sre-watchdog", "platform-team-platform-engineer"]
            .iter()
            .all(|n| s.contains(n))
    });
    assert!(s.contains("openai"), "provider column: {s}");

    // Chat: a task to one agent; the run is finished here the way the CLI tests do (no
    // agent pod runs on the plane's fake nodes).
    let agent = "platform-team-sre-watchdog";
    select(&pty, &ns, agent);
    pty.wait_for("no messages yet", 15);
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    pty.keys(&["R"]);
    pty.wait_for(&format!("message for {agent}"), 15);
    pty.type_text("Any failing pods?");
    pty.keys(&["Enter"]);
    pty.wait_for("the answer appears in the chat", 30);
    let run = {
        let mut found = None;
        for _ in 0..100 {
            let list = runs
                .list(&ListParams::default().labels(&format!("sympozium.ai/instance={agent}")))
                .await
                .unwrap();
            found = list.items.into_iter().find(|r| r.annotations().contains_key("sympozium.ai/message"));
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.expect("the chat created a run")
    };
    assert_eq!(run.spec.task, "Any failing pods?");
    assert_eq!(run.spec.model.provider, "openai");
    assert_eq!(run.spec.model.auth_secret_ref, "platform-team-openai-key");
    pty.wait_for("[pending]", 20);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "status": {"phase": "Succeeded", "result": "All 14 pods are healthy.",
                   "tokenUsage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "toolCalls": 0, "durationMs": 900}}});
    runs.patch_status(&run.name_any(), &PatchParams::apply("e2e-finisher"), &Patch::Apply(&body))
        .await
        .unwrap();
    pty.wait_for("agent ‹ All 14 pods are healthy.", 30);

    // Runs view shows it finished.
    pty.keys(&["3"]);
    pty.wait(&format!("{} Succeeded", run.name_any()), 10, |s| {
        s.lines().any(|l| l.contains(&run.name_any()) && l.contains("Succeeded"))
    });
    pty.keys(&["q"]);
    pty.wait_for("[exited 0]", 20);
}

/// A TCP forwarder from `listen` to `target`, started on demand.
async fn forward(listen: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listen.accept().await else { return };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_warning_then_reconnects_by_itself() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "tui-reconnect").await.unwrap().name().to_string();
    let samples = sympozium_testkit::repo_root().join("deploy/samples/sympoziuminstance-my-agent.yaml");
    plane.kubectl(&["apply", "-n", &ns, "-f", samples.to_str().unwrap()]).unwrap();

    // The same kubeconfig, but the server is a local port nobody listens on yet.
    let real = std::fs::read_to_string(plane.kubeconfig()).unwrap();
    let server = real.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().trim().to_string();
    let target = server.trim_start_matches("https://").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile_dir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, real.replace(&server, &format!("https://127.0.0.1:{port}"))).unwrap();

    let pty = Pty::start(
        "reconnect",
        &[env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", kubeconfig.to_str().unwrap(), "-n", &ns, "tui"],
        &[],
    );
    pty.wait_for("DISCONNECTED — reconnecting", 30);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let _proxy = Abort(tokio::spawn(forward(listener, target)));
    pty.wait_for("● connected", 90);
    pty.wait_for("my-agent", 30);
    pty.keys(&["q"]);
    pty.wait_for("[exited 0]", 20);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sympozium-tui-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

#[tokio::test]
async fn without_a_terminal_it_says_so() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: the TUI needs a terminal"), "{err}");
}

/// Waits until `check` holds for the instance.
async fn instance_until(
    api: &Api<sympozium_api::SympoziumInstance>,
    what: &str,
    check: impl Fn(&sympozium_api::SympoziumInstance) -> bool,
) -> sympozium_api::SympoziumInstance {
    for _ in 0..150 {
        let i = api.get("my-agent").await.unwrap();
        if check(&i) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_from_the_tui_reach_the_cluster() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "tui-edits").await.unwrap().name().to_string();
    let sample = sympozium_testkit::repo_root().join("deploy/samples/sympoziuminstance-my-agent.yaml");
    plane.kubectl(&["apply", "-n", &ns, "-f", sample.to_str().unwrap()]).unwrap();
    let instances: Api<sympozium_api::SympoziumInstance> = Api::namespaced(client.clone(), &ns);

    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let pty =
        Pty::start("edits", &[env!("CARGO_BIN_EXE_sympozium"), "--kubeconfig", &kubeconfig, "-n", &ns], &[]);
    pty.wait_for(&format!(" {ns}/my-agent "), 30);

    // /provider stores the provider and keeps the Secret.
    pty.keys(&["/"]);
    pty.type_text("provider my-agent anthropic claude-x");
    pty.keys(&["Enter"]);
    pty.wait_for("my-agent: provider anthropic, model claude-x", 20);
    let i = instance_until(&instances, "the provider", |i| i.spec.agents.default.model == "claude-x").await;
    assert_eq!(i.spec.auth_refs[0].provider.as_deref(), Some("anthropic"));
    assert_eq!(i.spec.auth_refs[0].secret, "openai-key");

    // A channel with a typed token: its own Secret; Telegram keeps its access control.
    pty.keys(&["/"]);
    pty.type_text("channel my-agent discord token=d1sc0rd");
    pty.keys(&["Enter"]);
    pty.wait_for("discord channel added", 20);
    let i = instance_until(&instances, "the discord channel", |i| i.spec.channels.len() == 2).await;
    assert_eq!(i.spec.channels[0].access_control.as_ref().unwrap().allowed_senders, ["123456"]);
    assert_eq!(i.spec.channels[1].config_ref.secret, "my-agent-discord-secret");
    let secret = Api::<Secret>::namespaced(client.clone(), &ns).get("my-agent-discord-secret").await.unwrap();
    assert_eq!(secret.data.unwrap()["DISCORD_BOT_TOKEN"].0, b"d1sc0rd");

    // The edit modal: the web endpoint becomes the web-endpoint skill; params stay; a
    // channel added in the form arrives and the others keep their access control.
    // (Opened once the TUI shows the discord channel: a form opened on an older version
    // could not be saved — the save is conditional on the resourceVersion it showed.)
    pty.keys(&["6"]);
    pty.wait_for("my-agent-discord-secret", 20);
    pty.keys(&["2"]);
    pty.wait_for(&format!(" {ns}/my-agent "), 20);
    pty.keys(&["e"]);
    pty.wait_for("edit my-agent", 20);
    pty.keys(&["Down", "Down", "Down", "Down", "Down", "Down"]);
    pty.type_text(", slack(slack-creds)");
    pty.keys(&["Down", "Space", "Enter"]);
    pty.wait_for("my-agent saved", 20);
    let i = instance_until(&instances, "the web-endpoint skill", |i| {
        i.spec.skills.iter().any(|s| s.skill_pack_ref.as_deref() == Some("web-endpoint"))
    })
    .await;
    assert_eq!(i.spec.skills[0].params.as_ref().unwrap()["CLUSTER"], "production");
    let channels: Vec<_> =
        i.spec.channels.iter().map(|c| (c.type_.as_str(), c.config_ref.secret.as_str())).collect();
    assert_eq!(
        channels,
        [("telegram", "telegram-creds"), ("discord", "my-agent-discord-secret"), ("slack", "slack-creds")]
    );
    assert_eq!(i.spec.channels[0].access_control.as_ref().unwrap().allowed_senders, ["123456"]);

    // describe: the object and its Events, fetched by the worker.
    pty.keys(&["d"]);
    pty.wait_for("describe sympoziuminstance/my-agent", 20);
    pty.wait_for("kind: SympoziumInstance", 20);
    pty.keys(&["Escape"]);

    // /schedule, then delete with confirmation from the Schedules view.
    pty.keys(&["/"]);
    pty.type_text("schedule my-agent 0 * * * * Say hello");
    pty.keys(&["Enter"]);
    pty.wait_for("sympoziumschedule/my-agent-schedule set", 20);
    let schedules: Api<sympozium_api::SympoziumSchedule> = Api::namespaced(client.clone(), &ns);
    let s = schedules.get("my-agent-schedule").await.unwrap();
    assert_eq!((s.spec.schedule.as_str(), s.spec.task.as_str()), ("0 * * * *", "Say hello"));
    pty.keys(&["7"]);
    // The status line already names the schedule, so wait for the view's own row count:
    // pressing `x` before the list arrives selects nothing.
    pty.wait_for("Schedules [1]", 20);
    pty.keys(&["x"]);
    pty.wait_for("Delete sympoziumschedule/my-agent-schedule? y/n", 20);
    pty.keys(&["y"]);
    pty.wait_for("sympoziumschedule/my-agent-schedule deleted", 20);
    sympozium_testkit::wait_until_gone(&schedules, "my-agent-schedule", "schedule", Duration::from_secs(30))
        .await
        .unwrap();
    pty.keys(&["q"]);
    pty.wait_for("[exited 0]", 20);
}
