//! PostgreSQL (`database.url`): any number of Lodge nodes on one database. Reads run on the
//! blocking pool with pooled connections, but for the one every request makes (the change
//! counter, the shared failures), which runs on the calling thread's own asynchronous
//! connection ([`Postgres::read_one`]); writes go through one writer thread per node, which
//! commits what was queued while it was busy in one transaction (as SQLite's writer does) and
//! holds a transaction-level advisory lock for it, so that the writes of every node are
//! serialised as one server's are: what a write reads cannot change before it writes.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;

mod connection;
mod writer;

use connection::{Connector, Manager, migrate, unreachable};
use writer::Writer;

use crate::store::{
    Result, StoreError,
    db::{Tx, args},
};

/// Connections each node's pool keeps at most, besides its writer's.
const POOL_SIZE: u32 = 16;

#[derive(Clone)]
pub(super) struct Postgres {
    pool: r2d2::Pool<Manager>,
    writer: Writer,
    connector: Arc<Connector>,
    writer_metrics: crate::metrics::WriterMetrics,
    /// Which of each thread's quick connections are this store's.
    id: u64,
    /// The reads of the shared failures and the change counter that requests wait for together.
    looks: Arc<Looks>,
}

/// What a request reads first, read once for the requests that wait for it together: for each
/// account and address at most one read is in flight, and the requests that come meanwhile wait
/// for the next one, which is sent when it ends. Each request's read is sent after the request
/// began, as fresh as if it had sent its own; under load one statement answers many requests.
#[derive(Default)]
struct Looks {
    by_key: Mutex<std::collections::HashMap<LookKey, Look>>,
}

/// The read of one account and address that requests wait for, not sent yet, and the turn that
/// the read in flight holds.
#[derive(Default)]
struct Look {
    next: Option<Arc<LookCell>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

type LookKey = (Option<[u8; 16]>, Option<String>);
type LookCell =
    tokio::sync::OnceCell<std::result::Result<crate::store::failures::Both, Arc<StoreError>>>;

/// Keys kept at most; beyond, the map starts afresh (a read in flight is not lost: its waiters
/// hold it).
const MAX_LOOKS: usize = 4096;

thread_local! {
    /// Each thread's asynchronous connections (one a store), for [`Postgres::read_one`]: driven
    /// by the thread's own runtime, shared by the requests the thread serves (tokio-postgres
    /// pipelines their statements on it).
    static QUICK: std::cell::RefCell<std::collections::HashMap<u64, Arc<Quick>>> =
        std::cell::RefCell::default();
}

/// An asynchronous connection and the statements prepared on it.
struct Quick {
    client: tokio_postgres::Client,
    opened: std::time::Instant,
    prepared: Mutex<std::collections::HashMap<(usize, usize), tokio_postgres::Statement>>,
}

impl Postgres {
    pub fn connect(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let connector = Arc::new(Connector::new(url, ca_file)?);
        let place = connector.describe();
        let first = connector
            .connect()
            .with_context(|| format!("cannot connect to the {place}"))?;
        migrate(&first).with_context(|| format!("cannot prepare the {place}"))?;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(2))
            .test_on_check_out(true)
            .connection_timeout(Duration::from_secs(10))
            // The pool's own failures to connect are the store's errors, said at each use.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(Manager(connector.clone()));
        let writer_metrics = crate::metrics::WriterMetrics::default();
        let writer = Writer::start(first, connector.clone(), writer_metrics.clone())
            .context("cannot start the database writer thread")?;
        static STORES: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            pool,
            writer,
            connector,
            writer_metrics,
            id: STORES.fetch_add(1, Ordering::Relaxed),
            looks: Arc::default(),
        })
    }

    pub fn describe(&self) -> String {
        self.connector.describe()
    }

    pub fn writer_metrics(&self) -> &crate::metrics::WriterMetrics {
        &self.writer_metrics
    }

    /// Runs `f` with a pooled connection on the blocking pool. A connection the server dropped
    /// (a restart, a failover) looks open until it is used: when `f` finds it gone, it runs once
    /// more on a connection opened since, which is safe for a read, as it changes nothing.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let connector = self.connector.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let once = || {
                let conn = pool.get().map_err(|e| unreachable(e.to_string()))?;
                let outcome = connector.saw(f(&Tx::Postgres(&conn)));
                match outcome {
                    // The failure moved the epoch on: the pool hands out no connection from
                    // before it, and one just opened that fails says the server is not there.
                    Err(StoreError::Unreachable(_)) if conn.opened < started => Ok(None),
                    outcome => outcome.map(Some),
                }
            };
            match once()? {
                Some(value) => Ok(value),
                None => once()?.ok_or_else(|| unreachable("the connection closed again".into())),
            }
        })
        .await
        .map_err(|e| StoreError::ReadFailed(e.to_string()))?
    }

    /// A read of one row that a request makes (the change counter, the shared failures), on this
    /// thread's asynchronous connection: no hand-over to the blocking pool, whose synchronous
    /// client costs a thread switch and a runtime of its own at each statement.
    pub async fn read_one<T: Send + 'static>(
        &self,
        sql: &'static str,
        args: &[&dyn crate::store::db::Value],
        f: fn(&crate::store::db::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let started = std::time::Instant::now();
        let quick = self.quick().await?;
        match self.read_on(&quick, sql, args, f).await {
            // A connection from before this call, dropped by the server since (a restart): once
            // more on a new one, as a read may be.
            Err(StoreError::Unreachable(_)) if quick.opened < started => {
                let quick = self.quick().await?;
                self.read_on(&quick, sql, args, f).await
            }
            outcome => outcome,
        }
    }

    /// [`Postgres::read_one`] on `quick`; a connection found gone is not used again.
    async fn read_on<T: Send + 'static>(
        &self,
        quick: &Quick,
        sql: &'static str,
        args: &[&dyn crate::store::db::Value],
        f: fn(&crate::store::db::Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let statement = quick.statement(sql).await;
        let outcome = match statement {
            Ok(statement) => {
                let args: Vec<_> = args.iter().map(|a| a.postgres()).collect();
                match quick.client.query_opt(&statement, &args).await {
                    Ok(Some(row)) => f(&crate::store::db::Row::Postgres(&row)).map(Some),
                    Ok(None) => Ok(None),
                    Err(e) => Err(StoreError::from(e)),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(StoreError::Unreachable(_)) = &outcome {
            QUICK.with(|q| q.borrow_mut().remove(&self.id));
        }
        self.connector.saw(outcome)
    }

    /// The change counter and the failures of an account and an address (`failures::both`), as
    /// of a moment after this call began: from a read another request registered after that, or
    /// from one this call registers ([`Looks`]).
    pub async fn look(
        &self,
        account: Option<[u8; 16]>,
        address: Option<String>,
    ) -> Result<crate::store::failures::Both> {
        let key = (account, address);
        let (cell, turn) = {
            let mut by_key = self.looks.by_key.lock().unwrap_or_else(|p| p.into_inner());
            if by_key.len() >= MAX_LOOKS && !by_key.contains_key(&key) {
                by_key.clear();
            }
            let look = by_key.entry(key.clone()).or_default();
            let cell = look.next.get_or_insert_with(Arc::default).clone();
            (cell, look.turn.clone())
        };
        let (account, address) = (key.0, key.1.clone());
        let read = cell
            .get_or_init(|| async {
                // After the read in flight: this one is sent after every request waiting for it
                // began. From now on, requests that come wait for the one after.
                let _turn = turn.lock().await;
                if let Some(look) = self
                    .looks
                    .by_key
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&key)
                    && look
                        .next
                        .as_ref()
                        .is_some_and(|next| Arc::ptr_eq(next, &cell))
                {
                    look.next = None;
                }
                self.read_one(
                    crate::store::failures::BOTH,
                    args![account.as_ref().map(|k| &k[..]), address.as_deref()],
                    crate::store::failures::both_from_row,
                )
                .await
                .and_then(|found| {
                    found.ok_or_else(|| {
                        StoreError::Invalid("the change counter's row is gone".into())
                    })
                })
                .map_err(Arc::new)
            })
            .await;
        read.clone().map_err(|e| e.again())
    }

    /// This thread's quick connection, opened at its first use or after it broke.
    async fn quick(&self) -> Result<Arc<Quick>> {
        let found = QUICK.with(|q| q.borrow().get(&self.id).cloned());
        if let Some(quick) = found.filter(|q| !q.client.is_closed()) {
            return Ok(quick);
        }
        let (client, connection) = self
            .connector
            .config
            .connect(self.connector.tls.clone())
            .await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes; the next use opens another.
            let _ = connection.await;
        });
        let quick = Arc::new(Quick {
            client,
            opened: std::time::Instant::now(),
            prepared: Mutex::default(),
        });
        QUICK.with(|q| q.borrow_mut().insert(self.id, quick.clone()));
        Ok(quick)
    }

    pub async fn write_then<T, F, C>(&self, f: F, settled: C) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
        C: FnOnce(Option<&T>) + Send + 'static,
    {
        self.writer.write(f, settled).await
    }

    /// The bytes the database takes on the server.
    pub async fn size(&self) -> Result<u64> {
        self.read(|tx| {
            tx.query_one(
                "SELECT pg_database_size(current_database())",
                args![],
                |r| r.get::<i64>(0),
            )
        })
        .await
        .map(|bytes| bytes.max(0) as u64)
    }
}

impl Quick {
    async fn statement(&self, sql: &'static str) -> Result<tokio_postgres::Statement> {
        let key = (sql.as_ptr() as usize, sql.len());
        let known = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(statement) = known {
            return Ok(statement);
        }
        let statement = self
            .client
            .prepare(&crate::store::db::numbered(sql))
            .await?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, statement.clone());
        Ok(statement)
    }
}
