//! The Pushgateway: the whole run replaces one group, `PUT /metrics/job/<job>[/cluster/<cluster>]`,
//! in the text exposition format without timestamps (the Pushgateway refuses them; the time of
//! each test travels as the `iperf3_test_timestamp_seconds` gauge). Replacing the group makes
//! the pairs of nodes that left the cluster disappear instead of lingering.

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use super::Delivery;
use super::exposition::exposition;
use super::http::{Request, Session, redacted};
use crate::samples::{LabelValue, Sample, SampleSource};

/// Content type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Pushgateway and the job name of the run's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushgatewayTarget {
    pub url: Url,
    pub job: String,
}

/// Pushes a run's samples as one Pushgateway group.
#[derive(Debug)]
pub struct PushgatewaySink {
    group_url: Url,
}

impl PushgatewaySink {
    /// The group is the job, plus the cluster when the run has one.
    pub fn new(target: &PushgatewayTarget, cluster: Option<&str>) -> Self {
        let grouping: Vec<(&str, &str)> = cluster.map(|c| ("cluster", c)).into_iter().collect();
        PushgatewaySink { group_url: group_url(&target.url, &target.job, &grouping) }
    }

    pub fn group_url(&self) -> &Url {
        &self.group_url
    }

    /// Replaces the group with the latest sample of every series in one request: unlike
    /// remote-write, this needs every sample of the run in memory at once.
    pub async fn push<S: SampleSource + ?Sized>(&self, session: &Session<'_>, samples: &S) -> Delivery {
        let samples = samples.collect_all();
        let latest = latest_per_series(&samples);
        if latest.len() < samples.len() {
            tracing::debug!(
                superseded = samples.len() - latest.len(),
                "the Pushgateway holds one value per series: older samples of a series are not pushed"
            );
        }
        let mut delivery = Delivery::new("pushgateway", redacted(&self.group_url), latest.len(), 1);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
        let request = Request {
            sink: delivery.sink,
            method: Method::PUT,
            url: &self.group_url,
            headers,
            body: exposition(&latest, false).into_bytes(),
        };
        let sent = session.send(&request).await;
        delivery.record(sent, latest.len());
        delivery
    }
}

/// `<base>/metrics/job/<job>/<name>/<value>…`. A value holding `/`, or empty, is written as
/// `<name>@base64/<URL-safe base64>` (RFC 4648 §5), as the Pushgateway requires; other values
/// are percent-encoded path segments.
pub fn group_url(base: &Url, job: &str, grouping: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("metrics");
        for (name, value) in std::iter::once(("job", job)).chain(grouping.iter().copied()) {
            if value.is_empty() || value.contains('/') {
                // The Pushgateway reads "=" as the encoding of the empty value.
                let encoded = match value {
                    "" => "=".to_string(),
                    _ => base64::engine::general_purpose::URL_SAFE.encode(value),
                };
                segments.push(&format!("{name}@base64")).push(&encoded);
            } else {
                segments.push(name).push(value);
            }
        }
    }
    url
}

/// A series: metric name and labels.
type SeriesKey<'a> = (&'a str, &'a [(&'static str, LabelValue)]);

/// One sample per series (name and labels): the latest by timestamp, the last one among equals.
/// The order of first appearance is kept.
pub fn latest_per_series(samples: &[Sample]) -> Vec<Sample> {
    let mut index: HashMap<SeriesKey, usize> = HashMap::new();
    let mut latest: Vec<Sample> = Vec::with_capacity(samples.len());
    for sample in samples {
        match index.get(&(sample.metric.name, &sample.labels[..])) {
            Some(&at) if latest[at].timestamp_ms > sample.timestamp_ms => {}
            Some(&at) => latest[at] = sample.clone(),
            None => {
                index.insert((sample.metric.name, &sample.labels[..]), latest.len());
                latest.push(sample.clone());
            }
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{TEST_SUCCESS, TEST_TIMESTAMP_SECONDS};

    fn url(base: &str, job: &str, grouping: &[(&str, &str)]) -> String {
        group_url(&Url::parse(base).unwrap(), job, grouping).to_string()
    }

    #[test]
    fn the_group_is_the_job_and_the_cluster() {
        assert_eq!(url("http://pg:9091", "iperf3-monitor", &[]), "http://pg:9091/metrics/job/iperf3-monitor");
        assert_eq!(
            url("http://pg:9091/", "iperf3-monitor", &[("cluster", "prod-eu")]),
            "http://pg:9091/metrics/job/iperf3-monitor/cluster/prod-eu"
        );
        // A Pushgateway behind a path prefix keeps its prefix.
        assert_eq!(
            url("https://gw.example/pushgateway/?x=1", "j", &[]),
            "https://gw.example/pushgateway/metrics/job/j"
        );
    }

    #[test]
    fn slashes_and_empty_values_use_the_base64_encoding() {
        // "eu/west" → base64url "ZXUvd2VzdA==", as in the Pushgateway's README.
        assert_eq!(
            url("http://pg:9091", "iperf3", &[("cluster", "eu/west")]),
            "http://pg:9091/metrics/job/iperf3/cluster@base64/ZXUvd2VzdA=="
        );
        assert_eq!(url("http://pg:9091", "a/b", &[]), "http://pg:9091/metrics/job@base64/YS9i");
        assert_eq!(url("http://pg:9091", "j", &[("cluster", "")]), "http://pg:9091/metrics/job/j/cluster@base64/=");
        // URL-safe alphabet: '-' and '_' instead of '+' and '/'.
        assert_eq!(
            url("http://pg:9091", "j", &[("cluster", "/?>")]),
            "http://pg:9091/metrics/job/j/cluster@base64/Lz8-"
        );
        assert_eq!(
            url("http://pg:9091", "j", &[("cluster", "??/")]),
            "http://pg:9091/metrics/job/j/cluster@base64/Pz8v"
        );
        // Other awkward values are percent-encoded.
        assert_eq!(
            url("http://pg:9091", "j", &[("cluster", "a b?#%")]),
            "http://pg:9091/metrics/job/j/cluster/a%20b%3F%23%25"
        );
    }

    fn sample(metric: &'static crate::samples::Metric, source: &str, value: f64, ts: i64) -> Sample {
        Sample { metric, labels: vec![("source_node", source.into())].into(), value, timestamp_ms: ts }
    }

    #[test]
    fn one_sample_per_series_the_latest() {
        let samples = [
            sample(&TEST_SUCCESS, "a", 0.0, 20),
            sample(&TEST_TIMESTAMP_SECONDS, "a", 0.02, 20),
            sample(&TEST_SUCCESS, "b", 1.0, 10),
            sample(&TEST_SUCCESS, "a", 1.0, 30),
            sample(&TEST_SUCCESS, "a", 0.5, 5),
        ];
        let latest = latest_per_series(&samples);
        let seen: Vec<(&str, &str, f64)> = latest.iter().map(|s| (s.metric.name, &*s.labels[0].1, s.value)).collect();
        assert_eq!(
            seen,
            [
                ("iperf3_test_success", "a", 1.0),
                ("iperf3_test_timestamp_seconds", "a", 0.02),
                ("iperf3_test_success", "b", 1.0)
            ]
        );
        let text = exposition(&latest, false);
        assert_eq!(text.matches("iperf3_test_success{").count(), 2, "{text}");
        assert!(!text.contains(" 30\n"), "timestamps in {text}");
    }
}
