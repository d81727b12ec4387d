//! Tables, columns and the SQL of scans: derived from each kind's
//! `IndexDef`s, which the migrations mirror (a test checks they agree).

use datastore_core::{Direction, FeedFilter, FieldType, IndexEntry, IndexValue, Kind, Scan};

use crate::driver::{Dialect, Value};

/// The table of a kind (`ds_<store>`, see [`Kind::table`]).
pub fn table(kind: Kind) -> &'static str {
    kind.table()
}

/// Replaces a stored record of `kind` by key. Parameters: revision,
/// updated (microseconds), body, actor, each of [`columns`], key.
pub(crate) fn update_sql(dialect: Dialect, kind: Kind) -> String {
    let sets: String = columns(kind)
        .iter()
        .map(|(c, _)| format!(", {c} = ?"))
        .collect();
    format!(
        "UPDATE {} SET revision = ?, stored_updated = ?, body = {}, actor = ?{sets} WHERE key = ?",
        table(kind),
        dialect.body_param(),
    )
}

/// Inserts `rows` records of `kind` in one statement. Parameters, row by
/// row: key, revision, created, updated (microseconds), body, actor, each
/// of [`columns`].
pub(crate) fn insert_sql(dialect: Dialect, kind: Kind, rows: usize) -> String {
    let cols = columns(kind);
    let names: String = cols.iter().map(|(c, _)| format!(", {c}")).collect();
    let row = format!(
        "(?, ?, ?, ?, {}, ?{})",
        dialect.body_param(),
        ", ?".repeat(cols.len())
    );
    format!(
        "INSERT INTO {} (key, revision, stored_created, stored_updated, body, actor{names}) VALUES {}",
        table(kind),
        vec![row; rows].join(", ")
    )
}

/// Inserts the rows of `unnest` (PostgreSQL's `UNNEST` over one array a
/// column, see [`crate::driver::Columns`]) as records of `kind`: one
/// statement, the same text, whatever the number of rows. Columns as
/// [`insert_sql`]'s parameters.
pub(crate) fn insert_unnest_sql(kind: Kind, unnest: &str) -> String {
    let names: String = columns(kind)
        .iter()
        .map(|(c, _)| format!(", {c}"))
        .collect();
    format!(
        "INSERT INTO {} (key, revision, stored_created, stored_updated, body, actor{names}) \
         SELECT key, revision, stored_created, stored_updated, CAST(body AS JSONB), actor{names} \
         FROM {unnest} AS u(key, revision, stored_created, stored_updated, body, actor{names})",
        table(kind)
    )
}

/// Parameters of one inserted row of `kind` (see [`insert_sql`]).
pub(crate) fn insert_width(kind: Kind) -> usize {
    6 + columns(kind).len()
}

/// Deletes `keys` records of `kind` by key, returning each deleted row's
/// key and body (for its parent). Parameters: the keys.
pub(crate) fn delete_sql(dialect: Dialect, kind: Kind, keys: usize) -> String {
    format!(
        "DELETE FROM {} WHERE key IN ({}) RETURNING key, {}",
        table(kind),
        vec!["?"; keys].join(", "),
        dialect.body_column()
    )
}

/// Revision and first-write time of `keys` records of `kind`.
/// Parameters: the keys.
pub(crate) fn current_sql(kind: Kind, keys: usize) -> String {
    format!(
        "SELECT key, revision, stored_created FROM {} WHERE key IN ({})",
        table(kind),
        vec!["?"; keys].join(", ")
    )
}

/// Inserts `rows` versions into the history. Parameters, row by row:
/// kind, key, revision, op, at (microseconds), actor, body.
pub(crate) fn insert_versions_sql(rows: usize) -> String {
    format!(
        "INSERT INTO ds_history (kind, key, revision, op, at, actor, body) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?)"; rows].join(", ")
    )
}

/// Inserts the rows of `unnest` (see [`insert_unnest_sql`]) as versions;
/// columns as [`insert_versions_sql`]'s parameters.
pub(crate) fn insert_versions_unnest_sql(unnest: &str) -> String {
    format!(
        "INSERT INTO ds_history (kind, key, revision, op, at, actor, body) SELECT * FROM {unnest}"
    )
}

/// A page of one record's versions: parameters kind, key, then (when
/// `after`) the revision to continue from, then the limit. The primary key
/// (kind, key, revision) serves it, so a deep page costs what the first does.
pub fn history_sql(direction: Direction, after: bool) -> String {
    let (op, dir) = match direction {
        Direction::Asc => (">", "ASC"),
        Direction::Desc => ("<", "DESC"),
    };
    let after = if after {
        format!(" AND revision {op} ?")
    } else {
        String::new()
    };
    format!(
        "SELECT revision, op, at, actor, body FROM ds_history \
         WHERE kind = ? AND key = ?{after} ORDER BY revision {dir} LIMIT ?"
    )
}

/// Raises `rows` named counters, each to a value if it is lower (never
/// lowers one); the names must differ. Parameters, row by row: name, value.
pub(crate) fn raise_counters_sql(rows: usize) -> String {
    format!(
        "INSERT INTO ds_counters (name, value) VALUES {} \
         ON CONFLICT (name) DO UPDATE SET value = CASE WHEN excluded.value > ds_counters.value \
         THEN excluded.value ELSE ds_counters.value END",
        vec!["(?, ?)"; rows].join(", ")
    )
}

/// The indexed columns of a kind, in a fixed order (first appearance in its indexes).
pub fn columns(kind: Kind) -> Vec<(&'static str, FieldType)> {
    let mut out: Vec<(&'static str, FieldType)> = Vec::new();
    for def in kind.indexes() {
        for f in def.fields {
            if !out.iter().any(|(n, _)| *n == f.name) {
                out.push((f.name, f.ty));
            }
        }
    }
    out
}

/// An index value as a column value. A missing optional value is the
/// smallest integer, so it sorts first as it does everywhere else.
pub(crate) fn encode(value: &IndexValue, ty: FieldType) -> Value {
    match (value, ty) {
        (IndexValue::Null, FieldType::Str) => Value::Text(String::new()),
        (IndexValue::Null, _) => Value::Int(i64::MIN),
        (IndexValue::Bool(b), _) => Value::Int(i64::from(*b)),
        (IndexValue::Int(i), _) => Value::Int(*i),
        (IndexValue::Str(s), _) => Value::Text(s.clone()),
    }
}

/// The column values of a record with these index entries; a column no
/// entry sets (a sparse index the record is not in) is NULL.
pub(crate) fn column_values(kind: Kind, entries: &[IndexEntry]) -> Vec<Value> {
    columns(kind)
        .into_iter()
        .map(|(name, ty)| {
            let found = entries.iter().find_map(|e| {
                let def = kind.index(e.index)?;
                let pos = def.fields.iter().position(|f| f.name == name)?;
                e.values.get(pos)
            });
            match (found, ty) {
                (Some(v), ty) => encode(v, ty),
                (None, FieldType::Str) => Value::NullText,
                (None, _) => Value::NullInt,
            }
        })
        .collect()
}

/// The feed read after a cursor: the compaction point, then up to a limit
/// of changes after the cursor matching `filter`, in one statement so both
/// come from one snapshot. Parameters: the cursor, the filter's kinds, ids
/// and parents, the limit. The feed's (key, seq) and (parent, seq) indexes
/// serve a filter naming ids or parents.
pub(crate) fn changes_sql(filter: &FeedFilter) -> (String, Vec<Value>) {
    let mut conditions = String::from("c.seq > ?");
    let mut args = Vec::new();
    let list = |n: usize| vec!["?"; n].join(", ");
    if !filter.kinds.is_empty() {
        conditions.push_str(&format!(" AND c.kind IN ({})", list(filter.kinds.len())));
        args.extend(
            filter
                .kinds
                .iter()
                .map(|k| Value::Text(k.as_str().to_string())),
        );
    }
    let mut either = Vec::new();
    if !filter.ids.is_empty() {
        either.push(format!("c.key IN ({})", list(filter.ids.len())));
        args.extend(filter.ids.iter().map(|id| Value::Text(id.clone())));
    }
    if !filter.parents.is_empty() {
        either.push(format!("c.parent IN ({})", list(filter.parents.len())));
        args.extend(filter.parents.iter().map(|p| Value::Text(p.clone())));
    }
    if !either.is_empty() {
        conditions.push_str(&format!(" AND ({})", either.join(" OR ")));
    }
    let sql = format!(
        "SELECT m.value, c.seq, c.kind, c.key, c.op, c.revision, c.at, c.parent, c.actor FROM ds_meta m \
         LEFT JOIN ds_changes c ON {conditions} WHERE m.name = 'compacted_through' ORDER BY c.seq LIMIT ?"
    );
    (sql, args)
}

/// The columns every record select reads, in order.
pub(crate) fn record_columns(dialect: Dialect) -> String {
    format!(
        "key, revision, stored_created, stored_updated, {}, actor",
        dialect.body_column()
    )
}

/// The SQL and parameters of a scan. Equality on the prefix fields, then a
/// row-value comparison on the remaining fields and the key against the
/// cursor position, ordered the same way: the index serves both, so a page
/// deep in a list costs what the first does.
pub(crate) fn scan_sql(dialect: Dialect, kind: Kind, scan: &Scan) -> (String, Vec<Value>) {
    let (fields, sparse): (Vec<(&str, FieldType)>, bool) =
        match scan.index.and_then(|i| kind.index(i)) {
            Some(def) => (
                def.fields.iter().map(|f| (f.name, f.ty)).collect(),
                def.sparse,
            ),
            None => (Vec::new(), false),
        };
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    let k = scan.prefix.len().min(fields.len());
    for ((name, ty), v) in fields.iter().zip(&scan.prefix) {
        conditions.push(format!("{name} = ?"));
        args.push(encode(v, *ty));
    }
    if sparse {
        conditions.push(format!("{} IS NOT NULL", fields[0].0));
    }
    let mut rest: Vec<&str> = fields[k..].iter().map(|(n, _)| *n).collect();
    rest.push("key");
    if let Some(after) = &scan.after {
        let op = match scan.direction {
            Direction::Asc => ">",
            Direction::Desc => "<",
        };
        let marks = vec!["?"; rest.len()].join(", ");
        conditions.push(format!("({}) {op} ({marks})", rest.join(", ")));
        for ((_, ty), v) in fields[k..].iter().zip(after.values.iter().skip(k)) {
            args.push(encode(v, *ty));
        }
        args.push(Value::Text(after.id.clone()));
    }
    let dir = match scan.direction {
        Direction::Asc => "",
        Direction::Desc => " DESC",
    };
    let order: Vec<String> = rest.iter().map(|c| format!("{c}{dir}")).collect();
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM {}{where_clause} ORDER BY {} LIMIT ?",
        record_columns(dialect),
        table(kind),
        order.join(", ")
    );
    args.push(Value::Int(scan.limit as i64));
    (sql, args)
}

/// The statement a scan runs, with `?` markers, and how many parameters it
/// takes (`postgres` picks the dialect): what to EXPLAIN when checking that
/// a page is an index search (the crate's plan tests do).
pub fn scan_statement(postgres: bool, kind: Kind, scan: &Scan) -> (String, usize) {
    let dialect = if postgres {
        Dialect::Postgres
    } else {
        Dialect::Sqlite
    };
    let (sql, args) = scan_sql(dialect, kind, scan);
    (sql, args.len())
}

/// The filtered feed read a SQL store makes for `filter`, with `?` markers, and
/// the values of its filter parameters in order (between the cursor and the
/// limit): what to EXPLAIN when checking that a filtered read searches the
/// feed's indexes (the crate's plan tests do).
pub fn changes_statement(filter: &FeedFilter) -> (String, Vec<String>) {
    let (sql, args) = changes_sql(filter);
    let values = args
        .into_iter()
        .map(|v| match v {
            Value::Text(t) => t,
            _ => String::new(),
        })
        .collect();
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore_core::Position;

    #[test]
    fn scan_uses_prefix_equality_and_a_row_comparison() {
        let scan = Scan {
            index: Some("owner_status"),
            prefix: vec![IndexValue::str("alice"), IndexValue::str("running")],
            after: Some(Position {
                values: vec![
                    IndexValue::str("alice"),
                    IndexValue::str("running"),
                    IndexValue::Int(7),
                ],
                id: "r1".into(),
            }),
            direction: Direction::Desc,
            limit: 10,
        };
        let (sql, args) = scan_sql(Dialect::Sqlite, Kind::Run, &scan);
        assert!(
            sql.contains("WHERE owner_id = ? AND status = ? AND (created, key) < (?, ?)"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY created DESC, key DESC LIMIT ?"),
            "{sql}"
        );
        assert_eq!(args.len(), 5);
    }

    #[test]
    fn sparse_indexes_skip_records_not_in_them() {
        let scan = Scan {
            index: Some("active"),
            prefix: vec![],
            after: None,
            direction: Direction::Asc,
            limit: 10,
        };
        let (sql, _) = scan_sql(Dialect::Postgres, Kind::Workflow, &scan);
        assert!(sql.contains("WHERE active_created IS NOT NULL"), "{sql}");
    }
}
