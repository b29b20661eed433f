//! Credentials: a valid token is accepted; expired, revoked, wrong-lease, forged and tampered
//! tokens are refused with the reason; an attenuated token is honoured only within its scope.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use surplus_contracts::credential::{
    attenuate, mint, verify, Refusal, Request, Restriction, OPERATIONS,
};
use surplus_contracts::{Mode, Tx};
use surplus_market::HOUR_MS;

use crate::helpers::*;

fn req(lease: &surplus_contracts::Lease, op: &str, now_ms: u64) -> Request {
    Request { lease: lease.id, operation: op.into(), now_ms }
}

#[test]
fn a_valid_token_grants_its_scope() {
    let (_, lease) = one_lease();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let c = mint(&lease, &provider(1), &OPERATIONS, &mut rng).unwrap();
    assert_eq!(c.token_hash, *blake3::hash(&c.token).as_bytes());
    let scope =
        verify(&c.token, &provider(1).public(), &req(&lease, "write", T0 + HOUR_MS), &|_| false)
            .unwrap();
    assert_eq!(scope.lease, hex::encode(lease.id));
    assert_eq!(scope.buyer, buyer(2).public().to_string());
    assert_eq!(scope.slots, 1);
    assert_eq!(scope.rights, vec!["manage", "read", "write"]);
    assert_eq!((scope.valid_from, scope.valid_until), (T0 as i64, (T0 + 24 * HOUR_MS) as i64));
    // Only the lease's provider may mint.
    assert!(mint(&lease, &provider(0), &OPERATIONS, &mut rng).is_err());
}

#[test]
fn expired_revoked_wrong_lease_forged_and_tampered_tokens_are_refused() {
    let (mut s, lease) = one_lease();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let c = mint(&lease, &provider(1), &OPERATIONS, &mut rng).unwrap();
    let pk = provider(1).public();
    assert!(matches!(
        verify(&c.token, &pk, &req(&lease, "read", T0 + 24 * HOUR_MS), &|_| false),
        Err(Refusal::Expired { .. })
    ));
    assert!(matches!(
        verify(&c.token, &pk, &req(&lease, "read", T0 - 1), &|_| false),
        Err(Refusal::NotYetValid { .. })
    ));
    let mut other = lease.clone();
    other.id = [7; 32];
    assert!(matches!(
        verify(&c.token, &pk, &req(&other, "read", T0 + 1), &|_| false),
        Err(Refusal::WrongLease { .. })
    ));
    // Forged: minted by someone else's key (a lease of provider 0, forged with provider 0's key
    // but presented against provider 1).
    let mut fake = lease.clone();
    fake.fill.provider = provider(0).public();
    let forged = mint(&fake, &provider(0), &OPERATIONS, &mut rng).unwrap();
    assert_eq!(
        verify(&forged.token, &pk, &req(&lease, "read", T0 + 1), &|_| false),
        Err(Refusal::Forged)
    );
    // Tampered: a byte changed anywhere in the token.
    let mut seen_forged = 0;
    for i in 0..c.token.len() {
        let mut t = c.token.clone();
        t[i] ^= 0x20;
        match verify(&t, &pk, &req(&lease, "read", T0 + 1), &|_| false) {
            Err(Refusal::Forged) => seen_forged += 1,
            Err(_) => {}
            Ok(_) => panic!(
                "a token with byte {i} changed was accepted (len {}, around: {})",
                c.token.len(),
                hex::encode(&c.token[i.saturating_sub(8)..(i + 8).min(c.token.len())])
            ),
        }
    }
    assert!(seen_forged > 0);
    assert!(matches!(
        verify(b"garbage", &pk, &req(&lease, "read", T0 + 1), &|_| false),
        Err(Refusal::Malformed(_))
    ));
    // Revoked: the grant recorded on the ledger, then a buyer termination revokes it.
    s.apply_block(
        2,
        T0 + HOUR_MS,
        &[tx(
            &provider(1),
            Tx::Grant {
                lease: lease.id,
                token_hash: c.token_hash,
                revocation_ids: c.revocation_ids.clone(),
                seq: 0,
                sealed: Vec::new(),
            },
        )],
        Mode::Validate,
    )
    .unwrap();
    let revoked = |id: &[u8]| s.is_revoked(id);
    assert!(verify(&c.token, &pk, &req(&lease, "read", T0 + HOUR_MS), &revoked).is_ok());
    s.apply_block(
        3,
        T0 + 2 * HOUR_MS,
        &[tx(&buyer(2), Tx::Terminate { lease: lease.id, seq: 0 })],
        Mode::Validate,
    )
    .unwrap();
    let revoked = |id: &[u8]| s.is_revoked(id);
    assert_eq!(
        verify(&c.token, &pk, &req(&lease, "read", T0 + 2 * HOUR_MS), &revoked),
        Err(Refusal::Revoked)
    );
}

#[test]
fn an_attenuated_token_is_honoured_only_within_its_narrower_scope() {
    let (_, lease) = one_lease();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let pk = provider(1).public();
    let c = mint(&lease, &provider(1), &OPERATIONS, &mut rng).unwrap();
    let r = Restriction { operations: Some(vec!["read".into()]), until_ms: Some(T0 + 2 * HOUR_MS) };
    let narrow = attenuate(&c.token, &pk, &r, &mut rng).unwrap();
    assert_eq!(
        narrow.revocation_ids[0], c.revocation_ids[0],
        "revoking the original revokes the copy"
    );
    let ok = verify(&narrow.token, &pk, &req(&lease, "read", T0 + HOUR_MS), &|_| false).unwrap();
    assert_eq!(ok.blocks, 2);
    assert!(matches!(
        verify(&narrow.token, &pk, &req(&lease, "write", T0 + HOUR_MS), &|_| false),
        Err(Refusal::NotAllowed(_))
    ));
    assert!(matches!(
        verify(&narrow.token, &pk, &req(&lease, "read", T0 + 3 * HOUR_MS), &|_| false),
        Err(Refusal::NotAllowed(_))
    ));
    // The original still grants everything.
    assert!(verify(&c.token, &pk, &req(&lease, "write", T0 + 3 * HOUR_MS), &|_| false).is_ok());
    // A block that tries to widen the scope is ignored: rights come from the authority block.
    let widen =
        Restriction { operations: Some(vec!["read".into(), "admin".into()]), until_ms: None };
    let w = attenuate(&narrow.token, &pk, &widen, &mut rng).unwrap();
    assert!(matches!(
        verify(&w.token, &pk, &req(&lease, "admin", T0 + HOUR_MS), &|_| false),
        Err(Refusal::NotAllowed(_))
    ));
    // Revoking the original's first id refuses the attenuated token too.
    let first = c.revocation_ids[0].0.clone();
    assert_eq!(
        verify(&narrow.token, &pk, &req(&lease, "read", T0 + HOUR_MS), &|id| id
            == first.as_slice()),
        Err(Refusal::Revoked)
    );
}
