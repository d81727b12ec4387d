//! What a backend reports about itself.

use std::sync::Arc;

use datastore_core::{Datastore, MAX_PAGE_LIMIT};

/// Capabilities name the backend and report usable limits.
pub async fn reports_limits(ds: Arc<dyn Datastore>) {
    let caps = ds.capabilities();
    assert!(!caps.backend.is_empty());
    assert!(caps.max_page_limit >= 1 && caps.max_page_limit <= MAX_PAGE_LIMIT);
    assert!(caps.max_record_bytes >= 64 * 1024);
    assert!(caps.subscriber_buffer >= 1);
}
