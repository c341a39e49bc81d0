//! Pure builder of the AgentRun a schedule tick creates.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use sympozium_api::labels;
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, SympoziumSchedule, resolve};

/// Annotation recording which tick a run was created for; makes creation idempotent when
/// a status write is lost.
pub const SCHEDULED_TIME_ANNOTATION: &str = "sympozium.ai/scheduled-time";
/// Annotation with the task as the schedule states it (the run's task may carry the
/// memory in front of it); consoles show this one. Same key the chat paths use for the
/// message a run answers.
pub const MESSAGE_ANNOTATION: &str = "sympozium.ai/message";
/// Longest task kept in [`MESSAGE_ANNOTATION`].
const MAX_MESSAGE_CHARS: usize = 4_000;

/// Environment variable telling the runner the memory is already in the task, so it does
/// not prepend it a second time.
pub const MEMORY_INJECTED_ENV: &str = "SYMPOZIUM_MEMORY_INJECTED";

/// The task of a run: the schedule's task, preceded by the instance's memory when
/// `includeMemory` is on and there is memory worth including.
pub fn task(schedule: &SympoziumSchedule, memory: Option<&str>) -> (String, bool) {
    let memory = memory.map(str::trim).filter(|m| !m.is_empty() && !m.contains("No memories recorded yet."));
    match memory {
        Some(m) if schedule.spec.include_memory != Some(false) => {
            (format!("## Memory Context\n{m}\n\n## Task\n{}", schedule.spec.task), true)
        }
        _ => (schedule.spec.task.clone(), false),
    }
}

/// The AgentRun `<schedule>-<n>` for `tick`.
pub fn run(
    schedule: &SympoziumSchedule,
    instance: &SympoziumInstance,
    memory: Option<&str>,
    n: i64,
    tick: Timestamp,
) -> AgentRun {
    let name = schedule.name_any();
    let agent = &instance.spec.agents.default;
    let (task, injected) = task(schedule, memory);
    let env = injected.then(|| BTreeMap::from([(MEMORY_INJECTED_ENV.to_string(), "true".to_string())]));
    let mut run = AgentRun::new(
        &format!("{name}-{n}"),
        AgentRunSpec {
            instance_ref: schedule.spec.instance_ref.clone(),
            agent_id: format!("schedule-{name}"),
            session_key: String::new(),
            env,
            task,
            // The persona's prompt and tool policy travel with every scheduled run.
            system_prompt: instance.spec.memory.as_ref().and_then(|m| m.system_prompt.clone()),
            tool_policy: agent.tool_policy.clone(),
            model: resolve::model_spec(&instance.spec, &Default::default()),
            skills: resolve::run_skills(&instance.spec),
            image_pull_secrets: instance.spec.image_pull_secrets.clone(),
            lifecycle: agent.lifecycle.clone(),
            ..Default::default()
        },
    );
    run.metadata = ObjectMeta {
        name: Some(format!("{name}-{n}")),
        namespace: schedule.namespace(),
        labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_string(), schedule.spec.instance_ref.clone()),
            (labels::SCHEDULE.to_string(), name.clone()),
            ("sympozium.ai/type".to_string(), schedule.spec.type_.as_str().to_string()),
        ])),
        annotations: Some(BTreeMap::from([
            (SCHEDULED_TIME_ANNOTATION.to_string(), tick.to_string()),
            (MESSAGE_ANNOTATION.to_string(), schedule.spec.task.chars().take(MAX_MESSAGE_CHARS).collect()),
        ])),
        ..Default::default()
    };
    run
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn run_carries_instance_model_prompt_policy_and_skills() {
        let schedule: SympoziumSchedule = serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
            "metadata": {"name": "team-sre-schedule", "namespace": "ns"},
            "spec": {"instanceRef": "team-sre", "schedule": "*/5 * * * *", "task": "check pods", "type": "heartbeat"}}))
        .unwrap();
        let instance: SympoziumInstance = serde_json::from_value(json!({
            "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "team-sre", "namespace": "ns"},
            "spec": {"agents": {"default": {"model": "claude-sonnet-4-20250514", "thinking": "high",
                        "toolPolicy": {"allow": ["read_file"]}}},
                     "authRefs": [{"provider": "anthropic", "secret": "team-anthropic-key"}],
                     "memory": {"enabled": true, "systemPrompt": "You are the SRE watchdog."},
                     "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "web-endpoint"}]}}))
        .unwrap();
        let tick: Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        let r = run(&schedule, &instance, Some("- pods crashloop in ns x"), 7, tick);
        assert_eq!(r.metadata.name.as_deref(), Some("team-sre-schedule-7"));
        let labels = r.metadata.labels.clone().unwrap();
        assert_eq!(labels["sympozium.ai/schedule"], "team-sre-schedule");
        assert_eq!(labels["sympozium.ai/type"], "heartbeat");
        assert_eq!(labels["sympozium.ai/instance"], "team-sre");
        assert_eq!(
            r.metadata.annotations.clone().unwrap()[SCHEDULED_TIME_ANNOTATION],
            "2026-11-23T10:05:00Z"
        );
        assert_eq!(r.spec.agent_id, "schedule-team-sre-schedule");
        assert_eq!(r.spec.task, "## Memory Context\n- pods crashloop in ns x\n\n## Task\ncheck pods");
        assert_eq!(r.annotations()[MESSAGE_ANNOTATION], "check pods", "consoles show the task as written");
        assert_eq!(r.spec.env.unwrap()[MEMORY_INJECTED_ENV], "true");
        assert_eq!(r.spec.system_prompt.as_deref(), Some("You are the SRE watchdog."));
        assert_eq!(r.spec.tool_policy.unwrap().allow, ["read_file"]);
        assert_eq!(r.spec.model.provider, "anthropic");
        assert_eq!(r.spec.model.auth_secret_ref, "team-anthropic-key");
        assert_eq!(r.spec.skills.len(), 1, "the web-endpoint skill is not part of scheduled runs");
    }

    #[test]
    fn memory_is_left_out_when_disabled_or_placeholder() {
        let mut schedule = SympoziumSchedule::new("s", Default::default());
        schedule.spec.task = "t".into();
        assert_eq!(
            task(&schedule, Some("# Agent Memory\n\nNo memories recorded yet.\n")),
            ("t".into(), false)
        );
        assert_eq!(task(&schedule, None), ("t".into(), false));
        schedule.spec.include_memory = Some(false);
        assert_eq!(task(&schedule, Some("facts")), ("t".into(), false));
    }
}
