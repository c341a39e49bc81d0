//! Environment variables the controller sets in an agent pod and the programs in it read.
//!
//! The controller's pod builders and the programs' typed configs both name variables
//! through these constants. Which of them a tenant may not override in `spec.env` is
//! decided in `sympozium-api`'s `reserved` module, from the same constants.

// Identity and task of the run.
/// The AgentRun's name.
pub const AGENT_RUN_ID: &str = "AGENT_RUN_ID";
/// The agent's id (the instance's agent id, used in memory and spawn requests).
pub const AGENT_ID: &str = "AGENT_ID";
/// The session key (chat sessions keep history under it).
pub const SESSION_KEY: &str = "SESSION_KEY";
/// The SympoziumInstance the run belongs to.
pub const INSTANCE_NAME: &str = "INSTANCE_NAME";
/// The run's namespace.
pub const AGENT_NAMESPACE: &str = "AGENT_NAMESPACE";
/// The task text.
pub const TASK: &str = "TASK";
/// The system prompt.
pub const SYSTEM_PROMPT: &str = "SYSTEM_PROMPT";
/// The channel a chat-started run came from.
pub const SOURCE_CHANNEL: &str = "SOURCE_CHANNEL";
/// The chat a chat-started run came from.
pub const SOURCE_CHAT_ID: &str = "SOURCE_CHAT_ID";
/// The run's timeout, as whole seconds with a unit (`"600s"`).
pub const RUN_TIMEOUT: &str = "RUN_TIMEOUT";
/// W3C trace context of the request that started the run.
pub const TRACEPARENT: &str = "TRACEPARENT";

// Model and keys.
/// Provider (`openai`, `anthropic`, `azure-openai`, `bedrock`, `ollama`, …).
pub const MODEL_PROVIDER: &str = "MODEL_PROVIDER";
/// Model name.
pub const MODEL_NAME: &str = "MODEL_NAME";
/// Provider base URL.
pub const MODEL_BASE_URL: &str = "MODEL_BASE_URL";
/// Fallback models, JSON.
pub const MODEL_FALLBACKS: &str = "MODEL_FALLBACKS";
/// Reasoning effort (`off`, `low`, `medium`, `high`).
pub const THINKING_MODE: &str = "THINKING_MODE";
/// Generic API key.
pub const API_KEY: &str = "API_KEY";
/// OpenAI key.
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// Anthropic key.
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
/// Azure OpenAI key.
pub const AZURE_OPENAI_API_KEY: &str = "AZURE_OPENAI_API_KEY";
/// Key of any other provider.
pub const PROVIDER_API_KEY: &str = "PROVIDER_API_KEY";

// Directories shared by the pod's containers.
/// The IPC directory (agent side).
pub const IPC_DIR: &str = "IPC_DIR";
/// The IPC directory (IPC bridge side).
pub const IPC_PATH: &str = "IPC_PATH";
/// The workspace directory.
pub const WORKSPACE_DIR: &str = "WORKSPACE_DIR";
/// Where skill files are mounted.
pub const SKILLS_DIR: &str = "SKILLS_DIR";
/// Where the legacy MEMORY.md lives.
pub const MEMORY_DIR: &str = "MEMORY_DIR";
/// Scratch directory.
pub const TMP_DIR: &str = "TMP_DIR";

// Bus, memory and tools.
/// NATS URL.
pub const EVENT_BUS_URL: &str = "EVENT_BUS_URL";
/// The pod's NATS user (`.creds` text: a user JWT and its nkey seed, minted by the
/// controller for this instance's channel pods or this run, scoped to its own subjects).
pub const NATS_CREDS: &str = "NATS_CREDS";
/// Key the pod signs its bus messages with (proves their origin).
pub const SYMPOZIUM_ORIGIN_KEY: &str = "SYMPOZIUM_ORIGIN_KEY";
/// Whether the instance's memory is on.
pub const MEMORY_ENABLED: &str = "MEMORY_ENABLED";
/// The instance's memory server.
pub const MEMORY_SERVER_URL: &str = "MEMORY_SERVER_URL";
/// Whether the run stores a summary in memory when it ends.
pub const MEMORY_AUTO_STORE: &str = "MEMORY_AUTO_STORE";
/// Bearer token for the instance's memory server.
pub const MEMORY_AUTH_TOKEN: &str = "MEMORY_AUTH_TOKEN";
/// Whether tools are offered at all.
pub const TOOLS_ENABLED: &str = "TOOLS_ENABLED";
/// The effective tool policy, JSON.
pub const TOOL_POLICY: &str = "TOOL_POLICY";
/// Skill sidecars present in the pod, JSON.
pub const SKILL_SIDECARS: &str = "SKILL_SIDECARS";
/// RBAC the run's skills were granted, JSON (shown to the agent).
pub const SKILL_RBAC: &str = "SKILL_RBAC";
/// Whether `execute_command` goes to the sandbox container.
pub const SANDBOX_ENABLED: &str = "SANDBOX_ENABLED";
/// The skill a tool-executor sidecar serves.
pub const SYMPOZIUM_SKILL: &str = "SYMPOZIUM_SKILL";

// Lifecycle hooks.
/// Hook stage (`preRun`, `postRun`).
pub const STAGE: &str = "STAGE";
/// The agent container's exit code, for post-run hooks.
pub const AGENT_EXIT_CODE: &str = "AGENT_EXIT_CODE";
/// The run's result text, for post-run hooks.
pub const AGENT_RESULT: &str = "AGENT_RESULT";

// MCP bridge: the sidecar of agent pods, and the stdio adapter of MCPServer pods.
/// The servers file the controller mounts (YAML).
pub const MCP_CONFIG_PATH: &str = "MCP_CONFIG_PATH";
/// The IPC directory where tool calls arrive (the IPC volume's `tools/`).
pub const MCP_IPC_PATH: &str = "MCP_IPC_PATH";
/// Where the tool manifest is written.
pub const MCP_MANIFEST_PATH: &str = "MCP_MANIFEST_PATH";
/// Only discover tools and write the manifest, then exit (the init-container form).
pub const MCP_DISCOVER_ONLY: &str = "MCP_DISCOVER_ONLY";
/// How many times discovery tries an unreachable server.
pub const MCP_DISCOVERY_ATTEMPTS: &str = "MCP_DISCOVERY_ATTEMPTS";
/// Milliseconds between discovery attempts.
pub const MCP_DISCOVERY_INTERVAL_MS: &str = "MCP_DISCOVERY_INTERVAL_MS";
/// Seconds to connect to a server.
pub const MCP_CONNECT_TIMEOUT: &str = "MCP_CONNECT_TIMEOUT";
/// Longest tool result handed to the agent, in characters.
pub const MCP_MAX_RESULT_CHARS: &str = "MCP_MAX_RESULT_CHARS";
/// Run as the stdio adapter of an MCPServer pod instead of the agent-pod sidecar.
pub const MCP_STDIO_ADAPTER: &str = "MCP_STDIO_ADAPTER";
/// The stdio server's command.
pub const STDIO_CMD: &str = "STDIO_CMD";
/// The stdio server's arguments.
pub const STDIO_ARGS: &str = "STDIO_ARGS";
/// The name the adapter reports for the stdio server.
pub const STDIO_SERVER_NAME: &str = "STDIO_SERVER_NAME";
/// The adapter's HTTP port.
pub const STDIO_PORT: &str = "STDIO_PORT";
