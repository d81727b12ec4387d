//! Filling index columns from the record bodies when the code's index
//! definitions change (a migration added a column for a new index): the
//! columns of every row are computed again, in one write transaction, and
//! the definitions they were filled for are recorded. An open that finds
//! the recorded definitions current does nothing.

use datastore_core::{Error, Kind, Result, StoreName};

use crate::driver::{Tx, Value, db_error};
use crate::schema::{self, column_values, table};
use crate::writer::Writer;

/// Rows read per statement while refilling.
const ROWS_PER_READ: i64 = 500;

async fn recorded(tx: &mut Tx) -> Result<Option<String>> {
    let row = tx
        .fetch_optional("SELECT fingerprint FROM ds_index_fingerprint", &[])
        .await
        .map_err(|e| db_error(StoreName::Datastore, "index_fingerprint", e))?;
    row.map(|r| r.text(0))
        .transpose()
        .map_err(|e| db_error(StoreName::Datastore, "index_fingerprint", e))
}

impl Writer {
    /// Refills every row's index columns if the index definitions changed
    /// since they were filled; returns how many rows it refilled.
    pub(crate) async fn reindex(&self) -> Result<u64> {
        let wanted = Kind::index_fingerprint();
        let mut tx = self.begin().await?;
        self.lock_head(&mut tx).await?;
        if recorded(&mut tx).await?.as_deref() == Some(wanted.as_str()) {
            return Ok(0);
        }
        let mut refilled = 0;
        for kind in Kind::ALL {
            refilled += self.refill(&mut tx, kind).await?;
        }
        let meta_err = |e| db_error(StoreName::Datastore, "index_fingerprint", e);
        tx.execute("DELETE FROM ds_index_fingerprint", &[])
            .await
            .map_err(meta_err)?;
        tx.execute(
            "INSERT INTO ds_index_fingerprint (fingerprint) VALUES (?)",
            &[Value::Text(wanted)],
        )
        .await
        .map_err(meta_err)?;
        tx.commit().await.map_err(meta_err)?;
        if refilled > 0 {
            tracing::info!(url = %self.shown_url, rows = refilled, "refilled index columns");
        }
        Ok(refilled)
    }

    async fn refill(&self, tx: &mut Tx, kind: Kind) -> Result<u64> {
        let store = kind.store();
        let columns = schema::columns(kind);
        if columns.is_empty() {
            return Ok(0);
        }
        let read = format!(
            "SELECT key, {} FROM {} WHERE key > ? ORDER BY key LIMIT ?",
            self.dialect.body_column(),
            table(kind)
        );
        let sets: Vec<String> = columns.iter().map(|(c, _)| format!("{c} = ?")).collect();
        let write = format!(
            "UPDATE {} SET {} WHERE key = ?",
            table(kind),
            sets.join(", ")
        );
        let mut after = String::new();
        let mut n = 0;
        loop {
            let rows = tx
                .fetch_all(
                    &read,
                    &[Value::Text(after.clone()), Value::Int(ROWS_PER_READ)],
                )
                .await
                .map_err(|e| db_error(store, &after, e))?;
            let done = (rows.len() as i64) < ROWS_PER_READ;
            for row in rows {
                let key = row.text(0).map_err(|e| db_error(store, &after, e))?;
                let body = row.text(1).map_err(|e| db_error(store, &key, e))?;
                let entries = kind
                    .index_entries(body.as_bytes())
                    .map_err(|e| Error::Corrupt {
                        store,
                        key: key.clone(),
                        reason: format!("the stored record does not decode: {e}"),
                    })?;
                let mut args = column_values(kind, &entries);
                args.push(Value::Text(key.clone()));
                tx.execute(&write, &args)
                    .await
                    .map_err(|e| db_error(store, &key, e))?;
                n += 1;
                after = key;
            }
            if done {
                return Ok(n);
            }
        }
    }
}
