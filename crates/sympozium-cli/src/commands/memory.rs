//! `memory <instance>`: the memories an agent stored, read from its memory server with the
//! instance's token (Secret `<instance>-memory-token`), through the API server's service
//! proxy — so it works wherever `kubectl` does, and only for someone who may read that Secret.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::Value;

use super::not_found;

/// Prints the memories (newest first), one block each; returns the exit code.
pub async fn list(
    client: &Client,
    ns: &str,
    instance: &str,
    tag: Option<&str>,
    limit: u32,
) -> anyhow::Result<i32> {
    let secret_name = format!("{instance}-memory-token");
    let token = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&secret_name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).into_owned()))
        .ok_or_else(|| not_found("memory token Secret", &secret_name, ns, "instances"))?;
    let mut path =
        format!("/api/v1/namespaces/{ns}/services/{instance}-memory:8080/proxy/list?limit={limit}");
    if let Some(tag) = tag {
        path.push_str(&format!("&tag={}", url_escape(tag)));
    }
    let request = http::Request::get(&path)
        .header("x-sympozium-memory-token", token)
        .body(Vec::new())
        .map_err(|e| anyhow::anyhow!("building the memory request: {e}"))?;
    let body = client
        .request_text(request)
        .await
        .map_err(|e| anyhow::anyhow!("reading the memory of {ns}/{instance}: {e}"))?;
    let reply: Value = serde_json::from_str(&body).map_err(|_| {
        anyhow::anyhow!("unexpected answer from the memory server of {ns}/{instance}: {body}")
    })?;
    let Some(entries) = reply["content"].as_array() else {
        anyhow::bail!(
            "the memory server of {ns}/{instance} said: {}",
            reply["error"].as_str().unwrap_or(&body)
        );
    };
    if entries.is_empty() {
        crate::output::emitln!("no memories");
    }
    for e in entries {
        let tags: Vec<&str> = e["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        crate::output::emitln!(
            "#{} {} [{}]\n{}\n",
            e["id"],
            e["created_at"].as_str().unwrap_or_default(),
            tags.join(", "),
            e["content"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
