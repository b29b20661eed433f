//! The web issue's API on real node processes: the devnet faucet, live events, lease inclusion
//! proofs verified offline, full blocks, metrics, the exported ledger, history that survives a
//! restart, and real answers that match the schemas of the node's own `/openapi.json`.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use surplus_api::{Event, Submission};
use surplus_client::Client;
use surplus_ledger::{SecretKey, ValidatorSet};
use surplus_market::{Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Reads `GET url` as server-sent events on a thread for at most `limit`, sending each
/// `(event, data)` pair; the thread ends at the deadline or when the receiver is dropped.
fn events(url: String, limit: Duration) -> mpsc::Receiver<(String, Value)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let Ok(resp) = ureq::get(&url).timeout(limit).call() else { return };
        let mut event = String::new();
        for line in BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if Instant::now() > deadline {
                return;
            }
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(d).unwrap_or(Value::Null);
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Starts the in-process node the web tests run on (`surplus_service::solo`) for the length
/// of the check, and compares its refusals with those of the devnet node at `real`.
fn same_refusals_as_the_in_process_node(real: &str, market: &surplus_market::Market) {
    use surplus_service::solo::{Solo, Spec};
    let solo = Solo::start(Spec::new(SecretKey::from_seed([0x11; 32]))).unwrap();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let (compared, differ) =
        surplus_tests::parity::compare(real, &solo.url(), market, now).unwrap();
    solo.stop().unwrap();
    assert!(compared > 20);
    assert!(
        differ.is_empty(),
        "the devnet node and the in-process node answer differently:\n{}",
        differ.join("\n")
    );
}

/// A raw exchange with the node, for the schema checks: the status and the JSON body (`null`
/// if the body is not JSON).
fn raw(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    raw_as(method, url, body, None)
}

/// [`raw`], sending `bearer` as the operator token when given.
fn raw_as(method: &str, url: &str, body: Option<&Value>, bearer: Option<&str>) -> (u16, Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = bearer {
        req = req.set("Authorization", &format!("Bearer {}", t.trim()));
    }
    let resp = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    (status, resp.into_json().unwrap_or(Value::Null))
}

/// A node's OpenAPI document, with its schemas closed: every object schema that does not say
/// otherwise admits no property it does not list, so an undocumented field in an answer fails.
struct OpenApi {
    doc: Value,
    /// Properties the document leaves free-form (any JSON: hook outcomes, decoded payloads).
    free_form: std::collections::BTreeSet<String>,
    /// `schemas`: each component closed; `open`: each component with its own top level left
    /// open, for use inside `allOf`/`oneOf`/`anyOf`, whose parent closes it instead (a closed
    /// member would refuse the properties of its siblings, as in the flattened `OrderView`).
    components: Value,
    /// The node's operator token, sent with every request.
    token: Option<String>,
}

/// `schema` closed with `unevaluatedProperties: false` (draft 2020-12: it sees the properties
/// that `$ref`, `allOf`, `oneOf` and `anyOf` evaluated) wherever it lists properties or
/// composes schemas and says nothing of other properties; free-form objects (no `properties`)
/// stay open. `open` leaves this level itself open (a member of a composition).
fn close(schema: &Value, open: bool) -> Value {
    let Value::Object(m) = schema else { return schema.clone() };
    let mut out = Map::new();
    for (k, v) in m {
        let v = match (k.as_str(), v) {
            ("allOf" | "oneOf" | "anyOf", Value::Array(items)) => {
                Value::Array(items.iter().map(|s| close(s, true)).collect())
            }
            ("properties" | "patternProperties" | "$defs", Value::Object(props)) => {
                Value::Object(props.iter().map(|(n, s)| (n.clone(), close(s, false))).collect())
            }
            ("prefixItems", Value::Array(items)) => {
                Value::Array(items.iter().map(|s| close(s, false)).collect())
            }
            ("items" | "additionalProperties" | "not" | "contains" | "propertyNames", s) => {
                close(s, false)
            }
            ("$ref", Value::String(r)) if open => {
                Value::String(r.replace("#/components/schemas/", "#/components/open/"))
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    let composes = ["properties", "allOf", "oneOf", "anyOf"].iter().any(|k| m.contains_key(*k));
    let says = m.contains_key("additionalProperties") || m.contains_key("unevaluatedProperties");
    if !open && composes && !says {
        out.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

impl OpenApi {
    /// `GET /openapi.json` of the node at `base`.
    fn fetch(base: &str) -> Self {
        let (status, doc) = raw("GET", &format!("{base}/openapi.json"), None);
        assert_eq!(status, 200, "{doc}");
        assert_eq!(doc["openapi"], "3.1.0", "an OpenAPI 3.1 document (JSON Schema 2020-12)");
        let schemas = doc["components"]["schemas"].as_object().expect("components.schemas");
        let closed: Map<String, Value> =
            schemas.iter().map(|(n, s)| (n.clone(), close(s, false))).collect();
        let open: Map<String, Value> =
            schemas.iter().map(|(n, s)| (n.clone(), close(s, true))).collect();
        let mut free_form = std::collections::BTreeSet::new();
        for s in schemas.values() {
            for (name, p) in s["properties"].as_object().into_iter().flatten() {
                let typed =
                    ["type", "$ref", "properties", "items", "allOf", "oneOf", "anyOf", "enum"];
                if !typed.iter().any(|k| p.get(*k).is_some()) {
                    free_form.insert(name.clone());
                }
            }
        }
        Self { doc, free_form, components: json!({ "schemas": closed, "open": open }), token: None }
    }

    /// Validates `answer` against `schema` (which may refer to the components); the errors.
    /// Then adds an undocumented field to each object of the answer in turn (the first item of
    /// each list, nothing inside free-form properties): each must fail, or the closing of the
    /// schemas above missed a place.
    fn validate(&self, schema: &Value, answer: &Value) -> Vec<String> {
        let mut root = close(schema, false);
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        root["components"] = self.components.clone();
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the schema {schema} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(answer)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            return errors;
        }
        let mut objects = Vec::new();
        self.objects(answer, String::new(), &mut objects);
        objects
            .into_iter()
            .filter_map(|at| {
                let mut probe = answer.clone();
                probe.pointer_mut(&at)?.as_object_mut()?.insert("undocumented".into(), json!(1));
                validator
                    .is_valid(&probe)
                    .then(|| format!("at {at:?}: an undocumented field passes"))
            })
            .collect()
    }

    /// JSON pointers to the objects in `v` (the first item of each list; not inside free-form
    /// properties).
    fn objects(&self, v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter().filter(|(k, _)| !self.free_form.contains(*k)) {
                    self.objects(child, format!("{at}/{k}"), out);
                }
                out.push(at);
            }
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    self.objects(first, format!("{at}/0"), out);
                }
            }
            _ => {}
        }
    }

    /// Sends `method path [body]` to `base`, expects `status`, and validates the answer against
    /// the schema the document declares for that status of `route` (the path template). The
    /// answer, or what is wrong with it.
    fn check(
        &self,
        base: &str,
        (method, route, path): (&str, &str, &str),
        body: Option<&Value>,
        status: u16,
    ) -> Result<Value, String> {
        let what = format!("{method} {path}");
        let (got, answer) = raw_as(method, &format!("{base}{path}"), body, self.token.as_deref());
        if got != status {
            return Err(format!("{what}: HTTP {got}, not {status}: {answer}"));
        }
        let declared = &self.doc["paths"][route][method.to_ascii_lowercase()]["responses"]
            [status.to_string()]["content"]["application/json"]["schema"];
        if declared.is_null() {
            return Err(format!(
                "{what}: the document declares no JSON answer {status} for {route}"
            ));
        }
        let errors = self.validate(declared, &answer);
        if errors.is_empty() {
            Ok(answer)
        } else {
            Err(format!(
                "{what} ({status}) against {declared}:\n  {}\n  answer: {answer}",
                errors.join("\n  ")
            ))
        }
    }

    /// Validates `value` against the component schema `name`.
    fn check_component(&self, name: &str, value: &Value) -> Result<(), String> {
        let errors =
            self.validate(&json!({ "$ref": format!("#/components/schemas/{name}") }), value);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{name}: {}\n  value: {value}", errors.join("\n  ")))
        }
    }
}

#[test]
fn faucet_events_proofs_blocks_metrics_and_export_on_a_devnet() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 200, 1000);
    let mut nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let chain_id = net.chain_id().to_owned();

    // The faucet funds a brand-new key once; a second request is refused with a reason.
    let buyer = SecretKey::from_seed([0x5e; 32]);
    let grant = apis[0].faucet(&buyer.public()).unwrap();
    assert_eq!(grant.account, buyer.public());
    let amount = grant.amount;
    assert!(amount > 0);
    let again = refusal("a second faucet request", apis[0].faucet(&buyer.public()));
    assert_eq!(again, (409, "faucet_spent".to_owned()));
    for api in &apis[1..3] {
        wait_for("the faucet's credits", 2 * MINUTE, || {
            (api.account(&buyer.public()).ok()?.balance == amount).then_some(())
        });
    }
    let later = refusal("the faucet of another node", apis[2].faucet(&buyer.public()));
    assert_eq!(later.0, 409, "a funded account is not funded again by another node: {later:?}");

    // Live events for the buyer, from another node than the one it bids through.
    let stream =
        events(format!("{}/api/v1/events?account={}", apis[1].base(), buyer.public()), 2 * MINUTE);

    // The buyer bids, with the faucet's credits, on dc1's first inventory pool.
    let (market, reserve) = first_pool(&net.data_dir(0));
    wait_for_offer(&apis[0], &market, &net.node_key(0));
    let bid = one_slot_bid(&market, reserve * 2, 1, 600_000);
    assert!(reserve * 2 <= amount, "the faucet's grant must pay for the test's bid");
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    let bid_id = apis[0].submit(&entry).unwrap_or_else(|e| panic!("bid refused: {e}"));
    assert_eq!(bid_id, entry.id());
    // Its fate can be looked up on the node that acknowledged it.
    let committed_at = wait_for("the bid's receipt", 2 * MINUTE, || {
        let v = apis[0].submission(&bid_id).ok()?;
        assert_eq!(v.id, bid_id);
        match v.submission {
            Submission::Committed { height } => Some(height),
            _ => None,
        }
    });
    assert!(committed_at > 0);

    // The same bad requests get the same status and code from this devnet node and from the
    // in-process node the web tests run on.
    same_refusals_as_the_in_process_node(apis[1].base(), &market);

    // The fill and the lease arrive as events; only the buyer's events (and blocks) come.
    let deadline = Instant::now() + 2 * MINUTE;
    let (mut lease_id, mut saw_block, mut saw_lease, mut saw_order) = (None, false, false, false);
    let mut streamed = Vec::new();
    while !(saw_block && saw_lease && saw_order) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (name, data) = stream.recv_timeout(left).expect("the lease's events within 2 minutes");
        let event: Event = serde_json::from_value(data.clone())
            .unwrap_or_else(|e| panic!("event {name} is not an Event ({e}): {data}"));
        assert_eq!(data["type"], name.as_str(), "the SSE event name is the data's type");
        match event {
            Event::Block { height, .. } => saw_block = height > 0,
            Event::Fill { lease, fill, .. } => {
                assert_eq!(fill.bid, bid_id, "only the buyer's fills: {data}");
                lease_id = Some(lease);
            }
            Event::Lease { lease, .. } => {
                assert_eq!(lease.fill.buyer, buyer.public(), "only the buyer's leases: {data}");
                saw_lease = lease_id == Some(lease.id);
            }
            Event::Governance { .. } => panic!("no governance entry was sent: {data}"),
            Event::Order { account, order, status, .. } => {
                assert_eq!(account, buyer.public(), "only the buyer's orders: {data}");
                // The bid filled in the block that took it in.
                saw_order |= order == bid_id && status == surplus_api::OrderStatus::Filled;
            }
        }
        streamed.push((name, data));
    }
    let lease_id = lease_id.unwrap();
    let lease = wait_for("the lease on dc3", MINUTE, || apis[2].lease(&lease_id).ok());
    assert_eq!(lease.lease.id, lease_id);
    let lease_height = lease.lease.height;

    // The provider's node shows the lease's provisioning outcome, but not its access details:
    // lease ids are public, access is for the credential's holder (through the gateway).
    let provisioned = wait_for("dc1's start hook record", MINUTE, || {
        let v = apis[0].lease(&lease_id).ok()?;
        v.provisioning.as_ref()?["start"].is_object().then_some(v)
    });
    let start = &provisioned.provisioning.as_ref().unwrap()["start"];
    assert_eq!(start["ok"], true, "{provisioned:?}");
    let shown = serde_json::to_string(&provisioned).unwrap();
    assert!(!shown.contains("\"access\""), "{shown}");

    // dc3 proves the lease's fill against its own signed checkpoint; it verifies offline
    // against the genesis validators, and a tampered copy does not.
    let chain = apis[2].chain().unwrap();
    assert_eq!(chain.chain_id, chain_id);
    let validators = ValidatorSet::new(chain.validators).unwrap();
    let dc3 = net.node_key(2);
    let bundle = wait_for("a proof of the lease", MINUTE, || apis[2].lease_proof(&lease_id).ok());
    let checked = bundle.verify(Some(&dc3), Some(&validators)).expect("the proof verifies");
    assert_eq!(checked.entry.id(), lease_id);
    assert!(checked.certificate_checked);
    let mut tampered = bundle.clone();
    tampered.checkpoint.tree_size += 1;
    assert!(tampered.verify(Some(&dc3), Some(&validators)).is_err());

    // The full block holds the fill; the block list and the entry route agree with it.
    let block = apis[3].block(lease_height, true).unwrap();
    assert_eq!(block.height, lease_height);
    let entries = block.entries.as_ref().expect("a recent block's entries");
    let fill = entries.iter().find(|e| e.id == lease_id).expect("the fill");
    assert_eq!(fill.kind, "fill");
    let index = fill.index;
    let by_index = apis[3].entry(index).unwrap();
    assert_eq!(by_index.height, lease_height);
    assert_eq!(by_index.id, lease_id);
    assert_eq!(index, bundle.entry_index);

    // Real answers match the schemas of the node's own OpenAPI document: every GET route that
    // answers JSON, with real ids, and the answers of the posts the buyer makes.
    let failures = answers_match_the_openapi_document(
        &apis[0],
        &OpenApiCase {
            operator_token: &std::fs::read_to_string(net.data_dir(0).join("operator.token"))
                .unwrap(),
            market: &market,
            lease: &lease_id,
            bid: &bid_id,
            buyer: &buyer,
        },
        &streamed,
    );
    assert!(
        failures.is_empty(),
        "{} answers do not match /openapi.json:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Metrics: the node that took the bid measured its order-to-lease latency.
    let text = apis[0].metrics().unwrap();
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert!(metric("surplus_height") >= lease_height as f64);
    assert!(metric("surplus_orders_accepted_total") >= 1.0);
    assert!(metric("surplus_order_to_lease_seconds_count") >= 1.0);

    // The exported ledger downloads, audits clean, and reaches the lease's block.
    let file = tmp.path().join("export.surplus");
    let mut out = std::fs::File::create(&file).unwrap();
    let bytes = apis[1].export(&mut out).unwrap();
    drop(out);
    assert!(bytes > 0);
    let audited = surplus(&["audit", file.to_str().unwrap(), "--json"]);
    assert!(audited.status.success(), "{}", String::from_utf8_lossy(&audited.stderr));
    let audit: Value = serde_json::from_slice(&audited.stdout).unwrap();
    assert_eq!(audit["verified"], true, "{audit}");
    assert_eq!(audit["report"]["chain_id"], chain_id.as_str(), "{audit}");
    let height = audit["report"]["head_height"].as_u64();
    assert!(height.is_some_and(|h| h >= lease_height), "the export stops early: {audit}");

    // After a restart the node still serves the lease's block and the market's price history.
    nodes[3].stop();
    nodes[3] = NodeProc::start(&net.data_dir(3), apis[3].base());
    nodes[3].wait_up();
    let again = apis[3].block(lease_height, true).unwrap();
    assert_eq!(again.hash, block.hash);
    assert!(again.committed_ms.is_some(), "the recent window was refilled: {again:?}");
    let history = apis[3].history(&market, None).unwrap();
    let point = history.iter().find(|p| p.height == lease_height);
    let price = lease.lease.fill.price;
    assert_eq!(point.expect("the fill's clearing in the history").price, price);
}

/// The real ids the schema checks use.
struct OpenApiCase<'a> {
    /// The node's operator token.
    operator_token: &'a str,
    market: &'a surplus_market::Market,
    lease: &'a surplus_ledger::Hash,
    bid: &'a surplus_ledger::Hash,
    buyer: &'a SecretKey,
}

/// Fetches `/openapi.json` from `node` (the lease's provider), sends it every JSON route it can
/// with real ids, and validates each answer, and each streamed event, against the schema the
/// document declares for it; returns what did not match.
fn answers_match_the_openapi_document(
    node: &Client,
    case: &OpenApiCase,
    streamed: &[(String, Value)],
) -> Vec<String> {
    let base = node.base();
    // The operator's route is closed without the operator token.
    let (got, answer) = raw("GET", &format!("{base}/api/v1/operator"), None);
    assert_eq!((got, &answer["error"]["code"]), (401, &json!("operator_only")), "{answer}");
    let doc = OpenApi { token: Some(case.operator_token.to_owned()), ..OpenApi::fetch(base) };
    let (market, lease) = (case.market.to_string(), hex::encode(case.lease));
    let (bid, buyer) = (hex::encode(case.bid), case.buyer.public().to_string());
    let status = node.status().unwrap();
    let provider = status.public_key.to_string();
    let entry_index = node.lease_proof(case.lease).unwrap().entry_index;
    // The credential needs the provider's grant on the ledger.
    let lease_height = wait_for("the lease's grant", MINUTE, || {
        let l = node.lease(case.lease).ok()?.lease;
        l.grant.is_some().then_some(l.height)
    });
    let unknown = hex::encode([0x42u8; 32]);
    let get = |route: &'static str, path: String| ("GET", route, path);
    let mut checks: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        get("/api/v1/status", "/api/v1/status".into()),
        get("/api/v1/chain", "/api/v1/chain".into()),
        get("/api/v1/accounts/{key}", format!("/api/v1/accounts/{buyer}")),
        get("/api/v1/accounts/{key}", format!("/api/v1/accounts/{provider}")),
        get("/api/v1/blocks", "/api/v1/blocks?limit=5".into()),
        // A block with its entries (the fill), without them, and the genesis block (its
        // allocation, parameters and validators decoded).
        get("/api/v1/blocks/{height}", format!("/api/v1/blocks/{lease_height}")),
        get("/api/v1/blocks/{height}", format!("/api/v1/blocks/{lease_height}?entries=false")),
        get("/api/v1/blocks/{height}", "/api/v1/blocks/0".into()),
        get("/api/v1/entries/{index}", format!("/api/v1/entries/{entry_index}")),
        get("/api/v1/entries/{index}", "/api/v1/entries/0".into()),
        get("/api/v1/submissions/{id}", format!("/api/v1/submissions/{bid}")),
        get("/api/v1/markets", "/api/v1/markets".into()),
        get("/api/v1/markets/{market}/history", format!("/api/v1/markets/{market}/history")),
        get("/api/v1/book", format!("/api/v1/book?market={market}")),
        get("/api/v1/orders", format!("/api/v1/orders?account={provider}")),
        get("/api/v1/leases", "/api/v1/leases".into()),
        get("/api/v1/leases", format!("/api/v1/leases?account={buyer}&limit=1")),
        get("/api/v1/leases/{id}", format!("/api/v1/leases/{lease}")),
        get("/api/v1/leases/{id}/proof", format!("/api/v1/leases/{lease}/proof")),
        get("/api/v1/checkpoints", "/api/v1/checkpoints".into()),
        get("/api/v1/operator", "/api/v1/operator".into()),
        get("/api/v1/status/consortium", "/api/v1/status/consortium".into()),
    ]
    .into_iter()
    .map(|(m, r, p)| (m, r, p, None, 200))
    .collect();
    // Refusals: the error body, for statuses the route declares.
    checks.extend([
        ("GET", "/api/v1/events", "/api/v1/events?account=nothex".into(), None, 400),
        (
            "POST",
            "/api/v1/leases/{id}/challenge",
            format!("/api/v1/leases/{unknown}/challenge"),
            None,
            404,
        ),
        ("GET", "/api/v1/leases/{id}", format!("/api/v1/leases/{unknown}"), None, 404),
        ("GET", "/api/v1/submissions/{id}", "/api/v1/submissions/xyz".into(), None, 400),
        ("GET", "/api/v1/blocks/{height}", "/api/v1/blocks/99999999".into(), None, 404),
        ("GET", "/api/v1/accounts/{key}", "/api/v1/accounts/nothex".into(), None, 400),
        ("GET", "/api/v1/blocks", "/api/v1/blocks?limit=100000".into(), None, 400),
        ("GET", "/api/v1/book", "/api/v1/book?market=vm.nonexistent@nowhere".into(), None, 404),
        ("POST", "/api/v1/entries", "/api/v1/entries".into(), Some(json!({"entry": "zz"})), 400),
        ("POST", "/api/v1/faucet", "/api/v1/faucet".into(), Some(json!({"account": buyer})), 409),
    ]);
    // Posts whose answers are not refusals: a new account's faucet grant, a transfer from the
    // buyer to it and the transfer's receipt (pending, or committed already), and the buyer's
    // challenge (the credential and the gateway follow from it below).
    let newcomer = SecretKey::from_seed([0x5f; 32]).public();
    let seq = node.account(&case.buyer.public()).unwrap().seq;
    let tx = surplus_contracts::Tx::Transfer { to: newcomer, amount: 1, seq };
    let transfer =
        surplus_ledger::Entry::signed(&status.chain_id, tx.kind(), tx.encode(), case.buyer);
    let submit = json!({ "entry": hex::encode(transfer.encode()) });
    let receipt = format!("/api/v1/submissions/{}", hex::encode(transfer.id()));
    checks.extend([
        (
            "POST",
            "/api/v1/faucet",
            "/api/v1/faucet".into(),
            Some(json!({"account": newcomer})),
            202,
        ),
        ("POST", "/api/v1/entries", "/api/v1/entries".into(), Some(submit), 202),
        ("GET", "/api/v1/submissions/{id}", receipt, None, 200),
        (
            "POST",
            "/api/v1/leases/{id}/challenge",
            format!("/api/v1/leases/{lease}/challenge"),
            None,
            200,
        ),
    ]);
    let mut failures = Vec::new();
    let mut challenge = None;
    for (method, route, path, body, status) in &checks {
        match doc.check(base, (method, route, path), body.as_ref(), *status) {
            Ok(v) if *route == "/api/v1/leases/{id}/challenge" && *status == 200 => {
                challenge = Some(v)
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }

    // The buyer signs the challenge for its credential; the gateway reads the token.
    if let Some(c) = challenge {
        let c: surplus_api::ChallengeView = serde_json::from_value(c).unwrap();
        let nonce = surplus_ledger::parse_hex::<32>(&c.challenge, "challenge").unwrap();
        let signed =
            surplus_api::leases::challenge_bytes(&c.chain_id, case.lease, &nonce, c.expires_ms);
        let signature = case.buyer.sign(&signed).to_string();
        let body = json!({ "challenge": c.challenge, "signature": signature });
        let path = format!("/api/v1/leases/{lease}/credential");
        let route = ("POST", "/api/v1/leases/{id}/credential", path.as_str());
        match doc.check(base, route, Some(&body), 200) {
            Ok(token) => {
                let body = json!({ "token": token["token"], "operation": "read" });
                let route = ("POST", "/api/v1/gateway", "/api/v1/gateway");
                if let Err(e) = doc.check(base, route, Some(&body), 200) {
                    failures.push(e);
                }
                let forged = json!({ "token": "not base64!" });
                if let Err(e) = doc.check(base, route, Some(&forged), 400) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(e),
        }
    }

    // Answers of no documented route or method: the error body all the same.
    for (method, path, status) in
        [("GET", "/api/v1/nothing", 404), ("DELETE", "/api/v1/status", 405)]
    {
        let (got, answer) = raw(method, &format!("{base}{path}"), None);
        let checked = if got == status {
            doc.check_component("ErrorBody", &answer)
        } else {
            Err(format!("HTTP {got}, not {status}: {answer}"))
        };
        if let Err(e) = checked {
            failures.push(format!("{method} {path}: {e}"));
        }
    }

    // The event stream's data are `Event`s, as the document says of the stream.
    for (name, data) in streamed {
        if let Err(e) = doc.check_component("Event", data) {
            failures.push(format!("event {name}: {e}"));
        }
    }
    eprintln!(
        "openapi: {} answers and {} events checked, {} mismatches",
        checks.len() + 5,
        streamed.len(),
        failures.len()
    );
    failures
}
