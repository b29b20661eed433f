//! Scoped access credentials: Biscuit tokens rooted in the provider's key.
//!
//! A lease's token carries, in its authority block (signed with the provider's ed25519 key):
//! `lease`, `market`, `slots`, `buyer`, `provider`, `valid_from`, `valid_until`, one `right` per
//! allowed operation, and a check that the request's time lies in the lease's window and that
//! the request names this lease. The buyer narrows it offline by appending blocks of checks
//! (fewer operations, an earlier expiry). A gateway verifies the signature chain against the
//! provider's key, refuses revoked ids, and authorizes a request (lease, operation, time).
//! Only the token's hash and revocation ids go on the ledger.

use biscuit_auth::{Algorithm, AuthorizerBuilder, Biscuit, BlockBuilder, KeyPair, PrivateKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use surplus_ledger::{Hash, PublicKey, SecretKey};

use crate::state::{Lease, LeaseStatus, State};
use crate::tx::RevocationId;
use crate::Code;

/// Operations a lease's token grants unless the provider mints fewer.
pub const OPERATIONS: [&str; 3] = ["read", "write", "manage"];

/// A minted token with what the ledger records of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The token (give it to the buyer only).
    pub token: Vec<u8>,
    /// blake3 of the token.
    pub token_hash: Hash,
    /// Its revocation ids (one per block; revoking the first revokes every attenuation).
    pub revocation_ids: Vec<RevocationId>,
}

/// What a request asks of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The lease the request is for.
    pub lease: Hash,
    /// The operation, such as `read`.
    pub operation: String,
    /// The time of the request, ms since the epoch.
    pub now_ms: u64,
}

/// What a verified token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scope {
    /// The lease.
    pub lease: String,
    /// The market.
    pub market: String,
    /// Slots.
    pub slots: i64,
    /// The buyer's key (hex).
    pub buyer: String,
    /// The provider's key (hex).
    pub provider: String,
    /// Start of validity, ms.
    pub valid_from: i64,
    /// End of validity (exclusive), ms.
    pub valid_until: i64,
    /// Operations the authority block grants (attenuation blocks may narrow them).
    pub rights: Vec<String>,
    /// Number of blocks (1 = as minted; more = attenuated).
    pub blocks: usize,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a Biscuit token.
    #[error("not a valid token: {0}")]
    Malformed(String),
    /// A signature in the token does not verify under the provider's key: forged, tampered
    /// with, or issued by someone else.
    #[error("the token's signatures do not verify under the provider's key (forged or tampered)")]
    Forged,
    /// One of its revocation ids is revoked on the ledger.
    #[error("the token has been revoked")]
    Revoked,
    /// The lease's window has not started.
    #[error("the lease starts at {valid_from} ms, the request is at {now_ms} ms")]
    NotYetValid {
        /// Start.
        valid_from: i64,
        /// Request time.
        now_ms: u64,
    },
    /// The lease's window has ended.
    #[error("the lease ended at {valid_until} ms, the request is at {now_ms} ms")]
    Expired {
        /// End.
        valid_until: i64,
        /// Request time.
        now_ms: u64,
    },
    /// The token is for another lease.
    #[error("the token is for lease {token_lease}, not {requested}")]
    WrongLease {
        /// The token's lease.
        token_lease: String,
        /// The requested lease.
        requested: String,
    },
    /// A check refused the request: an operation outside the token's scope, or the time past an
    /// attenuated expiry.
    #[error("refused by the token's checks: {0}")]
    NotAllowed(String),
    /// The chain has no such lease.
    #[error("no lease {0} on this chain")]
    UnknownLease(String),
    /// The lease has ended (completed or terminated): its credential grants nothing.
    #[error("the lease {0}; its credential no longer grants access")]
    LeaseEnded(&'static str),
}

impl Refusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> Code {
        match self {
            Refusal::Malformed(_) => Code::TokenMalformed,
            Refusal::Forged => Code::TokenForged,
            Refusal::Revoked => Code::TokenRevoked,
            Refusal::NotYetValid { .. } => Code::TokenNotYetValid,
            Refusal::Expired { .. } => Code::TokenExpired,
            Refusal::WrongLease { .. } => Code::TokenWrongLease,
            Refusal::NotAllowed(_) => Code::OperationNotAllowed,
            Refusal::UnknownLease(_) => Code::UnknownLease,
            Refusal::LeaseEnded(_) => Code::LeaseEnded,
        }
    }
}

/// How a lease with `status` ended, for a refusal (`None` while it is active).
pub fn how_ended(status: LeaseStatus) -> Option<&'static str> {
    match status {
        LeaseStatus::Active => None,
        LeaseStatus::Completed => Some("ran to its end"),
        LeaseStatus::TerminatedByBuyer => Some("was terminated by its buyer"),
        LeaseStatus::TerminatedByProvider => Some("was terminated by its provider"),
        LeaseStatus::EndedByNotice => Some("ended at the time of its provider's notice"),
    }
}

/// Whether `token` grants `request` on the committed `state`: the lease is live (an ended lease
/// has left the state, so it is unknown here: a node that keeps the lease history says it
/// ended, with [`how_ended`]), and the token verifies under its provider's key against the state's revocations (see
/// [`verify`]). This is the whole rule a provider's gateway applies.
pub fn authorize(state: &State, token: &[u8], request: &Request) -> Result<Scope, Refusal> {
    let lease = state
        .lease(&request.lease)
        .ok_or_else(|| Refusal::UnknownLease(hex::encode(request.lease)))?;
    if let Some(how) = how_ended(lease.status) {
        return Err(Refusal::LeaseEnded(how));
    }
    // Minted by the provider's key of the time: after a rotation its current key mints, and
    // the tokens of the old one stay valid (docs/contracts.md §6).
    let current = state.current_key(&lease.fill.provider);
    let revoked = |id: &[u8]| state.is_revoked(id);
    match verify(token, &current, request, &revoked) {
        Err(Refusal::Forged | Refusal::Malformed(_)) if current != lease.fill.provider => {
            verify(token, &lease.fill.provider, request, &revoked)
        }
        other => other,
    }
}

/// Errors minting or attenuating.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The token library failed.
    #[error("token: {0}")]
    Token(String),
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
}

fn token_err(e: biscuit_auth::error::Token) -> CredentialError {
    CredentialError::Token(e.to_string())
}

fn biscuit_key(key: &PublicKey) -> Result<biscuit_auth::PublicKey, Refusal> {
    biscuit_auth::PublicKey::from_bytes(&key.0, Algorithm::Ed25519)
        .map_err(|e| Refusal::Malformed(format!("provider key: {e}")))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn check_op(op: &str) -> Result<(), CredentialError> {
    if op.is_empty()
        || op.len() > 32
        || !op.chars().all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
    {
        return Err(CredentialError::Invalid(format!(
            "operation {op:?} must be 1 to 32 of a-z, '-', '_'"
        )));
    }
    Ok(())
}

/// Mints the token of `lease`, rooted in the provider's key, granting `operations`.
pub fn mint<R: RngCore + CryptoRng>(
    lease: &Lease,
    provider: &SecretKey,
    operations: &[&str],
    rng: &mut R,
) -> Result<Credential, CredentialError> {
    mint_by(lease, provider, &lease.fill.provider, operations, rng)
}

/// [`mint`] by `provider`, which must be the lease's provider key or `current`, the key a
/// rotation passed it to (the caller reads `current` from the state: `State::current_key`).
pub fn mint_by<R: RngCore + CryptoRng>(
    lease: &Lease,
    provider: &SecretKey,
    current: &PublicKey,
    operations: &[&str],
    rng: &mut R,
) -> Result<Credential, CredentialError> {
    if provider.public() != lease.fill.provider && provider.public() != *current {
        return Err(CredentialError::Invalid(
            "only the lease's provider can mint its credential".into(),
        ));
    }
    let mut code = format!(
        "lease(\"{lease}\");\nmarket(\"{market}\");\nslots({slots});\nbuyer(\"{buyer}\");\nprovider(\"{provider}\");\n\
         valid_from({from});\nvalid_until({until});\n",
        lease = hex::encode(lease.id),
        market = lease.fill.market,
        slots = lease.fill.slots,
        buyer = lease.fill.buyer,
        provider = lease.fill.provider,
        from = ms(lease.fill.start_ms),
        until = ms(lease.fill.end_ms),
    );
    for op in operations {
        check_op(op)?;
        code.push_str(&format!("right(\"{op}\");\n"));
    }
    code.push_str(&format!(
        "check if time_ms($t), $t >= {from}, $t < {until};\ncheck if requested_lease(\"{lease}\");\n",
        from = ms(lease.fill.start_ms),
        until = ms(lease.fill.end_ms),
        lease = hex::encode(lease.id),
    ));
    let private = PrivateKey::from_bytes(&provider.seed(), Algorithm::Ed25519)
        .map_err(|e| CredentialError::Token(e.to_string()))?;
    let root = KeyPair::from(&private);
    let token = Biscuit::builder()
        .code(&code)
        .map_err(token_err)?
        .build_with_rng(&root, Default::default(), rng)
        .map_err(token_err)?;
    finish(&token)
}

fn finish(token: &Biscuit) -> Result<Credential, CredentialError> {
    let bytes = token.to_vec().map_err(token_err)?;
    Ok(Credential {
        token_hash: *blake3::hash(&bytes).as_bytes(),
        revocation_ids: token.revocation_identifiers().into_iter().map(RevocationId).collect(),
        token: bytes,
    })
}

/// How to narrow a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restriction {
    /// Allow only these operations.
    pub operations: Option<Vec<String>>,
    /// Refuse requests at or after this time, ms.
    pub until_ms: Option<u64>,
}

/// Narrows a token offline (any holder can): appends a block of checks, signed with a fresh
/// key from `rng`.
pub fn attenuate<R: RngCore + CryptoRng>(
    token: &[u8],
    provider: &PublicKey,
    restriction: &Restriction,
    rng: &mut R,
) -> Result<Credential, CredentialError> {
    let key = biscuit_key(provider).map_err(|e| CredentialError::Invalid(e.to_string()))?;
    let biscuit = Biscuit::from(token, key).map_err(token_err)?;
    let mut code = String::new();
    if let Some(ops) = &restriction.operations {
        if ops.is_empty() {
            return Err(CredentialError::Invalid("at least one operation must remain".into()));
        }
        let mut alternatives = Vec::new();
        for op in ops {
            check_op(op)?;
            alternatives.push(format!("operation(\"{op}\")"));
        }
        code.push_str(&format!("check if {};\n", alternatives.join(" or ")));
    }
    if let Some(until) = restriction.until_ms {
        code.push_str(&format!("check if time_ms($t), $t < {};\n", ms(until)));
    }
    if code.is_empty() {
        return Err(CredentialError::Invalid(
            "nothing to restrict: give operations or an expiry".into(),
        ));
    }
    let block = BlockBuilder::new().code(&code).map_err(token_err)?;
    let next = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    let narrowed = biscuit.append_with_keypair(&next, block).map_err(token_err)?;
    finish(&narrowed)
}

/// Checks a token's signatures under the provider's key and that its bytes are canonical.
fn parse(token: &[u8], provider: &PublicKey) -> Result<Biscuit, Refusal> {
    let key = biscuit_key(provider)?;
    let biscuit = Biscuit::from(token, key).map_err(|e| match e {
        biscuit_auth::error::Token::Format(biscuit_auth::error::Format::Signature(_)) => {
            Refusal::Forged
        }
        biscuit_auth::error::Token::Format(biscuit_auth::error::Format::InvalidSignatureSize(
            _,
        )) => Refusal::Forged,
        other => Refusal::Malformed(other.to_string()),
    })?;
    // Protobuf admits several encodings of one token; only the canonical one is accepted, so
    // that a token whose bytes were altered is refused even when its meaning survived.
    if biscuit.to_vec().ok().as_deref() != Some(token) {
        return Err(Refusal::Malformed(
            "the token's bytes are not its canonical encoding (altered)".into(),
        ));
    }
    Ok(biscuit)
}

/// An authorizer for `biscuit` with `code`. The library's default time limit (1 ms) would refuse
/// honest tokens on a busy gateway; the token's size bounds the work instead.
fn authorizer(biscuit: &Biscuit, code: &str) -> Result<biscuit_auth::Authorizer, Refusal> {
    AuthorizerBuilder::new()
        .code(code)
        .map(|b| {
            b.set_limits(biscuit_auth::AuthorizerLimits {
                max_time: std::time::Duration::from_millis(200),
                ..Default::default()
            })
        })
        .and_then(|b| b.build(biscuit))
        .map_err(|e| Refusal::Malformed(e.to_string()))
}

/// Checks a token's signatures and encoding and reads the scope its authority block grants,
/// authorizing no request (neither revocation nor time is checked).
pub fn inspect(token: &[u8], provider: &PublicKey) -> Result<Scope, Refusal> {
    let biscuit = parse(token, provider)?;
    read_scope(&mut authorizer(&biscuit, "")?, biscuit.block_count())
}

/// Verifies a token for a request: signatures under the provider's key, revocation, the lease
/// and its window, then every check of every block.
pub fn verify(
    token: &[u8],
    provider: &PublicKey,
    request: &Request,
    is_revoked: &dyn Fn(&[u8]) -> bool,
) -> Result<Scope, Refusal> {
    let biscuit = parse(token, provider)?;
    if biscuit.revocation_identifiers().iter().any(|id| is_revoked(id)) {
        return Err(Refusal::Revoked);
    }
    let op = request.operation.as_str();
    if check_op(op).is_err() {
        return Err(Refusal::NotAllowed(format!("operation {op:?} is not a valid operation name")));
    }
    let mut authorizer = authorizer(
        &biscuit,
        &format!(
            "time_ms({now});\nrequested_lease(\"{lease}\");\noperation(\"{op}\");\nallow if operation($op), right($op);\n",
            now = ms(request.now_ms),
            lease = hex::encode(request.lease),
        ),
    )?;
    let scope = read_scope(&mut authorizer, biscuit.block_count())?;
    if scope.lease != hex::encode(request.lease) {
        return Err(Refusal::WrongLease {
            token_lease: scope.lease,
            requested: hex::encode(request.lease),
        });
    }
    if ms(request.now_ms) < scope.valid_from {
        return Err(Refusal::NotYetValid { valid_from: scope.valid_from, now_ms: request.now_ms });
    }
    if ms(request.now_ms) >= scope.valid_until {
        return Err(Refusal::Expired { valid_until: scope.valid_until, now_ms: request.now_ms });
    }
    authorizer.authorize().map_err(|e| Refusal::NotAllowed(e.to_string()))?;
    Ok(scope)
}

fn read_scope(a: &mut biscuit_auth::Authorizer, blocks: usize) -> Result<Scope, Refusal> {
    let bad =
        |what: &str| Refusal::Malformed(format!("the token's authority block has no valid {what}"));
    let one = |a: &mut biscuit_auth::Authorizer, rule: &str| -> Result<Vec<(String,)>, Refusal> {
        a.query(rule).map_err(|e| Refusal::Malformed(e.to_string()))
    };
    let num = |a: &mut biscuit_auth::Authorizer, rule: &str| -> Result<Vec<(i64,)>, Refusal> {
        a.query(rule).map_err(|e| Refusal::Malformed(e.to_string()))
    };
    let single = |v: Vec<(String,)>, what: &str| -> Result<String, Refusal> {
        match v.as_slice() {
            [(s,)] => Ok(s.clone()),
            _ => Err(bad(what)),
        }
    };
    let single_n = |v: Vec<(i64,)>, what: &str| -> Result<i64, Refusal> {
        match v.as_slice() {
            [(n,)] => Ok(*n),
            _ => Err(bad(what)),
        }
    };
    // Facts of the authority block only: attenuation blocks cannot add to the scope.
    let lease = single(one(a, "q($l) <- lease($l) trusting authority")?, "lease")?;
    let market = single(one(a, "q($m) <- market($m) trusting authority")?, "market")?;
    let buyer = single(one(a, "q($b) <- buyer($b) trusting authority")?, "buyer")?;
    let provider = single(one(a, "q($p) <- provider($p) trusting authority")?, "provider")?;
    let slots = single_n(num(a, "q($s) <- slots($s) trusting authority")?, "slots")?;
    let valid_from = single_n(num(a, "q($s) <- valid_from($s) trusting authority")?, "valid_from")?;
    let valid_until =
        single_n(num(a, "q($s) <- valid_until($s) trusting authority")?, "valid_until")?;
    let mut rights: Vec<String> =
        one(a, "q($r) <- right($r) trusting authority")?.into_iter().map(|(r,)| r).collect();
    rights.sort();
    Ok(Scope { lease, market, slots, buyer, provider, valid_from, valid_until, rights, blocks })
}
