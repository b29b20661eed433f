//! Governance with real node processes (`docs/governance.md`). A 4-validator devnet under
//! order load: a proposal short of quorum expires and changes nothing; three new datacenters
//! start as followers, are admitted by vote (one, then two more) and sign certificates; a
//! genesis validator is removed; another rotates its key and rejoins under the new one; a new
//! region is opened by vote and trades. Every step goes through `surplus gov`. No acknowledged
//! order is lost, the heads agree, and every ledger, the joined and removed nodes' included,
//! audits clean across all the changes: from genesis, and the one that joined from a member's
//! snapshot from its snapshot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use surplus_api::Submission;
use surplus_client::Client;
use surplus_contracts::ProposalStatus;
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Market, Offer, Order, SignedOrder, HOUR_MS};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
/// Blocks between a proposal and its effective height: room for every vote.
const LEAD: u64 = 80;

/// `surplus gov ARGS --json`: its JSON answer; panics with its stderr if it fails.
fn gov(args: &[String]) -> Value {
    let out = Command::new(surplus_bin())
        .arg("gov")
        .args(args)
        .arg("--json")
        .output()
        .expect("run surplus gov");
    assert!(
        out.status.success(),
        "surplus gov {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("surplus gov --json prints JSON")
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn hash(v: &Value) -> Hash {
    surplus_ledger::parse_hex::<32>(v.as_str().expect("an id"), "id").expect("a hash")
}

/// Runs `submit` (a `surplus gov` command that submits one entry) until its entry commits:
/// an entry the node drops (another entry of the same key took its sequence number first, such
/// as the node's own credential grant) is signed again; at most five tries. The committed
/// entry's id.
fn until_committed(api: &Client, what: &str, submit: impl Fn() -> Value) -> Hash {
    for _ in 0..5 {
        let id = hash(&submit()["id"]);
        let fate = wait_for(&format!("{what} committed or dropped"), MINUTE, || {
            match api.submission(&id).ok()?.submission {
                Submission::Pending { .. } => None,
                other => Some(other),
            }
        });
        match fate {
            Submission::Committed { .. } => return id,
            Submission::Dropped { code, message } => {
                eprintln!("{what}: dropped ({code}: {message}), signing it again")
            }
            Submission::Pending { .. } => unreachable!(),
        }
    }
    panic!("{what}: dropped five times");
}

/// The consortium as the test drives it.
struct Consortium {
    /// The API proposals and votes go to.
    api: Client,
    /// Key file of each validator, by its public key.
    keys: Vec<(PublicKey, PathBuf)>,
}

impl Consortium {
    fn key_file(&self, k: &PublicKey) -> &Path {
        &self.keys.iter().find(|(p, _)| p == k).expect("a known validator").1
    }

    /// Proposes `action` (the `surplus gov propose` subcommand and its arguments) from the
    /// first validator, effective `LEAD` blocks from now; then the validators in `voters` vote
    /// yes, one by one, until it passes. The proposal's id and effective height.
    fn propose(&self, action: &[String], voters: &[PublicKey]) -> (Hash, u64) {
        let set = self.api.governance().expect("governance");
        let proposer = set.validators[0].key;
        let effective = set.height + LEAD;
        let base = self.api.base().to_owned();
        let id = until_committed(&self.api, &format!("proposal {}", action[0]), || {
            let mut args = vec![s("propose")];
            args.extend(action.iter().cloned());
            args.extend([s("--effective"), s(effective), s("--node"), base.clone(), s("--key")]);
            args.push(self.key_file(&proposer).display().to_string());
            gov(&args)
        });
        for v in voters {
            let passed = self.api.proposal(&id).map(|p| p.status == ProposalStatus::Passed);
            if passed.unwrap_or(true) {
                break; // passed (or already enacted): it takes no more votes
            }
            until_committed(&self.api, &format!("a vote of {v}"), || {
                gov(&[
                    s("vote"),
                    hex::encode(id),
                    s("--yes"),
                    s("--key"),
                    self.key_file(v).display().to_string(),
                    s("--node"),
                    base.clone(),
                ])
            });
        }
        (id, effective)
    }

    /// [`Consortium::propose`] with every validator of the set voting yes; waits until the
    /// change is in force (the head is at its effective height).
    fn pass(&self, action: &[String]) -> u64 {
        let voters: Vec<PublicKey> =
            self.api.governance().expect("governance").validators.iter().map(|v| v.key).collect();
        let (id, effective) = self.propose(action, &voters);
        let p = self.api.proposal(&id).expect("the proposal, passed and waiting");
        assert_eq!(p.status, ProposalStatus::Passed, "{p:?}");
        wait_for("the effective height", 3 * MINUTE, || {
            (self.api.status().ok()?.height >= effective).then_some(())
        });
        effective
    }
}

/// The first block from `from` on whose certificate holds `key`'s vote, as one of `apis`
/// stored it, within two minutes. (Each node stores the certificate it decided with: the
/// votes it had when a quorum was reached. A validator's own holds its vote; another's may
/// not, if that vote came after the quorum.)
fn signs_certificates(apis: &[&Client], key: &PublicKey, from: u64) -> u64 {
    let mut next = vec![from; apis.len()];
    wait_for(&format!("a certificate signed by {key}"), 2 * MINUTE, || {
        for (api, next) in apis.iter().zip(next.iter_mut()) {
            let Some(head) = api.status().ok().map(|s| s.height) else { continue };
            while *next < head {
                let Ok(b) = api.block(*next, false) else { break };
                let signed = b.certificate.iter().flat_map(|c| &c.signatures);
                if signed.clone().any(|c| c.signer == Some(*key)) {
                    return Some(*next);
                }
                *next += 1;
            }
        }
        None
    })
}

#[test]
fn a_consortium_admits_removes_rotates_and_opens_a_region_by_vote_under_load() {
    let started = std::time::Instant::now();
    let step =
        |what: &str| eprintln!("governance: {what} at {:.1} s", started.elapsed().as_secs_f64());
    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(80);
    let net = Devnet::init(tmp.path(), 4, base);
    for i in 0..4 {
        set_config(&net.data_dir(i).join("config.toml"), "snapshot_every", "20");
    }
    let mut nodes = net.start_all();
    let mut apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let mut c = Consortium {
        api: apis[0].clone(),
        keys: (0..4).map(|i| (net.node_key(i), net.data_dir(i).join("node.key"))).collect(),
    };
    let (market, reserve) = first_pool(&net.data_dir(0));
    wait_for_offer(&apis[0], &market, &net.node_key(0));
    let load = OrderLoad::with_fills(
        &net,
        &apis,
        &market,
        16,
        Duration::from_millis(60),
        vec![(market.clone(), reserve)],
    );

    step("devnet up");
    // A proposal short of quorum (1 yes of 4) expires at its deadline and changes nothing.
    let fee = apis[0].governance().unwrap().params.fee_bps;
    let (short, effective) = c.propose(
        &[s("set-fees"), s("--fee-bps"), s(fee + 100), s("--penalty-bps"), s(0)],
        &[net.node_key(1)],
    );
    wait_for("past its effective height", 3 * MINUTE, || {
        (apis[0].status().ok()?.height > effective).then_some(())
    });
    let g = apis[0].governance().unwrap();
    assert_eq!(g.params.fee_bps, fee, "a proposal short of quorum changed the fee");
    assert!(g.proposals.iter().all(|p| p.id != short), "it expired");

    step("short proposal expired");
    // Three datacenters start as followers and are admitted: dc5 alone, then dc6 and dc7.
    let mut joined = Vec::new();
    for (i, name) in ["dc5", "dc6", "dc7"].iter().enumerate() {
        let port = base + 40 + 10 * i as u16;
        let (dir, url) = net.join_node(tmp.path(), name, port);
        // dc7 starts from a member's snapshot; dc5 and dc6 replay the chain from genesis.
        let n = if i == 2 {
            NodeProc::start_with(&dir, &url, None, &["--sync", "snapshot"])
        } else {
            NodeProc::start(&dir, &url)
        };
        n.wait_up();
        if i == 2 {
            let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
            assert!(log.contains("the node starts from a snapshot"), "{}", n.log_tail());
        }
        let key = read_key(&dir.join("node.key")).public();
        c.keys.push((key, dir.join("node.key")));
        joined.push((n, key, format!("/ip4/127.0.0.1/tcp/{}", port + 1)));
    }
    let add = |(_, key, addr): &(NodeProc, PublicKey, String)| {
        vec![s("add-validator"), s("--validator"), s(key), s("--address"), addr.clone()]
    };
    step("three followers up");
    let at = c.pass(&add(&joined[0]));
    assert_eq!(apis[0].chain().unwrap().validators.len(), 5);
    signs_certificates(&[&apis[0], &joined[0].0.api], &joined[0].1, at);
    assert!(joined[0].0.api.status().unwrap().validator, "dc5 says it is a validator");
    step("dc5 admitted");
    let at = c.pass(&add(&joined[1]));
    let at = at.max(c.pass(&add(&joined[2])));
    assert_eq!(apis[0].chain().unwrap().validators.len(), 7);
    for (n, key, _) in &joined[1..] {
        signs_certificates(&[&apis[0], &n.api], key, at);
    }

    step("dc6 and dc7 admitted");
    // dc4 is removed; it keeps following the chain.
    let dc4 = net.node_key(3);
    let at = c.pass(&[s("remove-validator"), s("--validator"), s(dc4)]);
    let chain = apis[0].chain().unwrap();
    assert_eq!(chain.validators.len(), 6);
    assert!(!chain.validators.contains(&dc4));
    wait_for("dc4 to say it is no validator", MINUTE, || {
        (!apis[3].status().ok()?.validator).then_some(())
    });
    let head = apis[0].status().unwrap().height;
    let mut after = head;
    while after < head + 20 {
        after = apis[0].status().unwrap().height;
        let b = apis[0].block(after, false).unwrap();
        assert!(
            b.certificate.iter().flat_map(|c| &c.signatures).all(|s| s.signer != Some(dc4)),
            "block {after} (after the removal at {at}) holds dc4's vote"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    step("dc4 removed");
    // dc3 rotates its node key, and restarts under the new one.
    let dc3_dir = net.data_dir(2);
    let new_key_file = tmp.path().join("dc3-new.key");
    let out = surplus(&["key", "generate", "--out", &new_key_file.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let old3 = net.node_key(2);
    let new3 = read_key(&new_key_file).public();
    until_committed(&apis[2], "dc3's rotation", || {
        gov(&[
            s("rotate-key"),
            s("--key"),
            dc3_dir.join("node.key").display().to_string(),
            s("--new-key"),
            new_key_file.display().to_string(),
            s("--node"),
            apis[2].base().to_owned(),
        ])
    });
    // (dc3 saw it committed; dc1 may be a block behind.)
    let g = wait_for("the rotation on dc1", MINUTE, || {
        let g = apis[0].governance().ok()?;
        g.rotations.iter().any(|r| r.old == old3 && r.new == new3).then_some(g)
    });
    assert!(
        g.validators.iter().any(|v| v.key == new3) && g.validators.iter().all(|v| v.key != old3)
    );
    nodes[2].stop();
    std::fs::copy(&new_key_file, dc3_dir.join("node.key")).expect("install the new key");
    nodes[2] = NodeProc::start(&dc3_dir, apis[2].base());
    nodes[2].wait_up();
    apis[2] = nodes[2].api.clone();
    assert_eq!(apis[2].status().unwrap().public_key, new3);
    let head = apis[0].status().unwrap().height;
    signs_certificates(&[&apis[0], &apis[2]], &new3, head);
    c.keys.push((new3, dc3_dir.join("node.key")));
    c.api = apis[0].clone();

    step("dc3 rotated");
    // A region opened by vote trades.
    let region = "gov-south-a";
    c.pass(&[s("add-region"), s("--id"), s(region), s("--description"), s("opened by vote")]);
    let g = apis[0].governance().unwrap();
    assert!(g.params.regions.iter().any(|r| r.id == region));
    let there = Market::new(&market.class, region);
    let (seller, buyer) = (net.buyer(1), net.buyer(2));
    let now = surplus_service::now_ms();
    let offer = Order::Offer(Offer {
        market: there.clone(),
        slots: 2,
        from_ms: now,
        until_ms: now + 48 * HOUR_MS,
        reserve: 5,
        min_hours: 1,
        expiry_ms: now + 24 * HOUR_MS,
        nonce: 7_000_001,
    });
    let chain_id = net.chain_id().to_owned();
    // The seller backs its offer with a bond (the class's terms ask for one).
    lock_bond(&apis[1], &chain_id, &seller, 1_000_000_000);
    apis[1].submit(&SignedOrder::sign(&chain_id, offer, &seller).0).expect("the offer");
    let bid = one_slot_bid(&there, 10, 7_000_002, HOUR_MS);
    // Sent to a node that joined by vote.
    joined[0]
        .0
        .api
        .submit(&SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer).0)
        .expect("the bid");
    wait_for("a lease in the new region", MINUTE, || {
        let leases = apis[0].leases(Some(&buyer.public()), Some(1000)).ok()?;
        leases.leases.iter().find(|l| l.fill.market == there).map(|_| ())
    });

    step("the region traded");
    // Nothing acknowledged is lost; the heads agree; every ledger audits from genesis.
    let (_, acked) = load.finish();
    assert!(acked.len() > 50, "the load ran: {} orders acknowledged", acked.len());
    apis.extend(joined.iter().map(|(n, _, _)| n.api.clone()));
    assert_committed(&apis, &acked, 2 * MINUTE);
    let head = apis[0].status().unwrap().height;
    let refs: Vec<&Client> = apis.iter().collect();
    let (height, _) = wait_converged(&refs, head + 3, 2 * MINUTE);
    let mut dirs: Vec<PathBuf> = (0..4).map(|i| net.data_dir(i)).collect();
    dirs.extend(joined.iter().map(|(n, _, _)| n.dir.clone()));
    for n in nodes.iter_mut() {
        n.stop();
    }
    for (n, _, _) in joined.iter_mut() {
        n.stop();
    }
    for (i, d) in dirs.iter().enumerate() {
        let report = audit(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        assert_eq!(report["verified"], true, "{}: {report}", d.display());
        let from = report["replayed_from"].as_u64();
        if i == 6 {
            assert!(from.unwrap_or(0) > 0, "dc7 re-executes from its snapshot: {report}");
        } else {
            assert_eq!(from, Some(0), "{}: {report}", d.display());
        }
        assert!(report["report"]["head_height"].as_u64().unwrap_or(0) >= height.min(head));
    }
}
