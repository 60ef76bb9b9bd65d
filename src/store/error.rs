//! The store's failures, the same for both engines: each engine classifies its driver's errors
//! into them (`sqlite::connection`, `postgres`), so no caller needs an error code.

/// A failure of the database, classified here so that no caller needs SQLite's or PostgreSQL's
/// error codes; never shown to clients, logged with its cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process held the database beyond the busy timeout.
    #[error("the database is locked by another process: {0}")]
    Locked(#[source] Cause),
    #[error("the disk holding the database is full: {0}")]
    DiskFull(#[source] Cause),
    #[error("the database is read-only: {0}")]
    ReadOnly(#[source] Cause),
    #[error("the database file cannot be opened: {0}")]
    CannotOpen(#[source] Cause),
    /// The database server cannot be reached, or closed the connection.
    #[error("the database server cannot be reached: {0}")]
    Unreachable(#[source] Cause),
    #[error("the database file is damaged: {0}")]
    Corrupt(#[source] Cause),
    /// A constraint refused the change: a row named by a foreign key is gone, or a unique
    /// value is taken.
    #[error("{0:?} constraint: {1}")]
    Constraint(Constraint, #[source] Cause),
    /// Any other failure the database reports (a bug of ours, usually).
    #[error("database: {0}")]
    Sqlite(#[source] Cause),
    /// What was read is not what the store expects.
    #[error("unexpected data: {0}")]
    Invalid(String),
    #[error("database connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("the database took no write in time")]
    WriteTimedOut,
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("the database writer dropped a write")]
    WriteDropped,
    #[error("a write was not run")]
    WriteNotRun,
    #[error("a database write panicked")]
    WritePanicked,
    /// A blocking read's thread could not be joined (it panicked).
    #[error("a database read did not finish: {0}")]
    ReadFailed(String),
}

/// The driver's own error behind a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    /// A failure told again: to each write of a batch that failed as a whole.
    #[error("{0}")]
    Again(String),
}

/// Which constraint refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    ForeignKey,
    Unique,
    Other,
}

impl StoreError {
    /// The same failure, for another write of the batch it ended.
    pub fn again(&self) -> StoreError {
        let cause = |c: &Cause| Cause::Again(c.to_string());
        match self {
            StoreError::Locked(c) => StoreError::Locked(cause(c)),
            StoreError::DiskFull(c) => StoreError::DiskFull(cause(c)),
            StoreError::ReadOnly(c) => StoreError::ReadOnly(cause(c)),
            StoreError::CannotOpen(c) => StoreError::CannotOpen(cause(c)),
            StoreError::Unreachable(c) => StoreError::Unreachable(cause(c)),
            StoreError::Corrupt(c) => StoreError::Corrupt(cause(c)),
            StoreError::Constraint(k, c) => StoreError::Constraint(*k, cause(c)),
            StoreError::Sqlite(c) => StoreError::Sqlite(cause(c)),
            StoreError::Invalid(why) => StoreError::Invalid(why.clone()),
            StoreError::ReadFailed(why) => StoreError::ReadFailed(why.clone()),
            StoreError::Pool(e) => StoreError::Invalid(e.to_string()),
            StoreError::WriteTimedOut => StoreError::WriteTimedOut,
            StoreError::WriterStopped => StoreError::WriterStopped,
            StoreError::WriteDropped => StoreError::WriteDropped,
            StoreError::WriteNotRun => StoreError::WriteNotRun,
            StoreError::WritePanicked => StoreError::WritePanicked,
        }
    }

    /// What keeps the database from taking a change now, when the fault is the machine's (a
    /// lock, a full disk, a read-only or missing file) and may pass: said to the client, who
    /// may try again.
    pub fn unavailable(&self) -> Option<&'static str> {
        match self {
            StoreError::Locked(_) => Some("the database is locked by another process"),
            StoreError::DiskFull(_) => Some("the disk holding the database is full"),
            StoreError::ReadOnly(_) => Some("the database file is read-only"),
            StoreError::CannotOpen(_) => Some("the database file cannot be opened"),
            StoreError::Unreachable(_) => Some("the database server cannot be reached"),
            _ => None,
        }
    }

    /// A unique value found taken without a failed statement.
    pub fn taken(what: &str) -> StoreError {
        StoreError::Constraint(Constraint::Unique, Cause::Again(format!("{what} is taken")))
    }

    /// Whether a unique value (a user id, a token name) is taken.
    pub fn is_taken(&self) -> bool {
        matches!(self, StoreError::Constraint(Constraint::Unique, _))
    }

    /// Whether a row the change names (a session's user or token) is gone.
    pub fn is_parent_gone(&self) -> bool {
        matches!(self, StoreError::Constraint(Constraint::ForeignKey, _))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
