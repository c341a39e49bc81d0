//! `sympozium dev`: the one-machine stack — the test control plane, the local node that runs
//! pods as local processes, and Sympozium installed into it with every component as a pod.

pub mod offline_model;
pub mod prereqs;
mod stack;
mod watch;

use std::path::PathBuf;

use clap::Subcommand;

pub use stack::Layout;

/// `sympozium dev` sub-commands.
#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Start the stack (idempotent); the last line printed is `export KUBECONFIG=<path>`.
    Up {
        /// How long to wait for each step (e.g. 90s, 5m).
        #[arg(long, default_value = "5m")]
        wait: String,
        /// Run the real OCI images of Sympozium's components: build them from the debug
        /// binaries (scripts/images.sh, buildah, root) into <state>/images and let the local
        /// node run each image's entrypoint from its unpacked root instead of the binary.
        #[arg(long, env = "SYMPOZIUM_DEV_REAL_IMAGES")]
        real_images: bool,
    },
    /// Stop what `dev up` started: the local node's pods and processes, then the control plane.
    Down,
    /// Show what runs and where.
    Status,
    /// Print the stack's kubeconfig path (its context's namespace is the system namespace).
    Kubeconfig,
    /// Serve the offline scripted model (what the stack's `offline-model` pod runs).
    OfflineModel {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
}

/// Where the stack lives and what it is built from.
#[derive(clap::Args, Debug, Clone)]
pub struct DevPaths {
    /// The Sympozium checkout whose testplane scripts and built binaries the stack uses.
    #[arg(long, env = "SYMPOZIUM_REPO", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    pub repo: PathBuf,
    /// State of the stack (control plane, node, logs); default `<repo>/.sympozium-dev`.
    #[arg(long, env = "SYMPOZIUM_DEV_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Namespace Sympozium is installed into.
    #[arg(long, default_value = "sympozium-system")]
    pub system_namespace: String,
}

/// Runs a `dev` command; returns the exit code.
pub async fn run(paths: &DevPaths, command: &DevCommand) -> anyhow::Result<i32> {
    // The model runs in a pod, where there is no checkout.
    if let DevCommand::OfflineModel { listen } = command {
        offline_model::serve(*listen).await?;
        return Ok(0);
    }
    let layout = Layout::new(paths)?;
    match command {
        DevCommand::Up { wait, real_images } => {
            stack::up(&layout, crate::commands::parse_timeout(wait)?, *real_images).await
        }
        DevCommand::Down => stack::down(&layout).await,
        DevCommand::Status => stack::status(&layout).await,
        DevCommand::Kubeconfig => {
            crate::output::emitln!("{}", layout.kubeconfig().display());
            Ok(0)
        }
        DevCommand::OfflineModel { .. } => Ok(0),
    }
}
