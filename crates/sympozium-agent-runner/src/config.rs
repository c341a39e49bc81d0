//! The runner's typed configuration. [`Args`] declares every environment variable of the
//! spec (clap reads them when `main` parses); [`Config`] is the validated result the rest of
//! the crate uses, so nothing else looks at the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use sympozium_protocol::env as vars;

use clap::Parser;
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::error::ConfigError;
use crate::paths::Roots;
use crate::policy::ToolPolicy;

/// Parses the spec's loose booleans (`true`, `1`, `yes`, case-insensitive).
fn parse_bool(s: &str) -> Result<bool, NotABool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(NotABool(other.to_string())),
    }
}

/// A flag value that is not one of the accepted booleans.
#[derive(Debug, thiserror::Error)]
#[error("expected true or false, got {0:?}")]
struct NotABool(String);

/// Command-line flags and environment variables (env names from `sympozium_protocol::env`).
#[derive(Parser, Clone, Default)]
#[command(name = "sympozium-agent-runner", version, about = "Runs one agent task against an LLM")]
pub struct Args {
    /// The task; falls back to `task` in `<ipc>/input/task.json`.
    #[arg(long, env = vars::TASK, default_value = "")]
    pub task: String,
    /// Base system prompt.
    #[arg(long, env = vars::SYSTEM_PROMPT, default_value = "")]
    pub system_prompt: String,
    /// Provider name (openai, anthropic, azure-openai, ollama, lm-studio, vllm, bedrock, …).
    #[arg(long, env = vars::MODEL_PROVIDER, default_value = "openai")]
    pub model_provider: String,
    /// Model name (deployment name on Azure, model id on Bedrock).
    #[arg(long, env = vars::MODEL_NAME, default_value = "gpt-4o-mini")]
    pub model_name: String,
    /// Provider base URL override.
    #[arg(long, env = vars::MODEL_BASE_URL, default_value = "")]
    pub model_base_url: String,
    /// Reasoning effort: off, low, medium, high.
    #[arg(long, env = vars::THINKING_MODE, default_value = "")]
    pub thinking_mode: String,
    /// Enables built-in and MCP tools.
    #[arg(long, env = vars::TOOLS_ENABLED, default_value = "false", value_parser = parse_bool)]
    pub tools_enabled: bool,
    /// Legacy ConfigMap memory.
    #[arg(long, env = vars::MEMORY_ENABLED, default_value = "false", value_parser = parse_bool)]
    pub memory_enabled: bool,
    /// Memory server URL (enables the memory tools).
    #[arg(long, env = vars::MEMORY_SERVER_URL, default_value = "")]
    pub memory_server_url: String,
    /// The instance's memory token (from the `<instance>-memory-token` Secret), sent as a
    /// bearer token to the memory server.
    #[arg(long, env = vars::MEMORY_AUTH_TOKEN, default_value = "", hide_env_values = true)]
    pub memory_auth_token: String,
    /// Store a summary of every successful run in the memory server.
    #[arg(long, env = vars::MEMORY_AUTO_STORE, default_value = "true", value_parser = parse_bool)]
    pub memory_auto_store: bool,
    /// Channel the task came from.
    #[arg(long, env = vars::SOURCE_CHANNEL, default_value = "")]
    pub source_channel: String,
    /// Chat id the task came from.
    #[arg(long, env = vars::SOURCE_CHAT_ID, default_value = "")]
    pub source_chat_id: String,
    /// API key candidates, first non-empty wins.
    #[arg(long, env = vars::API_KEY, default_value = "", hide_env_values = true)]
    pub api_key: String,
    /// See `api_key`.
    #[arg(long, env = vars::OPENAI_API_KEY, default_value = "", hide_env_values = true)]
    pub openai_api_key: String,
    /// See `api_key`.
    #[arg(long, env = vars::ANTHROPIC_API_KEY, default_value = "", hide_env_values = true)]
    pub anthropic_api_key: String,
    /// See `api_key`.
    #[arg(long, env = vars::AZURE_OPENAI_API_KEY, default_value = "", hide_env_values = true)]
    pub azure_openai_api_key: String,
    /// See `api_key`.
    #[arg(long, env = vars::PROVIDER_API_KEY, default_value = "", hide_env_values = true)]
    pub provider_api_key: String,
    /// Azure OpenAI `api-version`.
    #[arg(long, env = "AZURE_OPENAI_API_VERSION", default_value = "2024-06-01")]
    pub azure_openai_api_version: String,
    /// Maximum LLM turns that request tools.
    #[arg(long, env = "MAX_TOOL_ITERATIONS", default_value = "50",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tool_iterations: u32,
    /// Consecutive all-failed tool rounds before aborting.
    #[arg(long, env = "MAX_CONSECUTIVE_TOOL_ERRORS", default_value = "3",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_consecutive_tool_errors: u32,
    /// Per-request timeout (Go duration).
    #[arg(long, env = "LLM_REQUEST_TIMEOUT")]
    pub llm_request_timeout: Option<String>,
    /// Retries on 429/5xx/transport errors.
    #[arg(long, env = "LLM_MAX_RETRIES")]
    pub llm_max_retries: Option<u32>,
    /// First retry backoff (doubles each attempt) when no `Retry-After` is given.
    #[arg(long, env = "LLM_RETRY_BACKOFF", default_value = "500ms")]
    pub llm_retry_backoff: String,
    /// Stream model output (real incremental chunks into `<ipc>/output`).
    #[arg(long, env = "LLM_STREAM", default_value = "true", value_parser = parse_bool)]
    pub llm_stream: bool,
    /// Whole-run deadline (Go duration).
    #[arg(long, env = vars::RUN_TIMEOUT)]
    pub run_timeout: Option<String>,
    /// Keeps memory markers in the response.
    #[arg(long, env = "DEBUG", default_value = "false", value_parser = parse_bool)]
    pub debug: bool,
    /// Run name (telemetry, approval requests).
    #[arg(long, env = vars::AGENT_RUN_ID, default_value = "")]
    pub agent_run_id: String,
    /// Instance name.
    #[arg(long, env = vars::INSTANCE_NAME, default_value = "")]
    pub instance_name: String,
    /// Namespace.
    #[arg(long, env = vars::AGENT_NAMESPACE, default_value = "")]
    pub agent_namespace: String,
    /// W3C trace context of the run (`00-<trace>-<span>-<flags>`).
    #[arg(long, env = vars::TRACEPARENT, default_value = "")]
    pub traceparent: String,
    /// RBAC rules the skills grant, as JSON (see [`crate::rbac`]), for the prompt.
    #[arg(long, env = vars::SKILL_RBAC, default_value = "")]
    pub skill_rbac: String,
    /// How long a skill sidecar may take to claim an `execute_command` request.
    #[arg(long, env = "EXEC_PICKUP_TIMEOUT", default_value = "15s")]
    pub exec_pickup_timeout: String,
    /// Effective tool policy as JSON (see [`ToolPolicy`]).
    #[arg(long, env = vars::TOOL_POLICY, default_value = "")]
    pub tool_policy: String,
    /// Skill packs whose sidecars run `execute_command`, comma-separated.
    #[arg(long, env = vars::SKILL_SIDECARS, default_value = "")]
    pub skill_sidecars: String,
    /// The pod has a `sandbox` container: `execute_command` runs there unless the model
    /// names a skill sidecar.
    #[arg(long, env = vars::SANDBOX_ENABLED, default_value = "false", value_parser = parse_bool)]
    pub sandbox_enabled: bool,
    /// NATS URL for tool approvals.
    #[arg(long, env = vars::EVENT_BUS_URL, default_value = "")]
    pub event_bus_url: String,
    /// The run's NATS user (`.creds` text from the run's `<run>-bus` Secret).
    #[arg(long, env = vars::NATS_CREDS, default_value = "", hide_env_values = true)]
    pub nats_creds: String,
    /// The run's origin key (same Secret): proves what this run publishes is its own.
    #[arg(long, env = vars::SYMPOZIUM_ORIGIN_KEY, default_value = "", hide_env_values = true)]
    pub origin_key: String,
    /// Ordered fallback models as JSON `[{"provider","model","baseURL"?,"apiKeyEnv"?}]`.
    #[arg(long, env = vars::MODEL_FALLBACKS, default_value = "")]
    pub model_fallbacks: String,
    /// How long to wait for the MCP manifest (the `mcp-discover` init container normally
    /// wrote it before the runner starts, so the default does not wait).
    #[arg(long, env = "MCP_MANIFEST_WAIT", default_value = "0s")]
    pub mcp_manifest_wait: String,
    /// IPC directory.
    #[arg(long, env = vars::IPC_DIR, default_value = sympozium_protocol::ipc::DEFAULT_ROOT)]
    pub ipc_dir: PathBuf,
    /// Workspace directory.
    #[arg(long, env = vars::WORKSPACE_DIR, default_value = "/workspace")]
    pub workspace_dir: PathBuf,
    /// Skills directory.
    #[arg(long, env = vars::SKILLS_DIR, default_value = "/skills")]
    pub skills_dir: PathBuf,
    /// Legacy memory directory.
    #[arg(long, env = vars::MEMORY_DIR, default_value = "/memory")]
    pub memory_dir: PathBuf,
    /// Scratch directory.
    #[arg(long, env = vars::TMP_DIR, default_value = "/tmp")]
    pub tmp_dir: PathBuf,
}

/// Reasoning effort requested for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Thinking {
    /// No extended reasoning parameters are sent.
    #[default]
    Off,
    /// Low effort.
    Low,
    /// Medium effort.
    Medium,
    /// High effort.
    High,
}

impl Thinking {
    fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "none" | "false" => Ok(Self::Off),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            other => Err(ConfigError::Invalid {
                field: vars::THINKING_MODE,
                reason: format!("{other:?} is not one of off, low, medium, high"),
            }),
        }
    }
}

/// One model endpoint (primary or fallback).
#[derive(Clone)]
pub struct ModelTarget {
    /// Lower-cased provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Base URL without trailing `/`; empty = provider default.
    pub base_url: String,
    /// API key; empty = none.
    pub api_key: String,
}

impl fmt::Debug for ModelTarget {
    // Hand-written so the API key can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelTarget")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &if self.api_key.is_empty() { "<none>" } else { "<redacted>" })
            .finish()
    }
}

impl ModelTarget {
    /// Providers that run in or next to the cluster: longer timeouts, fewer retries.
    pub fn is_local(&self) -> bool {
        sympozium_protocol::provider::is_local(&self.provider)
    }
}

/// A fallback entry as written in `MODEL_FALLBACKS`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FallbackSpec {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Base URL.
    #[serde(default, rename = "baseURL", alias = "baseUrl")]
    pub base_url: String,
    /// Name of the environment variable holding this model's key (resolved by `main`).
    #[serde(default)]
    pub api_key_env: String,
}

/// LLM call limits.
#[derive(Debug, Clone)]
pub struct LlmLimits {
    /// Per-request timeout.
    pub request_timeout: Option<Duration>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay.
    pub retry_backoff: Duration,
    /// Whether to stream.
    pub stream: bool,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Task text (may be empty here; the run falls back to `task.json`).
    pub task: String,
    /// Base system prompt (empty = default).
    pub system_prompt: String,
    /// Primary model.
    pub model: ModelTarget,
    /// Ordered fallbacks.
    pub fallbacks: Vec<ModelTarget>,
    /// Reasoning effort.
    pub thinking: Thinking,
    /// Tools on/off.
    pub tools_enabled: bool,
    /// Legacy memory.
    pub memory_enabled: bool,
    /// Memory server URL without trailing `/`.
    pub memory_server_url: String,
    /// Bearer token for the memory server (empty = none).
    pub memory_auth_token: String,
    /// Store a summary of every successful run in the memory server.
    pub memory_auto_store: bool,
    /// Reply channel.
    pub source_channel: String,
    /// Reply chat id.
    pub source_chat_id: String,
    /// Azure `api-version`.
    pub azure_api_version: String,
    /// Iteration limit.
    pub max_tool_iterations: u32,
    /// Circuit-breaker threshold.
    pub max_consecutive_tool_errors: u32,
    /// LLM limits.
    pub llm: LlmLimits,
    /// Whole-run deadline.
    pub run_timeout: Duration,
    /// Keep memory markers.
    pub debug: bool,
    /// Run id.
    pub agent_run_id: String,
    /// Instance.
    pub instance_name: String,
    /// Namespace.
    pub namespace: String,
    /// W3C `traceparent`, empty when absent.
    pub traceparent: String,
    /// Tool policy.
    pub policy: ToolPolicy,
    /// Sidecars able to run commands.
    pub skill_sidecars: Vec<String>,
    /// Whether commands run in the pod's `sandbox` container by default.
    pub sandbox: bool,
    /// Time a sidecar has to claim a command.
    pub exec_pickup_timeout: Duration,
    /// Permissions summary for the prompt (`None` = unknown).
    pub permissions: Option<String>,
    /// NATS URL.
    pub event_bus_url: String,
    /// The run's NATS user, `.creds` text (empty = NATS without authorization).
    pub nats_creds: String,
    /// The run's origin key (empty = publish unsigned).
    pub origin_key: String,
    /// MCP manifest wait.
    pub mcp_manifest_wait: Duration,
    /// Directory roots.
    pub roots: Roots,
}

fn duration_field(field: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|e| ConfigError::Invalid { field, reason: e.to_string() })
}

impl Config {
    /// Validates `args`; `fallback_keys[i]` is the key for the i-th fallback (resolved by `main`
    /// from its `apiKeyEnv`, empty when none).
    pub fn from_args(args: Args, fallback_keys: &[String]) -> Result<Self, ConfigError> {
        let api_key = [
            &args.api_key,
            &args.openai_api_key,
            &args.anthropic_api_key,
            &args.azure_openai_api_key,
            &args.provider_api_key,
        ]
        .into_iter()
        .find(|k| !k.trim().is_empty())
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
        let model = ModelTarget {
            provider: args.model_provider.trim().to_ascii_lowercase(),
            model: args.model_name.trim().to_string(),
            base_url: args.model_base_url.trim().trim_end_matches('/').to_string(),
            api_key: api_key.clone(),
        };
        let fallbacks = Self::fallbacks(&args.model_fallbacks)?
            .into_iter()
            .enumerate()
            .map(|(i, f)| ModelTarget {
                provider: f.provider.trim().to_ascii_lowercase(),
                model: f.model,
                base_url: f.base_url.trim().trim_end_matches('/').to_string(),
                api_key: match fallback_keys.get(i) {
                    Some(k) if !k.is_empty() => k.clone(),
                    _ => api_key.clone(),
                },
            })
            .collect();
        let local = model.is_local();
        let request_timeout = match &args.llm_request_timeout {
            Some(v) if !v.trim().is_empty() => Some(duration_field("LLM_REQUEST_TIMEOUT", v)?),
            _ if local => Some(Duration::from_secs(300)),
            _ => None,
        };
        let run_timeout = match &args.run_timeout {
            Some(v) if !v.trim().is_empty() => duration_field(vars::RUN_TIMEOUT, v)?,
            _ if local => Duration::from_secs(30 * 60),
            _ => Duration::from_secs(10 * 60),
        };
        let permissions = crate::rbac::parse(&args.skill_rbac)
            .map_err(|e| ConfigError::Parse { field: vars::SKILL_RBAC, source: e.into() })?
            .map(|skills| crate::rbac::summary(&skills, args.agent_namespace.trim()));
        let policy = ToolPolicy::from_json(&args.tool_policy)
            .map_err(|e| ConfigError::Parse { field: vars::TOOL_POLICY, source: e.into() })?;
        Ok(Self {
            task: args.task,
            system_prompt: args.system_prompt,
            thinking: Thinking::parse(&args.thinking_mode)?,
            fallbacks,
            tools_enabled: args.tools_enabled,
            memory_enabled: args.memory_enabled,
            memory_server_url: args.memory_server_url.trim().trim_end_matches('/').to_string(),
            memory_auth_token: args.memory_auth_token.trim().to_string(),
            memory_auto_store: args.memory_auto_store,
            source_channel: args.source_channel.trim().to_string(),
            source_chat_id: args.source_chat_id.trim().to_string(),
            azure_api_version: args.azure_openai_api_version,
            max_tool_iterations: args.max_tool_iterations,
            max_consecutive_tool_errors: args.max_consecutive_tool_errors,
            llm: LlmLimits {
                request_timeout,
                max_retries: args.llm_max_retries.unwrap_or(if local { 2 } else { 5 }),
                retry_backoff: duration_field("LLM_RETRY_BACKOFF", &args.llm_retry_backoff)?,
                stream: args.llm_stream,
            },
            model,
            run_timeout,
            debug: args.debug,
            agent_run_id: args.agent_run_id,
            instance_name: args.instance_name,
            namespace: args.agent_namespace,
            traceparent: args.traceparent.trim().to_string(),
            policy,
            skill_sidecars: args
                .skill_sidecars
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            sandbox: args.sandbox_enabled,
            event_bus_url: args.event_bus_url.trim().to_string(),
            nats_creds: args.nats_creds.trim().to_string(),
            origin_key: args.origin_key.trim().to_string(),
            exec_pickup_timeout: duration_field("EXEC_PICKUP_TIMEOUT", &args.exec_pickup_timeout)?,
            permissions,
            mcp_manifest_wait: duration_field("MCP_MANIFEST_WAIT", &args.mcp_manifest_wait)?,
            roots: Roots {
                ipc: args.ipc_dir,
                workspace: args.workspace_dir,
                skills: args.skills_dir,
                memory: args.memory_dir,
                tmp: args.tmp_dir,
            },
        })
    }

    /// Parses `MODEL_FALLBACKS` (empty = none).
    pub fn fallbacks(raw: &str) -> Result<Vec<FallbackSpec>, ConfigError> {
        if raw.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(raw)
            .map_err(|e| ConfigError::Invalid { field: vars::MODEL_FALLBACKS, reason: e.to_string() })
    }
}
