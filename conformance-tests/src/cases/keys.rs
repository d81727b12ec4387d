//! The key substore.

use std::sync::Arc;

use datastore_core::{Datastore, Key, KeyId, PageRequest, Precondition, PrivateKey, StoreName};

use crate::support::*;

fn key_with_secret(profile: &str, secret: &str) -> Key {
    let mut k = Key::new(profile, format!("PUBLIC-{profile}"));
    k.private_key = Some(PrivateKey::new(secret));
    k
}

/// A key with private material reads back equal.
pub async fn put_then_get_with_private_key(ds: Arc<dyn Datastore>) {
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
    for id in ["k3", "k1", "k2"] {
        let mut k = Key::new("p1", "pub");
        k.id = KeyId::new(id);
        ds.keys().put(k, Precondition::MustNotExist).await.unwrap();
    }
    ds.keys()
        .put(Key::new("p2", "pub"), Precondition::MustNotExist)
        .await
        .unwrap();
    let page = ds
        .keys()
        .list_by_profile(&"p1".into(), PageRequest::default())
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|k| k.value.id.as_str()).collect();
    assert_eq!(ids, ["k1", "k2", "k3"]);
    assert!(page.next.is_none());
}

/// A key without a profile is Invalid and writes nothing.
pub async fn empty_profile_id_is_invalid(ds: Arc<dyn Datastore>) {
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
    let v1 = ds
        .keys()
        .put(Key::new("p1", "a"), Precondition::Any)
        .await
        .unwrap();
    let mut edit = v1.value.clone();
    edit.public_key = "b".into();
    let v2 = ds.keys().put(edit.clone(), v1.expect()).await.unwrap();
    assert_conflict(ds.keys().put(edit, v1.expect()).await, Some(v2.revision));
}

/// A delete at an old revision is Conflict naming the revision found.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
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
    let v = ds
        .keys()
        .put(Key::new("p1", "a"), Precondition::Any)
        .await
        .unwrap();
    ds.keys().delete(&v.value.id, v.expect()).await.unwrap();
    assert_not_found(
        ds.keys().get(&v.value.id).await,
        StoreName::Keys,
        v.value.id.as_str(),
    );
    let page = ds
        .keys()
        .list_by_profile(&"p1".into(), PageRequest::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
}
