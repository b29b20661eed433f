//! Capacity read from the datacenter itself (`[capacity]`, `docs/operations.md`): a source
//! that says how many slots of each resource class the datacenter can give the market now, so
//! that the node offers what telemetry says is unused and stops selling what the datacenter
//! needs back. The inventory still bounds each pool; the source bounds each class.
//!
//! A source answers one JSON object: `exec` (a command, given the classes on stdin, prints
//! `{"vm.4c16g": 12, ...}`), `http` (a GET of `url` answers the same object) or `prometheus`
//! (an instant query whose vector has one sample per class, labelled `class`). The node keeps
//! `headroom_percent` of what is reported for the datacenter's own use.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which kind of source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A local command.
    #[default]
    Exec,
    /// An HTTP endpoint answering the JSON object.
    Http,
    /// A Prometheus server's instant query.
    Prometheus,
}

/// `[capacity]`: where the node reads the datacenter's free capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Source {
    /// `exec`, `http` or `prometheus`.
    pub kind: SourceKind,
    /// `exec`: the program and its arguments.
    pub command: Vec<String>,
    /// `http`: the URL to GET; `prometheus`: the server's base URL (`http://host:9090`).
    pub url: String,
    /// `prometheus`: the query; its result must have one sample per class, with a `class`
    /// label, whose value is the free slots of that class.
    pub query: String,
    /// How often the node reads the source, ms.
    pub interval_ms: u64,
    /// Time allowed for one reading, ms.
    pub timeout_ms: u64,
    /// Share of the reported capacity kept for the datacenter's own use, percent (0 to 99).
    pub headroom_percent: u8,
}

impl Default for Source {
    fn default() -> Self {
        Self {
            kind: SourceKind::Exec,
            command: Vec::new(),
            url: String::new(),
            query: String::new(),
            interval_ms: 10_000,
            timeout_ms: 5_000,
            headroom_percent: 10,
        }
    }
}

impl Source {
    /// Checks the section; the field at fault and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, why: String| Err((format!("capacity.{f}"), why));
        if self.interval_ms < 100 {
            return bad("interval_ms", "must be at least 100".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > self.interval_ms.max(1_000) * 10 {
            return bad("timeout_ms", "must be 1 to ten intervals".into());
        }
        if self.headroom_percent > 99 {
            return bad("headroom_percent", "must be 0 to 99".into());
        }
        match self.kind {
            SourceKind::Exec if self.command.first().is_none_or(|c| c.trim().is_empty()) => bad(
                "command",
                "kind = \"exec\" needs a command, e.g. [\"/usr/local/bin/free-slots\"]".into(),
            ),
            SourceKind::Http | SourceKind::Prometheus if !self.url.starts_with("http://") => {
                bad("url", format!("`{}`: use an http:// URL (a local proxy for TLS)", self.url))
            }
            SourceKind::Prometheus if self.query.trim().is_empty() => bad(
                "query",
                "kind = \"prometheus\" needs a query whose samples carry a `class` label".into(),
            ),
            _ => Ok(()),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Reads the source once: free slots per class, as reported (before the headroom).
    /// `classes` (the catalogue's classes with their attributes) is what an `exec` command
    /// gets on stdin, as `{"classes": [...]}`.
    pub async fn read(&self, classes: &Value) -> Result<BTreeMap<String, u64>, String> {
        match self.kind {
            SourceKind::Exec => {
                let input = serde_json::to_vec(&serde_json::json!({ "classes": classes }))
                    .unwrap_or_default();
                parse_slots(
                    &crate::provision::exec_once(&self.command, &input, self.timeout()).await?,
                )
            }
            SourceKind::Http => {
                parse_slots(&crate::provision::http_call(&self.url, None, self.timeout()).await?)
            }
            SourceKind::Prometheus => {
                let url = format!(
                    "{}/api/v1/query?query={}",
                    self.url.trim_end_matches('/'),
                    urlencode(&self.query)
                );
                parse_prometheus(&crate::provision::http_call(&url, None, self.timeout()).await?)
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{"class": slots, ...}` with non-negative integer slots (a fractional one rounds down).
pub fn parse_slots(v: &Value) -> Result<BTreeMap<String, u64>, String> {
    let Some(m) = v.as_object() else { return Err("the answer is not a JSON object".into()) };
    let mut out = BTreeMap::new();
    for (class, n) in m {
        let slots = match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => f.floor() as u64,
            _ => return Err(format!("{class:?}: {n} is not a number of slots (0 or more)")),
        };
        out.insert(class.clone(), slots);
    }
    Ok(out)
}

/// A Prometheus instant-query answer: one sample per class, labelled `class`.
pub fn parse_prometheus(v: &Value) -> Result<BTreeMap<String, u64>, String> {
    if v["status"] != "success" {
        return Err(format!("prometheus answered {}: {}", v["status"], v["error"]));
    }
    let Some(samples) = v["data"]["result"].as_array() else {
        return Err("prometheus answered no vector (data.result)".into());
    };
    let mut out = BTreeMap::new();
    for s in samples {
        let Some(class) = s["metric"]["class"].as_str() else {
            return Err(format!("a sample without a `class` label: {}", s["metric"]));
        };
        let value = s["value"][1].as_str().and_then(|x| x.parse::<f64>().ok());
        match value {
            Some(f) if f.is_finite() && f >= 0.0 => {
                out.insert(class.to_owned(), f.floor() as u64);
            }
            _ => return Err(format!("{class}: {} is not a number of slots", s["value"])),
        }
    }
    Ok(out)
}

/// What may be sold of each class: the reported slots less the headroom (rounded down).
pub fn sellable(reported: &BTreeMap<String, u64>, headroom_percent: u8) -> BTreeMap<String, u64> {
    let keep = u128::from(100 - headroom_percent.min(99));
    reported.iter().map(|(c, n)| (c.clone(), (u128::from(*n) * keep / 100) as u64)).collect()
}

/// The last reading of the source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// When the last reading succeeded, ms (0: never).
    pub at_ms: u64,
    /// Free slots per class, as the source reported them.
    pub reported: BTreeMap<String, u64>,
    /// What may be sold of each class (the headroom taken off).
    pub sellable: BTreeMap<String, u64>,
    /// Why the last attempt failed, if it did (the last good reading still counts).
    pub error: Option<String>,
}

/// The host's free CPU and memory (`/proc/loadavg`, `/proc/cpuinfo`, `/proc/meminfo` under
/// `proc_dir`) as slots of each class with `vcpu` and `ram_gib` attributes, for a
/// datacenter of `hosts` machines like this one (devnet's sample source): free CPUs are the
/// processors less the one-minute load, free memory is `MemAvailable`. Classes without those
/// attributes, or with GPUs (`gpu_count`, which `/proc` does not count), are not reported.
pub fn host_slots(
    proc_dir: &Path,
    classes: &Value,
    hosts: u64,
) -> Result<BTreeMap<String, u64>, String> {
    let read = |f: &str| {
        std::fs::read_to_string(proc_dir.join(f))
            .map_err(|e| format!("{}/{f}: {e}", proc_dir.display()))
    };
    let load: f64 = read("loadavg")?
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or("loadavg: no one-minute load")?;
    let cpus =
        read("cpuinfo")?.lines().filter(|l| l.starts_with("processor")).count().max(1) as f64;
    let mem_kib: f64 = read("meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .ok_or("meminfo: no MemAvailable")?;
    let free_cpus = (cpus - load).max(0.0) * hosts as f64;
    let free_gib = mem_kib / (1024.0 * 1024.0) * hosts as f64;
    let mut out = BTreeMap::new();
    for c in classes.as_array().into_iter().flatten() {
        let (Some(id), Some(a)) = (c["id"].as_str(), c["attributes"].as_object()) else { continue };
        let (Some(v), Some(m)) =
            (a.get("vcpu").and_then(Value::as_f64), a.get("ram_gib").and_then(Value::as_f64))
        else {
            continue;
        };
        if v <= 0.0 || m <= 0.0 || a.get("gpu_count").and_then(Value::as_u64).unwrap_or(0) > 0 {
            continue;
        }
        out.insert(id.to_owned(), (free_cpus / v).min(free_gib / m).floor() as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_the_headroom_is_kept() {
        let v = serde_json::json!({ "vm.4c16g": 12, "gpu.a100": 0, "vm.2c8g": 3.7 });
        let got = parse_slots(&v).unwrap();
        assert_eq!(got["vm.2c8g"], 3);
        assert!(parse_slots(&serde_json::json!({ "x": -1 })).is_err());
        assert!(parse_slots(&serde_json::json!({ "x": "many" })).is_err());
        assert_eq!(sellable(&got, 25)["vm.4c16g"], 9);
        let p = serde_json::json!({ "status": "success", "data": { "resultType": "vector",
            "result": [{ "metric": { "class": "vm.4c16g" }, "value": [1.7e9, "40"] }] } });
        assert_eq!(parse_prometheus(&p).unwrap()["vm.4c16g"], 40);
        let e = serde_json::json!({ "status": "error", "error": "bad query" });
        assert!(parse_prometheus(&e).unwrap_err().contains("bad query"));
        assert_eq!(
            urlencode("sum by (class) (x{a=\"b\"})"),
            "sum%20by%20%28class%29%20%28x%7Ba%3D%22b%22%7D%29"
        );
    }

    #[test]
    fn the_host_sample_reads_proc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("loadavg"), "1.00 0.5 0.2 1/100 42\n").unwrap();
        std::fs::write(
            dir.path().join("cpuinfo"),
            "processor\t: 0\nprocessor\t: 1\nprocessor\t: 2\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("meminfo"), "MemTotal: 1 kB\nMemAvailable:   33554432 kB\n")
            .unwrap();
        let classes = serde_json::json!([
            { "id": "vm.4c16g", "attributes": { "vcpu": 4, "ram_gib": 16 } },
            { "id": "vm.2c8g", "attributes": { "vcpu": 2, "ram_gib": 8 } },
            { "id": "gpu.a100", "attributes": { "gpu_count": 1, "vcpu": 12, "ram_gib": 120 } },
        ]);
        // 2 free CPUs and 32 GiB per host, 8 hosts: 16 CPUs, 256 GiB.
        let got = host_slots(dir.path(), &classes, 8).unwrap();
        assert_eq!(got, BTreeMap::from([("vm.2c8g".into(), 8), ("vm.4c16g".into(), 4)]));
        // The real /proc answers too.
        if Path::new("/proc/loadavg").exists() {
            host_slots(Path::new("/proc"), &classes, 1).unwrap();
        }
    }
}
