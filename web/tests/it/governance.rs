//! `GET /api/v1/governance`, `GET /api/v1/governance/proposals/{id}` and the governance event
//! frames, over a consortium of one whose validator proposes a change of the fees, votes for
//! it, and sees it enacted at its effective height.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use surplus_contracts::governance::ENACTMENT_DELAY;
use surplus_contracts::{Action, Tx};
use surplus_ledger::{Entry, SecretKey};
use surplus_web::Event;

use crate::{app, call, commit, roomy, spec, submit_req, wait_for, world_of, CHAIN};

fn signed(key: &SecretKey, seq: u64, tx: Tx) -> Entry {
    let tx = tx.with_seq(seq);
    Entry::signed(CHAIN, tx.kind(), tx.encode(), key)
}

#[actix_web::test]
async fn a_proposal_is_listed_with_its_votes_until_it_is_enacted() {
    // Blocks keep coming while nothing waits, so the effective height arrives.
    let mut spec = spec();
    spec.heartbeat_ms = 50;
    let w = world_of(spec);
    let app = app!(w.node, roomy());
    let mut events = w.node.subscribe();
    let me = w.provider.public().to_string();

    let (s, g) = call!(app, TestRequest::get().uri("/api/v1/governance"));
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(g["chain_id"], CHAIN);
    assert_eq!(g["validators"], serde_json::json!([{"key": me, "power": 1, "address": ""}]));
    assert_eq!((g["total_power"].clone(), g["quorum"].clone()), (1.into(), 1.into()));
    assert_eq!(g["proposals"], serde_json::json!([]));
    assert_eq!(g["history"][0]["validators"], serde_json::json!([me]));
    assert_eq!(g["enactment_delay"], ENACTMENT_DELAY);
    let fee = g["params"]["fee_bps"].as_u64().unwrap();

    // A buyer may not propose.
    let action = Action::SetFees { fee_bps: fee as u16 + 7, penalty_bps: 1234 };
    let effective = w.node.status().height + ENACTMENT_DELAY + 40;
    let tx = Tx::GovPropose { action: action.clone(), effective, seq: 0 };
    let (s, e) = call!(app, submit_req(&signed(&w.buyer, 0, tx.clone())));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_validator")));

    // The validator proposes; the proposal is listed, open, with its one voter.
    let seq = w.node.state().account(&w.provider.public()).seq;
    let propose = signed(&w.provider, seq, tx);
    let id = hex::encode(propose.id());
    commit!(app, w.node, &propose);
    let (s, g) = call!(app, TestRequest::get().uri("/api/v1/governance"));
    assert_eq!(s, StatusCode::OK);
    let p = &g["proposals"][0];
    assert_eq!((p["id"].as_str(), p["status"].as_str()), (Some(id.as_str()), Some("open")));
    assert_eq!(p["action"]["type"], "set_fees");
    assert_eq!(p["effective"], effective);
    assert_eq!(p["deadline"], effective - ENACTMENT_DELAY);
    assert_eq!(p["voters"], serde_json::json!([{"key": me, "power": 1, "vote": null}]));
    let (s, one) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/governance/proposals/{id}")));
    assert_eq!((s, &one), (StatusCode::OK, p));

    // Its vote passes it (1 of 1).
    let vote = Tx::GovVote { proposal: propose.id(), yes: true, seq: 0 };
    commit!(app, w.node, &signed(&w.provider, seq + 1, vote));
    let (_, one) =
        call!(app, TestRequest::get().uri(&format!("/api/v1/governance/proposals/{id}")));
    assert_eq!((one["status"].as_str(), one["yes_power"].as_u64()), (Some("passed"), Some(1)));

    // At the end of the block before its effective height it is enacted: the fee changes and the
    // proposal leaves the state.
    wait_for("the effective height", || (w.node.status().height + 1 >= effective).then_some(()))
        .await;
    let (_, g) = call!(app, TestRequest::get().uri("/api/v1/governance"));
    assert_eq!(g["params"]["fee_bps"], fee + 7, "{g}");
    assert_eq!(g["params"]["penalty_bps"], 1234);
    assert_eq!(g["proposals"], serde_json::json!([]));
    let (s, e) = call!(app, TestRequest::get().uri(&format!("/api/v1/governance/proposals/{id}")));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_proposal")));
    let (s, e) = call!(app, TestRequest::get().uri("/api/v1/governance/proposals/xyz"));
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    // The event stream told the story: proposed, voted, enacted. (The node shows a block's
    // state before it sends the block's events: the outcome's may still be on its way.)
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.iter().any(|(k, _, _): &(String, _, _)| k == "gov-outcome") {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("the proposal's outcome event within 10 s")
            .expect("no event lost");
        if let Event::Governance { kind, proposal, yes, outcome, .. } = ev {
            assert_eq!(proposal.map(hex::encode).as_deref(), Some(id.as_str()));
            seen.push((kind, yes, outcome));
        }
    }
    use surplus_contracts::Outcome;
    assert_eq!(
        seen,
        vec![
            ("gov-propose".to_owned(), None, None),
            ("gov-vote".to_owned(), Some(true), None),
            ("gov-outcome".to_owned(), None, Some(Outcome::Enacted)),
        ]
    );
}

#[actix_web::test]
async fn the_operator_votes_with_the_node_key() {
    let mut spec = spec();
    spec.heartbeat_ms = 50;
    let w = world_of(spec);
    let app = app!(w.node, roomy());
    let effective = w.node.status().height + ENACTMENT_DELAY + 40;
    let action = Action::SetFees { fee_bps: 1, penalty_bps: 2 };
    let propose = signed(&w.provider, 0, Tx::GovPropose { action, effective, seq: 0 });
    commit!(app, w.node, &propose);
    let id = hex::encode(propose.id());
    let body = serde_json::json!({"proposal": id, "yes": true});
    let vote = || TestRequest::post().uri("/api/v1/operator/votes").set_json(body.clone());
    // Without the operator token: 401.
    let (s, e) = call!(app, vote());
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("operator_only")));
    let token = w.node.operator_token().expect("an operator token").to_owned();
    let bearer = ("Authorization", format!("Bearer {token}"));
    // An unknown proposal: 404.
    let other = serde_json::json!({"proposal": hex::encode([9u8; 32]), "yes": true});
    let req = TestRequest::post().uri("/api/v1/operator/votes").set_json(other);
    let (s, e) = call!(app, req.insert_header(bearer.clone()));
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_proposal")));
    // The node signs and submits its vote; it passes the proposal (1 of 1).
    let (s, v) = call!(app, vote().insert_header(bearer.clone()));
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let vote_id = surplus_ledger::parse_hex::<32>(v["id"].as_str().unwrap(), "id").unwrap();
    crate::committed(&*w.node, &vote_id).await;
    let (_, p) = call!(app, TestRequest::get().uri(&format!("/api/v1/governance/proposals/{id}")));
    assert_eq!(p["status"], "passed", "{p}");
    assert_eq!(p["voters"][0]["vote"], true);
    // Once passed it takes no more votes.
    let (s, e) = call!(app, vote().insert_header(bearer));
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("proposal_closed")),
        "{e}"
    );
}
