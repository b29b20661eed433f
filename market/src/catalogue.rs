//! The consortium's catalogue: resource classes and regions, fixed in the genesis configuration.
//! A market is a (class, region) pair.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest class or region name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a class or region name: 1 to 64 bytes of `a-z 0-9 . _ -`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("{what} name must be 1 to {MAX_NAME_LEN} bytes, got {:?}", name));
    }
    if let Some(c) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) {
        return Err(format!(
            "{what} name {name:?} may hold only a-z, 0-9, '.', '_', '-' (found {c:?})"
        ));
    }
    Ok(())
}

/// A resource class, such as `vm.4c16g` or `gpu.a100`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    /// Its name, used in market ids.
    pub id: String,
    /// What a person reads.
    #[serde(default)]
    pub description: String,
    /// Numeric attributes of one slot (for example `vcpu = 4`, `ram_gib = 16`, `disk_gib = 100`,
    /// `gpu_count = 1`).
    #[serde(default)]
    pub attributes: BTreeMap<String, u64>,
}

/// A region or datacenter, named by its operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Its name, used in market ids.
    pub id: String,
    /// What a person reads.
    #[serde(default)]
    pub description: String,
}

/// A market's two names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarketName {
    /// The class name.
    pub class: String,
    /// The region name.
    pub region: String,
}

/// A market: one resource class in one region. Written `class@region` in JSON.
///
/// Its names sit behind one shared pointer: a clone (one per fill, per order the book holds, per
/// price it reports) copies a pointer, not two strings, and the book lets every order of a
/// market share its side's copy. Read the names as fields (`market.class`, `market.region`);
/// equality, order and hash are those of the names (class, then region).
#[derive(Clone)]
pub struct Market(Arc<MarketName>);

impl Market {
    /// The market of `class` in `region`.
    pub fn new(class: &str, region: &str) -> Self {
        Self::from_names(class.to_owned(), region.to_owned())
    }

    /// The market of `class` in `region`, taking the names.
    pub fn from_names(class: String, region: String) -> Self {
        Market(Arc::new(MarketName { class, region }))
    }

    /// Whether both are the same shared copy (then they are equal; equal markets need not be).
    pub fn shares(&self, other: &Market) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Market {
    type Target = MarketName;

    fn deref(&self) -> &MarketName {
        &self.0
    }
}

impl PartialEq for Market {
    fn eq(&self, other: &Self) -> bool {
        self.shares(other) || self.0 == other.0
    }
}

impl Eq for Market {}

impl PartialOrd for Market {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Market {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.shares(other) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl std::hash::Hash for Market {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl fmt::Debug for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Market").field("class", &self.class).field("region", &self.region).finish()
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.class, self.region)
    }
}

impl Serialize for Market {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Market {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Market {
    type Err = String;
    /// Parses `class@region`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (class, region) = s
            .split_once('@')
            .ok_or_else(|| format!("market {s:?} must be written class@region"))?;
        validate_name("class", class)?;
        validate_name("region", region)?;
        Ok(Self::new(class, region))
    }
}

/// The catalogue of classes and regions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    /// Resource classes.
    pub classes: Vec<Class>,
    /// Regions.
    pub regions: Vec<Region>,
}

impl Catalogue {
    /// Checks names and uniqueness; returns the catalogue with classes and regions sorted.
    pub fn validated(mut self) -> Result<Self, String> {
        if self.classes.is_empty() || self.regions.is_empty() {
            return Err("the catalogue needs at least one class and one region".into());
        }
        for c in &self.classes {
            validate_name("class", &c.id)?;
        }
        for r in &self.regions {
            validate_name("region", &r.id)?;
        }
        self.classes.sort_by(|a, b| a.id.cmp(&b.id));
        self.regions.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(w) = self.classes.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(format!("class {:?} is listed twice", w[0].id));
        }
        if let Some(w) = self.regions.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(format!("region {:?} is listed twice", w[0].id));
        }
        Ok(self)
    }

    /// Whether `market` names a class and a region of this catalogue.
    pub fn has_market(&self, market: &Market) -> bool {
        self.market_index(market).is_some()
    }

    /// The place of `market` among [`Catalogue::markets`], if it names a class and a region of
    /// this catalogue.
    pub fn market_index(&self, market: &Market) -> Option<usize> {
        let class = self.classes.binary_search_by(|c| c.id.as_str().cmp(&market.class)).ok()?;
        let region = self.regions.binary_search_by(|r| r.id.as_str().cmp(&market.region)).ok()?;
        Some(class * self.regions.len() + region)
    }

    /// Every market, in order.
    pub fn markets(&self) -> Vec<Market> {
        let mut out = Vec::with_capacity(self.classes.len() * self.regions.len());
        for c in &self.classes {
            for r in &self.regions {
                out.push(Market::new(&c.id, &r.id));
            }
        }
        out
    }

    /// The sample catalogue of devnet and the tests: three VM sizes, a GPU class and block
    /// storage, in three regions.
    pub fn sample() -> Self {
        let class = |id: &str, description: &str, attrs: &[(&str, u64)]| Class {
            id: id.into(),
            description: description.into(),
            attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        };
        let region =
            |id: &str, description: &str| Region { id: id.into(), description: description.into() };
        Self {
            classes: vec![
                class(
                    "vm.2c8g",
                    "2 vCPU, 8 GiB RAM, 50 GiB disk",
                    &[("vcpu", 2), ("ram_gib", 8), ("disk_gib", 50)],
                ),
                class(
                    "vm.4c16g",
                    "4 vCPU, 16 GiB RAM, 100 GiB disk",
                    &[("vcpu", 4), ("ram_gib", 16), ("disk_gib", 100)],
                ),
                class(
                    "vm.16c64g",
                    "16 vCPU, 64 GiB RAM, 400 GiB disk",
                    &[("vcpu", 16), ("ram_gib", 64), ("disk_gib", 400)],
                ),
                class(
                    "gpu.a100",
                    "1 NVIDIA A100 80 GB, 12 vCPU, 120 GiB RAM",
                    &[("gpu_count", 1), ("vcpu", 12), ("ram_gib", 120)],
                ),
                class(
                    "storage.block-tib",
                    "1 TiB of replicated block storage",
                    &[("storage_tib", 1)],
                ),
            ],
            regions: vec![
                region("eu-west-a", "Datacenter A, western Europe"),
                region("us-east-b", "Datacenter B, eastern United States"),
                region("ap-south-c", "Datacenter C, southern Asia"),
            ],
        }
        .validated()
        .unwrap_or_else(|e| unreachable!("the sample catalogue is valid: {e}"))
    }
}

impl utoipa::PartialSchema for Market {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("a market: a resource class and a region, written class@region"))
            .examples(["gpu.a100@eu-west"])
            .build()
            .into()
    }
}
impl utoipa::ToSchema for Market {}
