//! Newtype ids and the rules every id follows.

use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::FieldError;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// An id type: turns into the string key stores index by.
pub trait RecordId:
    Clone
    + Default
    + fmt::Debug
    + fmt::Display
    + PartialEq
    + Eq
    + Hash
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The string key this id is stored under: its `Display` form.
    fn key(&self) -> String {
        self.to_string()
    }

    /// [`RecordId::key`] borrowed where the id holds it as it is (a
    /// single-string id), so a read need not copy it.
    fn key_ref(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(self.key())
    }

    /// Checks the id against the id rules; `field` names it in the error.
    fn check(&self, field: &str) -> Result<(), FieldError>;

    /// True for an empty id: a record put with one gets a generated id
    /// (see [`Record::new_id`](crate::Record::new_id)).
    fn is_empty(&self) -> bool;

    /// The id stored under `key` (the inverse of [`RecordId::key`]), or
    /// `None` when `key` is not one.
    fn from_key(key: &str) -> Option<Self>;

    /// A new id of this type, where one can be made without the record:
    /// a time-sortable string for the single-string ids, `None` for ids
    /// made of the record's own fields.
    fn generate() -> Option<Self> {
        None
    }
}

/// Checks one id string: not empty, not `.` or `..`, at most [`MAX_ID_LEN`]
/// bytes, and only ASCII letters, digits and `- _ . : @ +` (so never a space
/// or a `/`).
pub fn check_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id == "." || id == ".." {
        return Err(FieldError::new(
            field,
            format!("{id:?} is not an id (it names a path, not a record)"),
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("is {} bytes, over the {MAX_ID_LEN}-byte limit", id.len()),
        ));
    }
    // Byte by byte through a table (every id of every operation passes
    // here); any byte of a non-ASCII character is refused, and the
    // character it starts is named.
    if let Some(at) = id.bytes().position(|b| !ID_BYTES[usize::from(b)]) {
        let c = id[at..].chars().next().unwrap_or_default();
        return Err(FieldError::new(
            field,
            format!("contains {c:?}; ids take ASCII letters, digits and - _ . : @ +"),
        ));
    }
    Ok(())
}

/// Which bytes an id may hold: ASCII letters, digits and `- _ . : @ +`.
const ID_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        allowed[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'@' | b'+');
        b += 1;
    }
    allowed
};

/// A new time-sortable id (UUIDv7, lower-case hex with dashes).
pub fn generate_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// An id from a string (checked when the record is written).
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// A new time-sortable id.
            pub fn generate() -> Self {
                $name(generate_id())
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// True for the empty id (a record put with one gets a generated id).
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl RecordId for $name {
            fn key(&self) -> String {
                self.0.clone()
            }

            fn key_ref(&self) -> std::borrow::Cow<'_, str> {
                std::borrow::Cow::Borrowed(&self.0)
            }

            fn check(&self, field: &str) -> Result<(), FieldError> {
                check_id(field, &self.0)
            }

            fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            fn from_key(key: &str) -> Option<Self> {
                Some($name(key.to_string()))
            }

            fn generate() -> Option<Self> {
                Some($name(generate_id()))
            }
        }
    };
}

string_id!(
    /// Identifies a profile (a user or an organization).
    ProfileId
);
string_id!(
    /// Identifies a workflow.
    WorkflowId
);
string_id!(
    /// Identifies a run of a workflow.
    RunId
);
string_id!(
    /// Identifies a key pair: derived from its public key (see
    /// [`KeyId::for_public_key`]).
    KeyId
);

impl KeyId {
    /// The id of the key pair with this encoded public key: `key-` and the
    /// first 20 bytes of the SHA-256 of the public key, in hex. A key is
    /// stored under this id and no other, so an id names one public key
    /// (as Qri's key ids are hashes of their public keys).
    pub fn for_public_key(public_key: &str) -> KeyId {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(public_key.as_bytes());
        let mut id = String::with_capacity(44);
        id.push_str("key-");
        for b in &digest[..20] {
            id.push_str(&format!("{b:02x}"));
        }
        KeyId(id)
    }
}
string_id!(
    /// Identifies a dataset by its initialization (stable across versions).
    InitId
);
string_id!(
    /// Identifies an operation log (one per dataset).
    LogId
);
string_id!(
    /// Identifies an access token: the public part of its text
    /// (`dst_<id>_<secret>`), never the secret.
    TokenId
);

/// The key of a collection entry: one profile's entry for one dataset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct CollectionKey {
    /// The profile whose collection holds the entry.
    pub profile_id: ProfileId,
    /// The dataset.
    pub init_id: InitId,
}

impl CollectionKey {
    /// The key for a profile and dataset.
    pub fn new(profile_id: impl Into<ProfileId>, init_id: impl Into<InitId>) -> Self {
        CollectionKey {
            profile_id: profile_id.into(),
            init_id: init_id.into(),
        }
    }

    /// Parses the `profile/init` form.
    pub fn parse(key: &str) -> Option<Self> {
        let (p, i) = key.split_once('/')?;
        Some(CollectionKey::new(p, i))
    }
}

impl fmt::Display for CollectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.profile_id, self.init_id)
    }
}

impl RecordId for CollectionKey {
    fn check(&self, _field: &str) -> Result<(), FieldError> {
        check_id("profile_id", self.profile_id.as_str())?;
        check_id("init_id", self.init_id.as_str())
    }

    fn is_empty(&self) -> bool {
        self.profile_id.is_empty() && self.init_id.is_empty()
    }

    fn from_key(key: &str) -> Option<Self> {
        CollectionKey::parse(key)
    }
}

/// The key of one log entry: the log and the entry's sequence number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct LogEntryKey {
    /// The log.
    pub log_id: LogId,
    /// The entry's position, from 0.
    pub seq: u64,
}

impl fmt::Display for LogEntryKey {
    /// `log/00000000000000000007`: zero-padded so keys sort by sequence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:020}", self.log_id, self.seq)
    }
}

impl RecordId for LogEntryKey {
    fn check(&self, _field: &str) -> Result<(), FieldError> {
        check_id("log_id", self.log_id.as_str())
    }

    fn is_empty(&self) -> bool {
        self.log_id.is_empty()
    }

    fn from_key(key: &str) -> Option<Self> {
        let (log, seq) = key.rsplit_once('/')?;
        Some(LogEntryKey {
            log_id: LogId::new(log),
            seq: seq.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        assert!(check_id("id", "abc-DEF_1.2:3@4+5").is_ok());
        assert_eq!(check_id("id", "").unwrap_err().field, "id");
        assert!(check_id("id", "a b").unwrap_err().reason.contains("' '"));
        assert!(check_id("id", "a/b").is_err());
        assert!(check_id("id", &"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id("id", &generate_id()).is_ok());
        assert!(
            check_id("id", "caf\u{e9}")
                .unwrap_err()
                .reason
                .contains("'\u{e9}'")
        );
    }

    #[test]
    fn every_character_is_judged_by_the_id_rule() {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:@+".contains(c);
        for c in (0..=0x2ffu32)
            .filter_map(char::from_u32)
            .chain(['\u{1f600}', '\u{ffff}'])
        {
            let id = format!("a{c}b");
            let judged = check_id("id", &id);
            assert_eq!(judged.is_ok(), allowed(c), "{c:?}");
            if let Err(e) = judged {
                assert!(e.reason.contains(&format!("{c:?}")), "{c:?}: {}", e.reason);
            }
        }
    }

    #[test]
    fn composite_keys_round_trip() {
        let k = CollectionKey::new("p1", "i1");
        assert_eq!(CollectionKey::parse(&k.key()), Some(k));
        let l = LogEntryKey {
            log_id: LogId::new("l"),
            seq: 7,
        };
        assert_eq!(l.key(), "l/00000000000000000007");
        assert_eq!(LogEntryKey::from_key(&l.key()), Some(l));
        let c = CollectionKey::new("p1", "i1");
        assert_eq!(CollectionKey::from_key(&c.key()), Some(c));
        assert_eq!(ProfileId::from_key("p9"), Some(ProfileId::new("p9")));
        assert_eq!(LogEntryKey::from_key("no-seq"), None);
    }
}
