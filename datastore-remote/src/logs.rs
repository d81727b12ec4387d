//! Operation logs over `/v1/logs/ID/entries`.

use async_trait::async_trait;
use datastore_core::{
    Direction, Error, Kind, LogEntry, LogFilter, LogId, LogOp, LogStore, MAX_PAGE_LIMIT, Page,
    Query, RecordId, Result, StoreName, Versioned,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::RemoteStore;
use crate::problem::Ctx;
use crate::records::checked;

const STORE: StoreName = StoreName::Kind(Kind::Log);

#[derive(Serialize)]
struct Append<'a> {
    expected_len: u64,
    ops: &'a [LogOp],
}

/// Entries and the log's length, as the server answers both endpoints.
#[derive(Deserialize)]
struct Entries {
    items: Vec<Versioned<LogEntry>>,
    length: u64,
}

impl RemoteStore {
    /// `GET /v1/logs/ID/entries?start=&limit=`: entries and the length.
    async fn entries(&self, log: &LogId, start: u64, limit: u32) -> Result<Entries> {
        let key = checked(STORE, log, "log_id")?;
        if limit == 0 || limit > MAX_PAGE_LIMIT {
            return Err(Error::invalid(
                STORE,
                key,
                "limit",
                format!("{limit} is not between 1 and {MAX_PAGE_LIMIT}"),
            ));
        }
        let rb = self
            .inner
            .http
            .get(&format!("/v1/logs/{key}/entries"))
            .query(&[("start", start.to_string()), ("limit", limit.to_string())]);
        self.inner.http.json(rb, &Ctx::new(STORE, key)).await
    }
}

#[async_trait]
impl LogStore for RemoteStore {
    async fn append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<Vec<Versioned<LogEntry>>> {
        let key = checked(STORE, log, "log_id")?;
        let rb = self
            .inner
            .http
            .request(Method::POST, &format!("/v1/logs/{key}/entries"), false)
            .json(&Append {
                expected_len,
                ops: &ops,
            });
        let entries: Entries = self.inner.http.json(rb, &Ctx::new(STORE, key)).await?;
        Ok(entries.items)
    }

    async fn range(&self, log: &LogId, start: u64, limit: u32) -> Result<Vec<Versioned<LogEntry>>> {
        Ok(self.entries(log, start, limit).await?.items)
    }

    /// Two requests: the length, then the last entry.
    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>> {
        let length = self.length(log).await?;
        let last = match length.checked_sub(1) {
            Some(last) => self.entries(log, last, 1).await?.items.into_iter().next(),
            None => None,
        };
        last.ok_or_else(|| Error::not_found(STORE, log.key()))
    }

    async fn length(&self, log: &LogId) -> Result<u64> {
        Ok(self.entries(log, 0, 1).await?.length)
    }

    /// `DELETE /v1/logs/ID`.
    async fn remove(&self, log: &LogId) -> Result<u64> {
        let key = checked(STORE, log, "log_id")?;
        let rb = self
            .inner
            .http
            .request(Method::DELETE, &format!("/v1/logs/{key}"), false);
        let removed: Removed = self.inner.http.json(rb, &Ctx::new(STORE, key)).await?;
        Ok(removed.removed)
    }

    /// `GET /v1/logs`.
    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>> {
        let mut params = vec![
            (
                "direction",
                match query.direction {
                    Direction::Asc => "asc",
                    Direction::Desc => "desc",
                }
                .to_string(),
            ),
            ("limit", query.limit.to_string()),
        ];
        let key = match &query.filter {
            LogFilter::Log(log) => {
                let key = checked(STORE, log, "log_id")?;
                params.push(("log", key.clone()));
                key
            }
            LogFilter::All => String::new(),
        };
        if let Some(cursor) = &query.cursor {
            params.push(("cursor", cursor.as_str().to_string()));
        }
        let rb = self.inner.http.get("/v1/logs").query(&params);
        self.inner.http.json(rb, &Ctx::new(STORE, key)).await
    }
}

#[derive(Deserialize)]
struct Removed {
    removed: u64,
}
