//! Signing and verification of the engine's messages, with our domain-separated preimages.
//!
//! Votes are signed over the ledger's vote bytes (so precommits form the ledger's certificate),
//! proposals over [`super::context::Proposal::sign_bytes`]. Verification follows the engine's
//! ZIP-215 rule (ed25519-consensus), the same rule the ledger applies to certificates.

use async_trait::async_trait;
use bytes::Bytes;
use malachitebft_app_channel::app::types::core::{
    SignedMessage, ValidatorProof, VoteExtensionScope,
};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};
use surplus_ledger::encoding::Writer;

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
}

impl ChainVerifier {
    /// A verifier for `chain_id`.
    pub fn new(chain_id: &str) -> Self {
        Self { chain_id: chain_id.to_owned() }
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
        result(key.verify(&proof.preimage(), &proof.signature).is_ok())
    }
}

/// Signs the engine's messages with the node key.
pub struct ChainSigner {
    key: PrivateKey,
    verifier: ChainVerifier,
}

impl ChainSigner {
    /// A signer for `chain_id` from the node key's 32-byte seed.
    pub fn new(chain_id: &str, seed: [u8; 32]) -> Self {
        Self { key: PrivateKey::from(seed), verifier: ChainVerifier::new(chain_id) }
    }
}

#[async_trait]
impl Signer<Ctx> for ChainSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<Ctx, Vote>, Error> {
        let signature = self.key.sign(&vote.sign_bytes(&self.verifier.chain_id));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<Ctx, Proposal>, Error> {
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
