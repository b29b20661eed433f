//! Order encoding, signing and validation: every rejection has its reason.

use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, EntryKind};
use surplus_market::*;

use crate::gen::*;

fn base_bid() -> Bid {
    match bid(1, 1, 4, 10, 100, FillRule::AllOrNone).order {
        Order::Bid(b) => b,
        Order::Offer(_) => unreachable!(),
    }
}

fn base_offer() -> Offer {
    match offer(2, 2, 4, 100).order {
        Order::Offer(o) => o,
        Order::Bid(_) => unreachable!(),
    }
}

#[test]
fn orders_round_trip_through_signed_entries() {
    let k = key("buyer", 7);
    for order in [Order::Bid(base_bid()), Order::Offer(base_offer())] {
        let (entry, signed) = SignedOrder::sign("chain", order.clone(), &k);
        assert_eq!(signed.order, order);
        assert_eq!(signed.id, entry.id());
        assert_eq!(signed.author, k.public());
        entry.verify_signature("chain").unwrap();
        assert!(entry.verify_signature("other-chain").is_err());
        assert_eq!(SignedOrder::from_entry(&signed.to_entry()).unwrap(), signed);
        assert_eq!(Order::decode(&order.encode()).unwrap(), order);
    }
    let (entry, c) = SignedCancel::sign("chain", [9; 32], &k);
    assert_eq!(c.cancel.order, [9; 32]);
    assert_eq!(SignedCancel::from_entry(&entry).unwrap(), c);
    // Wrong kind, unsigned.
    assert!(matches!(SignedOrder::from_entry(&entry), Err(Rejection::WrongKind { .. })));
    let unsigned = Entry::system(EntryKind::ORDER, Order::Bid(base_bid()).encode());
    assert_eq!(SignedOrder::from_entry(&unsigned), Err(Rejection::Unsigned));
}

#[test]
fn malformed_payloads_are_rejected_without_panic() {
    let good = Order::Bid(base_bid()).encode();
    for cut in 0..good.len() {
        assert!(Order::decode(&good[..cut]).is_err());
    }
    let mut long = good.clone();
    long.push(0);
    assert!(Order::decode(&long).is_err());
    let mut bad_side = good.clone();
    bad_side[0] = 9;
    assert!(Order::decode(&bad_side).is_err());
    let mut x = 1u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let _ = Order::decode(&bytes);
        let _ = Cancel::decode(&bytes);
    }
    // A market name with a forbidden character.
    let mut upper = good.clone();
    upper[2] = b'V';
    assert!(Order::decode(&upper).is_err());
}

#[test]
fn every_rejection_has_its_reason() {
    let cat = Catalogue::sample();
    let ok_bid = base_bid();
    let ok_offer = base_offer();
    assert_eq!(validate(&Order::Bid(ok_bid.clone()), &cat, NOW), Ok(()));
    assert_eq!(validate(&Order::Offer(ok_offer.clone()), &cat, NOW), Ok(()));

    let bid_with = |f: &dyn Fn(&mut Bid)| {
        let mut b = ok_bid.clone();
        f(&mut b);
        validate(&Order::Bid(b), &cat, NOW)
    };
    let offer_with = |f: &dyn Fn(&mut Offer)| {
        let mut o = ok_offer.clone();
        f(&mut o);
        validate(&Order::Offer(o), &cat, NOW)
    };
    assert!(matches!(
        bid_with(&|b| b.market = Market::new("vm.4c16g", "moon-1")),
        Err(Rejection::UnknownMarket(_))
    ));
    assert!(matches!(
        offer_with(&|o| o.market = Market::new("tpu.v9", "eu-west-a")),
        Err(Rejection::UnknownMarket(_))
    ));
    assert_eq!(bid_with(&|b| b.slots = 0), Err(Rejection::ZeroSlots));
    assert_eq!(
        offer_with(&|o| o.slots = MAX_SLOTS + 1),
        Err(Rejection::TooManySlots { slots: MAX_SLOTS + 1 })
    );
    assert_eq!(bid_with(&|b| b.hours = 0), Err(Rejection::BadDuration { hours: 0 }));
    assert_eq!(
        bid_with(&|b| b.hours = MAX_HOURS + 1),
        Err(Rejection::BadDuration { hours: MAX_HOURS + 1 })
    );
    assert_eq!(bid_with(&|b| b.limit = 0), Err(Rejection::ZeroLimit));
    assert_eq!(bid_with(&|b| b.limit = u64::MAX), Err(Rejection::CostOverflow));
    assert_eq!(offer_with(&|o| o.reserve = u64::MAX / 2), Err(Rejection::CostOverflow));
    assert!(matches!(
        bid_with(&|b| b.earliest_ms = b.latest_ms + 1),
        Err(Rejection::WindowInverted { .. })
    ));
    assert!(matches!(
        offer_with(&|o| o.from_ms = o.until_ms),
        Err(Rejection::WindowInverted { .. })
    ));
    assert!(matches!(
        bid_with(&|b| {
            b.earliest_ms = NOW - 9;
            b.latest_ms = NOW - 1
        }),
        Err(Rejection::WindowInPast { .. })
    ));
    assert!(matches!(
        offer_with(&|o| {
            o.from_ms = NOW - 9;
            o.until_ms = NOW
        }),
        Err(Rejection::WindowInPast { .. })
    ));
    assert!(matches!(
        bid_with(&|b| b.latest_ms = NOW + MAX_WINDOW_HORIZON_MS + 1),
        Err(Rejection::WindowTooFar { .. })
    ));
    assert!(matches!(offer_with(&|o| o.min_hours = 2000), Err(Rejection::WindowTooShort { .. })));
    assert!(matches!(
        offer_with(&|o| o.until_ms = NOW + HOUR_MS / 2),
        Err(Rejection::WindowTooShort { .. })
    ));
    assert_eq!(
        bid_with(&|b| b.fill = FillRule::AtLeast(0)),
        Err(Rejection::BadFillRule { min: 0, slots: 4 })
    );
    assert_eq!(
        bid_with(&|b| b.fill = FillRule::AtLeast(5)),
        Err(Rejection::BadFillRule { min: 5, slots: 4 })
    );
    assert!(matches!(bid_with(&|b| b.expiry_ms = NOW), Err(Rejection::Expired { .. })));
    assert!(matches!(
        offer_with(&|o| o.expiry_ms = NOW + MAX_EXPIRY_HORIZON_MS + 1),
        Err(Rejection::ExpiryTooFar { .. })
    ));
}

#[test]
fn replays_unknown_cancels_and_foreign_cancels_are_refused_in_the_outcome() {
    let cat = Catalogue::sample();
    let mut book = Book::new();
    let b = bid(1, 1, 2, 5, 10, FillRule::AtLeast(1));
    let out = book
        .clear(
            &cat,
            &Batch { height: 1, now_ms: NOW, orders: vec![b.clone()], cancels: vec![] },
            &unlimited,
        )
        .unwrap();
    assert_eq!(out.accepted, vec![b.id]);
    // The same order again, and another order reusing the nonce.
    let mut same_nonce = bid(2, 1, 3, 5, 10, FillRule::AtLeast(1));
    if let Order::Bid(x) = &mut same_nonce.order {
        x.nonce = 1;
    }
    let stranger = cancel(3, 9, &b);
    let ghost = cancel(4, 1, &offer(99, 2, 1, 1));
    let out = book
        .clear(
            &cat,
            &Batch {
                height: 2,
                now_ms: NOW,
                orders: vec![b.clone(), same_nonce.clone()],
                cancels: vec![stranger.clone(), ghost.clone()],
            },
            &unlimited,
        )
        .unwrap();
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.id, r.reason.clone())).collect();
    assert!(reasons.contains(&(b.id, Rejection::ReplayedNonce { nonce: 1 })));
    assert!(reasons.contains(&(same_nonce.id, Rejection::ReplayedNonce { nonce: 1 })));
    assert!(reasons.contains(&(stranger.id, Rejection::NotAuthor)));
    assert!(reasons
        .iter()
        .any(|(id, r)| *id == ghost.id && matches!(r, Rejection::UnknownOrder(_))));
    assert_eq!(book.len(), 1);
    // The author's cancel works once.
    let own = cancel(5, 1, &b);
    let out = book
        .clear(
            &cat,
            &Batch { height: 3, now_ms: NOW, orders: vec![], cancels: vec![own.clone()] },
            &unlimited,
        )
        .unwrap();
    assert_eq!(out.cancelled, vec![b.id]);
    assert!(book.is_empty());
    let out = book
        .clear(
            &cat,
            &Batch { height: 4, now_ms: NOW, orders: vec![], cancels: vec![own] },
            &unlimited,
        )
        .unwrap();
    assert_eq!(out.rejected.len(), 1);
}

#[test]
fn a_replay_is_refused_as_one_whatever_else_is_wrong_and_changes_nothing() {
    let cat = Catalogue::sample();
    let mut book = Book::new();
    let b = bid(1, 1, 2, 5, 10, FillRule::AtLeast(1));
    let run = |book: &mut Book, height, orders| {
        let batch = Batch { height, now_ms: NOW, orders, cancels: vec![] };
        book.clear(&cat, &batch, &unlimited).unwrap()
    };
    assert_eq!(run(&mut book, 1, vec![b.clone()]).accepted, vec![b.id]);
    let before = book.clone();
    let nonces = book.nonces();
    // The same nonce with a later expiry (valid), and with an unknown market (invalid).
    let mut later = bid(2, 1, 3, 5, 10, FillRule::AtLeast(1));
    let mut unknown = bid(3, 1, 3, 5, 10, FillRule::AtLeast(1));
    if let (Order::Bid(x), Order::Bid(y)) = (&mut later.order, &mut unknown.order) {
        (x.nonce, x.expiry_ms) = (1, NOW + 96 * HOUR_MS);
        (y.nonce, y.market) = (1, Market::new("vm.nothing", "eu-west-a"));
    }
    // A fresh nonce with an unknown market is refused for the market.
    let mut fresh = unknown.clone();
    fresh.id = bid(4, 1, 1, 1, 1, FillRule::AtLeast(1)).id;
    if let Order::Bid(x) = &mut fresh.order {
        x.nonce = 4;
    }
    let out = run(&mut book, 2, vec![later.clone(), unknown.clone(), fresh.clone()]);
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.id, r.reason.clone())).collect();
    assert!(reasons.contains(&(later.id, Rejection::ReplayedNonce { nonce: 1 })), "{reasons:?}");
    assert!(reasons.contains(&(unknown.id, Rejection::ReplayedNonce { nonce: 1 })), "{reasons:?}");
    assert!(
        reasons.iter().any(|(id, r)| *id == fresh.id && matches!(r, Rejection::UnknownMarket(_))),
        "{reasons:?}"
    );
    assert!(out.accepted.is_empty());
    // The pair keeps its expiry; the book is as it was (its time aside).
    assert_eq!(book.nonces(), nonces);
    assert_eq!(book.nonce_expiry(&b.author, 1), Some(NOW + 48 * HOUR_MS));
    assert_eq!(book.orders().collect::<Vec<_>>(), before.orders().collect::<Vec<_>>());
}

#[test]
fn entries_are_validated_in_one_batch_and_each_bad_one_is_named() {
    let cat = Catalogue::sample();
    let mut entries = Vec::new();
    for i in 0..20u64 {
        let mut b = base_bid();
        b.nonce = i;
        let (e, _) = SignedOrder::sign("chain", Order::Bid(b), &key("buyer", i % 3));
        entries.push(e);
    }
    let (c, _) = SignedCancel::sign("chain", [1; 32], &key("buyer", 0));
    entries.push(c);
    let all = validate_entries("chain", &entries, &cat, NOW);
    assert!(all.iter().all(Result::is_ok));
    assert!(matches!(all[20], Ok(Validated::Cancel(_))));
    // Forge two signatures, break one order's fields, sign one for another chain.
    for i in [3, 11] {
        if let surplus_ledger::Auth::Signed { signature, .. } = &mut entries[i].auth {
            signature.0[10] ^= 1;
        }
    }
    let mut bad = base_bid();
    bad.slots = 0;
    entries[5] = SignedOrder::sign("chain", Order::Bid(bad), &key("buyer", 1)).0;
    entries[7] = SignedOrder::sign("other", Order::Offer(base_offer()), &key("seller", 1)).0;
    let all = validate_entries("chain", &entries, &cat, NOW);
    for (i, r) in all.iter().enumerate() {
        match i {
            3 | 7 | 11 => assert!(matches!(r, Err(Rejection::BadSignature(_))), "{i}: {r:?}"),
            5 => assert_eq!(r, &Err(Rejection::ZeroSlots)),
            _ => assert!(r.is_ok(), "{i}: {r:?}"),
        }
    }
}

#[test]
fn a_market_is_found_by_its_names_alone_whatever_they_share() {
    // Names sharing their first bytes, shorter and longer than 8, in and out of the catalogue.
    let names = ["vm", "vm.1", "vm.10", "vm.10c40g", "vm.10c40g-a", "vm.10c40gx", "vm.2", "z"];
    let regions = ["eu", "eu-west", "eu-west-a", "eu-west-ab"];
    let catalogue = Catalogue {
        classes: names
            .iter()
            .map(|n| Class {
                id: (*n).into(),
                description: String::new(),
                attributes: Default::default(),
            })
            .collect(),
        regions: regions
            .iter()
            .map(|r| Region { id: (*r).into(), description: String::new() })
            .collect(),
    }
    .validated()
    .unwrap();
    let all = catalogue.markets();
    for (place, m) in all.iter().enumerate() {
        assert_eq!(catalogue.market_index(m), Some(place), "{m}");
    }
    for (class, region) in [
        ("vm.10c40", "eu"),
        ("vm.10c40g-", "eu"),
        ("vm.10c40g-ab", "eu"),
        ("vm.", "eu"),
        ("v", "eu"),
        ("vm.3", "eu"),
        ("vm", "eu-wes"),
        ("vm", "eu-west-abc"),
        ("vm", "e"),
        ("zz", "eu"),
    ] {
        assert_eq!(catalogue.market_index(&Market::new(class, region)), None, "{class}@{region}");
    }
}
