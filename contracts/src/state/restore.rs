//! Rebuilding a state from its items (`docs/contracts.md` §5), for snapshots and state sync:
//! every item is decoded, checked to be in its canonical form and under its own key, and every
//! index the blocks keep alongside the items is rebuilt as the blocks build it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Allocation, Book, Market, Order, Resting};

use super::{Account, Lease, LeaseStatus, State};
use crate::error::RestoreError;
use crate::genesis::Params;
use crate::governance::{Proposal, Rotation, Validator};
use crate::maintenance::Window;
use crate::root::{self, Item, Kind};
use crate::tx::RevocationId;

/// The start of a natural key, hex, to name an item in an error.
fn key_hex(key: &[u8]) -> String {
    if key.len() <= 4 {
        hex::encode(key)
    } else {
        format!("{}…", hex::encode(&key[..4]))
    }
}

impl State {
    /// Rebuilds the state whose items are `items` (in any order), as [`State::items`] lists
    /// them: the inverse of `items`, so that `State::from_items(s.items())` equals `s`, with the
    /// same root, and the blocks after it execute exactly as they do on `s`.
    ///
    /// Every item must decode fully, re-encode to exactly the bytes given, and sit under the
    /// natural key its value names; there must be exactly one chain item, no item twice, and
    /// the items must agree with each other as the blocks keep them (valid genesis parameters
    /// and chain id, only active leases, each with exactly the escrow its unpaid hours cost,
    /// credits (balances, bonds, escrow) adding up to the supply, a book the auction could have left). Signatures of resting orders are not checked again: a caller that took the
    /// items from a peer checks [`State::root`] against a certified header.
    pub fn from_items<I: IntoIterator<Item = Item>>(items: I) -> Result<State, RestoreError> {
        let mut chain = None;
        let mut accounts: OrdMap<PublicKey, Account> = OrdMap::new();
        let mut leases: OrdMap<Hash, Arc<Lease>> = OrdMap::new();
        let mut orders: Vec<Resting> = Vec::new();
        let mut allocations: Vec<(Hash, Allocation)> = Vec::new();
        let mut revoked: OrdSet<RevocationId> = OrdSet::new();
        let mut nonces: Vec<(PublicKey, u64, u64)> = Vec::new();
        let mut last_price: OrdMap<Market, u64> = OrdMap::new();
        let mut validators: Vec<(usize, Validator)> = Vec::new();
        let mut proposals: OrdMap<Hash, Arc<Proposal>> = OrdMap::new();
        let mut rotated: OrdMap<PublicKey, Rotation> = OrdMap::new();
        let mut consensus = None;
        let mut maintenance: OrdMap<(PublicKey, String), Window> = OrdMap::new();
        let mut tallies = OrdMap::new();
        let mut leaves: Vec<(Hash, Hash)> = Vec::new();
        let mut seen: HashSet<Hash> = HashSet::new();

        for item in items {
            let kind = item.kind.name();
            let bad = |reason: String| RestoreError::Item { kind, key: key_hex(&item.key), reason };
            let key_hash = item.key_hash();
            if !seen.insert(key_hash) {
                return Err(match item.kind {
                    Kind::Chain => RestoreError::TwoChains,
                    _ => RestoreError::Duplicate { kind, key: key_hex(&item.key) },
                });
            }
            // The natural key the value names, and the value encoded again from what was read.
            let (key, again): (Vec<u8>, Vec<u8>) = match item.kind {
                Kind::Chain => {
                    let c = root::decode_chain(&item.value).map_err(|e| bad(e.to_string()))?;
                    let again = root::chain_value(
                        &c.chain_id,
                        c.height,
                        c.now_ms,
                        c.supply,
                        &c.params,
                        c.book_ms,
                    );
                    chain = Some(c);
                    (Vec::new(), again)
                }
                Kind::Account => {
                    let (k, a) =
                        root::decode_account(&item.value).map_err(|e| bad(e.to_string()))?;
                    let again = root::account_value(&k, &a);
                    accounts.insert(k, a);
                    (k.0.to_vec(), again)
                }
                Kind::Lease => {
                    let l = root::decode_lease(&item.value).map_err(|e| bad(e.to_string()))?;
                    check_lease(&l).map_err(bad)?;
                    let again = root::lease_value(&l);
                    let key = l.id.to_vec();
                    leases.insert(l.id, Arc::new(l));
                    (key, again)
                }
                Kind::Order => {
                    let r = root::decode_order(&item.value).map_err(|e| bad(e.to_string()))?;
                    let again = root::order_value(&r);
                    let key = r.order.id.to_vec();
                    orders.push(r);
                    (key, again)
                }
                Kind::Revoked => {
                    let id = root::decode_revoked(&item.value).map_err(|e| bad(e.to_string()))?;
                    if id.0.is_empty() || id.0.len() > crate::MAX_REVOCATION_ID_LEN {
                        return Err(bad(format!(
                            "a revocation id of {} bytes, 1 to {} allowed",
                            id.0.len(),
                            crate::MAX_REVOCATION_ID_LEN
                        )));
                    }
                    let again = root::revoked_key(&id);
                    revoked.insert(id);
                    (again.clone(), again)
                }
                Kind::Nonce => {
                    let (a, n, e) =
                        root::decode_nonce(&item.value).map_err(|e| bad(e.to_string()))?;
                    nonces.push((a, n, e));
                    (root::nonce_key(&a, n).to_vec(), root::nonce_value(&a, n, e))
                }
                Kind::Allocation => {
                    let (offer, a) =
                        root::decode_allocation(&item.value).map_err(|e| bad(e.to_string()))?;
                    if a.slots == 0 || a.start_ms >= a.end_ms {
                        return Err(bad(format!(
                            "{} slots from {} to {}: at least one slot over a non-empty time",
                            a.slots, a.start_ms, a.end_ms
                        )));
                    }
                    let again = root::allocation_value(&offer, &a);
                    let key = root::allocation_key(&offer, &a.bid, a.start_ms).to_vec();
                    allocations.push((offer, a));
                    (key, again)
                }
                Kind::Validator => {
                    let (i, v) =
                        root::decode_validator(&item.value).map_err(|e| bad(e.to_string()))?;
                    if v.power == 0 {
                        return Err(bad("voting power 0".into()));
                    }
                    if !v.address.is_empty() {
                        crate::governance::validate_address(&v.address).map_err(&bad)?;
                    }
                    let again = root::validator_value(i, &v);
                    let key = v.key.0.to_vec();
                    validators.push((i, v));
                    (key, again)
                }
                Kind::Proposal => {
                    let p = root::decode_proposal(&item.value).map_err(|e| bad(e.to_string()))?;
                    check_proposal(&p).map_err(&bad)?;
                    let again = root::proposal_value(&p);
                    let key = p.id.to_vec();
                    proposals.insert(p.id, Arc::new(p));
                    (key, again)
                }
                Kind::Rotation => {
                    let (old, r) =
                        root::decode_rotation(&item.value).map_err(|e| bad(e.to_string()))?;
                    if old == r.new {
                        return Err(bad("a key rotated to itself".into()));
                    }
                    let again = root::rotation_value(&old, &r);
                    rotated.insert(old, r);
                    (old.0.to_vec(), again)
                }
                Kind::Consensus => {
                    let c = root::decode_consensus(&item.value).map_err(|e| bad(e.to_string()))?;
                    c.validate().map_err(&bad)?;
                    consensus = Some(c);
                    (Vec::new(), root::consensus_value(&c))
                }
                Kind::Maintenance => {
                    let w = Window::decode(&item.value).map_err(|e| bad(e.to_string()))?;
                    crate::maintenance::check_pool_name(&w.pool).map_err(&bad)?;
                    let again = w.encode();
                    let key = Window::key(&w.provider, &w.pool);
                    maintenance.insert((w.provider, w.pool.clone()), w);
                    (key, again)
                }
                Kind::Tally => {
                    let t = crate::supervision::Tally::decode(&item.value)
                        .map_err(|e| bad(e.to_string()))?;
                    let again = t.encode();
                    let key = crate::supervision::Tally::key(t.interval, &t.lease).to_vec();
                    tallies.insert((t.interval, t.lease), t);
                    (key, again)
                }
                Kind::Price => {
                    let (m, p) = root::decode_price(&item.value).map_err(|e| bad(e.to_string()))?;
                    let again = root::price_value(&m, p);
                    let key = root::price_key(&m);
                    last_price.insert(m, p);
                    (key, again)
                }
            };
            if again != item.value {
                return Err(bad("the value is not in its canonical encoding".into()));
            }
            if key != item.key {
                return Err(bad(format!(
                    "the key does not match its value, which names {}",
                    key_hex(&key)
                )));
            }
            leaves.push((key_hash, item.value_hash()));
        }

        let chain = chain.ok_or(RestoreError::NoChain)?;
        let inconsistent = RestoreError::Inconsistent;
        let bad_chain = |reason: String| RestoreError::Item {
            kind: Kind::Chain.name(),
            key: String::new(),
            reason,
        };
        surplus_ledger::validate_chain_id(&chain.chain_id)
            .map_err(|e| bad_chain(format!("chain id: {e}")))?;
        // Decoding validates, and refuses any but the canonical encoding.
        let params =
            Params::decode(&chain.params).map_err(|e| bad_chain(format!("genesis params: {e}")))?;
        // Every block runs the auction at its own time; genesis runs none.
        let book_ms_expected = if chain.height == 0 { 0 } else { chain.now_ms };
        if chain.book_ms != book_ms_expected {
            return Err(bad_chain(format!(
                "the book's time is {}, not {book_ms_expected} at height {} and time {}",
                chain.book_ms, chain.height, chain.now_ms
            )));
        }
        let credits: u128 =
            accounts.values().map(|a| u128::from(a.balance) + u128::from(a.bond)).sum::<u128>()
                + leases.values().map(|l| u128::from(l.escrow)).sum::<u128>();
        if credits != u128::from(chain.supply) {
            return Err(inconsistent(format!(
                "balances, bonds and escrow add up to {credits}, the supply is {}",
                chain.supply
            )));
        }

        // The indexes the blocks keep next to the items, as they keep them.
        let mut due = OrdSet::new();
        let mut granted: OrdMap<RevocationId, Hash> = OrdMap::new();
        let mut by_provider = OrdSet::new();
        let mut by_buyer = OrdSet::new();
        for l in leases.values() {
            by_provider.insert((l.fill.provider, l.id));
            by_buyer.insert((l.fill.buyer, l.id));
            if let Some(t) = l.due_ms() {
                due.insert((t, l.id));
            }
            for id in l.grant.iter().flat_map(|g| &g.revocation_ids) {
                if let Some(other) = granted.insert(id.clone(), l.id) {
                    return Err(inconsistent(format!(
                        "leases {} and {} list the same revocation id {}",
                        hex::encode(other),
                        hex::encode(l.id),
                        hex::encode(&id.0)
                    )));
                }
            }
        }
        // Each allocation goes with its offer, which must rest.
        let at: HashMap<Hash, usize> =
            orders.iter().enumerate().map(|(i, r)| (r.order.id, i)).collect();
        for (offer, a) in allocations {
            let place = at.get(&offer).map(|i| &mut orders[*i]);
            match place {
                Some(r) if matches!(r.order.order, Order::Offer(_)) => {
                    r.allocations.insert(a);
                }
                _ => {
                    return Err(inconsistent(format!(
                        "an allocation to bid {} names {}, not a resting offer",
                        hex::encode(a.bid),
                        hex::encode(offer)
                    )))
                }
            }
        }
        // The validator set: positions 0 to n-1, each once, a set the ledger accepts.
        validators.sort_by_key(|(i, _)| *i);
        if validators.iter().enumerate().any(|(n, (i, _))| n != *i) {
            return Err(inconsistent(
                "the validators' positions are not 0 to n-1, each once".into(),
            ));
        }
        let validators: Vec<Validator> = validators.into_iter().map(|(_, v)| v).collect();
        surplus_ledger::ValidatorSet::weighted(
            validators.iter().map(|v| v.key).collect(),
            validators.iter().map(|v| v.power).collect(),
        )
        .map_err(|e| inconsistent(format!("validator set: {e}")))?;
        if proposals.len() > crate::governance::MAX_OPEN_PROPOSALS {
            return Err(inconsistent(format!("{} proposals are open", proposals.len())));
        }
        for (old, r) in rotated.iter() {
            if validators.iter().any(|v| v.key == *old) {
                return Err(inconsistent(format!("rotated key {old} is still a validator")));
            }
            if r.height > chain.height {
                return Err(inconsistent(format!("key {old} rotated after the state's height")));
            }
        }
        let book = Book::restore(chain.book_ms, orders, nonces)
            .map_err(|e| inconsistent(format!("book: {e}")))?;

        Ok(State {
            chain_id: chain.chain_id,
            params,
            params_bytes: chain.params,
            accounts: accounts.into(),
            leases: leases.into(),
            due,
            granted,
            by_provider,
            by_buyer,
            book,
            last_price,
            revoked,
            supply: chain.supply,
            height: chain.height,
            now_ms: chain.now_ms,
            validators: Arc::new(validators),
            proposals,
            rotated,
            consensus,
            maintenance,
            tallies,
            tree: surplus_state::Tree::from_leaves(leaves),
        })
    }
}

/// What every live lease is, whatever the blocks did to it.
fn check_lease(l: &Lease) -> Result<(), String> {
    if l.status != LeaseStatus::Active {
        return Err(format!("status {:?}: an ended lease has left the state", l.status));
    }
    if l.segments.is_empty() {
        return Err("no price segment".into());
    }
    let hours: u64 = l.segments.iter().map(|s| u64::from(s.hours)).sum();
    if hours != u64::from(l.hours) || l.hours_paid > l.hours {
        return Err(format!(
            "{} hours leased, {} paid, its segments add up to {hours}",
            l.hours, l.hours_paid
        ));
    }
    let owed = l.cost_between(l.hours_paid, l.hours);
    if l.escrow != owed {
        return Err(format!("escrow {}, its unpaid hours cost {owed}", l.escrow));
    }
    Ok(())
}

/// What every proposal in the state is: open or passed before its height, with a voter set the
/// ledger accepts and votes from its voters only, in key order, once each.
fn check_proposal(p: &Proposal) -> Result<(), String> {
    if p.effective < p.height.saturating_add(crate::governance::ENACTMENT_DELAY) {
        return Err(format!("effective at {}, proposed at {}", p.effective, p.height));
    }
    if p.passed.is_some_and(|h| h < p.height || h > p.deadline()) {
        return Err("passed outside its voting window".into());
    }
    surplus_ledger::ValidatorSet::weighted(
        p.voters.iter().map(|(k, _)| *k).collect(),
        p.voters.iter().map(|(_, w)| *w).collect(),
    )?;
    if p.votes.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("votes are not in voter key order, each once".into());
    }
    if let Some((k, _)) = p.votes.iter().find(|(k, _)| !p.voters.iter().any(|(v, _)| v == k)) {
        return Err(format!("a vote by {k}, who is not a voter"));
    }
    let (yes, _) = p.tally();
    if p.passed.is_some() != (yes >= p.quorum()) {
        return Err("its status does not match its votes".into());
    }
    Ok(())
}
