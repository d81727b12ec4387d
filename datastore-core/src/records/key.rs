use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::check_len;
use crate::error::FieldError;
use crate::ids::{KeyId, ProfileId, RecordId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, Reference, field};

/// The longest encoded key accepted, public or private, in bytes.
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// Private key material. Its `Debug` and `Display` never show the material;
/// read it with [`PrivateKey::expose`] where it is really needed.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKey(String);

impl PrivateKey {
    /// Wraps encoded private key material.
    pub fn new(material: impl Into<String>) -> Self {
        PrivateKey(material.into())
    }

    /// The encoded material. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A key pair belonging to a profile.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Key {
    /// The id: [`KeyId::for_public_key`] of the public key (filled in on a
    /// put with an empty id; any other id is refused).
    pub id: KeyId,
    /// The owning profile.
    pub profile_id: ProfileId,
    /// The encoded public key.
    pub public_key: String,
    /// The encoded private key, when this store holds it.
    pub private_key: Option<PrivateKey>,
    /// When the key was created (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
}

impl Key {
    /// A key pair for a profile, created now.
    pub fn new(profile_id: impl Into<ProfileId>, public_key: impl Into<String>) -> Self {
        Key {
            profile_id: profile_id.into(),
            public_key: public_key.into(),
            created: Utc::now(),
            ..Key::default()
        }
    }
}

/// What a key list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyFilter {
    /// Every key.
    #[default]
    All,
    /// The keys of one profile.
    Profile(ProfileId),
}

/// How a key list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyOrder {
    /// By id.
    #[default]
    Id,
}

impl Record for Key {
    type Id = KeyId;
    type Filter = KeyFilter;
    type Order = KeyOrder;
    const KIND: Kind = Kind::Key;
    const INDEXES: &'static [IndexDef] = &[IndexDef::new(
        "profile",
        &[field("profile_id", FieldType::Str)],
    )];

    fn id(&self) -> KeyId {
        self.id.clone()
    }

    fn set_id(&mut self, id: KeyId) {
        self.id = id;
    }

    /// A key's id is derived from its public key.
    fn new_id(&self) -> Option<KeyId> {
        Some(KeyId::for_public_key(&self.public_key))
    }

    fn write_times_mut(&mut self) -> Vec<&mut DateTime<Utc>> {
        vec![&mut self.created]
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.id.check("id")?;
        self.profile_id.check("profile_id")?;
        if self.public_key.is_empty() {
            return Err(FieldError::new("public_key", "must not be empty"));
        }
        check_len("public_key", &self.public_key, MAX_KEY_LEN)?;
        let derived = KeyId::for_public_key(&self.public_key);
        if self.id != derived {
            return Err(FieldError::new(
                "id",
                format!(
                    "does not match the public key: a key's id is KeyId::for_public_key(public_key), \
                     {:?} for this one",
                    derived.as_str()
                ),
            ));
        }
        if let Some(private) = &self.private_key {
            if private.expose().is_empty() {
                return Err(FieldError::new(
                    "private_key",
                    "must not be empty when present",
                ));
            }
            if private.expose().len() > MAX_KEY_LEN {
                return Err(FieldError::new(
                    "private_key",
                    format!("is over the {MAX_KEY_LEN}-byte limit"),
                ));
            }
        }
        Ok(())
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "profile" => Some(vec![IndexValue::str(self.profile_id.as_str())]),
            _ => None,
        }
    }

    fn plan(filter: &KeyFilter, order: KeyOrder) -> Result<Plan, FieldError> {
        Ok(match (filter, order) {
            (KeyFilter::All, KeyOrder::Id) => Plan::primary(),
            (KeyFilter::Profile(p), KeyOrder::Id) => {
                p.check("profile_id")?;
                Plan::index("profile", vec![IndexValue::str(p.as_str())])
            }
        })
    }

    /// A key's feed entries name its profile.
    fn parent(&self) -> Option<String> {
        Some(self.profile_id.key())
    }

    /// A key belongs to a profile that exists.
    fn references(&self) -> Vec<Reference> {
        vec![Reference {
            field: "profile_id",
            kind: Kind::Profile,
            key: self.profile_id.key(),
        }]
    }

    /// A key belongs to one profile for good.
    fn fixed_fields(&self) -> Vec<(&'static str, String)> {
        vec![("profile_id", self.profile_id.to_string())]
    }
}

impl crate::record::Editable for Key {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_never_in_debug() {
        let mut k = Key::new("p", "pub");
        k.private_key = Some(PrivateKey::new("SECRET-MATERIAL"));
        let dbg = format!(
            "{k:?} {:?} {}",
            k.private_key,
            k.private_key.as_ref().unwrap()
        );
        assert!(!dbg.contains("SECRET-MATERIAL"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }
}
