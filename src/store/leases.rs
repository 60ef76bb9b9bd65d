//! The `leases` table: which node runs a task that must run once across nodes, until when.

use super::{
    Result,
    db::{Tx, args},
};

/// Takes or renews the lease `name` for `holder` until `until`, when it is free, run out at
/// `now`, or already `holder`'s; whether `holder` holds it now. In a write, so that two nodes
/// never both take it.
pub fn take(tx: &Tx, name: &str, holder: &str, now: i64, until: i64) -> Result<bool> {
    let taken = tx.execute(
        "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4)
         ON CONFLICT (name) DO UPDATE SET holder = ?2, until = ?4
         WHERE leases.holder = ?2 OR leases.until <= ?3",
        args![name, holder, now, until],
    )?;
    Ok(taken > 0)
}

/// Gives the lease up, if `holder` holds it (at a clean shutdown: another node takes it at once).
pub fn release(tx: &Tx, name: &str, holder: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
        args![name, holder],
    )?;
    Ok(())
}
