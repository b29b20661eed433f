//! Network namespaces for partition tests: each node in a namespace of its own, joined to the
//! others by a bridge, and reachable from the test by a management link that partitions leave
//! alone.
//!
//! For a lab named `spN` (N from this process id):
//! - `spN-hub` holds the bridge `br0` and one veth port per node, `n<i>`.
//! - `spN-<i>` holds node i: `eth0` (10.231.0.(i+1)/24, the other end of `n<i>`), and `mgmt`
//!   (10.M.i.2/30), whose other end `spNm<i>` is in the test's namespace as 10.M.i.1/30.
//!
//! No namespace has a default route, so no traffic leaves the lab. [`NetLab::isolate`] sets a
//! node's bridge port down: the node keeps its management link (the test still reads its API)
//! and reaches no peer, and no peer reaches it. Needs root (`ip netns add`); everything the lab
//! made goes when it is dropped.

use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::Devnet;

/// The namespaces and links of one lab.
pub struct NetLab {
    name: String,
    nodes: usize,
    mgmt_octet: u8,
}

/// Runs `ip ARGS`, failing with what it printed.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Deletes the namespaces of labs whose test process is gone (a run killed before it could drop
/// its lab); their links go with them. A stale lab's management addresses once made a later
/// run's node unreachable.
fn sweep_stale_labs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else { continue };
        let Some(pid) = ns.strip_prefix("sp").and_then(|r| r.split('-').next()) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|p| {
            p == std::process::id() || std::path::Path::new(&format!("/proc/{p}")).exists()
        });
        if !alive {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// The second octet of the management links, 200 to 229, starting from one picked by `pid` and
/// skipping any that an address of this host already uses. Never 231, the bridge's
/// 10.231.0.0/24 (a management link of 10.231.0.x/30 overlapped it and left node 0
/// unreachable, once in 50 runs).
fn free_mgmt_octet(pid: u32) -> Result<u8> {
    let out = Command::new("ip").args(["-br", "addr"]).output().context("run ip (iproute2)")?;
    let used = String::from_utf8_lossy(&out.stdout).into_owned();
    (0..30)
        .map(|k| 200 + ((pid + k) % 30) as u8)
        .find(|m| !used.contains(&format!(" 10.{m}.")))
        .context("every management range 10.200-229.x.x is in use")
}

impl NetLab {
    /// Makes a lab for `nodes` nodes (at most 250).
    pub fn new(nodes: usize) -> Result<Self> {
        if nodes == 0 || nodes > 250 {
            bail!("a lab holds 1 to 250 nodes, not {nodes}");
        }
        let pid = std::process::id();
        sweep_stale_labs();
        let lab =
            Self { name: format!("sp{}", pid % 100_000), nodes, mgmt_octet: free_mgmt_octet(pid)? };
        lab.build().context("building the network namespaces (this needs root)")?;
        Ok(lab)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.name)
    }

    fn port(i: usize) -> String {
        format!("n{i}")
    }

    fn mgmt_link(&self, i: usize) -> String {
        format!("{}m{i}", self.name)
    }

    fn build(&self) -> Result<()> {
        let hub = self.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..self.nodes {
            let ns = self.netns(i);
            let port = Self::port(i);
            let mgmt = self.mgmt_link(i);
            let cluster = format!("{}/24", self.cluster_ip(i));
            let (outer, inner) =
                (format!("10.{}.{i}.1/30", self.mgmt_octet), format!("{}/30", self.mgmt_ip(i)));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", "name", &port, "netns", &hub, "type", "veth", "peer", "name",
                "eth0", "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "addr", "add", &cluster, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["link", "add", &mgmt, "type", "veth", "peer", "name", "mgmt", "netns", &ns])?;
            ip(&["addr", "add", &outer, "dev", &mgmt])?;
            ip(&["link", "set", &mgmt, "up"])?;
            ip(&["-n", &ns, "addr", "add", &inner, "dev", "mgmt"])?;
            ip(&["-n", &ns, "link", "set", "mgmt", "up"])?;
        }
        Ok(())
    }

    /// Node `i`'s namespace (for [`crate::NodeProc::start_in`]).
    pub fn netns(&self, i: usize) -> String {
        format!("{}-{i}", self.name)
    }

    /// Node `i`'s address on the bridge, where its peers reach it.
    pub fn cluster_ip(&self, i: usize) -> String {
        format!("10.231.0.{}", i + 1)
    }

    /// Node `i`'s address on its management link, where the test reaches it.
    pub fn mgmt_ip(&self, i: usize) -> String {
        format!("10.{}.{i}.2", self.mgmt_octet)
    }

    /// Cuts node `i` off from every peer (its bridge port goes down).
    pub fn isolate(&self, i: usize) -> Result<()> {
        ip(&["-n", &self.hub(), "link", "set", &Self::port(i), "down"])
    }

    /// Joins node `i` to its peers again.
    pub fn heal(&self, i: usize) -> Result<()> {
        ip(&["-n", &self.hub(), "link", "set", &Self::port(i), "up"])
    }

    /// Moves the devnet `net` into the lab: every node's peer addresses (gossip and consensus,
    /// its own and the others') become bridge addresses, and its API listens on all of its
    /// namespace's addresses. Returns each node's API base URL over its management link.
    pub fn place(&self, net: &Devnet) -> Result<Vec<String>> {
        let nodes = net.file["nodes"].as_array().context("devnet.json: nodes")?;
        if nodes.len() != self.nodes {
            bail!("the lab has {} nodes, the devnet {}", self.nodes, nodes.len());
        }
        let port_of = |v: &serde_json::Value, key: &str, after: &str| -> Result<String> {
            let s = v[key].as_str().with_context(|| format!("devnet.json: {key}"))?;
            let rest = s.split(after).nth(1).with_context(|| format!("{key} {s}"))?;
            Ok(rest.split(['/', '"']).next().unwrap_or_default().to_owned())
        };
        // (from, to) pairs, each ending in a port and matched only before `"` or `/`.
        let mut swaps = Vec::new();
        let mut apis = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let cluster = self.cluster_ip(i);
            let p2p = port_of(n, "p2p", "/tcp/")?;
            let consensus =
                port_of(n, "consensus", "/udp/").or_else(|_| port_of(n, "consensus", "/tcp/"))?;
            let http = port_of(n, "api", "127.0.0.1:")?;
            for (proto, port) in
                [("tcp", &p2p), ("udp", &p2p), ("tcp", &consensus), ("udp", &consensus)]
            {
                swaps.push((
                    format!("/ip4/127.0.0.1/{proto}/{port}"),
                    format!("/ip4/{cluster}/{proto}/{port}"),
                ));
            }
            swaps.push((format!("127.0.0.1:{http}"), format!("0.0.0.0:{http}")));
            apis.push(format!("http://{}:{http}", self.mgmt_ip(i)));
        }
        for n in nodes {
            let dir = std::path::Path::new(n["data_dir"].as_str().context("data_dir")?);
            let file = dir.join("config.toml");
            let mut text = std::fs::read_to_string(&file).context("read config.toml")?;
            for (from, to) in &swaps {
                for end in ['"', '/'] {
                    text = text.replace(&format!("{from}{end}"), &format!("{to}{end}"));
                }
            }
            if let Some(line) =
                text.lines().find(|l| !l.starts_with('#') && l.contains("127.0.0.1"))
            {
                bail!("{}: a loopback address is left: {line}", file.display());
            }
            std::fs::write(&file, text).context("write config.toml")?;
        }
        Ok(apis)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = ip(&["link", "del", &self.mgmt_link(i)]);
            let _ = ip(&["netns", "del", &self.netns(i)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}
