//! Golden vectors of the contracts' formats: transaction and system entry payloads, a state root,
//! and a credential minted with a fixed random seed. Regenerate deliberately with
//! `SURPLUS_REGEN_VECTORS=1 cargo test -p surplus-contracts --test it golden`.

use rand::SeedableRng;
use serde_json::{json, Value};
use surplus_contracts::credential::{attenuate, mint, Restriction};
use surplus_contracts::governance::{encode_outcome, Outcome};
use surplus_contracts::supervision::{Credit, CreditReason, Report, Supervision};
use surplus_contracts::{
    encode_fill, encode_revocation, Action, Mode, RevocationId, Settlement, SettlementReason, Tx,
};
use surplus_ledger::testutil::key;
use surplus_ledger::EntryKind;
use surplus_market::HOUR_MS;

use crate::helpers::*;

fn compute() -> Value {
    let mut s = state(250, 1000);
    let applied = s
        .apply_block(
            1,
            T0,
            &[offer(&provider(0), 3, 40, 72, 1, T0), bid(&buyer(0), 2, 24, 60, 1, T0)],
            Mode::Validate,
        )
        .unwrap();
    let lease = s.leases().next().unwrap().clone();
    let transfer = Tx::Transfer { to: buyer(1).public(), amount: 1_234_567, seq: 0 };
    let terminate = Tx::Terminate { lease: lease.id, seq: 1 };
    let renew = Tx::Renew { lease: lease.id, hours: 6, seq: 2 };
    // Maintenance: a window, its end, a notice and a move (docs/contracts.md §9).
    let maintenance = [
        Tx::Maintenance {
            pool: "pve-a".into(),
            market: lease.fill.market.clone(),
            start_ms: T0 + 48 * HOUR_MS,
            until_ms: T0 + 52 * HOUR_MS,
            reason: "kernel update".into(),
            seq: 3,
        },
        Tx::MaintenanceDone { pool: "pve-a".into(), seq: 4 },
        Tx::Notice { lease: lease.id, end_ms: T0 + 48 * HOUR_MS, seq: 5 },
        Tx::Move { lease: lease.id, pool: "pve-b".into(), seq: 6 },
    ];
    let grant = Tx::Grant {
        lease: lease.id,
        token_hash: [7; 32],
        revocation_ids: vec![RevocationId(vec![1, 2, 3])],
        seq: 0,
        sealed: Vec::new(),
    };
    // One proposal of each action, a vote, a withdrawal and a key rotation.
    let v = |i| key("validator", i).public();
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("gpus".to_string(), 8);
    attributes.insert("memory_gib".to_string(), 512);
    let actions = vec![
        Action::AddValidator { key: v(4), power: 3, address: "/ip4/127.0.0.1/tcp/7004".into() },
        Action::RemoveValidator { key: v(1) },
        Action::SetPower { key: v(2), power: 5 },
        Action::SetFees { fee_bps: 150, penalty_bps: 2500 },
        Action::AddClass {
            class: surplus_market::Class {
                id: "gpu.h100x8".into(),
                description: "8 H100 GPUs".into(),
                attributes,
            },
        },
        Action::RetireClass { id: "vm.4c16g".into() },
        Action::AddRegion {
            region: surplus_market::Region {
                id: "ap-south-a".into(),
                description: "Mumbai".into(),
            },
        },
        Action::RetireRegion { id: "eu-west-a".into() },
        Action::RotateValidator { old: v(3), new: v(9) },
        Action::SetConsensus {
            params: surplus_contracts::ConsensusParams {
                batch_interval_ms: 250,
                max_block_entries: 2000,
                max_block_bytes: 2_097_152,
            },
        },
    ];
    let mut governance: Vec<Tx> = actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| Tx::GovPropose { action, effective: 100 + i as u64, seq: i as u64 })
        .collect();
    governance.push(Tx::GovVote { proposal: [5; 32], yes: true, seq: 9 });
    governance.push(Tx::GovVote { proposal: [5; 32], yes: false, seq: 10 });
    governance.push(Tx::GovWithdraw { proposal: [5; 32], seq: 11 });
    governance.push(Tx::RotateKey { new_key: v(10), seq: 12 });
    let settlement = Settlement {
        lease: lease.id,
        reason: SettlementReason::Hourly,
        hours_paid: 3,
        to_provider: 351,
        fee: 9,
        refund: 0,
        penalty: 0,
        added: 0,
    };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let cred = mint(&lease, &provider(0), &["read", "write"], &mut rng).unwrap();
    let narrow = attenuate(
        &cred.token,
        &provider(0).public(),
        &Restriction { operations: Some(vec!["read".into()]), until_ms: Some(T0 + 12 * HOUR_MS) },
        &mut rng,
    )
    .unwrap();
    let outcomes: Vec<Value> =
        [Outcome::Enacted, Outcome::Expired, Outcome::Rejected, Outcome::Void]
            .iter()
            .map(|o| {
                let payload = hex::encode(encode_outcome(&[5; 32], *o));
                json!({ "proposal": hex::encode([5; 32]), "outcome": o, "payload": payload })
            })
            .collect();
    // The token sealed to the lease's buyer with a fixed ephemeral key (never fixed in use).
    let ephemeral = [0x42u8; 32];
    let sealed = surplus_contracts::sealed::seal_with(
        &cred.token,
        &buyer(0).public(),
        CHAIN,
        &lease.id,
        ephemeral,
    )
    .unwrap();
    let opened = surplus_contracts::sealed::open(&sealed, &buyer(0), CHAIN, &lease.id).unwrap();
    assert_eq!(opened, cred.token, "the buyer opens what was sealed to it");
    let sealed_grant = Tx::Grant {
        lease: lease.id,
        token_hash: cred.token_hash,
        revocation_ids: cred.revocation_ids.clone(),
        seq: 1,
        sealed: sealed.clone(),
    };
    let ephemeral_public =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(ephemeral)).to_bytes();
    let tx_json =
        |t: &Tx| json!({ "tx": t, "kind": t.kind().0, "payload": hex::encode(t.encode()) });
    let supervision = supervision_vectors(&lease);
    json!({
        "description": "Surplus contracts v1 vectors; see docs/contracts.md. Keys: ed25519 seeds blake3(\"surplus/test-key/\" || label || u64 index).",
        "chain_id": CHAIN,
        "transactions": [tx_json(&transfer), tx_json(&terminate), tx_json(&renew), tx_json(&grant), tx_json(&sealed_grant)],
        "maintenance": maintenance.iter().map(tx_json).collect::<Vec<_>>(),
        "fill": { "fill": lease.fill, "payload": hex::encode(encode_fill(&lease.fill, lease.height)), "lease_id": hex::encode(lease.id) },
        "settlement": { "settlement": settlement, "payload": hex::encode(settlement.encode()) },
        "revocation": hex::encode(encode_revocation(&lease.id, &[RevocationId(vec![1, 2, 3])])),
        "governance": governance.iter().map(tx_json).collect::<Vec<_>>(),
        "gov_outcome": outcomes,
        "supervision": supervision,
        "state_root_after_block_1": hex::encode(applied.state_root),
        "credential": {
            "provider": provider(0).public().to_string(),
            "rng": "ChaCha20, seed_from_u64(42)",
            "token": hex::encode(&cred.token),
            "token_hash": hex::encode(cred.token_hash),
            "revocation_ids": cred.revocation_ids,
            "attenuated_read_only_until_t0_plus_12h": hex::encode(&narrow.token),
        },
        "sealed_credential": {
            "description": "The credential's token sealed to the lease's buyer (docs/contracts.md §6): X25519, HKDF-SHA256, AES-256-GCM. The ephemeral key is fixed here only.",
            "chain_id": CHAIN,
            "lease": hex::encode(lease.id),
            "buyer_seed": hex::encode(buyer(0).seed()),
            "buyer_public_key": buyer(0).public().to_string(),
            "buyer_x25519_secret": hex::encode(buyer(0).x25519_secret()),
            "buyer_x25519_public": hex::encode(buyer(0).public().to_x25519().unwrap()),
            "ephemeral_secret": hex::encode(ephemeral),
            "ephemeral_public": hex::encode(ephemeral_public),
            "token": hex::encode(&cred.token),
            "sealed": hex::encode(&sealed),
        },
    })
}

/// Supervision and bonds (`docs/contracts.md` §10): a probe report naming `lease` and another
/// lease, the two bond transactions, a credit of each reason and genesis parameters with
/// supervision on and a market's terms.
fn supervision_vectors(lease: &surplus_contracts::Lease) -> Value {
    const S: u64 = 60_000;
    let mut down = vec![lease.id, *blake3::hash(b"another lease").as_bytes()];
    down.sort();
    let report = Report { interval: T0 / S + 2, down };
    assert_eq!(Report::decode(&report.encode()).unwrap(), report);
    let bonds = [Tx::Bond { amount: 400, seq: 7 }, Tx::Unbond { amount: 150, seq: 8 }];
    for t in &bonds {
        assert_eq!(t.kind(), EntryKind::BOND);
        assert_eq!(&Tx::decode(t.kind(), &t.encode()).unwrap(), t);
    }
    let credits = [
        // One minute of two slots at 100 a slot-hour, from the provider's balance.
        Credit {
            lease: lease.id,
            reason: CreditReason::Down,
            interval: T0 / S + 2,
            due: 3,
            from_balance: 3,
            from_bond: 0,
        },
        // 10 % of 200 at the lease's end, the balance short: the bond pays the rest.
        Credit {
            lease: lease.id,
            reason: CreditReason::BelowTarget,
            interval: 0,
            due: 20,
            from_balance: 12,
            from_bond: 8,
        },
    ];
    let mut params = genesis(250, 1000).params;
    params.supervision =
        Some(Supervision { interval_ms: S, window: 5, quorum_bps: 5_000, min_down: 2 });
    let class = params.catalogue.classes.iter_mut().find(|c| c.id == "vm.4c16g").unwrap();
    class.attributes.insert("terms.availability_bps".into(), 9_950);
    class.attributes.insert("terms.credit_bps".into(), 1_000);
    class.attributes.insert("terms.bond_per_slot".into(), 10);
    let params_payload = params.encode();
    assert_eq!(surplus_contracts::Params::decode(&params_payload).unwrap(), params);
    json!({
        "description": "Supervision and provider bonds (docs/contracts.md §10): a probe-report payload (kind 37; interval = time / interval_ms), the bond transactions (kind 38: lock, release), credit payloads (kind 39: an interval the quorum found down, a lease that ended below its market's target) and genesis parameters with supervision on (notice_ms written out because supervision follows) and vm.4c16g's terms as class attributes.",
        "probe_report": {
            "report": report,
            "kind": EntryKind::PROBE_REPORT.0,
            "payload": hex::encode(report.encode()),
        },
        "bond": bonds
            .iter()
            .map(|t| json!({ "tx": t, "kind": t.kind().0, "payload": hex::encode(t.encode()) }))
            .collect::<Vec<_>>(),
        "credit": credits
            .iter()
            .map(|c| {
                assert_eq!(&Credit::decode(&c.encode()).unwrap(), c);
                json!({ "credit": c, "kind": EntryKind::CREDIT.0, "payload": hex::encode(c.encode()) })
            })
            .collect::<Vec<_>>(),
        "genesis_params": { "params": params, "payload": hex::encode(&params_payload) },
    })
}

#[test]
fn golden_vectors_are_unchanged() {
    let got = compute();
    assert_eq!(got, compute(), "two runs differ");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/contracts-v1.json");
    if std::env::var_os("SURPLUS_REGEN_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        got == want,
        "the contracts formats changed; regenerate deliberately:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}
