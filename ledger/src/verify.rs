//! The audit: walk a ledger from genesis and report the first thing wrong with it.

use serde::{Deserialize, Serialize};

use crate::block::{hex_hash, Block};
use crate::chain::{verify_entries, Advance, ChainState, Checks, Failure};
use crate::Hash;

/// Where the audit reads blocks from: a store, an export file, or anything else.
pub trait BlockSource {
    /// The next block in height order, `None` at the end, or a failure naming where the source
    /// is damaged.
    fn next_block(&mut self) -> Option<Result<Block, Failure>>;
    /// How many blocks the source holds, if it knows (for progress).
    fn len_hint(&self) -> Option<u64> {
        None
    }
    /// Called after each block verified, with the Merkle nodes it completed, so that a source
    /// that stores derived data can check it too.
    fn check_derived(&mut self, _block: &Block, _advance: &Advance) -> Result<(), Failure> {
        Ok(())
    }
    /// Called at the end with the verified head, so that the source can compare its own record
    /// of the head (a store's head record, an export's footer).
    fn finish(&mut self, _head: &ChainState) -> Result<(), Failure> {
        Ok(())
    }
}

/// What a later crate checks on each block: re-execution of the auction, balances, state root.
pub trait Hook {
    /// Checks one block (genesis included) that passed the ledger's own checks.
    fn block(&mut self, block: &Block, header_hash: &Hash) -> Result<(), HookFailure>;
}

/// A hook's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookFailure {
    /// Index of the entry within the block, if one is at fault.
    pub entry: Option<usize>,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// The hook that checks nothing more.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHook;

impl Hook for NoHook {
    fn block(&mut self, _block: &Block, _header_hash: &Hash) -> Result<(), HookFailure> {
        Ok(())
    }
}

/// How far the audit has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Blocks verified so far.
    pub blocks: u64,
    /// Entries verified so far.
    pub entries: u64,
    /// Blocks in the ledger, if the source knows.
    pub total_blocks: Option<u64>,
}

/// Options of an audit.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Expected genesis header hash; the ledger is refused if its genesis differs.
    pub genesis_hash: Option<Hash>,
    /// Which signature checks to run (all by default).
    pub checks: Checks,
}

/// A ledger that verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The chain id.
    pub chain_id: String,
    /// Blocks verified (genesis included).
    pub blocks: u64,
    /// Entries verified.
    pub entries: u64,
    /// Signatures verified: entries and certificate votes.
    pub signatures: u64,
    /// Height of the head.
    pub head_height: u64,
    /// Header hash of the head.
    #[serde(with = "hex_hash")]
    pub head_hash: Hash,
    /// Genesis header hash (the chain's identity).
    #[serde(with = "hex_hash")]
    pub genesis_hash: Hash,
    /// Merkle root at the head.
    #[serde(with = "hex_hash")]
    pub merkle_root: Hash,
}

/// Verifies a whole ledger from genesis: links, header hashes, Merkle roots, every signature
/// (batched), every certificate, then `hook` on each block. Returns the first failure.
pub fn verify(
    source: &mut dyn BlockSource,
    options: &Options,
    hook: &mut dyn Hook,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, Failure> {
    let total_blocks = source.len_hint();
    let genesis = match source.next_block() {
        None => return Err(Failure::block(0, "ledger", "the ledger holds no block")),
        Some(b) => b?,
    };
    let (mut state, adv) = ChainState::genesis(&genesis)?;
    if let Some(want) = options.genesis_hash {
        if want != adv.hash {
            return Err(Failure::block(
                0,
                "header",
                format!(
                    "genesis hash is {}, expected {}",
                    hex::encode(adv.hash),
                    hex::encode(want)
                ),
            ));
        }
    }
    let genesis_hash = adv.hash;
    let mut signatures = adv.signatures;
    let mut blocks = 1u64;
    let mut entries = genesis.entries.len() as u64;
    source.check_derived(&genesis, &adv)?;
    run_hook(hook, &genesis, &adv.hash)?;
    state.commit(&genesis, adv);
    progress(Progress { blocks, entries, total_blocks });

    // Pipelined: while the hook re-executes block h, another thread checks the entry signatures
    // of block h + 1 (read ahead), the one check that needs nothing from block h. Failures are
    // reported exactly as if the blocks were checked one after the other: everything about
    // block h (its hook included) before anything about block h + 1, and within a block the
    // entry signatures after its other rules, as `ChainState::check_next` orders them.
    let structural = Checks { entry_signatures: false, ..options.checks };
    let mut next = source.next_block();
    let mut next_signatures: Option<Result<u64, Failure>> = None;
    while let Some(block) = next.take() {
        let block = block?;
        let mut adv = state.check_next(&block, structural)?;
        if options.checks.entry_signatures {
            let first = state.frontier.size();
            adv.signatures += match next_signatures.take() {
                Some(result) => result?,
                None => verify_entries(&state.chain_id, &block, first, options.checks)?,
            };
        }
        source.check_derived(&block, &adv)?;
        next = source.next_block();
        let ahead = match &next {
            Some(Ok(b)) if options.checks.entry_signatures => Some(b),
            _ => None,
        };
        let first_ahead = block.header.tree_size;
        let chain_id = state.chain_id.clone();
        let (hooked, ahead_signatures) = std::thread::scope(|scope| {
            let job = ahead.map(|b| {
                scope.spawn(move || verify_entries(&chain_id, b, first_ahead, options.checks))
            });
            let hooked = run_hook(hook, &block, &adv.hash);
            let ahead_signatures =
                job.map(|j| j.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            (hooked, ahead_signatures)
        });
        hooked?;
        next_signatures = ahead_signatures;
        signatures += adv.signatures;
        blocks += 1;
        entries += block.entries.len() as u64;
        state.commit(&block, adv);
        progress(Progress { blocks, entries, total_blocks });
    }
    source.finish(&state)?;
    Ok(Report {
        chain_id: state.chain_id.clone(),
        blocks,
        entries,
        signatures,
        head_height: state.head.height,
        head_hash: state.head_hash,
        genesis_hash,
        merkle_root: state.head.merkle_root,
    })
}

fn run_hook(hook: &mut dyn Hook, block: &Block, hash: &Hash) -> Result<(), Failure> {
    hook.block(block, hash).map_err(|f| {
        let first = block.header.tree_size - block.entries.len() as u64;
        Failure {
            height: block.header.height,
            entry: f.entry.map(|i| first + i as u64),
            field: f.field,
            reason: f.reason,
        }
    })
}

/// A source over blocks already in memory.
#[derive(Debug)]
pub struct VecSource {
    blocks: std::vec::IntoIter<Block>,
    len: u64,
}

impl VecSource {
    /// Reads `blocks` in order.
    pub fn new(blocks: Vec<Block>) -> Self {
        let len = blocks.len() as u64;
        Self { blocks: blocks.into_iter(), len }
    }
}

impl BlockSource for VecSource {
    fn next_block(&mut self) -> Option<Result<Block, Failure>> {
        self.blocks.next().map(Ok)
    }
    fn len_hint(&self) -> Option<u64> {
        Some(self.len)
    }
}
