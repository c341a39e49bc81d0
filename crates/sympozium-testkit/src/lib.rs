//! Test-only helpers for running tests against the real test control plane
//! (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok; see
//! `testplane/`).
//!
//! `make test` starts one plane for the whole run and exports `TESTPLANE_KUBECONFIG`.
//! A developer running `cargo test` directly gets the plane started (or reused) through
//! `testplane/up.sh`. Under `CI=true` the variable must be set: a missing plane fails the
//! tests instead of skipping them.

mod crds;
pub mod fake_chat;
pub mod fake_llm;
pub mod fuzz;
pub mod mcp;
pub mod nats;
pub mod otelcol;
mod plane;
pub mod private_plane;
pub mod procstat;
pub mod python;
mod wait;

pub use crds::install_crds;
pub use plane::{PlaneError, TestNamespace, TestPlane};
pub use wait::{WaitError, wait_for, wait_until_gone};

/// Errors from the test kit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The control plane could not be found or started.
    #[error("test control plane unavailable: {0}")]
    Unavailable(#[source] plane::PlaneError),
    /// A Kubernetes call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig could not be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// A manifest could not be read or parsed.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// File that failed.
        path: String,
        /// Why.
        reason: String,
    },
    /// Waiting timed out.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Running a command failed.
    #[error("running {command}: {reason}")]
    Command {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
}

/// Result alias for the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
