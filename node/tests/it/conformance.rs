//! The conformance suite of `docs/vectors/conformance/` (docs/ledger-format.md §11): small
//! ledgers, valid and invalid, each testing one rule, with the verdict, height, field and entry
//! that `surplus audit FILE --json` reports; and the state root after each block of the sample
//! ledger.
//!
//! Every case is rebuilt here, deterministically, from the sample ledgers. With
//! `SURPLUS_REGEN_VECTORS=1` the test rewrites the suite; otherwise it checks that the files are
//! byte-identical to what it rebuilds (the suite is pinned), then audits every file with the real
//! `surplus` binary. `docs/scripts/conformance.py` checks the ledger-level cases from the spec
//! alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use surplus_contracts::testutil::{
    buyer, certify, genesis, gov_ledger, ledger, reseal, tx, CHAIN, T0,
};
use surplus_contracts::{decode_fill, encode_fill, BlockMaker, Replay, Settlement, Tx};
use surplus_ledger::testutil::{certificate, key, owner_signature, TestChain};
use surplus_ledger::{
    Auth, Block, Certificate, CommitSig, Entry, EntryKind, Hook, NoHook, PublicKey, SecretKey,
    Signature, ValidatorSet,
};
use surplus_market::HOUR_MS;
use surplus_store::export::{Reader, MAGIC, VERSION};

use crate::{audit, export};

/// Where the suite lives.
fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/conformance")
}

/// ℓ, the order of the base point, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The identity point's encoding (a point of small order).
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

/// A non-canonical encoding: y = p + 3 (2^255 − 16), a point of large order whose canonical
/// encoding has y = 3.
const NON_CANONICAL: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xf0;
    b[31] = 0x7f;
    b
};

/// What the audit must say.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Valid,
    Invalid { height: u64, field: &'static str, entry: Option<u64> },
}

fn invalid(height: u64, field: &'static str) -> Expect {
    Expect::Invalid { height, field, entry: None }
}

fn invalid_entry(height: u64, field: &'static str, entry: u64) -> Expect {
    Expect::Invalid { height, field, entry: Some(entry) }
}

/// One case of the suite.
struct Case {
    name: &'static str,
    rule: &'static str,
    level: &'static str,
    about: &'static str,
    expect: Expect,
    file: Vec<u8>,
    /// The blocks, when a store accepts them: the file must equal the store's own export.
    blocks: Option<Vec<Block>>,
}

/// An export file (ledger-format §8) from encoded block records and a footer.
fn file_raw(chain: &str, records: &[Vec<u8>], footer: (u64, u64, [u8; 32])) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.push(chain.len() as u8);
    out.extend_from_slice(chain.as_bytes());
    for r in records {
        out.push(b'B');
        out.extend_from_slice(&(r.len() as u32).to_be_bytes());
        out.extend_from_slice(r);
    }
    out.push(b'F');
    out.extend_from_slice(&footer.0.to_be_bytes());
    out.extend_from_slice(&footer.1.to_be_bytes());
    out.extend_from_slice(&footer.2);
    out
}

/// The footer that describes `blocks` (whatever they hold).
fn footer(blocks: &[Block]) -> (u64, u64, [u8; 32]) {
    let last = blocks.last().expect("at least one block");
    (blocks.len() as u64, last.header.height, last.header.hash())
}

/// The export file of `blocks`, as `surplus ledger export` writes it.
fn file_of(blocks: &[Block]) -> Vec<u8> {
    let records: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    file_raw(&blocks[0].header.chain_id, &records, footer(blocks))
}

/// The export file of `blocks` with block `at`'s record replaced by `record`.
fn file_with_record(blocks: &[Block], at: usize, record: Vec<u8>) -> Vec<u8> {
    let mut records: Vec<Vec<u8>> = blocks.iter().map(Block::encode).collect();
    records[at] = record;
    file_raw(&blocks[0].header.chain_id, &records, footer(blocks))
}

/// Global index of entry `i` of block `h`.
fn global(blocks: &[Block], h: usize, i: usize) -> u64 {
    blocks[h].header.tree_size - blocks[h].entries.len() as u64 + i as u64
}

fn validators() -> Vec<SecretKey> {
    (0..4).map(|i| key("validator", i)).collect()
}

/// A certificate of `signers` in `round` for block `b` as it is.
fn cert(b: &Block, round: u32, signers: &[usize]) -> Certificate {
    certificate(CHAIN, b.header.height, round, &b.header.hash(), &validators(), signers)
}

/// The bare ledger: genesis (validators, allocations, no consortium parameters) and three blocks
/// of two signed entries each (kind 16, counter-and-filler payloads), all four validators
/// signing.
fn bare() -> Vec<Block> {
    TestChain::build(CHAIN, 3, 2).blocks
}

/// A valid contracts ledger whose blocks hold no user entries; blocks 2 and 3 share a timestamp.
fn empty_blocks() -> Vec<Block> {
    let (g, mut maker) = BlockMaker::genesis(CHAIN, &genesis(100, 1000), T0).unwrap();
    let mut blocks = vec![g];
    for (h, t) in [(1u64, 1u64), (2, 2), (3, 2), (4, 5)] {
        let proposer = key("validator", (h - 1) % 4).public();
        let (b, _) = maker.next(&[], T0 + t * HOUR_MS, proposer).unwrap();
        blocks.push(certify(b));
    }
    blocks
}

/// A signed entry of block `h` whose signature is replaced by `sig` and author by `author`.
fn with_auth(mut e: Entry, author: Option<[u8; 32]>, sig: impl Fn(&[u8; 64]) -> [u8; 64]) -> Entry {
    let Auth::Signed { author: a, signature } = e.auth else { panic!("a signed entry") };
    e.auth = Auth::Signed {
        author: author.map(PublicKey).unwrap_or(a),
        signature: Signature(sig(&signature.0)),
    };
    e
}

/// `s + ℓ` in place of `s`.
fn s_plus_ell(sig: &[u8; 64]) -> [u8; 64] {
    let mut out = *sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(ELL[i]) + carry;
        out[32 + i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// A kind-16 entry with a 32-byte payload signed by the owner of the key `[a]B` with
/// `R = [r]B + T`, `T` the torsion point `EIGHT_TORSION[r_torsion]`.
fn torsion_entry(r_torsion: usize) -> Entry {
    let (a, r) = ([0x5a; 32], [0x3c; 32]);
    let payload = vec![0x77; 32];
    let (author, _) = owner_signature(a, r, 0, r_torsion, b"");
    let msg = Entry::signing_bytes(CHAIN, EntryKind::ORDER, &author, &payload);
    let (author, signature) = owner_signature(a, r, 0, r_torsion, &msg);
    Entry { kind: EntryKind::ORDER, auth: Auth::Signed { author, signature }, payload }
}

/// The bare ledger up to block 2, with `e` appended to block 2 and everything resealed.
fn bare_with_entry(e: Entry) -> (Vec<Block>, Expect) {
    let mut b = bare();
    b.truncate(3);
    b[2].entries.push(e);
    let b = reseal(b);
    let at = global(&b, 2, b[2].entries.len() - 1);
    (b, invalid_entry(2, "entry.signature", at))
}

/// The bare ledger up to block 2, block 2 edited by `f` and certified again.
fn bare_edit(f: impl FnOnce(&mut Block)) -> Vec<Block> {
    let mut b = bare();
    b.truncate(3);
    f(&mut b[2]);
    b[2] = certify(b[2].clone());
    b
}

/// The bare ledger up to block 2 with block 2's certificate replaced by `c(block 2)`.
fn bare_cert(c: impl FnOnce(&Block) -> Certificate) -> Vec<Block> {
    let mut b = bare();
    b.truncate(3);
    b[2].certificate = c(&b[2]);
    b
}

/// The bare genesis alone, edited by `f`, its tree size and Merkle root recomputed.
fn genesis_edit(f: impl FnOnce(&mut Block)) -> Vec<Block> {
    let mut g = bare()[0].clone();
    f(&mut g);
    reseal(vec![g])
}

/// A ledger of chain `zip215-test` whose four validators' secret scalars the test knows, so that
/// it can make votes only a key's owner can make: genesis (validators only) and block 1 (one
/// signed entry), decided in round 0 by validators 0, 1 and 2. Validator 0's vote has, with
/// `identity_r` `None`, `R = [r]B + T` with `T` of order 8; with `Some(bytes)`, `R` = those
/// bytes, a non-canonical encoding of the identity, and `s = k·a`. Each verifies under ZIP-215
/// and fails the strict rule.
fn owned_validators_chain(identity_r: Option<[u8; 32]>) -> Vec<Block> {
    use surplus_ledger::testutil::challenge;
    use surplus_ledger::{Blake3, Frontier, Header, ValidatorSet, VoteKind, HEADER_VERSION};
    const ID: &str = "zip215-test";
    let scalars: Vec<_> =
        (0..4u8).map(|i| challenge(&[i; 32], &[0; 32], b"conformance validator")).collect();
    let keys: Vec<PublicKey> =
        scalars.iter().map(|a| owner_signature(a.to_bytes(), [1; 32], 0, 0, b"").0).collect();
    let set = ValidatorSet::new(keys.clone()).unwrap();
    let mut frontier = Frontier::new();
    let mut header = |height: u64, prev: [u8; 32], entries: &[Entry]| {
        let mut nodes = Vec::new();
        for e in entries {
            frontier.push::<Blake3>(e.leaf_hash(), &mut nodes);
        }
        Header {
            version: HEADER_VERSION,
            chain_id: ID.into(),
            height,
            prev_hash: prev,
            timestamp_ms: T0 + height * 1000,
            tree_size: frontier.size(),
            merkle_root: frontier.root::<Blake3>(),
            state_root: [0; 32],
            proposer: keys[0],
        }
    };
    let g_entries = vec![Entry::system(EntryKind::VALIDATORS, set.encode())];
    let g = Block {
        header: header(0, [0; 32], &g_entries),
        entries: g_entries,
        certificate: Certificate::default(),
    };
    let entries = vec![Entry::signed(ID, EntryKind::ORDER, vec![0x10; 8], &key("user", 0))];
    let h1 = header(1, g.header.hash(), &entries);
    let msg = surplus_ledger::vote_bytes(ID, 1, 0, VoteKind::Precommit, Some(&h1.hash()));
    let mut signatures = Vec::new();
    for (i, a) in scalars.iter().enumerate().take(3) {
        let signature = if i > 0 {
            owner_signature(a.to_bytes(), [2 + i as u8; 32], 0, 0, &msg).1
        } else if let Some(r) = identity_r {
            let s = challenge(&r, &keys[0].0, &msg) * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&s.to_bytes());
            Signature(sig)
        } else {
            owner_signature(a.to_bytes(), [2; 32], 0, 1, &msg).1
        };
        assert!(surplus_ledger::verify_strict(&keys[i], &msg, &signature).is_err() == (i == 0));
        signatures.push(CommitSig { validator: i as u16, signature });
    }
    let b1 = Block { header: h1, entries, certificate: Certificate { round: 0, signatures } };
    vec![g, b1]
}

/// The set put in force by the set-change cases: validators 1, 2, 4 and 5 with powers 1, 1, 1
/// and 3 (total 6, so a certificate needs power 5); validators 0 and 3 are removed.
fn new_set() -> (Vec<SecretKey>, ValidatorSet) {
    let keys: Vec<SecretKey> = [1, 2, 4, 5].iter().map(|i| key("validator", *i)).collect();
    let set = ValidatorSet::weighted(keys.iter().map(|k| k.public()).collect(), vec![1, 1, 1, 3])
        .unwrap();
    (keys, set)
}

/// The bare ledger whose block 2 holds the validator-set entry `change` (edited by `edit` before
/// block 2 is sealed), then block 3 (the bare ledger's entries) proposed by validator 4, the new
/// set's proposer of height 3 in round 0, and decided in round 0 by the new set's `signers`.
fn set_change_chain(edit: impl FnOnce(&mut Block), signers: &[usize]) -> Vec<Block> {
    let (keys, set) = new_set();
    let mut b = bare();
    b[2].entries.push(Entry::system(EntryKind::VALIDATOR_SET, set.encode_weighted()));
    edit(&mut b[2]);
    b[3].header.proposer = keys[2].public();
    let mut b = reseal(b);
    let h = &b[3].header;
    b[3].certificate = certificate(CHAIN, 3, 0, &h.hash(), &keys, signers);
    b
}

/// The first block of `blocks` holding an entry of `kind`, and its position there.
fn find(blocks: &[Block], kind: EntryKind) -> (usize, usize) {
    blocks
        .iter()
        .enumerate()
        .find_map(|(h, b)| b.entries.iter().position(|e| e.kind == kind).map(|i| (h, i)))
        .expect("the sample ledger holds the kind")
}

/// The suite being built.
#[derive(Default)]
struct Suite(Vec<Case>);

impl Suite {
    /// A case whose file is the export of `blocks`.
    fn add(
        &mut self,
        name: &'static str,
        rule: &'static str,
        level: &'static str,
        about: &'static str,
        expect: Expect,
        blocks: Vec<Block>,
    ) {
        let file = file_of(&blocks);
        let store = matches!(expect, Expect::Valid) || level == "contracts";
        self.0.push(Case {
            name,
            rule,
            level,
            about,
            expect,
            file,
            blocks: store.then_some(blocks),
        });
    }

    /// A case whose file is built byte by byte.
    fn raw(
        &mut self,
        name: &'static str,
        rule: &'static str,
        level: &'static str,
        about: &'static str,
        expect: Expect,
        file: Vec<u8>,
    ) {
        self.0.push(Case { name, rule, level, about, expect, file, blocks: None });
    }
}

fn cases() -> Vec<Case> {
    let mut s = Suite::default();
    let out = &mut s;
    // ---- Valid ledgers.
    let sample = ledger();
    out.add(
        "valid-sample",
        "contracts.md §7",
        "contracts",
        "the sample ledger: consortium parameters, offers, bids, fills, a transfer, a renewal, settlements; re-executed",
        Expect::Valid,
        sample.clone(),
    );
    out.add(
        "valid-empty-blocks",
        "ledger-format §6 rule 3; contracts.md §3",
        "contracts",
        "consortium parameters and four blocks without user entries, proposers in turn; blocks 2 and 3 share a timestamp (timestamps never decrease, equal is allowed)",
        Expect::Valid,
        empty_blocks(),
    );
    out.add(
        "valid-bare",
        "ledger-format §6; contracts.md §7",
        "ledger",
        "no consortium parameters: checked by the ledger rules alone and not re-executed; entries of kind 16 with payloads that are not orders",
        Expect::Valid,
        bare(),
    );
    {
        // Validator 3 first proposes height 2 in round 2; a certificate of round 3 decides it.
        let mut b = bare();
        b[2].header.proposer = key("validator", 3).public();
        let mut b = reseal(b);
        b[2].certificate = cert(&b[2], 3, &[0, 1, 3]);
        out.add(
            "valid-proposer-later-round",
            "ledger-format §6 rule 3 (decision 0011)",
            "ledger",
            "block 2 proposed by validator 3 (first proposer of height 2 in round 2), decided in round 3 by validators 0, 1 and 3",
            Expect::Valid,
            b,
        );
    }
    {
        let mut b = bare();
        b.truncate(3);
        let set = b[0].entries[0].clone();
        b[2].entries.push(set);
        out.add(
            "valid-bare-validators-entry-later",
            "ledger-format §3 (the ledger layer accepts any kind)",
            "ledger",
            "a second validators entry in block 2 of a ledger without consortium parameters: no ledger rule refuses it, and nothing re-executes the ledger",
            Expect::Valid,
            reseal(b),
        );
    }

    out.add(
        "valid-validator-set-change",
        "ledger-format §3 (kind 4), §4 (the set in force), §6 rules 3 and 4",
        "ledger",
        "block 2 holds a validator-set entry: validators 1, 2, 4 and 5 with powers 1, 1, 1 and 3 (0 and 3 removed); block 3 is proposed by validator 4 (index 2 of the new set, proposer of height 3 in round 0) and decided by indices 1, 2 and 3 of the new set (power 5 of 6)",
        Expect::Valid,
        set_change_chain(|_| {}, &[1, 2, 3]),
    );
    out.add(
        "valid-certificate-vote-torsion-r",
        "ledger-format §2 (votes under ZIP-215), §4",
        "ledger",
        "block 1's certificate holds a vote whose R = [r]B + T, T of order 8, made by the validator's owner: valid under ZIP-215's cofactored equation (the strict rule would refuse it)",
        Expect::Valid,
        owned_validators_chain(None),
    );
    out.add(
        "valid-certificate-vote-r-non-canonical",
        "ledger-format §2 (votes under ZIP-215), §4",
        "ledger",
        "block 1's certificate holds a vote whose R is the identity encoded non-canonically (y = p + 1) and s = k·a: valid under ZIP-215 (the strict rule would refuse it)",
        Expect::Valid,
        owned_validators_chain(Some({
            let mut r = [0xffu8; 32];
            r[0] = 0xee;
            r[31] = 0x7f;
            r
        })),
    );
    out.add(
        "valid-certificate-vote-r-sign-bit",
        "ledger-format §2 (votes under ZIP-215), §4",
        "ledger",
        "block 1's certificate holds a vote whose R is the identity with the sign bit set (x = 0, a non-canonical encoding) and s = k·a: valid under ZIP-215 (the strict rule would refuse it)",
        Expect::Valid,
        owned_validators_chain(Some({
            let mut r = IDENTITY;
            r[31] = 0x80;
            r
        })),
    );

    // ---- Genesis (ledger-format §6 rule 2), each a genesis block alone.
    out.add(
        "genesis-prev-hash",
        "ledger-format §6 rule 2",
        "ledger",
        "genesis links to a non-zero previous hash",
        invalid(0, "header.prev_hash"),
        {
            let mut g = genesis_edit(|_| {});
            g[0].header.prev_hash = [0x11; 32];
            g
        },
    );
    out.add(
        "genesis-certificate",
        "ledger-format §4, §6 rule 2",
        "ledger",
        "genesis carries a certificate with one vote",
        invalid(0, "certificate"),
        {
            let mut g = genesis_edit(|_| {});
            g[0].certificate = Certificate {
                round: 0,
                signatures: vec![CommitSig {
                    validator: 0,
                    signature: validators()[0].sign(b"genesis"),
                }],
            };
            g
        },
    );
    out.add(
        "genesis-no-validators",
        "ledger-format §6 rule 2",
        "ledger",
        "genesis without a validators entry",
        invalid(0, "entries"),
        genesis_edit(|g| {
            g.entries.remove(0);
        }),
    );
    {
        let (_, set) = new_set();
        out.add(
            "genesis-validator-set",
            "ledger-format §6 rule 2",
            "ledger",
            "genesis holds a validator-set entry (at position 1) beside its validators entry",
            invalid_entry(0, "entry.kind", 1),
            genesis_edit(|g| {
                g.entries.insert(1, Entry::system(EntryKind::VALIDATOR_SET, set.encode_weighted()))
            }),
        );
    }
    {
        // Block 2 holds the change; its own entries come first, so the change is its third.
        let b = set_change_chain(|_| {}, &[0, 1, 2]);
        out.add(
            "certificate-new-set-no-quorum",
            "ledger-format §4 (voting power), §6 rule 3",
            "ledger",
            "block 3 is decided by indices 0, 1 and 2 of the new set: three of its four validators, but power 3 of 6 where more than 4 is needed",
            invalid(3, "certificate"),
            b,
        );
        let mut b = set_change_chain(|_| {}, &[1, 2, 3]);
        let old: Vec<SecretKey> = (0..4).map(|i| key("validator", i)).collect();
        let h = b[3].header.hash();
        let removed = certificate(CHAIN, 3, 0, &h, &old, &[0]).signatures[0];
        b[3].certificate.signatures.insert(0, removed);
        out.add(
            "certificate-removed-validator",
            "ledger-format §4 (the set in force), §6 rule 3",
            "ledger",
            "block 3's certificate also holds, at index 0, the vote of validator 0, whom block 2's validator-set entry removed: index 0 of the new set is validator 1, whose key that vote does not verify under",
            invalid(3, "certificate"),
            b,
        );
        let mut b = set_change_chain(|_| {}, &[1, 2, 3]);
        b[3].certificate = cert(&b[3], 0, &[0, 1, 2]);
        out.add(
            "certificate-old-set-after-change",
            "ledger-format §4 (the set in force), §6 rule 3",
            "ledger",
            "block 3 is decided by validators 0, 1 and 2 of the genesis set, which block 2's validator-set entry replaced",
            invalid(3, "certificate"),
            b,
        );
        let (keys, _) = new_set();
        let mut b = set_change_chain(|_| {}, &[1, 2, 3]);
        b[3].header.proposer = key("validator", 0).public();
        let h = b[3].header.hash();
        b[3].certificate = certificate(CHAIN, 3, 3, &h, &keys, &[1, 2, 3]);
        out.add(
            "proposer-removed-validator",
            "ledger-format §6 rule 3 (proposer of the set in force)",
            "ledger",
            "block 3 is proposed by validator 0, whom block 2's validator-set entry removed, and decided by the new set in round 3",
            invalid(3, "header.proposer"),
            b,
        );
        let b = set_change_chain(
            |b| {
                let e = b.entries.pop().unwrap();
                b.entries.push(Entry::signed(CHAIN, e.kind, e.payload, &key("validator", 0)));
            },
            &[1, 2, 3],
        );
        let at = global(&b, 2, b[2].entries.len() - 1);
        out.add(
            "validator-set-signed",
            "ledger-format §6 rule 4",
            "ledger",
            "block 2's validator-set entry is signed by validator 0 instead of being a system entry",
            invalid_entry(2, "entry.auth", at),
            b,
        );
        let b = set_change_chain(
            |b| {
                let e = b.entries.last().unwrap().clone();
                b.entries.push(e);
            },
            &[1, 2, 3],
        );
        let at = global(&b, 2, b[2].entries.len() - 1);
        out.add(
            "validator-set-twice",
            "ledger-format §6 rule 4",
            "ledger",
            "block 2 holds the same validator-set entry twice",
            invalid_entry(2, "entry.kind", at),
            b,
        );
        let b = set_change_chain(
            |b| {
                let mut e = b.entries.pop().unwrap();
                // The last validator's power (the payload's last 8 bytes) becomes 0.
                let n = e.payload.len();
                e.payload[n - 8..].copy_from_slice(&[0; 8]);
                b.entries.push(e);
            },
            &[1, 2, 3],
        );
        let at = global(&b, 2, b[2].entries.len() - 1);
        out.add(
            "validator-set-power-zero",
            "ledger-format §3 (kind 4 payload), §6 rule 4",
            "ledger",
            "block 2's validator-set entry gives validator 5 voting power 0",
            invalid_entry(2, "entry.payload", at),
            b,
        );
    }
    out.add(
        "genesis-two-validators",
        "ledger-format §6 rule 2",
        "ledger",
        "genesis with a second validators entry (at position 1)",
        invalid_entry(0, "entry.kind", 1),
        genesis_edit(|g| {
            let set = g.entries[0].clone();
            g.entries.insert(1, set);
        }),
    );
    out.add(
        "genesis-validators-signed",
        "ledger-format §6 rule 2",
        "ledger",
        "the validators entry is signed by validator 0 instead of being a system entry",
        invalid_entry(0, "entry.auth", 0),
        genesis_edit(|g| {
            let p = g.entries[0].payload.clone();
            g.entries[0] = Entry::signed(CHAIN, EntryKind::VALIDATORS, p, &validators()[0]);
        }),
    );
    out.add(
        "genesis-validators-duplicate-key",
        "ledger-format §3 (validators payload), §6 rule 2",
        "ledger",
        "the validators payload names validator 0 twice",
        invalid_entry(0, "entry.payload", 0),
        genesis_edit(|g| {
            let mut p = vec![0, 2];
            p.extend_from_slice(&validators()[0].public().0);
            p.extend_from_slice(&validators()[0].public().0);
            g.entries[0].payload = p;
        }),
    );
    out.add(
        "genesis-merkle-root",
        "ledger-format §5, §6 rule 4",
        "ledger",
        "genesis names a wrong Merkle root",
        invalid(0, "header.merkle_root"),
        {
            let mut g = genesis_edit(|_| {});
            g[0].header.merkle_root = [0x22; 32];
            g
        },
    );
    out.add(
        "genesis-tree-size",
        "ledger-format §6 rule 4",
        "ledger",
        "genesis names a tree size one too large",
        invalid(0, "header.tree_size"),
        {
            let mut g = genesis_edit(|_| {});
            g[0].header.tree_size += 1;
            g
        },
    );
    {
        // Block 1 is certified and links to the genesis as it was; the genesis is changed.
        let mut b = bare();
        b.truncate(2);
        b[0].header.timestamp_ms += 1;
        out.add(
            "genesis-tampered",
            "ledger-format §6 (certified block 1 blames genesis)",
            "ledger",
            "genesis's timestamp changed after block 1, whose valid certificate vouches for its link to the original genesis",
            invalid(0, "header"),
            b,
        );
    }
    {
        let b = bare();
        let mut rec = b[0].encode();
        rec[1] = 2;
        out.raw(
            "genesis-version",
            "ledger-format §4, §6 rule 1",
            "ledger",
            "genesis header version 2 (the block does not decode)",
            invalid(0, "block"),
            file_with_record(&b[..1], 0, rec),
        );
    }

    // ---- Links, heights, time, chain id, header (ledger-format §6 rules 1 and 3).
    {
        let mut b = bare();
        b.truncate(3);
        b[2].header.height = 3;
        b[2] = certify(b[2].clone());
        out.add(
            "height-gap",
            "ledger-format §6 rule 3, §8",
            "ledger",
            "the block after height 1 says height 3",
            invalid(2, "header.height"),
            b,
        );
    }
    out.add(
        "prev-hash-broken",
        "ledger-format §6 rule 3",
        "ledger",
        "block 2, certified, links to a hash that is not block 1's",
        invalid(2, "header.prev_hash"),
        bare_edit(|b| b.header.prev_hash = [0x11; 32]),
    );
    {
        let mut b = bare();
        b.truncate(2);
        b[1].header.prev_hash = [0x11; 32];
        b[1] = certify(b[1].clone());
        out.add(
            "block1-link-broken",
            "ledger-format §6 rule 3",
            "ledger",
            "block 1, certified, links to a hash that is not genesis's (the certificate is checked first; a valid one blames genesis)",
            invalid(0, "header"),
            b,
        );
    }
    {
        let mut b = bare();
        b.truncate(3);
        b[2].header.timestamp_ms = b[1].header.timestamp_ms - 1;
        b[2] = certify(b[2].clone());
        out.add(
            "timestamp-decreasing",
            "ledger-format §4, §6 rule 3",
            "ledger",
            "block 2's timestamp is 1 ms before block 1's",
            invalid(2, "header.timestamp_ms"),
            b,
        );
    }
    out.add(
        "merkle-root-wrong",
        "ledger-format §5, §6 rule 4",
        "ledger",
        "block 2, certified, names a wrong Merkle root",
        invalid(2, "header.merkle_root"),
        bare_edit(|b| b.header.merkle_root = [0x22; 32]),
    );
    out.add(
        "tree-size-wrong",
        "ledger-format §4, §6 rule 4",
        "ledger",
        "block 2, certified, names a tree size one too large",
        invalid(2, "header.tree_size"),
        bare_edit(|b| b.header.tree_size += 1),
    );
    {
        let mut b = bare();
        b.truncate(3);
        b[2].header.chain_id = "contracts-test-b".into();
        let h = &b[2].header;
        b[2].certificate = certificate(&h.chain_id, 2, 0, &h.hash(), &validators(), &[0, 1, 2]);
        out.add(
            "chain-id-later",
            "ledger-format §6 rule 3",
            "ledger",
            "block 2 names chain contracts-test-b, with a certificate valid for that chain",
            invalid(2, "header.chain_id"),
            b,
        );
    }
    {
        let b = bare_edit(|_| {});
        let mut rec = b[2].encode();
        rec[1] = 2;
        out.raw(
            "header-version",
            "ledger-format §4, §6 rule 1",
            "ledger",
            "block 2's header version is 2 (the block does not decode)",
            invalid(2, "block"),
            file_with_record(&b, 2, rec),
        );
    }

    // ---- Entry signatures, strict rule (ledger-format §2, §6 rule 5).
    {
        let e = bare()[2].entries[0].clone();
        let other = key("user", 7).public().0;
        let (b, x) = bare_with_entry(with_auth(e, Some(other), |s| *s));
        out.add(
            "entry-signature-mismatch",
            "ledger-format §2 rule 3, §6 rule 5",
            "ledger",
            "a copy of an entry of block 2 naming another author",
            x,
            b,
        );
    }
    {
        let e = Entry::signed("other-chain", EntryKind::ORDER, vec![0x42; 16], &key("user", 1));
        let (b, x) = bare_with_entry(e);
        out.add(
            "entry-signed-other-chain",
            "ledger-format §3 (signed bytes), §6 rule 5",
            "ledger",
            "an entry signed for chain other-chain",
            x,
            b,
        );
    }
    for (name, t, about) in [
        ("entry-torsion-r-order-2", 4, "an entry signed by its key's owner with R = [r]B + T, T of order 2: the cofactored equation holds, the strict one does not"),
        ("entry-torsion-r-order-4", 2, "an entry signed by its key's owner with R = [r]B + T, T of order 4"),
        ("entry-torsion-r-order-8", 1, "an entry signed by its key's owner with R = [r]B + T, T of order 8"),
    ] {
        let (b, x) = bare_with_entry(torsion_entry(t));
        out.add(name, "ledger-format §2 rule 3, §6 rule 5", "ledger", about, x, b);
    }
    {
        let e = bare()[2].entries[0].clone();
        let (b, x) = bare_with_entry(with_auth(e, None, s_plus_ell));
        out.add(
            "entry-s-non-canonical",
            "ledger-format §2 rule 1, §6 rule 5",
            "ledger",
            "a copy of an entry of block 2 with s + ℓ in place of s",
            x,
            b,
        );
    }
    {
        let e = bare()[2].entries[0].clone();
        let (b, x) = bare_with_entry(with_auth(e, Some(IDENTITY), |s| *s));
        out.add(
            "entry-key-small-order",
            "ledger-format §2 rule 2, §6 rule 5",
            "ledger",
            "an entry whose author key is the identity point (small order)",
            x,
            b,
        );
    }
    {
        let e = bare()[2].entries[0].clone();
        let (b, x) = bare_with_entry(with_auth(e, Some(NON_CANONICAL), |s| *s));
        out.add(
            "entry-key-non-canonical",
            "ledger-format §2 rule 2, §6 rule 5",
            "ledger",
            "an entry whose author key encodes y = p + 3 (non-canonical; the point y = 3 has large order)",
            x,
            b,
        );
    }
    {
        let e = bare()[2].entries[0].clone();
        let small_r = |s: &[u8; 64]| {
            let mut s = *s;
            s[..32].copy_from_slice(&IDENTITY);
            s
        };
        let (b, x) = bare_with_entry(with_auth(e, None, small_r));
        out.add(
            "entry-r-small-order",
            "ledger-format §2 rule 2, §6 rule 5",
            "ledger",
            "an entry whose signature's R is the identity point (small order)",
            x,
            b,
        );
    }
    {
        let e = bare()[2].entries[0].clone();
        let bad_r = |s: &[u8; 64]| {
            let mut s = *s;
            s[..32].copy_from_slice(&NON_CANONICAL);
            s
        };
        let (b, x) = bare_with_entry(with_auth(e, None, bad_r));
        out.add(
            "entry-r-non-canonical",
            "ledger-format §2 rule 2, §6 rule 5",
            "ledger",
            "an entry whose signature's R encodes y = p + 3 (non-canonical)",
            x,
            b,
        );
    }

    // ---- Certificates, ZIP-215 with quorum (ledger-format §4, §6 rule 3).
    out.add(
        "certificate-no-quorum",
        "ledger-format §4 (votes), §6 rule 3",
        "ledger",
        "block 2's certificate holds 2 votes of 4 validators; a quorum is 3",
        invalid(2, "certificate"),
        bare_cert(|b| cert(b, 0, &[0, 1])),
    );
    out.add(
        "certificate-unknown-validator",
        "ledger-format §4 (votes), §6 rule 3",
        "ledger",
        "block 2's certificate adds a vote by validator index 4 of a set of 4",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 0, &[0, 1, 2]);
            c.signatures.push(CommitSig { validator: 4, signature: c.signatures[0].signature });
            c
        }),
    );
    out.add(
        "certificate-unsorted",
        "ledger-format §4, §6 rule 3",
        "ledger",
        "block 2's certificate lists validators 1, 0, 2",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 0, &[0, 1, 2]);
            c.signatures.swap(0, 1);
            c
        }),
    );
    out.add(
        "certificate-duplicate-validator",
        "ledger-format §4, §6 rule 3",
        "ledger",
        "block 2's certificate lists validators 0, 1, 1 (three signatures, two validators)",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 0, &[0, 1]);
            c.signatures.push(c.signatures[1]);
            c
        }),
    );
    out.add(
        "certificate-bad-vote",
        "ledger-format §2 (ZIP-215), §4, §6 rule 3",
        "ledger",
        "block 2's certificate gives validator 2 the vote validator 3 signed",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 0, &[0, 1, 2]);
            c.signatures[2].signature = cert(b, 0, &[3]).signatures[0].signature;
            c
        }),
    );
    out.add(
        "certificate-vote-s-non-canonical",
        "ledger-format §2 (ZIP-215: s < ℓ), §6 rule 3",
        "ledger",
        "block 2's certificate holds validator 0's vote with s + ℓ in place of s",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 0, &[0, 1, 2]);
            c.signatures[0].signature = Signature(s_plus_ell(&c.signatures[0].signature.0));
            c
        }),
    );
    out.add(
        "certificate-wrong-round",
        "ledger-format §4 (votes), §6 rule 3",
        "ledger",
        "block 2's certificate says round 0, its votes are for round 1",
        invalid(2, "certificate"),
        bare_cert(|b| {
            let mut c = cert(b, 1, &[0, 1, 2]);
            c.round = 0;
            c
        }),
    );
    out.add(
        "certificate-wrong-header",
        "ledger-format §4 (votes), §6 rule 3",
        "ledger",
        "block 2's certificate holds votes for block 1's header hash",
        invalid(2, "certificate"),
        bare_cert(|b| certificate(CHAIN, 2, 0, &b.header.prev_hash, &validators(), &[0, 1, 2])),
    );
    out.add(
        "certificate-wrong-height",
        "ledger-format §4 (votes), §6 rule 3",
        "ledger",
        "block 2's certificate holds votes for height 1 of the same header hash",
        invalid(2, "certificate"),
        bare_cert(|b| certificate(CHAIN, 1, 0, &b.header.hash(), &validators(), &[0, 1, 2])),
    );

    // ---- Proposer (ledger-format §6 rule 3).
    out.add(
        "proposer-not-validator",
        "ledger-format §6 rule 3",
        "ledger",
        "block 2's proposer is a user key",
        invalid(2, "header.proposer"),
        bare_edit(|b| b.header.proposer = key("user", 0).public()),
    );
    {
        let mut b = bare_edit(|b| b.header.proposer = key("validator", 3).public());
        b[2].certificate = cert(&b[2], 1, &[0, 1, 2]);
        out.add(
            "proposer-too-late",
            "ledger-format §6 rule 3 (decision 0011)",
            "ledger",
            "block 2's proposer is validator 3, which first proposes height 2 in round 2; the certificate is of round 1",
            invalid(2, "header.proposer"),
            b,
        );
    }

    // ---- Decoding limits (ledger-format §1, §3, §4).
    {
        let mut b = bare();
        b.truncate(3);
        b[2].entries.push(Entry::signed(
            CHAIN,
            EntryKind::ORDER,
            vec![0x33; 65_537],
            &key("user", 1),
        ));
        let b = reseal(b);
        out.add(
            "entry-payload-too-long",
            "ledger-format §1, §3 (payload at most 65,536 bytes)",
            "ledger",
            "block 2 holds an entry with a payload of 65,537 bytes (the block does not decode)",
            invalid(2, "block"),
            b,
        );
    }
    {
        let b = bare_edit(|_| {});
        let mut rec = b[2].encode();
        // The entry count follows the header and the certificate; claim 100,001 entries.
        let head = rec.len() - b[2].entries.iter().map(|e| 4 + e.encode().len()).sum::<usize>();
        rec[head - 4..head].copy_from_slice(&100_001u32.to_be_bytes());
        out.raw(
            "block-too-many-entries",
            "ledger-format §1, §4 (at most 100,000 entries)",
            "ledger",
            "block 2's entry count says 100,001",
            invalid(2, "block"),
            file_with_record(&b, 2, rec),
        );
    }
    {
        let b = bare_edit(|_| {});
        let mut rec = b[2].encode();
        rec.push(0);
        out.raw(
            "block-trailing-byte",
            "ledger-format §1 (no trailing bytes)",
            "ledger",
            "block 2's record has one byte after its last entry",
            invalid(2, "block"),
            file_with_record(&b, 2, rec),
        );
    }
    {
        let b = bare_edit(|_| {});
        let mut rec = b[2].encode();
        let first = rec.len() - b[2].entries.iter().map(|e| 4 + e.encode().len()).sum::<usize>();
        // entry = kind:u16 ‖ auth ‖ …, behind its u32 length.
        rec[first + 4 + 2] = 2;
        out.raw(
            "entry-auth-unknown",
            "ledger-format §1, §3",
            "ledger",
            "block 2's first entry has auth tag 2",
            invalid(2, "block"),
            file_with_record(&b, 2, rec),
        );
    }

    // ---- The export file (ledger-format §8).
    out.raw(
        "export-empty",
        "ledger-format §8",
        "ledger",
        "a file header and a footer, no block",
        invalid(0, "ledger"),
        file_raw(CHAIN, &[], (0, 0, [0; 32])),
    );
    {
        let b = bare();
        let mut f = file_of(&b);
        f.truncate(f.len() - 49);
        out.raw(
            "export-no-footer",
            "ledger-format §8",
            "ledger",
            "the bare ledger's export cut at the end of its last record (no footer)",
            invalid(4, "file"),
            f,
        );
    }
    {
        let b = bare();
        let mut f = file_of(&b);
        f.truncate(f.len() - 49 - 10);
        out.raw(
            "export-truncated-record",
            "ledger-format §8",
            "ledger",
            "the bare ledger's export cut 10 bytes before the end of block 3's record",
            invalid(3, "record.length"),
            f,
        );
    }
    {
        let b = bare();
        let mut f = file_of(&b);
        let n = f.len();
        f[n - 1] ^= 1;
        out.raw(
            "export-footer-mismatch",
            "ledger-format §8",
            "ledger",
            "the footer's head hash differs from block 3's header hash by one bit",
            invalid(3, "footer"),
            f,
        );
    }
    {
        let b = bare();
        let mut f = file_of(&b);
        f.push(0);
        out.raw(
            "export-trailing-byte",
            "ledger-format §8",
            "ledger",
            "one byte after the footer",
            invalid(4, "footer"),
            f,
        );
    }
    {
        let b = bare();
        let records: Vec<Vec<u8>> = b.iter().map(Block::encode).collect();
        out.raw(
            "export-chain-id-mismatch",
            "ledger-format §8",
            "ledger",
            "the file header names chain other-chain, the blocks contracts-test",
            invalid(0, "file.chain_id"),
            file_raw("other-chain", &records, footer(&b)),
        );
    }
    {
        let b = bare();
        let mut f = file_of(&b);
        // The third record starts after the file header and two records.
        let at = 16 + 2 + 1 + CHAIN.len() + 10 + b[0].encode().len() + b[1].encode().len();
        assert_eq!(f[at], b'B');
        f[at] = b'X';
        out.raw(
            "export-record-tag",
            "ledger-format §8",
            "ledger",
            "the third record's tag is 'X'",
            invalid(2, "record.tag"),
            f,
        );
    }

    // ---- Caught only by re-execution (contracts.md; the ledger rules pass them).
    {
        let mut b = sample.clone();
        let (h, i) = find(&b, EntryKind::SETTLEMENT);
        let mut st = Settlement::decode(&b[h].entries[i].payload).unwrap();
        st.to_provider = 1_000_000_000_000;
        b[h].entries[i].payload = st.encode();
        let b = reseal(b);
        out.add(
            "settlement-bogus",
            "contracts.md §3 step 1",
            "contracts",
            "a settlement pays the provider 10^12 units",
            invalid_entry(h as u64, "entries", global(&b, h, i)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let (h, i) = find(&b, EntryKind::SETTLEMENT);
        let extra = b[h].entries[i].clone();
        b[h].entries.push(extra);
        let b = reseal(b);
        let last = b[h].entries.len() - 1;
        out.add(
            "settlement-extra",
            "contracts.md §3",
            "contracts",
            "a copy of a settlement at the end of its block",
            invalid_entry(h as u64, "entries", global(&b, h, last)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let t = Tx::Transfer { to: buyer(0).public(), amount: 1_000_000_000_000, seq: 0 };
        b[2].entries.push(Entry::system(t.kind(), t.encode()));
        let b = reseal(b);
        let last = b[2].entries.len() - 1;
        out.add(
            "transfer-unsigned",
            "contracts.md §3 step 2",
            "contracts",
            "a transfer of 10^12 units as a system entry (no signature)",
            invalid_entry(2, "entries", global(&b, 2, last)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let t = Tx::Transfer { to: buyer(0).public(), amount: 1_000_000_000_000, seq: 1 };
        b[3].entries.insert(0, tx(&buyer(2), t));
        let b = reseal(b);
        out.add(
            "transfer-beyond-balance",
            "contracts.md §3 step 2 (transfer)",
            "contracts",
            "buyer 2, signing, transfers 10^12 units it does not have",
            invalid_entry(3, "entry", global(&b, 3, 0)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let t = Tx::Transfer { to: buyer(0).public(), amount: 5, seq: 7 };
        b[3].entries.insert(0, tx(&buyer(2), t));
        let b = reseal(b);
        out.add(
            "transfer-bad-sequence",
            "contracts.md §3 step 2",
            "contracts",
            "buyer 2's transfer carries sequence number 7, its account is at 1",
            invalid_entry(3, "entry", global(&b, 3, 0)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let (h, i) = find(&b, EntryKind::TRANSFER);
        assert_eq!(h, 2);
        let dup = b[2].entries[i].clone();
        b[2].entries.insert(i + 1, dup);
        let b = reseal(b);
        out.add(
            "entry-duplicate",
            "contracts.md §3 step 2 (rule 1)",
            "contracts",
            "block 2's transfer appears twice in a row",
            invalid_entry(2, "entry", global(&b, 2, i + 1)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let offer = b[1].entries[0].clone();
        b[3].entries.insert(0, offer);
        let b = reseal(b);
        out.add(
            "order-replayed",
            "contracts.md §3 step 2; docs/auction.md",
            "contracts",
            "block 1's offer, entry for entry, again in block 3",
            invalid_entry(3, "entry", global(&b, 3, 0)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let (h, i) = find(&b, EntryKind::FILL);
        let (mut fill, at) = decode_fill(&b[h].entries[i].payload).unwrap();
        fill.price += 1;
        b[h].entries[i].payload = encode_fill(&fill, at);
        let b = reseal(b);
        out.add(
            "fill-price-forged",
            "contracts.md §3 step 3",
            "contracts",
            "a fill's price is one unit above the clearing price",
            invalid_entry(h as u64, "entries", global(&b, h, i)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let (h, i) = find(&b, EntryKind::FILL);
        b[h].entries.remove(i);
        let b = reseal(b);
        out.add(
            "fill-missing",
            "contracts.md §3 step 3 (a lease is its fill entry)",
            "contracts",
            "the block's first fill entry (the lease it creates) is left out",
            invalid_entry(h as u64, "entries", global(&b, h, i)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        let set = b[0].entries.iter().find(|e| e.kind == EntryKind::VALIDATORS).unwrap().clone();
        b[4].entries.push(set);
        let b = reseal(b);
        let last = b[4].entries.len() - 1;
        out.add(
            "validators-after-genesis",
            "ledger-format §3 (kind 1: genesis only); contracts.md §3",
            "contracts",
            "the validators entry again in block 4",
            invalid_entry(4, "entries", global(&b, 4, last)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        b[3].entries.insert(0, Entry::signed(CHAIN, EntryKind(999), vec![1, 2, 3], &buyer(1)));
        let b = reseal(b);
        out.add(
            "unknown-kind",
            "ledger-format §3 (kinds); contracts.md §3 step 2",
            "contracts",
            "an entry of kind 999 signed by buyer 1",
            invalid_entry(3, "entry", global(&b, 3, 0)),
            b,
        );
    }
    {
        let mut b = sample.clone();
        b[5].header.state_root = [7; 32];
        out.add(
            "state-root-wrong",
            "contracts.md §5, §7",
            "contracts",
            "block 5 names a state root no state has",
            invalid(5, "header.state_root"),
            reseal(b),
        );
    }
    {
        let mut b = sample.clone();
        b[0].header.state_root = [7; 32];
        out.add(
            "genesis-state-root-wrong",
            "contracts.md §2, §5",
            "contracts",
            "the genesis header names a state root no state has",
            invalid(0, "header.state_root"),
            reseal(b),
        );
    }
    // ---- Governance (contracts.md §8): set changes decided by vote.
    let gov = gov_ledger();
    out.add(
        "valid-governance",
        "contracts.md §8; ledger-format §4 (the set in force)",
        "contracts",
        "validator 0 proposes to admit validator 4 and to remove validator 3 from block 12; validators 0-2 vote yes in block 2; the end of block 11 enacts both (two gov-outcome entries, then the validator-set entry); blocks 12 and 13 are proposed and certified by the new set",
        Expect::Valid,
        gov.clone(),
    );
    {
        // Validator 2 votes no on the admission in block 2: two yes votes of four do not pass
        // it, and it expires at the end of block 2 (its deadline); block 11 enacts it all the
        // same.
        let mut b = gov.clone();
        let a = b[1].entries[0].id();
        let yes = Tx::GovVote { proposal: a, yes: true, seq: 0 };
        let pos = b[2]
            .entries
            .iter()
            .position(|e| {
                matches!(e.auth, Auth::Signed { author, .. } if author == key("validator", 2).public())
                    && Tx::decode(e.kind, &e.payload).ok() == Some(yes.clone())
            })
            .unwrap();
        b[2].entries[pos] =
            tx(&key("validator", 2), Tx::GovVote { proposal: a, yes: false, seq: 0 });
        let b = reseal(b);
        out.add(
            "gov-change-without-quorum",
            "contracts.md §8 (passing: more than two thirds of the voting power)",
            "contracts",
            "as valid-governance, but validator 2 votes no on admitting validator 4: short of quorum, the proposal expires at the end of block 2, yet block 2 records no expiry and block 11 enacts it",
            invalid_entry(2, "entries", global(&b, 2, b[2].entries.len() - 1)),
            b,
        );
    }
    {
        // The enactment's three entries moved from block 11 to block 10.
        let mut b = gov.clone();
        let moved: Vec<Entry> = b[11].entries.drain(..).collect();
        b[10].entries.extend(moved);
        let b = reseal(b);
        out.add(
            "gov-change-early",
            "contracts.md §8 (enactment at the end of the block before the effective height)",
            "contracts",
            "as valid-governance, with the enactment (two gov-outcome entries and the validator-set entry) in block 10, one block before the end of block 11 where it belongs",
            invalid_entry(10, "entries", global(&b, 10, 0)),
            b,
        );
    }
    {
        // Block 12's certificate also holds validator 3's vote, at the index it had.
        let mut b = gov.clone();
        let old: Vec<SecretKey> = (0..4).map(|i| key("validator", i)).collect();
        let h = b[12].header.hash();
        let round = b[12].certificate.round;
        let removed = certificate(CHAIN, 12, round, &h, &old, &[3]).signatures[0];
        b[12].certificate.signatures.push(removed);
        out.add(
            "gov-certificate-removed-validator",
            "contracts.md §8; ledger-format §4 (the set in force), §6 rule 3",
            "ledger",
            "as valid-governance, with validator 3's vote (removed by the vote enacted in block 11) added to block 12's certificate at its old index 3, where the new set has validator 4",
            invalid(12, "certificate"),
            b,
        );
    }
    s.0
}

fn index(cases: &[Case]) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name,
                "file": format!("{}.export", c.name),
                "rule": c.rule,
                "level": c.level,
                "about": c.about,
            });
            match c.expect {
                Expect::Valid => v["verdict"] = "valid".into(),
                Expect::Invalid { height, field, entry } => {
                    v["verdict"] = "invalid".into();
                    v["height"] = height.into();
                    v["field"] = field.into();
                    v["entry"] = entry.into();
                }
            }
            v
        })
        .collect();
    json!({
        "format": "surplus-conformance/v1",
        "spec": "docs/ledger-format.md",
        "about": "Small ledgers as export files (ledger-format §8), each testing one rule, with the verdict of `surplus audit FILE --json`: for an invalid ledger the height, field and global entry index (null when no entry is at fault) of the first failure. level \"ledger\": the rules of ledger-format §6 and §8 decide the verdict; level \"contracts\": the ledger rules pass it and only re-execution (contracts.md §7) decides. Rebuilt by node/tests/it/conformance.rs; checked from the spec by docs/scripts/conformance.py.",
        "cases": cases,
    })
}

/// The state root after each block of the sample ledger, from re-execution.
fn state_roots() -> serde_json::Value {
    let blocks = ledger();
    let mut replay = Replay::new();
    let mut rows = Vec::new();
    for b in &blocks {
        let hash = b.header.hash();
        replay.block(b, &hash).expect("the sample ledger re-executes");
        let root = replay.state().expect("a state after genesis").root();
        assert_eq!(root, b.header.state_root, "height {}", b.header.height);
        rows.push(json!({
            "height": b.header.height,
            "header_hash": hex::encode(hash),
            "state_root": hex::encode(root),
        }));
    }
    json!({
        "format": "surplus-state-roots/v1",
        "ledger": "valid-sample.export",
        "about": "The valid sample ledger of the conformance suite: each block's height, header hash and the contract state root after it (contracts.md §5), from re-execution (contracts::Replay). Each equals the header's state_root.",
        "chain_id": CHAIN,
        "blocks": rows,
    })
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s.into_bytes()
}

#[test]
fn conformance_suite_is_pinned_and_surplus_audit_passes_it() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = BTreeMap::new();
    for c in &cases {
        assert!(names.insert(c.name, ()).is_none(), "two cases named {}", c.name);
    }
    let mut files: BTreeMap<String, Vec<u8>> =
        cases.iter().map(|c| (format!("{}.export", c.name), c.file.clone())).collect();
    files.insert("index.json".into(), pretty(&index(&cases)));
    files.insert("state-roots.json".into(), pretty(&state_roots()));

    let dir = suite_dir();
    if std::env::var_os("SURPLUS_REGEN_VECTORS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "export" || x == "json") {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (SURPLUS_REGEN_VECTORS=1 writes it)", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".export") || n.ends_with(".json"))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, files.keys().cloned().collect::<Vec<_>>(), "files of {}", dir.display());
    for (name, bytes) in &files {
        let got = std::fs::read(dir.join(name)).unwrap();
        assert!(
            &got == bytes,
            "{name} differs from what the test builds (SURPLUS_REGEN_VECTORS=1 rewrites the suite)"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        let path = dir.join(format!("{}.export", c.name));
        // A ledger a store accepts: the file is exactly what `surplus ledger export` writes.
        if let Some(blocks) = &c.blocks {
            let exported = std::fs::read(export(blocks, tmp.path(), c.name)).unwrap();
            assert!(exported == c.file, "{}: differs from the store's export", c.name);
        }
        // The level: the ledger rules alone (no re-execution) reach the verdict of a
        // ledger-level case, and pass a contracts-level one.
        let alone = Reader::open(&path).map_err(|e| e.to_string()).and_then(|mut r| {
            surplus_ledger::verify(&mut r, &Default::default(), &mut NoHook, &mut |_| {})
                .map_err(|f| format!("{} {} {:?}", f.height, f.field, f.entry))
        });
        let alone_ok = match (&c.expect, c.level) {
            (_, "contracts") | (Expect::Valid, "ledger") => alone.is_ok(),
            (Expect::Invalid { height, field, entry }, "ledger") => {
                alone.as_ref().err() == Some(&format!("{height} {field} {entry:?}"))
            }
            _ => false,
        };
        if !alone_ok {
            failures.push(format!(
                "{}: level {}: the ledger rules alone give {alone:?}",
                c.name, c.level
            ));
        }
        let (code, v) = audit(&path);
        println!("{}: {v}", c.name);
        let f = &v["failure"];
        let got = (
            v["verified"].as_bool(),
            f["height"].as_u64(),
            f["field"].as_str().map(str::to_owned),
            f["entry"].as_u64(),
        );
        let (want, want_code) = match c.expect {
            Expect::Valid => ((Some(true), None, None, None), 0),
            Expect::Invalid { height, field, entry } => {
                ((Some(false), Some(height), Some(field.to_owned()), entry), 1)
            }
        };
        if got != want || code != Some(want_code) {
            failures.push(format!(
                "{}: expected {:?}, surplus audit says {v} (exit {code:?})",
                c.name, c.expect
            ));
        }
        if c.expect == Expect::Valid && c.level == "contracts" && v["replayed"] != true {
            failures.push(format!("{}: not re-executed: {v}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
