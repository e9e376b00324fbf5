//! An OpenTelemetry collector stand-in on 127.0.0.1, for tests: `POST /v1/metrics` as an OTLP/HTTP
//! receiver takes it (protobuf `ExportMetricsServiceRequest`, `Content-Type:
//! application/x-protobuf`), decoded with the OpenTelemetry project's own message types and
//! kept as plain values ([`Export`]). A request it cannot decode is answered `400`, as a
//! collector does, and kept as an error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;

/// One push, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The request's headers, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// The resource's attributes (`service.name`, …).
    pub resource: BTreeMap<String, String>,
    /// Every metric of every scope.
    pub metrics: Vec<Metric>,
}

impl Export {
    /// The metric named `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// What kind of metric, as OTLP says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A monotonic cumulative sum (a counter).
    Counter,
    /// Another sum (up and down, or delta).
    Sum,
    /// A gauge.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
    /// Anything else.
    Other,
}

/// One metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit (empty when none).
    pub unit: String,
    /// Its kind.
    pub shape: Shape,
    /// Its points.
    pub points: Vec<Point>,
}

/// One data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// A number's value (as `f64`), or a histogram's sum.
    pub value: f64,
    /// A histogram's count (0 for a number).
    pub count: u64,
    /// A histogram's bounds (empty for a number).
    pub bounds: Vec<f64>,
    /// A histogram's count per bucket (empty for a number).
    pub bucket_counts: Vec<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    exports: Vec<Export>,
    errors: Vec<String>,
}

/// The running stand-in; stops when dropped.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Starts it on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Collector> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/v1/metrics", axum::routing::post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Collector { addr, inner, task })
    }

    /// Its base URL, as `[otlp] endpoint` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pushes received so far, oldest first.
    pub fn exports(&self) -> Vec<Export> {
        self.lock().exports.clone()
    }

    /// Why requests were refused so far.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let decoded = decode(&headers, &body);
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    match decoded {
        Ok(export) => {
            inner.exports.push(export);
            // An empty ExportMetricsServiceResponse: all accepted.
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::<u8>::new(),
            )
                .into_response()
        }
        Err(e) => {
            inner.errors.push(e.clone());
            (StatusCode::BAD_REQUEST, e).into_response()
        }
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Export, String> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if kind != "application/x-protobuf" {
        return Err(format!(
            "Content-Type {kind:?} is not application/x-protobuf"
        ));
    }
    let request = ExportMetricsServiceRequest::decode(body)
        .map_err(|e| format!("not an ExportMetricsServiceRequest: {e}"))?;
    let mut export = Export {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        resource: BTreeMap::new(),
        metrics: Vec::new(),
    };
    for resource in request.resource_metrics {
        if let Some(r) = resource.resource {
            export.resource.extend(attributes(&r.attributes));
        }
        for scope in resource.scope_metrics {
            for m in scope.metrics {
                export.metrics.push(metric_of(m));
            }
        }
    }
    Ok(export)
}

fn metric_of(m: opentelemetry_proto::tonic::metrics::v1::Metric) -> Metric {
    let number = |p: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| Point {
        attributes: attributes(&p.attributes),
        value: match p.value {
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            Some(number_data_point::Value::AsDouble(v)) => v,
            None => f64::NAN,
        },
        count: 0,
        bounds: Vec::new(),
        bucket_counts: Vec::new(),
    };
    let (shape, points) = match m.data {
        Some(metric::Data::Sum(sum)) => {
            // 2: AGGREGATION_TEMPORALITY_CUMULATIVE.
            let shape = if sum.is_monotonic && sum.aggregation_temporality == 2 {
                Shape::Counter
            } else {
                Shape::Sum
            };
            (shape, sum.data_points.into_iter().map(number).collect())
        }
        Some(metric::Data::Gauge(gauge)) => (
            Shape::Gauge,
            gauge.data_points.into_iter().map(number).collect(),
        ),
        Some(metric::Data::Histogram(h)) => (
            Shape::Histogram,
            h.data_points
                .into_iter()
                .map(|p| Point {
                    attributes: attributes(&p.attributes),
                    value: p.sum.unwrap_or(f64::NAN),
                    count: p.count,
                    bounds: p.explicit_bounds,
                    bucket_counts: p.bucket_counts,
                })
                .collect(),
        ),
        _ => (Shape::Other, Vec::new()),
    };
    Metric {
        name: m.name,
        description: m.description,
        unit: m.unit,
        shape,
        points,
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
