//! The `sessions` table: one row per login, found by the id its cookie names and proven by the
//! digest of the cookie's secret.

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Result,
    users::{self, UserRow},
};

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub secret_digest: [u8; 32],
    pub provider: String,
    pub token_id: Option<i64>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The expiry of the API token the session was opened with, when it still exists.
    pub token_expires_at: Option<i64>,
    pub user: UserRow,
}

pub struct NewSession<'a> {
    pub secret_digest: &'a [u8; 32],
    pub user: i64,
    pub provider: &'a str,
    pub token_id: Option<i64>,
    pub now: i64,
}

pub fn insert(conn: &Connection, session: &NewSession<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO sessions (secret_digest, user_id, provider, token_id, created_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        &session.secret_digest[..],
        session.user,
        session.provider,
        session.token_id,
        session.now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The session with this id, and the change counter of the snapshot it was read in.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<(i64, SessionRow)>> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT (SELECT n FROM generation), s.id, s.secret_digest, s.provider, s.token_id, ",
            "s.created_at, s.last_seen_at, t.expires_at, ",
            users::user_columns_without_hash!(),
            " FROM sessions s
             JOIN users u ON u.id = s.user_id
             LEFT JOIN api_tokens t ON t.id = s.token_id
             WHERE s.id = ?1"
        ))?
        .query_row([id], |r| {
            let row = SessionRow {
                id: r.get(1)?,
                secret_digest: r.get(2)?,
                provider: r.get(3)?,
                token_id: r.get(4)?,
                created_at: r.get(5)?,
                last_seen_at: r.get(6)?,
                token_expires_at: r.get(7)?,
                user: users::from_row(r, 8)?,
            };
            Ok((r.get(0)?, row))
        })
        .optional()?)
}

/// Records the session's last access; whether it still exists.
pub fn touch(conn: &Connection, id: i64, now: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?
        > 0)
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

/// Ends the user's oldest sessions beyond their newest `keep`; gives the ids it ended.
pub fn trim_user(conn: &Connection, user: i64, keep: u32) -> Result<Vec<i64>> {
    let held: i64 = conn
        .prepare_cached("SELECT n FROM session_counts WHERE user_id = ?1")?
        .query_row([user], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    // One at a time (one, unless the limit was lowered): SQLite prepares a statement with
    // `LIMIT ?` again at every run, which cost more than the delete.
    let mut ended = Vec::new();
    for _ in 0..held - i64::from(keep) {
        let oldest: Option<i64> = conn
            .prepare_cached(
                "DELETE FROM sessions WHERE id = (
                     SELECT id FROM sessions WHERE user_id = ?1 ORDER BY id LIMIT 1)
                 RETURNING id",
            )?
            .query_row([user], |r| r.get(0))
            .optional()?;
        ended.extend(oldest);
    }
    Ok(ended)
}

/// Removes sessions idle since before `idle_before` or opened before `opened_before`.
pub fn purge(conn: &Connection, idle_before: i64, opened_before: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2",
        params![idle_before, opened_before],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, users};

    type PerUser = Vec<(i64, i64)>;

    /// Each user's number of sessions as the triggers of migration 003 keep it, and as counted.
    fn counts(conn: &Connection) -> (PerUser, PerUser) {
        let read = |sql: &str| -> PerUser {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        (
            read("SELECT user_id, n FROM session_counts WHERE n > 0 ORDER BY user_id"),
            read("SELECT user_id, count(*) FROM sessions GROUP BY user_id ORDER BY user_id"),
        )
    }

    #[test]
    fn session_counts_follow_inserts_trims_deletes_and_cascades() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).unwrap();
        let mut conn = store.conn().unwrap();
        let tx = conn.transaction().unwrap();
        let user = |name: &str| {
            users::insert(
                &tx,
                &users::NewUser {
                    user_id: name,
                    display_name: name,
                    role: "user",
                    enabled: true,
                    password_hash: None,
                    now: 0,
                },
            )
            .unwrap()
        };
        let (ann, bob) = (user("ann"), user("bob"));
        let open = |user: i64| {
            insert(
                &tx,
                &NewSession {
                    secret_digest: &[7; 32],
                    user,
                    provider: "local",
                    token_id: None,
                    now: 0,
                },
            )
            .unwrap()
        };
        let ann_sessions: Vec<i64> = (0..5).map(|_| open(ann)).collect();
        open(bob);
        open(bob);
        assert_eq!(trim_user(&tx, ann, 3).unwrap(), ann_sessions[..2]);
        assert!(trim_user(&tx, ann, 3).unwrap().is_empty());
        delete(&tx, ann_sessions[4]).unwrap();
        let (kept, counted) = counts(&tx);
        assert_eq!(kept, counted);
        assert_eq!(kept, vec![(ann, 2), (bob, 2)]);
        tx.execute("DELETE FROM users WHERE id = ?1", [bob])
            .unwrap();
        let (kept, counted) = counts(&tx);
        assert_eq!(kept, counted);
        assert_eq!(kept, vec![(ann, 2)]);
    }
}
