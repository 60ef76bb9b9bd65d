//! The `audit_events` table.

use rusqlite::{Connection, params};

use super::Result;

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

pub fn insert(conn: &Connection, event: &AuditRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (time, kind, success, user_id, provider, token_name, address, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event.time,
        event.kind,
        event.success,
        event.user_id,
        event.provider,
        event.token_name,
        event.address,
        event.detail
    ])?;
    Ok(())
}

/// Events newest first, filtered by user id (any case), kind and earliest time.
pub fn list(
    conn: &Connection,
    user_id: Option<&str>,
    kind: Option<&str>,
    since: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT time, kind, success, user_id, provider, token_name, address, detail
         FROM audit_events
         WHERE (?1 IS NULL OR user_id = ?1 COLLATE NOCASE)
           AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR time >= ?3)
         ORDER BY time DESC, id DESC LIMIT ?4 OFFSET ?5",
    )?;
    let rows = stmt.query_map(params![user_id, kind, since, limit, offset], |r| {
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
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn purge(conn: &Connection, before: i64, keep: u32) -> Result<usize> {
    let old = conn.execute("DELETE FROM audit_events WHERE time < ?1", [before])?;
    let beyond = conn.execute(
        "DELETE FROM audit_events WHERE id <= (
             SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        [keep],
    )?;
    Ok(old + beyond)
}
