//! The contracts kept in more than one place, each checked against its one source in the code:
//! the flags (the clap definitions) in the generated flag reference and the delivery guide's
//! table, the metrics (`samples::ALL_METRICS`) in the metric reference and the dashboard checks'
//! list, the failure reasons (`FailureReason::ALL`) in their reference and the
//! `iperf3_test_failure` help, the exit codes (`error::exit_code`) in their reference, the
//! reserved headers (`config::RESERVED_HEADERS`) in the chart and the delivery guide, the default
//! test timeout in the chart, the flags the chart sets in the chart-values reference, and the
//! round lower bound the dry run prints. A flag, metric, reason or exit code added in the code and
//! missed in the docs fails here.
//!
//! `UPDATE_DOCS=1 cargo test --test contracts` rewrites the generated part of
//! docs/reference/flags.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use clap::{ArgAction, Args, CommandFactory, Parser};
use iperf3_monitor::config::{Cli, Command, PushArgs, RESERVED_HEADERS, RESULTS_ALLOWANCE, RunArgs};
use iperf3_monitor::iperf3::FailureReason;
use iperf3_monitor::samples::{ALL_METRICS, TEST_FAILURE};

const FLAG_REFERENCE: &str = "docs/reference/flags.md";
const GENERATED_START: &str = "<!-- generated from the clap definitions by tests/contracts.rs: do not edit; UPDATE_DOCS=1 cargo test --test contracts rewrites it -->";
const GENERATED_END: &str = "<!-- end of the generated reference -->";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The first cells of the table rows of `text` that start with "| `PREFIX", up to a backtick
/// or `{`.
fn first_cells(text: &str, prefix: &str) -> BTreeSet<String> {
    let start = format!("| `{prefix}");
    text.lines()
        .filter_map(|line| line.strip_prefix(&start))
        .map(|rest| format!("{prefix}{}", rest.split(['`', '{']).next().unwrap()))
        .collect()
}

// ------------------------------------------------------------------------------------- flags

fn subcommand(name: &str) -> clap::Command {
    Cli::command().find_subcommand(name).unwrap().clone()
}

/// The user's arguments of a subcommand (not --help).
fn arguments(command: &clap::Command) -> Vec<clap::Arg> {
    command.get_arguments().filter(|a| !matches!(a.get_action(), ArgAction::Help)).cloned().collect()
}

/// Markdown of a table cell: one line, the table's and inline HTML's characters escaped.
fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace('|', "\\|").replace('<', "\\<").replace('*', "\\*")
}

fn flag_cell(arg: &clap::Arg) -> String {
    let mut flag = match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => "-- ".to_string(),
    };
    if arg.get_action().takes_values() {
        let possible: Vec<String> =
            arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_string()).collect();
        let value = if !possible.is_empty() {
            possible.join("|")
        } else if let Some(names) = arg.get_value_names() {
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
        } else {
            arg.get_id().as_str().to_uppercase()
        };
        if arg.get_long().is_some() {
            flag.push(' ');
        }
        flag.push_str(&value);
        if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            flag.push('…');
        }
    }
    format!("`{}`", flag.replace('|', "\\|"))
}

fn meaning_cell(arg: &clap::Arg) -> String {
    let mut text = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
    // The values' own help, unless the flag's help already says what each one does.
    let possible: Vec<_> = arg.get_possible_values().into_iter().filter(|v| !v.is_hide_set()).collect();
    if possible.iter().any(|v| !text.contains(&format!("{}:", v.get_name()))) {
        let values: Vec<String> =
            possible.iter().filter_map(|v| v.get_help().map(|h| format!("`{}`: {h}", v.get_name()))).collect();
        if !values.is_empty() {
            text = format!("{text}. {}", values.join("; "));
        }
    }
    cell(&text)
}

fn default_cell(arg: &clap::Arg) -> String {
    if !arg.get_action().takes_values() {
        return String::new();
    }
    let defaults: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    if defaults.is_empty() { String::new() } else { format!("`{}`", defaults.join(",")) }
}

/// The flag reference, rendered from the clap definitions.
fn render_flag_reference() -> String {
    let mut out = String::new();
    for name in ["run", "with-password"] {
        let command = subcommand(name);
        out.push_str(&format!("\n## `iperf3-monitor {name}`\n\n"));
        if let Some(about) = command.get_about() {
            out.push_str(&format!("{}\n", cell(&about.to_string())));
        }
        // Grouped by help heading, in the order clap shows them.
        let args = arguments(&command);
        let mut headings: Vec<Option<&str>> = Vec::new();
        for arg in &args {
            if !headings.contains(&arg.get_help_heading()) {
                headings.push(arg.get_help_heading());
            }
        }
        for heading in headings {
            out.push_str(&format!("\n### {}\n\n", heading.unwrap_or("Options")));
            out.push_str("| flag | environment variable | default | meaning |\n|---|---|---|---|\n");
            for arg in args.iter().filter(|a| a.get_help_heading() == heading) {
                let env = arg.get_env().map(|e| format!("`{}`", e.to_string_lossy())).unwrap_or_default();
                out.push_str(&format!(
                    "| {} | {env} | {} | {} |\n",
                    flag_cell(arg),
                    default_cell(arg),
                    meaning_cell(arg)
                ));
            }
        }
    }
    out
}

#[test]
fn every_run_flag_has_a_help_line_and_its_environment_variable() {
    let args = arguments(&subcommand("run"));
    assert!(args.len() > 30, "{} flags", args.len());
    for arg in args {
        let long = arg.get_long().expect("run takes flags only");
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(!help.trim().is_empty(), "--{long} has no help line (the /// comment above it)");
        let env = format!("IPERF3_MONITOR_{}", long.to_uppercase().replace('-', "_"));
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some(env),
            "--{long}'s environment variable"
        );
    }
}

#[test]
fn the_flag_reference_is_generated_from_the_clap_definitions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FLAG_REFERENCE);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(GENERATED_START).expect("the generated section's start marker") + GENERATED_START.len();
    let end = text.find(GENERATED_END).expect("the generated section's end marker");
    let rendered = render_flag_reference();
    let rendered = format!("{rendered}\n");
    if text[start..end] == rendered {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{rendered}{}", &text[..start], &text[end..])).unwrap();
        return;
    }
    let current: BTreeSet<&str> = text[start..end].lines().collect();
    let differs: Vec<&str> = rendered.lines().filter(|l| !current.contains(l)).collect();
    panic!(
        "{FLAG_REFERENCE} is not what the clap definitions give (a flag added, removed or its help changed): \
         run `UPDATE_DOCS=1 cargo test --test contracts` and commit it. Lines that differ: {differs:#?}"
    );
}

/// The flags and chart values named in the flag → chart value table of the delivery guide.
fn delivery_table() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = read("docs/guides/sending-results.md");
    let start = text.find("| flag | chart value | meaning |").expect("the delivery guide's flag table");
    let (mut flags, mut values) = (BTreeSet::new(), BTreeSet::new());
    for line in text[start..].lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split(" | ").collect();
        flags.extend(words(cells[0]).filter(|w| w.starts_with("--")));
        values.extend(words(cells[1]).filter(|w| w.starts_with("push.")));
    }
    (flags, values)
}

/// The backticked words of `text`, up to the first space in each.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split('`').skip(1).step_by(2).map(|w| w.split(' ').next().unwrap().to_string())
}

#[test]
fn the_delivery_guide_names_every_delivery_flag_and_real_chart_values() {
    let (named, values) = delivery_table();
    let push: BTreeSet<String> = PushArgs::augment_args(clap::Command::new("push"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let missing: Vec<_> = push.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&push).collect();
    assert!(missing.is_empty(), "docs/guides/sending-results.md's flag table misses {missing:?}");
    assert!(unknown.is_empty(), "docs/guides/sending-results.md's flag table names {unknown:?}, not delivery flags");
    let chart: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("chart/values.yaml")).unwrap();
    for value in values {
        let found = value.split('.').try_fold(&chart, |node, key| node.get(key));
        assert!(found.is_some(), "docs/guides/sending-results.md names chart value {value}, not in chart/values.yaml");
    }
}

// ----------------------------------------------------------------------------------- metrics

fn code_metrics() -> BTreeSet<String> {
    ALL_METRICS.iter().map(|m| m.name.to_string()).collect()
}

#[test]
fn every_metric_is_in_the_metric_reference_and_nothing_else() {
    let documented = first_cells(&read("docs/reference/metrics.md"), "iperf3_");
    let code = code_metrics();
    assert!(
        code.len() > 20 && documented.len() > 20,
        "{} metrics in the code, {} in the docs",
        code.len(),
        documented.len()
    );
    let missing: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(missing.is_empty(), "metrics missing from docs/reference/metrics.md: {missing:?}");
    assert!(unknown.is_empty(), "docs/reference/metrics.md names metrics the job does not write: {unknown:?}");
}

#[test]
fn the_dashboard_checks_know_every_metric() {
    // dashboard_queries.py reads the names from src/samples.rs's metrics! table: all of them.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboards/dashboard_queries.py");
    let output = std::process::Command::new("python3").arg(script).arg("contract-metrics").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "dashboard_queries.py contract-metrics: {stdout}");
    let listed: BTreeSet<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(listed, code_metrics(), "the metrics tests/dashboards/dashboard_queries.py reads from src/samples.rs");
}

// ------------------------------------------------------------------- failure reasons, exit codes

#[test]
fn every_failure_reason_is_in_its_reference_and_the_metric_help() {
    let documented: BTreeSet<String> = read("docs/reference/failure-reasons.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .map(|rest| rest.split('`').next().unwrap().to_string())
        .collect();
    let code: BTreeSet<String> = FailureReason::ALL.iter().map(|r| r.as_str().to_string()).collect();
    assert_eq!(documented, code, "docs/reference/failure-reasons.md's table against FailureReason::ALL");
    for reason in FailureReason::ALL {
        assert!(TEST_FAILURE.help.contains(reason.as_str()), "iperf3_test_failure's help misses {}", reason.as_str());
    }
}

/// The codes of `pub mod exit_code` in src/error.rs.
fn code_exit_codes() -> BTreeSet<u8> {
    let text = read("src/error.rs");
    let start = text.find("pub mod exit_code {").expect("src/error.rs's exit_code module");
    let end = start + text[start..].find("\n}").unwrap();
    text[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .map(|rest| rest.split("= ").nth(1).unwrap().trim_end_matches(';').parse().unwrap())
        .collect()
}

#[test]
fn every_exit_code_is_in_its_reference_and_nothing_else() {
    let documented: BTreeSet<u8> = read("docs/reference/exit-codes.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split(' ').next().unwrap().parse().ok())
        .collect();
    let code = code_exit_codes();
    assert!(code.len() >= 6, "exit codes found in src/error.rs: {code:?}");
    assert_eq!(documented, code, "docs/reference/exit-codes.md's table against src/error.rs's exit_code");
}

// ---------------------------------------------------------------------------- chart and guide

#[test]
fn the_chart_and_the_guide_reserve_the_headers_the_job_reserves() {
    let code: BTreeSet<String> = RESERVED_HEADERS.iter().map(|h| h.to_string()).collect();
    let template = read("chart/templates/cronjob.yaml");
    let line = template.lines().find(|l| l.contains("$reserved := list")).expect("the chart's $reserved list");
    let chart: BTreeSet<String> = line.split('"').skip(1).step_by(2).map(str::to_string).collect();
    assert_eq!(chart, code, "chart/templates/cronjob.yaml's $reserved against config::RESERVED_HEADERS");

    let guide = read("docs/guides/sending-results.md");
    let start = guide.find("`--header` refuses the headers").expect("the guide's reserved headers");
    let end = start + guide[start..].find(" It refuses `Authorization`").unwrap();
    let listed: BTreeSet<String> =
        words(&guide[start..end]).filter(|w| !w.starts_with("--")).map(|w| w.to_lowercase()).collect();
    assert_eq!(listed, code, "docs/guides/sending-results.md's reserved headers against config::RESERVED_HEADERS");
}

fn binary_test_timeout(duration: u64, connect_timeout: Option<u64>) -> u64 {
    let duration = duration.to_string();
    let mut argv = vec!["iperf3-monitor", "run", "--inventory", "x.yaml", "--duration", &duration];
    let connect = connect_timeout.map(|c| c.to_string());
    if let Some(c) = &connect {
        argv.extend(["--connect-timeout", c]);
    }
    let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let args: RunArgs = *args;
    args.into_config(None).unwrap().test.timeout.as_secs()
}

#[test]
fn the_chart_computes_the_default_test_timeout_as_the_job_does() {
    for var in ["IPERF3_MONITOR_CONNECT_TIMEOUT", "IPERF3_MONITOR_TEST_TIMEOUT"] {
        assert!(std::env::var_os(var).is_none(), "unset {var} to run this test: it reads the flags' defaults");
    }
    let helpers = read("chart/templates/_helpers.tpl");
    let start = helpers.find(r#"define "iperf3-monitor.testTimeout""#).expect("the chart's testTimeout");
    let body = &helpers[start..start + helpers[start..].find("{{- end }}\n{{- end }}").unwrap()];
    let formula = "{{- add (int .Values.job.duration) (int (.Values.job.connectTimeout | default ";
    let rest = body[body.find(formula).unwrap_or_else(|| panic!("{body}: not `{formula}C)) A }}`")) + formula.len()..]
        .split_once('\n')
        .unwrap()
        .0;
    // "2)) 2 }}" → the default connect timeout and the allowance.
    let numbers: Vec<u64> =
        rest.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let [chart_connect_default, chart_allowance] = numbers[..] else { panic!("cannot read `{rest}`") };
    let chart =
        |duration: u64, connect: Option<u64>| duration + connect.unwrap_or(chart_connect_default) + chart_allowance;
    for (duration, connect) in [(5, None), (1, None), (30, None), (5, Some(1)), (10, Some(7))] {
        assert_eq!(
            chart(duration, connect),
            binary_test_timeout(duration, connect),
            "default test timeout for job.duration {duration}, job.connectTimeout {connect:?}: \
             chart/templates/_helpers.tpl's iperf3-monitor.testTimeout against RunArgs::into_config"
        );
    }
    assert_eq!(chart_allowance, RESULTS_ALLOWANCE.as_secs());
}

// ----------------------------------------------------------------------------- lower bound

/// The dry run prints the rounds the schedule made beside the lower bound, counted apart.
#[test]
fn the_dry_run_plans_the_lower_bound_of_rounds() {
    let dir = tempfile::tempdir().unwrap();
    for nodes in (1..=9).chain([50]) {
        let mut text = String::from("nodes:\n");
        for i in 0..nodes {
            text.push_str(&format!("  - name: n{i}\n    address: 198.18.7.{}\n", i + 1));
        }
        let inventory = dir.path().join(format!("{nodes}.yaml"));
        std::fs::write(&inventory, text).unwrap();
        let cases: [&[&str]; 4] = [
            &["--pairing", "duplex"],
            &["--pairing", "exclusive"],
            &["--pairing", "auto"],
            &["--mode", "star", "--source-node", "n0"],
        ];
        for extra in cases {
            let mut command = common::monitor_command();
            command.args(["run", "--dry-run", "--protocols", "tcp", "--inventory"]).arg(&inventory).args(extra);
            let output = command.output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout.lines().find(|l| l.starts_with("rounds per protocol: ")).unwrap_or_else(|| {
                panic!("{nodes} nodes {extra:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr))
            });
            let numbers: Vec<&str> = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
            assert_eq!(numbers[0], numbers[1], "{nodes} nodes {extra:?}: {line}");
        }
    }
}

/// The flags the chart's CronJob passes (`- --flag=…` in chart/templates/cronjob.yaml).
fn chart_job_flags() -> BTreeSet<String> {
    read("chart/templates/cronjob.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|rest| format!("--{}", rest.split(['=', ' ']).next().unwrap()))
        .collect()
}

#[test]
fn every_flag_the_chart_sets_is_real_and_mapped_to_its_values_in_the_docs() {
    let run: BTreeSet<String> =
        arguments(&subcommand("run")).iter().filter_map(|a| a.get_long().map(|l| format!("--{l}"))).collect();
    let chart = chart_job_flags();
    assert!(chart.len() > 20, "flags found in the CronJob: {chart:?}");
    let unknown: Vec<_> = chart.difference(&run).collect();
    assert!(unknown.is_empty(), "chart/templates/cronjob.yaml passes flags the job does not have: {unknown:?}");
    let mut documented: BTreeSet<String> =
        words(&read("docs/reference/chart-values.md")).filter(|w| w.starts_with("--")).collect();
    documented.extend(delivery_table().0);
    let missing: Vec<_> = chart.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "flags the chart sets without their chart values in docs/reference/chart-values.md (or the delivery guide's table): {missing:?}"
    );
}

// ------------------------------------------------------------------- what the job really writes

/// The label names of docs/reference/metrics.md's label table; `source_<name>` stands for the
/// node labels.
fn documented_labels() -> BTreeSet<String> {
    let text = read("docs/reference/metrics.md");
    let start = text.find("| label | on | value |").expect("the metric reference's label table");
    text[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| words(l.split(" | ").next().unwrap()).collect::<Vec<_>>())
        .collect()
}

/// A run of three inventory nodes whose iperf3 is a stand-in printing real iperf3 3.12 reports
/// (the fuzz corpus's seeds): TCP and UDP succeed, every test to n3 is refused. Its samples in
/// the text format.
fn exposition_of_a_run() -> String {
    let dir = tempfile::tempdir().unwrap();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/iperf3_parse");
    let seed = |name: &str| seeds.join(name).display().to_string();
    let client = dir.path().join("iperf3");
    std::fs::write(
        &client,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" 198.18.9.3 \"*) exec cat '{}';; esac\n\
             case \" $* \" in *\" --udp \"*) exec cat '{}';; esac\nexec cat '{}'\n",
            seed("seed-refused-3.12.json"),
            seed("seed-udp-3.12-loopback.json"),
            seed("seed-tcp-3.12-loopback.json")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&client, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let inventory = dir.path().join("nodes.yaml");
    std::fs::write(
        &inventory,
        "nodes:\n  - {name: n1, address: 198.18.9.1}\n  - {name: n2, address: 198.18.9.2}\n  - {name: n3, address: 198.18.9.3}\n",
    )
    .unwrap();
    let mut command = common::monitor_command();
    command.args(["run", "--cluster", "lab", "--output", "prometheus", "--duration", "1", "--inventory"]);
    command.arg(&inventory).arg("--iperf3").arg(&client);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn every_metric_and_label_the_job_writes_is_documented() {
    let text = exposition_of_a_run();
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap());
        metrics.insert(name.to_string());
        if let Some(set) = rest.strip_prefix('{') {
            // Label values here are node names, protocols and reasons: no quotes or commas inside.
            for pair in set[..set.find('}').unwrap()].split(',') {
                labels.insert(pair.split('=').next().unwrap().to_string());
            }
        }
    }
    assert!(metrics.contains("iperf3_test_failure") && metrics.contains("iperf3_jitter_seconds"), "{text}");
    let (code, documented) = (code_metrics(), documented_labels());
    let unlisted: Vec<_> = metrics.difference(&code).collect();
    assert!(unlisted.is_empty(), "the job writes metrics that samples::ALL_METRICS does not list: {unlisted:?}");
    let undocumented: Vec<_> = labels.difference(&documented).collect();
    assert!(undocumented.is_empty(), "labels missing from docs/reference/metrics.md's label table: {undocumented:?}");
}
