//! The contracts' part of the audit: re-execute every block from the ledger and compare.

use surplus_ledger::{
    Auth, Block, Entry, Frontier, Hash, Header, Hook, HookFailure, PublicKey, HEADER_VERSION,
};

use crate::genesis::Genesis;
use crate::state::{Mode, State};
use crate::{Error, RestoreError};

/// A [`Hook`] for `ledger::verify` that re-derives every balance, escrow, lease and revocation
/// from the entries, re-runs each block's auction, and compares the block's system entries and
/// state root with its own.
///
/// [`Replay::new`] checks every user entry's signature again as it re-executes;
/// [`Replay::after_signature_checks`] is for a `ledger::verify` run whose checks include the
/// entries' signatures (`Checks::entry_signatures`, on by default), which has already checked
/// each one under the same rule before it calls the hook.
#[derive(Debug)]
pub struct Replay {
    state: Option<State>,
    check_signatures: bool,
}

impl Default for Replay {
    fn default() -> Self {
        Self::new()
    }
}

impl Replay {
    /// A replay from genesis that checks every signature itself.
    pub fn new() -> Self {
        Self { state: None, check_signatures: true }
    }
    /// A replay from genesis for an audit that has checked the entries' signatures before
    /// calling it; it does not check them a second time, and applies each block in place
    /// ([`State::apply_verified_block`]), so after a failure its state is partly applied.
    pub fn after_signature_checks() -> Self {
        Self { state: None, check_signatures: false }
    }
    /// The state after the last block checked.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
    /// Goes on from `state`, the state after `header` (from a snapshot checked against that
    /// header's certified state root), for a ledger that holds blocks in full only after it.
    pub fn resume_at(&mut self, state: State, header: &Header) -> Result<(), HookFailure> {
        if state.height() != header.height {
            return Err(failure(
                None,
                "snapshot",
                format!("the state is at height {}, not {}", state.height(), header.height),
            ));
        }
        check_root(state.root(), header)?;
        self.state = Some(state);
        Ok(())
    }
}

fn failure(entry: Option<usize>, field: &str, reason: impl Into<String>) -> HookFailure {
    HookFailure { entry, field: field.into(), reason: reason.into() }
}

impl Hook for Replay {
    fn block(&mut self, block: &Block, _hash: &Hash) -> Result<(), HookFailure> {
        let h = &block.header;
        if h.height == 0 {
            let genesis =
                Genesis::from_block(block).map_err(|e| failure(None, "genesis", e.to_string()))?;
            let state = State::genesis(&h.chain_id, &genesis, h.timestamp_ms)
                .map_err(|e| failure(None, "genesis", e.to_string()))?;
            check_root(state.root(), h)?;
            self.state = Some(state);
            return Ok(());
        }
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| failure(None, "genesis", "no genesis was checked"))?;
        let user: Vec<(usize, Entry)> = block
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.auth, Auth::Signed { .. }))
            .map(|(i, e)| (i, e.clone()))
            .collect();
        let entries: Vec<Entry> = user.iter().map(|(_, e)| e.clone()).collect();
        let applied = if self.check_signatures {
            state.apply_block(h.height, h.timestamp_ms, &entries, Mode::Validate)
        } else {
            state.apply_verified_block(h.height, h.timestamp_ms, &entries, Mode::Validate)
        };
        let applied = applied.map_err(|e| match e {
            Error::Refused { index, refusal } => {
                failure(user.get(index).map(|u| u.0), "entry", refusal.to_string())
            }
            other => failure(None, "block", other.to_string()),
        })?;
        if let Some(i) = (0..applied.entries.len().max(block.entries.len()))
            .find(|&i| applied.entries.get(i) != block.entries.get(i))
        {
            let want = applied
                .entries
                .get(i)
                .map_or("nothing".to_owned(), |e| format!("a {} entry", e.kind.name()));
            let got = block
                .entries
                .get(i)
                .map_or("nothing".to_owned(), |e| format!("a {} entry", e.kind.name()));
            let reason = match (applied.entries.get(i), block.entries.get(i)) {
                (Some(w), Some(g)) if w.kind == g.kind => format!(
                    "the block's {} entry at position {i} differs from the one re-executing the \
                     block gives (its {})",
                    g.kind.name(),
                    if w.auth != g.auth { "authorization" } else { "payload" }
                ),
                _ => format!(
                    "re-executing the block gives {want} at position {i}, the block holds {got}"
                ),
            };
            return Err(failure(
                Some(i.min(block.entries.len().saturating_sub(1))),
                "entries",
                reason,
            ));
        }
        // `apply_block` already computed the root after the block: no second full hash.
        check_root(applied.state_root, h)
    }
}

fn check_root(root: Hash, h: &Header) -> Result<(), HookFailure> {
    if root != h.state_root {
        return Err(failure(
            None,
            "header.state_root",
            format!(
                "re-execution gives {}, the header says {}",
                hex::encode(root),
                hex::encode(h.state_root)
            ),
        ));
    }
    Ok(())
}

/// Builds blocks the way a proposer does: applies user entries to the state and assembles the
/// header (without the certificate, which consensus adds).
#[derive(Debug, Clone)]
pub struct BlockMaker {
    /// The state after the last block made.
    pub state: State,
    prev: Header,
    frontier: Frontier,
}

impl BlockMaker {
    /// The genesis block of `genesis` and a maker for the blocks after it.
    pub fn genesis(
        chain_id: &str,
        genesis: &Genesis,
        timestamp_ms: u64,
    ) -> Result<(Block, Self), Error> {
        let entries = genesis.entries()?;
        let state = State::genesis(chain_id, genesis, timestamp_ms)?;
        let mut frontier = Frontier::new();
        let mut nodes = Vec::new();
        for e in &entries {
            frontier.push::<surplus_ledger::Blake3>(e.leaf_hash(), &mut nodes);
        }
        let proposer = genesis.validators.first().copied().unwrap_or(PublicKey([0; 32]));
        let header = Header {
            version: HEADER_VERSION,
            chain_id: chain_id.to_owned(),
            height: 0,
            prev_hash: [0; 32],
            timestamp_ms,
            tree_size: frontier.size(),
            merkle_root: frontier.root::<surplus_ledger::Blake3>(),
            state_root: state.root(),
            proposer,
        };
        let block = Block { header: header.clone(), entries, certificate: Default::default() };
        Ok((block, Self { state, prev: header, frontier }))
    }

    /// A maker that continues after the block of header `prev`, from the state after that
    /// block and the Merkle frontier of the ledger up to it (what a snapshot holds; see
    /// [`State::from_items`]). Refuses a state or frontier that is not the header's: its chain
    /// id, height, time or root differ, or the frontier's size or root differ from the
    /// header's `tree_size` and `merkle_root`.
    pub fn resume(state: State, prev: Header, frontier: Frontier) -> Result<Self, RestoreError> {
        let mismatch = |field: &'static str, state: String, header: String| {
            Err(RestoreError::Header {
                field,
                reason: format!("it says {header}, the state or frontier has {state}"),
            })
        };
        if state.chain_id != prev.chain_id {
            return mismatch(
                "chain_id",
                format!("{:?}", state.chain_id),
                format!("{:?}", prev.chain_id),
            );
        }
        if state.height() != prev.height {
            return mismatch("height", state.height().to_string(), prev.height.to_string());
        }
        if state.now_ms() != prev.timestamp_ms {
            return mismatch(
                "timestamp_ms",
                state.now_ms().to_string(),
                prev.timestamp_ms.to_string(),
            );
        }
        if state.root() != prev.state_root {
            return mismatch("state_root", hex::encode(state.root()), hex::encode(prev.state_root));
        }
        if frontier.size() != prev.tree_size {
            return mismatch("tree_size", frontier.size().to_string(), prev.tree_size.to_string());
        }
        let merkle_root = frontier.root::<surplus_ledger::Blake3>();
        if merkle_root != prev.merkle_root {
            return mismatch(
                "merkle_root",
                hex::encode(merkle_root),
                hex::encode(prev.merkle_root),
            );
        }
        Ok(Self { state, prev, frontier })
    }

    /// The header of the last block made (or resumed from).
    pub fn prev(&self) -> &Header {
        &self.prev
    }

    /// The Merkle frontier of the ledger up to the last block made.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The next block from `user` entries (refused ones dropped), at `timestamp_ms`.
    pub fn next(
        &mut self,
        user: &[Entry],
        timestamp_ms: u64,
        proposer: PublicKey,
    ) -> Result<(Block, crate::Applied), Error> {
        self.next_with(user, timestamp_ms, proposer, None)
    }

    /// [`BlockMaker::next`], without checking again the signatures of the entries `verified`
    /// holds ([`State::apply_block_with`]).
    pub fn next_with(
        &mut self,
        user: &[Entry],
        timestamp_ms: u64,
        proposer: PublicKey,
        verified: Option<&crate::VerifiedIds>,
    ) -> Result<(Block, crate::Applied), Error> {
        let height = self.prev.height + 1;
        let applied =
            self.state.apply_block_with(height, timestamp_ms, user, Mode::Propose, verified)?;
        let mut nodes = Vec::new();
        for e in &applied.entries {
            self.frontier.push::<surplus_ledger::Blake3>(e.leaf_hash(), &mut nodes);
        }
        let header = Header {
            version: HEADER_VERSION,
            chain_id: self.prev.chain_id.clone(),
            height,
            prev_hash: self.prev.hash(),
            timestamp_ms,
            tree_size: self.frontier.size(),
            merkle_root: self.frontier.root::<surplus_ledger::Blake3>(),
            state_root: applied.state_root,
            proposer,
        };
        self.prev = header.clone();
        Ok((
            Block { header, entries: applied.entries.clone(), certificate: Default::default() },
            applied,
        ))
    }
}
