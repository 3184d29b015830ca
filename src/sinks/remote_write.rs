//! Prometheus remote-write 1.0: samples → protobuf `WriteRequest`s → snappy block → HTTP POST
//! through the shared client and retry loop ([`super::http`]).

use std::collections::BTreeMap;

use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use super::Delivery;
use super::http::{Request, Session, redacted};
use crate::samples::{Sample, SampleSource};

/// The vendored remote-write messages (`proto/remote.proto`), compiled by prost.
#[allow(missing_debug_implementations, clippy::all)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Most series in one request, so no request grows without bound.
pub const MAX_SERIES_PER_REQUEST: usize = 2_000;
/// Groups samples into series (labels sorted by name, `__name__` first among equals, samples
/// in timestamp order) and splits them into requests of at most [`MAX_SERIES_PER_REQUEST`]
/// series. The requests are built one at a time as the iterator is advanced: only an index of
/// the samples is made up front, so a run's samples never exist twice in memory.
pub fn encode(samples: &[Sample]) -> impl Iterator<Item = prompb::WriteRequest> + '_ {
    // Samples of one series next to each other, in timestamp order. Sample labels are sorted by
    // name with no name twice, so equal label lists are equal series.
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a, b) = (&samples[a], &samples[b]);
        series_key(a).cmp(series_key(b)).then(a.timestamp_ms.cmp(&b.timestamp_ms))
    });
    let mut next = 0;
    std::iter::from_fn(move || {
        if next == order.len() {
            return None;
        }
        let mut timeseries = Vec::new();
        let mut metadata: BTreeMap<&str, &str> = BTreeMap::new();
        while next < order.len() && timeseries.len() < MAX_SERIES_PER_REQUEST {
            let first = &samples[order[next]];
            let len = order[next..].iter().take_while(|&&i| series_key(&samples[i]).eq(series_key(first))).count();
            timeseries.push(prompb::TimeSeries {
                labels: series_labels(first),
                samples: order[next..next + len]
                    .iter()
                    .map(|&i| prompb::Sample { value: samples[i].value, timestamp: samples[i].timestamp_ms })
                    .collect(),
            });
            metadata.insert(first.metric.name, first.metric.help);
            next += len;
        }
        Some(prompb::WriteRequest {
            timeseries,
            metadata: metadata
                .into_iter()
                .map(|(name, help)| prompb::MetricMetadata {
                    r#type: prompb::metric_metadata::MetricType::Gauge as i32,
                    metric_family_name: name.to_string(),
                    help: help.to_string(),
                    unit: String::new(),
                })
                .collect(),
        })
    })
}

/// What tells one series from another: the metric name, then the labels that are not empty.
fn series_key(sample: &Sample) -> impl Iterator<Item = (&str, &str)> + Clone {
    std::iter::once(("__name__", sample.metric.name))
        .chain(sample.labels.iter().map(|(name, value)| (*name, &**value)))
        .filter(|(_, value)| !value.is_empty())
}

/// A series' labels as remote-write wants them: `__name__` among them, sorted by name, no name
/// twice, no empty value.
fn series_labels(sample: &Sample) -> Vec<prompb::Label> {
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(sample.labels.len() + 1);
    labels.push(("__name__", sample.metric.name));
    labels.extend(sample.labels.iter().map(|(name, value)| (*name, &**value)));
    labels.sort_unstable();
    labels.dedup_by(|a, b| a.0 == b.0);
    labels
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| prompb::Label { name: name.to_string(), value: value.to_string() })
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

    /// Delivers every sample, batch by batch and request by request, so that only one batch
    /// and one request are in memory at a time; a rejected request does not stop the others.
    pub async fn push<S: SampleSource + ?Sized>(&self, session: &Session<'_>, samples: &S) -> Delivery {
        let mut delivery = Delivery::new("remote_write", redacted(&self.url), 0, 0);
        for batch in samples.batches() {
            delivery.samples += batch.len();
            for request in encode(&batch) {
                delivery.requests += 1;
                let count: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
                let request = Request {
                    sink: delivery.sink,
                    method: Method::POST,
                    url: &self.url,
                    headers: headers(),
                    body: body(&request),
                };
                let sent = session.send(&request).await;
                delivery.record(sent, count);
            }
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

    fn sample(metric: &'static crate::samples::Metric, source: &str, ts: i64) -> Sample {
        Sample {
            metric,
            labels: vec![("destination_node", "b".into()), ("source_node", source.into())].into(),
            value: 1.0,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn series_have_sorted_labels_and_ordered_samples() {
        let samples = [
            sample(&TEST_SUCCESS, "a", 20),
            sample(&RECEIVED_BYTES_PER_SECOND, "a", 5),
            sample(&TEST_SUCCESS, "a", 10),
        ];
        let requests: Vec<_> = encode(&samples).collect();
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
        let samples: Vec<Sample> = (0..4_500).map(|i| sample(&TEST_SUCCESS, &format!("n{i}"), 1)).collect();
        let requests: Vec<_> = encode(&samples).collect();
        assert_eq!(requests.iter().map(|r| r.timeseries.len()).collect::<Vec<_>>(), [2000, 2000, 500]);
    }

    #[test]
    fn a_series_is_never_split_across_requests() {
        // 2,001 series; the first and the last have samples at both ends of the input.
        let mut samples = vec![sample(&TEST_SUCCESS, "n0000", 2)];
        samples.extend((0..=2_000).map(|i| sample(&TEST_SUCCESS, &format!("n{i:04}"), 1)));
        samples.push(sample(&TEST_SUCCESS, "n2000", 0));
        let requests: Vec<_> = encode(&samples).collect();
        assert_eq!(requests.iter().map(|r| r.timeseries.len()).collect::<Vec<_>>(), [2000, 1]);
        let first = &requests[0].timeseries[0];
        assert_eq!(first.samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), [1, 2]);
        let last = &requests[1].timeseries[0];
        assert_eq!(last.samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn empty_label_values_are_left_out_and_do_not_split_a_series() {
        let mut with_empty = sample(&TEST_SUCCESS, "a", 1);
        with_empty.labels =
            vec![("cluster", "".into()), ("destination_node", "b".into()), ("source_node", "a".into())].into();
        let requests: Vec<_> = encode(&[with_empty, sample(&TEST_SUCCESS, "a", 2)]).collect();
        let series = &requests[0].timeseries;
        assert_eq!(series.len(), 1);
        assert_eq!(
            series[0].labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["__name__", "destination_node", "source_node"]
        );
        assert_eq!(series[0].samples.len(), 2);
    }

    #[test]
    fn body_is_snappy_block_format_of_the_protobuf() {
        let request = &encode(&[sample(&TEST_SUCCESS, "a", 1)]).next().unwrap();
        let compressed = body(request);
        let raw = snap::raw::Decoder::new().decompress_vec(&compressed).unwrap();
        assert_eq!(prompb::WriteRequest::decode(raw.as_slice()).unwrap(), *request);
        // The framed format starts with a stream identifier chunk; the block format does not.
        assert_ne!(&compressed[..4], b"\xff\x06\x00\x00");
    }
}
