//! `Faulty`: injected errors and delays, for tests.

use std::sync::Mutex;
use std::time::Duration;

use datastore_core::{Datastore, Error, Result, StoreName};
use futures::future::BoxFuture;

use super::{Call, Layer, Layered};

/// A datastore that fails or delays chosen calls, for testing how a service
/// (or another layer) copes.
pub type Faulty = Layered<Faults>;

impl Faulty {
    /// Wraps `inner` with no faults yet; add them with [`Faults::inject`].
    pub fn wrap(inner: std::sync::Arc<dyn Datastore>) -> Self {
        Layered::new(inner, Faults::default())
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Fail with [`Error::Unavailable`] before the call reaches the inner
    /// datastore (so nothing is written).
    Fail,
    /// Wait before making the call.
    DelayBefore(Duration),
    /// Make the call, then wait before returning its result (a slow reply:
    /// the value was read, or the write done, before the wait).
    DelayAfter(Duration),
}

/// A fault: which calls it matches, what it does, how many times.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Only calls to this store (any store if `None`).
    pub store: Option<StoreName>,
    /// Only this operation (any if `None`).
    pub op: Option<&'static str>,
    /// Only this key (any if `None`).
    pub key: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// How many more calls it applies to (`None`: every call).
    pub times: Option<u32>,
}

impl Fault {
    /// A fault on every call to `store`'s `op`, applied every time.
    pub fn on(store: StoreName, op: &'static str, action: FaultAction) -> Self {
        Fault {
            store: Some(store),
            op: Some(op),
            key: None,
            action,
            times: None,
        }
    }

    /// Only calls for this key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Only the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, call: &Call<'_>) -> bool {
        self.store.is_none_or(|s| s == call.store)
            && self.op.is_none_or(|o| o == call.op)
            && self.key.as_deref().is_none_or(|k| k == call.key)
            && self.times != Some(0)
    }
}

/// The [`Layer`] behind [`Faulty`]: the faults to inject.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Mutex<Vec<Fault>>,
    injected: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// Adds a fault; the first matching fault applies to a call.
    pub fn inject(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// How many calls a fault was applied to.
    pub fn injected(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self, call: &Call<'_>) -> Option<FaultAction> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let fault = faults.iter_mut().find(|f| f.matches(call))?;
        if let Some(n) = fault.times.as_mut() {
            *n -= 1;
        }
        self.injected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(fault.action.clone())
    }
}

impl Layer for Faults {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        inner: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        match self.take(&call) {
            None => inner,
            Some(FaultAction::Fail) => {
                let err = Error::Unavailable {
                    store: call.store,
                    key: call.key.to_string(),
                    source: format!("injected fault on {}", call.op).into(),
                };
                Box::pin(async move { Err(err) })
            }
            Some(FaultAction::DelayBefore(d)) => Box::pin(async move {
                tokio::time::sleep(d).await;
                inner.await
            }),
            Some(FaultAction::DelayAfter(d)) => Box::pin(async move {
                let result = inner.await;
                tokio::time::sleep(d).await;
                result
            }),
        }
    }
}
