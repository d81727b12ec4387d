//! Append-only logs: entries keyed by log and sequence, appended at a
//! known length.

use async_trait::async_trait;

use crate::engine::{Engine, Mutation, Scan};
use crate::error::{Error, Result, StoreName};
use crate::ids::{LogEntryKey, LogId, RecordId};
use crate::query::{Direction, Page, Position, Query, check_limit};
use crate::record::{IndexValue, Kind};
use crate::records::{LogEntry, LogOp};
use crate::revision::{Precondition, Revision, Versioned};
use crate::stores::LogStore;

use super::{EngineStore, MAX_APPEND_OPS, retry_on_contention};

impl<E: Engine> EngineStore<E> {
    pub(super) fn log_entry_key(log: &LogId, seq: u64) -> String {
        LogEntryKey {
            log_id: log.clone(),
            seq,
        }
        .key()
    }

    /// The mutations of a log append and the entries they write.
    pub(super) fn prepare_append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<(Vec<Mutation>, Vec<LogEntry>)> {
        let store = StoreName::Kind(Kind::Log);
        log.check("log_id")
            .map_err(|e| e.into_error(store, log.as_str()))?;
        if ops.is_empty() {
            return Err(Error::invalid(
                store,
                log.as_str(),
                "ops",
                "must not be empty",
            ));
        }
        if ops.len() > MAX_APPEND_OPS {
            return Err(Error::invalid(
                store,
                log.as_str(),
                "ops",
                format!(
                    "{} ops, over the maximum of {MAX_APPEND_OPS} per append",
                    ops.len()
                ),
            ));
        }
        let mut mutations = Vec::with_capacity(ops.len() + 1);
        let mut entries = Vec::with_capacity(ops.len());
        if expected_len > 0 {
            mutations.push(Mutation::require(
                Kind::Log,
                Self::log_entry_key(log, expected_len - 1),
                Precondition::MustExist,
            ));
        }
        for (i, op) in ops.into_iter().enumerate() {
            let mut entry = LogEntry {
                log_id: log.clone(),
                seq: expected_len + i as u64,
                op,
            };
            let mut prepared = self.prepare_put(&mut entry, Precondition::MustNotExist)?;
            mutations.append(&mut prepared.mutations);
            entries.push(entry);
        }
        Ok((mutations, entries))
    }

    /// Turns the failure of an append's checks into a `Conflict` naming the
    /// length found.
    pub(super) async fn append_conflict(
        &self,
        log: &LogId,
        expected_len: u64,
        err: Error,
    ) -> Error {
        let lost_race = match &err {
            Error::AlreadyExists { store, .. } | Error::NotFound { store, .. } => {
                *store == StoreName::Kind(Kind::Log)
            }
            _ => false,
        };
        if !lost_race {
            return err;
        }
        let found = match LogStore::length(self, log).await {
            Ok(n) => n,
            Err(e) => return e,
        };
        Error::Conflict {
            store: StoreName::Kind(Kind::Log),
            key: log.to_string(),
            expected: Precondition::MustBeAt(Revision::new(expected_len)),
            found: Some(Revision::new(found)),
        }
    }
}

#[async_trait]
impl<E: Engine> LogStore for EngineStore<E> {
    async fn append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<Vec<Versioned<LogEntry>>> {
        let (mutations, entries) = self.prepare_append(log, expected_len, ops)?;
        let committed = match self.commit_stamped(mutations).await {
            Ok(c) => c,
            Err(e) => return Err(self.append_conflict(log, expected_len, e).await),
        };
        Ok(entries
            .into_iter()
            .zip(committed)
            .map(|(value, c)| Versioned::from_committed(value, &c))
            .collect())
    }

    async fn range(&self, log: &LogId, start: u64, limit: u32) -> Result<Vec<Versioned<LogEntry>>> {
        log.check("log_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Log), log.as_str()))?;
        check_limit(limit).map_err(|e| e.into_error(StoreName::Kind(Kind::Log), log.as_str()))?;
        let after = start.checked_sub(1).map(|prev| Position {
            values: vec![IndexValue::str(log.as_str()), IndexValue::Int(prev as i64)],
            id: Self::log_entry_key(log, prev),
        });
        let scan = Scan {
            index: Some("log_seq"),
            prefix: vec![IndexValue::str(log.as_str())],
            after,
            direction: Direction::Asc,
            limit: limit as usize,
        };
        self.engine
            .scan(Kind::Log, &scan)
            .await?
            .into_iter()
            .map(Self::decode)
            .collect()
    }

    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>> {
        log.check("log_id")
            .map_err(|e| e.into_error(StoreName::Kind(Kind::Log), log.as_str()))?;
        self.first_by_index(
            "log_seq",
            vec![IndexValue::str(log.as_str())],
            Direction::Desc,
            log.as_str(),
        )
        .await
    }

    async fn length(&self, log: &LogId) -> Result<u64> {
        match LogStore::head(self, log).await {
            Ok(entry) => Ok(entry.value.seq + 1),
            Err(Error::NotFound { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>> {
        self.list_records(query).await
    }

    async fn remove(&self, log: &LogId) -> Result<u64> {
        Ok(retry_on_contention!(
            StoreName::Kind(Kind::Log),
            log.as_str(),
            "removing the log",
            {
                let len = LogStore::length(self, log).await?;
                if len == 0 {
                    return Err(Error::not_found(StoreName::Kind(Kind::Log), log.as_str()));
                }
                // Nothing may be appended between reading the length and the delete.
                let mut mutations = vec![Mutation::require(
                    Kind::Log,
                    Self::log_entry_key(log, len),
                    Precondition::MustNotExist,
                )];
                mutations.extend((0..len).map(|seq| {
                    Mutation::delete(Kind::Log, Self::log_entry_key(log, seq), Precondition::Any)
                }));
                match self.commit_stamped(mutations).await {
                    Ok(_) => Some(len),
                    Err(Error::AlreadyExists { .. } | Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
        ))
    }
}
