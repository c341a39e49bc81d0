//! The answered turns of every conversation, kept in memory from a watch on channel runs,
//! so that a new message finds its conversation's recent turns by key instead of listing
//! the chat's runs (whose count grows with the chat). Each conversation keeps only its
//! latest [`KEPT_TURNS`] turns, each cut to the history budget, so memory stays bounded
//! however long a chat runs.
//!
//! Until the watch has listed every channel run once (and whenever the caller gets `None`),
//! the router reads the runs from the API server instead, so a router that just started
//! never forgets a conversation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use sympozium_api::{AgentRun, labels};

use super::build::SOURCE_VALUE;
use super::history::{self, CONVERSATION, Turn};

/// Turns kept per conversation: twice what a new run carries, so a few deleted runs still
/// leave a full history.
pub const KEPT_TURNS: usize = 2 * history::MAX_TURNS;

/// A conversation: namespace, instance and conversation key (the key hashes the namespace
/// too, but runs of one namespace must never feed another's history whatever labels they carry).
type ConversationId = (String, String, String);
/// A run within its conversation, oldest first.
type RunOrder = (Option<Time>, String);

#[derive(Default)]
struct State {
    /// The watch has listed every channel run at least once.
    ready: bool,
    conversations: HashMap<ConversationId, BTreeMap<RunOrder, Turn>>,
    /// The next contents while the watch (re)lists.
    relisting: Option<HashMap<ConversationId, BTreeMap<RunOrder, Turn>>>,
}

/// Shared handle on the index; cheap to clone.
#[derive(Clone, Default)]
pub struct ConversationIndex {
    state: Arc<Mutex<State>>,
}

fn ids(run: &AgentRun) -> Option<(ConversationId, RunOrder)> {
    let conversation = run.labels().get(CONVERSATION)?.clone();
    let instance = run.labels().get(labels::INSTANCE)?.clone();
    let conversation = (run.namespace()?, instance, conversation);
    Some((conversation, (run.creation_timestamp(), run.name_any())))
}

fn put(map: &mut HashMap<ConversationId, BTreeMap<RunOrder, Turn>>, run: &AgentRun) {
    let Some((conversation, order)) = ids(run) else { return };
    match history::turn(run) {
        Some(turn) => {
            let turns = map.entry(conversation).or_default();
            turns.insert(order, turn);
            while turns.len() > KEPT_TURNS {
                turns.pop_first();
            }
        }
        None => remove(map, run),
    }
}

fn remove(map: &mut HashMap<ConversationId, BTreeMap<RunOrder, Turn>>, run: &AgentRun) {
    let Some((conversation, order)) = ids(run) else { return };
    if let Some(turns) = map.get_mut(&conversation) {
        turns.remove(&order);
        if turns.is_empty() {
            map.remove(&conversation);
        }
    }
}

impl ConversationIndex {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a cache: after a panic elsewhere its contents are still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one watch event.
    pub fn on_event(&self, event: &watcher::Event<AgentRun>) {
        let mut state = self.state();
        match event {
            watcher::Event::Init => state.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(run) => match state.relisting.as_mut() {
                Some(next) => put(next, run),
                None => put(&mut state.conversations, run),
            },
            watcher::Event::InitDone => {
                if let Some(next) = state.relisting.take() {
                    state.conversations = next;
                }
                state.ready = true;
            }
            watcher::Event::Apply(run) => {
                put(&mut state.conversations, run);
                if let Some(next) = state.relisting.as_mut() {
                    put(next, run);
                }
            }
            watcher::Event::Delete(run) => {
                remove(&mut state.conversations, run);
                if let Some(next) = state.relisting.as_mut() {
                    remove(next, run);
                }
            }
        }
    }

    /// The answered turns of a conversation, oldest first, without the run `except` (a
    /// redelivered message must not see its own run); `None` until the watch has listed
    /// every channel run once.
    pub fn turns(
        &self,
        namespace: &str,
        instance: &str,
        conversation: &str,
        except: &str,
    ) -> Option<Vec<Turn>> {
        let state = self.state();
        if !state.ready {
            return None;
        }
        let id = (namespace.to_string(), instance.to_string(), conversation.to_string());
        Some(
            state
                .conversations
                .get(&id)
                .map(|turns| {
                    turns.iter().filter(|((_, name), _)| name != except).map(|(_, t)| t.clone()).collect()
                })
                .unwrap_or_default(),
        )
    }

    /// Keeps the index current from a watch on channel runs (of `namespace`, or of all)
    /// until the process stops.
    pub async fn watch(self, client: Client, namespace: Option<String>) {
        let api: Api<AgentRun> = super::runs_api(&client, namespace.as_deref());
        let selector = format!("{}={SOURCE_VALUE},{CONVERSATION}", labels::SOURCE);
        let mut events =
            std::pin::pin!(watcher(api, watcher::Config::default().labels(&selector)).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.on_event(&event),
                Err(e) => tracing::debug!(error = %e, "conversation watch interrupted"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run(ns: &str, name: &str, minute: u32, conversation: &str, phase: &str, result: &str) -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": format!("2026-01-01T00:{minute:02}:00Z"),
                "labels": {CONVERSATION: conversation, labels::INSTANCE: "bot"},
                "annotations": {history::MESSAGE: format!("q {name}")}},
            "spec": {"instanceRef": "bot", "agentId": "primary", "sessionKey": "", "task": "x",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}},
            "status": {"phase": phase, "result": result}}))
        .unwrap()
    }

    fn messages(
        index: &ConversationIndex,
        ns: &str,
        conversation: &str,
        except: &str,
    ) -> Option<Vec<String>> {
        index.turns(ns, "bot", conversation, except).map(|t| t.into_iter().map(|t| t.message).collect())
    }

    #[test]
    fn nothing_is_answered_before_the_first_listing_is_complete() {
        let index = ConversationIndex::default();
        index.on_event(&watcher::Event::Init);
        index.on_event(&watcher::Event::InitApply(run("a", "r1", 1, "c", "Succeeded", "one")));
        assert_eq!(messages(&index, "a", "c", ""), None, "the caller must read the runs itself");
        index.on_event(&watcher::Event::InitDone);
        assert_eq!(messages(&index, "a", "c", "").unwrap(), vec!["q r1"]);
        assert_eq!(messages(&index, "a", "other", "").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn turns_follow_the_runs_oldest_first_and_only_answered_ones() {
        let index = ConversationIndex::default();
        index.on_event(&watcher::Event::Init);
        index.on_event(&watcher::Event::InitDone);
        index.on_event(&watcher::Event::Apply(run("a", "r2", 2, "c", "Succeeded", "two")));
        index.on_event(&watcher::Event::Apply(run("a", "r1", 1, "c", "Succeeded", "one")));
        index.on_event(&watcher::Event::Apply(run("a", "r3", 3, "c", "Running", "")));
        index.on_event(&watcher::Event::Apply(run("a", "r4", 4, "c", "Failed", "")));
        index.on_event(&watcher::Event::Apply(run("a", "r5", 5, "c", "Succeeded", "  ")));
        assert_eq!(messages(&index, "a", "c", "").unwrap(), vec!["q r1", "q r2"]);
        assert_eq!(
            messages(&index, "a", "c", "r2").unwrap(),
            vec!["q r1"],
            "a redelivery does not see itself"
        );
        index.on_event(&watcher::Event::Delete(run("a", "r1", 1, "c", "Succeeded", "one")));
        assert_eq!(messages(&index, "a", "c", "").unwrap(), vec!["q r2"]);
        // Another namespace carrying the same conversation label feeds nothing here.
        index.on_event(&watcher::Event::Apply(run("b", "x1", 6, "c", "Succeeded", "injected")));
        assert_eq!(messages(&index, "a", "c", "").unwrap(), vec!["q r2"]);
    }

    #[test]
    fn a_long_chat_keeps_only_its_latest_turns() {
        let index = ConversationIndex::default();
        index.on_event(&watcher::Event::Init);
        index.on_event(&watcher::Event::InitDone);
        for i in 0..50u32 {
            index.on_event(&watcher::Event::Apply(run("a", &format!("r{i:02}"), i, "c", "Succeeded", "ok")));
        }
        let kept = messages(&index, "a", "c", "").unwrap();
        assert_eq!(kept.len(), KEPT_TURNS);
        assert_eq!(kept.last().unwrap(), "q r49");
        assert_eq!(kept.first().unwrap(), &format!("q r{:02}", 50 - KEPT_TURNS));
    }

    #[test]
    fn a_relist_replaces_what_was_deleted_meanwhile() {
        let index = ConversationIndex::default();
        index.on_event(&watcher::Event::Init);
        index.on_event(&watcher::Event::InitApply(run("a", "r1", 1, "c", "Succeeded", "one")));
        index.on_event(&watcher::Event::InitDone);
        // The watch broke; r1 was deleted while it was down, r2 appeared.
        index.on_event(&watcher::Event::Init);
        index.on_event(&watcher::Event::InitApply(run("a", "r2", 2, "c", "Succeeded", "two")));
        assert_eq!(
            messages(&index, "a", "c", "").unwrap(),
            vec!["q r1"],
            "the old contents serve until done"
        );
        index.on_event(&watcher::Event::InitDone);
        assert_eq!(messages(&index, "a", "c", "").unwrap(), vec!["q r2"]);
    }
}
