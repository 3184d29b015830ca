//! The docs against the code and against themselves: the README stays a front door (at most 300
//! lines); every relative link and `#anchor` resolves; every `iperf3-monitor run …` command shown
//! parses with the real flags; the scripts, test targets and benches shown exist; the chart values
//! shown exist; the README's architecture names files that exist; the inventory example plans a
//! dry run; the dry run shown in docs/concepts/scheduling.md is what the binary prints. Runs the
//! real binary; sends nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use clap::Parser;
use iperf3_monitor::config::Cli;

const README_MAX_LINES: usize = 300;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown pages checked: the README, the CHANGELOG, everything under docs/, and the READMEs
/// of the chart and of the Kubernetes scripts.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md"), repo().join("CHANGELOG.md")];
    let mut dirs = vec![repo().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.extend([repo().join("chart/README.md"), repo().join("scripts/k8s/README.md")]);
    pages.sort();
    pages
}

/// Fenced code blocks of a page: (info string, lines).
fn code_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((info.trim().to_string(), Vec::new())),
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    blocks
}

/// The text of a page outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || line.starts_with("    ") && !line.trim_start().starts_with(['-', '|', '*']) {
            continue;
        }
        // Drop inline code spans.
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                out.push_str(part);
            }
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens,
/// `-1`, `-2` … for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let base: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the Markdown links and images of a page's prose.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn the_readme_is_a_front_door() {
    let lines = read(&repo().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}: move the detail to docs/"
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            let name = page.strip_prefix(repo()).unwrap().display().to_string();
            if !path.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
            } else if !anchor.is_empty()
                && path.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&path)).contains(anchor)
            {
                broken.push(format!("{name}: {target} (no such heading)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// A shell line split into words: quotes and backslashes as the shell reads them; `#` starts a
/// comment.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') if !in_word => break,
            (None, ' ' | '\t') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => (quote, in_word) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, '\\') => {
                word.extend(chars.next());
                in_word = true;
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `iperf3-monitor run …` commands of a page's shell blocks, continuation lines joined.
fn run_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for (info, lines) in code_blocks(text) {
        if !matches!(info.as_str(), "sh" | "bash" | "shell" | "console") {
            continue;
        }
        let joined = lines.join("\n").replace("\\\n", " ");
        commands.extend(
            joined
                .lines()
                .map(|l| l.trim().trim_start_matches("$ "))
                .filter(|l| l.starts_with("iperf3-monitor run"))
                .map(str::to_string),
        );
    }
    commands
}

#[test]
fn every_run_command_in_the_docs_parses_with_the_real_flags() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        for command in run_commands(&read(&page)) {
            if command.contains('…') {
                continue;
            }
            checked += 1;
            if let Err(e) = Cli::try_parse_from(shell_words(&command)) {
                let name = page.strip_prefix(repo()).unwrap().display();
                wrong.push(format!("{name}: `{command}`: {}", e.to_string().lines().next().unwrap_or_default()));
            }
        }
    }
    assert!(checked >= 6, "only {checked} commands found");
    assert!(wrong.is_empty(), "commands in the docs that the binary refuses:\n{}", wrong.join("\n"));
}

fn monitor(args: &[&str]) -> Output {
    common::monitor_command().args(args).output().unwrap()
}

#[test]
fn the_inventory_example_plans_a_dry_run() {
    let text = read(&repo().join("docs/guides/inventory.md"));
    let (_, lines) = code_blocks(&text).into_iter().find(|(info, _)| info == "yaml").expect("the inventory example");
    let dir = tempfile::tempdir().unwrap();
    // The example's password files, made real: the job reads them before it plans.
    let mut yaml = String::new();
    for (i, line) in lines.iter().enumerate() {
        match line.split_once("password_file: ") {
            Some((indent, _)) => {
                let file = dir.path().join(format!("password-{i}"));
                std::fs::write(&file, "secret\n").unwrap();
                yaml.push_str(&format!("{indent}password_file: {}\n", file.display()));
            }
            None => yaml.push_str(&format!("{line}\n")),
        }
    }
    let inventory = dir.path().join("nodes.yaml");
    std::fs::write(&inventory, yaml).unwrap();
    let output = monitor(&["run", "--inventory", inventory.to_str().unwrap(), "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("plan: mesh of 3 nodes"), "{stdout}");
    // n3 is dual-stack: IPv6 is a mesh of one, so it has no rounds, and no pair lacks a family.
    assert!(stdout.contains("IP families ipv4\n"), "{stdout}");
}

/// The dry run that docs/concepts/scheduling.md shows, run again. The run's place in the
/// rotation comes from the clock, so the two lines that name it are compared with their numbers
/// masked.
#[test]
fn the_dry_run_in_the_scheduling_concept_is_what_the_binary_prints() {
    let text = read(&repo().join("docs/concepts/scheduling.md"));
    let (_, lines) = code_blocks(&text)
        .into_iter()
        .find(|(_, lines)| {
            lines.first().is_some_and(|l| l.starts_with("$ iperf3-monitor run --inventory fifty-nodes.yaml"))
        })
        .expect("the dry-run example");
    let dir = tempfile::tempdir().unwrap();
    let mut inventory = String::from("nodes:\n");
    for i in 0..50 {
        inventory.push_str(&format!("  - name: node-{i:03}\n    address: 198.18.100.{}\n", i + 1));
    }
    std::fs::write(dir.path().join("fifty-nodes.yaml"), inventory).unwrap();
    let mut argv = shell_words(lines[0].trim_start_matches("$ "));
    argv.remove(0);
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| if a == "fifty-nodes.yaml" { dir.path().join(a).display().to_string() } else { a })
        .collect();
    let output = monitor(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let mask = |line: &str| -> String {
        if let Some(start) = line.find("from test ").filter(|_| line.starts_with("this run:")) {
            // "from test 301 (round 7)"
            let end = start + line[start..].find(')').unwrap();
            format!("{}from test N (round K{}", &line[..start], &line[end..])
        } else if line.starts_with("round ") {
            // Which rounds are listed, and so their pairs, depends on the clock too.
            "round K (PROTOCOL): PAIRS".to_string()
        } else if line.starts_with("… and ") {
            line.chars().map(|c| if c.is_ascii_digit() { 'N' } else { c }).collect()
        } else {
            line.to_string()
        }
    };
    // A line "…" in the docs stands for any number of printed lines.
    let shown: Vec<String> = lines[1..].iter().map(|l| mask(l)).collect();
    let printed: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(mask).collect();
    let (head, tail) = match shown.iter().position(|l| l == "…") {
        Some(i) => (&shown[..i], &shown[i + 1..]),
        None => (&shown[..], &shown[shown.len()..]),
    };
    let matches = printed.len() >= head.len() + tail.len()
        && printed[..head.len()] == *head
        && printed[printed.len() - tail.len()..] == *tail
        && (shown.len() != head.len() || printed.len() == head.len());
    assert!(
        matches,
        "docs/concepts/scheduling.md's dry run against what the binary prints:\nshown {shown:#?}\nprinted {printed:#?}"
    );
}

/// The words of every line of a page's shell blocks, continuation lines joined.
fn shell_lines(text: &str) -> Vec<Vec<String>> {
    code_blocks(text)
        .into_iter()
        .filter(|(info, _)| matches!(info.as_str(), "sh" | "bash" | "shell" | "console"))
        .flat_map(|(_, lines)| {
            let joined = lines.join("\n").replace("\\\n", " ");
            joined.lines().map(shell_words).collect::<Vec<_>>()
        })
        .collect()
}

/// Shown commands name scripts, test targets and benches that exist: a moved or renamed one
/// fails here, not in a reader's shell.
#[test]
fn every_script_test_and_bench_the_docs_run_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        for words in shell_lines(&read(&page)) {
            for (i, word) in words.iter().enumerate() {
                let path = word.trim_start_matches("./");
                if path.ends_with(".sh") && (path.starts_with("scripts/") || path.starts_with("tests/")) {
                    checked += 1;
                    if !repo().join(path).is_file() {
                        missing.push(format!("{name}: {word}"));
                    }
                }
                let next = words.get(i + 1).map(String::as_str).unwrap_or_default();
                let target = match (i.checked_sub(1).map(|j| words[j].as_str()), word.as_str()) {
                    (Some("test"), "--test") => Some(format!("tests/{next}.rs")),
                    (Some("bench"), "--bench") => Some(format!("benches/{next}.rs")),
                    _ => None,
                };
                if let Some(target) = target.filter(|_| next != "NAME") {
                    checked += 1;
                    if !repo().join(&target).is_file() {
                        missing.push(format!("{name}: {} {word} {next} (no {target})", words[i - 1]));
                    }
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} scripts and targets found");
    assert!(missing.is_empty(), "the docs run what does not exist:\n{}", missing.join("\n"));
}

/// Whether every key of `shown` is a key of `values` at the same place; below an empty mapping
/// (`push.headers: {}`) anything goes.
fn keys_exist(shown: &serde_yaml_ng::Value, values: &serde_yaml_ng::Value, path: &str, wrong: &mut Vec<String>) {
    let (Some(shown), Some(values)) = (shown.as_mapping(), values.as_mapping()) else { return };
    if values.is_empty() {
        return;
    }
    for (key, value) in shown {
        let key = key.as_str().unwrap_or_default();
        let here = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        match values.get(key) {
            Some(inner) => keys_exist(value, inner, &here, wrong),
            None => wrong.push(here),
        }
    }
}

/// The chart values the guides show in YAML exist in chart/values.yaml.
#[test]
fn every_chart_value_the_guides_show_exists() {
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(&repo().join("chart/values.yaml"))).unwrap();
    let top = values.as_mapping().unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for page in pages() {
        for (info, lines) in code_blocks(&read(&page)) {
            if info != "yaml" {
                continue;
            }
            let Ok(shown) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&lines.join("\n")) else { continue };
            // Chart values are the blocks whose top-level keys are all the chart's.
            let Some(map) = shown.as_mapping() else { continue };
            if map.is_empty() || !map.keys().all(|k| k.as_str().is_some_and(|k| top.contains_key(k))) {
                continue;
            }
            checked += 1;
            let mut here = Vec::new();
            keys_exist(&shown, &values, "", &mut here);
            let name = page.strip_prefix(repo()).unwrap().display().to_string();
            wrong.extend(here.into_iter().map(|k| format!("{name}: {k}")));
        }
    }
    assert!(checked >= 5, "only {checked} blocks of chart values found");
    assert!(wrong.is_empty(), "chart values shown in the docs but not in chart/values.yaml:\n{}", wrong.join("\n"));
}

/// The README's architecture block names files and folders that exist: `src/sinks/ http.rs, …`
/// is checked as `src/sinks/http.rs`, `config/: push.rs` below the row's folder as
/// `src/config/push.rs`.
#[test]
fn the_architecture_names_only_paths_that_exist() {
    let readme = read(&repo().join("README.md"));
    let start = readme.find("## Architecture").expect("the README's Architecture section");
    let (_, lines) = code_blocks(&readme[start..]).into_iter().next().expect("the architecture block");
    let (mut missing, mut checked) = (Vec::new(), 0);
    let mut dir = PathBuf::new();
    for line in lines {
        let mut words =
            line.split_whitespace().map(|w| w.trim_end_matches([',', ';', ':', ')']).trim_start_matches('('));
        if !line.starts_with(' ') {
            let first = words.next().unwrap_or_default();
            checked += 1;
            if !first.contains('*') && !repo().join(first).exists() {
                missing.push(first.to_string());
            }
            // A file's row names the files of its folder (src/config.rs → src/config/).
            dir = match first.strip_suffix(".rs") {
                Some(stem) if first.starts_with("src/") => PathBuf::from(stem),
                _ if first.ends_with('/') => PathBuf::from(first),
                _ => PathBuf::from(first).parent().map(Path::to_path_buf).unwrap_or_default(),
            };
        }
        for word in words {
            let sub = word.strip_prefix(dir.file_name().and_then(|d| d.to_str()).unwrap_or("\0")).unwrap_or(word);
            let word = sub.trim_start_matches('/');
            if word.ends_with(".rs") && !word.contains('/') {
                checked += 1;
                if !repo().join(&dir).join(word).exists() && !repo().join(word).exists() {
                    missing.push(dir.join(word).display().to_string());
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} paths found in the architecture block");
    assert!(missing.is_empty(), "the README's architecture names paths that do not exist: {missing:?}");
}
