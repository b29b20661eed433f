//! Reading u64 fields from JSON as a number or as a decimal string (the "Surplus JSON" of
//! `docs/orders.md` §7: JavaScript numbers hold 53 bits, so clients may send u64 values as
//! strings). Writing is unchanged: numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

fn parse<E: serde::de::Error>(v: NumberOrString) -> Result<u64, E> {
    match v {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| E::custom(format!("{s:?} is larger than 2^64 - 1")))
        }
        NumberOrString::String(s) => {
            Err(E::custom(format!("{s:?} is not a decimal number (digits only)")))
        }
    }
}

/// A u64 written as a number or a decimal string.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    NumberOrString::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a u64, as a number or a decimal string"))
        .and_then(parse)
}

/// A map whose values are u64s written as numbers or decimal strings.
pub fn u64_values<'de, D, K>(d: D) -> Result<BTreeMap<K, u64>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
{
    BTreeMap::<K, NumberOrString>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| parse(v).map(|v| (k, v)))
        .collect()
}
