//! The `sessions` table: one row per login, found by the digest of its cookie value.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Result,
    users::{self, UserRow},
};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub provider: String,
    pub token_id: Option<i64>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The expiry of the API token the session was opened with, when it still exists.
    pub token_expires_at: Option<i64>,
    pub user: UserRow,
}

pub struct NewSession<'a> {
    pub digest: &'a [u8; 32],
    pub user: i64,
    pub provider: &'a str,
    pub token_id: Option<i64>,
    pub now: i64,
}

pub fn insert(conn: &Connection, session: &NewSession<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO sessions (digest, user_id, provider, token_id, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        &session.digest[..],
        session.user,
        session.provider,
        session.token_id,
        session.now
    ])?;
    Ok(conn.last_insert_rowid())
}

pub fn by_digest(conn: &Connection, digest: &[u8; 32]) -> Result<Option<SessionRow>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT s.id, s.provider, s.token_id, s.created_at, s.last_seen_at, t.expires_at, ",
            users::user_columns_without_hash!(),
            " FROM sessions s
             JOIN users u ON u.id = s.user_id
             LEFT JOIN api_tokens t ON t.id = s.token_id
             WHERE s.digest = ?1"
        ))?
        .query_row([&digest[..]], |r| {
            Ok(SessionRow {
                id: r.get(0)?,
                provider: r.get(1)?,
                token_id: r.get(2)?,
                created_at: r.get(3)?,
                last_seen_at: r.get(4)?,
                token_expires_at: r.get(5)?,
                user: users::from_row(r, 6)?,
            })
        })
        .optional()?)
}

pub fn touch(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM sessions WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// Ends every session of a user but `keep`.
pub fn delete_for_user(conn: &Connection, user: i64, keep: Option<i64>) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2)",
        params![user, keep],
    )?)
}

pub fn delete_for_token(conn: &Connection, token_id: i64) -> Result<usize> {
    Ok(conn.execute("DELETE FROM sessions WHERE token_id = ?1", [token_id])?)
}

/// Ends the user's oldest sessions beyond their newest `keep`.
pub fn trim_user(conn: &Connection, user: i64, keep: u32) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM sessions WHERE user_id = ?1 AND id <= (
                 SELECT id FROM sessions WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![user, keep])?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?)
}

/// Removes sessions idle since before `idle_before` or opened before `opened_before`.
pub fn purge(conn: &Connection, idle_before: i64, opened_before: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2",
        params![idle_before, opened_before],
    )?)
}
