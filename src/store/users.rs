//! The `users` table.

use super::{
    Result,
    db::{Row, Tx, args},
};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub user_id: String,
    pub display_name: String,
    pub role: String,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub created_at: i64,
}

/// The user columns [`from_row`] reads, as a literal for `concat!`: every query is a constant
/// string, prepared once per connection and found in the statement cache without formatting.
macro_rules! user_columns {
    () => {
        "u.id, u.user_id, u.display_name, u.role, u.enabled, u.password_hash, u.created_at"
    };
}

/// The same columns without the password hash, for lookups that never check a password (the
/// session and token lookups of every request): an empty text stands for "has a password".
macro_rules! user_columns_without_hash {
    () => {
        "u.id, u.user_id, u.display_name, u.role, u.enabled,
         CASE WHEN u.password_hash IS NULL THEN NULL ELSE '' END, u.created_at"
    };
}

pub(super) use user_columns_without_hash;

/// Reads the user columns starting at `at`, in the order of [`user_columns`].
pub(super) fn from_row(row: &Row<'_>, at: usize) -> Result<UserRow> {
    Ok(UserRow {
        id: row.get(at)?,
        user_id: row.get(at + 1)?,
        display_name: row.get(at + 2)?,
        role: row.get(at + 3)?,
        enabled: row.get(at + 4)?,
        password_hash: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
    })
}

pub struct NewUser<'a> {
    pub user_id: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
    pub enabled: bool,
    pub password_hash: Option<&'a str>,
    pub now: i64,
}

pub fn count(tx: &Tx) -> Result<i64> {
    tx.query_one("SELECT count(*) FROM users", args![], |r| r.get(0))
}

/// Inserts a user; a taken user id fails with [`super::StoreError::is_taken`].
pub fn insert(tx: &Tx, user: &NewUser<'_>) -> Result<i64> {
    // A taken id inserts nothing instead of failing: a failed statement would end PostgreSQL's
    // transaction, where the caller goes on after it.
    tx.query_opt(
        "INSERT INTO users (user_id, display_name, role, enabled, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id) DO NOTHING RETURNING id",
        args![
            user.user_id,
            user.display_name,
            user.role,
            user.enabled,
            user.password_hash,
            user.now
        ],
        |r| r.get(0),
    )?
    .ok_or_else(|| super::StoreError::taken("the user id"))
}

pub fn by_user_id(tx: &Tx, user_id: &str) -> Result<Option<UserRow>> {
    tx.query_opt(
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.user_id = ?1"
        ),
        args![user_id],
        |r| from_row(r, 0),
    )
}

/// Users whose id contains `mask` (any case), in id order.
pub fn list(
    tx: &Tx,
    mask: Option<&str>,
    enabled: Option<bool>,
    limit: i64,
    offset: i64,
) -> Result<Vec<UserRow>> {
    // The user id's column compares without case on both engines (its collation), which
    // PostgreSQL does not allow in a substring search: the mask looks in a lowered copy.
    let sql = tx.pick(
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u
             WHERE (?1 IS NULL OR instr(lower(u.user_id), lower(?1)) > 0)
               AND (?2 IS NULL OR u.enabled = ?2)
             ORDER BY u.user_id LIMIT ?3 OFFSET ?4"
        ),
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u
             WHERE (CAST(?1 AS TEXT) IS NULL
                    OR strpos(lower(u.user_id) COLLATE \"C\", lower(?1) COLLATE \"C\") > 0)
               AND (CAST(?2 AS BOOLEAN) IS NULL OR u.enabled = ?2)
             ORDER BY u.user_id LIMIT ?3 OFFSET ?4"
        ),
    );
    tx.query_all(sql, args![mask, enabled, limit, offset], |r| from_row(r, 0))
}

pub fn delete(tx: &Tx, id: i64) -> Result<bool> {
    Ok(tx.execute("DELETE FROM users WHERE id = ?1", args![id])? > 0)
}

/// Sets a user's password, which lifts a failed-login lock in any server ([`lift_lock`]).
pub fn set_password(tx: &Tx, id: i64, hash: &str, now: i64) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE users SET password_hash = ?2, lock_lifted_at = ?3 WHERE id = ?1",
        args![id, hash, now],
    )? > 0)
}

/// Records that a failed-login lock on the user's account was lifted at `now`: a server that
/// holds a lock set before lifts it at the account's next login.
pub fn lift_lock(tx: &Tx, id: i64, now: i64) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE users SET lock_lifted_at = ?2 WHERE id = ?1",
        args![id, now],
    )? > 0)
}

/// When a lock on the account of the user with this id was last lifted ([`lift_lock`]).
pub fn lock_lifted_at(tx: &Tx, user_id: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT lock_lifted_at FROM users WHERE user_id = ?1",
            args![user_id],
            |r| r.get(0),
        )?
        .flatten())
}

/// Records a user's last login, unless a later one is recorded.
pub fn set_last_login(tx: &Tx, id: i64, at: i64) -> Result<()> {
    tx.execute(
        "UPDATE users SET last_login_at = ?2
         WHERE id = ?1 AND (last_login_at IS NULL OR last_login_at < ?2)",
        args![id, at],
    )?;
    Ok(())
}

/// A user's last recorded login.
pub fn last_login(tx: &Tx, id: i64) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT last_login_at FROM users WHERE id = ?1",
            args![id],
            |r| r.get(0),
        )?
        .flatten())
}

pub fn set_enabled(tx: &Tx, id: i64, enabled: bool) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE users SET enabled = ?2 WHERE id = ?1",
        args![id, enabled],
    )? > 0)
}

pub fn set_role(tx: &Tx, id: i64, role: &str) -> Result<bool> {
    Ok(tx.execute("UPDATE users SET role = ?2 WHERE id = ?1", args![id, role])? > 0)
}
