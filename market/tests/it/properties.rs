//! Properties over thousands of random books, and a brute-force reference of the price rule.

use std::collections::HashMap;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::*;

use crate::gen::*;

/// The documented rule (`docs/auction.md` §2), written as plainly as possible: try every integer
/// price from the lowest active reserve to the highest active limit; at each, the admitted bids
/// in priority order take slots from the pooled free slots of the admitted offers that some
/// active bid's duration fits, each bid counting only for the slots its buyer could pay for at
/// its own limit (`budget`: what the buyer can spend in this market); keep the prices of greatest
/// volume and take the largest one not above their midpoint.
fn reference_price(
    book: &Book,
    market: &Market,
    now: u64,
    budget: &dyn Fn(&PublicKey) -> u64,
) -> Option<(u64, u128)> {
    let (bids, offers) = book.market(market);
    let active_bids: Vec<(&Resting, &Bid)> = bids
        .into_iter()
        .filter_map(|r| match &r.order.order {
            Order::Bid(b) if b.earliest_ms <= now && r.remaining > 0 => Some((r, b)),
            _ => None,
        })
        .collect();
    let active_offers: Vec<(&Resting, &Offer)> = offers
        .into_iter()
        .filter_map(|r| match &r.order.order {
            Order::Offer(o) if o.from_ms <= now && r.free_at(now) > 0 => Some((r, o)),
            _ => None,
        })
        .collect();
    // An offer counts only if some active bid's duration H fits it: min_hours ≤ H and
    // T + H hours ≤ until.
    let counts = |o: &Offer| {
        active_bids.iter().any(|(_, b)| {
            o.min_hours <= b.hours && now + u64::from(b.hours) * HOUR_MS <= o.until_ms
        })
    };
    let lo = active_offers.iter().map(|(_, o)| o.reserve).min()?;
    let hi = active_bids.iter().map(|(_, b)| b.limit).max()?;
    let mut volumes = Vec::new();
    for p in lo..=hi {
        let mut left: u128 = active_offers
            .iter()
            .filter(|(_, o)| o.reserve <= p && counts(o))
            .map(|(r, _)| u128::from(r.free_at(now)))
            .sum();
        let mut volume = 0u128;
        for (r, b) in active_bids.iter().filter(|(_, b)| b.limit >= p) {
            let min = match b.fill {
                FillRule::AllOrNone => r.remaining,
                FillRule::AtLeast(m) => m.min(r.remaining),
            };
            // Slots the buyer could pay for at the bid's own limit.
            let affordable =
                u128::from(budget(&r.order.author)) / (u128::from(b.hours) * u128::from(b.limit));
            let counted = u128::from(r.remaining).min(affordable);
            if counted == 0 || counted < u128::from(min) || left < u128::from(min) {
                continue;
            }
            let take = left.min(counted);
            volume += take * u128::from(b.hours);
            left -= take;
        }
        volumes.push((p, volume));
    }
    let best = volumes.iter().map(|v| v.1).max()?;
    if best == 0 {
        return None;
    }
    let maxing: Vec<u64> = volumes.iter().filter(|v| v.1 == best).map(|v| v.0).collect();
    let mid = maxing[0] + (maxing[maxing.len() - 1] - maxing[0]) / 2;
    let price = *maxing.iter().filter(|&&p| p <= mid).max()?;
    Some((price, best))
}

fn volume(out: &Outcome, market: &Market) -> u128 {
    out.fills
        .iter()
        .filter(|f| &f.market == market)
        .map(|f| u128::from(f.slots) * u128::from(f.hours()))
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// The fast price search (configurations, closed-form pooled volume) finds the same price as
    /// trying every integer price, with unlimited or random budgets, and the executed volume
    /// equals the aggregate one when every offer can serve every bid and budgets do not bind.
    #[test]
    fn price_search_equals_brute_force(
        seed in any::<u64>(),
        n in 1usize..24,
        pooled in any::<bool>(),
        limited in any::<bool>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let orders = random_book(&mut rng, n, 1, false, pooled);
        let balances: HashMap<PublicKey, u64> = (1..=4u8)
            .map(|b| (party(b), if limited { rng.gen_range(0..6_000) } else { u64::MAX }))
            .collect();
        let budget = |k: &PublicKey| balances.get(k).copied().unwrap_or(0);
        // Admit the orders without trading (no budget), then clear with the budgets.
        let mut book = Book::new();
        book.clear(&Catalogue::sample(), &Batch { height: 1, now_ms: NOW, orders, cancels: vec![] }, &|_: &PublicKey| 0).unwrap();
        let before = book.clone();
        let out = book.clear(&Catalogue::sample(), &Batch { height: 2, now_ms: NOW, orders: vec![], cancels: vec![] }, &budget).unwrap();
        // Markets clear in `class@region` order; a buyer's budget in a market is what it had
        // left after the markets before.
        let mut markets = [market(), Market::new("gpu.a100", "eu-west-a")];
        markets.sort();
        for m in markets {
            let left = |k: &PublicKey| {
                let spent: u64 = out.fills.iter().filter(|f| f.market < m && &f.buyer == k).map(Fill::cost).sum();
                budget(k).saturating_sub(spent)
            };
            let want = reference_price(&before, &m, NOW, &left);
            let got = out.prices.get(&m).copied();
            if volume(&out, &m) == 0 {
                // Only markets that traded have a price.
                prop_assert_eq!(got, None, "market {}", m);
            } else {
                prop_assert_eq!(got, want.map(|w| w.0), "market {}", m);
            }
            if let Some((_, aggregate)) = want {
                if pooled && !limited {
                    prop_assert_eq!(volume(&out, &m), aggregate, "market {}", m);
                }
            }
        }
    }

    /// With every order mutually eligible (one duration, windows that fit, partial fills
    /// allowed), the traded volume is the true optimum: the most slots any price can match.
    #[test]
    fn mutually_eligible_books_trade_the_optimum(seed in any::<u64>(), n in 1usize..30) {
        let mut rng = StdRng::seed_from_u64(seed);
        let orders = random_orders(&mut rng, n, 1, true);
        let limits: Vec<(bool, u64, u32, u8)> = orders.iter().map(|o| match &o.order {
            Order::Bid(b) => (true, b.limit, b.slots, o.author.0[0]),
            Order::Offer(x) => (false, x.reserve, x.slots, o.author.0[0]),
        }).collect();
        // Buyers (1..=4) and providers (11..=14) never coincide, so any bid may take any slot.
        let optimum = (0..=40u64).map(|p| {
            let demand: u64 = limits.iter().filter(|l| l.0 && l.1 >= p).map(|l| u64::from(l.2)).sum();
            let supply: u64 = limits.iter().filter(|l| !l.0 && l.1 <= p).map(|l| u64::from(l.2)).sum();
            demand.min(supply)
        }).max().unwrap_or(0);
        let mut book = Book::new();
        let out = book.clear(&Catalogue::sample(), &Batch { height: 1, now_ms: NOW, orders, cancels: vec![] }, &unlimited).unwrap();
        prop_assert_eq!(volume(&out, &market()), u128::from(optimum) * 5);
    }
}

/// Plays several blocks of random orders, cancels and budgets, and checks after each block that
/// no buyer pays above its limit or its budget, no seller receives below its reserve, fill rules
/// hold, cancelled or expired orders never fill, no offer's slot is sold twice for overlapping
/// time, and that shuffling the block's input changes nothing.
fn play(seed: u64) {
    let cat = Catalogue::sample();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut book = Book::new();
    let mut all: HashMap<Hash, SignedOrder> = HashMap::new();
    let mut gone: Vec<Hash> = Vec::new();
    let mut leases: HashMap<Hash, Vec<(u64, u64, u32)>> = HashMap::new();
    let mut balance: HashMap<PublicKey, u64> =
        (1..=4u8).map(|b| (party(b), rng.gen_range(0..20_000))).collect();
    let mut next_id = 1u64;
    let mut filled: HashMap<Hash, u32> = HashMap::new();
    let mut now = NOW;
    for height in 1..=6u64 {
        now += rng.gen_range(0..3) * HOUR_MS;
        let count = rng.gen_range(0..25);
        let orders = random_orders(&mut rng, count, next_id, false);
        next_id += 100;
        let mut orders: Vec<SignedOrder> = orders
            .into_iter()
            .map(|mut o| {
                // Shift windows to this block's time so that orders stay valid.
                match &mut o.order {
                    Order::Bid(b) => {
                        b.earliest_ms += now - NOW;
                        b.latest_ms += now - NOW;
                        b.expiry_ms += now - NOW;
                    }
                    Order::Offer(x) => {
                        x.from_ms += now - NOW;
                        x.until_ms += now - NOW;
                        x.expiry_ms += now - NOW;
                    }
                }
                o
            })
            .collect();
        // Some replays of earlier orders.
        if let Some(old) = all.values().next().cloned() {
            orders.push(old);
        }
        let resting: Vec<SignedOrder> = book.orders().map(|r| r.order.clone()).collect();
        let mut cancels = Vec::new();
        for r in &resting {
            if !rng.gen_bool(0.15) {
                continue;
            }
            let author = if rng.gen_bool(0.8) { r.author.0[0] } else { 99 };
            cancels.push(cancel(next_id, author, r));
            next_id += 1;
        }
        for o in &orders {
            all.entry(o.id).or_insert_with(|| o.clone());
        }
        let batch = Batch { height, now_ms: now, orders, cancels };
        let budgets = balance.clone();
        let budget = move |k: &PublicKey| budgets.get(k).copied().unwrap_or(0);

        // The same block with its input shuffled gives the same outcome and book.
        let mut shuffled = batch.clone();
        shuffled.orders.shuffle(&mut rng);
        shuffled.cancels.shuffle(&mut rng);
        let mut twin = book.clone();
        // The book rebuilt from its parts (as a snapshot lists them, in any order) is the same
        // book, with nothing pending, and runs the block alike.
        let mut parts: Vec<Resting> = book.orders().cloned().collect();
        parts.shuffle(&mut rng);
        let mut nonces = book.nonces();
        nonces.shuffle(&mut rng);
        let mut restored = Book::restore(book.now_ms(), parts, nonces).unwrap();
        assert_eq!(restored, book, "seed {seed}: the restored book differs");
        assert_eq!(restored.take_changes(), Changes::default());
        let out = book.clear(&cat, &batch, &budget).unwrap();
        assert_eq!(restored.clear(&cat, &batch, &budget).unwrap(), out, "seed {seed}: restored");
        assert_eq!(restored, book);
        assert_eq!(
            twin.clear(&cat, &shuffled, &budget).unwrap(),
            out,
            "seed {seed}: input order changed the outcome"
        );
        assert_eq!(twin, book);
        // Every resting order is found by its id (a search of its side by its rank).
        for r in book.orders() {
            assert_eq!(book.get(&r.order.id), Some(r), "seed {seed}: a resting order is lost");
        }
        for id in out.cancelled.iter().chain(&out.expired) {
            assert!(book.get(id).is_none(), "seed {seed}: a removed order is still found");
        }

        let mut spent: HashMap<PublicKey, u64> = HashMap::new();
        let mut per_bid: HashMap<Hash, u32> = HashMap::new();
        for f in &out.fills {
            assert!(
                !gone.contains(&f.bid) && !gone.contains(&f.offer),
                "seed {seed}: a removed order filled"
            );
            assert!(!out.cancelled.contains(&f.bid) && !out.cancelled.contains(&f.offer));
            let Order::Bid(b) = &all[&f.bid].order else { panic!("fill of a non-bid") };
            let Order::Offer(o) = &all[&f.offer].order else { panic!("fill from a non-offer") };
            assert!(f.price <= b.limit, "seed {seed}: buyer paid above its limit");
            assert!(f.price >= o.reserve, "seed {seed}: seller received below its reserve");
            assert!(
                f.start_ms >= o.from_ms && f.end_ms <= o.until_ms,
                "seed {seed}: lease outside the offer window"
            );
            assert!(f.end_ms - f.start_ms >= u64::from(o.min_hours) * HOUR_MS);
            assert_eq!(f.end_ms - f.start_ms, u64::from(b.hours) * HOUR_MS);
            assert_ne!(f.buyer, f.provider);
            *spent.entry(f.buyer).or_insert(0) += f.cost();
            *per_bid.entry(f.bid).or_insert(0) += f.slots;
            leases.entry(f.offer).or_default().push((f.start_ms, f.end_ms, f.slots));
        }
        for (buyer, s) in &spent {
            assert!(*s <= balance[buyer], "seed {seed}: buyer spent {s} of {}", balance[buyer]);
            *balance.get_mut(buyer).unwrap() -= s;
        }
        for (bid, slots) in per_bid {
            let Order::Bid(b) = &all[&bid].order else { unreachable!() };
            let before = b.slots - filled.get(&bid).copied().unwrap_or(0);
            assert!(slots <= before, "seed {seed}: bid overfilled");
            match b.fill {
                FillRule::AllOrNone => assert_eq!(slots, b.slots, "seed {seed}: all-or-none split"),
                FillRule::AtLeast(m) => {
                    assert!(slots >= m.min(before), "seed {seed}: fill below minimum")
                }
            }
            *filled.entry(bid).or_insert(0) += slots;
        }
        for (offer, ls) in &leases {
            let Order::Offer(o) = &all[offer].order else { unreachable!() };
            for (start, _, _) in ls {
                let used: u32 =
                    ls.iter().filter(|(s, e, _)| s <= start && start < e).map(|l| l.2).sum();
                assert!(
                    used <= o.slots,
                    "seed {seed}: offer oversold: {used} of {} slots",
                    o.slots
                );
            }
        }
        gone.extend(out.cancelled.iter().chain(out.expired.iter()));
    }
}

#[test]
fn random_blocks_keep_every_invariant() {
    for seed in 0..1500 {
        play(seed);
    }
}

#[test]
fn restore_refuses_parts_no_blocks_make() {
    let cat = Catalogue::sample();
    let mut rng = StdRng::seed_from_u64(3);
    let mut book = Book::new();
    let orders = random_orders(&mut rng, 30, 1, false);
    let batch = Batch { height: 1, now_ms: NOW, orders, cancels: vec![] };
    book.clear(&cat, &batch, &|_: &PublicKey| 0).unwrap();
    let parts: Vec<Resting> = book.orders().cloned().collect();
    assert!(parts.len() > 2);
    let nonces = book.nonces();
    let restore = |p: Vec<Resting>, n: Vec<(PublicKey, u64, u64)>| Book::restore(NOW, p, n);
    assert_eq!(restore(parts.clone(), nonces.clone()).unwrap(), book);
    // An order twice.
    let mut twice = parts.clone();
    twice.push(parts[0].clone());
    assert!(matches!(restore(twice, nonces.clone()), Err(RestoreError::Order { .. })));
    // A pair twice.
    let mut pairs = nonces.clone();
    pairs.push(nonces[0]);
    assert!(matches!(restore(parts.clone(), pairs), Err(RestoreError::DuplicateNonce { .. })));
    // An order whose pair is forgotten, or remembered until another time.
    let r = &parts[0];
    let pair = (r.order.author, r.order.order.nonce());
    let without: Vec<_> = nonces.iter().copied().filter(|n| (n.0, n.1) != pair).collect();
    let e = restore(parts.clone(), without).unwrap_err().to_string();
    assert!(e.contains("pair is not remembered"), "{e}");
    let moved: Vec<_> =
        nonces.iter().map(|n| if (n.0, n.1) == pair { (n.0, n.1, n.2 + 1) } else { *n }).collect();
    assert!(restore(parts.clone(), moved).is_err());
    // A bid with nothing left to fill, an offer with fewer slots than it has.
    let mut bad = parts.clone();
    bad[0].remaining = 0;
    assert!(restore(bad, nonces.clone()).is_err());
    if let Some(i) = parts.iter().position(|r| matches!(r.order.order, Order::Offer(_))) {
        let mut bad = parts.clone();
        bad[i].remaining -= 1;
        assert!(restore(bad, nonces.clone()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// An offer's allocations (a short sorted list, persistent maps past 8, with a running sum)
    /// answer exactly as a plain list does after any sequence of adds, replacements, moved ends
    /// and removals, list in (bid, start) order, equal the same allocations built afresh
    /// (whichever form each is in), and a clone taken midway keeps its own contents.
    #[test]
    fn allocations_agree_with_a_plain_list(ops in proptest::collection::vec(
        (0u8..4, 0u8..6, 0u64..5, 1u64..20, 1u32..9), 1..120),
    ) {
        let mut fast = Allocations::new();
        let mut plain: Vec<Allocation> = Vec::new();
        let mut snapshot = None;
        for (i, (op, bid, start, len, slots)) in ops.into_iter().enumerate() {
            let bid: Hash = [bid; 32];
            match op {
                0 | 1 => {
                    let a = Allocation { bid, start_ms: start, end_ms: start + len, slots };
                    plain.retain(|x| !(x.bid == bid && x.start_ms == start));
                    plain.push(a.clone());
                    fast.insert(a);
                }
                2 => {
                    let gone = plain.iter().position(|x| x.bid == bid && x.start_ms == start);
                    let removed = fast.remove(&bid, start);
                    prop_assert_eq!(removed.is_some(), gone.is_some());
                    if let Some(p) = gone {
                        prop_assert_eq!(removed.as_ref(), Some(&plain.remove(p)));
                    }
                }
                _ => {
                    if i % 7 == 0 {
                        snapshot = Some((fast.clone(), plain.clone()));
                    }
                }
            }
            prop_assert_eq!(fast.len(), plain.len());
            let mut sorted = plain.clone();
            sorted.sort_by_key(|x| (x.bid, x.start_ms));
            prop_assert_eq!(fast.iter().cloned().collect::<Vec<_>>(), sorted.clone());
            for a in &sorted {
                prop_assert_eq!(fast.get(&a.bid, a.start_ms), Some(a));
            }
            prop_assert_eq!(&Allocations::from_vec(sorted).unwrap(), &fast);
            for now in 0..26 {
                let used: u64 = plain
                    .iter()
                    .filter(|a| a.end_ms > now)
                    .map(|a| u64::from(a.slots))
                    .sum();
                prop_assert_eq!(fast.used_at(now), used, "at {}", now);
            }
        }
        if let Some((old, list)) = snapshot {
            let mut a: Vec<_> = old.iter().cloned().collect();
            let mut b = list;
            a.sort_by_key(|x| (x.bid, x.start_ms));
            b.sort_by_key(|x| (x.bid, x.start_ms));
            prop_assert_eq!(a, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A block's new orders trade beside the resting ones and enter the book only after the
    /// auction (a bid filled or cancelled in its own block never does); the result is exactly
    /// that of the orders entering first and the auction running over the whole book: the same
    /// fills, prices, cancels, refusals and expiries, the same book after, and every change the
    /// state root needs recorded.
    #[test]
    fn new_orders_trade_as_if_they_rested(
        seed in any::<u64>(),
        resting in 0usize..30,
        new in 0usize..30,
        limited in any::<bool>(),
        later in 0u64..3,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let balances: HashMap<PublicKey, u64> = (1..=4u8)
            .map(|b| (party(b), if limited { rng.gen_range(0..20_000) } else { u64::MAX }))
            .collect();
        let budget = |k: &PublicKey| balances.get(k).copied().unwrap_or(0);
        // Block 1 leaves resting orders, offers with allocations among them.
        let mut book = Book::new();
        let first = random_book(&mut rng, resting, 1, false, false);
        book.clear(&Catalogue::sample(), &Batch { height: 1, now_ms: NOW, orders: first.clone(), cancels: vec![] }, &budget).unwrap();
        book.take_changes();
        // Block 2: new orders, and cancels of resting orders, of new ones, by the wrong author,
        // of unknown ids, and twice.
        let now = NOW + later * HOUR_MS;
        let orders = random_book(&mut rng, new, 1_000, false, false);
        let mut cancels = Vec::new();
        for (k, o) in first.iter().chain(&orders).enumerate() {
            let author = o.author.0[0];
            match rng.gen_range(0..12) {
                0 => cancels.push(cancel(k as u64, author, o)),
                1 => cancels.push(cancel(k as u64, author.wrapping_add(1), o)),
                2 => {
                    cancels.push(cancel(k as u64, author, o));
                    cancels.push(cancel(k as u64 + 5_000, author, o));
                }
                _ => {}
            }
        }
        let unknown = bid(9_999, 1, 1, 1, 1, FillRule::AtLeast(1));
        cancels.push(cancel(9_999, 1, &unknown));
        let catalogue = Catalogue::sample();
        let batch = Batch { height: 2, now_ms: now, orders: orders.clone(), cancels: cancels.clone() };
        let mut got = book.clone();
        let out = got.clear(&catalogue, &batch, &budget).unwrap();

        // The same block with its accepted orders resting first.
        let accepted: Vec<&SignedOrder> = orders.iter().filter(|o| out.accepted.contains(&o.id)).collect();
        let mut all: Vec<Resting> = book.orders().cloned().collect();
        let mut nonces = book.nonces();
        for o in &accepted {
            let slots = match &o.order { Order::Bid(b) => b.slots, Order::Offer(of) => of.slots };
            all.push(Resting { order: (*o).clone(), height: 2, remaining: slots, allocations: Allocations::new() });
            nonces.push((o.author, o.order.nonce(), o.order.expiry_ms()));
        }
        let mut want = Book::restore(book.now_ms(), all, nonces).unwrap();
        let reference = want.clear(&catalogue, &Batch { height: 2, now_ms: now, orders: vec![], cancels }, &budget).unwrap();

        prop_assert_eq!(&out.fills, &reference.fills);
        prop_assert_eq!(&out.prices, &reference.prices);
        prop_assert_eq!(&out.cancelled, &reference.cancelled);
        prop_assert_eq!(&out.expired, &reference.expired);
        let order_ids: Vec<Hash> = orders.iter().map(|o| o.id).collect();
        let cancel_refusals: Vec<&Rejected> = out.rejected.iter().filter(|r| !order_ids.contains(&r.id)).collect();
        prop_assert_eq!(cancel_refusals, reference.rejected.iter().collect::<Vec<_>>());
        prop_assert!(got == want, "the books after differ");
        // Every order and allocation that differs from the book before is recorded as changed
        // (what the reference also records, but for the block's own orders cancelled in it,
        // which neither rested before nor rest after).
        let (mine, theirs) = (got.take_changes(), want.take_changes());
        let ids: std::collections::BTreeSet<Hash> = book.orders().chain(got.orders()).map(|r| r.order.id).collect();
        type Held = (Hash, Hash, u64, u64, u32);
        let allocations = |b: &Book| -> std::collections::BTreeSet<Held> {
            b.orders()
                .flat_map(|r| r.allocations.iter().map(move |a| (r.order.id, a.bid, a.start_ms, a.end_ms, a.slots)))
                .collect()
        };
        for id in ids {
            if book.get(&id) != got.get(&id) {
                prop_assert!(mine.orders.contains(&id));
            }
        }
        for (offer, bid, start, _, _) in allocations(&book).symmetric_difference(&allocations(&got)) {
            prop_assert!(mine.allocations.contains(&(*offer, *bid, *start)));
        }
        for id in theirs.orders.difference(&mine.orders) {
            prop_assert!(accepted.iter().any(|o| o.id == *id) && out.cancelled.contains(id));
        }
        prop_assert!(theirs.allocations.is_subset(&mine.allocations));
    }
}
