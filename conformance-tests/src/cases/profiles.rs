//! The profile substore.

use std::sync::Arc;

use datastore_core::{Datastore, Kind, Precondition, Profile, ProfileId, StoreName};

use crate::support::*;

/// A put profile reads back equal, with a generated id and one revision.
pub async fn put_then_get(ds: Arc<dyn Datastore>) {
    let mut p = Profile::new("alice");
    p.email = "alice@example.com".into();
    p.name = "Alice".into();
    p.home_url = "https://alice.example".into();
    let put = ds
        .profiles()
        .put(p.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    assert!(
        !put.value.id.is_empty(),
        "an empty id is replaced by a generated one"
    );
    p.id = put.value.id.clone();
    assert_eq!(put.value, p);
    let got = ds.profiles().get(&p.id).await.unwrap();
    assert_eq!(got.value, p);
    assert_eq!(got.revision, put.revision);
    assert_eq!(got.created, put.created);
}

/// A caller-supplied id is kept.
pub async fn put_keeps_caller_id(ds: Arc<dyn Datastore>) {
    let mut p = Profile::new("bob");
    p.id = ProfileId::new("profile-1");
    ds.profiles().put(p, Precondition::Any).await.unwrap();
    let got = ds
        .profiles()
        .get(&ProfileId::new("profile-1"))
        .await
        .unwrap();
    assert_eq!(got.value.username, "bob");
}

/// Getting a missing id is NotFound naming the store and id.
pub async fn get_missing_is_not_found(ds: Arc<dyn Datastore>) {
    assert_not_found(
        ds.profiles().get(&ProfileId::new("nobody")).await,
        StoreName::Kind(Kind::Profile),
        "nobody",
    );
}

/// Profiles are found by username.
pub async fn get_by_username(ds: Arc<dyn Datastore>) {
    profile(&ds, "alice").await;
    let bob = profile(&ds, "bob").await;
    let got = ds.profiles().get_by_username("bob").await.unwrap();
    assert_eq!(got.value, bob.value);
    assert_eq!(got.revision, bob.revision);
}

/// An unknown username is NotFound.
pub async fn get_by_username_missing_is_not_found(ds: Arc<dyn Datastore>) {
    profile(&ds, "alice").await;
    assert_not_found(
        ds.profiles().get_by_username("carol").await,
        StoreName::Kind(Kind::Profile),
        "carol",
    );
}

/// A second profile with a taken username is AlreadyExists and writes nothing.
pub async fn duplicate_username_already_exists(ds: Arc<dyn Datastore>) {
    profile(&ds, "alice").await;
    let before = snapshot(&ds).await;
    let result = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::Any)
        .await;
    assert_already_exists(result, StoreName::Kind(Kind::Profile), "alice");
    assert_unchanged(&ds, &before).await;
}

/// A username with a space is Invalid naming the field, and writes nothing.
pub async fn username_with_space_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.profiles()
            .put(Profile::new("al ice"), Precondition::Any)
            .await,
        "username",
    );
    assert_invalid(
        ds.profiles().put(Profile::new(""), Precondition::Any).await,
        "username",
    );
    assert_unchanged(&ds, &before).await;
}

/// A malformed email is Invalid and writes nothing.
pub async fn bad_email_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let mut p = Profile::new("alice");
    p.email = "not an email".into();
    assert_invalid(ds.profiles().put(p, Precondition::Any).await, "email");
    assert_unchanged(&ds, &before).await;
}

/// Renaming a profile frees its old username for someone else.
pub async fn rename_frees_username(ds: Arc<dyn Datastore>) {
    let alice = profile(&ds, "alice").await;
    let mut renamed = alice.value.clone();
    renamed.username = "alicia".into();
    ds.profiles().put(renamed, alice.expect()).await.unwrap();
    assert_not_found(
        ds.profiles().get_by_username("alice").await,
        StoreName::Kind(Kind::Profile),
        "alice",
    );
    assert_eq!(
        ds.profiles()
            .get_by_username("alicia")
            .await
            .unwrap()
            .value
            .id,
        alice.value.id
    );
    profile(&ds, "alice").await;
}

/// A put at an old revision is Conflict naming the revision found.
pub async fn stale_put_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = profile(&ds, "alice").await;
    let mut edit = v1.value.clone();
    edit.name = "first".into();
    let v2 = ds.profiles().put(edit.clone(), v1.expect()).await.unwrap();
    edit.name = "second".into();
    assert_conflict(
        ds.profiles().put(edit, v1.expect()).await,
        Some(v2.revision),
    );
    assert_eq!(
        ds.profiles().get(&v1.value.id).await.unwrap().value.name,
        "first"
    );
}

/// A delete at an old revision is Conflict naming the revision found, and keeps the record.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = profile(&ds, "alice").await;
    let v2 = ds
        .profiles()
        .put(v1.value.clone(), v1.expect())
        .await
        .unwrap();
    assert_conflict(
        ds.profiles().delete(&v1.value.id, v1.expect()).await,
        Some(v2.revision),
    );
    assert!(ds.profiles().get(&v1.value.id).await.is_ok());
}

/// A deleted profile is gone, and deleting it again is NotFound.
pub async fn delete_then_get_is_not_found(ds: Arc<dyn Datastore>) {
    let v = profile(&ds, "alice").await;
    let rev = ds.profiles().delete(&v.value.id, v.expect()).await.unwrap();
    assert!(rev > v.revision);
    assert_not_found(
        ds.profiles().get(&v.value.id).await,
        StoreName::Kind(Kind::Profile),
        v.value.id.as_str(),
    );
    assert_not_found(
        ds.profiles().delete(&v.value.id, Precondition::Any).await,
        StoreName::Kind(Kind::Profile),
        v.value.id.as_str(),
    );
    assert_not_found(
        ds.profiles().get_by_username("alice").await,
        StoreName::Kind(Kind::Profile),
        "alice",
    );
}

/// Must-not-exist on an existing id is AlreadyExists naming the id.
pub async fn must_not_exist_on_existing_already_exists(ds: Arc<dyn Datastore>) {
    let v = profile(&ds, "alice").await;
    let before = snapshot(&ds).await;
    let result = ds
        .profiles()
        .put(v.value.clone(), Precondition::MustNotExist)
        .await;
    assert_already_exists(result, StoreName::Kind(Kind::Profile), v.value.id.as_str());
    assert_unchanged(&ds, &before).await;
}

/// Must-exist on a missing id is NotFound and writes nothing.
pub async fn must_exist_on_missing_is_not_found(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let mut p = Profile::new("ghost");
    p.id = ProfileId::new("ghost-id");
    assert_not_found(
        ds.profiles().put(p, Precondition::MustExist).await,
        StoreName::Kind(Kind::Profile),
        "ghost-id",
    );
    assert_unchanged(&ds, &before).await;
}

/// An update advances the revision and keeps the created time.
pub async fn update_advances_revision_keeps_created(ds: Arc<dyn Datastore>) {
    let v1 = profile(&ds, "alice").await;
    let mut edit = v1.value.clone();
    edit.description = "changed".into();
    let v2 = ds
        .profiles()
        .put(edit, Precondition::MustExist)
        .await
        .unwrap();
    assert!(v2.revision > v1.revision);
    assert_eq!(v2.created, v1.created);
    assert!(v2.updated >= v1.updated);
    let got = ds.profiles().get(&v1.value.id).await.unwrap();
    assert_eq!(got.revision, v2.revision);
    assert_eq!(got.created, v1.created);
}

/// get_many answers in the order asked, None for missing ids, an id asked
/// twice in both places.
pub async fn get_many_keeps_order(ds: Arc<dyn Datastore>) {
    let a = profile(&ds, "a").await;
    let b = profile(&ds, "b").await;
    let got = ds
        .profiles()
        .get_many(&[
            b.value.id.clone(),
            ProfileId::new("missing"),
            a.value.id.clone(),
            b.value.id.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].as_ref().unwrap().value, b.value);
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().unwrap().value, a.value);
    // An id asked twice is answered twice.
    assert_eq!(got[3].as_ref().unwrap().value, b.value);
    assert_eq!(got[3].as_ref().unwrap().revision, b.revision);
    assert!(ds.profiles().get_many(&[]).await.unwrap().is_empty());
}

/// Revisions keep growing across a delete and a re-create of the same id.
pub async fn revision_grows_across_delete_and_recreate(ds: Arc<dyn Datastore>) {
    let v1 = profile(&ds, "alice").await;
    let deleted = ds
        .profiles()
        .delete(&v1.value.id, Precondition::Any)
        .await
        .unwrap();
    let v2 = ds
        .profiles()
        .put(v1.value.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    assert!(v1.revision < deleted && deleted < v2.revision);
    assert_conflict(
        ds.profiles().put(v1.value.clone(), v1.expect()).await,
        Some(v2.revision),
    );
}

/// Getting an empty id is Invalid naming the id.
pub async fn empty_id_get_is_invalid(ds: Arc<dyn Datastore>) {
    assert_invalid(ds.profiles().get(&ProfileId::new("")).await, "id");
    assert_invalid(
        ds.profiles()
            .delete(&ProfileId::new(""), Precondition::Any)
            .await,
        "id",
    );
}

/// A rename changes the profile's username and, in the same write, the
/// username every collection entry of its datasets copies (in any
/// profile's collection); entries of other owners stay. The old username is
/// free afterwards.
pub async fn rename_carries_into_collection_entries(ds: Arc<dyn Datastore>) {
    let alice = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    for (holder, init) in [("p1", "i1"), ("p2", "i1"), ("p2", "i2")] {
        let mut e = datastore_core::CollectionEntry::new(holder, init, "alice", init);
        e.path = format!("/{init}");
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    let other = datastore_core::CollectionEntry::new("p1", "i3", "bob", "bobs");
    ds.collections()
        .put(other, Precondition::Any)
        .await
        .unwrap();
    let head = ds.changes().head().await.unwrap();
    let renamed = ds
        .profiles()
        .rename(&alice.value.id, "alicia", alice.expect())
        .await
        .unwrap();
    assert_eq!(renamed.profile.value.username, "alicia");
    assert_eq!(renamed.entries.len(), 3);
    for (holder, init) in [("p1", "i1"), ("p2", "i1"), ("p2", "i2")] {
        let e = ds
            .collections()
            .get(&datastore_core::CollectionKey::new(holder, init))
            .await
            .unwrap();
        assert_eq!(e.value.username, "alicia");
    }
    let bobs = ds
        .collections()
        .get(&datastore_core::CollectionKey::new("p1", "i3"))
        .await
        .unwrap();
    assert_eq!(bobs.value.username, "bob");
    // One atomic write: four consecutive changes.
    let changes = ds.changes().since(head, 100).await.unwrap();
    assert_eq!(changes.len(), 4);
    assert_eq!(changes[3].seq, changes[0].seq + 3);
    assert_eq!(
        ds.profiles()
            .get_by_username("alicia")
            .await
            .unwrap()
            .value
            .id,
        alice.value.id
    );
    profile(&ds, "alice").await;
}

/// A rename at a stale revision, or to a taken or invalid username, writes
/// nothing.
pub async fn rename_checks_precondition_and_username(ds: Arc<dyn Datastore>) {
    let alice = profile(&ds, "alice").await;
    profile(&ds, "bob").await;
    let e = datastore_core::CollectionEntry::new("p1", "i1", "alice", "data");
    ds.collections().put(e, Precondition::Any).await.unwrap();
    let before = snapshot(&ds).await;
    let stale = datastore_core::Revision::new(alice.revision.get() + 1000);
    assert_conflict(
        ds.profiles()
            .rename(&alice.value.id, "alicia", Precondition::MustBeAt(stale))
            .await,
        Some(alice.revision),
    );
    assert_already_exists(
        ds.profiles()
            .rename(&alice.value.id, "bob", Precondition::Any)
            .await,
        StoreName::Kind(Kind::Profile),
        "bob",
    );
    assert_invalid(
        ds.profiles()
            .rename(&alice.value.id, "has space", Precondition::Any)
            .await,
        "username",
    );
    assert_not_found(
        ds.profiles()
            .rename(&ProfileId::new("nobody"), "x", Precondition::Any)
            .await,
        StoreName::Kind(Kind::Profile),
        "nobody",
    );
    assert_unchanged(&ds, &before).await;
}

/// A record put without its own `created` (left out: the Unix epoch) gets
/// the time of the write, and so does a profile's `updated`; one that
/// names them keeps them.
pub async fn created_left_out_is_filled(ds: Arc<dyn Datastore>) {
    let mut p = Profile::new("fresh");
    p.created = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    p.updated = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let put = ds.profiles().put(p, Precondition::Any).await.unwrap();
    let lag = put.created - put.value.created;
    assert!(
        lag >= chrono::Duration::zero() && lag < chrono::Duration::seconds(60),
        "filled with the time of the write: {} against {}",
        put.value.created,
        put.created
    );
    assert_eq!(
        put.value.updated, put.value.created,
        "updated is filled too"
    );
    let got = ds.profiles().get(&put.value.id).await.unwrap();
    assert_eq!(got.value.created, put.value.created);
    assert_eq!(got.value.updated, put.value.updated);
    let mut named = Profile::new("named");
    named.created = ts(42);
    named.updated = ts(43);
    let put = ds.profiles().put(named, Precondition::Any).await.unwrap();
    assert_eq!(put.value.created, ts(42));
    assert_eq!(put.value.updated, ts(43));
}
