//! NetworkPolicy enforcement for the pods this node runs.
//!
//! - [`model`]: the policies' meaning (pure; pods, namespaces and policies → per-pod allow
//!   lists);
//! - [`nft`]: allow lists → an nftables table in the pod's network namespace (pure text);
//! - [`enforcer`]: watches NetworkPolicies, Pods and Namespaces, keeps every local pod's
//!   table current, and answers the Service proxy's per-connection questions.

pub mod enforcer;
pub mod model;
pub mod nft;

pub use enforcer::{Enforcer, NetpolError};
