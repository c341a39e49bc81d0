//! The views (tabs): each turns the watched lists into table rows. One view per file; the
//! rendering of tables is shared (`render`).

mod channels;
mod gateway;
mod instances;
mod mcpservers;
mod personas;
mod pods;
mod policies;
mod runs;
mod schedules;
mod skills;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::data::Data;

pub use gateway::{banner as gateway_banner, config as gateway_config};
pub use mcpservers::kind as mcp_kind;
pub use runs::{phase as runs_phase, trigger as runs_trigger};

/// A tab of the TUI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// PersonaPacks.
    Personas,
    /// SympoziumInstances.
    Instances,
    /// AgentRuns.
    Runs,
    /// SympoziumPolicies.
    Policies,
    /// SkillPacks.
    Skills,
    /// Channels of instances.
    Channels,
    /// SympoziumSchedules.
    Schedules,
    /// SympoziumConfig gateway settings.
    Gateway,
    /// Pods of instances.
    Pods,
    /// MCPServers and their discovered tools.
    McpServers,
}

impl View {
    /// Every view, in tab order.
    pub const ALL: [View; 10] = [
        View::Personas,
        View::Instances,
        View::Runs,
        View::Policies,
        View::Skills,
        View::Channels,
        View::Schedules,
        View::Gateway,
        View::Pods,
        View::McpServers,
    ];

    /// The number key that opens it.
    pub fn key(self) -> char {
        match self {
            View::Personas => '1',
            View::Instances => '2',
            View::Runs => '3',
            View::Policies => '4',
            View::Skills => '5',
            View::Channels => '6',
            View::Schedules => '7',
            View::Gateway => '8',
            View::Pods => '9',
            View::McpServers => '0',
        }
    }

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Personas => "Personas",
            View::Instances => "Instances",
            View::Runs => "Runs",
            View::Policies => "Policies",
            View::Skills => "Skills",
            View::Channels => "Channels",
            View::Schedules => "Schedules",
            View::Gateway => "Gateway",
            View::Pods => "Pods",
            View::McpServers => "MCP Servers",
        }
    }

    /// The view a number key opens.
    pub fn from_key(c: char) -> Option<View> {
        View::ALL.into_iter().find(|v| v.key() == c)
    }

    /// The rows of this view.
    pub fn table(self, ctx: &Ctx<'_>) -> Table {
        let mut t = match self {
            View::Personas => personas::table(ctx),
            View::Instances => instances::table(ctx),
            View::Runs => runs::table(ctx),
            View::Policies => policies::table(ctx),
            View::Skills => skills::table(ctx),
            View::Channels => channels::table(ctx),
            View::Schedules => schedules::table(ctx),
            View::Gateway => gateway::table(ctx),
            View::Pods => pods::table(ctx),
            View::McpServers => mcpservers::table(ctx),
        };
        if ctx.ns.is_none() {
            t.headers.insert(0, "NAMESPACE");
            for r in &mut t.rows {
                r.cells.insert(0, r.ns.clone());
            }
        }
        t
    }
}

/// What a view needs to build its rows.
pub struct Ctx<'a> {
    /// The watched lists.
    pub data: &'a Data,
    /// Only this namespace (`None` = all).
    pub ns: Option<&'a str>,
    /// Only objects of this instance (Channels and Pods drill-in).
    pub instance: Option<&'a str>,
    /// "Now" for ages (fixed in tests).
    pub now: jiff::Timestamp,
}

impl Ctx<'_> {
    /// The items of `list` in the shown namespace, sorted by namespace and name.
    pub fn scoped<'b, K: Resource>(&self, list: &'b [Arc<K>]) -> Vec<&'b Arc<K>> {
        let mut v: Vec<_> =
            list.iter().filter(|o| self.ns.is_none_or(|ns| o.namespace().as_deref() == Some(ns))).collect();
        v.sort_by_key(|o| (o.namespace(), o.name_any()));
        v
    }

    /// A Kubernetes-style age: `45s`, `12m`, `3h`, `5d`.
    pub fn age(&self, created: Option<&Time>) -> String {
        let Some(t) = created else { return "-".into() };
        let secs = self.now.duration_since(t.0).as_secs().max(0);
        match secs {
            s if s < 120 => format!("{s}s"),
            s if s < 7200 => format!("{}m", s / 60),
            s if s < 172_800 => format!("{}h", s / 3600),
            s => format!("{}d", s / 86_400),
        }
    }
}

/// How a row is coloured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tone {
    /// Default colours.
    #[default]
    Normal,
    /// Healthy / done.
    Good,
    /// In progress / needs a look.
    Warn,
    /// Failed.
    Bad,
    /// Inactive.
    Dim,
}

/// One table row and the object it shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Namespace of the object.
    pub ns: String,
    /// Name of the object (for channels: the instance).
    pub name: String,
    /// Cells, one per header.
    pub cells: Vec<String>,
    /// Colour.
    pub tone: Tone,
}

/// A view's table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<Row>,
    /// Lines shown above the table (the Gateway view's gateway status); empty for most views.
    pub banner: Vec<String>,
    /// Colour of the banner.
    pub banner_tone: Tone,
}

/// The row of `obj` with `cells`.
pub fn row<K: Resource>(obj: &K, cells: Vec<String>, tone: Tone) -> Row {
    Row { ns: obj.namespace().unwrap_or_default(), name: obj.name_any(), cells, tone }
}

/// Tone of a phase string.
pub fn phase_tone(phase: &str) -> Tone {
    match phase {
        "Running" | "Ready" | "Active" | "Succeeded" | "Serving" | "Connected" => Tone::Good,
        "Failed" | "Error" | "Disconnected" => Tone::Bad,
        "Inactive" | "Suspended" => Tone::Dim,
        "" => Tone::Normal,
        _ => Tone::Warn,
    }
}

/// `-` for nothing.
pub fn or_dash(s: impl Into<String>) -> String {
    let s = s.into();
    if s.is_empty() { "-".into() } else { s }
}
