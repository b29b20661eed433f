//! Surplus web: the HTTP API and the buyer, operator and auditor UI served by every node.
//! Built by the web issue; nothing here yet.
