//! Status: what the pack reports — phase, counts, the installed personas and a `Ready`
//! condition with a reason — written through the status subresource only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use sympozium_api::personapack::InstalledPersona;
use sympozium_api::{PersonaPack, PersonaPackStatus};
use sympozium_kube::FIELD_MANAGER;

/// Phase names.
pub mod phase {
    /// Enabled; the team is being stamped out.
    pub const PENDING: &str = "Pending";
    /// Every non-excluded persona is stamped out.
    pub const READY: &str = "Ready";
    /// At least one persona failed.
    pub const ERROR: &str = "Error";
    /// Disabled: a catalog entry with no team.
    pub const INACTIVE: &str = "Inactive";
}

fn persona_count(pack: &PersonaPack) -> i32 {
    i32::try_from(pack.spec.personas.len()).unwrap_or(i32::MAX)
}

fn base(pack: &PersonaPack) -> PersonaPackStatus {
    PersonaPackStatus { persona_count: persona_count(pack), ..Default::default() }
}

/// Status while the team is first being stamped out.
pub fn pending(pack: &PersonaPack) -> PersonaPackStatus {
    let mut s = base(pack);
    s.phase = Some(phase::PENDING.into());
    s.conditions = vec![ready(pack, false, "Installing", "stamping out the team".into())];
    s
}

/// Status of a disabled pack whose team is gone.
pub fn inactive(pack: &PersonaPack) -> PersonaPackStatus {
    let mut s = base(pack);
    s.phase = Some(phase::INACTIVE.into());
    s.conditions = vec![ready(
        pack,
        false,
        "Disabled",
        "catalog entry: set spec.enabled to true to stamp out the team".into(),
    )];
    s
}

/// Status of a disabled pack whose team is still being deleted.
pub fn removing(pack: &PersonaPack, instances: usize, schedules: usize) -> PersonaPackStatus {
    let mut s = pack.status.clone().unwrap_or_default();
    s.persona_count = persona_count(pack);
    s.conditions = vec![ready(
        pack,
        false,
        "RemovingTeam",
        format!("waiting for {instances} instance(s) and {schedules} schedule(s) to be deleted"),
    )];
    s
}

/// Status of an enabled pack after converging.
pub fn converged(
    pack: &PersonaPack,
    installed: Vec<InstalledPersona>,
    errors: &[String],
) -> PersonaPackStatus {
    let mut s = base(pack);
    s.installed_count = i32::try_from(installed.len()).unwrap_or(i32::MAX);
    let wanted = pack.spec.personas.iter().filter(|p| !super::build::is_excluded(pack, &p.name)).count();
    s.installed_personas = installed;
    if errors.is_empty() {
        s.phase = Some(phase::READY.into());
        let note = format!(
            "{} of {} personas installed ({} excluded)",
            wanted,
            s.persona_count,
            s.persona_count - i32::try_from(wanted).unwrap_or(0)
        );
        s.conditions = vec![ready(pack, true, "Reconciled", note)];
    } else {
        s.phase = Some(phase::ERROR.into());
        s.conditions = vec![ready(pack, false, "PersonaFailed", errors.join("; "))];
    }
    s
}

/// The `Ready` condition, keeping the previous transition time while the status holds.
fn ready(pack: &PersonaPack, ok: bool, reason: &str, message: String) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = pack.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let last_transition_time = previous
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.chars().take(32 * 1024).collect(),
        last_transition_time,
        observed_generation: pack.metadata.generation,
    }
}

/// Whether the status differs from what the pack reports now.
pub fn changed(old: Option<&PersonaPackStatus>, new: &PersonaPackStatus) -> bool {
    old != Some(new)
}

/// Writes `status` through the status subresource (server-side apply); returns the pack's
/// resourceVersion after the write.
pub async fn write(
    api: &Api<PersonaPack>,
    name: &str,
    status: &PersonaPackStatus,
) -> Result<Option<String>, kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1",
        "kind": "PersonaPack",
        "status": status,
    });
    let written =
        api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(written.metadata.resource_version)
}
