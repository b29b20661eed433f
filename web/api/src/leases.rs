//! Leases, the credential challenge, and the gateway.

use serde::{Deserialize, Serialize};
use surplus_contracts::credential::Scope;
use surplus_contracts::Lease;
use surplus_ledger::encoding::Writer;
use surplus_ledger::Hash;
use utoipa::ToSchema;

/// Domain tag at the start of the bytes a buyer signs.
pub const CHALLENGE_TAG: &[u8] = b"surplus/credential-challenge/v1";
/// The bytes a buyer signs (strict ed25519, with the lease's buyer key) to prove control of the
/// key when fetching the lease's credential:
///
/// ```text
/// "surplus/credential-challenge/v1"        31 bytes, no length
/// len(chain_id) as u8 || chain_id          the chain id from /api/v1/status
/// lease id                                 32 bytes
/// nonce                                    32 bytes, the "challenge" of the API (hex there)
/// expires_ms                               u64 big-endian
/// ```
///
/// The tag keeps the signature from meaning anything else (an entry, a vote); the chain id,
/// lease and expiry bind it to one use.
pub fn challenge_bytes(chain_id: &str, lease: &Hash, nonce: &[u8; 32], expires_ms: u64) -> Vec<u8> {
    let mut w = Writer::with_capacity(CHALLENGE_TAG.len() + chain_id.len() + 1 + 72);
    w.raw(CHALLENGE_TAG).short_bytes(chain_id.as_bytes()).raw(lease).raw(nonce).u64(expires_ms);
    w.finish()
}

fn read() -> String {
    "read".into()
}

/// Leases, in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseList {
    /// The leases.
    pub leases: Vec<Lease>,
    /// Whether more matched than `limit`.
    pub truncated: bool,
}

/// One lease and what its provisioning hooks reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    /// The lease.
    pub lease: Lease,
    /// Hook outcomes (start, end), if this node provisioned the lease.
    pub provisioning: Option<serde_json::Value>,
}

/// `POST /api/v1/leases/{id}/ssh-certificate`: a lease's credential and an SSH public key to
/// certify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshCertificateRequest {
    /// The lease's credential (base64), as the credential route returned it; it must grant
    /// `write`.
    pub token: String,
    /// The SSH public key to certify, one OpenSSH line (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
}

/// An OpenSSH user certificate for a lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SshCertificate {
    /// The certificate, one OpenSSH line: save it as `KEY-cert.pub` beside the private key.
    pub certificate: String,
    /// The one principal it is valid for: the lease's account on the provider's machines.
    pub principal: String,
    /// Its serial number (what a revocation names).
    pub serial: u64,
    /// Valid from, ms since the epoch.
    pub valid_after_ms: u64,
    /// Valid until: the lease's end, ms since the epoch.
    pub valid_before_ms: u64,
    /// The provider's certificate authority (its `TrustedUserCAKeys` line).
    pub ca_public_key: String,
    /// The lease's access details (host, port, user), if the provider's hook gave them.
    pub access: Option<serde_json::Value>,
}

/// A challenge to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChallengeView {
    /// The nonce, 32 bytes in hex.
    pub challenge: String,
    /// The challenge is refused from this time on, ms since the epoch (signed too).
    pub expires_ms: u64,
    /// The lease (signed too).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// The chain id (signed too).
    pub chain_id: String,
}

/// The answer to a challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// The nonce as issued, hex.
    pub challenge: String,
    /// The buyer's signature over the challenge bytes (docs/api.md), hex.
    pub signature: String,
}

/// The lease's token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialToken {
    /// The token, base64url with padding (what `surplus credential verify` reads).
    pub token: String,
}

/// A request at the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayRequest {
    /// The token, base64 (url-safe or standard, padded or not).
    pub token: String,
    /// The operation asked for (default `read`).
    #[serde(default = "read")]
    pub operation: String,
    /// The lease (hex); without it, the lease the token names, which must then be one of this
    /// node's (the token is read under this node's key).
    #[serde(default)]
    pub lease: Option<String>,
}

/// What an accepted token grants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewayAnswer {
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// Access details from the start hook (none if this node did not provision the lease).
    pub access: Option<serde_json::Value>,
    /// The token's scope.
    pub scope: Scope,
}
