//! iperf3's JSON output through `iperf3::parse` (see ../invariants.rs).
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_iperf3_parse(data));
