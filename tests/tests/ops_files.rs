//! The operator monitoring files (`ops/`, docs/operations.md "Monitoring") name only metrics a
//! real node exports: a two-node devnet runs, dc1 with a capacity source, and every
//! `surplus_*` name in the alerting rules, their unit tests and the Grafana dashboard must be
//! in dc1's `/metrics`. `scripts/check-ops` checks the files' syntax and structure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use surplus_tests::*;

/// The files whose metric names are checked, relative to the workspace root.
const FILES: [&str; 3] = [
    "ops/prometheus/surplus-alerts.yml",
    "ops/prometheus/surplus-alerts.test.yml",
    "ops/grafana/surplus-dashboard.json",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

fn name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every `surplus_[a-z0-9_]+` in `text` that does not continue a longer word.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("surplus_") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let end = text[at..].find(|c: char| !name_char(c)).map_or(text.len(), |n| at + n);
        if end > at + "surplus_".len() {
            names.insert(text[at..end].to_owned());
        }
    }
    names
}

/// The names of the samples of a Prometheus text exposition (comments skipped).
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// A histogram's series named as its family: `_bucket`, `_sum` and `_count` taken off.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

#[test]
fn names_are_found_whole_and_histogram_series_compare_as_their_family() {
    let text = r#"rate(surplus_blocks_committed_total[5m]) x_surplus_no "surplus_peers"
        {"expr": "surplus_order_to_lease_seconds_bucket{le=\"1\"}"} $labels.surplus_"#;
    let found: Vec<String> = names_in(text).into_iter().collect();
    assert_eq!(
        found,
        [
            "surplus_blocks_committed_total",
            "surplus_order_to_lease_seconds_bucket",
            "surplus_peers"
        ]
    );
    let scraped = exported(
        "# TYPE surplus_x histogram\nsurplus_x_bucket{le=\"+Inf\"} 1\nsurplus_x_count 1\n\
         surplus_peers 3\n\n",
    );
    assert_eq!(
        scraped,
        ["surplus_peers", "surplus_x_bucket", "surplus_x_count"].map(String::from).into()
    );
    assert_eq!(family("surplus_x_sum"), "surplus_x");
    assert_eq!(family("surplus_peers"), "surplus_peers");
}

#[test]
fn the_monitoring_files_name_only_metrics_a_node_exports() {
    let root = workspace_root();
    let mut wanted = BTreeSet::new();
    for file in FILES {
        let path = root.join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let names = names_in(&text);
        assert!(!names.is_empty(), "{file} names no surplus_* metric");
        wanted.extend(names.iter().map(|n| (family(n).to_owned(), file)));
    }

    // Two validators, so that dc1 measures its clock against a peer's blocks
    // (surplus_clock_offset_ms); dc1 reads a capacity source (surplus_capacity_*).
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_args(tmp.path(), 2, free_base(40), 50, 100, &["--capacity-from-host"]);
    let nodes = net.start_all();
    let api = &nodes[0].api;

    // Some families appear only after the first measurement (disk), reading (capacity) or
    // blocks of another proposer (clock): wait for them, then name what is still missing.
    let start = Instant::now();
    let (missing, text) = loop {
        let text = api.metrics().unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        let have: BTreeSet<String> = exported(&text).iter().map(|n| family(n).to_owned()).collect();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(name, _)| !have.contains(name))
            .map(|(name, file)| format!("{name} (in {file})"))
            .collect();
        if missing.is_empty() || start.elapsed() > Duration::from_secs(60) {
            break (missing, text);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        missing.is_empty(),
        "the monitoring files name metrics the node does not export:\n{}\n\n/metrics of {}:\n{text}",
        missing.join("\n"),
        api.base()
    );
}
