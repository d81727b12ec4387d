//! The driver: runs a tree's effects against any `Datastore`, follows the
//! change feed from a cursor, and resyncs what the tree holds (and nothing
//! else) after the feed lagged or expired.
//!
//! It asks the store only for changes to what the tree holds (see
//! [`feed_filter`]): the signed-in profile's collection, the open workflow
//! and its runs, the run whose log is shown. When a navigation changes
//! that, it moves its subscription to the new filter from its cursor, so a
//! change matching both is neither lost nor applied twice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use datastore_core::{
    ChangeStream, CollectionOrder, Cursor, Datastore, Error, FeedCursor, FeedEvent, Kind,
    PageRequest, Query, Result, Revision, Versioned, WorkflowFilter, WorkflowOrder,
};
use futures::StreamExt;

use crate::state::{Action, Effect, State, reduce};
use crate::view::{feed_filter, resync_effects};

/// How many reads [`Driver`] makes for a changed record before it settles
/// for an answer older than the change.
const READ_AT_LEAST_TRIES: u32 = 8;

/// Holds a state tree and keeps it in step with a store.
pub struct Driver {
    ds: Arc<dyn Datastore>,
    state: State,
    cursor: FeedCursor,
    reads: u64,
    resyncs: u64,
    events: u64,
}

impl Driver {
    /// A driver with an empty tree, following the feed from its head now.
    pub async fn new(ds: Arc<dyn Datastore>) -> Result<Self> {
        let cursor = ds.changes().head().await?;
        Ok(Driver {
            ds,
            state: State::default(),
            cursor,
            reads: 0,
            resyncs: 0,
            events: 0,
        })
    }

    /// The tree.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// How many store reads the driver made (loads and reloads).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// How many times the driver reloaded what it holds after losing the feed.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// How many feed changes the driver received: with the filter, only
    /// changes to what the tree holds.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The feed position the tree reflects: the last change it received.
    pub fn cursor(&self) -> FeedCursor {
        self.cursor
    }

    /// Reduces an action, runs the effects it asks for, and reduces their
    /// answers in turn, until nothing is left to do.
    pub async fn dispatch(&mut self, action: Action) -> Result<()> {
        let mut queue = VecDeque::from([action]);
        while let Some(action) = queue.pop_front() {
            let (next, effects) = reduce(&self.state, &action);
            self.state = next;
            for effect in effects {
                if let Some(answer) = self.run(effect).await? {
                    queue.push_back(answer);
                }
            }
        }
        Ok(())
    }

    /// Runs one effect; its answer, if any, as an action.
    async fn run(&mut self, effect: Effect) -> Result<Option<Action>> {
        Ok(match effect {
            Effect::LoadCollection(profile) => {
                self.reads += 1;
                let page = self
                    .ds
                    .collections()
                    .list_by_profile(&profile, CollectionOrder::Name, PageRequest::first(1000))
                    .await?;
                Some(Action::CollectionLoaded(page.items))
            }
            Effect::LoadWorkflow { scope, init_id } => {
                self.reads += 1;
                match self.ds.workflows().get_by_init_id(&init_id).await {
                    Ok(w) => Some(Action::WorkflowLoaded {
                        scope,
                        init_id,
                        workflow: Some(w),
                    }),
                    Err(Error::NotFound { .. }) => Some(Action::WorkflowLoaded {
                        scope,
                        init_id,
                        workflow: None,
                    }),
                    Err(e) => Some(Action::LoadFailed {
                        scope,
                        message: e.to_string(),
                    }),
                }
            }
            Effect::LoadRuns { scope, workflow_id } => {
                self.reads += 1;
                match self
                    .ds
                    .runs()
                    .list_by_workflow(&workflow_id, PageRequest::first(1000))
                    .await
                {
                    Ok(page) => Some(Action::RunsLoaded {
                        scope,
                        workflow_id,
                        runs: page.items,
                    }),
                    Err(e) => Some(Action::LoadFailed {
                        scope,
                        message: e.to_string(),
                    }),
                }
            }
            Effect::LoadMoreRuns {
                scope,
                workflow_id,
                cursor,
            } => {
                self.reads += 1;
                let page = PageRequest::after(1000, Some(Cursor::from_text(cursor)));
                match self.ds.runs().list_by_workflow(&workflow_id, page).await {
                    Ok(page) => Some(Action::MoreRunsLoaded {
                        scope,
                        workflow_id,
                        runs: page.items,
                        next: page.next.map(|c| c.to_string()),
                    }),
                    Err(e) => Some(Action::LoadFailed {
                        scope,
                        message: e.to_string(),
                    }),
                }
            }
            Effect::LoadWorkflowList => {
                self.reads += 1;
                let query = Query::new(WorkflowFilter::All)
                    .order(WorkflowOrder::Id)
                    .limit(1000);
                match self.ds.workflows().list(query).await {
                    Ok(page) => Some(Action::WorkflowListLoaded {
                        workflows: page.items,
                        next: page.next.map(|c| c.to_string()),
                    }),
                    Err(e) => Some(Action::WorkflowListFailed(e.to_string())),
                }
            }
            Effect::SaveWorkflow { workflow, expect } => {
                let saved = self.ds.workflows().put(workflow, expect).await?;
                Some(Action::WorkflowSaved(saved))
            }
            Effect::Reload {
                kind: Kind::Run,
                id,
                at_least,
            } => {
                let id = id.into();
                self.reload(at_least, async |ds| ds.runs().get(&id).await)
                    .await?
                    .map(Action::RunArrived)
            }
            Effect::Reload {
                kind: Kind::Workflow,
                id,
                at_least,
            } => {
                let id = id.into();
                self.reload(at_least, async |ds| ds.workflows().get(&id).await)
                    .await?
                    .map(Action::WorkflowSaved)
            }
            Effect::Reload { .. } => None,
        })
    }

    /// Reads a record the feed said changed, until the answer is at least
    /// the announced revision: a cache or replica in front of the store may
    /// briefly answer with the previous one. After a few tries it settles for
    /// what it has (the next change reads it again). A record deleted
    /// meanwhile is `None`.
    async fn reload<R>(
        &mut self,
        at_least: Revision,
        read: impl AsyncFn(&dyn Datastore) -> Result<Versioned<R>>,
    ) -> Result<Option<Versioned<R>>> {
        let ds = self.ds.clone();
        let ds: &dyn Datastore = &*ds;
        let mut delay = Duration::from_millis(2);
        let mut tries = 0;
        loop {
            self.reads += 1;
            tries += 1;
            let found = match read(ds).await {
                Ok(found) => found,
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if found.revision >= at_least || tries > READ_AT_LEAST_TRIES {
                return Ok(Some(found));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Applies every change to what the tree holds committed since its
    /// cursor; after `CursorExpired` it resyncs instead. Returns how many
    /// changes it read.
    pub async fn catch_up(&mut self) -> Result<usize> {
        let mut seen = 0;
        loop {
            let Some(filter) = feed_filter(&self.state) else {
                return Ok(seen);
            };
            let changes = match self
                .ds
                .changes()
                .since_matching(self.cursor, 500, &filter)
                .await
            {
                Ok(c) => c,
                Err(Error::CursorExpired { .. }) => {
                    self.resync().await?;
                    return Ok(seen);
                }
                Err(e) => return Err(e),
            };
            if changes.is_empty() {
                return Ok(seen);
            }
            for change in changes {
                self.cursor = change.cursor();
                self.events += 1;
                seen += 1;
                self.dispatch(Action::Changed(change)).await?;
            }
        }
    }

    /// Follows the live feed for `duration`, applying changes to what the
    /// tree holds as they come; after `Lagged` or `CursorExpired` it
    /// resyncs and follows on.
    pub async fn follow_for(&mut self, duration: Duration) -> Result<()> {
        let stream = self.subscribe();
        self.follow(stream, duration).await
    }

    /// A subscription from this driver's cursor to the changes its tree
    /// needs (`None` when it holds nothing that changes).
    pub fn subscribe(&self) -> Option<ChangeStream> {
        let filter = feed_filter(&self.state)?;
        Some(self.ds.changes().subscribe_matching(self.cursor, filter))
    }

    /// Like [`Driver::follow_for`], on a subscription already opened with
    /// [`Driver::subscribe`]. When an applied change alters what the tree
    /// holds, the subscription moves to the new filter from the cursor.
    pub async fn follow(&mut self, stream: Option<ChangeStream>, duration: Duration) -> Result<()> {
        let mut stream = stream;
        self.follow_on(&mut stream, duration).await
    }

    /// Like [`Driver::follow`], keeping the subscription in `stream` for the
    /// next call (a caller that follows in short slices, redrawing between
    /// them, opens it once; over `http://` that is one event stream). Start
    /// with [`Driver::subscribe`]; it is replaced when the tree's filter
    /// changes or after a resync.
    pub async fn follow_on(
        &mut self,
        stream: &mut Option<ChangeStream>,
        duration: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut filter = feed_filter(&self.state);
        loop {
            let Some(live) = stream.as_mut() else {
                tokio::time::sleep_until(deadline).await;
                return Ok(());
            };
            let next = match tokio::time::timeout_at(deadline, live.next()).await {
                Err(_) => return Ok(()),
                Ok(next) => next,
            };
            match next {
                Some(Ok(FeedEvent::Change(change))) => {
                    self.cursor = change.cursor();
                    self.events += 1;
                    self.dispatch(Action::Changed(change)).await?;
                }
                Some(Ok(FeedEvent::Lagged { .. })) | Some(Err(Error::CursorExpired { .. })) => {
                    self.resync().await?;
                    *stream = self.subscribe();
                    filter = feed_filter(&self.state);
                    continue;
                }
                Some(Err(e)) => return Err(e),
                None => {
                    *stream = None;
                    return Ok(());
                }
            }
            let now = feed_filter(&self.state);
            if now != filter {
                *stream = self.subscribe();
                filter = now;
            }
        }
    }

    /// Reloads what the tree holds, and nothing else, then follows from the
    /// feed's head: the answer to a lost feed.
    pub async fn resync(&mut self) -> Result<()> {
        self.resyncs += 1;
        self.cursor = self.ds.changes().head().await?;
        for effect in resync_effects(&self.state) {
            if let Some(answer) = self.run(effect).await? {
                self.dispatch(answer).await?;
            }
        }
        Ok(())
    }
}
