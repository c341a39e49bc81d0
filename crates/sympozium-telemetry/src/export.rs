//! Providers, exporters and the subscriber.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, Protocol, TelemetryArgs};
use crate::json::{JsonFormat, TraceIdLayer};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An exporter could not be built.
    #[error("building the OTLP {signal} exporter for {endpoint}: {source}")]
    Exporter {
        /// traces, metrics or logs.
        signal: &'static str,
        /// The collector endpoint.
        endpoint: String,
        /// The exporter's error.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// gRPC export needs a tokio runtime to run its connection on.
    #[error("OTLP over gRPC must be initialised inside a tokio runtime")]
    NoRuntime,
    /// A global subscriber was already installed.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(String),
}

/// Time an export may take before it is abandoned; also bounds each export attempt when the
/// collector does not answer.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export beyond this are dropped (not buffered without bound).
const MAX_QUEUE: usize = 4096;

/// The installed telemetry; [`Telemetry::shutdown`] flushes it before the process exits.
#[derive(Debug)]
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

/// The meter every component records its instruments on (a no-op while export is off).
pub fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter("sympozium")
}

/// Installs logging and telemetry for the binary `service` (e.g. `sympozium-controller`).
///
/// With an OTLP endpoint configured and the gRPC protocol this must run inside a tokio
/// runtime (the connection lives on it).
pub fn init(service: &str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
    let endpoint = args.endpoint_url();
    let headers = args.headers()?;
    if endpoint.is_some()
        && args.otel_protocol == Protocol::Grpc
        && tokio::runtime::Handle::try_current().is_err()
    {
        return Err(TelemetryError::NoRuntime);
    }
    let resource = resource(service, args);
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(args.otel_sampling_ratio)));
    let mut tracer_builder =
        SdkTracerProvider::builder().with_sampler(sampler).with_resource(resource.clone());
    let mut meter = None;
    let mut logger = None;
    if let Some(endpoint) = &endpoint {
        // The HTTP client uses rustls without a built-in provider (the workspace's one
        // crypto provider is ring); an already installed provider stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporters = Exporters { endpoint, protocol: args.otel_protocol, headers: &headers };
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(args.otel_batch_timeout)
            .with_max_queue_size(MAX_QUEUE)
            .build();
        tracer_builder = tracer_builder.with_span_processor(
            BatchSpanProcessor::builder(exporters.spans()?).with_batch_config(batch).build(),
        );
        let reader =
            PeriodicReader::builder(exporters.metrics()?).with_interval(args.otel_batch_timeout).build();
        let m = SdkMeterProvider::builder().with_reader(reader).with_resource(resource.clone()).build();
        opentelemetry::global::set_meter_provider(m.clone());
        meter = Some(m);
        let log_batch = opentelemetry_sdk::logs::BatchConfigBuilder::default()
            .with_scheduled_delay(args.otel_batch_timeout)
            .with_max_queue_size(MAX_QUEUE)
            .build();
        let processor = opentelemetry_sdk::logs::BatchLogProcessor::builder(exporters.logs()?)
            .with_batch_config(log_batch)
            .build();
        logger =
            Some(SdkLoggerProvider::builder().with_log_processor(processor).with_resource(resource).build());
    }
    let tracer = tracer_builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer.clone());

    let filter = || {
        EnvFilter::try_new(&args.log_filter)
            .map_err(|e| ConfigError::Invalid { field: "RUST_LOG", reason: e.to_string() })
    };
    // The log filter (RUST_LOG) decides which log lines are written and exported; spans
    // are traced at INFO and above whatever it says, so a quiet log keeps its traces.
    let otel_spans = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("sympozium"))
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let log_filter = filter()?;
    // The exporters log through `tracing` too; sending those records back to the collector
    // would loop, so the log bridge leaves the transport's own targets out.
    let otel_logs = match logger.as_ref() {
        Some(l) => Some(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(l)
                .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    let t = m.target();
                    !["opentelemetry", "tonic", "h2", "hyper", "reqwest", "tower"]
                        .iter()
                        .any(|p| t.starts_with(p))
                }))
                .with_filter(filter()?),
        ),
        None => None,
    };
    let stderr_json = tracing_subscriber::fmt::layer()
        .event_format(JsonFormat)
        .with_writer(std::io::stderr)
        .with_filter(log_filter);
    tracing_subscriber::registry()
        .with(otel_spans)
        .with(TraceIdLayer::default())
        .with(otel_logs)
        .with(stderr_json)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    if let Some(endpoint) = &endpoint {
        // The endpoint only; headers may carry credentials and are never logged.
        tracing::info!(
            endpoint = %endpoint,
            protocol = ?args.otel_protocol,
            sampling_ratio = args.otel_sampling_ratio,
            headers = headers.len(),
            "exporting OpenTelemetry traces, metrics and logs"
        );
    }
    Ok(Telemetry { tracer, meter, logger })
}

fn resource(service: &str, args: &TelemetryArgs) -> Resource {
    let name = if args.otel_service_name.trim().is_empty() { service } else { args.otel_service_name.trim() };
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new(
            "sympozium.component",
            service.strip_prefix("sympozium-").unwrap_or(service).to_string(),
        ),
    ];
    for (key, value) in [
        ("k8s.namespace.name", &args.otel_namespace),
        ("k8s.pod.name", &args.otel_pod_name),
        ("k8s.node.name", &args.otel_node_name),
        ("sympozium.instance", &args.otel_instance),
    ] {
        if !value.trim().is_empty() {
            attrs.push(KeyValue::new(key, value.trim().to_string()));
        }
    }
    // Attributes the deployment sets (OTEL_RESOURCE_ATTRIBUTES) win over ours.
    attrs.extend(args.resource_attributes().into_iter().map(|(k, v)| KeyValue::new(k, v)));
    Resource::builder_empty().with_attributes(attrs).with_service_name(name.to_string()).build()
}

struct Exporters<'a> {
    endpoint: &'a str,
    protocol: Protocol,
    headers: &'a std::collections::BTreeMap<String, String>,
}

macro_rules! exporter {
    ($self:ident, $kind:ty, $signal:literal, $path:literal) => {{
        let err = |source| TelemetryError::Exporter {
            signal: $signal,
            endpoint: $self.endpoint.to_string(),
            source,
        };
        match $self.protocol {
            Protocol::Grpc => <$kind>::builder()
                .with_tonic()
                .with_endpoint($self.endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .with_metadata($self.metadata())
                .build()
                .map_err(err),
            Protocol::HttpProtobuf => <$kind>::builder()
                .with_http()
                .with_endpoint(format!("{}{}", $self.endpoint, $path))
                .with_timeout(EXPORT_TIMEOUT)
                .with_headers(
                    $self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>(),
                )
                .build()
                .map_err(err),
        }
    }};
}

impl Exporters<'_> {
    fn metadata(&self) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
        let mut headers = http::HeaderMap::new();
        for (k, v) in self.headers {
            // Names and values that HTTP/2 cannot carry are skipped: a broken header costs
            // the header, never the component.
            if let (Ok(k), Ok(v)) =
                (http::HeaderName::try_from(k.as_str()), http::HeaderValue::try_from(v.as_str()))
            {
                headers.insert(k, v);
            }
        }
        opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers)
    }

    fn spans(&self) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
        exporter!(self, opentelemetry_otlp::SpanExporter, "traces", "/v1/traces")
    }

    fn metrics(&self) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
        exporter!(self, opentelemetry_otlp::MetricExporter, "metrics", "/v1/metrics")
    }

    fn logs(&self) -> Result<opentelemetry_otlp::LogExporter, TelemetryError> {
        exporter!(self, opentelemetry_otlp::LogExporter, "logs", "/v1/logs")
    }
}

impl Telemetry {
    /// Whether telemetry is exported (an endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.meter.is_some()
    }

    /// Flushes and stops export, waiting at most `budget` (a collector that does not answer
    /// costs the unsent telemetry, never a hung exit).
    ///
    /// Awaited rather than blocked on: the gRPC exporter's connection runs on the caller's
    /// runtime, and a current-thread runtime blocked here could not send the last batch (the
    /// tool executor lost its final spans that way on a loaded machine).
    pub async fn shutdown(self, budget: Duration) {
        let Telemetry { tracer, meter, logger } = self;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let worker = std::thread::Builder::new().name("otel-shutdown".into()).spawn(move || {
            let _ = tracer.shutdown_with_timeout(budget);
            if let Some(m) = meter {
                let _ = m.shutdown_with_timeout(budget);
            }
            if let Some(l) = logger {
                let _ = l.shutdown_with_timeout(budget);
            }
            let _ = tx.send(());
        });
        if worker.is_ok() {
            let _ = tokio::time::timeout(budget, rx).await;
        }
    }
}

/// A program's whole life under telemetry: sets it up for `service` (with the secret OTLP
/// headers found in `env`, which `main.rs` passes from the process environment), runs
/// `work`, then flushes for at most `flush`, whether `work` succeeded or not. Every binary's
/// `main` is this call around its own entry point.
pub async fn instrumented<T, E>(
    service: &str,
    args: TelemetryArgs,
    env: impl IntoIterator<Item = (String, String)>,
    flush: Duration,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<TelemetryError>,
{
    let telemetry = init(service, &args.with_secret_headers(env))?;
    let result = work.await;
    telemetry.shutdown(flush).await;
    result
}
