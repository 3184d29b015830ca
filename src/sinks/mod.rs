//! Where results go: a Prometheus remote-write endpoint, and stdout.

pub mod remote_write;
pub mod report;

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::samples::Sample;
use remote_write::{Delivery, RemoteWriteSink};

/// The configured push targets of a run.
#[derive(Debug)]
pub struct Sinks {
    remote_write: Option<RemoteWriteSink>,
}

impl Sinks {
    /// Builds the sinks named by the configuration; fails before anything is measured.
    pub fn new(config: &RunConfig) -> Result<Self> {
        let remote_write = match &config.remote_write_url {
            Some(url) => Some(
                RemoteWriteSink::new(url.clone(), config.push.clone())
                    .map_err(|e| Error::config("--remote-write-url", e))?,
            ),
            None => None,
        };
        if remote_write.is_none() {
            tracing::warn!("no --remote-write-url: the results are only printed");
        }
        Ok(Sinks { remote_write })
    }

    /// Delivers the run's samples to every sink; one report per sink.
    pub async fn deliver(&self, samples: &[Sample]) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        if let Some(sink) = &self.remote_write {
            let delivery = sink.push(samples).await;
            tracing::info!(
                url = %delivery.url,
                samples = delivery.samples,
                delivered = delivery.delivered_samples,
                requests = delivery.requests,
                "remote-write done"
            );
            deliveries.push(delivery);
        }
        deliveries
    }
}
