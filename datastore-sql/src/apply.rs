//! One commit's mutations, applied inside the writer's transaction in three
//! steps, so a large batch costs a few statements instead of a few per
//! record:
//!
//! 1. **Read** what the checks need: the revision and first-write time of
//!    every key the commit touches, one `SELECT ... WHERE key IN (...)` per
//!    kind. (A create reads nothing: the primary key refuses an existing
//!    key when the row is written. Nor does a requirement its caller saw
//!    hold at the head the commit starts from.)
//! 2. **Check and plan**, step by step in order, each seeing the ones
//!    before it: preconditions, references, revisions. Nothing is written
//!    yet, so a failed check leaves the transaction as it was.
//! 3. **Write**, in the commit's order, with consecutive inserts of a kind
//!    in one statement (SQLite: a multi-row `INSERT`; PostgreSQL: an
//!    `INSERT ... SELECT FROM UNNEST` of one array a column, whose text is
//!    the same for any number of rows), consecutive deletes of a kind in
//!    one `DELETE`, and the counters in one upsert. Unique indexes are the
//!    database's: a row they refuse fails the commit with the same error a
//!    single insert gives (see [`write_error`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use datastore_core::{
    Committed, DeleteRecord, Error, IndexEntry, Kind, Mutation, Precondition, PutRecord, ReadMark,
    Result, Revision, StoreName, check_precondition, unique_violation,
};

use crate::driver::{Columns, Dialect, Tx, Value, db_error};
use crate::engine::{micros, time};
use crate::schema::{self, column_values, table};
use crate::writer::Writer;

/// The most rows in one statement.
const ROWS_PER_STATEMENT: usize = 1_000;
/// The most parameters in one statement (SQLite allows 32,766, PostgreSQL
/// 65,535).
const PARAMS_PER_STATEMENT: usize = 30_000;
/// The most rows in one PostgreSQL `UNNEST` statement (a parameter a
/// column, so only memory bounds it).
pub(crate) const ROWS_PER_UNNEST: usize = 10_000;
/// The fewest rows PostgreSQL writes as `UNNEST` arrays; fewer go in one
/// multi-row `INSERT` as before (a group commit's feed rows, at most
/// [`crate::writer::MAX_GROUP_POSTGRES`], stay on that measured path).
pub(crate) const UNNEST_FROM: usize = 64;

/// A key's state during a commit: its revision and first-write time in
/// microseconds, or `None` when it does not exist.
type State = Option<(Revision, i64)>;

/// What the commit knows of the keys it touches, kind by kind.
#[derive(Default)]
struct Known(HashMap<Kind, HashMap<String, State>>);

impl Known {
    /// A key's state; a key never read (a create) is absent.
    fn get(&self, kind: Kind, key: &str) -> State {
        self.0
            .get(&kind)
            .and_then(|m| m.get(key))
            .copied()
            .flatten()
    }

    /// Whether the key was read or written in this commit.
    fn has(&self, kind: Kind, key: &str) -> bool {
        self.0.get(&kind).is_some_and(|m| m.contains_key(key))
    }

    fn set(&mut self, kind: Kind, key: String, state: State) {
        self.0.entry(kind).or_default().insert(key, state);
    }
}

/// A row to write: its key, its statement parameters and the index entries
/// (to name a refused unique index).
struct Row {
    key: String,
    args: Vec<Value>,
    index: Vec<IndexEntry>,
}

/// The history rows of a commit: seven parameters each (see
/// [`schema::insert_versions_sql`]).
#[derive(Default)]
struct Versions {
    args: Vec<Value>,
    first_key: Option<String>,
}

impl Versions {
    /// Adds the version a write leaves; `body` is `None` for a delete.
    fn push(&mut self, done: &Committed, body: Option<String>) {
        self.first_key.get_or_insert_with(|| done.key.clone());
        self.args.extend([
            Value::Text(done.kind.as_str().into()),
            Value::Text(done.key.clone()),
            Value::Int(done.revision.get() as i64),
            Value::Text(op_name(done.op).into()),
            Value::Int(micros(done.updated)),
            actor_value(done.actor.as_ref()),
            body.map_or(Value::NullText, Value::Text),
        ]);
    }

    /// Writes them, a thousand rows per statement (on PostgreSQL, many
    /// rows as arrays: [`ROWS_PER_UNNEST`] per statement).
    async fn insert(self, tx: &mut Tx, dialect: Dialect, wrote: &mut bool) -> Result<()> {
        let key = self.first_key.unwrap_or_default();
        let bad = |e| db_error(StoreName::Datastore, format!("history of {key}"), e);
        if dialect == Dialect::Postgres && self.args.len() >= 7 * UNNEST_FROM {
            let mut values = self.args.into_iter().peekable();
            while values.peek().is_some() {
                *wrote = true;
                let mut columns = Columns::default();
                for _ in 0..ROWS_PER_UNNEST {
                    let row: Vec<Value> = values.by_ref().take(7).collect();
                    if row.is_empty() {
                        break;
                    }
                    if columns.is_empty() {
                        columns = Columns::shaped_like(&row, ROWS_PER_UNNEST);
                    }
                    columns.push(row);
                }
                let sql = schema::insert_versions_unnest_sql(&columns.unnest());
                tx.fetch_columns(&sql, &columns, &[]).await.map_err(bad)?;
            }
            return Ok(());
        }
        for chunk in self.args.chunks(7 * ROWS_PER_STATEMENT) {
            *wrote = true;
            tx.execute(&schema::insert_versions_sql(chunk.len() / 7), chunk)
                .await
                .map_err(bad)?;
        }
        Ok(())
    }
}

/// An operation as the feed and history tables spell it.
pub(crate) fn op_name(op: datastore_core::ChangeOp) -> &'static str {
    match op {
        datastore_core::ChangeOp::Put => "put",
        datastore_core::ChangeOp::Delete => "delete",
    }
}

/// An actor as a column value (its text form, or NULL).
pub(crate) fn actor_value(actor: Option<&datastore_core::Actor>) -> Value {
    actor.map_or(Value::NullText, |a| Value::Text(a.to_string()))
}

/// The rows of a multi-row insert, as they were bound.
enum Held {
    /// Row after row, `.1` values each.
    Flat(Vec<Value>, usize),
    /// Column by column (PostgreSQL's arrays).
    Columns(Columns),
}

impl Held {
    /// Row `i`'s values.
    fn row(&self, i: usize) -> Vec<Value> {
        match self {
            Held::Flat(args, width) => args[i * width..(i + 1) * width].to_vec(),
            Held::Columns(columns) => columns.row(i),
        }
    }
}

/// One planned write.
enum Write {
    Insert(Kind, Row),
    Update(Kind, Row),
    /// A delete, with the index of its entry in the commit's outcomes (its
    /// feed entry takes the parent from the row the delete removes).
    Delete(Kind, String, usize),
}

impl Writer {
    /// Applies one commit's mutations in the transaction, numbering its
    /// writes after `head`; `wrote` becomes true once a statement that
    /// writes has run (a failure after that poisons the group's attempt).
    pub(crate) async fn apply(
        &self,
        tx: &mut Tx,
        head: &mut u64,
        now: DateTime<Utc>,
        mutations: Vec<Mutation>,
        wrote: &mut bool,
    ) -> Result<Vec<Committed>> {
        // A requirement its caller saw hold at this very head (nothing
        // written since, by any process or earlier in this group) is not
        // read again; see `Engine::read_mark`.
        let at = ReadMark(*head);
        let mut known = self.read_known(tx, &mutations, at).await?;
        let mut writes = Vec::new();
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        let mut committed = Vec::new();
        let mut versions = Versions::default();
        for m in mutations {
            match m {
                Mutation::Put(put) => committed.push(plan_put(
                    &mut known,
                    &mut writes,
                    &mut versions,
                    head,
                    now,
                    put,
                )?),
                Mutation::Delete(delete) => {
                    let slot = committed.len();
                    committed.push(plan_delete(
                        &mut known,
                        &mut writes,
                        &mut versions,
                        head,
                        now,
                        delete,
                        slot,
                    )?)
                }
                Mutation::Require(require) => {
                    let as_seen =
                        require.seen_at == Some(at) && !known.has(require.kind, &require.key);
                    if !as_seen {
                        let found = known.get(require.kind, &require.key).map(|s| s.0);
                        require.check(found)?
                    }
                }
                Mutation::RaiseCounter(raise) => {
                    let to = counters.entry(raise.name).or_default();
                    *to = (*to).max(raise.to);
                }
            }
        }
        self.write(tx, writes, &mut committed, wrote).await?;
        versions.insert(tx, self.dialect, wrote).await?;
        raise_counters(tx, counters, wrote).await?;
        Ok(committed)
    }

    /// Reads the state of every key whose first step in the commit needs
    /// it, one statement per kind (and per thousand keys). A requirement
    /// seen at `at` needs no read of its own.
    async fn read_known(&self, tx: &mut Tx, mutations: &[Mutation], at: ReadMark) -> Result<Known> {
        let mut wanted: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
        let mut seen: HashSet<(Kind, &str)> = HashSet::new();
        for m in mutations {
            let (kind, key, unread_create) = match m {
                Mutation::Put(p) => (
                    p.kind,
                    p.key.as_str(),
                    p.precondition == Precondition::MustNotExist,
                ),
                Mutation::Delete(d) => (d.kind, d.key.as_str(), false),
                Mutation::Require(r) if r.seen_at == Some(at) => continue,
                Mutation::Require(r) => (r.kind, r.key.as_str(), false),
                Mutation::RaiseCounter(_) => continue,
            };
            if seen.insert((kind, key)) && !unread_create {
                wanted.entry(kind).or_default().push(key);
            }
        }
        let mut known = Known::default();
        for (kind, keys) in wanted {
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let args: Vec<Value> = chunk.iter().map(|k| Value::Text(k.to_string())).collect();
                let bad = |e| db_error(kind.store(), chunk[0], e);
                let rows = tx
                    .fetch_all(&schema::current_sql(kind, chunk.len()), &args)
                    .await
                    .map_err(bad)?;
                for key in chunk {
                    known.set(kind, key.to_string(), None);
                }
                for r in rows {
                    let key = r.text(0).map_err(bad)?;
                    let state = (
                        Revision::new(r.int(1).map_err(bad)? as u64),
                        r.int(2).map_err(bad)?,
                    );
                    known.set(kind, key, Some(state));
                }
            }
        }
        Ok(known)
    }

    /// Runs the planned writes in order, consecutive inserts and deletes of
    /// a kind together; a delete's outcome gets the parent its row named.
    async fn write(
        &self,
        tx: &mut Tx,
        writes: Vec<Write>,
        committed: &mut [Committed],
        wrote: &mut bool,
    ) -> Result<()> {
        let mut writes = writes.into_iter().peekable();
        while let Some(write) = writes.next() {
            *wrote = true;
            match write {
                Write::Update(kind, row) => {
                    tx.execute(&schema::update_sql(self.dialect, kind), &row.args)
                        .await
                        .map_err(|e| write_error(kind, &row.key, &row.index, e))?;
                }
                Write::Insert(kind, row) => {
                    // PostgreSQL takes a long run as arrays (`insert`).
                    let most = match self.dialect {
                        Dialect::Postgres => ROWS_PER_UNNEST,
                        Dialect::Sqlite => (PARAMS_PER_STATEMENT / schema::insert_width(kind))
                            .min(ROWS_PER_STATEMENT),
                    };
                    let mut rows = vec![row];
                    while rows.len() < most
                        && matches!(writes.peek(), Some(Write::Insert(k, _)) if *k == kind)
                    {
                        if let Some(Write::Insert(_, row)) = writes.next() {
                            rows.push(row);
                        }
                    }
                    self.insert(tx, kind, rows).await?;
                }
                Write::Delete(kind, key, slot) => {
                    let mut keys = vec![(key, slot)];
                    while keys.len() < ROWS_PER_STATEMENT
                        && matches!(writes.peek(), Some(Write::Delete(k, ..)) if *k == kind)
                    {
                        if let Some(Write::Delete(_, key, slot)) = writes.next() {
                            keys.push((key, slot));
                        }
                    }
                    let args: Vec<Value> =
                        keys.iter().map(|(k, _)| Value::Text(k.clone())).collect();
                    let bad = |e| db_error(kind.store(), &keys[0].0, e);
                    let rows = tx
                        .fetch_all(&schema::delete_sql(self.dialect, kind, keys.len()), &args)
                        .await
                        .map_err(bad)?;
                    // A key is deleted at most once per statement: a
                    // re-create between two deletes is an insert between them.
                    let mut parents = HashMap::with_capacity(rows.len());
                    for r in rows {
                        let body = r.text(1).map_err(bad)?;
                        parents.insert(r.text(0).map_err(bad)?, kind.parent_of(body.as_bytes()));
                    }
                    for (key, slot) in keys {
                        committed[slot].parent = parents.remove(&key).flatten();
                    }
                }
            }
        }
        Ok(())
    }

    /// Inserts rows of one kind in one statement. Several rows go in with
    /// `ON CONFLICT DO NOTHING RETURNING key`, so a row a unique index
    /// refuses is known without aborting the transaction; that row is then
    /// inserted alone, and the database's refusal becomes the commit's
    /// error, exactly as for a single insert.
    async fn insert(&self, tx: &mut Tx, kind: Kind, rows: Vec<Row>) -> Result<()> {
        let one = schema::insert_sql(self.dialect, kind, 1);
        if let [row] = rows.as_slice() {
            return self
                .insert_one(tx, kind, &one, &row.key, &row.index, &row.args)
                .await;
        }
        let width = schema::insert_width(kind);
        let mut named = Vec::with_capacity(rows.len());
        let (inserted, held) = if self.dialect == Dialect::Postgres && rows.len() >= UNNEST_FROM {
            let mut columns = Columns::shaped_like(&rows[0].args, rows.len());
            for row in rows {
                columns.push(row.args);
                named.push((row.key, row.index));
            }
            let sql = format!(
                "{} ON CONFLICT DO NOTHING RETURNING key",
                schema::insert_unnest_sql(kind, &columns.unnest())
            );
            let inserted = tx.fetch_columns(&sql, &columns, &[]).await;
            (inserted, Held::Columns(columns))
        } else {
            let mut args = Vec::with_capacity(rows.len() * width);
            for row in rows {
                args.extend(row.args);
                named.push((row.key, row.index));
            }
            let sql = format!(
                "{} ON CONFLICT DO NOTHING RETURNING key",
                schema::insert_sql(self.dialect, kind, named.len())
            );
            (tx.fetch_all(&sql, &args).await, Held::Flat(args, width))
        };
        let inserted = inserted.map_err(|e| db_error(kind.store(), &named[0].0, e))?;
        if inserted.len() == named.len() {
            return Ok(());
        }
        let inserted: HashSet<String> = inserted.iter().filter_map(|r| r.text(0).ok()).collect();
        for (i, (key, index)) in named.iter().enumerate() {
            if !inserted.contains(key) {
                self.insert_one(tx, kind, &one, key, index, &held.row(i))
                    .await?;
            }
        }
        Err(Error::Backend {
            store: kind.store(),
            key: named[0].0.clone(),
            source: "a multi-row insert skipped rows that then inserted alone".into(),
        })
    }

    /// Inserts one row. A create is written without reading its key first,
    /// and SQLite names the first unique index a row breaks, which for a
    /// re-put of the same record can be a field's index rather than the
    /// key; so on SQLite, when a unique index refuses the row, an existing
    /// key is looked up and reported as `AlreadyExists` on the key, as
    /// PostgreSQL's primary key check does.
    async fn insert_one(
        &self,
        tx: &mut Tx,
        kind: Kind,
        sql: &str,
        key: &str,
        index: &[IndexEntry],
        args: &[Value],
    ) -> Result<()> {
        let Err(e) = tx.execute(sql, args).await else {
            return Ok(());
        };
        // PostgreSQL checks the primary key first, and its transaction
        // takes no statement after an error; SQLite's goes on.
        let refused = matches!(&e, sqlx::Error::Database(db) if db.is_unique_violation());
        if refused && self.dialect == Dialect::Sqlite {
            let found = tx
                .fetch_all(
                    &schema::current_sql(kind, 1),
                    &[Value::Text(key.to_string())],
                )
                .await
                .map_err(|e| db_error(kind.store(), key, e))?;
            if !found.is_empty() {
                return Err(Error::AlreadyExists {
                    store: kind.store(),
                    key: key.to_string(),
                });
            }
        }
        Err(write_error(kind, key, index, e))
    }
}

/// Checks a put against what is known and plans its row.
fn plan_put(
    known: &mut Known,
    writes: &mut Vec<Write>,
    versions: &mut Versions,
    head: &mut u64,
    now: DateTime<Utc>,
    mut put: PutRecord,
) -> Result<Committed> {
    let (kind, store) = (put.kind, put.kind.store());
    let current = known.get(kind, &put.key);
    check_precondition(
        kind,
        &put.key,
        put.precondition,
        current.map(|c| c.0),
        false,
    )?;
    let body = String::from_utf8(std::mem::take(&mut put.body))
        .map_err(|e| Error::invalid(store, &put.key, "record", e.to_string()))?;
    *head += 1;
    let revision = Revision::new(*head);
    let created = current.map_or(micros(now), |c| c.1);
    let index = std::mem::take(&mut put.index);
    let values = column_values(kind, &index);
    let key = put.key.clone();
    let created_at = time(store, &put.key, created)?;
    let done = Committed::put(&put, revision, created_at, now);
    if put.history {
        versions.push(&done, Some(body.clone()));
    }
    let actor = actor_value(put.actor.as_ref());
    let write = if current.is_some() {
        let mut args = vec![
            Value::Int(*head as i64),
            Value::Int(micros(now)),
            Value::Text(body),
            actor,
        ];
        args.extend(values);
        args.push(Value::Text(key.clone()));
        Write::Update(kind, Row { key, args, index })
    } else {
        let mut args = vec![
            Value::Text(key.clone()),
            Value::Int(*head as i64),
            Value::Int(created),
            Value::Int(micros(now)),
            Value::Text(body),
            actor,
        ];
        args.extend(values);
        Write::Insert(kind, Row { key, args, index })
    };
    writes.push(write);
    known.set(kind, put.key.clone(), Some((revision, created)));
    Ok(done)
}

/// Checks a delete against what is known and plans it.
fn plan_delete(
    known: &mut Known,
    writes: &mut Vec<Write>,
    versions: &mut Versions,
    head: &mut u64,
    now: DateTime<Utc>,
    delete: DeleteRecord,
    slot: usize,
) -> Result<Committed> {
    let (kind, key) = (delete.kind, &delete.key);
    let current = known.get(kind, key);
    check_precondition(kind, key, delete.precondition, current.map(|c| c.0), true)?;
    let created = current.map_or(micros(now), |c| c.1);
    *head += 1;
    writes.push(Write::Delete(kind, key.clone(), slot));
    known.set(kind, key.clone(), None);
    let created = time(kind.store(), key, created)?;
    let done = Committed::delete(&delete, Revision::new(*head), created, now, None);
    if delete.history {
        versions.push(&done, None);
    }
    Ok(done)
}

/// Raises the commit's counters, each to the highest value it asked for.
async fn raise_counters(
    tx: &mut Tx,
    counters: BTreeMap<String, u64>,
    wrote: &mut bool,
) -> Result<()> {
    let counters: Vec<(String, u64)> = counters.into_iter().collect();
    for chunk in counters.chunks(ROWS_PER_STATEMENT) {
        *wrote = true;
        let args: Vec<Value> = chunk
            .iter()
            .flat_map(|(name, to)| [Value::Text(name.clone()), Value::Int(*to as i64)])
            .collect();
        tx.execute(&schema::raise_counters_sql(chunk.len()), &args)
            .await
            .map_err(|e| db_error(StoreName::Kind(Kind::Run), &chunk[0].0, e))?;
    }
    Ok(())
}

/// A row write that failed: a unique index refusing the values is
/// `AlreadyExists` naming the index and values as `unique_violation` does
/// on every backend; the primary key refusing an existing key is
/// `AlreadyExists` naming the key.
fn write_error(kind: Kind, key: &str, index: &[IndexEntry], e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let table = table(kind);
        let violated = match db.constraint() {
            // PostgreSQL names the index: `ds_profiles_username_uq`.
            Some(name) => name
                .strip_prefix(table)
                .and_then(|r| r.strip_prefix('_'))
                .and_then(|r| r.strip_suffix("_uq"))
                .and_then(|name| kind.index(name)),
            // SQLite names the columns: `UNIQUE constraint failed:
            // ds_profiles.username`.
            None => {
                let columns: Vec<&str> = db
                    .message()
                    .rsplit(": ")
                    .next()
                    .unwrap_or_default()
                    .split(", ")
                    .filter_map(|c| c.strip_prefix(table)?.strip_prefix('.'))
                    .collect();
                kind.indexes().iter().find(|def| {
                    def.unique
                        && def.fields.len() == columns.len()
                        && def.fields.iter().zip(&columns).all(|(f, c)| f.name == *c)
                })
            }
        };
        if let Some(entry) = violated.and_then(|def| index.iter().find(|e| e.index == def.name)) {
            return unique_violation(kind, entry);
        }
        return Error::AlreadyExists {
            store: kind.store(),
            key: key.to_string(),
        };
    }
    db_error(kind.store(), key, e)
}
