//! Command-line definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Format;

/// Sympozium: Kubernetes-native teams of AI agents.
#[derive(Parser, Debug)]
#[command(name = "sympozium", version, about)]
pub struct Cli {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace to work in (default: the kubeconfig context's, else `default`). The TUI
    /// shows every namespace unless this is given.
    #[arg(short, long, global = true, env = "SYMPOZIUM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format of listings and `get`.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// NATS of the Sympozium install (e.g. a port-forward of nats.sympozium-system:4222): the
    /// TUI streams agents' answers as they are written and asks for tool approvals.
    #[arg(long, global = true, env = "SYMPOZIUM_NATS_URL")]
    pub nats_url: Option<String>,
    /// The bus's operator user, for an installed NATS: the path of a `.creds` file (or its
    /// text), e.g. `sympozium nats-creds > operator.creds` (key `operator-creds` of the
    /// `sympozium-nats` Secret in the system namespace).
    #[arg(long, global = true, env = "SYMPOZIUM_NATS_CREDS", hide_env_values = true)]
    pub nats_creds: Option<String>,
    /// What to do; none opens the TUI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The namespace commands work in: `-n`, else the current kubeconfig context's (as
    /// kubectl does), else `default`.
    pub fn effective_namespace(&self) -> String {
        self.namespace
            .clone()
            .or_else(|| crate::context_namespace(self.kubeconfig.as_deref()))
            .unwrap_or_else(|| "default".into())
    }
}

/// Sub-commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the version.
    Version,
    /// Print the CustomResourceDefinitions of every Sympozium kind (YAML).
    Crds,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Agents (SympoziumInstances).
    #[command(subcommand, visible_aliases = ["instance", "inst"])]
    Instances(InstancesCommand),
    /// Agent runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Agent teams (PersonaPacks).
    #[command(subcommand, visible_alias = "pack")]
    Packs(PackCommand),
    /// Schedules.
    #[command(subcommand, visible_alias = "schedule")]
    Schedules(SchedulesCommand),
    /// Policies.
    #[command(subcommand, visible_aliases = ["policy", "pol"])]
    Policies(Listing),
    /// MCP tool servers (without a sub-command: the list with readiness and tool counts).
    #[command(name = "mcp-servers", visible_aliases = ["mcp-server", "mcp"])]
    McpServers {
        /// What to do.
        #[command(subcommand)]
        cmd: Option<McpCommand>,
    },
    /// Feature gates of a policy (code-execution, sub-agents, file-access, browser-automation).
    #[command(subcommand, visible_aliases = ["feature", "feat"])]
    Features(FeatureCommand),
    /// Skill packs.
    #[command(subcommand, visible_aliases = ["skill", "sk"])]
    Skills(Listing),
    /// Give an agent a task: creates an AgentRun and (by default) waits for its answer.
    Run(RunArgs),
    /// What an agent keeps in its memory server (read with the instance's memory token,
    /// through the API server's service proxy).
    Memory {
        /// The agent (SympoziumInstance).
        instance: String,
        /// Only memories with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Install (or upgrade) Sympozium into a namespace and wait until it is ready. Uses the
    /// Helm chart through `helm` when it is found (or given with --helm), else applies the
    /// same components itself (docs/install.md).
    Install(InstallArgs),
    /// Upgrade an installation to this CLI's version or to changed values: the same as
    /// `install`; instances, their memory volumes and the generated secrets are kept.
    Upgrade(InstallArgs),
    /// The bus's trust Secret (`sympozium-nats`: NATS operator-mode keys, the controller's
    /// signing key, the operator console's user, the origin master key) as JSON for
    /// `kubectl apply -f -`: the installed one's chain when the cluster has it, else a new
    /// one. `install` makes it itself; plain `helm install` needs it first.
    NatsTrust {
        /// Namespace Sympozium runs in.
        #[arg(long, default_value = "sympozium-system")]
        system_namespace: String,
    },
    /// The operator console's NATS user (`.creds` text, for `--nats-creds`): key
    /// `operator-creds` of the `sympozium-nats` Secret.
    NatsCreds {
        /// Namespace Sympozium runs in.
        #[arg(long, default_value = "sympozium-system")]
        system_namespace: String,
    },
    /// Remove Sympozium's controller and NATS; with --crds also every CRD and the namespace.
    Uninstall {
        /// Namespace Sympozium runs in.
        #[arg(long, default_value = "sympozium-system")]
        system_namespace: String,
        /// Helm release name, when installed with Helm (`helm` is used when the release exists).
        #[arg(long, default_value = "sympozium")]
        release: String,
        /// The helm binary (default: `helm` on PATH).
        #[arg(long, env = "SYMPOZIUM_HELM")]
        helm: Option<PathBuf>,
        /// Also delete the CRDs (and with them every Sympozium object) and the namespace.
        #[arg(long)]
        crds: bool,
    },
    /// The one-machine stack: control plane, local node and Sympozium, all on this machine.
    Dev {
        /// Where the stack lives.
        #[command(flatten)]
        paths: crate::dev::DevPaths,
        /// What to do with it.
        #[command(subcommand)]
        command: crate::dev::DevCommand,
    },
    /// The web dashboard and REST API on this machine: forwards a local port to the API
    /// server `install` deployed (through the Kubernetes API, following a new pod when the
    /// old one goes) and prints the URL and the token (Secret `sympozium-ui-token`).
    Serve {
        /// Local port.
        #[arg(long, default_value_t = 9090)]
        port: u16,
        /// Local address to listen on (anything but loopback exposes your cluster access).
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// Open the dashboard in the browser (xdg-open).
        #[arg(long)]
        open: bool,
        /// Run the API server in this process with your kubeconfig's identity instead of
        /// forwarding to the deployed one (for a cluster without it; creates the token Secret
        /// when missing).
        #[arg(long)]
        in_process: bool,
        /// Namespace of the API server, its token Secret and the gateway configuration.
        #[arg(long, default_value = "sympozium-system")]
        service_namespace: String,
        /// With --in-process: event bus for live run output (streaming is off without it).
        #[arg(long, env = "SYMPOZIUM_NATS_URL")]
        nats_url: Option<String>,
        /// The bus's operator user: a `.creds` file's path (or its text).
        #[arg(long, env = "SYMPOZIUM_NATS_OPERATOR_CREDS", hide_env_values = true)]
        nats_creds: Option<String>,
    },
    /// The terminal UI (also what `sympozium` with no command opens).
    Tui,
    /// Set up an agent step by step: provider, key, model, channel, policy, heartbeat.
    Onboard {
        /// The provider key, offered as the key step's answer.
        #[arg(long, env = "SYMPOZIUM_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Namespace Sympozium runs in: its SkillPacks are offered with the namespace's own.
        #[arg(long, default_value = "sympozium-system")]
        system_namespace: String,
    },
    /// Check this machine's prerequisites, the cluster, the CRDs, the controller and the
    /// namespace's teams, and say what to fix.
    Doctor {
        /// Namespace the controller runs in.
        #[arg(long, default_value = "sympozium-system")]
        system_namespace: String,
        /// The Sympozium checkout whose `scripts/prereqs.sh` lists this machine's prerequisites.
        #[arg(long, env = "SYMPOZIUM_REPO", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
        repo: PathBuf,
    },
}

/// `instances` sub-commands.
#[derive(Subcommand, Debug)]
pub enum InstancesCommand {
    /// List them.
    List,
    /// Show one.
    Get {
        /// Name.
        name: String,
    },
    /// Delete one.
    Delete {
        /// Name.
        name: String,
    },
    /// The web endpoint of an instance (the web-endpoint skill): its URL and API key.
    Endpoint {
        /// Name.
        name: String,
    },
}

/// `runs` sub-commands.
#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// List them.
    List,
    /// Show one.
    Get {
        /// Name.
        name: String,
    },
    /// Delete one.
    Delete {
        /// Name.
        name: String,
    },
    /// Print the agent's log; with --follow, stream it until the run ends.
    Logs {
        /// Name.
        name: String,
        /// Stream new lines as they come (waits for the pod to start).
        #[arg(short, long)]
        follow: bool,
        /// Container of the run's pod.
        #[arg(short, long, default_value = "agent")]
        container: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
        /// How long --follow waits for the pod (e.g. 90s, 5m).
        #[arg(long, default_value = "5m")]
        wait: String,
    },
}

/// `schedules` sub-commands.
#[derive(Subcommand, Debug)]
pub enum SchedulesCommand {
    /// List them.
    List,
    /// Run a schedule's task now (the controller creates the run as a tick would).
    Trigger {
        /// The schedule.
        name: String,
        /// How long to wait for the controller to create the run.
        #[arg(long, default_value = "30s")]
        wait: String,
    },
}

/// `mcp-servers` sub-commands.
#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// List them.
    List,
    /// Show one (the object; `-o yaml` for YAML).
    Get {
        /// Name.
        name: String,
    },
    /// Describe one for a person: readiness, URL, its tools as agents call them, the last error.
    Describe {
        /// Name.
        name: String,
    },
    /// Delete one.
    Delete {
        /// Name.
        name: String,
    },
    /// Register one: an external server (--url) or one run in the cluster (--image).
    Create(McpCreate),
}

/// `mcp-servers create`.
#[derive(clap::Args, Debug)]
pub struct McpCreate {
    /// Name.
    pub name: String,
    /// Prefix of its tool names.
    #[arg(long)]
    pub prefix: String,
    /// Transport.
    #[arg(long, default_value = "http", value_parser = ["http", "stdio"])]
    pub transport: String,
    /// Image of a server run in the cluster.
    #[arg(long)]
    pub image: Option<String>,
    /// URL of an external server.
    #[arg(long)]
    pub url: Option<String>,
    /// Per-call timeout in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: i32,
}

/// `features` sub-commands.
#[derive(Subcommand, Debug)]
pub enum FeatureCommand {
    /// Turn a feature on.
    Enable {
        /// The feature.
        gate: String,
        /// The policy.
        #[arg(long)]
        policy: String,
    },
    /// Turn a feature off.
    Disable {
        /// The feature.
        gate: String,
        /// The policy.
        #[arg(long)]
        policy: String,
    },
    /// Show a policy's features.
    List {
        /// The policy.
        #[arg(long)]
        policy: String,
    },
}

/// list only.
#[derive(Subcommand, Debug)]
pub enum Listing {
    /// List them.
    List,
}

/// PersonaPack commands.
#[derive(Subcommand, Debug)]
pub enum PackCommand {
    /// List the catalog and enabled teams.
    List,
    /// Show a pack and its personas.
    Show {
        /// Pack name.
        name: String,
    },
    /// Enable a pack: stores the provider key in `<pack>-<provider>-key` and stamps out the team.
    Activate {
        /// Pack name.
        name: String,
        /// LLM provider (openai, anthropic, azure-openai, ollama, …).
        #[arg(long, default_value = "openai")]
        provider: String,
        /// The provider's API key (not needed for local models).
        #[arg(long, env = "SYMPOZIUM_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Model for every persona that names none.
        #[arg(long)]
        model: Option<String>,
        /// The provider's base URL (Ollama, LM Studio, vLLM or any OpenAI-compatible endpoint).
        #[arg(long)]
        base_url: Option<String>,
        /// Run every persona's commands in a hardened `sandbox` container (`spec.sandbox`),
        /// which a policy with `sandboxPolicy.required` (the built-in `restrictive`) demands.
        #[arg(long)]
        sandbox: bool,
    },
    /// Disable a pack: removes its team.
    Deactivate {
        /// Pack name.
        name: String,
    },
}

/// `sympozium run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The agent (SympoziumInstance).
    pub instance: String,
    /// The task.
    pub task: String,
    /// Return once the run is created instead of waiting for the answer.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the answer.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
}

/// Registry of the images when `--image-registry` is not given on a first install.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/sympozium-ai/sympozium";
/// Tag of the images when `--image-tag` is not given on a first install.
pub const DEFAULT_TAG: &str = "latest";

/// What `install` and `upgrade` take.
#[derive(clap::Args, Debug, Clone)]
pub struct InstallArgs {
    /// Namespace Sympozium runs in.
    #[arg(long, default_value = "sympozium-system")]
    pub system_namespace: String,
    /// Registry of every Sympozium image [default on a first install:
    /// ghcr.io/sympozium-ai/sympozium; an upgrade keeps the installed one].
    #[arg(long)]
    pub image_registry: Option<String>,
    /// Tag of every Sympozium image [default on a first install: latest; an upgrade keeps
    /// the installed one].
    #[arg(long)]
    pub image_tag: Option<String>,
    /// How long to wait for readiness (e.g. 90s, 5m).
    #[arg(long, default_value = "5m")]
    pub wait: String,
    /// Also install the admission webhook (a generated certificate; AgentRuns a policy
    /// forbids are refused at admission). `--webhook=false` removes it; without the flag a
    /// first install has none and an upgrade keeps what is installed.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub webhook: Option<bool>,
    /// A chart value, `key=value` as `helm --set` takes it (repeatable; needs helm).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A values file for the chart (repeatable; needs helm).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Print the manifests instead of installing (`helm template`, CRDs included).
    #[arg(long)]
    pub dry_run: bool,
    /// Helm release name.
    #[arg(long, default_value = "sympozium")]
    pub release: String,
    /// The helm binary (default: `helm` on PATH).
    #[arg(long, env = "SYMPOZIUM_HELM")]
    pub helm: Option<PathBuf>,
    /// Apply the components directly even when helm is available (or --helm is given).
    #[arg(long)]
    pub no_helm: bool,
}
