//! `POST /api/v1/leases/{id}/challenge` and `POST /api/v1/leases/{id}/credential`: the buyer
//! fetches the lease's token from the provider's node by signing a challenge with the buyer key.
//!
//! 1. `POST …/challenge` answers a fresh random 32-byte nonce (hex, `challenge`) bound to the
//!    lease, valid for [`crate::CHALLENGE_VALIDITY_MS`], usable once.
//! 2. The buyer signs [`crate::challenge_bytes`]`(chain_id, lease, nonce, expires_ms)` — the tag
//!    `surplus/credential-challenge/v1`, the length-prefixed chain id, the lease id, the nonce and
//!    `expires_ms` as u64 big-endian — with the buyer key (strict ed25519).
//! 3. `POST …/credential` with `{"challenge", "signature"}` answers the token (base64url) if the
//!    challenge is live and unused and the signature verifies under the lease's buyer key.
//!
//! A lease that ended is refused at both steps with `lease_ended` (403): its grant was revoked.

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use surplus_contracts::Code;
use surplus_contracts::Lease;
use surplus_ledger::{parse_hex, verify_strict, Hash, Signature};

use super::{now_ms, parse_hash, Ctx};
use crate::challenge::{challenge_bytes, CHALLENGE_VALIDITY_MS};
use crate::error::{ApiError, ApiResult};
pub use surplus_api::{ChallengeView, CredentialRequest, CredentialToken};

fn lease_of(ctx: &Ctx, id: &Hash) -> ApiResult<Lease> {
    ctx.node.state().lease(id).cloned().or_else(|| ctx.node.ended_lease(id)).ok_or_else(|| {
        ApiError::new(Code::UnknownLease, format!("no lease {} on this chain", hex::encode(id)))
    })
}

/// A lease that ended has no credential to fetch (its grant was revoked when it ended).
fn ended(lease: &Lease) -> ApiResult<()> {
    match surplus_contracts::credential::how_ended(lease.status) {
        None => Ok(()),
        Some(how) => Err(ApiError::new(
            Code::LeaseEnded,
            format!(
                "lease {} {how}: its credential was revoked and is no longer issued",
                hex::encode(lease.id)
            ),
        )),
    }
}

fn not_provider(ctx: &Ctx, lease: &Lease) -> Option<ApiError> {
    let me = ctx.node.status().public_key;
    (ctx.node.state().current_key(&lease.fill.provider) != me).then(|| {
        ApiError::new(
            Code::NotProvider,
            format!(
                "this node ({me}) is not the lease's provider ({}); fetch the credential from \
                 the provider's node",
                lease.fill.provider
            ),
        )
    })
}

/// Issues a challenge for the lease (only on the provider's node, which holds the token).
pub(crate) async fn challenge(
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_hash(&id, "lease id")?;
    let lease = lease_of(&ctx, &id)?;
    ended(&lease)?;
    if let Some(e) = not_provider(&ctx, &lease) {
        return Err(e);
    }
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce)
        .map_err(|e| ApiError::Internal(format!("no randomness for a challenge: {e}")))?;
    let now = now_ms();
    let expires_ms = now.saturating_add(CHALLENGE_VALIDITY_MS);
    ctx.challenges.issue(nonce, id, expires_ms, now);
    Ok(HttpResponse::Ok().json(ChallengeView {
        challenge: hex::encode(nonce),
        expires_ms,
        lease: id,
        chain_id: ctx.node.state().chain_id.clone(),
    }))
}

/// Answers the token to the buyer who signed a live challenge.
pub(crate) async fn credential(
    ctx: web::Data<Ctx>,
    id: web::Path<String>,
    body: web::Json<CredentialRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_hash(&id, "lease id")?;
    let nonce = parse_hex::<32>(&body.challenge, "challenge")
        .map_err(|e| ApiError::new(Code::BadChallenge, e))?;
    let signature: Signature =
        body.signature.parse().map_err(|e: String| ApiError::new(Code::BadSignature, e))?;
    let lease = lease_of(&ctx, &id)?;
    // Taken out whatever follows: a challenge is answered once, right or wrong.
    let issued = ctx.challenges.take(&nonce).ok_or_else(|| {
        ApiError::new(
            Code::ChallengeUnknown,
            "this challenge was not issued by this node, was already used, or was forgotten; \
             ask for a new one with POST /api/v1/leases/{id}/challenge",
        )
    })?;
    if issued.lease != id {
        return Err(ApiError::new(
            Code::ChallengeWrongLease,
            format!("the challenge was issued for lease {}", hex::encode(issued.lease)),
        ));
    }
    let now = now_ms();
    if now >= issued.expires_ms {
        return Err(ApiError::new(
            Code::ChallengeExpired,
            format!(
                "the challenge expired at {} ms (now {now} ms); ask for a new one",
                issued.expires_ms
            ),
        ));
    }
    let chain_id = ctx.node.state().chain_id.clone();
    let message = challenge_bytes(&chain_id, &id, &nonce, issued.expires_ms);
    verify_strict(&lease.fill.buyer, &message, &signature).map_err(|e| {
        ApiError::new(
            Code::NotBuyer,
            format!(
                "the signature does not verify under the lease's buyer key {} ({e}); only the \
                 buyer may fetch the credential",
                lease.fill.buyer
            ),
        )
    })?;
    ended(&lease)?;
    if let Some(e) = not_provider(&ctx, &lease) {
        return Err(e);
    }
    let token = ctx.node.credential(&id).ok_or_else(|| {
        ApiError::new(
            Code::NotMinted,
            "this node is the lease's provider but has not minted its credential yet; retry \
             after the next block",
        )
    })?;
    let token = base64::engine::general_purpose::URL_SAFE.encode(token);
    Ok(HttpResponse::Ok().json(CredentialToken { token }))
}
