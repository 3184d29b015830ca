//! Flags of the delivery stage: where results are pushed, with which credentials, TLS settings,
//! extra headers and retry limits. Validated into the sinks' [`PushSettings`]; files (credentials,
//! certificates) are only named here and read by the sinks.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::sinks::PushSettings;
use crate::sinks::http::{Auth, Backoff, ExtraHeaders, TlsSettings};
use crate::sinks::pushgateway::PushgatewayTarget;
use crate::sinks::remote_write::Message;

/// Headers a user may not set: the remote-write protocol and the transport own them. The
/// chart refuses the same names in `push.headers` (`tests/contracts.rs` checks the two agree).
pub const RESERVED_HEADERS: &[&str] = &[
    "content-encoding",
    "content-type",
    "content-length",
    "x-prometheus-remote-write-version",
    "user-agent",
    "host",
    "transfer-encoding",
    "connection",
];

/// Flags of `iperf3-monitor run` about delivering the results.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Prometheus remote-write endpoint, e.g. http://prometheus:9090/api/v1/write.
    #[arg(long, env = "IPERF3_MONITOR_REMOTE_WRITE_URL", value_name = "URL")]
    pub remote_write_url: Option<String>,

    /// Remote-write message: v1 (prometheus.WriteRequest, every receiver), v2 (io.prometheus.write.v2.Request: Prometheus 3, Mimir), or auto (v2, falling back to v1 for the rest of the run when the receiver answers 415 or does not confirm the samples written).
    #[arg(long, env = "IPERF3_MONITOR_REMOTE_WRITE_MESSAGE", value_name = "MESSAGE", default_value = "auto",
          value_parser = clap::builder::PossibleValuesParser::new(Message::NAMES))]
    pub remote_write_message: String,

    /// Pushgateway base URL, e.g. http://pushgateway:9091; the run replaces its group there.
    #[arg(long, env = "IPERF3_MONITOR_PUSHGATEWAY_URL", value_name = "URL")]
    pub pushgateway_url: Option<String>,

    /// Job name of the Pushgateway group (/metrics/job/NAME[/cluster/CLUSTER]).
    #[arg(long, env = "IPERF3_MONITOR_PUSHGATEWAY_JOB", value_name = "NAME", default_value = "iperf3-monitor")]
    pub pushgateway_job: String,

    /// File holding a bearer token sent as `Authorization: Bearer …`; read again on every run.
    #[arg(long, env = "IPERF3_MONITOR_BEARER_TOKEN_FILE", value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,

    /// User name for HTTP basic authentication (the password comes from --basic-auth-password-file).
    #[arg(long, env = "IPERF3_MONITOR_BASIC_AUTH_USER", value_name = "USER")]
    pub basic_auth_user: Option<String>,

    /// File holding the basic-auth password; read again on every run.
    #[arg(long, env = "IPERF3_MONITOR_BASIC_AUTH_PASSWORD_FILE", value_name = "FILE")]
    pub basic_auth_password_file: Option<PathBuf>,

    /// Extra HTTP header sent with every push, 'Name: value' (repeatable; newline-separated in the env var), e.g. 'X-Scope-OrgID: tenant-a'.
    #[arg(long = "header", env = "IPERF3_MONITOR_HEADER", value_name = "NAME: VALUE", value_delimiter = '\n')]
    pub headers: Vec<String>,

    /// CA bundle (PEM) that verifies the push servers' certificates, instead of the system roots.
    #[arg(long, env = "IPERF3_MONITOR_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; needs --tls-key-file.
    #[arg(long, env = "IPERF3_MONITOR_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of the client certificate; needs --tls-cert-file.
    #[arg(long, env = "IPERF3_MONITOR_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Do not verify the push servers' TLS certificates (unsafe: anyone on the path can read the credentials).
    #[arg(long, env = "IPERF3_MONITOR_TLS_INSECURE_SKIP_VERIFY")]
    pub tls_insecure_skip_verify: bool,

    /// Timeout of one push request in seconds.
    #[arg(long, env = "IPERF3_MONITOR_PUSH_TIMEOUT", value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub push_timeout: u64,

    /// Retries of a failed push request (5xx, 429, connection errors, timeouts) before giving up.
    #[arg(long, env = "IPERF3_MONITOR_PUSH_RETRIES", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub push_retries: u32,

    /// Time limit in seconds for delivering a run's results, all requests and retries included.
    #[arg(long, env = "IPERF3_MONITOR_PUSH_DEADLINE", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub push_deadline: u64,
}

impl PushArgs {
    /// Checks the combinations clap cannot check alone. Error messages name flags and header
    /// names, never a header value or a file's content.
    pub fn into_settings(self) -> Result<PushSettings> {
        let auth = match (self.bearer_token_file, self.basic_auth_user, self.basic_auth_password_file) {
            (None, None, None) => None,
            (Some(file), None, None) => Some(Auth::BearerTokenFile(file)),
            (None, Some(user), Some(password_file)) if !user.is_empty() => Some(Auth::Basic { user, password_file }),
            (None, Some(_), Some(_)) => {
                return Err(Error::config("--basic-auth-user", "must not be empty"));
            }
            (None, Some(_), None) => {
                return Err(Error::config("--basic-auth-user", "needs --basic-auth-password-file"));
            }
            (None, None, Some(_)) => {
                return Err(Error::config("--basic-auth-password-file", "needs --basic-auth-user"));
            }
            (Some(_), _, _) => {
                return Err(Error::config(
                    "--bearer-token-file",
                    "cannot be combined with basic auth: choose --bearer-token-file or --basic-auth-user",
                ));
            }
        };
        let headers = parse_headers(&self.headers, auth.is_some())?;
        let client_identity = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(Error::config("--tls-cert-file", "needs --tls-key-file")),
            (None, Some(_)) => return Err(Error::config("--tls-key-file", "needs --tls-cert-file")),
        };
        if self.pushgateway_job.is_empty() {
            return Err(Error::config("--pushgateway-job", "must not be empty"));
        }
        let remote_write_url =
            self.remote_write_url.as_deref().map(|u| parse_http_url("--remote-write-url", u)).transpose()?;
        let pushgateway_url =
            self.pushgateway_url.as_deref().map(|u| parse_http_url("--pushgateway-url", u)).transpose()?;
        let remote_write_message = Message::parse(&self.remote_write_message).ok_or_else(|| {
            Error::config("--remote-write-message", format!("must be one of {}", Message::NAMES.join(", ")))
        })?;
        Ok(PushSettings {
            remote_write_url,
            remote_write_message,
            pushgateway: pushgateway_url.map(|url| PushgatewayTarget { url, job: self.pushgateway_job }),
            auth,
            headers,
            tls: TlsSettings {
                ca_file: self.tls_ca_file,
                client_identity,
                insecure_skip_verify: self.tls_insecure_skip_verify,
            },
            request_timeout: Duration::from_secs(self.push_timeout),
            retries: self.push_retries,
            deadline: Duration::from_secs(self.push_deadline),
            backoff: Backoff::default(),
        })
    }
}

/// Parses `Name: value` headers and refuses the ones the sinks own.
fn parse_headers(raw: &[String], has_auth: bool) -> Result<ExtraHeaders> {
    let mut headers = Vec::with_capacity(raw.len());
    for (i, line) in raw.iter().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::config("--header", format!("header #{} has no ':'; write it as 'Name: value'", i + 1)));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            Error::config("--header", format!("header #{} has an invalid name; write it as 'Name: value'", i + 1))
        })?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(Error::config(
                "--header",
                format!("{name} is set by iperf3-monitor itself (remote-write protocol) and cannot be overridden"),
            ));
        }
        if name == reqwest::header::AUTHORIZATION && has_auth {
            return Err(Error::config(
                "--header",
                "Authorization cannot be combined with --bearer-token-file or --basic-auth-user; use one of them",
            ));
        }
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| Error::config("--header", format!("the value of {name} is not a valid HTTP header value")))?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(ExtraHeaders(headers))
}

/// An http(s) URL without credentials in it. Parsed here rather than by clap, whose errors
/// would print the value, credentials included.
fn parse_http_url(flag: &str, value: &str) -> Result<Url> {
    // A value with '@' may hold a password: the error does not repeat it.
    let shown = if value.contains('@') { "the URL".to_string() } else { format!("'{value}'") };
    let url = Url::parse(value).map_err(|e| Error::config(flag, format!("{shown} is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::config(flag, format!("{shown} must be an http:// or https:// URL")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            flag,
            "credentials in the URL would show in the pod spec and the process list; \
             use --basic-auth-user and --basic-auth-password-file",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        push: PushArgs,
    }

    fn settings(argv: &[&str]) -> Result<PushSettings> {
        let mut full = vec!["test"];
        full.extend_from_slice(argv);
        Flags::try_parse_from(full).unwrap().push.into_settings()
    }

    #[test]
    fn headers_are_parsed_and_their_values_hidden_from_debug() {
        let s = settings(&["--header", "X-Scope-OrgID: tenant-a", "--header", "X-Api-Key:s3cr3t:x"]).unwrap();
        let pairs: Vec<(&str, &str)> = s.headers.0.iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
        assert_eq!(pairs, [("x-scope-orgid", "tenant-a"), ("x-api-key", "s3cr3t:x")]);
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("tenant-a"), "{debug}");
        assert!(debug.contains("x-api-key"), "{debug}");
    }

    #[test]
    fn reserved_headers_are_refused_without_echoing_the_value() {
        for reserved in [
            "Content-Encoding: gzip",
            "content-type: text/plain",
            "X-Prometheus-Remote-Write-Version: 2.0.0",
            "User-Agent: secret-agent",
        ] {
            let err = settings(&["--header", reserved]).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(text.contains("--header") && text.contains("cannot be overridden"), "{text}");
            let value = reserved.split_once(": ").unwrap().1;
            assert!(!text.contains(value), "{text} echoes the value");
        }
    }

    #[test]
    fn authorization_header_only_without_other_auth() {
        assert!(settings(&["--header", "Authorization: Bearer x"]).is_ok());
        let err = settings(&["--header", "Authorization: Bearer x", "--bearer-token-file", "/t"]).unwrap_err();
        assert!(err.to_string().contains("Authorization cannot be combined"), "{err}");
        let err = settings(&[
            "--header",
            "authorization: Basic eA==",
            "--basic-auth-user",
            "u",
            "--basic-auth-password-file",
            "/p",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("Authorization cannot be combined"), "{err}");
    }

    #[test]
    fn malformed_headers_name_the_header_not_its_value() {
        let err = settings(&["--header", "no-colon-s3cr3t"]).unwrap_err().to_string();
        assert!(err.contains("header #1 has no ':'") && !err.contains("s3cr3t"), "{err}");
        let err = settings(&["--header", "Bad Name: s3cr3t"]).unwrap_err().to_string();
        assert!(err.contains("invalid name") && !err.contains("s3cr3t"), "{err}");
        let err = settings(&["--header", "X-Ok: bad\u{7f}s3cr3t"]).unwrap_err().to_string();
        assert!(err.contains("value of x-ok") && !err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn auth_and_tls_flags_come_in_pairs() {
        let cases: [(&[&str], &str); 5] = [
            (&["--basic-auth-user", "u"], "--basic-auth-user: needs --basic-auth-password-file"),
            (&["--basic-auth-password-file", "/p"], "--basic-auth-password-file: needs --basic-auth-user"),
            (
                &["--bearer-token-file", "/t", "--basic-auth-user", "u", "--basic-auth-password-file", "/p"],
                "cannot be combined with basic auth",
            ),
            (&["--tls-cert-file", "/c"], "--tls-cert-file: needs --tls-key-file"),
            (&["--tls-key-file", "/k"], "--tls-key-file: needs --tls-cert-file"),
        ];
        for (argv, expected) in cases {
            let err = settings(argv).unwrap_err().to_string();
            assert!(err.contains(expected), "{argv:?}: {err}");
        }
        let s = settings(&["--basic-auth-user", "u", "--basic-auth-password-file", "/p", "--tls-insecure-skip-verify"])
            .unwrap();
        assert_eq!(s.auth, Some(Auth::Basic { user: "u".into(), password_file: "/p".into() }));
        assert!(s.tls.insecure_skip_verify);
    }

    #[test]
    fn urls_are_http_without_credentials_and_errors_do_not_repeat_them() {
        let err = settings(&["--remote-write-url", "ftp://x"]).unwrap_err().to_string();
        assert!(err.contains("--remote-write-url") && err.contains("http://"), "{err}");
        let err = settings(&["--pushgateway-url", "prometheus:9091"]).unwrap_err().to_string();
        assert!(err.contains("--pushgateway-url"), "{err}");
        let err = settings(&["--remote-write-url", "https://u:s3cr3t@example.org/"]).unwrap_err().to_string();
        assert!(err.contains("credentials in the URL") && !err.contains("s3cr3t"), "{err}");
        let err = settings(&["--remote-write-url", "https//u:s3cr3t@example.org/"]).unwrap_err().to_string();
        assert!(err.contains("not a URL") && !err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn every_flag_has_help_and_its_environment_variable() {
        use clap::CommandFactory;
        let help = Flags::command().render_long_help().to_string();
        for flag in [
            "remote-write-url",
            "remote-write-message",
            "pushgateway-url",
            "pushgateway-job",
            "bearer-token-file",
            "basic-auth-user",
            "basic-auth-password-file",
            "header",
            "tls-ca-file",
            "tls-cert-file",
            "tls-key-file",
            "tls-insecure-skip-verify",
            "push-timeout",
            "push-retries",
            "push-deadline",
        ] {
            assert!(help.contains(&format!("--{flag}")), "--{flag} missing from --help");
            let env = format!("IPERF3_MONITOR_{}", flag.to_uppercase().replace('-', "_"));
            assert!(help.contains(&env), "{env} missing from --help");
        }
    }

    #[test]
    fn remote_write_message_defaults_to_auto_and_takes_the_three_names() {
        assert_eq!(settings(&[]).unwrap().remote_write_message, Message::Auto);
        for (name, message) in [("v1", Message::V1), ("v2", Message::V2), ("auto", Message::Auto)] {
            assert_eq!(settings(&["--remote-write-message", name]).unwrap().remote_write_message, message);
        }
        let mut argv = vec!["test", "--remote-write-message", "v3"];
        assert!(Flags::try_parse_from(argv.drain(..)).is_err());
    }

    #[test]
    fn pushgateway_job_defaults_and_limits() {
        let s = settings(&["--pushgateway-url", "http://pg:9091"]).unwrap();
        assert_eq!(s.pushgateway.unwrap().job, "iperf3-monitor");
        assert_eq!(s.deadline, Duration::from_secs(60));
        assert!(settings(&["--pushgateway-job", ""]).is_err());
    }
}
