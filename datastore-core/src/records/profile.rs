use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_LEN, check_len};
use crate::error::FieldError;
use crate::ids::{ProfileId, RecordId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, field};

/// The longest username accepted.
pub const MAX_USERNAME_LEN: usize = 64;

/// Whether a profile is a person or an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// A person.
    #[default]
    User,
    /// An organization.
    Organization,
}

/// A user or organization. Usernames are unique.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// The id; empty on put to have one generated.
    pub id: ProfileId,
    /// The unique handle: ASCII letters, digits, `-`, `_` and `.`.
    pub username: String,
    /// Contact address (may be empty).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Free text about the profile.
    pub description: String,
    /// A home page (`http://` or `https://`, may be empty).
    pub home_url: String,
    /// When the profile was created (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
    /// When the profile was last changed (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub updated: DateTime<Utc>,
    /// User or organization.
    pub kind: ProfileKind,
}

impl Profile {
    /// A new user profile with that username, created now.
    pub fn new(username: impl Into<String>) -> Self {
        let now = Utc::now();
        Profile {
            username: username.into(),
            created: now,
            updated: now,
            ..Profile::default()
        }
    }
}

/// What a profile list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProfileFilter {
    /// Every profile.
    #[default]
    All,
}

/// How a profile list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProfileOrder {
    /// By id.
    #[default]
    Id,
    /// By username.
    Username,
    /// By creation time.
    Created,
}

impl Record for Profile {
    type Id = ProfileId;
    type Filter = ProfileFilter;
    type Order = ProfileOrder;
    const KIND: Kind = Kind::Profile;
    const INDEXES: &'static [IndexDef] = &[
        IndexDef::new("username", &[field("username", FieldType::Str)]).unique(),
        IndexDef::new("created", &[field("created", FieldType::Time)]),
    ];

    fn id(&self) -> ProfileId {
        self.id.clone()
    }

    fn set_id(&mut self, id: ProfileId) {
        self.id = id;
    }

    fn write_times_mut(&mut self) -> Vec<&mut DateTime<Utc>> {
        vec![&mut self.created, &mut self.updated]
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.id.check("id")?;
        if self.username.is_empty() {
            return Err(FieldError::new("username", "must not be empty"));
        }
        check_len("username", &self.username, MAX_USERNAME_LEN)?;
        if let Some(c) = self
            .username
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
        {
            return Err(FieldError::new(
                "username",
                format!("contains {c:?}; usernames take ASCII letters, digits, - _ and ."),
            ));
        }
        if !self.email.is_empty()
            && (!self.email.contains('@') || self.email.contains(char::is_whitespace))
        {
            return Err(FieldError::new("email", "is not an email address"));
        }
        let http = self.home_url.starts_with("http://") || self.home_url.starts_with("https://");
        if !self.home_url.is_empty() && !http {
            return Err(FieldError::new(
                "home_url",
                "must start with http:// or https://",
            ));
        }
        check_len("name", &self.name, MAX_TEXT_LEN)?;
        check_len("description", &self.description, MAX_TEXT_LEN)
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "username" => Some(vec![IndexValue::str(&self.username)]),
            "created" => Some(vec![IndexValue::time(self.created)]),
            _ => None,
        }
    }

    fn plan(filter: &ProfileFilter, order: ProfileOrder) -> Result<Plan, FieldError> {
        match (filter, order) {
            (ProfileFilter::All, ProfileOrder::Id) => Ok(Plan::primary()),
            (ProfileFilter::All, ProfileOrder::Username) => Ok(Plan::index("username", vec![])),
            (ProfileFilter::All, ProfileOrder::Created) => Ok(Plan::index("created", vec![])),
        }
    }
}

impl crate::record::Editable for Profile {}
