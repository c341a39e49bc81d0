//! Kubernetes plumbing shared by Sympozium's controllers and servers.

pub mod apply;
pub mod backoff;
pub mod client;
pub mod leader;
pub mod metrics;
pub mod process;

/// Field manager of every server-side apply the controllers make.
pub const FIELD_MANAGER: &str = "sympozium-controller";
