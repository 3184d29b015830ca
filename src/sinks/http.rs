//! The HTTP side of delivery, shared by every sink: one client (TLS, credentials, extra headers,
//! `User-Agent`) and one retry loop.
//!
//! Retry policy, a function of the response ([`verdict`]): 2xx is delivered (the body is
//! ignored); 429 and 5xx are retried with the same body; other 4xx are rejected and never
//! retried; connection errors (refused, reset, TLS handshake) and timeouts are retried like 5xx.
//! Retries wait an exponential, jittered, capped [`backoff`] — at least as long as the server's
//! `Retry-After` (seconds or an HTTP date) — and stop after `--push-retries` retries or when the
//! next attempt would start after the delivery deadline (`--push-deadline`).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use super::PushSettings;
use crate::credentials::Secret;
use crate::error::{Error, Result};

pub const USER_AGENT: &str = concat!("iperf3-monitor/", env!("CARGO_PKG_VERSION"));
/// Most bytes of an error response's body that are logged.
pub const MAX_ERROR_BODY: usize = 512;

/// Credentials, as files read when the results are delivered (so a rotated Secret is picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    BearerTokenFile(PathBuf),
    Basic { user: String, password_file: PathBuf },
}

/// Extra headers for every push. Values may be credentials (an API key, a tenant token), so
/// `Debug` shows only the names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtraHeaders(pub Vec<(HeaderName, HeaderValue)>);

impl std::fmt::Debug for ExtraHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| format!("{name}: <redacted>"))).finish()
    }
}

/// How the push servers' certificates are checked, and the client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    /// Certificate and private key files.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub insecure_skip_verify: bool,
}

/// Delays between attempts: exponential from `base`, doubling, never longer than `cap`
/// (unless the server asks for longer with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) }
    }
}

/// The client every sink sends through.
#[derive(Debug)]
pub struct PushClient {
    client: reqwest::Client,
    auth: Option<Auth>,
    /// Values of the extra headers, kept out of logged error bodies.
    header_values: Vec<Secret>,
    request_timeout: Duration,
    retries: u32,
    backoff: Backoff,
}

/// One request: where to, its content headers and body. The body is sent byte for byte the
/// same on every attempt.
#[derive(Debug)]
pub struct Request<'a> {
    pub sink: &'static str,
    pub method: Method,
    pub url: &'a Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// How sending one request ended.
#[derive(Debug)]
pub struct Sent {
    pub attempts: u32,
    /// Why the request was not delivered.
    pub result: std::result::Result<(), String>,
    /// The status of the last response, if one came.
    pub status: Option<StatusCode>,
    /// The headers of the last response (empty if none came): remote-write 2.0 receivers say
    /// there how much they wrote.
    pub headers: HeaderMap,
}

impl Sent {
    fn new(attempts: u32, result: std::result::Result<(), String>, last: &mut (Option<StatusCode>, HeaderMap)) -> Sent {
        Sent { attempts, result, status: last.0, headers: std::mem::take(&mut last.1) }
    }
}

/// One delivery stage: the client, the credentials read for it, and its deadline.
#[derive(Debug)]
pub struct Session<'a> {
    client: &'a PushClient,
    authorization: Option<HeaderValue>,
    /// Strings that must not reach a log: credentials and extra header values.
    secrets: Vec<Secret>,
    deadline: Instant,
}

impl PushClient {
    /// Builds the client: reads the CA bundle and the client certificate, and checks that the
    /// credential files can be read. Errors are configuration errors naming the flag.
    pub async fn new(settings: &PushSettings) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(settings.headers.0.iter().cloned().collect());
        builder = tls(builder, &settings.tls).await?;
        let client = builder.build().map_err(|e| Error::config("--tls-*", describe(e)))?;
        let client = PushClient {
            client,
            auth: settings.auth.clone(),
            header_values: settings.headers.0.iter().filter_map(|(_, v)| v.to_str().ok()).map(Secret::new).collect(),
            request_timeout: settings.request_timeout,
            retries: settings.retries,
            backoff: settings.backoff,
        };
        // Fail before measuring when a credential file is missing; it is read again to deliver.
        client.credentials().await.map_err(|(flag, message)| Error::config(flag, message))?;
        Ok(client)
    }

    /// Starts a delivery stage ending at `deadline`, reading the credentials now so that a
    /// rotated Secret is used.
    pub async fn session(&self, deadline: Instant) -> std::result::Result<Session<'_>, String> {
        let (authorization, secrets) =
            self.credentials().await.map_err(|(flag, message)| format!("{flag}: {message}"))?;
        let mut secrets = secrets;
        secrets.extend(self.header_values.iter().cloned());
        secrets.retain(|s| !s.expose().is_empty());
        Ok(Session { client: self, authorization, secrets, deadline })
    }

    /// The `Authorization` header value and the secret strings it is made of.
    async fn credentials(&self) -> std::result::Result<(Option<HeaderValue>, Vec<Secret>), (&'static str, String)> {
        let (value, secrets) = match &self.auth {
            None => return Ok((None, Vec::new())),
            Some(Auth::BearerTokenFile(path)) => {
                let token = read_secret(path).await.map_err(|e| ("--bearer-token-file", e))?;
                (format!("Bearer {token}"), vec![Secret::new(token)])
            }
            Some(Auth::Basic { user, password_file }) => {
                let password = read_secret(password_file).await.map_err(|e| ("--basic-auth-password-file", e))?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (format!("Basic {encoded}"), vec![Secret::new(password), Secret::new(encoded)])
            }
        };
        let mut header = HeaderValue::from_str(&value).map_err(|_| {
            let flag = match self.auth {
                Some(Auth::BearerTokenFile(_)) => "--bearer-token-file",
                _ => "--basic-auth-password-file",
            };
            (flag, "the file holds characters not allowed in an HTTP header".to_string())
        })?;
        header.set_sensitive(true);
        Ok((Some(header), secrets))
    }
}

/// Applies `--tls-*`: a CA bundle replacing the system roots, a client certificate, or no
/// verification at all.
async fn tls(mut builder: reqwest::ClientBuilder, tls: &TlsSettings) -> Result<reqwest::ClientBuilder> {
    if let Some(path) = &tls.ca_file {
        let pem = read_file(path, "--tls-ca-file").await?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::config("--tls-ca-file", format!("{}: {}", path.display(), describe(e))))?;
        if certs.is_empty() {
            return Err(Error::config("--tls-ca-file", format!("{}: no PEM certificate in it", path.display())));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some((cert, key)) = &tls.client_identity {
        let mut pem = read_file(cert, "--tls-cert-file").await?;
        pem.push(b'\n');
        pem.extend(read_file(key, "--tls-key-file").await?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::config("--tls-cert-file", format!("{} with key {}: {}", cert.display(), key.display(), describe(e)))
        })?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(
            "--tls-insecure-skip-verify is on: the push servers' TLS certificates are NOT verified; anyone on the \
             path can impersonate them and read the credentials. Use --tls-ca-file instead."
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

async fn read_file(path: &std::path::Path, flag: &str) -> Result<Vec<u8>> {
    tokio::fs::read(path).await.map_err(|e| Error::config(flag, format!("cannot read {}: {e}", path.display())))
}

/// A credential file's content without surrounding whitespace (Secrets often end in a newline).
async fn read_secret(path: &std::path::Path) -> std::result::Result<String, String> {
    let text = tokio::fs::read_to_string(path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret.to_string())
}

impl Session<'_> {
    /// Sends one request until it is delivered, rejected, its retries are spent or the
    /// deadline is near.
    pub async fn send(&self, request: &Request<'_>) -> Sent {
        let client = self.client;
        let url = redacted(request.url);
        let mut attempts = 0;
        let mut last = (None, HeaderMap::new());
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let result = Err(format!("the delivery deadline passed before attempt {}", attempts + 1));
                return Sent::new(attempts, result, &mut last);
            }
            attempts += 1;
            let mut builder = client
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone())
                .timeout(client.request_timeout.min(remaining))
                .body(request.body.clone());
            if let Some(authorization) = &self.authorization {
                builder = builder.header(AUTHORIZATION, authorization.clone());
            }
            let (verdict, what) = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after =
                        response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(String::from);
                    let verdict = verdict(status, retry_after.as_deref(), SystemTime::now());
                    last = (Some(status), response.headers().clone());
                    if verdict == Verdict::Delivered {
                        return Sent::new(attempts, Ok(()), &mut last);
                    }
                    let text = response.text().await.unwrap_or_default();
                    (verdict, format!("HTTP {status}: {}", self.scrub(&truncate(text.trim(), MAX_ERROR_BODY))))
                }
                // Refused, reset, TLS handshake, timed out: the receiver may come back.
                Err(e) => {
                    last = (None, HeaderMap::new());
                    (Verdict::Retry(None), self.scrub(&describe(e)))
                }
            };
            let retry = attempts - 1;
            let Verdict::Retry(retry_after) = verdict else {
                return Sent::new(attempts, Err(format!("{what} (rejected; not retried)")), &mut last);
            };
            if retry >= client.retries {
                let result = Err(format!("{what} (gave up after {} retries)", client.retries));
                return Sent::new(attempts, result, &mut last);
            }
            let delay = backoff(client.backoff, retry, retry_after, rand::random::<f64>());
            if Instant::now() + delay >= self.deadline {
                let result = Err(format!(
                    "{what} (gave up after {attempts} attempts: the next, in {:.1}s, would pass the delivery deadline)",
                    delay.as_secs_f64()
                ));
                return Sent::new(attempts, result, &mut last);
            }
            tracing::warn!(
                sink = request.sink,
                %url,
                error = %what,
                retry = retry + 1,
                of = client.retries,
                delay_seconds = delay.as_secs_f64(),
                "push request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Replaces every secret in `text`: a server may echo a credential in its error body.
    fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| text.replace(secret.expose(), "<redacted>"))
    }
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

/// Delay before retry number `retry` (0-based): exponential, capped, with jitter in
/// [half, full] so that many jobs do not retry in step; never shorter than `retry_after`
/// (the deadline, not the cap, bounds what a server may ask for).
pub fn backoff(policy: Backoff, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponential = policy.base.saturating_mul(2u32.saturating_pow(retry)).min(policy.cap);
    let jittered = exponential.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or(Duration::ZERO))
}

/// The URL without user name or password, for logs and reports.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// An error and its causes, without the URL (which may hold credentials).
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

/// The first `max` bytes of `text` (at a character boundary) and its full length.
pub fn truncate(text: &str, max: usize) -> String {
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

    #[test]
    fn retry_policy_follows_the_spec() {
        let now = SystemTime::now();
        for code in [200, 204] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), None, now), Verdict::Delivered);
        }
        for code in [500, 502, 503, 504, 429] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), None, now), Verdict::Retry(None), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 413] {
            assert_eq!(verdict(StatusCode::from_u16(code).unwrap(), Some("5"), now), Verdict::Rejected, "{code}");
        }
        assert_eq!(
            verdict(StatusCode::TOO_MANY_REQUESTS, Some("7"), now),
            Verdict::Retry(Some(Duration::from_secs(7)))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        let Verdict::Retry(Some(wait)) = verdict(StatusCode::SERVICE_UNAVAILABLE, Some(&date), now) else { panic!() };
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(12), "{wait:?}");
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = Backoff::default();
        assert_eq!(backoff(policy, 0, None, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(policy, 0, None, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(policy, 1, None, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(policy, 3, None, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(policy, 20, None, 1.0), policy.cap);
        assert_eq!(backoff(policy, 40, None, 1.0), policy.cap);
        assert_eq!(backoff(policy, 0, Some(Duration::from_secs(9)), 0.3), Duration::from_secs(9));
        assert_eq!(backoff(policy, 0, Some(Duration::from_secs(3600)), 0.3), Duration::from_secs(3600));
    }

    #[test]
    fn credentials_never_reach_reports() {
        let url = Url::parse("https://user:secret@example.invalid/api/v1/write").unwrap();
        assert_eq!(redacted(&url), "https://example.invalid/api/v1/write");
    }

    #[tokio::test]
    async fn debug_output_and_scrubbed_text_hold_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken-s3cret\n").unwrap();
        let mut value = HeaderValue::from_static("h3ader-s3cret");
        value.set_sensitive(true);
        let settings = PushSettings {
            remote_write_url: None,
            remote_write_message: crate::sinks::remote_write::Message::default(),
            pushgateway: None,
            auth: Some(Auth::BearerTokenFile(token)),
            headers: ExtraHeaders(vec![(reqwest::header::HeaderName::from_static("x-key"), value)]),
            tls: TlsSettings::default(),
            request_timeout: Duration::from_secs(1),
            retries: 0,
            deadline: Duration::from_secs(1),
            backoff: Backoff::default(),
        };
        let client = PushClient::new(&settings).await.unwrap();
        let session = client.session(Instant::now()).await.unwrap();
        let debug = format!("{settings:?} {client:?} {session:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert_eq!(session.scrub("got Bearer t0ken-s3cret and h3ader-s3cret"), "got Bearer <redacted> and <redacted>");
    }

    #[test]
    fn long_bodies_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é… (6 bytes in all)");
    }
}
