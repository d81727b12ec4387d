//! [`Layer`]: the hooks a layer implements, each with a pass-through default.

use std::fmt;

use datastore_core::{Editable, Kind, Record, Result, Revision, StoreName, Versioned};
use futures::future::BoxFuture;

/// One call through a layer: which store, which operation, which key
/// (empty where the call has none).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The substore.
    pub store: StoreName,
    /// The operation (`get`, `put`, `list`, `append_event`, ...).
    pub op: &'static str,
    /// The record or log key, or `""`.
    pub key: &'a str,
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}.{}", self.store, self.op)
        } else {
            write!(f, "{}.{}({:?})", self.store, self.op, self.key)
        }
    }
}

/// The hooks a layer can implement. Every hook has a pass-through default, so
/// a layer implements only what it changes.
pub trait Layer: Send + Sync + 'static {
    /// Wraps every call to the inner datastore (instrumentation, faults).
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        inner: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        let _ = call;
        inner
    }

    /// Transforms a record on its way into the inner datastore (sealing).
    fn inbound<R: Editable>(&self, record: R) -> Result<R> {
        Ok(record)
    }

    /// Transforms a record read from the inner datastore (unsealing).
    fn outbound<R: Editable>(&self, record: Versioned<R>) -> Result<Versioned<R>> {
        Ok(record)
    }

    /// A point read by id (`key`, moved in); `load` starts the read from
    /// the inner datastore, and is only called if the layer needs it
    /// (caching), so a hit costs no inner call at all.
    fn read<'a, R: Editable>(
        &'a self,
        key: String,
        load: impl FnOnce() -> BoxFuture<'a, Result<Versioned<R>>> + Send + 'a,
    ) -> impl Future<Output = Result<Versioned<R>>> + Send + 'a {
        let _ = key;
        load()
    }

    /// Several point reads; `load` reads the given keys from the inner
    /// datastore, one answer per key, in order.
    fn read_many<'a, R: Editable>(
        &'a self,
        ids: &'a [R::Id],
        load: Loader<'a, R>,
    ) -> BoxFuture<'a, Result<Vec<Option<Versioned<R>>>>> {
        load(ids.to_vec())
    }

    /// A record was written through this layer (the value as the caller sees it).
    fn wrote<'a, R: Editable>(&'a self, written: &'a Versioned<R>) -> BoxFuture<'a, ()> {
        let _ = written;
        Box::pin(async {})
    }

    /// A key was deleted, or changed by a write whose value this layer did
    /// not see (batches, patches); `revision` is the write's revision.
    fn touched(&self, kind: Kind, key: String, revision: Revision) -> BoxFuture<'_, ()> {
        let _ = (kind, key, revision);
        Box::pin(async {})
    }

    /// The datastore is closing: stop background work (and let go of the
    /// inner store) before the inner store closes.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Reads a list of ids from the inner datastore (see [`Layer::read_many`]).
pub type Loader<'a, R> = Box<
    dyn FnOnce(Vec<<R as Record>::Id>) -> BoxFuture<'a, Result<Vec<Option<Versioned<R>>>>>
        + Send
        + 'a,
>;
