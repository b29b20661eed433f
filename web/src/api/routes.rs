//! The one list of routes: each is registered from it and documented from it in
//! `/openapi.json`, so the two cannot drift apart.

use std::borrow::Cow;

use actix_web::http::Method;
use actix_web::web;
use surplus_api as api;
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::SignedCheckpoint;
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::{
    accounts, blocks, chain, checkpoints, credentials, entries, events, export, faucet, gateway,
    governance, leases, markets, metrics, openapi, operator, orders, state_proofs, status,
};

/// Where a parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
}

/// A parameter of a route.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Param {
    pub(crate) name: &'static str,
    pub(crate) location: In,
    pub(crate) required: bool,
    /// JSON schema type: `string` or `integer`.
    pub(crate) kind: &'static str,
    pub(crate) description: &'static str,
}

const fn path(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: In::Path, required: true, kind, description }
}

const fn query(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, location: In::Query, required: false, kind, description }
}

const fn required(p: Param) -> Param {
    Param { required: true, ..p }
}

/// Schemas by name, as the OpenAPI document's components hold them.
pub(crate) type Schemas = Vec<(String, RefOr<Schema>)>;

/// A JSON body: a type of `surplus_api` (or of the crates it uses), whose schema utoipa
/// derives, or a list of it.
#[derive(Clone, Copy)]
pub(crate) struct Body {
    /// The schema's name in the components.
    pub(crate) name: fn() -> Cow<'static, str>,
    /// Adds the schema and every schema it refers to.
    pub(crate) collect: fn(&mut Schemas),
    /// A JSON array of it.
    pub(crate) list: bool,
}

fn collect<T: ToSchema>(out: &mut Schemas) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

/// The body `T`.
pub(crate) fn body<T: ToSchema>() -> Body {
    Body { name: T::name, collect: collect::<T>, list: false }
}

/// A JSON array of `T`.
fn list_of<T: ToSchema>() -> Body {
    Body { list: true, ..body::<T>() }
}

/// The main answer of a route.
#[derive(Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    /// The JSON answer's type.
    pub(crate) schema: Option<Body>,
    pub(crate) description: &'static str,
}

fn json<T: ToSchema>(status: u16, description: &'static str) -> Answer {
    Answer { status, content_type: "application/json", schema: Some(body::<T>()), description }
}

fn list<T: ToSchema>(status: u16, description: &'static str) -> Answer {
    Answer { status, content_type: "application/json", schema: Some(list_of::<T>()), description }
}

const fn other(content_type: &'static str, description: &'static str) -> Answer {
    Answer { status: 200, content_type, schema: None, description }
}

/// One route.
pub(crate) struct Route {
    pub(crate) method: Method,
    /// The full path, parameters in braces (as OpenAPI and actix both write them).
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) params: Vec<Param>,
    /// The JSON request body.
    pub(crate) body: Option<Body>,
    pub(crate) answer: Answer,
    /// Error statuses besides 429 and 500, which every API route may answer.
    pub(crate) errors: &'static [u16],
    /// The handler; `None` for routes registered by another module (the UI's).
    pub(crate) handler: Option<fn() -> actix_web::Route>,
}

/// The prefix of the JSON API.
pub(crate) const API: &str = "/api/v1";

const KEY: &str = "a public key, 64 hex digits";
const LIMIT: &str = "most items in the answer";

/// Every route the node serves.
pub(crate) fn routes() -> Vec<Route> {
    let get = Method::GET;
    let post = Method::POST;
    vec![
        Route {
            method: get.clone(),
            path: "/healthz",
            summary: "Liveness: `ok` while the HTTP server runs.",
            params: vec![],
            body: None,
            answer: other("text/plain", "ok"),
            errors: &[],
            handler: Some(|| web::to(status::healthz)),
        },
        Route {
            method: get.clone(),
            path: "/metrics",
            summary: "Counters, gauges and the order-to-lease histogram, Prometheus text 0.0.4.",
            params: vec![],
            body: None,
            answer: other(crate::metrics::PROMETHEUS_CONTENT_TYPE, "The exposition"),
            errors: &[],
            handler: Some(|| web::to(metrics::metrics)),
        },
        Route {
            method: get.clone(),
            path: "/openapi.json",
            summary: "This document.",
            params: vec![],
            body: None,
            answer: other("application/json", "The OpenAPI 3.1 document"),
            errors: &[],
            handler: Some(|| web::to(openapi::openapi)),
        },
        Route {
            method: get.clone(),
            path: "/",
            summary: "The web UI's page.",
            params: vec![],
            body: None,
            answer: other("text/html", "The page"),
            errors: &[],
            handler: None,
        },
        Route {
            method: get.clone(),
            path: "/ui/{file}",
            summary: "A file of the web UI: `index.html`, `style.css`, `app.js` and the modules it imports (`blake3.js`, `encoding.js`, `keys.js`, `verify.js`, `ed25519.js`, `stateproof.js`, `charts.js`).",
            params: vec![path("file", "string", "file name")],
            body: None,
            answer: other("text/javascript", "The file"),
            errors: &[404],
            handler: None,
        },
        Route {
            method: get.clone(),
            path: "/api/v1/status",
            summary: "The node's status: chain id, key, head, peers, mempool.",
            params: vec![],
            body: None,
            answer: json::<api::Status>(200, "The status"),
            errors: &[],
            handler: Some(|| web::to(status::status)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/status/consortium",
            summary: "The consortium as this node sees it: the validators taking part, the age \
                      and rate of blocks, each provider's availability as the other \
                      datacenters measured it over 24 hours and 30 days, and the outages and \
                      maintenance windows of the last 30 days. No key needed.",
            params: vec![],
            body: None,
            answer: json::<api::ConsortiumStatus>(200, "The consortium's status"),
            errors: &[],
            handler: Some(|| web::to(status::consortium)),
        },
        Route {
            method: get.clone(),
            path: "/status",
            summary: "The consortium's status page: the same as /api/v1/status/consortium, as \
                      HTML for people (no script; reload it for the latest).",
            params: vec![],
            body: None,
            answer: other("text/html", "The page"),
            errors: &[],
            handler: Some(|| web::to(status::page)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/chain",
            summary: "The chain id and the validator set, with voting powers and quorum, that \
                      decides a height (by default the block after the head).",
            params: vec![query(
                "height",
                "integer",
                "the height whose deciding validator set to give; at most the head's + 1",
            )],
            body: None,
            answer: json::<api::ChainView>(200, "The chain"),
            errors: &[400, 404],
            handler: Some(|| web::to(chain::chain)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/governance",
            summary: "Governance after the head: the validator set with voting powers and \
                      addresses, the parameters in force, the proposals open or waiting for their \
                      height with their votes, rotated keys, and every validator set the ledger \
                      put in force with the height it decided from (docs/governance.md).",
            params: vec![],
            body: None,
            answer: json::<api::GovernanceView>(200, "Governance"),
            errors: &[],
            handler: Some(|| web::to(governance::governance)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/governance/proposals/{id}",
            summary: "One proposal open or waiting for its height, with its voters and tally.",
            params: vec![path("id", "string", "proposal id (its gov-propose entry's id), hex")],
            body: None,
            answer: json::<api::ProposalView>(200, "The proposal"),
            errors: &[400, 404],
            handler: Some(|| web::to(governance::proposal)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/entries",
            summary: "Submits a signed entry (order, cancel, transfer, lease transition, credential \
                      grant, governance entry, key rotation).",
            params: vec![],
            body: Some(body::<api::Submit>()),
            answer: json::<api::Submitted>(202, "Admitted to the mempool; the id"),
            errors: &[400, 403, 404, 409, 413, 415, 503],
            handler: Some(|| web::to(entries::submit)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/submissions",
            summary: "Submits several signed entries at once (1 to 1,000, within the body size \
                      limit): each is admitted or refused as POST /api/v1/entries would, with one \
                      result per entry in order; the node checks their signatures together and \
                      stores them with one flush. A node that sheds load refuses the whole batch.",
            params: vec![],
            body: Some(body::<api::SubmitMany>()),
            answer: json::<api::SubmittedMany>(200, "One result per entry: its id, or its error"),
            errors: &[400, 413, 415, 503],
            handler: Some(|| web::to(entries::submit_many)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/submissions/{id}",
            summary: "What became of an entry this node acknowledged or saw: pending, committed at a height, or dropped with its refusal code.",
            params: vec![path("id", "string", "the entry's id, as POST /api/v1/entries answered it")],
            body: None,
            answer: json::<api::SubmissionView>(200, "Its fate"),
            errors: &[400, 404],
            handler: Some(|| web::to(entries::submission)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/entries/{index}",
            summary: "The committed entry at a global index, decoded.",
            params: vec![path("index", "integer", "global index of the entry in the ledger")],
            body: None,
            answer: json::<api::EntryAt>(200, "The entry"),
            errors: &[400, 404],
            handler: Some(|| web::to(entries::one)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/blocks",
            summary: "Block summaries, newest first.",
            params: vec![
                query("before", "integer", "only blocks below this height (default: all)"),
                query("limit", "integer", "most blocks, 1 to 100 (default 20)"),
            ],
            body: None,
            answer: list::<api::BlockSummary>(200, "The blocks"),
            errors: &[400],
            handler: Some(|| web::to(blocks::list)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/blocks/{height}",
            summary: "A whole block: header, certificate, decoded entries, commit time here.",
            params: vec![
                path("height", "integer", "block height"),
                query("entries", "boolean", "false leaves the entries out (default true)"),
            ],
            body: None,
            answer: json::<api::BlockView>(200, "The block"),
            errors: &[400, 404],
            handler: Some(|| web::to(blocks::block)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/markets",
            summary: "Every market of the catalogue with its last price and resting orders.",
            params: vec![],
            body: None,
            answer: list::<api::MarketSummary>(200, "The markets"),
            errors: &[],
            handler: Some(|| web::to(markets::markets)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/markets/{market}/history",
            summary: "Clearing prices of a market, oldest first.",
            params: vec![
                path("market", "string", "class@region"),
                query("limit", "integer", "most prices, 1 to 1000 (default 100)"),
            ],
            body: None,
            answer: list::<api::PricePoint>(200, "The prices"),
            errors: &[400, 404],
            handler: Some(|| web::to(markets::history)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/book",
            summary: "The resting book of a market: depth by price and orders by priority.",
            params: vec![
                required(query("market", "string", "class@region")),
                query("limit", "integer", "orders listed per side, 1 to 1000 (default 100)"),
            ],
            body: None,
            answer: json::<api::BookView>(200, "The book"),
            errors: &[400, 404],
            handler: Some(|| web::to(markets::book)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/orders",
            summary: "A page of an account's resting orders, oldest first.",
            params: vec![
                required(query("account", "string", KEY)),
                query("limit", "integer", "orders in the page, 1 to 1000 (default 100)"),
                query(
                    "after",
                    "string",
                    "HEIGHT-ID: the orders after this place (a page's `next`); from the first without it",
                ),
            ],
            body: None,
            answer: json::<api::OrderList>(200, "The page"),
            errors: &[400],
            handler: Some(|| web::to(orders::list)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/accounts/{key}",
            summary: "An account's balance and next sequence number.",
            params: vec![path("key", "string", KEY)],
            body: None,
            answer: json::<api::AccountView>(200, "The account"),
            errors: &[400],
            handler: Some(|| web::to(accounts::account)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/accounts/{key}/proof",
            summary: "The account's state item (or its absence) proven against the state root \
                      of the head block, with its header and commit certificate.",
            params: vec![path("key", "string", KEY)],
            body: None,
            answer: json::<api::StateProof>(200, "The state proof, verifiable offline"),
            errors: &[400, 503],
            handler: Some(|| web::to(state_proofs::account)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/leases",
            summary: "Leases, all or of one account (buyer or provider), in id order.",
            params: vec![query("account", "string", KEY), query("limit", "integer", LIMIT)],
            body: None,
            answer: json::<api::LeaseList>(200, "The leases"),
            errors: &[400],
            handler: Some(|| web::to(leases::list)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/leases/{id}",
            summary: "One lease and its provisioning.",
            params: vec![path("id", "string", "lease id, 64 hex digits")],
            body: None,
            answer: json::<api::LeaseView>(200, "The lease"),
            errors: &[400, 404],
            handler: Some(|| web::to(leases::one)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/leases/{id}/proof",
            summary: "Inclusion proof of the lease's fill against this node's signed checkpoint.",
            params: vec![path("id", "string", "lease id, 64 hex digits")],
            body: None,
            answer: json::<ProofBundle>(200, "The proof, verifiable offline"),
            errors: &[400, 404],
            handler: Some(|| web::to(leases::proof)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/leases/{id}/state-proof",
            summary: "The lease's state item proven against the state root of the head block, \
                      with its header and commit certificate; an exclusion proof for an id \
                      that is no live lease (never made, or ended).",
            params: vec![path("id", "string", "lease id, 64 hex digits")],
            body: None,
            answer: json::<api::StateProof>(200, "The state proof, verifiable offline"),
            errors: &[400, 503],
            handler: Some(|| web::to(state_proofs::lease)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/leases/{id}/challenge",
            summary: "A fresh challenge the lease's buyer signs to fetch its credential.",
            params: vec![path("id", "string", "lease id, 64 hex digits")],
            body: None,
            answer: json::<api::ChallengeView>(200, "The challenge"),
            errors: &[400, 403, 404, 503],
            handler: Some(|| web::to(credentials::challenge)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/leases/{id}/credential",
            summary: "The lease's credential, for the buyer's signature over a challenge.",
            params: vec![path("id", "string", "lease id, 64 hex digits")],
            body: Some(body::<api::CredentialRequest>()),
            answer: json::<api::CredentialToken>(200, "The credential"),
            errors: &[400, 403, 404, 413, 415],
            handler: Some(|| web::to(credentials::credential)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/gateway",
            summary: "Checks a credential presented to the provider's gateway.",
            params: vec![],
            body: Some(body::<api::GatewayRequest>()),
            answer: json::<api::GatewayAnswer>(200, "The verdict"),
            errors: &[400, 403, 413, 415],
            handler: Some(|| web::to(gateway::gateway)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/checkpoints",
            summary: "The latest signed checkpoint this node holds from each signer.",
            params: vec![],
            body: None,
            answer: list::<SignedCheckpoint>(200, "The checkpoints, this node's first"),
            errors: &[],
            handler: Some(|| web::to(checkpoints::list)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/export",
            summary: "The whole ledger in the format of `surplus ledger export`; the \
                      X-Ledger-Height header and the file name say the height it covers.",
            params: vec![query(
                "fresh",
                "boolean",
                "true: up to the current head (an export at most 5 s old), not one up to a \
                 minute old",
            )],
            body: None,
            answer: other("application/octet-stream", "The export file (attachment)"),
            errors: &[400, 404],
            handler: Some(|| web::to(export::export)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/events",
            summary: "Server-sent events of each committed block: `block`, `fill`, `lease` \
                      (`lagged` when events were missed), a `:` comment line every second.",
            params: vec![query("account", "string", "only events this account is a party of")],
            body: None,
            answer: other("text/event-stream", "The stream; each `data` is an `Event` (#/components/schemas/Event)"),
            errors: &[400, 503],
            handler: Some(|| web::to(events::events)),
        },
        Route {
            method: get.clone(),
            path: "/api/v1/operator",
            summary: "This node's business: offers, leases as provider, earnings, capacity, peers.",
            params: vec![],
            body: None,
            answer: json::<api::OperatorView>(200, "The operator's view"),
            errors: &[401],
            handler: Some(|| web::to(operator::operator)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/terminations",
            summary: "Operator only: this node ends one of its leases as provider early, with \
                      its node key (the early termination penalty applies), and records why.",
            params: vec![],
            body: Some(body::<api::OperatorTermination>()),
            answer: json::<api::Submitted>(202, "The termination, admitted to the mempool; its id"),
            errors: &[400, 401, 403, 404, 409, 413, 415, 503],
            handler: Some(|| web::to(operator::terminate)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/leases/{id}/ssh-certificate",
            summary: "The lease's credential (granting `write`) and an SSH public key, exchanged \
                      at the lease's provider for an OpenSSH user certificate valid for the \
                      lease's principal until its end (docs/operations.md, SSH access).",
            params: vec![path("id", "string", "the lease id, hex")],
            body: Some(body::<api::SshCertificateRequest>()),
            answer: json::<api::SshCertificate>(200, "The certificate"),
            errors: &[400, 403, 404, 413, 415],
            handler: Some(|| web::to(gateway::ssh_certificate)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/maintenance",
            summary: "Operator only: this node announces a maintenance window for one of its \
                      inventory pools with its node key: the pool's capacity leaves the market, \
                      its leases move to another pool of the market with room or get notice \
                      for the window's start (docs/operations.md).",
            params: vec![],
            body: Some(body::<api::OperatorMaintenance>()),
            answer: json::<api::MaintenanceSubmitted>(202, "The window, admitted to the mempool"),
            errors: &[400, 401, 403, 409, 413, 415, 503],
            handler: Some(|| web::to(operator::maintenance)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/bond",
            summary: "Operator only: lock units of the node key's balance in its provider bond \
                      (`lock`), or take them back (`release`; refused while it has live leases \
                      or resting offers).",
            params: vec![],
            body: Some(body::<api::OperatorBond>()),
            answer: json::<api::BondSubmitted>(202, "The bond transaction, submitted"),
            errors: &[400, 401, 402, 403, 409, 413, 415, 503],
            handler: Some(|| web::to(operator::bond)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/offers",
            summary: "Operator only: withdraw this node's offers in a market (its free offers \
                      are cancelled and nothing new is offered there, its leases run on), or \
                      offer it again; kept across restarts.",
            params: vec![],
            body: Some(body::<api::OperatorOffers>()),
            answer: other("application/json", "`{\"withdrawn\": [MARKET, ...]}`: the markets withdrawn now"),
            errors: &[400, 401, 403, 404, 413, 415, 503],
            handler: Some(|| web::to(operator::offers)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/maintenance/done",
            summary: "Operator only: this node ends its maintenance window for a pool; the \
                      pool's capacity returns to the market.",
            params: vec![],
            body: Some(body::<api::OperatorMaintenanceDone>()),
            answer: json::<api::MaintenanceSubmitted>(202, "The end, admitted to the mempool"),
            errors: &[400, 401, 403, 409, 413, 415, 503],
            handler: Some(|| web::to(operator::maintenance_done)),
        },
        Route {
            method: post.clone(),
            path: "/api/v1/operator/votes",
            summary: "Operator only: this node (a validator) votes yes or no on an open proposal \
                      with its node key.",
            params: vec![],
            body: Some(body::<api::OperatorVote>()),
            answer: json::<api::Submitted>(202, "The vote, admitted to the mempool; its id"),
            errors: &[400, 401, 403, 404, 409, 413, 415, 503],
            handler: Some(|| web::to(governance::operator_vote)),
        },
        Route {
            method: post,
            path: "/api/v1/faucet",
            summary: "Devnet only: funds an account with sample credits, once.",
            params: vec![],
            body: Some(body::<api::FaucetRequest>()),
            answer: json::<api::FaucetGrant>(202, "The transfer, pending until its block"),
            errors: &[400, 404, 409, 413, 415, 503],
            handler: Some(|| web::to(faucet::faucet)),
        },
    ]
}
