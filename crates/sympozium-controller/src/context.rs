//! What every reconcile gets: a client, the deployment settings, metrics, backoff state
//! and an event recorder.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer;
use kube::{Api, Client, Resource, ResourceExt};
use sympozium_kube::backoff::Backoff;
use sympozium_kube::metrics::Metrics;

use crate::clock::{Clock, SystemClock};
use crate::settings::Settings;

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Deployment settings.
    pub settings: Settings,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Per-object retry backoff.
    pub backoff: Backoff,
    /// Kubernetes Events publisher.
    pub recorder: Recorder,
    /// Only this namespace is watched when set (all namespaces otherwise).
    pub namespace: Option<String>,
    /// "Now" for time-based decisions (schedules).
    pub clock: Arc<dyn Clock>,
    /// Longest a schedule waits between evaluations.
    pub schedule_poll: Duration,
    /// The agent-sandbox API (agents.x-k8s.io) is served by the cluster.
    pub agent_sandbox: bool,
    /// One lock per instance, held from counting its running runs to starting one, so
    /// runs reconciled at the same time cannot all take the last slot.
    pub start_locks: StartLocks,
    /// How often each finished agent's log has been read.
    pub log_reads: LogReads,
    /// Finished runs already cleaned up (grants revoked, Job stopped).
    pub cleaned_up: CleanedUp,
    /// How far along this process wrote each run's status.
    pub progress: Progress,
    /// When this process started reconciling (after winning the Lease, with leader
    /// election): outcomes a previous leader received from the bus but never acknowledged
    /// come back only when their ack wait ends, so results are awaited from here at least.
    pub acting_since: jiff::Timestamp,
    /// Stores other controllers fill (instances, policies, skill packs, configs, the
    /// instances' Deployments), read by run starts and the bus routers instead of the API
    /// server.
    pub watched: crate::watched::Watched,
}

/// Reads of finished agents' logs, per pod: the outcome is read once when the agent exits
/// and once more when the result grace period ends, never on every requeue in between (a
/// node that cannot serve logs would otherwise be asked every few seconds for each pod).
#[derive(Default)]
pub struct LogReads(std::sync::Mutex<std::collections::HashMap<String, (u8, std::time::Instant)>>);

/// Entries older than this are dropped (runs deleted before they settled).
const LOG_READS_KEPT: Duration = Duration::from_secs(900);

impl LogReads {
    /// Whether the log of `pod` (its uid) should be read now: the first time, and once
    /// more on the `last_chance` before the run is settled without it.
    pub fn should_read(&self, pod: &str, last_chance: bool) -> bool {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, at)| at.elapsed() < LOG_READS_KEPT);
        let entry = map.entry(pod.to_string()).or_insert((0, std::time::Instant::now()));
        let read = entry.0 == 0 || (entry.0 == 1 && last_chance);
        if read {
            entry.0 += 1;
        }
        read
    }

    /// Forgets `pod` once its run is settled.
    pub fn forget(&self, pod: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(pod);
    }
}

/// What this process knows about runs, by uid, that their cached copies may not show yet.
/// A run is forgotten when it is deleted; entries older than an hour are dropped as the map
/// grows, which bounds it should a deletion be missed.
pub struct RunMarks<V>(std::sync::Mutex<std::collections::HashMap<String, (V, std::time::Instant)>>);

impl<V> Default for RunMarks<V> {
    fn default() -> Self {
        Self(std::sync::Mutex::default())
    }
}

/// Entries are kept this long at most.
const RUN_MARKS_KEPT: Duration = Duration::from_secs(3600);

impl<V: Copy> RunMarks<V> {
    /// The mark of the run `uid`.
    pub fn get(&self, uid: &str) -> Option<V> {
        // A poisoned map only means another task panicked while inserting; the map is fine.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(uid).map(|(v, _)| *v)
    }

    /// Whether the run `uid` is marked.
    pub fn contains(&self, uid: &str) -> bool {
        self.get(uid).is_some()
    }

    /// Marks the run `uid` with `value`.
    pub fn set(&self, uid: &str, value: V) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() % 1024 == 1023 {
            map.retain(|_, (_, at)| at.elapsed() < RUN_MARKS_KEPT);
        }
        map.insert(uid.to_string(), (value, std::time::Instant::now()));
    }

    /// Forgets the run `uid` (it is being deleted).
    pub fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }
}

/// Finished runs whose grants were revoked and whose Job was stopped: a finished run is
/// reconciled again whenever its Job or status changes, and listing four kinds of RBAC and
/// deleting the Job each time was a third of a run's API requests. Nothing re-creates either
/// once a run has finished; after a restart the clean-up simply runs once more.
pub type CleanedUp = RunMarks<()>;

/// How far along (its rank, [`crate::agentrun::terminal::rank`]) this process wrote each
/// run's status. The reconcile that follows a run's own writes often starts before the
/// watch has delivered the last of them; a cached copy behind what was written is stale, and
/// acting on it repeated the whole start of the run (its creates all refused, its status
/// write conflicting) for most runs of a burst.
pub type Progress = RunMarks<u8>;

/// Per-key async locks (keys: `<namespace>/<instance>`).
#[derive(Default)]
pub struct StartLocks(std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl StartLocks {
    /// Waits for and takes the lock of `key`.
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another task panicked while inserting; the map is fine.
            let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Errors of one reconcile of the controllers whose only failures are API calls and the
/// finalizer machinery.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Context {
    /// A context whose Events are reported as `sympozium-controller/<instance>`.
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Metrics,
        namespace: Option<String>,
        identity: &str,
    ) -> Self {
        let reporter =
            Reporter { controller: "sympozium-controller".into(), instance: Some(identity.into()) };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            backoff: Backoff::default(),
            namespace,
            clock: Arc::new(SystemClock),
            schedule_poll: Duration::from_secs(60),
            agent_sandbox: false,
            start_locks: StartLocks::default(),
            log_reads: LogReads::default(),
            cleaned_up: CleanedUp::default(),
            progress: Progress::default(),
            acting_since: jiff::Timestamp::now(),
            watched: crate::watched::Watched::default(),
        }
    }

    /// A context with default settings and its own metrics, watching `namespace` (or every
    /// namespace): what tests, benches and tools that run one router or controller need.
    pub fn with_defaults(client: Client, namespace: Option<String>) -> Self {
        Self::new(client, Settings::default(), Metrics::default(), namespace, "sympozium-controller")
    }

    /// How every controller schedules its reconciles: at most
    /// `settings.max_concurrent_reconciles` at once.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default()
            .concurrency(self.settings.max_concurrent_reconciles.max(1))
    }

    /// Whether objects in `namespace` are this controller's to act on (`--watch-namespace`).
    /// Bus messages name their namespace themselves; one naming another namespace is not
    /// acted on, so a controller scoped to one tenant never writes into another's.
    pub fn in_scope(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|own| own == namespace)
    }

    /// The instance `namespace/name`: from the instance controller's store when it holds it,
    /// else from the API server — so an instance newer than the store is still found, and a
    /// context without the instance controller (a router run alone) still works.
    pub async fn instance(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<sympozium_api::SympoziumInstance>, kube::Error> {
        crate::watched::get(&self.watched.instances, &self.client, namespace, name).await
    }

    /// Uses `clock` for time-based decisions (tests use a manual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.acting_since = clock.now();
        self.clock = clock;
        self
    }

    /// An Api over the watched namespace, or over all namespaces.
    pub fn scoped<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Publishes a Kubernetes Event about `obj`; failures are logged, never fatal.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        self.publish_as(obj, "Reconcile", type_, reason, note).await;
    }

    /// Like [`Context::publish`], with the Event's `action` set to `action`.
    pub async fn publish_as<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        action: &str,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    }

    /// Ends a finalizer-wrapped reconcile: a success clears the object's backoff, the
    /// reconcile's own error passes through, and a failure of the finalizer machinery
    /// itself is wrapped by `machinery`.
    pub fn settle<E>(
        &self,
        key: &str,
        result: Result<Action, finalizer::Error<E>>,
        machinery: impl FnOnce(String) -> E,
    ) -> Result<Action, E>
    where
        E: std::error::Error + 'static,
    {
        match result {
            Ok(action) => {
                self.backoff.succeeded(key);
                Ok(action)
            }
            Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
            Err(e) => Err(machinery(e.to_string())),
        }
    }

    /// Records a failed reconcile of `obj` (metric under `reason`, grown backoff, a
    /// warning) and returns when to retry.
    ///
    /// An error that only says something is already gone or its namespace is being
    /// deleted is the normal course of a teardown, not a failure: it is logged at debug,
    /// neither counted nor backed off, and the object is looked at again shortly (the
    /// watch usually removes it first).
    pub fn retry<K: ResourceExt>(
        &self,
        controller: &str,
        reason: &str,
        obj: &K,
        error: &(dyn std::error::Error + 'static),
    ) -> Action {
        if is_teardown(error) {
            self.backoff.succeeded(&backoff_key(controller, obj));
            tracing::debug!(controller, object = %obj.name_any(), error = %error, "object or namespace going away");
            return Action::requeue(TEARDOWN_RECHECK);
        }
        self.metrics.failure(controller, reason);
        let delay = self.backoff.failed(&backoff_key(controller, obj));
        tracing::warn!(controller, object = %obj.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// Turns agent-sandbox mode (Sandboxes, warm pools) on or off.
    pub fn with_agent_sandbox(mut self, available: bool) -> Self {
        self.agent_sandbox = available;
        self
    }

    /// Evaluates schedules at least every `poll`.
    pub fn with_schedule_poll(mut self, poll: Duration) -> Self {
        self.schedule_poll = poll;
        self
    }
}

/// When an object whose reconcile met a teardown error is looked at again.
const TEARDOWN_RECHECK: Duration = Duration::from_secs(5);

/// Whether `error` (or one of its sources) is the API server saying the object is not
/// found (404) or that its namespace is being terminated. Errors carried as text (the
/// finalizer machinery's, per-child convergence errors) are recognised by kube's rendering
/// of those statuses.
pub fn is_teardown(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>() {
            return status.code == 404 || terminating(&status.message);
        }
        current = e.source();
    }
    // Several per-child errors are joined by "; ": every one of them must be a teardown.
    error.to_string().split("; ").all(|part| part.contains(": NotFound (") || terminating(part))
}

/// Whether the API server refused `error`'s request for good — forbidden, invalid, bad —
/// so retrying cannot help and the object may be failed with it. Anything else (the API
/// server or its etcd unavailable: 5xx, a dropped connection, a timeout; 408/409/429) is
/// transient and only retried: a run failed on those would be lost to an API server
/// restart.
pub fn is_refusal(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => {
            (400..500).contains(&status.code) && ![408, 409, 429].contains(&status.code)
        }
        _ => false,
    }
}

fn terminating(message: &str) -> bool {
    message.contains("because it is being terminated")
}

/// Backoff key of `obj`; the controller prefix keeps same-named objects of different
/// kinds (an instance and its schedule, say) from sharing one retry delay.
pub fn backoff_key<K: ResourceExt>(controller: &str, obj: &K) -> String {
    format!("{controller}:{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("namespace", &self.namespace)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Wrapped {
        #[error("kubernetes API: {0}")]
        Kube(#[from] kube::Error),
        #[error("converging failed: {0}")]
        Text(String),
    }

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure(message, reason).with_code(code)))
    }

    #[test]
    fn not_found_and_terminating_namespaces_are_teardown_other_errors_are_not() {
        let gone = Wrapped::from(api(404, "NotFound", "agentruns \"r\" not found"));
        assert!(is_teardown(&gone));
        let terminating = Wrapped::from(api(
            403,
            "Forbidden",
            "unable to create new content in namespace t because it is being terminated",
        ));
        assert!(is_teardown(&terminating));
        assert!(!is_teardown(&Wrapped::from(api(403, "Forbidden", "no rights"))));
        assert!(!is_teardown(&Wrapped::from(api(409, "Conflict", "the object has been modified"))));
        let text = |t: String| Wrapped::Text(t);
        let not_found = api(404, "NotFound", "configmaps \"m\" not found").to_string();
        assert!(is_teardown(&text(format!("persona a: {not_found}"))));
        assert!(!is_teardown(&text(format!("persona a: {not_found}; persona b: quota exceeded"))));
    }

    #[test]
    fn refusals_are_final_an_unavailable_api_server_is_not() {
        assert!(is_refusal(&api(403, "Forbidden", "cannot bind: escalation")));
        assert!(is_refusal(&api(422, "Invalid", "rules[0].verbs: Required value")));
        // What a restarting etcd or API server answers, or nothing at all.
        let etcd_down =
            "rpc error: code = Unavailable desc = error reading from server: connection reset by peer";
        assert!(!is_refusal(&api(500, "", etcd_down)));
        assert!(!is_refusal(&api(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request"
        )));
        assert!(!is_refusal(&api(504, "Timeout", "the server was unable to return a response in time")));
        assert!(!is_refusal(&api(429, "TooManyRequests", "slow down")));
        assert!(!is_refusal(&api(409, "Conflict", "the object has been modified")));
        // A stopped API server: the connection is refused before any status.
        assert!(!is_refusal(&kube::Error::Service("client error (Connect)".into())));
    }
}
