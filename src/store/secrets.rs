//! The `server_secrets` table: keys the server makes once.

use rusqlite::{Connection, params};

use super::Result;

/// The key `name`, if it was made.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .query_row(
            "SELECT value FROM server_secrets WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// The key `name`, stored as `fresh` when there is none yet.
pub fn get_or_insert(conn: &Connection, name: &str, fresh: &[u8; 32]) -> Result<Vec<u8>> {
    conn.execute(
        "INSERT OR IGNORE INTO server_secrets (name, value) VALUES (?1, ?2)",
        params![name, &fresh[..]],
    )?;
    Ok(get(conn, name)?.unwrap_or_else(|| fresh.to_vec()))
}
