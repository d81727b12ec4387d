//! The change feed: every committed write, in commit order.
//!
//! Each put or delete appends one [`Change`] in the same atomic write as the
//! data. Readers page through it with [`ChangeFeed::since`], or
//! [`ChangeFeed::subscribe`] to replay from a cursor and then follow live.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
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
    pub at: DateTime<Utc>,
    /// The record this one belongs to, for puts of kinds that have one (a
    /// run's workflow, a log entry's log, a collection entry's profile), so
    /// a client following the parent can see new children arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
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
    async fn since(&self, cursor: FeedCursor, limit: u32) -> Result<Vec<Change>>;

    /// The cursor of the newest change (`FeedCursor::START` when there is none).
    async fn head(&self) -> Result<FeedCursor>;

    /// Every change after `from`, exactly once and in commit order, then live
    /// changes as they commit. See [`FeedEvent::Lagged`] for slow readers.
    fn subscribe(&self, from: FeedCursor) -> ChangeStream;

    /// Removes the changes outside `retention`; the backend also applies its
    /// configured retention on its own.
    async fn compact(&self, retention: Retention) -> Result<Compaction>;

    /// The retention this store was configured with.
    fn retention(&self) -> Retention;
}

/// The live half of a change feed, for engines: publishes committed changes
/// to subscribers in the order published (publish them under the lock that
/// orders commits), and ends every subscription when closed.
#[derive(Debug)]
pub struct LiveChanges {
    sender: std::sync::Mutex<Option<tokio::sync::broadcast::Sender<Change>>>,
}

impl LiveChanges {
    /// Live changes buffering `capacity` changes per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(capacity.max(1));
        LiveChanges {
            sender: std::sync::Mutex::new(Some(sender)),
        }
    }

    /// A receiver of changes published from now on; after `close`, one that
    /// has already ended.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        match self
            .sender
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.subscribe()))
        {
            Some(rx) => rx,
            None => tokio::sync::broadcast::channel(1).1,
        }
    }

    /// Publishes changes; having no subscriber is fine.
    pub fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        if let Some(sender) = self.sender.lock().ok().and_then(|s| s.clone()) {
            for change in changes {
                let _ = sender.send(change);
            }
        }
    }

    /// Ends every subscription; later publications go nowhere.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            *sender = None;
        }
    }
}
