//! The contract between the Sympozium controller, which builds an agent pod, and the
//! programs that run inside it (agent runner, IPC bridge, tool executor), plus the CLI that
//! reads their logs; and the conversation-history format every chat path shares.
//!
//! Both sides of every name here use this crate, so a renamed variable or marker cannot
//! silently disconnect them. It is deliberately dependency-light: the programs in an agent
//! pod link it without pulling in the Kubernetes client.

pub mod conversation;
pub mod duration;
pub mod env;
pub mod ipc;
pub mod markers;
pub mod provider;
