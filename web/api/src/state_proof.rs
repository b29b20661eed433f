//! State proofs: an account's or a lease's item of the contract state (or its absence), with
//! the sparse Merkle proof of it against the state root of a block header, that header's commit
//! certificate, and everything else needed to check it offline (`docs/api.md`, "State proofs").
//!
//! The trust rule: a [`StateProof`] carries no trust of its own. Whoever verifies it supplies the
//! chain id and the genesis validator set from a source they trust (the consortium's genesis
//! file); the certificate must hold a quorum of valid precommits of those validators for the
//! header's hash, and the proof must lead from the item's key hash (and value hash) to the
//! header's `state_root`. The node that served the document is not trusted at all.

use serde::{Deserialize, Serialize};
use surplus_contracts::root::{self, Kind};
use surplus_contracts::{Account, Lease, State};
use surplus_ledger::{parse_hex, Certificate, Hash, Header, PublicKey, ValidatorSet};
use surplus_state::Proof;
use utoipa::ToSchema;

/// Format name written in every state proof.
pub const STATE_PROOF_FORMAT: &str = "surplus-state-proof/v1";

/// An item of the contract state (`docs/contracts.md` §5), or its absence, proven against the
/// state root of a certified block header. Bytes and hashes are lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateProof {
    /// Always `surplus-state-proof/v1`.
    pub format: String,
    /// The chain id (equal to the header's).
    pub chain_id: String,
    /// The item's kind by name: `account` or `lease`.
    pub kind: String,
    /// The item's natural key, hex: the account's public key, or the lease id (32 bytes).
    pub key: String,
    /// `blake3(tag("surplus/state/v2/key") ‖ kind ‖ key)`, hex (checked by the verifier).
    pub key_hash: String,
    /// The item's value (its encoding, `docs/contracts.md` §5), hex; `null`: the item is proven
    /// absent (an account never funded, a lease id never made or a lease that has ended).
    pub value: Option<String>,
    /// The value decoded: `{"balance", "seq"}` for an account, the lease's JSON (as
    /// `GET /api/v1/leases/{id}` shows it) for a lease; `null` when `value` is. The verifier
    /// re-encodes it and requires exactly `value`'s bytes.
    pub decoded: Option<serde_json::Value>,
    /// The sparse Merkle proof, hex of its encoding (`docs/contracts.md` §5, "Proofs").
    pub proof: String,
    /// The header whose `state_root` the proof is against.
    pub header: Header,
    /// The header's hash, hex (checked by the verifier).
    pub header_hash: String,
    /// The header's commit certificate: precommits of a quorum of the genesis validators.
    pub certificate: Certificate,
}

/// The item a state proof is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// An account, by key.
    Account(PublicKey),
    /// A lease, by id.
    Lease(Hash),
}

impl Subject {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Subject::Account(_) => Kind::Account,
            Subject::Lease(_) => Kind::Lease,
        }
    }
    /// Its natural key.
    pub fn key(&self) -> [u8; 32] {
        match self {
            Subject::Account(k) => k.0,
            Subject::Lease(id) => *id,
        }
    }
}

/// What a verified state proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProofCheck {
    /// What was proven: the account or lease as of the header, `None` inside if absent.
    pub proven: Proven,
    /// The header's height.
    pub height: u64,
    /// The header's hash.
    pub header_hash: Hash,
    /// The state root the proof is against.
    pub state_root: Hash,
    /// Precommits in the certificate (all valid).
    pub signers: usize,
    /// Size of the validator set they were checked against.
    pub validators: usize,
}

/// The proven item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proven {
    /// An account: its balance and sequence number, or `None` if it is not in the state.
    Account(PublicKey, Option<Account>),
    /// A lease: the lease, or `None` if no live lease has this id.
    Lease(Hash, Option<Box<Lease>>),
}

impl StateProof {
    /// The proof about `subject` in `state`, against `header` (whose `state_root` must be the
    /// state's root and `height` its height) and its `certificate`. The document is checked
    /// against the state's own root before it is returned; `Err` says why it could not be made
    /// (the node must not answer then).
    pub fn build(
        state: &State,
        header: Header,
        certificate: Certificate,
        subject: Subject,
    ) -> Result<Self, String> {
        let root = state.root();
        if header.state_root != root || header.height != state.height() {
            return Err(format!(
                "the header at height {} has state root {}, the state at height {} has {}",
                header.height,
                hex::encode(header.state_root),
                state.height(),
                hex::encode(root)
            ));
        }
        let kind = subject.kind();
        let key = subject.key();
        let key_hash = root::key_hash(kind, &key);
        let (item, decoded) = match subject {
            Subject::Account(k) => match state.tree().get(&key_hash) {
                None => (None, None),
                Some(_) => {
                    let a = state.account(&k);
                    let json = serde_json::to_value(&a).map_err(|e| e.to_string())?;
                    (Some(root::account_item(&k, &a)), Some(json))
                }
            },
            Subject::Lease(id) => match state.lease(&id) {
                None => (None, None),
                Some(l) => {
                    let json = serde_json::to_value(l).map_err(|e| e.to_string())?;
                    (Some(root::lease_item(l)), Some(json))
                }
            },
        };
        let value_hash = item.as_ref().map(|i| i.value_hash());
        let proof = state.tree().prove(&key_hash);
        proof.verify(&root, &key_hash, value_hash.as_ref()).map_err(|e| {
            format!("the state's own proof for {} {} fails: {e}", kind.name(), hex::encode(key))
        })?;
        Ok(Self {
            format: STATE_PROOF_FORMAT.into(),
            chain_id: header.chain_id.clone(),
            kind: kind.name().into(),
            key: hex::encode(key),
            key_hash: hex::encode(key_hash),
            value: item.map(|i| hex::encode(i.value)),
            decoded,
            proof: hex::encode(proof.encode()),
            header_hash: hex::encode(header.hash()),
            header,
            certificate,
        })
    }

    /// Verifies the document for the chain `chain_id` whose genesis validators are
    /// `validators` (both from a source the verifier trusts): format, kind and key; the key
    /// hash and header hash as written; the certificate (a quorum of valid precommits for the
    /// header hash at its height; a genesis header, which has none, is refused); the proof
    /// against the header's `state_root` for the key hash and `blake3(value)`, or for absence;
    /// and that `decoded` re-encodes to exactly `value`. `Err` says what failed.
    pub fn verify(
        &self,
        chain_id: &str,
        validators: &ValidatorSet,
    ) -> Result<StateProofCheck, String> {
        if self.format != STATE_PROOF_FORMAT {
            return Err(format!(
                "unknown format {:?}, expected {STATE_PROOF_FORMAT:?}",
                self.format
            ));
        }
        if self.chain_id != chain_id {
            return Err(format!(
                "the proof is for chain {:?}, the trusted genesis is chain {chain_id:?}",
                self.chain_id
            ));
        }
        let h = &self.header;
        if h.chain_id != self.chain_id {
            return Err(format!(
                "the header is for chain {:?}, the document names {:?}",
                h.chain_id, self.chain_id
            ));
        }
        let kind = match self.kind.as_str() {
            "account" => Kind::Account,
            "lease" => Kind::Lease,
            other => {
                return Err(format!(
                    "kind {other:?} is not one this verifier knows (account, lease)"
                ))
            }
        };
        let key: [u8; 32] = parse_hex(&self.key, "key")?;
        let key_hash = root::key_hash(kind, &key);
        if parse_hex::<32>(&self.key_hash, "key_hash")? != key_hash {
            return Err(format!(
                "key_hash is {}, but the {} key {} hashes to {}",
                self.key_hash,
                kind.name(),
                self.key,
                hex::encode(key_hash)
            ));
        }
        let header_hash = h.hash();
        if parse_hex::<32>(&self.header_hash, "header_hash")? != header_hash {
            return Err(format!(
                "header_hash is {}, but the header hashes to {}",
                self.header_hash,
                hex::encode(header_hash)
            ));
        }
        if h.height == 0 {
            return Err("the header is the genesis header, which no certificate decides".into());
        }
        self.certificate
            .verify(&h.chain_id, h.height, &header_hash, validators)
            .map_err(|e| format!("the certificate does not decide the header: {e}"))?;
        let proof_bytes = hex::decode(&self.proof).map_err(|e| format!("proof is not hex: {e}"))?;
        let proof =
            Proof::decode(&proof_bytes).map_err(|e| format!("proof does not decode: {e}"))?;
        let value = self
            .value
            .as_deref()
            .map(hex::decode)
            .transpose()
            .map_err(|e| format!("value is not hex: {e}"))?;
        let value_hash = value.as_deref().map(surplus_state::value_hash);
        proof.verify(&h.state_root, &key_hash, value_hash.as_ref()).map_err(|e| {
            let what = if value.is_some() { "inclusion" } else { "exclusion" };
            format!("the {what} proof fails against the header's state root: {e}")
        })?;
        let proven = match (&value, &self.decoded) {
            (None, None) => match kind {
                Kind::Account => Proven::Account(PublicKey(key), None),
                _ => Proven::Lease(key, None),
            },
            (None, Some(_)) => {
                return Err("decoded is given for an absent item (value is null)".into())
            }
            (Some(_), None) => return Err("decoded is missing (value is not null)".into()),
            (Some(bytes), Some(json)) => {
                let encoded = match kind {
                    Kind::Account => {
                        let a: Account = serde_json::from_value(json.clone())
                            .map_err(|e| format!("decoded is not an account: {e}"))?;
                        let item = root::account_item(&PublicKey(key), &a);
                        (item.value, Proven::Account(PublicKey(key), Some(a)))
                    }
                    _ => {
                        let l: Lease = serde_json::from_value(json.clone())
                            .map_err(|e| format!("decoded is not a lease: {e}"))?;
                        if l.id != key {
                            return Err(format!(
                                "decoded is lease {}, the key is {}",
                                hex::encode(l.id),
                                self.key
                            ));
                        }
                        let item = root::lease_item(&l);
                        (item.value, Proven::Lease(key, Some(Box::new(l))))
                    }
                };
                if &encoded.0 != bytes {
                    return Err("decoded does not encode to value: they disagree".into());
                }
                encoded.1
            }
        };
        Ok(StateProofCheck {
            proven,
            height: h.height,
            header_hash,
            state_root: h.state_root,
            signers: self.certificate.signatures.len(),
            validators: validators.validators.len(),
        })
    }
}
