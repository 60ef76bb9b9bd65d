//! What the store's functions run their statements through, on either backend: a transaction
//! ([`Tx`]), the values bound ([`Value`]) and the rows read ([`Row`]).
//!
//! A statement is written once, in the SQL both engines share, with SQLite's numbered
//! parameters (`?1`); on PostgreSQL they become `$1` when the statement is first prepared on a
//! connection, and the prepared statement is kept for the connection's life, as rusqlite's cache
//! keeps SQLite's. Where the engines' SQL differs, [`Tx::pick`] chooses the text.

use std::{cell::RefCell, collections::HashMap};

use super::{Result, StoreError};

/// A value bound to a statement's parameter: anything both drivers can bind.
pub trait Value: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Value for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }

    fn postgres(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

/// A column's type as read: anything both drivers can read.
pub trait Column: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> {}

impl<T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>> Column for T {}

/// The values of a statement's parameters, in order: `args![user, name]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::store::db::Value),*] as &[&dyn $crate::store::db::Value]
    };
}

pub(crate) use args;

/// Which engine holds the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What statements run in: inside a write, the writer's transaction; inside a read, a pooled
/// connection (each statement its own snapshot unless [`Tx::snapshot`] holds one).
#[derive(Clone, Copy)]
pub enum Tx<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c PgConnection),
}

/// A row of a result.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    pub fn get<T: Column>(&self, index: usize) -> Result<T> {
        match self {
            Row::Sqlite(row) => Ok(row.get(index)?),
            Row::Postgres(row) => row.try_get(index).map_err(StoreError::from),
        }
    }

    /// A 32-byte digest (a blob of that length).
    pub fn digest(&self, index: usize) -> Result<[u8; 32]> {
        match self {
            Row::Sqlite(row) => Ok(row.get(index)?),
            Row::Postgres(row) => {
                let bytes: &[u8] = row.try_get(index)?;
                bytes.try_into().map_err(|_| {
                    StoreError::Invalid(format!(
                        "column {index} holds {} bytes where a digest has 32",
                        bytes.len()
                    ))
                })
            }
        }
    }
}

impl<'c> Tx<'c> {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    /// SQLite's connection, for tests that run SQL of their own.
    #[cfg(test)]
    pub fn sqlite(&self) -> &'c rusqlite::Connection {
        match self {
            Tx::Sqlite(conn) => conn,
            Tx::Postgres(_) => panic!("a SQLite connection was expected"),
        }
    }

    /// The statement text for this backend, where the engines' SQL differs.
    pub fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Tx::Sqlite(_) => sqlite,
            Tx::Postgres(_) => postgres,
        }
    }

    /// Runs a statement; gives how many rows it changed.
    pub fn execute(&self, sql: &'static str, args: &[&dyn Value]) -> Result<usize> {
        match self {
            Tx::Sqlite(conn) => Ok(conn
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))?),
            Tx::Postgres(conn) => conn.execute(sql, args),
        }
    }

    /// Runs an `INSERT` of one row and gives the new row's `id`: `sql` is the insert and
    /// `returning` the same statement ending in `RETURNING id`, which PostgreSQL runs. SQLite
    /// runs `sql` and reads its last row id: its `RETURNING` first writes the rows to a table
    /// of their own, which made a login's session insert cost three times as many instructions
    /// (`bench/instructions`).
    pub fn insert_id(
        &self,
        sql: &'static str,
        returning: &'static str,
        args: &[&dyn Value],
    ) -> Result<i64> {
        match self {
            Tx::Sqlite(conn) => {
                self.execute(sql, args)?;
                Ok(conn.last_insert_rowid())
            }
            Tx::Postgres(_) => self.query_one(returning, args, |r| r.get(0)),
        }
    }

    /// The first row of a query, read by `f`, or `None` when there is none.
    pub fn query_opt<T>(
        &self,
        sql: &'static str,
        args: &[&dyn Value],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Tx::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))?;
                match rows.next()? {
                    Some(row) => f(&Row::Sqlite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Tx::Postgres(conn) => match conn.query(sql, args)?.first() {
                Some(row) => f(&Row::Postgres(row)).map(Some),
                None => Ok(None),
            },
        }
    }

    /// The first row of a query that always gives one (a count, an aggregate), read by `f`.
    pub fn query_one<T>(
        &self,
        sql: &'static str,
        args: &[&dyn Value],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| StoreError::Invalid(format!("no row from: {sql}")))
    }

    /// Every row of a query, each read by `f`.
    pub fn query_all<T>(
        &self,
        sql: &'static str,
        args: &[&dyn Value],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))?;
                let mut found = Vec::new();
                while let Some(row) = rows.next()? {
                    found.push(f(&Row::Sqlite(row))?);
                }
                Ok(found)
            }
            Tx::Postgres(conn) => conn
                .query(sql, args)?
                .iter()
                .map(|row| f(&Row::Postgres(row)))
                .collect(),
        }
    }

    /// Runs `f` in one snapshot of the database, so that what it reads in several statements
    /// is of one moment: a read transaction, or the write's own transaction when already inside
    /// one.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Tx<'c>) -> Result<T>) -> Result<T> {
        match self {
            Tx::Sqlite(conn) => {
                if !conn.is_autocommit() {
                    return f(self);
                }
                let tx = conn.unchecked_transaction()?;
                let value = f(self)?;
                tx.commit()?;
                Ok(value)
            }
            Tx::Postgres(conn) => {
                if conn.in_transaction.get() {
                    return f(self);
                }
                conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                conn.in_transaction.set(true);
                let value = f(self);
                conn.in_transaction.set(false);
                conn.batch(if value.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
                value
            }
        }
    }
}

/// A connection to PostgreSQL with the statements prepared on it so far.
pub struct PgConnection {
    /// Taken only when dropped.
    client: RefCell<Option<postgres::Client>>,
    prepared: RefCell<HashMap<(usize, usize), postgres::Statement>>,
    /// Whether a transaction is open (the writer's, or a snapshot's).
    pub(super) in_transaction: std::cell::Cell<bool>,
    /// The pool's epoch when it was opened (`pg::Connector`).
    pub(super) epoch: u64,
    /// When it was opened: one opened before a request began may have lost its server since.
    pub(super) opened: std::time::Instant,
}

impl PgConnection {
    pub(super) fn new(client: postgres::Client, epoch: u64) -> Self {
        Self {
            client: RefCell::new(Some(client)),
            prepared: RefCell::default(),
            in_transaction: std::cell::Cell::new(false),
            epoch,
            opened: std::time::Instant::now(),
        }
    }

    /// The statement for `sql`, prepared on this connection at its first use. Keyed by the
    /// text's address: statements are constants.
    fn statement(&self, sql: &'static str) -> Result<postgres::Statement> {
        let key = (sql.as_ptr() as usize, sql.len());
        if let Some(statement) = self.prepared.borrow().get(&key) {
            return Ok(statement.clone());
        }
        let statement = self.client().prepare(&numbered(sql))?;
        self.prepared.borrow_mut().insert(key, statement.clone());
        Ok(statement)
    }

    fn execute(&self, sql: &'static str, args: &[&dyn Value]) -> Result<usize> {
        let statement = self.statement(sql)?;
        let args: Vec<_> = args.iter().map(|a| a.postgres()).collect();
        let changed = self.client().execute(&statement, &args)?;
        Ok(changed as usize)
    }

    fn query(&self, sql: &'static str, args: &[&dyn Value]) -> Result<Vec<postgres::Row>> {
        let statement = self.statement(sql)?;
        let args: Vec<_> = args.iter().map(|a| a.postgres()).collect();
        Ok(self.client().query(&statement, &args)?)
    }

    /// Runs statements without parameters (transaction control, migrations).
    pub fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.client().batch_execute(sql)?)
    }

    /// Whether the connection to the server is gone.
    pub fn is_closed(&self) -> bool {
        self.client
            .borrow()
            .as_ref()
            .is_none_or(postgres::Client::is_closed)
    }

    fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut().expect("the client is taken only when dropped")
        })
    }
}

/// The synchronous client drives its connection with a runtime of its own, which may not be
/// dropped on a thread that drives asynchronous tasks (an actix worker, a test's runtime): it is
/// dropped on a thread of its own there.
impl Drop for PgConnection {
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("lodge-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// `sql` with SQLite's numbered parameters (`?1`) written as PostgreSQL's (`$1`). Statements
/// hold no `?` in a literal.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?12)"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $12)"
        );
    }
}
