//! Names a tenant may not choose freely: environment variables Sympozium itself sets in an
//! agent pod, and the tool names a tool policy may use. The same lists drive the CRD
//! schema's CEL rules (refused at admission, naming the offender) and the controller's
//! defensive checks, so the two can never disagree.

use sympozium_protocol::env as vars;

/// Environment variables `spec.env` may not set: the run's identity, model and keys,
/// the pod's directories, bus and memory URLs, the tool policy, and the loader's knobs.
/// Sympozium sets (or deliberately leaves unset) every one of them; a run that could
/// override them could point the agent's key at another model endpoint, lift its tool
/// policy or read another run's IPC files.
pub const RESERVED_ENV: &[&str] = &[
    // Identity and task.
    vars::AGENT_RUN_ID,
    vars::AGENT_ID,
    vars::SESSION_KEY,
    vars::INSTANCE_NAME,
    vars::AGENT_NAMESPACE,
    vars::TASK,
    vars::SYSTEM_PROMPT,
    vars::SOURCE_CHANNEL,
    vars::SOURCE_CHAT_ID,
    vars::RUN_TIMEOUT,
    vars::TRACEPARENT,
    // Model and keys.
    vars::MODEL_PROVIDER,
    vars::MODEL_NAME,
    vars::MODEL_BASE_URL,
    vars::MODEL_FALLBACKS,
    vars::THINKING_MODE,
    vars::API_KEY,
    vars::OPENAI_API_KEY,
    vars::ANTHROPIC_API_KEY,
    vars::AZURE_OPENAI_API_KEY,
    vars::PROVIDER_API_KEY,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL_STS",
    // Directories (IPC, workspace, skills, memory).
    vars::IPC_DIR,
    vars::WORKSPACE_DIR,
    vars::SKILLS_DIR,
    vars::MEMORY_DIR,
    vars::TMP_DIR,
    // Bus, memory and tools.
    vars::EVENT_BUS_URL,
    vars::MEMORY_ENABLED,
    vars::MEMORY_SERVER_URL,
    vars::MEMORY_AUTO_STORE,
    vars::MEMORY_AUTH_TOKEN,
    vars::NATS_CREDS,
    vars::SYMPOZIUM_ORIGIN_KEY,
    vars::TOOLS_ENABLED,
    vars::TOOL_POLICY,
    vars::SKILL_SIDECARS,
    vars::SKILL_RBAC,
    // Hook results.
    vars::AGENT_EXIT_CODE,
    vars::AGENT_RESULT,
    // The dynamic loader runs code from these before the runner's own.
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
];

/// Whether `name` is a reserved variable.
pub fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name)
}

/// The agent runner's built-in tools.
pub const BUILTIN_TOOLS: &[&str] = &[
    "execute_command",
    "read_file",
    "write_file",
    "edit_file",
    "list_directory",
    "fetch_url",
    "send_channel_message",
    "schedule_task",
    "spawn_subagent",
    "memory_search",
    "memory_store",
    "memory_list",
];

/// First words of the built-in tools: an MCP tool named `<one of these>_…` would shadow or
/// be mistaken for a built-in (`read_fil` is a typo, not an MCP tool of a server `read`).
const BUILTIN_FAMILIES: &[&str] =
    &["execute", "read", "write", "edit", "list", "fetch", "send", "schedule", "spawn", "memory"];

/// The shape of an MCP tool name: the server's `toolsPrefix`, `_`, then the tool's own
/// name or `*` (every tool of that server).
const MCP_TOOL: &str = "^[A-Za-z][A-Za-z0-9_]*_([*]|[A-Za-z0-9][A-Za-z0-9_.-]*)$";

/// Whether `name` may appear in a tool policy: a built-in tool, or an MCP tool
/// `<toolsPrefix>_<tool>` / `<toolsPrefix>_*` whose prefix is not a built-in's family.
/// Mirrors the CEL rule of [`tool_name_rule`].
pub fn is_valid_tool_name(name: &str) -> bool {
    if BUILTIN_TOOLS.contains(&name) {
        return true;
    }
    if BUILTIN_FAMILIES.iter().any(|f| name.strip_prefix(f).is_some_and(|r| r.starts_with('_'))) {
        return false;
    }
    let prefix_ok = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let tool_ok = |t: &str| {
        t == "*"
            || (t.starts_with(|c: char| c.is_ascii_alphanumeric())
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    };
    // The prefix may itself contain '_': any split that fits both halves will do.
    name.char_indices()
        .filter(|(_, c)| *c == '_')
        .any(|(i, _)| prefix_ok(&name[..i]) && tool_ok(&name[i + 1..]))
}

fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Schema transform for a `map<string,string>` of environment variables: one CEL rule per
/// reserved name, each refusing that name with a message naming it. (One rule listing the
/// offenders would have to iterate keys of unbounded length, which the API server's CEL
/// cost budget refuses; a key lookup per name costs next to nothing.)
pub fn env_rules(schema: &mut schemars::Schema) {
    for name in RESERVED_ENV {
        let rule = kube::core::Rule::new(format!("!('{name}' in self)")).message(
            kube::core::Message::Message(format!(
                "{name} is reserved: Sympozium sets it for the agent (identity, model and keys, paths, bus \
             and memory URLs, tool policy)"
            )),
        );
        // Only fails on a schema that is not an object, which a map's never is.
        let _ = kube::core::validate(schema, rule);
    }
}

fn tool_ok(var: &str) -> String {
    let families = BUILTIN_FAMILIES.join("|");
    format!(
        "({var} in {} || ({var}.matches('{MCP_TOOL}') && !{var}.matches('^({families})_')))",
        cel_list(BUILTIN_TOOLS)
    )
}

/// Schema transform for a list of tool names: each item must be a built-in tool or an MCP
/// tool name, refused with its own name (a rule per item stays within the API server's CEL
/// cost budget, which a rule filtering the whole list does not).
pub fn tool_list_rules(schema: &mut schemars::Schema) {
    let Some(items) = schema.get_mut("items") else { return };
    let Ok(mut item) = schemars::Schema::try_from(items.clone()) else { return };
    if kube::core::validate(&mut item, tool_name_rule()).is_ok() {
        *items = item.to_value();
    }
}

/// CEL rule for one tool name (a tool-gating rule's `tool`).
pub fn tool_name_rule() -> kube::core::Rule {
    kube::core::Rule::new(tool_ok("self")).message(kube::core::Message::Expression(format!(
        "'unknown tool name ' + self + ': use a built-in tool ({}) or an MCP tool <toolsPrefix>_<tool> or \
             <toolsPrefix>_*'",
        BUILTIN_TOOLS.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names() {
        for ok in ["read_file", "memory_list", "github_list_issues", "github_*", "my_srv_tool", "gh_get.v2"] {
            assert!(is_valid_tool_name(ok), "{ok} is valid");
        }
        for bad in
            ["*", "read_*", "read_fil", "execute_comand", "x", "_x", "a_b*", "a_*_b", "a b_c", "github_**"]
        {
            assert!(!is_valid_tool_name(bad), "{bad} is refused");
        }
    }
}
