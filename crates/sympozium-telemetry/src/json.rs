//! JSON log lines carrying the OpenTelemetry `trace_id` and `span_id` of the span they were
//! logged in, so a log line leads to its trace (and back).
//!
//! One object per line: `timestamp`, `level`, `target`, the event's fields at the top level
//! (`message` among them), `span` (the innermost span's name) and, inside a span,
//! `trace_id`/`span_id` as lower-case hex.

use std::fmt;
use std::sync::OnceLock;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The OpenTelemetry ids of a span, kept in its extensions by [`TraceIdLayer`].
#[derive(Clone, Debug)]
struct TraceIds {
    trace_id: String,
    span_id: String,
}

/// Copies each span's OpenTelemetry trace and span id into the span's extensions when it is
/// first entered, for [`JsonFormat`] (the OpenTelemetry layer keeps them private). Add it
/// after the OpenTelemetry layer.
#[derive(Debug, Default)]
pub struct TraceIdLayer {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for TraceIdLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<TraceIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else { return };
        // No extensions lock may be held here: the lookup takes one.
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else { return };
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            span.extensions_mut()
                .insert(TraceIds { trace_id: sc.trace_id().to_string(), span_id: sc.span_id().to_string() });
        }
    }
}

/// The event formatter (use with `tracing_subscriber::fmt::layer().event_format(JsonFormat)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFormat;

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut obj = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        obj.insert("timestamp".into(), timestamp.into());
        let meta = event.metadata();
        obj.insert("level".into(), meta.level().as_str().into());
        obj.insert("target".into(), meta.target().into());
        event.record(&mut Fields(&mut obj));
        if let Some(span) = ctx.lookup_current() {
            obj.insert("span".into(), span.name().into());
            // The innermost entered span carries the ids.
            for s in span.scope() {
                if let Some(ids) = s.extensions().get::<TraceIds>() {
                    obj.insert("trace_id".into(), ids.trace_id.clone().into());
                    obj.insert("span_id".into(), ids.span_id.clone().into());
                    break;
                }
            }
        }
        writeln!(writer, "{}", Value::Object(obj))
    }
}
