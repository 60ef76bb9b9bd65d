//! `lodge migrate`: a SQLite database copied whole into an empty PostgreSQL one, rows with their
//! ids, in one transaction, and the rows of each table counted on both sides afterwards.

use anyhow::Context as _;

use super::{Engine, Store, db::Value};

/// How a column's values are read from SQLite and bound for PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
    Blob,
    /// An integer 0 or 1 in SQLite, a boolean in PostgreSQL.
    Bool,
}

use Kind::*;

/// A table's name, its columns, and its generated id column.
type Table = (
    &'static str,
    &'static [(&'static str, Kind)],
    Option<&'static str>,
);

/// Every table that holds something to keep, parents before children, with its columns and, for
/// tables whose ids PostgreSQL generates, the id column (its sequence is moved past the copied
/// ids). Not copied: `change_counter` and `leases` (each database's own), `lodge_schema`.
const TABLES: &[Table] = &[
    (
        "users",
        &[
            ("id", Int),
            ("user_id", Text),
            ("display_name", Text),
            ("role", Text),
            ("enabled", Bool),
            ("password_hash", Text),
            ("created_at", Int),
            ("last_login_at", Int),
            ("lock_lifted_at", Int),
        ],
        Some("id"),
    ),
    (
        "api_tokens",
        &[
            ("id", Int),
            ("user_id", Int),
            ("name", Text),
            ("digest", Blob),
            ("created_at", Int),
            ("expires_at", Int),
            ("last_used_at", Int),
            ("needs_admin", Bool),
            ("last_used_address", Text),
            ("grants", Text),
            ("generation", Int),
            ("previous_digest", Blob),
            ("grace_until", Int),
            ("expiry_notice", Int),
            ("lifetime", Text),
        ],
        Some("id"),
    ),
    (
        "sessions",
        &[
            ("id", Int),
            ("secret_digest", Blob),
            ("user_id", Int),
            ("provider", Text),
            ("token_id", Int),
            ("created_at", Int),
            ("last_seen_at", Int),
            ("address", Text),
            ("user_agent", Text),
            ("grants", Text),
            ("token_generation", Int),
        ],
        Some("id"),
    ),
    (
        "audit_events",
        &[
            ("id", Int),
            ("time", Int),
            ("kind", Text),
            ("success", Bool),
            ("user_id", Text),
            ("provider", Text),
            ("token_name", Text),
            ("address", Text),
            ("detail", Text),
        ],
        Some("id"),
    ),
    (
        "notify_outbox",
        &[
            ("seq", Int),
            ("id", Text),
            ("event", Text),
            ("time", Int),
            ("queued_at", Int),
            ("user_id", Text),
            ("token_name", Text),
            ("detail", Text),
            ("attempts", Int),
        ],
        Some("seq"),
    ),
    ("server_secrets", &[("name", Text), ("value", Blob)], None),
    (
        "account_failures",
        &[
            ("account", Blob),
            ("failures", Int),
            ("last", Int),
            ("locked_until", Int),
        ],
        None,
    ),
    (
        "address_failures",
        &[("address", Text), ("level", Real), ("at", Int)],
        None,
    ),
];

/// One value read, typed for binding.
enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
    Bool(Option<bool>),
}

impl Cell {
    fn read(row: &rusqlite::Row<'_>, at: usize, kind: Kind) -> rusqlite::Result<Self> {
        Ok(match kind {
            Int => Cell::Int(row.get(at)?),
            Real => Cell::Real(row.get(at)?),
            Text => Cell::Text(row.get(at)?),
            Blob => Cell::Blob(row.get(at)?),
            Bool => Cell::Bool(row.get(at)?),
        })
    }

    fn value(&self) -> &dyn Value {
        match self {
            Cell::Int(v) => v,
            Cell::Real(v) => v,
            Cell::Text(v) => v,
            Cell::Blob(v) => v,
            Cell::Bool(v) => v,
        }
    }
}

/// Each table's name and its rows counted in the source and the destination.
pub type Counts = Vec<(&'static str, i64, i64)>;

impl Store {
    /// Copies this SQLite database into `to`, an empty PostgreSQL database (refused when it
    /// holds a user), in one transaction; gives each table's rows as counted on both sides
    /// afterwards, and fails when any count differs. Run it with the server stopped: what the
    /// server writes after the copy has read the file is not in the copy.
    pub async fn copy_into(&self, to: &Store) -> anyhow::Result<Counts> {
        let Engine::Sqlite(from) = &self.engine else {
            anyhow::bail!("lodge migrate copies from a SQLite file");
        };
        if to.backend() != super::Backend::Postgres {
            anyhow::bail!("lodge migrate copies into PostgreSQL (a postgres:// URL)");
        }
        let users = to.read(super::users::count).await?;
        if users > 0 {
            anyhow::bail!(
                "the {} already holds {users} user(s): lodge migrate copies into an empty \
                 database only (create a new one, or drop Lodge's tables there)",
                to.describe()
            );
        }
        // Everything read in one read transaction: one moment of the file.
        let read = {
            let conn = from.conn()?;
            let snapshot = conn.unchecked_transaction()?;
            let mut tables = Vec::new();
            for (table, columns, _) in TABLES {
                let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
                let mut stmt = snapshot
                    .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
                    .with_context(|| format!("cannot read the table {table}"))?;
                let rows = stmt
                    .query_map([], |row| {
                        columns
                            .iter()
                            .enumerate()
                            .map(|(at, (_, kind))| Cell::read(row, at, *kind))
                            .collect::<rusqlite::Result<Vec<Cell>>>()
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .with_context(|| format!("cannot read the table {table}"))?;
                tables.push(rows);
            }
            snapshot.commit()?;
            tables
        };
        let copied: Vec<i64> = read.iter().map(|rows| rows.len() as i64).collect();
        to.write(move |tx| {
            for ((table, columns, id), rows) in TABLES.iter().zip(&read) {
                let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
                let places: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                // A statement per table, made here once: a one-time command, whose few texts
                // the connection's statement cache keys by address.
                let insert: &'static str = Box::leak(
                    format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        names.join(", "),
                        places.join(", ")
                    )
                    .into_boxed_str(),
                );
                for row in rows {
                    let values: Vec<&dyn Value> = row.iter().map(Cell::value).collect();
                    tx.execute(insert, &values)?;
                }
                if let Some(id) = id {
                    // The next id generated comes after the copied ones.
                    let restart: &'static str = Box::leak(
                        format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), \
                             (SELECT coalesce(max({id}), 0) + 1 FROM {table}), false)"
                        )
                        .into_boxed_str(),
                    );
                    tx.query_one(restart, &[], |_| Ok(()))?;
                }
            }
            Ok(())
        })
        .await
        .context("cannot write the copy")?;
        let mut counts = Vec::new();
        for ((table, ..), source) in TABLES.iter().zip(copied) {
            let count: &'static str =
                Box::leak(format!("SELECT count(*) FROM {table}").into_boxed_str());
            let there = to
                .read(move |tx| tx.query_one(count, &[], |r| r.get(0)))
                .await?;
            counts.push((*table, source, there));
        }
        if let Some((table, source, there)) = counts.iter().find(|(_, s, t)| s != t) {
            anyhow::bail!("the copy of {table} holds {there} rows where the file holds {source}");
        }
        Ok(counts)
    }
}
