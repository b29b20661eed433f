//! Signing and verification of the engine's messages, with our domain-separated preimages.
//!
//! Votes are signed over the ledger's vote bytes (so precommits form the ledger's certificate),
//! proposals over [`super::context::Proposal::sign_bytes`]. Verification follows the engine's
//! ZIP-215 rule (ed25519-consensus), the same rule the ledger applies to certificates.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use malachitebft_app_channel::app::types::core::{
    SignedMessage, ValidatorProof, VoteExtensionScope,
};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};
use surplus_ledger::encoding::Writer;

use super::chain::Stored;
use super::context::{round_u32, Ctx, Proposal, Vote};

/// Domain tag of vote extensions (unused: we never extend votes, but the engine asks).
const EXTENSION_TAG: &[u8] = b"surplus/vote-extension/v1";

fn extension_bytes(chain_id: &str, scope: &VoteExtensionScope<Ctx>, ext: &Bytes) -> Vec<u8> {
    let mut w = Writer::new();
    w.tag(EXTENSION_TAG)
        .short_bytes(chain_id.as_bytes())
        .u64(scope.height.0)
        .u32(round_u32(scope.round))
        .raw(&scope.value_id.0)
        .raw(&scope.validator_address.0 .0)
        .bytes(ext);
    w.finish()
}

/// Verifies the engine's messages for one chain.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    chain_id: String,
    proven: Option<ProvenPeers>,
}

impl ChainVerifier {
    /// A verifier for `chain_id`.
    pub fn new(chain_id: &str) -> Self {
        Self { chain_id: chain_id.to_owned(), proven: None }
    }

    /// A verifier that records in `proven` each validator's proof of a peer id.
    pub fn recording(chain_id: &str, proven: ProvenPeers) -> Self {
        Self { chain_id: chain_id.to_owned(), proven: Some(proven) }
    }
}

/// Most proven peer ids kept; the oldest goes first.
const MAX_PROVEN: usize = 64;

/// Consensus peer ids that validators proved their own with a validator proof (the peer id
/// signed by the validator key, which the engine's network sends on each new connection).
///
/// A validator's consensus peer id is normally derived from its key, and its peers take
/// proposal parts only from those ids. A validator that rebuilds its engine's network
/// ([`super::Running::reconnect`]) comes back under a fresh peer id, so that no peer holds an
/// old connection to it (docs/reliability.md, Partition); the proof is how its peers learn that
/// the new id is that validator's. Only validators' proofs are kept, at most [`MAX_PROVEN`].
#[derive(Clone, Debug, Default)]
pub struct ProvenPeers(Arc<Mutex<Proven>>);

#[derive(Debug, Default)]
struct Proven {
    validators: HashSet<[u8; 32]>,
    by_peer: HashMap<Vec<u8>, [u8; 32]>,
    order: VecDeque<Vec<u8>>,
}

impl ProvenPeers {
    /// An empty record that keeps proofs of these validators' keys only.
    pub fn new(validators: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let p = Proven { validators: validators.into_iter().collect(), ..Proven::default() };
        Self(Arc::new(Mutex::new(p)))
    }

    /// Keeps proofs of these validators' keys only from now on (the set changed): a removed
    /// validator's proven peer ids are forgotten.
    pub fn set_validators(&self, validators: impl IntoIterator<Item = [u8; 32]>) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.validators = validators.into_iter().collect();
        let Proven { validators, by_peer, order } = &mut *p;
        by_peer.retain(|_, key| validators.contains(key));
        order.retain(|peer| by_peer.contains_key(peer));
    }

    fn record(&self, peer_id: &[u8], key: [u8; 32]) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !p.validators.contains(&key) || p.by_peer.get(peer_id) == Some(&key) {
            return;
        }
        if p.by_peer.insert(peer_id.to_vec(), key).is_none() {
            p.order.push_back(peer_id.to_vec());
        }
        while p.order.len() > MAX_PROVEN {
            if let Some(old) = p.order.pop_front() {
                p.by_peer.remove(&old);
            }
        }
    }

    /// The validator key that proved `peer_id` (its bytes) its own, if one did.
    pub fn key_of(&self, peer_id: &[u8]) -> Option<[u8; 32]> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).by_peer.get(peer_id).copied()
    }
}

fn result(ok: bool) -> Result<VerificationResult, Error> {
    Ok(VerificationResult::from_bool(ok))
}

#[async_trait]
impl Verifier<Ctx> for ChainVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        result(public_key.verify(&vote.sign_bytes(&self.chain_id), signature).is_ok())
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        result(public_key.verify(&proposal.sign_bytes(&self.chain_id), signature).is_ok())
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<Ctx>,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        let bytes = extension_bytes(&self.chain_id, scope, extension);
        result(public_key.verify(&bytes, signature).is_ok())
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<Ctx>,
    ) -> Result<VerificationResult, Error> {
        let Ok(key) = proof.decoded_public_key() else {
            return result(false);
        };
        let ok = key.verify(&proof.preimage(), &proof.signature).is_ok();
        if let (true, Some(proven), Ok(bytes)) =
            (ok, &self.proven, <[u8; 32]>::try_from(proof.public_key.as_slice()))
        {
            proven.record(&proof.peer_id, bytes);
        }
        result(ok)
    }
}

/// Signs the engine's messages with the node key.
pub struct ChainSigner {
    key: PrivateKey,
    verifier: ChainVerifier,
    /// If set, nothing is signed at a height before the block under it is on disk.
    stored: Option<Stored>,
}

impl ChainSigner {
    /// A signer for `chain_id` from the node key's 32-byte seed.
    pub fn new(chain_id: &str, seed: [u8; 32]) -> Self {
        Self { key: PrivateKey::from(seed), verifier: ChainVerifier::new(chain_id), stored: None }
    }

    /// Signs a vote or proposal at height `h` only once block `h - 1` is on disk. The node
    /// stores a decided block while the next height starts (it builds and checks the next
    /// block meanwhile); this is where that overlap ends, so a validator that crashes has
    /// stored every block it signed anything on top of.
    pub fn after_stored(mut self, stored: Stored) -> Self {
        self.stored = Some(stored);
        self
    }

    async fn wait_stored(&self, height: u64) -> Result<(), Error> {
        match &self.stored {
            Some(s) => s.reached(height.saturating_sub(1)).await.map_err(Error::from_source),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Signer<Ctx> for ChainSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<Ctx, Vote>, Error> {
        self.wait_stored(vote.height.0).await?;
        let signature = self.key.sign(&vote.sign_bytes(&self.verifier.chain_id));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<Ctx, Proposal>, Error> {
        self.wait_stored(proposal.height.0).await?;
        let signature = self.key.sign(&proposal.sign_bytes(&self.verifier.chain_id));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<Ctx>,
        extension: Bytes,
    ) -> Result<SignedMessage<Ctx, Bytes>, Error> {
        let signature =
            self.key.sign(&extension_bytes(&self.verifier.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, signature))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<Ctx>, Error> {
        let preimage = ValidatorProof::<Ctx>::signing_bytes(&public_key, &peer_id);
        Ok(ValidatorProof::new(public_key, peer_id, self.key.sign(&preimage)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proven_peers_keep_only_validators_and_at_most_their_bound() {
        let p = ProvenPeers::new([[1; 32], [2; 32]]);
        p.record(b"peer-a", [1; 32]);
        p.record(b"peer-x", [9; 32]);
        assert_eq!(p.key_of(b"peer-a"), Some([1; 32]));
        assert_eq!(p.key_of(b"peer-x"), None, "not a validator's key");
        for i in 0..MAX_PROVEN + 10 {
            p.record(format!("peer-{i}").as_bytes(), [2; 32]);
        }
        assert_eq!(p.key_of(b"peer-a"), None, "the oldest proof went first");
        assert_eq!(p.key_of(format!("peer-{}", MAX_PROVEN + 9).as_bytes()), Some([2; 32]));
        assert_eq!(p.0.lock().unwrap().by_peer.len(), MAX_PROVEN);
    }

    #[test]
    fn proven_peers_follow_a_validator_set_change() {
        let p = ProvenPeers::new([[1; 32], [2; 32]]);
        p.record(b"peer-a", [1; 32]);
        p.record(b"peer-b", [2; 32]);
        p.record(b"peer-c", [3; 32]);
        assert_eq!(p.key_of(b"peer-c"), None, "3 is not a validator yet");
        // 1 leaves, 3 joins: 1's proven peer is forgotten, 3's proofs are kept from now on.
        p.set_validators([[2; 32], [3; 32]]);
        assert_eq!(p.key_of(b"peer-a"), None);
        assert_eq!(p.key_of(b"peer-b"), Some([2; 32]));
        p.record(b"peer-c", [3; 32]);
        assert_eq!(p.key_of(b"peer-c"), Some([3; 32]));
        p.record(b"peer-a2", [1; 32]);
        assert_eq!(p.key_of(b"peer-a2"), None, "1 is no longer a validator");
        let inner = p.0.lock().unwrap();
        assert_eq!((inner.by_peer.len(), inner.order.len()), (2, 2));
    }

    #[tokio::test]
    async fn a_validator_proof_is_recorded_only_when_its_signature_holds() {
        let seed = [3; 32];
        let key = surplus_ledger::SecretKey::from_seed(seed).public().0;
        let proven = ProvenPeers::new([key]);
        let verifier = ChainVerifier::recording("chain", proven.clone());
        let signer = ChainSigner::new("chain", seed);
        let good = signer.sign_validator_proof(key.to_vec(), b"peer-1".to_vec()).await.unwrap();
        let mut bad = signer.sign_validator_proof(key.to_vec(), b"peer-2".to_vec()).await.unwrap();
        bad.peer_id = b"peer-3".to_vec();
        assert!(verifier.verify_validator_proof(&good).await.unwrap().is_valid());
        assert!(!verifier.verify_validator_proof(&bad).await.unwrap().is_valid());
        assert_eq!(proven.key_of(b"peer-1"), Some(key));
        assert_eq!(proven.key_of(b"peer-3"), None);
    }

    /// The engine checks votes under ZIP-215, as the audit does (`surplus_ledger::verify_vote`,
    /// shown equal to the rule of ledger-format §2 in `ledger/tests/it/strict.rs`): for keys and
    /// `R`s with torsion components of orders 2, 4 and 8 and non-canonical `s`, the engine's
    /// verdict on a precommit is the audit's.
    #[tokio::test]
    async fn the_engine_accepts_exactly_the_votes_the_audit_accepts() {
        use super::super::context::{Address, Height, ValueId};
        use malachitebft_app_channel::app::types::core::{NilOrVal, Round, VoteType};
        let verifier = ChainVerifier::new("chain");
        let (mut accepted, mut refused) = (0, 0);
        for seed in 0..3u8 {
            for key_torsion in [0usize, 4, 2, 1] {
                for r_torsion in [0usize, 4, 2, 1] {
                    for stretch_s in [false, true] {
                        let (a, r) = ([seed + 1; 32], [seed + 60; 32]);
                        let voter =
                            surplus_ledger::testutil::owner_signature(a, r, key_torsion, 0, b"").0;
                        let vote = Vote {
                            height: Height(7),
                            round: Round::new(1),
                            value: NilOrVal::Val(ValueId([seed; 32])),
                            vote_type: VoteType::Precommit,
                            validator: Address(voter),
                        };
                        let msg = vote.sign_bytes("chain");
                        let (key, mut sig) = surplus_ledger::testutil::owner_signature(
                            a,
                            r,
                            key_torsion,
                            r_torsion,
                            &msg,
                        );
                        if stretch_s {
                            // s + ℓ: the same point equation, a non-canonical s.
                            let ell: [u8; 32] = [
                                0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0, 0, 0, 0x10,
                            ];
                            let mut carry = 0u16;
                            for (i, l) in ell.iter().enumerate() {
                                let v = u16::from(sig.0[32 + i]) + u16::from(*l) + carry;
                                sig.0[32 + i] = v as u8;
                                carry = v >> 8;
                            }
                        }
                        let audit = surplus_ledger::verify_vote(&key, &msg, &sig).is_ok();
                        let engine = match PublicKey::from_bytes(key.0) {
                            Ok(pk) => verifier
                                .verify_signed_vote(&vote, &Signature::from_bytes(sig.0), &pk)
                                .await
                                .unwrap()
                                .is_valid(),
                            Err(_) => false,
                        };
                        assert_eq!(
                            engine, audit,
                            "seed {seed}, key torsion {key_torsion}, R torsion {r_torsion}, s + ℓ {stretch_s}"
                        );
                        if audit {
                            accepted += 1;
                        } else {
                            refused += 1;
                        }
                    }
                }
            }
        }
        // Every torsioned vote with a canonical s is accepted (the cofactored equation); every
        // non-canonical s is refused.
        assert_eq!((accepted, refused), (48, 48));
    }
}
