//! Prometheus remote-write 1.0: samples → protobuf `WriteRequest`s → snappy block → HTTP POST
//! through the shared client and retry loop ([`super::http`]).

use std::collections::BTreeMap;

use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use super::Delivery;
use super::http::{Request, Session, redacted};
use crate::samples::Sample;

/// The vendored remote-write messages (`proto/remote.proto`), compiled by prost.
#[allow(missing_debug_implementations, clippy::all)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Most series in one request, so no request grows without bound.
pub const MAX_SERIES_PER_REQUEST: usize = 2_000;
/// Groups samples into series (labels sorted by name, `__name__` first among equals, samples
/// in timestamp order) and splits them into bounded requests.
pub fn encode(samples: &[Sample]) -> Vec<prompb::WriteRequest> {
    let mut series: BTreeMap<Vec<(&str, &str)>, Vec<prompb::Sample>> = BTreeMap::new();
    let mut help: BTreeMap<&str, &str> = BTreeMap::new();
    for sample in samples {
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(sample.labels.len() + 1);
        labels.push(("__name__", sample.metric.name));
        labels.extend(sample.labels.iter().map(|(name, value)| (*name, value.as_str())));
        labels.sort_unstable();
        labels.dedup_by(|a, b| a.0 == b.0);
        series.entry(labels).or_default().push(prompb::Sample { value: sample.value, timestamp: sample.timestamp_ms });
        help.insert(sample.metric.name, sample.metric.help);
    }
    let series: Vec<prompb::TimeSeries> = series
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|s| s.timestamp);
            prompb::TimeSeries {
                labels: labels
                    .into_iter()
                    .filter(|(_, value)| !value.is_empty())
                    .map(|(name, value)| prompb::Label { name: name.to_string(), value: value.to_string() })
                    .collect(),
                samples,
            }
        })
        .collect();
    series
        .chunks(MAX_SERIES_PER_REQUEST)
        .map(|chunk| {
            let names: std::collections::BTreeSet<&str> =
                chunk.iter().filter_map(|s| s.labels.first()).map(|l| l.value.as_str()).collect();
            prompb::WriteRequest {
                timeseries: chunk.to_vec(),
                metadata: names
                    .into_iter()
                    .map(|name| prompb::MetricMetadata {
                        r#type: prompb::metric_metadata::MetricType::Gauge as i32,
                        metric_family_name: name.to_string(),
                        help: help.get(name).copied().unwrap_or_default().to_string(),
                        unit: String::new(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The request body: protobuf, then snappy's block format (not the framed format).
pub fn body(request: &prompb::WriteRequest) -> Vec<u8> {
    // Compressing a byte slice in memory cannot fail but for inputs over 4 GiB, which bounded
    // batches never reach; an empty body would then be rejected by the receiver, not lost silently.
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap_or_default()
}

/// Sends samples to one remote-write endpoint.
#[derive(Debug)]
pub struct RemoteWriteSink {
    url: Url,
}

impl RemoteWriteSink {
    pub fn new(url: Url) -> Self {
        RemoteWriteSink { url }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Delivers every sample, request by request; a rejected request does not stop the others.
    pub async fn push(&self, session: &Session<'_>, samples: &[Sample]) -> Delivery {
        let requests = encode(samples);
        let mut delivery = Delivery::new("remote_write", redacted(&self.url), samples.len(), requests.len());
        for request in &requests {
            let count: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
            let request = Request {
                sink: delivery.sink,
                method: Method::POST,
                url: &self.url,
                headers: headers(),
                body: body(request),
            };
            let sent = session.send(&request).await;
            delivery.record(sent, count);
        }
        delivery
    }
}

/// The three headers remote-write 1.0 requires (the client adds `User-Agent`).
fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers.insert("X-Prometheus-Remote-Write-Version", HeaderValue::from_static("0.1.0"));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{RECEIVED_BYTES_PER_SECOND, TEST_SUCCESS};

    fn sample(metric: crate::samples::Metric, source: &str, ts: i64) -> Sample {
        Sample {
            metric,
            labels: vec![("destination_node", "b".into()), ("source_node", source.into())],
            value: 1.0,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn series_have_sorted_labels_and_ordered_samples() {
        let samples =
            [sample(TEST_SUCCESS, "a", 20), sample(RECEIVED_BYTES_PER_SECOND, "a", 5), sample(TEST_SUCCESS, "a", 10)];
        let requests = encode(&samples);
        assert_eq!(requests.len(), 1);
        let series = &requests[0].timeseries;
        assert_eq!(series.len(), 2);
        for s in series {
            let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
            assert_eq!(names, ["__name__", "destination_node", "source_node"]);
        }
        let success = series.iter().find(|s| s.labels[0].value == "iperf3_test_success").unwrap();
        assert_eq!(success.samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), [10, 20]);
        assert_eq!(requests[0].metadata.len(), 2);
    }

    #[test]
    fn batches_are_bounded() {
        let samples: Vec<Sample> = (0..4_500).map(|i| sample(TEST_SUCCESS, &format!("n{i}"), 1)).collect();
        let requests = encode(&samples);
        assert_eq!(requests.iter().map(|r| r.timeseries.len()).collect::<Vec<_>>(), [2000, 2000, 500]);
    }

    #[test]
    fn body_is_snappy_block_format_of_the_protobuf() {
        let request = &encode(&[sample(TEST_SUCCESS, "a", 1)])[0];
        let compressed = body(request);
        let raw = snap::raw::Decoder::new().decompress_vec(&compressed).unwrap();
        assert_eq!(prompb::WriteRequest::decode(raw.as_slice()).unwrap(), *request);
        // The framed format starts with a stream identifier chunk; the block format does not.
        assert_ne!(&compressed[..4], b"\xff\x06\x00\x00");
    }
}
