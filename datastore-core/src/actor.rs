//! Who made a write: a profile, or a named service.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::{ProfileId, check_id};

/// Who made a write, kept with the record, its history and its feed entry.
/// Its text form is `profile:<id>` or `service:<name>` (what JSON, SQL and
/// the `x-datastore-actor` header carry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A profile (a user or organization), as a server sets it from the
    /// caller's token.
    Profile(ProfileId),
    /// A named service, such as `scheduler` (ASCII letters, digits and
    /// `- _ . : @ +`, at most 128 bytes).
    Service(String),
}

impl Actor {
    /// A profile actor.
    pub fn profile(id: impl Into<ProfileId>) -> Self {
        Actor::Profile(id.into())
    }

    /// A service actor; `Invalid`-worthy names are refused by [`Actor::check`].
    pub fn service(name: impl Into<String>) -> Self {
        Actor::Service(name.into())
    }

    /// Checks the id or name against the id rules.
    pub fn check(&self) -> Result<(), FieldError> {
        match self {
            Actor::Profile(id) => check_id("actor", id.as_str()),
            Actor::Service(name) => check_id("actor", name),
        }
    }

    /// The profile, for a profile actor.
    pub fn as_profile(&self) -> Option<&ProfileId> {
        match self {
            Actor::Profile(id) => Some(id),
            Actor::Service(_) => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Profile(id) => write!(f, "profile:{id}"),
            Actor::Service(name) => write!(f, "service:{name}"),
        }
    }
}

impl FromStr for Actor {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let actor = if let Some(id) = s.strip_prefix("profile:") {
            Actor::Profile(ProfileId::new(id))
        } else if let Some(name) = s.strip_prefix("service:") {
            Actor::Service(name.to_string())
        } else {
            return Err(FieldError::new(
                "actor",
                format!("{s:?} is not an actor: write profile:<id> or service:<name>"),
            ));
        };
        actor.check()?;
        Ok(actor)
    }
}

impl TryFrom<String> for Actor {
    type Error = FieldError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_bad_forms_are_named() {
        for text in ["profile:alice", "service:scheduler"] {
            let a: Actor = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), a);
        }
        let e = "alice".parse::<Actor>().unwrap_err();
        assert!(e.to_string().contains("profile:<id>"), "{e}");
        let e = "service:a b".parse::<Actor>().unwrap_err();
        assert!(e.to_string().contains("' '"), "{e}");
        assert!("profile:".parse::<Actor>().is_err());
    }
}
