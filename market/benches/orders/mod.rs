//! Generated books for the market's benchmarks and for `examples/clear_once.rs`: random orders
//! over 100 markets with made-up ids and signatures (the book does not check signatures).

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use surplus_ledger::{PublicKey, Signature};
use surplus_market::{
    Batch, Bid, Book, Catalogue, Class, FillRule, Market, Offer, Order, Region, SignedOrder,
    HOUR_MS,
};

/// Block time of the first block.
pub(crate) const NOW: u64 = 1_700_000_000_000;
/// Time between blocks.
pub(crate) const BLOCK_MS: u64 = 2_000;
pub(crate) const CLASSES: usize = 20;
pub(crate) const REGIONS: usize = 5;

pub(crate) fn unlimited(_: &PublicKey) -> u64 {
    u64::MAX
}

/// 20 classes × 5 regions = 100 markets.
pub(crate) fn catalogue() -> Catalogue {
    let classes = (0..CLASSES)
        .map(|i| Class {
            id: format!("vm.{}c{}g", 2 * (i + 1), 8 * (i + 1)),
            description: String::new(),
            attributes: Default::default(),
        })
        .collect();
    let regions = ["eu-west-a", "eu-north-b", "us-east-c", "us-west-d", "ap-south-e"]
        .iter()
        .map(|r| Region { id: (*r).to_owned(), description: String::new() })
        .collect();
    let c = Catalogue { classes, regions }.validated().unwrap();
    assert_eq!(c.markets().len(), CLASSES * REGIONS);
    c
}

/// Which prices the generated orders ask.
#[derive(Clone, Copy)]
pub(crate) enum Prices {
    /// Offers at 80–110 % and bids at 90–120 % of the market's reference price: markets trade.
    Crossing,
    /// Bids at 70–95 %, offers at 105–130 %: nothing trades, every order rests.
    Apart,
}

/// Random orders with made-up ids and signatures (the book does not check signatures). Both
/// sides ask 1–16 slots; bids lease 1 hour to 30 days; prices are any integer in their range, so
/// a market of k orders has about k distinct candidate prices.
pub(crate) struct Gen {
    rng: StdRng,
    markets: Vec<Market>,
    /// Reference price of each market, units per slot-hour.
    reference: Vec<u64>,
    next: u64,
}

impl Gen {
    pub(crate) fn new(catalogue: &Catalogue, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let markets = catalogue.markets();
        // 0.02 to 1 credit per slot-hour, varying by region.
        let reference = (0..markets.len())
            .map(|m| (20_000 + (m / REGIONS) as u64 * 50_000) * rng.gen_range(90..=110) / 100)
            .collect();
        Self { rng, markets, reference, next: seed << 32 }
    }

    pub(crate) fn pct(&mut self, m: usize, lo: u64, hi: u64) -> u64 {
        let r = self.reference[m];
        self.rng.gen_range(r * lo / 100..=r * hi / 100)
    }

    /// An order valid at `now`, in market `m`.
    pub(crate) fn order(&mut self, m: usize, prices: Prices, now: u64) -> Order {
        let market = self.markets[m].clone();
        let nonce = self.next;
        self.next += 1;
        let rng = &mut self.rng;
        let expiry_ms = now + rng.gen_range(1..=24 * 30) * HOUR_MS;
        if rng.gen_bool(0.5) {
            let min_hours = [0, 1, 4, 24][rng.gen_range(0..4)];
            let from_ms = now - rng.gen_range(0..=48) * HOUR_MS;
            let until_ms = now + rng.gen_range(48..=24 * 90) * HOUR_MS;
            let slots: u32 = rng.gen_range(1..=16);
            let reserve = match prices {
                Prices::Crossing => self.pct(m, 80, 110),
                Prices::Apart => self.pct(m, 105, 130),
            };
            Order::Offer(Offer {
                market,
                slots,
                from_ms,
                until_ms,
                reserve,
                min_hours,
                expiry_ms,
                nonce,
            })
        } else {
            let slots: u32 = rng.gen_range(1..=16);
            let hours = [1, 2, 4, 8, 12, 24, 48, 72, 168, 336, 720][rng.gen_range(0..11)];
            let fill = match rng.gen_range(0..3) {
                0 => FillRule::AllOrNone,
                1 => FillRule::AtLeast(1),
                _ => FillRule::AtLeast(slots.div_ceil(2)),
            };
            let earliest_ms = now - rng.gen_range(0..=24) * HOUR_MS;
            let latest_ms = now + rng.gen_range(0..=72) * HOUR_MS;
            let limit = match prices {
                Prices::Crossing => self.pct(m, 90, 120),
                Prices::Apart => self.pct(m, 70, 95),
            };
            Order::Bid(Bid {
                market,
                slots,
                hours,
                limit,
                earliest_ms,
                latest_ms,
                fill,
                expiry_ms,
                nonce,
            })
        }
    }

    /// `n` orders spread evenly over the markets, with made-up ids, authors and signatures:
    /// 10,000 buyers and 2,000 providers.
    pub(crate) fn orders(&mut self, n: usize, prices: Prices, now: u64) -> Vec<SignedOrder> {
        (0..n)
            .map(|i| {
                let order = self.order(i % self.markets.len(), prices, now);
                let author = match order {
                    Order::Bid(_) => party(1, self.rng.gen_range(0..10_000)),
                    Order::Offer(_) => party(2, self.rng.gen_range(0..2_000)),
                };
                let id = *blake3::hash(&order.nonce().to_be_bytes()).as_bytes();
                SignedOrder { id, author, order, signature: Signature([0; 64]) }
            })
            .collect()
    }
}

pub(crate) fn party(role: u8, i: u32) -> PublicKey {
    let mut k = [role; 32];
    k[1..5].copy_from_slice(&i.to_be_bytes());
    PublicKey(k)
}

pub(crate) fn batch(height: u64, now_ms: u64, orders: Vec<SignedOrder>) -> Batch {
    Batch { height, now_ms, orders, cancels: vec![] }
}

/// A book holding `n` resting orders (none crossing), after block 1 at `NOW`.
pub(crate) fn resting_book(catalogue: &Catalogue, n: usize, seed: u64) -> (Book, Batch) {
    let b = batch(1, NOW, Gen::new(catalogue, seed).orders(n, Prices::Apart, NOW));
    let mut book = Book::new();
    let out = book.clear(catalogue, &b, &unlimited).unwrap();
    assert!(out.fills.is_empty() && out.rejected.is_empty());
    assert_eq!(book.len(), n);
    (book, b)
}
