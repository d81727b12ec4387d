//! The access token substore: stored hashed, listed by profile, bound to
//! one profile and one secret for good.

use std::sync::Arc;

use datastore_core::{
    AccessToken, Batch, Datastore, Kind, Precondition, Query, StoreName, TokenFilter, TokenScope,
};

use crate::support::*;

/// An issued token reads back equal, matches its secret after the round
/// trip, and the store holds no field with the secret in it.
pub async fn issued_token_round_trips_hashed(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1"]).await;
    let (token, text) = AccessToken::issue("p1", TokenScope::Write, "laptop", None);
    let put = ds
        .tokens()
        .put(token.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let (id, secret) = AccessToken::parse(text.expose()).unwrap();
    assert_eq!(put.value.id, id);
    let got = ds.tokens().get(&id).await.unwrap();
    assert_eq!(got.value.profile_id.as_str(), "p1");
    assert_eq!(got.value.scope, TokenScope::Write);
    assert!(got.value.matches(secret));
    let stored = serde_json::to_string(&got.value).unwrap();
    assert!(!stored.contains(secret), "{stored}");
}

/// Tokens are listed by the profile they act as, and only its own.
pub async fn list_by_profile(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let mut mine = Vec::new();
    for (who, n) in [("p1", 3), ("p2", 2)] {
        for _ in 0..n {
            let (t, _) = AccessToken::issue(who, TokenScope::Read, "", None);
            if who == "p1" {
                mine.push(t.id.clone());
            }
            ds.tokens()
                .put(t, Precondition::MustNotExist)
                .await
                .unwrap();
        }
    }
    mine.sort();
    let listed: Vec<_> = walk(
        ds.tokens(),
        Query::new(TokenFilter::Profile("p1".into())).limit(2),
    )
    .await
    .into_iter()
    .map(|t| t.value.id)
    .collect();
    assert_eq!(listed, mine);
    assert_eq!(
        walk(ds.tokens(), Query::new(TokenFilter::All)).await.len(),
        5
    );
}

/// A token acts as one profile that exists, with one secret: moving it or
/// changing its hash is refused, and a token for no profile is invalid.
pub async fn profile_and_secret_are_fixed(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let (t, _) = AccessToken::issue("p1", TokenScope::Read, "", None);
    ds.tokens()
        .put(t.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let before = snapshot(&ds).await;
    let mut moved = t.clone();
    moved.profile_id = "p2".into();
    assert_invalid(
        ds.tokens().put(moved, Precondition::Any).await,
        "profile_id",
    );
    let mut rehashed = t.clone();
    rehashed.secret_hash = "0".repeat(64);
    assert_invalid(
        ds.apply(Batch::new().put(rehashed, Precondition::Any))
            .await,
        "secret_hash",
    );
    let (orphan, _) = AccessToken::issue("nobody", TokenScope::Admin, "", None);
    assert_invalid(
        ds.tokens().put(orphan, Precondition::Any).await,
        "profile_id",
    );
    let mut bad = t.clone();
    bad.id = "fresh".into();
    bad.secret_hash = "not-a-hash".into();
    assert_invalid(ds.tokens().put(bad, Precondition::Any).await, "secret_hash");
    assert_unchanged(&ds, &before).await;
    // The scope and the note may change.
    let mut raised = t;
    raised.scope = TokenScope::Write;
    raised.name = "ci".into();
    ds.tokens()
        .put(raised, Precondition::MustExist)
        .await
        .unwrap();
}

/// A revoked (deleted) token is gone.
pub async fn revoked_token_is_not_found(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1"]).await;
    let (t, _) = AccessToken::issue("p1", TokenScope::Read, "", None);
    let id = t.id.clone();
    ds.tokens()
        .put(t, Precondition::MustNotExist)
        .await
        .unwrap();
    ds.tokens()
        .delete(&id, Precondition::MustExist)
        .await
        .unwrap();
    assert_not_found(
        ds.tokens().get(&id).await,
        StoreName::Kind(Kind::Token),
        id.as_str(),
    );
}
