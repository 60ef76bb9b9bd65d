//! The change counter: moved on by triggers (migration 003) with every update or delete of a
//! user, token or session and every new token, in the transaction that makes it, whichever
//! process that is.

use rusqlite::Connection;

use super::Result;

pub fn current(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT n FROM generation")?
        .query_row([], |r| r.get(0))?)
}
