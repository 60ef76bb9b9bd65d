//! PostgreSQL (`database.url`): any number of Lodge nodes on one database. Reads run on the
//! blocking pool with pooled connections, but for the one every request makes (the change
//! counter, the shared failures), which runs on the calling thread's own asynchronous
//! connection ([`Postgres::read_one`]); writes go through one writer thread per node, which
//! commits what was queued while it was busy in one transaction (as SQLite's writer does) and
//! holds a transaction-level advisory lock for it, so that the writes of every node are
//! serialised as one server's are: what a write reads cannot change before it writes.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    str::FromStr as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use tokio::sync::oneshot;

use crate::store::{
    Cause, Constraint, Result, StoreError,
    batch::{self, Finish},
    db::{PgConnection, Tx, args},
};

/// Takes the advisory lock every node's writer holds for its batch's transaction. Advisory locks
/// are the database's, not a schema's: the lock names the schema Lodge's tables are in, so that
/// installations in two schemas of one database do not wait for each other.
const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(1282368615, hashtext(current_schema()))";
/// Takes the advisory lock held while the schema is migrated, so that nodes starting together
/// migrate once.
const MIGRATE_LOCK: &str = "SELECT pg_advisory_xact_lock(1282368616, hashtext(current_schema()))";

/// Connections each node's pool keeps at most, besides its writer's.
const POOL_SIZE: u32 = 16;

/// How long opening a connection may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema's versions, each the SQL that brings the one before to it. Numbered as SQLite's
/// migrations are, so that a version means the same tables on both: PostgreSQL starts at 12,
/// the SQLite schema it was first written for, in one step.
const MIGRATIONS: &[(i64, &str)] = &[
    (12, include_str!("migrations/012_schema.sql")),
    (
        13,
        include_str!("migrations/013_shared_limits_and_leases.sql"),
    ),
    (14, include_str!("migrations/014_token_lifetime.sql")),
];

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

/// How to open a connection: the parsed URL and the TLS set-up.
struct Connector {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Moved on when a statement finds the server gone: connections opened before are
    /// closed instead of used (their first use would fail).
    epoch: AtomicU64,
}

impl Connector {
    fn new(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            anyhow::anyhow!(
                "database.url is not a PostgreSQL URL ({e}): postgres://user@host:port/database"
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // libpq's default, `prefer`, falls back to plain text without a word when the server
        // offers no TLS, or when someone between says so: across a network a URL that names
        // no mode asks for TLS instead. On this host (loopback, a socket) `prefer` stays.
        if !url.contains("sslmode") && !only_this_host(&config) {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        if config.get_application_name().is_none() {
            config.application_name("lodge");
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject as _};
                let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
                    .and_then(|found| found.collect::<Result<_, _>>())
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read database.ca_file {}: {e}", path.display())
                    })?;
                if certificates.is_empty() {
                    anyhow::bail!(
                        "database.ca_file {} holds no PEM certificate",
                        path.display()
                    );
                }
                for certificate in certificates {
                    roots
                        .add(certificate)
                        .map_err(|e| anyhow::anyhow!("database.ca_file {}: {e}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .context("TLS for PostgreSQL")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            epoch: AtomicU64::new(0),
        })
    }

    fn connect(&self) -> Result<PgConnection> {
        let client = postgres::Config::from(self.config.clone()).connect(self.tls.clone())?;
        Ok(PgConnection::new(
            client,
            self.epoch.load(Ordering::Relaxed),
        ))
    }

    /// Where the database is, without user or password.
    fn describe(&self) -> String {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL database {} on {}",
            self.config.get_dbname().unwrap_or("(the user's)"),
            if hosts.is_empty() {
                "localhost".to_owned()
            } else {
                hosts.join(", ")
            }
        )
    }

    /// Notes a failure: when it shows the server gone, connections opened before it are not
    /// used again.
    fn saw<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(StoreError::Unreachable(_)) = &result {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Whether every host `config` names is this machine: a Unix socket, `localhost` or a loopback
/// address. A host's name says where the operator means to connect, so a `hostaddr` beside it
/// does not count; alone, it does.
fn only_this_host(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    let hosts = config.get_hosts();
    if hosts.is_empty() {
        // Only addresses, or libpq's default: the local socket, or localhost.
        return config
            .get_hostaddrs()
            .iter()
            .all(std::net::IpAddr::is_loopback);
    }
    hosts.iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    })
}

/// Opens the pool's connections.
struct Manager(Arc<Connector>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<PgConnection> {
        self.0.connect()
    }

    /// Checked at every checkout without a round trip: a connection is good while it is open
    /// and no statement has found the server gone since it was opened.
    fn is_valid(&self, conn: &mut PgConnection) -> Result<()> {
        if conn.is_closed() || conn.epoch < self.0.epoch.load(Ordering::Relaxed) {
            return Err(StoreError::Invalid(
                "a connection from before a failure".into(),
            ));
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed()
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let Some(code) = e.code().cloned() else {
            // No answer from the server: the connection failed or closed. Anything else without
            // a code is the client's (a value of the wrong type): a bug of ours.
            let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
            return match e.is_closed() || io {
                true => StoreError::Unreachable(e.into()),
                false => StoreError::Sqlite(e.into()),
            };
        };
        let e = Cause::from(e);
        match code {
            c if c == SqlState::UNIQUE_VIOLATION => StoreError::Constraint(Constraint::Unique, e),
            c if c == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::Constraint(Constraint::ForeignKey, e)
            }
            c if c.code().starts_with("23") => StoreError::Constraint(Constraint::Other, e),
            c if c == SqlState::DISK_FULL => StoreError::DiskFull(e),
            c if c == SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::ReadOnly(e),
            c if c == SqlState::LOCK_NOT_AVAILABLE
                || c == SqlState::T_R_SERIALIZATION_FAILURE
                || c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                StoreError::Locked(e)
            }
            // Connection failures, a server shutting down or starting, too many connections.
            c if c.code().starts_with("08")
                || c.code().starts_with("57P")
                || c == SqlState::TOO_MANY_CONNECTIONS =>
            {
                StoreError::Unreachable(e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
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

/// A failure to reach the server that the driver did not report itself (the pool's).
fn unreachable(why: String) -> StoreError {
    StoreError::Unreachable(Cause::Again(why))
}

/// Brings the schema to the newest version this binary knows, under an advisory lock; refuses a
/// database a newer Lodge has migrated.
fn migrate(conn: &PgConnection) -> anyhow::Result<()> {
    let tx = Tx::Postgres(conn);
    conn.batch("BEGIN")?;
    let outcome = (|| -> anyhow::Result<()> {
        conn.batch(MIGRATE_LOCK)?;
        conn.batch("CREATE TABLE IF NOT EXISTS lodge_schema (version BIGINT NOT NULL)")?;
        let version: i64 = tx
            .query_opt("SELECT version FROM lodge_schema", args![], |r| r.get(0))?
            .unwrap_or(0);
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if version > newest {
            anyhow::bail!(
                "the database was migrated by a newer version of Lodge (schema {version}, this \
                 one knows {newest}); run that version or restore a backup"
            );
        }
        if version == 0 {
            conn.batch("INSERT INTO lodge_schema (version) VALUES (0)")?;
        }
        for (to, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > version) {
            conn.batch(sql)
                .with_context(|| format!("migration to schema {to} failed"))?;
            tx.execute("UPDATE lodge_schema SET version = ?1", args![*to])?;
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => Ok(conn.batch("COMMIT")?),
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A queued write: runs inside the batch's transaction (or, given no connection, does not run)
/// and returns how to answer its caller once the batch has ended.
type Job = Box<dyn FnOnce(Option<&PgConnection>) -> Finish<StoreError> + Send>;

/// PostgreSQL's writer: the batch protocol's thread, with this engine's side of it.
#[derive(Clone)]
struct Writer {
    thread: batch::Writer<Job>,
}

impl Writer {
    fn start(
        conn: PgConnection,
        connector: Arc<Connector>,
        metrics: crate::metrics::WriterMetrics,
    ) -> std::io::Result<Self> {
        let thread = batch::Writer::start(move |queue| {
            let mut engine = PgBatch {
                conn: Some(conn),
                connector,
            };
            batch::run(&mut engine, &queue, &metrics);
        })?;
        Ok(Self { thread })
    }

    async fn write<T, F, C>(&self, f: F, settled: C) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
        C: FnOnce(Option<&T>) + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = conn.map(|conn| in_savepoint(conn, f));
            batch::finish(outcome, settled, answer)
        });
        self.thread.write(job, answered).await
    }
}

impl batch::BatchFailure for StoreError {
    fn for_each_write(&self) -> StoreError {
        self.again()
    }
}

/// PostgreSQL's side of a batch: the writer's connection, opened again when it broke.
struct PgBatch {
    conn: Option<PgConnection>,
    connector: Arc<Connector>,
}

impl PgBatch {
    fn conn(&self) -> &PgConnection {
        self.conn.as_ref().expect("begun")
    }
}

impl batch::Batch for PgBatch {
    type Job = Job;
    type Failure = StoreError;

    fn begin(&mut self) -> Result<()> {
        self.connector.saw(begin(&mut self.conn, &self.connector))
    }

    fn run(&mut self, job: Job) -> Finish<StoreError> {
        job(Some(self.conn()))
    }

    fn not_run(job: Job, why: &StoreError) {
        job(None)(Some(why))();
    }

    fn broken(&self) -> Option<StoreError> {
        let lost = || unreachable("the connection closed during a write".into());
        self.conn()
            .is_closed()
            .then(|| self.connector.saw::<()>(Err(lost())).unwrap_err())
    }

    fn commit(&mut self) -> Result<()> {
        let c = self.conn();
        let committed = c.batch("COMMIT");
        c.in_transaction.set(false);
        self.connector.saw(committed)
    }

    fn roll_back(&mut self) {
        if let Some(c) = self.conn.as_ref() {
            let _ = c.batch("ROLLBACK");
            c.in_transaction.set(false);
        }
    }

    fn describe(&self) -> String {
        format!("the {}", self.connector.describe())
    }
}

/// Opens the batch's transaction (connecting again first when the last connection broke) and
/// takes the write lock that serialises every node's writes. A connection the server dropped
/// while it was idle (a restart) looks open until this first statement: then it is opened
/// again and the transaction begun once more. That is safe because no write of the batch has
/// run yet; a connection lost later, or at the commit (whose outcome is then unknown), is never
/// retried: those writes are answered as failed.
fn begin(conn: &mut Option<PgConnection>, connector: &Connector) -> Result<()> {
    let mut retried = false;
    loop {
        if conn.as_ref().is_none_or(PgConnection::is_closed) {
            *conn = None;
            *conn = Some(connector.connect()?);
            retried = true;
        }
        let c = conn.as_ref().expect("connected above");
        // In one round trip. Waiting as long as SQLite's busy timeout: a write lock another node
        // holds longer is refused as locked.
        c.in_transaction.set(true);
        match c.batch(&format!(
            "BEGIN; SET LOCAL lock_timeout = '5s'; {WRITE_LOCK}"
        )) {
            Err(StoreError::Unreachable(_)) if !retried => {
                c.in_transaction.set(false);
                *conn = None;
            }
            outcome => return outcome,
        }
    }
}

/// Runs `f` in a savepoint: kept when it succeeds, rolled back when it fails or panics.
fn in_savepoint<T>(conn: &PgConnection, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
    conn.batch("SAVEPOINT job")?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&Tx::Postgres(conn))))
        .unwrap_or_else(|_| Err(StoreError::WritePanicked));
    let undo = || conn.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job");
    if outcome.is_err() {
        undo()?;
        return outcome;
    }
    // A write that went on after a failed statement of its own (whose transaction PostgreSQL
    // then refuses to go on with) is undone, and the batch goes on without it.
    if let Err(e) = conn.batch("RELEASE SAVEPOINT job") {
        undo()?;
        return Err(e);
    }
    outcome
}
