//! Snapshots of every TUI view, the modals and every wizard step, rendered on ratatui's
//! `TestBackend` from fixed objects and a fixed clock. The snapshots are committed under
//! `tests/snapshots/tui/`; any drift fails. `UPDATE_SNAPSHOTS=1` rewrites them (review the
//! diff before committing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::{Value, json};
use sympozium_cli::tui::actions::Action;
use sympozium_cli::tui::app::{App, Detail, Mode};
use sympozium_cli::tui::data::{Connection, Update};
use sympozium_cli::tui::render;
use sympozium_cli::tui::views::View;

const NOW: &str = "2026-01-01T12:00:00Z";

fn at(minutes_ago: i64) -> String {
    let now: jiff::Timestamp = NOW.parse().unwrap();
    (now - jiff::SignedDuration::from_mins(minutes_ago)).to_string()
}

fn obj<K: serde::de::DeserializeOwned>(kind: &str, name: &str, age_min: i64, rest: Value) -> Arc<K> {
    let mut v = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "team", "creationTimestamp": at(age_min)}});
    if kind == "Pod" {
        v["apiVersion"] = json!("v1");
    }
    for (k, val) in rest.as_object().unwrap() {
        if k == "metadata" {
            for (mk, mv) in val.as_object().unwrap() {
                v["metadata"][mk] = mv.clone();
            }
        } else {
            v[k] = val.clone();
        }
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

/// A namespace with a team, a stand-alone agent, runs of every kind, and one object of
/// every other kind.
pub fn fixture_app() -> App {
    let mut app = App::new("team", NOW.parse().unwrap());
    app.update(Update::Connection(Connection::Connected));
    let persona = |name: &str, model: &str, interval: &str| {
        json!({"name": name, "systemPrompt": "You watch.", "model": model, "skills": ["k8s-ops"],
               "schedule": {"type": "heartbeat", "interval": interval, "task": "Check."}})
    };
    app.update(Update::Packs(vec![
        obj("PersonaPack", "platform-team", 600, json!({
            "spec": {"enabled": true, "category": "platform", "description": "Platform engineering team",
                     "authRefs": [{"provider": "anthropic", "secret": "platform-team-anthropic-key"}],
                     "personas": [persona("security-guardian", "claude-sonnet-4-20250514", "30m"),
                                  persona("sre-watchdog", "claude-sonnet-4-20250514", "5m"),
                                  persona("platform-engineer", "gpt-4o", "1h")]},
            "status": {"phase": "Ready", "personaCount": 3, "installedCount": 2,
                       "installedPersonas": [{"name": "security-guardian", "instanceName": "platform-team-security-guardian"},
                                             {"name": "sre-watchdog", "instanceName": "platform-team-sre-watchdog"}]}})),
        obj("PersonaPack", "developer-team", 3000, json!({
            "spec": {"enabled": false, "category": "development", "description": "A software team",
                     "personas": [persona("tech-lead", "gpt-4o", "1h")]}})),
    ]));
    app.update(Update::Instances(vec![
        obj("SympoziumInstance", "platform-team-sre-watchdog", 590, json!({
            "metadata": {"labels": {"sympozium.ai/persona-pack": "platform-team"}},
            "spec": {"agents": {"default": {"model": "claude-sonnet-4-20250514"}},
                     "authRefs": [{"provider": "anthropic", "secret": "platform-team-anthropic-key"}],
                     "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "memory"}],
                     "channels": [{"type": "telegram", "configRef": {"secret": "platform-team-telegram-secret"},
                                   "accessControl": {"allowedSenders": ["42"]}}]},
            "status": {"phase": "Running", "activeAgentPods": 1, "totalAgentRuns": 3,
                       "channels": [{"type": "telegram", "status": "Connected", "lastHealthCheck": at(1), "message": "polling"}]}})),
        obj("SympoziumInstance", "my-agent", 90, json!({
            "spec": {"agents": {"default": {"model": "gpt-4o", "agentSandbox": {"enabled": true}}},
                     "authRefs": [{"secret": "my-agent-openai-key"}], "policyRef": "restrictive"},
            "status": {"phase": "Pending", "webEndpoint": {"status": "Ready", "url": "https://my-agent.example.com"}}})),
    ]));
    app.update(Update::Runs(vec![
        obj("AgentRun", "platform-team-sre-watchdog-7k2xq", 30, json!({
            "metadata": {"labels": {"sympozium.ai/instance": "platform-team-sre-watchdog", "sympozium.ai/conversation": "tui"},
                         "annotations": {"sympozium.ai/message": "Any failing pods?"}},
            "spec": {"instanceRef": "platform-team-sre-watchdog", "agentId": "primary", "sessionKey": "s1",
                     "task": "Any failing pods?", "model": {"provider": "anthropic", "model": "claude-sonnet-4-20250514", "authSecretRef": "k"}},
            "status": {"phase": "Succeeded", "podName": "platform-team-sre-watchdog-7k2xq-abcde",
                       "result": "All 14 pods are healthy.\nNo restarts in the last hour.",
                       "tokenUsage": {"inputTokens": 900, "outputTokens": 40, "totalTokens": 940, "toolCalls": 2, "durationMs": 3100}}})),
        obj("AgentRun", "platform-team-sre-watchdog-schedule-12", 4, json!({
            "metadata": {"labels": {"sympozium.ai/instance": "platform-team-sre-watchdog",
                                    "sympozium.ai/schedule": "platform-team-sre-watchdog-schedule", "sympozium.ai/type": "heartbeat"}},
            "spec": {"instanceRef": "platform-team-sre-watchdog", "agentId": "primary", "sessionKey": "s2",
                     "task": "Check.", "model": {"provider": "anthropic", "model": "m", "authSecretRef": "k"}},
            "status": {"phase": "Running", "podName": "platform-team-sre-watchdog-schedule-12-xyz"}})),
        obj("AgentRun", "my-agent-f00ba", 60, json!({
            "metadata": {"labels": {"sympozium.ai/instance": "my-agent"}},
            "spec": {"instanceRef": "my-agent", "agentId": "primary", "sessionKey": "s3",
                     "task": "Summarise the cluster", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}},
            "status": {"phase": "Failed", "error": "model returned 401"}})),
    ]));
    app.update(Update::Policies(vec![obj("SympoziumPolicy", "restrictive", 3000, json!({
        "spec": {"toolGating": {"defaultAction": "deny", "rules": [{"tool": "execute_command", "action": "ask"}]},
                 "featureGates": {"code-execution": false, "file-access": true}},
        "status": {"boundInstances": 1}}))]));
    app.update(Update::Skills(vec![obj(
        "SkillPack",
        "k8s-ops",
        3000,
        json!({
        "spec": {"skills": [{"name": "kubectl", "description": "Inspect the cluster", "content": "#"}],
                 "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:latest"}},
        "status": {"configMapName": "skill-k8s-ops", "skillCount": 1}}),
    )]));
    app.update(Update::Schedules(vec![obj("SympoziumSchedule", "platform-team-sre-watchdog-schedule", 590, json!({
        "spec": {"instanceRef": "platform-team-sre-watchdog", "schedule": "2/5 * * * *", "task": "Check.", "type": "heartbeat"},
        "status": {"phase": "Active", "totalRuns": 12, "lastRunName": "platform-team-sre-watchdog-schedule-12"}}))]));
    app.update(Update::Configs(vec![obj(
        "SympoziumConfig",
        "default",
        3000,
        json!({
        "spec": {"gateway": {"enabled": true, "gatewayClassName": "envoy", "name": "sympozium-gateway",
                             "baseDomain": "example.com", "tls": {"enabled": true, "secretName": "gw-tls"}}},
        "status": {"phase": "Ready", "gateway": {"ready": true, "address": "10.0.0.1", "listenerCount": 2}}}),
    )]));
    app.update(Update::McpServers(vec![
        obj("MCPServer", "github", 120, json!({
            "spec": {"transportType": "stdio", "toolsPrefix": "gh", "timeout": 30, "toolsDeny": ["delete_repo"],
                     "deployment": {"image": "ghcr.io/github/github-mcp-server:1", "cmd": "github-mcp-server"}},
            "status": {"ready": true, "url": "http://github.team.svc:8080/mcp", "toolCount": 2,
                       "tools": ["create_issue", "search_code"],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Discovered",
                                       "message": "2 tools", "lastTransitionTime": at(100)}]}})),
        obj("MCPServer", "wiki", 45, json!({
            "spec": {"transportType": "http", "toolsPrefix": "wiki", "url": "https://wiki.internal/mcp"},
            "status": {"ready": false, "url": "https://wiki.internal/mcp",
                       "lastError": "connection refused (https://wiki.internal/mcp)"}})),
    ]));
    app.update(Update::Pods(vec![obj("Pod", "platform-team-sre-watchdog-schedule-12-xyz", 4, json!({
        "metadata": {"labels": {"sympozium.ai/instance": "platform-team-sre-watchdog",
                                "app.kubernetes.io/managed-by": "sympozium-controller"}},
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "agent"}, {"name": "ipc-bridge"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7",
                   "containerStatuses": [{"name": "agent", "ready": true, "restartCount": 0, "image": "a", "imageID": "",
                                          "state": {"running": {}}}]}}))]));
    app
}

/// The frame as text: one line per row, trailing blanks trimmed.
fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(160, 40)).unwrap();
    terminal.draw(|f| render::draw(f, app)).unwrap();
    let buf = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn check(name: &str, actual: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tui");
    let path = dir.join(format!("{name}.txt"));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {}; run with UPDATE_SNAPSHOTS=1 and review it", path.display())
    });
    assert!(expected == actual, "snapshot {name} drifted.\n--- expected\n{expected}\n--- actual\n{actual}");
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

#[test]
fn every_view() {
    let mut app = fixture_app();
    for view in View::ALL {
        app.on_key(key(KeyCode::Char(view.key())));
        assert_eq!(app.view, view);
        let s = screen(&app);
        check(&format!("view-{}", view.title().to_lowercase().replace(' ', "-")), &s);
    }
    // What a user would look for on each view.
    app.on_key(key(KeyCode::Char('2')));
    app.on_key(key(KeyCode::Char('j')));
    let s = screen(&app);
    assert!(
        s.contains("platform-team-sre-watchdog")
            && s.contains("anthropic")
            && s.contains("claude-sonnet-4-20250514"),
        "{s}"
    );
    assert!(s.contains("Pending ⧉"), "sandboxed agent marked: {s}");
    assert!(s.contains("All 14 pods are healthy."), "chat feed shows the answer: {s}");
    app.on_key(key(KeyCode::Char('9')));
    assert!(screen(&app).contains("platform-team-sre-watchdog-schedule-12-xyz"), "agent pods are listed");
}

#[test]
fn detail_drill_in_pager_and_modals() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('j'))); // platform-team-sre-watchdog
    app.on_key(key(KeyCode::Char('F')));
    assert_eq!(app.detail, Detail::Full);
    check("detail-instance-full", &screen(&app));
    app.on_key(key(KeyCode::Char('F')));

    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.view, View::Channels);
    check("drill-in-channels", &screen(&app));

    app.on_key(key(KeyCode::Char('3')));
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Enter));
    check("run-result", &screen(&app));
    app.on_key(key(KeyCode::Esc));

    app.on_key(key(KeyCode::Char('?')));
    check("help", &screen(&app));
    app.on_key(key(KeyCode::Esc));

    app.on_key(key(KeyCode::Char('2')));
    app.on_key(key(KeyCode::Char('x')));
    check("confirm-delete", &screen(&app));
    app.on_key(key(KeyCode::Char('n')));
    assert!(app.outbox.is_empty(), "n deletes nothing");
    app.on_key(key(KeyCode::Char('j')));

    app.on_key(key(KeyCode::Char('e')));
    check("edit-instance", &screen(&app));
    app.on_key(key(KeyCode::Esc));

    app.on_key(key(KeyCode::Char('R')));
    typed(&mut app, "and now?");
    check("chat-input", &screen(&app));
    app.on_key(key(KeyCode::Enter));
    match app.outbox.pop() {
        Some(Action::Chat { message, task, .. }) => {
            assert_eq!(message, "and now?");
            assert!(task.contains("User: Any failing pods?\nAssistant: All 14 pods are healthy."), "{task}");
            assert!(task.ends_with("## New message\nand now?"), "{task}");
        }
        other => panic!("expected a chat action, got {other:?}"),
    }

    app.on_key(key(KeyCode::Char('/')));
    typed(&mut app, "prov");
    app.on_key(key(KeyCode::Tab));
    check("command-line", &screen(&app));
    app.on_key(key(KeyCode::Esc));

    app.update(Update::Connection(Connection::Disconnected("connection refused".into())));
    check("disconnected", &screen(&app));
}

/// Answers the wizard step by step, snapshotting each step; returns the screens joined.
fn walk(app: &mut App, answers: &[Vec<KeyCode>]) -> String {
    let mut frames = String::new();
    for (i, keys) in answers.iter().enumerate() {
        assert!(matches!(app.mode, Mode::Wizard(..)), "step {i}: wizard closed early");
        frames.push_str(&format!("=== step {} ===\n", i + 1));
        frames.push_str(&screen(app));
        for k in keys {
            app.on_key(key(*k));
        }
    }
    frames
}

fn text(s: &str) -> Vec<KeyCode> {
    let mut v: Vec<_> = s.chars().map(KeyCode::Char).collect();
    v.push(KeyCode::Enter);
    v
}

#[test]
fn pack_wizard_every_step() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('1')));
    app.on_key(key(KeyCode::Enter)); // developer-team, the pack not yet active
    let (enter, down) = (KeyCode::Enter, KeyCode::Down);
    let key_text = text("sk-ant-secret");
    let repo = text("acme/infra");
    let task = text("Keep prod green");
    let token = text("123:abc");
    let steps: Vec<Vec<KeyCode>> = vec![
        vec![down, enter],               // provider: Anthropic
        key_text.clone(),                // key
        vec![enter],                     // model: default
        repo.clone(),                    // repository
        task.clone(),                    // team task
        vec![enter],                     // sandbox: no (default)
        vec![KeyCode::Char(' '), enter], // channels: Telegram
        token.clone(),                   // telegram token
        vec![down, down, down, enter],   // heartbeat: hourly
        vec![enter],                     // confirm
    ];
    let frames = walk(&mut app, &steps);
    assert!(!frames.contains("sk-ant-secret") && !frames.contains("123:abc"), "secrets are never shown");
    check("wizard-pack", &frames);
    assert!(matches!(app.mode, Mode::Normal));
    match app.outbox.pop() {
        Some(Action::ActivatePack { ns, activation }) => {
            assert_eq!(ns, "team");
            assert_eq!(activation.pack, "developer-team");
            assert_eq!(activation.provider, "anthropic");
            assert_eq!(
                activation.credentials.get("ANTHROPIC_API_KEY").map(String::as_str),
                Some("sk-ant-secret")
            );
            assert_eq!(activation.model.as_deref(), Some("claude-sonnet-4-20250514"));
            assert_eq!(activation.repo.as_deref(), Some("acme/infra"));
            assert_eq!(activation.task.as_deref(), Some("Keep prod green"));
            assert_eq!(activation.channels[0].0, "telegram");
            assert_eq!(
                activation.channels[0].1.get("TELEGRAM_BOT_TOKEN").map(String::as_str),
                Some("123:abc")
            );
            assert_eq!(activation.heartbeat.as_deref(), Some("1h"));
        }
        other => panic!("expected an activation, got {other:?}"),
    }
}

#[test]
fn onboard_wizard_every_step() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('O')));
    let (enter, down) = (KeyCode::Enter, KeyCode::Down);
    let url = text("http://ollama.local:11434/v1");
    let slack_bot = text("xoxb-1");
    let slack_app = text("xapp-1");
    let instructions = text("Watch the nightly jobs");
    let steps: Vec<Vec<KeyCode>> = vec![
        vec![enter],                     // namespace: team
        vec![enter],                     // name: my-agent
        vec![down, down, down, enter],   // provider: Ollama
        url.clone(),                     // base URL
        vec![enter],                     // model: llama3
        vec![enter],                     // repo: none
        instructions.clone(),            // instructions
        vec![KeyCode::Char(' '), enter], // skills: the cluster's first SkillPack
        vec![down, down, enter],         // channel: Slack
        vec![enter],                     // its tokens typed here
        slack_bot.clone(),
        slack_app.clone(),
        vec![enter], // default policy: yes
        vec![enter], // sandbox: no
        vec![enter], // heartbeat: hourly
        vec![enter], // heartbeat task: the default
        vec![enter], // confirm
    ];
    let frames = walk(&mut app, &steps);
    check("wizard-onboard", &frames);
    match app.outbox.pop() {
        Some(Action::Onboard(o)) => {
            assert_eq!(
                (o.namespace.as_str(), o.name.as_str(), o.provider.as_str()),
                ("team", "my-agent", "ollama")
            );
            assert_eq!(o.base_url.as_deref(), Some("http://ollama.local:11434/v1"));
            assert!(o.credentials.is_empty(), "Ollama needs no key");
            assert_eq!(o.channel.as_ref().unwrap().1.len(), 2, "Slack bot and app tokens");
            assert_eq!(o.heartbeat.as_deref(), Some("0 * * * *"));
            assert_eq!(o.heartbeat_task, None, "the default task");
            assert_eq!(o.skills.as_deref(), Some(&["k8s-ops".to_string()][..]));
            assert!(o.policy && !o.sandbox);
        }
        other => panic!("expected an onboarding, got {other:?}"),
    }
}

#[test]
fn wizard_esc_goes_back_and_cancels() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('O')));
    app.on_key(key(KeyCode::Enter)); // namespace
    app.on_key(key(KeyCode::Esc)); // back to namespace
    app.on_key(key(KeyCode::Esc)); // cancel
    assert!(matches!(app.mode, Mode::Normal));
    assert!(app.outbox.is_empty());
    assert!(app.status.as_ref().unwrap().0.contains("nothing was written"));
}

#[test]
fn streamed_text_and_approval_prompt() {
    use sympozium_cli::tui::data::Approval;
    let mut app = fixture_app();
    app.update(Update::Bus(Connection::Connected));
    app.on_key(key(KeyCode::Char('j'))); // platform-team-sre-watchdog
    app.update(Update::Chunk {
        run: "platform-team-sre-watchdog-schedule-12".into(),
        index: 0,
        text: "Checking nodes".into(),
    });
    check("chat-streaming", &screen(&app));
    // A scheduled run's approval only shows in the header.
    let scheduled = Approval {
        request_id: "req-0".into(),
        run: "platform-team-sre-watchdog-schedule-12".into(),
        ns: "team".into(),
        instance: "platform-team-sre-watchdog".into(),
        tool: "execute_command".into(),
        arguments: "{}".into(),
    };
    app.update(Update::Approval(scheduled));
    assert!(matches!(app.mode, Mode::Normal));
    assert!(screen(&app).contains("1 approval(s) waiting: A"));
    app.update(Update::Answered("req-0".into()));
    // The console's own chat run: the prompt opens by itself.
    let approval = Approval {
        request_id: "req-1".into(),
        run: "platform-team-sre-watchdog-7k2xq".into(),
        ns: "team".into(),
        instance: "platform-team-sre-watchdog".into(),
        tool: "execute_command".into(),
        arguments: r#"{"command":"kubectl delete pod x"}"#.into(),
    };
    app.update(Update::Approval(approval.clone()));
    assert!(matches!(app.mode, Mode::Approve(_)), "the prompt opens by itself");
    check("approval-prompt", &screen(&app));
    app.on_key(key(KeyCode::Esc));
    assert!(screen(&app).contains("1 approval(s) waiting: A"));
    app.on_key(key(KeyCode::Char('A')));
    app.on_key(key(KeyCode::Char('n')));
    match app.outbox.pop() {
        Some(Action::Approve { approval: a, approved }) => assert_eq!((a, approved), (approval, false)),
        other => panic!("expected an approval answer, got {other:?}"),
    }
    assert!(app.data.approvals.is_empty() && matches!(app.mode, Mode::Normal));
}

#[test]
fn slash_commands_and_edit_keep_what_they_do_not_change() {
    let mut app = fixture_app();
    let run_cmd = |app: &mut App, line: &str| {
        app.on_key(key(KeyCode::Char('/')));
        typed(app, line);
        app.on_key(key(KeyCode::Enter));
        app.outbox.pop()
    };
    // /provider stores the provider (the original only set the model) and keeps the Secret.
    match run_cmd(&mut app, "provider my-agent anthropic claude-x") {
        Some(Action::Patch { patch, .. }) => {
            assert_eq!(patch["spec"]["authRefs"][0]["provider"], "anthropic");
            assert_eq!(patch["spec"]["authRefs"][0]["secret"], "my-agent-openai-key");
            assert_eq!(patch["spec"]["agents"]["default"]["model"], "claude-x");
            assert!(patch["spec"]["agents"]["default"]["baseURL"].is_null());
        }
        other => panic!("{other:?}"),
    }
    // Adding a channel keeps the access control of the existing one.
    match run_cmd(&mut app, "channel platform-team-sre-watchdog slack slack-secret") {
        Some(Action::Patch { patch, .. }) => {
            let channels = patch["spec"]["channels"].as_array().unwrap();
            assert_eq!(channels.len(), 2);
            assert_eq!(channels[0]["accessControl"]["allowedSenders"][0], "42");
            assert_eq!(channels[1]["configRef"]["secret"], "slack-secret");
        }
        other => panic!("{other:?}"),
    }
    // A token typed in the command goes into <instance>-<type>-secret, written first.
    match run_cmd(&mut app, "channel my-agent discord token=d1sc0rd") {
        Some(Action::Patch { patch, .. }) => {
            assert_eq!(patch["spec"]["channels"][0]["configRef"]["secret"], "my-agent-discord-secret")
        }
        other => panic!("{other:?}"),
    }
    match app.outbox.pop() {
        Some(Action::ChannelSecret { name, data, .. }) => {
            assert_eq!(name, "my-agent-discord-secret");
            assert_eq!(data["DISCORD_BOT_TOKEN"], "d1sc0rd");
        }
        other => panic!("{other:?}"),
    }
    // Excluding one persona asks first, then appends to excludePersonas.
    assert!(run_cmd(&mut app, "persona exclude platform-team sre-watchdog").is_none());
    app.on_key(key(KeyCode::Char('y')));
    match app.outbox.pop() {
        Some(Action::Patch { patch, .. }) => {
            assert_eq!(patch["spec"]["excludePersonas"], json!(["sre-watchdog"]))
        }
        other => panic!("{other:?}"),
    }
    assert!(run_cmd(&mut app, "channel platform-team-sre-watchdog telegram x").is_none());
    assert!(app.status.as_ref().unwrap().0.contains("already has a telegram channel"));
    // /abort: a finished run is left alone, a running one is stopped.
    assert!(run_cmd(&mut app, "abort platform-team-sre-watchdog-7k2xq").is_none());
    assert!(app.status.as_ref().unwrap().0.contains("already finished (Succeeded)"));
    match run_cmd(&mut app, "abort platform-team-sre-watchdog-schedule-12") {
        Some(Action::Delete { name, .. }) => assert_eq!(name, "platform-team-sre-watchdog-schedule-12"),
        other => panic!("{other:?}"),
    }
    // The edit modal turns the web endpoint on as the web-endpoint skill, keeping the others.
    app.on_key(key(KeyCode::Char('2')));
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Char('e')));
    for _ in 0..5 {
        app.on_key(key(KeyCode::Down));
    }
    typed(&mut app, ", github-gitops(repo=acme/x)"); // Skills
    app.on_key(key(KeyCode::Down)); // Channels, left as they are
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Char(' '))); // Web endpoint
    app.on_key(key(KeyCode::Enter));
    let saved: Vec<_> = app.outbox.drain(..).collect();
    match saved.first() {
        Some(Action::Patch { patch, .. }) => {
            let skills: Vec<_> = patch["spec"]["skills"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["skillPackRef"].clone())
                .collect();
            assert_eq!(
                skills,
                [json!("k8s-ops"), json!("memory"), json!("github-gitops"), json!("web-endpoint")]
            );
            assert_eq!(patch["spec"]["skills"][2]["params"]["repo"], "acme/x");
            assert!(patch["spec"].get("channels").is_none(), "channels are not touched");
            assert!(patch["spec"].get("webEndpoint").is_none(), "not the deprecated field");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(saved.get(1), Some(Action::Patch { name, .. }) if name == "platform-team-sre-watchdog-schedule")
    );
}

#[test]
fn gateway_edit_modal() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('8')));
    app.on_key(key(KeyCode::Char('e')));
    check("edit-gateway", &screen(&app));
    for _ in 0..3 {
        app.on_key(key(KeyCode::Down));
    }
    for _ in 0.."example.com".len() {
        app.on_key(key(KeyCode::Backspace));
    }
    typed(&mut app, "agents.example.org");
    app.on_key(key(KeyCode::Enter));
    match app.outbox.pop() {
        Some(Action::Patch { name, patch, .. }) => {
            assert_eq!(name, "default");
            let gw = &patch["spec"]["gateway"];
            assert_eq!(gw["baseDomain"], "agents.example.org");
            assert_eq!(
                (gw["enabled"].as_bool(), gw["tls"]["secretName"].as_str()),
                (Some(true), Some("gw-tls"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mcp_servers_view_lists_every_namespace_and_shows_the_tools() {
    let mut app = fixture_app();
    app.all_namespaces = true;
    // The same name in another namespace is a different server.
    let mut data_servers = app.data.mcp_servers.clone();
    data_servers.push(obj(
        "MCPServer",
        "search",
        5,
        json!({
        "metadata": {"namespace": "other"},
        "spec": {"transportType": "stdio", "toolsPrefix": "web", "deployment": {"image": "search:1"}}}),
    ));
    app.update(Update::McpServers(data_servers));
    app.on_key(key(KeyCode::Char('0')));
    assert_eq!(app.view, View::McpServers);
    let s = screen(&app);
    check("mcp-all-namespaces", &s);
    let header = s.lines().find(|l| l.contains("TRANSPORT")).unwrap();
    assert!(header.contains("NAMESPACE") && header.contains("READY") && header.contains("TOOLS"), "{header}");
    let gh = s.lines().find(|l| l.contains("│team") && l.contains("github")).unwrap();
    assert!(
        gh.contains("yes") && gh.contains("http://github.team.svc:8080/mcp") && gh.contains(" 2 "),
        "{gh}"
    );
    let other = s.lines().find(|l| l.contains("│other") && l.contains("search")).unwrap();
    assert!(other.contains("no") && other.contains("stdio (managed)"), "{other}");
    // Enter expands the selected server (team/github, after other/search): its tools under
    // the names agents call.
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.detail, Detail::Full);
    let s = screen(&app);
    check("mcp-tools", &s);
    assert!(s.contains("• gh_create_issue") && s.contains("• gh_search_code"), "{s}");
    assert!(s.contains("Deny: delete_repo"), "{s}");
    app.on_key(key(KeyCode::Char('F')));
    // A server whose discovery failed says why.
    app.on_key(key(KeyCode::Char('j')));
    let s = screen(&app);
    assert!(s.contains("Last error: connection refused"), "{s}");
    // x asks before deleting the MCPServer.
    app.on_key(key(KeyCode::Char('x')));
    assert!(screen(&app).contains("Delete mcpserver/wiki? y/n"));
    app.on_key(key(KeyCode::Char('y')));
    assert!(
        matches!(app.outbox.pop(), Some(Action::Delete { ns, name, .. }) if ns == "team" && name == "wiki")
    );
    // /mcp and /gateway open the views too.
    typed(&mut app, "/gw");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.view, View::Gateway);
    typed(&mut app, "/mcp");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.view, View::McpServers);
}

#[test]
fn gateway_view_shows_the_gateway_and_one_row_per_route() {
    let mut app = fixture_app();
    app.all_namespaces = true;
    let mut instances = app.data.instances.clone();
    instances.push(obj("SympoziumInstance", "support-bot", 30, json!({
        "metadata": {"namespace": "support"},
        "spec": {"agents": {"default": {"model": "gpt-4o"}}},
        "status": {"phase": "Serving", "webEndpoint": {"status": "Serving",
            "url": "http://support-bot-web-endpoint-server.support.svc:8080", "authSecretName": "support-bot-web-proxy-key"}}})));
    app.update(Update::Instances(instances));
    app.on_key(key(KeyCode::Char('8')));
    let s = screen(&app);
    check("gateway-routes", &s);
    assert!(
        s.contains("gateway team/sympozium-gateway · class envoy · base domain example.com · TLS gw-tls"),
        "{s}"
    );
    assert!(s.contains("phase Ready · ready yes · address 10.0.0.1 · listeners 2"), "{s}");
    assert!(s.contains("Routes [2]"), "one row per web endpoint, not per instance: {s}");
    let routed = s.lines().find(|l| l.contains("│team") && l.contains("my-agent")).unwrap();
    assert!(
        routed.contains("my-agent.example.com") && routed.contains("https://my-agent.example.com"),
        "{routed}"
    );
    let service_only = s.lines().find(|l| l.contains("│support") && l.contains("support-bot")).unwrap();
    // Served on its cluster Service only: no hostname (the URL is in the detail).
    assert!(service_only.contains("Serving") && service_only.contains("  -  "), "{service_only}");
    assert!(s.contains("URL: http://support-bot-web-endpoint-server.support.svc:8080"), "{s}");
    assert!(s.contains("HTTPRoute: none (cluster Service only)"), "{s}");
    // The detail of the routed one names the HTTPRoute and how to get the key.
    app.on_key(key(KeyCode::Char('j')));
    let s = screen(&app);
    assert!(s.contains("HTTPRoute: team/my-agent-web-endpoint-web"), "{s}");
    assert!(s.contains("sympozium instances endpoint my-agent -n team"), "{s}");
    // Routes follow the skill: x explains instead of deleting the instance.
    app.on_key(key(KeyCode::Char('x')));
    assert!(app.outbox.is_empty() && matches!(app.mode, Mode::Normal));
    assert!(screen(&app).contains("remove the skill"), "{}", screen(&app));
}

#[test]
fn gateway_view_without_a_config_says_so() {
    let mut app = fixture_app();
    app.update(Update::Configs(vec![]));
    app.update(Update::Instances(vec![]));
    app.on_key(key(KeyCode::Char('8')));
    let s = screen(&app);
    assert!(s.contains("no SympoziumConfig: no gateway"), "{s}");
    assert!(s.contains("no web endpoints: add the web-endpoint skill"), "{s}");
    app.on_key(key(KeyCode::Char('e')));
    assert!(screen(&app).contains("no SympoziumConfig to edit"), "{}", screen(&app));
}
