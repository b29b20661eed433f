//! The worked examples of docs/auction.md, each checked.

use surplus_ledger::PublicKey;
use surplus_market::*;

use crate::gen::*;

fn run(book: &mut Book, height: u64, orders: Vec<SignedOrder>) -> Outcome {
    book.clear(
        &Catalogue::sample(),
        &Batch { height, now_ms: NOW, orders, cancels: vec![] },
        &unlimited,
    )
    .unwrap()
}

fn slots_for(out: &Outcome, o: &SignedOrder) -> u32 {
    out.fills.iter().filter(|f| f.bid == o.id || f.offer == o.id).map(|f| f.slots).sum()
}

/// Example 1: one offer, one bid: the price is the midpoint of reserve and limit.
#[test]
fn example_1_midpoint_of_the_marginal_pair() {
    let mut book = Book::new();
    let o = offer(1, 11, 10, 50);
    let b = bid(2, 1, 4, 24, 70, FillRule::AllOrNone);
    let out = run(&mut book, 1, vec![o.clone(), b.clone()]);
    assert_eq!(out.prices[&market()], 60);
    assert_eq!(out.fills.len(), 1);
    let f = &out.fills[0];
    assert_eq!((f.slots, f.start_ms, f.end_ms, f.price), (4, NOW, NOW + 24 * HOUR_MS, 60));
    assert_eq!(f.cost(), 4 * 24 * 60);
    // The offer keeps resting with 6 free slots; the bid is gone.
    assert_eq!(book.len(), 1);
    assert_eq!(book.get(&o.id).unwrap().free_at(NOW), 6);
}

/// Example 2: the price that maximises slot-hours, then the midpoint of the maximising range.
#[test]
fn example_2_volume_first_then_midpoint() {
    let mut book = Book::new();
    let a = offer(1, 11, 5, 40);
    let b = offer(2, 12, 5, 60);
    let x = bid(3, 1, 6, 10, 80, FillRule::AtLeast(1));
    let y = bid(4, 2, 4, 10, 50, FillRule::AtLeast(1));
    let out = run(&mut book, 1, vec![a.clone(), b.clone(), x.clone(), y.clone()]);
    // At 40..=50 only A sells (5 slots); at 60..=80 A and B sell and X buys 6: 60 slot-hours.
    assert_eq!(out.prices[&market()], 70);
    assert_eq!((slots_for(&out, &x), slots_for(&out, &y)), (6, 0));
    assert_eq!((slots_for(&out, &a), slots_for(&out, &b)), (5, 1));
    assert!(out.fills.iter().all(|f| f.price == 70));
}

/// Example 3: an all-or-none bid that cannot fill is skipped; the next bid fills.
#[test]
fn example_3_all_or_none_is_skipped_not_split() {
    let mut book = Book::new();
    let o = offer(1, 11, 3, 10);
    let a = bid(2, 1, 4, 5, 20, FillRule::AllOrNone);
    let b = bid(3, 2, 2, 5, 15, FillRule::AtLeast(1));
    let out = run(&mut book, 1, vec![o, a.clone(), b.clone()]);
    assert_eq!(slots_for(&out, &a), 0);
    assert_eq!(slots_for(&out, &b), 2);
    assert_eq!(out.prices[&market()], 12); // maximising range 10..=15, midpoint 12
    assert!(book.get(&a.id).is_some(), "the all-or-none bid rests");
}

/// Example 4: an offer serves only leases that fit its window and minimum length.
#[test]
fn example_4_durations_must_fit_the_offer() {
    let mut book = Book::new();
    let mut short = offer(1, 11, 5, 10);
    if let Order::Offer(o) = &mut short.order {
        o.until_ms = NOW + 8 * HOUR_MS;
        o.min_hours = 2;
    }
    let too_long = bid(2, 1, 1, 9, 30, FillRule::AtLeast(1));
    let too_short = bid(3, 2, 1, 1, 30, FillRule::AtLeast(1));
    let fits = bid(4, 3, 1, 8, 20, FillRule::AtLeast(1));
    let out = run(&mut book, 1, vec![short, too_long.clone(), too_short.clone(), fits.clone()]);
    assert_eq!(
        (slots_for(&out, &too_long), slots_for(&out, &too_short), slots_for(&out, &fits)),
        (0, 0, 1)
    );
}

/// Example 5: a buyer's budget caps its fill at the clearing price; the price does not move.
#[test]
fn example_5_budgets_cap_fills_not_prices() {
    let mut book = Book::new();
    let o = offer(1, 11, 10, 10);
    let b = bid(2, 1, 4, 10, 30, FillRule::AtLeast(1));
    let budget = |k: &PublicKey| if *k == party(1) { 2 * 10 * 20 + 5 } else { 0 };
    let out = book
        .clear(
            &Catalogue::sample(),
            &Batch { height: 1, now_ms: NOW, orders: vec![o, b.clone()], cancels: vec![] },
            &budget,
        )
        .unwrap();
    assert_eq!(out.prices[&market()], 20);
    assert_eq!(slots_for(&out, &b), 2);
    assert_eq!(book.get(&b.id).unwrap().remaining, 2);
}

/// Example 6: at one price, the earlier block's bid goes first; in one block, the smaller id.
#[test]
fn example_6_time_priority_then_id() {
    let mut book = Book::new();
    let early = bid(1, 1, 2, 5, 20, FillRule::AtLeast(1));
    run(&mut book, 1, vec![early.clone()]);
    let late = bid(2, 2, 2, 5, 20, FillRule::AtLeast(1));
    let o = offer(3, 11, 2, 10);
    let out = run(&mut book, 2, vec![late.clone(), o]);
    assert_eq!((slots_for(&out, &early), slots_for(&out, &late)), (2, 0));
}

/// Example 7: cancels apply before the auction; expired orders leave the book and never fill.
#[test]
fn example_7_cancelled_and_expired_orders_never_fill() {
    let mut book = Book::new();
    let b = bid(1, 1, 2, 5, 20, FillRule::AtLeast(1));
    let mut old = bid(2, 2, 2, 5, 25, FillRule::AtLeast(1));
    if let Order::Bid(x) = &mut old.order {
        x.expiry_ms = NOW + 1;
    }
    run(&mut book, 1, vec![b.clone(), old.clone()]);
    let o = offer(3, 11, 10, 10);
    let out = book
        .clear(
            &Catalogue::sample(),
            &Batch { height: 2, now_ms: NOW + 1, orders: vec![o], cancels: vec![cancel(4, 1, &b)] },
            &unlimited,
        )
        .unwrap();
    assert_eq!(out.cancelled, vec![b.id]);
    assert_eq!(out.expired, vec![old.id]);
    assert!(out.fills.is_empty());
    assert!(out.prices.is_empty());
}

/// Example 8: a provider never buys from itself.
#[test]
fn example_8_no_self_trade() {
    let mut book = Book::new();
    let o = offer(1, 7, 5, 10);
    let b = bid(2, 7, 2, 5, 20, FillRule::AtLeast(1));
    let out = run(&mut book, 1, vec![o, b]);
    assert!(out.fills.is_empty());
}

/// Slots leased in one block are not free again until the lease ends.
#[test]
fn leased_slots_return_when_the_lease_ends() {
    let cat = Catalogue::sample();
    let mut book = Book::new();
    let o = offer(1, 11, 3, 10);
    let b1 = bid(2, 1, 3, 2, 20, FillRule::AtLeast(1));
    book.clear(
        &cat,
        &Batch { height: 1, now_ms: NOW, orders: vec![o.clone(), b1], cancels: vec![] },
        &unlimited,
    )
    .unwrap();
    assert_eq!(book.get(&o.id).unwrap().free_at(NOW + HOUR_MS), 0);
    let b2 = bid(3, 2, 3, 2, 20, FillRule::AtLeast(1));
    let out = book
        .clear(
            &cat,
            &Batch { height: 2, now_ms: NOW + HOUR_MS, orders: vec![b2.clone()], cancels: vec![] },
            &unlimited,
        )
        .unwrap();
    assert!(out.fills.is_empty());
    let out = book
        .clear(
            &cat,
            &Batch { height: 3, now_ms: NOW + 2 * HOUR_MS, orders: vec![], cancels: vec![] },
            &unlimited,
        )
        .unwrap();
    assert_eq!(slots_for(&out, &b2), 3);
}

/// Example 9: an offer counts toward the price only if some active bid's duration fits it. Offer
/// y fits neither bid (its 8-hour minimum is longer than the 5-hour bid, and the 10-hour bid
/// overruns its window), so it does not count, even though the shortest bid fits its window and
/// its minimum is below the longest bid (the separate checks once let it count: the price was 10,
/// where only y sells, and nothing traded).
#[test]
fn example_9_an_offer_no_bid_fits_does_not_move_the_price() {
    let mut book = Book::new();
    let p = bid(1, 1, 1, 10, 20, FillRule::AtLeast(1));
    run(&mut book, 1, vec![p.clone()]);
    let q = bid(2, 2, 1, 5, 20, FillRule::AtLeast(1));
    let mut x = offer(3, 11, 1, 15);
    if let Order::Offer(o) = &mut x.order {
        o.min_hours = 1;
    }
    let mut y = offer(4, 12, 5, 1);
    if let Order::Offer(o) = &mut y.order {
        o.until_ms = NOW + 8 * HOUR_MS;
        o.min_hours = 8;
    }
    let out = run(&mut book, 2, vec![q.clone(), x.clone(), y.clone()]);
    // Only x counts: 15..=20 trade 10 slot-hours (P takes x's slot), so the price is 17.
    assert_eq!(out.prices[&market()], 17);
    assert_eq!(out.fills.len(), 1);
    let f = &out.fills[0];
    assert_eq!((f.bid, f.offer, f.slots, f.price), (p.id, x.id, 1, 17));
    assert_eq!(f.cost(), 10 * 17);
    assert_eq!((slots_for(&out, &q), slots_for(&out, &y)), (0, 0));
    assert_eq!(book.get(&q.id).unwrap().remaining, 1, "Q rests");
}

/// Example 10: in the price search every bid counts only for the slots its buyer could pay for
/// at its own limit, also after a bid that does not fit whole (the cap once stopped applying
/// there: B counted for 10 slots behind the skipped all-or-none bid and the price was 10).
#[test]
fn example_10_the_budget_cap_applies_to_every_bid_in_the_price_search() {
    let mut book = Book::new();
    let o = offer(1, 11, 10, 1);
    let a = bid(2, 1, 11, 1, 30, FillRule::AllOrNone);
    let b = bid(3, 2, 10, 1, 20, FillRule::AtLeast(1));
    let c = bid(4, 3, 5, 1, 10, FillRule::AtLeast(1));
    // B's buyer can pay for 5 slots at B's limit: 5 × 1 h × 20 units.
    let budget = |k: &PublicKey| if *k == party(2) { 5 * 20 } else { u64::MAX };
    let out = book
        .clear(
            &Catalogue::sample(),
            &Batch {
                height: 1,
                now_ms: NOW,
                orders: vec![o.clone(), a.clone(), b.clone(), c.clone()],
                cancels: vec![],
            },
            &budget,
        )
        .unwrap();
    // 1..=10: A is skipped (11 slots of 10), B counts for 5, C takes the other 5: 10 slot-hours.
    // 11..=20: B's 5. 21..=30: nothing. The price is the midpoint of 1..=10.
    assert_eq!(out.prices[&market()], 5);
    // At 5 B's buyer can pay for 20 slots, so B takes all 10; A and C rest.
    assert_eq!((slots_for(&out, &a), slots_for(&out, &b), slots_for(&out, &c)), (0, 10, 0));
    assert_eq!(out.fills.iter().map(Fill::cost).sum::<u64>(), 10 * 5);
    assert!(book.get(&a.id).is_some() && book.get(&c.id).is_some());
}
