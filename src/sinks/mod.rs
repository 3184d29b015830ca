//! Where results go: a Prometheus remote-write endpoint, and stdout.

pub mod remote_write;
pub mod report;
