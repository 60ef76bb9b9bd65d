//! The database, behind one boundary: SQLite in one file (the default) or PostgreSQL
//! (`database.url`), each engine in a folder of its own with its connections, writer and
//! migrations ([`sqlite`], [`postgres`]), both writers on one group-commit protocol
//! ([`batch`]); one module per table family whose statements run on either ([`db`]).

mod batch;
mod error;
mod postgres;
mod sqlite;

pub mod audit;
pub mod change_counter;
mod copy;
pub mod db;
pub mod failures;
pub mod leases;
pub mod outbox;
pub mod secrets;
pub mod sessions;
pub mod tokens;
pub mod users;

pub use error::{Cause, Constraint, Result, StoreError};
pub use sqlite::in_use as sqlite_in_use;

use std::{path::Path, time::Duration};

pub use copy::Counts;
pub use db::{Backend, Tx};

tokio::task_local! {
    /// In a request on PostgreSQL: the change counter as the request read it, until it writes.
    static REQUEST_COUNTER: std::cell::Cell<Option<i64>>;
}

/// Runs `f` as one request: on PostgreSQL the change counter is read once in it (or with the
/// limits' read, [`Store::failures`]), and again only after a write of its own,
/// instead of at every look at what is kept in memory. A request sees the database as of its
/// start: one that begins after another node's commit sees that commit.
pub async fn per_request<F: std::future::Future>(f: F) -> F::Output {
    REQUEST_COUNTER.scope(std::cell::Cell::new(None), f).await
}

/// The database the server and the command line work on.
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl Store {
    /// Opens (creating the file and its folder when missing) and migrates the SQLite database at
    /// `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            engine: Engine::Sqlite(sqlite::Sqlite::open(path)?),
        })
    }

    /// Opens the existing SQLite database at `path` to read it only, unmigrated: for the
    /// commands that only read, where the file or its folder cannot be written.
    pub fn open_read_only(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            engine: Engine::Sqlite(sqlite::Sqlite::open_read_only(path)?),
        })
    }

    /// Whether the SQLite database at `path` (or its folder) cannot be written.
    pub fn sqlite_not_writable(path: &Path) -> bool {
        sqlite::not_writable(path).is_some()
    }

    /// Connects to the PostgreSQL database at `url` and migrates it. The synchronous client
    /// blocks on a runtime of its own, which it may not do on a thread that drives asynchronous
    /// tasks (the server's start): it connects on a thread of its own.
    pub fn connect(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let postgres = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("lodge-pg-connect".into())
                .spawn_scoped(scope, || postgres::Postgres::connect(url, ca_file))
                .map_err(anyhow::Error::from)?
                .join()
                .map_err(|_| anyhow::anyhow!("connecting to PostgreSQL panicked"))?
        })?;
        Ok(Self {
            engine: Engine::Postgres(postgres),
        })
    }

    /// The database the settings name: PostgreSQL at `database.url` when it is set, else the
    /// SQLite file at `database.path`.
    pub fn from_settings(settings: &crate::config::DatabaseSettings) -> anyhow::Result<Self> {
        let ca_file = Some(settings.ca_file.as_path()).filter(|p| !p.as_os_str().is_empty());
        match settings.url.0.as_deref() {
            Some(url) => Self::connect(url, ca_file),
            None => Self::open(&settings.path),
        }
    }

    /// Whether other nodes may work on this database at the same time (PostgreSQL): then the
    /// tasks one node runs for all take a lease, and failed logins are counted in the database.
    pub fn shares_with_other_nodes(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// The SQLite database's file, when the database is one.
    pub fn file(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(s) => Some(s.path()),
            Engine::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match &self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where the database is, for messages: the file, or the server and database name (never
    /// a password).
    pub fn describe(&self) -> String {
        match &self.engine {
            Engine::Sqlite(s) => format!("the database at {}", s.path().display()),
            Engine::Postgres(p) => p.describe(),
        }
    }

    /// A pooled SQLite connection, for tests that look at its settings.
    pub fn sqlite_connection(
        &self,
    ) -> Result<r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager>> {
        match &self.engine {
            Engine::Sqlite(s) => s.conn(),
            Engine::Postgres(_) => Err(StoreError::Invalid("the database is not SQLite".into())),
        }
    }

    /// SQLite's write-ahead log index header now (`sqlite::Sqlite::log_header`), for the
    /// benchmark of what a request reads; `None` on PostgreSQL.
    pub fn log_header(&self) -> Option<[u8; 96]> {
        match &self.engine {
            Engine::Sqlite(s) => s.log_header(),
            Engine::Postgres(_) => None,
        }
    }

    /// The writer's batch sizes and commit times.
    pub fn writer_metrics(&self) -> &crate::metrics::WriterMetrics {
        match &self.engine {
            Engine::Sqlite(s) => s.writer_metrics(),
            Engine::Postgres(p) => p.writer_metrics(),
        }
    }

    /// The change counter now (`store::change_counter`): what the cache of sessions and tokens
    /// (`auth::cache`) checks before every use. SQLite's is known without a statement while no
    /// commit happened; PostgreSQL's is read at every call, since another node may have
    /// committed.
    pub async fn change_counter(&self) -> Result<i64> {
        match &self.engine {
            Engine::Sqlite(s) => s.change_counter(),
            Engine::Postgres(p) => {
                if let Ok(Some(read)) = REQUEST_COUNTER.try_with(std::cell::Cell::get) {
                    return Ok(read);
                }
                // The counter with no account's or address's failures: read with other requests'.
                let (read, ..) = p.look(None, None).await?;
                self.read_change_counter(read);
                Ok(read)
            }
        }
    }

    /// What an attempt to log in reads first (`store::failures::both`): the change counter, the
    /// account's shared failures and the address's; on PostgreSQL on the calling thread's
    /// asynchronous connection, as the change counter.
    pub async fn failures(
        &self,
        account: Option<[u8; 16]>,
        address: Option<String>,
    ) -> Result<failures::Both> {
        match &self.engine {
            Engine::Sqlite(s) => {
                s.read(|tx| failures::both(tx, account.as_ref(), address.as_deref()))
            }
            Engine::Postgres(p) => {
                let read = p.look(account, address).await?;
                // The request's check of what is kept in memory needs no read of its own now.
                self.read_change_counter(read.0);
                Ok(read)
            }
        }
    }

    /// Notes the change counter a statement of this request read along with something else
    /// (PostgreSQL; nothing outside a request or on SQLite).
    fn read_change_counter(&self, counter: i64) {
        if let Engine::Postgres(_) = &self.engine {
            let _ = REQUEST_COUNTER.try_with(|c| c.set(Some(counter)));
        }
    }

    /// Whether the database takes writes now: the writer commits an empty write within
    /// `patience`.
    pub async fn check_writable(&self, patience: Duration) -> Result<()> {
        tokio::time::timeout(patience, self.write(|_| Ok(())))
            .await
            .map_err(|_| StoreError::WriteTimedOut)?
    }

    /// Moves everything in SQLite's write-ahead log into the database file and empties the log
    /// (at a clean shutdown); nothing on PostgreSQL.
    pub fn checkpoint(&self) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(s) => s.checkpoint(),
            Engine::Postgres(_) => Ok(()),
        }
    }

    /// Runs `f` in the writer's next batch; answers once the batch is committed (durable), or
    /// with the error that kept it from being committed. `f` runs inside the write transaction,
    /// and writes of every process (every node) are serialised, so what it reads cannot change
    /// before it writes; it must not begin a transaction itself.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        self.write_then(f, |_| ()).await
    }

    /// [`Store::write`], and then `settled`, once, with `f`'s value if its batch was committed
    /// or `None` if it was not: on the writer thread, in the order of the commits, before the
    /// caller is answered.
    pub async fn write_then<T, F, C>(&self, f: F, settled: C) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
        C: FnOnce(Option<&T>) + Send + 'static,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.write_then(f, settled).await,
            Engine::Postgres(p) => {
                let written = p.write_then(f, settled).await;
                // Moved by the write: read again at the next look.
                let _ = REQUEST_COUNTER.try_with(|c| c.set(None));
                written
            }
        }
    }

    /// Runs a short read (an indexed lookup): on SQLite with a pooled connection on this thread
    /// (a few microseconds, less than handing it to another thread costs; in WAL mode a reader
    /// never waits for the writer), on PostgreSQL on the blocking pool, since it waits for the
    /// server.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx) -> Result<T> + Send + 'static,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.read(f),
            Engine::Postgres(p) => p.read(f).await,
        }
    }

    /// Runs `f` with a pooled connection on the blocking thread pool: for reads that may take
    /// long (lists, the audit log).
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx) -> Result<T> + Send + 'static,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.run(f).await,
            Engine::Postgres(p) => p.read(f).await,
        }
    }

    /// The bytes the database takes (SQLite's file and log; PostgreSQL's database).
    pub async fn size(&self) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(s) => Ok(s.size()),
            Engine::Postgres(p) => p.size().await,
        }
    }

    /// Copies the live database to a new file at `to` (SQLite's online backup); on PostgreSQL,
    /// says to use `pg_dump`.
    pub fn backup_to(&self, to: &Path) -> anyhow::Result<()> {
        match &self.engine {
            Engine::Sqlite(s) => s.backup_to(to),
            Engine::Postgres(p) => anyhow::bail!(
                "the database is PostgreSQL ({}): back it up with PostgreSQL's own tools, for \
                 example `pg_dump --format=custom --file=lodge.dump <database.url>`, or with the \
                 standby and archiving you run for it; `lodge backup` copies SQLite files only",
                p.describe()
            ),
        }
    }
}
