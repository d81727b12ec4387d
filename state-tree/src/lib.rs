//! A reducer-driven state tree: the sparse, live client copy of a datastore
//! that a TUI, desktop app or server-rendered view holds.
//!
//! - [`State`] is a root of slices, each behind an `Arc` and owned by one
//!   reducer; [`reduce`] returns the next state and the [`Effect`]s (loads,
//!   saves) it asks for, as data, so tests assert on them without I/O. A
//!   slice an action did not touch keeps its pointer.
//! - [`EntityTable`] normalizes records by id with [`Upsert`] rules.
//! - [`Selection`] is the one-of-many pattern: one selected id of a
//!   many-store and its load status; navigating away expires it, and an
//!   answer for an older navigation never lands after a newer one.
//! - [`Optimistic`] queues pending mutations over the confirmed state.
//! - [`Memo`] and [`Subscription`] recompute and notify only on change.
//! - [`KeyedState`]: typed keys in named states (memory or disk), cleared
//!   on logout or lock, with `update(f, should_update)`, atomic file
//!   replacement, and [`Migrator`] for versioned migrations.
//! - [`run_rows`], [`workflow_rows`] and [`feed_query`] are selectors for a
//!   view (a browser page renders from them through `state-tree-wasm`).
//! - `Driver` (the default `driver` feature) runs effects against any
//!   `Datastore`, follows its feed, and resyncs what the tree holds after the
//!   feed lagged or expired. Without it the crate has no async runtime and
//!   builds for `wasm32-unknown-unknown`.

#[cfg(feature = "driver")]
mod driver;
mod entity;
mod keyed;
mod migration;
mod one_of_many;
mod optimistic;
mod selector;
mod state;
mod view;

#[cfg(feature = "driver")]
pub use driver::Driver;
pub use entity::{EntityTable, Upsert};
pub use keyed::{
    AnyKey, ClearOn, FileStorage, KeyDefinition, KeyedError, KeyedState, Location, MemoryStorage,
    StateDefinition, Storage, SubscriptionHandle, check_definitions,
};
pub use migration::{Migration, MigrationError, Migrator};
pub use one_of_many::{LoadStatus, Scope, Selection};
pub use optimistic::{Mutation, Optimistic, PendingId};
pub use selector::{Memo, Subscription};
pub use state::{
    Action, CollectionSlice, Effect, RunsSlice, Session, State, WorkflowList, WorkflowSlice, reduce,
};
pub use view::{
    RunRow, WorkflowRow, feed_filter, feed_query, resync_effects, run_rows, short_id, status_text,
    workflow_rows,
};
