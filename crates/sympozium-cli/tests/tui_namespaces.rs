//! The TUI across namespaces (its default, as in the original): a NAMESPACE column, `/ns`
//! narrowing and widening, slash commands acting in the namespace of the object they name,
//! and the chat showing what was asked rather than the memory a schedule put before it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_cli::tui::actions::Action;
use sympozium_cli::tui::app::App;
use sympozium_cli::tui::chat;
use sympozium_cli::tui::data::{Connection, Update};
use sympozium_cli::tui::slash;
use sympozium_cli::tui::views::View;

fn instance(ns: &str, name: &str) -> Arc<sympozium_api::SympoziumInstance> {
    Arc::new(
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"agents": {"default": {"model": "gpt-4o"}}}}))
        .unwrap(),
    )
}

fn app() -> App {
    let mut app = App::cluster_wide("default", "2026-01-01T12:00:00Z".parse().unwrap());
    app.update(Update::Connection(Connection::Connected));
    app.update(Update::Instances(vec![
        instance("sympozium-system", "platform-team-sre-watchdog"),
        instance("sympozium-system", "my-agent"),
        instance("team", "my-agent"),
    ]));
    app.show(View::Instances);
    app
}

fn patched_namespace(app: &mut App) -> String {
    match app.outbox.pop() {
        Some(Action::Patch { ns, .. }) => ns,
        other => panic!("expected a patch, got {other:?}; status {:?}", app.status),
    }
}

#[test]
fn every_namespace_is_listed_with_a_namespace_column_until_narrowed() {
    let mut app = app();
    let t = app.table();
    assert_eq!(t.headers[0], "NAMESPACE");
    assert_eq!(t.rows.len(), 3);
    assert!(
        t.rows.iter().any(|r| r.cells[0] == "sympozium-system" && r.cells[1] == "platform-team-sre-watchdog")
    );

    slash::run(&mut app, "ns team");
    let t = app.table();
    assert_ne!(t.headers[0], "NAMESPACE");
    assert_eq!(
        t.rows.iter().map(|r| (r.ns.as_str(), r.name.as_str())).collect::<Vec<_>>(),
        [("team", "my-agent")]
    );

    slash::run(&mut app, "ns all");
    assert_eq!(app.table().rows.len(), 3);
    slash::run(&mut app, "ns");
    assert_eq!(app.status.as_ref().unwrap().0, "namespace: all");
}

#[test]
fn slash_commands_act_in_the_namespace_of_the_object_they_name() {
    let mut app = app();
    // Only one namespace has it: that one.
    slash::run(&mut app, "baseurl platform-team-sre-watchdog http://model:8080/v1");
    assert_eq!(patched_namespace(&mut app), "sympozium-system");

    // Two namespaces have one (and the selected row is another instance): ask to narrow.
    let row = |app: &App, ns: &str, name: &str| {
        app.table().rows.iter().position(|r| r.ns == ns && r.name == name).unwrap()
    };
    app.selected = row(&app, "sympozium-system", "platform-team-sre-watchdog");
    slash::run(&mut app, "baseurl my-agent http://model:8080/v1");
    assert!(app.outbox.is_empty());
    let (msg, is_error) = app.status.clone().unwrap();
    assert!(is_error && msg.contains("exists in namespaces sympozium-system, team"), "{msg}");

    // ...unless the selected row is one of them.
    app.selected = row(&app, "team", "my-agent");
    slash::run(&mut app, "baseurl my-agent http://model:8080/v1");
    assert_eq!(patched_namespace(&mut app), "team");

    // Narrowed, the shown namespace.
    slash::run(&mut app, "ns sympozium-system");
    slash::run(&mut app, "baseurl my-agent http://model:8080/v1");
    assert_eq!(patched_namespace(&mut app), "sympozium-system");
}

fn run(annotations: Value, env: Value, task: &str) -> AgentRun {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "team", "annotations": annotations},
        "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": task, "env": env,
                 "model": {"provider": "openai", "model": "m", "authSecretRef": "k"}}}))
    .unwrap()
}

#[test]
fn the_chat_shows_what_was_asked_not_the_memory_before_it() {
    let injected = "## Memory Context\n- the payments namespace ran out of memory\n\n## Task\nCheck the cluster's health.";
    let memory_env = json!({"SYMPOZIUM_MEMORY_INJECTED": "true"});
    // The schedule controller records the task as written.
    let r = run(json!({"sympozium.ai/message": "Check the cluster's health."}), memory_env.clone(), injected);
    assert_eq!(chat::asked(&r), "Check the cluster's health.");
    // A run from a controller that did not: the memory is cut off.
    let r = run(json!({}), memory_env, injected);
    assert_eq!(chat::asked(&r), "Check the cluster's health.");
    // A task that merely looks like it, without the marker, is shown as it is.
    let r = run(json!({}), json!({}), injected);
    assert_eq!(chat::asked(&r), injected);
}
