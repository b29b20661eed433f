//! Entries as the API shows them: kind name, author, signature, payload hex, and the payload
//! decoded to JSON by the crate that owns its kind (contracts, market, ledger).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use surplus_contracts::{decode_fill, decode_revocation, Allocation, Params, Settlement, Tx};
use surplus_ledger::{Auth, Entry, EntryKind, PublicKey, Signature, ValidatorSet};
use surplus_market::{SignedCancel, SignedOrder};

/// One ledger entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    /// Global index in the ledger.
    pub index: u64,
    /// The entry id (hex).
    #[serde(with = "surplus_ledger::hex_hash")]
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
        EntryKind::TRANSFER | EntryKind::LEASE_TRANSITION | EntryKind::CREDENTIAL_GRANT => {
            serde_json::to_value(Tx::decode(entry.kind, p).ok()?)
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
