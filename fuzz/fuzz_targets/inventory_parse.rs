//! Inventory YAML through `inventory::parse` (see ../invariants.rs).
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_inventory_parse(data));
