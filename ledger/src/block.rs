//! Blocks: header, typed entries, and the commit certificate stored beside the header.

use serde::{Deserialize, Serialize};

use crate::crypto::{verify_strict, PublicKey, SecretKey, Signature, SignatureError, VoteBatch};
use crate::encoding::{domain, tagged_hash, DecodeError, Reader, Writer, MAX_CHAIN_ID_LEN};
use crate::Hash;

/// The header format this crate writes and reads.
pub const HEADER_VERSION: u16 = 1;
/// Most entries one block may hold.
pub const MAX_BLOCK_ENTRIES: usize = 100_000;
/// Largest entry payload, in bytes.
pub const MAX_ENTRY_PAYLOAD: usize = 64 * 1024;
/// Most validators a chain may have.
pub const MAX_VALIDATORS: usize = 1024;
/// Most voting power a validator set may hold in total (2^53, exact in a JSON number).
pub const MAX_TOTAL_POWER: u64 = 1 << 53;

/// What an entry is; `market` and `contracts` own the payload of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryKind(pub u16);

impl EntryKind {
    /// The genesis validator set (system entry; payload: [`ValidatorSet::encode`]).
    pub const VALIDATORS: EntryKind = EntryKind(1);
    /// Genesis parameters of the consortium (catalogue, fees), owned by `contracts`.
    pub const GENESIS_PARAMS: EntryKind = EntryKind(2);
    /// Credits allocated at genesis.
    pub const GENESIS_ALLOCATION: EntryKind = EntryKind(3);
    /// A new validator set with voting powers, in force from the next block (system entry,
    /// never in genesis; payload: [`ValidatorSet::encode_weighted`]).
    pub const VALIDATOR_SET: EntryKind = EntryKind(4);
    /// An offer or a bid.
    pub const ORDER: EntryKind = EntryKind(16);
    /// Cancellation of an order by its author.
    pub const CANCEL: EntryKind = EntryKind(17);
    /// A fill produced by a block's auction.
    pub const FILL: EntryKind = EntryKind(18);
    /// A lease created from a fill.
    pub const LEASE: EntryKind = EntryKind(32);
    /// A lease transition (termination, renewal, completion).
    pub const LEASE_TRANSITION: EntryKind = EntryKind(33);
    /// A settlement payment from escrow.
    pub const SETTLEMENT: EntryKind = EntryKind(34);
    /// A transfer of credits between accounts.
    pub const TRANSFER: EntryKind = EntryKind(35);
    /// A provider's maintenance window for one of its pools, or its end (owned by `contracts`).
    pub const MAINTENANCE: EntryKind = EntryKind(36);
    /// A validator's report of the leases it found down during one interval (owned by
    /// `contracts`).
    pub const PROBE_REPORT: EntryKind = EntryKind(37);
    /// A provider locking credits in its bond, or taking them back.
    pub const BOND: EntryKind = EntryKind(38);
    /// A service credit paid to a lease's buyer (system entry).
    pub const CREDIT: EntryKind = EntryKind(39);
    /// A credential grant (revocation ids and token hash, never the token).
    pub const CREDENTIAL_GRANT: EntryKind = EntryKind(48);
    /// A credential revocation.
    pub const REVOCATION: EntryKind = EntryKind(49);
    /// A governance proposal by a validator (owned by `contracts`).
    pub const GOV_PROPOSE: EntryKind = EntryKind(64);
    /// A validator's vote on a proposal.
    pub const GOV_VOTE: EntryKind = EntryKind(65);
    /// The withdrawal of an open proposal by its proposer.
    pub const GOV_WITHDRAW: EntryKind = EntryKind(66);
    /// How a proposal ended: enacted, expired, rejected or void (system entry).
    pub const GOV_OUTCOME: EntryKind = EntryKind(67);
    /// A key's rotation to a new key, signed by the old one.
    pub const KEY_ROTATION: EntryKind = EntryKind(68);

    /// A human name for the kinds this crate knows, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::VALIDATORS => "validators",
            Self::GENESIS_PARAMS => "genesis-params",
            Self::GENESIS_ALLOCATION => "genesis-allocation",
            Self::VALIDATOR_SET => "validator-set",
            Self::ORDER => "order",
            Self::CANCEL => "cancel",
            Self::FILL => "fill",
            Self::LEASE => "lease",
            Self::LEASE_TRANSITION => "lease-transition",
            Self::SETTLEMENT => "settlement",
            Self::TRANSFER => "transfer",
            Self::MAINTENANCE => "maintenance",
            Self::PROBE_REPORT => "probe-report",
            Self::BOND => "bond",
            Self::CREDIT => "credit",
            Self::CREDENTIAL_GRANT => "credential-grant",
            Self::REVOCATION => "revocation",
            Self::GOV_PROPOSE => "gov-propose",
            Self::GOV_VOTE => "gov-vote",
            Self::GOV_WITHDRAW => "gov-withdraw",
            Self::GOV_OUTCOME => "gov-outcome",
            Self::KEY_ROTATION => "key-rotation",
            _ => "other",
        }
    }
}

/// Who vouches for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    /// Derived by the state machine (fills, settlements, genesis records); covered by the
    /// block's commit certificate and checked by re-execution.
    System,
    /// Signed by `author` over [`Entry::signing_bytes`].
    Signed {
        /// The author's key.
        author: PublicKey,
        /// Strict ed25519 signature.
        signature: Signature,
    },
}

/// One ledger entry: a kind tag, canonically encoded payload, and its authorisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// What the payload is.
    pub kind: EntryKind,
    /// Who vouches for it.
    pub auth: Auth,
    /// The owner crate's canonical encoding.
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Entry {
    /// An entry vouched for by the state machine.
    pub fn system(kind: EntryKind, payload: Vec<u8>) -> Self {
        Self { kind, auth: Auth::System, payload }
    }

    /// An entry signed by `key` for the chain `chain_id`.
    pub fn signed(chain_id: &str, kind: EntryKind, payload: Vec<u8>, key: &SecretKey) -> Self {
        let author = key.public();
        let signature = key.sign(&Self::signing_bytes(chain_id, kind, &author, &payload));
        Self { kind, auth: Auth::Signed { author, signature }, payload }
    }

    /// The bytes an author signs: tag, chain id, kind, author key, payload.
    pub fn signing_bytes(
        chain_id: &str,
        kind: EntryKind,
        author: &PublicKey,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(payload.len() + 128);
        w.tag(domain::ENTRY_SIG)
            .short_bytes(chain_id.as_bytes())
            .u16(kind.0)
            .raw(&author.0)
            .bytes(payload);
        w.finish()
    }

    /// Checks the author's signature (strict rule); system entries pass.
    pub fn verify_signature(&self, chain_id: &str) -> Result<(), SignatureError> {
        match &self.auth {
            Auth::System => Ok(()),
            Auth::Signed { author, signature } => verify_strict(
                author,
                &Self::signing_bytes(chain_id, self.kind, author, &self.payload),
                signature,
            ),
        }
    }

    /// Canonical encoding; also the Merkle leaf data.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.payload.len() + 104);
        self.encode_into(&mut w);
        w.finish()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.u16(self.kind.0);
        match &self.auth {
            Auth::System => {
                w.u8(0);
            }
            Auth::Signed { author, signature } => {
                w.u8(1).raw(&author.0).raw(&signature.0);
            }
        }
        w.bytes(&self.payload);
    }

    /// Decodes exactly one entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let e = Self::read(&mut r)?;
        r.finish()?;
        Ok(e)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = EntryKind(r.u16("entry.kind")?);
        let at = r.position();
        let auth = match r.u8("entry.auth")? {
            0 => Auth::System,
            1 => Auth::Signed {
                author: PublicKey(r.array("entry.author")?),
                signature: Signature(r.array("entry.signature")?),
            },
            other => {
                return Err(r.invalid_at("entry.auth", at, format!("unknown tag {other}")));
            }
        };
        let payload = r.bytes("entry.payload", MAX_ENTRY_PAYLOAD)?.to_vec();
        Ok(Self { kind, auth, payload })
    }

    /// The Merkle leaf hash, blake3(0x00 ‖ encoding), computed without building the encoding.
    pub fn leaf_hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[0x00]);
        h.update(&self.kind.0.to_be_bytes());
        match &self.auth {
            Auth::System => {
                h.update(&[0]);
            }
            Auth::Signed { author, signature } => {
                h.update(&[1]);
                h.update(&author.0);
                h.update(&signature.0);
            }
        }
        h.update(&(self.payload.len() as u32).to_be_bytes());
        h.update(&self.payload);
        *h.finalize().as_bytes()
    }

    /// The entry's identifier: blake3 of its tagged canonical encoding (an order's id).
    pub fn id(&self) -> Hash {
        tagged_hash(domain::ENTRY_ID, &self.encode())
    }
}

/// A block header. Its hash chains the ledger and is what validators vote on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Header {
    /// Format version ([`HEADER_VERSION`]).
    pub version: u16,
    /// The consortium's chain id, fixed at genesis.
    pub chain_id: String,
    /// 0 for genesis, then one more per block.
    pub height: u64,
    /// Hash of the previous header; zero for genesis.
    #[serde(with = "hex_hash")]
    #[schema(schema_with = crate::schema::hash)]
    pub prev_hash: Hash,
    /// Block time in ms since the Unix epoch, from consensus; never decreases.
    pub timestamp_ms: u64,
    /// Number of entries in the ledger after this block.
    pub tree_size: u64,
    /// Merkle root (blake3, RFC 9162) over every entry of the ledger after this block.
    #[serde(with = "hex_hash")]
    #[schema(schema_with = crate::schema::hash)]
    pub merkle_root: Hash,
    /// Root of the contract state after this block, supplied by the state machine.
    #[serde(with = "hex_hash")]
    #[schema(schema_with = crate::schema::hash)]
    pub state_root: Hash,
    /// The validator that proposed the block.
    pub proposer: PublicKey,
}

/// Serde helper: a 32-byte hash as hex.
pub mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    /// Writes hex.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    /// Reads 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        crate::crypto::parse_hex::<32>(&String::deserialize(d)?, "hash")
            .map_err(serde::de::Error::custom)
    }
}

/// Checks that a chain id is 1..=64 bytes of `a-z 0-9 . _ -`.
pub fn validate_chain_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CHAIN_ID_LEN {
        return Err(format!("chain id must be 1 to {MAX_CHAIN_ID_LEN} bytes, got {}", id.len()));
    }
    if let Some(c) = id.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) {
        return Err(format!("chain id may hold only a-z, 0-9, '.', '_' and '-', found {c:?}"));
    }
    Ok(())
}

impl Header {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(200);
        self.encode_into(&mut w);
        w.finish()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.u16(self.version)
            .short_bytes(self.chain_id.as_bytes())
            .u64(self.height)
            .raw(&self.prev_hash)
            .u64(self.timestamp_ms)
            .u64(self.tree_size)
            .raw(&self.merkle_root)
            .raw(&self.state_root)
            .raw(&self.proposer.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let version = r.u16("header.version")?;
        if version != HEADER_VERSION {
            return Err(r.invalid_at(
                "header.version",
                at,
                format!("version {version} is not supported (this build reads {HEADER_VERSION})"),
            ));
        }
        let at = r.position();
        let chain_id = r.short_bytes("header.chain_id")?;
        let chain_id = std::str::from_utf8(chain_id)
            .ok()
            .filter(|s| validate_chain_id(s).is_ok())
            .ok_or_else(|| r.invalid_at("header.chain_id", at, "not a valid chain id".into()))?
            .to_owned();
        Ok(Self {
            version,
            chain_id,
            height: r.u64("header.height")?,
            prev_hash: r.array("header.prev_hash")?,
            timestamp_ms: r.u64("header.timestamp_ms")?,
            tree_size: r.u64("header.tree_size")?,
            merkle_root: r.array("header.merkle_root")?,
            state_root: r.array("header.state_root")?,
            proposer: PublicKey(r.array("header.proposer")?),
        })
    }

    /// The header hash: blake3 of the tagged canonical encoding.
    pub fn hash(&self) -> Hash {
        tagged_hash(domain::HEADER, &self.encode())
    }
}

/// The kind of a consensus vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteKind {
    /// First round of voting.
    Prevote = 1,
    /// Second round; a quorum of precommits decides a block.
    Precommit = 2,
}

/// The bytes a validator signs for a vote: tag, chain id, height, round, kind, and the value
/// voted for (the header hash), or nil.
pub fn vote_bytes(
    chain_id: &str,
    height: u64,
    round: u32,
    kind: VoteKind,
    value: Option<&Hash>,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(128);
    w.tag(domain::VOTE).short_bytes(chain_id.as_bytes()).u64(height).u32(round).u8(kind as u8);
    match value {
        None => w.u8(0),
        Some(h) => w.u8(1).raw(h),
    };
    w.finish()
}

/// The ordered validator set with each validator's voting power. The genesis set gives every
/// validator power 1; a later `validator-set` entry may give other powers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// Validator keys; a certificate names a validator by its index here.
    pub validators: Vec<PublicKey>,
    /// Voting power of each validator, in the same order (each at least 1).
    pub powers: Vec<u64>,
}

impl ValidatorSet {
    /// A set from distinct keys, each with voting power 1.
    pub fn new(validators: Vec<PublicKey>) -> Result<Self, String> {
        let powers = vec![1; validators.len()];
        Self::weighted(validators, powers)
    }

    /// A set from distinct keys and their voting powers: 1 to [`MAX_VALIDATORS`] validators,
    /// each with power at least 1, at most [`MAX_TOTAL_POWER`] in total.
    pub fn weighted(validators: Vec<PublicKey>, powers: Vec<u64>) -> Result<Self, String> {
        if validators.is_empty() || validators.len() > MAX_VALIDATORS {
            return Err(format!(
                "a validator set needs 1 to {MAX_VALIDATORS} validators, got {}",
                validators.len()
            ));
        }
        if powers.len() != validators.len() {
            return Err(format!(
                "{} validators but {} voting powers",
                validators.len(),
                powers.len()
            ));
        }
        let mut sorted = validators.clone();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("validator {} appears twice", w[0]));
        }
        if let Some(i) = powers.iter().position(|p| *p == 0) {
            return Err(format!("validator {} has voting power 0", validators[i]));
        }
        let total = powers.iter().try_fold(0u64, |t, p| t.checked_add(*p));
        if total.is_none_or(|t| t > MAX_TOTAL_POWER) {
            return Err(format!("the voting powers add up to more than {MAX_TOTAL_POWER}"));
        }
        Ok(Self { validators, powers })
    }

    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.powers.iter().sum()
    }

    /// Voting power a certificate needs: more than two thirds of the total.
    pub fn quorum(&self) -> u64 {
        self.total_power() * 2 / 3 + 1
    }

    /// Index of `key` in the set.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators.iter().position(|v| v == key)
    }

    /// Payload of the genesis `validators` entry: count, then keys (every power must be 1).
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.powers.iter().all(|p| *p == 1), "genesis powers are 1");
        let mut w = Writer::new();
        w.u16(self.validators.len() as u16);
        for v in &self.validators {
            w.raw(&v.0);
        }
        w.finish()
    }

    /// Decodes and validates a `validators` payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let n = r.u16("validators.count")? as usize;
        let mut keys = Vec::with_capacity(n.min(MAX_VALIDATORS));
        for _ in 0..n {
            keys.push(PublicKey(r.array("validators.key")?));
        }
        r.finish()?;
        Self::new(keys).map_err(|reason| DecodeError::Invalid {
            field: "validators",
            at: 0,
            reason,
        })
    }

    /// Payload of a `validator-set` entry: count, then each key and its voting power.
    pub fn encode_weighted(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 + 40 * self.validators.len());
        w.u16(self.validators.len() as u16);
        for (v, p) in self.validators.iter().zip(&self.powers) {
            w.raw(&v.0).u64(*p);
        }
        w.finish()
    }

    /// Decodes and validates a `validator-set` payload.
    pub fn decode_weighted(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let n = r.u16("validator_set.count")? as usize;
        let mut keys = Vec::with_capacity(n.min(MAX_VALIDATORS));
        let mut powers = Vec::with_capacity(n.min(MAX_VALIDATORS));
        for _ in 0..n {
            keys.push(PublicKey(r.array("validator_set.key")?));
            powers.push(r.u64("validator_set.power")?);
        }
        r.finish()?;
        Self::weighted(keys, powers).map_err(|reason| DecodeError::Invalid {
            field: "validator_set",
            at: 0,
            reason,
        })
    }
}

/// One precommit signature in a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommitSig {
    /// Index of the validator in the set in force at the block's height.
    pub validator: u16,
    /// Its precommit signature over [`vote_bytes`].
    pub signature: Signature,
}

/// The consensus engine's commit certificate: a quorum of precommits for the header hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Certificate {
    /// The round in which the block was decided.
    pub round: u32,
    /// Precommit signatures, by strictly increasing validator index.
    pub signatures: Vec<CommitSig>,
}

/// Why a certificate does not decide a block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Genesis carries no certificate.
    #[error("the genesis block must carry an empty certificate")]
    GenesisHasCertificate,
    /// Indices are not strictly increasing (a duplicate or out of order).
    #[error("signature {position} repeats or reorders validator {validator}")]
    NotSorted {
        /// Position in the certificate.
        position: usize,
        /// The validator index found there.
        validator: u16,
    },
    /// An index beyond the validator set.
    #[error("signature {position} names validator {validator}, but the set has {set_size}")]
    UnknownValidator {
        /// Position in the certificate.
        position: usize,
        /// The validator index found there.
        validator: u16,
        /// Size of the set.
        set_size: usize,
    },
    /// Less voting power than a quorum.
    #[error("signatures hold voting power {got}, a quorum of {needed} is needed")]
    NoQuorum {
        /// Voting power of the signers.
        got: u64,
        /// Voting power needed: more than two thirds of the set's.
        needed: u64,
    },
    /// A signature does not verify.
    #[error("signature {position} (validator {validator}) is invalid: {why}")]
    BadSignature {
        /// Position in the certificate.
        position: usize,
        /// The validator index.
        validator: u16,
        /// Why it failed.
        why: SignatureError,
    },
}

impl Certificate {
    /// Checks the certificate decides `header_hash` at `height` for `validators`, with batch
    /// verification under the consensus engine's rule.
    pub fn verify(
        &self,
        chain_id: &str,
        height: u64,
        header_hash: &Hash,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        if height == 0 {
            return if self.signatures.is_empty() && self.round == 0 {
                Ok(())
            } else {
                Err(CertificateError::GenesisHasCertificate)
            };
        }
        self.check_quorum(validators)?;
        let msg = vote_bytes(chain_id, height, self.round, VoteKind::Precommit, Some(header_hash));
        let mut batch = VoteBatch::new();
        for s in &self.signatures {
            batch.push(validators.validators[usize::from(s.validator)], msg.clone(), s.signature);
        }
        batch.verify().map_err(|(position, why)| CertificateError::BadSignature {
            position,
            validator: self.signatures[position].validator,
            why,
        })
    }

    /// The checks of [`Certificate::verify`] short of the signatures: sorted, distinct, known
    /// validators holding a quorum of `validators`' power. For a caller whose signatures were
    /// verified elsewhere (a consensus engine verifies each vote as it arrives).
    pub fn check_quorum(&self, validators: &ValidatorSet) -> Result<(), CertificateError> {
        let mut prev: Option<u16> = None;
        for (position, s) in self.signatures.iter().enumerate() {
            if prev.is_some_and(|p| p >= s.validator) {
                return Err(CertificateError::NotSorted { position, validator: s.validator });
            }
            prev = Some(s.validator);
            if usize::from(s.validator) >= validators.validators.len() {
                return Err(CertificateError::UnknownValidator {
                    position,
                    validator: s.validator,
                    set_size: validators.validators.len(),
                });
            }
        }
        let got: u64 =
            self.signatures.iter().map(|s| validators.powers[usize::from(s.validator)]).sum();
        if got < validators.quorum() {
            return Err(CertificateError::NoQuorum { got, needed: validators.quorum() });
        }
        Ok(())
    }

    fn encode_into(&self, w: &mut Writer) {
        w.u32(self.round).u16(self.signatures.len() as u16);
        for s in &self.signatures {
            w.u16(s.validator).raw(&s.signature.0);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let round = r.u32("certificate.round")?;
        let n = r.u16("certificate.count")? as usize;
        if n > MAX_VALIDATORS {
            return Err(r.invalid_at(
                "certificate.count",
                r.position() - 2,
                format!("{n} signatures exceed the limit {MAX_VALIDATORS}"),
            ));
        }
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push(CommitSig {
                validator: r.u16("certificate.validator")?,
                signature: Signature(r.array("certificate.signature")?),
            });
        }
        Ok(Self { round, signatures })
    }
}

/// A block: header, entries, and the certificate that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header (what the hash covers).
    pub header: Header,
    /// The block's entries, in ledger order.
    pub entries: Vec<Entry>,
    /// Stored beside the header, outside its hash.
    pub certificate: Certificate,
}

impl Block {
    /// Canonical encoding: header, certificate, entry count, then each entry behind its length.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|e| e.payload.len() + 110).sum();
        let mut w = Writer::with_capacity(size + 300);
        self.header.encode_into(&mut w);
        self.certificate.encode_into(&mut w);
        w.u32(self.entries.len() as u32);
        for e in &self.entries {
            let bytes = e.encode();
            w.bytes(&bytes);
        }
        w.finish()
    }

    /// Decodes exactly one block.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let (header, certificate) = read_header_and_certificate(&mut r)?;
        let at = r.position();
        let n = r.u32("block.entry_count")? as usize;
        if n > MAX_BLOCK_ENTRIES {
            return Err(r.invalid_at(
                "block.entry_count",
                at,
                format!("{n} entries exceed the limit {MAX_BLOCK_ENTRIES}"),
            ));
        }
        // Capacity bounded by what the input could hold, not by the claimed count.
        let mut entries = Vec::with_capacity(n.min(r.remaining() / 7));
        for _ in 0..n {
            let at = r.position();
            let bytes = r.bytes("block.entry", MAX_ENTRY_PAYLOAD + 256)?;
            let e = Entry::decode(bytes).map_err(|e| shift(e, at + 4))?;
            entries.push(e);
        }
        r.finish()?;
        Ok(Self { header, entries, certificate })
    }

    /// The header of an encoded block, read without the rest (which may still be malformed):
    /// a block's id before the whole of it is decoded and checked.
    pub fn decode_header(bytes: &[u8]) -> Result<Header, DecodeError> {
        Header::read(&mut Reader::new(bytes))
    }

    /// Encoding of header and certificate alone (how the store keeps them).
    pub fn encode_head(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(300);
        self.header.encode_into(&mut w);
        self.certificate.encode_into(&mut w);
        w.finish()
    }
}

/// Decodes header and certificate, as written by [`Block::encode_head`].
pub fn decode_head(bytes: &[u8]) -> Result<(Header, Certificate), DecodeError> {
    let mut r = Reader::new(bytes);
    let out = read_header_and_certificate(&mut r)?;
    r.finish()?;
    Ok(out)
}

fn read_header_and_certificate(r: &mut Reader<'_>) -> Result<(Header, Certificate), DecodeError> {
    let header = Header::read(r)?;
    let certificate = Certificate::read(r)?;
    Ok((header, certificate))
}

/// Moves a nested decode error's offset into the outer buffer's frame.
fn shift(e: DecodeError, by: usize) -> DecodeError {
    match e {
        DecodeError::Truncated { field, at, needed, available } => {
            DecodeError::Truncated { field, at: at + by, needed, available }
        }
        DecodeError::Invalid { field, at, reason } => {
            DecodeError::Invalid { field, at: at + by, reason }
        }
        DecodeError::Trailing { at, count } => DecodeError::Trailing { at: at + by, count },
    }
}
