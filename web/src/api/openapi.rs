//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, built from the route list.

use std::sync::OnceLock;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::routes::{routes, In, Route};

fn hex(description: &str) -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]*$", "description": description})
}

fn object(description: &str, properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "description": description, "properties": properties,
           "required": required})
}

fn any(description: &str) -> Value {
    json!({"type": "object", "description": description})
}

fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

fn array_of(description: &str, items: Value) -> Value {
    json!({"type": "array", "description": description, "items": items})
}

fn components() -> Value {
    let key = hex("public key, 64 hex digits");
    let hash = hex("hash, 64 hex digits");
    let int = json!({"type": "integer", "minimum": 0});
    let error = object(
        "Every error: a stable code and a message saying what is wrong and how to fix it.",
        json!({"error": object("The error", json!({
            "code": {"type": "string", "description": "stable, machine-readable (docs/api.md says what each means and what to do)",
                     "enum": surplus_contracts::Code::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
            "message": {"type": "string", "description": "for people"}
        }), &["code", "message"])}),
        &["error"],
    );
    let summary = object(
        "A block header in brief",
        json!({"height": int, "hash": hash, "time_ms": int, "entries": int, "proposer": key,
               "tree_size": int}),
        &["height", "hash", "time_ms", "entries", "proposer", "tree_size"],
    );
    let entry = object(
        "An entry in parts",
        json!({"index": int, "id": hash, "kind": {"type": "string"}, "kind_code": int,
               "author": {"oneOf": [key.clone(), {"type": "null"}]},
               "signature": {"oneOf": [hex("signature"), {"type": "null"}]},
               "payload": hex("payload"), "decoded": {"description": "the payload decoded"}}),
        &["index", "id", "kind", "payload"],
    );
    let price = object(
        "One clearing",
        json!({"height": int, "time_ms": int, "price": int, "slots": int}),
        &["height", "time_ms", "price", "slots"],
    );
    let checkpoint_body = object(
        "A node's statement of its ledger at a height",
        json!({"chain_id": {"type": "string"}, "height": int, "tree_size": int, "root": hash,
               "header_hash": hash}),
        &["chain_id", "height", "tree_size", "root", "header_hash"],
    );
    let checkpoint = object(
        "A checkpoint and its signer's signature",
        json!({"checkpoint": {"$ref": "#/components/schemas/Checkpoint"}, "signer": key,
               "signature": hex("ed25519 signature")}),
        &["checkpoint", "signer", "signature"],
    );
    let checkpoint_ref = json!({"$ref": "#/components/schemas/SignedCheckpoint"});
    let book_order = object(
        "A resting order",
        json!({"id": hash, "author": key, "slots": int, "free": int, "price": int,
               "hours": int, "window_start_ms": int, "window_end_ms": int, "expiry_ms": int,
               "height": int}),
        &["id", "author", "slots", "free", "price", "hours", "expiry_ms", "height"],
    );
    let side = object(
        "One side of a book",
        json!({"depth": array_of("best price first", object("Slots at one price",
                   json!({"price": int, "slots": int, "orders": int}),
                   &["price", "slots", "orders"])),
               "orders": array_of("priority order", json!({"$ref": "#/components/schemas/BookOrder"})),
               "truncated": {"type": "boolean"}}),
        &["depth", "orders", "truncated"],
    );
    let order = json!({"allOf": [{"$ref": "#/components/schemas/BookOrder"}, object("", json!({
        "side": {"enum": ["offer", "bid"]}, "market": {"type": "string"}}), &["side", "market"])]});
    let order_ref = order.clone();
    let fill = object(
        "A trade",
        json!({"bid": hash, "offer": hash, "buyer": key, "provider": key,
               "market": {"type": "string"}, "slots": int, "start_ms": int, "end_ms": int,
               "price": int}),
        &["bid", "offer", "buyer", "provider", "market", "slots", "start_ms", "end_ms", "price"],
    );
    let lease = object(
        "A lease",
        json!({"id": hash, "fill": {"$ref": "#/components/schemas/Fill"}, "height": int,
               "hours": int, "segments": array_of("priced stretches", any("{hours, price}")),
               "hours_paid": int, "escrow": int,
               "status": {"type": "string", "description": "active, completed, terminated_by_buyer, terminated_by_provider"},
               "grant": {"description": "the recorded credential (token hash, revocation ids), or null"}}),
        &["id", "fill", "height", "hours", "hours_paid", "escrow", "status"],
    );
    let lease_ref = json!({"$ref": "#/components/schemas/Lease"});
    json!({
        "Error": error,
        "Status": object("The node's status", json!({
            "chain_id": {"type": "string"}, "node": {"type": "string"}, "public_key": key,
            "height": int, "head_hash": hash, "peers": int, "validator": {"type": "boolean"},
            "mempool": int, "synced": {"type": "boolean"}}),
            &["chain_id", "public_key", "height", "head_hash"]),
        "Chain": object("The chain", json!({"chain_id": {"type": "string"},
            "validators": array_of("genesis order", key.clone()), "quorum": int}),
            &["chain_id", "validators", "quorum"]),
        "Submit": object("A signed entry", json!({"entry": hex("Entry::encode(), hex")}),
            &["entry"]),
        "Submitted": object("An admitted entry", json!({"id": hash}), &["id"]),
        "Submission": object("What became of a submitted entry", json!({"id": hash,
            "status": {"type": "string", "enum": ["pending", "committed", "dropped"]},
            "waits_for_seq": {"type": "boolean", "description": "pending: a transaction waiting for earlier sequence numbers"},
            "height": {"type": "integer", "minimum": 0, "description": "committed: the block"},
            "code": {"type": "string", "description": "dropped: the refusal code"},
            "message": {"type": "string", "description": "dropped: what happened"}}),
            &["id", "status"]),
        "EntryAt": object("A committed entry", json!({"index": int, "height": int, "id": hash,
            "kind": {"type": "string"}, "entry": hex("Entry::encode(), hex"), "view": entry,
            "decoded": {"description": "the payload decoded"}}),
            &["index", "height", "id", "kind", "entry"]),
        "BlockSummary": summary,
        "BlockSummaries": array_of("Newest first", json!({"$ref": "#/components/schemas/BlockSummary"})),
        "Block": object("A whole block", json!({"height": int, "hash": hash,
            "header": any("The header (version, chain_id, height, prev_hash, timestamp_ms, tree_size, merkle_root, state_root, proposer)"),
            "certificate": any("{round, signatures: [{validator, signer, signature}]}"),
            "entries": array_of("The entries", entry), "entry_count": int,
            "committed_ms": int, "filled_bids": array_of("bid ids", hash.clone())}),
            &["height", "hash", "header", "entry_count"]),
        "Markets": array_of("The catalogue's markets", object("A market", json!({
            "market": {"type": "string", "description": "class@region"},
            "class": {"type": "string"}, "description": {"type": "string"},
            "region": {"type": "string"}, "last_price": nullable(int.clone()),
            "offers": int, "bids": int}), &["market", "class", "region", "offers", "bids"])),
        "PriceHistory": array_of("Oldest first", price),
        "BookOrder": book_order.clone(),
        "Book": object("A market's resting book", json!({
            "market": {"type": "string"}, "now_ms": int, "last_price": nullable(int.clone()),
            "offers": side.clone(), "bids": side}),
            &["market", "now_ms", "offers", "bids"]),
        "Orders": array_of("Resting orders, oldest first", order),
        "Account": object("An account", json!({"account": key, "balance": int, "seq": int}),
            &["account", "balance", "seq"]),
        "Fill": fill,
        "Lease": lease.clone(),
        "LeaseList": object("Leases", json!({"leases": array_of("In id order", lease_ref.clone()),
            "truncated": {"type": "boolean"}}), &["leases", "truncated"]),
        "LeaseView": object("A lease", json!({"lease": lease_ref.clone(),
            "provisioning": {"description": "hook outcomes"}}), &["lease"]),
        "Checkpoint": checkpoint_body,
        "SignedCheckpoint": checkpoint.clone(),
        "ProofBundle": object("A self-contained inclusion proof", json!({
            "format": {"const": "surplus-inclusion-proof/v1"}, "entry_index": int,
            "entry_height": int, "entry": hex("Entry::encode(), hex"), "tree_size": int,
            "path": array_of("audit path, leaf to root", hash.clone()),
            "checkpoint": {"$ref": "#/components/schemas/Checkpoint"},
            "signer": nullable(key.clone()), "signature": nullable(hex("signature")),
            "header": any("The checkpoint block's header"),
            "certificate": any("Its commit certificate")}),
            &["format", "entry_index", "entry_height", "entry", "tree_size", "path",
              "checkpoint", "header", "certificate"]),
        "Challenge": any("{challenge, expires_ms, ...}: what the buyer signs"),
        "CredentialRequest": object("A signed challenge", json!({
            "challenge": hex("the challenge as issued"),
            "signature": hex("the buyer's signature over the challenge bytes")}),
            &["challenge", "signature"]),
        "Credential": object("The lease's token", json!({"token": {"type": "string"}}), &["token"]),
        "GatewayRequest": object("A presented credential", json!({
            "token": {"type": "string", "description": "base64"},
            "operation": {"type": "string", "default": "read"},
            "lease": hash}), &["token"]),
        "GatewayAnswer": any("What the token grants"),
        "Checkpoints": array_of("This node's first", checkpoint_ref.clone()),
        "Operator": object("The operator's view", json!({
            "status": {"$ref": "#/components/schemas/Status"},
            "inventory": {"description": "the inventory file as the node read it, or null"},
            "offers": array_of("its provider's resting offers", order_ref),
            "leases": array_of("leases as provider, newest first", lease_ref),
            "active_leases": int,
            "leased": array_of("slots leased per block, oldest first", object("", json!({
                "height": int, "time_ms": int, "slots": int}), &["height", "time_ms", "slots"])),
            "earnings": object("Earnings", json!({"balance": int, "paid": int, "escrow": int}),
                &["balance", "paid", "escrow"]),
            "peers": array_of("connected peers", object("", json!({
                "id": {"type": "string"}, "address": {"type": "string"},
                "score": {"type": ["number", "null"], "description":
                    "gossip score: negative after invalid messages, ignored below -80"}}),
                &["id", "address", "score"])),
            "checkpoints": array_of("", checkpoint_ref)}),
            &["status", "offers", "leases", "earnings", "peers", "checkpoints"]),
        "FaucetRequest": object("The account to fund", json!({"account": key}), &["account"]),
        "FaucetGrant": object("A grant", json!({"account": key, "amount": int, "entry": hash}),
            &["account", "amount", "entry"]),
        "Event": {"description": "What a committed block changed (the data of an SSE frame)",
            "oneOf": [
                object("event: block", json!({"type": {"const": "block"}, "height": int,
                    "hash": hash.clone(), "time_ms": int, "entries": int, "tree_size": int}),
                    &["type", "height", "hash"]),
                object("event: fill", json!({"type": {"const": "fill"}, "lease": hash.clone(),
                    "height": int, "fill": {"$ref": "#/components/schemas/Fill"}}),
                    &["type", "lease", "height", "fill"]),
                object("event: lease", json!({"type": {"const": "lease"}, "height": int,
                    "lease": {"$ref": "#/components/schemas/Lease"}}), &["type", "height", "lease"]),
            ]},
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad input: the message names what is wrong",
        403 => "Not allowed",
        404 => "Not found here",
        405 => "Method not allowed",
        409 => "Conflicts with what the node holds",
        413 => "Body too large",
        415 => "Body is not JSON",
        429 => "Too many requests from this address (Retry-After)",
        503 => "Unavailable now; retry later",
        _ => "Internal error (opaque; the node's log has the detail)",
    }
}

fn operation(r: &Route) -> Value {
    let mut responses = Map::new();
    let content = match r.answer.schema {
        Some(s) => {
            json!({r.answer.content_type: {"schema": {"$ref": format!("#/components/schemas/{s}")}}})
        }
        None => json!({r.answer.content_type: {"schema": {"type": "string"}}}),
    };
    responses.insert(
        r.answer.status.to_string(),
        json!({"description": r.answer.description, "content": content}),
    );
    let api = r.path.starts_with(super::routes::API);
    let always: &[u16] = if api { &[405, 429, 500] } else { &[] };
    for s in r.errors.iter().chain(always) {
        responses.insert(
            s.to_string(),
            json!({"description": reason(*s), "content": {"application/json":
                {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let params: Vec<Value> = r
        .params
        .iter()
        .map(|p| {
            json!({"name": p.name, "in": if p.location == In::Path { "path" } else { "query" },
                   "required": p.required, "description": p.description,
                   "schema": {"type": p.kind}})
        })
        .collect();
    let id: String = format!("{} {}", r.method, r.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let mut op = json!({"summary": r.summary, "operationId": id.trim_matches('_'),
                        "parameters": params, "responses": responses});
    if let Some(body) = r.body {
        op["requestBody"] = json!({"required": true, "content": {"application/json":
            {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let item = paths.entry(r.path).or_insert_with(|| json!({}));
        item[r.method.as_str().to_ascii_lowercase()] = operation(&r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Surplus node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API every Surplus node serves. Hashes and keys are \
                lowercase hex, amounts integers in units, times ms since the epoch. Every error \
                is {\"error\": {\"code\", \"message\"}}. See docs/api.md."
        },
        "paths": paths,
        "components": {"schemas": components()},
    })
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> HttpResponse {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    let body = DOC.get_or_init(|| Bytes::from(document().to_string()));
    HttpResponse::Ok().content_type("application/json").body(body.clone())
}
