//! Checkpoints: a node's signed statement of the ledger it holds, gossiped so that nodes and
//! auditors can notice two histories.

use serde::{Deserialize, Serialize};

use crate::block::hex_hash;
use crate::crypto::{verify_strict, PublicKey, SecretKey, Signature, SignatureError};
use crate::encoding::{domain, DecodeError, Reader, Writer};
use crate::merkle::{verify_consistency, Blake3, ConsistencyProof, ProofError};
use crate::Hash;

/// What a checkpoint states: at `height`, whose header hashes to `header_hash`, the ledger
/// holds `tree_size` entries with Merkle root `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// The chain.
    pub chain_id: String,
    /// Block height.
    pub height: u64,
    /// Entries in the ledger after that block.
    pub tree_size: u64,
    /// Merkle root over those entries.
    #[serde(with = "hex_hash")]
    #[schema(schema_with = crate::schema::hash)]
    pub root: Hash,
    /// Hash of the header at `height`.
    #[serde(with = "hex_hash")]
    #[schema(schema_with = crate::schema::hash)]
    pub header_hash: Hash,
}

/// A checkpoint with its signer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedCheckpoint {
    /// The statement.
    pub checkpoint: Checkpoint,
    /// The node key that signed it.
    pub signer: PublicKey,
    /// Strict ed25519 signature over [`Checkpoint::signing_bytes`].
    pub signature: Signature,
}

/// Two checkpoints that cannot both describe one history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The checkpoints are for different chains; they are not comparable.
    #[error("different chains: {0} and {1}")]
    DifferentChains(String, String),
    /// Same height, different header.
    #[error("two different headers at height {height}")]
    HeaderFork {
        /// The height.
        height: u64,
    },
    /// Same tree size, different root.
    #[error("two different Merkle roots for tree size {tree_size}")]
    RootFork {
        /// The size.
        tree_size: u64,
    },
    /// The consistency proof between the two trees fails: the larger does not extend the smaller.
    #[error("the ledger of size {new_size} does not extend the one of size {old_size}: {why}")]
    NotAnExtension {
        /// Smaller size.
        old_size: u64,
        /// Larger size.
        new_size: u64,
        /// What the proof check said.
        why: ProofError,
    },
}

impl Checkpoint {
    /// The bytes a signer signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        w.tag(domain::CHECKPOINT);
        self.encode_into(&mut w);
        w.finish()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.short_bytes(self.chain_id.as_bytes())
            .u64(self.height)
            .u64(self.tree_size)
            .raw(&self.root)
            .raw(&self.header_hash);
    }

    /// Signs the checkpoint with a node key.
    pub fn sign(self, key: &SecretKey) -> SignedCheckpoint {
        let signature = key.sign(&self.signing_bytes());
        SignedCheckpoint { checkpoint: self, signer: key.public(), signature }
    }

    /// Compares two checkpoints of one chain. With sizes that differ, `proof` must be a
    /// consistency proof from the smaller tree to the larger; without one, only equal heights
    /// and sizes can be compared, and `Ok` means "no conflict seen".
    pub fn check_consistent(
        &self,
        other: &Checkpoint,
        proof: Option<&ConsistencyProof>,
    ) -> Result<(), Conflict> {
        if self.chain_id != other.chain_id {
            return Err(Conflict::DifferentChains(self.chain_id.clone(), other.chain_id.clone()));
        }
        if self.height == other.height && self.header_hash != other.header_hash {
            return Err(Conflict::HeaderFork { height: self.height });
        }
        if self.tree_size == other.tree_size && self.root != other.root {
            return Err(Conflict::RootFork { tree_size: self.tree_size });
        }
        let (old, new) =
            if self.tree_size <= other.tree_size { (self, other) } else { (other, self) };
        if let Some(p) = proof {
            let wrong_sizes = p.old_size != old.tree_size || p.new_size != new.tree_size;
            let result = if wrong_sizes {
                Err(ProofError::BadSizes { old_size: p.old_size, new_size: p.new_size })
            } else {
                verify_consistency::<Blake3>(&old.root, &new.root, p)
            };
            result.map_err(|why| Conflict::NotAnExtension {
                old_size: old.tree_size,
                new_size: new.tree_size,
                why,
            })?;
        }
        Ok(())
    }
}

impl SignedCheckpoint {
    /// Checks the signature (strict rule).
    pub fn verify(&self) -> Result<(), SignatureError> {
        verify_strict(&self.signer, &self.checkpoint.signing_bytes(), &self.signature)
    }

    /// Canonical encoding (for gossip).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        self.checkpoint.encode_into(&mut w);
        w.raw(&self.signer.0).raw(&self.signature.0);
        w.finish()
    }

    /// Decodes a gossiped checkpoint (the signature is not checked here).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let at = r.position();
        let chain_id = std::str::from_utf8(r.short_bytes("checkpoint.chain_id")?)
            .ok()
            .filter(|s| crate::block::validate_chain_id(s).is_ok())
            .ok_or_else(|| r.invalid_at("checkpoint.chain_id", at, "not a valid chain id".into()))?
            .to_owned();
        let checkpoint = Checkpoint {
            chain_id,
            height: r.u64("checkpoint.height")?,
            tree_size: r.u64("checkpoint.tree_size")?,
            root: r.array("checkpoint.root")?,
            header_hash: r.array("checkpoint.header_hash")?,
        };
        let signer = PublicKey(r.array("checkpoint.signer")?);
        let signature = Signature(r.array("checkpoint.signature")?);
        r.finish()?;
        Ok(Self { checkpoint, signer, signature })
    }
}
