//! Apply: converge an enabled pack's team — per persona the seeded memory ConfigMap, the
//! instance and the schedule, all at once (the instance controller's placeholder never wins
//! over seeds: seeds replace a placeholder), instance and schedule by server-side apply with
//! force (the pack is the source of truth for the fields it sets), and delete what the pack
//! no longer stamps out (excluded or removed personas, schedules a persona dropped).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use sympozium_api::personapack::{InstalledPersona, PersonaSpec};
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};
use sympozium_kube::apply::{create_if_absent, delete_if_exists, delete_if_owned};

use super::build::{self, SeedAction};
use super::dereference::{Observed, Stores, owned_by, persona_of};
use crate::cache;
use crate::context::Context;
use crate::instance::build::MEMORY_PLACEHOLDER;
use crate::stamps::Outcome;

/// What converging a pack did.
#[derive(Debug, Default)]
pub struct Converged {
    /// Objects created, as `Kind/name`.
    pub created: Vec<String>,
    /// Objects deleted, as `Kind/name`.
    pub deleted: Vec<String>,
    /// Personas stamped out successfully, in pack order.
    pub installed: Vec<InstalledPersona>,
    /// Personas that failed, with the reason.
    pub failures: Vec<(String, String)>,
    /// Failures deleting objects the pack no longer wants.
    pub prune_errors: Vec<String>,
}

impl Converged {
    /// Every error, one line each.
    pub fn errors(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|(p, e)| format!("persona {p}: {e}"))
            .chain(self.prune_errors.clone())
            .collect()
    }
}

/// Why one persona could not be stamped out.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// The pack's persona does not make a valid instance.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// A request about `what` (`Kind/name`) failed.
    #[error("{what}: {source}")]
    Kube {
        /// The object, as `Kind/name`.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// An object of the generated name exists and the pack does not own it.
    #[error("{0} already exists and is not managed by this pack; rename or delete it")]
    Foreign(String),
}

/// `map_err` adapter naming the object a request was about.
fn about(what: impl Into<String>) -> impl FnOnce(kube::Error) -> StampError {
    move |source| StampError::Kube { what: what.into(), source }
}

/// Converges every non-excluded persona, then prunes what no persona wants any more.
pub async fn converge(pack: &PersonaPack, observed: &Observed, ctx: &Context, stores: &Stores) -> Converged {
    let mut out = Converged::default();
    let mut wanted = BTreeSet::new();
    // Personas are independent of each other: they are stamped out concurrently (their
    // requests share the client's one connection), and reported in pack order.
    let personas: Vec<_> =
        pack.spec.personas.iter().enumerate().filter(|(_, p)| !build::is_excluded(pack, &p.name)).collect();
    let stamped = futures::future::join_all(personas.iter().map(|(index, persona)| async move {
        let mut own = Converged::default();
        let result = stamp(pack, persona, *index, ctx, stores, &mut own).await;
        (own, result)
    }))
    .await;
    for ((_, persona), (own, result)) in personas.iter().zip(stamped) {
        wanted.insert(persona.name.clone());
        out.created.extend(own.created);
        out.deleted.extend(own.deleted);
        match result {
            Ok(installed) => out.installed.push(installed),
            Err(e) => {
                tracing::warn!(persona = %persona.name, error = %e, "persona not converged");
                out.failures.push((persona.name.clone(), e.to_string()));
            }
        }
    }
    prune(pack, observed, &wanted, ctx, &mut out).await;
    out
}

async fn stamp(
    pack: &PersonaPack,
    persona: &PersonaSpec,
    index: usize,
    ctx: &Context,
    stores: &Stores,
    out: &mut Converged,
) -> Result<InstalledPersona, StampError> {
    let ns = pack.namespace().unwrap_or_default();
    let uid = pack.uid().unwrap_or_default();
    let inst = build::instance(pack, persona, &ctx.settings)?;
    let name = inst.name_any();
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let schedules: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let schedule_name = build::schedule_name(&name);
    not_foreign(&stores.instances, &ns, &name, &uid)?;
    not_foreign(&stores.schedules, &ns, &schedule_name, &uid)?;

    // The three objects do not depend on each other: one round trip, not three.
    let seeded = async {
        let mut created = None;
        if let Some(cm) = build::seed_configmap(pack, persona) {
            let configmaps = Api::namespaced(ctx.client.clone(), &ns);
            created = seed(&configmaps, &stores.configmaps, &ns, &cm).await?;
        }
        Ok::<_, StampError>(created)
    };
    let instance = async {
        let what = format!("SympoziumInstance/{name}");
        let stored = cache::get(&stores.instances, &ns, &name);
        let applied = stores
            .stamps
            .apply(&uid, &instances, &inst, stored.as_deref())
            .await
            .map_err(about(what.clone()))?;
        Ok::<_, StampError>((applied == Outcome::Created).then_some(what))
    };
    let schedule = async {
        let what = format!("SympoziumSchedule/{schedule_name}");
        match build::schedule(pack, persona, index) {
            Some(sched) => {
                let stored = cache::get(&stores.schedules, &ns, &schedule_name);
                let applied = stores
                    .stamps
                    .apply(&uid, &schedules, &sched, stored.as_deref())
                    .await
                    .map_err(about(what.clone()))?;
                Ok::<_, StampError>((
                    Some(schedule_name.clone()),
                    (applied == Outcome::Created).then_some(what),
                    None,
                ))
            }
            None => {
                let deleted =
                    delete_if_owned(&schedules, &schedule_name, &uid).await.map_err(about(what.clone()))?;
                Ok((None, None, deleted.then_some(what)))
            }
        }
    };
    let (seeded, instance, (schedule, schedule_created, schedule_deleted)) =
        futures::try_join!(seeded, instance, schedule)?;
    out.created.extend(seeded.into_iter().chain(instance).chain(schedule_created));
    out.deleted.extend(schedule_deleted);
    Ok(InstalledPersona { name: persona.name.clone(), instance_name: name, schedule_name: schedule })
}

/// Refuses to take over an object of the generated name that the pack does not own (a
/// user's own instance, or one of a deleted pack still being garbage-collected).
fn not_foreign<K>(
    store: &Store<PartialObjectMeta<K>>,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), StampError>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    match cache::get(store, ns, name) {
        Some(meta) if !owned_by(&*meta, uid) => Err(StampError::Foreign(format!("{}/{name}", K::kind(&())))),
        _ => Ok(()),
    }
}

/// Writes the persona's seeds: creates the ConfigMap when absent, and rewrites it when it
/// holds only a placeholder or earlier seeds of the pack — never memories an agent recorded.
/// Returns `ConfigMap/<name>` when it created it.
async fn seed(
    configmaps: &Api<ConfigMap>,
    stored: &Store<ConfigMap>,
    ns: &str,
    desired: &ConfigMap,
) -> Result<Option<String>, StampError> {
    let name = desired.name_any();
    let what = format!("ConfigMap/{name}");
    let existing = match cache::get(stored, ns, &name) {
        Some(cm) => (*cm).clone(),
        None => {
            if create_if_absent(configmaps, desired).await.map_err(about(what.clone()))? {
                return Ok(Some(what));
            }
            // There already (made by the instance controller, or not labelled with the
            // pack): decide on what is there.
            configmaps.get(&name).await.map_err(about(what.clone()))?
        }
    };
    match build::seed_action(&existing, desired, MEMORY_PLACEHOLDER) {
        SeedAction::Keep => Ok(None),
        SeedAction::Preserve => {
            tracing::debug!(configmap = %name, "memory holds recorded memories; seeds not rewritten");
            Ok(None)
        }
        SeedAction::Replace => {
            let mut updated = existing;
            updated.data.get_or_insert_default().extend(desired.data.clone().unwrap_or_default());
            updated.metadata.labels.get_or_insert_default().extend(desired.labels().clone());
            updated.metadata.annotations.get_or_insert_default().extend(desired.annotations().clone());
            // Optimistic concurrency: the resourceVersion we read guards an agent's write.
            configmaps.replace(&name, &PostParams::default(), &updated).await.map_err(about(what.clone()))?;
            tracing::info!(configmap = %name, "seeded memory written");
            Ok(None)
        }
    }
}

/// Deletes the instances and schedules of personas that are excluded or gone from the pack,
/// and their seeded memory.
async fn prune(
    pack: &PersonaPack,
    observed: &Observed,
    wanted: &BTreeSet<String>,
    ctx: &Context,
    out: &mut Converged,
) {
    let ns = pack.namespace().unwrap_or_default();
    let uid = pack.uid().unwrap_or_default();
    let unwanted = |persona: Option<String>| persona.is_none_or(|p| !wanted.contains(&p));

    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    for inst in observed.instances.iter().filter(|i| owned_by(&***i, &uid) && unwanted(persona_of(&***i))) {
        record(
            out,
            "SympoziumInstance",
            &inst.name_any(),
            delete_if_exists(&instances, &inst.name_any()).await,
        );
    }
    let schedules: Api<SympoziumSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    for s in observed.schedules.iter().filter(|s| owned_by(&***s, &uid) && unwanted(persona_of(&***s))) {
        record(out, "SympoziumSchedule", &s.name_any(), delete_if_exists(&schedules, &s.name_any()).await);
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    for cm in observed.configmaps.iter().filter(|c| unwanted(persona_of(&***c))) {
        record(out, "ConfigMap", &cm.name_any(), delete_if_exists(&configmaps, &cm.name_any()).await);
    }
}

fn record(out: &mut Converged, kind: &str, name: &str, result: Result<bool, kube::Error>) {
    match result {
        Ok(true) => out.deleted.push(format!("{kind}/{name}")),
        Ok(false) => {}
        Err(e) => out.prune_errors.push(format!("deleting {kind}/{name}: {e}")),
    }
}
