//! Adding a controller's finalizer in the reconcile that first sees an object, which then
//! goes on with its work. kube's `finalizer` helper adds the finalizer and returns, so each
//! new object waits for that patch's own watch event before anything is built for it: in a
//! burst of new objects, one more pass through the whole queue and one more reconcile each.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sympozium_kube::FIELD_MANAGER;

/// JSON patch operations adding `finalizer` to an object whose finalizers are `current`,
/// written as kube's helper writes them: the `test` keeps a concurrent change to the list
/// from being overwritten (the patch then fails and the reconcile is retried).
pub fn add_ops(current: &[String], finalizer: &str) -> Vec<Value> {
    if current.is_empty() {
        vec![json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})]
    } else {
        vec![
            json!({"op": "test", "path": "/metadata/finalizers", "value": current}),
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}),
        ]
    }
}

/// Whether `obj` still needs `finalizer` added (it is not being deleted and lacks it).
pub fn missing<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.meta().deletion_timestamp.is_none() && !obj.finalizers().iter().any(|f| f == finalizer)
}

/// Sends `ops` as one JSON patch of `name`; returns the object as written.
pub async fn patch<K>(api: &Api<K>, name: &str, ops: Vec<Value>) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(kube::Error::SerdeError)?;
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.patch(name, &params, &Patch::Json::<()>(patch)).await
}

/// `obj` with `finalizer` added (written now if it was missing), for kube's `finalizer`
/// helper to go straight on to the object's work.
pub async fn ensure<K>(api: &Api<K>, finalizer: &str, obj: Arc<K>) -> Result<Arc<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if !missing(&*obj, finalizer) {
        return Ok(obj);
    }
    let ops = add_ops(obj.finalizers(), finalizer);
    Ok(Arc::new(patch(api, &obj.name_any(), ops).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_finalizer_creates_the_list_and_a_later_one_is_appended_under_a_test() {
        assert_eq!(
            add_ops(&[], "sympozium.ai/finalizer"),
            vec![json!({"op": "add", "path": "/metadata/finalizers", "value": ["sympozium.ai/finalizer"]})]
        );
        let ops = add_ops(&["other.io/keep".into()], "sympozium.ai/finalizer");
        assert_eq!(ops[0], json!({"op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"]}));
        assert_eq!(ops[1]["path"], "/metadata/finalizers/-");
        let patch: Result<json_patch::Patch, _> = serde_json::from_value(Value::Array(ops));
        assert!(patch.is_ok(), "{patch:?}");
    }
}
