//! A typed, blocking client of the Surplus node API. Every call sends and reads the types of
//! `surplus_api`, the same types the node serves and `/openapi.json` is generated from, so a
//! client built on it cannot drift from the server. The `surplus` command line, `surplus load`,
//! the demo and the Rust tests use it.
//!
//! ```no_run
//! let node = surplus_client::Client::new("http://127.0.0.1:8080")?;
//! let status = node.status()?;
//! println!("{} at height {}", status.chain_id, status.height);
//! # Ok::<(), surplus_client::Error>(())
//! ```

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use surplus_api::{
    AccountView, BlockSummary, BlockView, ChainView, ChallengeView, CredentialRequest,
    CredentialToken, EntryAt, ErrorBody, FaucetGrant, FaucetRequest, GatewayAnswer, GatewayRequest,
    LeaseList, LeaseView, MarketSummary, OperatorView, OrderList, OrderView, PricePoint, Status,
    SubmissionView, Submit, Submitted,
};
use surplus_ledger::bundle::ProofBundle;
use surplus_ledger::{parse_hex, Entry, Hash, PublicKey, SecretKey, SignedCheckpoint};
use surplus_market::Market;

pub use surplus_api as api;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered with an error: its status and stable code (`docs/api.md` lists them)
    /// and its message.
    #[error("the node refused (HTTP {status}, {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The refusal code, such as `insufficient_funds` (`unknown` if the body was not the
        /// API's error body).
        code: String,
        /// What the node says is wrong, for people.
        message: String,
    },
    /// No answer: the node is down, the address wrong, or the call timed out.
    #[error("cannot reach the node at {url}: {detail}")]
    Unreachable {
        /// The node's base URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// An answer that is not what this client expects (another program, or another version).
    #[error("the node's answer is not what this client expects: {0}")]
    Unexpected(String),
    /// The base URL is not one this client speaks to.
    #[error("{0}")]
    BadUrl(String),
}

impl Error {
    /// The refusal code, for [`Error::Refused`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for [`Error::Refused`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A call's result.
pub type Result<T> = std::result::Result<T, Error>;

/// How long to wait for a connection by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole call may take by default.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a request the node sheds is sent again by default ([`Client::with_retries`]).
pub const DEFAULT_RETRIES: u32 = 4;
/// The first backoff between retries; it doubles each time.
pub const RETRY_BASE: Duration = Duration::from_millis(250);
/// The longest backoff between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(8);

/// The wait before retry `attempt` (0 first) when the node said `Retry-After: after_secs`: the
/// larger of that and the doubling backoff, capped at [`RETRY_MAX`], plus up to a quarter more
/// of jitter.
pub fn retry_wait(attempt: u32, after_secs: u64) -> Duration {
    let backoff = RETRY_BASE.saturating_mul(1u32 << attempt.min(16));
    let wait = backoff.max(Duration::from_secs(after_secs.min(3600))).min(RETRY_MAX);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait + wait.mul_f64(f64::from(nanos % 1_000) / 4_000.0)
}

/// Most pages [`Client::orders`] reads (1,000 orders each).
pub const MAX_PAGES: usize = 100;

/// A connection to one node's API. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent with operator requests ([`Client::operator`]).
    operator_token: Option<String>,
    /// Retries of a request the node sheds ([`Client::with_retries`]).
    retries: u32,
}

/// A ledger export arriving from a node ([`Client::export_stream`]).
pub struct ExportStream {
    /// The export's bytes, as they arrive.
    pub body: Box<dyn std::io::Read + Send + Sync>,
    /// Its length, when the node said it.
    pub len: Option<u64>,
    /// The head height it holds, when the node said it (`X-Ledger-Height`).
    pub height: Option<u64>,
}

impl std::fmt::Debug for ExportStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportStream")
            .field("len", &self.len)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the node whose HTTP address is `base` (`http://host:port`, with or without
    /// a trailing slash), with the default timeouts.
    pub fn new(base: &str) -> Result<Self> {
        Self::with_timeouts(base, CONNECT_TIMEOUT, CALL_TIMEOUT)
    }

    /// As [`Client::new`], with a connect timeout and a timeout for each whole call.
    pub fn with_timeouts(base: &str, connect: Duration, call: Duration) -> Result<Self> {
        let base = base.trim().trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(Error::BadUrl(format!(
                "{base:?} must be an http:// URL such as http://127.0.0.1:8080 (this client \
                 speaks plain HTTP; put a TLS proxy in front of the node for https)"
            )));
        }
        let agent = ureq::AgentBuilder::new().timeout_connect(connect).timeout(call).build();
        Ok(Self { base, agent, operator_token: None, retries: DEFAULT_RETRIES })
    }

    /// The same client, sending `token` (the node's `DIR/operator.token`) with operator
    /// requests.
    pub fn with_operator_token(mut self, token: &str) -> Self {
        self.operator_token = Some(token.trim().to_owned());
        self
    }

    /// The same client, retrying a request the node sheds (429 or 503 with `Retry-After`) at
    /// most `retries` times ([`DEFAULT_RETRIES`] unless set; 0: report the refusal at once, as
    /// a load tool that counts what was shed wants).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, surplus_api::API_PREFIX)
    }

    fn fail(&self, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Status(status, resp) => {
                let text = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<ErrorBody>(&text) {
                    Ok(b) => {
                        Error::Refused { status, code: b.error.code, message: b.error.message }
                    }
                    Err(_) => Error::Refused {
                        status,
                        code: "unknown".to_owned(),
                        message: text.trim().chars().take(300).collect(),
                    },
                }
            }
            ureq::Error::Transport(t) => {
                Error::Unreachable { url: self.base.clone(), detail: t.to_string() }
            }
        }
    }

    /// Sends with `send`, again after a wait while the node answers 429 or 503 with
    /// `Retry-After` (it sheds load, its mempool is full, or this client is over its rate) of
    /// at most [`RETRY_MAX`]: at most [`Client::with_retries`] more times, each wait the larger of `Retry-After` and a
    /// backoff that doubles from [`RETRY_BASE`] up to [`RETRY_MAX`], with jitter so that many
    /// clients do not come back at once. The requests it retries are refused before the node
    /// does anything, and submitting one entry twice is harmless (its id is its hash).
    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    fn send(
        &self,
        send: impl Fn() -> std::result::Result<ureq::Response, ureq::Error>,
    ) -> std::result::Result<ureq::Response, ureq::Error> {
        let mut attempt = 0u32;
        loop {
            match send() {
                Err(ureq::Error::Status(status, resp))
                    if (status == 429 || status == 503) && attempt < self.retries =>
                {
                    let after = resp.header("Retry-After").and_then(|v| v.parse::<u64>().ok());
                    let Some(after) = after.filter(|a| *a <= RETRY_MAX.as_secs()) else {
                        return Err(ureq::Error::Status(status, resp));
                    };
                    std::thread::sleep(retry_wait(attempt, after));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    fn read<T: DeserializeOwned>(
        &self,
        send: impl Fn() -> std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<T> {
        let resp = self.send(send).map_err(|e| self.fail(e))?;
        let text = resp.into_string().map_err(|e| Error::Unexpected(format!("unreadable: {e}")))?;
        serde_json::from_str(&text).map_err(|e| Error::Unexpected(e.to_string()))
    }

    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        self.read(|| {
            let mut req = self.agent.get(&self.url(path));
            for (k, v) in query {
                req = req.query(k, v);
            }
            req.call()
        })
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_string(body).map_err(|e| Error::Unexpected(e.to_string()))?;
        self.post_raw(path, &body)
    }

    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    fn post_raw<T: DeserializeOwned>(&self, path: &str, body: &str) -> Result<T> {
        self.read(|| {
            self.agent
                .post(&self.url(path))
                .set("Content-Type", "application/json")
                .send_string(body)
        })
    }

    /// `GET /status`: chain id, key, head, peers, mempool.
    pub fn status(&self) -> Result<Status> {
        self.get("/status", &[])
    }

    /// `GET /chain`: the chain id, the validators and the quorum.
    pub fn chain(&self) -> Result<ChainView> {
        self.get("/chain", &[])
    }

    /// `GET /governance`: the validator set, parameters, proposals, rotations and set history.
    pub fn governance(&self) -> Result<surplus_api::GovernanceView> {
        self.get("/governance", &[])
    }

    /// `GET /governance/proposals/{id}`: one proposal open or waiting for its height.
    pub fn proposal(&self, id: &Hash) -> Result<surplus_api::ProposalView> {
        self.get(&format!("/governance/proposals/{}", hex::encode(id)), &[])
    }

    /// `POST /entries`: submits a signed entry; its id once the node has admitted it.
    pub fn submit(&self, entry: &Entry) -> Result<Hash> {
        let s: Submitted = self.post("/entries", &Submit { entry: hex::encode(entry.encode()) })?;
        Ok(s.id)
    }

    /// `POST /entries` with a body already serialized as [`Submit`] (load tools prepare them
    /// ahead of time).
    pub fn submit_prepared(&self, submit_json: &str) -> Result<Hash> {
        let s: Submitted = self.post_raw("/entries", submit_json)?;
        Ok(s.id)
    }

    /// `POST /submissions`: submits up to [`surplus_api::MAX_BATCH_ENTRIES`] signed entries at
    /// once; one answer per entry, in order: its id once admitted, or its error as the node
    /// gave it. `Err` when the node refused the whole batch (it sheds load, the body is too
    /// large) after the usual retries.
    pub fn submit_many(
        &self,
        entries: &[Entry],
    ) -> Result<Vec<std::result::Result<Hash, surplus_api::ErrorDetail>>> {
        let body = surplus_api::SubmitMany {
            entries: entries.iter().map(|e| hex::encode(e.encode())).collect(),
        };
        let answer: surplus_api::SubmittedMany = self.post("/submissions", &body)?;
        Ok(answer
            .results
            .into_iter()
            .map(|r| match (r.id, r.error) {
                (_, Some(error)) => Err(error),
                (Some(id), None) => Ok(id),
                (None, None) => Err(surplus_api::ErrorDetail {
                    code: "internal".into(),
                    message: "the node answered neither an id nor an error".into(),
                }),
            })
            .collect())
    }

    /// `POST /submissions` with a body already serialized as [`surplus_api::SubmitMany`] (load
    /// tools prepare them ahead of time); the answer as the node gave it.
    pub fn submit_many_prepared(&self, body_json: &str) -> Result<surplus_api::SubmittedMany> {
        self.post_raw("/submissions", body_json)
    }

    /// `GET /submissions/{id}`: pending, committed at a height, or dropped with its code.
    pub fn submission(&self, id: &Hash) -> Result<SubmissionView> {
        self.get(&format!("/submissions/{}", hex::encode(id)), &[])
    }

    /// `GET /entries/{index}`: a committed entry by its global index.
    pub fn entry(&self, index: u64) -> Result<EntryAt> {
        self.get(&format!("/entries/{index}"), &[])
    }

    /// `GET /blocks`: block summaries, newest first, below `before`, at most `limit`.
    pub fn blocks(&self, before: Option<u64>, limit: Option<u64>) -> Result<Vec<BlockSummary>> {
        let mut q = Vec::new();
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get("/blocks", &q)
    }

    /// `GET /blocks/{height}`: a whole block; with `entries` false, without its entries.
    pub fn block(&self, height: u64, entries: bool) -> Result<BlockView> {
        let q = if entries { vec![] } else { vec![("entries", "false".to_owned())] };
        self.get(&format!("/blocks/{height}"), &q)
    }

    /// `GET /markets`: the catalogue's markets with their last price and book sizes.
    pub fn markets(&self) -> Result<Vec<MarketSummary>> {
        self.get("/markets", &[])
    }

    /// `GET /markets/{market}/history`: clearing prices, oldest first.
    pub fn history(&self, market: &Market, limit: Option<usize>) -> Result<Vec<PricePoint>> {
        let q: Vec<_> = limit.map(|l| ("limit", l.to_string())).into_iter().collect();
        self.get(&format!("/markets/{market}/history"), &q)
    }

    /// `GET /book`: a market's resting offers and bids, at most `limit` listed per side.
    pub fn book(&self, market: &Market, limit: Option<usize>) -> Result<surplus_api::BookView> {
        let mut q = vec![("market", market.to_string())];
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get("/book", &q)
    }

    /// `GET /orders?account=&limit=&after=`: a page of an account's resting orders.
    pub fn orders_page(
        &self,
        account: &PublicKey,
        limit: Option<usize>,
        after: Option<&str>,
    ) -> Result<OrderList> {
        let mut q = vec![("account", account.to_string())];
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(a) = after {
            q.push(("after", a.to_owned()));
        }
        self.get("/orders", &q)
    }

    /// Every resting order of an account, a page of 1,000 at a time (at most [`MAX_PAGES`]
    /// pages).
    pub fn orders(&self, account: &PublicKey) -> Result<Vec<OrderView>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.orders_page(account, Some(1000), after.as_deref())?;
            out.extend(page.orders);
            match page.next {
                Some(next) if page.truncated => after = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    /// `GET /accounts/{key}`: balance and next sequence number.
    pub fn account(&self, key: &PublicKey) -> Result<AccountView> {
        self.get(&format!("/accounts/{key}"), &[])
    }

    /// `GET /leases`: leases (of `account`, as buyer or provider), at most `limit`.
    pub fn leases(&self, account: Option<&PublicKey>, limit: Option<usize>) -> Result<LeaseList> {
        let mut q = Vec::new();
        if let Some(a) = account {
            q.push(("account", a.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.get("/leases", &q)
    }

    /// `GET /leases/{id}`: a lease and its provisioning outcomes.
    pub fn lease(&self, id: &Hash) -> Result<LeaseView> {
        self.get(&format!("/leases/{}", hex::encode(id)), &[])
    }

    /// `GET /leases/{id}/proof`: the lease's inclusion proof, verifiable offline.
    pub fn lease_proof(&self, id: &Hash) -> Result<ProofBundle> {
        self.get(&format!("/leases/{}/proof", hex::encode(id)), &[])
    }

    /// `GET /accounts/{key}/proof`: the account's state proof against the head block,
    /// verifiable offline ([`surplus_api::StateProof::verify`]).
    pub fn account_state_proof(&self, key: &PublicKey) -> Result<surplus_api::StateProof> {
        self.get(&format!("/accounts/{key}/proof"), &[])
    }

    /// `GET /leases/{id}/state-proof`: the lease's state proof against the head block (an
    /// exclusion proof for an id that is no live lease), verifiable offline.
    pub fn lease_state_proof(&self, id: &Hash) -> Result<surplus_api::StateProof> {
        self.get(&format!("/leases/{}/state-proof", hex::encode(id)), &[])
    }

    /// `POST /leases/{id}/challenge`: a challenge for the buyer to sign.
    pub fn challenge(&self, lease: &Hash) -> Result<ChallengeView> {
        self.post(&format!("/leases/{}/challenge", hex::encode(lease)), &serde_json::json!({}))
    }

    /// `POST /leases/{id}/credential`: the lease's token, for the signed challenge.
    pub fn credential(&self, lease: &Hash, signed: &CredentialRequest) -> Result<CredentialToken> {
        self.post(&format!("/leases/{}/credential", hex::encode(lease)), signed)
    }

    /// Fetches the lease's credential as its buyer, from whichever node this is: opens the copy
    /// sealed to `buyer` that the lease's grant carries (`docs/contracts.md` §6, "Sealed
    /// credential"); for a lease whose grant has none (or not for this key), or that ended, it
    /// answers the provider node's challenge instead ([`Client::fetch_credential_by_challenge`]),
    /// whose refusal then says why.
    pub fn fetch_credential(&self, lease: &Hash, buyer: &SecretKey) -> Result<CredentialToken> {
        let v = self.lease(lease)?;
        if v.lease.id != *lease {
            return Err(Error::Unexpected("the node answered another lease".into()));
        }
        let live = v.lease.status == surplus_contracts::LeaseStatus::Active;
        if let Some(g) = v.lease.grant.as_ref().filter(|g| live && !g.sealed.is_empty()) {
            let chain = self.status()?.chain_id;
            if let Ok(token) = surplus_contracts::sealed::open(&g.sealed, buyer, &chain, lease) {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::URL_SAFE.encode(token);
                return Ok(CredentialToken { token });
            }
        }
        self.fetch_credential_by_challenge(lease, buyer)
    }

    /// Fetches the lease's credential from the provider's node: asks for a challenge, checks that
    /// it names this lease, signs it with `buyer` (the bytes of
    /// [`surplus_api::leases::challenge_bytes`], bound to the chain, lease and expiry the node
    /// states) and sends the signature back.
    pub fn fetch_credential_by_challenge(
        &self,
        lease: &Hash,
        buyer: &SecretKey,
    ) -> Result<CredentialToken> {
        let c = self.challenge(lease)?;
        let nonce = parse_hex::<32>(&c.challenge, "challenge").map_err(Error::Unexpected)?;
        if c.lease != *lease {
            return Err(Error::Unexpected("the challenge names another lease".into()));
        }
        let message =
            surplus_api::leases::challenge_bytes(&c.chain_id, lease, &nonce, c.expires_ms);
        let signature = buyer.sign(&message);
        self.credential(
            lease,
            &CredentialRequest { challenge: c.challenge, signature: signature.to_string() },
        )
    }

    /// `POST /gateway`: what a presented token grants.
    pub fn gateway(&self, request: &GatewayRequest) -> Result<GatewayAnswer> {
        self.post("/gateway", request)
    }

    /// `GET /checkpoints`: the latest signed checkpoint of each signer, this node's first.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>> {
        self.get("/checkpoints", &[])
    }

    /// `GET /operator`: the node's own business. Needs the operator token
    /// ([`Client::with_operator_token`]); without it the node answers 401 `operator_only`.
    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    pub fn operator(&self) -> Result<OperatorView> {
        self.read(|| {
            let mut req = self.agent.get(&self.url("/operator"));
            if let Some(t) = &self.operator_token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            req.call()
        })
    }

    // ureq's own error, taken apart at once ([`Client::fail`]).
    #[allow(clippy::result_large_err)]
    fn post_operator<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let body = serde_json::to_string(body).map_err(|e| Error::Unexpected(e.to_string()))?;
        self.read(|| {
            let mut req = self.agent.post(&self.url(path)).set("Content-Type", "application/json");
            if let Some(t) = &self.operator_token {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
            req.send_string(&body)
        })
    }

    /// `POST /operator/maintenance`: the node announces a maintenance window for one of its
    /// pools. Needs the operator token.
    pub fn maintenance(
        &self,
        m: &surplus_api::OperatorMaintenance,
    ) -> Result<surplus_api::MaintenanceSubmitted> {
        self.post_operator("/operator/maintenance", m)
    }

    /// `POST /operator/maintenance/done`: the node ends its window for `pool`. Needs the
    /// operator token.
    pub fn maintenance_done(&self, pool: &str) -> Result<surplus_api::MaintenanceSubmitted> {
        let body = surplus_api::OperatorMaintenanceDone { pool: pool.to_owned() };
        self.post_operator("/operator/maintenance/done", &body)
    }

    /// `POST /operator/terminations` (operator token): the node ends one of its leases as
    /// provider, for `reason`.
    pub fn terminate_as_provider(
        &self,
        lease: &Hash,
        reason: &str,
    ) -> Result<surplus_api::Submitted> {
        let body = surplus_api::OperatorTermination {
            lease: hex::encode(lease),
            reason: reason.to_owned(),
        };
        self.post_operator("/operator/terminations", &body)
    }

    /// `POST /operator/bond` (operator token): locks (`lock`) or takes back `amount` units of
    /// the node key's provider bond.
    pub fn bond(&self, lock: bool, amount: u64) -> Result<surplus_api::BondSubmitted> {
        let body = surplus_api::OperatorBond {
            action: if lock { "lock" } else { "release" }.to_owned(),
            amount,
        };
        self.post_operator("/operator/bond", &body)
    }

    /// `GET /status/consortium`: the consortium as the node sees it.
    pub fn consortium(&self) -> Result<surplus_api::ConsortiumStatus> {
        self.get("/status/consortium", &[])
    }

    /// `POST /leases/{id}/ssh-certificate`: exchanges the lease's credential (`token`, base64)
    /// for an OpenSSH user certificate of `public_key` (one OpenSSH line), at the lease's
    /// provider.
    pub fn ssh_certificate(
        &self,
        lease: &Hash,
        token: &str,
        public_key: &str,
    ) -> Result<surplus_api::SshCertificate> {
        let body = surplus_api::SshCertificateRequest {
            token: token.to_owned(),
            public_key: public_key.to_owned(),
        };
        self.post(&format!("/leases/{}/ssh-certificate", hex::encode(lease)), &body)
    }

    /// `POST /faucet` (devnet only): funds a new account with sample credits.
    pub fn faucet(&self, account: &PublicKey) -> Result<FaucetGrant> {
        self.post("/faucet", &FaucetRequest { account: account.to_string() })
    }

    /// `GET /export`: copies the whole ledger, in the format of `surplus ledger export`, to
    /// `out`; the bytes written.
    pub fn export(&self, out: &mut impl std::io::Write) -> Result<u64> {
        let resp = self.agent.get(&self.url("/export")).call().map_err(|e| self.fail(e))?;
        let mut body = resp.into_reader();
        std::io::copy(&mut body, out)
            .map_err(|e| Error::Unreachable { url: self.base.clone(), detail: e.to_string() })
    }

    /// `GET /export` as a stream: the bytes of the ledger export as they arrive, for an audit
    /// that checks blocks as they come (`surplus audit --node`).
    pub fn export_stream(&self) -> Result<ExportStream> {
        let resp = self.agent.get(&self.url("/export")).call().map_err(|e| self.fail(e))?;
        let number = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let (len, height) = (number("Content-Length"), number("X-Ledger-Height"));
        Ok(ExportStream { body: resp.into_reader(), len, height })
    }

    /// `GET /metrics`: the Prometheus exposition.
    pub fn metrics(&self) -> Result<String> {
        let resp =
            self.agent.get(&format!("{}/metrics", self.base)).call().map_err(|e| self.fail(e))?;
        let mut s = String::new();
        resp.into_reader()
            .take(16 << 20)
            .read_to_string(&mut s)
            .map_err(|e| Error::Unexpected(e.to_string()))?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_honour_retry_after_double_and_stay_bounded() {
        let within = |d: Duration, base: Duration| d >= base && d <= base + base / 4;
        assert!(within(retry_wait(0, 1), Duration::from_secs(1)), "Retry-After beats 250 ms");
        assert!(within(retry_wait(0, 0), RETRY_BASE));
        assert!(within(retry_wait(3, 1), Duration::from_secs(2)), "then the backoff doubles");
        assert!(within(retry_wait(20, 0), RETRY_MAX), "capped");
        assert!(within(retry_wait(0, 7), Duration::from_secs(7)));
    }
}
