//! The consortium's genesis file (JSON), which `surplus genesis` writes.
//!
//! ```json
//! { "chain_id": "surplus-devnet", "genesis_time_ms": 1700000000000,
//!   "validators": [{ "name": "dc1", "public_key": "<hex>" }],
//!   "params": { "catalogue": {...}, "treasury": "<hex>", "fee_bps": 0, "penalty_bps": 0,
//!               "notice_ms": 86400000,
//!               "supervision": { "interval_ms": 60000, "window": 5, "quorum_bps": 5000, "min_down": 2 } },
//!   "allocations": [{ "account": "<hex>", "amount": 1000000 }] }
//! ```
//!
//! `params` and `allocations` are the contracts' own [`Params`] and [`Allocation`] JSON.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use surplus_contracts::{Allocation, BlockMaker, Genesis, Params};
use surplus_ledger::{Block, PublicKey, Signature, SignatureError};
use surplus_market::Catalogue;

use crate::config::{validate_name, ConfigError};

/// One validator of the genesis set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Its node's name (`name` in that node's config).
    pub name: String,
    /// Its node key.
    pub public_key: PublicKey,
}

/// The genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// The chain id every entry is signed for.
    pub chain_id: String,
    /// Timestamp of the genesis block, ms since the epoch.
    pub genesis_time_ms: u64,
    /// The validators, in order (equal voting power).
    pub validators: Vec<Validator>,
    /// The consortium's parameters.
    pub params: Params,
    /// Initial balances.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
}

/// Whether `key` can sign under the ledger's strict rule (a canonical point of large order).
pub fn check_key(key: &PublicKey) -> Result<(), String> {
    match surplus_ledger::verify_strict(key, b"", &Signature([0; 64])) {
        Err(SignatureError::BadKey) => Err(format!(
            "{key} is not a usable ed25519 public key (not a canonical curve point of large \
             order): copy it again from `surplus key show` or `surplus init`"
        )),
        _ => Ok(()),
    }
}

/// Deserializes `v[key]` into `T`, naming `path` in the error.
fn field<T: DeserializeOwned>(v: &Value, path: &str, what: &str) -> Result<T, (String, String)> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let x = v.get(key).ok_or_else(|| (path.to_owned(), format!("missing: add {what}")))?;
    T::deserialize(x).map_err(|e| (path.to_owned(), format!("{e}: expected {what}")))
}

fn only_keys(v: &Value, path: &str, allowed: &[&str]) -> Result<(), (String, String)> {
    let Some(obj) = v.as_object() else {
        let what = if path.is_empty() { "the file" } else { path };
        return Err((path.to_owned(), format!("{what} must be a JSON object")));
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            return Err((at, format!("unknown field: the fields here are {}", allowed.join(", "))));
        }
    }
    Ok(())
}

fn array<'a>(v: &'a Value, path: &str, what: &str) -> Result<&'a [Value], (String, String)> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err((path.to_owned(), format!("must be an array of {what}"))),
    }
}

impl GenesisFile {
    /// Reads and validates a genesis file; errors name the JSON field (`validators[2].public_key`).
    pub fn load(path: &Path) -> Result<GenesisFile, ConfigError> {
        let text = ConfigError::read(path)?;
        Self::parse(&text, path)
    }

    /// Parses and validates genesis JSON; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<GenesisFile, ConfigError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ConfigError::Invalid {
            file: file.to_owned(),
            line: Some(e.line()),
            field: String::new(),
            reason: format!("not JSON: {e}"),
        })?;
        let g = Self::from_value(&v)
            .map_err(|(field, reason)| ConfigError::invalid(file, field, reason))?;
        g.validate().map_err(|(field, reason)| ConfigError::invalid(file, field, reason))?;
        Ok(g)
    }

    fn from_value(v: &Value) -> Result<GenesisFile, (String, String)> {
        only_keys(v, "", &["chain_id", "genesis_time_ms", "validators", "params", "allocations"])?;
        let chain_id: String =
            field(v, "chain_id", "the chain id, a string such as \"surplus-main\"")?;
        let genesis_time_ms: u64 =
            field(v, "genesis_time_ms", "the genesis time in ms since the epoch")?;
        let mut validators = Vec::new();
        for (i, x) in
            array(v, "validators", "{\"name\", \"public_key\"} objects")?.iter().enumerate()
        {
            let p = format!("validators[{i}]");
            only_keys(x, &p, &["name", "public_key"])?;
            validators.push(Validator {
                name: field(x, &format!("{p}.name"), "the validator's node name")?,
                public_key: field(x, &format!("{p}.public_key"), "a 64-hex-digit public key")?,
            });
        }
        let pv = v.get("params").ok_or((
            "params".to_owned(),
            "missing: add the consortium's parameters (catalogue, treasury, fee_bps, penalty_bps)"
                .to_owned(),
        ))?;
        only_keys(
            pv,
            "params",
            &["catalogue", "treasury", "fee_bps", "penalty_bps", "notice_ms", "supervision"],
        )?;
        let treasury: PublicKey =
            field(pv, "params.treasury", "the treasury's 64-hex-digit public key")?;
        let bps = |k: &str| -> Result<u16, (String, String)> {
            match pv.get(k) {
                None => Ok(0),
                Some(_) => field(pv, &format!("params.{k}"), "basis points, 0 to 10000"),
            }
        };
        let (fee_bps, penalty_bps) = (bps("fee_bps")?, bps("penalty_bps")?);
        let notice_ms = match pv.get("notice_ms") {
            None => surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
            Some(_) => field(
                pv,
                "params.notice_ms",
                "milliseconds of notice that spare a provider the penalty (default 86400000)",
            )?,
        };
        let supervision = match pv.get("supervision") {
            None | Some(serde_json::Value::Null) => None,
            Some(sv) => {
                only_keys(
                    sv,
                    "params.supervision",
                    &["interval_ms", "window", "quorum_bps", "min_down"],
                )?;
                let s = surplus_contracts::supervision::Supervision {
                    interval_ms: field(
                        sv,
                        "params.supervision.interval_ms",
                        "ms of an interval, 1000 to 3600000, dividing an hour",
                    )?,
                    window: field(sv, "params.supervision.window", "intervals, 1 to 1000")?,
                    quorum_bps: field(
                        sv,
                        "params.supervision.quorum_bps",
                        "basis points, 5000 to 9999",
                    )?,
                    min_down: field(sv, "params.supervision.min_down", "reports, 2 to 1024")?,
                };
                s.validate().map_err(|e| ("params.supervision".to_owned(), e))?;
                Some(s)
            }
        };
        let cv = pv.get("catalogue").ok_or((
            "params.catalogue".to_owned(),
            "missing: add the catalogue of classes and regions".to_owned(),
        ))?;
        only_keys(cv, "params.catalogue", &["classes", "regions"])?;
        let mut classes = Vec::new();
        for (i, x) in array(cv, "classes", "classes")?.iter().enumerate() {
            classes.push(
                serde_json::from_value(x.clone())
                    .map_err(|e| (format!("params.catalogue.classes[{i}]"), e.to_string()))?,
            );
        }
        let mut regions = Vec::new();
        for (i, x) in array(cv, "regions", "regions")?.iter().enumerate() {
            regions.push(
                serde_json::from_value(x.clone())
                    .map_err(|e| (format!("params.catalogue.regions[{i}]"), e.to_string()))?,
            );
        }
        let params = Params {
            catalogue: Catalogue { classes, regions },
            treasury,
            fee_bps,
            penalty_bps,
            notice_ms,
            supervision,
        };
        let mut allocations = Vec::new();
        for (i, x) in
            array(v, "allocations", "{\"account\", \"amount\"} objects")?.iter().enumerate()
        {
            let p = format!("allocations[{i}]");
            only_keys(x, &p, &["account", "amount"])?;
            allocations.push(Allocation {
                account: field(x, &format!("{p}.account"), "a 64-hex-digit public key")?,
                amount: field(x, &format!("{p}.amount"), "units, a non-negative integer")?,
            });
        }
        Ok(GenesisFile { chain_id, genesis_time_ms, validators, params, allocations })
    }

    /// Checks everything the genesis block will need, naming the field at fault.
    fn validate(&self) -> Result<(), (String, String)> {
        surplus_ledger::validate_chain_id(&self.chain_id)
            .map_err(|e| ("chain_id".to_owned(), e))?;
        if self.validators.is_empty() {
            return Err((
                "validators".into(),
                "needs at least one validator (4 tolerate one faulty member)".into(),
            ));
        }
        if self.validators.len() > surplus_ledger::MAX_VALIDATORS {
            return Err((
                "validators".into(),
                format!("at most {} validators", surplus_ledger::MAX_VALIDATORS),
            ));
        }
        for (i, v) in self.validators.iter().enumerate() {
            validate_name(&v.name).map_err(|e| (format!("validators[{i}].name"), e))?;
            check_key(&v.public_key).map_err(|e| (format!("validators[{i}].public_key"), e))?;
            if let Some(j) = self.validators[..i].iter().position(|w| w.name == v.name) {
                return Err((
                    format!("validators[{i}].name"),
                    format!(
                        "{:?} is also validators[{j}]: each validator needs its own name",
                        v.name
                    ),
                ));
            }
            if let Some(j) = self.validators[..i].iter().position(|w| w.public_key == v.public_key)
            {
                return Err((
                    format!("validators[{i}].public_key"),
                    format!(
                        "the same key as validators[{j}] ({}): each validator needs its own key",
                        self.validators[j].name
                    ),
                ));
            }
        }
        check_key(&self.params.treasury).map_err(|e| ("params.treasury".to_owned(), e))?;
        self.params
            .clone()
            .validated()
            .map_err(|e| ("params".to_owned(), e.to_string().replace("invalid genesis: ", "")))?;
        let mut total = 0u64;
        for (i, a) in self.allocations.iter().enumerate() {
            check_key(&a.account).map_err(|e| (format!("allocations[{i}].account"), e))?;
            if let Some(j) = self.allocations[..i].iter().position(|b| b.account == a.account) {
                return Err((
                    format!("allocations[{i}].account"),
                    format!("also allocated in allocations[{j}]: merge the two amounts"),
                ));
            }
            total = total.checked_add(a.amount).ok_or((
                format!("allocations[{i}].amount"),
                "the allocations add up to more than 2^64 units".to_owned(),
            ))?;
        }
        self.block().map_err(|e| ("genesis".to_owned(), e.to_string()))?;
        Ok(())
    }

    /// The contracts' genesis configuration.
    pub fn genesis(&self) -> Genesis {
        Genesis {
            validators: self.validators.iter().map(|v| v.public_key).collect(),
            params: self.params.clone(),
            allocations: self.allocations.clone(),
        }
    }

    /// The genesis block and a maker of the blocks after it. Cannot fail for a file that
    /// [`GenesisFile::load`] accepted.
    pub fn block(&self) -> Result<(Block, BlockMaker), surplus_contracts::Error> {
        BlockMaker::genesis(&self.chain_id, &self.genesis(), self.genesis_time_ms)
    }

    /// The file's JSON text (pretty, ending in a newline).
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surplus_ledger::testutil::key;

    fn sample() -> GenesisFile {
        GenesisFile {
            chain_id: "test-chain".into(),
            genesis_time_ms: 1_700_000_000_000,
            validators: (0..4)
                .map(|i| Validator { name: format!("dc{i}"), public_key: key("v", i).public() })
                .collect(),
            params: Params {
                catalogue: Catalogue::sample(),
                treasury: key("treasury", 0).public(),
                fee_bps: 100,
                penalty_bps: 500,
                notice_ms: surplus_contracts::maintenance::DEFAULT_NOTICE_MS,
                supervision: None,
            },
            allocations: vec![Allocation { account: key("buyer", 0).public(), amount: 5_000_000 }],
        }
    }

    fn err_of(v: &Value) -> (String, String) {
        match GenesisFile::parse(&v.to_string(), Path::new("g.json")) {
            Err(ConfigError::Invalid { field, reason, .. }) => (field, reason),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn round_trips_and_builds_the_block() {
        let g = sample();
        let back = GenesisFile::parse(&g.to_json(), Path::new("g.json")).unwrap();
        assert_eq!(back, g);
        let (block, maker) = back.block().unwrap();
        assert_eq!(block.header.height, 0);
        assert_eq!(block.header.chain_id, "test-chain");
        assert_eq!(maker.state.account(&key("buyer", 0).public()).balance, 5_000_000);
        // The contracts read the same genesis back from the block.
        assert_eq!(Genesis::from_block(&block).unwrap().validators, g.genesis().validators);
        // The params JSON is the contracts' own.
        let v: Value = serde_json::from_str(&g.to_json()).unwrap();
        let p: Params = serde_json::from_value(v["params"].clone()).unwrap();
        assert_eq!(p, g.params);
    }

    #[test]
    fn errors_name_the_json_field() {
        let base = serde_json::to_value(sample()).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            err_of(&v)
        };
        let (f, r) = with(&|v| v["chain_id"] = "Bad Chain".into());
        assert_eq!(f, "chain_id", "{r}");
        let (f, r) = with(&|v| v["validators"][2]["public_key"] = "abcd".into());
        assert_eq!(f, "validators[2].public_key");
        assert!(r.contains("32 bytes"), "{r}");
        let (f, r) =
            with(&|v| v["validators"][3]["public_key"] = v["validators"][1]["public_key"].clone());
        assert_eq!(f, "validators[3].public_key");
        assert!(r.contains("validators[1] (dc1)"), "{r}");
        let (f, _) = with(&|v| v["validators"][1]["name"] = "dc0".into());
        assert_eq!(f, "validators[1].name");
        // The identity point is of small order: no signature under it is acceptable.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let (f, r) = with(&|v| v["validators"][0]["public_key"] = hex::encode(ident).into());
        assert_eq!(f, "validators[0].public_key");
        assert!(r.contains("not a usable"), "{r}");
        let (f, _) = with(&|v| v["validators"] = serde_json::json!([]));
        assert_eq!(f, "validators");
        let (f, r) = with(&|v| v["params"]["fee_bps"] = 20_000.into());
        assert_eq!(f, "params", "{r}");
        assert!(r.contains("10000"), "{r}");
        let (f, _) = with(&|v| v["params"]["fee_bsp"] = 1.into());
        assert_eq!(f, "params.fee_bsp");
        let (f, _) = with(&|v| v["params"]["catalogue"]["classes"][1]["id"] = 5.into());
        assert_eq!(f, "params.catalogue.classes[1]");
        let (f, r) = with(&|v| v["params"]["catalogue"]["classes"][1]["id"] = "vm.2c8g".into());
        assert_eq!(f, "params");
        assert!(r.contains("twice"), "{r}");
        let (f, _) = with(&|v| v["params"]["treasury"] = "zz".into());
        assert_eq!(f, "params.treasury");
        let (f, r) = with(&|v| {
            let first = v["allocations"][0].clone();
            v["allocations"].as_array_mut().unwrap().push(first);
        });
        assert_eq!(f, "allocations[1].account");
        assert!(r.contains("allocations[0]"), "{r}");
        let (f, _) = with(&|v| v["allocations"][0]["amount"] = (-1).into());
        assert_eq!(f, "allocations[0].amount");
        let (f, _) = with(&|v| {
            v.as_object_mut().unwrap().remove("genesis_time_ms");
        });
        assert_eq!(f, "genesis_time_ms");
        let (f, _) = with(&|v| v["extra"] = 1.into());
        assert_eq!(f, "extra");
        let e = GenesisFile::parse("{ nope", Path::new("g.json")).unwrap_err().to_string();
        assert!(e.starts_with("g.json:1: not JSON"), "{e}");
    }
}
