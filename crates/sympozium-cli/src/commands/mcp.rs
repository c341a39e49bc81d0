//! `mcp-servers list|get|delete|create`: MCP tool servers (MCPServer).

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_api::MCPServer;

use super::not_found;
use crate::cli::{McpCommand, McpCreate};
use crate::output::{Format, age, document, table};

/// The MCPServer `create` asks for (the CRD's CEL rules check the rest at admission).
pub fn manifest(args: &McpCreate) -> anyhow::Result<serde_json::Value> {
    let transport = args.transport.as_str();
    if transport == "stdio" && args.image.is_none() {
        anyhow::bail!("--transport stdio runs the server in the cluster: pass --image");
    }
    if args.url.is_none() && args.image.is_none() {
        anyhow::bail!("--url (an external server) or --image (run it in the cluster) is needed");
    }
    let mut spec = json!({"transportType": transport, "toolsPrefix": args.prefix, "timeout": args.timeout});
    if let Some(url) = &args.url {
        spec["url"] = json!(url);
    }
    if let Some(image) = &args.image {
        spec["deployment"] = json!({"image": image});
    }
    Ok(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer",
              "metadata": {"name": args.name}, "spec": spec}))
}

/// A person's view of one server: where it is, whether it answers, and its tools under
/// the names agents call them by.
pub fn describe(m: &MCPServer) -> String {
    let status = m.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let mut out = format!(
        "Name:       {}\nTransport:  {}\nURL:        {}\nReady:      {}{}\nPrefix:     {}_\n",
        m.name_any(),
        format!("{:?}", m.spec.transport_type).to_lowercase(),
        status.url.clone().or_else(|| m.spec.url.clone()).unwrap_or_else(|| "-".into()),
        status.ready,
        ready.map(|c| format!(" ({}: {})", c.reason, c.message)).unwrap_or_default(),
        m.spec.tools_prefix,
    );
    if let Some(e) = &status.last_error {
        out.push_str(&format!("Last error: {e}\n"));
    }
    match status.tool_count {
        None => out.push_str("Tools:      not discovered yet\n"),
        Some(n) => {
            out.push_str(&format!("Tools ({n}):\n"));
            for t in &status.tools {
                out.push_str(&format!("  {}_{t}\n", m.spec.tools_prefix));
            }
        }
    }
    out
}

/// Runs an `mcp-servers` command.
pub async fn dispatch(client: &Client, ns: &str, cmd: &McpCommand, format: Format) -> anyhow::Result<i32> {
    let api: Api<MCPServer> = Api::namespaced(client.clone(), ns);
    match cmd {
        McpCommand::List => {
            let items = api.list(&ListParams::default()).await?.items;
            if format != Format::Table {
                crate::output::emit!("{}", document(&items, format)?);
                return Ok(0);
            }
            if items.is_empty() {
                eprintln!("nothing found");
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|m| {
                    let status = m.status.clone().unwrap_or_default();
                    vec![
                        m.name_any(),
                        format!("{:?}", m.spec.transport_type).to_lowercase(),
                        status.ready.to_string(),
                        status.url.or_else(|| m.spec.url.clone()).unwrap_or_else(|| "-".into()),
                        status.tool_count.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                        age(m.metadata.creation_timestamp.as_ref()),
                    ]
                })
                .collect();
            crate::output::emit!("{}", table(&["NAME", "TRANSPORT", "READY", "URL", "TOOLS", "AGE"], &rows));
            Ok(0)
        }
        McpCommand::Get { name } => {
            let m =
                api.get_opt(name).await?.ok_or_else(|| not_found("MCP server", name, ns, "mcp-servers"))?;
            let format = if format == Format::Table { Format::Json } else { format };
            crate::output::emit!("{}", document(&m, format)?);
            Ok(0)
        }
        McpCommand::Describe { name } => {
            let m =
                api.get_opt(name).await?.ok_or_else(|| not_found("MCP server", name, ns, "mcp-servers"))?;
            crate::output::emit!("{}", describe(&m));
            Ok(0)
        }
        McpCommand::Delete { name } => {
            if api.get_opt(name).await?.is_none() {
                return Err(not_found("MCP server", name, ns, "mcp-servers"));
            }
            api.delete(name, &DeleteParams::default()).await?;
            crate::output::emitln!("mcpserver/{name} deleted");
            Ok(0)
        }
        McpCommand::Create(args) => {
            if api.get_opt(&args.name).await?.is_some() {
                anyhow::bail!("MCP server \"{}\" already exists in namespace \"{ns}\"", args.name);
            }
            let body = manifest(args)?;
            api.patch(&args.name, &PatchParams::apply("sympozium-cli"), &Patch::Apply(&body)).await.map_err(
                |e| match e {
                    // The schema's own words name the field and the rule.
                    kube::Error::Api(s) => anyhow::anyhow!("{}", s.message),
                    other => other.into(),
                },
            )?;
            crate::output::emitln!("mcpserver/{} created", args.name);
            Ok(0)
        }
    }
}
