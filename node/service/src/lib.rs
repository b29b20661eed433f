//! Surplus node service: one node of a consortium as a library.
//!
//! - [`runtime`]: runs a node from its data dir: gossip and consensus (`surplus-net`), the
//!   mempool, the journal of acknowledged entries and their receipts, the provider's duties
//!   (offers, provisioning hooks, credential grants) and the HTTP API (`surplus-web`).
//! - [`config`], [`genesis`], [`inventory`]: the files an operator writes, read and checked
//!   with errors that name the field; [`keyfile`]: key files; [`devnet_file`]: `devnet.json`.
//! - [`owner`]: the one owner of the head, the state and the mempool, on one task fed by a
//!   bounded channel.
//! - [`mempool`], [`receipts`]: the bounded pool of admitted entries and what became of each.
//! - [`disk`]: the data directory's free space and parts, measured every few seconds; below
//!   `[disk] min_free_bytes` new submissions are refused.
//! - [`supervise`]: this node as a vantage point: probes of the other providers' leases and
//!   its down reports.
//! - [`solo`]: a consortium of one in this process, on the real service, for tests.
//! - [`sim`]: a simulated consortium of the real core on a simulated clock, network and disks,
//!   driven by a seed.
//!
//! The `surplus` binary parses arguments and calls this crate.

pub mod capacity;
pub mod clock;
pub mod config;
pub mod consortium;
pub mod devnet_file;
pub mod disk;
pub mod fds;
pub mod genesis;
pub mod inventory;
mod journal;
mod journal_log;
pub mod keyfile;
pub mod linux_hook;
pub mod mempool;
pub mod operator_token;
pub mod owner;
pub mod provision;
pub mod receipts;
pub mod runtime;
pub mod sim;
pub mod solo;
pub mod ssh;
pub mod supervise;
mod turnwatch;
mod webdata;

pub use surplus_net::{consensus, now_ms, p2p};
pub use webdata::EVENT_CAPACITY;

/// The seams hold: service code and the consensus adapter read the time and spawn tasks only
/// through the [`surplus_net::Env`] they are given, so that a test can give them a clock and a
/// runtime it controls. Their tests may do as they like.
#[cfg(test)]
mod seams {
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("source dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source file");
                out.push((p.display().to_string(), text));
            }
        }
    }

    #[test]
    fn service_code_reads_the_time_and_spawns_only_through_its_env() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("../net/src/consensus"), &mut files);
        assert!(files.len() >= 15, "found only {} source files", files.len());
        let mut found = Vec::new();
        for (name, text) in &files {
            // `solo` is not service code: like `main`, it gives the service its runtime (on a
            // thread of its own) and waits for it to start.
            if name.ends_with("/solo.rs") {
                continue;
            }
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
            for (i, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("//") {
                    continue;
                }
                let bare_now = l.match_indices("now_ms()").any(|(p, _)| !l[..p].ends_with('.'));
                let banned =
                    ["SystemTime::now", "std::time::Instant", "tokio::spawn(", "thread::spawn("];
                if bare_now || banned.iter().any(|b| l.contains(b)) {
                    found.push(format!("{name}:{}: {l}", i + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "reads the clock or spawns around the Env:\n{}",
            found.join("\n")
        );
    }
}
