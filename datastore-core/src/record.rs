//! The one generic record path: what every stored kind declares about itself.
//!
//! A backend stores records by [`Kind`] and string key, keeps the index
//! entries each record declares, and enforces the unique ones. The typed
//! substores are thin layers over this path (see [`crate::RecordStore`]).

use std::fmt::Debug;

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{FieldError, StoreName};
use crate::ids::RecordId;

pub use crate::kinds::Kind;

impl Kind {
    /// The substore holding this kind, as errors name it.
    pub fn store(self) -> StoreName {
        StoreName::Kind(self)
    }

    /// The index of this kind with that name.
    pub fn index(self, name: &str) -> Option<&'static IndexDef> {
        self.indexes().iter().find(|d| d.name == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of an indexed field (SQL backends give it a column of that type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// A signed 64-bit integer.
    Int,
    /// A boolean.
    Bool,
    /// A UTC timestamp, as microseconds since the Unix epoch.
    Time,
}

/// One field of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexField {
    /// The field's name (and column name).
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
}

/// A secondary index: entries ordered by the field values, then by id.
/// Declared as `IndexDef::new(name, fields)`, with `.unique()` or
/// `.sparse()` where they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    /// The index name, unique within its kind.
    pub name: &'static str,
    /// The fields, most significant first.
    pub fields: &'static [IndexField],
    /// True when no two records may share the field values.
    pub unique: bool,
    /// True when some records have no entry (their fields are then NULL in
    /// SQL backends, and scans of the index skip them).
    pub sparse: bool,
}

impl IndexDef {
    /// A non-unique index every record has an entry in.
    pub const fn new(name: &'static str, fields: &'static [IndexField]) -> Self {
        IndexDef {
            name,
            fields,
            unique: false,
            sparse: false,
        }
    }

    /// The same index, unique.
    pub const fn unique(self) -> Self {
        IndexDef {
            unique: true,
            ..self
        }
    }

    /// The same index, sparse.
    pub const fn sparse(self) -> Self {
        IndexDef {
            sparse: true,
            ..self
        }
    }
}

/// One value of an indexed field. Values of one field compare in the order
/// the variants are listed, then by content.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(untagged)]
pub enum IndexValue {
    /// A missing optional value; sorts first.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (timestamps as microseconds since the epoch).
    Int(i64),
    /// Text.
    Str(String),
}

impl IndexValue {
    /// A timestamp as an index value.
    pub fn time(t: chrono::DateTime<chrono::Utc>) -> Self {
        IndexValue::Int(t.timestamp_micros())
    }

    /// An optional timestamp as an index value.
    pub fn opt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        t.map_or(IndexValue::Null, IndexValue::time)
    }

    /// A string-like value.
    pub fn str(s: impl Into<String>) -> Self {
        IndexValue::Str(s.into())
    }
}

impl std::fmt::Display for IndexValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexValue::Null => f.write_str("null"),
            IndexValue::Bool(b) => write!(f, "{b}"),
            IndexValue::Int(i) => write!(f, "{i}"),
            IndexValue::Str(s) => f.write_str(s),
        }
    }
}

/// Which index a list reads and the equality prefix it is filtered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The index, or `None` for the primary order (by id).
    pub index: Option<&'static str>,
    /// Values the leading fields must equal.
    pub prefix: Vec<IndexValue>,
}

impl Plan {
    /// A scan of a whole kind in id order.
    pub fn primary() -> Self {
        Plan {
            index: None,
            prefix: Vec::new(),
        }
    }

    /// A scan of an index, filtered to a prefix.
    pub fn index(name: &'static str, prefix: Vec<IndexValue>) -> Self {
        Plan {
            index: Some(name),
            prefix,
        }
    }
}

/// A reference a record makes to another, checked atomically at write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The field holding the reference.
    pub field: &'static str,
    /// The kind referred to.
    pub kind: Kind,
    /// Its key.
    pub key: String,
}

/// What every stored kind declares: its kind, id, indexes, validation and
/// how its list queries map onto indexes.
pub trait Record:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The id type.
    type Id: RecordId;
    /// What a list can be filtered by; the default selects every record.
    type Filter: Clone + Debug + Default + PartialEq + Send + Sync + 'static;
    /// What a list can be ordered by.
    type Order: Clone + Copy + Debug + Default + PartialEq + Send + Sync + 'static;

    /// The kind.
    const KIND: Kind;
    /// The secondary indexes.
    const INDEXES: &'static [IndexDef];

    /// The record's id.
    fn id(&self) -> Self::Id;

    /// Sets the record's id (for a composite id, the fields it is made of).
    fn set_id(&mut self, id: Self::Id);

    /// The id a record put with an empty id gets: by default a new one of
    /// the id type ([`RecordId::generate`]), `None` where the id is made of
    /// the record's fields.
    fn new_id(&self) -> Option<Self::Id> {
        Self::Id::generate()
    }

    /// True when the id is empty (so the store should generate one).
    fn id_is_empty(&self) -> bool {
        self.id().is_empty()
    }

    /// Checks the record's shape: ids, names, sizes. Runs before any write.
    fn validate(&self) -> Result<(), FieldError>;

    /// The record's values for one of its indexes, or `None` when the record
    /// is not in that index (a sparse index).
    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>>;

    /// The index and prefix that serve a filter and order, or an error naming
    /// the combination that no index serves.
    fn plan(filter: &Self::Filter, order: Self::Order) -> Result<Plan, FieldError>;

    /// The key of the record this one belongs to, named in its feed entries.
    fn parent(&self) -> Option<String> {
        None
    }

    /// Records that must exist when this one is written.
    fn references(&self) -> Vec<Reference> {
        Vec::new()
    }

    /// Counters that must be raised to at least these values when this record
    /// is written (so numbers handed out are never handed out again).
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// The times in the record's own body (`created`, a profile's
    /// `updated`) that a put may leave out: one left out (the Unix epoch,
    /// serde's default) gets the time of the write.
    fn write_times_mut(&mut self) -> Vec<&mut chrono::DateTime<chrono::Utc>> {
        Vec::new()
    }

    /// Fields fixed when the record is created, with their values: a put
    /// that would change one of them on a stored record is `Invalid` naming
    /// the field (a run cannot move to another workflow). Fields that make
    /// up the id need not be listed: changing them names another record.
    fn fixed_fields(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// The kinds written through the generic get/put/delete/list path
/// (every kind but log entries, which are append-only).
pub trait Editable: Record {}

/// Builds an [`IndexField`].
pub const fn field(name: &'static str, ty: FieldType) -> IndexField {
    IndexField { name, ty }
}

/// The index entries a record of `R` declares.
pub fn index_entries_of<R: Record>(record: &R) -> Vec<crate::engine::IndexEntry> {
    R::INDEXES
        .iter()
        .filter_map(|def| {
            record
                .index_values(def.name)
                .map(|values| crate::engine::IndexEntry {
                    index: def.name,
                    values,
                    unique: def.unique,
                })
        })
        .collect()
}

impl Kind {
    /// Decodes a stored body of this kind and returns the index entries it
    /// declares (engines use it to rebuild indexes after an index change).
    pub fn index_entries(
        self,
        body: &[u8],
    ) -> Result<Vec<crate::engine::IndexEntry>, serde_json::Error> {
        fn of<R: Record>(body: &[u8]) -> Result<Vec<crate::engine::IndexEntry>, serde_json::Error> {
            Ok(index_entries_of(&serde_json::from_slice::<R>(body)?))
        }
        dispatch_kind!(self, R => of::<R>(body))
    }

    /// The parent a stored body of this kind names (a run's workflow, a log
    /// entry's log, a collection entry's profile): what an engine reports in
    /// a delete's feed entry. `None` for kinds without one, or a body that
    /// does not decode.
    pub fn parent_of(self, body: &[u8]) -> Option<String> {
        fn of<R: Record>(body: &[u8]) -> Option<String> {
            serde_json::from_slice::<R>(body).ok()?.parent()
        }
        dispatch_kind!(self, R => of::<R>(body))
    }

    /// A fingerprint of every kind's index definitions: it changes when an
    /// index is added, removed or redefined, so a store knows to rebuild.
    pub fn index_fingerprint() -> String {
        let mut text = String::new();
        for kind in Kind::ALL {
            for def in kind.indexes() {
                text.push_str(&format!(
                    "{kind}.{}{}(",
                    def.name,
                    if def.unique { "!" } else { "" }
                ));
                for f in def.fields {
                    text.push_str(&format!("{}:{:?},", f.name, f.ty));
                }
                text.push_str(");");
            }
        }
        text
    }
}
