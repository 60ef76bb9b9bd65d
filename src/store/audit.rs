//! The `audit_events` table.

use super::{
    Result,
    db::{Tx, args},
};

#[derive(Debug, Clone, Default)]
pub struct AuditRow {
    pub time: i64,
    pub kind: String,
    pub success: bool,
    pub user_id: Option<String>,
    pub provider: Option<String>,
    pub token_name: Option<String>,
    pub address: Option<String>,
    pub detail: Option<String>,
}

pub fn insert(tx: &Tx, event: &AuditRow) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_events (time, kind, success, user_id, provider, token_name, address, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![
        event.time,
        event.kind,
        event.success,
        event.user_id,
        event.provider,
        event.token_name,
        event.address,
        event.detail
        ],
    )?;
    Ok(())
}

/// Events newest first, filtered by user id (any case), kind and earliest time.
pub fn list(
    tx: &Tx,
    user_id: Option<&str>,
    kind: Option<&str>,
    since: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRow>> {
    // The user id as its column in `users` compares it: without case.
    let sql = tx.pick(
        "SELECT time, kind, success, user_id, provider, token_name, address, detail
         FROM audit_events
         WHERE (?1 IS NULL OR user_id = ?1 COLLATE NOCASE)
           AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR time >= ?3)
         ORDER BY time DESC, id DESC LIMIT ?4 OFFSET ?5",
        "SELECT time, kind, success, user_id, provider, token_name, address, detail
         FROM audit_events
         WHERE (CAST(?1 AS TEXT) IS NULL OR user_id = ?1 COLLATE lodge_nocase)
           AND (CAST(?2 AS TEXT) IS NULL OR kind = ?2)
           AND (CAST(?3 AS BIGINT) IS NULL OR time >= ?3)
         ORDER BY time DESC, id DESC LIMIT ?4 OFFSET ?5",
    );
    tx.query_all(sql, args![user_id, kind, since, limit, offset], |r| {
        Ok(AuditRow {
            time: r.get(0)?,
            kind: r.get(1)?,
            success: r.get(2)?,
            user_id: r.get(3)?,
            provider: r.get(4)?,
            token_name: r.get(5)?,
            address: r.get(6)?,
            detail: r.get(7)?,
        })
    })
}

pub fn purge(tx: &Tx, before: i64, keep: u32) -> Result<usize> {
    let old = tx.execute("DELETE FROM audit_events WHERE time < ?1", args![before])?;
    let beyond = tx.execute(
        "DELETE FROM audit_events WHERE id <= (
             SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        args![i64::from(keep)],
    )?;
    Ok(old + beyond)
}
