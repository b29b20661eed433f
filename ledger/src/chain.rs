//! The rules that link one block to the next, shared by the store (which refuses a block that
//! breaks them) and the audit (which reports the first block that does).

use serde::{Deserialize, Serialize};

use crate::block::{
    decode_head, validate_chain_id, Auth, Block, Certificate, EntryKind, Header, ValidatorSet,
    HEADER_VERSION, MAX_ENTRY_PAYLOAD,
};
use crate::crypto::BatchVerifier;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::merkle::{verify_inclusion, Blake3, Frontier, InclusionProof};
use crate::{Entry, Hash};

/// The first thing found wrong with a block: where, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("height {height}{}: {field}: {reason}", entry.map(|e| format!(", entry {e}")).unwrap_or_default())]
pub struct Failure {
    /// Height of the block at fault.
    pub height: u64,
    /// Global index of the entry at fault, if one is.
    pub entry: Option<u64>,
    /// The field at fault, e.g. `header.prev_hash` or `entry.signature`.
    pub field: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl Failure {
    /// A failure of a block-level field.
    pub fn block(height: u64, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { height, entry: None, field: field.into(), reason: reason.into() }
    }
    /// A failure of one entry.
    pub fn entry(
        height: u64,
        entry: u64,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { height, entry: Some(entry), field: field.into(), reason: reason.into() }
    }
}

/// Which expensive checks to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    /// Verify each block's commit certificate against the validator set.
    pub certificates: bool,
    /// Verify every signed entry's signature.
    pub entry_signatures: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Self { certificates: true, entry_signatures: true }
    }
}

/// A block that passed the checks, ready to be committed to a [`ChainState`].
#[derive(Debug)]
pub struct Advance {
    /// Its header hash.
    pub hash: Hash,
    /// The Merkle frontier after it.
    pub frontier: Frontier,
    /// Complete-subtree nodes its entries completed: (level, index, hash), leaves included.
    pub nodes: Vec<(u8, u64, Hash)>,
    /// Signatures checked (entries and certificate).
    pub signatures: u64,
    /// The validator set the block's `validator-set` entry puts in force from the next block,
    /// with that entry's position in the block.
    pub validators: Option<(usize, ValidatorSet)>,
}

/// What is known of a chain after some prefix of it: enough to check the next block.
#[derive(Clone, Debug)]
pub struct ChainState {
    /// The chain id from genesis.
    pub chain_id: String,
    /// The validator set in force for the next block: genesis's, or the one the latest
    /// `validator-set` entry put in force.
    pub validators: ValidatorSet,
    /// The head's header.
    pub head: Header,
    /// The head's header hash.
    pub head_hash: Hash,
    /// The Merkle frontier at the head.
    pub frontier: Frontier,
}

/// Validator set declared by a genesis block, with the failure to report if it has none.
pub fn genesis_validators(block: &Block) -> Result<ValidatorSet, Failure> {
    let mut found = None;
    for (i, e) in block.entries.iter().enumerate() {
        if e.kind != EntryKind::VALIDATORS {
            continue;
        }
        let at = i as u64;
        if found.is_some() {
            return Err(Failure::entry(
                0,
                at,
                "entry.kind",
                "genesis has a second validators entry",
            ));
        }
        if e.auth != Auth::System {
            return Err(Failure::entry(
                0,
                at,
                "entry.auth",
                "the validators entry must be a system entry",
            ));
        }
        found = Some(
            ValidatorSet::decode(&e.payload)
                .map_err(|err| Failure::entry(0, at, "entry.payload", err.to_string()))?,
        );
    }
    found.ok_or_else(|| Failure::block(0, "entries", "genesis has no validators entry"))
}

impl ChainState {
    /// Checks a genesis block and returns the state after it, with what it advanced.
    pub fn genesis(block: &Block) -> Result<(Self, Advance), Failure> {
        let h = &block.header;
        if h.height != 0 {
            return Err(Failure::block(
                0,
                "header.height",
                format!("the first block must have height 0, not {}", h.height),
            ));
        }
        check_version(h)?;
        validate_chain_id(&h.chain_id).map_err(|r| Failure::block(0, "header.chain_id", r))?;
        if h.prev_hash != [0; 32] {
            return Err(Failure::block(
                0,
                "header.prev_hash",
                "genesis must link to the zero hash",
            ));
        }
        if !block.certificate.signatures.is_empty() || block.certificate.round != 0 {
            return Err(Failure::block(
                0,
                "certificate",
                "genesis must carry an empty certificate",
            ));
        }
        let validators = genesis_validators(block)?;
        if let Some(i) = block.entries.iter().position(|e| e.kind == EntryKind::VALIDATOR_SET) {
            return Err(Failure::entry(
                0,
                i as u64,
                "entry.kind",
                "genesis declares its validators with a validators entry, never a validator-set \
                 entry",
            ));
        }
        let mut adv = advance_merkle(&Frontier::new(), block)?;
        adv.signatures += verify_entries(&h.chain_id, block, 0, Checks::default())?;
        adv.hash = h.hash();
        let state = Self {
            chain_id: h.chain_id.clone(),
            validators,
            head: h.clone(),
            head_hash: adv.hash,
            frontier: adv.frontier.clone(),
        };
        Ok((state, adv))
    }

    /// Checks that `block` extends this state. Nothing changes until [`ChainState::commit`].
    ///
    /// When the block's certificate is valid but its link (previous hash or chain id) does not
    /// match the head, the certified block is trusted and the head is blamed: only genesis,
    /// which has no certificate of its own, can be damaged that way.
    pub fn check_next(&self, block: &Block, checks: Checks) -> Result<Advance, Failure> {
        let h = &block.header;
        let height = self.head.height + 1;
        if h.height != height {
            return Err(Failure::block(
                height,
                "header.height",
                format!(
                    "expected height {height} after head {}, got {}",
                    self.head.height, h.height
                ),
            ));
        }
        check_version(h)?;
        let hash = h.hash();
        let mut signatures = 0;
        let certified = if checks.certificates {
            // Checked under the block's own chain id, so that a certified block can vouch for
            // its link even when the head it should extend is the damaged one.
            let r = block.certificate.verify(&h.chain_id, height, &hash, &self.validators);
            signatures += block.certificate.signatures.len() as u64;
            Some(r)
        } else {
            None
        };
        let link_broken = h.chain_id != self.chain_id || h.prev_hash != self.head_hash;
        if link_broken && matches!(certified, Some(Ok(()))) && self.head.height == 0 {
            return Err(Failure::block(
                0,
                "header",
                format!(
                    "genesis hashes to {} (chain {:?}) but the certified block 1 links to {} (chain {:?})",
                    hex::encode(self.head_hash),
                    self.chain_id,
                    hex::encode(h.prev_hash),
                    h.chain_id
                ),
            ));
        }
        if h.chain_id != self.chain_id {
            return Err(Failure::block(
                height,
                "header.chain_id",
                format!("block of chain {:?}, this ledger is {:?}", h.chain_id, self.chain_id),
            ));
        }
        if let Some(Err(e)) = certified {
            return Err(Failure::block(height, "certificate", e.to_string()));
        }
        if h.prev_hash != self.head_hash {
            return Err(Failure::block(
                height,
                "header.prev_hash",
                format!(
                    "links to {}, the block before hashes to {}",
                    hex::encode(h.prev_hash),
                    hex::encode(self.head_hash)
                ),
            ));
        }
        if h.timestamp_ms < self.head.timestamp_ms {
            return Err(Failure::block(
                height,
                "header.timestamp_ms",
                format!(
                    "{} is before the previous block's {}",
                    h.timestamp_ms, self.head.timestamp_ms
                ),
            ));
        }
        if checks.certificates {
            check_proposer(&self.validators, h, block.certificate.round)?;
        }
        let mut adv = advance_merkle(&self.frontier, block)?;
        adv.validators = set_change(block, self.frontier.size())?;
        adv.signatures =
            signatures + verify_entries(&self.chain_id, block, self.frontier.size(), checks)?;
        adv.hash = hash;
        Ok(adv)
    }

    /// Makes `block`, already checked into `adv`, the head.
    pub fn commit(&mut self, block: &Block, adv: Advance) {
        self.head = block.header.clone();
        self.head_hash = adv.hash;
        self.frontier = adv.frontier;
        if let Some((_, set)) = adv.validators {
            self.validators = set;
        }
    }
}

/// Largest encoded header and certificate: a header (at most 360 bytes) and 1,024 signatures.
const MAX_HEAD_BYTES: usize = 512 + 66 * crate::MAX_VALIDATORS;

/// The validator set a block's `validator-set` entry puts in force from the next block, with
/// the entry's position: at most one such entry, a system entry with a valid payload. `first`
/// is the ledger index of the block's first entry, for the failure.
pub fn set_change(block: &Block, first: u64) -> Result<Option<(usize, ValidatorSet)>, Failure> {
    let height = block.header.height;
    let mut found = None;
    for (i, e) in block.entries.iter().enumerate() {
        if e.kind != EntryKind::VALIDATOR_SET {
            continue;
        }
        let at = first + i as u64;
        if found.is_some() {
            return Err(Failure::entry(
                height,
                at,
                "entry.kind",
                "a second validator-set entry in one block",
            ));
        }
        if e.auth != Auth::System {
            return Err(Failure::entry(
                height,
                at,
                "entry.auth",
                "a validator-set entry must be a system entry",
            ));
        }
        let set = ValidatorSet::decode_weighted(&e.payload)
            .map_err(|err| Failure::entry(height, at, "entry.payload", err.to_string()))?;
        found = Some((i, set));
    }
    Ok(found)
}

/// The header's proposer is a validator that the engine lets propose this height no later than
/// the round that decided the block: the proposer of height h in round r is validator
/// (h − 1 + r) mod n, and a block keeps the proposer that built it when a later round decides
/// it.
pub(crate) fn check_proposer(set: &ValidatorSet, h: &Header, round: u32) -> Result<(), Failure> {
    let Some(index) = set.validators.iter().position(|v| *v == h.proposer) else {
        return Err(Failure::block(
            h.height,
            "header.proposer",
            format!("{} is not a validator", h.proposer),
        ));
    };
    let n = set.validators.len() as u64;
    let first = (index as u64 + n - h.height.saturating_sub(1) % n) % n;
    if first > u64::from(round) {
        return Err(Failure::block(
            h.height,
            "header.proposer",
            format!(
                "validator {index} proposes height {} first in round {first}, after round {round} \
                 that decided the block",
                h.height
            ),
        ));
    }
    Ok(())
}

fn check_version(h: &Header) -> Result<(), Failure> {
    if h.version == HEADER_VERSION {
        Ok(())
    } else {
        Err(Failure::block(
            h.height,
            "header.version",
            format!("unsupported version {}", h.version),
        ))
    }
}

/// Appends the block's entries to a copy of `frontier`, checking tree size and Merkle root.
fn advance_merkle(frontier: &Frontier, block: &Block) -> Result<Advance, Failure> {
    let h = &block.header;
    let start = frontier.size();
    let expected_size = start + block.entries.len() as u64;
    if h.tree_size != expected_size {
        return Err(Failure::block(
            h.height,
            "header.tree_size",
            format!(
                "{} entries before and {} in the block make {expected_size}, header says {}",
                start,
                block.entries.len(),
                h.tree_size
            ),
        ));
    }
    let mut f = frontier.clone();
    let mut nodes = Vec::with_capacity(block.entries.len() * 2);
    for e in &block.entries {
        f.push::<Blake3>(e.leaf_hash(), &mut nodes);
    }
    let root = f.root::<Blake3>();
    if root != h.merkle_root {
        return Err(Failure::block(
            h.height,
            "header.merkle_root",
            format!(
                "entries give root {}, header says {}",
                hex::encode(root),
                hex::encode(h.merkle_root)
            ),
        ));
    }
    Ok(Advance { hash: [0; 32], frontier: f, nodes, signatures: 0, validators: None })
}

/// Checks every signed entry of `block` (strict rule); `first` is the ledger index of its first
/// entry, for the failure. Returns how many signatures it checked.
pub(crate) fn verify_entries(
    chain_id: &str,
    block: &Block,
    first: u64,
    checks: Checks,
) -> Result<u64, Failure> {
    if !checks.entry_signatures {
        return Ok(0);
    }
    let mut batch = BatchVerifier::new();
    let mut positions = Vec::new();
    for (i, e) in block.entries.iter().enumerate() {
        if let Auth::Signed { author, signature } = &e.auth {
            batch.push(
                *author,
                Entry::signing_bytes(chain_id, e.kind, author, &e.payload),
                *signature,
            );
            positions.push(i);
        }
    }
    let n = batch.len() as u64;
    batch.verify().map_err(|(i, why)| {
        Failure::entry(
            block.header.height,
            first + positions[i] as u64,
            "entry.signature",
            why.to_string(),
        )
    })?;
    Ok(n)
}

/// A block's `validator-set` entry with its inclusion proof under that block's Merkle root,
/// and the block's header and certificate: what a source keeps of a set change once it no longer
/// holds the block's entries (a pruned store, one started from a snapshot, a snapshot itself),
/// so that the set in force at every height stays checkable from genesis by following the
/// changes, each certified by the set before it ([`follow_set_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetChange {
    /// The header of the block holding the entry; the set is in force from the next block.
    pub header: Header,
    /// Its certificate.
    pub certificate: Certificate,
    /// The `validator-set` entry.
    pub entry: Entry,
    /// Its inclusion proof in the tree after the block (index, the block's tree size, path).
    pub proof: InclusionProof,
}

impl SetChange {
    /// The height of the block holding the entry.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Encoding: var(header ‖ certificate) ‖ index:u64 ‖ var(entry) ‖ count:u8 ‖ hash × count.
    pub fn encode(&self) -> Vec<u8> {
        let head = Block {
            header: self.header.clone(),
            entries: Vec::new(),
            certificate: self.certificate.clone(),
        }
        .encode_head();
        let entry = self.entry.encode();
        let mut w =
            Writer::with_capacity(head.len() + entry.len() + 32 * self.proof.path.len() + 24);
        w.bytes(&head).u64(self.proof.index).bytes(&entry);
        w.u8(self.proof.path.len() as u8);
        for h in &self.proof.path {
            w.raw(h);
        }
        w.finish()
    }

    /// Decodes one record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let (header, certificate) = decode_head(r.bytes("set_change.head", MAX_HEAD_BYTES)?)?;
        let index = r.u64("set_change.index")?;
        let entry = Entry::decode(r.bytes("set_change.entry", MAX_ENTRY_PAYLOAD + 256)?)?;
        let n = r.u8("set_change.path")?;
        let mut path = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            path.push(r.array("set_change.hash")?);
        }
        r.finish()?;
        let tree_size = header.tree_size;
        Ok(Self { header, certificate, entry, proof: InclusionProof { index, tree_size, path } })
    }

    /// Checks that the entry is a system validator-set entry in its block (`after`: the tree
    /// size before the block, when known), proved under the header's Merkle root, and returns
    /// the set it puts in force. The certificate is not checked here.
    pub fn check(&self, after: Option<u64>) -> Result<ValidatorSet, Failure> {
        let header = &self.header;
        let height = header.height;
        let at = self.proof.index;
        let bad = |field: &str, reason: String| Err(Failure::entry(height, at, field, reason));
        if self.proof.tree_size != header.tree_size || at >= header.tree_size {
            return bad(
                "validator_set",
                format!(
                    "entry {at} of a tree of {} entries, the header's has {}",
                    self.proof.tree_size, header.tree_size
                ),
            );
        }
        if after.is_some_and(|first| at < first) {
            return bad("validator_set", "the entry is in an earlier block".into());
        }
        if self.entry.kind != EntryKind::VALIDATOR_SET || self.entry.auth != Auth::System {
            return bad("validator_set", "not a system validator-set entry".into());
        }
        verify_inclusion::<Blake3>(&self.entry.leaf_hash(), &self.proof, &header.merkle_root)
            .map_err(|e| Failure::entry(height, at, "validator_set", e.to_string()))?;
        ValidatorSet::decode_weighted(&self.entry.payload)
            .map_err(|e| Failure::entry(height, at, "entry.payload", e.to_string()))
    }
}

/// Follows `changes` (in height order, each above the last) from the genesis set `genesis`
/// of chain `chain_id`: each change's block must be decided by the set in force at its height
/// (certificate and proposer), and its entry proved under that block's root. Returns the sets
/// by the first height each decides, genesis's at 0.
pub fn follow_set_changes(
    chain_id: &str,
    genesis: &ValidatorSet,
    changes: &[SetChange],
) -> Result<std::collections::BTreeMap<u64, ValidatorSet>, Failure> {
    let mut sets = std::collections::BTreeMap::from([(0, genesis.clone())]);
    let mut current = genesis.clone();
    let mut last = 0;
    for c in changes {
        let h = &c.header;
        if h.height <= last || h.chain_id != chain_id {
            return Err(Failure::block(
                h.height,
                "validator_set",
                format!(
                    "a set change of chain {:?} at height {} after one at {last}",
                    h.chain_id, h.height
                ),
            ));
        }
        c.certificate
            .verify(chain_id, h.height, &h.hash(), &current)
            .map_err(|e| Failure::block(h.height, "certificate", e.to_string()))?;
        check_proposer(&current, h, c.certificate.round)?;
        current = c.check(None)?;
        last = h.height;
        sets.insert(h.height + 1, current.clone());
    }
    Ok(sets)
}
