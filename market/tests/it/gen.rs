//! Builders for tests: orders with made-up ids and signatures (the book never checks
//! signatures; the ledger does), and random books.

use rand::rngs::StdRng;
use rand::Rng;
use surplus_ledger::{PublicKey, Signature};
use surplus_market::*;

pub const NOW: u64 = 1_700_000_000_000;

pub fn market() -> Market {
    Market::new("vm.4c16g", "eu-west-a")
}

pub fn party(i: u8) -> PublicKey {
    PublicKey([i; 32])
}

fn id_of(seed: u64) -> surplus_ledger::Hash {
    *blake3::hash(&seed.to_be_bytes()).as_bytes()
}

pub fn signed(id: u64, author: u8, order: Order) -> SignedOrder {
    SignedOrder { id: id_of(id), author: party(author), order, signature: Signature([0; 64]) }
}

pub fn offer(id: u64, provider: u8, slots: u32, reserve: u64) -> SignedOrder {
    signed(
        id,
        provider,
        Order::Offer(Offer {
            market: market(),
            slots,
            from_ms: NOW,
            until_ms: NOW + 1000 * HOUR_MS,
            reserve,
            min_hours: 0,
            expiry_ms: NOW + 48 * HOUR_MS,
            nonce: id,
        }),
    )
}

pub fn bid(id: u64, buyer: u8, slots: u32, hours: u32, limit: u64, fill: FillRule) -> SignedOrder {
    signed(
        id,
        buyer,
        Order::Bid(Bid {
            market: market(),
            slots,
            hours,
            limit,
            earliest_ms: NOW,
            latest_ms: NOW + 10 * HOUR_MS,
            fill,
            expiry_ms: NOW + 48 * HOUR_MS,
            nonce: id,
        }),
    )
}

pub fn cancel(id: u64, author: u8, order: &SignedOrder) -> SignedCancel {
    SignedCancel {
        id: id_of(id ^ 0xcafe),
        author: party(author),
        cancel: Cancel { order: order.id },
        signature: Signature([0; 64]),
    }
}

pub fn unlimited(_: &PublicKey) -> u64 {
    u64::MAX
}

/// A random book of `n` orders in one or two markets; buyers are parties 1..=4, providers 11..=14.
/// `mutually_eligible`: one duration, windows that fit, partial fills allowed.
pub fn random_orders(
    rng: &mut StdRng,
    n: usize,
    first_id: u64,
    mutually_eligible: bool,
) -> Vec<SignedOrder> {
    random_book(rng, n, first_id, mutually_eligible, false)
}

/// Like [`random_orders`]; with `pooled`, every offer's window fits every bid (so each market
/// is one pool of slots) while durations and fill rules still vary.
pub fn random_book(
    rng: &mut StdRng,
    n: usize,
    first_id: u64,
    mutually_eligible: bool,
    pooled: bool,
) -> Vec<SignedOrder> {
    (0..n as u64)
        .map(|k| {
            let id = first_id + k;
            let m = if !mutually_eligible && rng.gen_bool(0.2) {
                Market::new("gpu.a100", "eu-west-a")
            } else {
                market()
            };
            if rng.gen_bool(0.5) {
                let until = if mutually_eligible || pooled {
                    NOW + 1000 * HOUR_MS
                } else {
                    NOW + rng.gen_range(1..60) * HOUR_MS
                };
                signed(
                    id,
                    rng.gen_range(11..=14),
                    Order::Offer(Offer {
                        market: m,
                        slots: rng.gen_range(1..8),
                        from_ms: if mutually_eligible {
                            NOW
                        } else {
                            NOW - rng.gen_range(0..2) * HOUR_MS
                        },
                        until_ms: until,
                        reserve: rng.gen_range(1..40),
                        min_hours: if mutually_eligible || pooled {
                            0
                        } else {
                            rng.gen_range(0..4)
                        },
                        expiry_ms: NOW + rng.gen_range(1..30) * HOUR_MS,
                        nonce: id,
                    }),
                )
            } else {
                let fill = match rng.gen_range(0..3) {
                    _ if mutually_eligible => FillRule::AtLeast(1),
                    0 => FillRule::AllOrNone,
                    1 => FillRule::AtLeast(1),
                    _ => FillRule::AtLeast(2),
                };
                let slots = rng.gen_range(2..8);
                signed(
                    id,
                    rng.gen_range(1..=4),
                    Order::Bid(Bid {
                        market: m,
                        slots,
                        hours: if mutually_eligible { 5 } else { rng.gen_range(1..40) },
                        limit: rng.gen_range(1..40),
                        earliest_ms: NOW - HOUR_MS,
                        latest_ms: NOW + rng.gen_range(0..20) * HOUR_MS,
                        fill,
                        expiry_ms: NOW + rng.gen_range(1..30) * HOUR_MS,
                        nonce: id,
                    }),
                )
            }
        })
        .collect()
}
