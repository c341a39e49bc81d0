//! Writing what the wizards decided. One function per outcome, used by every client that
//! produces it: [`activate_pack`] by `sympozium packs activate` and the TUI's pack wizard,
//! [`onboard`] by `sympozium onboard` and the TUI's onboarding wizard.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumPolicy, SympoziumSchedule, labels};

use super::onboard::{DEFAULT_SKILLS, Onboarding};
use super::pack::Activation;
use super::providers::{PROVIDERS, channel_token_keys};

/// Why writing a wizard's outcome failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The pack to activate does not exist.
    #[error("pack \"{pack}\" not found in namespace \"{ns}\" (see `sympozium packs list -n {ns}`)")]
    PackNotFound {
        /// Pack name.
        pack: String,
        /// Namespace.
        ns: String,
    },
    /// The Secret the channel should read its token from does not exist.
    #[error("channel Secret \"{secret}\" not found in namespace \"{ns}\": create it first (keys {keys})")]
    ChannelSecretMissing {
        /// Secret name.
        secret: String,
        /// Namespace.
        ns: String,
        /// The keys the channel reads.
        keys: String,
    },
    /// The provider needs credentials and none were given.
    #[error("provider \"{0}\" needs an API key: pass --api-key or set SYMPOZIUM_API_KEY")]
    NeedsKey(String),
    /// A Kubernetes call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Field manager of everything the CLI and TUI write.
pub const MANAGER: &str = "sympozium-cli";

/// Whether `provider` cannot run without credentials.
pub fn needs_key(provider: &str) -> bool {
    match PROVIDERS.iter().find(|p| p.name == provider) {
        Some(p) => !p.keys_optional,
        None => provider != "vllm",
    }
}

/// The Secret key the agent runner reads the main credential of `provider` from.
pub fn primary_key(provider: &str) -> &'static str {
    PROVIDERS
        .iter()
        .find(|p| p.name == provider)
        .and_then(|p| p.keys.iter().find(|(k, _)| !k.contains("REGION")))
        .map(|(k, _)| *k)
        .unwrap_or("API_KEY")
}

async fn put_secret(
    client: &Client,
    ns: &str,
    name: &str,
    label: (&str, &str),
    data: &BTreeMap<String, String>,
) -> kube::Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(label.0.to_string(), label.1.to_string())])),
            ..Default::default()
        },
        string_data: Some(data.clone()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

/// Activates a pack : the provider Secret `<pack>-<provider>-key`
/// (labelled with the pack, so disabling the pack removes it), channel Secrets
/// `<pack>-<type>-secret`, then one merge patch of the pack: `enabled`, `authRefs`, models of
/// personas that name none, channels, base URL, repository, team task, sandbox, heartbeat;
/// the first activation also clears `excludePersonas`. Returns the number of personas.
pub async fn activate_pack(client: &Client, ns: &str, act: &Activation) -> Result<usize, ApplyError> {
    let api: Api<PersonaPack> = Api::namespaced(client.clone(), ns);
    let mut pack = api
        .get_opt(&act.pack)
        .await?
        .ok_or_else(|| ApplyError::PackNotFound { pack: act.pack.clone(), ns: ns.into() })?;
    let name = act.pack.as_str();
    let has_key = act.credentials.values().any(|v| !v.trim().is_empty());
    if !has_key && needs_key(&act.provider) {
        return Err(ApplyError::NeedsKey(act.provider.clone()));
    }
    let secret_name = format!("{name}-{}-key", act.provider);
    if has_key {
        put_secret(client, ns, &secret_name, (labels::PERSONA_PACK, name), &act.credentials).await?;
    }
    let mut channel_configs = serde_json::Map::new();
    for (ty, tokens) in &act.channels {
        if tokens.is_empty() {
            continue;
        }
        let secret = format!("{name}-{ty}-secret");
        put_secret(client, ns, &secret, (labels::PERSONA_PACK, name), tokens).await?;
        channel_configs.insert(ty.clone(), Value::String(secret));
    }
    for persona in &mut pack.spec.personas {
        if let Some(model) = &act.model {
            persona.model.get_or_insert_with(|| model.clone());
        }
        if !act.channels.is_empty() {
            persona.channels = act.channels.iter().map(|(t, _)| t.clone()).collect();
        }
        if let (Some(every), Some(schedule)) = (&act.heartbeat, persona.schedule.as_mut()) {
            schedule.interval = Some(every.clone());
            schedule.cron = None;
        }
    }
    let mut spec = json!({
        "enabled": true,
        "authRefs": [{"provider": act.provider, "secret": if has_key { secret_name } else { String::new() }}],
        "personas": pack.spec.personas,
    });
    if pack.spec.enabled != Some(true) {
        spec["excludePersonas"] = json!([]);
    }
    if !channel_configs.is_empty() {
        spec["channelConfigs"] = Value::Object(channel_configs);
    }
    if let Some(url) = &act.base_url {
        spec["baseURL"] = if url.is_empty() { Value::Null } else { json!(url) };
    }
    if let Some(repo) = &act.repo {
        spec["skillParams"] = json!({"github-gitops": {"repo": repo}});
    }
    if let Some(task) = &act.task {
        spec["taskOverride"] = json!(task);
    }
    if act.sandbox {
        spec["agentSandbox"] = json!({"enabled": true});
    }
    if act.sandbox_container {
        spec["sandbox"] = json!({"enabled": true});
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({ "spec": spec }))).await?;
    Ok(pack.spec.personas.len())
}

/// The heartbeat task of an onboarded agent.
fn heartbeat_task(instructions: Option<&str>) -> String {
    let base = "Review your memory and the state of what you look after; summarise anything that \
                changed or needs attention, and store what is worth remembering.";
    match instructions {
        Some(i) => format!("OBJECTIVE: {i}\n\n{base}"),
        None => base.into(),
    }
}

/// The `default-policy` onboarding creates.
fn default_policy() -> Value {
    json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy",
        "metadata": {"name": "default-policy"},
        "spec": {
            "toolGating": {"defaultAction": "allow", "rules": [
                {"tool": "execute_command", "action": "ask"},
                {"tool": "write_file", "action": "allow"}]},
            "subagentPolicy": {"maxDepth": 3, "maxConcurrent": 5},
            "sandboxPolicy": {"required": false,
                "defaultImage": "ghcr.io/sympozium-ai/sympozium/sandbox:latest",
                "maxCPU": "4", "maxMemory": "8Gi",
                "agentSandboxPolicy": {"required": false, "defaultRuntimeClass": "gvisor",
                                       "allowedRuntimeClasses": ["gvisor", "kata"]}},
            "featureGates": {"browser-automation": false, "code-execution": true, "file-access": true}
        }
    })
}

/// The instance onboarding creates.
pub fn instance_manifest(o: &Onboarding) -> Value {
    let has_key = o.credentials.values().any(|v| !v.trim().is_empty());
    let mut names: Vec<String> = match &o.skills {
        Some(picked) => picked.clone(),
        None => DEFAULT_SKILLS.iter().map(|s| s.to_string()).collect(),
    };
    if o.repo.is_some() && !names.iter().any(|n| n == "github-gitops") {
        names.push("github-gitops".into());
    }
    if !names.iter().any(|n| n == "memory") {
        names.push("memory".into());
    }
    let skills: Vec<Value> = names
        .iter()
        .map(|n| match &o.repo {
            Some(repo) if n == "github-gitops" => json!({"skillPackRef": n, "params": {"repo": repo}}),
            _ => json!({"skillPackRef": n}),
        })
        .collect();
    let mut agent = json!({"model": o.model});
    if let Some(url) = &o.base_url {
        agent["baseURL"] = json!(url);
    }
    if o.sandbox {
        agent["agentSandbox"] = json!({"enabled": true});
    }
    let mut memory = json!({"enabled": true, "maxSizeKB": 256});
    if let Some(i) = &o.instructions {
        memory["systemPrompt"] = json!(i);
    }
    let mut spec = json!({
        "agents": {"default": agent},
        "skills": skills,
        "memory": memory,
        "authRefs": [{"provider": o.provider,
                      "secret": if has_key { format!("{}-{}-key", o.name, o.provider) } else { String::new() }}],
    });
    if o.policy {
        spec["policyRef"] = json!("default-policy");
    }
    if let Some((ty, _)) = &o.channel {
        let mut channel = json!({"type": ty});
        if let Some(secret) = o.channel_secret_name() {
            channel["configRef"] = json!({"secret": secret});
        }
        spec["channels"] = json!([channel]);
    }
    json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
           "metadata": {"name": o.name, "labels": {labels::MANAGED_BY: "sympozium"}}, "spec": spec})
}

/// Writes an onboarding: namespace, provider Secret, channel Secret (unless it names an
/// existing one, which must exist), `default-policy`, the instance and its heartbeat
/// schedule. Returns one line per object written.
pub async fn onboard(client: &Client, o: &Onboarding) -> Result<Vec<String>, ApplyError> {
    let ns = o.namespace.as_str();
    let apply = PatchParams::apply(MANAGER).force();
    // Checked before anything is written, so a typo leaves nothing half-made.
    if let (Some((ty, _)), Some(secret)) = (&o.channel, &o.channel_secret)
        && Api::<Secret>::namespaced(client.clone(), ns).get_opt(secret).await?.is_none()
    {
        let keys = channel_token_keys(ty).iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        return Err(ApplyError::ChannelSecretMissing { secret: secret.clone(), ns: ns.into(), keys });
    }
    let mut done = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(ns).await?.is_none() {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        namespaces.patch(ns, &apply, &Patch::Apply(&body)).await?;
        done.push(format!("namespace/{ns}"));
    }
    if !o.credentials.is_empty() {
        let name = format!("{}-{}-key", o.name, o.provider);
        put_secret(client, ns, &name, (labels::INSTANCE, &o.name), &o.credentials).await?;
        done.push(format!("secret/{name}"));
    } else if needs_key(&o.provider) {
        return Err(ApplyError::NeedsKey(o.provider.clone()));
    }
    if let Some((ty, tokens)) = &o.channel
        && !tokens.is_empty()
        && o.channel_secret.is_none()
    {
        let name = format!("{}-{ty}-secret", o.name);
        put_secret(client, ns, &name, (labels::INSTANCE, &o.name), tokens).await?;
        done.push(format!("secret/{name}"));
    }
    if o.policy {
        Api::<SympoziumPolicy>::namespaced(client.clone(), ns)
            .patch("default-policy", &apply, &Patch::Apply(&default_policy()))
            .await?;
        done.push("sympoziumpolicy/default-policy".into());
    }
    Api::<SympoziumInstance>::namespaced(client.clone(), ns)
        .patch(&o.name, &apply, &Patch::Apply(&instance_manifest(o)))
        .await?;
    done.push(format!("sympoziuminstance/{}", o.name));
    if let Some(cron) = &o.heartbeat {
        let name = format!("{}-heartbeat", o.name);
        let task = match &o.heartbeat_task {
            Some(t) => t.clone(),
            None => heartbeat_task(o.instructions.as_deref()),
        };
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
            "metadata": {"name": name, "labels": {labels::INSTANCE: o.name, labels::MANAGED_BY: "sympozium"}},
            "spec": {"instanceRef": o.name, "schedule": cron, "task": task,
                     "type": "heartbeat", "concurrencyPolicy": "Forbid", "includeMemory": true}});
        Api::<SympoziumSchedule>::namespaced(client.clone(), ns)
            .patch(&name, &apply, &Patch::Apply(&body))
            .await?;
        done.push(format!("sympoziumschedule/{name}"));
    }
    Ok(done)
}
