//! The change counter: moved on by triggers (migrations 003 and 004) with every update or delete
//! of a user, token or session and every new token, in the transaction that makes it, whichever
//! process that is. Beside it, the number of sessions ended so far.

use rusqlite::Connection;

use super::Result;

pub fn current(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT n FROM generation")?
        .query_row([], |r| r.get(0))?)
}

/// The change counter and the number of sessions ended, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub changes: i64,
    pub sessions_ended: i64,
}

pub fn counters(conn: &Connection) -> Result<Counters> {
    Ok(conn
        .prepare_cached("SELECT n, sessions_ended FROM generation")?
        .query_row([], |r| {
            Ok(Counters {
                changes: r.get(0)?,
                sessions_ended: r.get(1)?,
            })
        })?)
}
