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
            "code": {"type": "string", "description": "stable, machine-readable"},
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
    let checkpoint = any("A signed checkpoint: {checkpoint: {chain_id, height, tree_size, root, header_hash}, signer, signature}");
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
        "Markets": array_of("The catalogue's markets", any("{market, class, description, region, last_price, offers, bids}")),
        "PriceHistory": array_of("Oldest first", price),
        "Book": any("{market, now_ms, last_price, offers: BookSide, bids: BookSide}; a side is {depth: [{price, slots, orders}], orders: [...], truncated}"),
        "Orders": array_of("Resting orders", any("{side, market, id, author, slots, free, price, hours, window_start_ms, window_end_ms, expiry_ms, height}")),
        "Account": object("An account", json!({"account": key, "balance": int, "seq": int}),
            &["account", "balance", "seq"]),
        "LeaseList": object("Leases", json!({"leases": array_of("", any("A lease")),
            "truncated": {"type": "boolean"}}), &["leases", "truncated"]),
        "LeaseView": object("A lease", json!({"lease": any("The lease"),
            "provisioning": {"description": "hook outcomes"}}), &["lease"]),
        "ProofBundle": any("surplus-inclusion-proof/v1: {format, entry_index, entry_height, entry, tree_size, path, checkpoint, signer, signature, header, certificate}"),
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
        "Checkpoints": array_of("This node's first", checkpoint),
        "Operator": any("{status, inventory, offers, leases, active_leases, leased, earnings: {balance, paid, escrow}, peers, checkpoints}"),
        "FaucetRequest": object("The account to fund", json!({"account": key}), &["account"]),
        "FaucetGrant": object("A grant", json!({"account": key, "amount": int, "entry": hash}),
            &["account", "amount", "entry"]),
        "Event": any("{type: block|fill|lease, ...}: what a committed block changed"),
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
