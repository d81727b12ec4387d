//! The record kinds and their validation.

mod collection;
mod key;
mod log;
mod profile;
mod run;
mod token;
mod workflow;

pub use collection::{
    CollectionEntry, CollectionFilter, CollectionOrder, CollectionPatch, Counts, CountsDelta, Patch,
};
pub use key::{Key, KeyFilter, KeyOrder, PrivateKey};
pub use log::{LogEntry, LogFilter, LogOp, LogOrder, OpKind};
pub use profile::{Profile, ProfileFilter, ProfileKind, ProfileOrder};
pub use run::{Run, RunEvent, RunFilter, RunOrder, RunStatus, StepRun};
pub use token::{AccessToken, IssuedToken, TokenFilter, TokenOrder, TokenScope};
pub use workflow::{Hook, Step, Trigger, Workflow, WorkflowFilter, WorkflowOrder};

use crate::error::FieldError;

/// The longest free-text field accepted (names, titles, messages), in bytes.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Checks that a text field is at most `max` bytes.
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("is {} bytes, over the {max}-byte limit", value.len()),
        ));
    }
    Ok(())
}

/// A plan error for a filter and order no index serves.
pub(crate) fn unsupported_order(
    filter: &impl std::fmt::Debug,
    order: &impl std::fmt::Debug,
) -> FieldError {
    FieldError::new(
        "order",
        format!("{order:?} is not available for filter {filter:?}"),
    )
}
