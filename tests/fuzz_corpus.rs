//! Replays the fuzz corpus kept in fuzz/corpus/ (seeds, a minimised set from fuzzing runs, and
//! whatever a run once found) through the parsers with the fuzz targets' invariants, so every
//! test run checks them without cargo fuzz.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/invariants.rs"]
mod invariants;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} breaks an invariant", path.display());
        count += 1;
    }
    assert!(count >= 10, "{target}: only {count} inputs in {}", dir.display());
}

#[test]
fn the_iperf3_corpus_parses_to_sane_results_or_failures() {
    replay("iperf3_parse", invariants::check_iperf3_parse);
}

#[test]
fn the_inventory_corpus_parses_to_valid_nodes_or_errors() {
    replay("inventory_parse", invariants::check_inventory_parse);
}
