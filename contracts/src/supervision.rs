//! Supervision (`docs/contracts.md` §10): the other datacenters probe each lease, a quorum of
//! their signed reports decides which intervals of a lease were down, and settlement pays the
//! buyer's service credits from the provider, its balance first and then its bond.
//!
//! Time is cut into **intervals** of `interval_ms` from the epoch: interval `i` covers
//! `[i × interval_ms, (i + 1) × interval_ms)`. A validator's `probe-report` names the leases it
//! found down during one interval; a lease's interval is down once more than `quorum_bps` of the
//! validators other than its provider (and at least `min_down` of them) have reported it.
//!
//! A market's terms are attributes of its class in the catalogue (`terms.availability_bps`,
//! `terms.credit_bps`, `terms.bond_per_slot`), so governance adds and retires them with the
//! class.

use serde::{Deserialize, Serialize};
use surplus_ledger::encoding::{DecodeError, Reader, Writer};
use surplus_ledger::{Hash, PublicKey};
use surplus_market::{Class, HOUR_MS};

/// Most leases one report may name (its payload stays under the 4 KiB admission limit).
pub const MAX_REPORT_LEASES: usize = 120;
/// The class attribute that sets a market's availability target, basis points.
pub const ATTR_AVAILABILITY: &str = "terms.availability_bps";
/// The class attribute that sets the credit a lease below target earns, basis points of what
/// it cost.
pub const ATTR_CREDIT: &str = "terms.credit_bps";
/// The class attribute that sets the bond a provider locks per slot it offers or leases.
pub const ATTR_BOND: &str = "terms.bond_per_slot";

/// The consortium's supervision parameters (genesis; absent: supervision is off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Supervision {
    /// Length of an interval, ms: 1,000 to 3,600,000, and it divides an hour.
    pub interval_ms: u64,
    /// For how many intervals after an interval's end its reports are taken: 1 to 1,000.
    pub window: u16,
    /// The share of the vantage points whose down reports a down interval needs (strictly
    /// more than it), basis points: 5,000 to 9,999.
    pub quorum_bps: u16,
    /// The fewest down reports a down interval needs: 2 to 1,024.
    pub min_down: u16,
}

impl Supervision {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(1_000..=HOUR_MS).contains(&self.interval_ms)
            || !HOUR_MS.is_multiple_of(self.interval_ms)
        {
            return Err(format!(
                "supervision interval_ms {} must be 1,000 to 3,600,000 and divide an hour",
                self.interval_ms
            ));
        }
        if !(1..=1_000).contains(&self.window) {
            return Err(format!("supervision window {} must be 1 to 1,000", self.window));
        }
        if !(5_000..=9_999).contains(&self.quorum_bps) {
            return Err(format!(
                "supervision quorum_bps {} must be 5,000 to 9,999",
                self.quorum_bps
            ));
        }
        if !(2..=1_024).contains(&self.min_down) {
            return Err(format!("supervision min_down {} must be 2 to 1,024", self.min_down));
        }
        Ok(())
    }

    /// `interval_ms ‖ window ‖ quorum_bps ‖ min_down`.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.interval_ms).u16(self.window).u16(self.quorum_bps).u16(self.min_down);
    }

    /// Reads what [`Supervision::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let s = Supervision {
            interval_ms: r.u64("supervision.interval_ms")?,
            window: r.u16("supervision.window")?,
            quorum_bps: r.u16("supervision.quorum_bps")?,
            min_down: r.u16("supervision.min_down")?,
        };
        s.validate().map_err(|e| r.invalid_at("supervision", at, e))?;
        Ok(s)
    }

    /// The interval `i`'s span, ms: `[start, end)`.
    pub fn span(&self, interval: u64) -> Option<(u64, u64)> {
        let start = interval.checked_mul(self.interval_ms)?;
        Some((start, start.checked_add(self.interval_ms)?))
    }

    /// The interval that holds time `t`.
    pub fn interval_at(&self, t: u64) -> u64 {
        t / self.interval_ms
    }

    /// Whether `down` reports out of `vantage` vantage points make an interval down.
    pub fn is_down(&self, down: usize, vantage: usize) -> bool {
        down >= usize::from(self.min_down)
            && (down as u128) * 10_000 > u128::from(self.quorum_bps) * (vantage as u128)
    }
}

/// A market's service terms, from its class's attributes (0 where the attribute is absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Terms {
    /// Availability target over a lease, basis points (0: none).
    pub availability_bps: u64,
    /// Credit of a lease below target, basis points of what its hours paid cost.
    pub credit_bps: u64,
    /// Bond per slot, units.
    pub bond_per_slot: u64,
}

impl Terms {
    /// The terms of `class`.
    pub fn of(class: &Class) -> Terms {
        let get = |k: &str| class.attributes.get(k).copied().unwrap_or(0);
        Terms {
            availability_bps: get(ATTR_AVAILABILITY),
            credit_bps: get(ATTR_CREDIT),
            bond_per_slot: get(ATTR_BOND),
        }
    }

    /// Checks a class's terms: rates are at most 10,000 basis points, the bond at most 2^40
    /// units a slot.
    pub fn check(class: &Class) -> Result<(), String> {
        let t = Terms::of(class);
        if t.availability_bps > 10_000 || t.credit_bps > 10_000 {
            return Err(format!(
                "class {}: {ATTR_AVAILABILITY} and {ATTR_CREDIT} must be at most 10000",
                class.id
            ));
        }
        if t.bond_per_slot > 1 << 40 {
            return Err(format!("class {}: {ATTR_BOND} must be at most 2^40", class.id));
        }
        Ok(())
    }
}

/// Where the other datacenters probe a lease (its provider records it with a `probe`
/// lease transition): public, so that no credential is needed to probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeTarget {
    /// A TCP connection to `address` (`host:port`) must open.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// An HTTP GET of `url` must answer `status`.
    Http {
        /// `http://…` (plain HTTP: probe a TLS endpoint with a TCP probe of its port).
        url: String,
        /// The expected status.
        status: u16,
    },
}

/// Longest probe address or URL, bytes.
pub const MAX_PROBE_TARGET: usize = 255;

impl ProbeTarget {
    /// Checks it: printable ASCII of 1 to 255 bytes; a TCP address has a port after its last
    /// `:`; a URL starts with `http://`; a status is 100 to 599.
    pub fn validate(&self) -> Result<(), String> {
        let text = match self {
            ProbeTarget::Tcp { address } => address,
            ProbeTarget::Http { url, .. } => url,
        };
        if text.is_empty()
            || text.len() > MAX_PROBE_TARGET
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "a probe target is 1 to {MAX_PROBE_TARGET} bytes of printable ASCII, not {text:?}"
            ));
        }
        match self {
            ProbeTarget::Tcp { address } => {
                let port = address
                    .rsplit_once(':')
                    .and_then(|(h, p)| (!h.is_empty()).then(|| p.parse::<u16>().ok()).flatten());
                if port.is_none_or(|p| p == 0) {
                    return Err(format!("a TCP probe is host:port, not {address:?}"));
                }
            }
            ProbeTarget::Http { url, status } => {
                if !url.starts_with("http://") {
                    return Err(format!(
                        "an HTTP probe's URL starts with http:// (probe a TLS endpoint over TCP): {url:?}"
                    ));
                }
                if !(100..=599).contains(status) {
                    return Err(format!("an HTTP status is 100 to 599, not {status}"));
                }
            }
        }
        Ok(())
    }

    /// `0x01 ‖ short(address)` or `0x02 ‖ short(url) ‖ status:u16`.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            ProbeTarget::Tcp { address } => {
                w.u8(1).short_bytes(address.as_bytes());
            }
            ProbeTarget::Http { url, status } => {
                w.u8(2).short_bytes(url.as_bytes()).u16(*status);
            }
        }
    }

    /// Reads and validates what [`ProbeTarget::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let text = |r: &mut Reader<'_>, field: &'static str| -> Result<String, DecodeError> {
            let at = r.position();
            let b = r.short_bytes(field)?;
            String::from_utf8(b.to_vec()).map_err(|_| r.invalid_at(field, at, "not UTF-8".into()))
        };
        let t = match r.u8("probe.kind")? {
            1 => ProbeTarget::Tcp { address: text(r, "probe.address")? },
            2 => ProbeTarget::Http { url: text(r, "probe.url")?, status: r.u16("probe.status")? },
            other => return Err(r.invalid_at("probe.kind", at, format!("unknown kind {other}"))),
        };
        t.validate().map_err(|e| r.invalid_at("probe", at, e))?;
        Ok(t)
    }
}

/// A validator's report of the leases it found down during one interval (entry kind 37,
/// `probe-report`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The interval.
    pub interval: u64,
    /// The leases found down, in increasing id order.
    #[serde(with = "hashes")]
    pub down: Vec<Hash>,
}

mod hashes {
    use serde::{Deserialize, Deserializer, Serializer};
    use surplus_ledger::Hash;

    pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        v.iter()
            .map(|h| {
                let b = hex::decode(h).map_err(serde::de::Error::custom)?;
                b.try_into().map_err(|_| serde::de::Error::custom("a lease id is 32 bytes"))
            })
            .collect()
    }
}

impl Report {
    /// `interval ‖ n:u16 ‖ lease × n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(10 + 32 * self.down.len());
        w.u64(self.interval).u16(self.down.len() as u16);
        for l in &self.down {
            w.raw(l);
        }
        w.finish()
    }

    /// Decodes a payload: 1 to [`MAX_REPORT_LEASES`] leases, strictly increasing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let interval = r.u64("report.interval")?;
        let at = r.position();
        let n = usize::from(r.u16("report.count")?);
        if n == 0 || n > MAX_REPORT_LEASES {
            return Err(r.invalid_at(
                "report.count",
                at,
                format!("{n} leases, 1 to {MAX_REPORT_LEASES} allowed"),
            ));
        }
        let mut down: Vec<Hash> = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.position();
            let l: Hash = r.array("report.lease")?;
            if down.last().is_some_and(|p| *p >= l) {
                return Err(r.invalid_at("report.lease", at, "not in increasing order".into()));
            }
            down.push(l);
        }
        r.finish()?;
        Ok(Report { interval, down })
    }
}

/// The down reports counted for one lease in one interval (state item 13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    /// The interval.
    pub interval: u64,
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// The validators that reported it down, in key order.
    #[schema(value_type = Vec<String>)]
    pub down: Vec<PublicKey>,
    /// What the reports decided: 0 nothing yet, 1 down (credited), 2 down inside the
    /// provider's maintenance window (not credited).
    pub decided: u8,
}

impl Tally {
    /// The natural key of its item: `interval ‖ lease`.
    pub fn key(interval: u64, lease: &Hash) -> [u8; 40] {
        let mut k = [0u8; 40];
        k[..8].copy_from_slice(&interval.to_be_bytes());
        k[8..].copy_from_slice(lease);
        k
    }

    /// Its item's value: `interval ‖ lease ‖ decided:u8 ‖ n:u16 ‖ key × n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(43 + 32 * self.down.len());
        w.u64(self.interval).raw(&self.lease).u8(self.decided).u16(self.down.len() as u16);
        for k in &self.down {
            w.raw(&k.0);
        }
        w.finish()
    }

    /// Decodes an item's value (keys strictly increasing, `decided` 0 to 2).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let interval = r.u64("tally.interval")?;
        let lease = r.array("tally.lease")?;
        let at = r.position();
        let decided = r.u8("tally.decided")?;
        if decided > 2 {
            return Err(r.invalid_at("tally.decided", at, format!("{decided} is not 0, 1 or 2")));
        }
        let n = usize::from(r.u16("tally.count")?);
        let mut down: Vec<PublicKey> = Vec::new();
        for _ in 0..n {
            let at = r.position();
            let k = PublicKey(r.array("tally.key")?);
            if down.last().is_some_and(|p| *p >= k) {
                return Err(r.invalid_at("tally.key", at, "not in increasing order".into()));
            }
            down.push(k);
        }
        r.finish()?;
        Ok(Tally { interval, lease, down, decided })
    }
}

/// Why a `credit` entry paid a buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreditReason {
    /// An interval the quorum found down: its time is not charged.
    Down = 1,
    /// The lease ended below its market's availability target.
    BelowTarget = 2,
}

/// A `credit` system entry (kind 39): what the provider paid the buyer, and from where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Credit {
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    #[schema(schema_with = surplus_ledger::schema::hash)]
    pub lease: Hash,
    /// Why.
    pub reason: CreditReason,
    /// The down interval (reason 1), or 0.
    pub interval: u64,
    /// What the schedule gives, units.
    pub due: u64,
    /// Paid from the provider's balance.
    pub from_balance: u64,
    /// Paid from the provider's bond (when its balance did not cover `due`).
    pub from_bond: u64,
}

impl Credit {
    /// `lease ‖ reason:u8 ‖ interval ‖ due ‖ from_balance ‖ from_bond`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(65);
        w.raw(&self.lease).u8(self.reason as u8).u64(self.interval).u64(self.due);
        w.u64(self.from_balance).u64(self.from_bond);
        w.finish()
    }

    /// Decodes a payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let lease = r.array("credit.lease")?;
        let at = r.position();
        let reason = match r.u8("credit.reason")? {
            1 => CreditReason::Down,
            2 => CreditReason::BelowTarget,
            other => {
                return Err(r.invalid_at("credit.reason", at, format!("unknown reason {other}")))
            }
        };
        let c = Credit {
            lease,
            reason,
            interval: r.u64("credit.interval")?,
            due: r.u64("credit.due")?,
            from_balance: r.u64("credit.from_balance")?,
            from_bond: r.u64("credit.from_bond")?,
        };
        r.finish()?;
        Ok(c)
    }
}

/// What the time `[from, to)` of a lease costs (`docs/contracts.md` §10): for each lease hour
/// `k` it overlaps by `d` ms, `⌊slots × price_k × d / H⌋`, summed. `start_ms` is the lease's
/// start; `segments` its `(hours, price)` stretches in order.
pub fn cost_of_time(start_ms: u64, slots: u32, segments: &[(u32, u64)], from: u64, to: u64) -> u64 {
    let from = from.max(start_ms);
    if to <= from {
        return 0;
    }
    // The lease hours that [from, to) touches.
    let first = (from - start_ms) / HOUR_MS;
    let last = (to - start_ms).div_ceil(HOUR_MS);
    let mut total: u128 = 0;
    let mut h0 = 0u64;
    for &(hours, price) in segments {
        let h1 = h0 + u64::from(hours);
        for k in first.max(h0)..last.min(h1) {
            let hour_start = start_ms.saturating_add(k * HOUR_MS);
            let hour_end = hour_start.saturating_add(HOUR_MS);
            let d = hour_end.min(to).saturating_sub(hour_start.max(from));
            total += u128::from(slots) * u128::from(price) * u128::from(d) / u128::from(HOUR_MS);
        }
        h0 = h1;
        if h0 >= last {
            break;
        }
    }
    total.min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_refuse_what_is_not_canonical() {
        let r = Report { interval: 7, down: vec![[1; 32], [2; 32]] };
        assert_eq!(Report::decode(&r.encode()).unwrap(), r);
        let unsorted = Report { interval: 7, down: vec![[2; 32], [1; 32]] };
        assert!(Report::decode(&unsorted.encode()).is_err());
        let empty = Report { interval: 7, down: vec![] };
        assert!(Report::decode(&empty.encode()).is_err());
        let t = Tally {
            interval: 3,
            lease: [9; 32],
            down: vec![PublicKey([1; 32]), PublicKey([2; 32])],
            decided: 1,
        };
        assert_eq!(Tally::decode(&t.encode()).unwrap(), t);
        let c = Credit {
            lease: [4; 32],
            reason: CreditReason::Down,
            interval: 5,
            due: 10,
            from_balance: 6,
            from_bond: 4,
        };
        assert_eq!(Credit::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn quorum_needs_more_than_the_share_and_the_minimum() {
        let s = Supervision { interval_ms: 60_000, window: 5, quorum_bps: 5_000, min_down: 2 };
        s.validate().unwrap();
        // Three vantage points: two down reports decide, one does not.
        assert!(s.is_down(2, 3));
        assert!(!s.is_down(1, 3));
        // Four: two is exactly half, not more.
        assert!(!s.is_down(2, 4));
        assert!(s.is_down(3, 4));
        // One vantage point can never decide alone.
        assert!(!s.is_down(1, 1));
        assert!(Supervision { interval_ms: 7_000, ..s }.validate().is_err());
        assert!(Supervision { min_down: 1, ..s }.validate().is_err());
    }

    #[test]
    fn the_cost_of_time_follows_the_hours_prices() {
        let start = 1_000_000;
        // 2 slots, hour 0 at 60, hour 1 at 120: a minute in each hour.
        let segs = [(1, 60), (1, 120)];
        assert_eq!(cost_of_time(start, 2, &segs, start, start + 60_000), 2);
        let straddle =
            cost_of_time(start, 2, &segs, start + HOUR_MS - 30_000, start + HOUR_MS + 30_000);
        assert_eq!(straddle, 1 + 2);
        // The whole lease costs exactly its hours.
        assert_eq!(cost_of_time(start, 2, &segs, start, start + 2 * HOUR_MS), 360);
        // Time outside the lease costs nothing.
        assert_eq!(cost_of_time(start, 2, &segs, start + 2 * HOUR_MS, start + 3 * HOUR_MS), 0);
    }
}
