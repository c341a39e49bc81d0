//! What a finished run leaves in memory: the agent's new legacy MEMORY.md (kept within the
//! instance's `maxSizeKB`), and a record of failures in the memory server so the agent
//! learns from them.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};

use super::pod::uses_memory_server;
use crate::settings::Settings;

const TRIMMED_NOTE: &str = "<!-- older entries were removed to stay within maxSizeKB -->";

/// Fits `memory` into `max_kb` KiB by dropping the oldest lines (those nearest the top,
/// keeping a leading `#` title). Returns the text and whether anything was dropped.
pub fn fit(memory: &str, max_kb: i32) -> (String, bool) {
    let limit = usize::try_from(max_kb.max(1)).unwrap_or(1) * 1024;
    if memory.len() <= limit {
        return (memory.to_string(), false);
    }
    let mut lines: Vec<&str> = memory.lines().collect();
    let title = lines.first().filter(|l| l.starts_with('#')).map(|t| t.to_string());
    if title.is_some() {
        lines.remove(0);
    }
    let head = format!("{}{TRIMMED_NOTE}\n", title.map(|t| format!("{t}\n")).unwrap_or_default());
    let mut kept: Vec<&str> = Vec::new();
    let mut size = head.len();
    for line in lines.iter().rev() {
        if size + line.len() + 1 > limit {
            break;
        }
        size += line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    (format!("{head}{}", kept.join("\n")), true)
}

/// Writes the agent's new MEMORY.md into `<instance>-memory`, within the instance's
/// `maxSizeKB`. A missing ConfigMap (legacy memory off) is left alone.
pub async fn persist_legacy(client: &Client, run: &AgentRun, memory: &str) -> Result<bool, kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    let instance =
        Api::<SympoziumInstance>::namespaced(client.clone(), &ns).get_opt(&run.spec.instance_ref).await?;
    let max_kb = instance.as_ref().and_then(|i| i.spec.memory.as_ref()).map(|m| m.max_size_kb).unwrap_or(256);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let name = format!("{}-memory", run.spec.instance_ref);
    if configmaps.get_opt(&name).await?.is_none() {
        return Ok(false);
    }
    let (content, trimmed) = fit(memory, max_kb);
    if trimmed {
        tracing::info!(run = %run.name_any(), max_kb, "memory trimmed to the instance's maxSizeKB");
    }
    let patch = json!({"data": {"MEMORY.md": content}});
    configmaps.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(trimmed)
}

/// The memory record of a failed run.
pub fn failure_record(run: &AgentRun, error: &str, at: &str) -> (String, Vec<String>) {
    let task: String = run.spec.task.chars().take(500).collect();
    let ellipsis = if run.spec.task.chars().count() > 500 { "…" } else { "" };
    let content = format!(
        "## Failed AgentRun: {}\n**Task**: {task}{ellipsis}\n**Error**: {error}\n**Timestamp**: {at}\n**Instance**: {}",
        run.name_any(),
        run.spec.instance_ref
    );
    (content, vec!["failure".into(), "agent-run".into(), run.spec.instance_ref.clone()])
}

/// Stores a failure record in the instance's memory server (runs with the memory skill
/// only). Best effort: a memory server that is down never affects the run.
pub async fn store_failure(client: &Client, settings: &Settings, run: &AgentRun, error: &str) {
    if !uses_memory_server(&run.spec.skills) {
        return;
    }
    let ns = run.namespace().unwrap_or_default();
    let token = memory_token(client, &ns, &run.spec.instance_ref).await;
    let url = format!(
        "{}/store",
        settings.memory_url(&run.spec.instance_ref, &run.namespace().unwrap_or_default())
    );
    let (content, tags) = failure_record(run, error, &jiff::Timestamp::now().to_string());
    let body = BTreeMap::from([("content", json!(content)), ("tags", json!(tags))]);
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(3)).build() {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "no HTTP client for failure memory"),
    };
    let request = http.post(&url).json(&body);
    let request = match &token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    match request.send().await {
        Ok(r) if r.status().is_success() => tracing::info!(run = %run.name_any(), "failure stored in memory"),
        Ok(r) => {
            tracing::warn!(run = %run.name_any(), status = %r.status(), "memory server refused the failure record")
        }
        Err(e) => {
            tracing::warn!(run = %run.name_any(), error = %e, "memory server unreachable for the failure record")
        }
    }
}

/// The instance's memory token, when its Secret exists (an instance whose memory server
/// predates tokens, or a memory server started by hand, may have none).
async fn memory_token(client: &Client, namespace: &str, instance: &str) -> Option<String> {
    use crate::instance::memory_access::{TOKEN_KEY, token_secret_name};
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.get_opt(&token_secret_name(instance)).await {
        Ok(secret) => secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(TOKEN_KEY).cloned())
            .and_then(|v| String::from_utf8(v.0).ok()),
        Err(e) => {
            tracing::warn!(%instance, error = %e, "cannot read the instance's memory token");
            None
        }
    }
}

/// Everything memory-related once a run has finished: persist the agent's legacy memory,
/// record a failure. Errors are logged; the run's outcome stands either way.
pub async fn after_finish(
    client: &Client,
    settings: &Settings,
    run: &AgentRun,
    outcome: &super::result::Outcome,
) {
    if let Some(memory) = &outcome.memory
        && let Err(e) = persist_legacy(client, run, memory).await
    {
        tracing::warn!(run = %run.name_any(), error = %e, "could not persist the agent's memory");
    }
    if !outcome.success {
        store_failure(client, settings, run, outcome.error.as_deref().unwrap_or("failed")).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn memory_over_the_limit_keeps_the_newest_lines_and_the_title() {
        let text = format!(
            "# Agent Memory\n{}",
            (0..100).map(|i| format!("- fact {i:03} {}", "x".repeat(20))).collect::<Vec<_>>().join("\n")
        );
        let (fitted, trimmed) = fit(&text, 1);
        assert!(trimmed);
        assert!(fitted.len() <= 1024, "{}", fitted.len());
        assert!(fitted.starts_with("# Agent Memory\n<!-- older entries"));
        assert!(fitted.ends_with("- fact 099 xxxxxxxxxxxxxxxxxxxx"), "the newest stays");
        assert!(!fitted.contains("fact 000"), "the oldest goes");
        assert_eq!(fit("# small", 256), ("# small".to_string(), false));
    }

    #[test]
    fn failure_record_shape() {
        let run: AgentRun =
            serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "n"},
            "spec": {"instanceRef": "sre", "agentId": "a", "sessionKey": "", "task": "check nodes",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
            .unwrap();
        let (content, tags) = failure_record(&run, "timeout", "2026-11-23T10:00:00Z");
        assert_eq!(
            content,
            "## Failed AgentRun: r1\n**Task**: check nodes\n**Error**: timeout\n**Timestamp**: 2026-11-23T10:00:00Z\n**Instance**: sre"
        );
        assert_eq!(tags, ["failure", "agent-run", "sre"]);
    }
}
