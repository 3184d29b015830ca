//! The Prometheus text exposition format of samples: the Pushgateway's body, and
//! `--output prometheus`.

use std::collections::HashMap;

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use crate::samples::Sample;

/// The samples in the Prometheus text exposition format, with their timestamps.
pub fn exposition(samples: &[Sample], with_timestamps: bool) -> String {
    let mut families: Vec<MetricFamily> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for sample in samples {
        let at = *index.entry(sample.metric.name).or_insert_with(|| {
            let mut family = MetricFamily::default();
            family.set_name(sample.metric.name.to_string());
            family.set_help(sample.metric.help.to_string());
            family.set_field_type(MetricType::GAUGE);
            families.push(family);
            families.len() - 1
        });
        let labels = sample
            .labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        let mut gauge = Gauge::default();
        gauge.set_value(sample.value);
        let mut metric = Metric::from_gauge(gauge);
        metric.set_label(labels);
        if with_timestamps {
            metric.set_timestamp_ms(sample.timestamp_ms);
        }
        families[at].mut_metric().push(metric);
    }
    let mut out = Vec::new();
    // Writing to a Vec fails only on invalid families, which this function does not build.
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "encoding the text exposition");
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{TEST_FAILURE, TEST_SUCCESS};

    #[test]
    fn exposition_escapes_hostile_label_values() {
        let samples = [
            Sample {
                metric: &TEST_SUCCESS,
                labels: vec![("source_node", "a\"b\\c\nd".into())].into(),
                value: 1.0,
                timestamp_ms: 42,
            },
            Sample {
                metric: &TEST_FAILURE,
                labels: vec![("reason", "refused".into())].into(),
                value: 1.0,
                timestamp_ms: 43,
            },
        ];
        let text = exposition(&samples, true);
        assert!(text.contains("# TYPE iperf3_test_success gauge"), "{text}");
        assert!(text.contains(r#"iperf3_test_success{source_node="a\"b\\c\nd"} 1 42"#), "{text}");
        assert!(exposition(&samples, false).contains("iperf3_test_failure{reason=\"refused\"} 1\n"));
    }
}
