//! Every request becomes an AgentRun of the instance. Its answer comes back on the bus
//! (`agent.stream.chunk`, then `agent.run.completed`) or, when the pod dies before it can
//! publish one, from the run's terminal status; [`Hub`] reads both once for the whole
//! process and hands each event to the request waiting for that run.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::labels;
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, resolve};
use sympozium_bus::{Bus, Envelope, topics};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::wire::{Prompt, Usage};

/// Value of the `sympozium.ai/source` label on runs created here.
pub const SOURCE: &str = "web-proxy";

/// What a run reports while the caller waits.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A piece of the streamed answer.
    Chunk(String),
    /// The runner's result (`{status, response?, error?, metrics}`).
    Completed(Value),
    /// The run reached a terminal phase.
    Finished(Box<AgentRun>),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer and its token counts.
    Answer(String, Usage),
    /// Why the run failed.
    Failed(String),
}

/// One step of waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A streamed piece.
    Chunk(String),
    /// The end.
    Done(Outcome),
}

type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<RunEvent>>>>;

/// Routes bus events and run status changes to the requests waiting for them.
#[derive(Clone, Default)]
pub struct Hub {
    waiters: Waiters,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<RunEvent>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts receiving events for `run` (before the run exists, so none is missed).
    pub fn register(&self, run: &str) -> mpsc::UnboundedReceiver<RunEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().insert(run.to_string(), tx);
        rx
    }

    /// Stops routing events to `run`.
    pub fn unregister(&self, run: &str) {
        self.lock().remove(run);
    }

    /// Hands `event` to whoever waits for `run`.
    pub fn dispatch(&self, run: &str, event: RunEvent) {
        if let Some(tx) = self.lock().get(run) {
            let _ = tx.send(event);
        }
    }

    /// Routes one bus envelope of `instance`.
    pub fn on_envelope(&self, instance: &str, env: Envelope) {
        if env.meta("instanceName") != instance {
            return;
        }
        let run = env.meta("agentRunID").to_string();
        let event = match env.topic.as_str() {
            topics::AGENT_STREAM_CHUNK => match env.data["content"].as_str() {
                Some(text) if !text.is_empty() => RunEvent::Chunk(text.to_string()),
                _ => return,
            },
            topics::AGENT_RUN_COMPLETED => RunEvent::Completed(env.data),
            topics::AGENT_RUN_FAILED => {
                let error = env.data["error"].as_str().unwrap_or("the agent run failed").to_string();
                RunEvent::Completed(serde_json::json!({"status": "error", "error": error}))
            }
            _ => return,
        };
        self.dispatch(&run, event);
    }

    /// Follows the bus (one consumer over `agent.>`, so chunks and the result keep their
    /// order) and the instance's web runs, until the process stops. The run watch works
    /// while NATS is unreachable, so runs still end through their status.
    pub async fn run(self, bus_url: String, runs: Api<AgentRun>, instance: String) {
        let hub = self.clone();
        let inst = instance.clone();
        let bus_task = tokio::spawn(async move {
            loop {
                let bus = match Bus::connect(&bus_url).await {
                    Ok(bus) => bus,
                    Err(e) => {
                        tracing::warn!(error = %e, "connecting to the event bus; retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                };
                loop {
                    match bus.follow("agent.>").await {
                        Ok(mut rx) => {
                            while let Some(env) = rx.recv().await {
                                hub.on_envelope(&inst, env);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "following the event bus failed; retrying"),
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        });
        let selector = format!("{}={instance},{}={SOURCE}", labels::INSTANCE, labels::SOURCE);
        let stream = watcher::watcher(runs, watcher::Config::default().labels(&selector));
        let hub = self.clone();
        let mut events = std::pin::pin!(stream);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => {
                    let phase = run.status.as_ref().and_then(|s| s.phase);
                    if matches!(phase, Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)) {
                        hub.dispatch(&run.name_any(), RunEvent::Finished(Box::new(run)));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "watching runs"),
            }
        }
        bus_task.abort();
    }
}

/// Which endpoint a run serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /v1/chat/completions`.
    Chat,
    /// The MCP `ask_agent` tool.
    Mcp,
}

/// A random lowercase hex suffix of `n` bytes.
fn random_hex(n: usize) -> std::io::Result<String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The run name `<instance>-web-<hex>` / `<instance>-mcp-<hex>`, at most 63 characters.
pub fn run_name(instance: &str, kind: Kind, suffix: &str) -> String {
    let infix = match kind {
        Kind::Chat => "web",
        Kind::Mcp => "mcp",
    };
    let max = 63 - infix.len() - 2 - suffix.len();
    let mut prefix: String = instance.chars().take(max).collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    format!("{prefix}-{infix}-{suffix}")
}

/// The AgentRun answering one request (spec: the web proxy rows of "who creates runs").
pub fn agent_run(
    inst: &SympoziumInstance,
    kind: Kind,
    name: &str,
    prompt: &Prompt,
    timeout: &str,
) -> AgentRun {
    let instance = inst.name_any();
    let agent = &inst.spec.agents.default;
    let instance_prompt = inst.spec.memory.as_ref().and_then(|m| m.system_prompt.clone());
    let system = [instance_prompt, prompt.system.clone()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>();
    let skills = resolve::run_skills(&inst.spec);
    let mut run = AgentRun::new(
        name,
        AgentRunSpec {
            instance_ref: instance.clone(),
            agent_id: SOURCE.into(),
            session_key: name.to_string(),
            task: prompt.task.clone(),
            system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
            model: resolve::model_spec(&inst.spec, &Default::default()),
            skills,
            tool_policy: agent.tool_policy.clone(),
            timeout: Some(timeout.to_string()),
            image_pull_secrets: inst.spec.image_pull_secrets.clone(),
            lifecycle: if kind == Kind::Chat { agent.lifecycle.clone() } else { None },
            ..Default::default()
        },
    );
    run.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: inst.namespace(),
        labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_string(), instance),
            (labels::SOURCE.to_string(), SOURCE.to_string()),
        ])),
        ..Default::default()
    };
    run
}

/// Usage from a runner result's `metrics`.
fn usage_of_result(result: &Value) -> Usage {
    let m = &result["metrics"];
    Usage {
        prompt: m["inputTokens"].as_i64().unwrap_or(0),
        completion: m["outputTokens"].as_i64().unwrap_or(0),
    }
}

/// The outcome carried by a runner result.
pub fn outcome_of_result(result: &Value, streamed: &str) -> Outcome {
    let text = |k: &str| result[k].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if result["status"].as_str() == Some("error") {
        return Outcome::Failed(text("error").unwrap_or_else(|| "the agent run failed".into()));
    }
    let answer = text("response").or_else(|| (!streamed.is_empty()).then(|| streamed.to_string()));
    Outcome::Answer(answer.unwrap_or_else(|| "(no response)".into()), usage_of_result(result))
}

/// The outcome recorded in a terminal run's status.
pub fn outcome_of_status(run: &AgentRun, streamed: &str) -> Option<Outcome> {
    let s = run.status.as_ref()?;
    match s.phase? {
        AgentRunPhase::Failed => Some(Outcome::Failed(
            s.error.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "the agent run failed".into()),
        )),
        AgentRunPhase::Succeeded => {
            let usage = s
                .token_usage
                .as_ref()
                .map(|u| Usage { prompt: u.input_tokens, completion: u.output_tokens })
                .unwrap_or_default();
            let answer = s
                .result
                .clone()
                .filter(|r| !r.trim().is_empty())
                .or_else(|| (!streamed.is_empty()).then(|| streamed.to_string()))
                .unwrap_or_else(|| "(no response)".into());
            Some(Outcome::Answer(answer, usage))
        }
        _ => None,
    }
}

/// Creates runs of one instance and waits for them.
#[derive(Clone)]
pub struct Runs {
    client: Client,
    namespace: String,
    instance: String,
    hub: Hub,
    timeout: Duration,
}

impl Runs {
    /// Runs of `instance` in `namespace`, each given `timeout`.
    pub fn new(client: Client, namespace: String, instance: String, hub: Hub, timeout: Duration) -> Self {
        Self { client, namespace, instance, hub, timeout }
    }

    /// The AgentRun API of the namespace.
    pub fn api(&self) -> Api<AgentRun> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The instance name.
    pub fn instance_name(&self) -> &str {
        &self.instance
    }

    /// The instance, read fresh (its model and prompt may have changed).
    pub async fn instance(&self) -> Result<SympoziumInstance, ApiError> {
        let api: Api<SympoziumInstance> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.get_opt(&self.instance).await {
            Ok(Some(i)) => Ok(i),
            Ok(None) => Err(ApiError::unavailable(format!("instance {:?} no longer exists", self.instance))),
            Err(e) => {
                tracing::warn!(error = %e, "reading the instance");
                Err(ApiError::unavailable("the cluster did not answer; try again"))
            }
        }
    }

    /// Creates the run for `prompt` and returns a handle to wait on it.
    pub async fn start(
        &self,
        inst: &SympoziumInstance,
        kind: Kind,
        prompt: &Prompt,
    ) -> Result<RunHandle, ApiError> {
        let suffix = random_hex(5).map_err(|e| ApiError::internal(format!("no random source: {e}")))?;
        let name = run_name(&self.instance, kind, &suffix);
        let timeout = format!("{}s", self.timeout.as_secs());
        let run = agent_run(inst, kind, &name, prompt, &timeout);
        // Subscribed before the run exists: an answer cannot overtake the subscription.
        let events = self.hub.register(&name);
        let mut handle = RunHandle {
            name: name.clone(),
            events,
            hub: self.hub.clone(),
            api: self.api(),
            deadline: tokio::time::Instant::now() + self.timeout,
            finished: false,
            streamed: String::new(),
        };
        if let Err(e) = self.api().create(&PostParams::default(), &run).await {
            handle.finished = true;
            tracing::warn!(error = %e, run = %name, "creating the run");
            return Err(match e {
                kube::Error::Api(s) if s.code == 403 => {
                    ApiError::unavailable("the web endpoint may not create runs (RBAC)")
                }
                kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                    ApiError::invalid("messages", format!("the run was refused: {}", s.message))
                }
                _ => ApiError::unavailable("the cluster did not accept the run; try again"),
            });
        }
        tracing::info!(run = %name, ?kind, "run created");
        Ok(handle)
    }
}

/// A run being waited for. Dropping it before the end (the caller went away) deletes the
/// run, so nobody pays for an answer nobody reads.
pub struct RunHandle {
    /// The run's name.
    pub name: String,
    events: mpsc::UnboundedReceiver<RunEvent>,
    hub: Hub,
    api: Api<AgentRun>,
    deadline: tokio::time::Instant,
    finished: bool,
    streamed: String,
}

impl RunHandle {
    /// The next piece of the answer, or the end. A timeout is an error (504) and stops
    /// the run.
    pub async fn next(&mut self) -> Result<Step, ApiError> {
        if self.finished {
            return Err(ApiError::internal("the run already ended"));
        }
        loop {
            let event = match tokio::time::timeout_at(self.deadline, self.events.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) => return Err(ApiError::internal("lost the run's events")),
                Err(_) => {
                    // Dropping the handle unfinished deletes the run.
                    return Err(ApiError::timed_out());
                }
            };
            match event {
                RunEvent::Chunk(text) => {
                    self.streamed.push_str(&text);
                    return Ok(Step::Chunk(text));
                }
                RunEvent::Completed(result) => {
                    self.finished = true;
                    return Ok(Step::Done(outcome_of_result(&result, &self.streamed)));
                }
                RunEvent::Finished(run) => {
                    if let Some(outcome) = outcome_of_status(&run, &self.streamed) {
                        self.finished = true;
                        return Ok(Step::Done(outcome));
                    }
                }
            }
        }
    }

    /// Waits for the whole answer.
    pub async fn outcome(&mut self) -> Result<Outcome, ApiError> {
        loop {
            if let Step::Done(outcome) = self.next().await? {
                return Ok(outcome);
            }
        }
    }

    /// The text streamed so far.
    pub fn streamed(&self) -> &str {
        &self.streamed
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        self.hub.unregister(&self.name);
        if !self.finished {
            let (api, name) = (self.api.clone(), self.name.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    match api.delete(&name, &DeleteParams::background()).await {
                        Ok(_) => tracing::info!(run = %name, "caller went away or timed out: run deleted"),
                        Err(e) => {
                            tracing::warn!(run = %name, error = %e, "could not delete an abandoned run")
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn instance() -> SympoziumInstance {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": "helper", "namespace": "team"},
            "spec": {"agents": {"default": {"model": "gpt-4o", "baseURL": "http://llm/v1"}},
                     "authRefs": [{"provider": "openai", "secret": "key"}],
                     "skills": [{"skillPackRef": "web-endpoint"}, {"skillPackRef": "k8s-ops"}],
                     "memory": {"enabled": false, "systemPrompt": "You help the team."}}}))
        .unwrap()
    }

    #[test]
    fn a_chat_run_carries_the_prompts_and_the_instance_model_without_the_web_skill() {
        let p = Prompt { task: "hi".into(), system: Some("Be brief.".into()) };
        let run = agent_run(&instance(), Kind::Chat, "helper-web-0a", &p, "600s");
        assert_eq!(run.spec.system_prompt.as_deref(), Some("You help the team.\n\nBe brief."));
        assert_eq!(run.spec.model.model, "gpt-4o");
        assert_eq!(run.spec.model.auth_secret_ref, "key");
        let skills: Vec<_> = run.spec.skills.iter().filter_map(|s| s.skill_pack_ref.clone()).collect();
        assert_eq!(skills, ["k8s-ops"]);
        assert_eq!(run.labels()[labels::SOURCE], "web-proxy");
        assert_eq!(run.labels()[labels::INSTANCE], "helper");
        assert_eq!(run.namespace().as_deref(), Some("team"));
        assert_eq!(run.spec.timeout.as_deref(), Some("600s"));
    }

    #[test]
    fn names_fit_a_label_value() {
        let long = "a".repeat(80);
        let n = run_name(&long, Kind::Mcp, "0123456789");
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("-mcp-0123456789"));
        assert_eq!(run_name("x", Kind::Chat, "ab"), "x-web-ab");
    }

    #[test]
    fn outcomes() {
        let ok =
            json!({"status": "success", "response": "42", "metrics": {"inputTokens": 7, "outputTokens": 2}});
        assert_eq!(
            outcome_of_result(&ok, ""),
            Outcome::Answer("42".into(), Usage { prompt: 7, completion: 2 })
        );
        let failed = json!({"status": "error", "error": "provider said 401"});
        assert_eq!(outcome_of_result(&failed, "partial"), Outcome::Failed("provider said 401".into()));
        let empty = json!({"status": "success"});
        assert_eq!(
            outcome_of_result(&empty, "streamed text"),
            Outcome::Answer("streamed text".into(), Usage::default())
        );
    }

    #[test]
    fn the_hub_routes_only_this_instances_events_to_the_waiting_run() {
        let hub = Hub::default();
        let mut rx = hub.register("helper-web-1");
        let env = |inst: &str, run: &str, topic: &str, data: Value| {
            Envelope::new(
                topic,
                BTreeMap::from([("instanceName".into(), inst.into()), ("agentRunID".into(), run.into())]),
                data,
            )
        };
        hub.on_envelope(
            "helper",
            env("other", "helper-web-1", topics::AGENT_STREAM_CHUNK, json!({"content": "no"})),
        );
        hub.on_envelope(
            "helper",
            env("helper", "helper-web-2", topics::AGENT_STREAM_CHUNK, json!({"content": "no"})),
        );
        hub.on_envelope(
            "helper",
            env("helper", "helper-web-1", topics::AGENT_STREAM_CHUNK, json!({"content": "yes"})),
        );
        assert!(matches!(rx.try_recv().unwrap(), RunEvent::Chunk(t) if t == "yes"));
        assert!(rx.try_recv().is_err());
        hub.unregister("helper-web-1");
        hub.on_envelope(
            "helper",
            env("helper", "helper-web-1", topics::AGENT_STREAM_CHUNK, json!({"content": "late"})),
        );
        assert!(rx.try_recv().is_err());
    }
}
