//! Prometheus remote-write: samples → series → protobuf (1.0 `prometheus.WriteRequest` or 2.0
//! `io.prometheus.write.v2.Request`, [`v2`]) → snappy block → HTTP POST through the shared
//! client and retry loop ([`super::http`]).
//!
//! Which message goes out is `--remote-write-message` ([`Message`]). With `auto` the sink sends
//! 2.0 and falls back to 1.0 for the rest of the run, resending the same series, when the
//! receiver answers 415 or answers 2xx without `X-Prometheus-Remote-Write-Samples-Written`:
//! Prometheus 2.x decodes a 2.0 body as an empty 1.0 request, stores nothing and answers 204.
//! A 2.0 receiver that reports fewer samples written than were sent makes the delivery fail
//! with the counts ([`judge_v2`]): partial writes are never silent.

pub mod v2;

use std::collections::BTreeMap;

use prost::Message as _;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::Delivery;
use super::http::{Request, Sent, Session, redacted};
use crate::samples::{Metric, Sample, SampleSource};

/// The vendored remote-write 1.0 messages (`proto/remote.proto`), compiled by prost.
#[allow(missing_debug_implementations, clippy::all)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Which remote-write message a sink sends (`--remote-write-message`).
///
/// `auto` is the default: 2.0 carries the metrics' type, help and unit, and a 1.0-only receiver
/// (Prometheus 2.x, VictoriaMetrics) costs one request sent twice. The 2.0 specification is
/// still experimental and most receivers in use speak only 1.0, so `v2` alone would lose every
/// sample there; `v1` is the choice for a receiver known to be 1.0-only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Message {
    V1,
    V2,
    #[default]
    Auto,
}

impl Message {
    /// The names the flag takes.
    pub const NAMES: [&'static str; 3] = ["v1", "v2", "auto"];

    pub fn parse(name: &str) -> Option<Message> {
        match name {
            "v1" => Some(Message::V1),
            "v2" => Some(Message::V2),
            "auto" => Some(Message::Auto),
            _ => None,
        }
    }
}

/// Most series in one request, so no request grows without bound.
pub const MAX_SERIES_PER_REQUEST: usize = 2_000;

/// One series of a request: its labels as remote-write wants them (`__name__` among them,
/// sorted by name, no name twice, no empty value) and its samples in timestamp order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<'a> {
    pub metric: &'static Metric,
    pub labels: Vec<(&'a str, &'a str)>,
    /// (value, timestamp in milliseconds).
    pub samples: Vec<(f64, i64)>,
}

/// Groups samples into series and splits them into requests of at most
/// [`MAX_SERIES_PER_REQUEST`] series, the same for both messages. The requests are built one
/// at a time as the iterator is advanced: only an index of the samples is made up front, so a
/// run's samples never exist twice in memory.
pub fn requests(samples: &[Sample]) -> impl Iterator<Item = Vec<Series<'_>>> + '_ {
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
        let mut series = Vec::new();
        while next < order.len() && series.len() < MAX_SERIES_PER_REQUEST {
            let first = &samples[order[next]];
            let len = order[next..].iter().take_while(|&&i| series_key(&samples[i]).eq(series_key(first))).count();
            series.push(Series {
                metric: first.metric,
                labels: series_labels(first),
                samples: order[next..next + len].iter().map(|&i| (samples[i].value, samples[i].timestamp_ms)).collect(),
            });
            next += len;
        }
        Some(series)
    })
}

/// The 1.0 requests of `samples`: [`requests`] as `WriteRequest`s.
pub fn encode(samples: &[Sample]) -> impl Iterator<Item = prompb::WriteRequest> + '_ {
    requests(samples).map(|series| write_request(&series))
}

/// A 1.0 `WriteRequest`: the series, and one metadata entry (type, help) per metric.
pub fn write_request(series: &[Series<'_>]) -> prompb::WriteRequest {
    let mut metadata: BTreeMap<&str, &str> = BTreeMap::new();
    let timeseries = series
        .iter()
        .map(|s| {
            metadata.insert(s.metric.name, s.metric.help);
            prompb::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| prompb::Label { name: name.to_string(), value: value.to_string() })
                    .collect(),
                samples: s.samples.iter().map(|&(value, timestamp)| prompb::Sample { value, timestamp }).collect(),
            }
        })
        .collect();
    prompb::WriteRequest {
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
    }
}

/// What tells one series from another: the metric name, then the labels that are not empty.
fn series_key(sample: &Sample) -> impl Iterator<Item = (&str, &str)> + Clone {
    std::iter::once(("__name__", sample.metric.name))
        .chain(sample.labels.iter().map(|(name, value)| (*name, &**value)))
        .filter(|(_, value)| !value.is_empty())
}

/// A series' labels: `__name__` among them, sorted by name, no name twice, no empty value.
fn series_labels(sample: &Sample) -> Vec<(&str, &str)> {
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(sample.labels.len() + 1);
    labels.push(("__name__", sample.metric.name));
    labels.extend(sample.labels.iter().map(|(name, value)| (*name, &**value)));
    labels.sort_unstable();
    labels.dedup_by(|a, b| a.0 == b.0);
    labels.retain(|(_, value)| !value.is_empty());
    labels
}

/// The 1.0 request body: protobuf, then snappy's block format (not the framed format).
pub fn body(request: &prompb::WriteRequest) -> Vec<u8> {
    compress(&request.encode_to_vec())
}

/// Snappy's block format, which both messages use.
fn compress(protobuf: &[u8]) -> Vec<u8> {
    // Compressing a byte slice in memory cannot fail but for inputs over 4 GiB, which bounded
    // batches never reach; an empty body would then be rejected by the receiver, not lost silently.
    snap::raw::Encoder::new().compress_vec(protobuf).unwrap_or_default()
}

/// What the answer to a 2.0 request means for its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V2Answer {
    /// The receiver speaks 2.0 and wrote `written` samples; `error` says why not all.
    Written { written: usize, error: Option<String> },
    /// The receiver does not speak 2.0 (only with `auto`): send the series again as 1.0, and
    /// 1.0 from now on.
    FallBack(String),
}

/// Judges the answer to a 2.0 request of `sent_samples` samples, from its status and the
/// `X-Prometheus-Remote-Write-Samples-Written` header the 2.0 specification requires.
pub fn judge_v2(message: Message, sent: &Sent, sent_samples: usize) -> V2Answer {
    let written = sent
        .headers
        .get(v2::SAMPLES_WRITTEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|n| n.min(sent_samples));
    let status = sent.status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
    match (&sent.result, written) {
        (Ok(()), Some(written)) if written == sent_samples => V2Answer::Written { written, error: None },
        (Ok(()), Some(written)) => V2Answer::Written {
            written,
            error: Some(format!(
                "{status}, but the receiver wrote only {written} of {sent_samples} samples \
                 ({} says so); the others are lost",
                v2::SAMPLES_WRITTEN
            )),
        },
        (Ok(()), None) if message == Message::Auto => V2Answer::FallBack(format!(
            "{status} without {}: a remote-write 1.0 receiver, which stores nothing of a 2.0 request",
            v2::SAMPLES_WRITTEN
        )),
        (Ok(()), None) => V2Answer::Written {
            written: 0,
            error: Some(format!(
                "{status} without {}: the receiver confirmed none of {sent_samples} samples; a remote-write \
                 1.0 receiver (Prometheus 2.x) stores nothing of a 2.0 request. Use --remote-write-message \
                 auto or v1",
                v2::SAMPLES_WRITTEN
            )),
        },
        (Err(_), _) if message == Message::Auto && sent.status == Some(StatusCode::UNSUPPORTED_MEDIA_TYPE) => {
            V2Answer::FallBack(format!("{status}: the receiver does not accept {}", v2::CONTENT_TYPE_V2))
        }
        (Err(error), written) => V2Answer::Written {
            written: written.unwrap_or(0),
            error: Some(match written {
                Some(written) => format!("{error}; {written} of {sent_samples} samples written"),
                None => error.clone(),
            }),
        },
    }
}

/// Sends samples to one remote-write endpoint.
#[derive(Debug)]
pub struct RemoteWriteSink {
    url: Url,
    message: Message,
}

impl RemoteWriteSink {
    pub fn new(url: Url, message: Message) -> Self {
        RemoteWriteSink { url, message }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Delivers every sample, batch by batch and request by request, so that only one batch
    /// and one request are in memory at a time; a rejected request does not stop the others.
    pub async fn push<S: SampleSource + ?Sized>(&self, session: &Session<'_>, samples: &S) -> Delivery {
        let mut delivery = Delivery::new("remote_write", redacted(&self.url), 0, 0);
        let mut speaking_v2 = self.message != Message::V1;
        for batch in samples.batches() {
            delivery.samples += batch.len();
            for series in requests(&batch) {
                let count: usize = series.iter().map(|s| s.samples.len()).sum();
                delivery.requests += 1;
                if speaking_v2 {
                    delivery.message = Some("v2");
                    let sent = session.send(&self.request(v2::headers(), v2::body(&v2::request(&series)))).await;
                    delivery.attempts += sent.attempts;
                    match judge_v2(self.message, &sent, count) {
                        V2Answer::Written { written, error } => {
                            delivery.delivered_samples += written;
                            if let Some(error) = error {
                                tracing::warn!(sink = delivery.sink, url = %delivery.url, sent = count, written, %error, "remote-write 2.0: not every sample was written");
                                delivery.errors.push(error);
                            }
                            continue;
                        }
                        V2Answer::FallBack(reason) => {
                            tracing::warn!(url = %delivery.url, %reason, "remote-write 2.0 refused; sending 1.0 for the rest of the run");
                            delivery.fallback = Some(reason);
                            delivery.requests += 1;
                            speaking_v2 = false;
                        }
                    }
                }
                delivery.message = Some("v1");
                let sent = session.send(&self.request(headers(), body(&write_request(&series)))).await;
                delivery.record(sent, count);
            }
        }
        delivery
    }

    fn request(&self, headers: HeaderMap, body: Vec<u8>) -> Request<'_> {
        Request { sink: "remote_write", method: Method::POST, url: &self.url, headers, body }
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

    fn answer(status: u16, written: Option<&str>) -> Sent {
        let status = StatusCode::from_u16(status).unwrap();
        let mut headers = HeaderMap::new();
        if let Some(written) = written {
            headers.insert(v2::SAMPLES_WRITTEN, HeaderValue::from_str(written).unwrap());
        }
        let result = if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}: refused")) };
        Sent { attempts: 1, result, status: Some(status), headers }
    }

    #[test]
    fn a_2_0_answer_is_trusted_only_as_far_as_its_written_header() {
        for message in [Message::V2, Message::Auto] {
            assert_eq!(judge_v2(message, &answer(204, Some("9")), 9), V2Answer::Written { written: 9, error: None });
            let V2Answer::Written { written: 5, error: Some(error) } = judge_v2(message, &answer(204, Some("5")), 9)
            else {
                panic!("a partial write is not reported")
            };
            assert!(error.contains("only 5 of 9 samples"), "{error}");
            // A partial write answered with an error keeps its count.
            let V2Answer::Written { written: 3, error: Some(error) } = judge_v2(message, &answer(400, Some("3")), 9)
            else {
                panic!()
            };
            assert!(error.contains("HTTP 400") && error.contains("3 of 9 samples written"), "{error}");
        }
    }

    #[test]
    fn auto_falls_back_on_415_and_on_2xx_without_the_written_header() {
        assert!(matches!(judge_v2(Message::Auto, &answer(415, None), 9), V2Answer::FallBack(r) if r.contains("415")));
        let V2Answer::FallBack(reason) = judge_v2(Message::Auto, &answer(204, None), 9) else { panic!() };
        assert!(reason.contains("204") && reason.contains(v2::SAMPLES_WRITTEN), "{reason}");
        // An explicit v2 falls back on nothing: the samples are reported undelivered.
        let V2Answer::Written { written: 0, error: Some(error) } = judge_v2(Message::V2, &answer(204, None), 9) else {
            panic!()
        };
        assert!(error.contains("none of 9 samples") && error.contains("--remote-write-message"), "{error}");
        assert!(matches!(judge_v2(Message::V2, &answer(415, None), 9), V2Answer::Written { written: 0, .. }));
        // Other refusals are no reason to fall back.
        assert!(matches!(judge_v2(Message::Auto, &answer(400, None), 9), V2Answer::Written { written: 0, .. }));
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
