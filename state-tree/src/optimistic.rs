//! Optimistic writes: pending mutations queued over the confirmed state.
//!
//! The view a client shows is the pending queue folded over the confirmed
//! state. When the store confirms a mutation, the confirmed state takes it
//! (or the store's own copy); when it rejects one, it is dropped. Either way
//! the rest of the queue is replayed on the new confirmed state (a rebase).

/// A change a client applies locally before the store has accepted it.
pub trait Mutation<S> {
    /// The state with this mutation applied.
    fn apply(&self, state: &S) -> S;
}

/// Identifies a pending mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingId(pub u64);

/// Confirmed state, the pending queue, and the view folded from both.
#[derive(Debug, Clone)]
pub struct Optimistic<S, M> {
    confirmed: S,
    pending: Vec<(PendingId, M)>,
    view: S,
    next: u64,
}

impl<S: Clone, M: Mutation<S>> Optimistic<S, M> {
    /// Starts from the store's state with nothing pending.
    pub fn new(confirmed: S) -> Self {
        Optimistic {
            view: confirmed.clone(),
            confirmed,
            pending: Vec::new(),
            next: 0,
        }
    }

    /// What the client shows: the pending queue folded over the confirmed state.
    pub fn view(&self) -> &S {
        &self.view
    }

    /// The last state the store confirmed.
    pub fn confirmed(&self) -> &S {
        &self.confirmed
    }

    /// How many mutations await the store's answer.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Applies a mutation to the view at once and queues it.
    pub fn propose(&mut self, mutation: M) -> PendingId {
        let id = PendingId(self.next);
        self.next += 1;
        self.view = mutation.apply(&self.view);
        self.pending.push((id, mutation));
        id
    }

    /// The store accepted a mutation: it joins the confirmed state (or the
    /// store's copy replaces it, when given), and the queue is rebased.
    /// Returns false for an id that is not pending.
    pub fn confirm(&mut self, id: PendingId, stored: Option<S>) -> bool {
        let Some(pos) = self.pending.iter().position(|(p, _)| *p == id) else {
            return false;
        };
        let (_, mutation) = self.pending.remove(pos);
        self.confirmed = stored.unwrap_or_else(|| mutation.apply(&self.confirmed));
        self.rebase();
        true
    }

    /// The store refused a mutation: it is dropped and the queue rebased.
    pub fn reject(&mut self, id: PendingId) -> bool {
        let Some(pos) = self.pending.iter().position(|(p, _)| *p == id) else {
            return false;
        };
        self.pending.remove(pos);
        self.rebase();
        true
    }

    /// The store's state changed underneath (another writer): the queue is
    /// replayed on it.
    pub fn reset_confirmed(&mut self, confirmed: S) {
        self.confirmed = confirmed;
        self.rebase();
    }

    fn rebase(&mut self) {
        self.view = self
            .pending
            .iter()
            .fold(self.confirmed.clone(), |state, (_, m)| m.apply(&state));
    }
}
