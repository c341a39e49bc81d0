//! `sympozium-node`: a focused kubelet for Sympozium's workloads on a machine without a
//! container runtime. It registers a Node, runs every container of the pods bound to it
//! as a local program (images map to programs) inside its own namespaces (bubblewrap for
//! mounts, a network namespace per pod on a bridge), serves `kubectl logs`, `exec`, `attach`
//! and `port-forward`, resolves and proxies Services for its pods, and provisions local
//! PersistentVolumes.
//! See README.md for what is and is not honoured.

pub mod cgroups;
pub mod config;
pub mod container;
pub mod dns;
pub mod env;
pub mod hooks;
pub mod images;
pub mod kubelet_api;
pub mod logs;
pub mod manager;
pub mod netpol;
pub mod network;
pub mod node;
pub mod oci;
pub mod pod;
pub mod probes;
pub mod provisioner;
pub mod proxy;
pub mod runner;
pub mod sandbox;
pub mod services;
pub mod state;
pub mod streaming;
pub mod volumes;

pub use config::Config;
pub use runner::{Error, run};
