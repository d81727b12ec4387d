//! Memoized selectors recompute only when their slice changed; subscribers
//! hear only of changes to what they selected.

use std::sync::{Arc, Mutex};

use datastore_core::{InitId, RunId};
use state_tree::{Action, Memo, Selection, State, Subscription, reduce};

#[test]
fn a_memo_runs_once_per_slice_pointer() {
    let mut memo: Memo<Selection<RunId>, Option<String>> =
        Memo::new(|s| s.id.as_ref().map(|r| r.to_string()));
    let s = State::default();
    assert_eq!(memo.get(&s.run_log), None);
    let (next, _) = reduce(&s, &Action::SelectDataset(InitId::new("i")));
    assert_eq!(memo.get(&next.run_log), None);
    assert_eq!(memo.computed(), 1, "the run log slice kept its pointer");
    let (next, _) = reduce(&next, &Action::SelectRun(RunId::new("r1")));
    assert_eq!(memo.get(&next.run_log), Some("r1".to_string()));
    assert_eq!(memo.computed(), 2);
}

#[test]
fn subscribers_hear_only_of_their_own_changes() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let mut sub = Subscription::new(
        |s: &State| s.run_log.id.clone(),
        move |v: &Option<RunId>| log.lock().unwrap().push(v.clone()),
    );
    let s = State::default();
    assert!(sub.offer(&s), "the first value is delivered");
    let (s, _) = reduce(&s, &Action::SelectDataset(InitId::new("i")));
    assert!(!sub.offer(&s), "a change elsewhere is not delivered");
    let (s, _) = reduce(&s, &Action::SelectRun(RunId::new("r1")));
    assert!(sub.offer(&s));
    assert!(!sub.offer(&s));
    assert_eq!(*heard.lock().unwrap(), [None, Some(RunId::new("r1"))]);
}
