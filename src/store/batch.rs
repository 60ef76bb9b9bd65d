//! The one group-commit protocol both engines' writers follow: a thread with its own connection
//! takes every write queued while it was busy, runs each in a savepoint of one transaction,
//! takes the writes queued meanwhile into the same transaction, commits once, and only then
//! answers each write, with its own failure or the batch's.
//!
//! Committing writes one by one capped logins at the disk's flush rate (SQLite with
//! `synchronous = FULL`) or at a round trip and a flush each (PostgreSQL); here one that fails
//! is rolled back alone, and none is answered before the commit that holds it is durable. What
//! differs between the engines (how a transaction begins, a savepoint, a fault that ends the
//! transaction, what is published after a commit) is each engine's [`Batch`].

use std::{
    sync::{Arc, mpsc},
    thread,
};

use tokio::sync::oneshot;

use super::{Result, StoreError};

/// Writes committed together at most; a longer queue waits for the next commit.
pub(super) const MAX_BATCH: usize = 256;

/// Sends a write's caller its answer.
pub(super) type Answer = Box<dyn FnOnce() + Send>;

/// How one write ended, told once its batch's commit has (or has not) become durable: settles
/// it and gives the answer to send its caller.
pub(super) type Finish<F> = Box<dyn FnOnce(Option<&F>) -> Answer + Send>;

/// A failure that ended a whole batch, told again to each write it held.
pub(super) trait BatchFailure {
    fn for_each_write(&self) -> StoreError;
}

/// One engine's side of the protocol, on the writer thread.
pub(super) trait Batch {
    /// A queued write, as the engine runs it.
    type Job: Send + 'static;
    /// Why a batch as a whole failed.
    type Failure: BatchFailure;

    /// Opens the batch's transaction.
    fn begin(&mut self) -> std::result::Result<(), Self::Failure>;
    /// Runs one write in the batch's transaction, in a savepoint of its own.
    fn run(&mut self, job: Self::Job) -> Finish<Self::Failure>;
    /// Answers a write without running it.
    fn not_run(job: Self::Job, why: &Self::Failure);
    /// After a write: the fault that ended the transaction with it, if one did (the writes
    /// before it are gone too, and none after may run outside it).
    fn broken(&self) -> Option<Self::Failure>;
    /// Just before the commit, in the batch's transaction.
    fn before_commit(&mut self) {}
    fn commit(&mut self) -> std::result::Result<(), Self::Failure>;
    /// After a failed begin or commit: no transaction is left open.
    fn roll_back(&mut self);
    /// Once the batch has ended, before its writes are settled.
    fn ended(&mut self) {}
    /// Once every write is settled, before the answers: `committed` or not.
    fn settled(&mut self, _committed: bool) {}
    /// The database, for the log.
    fn describe(&self) -> String;
}

/// Runs batches of the jobs `queue` holds until it is closed.
pub(super) fn run<B: Batch>(
    engine: &mut B,
    queue: &mpsc::Receiver<B::Job>,
    metrics: &crate::metrics::WriterMetrics,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        take_queued(queue, &mut batch, MAX_BATCH);
        commit_batch(engine, queue, batch, metrics);
    }
}

/// Moves the writes queued by now into `batch`, until it holds `up_to`.
fn take_queued<J>(queue: &mpsc::Receiver<J>, batch: &mut Vec<J>, up_to: usize) {
    while batch.len() < up_to {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn commit_batch<B: Batch>(
    engine: &mut B,
    queue: &mpsc::Receiver<B::Job>,
    mut batch: Vec<B::Job>,
    metrics: &crate::metrics::WriterMetrics,
) {
    if let Err(e) = engine.begin() {
        tracing::warn!(
            "cannot start a write on {}: {}",
            engine.describe(),
            e.for_each_write()
        );
        engine.roll_back();
        for job in batch {
            // Not run: each caller is told why, and nothing was changed.
            B::not_run(job, &e);
        }
        return;
    }
    let mut finishes = Vec::with_capacity(batch.len());
    let mut broken = None;
    let mut taken = 0;
    // Writes queued while the batch ran join it, until none are left (or the batch is full):
    // they would otherwise wait for this commit's flush and then for one of their own.
    while !batch.is_empty() {
        taken += batch.len();
        for job in batch.drain(..) {
            if let Some(e) = &broken {
                B::not_run(job, e);
                continue;
            }
            finishes.push(engine.run(job));
            broken = engine.broken();
        }
        if broken.is_none() && taken < MAX_BATCH {
            take_queued(queue, &mut batch, MAX_BATCH - taken);
        }
    }
    let committed = match broken {
        Some(e) => Err(e),
        None => {
            engine.before_commit();
            let started = std::time::Instant::now();
            let committed = engine.commit();
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            metrics.batch_size.observe(taken as f64);
            committed
        }
    };
    if let Err(e) = &committed {
        tracing::warn!(
            "cannot commit writes to {}: {}",
            engine.describe(),
            e.for_each_write()
        );
        engine.roll_back();
    }
    engine.ended();
    let failed = committed.as_ref().err();
    let answers: Vec<Answer> = finishes.into_iter().map(|f| f(failed)).collect();
    // Once every write is settled (what they changed applied to what readers keep), before the
    // answers: the callers' next requests find what the engine publishes.
    engine.settled(committed.is_ok());
    for answer in answers {
        answer();
    }
}

/// The finish of a write whose `outcome` is known (`None`: it did not run), which calls
/// `settled` with its value if its batch was committed and then answers `answer`.
pub(super) fn finish<T, F, C>(
    outcome: Option<Result<T>>,
    settled: C,
    answer: oneshot::Sender<Result<T>>,
) -> Finish<F>
where
    T: Send + 'static,
    F: BatchFailure,
    C: FnOnce(Option<&T>) + Send + 'static,
{
    Box::new(move |batch_failed| {
        let result = match (outcome, batch_failed) {
            (Some(Err(e)), _) => Err(e),
            (_, Some(e)) => Err(e.for_each_write()),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::WriteNotRun),
        };
        settled(result.as_ref().ok());
        Box::new(move || {
            // The caller may have gone away (a dropped request); the write stands.
            let _ = answer.send(result);
        })
    })
}

/// The writer thread's handle: cloned by every user of the store, and stopped and waited for
/// when the last one is dropped, so that the thread's connection is closed (SQLite's last
/// process to close the file then folds the write-ahead log into it and removes it).
pub(super) struct Writer<J> {
    thread: Arc<Thread<J>>,
}

impl<J> Clone for Writer<J> {
    fn clone(&self) -> Self {
        Self {
            thread: self.thread.clone(),
        }
    }
}

struct Thread<J> {
    jobs: Option<mpsc::Sender<J>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl<J> Drop for Thread<J> {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has committed what was queued.
        self.jobs.take();
        if let Some(handle) = self.handle.take()
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl<J: Send + 'static> Writer<J> {
    /// Starts the writer thread, which runs `work` on the queue of jobs until it is closed.
    pub(super) fn start(
        work: impl FnOnce(mpsc::Receiver<J>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<J>();
        let handle = thread::Builder::new()
            .name("lodge-writer".into())
            .spawn(move || work(queue))?;
        Ok(Self {
            thread: Arc::new(Thread {
                jobs: Some(jobs),
                handle: Some(handle),
            }),
        })
    }

    /// Queues `job` and waits for its answer.
    pub(super) async fn write<T>(
        &self,
        job: J,
        answered: oneshot::Receiver<Result<T>>,
    ) -> Result<T> {
        self.thread
            .jobs
            .as_ref()
            .ok_or(StoreError::WriterStopped)?
            .send(job)
            .map_err(|_| StoreError::WriterStopped)?;
        answered.await.map_err(|_| StoreError::WriteDropped)?
    }
}
