//! The one writer: a thread with its own connection that commits every write queued while it was
//! busy in one transaction (group commit), with those queued while that transaction ran.
//!
//! With `synchronous = FULL` each commit waits for the disk; committing writes one by one capped
//! logins at the disk's flush rate, and writers on several pooled connections queued on SQLite's
//! lock with sleeps of milliseconds. Here each write runs in a savepoint of the batch's
//! transaction, so one that fails is rolled back alone, and none is answered before the commit
//! that holds it is on disk.

use std::{
    cell::Cell,
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::{Arc, Mutex, mpsc},
};

use rusqlite::{Connection, Statement};
use tokio::sync::oneshot;

use super::files::{LogHeader, LogIndex};
use crate::store::{
    Result, StoreError,
    batch::{self, Batch as _, Finish},
    change_counter,
    db::Tx,
};

thread_local! {
    /// On the writer thread, inside a batch: which stretch of the batch's transaction this is;
    /// 0 elsewhere. See [`stretch`].
    static STRETCH: Cell<u64> = const { Cell::new(0) };
    /// The last stretch begun on this thread.
    static LAST_STRETCH: Cell<u64> = const { Cell::new(0) };
}

/// Which stretch of a batch's transaction the calling thread is in, or 0 outside one (on
/// another thread, or between batches). A stretch begins with the batch and again whenever the
/// writer rolls a write back. Within one, only this connection's statements change the database,
/// and what a write undoes itself (to a savepoint of its own) it changed after that savepoint,
/// which `total_changes` counted: so what a write read at its end still holds for a later write
/// of the stretch while the connection's `total_changes` has not moved.
pub(in crate::store) fn stretch() -> u64 {
    STRETCH.get()
}

/// Begins a new stretch (`true`) or leaves the batch (`false`).
fn next_stretch(inside: bool) {
    let next = if inside { LAST_STRETCH.get() + 1 } else { 0 };
    if inside {
        LAST_STRETCH.set(next);
    }
    STRETCH.set(next);
}

/// A queued write: runs inside the batch's transaction (or, given no connection, does not run)
/// and returns how to answer its caller.
type Job = Box<dyn FnOnce(Option<Run<'_, '_>>) -> Finish<rusqlite::Error> + Send>;

/// What a write runs with: the writer's connection and its savepoint statements.
type Run<'a, 'c> = (&'a Connection, &'a mut Savepoints<'c>);

/// The statements that open and close each write's savepoint, prepared once for the writer's
/// connection: taken from rusqlite's statement cache they cost, at each use, a copy of their text
/// and two moves in the cache, about 1 % of a token login's CPU for the two of every write.
struct Savepoints<'c> {
    open: Statement<'c>,
    release: Statement<'c>,
    roll_back: Statement<'c>,
}

impl<'c> Savepoints<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            open: conn.prepare("SAVEPOINT job")?,
            release: conn.prepare("RELEASE job")?,
            roll_back: conn.prepare("ROLLBACK TO job")?,
        })
    }
}

/// Where the writer leaves, after each commit, the log's header that commit made and the change
/// counter it left (`Store::change_counter`): readers in this process then trust what they keep
/// without reading the counter, until the next commit of any process changes the header.
///
/// A header read after the commit could be another process's, committed in between, and paired
/// with this commit's counter it would hide that process's change. So the writer reads
/// `PRAGMA data_version`, which moves when another connection has committed, in the batch's
/// transaction (no other can commit then) and again after reading the header, and leaves the
/// pair only when it has not moved.
pub(in crate::store) struct Published {
    pub log_index: Option<Arc<LogIndex>>,
    pub own_commit: Arc<Mutex<Option<(LogHeader, i64)>>>,
    /// Where each batch's size and commit time are counted.
    pub metrics: crate::metrics::WriterMetrics,
}

impl Published {
    fn set(&self, value: Option<(LogHeader, i64)>) {
        *self.own_commit.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

/// SQLite's writer: the batch protocol's thread, with SQLite's side of it.
#[derive(Clone)]
pub(in crate::store) struct Writer {
    thread: batch::Writer<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it stops when the last `Writer` is dropped, and
    /// drops `keep` after closing `conn`.
    pub(in crate::store) fn start<K: Send + 'static>(
        conn: Connection,
        path: &Path,
        published: Published,
        keep: K,
    ) -> std::io::Result<Self> {
        let path = path.display().to_string();
        let thread = batch::Writer::start(move |queue| {
            run(&conn, &queue, &path, &published);
            drop(conn);
            drop(keep);
        })?;
        Ok(Self { thread })
    }

    /// Runs `f` in the next batch and answers once that batch is committed. `settled` runs once
    /// on the writer thread when the batch has ended, with `f`'s value if it was committed:
    /// before the answer and before any later batch, so what it does follows the order of the
    /// commits.
    pub(in crate::store) async fn write<T, F, C>(&self, f: F, settled: C) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        C: FnOnce(Option<&T>) + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = conn.map(|(conn, savepoints)| in_savepoint(conn, savepoints, f));
            batch::finish(outcome, settled, answer)
        });
        self.thread.write(job, answered).await
    }
}

fn run(conn: &Connection, queue: &mpsc::Receiver<Job>, path: &str, published: &Published) {
    let savepoints = match Savepoints::prepare(conn) {
        Ok(savepoints) => savepoints,
        Err(e) => {
            tracing::error!("cannot prepare the writes' savepoints on {path}: {e}");
            while let Ok(job) = queue.recv() {
                SqliteBatch::not_run(job, &e);
            }
            return;
        }
    };
    let mut engine = SqliteBatch {
        conn,
        savepoints,
        path,
        published,
        version: None,
        counter: None,
    };
    batch::run(&mut engine, queue, &published.metrics);
}

/// SQLite's side of a batch.
struct SqliteBatch<'c> {
    conn: &'c Connection,
    savepoints: Savepoints<'c>,
    path: &'c str,
    published: &'c Published,
    /// `PRAGMA data_version` as the batch's transaction began.
    version: Option<i64>,
    /// The change counter the batch leaves, read just before its commit.
    counter: Option<i64>,
}

impl batch::BatchFailure for rusqlite::Error {
    fn for_each_write(&self) -> StoreError {
        copy(self)
    }
}

impl batch::Batch for SqliteBatch<'_> {
    type Job = Job;
    type Failure = rusqlite::Error;

    fn begin(&mut self) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))?;
        next_stretch(true);
        // Until this commit is published, the last one's pair stays right: nothing can commit
        // before this batch's COMMIT, and the header changes with it.
        self.version = data_version(self.conn);
        self.counter = None;
        Ok(())
    }

    fn run(&mut self, job: Job) -> Finish<rusqlite::Error> {
        job(Some((self.conn, &mut self.savepoints)))
    }

    fn not_run(job: Job, why: &rusqlite::Error) {
        job(None)(Some(why))();
    }

    fn broken(&self) -> Option<rusqlite::Error> {
        // SQLite rolls the whole transaction back by itself on some faults (a full disk, an I/O
        // error).
        self.conn.is_autocommit().then(|| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the batch's transaction was rolled back by a fault".into()),
            )
        })
    }

    fn before_commit(&mut self) {
        // The counter is read in the batch's transaction, then the commit.
        self.counter = change_counter::current(&Tx::Sqlite(self.conn)).ok();
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(drop)
    }

    fn roll_back(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    fn ended(&mut self) {
        next_stretch(false);
    }

    fn settled(&mut self, committed: bool) {
        let header = self
            .published
            .log_index
            .as_deref()
            .and_then(LogIndex::header);
        let pair = match (header, self.counter, self.version) {
            (Some(header), Some(counter), Some(before)) if committed => {
                (data_version(self.conn) == Some(before)).then_some((header, counter))
            }
            _ => None,
        };
        self.published.set(pair);
    }

    fn describe(&self) -> String {
        self.path.to_owned()
    }
}

/// `PRAGMA data_version`: moves when another connection commits to the file.
fn data_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ok()
}

/// Runs `f` in a savepoint: kept when it succeeds, rolled back when it fails or panics.
fn in_savepoint<T>(
    conn: &Connection,
    savepoints: &mut Savepoints<'_>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    savepoints.open.execute([])?;
    let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::WritePanicked));
    if conn.is_autocommit() {
        // A fault ended the transaction; the batch reports it.
        return outcome;
    }
    let rollback = outcome.is_err();
    let ended = (|| {
        if rollback {
            next_stretch(true);
            savepoints.roll_back.execute([])?;
        }
        savepoints.release.execute([])
    })();
    if let Err(e) = ended {
        // The savepoint is still open, and a failed write's changes may be in it: the whole
        // batch is rolled back, which the batch sees and reports to every write in it.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    outcome
}

/// A commit's error, for each write it held.
fn copy(e: &rusqlite::Error) -> StoreError {
    copy_sqlite(e).into()
}

fn copy_sqlite(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Helpers for tests that need writes in one batch.
#[cfg(test)]
pub(in crate::store) mod testing {
    use std::{sync::mpsc, time::Duration};

    use crate::{
        store::{Result, Tx, sqlite::Sqlite as Store},
        testing::queue,
    };

    /// A write for [`in_one_batch`].
    pub type Write<T> = Box<dyn FnOnce(&Tx) -> Result<T> + Send>;

    /// Runs `writes` in this order, each as a write of its own, all in one batch: they are
    /// queued while a first write holds the writer. Gives their outcomes in order.
    pub async fn in_one_batch<T: Send + 'static>(
        store: &Store,
        writes: Vec<Write<T>>,
    ) -> Vec<Result<T>> {
        let (running, gate_runs) = mpsc::channel();
        let (open, gate_opens) = mpsc::channel::<()>();
        let mut gate = Box::pin(store.write(move |_| {
            running.send(()).unwrap();
            gate_opens.recv_timeout(Duration::from_secs(30)).unwrap();
            Ok(())
        }));
        queue(&mut gate);
        gate_runs.recv_timeout(Duration::from_secs(30)).unwrap();
        let queued: Vec<_> = writes
            .into_iter()
            .map(|write| {
                let mut write = Box::pin(store.write(write));
                queue(&mut write);
                write
            })
            .collect();
        open.send(()).unwrap();
        gate.await.unwrap();
        futures_util::future::join_all(queued).await
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, time::Duration};

    use crate::{store::sqlite::Sqlite as Store, testing::queue};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_queued_while_a_batch_runs_joins_that_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        store
            .write(|c| {
                Ok(c.sqlite()
                    .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")?)
            })
            .await
            .unwrap();
        let (running, first_runs) = mpsc::channel();
        let (go_on, first_may_end) = mpsc::channel::<()>();
        let mut first = Box::pin(store.write(move |c| {
            let c = c.sqlite();
            c.execute("INSERT INTO t VALUES (1)", [])?;
            running.send(()).unwrap();
            first_may_end.recv_timeout(Duration::from_secs(30)).unwrap();
            Ok(())
        }));
        queue(&mut first);
        first_runs.recv_timeout(Duration::from_secs(30)).unwrap();
        // Queued while the first write's batch runs: another connection does not see the first
        // row from it, since that batch has not committed.
        let reader = store.clone();
        let mut second = Box::pin(store.write(move |c| {
            c.sqlite().execute("INSERT INTO t VALUES (2)", [])?;
            reader.read(|c| {
                Ok(c.sqlite()
                    .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            })
        }));
        queue(&mut second);
        go_on.send(()).unwrap();
        first.await.unwrap();
        assert_eq!(
            second.await.unwrap(),
            0,
            "committed before the second write ran"
        );
        let rows: i64 = store
            .read(|c| {
                Ok(c.sqlite()
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_rolled_back_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        store
            .write(|c| {
                Ok(c.sqlite().execute_batch(
                    "CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (0);",
                )?)
            })
            .await
            .unwrap();
        // 200 writes queued at once land in few batches; every tenth inserts a fresh key and
        // then a duplicate one, so it must fail and take its fresh row back with it.
        let writes = (0..200).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |c| {
                        let c = c.sqlite();
                        c.execute("INSERT INTO t VALUES (?1)", [1000 + i])?;
                        if i % 10 == 0 {
                            c.execute("INSERT INTO t VALUES (0)", [])?;
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let outcomes = futures_util::future::join_all(writes).await;
        let failed: Vec<i64> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.as_ref().unwrap().is_err())
            .map(|(i, _)| i as i64)
            .collect();
        assert_eq!(failed, (0..200).step_by(10).collect::<Vec<i64>>());
        let rows: Vec<i64> = store
            .read(|c| {
                let mut s = c
                    .sqlite()
                    .prepare("SELECT k - 1000 FROM t WHERE k > 0 ORDER BY k")?;
                let rows = s.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        let expected: Vec<i64> = (0..200).filter(|i| i % 10 != 0).collect();
        assert_eq!(rows, expected);
    }
}
