//! One telemetry init for every Sympozium binary.
//!
//! [`init`] installs a `tracing` subscriber that
//! * writes JSON log lines to stderr, each carrying the `trace_id` and `span_id` of the span
//!   it was logged in ([`json`]);
//! * turns `tracing` spans into OpenTelemetry spans (always, so log lines have trace ids even
//!   with export off) and, when an OTLP endpoint is configured, exports them in batches;
//! * exports metrics (instruments from [`meter`]) and log records over OTLP.
//!
//! Export runs on background threads with bounded queues: a collector that is down or slow
//! costs dropped telemetry, never a blocked or crashed component. [`Telemetry::shutdown`]
//! flushes with a time budget and then gives up.

mod config;
mod context;
mod export;
pub mod json;
pub mod process;
pub mod shutdown;

pub use config::{ConfigError, Protocol, TelemetryArgs, UnsupportedProtocol};
pub use context::{current_traceparent, set_parent_from_traceparent};
pub use export::{Telemetry, TelemetryError, init, instrumented, meter};
