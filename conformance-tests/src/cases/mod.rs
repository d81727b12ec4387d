//! The cases, one async function per behaviour, grouped by area.

pub mod bad_input;
pub mod batches;
pub mod capabilities;
pub mod collections;
pub mod concurrency;
pub mod feed;
pub mod feed_filters;
pub mod history;
pub mod keys;
pub mod logs;
pub mod pagination;
pub mod profiles;
pub mod runs;
pub mod tokens;
pub mod workflows;
