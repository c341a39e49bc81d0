//! Reflector stores of what a controller watches, so its reconciles read memory instead of
//! asking the API server for objects it is told about anyway.
//!
//! Each store is filled by the same watch that triggers the controller (the stream is passed
//! to `owns_stream` / `watches_stream`), so by the time a change triggers a reconcile the
//! store already holds it. Fields no reconcile reads (managed fields, pod and Job specs) are
//! dropped before the object is stored: at thousands of runs they are most of the memory.

use std::fmt::Debug;

use futures::Stream;
use futures::future::{BoxFuture, FutureExt, Shared};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// A watch of `K` feeding a store: the store and the stream of changed objects (to be
/// handed to the controller, which drives it).
pub fn reflected<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, events) = stored_events(api, config, strip);
    (reader, events.touched_objects())
}

/// A controller's own kind: its store and the stream of created or changed objects, for
/// `Controller::for_stream`. `Controller::new` would keep every object whole, managed fields
/// included — at thousands of runs the largest part of each — so the controller's objects are
/// stored stripped like every other store. Deletions trigger nothing, as with
/// `Controller::new`: a deleted object's cleanup ran while it still existed (finalizers).
pub fn reflected_own<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, events) = stored_events(api, config, |_| {});
    (reader, events.applied_objects())
}

/// The watch of `K` with managed fields and whatever `strip` removes dropped, feeding a new
/// store: the store and the watch's events.
fn stored_events<K>(
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        .modify(move |obj: &mut K| {
            obj.meta_mut().managed_fields = None;
            strip(obj);
        })
        .reflect(writer);
    (reader, events)
}

/// Like [`reflected`], metadata only (names, labels, owners, resourceVersions): an
/// `Api<PartialObjectMeta<K>>` watch asks the API server for metadata alone.
pub fn reflected_metadata<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflected(api, config, |m: &mut PartialObjectMeta<K>| m.metadata.annotations = None)
}

/// Whether a controller's stores have all had their first list: one future that any number
/// of reconciles may await at once.
///
/// kube's `Store::wait_until_ready` keeps a single waker (a oneshot receiver underneath), so
/// when several reconciles wait on it together only the last to poll is woken and the rest
/// wait for ever, as a burst of runs reconciled at start-up did. A `Shared` future polls the
/// stores from one place and wakes every waiter.
pub type Readiness = Shared<BoxFuture<'static, bool>>;

/// The [`Readiness`] of every store in `waits` (made with [`until_ready`]).
pub fn readiness(waits: Vec<BoxFuture<'static, bool>>) -> Readiness {
    async move {
        for wait in waits {
            if !wait.await {
                return false;
            }
        }
        true
    }
    .boxed()
    .shared()
}

/// Waits for `store`'s first list; `false` when it never comes (its writer was dropped).
pub fn until_ready<K>(store: &Store<K>) -> BoxFuture<'static, bool>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let store = store.clone();
    async move { store.wait_until_ready().await.is_ok() }.boxed()
}

/// The stored object `name` in `namespace`.
pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

/// Whether the store holds `name` in `namespace`.
pub fn contains<K>(store: &Store<K>, namespace: &str, name: &str) -> bool
where
    K: Resource<DynamicType = ()> + Clone,
{
    get(store, namespace, name).is_some()
}

/// Stored objects in `namespace` whose labels include every `(key, value)` of `selector`.
pub fn labelled<K>(store: &Store<K>, namespace: &str, selector: &[(&str, &str)]) -> Vec<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store.state_filter(|o| {
        o.meta().namespace.as_deref() == Some(namespace)
            && selector.iter().all(|(k, v)| o.labels().get(*k).map(String::as_str) == Some(*v))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    use super::*;

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_first_list_is_woken() {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let ready = readiness(vec![until_ready(&reader)]);
        // Twelve reconciles start before the first list, as a burst does at start-up.
        let waiters: Vec<_> = (0..12).map(|_| tokio::spawn(ready.clone())).collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "nobody is ready before the list");

        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for w in waiters {
            let woken = tokio::time::timeout(Duration::from_secs(5), w).await;
            assert!(woken.expect("every waiter is woken").unwrap(), "and told the store is ready");
        }
    }

    #[tokio::test]
    async fn a_store_whose_writer_is_gone_is_never_ready() {
        let (reader, writer) = reflector::store::<ConfigMap>();
        drop(writer);
        assert!(!readiness(vec![until_ready(&reader)]).await);
    }
}
