//! SQLite only: the pool, the connection policy, the migrations and one module per table family.

pub mod audit;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

/// A failure of the database; never shown to clients, logged with its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task did not finish: {0}")]
    Task(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The pooled database: one file, every call off the async threads.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations are only ever appended: a released one never changes.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_initial.sql")),
        M::up(include_str!("migrations/002_audit.sql")),
    ])
}

/// Applied to every connection the pool opens.
fn init_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets the CLI and readers work beside the server; FULL makes every commit survive a
    // power cut, which the users, tokens and sessions written here need.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

impl Store {
    /// Opens (creating the file and its folder when missing) and migrates the database.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(init_connection);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        let mut conn = pool
            .get()
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        migrations().to_latest(&mut conn).map_err(|e| match e {
            rusqlite_migration::Error::MigrationDefinition(
                rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
            ) => anyhow::anyhow!(
                "the database at {} was written by a newer version of Lodge; run that version \
                 or restore a backup",
                path.display()
            ),
            e => anyhow::Error::new(e).context(format!(
                "cannot prepare the database at {} (is it a Lodge database?)",
                path.display()
            )),
        })?;
        Ok(Self { pool })
    }

    /// A pooled connection for synchronous callers (the command line, tests).
    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }
}
