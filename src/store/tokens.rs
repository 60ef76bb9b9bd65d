//! The `api_tokens` table: only digests of secrets, never a secret.

use super::{
    Result,
    db::{Row, Tx, args},
    users::{self, UserRow},
};

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// The client address of that use, when known.
    pub last_used_address: Option<String>,
    /// Made by its owner as an administrator under `tokens.admins_only`.
    pub needs_admin: bool,
    /// Its scopes and bounds (`auth::grants`); `None`: every scope, anywhere.
    pub grants: Option<String>,
    /// Rotations so far.
    pub generation: i64,
    /// Until when the secret before the last rotation still works.
    pub grace_until: Option<i64>,
    /// Whether this row was found by that previous secret ([`by_previous_digest`]).
    pub previous: bool,
}

pub struct NewToken<'a> {
    pub user: i64,
    pub name: &'a str,
    pub digest: &'a [u8; 32],
    pub now: i64,
    pub expires_at: Option<i64>,
    /// Its lifetime rule, as `auth::tokens::LifetimeRule` writes it.
    pub lifetime: &'a str,
    pub needs_admin: bool,
    pub grants: Option<&'a str>,
}

/// The columns every token query selects (of `api_tokens t`), in the order [`token_from_row`]
/// reads them.
macro_rules! token_columns {
    () => {
        "t.id, t.name, t.created_at, t.expires_at, t.last_used_at, t.needs_admin, \
         t.last_used_address, t.grants, t.generation, t.grace_until"
    };
}

/// A token from the columns of `token_columns!`, starting at column `at`.
fn token_from_row(r: &Row<'_>, at: usize) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(at)?,
        name: r.get(at + 1)?,
        created_at: r.get(at + 2)?,
        expires_at: r.get(at + 3)?,
        last_used_at: r.get(at + 4)?,
        needs_admin: r.get(at + 5)?,
        last_used_address: r.get(at + 6)?,
        grants: r.get(at + 7)?,
        generation: r.get(at + 8)?,
        grace_until: r.get(at + 9)?,
        previous: false,
    })
}

/// Tokens of a user that can still log in at `now`.
pub fn count_live(tx: &Tx, user: i64, now: i64) -> Result<i64> {
    tx.query_one(
        "SELECT count(*) FROM api_tokens
         WHERE user_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        args![user, now],
        |r| r.get(0),
    )
}

/// Inserts a token; a name its user has already fails with [`super::StoreError::is_taken`].
pub fn insert(tx: &Tx, token: &NewToken<'_>) -> Result<i64> {
    // A taken name inserts nothing instead of failing, as `users::insert`.
    tx.query_opt(
        "INSERT INTO api_tokens
             (user_id, name, digest, created_at, expires_at, needs_admin, grants, lifetime)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (user_id, name) DO NOTHING RETURNING id",
        args![
            token.user,
            token.name,
            &token.digest[..],
            token.now,
            token.expires_at,
            token.needs_admin,
            token.grants,
            token.lifetime
        ],
        |r| r.get(0),
    )?
    .ok_or_else(|| super::StoreError::taken("the token name"))
}

/// All of a user's tokens, oldest first, and the change counter of the snapshot they were read
/// in.
pub fn all_of_user(tx: &Tx, user: i64) -> Result<(i64, Vec<TokenRow>)> {
    // One snapshot for both reads, so that the list is the one at that counter.
    tx.snapshot(|tx| {
        let read_at = super::change_counter::current(tx)?;
        let tokens = tx.query_all(
            concat!(
                "SELECT ",
                token_columns!(),
                " FROM api_tokens t WHERE t.user_id = ?1 ORDER BY t.created_at, t.id"
            ),
            args![user],
            |r| token_from_row(r, 0),
        )?;
        Ok((read_at, tokens))
    })
}

/// Every user's tokens with their owner's user id, by user id, then oldest first: what an
/// administrator lists (at most `limit`).
pub fn all_with_owner(tx: &Tx, limit: i64) -> Result<Vec<(String, TokenRow)>> {
    tx.query_all(
        concat!(
            "SELECT u.user_id, ",
            token_columns!(),
            " FROM api_tokens t JOIN users u ON u.id = t.user_id
             ORDER BY u.user_id, t.created_at, t.id LIMIT ?1"
        ),
        args![limit],
        |r| Ok((r.get(0)?, token_from_row(r, 1)?)),
    )
}

/// A token looked up by a digest, with its owner and the change counter of the snapshot, `WHERE`
/// the given condition on `?1`.
macro_rules! token_with_owner_where {
    ($condition:literal) => {
        concat!(
            "SELECT (SELECT value FROM change_counter), ",
            token_columns!(),
            ", ",
            users::user_columns_without_hash!(),
            " FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE ",
            $condition
        )
    };
}

/// Runs a `token_with_owner_where!` query; `previous` marks the row as found by the secret
/// before its last rotation.
fn token_with_owner(
    tx: &Tx,
    sql: &'static str,
    digest: &[u8; 32],
    previous: bool,
) -> Result<Option<(i64, TokenRow, UserRow)>> {
    tx.query_opt(sql, args![&digest[..]], |r| {
        let mut token = token_from_row(r, 1)?;
        token.previous = previous;
        Ok((r.get(0)?, token, users::from_row(r, 11)?))
    })
}

/// The token with this digest and its owner, and the change counter of the snapshot they were
/// read in.
pub fn by_digest(tx: &Tx, digest: &[u8; 32]) -> Result<Option<(i64, TokenRow, UserRow)>> {
    let sql = token_with_owner_where!("t.digest = ?1");
    token_with_owner(tx, sql, digest, false)
}

/// The id of a user's token by name.
pub fn id_by_name(tx: &Tx, user: i64, name: &str) -> Result<Option<i64>> {
    tx.query_opt(
        "SELECT id FROM api_tokens WHERE user_id = ?1 AND name = ?2",
        args![user, name],
        |r| r.get(0),
    )
}

/// Tokens of every user that have not expired at `now` and expire by `until`, soonest first,
/// with their owner's user id.
pub fn expiring(tx: &Tx, now: i64, until: i64) -> Result<Vec<(String, TokenRow)>> {
    tx.query_all(
        concat!(
            "SELECT u.user_id, ",
            token_columns!(),
            " FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.expires_at > ?1 AND t.expires_at <= ?2
             ORDER BY t.expires_at, u.user_id"
        ),
        args![now, until],
        |r| Ok((r.get(0)?, token_from_row(r, 1)?)),
    )
}

/// The token whose secret before its last rotation has this digest, while its row says so (the
/// grace may be over: the caller compares `grace_until` with the time), as [`by_digest`].
pub fn by_previous_digest(tx: &Tx, digest: &[u8; 32]) -> Result<Option<(i64, TokenRow, UserRow)>> {
    let sql = token_with_owner_where!("t.previous_digest = ?1");
    token_with_owner(tx, sql, digest, true)
}

/// The expiry and the lifetime rule of the user's token `name`, if it has one by that name.
pub fn expiry_and_lifetime(
    tx: &Tx,
    user: i64,
    name: &str,
) -> Result<Option<(Option<i64>, Option<String>)>> {
    tx.query_opt(
        "SELECT expires_at, lifetime FROM api_tokens WHERE user_id = ?1 AND name = ?2",
        args![user, name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// A new secret for the user's token `name`, living until `expires_at` by the rule `lifetime`:
/// the current one becomes the previous, valid until `grace_until` (or not at all: `None`), and
/// the one before it stops at once. Gives the token as it is now, or `None` when the user has
/// no token of that name.
pub fn rotate(
    tx: &Tx,
    user: i64,
    name: &str,
    digest: &[u8; 32],
    (expires_at, lifetime): (Option<i64>, &str),
    grace_until: Option<i64>,
) -> Result<Option<TokenRow>> {
    tx.query_opt(
        // The columns of `token_columns!`, unqualified: SQLite's RETURNING takes no table name.
        "UPDATE api_tokens SET
             previous_digest = CASE WHEN CAST(?5 AS BIGINT) IS NULL THEN NULL ELSE digest END,
             grace_until = ?5, digest = ?3, expires_at = ?4, generation = generation + 1,
             expiry_notice = 0, lifetime = ?6
         WHERE user_id = ?1 AND name = ?2
         RETURNING id, name, created_at, expires_at, last_used_at, needs_admin,
             last_used_address, grants, generation, grace_until",
        args![user, name, &digest[..], expires_at, grace_until, lifetime],
        |r| token_from_row(r, 0),
    )
}

/// A token that has come within an expiry warning it has not had ([`expiring_unnoticed`]).
#[derive(Debug, Clone)]
pub struct Expiring {
    pub id: i64,
    pub user_id: String,
    pub name: String,
    pub expires_at: i64,
    /// The warning due: 1 within `warn_before`, 2 within `last_before`.
    pub notice: i64,
}

/// Tokens still live at `now` that expire within `warn_before` (microseconds) and have not had
/// the warning due: the last one (2) within `last_before`, else the first (1). A token that
/// comes within both at once has only the last.
pub fn expiring_unnoticed(
    tx: &Tx,
    now: i64,
    warn_before: i64,
    last_before: i64,
    limit: i64,
) -> Result<Vec<Expiring>> {
    tx.query_all(
        // The casts tell PostgreSQL the parameters' type, which it cannot infer from a sum.
        "SELECT t.id, u.user_id, t.name, t.expires_at, due FROM (
             SELECT *, CAST(CASE WHEN expires_at <= CAST(?1 AS BIGINT) + CAST(?3 AS BIGINT)
                                 THEN 2 ELSE 1 END AS BIGINT) AS due
             FROM api_tokens
             WHERE expires_at > ?1
               AND expires_at <= CAST(?1 AS BIGINT) + CASE WHEN CAST(?2 AS BIGINT) > ?3
                                                           THEN ?2 ELSE ?3 END) t
         JOIN users u ON u.id = t.user_id
         WHERE t.expiry_notice < t.due
         ORDER BY t.expires_at LIMIT ?4",
        args![now, warn_before, last_before, limit],
        |r| {
            Ok(Expiring {
                id: r.get(0)?,
                user_id: r.get(1)?,
                name: r.get(2)?,
                expires_at: r.get(3)?,
                notice: r.get(4)?,
            })
        },
    )
}

/// Tokens live at `now` that expire by `until`.
pub fn count_expiring(tx: &Tx, now: i64, until: i64) -> Result<i64> {
    tx.query_one(
        "SELECT count(*) FROM api_tokens WHERE expires_at > ?1 AND expires_at <= ?2",
        args![now, until],
        |r| r.get(0),
    )
}

/// Records that the token has had expiry warning `notice`.
pub fn set_expiry_notice(tx: &Tx, id: i64, notice: i64) -> Result<()> {
    tx.execute(
        "UPDATE api_tokens SET expiry_notice = ?2 WHERE id = ?1",
        args![id, notice],
    )?;
    Ok(())
}

pub fn delete(tx: &Tx, id: i64) -> Result<bool> {
    Ok(tx.execute("DELETE FROM api_tokens WHERE id = ?1", args![id])? > 0)
}

/// Deletes the user's token of that name when it expired at or before `now`.
pub fn delete_expired_named(tx: &Tx, user: i64, name: &str, now: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM api_tokens WHERE user_id = ?1 AND name = ?2 AND expires_at <= ?3",
        args![user, name, now],
    )?;
    Ok(())
}

/// Records a token's last use and the client address it came from.
pub fn touch(tx: &Tx, id: i64, now: i64, address: Option<&str>) -> Result<()> {
    // Never back: another node may have written a later use.
    tx.execute(
        "UPDATE api_tokens SET last_used_at = ?2, last_used_address = ?3
         WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        args![id, now, address],
    )?;
    Ok(())
}

/// Removes tokens that expired before `expired_before`, of one user or of all.
pub fn purge(tx: &Tx, expired_before: i64, user: Option<i64>) -> Result<usize> {
    tx.execute(
        "DELETE FROM api_tokens
         WHERE expires_at < ?1 AND (CAST(?2 AS BIGINT) IS NULL OR user_id = ?2)",
        args![expired_before, user],
    )
}
