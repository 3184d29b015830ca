//! Prometheus remote-write 1.0: samples → protobuf `WriteRequest`s → snappy block → HTTP POST,
//! with retries on what the spec says is retryable.
//!
//! Retry policy, a function of the response: 2xx is delivered (the body is ignored); 429 and
//! 5xx are retried with the same body after an exponential, jittered backoff (at least as long
//! as `Retry-After`, in seconds or as an HTTP date); other 4xx are never retried; connection
//! errors and timeouts are retried like 5xx.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;

use crate::config::PushSettings;
use crate::samples::Sample;

/// The vendored remote-write messages (`proto/remote.proto`), compiled by prost.
#[allow(missing_debug_implementations, clippy::all)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Most series in one request, so no request grows without bound.
pub const MAX_SERIES_PER_REQUEST: usize = 2_000;
/// First retry delay; doubles on every retry.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest delay between two attempts, `Retry-After` included.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Most bytes of an error response's body that are logged.
const MAX_ERROR_BODY: usize = 512;

pub const USER_AGENT: &str = concat!("iperf3-monitor/", env!("CARGO_PKG_VERSION"));

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

/// What to do after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Retry, waiting at least this long if the receiver said so.
    Retry(Option<Duration>),
    Rejected,
}

/// The retry policy for an HTTP status (and its `Retry-After`, if any).
pub fn verdict(status: StatusCode, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    if status.is_success() {
        Verdict::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Verdict::Retry(retry_after.and_then(|v| parse_retry_after(v, now)))
    } else {
        Verdict::Rejected
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Delay before retry number `attempt` (0-based): exponential, capped, with jitter in
/// [half, full] so that many jobs do not retry in step; never shorter than `retry_after`.
pub fn backoff(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponential = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt)).min(BACKOFF_CAP);
    let jittered = exponential.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or(Duration::ZERO)).min(BACKOFF_CAP)
}

/// What delivering a run's samples came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub sink: &'static str,
    /// The endpoint, without credentials.
    pub url: String,
    pub samples: usize,
    pub delivered_samples: usize,
    pub requests: usize,
    pub attempts: u32,
    /// Why some samples were not delivered.
    pub errors: Vec<String>,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.delivered_samples == self.samples
    }
}

/// Sends samples to one remote-write endpoint.
#[derive(Debug)]
pub struct RemoteWriteSink {
    client: reqwest::Client,
    url: Url,
    settings: PushSettings,
}

impl RemoteWriteSink {
    pub fn new(url: Url, settings: PushSettings) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        headers.insert("X-Prometheus-Remote-Write-Version", HeaderValue::from_static("0.1.0"));
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(RemoteWriteSink { client, url, settings })
    }

    /// Delivers every sample, request by request; a rejected request does not stop the others.
    pub async fn push(&self, samples: &[Sample]) -> Delivery {
        let requests = encode(samples);
        let mut delivery = Delivery {
            sink: "remote_write",
            url: redacted(&self.url),
            samples: samples.len(),
            delivered_samples: 0,
            requests: requests.len(),
            attempts: 0,
            errors: Vec::new(),
        };
        for request in &requests {
            let count: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
            let body = body(request);
            match self.send(&body, &mut delivery.attempts).await {
                Ok(()) => delivery.delivered_samples += count,
                Err(error) => {
                    tracing::error!(url = %delivery.url, samples = count, %error, "remote-write request failed; its samples are not delivered");
                    delivery.errors.push(error);
                }
            }
        }
        delivery
    }

    /// Sends one body until it is delivered, rejected, or the retries are spent.
    async fn send(&self, body: &[u8], attempts: &mut u32) -> Result<(), String> {
        let mut retry = 0;
        loop {
            *attempts += 1;
            let (verdict, what) = match self.client.post(self.url.clone()).body(body.to_vec()).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after =
                        response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let verdict = verdict(status, retry_after.as_deref(), SystemTime::now());
                    if verdict == Verdict::Delivered {
                        return Ok(());
                    }
                    let text = response.text().await.unwrap_or_default();
                    (verdict, format!("HTTP {status}: {}", truncate(text.trim(), MAX_ERROR_BODY)))
                }
                // Connection refused, reset, timed out: the receiver may come back.
                Err(e) => (Verdict::Retry(None), describe(e)),
            };
            match verdict {
                Verdict::Retry(retry_after) if retry < self.settings.retries => {
                    let delay = backoff(retry, retry_after, rand::random::<f64>());
                    tracing::warn!(error = %what, retry = retry + 1, of = self.settings.retries, delay_seconds = delay.as_secs_f64(), "remote-write request failed; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Verdict::Retry(_) => return Err(format!("{what} (gave up after {} retries)", self.settings.retries)),
                _ => return Err(format!("{what} (rejected; not retried)")),
            }
        }
    }
}

/// The URL without user name or password, for logs and reports.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
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

    #[test]
    fn retry_policy_follows_the_spec() {
        let now = SystemTime::now();
        for code in [200, 204] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), None, now), Verdict::Delivered);
        }
        for code in [500, 502, 503, 504, 429] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), None, now), Verdict::Retry(None), "{code}");
        }
        for code in [400, 401, 403, 404, 413] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), Some("5"), now), Verdict::Rejected, "{code}");
        }
        assert_eq!(
            verdict(StatusCode::TOO_MANY_REQUESTS, Some("7"), now),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        let Verdict::Retry(Some(wait)) = verdict(StatusCode::SERVICE_UNAVAILABLE, Some(&date), now) else { panic!() };
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(12), "{wait:?}");
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        assert_eq!(backoff(0, None, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, None, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(20, None, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(0, Some(Duration::from_secs(9)), 0.3), Duration::from_secs(9));
        assert_eq!(backoff(0, Some(Duration::from_secs(3600)), 0.3), BACKOFF_CAP);
    }

    #[test]
    fn credentials_never_reach_reports() {
        let url = Url::parse("https://user:secret@example.invalid/api/v1/write").unwrap();
        assert_eq!(redacted(&url), "https://example.invalid/api/v1/write");
    }
}
