//! The `notify_outbox` table: events waiting to be delivered by webhook. Never a secret.

use super::{
    Result,
    db::{Tx, args},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub id: String,
    pub event: String,
    pub time: i64,
    pub queued_at: i64,
    pub user_id: Option<String>,
    pub token_name: Option<String>,
    pub detail: Option<String>,
    pub attempts: i64,
}

pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub time: i64,
    pub queued_at: i64,
    pub user_id: Option<&'a str>,
    pub token_name: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub fn insert(tx: &Tx, delivery: &NewDelivery<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO notify_outbox (id, event, time, queued_at, user_id, token_name, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            delivery.id,
            delivery.event,
            delivery.time,
            delivery.queued_at,
            delivery.user_id,
            delivery.token_name,
            delivery.detail
        ],
    )?;
    Ok(())
}

/// The oldest deliveries waiting, at most `limit`.
pub fn oldest(tx: &Tx, limit: i64) -> Result<Vec<OutboxRow>> {
    tx.query_all(
        "SELECT seq, id, event, time, queued_at, user_id, token_name, detail, attempts
         FROM notify_outbox ORDER BY seq LIMIT ?1",
        args![limit],
        |r| {
            Ok(OutboxRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                event: r.get(2)?,
                time: r.get(3)?,
                queued_at: r.get(4)?,
                user_id: r.get(5)?,
                token_name: r.get(6)?,
                detail: r.get(7)?,
                attempts: r.get(8)?,
            })
        },
    )
}

/// Removes a delivery: acknowledged, or given up.
pub fn remove(tx: &Tx, seq: i64) -> Result<()> {
    tx.execute("DELETE FROM notify_outbox WHERE seq = ?1", args![seq])?;
    Ok(())
}

/// Counts a failed attempt.
pub fn failed(tx: &Tx, seq: i64) -> Result<()> {
    tx.execute(
        "UPDATE notify_outbox SET attempts = attempts + 1 WHERE seq = ?1",
        args![seq],
    )?;
    Ok(())
}
