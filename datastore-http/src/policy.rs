//! Who may read and write which records: the caller ([`Principal`]) and the
//! [`Policy`] that decides, with the default, [`OwnerPolicy`].

use datastore_core::{Kind, ProfileId, TokenId, TokenScope};

/// Who is calling: the profile a token acts as, and its scope. The
/// server's configured token, and every caller of a server without one, is
/// an admin acting as no profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The profile the token acts as (`None` for the configured token).
    pub profile: Option<ProfileId>,
    /// What the token may do.
    pub scope: TokenScope,
    /// The issued token it came with (`None` for the configured token), so
    /// a long event stream can check it is still valid.
    pub token: Option<TokenId>,
}

impl Principal {
    /// The configured token, or anyone on a server without one.
    pub fn admin() -> Principal {
        Principal {
            profile: None,
            scope: TokenScope::Admin,
            token: None,
        }
    }

    /// A token acting as `profile` with `scope`.
    pub fn of(profile: impl Into<ProfileId>, scope: TokenScope) -> Principal {
        Principal {
            profile: Some(profile.into()),
            scope,
            token: None,
        }
    }

    /// Whether the scope is admin.
    pub fn is_admin(&self) -> bool {
        self.scope == TokenScope::Admin
    }
}

/// Reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Get, list, follow on the feed.
    Read,
    /// Put, delete, append, create.
    Write,
}

/// The record a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its key.
    pub key: &'a str,
    /// The profile that owns it, where one does (see docs/http-api.md,
    /// "Access": a workflow's or run's owner, a key's, collection entry's or
    /// token's profile, a profile itself, a log's dataset's workflow's
    /// owner). `None` when nothing owns it (a log of a dataset without a
    /// workflow).
    pub owner: Option<&'a ProfileId>,
}

/// Which records of a kind a caller's lists may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    /// Every record.
    All,
    /// Only those owned by this profile: lists are narrowed to it in the
    /// query (a filter on another owner is an empty page).
    Owner(ProfileId),
    /// None: lists of this kind are refused.
    Nothing,
}

/// Decides, for a caller and a record, whether it may be read or written,
/// and how far a caller's lists reach. The server asks it in one place for
/// every endpoint (get, lists, get-many, batches, logs, the feed); a
/// service plugs in its own (sharing, teams) with
/// [`ServerConfig::policy`](crate::ServerConfig::policy).
///
/// A record a caller may not read is answered as if it did not exist (404),
/// so ids do not leak.
pub trait Policy: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `who` may read or write `target`.
    fn allows(&self, who: &Principal, access: Access, target: Target<'_>) -> bool;

    /// How far `who`'s lists of `kind` reach. Must agree with
    /// [`allows`](Policy::allows) for reading: every record a list returns
    /// is one the caller may read.
    fn list_scope(&self, who: &Principal, kind: Kind) -> ListScope;

    /// Whether `who` may use the operations that span every owner: counts,
    /// the latest runs by status across workflows, patches of every
    /// profile's collection entries for a dataset, compacting or moving
    /// the feed, and records of no owner.
    fn spans_owners(&self, who: &Principal) -> bool {
        who.is_admin()
    }
}

/// The default policy: admin does everything; any other token reads what
/// its profile owns, writes it if its scope is `write`, and sees nothing
/// else. Tokens themselves are written by admin only (so a `write` token
/// cannot mint an `admin` one).
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnerPolicy;

impl Policy for OwnerPolicy {
    fn allows(&self, who: &Principal, access: Access, target: Target<'_>) -> bool {
        if who.is_admin() {
            return true;
        }
        let owns = matches!((&who.profile, target.owner), (Some(me), Some(owner)) if me == owner);
        match access {
            Access::Read => owns,
            Access::Write => owns && who.scope >= TokenScope::Write && target.kind != Kind::Token,
        }
    }

    fn list_scope(&self, who: &Principal, kind: Kind) -> ListScope {
        match (&who.profile, who.is_admin()) {
            (_, true) => ListScope::All,
            (Some(me), false) if kind != Kind::Profile => ListScope::Owner(me.clone()),
            _ => ListScope::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(kind: Kind, owner: Option<&'a ProfileId>) -> Target<'a> {
        Target {
            kind,
            key: "k",
            owner,
        }
    }

    #[test]
    fn owners_read_and_write_their_own_and_nothing_else() {
        let (alice, bob) = (ProfileId::new("alice"), ProfileId::new("bob"));
        let p = OwnerPolicy;
        let writer = Principal::of("alice", TokenScope::Write);
        let reader = Principal::of("alice", TokenScope::Read);
        for kind in [Kind::Workflow, Kind::Run, Kind::Key, Kind::Collection] {
            assert!(p.allows(&writer, Access::Read, target(kind, Some(&alice))));
            assert!(p.allows(&writer, Access::Write, target(kind, Some(&alice))));
            assert!(p.allows(&reader, Access::Read, target(kind, Some(&alice))));
            assert!(!p.allows(&reader, Access::Write, target(kind, Some(&alice))));
            assert!(!p.allows(&writer, Access::Read, target(kind, Some(&bob))));
            assert!(!p.allows(&writer, Access::Write, target(kind, Some(&bob))));
            assert!(!p.allows(&writer, Access::Read, target(kind, None)));
            assert!(p.allows(&Principal::admin(), Access::Write, target(kind, Some(&bob))));
        }
        assert!(p.allows(&writer, Access::Read, target(Kind::Token, Some(&alice))));
        assert!(!p.allows(&writer, Access::Write, target(Kind::Token, Some(&alice))));
        assert_eq!(
            p.list_scope(&writer, Kind::Run),
            ListScope::Owner(alice.clone())
        );
        assert_eq!(p.list_scope(&writer, Kind::Profile), ListScope::Nothing);
        assert_eq!(
            p.list_scope(&Principal::admin(), Kind::Profile),
            ListScope::All
        );
        assert!(!p.spans_owners(&writer) && p.spans_owners(&Principal::admin()));
    }
}
