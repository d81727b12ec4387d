//! Replay-then-live subscriptions over any [`Engine`].

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;

use crate::engine::Engine;
use crate::error::{Error, StoreName};
use crate::feed::{
    Change, ChangeStream, FeedCursor, FeedEvent, FeedFilter, LiveError, LiveReceiver,
};

const REPLAY_PAGE: usize = 512;

struct State<E> {
    engine: Arc<E>,
    rx: LiveReceiver,
    filter: FeedFilter,
    cursor: u64,
    buffered: VecDeque<Change>,
    checked: bool,
    live: bool,
    done: bool,
}

/// Follows the feed from `from`: reads the durable feed until caught up, then
/// the live channel. The live receiver is opened before the first durable
/// read, so a change committed meanwhile is in one or the other (both at
/// worst, and then delivered once); nothing falls between them. If more
/// changes commit than the receiver buffers before the reader catches up
/// (it stopped reading, or replay took long under heavy writes), the stream
/// says [`FeedEvent::Lagged`] and ends. Only changes matching `filter` are
/// read, queued and delivered.
pub(crate) fn subscribe<E: Engine>(
    engine: Arc<E>,
    from: FeedCursor,
    filter: FeedFilter,
) -> ChangeStream {
    if let Err(e) = filter.validate() {
        return futures::stream::once(async move { Err(e) }).boxed();
    }
    let rx = engine.live(filter.clone());
    let state = State {
        engine,
        rx,
        filter,
        cursor: from.0,
        buffered: VecDeque::new(),
        checked: false,
        live: false,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if let Some(change) = st.buffered.pop_front() {
                st.cursor = change.seq;
                return Some((Ok(FeedEvent::Change(change)), st));
            }
            if !st.live {
                if !st.checked {
                    st.checked = true;
                    match st.engine.head().await {
                        Ok(head) if st.cursor > head => {
                            st.done = true;
                            let err = Error::invalid(
                                StoreName::Changes,
                                st.cursor.to_string(),
                                "cursor",
                                format!("is ahead of the feed head {head}"),
                            );
                            return Some((Err(err), st));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                match st
                    .engine
                    .changes_since(st.cursor, REPLAY_PAGE, &st.filter)
                    .await
                {
                    Ok(page) if page.is_empty() => st.live = true,
                    Ok(page) => st.buffered.extend(page),
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
                continue;
            }
            match st.rx.recv().await {
                Ok(change) if change.seq > st.cursor => {
                    st.cursor = change.seq;
                    return Some((Ok(FeedEvent::Change(change)), st));
                }
                Ok(_) => continue,
                Err(LiveError::Lagged) => {
                    st.done = true;
                    let resume_from = FeedCursor(st.cursor);
                    return Some((Ok(FeedEvent::Lagged { resume_from }), st));
                }
                Err(LiveError::Closed) => return None,
            }
        }
    })
    .boxed()
}
