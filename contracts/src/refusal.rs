//! The one vocabulary of refusals: every reason a node refuses a request or an entry, with the
//! stable code that clients match on, the HTTP status the API answers with, and a sentence that
//! says what to do. Admission ([`crate::State::precheck`]), the state machine
//! ([`crate::Refusal::code`]), the market's order rules and the HTTP API all speak it;
//! `docs/api.md`'s table of codes is generated from [`Code::ALL`] (a test keeps them equal).

use std::fmt;

use surplus_market::Rejection;

macro_rules! codes {
    ($( $variant:ident = $name:literal, $status:literal, $hint:literal; )*) => {
        /// A stable refusal code. Its string form ([`Code::as_str`]) is what the API puts in
        /// `error.code`; [`Code::status`] is the HTTP status; [`Code::hint`] says what to do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(
                #[doc = $hint]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in the order of the documentation's table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the API writes it, such as `replayed_nonce`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The HTTP status the API answers with.
            pub fn status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// What a person should do about it, one sentence.
            pub fn hint(self) -> &'static str {
                match self { $(Code::$variant => $hint,)* }
            }
        }
    };
}

codes! {
    // ---- An entry's form ----
    NotUserEntry = "not_user_entry", 400,
        "Send an order, a cancel, a transfer, a lease transition, a maintenance window, a probe report, a bond, a credential grant, a governance entry or a key rotation; the chain writes the other kinds itself.";
    TooLarge = "too_large", 400,
        "The entry is larger than any valid entry may be; build it again with a current client.";
    Unsigned = "unsigned", 400,
        "Sign the entry with its author's key.";
    Malformed = "malformed", 400,
        "The payload does not decode as its kind; encode it as docs/orders.md describes.";
    WrongKind = "wrong_kind", 400,
        "Use the entry kind that matches the payload (order 16, cancel 17; docs/ledger-format.md lists them).";
    BadSignature = "bad_signature", 400,
        "Sign with the author's key over this chain's id (GET /api/v1/status names it); a signature for another chain does not verify here.";
    // ---- An order's rules (docs/orders.md, section 6) ----
    UnknownMarket = "unknown_market", 404,
        "Choose a class and region from the consortium's catalogue (GET /api/v1/markets).";
    ZeroSlots = "zero_slots", 400,
        "Ask for at least one slot.";
    TooManySlots = "too_many_slots", 400,
        "Ask for at most 1,000,000 slots.";
    BadDuration = "bad_duration", 400,
        "Use a lease length from 1 to 43,800 hours.";
    ZeroLimit = "zero_limit", 400,
        "Bid a limit price of at least 1 unit per slot-hour.";
    CostOverflow = "cost_overflow", 400,
        "Lower the slots, hours or price: their product must fit in 64 bits.";
    WindowInverted = "window_inverted", 400,
        "Put the window's start before its end.";
    WindowInPast = "window_in_past", 400,
        "Use a window that ends after now.";
    WindowTooFar = "window_too_far", 400,
        "Use a window that ends within a year plus the longest lease from now.";
    WindowTooShort = "window_too_short", 400,
        "Offer a window at least as long as the minimum lease, and at least one hour.";
    BadFillRule = "bad_fill_rule", 400,
        "Ask for a minimum fill between 1 and the bid's slots.";
    Expired = "expired", 400,
        "Send the order again with a later expiry.";
    ExpiryTooFar = "expiry_too_far", 400,
        "Use an expiry at most 90 days from now.";
    ClosesTooSoon = "closes_too_soon", 400,
        "The order expires, or its window closes or grows too short, within the 2 s a node allows it to reach a block (docs/orders.md, section 6): sign it again with a later expiry and window.";
    ReplayedNonce = "replayed_nonce", 409,
        "Sign the order again with a nonce this key has not used.";
    UnknownOrder = "unknown_order", 404,
        "Cancel only a resting order: this one was never committed, or was filled, expired or cancelled already.";
    NotAuthor = "not_author", 403,
        "Sign the cancel with the key that signed the order.";
    Unfunded = "unfunded", 400,
        "Fund the account, or bid for fewer slots, fewer hours or a lower limit.";
    // ---- Transactions ----
    BadSequence = "bad_sequence", 409,
        "The sequence number was used already; sign the transaction again with the account's next one (GET /api/v1/accounts/{key}).";
    SeqGap = "seq_gap", 400,
        "Send the transactions before it first: its sequence number is too far ahead of the account's next.";
    InsufficientBalance = "insufficient_balance", 400,
        "Fund the account, or move or spend less.";
    EmptyTransfer = "empty_transfer", 400,
        "Transfer at least one unit, to another account.";
    UnknownLease = "unknown_lease", 404,
        "Name a lease of this chain (GET /api/v1/leases?account=KEY lists an account's leases).";
    LeaseNotActive = "lease_not_active", 409,
        "The lease has ended already; there is nothing left to terminate, renew or grant.";
    NotEntitled = "not_entitled", 403,
        "Sign with the key of the party the transition belongs to (the buyer renews; buyer or provider terminate; the provider grants).";
    RenewalRefused = "renewal_refused", 409,
        "The renewal cannot be priced or placed now; the message says why.";
    AlreadyGranted = "already_granted", 409,
        "Use revocation ids no other credential uses.";
    NoticeRefused = "notice_refused", 409,
        "Give notice for a time after now and before the lease's end, earlier than any notice given already.";
    MaintenanceRefused = "maintenance_refused", 400,
        "Name a pool with 1 to 64 letters, digits or ._@-, a market of the catalogue and a window that ends after it starts; end only a window that is open.";
    ReportRefused = "report_refused", 409,
        "Report only a validator's down probes of an interval that has ended and is still within the report window, naming live leases of other providers not yet reported by this key.";
    BondRefused = "bond_refused", 400,
        "Lock or take back at least one unit.";
    InsufficientBond = "insufficient_bond", 409,
        "Take back no more than the bond holds (a bond locked in a block this node has not applied yet counts once it has).";
    BondLocked = "bond_locked", 409,
        "The bond backs the provider's leases and offers: take it back after they end and its offers are cancelled.";
    BondRequired = "bond_required", 402,
        "Lock a bond that covers the offer's slots and the slots of your live leases at the market's terms.bond_per_slot (POST a bond transaction), or offer fewer slots.";
    // ---- Governance and keys (docs/governance.md) ----
    NotValidator = "not_validator", 403,
        "Only a validator may propose, and only the validators of a proposal's set may vote on it (GET /api/v1/governance lists them).";
    UnknownProposal = "unknown_proposal", 404,
        "Name an open proposal (GET /api/v1/governance lists them); this one never existed, or was enacted, expired, rejected or withdrawn.";
    ProposalClosed = "proposal_closed", 409,
        "The proposal has passed; it takes effect at its height and takes no more votes.";
    AlreadyVoted = "already_voted", 409,
        "A validator votes once on a proposal.";
    BadProposal = "bad_proposal", 400,
        "Fix the proposal as the message says: an effective height at least 10 blocks ahead, and an action the state allows now.";
    KeyRotated = "key_rotated", 403,
        "This key was rotated; sign with the key it was rotated to.";
    RotationRefused = "rotation_refused", 409,
        "Rotate to a fresh key: one that is not a validator, was never rotated and has signed nothing.";
    // ---- The node ----
    MempoolFull = "mempool_full", 503,
        "The node holds all the pending entries it can; wait the seconds Retry-After gives, then retry.";
    Overloaded = "overloaded", 503,
        "The node sheds load: entries wait longer than it allows for a block, or more wait than its next block takes. Wait the seconds Retry-After gives, then retry, or send to another node.";
    Unavailable = "unavailable", 503,
        "The node cannot take this now through no fault of the request; retry later.";
    ClockSkew = "clock_skew", 503,
        "This node's clock is too far from its peers' to judge the times of orders; send to another node. Its operator must set the clock right (docs/node.md, Clock discipline).";
    UnknownSubmission = "unknown_submission", 404,
        "This node never acknowledged an entry with this id (or forgot it long ago); submit it, or ask the node that acknowledged it.";
    FaucetDisabled = "faucet_disabled", 404,
        "Only devnet nodes have a faucet; fund the account with a transfer.";
    FaucetSpent = "faucet_spent", 409,
        "The faucet funds a new account once; this one has credits or history already.";
    // ---- Requests ----
    BadHex = "bad_hex", 400,
        "Write hashes and entries as lowercase hex of the right length.";
    BadKey = "bad_key", 400,
        "Write a public key as 64 hex digits.";
    BadLimit = "bad_limit", 400,
        "Use a limit within the range the route documents.";
    BadMarket = "bad_market", 400,
        "Write a market as class@region, for example vm.4c16g@eu-west-a.";
    BadQuery = "bad_query", 400,
        "Send only the query parameters the route documents, with valid values.";
    BadPath = "bad_path", 400,
        "Fix the path segment the message names.";
    BadJson = "bad_json", 400,
        "Send a JSON body with exactly the fields the route documents.";
    BadBody = "bad_body", 400,
        "Send the whole body as JSON.";
    BadRequest = "bad_request", 400,
        "Fix the request as the message says.";
    MalformedEntry = "malformed_entry", 400,
        "Send Entry::encode() of a signed entry, as hex (docs/ledger-format.md).";
    NoRoute = "no_route", 404,
        "No such route under /api/v1; GET /openapi.json lists them.";
    NotFound = "not_found", 404,
        "Nothing is served at this path.";
    NoSuchFile = "no_such_file", 404,
        "The web UI has no such file.";
    UnknownBlock = "unknown_block", 404,
        "Ask for a height at or below the head (GET /api/v1/status).";
    UnknownEntry = "unknown_entry", 404,
        "Ask for an entry index below the ledger's size.";
    NotHeld = "not_held", 404,
        "This node does not hold that part of the ledger (it prunes old blocks, or started from a snapshot); ask an archive node.";
    OperatorOnly = "operator_only", 401,
        "Send the node's operator token as `Authorization: Bearer TOKEN`: it is in DIR/operator.token on the node's machine (docs/node.md, Operator token).";
    MethodNotAllowed = "method_not_allowed", 405,
        "Use the method the route documents.";
    PayloadTooLarge = "payload_too_large", 413,
        "Send a smaller body.";
    UnsupportedMediaType = "unsupported_media_type", 415,
        "Send the body with Content-Type: application/json.";
    RateLimited = "rate_limited", 429,
        "Slow down: wait the seconds Retry-After gives.";
    TooManyClientStreams = "too_many_client_streams", 429,
        "Close an event stream first: one stream carries every event of an account.";
    TooManyStreams = "too_many_streams", 503,
        "Every event stream of this node is open; retry later.";
    // ---- Credentials and the gateway ----
    BadToken = "bad_token", 400,
        "Send the token as base64, as the credential route returned it.";
    TokenMalformed = "token_malformed", 403,
        "The token is not a credential of this chain; fetch it again.";
    TokenForged = "token_forged", 403,
        "The token is not signed by the lease's provider; fetch it again from the provider.";
    TokenNotOurs = "token_not_ours", 403,
        "Present the token to the gateway of the lease's provider, or name the lease.";
    TokenRevoked = "token_revoked", 403,
        "The credential was revoked; fetch the lease's current one.";
    TokenNotYetValid = "token_not_yet_valid", 403,
        "Wait until the lease starts.";
    TokenExpired = "token_expired", 403,
        "The credential's validity has ended; renew the lease and fetch a new one.";
    TokenWrongLease = "token_wrong_lease", 403,
        "Present the token of the lease you name.";
    OperationNotAllowed = "operation_not_allowed", 403,
        "Ask only for the operations the token allows.";
    LeaseEnded = "lease_ended", 403,
        "The lease has ended; its credential no longer grants access.";
    NotProvider = "not_provider", 404,
        "Fetch the credential from the node of the lease's provider.";
    BadChallenge = "bad_challenge", 400,
        "Send the challenge as the 64 hex digits the challenge route returned.";
    ChallengeUnknown = "challenge_unknown", 403,
        "Ask for a new challenge with POST /api/v1/leases/{id}/challenge; each is answered once.";
    ChallengeWrongLease = "challenge_wrong_lease", 403,
        "Answer the challenge issued for this lease.";
    ChallengeExpired = "challenge_expired", 403,
        "Ask for a new challenge and answer it sooner.";
    NotBuyer = "not_buyer", 403,
        "Sign the challenge with the lease's buyer key.";
    NotMinted = "not_minted", 404,
        "The provider has not minted the credential yet; retry after the next block.";
    // ---- The node itself ----
    Internal = "internal", 500,
        "Something failed inside the node; its log has the detail.";
}

impl Code {
    /// The code named `s`, if there is one.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The code of a market rule's rejection.
    pub fn of_rejection(r: &Rejection) -> Code {
        match r {
            Rejection::Malformed(_) => Code::Malformed,
            Rejection::WrongKind { .. } => Code::WrongKind,
            Rejection::Unsigned => Code::Unsigned,
            Rejection::BadSignature(_) => Code::BadSignature,
            Rejection::UnknownMarket(_) => Code::UnknownMarket,
            Rejection::ZeroSlots => Code::ZeroSlots,
            Rejection::TooManySlots { .. } => Code::TooManySlots,
            Rejection::BadDuration { .. } => Code::BadDuration,
            Rejection::ZeroLimit => Code::ZeroLimit,
            Rejection::CostOverflow => Code::CostOverflow,
            Rejection::WindowInverted { .. } => Code::WindowInverted,
            Rejection::WindowInPast { .. } => Code::WindowInPast,
            Rejection::WindowTooFar { .. } => Code::WindowTooFar,
            Rejection::WindowTooShort { .. } => Code::WindowTooShort,
            Rejection::BadFillRule { .. } => Code::BadFillRule,
            Rejection::Expired { .. } => Code::Expired,
            Rejection::ExpiryTooFar { .. } => Code::ExpiryTooFar,
            Rejection::ReplayedNonce { .. } => Code::ReplayedNonce,
            Rejection::UnknownOrder(_) => Code::UnknownOrder,
            Rejection::NotAuthor => Code::NotAuthor,
        }
    }

    /// Whether the refusal depends on time or on what other entries reached the chain first,
    /// rather than on the entry alone: a peer that relayed such an entry did nothing wrong. The
    /// time rules count (an expiry, a window's end or length, how far ahead either reaches, the
    /// admission horizon): the relaying node checked them on its own clock at an earlier moment,
    /// and a receiver cannot tell an entry that was invalid then from one that became invalid on
    /// the way or looks invalid only on its own clock.
    pub fn is_circumstantial(self) -> bool {
        matches!(
            self,
            Code::Expired
                | Code::ClosesTooSoon
                | Code::WindowInPast
                | Code::WindowTooShort
                | Code::WindowTooFar
                | Code::ExpiryTooFar
                | Code::ReplayedNonce
                | Code::BadSequence
                | Code::SeqGap
                | Code::UnknownOrder
                | Code::UnknownLease
                | Code::LeaseNotActive
                | Code::Unfunded
                | Code::InsufficientBalance
                | Code::MempoolFull
                | Code::Overloaded
                | Code::Unavailable
                | Code::ClockSkew
                | Code::ReportRefused
                | Code::BondRequired
                | Code::BondLocked
                | Code::InsufficientBond
        )
    }

    /// The Markdown table of every code that `docs/api.md` carries.
    pub fn markdown_table() -> String {
        let mut out = String::from("| code | status | what to do |\n|---|---|---|\n");
        for c in Code::ALL {
            out.push_str(&format!("| `{}` | {} | {} |\n", c.as_str(), c.status(), c.hint()));
        }
        out
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown code {s}")))
    }
}

impl utoipa::PartialSchema for Code {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "A stable refusal code; docs/api.md says what each means and what to do.",
            ))
            .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
            .build()
            .into()
    }
}
impl utoipa::ToSchema for Code {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_parse_back() {
        let names: std::collections::BTreeSet<&str> =
            Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        for c in Code::ALL {
            let s = c.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert_eq!(Code::parse(s), Some(*c));
            assert!((400..600).contains(&c.status()), "{s}");
            assert!(c.hint().ends_with('.') && c.hint().len() > 15, "{s}");
        }
    }

    #[test]
    fn every_rejection_has_the_name_the_order_spec_gives_it() {
        // The market's serde tag is the reason name docs/orders.md uses; the code is the same.
        for r in [
            Rejection::ZeroSlots,
            Rejection::WindowInverted { from_ms: 2, until_ms: 1 },
            Rejection::ReplayedNonce { nonce: 1 },
            Rejection::BadFillRule { min: 3, slots: 2 },
            Rejection::ExpiryTooFar { expiry_ms: 1 },
            Rejection::NotAuthor,
        ] {
            let tag = serde_json::to_value(&r).unwrap()["reason"].as_str().unwrap().to_owned();
            assert_eq!(Code::of_rejection(&r).as_str(), tag);
        }
    }
}
