//! The change feed: every committed write, in commit order.
//!
//! Each put or delete appends one [`Change`] in the same atomic write as the
//! data. Readers page through it with [`ChangeFeed::since`], or
//! [`ChangeFeed::subscribe`] to replay from a cursor and then follow live.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, StoreName};
use crate::record::Kind;
use crate::revision::Revision;

/// The most changes one [`ChangeFeed::since`] call returns.
pub const MAX_FEED_LIMIT: u32 = 10_000;

/// A position in the feed: the sequence number of the last change seen.
/// `FeedCursor::START` (0) is before the first change.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FeedCursor(pub u64);

impl FeedCursor {
    /// Before the first change.
    pub const START: FeedCursor = FeedCursor(0);
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for FeedCursor {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        s.parse().map(FeedCursor)
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// The record was created or replaced.
    Put,
    /// The record was deleted.
    Delete,
}

/// One committed write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its position in the feed; strictly increasing in commit order.
    pub seq: u64,
    /// The kind written (`"kind"` in JSON; `"store"`, its name before, is
    /// read too, so feeds written by earlier versions decode).
    #[serde(alias = "store")]
    pub kind: Kind,
    /// The key written.
    pub id: String,
    /// Put or delete.
    pub op: ChangeOp,
    /// The record's revision after the write (the delete's own revision for a delete).
    pub revision: Revision,
    /// When it was committed (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub at: DateTime<Utc>,
    /// The record this one belongs to, for puts of kinds that have one (a
    /// run's workflow, a log entry's log, a collection entry's profile), so
    /// a client following the parent can see new children arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Who made the write, when it named someone (see
    /// `Datastore::with_actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<crate::Actor>,
}

impl Change {
    /// The cursor just after this change.
    pub fn cursor(&self) -> FeedCursor {
        FeedCursor(self.seq)
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The next change.
    Change(Change),
    /// The subscriber fell behind the live buffer; the stream ends here.
    /// Subscribe again from `resume_from` to continue without a gap.
    Lagged {
        /// The cursor of the last change delivered.
        resume_from: FeedCursor,
    },
}

/// A subscription: changes after the cursor, then live ones; ends after a
/// [`FeedEvent::Lagged`], an error, or when the store closes.
pub type ChangeStream = BoxStream<'static, Result<FeedEvent>>;

/// How much of the feed is kept. Changes outside the window are removed by
/// compaction; a cursor before the window gets `CursorExpired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Retention {
    /// Keep at most this many of the newest changes.
    pub max_changes: Option<u64>,
    /// Keep changes at most this old.
    #[serde(with = "opt_secs")]
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Keep everything.
    pub const FOREVER: Retention = Retention {
        max_changes: None,
        max_age: None,
    };

    /// Keep the newest `n` changes.
    pub fn keep_last(n: u64) -> Self {
        Retention {
            max_changes: Some(n),
            max_age: None,
        }
    }

    /// Keep changes younger than `age`.
    pub fn max_age(age: Duration) -> Self {
        Retention {
            max_changes: None,
            max_age: Some(age),
        }
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Compaction {
    /// Changes removed by this compaction.
    pub removed: u64,
    /// The highest sequence number no longer retained (0 when none ever was removed).
    pub compacted_through: u64,
}

/// Reads and follows the change feed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Up to `limit` changes after `cursor`, in commit order. A cursor before
    /// the retained window gives `CursorExpired`.
    async fn since(&self, cursor: FeedCursor, limit: u32) -> Result<Vec<Change>> {
        self.since_matching(cursor, limit, &FeedFilter::default())
            .await
    }

    /// Up to `limit` changes after `cursor` that match `filter`, in commit
    /// order (the SQL backends filter in the query). An invalid filter is
    /// `Invalid`; a cursor before the retained window `CursorExpired`.
    async fn since_matching(
        &self,
        cursor: FeedCursor,
        limit: u32,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>>;

    /// The cursor of the newest change (`FeedCursor::START` when there is none).
    async fn head(&self) -> Result<FeedCursor>;

    /// Every change after `from`, exactly once and in commit order, then live
    /// changes as they commit. See [`FeedEvent::Lagged`] for slow readers.
    fn subscribe(&self, from: FeedCursor) -> ChangeStream {
        self.subscribe_matching(from, FeedFilter::default())
    }

    /// Like [`ChangeFeed::subscribe`], for the changes that match `filter`
    /// only: they are matched before they are queued for this subscriber, so
    /// its buffer and [`FeedEvent::Lagged`] count only those. An invalid
    /// filter ends the stream with `Invalid`.
    fn subscribe_matching(&self, from: FeedCursor, filter: FeedFilter) -> ChangeStream;

    /// Removes the changes outside `retention`; the backend also applies its
    /// configured retention on its own.
    async fn compact(&self, retention: Retention) -> Result<Compaction>;

    /// The retention this store was configured with.
    fn retention(&self) -> Retention;
}

/// Which changes a reader wants: any combination of record kinds, record
/// ids and parents (the [`Change::parent`] a change names: a run's
/// workflow, a log entry's log, a collection entry's profile).
///
/// A change matches when its kind is one of `kinds` (or `kinds` is empty)
/// **and**, when `ids` or `parents` name anything, its id is one of `ids`
/// or its parent one of `parents`. The default filter matches every change.
///
/// A filtered reader's cursor is a position in the one feed (the last
/// change it received), so resuming with another filter from it never
/// loses or repeats a change that matches both.
///
/// ```
/// use datastore_core::{FeedFilter, Kind};
/// // The workflow `w1` and its runs.
/// let filter = FeedFilter::default()
///     .kind(Kind::Workflow)
///     .kind(Kind::Run)
///     .id("w1")
///     .parent("w1");
/// assert!(!filter.is_all());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeedFilter {
    /// The kinds wanted; empty for every kind.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub kinds: BTreeSet<Kind>,
    /// Record ids wanted (with `parents`: either matches).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ids: BTreeSet<String>,
    /// Parents whose children are wanted (with `ids`: either matches).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub parents: BTreeSet<String>,
}

impl FeedFilter {
    /// The most ids and parents one filter names together, so a filter
    /// stays one indexed query on SQL backends.
    pub const MAX_TERMS: usize = 1_000;

    /// Every change (the same as `FeedFilter::default()`).
    pub fn all() -> Self {
        FeedFilter::default()
    }

    /// Also wants changes of `kind`.
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kinds.insert(kind);
        self
    }

    /// Also wants changes of the kind named `name` (its store name, `runs`,
    /// or its wire name, `run`); `Invalid` naming it when no kind has that name.
    pub fn kind_named(self, name: &str) -> Result<Self> {
        match Kind::from_name(name) {
            Some(kind) => Ok(self.kind(kind)),
            None => Err(Error::invalid(
                StoreName::Changes,
                name,
                "kind",
                format!(
                    "{name:?} is not a kind; expected one of {}",
                    Kind::ALL.map(Kind::as_str).join(", ")
                ),
            )),
        }
    }

    /// Also wants changes to the record `id`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.ids.insert(id.into());
        self
    }

    /// Also wants changes to the children of `parent`.
    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parents.insert(parent.into());
        self
    }

    /// True when it matches every change.
    pub fn is_all(&self) -> bool {
        self.kinds.is_empty() && self.ids.is_empty() && self.parents.is_empty()
    }

    /// True when `change` is one this filter wants.
    pub fn matches(&self, change: &Change) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&change.kind) {
            return false;
        }
        if self.ids.is_empty() && self.parents.is_empty() {
            return true;
        }
        self.ids.contains(&change.id)
            || change
                .parent
                .as_ref()
                .is_some_and(|p| self.parents.contains(p))
    }

    /// Checks the filter is one a store serves: `Invalid` naming the field
    /// for an empty id or parent, or more than [`FeedFilter::MAX_TERMS`].
    pub fn validate(&self) -> Result<()> {
        let terms = self.ids.len() + self.parents.len();
        if terms > Self::MAX_TERMS {
            return Err(Error::invalid(
                StoreName::Changes,
                "",
                "filter",
                format!(
                    "names {terms} ids and parents; at most {} are allowed",
                    Self::MAX_TERMS
                ),
            ));
        }
        for (field, set) in [("id", &self.ids), ("parent", &self.parents)] {
            if set.iter().any(|v| v.is_empty()) {
                return Err(Error::invalid(
                    StoreName::Changes,
                    "",
                    field,
                    "is empty; name a record",
                ));
            }
        }
        Ok(())
    }
}

/// The live half of a change feed, for engines: publishes committed changes
/// to subscribers in the order published (publish them under the lock that
/// orders commits), and ends every subscription when closed.
///
/// Each subscriber has its own queue and [`FeedFilter`]: a change is
/// matched when it is published and queued only for subscribers that want
/// it, so a subscriber's buffer (and its lag) counts only what it asked for.
#[derive(Debug)]
pub struct LiveChanges {
    capacity: usize,
    /// `None` once closed.
    subscribers: std::sync::Mutex<Option<Vec<Arc<Subscriber>>>>,
}

#[derive(Debug)]
struct Subscriber {
    filter: FeedFilter,
    queue: std::sync::Mutex<Queue>,
    ready: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Queue {
    changes: VecDeque<Change>,
    lagged: bool,
    closed: bool,
}

/// Why a [`LiveReceiver`] has no next change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// More matching changes were published than the subscriber buffers;
    /// read the durable feed from the last change received.
    #[error("the subscriber fell behind its buffer")]
    Lagged,
    /// The store closed.
    #[error("the store closed")]
    Closed,
}

/// One subscriber's queue of live changes (see [`LiveChanges::subscribe`]);
/// dropping it unsubscribes.
#[derive(Debug)]
pub struct LiveReceiver {
    subscriber: Arc<Subscriber>,
}

impl LiveReceiver {
    /// The next matching change, waiting for one; after
    /// [`LiveError::Lagged`] or [`LiveError::Closed`] no more come.
    pub async fn recv(&mut self) -> std::result::Result<Change, LiveError> {
        loop {
            {
                let mut queue = self.lock();
                if let Some(change) = queue.changes.pop_front() {
                    return Ok(change);
                }
                if queue.lagged {
                    return Err(LiveError::Lagged);
                }
                if queue.closed {
                    return Err(LiveError::Closed);
                }
            }
            // A publish between the check and here leaves a permit.
            self.subscriber.ready.notified().await;
        }
    }

    /// How many changes wait in this subscriber's buffer.
    pub fn len(&self) -> usize {
        self.lock().changes.len()
    }

    /// True when no change waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.subscriber
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LiveChanges {
    /// Live changes buffering `capacity` matching changes per subscriber.
    pub fn new(capacity: usize) -> Self {
        LiveChanges {
            capacity: capacity.max(1),
            subscribers: std::sync::Mutex::new(Some(Vec::new())),
        }
    }

    /// A receiver of the changes matching `filter` published from now on;
    /// after `close`, one that has already ended.
    pub fn subscribe(&self, filter: FeedFilter) -> LiveReceiver {
        let subscriber = Arc::new(Subscriber {
            filter,
            queue: std::sync::Mutex::new(Queue::default()),
            ready: tokio::sync::Notify::new(),
        });
        match self.subscribers.lock() {
            Ok(mut guard) if guard.is_some() => {
                if let Some(list) = guard.as_mut() {
                    list.push(subscriber.clone());
                    metrics::gauge!("datastore_feed_subscribers").increment(1.0);
                }
            }
            _ => subscriber.queue.lock().expect("new").closed = true,
        }
        LiveReceiver { subscriber }
    }

    /// How many subscribers are open.
    pub fn subscribers(&self) -> usize {
        self.subscribers
            .lock()
            .ok()
            .and_then(|s| {
                s.as_ref()
                    .map(|l| l.iter().filter(|s| Arc::strong_count(s) > 1).count())
            })
            .unwrap_or(0)
    }

    /// Publishes changes to the subscribers that want them; having none is
    /// fine. Subscribers whose receiver was dropped are removed here.
    pub fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        let Ok(mut guard) = self.subscribers.lock() else {
            return;
        };
        let Some(list) = guard.as_mut() else {
            return;
        };
        let before = list.len();
        list.retain(|s| Arc::strong_count(s) > 1);
        if list.len() < before {
            metrics::gauge!("datastore_feed_subscribers").decrement((before - list.len()) as f64);
        }
        let changes: Vec<Change> = changes.into_iter().collect();
        if let Some(last) = changes.last() {
            metrics::gauge!("datastore_feed_head").set(last.seq as f64);
        }
        if list.is_empty() {
            return;
        }
        for subscriber in list.iter() {
            let mut woke = false;
            let mut queue = subscriber
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for change in changes.iter().filter(|c| subscriber.filter.matches(c)) {
                if queue.lagged {
                    break;
                }
                if queue.changes.len() >= self.capacity {
                    // The reader resumes from the durable feed; what is
                    // queued would only be read again.
                    queue.changes.clear();
                    queue.lagged = true;
                    metrics::counter!("datastore_feed_lagged_total").increment(1);
                } else {
                    queue.changes.push_back(change.clone());
                }
                woke = true;
            }
            drop(queue);
            if woke {
                subscriber.ready.notify_one();
            }
        }
    }

    /// Ends every subscription; later publications go nowhere.
    pub fn close(&self) {
        let taken = self.subscribers.lock().ok().and_then(|mut s| s.take());
        let open = taken.as_ref().map_or(0, Vec::len);
        metrics::gauge!("datastore_feed_subscribers").decrement(open as f64);
        for subscriber in taken.into_iter().flatten() {
            subscriber
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .closed = true;
            subscriber.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision::Revision;

    fn change(seq: u64, kind: Kind, id: &str, parent: Option<&str>) -> Change {
        Change {
            seq,
            kind,
            id: id.into(),
            op: ChangeOp::Put,
            revision: Revision::new(seq),
            at: chrono::Utc::now(),
            parent: parent.map(str::to_string),
            actor: None,
        }
    }

    #[test]
    fn a_filter_is_kinds_and_ids_or_parents() {
        let run = change(1, Kind::Run, "r1", Some("w1"));
        let other_run = change(2, Kind::Run, "r2", Some("w2"));
        let workflow = change(3, Kind::Workflow, "w1", None);
        assert!(FeedFilter::all().matches(&run));
        let runs = FeedFilter::all().kind(Kind::Run);
        assert!(runs.matches(&run) && runs.matches(&other_run) && !runs.matches(&workflow));
        let of_w1 = FeedFilter::all().parent("w1");
        assert!(of_w1.matches(&run) && !of_w1.matches(&other_run) && !of_w1.matches(&workflow));
        let w1 = FeedFilter::all()
            .kind(Kind::Workflow)
            .kind(Kind::Run)
            .id("w1")
            .parent("w1");
        assert!(w1.matches(&run) && w1.matches(&workflow) && !w1.matches(&other_run));
        let wrong_kind = FeedFilter::all().kind(Kind::Profile).id("w1");
        assert!(!wrong_kind.matches(&workflow));
    }

    #[test]
    fn unknown_kinds_and_oversized_filters_are_invalid() {
        let err = FeedFilter::all().kind_named("runz").unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "kind"),
            "{err}"
        );
        assert!(err.to_string().contains("runz"), "{err}");
        assert_eq!(
            FeedFilter::all().kind_named("run").unwrap(),
            FeedFilter::all().kind(Kind::Run)
        );
        let mut big = FeedFilter::all();
        for n in 0..=FeedFilter::MAX_TERMS {
            big = big.id(format!("r{n}"));
        }
        assert!(matches!(big.validate(), Err(Error::Invalid { .. })));
        assert!(matches!(
            FeedFilter::all().parent("").validate(),
            Err(Error::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn subscribers_queue_only_what_matches_and_lag_on_their_own() {
        let live = LiveChanges::new(2);
        let mut all = live.subscribe(FeedFilter::all());
        let mut w1 = live.subscribe(FeedFilter::all().parent("w1"));
        for seq in 1..=3 {
            live.publish([change(seq, Kind::Run, &format!("x{seq}"), Some("w2"))]);
        }
        live.publish([change(4, Kind::Run, "r4", Some("w1"))]);
        // Four changes overflow a buffer of two; the filtered one holds one.
        assert_eq!(all.recv().await, Err(LiveError::Lagged));
        assert_eq!(w1.len(), 1);
        assert_eq!(w1.recv().await.unwrap().seq, 4);
        drop(all);
        assert_eq!(live.subscribers(), 1);
        live.close();
        assert_eq!(w1.recv().await, Err(LiveError::Closed));
        let mut late = live.subscribe(FeedFilter::all());
        assert_eq!(late.recv().await, Err(LiveError::Closed));
    }
}
