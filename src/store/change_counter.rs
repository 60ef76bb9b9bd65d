//! The change counter (`change_counter.value`): moved on by triggers (migrations 003 and 004,
//! renamed by 006) with every update or delete of a user, token or session and every new token,
//! in the transaction that makes it, whichever process that is. Beside it, the number of sessions
//! ended so far (`change_counter.sessions_ended`).

use super::{
    Result,
    db::{Tx, args},
};

pub fn current(tx: &Tx) -> Result<i64> {
    tx.query_one(CURRENT, args![], |r| r.get(0))
}

pub(super) const CURRENT: &str = "SELECT value FROM change_counter";

/// The change counter and the number of sessions ended, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub change_counter: i64,
    pub sessions_ended: i64,
}

pub fn counters(tx: &Tx) -> Result<Counters> {
    tx.query_one(
        "SELECT value, sessions_ended FROM change_counter",
        args![],
        |r| {
            Ok(Counters {
                change_counter: r.get(0)?,
                sessions_ended: r.get(1)?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// Every table, what of it is kept in memory, and so which of its changes must move the change
    /// counter (`auth::cache` forgets what it keeps when the counter moves). A new table needs
    /// a line here: the test below fails until it has one.
    const CACHE_DEPENDENCIES: &[(&str, &[&str], &str)] = &[
        (
            "users",
            &["UPDATE", "DELETE"],
            "sessions and tokens are kept with their user's row (role, enabled); a new user is in \
             nothing kept",
        ),
        (
            "api_tokens",
            &["INSERT", "UPDATE", "DELETE"],
            "tokens by digest and each user's token list are kept; a new token changes the list",
        ),
        (
            "sessions",
            &["UPDATE", "DELETE"],
            "sessions are kept by id; a new session has a new id (a reused row is an UPDATE)",
        ),
        ("audit_events", &[], "never kept in memory"),
        ("server_secrets", &[], "read once at start"),
        (
            "notify_outbox",
            &[],
            "read by the webhook sender each time, never kept",
        ),
        ("change_counter", &[], "the counter itself"),
        (
            "account_failures",
            &[],
            "read at every password attempt on PostgreSQL, merged into the limits, never kept",
        ),
        (
            "address_failures",
            &[],
            "read at every attempt on PostgreSQL, merged into the limits, never kept",
        ),
        ("leases", &[], "read by each task at each round, never kept"),
    ];

    /// The triggers on `table` that fire after `event` and move the counter.
    fn counting_triggers(conn: &Connection, table: &str, event: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1")
            .unwrap();
        let triggers = stmt
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .unwrap()
            .map(Result::unwrap);
        triggers
            .filter(|(_, sql)| {
                // SQLite quotes a table's name in the triggers where a migration renamed it.
                let sql = sql.replace('"', "");
                let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
                sql.contains(&format!("AFTER {event} ON {table}"))
                    && sql.contains("UPDATE change_counter SET value = value + 1")
            })
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn every_change_a_kept_row_depends_on_moves_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::Sqlite::open(&dir.path().join("lodge.db")).unwrap();
        store
            .read(|tx| {
                let conn = tx.sqlite();
                let tables: Vec<String> = conn
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'table'
                         AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for table in &tables {
                    let decided = CACHE_DEPENDENCIES.iter().find(|(t, ..)| t == table);
                    let Some((_, events, _)) = decided else {
                        panic!(
                            "table `{table}` has no line in CACHE_DEPENDENCIES: decide whether \
                             anything kept in memory depends on it"
                        );
                    };
                    for event in *events {
                        assert!(
                            !counting_triggers(conn, table, event).is_empty(),
                            "no trigger moves the change counter after {event} ON {table}"
                        );
                    }
                }
                for (table, ..) in CACHE_DEPENDENCIES {
                    assert!(tables.contains(&table.to_string()), "`{table}` is gone");
                }
                Ok(())
            })
            .unwrap();
    }
}
