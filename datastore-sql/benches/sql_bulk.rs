//! Bulk load through the facade against the engine's own bulk mechanism,
//! on SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench -p datastore-sql --bench sql_bulk
//! # records per round, records per batch, rounds:
//! BULK_RECORDS=1000000 BULK_BATCH=5000 BULK_ROUNDS=3 cargo bench -p datastore-sql --bench sql_bulk
//! # one backend:
//! BULK_BACKENDS=sqlite cargo bench -p datastore-sql --bench sql_bulk
//! # the PostgreSQL raw side with multi-row INSERTs instead of UNNEST:
//! BULK_PG_VALUES=1 cargo bench -p datastore-sql --bench sql_bulk
//! ```
//!
//! Each round loads `BULK_RECORDS` new profiles of about 300 bytes of JSON
//! into an empty store, `BULK_BATCH` at a time, once through the facade
//! (`Datastore::apply` of a batch of `MustNotExist` puts: what `import` and
//! `copy` write) and once by hand (the raw side): per batch one
//! transaction that takes the store's lock and head, validates and encodes
//! each profile, inserts the rows with their index columns, one history
//! version (the record's body again: every editable kind keeps history by
//! default) and one feed row per record (multi-row `INSERT`s on SQLite,
//! `UNNEST` arrays on PostgreSQL, see `benches/common/sql_raw.rs`), and
//! stores the new head. Rounds alternate facade and raw so a busy machine slows both
//! alike; the table gives the median of each and their ratio.

use std::time::Duration;

use datastore_core::Record;
use sqlx::Connection;

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{env, median};
#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
use facade_ops::{bulk_load, bulk_profile};
#[path = "../../benches/common/sql_raw.rs"]
mod sql_raw;
use sql_raw::{Target, fresh};

/// Loads through the facade; returns the time the writes took.
async fn facade_round(target: &Target, records: usize, batch: usize) -> Duration {
    let ds = datastore_sql::open(target.config()).await.unwrap();
    bulk_load(&*ds, records, batch).await
}

fn main() {
    let records = env("BULK_RECORDS", 100_000);
    let batch = env("BULK_BATCH", 5_000);
    let rounds = env("BULK_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg_url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let only = std::env::var("BULK_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let mut backends = vec!["sqlite"];
    backends.retain(|b| only.contains(b));
    if only.contains("postgres") && rt.block_on(sqlx::PgConnection::connect(&pg_url)).is_ok() {
        backends.push("postgres");
    } else {
        eprintln!(
            "no PostgreSQL at {}: SQLite only",
            datastore_sql::redact_url(&pg_url)
        );
    }
    println!("{records} profiles per round, {batch} per batch, {rounds} rounds");
    println!(
        "{:<10} {:>14} {:>14} {:>12}",
        "backend", "facade rec/s", "raw rec/s", "facade/raw"
    );
    for backend in backends {
        let (mut facade, mut raw) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            rt.block_on(async {
                let t = fresh(backend, &pg_url, &format!("f{round}")).await;
                let took = facade_round(&t, records, batch).await;
                facade.push(records as f64 / took.as_secs_f64());
                t.drop_schema().await;
                let t = fresh(backend, &pg_url, &format!("r{round}")).await;
                let profiles = (0..records).map(|n| {
                    let p = bulk_profile(n);
                    p.validate().unwrap();
                    p
                });
                let took = sql_raw::timed_load(&t, batch, profiles).await;
                raw.push(records as f64 / took.as_secs_f64());
                t.drop_schema().await;
            });
            eprintln!(
                "{backend} round {round}: facade {:.0}/s, raw {:.0}/s",
                facade[round], raw[round]
            );
        }
        let (f, r) = (median(facade), median(raw));
        println!("{backend:<10} {f:>14.0} {r:>14.0} {:>12.2}", f / r);
    }
}
