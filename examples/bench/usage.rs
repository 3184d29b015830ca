//! The process meter: wall time, the process's own CPU seconds and its peak RSS.
//!
//! `/usr/bin/time` and `getrusage(RUSAGE_CHILDREN)` add the job's own children (every iperf3
//! client) to its CPU time. Here the job is waited for with `WNOWAIT`, so it stays a zombie
//! whose `/proc/PID/stat` still holds its own times (utime, stime) apart from its reaped
//! children's (cutime, cstime). A zombie has no memory left to report, so the peak RSS
//! (`VmHWM`, a high-water mark) is sampled every few milliseconds while it runs, and checked
//! against `ru_maxrss`, the largest of the job and its children.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Pid, SysconfVar, sysconf};
use serde::Serialize;

/// How often the peak RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

#[derive(Debug, Serialize)]
pub struct Usage {
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    pub wall_seconds: f64,
    /// User + system CPU of the process itself.
    pub cpu_seconds: f64,
    /// User + system CPU of the children it reaped (iperf3 clients, `ip netns exec`).
    pub children_cpu_seconds: f64,
    /// Highest `VmHWM` of the process seen while it ran.
    pub peak_rss_bytes: u64,
    /// `ru_maxrss`: the largest peak RSS of the process and any of its descendants.
    pub tree_peak_rss_bytes: u64,
}

pub fn run(out: &Path, command: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut child =
        Command::new(&command[0]).args(&command[1..]).spawn().with_context(|| format!("starting {}", command[0]))?;
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(hwm) = vm_hwm(pid) {
                    peak.fetch_max(hwm, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    // Wait for the exit but leave the zombie in place, to read its own times.
    waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).context("waiting for the command")?;
    let wall_seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (cpu_seconds, children_cpu_seconds) = times(pid)?;
    let status = child.wait()?;
    let tree_peak_rss_bytes = u64::try_from(getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss())? * 1024;
    let usage = Usage {
        command: command.to_vec(),
        exit_code: status.code(),
        wall_seconds,
        cpu_seconds,
        children_cpu_seconds,
        peak_rss_bytes: peak.load(Ordering::Relaxed),
        tree_peak_rss_bytes,
    };
    std::fs::write(out, serde_json::to_string_pretty(&usage)?).with_context(|| format!("writing {}", out.display()))?;
    if usage.peak_rss_bytes == 0 {
        bail!("no RSS sample of {}: it ended within {SAMPLE_EVERY:?}", command[0]);
    }
    Ok(())
}

/// `VmHWM` of a live process, in bytes.
fn vm_hwm(pid: Pid) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// (own, children's) user + system CPU seconds of a process from `/proc/PID/stat`.
fn times(pid: Pid) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').context("no ')' in /proc/PID/stat")? + 2..];
    let fields: Vec<f64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    let ticks = sysconf(SysconfVar::CLK_TCK)?.context("no CLK_TCK")? as f64;
    // stat(5) fields 14-17 (utime stime cutime cstime) are 11-14 after the command name.
    Ok(((fields[11] + fields[12]) / ticks, (fields[13] + fields[14]) / ticks))
}
