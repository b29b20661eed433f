//! Surplus integration tests across crates and processes: multi-node, fault and browser tests.
//! Built by the node, web and faults issues; nothing here yet.
