//! `surplus devnet --demo`: sample buyers keep bidding so the market visibly moves.

use std::time::Duration;

use anyhow::{Context as _, Result};
use rand::{Rng, SeedableRng};
use surplus_client::Client;
use surplus_ledger::SecretKey;
use surplus_market::{Bid, FillRule, Market, Order, SignedOrder};

use crate::devnet_file::DevnetFile;

/// A bid generator over the devnet's buyers and nodes.
pub struct Demo {
    chain_id: String,
    nodes: Vec<Client>,
    buyers: Vec<SecretKey>,
    markets: Vec<Market>,
    rng: rand::rngs::StdRng,
}

impl Demo {
    /// A demo over `file`'s buyers, bidding in the markets the devnet's nodes offer.
    pub fn new(file: &DevnetFile) -> Self {
        let buyers =
            file.buyers.iter().filter_map(|b| crate::keyfile::read_key(&b.key_file).ok()).collect();
        let catalogue = surplus_market::Catalogue::sample();
        let regions: Vec<String> = (0..file.nodes.len())
            .map(|i| catalogue.regions[i % catalogue.regions.len()].id.clone())
            .collect();
        let markets =
            catalogue.markets().into_iter().filter(|m| regions.contains(&m.region)).collect();
        Self {
            chain_id: file.chain_id.clone(),
            nodes: file
                .nodes
                .iter()
                .filter_map(|n| {
                    Client::with_timeouts(&n.api, Duration::from_secs(2), Duration::from_secs(5))
                        .ok()
                })
                .collect(),
            buyers,
            markets,
            rng: rand::rngs::StdRng::from_entropy(),
        }
    }

    /// Sends one to three bids to random nodes; returns how many were accepted.
    pub fn step(&mut self) -> Result<u64> {
        if self.buyers.is_empty() || self.markets.is_empty() || self.nodes.is_empty() {
            anyhow::bail!(
                "the devnet has no buyer keys, no markets or no node with an http:// API"
            );
        }
        let now = crate::now_ms();
        let mut sent = 0;
        for _ in 0..self.rng.gen_range(1..=3) {
            let market = self.markets[self.rng.gen_range(0..self.markets.len())].clone();
            let base: u64 = if market.class.starts_with("gpu") { 2_100_000 } else { 60_000 };
            let bid = Bid {
                market,
                slots: self.rng.gen_range(1..=2),
                hours: self.rng.gen_range(1..=3),
                limit: base + self.rng.gen_range(0..base),
                earliest_ms: now,
                latest_ms: now + 3_600_000,
                fill: FillRule::AtLeast(1),
                expiry_ms: now + 10 * 60_000,
                nonce: self.rng.gen(),
            };
            let buyer = &self.buyers[self.rng.gen_range(0..self.buyers.len())];
            let (entry, _) = SignedOrder::sign(&self.chain_id, Order::Bid(bid), buyer);
            let node = &self.nodes[self.rng.gen_range(0..self.nodes.len())];
            node.submit(&entry).with_context(|| format!("demo bid to {}", node.base()))?;
            sent += 1;
        }
        Ok(sent)
    }
}
