//! Memoized selectors and subscriptions notified only when what they
//! select changed.

use std::sync::Arc;

/// A derived value of a slice, recomputed only when the slice's pointer
/// changed (slices that an action left alone keep theirs).
pub struct Memo<S, T> {
    select: fn(&S) -> T,
    last: Option<(Arc<S>, T)>,
    computed: u64,
}

impl<S, T: Clone> Memo<S, T> {
    /// A memo of `select`.
    pub fn new(select: fn(&S) -> T) -> Self {
        Memo {
            select,
            last: None,
            computed: 0,
        }
    }

    /// The selected value of `slice`, computed only if the slice changed.
    pub fn get(&mut self, slice: &Arc<S>) -> T {
        if let Some((_, output)) = self
            .last
            .as_ref()
            .filter(|(input, _)| Arc::ptr_eq(input, slice))
        {
            return output.clone();
        }
        let output = (self.select)(slice);
        self.computed += 1;
        self.last = Some((slice.clone(), output.clone()));
        output
    }

    /// How many times the selector ran.
    pub fn computed(&self) -> u64 {
        self.computed
    }
}

/// A subscription: a selector over the whole state, the last value it
/// delivered, and who to tell.
pub struct Subscription<S, T> {
    select: Box<dyn Fn(&S) -> T + Send>,
    last: Option<T>,
    notify: Box<dyn FnMut(&T) + Send>,
}

impl<S, T: PartialEq> Subscription<S, T> {
    /// Subscribes `notify` to `select`.
    pub fn new(
        select: impl Fn(&S) -> T + Send + 'static,
        notify: impl FnMut(&T) + Send + 'static,
    ) -> Self {
        Subscription {
            select: Box::new(select),
            last: None,
            notify: Box::new(notify),
        }
    }

    /// Offers a new state; notifies only when the selected value differs
    /// from the last one delivered. Returns whether it notified.
    pub fn offer(&mut self, state: &S) -> bool {
        let value = (self.select)(state);
        if self.last.as_ref() == Some(&value) {
            return false;
        }
        (self.notify)(&value);
        self.last = Some(value);
        true
    }
}
