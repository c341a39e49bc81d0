//! Bounded waits: every wait in a test has a timeout and says what it waited for.

use std::fmt::Debug;
use std::time::Duration;

use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// A wait that did not finish in time.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The condition did not hold within the timeout.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// The watch failed.
    #[error("watch failed while waiting for {what}: {reason}")]
    Watch {
        /// What was awaited.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Waits until `cond` holds for the object `name`, returning the object.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<K, WaitError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let describe = || format!("{what} ({name})");
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Err(_) => Err(WaitError::Timeout { what: describe(), timeout }),
        Ok(Err(e)) => Err(WaitError::Watch { what: describe(), reason: e.to_string() }),
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(WaitError::Watch { what: describe(), reason: "object was deleted".into() }),
    }
}

/// Waits until the object `name` no longer exists.
pub async fn wait_until_gone<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
) -> Result<(), WaitError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let deleted = |obj: Option<&K>| obj.is_none();
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, deleted)).await {
        Err(_) => Err(WaitError::Timeout { what: format!("{what} ({name}) to be deleted"), timeout }),
        Ok(Err(e)) => Err(WaitError::Watch { what: format!("{what} ({name})"), reason: e.to_string() }),
        Ok(Ok(_)) => Ok(()),
    }
}
