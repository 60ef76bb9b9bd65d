//! The `account_failures` and `address_failures` tables: the failed-login limits every node
//! serving one database shares (`auth::limits` keeps them in memory and merges these in).

use super::{
    Result,
    db::{Row, Tx, args},
};

/// An account's failures in a row, the time of the last, and its lock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountRow {
    pub failures: i64,
    pub last: i64,
    pub locked_until: Option<i64>,
}

/// An address's bucket of failures: its level at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddressRow {
    pub level: f64,
    pub at: i64,
}

pub fn put_account(tx: &Tx, key: &[u8; 16], row: &AccountRow) -> Result<()> {
    tx.execute(
        "INSERT INTO account_failures (account, failures, last, locked_until)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account) DO UPDATE SET failures = ?2, last = ?3, locked_until = ?4",
        args![&key[..], row.failures, row.last, row.locked_until],
    )?;
    Ok(())
}

/// Forgets an account's failures (a success, an unlock).
pub fn clear_account(tx: &Tx, key: &[u8; 16]) -> Result<()> {
    tx.execute(
        "DELETE FROM account_failures WHERE account = ?1",
        args![&key[..]],
    )?;
    Ok(())
}

/// An account's row and an address's, in one statement: what an attempt reads before it
/// begins; with the change counter of the same moment (what the request checks next).
pub fn both(tx: &Tx, account: Option<&[u8; 16]>, address: Option<&str>) -> Result<Both> {
    tx.query_one(BOTH, args![account.map(|k| &k[..]), address], both_from_row)
}

/// The change counter, an account's failures and an address's.
pub type Both = (i64, Option<AccountRow>, Option<AddressRow>);

/// [`both`]'s statement: the account's digest is `?1`, the address `?2`.
pub(super) const BOTH: &str = "SELECT a.failures, a.last, a.locked_until, d.level, d.at, c.value
     FROM change_counter AS c
     LEFT JOIN account_failures a ON a.account = ?1
     LEFT JOIN address_failures d ON d.address = ?2";

pub(super) fn both_from_row(r: &Row<'_>) -> Result<Both> {
    let account = match r.get::<Option<i64>>(0)? {
        Some(failures) => Some(AccountRow {
            failures,
            last: r.get(1)?,
            locked_until: r.get(2)?,
        }),
        None => None,
    };
    let address = match r.get::<Option<f64>>(3)? {
        Some(level) => Some(AddressRow {
            level,
            at: r.get(4)?,
        }),
        None => None,
    };
    Ok((r.get(5)?, account, address))
}

pub fn put_address(tx: &Tx, address: &str, row: &AddressRow) -> Result<()> {
    tx.execute(
        "INSERT INTO address_failures (address, level, at) VALUES (?1, ?2, ?3)
         ON CONFLICT (address) DO UPDATE SET level = ?2, at = ?3",
        args![address, row.level, row.at],
    )?;
    Ok(())
}

/// Removes what no longer holds anything back: accounts whose last failure was before
/// `accounts_before` and whose lock has run out, addresses whose bucket drained empty before
/// `addresses_before`.
pub fn prune(tx: &Tx, now: i64, accounts_before: i64, addresses_before: i64) -> Result<usize> {
    let accounts = tx.execute(
        "DELETE FROM account_failures
         WHERE last < ?2 AND (locked_until IS NULL OR locked_until <= ?1)",
        args![now, accounts_before],
    )?;
    let addresses = tx.execute(
        "DELETE FROM address_failures WHERE at < ?1",
        args![addresses_before],
    )?;
    Ok(accounts + addresses)
}
