//! `instances endpoint <name>`: where an instance's web endpoint answers and the key to
//! call it with.

use anyhow::anyhow;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::json;
use sympozium_api::SympoziumInstance;

use super::not_found;
use crate::output::{Format, document, table};

/// Prints the URL (the gateway route, else the in-cluster Service) and the API key.
pub async fn endpoint(client: &Client, ns: &str, name: &str, format: Format) -> anyhow::Result<i32> {
    let inst = Api::<SympoziumInstance>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| not_found("instance", name, ns, "instances"))?;
    let web = inst.status.as_ref().and_then(|s| s.web_endpoint.clone()).ok_or_else(|| {
        anyhow!(
            "instance \"{name}\" has no web endpoint: add the web-endpoint skill (spec.skills: [{{skillPackRef: web-endpoint}}])"
        )
    })?;
    let url = web.url.clone().ok_or_else(|| {
        anyhow!(
            "the web endpoint of \"{name}\" is not serving yet (status {}); try again shortly",
            web.status
        )
    })?;
    let secret_name = web.auth_secret_name.clone().unwrap_or_else(|| format!("{name}-web-proxy-key"));
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&secret_name)
        .await?
        .ok_or_else(|| anyhow!("the API key Secret \"{secret_name}\" of \"{name}\" does not exist"))?;
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get("api-key"))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .ok_or_else(|| anyhow!("Secret \"{secret_name}\" has no api-key"))?;
    let base = format!("{}/v1", url.trim_end_matches('/'));
    let mcp = format!("{}/mcp", url.trim_end_matches('/'));
    match format {
        Format::Table => {
            let rows = vec![
                vec!["URL".to_string(), url.clone()],
                vec!["OPENAI BASE URL".to_string(), base],
                vec!["MCP".to_string(), mcp],
                vec!["API KEY".to_string(), key],
                vec!["STATUS".to_string(), web.status.clone()],
            ];
            crate::output::emit!("{}", table(&["FIELD", "VALUE"], &rows));
        }
        other => {
            let doc =
                json!({"url": url, "baseURL": base, "mcpURL": mcp, "apiKey": key, "status": web.status});
            crate::output::emit!("{}", document(&doc, other)?);
        }
    }
    Ok(0)
}
