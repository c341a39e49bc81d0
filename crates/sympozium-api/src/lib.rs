//! Sympozium custom resource types, group `sympozium.ai`, version `v1alpha1`.
//!
//! One kind per module. Field names, JSON casing, defaults and enums are a compatibility
//! contract with existing Sympozium manifests: a manifest written for the original applies
//! unchanged, and the generated CRDs in `deploy/crds` (drift-tested) are the reference.

pub mod agentrun;
pub mod common;
pub mod config;
pub mod crds;
pub mod instance;
pub mod labels;
pub mod mcpserver;
pub mod personapack;
pub mod policy;
pub mod pricing;
pub mod reserved;
pub mod resolve;
pub mod schedule;
pub mod skillpack;
pub mod yaml;

/// What is known about LLM providers (names, default base URLs, key variables).
pub use sympozium_protocol::provider;

pub use agentrun::{AgentRun, AgentRunSpec, AgentRunStatus};
pub use config::{SympoziumConfig, SympoziumConfigSpec, SympoziumConfigStatus};
pub use instance::{SympoziumInstance, SympoziumInstanceSpec, SympoziumInstanceStatus};
pub use mcpserver::{MCPServer, MCPServerSpec, McpServerStatus};
pub use personapack::{PersonaPack, PersonaPackSpec, PersonaPackStatus};
pub use policy::{SympoziumPolicy, SympoziumPolicySpec, SympoziumPolicyStatus};
pub use schedule::{SympoziumSchedule, SympoziumScheduleSpec, SympoziumScheduleStatus};
pub use skillpack::{SkillPack, SkillPackSpec, SkillPackStatus};

/// API group of every Sympozium kind.
pub const GROUP: &str = "sympozium.ai";
/// API version of every Sympozium kind.
pub const VERSION: &str = "v1alpha1";
