//! A person's sessions as they (or an administrator) see them, and ending them one by one or
//! all but the current one.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::{
    Auth, Error, Result, SessionKey, User,
    audit::{self, Actor, AuditEvent, kind},
    cache::SessionChange,
    from_micros, lock_lists,
    secret::Digest,
    sessions::Ages,
};
use crate::store::sessions::{self as store_sessions, ListedSession};

/// The hex digits of a session's public id that tell its session from a later one in the
/// same row.
const TAG_BYTES: usize = 8;

/// A live session as a list shows it: never its cookie or anything of its secret.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The row and a tag derived from the digest of the secret: names this session and not a
    /// later one in the same row, and tells nothing of the secret.
    pub id: String,
    /// The session of the request that asked.
    pub current: bool,
    /// `local` or `token`.
    pub provider: String,
    pub token_name: Option<String>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

fn tag(digest: &Digest) -> [u8; TAG_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key("lodge 2026 session list id");
    hasher.update(digest);
    let mut tag = [0; TAG_BYTES];
    tag.copy_from_slice(&hasher.finalize().as_bytes()[..TAG_BYTES]);
    tag
}

fn public_id(row: i64, digest: &Digest) -> String {
    let mut id = format!("{row}-");
    for byte in tag(digest) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// The row and the tag a public id names, or `None` when the text is not one.
fn parse_public_id(text: &str) -> Option<(i64, [u8; TAG_BYTES])> {
    let (row, hex) = text.trim().split_once('-')?;
    if hex.len() != TAG_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut tag = [0; TAG_BYTES];
    for (i, byte) in tag.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((row.parse().ok()?, tag))
}

/// Who ends a session: its owner (only their own) or an administrator (anyone's).
#[derive(Debug, Clone, Copy)]
pub enum Ender<'a> {
    Owner(&'a User),
    Administrator,
}

/// A user's sessions as the page lists them, and ending them.
pub struct SessionList<'a>(pub(super) &'a Auth);

super::facet!(SessionList);

impl SessionList<'_> {
    /// The user's live sessions, the newest first; `current` is the caller's own session.
    pub async fn sessions_of(
        &self,
        user: &User,
        current: Option<SessionKey>,
    ) -> Result<Vec<SessionSummary>> {
        let rows = self.session_rows(user).await?;
        let mut live: Vec<SessionSummary> = rows
            .into_iter()
            .filter(|row| self.is_live(row, user))
            .map(|row| SessionSummary {
                id: public_id(row.id, &row.secret_digest),
                current: current
                    .is_some_and(|c| c.id == row.id && c.secret_digest == row.secret_digest),
                provider: if row.provider == "token" {
                    "token"
                } else {
                    "local"
                }
                .to_owned(),
                token_name: row.token_name,
                address: row.address,
                user_agent: row.user_agent,
                created_at: from_micros(row.created_at),
                last_seen_at: from_micros(row.last_seen_at),
            })
            .collect();
        live.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(live)
    }

    /// How many live sessions the user has.
    pub async fn session_count(&self, user: &User) -> Result<usize> {
        let rows = self.session_rows(user).await?;
        Ok(rows.iter().filter(|row| self.is_live(row, user)).count())
    }

    /// The rows of the user's sessions, ended ones not yet removed among them: found through
    /// the server's lists, or by reading the table while they are not read whole.
    async fn session_rows(&self, user: &User) -> Result<Vec<ListedSession>> {
        let ids = lock_lists(&self.user_sessions).ids_of(user.id);
        let owner = user.id;
        Ok(self
            .store()
            .run(move |conn| store_sessions::of_user(conn, owner, ids.as_deref()))
            .await?)
    }

    fn is_live(&self, row: &ListedSession, user: &User) -> bool {
        let ages = Ages {
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            token_expires_at: row.token_expires_at,
            generations: (
                row.token_generation,
                row.token_now_generation,
                row.token_grace_until,
            ),
        };
        let user = (user.enabled, user.role.as_str());
        self.sessions()
            .session_ended(user, row.token_needs_admin, ages, self.now())
            .is_none()
    }

    /// Ends the session with this public id; whether it was live. An owner ends only their
    /// own: another user's id is answered as an unknown one.
    pub async fn end_session(&self, actor: &Actor, ender: Ender<'_>, id: &str) -> Result<bool> {
        let (row, wanted) = parse_public_id(id).ok_or_else(|| {
            Error::InvalidInput(format!(
                "`{}` is not a session id",
                crate::text::bounded(id, 80)
            ))
        })?;
        let found = self
            .store()
            .run(move |conn| store_sessions::listed_by_id(conn, row))
            .await?;
        let Some(session) = found.filter(|s| tag(&s.secret_digest) == wanted) else {
            return Ok(false);
        };
        if let Ender::Owner(owner) = ender
            && owner.id != session.user
        {
            return Ok(false);
        }
        let detail = match ender {
            Ender::Owner(_) => "ended from the session list",
            // `by` names the administrator.
            Ender::Administrator => "ended",
        };
        let event = AuditEvent::new(kind::SESSION_END, true)
            .user(session.user_id.clone())
            .provider(if session.provider == "token" {
                "token"
            } else {
                "local"
            })
            .detail(detail)
            .by(actor);
        let now = self.now();
        let (user, digest) = (session.user, session.secret_digest);
        self.write_sessions(move |tx, lists, changes| {
            let ended = lists.delete(tx, user, row, &digest)?;
            if ended {
                changes.push(SessionChange::Ended(row));
                audit::record(tx, now, &event)?;
            }
            Ok(ended)
        })
        .await
    }

    /// Ends every session of the user's but `keep` (the caller's own); gives how many ended.
    pub async fn end_other_sessions(
        &self,
        actor: &Actor,
        user: &User,
        keep: Option<SessionKey>,
    ) -> Result<usize> {
        let now = self.now();
        let (owner, user_id) = (user.id, user.user_id.clone());
        let actor = actor.clone();
        self.write_sessions(move |tx, lists, changes| {
            // Row ids start at 1: 0 keeps none.
            let ended = lists.end_user(tx, owner, keep.map_or(0, |k| k.id))?;
            changes.extend(ended.iter().copied().map(SessionChange::Ended));
            if !ended.is_empty() {
                let event = AuditEvent::new(kind::SESSION_END, true)
                    .user(user_id)
                    .detail(format!("{} other sessions ended", ended.len()))
                    .by(&actor);
                audit::record(tx, now, &event)?;
            }
            Ok(ended.len())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_id_names_its_row_and_session_and_nothing_else_parses() {
        let digest = [7; 32];
        let id = public_id(42, &digest);
        assert_eq!(parse_public_id(&id), Some((42, tag(&digest))));
        assert_ne!(tag(&digest), tag(&[8; 32]));
        assert!(!id.contains("0707"), "no byte of the digest shows: {id}");
        for bad in [
            "",
            "42",
            "42-",
            "x-0011223344556677",
            "42-00112233445566",
            "42-001122334455667g",
        ] {
            assert_eq!(parse_public_id(bad), None, "{bad:?}");
        }
    }
}
