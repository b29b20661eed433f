//! The operator's inventory: a TOML file of capacity pools, read and checked against the
//! catalogue. What the node offers from it is decided by `surplus_contracts::provider::plan`.
//!
//! ```toml
//! [[pool]]
//! name = "pve-a"          # optional (default: the market); what maintenance windows name
//! class = "vm.4c16g"
//! region = "eu-west-a"
//! slots = 8
//! reserve = 1200          # units per slot-hour
//! min_hours = 1
//! horizon_hours = 168     # offer availability window from now
//! offer_ttl_minutes = 60  # offers are re-published before they expire
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
pub use surplus_contracts::provider::{plan, Pool, MAX_POOLS};
use surplus_market::{
    Catalogue, Market, HOUR_MS, MAX_EXPIRY_HORIZON_MS, MAX_HOURS, MAX_SLOTS, MAX_WINDOW_HORIZON_MS,
};

use crate::config::ConfigError;

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
            if let Some(name) = &p.name {
                surplus_contracts::maintenance::check_pool_name(name)
                    .map_err(|e| (at("name"), e))?;
            }
            if let Some(j) = self.pools[..i].iter().position(|q| q.name() == p.name()) {
                let hint = if p.name.is_none() {
                    "give each pool of a market its own `name`"
                } else {
                    "give it another `name`"
                };
                return Err((
                    format!("pool[{i}]"),
                    format!("pool[{j}] is named {:?} already: {hint}", p.name()),
                ));
            }
            if let Some(j) =
                self.pools[..i].iter().position(|q| q.market() == p.market() && !q.same_terms(p))
            {
                return Err((
                    format!("pool[{i}]"),
                    format!(
                        "pool[{j}] is in market {} too, with other terms: pools of one market \
                         are offered together, so give them the same reserve, min_hours, \
                         horizon_hours and offer_ttl_minutes",
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

    /// A commented sample with one pool per given market (for `init`).
    pub fn sample(markets: &[(Market, u32, u64)]) -> String {
        Self::sample_on(markets, &[])
    }

    /// A commented sample with, for each given market, one pool per host in `hosts` (named
    /// `HOST.CLASS`, sharing the market's slots; one unnamed pool without hosts), as devnet
    /// writes it so that a pool can be drained while another takes its leases.
    pub fn sample_on(markets: &[(Market, u32, u64)], hosts: &[&str]) -> String {
        let mut out = String::from(
            "# Surplus inventory: the spare capacity this node offers, in [[pool]] tables.\n\
             # class and region come from the consortium's catalogue; reserve is the lowest price\n\
             # in units per slot-hour (1 credit = 1,000,000 units). Offers cover `horizon_hours`\n\
             # from now and are re-published before they expire (`offer_ttl_minutes`). A `name`\n\
             # (a host, a rack) is what `surplus drain --pool NAME` takes out of the market for\n\
             # maintenance; pools of one market are offered together, on the same terms.\n",
        );
        let names: Vec<Option<&str>> =
            if hosts.is_empty() { vec![None] } else { hosts.iter().map(|h| Some(*h)).collect() };
        for (m, slots, reserve) in markets {
            for (k, host) in names.iter().enumerate() {
                // The market's slots, shared out; the first hosts take the remainder.
                let n = names.len() as u32;
                let share = slots / n + u32::from((k as u32) < slots % n);
                let name = match host {
                    Some(h) => format!("name = {:?}\n", format!("{h}.{}", m.class)),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "\n[[pool]]\n{name}class = {:?}\nregion = {:?}\nslots = {share}\n\
                     reserve = {reserve}\nmin_hours = 1\nhorizon_hours = 168\n\
                     offer_ttl_minutes = 60\n",
                    m.class, m.region
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_contracts::provider::Plan;
    use surplus_contracts::{Allocation, BlockMaker, Genesis, LeaseStatus, Params, State};
    use surplus_ledger::testutil::key;
    use surplus_ledger::{Entry, SecretKey};
    use surplus_market::{Bid, FillRule, Offer, Order, SignedCancel, SignedOrder};

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
                    notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
                    supervision: None,
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
            plan(&inv.pools, self.state(), &self.provider.public(), pending, self.now)
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
        assert!(e.contains("pool[1]: pool[0] is named \"vm.4c16g@eu-west-a\" already"), "{e}");
        // Two named pools of one market: fine on the same terms, refused on others.
        let named = |n: &str| format!("[[pool]]\nname = \"{n}\"\n{}", &pool[9..]);
        let two = format!("{}\n{}", named("pve-a"), named("pve-b"));
        let inv = Inventory::parse(&two, Path::new("inv.toml"), &cat).unwrap();
        assert_eq!(inv.pools[1].name(), "pve-b");
        let e = err(&two.replacen("reserve = 1", "reserve = 2", 1));
        assert!(e.contains("pool[1]: pool[0] is in market vm.4c16g@eu-west-a too"), "{e}");
        let e = err(&named("bad name"));
        assert!(e.contains("pool[0].name"), "{e}");
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
        // Devnet's: the market's 9 slots on two hosts, 5 and 4.
        let s = Inventory::sample_on(&[(Market::new("vm.2c8g", "us-east-b"), 9, 900)], &["a", "b"]);
        let i = Inventory::parse(&s, Path::new("s.toml"), &cat).unwrap();
        let pools: Vec<(String, u32)> = i.pools.iter().map(|p| (p.name(), p.slots)).collect();
        assert_eq!(pools, vec![("a.vm.2c8g".into(), 5), ("b.vm.2c8g".into(), 4)]);
    }
}
