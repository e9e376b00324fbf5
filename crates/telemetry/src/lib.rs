//! The metrics of a crema process, defined once and read two ways: `/metrics` (Prometheus
//! text, written by `prometheus-client`) and, when configured, OTLP/HTTP pushes (through the
//! `opentelemetry` crates, `otlp`, with the feature of that name).
//!
//! An instrument here is a [`Family`]: a name, a help text, a kind, and samples read at the
//! moment they are asked for (the loops' atomics, the store's counts). A [`Source`] lists
//! families; a process registers its sources once in a [`Registry`]: the application layer's
//! (`recorder::metrics`), the fan-out's (`fanout::metrics`), the broker's. Names follow Prometheus: a counter is
//! named without `_total` (the text format adds it; OTLP does not), a time is in seconds and
//! its name says so.
#![deny(missing_docs)]

#[cfg(feature = "otlp")]
pub mod otlp;

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// What kind of instrument a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (Prometheus `counter`, OTLP monotonic sum).
    Counter,
    /// Goes up and down (Prometheus and OTLP `gauge`).
    Gauge,
    /// Counts per bucket of a measured value (Prometheus and OTLP `histogram`).
    Histogram,
}

/// One sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's or a gauge's value.
    Int(u64),
    /// A histogram: the sum and count of what was measured, and the cumulative count at or
    /// under each upper bound (ascending; `+Inf` is the count).
    Histogram {
        /// The sum of the measurements.
        sum: f64,
        /// How many.
        count: u64,
        /// `(upper bound, measurements at or under it)`, cumulative.
        buckets: Vec<(f64, u64)>,
    },
}

/// One sample: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `(name, value)` pairs; the value is any text (the encoders escape it).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
}

/// An instrument and its samples now.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name (a counter's without `_total`).
    pub name: &'static str,
    /// What it measures, for a person.
    pub help: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its samples (none is fine: the family is still described).
    pub samples: Vec<Sample>,
}

impl Family {
    /// Adds a sample with `labels`.
    pub fn sample(&mut self, labels: &[(&'static str, &str)], value: u64) -> &mut Self {
        self.samples.push(Sample {
            labels: labels.iter().map(|&(k, v)| (k, v.to_owned())).collect(),
            value: Value::Int(value),
        });
        self
    }

    /// The OTLP unit of the family, from its name's suffix (`_seconds`: `s`, `_bytes`: `By`).
    pub fn unit(&self) -> Option<&'static str> {
        if self.name.ends_with("_seconds") {
            Some("s")
        } else if self.name.ends_with("_bytes") {
            Some("By")
        } else {
            None
        }
    }
}

/// Families being listed by a [`Source`].
#[derive(Debug, Default)]
pub struct Families(Vec<Family>);

impl Families {
    fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) -> &mut Family {
        self.0.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }

    /// A counter (named without `_total`); add its samples to what this answers.
    pub fn counter(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, Kind::Counter, help)
    }

    /// A gauge; add its samples to what this answers.
    pub fn gauge(&mut self, name: &'static str, help: &'static str) -> &mut Family {
        self.family(name, Kind::Gauge, help)
    }

    /// A histogram of one sample without labels.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    ) {
        self.family(name, Kind::Histogram, help)
            .samples
            .push(Sample {
                labels: Vec::new(),
                value: Value::Histogram {
                    sum,
                    count,
                    buckets,
                },
            });
    }

    /// The families listed.
    pub fn into_vec(self) -> Vec<Family> {
        self.0
    }
}

/// Something that lists families when asked (a scrape, an OTLP push). It may read the store:
/// it is asked off the async threads.
pub trait Source: Send + Sync + 'static {
    /// Adds the families and their samples now.
    fn collect(&self, out: &mut Families);
}

/// A closure as a source.
impl<F: Fn(&mut Families) + Send + Sync + 'static> Source for F {
    fn collect(&self, out: &mut Families) {
        self(out);
    }
}

/// The process's instruments: every [`Source`] registered, encoded by `prometheus-client`.
pub struct Registry {
    prometheus: prometheus_client::registry::Registry,
    sources: Vec<Arc<dyn Source>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// The `Content-Type` of the Prometheus text format (0.0.4), what `/metrics` answers unless
/// OpenMetrics is asked for.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of OpenMetrics text (1.0.0).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Registry {
    /// No instruments yet.
    pub fn new() -> Self {
        Self {
            prometheus: prometheus_client::registry::Registry::default(),
            sources: Vec::new(),
        }
    }

    /// Registers `source`: its families are in every scrape and push from now on.
    pub fn register(&mut self, source: impl Source) {
        let source: Arc<dyn Source> = Arc::new(source);
        self.prometheus
            .register_collector(Box::new(Collector(source.clone())));
        self.sources.push(source);
    }

    /// Every family now, in registration order.
    pub fn collect(&self) -> Vec<Family> {
        let mut out = Families::default();
        for source in &self.sources {
            source.collect(&mut out);
        }
        out.into_vec()
    }

    /// The text a scrape asking with `accept` (its `Accept` header) gets, and its
    /// `Content-Type`: OpenMetrics when it asks for `application/openmetrics-text`, the
    /// Prometheus text format otherwise. Reads every source: call it off the async threads.
    pub fn text(&self, accept: Option<&str>) -> (&'static str, String) {
        let mut text = String::new();
        let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
        // Writing into a String fails only if a source's encoding does; then what was
        // written is what there is.
        if openmetrics {
            let _ = prometheus_client::encoding::text::encode(&mut text, &self.prometheus);
            (OPENMETRICS_TEXT, text)
        } else {
            let _ =
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.prometheus);
            (PROMETHEUS_TEXT, text)
        }
    }
}

/// A [`Source`] as `prometheus-client` asks for it on each scrape.
struct Collector(Arc<dyn Source>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut families = Families::default();
        self.0.collect(&mut families);
        for family in families.into_vec() {
            let kind = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, kind)?;
            for sample in &family.samples {
                if sample.labels.is_empty() {
                    encode(&mut metric, family.kind, &sample.value)?;
                } else {
                    let mut labelled = metric.encode_family(&sample.labels)?;
                    encode(&mut labelled, family.kind, &sample.value)?;
                }
            }
        }
        Ok(())
    }
}

/// Cumulative buckets as prometheus-client takes them: each bucket's own count (it sums them
/// itself), ending with `+Inf` (the count), which its OpenMetrics encoder does not add.
fn own_buckets(buckets: &[(f64, u64)], count: u64) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut own: Vec<(f64, u64)> = buckets
        .iter()
        .filter(|(le, _)| le.is_finite())
        .map(|&(le, cumulative)| {
            let n = cumulative.saturating_sub(below);
            below = below.max(cumulative);
            (le, n)
        })
        .collect();
    own.push((f64::INFINITY, count.saturating_sub(below)));
    own
}

fn encode(
    metric: &mut prometheus_client::encoding::MetricEncoder<'_>,
    kind: Kind,
    value: &Value,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (Kind::Counter, Value::Int(v)) => metric.encode_counter::<NoLabelSet, _, u64>(v, None),
        (Kind::Gauge, Value::Int(v)) => metric.encode_gauge(v),
        (
            Kind::Histogram,
            Value::Histogram {
                sum,
                count,
                buckets,
            },
        ) => {
            metric.encode_histogram::<NoLabelSet>(*sum, *count, &own_buckets(buckets, *count), None)
        }
        // A value of another kind than its family's is a bug of the source: leave it out.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commits(m: &mut Families) {
        let buckets = vec![(0.01, 1), (0.1, 3)];
        m.histogram(
            "crema_storage_commit_seconds",
            "Time of a commit.",
            2.5,
            4,
            buckets,
        );
    }

    /// Both formats end a histogram with `+Inf`, once, holding every observation (one took
    /// longer than the last bound), and with the buckets cumulative.
    #[test]
    fn histograms_end_with_inf_in_both_formats() {
        let mut registry = Registry::new();
        registry.register(commits);
        for accept in [None, Some("application/openmetrics-text;version=1.0.0")] {
            let (_, text) = registry.text(accept);
            let buckets: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("crema_storage_commit_seconds_bucket"))
                .collect();
            assert_eq!(
                buckets,
                [
                    "crema_storage_commit_seconds_bucket{le=\"0.01\"} 1",
                    "crema_storage_commit_seconds_bucket{le=\"0.1\"} 3",
                    "crema_storage_commit_seconds_bucket{le=\"+Inf\"} 4",
                ],
                "{accept:?}: {text}"
            );
            assert!(
                text.contains("crema_storage_commit_seconds_count 4\n"),
                "{text}"
            );
        }
    }
}
