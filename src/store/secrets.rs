//! The `server_secrets` table: keys the server makes once.

use super::{
    Result,
    db::{Tx, args},
};

/// The key `name`, if it was made.
pub fn get(tx: &Tx, name: &str) -> Result<Option<Vec<u8>>> {
    tx.query_opt(
        "SELECT value FROM server_secrets WHERE name = ?1",
        args![name],
        |r| r.get(0),
    )
}

/// The key `name`, stored as `fresh` when there is none yet.
pub fn get_or_insert(tx: &Tx, name: &str, fresh: &[u8; 32]) -> Result<Vec<u8>> {
    tx.execute(
        "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        args![name, &fresh[..]],
    )?;
    Ok(get(tx, name)?.unwrap_or_else(|| fresh.to_vec()))
}
