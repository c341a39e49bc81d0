//! What this process last applied for each owner (a pack, an instance), so a reconcile
//! re-applies only what changed.
//!
//! Owners are reconciled again whenever one of their children changes, and most of those
//! changes are the children's own status writes. Re-applying all of a 7-persona pack's
//! instances and schedules each time was 14 patches per member change; an instance re-sent
//! its Deployment, Service and NetworkPolicy on each of its own status writes. An object
//! is applied again when the owner wants something different, when someone else wrote it
//! (its resourceVersion moved, and for kinds with a generation, its spec), when its labels
//! or owner references lost one of ours, or when it was replaced (new uid); otherwise the apply is skipped.
//! Marks live in memory only: a restarted controller applies everything once.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sympozium_kube::FIELD_MANAGER;

/// The state of one applied object: the desired object's digest, and the generation,
/// resourceVersion and uid the API server answered the apply with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    digest: u64,
    generation: Option<i64>,
    version: Option<String>,
    uid: Option<String>,
}

/// Marks per owner (by uid), per object (`Kind/name`).
#[derive(Clone, Default)]
pub struct Stamps(Arc<Mutex<HashMap<String, HashMap<String, Mark>>>>);

/// What [`Stamps::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist and was created.
    Created,
    /// The object existed and was applied again.
    Applied,
    /// The object already held what the owner wants; nothing was sent.
    Current,
}

impl Stamps {
    /// Server-side applies `desired` (forced) unless `stored` — the watch's latest copy of
    /// the object, whole or metadata only — shows it is still what this process last
    /// applied for `owner_uid`.
    pub async fn apply<K, S>(
        &self,
        owner_uid: &str,
        api: &Api<K>,
        desired: &K,
        stored: Option<&S>,
    ) -> Result<Outcome, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Serialize + DeserializeOwned,
        S: Resource,
    {
        let key = format!("{}/{}", K::kind(&()), desired.name_any());
        let digest = digest(desired);
        if let Some(stored) = stored
            && self.current(owner_uid, &key, digest, stored.meta(), desired.meta())
        {
            return Ok(Outcome::Current);
        }
        let applied = api
            .patch(&desired.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired))
            .await?;
        let meta = applied.meta();
        let mark = Mark {
            digest,
            generation: meta.generation,
            version: meta.resource_version.clone(),
            uid: meta.uid.clone(),
        };
        if let Ok(mut all) = self.0.lock() {
            all.entry(owner_uid.to_string()).or_default().insert(key, mark);
        }
        Ok(if stored.is_some() { Outcome::Applied } else { Outcome::Created })
    }

    /// Forgets an owner (disabled or deleted): its objects are being removed.
    pub fn forget(&self, owner_uid: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(owner_uid);
        }
    }

    fn current(
        &self,
        owner_uid: &str,
        key: &str,
        digest: u64,
        meta: &ObjectMeta,
        desired: &ObjectMeta,
    ) -> bool {
        let Ok(all) = self.0.lock() else { return false };
        let Some(mark) = all.get(owner_uid).and_then(|m| m.get(key)) else { return false };
        let labels = desired.labels.iter().flatten();
        let labelled = labels.clone().all(|(k, v)| meta.labels.as_ref().and_then(|l| l.get(k)) == Some(v));
        // An owner reference removed by hand would leave the child behind when its owner goes.
        let stored_owners = meta.owner_references.iter().flatten();
        let owned =
            desired.owner_references.iter().flatten().all(|o| stored_owners.clone().any(|s| s.uid == o.uid));
        // Untouched since the apply, or (kinds with a generation) only its status written.
        let unwritten = mark.version.is_some() && mark.version == meta.resource_version;
        let same_spec = mark.generation.is_some() && mark.generation == meta.generation;
        mark.digest == digest
            && mark.uid.is_some()
            && mark.uid == meta.uid
            && labelled
            && owned
            && (unwritten || same_spec)
    }
}

/// A digest of the object as it would be sent.
fn digest<K: Serialize>(obj: &K) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match serde_json::to_vec(obj) {
        Ok(bytes) => bytes.hash(&mut hasher),
        // Unserializable objects cannot be applied either; a digest that never matches
        // leaves the decision to the apply.
        Err(_) => return u64::MAX,
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use sympozium_api::SympoziumInstance;

    fn stored(generation: i64, uid: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ObjectMeta {
            name: Some("team-lead".into()),
            generation: Some(generation),
            resource_version: Some(format!("{generation}00")),
            uid: Some(uid.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    fn marked(stamps: &Stamps, digest: u64) {
        let mark = Mark { digest, generation: Some(3), version: Some("300".into()), uid: Some("u1".into()) };
        stamps
            .0
            .lock()
            .unwrap()
            .entry("pack".into())
            .or_default()
            .insert("SympoziumInstance/team-lead".into(), mark);
    }

    #[test]
    fn only_an_unchanged_object_with_the_packs_labels_is_current() {
        let stamps = Stamps::default();
        let pack = OwnerReference { uid: "pack-uid".into(), ..OwnerReference::default() };
        let labels = ObjectMeta {
            labels: Some([("sympozium.ai/persona-pack".to_string(), "team".to_string())].into()),
            owner_references: Some(vec![pack.clone()]),
            ..ObjectMeta::default()
        };
        let key = "SympoziumInstance/team-lead";
        let owned = |mut meta: ObjectMeta| {
            meta.owner_references = Some(vec![pack.clone()]);
            meta
        };
        let stored = |generation, uid, labels| owned(stored(generation, uid, labels));
        let ok = stored(3, "u1", &[("sympozium.ai/persona-pack", "team"), ("extra", "x")]);
        assert!(!stamps.current("pack", key, 7, &ok, &labels), "nothing applied yet");
        marked(&stamps, 7);
        assert!(stamps.current("pack", key, 7, &ok, &labels));
        assert!(!stamps.current("pack", key, 8, &ok, &labels), "the pack wants something else");
        assert!(
            !stamps.current(
                "pack",
                key,
                7,
                &stored(4, "u1", &[("sympozium.ai/persona-pack", "team")]),
                &labels
            ),
            "someone edited the spec"
        );
        assert!(
            !stamps.current(
                "pack",
                key,
                7,
                &stored(3, "u2", &[("sympozium.ai/persona-pack", "team")]),
                &labels
            ),
            "replaced"
        );
        assert!(
            !stamps.current("pack", key, 7, &stored(3, "u1", &[]), &labels),
            "a label of the pack removed"
        );
        let mut orphaned = ok.clone();
        orphaned.owner_references = None;
        assert!(!stamps.current("pack", key, 7, &orphaned, &labels), "its owner reference removed");
        assert!(!stamps.current("other", key, 7, &ok, &labels), "another pack");
        stamps.forget("pack");
        assert!(!stamps.current("pack", key, 7, &ok, &labels), "forgotten");
    }

    #[test]
    fn kinds_without_a_generation_are_current_only_until_written() {
        let stamps = Stamps::default();
        let labels = ObjectMeta::default();
        let key = "SympoziumInstance/team-lead";
        let mark = Mark { digest: 7, generation: None, version: Some("300".into()), uid: Some("u1".into()) };
        stamps.0.lock().unwrap().entry("owner".into()).or_default().insert(key.into(), mark);
        let mut meta = stored(3, "u1", &[]);
        meta.generation = None;
        assert!(stamps.current("owner", key, 7, &meta, &labels));
        meta.resource_version = Some("301".into());
        assert!(!stamps.current("owner", key, 7, &meta, &labels), "written by someone since");
    }

    #[test]
    fn the_digest_follows_the_content() {
        let a = SympoziumInstance::new("a", Default::default());
        let mut b = a.clone();
        assert_eq!(digest(&a), digest(&b));
        b.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
        assert_ne!(digest(&a), digest(&b));
    }
}
