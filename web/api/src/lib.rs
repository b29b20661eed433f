//! The request and response types of the Surplus node API: one definition used by the server
//! (`surplus-web`), the typed client (`surplus-client`: the CLI, load and demo tools and the
//! Rust tests) and the OpenAPI document, which `surplus-web` generates from these types with
//! utoipa (every type here derives [`utoipa::ToSchema`]).
//!
//! Conventions on the wire: hashes and keys are lowercase hex, amounts integers in units,
//! times ms since the Unix epoch; every error is [`ErrorBody`]. `docs/api.md` is the overview.

pub mod events;
pub mod governance;
pub mod leases;
pub mod ledger;
pub mod market;
pub mod state_proof;
pub mod status;
pub mod supervision;

pub use events::{Event, OrderStatus};
pub use governance::{
    GovernanceView, OperatorVote, ParamsView, ProposalView, RotationView, SetPeriod, VoterView,
};
pub use leases::{
    ChallengeView, CredentialRequest, CredentialToken, GatewayAnswer, GatewayRequest, LeaseList,
    LeaseView, SshCertificate, SshCertificateRequest,
};
pub use ledger::{
    BatchResult, BlockSummary, BlockView, CertificateView, CommitView, EntryAt, EntryView,
    Submission, SubmissionView, Submit, SubmitMany, Submitted, SubmittedMany, MAX_BATCH_ENTRIES,
};
pub use market::{
    BookOrder, BookSide, BookView, Level, MarketSummary, OrderList, OrderView, PricePoint,
};
pub use state_proof::{Proven, StateProof, StateProofCheck, Subject, STATE_PROOF_FORMAT};
pub use status::{
    AccountView, CapacityPoint, CapacityView, ChainView, ClassCapacity, DiskStatus, DiskUsed,
    Earnings, ErrorBody, ErrorDetail, FaucetGrant, FaucetRequest, LeaseProvisioning,
    MaintenanceSubmitted, OperatorMaintenance, OperatorMaintenanceDone, OperatorOffers,
    OperatorTermination, OperatorView, Peer, PoolUse, Status,
};
pub use supervision::{
    Availability, BondSubmitted, ConsortiumStatus, Incident, IncidentKind, IntervalWatch,
    LeaseWatch, OperatorBond, ProviderAvailability, ValidatorUp,
};

/// The prefix of every JSON route.
pub const API_PREFIX: &str = "/api/v1";
