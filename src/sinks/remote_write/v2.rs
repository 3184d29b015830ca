//! Remote-write 2.0 (`io.prometheus.write.v2.Request`): the series of a request with their
//! strings in one symbol table, and each series' metadata (type, help, unit).
//!
//! Specification: <https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/>. The symbol
//! table starts with `""` (so that an absent unit or help is reference 0) and holds each string
//! once; a series' labels are pairs of references, sorted by label name as in 1.0.

use std::collections::HashMap;

use prost::Message as _;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::Series;
use crate::samples::Metric;

/// The vendored remote-write 2.0 messages (`proto/write_v2.proto`), compiled by prost.
#[allow(missing_debug_implementations, clippy::all)]
pub mod writev2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// The `Content-Type` of a 2.0 request.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// The version header's value for 2.0.
pub const VERSION: &str = "2.0.0";
/// The response header in which a 2.0 receiver says how many samples it wrote.
pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";

/// The unit of a metric, from its name's suffix (the Prometheus naming rules put the base unit
/// last; OpenMetrics requires the unit to be a suffix of the name). Empty for counts.
pub fn unit(metric: &Metric) -> &'static str {
    const UNITS: &[&str] = &["bytes_per_second", "seconds", "ratio"];
    UNITS.iter().copied().find(|unit| metric.name.ends_with(&format!("_{unit}"))).unwrap_or("")
}

/// The strings of one request, each once, `""` first.
#[derive(Debug)]
struct Symbols<'a> {
    table: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn new() -> Self {
        Symbols { table: vec![""], index: HashMap::from([("", 0)]) }
    }

    fn reference(&mut self, text: &'a str) -> u32 {
        *self.index.entry(text).or_insert_with(|| {
            self.table.push(text);
            (self.table.len() - 1) as u32
        })
    }
}

/// A 2.0 request of `series`: every series carries its metadata (a gauge, its help, its unit).
pub fn request(series: &[Series<'_>]) -> writev2::Request {
    let mut symbols = Symbols::new();
    let timeseries = series
        .iter()
        .map(|s| writev2::TimeSeries {
            labels_refs: s
                .labels
                .iter()
                .flat_map(|&(name, value)| [symbols.reference(name), symbols.reference(value)])
                .collect(),
            samples: s
                .samples
                .iter()
                .map(|&(value, timestamp)| writev2::Sample { value, timestamp, start_timestamp: 0 })
                .collect(),
            histograms: Vec::new(),
            exemplars: Vec::new(),
            metadata: Some(writev2::Metadata {
                r#type: writev2::metadata::MetricType::Gauge as i32,
                help_ref: symbols.reference(s.metric.help),
                unit_ref: symbols.reference(unit(s.metric)),
            }),
        })
        .collect();
    writev2::Request { symbols: symbols.table.into_iter().map(String::from).collect(), timeseries }
}

/// The request body: protobuf, then snappy's block format, as in 1.0.
pub fn body(request: &writev2::Request) -> Vec<u8> {
    super::compress(&request.encode_to_vec())
}

/// The headers remote-write 2.0 requires (the client adds `User-Agent`).
pub fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V2));
    headers.insert("X-Prometheus-Remote-Write-Version", HeaderValue::from_static(VERSION));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{ALL_METRICS, RTT_SECONDS, Sample, TEST_SUCCESS};

    fn sample(metric: &'static Metric, source: &str, ts: i64) -> Sample {
        Sample {
            metric,
            labels: vec![("destination_node", "b".into()), ("source_node", source.into())].into(),
            value: 0.5,
            timestamp_ms: ts,
        }
    }

    /// The labels of a series, looked up in the symbol table.
    fn labels<'a>(request: &'a writev2::Request, series: &writev2::TimeSeries) -> Vec<(&'a str, &'a str)> {
        let symbol = |r: &u32| request.symbols[*r as usize].as_str();
        series.labels_refs.chunks(2).map(|pair| (symbol(&pair[0]), symbol(&pair[1]))).collect()
    }

    #[test]
    fn symbols_start_empty_and_hold_each_string_once() {
        let samples = [sample(&TEST_SUCCESS, "a", 1), sample(&TEST_SUCCESS, "c", 1), sample(&RTT_SECONDS, "a", 2)];
        let series: Vec<_> = super::super::requests(&samples).next().unwrap();
        let request = request(&series);
        assert_eq!(request.symbols[0], "");
        let mut unique = request.symbols.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), request.symbols.len(), "{:?}", request.symbols);
        assert_eq!(request.timeseries.len(), 3);
        for s in &request.timeseries {
            let names: Vec<&str> = labels(&request, s).iter().map(|(n, _)| *n).collect();
            assert_eq!(names, ["__name__", "destination_node", "source_node"]);
        }
        let rtt = &request.timeseries.iter().find(|s| labels(&request, s)[0].1 == "iperf3_rtt_seconds").unwrap();
        let metadata = rtt.metadata.unwrap();
        assert_eq!(metadata.r#type, writev2::metadata::MetricType::Gauge as i32);
        assert_eq!(request.symbols[metadata.help_ref as usize], RTT_SECONDS.help);
        assert_eq!(request.symbols[metadata.unit_ref as usize], "seconds");
        assert_eq!((rtt.samples[0].value, rtt.samples[0].timestamp), (0.5, 2));
        let success = request.timeseries.iter().find(|s| labels(&request, s)[0].1 == "iperf3_test_success").unwrap();
        assert_eq!(success.metadata.unwrap().unit_ref, 0, "a count has no unit");
    }

    #[test]
    fn units_are_suffixes_of_the_names() {
        for metric in ALL_METRICS {
            let unit = unit(metric);
            assert!(unit.is_empty() || metric.name.ends_with(&format!("_{unit}")), "{}", metric.name);
        }
        let units: Vec<(&str, &str)> = ALL_METRICS.iter().map(|m| (m.name, unit(m))).collect();
        assert!(units.contains(&("iperf3_received_bytes_per_second", "bytes_per_second")), "{units:?}");
        assert!(units.contains(&("iperf3_loss_ratio", "ratio")));
        assert!(units.contains(&("iperf3_test_timestamp_seconds", "seconds")));
        assert!(units.contains(&("iperf3_retransmits", "")));
    }

    #[test]
    fn body_is_snappy_block_format_of_the_protobuf() {
        let samples = [sample(&TEST_SUCCESS, "a", 1)];
        let request = request(&super::super::requests(&samples).next().unwrap());
        let raw = snap::raw::Decoder::new().decompress_vec(&body(&request)).unwrap();
        assert_eq!(writev2::Request::decode(raw.as_slice()).unwrap(), request);
    }
}
