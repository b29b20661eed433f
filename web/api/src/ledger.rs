//! Blocks, entries and submissions as the API shows them: an entry's kind name, author,
//! signature, payload hex, and the payload decoded to JSON by the crate that owns its kind.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use surplus_contracts::{decode_fill, decode_revocation, Allocation, Code, Params, Settlement, Tx};
use surplus_ledger::{Auth, Entry, EntryKind, Hash, Header, PublicKey, Signature, ValidatorSet};
use surplus_market::{SignedCancel, SignedOrder};
use utoipa::ToSchema;

/// A block's header in brief.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockSummary {
    /// Height.
    pub height: u64,
    /// Header hash (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub hash: surplus_ledger::Hash,
    /// Block time, ms since the epoch.
    pub time_ms: u64,
    /// Entries in the block.
    pub entries: usize,
    /// The validator that proposed it.
    pub proposer: PublicKey,
    /// Entries in the ledger after it.
    pub tree_size: u64,
}

/// One signature of a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommitView {
    /// Index of the validator in the genesis set.
    pub validator: u16,
    /// Its key (none if the node does not know the set).
    pub signer: Option<PublicKey>,
    /// Its precommit signature.
    pub signature: Signature,
}

/// A block's commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateView {
    /// The round that decided the block.
    pub round: u32,
    /// The precommit signatures.
    pub signatures: Vec<CommitView>,
}

/// A whole block as served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// Header hash (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub hash: surplus_ledger::Hash,
    /// The header.
    pub header: Header,
    /// The commit certificate (none when the node serves only its recent window).
    pub certificate: Option<CertificateView>,
    /// The entries, decoded (none when the node serves only its recent window).
    pub entries: Option<Vec<EntryView>>,
    /// Entries in the block.
    pub entry_count: usize,
    /// When this node committed it, ms (recent blocks only).
    pub committed_ms: Option<u64>,
    /// Ids of the bids that filled in it (recent blocks only).
    pub filled_bids: Option<Vec<String>>,
}

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// Global index in the ledger.
    pub index: u64,
    /// The entry id (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: surplus_ledger::Hash,
    /// Kind name (`order`, `fill`, `transfer`, ...; `other` for kinds this node does not know).
    pub kind: String,
    /// Numeric kind.
    pub kind_code: u16,
    /// Author of a signed entry (none for system entries).
    pub author: Option<PublicKey>,
    /// Its signature.
    pub signature: Option<Signature>,
    /// The payload, hex.
    pub payload: String,
    /// The payload decoded, when it decodes.
    pub decoded: Option<Value>,
}

impl EntryView {
    /// The view of `entry` at global index `index`.
    pub fn new(index: u64, entry: &Entry) -> Self {
        let (author, signature) = match entry.auth {
            Auth::System => (None, None),
            Auth::Signed { author, signature } => (Some(author), Some(signature)),
        };
        Self {
            index,
            id: entry.id(),
            kind: entry.kind.name().to_owned(),
            kind_code: entry.kind.0,
            author,
            signature,
            payload: hex::encode(&entry.payload),
            decoded: decode(entry),
        }
    }
}

/// The body: `{"entry": "<hex of Entry::encode()>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The entry's canonical encoding, hex.
    pub entry: String,
}

/// The answer (202): the entry's id, which is also an order's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The entry's id.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
}

/// Most entries one `POST /api/v1/submissions` takes.
pub const MAX_BATCH_ENTRIES: usize = 1_000;

/// The body of `POST /api/v1/submissions`: `{"entries": ["<hex of Entry::encode()>", ...]}`,
/// 1 to [`MAX_BATCH_ENTRIES`] of them (and within the node's body size limit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitMany {
    /// The entries' canonical encodings, hex, each as `entry` of `POST /api/v1/entries`.
    pub entries: Vec<String>,
}

/// The answer of `POST /api/v1/submissions` (200): one result per entry, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmittedMany {
    /// What became of each entry.
    pub results: Vec<BatchResult>,
}

/// One entry of a batch: its id once admitted and durable (as `POST /api/v1/entries` answers
/// 202), or the error that entry alone would have had (with its id when it decoded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// The entry's id; absent for an entry that is not hex or does not decode.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hash")]
    #[schema(value_type = Option<String>)]
    pub id: Option<Hash>,
    /// Why the entry was refused; absent when it was admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

mod opt_hash {
    use serde::{Deserialize, Deserializer, Serializer};
    use surplus_ledger::Hash;
    pub fn serialize<S: Serializer>(v: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(h) => s.serialize_str(&hex::encode(h)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| surplus_ledger::parse_hex::<32>(&s, "id").map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The answer of `GET /api/v1/submissions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubmissionView {
    /// The entry's id.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// Its fate.
    #[serde(flatten)]
    pub submission: Submission,
}

/// One committed entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryAt {
    /// Global index in the ledger.
    pub index: u64,
    /// Height of its block.
    pub height: u64,
    /// The entry id (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// Kind name.
    pub kind: String,
    /// The entry's canonical encoding, hex (what `POST /api/v1/entries` takes).
    pub entry: String,
    /// The entry in parts, its payload decoded.
    pub view: EntryView,
    /// The payload decoded, when it decodes (as `view.decoded`).
    pub decoded: Option<serde_json::Value>,
}

/// What became of a submitted entry (`GET /api/v1/submissions/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Submission {
    /// Waiting in the node's mempool for a block.
    Pending {
        /// A transaction ahead of its account's next sequence number, waiting for the ones
        /// before it.
        waits_for_seq: bool,
    },
    /// In the committed block at `height`.
    Committed {
        /// The block's height.
        height: u64,
    },
    /// Left the mempool without being committed; it will not be.
    Dropped {
        /// Why, as a refusal code.
        code: Code,
        /// What happened, for a person.
        message: String,
    },
}

/// The payload of `entry` as JSON, if its kind is known and it decodes.
pub fn decode(entry: &Entry) -> Option<Value> {
    let p = entry.payload.as_slice();
    let v = match entry.kind {
        EntryKind::ORDER => serde_json::to_value(SignedOrder::from_entry(entry).ok()?.order),
        EntryKind::CANCEL => serde_json::to_value(SignedCancel::from_entry(entry).ok()?.cancel),
        EntryKind::FILL => {
            let (fill, height) = decode_fill(p).ok()?;
            Ok(json!({"fill": fill, "height": height}))
        }
        EntryKind::TRANSFER
        | EntryKind::LEASE_TRANSITION
        | EntryKind::CREDENTIAL_GRANT
        | EntryKind::MAINTENANCE
        | EntryKind::BOND => serde_json::to_value(Tx::decode(entry.kind, p).ok()?),
        EntryKind::PROBE_REPORT => {
            serde_json::to_value(surplus_contracts::supervision::Report::decode(p).ok()?)
        }
        EntryKind::CREDIT => {
            serde_json::to_value(surplus_contracts::supervision::Credit::decode(p).ok()?)
        }
        EntryKind::SETTLEMENT => serde_json::to_value(Settlement::decode(p).ok()?),
        EntryKind::REVOCATION => {
            let (lease, ids) = decode_revocation(p).ok()?;
            Ok(json!({"lease": hex::encode(lease), "revocation_ids": ids}))
        }
        EntryKind::GENESIS_ALLOCATION => serde_json::to_value(Allocation::decode(p).ok()?),
        EntryKind::GENESIS_PARAMS => serde_json::to_value(Params::decode(p).ok()?),
        EntryKind::VALIDATORS => serde_json::to_value(ValidatorSet::decode(p).ok()?),
        _ => return None,
    };
    v.ok()
}
