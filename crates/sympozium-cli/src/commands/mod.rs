//! Commands that talk to the cluster.

mod doctor;
mod install;
mod listings;
pub mod onboard;
mod packs;
pub mod run;

use anyhow::anyhow;
use kube::Client;

pub use doctor::doctor;
pub use install::{Target, apply_json, install};
pub use run::parse_timeout;

use crate::cli::{Cli, Command, Listing, Named};

/// Runs a cluster command; returns the exit code.
pub async fn dispatch(
    client: &Client,
    cli: &Cli,
    command: &Command,
    interactive: bool,
) -> anyhow::Result<i32> {
    let ns = cli.namespace.as_str();
    let out = cli.output;
    match command {
        Command::Instances(Named::List) => listings::instances(client, ns, out).await,
        Command::Instances(Named::Get { name }) => listings::get_instance(client, ns, name, out).await,
        Command::Instances(Named::Delete { name }) => listings::delete_instance(client, ns, name).await,
        Command::Runs(Named::List) => listings::runs(client, ns, out).await,
        Command::Runs(Named::Get { name }) => listings::get_run(client, ns, name, out).await,
        Command::Runs(Named::Delete { name }) => listings::delete_run(client, ns, name).await,
        Command::Schedules(Listing::List) => listings::schedules(client, ns, out).await,
        Command::Policies(Listing::List) => listings::policies(client, ns, out).await,
        Command::Skills(Listing::List) => listings::skills(client, ns, out).await,
        Command::Packs(cmd) => packs::dispatch(client, ns, cmd, out).await,
        Command::Run(args) => run::run(client, ns, args, interactive).await,
        Command::Install { system_namespace, image_registry, image_tag, wait } => {
            let target = install::Target {
                namespace: system_namespace.clone(),
                registry: image_registry.clone(),
                tag: image_tag.clone(),
                wait: run::parse_timeout(wait)?,
            };
            install::install(client, &target).await
        }
        Command::Uninstall { system_namespace, crds } => {
            install::uninstall(client, system_namespace, *crds).await
        }
        Command::Version | Command::Crds | Command::Doctor { .. } | Command::Tui | Command::Onboard { .. } | Command::Dev { .. } => {
            Err(anyhow!("not a cluster command"))
        }
    }
}

/// "not found" as a sentence that says where and what to do.
pub fn not_found(kind: &str, name: &str, ns: &str, list: &str) -> anyhow::Error {
    anyhow!("{kind} \"{name}\" not found in namespace \"{ns}\" (see `sympozium {list} list -n {ns}`)")
}
