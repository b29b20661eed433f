//! The operator's inventory (a TOML file of capacity pools) and the planner that turns it into
//! signed offers and keeps them in step with the book and the leases.
//!
//! ```toml
//! [[pool]]
//! class = "vm.4c16g"
//! region = "eu-west-a"
//! slots = 8
//! reserve = 1200          # units per slot-hour
//! min_hours = 1
//! horizon_hours = 168     # offer availability window from now
//! offer_ttl_minutes = 60  # offers are re-published before they expire
//! ```
//!
//! The planner owns this node's offers in the pools' markets: every slot of a pool is covered by
//! exactly one of (a resting offer of this provider, a pending offer, a running lease whose offer
//! has left the book). What is not covered is offered; what is covered twice over (the operator
//! shrank a pool) is cancelled. An offer near its expiry is cancelled and its slots stay counted
//! until the cancel is in the book, so the replacement offered by a later plan never overlaps it
//! (two live offers for the same slots could both be filled: overselling).

#![allow(dead_code)] // The node runtime (wired by the lead) runs the planner.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use surplus_contracts::{LeaseStatus, State};
use surplus_ledger::{Entry, Hash, PublicKey, SecretKey};
use surplus_market::{
    Catalogue, Market, Offer, Order, SignedCancel, SignedOrder, HOUR_MS, MAX_EXPIRY_HORIZON_MS,
    MAX_HOURS, MAX_SLOTS, MAX_WINDOW_HORIZON_MS,
};

use crate::config::ConfigError;

/// Most pools in one inventory (nonces give each pool its own low bits).
pub const MAX_POOLS: usize = 1024;

/// One pool of identical capacity in one market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// The resource class (from the catalogue).
    pub class: String,
    /// The region (from the catalogue).
    pub region: String,
    /// Slots the operator can lease out at once.
    pub slots: u32,
    /// Lowest price accepted, units per slot-hour.
    pub reserve: u64,
    /// Shortest lease accepted, hours.
    #[serde(default = "one")]
    pub min_hours: u32,
    /// How far ahead from now each offer's availability window reaches, hours.
    #[serde(default = "week")]
    pub horizon_hours: u32,
    /// Offers expire this long after they are made and are re-published before that, minutes.
    #[serde(default = "hour")]
    pub offer_ttl_minutes: u32,
}

fn one() -> u32 {
    1
}
fn week() -> u32 {
    168
}
fn hour() -> u32 {
    60
}

impl Pool {
    /// The pool's market.
    pub fn market(&self) -> Market {
        Market::new(&self.class, &self.region)
    }
    /// Offer lifetime, ms.
    pub fn ttl_ms(&self) -> u64 {
        u64::from(self.offer_ttl_minutes) * 60_000
    }
}

/// The operator's inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The pools (`[[pool]]` tables).
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
}

impl Inventory {
    /// Reads an inventory file and checks it against the consortium's catalogue.
    pub fn load(path: &Path, catalogue: &Catalogue) -> Result<Inventory, ConfigError> {
        let text = ConfigError::read(path)?;
        Self::parse(&text, path, catalogue)
    }

    /// Parses and checks inventory TOML; `file` names it in errors.
    pub fn parse(text: &str, file: &Path, catalogue: &Catalogue) -> Result<Inventory, ConfigError> {
        let inv: Inventory =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
        inv.validate(catalogue)
            .map_err(|(field, reason)| ConfigError::invalid(file, field, reason))?;
        Ok(inv)
    }

    fn validate(&self, catalogue: &Catalogue) -> Result<(), (String, String)> {
        if self.pools.len() > MAX_POOLS {
            return Err(("pool".into(), format!("at most {MAX_POOLS} pools")));
        }
        for (i, p) in self.pools.iter().enumerate() {
            let at = |f: &str| format!("pool[{i}].{f}");
            if !catalogue.classes.iter().any(|c| c.id == p.class) {
                let known: Vec<&str> = catalogue.classes.iter().map(|c| c.id.as_str()).collect();
                return Err((
                    at("class"),
                    format!(
                        "{:?} is not in the consortium's catalogue; known classes: {}",
                        p.class,
                        known.join(", ")
                    ),
                ));
            }
            if !catalogue.regions.iter().any(|r| r.id == p.region) {
                let known: Vec<&str> = catalogue.regions.iter().map(|r| r.id.as_str()).collect();
                return Err((
                    at("region"),
                    format!(
                        "{:?} is not in the consortium's catalogue; known regions: {}",
                        p.region,
                        known.join(", ")
                    ),
                ));
            }
            if let Some(j) = self.pools[..i].iter().position(|q| q.market() == p.market()) {
                return Err((
                    format!("pool[{i}]"),
                    format!(
                        "market {} is already described by pool[{j}]: merge the two pools",
                        p.market()
                    ),
                ));
            }
            if p.slots == 0 || p.slots > MAX_SLOTS {
                return Err((at("slots"), format!("must be 1 to {MAX_SLOTS}")));
            }
            if p.min_hours == 0 || p.min_hours > MAX_HOURS {
                return Err((at("min_hours"), format!("must be 1 to {MAX_HOURS}")));
            }
            if p.horizon_hours <= p.min_hours {
                return Err((
                    at("horizon_hours"),
                    format!(
                        "{} must be more than min_hours ({}): the window starts when the offer \
                         is made and a block later it must still fit the shortest lease",
                        p.horizon_hours, p.min_hours
                    ),
                ));
            }
            if u64::from(p.horizon_hours) * HOUR_MS > MAX_WINDOW_HORIZON_MS {
                return Err((
                    at("horizon_hours"),
                    format!("at most {} hours", MAX_WINDOW_HORIZON_MS / HOUR_MS),
                ));
            }
            if p.offer_ttl_minutes < 4 || p.ttl_ms() > MAX_EXPIRY_HORIZON_MS {
                return Err((
                    at("offer_ttl_minutes"),
                    format!("must be 4 to {} minutes", MAX_EXPIRY_HORIZON_MS / 60_000),
                ));
            }
            if surplus_market::cost(p.slots, p.horizon_hours, p.reserve).is_none() {
                return Err((
                    at("reserve"),
                    "slots × horizon_hours × reserve overflows the credit range: lower one".into(),
                ));
            }
        }
        Ok(())
    }

    /// A commented sample with one pool per given market (for `init` and devnet).
    pub fn sample(markets: &[(Market, u32, u64)]) -> String {
        let mut out = String::from(
            "# Surplus inventory: the spare capacity this node offers, one [[pool]] per market.\n\
             # class and region come from the consortium's catalogue; reserve is the lowest price\n\
             # in units per slot-hour (1 credit = 1,000,000 units). Offers cover `horizon_hours`\n\
             # from now and are re-published before they expire (`offer_ttl_minutes`).\n",
        );
        for (m, slots, reserve) in markets {
            out.push_str(&format!(
                "\n[[pool]]\nclass = {:?}\nregion = {:?}\nslots = {slots}\nreserve = {reserve}\n\
                 min_hours = 1\nhorizon_hours = 168\noffer_ttl_minutes = 60\n",
                m.class, m.region
            ));
        }
        out
    }
}

/// What the node should submit to keep its offers in step with its inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// New offers, to sign and submit.
    pub offers: Vec<Offer>,
    /// This provider's resting offers to cancel (by order id).
    pub cancels: Vec<Hash>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.cancels.is_empty()
    }

    /// The plan as signed entries: the cancels, then the offers.
    pub fn entries(&self, chain_id: &str, key: &SecretKey) -> Vec<Entry> {
        let cancels = self.cancels.iter().map(|id| SignedCancel::sign(chain_id, *id, key).0);
        let offers =
            self.offers.iter().map(|o| SignedOrder::sign(chain_id, Order::Offer(o.clone()), key).0);
        cancels.chain(offers).collect()
    }
}

/// Plans the offers and cancels that make this provider's offers cover each pool exactly.
///
/// `pending` are this provider's offers already submitted but not yet in a block (the mempool):
/// they count as covering their slots. Slots are covered by this provider's resting offers in
/// the pool's market (all of an offer's slots, leased or free), by its running leases whose offer
/// has left the book, and by pending offers. Offers with less than a quarter of the pool's TTL
/// left are cancelled; they keep covering until they are gone, and a later plan re-offers their
/// free slots. New offers' nonces are unused by this provider (neither remembered by the book
/// nor pending), so re-planning never replays one.
pub fn plan(
    inv: &Inventory,
    state: &State,
    provider: &PublicKey,
    pending: &[Offer],
    now_ms: u64,
) -> Plan {
    let mut out = Plan::default();
    let mut used_nonces: BTreeSet<u64> = pending.iter().map(|o| o.nonce).collect();
    for (i, pool) in inv.pools.iter().enumerate() {
        let market = pool.market();
        let (_, offers) = state.book.market(&market);
        let mine: Vec<_> = offers
            .iter()
            .filter(|r| r.order.author == *provider)
            .filter_map(|r| match &r.order.order {
                // Gone at the next block anyway; its leases are counted below.
                Order::Offer(o) if o.expiry_ms > now_ms && o.until_ms > now_ms => Some((r, o)),
                _ => None,
            })
            .collect();
        let resting: BTreeSet<Hash> = mine.iter().map(|(r, _)| r.order.id).collect();
        let by_offers: u64 = mine.iter().map(|(r, _)| u64::from(r.remaining)).sum();
        let by_leases: u64 = state
            .leases()
            .filter(|l| {
                l.fill.provider == *provider
                    && l.fill.market == market
                    && l.status == LeaseStatus::Active
                    && l.fill.end_ms > now_ms
                    && !resting.contains(&l.fill.offer)
            })
            .map(|l| u64::from(l.fill.slots))
            .sum();
        let by_pending: u64 = pending
            .iter()
            .filter(|o| o.market == market && o.expiry_ms > now_ms && o.until_ms > now_ms)
            .map(|o| u64::from(o.slots))
            .sum();
        let covered = by_offers + by_leases + by_pending;
        let slots = u64::from(pool.slots);

        // Near expiry: cancel now, replace once gone.
        let margin = pool.ttl_ms() / 4;
        let mut cancelled: BTreeSet<Hash> = BTreeSet::new();
        for (r, o) in &mine {
            if o.expiry_ms.saturating_sub(now_ms) < margin {
                cancelled.insert(r.order.id);
            }
        }
        // Over-covered (the pool shrank): cancel the offers with the most free slots first,
        // until what stays covers at most the pool.
        if covered > slots {
            let mut excess = covered - slots;
            // Cancelling an offer uncovers its free slots (its leases go on covering theirs).
            excess = excess.saturating_sub(
                mine.iter()
                    .filter(|(r, _)| cancelled.contains(&r.order.id))
                    .map(|(r, _)| u64::from(r.free_at(now_ms)))
                    .sum(),
            );
            let mut by_free: Vec<_> =
                mine.iter().filter(|(r, _)| !cancelled.contains(&r.order.id)).collect();
            by_free.sort_by_key(|(r, _)| (std::cmp::Reverse(r.free_at(now_ms)), r.order.id));
            for (r, _) in by_free {
                if excess == 0 {
                    break;
                }
                let free = u64::from(r.free_at(now_ms));
                if free > 0 {
                    cancelled.insert(r.order.id);
                    excess = excess.saturating_sub(free);
                }
            }
        }
        out.cancels.extend(cancelled.iter().copied());

        let uncovered = slots.saturating_sub(covered);
        if uncovered == 0 {
            continue;
        }
        let mut nonce = now_ms.saturating_mul(MAX_POOLS as u64).saturating_add(i as u64);
        while state.book.nonce_used(provider, nonce) || used_nonces.contains(&nonce) {
            nonce = nonce.wrapping_add(MAX_POOLS as u64);
        }
        used_nonces.insert(nonce);
        out.offers.push(Offer {
            market,
            // At most pool.slots, which is at most MAX_SLOTS.
            slots: u32::try_from(uncovered).unwrap_or(pool.slots),
            from_ms: now_ms,
            until_ms: now_ms + u64::from(pool.horizon_hours) * HOUR_MS,
            reserve: pool.reserve,
            min_hours: pool.min_hours,
            expiry_ms: now_ms + pool.ttl_ms(),
            nonce,
        });
    }
    out.cancels.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::{Allocation, BlockMaker, Genesis, Params};
    use surplus_ledger::testutil::key;
    use surplus_market::{Bid, FillRule};

    const T0: u64 = 1_700_000_000_000;

    fn inv(slots: u32) -> Inventory {
        Inventory::parse(
            &format!(
                "[[pool]]\nclass = \"vm.4c16g\"\nregion = \"eu-west-a\"\nslots = {slots}\n\
                 reserve = 100\nhorizon_hours = 48\noffer_ttl_minutes = 60\n"
            ),
            Path::new("inventory.toml"),
            &Catalogue::sample(),
        )
        .unwrap()
    }

    struct Chain {
        maker: BlockMaker,
        now: u64,
        provider: SecretKey,
    }

    impl Chain {
        fn new() -> Self {
            let provider = key("provider", 0);
            let genesis = Genesis {
                validators: vec![key("validator", 0).public()],
                params: Params {
                    catalogue: Catalogue::sample(),
                    treasury: key("treasury", 0).public(),
                    fee_bps: 0,
                    penalty_bps: 0,
                },
                allocations: vec![Allocation {
                    account: key("buyer", 0).public(),
                    amount: 1_000_000_000,
                }],
            };
            let (_, maker) = BlockMaker::genesis("inv-test", &genesis, T0).unwrap();
            Self { maker, now: T0, provider }
        }
        fn state(&self) -> &State {
            &self.maker.state
        }
        fn block(&mut self, at: u64, entries: Vec<Entry>) {
            self.now = at;
            let (_, applied) = self.maker.next(&entries, at, key("validator", 0).public()).unwrap();
            assert!(applied.refused.is_empty(), "{:?}", applied.refused);
        }
        fn plan(&self, inv: &Inventory, pending: &[Offer]) -> Plan {
            plan(inv, self.state(), &self.provider.public(), pending, self.now)
        }
        fn submit(&mut self, p: &Plan, at: u64) {
            let entries = p.entries("inv-test", &self.provider);
            self.block(at, entries);
        }
        fn mine(&self) -> Vec<(u32, u32)> {
            let m = Market::new("vm.4c16g", "eu-west-a");
            self.state()
                .book
                .market(&m)
                .1
                .iter()
                .map(|r| (r.remaining, r.free_at(self.now)))
                .collect()
        }
        fn bid(&mut self, slots: u32, hours: u32, nonce: u64, at: u64) {
            let bid = Order::Bid(Bid {
                market: Market::new("vm.4c16g", "eu-west-a"),
                slots,
                hours,
                limit: 150,
                earliest_ms: at,
                latest_ms: at + HOUR_MS,
                fill: FillRule::AllOrNone,
                expiry_ms: at + HOUR_MS,
                nonce,
            });
            let (e, _) = SignedOrder::sign("inv-test", bid, &key("buyer", 0));
            self.block(at, vec![e]);
        }
    }

    #[test]
    fn offers_the_pool_once_and_not_again() {
        let inv = inv(8);
        let mut c = Chain::new();
        let p = c.plan(&inv, &[]);
        assert!(p.cancels.is_empty());
        assert_eq!(p.offers.len(), 1);
        let o = &p.offers[0];
        assert_eq!((o.slots, o.reserve, o.from_ms), (8, 100, T0));
        assert_eq!(o.until_ms, T0 + 48 * HOUR_MS);
        assert_eq!(o.expiry_ms, T0 + 3_600_000);
        // Pending in the mempool: nothing more.
        assert!(c.plan(&inv, &p.offers).is_empty());
        c.submit(&p, T0 + 1_000);
        assert_eq!(c.mine(), vec![(8, 8)]);
        // In the book: nothing more, from the same state, twice.
        assert!(c.plan(&inv, &[]).is_empty());
        assert!(c.plan(&inv, &[]).is_empty());
    }

    #[test]
    fn leased_capacity_is_not_reoffered_until_the_lease_ends() {
        let inv = inv(8);
        let mut c = Chain::new();
        let p = c.plan(&inv, &[]);
        c.submit(&p, T0 + 1_000);
        c.bid(3, 1, 1, T0 + 2_000);
        let leases: Vec<_> = c.state().leases().cloned().collect();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].fill.slots, 3);
        assert_eq!(c.mine(), vec![(8, 5)]);
        // The offer covers the leased slots and the free ones: nothing to do.
        assert!(c.plan(&inv, &[]).is_empty());

        // 50 minutes in: less than a quarter of the TTL left, so the offer is cancelled and
        // nothing is offered while it still rests.
        let t = T0 + 1_000 + 50 * 60_000;
        c.block(t, vec![]);
        let p = c.plan(&inv, &[]);
        assert_eq!(p.cancels.len(), 1);
        assert!(p.offers.is_empty(), "no overlap with the offer being cancelled");
        c.submit(&p, t + 1_000);
        assert_eq!(c.mine(), vec![]);
        // Now the lease alone covers its 3 slots: 5 are re-offered.
        let p = c.plan(&inv, &[]);
        assert_eq!(p.offers.len(), 1);
        assert_eq!(p.offers[0].slots, 5);
        assert!(p.cancels.is_empty());
        c.submit(&p, t + 2_000);
        assert!(c.plan(&inv, &[]).is_empty());

        // The lease (1 hour) ends while the 5-slot offer still rests: its 3 slots are offered
        // again, beside it.
        let end = leases[0].fill.end_ms;
        c.block(end + 1, vec![]);
        assert!(c.state().leases().all(|l| l.status != LeaseStatus::Active));
        assert_eq!(c.mine(), vec![(5, 5)]);
        let p = c.plan(&inv, &[]);
        assert_eq!(p.offers.len(), 1);
        assert_eq!(p.offers[0].slots, 3);
        c.submit(&p, end + 2);
        let mut mine = c.mine();
        mine.sort();
        assert_eq!(mine, vec![(3, 3), (5, 5)]);
        assert!(c.plan(&inv, &[]).is_empty());
    }

    #[test]
    fn a_lease_ending_on_a_resting_offer_frees_its_slots_in_place() {
        let inv = inv(4);
        let mut c = Chain::new();
        // A long TTL so the offer outlives the lease.
        let mut inv_long = inv.clone();
        inv_long.pools[0].offer_ttl_minutes = 600;
        let p = c.plan(&inv_long, &[]);
        c.submit(&p, T0 + 1_000);
        c.bid(4, 1, 1, T0 + 2_000);
        assert_eq!(c.mine(), vec![(4, 0)]);
        assert!(c.plan(&inv_long, &[]).is_empty());
        c.block(T0 + 2_000 + HOUR_MS, vec![]);
        // The offer holds its slots again; nothing new is needed.
        assert_eq!(c.mine(), vec![(4, 4)]);
        assert!(c.plan(&inv_long, &[]).is_empty());
    }

    #[test]
    fn a_shrunk_pool_cancels_free_offers_and_a_grown_one_offers_more() {
        let mut c = Chain::new();
        let p = c.plan(&inv(8), &[]);
        c.submit(&p, T0 + 1_000);
        // Grown: offer the difference.
        let p = c.plan(&inv(10), &[]);
        assert_eq!(p.offers.len(), 1);
        assert_eq!(p.offers[0].slots, 2);
        assert_ne!(
            p.offers[0].nonce,
            c.state().book.market(&inv(8).pools[0].market()).1[0].order.order.nonce()
        );
        c.submit(&p, T0 + 2_000);
        assert!(c.plan(&inv(10), &[]).is_empty());
        // Shrunk to 3: the 8-slot offer goes; a later plan offers 3 again once it is gone.
        let p = c.plan(&inv(3), &[]);
        assert!(p.offers.is_empty());
        assert_eq!(p.cancels.len(), 1);
        c.submit(&p, T0 + 3_000);
        assert_eq!(c.mine(), vec![(2, 2)]);
        let p = c.plan(&inv(3), &[]);
        assert_eq!(p.offers[0].slots, 1);
    }

    #[test]
    fn nonces_are_never_reused() {
        let inv = inv(8);
        let mut c = Chain::new();
        let p1 = c.plan(&inv, &[]);
        c.submit(&p1, T0);
        // Cancel it at the same block time, then re-plan at that same time: the book remembers
        // the nonce, so the new offer takes another.
        let (e, _) = SignedCancel::sign(
            "inv-test",
            c.state().book.orders().next().unwrap().order.id,
            &c.provider,
        );
        c.block(T0, vec![e]);
        let p2 = c.plan(&inv, &[]);
        assert_ne!(p2.offers[0].nonce, p1.offers[0].nonce);
        assert!(c.state().book.nonce_used(&c.provider.public(), p1.offers[0].nonce));
        c.submit(&p2, T0);
        assert_eq!(c.mine(), vec![(8, 8)]);
    }

    #[test]
    fn inventory_errors_name_the_pool_and_field() {
        let cat = Catalogue::sample();
        let err =
            |t: &str| Inventory::parse(t, Path::new("inv.toml"), &cat).unwrap_err().to_string();
        let pool =
            "[[pool]]\nclass = \"vm.4c16g\"\nregion = \"eu-west-a\"\nslots = 8\nreserve = 1\n";
        let e = err(&pool.replace("vm.4c16g", "vm.9"));
        assert!(e.contains("pool[0].class: \"vm.9\" is not in the consortium's catalogue"), "{e}");
        assert!(e.contains("vm.4c16g"), "{e}");
        let e = err(&format!("{pool}\n{}", pool.replace("eu-west-a", "mars")));
        assert!(e.contains("pool[1].region") && e.contains("eu-west-a"), "{e}");
        let e = err(&format!("{pool}\n{pool}"));
        assert!(
            e.contains("pool[1]: market vm.4c16g@eu-west-a is already described by pool[0]"),
            "{e}"
        );
        let e = err(&pool.replace("slots = 8", "slots = 0"));
        assert!(e.contains("pool[0].slots"), "{e}");
        let e = err(&format!("{pool}horizon_hours = 1\n"));
        assert!(e.contains("pool[0].horizon_hours"), "{e}");
        let e = err(&format!("{pool}colour = 1\n"));
        assert!(e.contains("inv.toml:6: pool[0].colour: unknown field"), "{e}");
        let e = err(&format!("{pool}\n[[pool]]\nclass = 3\n"));
        assert!(e.contains("pool[1].class: invalid type"), "{e}");
        // The sample parses.
        let s = Inventory::sample(&[(Market::new("vm.2c8g", "us-east-b"), 4, 900)]);
        let i = Inventory::parse(&s, Path::new("s.toml"), &cat).unwrap();
        assert_eq!(i.pools[0].slots, 4);
        assert_eq!(i.pools[0].horizon_hours, 168);
    }
}
