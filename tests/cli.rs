//! The command-line contract: flags, environment variables, exit codes, dry runs. Runs the real
//! binary; nothing here sends traffic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use clap::CommandFactory;
use iperf3_monitor::config::Cli;
use serde_json::Value;

fn monitor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = common::monitor_command();
    command.args(args);
    command.envs(env.iter().copied());
    command.output().expect("running iperf3-monitor")
}

fn inventory(dir: &std::path::Path, nodes: usize) -> String {
    let mut text = String::from("nodes:\n");
    for i in 0..nodes {
        text.push_str(&format!("  - name: node-{i:03}\n    address: 198.18.{}.{}\n", 100 + i / 250, 1 + i % 250));
    }
    common::write_file(dir, "inventory.yaml", &text).to_string_lossy().into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let output = monitor(&["run", "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    // Every flag clap knows of, not a hand list (tests/contracts.rs checks the reference too).
    let run = Cli::command().find_subcommand("run").unwrap().clone();
    let flags: Vec<&str> = run.get_arguments().filter_map(|a| a.get_long()).filter(|l| *l != "help").collect();
    assert!(flags.len() > 30, "{flags:?}");
    for flag in flags {
        assert!(help.contains(&format!("--{flag}")), "--{flag} missing from --help");
        let env = format!("IPERF3_MONITOR_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} missing from --help");
    }
}

#[test]
fn dry_run_of_50_nodes_plans_49_rounds_per_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), 50);
    let output = monitor(&["run", "--inventory", &path, "--dry-run"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "plan: mesh of 50 nodes, auto (duplex; exclusive when duplex reads low) pairing, protocols tcp,udp"
        ),
        "{text}"
    );
    assert!(text.contains("rounds per protocol: 49 (lower bound: 49); 50 tests per round"), "{text}");
    assert!(text.contains("this run: 4900 of 4900 tests in the cycle (98 rounds)"), "{text}");
    assert!(text.contains("round 1 (tcp): node-000→node-001, node-001→node-002"), "{text}");
    // A round has 50 tests, 12 of them listed.
    assert!(text.contains("node-011→node-012, … and 38 more\n"), "{text}");

    let output = monitor(&["run", "--inventory", &path, "--dry-run", "--output", "json"], &[]);
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["rounds_per_protocol"], 49);
    assert_eq!(plan["plan"]["rounds"], 98);
    assert_eq!(plan["plan"]["cycle_runs"], 1);
}

#[test]
fn exclusive_pairing_plans_its_own_lower_bound() {
    let dir = tempfile::tempdir().unwrap();
    for (nodes, rounds, tests) in [(50, 98, 25), (5, 10, 2)] {
        let path = inventory(dir.path(), nodes);
        let output =
            monitor(&["run", "--inventory", &path, "--dry-run", "--pairing", "exclusive", "--protocols", "tcp"], &[]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = String::from_utf8_lossy(&output.stdout);
        let expected = format!("rounds per protocol: {rounds} (lower bound: {rounds}); {tests} tests per round");
        assert!(text.contains(&expected), "{text}");
    }
}

#[test]
fn dry_run_shows_the_rotation_when_the_budget_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), 50);
    // 5-s tests are planned at 5.1 s: 240 s hold 47 waves of 50 tests, 2350 of the cycle's
    // 4900, so 3 runs cover the mesh.
    let output =
        monitor(&["run", "--inventory", &path, "--dry-run", "--output", "json"], &[("IPERF3_MONITOR_BUDGET", "240")]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((plan["plan"]["tests"].as_u64(), plan["plan"]["waves"].as_u64()), (Some(2350), Some(47)));
    assert_eq!(plan["plan"]["cycle_runs"], 3);
    let output = monitor(&["run", "--inventory", &path, "--dry-run", "--budget", "240"], &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("coverage: every pair is measured once every 3 run(s), i.e. every 900s"), "{text}");
}

#[test]
fn dry_run_spreads_a_round_longer_than_the_budget_over_several_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), 50);
    // 50 tests a round, 4 at once: 30 s hold 5 waves of 5.1 s, 20 tests, and the next run
    // starts a wave before this one's end: 16 tests further, so a round takes 3.1 runs and the
    // cycle's 4900 tests 306.
    let args = ["run", "--inventory", &path, "--dry-run", "--concurrency", "4", "--budget", "30"];
    let output = monitor(&[&args[..], &["--output", "json"]].concat(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((plan["plan"]["tests"].as_u64(), plan["plan"]["lanes"].as_u64()), (Some(20), Some(4)));
    assert_eq!(plan["plan"]["test_estimate_seconds"], 5.1);
    assert_eq!((plan["plan"]["stride"].as_u64(), plan["plan"]["cycle_runs"].as_u64()), (Some(16), Some(306)));
    assert!(stderr(&output).contains("raise --concurrency"), "{}", stderr(&output));
    let output = monitor(&args, &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("one round of 50 tests takes 3.1 runs"), "{text}");
    assert!(text.contains("every pair is measured once every 306 run(s)"), "{text}");
}

#[test]
fn configuration_errors_name_the_offender_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = inventory(dir.path(), 3);
    let bad = common::write_file(
        dir.path(),
        "bad.yaml",
        "nodes:\n  - name: a\n    address: 198.18.0.1\n  - name: b\n    address: 'x; rm -rf /'\n",
    );
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["run", "--inventory", bad.to_str().unwrap()], vec![], "nodes[1].address"),
        (vec!["run", "--inventory", "/nonexistent/inventory.yaml"], vec![], "cannot read it"),
        (vec!["run", "--inventory", &good, "--mode", "star"], vec![], "--source-node"),
        (vec!["run", "--inventory", &good], vec![("IPERF3_MONITOR_DURATION", "soon")], "--duration"),
        (vec!["run", "--inventory", &good], vec![("IPERF3_MONITOR_PROTOCOLS", "tcp,icmp")], "--protocols"),
        (vec!["run", "--inventory", &good, "--udp-bitrate", "lots"], vec![], "--udp-bitrate"),
        (vec!["run", "--inventory", &good, "--remote-write-url", "prometheus:9090"], vec![], "--remote-write-url"),
        (vec!["run", "--inventory", &good, "--budget", "3", "--dry-run"], vec![], "--budget"),
    ];
    for (args, env, expected) in cases {
        let output = monitor(&args, &env);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{args:?} {env:?}: no '{expected}' in {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{args:?}: printed a report");
    }
}

#[test]
fn without_inventory_or_cluster_discovery_fails_with_exit_4() {
    let home = tempfile::tempdir().unwrap();
    let output = common::monitor_command()
        .args(["run", "--protocols", "tcp"])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("pass --inventory FILE"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn logs_can_be_json_on_stderr_and_stdout_stays_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = inventory(dir.path(), 3);
    let output = monitor(&["run", "--inventory", &path, "--dry-run", "--output", "json", "--log-format", "json"], &[]);
    assert_eq!(output.status.code(), Some(0));
    serde_json::from_slice::<Value>(&output.stdout).expect("stdout is one JSON document");
    for line in stderr(&output).lines() {
        let log: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(log["level"].is_string(), "{line}");
    }
}

#[test]
fn hostile_inventory_files_are_refused_with_exit_2_and_nothing_run() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(17 << 20).unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"nodes:\n  - name: \xc3\x28\n    address: 198.18.0.1\n").unwrap();
    let nested = common::write_file(dir.path(), "nested.yaml", &format!("nodes: {}\n", "[".repeat(500_000)));
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        bomb.push_str(&format!("a{level}: &a{level} [{}]\n", vec![format!("*a{}", level - 1); 9].join(", ")));
    }
    bomb.push_str("nodes: []\n");
    let bomb = common::write_file(dir.path(), "bomb.yaml", &bomb);
    let cases = [
        (huge.to_str().unwrap(), "larger than 16 MiB"),
        ("/dev/zero", "larger than 16 MiB"),
        (binary.to_str().unwrap(), "not UTF-8 text (invalid bytes at offset 17)"),
        (nested.to_str().unwrap(), "nested deeper than 64 levels"),
        (bomb.to_str().unwrap(), "unknown field `a0`"),
        ("/nonexistent/inventory.yaml", "cannot read it"),
    ];
    for (path, expected) in cases {
        let started = std::time::Instant::now();
        let output = monitor(&["run", "--inventory", path], &[]);
        assert_eq!(output.status.code(), Some(2), "{path}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{path}: no '{expected}' in {}", stderr(&output));
        assert!(output.stdout.is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{path}: {:?}", started.elapsed());
    }
}

#[test]
fn bad_environment_values_and_non_utf8_arguments_exit_2() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let good = inventory(dir.path(), 3);
    for (key, value, flag) in [
        ("IPERF3_MONITOR_CONCURRENCY", "0", "--concurrency"),
        ("IPERF3_MONITOR_MODE", "ring", "--mode"),
        ("IPERF3_MONITOR_PORT", "70000", "--port"),
        ("IPERF3_MONITOR_BUDGET", "-1", "--budget"),
        ("IPERF3_MONITOR_TEST_TIMEOUT", "1e9", "--test-timeout"),
        ("IPERF3_MONITOR_PAIRING", "", "--pairing"),
    ] {
        let output = monitor(&["run", "--inventory", &good, "--dry-run"], &[(key, value)]);
        assert_eq!(output.status.code(), Some(2), "{key}={value}: {}", stderr(&output));
        assert!(stderr(&output).contains(flag), "{key}={value}: {}", stderr(&output));
    }
    let output = common::monitor_command()
        .args(["run", "--dry-run", "--inventory", &good, "--cluster"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("invalid UTF-8"), "{}", stderr(&output));
}

#[test]
fn iperf3_credentials_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let good = inventory(dir.path(), 3);
    let password = common::write_file(dir.path(), "password", "s3cret\n");
    let empty = common::write_file(dir.path(), "empty", "\n");
    let pw = password.to_str().unwrap();
    let complete = |password_file| {
        vec!["--iperf3-username", "mon", "--iperf3-public-key-file", "/k.pem", "--iperf3-password-file", password_file]
    };
    type Case<'a> = (Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--iperf3-username", "mon"], "missing: --iperf3-public-key-file, --iperf3-password-file"),
        (vec!["--iperf3-public-key-file", "/k.pem", "--iperf3-password-file", pw], "invalid --iperf3-username"),
        (
            vec!["--iperf3-username", "a,b", "--iperf3-public-key-file", "/k.pem", "--iperf3-password-file", pw],
            "without commas",
        ),
        (complete("/nonexistent/pw"), "cannot read the password file /nonexistent/pw"),
        (complete(empty.to_str().unwrap()), "is empty"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run", "--inventory", &good, "--dry-run"];
        args.extend(&flags);
        let output = monitor(&args, &[]);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{flags:?}: no '{expected}' in {}", stderr(&output));
    }
    let output = monitor(&[&["run", "--inventory", &good, "--dry-run"][..], &complete(pw)].concat(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("s3cret"));
}

#[test]
fn with_password_runs_the_program_with_the_password_in_its_environment_only() {
    let dir = tempfile::tempdir().unwrap();
    let password = common::write_file(dir.path(), "password", "s3cret\n");
    let pw = password.to_str().unwrap();
    // env prints its environment and its (absent) arguments.
    let output = monitor(&["with-password", "--password-file", pw, "--", "env"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let env = String::from_utf8_lossy(&output.stdout);
    assert!(env.lines().any(|l| l == "IPERF3_PASSWORD=s3cret"), "{env}");
    let args = monitor(&["with-password", "--password-file", pw, "--", "printf", "%s|", "$(id)", "a b"], &[]);
    assert_eq!(String::from_utf8_lossy(&args.stdout), "$(id)|a b|", "argv passed as is, no shell");

    let missing = monitor(&["with-password", "--password-file", "/nonexistent/pw", "--", "env"], &[]);
    assert_eq!(missing.status.code(), Some(126));
    assert!(stderr(&missing).contains("cannot read the password file /nonexistent/pw"), "{}", stderr(&missing));
    assert!(missing.stdout.is_empty(), "the program did not run");
    let absent = monitor(&["with-password", "--password-file", pw, "--", "/nonexistent/iperf3"], &[]);
    assert_eq!(absent.status.code(), Some(127), "{}", stderr(&absent));
    let no_program = monitor(&["with-password", "--password-file", pw], &[]);
    assert_eq!(no_program.status.code(), Some(2), "{}", stderr(&no_program));
}
