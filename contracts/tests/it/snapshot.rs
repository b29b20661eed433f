//! Rebuilding a state from its items (snapshots, state sync): after random block sequences the
//! rebuilt state equals the original, and a block maker resumed from it makes byte-identical
//! blocks, which only holds if every index derived from the items (leases due, granted ids, the
//! replay set's expiry queue, the book's order) is rebuilt as the blocks build it. Items that
//! are not those of a state are refused.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use surplus_contracts::root::{Item, Kind};
use surplus_contracts::{
    BlockMaker, Grant, Lease, LeaseStatus, RestoreError, RevocationId, Segment, State,
};
use surplus_ledger::testutil::key;
use surplus_ledger::{Entry, EntryKind, Frontier, PublicKey};
use surplus_market::{Fill, HOUR_MS};

use crate::helpers::*;
use crate::model::{block_entries, gov_entries};

/// A copy of a frontier through its parts, as a snapshot stores it.
fn through_parts(f: &Frontier) -> Frontier {
    Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap()
}

/// The items of `s` in a random order, rebuilt.
fn rebuilt(s: &State, rng: &mut StdRng) -> State {
    let mut items: Vec<Item> = s.items().collect();
    items.shuffle(rng);
    State::from_items(items).unwrap()
}

/// Which kinds of item a state has.
fn kinds(s: &State) -> std::collections::BTreeSet<Kind> {
    s.items().map(|i| i.kind).collect()
}

#[test]
fn rebuilt_states_equal_the_original_and_resumed_makers_make_the_same_blocks() {
    let proposer = key("validator", 0).public();
    let mut covered = std::collections::BTreeSet::new();
    let mut granted_at_split = 0;
    for seed in 0..60 {
        let mut rng = StdRng::seed_from_u64(seed);
        let g = genesis(rng.gen_range(0..1000), rng.gen_range(0..5000));
        let (_, mut maker) = BlockMaker::genesis(CHAIN, &g, T0).unwrap();
        assert_eq!(rebuilt(&maker.state, &mut rng), maker.state, "seed {seed}: genesis");
        let mut now = T0;
        let mut nonce = 0;
        let split = rng.gen_range(1..14);
        let mut resumed: Option<BlockMaker> = None;
        for height in 1..=split + 8 {
            now += rng.gen_range(0..4) * HOUR_MS + rng.gen_range(0..1000);
            let mut user = block_entries(&mut rng, &maker.state, now, &mut nonce);
            user.extend(gov_entries(&mut rng, &maker.state));
            let (block, applied) = maker.next(&user, now, proposer).unwrap();
            if let Some(r) = resumed.as_mut() {
                let (block2, applied2) = r.next(&user, now, proposer).unwrap();
                assert_eq!(block2, block, "seed {seed}: block {height} differs after resuming");
                assert_eq!(applied2, applied, "seed {seed}: block {height}'s outcome differs");
                assert_eq!(r.state, maker.state, "seed {seed}: state after block {height}");
            }
            let restored = rebuilt(&maker.state, &mut rng);
            assert_eq!(restored, maker.state, "seed {seed}: rebuilt state after block {height}");
            assert_eq!(restored.root(), maker.state.root());
            if height == split {
                covered.extend(kinds(&maker.state));
                granted_at_split += maker.state.leases().filter(|l| l.grant.is_some()).count();
                let prev = maker.prev().clone();
                assert_eq!(prev.height, height);
                let r =
                    BlockMaker::resume(restored, prev, through_parts(maker.frontier())).unwrap();
                assert_eq!(r.prev(), maker.prev());
                assert_eq!(r.frontier(), maker.frontier());
                resumed = Some(r);
            }
        }
    }
    // The snapshots held every kind of item, and leases with credentials.
    // (The consensus parameters need a vote and ten blocks: their own test below.)
    covered.remove(&Kind::Consensus);
    assert_eq!(covered.len(), 11, "kinds covered: {covered:?}");
    assert!(granted_at_split > 0, "no snapshot held a granted lease");
}

/// A state holding every kind of item, from random blocks.
fn rich_state() -> State {
    let proposer = key("validator", 0).public();
    for seed in 0.. {
        let mut rng = StdRng::seed_from_u64(seed);
        let (_, mut maker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
        let (mut now, mut nonce) = (T0, 0);
        for _ in 0..12 {
            now += rng.gen_range(0..3) * HOUR_MS + rng.gen_range(0..1000);
            let mut user = block_entries(&mut rng, &maker.state, now, &mut nonce);
            user.extend(gov_entries(&mut rng, &maker.state));
            maker.next(&user, now, proposer).unwrap();
            let s = &maker.state;
            // Every kind but the consensus parameters, which need a vote and ten blocks more.
            let all = kinds(s);
            if all.len() == 11 + usize::from(all.contains(&Kind::Consensus))
                && s.leases().any(|l| l.grant.is_some())
            {
                return maker.state;
            }
        }
    }
    unreachable!()
}

/// The first item of `kind`.
fn item_of(items: &[Item], kind: Kind) -> usize {
    items.iter().position(|i| i.kind == kind).unwrap()
}

fn refused(items: Vec<Item>) -> RestoreError {
    State::from_items(items).expect_err("the items were accepted")
}

#[test]
fn a_missing_or_second_chain_item_is_refused() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    let without: Vec<Item> = items.iter().filter(|i| i.kind != Kind::Chain).cloned().collect();
    assert_eq!(refused(without), RestoreError::NoChain);
    assert_eq!(refused(vec![]), RestoreError::NoChain);
    let mut two = items.clone();
    two.push(items[0].clone());
    assert_eq!(refused(two), RestoreError::TwoChains);
    assert_eq!(RestoreError::TwoChains.to_string(), "two chain items");
}

#[test]
fn a_duplicate_item_is_refused() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    let kinds = [Kind::Account, Kind::Lease, Kind::Order, Kind::Revoked, Kind::Nonce, Kind::Price];
    let governance = [Kind::Validator, Kind::Proposal, Kind::Rotation];
    for kind in kinds.into_iter().chain([Kind::Allocation]).chain(governance) {
        let mut twice = items.clone();
        twice.insert(0, items[item_of(&items, kind)].clone());
        assert!(
            matches!(refused(twice), RestoreError::Duplicate { kind: k, .. } if k == kind.name()),
            "{kind:?}"
        );
    }
}

#[test]
fn a_key_that_does_not_match_its_value_is_refused() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    let governance = [Kind::Validator, Kind::Proposal, Kind::Rotation];
    let kinds = [Kind::Account, Kind::Lease, Kind::Order, Kind::Revoked, Kind::Nonce, Kind::Price];
    for kind in kinds.into_iter().chain(governance) {
        let mut bad = items.clone();
        let i = item_of(&items, kind);
        let last = bad[i].key.len() - 1;
        bad[i].key[last] ^= 1;
        let e = refused(bad);
        assert!(e.to_string().contains("the key does not match its value"), "{kind:?}: {e}");
    }
    // The chain item's key is empty.
    let mut bad = items.clone();
    bad[0].key = vec![0];
    assert!(refused(bad).to_string().starts_with("chain item 00: the key does not match"));
}

#[test]
fn an_allocation_of_an_order_that_is_not_a_resting_offer_is_refused() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    let i = item_of(&items, Kind::Allocation);
    let bid = s
        .book
        .orders()
        .find(|r| matches!(r.order.order, surplus_market::Order::Bid(_)))
        .map(|r| r.order.id);
    // Moved (key and value together) to a resting bid if there is one, and to an id that is no
    // order at all.
    for other in bid.into_iter().chain([[7u8; 32]]) {
        let mut bad = items.clone();
        bad[i].key[..32].copy_from_slice(&other);
        bad[i].value[..32].copy_from_slice(&other);
        let e = refused(bad);
        assert!(matches!(e, RestoreError::Inconsistent(_)), "{e}");
        assert!(e.to_string().contains("not a resting offer"), "{e}");
    }
}

#[test]
fn a_truncated_or_extended_value_is_refused_for_every_item() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    for i in 0..items.len() {
        let mut short = items.clone();
        short[i].value.pop();
        let e = refused(short);
        assert!(matches!(e, RestoreError::Item { .. }), "item {i}: {e}");
        let mut long = items.clone();
        long[i].value.push(0);
        let e = refused(long);
        assert!(e.to_string().contains("trailing"), "item {i}: {e}");
    }
}

#[test]
fn a_tampered_value_byte_is_refused_or_changes_the_root() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    let (mut refusals, mut others) = (0, 0);
    for kind in [
        Kind::Chain,
        Kind::Account,
        Kind::Lease,
        Kind::Order,
        Kind::Revoked,
        Kind::Nonce,
        Kind::Price,
    ] {
        let i = item_of(&items, kind);
        for at in 0..items[i].value.len() {
            let mut bad = items.clone();
            bad[i].value[at] ^= 0x01;
            match State::from_items(bad) {
                Err(_) => refusals += 1,
                // Another valid state (a balance moved between fields, a later expiry): it is
                // not the state of this root.
                Ok(t) => {
                    assert_ne!(t.root(), s.root(), "{kind:?} byte {at}");
                    others += 1;
                }
            }
        }
    }
    assert!(refusals > 0 && others > 0, "{refusals} refused, {others} accepted as another state");
}

#[test]
fn refusals_name_the_item_and_what_is_wrong() {
    let s = rich_state();
    let items: Vec<Item> = s.items().collect();
    // A balance raised: the credits no longer add up to the supply.
    let mut bad = items.clone();
    let a = item_of(&items, Kind::Account);
    bad[a].value[39] ^= 1;
    assert!(matches!(refused(bad), RestoreError::Inconsistent(m) if m.contains("supply")));
    // A lease's escrow changed, the balances unchanged.
    let mut bad = items.clone();
    let l = item_of(&items, Kind::Lease);
    let key = hex::encode(&items[l].key[..4]);
    let lease = s.leases().next().unwrap();
    let fill_len = surplus_contracts::encode_fill(&lease.fill, lease.height).len();
    bad[l].value[32 + 4 + fill_len + 8 + 7] ^= 1;
    let e = refused(bad).to_string();
    assert!(e.starts_with(&format!("lease item {key}…: escrow")), "{e}");
    // A lease cut short.
    let mut bad = items.clone();
    bad[l].value.truncate(40);
    let e = refused(bad).to_string();
    assert!(e.starts_with(&format!("lease item {key}…: truncated")), "{e}");
    // A replay pair's expiry moved: the resting order using it disagrees.
    let r = s.book.orders().next().unwrap();
    let mut pair = r.order.author.0.to_vec();
    pair.extend_from_slice(&r.order.order.nonce().to_be_bytes());
    let n = items.iter().position(|i| i.kind == Kind::Nonce && i.key == pair).unwrap();
    let mut bad = items.clone();
    let last = bad[n].value.len() - 1;
    bad[n].value[last] ^= 1;
    let e = refused(bad).to_string();
    assert!(e.starts_with("inconsistent state: book: order "), "{e}");
    // The chain item's tag.
    let mut bad = items.clone();
    bad[0].value[1] ^= 0x20;
    let e = refused(bad).to_string();
    assert!(e.starts_with("chain item: invalid chain.tag"), "{e}");
    // A lease that is no longer active.
    let mut bad = items.clone();
    bad[l].value[32 + 4 + fill_len + 16] = 2;
    let e = refused(bad).to_string();
    assert!(e.contains("an ended lease has left the state"), "{e}");
}

#[test]
fn resuming_refuses_a_state_or_frontier_of_another_block() {
    let proposer = key("validator", 0).public();
    let (_, mut maker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
    maker.next(&[offer(&provider(0), 5, 20, 100, 1, T0)], T0, proposer).unwrap();
    let before = (maker.state.clone(), maker.prev().clone(), maker.frontier().clone());
    maker.next(&[bid(&buyer(0), 2, 10, 30, 1, T0 + HOUR_MS)], T0 + HOUR_MS, proposer).unwrap();
    let (state, prev, frontier) = (maker.state.clone(), maker.prev().clone(), maker.frontier());
    BlockMaker::resume(state.clone(), prev.clone(), frontier.clone()).unwrap();
    let field = |r: Result<BlockMaker, RestoreError>| match r {
        Err(RestoreError::Header { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(BlockMaker::resume(before.0.clone(), prev.clone(), frontier.clone())),
        "height"
    );
    assert_eq!(
        field(BlockMaker::resume(state.clone(), prev.clone(), before.2.clone())),
        "tree_size"
    );
    let mut other_root = prev.clone();
    other_root.state_root[0] ^= 1;
    assert_eq!(
        field(BlockMaker::resume(state.clone(), other_root, frontier.clone())),
        "state_root"
    );
    let mut other_merkle = prev.clone();
    other_merkle.merkle_root[0] ^= 1;
    assert_eq!(
        field(BlockMaker::resume(state.clone(), other_merkle, frontier.clone())),
        "merkle_root"
    );
    let mut other_chain = prev.clone();
    other_chain.chain_id = "another-chain".into();
    assert_eq!(field(BlockMaker::resume(state.clone(), other_chain, frontier.clone())), "chain_id");
    let mut other_time = prev;
    other_time.timestamp_ms += 1;
    assert_eq!(field(BlockMaker::resume(state, other_time, frontier.clone())), "timestamp_ms");
    // A frontier's parts must agree with its size.
    assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
}

/// An active lease of `slots` slots over 24 hours from T0, with a grant if `grant`.
fn lease(i: u64, grant: bool) -> Lease {
    let fill = Fill {
        bid: *blake3::hash(&i.to_be_bytes()).as_bytes(),
        offer: [7; 32],
        buyer: PublicKey(*blake3::hash(format!("buyer {i}").as_bytes()).as_bytes()),
        provider: provider(i % 3).public(),
        market: market(),
        slots: 1 + (i % 4) as u32,
        start_ms: T0,
        end_ms: T0 + 24 * HOUR_MS,
        price: 10 + i % 7,
    };
    let id = Entry::system(EntryKind::FILL, surplus_contracts::encode_fill(&fill, 1)).id();
    let mut l = Lease {
        id,
        fill,
        height: 1,
        hours: 24,
        segments: vec![Segment { hours: 24, price: 10 + i % 7 }],
        hours_paid: (i % 5) as u32,
        escrow: 0,
        status: LeaseStatus::Active,
        grant: grant.then(|| Grant {
            token_hash: [i as u8; 32],
            revocation_ids: vec![RevocationId(i.to_be_bytes().to_vec())],
            // Some with a sealed credential (grant tag 2), some without (tag 1).
            sealed: if i.is_multiple_of(3) { vec![i as u8; 64] } else { Vec::new() },
        }),
        // Some with a provider's notice (a trailing field of the lease's value).
        notice: (i % 4 == 1).then_some(surplus_contracts::maintenance::Notice {
            end_ms: T0 + 2 * HOUR_MS,
            given_ms: T0,
            in_time: i % 8 == 1,
        }),
        credited: 0,
        down_ms: 0,
        probe: None,
    };
    l.escrow = l.cost_between(l.hours_paid, l.hours);
    l
}

#[test]
fn a_large_populated_state_is_rebuilt() {
    let mut s = state(100, 1000);
    let accounts =
        (0..3000u64).map(|i| (PublicKey(*blake3::hash(&i.to_le_bytes()).as_bytes()), 1_000 + i));
    s.populate(accounts, (0..3000).map(|i| lease(i, i % 2 == 0)));
    let mut rng = StdRng::seed_from_u64(1);
    let restored = rebuilt(&s, &mut rng);
    assert_eq!(restored, s);
    assert_eq!(restored.root(), s.root());
    // The next block (every lease falls due) executes alike on both.
    let (mut a, mut b) = (s, restored);
    let now = T0 + 5 * HOUR_MS;
    let x = a.apply_block(1, now, &[], surplus_contracts::Mode::Validate).unwrap();
    let y = b.apply_block(1, now, &[], surplus_contracts::Mode::Validate).unwrap();
    assert_eq!(x, y);
    assert_eq!(a, b);
}

/// An account's live leases come from the indexes by buyer and by provider, merged in id order,
/// a lease the account both bought and sold listed once; rebuilt from a snapshot alike; gone
/// from both once they end.
#[test]
fn an_accounts_leases_are_found_by_buyer_and_provider() {
    let mut s = state(0, 0);
    let (x, y) = (PublicKey([1; 32]), PublicKey([3; 32]));
    let p = provider(0).public();
    let parties = [(x, p), (p, x), (x, x), (y, p), (x, p), (y, y)];
    let leases: Vec<Lease> = parties
        .iter()
        .enumerate()
        .map(|(i, (buyer, seller))| {
            let mut l = lease(100 + i as u64, false);
            l.fill.buyer = *buyer;
            l.fill.provider = *seller;
            l
        })
        .collect();
    let of = |k: PublicKey| {
        let mut ids: Vec<_> = leases
            .iter()
            .filter(|l| l.fill.buyer == k || l.fill.provider == k)
            .map(|l| l.id)
            .collect();
        ids.sort();
        ids
    };
    s.populate([], leases.clone());
    let mut rng = StdRng::seed_from_u64(2);
    let restored = rebuilt(&s, &mut rng);
    for st in [&s, &restored] {
        for k in [x, y, p] {
            let got: Vec<_> = st.account_leases(&k).map(|l| l.id).collect();
            assert_eq!(got, of(k), "{k}");
        }
        assert_eq!(st.account_leases(&x).count(), 4);
        assert_eq!(st.account_leases(&PublicKey([9; 32])).count(), 0);
    }
    // A day later every lease has run to its end and left the live state and both indexes.
    s.apply_block(1, T0 + 25 * HOUR_MS, &[], surplus_contracts::Mode::Validate).unwrap();
    assert_eq!(s.lease_count(), 0);
    for k in [x, y, p] {
        assert_eq!(s.account_leases(&k).count(), 0);
    }
}

/// The consensus parameters' item (set by a passed proposal) is rebuilt, and refused out of
/// bounds.
#[test]
fn consensus_parameters_are_rebuilt_and_checked() {
    use surplus_contracts::{Action, ConsensusParams, Mode, Tx};
    let mut s = state(0, 0);
    let v = |i| key("validator", i);
    let params = ConsensusParams {
        batch_interval_ms: 300,
        max_block_entries: 900,
        max_block_bytes: 1 << 20,
    };
    let propose = tx(
        &v(0),
        Tx::GovPropose { action: Action::SetConsensus { params }, effective: 12, seq: 0 },
    );
    let id = propose.id();
    let mut user = vec![propose];
    user.extend((1..4).map(|i| tx(&v(i), Tx::GovVote { proposal: id, yes: true, seq: 0 })));
    for h in 1..=11 {
        let entries = if h == 1 { std::mem::take(&mut user) } else { Vec::new() };
        s.apply_block(h, T0 + h * 1_000, &entries, Mode::Validate).unwrap();
    }
    assert_eq!(s.consensus_params(), Some(params));
    let mut rng = StdRng::seed_from_u64(7);
    let back = rebuilt(&s, &mut rng);
    assert_eq!(back, s);
    assert_eq!(back.root(), s.root());
    let mut items: Vec<Item> = s.items().collect();
    let i = item_of(&items, Kind::Consensus);
    items[i].value[..8].copy_from_slice(&5u64.to_be_bytes());
    let e = refused(items);
    assert!(e.to_string().contains("batch interval 5 ms"), "{e}");
}
