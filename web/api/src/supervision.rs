//! Supervision as the API shows it (`docs/contracts.md` §10, `docs/operations.md`,
//! Supervision): the consortium's status page, a provider's leases as the other datacenters see
//! them, and the operator's bond.

use serde::{Deserialize, Serialize};
use surplus_contracts::supervision::{ProbeTarget, Supervision};
use surplus_ledger::{Hash, PublicKey};
use utoipa::ToSchema;

/// `GET /api/v1/status/consortium`: the consortium as this node sees it, in plain language and
/// in numbers. No key needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsortiumStatus {
    /// The chain.
    pub chain_id: String,
    /// This node's time when it answered, ms.
    pub now_ms: u64,
    /// Height of the last committed block.
    pub height: u64,
    /// Its time, ms.
    pub last_block_ms: u64,
    /// How old it is, ms.
    pub last_block_age_ms: u64,
    /// The mean time between the last (up to 100) blocks, ms (`None` before two blocks).
    pub block_interval_ms: Option<u64>,
    /// One sentence: is everything well.
    pub summary: String,
    /// The validators in force and whether each signed or proposed one of the last 20 blocks.
    pub validators: Vec<ValidatorUp>,
    /// The supervision parameters (`None`: supervision is off).
    pub supervision: Option<Supervision>,
    /// Each provider's availability as the consortium measured it.
    pub providers: Vec<ProviderAvailability>,
    /// Outages the quorum saw and maintenance windows, of the last 30 days, newest first.
    pub incidents: Vec<Incident>,
}

/// A validator and whether it takes part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValidatorUp {
    /// Its key.
    #[schema(value_type = String)]
    pub key: PublicKey,
    /// Whether it signed or proposed one of the last 20 blocks.
    pub up: bool,
    /// The last of those blocks it signed or proposed.
    pub last_seen_height: Option<u64>,
}

/// A provider's measured availability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderAvailability {
    /// The provider's key.
    #[schema(value_type = String)]
    pub provider: PublicKey,
    /// Its live leases.
    pub live_leases: u64,
    /// Over the last 24 hours.
    pub day: Availability,
    /// Over the last 30 days.
    pub month: Availability,
}

/// Availability over a period: of the time its leases ran, the share not found down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    /// Lease time in the period, ms (lease by lease).
    pub leased_ms: u64,
    /// Of it, found down by the quorum, ms.
    pub down_ms: u64,
    /// `10000 × (1 − down / leased)`, rounded down (`None` when nothing was leased).
    pub availability_bps: Option<u32>,
}

impl Availability {
    /// The availability of `down_ms` out of `leased_ms`.
    pub fn of(leased_ms: u64, down_ms: u64) -> Self {
        let availability_bps = (leased_ms > 0).then(|| {
            let down = u128::from(down_ms.min(leased_ms));
            (10_000 - (down * 10_000).div_ceil(u128::from(leased_ms))) as u32
        });
        Self { leased_ms, down_ms, availability_bps }
    }
}

/// What an incident was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The quorum found leases of the provider down.
    Outage,
    /// The provider announced maintenance of a pool.
    Maintenance,
}

/// An outage or a maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    /// Outage or maintenance.
    pub kind: IncidentKind,
    /// The provider.
    #[schema(value_type = String)]
    pub provider: PublicKey,
    /// The markets it touched, `class@region`.
    pub markets: Vec<String>,
    /// When it started, ms.
    pub start_ms: u64,
    /// When it ended, ms (`None`: it goes on).
    pub end_ms: Option<u64>,
    /// Leases found down in it (0 for maintenance).
    pub leases: u64,
    /// Lease time found down, ms.
    pub down_ms: u64,
    /// Credits paid to buyers for it, units.
    pub credited: u64,
    /// What happened, for people.
    pub summary: String,
}

/// One of the provider's leases as the other datacenters see it (the operator page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeaseWatch {
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// Where it is probed (`None`: the hook named no probe; nobody probes it).
    pub probe: Option<ProbeTarget>,
    /// Time the quorum found it down, ms.
    pub down_ms: u64,
    /// Credits its buyer received, units.
    pub credited: u64,
    /// The intervals that have down reports and still take reports.
    pub intervals: Vec<IntervalWatch>,
}

/// The reports of one interval of a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntervalWatch {
    /// The interval.
    pub interval: u64,
    /// Its start, ms.
    pub start_ms: u64,
    /// Its end, ms.
    pub end_ms: u64,
    /// The vantage points that reported it down.
    #[schema(value_type = Vec<String>)]
    pub down: Vec<PublicKey>,
    /// The vantage points that did not (they found it up, or did not report yet).
    #[schema(value_type = Vec<String>)]
    pub silent: Vec<PublicKey>,
    /// 0 not decided, 1 down (credited), 2 down inside a maintenance window.
    pub decided: u8,
}

/// `POST /api/v1/operator/bond`: lock units of the node key's balance in its bond, or take
/// them back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorBond {
    /// `lock` or `release`.
    pub action: String,
    /// Units.
    pub amount: u64,
}

/// What `POST /api/v1/operator/bond` submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BondSubmitted {
    /// The entry's id (`GET /api/v1/submissions/{id}` follows it).
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub id: Hash,
    /// `lock` or `release`.
    pub action: String,
    /// Units.
    pub amount: u64,
    /// The bond as committed when it was submitted, units.
    pub bond: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_rounds_down() {
        assert_eq!(Availability::of(0, 0).availability_bps, None);
        assert_eq!(Availability::of(1000, 0).availability_bps, Some(10_000));
        // 1 ms down of 3: 66.66…% → 6666 bps.
        assert_eq!(Availability::of(3, 1).availability_bps, Some(6_666));
        assert_eq!(Availability::of(10, 20).availability_bps, Some(0));
    }
}
