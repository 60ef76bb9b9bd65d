//! How Lodge opens a SQLite connection: the busy timeout, the pragmas, the migrations, a
//! file's URI; and SQLite's failures classified as the store's.

use std::{path::Path, time::Duration};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::store::{Cause, Constraint, StoreError};

pub(in crate::store) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations are only ever appended: a released one never changes.
pub(in crate::store) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_initial.sql")),
        M::up(include_str!("migrations/002_audit.sql")),
        M::up(include_str!("migrations/003_sessions_by_id.sql")),
        M::up(include_str!("migrations/004_sessions_unindexed.sql")),
        M::up(include_str!("migrations/005_tokens_need_admin.sql")),
        M::up(include_str!("migrations/006_change_counter_named.sql")),
        M::up(include_str!("migrations/007_token_last_used_address.sql")),
        M::up(include_str!("migrations/008_sessions_seen_from.sql")),
        M::up(include_str!("migrations/009_token_grants.sql")),
        M::up(include_str!("migrations/010_token_rotation.sql")),
        M::up(include_str!("migrations/011_notify_outbox.sql")),
        M::up(include_str!("migrations/012_server_secrets.sql")),
        M::up(include_str!("migrations/013_shared_limits_and_leases.sql")),
        M::up(include_str!("migrations/014_token_lifetime.sql")),
    ])
}

/// `path` as an SQLite `file:` URI with `query`, its bytes outside the unreserved set and `/`
/// escaped (a `?` or `#` in a folder's name would otherwise end the path).
pub(in crate::store) fn file_uri(path: &Path, query: &str) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for &b in absolute.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

/// Applied to every connection the pool opens.
pub(in crate::store) fn init_connection(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement the server runs stays prepared (the default keeps 16).
    conn.set_prepared_statement_cache_capacity(64);
    // WAL lets the CLI and readers work beside the server; FULL makes every commit survive a
    // power cut, which the users, tokens and sessions written here need.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::{ErrorCode, ffi};
        let rusqlite::Error::SqliteFailure(failure, _) = &e else {
            return StoreError::Sqlite(e.into());
        };
        let code = failure.code;
        let extended = failure.extended_code;
        let e = Cause::from(e);
        match code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Locked(e),
            ErrorCode::DiskFull => StoreError::DiskFull(e),
            ErrorCode::ReadOnly => StoreError::ReadOnly(e),
            ErrorCode::CannotOpen => StoreError::CannotOpen(e),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(e),
            ErrorCode::ConstraintViolation => {
                let kind = match extended {
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Constraint::ForeignKey,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                        Constraint::Unique
                    }
                    _ => Constraint::Other,
                };
                StoreError::Constraint(kind, e)
            }
            _ => StoreError::Sqlite(e),
        }
    }
}
