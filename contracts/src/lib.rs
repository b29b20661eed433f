//! Surplus contracts: the deterministic state machine applied to each decided block (accounts,
//! escrow and settlement, leases, credentials). Built by the contracts issue; nothing here yet.
