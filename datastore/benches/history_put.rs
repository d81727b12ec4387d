//! The cost of record history on the write path: a put that replaces a
//! profile with history kept (the default) against the same put with its
//! kind's history off, each backend, in interleaved rounds (the table's
//! "facade" column is history on, "raw" history off).
//!
//! ```text
//! cargo bench -p datastore --bench history_put
//! BENCH_ROUNDS=9 BENCH_ROUND_MS=500 cargo bench -p datastore --bench history_put
//! ```
//!
//! Each side has its own store, seeded with the same 1,000 profiles; a
//! put replaces the next one (`MustBeAt` its revision) with a new name, so
//! both sides do the same read, check and write, and the one on the left
//! also writes the version. "event" appends a step event to the next of
//! 100 runs (the store rewrites the run, so with history each event keeps
//! a copy of the whole run: the case for a `max_versions` on runs). RocksDB and SQLite commit durably (`fsync`),
//! PostgreSQL with `synchronous_commit = on`; one writer. PostgreSQL comes
//! from `DATASTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, and is
//! skipped with a notice if no server answers.

use std::sync::Arc;

use datastore_core::{
    Datastore, HistoryPolicy, Precondition, Profile, ProfileId, Revision, Run, RunEvent, RunId,
    StepRun, Workflow, WorkflowId,
};

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{Measured, compare, print_table_as, runtime, time_n};

const RECORDS: usize = 1000;

/// Seeds `RECORDS` profiles; their revisions, by index.
async fn seed(ds: &dyn Datastore) -> Vec<Revision> {
    let mut revisions = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let mut p = Profile::new(format!("user{i}"));
        p.id = ProfileId::new(format!("p{i}"));
        revisions.push(
            ds.profiles()
                .put(p, Precondition::Any)
                .await
                .unwrap()
                .revision,
        );
    }
    revisions
}

const RUNS: usize = 100;

/// One side: a store, its revisions and runs, and where it is.
struct Side {
    ds: Arc<dyn Datastore>,
    revisions: Vec<Revision>,
    runs: Vec<RunId>,
    next: usize,
    n: u64,
}

impl Side {
    async fn new(ds: Arc<dyn Datastore>) -> Side {
        let revisions = seed(&*ds).await;
        let mut w = Workflow::new("bench-dataset", "p0");
        w.id = WorkflowId::new("bench-workflow");
        ds.workflows().put(w, Precondition::Any).await.unwrap();
        let mut runs = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let run = Run::new("bench-workflow", vec![StepRun::new("step", "transform")]);
            runs.push(ds.runs().create(run).await.unwrap().value.id);
        }
        Side {
            ds,
            revisions,
            runs,
            next: 0,
            n: 0,
        }
    }

    async fn event(&mut self) {
        self.n += 1;
        let run = &self.runs[self.n as usize % RUNS];
        let event = RunEvent::new("print", serde_json::json!({"line": self.n}));
        self.ds.runs().append_event(run, 0, event).await.unwrap();
    }

    async fn put(&mut self) {
        let i = self.next % RECORDS;
        self.next += 1;
        self.n += 1;
        let mut p = Profile::new(format!("user{i}"));
        p.id = ProfileId::new(format!("p{i}"));
        p.name = format!("edit {}", self.n);
        let v = self
            .ds
            .profiles()
            .put(p, Precondition::MustBeAt(self.revisions[i]))
            .await
            .unwrap();
        self.revisions[i] = v.revision;
    }
}

fn bench(
    rt: &tokio::runtime::Runtime,
    name: &str,
    on: Arc<dyn Datastore>,
    off: Arc<dyn Datastore>,
) -> Vec<Measured> {
    let mut on = rt.block_on(Side::new(on));
    let mut off = rt.block_on(Side::new(off));
    vec![
        compare(
            &format!("{name} put"),
            &mut |n| time_n(n, || rt.block_on(on.put())),
            &mut |n| time_n(n, || rt.block_on(off.put())),
        ),
        compare(
            &format!("{name} event"),
            &mut |n| time_n(n, || rt.block_on(on.event())),
            &mut |n| time_n(n, || rt.block_on(off.event())),
        ),
    ]
}

fn main() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut measured = Vec::new();

    let memory = |history| {
        datastore_memory::open_with(datastore_memory::MemoryConfig {
            history,
            ..Default::default()
        })
    };
    measured.extend(bench(
        &rt,
        "memory",
        memory(HistoryPolicy::default()),
        memory(HistoryPolicy::off()),
    ));

    let rocks = |name: &str, history| {
        let mut config = datastore_rocks::RocksConfig::new(dir.path().join(name));
        config.history = history;
        datastore_rocks::open(config).unwrap()
    };
    measured.extend(bench(
        &rt,
        "rocksdb",
        rocks("on", HistoryPolicy::default()),
        rocks("off", HistoryPolicy::off()),
    ));

    let sqlite = |name: &str, history| {
        let mut config = datastore_sql::SqlConfig::new(format!(
            "sqlite://{}",
            dir.path().join(format!("{name}.db")).display()
        ));
        config.history = history;
        rt.block_on(datastore_sql::open(config)).unwrap()
    };
    measured.extend(bench(
        &rt,
        "sqlite",
        sqlite("on", HistoryPolicy::default()),
        sqlite("off", HistoryPolicy::off()),
    ));

    let pg_url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schemas = ["bench_history_on", "bench_history_off"];
    let pg = |schema: &str, history| {
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&pg_url).await.ok()?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            )))
            .execute(&mut conn)
            .await
            .ok()?;
            let mut config = datastore_sql::SqlConfig::new(&pg_url);
            config.schema = Some(schema.to_string());
            config.history = history;
            datastore_sql::open(config).await.ok()
        })
    };
    match (
        pg(schemas[0], HistoryPolicy::default()),
        pg(schemas[1], HistoryPolicy::off()),
    ) {
        (Some(on), Some(off)) => measured.extend(bench(&rt, "postgres", on, off)),
        _ => eprintln!("postgres skipped: no server at {pg_url}"),
    }
    print_table_as(
        "put with history on against off (one writer, durable)",
        ["history on", "history off"],
        &measured,
    );
}
