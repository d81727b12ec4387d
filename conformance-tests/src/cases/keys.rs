//! The key substore.

use std::sync::Arc;

use datastore_core::{
    Datastore, Key, KeyId, Kind, PageRequest, Precondition, PrivateKey, StoreName,
};

use crate::support::*;

fn key_with_secret(profile: &str, secret: &str) -> Key {
    let mut k = Key::new(profile, format!("PUBLIC-{profile}"));
    k.private_key = Some(PrivateKey::new(secret));
    k
}

/// A key with private material reads back equal.
pub async fn put_then_get_with_private_key(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let k = key_with_secret("p1", "PRIVATE-MATERIAL-1");
    let put = ds
        .keys()
        .put(k.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let got = ds.keys().get(&put.value.id).await.unwrap();
    assert_eq!(
        got.value.private_key.as_ref().unwrap().expose(),
        "PRIVATE-MATERIAL-1"
    );
    assert_eq!(got.value.public_key, k.public_key);
    assert_eq!(got.value.profile_id, k.profile_id);
}

/// Keys are listed by profile, in id order, and only that profile's.
pub async fn list_by_profile(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let mut expected = Vec::new();
    for public in ["pub3", "pub1", "pub2"] {
        let k = Key::new("p1", public);
        expected.push(KeyId::for_public_key(public));
        ds.keys().put(k, Precondition::MustNotExist).await.unwrap();
    }
    expected.sort();
    ds.keys()
        .put(Key::new("p2", "pub4"), Precondition::MustNotExist)
        .await
        .unwrap();
    let page = ds
        .keys()
        .list_by_profile(&"p1".into(), PageRequest::default())
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|k| k.value.id.clone()).collect();
    assert_eq!(ids, expected);
    assert!(page.next.is_none());
}

/// A key's id is derived from its public key: an empty id is filled in,
/// and an id that does not match the public key is Invalid naming `id`.
pub async fn id_must_match_public_key(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let put = ds
        .keys()
        .put(Key::new("p1", "ed25519:abc"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(put.value.id, KeyId::for_public_key("ed25519:abc"));
    let before = snapshot(&ds).await;
    let mut wrong = Key::new("p1", "ed25519:def");
    wrong.id = KeyId::new("chosen-by-hand");
    assert_invalid(ds.keys().put(wrong, Precondition::Any).await, "id");
    // Swapping the public key under an existing id is refused too.
    let mut swapped = put.value.clone();
    swapped.public_key = "ed25519:def".into();
    assert_invalid(ds.keys().put(swapped, put.expect()).await, "id");
    assert_unchanged(&ds, &before).await;
}

/// A key cannot move to another profile: Invalid naming `profile_id`, in a
/// put and in a batch alike.
pub async fn profile_is_fixed(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let put = ds
        .keys()
        .put(Key::new("p1", "ed25519:abc"), Precondition::MustNotExist)
        .await
        .unwrap();
    let before = snapshot(&ds).await;
    let mut moved = put.value.clone();
    moved.profile_id = "p2".into();
    assert_invalid(
        ds.keys().put(moved.clone(), Precondition::Any).await,
        "profile_id",
    );
    assert_invalid(
        ds.apply(datastore_core::Batch::new().put(moved, Precondition::Any))
            .await,
        "profile_id",
    );
    // Within one batch: a key created, then put again under another profile.
    let fresh = Key::new("p1", "ed25519:new");
    let mut elsewhere = fresh.clone();
    elsewhere.profile_id = "p2".into();
    assert_invalid(
        ds.apply(
            datastore_core::Batch::new()
                .put(fresh, Precondition::MustNotExist)
                .put(elsewhere, Precondition::Any),
        )
        .await,
        "profile_id",
    );
    assert_unchanged(&ds, &before).await;
}

/// A key without a profile is Invalid and writes nothing.
pub async fn empty_profile_id_is_invalid(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.keys().put(Key::new("", "pub"), Precondition::Any).await,
        "profile_id",
    );
    assert_invalid(
        ds.keys().put(Key::new("p1", ""), Precondition::Any).await,
        "public_key",
    );
    assert_unchanged(&ds, &before).await;
}

/// Private material appears in no Debug output and no error message.
pub async fn private_key_never_in_debug_or_errors(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let secret = "TOP-SECRET-KEY-MATERIAL";
    let put = ds
        .keys()
        .put(key_with_secret("p1", secret), Precondition::Any)
        .await
        .unwrap();
    let got = ds.keys().get(&put.value.id).await.unwrap();
    assert!(!format!("{got:?}").contains(secret));
    let mut bad = key_with_secret("p1", secret);
    bad.public_key.clear();
    let err = ds.keys().put(bad, Precondition::Any).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret));
    let err = ds
        .keys()
        .put(got.value.clone(), Precondition::MustNotExist)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret));
}

/// A put at an old revision is Conflict naming the revision found.
pub async fn stale_put_is_conflict(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let v1 = ds
        .keys()
        .put(Key::new("p1", "a"), Precondition::Any)
        .await
        .unwrap();
    let mut edit = v1.value.clone();
    edit.private_key = Some(PrivateKey::new("now with a private key"));
    let v2 = ds.keys().put(edit.clone(), v1.expect()).await.unwrap();
    assert_conflict(ds.keys().put(edit, v1.expect()).await, Some(v2.revision));
}

/// A delete at an old revision is Conflict naming the revision found.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let v1 = ds
        .keys()
        .put(Key::new("p1", "a"), Precondition::Any)
        .await
        .unwrap();
    let v2 = ds.keys().put(v1.value.clone(), v1.expect()).await.unwrap();
    assert_conflict(
        ds.keys().delete(&v1.value.id, v1.expect()).await,
        Some(v2.revision),
    );
    assert!(ds.keys().get(&v1.value.id).await.is_ok());
}

/// A deleted key is gone from gets and lists.
pub async fn delete_then_missing(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let v = ds
        .keys()
        .put(Key::new("p1", "a"), Precondition::Any)
        .await
        .unwrap();
    ds.keys().delete(&v.value.id, v.expect()).await.unwrap();
    assert_not_found(
        ds.keys().get(&v.value.id).await,
        StoreName::Kind(Kind::Key),
        v.value.id.as_str(),
    );
    let page = ds
        .keys()
        .list_by_profile(&"p1".into(), PageRequest::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

/// An empty profile id in `list_by_profile` is Invalid.
pub async fn empty_profile_id_in_list_is_invalid(ds: Arc<dyn Datastore>) {
    assert_invalid(
        ds.keys()
            .list_by_profile(&"".into(), PageRequest::default())
            .await,
        "profile_id",
    );
}

/// A key for a profile that does not exist is Invalid naming `profile_id`
/// (as a run for a missing workflow is), and writes nothing.
pub async fn key_for_missing_profile_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.keys()
            .put(Key::new("nobody", "ed25519:abc"), Precondition::Any)
            .await,
        "profile_id",
    );
    assert_invalid(
        ds.apply(datastore_core::Batch::new().put(Key::new("nobody", "x"), Precondition::Any))
            .await,
        "profile_id",
    );
    assert_unchanged(&ds, &before).await;
    // A profile created earlier in the same batch counts.
    let mut owner = datastore_core::Profile::new("owner");
    owner.id = "fresh".into();
    ds.apply(
        datastore_core::Batch::new()
            .put(owner, Precondition::MustNotExist)
            .put(Key::new("fresh", "y"), Precondition::MustNotExist),
    )
    .await
    .unwrap();
}
