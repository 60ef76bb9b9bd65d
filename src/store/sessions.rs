//! The `sessions` table: one row per login, found by the id its cookie names and proven by the
//! digest of the cookie's secret.
//!
//! A row can outlive its session: a login by a user at `session.max_per_user` opens its session
//! in the row of the user's oldest, which ends (`UserSessions::open`, in `lists`). Ending or updating a
//! session a request saw therefore names its digest beside its id, so that a write queued for the
//! old session never reaches the new one.

mod lists;

pub use lists::{Caps, UserSessions};

use super::{
    Result,
    db::{Row, Tx, args},
    users::{self, UserRow},
};

/// The digest of a session's secret.
pub type Digest = [u8; 32];

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub secret_digest: Digest,
    pub provider: String,
    pub token_id: Option<i64>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The expiry of the API token the session was opened with, when it still exists.
    pub token_expires_at: Option<i64>,
    /// Whether that token needs its owner to be an administrator (`store::tokens::TokenRow`).
    pub token_needs_admin: bool,
    /// The name of the token it was opened with, while that token exists.
    pub token_name: Option<String>,
    /// The scopes and bounds of that token, copied at login (`auth::grants`).
    pub grants: Option<String>,
    /// The generation of the token's secret it was opened with, the token's generation now and
    /// until when its previous secret works (`store::tokens::rotate`).
    pub token_generation: Option<i64>,
    pub token_now_generation: Option<i64>,
    pub token_grace_until: Option<i64>,
    pub user: UserRow,
}

pub struct NewSession<'a> {
    pub secret_digest: &'a Digest,
    pub user: i64,
    pub provider: &'a str,
    pub token_id: Option<i64>,
    pub now: i64,
    /// The client's address, as text.
    pub address: Option<&'a str>,
    /// The client's `User-Agent`, cut short.
    pub user_agent: Option<&'a str>,
    /// The scopes and bounds of the token it is opened with (`auth::grants`).
    pub grants: Option<&'a str>,
    /// The generation of the token's secret it is opened with.
    pub token_generation: Option<i64>,
}

/// A session as its owner's list shows it.
#[derive(Debug, Clone)]
pub struct ListedSession {
    pub id: i64,
    pub secret_digest: Digest,
    pub user: i64,
    /// The user's id, as they log in with it.
    pub user_id: String,
    pub provider: String,
    pub token_id: Option<i64>,
    /// The name of the token it was opened with, while that token exists.
    pub token_name: Option<String>,
    pub token_expires_at: Option<i64>,
    pub token_needs_admin: bool,
    /// As in [`SessionRow`]: the generation of the secret it was opened with, the token's now,
    /// and until when its previous secret works.
    pub token_generation: Option<i64>,
    pub token_now_generation: Option<i64>,
    pub token_grace_until: Option<i64>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// The columns [`listed_from_row`] reads and the tables they are read from.
macro_rules! listed_from {
    () => {
        "SELECT s.id, s.secret_digest, s.user_id, u.user_id, s.provider, s.token_id, t.name, \
             t.expires_at, coalesce(t.needs_admin, FALSE), s.address, s.user_agent, s.created_at, \
             s.last_seen_at, s.token_generation, t.generation, t.grace_until \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         LEFT JOIN api_tokens t ON t.id = s.token_id"
    };
}

fn listed_from_row(r: &Row<'_>) -> Result<ListedSession> {
    Ok(ListedSession {
        id: r.get(0)?,
        secret_digest: r.digest(1)?,
        user: r.get(2)?,
        user_id: r.get(3)?,
        provider: r.get(4)?,
        token_id: r.get(5)?,
        token_name: r.get(6)?,
        token_expires_at: r.get(7)?,
        token_needs_admin: r.get(8)?,
        address: r.get(9)?,
        user_agent: r.get(10)?,
        created_at: r.get(11)?,
        last_seen_at: r.get(12)?,
        token_generation: r.get(13)?,
        token_now_generation: r.get(14)?,
        token_grace_until: r.get(15)?,
    })
}

/// The session in this row, as a list shows it.
pub fn listed_by_id(tx: &Tx, id: i64) -> Result<Option<ListedSession>> {
    tx.query_opt(
        concat!(listed_from!(), " WHERE s.id = ?1"),
        args![id],
        listed_from_row,
    )
}

/// A user's sessions. `ids` are the rows the server's lists hold for the user
/// ([`UserSessions::ids_of`]): each is read by its id, and those gone or taken by another user
/// are left out. Without them the whole table is read (sessions have no index by user): 22 to
/// 30 ms at 400,000 sessions (BENCHMARKS.md).
pub fn of_user(tx: &Tx, user: i64, ids: Option<&[i64]>) -> Result<Vec<ListedSession>> {
    let Some(ids) = ids else {
        return tx.query_all(
            concat!(listed_from!(), " WHERE s.user_id = ?1"),
            args![user],
            listed_from_row,
        );
    };
    let mut found = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(session) = listed_by_id(tx, id)?
            && session.user == user
        {
            found.push(session);
        }
    }
    Ok(found)
}

/// Adds a session's row; gives its id.
pub fn insert(tx: &Tx, session: &NewSession<'_>) -> Result<i64> {
    macro_rules! insert {
        () => {
            "INSERT INTO sessions (secret_digest, user_id, provider, token_id, created_at,
                 last_seen_at, address, user_agent, grants, token_generation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)"
        };
    }
    tx.insert_id(
        insert!(),
        concat!(insert!(), " RETURNING id"),
        args![
            &session.secret_digest[..],
            session.user,
            session.provider,
            session.token_id,
            session.now,
            session.address,
            session.user_agent,
            session.grants,
            session.token_generation
        ],
    )
}

/// Opens a new session in the row of an old one of the same user's, which ends: one row changed
/// in place, where a new row and the old one's deletion changed two pages and moved the free
/// list (BENCHMARKS.md); whether the row was there.
fn reuse(tx: &Tx, id: i64, session: &NewSession<'_>) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE sessions SET secret_digest = ?3, provider = ?4, token_id = ?5,
             created_at = ?6, last_seen_at = ?6, address = ?7, user_agent = ?8, grants = ?9,
             token_generation = ?10
         WHERE id = ?1 AND user_id = ?2",
        args![
            id,
            session.user,
            &session.secret_digest[..],
            session.provider,
            session.token_id,
            session.now,
            session.address,
            session.user_agent,
            session.grants,
            session.token_generation
        ],
    )? > 0)
}

/// The session with this id, and the change counter of the snapshot it was read in.
pub fn by_id(tx: &Tx, id: i64) -> Result<Option<(i64, SessionRow)>> {
    tx.query_opt(
        concat!(
            "SELECT (SELECT value FROM change_counter), s.id, s.secret_digest, s.provider, s.token_id, ",
            "s.created_at, s.last_seen_at, t.expires_at, coalesce(t.needs_admin, FALSE), t.name, s.grants, ",
            "s.token_generation, t.generation, t.grace_until, ",
            users::user_columns_without_hash!(),
            " FROM sessions s
             JOIN users u ON u.id = s.user_id
             LEFT JOIN api_tokens t ON t.id = s.token_id
             WHERE s.id = ?1"
        ),
        args![id],
        |r| {
            let row = SessionRow {
                id: r.get(1)?,
                secret_digest: r.digest(2)?,
                provider: r.get(3)?,
                token_id: r.get(4)?,
                created_at: r.get(5)?,
                last_seen_at: r.get(6)?,
                token_expires_at: r.get(7)?,
                token_needs_admin: r.get(8)?,
                token_name: r.get(9)?,
                grants: r.get(10)?,
                token_generation: r.get(11)?,
                token_now_generation: r.get(12)?,
                token_grace_until: r.get(13)?,
                user: users::from_row(r, 14)?,
            };
            Ok((r.get(0)?, row))
        },
    )
}

/// Records the last access of the session with this id and digest; whether it still exists.
pub fn touch(tx: &Tx, id: i64, digest: &Digest, now: i64) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE sessions SET last_seen_at = ?3 WHERE id = ?1 AND secret_digest = ?2",
        args![id, &digest[..], now],
    )? > 0)
}

/// Ends whatever session is in this row; whether there was one. For ids from [`UserSessions`],
/// exact in the transaction; a session a request saw is ended by [`UserSessions::delete`].
fn delete(tx: &Tx, id: i64) -> Result<bool> {
    Ok(tx.execute("DELETE FROM sessions WHERE id = ?1", args![id])? > 0)
}

/// Ends every session of a user but `keep` (a row id and the digest of its session's secret). It
/// reads the whole table (sessions have no index by user): for the rare writes that are not the
/// server's logins and logouts.
pub fn delete_for_user(tx: &Tx, user: i64, keep: Option<(i64, &Digest)>) -> Result<usize> {
    let (keep_id, keep_digest) = keep.map_or((None, None), |(id, d)| (Some(id), Some(&d[..])));
    tx.execute(
        "DELETE FROM sessions
         WHERE user_id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR id <> ?2 OR secret_digest <> ?3)",
        args![user, keep_id, keep_digest],
    )
}

/// Ends every session opened with any of these tokens, in one read of the table; gives the
/// token of each session ended.
pub fn delete_for_tokens(tx: &Tx, tokens: &[i64]) -> Result<Vec<i64>> {
    let list = serde_json::to_string(tokens).expect("numbers serialise");
    let sql = tx.pick(
        "DELETE FROM sessions WHERE token_id IN (SELECT value FROM json_each(?1))
         RETURNING token_id",
        "DELETE FROM sessions
         WHERE token_id IN (SELECT CAST(value AS BIGINT)
                            FROM json_array_elements_text(CAST(CAST(?1 AS TEXT) AS JSON)))
         RETURNING token_id",
    );
    tx.query_all(sql, args![list], |r| r.get(0))
}

/// Ends every session opened with a token; reads the whole table, as [`delete_for_user`].
pub fn delete_for_token(tx: &Tx, token_id: i64) -> Result<usize> {
    tx.execute("DELETE FROM sessions WHERE token_id = ?1", args![token_id])
}

/// Sessions neither idle since before `idle_before` nor opened before `opened_before`.
pub fn count_live(tx: &Tx, idle_before: i64, opened_before: i64) -> Result<i64> {
    tx.query_one(
        "SELECT count(*) FROM sessions WHERE last_seen_at >= ?1 AND created_at >= ?2",
        args![idle_before, opened_before],
        |r| r.get(0),
    )
}

/// Removes up to `at_most` sessions idle since before `idle_before` or opened before
/// `opened_before`, oldest first; gives how many.
pub fn purge(tx: &Tx, idle_before: i64, opened_before: i64, at_most: usize) -> Result<usize> {
    tx.execute(
        "DELETE FROM sessions WHERE id IN (
             SELECT id FROM sessions WHERE last_seen_at < ?1 OR created_at < ?2
             ORDER BY id LIMIT ?3)",
        args![idle_before, opened_before, at_most as i64],
    )
}
