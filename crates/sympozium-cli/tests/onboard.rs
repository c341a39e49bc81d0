//! `sympozium onboard` against the test control plane: driven through a pseudo-terminal
//! (the TUI's wizard screens), and as plain prompts from piped stdin. Both write the same
//! objects: the key and channel Secrets, `default-policy`, the instance and its heartbeat.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod tui_support;

use std::process::Stdio;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sympozium_api::{SympoziumInstance, SympoziumPolicy, SympoziumSchedule};
use sympozium_testkit::TestPlane;
use tokio::io::AsyncWriteExt;
use tui_support::Pty;

async fn setup(prefix: &str) -> (TestPlane, Client, String) {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
    (plane, client, ns)
}

async fn piped(plane: &TestPlane, ns: &str, input: &str) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium"))
        // The test namespace is also the system one: SkillPacks other tests install in
        // sympozium-system must not add a step here.
        .args([
            "--kubeconfig",
            plane.kubeconfig().to_str().unwrap(),
            "-n",
            ns,
            "onboard",
            "--system-namespace",
            ns,
        ])
        .env_remove("SYMPOZIUM_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn plain_prompts_from_piped_stdin() {
    let (plane, client, ns) = setup("onboard-plain").await;
    let answers = [
        "",                // namespace: the -n one
        "agent-a",         // name
        "1",               // OpenAI
        "sk-plain-secret", // key
        "",                // model gpt-4o
        "acme/infra",      // repository
        "Watch the nightly jobs",
        "2", // Telegram
        "",  // its token typed here
        "123:tg-token",
        "y", // default policy
        "n", // no sandbox
        "2", // every 30 minutes
        "",  // the default heartbeat task
        "y", // confirm
    ];
    let out = piped(&plane, &ns, &(answers.join("\n") + "\n")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Which LLM provider?") && stdout.contains("1) OpenAI"), "{stdout}");
    assert!(stdout.contains("✓ sympoziuminstance/agent-a"), "{stdout}");
    assert!(
        !stdout.contains("sk-plain-secret") && !stderr.contains("sk-plain-secret"),
        "the key is never printed"
    );
    assert!(!stdout.contains("123:tg-token"), "tokens are never printed");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let key = secrets.get("agent-a-openai-key").await.unwrap();
    assert!(key.data.unwrap().contains_key("OPENAI_API_KEY"));
    let tg = secrets.get("agent-a-telegram-secret").await.unwrap();
    assert!(tg.data.unwrap().contains_key("TELEGRAM_BOT_TOKEN"));
    let policy = Api::<SympoziumPolicy>::namespaced(client.clone(), &ns).get("default-policy").await.unwrap();
    assert!(policy.spec.feature_gates.unwrap()["code-execution"]);
    let inst = Api::<SympoziumInstance>::namespaced(client.clone(), &ns).get("agent-a").await.unwrap();
    let skills: Vec<_> = inst.spec.skills.iter().filter_map(|s| s.skill_pack_ref.clone()).collect();
    assert_eq!(skills, ["k8s-ops", "llmfit", "github-gitops", "memory"]);
    assert_eq!(inst.spec.skills[2].params.as_ref().unwrap()["repo"], "acme/infra");
    assert_eq!(inst.spec.agents.default.model, "gpt-4o");
    assert_eq!(inst.spec.auth_refs[0].secret, "agent-a-openai-key");
    assert_eq!(inst.spec.auth_refs[0].provider.as_deref(), Some("openai"));
    assert_eq!(inst.spec.policy_ref.as_deref(), Some("default-policy"));
    assert_eq!(inst.spec.channels[0].config_ref.secret, "agent-a-telegram-secret");
    let memory = inst.spec.memory.unwrap();
    assert_eq!((memory.enabled, memory.max_size_kb), (true, 256));
    assert_eq!(memory.system_prompt.as_deref(), Some("Watch the nightly jobs"));
    let hb =
        Api::<SympoziumSchedule>::namespaced(client.clone(), &ns).get("agent-a-heartbeat").await.unwrap();
    assert_eq!(hb.spec.schedule, "*/30 * * * *");
    assert!(hb.spec.task.starts_with("OBJECTIVE: Watch the nightly jobs\n\n"), "{}", hb.spec.task);
}

#[tokio::test]
async fn plain_prompts_reject_bad_answers_and_stop_cleanly() {
    let (plane, client, ns) = setup("onboard-errors").await;
    // A bad name is asked again; then input ends before the end: nothing is written.
    let out = piped(&plane, &ns, "\nNot A Name\nagent-b\n9\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("✗ name: use lower-case letters"), "{stdout}");
    assert!(stdout.contains("✗ provider: choose 1-7"), "{stdout}");
    assert!(stderr.starts_with("error: input ended before the wizard was finished"), "{stderr}");
    let instances = Api::<SympoziumInstance>::namespaced(client.clone(), &ns);
    assert!(instances.get_opt("agent-b").await.unwrap().is_none());

    // Declining at the end writes nothing either.
    let answers = ["", "agent-c", "4", "", "", "", "", "1", "y", "n", "5", "n"];
    let out = piped(&plane, &ns, &(answers.join("\n") + "\n")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
    assert!(instances.get_opt("agent-c").await.unwrap().is_none());
}

#[tokio::test]
async fn plain_prompts_with_skills_an_existing_channel_secret_and_a_cron_heartbeat() {
    let (plane, client, ns) = setup("onboard-steps").await;
    let pack: sympozium_api::SkillPack = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack", "metadata": {"name": "team-skill"},
        "spec": {"category": "testing", "skills": [{"name": "s", "content": "Do s."}]}}))
    .unwrap();
    Api::<sympozium_api::SkillPack>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &pack)
        .await
        .unwrap();
    let answers = |secret: &str| {
        [
            "",
            "agent-s",
            "4",
            "",
            "",
            "",
            "",  // namespace, name, Ollama, URL, model, repo, instructions
            "1", // skills: team-skill
            "2", // Telegram
            "2", // its token is in an existing Secret
            secret,
            "y",
            "n",
            "6",          // custom heartbeat
            "0 25 * * *", // refused: hour 25
            "15 8 * * 1-5",
            "Check the backlog",
            "y",
        ]
        .join("\n")
            + "\n"
    };
    // The Secret must exist: nothing is written when it does not.
    let out = piped(&plane, &ns, &answers("tg-existing")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("1) team-skill: testing"), "{stdout}");
    assert!(stdout.contains("✗ heartbeat_cron: \"0 25 * * *\": hour field"), "{stdout}");
    assert!(stderr.contains("channel Secret \"tg-existing\" not found"), "{stderr}");
    let instances = Api::<SympoziumInstance>::namespaced(client.clone(), &ns);
    assert!(instances.get_opt("agent-s").await.unwrap().is_none());

    let tg: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tg-existing"}, "stringData": {"TELEGRAM_BOT_TOKEN": "1:x"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns).create(&Default::default(), &tg).await.unwrap();
    let out = piped(&plane, &ns, &answers("tg-existing")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Channel:      telegram, token in Secret tg-existing"), "{stdout}");
    let inst = instances.get("agent-s").await.unwrap();
    let skills: Vec<_> = inst.spec.skills.iter().filter_map(|s| s.skill_pack_ref.clone()).collect();
    assert_eq!(skills, ["team-skill", "memory"]);
    assert_eq!(inst.spec.channels[0].config_ref.secret, "tg-existing");
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    assert!(secrets.get_opt("agent-s-telegram-secret").await.unwrap().is_none(), "no Secret of its own");
    let hb =
        Api::<SympoziumSchedule>::namespaced(client.clone(), &ns).get("agent-s-heartbeat").await.unwrap();
    assert_eq!((hb.spec.schedule.as_str(), hb.spec.task.as_str()), ("15 8 * * 1-5", "Check the backlog"));
}

#[tokio::test]
async fn through_a_pseudo_terminal() {
    let (plane, client, ns) = setup("onboard-pty").await;
    let kubeconfig = plane.kubeconfig().to_str().unwrap().to_string();
    let pty = Pty::start(
        "onboard",
        &[
            env!("CARGO_BIN_EXE_sympozium"),
            "--kubeconfig",
            &kubeconfig,
            "-n",
            &ns,
            "onboard",
            "--system-namespace",
            &ns,
        ],
        &[("SYMPOZIUM_API_KEY", "sk-from-env")],
    );
    pty.wait_for("Onboard an agent", 30);
    pty.wait_for(&format!("(Enter for {ns})"), 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Agent (instance) name", 15);
    pty.type_text("agent-pty");
    pty.keys(&["Enter"]);
    pty.wait_for("Which LLM provider?", 15);
    pty.keys(&["Down", "Enter"]); // Anthropic
    pty.wait_for("Enter keeps the key from SYMPOZIUM_API_KEY", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("claude-sonnet-4-20250514", 15);
    pty.keys(&["Enter"]); // model
    pty.wait_for("GitHub repository", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Instructions", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Chat channel", 15);
    pty.keys(&["Enter"]); // none
    pty.wait_for("default policy", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("agent sandbox", 15);
    pty.keys(&["Enter"]);
    pty.wait_for("Heartbeat", 15);
    pty.keys(&["Down", "Down", "Down", "Down", "Enter"]); // none
    let s = pty.wait_for("Create it?", 15);
    assert!(s.contains("Secret agent-pty-anthropic-key") && !s.contains("sk-from-env"), "{s}");
    pty.keys(&["Enter"]);
    pty.wait_for("agent-pty is ready", 30);
    pty.wait_for("[exited 0]", 20);

    let key = Api::<Secret>::namespaced(client.clone(), &ns).get("agent-pty-anthropic-key").await.unwrap();
    let data = key.data.unwrap();
    assert_eq!(data["ANTHROPIC_API_KEY"].0, b"sk-from-env");
    let inst = Api::<SympoziumInstance>::namespaced(client.clone(), &ns).get("agent-pty").await.unwrap();
    assert_eq!(inst.spec.agents.default.model, "claude-sonnet-4-20250514");
    assert!(inst.spec.channels.is_empty());
    let schedules = Api::<SympoziumSchedule>::namespaced(client.clone(), &ns);
    assert!(schedules.get_opt("agent-pty-heartbeat").await.unwrap().is_none(), "no heartbeat chosen");
}
