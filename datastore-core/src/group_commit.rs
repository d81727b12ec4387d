//! Group commit: commits that arrive while the writer is busy making one
//! group durable wait in a queue, and the writer takes all of them as the
//! next group, made durable with one sync (one fsync, one transaction).
//!
//! Engines put a [`CommitQueue`] in front of their writer (a thread or a
//! task) and drain its [`WriteJobs`] one group at a time. Each commit of a
//! group keeps its own preconditions and its own result: the writer applies
//! the commits in queue order, each seeing the ones before it, and a commit
//! that fails is rolled back alone (a savepoint, or writes kept aside until
//! it succeeds) while the others land. Only after the group is durable does
//! the writer publish its changes, in order, and answer each commit, so a
//! commit never returns `Ok` before it is durable, and sequence order is
//! commit order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::engine::{Committed, Mutation};
use crate::error::{Error, Result, StoreName};
use crate::feed::{Compaction, Retention};

/// How many jobs may wait for the writer before a committer waits to queue.
const QUEUE_CAPACITY: usize = 4096;

/// One commit waiting in a group: its mutations and where its result goes.
#[derive(Debug)]
pub struct PendingCommit {
    /// The commit's mutations, in order.
    pub mutations: Vec<Mutation>,
    reply: oneshot::Sender<Result<Vec<Committed>>>,
}

impl PendingCommit {
    /// A commit and the receiver of its result, for an engine that applies
    /// commits itself instead of queueing them.
    pub fn new(mutations: Vec<Mutation>) -> (Self, oneshot::Receiver<Result<Vec<Committed>>>) {
        let (reply, answer) = oneshot::channel();
        (PendingCommit { mutations, reply }, answer)
    }

    /// Hands the commit its result. A committer that stopped waiting is
    /// fine: its commit happened (or not) all the same.
    pub fn finish(self, result: Result<Vec<Committed>>) {
        let _ = self.reply.send(result);
    }
}

/// Work for an engine's writer.
#[derive(Debug)]
pub enum WriteJob {
    /// Commits to make durable together, in this order (never empty).
    Group(Vec<PendingCommit>),
    /// Remove feed entries outside a retention window.
    Compact {
        /// The window to keep.
        retention: Retention,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Compaction>>,
    },
    /// Remove one kind's record versions outside a history retention (see
    /// `Engine::compact_history`).
    CompactHistory {
        /// The kind.
        kind: crate::Kind,
        /// What to keep.
        retention: crate::HistoryRetention,
        /// Where the number removed goes.
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Continue the feed after a position (see `Engine::start_feed_after`).
    StartFeedAfter {
        /// The position the feed continues after.
        position: u64,
        /// Where the new head goes.
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Answer once every job queued before this one is done.
    Flush {
        /// Answered with `()` when the writer reaches it.
        reply: oneshot::Sender<()>,
    },
}

enum Queued {
    Commit(PendingCommit),
    Other(WriteJob),
}

/// The committers' side of the queue: cheap to share, one per engine.
#[derive(Debug, Clone)]
pub struct CommitQueue {
    sender: mpsc::Sender<Queued>,
    name: String,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    groups: AtomicU64,
    commits: AtomicU64,
    largest: AtomicU64,
}

/// How commits were grouped since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Groups made durable (each one sync).
    pub groups: u64,
    /// Commits in them.
    pub commits: u64,
    /// The most commits one group held.
    pub largest: u64,
}

impl GroupStats {
    /// Commits per group on average (0 before the first group).
    pub fn mean(&self) -> f64 {
        if self.groups == 0 {
            0.0
        } else {
            self.commits as f64 / self.groups as f64
        }
    }
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Queued::Commit(c) => f.debug_tuple("Commit").field(&c.mutations.len()).finish(),
            Queued::Other(job) => job.fmt(f),
        }
    }
}

/// The writer's side of the queue: hands out groups of commits.
#[derive(Debug)]
pub struct WriteJobs {
    receiver: mpsc::Receiver<Queued>,
    /// A job taken while gathering a group, to hand out next.
    held: Option<WriteJob>,
    max_group: usize,
    counts: Arc<Counts>,
}

/// A new queue; the writer takes groups of at most `max_group` commits.
/// `name` (a path or URL, without secrets) names the store in errors.
pub fn commit_queue(name: impl Into<String>, max_group: usize) -> (CommitQueue, WriteJobs) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let counts = Arc::new(Counts::default());
    (
        CommitQueue {
            sender,
            name: name.into(),
            counts: counts.clone(),
        },
        WriteJobs {
            receiver,
            held: None,
            max_group: max_group.max(1),
            counts,
        },
    )
}

impl CommitQueue {
    fn writer_gone(&self) -> Error {
        Error::Unavailable {
            store: StoreName::Datastore,
            key: self.name.clone(),
            source: "the store's writer has stopped (the store is closed)".into(),
        }
    }

    async fn send(&self, job: Queued) -> Result<()> {
        self.sender.send(job).await.map_err(|_| self.writer_gone())
    }

    /// Queues a commit and waits until its group is durable (or failed).
    pub async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        let (reply, answer) = oneshot::channel();
        self.send(Queued::Commit(PendingCommit { mutations, reply }))
            .await?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Queues a compaction and waits for its outcome.
    pub async fn compact(&self, retention: Retention) -> Result<Compaction> {
        let (reply, answer) = oneshot::channel();
        self.send(Queued::Other(WriteJob::Compact { retention, reply }))
            .await?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Queues a history compaction of one kind and waits for how many
    /// versions it removed.
    pub async fn compact_history(
        &self,
        kind: crate::Kind,
        retention: crate::HistoryRetention,
    ) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.send(Queued::Other(WriteJob::CompactHistory {
            kind,
            retention,
            reply,
        }))
        .await?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Queues a move of the feed's start and waits for the new head.
    pub async fn start_feed_after(&self, position: u64) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.send(Queued::Other(WriteJob::StartFeedAfter { position, reply }))
            .await?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// How commits were grouped so far.
    pub fn stats(&self) -> GroupStats {
        GroupStats {
            groups: self.counts.groups.load(Ordering::Relaxed),
            commits: self.counts.commits.load(Ordering::Relaxed),
            largest: self.counts.largest.load(Ordering::Relaxed),
        }
    }

    /// Waits until every job queued before this call is done.
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Queued::Other(WriteJob::Flush { reply })).await?;
        answer.await.map_err(|_| self.writer_gone())
    }
}

impl WriteJobs {
    /// Gathers what is queued behind a first job into one job: the commits
    /// already waiting join its group, up to the group limit; anything else
    /// is held for the next call.
    fn gather(&mut self, first: Queued) -> WriteJob {
        let mut group = match first {
            Queued::Commit(c) => vec![c],
            Queued::Other(job) => return job,
        };
        while group.len() < self.max_group {
            match self.receiver.try_recv() {
                Ok(Queued::Commit(c)) => group.push(c),
                Ok(Queued::Other(job)) => {
                    self.held = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        let n = group.len() as u64;
        self.counts.groups.fetch_add(1, Ordering::Relaxed);
        self.counts.commits.fetch_add(n, Ordering::Relaxed);
        self.counts.largest.fetch_max(n, Ordering::Relaxed);
        metrics::histogram!("datastore_commit_group_size").record(n as f64);
        WriteJob::Group(group)
    }

    /// The next job, waiting for one; `None` once every [`CommitQueue`] is
    /// dropped and the queue is empty. For a writer task.
    pub async fn next(&mut self) -> Option<WriteJob> {
        if let Some(job) = self.held.take() {
            return Some(job);
        }
        let first = self.receiver.recv().await?;
        Some(self.gather(first))
    }

    /// [`WriteJobs::next`] for a writer thread: blocks the thread. Never
    /// call it from an async task.
    pub fn blocking_next(&mut self) -> Option<WriteJob> {
        if let Some(job) = self.held.take() {
            return Some(job);
        }
        let first = self.receiver.blocking_recv()?;
        Some(self.gather(first))
    }
}

/// The error each commit of a group gets when the group as a whole failed
/// (the sync or the transaction's commit): the same variant and message for
/// every one, since [`Error`] is not `Clone`.
pub fn group_failure(error: &Error) -> Error {
    let message = format!("the commit group failed: {error}");
    match error {
        Error::Unavailable { store, key, .. } => Error::Unavailable {
            store: *store,
            key: key.clone(),
            source: message.into(),
        },
        Error::Corrupt { store, key, .. } => Error::Corrupt {
            store: *store,
            key: key.clone(),
            reason: message,
        },
        other => Error::Backend {
            store: other.store(),
            key: other.key().to_string(),
            source: message.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Kind;
    use crate::revision::Precondition;

    fn require(key: &str) -> Vec<Mutation> {
        vec![Mutation::require(Kind::Profile, key, Precondition::Any)]
    }

    #[tokio::test]
    async fn waiting_commits_form_one_group_and_other_jobs_wait_their_turn() {
        let (queue, mut jobs) = commit_queue("test", 3);
        let mut answers = Vec::new();
        for key in ["a", "b", "c", "d"] {
            let (reply, answer) = oneshot::channel();
            queue
                .send(Queued::Commit(PendingCommit {
                    mutations: require(key),
                    reply,
                }))
                .await
                .unwrap();
            answers.push(answer);
        }
        let (reply, flushed) = oneshot::channel();
        queue
            .send(Queued::Other(WriteJob::Flush { reply }))
            .await
            .unwrap();
        let (reply, answer) = oneshot::channel();
        queue
            .send(Queued::Commit(PendingCommit {
                mutations: require("e"),
                reply,
            }))
            .await
            .unwrap();
        answers.push(answer);

        let sizes: Vec<String> = std::iter::from_fn(|| match jobs.held.take() {
            Some(job) => Some(job),
            None => jobs.receiver.try_recv().ok().map(|q| jobs.gather(q)),
        })
        .map(|job| match job {
            WriteJob::Group(g) => {
                let n = g.len();
                for c in g {
                    c.finish(Ok(Vec::new()));
                }
                format!("group of {n}")
            }
            WriteJob::Flush { reply } => {
                reply.send(()).unwrap();
                "flush".to_string()
            }
            WriteJob::Compact { .. } => "compact".to_string(),
            WriteJob::StartFeedAfter { .. } => "start feed".to_string(),
            WriteJob::CompactHistory { .. } => "compact history".to_string(),
        })
        .collect();
        assert_eq!(
            sizes,
            ["group of 3", "group of 1", "flush", "group of 1"],
            "at most max_group commits a group; a flush ends a group and keeps its place"
        );
        for a in answers {
            assert!(a.await.unwrap().is_ok());
        }
        flushed.await.unwrap();
        let stats = queue.stats();
        assert_eq!((stats.groups, stats.commits, stats.largest), (3, 5, 3));
    }

    #[tokio::test]
    async fn a_stopped_writer_is_unavailable() {
        let (queue, jobs) = commit_queue("/data/x", 8);
        drop(jobs);
        let err = queue.commit(require("a")).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(err.to_string().contains("/data/x"), "{err}");
    }

    #[test]
    fn a_group_failure_keeps_the_variant_for_every_commit() {
        let e = Error::Unavailable {
            store: StoreName::Datastore,
            key: "db".into(),
            source: "disk gone".into(),
        };
        let each = group_failure(&e);
        assert!(each.is_retryable());
        assert!(each.to_string().contains("disk gone"), "{each}");
    }
}
