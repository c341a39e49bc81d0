//! Commands that talk to the cluster.

pub mod doctor;
mod endpoint;
mod features;
mod install;
mod install_nats;
mod install_webhook;
mod listings;
mod logs;
mod mcp;
mod memory;
pub mod onboard;
mod packs;
pub mod run;
mod serve;
mod trigger;

use anyhow::anyhow;
use kube::Client;

pub use doctor::doctor;
pub use install::{Target, apply_json, install_with};
pub use run::parse_timeout;

use crate::cli::{Cli, Command, InstancesCommand, Listing, RunsCommand, SchedulesCommand};

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
        Command::Install { system_namespace, image_registry, image_tag, wait, webhook } => {
            let target = install::Target {
                namespace: system_namespace.clone(),
                registry: image_registry.clone(),
                tag: image_tag.clone(),
                wait: run::parse_timeout(wait)?,
                webhook: *webhook,
            };
            install::install(client, &target).await
        }
        Command::Serve { port, address, open, service_namespace, nats_url, nats_password } => {
            let options = serve::Options {
                address: address.clone(),
                port: *port,
                open: *open,
                system_namespace: service_namespace.clone(),
                nats_url: nats_url.clone(),
                nats_password: nats_password.clone(),
            };
            serve::serve(client, &options).await
        }
        Command::Uninstall { system_namespace, crds } => {
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
