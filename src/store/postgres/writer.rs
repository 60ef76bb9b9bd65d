//! PostgreSQL's writer: one thread a node on the batch protocol (`store::batch`), each batch one
//! transaction that holds the advisory lock every node's writer takes.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use tokio::sync::oneshot;

use super::connection::{Connector, unreachable};
use crate::store::{
    Result, StoreError,
    batch::{self, Finish},
    db::{PgConnection, Tx},
};

/// Takes the advisory lock every node's writer holds for its batch's transaction. Advisory locks
/// are the database's, not a schema's: the lock names the schema Lodge's tables are in, so that
/// installations in two schemas of one database do not wait for each other.
const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(1282368615, hashtext(current_schema()))";
/// A queued write: runs inside the batch's transaction (or, given no connection, does not run)
/// and returns how to answer its caller once the batch has ended.
type Job = Box<dyn FnOnce(Option<&PgConnection>) -> Finish<StoreError> + Send>;

/// PostgreSQL's writer: the batch protocol's thread, with this engine's side of it.
#[derive(Clone)]
pub(super) struct Writer {
    thread: batch::Writer<Job>,
}

impl Writer {
    pub(super) fn start(
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

    pub(super) async fn write<T, F, C>(&self, f: F, settled: C) -> Result<T>
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
