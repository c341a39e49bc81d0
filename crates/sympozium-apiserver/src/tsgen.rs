//! TypeScript types for the dashboard, generated from the same Rust types the server uses:
//! the custom resources (from their CRD schemas) and the API's request and response types
//! (from the OpenAPI document). `web/src/api/types.gen.ts` is a committed copy; a test
//! fails when it drifts (`make web-types` regenerates it).

use std::fmt::Write as _;

use serde_json::Value;

fn ident(name: &str) -> String {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain { name.to_string() } else { serde_json::Value::String(name.into()).to_string() }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// The TypeScript type of a JSON/OpenAPI schema.
fn ts(schema: &Value, depth: usize) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        return r.rsplit('/').next().unwrap_or("unknown").to_string();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let mut parts: Vec<String> = options.iter().map(|o| ts(o, depth)).collect();
            parts.dedup();
            return parts.join(" | ");
        }
    }
    if schema["x-kubernetes-int-or-string"] == true {
        return "number | string".into();
    }
    let nullable = schema["nullable"] == true;
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let mut parts: Vec<String> = Vec::new();
    let mut null = nullable;
    for t in &types {
        match *t {
            "null" => null = true,
            "string" => match schema["enum"].as_array() {
                Some(values) => {
                    parts.push(values.iter().map(Value::to_string).collect::<Vec<_>>().join(" | "))
                }
                None => parts.push("string".into()),
            },
            "integer" | "number" => parts.push("number".into()),
            "boolean" => parts.push("boolean".into()),
            "array" => {
                let inner = ts(&schema["items"], depth);
                parts.push(if inner.contains(' ') { format!("({inner})[]") } else { format!("{inner}[]") });
            }
            "object" => parts.push(object(schema, depth)),
            _ => parts.push("unknown".into()),
        }
    }
    if types.is_empty() {
        parts.push(if schema["properties"].is_object() { object(schema, depth) } else { "unknown".into() });
    }
    if null {
        parts.push("null".into());
    }
    parts.join(" | ")
}

fn object(schema: &Value, depth: usize) -> String {
    let Some(props) = schema["properties"].as_object() else {
        return match &schema["additionalProperties"] {
            Value::Object(_) => format!("Record<string, {}>", ts(&schema["additionalProperties"], depth)),
            _ if schema["x-kubernetes-preserve-unknown-fields"] == true => "Record<string, unknown>".into(),
            _ => "Record<string, unknown>".into(),
        };
    };
    let required: Vec<&str> =
        schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = String::from("{\n");
    for (name, prop) in props {
        if let Some(doc) = prop["description"].as_str() {
            let line = doc.lines().next().unwrap_or_default().replace("*/", "* /");
            let _ = writeln!(out, "{}/** {line} */", indent(depth + 1));
        }
        let opt = if required.contains(&name.as_str()) { "" } else { "?" };
        let _ = writeln!(out, "{}{}{opt}: {};", indent(depth + 1), ident(name), ts(prop, depth + 1));
    }
    out.push_str(&indent(depth));
    out.push('}');
    out
}

/// The whole `types.gen.ts`.
pub fn typescript() -> String {
    let mut out = String::from(
        "// Generated from the Rust types of sympozium-api and sympozium-apiserver; do not edit.\n\
         // Regenerate with `make web-types`.\n\n\
         /** Kubernetes object metadata (the fields the dashboard reads). */\n\
         export interface ObjectMeta {\n  name?: string;\n  namespace?: string;\n  uid?: string;\n  resourceVersion?: string;\n  \
         creationTimestamp?: string;\n  deletionTimestamp?: string;\n  generateName?: string;\n  labels?: Record<string, string>;\n  \
         annotations?: Record<string, string>;\n}\n",
    );
    let mut crds = sympozium_api::crds::all();
    crds.sort_by(|a, b| a.spec.names.kind.cmp(&b.spec.names.kind));
    for crd in crds {
        let kind = &crd.spec.names.kind;
        let Some(version) = crd.spec.versions.first() else { continue };
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_default();
        let _ = writeln!(out, "\n/** {kind} ({}/{}). */", crd.spec.group, version.name);
        let _ = writeln!(out, "export interface {kind} {{");
        let _ = writeln!(out, "  apiVersion?: string;\n  kind?: string;\n  metadata: ObjectMeta;");
        let _ = writeln!(out, "  spec: {};", ts(&schema["properties"]["spec"], 1));
        if schema["properties"]["status"].is_object() {
            let _ = writeln!(out, "  status?: {};", ts(&schema["properties"]["status"], 1));
        }
        out.push_str("}\n");
    }
    let doc: Value = serde_json::from_str(&crate::openapi::document()).unwrap_or_default();
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            if name == "KubeObject" {
                continue;
            }
            if let Some(d) = schema["description"].as_str() {
                let _ =
                    writeln!(out, "\n/** {} */", d.lines().next().unwrap_or_default().replace("*/", "* /"));
            } else {
                out.push('\n');
            }
            let _ = writeln!(out, "export type {name} = {};", ts(schema, 0));
        }
    }
    out
}
