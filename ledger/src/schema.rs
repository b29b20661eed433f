//! JSON schemas of the ledger's types as the API writes them, for the OpenAPI document that
//! the web crate generates with utoipa: keys, signatures and hashes are lowercase hex strings.

use std::borrow::Cow;

use utoipa::openapi::{Object, ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::crypto::{PublicKey, Signature};

/// A string of `digits` lowercase hex digits (any even number when `None`).
pub fn hex(description: &str, digits: Option<usize>) -> Object {
    let pattern = match digits {
        Some(n) => format!("^[0-9a-f]{{{n}}}$"),
        None => "^([0-9a-f]{2})*$".to_owned(),
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// A 32-byte blake3 hash (an id, a root, a header hash): 64 hex digits. For fields written
/// with [`crate::hex_hash`]: `#[schema(schema_with = surplus_ledger::schema::hash)]`.
pub fn hash() -> Object {
    hex("a 32-byte hash, 64 hex digits", Some(64))
}

/// A list of hashes.
pub fn hashes() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new().items(hash()).build()
}

impl PartialSchema for PublicKey {
    fn schema() -> RefOr<Schema> {
        hex("an ed25519 public key, 64 hex digits", Some(64)).into()
    }
}
impl ToSchema for PublicKey {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PublicKey")
    }
}

impl PartialSchema for Signature {
    fn schema() -> RefOr<Schema> {
        hex("an ed25519 signature R || s, 128 hex digits", Some(128)).into()
    }
}
impl ToSchema for Signature {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Signature")
    }
}
