//! A small consortium and a sample ledger for tests, here and in the crates that audit ledgers
//! (deterministic keys from [`surplus_ledger::testutil::key`]; nothing here is for production).

use surplus_ledger::testutil::{certificate, key, proposer_round};
use surplus_ledger::{Block, Entry, EntryKind, PublicKey, SecretKey, ValidatorSet};
use surplus_market::{Bid, Catalogue, FillRule, Market, Offer, Order, SignedOrder, HOUR_MS};

use crate::{Allocation, BlockMaker, Genesis, Lease, LeaseStatus, Params, Segment, Tx};

/// The sample chain id.
pub const CHAIN: &str = "contracts-test";
/// Genesis time.
pub const T0: u64 = 1_767_225_600_000;

/// Provider `i`.
pub fn provider(i: u64) -> SecretKey {
    key("provider", i)
}
/// Buyer `i`.
pub fn buyer(i: u64) -> SecretKey {
    key("buyer", i)
}
/// The treasury.
pub fn treasury() -> PublicKey {
    key("treasury", 0).public()
}
/// The market every sample order trades in.
pub fn market() -> Market {
    Market::new("vm.4c16g", "eu-west-a")
}

/// Four validators, three buyers and three providers with credits, the sample catalogue.
pub fn genesis(fee_bps: u16, penalty_bps: u16) -> Genesis {
    let mut allocations: Vec<Allocation> =
        (0..3).map(|i| Allocation { account: buyer(i).public(), amount: 10_000_000 }).collect();
    allocations
        .extend((0..3).map(|i| Allocation { account: provider(i).public(), amount: 1_000_000 }));
    Genesis {
        validators: (0..4).map(|i| key("validator", i).public()).collect(),
        params: Params {
            catalogue: Catalogue::sample(),
            treasury: treasury(),
            fee_bps,
            penalty_bps,
            notice_ms: crate::maintenance::DEFAULT_NOTICE_MS,
            supervision: None,
        },
        allocations,
    }
}

/// An offer of `slots` at `reserve` for `until_h` hours from `now`.
pub fn offer(p: &SecretKey, slots: u32, reserve: u64, until_h: u64, nonce: u64, now: u64) -> Entry {
    let o = Order::Offer(Offer {
        market: market(),
        slots,
        from_ms: now,
        until_ms: now + until_h * HOUR_MS,
        reserve,
        min_hours: 1,
        expiry_ms: now + until_h * HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, p).0
}

/// A bid for `slots` for `hours` at up to `limit`, partial fills accepted.
pub fn bid(b: &SecretKey, slots: u32, hours: u32, limit: u64, nonce: u64, now: u64) -> Entry {
    let o = Order::Bid(Bid {
        market: market(),
        slots,
        hours,
        limit,
        earliest_ms: now,
        latest_ms: now + 2 * HOUR_MS,
        fill: FillRule::AtLeast(1),
        expiry_ms: now + 2 * HOUR_MS,
        nonce,
    });
    SignedOrder::sign(CHAIN, o, b).0
}

/// A signed transaction.
pub fn tx(author: &SecretKey, t: Tx) -> Entry {
    Entry::signed(CHAIN, t.kind(), t.encode(), author)
}

/// The genesis validator set of the sample consortium: validators 0 to 3, power 1 each.
pub fn genesis_set() -> ValidatorSet {
    ValidatorSet::new((0..4).map(|i| key("validator", i).public()).collect())
        .expect("four distinct keys")
}

/// The secret key of a test validator, `key("validator", i)` for some i below 64.
pub fn validator_key(k: &PublicKey) -> Option<SecretKey> {
    (0..64).map(|i| key("validator", i)).find(|s| s.public() == *k)
}

/// `b` with a commit certificate of the validators 0, 1 and 2 of the genesis set, in the
/// first round its proposer proposes (genesis has none).
pub fn certify(b: Block) -> Block {
    certify_by(b, &genesis_set())
}

/// `b` with a commit certificate of `set` in the first round its proposer proposes: signed by
/// the set's first validators whose voting power makes a quorum (all test validators, see
/// [`validator_key`]).
pub fn certify_by(mut b: Block, set: &ValidatorSet) -> Block {
    if b.header.height > 0 {
        let keys: Vec<SecretKey> = set
            .validators
            .iter()
            .map(|k| validator_key(k).unwrap_or_else(|| key("not-a-test-validator", 0)))
            .collect();
        let proposer = set.index_of(&b.header.proposer);
        let round = proposer_round(keys.len(), b.header.height, proposer.unwrap_or(0));
        let mut signers = Vec::new();
        let mut power = 0;
        for (i, p) in set.powers.iter().enumerate() {
            if power >= set.quorum() {
                break;
            }
            signers.push(i);
            power += p;
        }
        b.certificate =
            certificate(CHAIN, b.header.height, round, &b.header.hash(), &keys, &signers);
    }
    b
}

/// The set a block's `validator-set` entry puts in force, if it holds a valid one.
fn set_change(b: &Block) -> Option<ValidatorSet> {
    b.entries
        .iter()
        .find(|e| e.kind == EntryKind::VALIDATOR_SET)
        .and_then(|e| ValidatorSet::decode_weighted(&e.payload).ok())
}

/// A governance ledger: genesis; in block 1 validator 0 proposes to admit validator 4 (power
/// 1, `/ip4/127.0.0.1/tcp/7004`) and to remove validator 3, both from block 12, and provider 0
/// offers; in block 2 validators 0, 1 and 2 vote yes on both (3 of 4: both pass) and buyer 0
/// bids, which fills; blocks 3 to 11 are empty, and the end of block 11 enacts both proposals
/// and puts the set (validators 0, 1, 2, 4) in force from block 12; blocks 12 and 13 are
/// proposed and certified by the new set. Each block is proposed in round 0 by validator
/// `(h - 1) mod n` of its set.
pub fn gov_ledger() -> Vec<Block> {
    use crate::governance::Action;
    let v = |i| key("validator", i);
    let (g, mut maker) =
        BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).expect("the gov ledger builds");
    let mut blocks = vec![g];
    let mut set = genesis_set();
    let add = Action::AddValidator {
        key: v(4).public(),
        power: 1,
        address: "/ip4/127.0.0.1/tcp/7004".into(),
    };
    let remove = Action::RemoveValidator { key: v(3).public() };
    let a = tx(&v(0), Tx::GovPropose { action: add, effective: 12, seq: 0 });
    let b = tx(&v(0), Tx::GovPropose { action: remove, effective: 12, seq: 1 });
    let (ida, idb) = (a.id(), b.id());
    let mut now = T0;
    for h in 1..=13u64 {
        let user = match h {
            1 => vec![a.clone(), b.clone(), offer(&provider(0), 5, 20, 100, 1, now)],
            2 => {
                let mut votes = Vec::new();
                for i in 0..3 {
                    let seq = if i == 0 { 2 } else { 0 };
                    votes.push(tx(&v(i), Tx::GovVote { proposal: ida, yes: true, seq }));
                    votes.push(tx(&v(i), Tx::GovVote { proposal: idb, yes: true, seq: seq + 1 }));
                }
                votes.push(bid(&buyer(0), 2, 10, 30, 1, now));
                votes
            }
            _ => Vec::new(),
        };
        let n = set.validators.len() as u64;
        let proposer = set.validators[((h - 1) % n) as usize];
        let (b, _) = maker.next(&user, now, proposer).expect("the gov ledger builds");
        let changed = set_change(&b);
        blocks.push(certify_by(b, &set));
        if let Some(new) = changed {
            set = new;
        }
        now += 60_000;
    }
    blocks
}

/// Genesis, then blocks with offers, bids, a transfer, a renewal and settlements.
pub fn ledger() -> Vec<Block> {
    let (g, mut maker) =
        BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).expect("the sample ledger builds");
    let mut blocks = vec![g];
    let proposer = key("validator", 0).public();
    let mut now = T0;
    let (b, _) = maker
        .next(
            &[
                offer(&provider(0), 5, 20, 100, 1, now),
                bid(&buyer(0), 2, 10, 30, 1, now),
                bid(&buyer(1), 3, 5, 25, 1, now),
            ],
            now,
            proposer,
        )
        .expect("the sample ledger builds");
    blocks.push(certify(b));
    now += HOUR_MS;
    let lease = maker.state.leases().next().expect("the sample ledger builds").id;
    let (b, _) = maker
        .next(
            &[
                tx(&buyer(2), Tx::Transfer { to: buyer(0).public(), amount: 1_000, seq: 0 }),
                tx(&buyer(0), Tx::Renew { lease, hours: 3, seq: 0 }),
            ],
            now,
            proposer,
        )
        .expect("the sample ledger builds");
    blocks.push(certify(b));
    for _ in 0..4 {
        now += 2 * HOUR_MS;
        let (b, _) = maker.next(&[], now, proposer).expect("the sample ledger builds");
        blocks.push(certify(b));
    }
    blocks
}

/// Recomputes Merkle roots, links and certificates after an edit, as a dishonest majority could
/// (each block certified by the set its ledger puts in force for it: see [`certify_by`]).
pub fn reseal(mut blocks: Vec<Block>) -> Vec<Block> {
    let mut set = genesis_set();
    let mut frontier = surplus_ledger::Frontier::new();
    let mut prev = [0u8; 32];
    for b in &mut blocks {
        let mut nodes = Vec::new();
        for e in &b.entries {
            frontier.push::<surplus_ledger::Blake3>(e.leaf_hash(), &mut nodes);
        }
        b.header.tree_size = frontier.size();
        b.header.merkle_root = frontier.root::<surplus_ledger::Blake3>();
        b.header.prev_hash = prev;
        *b = certify_by(b.clone(), &set);
        prev = b.header.hash();
        if let Some(new) = set_change(b) {
            set = new;
        }
    }
    blocks
}

/// A small deterministic generator (for large sample states).
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
    /// 32 pseudo-random bytes.
    pub fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        for c in h.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_be_bytes());
        }
        h
    }
}

/// An active lease of 1 slot at 1 unit per hour for `hours` hours of [`market`], started at
/// [`T0`], with random ids; `paid` hours are paid, so it falls due at hour `paid + 1`. For
/// sample states put straight into a state ([`crate::State::populate`]).
pub fn sample_lease(rng: &mut Lcg, buyer: PublicKey, paid: u32, hours: u32) -> Lease {
    let fill = surplus_market::Fill {
        bid: rng.hash(),
        offer: rng.hash(),
        buyer,
        provider: PublicKey(rng.hash()),
        market: market(),
        slots: 1,
        start_ms: T0,
        end_ms: T0 + u64::from(hours) * HOUR_MS,
        price: 1,
    };
    let mut l = Lease {
        id: rng.hash(),
        fill,
        height: 0,
        hours,
        segments: vec![Segment { hours, price: 1 }],
        hours_paid: paid,
        escrow: 0,
        status: LeaseStatus::Active,
        grant: None,
        notice: None,
        credited: 0,
        down_ms: 0,
        probe: None,
    };
    l.escrow = l.cost_between(paid, hours);
    l
}
