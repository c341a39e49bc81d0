//! Pure parts of the spawn router: the instance's sub-agent limits and the child run.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use sympozium_api::agentrun::{AgentRunPhase, ParentRef};
use sympozium_api::instance::SubagentsSpec;
use sympozium_api::{AgentRun, AgentRunSpec, labels};
use sympozium_bus::payloads::{SpawnRequest, SpawnResult};

/// Label on a child run: the run that spawned it.
pub const PARENT_RUN: &str = "sympozium.ai/parent-run";
/// Value of [`labels::SOURCE`] on sub-agent runs.
pub const SOURCE_VALUE: &str = "subagent";
/// Annotation: the parent's request id (names the parent's result file).
pub const SPAWN_ID: &str = "sympozium.ai/spawn-id";
/// Annotation: whether the parent still waits for this child's result (`pending`/`sent`).
pub const RESULT_STATE: &str = "sympozium.ai/spawn-result-state";

/// What the parent already has: used against the limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Children the parent spawned so far.
    pub children: usize,
}

/// Which sub-agent limit refused a spawn; the text goes back to the parent run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    /// The child would be deeper than `maxDepth`.
    #[error(
        "sub-agent refused: it would run at depth {depth}, but instance {instance} allows maxDepth {max_depth}"
    )]
    TooDeep {
        /// The child's depth.
        depth: i32,
        /// The instance.
        instance: String,
        /// Its `maxDepth`.
        max_depth: i32,
    },
    /// The parent has spawned `maxChildrenPerAgent` children already.
    #[error(
        "sub-agent refused: this agent already spawned {children} sub-agents (maxChildrenPerAgent {max_children} on instance {instance})"
    )]
    TooManyChildren {
        /// Children so far.
        children: usize,
        /// Its `maxChildrenPerAgent`.
        max_children: i32,
        /// The instance.
        instance: String,
    },
}

/// Checks a spawn at `depth` (children of a top-level run have depth 1) against the
/// instance's `agents.default.subagents` limits; `Err` says which limit refused it.
pub fn check(limits: &SubagentsSpec, instance: &str, depth: i32, usage: Usage) -> Result<(), LimitRefusal> {
    if depth > limits.max_depth {
        return Err(LimitRefusal::TooDeep {
            depth,
            instance: instance.to_string(),
            max_depth: limits.max_depth,
        });
    }
    if usage.children >= usize::try_from(limits.max_children_per_agent).unwrap_or(0) {
        return Err(LimitRefusal::TooManyChildren {
            children: usage.children,
            max_children: limits.max_children_per_agent,
            instance: instance.to_string(),
        });
    }
    // maxConcurrent does not refuse: the child is created and waits in Pending (queued by
    // the AgentRun controller) until a sub-agent slot frees.
    Ok(())
}

/// The spawn depth of a child of `parent`.
pub fn child_depth(parent: &AgentRun) -> i32 {
    parent.spec.parent.as_ref().map_or(0, |p| p.spawn_depth).saturating_add(1)
}

/// The child's name: `<parent>-sub-<hash of the request>`, so a redelivered request finds
/// the child it already made; at most 63 characters.
pub fn child_name(namespace: &str, parent: &str, id: &str) -> String {
    let mut h = Sha256::new();
    for part in [namespace, parent, id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hash = &hex::encode(h.finalize())[..8];
    let max = 63 - "-sub-".len() - hash.len();
    let mut prefix: String = parent.chars().take(max).collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    format!("{prefix}-sub-{hash}")
}

/// The child AgentRun: the parent's instance, model, skills, tool policy, timeout and
/// pull secrets; the request's task and prompt; `spec.parent` pointing at the parent;
/// owned by the parent so it goes when the parent goes.
pub fn child(parent: &AgentRun, req: &SpawnRequest) -> AgentRun {
    let ns = parent.namespace().unwrap_or_default();
    let parent_name = parent.name_any();
    let name = child_name(&ns, &parent_name, &req.id);
    let mut run = AgentRun::new(
        &name,
        AgentRunSpec {
            instance_ref: parent.spec.instance_ref.clone(),
            agent_id: "subagent".into(),
            session_key: format!("subagent-{parent_name}-{}", req.id),
            env: parent.spec.env.clone(),
            parent: Some(ParentRef {
                run_name: parent_name.clone(),
                session_key: parent.spec.session_key.clone(),
                spawn_depth: child_depth(parent),
            }),
            task: req.task.clone(),
            system_prompt: req.system_prompt.clone().filter(|p| !p.trim().is_empty()),
            model: parent.spec.model.clone(),
            skills: parent.spec.skills.clone(),
            tool_policy: parent.spec.tool_policy.clone(),
            timeout: parent.spec.timeout.clone(),
            image_pull_secrets: parent.spec.image_pull_secrets.clone(),
            ..Default::default()
        },
    );
    let owner = OwnerReference {
        api_version: AgentRun::api_version(&()).into_owned(),
        kind: AgentRun::kind(&()).into_owned(),
        name: parent_name.clone(),
        uid: parent.uid().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    run.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(ns),
        labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_string(), parent.spec.instance_ref.clone()),
            (labels::SOURCE.to_string(), SOURCE_VALUE.to_string()),
            (PARENT_RUN.to_string(), parent_name),
        ])),
        annotations: Some(BTreeMap::from([
            (SPAWN_ID.to_string(), req.id.clone()),
            (RESULT_STATE.to_string(), "pending".to_string()),
        ])),
        owner_references: parent.uid().is_some().then(|| vec![owner]),
        ..Default::default()
    };
    run
}

/// The result the parent receives for a finished child; `None` while it runs.
pub fn result(child: &AgentRun) -> Option<SpawnResult> {
    let status = child.status.as_ref()?;
    let id = child.annotations().get(SPAWN_ID)?.clone();
    let run_name = Some(child.name_any());
    match status.phase? {
        AgentRunPhase::Succeeded => Some(SpawnResult {
            id,
            status: "success".into(),
            response: Some(status.result.clone().unwrap_or_default()),
            error: None,
            run_name,
        }),
        AgentRunPhase::Failed => Some(SpawnResult {
            run_name,
            ..SpawnResult::error(
                &id,
                status.error.clone().unwrap_or_else(|| "the sub-agent run failed".into()),
            )
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run(parent_depth: Option<i32>) -> AgentRun {
        let mut r: AgentRun = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "alice-ch-1", "namespace": "team", "uid": "u-1"},
            "spec": {"instanceRef": "alice", "agentId": "primary", "sessionKey": "s1", "task": "t", "timeout": "10m",
                     "model": {"provider": "openai", "model": "gpt-4.1", "authSecretRef": "key"},
                     "skills": [{"skillPackRef": "k8s-ops"}]}}))
        .unwrap();
        r.spec.parent =
            parent_depth.map(|d| ParentRef { run_name: "p".into(), session_key: "s".into(), spawn_depth: d });
        r
    }

    #[test]
    fn limits_refuse_with_the_reason() {
        let l = SubagentsSpec { max_depth: 2, max_concurrent: 2, max_children_per_agent: 3 };
        assert_eq!(check(&l, "a", 2, Usage { children: 2 }), Ok(()));
        assert!(check(&l, "a", 3, Usage::default()).unwrap_err().to_string().contains("maxDepth 2"));
        assert!(
            check(&l, "a", 1, Usage { children: 3 })
                .unwrap_err()
                .to_string()
                .contains("maxChildrenPerAgent 3")
        );
        assert_eq!(
            check(&l, "a", 1, Usage { children: 0 }),
            Ok(()),
            "maxConcurrent queues, it does not refuse"
        );
        let none = SubagentsSpec { max_depth: 0, ..l };
        assert!(check(&none, "a", 1, Usage::default()).is_err(), "maxDepth 0 forbids sub-agents");
    }

    #[test]
    fn the_child_points_at_its_parent_one_level_deeper() {
        let req = SpawnRequest {
            id: "17".into(),
            task: "count pods".into(),
            system_prompt: Some("be brief".into()),
            ..Default::default()
        };
        let c = child(&run(None), &req);
        let p = c.spec.parent.as_ref().unwrap();
        assert_eq!((p.run_name.as_str(), p.session_key.as_str(), p.spawn_depth), ("alice-ch-1", "s1", 1));
        assert_eq!(child_depth(&run(Some(1))), 2);
        assert_eq!(c.labels()[PARENT_RUN], "alice-ch-1");
        assert_eq!(c.labels()["sympozium.ai/instance"], "alice");
        assert_eq!(c.annotations()[SPAWN_ID], "17");
        assert_eq!((c.spec.task.as_str(), c.spec.system_prompt.as_deref()), ("count pods", Some("be brief")));
        assert_eq!(c.spec.model.model, "gpt-4.1");
        assert_eq!(c.spec.timeout.as_deref(), Some("10m"));
        assert_eq!(c.spec.skills.len(), 1);
        assert_eq!(c.owner_references()[0].name, "alice-ch-1");
        assert_eq!(c.name_any(), child_name("team", "alice-ch-1", "17"), "stable per request");
        assert_ne!(child_name("team", "alice-ch-1", "17"), child_name("team", "alice-ch-1", "18"));
        assert!(child_name("team", &"p".repeat(90), "1").len() <= 63);
    }

    #[test]
    fn results_for_the_parent() {
        let mut c =
            child(&run(None), &SpawnRequest { id: "5".into(), task: "t".into(), ..Default::default() });
        assert_eq!(result(&c), None);
        c.status = Some(serde_json::from_value(json!({"phase": "Succeeded", "result": "42"})).unwrap());
        let r = result(&c).unwrap();
        assert_eq!((r.id.as_str(), r.status.as_str(), r.response.as_deref()), ("5", "success", Some("42")));
        c.status = Some(serde_json::from_value(json!({"phase": "Failed", "error": "timed out"})).unwrap());
        let r = result(&c).unwrap();
        assert_eq!((r.status.as_str(), r.error.as_deref()), ("error", Some("timed out")));
    }
}
