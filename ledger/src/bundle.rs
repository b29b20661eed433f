//! A self-contained inclusion proof: an entry, its proof, the block header it is against, and
//! the checkpoint (signed by a node, when a key was given), verifiable offline.

use serde::{Deserialize, Serialize};

use crate::block::{Certificate, Entry, Header, ValidatorSet};
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::crypto::{PublicKey, Signature};
use crate::merkle::{verify_inclusion, Blake3, Hasher, InclusionProof};
use crate::{parse_hex, Hash};

/// Format name written in every bundle.
pub const FORMAT: &str = "surplus-inclusion-proof/v1";

/// An inclusion proof with everything needed to check it offline. Hashes and bytes are hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofBundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// Global index of the entry.
    pub entry_index: u64,
    /// Height of the block that holds the entry.
    pub entry_height: u64,
    /// The entry's canonical encoding, hex.
    pub entry: String,
    /// Tree size the proof is against.
    pub tree_size: u64,
    /// Audit path, leaf to root, hex.
    pub path: Vec<String>,
    /// The checkpoint the proof is against.
    pub checkpoint: Checkpoint,
    /// Node key that signed the checkpoint, if any.
    pub signer: Option<PublicKey>,
    /// Its signature, if any.
    pub signature: Option<Signature>,
    /// Header of the checkpoint's block (its hash is the checkpoint's `header_hash`).
    pub header: Header,
    /// Commit certificate of that block.
    pub certificate: Certificate,
}

/// What a verified bundle establishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleCheck {
    /// The entry (decoded).
    pub entry: Entry,
    /// Whether a node signature over the checkpoint was present and valid.
    pub signed_by: Option<PublicKey>,
    /// Whether the certificate was checked against a validator set, and passed.
    pub certificate_checked: bool,
}

impl ProofBundle {
    /// Assembles a bundle.
    pub fn new(
        entry_height: u64,
        entry: &Entry,
        proof: &InclusionProof,
        checkpoint: Checkpoint,
        signed: Option<&SignedCheckpoint>,
        header: Header,
        certificate: Certificate,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            entry_index: proof.index,
            entry_height,
            entry: hex::encode(entry.encode()),
            tree_size: proof.tree_size,
            path: proof.path.iter().map(hex::encode).collect(),
            checkpoint,
            signer: signed.map(|s| s.signer),
            signature: signed.map(|s| s.signature),
            header,
            certificate,
        }
    }

    /// Verifies the bundle: entry bytes, proof against the checkpoint's root, header against
    /// the checkpoint, the node signature if present (and from `expected_signer` if given), and
    /// the certificate if `validators` is given.
    pub fn verify(
        &self,
        expected_signer: Option<&PublicKey>,
        validators: Option<&ValidatorSet>,
    ) -> Result<BundleCheck, String> {
        if self.format != FORMAT {
            return Err(format!("unknown format {:?}, expected {FORMAT:?}", self.format));
        }
        let bytes = hex::decode(&self.entry).map_err(|e| format!("entry is not hex: {e}"))?;
        let entry = Entry::decode(&bytes).map_err(|e| format!("entry does not decode: {e}"))?;
        let path = self
            .path
            .iter()
            .map(|p| parse_hex::<32>(p, "proof hash"))
            .collect::<Result<Vec<Hash>, _>>()?;
        let proof = InclusionProof { index: self.entry_index, tree_size: self.tree_size, path };
        let cp = &self.checkpoint;
        if cp.tree_size != self.tree_size {
            return Err(format!(
                "the proof is for tree size {}, the checkpoint for {}",
                self.tree_size, cp.tree_size
            ));
        }
        verify_inclusion::<Blake3>(&Blake3::leaf(&bytes), &proof, &cp.root)
            .map_err(|e| format!("inclusion proof fails against the checkpoint root: {e}"))?;
        let h = &self.header;
        if h.hash() != cp.header_hash
            || h.merkle_root != cp.root
            || h.tree_size != cp.tree_size
            || h.height != cp.height
            || h.chain_id != cp.chain_id
        {
            return Err("the header does not match the checkpoint".into());
        }
        let signed_by = match (self.signer, self.signature) {
            (Some(signer), Some(signature)) => {
                let s = SignedCheckpoint { checkpoint: cp.clone(), signer, signature };
                s.verify().map_err(|e| format!("checkpoint signature: {e}"))?;
                Some(signer)
            }
            (None, None) => None,
            _ => return Err("signer and signature must come together".into()),
        };
        if let Some(want) = expected_signer {
            if signed_by.as_ref() != Some(want) {
                return Err(format!("the checkpoint is not signed by {want}"));
            }
        }
        if let Some(v) = validators {
            self.certificate
                .verify(&h.chain_id, h.height, &cp.header_hash, v)
                .map_err(|e| format!("certificate: {e}"))?;
        }
        Ok(BundleCheck { entry, signed_by, certificate_checked: validators.is_some() })
    }
}
