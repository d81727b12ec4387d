//! The change feed over the engine's.

use async_trait::async_trait;

use super::EngineStore;
use crate::engine::Engine;
use crate::error::{Error, Result, StoreName};
use crate::feed::{
    Change, ChangeFeed, ChangeStream, Compaction, FeedCursor, FeedFilter, MAX_FEED_LIMIT, Retention,
};

#[async_trait]
impl<E: Engine> ChangeFeed for EngineStore<E> {
    async fn since_matching(
        &self,
        cursor: FeedCursor,
        limit: u32,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        filter.validate()?;
        if limit == 0 || limit > MAX_FEED_LIMIT {
            return Err(Error::invalid(
                StoreName::Changes,
                cursor.to_string(),
                "limit",
                format!("{limit} is outside 1 to {MAX_FEED_LIMIT}"),
            ));
        }
        let head = self.engine.head().await?;
        if cursor.0 > head {
            return Err(Error::invalid(
                StoreName::Changes,
                cursor.to_string(),
                "cursor",
                format!("is ahead of the feed head {head}"),
            ));
        }
        self.engine
            .changes_since(cursor.0, limit as usize, filter)
            .await
    }

    async fn head(&self) -> Result<FeedCursor> {
        self.engine.head().await.map(FeedCursor)
    }

    fn subscribe_matching(&self, from: FeedCursor, filter: FeedFilter) -> ChangeStream {
        crate::subscription::subscribe(self.engine.clone(), from, filter)
    }

    async fn compact(&self, retention: Retention) -> Result<Compaction> {
        self.engine.compact(&retention).await
    }

    fn retention(&self) -> Retention {
        self.engine.retention()
    }
}
