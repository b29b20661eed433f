//! `docs/governance.md`, run: every `sh` block of the page is a named step, and this test runs
//! each of them, in the page's order, against a local 4-validator consortium, with the
//! variables the page names. A new datacenter is created and started, follows the chain, is
//! proposed and voted in by the members, becomes a validator at the effective height, and votes
//! on the next proposal with its own key.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use surplus_client::Client;
use surplus_contracts::ProposalStatus;
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);
const STEPS: [&str; 7] =
    ["init", "start", "follow", "propose", "vote", "joined", "new-member-votes"];

/// The page's `sh` blocks: (step name, script).
fn steps() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/governance.md"),
    )
    .expect("docs/governance.md");
    let mut out = Vec::new();
    let mut rest = page.as_str();
    while let Some(at) = rest.find("```sh\n") {
        let body = &rest[at + 6..];
        let end = body.find("```").expect("a closed code block");
        let block = &body[..end];
        let (first, script) = block.split_once('\n').expect("a step line and a script");
        let name = first.strip_prefix("# step: ").unwrap_or_else(|| {
            panic!("every sh block of docs/governance.md starts with `# step: NAME`: {first:?}")
        });
        out.push((name.to_owned(), script.to_owned()));
        rest = &body[end + 3..];
    }
    out
}

/// The environment the page's commands run in: `surplus` first on the PATH, and the variables.
fn command(script: &str, vars: &BTreeMap<&str, String>) -> Command {
    let bin = surplus_bin();
    let dir = bin.parent().expect("the binary's directory");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script]).env("PATH", path).envs(vars.iter());
    c
}

/// Runs a step to its end; its output. Panics with the step's output if it fails.
fn run(steps: &BTreeMap<String, String>, name: &str, vars: &BTreeMap<&str, String>) -> String {
    let Output { status, stdout, stderr } = command(&steps[name], vars).output().expect("run bash");
    let (out, err) = (String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(status.success(), "step {name} failed ({status}):\n{out}\n{err}");
    eprintln!("governance_doc: step {name}:\n{out}");
    out.into_owned()
}

/// The hex word after `prefix` in `text`.
fn word_after(text: &str, prefix: &str) -> String {
    let at = text.find(prefix).unwrap_or_else(|| panic!("no {prefix:?} in {text}"));
    text[at + prefix.len()..].split_whitespace().next().unwrap_or_default().to_owned()
}

struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn docs_governance_md_joins_a_datacenter_by_vote() {
    let page = steps();
    let names: Vec<&str> = page.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, STEPS, "the steps of docs/governance.md, in order");
    let steps: BTreeMap<String, String> = page.into_iter().collect();

    let tmp = tempfile::tempdir().unwrap();
    let base = free_base(60);
    let net = Devnet::init(tmp.path(), 4, base);
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let refs: Vec<&Client> = apis.iter().collect();
    wait_converged(&refs, 3, MINUTE);

    let member = |i: usize, field: &str| net.file["nodes"][i][field].as_str().unwrap().to_owned();
    let port = base + 40;
    let dir = tmp.path().join("dc5");
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("DIR", dir.display().to_string());
    vars.insert("NAME", "dc5".into());
    vars.insert("LISTEN_IP", "127.0.0.1".into());
    vars.insert("P2P_PORT", port.to_string());
    vars.insert("CONSENSUS_PORT", (port + 1).to_string());
    vars.insert("HTTP_PORT", (port + 2).to_string());
    vars.insert("MEMBER_P2P", member(0, "p2p"));
    vars.insert("MEMBER_CONSENSUS", member(0, "consensus"));
    vars.insert("GENESIS", net.data_dir(0).join("genesis.json").display().to_string());
    vars.insert("NEW_NODE", format!("http://127.0.0.1:{}", port + 2));

    // 1. Create the node; it takes the consortium's block timing, as the page says.
    run(&steps, "init", &vars);
    let theirs = std::fs::read_to_string(net.data_dir(0).join("config.toml")).unwrap();
    for key in ["batch_interval_ms", "idle_heartbeat_ms"] {
        let value =
            theirs.lines().find_map(|l| l.trim_start().strip_prefix(&format!("{key} = "))).unwrap();
        set_config(&dir.join("config.toml"), key, value);
    }

    // 2. Start it (the page's command, in the background).
    let log = std::fs::File::create(tmp.path().join("dc5.log")).unwrap();
    let start = format!("exec {}", steps["start"].trim());
    let node = Background(
        command(&start, &vars)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the node"),
    );
    let new = client(&vars["NEW_NODE"]);
    let head = apis[0].status().unwrap().height;
    wait_for("the new node to follow the chain", 2 * MINUTE, || {
        (new.status().ok()?.height >= head).then_some(())
    });

    // 3. It follows, as no validator; its key.
    let out = run(&steps, "follow", &vars);
    assert!(out.contains("validator  no"), "{out}");
    let key = read_key(&dir.join("node.key")).public().to_string();
    assert!(out.contains(&key), "{out}");
    vars.insert("NEW_KEY", key.clone());
    vars.insert("NEW_CONSENSUS_ADDRESS", format!("/ip4/127.0.0.1/tcp/{}", port + 1));

    // 4. Member dc1 proposes.
    vars.insert("MEMBER_KEY", net.data_dir(0).join("node.key").display().to_string());
    vars.insert("MEMBER_NODE", apis[0].base().to_owned());
    let out = run(&steps, "propose", &vars);
    let id = word_after(&out, "proposal ");
    let proposal = surplus_ledger::parse_hex::<32>(&id, "proposal id").unwrap();
    wait_for("the proposal in a block", MINUTE, || apis[0].proposal(&proposal).ok());
    vars.insert("PROPOSAL", id);

    // 5. dc1, dc2 and dc3 vote (3 of 4: it passes).
    for i in 0..3 {
        vars.insert("MEMBER_KEY", net.data_dir(i).join("node.key").display().to_string());
        vars.insert("MEMBER_NODE", apis[i].base().to_owned());
        let out = run(&steps, "vote", &vars);
        assert!(out.contains("open"), "{out}");
        wait_for("the vote in a block", MINUTE, || {
            let p = apis[0].proposal(&proposal).ok()?;
            let voted = p.voters.iter().any(|v| v.key == net.node_key(i) && v.vote == Some(true));
            voted.then_some(())
        });
    }
    let p = apis[0].proposal(&proposal).unwrap();
    assert_eq!(p.status, ProposalStatus::Passed);

    // 6. At the effective height it is a validator.
    wait_for("the effective height", 3 * MINUTE, || {
        (new.status().ok()?.height >= p.effective).then_some(())
    });
    wait_for("the new node to say it is a validator", MINUTE, || {
        new.status().ok()?.validator.then_some(())
    });
    let out = run(&steps, "joined", &vars);
    assert!(out.contains("validator  yes"), "{out}");
    assert!(out.contains(&key), "{out}");

    // 7. It votes on the next proposal.
    let fee = apis[0].governance().unwrap().params.fee_bps;
    let out = Command::new(surplus_bin())
        .args(["gov", "propose", "set-fees", "--fee-bps", &(fee + 1).to_string()])
        .args(["--penalty-bps", "0", "--voting-blocks", "100", "--json", "--key"])
        .arg(net.data_dir(1).join("node.key"))
        .args(["--node", apis[1].base()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let next: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let next_id = next["id"].as_str().unwrap().to_owned();
    let next = surplus_ledger::parse_hex::<32>(&next_id, "id").unwrap();
    wait_for("the next proposal in a block", MINUTE, || new.proposal(&next).ok());
    vars.insert("NEXT_PROPOSAL", next_id);
    run(&steps, "new-member-votes", &vars);
    let mine = wait_for("the new member's vote in a block", MINUTE, || {
        let p = apis[0].proposal(&next).ok()?;
        p.voters.iter().find(|v| v.key.to_string() == key)?.vote
    });
    assert!(mine);

    drop(node);
    for n in nodes.iter_mut() {
        n.stop();
    }
    let report = audit(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["verified"], true, "{report}");
}
