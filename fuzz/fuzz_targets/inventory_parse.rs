//! An inventory file is operator input, but it must never hang, blow up or panic the job:
//! whatever the text, `parse` returns valid nodes or an error.
#![no_main]

use std::collections::HashSet;

use iperf3_monitor::targets::inventory::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(nodes) = parse(text, 5201, None) {
        assert!(!nodes.is_empty());
        let names: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names.len(), nodes.len(), "names are unique");
        for node in &nodes {
            assert!(node.port > 0);
            assert!(!node.address.is_empty() && !node.address.starts_with('-'), "{node:?}");
            assert!(node.client_command.iter().all(|a| !a.is_empty()), "{node:?}");
        }
    }
});
