//! `packs list|show|activate|deactivate`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::PersonaPack;

use super::not_found;
use crate::cli::PackCommand;
use crate::output::{Format, age, document, table};

/// The Secret key the agent runner reads for `provider`.
fn key_name(provider: &str) -> &'static str {
    match provider {
        "openai" => "OPENAI_API_KEY",
        "anthropic" => "ANTHROPIC_API_KEY",
        "azure-openai" => "AZURE_OPENAI_API_KEY",
        _ => "API_KEY",
    }
}

/// Providers that run without an API key.
fn keyless(provider: &str) -> bool {
    matches!(provider, "ollama" | "lm-studio" | "vllm")
}

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
        PackCommand::Activate { name, provider, api_key, model } => {
            let mut pack = api.get_opt(name).await?.ok_or_else(|| not_found("pack", name, ns, "packs"))?;
            let secret_name = format!("{name}-{provider}-key");
            let key = api_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
            match key {
                Some(key) => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(secret_name.clone()),
                            labels: Some(BTreeMap::from([(
                                "sympozium.ai/persona-pack".to_string(),
                                name.clone(),
                            )])),
                            ..Default::default()
                        },
                        string_data: Some(BTreeMap::from([(
                            key_name(provider).to_string(),
                            key.to_string(),
                        )])),
                        ..Default::default()
                    };
                    Api::<Secret>::namespaced(client.clone(), ns)
                        .patch(
                            &secret_name,
                            &PatchParams::apply("sympozium-cli").force(),
                            &Patch::Apply(&secret),
                        )
                        .await?;
                }
                None if keyless(provider) => {}
                None => anyhow::bail!(
                    "provider \"{provider}\" needs an API key: pass --api-key or set SYMPOZIUM_API_KEY"
                ),
            }
            if let Some(model) = model {
                for persona in &mut pack.spec.personas {
                    persona.model.get_or_insert_with(|| model.clone());
                }
            }
            let secret_ref = if key.is_some() { secret_name.clone() } else { String::new() };
            let patch = json!({"spec": {
                "enabled": true,
                "authRefs": [{"provider": provider, "secret": secret_ref}],
                "personas": pack.spec.personas,
            }});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            crate::output::emitln!(
                "personapack/{name} activated ({} personas, provider {provider})",
                pack.spec.personas.len()
            );
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
