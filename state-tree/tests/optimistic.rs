//! For any sequence of optimistic mutations and any order of confirm and
//! reject, the view is the pending queue folded over the confirmed state,
//! and with nothing pending it equals the store.

use std::collections::BTreeMap;

use proptest::prelude::*;
use state_tree::{Mutation, Optimistic, PendingId};

type Doc = BTreeMap<u8, i64>;

/// Mutations that do not commute, so order matters.
#[derive(Debug, Clone)]
enum Edit {
    Set(u8, i64),
    Add(u8, i64),
    Double(u8),
}

impl Mutation<Doc> for Edit {
    fn apply(&self, doc: &Doc) -> Doc {
        let mut d = doc.clone();
        match *self {
            Edit::Set(k, v) => {
                d.insert(k, v);
            }
            Edit::Add(k, v) => *d.entry(k).or_default() += v,
            Edit::Double(k) => *d.entry(k).or_default() *= 2,
        }
        d
    }
}

#[derive(Debug, Clone)]
enum Step {
    Propose(Edit),
    /// Answer the n-th pending mutation (modulo the queue): accept or reject.
    Answer(usize, bool),
    /// Another writer changes the store.
    Foreign(Edit),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0u8..4, -50i64..50).prop_map(|(k, v)| Edit::Set(k, v)),
        (0u8..4, -50i64..50).prop_map(|(k, v)| Edit::Add(k, v)),
        (0u8..4).prop_map(Edit::Double),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => edit().prop_map(Step::Propose),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(n, ok)| Step::Answer(n, ok)),
        1 => edit().prop_map(Step::Foreign),
    ]
}

proptest! {
    #[test]
    fn the_view_is_the_queue_folded_over_the_confirmed_state(steps in prop::collection::vec(step(), 0..60)) {
        // The store applies accepted mutations in the order it accepts them.
        let mut store = Doc::new();
        let mut client: Optimistic<Doc, Edit> = Optimistic::new(store.clone());
        let mut pending: Vec<(PendingId, Edit)> = Vec::new();
        for s in steps {
            match s {
                Step::Propose(e) => pending.push((client.propose(e.clone()), e)),
                Step::Answer(n, accept) if !pending.is_empty() => {
                    let (id, e) = pending.remove(n % pending.len());
                    if accept {
                        store = e.apply(&store);
                        prop_assert!(client.confirm(id, Some(store.clone())));
                    } else {
                        prop_assert!(client.reject(id));
                    }
                    prop_assert!(!client.reject(id), "an answered mutation is no longer pending");
                }
                Step::Answer(..) => {}
                Step::Foreign(e) => {
                    store = e.apply(&store);
                    client.reset_confirmed(store.clone());
                }
            }
            let folded = pending.iter().fold(client.confirmed().clone(), |d, (_, e)| e.apply(&d));
            prop_assert_eq!(client.view(), &folded);
            prop_assert_eq!(client.pending_count(), pending.len());
            prop_assert_eq!(client.confirmed(), &store);
        }
        // Answer everything left: with nothing pending the view is the store.
        while let Some((id, e)) = pending.pop() {
            store = e.apply(&store);
            client.confirm(id, Some(store.clone()));
        }
        prop_assert_eq!(client.view(), &store);
    }
}

#[test]
fn confirming_without_the_stores_copy_applies_the_mutation() {
    let mut c: Optimistic<Doc, Edit> = Optimistic::new(Doc::new());
    let a = c.propose(Edit::Set(1, 5));
    let b = c.propose(Edit::Double(1));
    assert_eq!(c.view().get(&1), Some(&10));
    assert!(c.reject(a));
    assert_eq!(
        c.view().get(&1),
        Some(&0),
        "rebased: the double now applies to nothing"
    );
    assert!(c.confirm(b, None));
    assert_eq!(c.pending_count(), 0);
    assert_eq!(c.view(), c.confirmed());
}
