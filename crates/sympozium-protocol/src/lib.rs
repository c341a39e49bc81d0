//! The contract between the Sympozium controller, which builds an agent pod, and the
//! programs that run inside it (agent runner, IPC bridge, tool executor), plus the CLI that
//! reads their logs.
//!
//! Both sides of every name here use this crate, so a renamed variable or marker cannot
//! silently disconnect them. It is deliberately dependency-light: the programs in an agent
//! pod link it without pulling in the Kubernetes client.

pub mod duration;
pub mod env;
pub mod ipc;
pub mod markers;
pub mod provider;
