//! The one list of record kinds.
//!
//! Everything that differs by kind and is not the record's own file is
//! generated from [`with_kinds!`](crate::with_kinds): [`Kind`] with its
//! names, stable tags, tables and indexes, [`AnyRecord`], and the dispatch
//! macros [`dispatch_kind!`](crate::dispatch_kind) (run generic code for a
//! [`Kind`] known at run time) and [`dispatch_any!`](crate::dispatch_any) /
//! [`map_any!`](crate::map_any) (for an [`AnyRecord`]). Engines, layers,
//! transfer and the HTTP API use those instead of matching on kinds.

use serde::{Deserialize, Serialize};

use crate::ids::RecordId;
use crate::record::{IndexDef, Record};

/// Calls `$callback!` with the list of record kinds, so code elsewhere can
/// generate what differs by kind from this one list.
///
/// The callback receives, after any tokens given after the callback's name:
///
/// ```text
/// editable [ Variant(RecordType) store tag N "wire_name" "noun"; ... ]
/// appended [ Variant(RecordType) store tag N "wire_name" "noun"; ... ]
/// ```
///
/// `editable` kinds are put and deleted one by one; `appended` kinds (log
/// entries) only through their own store. `store` names the substore: its
/// accessor on [`Datastore`](crate::Datastore) and the SQL table
/// `ds_<store>`; `tag` is the kind's byte in RocksDB keys,
/// stable on disk, never reused; `wire_name` is the kind's name in JSON
/// (batches, exports, the feed); `noun` names one record in messages.
///
/// Adding a kind: its record file in `records/`, a line here, a migration
/// per SQL database, an HTTP `Resource`, and its conformance cases (see
/// docs/architecture.md, "Adding a kind").
#[macro_export]
macro_rules! with_kinds {
    ($callback:ident $(! $($args:tt)*)?) => {
        $callback! {
            $($($args)*)?
            editable [
                Profile($crate::Profile) profiles tag 1 "profile" "profile";
                Workflow($crate::Workflow) workflows tag 2 "workflow" "workflow";
                Run($crate::Run) runs tag 3 "run" "run";
                Key($crate::Key) keys tag 4 "key" "key";
                Collection($crate::CollectionEntry) collections tag 5 "collection" "collection entry";
                Token($crate::AccessToken) tokens tag 7 "token" "access token";
            ]
            appended [
                Log($crate::LogEntry) logs tag 6 "log_entry" "log entry";
            ]
        }
    };
}

macro_rules! define_kinds {
    (
        ($d:tt)
        editable [ $( $ev:ident($ety:ty) $estore:ident tag $etag:literal $ewire:literal $enoun:literal; )* ]
        appended [ $( $av:ident($aty:ty) $astore:ident tag $atag:literal $awire:literal $anoun:literal; )* ]
    ) => {
        /// The kinds of record a datastore holds (generated from
        /// [`with_kinds!`](crate::with_kinds)).
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $(
                #[doc = concat!("Records of the `", stringify!($estore), "` store.")]
                $ev,
            )*
            $(
                #[doc = concat!("Entries of the `", stringify!($astore), "` store.")]
                $av,
            )*
        }

        impl Kind {
            /// Every kind, in a fixed order.
            pub const ALL: [Kind; [$(stringify!($estore),)* $(stringify!($astore),)*].len()] =
                [$(Kind::$ev,)* $(Kind::$av,)*];

            /// The substore's name (`profiles`, `runs`, ...), which messages,
            /// URLs and table names use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$ev => stringify!($estore),)*
                    $(Kind::$av => stringify!($astore),)*
                }
            }

            /// The kind named by its store (`runs`) or its wire name (`run`).
            pub fn from_name(name: &str) -> Option<Kind> {
                match name {
                    $(stringify!($estore) | $ewire => Some(Kind::$ev),)*
                    $(stringify!($astore) | $awire => Some(Kind::$av),)*
                    _ => None,
                }
            }

            /// One record of this kind in a message (`collection entry`).
            pub fn noun(self) -> &'static str {
                match self {
                    $(Kind::$ev => $enoun,)*
                    $(Kind::$av => $anoun,)*
                }
            }

            /// The kind's byte in stored keys: stable on disk, never reused.
            pub fn tag(self) -> u8 {
                match self {
                    $(Kind::$ev => $etag,)*
                    $(Kind::$av => $atag,)*
                }
            }

            /// The kind of a stored tag.
            pub fn from_tag(tag: u8) -> Option<Kind> {
                match tag {
                    $($etag => Some(Kind::$ev),)*
                    $($atag => Some(Kind::$av),)*
                    _ => None,
                }
            }

            /// The SQL table holding this kind (`ds_<store>`).
            pub fn table(self) -> &'static str {
                match self {
                    $(Kind::$ev => concat!("ds_", stringify!($estore)),)*
                    $(Kind::$av => concat!("ds_", stringify!($astore)),)*
                }
            }

            /// True for kinds put and deleted one by one (all but log entries).
            pub fn is_editable(self) -> bool {
                match self {
                    $(Kind::$ev => true,)*
                    $(Kind::$av => false,)*
                }
            }

            /// The indexes this kind declares.
            pub fn indexes(self) -> &'static [IndexDef] {
                match self {
                    $(Kind::$ev => <$ety as Record>::INDEXES,)*
                    $(Kind::$av => <$aty as Record>::INDEXES,)*
                }
            }
        }

        /// A record of any editable kind: a batch's put, an export's line.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "record", rename_all = "snake_case")]
        #[allow(clippy::large_enum_variant)]
        pub enum AnyRecord {
            $(
                #[doc = concat!("A record of the `", stringify!($estore), "` store.")]
                #[serde(rename = $ewire)]
                $ev($ety),
            )*
        }

        impl AnyRecord {
            /// The record's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(AnyRecord::$ev(_) => Kind::$ev,)*
                }
            }

            /// The record's key.
            pub fn key(&self) -> String {
                match self {
                    $(AnyRecord::$ev(r) => Record::id(r).key(),)*
                }
            }
        }

        $(
            impl $crate::stores::Substore for $ety {
                fn of(ds: &dyn $crate::stores::Datastore) -> &dyn $crate::stores::RecordStore<Self> {
                    ds.$estore()
                }
            }

            impl From<$ety> for AnyRecord {
                fn from(r: $ety) -> Self {
                    AnyRecord::$ev(r)
                }
            }
        )*

        /// Runs `$body` with `$R` standing for the record type of `$kind`:
        /// `dispatch_kind!(kind, R => R::INDEXES.len())`. The one `match` on
        /// kinds that generic code needs.
        #[macro_export]
        macro_rules! dispatch_kind {
            ($d kind:expr, $d R:ident => $d body:expr) => {
                match $d kind {
                    $(
                        $crate::Kind::$ev => {
                            type $d R = $ety;
                            $d body
                        }
                    )*
                    $(
                        $crate::Kind::$av => {
                            type $d R = $aty;
                            $d body
                        }
                    )*
                }
            };
        }

        /// Like [`dispatch_kind!`](crate::dispatch_kind) for the editable
        /// kinds (those with a [`Substore`](crate::Substore)), and `$other`
        /// for the rest: `dispatch_editable!(kind, R => R::of(ds), _ => None)`.
        #[macro_export]
        macro_rules! dispatch_editable {
            ($d kind:expr, $d R:ident => $d body:expr, _ => $d other:expr) => {
                match $d kind {
                    $(
                        $crate::Kind::$ev => {
                            type $d R = $ety;
                            $d body
                        }
                    )*
                    _ => $d other,
                }
            };
        }

        /// Runs `$body` with `$r` bound to the record inside an
        /// [`AnyRecord`](crate::AnyRecord), whatever its kind:
        /// `dispatch_any!(record, r => r.validate())`.
        #[macro_export]
        macro_rules! dispatch_any {
            ($d record:expr, $d r:ident => $d body:expr) => {
                match $d record {
                    $($crate::AnyRecord::$ev($d r) => $d body,)*
                }
            };
        }

        /// Maps the record inside an [`AnyRecord`](crate::AnyRecord) to
        /// another of the same kind: `map_any!(record, r => layer.inbound(r)?)`.
        #[macro_export]
        macro_rules! map_any {
            ($d record:expr, $d r:ident => $d body:expr) => {
                match $d record {
                    $($crate::AnyRecord::$ev($d r) => $crate::AnyRecord::$ev($d body),)*
                }
            };
        }
    };
}

with_kinds!(define_kinds!($));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tags_and_tables_are_unique_and_round_trip() {
        let mut tags = std::collections::HashSet::new();
        for kind in Kind::ALL {
            assert!(tags.insert(kind.tag()), "{kind:?}: tag reused");
            assert_eq!(Kind::from_tag(kind.tag()), Some(kind));
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
            assert_eq!(kind.table(), format!("ds_{}", kind.as_str()));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(serde_json::from_value::<Kind>(json).unwrap(), kind);
        }
        assert_eq!(Kind::from_tag(0), None);
        assert_eq!(Kind::from_name("planets"), None);
    }

    #[test]
    fn dispatch_reaches_each_kinds_type() {
        for kind in Kind::ALL {
            let n = dispatch_kind!(kind, R => <R as Record>::KIND);
            assert_eq!(n, kind);
        }
        let record = AnyRecord::from(crate::Workflow::new("ds", "p"));
        assert_eq!(
            dispatch_any!(&record, r => Record::id(r).key()),
            record.key()
        );
        let mapped = map_any!(record.clone(), r => r);
        assert_eq!(mapped, record);
    }
}
