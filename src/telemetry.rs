//! The process's logging and trace export: the `tracing` subscriber with the log format of
//! `[log]` (text, or JSON lines that lift `request_id`, `trace_id` and `span_id` to the top) and,
//! with `[tracing] otlp_endpoint`, an OpenTelemetry layer whose spans a batch processor sends
//! over OTLP/HTTP (protobuf) off the request path. Without an endpoint no exporter, thread or
//! OTel layer exists, and the detail spans (`debug` level) are disabled at their call sites.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;

/// The longest one export request may take (connect, send, answer): a collector that hangs
/// costs the exporter thread this much per batch, never a request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the last batch to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Span fields that JSON log lines carry at the top level (the innermost span's value wins).
const LIFTED: [&str; 3] = ["request_id", "trace_id", "span_id"];

/// What must be flushed before the process exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter. It blocks (up to a few seconds):
    /// call it outside the async runtime's threads, while the runtime still runs (the export
    /// requests run on it).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %e, "traces: the last spans could not be sent");
            }
        }
    }
}

/// Installs the global subscriber. `runtime` runs the export requests (the batch processor's
/// own thread only waits for them). Fails only on an exporter that cannot be built.
pub fn init(config: &Config, runtime: tokio::runtime::Handle) -> anyhow::Result<Telemetry> {
    // Incoming `traceparent`/`tracestate` are read with this propagator, with or without an
    // exporter: the trace id a client sent is logged either way.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let provider = match config.tracing.traces_url() {
        Some(url) => Some(provider(config, &url, runtime)?),
        None => None,
    };
    // No per-layer filters (`Layer::with_filter`): beside each other, two of them lost spans and
    // log lines here (the filter state they keep per thread went stale). Global filters decide
    // what exists at all, and the wrappers below decide what each layer is shown.
    match &provider {
        Some(provider) => {
            let logged =
                <EnvFilter as Layer<tracing_subscriber::Registry>>::max_level_hint(&filter)
                    .unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
            let either = tracing_subscriber::filter::filter_fn(move |meta| {
                exported(meta) || *meta.level() <= logged
            });
            let otel = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("berth"))
                // A span's parent is its `tracing` parent, not the OpenTelemetry context
                // attached to the thread (which interleaving request tasks leave stale).
                .with_context_activation(false)
                // Neither busy/idle times nor thread ids: clock reads on every poll of a span.
                .with_tracked_inactivity(false)
                .with_threads(false);
            tracing_subscriber::registry()
                .with(either)
                .with(BerthOnly(otel))
                .with(LoggedOnly {
                    filter,
                    logs: log_layer(config),
                })
                .init();
        }
        // As before traces existed: the log filter decides what exists.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(config))
            .init(),
    }
    match (&provider, config.tracing.traces_url()) {
        (Some(_), Some(url)) => tracing::info!(
            %url,
            service = %config.tracing.service_name,
            sample_ratio = config.tracing.sample_ratio,
            "traces: exporting over OTLP/HTTP"
        ),
        _ => tracing::info!("traces: off ([tracing] otlp_endpoint is empty)"),
    }
    Ok(Telemetry { provider })
}

/// The log lines' layer, in the format of `[log] format`.
fn log_layer<S>(config: &Config) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if config.log.format == "json" {
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        // Colour only for a person at a terminal: escape codes would litter log files and
        // journals.
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed()
    }
}

/// What the OpenTelemetry layer takes: Berth's own spans (the request's and its detail spans,
/// down to `debug`) and its warnings and errors as span events; never other crates' spans, nor
/// the debug chatter of a verbose log level.
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("berth")
        && if meta.is_span() {
            *meta.level() <= Level::DEBUG
        } else {
            *meta.level() <= Level::WARN
        }
}

/// The OpenTelemetry layer, shown only the spans and events [`exported`] takes (it ignores the
/// entries, records and closes of spans it never saw).
struct BerthOnly<L>(L);

impl<S, L> Layer<S> for BerthOnly<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if exported(attrs.metadata()) {
            self.0.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_record(id, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if exported(event.metadata()) {
            self.0.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_id_change(old, new, ctx);
    }

    // `OpenTelemetrySpanExt` finds the layer through this.
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            self.0.downcast_raw(id)
        }
    }
}

/// The log layer, shown every span (its lines name the spans in scope) but only the events the
/// log filter enables. The filter is told of spans too, for directives that name spans.
struct LoggedOnly<S> {
    filter: EnvFilter,
    logs: Box<dyn Layer<S> + Send + Sync>,
}

impl<S> Layer<S> for LoggedOnly<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.logs.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.logs.on_layer(subscriber);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.filter.on_new_span(attrs, id, ctx.clone());
        self.logs.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.filter.on_record(id, values, ctx.clone());
        self.logs.on_record(id, values, ctx);
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.logs.on_follows_from(span, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if Layer::<S>::enabled(&self.filter, event.metadata(), ctx.clone()) {
            self.logs.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.filter.on_enter(id, ctx.clone());
        self.logs.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.filter.on_exit(id, ctx.clone());
        self.logs.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.filter.on_close(id.clone(), ctx.clone());
        self.logs.on_close(id, ctx);
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.logs.on_id_change(old, new, ctx);
    }
}

fn provider(
    config: &Config,
    url: &str,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<SdkTracerProvider> {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("traces: HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Exporter { client, runtime })
        .with_endpoint(url)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("traces: OTLP exporter for {url}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.tracing.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    // The batch processor queues ended spans (a bounded channel; spans past it are dropped, never
    // waited for) and sends them from its own thread every few seconds (`OTEL_BSP_*` env vars
    // tune it).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.tracing.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: the process's reqwest (rustls), its requests run on the async
/// runtime and awaited from the batch processor's thread, which has no runtime of its own.
#[derive(Debug)]
struct Exporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporter {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                headers.extend(response.headers().clone());
            }
            // A collector's answer is a small protobuf message; the client's timeout bounds it.
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(answer.body(body))
        });
        match sent.await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(e))) => Err(Box::new(e)),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(e) => Err(Box::new(e)),
        }
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, the event's fields (`message`
/// included) at the top level, `request_id`, `trace_id` and `span_id` when a span in scope
/// carries them, and `spans` (each span's name and fields, outermost first).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        event.record(&mut JsonVisitor(&mut line));
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // The fields as `JsonFields` wrote them (a JSON object) when the span was made.
                let mut fields: Map<String, Value> = extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str(f.fields.as_str()).ok())
                    .unwrap_or_default();
                for key in LIFTED {
                    if let Some(value) = fields.remove(key) {
                        line.insert(key.to_owned(), value);
                    }
                }
                // `otel.*` fields steer the exporter (span name, kind); they say nothing new.
                fields.retain(|k, _| !k.starts_with("otel."));
                fields.insert("name".into(), Value::from(span.name()));
                spans.push(Value::Object(fields));
            }
        }
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// Writes an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_lift_the_request_and_trace_ids_of_the_spans_in_scope() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "request",
                otel.name = "GET /v2/{name}/manifests/{reference}",
                request_id = "r-1",
                trace_id = tracing::field::Empty,
            );
            request.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let _entered = request.enter();
            tracing::info_span!("db", query = "manifest_get").in_scope(|| {
                tracing::warn!(status = 404u16, ok = false, "not found");
            });
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "not found");
        assert_eq!(line["status"], 404);
        assert_eq!(line["ok"], false);
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["spans"][0]["name"], "request");
        assert!(line["spans"][0].get("otel.name").is_none(), "{line}");
        assert_eq!(line["spans"][1]["query"], "manifest_get");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
