//! `[otlp]`: the same instruments as `/metrics`, pushed to an OpenTelemetry collector over
//! OTLP/HTTP (protobuf) every `interval`, through the `opentelemetry` SDK.
//!
//! Each counter and gauge of the [`Registry`] becomes an observable instrument of the same
//! name (a counter without `_total`, as OpenTelemetry names them; Prometheus' OTLP receiver
//! adds it back), read when the SDK collects. A histogram cannot be observed after the fact:
//! [`Exporter::seconds_histogram`] gives what measures it a function to report each
//! measurement to, with the same bounds as `/metrics`. Requests go through crema's own HTTP client on the
//! process's runtime; a collector that is away costs a logged warning per push, and nothing
//! else.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_client::{HttpClient, Limits, Url};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter, MeterProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use super::{Family, Kind, Registry, Value};

/// Where and how often to push. `Debug` shows the header names, not their values.
#[derive(Clone, PartialEq)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); metrics go to
    /// `{endpoint}/v1/metrics` (a URL that already ends so is used as it is).
    pub endpoint: Url,
    /// Between two pushes.
    pub interval: Duration,
    /// Headers sent with every push (an API key, say).
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &http_client::shown(&self.endpoint))
            .field("interval", &self.interval)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OtlpConfig {
    /// The default push interval, OpenTelemetry's.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// `endpoint` checked (`http` or `https`, with a host; no query, fragment or credentials:
    /// those go in `headers`, which are never logged), pushing every `interval`.
    pub fn new(endpoint: &str, interval: Duration) -> Result<Self, String> {
        let endpoint = http_client::check_url(endpoint, true)?;
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(format!(
                "the OTLP endpoint {endpoint} has a query or a fragment: give the collector's base URL (metrics go to /v1/metrics under it)"
            ));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(
                "the OTLP endpoint has credentials in it: send them as [otlp] headers (an \"authorization\" header, say)"
                    .to_owned(),
            );
        }
        if interval < Duration::from_secs(1) {
            return Err(format!(
                "an OTLP interval of {interval:?} is too short: at least 1 s"
            ));
        }
        Ok(Self {
            endpoint,
            interval,
            headers: BTreeMap::new(),
        })
    }

    /// The URL metrics are posted to.
    pub fn metrics_url(&self) -> String {
        let base = self.endpoint.as_str().trim_end_matches('/');
        if base.ends_with("/v1/metrics") {
            base.to_owned()
        } else {
            format!("{base}/v1/metrics")
        }
    }
}

/// Why the exporter did not start.
#[derive(Debug, thiserror::Error)]
#[error("the OTLP exporter to {url} cannot start: {reason}")]
pub struct OtlpError {
    url: String,
    reason: String,
}

/// How long one push may take, its retries included: short enough that the push at shutdown
/// (which the SDK gives 5 s) is not lost behind a periodic one to a collector that hangs.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The running exporter. [`Exporter::shutdown`] pushes once more and stops it; dropped
/// without it (an error path), it does the same on a blocking thread of the runtime.
#[derive(Debug)]
pub struct Exporter {
    provider: Option<SdkMeterProvider>,
    meter: Meter,
    url: String,
}

impl Exporter {
    /// Starts pushing the counters and gauges of `registry` to the collector of `config`, as
    /// the service `service` (`crema-gateway`). Call it inside the process's runtime: the
    /// pushes are sent on it.
    pub fn start(
        registry: Arc<Registry>,
        config: &OtlpConfig,
        service: &'static str,
    ) -> Result<Exporter, OtlpError> {
        let url = config.metrics_url();
        // As logs show URLs: scheme, host and a hash of the rest.
        let shown = http_client::shown_text(&url);
        let failed = |reason: String| OtlpError {
            url: shown.clone(),
            reason,
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| failed(format!("outside the runtime: {e}")))?;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(Client {
                http: HttpClient::shared(),
                runtime,
                failing: Default::default(),
            })
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(PUSH_TIMEOUT)
            // Counters as totals since the start, as `/metrics` has them (and whatever
            // OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE says): Prometheus' OTLP
            // receiver takes no deltas.
            .with_temporality(Temporality::Cumulative)
            .with_headers(config.headers.clone().into_iter().collect())
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let meter = provider.meter("crema");
        instruments(&meter, Arc::new(Snapshots::new(registry)));
        tracing::info!(
            "pushing metrics to {shown} every {:?} (OTLP/HTTP)",
            config.interval
        );
        Ok(Exporter {
            provider: Some(provider),
            meter,
            url: shown,
        })
    }

    /// A histogram of durations named `name` (ending in `_seconds`), with `bounds` in
    /// seconds: the function records one measurement. The family of the same name in the
    /// registry is what `/metrics` says of it.
    pub fn seconds_histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &[f64],
    ) -> Arc<dyn Fn(Duration) + Send + Sync> {
        let histogram = self
            .meter
            .f64_histogram(name)
            .with_description(help)
            .with_unit("s")
            .with_boundaries(bounds.to_vec())
            .build();
        Arc::new(move |took: Duration| histogram.record(took.as_secs_f64(), &[]))
    }

    /// Pushes what is there now and stops (waits for the push, 5 s at most: call it off the
    /// async threads).
    pub fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            last_push(provider, &self.url);
        }
    }
}

fn last_push(provider: SdkMeterProvider, url: &str) {
    if let Err(e) = provider.shutdown() {
        tracing::warn!("the last OTLP push to {url} failed: {e}");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // The SDK's shutdown waits for its push, which needs the runtime: never on its threads.
        let url = std::mem::take(&mut self.url);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || last_push(provider, &url))),
            Err(_) => last_push(provider, &url),
        }
    }
}

/// One observable instrument per counter and gauge the registry lists now.
fn instruments(meter: &Meter, snapshots: Arc<Snapshots>) {
    let observed = snapshots
        .registry
        .collect()
        .into_iter()
        .filter(|f| f.kind != Kind::Histogram);
    for (i, family) in observed.enumerate() {
        let name = family.name;
        let observe = {
            let snapshots = snapshots.clone();
            move |observer: &dyn AsyncInstrument<u64>| {
                // The SDK asks the callbacks in the order they were registered: the first
                // reads the sources anew, the others share what it read.
                if let Some(family) = snapshots.now(i == 0).get(name) {
                    for sample in &family.samples {
                        if let Value::Int(v) = sample.value {
                            let attributes: Vec<KeyValue> = sample
                                .labels
                                .iter()
                                .map(|(k, v)| KeyValue::new(*k, v.clone()))
                                .collect();
                            observer.observe(v, &attributes);
                        }
                    }
                }
            }
        };
        match family.kind {
            Kind::Counter => {
                let mut builder = meter
                    .u64_observable_counter(name)
                    .with_description(family.help)
                    .with_callback(observe);
                if let Some(unit) = family.unit() {
                    builder = builder.with_unit(unit);
                }
                builder.build();
            }
            Kind::Gauge => {
                let mut builder = meter
                    .u64_observable_gauge(name)
                    .with_description(family.help)
                    .with_callback(observe);
                if let Some(unit) = family.unit() {
                    builder = builder.with_unit(unit);
                }
                builder.build();
            }
            // Histograms are recorded where they are measured (the store's commits).
            Kind::Histogram => {}
        }
    }
}

/// Families by name.
type ByName = HashMap<&'static str, Family>;

/// The registry's families, read once per collection: the SDK asks every instrument's
/// callback in turn, and the sources read the store.
struct Snapshots {
    registry: Arc<Registry>,
    last: Mutex<Option<(Instant, Arc<ByName>)>>,
}

impl Snapshots {
    /// Families read this recently serve a callback that does not read anew.
    const FRESH: Duration = Duration::from_secs(1);

    fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            last: Mutex::new(None),
        }
    }

    fn now(&self, anew: bool) -> Arc<ByName> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, families)) = &*last
            && !anew
            && at.elapsed() < Self::FRESH
        {
            return families.clone();
        }
        let families: Arc<HashMap<_, _>> = Arc::new(
            self.registry
                .collect()
                .into_iter()
                .map(|f| (f.name, f))
                .collect(),
        );
        *last = Some((Instant::now(), families.clone()));
        families
    }
}

/// The SDK's HTTP client: crema's own, on the process's runtime (the SDK's reader thread
/// waits for the answer). It says once when pushes fail, and once when they work again.
#[derive(Debug)]
struct Client {
    http: HttpClient,
    runtime: tokio::runtime::Handle,
    failing: std::sync::atomic::AtomicBool,
}

impl Client {
    fn outcome(&self, url: &str, failure: Option<String>) {
        use std::sync::atomic::Ordering::Relaxed;
        match failure {
            Some(why) => {
                if !self.failing.swap(true, Relaxed) {
                    tracing::warn!(
                        "an OTLP push of metrics failed: {why}; the next pushes go on (said again when one works)"
                    );
                }
            }
            None => {
                if self.failing.swap(false, Relaxed) {
                    tracing::info!("the OTLP push to {url} works again");
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (head, body) = request.into_parts();
        let url = Url::parse(&head.uri.to_string())?;
        let http = self.http.clone();
        let limits = Limits {
            timeout: PUSH_TIMEOUT,
            max_body: 1 << 20,
        };
        let shown = http_client::shown(&url);
        let answer = self
            .runtime
            .spawn(async move {
                http.send(head.method, &url, head.headers, body, limits)
                    .await
            })
            .await?;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.outcome(&shown, Some(e.to_string()));
                return Err(e.into());
            }
        };
        let failure = (!answer.status.is_success()).then(|| {
            format!(
                "POST {shown} answered {}: {}",
                answer.status,
                answer.excerpt()
            )
        });
        self.outcome(&shown, failure);
        let mut response = http::Response::new(answer.body);
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        Ok(response)
    }
}
