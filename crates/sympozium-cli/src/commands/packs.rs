//! `packs list|show|activate|deactivate`. Activation is [`activate_pack`], shared with the
//! TUI's activation wizard.

use std::collections::BTreeMap;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::PersonaPack;

use super::not_found;
use crate::cli::PackCommand;
use crate::output::{Format, age, document, table};
use crate::wizard::apply::{activate_pack, primary_key};
use crate::wizard::pack::Activation;

/// Runs a pack command.
pub async fn dispatch(client: &Client, ns: &str, cmd: &PackCommand, format: Format) -> anyhow::Result<i32> {
    let api: Api<PersonaPack> = Api::namespaced(client.clone(), ns);
    match cmd {
        PackCommand::List => {
            let items = api.list(&ListParams::default()).await?.items;
            if format != Format::Table {
                crate::output::emit!("{}", document(&items, format)?);
                return Ok(0);
            }
            let rows: Vec<_> = items
                .iter()
                .map(|p| {
                    let status = p.status.clone().unwrap_or_default();
                    vec![
                        p.name_any(),
                        p.spec.category.clone().unwrap_or_default(),
                        p.spec.enabled.unwrap_or(false).to_string(),
                        p.spec.personas.len().to_string(),
                        status.installed_count.to_string(),
                        status.phase.unwrap_or_default(),
                        age(p.metadata.creation_timestamp.as_ref()),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("no packs in namespace \"{ns}\"");
            } else {
                crate::output::emit!(
                    "{}",
                    table(&["NAME", "CATEGORY", "ENABLED", "PERSONAS", "INSTALLED", "PHASE", "AGE"], &rows)
                );
            }
            Ok(0)
        }
        PackCommand::Show { name } => {
            let pack = api.get_opt(name).await?.ok_or_else(|| not_found("pack", name, ns, "packs"))?;
            if format != Format::Table {
                crate::output::emit!("{}", document(&pack, format)?);
                return Ok(0);
            }
            crate::output::emitln!(
                "{}: {}",
                pack.name_any(),
                pack.spec.description.clone().unwrap_or_default()
            );
            let rows: Vec<_> = pack
                .spec
                .personas
                .iter()
                .map(|p| {
                    let schedule = p.schedule.as_ref().map(|s| {
                        let when = s.cron.clone().or_else(|| s.interval.clone()).unwrap_or_default();
                        format!("{} {when}", s.type_.as_str())
                    });
                    vec![
                        p.name.clone(),
                        p.display_name.clone().unwrap_or_default(),
                        p.skills.join(","),
                        schedule.unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            crate::output::emit!("{}", table(&["PERSONA", "DISPLAY NAME", "SKILLS", "SCHEDULE"], &rows));
            Ok(0)
        }
        PackCommand::Activate { name, provider, api_key, model, base_url, sandbox } => {
            let key = api_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
            let act = Activation {
                pack: name.clone(),
                provider: provider.clone(),
                credentials: key
                    .map(|k| BTreeMap::from([(primary_key(provider).to_string(), k.to_string())]))
                    .unwrap_or_default(),
                model: model.clone(),
                base_url: base_url.clone().filter(|u| !u.trim().is_empty()),
                sandbox_container: *sandbox,
                ..Default::default()
            };
            let personas = activate_pack(client, ns, &act).await?;
            crate::output::emitln!("personapack/{name} activated ({personas} personas, provider {provider})");
            Ok(0)
        }
        PackCommand::Deactivate { name } => {
            if api.get_opt(name).await?.is_none() {
                return Err(not_found("pack", name, ns, "packs"));
            }
            api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"enabled": false}})))
                .await?;
            crate::output::emitln!("personapack/{name} deactivated");
            Ok(0)
        }
    }
}
