//! The `sympozium` command-line interface.

pub mod cli;
mod commands;
pub mod dev;
pub mod output;
pub mod progress;
pub mod tui;
pub mod wizard;

use std::io::IsTerminal;

use anyhow::{Context as _, anyhow};
use kube::Client;
use kube::config::Kubeconfig;

use crate::cli::{Cli, Command};

/// A client for `kubeconfig` (else `$KUBECONFIG`, in-cluster or `~/.kube/config`), not yet
/// checked against the cluster, and the cluster's URL.
pub(crate) async fn client_for(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<(Client, String)> {
    use sympozium_kube::process::{KubeConfigError, kube_config};
    let config = match kube_config(kubeconfig).await {
        Ok(config) => config,
        // The shared text names flags of the servers; the CLI says what its user can do.
        Err(KubeConfigError::Infer(e)) => {
            return Err(anyhow!("no cluster configured ({e}); set KUBECONFIG or pass --kubeconfig"));
        }
        // The text already ends with its cause: `{:#}` must not repeat it.
        Err(e) => return Err(anyhow!("{e}")),
    };
    let server = config.cluster_url.to_string();
    Ok((Client::try_from(config).context("building the Kubernetes client")?, server))
}

/// The namespace of the kubeconfig's current context (`kubeconfig`, else `$KUBECONFIG` or
/// `~/.kube/config`), when it names one. Reads files only; never contacts the cluster.
pub(crate) fn context_namespace(kubeconfig: Option<&std::path::Path>) -> Option<String> {
    let kc = match kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let current = kc.current_context.as_deref()?;
    let context = kc.contexts.iter().find(|c| c.name == current)?.context.as_ref()?;
    context.namespace.clone().filter(|n| !n.is_empty())
}

/// Builds a client and checks the cluster answers, with an error that says what to do.
pub(crate) async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let (client, server) = client_for(cli.kubeconfig.as_deref()).await?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(anyhow!(
            "cannot reach the cluster at {server}: {e}; check KUBECONFIG and the current context"
        )),
        Err(_) => Err(anyhow!(
            "the cluster at {server} did not answer within 10 s; check KUBECONFIG and the current context"
        )),
    }
}

/// Runs one command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let interactive = std::io::stderr().is_terminal();
    let Some(command) = &cli.command else { return tui::run(&cli).await };
    match command {
        Command::Tui => tui::run(&cli).await,
        Command::Onboard { api_key, system_namespace } => {
            commands::onboard::onboard(&cli, api_key.as_deref(), system_namespace).await
        }
        Command::Version => {
            crate::output::emitln!("sympozium {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Crds => {
            for (_, yaml) in sympozium_api::crds::rendered()? {
                crate::output::emit!("{yaml}");
            }
            Ok(0)
        }
        Command::Dev { paths, command } => dev::run(paths, command).await,
        Command::Install(args) | Command::Upgrade(args) if args.dry_run => {
            commands::install_dry_run(&cli, args).await
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "sympozium", &mut std::io::stdout());
            Ok(0)
        }
        Command::Doctor { system_namespace, repo } => {
            commands::doctor::machine(repo);
            // Doctor reports an unreachable cluster as a finding rather than failing first.
            match connect(&cli).await {
                Ok(client) => commands::doctor(&client, &cli.effective_namespace(), system_namespace).await,
                Err(e) => {
                    crate::output::emitln!("✗ cluster: {e:#}");
                    Ok(1)
                }
            }
        }
        command => {
            let client = connect(&cli).await?;
            commands::dispatch(&client, &cli, command, interactive).await
        }
    }
}
