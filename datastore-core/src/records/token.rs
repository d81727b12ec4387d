//! Access tokens: who a bearer token acts as, what it may do, and a hash of
//! its secret (never the secret itself).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{MAX_TEXT_LEN, check_len};
use crate::error::FieldError;
use crate::ids::{ProfileId, RecordId, TokenId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, Reference, field};

/// What a token may do, from least to most.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read what its profile may read.
    #[default]
    Read,
    /// Read, and write what its profile may write.
    Write,
    /// Everything, every profile's records included.
    Admin,
}

impl TokenScope {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            "admin" => Ok(TokenScope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: expected read, write or admin"
            )),
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text every issued token starts with.
pub const TOKEN_PREFIX: &str = "dst_";

/// A stored access token. The token's text is `dst_<id>_<secret>`; the
/// store keeps the id and the SHA-256 of the secret, so reading the store
/// (or a backup) gives no usable token.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessToken {
    /// The token's public id (the middle of its text).
    pub id: TokenId,
    /// The profile the token acts as.
    pub profile_id: ProfileId,
    /// What it may do.
    pub scope: TokenScope,
    /// The SHA-256 of the secret, in lowercase hex.
    pub secret_hash: String,
    /// A note for whoever lists tokens (`laptop`, `ci`).
    pub name: String,
    /// When it was issued (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
    /// When it stops working, if ever.
    #[serde(serialize_with = "crate::dates::write_option")]
    pub expires: Option<DateTime<Utc>>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("id", &self.id)
            .field("profile_id", &self.profile_id)
            .field("scope", &self.scope)
            .field("secret_hash", &"<redacted>")
            .field("name", &self.name)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .finish()
    }
}

/// A token's text, shown once when it is issued. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken(String);

impl IssuedToken {
    /// The token's text (`dst_<id>_<secret>`). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(<redacted>)")
    }
}

fn sha256_hex(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

impl AccessToken {
    /// A new token for `profile`: the record to store and the text to hand
    /// out once. The secret is 244 random bits from the OS's generator.
    pub fn issue(
        profile: impl Into<ProfileId>,
        scope: TokenScope,
        name: impl Into<String>,
        expires: Option<DateTime<Utc>>,
    ) -> (AccessToken, IssuedToken) {
        let id = TokenId::new(uuid::Uuid::new_v4().simple().to_string()[..16].to_string());
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let text = format!("{TOKEN_PREFIX}{id}_{secret}");
        let token = AccessToken {
            id,
            profile_id: profile.into(),
            scope,
            secret_hash: sha256_hex(&secret),
            name: name.into(),
            created: Utc::now(),
            expires,
        };
        (token, IssuedToken(text))
    }

    /// The id and secret of a token's text, or `None` when it is not an
    /// issued token's shape (the server's configured token, say).
    pub fn parse(text: &str) -> Option<(TokenId, &str)> {
        let rest = text.strip_prefix(TOKEN_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        (ok(id) && ok(secret)).then(|| (TokenId::new(id), secret))
    }

    /// Whether `secret` is this token's secret, comparing hashes in time
    /// independent of where they differ.
    pub fn matches(&self, secret: &str) -> bool {
        let presented = sha256_hex(secret);
        let (a, b) = (presented.as_bytes(), self.secret_hash.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// What a token list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenFilter {
    /// Every token.
    #[default]
    All,
    /// The tokens that act as one profile.
    Profile(ProfileId),
}

/// How a token list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenOrder {
    /// By id.
    #[default]
    Id,
}

impl Record for AccessToken {
    type Id = TokenId;
    type Filter = TokenFilter;
    type Order = TokenOrder;
    const KIND: Kind = Kind::Token;
    const INDEXES: &'static [IndexDef] = &[IndexDef::new(
        "profile",
        &[field("profile_id", FieldType::Str)],
    )];

    fn id(&self) -> TokenId {
        self.id.clone()
    }

    fn set_id(&mut self, id: TokenId) {
        self.id = id;
    }

    /// Tokens are issued with their id ([`AccessToken::issue`]).
    fn new_id(&self) -> Option<TokenId> {
        None
    }

    fn write_times_mut(&mut self) -> Vec<&mut DateTime<Utc>> {
        vec![&mut self.created]
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.id.check("id")?;
        if !self.id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FieldError::new("id", "must be letters and digits only"));
        }
        self.profile_id.check("profile_id")?;
        if self.secret_hash.len() != 64
            || !self
                .secret_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(FieldError::new(
                "secret_hash",
                "must be a SHA-256 in lowercase hex (64 characters); issue tokens with AccessToken::issue",
            ));
        }
        check_len("name", &self.name, MAX_TEXT_LEN)?;
        Ok(())
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "profile" => Some(vec![IndexValue::str(self.profile_id.as_str())]),
            _ => None,
        }
    }

    fn plan(filter: &TokenFilter, order: TokenOrder) -> Result<Plan, FieldError> {
        Ok(match (filter, order) {
            (TokenFilter::All, TokenOrder::Id) => Plan::primary(),
            (TokenFilter::Profile(p), TokenOrder::Id) => {
                p.check("profile_id")?;
                Plan::index("profile", vec![IndexValue::str(p.as_str())])
            }
        })
    }

    /// A token's feed entries name its profile.
    fn parent(&self) -> Option<String> {
        Some(self.profile_id.key())
    }

    /// A token acts as a profile that exists.
    fn references(&self) -> Vec<Reference> {
        vec![Reference {
            field: "profile_id",
            kind: Kind::Profile,
            key: self.profile_id.key(),
        }]
    }

    /// A token acts as one profile, with one secret, for good.
    fn fixed_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("profile_id", self.profile_id.to_string()),
            ("secret_hash", self.secret_hash.clone()),
        ]
    }
}

impl crate::record::Editable for AccessToken {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_matches_its_record_and_nothing_else() {
        let (token, text) = AccessToken::issue("alice", TokenScope::Write, "laptop", None);
        token.validate().unwrap();
        let (id, secret) = AccessToken::parse(text.expose()).unwrap();
        assert_eq!(id, token.id);
        assert!(token.matches(secret));
        assert!(!token.matches(&secret[1..]));
        assert!(!token.matches(""));
        let (other, _) = AccessToken::issue("alice", TokenScope::Write, "", None);
        assert!(!other.matches(secret));
        assert!(!token.secret_hash.contains(secret));
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_its_hash() {
        let (token, text) = AccessToken::issue("alice", TokenScope::Read, "", None);
        let shown = format!("{token:?} {text:?}");
        assert!(!shown.contains(&token.secret_hash), "{shown}");
        assert!(!shown.contains(text.expose()), "{shown}");
    }

    #[test]
    fn parse_refuses_other_shapes() {
        for text in [
            "",
            "dst_",
            "dst_abc",
            "dst__x",
            "dst_a_",
            "xyz_a_b",
            "dst_a-b_c",
        ] {
            assert!(AccessToken::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn scopes_order_and_parse() {
        assert!(TokenScope::Read < TokenScope::Write && TokenScope::Write < TokenScope::Admin);
        assert_eq!("admin".parse::<TokenScope>(), Ok(TokenScope::Admin));
        assert!(
            "root"
                .parse::<TokenScope>()
                .unwrap_err()
                .contains("read, write or admin")
        );
    }
}
