//! Delivery to a real Prometheus: samples shaped like a run's (built by `samples::build` from
//! TCP measurements between cloud-length node names), encoded and sent by the job's delivery
//! stage (`Sinks`, configured from the same flags as the binary, sending through
//! `RemoteWriteSink`).
//! One push goes straight to Prometheus and is timed; a second, with other label values, goes
//! through a proxy that counts the bytes the client sends (HTTP headers included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Parser as _;
use iperf3_monitor::config::{Cli, Command};
use iperf3_monitor::sinks::Sinks;
use iperf3_monitor::sinks::remote_write;
use reqwest::Url;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    prometheus: Url,
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    samples: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct DeliveryFigures {
    samples: usize,
    requests: usize,
    /// Building the requests and compressing their bodies (no I/O).
    encode_seconds: f64,
    /// `RemoteWriteSink::push`: encoding, sending, Prometheus's answers.
    push_seconds: f64,
    samples_per_second: f64,
    body_bytes: usize,
    wire_bytes: u64,
    wire_bytes_per_sample: f64,
    /// Series Prometheus holds afterwards with the timed push's labels.
    series_in_prometheus: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let write_url = args.prometheus.join("api/v1/write")?;
    let (proxy_url, wire_bytes) = counting_proxy(&write_url).await?;
    for count in args.samples {
        let timed = crate::workload::run_samples(count, &format!("bench-{count}"), SystemTime::now());
        let started = Instant::now();
        let body_bytes: usize = remote_write::encode(&timed).map(|r| remote_write::body(&r).len()).sum();
        let encode_seconds = started.elapsed().as_secs_f64();

        let sinks = delivery_stage(&write_url).await?;
        let started = Instant::now();
        let delivery = sinks.deliver(timed.as_slice()).await.remove(0);
        let push_seconds = started.elapsed().as_secs_f64();
        if !delivery.ok() {
            bail!("pushing {count} samples: {:?}", delivery.errors);
        }

        let counted = crate::workload::run_samples(count, &format!("bench-{count}-counted"), SystemTime::now());
        let sinks = delivery_stage(&proxy_url).await?;
        let before = wire_bytes.load(Ordering::SeqCst);
        let counted_delivery = sinks.deliver(counted.as_slice()).await.remove(0);
        if !counted_delivery.ok() {
            bail!("pushing {count} samples through the proxy: {:?}", counted_delivery.errors);
        }
        let wire = wire_bytes.load(Ordering::SeqCst) - before;

        let series_in_prometheus = series_count(&args.prometheus, &format!("bench-{count}")).await?;
        crate::print_json(&DeliveryFigures {
            samples: count,
            requests: delivery.requests,
            encode_seconds,
            push_seconds,
            samples_per_second: count as f64 / push_seconds,
            body_bytes,
            wire_bytes: wire,
            wire_bytes_per_sample: wire as f64 / count as f64,
            series_in_prometheus,
        })?;
    }
    Ok(())
}

/// The delivery stage of a run with `--remote-write-url url` and no retries.
async fn delivery_stage(url: &Url) -> Result<Sinks> {
    let argv = [
        "iperf3-monitor",
        "run",
        "--inventory",
        "unused.yaml",
        "--push-retries",
        "0",
        // The 1.0 figures, comparable with earlier benches (Debian's Prometheus 2.42 takes only
        // 1.0; the default, auto, would send each first request twice).
        "--remote-write-message",
        "v1",
        "--remote-write-url",
        url.as_str(),
    ];
    let Command::Run(args) = Cli::try_parse_from(argv)?.command else { bail!("not a run") };
    Ok(Sinks::new(args.into_config(None)?.sink_settings()).await?)
}

/// A TCP proxy to `target`'s host and port that counts the bytes clients send through it;
/// the URL to use instead of `target`, and the counter.
async fn counting_proxy(target: &Url) -> Result<(Url, Arc<AtomicU64>)> {
    let upstream =
        format!("{}:{}", target.host_str().context("no host")?, target.port_or_known_default().unwrap_or(80));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut url = target.clone();
    url.set_port(Some(listener.local_addr()?.port())).map_err(|()| anyhow::anyhow!("cannot set the port"))?;
    let counter = Arc::new(AtomicU64::new(0));
    let sent = counter.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(&upstream).await else { continue };
            let sent = sent.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut server_read, mut server_write) = outbound.into_split();
                let upload = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        sent.fetch_add(n as u64, Ordering::SeqCst);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let download = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(upload, download);
            });
        }
    });
    Ok((url, counter))
}

/// Series with `cluster="<cluster>"` that Prometheus holds now.
async fn series_count(prometheus: &Url, cluster: &str) -> Result<u64> {
    let mut url = prometheus.join("api/v1/query")?;
    url.query_pairs_mut().append_pair("query", &format!("count({{cluster=\"{cluster}\"}})"));
    let body: serde_json::Value = reqwest::get(url).await?.json().await?;
    let value = body["data"]["result"][0]["value"][1].as_str().unwrap_or("0");
    Ok(value.parse().unwrap_or(0))
}
