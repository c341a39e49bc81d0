//! `instances`, `runs`, `schedules`, `policies`, `skills`: list, get, delete.

use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use sympozium_api::{AgentRun, SkillPack, SympoziumInstance, SympoziumPolicy, SympoziumSchedule};

use super::not_found;
use crate::output::{Format, age, document, table};

fn print_list<T: Serialize>(
    items: &[T],
    format: Format,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<i32> {
    match format {
        Format::Table if rows.is_empty() => eprintln!("nothing found"),
        Format::Table => crate::output::emit!("{}", table(headers, &rows)),
        other => crate::output::emit!("{}", document(&items, other)?),
    }
    Ok(0)
}

/// `instances list`.
pub async fn instances(client: &Client, ns: &str, format: Format) -> anyhow::Result<i32> {
    let items =
        Api::<SympoziumInstance>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let rows = items
        .iter()
        .map(|i| {
            let status = i.status.clone().unwrap_or_default();
            let channels: Vec<_> = i.spec.channels.iter().map(|c| c.type_.to_string()).collect();
            vec![
                i.name_any(),
                status.phase.unwrap_or_default(),
                if channels.is_empty() { "-".into() } else { channels.join(",") },
                status.active_agent_pods.to_string(),
                status.cost.map(|c| format!("{} {}", c.total, c.currency)).unwrap_or_else(|| "-".into()),
                age(i.metadata.creation_timestamp.as_ref()),
            ]
        })
        .collect();
    print_list(&items, format, &["NAME", "PHASE", "CHANNELS", "AGENT PODS", "COST", "AGE"], rows)
}

/// `instances get`.
pub async fn get_instance(client: &Client, ns: &str, name: &str, format: Format) -> anyhow::Result<i32> {
    let api = Api::<SympoziumInstance>::namespaced(client.clone(), ns);
    let inst = api.get_opt(name).await?.ok_or_else(|| not_found("instance", name, ns, "instances"))?;
    crate::output::emit!("{}", document(&inst, if format == Format::Table { Format::Yaml } else { format })?);
    Ok(0)
}

/// `instances delete`.
pub async fn delete_instance(client: &Client, ns: &str, name: &str) -> anyhow::Result<i32> {
    let api = Api::<SympoziumInstance>::namespaced(client.clone(), ns);
    if api.get_opt(name).await?.is_none() {
        return Err(not_found("instance", name, ns, "instances"));
    }
    api.delete(name, &DeleteParams::default()).await?;
    crate::output::emitln!("sympoziuminstance/{name} deleted");
    Ok(0)
}

/// `runs list`, newest first.
pub async fn runs(client: &Client, ns: &str, format: Format) -> anyhow::Result<i32> {
    let mut items = Api::<AgentRun>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    items.sort_by_key(|r| std::cmp::Reverse(r.metadata.creation_timestamp.clone().map(|t| t.0)));
    let rows = items
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            vec![
                r.name_any(),
                r.spec.instance_ref.clone(),
                status.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Pending".into()),
                status.pod_name.unwrap_or_else(|| "-".into()),
                status.token_usage.map(|u| u.total_tokens.to_string()).unwrap_or_else(|| "-".into()),
                status.cost.map(|c| format!("{} {}", c.total, c.currency)).unwrap_or_else(|| "-".into()),
                age(r.metadata.creation_timestamp.as_ref()),
            ]
        })
        .collect();
    print_list(&items, format, &["NAME", "INSTANCE", "PHASE", "POD", "TOKENS", "COST", "AGE"], rows)
}

/// `runs get`.
pub async fn get_run(client: &Client, ns: &str, name: &str, format: Format) -> anyhow::Result<i32> {
    let run = Api::<AgentRun>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| not_found("run", name, ns, "runs"))?;
    crate::output::emit!("{}", document(&run, if format == Format::Table { Format::Yaml } else { format })?);
    Ok(0)
}

/// `runs delete`.
pub async fn delete_run(client: &Client, ns: &str, name: &str) -> anyhow::Result<i32> {
    let api = Api::<AgentRun>::namespaced(client.clone(), ns);
    if api.get_opt(name).await?.is_none() {
        return Err(not_found("run", name, ns, "runs"));
    }
    api.delete(name, &DeleteParams::default()).await?;
    crate::output::emitln!("agentrun/{name} deleted");
    Ok(0)
}

/// `schedules list`.
pub async fn schedules(client: &Client, ns: &str, format: Format) -> anyhow::Result<i32> {
    let items =
        Api::<SympoziumSchedule>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let rows = items
        .iter()
        .map(|s| {
            let status = s.status.clone().unwrap_or_default();
            vec![
                s.name_any(),
                s.spec.instance_ref.clone(),
                s.spec.schedule.clone(),
                s.spec.type_.as_str().to_string(),
                status.phase.unwrap_or_default(),
                status.total_runs.to_string(),
                age(s.metadata.creation_timestamp.as_ref()),
            ]
        })
        .collect();
    print_list(&items, format, &["NAME", "INSTANCE", "SCHEDULE", "TYPE", "PHASE", "RUNS", "AGE"], rows)
}

/// `policies list`.
pub async fn policies(client: &Client, ns: &str, format: Format) -> anyhow::Result<i32> {
    let items =
        Api::<SympoziumPolicy>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let rows = items
        .iter()
        .map(|p| {
            let bound = p.status.as_ref().map(|s| s.bound_instances).unwrap_or(0);
            vec![p.name_any(), bound.to_string(), age(p.metadata.creation_timestamp.as_ref())]
        })
        .collect();
    print_list(&items, format, &["NAME", "BOUND INSTANCES", "AGE"], rows)
}

/// `skills list`.
pub async fn skills(client: &Client, ns: &str, format: Format) -> anyhow::Result<i32> {
    let items = Api::<SkillPack>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let rows = items
        .iter()
        .map(|s| {
            vec![
                s.name_any(),
                s.spec.skills.len().to_string(),
                s.status.as_ref().and_then(|st| st.config_map_name.clone()).unwrap_or_else(|| "-".into()),
                if s.spec.sidecar.is_some() { "yes".into() } else { "no".into() },
                age(s.metadata.creation_timestamp.as_ref()),
            ]
        })
        .collect();
    print_list(&items, format, &["NAME", "SKILLS", "CONFIGMAP", "SIDECAR", "AGE"], rows)
}
