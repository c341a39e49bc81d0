//! The Sympozium agent runner: the single-shot LLM tool loop inside every agent pod.
//!
//! `main` parses [`config::Args`] (flags and the environment variables of `sympozium_protocol::env`), builds a
//! [`config::Config`] and calls [`run::run`], which always returns a [`run::RunReport`]; `main`
//! then prints the `__SYMPOZIUM_RESULT__…__SYMPOZIUM_END__` marker and exits 0 or 1.
//! No Kubernetes dependency: everything the runner knows arrives through the environment and
//! the `/ipc`, `/workspace`, `/skills`, `/memory` and `/tmp` directories.

pub mod agent;
pub mod approval;
pub mod config;
pub mod duration;
pub mod error;
pub mod llm;
pub mod output;
pub mod paths;
pub mod policy;
pub mod prompt;
pub mod rbac;
pub mod run;
pub mod telemetry;
pub mod tools;
pub mod util;

pub use config::{Args, Config};
pub use run::{RunReport, run};
