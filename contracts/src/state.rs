//! The contract state and the block transition.

mod governance;
mod restore;
mod tracked;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use surplus_ledger::{Auth, Entry, EntryKind, Hash, PublicKey};
use surplus_market::{Batch, Book, Fill, Market, Outcome, SignedCancel, SignedOrder, HOUR_MS};

use crate::genesis::{Genesis, Params, BPS};
use crate::governance::{ConsensusParams, Proposal, Rotation, Validator};
use crate::maintenance::{check_pool_name, Notice, Window};
use crate::precheck::MAX_SEQ_AHEAD;
use crate::refusal::Code;
use crate::root::{self, Item, Kind};
use crate::supervision::{cost_of_time, Credit, CreditReason, Report, Tally, Terms};
use crate::tx::{encode_fill, encode_revocation, RevocationId, Settlement, SettlementReason, Tx};
use crate::verified::VerifiedIds;
use crate::Error;
use tracked::Tracked;

/// An account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable units.
    pub balance: u64,
    /// Sequence number the account's next transaction must carry.
    pub seq: u64,
    /// Units locked in the account's provider bond (`docs/contracts.md` §10).
    #[serde(default)]
    pub bond: u64,
}

/// Where a lease is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    /// Running.
    Active = 1,
    /// Ran to its end.
    Completed = 2,
    /// Ended early by the buyer.
    TerminatedByBuyer = 3,
    /// Ended early by the provider.
    TerminatedByProvider = 4,
    /// Ended at the time of the provider's notice (before maintenance).
    EndedByNotice = 5,
}

/// The credential recorded for a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    /// blake3 of the token.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub token_hash: Hash,
    /// The token's revocation ids.
    pub revocation_ids: Vec<RevocationId>,
    /// The token sealed to the lease's buyer (`crate::sealed`; hex in JSON, absent when the
    /// provider sealed none): any node hands it out, only the buyer opens it.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex::serde")]
    #[schema(value_type = Option<String>)]
    pub sealed: Vec<u8>,
}

/// A lease: one fill, with its escrow and life. Its escrow is always exactly what its unpaid
/// hours cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lease {
    /// Its id: the id of the fill entry that created it.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// The fill (start, end and hours grow with renewals: `end_ms` is current).
    pub fill: Fill,
    /// Height of the block that created it.
    pub height: u64,
    /// Hours leased, renewals included.
    pub hours: u32,
    /// Price of each stretch of hours, in order: the fill's hours at the clearing price, then
    /// each renewal at the market price of its day.
    pub segments: Vec<Segment>,
    /// Hours already paid to the provider.
    pub hours_paid: u32,
    /// Units held in escrow: exactly `cost_between(hours_paid, hours)`.
    pub escrow: u64,
    /// Its state.
    pub status: LeaseStatus,
    /// The credential, once the provider has recorded it.
    pub grant: Option<Grant>,
    /// The provider's notice that the lease ends early (before maintenance), if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// Time the consortium's probes found it down (quorum-decided intervals), ms.
    #[serde(default)]
    pub down_ms: u64,
    /// Service credits the buyer received for it, units.
    #[serde(default)]
    pub credited: u64,
    /// Where the other datacenters probe it, once its provider recorded a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::supervision::ProbeTarget>,
}

/// A stretch of a lease's hours at one price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    /// Hours.
    pub hours: u32,
    /// Units per slot-hour.
    pub price: u64,
}

impl Lease {
    /// When time passing next has work for this lease (contracts.md §3 step 1): its end, or the
    /// end of its next unpaid hour if that comes first; `None` once it is no longer active.
    fn due_ms(&self) -> Option<u64> {
        if self.status != LeaseStatus::Active {
            return None;
        }
        let end = match self.notice {
            Some(n) => n.end_ms.min(self.fill.end_ms),
            None => self.fill.end_ms,
        };
        if self.hours_paid >= self.hours {
            return Some(end);
        }
        let next_hour = u64::from(self.hours_paid).saturating_add(1).saturating_mul(HOUR_MS);
        Some(self.fill.start_ms.saturating_add(next_hour).min(end))
    }

    /// What hours `from..to` of the lease cost, across its segments.
    pub fn cost_between(&self, from: u32, to: u32) -> u64 {
        let mut total = 0u128;
        let mut start = 0u32;
        for s in &self.segments {
            let end = start.saturating_add(s.hours);
            let overlap = end.min(to).saturating_sub(start.max(from));
            total += u128::from(overlap) * u128::from(self.fill.slots) * u128::from(s.price);
            start = end;
        }
        // Bounded by validated costs; escrow holds exactly this much.
        total.min(u128::from(u64::MAX)) as u64
    }
}

/// Why a user entry was refused; the state is as if it had not been sent. Admission
/// ([`State::precheck`]) and the block's execution refuse with the same values;
/// [`Refusal::code`] is the stable code of the API ([`Code`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Refusal {
    /// A kind users may not submit (fills, settlements, genesis records and unknown kinds).
    #[error("entry kind {kind} ({name}) cannot be submitted by a user")]
    NotUserEntry {
        /// The kind found.
        kind: u16,
        /// Its name.
        name: String,
    },
    /// The payload is larger than any valid user entry.
    #[error("the payload is {bytes} bytes, more than the {max} a user entry may carry")]
    TooLarge {
        /// Payload size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The entry carries no author's signature.
    #[error("the entry is not signed")]
    Unsigned,
    /// The payload does not decode as its kind.
    #[error("malformed entry: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The sequence number is not the account's next one (a replay or a gap).
    #[error("sequence number {got}, the account's next is {expected}")]
    BadSequence {
        /// Expected.
        expected: u64,
        /// Found.
        got: u64,
    },
    /// A transaction too far ahead of the account's next sequence number for admission.
    #[error(
        "sequence number {got} is more than {MAX_SEQ_AHEAD} ahead of the account's next, {expected}"
    )]
    SeqGap {
        /// The account's next sequence number.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Not enough credits for a transfer or a renewal.
    #[error("the balance is {balance} units, {needed} are needed")]
    InsufficientBalance {
        /// What the account holds.
        balance: u64,
        /// What is needed.
        needed: u64,
    },
    /// The author's balance cannot pay for the smallest fill the bid allows at its limit.
    #[error("the bid needs {needed} units to fill its minimum at its limit price, the balance is {balance}")]
    Unfunded {
        /// The author's balance, units.
        balance: u64,
        /// What the smallest fill costs at the bid's limit, units.
        needed: u64,
    },
    /// A transfer of nothing, or to oneself.
    #[error("a transfer must move at least one unit to another account")]
    EmptyTransfer,
    /// No such lease.
    #[error("no lease {0}")]
    UnknownLease(String),
    /// The lease is not running.
    #[error("the lease is not active")]
    LeaseNotActive,
    /// The author is not entitled to this transition.
    #[error("only the lease's {0} may do this")]
    NotEntitled(String),
    /// A renewal the provider's offer does not allow, or at no known price.
    #[error("renewal refused: {0}")]
    RenewalRefused(String),
    /// A notice the lease's times do not allow.
    #[error("notice refused: {0}")]
    NoticeRefused(String),
    /// A maintenance window (or its end, or a move) the rules do not allow.
    #[error("maintenance refused: {0}")]
    MaintenanceRefused(String),
    /// A probe report the supervision rules do not take.
    #[error("report refused: {0}")]
    ReportRefused(String),
    /// A bond transaction the rules do not allow.
    #[error("bond refused: {0}")]
    BondRefused(String),
    /// Taking back a bond while it still backs leases or offers.
    #[error("the bond is locked: {0}")]
    BondLocked(String),
    /// Taking back more than the bond holds.
    #[error("the bond holds {bond} units, {needed} were asked back")]
    InsufficientBond {
        /// What the bond holds.
        bond: u64,
        /// What the transaction takes back.
        needed: u64,
    },
    /// An offer its author's bond does not cover.
    #[error("the offer needs a bond of {needed} units; the author has {bond}")]
    BondRequired {
        /// The author's bond.
        bond: u64,
        /// What the offer and the author's leases need.
        needed: u64,
    },
    /// A revocation id that another credential already uses.
    #[error("a revocation id of this credential is already used by another")]
    AlreadyGranted,
    /// The market refused the order or cancel.
    #[error("{0}")]
    Market(surplus_market::Rejection),
    /// A governance entry by a key that is not a validator (of the set in force, or of the
    /// proposal's set for a vote).
    #[error("only a validator may do this")]
    NotValidator,
    /// No open proposal with this id.
    #[error("no proposal {0}")]
    UnknownProposal(String),
    /// The proposal passed already: it takes no more votes and cannot be withdrawn.
    #[error("the proposal has passed; it takes no more votes")]
    ProposalClosed,
    /// The validator voted on this proposal already.
    #[error("this validator has voted on the proposal already")]
    AlreadyVoted,
    /// A proposal the rules or the state do not allow.
    #[error("proposal refused: {0}")]
    BadProposal(String),
    /// The author's key was rotated: it may sign nothing more.
    #[error("this key was rotated to {0}; sign with the new key")]
    KeyRotated(String),
    /// A key rotation the state does not allow.
    #[error("rotation refused: {0}")]
    RotationRefused(String),
    /// Valid now, the order would be refused within the admission horizon (it expires, or its
    /// window closes or becomes shorter than its minimum lease): it could not reach a block.
    #[error("within {horizon_ms} ms (the time a node allows an order to reach a block) it would be refused: {rejection}")]
    ClosesTooSoon {
        /// The admission horizon, ms ([`crate::ADMISSION_HORIZON_MS`]).
        horizon_ms: u64,
        /// The rule it would break at the horizon.
        rejection: surplus_market::Rejection,
    },
}

impl Refusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> Code {
        match self {
            Refusal::NotUserEntry { .. } => Code::NotUserEntry,
            Refusal::TooLarge { .. } => Code::TooLarge,
            Refusal::Unsigned => Code::Unsigned,
            Refusal::Malformed(_) => Code::Malformed,
            Refusal::BadSignature => Code::BadSignature,
            Refusal::BadSequence { .. } => Code::BadSequence,
            Refusal::SeqGap { .. } => Code::SeqGap,
            Refusal::InsufficientBalance { .. } => Code::InsufficientBalance,
            Refusal::Unfunded { .. } => Code::Unfunded,
            Refusal::EmptyTransfer => Code::EmptyTransfer,
            Refusal::UnknownLease(_) => Code::UnknownLease,
            Refusal::LeaseNotActive => Code::LeaseNotActive,
            Refusal::NotEntitled(_) => Code::NotEntitled,
            Refusal::RenewalRefused(_) => Code::RenewalRefused,
            Refusal::AlreadyGranted => Code::AlreadyGranted,
            Refusal::NoticeRefused(_) => Code::NoticeRefused,
            Refusal::MaintenanceRefused(_) => Code::MaintenanceRefused,
            Refusal::ReportRefused(_) => Code::ReportRefused,
            Refusal::BondRefused(_) => Code::BondRefused,
            Refusal::InsufficientBond { .. } => Code::InsufficientBond,
            Refusal::BondLocked(_) => Code::BondLocked,
            Refusal::BondRequired { .. } => Code::BondRequired,
            Refusal::Market(r) => Code::of_rejection(r),
            Refusal::ClosesTooSoon { .. } => Code::ClosesTooSoon,
            Refusal::NotValidator => Code::NotValidator,
            Refusal::UnknownProposal(_) => Code::UnknownProposal,
            Refusal::ProposalClosed => Code::ProposalClosed,
            Refusal::AlreadyVoted => Code::AlreadyVoted,
            Refusal::BadProposal(_) => Code::BadProposal,
            Refusal::KeyRotated(_) => Code::KeyRotated,
            Refusal::RotationRefused(_) => Code::RotationRefused,
        }
    }

    /// What went wrong and what to do, for a person: the refusal, then its code's hint.
    pub fn explain(&self) -> String {
        format!("{self}. {}", self.code().hint())
    }
}

/// What applying a block produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The block's full entry list: system settlements of elapsed time, then each accepted user
    /// entry followed by its consequences, then the fills.
    pub entries: Vec<Entry>,
    /// User entries refused (index into the input), with the reason (proposals only).
    pub refused: Vec<(usize, Refusal)>,
    /// The auction's outcome.
    pub outcome: Outcome,
    /// The leases that ended in the block (completed or terminated), in their final form and in
    /// id order: they have left the live state (`docs/contracts.md` §1), and stay in the ledger.
    pub ended: Vec<Lease>,
    /// The state root after the block.
    pub state_root: Hash,
}

/// Whether refused user entries are dropped (building a proposal) or make the block invalid
/// (checking one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drop refused entries from the block.
    Propose,
    /// Any refused entry makes the block invalid; nothing changes.
    Validate,
}

/// The whole contract state.
///
/// Its maps are persistent (`imbl`): a clone shares everything with the original and a change
/// copies only the path to what changed, so a block executes on a clone (an overlay that a
/// refused block simply drops) without copying the state. The sparse Merkle tree of its items
/// (`docs/contracts.md` §5) is persistent too, and is updated after each block with only the
/// items the block changed.
#[derive(Clone, Debug)]
pub struct State {
    /// Chain id (entries are signed for it).
    pub chain_id: String,
    /// Genesis parameters.
    pub params: Params,
    /// The genesis parameters' encoding (hashed into the chain item).
    params_bytes: Vec<u8>,
    /// Every change goes through [`Tracked`], which records the key for the state root.
    accounts: Tracked<PublicKey, Account>,
    /// Each lease behind its own `Arc`: the persistent map copies a whole node of entries when
    /// one of them changes, and copying an `Arc` costs a count, not the lease's allocations.
    leases: Tracked<Hash, Arc<Lease>>,
    /// The active leases by [`Lease::due_ms`], so that time passing looks only at the leases it
    /// has work for, not at every lease ever made. Derived from `leases`; not in the root.
    due: OrdSet<(u64, Hash)>,
    /// Every revocation id a lease's grant lists (current or replaced), with the lease: derived
    /// from `leases` and `revoked`, so that a grant's check does not visit every lease.
    granted: OrdMap<RevocationId, Hash>,
    /// (provider, lease id) of every live lease, so that a provider's planning visits its own
    /// leases only. Derived from `leases`; not in the root.
    by_provider: OrdSet<(PublicKey, Hash)>,
    /// (buyer, lease id) of every live lease, so that an account's leases are found without
    /// visiting every lease. Derived from `leases`; not in the root.
    by_buyer: OrdSet<(PublicKey, Hash)>,
    /// The market's resting book.
    pub book: Book,
    last_price: OrdMap<Market, u64>,
    revoked: OrdSet<RevocationId>,
    supply: u64,
    height: u64,
    now_ms: u64,
    /// The validator set in force for the next block, in its order.
    validators: Arc<Vec<Validator>>,
    /// Proposals open or passed and waiting for their height.
    proposals: OrdMap<Hash, Arc<Proposal>>,
    /// Rotated keys: old key → its rotation.
    rotated: OrdMap<PublicKey, Rotation>,
    /// Consensus parameters set by governance (until then, each node's own).
    consensus: Option<ConsensusParams>,
    /// Open maintenance windows, by provider and pool.
    maintenance: OrdMap<(PublicKey, String), Window>,
    /// Probe reports counted per (interval, lease), while the interval takes reports.
    tallies: OrdMap<(u64, Hash), Tally>,
    /// The items' sparse Merkle tree; its root is the state root.
    tree: surplus_state::Tree,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.tree.root() == other.tree.root()
            && self.chain_id == other.chain_id
            && self.params == other.params
            && self.accounts == other.accounts
            && self.leases == other.leases
            && self.book == other.book
            && self.last_price == other.last_price
            && self.revoked == other.revoked
            && (self.supply, self.height, self.now_ms) == (other.supply, other.height, other.now_ms)
            && self.validators == other.validators
            && self.proposals == other.proposals
            && self.rotated == other.rotated
            && self.consensus == other.consensus
            && self.maintenance == other.maintenance
            && self.tallies == other.tallies
            // The indexes derived from the above: equal states execute blocks alike.
            && self.params_bytes == other.params_bytes
            && self.due == other.due
            && self.granted == other.granted
            && self.by_provider == other.by_provider
            && self.by_buyer == other.by_buyer
    }
}

impl Eq for State {}

fn pay_split(amount: u64, fee_bps: u16) -> (u64, u64) {
    let fee = (u128::from(amount) * u128::from(fee_bps) / u128::from(BPS)) as u64;
    (amount - fee, fee)
}

impl State {
    /// The state after the genesis block.
    pub fn genesis(chain_id: &str, genesis: &Genesis, timestamp_ms: u64) -> Result<Self, Error> {
        genesis.entries()?;
        let params = genesis.params.clone().validated()?;
        let mut accounts = OrdMap::new();
        let mut supply = 0u64;
        for a in &genesis.allocations {
            accounts.entry(a.account).or_insert_with(Account::default).balance = a.amount;
            supply = supply
                .checked_add(a.amount)
                .ok_or_else(|| Error::Genesis("allocations overflow".into()))?;
        }
        let params_bytes = params.encode();
        let validators = genesis
            .validators
            .iter()
            .map(|k| Validator { key: *k, power: 1, address: String::new() })
            .collect();
        let mut state = Self {
            chain_id: chain_id.to_owned(),
            params,
            params_bytes,
            accounts: accounts.into(),
            leases: Tracked::default(),
            due: OrdSet::new(),
            granted: OrdMap::new(),
            by_provider: OrdSet::new(),
            by_buyer: OrdSet::new(),
            book: Book::new(),
            last_price: OrdMap::new(),
            revoked: OrdSet::new(),
            supply,
            height: 0,
            now_ms: timestamp_ms,
            validators: Arc::new(validators),
            proposals: OrdMap::new(),
            rotated: OrdMap::new(),
            consensus: None,
            maintenance: OrdMap::new(),
            tallies: OrdMap::new(),
            tree: surplus_state::Tree::new(),
        };
        state.book.take_changes();
        state.tree = state.tree_from_scratch();
        Ok(state)
    }

    /// An account (default: empty).
    pub fn account(&self, key: &PublicKey) -> Account {
        self.accounts.get(key).cloned().unwrap_or_default()
    }
    /// Every account with its state, in key order.
    pub fn accounts(&self) -> impl Iterator<Item = (&PublicKey, &Account)> {
        self.accounts.iter()
    }
    /// A live lease (an active one: a lease that ended left the state with its block).
    pub fn lease(&self, id: &Hash) -> Option<&Lease> {
        self.leases.get(id).map(|l| &**l)
    }
    /// Every live lease, in id order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values().map(|l| &**l)
    }
    /// When time alone next has work for a lease: the earliest end or end of an unpaid hour of
    /// an active lease (contracts.md §3 step 1), ms since the epoch.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.due.get_min().map(|(t, _)| *t)
    }
    /// The live leases of one provider, by id.
    pub fn provider_leases<'a>(&'a self, provider: &PublicKey) -> impl Iterator<Item = &'a Lease> {
        let p = *provider;
        self.by_provider
            .range((p, [0u8; 32])..=(p, [0xff; 32]))
            .filter_map(move |(_, id)| self.leases.get(id).map(|l| &**l))
    }
    /// The live leases an account is the buyer or the provider of, by id (a lease it is both
    /// of, once).
    pub fn account_leases<'a>(&'a self, account: &PublicKey) -> impl Iterator<Item = &'a Lease> {
        let a = *account;
        let range = (a, [0u8; 32])..=(a, [0xff; 32]);
        let mut sold = self.by_provider.range(range.clone()).map(|(_, id)| id).peekable();
        let mut bought = self.by_buyer.range(range).map(|(_, id)| id).peekable();
        // The two id lists merged in order, without repeats.
        std::iter::from_fn(move || {
            let next = match (sold.peek(), bought.peek()) {
                (Some(x), Some(y)) if x == y => {
                    bought.next();
                    sold.next()
                }
                (Some(x), Some(y)) if x < y => sold.next(),
                (Some(_), Some(_)) | (None, Some(_)) => bought.next(),
                (Some(_), None) => sold.next(),
                (None, None) => None,
            };
            next.map(|id| self.leases.get(id).map(|l| &**l))
        })
        .flatten()
    }
    /// Whether a revocation id is revoked.
    pub fn is_revoked(&self, id: &[u8]) -> bool {
        self.revoked.contains(&RevocationId(id.to_vec()))
    }
    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }
    /// Number of leases.
    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }
    /// Revoked credential ids.
    pub fn revoked(&self) -> impl Iterator<Item = &RevocationId> {
        self.revoked.iter()
    }
    /// The last clearing price of a market.
    pub fn last_price(&self, market: &Market) -> Option<u64> {
        self.last_price.get(market).copied()
    }
    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.height
    }
    /// Time of the last applied block (the genesis time after genesis), ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
    /// Credits created at genesis; balances, bonds and escrow always add up to this.
    pub fn supply(&self) -> u64 {
        self.supply
    }
    /// Balances, bonds and escrow of active leases (equals [`State::supply`]).
    pub fn total_credits(&self) -> u128 {
        let balances: u128 = self.accounts.values().map(|a| u128::from(a.balance)).sum();
        let bonds: u128 = self.accounts.values().map(|a| u128::from(a.bond)).sum();
        let escrow: u128 = self.leases.values().map(|l| u128::from(l.escrow)).sum();
        balances + bonds + escrow
    }

    fn balance_mut(&mut self, key: &PublicKey) -> &mut u64 {
        &mut self.accounts.entry_or_default(*key).balance
    }

    /// Applies one block: time-driven settlements, the user entries (`user`, in block order),
    /// then the auction. In [`Mode::Validate`] a refused entry is an error and the state is left
    /// unchanged; in [`Mode::Propose`] it is dropped and reported.
    ///
    /// The block runs on a clone of the state, which shares all its data with the original
    /// until something changes, and replaces the state only if the block applies.
    ///
    /// The user entries' signatures are checked (strict rule) on other threads while the block
    /// runs on the assumption that every signed entry's signature is good; if one is not, the
    /// block runs again from the original with the signatures as checked. Either way the result
    /// is the one of checking each entry's signature before applying it.
    pub fn apply_block(
        &mut self,
        height: u64,
        now_ms: u64,
        user: &[Entry],
        mode: Mode,
    ) -> Result<Applied, Error> {
        self.apply_block_with(height, now_ms, user, mode, None)
    }

    /// [`State::apply_block`], without checking again the signature of an entry whose id
    /// `verified` holds (this node verified it on admission, [`VerifiedIds`]): the outcome is
    /// the same, the work is less.
    pub fn apply_block_with(
        &mut self,
        height: u64,
        now_ms: u64,
        user: &[Entry],
        mode: Mode,
        verified: Option<&VerifiedIds>,
    ) -> Result<Applied, Error> {
        let assumed: Vec<bool> =
            user.iter().map(|e| matches!(e.auth, Auth::Signed { .. })).collect();
        let known = match verified {
            Some(v) => v.known(user.iter().map(Entry::id)),
            None => vec![false; user.len()],
        };
        let unknown = known.iter().filter(|k| !**k).count();
        let checks = SignatureChecks::new(&self.chain_id, user, known);
        // The cores are asked only when there is work to share: `available_parallelism` reads
        // the cgroup files each call, which costs more than a small block.
        let helpers = match unknown / SIGNATURE_CHUNK {
            0 => 0,
            chunks => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                cores.saturating_sub(1).max(1).min(chunks)
            }
        };
        let optimistic = std::thread::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|| checks.work());
            }
            let mut next = self.clone();
            let result = next.apply_inner(height, now_ms, user, mode, &assumed).map(|a| (next, a));
            // Then this thread helps with the signatures left.
            checks.work();
            result
        });
        let checked = checks.results();
        let (next, applied) = if checked == assumed {
            optimistic?
        } else {
            // A bad signature (rare: the mempool checks each one on admission).
            drop(optimistic);
            let mut next = self.clone();
            let applied = next.apply_inner(height, now_ms, user, mode, &checked)?;
            (next, applied)
        };
        // What only the replaced version held is freed off the block's path.
        surplus_state::drop_in_background(std::mem::replace(self, next));
        Ok(applied)
    }

    /// [`State::apply_block`] for the audit's re-execution, which checks the user entries'
    /// signatures under the strict rule before (the ledger's own checks) and stops at the first
    /// failure: the signatures are not checked a second time (an unsigned user entry is still
    /// refused), and the block is applied in place, without a copy of the state to fall back on,
    /// so after an error the state is partly applied and must be dropped.
    pub fn apply_verified_block(
        &mut self,
        height: u64,
        now_ms: u64,
        user: &[Entry],
        mode: Mode,
    ) -> Result<Applied, Error> {
        let signed: Vec<bool> =
            user.iter().map(|e| matches!(e.auth, Auth::Signed { .. })).collect();
        self.apply_inner(height, now_ms, user, mode, &signed)
    }

    fn apply_inner(
        &mut self,
        height: u64,
        now_ms: u64,
        user: &[Entry],
        mode: Mode,
        signatures_ok: &[bool],
    ) -> Result<Applied, Error> {
        if height != self.height + 1 {
            return Err(Error::Block(format!("height {height} does not follow {}", self.height)));
        }
        if now_ms < self.now_ms {
            return Err(Error::Block(format!("block time {now_ms} is before {}", self.now_ms)));
        }
        // What the block changes: accounts and leases record their changed keys, the other
        // maps (small) are compared with their clones from before the block (which share
        // everything).
        self.accounts.clear_touched();
        self.leases.clear_touched();
        let before = Before {
            last_price: self.last_price.clone(),
            revoked: self.revoked.clone(),
            validators: self.validators.clone(),
            proposals: self.proposals.clone(),
            rotated: self.rotated.clone(),
            consensus: self.consensus,
            maintenance: self.maintenance.clone(),
            tallies: self.tallies.clone(),
        };
        self.height = height;
        self.now_ms = now_ms;
        let mut entries = Vec::new();
        self.settle_elapsed(now_ms, &mut entries);

        let mut seen: BTreeSet<Hash> = BTreeSet::new();
        let mut refused = Vec::new();
        let mut batch = Batch { height, now_ms, orders: Vec::new(), cancels: Vec::new() };
        // Orders and cancels go into the block in their place; which ones the auction refused is
        // known only after it runs.
        // (position in `entries`, index in `user`, order or cancel id)
        let mut order_slots: Vec<(usize, usize, Hash)> = Vec::new();
        for (i, e) in user.iter().enumerate() {
            let result = if !seen.insert(e.id()) {
                Err(Refusal::Malformed("the same entry appears twice in the block".into()))
            } else if signatures_ok[i] {
                self.apply_user(e, &mut batch)
            } else {
                Err(Refusal::BadSignature)
            };
            match result {
                Ok(UserEffect::Done(consequences)) => {
                    entries.push(e.clone());
                    entries.extend(consequences);
                }
                Ok(UserEffect::Market(id)) => {
                    order_slots.push((entries.len(), i, id));
                    entries.push(e.clone());
                }
                Err(r) => match mode {
                    Mode::Validate => return Err(Error::Refused { index: i, refusal: r }),
                    Mode::Propose => refused.push((i, r)),
                },
            }
        }

        // Budgets read the balances in place (the book and the accounts are separate fields).
        let accounts = &self.accounts;
        let budget = |k: &PublicKey| accounts.get(k).map_or(0, |a| a.balance);
        let outcome = self
            .book
            .clear_owned(&self.params.catalogue, batch, &budget)
            .map_err(|e| Error::Block(e.to_string()))?;
        if !outcome.rejected.is_empty() {
            let rejected: BTreeMap<Hash, &surplus_market::Rejection> =
                outcome.rejected.iter().map(|r| (r.id, &r.reason)).collect();
            let mut drop = BTreeSet::new();
            for &(pos, index, id) in &order_slots {
                if let Some(reason) = rejected.get(&id) {
                    match mode {
                        Mode::Validate => {
                            return Err(Error::Refused {
                                index,
                                refusal: Refusal::Market((*reason).clone()),
                            })
                        }
                        Mode::Propose => {
                            refused.push((index, Refusal::Market((*reason).clone())));
                            drop.insert(pos);
                        }
                    }
                }
            }
            let mut k = 0;
            entries.retain(|_| {
                k += 1;
                !drop.contains(&(k - 1))
            });
        }
        for (market, price) in &outcome.prices {
            if self.last_price.get(market) != Some(price) {
                self.last_price.insert(market.clone(), *price);
            }
        }
        for f in &outcome.fills {
            let entry = Entry::system(EntryKind::FILL, encode_fill(f, height));
            let id = entry.id();
            if self.leases.contains_key(&id) {
                return Err(Error::Block(format!(
                    "fill {} would create an existing lease",
                    hex::encode(id)
                )));
            }
            let escrow = f.cost();
            let balance = self.balance_mut(&f.buyer);
            // The auction filled within the buyer's balance; anything else is a bug upstream.
            if *balance < escrow {
                return Err(Error::Block(format!("fill for {} exceeds its balance", f.buyer)));
            }
            *balance -= escrow;
            let hours = u32::try_from((f.end_ms - f.start_ms) / HOUR_MS).unwrap_or(u32::MAX);
            self.by_provider.insert((f.provider, id));
            self.by_buyer.insert((f.buyer, id));
            self.leases.insert(
                id,
                Arc::new(Lease {
                    id,
                    fill: f.clone(),
                    height,
                    hours,
                    segments: vec![Segment { hours, price: f.price }],
                    hours_paid: 0,
                    escrow,
                    status: LeaseStatus::Active,
                    grant: None,
                    notice: None,
                    down_ms: 0,
                    credited: 0,
                    probe: None,
                }),
            );
            self.reschedule(id, None);
            entries.push(entry);
        }
        self.close_windows(now_ms);
        self.close_tallies(now_ms);
        self.end_of_block(height, &before.validators, &mut entries);
        refused.sort_by_key(|r| r.0);
        let (ended, lease_leaves) = self.remove_ended();
        self.update_tree(&before, lease_leaves);
        Ok(Applied { entries, refused, outcome, ended, state_root: self.root() })
    }

    /// Pays every active lease for the hours that passed, and completes those that ended.
    fn settle_elapsed(&mut self, now_ms: u64, entries: &mut Vec<Entry>) {
        let fee_bps = self.params.fee_bps;
        // The leases due by now, in lease id order (the order of their settlements).
        let mut ids: Vec<(u64, Hash)> = self.due.range(..=(now_ms, [0xff; 32])).cloned().collect();
        ids.sort_by_key(|(_, id)| *id);
        for (due, id) in ids {
            self.due.remove(&(due, id));
            let notice = self.leases.get(&id).and_then(|l| l.notice);
            if let Some(n) = notice.filter(|n| now_ms >= n.end_ms) {
                if self.leases.get(&id).is_some_and(|l| n.end_ms < l.fill.end_ms) {
                    let how = EarlyEnd::Notice { in_time: n.in_time };
                    entries.extend(self.end_early(id, how, n.end_ms, None));
                    continue;
                }
            }
            let Some(l) = self.leases.get_mut(&id).map(Arc::make_mut) else { continue };
            let (reason, hours) = if now_ms >= l.fill.end_ms {
                (SettlementReason::Completion, l.hours)
            } else {
                let elapsed = u32::try_from((now_ms - l.fill.start_ms) / HOUR_MS)
                    .unwrap_or(u32::MAX)
                    .min(l.hours);
                (SettlementReason::Hourly, elapsed)
            };
            if hours <= l.hours_paid && reason == SettlementReason::Hourly {
                self.reschedule(id, None);
                continue;
            }
            let amount = l.cost_between(l.hours_paid, hours);
            let (to_provider, fee) = pay_split(amount, fee_bps);
            l.escrow -= amount;
            l.hours_paid = hours;
            let provider = l.fill.provider;
            let mut revoke = None;
            if reason == SettlementReason::Completion {
                l.status = LeaseStatus::Completed;
                revoke = l.grant.as_ref().map(|g| g.revocation_ids.clone());
            }
            let s = Settlement {
                lease: id,
                reason,
                hours_paid: hours,
                to_provider,
                fee,
                refund: 0,
                penalty: 0,
                added: 0,
            };
            let provider = self.current_key(&provider);
            *self.balance_mut(&provider) += to_provider;
            let treasury = self.params.treasury;
            *self.balance_mut(&treasury) += fee;
            entries.push(Entry::system(EntryKind::SETTLEMENT, s.encode()));
            if let Some(ids) = revoke {
                self.revoked.extend(ids.iter().cloned());
                entries.push(Entry::system(EntryKind::REVOCATION, encode_revocation(&id, &ids)));
            }
            if reason == SettlementReason::Completion {
                entries.extend(self.target_credit(id));
            }
            self.reschedule(id, None);
        }
    }

    /// Puts lease `id` in the due queue under its current due time, after taking out its entry
    /// under `before` (its due time before a change), if any.
    fn reschedule(&mut self, id: Hash, before: Option<u64>) {
        if let Some(t) = before {
            self.due.remove(&(t, id));
        }
        if let Some(t) = self.leases.get(&id).and_then(|l| l.due_ms()) {
            self.due.insert((t, id));
        }
    }

    fn apply_user(&mut self, e: &Entry, batch: &mut Batch) -> Result<UserEffect, Refusal> {
        let Auth::Signed { author, .. } = e.auth else {
            return Err(Refusal::Unsigned);
        };
        if self.rotated.contains_key(&author) {
            return Err(Refusal::KeyRotated(self.current_key(&author).to_string()));
        }
        match e.kind {
            EntryKind::ORDER => {
                let o = SignedOrder::from_entry(e).map_err(Refusal::Market)?;
                self.check_bond(&author, &o.order)?;
                let id = o.id;
                batch.orders.push(o);
                Ok(UserEffect::Market(id))
            }
            EntryKind::CANCEL => {
                let c = SignedCancel::from_entry(e).map_err(Refusal::Market)?;
                let id = c.id;
                batch.cancels.push(c);
                Ok(UserEffect::Market(id))
            }
            EntryKind::PROBE_REPORT => {
                let report =
                    Report::decode(&e.payload).map_err(|d| Refusal::Malformed(d.to_string()))?;
                Ok(UserEffect::Done(self.apply_report(&author, &report)?))
            }
            EntryKind::TRANSFER
            | EntryKind::LEASE_TRANSITION
            | EntryKind::MAINTENANCE
            | EntryKind::BOND
            | EntryKind::CREDENTIAL_GRANT
            | EntryKind::GOV_PROPOSE
            | EntryKind::GOV_VOTE
            | EntryKind::GOV_WITHDRAW
            | EntryKind::KEY_ROTATION => {
                let tx = Tx::decode(e.kind, &e.payload)
                    .map_err(|d| Refusal::Malformed(d.to_string()))?;
                let expected = self.account(&author).seq;
                if tx.seq() != expected {
                    return Err(Refusal::BadSequence { expected, got: tx.seq() });
                }
                let out = self.apply_tx(&author, tx, e.id())?;
                self.accounts.entry_or_default(author).seq += 1;
                Ok(UserEffect::Done(out))
            }
            other => Err(Refusal::NotUserEntry { kind: other.0, name: other.name().into() }),
        }
    }

    /// The rules of a transaction that depend on the state alone, not on the rest of its
    /// block: who may do it, to what, with what. Admission ([`State::precheck`]) and the
    /// block's execution ([`State::apply_block`]) both run exactly these; execution then adds
    /// what only it can know (the renewal's price at the block).
    ///
    /// `height` is the block the transaction executes in (for admission, the next one).
    pub(crate) fn check_tx(&self, author: &PublicKey, tx: &Tx, height: u64) -> Result<(), Refusal> {
        // A party of a lease speaks with its current key (after a rotation, the new one).
        let party = |k: &PublicKey| self.current_key(k) == *author;
        let lease_of =
            |id: &Hash| self.leases.get(id).ok_or_else(|| Refusal::UnknownLease(hex::encode(id)));
        match tx {
            Tx::Transfer { to, amount, .. } => {
                if *amount == 0 || to == author {
                    return Err(Refusal::EmptyTransfer);
                }
                let balance = self.account(author).balance;
                if balance < *amount {
                    return Err(Refusal::InsufficientBalance { balance, needed: *amount });
                }
            }
            Tx::Terminate { lease, .. } => {
                let l = lease_of(lease)?;
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                if !party(&l.fill.buyer) && !party(&l.fill.provider) {
                    return Err(Refusal::NotEntitled("buyer or provider".into()));
                }
            }
            Tx::Renew { lease, hours, .. } => {
                let l = lease_of(lease)?;
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                if !party(&l.fill.buyer) {
                    return Err(Refusal::NotEntitled("buyer".into()));
                }
                if let Some(n) = l.notice {
                    return Err(Refusal::RenewalRefused(format!(
                        "the provider gave notice: the lease ends at {} ms",
                        n.end_ms
                    )));
                }
                if !self.params.catalogue.has_market(&l.fill.market) {
                    return Err(Refusal::RenewalRefused(format!(
                        "the market {} left the catalogue",
                        l.fill.market
                    )));
                }
                if *hours == 0 || *hours > surplus_market::MAX_HOURS {
                    return Err(Refusal::RenewalRefused(format!(
                        "{hours} hours is outside 1 to {}",
                        surplus_market::MAX_HOURS
                    )));
                }
            }
            Tx::Notice { lease, end_ms, .. } => {
                let l = lease_of(lease)?;
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                if !party(&l.fill.provider) {
                    return Err(Refusal::NotEntitled("provider".into()));
                }
                if *end_ms >= l.fill.end_ms {
                    return Err(Refusal::NoticeRefused(format!(
                        "the lease ends at {} ms anyway, not after {end_ms}",
                        l.fill.end_ms
                    )));
                }
                if let Some(n) = l.notice.filter(|n| n.end_ms <= *end_ms) {
                    return Err(Refusal::NoticeRefused(format!(
                        "notice was given already for {} ms; a new one may only come earlier",
                        n.end_ms
                    )));
                }
            }
            Tx::Probe { lease, .. } => {
                let l = lease_of(lease)?;
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                if !party(&l.fill.provider) {
                    return Err(Refusal::NotEntitled("provider".into()));
                }
            }
            Tx::Move { lease, pool, .. } => {
                let l = lease_of(lease)?;
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                if !party(&l.fill.provider) {
                    return Err(Refusal::NotEntitled("provider".into()));
                }
                check_pool_name(pool).map_err(Refusal::MaintenanceRefused)?;
            }
            Tx::Maintenance { pool, market, start_ms, until_ms, reason, .. } => {
                check_pool_name(pool).map_err(Refusal::MaintenanceRefused)?;
                if !self.params.catalogue.has_market(market) {
                    return Err(Refusal::MaintenanceRefused(format!(
                        "{market} is not a market of the catalogue"
                    )));
                }
                if reason.len() > crate::maintenance::MAX_REASON {
                    return Err(Refusal::MaintenanceRefused(format!(
                        "the reason has {} bytes, at most {} are allowed",
                        reason.len(),
                        crate::maintenance::MAX_REASON
                    )));
                }
                if *until_ms != 0 && until_ms <= start_ms {
                    return Err(Refusal::MaintenanceRefused(
                        "the window must end after it starts (until 0: when done)".into(),
                    ));
                }
                if *start_ms > self.now_ms.saturating_add(crate::maintenance::MAX_WINDOW_AHEAD_MS) {
                    return Err(Refusal::MaintenanceRefused(
                        "the window must start within a year".into(),
                    ));
                }
                let replaces = self.maintenance.contains_key(&(*author, pool.clone()));
                let open = self.windows_of(author).count();
                if !replaces && open >= crate::maintenance::MAX_WINDOWS {
                    return Err(Refusal::MaintenanceRefused(format!(
                        "{open} windows are open already, at most {} are allowed",
                        crate::maintenance::MAX_WINDOWS
                    )));
                }
            }
            Tx::MaintenanceDone { pool, .. } => {
                if !self.maintenance.contains_key(&(*author, pool.clone())) {
                    return Err(Refusal::MaintenanceRefused(format!(
                        "no open maintenance window for pool {pool:?} of this key"
                    )));
                }
            }
            Tx::Grant { lease, revocation_ids, .. } => {
                let l = lease_of(lease)?;
                if !party(&l.fill.provider) {
                    return Err(Refusal::NotEntitled("provider".into()));
                }
                if l.status != LeaseStatus::Active {
                    return Err(Refusal::LeaseNotActive);
                }
                // An id names one credential: a provider may not list (and so later revoke)
                // another lease's token.
                let taken =
                    |id: &RevocationId| self.revoked.contains(id) || self.granted.contains_key(id);
                if revocation_ids.iter().any(taken) {
                    return Err(Refusal::AlreadyGranted);
                }
            }
            Tx::Bond { amount, .. } => {
                if *amount == 0 {
                    return Err(Refusal::BondRefused("lock at least one unit".into()));
                }
                let balance = self.account(author).balance;
                if balance < *amount {
                    return Err(Refusal::InsufficientBalance { balance, needed: *amount });
                }
            }
            Tx::Unbond { amount, .. } => {
                let bond = self.account(author).bond;
                if *amount == 0 {
                    return Err(Refusal::BondRefused("take back at least one unit".into()));
                }
                // What the bond holds is state: a peer behind the block that locked it refuses
                // what its author's node admitted (circumstantial, not the relayer's fault).
                if *amount > bond {
                    return Err(Refusal::InsufficientBond { bond, needed: *amount });
                }
                if let Some(l) = self.provided_by(author).next() {
                    return Err(Refusal::BondLocked(format!(
                        "lease {} of this provider runs until {} ms",
                        hex::encode(l.id),
                        l.fill.end_ms
                    )));
                }
                if self.book.orders().any(|r| {
                    r.order.author == *author
                        && matches!(r.order.order, surplus_market::Order::Offer(_))
                }) {
                    return Err(Refusal::BondLocked(
                        "this provider has offers in the book: cancel them first".into(),
                    ));
                }
            }
            Tx::GovPropose { .. }
            | Tx::GovVote { .. }
            | Tx::GovWithdraw { .. }
            | Tx::RotateKey { .. } => self.check_gov(author, tx, height)?,
        }
        Ok(())
    }

    fn apply_tx(&mut self, author: &PublicKey, tx: Tx, id: Hash) -> Result<Vec<Entry>, Refusal> {
        self.check_tx(author, &tx, self.height)?;
        let now = self.now_ms;
        match tx {
            Tx::Transfer { to, amount, .. } => {
                // Credits sent to a rotated key reach its current one.
                let to = self.current_key(&to);
                *self.balance_mut(author) -= amount;
                *self.balance_mut(&to) += amount;
                Ok(Vec::new())
            }
            Tx::GovPropose { .. }
            | Tx::GovVote { .. }
            | Tx::GovWithdraw { .. }
            | Tx::RotateKey { .. } => Ok(self.apply_gov(author, tx, id)),
            Tx::Bond { amount, .. } => {
                let a = self.accounts.entry_or_default(*author);
                a.balance -= amount;
                a.bond += amount;
                Ok(Vec::new())
            }
            Tx::Unbond { amount, .. } => {
                let a = self.accounts.entry_or_default(*author);
                a.bond -= amount;
                a.balance += amount;
                Ok(Vec::new())
            }
            Tx::Terminate { lease, .. } => {
                let by_buyer = self
                    .leases
                    .get(&lease)
                    .is_some_and(|l| *author == self.current_key(&l.fill.buyer));
                let how = if by_buyer { EarlyEnd::Buyer } else { EarlyEnd::Provider };
                Ok(self.end_early(lease, how, now, Some(now)))
            }
            Tx::Renew { lease, hours, .. } => {
                let l = self
                    .leases
                    .get(&lease)
                    .ok_or_else(|| Refusal::UnknownLease(hex::encode(lease)))?;
                let last = self.last_price.get(&l.fill.market).copied().ok_or_else(|| {
                    Refusal::RenewalRefused("the market has no clearing price yet".into())
                })?;
                // Never below what the provider asked for its slots.
                let reserve = self.book.offer_reserve(&l.fill.offer).ok_or_else(|| {
                    Refusal::RenewalRefused("the offer is no longer in the book".into())
                })?;
                let price = last.max(reserve);
                if price == 0 {
                    return Err(Refusal::RenewalRefused("no positive price to renew at".into()));
                }
                let added = surplus_market::cost(l.fill.slots, hours, price)
                    .ok_or_else(|| Refusal::RenewalRefused("the cost overflows".into()))?;
                let new_hours =
                    l.hours.checked_add(hours).filter(|h| *h <= surplus_market::MAX_HOURS * 2);
                let Some(new_hours) = new_hours else {
                    return Err(Refusal::RenewalRefused("the lease would be too long".into()));
                };
                let balance = self.account(author).balance;
                if balance < added {
                    return Err(Refusal::InsufficientBalance { balance, needed: added });
                }
                let (offer, bid, start, end) =
                    (l.fill.offer, l.fill.bid, l.fill.start_ms, l.fill.end_ms);
                let new_end = end + u64::from(hours) * HOUR_MS;
                self.book
                    .extend_allocation(&offer, &bid, start, new_end)
                    .map_err(Refusal::RenewalRefused)?;
                *self.balance_mut(author) -= added;
                let before = self.leases.get(&lease).and_then(|l| l.due_ms());
                let Some(l) = self.leases.get_mut(&lease).map(Arc::make_mut) else {
                    return Err(Refusal::UnknownLease(hex::encode(lease)));
                };
                l.escrow += added;
                l.hours = new_hours;
                l.segments.push(Segment { hours, price });
                l.fill.end_ms = new_end;
                let s = Settlement {
                    lease,
                    reason: SettlementReason::Renewal,
                    hours_paid: l.hours_paid,
                    to_provider: 0,
                    fee: 0,
                    refund: 0,
                    penalty: 0,
                    added,
                };
                self.reschedule(lease, before);
                Ok(vec![Entry::system(EntryKind::SETTLEMENT, s.encode())])
            }
            Tx::Notice { lease, end_ms, .. } => {
                if end_ms < now {
                    return Err(Refusal::NoticeRefused(format!(
                        "the notice's end, {end_ms} ms, is before the block's time, {now} ms"
                    )));
                }
                let in_time = end_ms - now >= self.params.notice_ms;
                let before = self.leases.get(&lease).and_then(|l| l.due_ms());
                let Some(l) = self.leases.get_mut(&lease).map(Arc::make_mut) else {
                    return Err(Refusal::UnknownLease(hex::encode(lease)));
                };
                l.notice = Some(Notice { end_ms, given_ms: now, in_time });
                self.reschedule(lease, before);
                Ok(Vec::new())
            }
            // Recorded on the ledger; the state does not follow pools.
            Tx::Move { .. } => Ok(Vec::new()),
            Tx::Probe { lease, target, .. } => {
                if let Some(l) = self.leases.get_mut(&lease).map(Arc::make_mut) {
                    l.probe = Some(target);
                }
                Ok(Vec::new())
            }
            Tx::Maintenance { pool, market, start_ms, until_ms, reason, .. } => {
                let w = Window {
                    provider: *author,
                    pool: pool.clone(),
                    market,
                    start_ms,
                    until_ms,
                    reason,
                    height: self.height,
                };
                self.maintenance.insert((*author, pool), w);
                Ok(Vec::new())
            }
            Tx::MaintenanceDone { pool, .. } => {
                self.maintenance.remove(&(*author, pool));
                Ok(Vec::new())
            }
            Tx::Grant { lease, token_hash, revocation_ids, sealed, .. } => {
                let Some(l) = self.leases.get_mut(&lease).map(Arc::make_mut) else {
                    return Err(Refusal::UnknownLease(hex::encode(lease)));
                };
                // A new token (for example after a renewal) replaces the old, which is revoked.
                for id in &revocation_ids {
                    self.granted.insert(id.clone(), lease);
                }
                let old = l.grant.replace(Grant { token_hash, revocation_ids, sealed });
                match old {
                    Some(g) => {
                        // Revoked now: the revoked set keeps them taken.
                        for id in &g.revocation_ids {
                            self.granted.remove(id);
                        }
                        self.revoked.extend(g.revocation_ids.iter().cloned());
                        Ok(vec![Entry::system(
                            EntryKind::REVOCATION,
                            encode_revocation(&lease, &g.revocation_ids),
                        )])
                    }
                    None => Ok(Vec::new()),
                }
            }
        }
    }

    /// Ends a lease early at `now`: pays the provider what is due, refunds the rest of the
    /// escrow, and (a provider's termination, or a notice not given in time) charges the
    /// provider's penalty. `rescheduled_from`: its due time in the queue, when it is still
    /// there (a termination; time passing has taken it out).
    fn end_early(
        &mut self,
        lease: Hash,
        how: EarlyEnd,
        now: u64,
        rescheduled_from: Option<u64>,
    ) -> Vec<Entry> {
        let fee_bps = self.params.fee_bps;
        let penalty_bps = self.params.penalty_bps;
        let by_buyer = how == EarlyEnd::Buyer;
        let before =
            rescheduled_from.and_then(|_| self.leases.get(&lease).and_then(|l| l.due_ms()));
        let Some(l) = self.leases.get_mut(&lease).map(Arc::make_mut) else { return Vec::new() };
        let elapsed_ms = now.saturating_sub(l.fill.start_ms);
        // The buyer pays for the hour it is in; a provider that walks away is paid only for
        // hours completed.
        let hours = if by_buyer { elapsed_ms.div_ceil(HOUR_MS) } else { elapsed_ms / HOUR_MS };
        let hours = u32::try_from(hours).unwrap_or(u32::MAX).min(l.hours).max(l.hours_paid);
        let amount = l.cost_between(l.hours_paid, hours);
        let (to_provider, fee) = pay_split(amount, fee_bps);
        l.escrow -= amount;
        l.hours_paid = hours;
        let refund = l.escrow;
        l.escrow = 0;
        l.status = match how {
            EarlyEnd::Buyer => LeaseStatus::TerminatedByBuyer,
            EarlyEnd::Provider => LeaseStatus::TerminatedByProvider,
            EarlyEnd::Notice { .. } => LeaseStatus::EndedByNotice,
        };
        let (buyer, provider, offer, bid, start) =
            (l.fill.buyer, l.fill.provider, l.fill.offer, l.fill.bid, l.fill.start_ms);
        let revoke = l.grant.as_ref().map(|g| g.revocation_ids.clone());
        l.fill.end_ms = now;
        self.reschedule(lease, before);
        self.book.end_allocation(&offer, &bid, start, now);
        // Payments go to the parties' current keys.
        let (buyer, provider) = (self.current_key(&buyer), self.current_key(&provider));
        *self.balance_mut(&provider) += to_provider;
        let treasury = self.params.treasury;
        *self.balance_mut(&treasury) += fee;
        *self.balance_mut(&buyer) += refund;
        let mut penalty = 0;
        if matches!(how, EarlyEnd::Provider | EarlyEnd::Notice { in_time: false }) {
            let due = (u128::from(refund) * u128::from(penalty_bps) / u128::from(BPS)) as u64;
            // From the provider's balance, then from its bond.
            let (from_balance, from_bond) = self.charge_provider(&provider, due);
            penalty = from_balance + from_bond;
            *self.balance_mut(&buyer) += penalty;
        }
        let reason = match how {
            EarlyEnd::Buyer => SettlementReason::BuyerTermination,
            EarlyEnd::Provider => SettlementReason::ProviderTermination,
            EarlyEnd::Notice { .. } => SettlementReason::Notice,
        };
        let s = Settlement {
            lease,
            reason,
            hours_paid: hours,
            to_provider,
            fee,
            refund,
            penalty,
            added: 0,
        };
        let mut out = vec![Entry::system(EntryKind::SETTLEMENT, s.encode())];
        if let Some(ids) = revoke {
            self.revoked.extend(ids.iter().cloned());
            out.push(Entry::system(EntryKind::REVOCATION, encode_revocation(&lease, &ids)));
        }
        out.extend(self.target_credit(lease));
        out
    }

    /// Takes up to `due` units from `provider`: its balance first, then its bond. Returns what
    /// came from each.
    fn charge_provider(&mut self, provider: &PublicKey, due: u64) -> (u64, u64) {
        let a = self.accounts.entry_or_default(*provider);
        let from_balance = due.min(a.balance);
        a.balance -= from_balance;
        let from_bond = (due - from_balance).min(a.bond);
        a.bond -= from_bond;
        (from_balance, from_bond)
    }

    /// Pays lease `id`'s buyer a service credit of `due` from its provider (balance, then
    /// bond), and returns the `credit` entry.
    fn pay_credit(&mut self, id: Hash, reason: CreditReason, interval: u64, due: u64) -> Entry {
        let (provider, buyer) = match self.leases.get(&id) {
            Some(l) => (self.current_key(&l.fill.provider), self.current_key(&l.fill.buyer)),
            None => (PublicKey([0; 32]), PublicKey([0; 32])),
        };
        let (from_balance, from_bond) = self.charge_provider(&provider, due);
        *self.balance_mut(&buyer) += from_balance + from_bond;
        if let Some(l) = self.leases.get_mut(&id).map(Arc::make_mut) {
            l.credited += from_balance + from_bond;
        }
        let c = Credit { lease: id, reason, interval, due, from_balance, from_bond };
        Entry::system(EntryKind::CREDIT, c.encode())
    }

    /// The terms of `market`'s class (none once the class left the catalogue).
    pub fn terms(&self, market: &Market) -> Terms {
        self.params
            .catalogue
            .classes
            .iter()
            .find(|c| c.id == market.class)
            .map(Terms::of)
            .unwrap_or_default()
    }

    /// At a lease's end: the credit of a lease below its market's availability target
    /// (`docs/contracts.md` §10), if it earned one.
    fn target_credit(&mut self, id: Hash) -> Option<Entry> {
        let l = self.leases.get(&id)?;
        let t = self.terms(&l.fill.market);
        if t.availability_bps == 0 || t.credit_bps == 0 || l.down_ms == 0 {
            return None;
        }
        let duration = l.fill.end_ms.saturating_sub(l.fill.start_ms);
        let below = u128::from(l.down_ms) * u128::from(BPS)
            > u128::from(BPS - t.availability_bps) * u128::from(duration);
        if !below {
            return None;
        }
        let cost = l.cost_between(0, l.hours_paid);
        let due = (u128::from(cost) * u128::from(t.credit_bps) / u128::from(BPS)) as u64;
        Some(self.pay_credit(id, CreditReason::BelowTarget, 0, due))
    }

    /// The part of `provider`'s bond its live leases hold: their slots at each one's market's
    /// `terms.bond_per_slot` (`docs/contracts.md` §10); an offer needs a bond of this plus its
    /// own slots at its market's terms.
    pub fn bond_in_use(&self, provider: &PublicKey) -> u64 {
        let in_use: u128 = self
            .provided_by(provider)
            .map(|l| {
                u128::from(self.terms(&l.fill.market).bond_per_slot) * u128::from(l.fill.slots)
            })
            .sum();
        in_use.min(u128::from(u64::MAX)) as u64
    }

    /// An offer needs its author's bond to cover, at each market's `terms.bond_per_slot`, its
    /// slots and the slots of the author's live leases (`docs/contracts.md` §10).
    pub(crate) fn check_bond(
        &self,
        author: &PublicKey,
        order: &surplus_market::Order,
    ) -> Result<(), Refusal> {
        let surplus_market::Order::Offer(o) = order else { return Ok(()) };
        let per_slot = self.terms(&o.market).bond_per_slot;
        if per_slot == 0 {
            return Ok(());
        }
        let needed =
            u128::from(per_slot) * u128::from(o.slots) + u128::from(self.bond_in_use(author));
        let needed = needed.min(u128::from(u64::MAX)) as u64;
        let bond = self.account(author).bond;
        if bond < needed {
            return Err(Refusal::BondRequired { bond, needed });
        }
        Ok(())
    }

    /// Whether `report` by `author` may apply at time `now_ms` (`docs/contracts.md` §10): the
    /// rules that refuse it, without changing anything. Admission runs it with the node's time.
    pub(crate) fn check_report(
        &self,
        author: &PublicKey,
        report: &Report,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let Some(sup) = self.params.supervision else {
            return Err(Refusal::ReportRefused("supervision is off in this consortium".into()));
        };
        if !self.validators.iter().any(|v| v.key == *author) {
            return Err(Refusal::NotValidator);
        }
        let Some((_, end)) = sup.span(report.interval) else {
            return Err(Refusal::ReportRefused("the interval is out of range".into()));
        };
        if end > now_ms {
            return Err(Refusal::ReportRefused(format!(
                "interval {} ends at {end} ms, after {now_ms} ms",
                report.interval
            )));
        }
        let closes = end.saturating_add(u64::from(sup.window) * sup.interval_ms);
        if now_ms >= closes {
            return Err(Refusal::ReportRefused(format!(
                "interval {} took reports until {closes} ms",
                report.interval
            )));
        }
        if !report.down.iter().any(|l| self.report_counts(author, l, report.interval)) {
            return Err(Refusal::ReportRefused(
                "no lease of the report is a live lease of another provider in the interval that \
                 this key has not reported already"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether `author`'s down report of `lease` in `interval` counts: the lease is live and
    /// active during the interval, `author` is not its provider, and has not reported it for
    /// that interval yet.
    fn report_counts(&self, author: &PublicKey, lease: &Hash, interval: u64) -> bool {
        let Some((start, end)) = self.params.supervision.and_then(|s| s.span(interval)) else {
            return false;
        };
        let Some(l) = self.leases.get(lease) else { return false };
        l.status == LeaseStatus::Active
            && self.current_key(&l.fill.provider) != *author
            && l.fill.start_ms < end
            && l.fill.end_ms > start
            && self
                .tallies
                .get(&(interval, *lease))
                .is_none_or(|t| t.down.binary_search(author).is_err())
    }

    /// A validator's probe report (`docs/contracts.md` §10): counts its down report for each
    /// lease it may speak for, and pays the credit of each interval the count makes down.
    fn apply_report(&mut self, author: &PublicKey, report: &Report) -> Result<Vec<Entry>, Refusal> {
        self.check_report(author, report, self.now_ms)?;
        let Some(sup) = self.params.supervision else { return Ok(Vec::new()) };
        let Some((start, end)) = sup.span(report.interval) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for lease in &report.down {
            if !self.report_counts(author, lease, report.interval) {
                continue;
            }
            let Some(l) = self.leases.get(lease) else { continue };
            let provider = self.current_key(&l.fill.provider);
            let (from, to) = (start.max(l.fill.start_ms), end.min(l.fill.end_ms));
            let mut tally =
                self.tallies.get(&(report.interval, *lease)).cloned().unwrap_or(Tally {
                    interval: report.interval,
                    lease: *lease,
                    down: Vec::new(),
                    decided: 0,
                });
            if let Err(at) = tally.down.binary_search(author) {
                tally.down.insert(at, *author);
            }
            let vantage = self.validators.iter().filter(|v| v.key != provider).count();
            if tally.decided == 0 && sup.is_down(tally.down.len(), vantage) {
                let market = l.fill.market.clone();
                // Inside an announced maintenance window the notice rules apply instead.
                let excused = self.keys_of(&provider).iter().any(|k| {
                    self.windows_of(k).any(|w| {
                        w.market == market
                            && w.start_ms < to
                            && (w.until_ms == 0 || w.until_ms > from)
                    })
                });
                if excused {
                    tally.decided = 2;
                } else {
                    tally.decided = 1;
                    let segments: Vec<(u32, u64)> =
                        l.segments.iter().map(|s| (s.hours, s.price)).collect();
                    let due = cost_of_time(l.fill.start_ms, l.fill.slots, &segments, from, to);
                    if let Some(l) = self.leases.get_mut(lease).map(Arc::make_mut) {
                        l.down_ms += to - from;
                    }
                    out.push(self.pay_credit(*lease, CreditReason::Down, report.interval, due));
                }
            }
            self.tallies.insert((report.interval, *lease), tally);
        }
        Ok(out)
    }

    /// Probe tallies of intervals that take no more reports.
    pub fn tallies(&self) -> impl Iterator<Item = &Tally> + '_ {
        self.tallies.values()
    }

    /// Drops the tallies of intervals whose report window has closed (step 4): interval `i`
    /// takes reports until `(i + 1 + window) × interval_ms`.
    fn close_tallies(&mut self, now_ms: u64) {
        let Some(sup) = self.params.supervision else { return };
        let closed = |i: u64| {
            sup.span(i).is_none_or(|(_, end)| {
                end.saturating_add(u64::from(sup.window) * sup.interval_ms) <= now_ms
            })
        };
        // In interval order: stop at the first one still open.
        let old: Vec<(u64, Hash)> =
            self.tallies.keys().take_while(|(i, _)| closed(*i)).copied().collect();
        for k in old {
            self.tallies.remove(&k);
        }
    }

    /// The open maintenance windows, by provider and pool.
    pub fn maintenance(&self) -> impl Iterator<Item = &Window> + '_ {
        self.maintenance.values()
    }

    /// `provider`'s open maintenance windows, by pool.
    pub fn windows_of<'a>(&'a self, provider: &PublicKey) -> impl Iterator<Item = &'a Window> + 'a {
        let from = (*provider, String::new());
        let p = *provider;
        self.maintenance.range(from..).take_while(move |((k, _), _)| *k == p).map(|(_, w)| w)
    }

    /// Closes the windows whose end has come (step 4).
    fn close_windows(&mut self, now_ms: u64) {
        let over: Vec<(PublicKey, String)> = self
            .maintenance
            .iter()
            .filter(|(_, w)| w.until_ms != 0 && w.until_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in over {
            self.maintenance.remove(&k);
        }
    }

    /// The state root: the root of the items' sparse Merkle tree (`docs/contracts.md` §5).
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The items' sparse Merkle tree (for proofs and snapshots).
    pub fn tree(&self) -> &surplus_state::Tree {
        &self.tree
    }

    /// The chain item.
    fn chain_item(&self) -> Item {
        Item {
            kind: Kind::Chain,
            key: Vec::new(),
            value: root::chain_value(
                &self.chain_id,
                self.height,
                self.now_ms,
                self.supply,
                &self.params_bytes,
                self.book.now_ms(),
            ),
        }
    }

    /// Every item of the state, kind by kind, each kind in its natural key order.
    pub fn items(&self) -> impl Iterator<Item = Item> + '_ {
        self.items_where(|_, _| true)
    }

    /// The items whose (kind, natural key) `keep` accepts, in the order of [`State::items`]; the
    /// value of an item left out is not encoded (a snapshot takes the items a part at a time).
    pub fn items_where<'a>(
        &'a self,
        keep: impl FnMut(Kind, &[u8]) -> bool + 'a,
    ) -> impl Iterator<Item = Item> + 'a {
        let keep = std::cell::RefCell::new(keep);
        // Each kind's items as (key, a way to encode the value), the value encoded only if kept.
        let item = move |kind: Kind, key: Vec<u8>, value: &dyn Fn() -> Vec<u8>| {
            (keep.borrow_mut())(kind, &key).then(|| Item { kind, key, value: value() })
        };
        let item = std::rc::Rc::new(item);
        let it = item.clone();
        let chain = std::iter::once(self.chain_item()).filter_map(move |c| {
            let Item { kind, key, value } = c;
            it(kind, key, &|| value.clone())
        });
        let it = item.clone();
        let accounts = self.accounts.iter().filter_map(move |(k, a)| {
            it(Kind::Account, k.0.to_vec(), &|| root::account_value(k, a))
        });
        let it = item.clone();
        let leases = self
            .leases
            .values()
            .filter_map(move |l| it(Kind::Lease, l.id.to_vec(), &|| root::lease_value(l)));
        let mut orders: Vec<&surplus_market::Resting> = self.book.orders().collect();
        orders.sort_by_key(|r| r.order.id);
        let mut allocations: Vec<Item> = orders
            .iter()
            .flat_map(|r| {
                let item = item.clone();
                r.allocations.iter().filter_map(move |a| {
                    let key = root::allocation_key(&r.order.id, &a.bid, a.start_ms).to_vec();
                    item(Kind::Allocation, key, &|| root::allocation_value(&r.order.id, a))
                })
            })
            .collect();
        allocations.sort_by(|a, b| a.key.cmp(&b.key));
        let it = item.clone();
        let orders = orders
            .into_iter()
            .filter_map(move |r| it(Kind::Order, r.order.id.to_vec(), &|| root::order_value(r)));
        let it = item.clone();
        let revoked = self.revoked.iter().filter_map(move |r| {
            let key = root::revoked_key(r);
            it(Kind::Revoked, key.clone(), &|| key.clone())
        });
        let it = item.clone();
        let nonces = self.book.nonces().into_iter().filter_map(move |(a, n, e)| {
            it(Kind::Nonce, root::nonce_key(&a, n).to_vec(), &|| root::nonce_value(&a, n, e))
        });
        let it = item.clone();
        let prices = self.last_price.iter().filter_map(move |(m, p)| {
            it(Kind::Price, root::price_key(m), &|| root::price_value(m, *p))
        });
        let mut validators: Vec<Item> = self
            .validators
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                item(Kind::Validator, v.key.0.to_vec(), &|| root::validator_value(i, v))
            })
            .collect();
        validators.sort_by(|a, b| a.key.cmp(&b.key));
        let it = item.clone();
        let proposals = self
            .proposals
            .values()
            .filter_map(move |p| it(Kind::Proposal, p.id.to_vec(), &|| root::proposal_value(p)));
        let it = item.clone();
        let rotations = self.rotated.iter().filter_map(move |(old, r)| {
            it(Kind::Rotation, old.0.to_vec(), &|| root::rotation_value(old, r))
        });
        let it = item.clone();
        let consensus = self
            .consensus
            .iter()
            .filter_map(move |c| it(Kind::Consensus, Vec::new(), &|| root::consensus_value(c)));
        let it = item.clone();
        let windows = self.maintenance.values().filter_map(move |w| {
            it(Kind::Maintenance, Window::key(&w.provider, &w.pool), &|| w.encode())
        });
        let it = item;
        let tallies = self.tallies.values().filter_map(move |t| {
            it(Kind::Tally, Tally::key(t.interval, &t.lease).to_vec(), &|| t.encode())
        });
        chain
            .chain(accounts)
            .chain(leases)
            .chain(orders)
            .chain(revoked)
            .chain(nonces)
            .chain(prices)
            .chain(allocations)
            .chain(validators)
            .chain(proposals)
            .chain(rotations)
            .chain(consensus)
            .chain(windows)
            .chain(tallies)
    }

    /// The tree built from every item, ignoring the one kept up to date block by block.
    pub fn tree_from_scratch(&self) -> surplus_state::Tree {
        surplus_state::Tree::from_leaves(self.items().map(|i| (i.key_hash(), i.value_hash())))
    }

    /// Takes the leases that ended in the block (those it changed that are no longer active) out
    /// of the live state, with their granted ids (which their end revoked), and returns them,
    /// with the tree's change for every lease the block changed (one look-up of each serves
    /// both).
    fn remove_ended(&mut self) -> (Vec<Lease>, Vec<(Hash, Option<Hash>)>) {
        let mut ended = Vec::new();
        let mut leaves = Vec::new();
        for (id, l) in self.leases.changes() {
            let key = root::key_hash(Kind::Lease, id);
            match l {
                Some(l) if l.status == LeaseStatus::Active => {
                    leaves.push((key, Some(surplus_state::value_hash(&root::lease_value(l)))));
                }
                Some(_) => {
                    ended.push(*id);
                    leaves.push((key, None));
                }
                None => leaves.push((key, None)),
            }
        }
        let mut out = Vec::with_capacity(ended.len());
        for id in ended {
            if let Some(l) = self.leases.remove(&id) {
                self.by_provider.remove(&(l.fill.provider, id));
                self.by_buyer.remove(&(l.fill.buyer, id));
                for r in l.grant.iter().flat_map(|g| &g.revocation_ids) {
                    if self.granted.get(r) == Some(&id) {
                        self.granted.remove(r);
                    }
                }
                out.push(Arc::unwrap_or_clone(l));
            }
        }
        (out, leaves)
    }

    /// Brings the tree up to date with what changed since `before` (the maps before the block),
    /// the leases' changes (`lease_leaves`, from [`State::remove_ended`]) and what the book
    /// reports it changed.
    fn update_tree(&mut self, before: &Before, lease_leaves: Vec<(Hash, Option<Hash>)>) {
        use imbl::ordmap::DiffItem;
        use imbl::ordset::DiffItem as SetDiff;
        let leaf = |item: Item| (item.key_hash(), Some(item.value_hash()));
        let mut changes: Vec<(Hash, Option<Hash>)> = vec![leaf(self.chain_item())];
        for (k, a) in self.accounts.changes() {
            let value = a.map(|a| surplus_state::value_hash(&root::account_value(k, a)));
            changes.push((root::key_hash(Kind::Account, &k.0), value));
        }
        changes.extend(lease_leaves);
        for d in before.last_price.diff(&self.last_price) {
            changes.push(match d {
                DiffItem::Add(m, p) | DiffItem::Update { new: (m, p), .. } => (
                    root::key_hash(Kind::Price, &root::price_key(m)),
                    Some(surplus_state::value_hash(&root::price_value(m, *p))),
                ),
                DiffItem::Remove(m, _) => (root::key_hash(Kind::Price, &root::price_key(m)), None),
            });
        }
        for d in before.revoked.diff(&self.revoked) {
            changes.push(match d {
                SetDiff::Add(r) => {
                    let v = root::revoked_key(r);
                    (root::key_hash(Kind::Revoked, &v), Some(surplus_state::value_hash(&v)))
                }
                SetDiff::Remove(r) => (root::key_hash(Kind::Revoked, &root::revoked_key(r)), None),
            });
        }
        if self.validators != before.validators {
            for v in before.validators.iter() {
                if !self.validators.iter().any(|n| n.key == v.key) {
                    changes.push((root::key_hash(Kind::Validator, &v.key.0), None));
                }
            }
            for (i, v) in self.validators.iter().enumerate() {
                let value = surplus_state::value_hash(&root::validator_value(i, v));
                changes.push((root::key_hash(Kind::Validator, &v.key.0), Some(value)));
            }
        }
        for d in before.proposals.diff(&self.proposals) {
            changes.push(match d {
                DiffItem::Add(id, p) | DiffItem::Update { new: (id, p), .. } => (
                    root::key_hash(Kind::Proposal, id),
                    Some(surplus_state::value_hash(&root::proposal_value(p))),
                ),
                DiffItem::Remove(id, _) => (root::key_hash(Kind::Proposal, id), None),
            });
        }
        for d in before.rotated.diff(&self.rotated) {
            changes.push(match d {
                DiffItem::Add(k, r) | DiffItem::Update { new: (k, r), .. } => (
                    root::key_hash(Kind::Rotation, &k.0),
                    Some(surplus_state::value_hash(&root::rotation_value(k, r))),
                ),
                DiffItem::Remove(k, _) => (root::key_hash(Kind::Rotation, &k.0), None),
            });
        }
        if self.consensus != before.consensus {
            let value =
                self.consensus.map(|c| surplus_state::value_hash(&root::consensus_value(&c)));
            changes.push((root::key_hash(Kind::Consensus, &[]), value));
        }
        for d in before.maintenance.diff(&self.maintenance) {
            changes.push(match d {
                DiffItem::Add((k, pool), w) | DiffItem::Update { new: ((k, pool), w), .. } => (
                    root::key_hash(Kind::Maintenance, &Window::key(k, pool)),
                    Some(surplus_state::value_hash(&w.encode())),
                ),
                DiffItem::Remove((k, pool), _) => {
                    (root::key_hash(Kind::Maintenance, &Window::key(k, pool)), None)
                }
            });
        }
        for d in before.tallies.diff(&self.tallies) {
            changes.push(match d {
                DiffItem::Add((i, l), t) | DiffItem::Update { new: ((i, l), t), .. } => (
                    root::key_hash(Kind::Tally, &Tally::key(*i, l)),
                    Some(surplus_state::value_hash(&t.encode())),
                ),
                DiffItem::Remove((i, l), _) => {
                    (root::key_hash(Kind::Tally, &Tally::key(*i, l)), None)
                }
            });
        }
        let book = self.book.take_changes();
        let found = self.book.find_many(&book.orders);
        for id in &book.orders {
            let value = found.get(id).map(|r| surplus_state::value_hash(&root::order_value(r)));
            changes.push((root::key_hash(Kind::Order, id), value));
        }
        for (offer, bid, start) in &book.allocations {
            let value = self
                .book
                .allocation(offer, bid, *start)
                .map(|a| surplus_state::value_hash(&root::allocation_value(offer, a)));
            let key = root::allocation_key(offer, bid, *start);
            changes.push((root::key_hash(Kind::Allocation, &key), value));
        }
        for (author, nonce, _) in &book.nonces {
            let value = self
                .book
                .nonce_expiry(author, *nonce)
                .map(|e| surplus_state::value_hash(&root::nonce_value(author, *nonce, e)));
            changes.push((root::key_hash(Kind::Nonce, &root::nonce_key(author, *nonce)), value));
        }
        self.tree.apply(changes);
        // Between blocks nothing is recorded (a clone copies no list).
        self.accounts.clear_touched();
        self.leases.clear_touched();
    }
}

#[cfg(feature = "test-utils")]
impl State {
    /// Puts accounts (added to any balance they hold) and leases straight into the state, with
    /// the supply raised by what they hold, and rebuilds the tree: large states for benchmarks,
    /// without running the blocks that would make them. Not for production.
    pub fn populate(
        &mut self,
        accounts: impl IntoIterator<Item = (PublicKey, u64)>,
        leases: impl IntoIterator<Item = Lease>,
    ) {
        for (k, balance) in accounts {
            self.accounts.entry_or_default(k).balance += balance;
            self.supply += balance;
        }
        for l in leases {
            self.supply += l.escrow;
            let id = l.id;
            for r in l.grant.iter().flat_map(|g| &g.revocation_ids) {
                self.granted.insert(r.clone(), id);
            }
            self.by_provider.insert((l.fill.provider, id));
            self.by_buyer.insert((l.fill.buyer, id));
            self.leases.insert(id, Arc::new(l));
            self.reschedule(id, None);
        }
        self.book.take_changes();
        self.tree = self.tree_from_scratch();
        self.accounts.clear_touched();
        self.leases.clear_touched();
    }
}

/// The maps of a state before a block (clones that share everything with the state).
struct Before {
    last_price: OrdMap<Market, u64>,
    revoked: OrdSet<RevocationId>,
    validators: Arc<Vec<Validator>>,
    proposals: OrdMap<Hash, Arc<Proposal>>,
    rotated: OrdMap<PublicKey, Rotation>,
    consensus: Option<ConsensusParams>,
    maintenance: OrdMap<(PublicKey, String), Window>,
    tallies: OrdMap<(u64, Hash), Tally>,
}

/// How a lease ends before its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EarlyEnd {
    /// Its buyer terminated it.
    Buyer,
    /// Its provider terminated it.
    Provider,
    /// The time of its provider's notice came.
    Notice {
        /// Given at least the notice period ahead: no penalty.
        in_time: bool,
    },
}

enum UserEffect {
    /// Applied, with these system entries as consequences.
    Done(Vec<Entry>),
    /// An order or cancel waiting for the auction.
    Market(Hash),
}

/// Signatures a thread checks at a time in [`SignatureChecks::work`].
const SIGNATURE_CHUNK: usize = 8;

/// The strict check of a block's user entries' signatures, shared out in chunks among whichever
/// threads call [`SignatureChecks::work`]: one that finishes its other work early takes over
/// more of the checks.
struct SignatureChecks<'a> {
    chain_id: &'a str,
    user: &'a [Entry],
    /// Entries verified before (on admission): not checked again.
    known: Vec<bool>,
    next: AtomicUsize,
    ok: Vec<AtomicBool>,
}

impl<'a> SignatureChecks<'a> {
    fn new(chain_id: &'a str, user: &'a [Entry], known: Vec<bool>) -> Self {
        let ok = user.iter().map(|_| AtomicBool::new(false)).collect();
        Self { chain_id, user, known, next: AtomicUsize::new(0), ok }
    }

    /// Checks chunks of signatures until none is left.
    fn work(&self) {
        loop {
            let start = self.next.fetch_add(SIGNATURE_CHUNK, Ordering::Relaxed);
            if start >= self.user.len() {
                return;
            }
            for i in start..(start + SIGNATURE_CHUNK).min(self.user.len()) {
                let e = &self.user[i];
                let good = matches!(e.auth, Auth::Signed { .. })
                    && (self.known[i] || e.verify_signature(self.chain_id).is_ok());
                self.ok[i].store(good, Ordering::Relaxed);
            }
        }
    }

    /// Which entries carry a valid signature, once every chunk is checked (the threads that
    /// checked them joined).
    fn results(self) -> Vec<bool> {
        self.ok.into_iter().map(AtomicBool::into_inner).collect()
    }
}
