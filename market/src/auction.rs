//! The uniform-price batch auction of one market (rules and worked examples: `docs/auction.md`).
//!
//! 1. Every price configuration is tried: each distinct limit or reserve price `c`, and each gap
//!    between two adjacent ones (any price in the gap admits the same orders).
//! 2. The volume of a price `p` is the market's aggregate one: bids with limit ≥ p take, in
//!    priority order (higher limit, earlier block, smaller id) and honouring their fill rules,
//!    slots from the pooled free slots of the offers with reserve ≤ p. Orders that could never
//!    execute do not move the price: every bid counts only for the slots its buyer could pay for
//!    at the bid's own limit (wherever it stands in priority), and an offer counts only if some
//!    active bid's duration `H` fits it (`min_hours ≤ H` and `T + H` hours `≤ until`).
//! 3. The clearing price maximises that volume in slot-hours. Among maximising prices `lo..=hi`,
//!    it is the largest maximising price not above `lo + (hi - lo) / 2` (the midpoint, rounded
//!    down): every maximising price trades the same volume, and the midpoint splits the gain
//!    between buyers and sellers (`docs/decisions/0012-auction-agrees-with-its-docs.md`).
//! 4. At the clearing price, trades execute by priority: bids in order take free slots from
//!    offers in order (lower reserve, earlier block, smaller id) that can serve them (duration,
//!    window, not their own), within fill rules and the buyer's budget. Eligibility and budgets
//!    change what executes; they never move the price
//!    (`docs/decisions/0003-aggregate-clearing-price.md`).
//!
//! The pooled volume has a closed form (prefix sums and a segment tree; which offers count is one
//! binary search each over the bids' sorted durations), so the search is O(n log n) in the
//! market's orders.

use std::collections::HashMap;

use surplus_ledger::PublicKey;

use crate::order::{Bid, FillRule};

/// A bid able to trade in this block.
#[derive(Clone, Debug)]
pub struct ActiveBid {
    /// The caller's handle for the bid; the auction does not read it (the book uses its place
    /// among the market's active bids).
    pub index: usize,
    /// Limit price.
    pub limit: u64,
    /// Lease hours.
    pub hours: u32,
    /// Slots still wanted.
    pub want: u32,
    /// Fewest slots that may fill.
    pub min: u32,
    /// The buyer.
    pub buyer: PublicKey,
    /// What the buyer can still spend.
    pub budget: u64,
}

impl ActiveBid {
    /// From a resting bid.
    pub fn new(index: usize, b: &Bid, remaining: u32, buyer: PublicKey, budget: u64) -> Self {
        let min = match b.fill {
            FillRule::AllOrNone => remaining,
            FillRule::AtLeast(m) => m.min(remaining),
        };
        Self { index, limit: b.limit, hours: b.hours, want: remaining, min, buyer, budget }
    }
}

/// An offer able to trade in this block.
#[derive(Clone, Debug)]
pub struct ActiveOffer {
    /// The caller's handle for the offer; the auction does not read it (the book uses its place
    /// among the market's active offers).
    pub index: usize,
    /// Reserve price.
    pub reserve: u64,
    /// Slots free now.
    pub free: u32,
    /// Shortest lease accepted.
    pub min_hours: u32,
    /// Longest lease that fits before the window ends.
    pub max_hours: u32,
    /// The provider (never trades with itself).
    pub provider: PublicKey,
}

/// Slots of one offer going to one bid (indices into the active lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Index into the active bids.
    pub bid: usize,
    /// Index into the active offers.
    pub offer: usize,
    /// Slots.
    pub slots: u32,
}

/// A market that traded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketResult {
    /// The clearing price.
    pub price: u64,
    /// Traded slot-hours.
    pub volume: u128,
    /// The trades, in execution order.
    pub trades: Vec<Trade>,
}

/// Prices admitting the same orders: a listed price, or the open gap above one.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// Lowest price of the configuration.
    lo: u64,
    /// Highest price of the configuration.
    hi: u64,
    /// Bids admitted: a prefix of the priority order.
    bids: usize,
    /// Offers admitted: a prefix of the priority order.
    offers: usize,
}

/// Clears one market. `bids` and `offers` are in priority order. `None` if nothing trades.
pub fn clear_market(bids: &[ActiveBid], offers: &[ActiveOffer]) -> Option<MarketResult> {
    let mut durations: Vec<u32> = bids.iter().map(|b| b.hours).collect();
    durations.sort_unstable();
    durations.dedup();
    clear_market_with(bids, offers, &durations)
}

/// [`clear_market`] given the durations of every active bid of the market, sorted and distinct
/// (which offers count in the price search: step 2). The caller may leave out of `bids` those
/// whose limit is below every active offer's reserve (they never trade nor set the price) and
/// out of `offers` those whose reserve is above every active bid's limit, so long as
/// `durations` still lists the hours of the bids left out.
pub fn clear_market_with(
    bids: &[ActiveBid],
    offers: &[ActiveOffer],
    durations: &[u32],
) -> Option<MarketResult> {
    let max_limit = bids.first()?.limit;
    let min_reserve = offers.first()?.reserve;
    if max_limit < min_reserve {
        return None;
    }
    let configs = configurations(bids, offers, min_reserve, max_limit);
    let mut best = 0u128;
    let mut maximising: Vec<usize> = Vec::new();
    let consider = |c: usize, v: u128, best: &mut u128, maximising: &mut Vec<usize>| {
        if v > *best {
            *best = v;
            maximising.clear();
        }
        if v == *best && v > 0 {
            maximising.push(c);
        }
    };
    let pool = Pooled::new(bids, offers, durations);
    // The configurations go up in price, so the pool never shrinks: how many bids' running
    // totals fit it only grows, and is found by walking on rather than searching each time.
    let mut fit = 0usize;
    for (c, cfg) in configs.iter().enumerate() {
        let supply = pool.supply[cfg.offers];
        while pool.want.get(fit).is_some_and(|w| *w <= supply) {
            fit += 1;
        }
        debug_assert_eq!(fit, pool.want.partition_point(|w| *w <= supply));
        let whole = fit.saturating_sub(1).min(cfg.bids);
        consider(c, pool.volume_from(cfg.bids, supply, whole), &mut best, &mut maximising);
    }
    if best == 0 {
        return None;
    }
    let lo = maximising.iter().map(|&c| configs[c].lo).min()?;
    let hi = maximising.iter().map(|&c| configs[c].hi).max()?;
    let mid = lo + (hi - lo) / 2;
    let (config, price) = maximising
        .iter()
        .filter(|&&c| configs[c].lo <= mid)
        .map(|&c| (c, configs[c].hi.min(mid)))
        .max_by_key(|&(_, p)| p)?;
    let cfg = &configs[config];
    let mut trades = Vec::new();
    let mut scratch = Scratch::default();
    let volume = simulate(
        &bids[..cfg.bids],
        &offers[..cfg.offers],
        Some(price),
        &mut scratch,
        Some(&mut trades),
    );
    (volume > 0).then_some(MarketResult { price, volume, trades })
}

/// The market's aggregate supply and demand: the admitted offers' free slots as one pool. The
/// priority trade against a pool has a closed form: bid `i` in priority order takes
/// `min(want, left)` if its minimum fill is at most `left`, what the bids before it left.
struct Pooled {
    /// Prefix sums of slots wanted, in bid priority order.
    want: Vec<u128>,
    /// Prefix sums of slot-hours wanted.
    hours: Vec<u128>,
    /// Prefix sums of free slots, in offer priority order.
    supply: Vec<u128>,
    /// Minimum-fill of each bid, as a min-segment tree (leaves from `size`).
    mins: Vec<u32>,
    size: usize,
    /// (slots counted, hours) of each bid, in priority order.
    bids: Vec<(u32, u32)>,
}

impl Pooled {
    fn new(bids: &[ActiveBid], offers: &[ActiveOffer], durations: &[u32]) -> Self {
        // Orders that could never execute must not move the price. Every bid counts only for the
        // slots its buyer could pay for at its own limit (or not at all, if that is below its
        // minimum fill), wherever it stands in priority; every offer counts only if some active
        // bid's duration fits it.
        let counted: Vec<(u32, u32)> = bids
            .iter()
            .map(|b| match counted_slots(b) {
                Some(w) => (w, b.min),
                None => (0, u32::MAX),
            })
            .collect();
        let mut want = Vec::with_capacity(bids.len() + 1);
        let mut hours = Vec::with_capacity(bids.len() + 1);
        want.push(0u128);
        hours.push(0u128);
        for (b, (w, _)) in bids.iter().zip(&counted) {
            want.push(want[want.len() - 1] + u128::from(*w));
            hours.push(hours[hours.len() - 1] + u128::from(*w) * u128::from(b.hours));
        }
        let mut supply = Vec::with_capacity(offers.len() + 1);
        supply.push(0u128);
        for o in offers {
            let free = if some_duration_fits(durations, o) { u128::from(o.free) } else { 0 };
            supply.push(supply[supply.len() - 1] + free);
        }
        let size = bids.len().next_power_of_two();
        let mut mins = vec![u32::MAX; 2 * size];
        for (i, (_, m)) in counted.iter().enumerate() {
            mins[size + i] = *m;
        }
        for i in (1..size).rev() {
            mins[i] = mins[2 * i].min(mins[2 * i + 1]);
        }
        let bids = counted.iter().zip(bids).map(|((w, _), b)| (*w, b.hours)).collect();
        Self { want, hours, supply, mins, size, bids }
    }

    /// First bid at or after `from`, before `end`, whose minimum fill is at most `left`.
    fn next_fitting(&self, from: usize, end: usize, left: u128) -> Option<usize> {
        let fits = |v: u32| u128::from(v) <= left;
        // Walk up from the leaf, then down to the leftmost fitting leaf.
        let mut node = self.size + from;
        if from >= end {
            return None;
        }
        if fits(self.mins[node]) {
            return Some(from);
        }
        loop {
            // Move to the next subtree to the right.
            while node % 2 == 1 {
                node /= 2;
                if node <= 1 {
                    return None;
                }
            }
            node += 1;
            if fits(self.mins[node]) {
                break;
            }
        }
        while node < self.size {
            node = if fits(self.mins[2 * node]) { 2 * node } else { 2 * node + 1 };
        }
        let i = node - self.size;
        (i < end).then_some(i)
    }

    /// Slot-hours traded by the first `nb` bids against the first `no` offers.
    #[cfg(test)]
    fn volume(&self, nb: usize, no: usize) -> u128 {
        let pool = self.supply[no];
        // Bids that fit whole, one after another.
        let k = self.want[..=nb].partition_point(|w| *w <= pool) - 1;
        self.volume_from(nb, pool, k)
    }

    /// [`Pooled::volume`] given the pool (`supply[no]`) and `k`, how many of the first `nb` bids
    /// fit it whole one after another.
    fn volume_from(&self, nb: usize, pool: u128, k: usize) -> u128 {
        let mut volume = self.hours[k];
        let mut left = pool - self.want[k];
        let mut i = k;
        while left > 0 {
            let Some(j) = self.next_fitting(i, nb, left) else { break };
            let (want, hours) = self.bids[j];
            let take = left.min(u128::from(want));
            volume += take * u128::from(hours);
            left -= take;
            i = j + 1;
        }
        volume
    }
}

/// The slots a bid counts for in the price search: what it still wants, capped at what its buyer
/// could pay for at the bid's own limit; `None` if that is no slot or below its minimum fill.
fn counted_slots(b: &ActiveBid) -> Option<u32> {
    let per_slot = u128::from(b.hours) * u128::from(b.limit);
    let affordable = u128::from(b.budget).checked_div(per_slot).unwrap_or(u128::MAX);
    let w = u32::try_from(affordable).unwrap_or(u32::MAX).min(b.want);
    (w > 0 && w >= b.min).then_some(w)
}

/// Whether some duration `H` of `durations` (the active bids' durations, sorted, distinct) fits
/// the offer: `min_hours ≤ H` and the lease ends by the window's end (`H ≤ max_hours`).
pub(crate) fn some_duration_fits(durations: &[u32], o: &ActiveOffer) -> bool {
    let shortest_allowed = durations.partition_point(|&h| h < o.min_hours);
    durations.get(shortest_allowed).is_some_and(|&h| h <= o.max_hours)
}

/// Every price configuration between the lowest reserve and the highest limit.
fn configurations(bids: &[ActiveBid], offers: &[ActiveOffer], lo: u64, hi: u64) -> Vec<Config> {
    // The limits (bids are by limit, descending) and the reserves (offers are by reserve,
    // ascending) merged in ascending order, each price once.
    let mut limits =
        bids.iter().rev().map(|b| b.limit).filter(|p| (lo..=hi).contains(p)).peekable();
    let mut reserves =
        offers.iter().map(|o| o.reserve).filter(|p| (lo..=hi).contains(p)).peekable();
    let mut prices: Vec<u64> = Vec::with_capacity(bids.len() + offers.len());
    loop {
        let next = match (limits.peek(), reserves.peek()) {
            (None, None) => break,
            (Some(&l), Some(&r)) if r < l => reserves.next(),
            (Some(_), _) => limits.next(),
            (None, Some(_)) => reserves.next(),
        };
        if let Some(p) = next.filter(|p| prices.last() != Some(p)) {
            prices.push(p);
        }
    }
    debug_assert!(prices.windows(2).all(|w| w[0] < w[1]));

    // Bids are sorted by limit descending, offers by reserve ascending; the prices asked go up,
    // so the bids admitted only fall and the offers only rise: two cursors walk them.
    let (mut nb, mut no) = (bids.len(), 0usize);
    let mut admitted = |p: u64| {
        while nb > 0 && bids[nb - 1].limit < p {
            nb -= 1;
        }
        while offers.get(no).is_some_and(|o| o.reserve <= p) {
            no += 1;
        }
        debug_assert_eq!(
            (nb, no),
            (bids.partition_point(|b| b.limit >= p), offers.partition_point(|o| o.reserve <= p))
        );
        (nb, no)
    };
    let mut out = Vec::with_capacity(prices.len() * 2);
    for (i, &p) in prices.iter().enumerate() {
        let (nb, no) = admitted(p);
        out.push(Config { lo: p, hi: p, bids: nb, offers: no });
        if let Some(&next) = prices.get(i + 1) {
            if next > p + 1 {
                let (nb, no) = admitted(p + 1);
                out.push(Config { lo: p + 1, hi: next - 1, bids: nb, offers: no });
            }
        }
    }
    out
}

#[derive(Default)]
struct Scratch {
    free: Vec<u32>,
    /// Keyed with a random key of the process, as std's default hasher is (authors choose their
    /// keys), and cheaper than it for 32-byte keys.
    spent: HashMap<PublicKey, u128, ahash::RandomState>,
}

/// Trades `bids` against `offers` by priority; returns traded slot-hours, and records the trades
/// when asked. With a price, each buyer's budget caps what it buys; without (the unit tests'
/// reference of the pooled volume), budgets are ignored.
fn simulate(
    bids: &[ActiveBid],
    offers: &[ActiveOffer],
    price: Option<u64>,
    scratch: &mut Scratch,
    mut trades: Option<&mut Vec<Trade>>,
) -> u128 {
    let free = &mut scratch.free;
    free.clear();
    free.extend(offers.iter().map(|o| o.free));
    let spent = &mut scratch.spent;
    spent.clear();
    let mut first = 0usize; // no free slot before this offer
    let mut volume = 0u128;
    for (bi, b) in bids.iter().enumerate() {
        let per_slot = u128::from(b.hours) * u128::from(price.unwrap_or(0));
        let mut want = b.want;
        if price.is_some() {
            let left =
                u128::from(b.budget).saturating_sub(spent.get(&b.buyer).copied().unwrap_or(0));
            if let Some(affordable) = left.checked_div(per_slot) {
                want = want.min(u32::try_from(affordable).unwrap_or(u32::MAX));
            }
        }
        if want == 0 || want < b.min {
            continue;
        }
        while first < offers.len() && free[first] == 0 {
            first += 1;
        }
        let fits = |o: &ActiveOffer| {
            o.min_hours <= b.hours && b.hours <= o.max_hours && o.provider != b.buyer
        };
        let mut available = 0u32;
        for (o, f) in offers[first..].iter().zip(&free[first..]) {
            if available >= want {
                break;
            }
            if *f > 0 && fits(o) {
                available = available.saturating_add(*f);
            }
        }
        if available < b.min {
            continue;
        }
        let take = available.min(want);
        let mut left = take;
        for (oi, o) in offers.iter().enumerate().skip(first) {
            if left == 0 {
                break;
            }
            if free[oi] == 0 || !fits(o) {
                continue;
            }
            let t = free[oi].min(left);
            free[oi] -= t;
            left -= t;
            if let Some(trades) = trades.as_deref_mut() {
                trades.push(Trade { bid: bi, offer: oi, slots: t });
            }
        }
        if price.is_some() {
            *spent.entry(b.buyer).or_insert(0) += u128::from(take) * per_slot;
        }
        volume += u128::from(take) * u128::from(b.hours);
    }
    volume
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift sequence from `seed`: each call gives a number below `n`.
    fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// Leaving out the bids below the lowest reserve and the offers above the highest limit,
    /// with every bid's duration still given, clears the market exactly as the whole lists do:
    /// the same price, volume and trades (the kept orders are a prefix of each list, so their
    /// indices do not change).
    #[test]
    fn orders_that_do_not_cross_change_nothing() {
        let mut next = numbers(0x9e37_79b9_7f4a_7c15);
        let mut truncated = 0;
        for _ in 0..3000 {
            let mut bids: Vec<ActiveBid> = (0..1 + next(25) as usize)
                .map(|i| {
                    let want = 1 + next(12) as u32;
                    ActiveBid {
                        index: i,
                        limit: 1 + next(60),
                        hours: [1, 2, 4, 24, 48][next(5) as usize],
                        want,
                        min: if next(2) == 0 { want } else { 1 },
                        buyer: PublicKey([1 + next(4) as u8; 32]),
                        budget: if next(3) == 0 { next(5000) } else { u64::MAX },
                    }
                })
                .collect();
            bids.sort_by_key(|b| std::cmp::Reverse(b.limit));
            let mut offers: Vec<ActiveOffer> = (0..1 + next(10) as usize)
                .map(|i| ActiveOffer {
                    index: i,
                    reserve: 1 + next(60),
                    free: 1 + next(15) as u32,
                    min_hours: [0, 1, 4, 24, 72][next(5) as usize],
                    max_hours: 1 + next(60) as u32,
                    provider: PublicKey([100 + next(2) as u8 * 99; 32]),
                })
                .collect();
            offers.sort_by_key(|o| o.reserve);
            let whole = clear_market(&bids, &offers);
            let max_limit = bids[0].limit;
            let offers_kept = offers.partition_point(|o| o.reserve <= max_limit);
            let Some(min_reserve) = offers.first().map(|o| o.reserve) else { continue };
            let bids_kept = bids.partition_point(|b| b.limit >= min_reserve);
            truncated += usize::from(offers_kept < offers.len() || bids_kept < bids.len());
            let mut durations: Vec<u32> = bids.iter().map(|b| b.hours).collect();
            durations.sort_unstable();
            durations.dedup();
            let part = clear_market_with(&bids[..bids_kept], &offers[..offers_kept], &durations);
            assert_eq!(whole, part);
        }
        assert!(truncated > 1000, "only {truncated} books had orders left out");
    }

    /// The closed form of a pooled market equals the step-by-step trade of the counted orders
    /// (each bid capped at what its buyer could pay for at its own limit, each offer that no
    /// bid's duration fits left out, the others pooled), for every configuration of many random
    /// books.
    #[test]
    fn pooled_volume_equals_simulation() {
        let mut next = numbers(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let nb = 1 + next(30) as usize;
            let no = 1 + next(10) as usize;
            let limited = next(2) == 0;
            let mut bids: Vec<ActiveBid> = (0..nb)
                .map(|i| {
                    let want = 1 + next(12) as u32;
                    let min = match next(3) {
                        0 => want,
                        1 => 1,
                        _ => 1 + next(u64::from(want)) as u32,
                    };
                    ActiveBid {
                        index: i,
                        limit: 1 + next(50),
                        hours: 1 + next(30) as u32,
                        want,
                        min,
                        buyer: PublicKey([1 + next(4) as u8; 32]),
                        budget: if limited { next(3000) } else { u64::MAX },
                    }
                })
                .collect();
            bids.sort_by_key(|b| std::cmp::Reverse(b.limit));
            let mut offers: Vec<ActiveOffer> = (0..no)
                .map(|i| ActiveOffer {
                    index: i,
                    reserve: 1 + next(50),
                    free: 1 + next(15) as u32,
                    min_hours: next(12) as u32,
                    max_hours: 1 + next(40) as u32,
                    provider: PublicKey([100; 32]),
                })
                .collect();
            offers.sort_by_key(|o| o.reserve);
            let mut durations: Vec<u32> = bids.iter().map(|b| b.hours).collect();
            durations.sort_unstable();
            durations.dedup();
            let pool = Pooled::new(&bids, &offers, &durations);
            // The counted orders, written out: every remaining offer serves every bid.
            let counted_bids: Vec<ActiveBid> = bids
                .iter()
                .map(|b| {
                    let want = counted_slots(b).unwrap_or(0);
                    ActiveBid { want, budget: u64::MAX, ..b.clone() }
                })
                .collect();
            let counted_offers: Vec<ActiveOffer> = offers
                .iter()
                .map(|o| {
                    let fits =
                        bids.iter().any(|b| o.min_hours <= b.hours && b.hours <= o.max_hours);
                    ActiveOffer {
                        free: if fits { o.free } else { 0 },
                        min_hours: 0,
                        max_hours: u32::MAX,
                        ..o.clone()
                    }
                })
                .collect();
            let mut scratch = Scratch::default();
            for b in 0..=nb {
                for o in 0..=no {
                    let want = simulate(
                        &counted_bids[..b],
                        &counted_offers[..o],
                        None,
                        &mut scratch,
                        None,
                    );
                    assert_eq!(pool.volume(b, o), want, "bids {b}, offers {o}");
                }
            }
        }
    }
}
