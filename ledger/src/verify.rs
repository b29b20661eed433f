//! The audit: walk a ledger from genesis and report the first thing wrong with it.
//!
//! A source that does not hold every block in full (a pruned store, or one started from a
//! snapshot's base) gives, after genesis, the headers it holds without entries
//! ([`BlockSource::next_header`]) and the Merkle frontier after the last of them
//! ([`BlockSource::frontier_at`]); the audit checks that header chain and its certificates, that
//! the frontier gives the certified root, then every later block in full, and says in
//! [`Report::from_height`] where the full check began.

use serde::{Deserialize, Serialize};

use crate::block::{hex_hash, Block, Certificate, Header, HEADER_VERSION};
use crate::chain::{
    check_proposer, follow_set_changes, verify_entries, Advance, ChainState, Checks, Failure,
    SetChange,
};
use crate::merkle::{Blake3, Frontier};
use crate::Hash;

/// Where the audit reads blocks from: a store, an export file, or anything else.
pub trait BlockSource {
    /// The next block in height order, `None` at the end, or a failure naming where the source
    /// is damaged.
    fn next_block(&mut self) -> Option<Result<Block, Failure>>;
    /// Headers of the blocks the source holds without their entries, in height order, asked
    /// for after genesis and before the next full block; `None` when there are no more (the
    /// default: a source that holds every block). The first may follow a gap after genesis (a
    /// store started from a snapshot's base holds no header below it); later ones may not.
    fn next_header(&mut self) -> Option<Result<(Header, Certificate), Failure>> {
        None
    }
    /// The Merkle frontier after `header`, the last header-only block, rebuilt from what the
    /// source stores; asked for once, only if [`BlockSource::next_header`] gave a header.
    fn frontier_at(&mut self, header: &Header) -> Result<Frontier, Failure> {
        Err(Failure::block(header.height, "merkle", "this source holds no Merkle frontier"))
    }
    /// The `validator-set` entry of a block held as a header only ([`BlockSource::next_header`]),
    /// if it has one, with its inclusion proof. A source that gives headers without entries
    /// must know every set change among them: the certificates after one are checked against
    /// the set it puts in force.
    fn set_change(&mut self, _header: &Header) -> Result<Option<SetChange>, Failure> {
        Ok(None)
    }
    /// The set changes in blocks below `height`, in height order, when the first header held
    /// after genesis is at `height` > 1 (a store started from a snapshot's base): the audit
    /// follows them from genesis to know the set that decides that header.
    fn set_changes_below(&mut self, _height: u64) -> Result<Vec<SetChange>, Failure> {
        Ok(Vec::new())
    }
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

    /// Called once, before the first full block after blocks held as headers only (a pruned
    /// ledger, or one started from a snapshot's base): the blocks that follow extend `base`,
    /// whose entries and those of the blocks before it (genesis aside) the hook never sees.
    ///
    /// A hook that carries state from block to block (re-execution) cannot check what follows
    /// without the state at `base`, so the default refuses; a hook that checks each block on
    /// its own (or that loads the state at `base`) overrides it.
    fn resume(&mut self, base: &Header, _header_hash: &Hash) -> Result<(), HookFailure> {
        Err(HookFailure {
            entry: None,
            field: "ledger".into(),
            reason: format!(
                "this check re-runs every block from genesis, and the ledger holds blocks in \
                 full only after height {} (the blocks before are pruned or were never \
                 synced)",
                base.height
            ),
        })
    }
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
    fn resume(&mut self, _base: &Header, _header_hash: &Hash) -> Result<(), HookFailure> {
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
    /// Blocks verified (genesis included), those checked by header only included.
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
    /// 0 when every block was verified in full. Otherwise the lowest height after genesis
    /// whose block was: the blocks below it (genesis aside) were checked by header and
    /// certificate only, as far as [`Report::headers_from`] says the headers are held, and the
    /// Merkle frontier stored at the first full block's start gave the certified root.
    #[serde(default)]
    pub from_height: u64,
    /// 0 when the header chain was checked link by link from genesis. Otherwise the height of
    /// the first header after genesis that the ledger holds (a store started from a snapshot's
    /// base): the headers between are not held, so that header is vouched for by its
    /// certificate from the validator set in force at its height, which the audit derives by
    /// following the set changes below it from genesis ([`BlockSource::set_changes_below`]).
    #[serde(default)]
    pub headers_from: u64,
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

    // Blocks held as headers only: the chain of headers and certificates, then the frontier.
    let mut headers_from = 0;
    let mut from_height = 0;
    while let Some(head) = source.next_header() {
        let (header, certificate) = head?;
        let gap = header.height > state.head.height + 1;
        if gap && state.head.height > 0 {
            return Err(Failure::block(
                state.head.height + 1,
                "header",
                format!(
                    "the header of block {} is missing (the next one held is {})",
                    state.head.height + 1,
                    header.height
                ),
            ));
        }
        if gap {
            headers_from = header.height;
            let below = source.set_changes_below(header.height)?;
            let sets = follow_set_changes(&state.chain_id, &state.validators, &below)?;
            if let Some((_, set)) = sets.range(..=header.height).next_back() {
                state.validators = set.clone();
            }
        }
        signatures += check_header(&state, &header, &certificate, gap, options.checks)?;
        if let Some(change) = source.set_change(&header)? {
            if change.header != header || change.certificate != certificate {
                return Err(Failure::block(
                    header.height,
                    "validator_set",
                    "the set-change record holds another header or certificate than the block",
                ));
            }
            let after = (!gap).then_some(state.head.tree_size);
            state.validators = change.check(after)?;
        }
        state.head_hash = header.hash();
        state.head = header;
        blocks += 1;
        progress(Progress { blocks, entries, total_blocks });
    }
    if state.head.height > 0 {
        let base = state.head.clone();
        let frontier = source.frontier_at(&base)?;
        let root = frontier.root::<Blake3>();
        if frontier.size() != base.tree_size || root != base.merkle_root {
            return Err(Failure::block(
                base.height,
                "merkle",
                format!(
                    "the stored Merkle frontier ({} entries, root {}) does not give the \
                     header's ({} entries, root {})",
                    frontier.size(),
                    hex::encode(root),
                    base.tree_size,
                    hex::encode(base.merkle_root)
                ),
            ));
        }
        state.frontier = frontier;
        from_height = base.height + 1;
        hook.resume(&base, &state.head_hash).map_err(|f| Failure {
            height: base.height,
            entry: None,
            field: f.field,
            reason: f.reason,
        })?;
    }

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
        from_height,
        headers_from,
    })
}

/// Checks a block held without its entries against the state before it: what
/// `ChainState::check_next` checks of a header, that is all but the entries and the Merkle
/// root (which the frontier after the last such block checks). After a `gap` (the headers
/// before it are not held) the link and the timestamp cannot be checked and the certificate
/// alone vouches for the header. Returns the signatures checked.
fn check_header(
    state: &ChainState,
    h: &Header,
    certificate: &Certificate,
    gap: bool,
    checks: Checks,
) -> Result<u64, Failure> {
    let height = h.height;
    if !gap && height != state.head.height + 1 {
        return Err(Failure::block(
            height,
            "header.height",
            format!("expected height {} after {}", state.head.height + 1, state.head.height),
        ));
    }
    if h.version != HEADER_VERSION {
        return Err(Failure::block(
            height,
            "header.version",
            format!("unsupported version {}", h.version),
        ));
    }
    if h.chain_id != state.chain_id {
        return Err(Failure::block(
            height,
            "header.chain_id",
            format!("block of chain {:?}, this ledger is {:?}", h.chain_id, state.chain_id),
        ));
    }
    let mut signatures = 0;
    if checks.certificates {
        certificate
            .verify(&h.chain_id, height, &h.hash(), &state.validators)
            .map_err(|e| Failure::block(height, "certificate", e.to_string()))?;
        signatures = certificate.signatures.len() as u64;
        check_proposer(&state.validators, h, certificate.round)?;
    }
    if !gap {
        if h.prev_hash != state.head_hash {
            return Err(Failure::block(
                height,
                "header.prev_hash",
                format!(
                    "links to {}, the block before hashes to {}",
                    hex::encode(h.prev_hash),
                    hex::encode(state.head_hash)
                ),
            ));
        }
        if h.timestamp_ms < state.head.timestamp_ms {
            return Err(Failure::block(
                height,
                "header.timestamp_ms",
                format!(
                    "{} is before the previous block's {}",
                    h.timestamp_ms, state.head.timestamp_ms
                ),
            ));
        }
    }
    if h.tree_size < state.head.tree_size {
        return Err(Failure::block(
            height,
            "header.tree_size",
            format!("{} is below the previous block's {}", h.tree_size, state.head.tree_size),
        ));
    }
    Ok(signatures)
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
