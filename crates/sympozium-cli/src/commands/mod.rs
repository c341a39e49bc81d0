//! Commands that talk to the cluster.

pub mod doctor;
mod endpoint;
mod features;
mod install;
pub(crate) mod install_apiserver;
mod install_helm;
mod install_nats;
mod install_webhook;
mod listings;
mod logs;
mod mcp;
mod memory;
pub mod onboard;
mod packs;
pub mod run;
pub(crate) mod serve;
mod serve_forward;
mod trigger;

use anyhow::anyhow;
use kube::Client;

pub use doctor::doctor;
pub use install::{Target, apply_json, install_with};
pub use run::parse_timeout;

use crate::cli::{Cli, Command, InstancesCommand, Listing, RunsCommand, SchedulesCommand};

fn needs_helm() -> anyhow::Error {
    anyhow!(
        "--set, --values and --dry-run render the Helm chart and need helm: install it \
         (https://helm.sh/docs/intro/install/) or pass --helm PATH"
    )
}

/// `install --dry-run`: the chart's manifests, CRDs included, without touching a cluster.
pub async fn install_dry_run(cli: &Cli, args: &crate::cli::InstallArgs) -> anyhow::Result<i32> {
    if args.no_helm {
        return Err(needs_helm());
    }
    let helm = install_helm::find_helm(args.helm.as_deref()).await?.ok_or_else(needs_helm)?;
    install_helm::install(&helm, cli.kubeconfig.as_deref(), args, run::parse_timeout(&args.wait)?).await
}

/// Runs a cluster command; returns the exit code.
pub async fn dispatch(
    client: &Client,
    cli: &Cli,
    command: &Command,
    interactive: bool,
) -> anyhow::Result<i32> {
    let ns = &cli.effective_namespace();
    let out = cli.output;
    match command {
        Command::Instances(InstancesCommand::List) => listings::instances(client, ns, out).await,
        Command::Instances(InstancesCommand::Get { name }) => {
            listings::get_instance(client, ns, name, out).await
        }
        Command::Instances(InstancesCommand::Delete { name }) => {
            listings::delete_instance(client, ns, name).await
        }
        Command::Instances(InstancesCommand::Endpoint { name }) => {
            endpoint::endpoint(client, ns, name, out).await
        }
        Command::Runs(RunsCommand::List) => listings::runs(client, ns, out).await,
        Command::Runs(RunsCommand::Get { name }) => listings::get_run(client, ns, name, out).await,
        Command::Runs(RunsCommand::Delete { name }) => listings::delete_run(client, ns, name).await,
        Command::Runs(RunsCommand::Logs { name, follow, container, tail, wait }) => {
            let request = logs::LogsRequest {
                name: name.clone(),
                container: container.clone(),
                follow: *follow,
                tail: *tail,
                wait: run::parse_timeout(wait)?,
            };
            logs::logs(client, ns, &request).await
        }
        Command::Schedules(SchedulesCommand::List) => listings::schedules(client, ns, out).await,
        Command::Schedules(SchedulesCommand::Trigger { name, wait }) => {
            trigger::trigger(client, ns, name, run::parse_timeout(wait)?).await
        }
        Command::Policies(Listing::List) => listings::policies(client, ns, out).await,
        Command::Skills(Listing::List) => listings::skills(client, ns, out).await,
        Command::McpServers { cmd } => {
            mcp::dispatch(client, ns, cmd.as_ref().unwrap_or(&crate::cli::McpCommand::List), out).await
        }
        Command::Features(cmd) => features::dispatch(client, ns, cmd).await,
        Command::Packs(cmd) => packs::dispatch(client, ns, cmd, out).await,
        Command::Run(args) => run::run(client, ns, args, interactive).await,
        Command::Memory { instance, tag, limit } => {
            memory::list(client, ns, instance, tag.as_deref(), *limit).await
        }
        Command::Install(args) | Command::Upgrade(args) => {
            let wait = run::parse_timeout(&args.wait)?;
            let helm =
                if args.no_helm { None } else { install_helm::find_helm(args.helm.as_deref()).await? };
            match helm {
                Some(helm) => install_helm::install(&helm, cli.kubeconfig.as_deref(), args, wait).await,
                None if !args.set.is_empty() || !args.values.is_empty() || args.dry_run => Err(needs_helm()),
                None => {
                    // Without the flag, an installed webhook stays (an upgrade must not drop it).
                    let webhook = match args.webhook {
                        Some(w) => w,
                        None => install::webhook_installed(client, &args.system_namespace).await?,
                    };
                    let target = install::Target {
                        namespace: args.system_namespace.clone(),
                        registry: args
                            .image_registry
                            .clone()
                            .unwrap_or_else(|| crate::cli::DEFAULT_REGISTRY.to_string()),
                        tag: args.image_tag.clone().unwrap_or_else(|| crate::cli::DEFAULT_TAG.to_string()),
                        wait,
                        webhook,
                    };
                    install::install(client, &target).await
                }
            }
        }
        Command::Serve { port, address, open, in_process, service_namespace, nats_url, nats_creds } => {
            let options = serve::Options {
                address: address.clone(),
                port: *port,
                open: *open,
                in_process: *in_process,
                system_namespace: service_namespace.clone(),
                nats_url: nats_url.clone(),
                nats_creds: nats_creds.clone(),
            };
            serve::serve(client, &options).await
        }
        Command::NatsTrust { system_namespace } => {
            let bus = install_nats::secrets(client, system_namespace).await?;
            let target = install::Target {
                namespace: system_namespace.clone(),
                registry: String::new(),
                tag: String::new(),
                wait: std::time::Duration::ZERO,
                webhook: false,
            };
            crate::output::emitln!("{}", serde_json::to_string_pretty(&install_nats::secret(&target, &bus))?);
            Ok(0)
        }
        Command::NatsCreds { system_namespace } => {
            crate::output::emit!("{}", install_nats::operator_creds(client, system_namespace).await?);
            Ok(0)
        }
        Command::Uninstall { system_namespace, release, helm, crds } => {
            let kubeconfig = cli.kubeconfig.as_deref();
            if let Some(helm) = install_helm::find_helm(helm.as_deref()).await?
                && install_helm::has_release(&helm, kubeconfig, release, system_namespace).await
            {
                return install_helm::uninstall(client, &helm, kubeconfig, release, system_namespace, *crds)
                    .await;
            }
            install::uninstall(client, system_namespace, *crds).await
        }
        Command::Version
        | Command::Crds
        | Command::Doctor { .. }
        | Command::Tui
        | Command::Onboard { .. }
        | Command::Dev { .. }
        | Command::Completions { .. } => Err(anyhow!("not a cluster command")),
    }
}

/// "not found" as a sentence that says where and what to do.
pub fn not_found(kind: &str, name: &str, ns: &str, list: &str) -> anyhow::Error {
    anyhow!("{kind} \"{name}\" not found in namespace \"{ns}\" (see `sympozium {list} list -n {ns}`)")
}
