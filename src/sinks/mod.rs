//! Where results go: a Prometheus remote-write endpoint, a Pushgateway, and stdout.

pub mod exposition;
pub mod http;
pub mod pushgateway;
pub mod remote_write;

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use crate::error::Result;
use crate::samples::SampleSource;
use http::{Auth, Backoff, ExtraHeaders, PushClient, Sent, TlsSettings};
use pushgateway::{PushgatewaySink, PushgatewayTarget};
use remote_write::{Message, RemoteWriteSink};

/// Where and how the results are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    pub remote_write_url: Option<Url>,
    pub remote_write_message: Message,
    pub pushgateway: Option<PushgatewayTarget>,
    pub auth: Option<Auth>,
    pub headers: ExtraHeaders,
    pub tls: TlsSettings,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of one request after its first attempt.
    pub retries: u32,
    /// Time limit of the whole delivery stage.
    pub deadline: Duration,
    pub backoff: Backoff,
}

/// What the delivery stage is set up from (built by `config`).
#[derive(Debug, Clone, Copy)]
pub struct SinkSettings<'a> {
    pub push: &'a PushSettings,
    /// The run's cluster label: part of the Pushgateway group.
    pub cluster: Option<&'a str>,
    /// A run that only plans: having nowhere to push is then no cause for a warning.
    pub dry_run: bool,
}

/// The configured push targets of a run, sharing one HTTP client.
#[derive(Debug)]
pub struct Sinks {
    client: PushClient,
    remote_write: Option<RemoteWriteSink>,
    pushgateway: Option<PushgatewaySink>,
    deadline: Duration,
}

impl Sinks {
    /// Builds the sinks named by the settings, reading the TLS files and checking the
    /// credential files; fails before anything is measured.
    pub async fn new(settings: SinkSettings<'_>) -> Result<Self> {
        let push = settings.push;
        let client = PushClient::new(push).await?;
        let remote_write =
            push.remote_write_url.clone().map(|url| RemoteWriteSink::new(url, push.remote_write_message));
        let pushgateway = push.pushgateway.as_ref().map(|target| PushgatewaySink::new(target, settings.cluster));
        let urls = push.remote_write_url.iter().chain(push.pushgateway.iter().map(|t| &t.url));
        if push.auth.is_some() && urls.clone().any(|url| url.scheme() == "http") {
            tracing::warn!("credentials are sent over plain http://; use https:// outside a trusted network");
        }
        if urls.count() == 0 && !settings.dry_run {
            tracing::warn!("neither --remote-write-url nor --pushgateway-url: the results are only printed");
        }
        Ok(Sinks { client, remote_write, pushgateway, deadline: push.deadline })
    }

    /// Delivers the run's samples to every sink at once, within the delivery deadline; one
    /// report per sink. Each sink builds the samples batch by batch as it sends them.
    pub async fn deliver<S: SampleSource + ?Sized>(&self, samples: &S) -> Vec<Delivery> {
        if self.remote_write.is_none() && self.pushgateway.is_none() {
            return Vec::new();
        }
        let session = match self.client.session(Instant::now() + self.deadline).await {
            Ok(session) => session,
            Err(error) => {
                tracing::error!(%error, "reading the push credentials; nothing is delivered");
                let count = samples.batches().map(|batch| batch.len()).sum();
                return self.undelivered(count, &format!("reading the credentials: {error}"));
            }
        };
        let remote_write = async {
            match &self.remote_write {
                Some(sink) => Some(sink.push(&session, samples).await),
                None => None,
            }
        };
        let pushgateway = async {
            match &self.pushgateway {
                Some(sink) => Some(sink.push(&session, samples).await),
                None => None,
            }
        };
        let (remote_write, pushgateway) = tokio::join!(remote_write, pushgateway);
        let deliveries: Vec<Delivery> = remote_write.into_iter().chain(pushgateway).collect();
        for delivery in &deliveries {
            tracing::info!(
                sink = delivery.sink,
                url = %delivery.url,
                samples = delivery.samples,
                delivered = delivery.delivered_samples,
                requests = delivery.requests,
                attempts = delivery.attempts,
                "delivery done"
            );
        }
        deliveries
    }

    /// One failed delivery per sink, when nothing could be sent.
    fn undelivered(&self, samples: usize, error: &str) -> Vec<Delivery> {
        let remote_write = self.remote_write.as_ref().map(|s| ("remote_write", s.url()));
        let pushgateway = self.pushgateway.as_ref().map(|s| ("pushgateway", s.group_url()));
        remote_write
            .into_iter()
            .chain(pushgateway)
            .map(|(sink, url)| {
                let mut delivery = Delivery::new(sink, http::redacted(url), samples, 0);
                delivery.errors.push(error.to_string());
                delivery
            })
            .collect()
    }
}

/// What delivering a run's samples to one sink came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `remote_write` or `pushgateway`.
    pub sink: &'static str,
    /// The endpoint, without credentials.
    pub url: String,
    pub samples: usize,
    pub delivered_samples: usize,
    pub requests: usize,
    /// HTTP attempts, retries included.
    pub attempts: u32,
    /// Why some samples were not delivered.
    pub errors: Vec<String>,
    /// Remote-write only: the message the samples went out as last (`v1` or `v2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
    /// Remote-write only: why `--remote-write-message auto` fell back to 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl Delivery {
    pub fn new(sink: &'static str, url: String, samples: usize, requests: usize) -> Self {
        Delivery {
            sink,
            url,
            samples,
            delivered_samples: 0,
            requests,
            attempts: 0,
            errors: Vec::new(),
            message: None,
            fallback: None,
        }
    }

    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.delivered_samples == self.samples
    }

    /// Counts one sent request of `samples` samples.
    pub fn record(&mut self, sent: Sent, samples: usize) {
        self.attempts += sent.attempts;
        match sent.result {
            Ok(()) => self.delivered_samples += samples,
            Err(error) => {
                tracing::error!(sink = self.sink, url = %self.url, samples, %error, "push request failed; its samples are not delivered");
                self.errors.push(error);
            }
        }
    }
}
